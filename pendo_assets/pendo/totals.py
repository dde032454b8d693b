"""Pendo's own per-day totals of an event source (rows, sum of numEvents), for reconciling
what landed in the warehouse with what Pendo holds. Plain Python; no Dagster.

Aggregated sources answer per-day totals for a whole window in one request (a ``group`` on
``day``). Per-event sources have no field to group by day on, so Pendo is asked one ``count``
per window and it is compared with what we hold for those days; only a window that differs
is narrowed down to its differing days by bisection (count the left half, derive the right
from the window), a few requests instead of one per day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from pendo_assets.catalog import Source
from pendo_assets.pendo import queries
from pendo_assets.pendo.client import (
    PendoClient,
    PendoError,
    PendoMemoryLimitError,
    PendoTimeoutError,
)
from pendo_assets.pendo.days import describe_offset, local_midnight_ms, windows
from pendo_assets.pendo.fetch import FetchOptions


@dataclass(frozen=True)
class DayTotals:
    rows: int
    num_events: int | None  # None for per-event sources (no numEvents)

    def agrees(self, source: Source, ours: tuple) -> bool:
        """Do our (rows, sum numEvents) equal these totals? Per-event sources: rows only."""
        n, s = ours
        return n == self.rows and (source.per_event or int(s) == self.num_events)


def grouped_days(
    rows: list[dict], days: list[date], opts: FetchOptions, what: str
) -> Iterable[tuple[date, dict]]:
    """(day, row) of an answer grouped by ``day``: each row's day must be a local midnight of
    ``days`` (else the subscription's time zone is not ``PENDO_TIMEZONE``)."""
    by_ms = {local_midnight_ms(d, opts.zone): d for d in days}
    for r in rows:
        d = by_ms.get(r.get("day"))
        if d is None:
            raise PendoError(
                f"{what}: Pendo grouped rows under day {r.get('day')!r}, not a requested local "
                f"midnight. {describe_offset(int(r.get('day') or 0), opts.zone_name)}"
            )
        yield d, r


def _ask(client: PendoClient, source: Source, days: list[date], opts: FetchOptions) -> list:
    first_ms = local_midnight_ms(days[0], opts.zone)
    what = f"{source.name} totals for {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")
    body = queries.totals_request(source, opts.scope, first_ms, len(days))
    return client.aggregate(body, what, split_on_timeout=len(days) > 1)


def window_count(client: PendoClient, source: Source, days: list[date], opts: FetchOptions) -> int:
    """Pendo's count of a per-event source's rows over consecutive ``days``.

    Summed over the answer's rows: one ``{"count": N}`` for the window, or one per day should
    Pendo run the pipeline once per period, as its documentation says it may.
    """
    return sum(int(r.get("count") or 0) for r in _ask(client, source, days, opts))


def _narrow(
    client: PendoClient,
    source: Source,
    days: list[date],
    pendo_rows: int,
    ours: Mapping[date, int],
    opts: FetchOptions,
    asked: bool = True,
) -> dict[date, DayTotals]:
    """Per-day totals of consecutive ``days`` whose Pendo count is ``pendo_rows``.

    Equal to ours: every day agrees. Otherwise bisect: ask the left half, derive the right
    half from the window (``asked=False``). A single day's derived count is asked directly
    before it is reported, so a figure from two answers taken apart in time (young days still
    move) never blames a day.
    """
    if pendo_rows == sum(ours.get(d, 0) for d in days):
        return {d: DayTotals(ours.get(d, 0), None) for d in days}
    if len(days) == 1:
        if not asked:
            pendo_rows = window_count(client, source, days, opts)
        return {days[0]: DayTotals(pendo_rows, None)}
    left, right = days[: len(days) // 2], days[len(days) // 2 :]
    n_left = window_count(client, source, left, opts)
    return {
        **_narrow(client, source, left, n_left, ours, opts),
        **_narrow(client, source, right, pendo_rows - n_left, ours, opts, asked=False),
    }


def _window_totals(
    client: PendoClient,
    source: Source,
    days: list[date],
    opts: FetchOptions,
    ours: Mapping[date, int] | None = None,
) -> dict[date, DayTotals]:
    if source.per_event:
        if ours is None:  # nothing to compare a window's count with: one count per day
            return {d: DayTotals(window_count(client, source, [d], opts), None) for d in days}
        return _narrow(client, source, days, window_count(client, source, days, opts), ours, opts)
    rows = _ask(client, source, days, opts)
    what = f"{source.name} totals for {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")
    out = {d: DayTotals(0, 0) for d in days}
    for d, r in grouped_days(rows, days, opts, what):
        out[d] = DayTotals(int(r.get("rows") or 0), int(r.get("numEvents") or 0))
    return out


Failures = list[tuple[list[date], PendoError]]
Answers = list[tuple[list[date], "dict[date, DayTotals] | PendoError"]]


def totals_windows(days: list[date], opts: FetchOptions) -> list[list[date]]:
    """The requests that ask ``days``' totals: windows of ``PENDO_DAYS_PER_REQUEST`` days,
    like loads."""
    return windows(days, opts.days_per_request)


def ask_window(
    client: PendoClient,
    source: Source,
    w: list[date],
    opts: FetchOptions,
    ours: Mapping[date, int] | None = None,
) -> Answers:
    """One window's totals, or why Pendo could not answer them. ``ours`` (rows per day we
    hold) is what a per-event source's window count is compared with; without it, a per-event
    source is counted a day at a time.

    A window over the memory limit or timing out is asked a day at a time, so one day Pendo
    cannot answer does not cost the others their totals.
    """
    try:
        return [(w, _window_totals(client, source, w, opts, ours))]
    except (PendoMemoryLimitError, PendoTimeoutError) as exc:
        if len(w) == 1:
            return [(w, exc)]
        return [part for d in w for part in ask_window(client, source, [d], opts, ours)]
    except PendoError as exc:
        return [(w, exc)]


def collect(answers: Iterable[Answers]) -> tuple[dict[date, DayTotals], Failures]:
    """(totals of every day answered, the windows that were not, with why)."""
    out: dict[date, DayTotals] = {}
    failures: Failures = []
    for parts in answers:
        for w, part in parts:
            if isinstance(part, PendoError):
                failures.append((w, part))
            else:
                out.update(part)
    return out, failures


def try_day_totals(
    client: PendoClient,
    source: Source,
    days: list[date],
    opts: FetchOptions,
    ours: Mapping[date, int] | None = None,
) -> tuple[dict[date, DayTotals], Failures]:
    """Pendo's totals of every day it could answer, and the windows it could not (with why),
    asked ``max_concurrency`` windows at a time (``ours``: see ``ask_window``)."""
    with ThreadPoolExecutor(max_workers=opts.max_concurrency) as pool:
        return collect(
            pool.map(
                lambda w: ask_window(client, source, w, opts, ours), totals_windows(days, opts)
            )
        )
