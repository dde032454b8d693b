"""Raw Pendo assets, one per catalog source: entities (unpartitioned) and events (daily).

Each kind is one subsettable multi-asset, so a run over several sources fetches them all at once
through one client (one bound on requests in flight); asset keys, tables and checks are per
source as before.
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc

from pendo_assets import step_order
from pendo_assets.assets.repair import EventConfig, repair_tags, sweep
from pendo_assets.assets.schema import raw_schema
from pendo_assets.assets.shared import IO_MANAGER_KEY, KINDS, asset_key, demo_note, partition_dates
from pendo_assets.catalog import (
    ENTITIES,
    EVENTS,
    RAW_SCHEMA,
    SOURCES_BY_NAME,
    EntitySource,
    Members,
    Source,
)
from pendo_assets.clock import Clock
from pendo_assets.enriched_sql import nested_query
from pendo_assets.pendo.client import PendoClient
from pendo_assets.pendo.fetch import fetch_days, fetch_entity
from pendo_assets.pendo.metadata_schema import DeclaredTyping
from pendo_assets.pendo.segments import fetch_segment_visitors
from pendo_assets.pendo.tables import column_name, declared_types
from pendo_assets.resources import PendoResource
from pendo_assets.settings import WEEKDAYS, Settings
from pendo_assets.warehouse.io_manager import StagedDays, StagedTable, WarehouseResource
from pendo_assets.warehouse.reconciled import forget, remembered
from pendo_assets.warehouse.staging import staging_dir
from pendo_assets.warehouse.store import stage
from pendo_assets.warehouse.tag_changes import TagWatch

ENTITY_GROUP = "pendo_entities"
# Materialization metadata of a REST entity with members: parent id -> why its members could
# not be asked (read by the members check).
MEMBERS_FAILED = "segments_failed"
RAW_EVENT_GROUP = "pendo_raw_events"
EVENTS_OP = "load_pendo_events"


def _client_metadata(pendo: PendoResource, source: Source, before: dict, started: float) -> dict:
    """This source's share of the client's requests (sources fetched together share one)."""
    now = pendo.client.source_stats_dict(source.name)
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


def members_statements(members: Members, files: list[Path], kept: list[str]) -> list[str]:
    """Replace ``pendo.<members.table>`` with the staged pairs, keeping the pairs of the
    parents in ``kept`` (those whose membership could not be asked this time)."""
    fq = f"{RAW_SCHEMA}.{members.table}"
    out = [
        f"CREATE TABLE IF NOT EXISTS {fq} "
        f"({members.parent_key} VARCHAR, {members.member_key} VARCHAR)",
        f"DELETE FROM {fq}"
        + (
            f" WHERE {members.parent_key} NOT IN ({', '.join(map(_sql_text, kept))})"
            if kept
            else ""
        ),
    ]
    if files:
        paths = ", ".join(_sql_text(str(f)) for f in files)
        out.append(
            f"INSERT INTO {fq} SELECT {members.parent_key}, {members.member_key} "
            f"FROM read_parquet([{paths}])"
        )
    return out


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _nested_note(source: Source) -> str:
    tables = [(n.table, n.description) for n in source.nested]
    if source.members:
        tables.append((source.members.table, source.members.description))
    if not tables:
        return ""
    return " Written from it in the same transaction: " + " ".join(
        f"`{RAW_SCHEMA}.{t}`: {d}" for t, d in tables
    )


def _refresh_note(source: Source, settings: Settings) -> str:
    if source.updated_field is None:
        return ", replaced whole on every run."
    weekly = (
        "never"
        if settings.full_refresh_weekday is None
        else f"every {WEEKDAYS[settings.full_refresh_weekday].title()}"
    )
    return (
        f". Incremental: only rows whose `{source.updated_field}` moved since the newest one "
        f"loaded (minus {settings.incremental_margin_minutes} min) are fetched and merged "
        f"by id; a full refresh runs {weekly} (`PENDO_FULL_REFRESH_WEEKDAY`) or with run "
        "config `full_refresh: true`, and only a full refresh lets history mark entities "
        "deleted."
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


def tag_watch(source: Source, clock: Clock) -> TagWatch | None:
    """For a tag entity (pages, features, track types): what records, in the load's
    transaction, which tags are new, changed, deleted or still dirty since the previous load,
    so the ``pendo_tag_repair`` sensor can bring their events' history back to Pendo's."""
    if source.retags is None:
        return None
    events = SOURCES_BY_NAME[source.retags]
    return TagWatch(
        source=events.name,
        key=column_name(source.id_field),
        fingerprint=[column_name(f) for f in (*source.rules, "lastUpdatedAt")],
        flag="dirty",
        now=clock.now(UTC),
        daily_table=(RAW_SCHEMA, events.table),
        # Days that agreed with Pendo before no longer do: reconciliation must ask again.
        also=forget(events.name),
    )


def _out(source: Source, settings: Settings, group: str, how: str) -> dg.AssetOut:
    drop = settings.drop_columns
    return dg.AssetOut(
        key=asset_key(source),
        group_name=group,
        kinds=KINDS,
        io_manager_key=IO_MANAGER_KEY,
        is_required=False,  # the multi-asset is subsettable: any sources, any mix
        description=f"{source.description}\n\nPendo source `{source.name}` -> DuckDB table "
        f"`{RAW_SCHEMA}.{source.table}`{how}{demo_note(settings)}",
        metadata={
            "dagster/column_schema": raw_schema(source, drop),
            "dagster/table_name": f"{RAW_SCHEMA}.{source.table}",
            "pendo_source": source.name,
            **(_written_with_schemas(source) if isinstance(source, EntitySource) else {}),
        },
    )


def _written_with_schemas(source: EntitySource) -> dict[str, dg.TableSchema]:
    """UI schemas of the tables an entity's load writes besides its own (nested, members)."""
    out = {
        f"{n.table}_column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(c, t)
                for c, t in {
                    n.parent_key: "VARCHAR",
                    **({"app_id": "BIGINT"} if source.app_scoped else {}),
                    **n.types,
                }.items()
            ]
        )
        for n in source.nested
    }
    if source.members:
        out[f"{source.members.table}_column_schema"] = dg.TableSchema(
            columns=[
                dg.TableColumn(source.members.parent_key, "VARCHAR"),
                dg.TableColumn(source.members.member_key, "VARCHAR"),
            ]
        )
    return out


