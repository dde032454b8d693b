"""Every private Dagster name the project uses (``dagster._…``), in one place.

Dagster's public API (``import dagster as dg``) covers everything else. Each name below has no
public equivalent; its entry says why the project needs it and what to check when Dagster is
upgraded. Import them from here (``from pendo_assets.dagster_internals import AssetKeyTable``);
``pendo_assets_tests/test_dagster_internals.py`` fails when ``dagster._`` appears anywhere else
in the code, or when a configuration file names a private module not listed here, and resolves
every entry, so a name that moved fails there by name.

Names are imported on first use: the SQLite storage modules cost about a second of imports,
which a process that only loads the definitions (a code server) never pays.

On an upgrade: read the release's changes to the modules named here, then run
``pendo_assets_tests/test_dagster_internals.py``, ``test_event_log.py`` (the batched event log
against Dagster's own storage, side by side), ``test_freshness.py`` and
``test_deploy_config.py``. The tested releases are in ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Internal:
    path: str  # "module:attribute"
    why: str  # what the project uses it for, and why the public API does not do it
    upgrade: str  # what to check when Dagster is upgraded


_EVENT_LOG = "dagster._core.storage.event_log"
_SCHEMA = "dagster._core.storage.event_log.schema"
_STORE_EVENT = (
    "Diff SqliteEventLogStorage.store_event and SqlEventLogStorage.store_event against the "
    "previous release: a row, table or column they now write must be written by "
    "BatchedSqliteEventLogStorage's batch path too; test_event_log.py compares both storages."
)

INTERNALS: dict[str, Internal] = {
    # -- the batched SQLite event log (pendo_assets/instance/event_log.py) ---------------------
    "SqliteEventLogStorage": Internal(
        f"{_EVENT_LOG}:SqliteEventLogStorage",
        "BatchedSqliteEventLogStorage subclasses Dagster's SQLite event log to write a batch of "
        "events in one transaction per file (the stock store_event_batch loops over "
        "store_event). Dagster has no public storage class with SQLite's file layout.",
        "The subclass overrides index_connection, has_table, store_event_batch and "
        "_store_asset_check_evaluation_planned, and calls run_connection, _event_to_row, "
        "_has_asset_key_index_cols_on_connection, _get_asset_entry_values, "
        "_store_asset_event_tags, _event_insert_timestamp and store_asset_check_event: check "
        "their signatures. Its planned rows fill one serialization per asset with each "
        "event's partition and time: EventLogEntry, DagsterEvent and the planned data must "
        "stay NamedTuples (_replace) that serialize strings as json.dumps and floats as repr "
        "(test_event_log.py checks the rows against _event_to_row). " + _STORE_EVENT,
    ),
    "ConfigurableClassData": Internal(
        "dagster._serdes:ConfigurableClassData",
        "The inst_data a storage named in dagster.yaml is built with (module, class and config, "
        "so Dagster can rebuild it in another process); a storage's constructor takes it.",
        "The storage constructor's inst_data parameter.",
    ),
    "SqlEventLogStorageTable": Internal(
        f"{_SCHEMA}:SqlEventLogStorageTable",
        "The event_logs table of the run and index files: the batch path inserts a step's "
        "events in one multi-row INSERT. SQLAlchemy tables are not public API.",
        "Its columns against the previous release. " + _STORE_EVENT,
    ),
    "AssetKeyTable": Internal(
        f"{_SCHEMA}:AssetKeyTable",
        "The asset_keys table (each asset's latest events), written once per key per batch.",
        "Its columns against the previous release. " + _STORE_EVENT,
    ),
    "AssetCheckExecutionsTable": Internal(
        f"{_SCHEMA}:AssetCheckExecutionsTable",
        "The asset_check_executions table: a planned check over a range writes one row per "
        "partition, from one serialization of the event.",
        "Its columns, and the stock _store_asset_check_evaluation_planned.",
    ),
    "AssetCheckExecutionRecordStatus": Internal(
        "dagster._core.storage.asset_check_execution_record:AssetCheckExecutionRecordStatus",
        "The status written into a planned check row (PLANNED); public only as a field of the "
        "records Dagster returns.",
        "The value the stock storage writes for a planned check.",
    ),
    "ASSET_EVENTS": Internal(
        "dagster._core.events:ASSET_EVENTS",
        "The asset event types (materialization, observation, planned, failed) that the stock "
        "SQLite storage mirrors from a run's file into the index file, and so must the batch "
        "path. A copy by hand would drift silently when Dagster adds a type.",
        "The condition under which SqliteEventLogStorage.store_event writes the index shard.",
    ),
    "ASSET_CHECK_EVENTS": Internal(
        "dagster._core.events:ASSET_CHECK_EVENTS",
        "The asset-check event types, also mirrored into the index file (as ASSET_EVENTS).",
        "As ASSET_EVENTS.",
    ),
    "EVENT_TYPE_TO_PIPELINE_RUN_STATUS": Internal(
        "dagster._core.events:EVENT_TYPE_TO_PIPELINE_RUN_STATUS",
        "Its keys are the run-status event types, also mirrored into the index file.",
        "As ASSET_EVENTS.",
    ),
    # -- freshness (pendo_assets/freshness.py) --------------------------------------------------
    "FRESH_UNTIL_METADATA_KEY": Internal(
        "dagster._core.definitions.asset_checks.asset_check_factories.utils:"
        "FRESH_UNTIL_METADATA_KEY",
        "Metadata key of a passing freshness result: the instant after which the public "
        "build_sensor_for_freshness_checks runs the check again. Our check judges the newest "
        "*day* loaded, which Dagster's factories cannot, and writes this key so the public "
        "sensor drives it.",
        "The sensor (freshness_checks/sensor.py) still reads this key; test_freshness.py.",
    ),
    "FRESHNESS_PARAMS_METADATA_KEY": Internal(
        "dagster._core.definitions.asset_checks.asset_check_factories.utils:"
        "FRESHNESS_PARAMS_METADATA_KEY",
        "Metadata key under which Dagster's freshness checks show their parameters in the UI; "
        "ours shows its deadline and time zone the same way.",
        "The key Dagster's own freshness checks write.",
    ),
    # -- run tags (pendo_assets/run_tags.py) ----------------------------------------------------
    "PARTITION_NAME_TAG": Internal(
        "dagster._core.storage.tags:PARTITION_NAME_TAG",
        "The run tag naming a run's one partition (dagster/partition): the UI and the CLI set "
        "it, the project reads it. Dagster exports it only from this private module.",
        "test_definitions.py pins the strings users see.",
    ),
    "ASSET_PARTITION_RANGE_START_TAG": Internal(
        "dagster._core.storage.tags:ASSET_PARTITION_RANGE_START_TAG",
        "The run tag with the first partition of a range run (dg launch --partition-range, a "
        "single-run backfill).",
        "As PARTITION_NAME_TAG.",
    ),
    "ASSET_PARTITION_RANGE_END_TAG": Internal(
        "dagster._core.storage.tags:ASSET_PARTITION_RANGE_END_TAG",
        "The run tag with the last partition of a range run.",
        "As PARTITION_NAME_TAG.",
    ),
    # -- validating deploy/dagster.yaml (pendo_assets_tests/test_deploy_config.py) --------------
    "dagster_instance_config": Internal(
        "dagster._core.instance.config:dagster_instance_config",
        "Loads and validates a dagster.yaml as an instance does (schema, storage and run-queue "
        "rules) without building the instance, which would connect to PostgreSQL; the public "
        "DagsterInstance.from_config always builds it.",
        "Its signature: (config_dir) -> (config, custom_instance_class).",
    ),
    "process_config": Internal(
        "dagster._config:process_config",
        "Validates one {module, class, config} section of dagster.yaml against that class's "
        "own config_type(), as Dagster does when it builds the class; the public "
        "validate_run_config covers run config only.",
        "process_config(type, value) returns a result with success, errors and value.",
    ),
    "resolve_to_config_type": Internal(
        "dagster._config:resolve_to_config_type",
        "Turns a class's config_type() schema into the type process_config takes.",
        "As process_config.",
    ),
    # -- per-partition metadata of a range run (pendo_assets/warehouse/io_manager.py) ----------
    "OutputMetadataAccumulator": Internal(
        "dagster._core.execution.context.metadata_logging:OutputMetadataAccumulator",
        "add_partition_metadata puts a year of per-partition metadata on a step in one rebuild "
        "of the step's accumulator; the public add_asset_metadata rebuilds and re-validates it "
        "on every call (quadratic: 2,190 calls cost 2.6 s).",
        "The step context's _metadata_accumulator attribute and the class's "
        "per_output_metadata field (test_io_manager's per-partition tests; without them the "
        "public call is used).",
    ),
    "AssetMetadataHandle": Internal(
        "dagster._core.execution.context.metadata_logging:AssetMetadataHandle",
        "The key of one (asset, partition) in that accumulator.",
        "Its asset_key and partition_key fields.",
    ),
    # -- planned events of a range run (plan_unpartitioned_once below) -------------------------
    "DagsterRun": Internal(
        "dagster._core.storage.dagster_run:DagsterRun",
        "Its get_resolved_partitions_subset_for_events(partitions_def) gives back the run's "
        "partition range even when partitions_def is None, so an unpartitioned asset or check "
        "in a range run (the backfill's entities and every check) is planned once per day of "
        "the range: a year's backfill wrote 2,555 such planned materializations and 20,440 "
        "planned check rows that no evaluation ever resolves. There is no public hook into "
        "run creation.",
        "Whether the method still returns the run's subset for partitions_def=None (if fixed "
        "upstream, drop plan_unpartitioned_once), and that it is still what run creation asks "
        "per asset and per check (run_domain._log_asset_planned_events); "
        "test_dagster_internals' planned-events tests.",
    ),
    # -- named by configuration files (module: in a dagster.yaml) -------------------------------
    "NoOpComputeLogManager": Internal(
        "dagster._core.storage.noop_compute_log_manager:NoOpComputeLogManager",
        "deploy/dagster.yaml keeps run pods' compute logs in their stdout. Dagster names "
        "instance classes by module path, and this one lives in a private module only.",
        "The class still lives there (test_deploy_config.py imports every class the file names).",
    ),
}


EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
"""Dagster's undocumented switch for event batching, read from the environment at every event
(``DagsterInstance.handle_new_event``): above 0, a step's per-partition events reach the event
log's ``store_event_batch`` together. There is no instance setting for it. The batched SQLite
event log sets it in the process that builds it (``pendo_assets.instance.event_log``);
``deploy/dagster.yaml`` sets it for PostgreSQL run pods. Upgrade: the variable's name and that
batches still go to ``store_event_batch`` (``test_event_log.py`` counts the transactions)."""


def resolve(name: str) -> Any:
    module, _, attribute = INTERNALS[name].path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def __getattr__(name: str) -> Any:
    if name not in INTERNALS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = resolve(name)
    globals()[name] = value  # resolved once
    return value


def add_partition_metadata(step: Any, key: Any, per_partition: dict[str, dict[str, Any]]) -> None:
    """``step.add_asset_metadata(metadata, asset_key=key, partition_key=p)`` for every
    partition at once (the output's own partitions): the same metadata on the same
    materializations.

    Dagster rebuilds and re-validates its whole accumulator of asset metadata on every call
    and lists the range's partition keys again, so a step that reports a year for six
    sources (2,190 calls) spent over a second in it, growing with the square of the days.
    One rebuild holds what the calls would have left. Dagster internals: the public calls
    are the fallback should this release's accumulator not be there.
    """
    accumulator_class = resolve("OutputMetadataAccumulator")
    handle_class = resolve("AssetMetadataHandle")
    accumulator = getattr(step, "_metadata_accumulator", None)
    if not isinstance(accumulator, accumulator_class):
        for partition, metadata in per_partition.items():
            step.add_asset_metadata(metadata, asset_key=key, partition_key=partition)
        return
    merged = dict(accumulator.per_output_metadata)
    for partition, metadata in per_partition.items():
        handle = handle_class(asset_key=key, partition_key=partition)
        merged[handle] = {**merged.get(handle, {}), **metadata}
    step._metadata_accumulator = accumulator_class(per_output_metadata=merged)


def plan_unpartitioned_once() -> None:
    """Plan an unpartitioned asset or check once per run, not once per partition of the run.

    Run creation asks ``DagsterRun.get_resolved_partitions_subset_for_events`` with each
    asset's and check's partitions definition, and gets the run's range back also when there
    is none. The backfill's run holds the unpartitioned entities and 56 unpartitioned checks,
    so a year was planned as 2,555 entity materializations per day (which never come: the
    entities materialize once) and 20,440 check rows (which stay PLANNED beside the one
    evaluation): 1.2 s of the run's start. With ``partitions_def=None`` the answer is now
    None, as for a run without a range. Partitioned assets are planned per partition, as
    before (failed partitions are marked from those events). Installed once per process by
    the definitions loader, so it covers the processes that create runs with the project
    loaded (``dg launch``, ``materialize``); runs the webserver or daemon create do not get it.
    """
    run_class = resolve("DagsterRun")
    original = run_class.get_resolved_partitions_subset_for_events
    if getattr(original, "_pendo_plans_once", False):
        return

    def resolved(self, partitions_def):
        if partitions_def is None:
            return None
        return original(self, partitions_def)

    resolved._pendo_plans_once = True  # type: ignore[attr-defined]
    resolved.__wrapped__ = original  # type: ignore[attr-defined]
    run_class.get_resolved_partitions_subset_for_events = resolved
