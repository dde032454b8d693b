"""When the readers' snapshot (``PENDO_DUCKDB_READ_PATH``) is published, in Dagster terms.

A run publishes at its end (the IO manager's teardown, in the run's own process, so the CLI,
``materialize`` and runs the daemon launches all publish), if the warehouse changed and no other
run is queued or in progress: that run will publish when it ends, and a snapshot per run of a
busy afternoon would copy the file for nothing. Runs the automation sensor launches come in
chains (enriched days, then marts, rollups, the report), so they never publish themselves;
the sensor below publishes once no run is in progress, at most every ``PUBLISH_INTERVAL_S``. It
also covers two runs that end at the same moment (each saw the other still running).

Publishing holds the project's own write lock for the copy, so it never interleaves with a
write; see ``pendo_assets/warehouse/snapshot.py`` for the mechanism.
"""

from __future__ import annotations

import dagster as dg
from filelock import Timeout

from pendo_assets.warehouse.snapshot import Published, is_stale, publish
from pendo_assets.warehouse.store import Warehouse, WarehouseLockedError

PUBLISH_SENSOR = "pendo_publish_reader_snapshot"
PUBLISH_INTERVAL_S = 30
_AUTOMATION_TAGS = ("dagster/from_automation_condition", "dagster/auto_materialize")
_IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def with_reader_note(
    assets: list[dg.AssetsDefinition], read_path: str | None
) -> list[dg.AssetsDefinition]:
    """Each asset's description, ending with where analysts and BI tools open its table."""
    if not read_path:
        return assets
    note = (
        f"\n\nAnalysts and BI tools: open `{read_path}` (PENDO_DUCKDB_READ_PATH), the "
        "read-only snapshot published after each run; the warehouse file belongs to the runs."
    )
    return list(
        dg.map_asset_specs(
            lambda spec: spec.replace_attributes(description=(spec.description or "") + note),
            assets,
        )
    )


def other_runs_in_progress(instance: dg.DagsterInstance, run_id: str | None) -> list[str]:
    ids = instance.get_run_ids(filters=dg.RunsFilter(statuses=_IN_PROGRESS), limit=5)
    return [i for i in ids if i != run_id]


def describe(done: Published) -> str:
    return (
        f"Published the readers' snapshot {done.path} ({done.bytes / 1e6:,.1f} MB in "
        f"{done.seconds:.2f} s): clients that connect now see this run's data."
    )


def publish_after_run(wh: Warehouse, context: dg.InitResourceContext) -> None:
    """At the end of a run (see the module's docstring for when it leaves it to the sensor)."""
    if not wh.read_path or not is_stale(wh.path, wh.read_path):
        return
    run = context.run
    if run is not None and any(tag in run.tags for tag in _AUTOMATION_TAGS):
        context.log.info(f"{wh.read_path}: left to the sensor {PUBLISH_SENSOR} (automation run)")
        return
    others = other_runs_in_progress(context.instance, run.run_id if run else None)
    if others:
        context.log.info(
            f"{wh.read_path}: not published yet, run {others[0][:8]} is still going (the last "
            f"run to end, or the sensor {PUBLISH_SENSOR}, publishes)"
        )
        return
    try:
        done = publish(wh, wh.read_path)
    except (OSError, Timeout, WarehouseLockedError) as exc:
        # The run's data is in the warehouse: a snapshot that could not be copied (disk full,
        # a writer outside the project) does not undo it. The sensor tries again.
        context.log.warning(
            f"{wh.read_path}: could not publish the readers' snapshot ({exc}); the sensor "
            f"{PUBLISH_SENSOR} tries again"
        )
        return
    if done is not None:
        context.log.info(describe(done))


def build_publish_sensor(warehouse: Warehouse) -> dg.SensorDefinition:
    """``warehouse`` with short waits: a tick gives up (and the next one tries again) rather
    than outlast Dagster's sensor timeout."""

    @dg.sensor(
        name=PUBLISH_SENSOR,
        minimum_interval_seconds=PUBLISH_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Publishes the readers' snapshot {warehouse.read_path} "
        "(PENDO_DUCKDB_READ_PATH) once no run is in progress, when runs left it stale: "
        "after chains of automation runs, and when two runs ended together.",
    )
    def _publish(context: dg.SensorEvaluationContext):
        if not is_stale(warehouse.path, warehouse.read_path):
            return dg.SkipReason("the readers' snapshot is current")
        if other_runs_in_progress(context.instance, None):
            return dg.SkipReason("runs are in progress: the snapshot waits for them")
        try:
            done = publish(warehouse, warehouse.read_path)
        except (Timeout, WarehouseLockedError) as exc:
            return dg.SkipReason(f"the warehouse is busy, next tick tries again: {exc}")
        return dg.SkipReason(describe(done) if done else "the readers' snapshot is current")

    return _publish
