"""Checks of the raw event tables, generated from the catalog.

Blocking: ``grain_is_unique`` (aggregated sources) and ``required_ids_present`` (ids Pendo
always sends; never ``appId``), and ``reconciles_with_pendo`` on final days (see
``checks.reconcile``). Warnings: identical rows of per-event sources (Pendo sends and counts
them: not certainly wrong), unknown tag ids, partition gaps (freshness:
``pendo_assets.freshness``).
"""

from collections.abc import Iterator

import dagster as dg

from pendo_assets import step_order
from pendo_assets.assets.shared import asset_key
from pendo_assets.catalog import RAW_SCHEMA, SOURCES_BY_TABLE, Source
from pendo_assets.checks.partitions import _complete_result
from pendo_assets.checks.reconcile import reconcile_result
from pendo_assets.checks.shared import (
    COMPLETE,
    GRAIN,
    IDENTICAL,
    RECONCILES,
    REQUIRED,
    UNKNOWN,
    YOUNG,
    bad_days_md,
    check_days,
    day_span,
    fq_name,
    missing_table,
    name_days,
    result,
)
from pendo_assets.enriched_sql import entity_id_column
from pendo_assets.pendo.tables import column_names
from pendo_assets.resources import PendoResource
from pendo_assets.settings import Settings
from pendo_assets.warehouse.io_manager import WarehouseResource
from pendo_assets.warehouse.store import Warehouse, markdown_table

# Pendo tags are deleted and re-made, so some event rows always point at unknown ids.
UNKNOWN_ID_WARN_SHARE = 0.05


def grain_check(source: Source) -> str:
    """Aggregated rows are unique by their grain at Pendo; raw guide/poll events need not be."""
    return IDENTICAL if source.per_event else GRAIN


def _grain_result(wh: Warehouse, source: Source, key, fq, days, present: set[str]):
    names = column_names(source.columns)
    grain = [names[p] for p in source.grain if names[p] in present]
    dropped = [names[p] for p in source.grain if names[p] not in present]
    dupes = wh.query(
        f"""SELECT day, count(*), sum(n - 1) FROM (
                SELECT {", ".join(dict.fromkeys(["day", *grain]))}, count(*) AS n FROM {fq}
                WHERE day BETWEEN ? AND ? GROUP BY ALL HAVING count(*) > 1
            ) GROUP BY day ORDER BY day""",
        day_span(days),
    )
    dupes = [r for r in dupes if r[0] in set(days)]
    bad = [d for d, _, _ in dupes]
    meta = {
        "grain": dg.MetadataValue.json(grain),
        "days_checked": dg.MetadataValue.int(len(days)),
        "duplicated_rows_by_day": bad_days_md(
            ["day", "duplicated keys", "extra rows"], [(str(d), a, int(b)) for d, a, b in dupes]
        ),
        "failed_days": dg.MetadataValue.json([d.isoformat() for d in bad]),
    }
    if dropped:
        meta["grain_columns_dropped"] = dg.MetadataValue.json(dropped)
    if source.per_event:
        extra = sum(int(b) for _, _, b in dupes)
        description = (
            f"{extra} rows identical to another row in every column kept, on {name_days(bad)}: "
            "Pendo sends and counts each (reconciliation compares the counts); kept as sent"
            if bad
            else f"No identical rows on {len(days)} days"
        )
    else:
        description = (
            f"Duplicated rows on {name_days(bad)}" if bad else f"Grain unique on {len(days)} days"
        )
    return result(key, grain_check(source), not bad, metadata=meta, description=description)


def _required_result(wh: Warehouse, source: Source, key, fq, days, present: set[str]):
    names = column_names(source.columns)
    required = [names[p] for p in source.required if names[p] in present]
    missing_cols = [names[p] for p in source.required if names[p] not in present]
    cond = " OR ".join(f"{c} IS NULL" for c in required) or "FALSE"
    counts = wh.query(
        f"SELECT day, count(*) FROM {fq} WHERE day BETWEEN ? AND ? AND ({cond}) "
        "GROUP BY day ORDER BY day",
        day_span(days),
    )
    bad_rows = [(d, n) for d, n in counts if d in set(days)]
    bad = [d for d, _ in bad_rows]
    passed = not bad and not missing_cols
    desc = f"Required ids present on {len(days)} days"
    if missing_cols:
        desc = f"Required columns missing from the table: {', '.join(missing_cols)}"
    elif bad:
        desc = f"Rows with a null required id on {name_days(bad)}"
    return result(
        key,
        REQUIRED,
        passed,
        desc,
        {
            "required": dg.MetadataValue.json(required),
            "null_rows_by_day": bad_days_md(
                ["day", "rows with a null id"], [(str(d), n) for d, n in bad_rows]
            ),
            "failed_days": dg.MetadataValue.json([d.isoformat() for d in bad]),
        },
    )


def _tag_lookups(source: Source, present: set[str]) -> list[tuple[str, Source]]:
    """(id column, entity) of the lookups that point at app tags (pages, features, guides)."""
    out = []
    for lk in source.lookups:
        entity = SOURCES_BY_TABLE[lk.entity]
        if entity.app_scoped and lk.column in present:
            out.append((lk.column, entity))
    return out


