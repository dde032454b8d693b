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

The warnings live in their own, non-blocking check because Dagster's automation condition
``all_deps_blocking_checks_passed`` treats *any* failed blocking check as not passed, warnings
included: in the blocking check they would hold back enriched tables every morning.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from pendo_assets.catalog import Source
from pendo_assets.checks.shared import RECONCILES, YOUNG, day_span, name_days, result
from pendo_assets.clock import Clock
from pendo_assets.pendo.totals import DayTotals, try_day_totals
from pendo_assets.resources import PendoResource
from pendo_assets.settings import Settings
from pendo_assets.warehouse.reconciled import remember, remembered
from pendo_assets.warehouse.store import Warehouse, markdown_table


def final_days(days: list[date], settings: Settings, clock: Clock) -> set[date]:
    """The days Pendo no longer changes: older than ``PENDO_FINAL_AFTER_DAYS`` by ``clock``."""
    today = clock().astimezone(settings.zone).date()
    return {d for d in days if (today - d).days > settings.final_after_days}


def reconcile_result(
    wh: Warehouse,
    source: Source,
    key: dg.AssetKey,
    fq: str,
    days: list[date],
    pendo: PendoResource,
    settings: Settings,
    clock: Clock,
) -> tuple[dg.AssetCheckResult, dg.AssetCheckResult]:
    """(``reconciles_with_pendo``, ``reconciles_young_days``) results for ``days``."""
    sums = "coalesce(sum(num_events), 0)" if not source.per_event else "NULL"
    found = wh.query(
        f"SELECT day, count(*), {sums} FROM {fq} WHERE day BETWEEN ? AND ? GROUP BY day",
        day_span(days),
    )
    empty = (0, 0 if not source.per_event else None)
    ours = {d: (n, s) for d, n, s in found}
    final = final_days(days, settings, clock)
    # Final days that agreed before and whose rows are unchanged need no question to Pendo.
    known = remembered(wh, source, sorted(final))
    settled = {d for d in final if d in known and tuple(known[d]) == tuple(ours.get(d, empty))}
    asked = [d for d in days if d not in settled]
    # Asked during this run's load (concurrently with the other sources), or asked now.
    rows = {d: n for d, (n, _) in ours.items()}  # what a per-event window count is held to
    ready = pendo.prefetched_totals(source, asked) if asked else ({}, [])
    theirs, failures = ready or try_day_totals(pendo.client, source, asked, pendo.options, rows)
    for d in settled:
        theirs[d] = DayTotals(*known[d])
    differing = [
        d for d in days if d in theirs and not theirs[d].agrees(source, ours.get(d, empty))
    ]
    # Young days still move at Pendo: ask once more before calling it a difference.
    young = [d for d in differing if d not in final]
    again: dict[date, DayTotals] = {}
    if young:
        again, more_failures = try_day_totals(pendo.client, source, young, pendo.options, rows)
        failures += more_failures
    still_young = [
        d for d in young if d in again and not again[d].agrees(source, ours.get(d, empty))
    ]
    bad_final = [d for d in differing if d in final]
    remember(
        wh,
        source,
        {
            d: ours.get(d, empty)
            for d in final
            if d in theirs and d not in settled and d not in bad_final
        },
    )
    not_asked = sorted(d for d in days if d not in theirs or (d in young and d not in again))

    rows = []
    for d in days:
        n, s = ours.get(d, empty)
        t, t2 = theirs.get(d), again.get(d)
        if d in not_asked:
            verdict = "could not ask Pendo"
        elif d in bad_final:
            verdict = "DIFFERS (final)"
        elif d in still_young:
            verdict = "differs (young, still changing)"
        elif d in settled:
            verdict = "ok (agreed before, unchanged: not asked again)"
        else:
            verdict = "ok"
        rows.append(
            (
                str(d),
                "final" if d in final else "young",
                n,
                t.rows if t else "-",
                "-" if source.per_event else s,
                "-" if source.per_event or t is None else t.num_events,
                f"{t2.rows} / {'-' if source.per_event else t2.num_events}" if t2 else "-",
                verdict,
            )
        )
    header = [
        "day",
        "age",
        "warehouse rows",
        "Pendo rows",
        "warehouse numEvents",
        "Pendo numEvents",
        "Pendo asked again (rows / numEvents)",
        "result",
    ]
    table = dg.MetadataValue.md(markdown_table(header, rows))
    young_meta = [
        {
            "day": d.isoformat(),
            "warehouse_rows": ours.get(d, empty)[0],
            "pendo_rows": again[d].rows,
            "warehouse_num_events": ours.get(d, empty)[1],
            "pendo_num_events": again[d].num_events,
            "pendo_rows_first_ask": theirs[d].rows,
        }
        for d in still_young
    ]
    checked_final = [d for d in days if d in final and d in theirs]
    blocking = result(
        key,
        RECONCILES,
        not bad_final,
        metadata={
            "days": table,
            "days_checked": dg.MetadataValue.int(len(checked_final)),
            "final_after_days": dg.MetadataValue.int(settings.final_after_days),
            "failed_days": dg.MetadataValue.json([d.isoformat() for d in bad_final]),
            "warehouse_rows": dg.MetadataValue.int(sum(v[0] for v in ours.values())),
            "pendo_rows": dg.MetadataValue.int(sum(t.rows for t in theirs.values())),
            "days_not_asked_again": dg.MetadataValue.int(len(settled)),
        },
        description=_blocking_description(source, days, checked_final, bad_final, settings),
    )
    parts = []
    if still_young:
        parts.append(
            f"Young days still changing at Pendo: {name_days(still_young)} differ from Pendo "
            f"even when asked again (expected within PENDO_FINAL_AFTER_DAYS="
            f"{settings.final_after_days} days; the daily refresh reloads them)"
        )
    for w, exc in failures:
        if set(w) & set(not_asked):
            parts.append(f"could not reconcile {name_days(w)}: {exc}")
    warning = result(
        key,
        YOUNG,
        not parts,
        metadata={
            "days": table,
            "young_days": dg.MetadataValue.json([d.isoformat() for d in days if d not in final]),
            "young_days_differing": dg.MetadataValue.json(young_meta),
            "days_not_reconciled": dg.MetadataValue.json([d.isoformat() for d in not_asked]),
        },
        description=". ".join(parts)
        or f"Every young day agrees with Pendo ({len(days) - len(checked_final)} checked)",
    )
    return blocking, warning


def _blocking_description(
    source: Source,
    days: list[date],
    checked: list[date],
    bad: list[date],
    settings: Settings,
) -> str:
    limit = f"PENDO_FINAL_AFTER_DAYS={settings.final_after_days}"
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
