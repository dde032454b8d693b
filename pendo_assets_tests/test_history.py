"""Entity history (SCD type 2): versions open only on real attribute changes, a re-applied
load adds nothing, and only a full load closes deleted entities."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from pendo_assets.catalog import HISTORY_UNTRACKED_PATTERN
from pendo_assets.warehouse.history import apply_history, compared_columns
from pendo_assets.warehouse.store import Warehouse
from pendo_assets_tests.conftest import query

T1 = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
T2 = datetime(2026, 10, 2, 6, 0, tzinfo=UTC)
T3 = datetime(2026, 10, 3, 6, 0, tzinfo=UTC)
E1, E2, E3 = (t.timestamp() for t in (T1, T2, T3))


@pytest.fixture()
def wh(tmp_path) -> Warehouse:
    return Warehouse(str(tmp_path / "wh.duckdb"))


def load(wh: Warehouse, rows: list[tuple]) -> None:
    """Replace pendo.visitors with (visitor_id, plan, metadata_auto_lastvisit) rows."""
    with wh.transaction() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS pendo")
        con.execute(
            "CREATE OR REPLACE TABLE pendo.visitors (visitor_id VARCHAR, plan VARCHAR, "
            "metadata_auto_lastvisit TIMESTAMPTZ)"
        )
        if rows:
            con.executemany("INSERT INTO pendo.visitors VALUES (?, ?, ?)", rows)


def fold(wh: Warehouse, at: datetime, full: bool = True, track=()):
    return apply_history(
        wh,
        ("pendo", "visitors"),
        ("analytics", "visitor_history"),
        "visitor_id",
        at,
        full,
        HISTORY_UNTRACKED_PATTERN,
        track,
    )


def versions(wh: Warehouse, vid: str) -> list[tuple]:
    return query(
        wh.path,
        "SELECT plan, epoch(valid_from), epoch(valid_to), is_current, is_deleted "
        "FROM analytics.visitor_history "
        "WHERE visitor_id = ? ORDER BY valid_from, is_deleted",
        [vid],
    )


def test_a_changed_attribute_opens_a_second_version_with_the_right_validity(wh):
    load(wh, [("v1", "free", T1), ("v2", "pro", T1)])
    fold(wh, T1)
    load(wh, [("v1", "pro", T2), ("v2", "pro", T2)])
    result = fold(wh, T2)
    assert result.new_versions == 1
    assert versions(wh, "v1") == [
        ("free", E1, E2, False, False),
        ("pro", E2, None, True, False),
    ]
    # Only lastvisit moved for v2: no new version.
    assert versions(wh, "v2") == [("pro", E1, None, True, False)]


def test_reapplying_the_same_load_adds_no_version(wh):
    load(wh, [("v1", "free", T1), ("v2", "pro", T1)])
    fold(wh, T1)
    before = query(wh.path, "SELECT * FROM analytics.visitor_history ORDER BY ALL")
    assert fold(wh, T1).new_versions == 0
    assert fold(wh, T2).new_versions == 0
    assert query(wh.path, "SELECT * FROM analytics.visitor_history ORDER BY ALL") == before


def test_a_deleted_visitor_is_closed_only_by_a_full_load(wh):
    load(wh, [("v1", "free", T1), ("v2", "pro", T1)])
    fold(wh, T1)
    load(wh, [("v1", "free", T1)])
    assert fold(wh, T2, full=False).deleted == 0
    assert versions(wh, "v2") == [("pro", E1, None, True, False)]
    assert fold(wh, T3, full=True).deleted == 1
    assert versions(wh, "v2") == [
        ("pro", E1, E3, False, False),
        ("pro", E3, None, True, True),
    ]
    # Deleting is idempotent too, and a comeback opens a live version.
    assert fold(wh, T3, full=True).deleted == 0
    load(wh, [("v1", "free", T1), ("v2", "pro", T1)])
    fold(wh, datetime(2026, 10, 4, tzinfo=UTC))
    assert versions(wh, "v2")[-1][3:] == (True, False)
    assert query(
        wh.path, "SELECT count(*) FROM analytics.visitor_history WHERE is_current GROUP BY ALL"
    ) == [(2,)]


def test_untracked_columns_are_versioned_when_the_user_lists_them(wh):
    load(wh, [("v1", "free", T1)])
    fold(wh, T1, track={"metadata_auto_lastvisit"})
    load(wh, [("v1", "free", T2)])
    assert fold(wh, T2, track={"metadata_auto_lastvisit"}).new_versions == 1


def test_a_load_older_than_the_history_is_refused(wh):
    load(wh, [("v1", "free", T1)])
    fold(wh, T2)
    with pytest.raises(ValueError, match="cannot be applied before"):
        fold(wh, T1)


def test_auto_fields_that_change_on_every_visit_are_not_compared():
    cols = [
        "visitor_id",
        "metadata_agent_email",
        "metadata_auto_lastvisit",
        "metadata_auto_lastupdated",
        "metadata_auto_lastbrowsername",
        "metadata_auto_123_lastvisit",
        "metadata_auto_firstvisit",
        "metadata_custom_plan",
    ]
    compared, untracked = compared_columns(cols, "visitor_id", HISTORY_UNTRACKED_PATTERN)
    assert compared == ["metadata_agent_email", "metadata_auto_firstvisit", "metadata_custom_plan"]
    assert untracked == [
        "metadata_auto_lastvisit",
        "metadata_auto_lastupdated",
        "metadata_auto_lastbrowsername",
        "metadata_auto_123_lastvisit",
    ]


def test_history_assets_run_in_dagster_after_their_entities(fresh_emulator, make_project):
    import dagster as dg

    from pendo_assets.catalog import ENTITIES

    project = make_project(fresh_emulator)
    entities = [f"pendo/{s.table}" for s in ENTITIES]
    histories = [f"analytics/{s.history}" for s in ENTITIES]
    assets = [*(project.defs.assets or [])]

    def run(as_of: str) -> dg.ExecuteInProcessResult:
        ops = {k.replace("/", "__"): {"config": {"as_of": as_of}} for k in histories}
        return dg.materialize(
            assets,
            selection=[dg.AssetKey.from_user_string(k) for k in entities + histories],
            resources=project.defs.resources,
            instance=project.instance,
            run_config={"ops": ops},
        )

    first = run("2026-11-20T11:00:00+00:00")
    assert first.success
    written = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in first.get_asset_materialization_events()
    }
    for s in ENTITIES:
        n = project.query(f"SELECT count(*) FROM pendo.{s.table}")[0][0]
        assert project.query(
            f"SELECT count(*), count(*) FILTER (is_current AND valid_to IS NULL) "
            f"FROM {s.history_table}"
        ) == [(n, n)], s.table
        # Written through the IO manager like every table: its usual metadata plus the fold's.
        meta = written[f"analytics/{s.history}"]
        assert meta["dagster/row_count"].value == n
        assert meta["new_versions"].value == n
        assert meta["as_of"].value == "2026-11-20T11:00:00+00:00"
        assert meta["dagster/column_schema"].value.columns[-1].name == "is_deleted"
    assert run("2026-11-21T11:00:00+00:00").success
    for s in ENTITIES:
        n = project.query(f"SELECT count(*) FROM pendo.{s.table}")[0][0]
        assert project.query(f"SELECT count(*) FROM {s.history_table}") == [(n,)], s.table


def test_reloading_a_timestamp_column_keeps_its_type():
    """information_schema says TIMESTAMP WITH TIME ZONE for our TIMESTAMPTZ: not a widening
    (it used to turn every timestamp column into VARCHAR on the second load)."""
    from pendo_assets.warehouse.store import widen

    assert widen("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ") == "TIMESTAMP WITH TIME ZONE"


def test_one_history_asset_per_entity_downstream_of_it_with_its_schema(tmp_path):
    from pendo_assets.catalog import ENTITIES
    from pendo_assets.definitions import build_definitions
    from pendo_assets.settings import load_settings

    env = {"PENDO_DEMO": "1", "PENDO_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    defs = build_definitions(load_settings(env))
    graph = defs.resolve_asset_graph()
    for s in ENTITIES:
        key = dg.AssetKey(["analytics", s.history])
        node = graph.get(key)
        assert dg.AssetKey(["pendo", s.table]) in node.parent_keys
        assert node.group_name == "analytics_history"
        cols = [c.name for c in node.metadata["dagster/column_schema"].columns]
        assert cols[-4:] == ["valid_from", "valid_to", "is_current", "is_deleted"]
        assert "SCD type 2" in (node.description or "")
