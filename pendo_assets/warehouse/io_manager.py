"""Dagster IO manager over the DuckDB ``Warehouse``: table = asset key, partitions = days.

Assets hand it *staged* data (Parquet files written while fetching) or a *query* to run inside
DuckDB; it replaces the table or the run's days atomically and reports row counts (per
partition in range runs), the column schema and a preview as materialization metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from pendo_assets.pendo.days import partition_dates
from pendo_assets.warehouse.staging import discard
from pendo_assets.warehouse.store import StagedFile, Warehouse, WriteResult

if TYPE_CHECKING:
    # Only a downstream asset that asks for a DataFrame needs pandas (DuckDB imports it
    # then); every `dagster` command that loads the project starts 0.2 s sooner without it.
    import pandas as pd


@dataclass
class StagedTable:
    """All rows of an unpartitioned table, staged as Parquet batches."""

    files: list[StagedFile]
    base_types: dict[str, str]
    staging_dir: Path | None = None
    # Statements run in the same transaction after the rows land (tables derived from them).
    after: list[str] = field(default_factory=list)
    # Set for an incremental load: upsert these rows by this column instead of replacing all.
    merge_key: str | None = None


@dataclass
class StagedDays:
    """The rows of every day of a partition range, staged as Parquet (one or more per day)."""

    days: list[date]
    files: list[StagedFile]
    base_types: dict[str, str]
    staging_dir: Path | None = None


@dataclass
class DaysQuery:
    """A SELECT whose rows replace ``days``: it takes the first and last day as ``$1`` and
    ``$2`` and returns a ``day`` column (see ``Warehouse.replace_days_from_query``)."""

    days: list[date]
    sql: str
    # Upkeep the query reads, run first in the write's transaction (a mart's first-seen
    # table); the other days it rewrites are reported as materializations of the asset too,
    # described by ``other_days_description``.
    prepare: Callable[[Any], dict[date, dict]] | None = None
    other_days_description: str = ""


@dataclass
class TableQuery:
    """A SELECT whose rows replace the whole table."""

    sql: str


def table_of(key: dg.AssetKey) -> tuple[str, str]:
    return key.path[0], key.path[-1]


def partition_days(context) -> list[date] | None:
    if not context.has_asset_partitions:
        return None
    return partition_dates(context.asset_partition_keys)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file, for assets and checks that run SQL on it."""

    database: str
    memory_limit: str | None = None  # DuckDB's memory_limit, e.g. "1GB"

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.database, memory_limit=self.memory_limit)


class DuckDBWarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset as DuckDB table ``<first key part>.<last key part>``."""

    resource: WarehouseResource

    @property
    def warehouse(self) -> Warehouse:
        return self.resource.warehouse

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        schema, table = table_of(context.asset_key)
        wh = self.warehouse
        days = partition_days(context)
        try:
            if isinstance(obj, StagedTable):
                if obj.merge_key is not None:
                    result = wh.merge_table(
                        schema, table, obj.files, obj.base_types, obj.merge_key, obj.after
                    )
                else:
                    result = wh.replace_table(schema, table, obj.files, obj.base_types, obj.after)
            elif isinstance(obj, StagedDays):
                result = wh.replace_days(schema, table, days or obj.days, obj.files, obj.base_types)
            elif isinstance(obj, DaysQuery):
                result = wh.replace_days_from_query(
                    schema, table, days or obj.days, obj.sql, obj.prepare
                )
                self._report_other_days(context, obj, result)
            elif isinstance(obj, TableQuery):
                result = wh.replace_table_from_query(schema, table, obj.sql)
            else:
                raise TypeError(
                    f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                    "expected StagedTable, StagedDays, DaysQuery or TableQuery"
                )
        finally:
            discard(getattr(obj, "staging_dir", None))
        self._report(context, schema, table, days, result)

    @staticmethod
    def _report_other_days(context: dg.OutputContext, obj: DaysQuery, result: WriteResult) -> None:
        for d, metadata in result.other_days.items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=context.asset_key,
                    partition=d.isoformat(),
                    description=obj.other_days_description,
                    metadata=metadata,
                )
            )
        if obj.prepare is not None:
            context.add_output_metadata(
                {
                    "recomputed_other_days": dg.MetadataValue.json(
                        [d.isoformat() for d in result.other_days]
                    )
                }
            )

    def _report(
        self,
        context: dg.OutputContext,
        schema: str,
        table: str,
        days: list[date] | None,
        result: WriteResult,
    ) -> None:
        meta = {
            "dagster/table_name": f"{schema}.{table}",
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(name, dtype) for name, dtype in result.columns]
            ),
            "table_rows": dg.MetadataValue.int(result.table_rows),
            "preview": dg.MetadataValue.md(result.preview),
        }
        if days is None:
            meta["dagster/row_count"] = dg.MetadataValue.int(result.table_rows)
            context.add_output_metadata(meta)
            return
        meta["rows_written"] = dg.MetadataValue.int(result.rows_written)
        # Dagster copies output metadata into every partition's materialization event, and a
        # year-long range writes 365 of them: the schema and preview go on the newest day only
        # (the one the UI shows as latest); every day gets its own row count.
        step = context.step_context
        last = max(result.rows_by_day)
        for d, n in result.rows_by_day.items():
            per_day = {
                "dagster/partition_row_count": dg.MetadataValue.int(n),
                "dagster/row_count": dg.MetadataValue.int(n),
            }
            step.add_asset_metadata(
                {**per_day, **meta} if d == last else per_day,
                asset_key=context.asset_key,
                partition_key=d.isoformat(),
            )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        schema, table = table_of(context.asset_key)
        days: Sequence[date] | None = None
        if context.has_asset_partitions:
            days = partition_dates(context.asset_partition_keys)
        return self.warehouse.read_df(schema, table, days)
