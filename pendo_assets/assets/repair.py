"""Bringing loaded days back to Pendo's numbers after Pendo changed them: the event loads'
repair and sweep modes.

Pendo is retroactive: a page, feature or track type created, edited or deleted today changes
its rows on every stored day (docs/history-changes.md). The
entity load records such changes (``warehouse.tag_changes``); the ``pendo_tag_repair`` sensor
then launches the event load over the loaded days with ``repair_tags``: only those tags' rows
are asked (``pageEvents: {"pageId": ...}``) and replaced, so the work scales with the changed
tags. The weekly sweep (``sweep: true``) compares every (day, tag) with Pendo's own totals and
reloads only the slices that differ: late events older than the lookback, data deleted at
Pendo, whatever detection missed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date

import dagster as dg
import pyarrow.compute as pc

from pendo_assets import clock
from pendo_assets.catalog import RAW_SCHEMA, Source
from pendo_assets.pendo.client import PendoClient
from pendo_assets.pendo.fetch import FetchOptions, fetch_days
from pendo_assets.pendo.slices import Slice, fetch_tag_days, slice_totals, tag_scoped
from pendo_assets.pendo.tables import TypedTable, column_name, declared_types
from pendo_assets.pendo.totals import DayTotals
from pendo_assets.warehouse.io_manager import StagedSlices
from pendo_assets.warehouse.reconciled import forget
from pendo_assets.warehouse.staging import staging_dir
from pendo_assets.warehouse.store import StagedFile, Warehouse, markdown_table, stage
from pendo_assets.warehouse.tag_changes import mark_repaired

MAX_ROWS_SHOWN = 50  # metadata tables list at most this many slices


class EventConfig(dg.Config):
    """Run config of the event loads. Empty: load the run's days whole (the usual run)."""

    # Event source -> tag ids whose history Pendo recomputed (created or edited tags): only
    # their rows are reloaded over the run's days. Set by the pendo_tag_repair sensor.
    repair_tags: dict[str, list[str]] = {}
    # Event source -> ids of deleted tags: their rows are removed from the run's days.
    delete_tags: dict[str, list[str]] = {}
    # Compare every (day, tag) of the run's days with Pendo's totals and reload only the
    # slices that differ (the weekly sweep).
    sweep: bool = False

    @property
    def repairing(self) -> bool:
        return bool(self.repair_tags or self.delete_tags)


def _tag_totals(wh: Warehouse, source: Source, days: list[date], tags: list[str]) -> dict:
    """tag -> (rows, numEvents) the warehouse holds on ``days``."""
    fq = f"{RAW_SCHEMA}.{source.table}"
    if not tags or not wh.exists(RAW_SCHEMA, source.table):
        return {}
    col = column_name(source.id_field)
    return {
        t: (n, e)
        for t, n, e in wh.query(
            f"SELECT CAST({col} AS VARCHAR), count(*), coalesce(sum(num_events), 0) FROM {fq} "
            f"WHERE day BETWEEN ? AND ? AND CAST({col} AS VARCHAR) IN "
            "(SELECT unnest(?::VARCHAR[])) GROUP BY 1",
            [days[0], days[-1], tags],
        )
    }


def _stage_days(
    batches, staging, prefix: str, files: list[StagedFile], on_table: Callable | None = None
) -> None:
    for day, table in batches:
        files.append(stage(table.table, table.types, staging / f"{prefix}-{day}.parquet"))
        if on_table is not None:
            on_table(day, table)


def repair_tags(
    context: dg.AssetExecutionContext,
    client: PendoClient,
    opts: FetchOptions,
    wh: Warehouse,
    source: Source,
    days: list[date],
    config: EventConfig,
) -> tuple[StagedSlices, dict]:
    """Reload the changed tags' rows of ``source`` over ``days`` (and drop deleted tags' rows),
    replacing only those rows of each day, in one transaction with the days' reconciliation
    state and the tag changes' ledger."""
    started = clock.now(UTC)
    reload = sorted(set(config.repair_tags.get(source.name, ())))
    deleted = sorted(set(config.delete_tags.get(source.name, ())) - set(reload))
    tags = [*reload, *deleted]
    before = _tag_totals(wh, source, days, tags)
    after: dict[str, list[int]] = {t: [0, 0] for t in tags}
    files: list[StagedFile] = []
    with staging_dir(f"{source.table}-repair") as staging:
        for i, tag in enumerate(reload):

            def count(day: date, table: TypedTable, tag: str = tag) -> None:
                after[tag][0] += table.num_rows
                if "num_events" in table.table.column_names:
                    after[tag][1] += int(pc.sum(table.table.column("num_events")).as_py() or 0)

            batches = fetch_tag_days(client, source, tag, days, opts)
            _stage_days(batches, staging, f"tag{i}", files, count)
            context.log.info(
                f"{source.name}: reloaded {after[tag][0]} rows of {source.id_field} {tag} over "
                f"{len(days)} days (had {before.get(tag, (0, 0))[0]})"
            )
    counts = {t: (before.get(t, (0, 0))[0], after[t][0]) for t in tags}
    staged = StagedSlices(
        column_name(source.id_field),
        [(d, t) for t in tags for d in days],
        files,
        declared_types(source, opts.drop_columns),
        staging,
        after=[
            *forget(source.name, days),
            *mark_repaired(source.name, counts, context.run.run_id, started, clock.now(UTC)),
        ],
    )
    rows = [
        (
            t,
            "deleted" if t in deleted else "reloaded",
            before.get(t, (0, 0))[0],
            after[t][0],
            before.get(t, (0, 0))[1],
            after[t][1],
        )
        for t in tags
    ]
    metadata = {
        "repair": dg.MetadataValue.md(
            f"Repaired {len(tags)} {source.id_field} tag(s) over {days[0]}..{days[-1]} "
            f"({len(days)} days): Pendo recomputed their history.\n\n"
            + markdown_table(
                [
                    source.id_field,
                    "what",
                    "rows before",
                    "rows after",
                    "numEvents before",
                    "numEvents after",
                ],
                rows,
            )
        ),
        "repaired_tags": dg.MetadataValue.json({"reloaded": reload, "deleted": deleted}),
        "repaired_days": dg.MetadataValue.text(f"{days[0]}..{days[-1]}"),
    }
    return staged, metadata


