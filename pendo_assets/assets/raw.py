"""Raw Pendo assets, one per catalog source: entities (unpartitioned) and events (daily)."""

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import dagster as dg

from pendo_assets.assets.schema import raw_schema
from pendo_assets.catalog import ENTITIES, EVENTS, RAW_SCHEMA, Source
from pendo_assets.enriched import nested_query
from pendo_assets.pendo.fetch import fetch_days, fetch_entity
from pendo_assets.pendo.tables import column_name, declared_types
from pendo_assets.resources import PendoResource
from pendo_assets.settings import WEEKDAYS, Settings
from pendo_assets.warehouse.io_manager import StagedDays, StagedTable, WarehouseResource
from pendo_assets.warehouse.store import stage

ENTITY_GROUP = "pendo_entities"
RAW_EVENT_GROUP = "pendo_raw_events"
KINDS = {"pendo", "duckdb"}
IO_MANAGER_KEY = "warehouse_io_manager"


def asset_key(source: Source, schema: str = RAW_SCHEMA) -> dg.AssetKey:
    return dg.AssetKey([schema, source.table])


def demo_note(settings: Settings) -> str:
    if not settings.demo:
        return ""
    return (
        "\n\n**DEMO DATA** from the embedded Pendo emulator. To load your own subscription set "
        "`PENDO_INTEGRATION_KEY`, `PENDO_REGION` and `PENDO_START_DATE` (see README)."
    )


@contextmanager
def staging_dir(source: Source) -> Iterator[Path]:
    """A temporary folder for a run's Parquet batches. The IO manager removes it after the
    write; if fetching fails, it is removed here."""
    path = Path(tempfile.mkdtemp(prefix=f"pendo-{source.table}-"))
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _client_metadata(pendo: PendoResource, before: dict, started: float) -> dict:
    now = pendo.client.stats.as_dict()
    return {
        "pendo_requests": dg.MetadataValue.int(now["requests"] - before["requests"]),
        "pendo_retries": dg.MetadataValue.int(now["retries"] - before["retries"]),
        "pendo_bytes": dg.MetadataValue.int(now["bytes"] - before["bytes"]),
        "pendo_rows": dg.MetadataValue.int(now["rows"] - before["rows"]),
        "fetch_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
    }


def nested_statements(source: Source, drop: frozenset[str]) -> list[str]:
    """Rebuild the tables flattened from this entity (``pendo.guide_steps``, ...)."""
    return [
        f"CREATE OR REPLACE TABLE {RAW_SCHEMA}.{n.table} AS {nested_query(n, source)}"
        for n in source.nested
        if n.field not in drop
    ]


def _nested_note(source: Source) -> str:
    if not source.nested:
        return ""
    return " Flattened from it in the same transaction: " + " ".join(
        f"`{RAW_SCHEMA}.{n.table}`: {n.description}" for n in source.nested
    )


class EntityConfig(dg.Config):
    full_refresh: bool = False  # re-read every row (and close deleted entities in history)


@dataclass(frozen=True)
class RefreshPlan:
    full: bool
    since_ms: int | None
    reason: str


def refresh_plan(
    source: Source, settings: Settings, watermark_ms: int | None, asked_full: bool, now: datetime
) -> RefreshPlan:
    """Full or incremental? Incremental only for entities with an ``updated_field``, after a
    first load, and not on the weekly full-refresh day nor when the run asks for a full one.

    ``watermark_ms`` is the newest ``updated_field`` already loaded: Pendo's own clock, so
    the window never depends on ours; the safety margin covers rows that become visible late.
    """
    if source.updated_field is None:
        return RefreshPlan(True, None, "always read whole")
    if asked_full:
        return RefreshPlan(True, None, "run config full_refresh: true")
    if settings.full_refresh_weekday is not None and now.weekday() == settings.full_refresh_weekday:
        day = WEEKDAYS[settings.full_refresh_weekday]
        return RefreshPlan(True, None, f"weekly full refresh ({day}, PENDO_FULL_REFRESH_WEEKDAY)")
    if watermark_ms is None:
        return RefreshPlan(True, None, "first load")
    since = watermark_ms - settings.incremental_margin_minutes * 60_000
    return RefreshPlan(False, since, "incremental")


def _watermark_ms(warehouse: WarehouseResource, source: Source) -> int | None:
    if source.updated_field is None:
        return None
    wh = warehouse.warehouse
    col = column_name(source.updated_field)
    with wh.connect() as con:
        if col not in wh.columns(con, RAW_SCHEMA, source.table):
            return None
        value = con.execute(f"SELECT epoch_ms(max({col})) FROM {RAW_SCHEMA}.{source.table}")
        return value.fetchone()[0]


