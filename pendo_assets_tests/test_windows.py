"""Adaptive request windows: fewer, larger requests, the same rows per day whatever the size."""

from dataclasses import replace
from datetime import date, timedelta

import pytest

from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.pendo.days import days_between
from pendo_assets.pendo.fetch import FetchOptions, WindowSizer, fetch_days
from pendo_assets_tests.conftest import day_truth, pendo_at

FIRST = date(2026, 9, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(60)]


def _opts(rows_per_request: int | None = None, **settings) -> FetchOptions:
    opts = pendo_at(**settings).options
    return opts if rows_per_request is None else replace(opts, rows_per_request=rows_per_request)


def _per_day(tables) -> dict[date, tuple[int, int, int]]:
    out = {}
    for d, t in tables:
        cols = t.table.column_names
        ev = (
            sum(x or 0 for x in t.table.column("num_events").to_pylist())
            if "num_events" in cols
            else 0
        )
        mi = (
            sum(x or 0 for x in t.table.column("num_minutes").to_pylist())
            if "num_minutes" in cols
            else 0
        )
        assert d not in out, f"{d} yielded twice"
        out[d] = (t.num_rows, ev, mi)
    return out


def _requests(server) -> int:
    return server.stats.snapshot()["aggregation_requests"]


@pytest.mark.parametrize("source_name", ["pageEvents", "guideEvents"])
def test_every_window_size_lands_the_same_rows_per_day(fresh_emulator, subscription, source_name):
    source = SOURCES_BY_NAME[source_name]
    want = day_truth(subscription, source, DAYS)
    if source.per_event:
        want = {d: (n, 0, 0) for d, (n, _, _) in want.items()}
    client = pendo_at(fresh_emulator.url, max_retries=0).client
    seen = {}
    try:
        for name, opts in {
            "one day per request": _opts(days_per_request=1),
            "adaptive, up to 30": _opts(days_per_request=30),
            "adaptive, small row budget": _opts(
                days_per_request=30, rows_per_request=3 * sum(n for n, *_ in want.values()) // 60
            ),
        }.items():
            before = _requests(fresh_emulator)
            got = _per_day(fetch_days(client, source, DAYS, opts))
            seen[name] = _requests(fresh_emulator) - before
            if source.per_event:
                got = {d: (n, 0, 0) for d, (n, _, _) in got.items()}
            assert got == want, name
    finally:
        client.close()
    assert seen["one day per request"] == 60
    # Per-event sources too: a probe day, then windows of up to 30 days: 1 + ceil(59 / 30).
    assert seen["adaptive, up to 30"] == 3
    assert 3 < seen["adaptive, small row budget"] < 60


def test_after_a_refusal_windows_stay_at_a_size_pendo_accepted(fresh_emulator, subscription):
    source = SOURCES_BY_NAME["pageEvents"]
    days = [FIRST + timedelta(days=i) for i in range(80)]
    want = day_truth(subscription, source, days)
    biggest_day = max(n for n, _, _ in want.values())
    # Pendo refuses any answer larger than two of this source's biggest days.
    fresh_emulator.faults.update(memory_limit_rows=2 * biggest_day)
    client = pendo_at(fresh_emulator.url, max_retries=0).client
    try:
        opts = _opts(days_per_request=30, max_concurrency=2)
        got = _per_day(fetch_days(client, source, days, opts))
    finally:
        client.close()
    assert got == want
    # The two 30-day windows in flight after the probe were refused and split into days; every
    # later window was sized from the largest answer Pendo had taken, instead of 30 days again.
    assert fresh_emulator.stats.snapshot()["by_status"]["400"] <= 3


def test_the_sizer_aims_at_the_row_budget_within_the_bound():
    sizer = WindowSizer(_opts(days_per_request=30, rows_per_request=1000))
    assert sizer.size == 1 and not sizer.measured
    sizer.observe(1, 100, 100)  # 100 rows a day -> 10 days per request
    assert sizer.size == 10
    sizer.observe(10, 10, 10)  # the average falls to 10 rows a day -> capped at 30
    assert sizer.size == 30 and sizer.rows / sizer.days == 10
    sizer.observe(30, 1200, 60)  # a 30-day window was refused; its biggest day had 60 rows
    sizer.refused()  # budget = 100 rows, the largest answer accepted; 1310 rows / 41 days
    assert sizer.target == 100 and sizer.size == 3
    sizer.observe(100, 100, 10)  # small days again (1410 / 141 = 10 a day): 10 days, not 30,
    assert sizer.size == 10  # because the budget stays where Pendo said yes


def test_days_between_takes_dates_or_partition_keys_and_includes_both_ends():
    assert days_between("2026-10-30", date(2026, 11, 1)) == [
        date(2026, 10, 30),
        date(2026, 10, 31),
        date(2026, 11, 1),
    ]
    assert days_between("2026-10-30", "2026-10-30") == [date(2026, 10, 30)]
