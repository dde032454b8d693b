"""Analytics mart assets: daily marts (same day partitions as the events) and unpartitioned
rollups over the whole loaded history. The SQL lives in ``pendo_assets/marts/`` and runs
inside DuckDB; the IO manager replaces the run's days (or the table) atomically.
"""

from datetime import date

import dagster as dg

from pendo_assets.assets.shared import (
    IO_MANAGER_KEY,
    daily_sql_table,
    demo_note,
    partition_dates,
    require_tables,
    table_key,
)
from pendo_assets.marts.first_seen import fold_and_recompute
from pendo_assets.marts.models import DAILY_MARTS, ROLLUPS, Mart
from pendo_assets.settings import Settings
from pendo_assets.warehouse.io_manager import DaysQuery, TableQuery, WarehouseResource

MART_GROUP = "analytics_marts"
MART_KINDS = {"duckdb"}


def rollup_automation() -> dg.AutomationCondition:
    """Rebuild when any upstream day changes. Unlike ``eager()`` this does not wait for every
    upstream day to exist: a rollup covers whatever history is loaded. Not on "newly missing":
    on a fresh warehouse that would request rollups before anything they read exists."""
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("on upstream change, after passing checks")


def _require(warehouse: WarehouseResource, mart: Mart) -> None:
    require_tables(warehouse.warehouse, f"analytics/{mart.name}", mart.reads)


def _description(mart: Mart, settings: Settings, extra: str) -> str:
    return f"{mart.description}\n\nDuckDB table `{mart.table}`. {extra}{demo_note(settings)}"


def build_daily_mart(
    mart: Mart, settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    first_seen = ""
    if mart.first_seen:
        tables = " and ".join(f"`analytics.{fs.table}`" for fs in mart.first_seen)
        first_seen = (
            f"First-time visitors and accounts come from {tables}, kept up to "
            "date as days load; when an earlier day is loaded after later ones, the later "
            "days it changes are recomputed in the same step (reported as materializations). "
        )

    @dg.asset(
        key=table_key(mart.table),
        deps=[table_key(t) for t in mart.reads],
        group_name=MART_GROUP,
        kinds=MART_KINDS,
        **daily_sql_table(settings, partitions),
        description=_description(
            mart, settings, f"One partition per subscription-local day. {first_seen}"
        ),
        metadata={"dagster/table_name": mart.table, "grain": ", ".join(mart.grain)},
    )
    def _daily(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> DaysQuery:
        days = partition_dates(context.partition_keys)
        _require(warehouse, mart)
        if not mart.first_seen:
            return DaysQuery(days, mart.sql)

        def fold(con) -> dict[date, dict]:
            # In the IO manager's write transaction: the first-seen table, the other days it
            # changes and this run's days are written together or not at all.
            redo = fold_and_recompute(con, mart, days, settings.timezone)
            if redo:
                context.log.info(
                    f"first-seen changed on {len(redo)} other day(s); recomputed "
                    + ", ".join(d.isoformat() for d in redo)
                )
            return {d: {"first_seen_pairs_moved": dg.MetadataValue.int(n)} for d, n in redo.items()}

        return DaysQuery(
            days,
            mart.sql,
            prepare=fold,
            other_days_description="Recomputed: an earlier day loaded since changed which "
            "visitors or accounts are first-time on this day.",
        )

    return _daily


def build_rollup(mart: Mart, settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=table_key(mart.table),
        deps=[table_key(t) for t in mart.reads],
        group_name=MART_GROUP,
        kinds=MART_KINDS,
        io_manager_key=IO_MANAGER_KEY,
        pool=settings.warehouse_pool,
        automation_condition=rollup_automation(),
        description=_description(mart, settings, "Rebuilt whole over the loaded history."),
        metadata={"dagster/table_name": mart.table, "grain": ", ".join(mart.grain)},
    )
    def _rollup(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> TableQuery:
        _require(warehouse, mart)
        return TableQuery(mart.sql)

    return _rollup


def mart_assets(settings: Settings, partitions: dg.PartitionsDefinition) -> list:
    return [build_daily_mart(m, settings, partitions) for m in DAILY_MARTS] + [
        build_rollup(m, settings) for m in ROLLUPS
    ]
