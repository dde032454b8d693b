"""Pendo's own per-day totals of an event source (rows, sum of numEvents), for reconciling
what landed in the warehouse with what Pendo holds. Plain Python; no Dagster.
"""

from __future__ import annotations

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
    num_events: int | None  # None for raw sources (one row per event, no numEvents)


def _window_totals(
    client: PendoClient, source: Source, days: list[date], opts: FetchOptions
) -> dict[date, DayTotals]:
    first_ms = local_midnight_ms(days[0], opts.zone)
    what = f"{source.name} totals for {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")
    body = queries.totals_request(source, opts.scope, first_ms, len(days))
    rows = client.aggregate(body, what, split_on_timeout=len(days) > 1)
    if source.raw:
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


def pendo_day_totals(
    client: PendoClient, source: Source, days: list[date], opts: FetchOptions
) -> dict[date, DayTotals]:
    """{day: totals} for every day, or the first window's ``PendoError``."""
    totals, failures = try_day_totals(client, source, days, opts)
    if failures:
        raise failures[0][1]
    return totals


def try_day_totals(
    client: PendoClient, source: Source, days: list[date], opts: FetchOptions
) -> tuple[dict[date, DayTotals], list[tuple[list[date], PendoError]]]:
    """Pendo's totals of every day it could answer, and the windows it could not (with why).

    Aggregated sources are asked in windows of ``PENDO_DAYS_PER_REQUEST`` days, like loads; a
    window over the memory limit or timing out is asked a day at a time. Raw sources are
    counted a day at a time.
    """
    size = 1 if source.raw else opts.days_per_request

    def one(w: list[date]) -> list[tuple[list[date], dict[date, DayTotals] | PendoError]]:
        try:
            return [(w, _window_totals(client, source, w, opts))]
        except (PendoMemoryLimitError, PendoTimeoutError) as exc:
            if len(w) == 1:
                return [(w, exc)]
            # Too big or too slow as a window: each day on its own, so one day Pendo cannot
            # answer does not cost the others their totals.
            return [part for d in w for part in one([d])]
        except PendoError as exc:
            return [(w, exc)]

    out: dict[date, DayTotals] = {}
    failures: list[tuple[list[date], PendoError]] = []
    with ThreadPoolExecutor(max_workers=opts.max_concurrency) as pool:
        for parts in pool.map(one, windows(sorted(days), size)):
            for w, part in parts:
                if isinstance(part, PendoError):
                    failures.append((w, part))
                else:
                    out.update(part)
    return out, failures
