"""Dagster for real against the emulator over HTTP: a 7-day range of every source, read back
from the DuckDB file and compared, day by day, with the emulator's own rows."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import dagster as dg
import pytest

from pendo_assets.catalog import ENTITIES, EVENTS
from pendo_assets.definitions import build_definitions
from pendo_assets.emulator import Drift, EmulatorServer
from pendo_assets.settings import load_settings

from .conftest import TEST_KEY, Project, day_truth, project_env, small_subscription

START, END = date(2026, 10, 29), date(2026, 11, 4)  # crosses the US DST change (Nov 1, 25 h)
DAYS = [START + timedelta(days=i) for i in range((END - START).days + 1)]
ENTITY_KEYS = [f"pendo/{s.table}" for s in ENTITIES]
RAW_KEYS = [f"pendo/{s.table}" for s in EVENTS]
ENRICHED_KEYS = [f"analytics/{s.table}" for s in EVENTS]


def expected_by_day(sub, source) -> dict[date, tuple[int, int, int]]:
    return day_truth(sub, source, DAYS)


@pytest.fixture(scope="module")
def loaded(emulator, subscription, tmp_path_factory):
    """Entities, raw events and enriched events over the range in one run: the README's backfill."""
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("integration")
    env = project_env(emulator, tmp)
    for k, v in env.items():
        mp.setenv(k, v)
    defs = build_definitions(load_settings(env))
    instance = dg.DagsterInstance.ephemeral()
    project = Project(env, defs, instance, env["PENDO_DUCKDB_PATH"])
    results = {
        "backfill": project.materialize(
            ENTITY_KEYS + RAW_KEYS + ENRICHED_KEYS, START.isoformat(), END.isoformat()
        )
    }
    yield project, results
    instance.dispose()
    mp.undo()


def test_runs_succeed(loaded):
    _, results = loaded
    assert all(r.success for r in results.values())


def test_the_backfill_run_asks_pendo_first_and_builds_each_source_after_its_checks(loaded):
    """Step order (pendo_assets/step_order.py): the event loads first, the entities next, and
    each source's enriched days straight after its own checks, in the order of its totals."""
    project, results = loaded
    started = project.instance.all_logs(
        results["backfill"].run_id, of_type=dg.DagsterEventType.STEP_START
    )
    order = [e.step_key for e in started]
    assert order[:2] == ["load_pendo_events", "load_pendo_entities"]
    tables = sorted(s.table for s in EVENTS)
    checks = [order.index(f"pendo_{t}_checks") for t in tables]
    assert checks == sorted(checks)
    assert order.index("pendo_entities_checks") < checks[0]
    for t in tables:
        assert order[order.index(f"pendo_{t}_checks") + 1] == f"analytics__{t}"
    # Then the checks of its enriched table (freshness, NPS), before the next source's checks.
    ends = [*checks[1:], len(order)]
    for t, end in zip(tables, ends, strict=True):
        after = set(order[order.index(f"analytics__{t}") + 1 : end])
        tie_out = {"analytics__poll_events_nps_buckets_tie_out"} if t == "poll_events" else set()
        assert after == {f"{t}_freshness", *tie_out}, t


@pytest.mark.parametrize("source", ENTITIES, ids=lambda s: s.table)
def test_entity_tables_hold_exactly_the_emulators_entities(loaded, subscription, source):
    project, _ = loaded
    expected = subscription.entities(source.name)
    id_col = {"accountId": "account_id", "visitorId": "visitor_id", "id": "id"}[source.id_field]
    got = [r[0] for r in project.query(f"SELECT {id_col} FROM pendo.{source.table}")]
    assert Counter(got) == Counter(r[source.id_field] for r in expected)


def test_visitor_metadata_lands_in_columns(loaded, subscription):
    project, _ = loaded
    visitors = {v["visitorId"]: v for v in subscription.entities("visitors")}
    rows = project.query("SELECT visitor_id, metadata_agent_email FROM pendo.visitors")
    assert rows
    for vid, email in rows:
        assert email == visitors[vid].get("metadata", {}).get("agent", {}).get("email")
    anonymous = [v for v in visitors if v.startswith("_PENDO_T_")]
    assert anonymous, "the emulator should have anonymous visitors and we keep them by default"


