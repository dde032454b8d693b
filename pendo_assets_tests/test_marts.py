"""Marts and rollups through Dagster against the emulator, tied out with the raw tables; the
first-time/returning split and its incremental first-seen table on a hand-made fixture."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from pendo_assets.catalog import ENTITIES, EVENTS, GUIDE_EVENT_TYPES
from pendo_assets.definitions import build_definitions
from pendo_assets.marts.first_seen import fold_and_recompute
from pendo_assets.marts.models import DAILY_MARTS, MARTS_BY_NAME, ROLLUPS
from pendo_assets.settings import load_settings
from pendo_assets.warehouse.store import Warehouse

from .conftest import Project, project_env

START, END = "2026-10-01", "2026-10-05"
DAILY_KEYS = [f"analytics/{m.name}" for m in DAILY_MARTS]
ROLLUP_KEYS = [f"analytics/{m.name}" for m in ROLLUPS]


@pytest.fixture(scope="module")
def marts(emulator, tmp_path_factory):
    """Entities; then raw, enriched and daily marts over five days in one run; then rollups."""
    mp = pytest.MonkeyPatch()
    env = project_env(emulator, tmp_path_factory.mktemp("marts"))
    for k, v in env.items():
        mp.setenv(k, v)
    instance = dg.DagsterInstance.ephemeral()
    project = Project(
        env, build_definitions(load_settings(env)), instance, env["PENDO_DUCKDB_PATH"]
    )
    keys = [f"pendo/{s.table}" for s in EVENTS] + [f"analytics/{s.table}" for s in EVENTS]
    results = {
        "entities": project.materialize([f"pendo/{s.table}" for s in ENTITIES]),
        "daily": project.materialize([*keys, *DAILY_KEYS], START, END),
        "rollups": project.materialize(ROLLUP_KEYS),
    }
    yield project, results
    instance.dispose()
    mp.undo()


def one(project, sql):
    return project.query(sql)[0][0]


RANGE = f"day BETWEEN DATE '{START}' AND DATE '{END}'"


def test_runs_succeed_and_every_error_check_passes(marts):
    _, results = marts
    for name, result in results.items():
        assert result.success, name
        evals = result.get_asset_check_evaluations()
        failed = [
            (e.asset_key.to_user_string(), e.check_name, e.description)
            for e in evals
            if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
        ]
        assert not failed, failed
    daily = results["daily"].get_asset_check_evaluations()
    ties = {e.asset_key.to_user_string() for e in daily if e.check_name == "ties_out_with_raw"}
    assert ties == set(DAILY_KEYS)
    recon = {e.asset_key.to_user_string() for e in daily if e.check_name == "reconciles_with_pendo"}
    assert recon == {f"pendo/{s.table}" for s in EVENTS}
    rolled = results["rollups"].get_asset_check_evaluations()
    assert {e.asset_key.to_user_string() for e in rolled if e.passed} >= set(ROLLUP_KEYS)


def test_every_mart_day_is_materialized(marts):
    project, _ = marts
    for key in DAILY_KEYS:
        parts = project.instance.get_materialized_partitions(dg.AssetKey.from_user_string(key))
        assert parts == {f"2026-10-0{i}" for i in range(1, 6)}, key


def test_feature_clicks_tie_out_with_raw(marts):
    project, _ = marts
    raw = one(project, f"SELECT sum(num_events) FROM pendo.feature_events WHERE {RANGE}")
    assert raw > 0
    assert one(project, "SELECT sum(sum_clicks) FROM analytics.feature_daily_metrics") == raw
    assert one(project, "SELECT sum(sum_clicks) FROM analytics.features") == raw
    assert one(project, "SELECT sum(sum_clicks) FROM analytics.visitor_features") == raw
    per_day = project.query(
        "SELECT day, round(sum(percent_of_daily_clicks), 6) FROM "
        "analytics.feature_daily_metrics GROUP BY 1",
    )
    assert len(per_day) == 5 and all(p == 100.0 for _, p in per_day)
    bad = one(
        project,
        "SELECT count(*) FROM analytics.feature_daily_metrics "
        "WHERE count_first_time_visitors + count_returning_visitors <> count_visitors",
    )
    assert bad == 0


def test_page_views_and_minutes_tie_out(marts):
    project, _ = marts
    raw = project.query(
        f"SELECT sum(num_events), sum(num_minutes) FROM pendo.page_events WHERE {RANGE}"
    )
    mart = project.query(
        "SELECT sum(sum_pageviews), sum(sum_minutes) FROM analytics.page_daily_metrics"
    )
    assert raw == mart and raw[0][0] > 0
    assert one(project, "SELECT sum(sum_pageviews) FROM analytics.pages") == raw[0][0]


def test_account_and_visitor_totals_tie_out(marts):
    project, _ = marts
    raw_all = project.query(
        f"SELECT sum(num_events), sum(num_minutes) FROM pendo.events WHERE {RANGE}"
    )
    raw_acct = project.query(
        f"SELECT sum(num_events), sum(num_minutes) FROM pendo.events "
        f"WHERE {RANGE} AND coalesce(account_id, '') <> ''",
    )
    assert (
        project.query(
            "SELECT sum(sum_events), sum(sum_minutes) FROM analytics.visitor_daily_metrics"
        )
        == raw_all
    )
    assert (
        project.query(
            "SELECT sum(sum_events), sum(sum_minutes) FROM analytics.account_daily_metrics"
        )
        == raw_acct
    )
    assert one(project, "SELECT sum(sum_events) FROM analytics.accounts") == raw_acct[0][0]
    assert one(project, "SELECT sum(sum_events) FROM analytics.visitors") == raw_all[0][0]
    # One row per active visitor and day; active visitors per account match distinct counts.
    assert one(project, "SELECT count(*) FROM analytics.visitor_daily_metrics") == one(
        project,
        f"""SELECT count(*) FROM (
              SELECT day, visitor_id FROM pendo.events WHERE {RANGE}
              UNION SELECT day, visitor_id FROM pendo.page_events WHERE {RANGE}
              UNION SELECT day, visitor_id FROM pendo.feature_events WHERE {RANGE})""",
    )
    assert one(
        project, "SELECT sum(count_active_visitors) FROM analytics.account_daily_metrics"
    ) == (
        one(
            project,
            f"""SELECT count(*) FROM (SELECT DISTINCT day, account_id, visitor_id
                FROM pendo.events WHERE {RANGE} AND coalesce(account_id, '') <> '')""",
        )
    )


def test_guide_counts_tie_out(marts):
    project, _ = marts
    by_type = dict(
        project.query(f"SELECT type, count(*) FROM pendo.guide_events WHERE {RANGE} GROUP BY 1")
    )
    assert by_type.get("guideSeen", 0) > 0
    got = project.query(
        """SELECT sum(count_guide_seen), sum(count_guide_advanced), sum(count_guide_dismissed),
                  sum(count_guide_snoozed), sum(count_guide_timeout), sum(count_poll_responses)
           FROM analytics.guide_daily_metrics""",
    )[0]
    polls = one(project, f"SELECT count(*) FROM pendo.poll_events WHERE {RANGE}")
    assert tuple(got) == (*(by_type.get(t, 0) for t in GUIDE_EVENT_TYPES), polls)
    assert (
        one(project, "SELECT sum(count_guide_seen) FROM analytics.guides") == by_type["guideSeen"]
    )


def test_rollups_have_one_row_per_entity(marts):
    project, _ = marts
    for mart in ROLLUPS:
        keys = ", ".join(mart.grain)
        dupes = one(
            project,
            f"SELECT count(*) FROM (SELECT {keys} FROM analytics.{mart.name} "
            f"GROUP BY ALL HAVING count(*) > 1)",
        )
        assert dupes == 0, mart.name
    # Every account of the entity table is present, active or not.
    assert one(project, "SELECT count(*) FROM pendo.accounts") <= one(
        project, "SELECT count(*) FROM analytics.accounts"
    )
    first, last = project.query(
        "SELECT min(first_active_day), max(last_active_day) FROM analytics.accounts"
    )[0]
    assert (first, last) == (date(2026, 10, 1), date(2026, 10, 5))


# -- first-time / returning, by hand -----------------------------------------------------------

FEATURE_MART = MARTS_BY_NAME["feature_daily_metrics"]
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def _fixture_warehouse(tmp_path) -> Warehouse:
    wh = Warehouse(str(tmp_path / "fixture.duckdb"))
    with wh.transaction() as con:
        con.execute("CREATE SCHEMA analytics")
        con.execute(
            """CREATE TABLE analytics.feature_events (
                 day DATE, visitor_id VARCHAR, account_id VARCHAR, feature_id VARCHAR,
                 num_events BIGINT, num_minutes BIGINT, feature_name VARCHAR,
                 page_name VARCHAR, group_name VARCHAR)"""
        )
    return wh


def _insert(wh: Warehouse, rows: list[tuple]) -> None:
    with wh.transaction() as con:
        con.executemany(
            "INSERT INTO analytics.feature_events VALUES (?, ?, ?, ?, ?, 1, 'F', 'P', 'G')",
            rows,
        )


def _materialize(wh: Warehouse, days: list[date], sql: str | None = None) -> dict[date, int]:
    """What the daily mart's write does: fold first-seen (+ fix other days), then write the
    run's days, in one transaction."""
    result = wh.replace_days_from_query(
        "analytics",
        FEATURE_MART.name,
        days,
        sql or FEATURE_MART.sql,
        lambda con: fold_and_recompute(con, FEATURE_MART, days),
    )
    return result.other_days


