"""Schedules and sensors: the daily lookback refresh, the automation sensor that keeps derived
days in step with their upstream days, and the run-failure alert.

Pendo keeps changing a day for about a week after it ends (late browser events, mobile
queues, retroactive tagging). So each morning, in the subscription's time zone, one run
refreshes the entity tables and re-materializes the last ``PENDO_LOOKBACK_DAYS`` partitions of
every daily-partitioned asset as a single partition-range run. Each partition is replaced
atomically, so late events replace the earlier counts instead of adding to them.

The selection is derived from the asset graph handed in (every asset on the daily partitions,
plus the unpartitioned assets upstream of them), so marts added later join the refresh without
editing this module.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import dagster as dg
import requests

from pendo_assets.run_tags import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG, range_tags
from pendo_assets.settings import WEEKDAYS, Settings
from pendo_assets.warehouse.tag_changes import REPAIRS_DUE

REFRESH_JOB = "pendo_daily_refresh"
TAG_REPAIR_JOB = "pendo_tag_repair"
TAG_REPAIR_SENSOR = "pendo_tag_repair_sensor"
TAG_REPAIR_INTERVAL_S = 60
SWEEP_JOB = "pendo_history_sweep"
SWEEP_SCHEDULE = "pendo_history_sweep_schedule"
# After the 06:00 refresh, on PENDO_SWEEP_WEEKDAY.
SWEEP_HOUR = 7
REPAIR_RUN_TAG = "pendo/repair"
SWEEP_RUN_TAG = "pendo/sweep"
REFRESH_SCHEDULE = "pendo_daily_refresh_schedule"
FAILURE_SENSOR = "pendo_run_failure_alert"
AUTOMATION_SENSOR = "pendo_automation"
AUTOMATION_INTERVAL_S = 30
# 06:00 local: yesterday is complete in Pendo by then (events appear within about an hour).
REFRESH_CRON = "0 6 * * *"
WEBHOOK_TIMEOUT_S = 10.0

log = logging.getLogger("pendo_assets.automation")


# -- automation conditions -----------------------------------------------------------------


def daily_automation(lookback_days: int) -> dg.AutomationCondition:
    """The one condition of every derived daily asset (enriched events and daily marts).

    Unlike ``eager()``, which looks at the latest partition only, a day is requested whenever
    any upstream day it reads is updated, old or new: a backfill of last spring's raw days flows
    to enriched events and then to the marts. A day that newly goes missing is filled only within
    the lookback window, so switching automation on never requests years of history by itself.
    It waits until every upstream day exists, nothing upstream or itself is running, and every
    blocking check of its upstream days (grain, ids, reconciliation with Pendo) has passed.
    """
    recent = dg.AutomationCondition.in_latest_time_window(timedelta(days=lookback_days))
    return (
        (
            (recent & dg.AutomationCondition.newly_missing())
            | dg.AutomationCondition.any_deps_updated()
        ).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("eager for every updated upstream day, after passing checks")


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates every asset's automation condition, switched on by default.

    Without it Dagster makes a default automation sensor that starts *stopped*, so nothing
    would follow the raw days until someone found the toggle.
    """
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=AUTOMATION_INTERVAL_S,
        description="Keeps enriched events, marts, rollups and the report in step with the days "
        "they read: each updated upstream day (a backfill too) is re-derived once its blocking "
        "checks pass.",
    )


# -- the daily lookback refresh ------------------------------------------------------------


def refresh_selection(
    assets: Sequence[dg.AssetsDefinition], partitions: dg.PartitionsDefinition
) -> tuple[list[dg.AssetKey], list[dg.AssetKey]]:
    """(daily keys, unpartitioned upstream keys) of the asset graph, each sorted.

    Daily keys are every asset on ``partitions``; the unpartitioned ones are those any daily
    asset depends on (the entity tables its names are joined from), with every other table
    their step loads (segments: no daily table joins them, and they refresh all the same).
    """
    by_key: dict[dg.AssetKey, dg.AssetsDefinition] = {}
    for a in assets:
        if isinstance(a, dg.AssetsDefinition):
            for k in a.keys:
                by_key[k] = a
    daily = {k for k, a in by_key.items() if a.partitions_def == partitions}
    upstream: set[dg.AssetKey] = set()
    todo = list(daily)
    while todo:
        key = todo.pop()
        for dep in by_key[key].asset_deps.get(key, ()):
            a = by_key.get(dep)
            if a is None or dep in daily or dep in upstream:
                continue
            if a.partitions_def is None:
                upstream.add(dep)
                todo.append(dep)
    for key in list(upstream):
        upstream.update(k for k in by_key[key].keys if by_key[k].partitions_def is None)
    return sorted(daily, key=str), sorted(upstream, key=str)


