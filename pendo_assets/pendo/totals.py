"""Pendo's own per-day totals of an event source (rows, sum of numEvents), for reconciling
what landed in the warehouse with what Pendo holds. Plain Python; no Dagster.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def _window_totals(
    client: PendoClient, source: Source, days: list[date], opts: FetchOptions
) -> dict[date, DayTotals]:
    first_ms = local_midnight_ms(days[0], opts.zone)
    what = f"{source.name} totals for {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")
    body = queries.totals_request(source, opts.scope, first_ms, len(days))
    rows = client.aggregate(body, what, split_on_timeout=len(days) > 1)
    if source.per_event:
        n = int(rows[0].get("count", 0)) if rows else 0
        return {days[0]: DayTotals(n, None)}
    by_ms = {local_midnight_ms(d, opts.zone): d for d in days}
    out = {d: DayTotals(0, 0) for d in days}
    for r in rows:
        d = by_ms.get(r.get("day"))
        if d is None:
            raise PendoError(
                f"{what}: Pendo grouped rows under day {r.get('day')!r}, not a requested local "
                f"midnight. {describe_offset(int(r.get('day') or 0), opts.zone_name)}"
            )
        out[d] = DayTotals(int(r.get("rows") or 0), int(r.get("numEvents") or 0))
    return out


Failures = list[tuple[list[date], PendoError]]
Answers = list[tuple[list[date], "dict[date, DayTotals] | PendoError"]]


def totals_windows(source: Source, days: list[date], opts: FetchOptions) -> list[list[date]]:
    """The requests that ask ``days``' totals: windows of ``PENDO_DAYS_PER_REQUEST`` days for
    aggregated sources, like loads; one day each for per-event sources."""
    return windows(days, 1 if source.per_event else opts.days_per_request)


def ask_window(client: PendoClient, source: Source, w: list[date], opts: FetchOptions) -> Answers:
    """One window's totals, or why Pendo could not answer them.

    A window over the memory limit or timing out is asked a day at a time, so one day Pendo
    cannot answer does not cost the others their totals.
    """
    try:
        return [(w, _window_totals(client, source, w, opts))]
    except (PendoMemoryLimitError, PendoTimeoutError) as exc:
        if len(w) == 1:
            return [(w, exc)]
        return [part for d in w for part in ask_window(client, source, [d], opts)]
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
    client: PendoClient, source: Source, days: list[date], opts: FetchOptions
) -> tuple[dict[date, DayTotals], Failures]:
    """Pendo's totals of every day it could answer, and the windows it could not (with why),
    asked ``max_concurrency`` windows at a time."""
    with ThreadPoolExecutor(max_workers=opts.max_concurrency) as pool:
        return collect(
            pool.map(
                lambda w: ask_window(client, source, w, opts), totals_windows(source, days, opts)
            )
        )