def _split(wh: Warehouse) -> dict[tuple[date, str], tuple[int, int, int, int]]:
    rows = wh.query(
        "SELECT day, feature_id, sum_clicks, count_visitors, count_first_time_visitors, "
        "count_returning_visitors FROM analytics.feature_daily_metrics"
    )
    return {(d, f): (c, v, ft, r) for d, f, c, v, ft, r in rows}


def test_first_time_and_returning_split_by_hand(tmp_path):
    wh = _fixture_warehouse(tmp_path)
    # (day, visitor, account, feature, clicks)
    _insert(
        wh,
        [
            (D1, "v1", "a1", "f1", 3),
            (D1, "v2", "a1", "f1", 1),
            (D1, "v1", "a1", "f2", 2),
            (D2, "v1", "a1", "f1", 4),  # v1 returns to f1
            (D2, "v3", "a2", "f1", 1),  # v3 new on f1
            (D2, "v2", "a1", "f2", 5),  # v2 new on f2 (old on f1)
            (D2, "v2", "a1", "f2", 1),  # second row of the same pair (another server/IP)
        ],
    )
    assert _materialize(wh, [D1, D2]) == {}
    # By hand. D1 f1: v1, v2 both first-time; D1 f2: v1 first-time.
    # D2 f1: v1 returning, v3 first-time; D2 f2: v2 first-time (first time on f2).
    assert _split(wh) == {
        (D1, "f1"): (4, 2, 2, 0),
        (D1, "f2"): (2, 1, 1, 0),
        (D2, "f1"): (5, 2, 1, 1),
        (D2, "f2"): (6, 1, 1, 0),
    }
    assert sorted(wh.query("SELECT * FROM analytics.feature_first_seen")) == [
        ("v1", "f1", D1),
        ("v1", "f2", D1),
        ("v2", "f1", D1),
        ("v2", "f2", D2),
        ("v3", "f1", D2),
    ]