def lookback_range(settings: Settings, now: datetime) -> tuple[str, str] | None:
    """First and last partition key of the last ``lookback_days`` complete local days at
    ``now`` (today is partial and is not a partition yet), clipped to PENDO_START_DATE."""
    last = settings.clock.at(now).astimezone(settings.zone).date() - timedelta(days=1)
    if last < settings.first_day:
        return None
    start = max(settings.first_day, last - timedelta(days=settings.lookback_days - 1))
    return start.isoformat(), last.isoformat()


def build_refresh_schedule(
    settings: Settings,
    assets: Sequence[dg.AssetsDefinition],
    partitions: dg.TimeWindowPartitionsDefinition,
) -> dg.ScheduleDefinition:
    daily, entities = refresh_selection(assets, partitions)
    selection = [*entities, *daily]
    job = dg.define_asset_job(
        REFRESH_JOB,
        selection=dg.AssetSelection.assets(*selection),
        description=f"Refresh entities and re-load the last {settings.lookback_days} days "
        "(PENDO_LOOKBACK_DAYS) of every daily asset in one partition-range run.",
    )

    @dg.schedule(
        name=REFRESH_SCHEDULE,
        job=job,
        cron_schedule=REFRESH_CRON,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every morning at 06:00 {settings.timezone}: entities, then the last "
        f"{settings.lookback_days} days of raw events, enriched events and marts, as one run. "
        "Late Pendo events replace earlier counts (each day is replaced atomically).",
    )
    def _refresh(context: dg.ScheduleEvaluationContext):
        window = lookback_range(settings, context.scheduled_execution_time)
        if window is None:
            return dg.SkipReason("no complete day since PENDO_START_DATE yet")
        start, end = window
        return dg.RunRequest(
            run_key=f"lookback-{start}-{end}",
            asset_selection=selection,
            tags=range_tags(start, end),
        )

    return _refresh


# -- history that Pendo changed after we loaded it -----------------------------------------


def build_tag_repair_sensor(
    events_op: str, links: Mapping[dg.AssetKey, tuple[str, dg.AssetKey]], job
) -> dg.SensorDefinition:
    """Right after a load of pages, features or track types that found tags Pendo recomputed
    (created, edited, deleted, and no longer ``dirty``), one run per run of loaded days reloads
    only those tags' rows of their event table over every loaded day, outside the lookback
    window too. ``links``: tag entity asset -> (its event source, that source's asset)."""

    @dg.sensor(
        name=TAG_REPAIR_SENSOR,
        job=job,
        minimum_interval_seconds=TAG_REPAIR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Pendo tags are retroactive: after a load of pages, features or track "
        "types finds tags created, edited or deleted since the one before (and done "
        "reprocessing at Pendo), reloads just those tags' event rows over every loaded day.",
    )
    def _repair(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor or "{}")
        requests = []
        for entity_key, (source, event_key) in links.items():
            records = context.instance.fetch_materializations(entity_key, limit=1).records
            name = entity_key.to_user_string()
            if not records or records[0].storage_id <= cursor.get(name, 0):
                continue
            record = records[0]
            cursor[name] = record.storage_id
            materialization = record.event_log_entry.asset_materialization
            due_value = materialization.metadata.get(REPAIRS_DUE) if materialization else None
            due = due_value.value if due_value is not None else None
            if not due or not (due["reload"] or due["deleted"]):
                continue
            what = f"{source}: {len(due['reload'])} reloaded, {len(due['deleted'])} deleted tag(s)"
            for first, last in due["day_runs"]:
                requests.append(
                    dg.RunRequest(
                        run_key=f"tag-repair-{record.storage_id}-{first}",
                        asset_selection=[event_key],
                        run_config={
                            "ops": {
                                events_op: {
                                    "config": {
                                        "repair_tags": {source: due["reload"]},
                                        "delete_tags": {source: due["deleted"]},
                                    }
                                }
                            }
                        },
                        tags={**range_tags(first, last), REPAIR_RUN_TAG: what},
                    )
                )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return _repair


