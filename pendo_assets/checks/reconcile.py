"""Reconciliation of the raw event tables with Pendo's own per-day totals.

Pendo's data is live: events are processed hourly, some arrive hours or days late, and a day
is final only after about nine days (``PENDO_FINAL_AFTER_DAYS``). So:

- a **final** day (older than ``PENDO_FINAL_AFTER_DAYS``) that differs fails
  ``reconciles_with_pendo`` (ERROR, blocking);
- a **young** day that differs is asked once more; a difference that remains is a WARN of
  ``reconciles_young_days`` with both numbers in the metadata (the morning refresh reloads
  young days);
- a totals query Pendo cannot answer (after its own retries and splitting) is a WARN of
  ``reconciles_young_days``, "could not reconcile <days>: <reason>", not a crashed step.

Final days that agreed with Pendo are remembered in ``_state.reconciled_days`` with the totals
they had; while the warehouse still holds those totals, they are not asked again (a final day
does not change at Pendo, and ours did not change either), so a year's reconciliation after a
re-run costs only its young days.

The verdict is ``pendo.reconciliation`` (pure functions of the numbers); this module reads our
totals, asks Pendo (or takes what the load asked), remembers agreed final days and presents the
verdict as the two checks' results.

The warnings live in their own, non-blocking check because Dagster's automation condition
``all_deps_blocking_checks_passed`` treats *any* failed blocking check as not passed, warnings
included: in the blocking check they would hold back enriched tables every morning.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from pendo_assets.catalog import EventSource
from pendo_assets.checks.shared import RECONCILES, YOUNG, day_span, name_days, result
from pendo_assets.clock import Clock
from pendo_assets.pendo import reconciliation as rec
from pendo_assets.pendo.totals import DayTotals, try_day_totals
from pendo_assets.resources import PendoResource
from pendo_assets.settings import Settings
from pendo_assets.warehouse.reconciled import remember, remembered
from pendo_assets.warehouse.store import Warehouse, markdown_table


def final_days(days: list[date], settings: Settings, clock: Clock) -> set[date]:
    """The days Pendo no longer changes: older than ``PENDO_FINAL_AFTER_DAYS`` by ``clock``."""
    today = clock().astimezone(settings.zone).date()
    return rec.final_days(days, today, settings.final_after_days)


def reconcile_result(
    wh: Warehouse,
    source: EventSource,
    key: dg.AssetKey,
    fq: str,
    days: list[date],
    pendo: PendoResource,
    settings: Settings,
    clock: Clock,
) -> tuple[dg.AssetCheckResult, dg.AssetCheckResult]:
    """(``reconciles_with_pendo``, ``reconciles_young_days``) results for ``days``: our totals
    and Pendo's, asked (or remembered) here, judged by ``pendo.reconciliation``."""
    sums = "NULL" if source.per_event else "coalesce(sum(num_events), 0)"
    found = wh.query(
        f"SELECT day, count(*), {sums} FROM {fq} WHERE day BETWEEN ? AND ? GROUP BY day",
        day_span(days),
    )
    wanted = set(days)
    ours = {d: (n, s) for d, n, s in found if d in wanted}
    final = final_days(days, settings, clock)
    known = remembered(wh, source, sorted(final))
    settled = rec.settled_days(source, final, known, ours)
    asked = [d for d in days if d not in settled]
    # Asked during this run's load (concurrently with the other sources), or asked now.
    rows = {d: n for d, (n, _) in ours.items()}  # what a per-event window count is held to
    ready = pendo.prefetched_totals(source, asked) if asked else ({}, [])
    theirs, failures = ready or try_day_totals(pendo.client, source, asked, pendo.options, rows)
    theirs = {**theirs, **{d: DayTotals(*known[d]) for d in settled}}
    again: dict[date, DayTotals] = {}
    if young := rec.ask_again(source, days, final, theirs, ours):
        again, more = try_day_totals(pendo.client, source, young, pendo.options, rows)
        failures = [*failures, *more]
    verdict = rec.judge(source, days, ours, theirs, again, final, settled, failures)
    remember(wh, source, verdict.to_remember)
    return check_results(verdict, source, key, settings.final_after_days)


