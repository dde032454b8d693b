"""Guide and poll events in multi-day windows: every event filed under the day Pendo's one-day
answers give it (local midnight and DST days included), and their reconciliation one ``count``
per window, narrowed down by bisection only where a window differs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.emulator import EmulatorServer
from pendo_assets.pendo.client import PendoClient
from pendo_assets.pendo.fetch import FetchOptions, fetch_days
from pendo_assets.pendo.queries import Scope
from pendo_assets.pendo.totals import DayTotals, try_day_totals, window_count
from pendo_assets.run_tags import range_tags

from .conftest import TEST_KEY, TIMEZONE, small_subscription
from .test_real_pendo import evaluations, truth, warehouse

# Left out of `make test-quick`: guide and poll events over multi-day windows, each a
# Dagster range run.
pytestmark = pytest.mark.slow

ZONE = ZoneInfo(TIMEZONE)
PER_EVENT = [SOURCES_BY_NAME["guideEvents"], SOURCES_BY_NAME["pollEvents"]]
# New York's 2026 DST days: 23 hours on March 8, 25 hours on November 1.
SPRING, FALL = date(2026, 3, 8), date(2026, 11, 1)


def _opts(days_per_request: int) -> FetchOptions:
    return FetchOptions(
        scope=Scope(), zone=ZONE, zone_name=TIMEZONE, days_per_request=days_per_request
    )


def _midnight_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=ZONE).timestamp() * 1000)


def _events_by_day(client, source, days, opts) -> dict[date, list[tuple]]:
    """Every event the fetch filed under each day, as comparable tuples."""
    out = {}
    for d, t in fetch_days(client, source, days, opts):
        cols = ["visitor_id", "browser_time", "guide_timestamp", "type", "guide_id"]
        rows = t.table.select(cols).to_pylist()
        out[d] = sorted(tuple(r.values()) for r in rows)
    return out


def _requests(server, name: str) -> int:
    return server.stats.snapshot()["by_source"].get(name, 0)


def _one_day_and_windowed(sub, source, days) -> tuple[dict, dict, int]:
    """(events by day from one-day requests, the same from windows, requests the windows took)."""
    with EmulatorServer(sub, integration_key=TEST_KEY).start() as server:
        client = PendoClient(server.url, TEST_KEY, max_retries=0)
        try:
            per_day = _events_by_day(client, source, days, _opts(1))
            before = _requests(server, source.name)
            windowed = _events_by_day(client, source, days, _opts(30))
            return per_day, windowed, _requests(server, source.name) - before
        finally:
            client.close()


@pytest.mark.parametrize(
    "first",
    [SPRING - timedelta(days=5), FALL - timedelta(days=5)],
    ids=["spring-forward", "fall-back"],
)
@pytest.mark.parametrize("source", PER_EVENT, ids=lambda s: s.name)
def test_windows_file_every_event_as_one_day_answers_do_at_midnight_and_on_dst_days(source, first):
    days = [first + timedelta(days=i) for i in range(12)]
    sub = small_subscription(
        first_day=first - timedelta(days=1),
        last_day=days[-1] + timedelta(days=1),
        edge_raw_events=2,
        daily_active_share=0.9,
    )
    per_day, windowed, asked = _one_day_and_windowed(sub, source, days)
    assert windowed == per_day
    assert asked == 2  # a one-day probe, then the other 11 days in one window
    dst = SPRING if first < FALL else FALL
    assert (_midnight_ms(dst + timedelta(days=1)) - _midnight_ms(dst)) // 3_600_000 != 24
    # The emulator sent events on the first millisecond of every day, the DST day too, and
    # Pendo received others on its last; each stayed on its own side of midnight.
    for d in days:
        start, end = _midnight_ms(d), _midnight_ms(d + timedelta(days=1))
        sent = [_ms(r[1]) for r in per_day[d]]
        received = [_ms(r[2]) for r in per_day[d]]
        assert all(start <= t < end for t in sent + received), d
        assert start in sent and end - 1 in received, d


@pytest.mark.parametrize("source", PER_EVENT, ids=lambda s: s.name)
def test_events_sent_before_midnight_and_received_after_are_filed_as_one_day_answers_do(source):
    """Browser and Pendo's server name different days: only a one-day answer says which Pendo
    used, so the two days are asked alone, and the window's other days are kept."""
    first = FALL - timedelta(days=3)
    days = [first + timedelta(days=i) for i in range(8)]
    sub = small_subscription(midnight_raw_events=1, daily_active_share=0.9)
    per_day, windowed, asked = _one_day_and_windowed(sub, source, days)
    assert windowed == per_day
    straddling = [
        d
        for d, rows in per_day.items()
        for r in rows
        if _ms(r[1]) < _midnight_ms(d + timedelta(days=1)) <= _ms(r[2])
    ]
    assert len(straddling) >= len(days) - 1  # every day has one (both apps, if they had events)
    # The probe day, the 7-day window, then each of its days that a straddling event touches.
    assert asked == 1 + 1 + 7


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@pytest.mark.parametrize("source", PER_EVENT, ids=lambda s: s.name)
def test_a_window_with_events_outside_it_is_asked_day_by_day_and_files_them_as_pendo_does(
    source,
):
    """A browser clock hours off puts an event outside the days Pendo files it under: the row
    cannot say which day that is, so such a window is asked again a day at a time."""
    first = date(2026, 10, 5)
    days = [first + timedelta(days=i) for i in range(6)]
    sub = small_subscription(stray_raw_events=2, daily_active_share=0.9)
    per_day, windowed, asked = _one_day_and_windowed(sub, source, days)
    assert windowed == per_day
    assert asked == 1 + 1 + 5  # the probe, the 5-day window, then its days one by one
    outside = sum(
        1
        for d, rows in per_day.items()
        for r in rows
        if not _midnight_ms(d) <= _ms(r[1]) < _midnight_ms(d + timedelta(1))
    )
    assert outside >= len(days)  # the strays were there, and landed where Pendo put them