def _ours(wh: Warehouse, source: Source, days: list[date]) -> dict[Slice, tuple]:
    if not wh.exists(RAW_SCHEMA, source.table):
        return {}
    fq = f"{RAW_SCHEMA}.{source.table}"
    tag = f"CAST({column_name(source.id_field)} AS VARCHAR)" if tag_scoped(source) else "NULL"
    events = "NULL" if source.per_event else "coalesce(sum(num_events), 0)"
    return {
        (d, t): (n, e)
        for d, t, n, e in wh.query(
            f"SELECT day, {tag}, count(*), {events} FROM {fq} "
            "WHERE day BETWEEN ? AND ? GROUP BY ALL",
            [days[0], days[-1]],
        )
    }


def sweep(
    context: dg.AssetExecutionContext,
    client: PendoClient,
    opts: FetchOptions,
    wh: Warehouse,
    source: Source,
    days: list[date],
) -> tuple[StagedSlices, dict]:
    """Compare every (day, tag) slice of ``days`` with Pendo's totals and reload only the
    slices that differ (whole days for sources that are not tag-scoped)."""
    ours = _ours(wh, source, days)
    rows = {d: n for (d, _), (n, _) in ours.items()} if not tag_scoped(source) else None
    theirs, answered, failures = slice_totals(client, source, days, opts, rows)
    asked = set(answered)
    empty, none = (0, None if source.per_event else 0), DayTotals(0, 0)
    differing = sorted(
        (
            k
            for k in {*ours, *theirs}
            if k[0] in asked and not theirs.get(k, none).agrees(source, ours.get(k, empty))
        ),
        key=lambda k: (k[0], k[1] or ""),
    )
    files: list[StagedFile] = []
    with staging_dir(f"{source.table}-sweep") as staging:
        if tag_scoped(source):
            by_tag: dict[str, list[date]] = {}
            for d, t in differing:
                by_tag.setdefault(t, []).append(d)
            for i, (tag, tag_days) in enumerate(sorted(by_tag.items())):
                batches = fetch_tag_days(client, source, tag, tag_days, opts)
                _stage_days(batches, staging, f"tag{i}", files)
        elif differing:
            batches = fetch_days(client, source, [d for d, _ in differing], opts)
            _stage_days(batches, staging, "day", files)
    changed_days = sorted({d for d, _ in differing})
    staged = StagedSlices(
        column_name(source.id_field) if tag_scoped(source) else None,
        differing,
        files,
        declared_types(source, opts.drop_columns),
        staging,
        after=forget(source.name, changed_days),
    )
    shown = [
        (
            str(d),
            t or "(whole day)",
            ours.get((d, t), empty)[0],
            theirs.get((d, t), none).rows,
            "-" if source.per_event else ours.get((d, t), empty)[1],
            "-" if source.per_event else theirs.get((d, t), none).num_events,
        )
        for d, t in differing[:MAX_ROWS_SHOWN]
    ]
    unanswered = sorted(d for w, _ in failures for d in w)
    summary = (
        f"Swept {len(answered)} of {len(days)} days of {source.name}: "
        f"{len(set(ours) | set(theirs))} slices compared with Pendo, {len(differing)} differed "
        f"and were reloaded ({len(changed_days)} days)."
    )
    if unanswered:
        summary += f" Pendo could not answer {len(unanswered)} day(s); they were left as they are."
    context.log.info(summary)
    metadata = {
        "sweep": dg.MetadataValue.md(
            summary
            + "\n\n"
            + markdown_table(
                [
                    "day",
                    source.id_field if tag_scoped(source) else "slice",
                    "warehouse rows",
                    "Pendo rows",
                    "warehouse numEvents",
                    "Pendo numEvents",
                ],
                shown,
            )
        ),
        "sweep_slices_compared": dg.MetadataValue.int(len(set(ours) | set(theirs))),
        "sweep_slices_reloaded": dg.MetadataValue.int(len(differing)),
        "sweep_days_changed": dg.MetadataValue.json([d.isoformat() for d in changed_days]),
        "sweep_days_not_answered": dg.MetadataValue.json([d.isoformat() for d in unanswered]),
    }
    return staged, metadata
