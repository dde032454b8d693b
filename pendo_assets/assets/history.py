"""Entity history assets (SCD type 2), one per catalog entity with a ``history`` table.

Each runs after its entity asset and folds the freshly loaded `pendo.<entity>` table into
`analytics.<entity>_history` inside DuckDB. A version's ``valid_from`` is the time of the
entity load it came from (the entity asset's materialization), so re-running the history
asset on the same load changes nothing.
"""

from datetime import UTC, datetime

import dagster as dg

from pendo_assets.assets.schema import raw_schema
from pendo_assets.assets.shared import (
    IO_MANAGER_KEY,
    asset_key,
    demo_note,
    require_tables,
    table_key,
)
from pendo_assets.catalog import (
    ENTITIES,
    HISTORY_UNTRACKED_PATTERN,
    RAW_SCHEMA,
    EntitySource,
    Nested,
)
from pendo_assets.clock import Clock
from pendo_assets.pendo.tables import column_name
from pendo_assets.settings import Settings
from pendo_assets.warehouse.history import VALIDITY_COLUMNS
from pendo_assets.warehouse.io_manager import HistoryUpdate, WarehouseResource

HISTORY_GROUP = "analytics_history"
# Entity materializations carry this flag; loads without it (before incremental refresh
# existed, and every tag entity) are full.
FULL_REFRESH_KEY = "full_refresh"

_VALIDITY_DOCS = {
    "valid_from": "Load time from which this version holds",
    "valid_to": "Load time at which a newer version (or the deletion) replaced it; NULL = current",
    "is_current": "The newest version of the entity",
    "is_deleted": "The entity was absent from a full load at valid_from",
}


class HistoryConfig(dg.Config):
    as_of: str | None = None  # ISO timestamp for valid_from; default: the entity load's time


def history_schema(
    source: EntitySource, drop: frozenset[str], nested: Nested | None = None
) -> dg.TableSchema:
    if nested is None:
        cols = list(raw_schema(source, drop).columns)
    else:
        cols = [
            dg.TableColumn(c, t) for c, t in {nested.parent_key: "VARCHAR", **nested.types}.items()
        ]
    cols += [
        dg.TableColumn(c, t, description=_VALIDITY_DOCS[c]) for c, t in VALIDITY_COLUMNS.items()
    ]
    return dg.TableSchema(columns=cols)


def _load_of(
    context: dg.AssetExecutionContext, source: EntitySource, clock: Clock
) -> tuple[datetime, bool]:
    """(time, full?) of the latest load of the entity (``clock``'s now if none is recorded)."""
    event = context.instance.get_latest_materialization_event(asset_key(source))
    if event is None or event.asset_materialization is None:
        return clock.now(UTC), True
    meta = event.asset_materialization.metadata
    full = meta.get(FULL_REFRESH_KEY)
    return datetime.fromtimestamp(event.timestamp, UTC), True if full is None else bool(full.value)


def build_history_asset(
    source: EntitySource, settings: Settings, nested: Nested | None = None
) -> dg.AssetsDefinition:
    """The history of an entity table, or (``nested``) of a pair table flattened from it,
    keyed by both of its ids. A pair table is rebuilt whole from its parent on every load, so
    each of its loads is complete: a pair that left it is closed as deleted."""
    table = nested.table if nested else source.table
    history_table = nested.history_table if nested else source.history_table
    assert history_table is not None
    key: str | tuple[str, ...] = (
        (nested.parent_key, nested.key_column) if nested else column_name(source.id_field)
    )
    track = settings.history_track_columns

    @dg.asset(
        key=table_key(history_table),
        deps=[asset_key(source)],
        group_name=HISTORY_GROUP,
        kinds={"duckdb"},
        io_manager_key=IO_MANAGER_KEY,
        pool=settings.warehouse_pool,
        automation_condition=dg.AutomationCondition.eager(),
        description=f"Every version of each row of `{RAW_SCHEMA}.{table}` (SCD type 2): "
        f"its attributes plus `valid_from`, `valid_to` (NULL = current), `is_current` and "
        f"`is_deleted`. A new version opens only when an attribute changed (columns matching "
        f"`{HISTORY_UNTRACKED_PATTERN}` are kept but not compared, unless listed in "
        "`PENDO_HISTORY_TRACK_COLUMNS`); entities missing from a full load are closed with an "
        f"`is_deleted` version.\n\nDuckDB table `{history_table}`.{demo_note(settings)}",
        metadata={
            "dagster/column_schema": history_schema(source, settings.drop_columns, nested),
            "dagster/table_name": history_table,
            "grain": f"{key if isinstance(key, str) else ', '.join(key)}, valid_from",
        },
    )
    def _history(
        context: dg.AssetExecutionContext, config: HistoryConfig, warehouse: WarehouseResource
    ) -> HistoryUpdate:
        require_tables(warehouse.warehouse, history_table, [f"{RAW_SCHEMA}.{table}"])
        loaded_at, full = _load_of(context, source, settings.clock)
        full = full or nested is not None
        if config.as_of:
            loaded_at = datetime.fromisoformat(config.as_of)
            if loaded_at.tzinfo is None:
                loaded_at = loaded_at.replace(tzinfo=UTC)
        return HistoryUpdate(
            (RAW_SCHEMA, table), key, loaded_at, full, HISTORY_UNTRACKED_PATTERN, track
        )

    return _history


def history_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    return [build_history_asset(s, settings) for s in ENTITIES if s.history] + [
        build_history_asset(s, settings, n) for s in ENTITIES for n in s.nested if n.history
    ]