def sweep_range(settings: Settings, now: datetime) -> tuple[str, str] | None:
    """Every complete local day from PENDO_START_DATE to yesterday at ``now``."""
    last = settings.clock.at(now).astimezone(settings.zone).date() - timedelta(days=1)
    if last < settings.first_day:
        return None
    return settings.start_date, last.isoformat()


def build_sweep_schedule(settings: Settings, events_op: str, job) -> dg.ScheduleDefinition:
    weekday = settings.sweep_weekday
    cron_weekday = (weekday + 1) % 7  # cron counts from Sunday, Python from Monday

    @dg.schedule(
        name=SWEEP_SCHEDULE,
        job=job,
        cron_schedule=f"0 {SWEEP_HOUR} * * {cron_weekday}",
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every {WEEKDAYS[weekday].title()} at {SWEEP_HOUR:02d}:00 "
        f"{settings.timezone} (PENDO_SWEEP_WEEKDAY): compares every day and tag of the whole "
        "history with Pendo's own totals and reloads only the slices that differ (late events "
        "older than the lookback, data deleted at Pendo, tag changes detection missed).",
    )
    def _sweep(context: dg.ScheduleEvaluationContext):
        window = sweep_range(settings, context.scheduled_execution_time)
        if window is None:
            return dg.SkipReason("no complete day since PENDO_START_DATE yet")
        start, end = window
        return dg.RunRequest(
            run_key=f"sweep-{start}-{end}",
            run_config={"ops": {events_op: {"config": {"sweep": True}}}},
            tags={**range_tags(start, end), SWEEP_RUN_TAG: f"{start}..{end}"},
        )

    return _sweep


def build_history_repair(
    settings: Settings,
    events_op: str,
    event_keys: Sequence[dg.AssetKey],
    links: Mapping[dg.AssetKey, tuple[str, dg.AssetKey]],
) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """The tag repair sensor and the weekly sweep schedule, over the raw event assets."""
    repair_job = dg.define_asset_job(
        TAG_REPAIR_JOB,
        selection=dg.AssetSelection.assets(*event_keys),
        description="Reloads the event rows of tags Pendo recomputed (run config repair_tags, "
        "delete_tags), over the loaded days.",
    )
    schedules = []
    if settings.sweep_weekday is not None:
        sweep_job = dg.define_asset_job(
            SWEEP_JOB,
            selection=dg.AssetSelection.assets(*event_keys),
            description="Deep reconciliation of the whole history with Pendo per day and tag; "
            "reloads only the slices that differ.",
        )
        schedules.append(build_sweep_schedule(settings, events_op, sweep_job))
    return schedules, [build_tag_repair_sensor(events_op, links, repair_job)]


# -- the failure alert ---------------------------------------------------------------------


def _failed_days(tags: dict[str, str]) -> str:
    if RANGE_START_TAG in tags:
        start, end = tags[RANGE_START_TAG], tags.get(RANGE_END_TAG, tags[RANGE_START_TAG])
        return start if start == end else f"{start}...{end}"
    return tags.get(PARTITION_TAG, "")


def _advice(error: str) -> str:
    text = error.lower()
    if "pendo_integration_key" in text or "rejected the integration key" in text:
        return (
            "Check PENDO_INTEGRATION_KEY and PENDO_REGION (a key works only against its own "
            "region's host), then re-materialize the days above."
        )
    if "pendo_timezone" in text:
        return (
            "Set PENDO_TIMEZONE to the subscription's time zone (Pendo: Settings > "
            "Subscription Settings > Time Zone), then re-materialize the days above."
        )
    if "pendo_duckdb_lock_wait_s" in text:
        return (
            "Close the SQL client or BI tool the error names (it holds the warehouse file), "
            "connect it to PENDO_DUCKDB_READ_PATH instead, then re-materialize the days above."
        )
    if "memory limit" in text:
        return (
            "Pendo refused the query as too large even per hour: drop columns or apps "
            "(PENDO_DROP_COLUMNS, PENDO_APP_ID), then re-materialize the days above."
        )
    return (
        "Fix the cause above if it is ours (see docs/troubleshooting.md), or wait if Pendo "
        "is degraded, then re-materialize the days above (nothing partial was written: each "
        "day is replaced atomically)."
    )