@pytest.mark.parametrize("source", EVENTS, ids=lambda s: s.table)
def test_event_tables_match_the_emulator_per_day(loaded, subscription, source):
    project, _ = loaded
    expected = expected_by_day(subscription, source)
    sums = (
        "coalesce(sum(num_events),0), coalesce(sum(num_minutes),0)"
        if not source.per_event
        else "0, 0"
    )
    got = {
        d: (n, e, m)
        for d, n, e, m in project.query(
            f"SELECT day, count(*), {sums} FROM pendo.{source.table} GROUP BY day",
        )
    }
    for d in DAYS:
        assert got.get(d, (0, 0, 0)) == expected[d], f"{source.table} {d}"
    assert sum(v[0] for v in expected.values()) > 0


def test_all_apps_are_loaded(loaded, subscription):
    project, _ = loaded
    apps = {a for (a,) in project.query("SELECT DISTINCT app_id FROM pendo.page_events")}
    assert apps == set(subscription.app_ids)


def test_days_are_subscription_local(loaded, subscription):
    project, _ = loaded
    # browser_time of per-event rows falls inside the local day the row is filed under.
    rows = project.query(
        "SELECT day, browser_time FROM pendo.guide_events",
    )
    assert rows
    for day, ts in rows:
        assert ts.astimezone(subscription.tz).date() == day


@pytest.mark.parametrize("source", EVENTS, ids=lambda s: s.table)
def test_enriched_has_every_raw_row_with_names(loaded, source):
    project, _ = loaded
    raw = dict(project.query(f"SELECT day, count(*) FROM pendo.{source.table} GROUP BY 1"))
    enr = dict(project.query(f"SELECT day, count(*) FROM analytics.{source.table} GROUP BY 1"))
    assert raw == enr
    # Names are filled wherever the id is known to the entity tables.
    unnamed_known = project.query(
        f"""SELECT count(*) FROM analytics.{source.table} e
            JOIN pendo.accounts a ON a.account_id = e.account_id
            WHERE e.account_name IS DISTINCT FROM a.metadata_agent_name""",
    )[0][0]
    assert unnamed_known == 0


def test_enriched_feature_events_carry_page_and_group(loaded):
    project, _ = loaded
    rows = project.query(
        """SELECT count(*), count(e.feature_name), count(e.page_name), count(e.group_name),
                  count(*) FILTER (WHERE f.id IS NOT NULL)
           FROM analytics.feature_events e LEFT JOIN pendo.features f ON f.id = e.feature_id""",
    )[0]
    total, named, paged, grouped, known = rows
    assert total > 0 and named == known
    assert paged > 0 and grouped > 0


def test_rerunning_the_range_changes_nothing(loaded):
    project, _ = loaded
    before = project.query("SELECT count(*), sum(num_events) FROM pendo.page_events")
    before_e = project.query("SELECT count(*) FROM analytics.page_events")
    project.materialize(["pendo/page_events"], START.isoformat(), END.isoformat())
    project.materialize(["analytics/page_events"], START.isoformat(), END.isoformat())
    assert project.query("SELECT count(*), sum(num_events) FROM pendo.page_events") == before
    assert project.query("SELECT count(*) FROM analytics.page_events") == before_e


def test_per_partition_row_counts_are_reported(loaded):
    project, _ = loaded
    records = project.instance.fetch_materializations(
        dg.AssetKey(["pendo", "page_events"]), limit=100
    ).records
    by_day = {}
    for rec in records:
        mat = rec.asset_materialization
        by_day.setdefault(mat.partition, mat.metadata["dagster/partition_row_count"].value)
    truth = dict(project.query("SELECT day, count(*) FROM pendo.page_events GROUP BY 1"))
    assert {date.fromisoformat(k): v for k, v in by_day.items()} == truth


def test_new_field_in_a_later_partition_adds_a_column(make_project):
    sub = small_subscription(
        drift=(Drift("pageEvents", "customScore", date(2026, 10, 3), date(2026, 10, 3), "int"),)
    )
    with EmulatorServer(sub, integration_key=TEST_KEY).start() as server:
        project = make_project(server)
        project.materialize(["pendo/page_events"], "2026-10-01", "2026-10-02")
        cols = {
            c
            for (c,) in project.query(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'page_events'",
            )
        }
        assert "custom_score" not in cols
        project.materialize(["pendo/page_events"], "2026-10-03")
        rows = project.query(
            "SELECT day, count(custom_score), count(*) FROM pendo.page_events "
            "GROUP BY 1 ORDER BY 1",
        )
    assert rows[0][1] == 0 and rows[1][1] == 0
    assert rows[2][1] == rows[2][2] > 0
