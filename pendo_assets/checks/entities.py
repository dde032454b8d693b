"""Entity table checks: every id once (blocking)."""

from collections.abc import Iterator, Sequence

import dagster as dg

from pendo_assets import step_order
from pendo_assets.assets.shared import asset_key
from pendo_assets.catalog import ENTITIES, RAW_SCHEMA, EntitySource
from pendo_assets.checks.shared import UNIQUE_IDS, missing_table, result
from pendo_assets.enriched_sql import entity_id_column
from pendo_assets.warehouse.io_manager import WarehouseResource
from pendo_assets.warehouse.store import Warehouse


def build_entity_checks(sources: Sequence[EntitySource] = ENTITIES) -> dg.AssetChecksDefinition:
    """``ids_are_unique`` of every entity table, as one subsettable step: the entities load
    in one step, and six check steps of a few milliseconds each cost more in Dagster's own
    bookkeeping than the queries do."""
    specs = [
        dg.AssetCheckSpec(
            UNIQUE_IDS,
            asset=asset_key(s),
            blocking=True,
            description=f"Every `{entity_id_column(s)}` appears once in `{RAW_SCHEMA}.{s.table}`.",
        )
        for s in sources
    ]

    @dg.multi_asset_check(
        specs=specs,
        can_subset=True,
        name="pendo_entities_checks",
        op_tags=step_order.tags(step_order.ENTITY_CHECKS),
    )
    def _unique(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        selected = context.selected_asset_check_keys
        with warehouse.warehouse.connect() as con:  # one connection for every table
            for s in sources:
                if dg.AssetCheckKey(asset_key(s), UNIQUE_IDS) in selected:
                    yield _unique_result(con, s)

    return _unique


def _unique_result(con, source: EntitySource) -> dg.AssetCheckResult:
    key, eid = asset_key(source), entity_id_column(source)
    if not Warehouse.columns(con, RAW_SCHEMA, source.table):
        return missing_table(key, UNIQUE_IDS)
    dupes = con.execute(
        f"SELECT {eid}, count(*) FROM {RAW_SCHEMA}.{source.table} "
        f"GROUP BY {eid} HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 20"
    ).fetchall()
    rows = con.execute(f"SELECT count(*) FROM {RAW_SCHEMA}.{source.table}").fetchone()[0]
    return result(
        key,
        UNIQUE_IDS,
        not dupes,
        f"Duplicated ids: {', '.join(str(i) for i, _ in dupes)}" if dupes else "Every id is unique",
        {
            "rows": dg.MetadataValue.int(rows),
            "duplicated_ids": dg.MetadataValue.json([str(i) for i, _ in dupes]),
        },
    )