def day_totals(source: Source, table) -> tuple:
    """(rows, sum numEvents) of one day as loaded; numEvents is None for per-event sources."""
    if source.per_event or "num_events" not in table.column_names:
        return (table.num_rows, None if source.per_event else 0)
    total = pc.sum(table.column("num_events")).as_py()
    return (table.num_rows, int(total or 0))


def output_name(source: Source) -> str:
    return asset_key(source).to_python_identifier()


def _load_concurrently(
    context: dg.AssetExecutionContext,
    sources: tuple[Source, ...],
    load: Callable[[Source], tuple[object, dict]],
    client: PendoClient,
) -> Iterator[dg.Output]:
    """Load every selected source at once, yielding each one's output as soon as it is ready.

    The sources share the run's one client, so its bound (PENDO_MAX_CONCURRENCY) holds across
    all of them, and one source's write overlaps the others' fetches. A source that fails does
    not stop the others: their outputs are materialized, then the step fails naming it.
    """
    selected = [s for s in sources if asset_key(s) in context.selected_asset_keys]
    failures: list[tuple[Source, BaseException]] = []
    with ThreadPoolExecutor(max_workers=len(selected) or 1, thread_name_prefix="pendo") as pool:
        futures: dict[Future, Source] = {}
        for source in selected:
            futures[pool.submit(load, source)] = source
            # The run's first request decides whether the key works (a 401/403 there is a bad
            # key): let the first source in catalog order send it before the others start.
            first = next(iter(futures))
            while len(futures) == 1 and not first.done() and not client.wait_verified(0.05):
                pass
        for future in as_completed(futures):
            source = futures[future]
            try:
                value, metadata = future.result()
            except Exception as exc:  # noqa: BLE001 - reported below, after the others land
                context.log.error(f"{source.name} failed: {exc}")
                failures.append((source, exc))
                continue
            partitioned = context.assets_def.partitions_def is not None
            if partitioned and (context.has_partition_key_range or context.has_partition_key):
                # What the fetch did concerns the whole range: said on its newest day (the one
                # the UI shows as latest), not copied into each of a year's 365 events.
                context.add_asset_metadata(
                    metadata, asset_key=asset_key(source), partition_key=max(context.partition_keys)
                )
                metadata = {}
            yield dg.Output(value, output_name=output_name(source), metadata=metadata)
    if len(failures) == 1 and len(selected) == 1:
        raise failures[0][1]
    if failures:
        failures.sort(key=lambda f: sources.index(f[0]))  # catalog order, not finishing order
        names = ", ".join(s.name for s, _ in failures)
        raise dg.Failure(
            description=f"{len(failures)} of {len(selected)} Pendo sources failed ({names}); "
            "the others were written.\n" + "\n".join(f"- {s.name}: {exc}" for s, exc in failures)
        ) from failures[0][1]