class _CountingClient:
    """Pendo's per-day counts behind ``aggregate``; records the days of every request."""

    def __init__(self, counts: dict[date, int], per_period: bool = False):
        self.counts, self.per_period, self.asked = counts, per_period, []

    def aggregate(self, body, what, parse=None, split_on_timeout=False):
        ts = body["request"]["pipeline"][0]["source"]["timeSeries"]
        first = datetime.fromtimestamp(ts["first"] / 1000, ZONE).date()
        days = [first + timedelta(days=i) for i in range(ts["count"])]
        self.asked.append(days)
        if self.per_period:  # Pendo running the pipeline once per period, as it may
            return [{"count": self.counts.get(d, 0)} for d in days]
        return [{"count": sum(self.counts.get(d, 0) for d in days)}]


DAYS = [date(2026, 10, 1) + timedelta(days=i) for i in range(30)]


def test_a_window_that_agrees_costs_one_count_and_a_differing_one_is_bisected():
    source = SOURCES_BY_NAME["pollEvents"]
    pendo = {d: 10 + i % 7 for i, d in enumerate(DAYS)}
    client = _CountingClient(pendo)
    got, failures = try_day_totals(client, source, DAYS, _opts(30), dict(pendo))
    assert not failures and client.asked == [DAYS]
    assert got == {d: DayTotals(n, None) for d, n in pendo.items()}

    ours = dict(pendo)
    ours[DAYS[17]] -= 1  # a row lost on one day
    client = _CountingClient(pendo)
    got, _ = try_day_totals(client, source, DAYS, _opts(30), ours)
    assert {d for d in DAYS if got[d].rows != ours[d]} == {DAYS[17]}
    assert got[DAYS[17]] == DayTotals(pendo[DAYS[17]], None)
    # The window, then one half per level (the other half derived), and the derived last
    # day asked directly: 7 requests instead of 30.
    assert len(client.asked) <= 7
    assert [DAYS[17]] in client.asked

    ours[DAYS[3]] += 2  # and one more on another day
    client = _CountingClient(pendo)
    got, _ = try_day_totals(client, source, DAYS, _opts(30), ours)
    assert {d for d in DAYS if got[d].rows != ours[d]} == {DAYS[3], DAYS[17]}
    assert len(client.asked) < 15


def test_a_count_answered_once_per_period_is_summed_over_the_window():
    pendo = {d: 3 for d in DAYS[:5]}
    client = _CountingClient(pendo, per_period=True)
    assert window_count(client, SOURCES_BY_NAME["guideEvents"], DAYS[:5], _opts(30)) == 15


def test_guide_and_poll_events_land_exactly_and_reconcile_in_a_few_requests(make_project):
    first = date(2026, 10, 20)
    days = [first + timedelta(days=i) for i in range(14)]  # final days, FALL among them
    sub = small_subscription(edge_raw_events=2)
    keys = ["pendo/guide_events", "pendo/poll_events"]
    with EmulatorServer(sub, integration_key=TEST_KEY).start() as server:
        project = make_project(server)
        result = project.materialize(keys, str(days[0]), str(days[-1]))
        assert result.success
        by_source = server.stats.snapshot()["by_source"]
        for key, source in zip(keys, PER_EVENT, strict=True):
            assert evaluations(result, key)["reconciles_with_pendo"].passed, key
            assert warehouse(project, source, days) == {
                d: (n, 0) for d, (n, _) in truth(sub, source, days).items()
            }
            # A probe day and one window to load; one count for the window's totals.
            assert by_source[source.name] == 2 + 1, by_source
        # One event lost on a final day: the check finds that day, asking a few counts.
        project.execute(
            "DELETE FROM pendo.poll_events WHERE rowid IN "
            "(SELECT rowid FROM pendo.poll_events WHERE day = ? LIMIT 1)",
            [days[9]],
        )
        before = server.stats.snapshot()["by_source"]["pollEvents"]
        checked = project.run_checks("pendo/poll_events", str(days[0]), str(days[-1]))
        asked = server.stats.snapshot()["by_source"]["pollEvents"] - before
    check = evaluations(checked, "pendo/poll_events")["reconciles_with_pendo"]
    assert not check.passed
    assert check.metadata["failed_days"].value == [str(days[9])]
    assert asked <= 6  # the window and a bisection, not 14 one-day counts


