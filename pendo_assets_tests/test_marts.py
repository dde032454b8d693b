"""Marts and rollups through Dagster against the emulator, tied out with the raw tables; the
first-time/returning split and its incremental first-seen table on a hand-made fixture."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from pendo_assets.catalog import ENTITIES, EVENTS, GUIDE_EVENT_TYPES, guide_count_column
from pendo_assets.definitions import build_definitions
from pendo_assets.emulator import EmulatorServer
from pendo_assets.marts.first_seen import fold, fold_and_recompute
from pendo_assets.marts.models import DAILY_MARTS, MARTS_BY_NAME, ROLLUPS
from pendo_assets.settings import load_settings
from pendo_assets.warehouse.store import Warehouse

from .conftest import TEST_KEY, TIMEZONE, Project, project_env, small_subscription

# Left out of `make test-quick`: every mart over an emulated month, and folds in every order.
pytestmark = pytest.mark.slow

GUIDE_TABLES = ("guide_events", "poll_events")

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


def test_feature_clicks_and_minutes_tie_out_with_raw(marts):
    project, _ = marts
    raw, minutes, records = project.query(
        f"SELECT sum(num_events), sum(num_minutes), count(*) FROM pendo.feature_events "
        f"WHERE {RANGE}"
    )[0]
    assert raw > 0 and minutes > 0
    assert project.query(
        "SELECT sum(sum_clicks), sum(sum_minutes), sum(count_click_events) "
        "FROM analytics.feature_daily_metrics"
    ) == [(raw, minutes, records)]
    assert project.query(
        "SELECT sum(sum_clicks), sum(sum_minutes), sum(count_click_events) FROM analytics.features"
    ) == [(raw, minutes, records)]
    assert one(project, "SELECT sum(sum_clicks) FROM analytics.features") == raw
    assert one(project, "SELECT sum(sum_clicks) FROM analytics.visitor_features") == raw
    per_day = project.query(
        "SELECT day, round(sum(percent_of_daily_clicks), 6) FROM "
        "analytics.feature_daily_metrics GROUP BY 1",
    )
    assert len(per_day) == 5 and all(p == 100.0 for _, p in per_day)
    for mart in ("feature", "page", "guide"):
        bad = one(
            project,
            f"SELECT count(*) FROM analytics.{mart}_daily_metrics "
            "WHERE count_first_time_visitors + count_returning_visitors <> count_visitors "
            "OR count_first_time_accounts + count_returning_accounts <> count_accounts "
            "OR count_returning_visitors < 0 OR count_returning_accounts < 0",
        )
        assert bad == 0, mart
    # Accounts first seen over the range: each (account, feature) pair is first-time once.
    assert one(
        project, "SELECT sum(count_first_time_accounts) FROM analytics.feature_daily_metrics"
    ) == one(
        project,
        f"SELECT count(DISTINCT (account_id, feature_id)) FROM pendo.feature_events "
        f"WHERE {RANGE} AND coalesce(account_id, '') <> ''",
    )


def test_page_views_and_minutes_tie_out(marts):
    project, _ = marts
    raw = project.query(
        f"SELECT sum(num_events), sum(num_minutes), count(*) FROM pendo.page_events WHERE {RANGE}"
    )
    mart = project.query(
        "SELECT sum(sum_pageviews), sum(sum_minutes), sum(count_pageview_events) "
        "FROM analytics.page_daily_metrics"
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
    # No activity lost: what has no account is the account_id '' row of each day.
    assert (
        project.query(
            "SELECT sum(sum_events), sum(sum_minutes) FROM analytics.account_daily_metrics"
        )
        == raw_all
    )
    assert (
        project.query(
            "SELECT sum(sum_events), sum(sum_minutes) FROM analytics.account_daily_metrics "
            "WHERE account_id <> ''"
        )
        == raw_acct
    )
    assert raw_all != raw_acct
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
            f"""SELECT count(*) FROM (SELECT DISTINCT day, coalesce(account_id, ''), visitor_id
                FROM pendo.events WHERE {RANGE})""",
        )
    )


def test_guide_counts_tie_out_for_every_type(marts):
    project, _ = marts
    by_type = dict(
        project.query(f"SELECT type, count(*) FROM pendo.guide_events WHERE {RANGE} GROUP BY 1")
    )
    # The emulator sends every listed type, guideActivity included.
    assert set(by_type) == set(GUIDE_EVENT_TYPES)
    cols = [guide_count_column(t) for t in GUIDE_EVENT_TYPES]
    sums = ", ".join(f"sum({c})" for c in [*cols, "count_guide_other", "count_guide_events"])
    polls = one(project, f"SELECT count(*) FROM pendo.poll_events WHERE {RANGE}")
    want = (*(by_type[t] for t in GUIDE_EVENT_TYPES), 0, sum(by_type.values()))
    for table in ("guide_daily_metrics", "guides"):
        got = project.query(f"SELECT {sums}, sum(count_poll_responses) FROM analytics.{table}")
        assert got == [(*want, polls)], table
    # Distinct visitors per type, named as dbt_pendo's pivot names them.
    per_type = project.query(
        f"SELECT day, guide_id, type, count(DISTINCT visitor_id) FROM pendo.guide_events "
        f"WHERE {RANGE} GROUP BY ALL"
    )
    cols = ", ".join(f"count_visitors_{t}" for t in GUIDE_EVENT_TYPES)
    mart = {
        (d, g): dict(zip(GUIDE_EVENT_TYPES, rest, strict=True))
        for d, g, *rest in project.query(
            f"SELECT day, guide_id, {cols} FROM analytics.guide_daily_metrics"
        )
    }
    assert per_type and all(mart[(d, g)][t] == n for d, g, t, n in per_type)


def test_tag_days_are_a_date_spine_from_each_tags_creation(marts):
    project, _ = marts
    days = f"range(DATE '{START}', DATE '{END}' + 1, INTERVAL 1 DAY) d(day)"
    for tag, activity in (
        ("page", "count_pageview_events"),
        ("feature", "count_click_events"),
        ("guide", "count_guide_events + count_poll_responses"),
    ):
        created = f"timezone('{TIMEZONE}', t.created_at)::DATE"
        want = project.query(
            f"SELECT d.day::DATE, t.id FROM pendo.{tag}s t, {days} WHERE {created} <= d.day "
            f"UNION SELECT day, {tag}_id FROM analytics.{tag}_events WHERE {RANGE} ORDER BY ALL"
        )
        got = project.query(f"SELECT day, {tag}_id FROM analytics.{tag}_daily_metrics ORDER BY ALL")
        assert got == want, tag
        zeros = one(
            project, f"SELECT count(*) FROM analytics.{tag}_daily_metrics WHERE {activity} = 0"
        )
        active = one(
            project, f"SELECT count(*) FROM analytics.{tag}_daily_metrics WHERE {activity} > 0"
        )
        assert zeros > 0 and active > 0, tag
        # The rollup's active days are the days with activity, not the spine's.
        assert one(project, f"SELECT sum(count_active_days) FROM analytics.{tag}s") == active, tag


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
TZ = "America/New_York"
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


_AGGREGATED = (
    "day DATE, visitor_id VARCHAR, account_id VARCHAR, num_events BIGINT, num_minutes BIGINT, "
    "account_name VARCHAR"
)
_FIXTURE_TABLES = {
    "analytics.events": _AGGREGATED,
    "analytics.page_events": f"{_AGGREGATED}, page_id VARCHAR, page_name VARCHAR, "
    "group_name VARCHAR",
    "analytics.feature_events": f"{_AGGREGATED}, feature_id VARCHAR, feature_name VARCHAR, "
    "page_id VARCHAR, page_name VARCHAR, group_name VARCHAR",
    "analytics.guide_events": "day DATE, visitor_id VARCHAR, account_id VARCHAR, "
    "guide_id VARCHAR, guide_name VARCHAR, guide_step_id VARCHAR, type VARCHAR",
    "analytics.poll_events": "day DATE, visitor_id VARCHAR, account_id VARCHAR, "
    "guide_id VARCHAR, guide_name VARCHAR",
    "pendo.pages": "id VARCHAR, name VARCHAR, group_name VARCHAR, created_at TIMESTAMPTZ",
    "pendo.features": "id VARCHAR, name VARCHAR, group_name VARCHAR, page_id VARCHAR, "
    "created_at TIMESTAMPTZ",
    "pendo.guides": "id VARCHAR, name VARCHAR, created_at TIMESTAMPTZ",
    "pendo.guide_steps": "guide_id VARCHAR, step_id VARCHAR, step_number BIGINT, name VARCHAR",
}


def _fixture_warehouse(tmp_path) -> Warehouse:
    """Empty enriched and entity tables with the columns the daily marts read."""
    wh = Warehouse(str(tmp_path / "fixture.duckdb"))
    with wh.transaction() as con:
        con.execute("CREATE SCHEMA analytics")
        con.execute("CREATE SCHEMA pendo")
        for table, cols in _FIXTURE_TABLES.items():
            con.execute(f"CREATE TABLE {table} ({cols})")
    return wh


def _insert(wh: Warehouse, rows: list[tuple]) -> None:
    """(day, visitor, account, feature, clicks) feature-event rows."""
    with wh.transaction() as con:
        con.executemany(
            "INSERT INTO analytics.feature_events BY NAME SELECT ?::DATE AS day, "
            "? AS visitor_id, ? AS account_id, ? AS feature_id, ? AS num_events, "
            "1 AS num_minutes, 'F' AS feature_name, 'P' AS page_name, 'G' AS group_name",
            rows,
        )


def _fill(wh: Warehouse, table: str, columns: str, rows: list[tuple]) -> None:
    with wh.transaction() as con:
        marks = ", ".join("?" for _ in columns.split(","))
        con.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)


def _materialize(
    wh: Warehouse, days: list[date], sql: str | None = None, mart=None
) -> dict[date, int]:
    """What the daily mart's write does: fold first-seen (+ fix other days), then write the
    run's days, in one transaction."""
    mart = mart or FEATURE_MART
    result = wh.replace_days_from_query(
        "analytics",
        mart.name,
        days,
        sql or mart.sql,
        (lambda con: fold_and_recompute(con, mart, days, TZ)) if mart.first_seen else None,
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
    assert redo == {D3: 2}  # (v1, f1) and (a1, f1) both move to D1
    split = _split(wh)
    assert split[(D1, "f1")] == (7, 1, 1, 0)
    assert split[(D3, "f1")] == (2, 2, 1, 1)
    assert split[(D2, "f9")] == (1, 1, 1, 0)  # untouched
    # Account a1 is returning on day 3 too (it was first-time there before day 1 came).
    assert wh.query(
        "SELECT count_first_time_accounts, count_returning_accounts "
        "FROM analytics.feature_daily_metrics WHERE day = ? AND feature_id = 'f1'",
        [D3],
    ) == [(0, 1)]
    # Re-running changes nothing, and a day that loses a pair moves its first day back.
    assert _materialize(wh, [D1]) == {}
    with wh.transaction() as con:
        con.execute("DELETE FROM analytics.feature_events WHERE day = ?", [D1])
    assert _materialize(wh, [D1]) == {D3: 2}
    assert _split(wh)[(D3, "f1")] == (2, 2, 2, 0)
    assert ("v1", "f1", D3) in wh.query("SELECT * FROM analytics.feature_first_seen")


def test_a_day_loaded_without_its_mart_run_is_still_folded(tmp_path):
    wh = _fixture_warehouse(tmp_path)
    _insert(wh, [(D1, "v1", "a1", "f1", 1), (D2, "v1", "a1", "f1", 1)])
    # Only day 2's mart runs; day 1 is loaded, so v1 is returning on day 2.
    _materialize(wh, [D2])
    assert _split(wh)[(D2, "f1")] == (1, 1, 0, 1)


def _fold_matches_recount(wh, fs, truth, rows, load, unload, reloads, rng) -> None:
    """Load and fold each day of ``rows`` in a random order, then re-load each of ``reloads``
    (day, rows kept) with fewer rows: after every fold the first-seen table equals ``truth``,
    and a re-loaded day never reports itself as another day to recompute."""
    stored = f"SELECT * FROM analytics.{fs.table} ORDER BY ALL"
    order = list(rows)
    rng.shuffle(order)
    for d in order:
        load(rows[d])
        with wh.transaction() as con:
            fold(con, fs, [d])
        assert wh.query(stored) == wh.query(truth)
    for d, keep in reloads:
        unload(d)
        load(rows[d][:keep])
        with wh.transaction() as con:
            moved = fold(con, fs, [d])
        assert wh.query(stored) == wh.query(truth)
        assert all(day != d for day in moved)


@pytest.mark.parametrize("who", ["visitor_id", "account_id"])
@pytest.mark.parametrize("seed", [7, 11, 23])
def test_folding_in_any_order_with_reloads_that_lose_rows_matches_a_full_recount(
    tmp_path, who, seed
):
    # The first-seen table after every fold must equal min(day) per pair over what is loaded,
    # whatever order days arrive in and when a re-loaded day loses pairs (the `rest` step);
    # for accounts, rows without an account are no pair at all.
    import random

    rng = random.Random(seed)
    wh = _fixture_warehouse(tmp_path)
    days = [D1 + timedelta(days=i) for i in range(8)]
    rows = {
        d: [
            (
                d,
                f"v{rng.randrange(6)}",
                rng.choice(["a0", "a1", "a2", ""]),
                f"f{rng.randrange(4)}",
                1,
            )
            for _ in range(12)
        ]
        for d in days
    }
    (fs,) = (f for f in FEATURE_MART.first_seen if f.who == who)
    truth = (
        f"SELECT {who}, feature_id, min(day) FROM analytics.feature_events "
        f"WHERE coalesce({who}, '') <> '' GROUP BY ALL ORDER BY ALL"
    )

    def unload(d):
        with wh.transaction() as con:
            con.execute("DELETE FROM analytics.feature_events WHERE day = ?", [d])

    # Days 2 and 5 re-loaded with half their rows: some pairs move later.
    _fold_matches_recount(
        wh, fs, truth, rows, lambda r: _insert(wh, r), unload, [(days[1], 6), (days[4], 6)], rng
    )
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
    assert _materialize(wh, [D1]) == {D2: 2}  # the next run does it all (visitor + account pair)


def test_a_guide_event_type_pendo_adds_is_counted_and_named_by_a_warning(make_project):
    # The emulator told to send a type we have no column for: the run succeeds, every
    # blocking tie-out passes (the type is in count_guide_other), and the warning names it.
    sub = small_subscription(unknown_guide_event_type="guideFlown")
    server = EmulatorServer(sub, integration_key=TEST_KEY).start()
    try:
        project = make_project(server)
        project.materialize([f"pendo/{s.table}" for s in ENTITIES])
        keys = [f"{layer}/{t}" for layer in ("pendo", "analytics") for t in GUIDE_TABLES]
        result = project.materialize(
            [*keys, "analytics/guide_daily_metrics"], START, END, raise_on_error=False
        )
    finally:
        server.stop()
    assert result.success
    evals = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "analytics/guide_daily_metrics"
    }
    assert evals["ties_out_with_raw"].passed
    warning = evals["guide_event_types_known"]
    flown = one(
        project, f"SELECT count(*) FROM pendo.guide_events WHERE type = 'guideFlown' AND {RANGE}"
    )
    assert flown > 0
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert f"guideFlown ({flown})" in warning.description
    assert one(project, "SELECT sum(count_guide_other) FROM analytics.guide_daily_metrics") == flown
    assert one(
        project, "SELECT sum(count_visitors_other) FROM analytics.guide_daily_metrics"
    ) == one(
        project,
        f"SELECT count(DISTINCT (day, guide_id, visitor_id)) FROM pendo.guide_events "
        f"WHERE type = 'guideFlown' AND {RANGE}",
    )


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


