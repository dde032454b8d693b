"""Segments, their visitors and visitor-account links, loaded through Dagster against the
emulator and read back from DuckDB: equal to the emulator's, whichever membership shape Pendo
answers; one segment that cannot be asked fails alone; history versions all three."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pytest

from pendo_assets.emulator import EmulatorServer, EntityEdit, Faults
from pendo_assets.emulator.segments import PARAMETER, PIPELINE, segment_visitors, segments
from pendo_assets.pendo.queries import SEGMENT_PARAMETER, SEGMENT_STEP
from pendo_assets.pendo.tables import parse_rest_rows
from pendo_assets.settings import SettingsError, load_settings
from pendo_assets.warehouse.history import apply_history
from pendo_assets.warehouse.store import Warehouse
from pendo_assets_tests.conftest import TEST_KEY, small_subscription

# Left out of `make test-quick`: each segment behaviour as its own Dagster run (REST lists,
# membership shapes, history).
pytestmark = pytest.mark.slow

ENTITY_KEYS = ["pendo/visitors", "pendo/segments"]


def _metadata(result, key: str) -> dict:
    (mat,) = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey.from_user_string(key)
    ]
    return {k: v.value for k, v in mat.metadata.items()}


def _pairs(sub) -> set[tuple[str, str]]:
    return {(s["id"], v) for s in segments(sub) for v in segment_visitors(sub, s["id"])}


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ((PARAMETER, PIPELINE), SEGMENT_PARAMETER),
        ((PARAMETER,), SEGMENT_PARAMETER),
        ((PIPELINE,), SEGMENT_STEP),  # the parameter answers 400: the step is tried
    ],
    ids=["both", "parameter-only", "pipeline-only"],
)
def test_segments_and_memberships_equal_the_emulators(make_project, shapes, expected):
    sub = small_subscription(segment_shapes=shapes)
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server)
        result = project.materialize(ENTITY_KEYS)
        asked = server.stats.snapshot()["requests"]
    assert result.success
    truth = {s["id"]: s for s in segments(sub)}
    rows = project.query(
        "SELECT id, name, shared, created_by_user_id, epoch_ms(created_at), "
        "last_updated_by_user_id, epoch_ms(last_updated_at), definition, pipeline "
        "FROM pendo.segments"
    )
    assert {r[0] for r in rows} == set(truth)
    for sid, name, shared, by, at, up_by, up_at, definition, pipeline in rows:
        s = truth[sid]
        assert (name, shared, by, at) == (
            s["name"],
            s["shared"],
            s["createdByUser"]["id"],
            s["createdAt"],
        )
        assert (up_by, up_at) == (s["lastUpdatedByUser"]["id"], s["lastUpdatedAt"])
        assert json.loads(definition) == s["definition"]
        assert json.loads(pipeline) == s["pipeline"]
    got = set(project.query("SELECT segment_id, visitor_id FROM pendo.segment_visitors"))
    assert got == _pairs(sub) and len(got) > 20
    (n,) = project.query("SELECT count(*) FROM pendo.segment_visitors")[0]
    assert n == len(got)  # one row per pair
    meta = _metadata(result, "pendo/segments")
    assert meta["segment_membership_shapes"] == {expected: len(truth)}
    assert meta["segments_failed"] == {} and meta["segment_visitors_rows"] == len(got)
    assert asked > 0


def test_a_segment_neither_shape_answers_fails_alone_and_keeps_its_last_members(make_project):
    sub = small_subscription()
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server)
        assert project.materialize(ENTITY_KEYS).success
        before = set(project.query("SELECT segment_id, visitor_id FROM pendo.segment_visitors"))
        # This Pendo now answers neither shape: every segment fails, the asset does not.
        server.subscription = sub.replace(segment_shapes=())
        result = project.materialize(ENTITY_KEYS)
    assert result.success
    meta = _metadata(result, "pendo/segments")
    assert set(meta["segments_failed"]) == {s["id"] for s in segments(sub)}
    message = next(iter(meta["segments_failed"].values()))
    assert "asked both ways" in message and "segmentId" in message and "segment" in message
    # Nothing was asked successfully, so the last known members stay rather than vanish.
    after = set(project.query("SELECT segment_id, visitor_id FROM pendo.segment_visitors"))
    assert after == before
    assert project.query("SELECT count(*) FROM pendo.segments")[0][0] == len(segments(sub))


def test_pendo_segments_limits_membership_and_an_unknown_id_fails_alone(make_project):
    sub = small_subscription()
    wanted = [segments(sub)[0]["id"], segments(sub)[3]["id"]]
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server, PENDO_SEGMENTS=",".join([*wanted, "noSuchSegment"]))
        result = project.materialize(ENTITY_KEYS)
    assert result.success
    got = set(project.query("SELECT segment_id, visitor_id FROM pendo.segment_visitors"))
    assert got == {p for p in _pairs(sub) if p[0] in wanted} and got
    assert project.query("SELECT count(*) FROM pendo.segments")[0][0] == len(segments(sub))
    failed = _metadata(result, "pendo/segments")["segments_failed"]
    assert list(failed) == ["noSuchSegment"] and "PENDO_SEGMENTS" in failed["noSuchSegment"]


def test_pendo_segments_setting_is_validated_at_load_time(tmp_path):
    base = {"PENDO_DEMO": "1", "PENDO_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    assert load_settings(base).segments is None
    assert load_settings({**base, "PENDO_SEGMENTS": " a1, b_2 ,a1"}).segments == ("a1", "b_2")
    with pytest.raises(SettingsError, match="PENDO_SEGMENTS"):
        load_settings({**base, "PENDO_SEGMENTS": "ok,not ok"})


def test_rest_lists_may_be_bare_arrays_or_wrapped_in_results(make_project):
    assert parse_rest_rows(b'[{"id": "a"}]') == parse_rest_rows(b'{"results": [{"id": "a"}]}')
    assert parse_rest_rows(b'{"results": null}') == []
    with pytest.raises(ValueError):
        parse_rest_rows(b'{"segments": []}')
    sub = small_subscription(rest_lists_wrapped=True)
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server)
        assert project.materialize(["pendo/segments"]).success
    ids = {r[0] for r in project.query("SELECT id FROM pendo.segments")}
    assert ids == {s["id"] for s in segments(sub)}


def test_visitor_account_pairs_equal_accountids(make_project):
    sub = small_subscription()
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server)
        assert project.materialize(["pendo/visitors"]).success
    truth = {
        (v["visitorId"], a)
        for v in sub.entities("visitors")
        for a in v["metadata"]["auto"]["accountids"]
        if a
    }
    several = {v for v, _ in truth if sum(1 for w, _ in truth if w == v) > 1}
    assert several, "the emulator has visitors of several accounts"
    rows = project.query("SELECT visitor_id, account_id FROM pendo.visitor_accounts")
    assert len(rows) == len(set(rows))  # one row per distinct pair
    assert set(rows) == truth


def test_history_versions_segments_and_visitor_account_links(make_project):
    sub = small_subscription()
    keys = [
        *ENTITY_KEYS,
        "analytics/segment_history",
        "analytics/visitor_account_history",
    ]

    def run(project):
        # valid_from is each load's own time: the two loads are two versions.
        assert project.materialize(keys).success

    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server)
        run(project)
        first_pairs = set(
            project.query("SELECT visitor_id, account_id FROM pendo.visitor_accounts")
        )
        # A segment is renamed and a fifth of the visitors move to one new account.
        at = sub.history_end_ms + 3_600_000
        server.subscription = sub.replace(
            edits=(
                EntityEdit("segments", 0.4, at, field="name", value="Renamed"),
                EntityEdit(
                    "visitors", 0.2, at, field="metadata.auto.accountids", value=("acme-new",)
                ),
            )
        )
        run(project)
    renamed = {s["id"] for s in server.subscription.entities("segments") if s["name"] == "Renamed"}
    assert renamed
    versions = project.query(
        "SELECT id, count(*), count(*) FILTER (is_current), "
        "any_value(name) FILTER (is_current) FROM analytics.segment_history GROUP BY id"
    )
    for sid, n, current, name in versions:
        assert current == 1
        assert (n, name == "Renamed") == ((2, True) if sid in renamed else (1, False))
    pairs = set(project.query("SELECT visitor_id, account_id FROM pendo.visitor_accounts"))
    gone, new = first_pairs - pairs, pairs - first_pairs
    assert gone and new and {a for _, a in new} == {"acme-new"}
    hist = project.query(
        "SELECT visitor_id, account_id, is_current, is_deleted, valid_to IS NULL "
        "FROM analytics.visitor_account_history"
    )
    current = {(v, a) for v, a, cur, deleted, _ in hist if cur and not deleted}
    assert current == pairs
    closed = {(v, a) for v, a, cur, deleted, _ in hist if cur and deleted}
    assert closed == gone


def test_pair_history_folds_by_both_columns(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))

    def snapshot(pairs):
        with wh.transaction() as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS pendo")
            con.execute("CREATE OR REPLACE TABLE pendo.links (v VARCHAR, a VARCHAR)")
            con.executemany("INSERT INTO pendo.links VALUES (?, ?)", pairs)

    def fold(pairs, day: int):
        snapshot(pairs)
        at = datetime(2026, 1, day, tzinfo=UTC)
        return apply_history(wh, ("pendo", "links"), ("analytics", "h"), ("v", "a"), at, True)

    assert fold([("1", "x"), ("1", "y"), ("2", "x")], 1).new_versions == 3
    second = fold([("1", "x"), ("2", "x"), ("2", "z")], 2)  # 1-y left, 2-z joined
    assert (second.new_versions, second.deleted) == (1, 1)
    rows = wh.query("SELECT v, a, is_current, is_deleted FROM analytics.h ORDER BY ALL")
    assert rows == [
        ("1", "x", True, False),
        ("1", "y", False, False),
        ("1", "y", True, True),
        ("2", "x", True, False),
        ("2", "z", True, False),
    ]


def test_one_segment_pendo_cannot_evaluate_fails_alone(make_project):
    sub = small_subscription()
    bad = segments(sub)[0]["id"]
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server)
        first = project.materialize(ENTITY_KEYS)
        assert first.success
        server.faults.update(refused_segments=[bad])
        result = project.materialize(ENTITY_KEYS)
    assert result.success
    # The members check passes, then warns naming the segment (never an error).
    (ok,) = [c for c in first.get_asset_check_evaluations() if c.check_name == "members_loaded"]
    (warned,) = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "members_loaded"
    ]
    assert ok.passed and not warned.passed
    assert warned.severity == dg.AssetCheckSeverity.WARN
    assert bad in (warned.description or "")
    assert list(warned.metadata["failed"].value) == [bad]
    failed = _metadata(result, "pendo/segments")["segments_failed"]
    assert list(failed) == [bad]
    assert "Unexpected error occurred evaluating segment" in failed[bad]
    assert "asked both ways" in failed[bad] and "PENDO_SEGMENTS" in failed[bad]
    # Every segment holds its members: the others freshly asked, the failed one as last known.
    got = set(project.query("SELECT segment_id, visitor_id FROM pendo.segment_visitors"))
    assert got == _pairs(sub)
