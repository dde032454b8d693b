"""Entity table checks: every id once (blocking)."""

import dagster as dg

from pendo_assets.assets.shared import asset_key
from pendo_assets.catalog import RAW_SCHEMA, Source
from pendo_assets.checks.shared import UNIQUE_IDS, missing_table
from pendo_assets.enriched_sql import entity_id_column
from pendo_assets.warehouse.io_manager import WarehouseResource


def build_entity_check(source: Source) -> dg.AssetChecksDefinition:
    key = asset_key(source)
    eid = entity_id_column(source)

    @dg.asset_check(
        asset=key,
        name=UNIQUE_IDS,
        blocking=True,
        description=f"Every `{eid}` appears once in `{RAW_SCHEMA}.{source.table}`.",
    )
    def _unique(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        wh = warehouse.warehouse
        if not wh.exists(RAW_SCHEMA, source.table):
            return missing_table(key, UNIQUE_IDS)
        dupes = wh.query(
            f"SELECT {eid}, count(*) FROM {RAW_SCHEMA}.{source.table} "
            f"GROUP BY {eid} HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 20"
        )
        rows = wh.query(f"SELECT count(*) FROM {RAW_SCHEMA}.{source.table}")[0][0]
        return dg.AssetCheckResult(
            passed=not dupes,
            metadata={
                "rows": dg.MetadataValue.int(rows),
                "duplicated_ids": dg.MetadataValue.json([str(i) for i, _ in dupes]),
            },
            description=(
                f"Duplicated ids: {', '.join(str(i) for i, _ in dupes)}"
                if dupes
                else "Every id is unique"
            ),
        )

    return _unique
