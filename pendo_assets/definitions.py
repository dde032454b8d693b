"""The one ``Definitions`` of the project: assets, resources, executor.

Settings are read and validated here, at load time, so a bad ``PENDO_*`` value fails before any
run starts. Loading never starts a server: demo mode only points at the emulator that
``make dev`` started as its own process.
"""

from __future__ import annotations

import logging

import dagster as dg

import pendo_assets.quiet  # noqa: F401  (first: silences known warnings before assets are built)
from pendo_assets.assets.enriched import enriched_assets
from pendo_assets.assets.history import history_assets
from pendo_assets.assets.marts import mart_assets
from pendo_assets.assets.raw import EVENTS_OP, raw_assets, tag_links
from pendo_assets.assets.report import build_report_asset
from pendo_assets.assets.state import state_assets
from pendo_assets.automation import build_automation, build_history_repair, refresh_selection
from pendo_assets.checks import all_checks
from pendo_assets.dagster_internals import plan_unpartitioned_once
from pendo_assets.freshness import build_freshness
from pendo_assets.instance import freeze_loaded_objects
from pendo_assets.partitions import daily_partitions
from pendo_assets.reader import build_publish_sensor, with_reader_note
from pendo_assets.resources import PendoResource
from pendo_assets.settings import DEMO_KEY, Settings, load_settings
from pendo_assets.warehouse.io_manager import DuckDBWarehouseIOManager, WarehouseResource

log = logging.getLogger("pendo_assets")


def build_definitions(settings: Settings) -> dg.Definitions:
    """Everything built from ``settings``, whose clock is every reader's "now"."""
    partitions = daily_partitions(settings)
    if settings.has_integration_key:
        key = dg.EnvVar("PENDO_INTEGRATION_KEY")
    else:
        # Demo mode: the emulator's key is not a secret.
        key = DEMO_KEY
    if settings.demo:
        log.warning(
            "DEMO MODE: no PENDO_INTEGRATION_KEY of yours is set, so the project reads the "
            "embedded Pendo emulator at %s (synthetic data). Set PENDO_INTEGRATION_KEY, "
            "PENDO_REGION and PENDO_START_DATE to load your subscription.",
            settings.base_url,
        )
    warehouse = WarehouseResource(settings=settings)
    assets = [
        *raw_assets(settings, partitions),
        *enriched_assets(settings, partitions),
        *mart_assets(settings, partitions),
        *history_assets(settings),
        build_report_asset(settings),
    ]
    # Every description ends with where analysts query the table: the readers' snapshot.
    assets = with_reader_note(assets, settings.duckdb_read_path)
    # Built from the final asset list, so every daily asset joins the lookback refresh.
    schedules, sensors = build_automation(settings, assets, partitions)
    event_keys = [k for a in assets if a.node_def.name == EVENTS_OP for k in a.keys]
    repair_schedules, repair_sensors = build_history_repair(
        settings, EVENTS_OP, event_keys, tag_links()
    )
    daily, _ = refresh_selection(assets, partitions)
    freshness_checks, freshness_sensor = build_freshness(settings, daily)
    if settings.duckdb_read_path:
        # Short waits: a sensor tick gives up and the next one tries again.
        sensors.append(
            build_publish_sensor(warehouse.warehouse_with(lock_wait_s=10, lock_timeout_s=20))
        )
    # The warehouse's side tables, shown downstream of the assets that write them.
    state = with_reader_note([state_assets()], settings.duckdb_read_path)
    return dg.Definitions(
        assets=[*assets, *state],
        asset_checks=[*all_checks(settings), *freshness_checks],
        schedules=[*schedules, *repair_schedules],
        sensors=[*sensors, *repair_sensors, freshness_sensor],
        resources={
            "pendo": PendoResource(settings=settings, integration_key=key),
            "warehouse": warehouse,
            "warehouse_io_manager": DuckDBWarehouseIOManager(resource=warehouse),
        },
        executor=dg.in_process_executor,
    )


# The last Definitions built in this process and the settings they were built from.
_loaded: tuple[Settings, dg.Definitions] | None = None


@dg.definitions
def defs() -> dg.Definitions:
    """What Dagster loads (`-m pendo_assets.definitions`): the project from the environment's
    PENDO_* settings. Built when Dagster loads it, not when a module imports this one.

    Built once per process for the same settings: one `dg launch` asks for the definitions six
    times (the CLI, the run, its execution plan, ...), 0.2-0.4 s each to build and resolve;
    Dagster keeps its resolved repository on the Definitions object, so handing back the same
    object makes the other five free. Other settings (or another day, which moves the
    partitions) build anew.
    """
    global _loaded
    settings = load_settings()
    if _loaded is None or _loaded[0] != settings:
        _loaded = (settings, build_definitions(settings))
        # Deliberately here, the one hook Dagster runs in every process that loads the
        # project: what loading built stays out of the garbage collector's passes (a fifth of
        # a CLI range run's CPU; pendo_assets/instance/__init__.py).
        freeze_loaded_objects()
        plan_unpartitioned_once()
    return _loaded[1]