def test_an_earlier_day_loaded_later_recomputes_the_days_it_changes(tmp_path):
    wh = _fixture_warehouse(tmp_path)
    _insert(wh, [(D3, "v1", "a1", "f1", 1), (D3, "v2", "a1", "f1", 1), (D2, "v9", "a9", "f9", 1)])
    _materialize(wh, [D2])
    _materialize(wh, [D3])
    assert _split(wh)[(D3, "f1")] == (2, 2, 2, 0)  # both first-time: nothing earlier loaded
    # Day 1 arrives late: v1 clicked f1 then, so on day 3 v1 is returning.
    _insert(wh, [(D1, "v1", "a1", "f1", 7)])
    redo = _materialize(wh, [D1])
    assert redo == {D3: 1}
    split = _split(wh)
    assert split[(D1, "f1")] == (7, 1, 1, 0)
    assert split[(D3, "f1")] == (2, 2, 1, 1)
    assert split[(D2, "f9")] == (1, 1, 1, 0)  # untouched
    # Re-running changes nothing, and a day that loses a pair moves its first day back.
    assert _materialize(wh, [D1]) == {}
    with wh.transaction() as con:
        con.execute("DELETE FROM analytics.feature_events WHERE day = ?", [D1])
    assert _materialize(wh, [D1]) == {D3: 1}
    assert _split(wh)[(D3, "f1")] == (2, 2, 2, 0)
    assert ("v1", "f1", D3) in wh.query("SELECT * FROM analytics.feature_first_seen")