def build_entity_assets(settings: Settings) -> dg.AssetsDefinition:
    drop = settings.drop_columns

    def how(source: Source) -> str:
        return _refresh_note(source, settings) + _nested_note(source)

    @dg.multi_asset(
        name="load_pendo_entities",
        outs={output_name(s): _out(s, settings, ENTITY_GROUP, how(s)) for s in ENTITIES},
        can_subset=True,
        pool=settings.warehouse_pool,
        # A backfill's one run (entities, events, enriched over a range) may include them.
        backfill_policy=dg.BackfillPolicy.single_run(),
        op_tags=step_order.tags(step_order.ENTITY_LOADS),
        description="Pendo's entity sources, fetched together through one client.",
    )
    def _entities(
        context: dg.AssetExecutionContext,
        config: EntityConfig,
        pendo: PendoResource,
        warehouse: WarehouseResource,
    ):
        opts = pendo.options

        def load(source: Source) -> tuple[StagedTable, dict]:
            started, before = time.monotonic(), pendo.client.source_stats_dict(source.name)
            plan = refresh_plan(
                source,
                settings,
                _watermark_ms(warehouse, source),
                config.full_refresh,
                settings.clock.now(settings.zone),
            )
            context.log.info(
                f"{source.name}: {'full' if plan.full else 'incremental'} load ({plan.reason})"
                + (f", rows updated since epoch ms {plan.since_ms}" if plan.since_ms else "")
            )
            files = []
            metadata: dict = {}
            typing = DeclaredTyping(pendo.client, source, drop)
            after = nested_statements(source, drop)
            with staging_dir(source.table) as staging:
                batches = fetch_entity(pendo.client, source, opts, since_ms=plan.since_ms)
                ids: list[str] = []
                for i, batch in enumerate(batches):
                    batch = typing(batch)
                    if source.members:
                        ids += [
                            str(v)
                            for v in batch.table.column(column_name(source.id_field)).to_pylist()
                            if v is not None
                        ]
                    files.append(stage(batch.table, batch.types, staging / f"{i:05d}.parquet"))
                    context.log.info(f"fetched {sum(f.rows for f in files)} rows of {source.name}")
                if source.members:
                    m_after, m_meta = _load_members(context, pendo, source, ids, staging)
                    after += m_after
                    metadata.update(m_meta)
            if typing.declared is not None:
                if typing.declared.fallback:
                    context.log.warning(f"{source.name}: types {typing.declared.fallback}")
                metadata["metadata_types"] = dg.MetadataValue.text(
                    typing.declared.describe(source.metadata_schema or "")
                )
                metadata["values_not_fitting_declared_type"] = dg.MetadataValue.json(
                    dict(sorted(typing.misfits.items()))
                )
            staged = StagedTable(
                files,
                {**declared_types(source, drop), **typing.types},
                staging,
                after=after,
                merge_key=None if plan.full else column_name(source.id_field),
                watch=tag_watch(source, settings.clock),
            )
            metadata = {
                **_client_metadata(pendo, source, before, started),
                "full_refresh": dg.MetadataValue.bool(plan.full),
                "refresh_reason": dg.MetadataValue.text(plan.reason),
                **metadata,
            }
            return staged, metadata

        def _load_members(context, pendo, source: Source, ids: list[str], staging: Path):
            """Each asked parent's members staged beside it; the statements that write them and
            what to report."""
            members = source.members
            assert members is not None
            wanted = list(settings.segments) if settings.segments is not None else ids
            known = set(ids)
            failed = {
                sid: f"{sid} (PENDO_SEGMENTS) is not among Pendo's {len(known)} segments"
                for sid in wanted
                if sid not in known
            }
            asked = [sid for sid in wanted if sid in known]
            files: list[Path] = []
            shapes: Counter[str] = Counter()
            pairs = 0
            visitors = SOURCES_BY_NAME["visitors"]
            for n, res in enumerate(
                fetch_segment_visitors(pendo.client, asked, members, visitors, pendo.options)
            ):
                if res.table is None:
                    failed[res.segment_id] = res.error or "failed"
                    context.log.error(f"segment {res.segment_id}: {res.error}")
                    continue
                shapes[res.shape or ""] += 1
                pairs += res.table.num_rows
                staged = stage(
                    res.table.table, res.table.types, staging / f"members_{n:05d}.parquet"
                )
                files.append(staged.path)
            after = members_statements(members, files, sorted(set(failed) & known))
            metadata = {
                "segments_asked": dg.MetadataValue.int(len(asked)),
                f"{members.table}_rows": dg.MetadataValue.int(pairs),
                "segment_membership_shapes": dg.MetadataValue.json(dict(shapes)),
                MEMBERS_FAILED: dg.MetadataValue.json(dict(sorted(failed.items()))),
            }
            return after, metadata

        yield from _load_concurrently(context, ENTITIES, load, pendo.client)

    return _entities