def _day_row(v: rec.DayVerdict, per_event: bool) -> tuple:
    t, t2 = v.theirs, v.again
    return (
        str(v.day),
        "final" if v.final else "young",
        v.ours[0],
        t.rows if t else "-",
        "-" if per_event else v.ours[1],
        "-" if per_event or t is None else t.num_events,
        f"{t2.rows} / {'-' if per_event else t2.num_events}" if t2 else "-",
        v.outcome.value,
    )


_HEADER = [
    "day",
    "age",
    "warehouse rows",
    "Pendo rows",
    "warehouse numEvents",
    "Pendo numEvents",
    "Pendo asked again (rows / numEvents)",
    "result",
]


def check_results(
    verdict: rec.Verdict, source: EventSource, key: dg.AssetKey, final_after_days: int
) -> tuple[dg.AssetCheckResult, dg.AssetCheckResult]:
    """The verdict as the two checks' results: the blocking one fails only on final days."""
    rows = [_day_row(v, source.per_event) for v in verdict.days]
    table = dg.MetadataValue.md(markdown_table(_HEADER, rows))
    days = [v.day for v in verdict.days]
    checked, failed = verdict.checked_final, verdict.failed_final
    blocking = result(
        key,
        RECONCILES,
        verdict.passed,
        metadata={
            "days": table,
            "days_checked": dg.MetadataValue.int(len(checked)),
            "final_after_days": dg.MetadataValue.int(final_after_days),
            "failed_days": dg.MetadataValue.json([d.isoformat() for d in failed]),
            "warehouse_rows": dg.MetadataValue.int(sum(v.ours[0] for v in verdict.days)),
            "pendo_rows": dg.MetadataValue.int(
                sum(v.theirs.rows for v in verdict.days if v.theirs)
            ),
            "days_not_asked_again": dg.MetadataValue.int(len(verdict.settled)),
        },
        description=_blocking_description(source, days, checked, failed, final_after_days),
    )
    changing = verdict.young_changing
    parts = []
    if changing:
        parts.append(
            f"Young days still changing at Pendo: {name_days([v.day for v in changing])} differ "
            f"from Pendo even when asked again (expected within PENDO_FINAL_AFTER_DAYS="
            f"{final_after_days} days; the daily refresh reloads them)"
        )
    parts += [f"could not reconcile {name_days(w)}: {exc}" for w, exc in verdict.unanswered]
    warning = result(
        key,
        YOUNG,
        not parts,
        metadata={
            "days": table,
            "young_days": dg.MetadataValue.json([d.isoformat() for d in verdict.young]),
            "young_days_differing": dg.MetadataValue.json(
                [
                    {
                        "day": v.day.isoformat(),
                        "warehouse_rows": v.ours[0],
                        "pendo_rows": v.again.rows,
                        "warehouse_num_events": v.ours[1],
                        "pendo_num_events": v.again.num_events,
                        "pendo_rows_first_ask": v.theirs.rows,
                    }
                    for v in changing
                    if v.again and v.theirs
                ]
            ),
            "days_not_reconciled": dg.MetadataValue.json(
                [d.isoformat() for d in verdict.not_asked]
            ),
        },
        description=". ".join(parts)
        or f"Every young day agrees with Pendo ({len(days) - len(checked)} checked)",
    )
    return blocking, warning


def _blocking_description(
    source: EventSource,
    days: list[date],
    checked: list[date],
    bad: list[date],
    final_after_days: int,
) -> str:
    limit = f"PENDO_FINAL_AFTER_DAYS={final_after_days}"
    if bad:
        return (
            f"Warehouse differs from Pendo on {name_days(bad)} (final days, older than "
            f"{limit}): re-materialize them; if they still differ, Pendo changed history "
            "(tagging a page or feature reprocesses it)"
        )
    if not checked:
        return (
            f"No final day to reconcile: all {len(days)} day(s) are younger than {limit} or "
            f"unanswered; see {YOUNG}"
        )
    what = "Row counts" if source.per_event else "Row counts and numEvents"
    rest = len(days) - len(checked)
    more = f"; {rest} young or unanswered day(s) are in {YOUNG}" if rest else ""
    return f"{what} equal Pendo's on all {len(checked)} final days{more}"