# -- the new mart columns, exact on a hand-made fixture; and none of dbt_pendo's bugs --------

PAGE_MART = MARTS_BY_NAME["page_daily_metrics"]
GUIDE_MART = MARTS_BY_NAME["guide_daily_metrics"]
ACCOUNT_MART = MARTS_BY_NAME["account_daily_metrics"]
UTC_NOON = "12:00:00+00"


def _page_fixture(tmp_path) -> Warehouse:
    """Pages p1 (created day 1), p2 (created 03:00 UTC on day 2, still day 1 in New York) and
    p3 (created day 3, viewed on day 2: tagging is retroactive); px was deleted since."""
    wh = _fixture_warehouse(tmp_path)
    _fill(
        wh,
        "pendo.pages",
        "id, name, group_name, created_at",
        [
            ("p1", "Home", "G", f"{D1} {UTC_NOON}"),
            ("p2", "Settings", "G", f"{D2} 03:00:00+00"),
            ("p3", "Later", "G", f"{D3} {UTC_NOON}"),
        ],
    )
    _fill(
        wh,
        "analytics.page_events",
        "day, visitor_id, account_id, page_id, num_events, num_minutes, page_name",
        [
            (D1, "v1", "a1", "p1", 4, 2, "Home"),
            (D1, "v2", "a1", "p1", 2, 1, "Home"),
            (D1, "v3", "", "p1", 1, 1, "Home"),  # anonymous: a visitor, no account
            (D2, "v1", "a1", "p1", 3, 3, "Home"),
            (D2, "v4", "a2", "p1", 1, 0, "Home"),
            (D2, "v1", "a1", "p2", 5, 5, "Settings"),
            (D2, "v1", "a1", "p2", 1, 1, "Settings"),  # a second row (another server or IP)
            (D2, "v5", "a2", "px", 2, 2, "Gone"),
            (D2, "v2", "a1", "p3", 1, 1, "Later"),
        ],
    )
    _materialize(wh, [D1, D2], mart=PAGE_MART)
    return wh