def failure_summary(
    run: dg.DagsterRun,
    step_errors: list[str],
    run_error: str | None,
    planned: Sequence[dg.AssetKey] = (),
) -> tuple[str, dict]:
    """One readable summary of a failed run and the JSON payload that carries it.

    ``planned`` are the assets the run set out to materialize (runs launched with an ad-hoc
    selection carry no ``asset_selection``).
    """
    assets = sorted({k.to_user_string() for k in [*(run.asset_selection or ()), *planned]})
    days = _failed_days(dict(run.tags))
    error = step_errors[0] if step_errors else (run_error or "unknown error")
    advice = _advice(" ".join([*step_errors, run_error or ""]))
    lines = [
        f"Pendo run {run.run_id[:8]} ({run.job_name}) failed.",
        f"Assets: {', '.join(assets) if assets else '(the job ' + run.job_name + ')'}",
    ]
    if days:
        lines.append(f"Days: {days}")
    lines.append(f"Error: {error}")
    if len(step_errors) > 1:
        lines.append(f"({len(step_errors) - 1} more step(s) failed; see the run's logs.)")
    lines.append(f"What to do: {advice}")
    text = "\n".join(lines)
    payload = {
        "text": text,  # Slack-compatible incoming webhook field
        "run_id": run.run_id,
        "job": run.job_name,
        "assets": assets,
        "days": days or None,
        "error": error,
        "what_to_do": advice,
    }
    return text, payload


def post_alert(url: str, payload: dict) -> None:
    """POST the payload; a broken webhook must not hide the failure it reports."""
    try:
        resp = requests.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S)
        resp.raise_for_status()
    except requests.RequestException as exc:
        # The URL is often a secret (Slack webhooks carry a token); log only the error type.
        log.warning(
            "PENDO_ALERT_WEBHOOK: posting the failure alert failed (%s)", type(exc).__name__
        )


def build_failure_sensor(settings: Settings) -> dg.SensorDefinition:
    webhook = settings.alert_webhook

    @dg.run_failure_sensor(
        name=FAILURE_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="On a failed run: one summary (assets, days, error, what to do) in the "
        "log, also POSTed as JSON with a Slack-compatible `text` to PENDO_ALERT_WEBHOOK.",
    )
    def _alert(context: dg.RunFailureSensorContext) -> None:
        step_errors = []
        for event in context.get_step_failure_events():
            info = event.step_failure_data.error if event.step_failure_data else None
            step_errors.append(_error_text(info) if info else (event.message or ""))
        run_error = context.failure_event.message if context.failure_event else None
        planned = [
            r.event_log_entry.dagster_event.asset_key
            for r in context.instance.get_records_for_run(
                context.dagster_run.run_id,
                of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
            ).records
            if r.event_log_entry.dagster_event is not None
        ]
        text, payload = failure_summary(context.dagster_run, step_errors, run_error, planned)
        context.log.error(text)
        if webhook:
            post_alert(webhook, payload)

    return _alert


def _error_text(info) -> str:
    # Dagster wraps asset errors ("Error occurred while executing op ..."): report the cause.
    while (
        info.cause is not None and info.cls_name == dg.DagsterExecutionStepExecutionError.__name__
    ):
        info = info.cause
    lines = info.message.strip().splitlines()
    if not lines:
        return info.cls_name or ""
    head, sep, rest = lines[0].partition(": ")
    # "pendo_assets.pendo.client.PendoUnavailableError: Pendo did not ..." -> the sentence.
    return rest if sep and " " not in head else lines[0]


def build_automation(
    settings: Settings,
    assets: Sequence[dg.AssetsDefinition],
    partitions: dg.TimeWindowPartitionsDefinition,
) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    return [build_refresh_schedule(settings, assets, partitions)], [
        build_automation_sensor(),
        build_failure_sensor(settings),
    ]
