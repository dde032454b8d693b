"""A SQLite event-log storage that writes a batch of Dagster events in one transaction per file.

Dagster hands a step's per-partition events (one "planned" event per partition at run start, one
materialization per partition at the end) to ``store_event_batch`` when
``DAGSTER_EVENT_BATCH_SIZE`` is set. The stock SQLite storage loops over ``store_event``: each
event opens a fresh engine on the run's file and another on the index file, so a one-year range
of four assets costs thousands of connections and transactions (upstream issues #19829, #18789).
PostgreSQL's storage batches; this does the same for SQLite:

- the run file gets all of a batch's rows in one transaction;
- the index file gets its mirrored rows, event tags, asset-check rows and ``asset_keys`` updates
  in one transaction, with ``asset_keys`` written once per key per batch (the merged result of
  the batch's events, exactly what updating it event by event would leave);
- a planned check over a partition range is serialized once, not once per partition.

Connections to the run file are not pooled: the UI's live log view watches that file's
modification time. This relies on Dagster internals (imported from
``pendo_assets.dagster_internals``, which lists what to check on an upgrade) and is tested
against every Dagster release the project supports (``pendo_assets_tests/test_event_log.py``);
anything it cannot batch goes through the stock path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from dagster import EventLogEntry, serialize_value
from sqlalchemy.engine import Connection

from pendo_assets.dagster_internals import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    EVENT_TYPE_TO_PIPELINE_RUN_STATUS,
    AssetCheckExecutionRecordStatus,
    AssetCheckExecutionsTable,
    AssetKeyTable,
    ConfigurableClassData,
    SqlEventLogStorageTable,
    SqliteEventLogStorage,
)
from pendo_assets.instance import enable_event_batching

MODULE = __name__
CLASS = "BatchedSqliteEventLogStorage"


def _mirrored(event: EventLogEntry) -> bool:
    """Whether the stock SQLite storage also writes this event to the index file."""
    if not event.is_dagster_event:
        return False
    kind = event.dagster_event_type
    return kind in ASSET_EVENTS or kind in ASSET_CHECK_EVENTS or kind in _RUN_STATUS_EVENTS


_RUN_STATUS_EVENTS = frozenset(EVENT_TYPE_TO_PIPELINE_RUN_STATUS)


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with a real ``store_event_batch``. Configured like the stock one:

    .. code-block:: yaml

        event_log_storage:
          module: pendo_assets.instance.event_log
          class: BatchedSqliteEventLogStorage
          config:
            base_dir: /path/to/history
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # The index connection of the batch being written, per thread (the stock storage
        # serializes connections with a non-reentrant lock, so nested opens must reuse it).
        # Set first: the stock constructor already connects.
        self._batch = threading.local()
        # Dagster hands events to store_event_batch only when batching is on in this process.
        enable_event_batching()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # type: ignore[override]
        return cls(inst_data=inst_data, **config_value)

    # -- reuse of the batch's index transaction ------------------------------------------------

    def index_connection(self):  # type: ignore[override]
        conn = getattr(self._batch, "index_conn", None)
        return nullcontext(conn) if conn is not None else super().index_connection()

    def has_table(self, table_name: str) -> bool:
        cache = getattr(self._batch, "tables", None)
        if cache is None:
            return super().has_table(table_name)
        if table_name not in cache:
            cache[table_name] = super().has_table(table_name)
        return cache[table_name]

    @contextmanager
    def _batch_index_transaction(self) -> Iterator[Connection]:
        self._batch.tables = {}
        try:
            with super().index_connection() as conn:  # SQLite: one open transaction
                self._batch.index_conn = conn
                try:
                    yield conn
                finally:
                    self._batch.index_conn = None
        finally:
            self._batch.tables = None

    # -- the batch path ------------------------------------------------------------------------

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if len(events) <= 1:
            for event in events:
                self.store_event(event)
            return
        by_run: dict[str, list[EventLogEntry]] = {}
        for event in events:
            by_run.setdefault(event.run_id, []).append(event)
        for run_id, run_events in by_run.items():
            self._store_run_batch(run_id, run_events)

    def _store_run_batch(self, run_id: str, events: list[EventLogEntry]) -> None:
        rows = [self._event_to_row(e) for e in events]
        with self.run_connection(run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        mirrored = [(e, row) for e, row in zip(events, rows, strict=True) if _mirrored(e)]
        if not mirrored:
            return
        with self._batch_index_transaction() as conn:
            has_index_cols = self._has_asset_key_index_cols_on_connection(conn)
            # Per asset key, the last event of each kind: later events overwrite the columns
            # earlier ones set, so these alone give the row that event-by-event updates leave
            # (and a year of materializations is serialized into it once, not 365 times).
            last: dict[str, dict[Any, tuple[int, EventLogEntry, int]]] = {}
            # Index ids must follow event order, so consecutive asset events (a step's
            # partitions) share one multi-row INSERT ... RETURNING; others go one by one.
            for is_asset, run in groupby(
                enumerate(mirrored), key=lambda p: p[1][0].dagster_event_type in ASSET_EVENTS
            ):
                run = list(run)
                if is_asset:
                    ids = self._insert_returning_ids(conn, [row for _, (_, row) in run])
                    run_events = [event for _, (event, _) in run]
                    self._store_asset_event_tags(conn, run_events, ids)
                    for (position, (event, _)), event_id in zip(run, ids, strict=True):
                        key = event.get_dagster_event().asset_key
                        if key is not None:
                            kind = event.dagster_event_type
                            last.setdefault(key.to_string(), {})[kind] = (
                                position,
                                event,
                                event_id,
                            )
                    continue
                for _, (event, row) in run:
                    insert = SqlEventLogStorageTable.insert().values(**row)
                    if event.dagster_event_type in ASSET_CHECK_EVENTS:
                        event_id = conn.execute(insert).inserted_primary_key[0]
                        self.store_asset_check_event(event, event_id)
                    else:
                        conn.execute(insert)
            asset_values: dict[str, dict[str, Any]] = {}
            for key, by_kind in last.items():
                for _, event, event_id in sorted(by_kind.values(), key=lambda t: t[0]):
                    values = self._get_asset_entry_values(event, event_id, has_index_cols)
                    asset_values.setdefault(key, {}).update(values)
            self._upsert_asset_keys(conn, {k: v for k, v in asset_values.items() if v})

    @staticmethod
    def _insert_returning_ids(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
        """Insert ``rows`` into the index's event table; their ids, in the order given."""
        table = SqlEventLogStorageTable
        statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        return [r[0] for r in conn.execute(statement, rows)]

    def _upsert_asset_keys(self, conn: Connection, asset_values: dict[str, dict[str, Any]]) -> None:
        """One write per asset key: the batch's values merged in event order."""
        if not asset_values:
            return
        existing = {
            r[0]
            for r in conn.execute(
                sa.select(AssetKeyTable.c.asset_key).where(
                    AssetKeyTable.c.asset_key.in_(list(asset_values))
                )
            ).fetchall()
        }
        for key, values in asset_values.items():
            if key in existing:
                conn.execute(
                    AssetKeyTable.update().values(**values).where(AssetKeyTable.c.asset_key == key)
                )
            else:
                conn.execute(AssetKeyTable.insert().values(asset_key=key, **values))

    def _store_asset_check_evaluation_planned(
        self, event: EventLogEntry, event_id: int | None
    ) -> None:
        """As the stock method, but the event is serialized once for all its partitions."""
        planned = event.get_dagster_event().asset_check_planned_data
        partition_keys = (
            planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        )
        common = dict(
            asset_key=planned.asset_key.to_string(),
            check_name=planned.check_name,
            run_id=event.run_id,
            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
            evaluation_event=serialize_value(event),
            evaluation_event_timestamp=self._event_insert_timestamp(event),
            evaluation_event_storage_id=event_id,
        )
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert(),
                [{**common, "partition": key} for key in partition_keys],
            )