PAGE_COLUMNS = (
    "sum_pageviews, sum_minutes, count_pageview_events, count_visitors, count_accounts, "
    "count_first_time_visitors, count_returning_visitors, count_first_time_accounts, "
    "count_returning_accounts, avg_daily_minutes_per_visitor, avg_daily_pageviews_per_visitor, "
    "percent_of_daily_pageviews, percent_of_daily_visitors, percent_of_daily_accounts, "
    "percent_of_daily_page_visitors, percent_of_daily_page_accounts"
)


def _rows(wh: Warehouse, mart, columns: str, id_column: str) -> dict:
    rows = wh.query(f"SELECT day, {id_column}, {columns} FROM {mart.table} ORDER BY ALL")
    return {
        (d, i): tuple(round(v, 6) if isinstance(v, float) else v for v in rest)
        for d, i, *rest in rows
    }


def test_page_days_exact_on_a_hand_made_fixture(tmp_path):
    wh = _page_fixture(tmp_path)
    assert _rows(wh, PAGE_MART, PAGE_COLUMNS, "page_id") == {
        # Day 1: v1, v2 (account a1) and anonymous v3 on p1, all first-time; p2 exists (its
        # creation day in New York), with zeros; p3 does not exist yet.
        (D1, "p1"): (
            7,
            4,
            3,
            3,
            1,
            3,
            0,
            1,
            0,
            round(4 / 3, 6),
            round(7 / 3, 6),
            100,
            100,
            100,
            100,
            100,
        ),
        (D1, "p2"): (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        # Day 2: 13 views by v1, v4, v5, v2 (4 visitors) of a1, a2 (2 accounts). On p1, v1 and
        # a1 return, v4 and a2 are new. The dbt_pendo-style shares divide by the sum over
        # pages (5 visitors, 5 accounts); ours by the day's distinct visitors and accounts.
        (D2, "p1"): (4, 3, 2, 2, 2, 1, 1, 1, 1, 1.5, 2, round(400 / 13, 6), 50, 100, 40, 40),
        (D2, "p2"): (6, 6, 2, 1, 1, 1, 0, 1, 0, 6, 6, round(600 / 13, 6), 25, 50, 20, 20),
        (D2, "p3"): (1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, round(100 / 13, 6), 25, 50, 20, 20),
        (D2, "px"): (2, 2, 1, 1, 1, 1, 0, 1, 0, 2, 2, round(200 / 13, 6), 25, 50, 20, 20),
    }
    names = dict(wh.query("SELECT page_id, page_name FROM analytics.page_daily_metrics"))
    assert names == {"p1": "Home", "p2": "Settings", "p3": "Later", "px": "Gone"}


def test_feature_days_sum_minutes_and_split_accounts_on_a_hand_made_fixture(tmp_path):
    wh = _fixture_warehouse(tmp_path)
    _fill(
        wh,
        "pendo.features",
        "id, name, group_name, page_id, created_at",
        [
            ("f1", "Save", "G", "p1", f"{D1} {UTC_NOON}"),
            ("f2", "Undo", "G", "p1", f"{D2} {UTC_NOON}"),
        ],
    )
    _fill(wh, "pendo.pages", "id, name, created_at", [("p1", "Home", f"{D1} {UTC_NOON}")])
    _fill(
        wh,
        "analytics.feature_events",
        "day, visitor_id, account_id, feature_id, num_events, num_minutes",
        [
            (D1, "v1", "a1", "f1", 3, 2),
            (D1, "v2", "a1", "f1", 1, 1),
            (D2, "v2", "a1", "f1", 2, 4),
            (D2, "v3", "a2", "f1", 2, 0),
            (D2, "v9", None, "f1", 1, 1),  # no account (NULL, as Pendo may send it)
        ],
    )
    _materialize(wh, [D1, D2])
    cols = (
        "sum_clicks, sum_minutes, count_click_events, count_visitors, count_accounts, "
        "count_first_time_visitors, count_returning_visitors, count_first_time_accounts, "
        "count_returning_accounts, avg_daily_minutes_per_visitor, avg_daily_clicks_per_visitor, "
        "percent_of_daily_visitors, percent_of_daily_accounts, page_id, page_name"
    )
    assert _rows(wh, FEATURE_MART, cols, "feature_id") == {
        (D1, "f1"): (4, 3, 2, 2, 1, 2, 0, 1, 0, 1.5, 2, 100, 100, "p1", "Home"),
        (D2, "f1"): (
            5,
            5,
            3,
            3,
            2,
            2,
            1,
            1,
            1,
            round(5 / 3, 6),
            round(5 / 3, 6),
            100,
            100,
            "p1",
            "Home",
        ),
        (D2, "f2"): (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "p1", "Home"),  # spine: created day 2
    }


def _guide_fixture(tmp_path) -> Warehouse:
    wh = _fixture_warehouse(tmp_path)
    _fill(
        wh,
        "pendo.guides",
        "id, name, created_at",
        [("g1", "Tour", f"{D1} {UTC_NOON}"), ("g2", "Quiet", f"{D1} {UTC_NOON}")],
    )
    _fill(
        wh,
        "pendo.guide_steps",
        "guide_id, step_id, step_number, name",
        [("g1", "s1", 1, "One"), ("g1", "s2", 2, "Two")],
    )
    _fill(
        wh,
        "analytics.guide_events",
        "day, visitor_id, account_id, guide_id, guide_name, guide_step_id, type",
        [
            (D1, "v1", "a1", "g1", "Tour", "s1", "guideSeen"),
            (D1, "v1", "a1", "g1", "Tour", "s1", "guideActivity"),
            (D1, "v1", "a1", "g1", "Tour", "s1", "guideFlown"),  # a type Pendo adds one day
            (D1, "v2", "a1", "g1", "Tour", "s1", "guideSeen"),
            (D1, "v2", "a1", "g1", "Tour", "s2", "guideSeen"),
            (D1, "v2", "a1", "g1", "Tour", "s2", "guideDismissed"),
            (D1, "v3", "", "g1", "Tour", "s1", "guideSeen"),  # anonymous
            (D2, "v1", "a1", "g1", "Tour", "s1", "guideSeen"),
            (D2, "v5", "a1", "g1", "Tour", "s1", "guideSeen"),
        ],
    )
    # v4 (account a2) only answered the guide's poll on day 1.
    _fill(
        wh,
        "analytics.poll_events",
        "day, visitor_id, account_id, guide_id, guide_name",
        [(D1, "v4", "a2", "g1", "Tour")],
    )
    _materialize(wh, [D1, D2], mart=GUIDE_MART)
    return wh


def test_guide_days_exact_on_a_hand_made_fixture(tmp_path):
    wh = _guide_fixture(tmp_path)
    cols = (
        "count_visitors, count_accounts, count_guide_seen, count_guide_activity, "
        "count_guide_dismissed, count_guide_other, count_guide_events, count_poll_responses, "
        "count_first_time_visitors, count_returning_visitors, count_first_time_accounts, "
        "count_returning_accounts, count_visitors_guideSeen, count_visitors_guideActivity, "
        "count_visitors_other, count_visitors_first_step, count_visitors_last_step, "
        "percent_of_daily_visitors, percent_of_daily_accounts"
    )
    assert _rows(wh, GUIDE_MART, cols, "guide_id") == {
        (D1, "g1"): (4, 2, 4, 1, 1, 1, 7, 1, 4, 0, 2, 0, 3, 1, 1, 3, 1, 100, 100),
        (D1, "g2"): (0,) * 17 + (0, 0),  # created day 1, no events: the spine's zeros
        # Day 2: v1 returns, v5 is new; their account a1 is returning, not first-time.
        (D2, "g1"): (2, 1, 2, 0, 0, 0, 2, 0, 1, 1, 0, 1, 2, 0, 0, 2, 0, 100, 100),
        (D2, "g2"): (0,) * 17 + (0, 0),
    }


def test_unknown_guide_types_are_counted_in_other_and_tie_out(tmp_path):
    wh = _guide_fixture(tmp_path)
    by_type = dict(wh.query("SELECT type, count(*) FROM analytics.guide_events GROUP BY 1"))
    cols = [guide_count_column(t) for t in GUIDE_EVENT_TYPES]
    got = wh.query(
        f"SELECT {', '.join(f'sum({c})' for c in cols)}, sum(count_guide_other), "
        "sum(count_guide_events) FROM analytics.guide_daily_metrics"
    )[0]
    assert got == (*(by_type.get(t, 0) for t in GUIDE_EVENT_TYPES), 1, sum(by_type.values()))


def test_no_dbt_pendo_bug_guide_first_time_accounts_count_accounts_not_visitors(tmp_path):
    # dbt_pendo counts `count(distinct case when ... then visitor_id end)` for accounts: on day
    # 1 that is v1, v2 and anonymous v3 (3; v4 answered a poll only). Accounts are a1 and a2.
    wh = _guide_fixture(tmp_path)
    assert wh.query(
        "SELECT count_first_time_accounts FROM analytics.guide_daily_metrics "
        "WHERE day = ? AND guide_id = 'g1'",
        [D1],
    ) == [(2,)]
    assert sorted(wh.query("SELECT account_id FROM analytics.guide_account_first_seen")) == [
        ("a1",),
        ("a2",),
    ]


def test_no_dbt_pendo_bug_spine_cut_at_one_of_two_column_names(tmp_path):
    # dbt_pendo ends a page's spine at `{{ ['page.valid_through', 'page.last_pageview_on'] |
    # max }}`: Jinja compares the two *names* and always picks valid_through, and its spine
    # starts at creation, so views after the page's last version or before its creation
    # vanish (and deleted pages with them). Every view here is in a row, wherever it falls.
    wh = _page_fixture(tmp_path)
    raw = wh.query(
        "SELECT day, page_id, sum(num_events) FROM analytics.page_events GROUP BY ALL ORDER BY ALL"
    )
    mart = wh.query(
        "SELECT day, page_id, sum_pageviews FROM analytics.page_daily_metrics "
        "WHERE count_pageview_events > 0 ORDER BY ALL"
    )
    assert mart == raw
    assert (D2, "p3", 1) in mart  # before p3's creation (day 3)
    assert (D2, "px", 2) in mart  # px is deleted
    # The spine itself runs to the last materialized day whatever the page's history says.
    assert wh.query(
        "SELECT count(*) FROM analytics.page_daily_metrics WHERE page_id = 'p2' AND day = ?",
        [D1],
    ) == [(1,)]


def _account_fixture(tmp_path) -> Warehouse:
    wh = _fixture_warehouse(tmp_path)
    _fill(
        wh,
        "analytics.events",
        "day, visitor_id, account_id, num_events, num_minutes, account_name",
        [
            (D1, "v1", "a1", 10, 4, "Acme"),
            (D1, "v2", "a1", 6, 2, "Acme"),
            (D1, "v3", "", 5, 3, None),  # anonymous
            (D1, "v9", None, 1, 1, None),  # no account at all
        ],
    )
    _fill(
        wh,
        "analytics.page_events",
        "day, visitor_id, account_id, page_id, num_events, num_minutes",
        [(D1, "v1", "a1", "p1", 3, 1), (D1, "v2", "a1", "p2", 1, 1), (D1, "v3", "", "p1", 2, 1)],
    )
    _fill(
        wh,
        "analytics.feature_events",
        "day, visitor_id, account_id, feature_id, num_events, num_minutes",
        [(D1, "v1", "a1", "f1", 2, 1), (D1, "v1", "a1", "f2", 1, 0)],
    )
    _materialize(wh, [D1], mart=ACCOUNT_MART)
    return wh


def test_account_days_exact_on_a_hand_made_fixture(tmp_path):
    wh = _account_fixture(tmp_path)
    cols = (
        "account_name, count_active_visitors, sum_events, sum_minutes, count_event_records, "
        "count_pages_viewed, count_features_clicked, count_page_viewing_visitors, "
        "count_feature_clicking_visitors, avg_daily_minutes_per_visitor, "
        "avg_daily_events_per_visitor, percent_of_daily_visitors"
    )
    assert _rows(wh, ACCOUNT_MART, cols, "account_id") == {
        (D1, "a1"): ("Acme", 2, 16, 6, 2, 2, 2, 2, 1, 3, 8, 50),
        (D1, ""): (None, 2, 6, 4, 2, 1, 0, 1, 0, 2, 3, 50),
    }


def test_no_dbt_pendo_bug_feature_clicking_visitors_filled_from_page_visitors(tmp_path):
    # dbt_pendo fills count_feature_clicking_visitors from the page metrics: 2 here (v1, v2
    # viewed pages), where only v1 clicked a feature.
    wh = _account_fixture(tmp_path)
    assert wh.query(
        "SELECT count_page_viewing_visitors, count_feature_clicking_visitors "
        "FROM analytics.account_daily_metrics WHERE account_id = 'a1'"
    ) == [(2, 1)]


def test_no_dbt_pendo_bug_anonymous_activity_lost_from_account_days(tmp_path):
    # dbt_pendo joins the day's account spine to the metrics on account_id = account_id, which
    # never holds for a NULL account: the anonymous visitors' events, minutes and page views
    # vanish. Here they are the account_id '' row, and the account days add up to the events.
    wh = _account_fixture(tmp_path)
    raw = wh.query("SELECT sum(num_events), sum(num_minutes), count(*) FROM analytics.events")
    mart = wh.query(
        "SELECT sum(sum_events), sum(sum_minutes), sum(count_event_records) "
        "FROM analytics.account_daily_metrics"
    )
    assert mart == raw == [(22, 10, 4)]
    assert wh.query(
        "SELECT sum_events, count_active_visitors, count_pages_viewed "
        "FROM analytics.account_daily_metrics WHERE account_id = ''"
    ) == [(6, 2, 1)]


def test_first_time_accounts_survive_reloads_of_old_days(tmp_path):
    # An account first seen on day 2; day 1 is loaded late with another visitor of the same
    # account: the account is first-time on day 1 and returning on day 2. Reloading day 1
    # without it moves it back.
    wh = _fixture_warehouse(tmp_path)
    _insert(wh, [(D2, "v1", "a1", "f1", 1)])
    _materialize(wh, [D2])
    split = (
        "SELECT day, count_first_time_accounts, count_returning_accounts "
        "FROM analytics.feature_daily_metrics ORDER BY day"
    )
    assert wh.query(split) == [(D2, 1, 0)]
    _insert(wh, [(D1, "v2", "a1", "f1", 1)])
    assert _materialize(wh, [D1]) == {D2: 1}  # only the account pair moved: v1 is still new
    assert wh.query(split) == [(D1, 1, 0), (D2, 0, 1)]
    with wh.transaction() as con:
        con.execute("DELETE FROM analytics.feature_events WHERE day = ?", [D1])
    _insert(wh, [(D1, "v2", "", "f1", 1)])  # re-loaded: the visitor had no account after all
    assert _materialize(wh, [D1]) == {D2: 1}
    assert wh.query(split) == [(D1, 0, 0), (D2, 1, 0)]


def test_a_mart_table_from_before_the_new_columns_gets_them_when_old_days_are_recomputed(
    tmp_path,
):
    # Upgrading: the table lacks this version's columns, and the first run loads an earlier
    # day, so later days are recomputed (inside the fold) before the run's own write.
    wh = _fixture_warehouse(tmp_path)
    _insert(wh, [(D2, "v1", "a1", "f1", 2)])
    _materialize(wh, [D2])
    with wh.transaction() as con:
        for col in ("sum_minutes", "count_first_time_accounts", "count_returning_accounts"):
            con.execute(f"ALTER TABLE analytics.feature_daily_metrics DROP COLUMN {col}")
    _insert(wh, [(D1, "v1", "a1", "f1", 1)])
    assert _materialize(wh, [D1]) == {D2: 2}
    assert wh.query(
        "SELECT day, sum_minutes, count_first_time_accounts, count_returning_accounts "
        "FROM analytics.feature_daily_metrics ORDER BY day"
    ) == [(D1, 1, 1, 0), (D2, 1, 0, 1)]


@pytest.mark.parametrize("who", ["visitor_id", "account_id"])
@pytest.mark.parametrize("seed", [5, 13])
def test_guide_first_seen_folds_guide_and_poll_events_in_any_order(tmp_path, who, seed):
    # Guide first-seen pairs come from guide events and poll answers together (a subquery, no
    # num_events: the ledger sums a hash of the pairs). Same property as above: after every
    # fold, in any order and after re-loads that lose rows, it equals a full recount.
    import random

    rng = random.Random(seed)
    wh = _fixture_warehouse(tmp_path)
    days = [D1 + timedelta(days=i) for i in range(6)]

    def draw(d):
        table = rng.choice(["analytics.guide_events", "analytics.poll_events"])
        who_ = (f"v{rng.randrange(5)}", rng.choice(["a0", "a1", "", None]))
        return table, (d, *who_, f"g{rng.randrange(3)}")

    rows = {d: [draw(d) for _ in range(10)] for d in days}

    def load(picked):
        with wh.transaction() as con:
            for table, row in picked:
                con.execute(
                    f"INSERT INTO {table} (day, visitor_id, account_id, guide_id) "
                    "VALUES (?, ?, ?, ?)",
                    list(row),
                )

    (fs,) = (f for f in GUIDE_MART.first_seen if f.who == who)
    truth = (
        f"SELECT {who}, guide_id, min(day) FROM (SELECT * FROM analytics.guide_events "
        f"UNION ALL BY NAME SELECT * FROM analytics.poll_events) "
        f"WHERE coalesce({who}, '') <> '' GROUP BY ALL ORDER BY ALL"
    )

    def unload(d):
        with wh.transaction() as con:
            con.execute("DELETE FROM analytics.guide_events WHERE day = ?", [d])
            con.execute("DELETE FROM analytics.poll_events WHERE day = ?", [d])

    _fold_matches_recount(wh, fs, truth, rows, load, unload, [(days[0], 4), (days[3], 4)], rng)