def build_event_assets(
    settings: Settings, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    drop = settings.drop_columns
    how = (
        "; one partition per subscription-local day (`day`), replaced atomically when "
        "re-materialized."
    )

    @dg.multi_asset(
        name=EVENTS_OP,
        outs={output_name(s): _out(s, settings, RAW_EVENT_GROUP, how) for s in EVENTS},
        can_subset=True,
        pool=settings.warehouse_pool,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        op_tags=step_order.tags(step_order.EVENT_LOADS),
        description="Pendo's event sources, fetched together through one client. Run config "
        "`repair_tags` / `delete_tags` reloads only changed tags' rows, `sweep` only the (day, "
        "tag) slices that differ from Pendo's totals (see the pendo_tag_repair sensor and the "
        "weekly sweep schedule).",
    )
    def _events(
        context: dg.AssetExecutionContext,
        config: EventConfig,
        pendo: PendoResource,
        warehouse: WarehouseResource,
    ):
        days = partition_dates(context.partition_keys)
        opts = pendo.options
        step = max(1, len(days) // 20)
        if config.repairing:
            named = {*config.repair_tags, *config.delete_tags}
            others = [
                s.name
                for s in EVENTS
                if asset_key(s) in context.selected_asset_keys and s.name not in named
            ]
            if others:
                raise dg.Failure(
                    f"This run repairs tags of {', '.join(sorted(named))} (run config "
                    f"repair_tags / delete_tags) but also selects {', '.join(others)}: select "
                    "only the sources it names, or drop the repair config to load days whole."
                )

        def load(source: Source) -> tuple[StagedDays, dict]:
            started, before = time.monotonic(), pendo.client.source_stats_dict(source.name)
            wh = warehouse.warehouse
            if config.repairing or config.sweep:
                if config.sweep:
                    staged, extra = sweep(context, pendo.client, opts, wh, source, days)
                else:
                    staged, extra = repair_tags(
                        context, pendo.client, opts, wh, source, days, config, settings.clock
                    )
                return staged, {**_client_metadata(pendo, source, before, started), **extra}

            def progress(done: int, total: int) -> None:
                if done == total or done % step == 0:
                    context.log.info(f"fetched {done}/{total} days of {source.name}")

            files = []
            fetched: dict[date, tuple] = {}
            with staging_dir(source.table) as staging:
                # Ranked by table, as the check steps run (``pendo_<table>_checks``): the
                # sources finish one after another, each written while the next loads, and
                # the first check's source is first.
                fetched_days = fetch_days(
                    pendo.client, source, days, opts, progress, rank=source.table
                )
                for day, table in fetched_days:
                    files.append(stage(table.table, table.types, staging / f"{day}.parquet"))
                    fetched[day] = day_totals(source, table.table)
            # The load's own requests, counted before the totals below start sharing the
            # source's counters in the background (a totals answer could land in them).
            metadata = _client_metadata(pendo, source, before, started)
            # Reconciliation's question to Pendo, asked now while the other sources still load;
            # final days that agreed before with these very totals need no question.
            known = remembered(warehouse.warehouse, source, days)
            pendo.prefetch_totals(
                source,
                [d for d in days if d not in known or known[d] != fetched.get(d)],
                {d: t[0] for d, t in fetched.items()},
            )
            staged = StagedDays(days, files, declared_types(source, drop), staging)
            return staged, metadata

        yield from _load_concurrently(context, EVENTS, load, pendo.client)

    return _events


def tag_links() -> dict[dg.AssetKey, tuple[str, dg.AssetKey]]:
    """Tag entity asset -> (the event source Pendo computes from its tags, that asset)."""
    return {
        asset_key(s): (s.retags, asset_key(SOURCES_BY_NAME[s.retags])) for s in ENTITIES if s.retags
    }


def raw_assets(settings: Settings, partitions: dg.PartitionsDefinition) -> list:
    return [build_entity_assets(settings), build_event_assets(settings, partitions)]
