"""What every asset module spells the same way: asset keys from tables, the IO manager and kinds,
partition keys as dates, the demo note, and the failure when an upstream table is missing."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from pendo_assets.automation import daily_automation
from pendo_assets.catalog import MEMBERS_BY_TABLE, NESTED_BY_TABLE, RAW_SCHEMA, Source
from pendo_assets.pendo.days import partition_dates
from pendo_assets.settings import Settings
from pendo_assets.warehouse.store import Warehouse

__all__ = [
    "IO_MANAGER_KEY",
    "KINDS",
    "asset_key",
    "daily_sql_table",
    "demo_note",
    "partition_dates",
    "require_tables",
    "table_key",
]

KINDS = {"pendo", "duckdb"}
IO_MANAGER_KEY = "warehouse_io_manager"


def asset_key(source: Source, schema: str = RAW_SCHEMA) -> dg.AssetKey:
    """The asset of a catalog source's table in ``schema`` (``pendo`` or ``analytics``)."""
    return dg.AssetKey([schema, source.table])


def table_key(fq: str) -> dg.AssetKey:
    """The asset that writes the DuckDB table ``schema.table``: a nested table
    (``pendo.guide_steps``) is written by the entity it is flattened from."""
    schema, table = fq.split(".")
    if schema == RAW_SCHEMA and table in NESTED_BY_TABLE:
        table = NESTED_BY_TABLE[table][1].table
    elif schema == RAW_SCHEMA and table in MEMBERS_BY_TABLE:
        table = MEMBERS_BY_TABLE[table][1].table
    return dg.AssetKey([schema, table])


def daily_sql_table(settings: Settings, partitions: dg.PartitionsDefinition) -> dict:
    """How every daily table computed inside DuckDB (enriched events, daily marts) is built:
    written by the IO manager one day per partition, a range in one run, under the warehouse
    pool; it follows every upstream day that lands (a backfill too), once its blocking checks
    passed."""
    return dict(
        io_manager_key=IO_MANAGER_KEY,
        pool=settings.warehouse_pool,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=daily_automation(settings.lookback_days),
    )


def demo_note(settings: Settings) -> str:
    if not settings.demo:
        return ""
    return (
        "\n\n**DEMO DATA** from the embedded Pendo emulator. To load your own subscription set "
        "`PENDO_INTEGRATION_KEY`, `PENDO_REGION` and `PENDO_START_DATE` (see README)."
    )


def require_tables(wh: Warehouse, who: str, tables: Sequence[str], then: str = "this one") -> None:
    """Fail, naming the assets to materialize, when any of ``tables`` (``schema.table``) is not
    in the warehouse yet: an empty result would look like a day without events."""
    missing = wh.missing(tables)
    if missing:
        keys = ", ".join(t.replace(".", "/") for t in missing)
        raise dg.Failure(
            f"{who} needs {keys} in the warehouse first: materialize those assets, then {then}."
        )