def test_a_day_loaded_without_its_mart_run_is_still_folded(tmp_path):
    wh = _fixture_warehouse(tmp_path)
    _insert(wh, [(D1, "v1", "a1", "f1", 1), (D2, "v1", "a1", "f1", 1)])
    # Only day 2's mart runs; day 1 is loaded, so v1 is returning on day 2.
    _materialize(wh, [D2])
    assert _split(wh)[(D2, "f1")] == (1, 1, 0, 1)


def test_folding_in_any_order_with_reloads_that_lose_rows_matches_a_full_recount(tmp_path):
    # The first-seen table after every fold must equal min(day) per pair over what is loaded,
    # whatever order days arrive in and when a re-loaded day loses pairs (the `rest` step).
    import random

    from pendo_assets.marts.first_seen import fold

    rng = random.Random(7)
    wh = _fixture_warehouse(tmp_path)
    days = [D1 + timedelta(days=i) for i in range(8)]
    rows = {
        d: [(d, f"v{rng.randrange(6)}", "a", f"f{rng.randrange(4)}", 1) for _ in range(12)]
        for d in days
    }
    fs = FEATURE_MART.first_seen
    truth = (
        "SELECT visitor_id, feature_id, min(day) FROM analytics.feature_events GROUP BY ALL "
        "ORDER BY ALL"
    )
    stored = f"SELECT * FROM analytics.{fs.table} ORDER BY ALL"
    order = days[:]
    rng.shuffle(order)
    for d in order:
        _insert(wh, rows[d])
        with wh.transaction() as con:
            fold(con, fs, [d])
        assert wh.query(stored) == wh.query(truth)
    for d in (days[1], days[4]):  # re-loaded with half its rows: some pairs move later
        with wh.transaction() as con:
            con.execute("DELETE FROM analytics.feature_events WHERE day = ?", [d])
        _insert(wh, rows[d][:6])
        with wh.transaction() as con:
            moved = fold(con, fs, [d])
        assert wh.query(stored) == wh.query(truth)
        assert all(day != d for day in moved)
    assert any(
        n
        for n in wh.query(
            f"SELECT count(*) FROM analytics.{fs.table} WHERE first_day > '{days[1]}'"
        )[0]
    )


def test_a_failing_mart_write_leaves_first_seen_and_the_mart_as_they_were(tmp_path):
    wh = _fixture_warehouse(tmp_path)
    _insert(wh, [(D2, "v1", "a1", "f1", 2), (D3, "v1", "a1", "f1", 1)])
    _materialize(wh, [D2, D3])
    before = (_split(wh), wh.query("SELECT * FROM analytics.feature_first_seen ORDER BY ALL"))
    _insert(wh, [(D1, "v1", "a1", "f1", 1)])  # an earlier day: folding it moves v1/f1 to D1
    with pytest.raises(duckdb.Error):
        _materialize(wh, [D1], sql="SELECT * FROM no_such_table WHERE day BETWEEN $1 AND $2")
    after = (_split(wh), wh.query("SELECT * FROM analytics.feature_first_seen ORDER BY ALL"))
    assert after == before  # neither the fold nor the recomputed D2 survived the failure
    assert _materialize(wh, [D1]) == {D2: 1}  # and the next run does it all


def test_a_table_computed_before_its_upstream_fails_naming_what_to_materialize(
    emulator, make_project
):
    project = make_project(emulator)
    enriched = project.materialize(["analytics/page_events"], START, raise_on_error=False)
    mart = project.materialize(["analytics/page_daily_metrics"], START, raise_on_error=False)
    for result, who, needs in (
        (enriched, "analytics/page_events", "pendo/page_events"),
        (mart, "analytics/page_daily_metrics", "analytics/page_events"),
    ):
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.error.message
        assert f"{who} needs {needs}" in message, message
        assert "materialize those assets, then this one" in message
    assert not project.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'analytics'"
    )[0][0]