def _unknown_result(wh: Warehouse, source: Source, key, fq, days, present: set[str]):
    lookups = _tag_lookups(source, present)
    rows, worst = [], 0.0
    for col, entity in lookups:
        if not wh.exists(RAW_SCHEMA, entity.table):
            return result(
                key,
                UNKNOWN,
                False,
                description=f"{RAW_SCHEMA}/{entity.table} is not loaded: every id is unknown",
            )
        eid = entity_id_column(entity)
        for d, total, unknown in wh.query(
            f"""SELECT e.day, count(*), count(*) FILTER (WHERE t.{eid} IS NULL)
                FROM {fq} e
                LEFT JOIN (SELECT DISTINCT {eid} FROM {RAW_SCHEMA}.{entity.table}) t
                       ON t.{eid} = e.{col}
                WHERE e.day BETWEEN ? AND ? GROUP BY e.day ORDER BY e.day""",
            day_span(days),
        ):
            share = unknown / total if total else 0.0
            worst = max(worst, share)
            rows.append((str(d), col, total, unknown, f"{share:.2%}"))
    total = sum(r[2] for r in rows)
    unknown = sum(r[3] for r in rows)
    share = unknown / total if total else 0.0
    passed = share <= UNKNOWN_ID_WARN_SHARE
    return result(
        key,
        UNKNOWN,
        passed,
        metadata={
            "unknown_share": dg.MetadataValue.float(round(share, 6)),
            "worst_day_share": dg.MetadataValue.float(round(worst, 6)),
            "threshold": dg.MetadataValue.float(UNKNOWN_ID_WARN_SHARE),
            "days": dg.MetadataValue.md(
                markdown_table(["day", "id column", "rows", "unknown", "share"], rows)
            ),
        },
        description=(
            f"{share:.2%} of rows point at ids unknown to the entity tables "
            f"(warning above {UNKNOWN_ID_WARN_SHARE:.0%}; Pendo tags get deleted and re-made)"
        ),
    )


def build_raw_event_checks(source: Source, settings: Settings) -> dg.AssetChecksDefinition:
    key = asset_key(source)
    specs = [
        dg.AssetCheckSpec(
            IDENTICAL,
            asset=key,
            description="Rows identical in every column kept (warning): Pendo can send the same "
            "raw event twice and counts both, so they are kept; reconciles_with_pendo compares "
            "the counts.",
        )
        if source.per_event
        else dg.AssetCheckSpec(
            GRAIN,
            asset=key,
            blocking=True,
            description="No two rows share all dimension columns (the grain) on a day.",
        ),
        dg.AssetCheckSpec(
            REQUIRED, asset=key, blocking=True, description="Ids that Pendo always sends are set."
        ),
        dg.AssetCheckSpec(
            RECONCILES,
            asset=key,
            blocking=True,
            description="Each final day's row count (and sum of numEvents) equals what Pendo's "
            "own aggregation (count / group by day) reports for the same filters. Final: older "
            f"than PENDO_FINAL_AFTER_DAYS={settings.final_after_days} days.",
        ),
        dg.AssetCheckSpec(
            YOUNG,
            asset=key,
            description="Young days (Pendo still processes late events) agree with Pendo's "
            "totals when asked again, and Pendo could answer every totals query (warning).",
        ),
        dg.AssetCheckSpec(
            COMPLETE,
            asset=key,
            description="No missing day between the oldest and the newest loaded day (warning).",
        ),
    ]
    if any(SOURCES_BY_TABLE[lk.entity].app_scoped for lk in source.lookups):
        specs.append(
            dg.AssetCheckSpec(
                UNKNOWN,
                asset=key,
                additional_deps=[
                    asset_key(SOURCES_BY_TABLE[lk.entity])
                    for lk in source.lookups
                    if SOURCES_BY_TABLE[lk.entity].app_scoped
                ],
                description="Share of rows whose page/feature/guide/track type id is unknown "
                f"to the entity tables (warning above {UNKNOWN_ID_WARN_SHARE:.0%}).",
            )
        )
    fq = fq_name(RAW_SCHEMA, source.table)

    @dg.multi_asset_check(
        specs=specs,
        name=f"{RAW_SCHEMA}_{source.table}_checks",
        op_tags=step_order.tags(step_order.event_checks(source)),
    )
    def _checks(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        pendo: PendoResource,
    ) -> Iterator[dg.AssetCheckResult]:
        wh = warehouse.warehouse
        if not wh.exists(RAW_SCHEMA, source.table):
            for spec in specs:
                yield missing_table(key, spec.name)
            return
        with wh.connect() as con:
            present = set(wh.columns(con, RAW_SCHEMA, source.table))
        days = check_days(context, wh, fq)
        if days:
            yield _grain_result(wh, source, key, fq, days, present)
            yield _required_result(wh, source, key, fq, days, present)
            yield from reconcile_result(wh, source, key, fq, days, pendo, settings, settings.clock)
            if any(s.name == UNKNOWN for s in specs):
                yield _unknown_result(wh, source, key, fq, days, present)
        else:
            for name in (grain_check(source), REQUIRED, RECONCILES, YOUNG, UNKNOWN):
                if any(s.name == name for s in specs):
                    yield result(key, name, True, "No days")
        yield _complete_result(context, key)

    return _checks
