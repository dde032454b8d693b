"""Mart and rollup checks: grain and tie-out with the raw tables (both blocking), and for the
guide marts a warning naming guide event types that have no column of their own."""

from collections.abc import Iterator
from datetime import date

import dagster as dg

from pendo_assets.assets.shared import table_key
from pendo_assets.catalog import GUIDE_EVENT_TYPES
from pendo_assets.checks.shared import (
    GRAIN,
    KNOWN_TYPES,
    TIES_OUT,
    check_days,
    day_span,
    missing_table,
    name_days,
    result,
)
from pendo_assets.marts.models import (
    GUIDE_OTHER_COLUMN,
    KNOWN_GUIDE_TYPES_SQL,
    MARTS,
    Mart,
    tie_out_sql,
)
from pendo_assets.warehouse.io_manager import WarehouseResource
from pendo_assets.warehouse.store import Warehouse, markdown_table


def mart_key(mart: Mart) -> dg.AssetKey:
    return table_key(mart.table)


def build_mart_checks(mart: Mart) -> dg.AssetChecksDefinition:
    key = mart_key(mart)
    specs = [
        dg.AssetCheckSpec(
            GRAIN,
            asset=key,
            blocking=True,
            description=f"One row per ({', '.join(mart.grain)}).",
        ),
        dg.AssetCheckSpec(
            TIES_OUT,
            asset=key,
            blocking=True,
            additional_deps=sorted(
                {table_key(t.raw_table) for t in mart.tie_outs},
                key=lambda k: k.to_user_string(),
            ),
            description="Totals equal the raw tables': "
            + "; ".join(f"{t.mart_expr} = {t.raw_expr} of {t.raw_table}" for t in mart.tie_outs),
        ),
    ]
    if mart.counts_guide_types:
        specs.append(
            dg.AssetCheckSpec(
                KNOWN_TYPES,
                asset=key,
                description="Every guide event type is one with a column "
                f"({', '.join(GUIDE_EVENT_TYPES)}); others are counted in "
                f"`{GUIDE_OTHER_COLUMN}` and named here (warning).",
            )
        )

    @dg.multi_asset_check(specs=specs, name=f"{key.path[0]}_{key.path[-1]}_checks")
    def _checks(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        wh = warehouse.warehouse
        schema, table = mart.table.split(".")
        if not wh.exists(schema, table):
            for spec in specs:
                yield missing_table(key, spec.name)
            return
        days = check_days(context, wh, mart.table) if mart.daily else None
        where, params = ("WHERE day BETWEEN ? AND ?", day_span(days)) if days else ("", [])
        dupes = wh.query(
            f"SELECT {', '.join(mart.grain)}, count(*) FROM {mart.table} {where} "
            f"GROUP BY ALL HAVING count(*) > 1 LIMIT 20",
            params,
        )
        yield result(
            key,
            GRAIN,
            not dupes,
            metadata={"duplicated_keys": dg.MetadataValue.json([list(map(str, r)) for r in dupes])},
            description=f"{len(dupes)} duplicated keys" if dupes else "Grain unique",
        )
        yield _tie_out_result(wh, mart, key, days)
        if mart.counts_guide_types:
            yield _known_types_result(wh, key, days if mart.daily else None)

    return _checks


def _known_types_result(wh: Warehouse, key, days: list[date] | None) -> dg.AssetCheckResult:
    """Warn, naming them, when guide events of a type without a column were counted in
    `count_guide_other`: Pendo sends a new type; add it to catalog.GUIDE_EVENT_TYPES."""
    where, params = ("AND day BETWEEN ? AND ?", day_span(days)) if days else ("", [])
    other = wh.query(
        f"SELECT coalesce(type, '(no type)'), count(*), min(day), max(day) "
        f"FROM analytics.guide_events "
        f"WHERE (type IS NULL OR type NOT IN {KNOWN_GUIDE_TYPES_SQL}) {where} "
        f"GROUP BY 1 ORDER BY 2 DESC, 1",
        params,
    )
    rows = [(t, int(n), str(first), str(last)) for t, n, first, last in other]
    desc = (
        "Guide event types without a column, counted in "
        f"{GUIDE_OTHER_COLUMN}: " + ", ".join(f"{t} ({n})" for t, n, _, _ in rows)
        if rows
        else "Every guide event type has its column"
    )
    return result(
        key,
        KNOWN_TYPES,
        not rows,
        desc,
        {
            "other_types": dg.MetadataValue.md(
                markdown_table(["type", "events", "first day", "last day"], rows)
            )
        },
    )


def _tie_out_result(wh: Warehouse, mart: Mart, key, days: list[date] | None):
    rows, bad_days, bad_labels = [], set(), []
    for tie in mart.tie_outs:
        if mart.daily:
            if not days:
                continue
            for d, ours, raw in wh.query(tie_out_sql(mart, tie, by_day=True), day_span(days)):
                if d not in set(days):
                    continue
                ok = ours == raw
                rows.append((str(d), tie.label, int(ours), int(raw), "ok" if ok else "DIFFERS"))
                if not ok:
                    bad_days.add(d)
                    if tie.label not in bad_labels:
                        bad_labels.append(tie.label)
        else:
            ((ours, raw),) = wh.query(tie_out_sql(mart, tie, by_day=False))
            ok = ours == raw
            rows.append(("all", tie.label, int(ours), int(raw), "ok" if ok else "DIFFERS"))
            if not ok:
                bad_labels.append(tie.label)
    passed = not bad_labels
    header = ["day", "total", mart.name, "raw", "result"]
    if passed:
        desc = f"{', '.join(t.label for t in mart.tie_outs)} tie out with the raw tables"
    elif mart.daily:
        desc = (
            f"{', '.join(bad_labels)} differ from the raw tables on {name_days(sorted(bad_days))}"
        )
    else:
        desc = f"{', '.join(bad_labels)} differ from the raw tables"
    return result(
        key,
        TIES_OUT,
        passed,
        desc,
        {
            "totals": dg.MetadataValue.md(markdown_table(header, rows)),
            "failed_days": dg.MetadataValue.json([d.isoformat() for d in sorted(bad_days)]),
        },
    )


def all_mart_checks() -> list[dg.AssetChecksDefinition]:
    return [build_mart_checks(m) for m in MARTS]
