"""Dagster IO manager over the DuckDB ``Warehouse``: table = asset key, partitions = days.

Every asset that writes a table writes it through here: the loads hand over *staged* data
(Parquet files written while fetching), the enriched tables and marts a *query* to run inside
DuckDB, the entity histories a *history update*. Each knows how to write itself (``write``),
atomically, replacing the table or the run's days; the IO manager reports row counts (per
partition in range runs), the column schema and a preview as materialization metadata, so
every table's materializations look the same in the UI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg

from pendo_assets.dagster_internals import add_partition_metadata
from pendo_assets.pendo.days import partition_dates
from pendo_assets.reader import publish_after_run
from pendo_assets.settings import Settings
from pendo_assets.warehouse.history import apply_history
from pendo_assets.warehouse.staging import discard
from pendo_assets.warehouse.store import (
    StagedFile,
    Statement,
    Warehouse,
    Watch,
    WriteResult,
    markdown_table,
)

if TYPE_CHECKING:
    # Only a downstream asset that asks for a DataFrame needs pandas (DuckDB imports it
    # then); every `dagster` command that loads the project starts 0.2 s sooner without it.
    import pandas as pd


class Write(Protocol):
    """What an asset hands the IO manager: something that writes itself into its table."""

    def write(
        self, wh: Warehouse, schema: str, table: str, days: list[date] | None
    ) -> WriteResult: ...


@dataclass
class StagedTable:
    """All rows of an unpartitioned table, staged as Parquet batches."""

    files: list[StagedFile]
    base_types: dict[str, str]
    staging_dir: Path | None = None
    # Statements run in the same transaction after the rows land (tables derived from them).
    after: list[Statement] = field(default_factory=list)
    # Set for an incremental load: upsert these rows by this column instead of replacing all.
    merge_key: str | None = None
    # Looks at the rows replaced and their replacement, in the write's transaction.
    watch: Watch | None = None

    def write(self, wh: Warehouse, schema: str, table: str, days: list[date] | None):
        result = wh.replace_table(
            schema, table, self.files, self.base_types, self.after, self.merge_key, self.watch
        )
        report = getattr(self.watch, "report", None)
        if report is not None:
            result.metadata.update({k: dg.MetadataValue.json(v) for k, v in report().items()})
        return result


@dataclass
class StagedDays:
    """The rows of every day of a partition range, staged as Parquet (one or more per day)."""

    days: list[date]
    files: list[StagedFile]
    base_types: dict[str, str]
    staging_dir: Path | None = None

    def write(self, wh: Warehouse, schema: str, table: str, days: list[date] | None):
        return wh.replace_days(schema, table, days or self.days, self.files, self.base_types)


@dataclass
class StagedSlices:
    """Some slices of a daily table, staged as Parquet: ``(day, key)`` is one key's rows of a
    day (one tag's rows), ``(day, None)`` the whole day. Only those rows are replaced, and the
    ``after`` statements (state kept about those days) run in the same transaction."""

    key_column: str | None
    slices: list[tuple[date, str | None]]
    files: list[StagedFile]
    base_types: dict[str, str]
    staging_dir: Path | None = None
    after: list[Statement] = field(default_factory=list)

    def write(self, wh: Warehouse, schema: str, table: str, days: list[date] | None):
        return wh.replace_slices(
            schema,
            table,
            self.key_column,
            self.slices,
            self.files,
            self.base_types,
            days or sorted({d for d, _ in self.slices}),
            self.after,
        )


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

    def write(self, wh: Warehouse, schema: str, table: str, days: list[date] | None):
        return wh.replace_days_from_query(schema, table, days or self.days, self.sql, self.prepare)


@dataclass
class TableQuery:
    """A SELECT whose rows replace the whole table."""

    sql: str

    def write(self, wh: Warehouse, schema: str, table: str, days: list[date] | None):
        return wh.replace_table_from_query(schema, table, self.sql)


@dataclass
class HistoryUpdate:
    """Fold the entity table ``snapshot`` into this (SCD type 2) history table as of
    ``loaded_at`` (see ``warehouse.history.apply_history``)."""

    snapshot: tuple[str, str]
    key: str | tuple[str, ...]  # several columns for a pair table
    loaded_at: datetime
    full: bool
    untracked_pattern: str
    track: frozenset[str] = frozenset()

    def write(self, wh: Warehouse, schema: str, table: str, days: list[date] | None):
        applied = apply_history(
            wh,
            self.snapshot,
            (schema, table),
            self.key,
            self.loaded_at,
            self.full,
            self.untracked_pattern,
            self.track,
        )
        fq = f"{schema}.{table}"
        keys = [self.key] if isinstance(self.key, str) else list(self.key)
        with wh.connect() as con:
            result = wh.table_result(con, schema, table)
            current = con.execute(f"SELECT count(*) FILTER (is_current) FROM {fq}").fetchone()[0]
            latest = con.execute(
                f"SELECT {', '.join(keys)}, valid_from, valid_to, is_current, is_deleted "
                f"FROM {fq} ORDER BY valid_from DESC LIMIT 5"
            ).fetchall()
        result.summary = (
            f"{fq}: {applied.new_versions} new version(s), {applied.deleted} deleted, as of "
            f"{self.loaded_at.isoformat()} ({'full' if self.full else 'incremental'} load)"
        )
        result.metadata = {
            "current_rows": dg.MetadataValue.int(current),
            "new_versions": dg.MetadataValue.int(applied.new_versions),
            "deleted": dg.MetadataValue.int(applied.deleted),
            "as_of": dg.MetadataValue.text(self.loaded_at.isoformat()),
            "full_load": dg.MetadataValue.bool(self.full),
            "untracked_columns": dg.MetadataValue.json(list(applied.untracked_columns)),
            "preview": dg.MetadataValue.md(
                markdown_table(
                    [*keys, "valid_from", "valid_to", "is_current", "is_deleted"], latest
                )
            ),
        }
        return result


def table_of(key: dg.AssetKey) -> tuple[str, str]:
    return key.path[0], key.path[-1]


def partition_days(context) -> list[date] | None:
    if not context.has_asset_partitions:
        return None
    return partition_dates(context.asset_partition_keys)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file, for assets and checks that run SQL on it, as the
    ``settings`` resource's ``PENDO_DUCKDB_*`` settings say."""

    settings: Settings

    @property
    def database(self) -> str:
        return self.settings.duckdb_path

    @property
    def read_path(self) -> str | None:
        """The readers' snapshot published after runs (None: off)."""
        return self.settings.duckdb_read_path

    @property
    def memory_limit(self) -> str:
        return self.settings.duckdb_memory_limit

    @property
    def lock_wait_s(self) -> float:
        """How long a run waits for another process that holds the file."""
        return self.settings.duckdb_lock_wait_s

    @property
    def warehouse(self) -> Warehouse:
        return self.warehouse_with()

    def warehouse_with(self, **overrides) -> Warehouse:
        kwargs = dict(
            memory_limit=self.memory_limit,
            lock_wait_s=self.lock_wait_s,
            read_path=self.read_path,
            # Captured into the run's log when said during a step.
            log_wait=dg.get_dagster_logger("pendo_assets.warehouse").warning,
        )
        return Warehouse(self.database, **{**kwargs, **overrides})


class DuckDBWarehouseIOManager(dg.ConfigurableIOManager):
    """Stores each asset as DuckDB table ``<first key part>.<last key part>``."""

    resource: WarehouseResource

    @property
    def warehouse(self) -> Warehouse:
        return self.resource.warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # The end of the run in this process: publish the readers' snapshot if it changed.
        publish_after_run(self.warehouse, context)

    def handle_output(self, context: dg.OutputContext, obj: Write | None) -> None:
        if obj is None:
            return
        if not callable(getattr(obj, "write", None)):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; expected "
                "StagedTable, StagedDays, StagedSlices, DaysQuery, TableQuery or HistoryUpdate"
            )
        schema, table = table_of(context.asset_key)
        days = partition_days(context)
        try:
            result = obj.write(self.warehouse, schema, table, days)
        finally:
            discard(getattr(obj, "staging_dir", None))
        if result.summary:
            context.log.info(result.summary)
        if isinstance(obj, DaysQuery):
            self._report_other_days(context, obj, result)
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
            context.add_output_metadata({**meta, **result.metadata})
            return
        meta["rows_written"] = dg.MetadataValue.int(result.rows_written)
        # Dagster copies output metadata into every partition's materialization event, and a
        # year-long range writes 365 of them: the schema and preview go on the newest day only
        # (the one the UI shows as latest); every day gets its own row count.
        last = max(result.rows_by_day)
        per_partition = {}
        for d, n in result.rows_by_day.items():
            per_day = {
                "dagster/partition_row_count": dg.MetadataValue.int(n),
                "dagster/row_count": dg.MetadataValue.int(n),
            }
            per_partition[d.isoformat()] = {**per_day, **meta} if d == last else per_day
        add_partition_metadata(context.step_context, context.asset_key, per_partition)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        schema, table = table_of(context.asset_key)
        return self.warehouse.read_df(schema, table, partition_days(context))