def test_windows_pendo_refuses_are_loaded_and_counted_a_day_at_a_time(make_project):
    first = date(2026, 10, 5)
    days = [first + timedelta(days=i) for i in range(6)]
    sub = small_subscription()
    source = SOURCES_BY_NAME["guideEvents"]
    want = {d: (n, 0) for d, (n, _) in truth(sub, source, days).items()}
    # Pendo refuses any query reading more than two of these days' events.
    limit = 2 * max(sum(len(sub.event_rows(source.name, a, d)) for a in sub.app_ids) for d in days)
    with EmulatorServer(sub, integration_key=TEST_KEY).start() as server:
        server.faults.update(memory_limit_rows=limit)
        project = make_project(server)
        result = project.materialize(["pendo/guide_events"], str(days[0]), str(days[-1]))
        refused = server.stats.snapshot()["by_status"].get("400", 0)
    assert result.success
    assert warehouse(project, source, days) == want
    checks = evaluations(result, "pendo/guide_events")
    assert checks["reconciles_with_pendo"].passed and checks["reconciles_young_days"].passed
    assert refused >= 2  # the 5-day load window and the 6-day count, each asked by day after


def test_only_days_an_event_could_belong_to_are_doubted():
    from pendo_assets.pendo.fetch import _RowsBatch, _unsure_days

    days = [date(2026, 10, 5) + timedelta(days=i) for i in range(4)]
    hour = 3_600_000
    day_ms = [_midnight_ms(d) + 12 * hour for d in days]  # noon of each day

    def unsure(*rows: tuple[int, int | None]) -> set[date]:
        batch = _RowsBatch(
            [
                {"visitorId": "v", "browserTime": b, "type": "guideSeen", "guideId": "g"}
                | ({} if g is None else {"guideTimestamp": g})
                for b, g in [(day_ms[0], day_ms[0] + 500), *rows]
            ]
        )
        return _unsure_days(batch, days, _opts(30), "w")

    assert unsure((day_ms[2], day_ms[2] + 900), (day_ms[3], None)) == set()
    # A browser clock a day behind, inside the window: its day and Pendo's server's day.
    assert unsure((day_ms[1], day_ms[2])) == {days[1], days[2]}
    # Sent before the window, received on its third day: the first day holds it until asked.
    assert unsure((day_ms[0] - 20 * hour, day_ms[2])) == {days[0], days[2]}
    # No server time and a browser time outside the window: any day could be Pendo's.
    assert unsure((day_ms[3] + 20 * hour, None)) == set(days)


def test_the_weekly_sweep_counts_poll_events_per_window_and_reloads_the_day_that_differs(
    make_project,
):
    import dagster as dg

    first = date(2026, 10, 5)
    days = [first + timedelta(days=i) for i in range(10)]
    sub = small_subscription()
    source = SOURCES_BY_NAME["pollEvents"]
    with EmulatorServer(sub, integration_key=TEST_KEY).start() as server:
        project = make_project(server)
        assert project.materialize(["pendo/poll_events"], str(days[0]), str(days[-1])).success
        project.execute(
            "DELETE FROM pendo.poll_events WHERE rowid IN "
            "(SELECT rowid FROM pendo.poll_events WHERE day = ? LIMIT 1)",
            [days[6]],
        )
        server.stats.reset()
        result = dg.materialize(
            [*project.defs.assets, *project.defs.asset_checks],
            selection=[dg.AssetKey.from_user_string("pendo/poll_events")],
            resources=project.defs.resources,
            instance=project.instance,
            run_config={"ops": {"load_pendo_events": {"config": {"sweep": True}}}},
            tags=range_tags(str(days[0]), str(days[-1])),
        )
        asked = server.stats.snapshot()["by_source"]["pollEvents"]
    assert result.success
    assert warehouse(project, source, days) == {
        d: (n, 0) for d, (n, _) in truth(sub, source, days).items()
    }
    # One count for the window and a bisection down to the day, then that day's reload: not
    # ten one-day counts.
    assert asked <= 7