def build_entity_asset(source: Source, settings: Settings) -> dg.AssetsDefinition:
    drop = settings.drop_columns
    refresh_note = ""
    if source.updated_field is not None:
        weekly = (
            "never"
            if settings.full_refresh_weekday is None
            else f"every {WEEKDAYS[settings.full_refresh_weekday].title()}"
        )
        refresh_note = (
            f". Incremental: only rows whose `{source.updated_field}` moved since the newest one "
            f"loaded (minus {settings.incremental_margin_minutes} min) are fetched and merged "
            f"by id; a full refresh runs {weekly} (`PENDO_FULL_REFRESH_WEEKDAY`) or with run "
            "config `full_refresh: true`, and only a full refresh lets history mark entities "
            "deleted."
        )

    @dg.asset(
        key=asset_key(source),
        group_name=ENTITY_GROUP,
        kinds=KINDS,
        io_manager_key=IO_MANAGER_KEY,
        pool=settings.warehouse_pool,
        description=f"{source.description}\n\nPendo source `{source.name}` -> DuckDB table "
        f"`{RAW_SCHEMA}.{source.table}`"
        f"{refresh_note or ', replaced whole on every run.'}"
        f"{_nested_note(source)}{demo_note(settings)}",
        metadata={
            "dagster/column_schema": raw_schema(source, drop),
            "dagster/table_name": f"{RAW_SCHEMA}.{source.table}",
            "pendo_source": source.name,
            **{
                f"{n.table}_column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn(c, t)
                        for c, t in {n.parent_key: "VARCHAR", "app_id": "BIGINT", **n.types}.items()
                    ]
                )
                for n in source.nested
            },
        },
    )
    def _entity(
        context: dg.AssetExecutionContext,
        config: EntityConfig,
        pendo: PendoResource,
        warehouse: WarehouseResource,
    ) -> StagedTable:
        started, before = time.monotonic(), pendo.client.stats.as_dict()
        plan = refresh_plan(
            source,
            settings,
            _watermark_ms(warehouse, source),
            config.full_refresh,
            datetime.now(settings.zone),
        )
        context.log.info(
            f"{source.name}: {'full' if plan.full else 'incremental'} load ({plan.reason})"
            + (f", rows updated since epoch ms {plan.since_ms}" if plan.since_ms else "")
        )
        files = []
        with staging_dir(source) as staging:
            batches = fetch_entity(pendo.client, source, pendo.options, since_ms=plan.since_ms)
            for i, batch in enumerate(batches):
                files.append(stage(batch.table, batch.types, staging / f"{i:05d}.parquet"))
                context.log.info(f"fetched {sum(f.rows for f in files)} rows of {source.name}")
        context.add_output_metadata(
            {
                **_client_metadata(pendo, before, started),
                "full_refresh": dg.MetadataValue.bool(plan.full),
                "refresh_reason": dg.MetadataValue.text(plan.reason),
            }
        )
        return StagedTable(
            files,
            declared_types(source, drop),
            staging,
            after=nested_statements(source, drop),
            merge_key=None if plan.full else column_name(source.id_column),
        )

    return _entity


def build_event_asset(
    source: Source, settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    drop = settings.drop_columns
    base_types = declared_types(source, drop)

    @dg.asset(
        key=asset_key(source),
        group_name=RAW_EVENT_GROUP,
        kinds=KINDS,
        io_manager_key=IO_MANAGER_KEY,
        pool=settings.warehouse_pool,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=f"{source.description}\n\nPendo source `{source.name}` -> DuckDB table "
        f"`{RAW_SCHEMA}.{source.table}`; one partition per subscription-local day "
        f"(`day`), replaced atomically when re-materialized.{demo_note(settings)}",
        metadata={
            "dagster/column_schema": raw_schema(source, drop),
            "dagster/table_name": f"{RAW_SCHEMA}.{source.table}",
            "pendo_source": source.name,
        },
    )
    def _events(context: dg.AssetExecutionContext, pendo: PendoResource) -> StagedDays:
        days = [date.fromisoformat(k) for k in context.partition_keys]
        started, before = time.monotonic(), pendo.client.stats.as_dict()
        step = max(1, len(days) // 20)

        def progress(done: int, total: int) -> None:
            if done == total or done % step == 0:
                context.log.info(f"fetched {done}/{total} days of {source.name}")

        files = []
        with staging_dir(source) as staging:
            for day, table in fetch_days(pendo.client, source, days, pendo.options, progress):
                files.append(stage(table.table, table.types, staging / f"{day}.parquet"))
        context.add_output_metadata(_client_metadata(pendo, before, started))
        return StagedDays(days, files, base_types, staging)

    return _events


def raw_assets(settings: Settings, partitions: dg.PartitionsDefinition) -> list:
    return [build_entity_asset(s, settings) for s in ENTITIES] + [
        build_event_asset(s, settings, partitions) for s in EVENTS
    ]
