"""Enriched event assets: each raw event day joined to the names its ids point to."""

import dagster as dg

from pendo_assets import step_order
from pendo_assets.assets.schema import enriched_schema
from pendo_assets.assets.shared import (
    KINDS,
    asset_key,
    daily_sql_table,
    demo_note,
    partition_dates,
    require_tables,
)
from pendo_assets.catalog import (
    ANALYTICS_SCHEMA,
    EVENTS,
    NESTED_BY_TABLE,
    RAW_SCHEMA,
    SOURCES_BY_TABLE,
    EventSource,
)
from pendo_assets.enriched_sql import enriched_query, lookup_columns, lookup_tables
from pendo_assets.settings import Settings
from pendo_assets.warehouse.io_manager import DaysQuery, WarehouseResource

ENRICHED_GROUP = "analytics_events"


def build_enriched_asset(
    source: EventSource, settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    entities = lookup_tables(source)
    # Nested tables (pendo.polls) are written by the entity they are flattened from.
    upstream = sorted(
        {NESTED_BY_TABLE[t][1].table if t in NESTED_BY_TABLE else t for t in entities}
    )
    names = ", ".join(f"`{c}`" for c in lookup_columns(source))

    @dg.asset(
        key=asset_key(source, ANALYTICS_SCHEMA),
        deps=[asset_key(source), *(asset_key(SOURCES_BY_TABLE[t]) for t in upstream)],
        group_name=ENRICHED_GROUP,
        kinds=KINDS,
        **daily_sql_table(settings, partitions),
        op_tags=step_order.tags(step_order.ENRICHED),
        description=f"Every row of `{RAW_SCHEMA}.{source.table}` for the day (none dropped, "
        f"none duplicated) plus the names its ids point to: {names}. Computed inside DuckDB "
        f"into `{ANALYTICS_SCHEMA}.{source.table}`.{demo_note(settings)}",
        metadata={
            "dagster/column_schema": enriched_schema(source, settings.drop_columns),
            "dagster/table_name": f"{ANALYTICS_SCHEMA}.{source.table}",
        },
    )
    def _enriched(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> DaysQuery:
        days = partition_dates(context.partition_keys)
        wh = warehouse.warehouse
        require_tables(
            wh,
            f"{ANALYTICS_SCHEMA}/{source.table}",
            [f"{RAW_SCHEMA}.{t}" for t in [source.table, *entities]],
        )
        with wh.connect() as con:
            raw_cols = list(wh.columns(con, RAW_SCHEMA, source.table))
            entity_cols = {t: list(wh.columns(con, RAW_SCHEMA, t)) for t in entities}
        sql = enriched_query(source, raw_cols, entity_cols)
        return DaysQuery(days, sql)

    return _enriched


def enriched_assets(settings: Settings, partitions: dg.PartitionsDefinition) -> list:
    return [build_enriched_asset(s, settings, partitions) for s in EVENTS]
