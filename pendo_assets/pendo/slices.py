"""Pendo's history in slices: one tag's rows over many days, and Pendo's totals per day and tag.

Tags are retroactive at Pendo: creating, editing or deleting a page, feature or track type
changes that tag's rows on every stored day. A tag-scoped source takes the tag's id as a
source parameter (``pageEvents: {"pageId": "..."}``), so one tag's history is asked alone, in
the usual multi-day windows: the work scales with the changed tags, not with the history.
The sweep asks totals grouped by day *and* tag, in windows as large as Pendo answers, to find
the (day, tag) slices that differ. Plain Python; no Dagster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from pendo_assets.catalog import EventSource, Source
from pendo_assets.pendo import queries
from pendo_assets.pendo.client import (
    PendoClient,
    PendoError,
    PendoMemoryLimitError,
    PendoTimeoutError,
)
from pendo_assets.pendo.days import local_midnight_ms, windows
from pendo_assets.pendo.fetch import FetchOptions, fetch_days
from pendo_assets.pendo.tables import TypedTable
from pendo_assets.pendo.totals import DayTotals, Failures, grouped_days, try_day_totals

# (day, tag id); the tag is None for sources that are not tag-scoped (the whole day).
Slice = tuple[date, str | None]


def tag_scoped(source: Source) -> bool:
    """Is ``source`` computed from tags (its ``tag_field`` a source parameter, as pageId)?"""
    return isinstance(source, EventSource) and source.tag_field is not None


def one_tag(source: EventSource, tag_id: str) -> EventSource:
    """``source`` asked for one tag's rows only (``pageEvents: {"pageId": tag_id}``)."""
    if not tag_scoped(source):
        raise ValueError(f"{source.name} is not scoped by a tag")
    return dataclasses.replace(source, tag_id=tag_id)


def fetch_tag_days(
    client: PendoClient,
    source: EventSource,
    tag_id: str,
    days: list[date],
    opts: FetchOptions,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[date, TypedTable]]:
    """(day, table) of one tag's rows on every one of ``days``, in the usual windows."""
    return fetch_days(client, one_tag(source, tag_id), days, opts, on_progress)


def _window_slices(
    client: PendoClient, source: EventSource, days: list[date], opts: FetchOptions
) -> dict[Slice, DayTotals]:
    first_ms = local_midnight_ms(days[0], opts.zone)
    what = f"{source.name} totals by day and {source.tag_field} for {days[0]}..{days[-1]}"
    body = queries.totals_request(source, opts.scope, first_ms, len(days), by=(source.tag_field,))
    rows = client.aggregate(body, what, split_on_timeout=len(days) > 1)
    out: dict[Slice, DayTotals] = {}
    for d, r in grouped_days(rows, days, opts, what):
        tag = r.get(source.tag_field)
        out[(d, None if tag is None else str(tag))] = DayTotals(
            int(r.get("rows") or 0), int(r.get("numEvents") or 0)
        )
    return out


def _ask(
    client: PendoClient, source: EventSource, w: list[date], opts: FetchOptions
) -> list[tuple[list[date], dict[Slice, DayTotals] | PendoError]]:
    """One window's slices, or why Pendo could not answer; a window over Pendo's memory limit
    or timing out is asked again in halves."""
    try:
        return [(w, _window_slices(client, source, w, opts))]
    except (PendoMemoryLimitError, PendoTimeoutError) as exc:
        if len(w) == 1:
            return [(w, exc)]
        half = len(w) // 2
        return _ask(client, source, w[:half], opts) + _ask(client, source, w[half:], opts)
    except PendoError as exc:
        return [(w, exc)]


def slice_totals(
    client: PendoClient,
    source: EventSource,
    days: list[date],
    opts: FetchOptions,
    ours: dict[date, int] | None = None,
) -> tuple[dict[Slice, DayTotals], list[date], Failures]:
    """Pendo's totals of every (day, tag) slice of ``days`` that has rows, the days answered,
    and the windows Pendo could not answer (with why).

    Tag-scoped sources are grouped by day and tag in windows of ``days_per_request`` days; the
    others have one slice per day, ``(day, None)``, from the per-day totals reconciliation asks
    (``ours``, the rows per day we hold, lets per-event sources be counted per window).
    """
    if not tag_scoped(source):
        totals, failures = try_day_totals(client, source, days, opts, ours)
        return {(d, None): t for d, t in totals.items()}, sorted(totals), failures
    out: dict[Slice, DayTotals] = {}
    answered: list[date] = []
    failures: Failures = []
    with ThreadPoolExecutor(max_workers=opts.max_concurrency) as pool:
        asked = pool.map(
            lambda w: _ask(client, source, w, opts), windows(days, opts.days_per_request)
        )
        for parts in asked:
            for w, part in parts:
                if isinstance(part, PendoError):
                    failures.append((w, part))
                else:
                    out.update(part)
                    answered.extend(w)
    return out, sorted(answered), failures
