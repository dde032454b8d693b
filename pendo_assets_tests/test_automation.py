"""The daily lookback schedule (one range run over every daily asset; late data replaces earlier
counts) and the run-failure alert posted to a local webhook receiver."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from pendo_assets import clock
from pendo_assets.automation import (
    AUTOMATION_SENSOR,
    FAILURE_SENSOR,
    RANGE_END_TAG,
    RANGE_START_TAG,
    REFRESH_JOB,
    REFRESH_SCHEDULE,
    build_automation,
)
from pendo_assets.catalog import ENTITIES, EVENTS, SOURCES_BY_NAME
from pendo_assets.emulator import EmulatorServer, Faults
from pendo_assets.partitions import daily_partitions
from pendo_assets.settings import load_settings

from .conftest import TEST_KEY, TIMEZONE, day_truth, loaded, query, small_subscription

# Left out of `make test-quick`: the morning refresh and a backfill flowing through
# automation, for real.
pytestmark = pytest.mark.slow

NY = ZoneInfo(TIMEZONE)
# 06:00 New York on 2026-11-21: the last complete day is 2026-11-20 (the emulator's last).
TICK = datetime(2026, 11, 21, 6, 0, tzinfo=NY)


def evaluate(defs: dg.Definitions, when: datetime) -> dg.RunRequest:
    schedule = defs.get_schedule_def(REFRESH_SCHEDULE)
    with dg.build_schedule_context(scheduled_execution_time=when) as ctx:
        result = schedule.evaluate_tick(ctx)
    assert len(result.run_requests) == 1
    return result.run_requests[0]


def test_schedule_asks_for_one_range_run_of_every_daily_asset(emulator, make_project):
    project = make_project(emulator, PENDO_LOOKBACK_DAYS="10")
    schedule = project.defs.get_schedule_def(REFRESH_SCHEDULE)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == TIMEZONE
    assert schedule.cron_schedule == "0 6 * * *"
    req = evaluate(project.defs, TICK)
    assert req.tags[RANGE_START_TAG] == "2026-11-11"
    assert req.tags[RANGE_END_TAG] == "2026-11-20"
    assert req.partition_key is None  # a range, not one run per day
    daily = {k for a in project.defs.assets for k in a.keys if a.partitions_def is not None}
    unpartitioned = {k for a in project.defs.assets for k in a.keys if a.partitions_def is None}
    assert daily >= {dg.AssetKey(["pendo", s.table]) for s in EVENTS}
    assert daily >= {dg.AssetKey(["analytics", s.table]) for s in EVENTS}
    selection = set(req.asset_selection)
    assert daily <= selection
    # The entities the enriched tables join on are refreshed in the same run.
    assert selection - daily == {k for k in unpartitioned if k.path[0] == "pendo"}
    # Lookback is clipped at PENDO_START_DATE.
    early = evaluate(project.defs, datetime(2026, 9, 4, 6, 0, tzinfo=NY))
    assert (early.tags[RANGE_START_TAG], early.tags[RANGE_END_TAG]) == ("2026-09-01", "2026-09-03")


def test_a_new_daily_asset_joins_the_refresh_without_editing_automation(emulator, make_project):
    project = make_project(emulator)
    settings = load_settings(project.env)
    partitions = daily_partitions(settings)

    @dg.asset(
        key=["analytics", "daily_mart"], partitions_def=partitions, deps=[["pendo", "events"]]
    )
    def daily_mart() -> None: ...

    schedules, _ = build_automation(settings, [*project.defs.assets, daily_mart], partitions)
    defs = dg.Definitions(
        assets=[*project.defs.assets, daily_mart],
        schedules=schedules,
        resources=project.defs.resources,
    )
    req = evaluate(defs, TICK)
    assert dg.AssetKey(["analytics", "daily_mart"]) in req.asset_selection


def test_the_refresh_run_replaces_late_data_instead_of_adding_it(make_project):
    before = small_subscription(daily_active_share=0.2)
    after = small_subscription(daily_active_share=0.5)  # late events arrived for the same days
    days = [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
    with EmulatorServer(before, integration_key=TEST_KEY).start() as server:
        project = make_project(server, PENDO_LOOKBACK_DAYS="3")
        req = evaluate(project.defs, TICK)
        assert (req.tags[RANGE_START_TAG], req.tags[RANGE_END_TAG]) == ("2026-11-18", "2026-11-20")
        job = project.defs.resolve_job_def(REFRESH_JOB)
        first = job.execute_in_process(instance=project.instance, tags=req.tags)
        assert first.success
        assert len(project.instance.get_runs()) == 1  # one run for every asset and day
        for s in EVENTS:
            assert loaded(project.duckdb_path, s, days) == day_truth(before, s, days), s.table
        server.subscription = after
        second = job.execute_in_process(instance=project.instance, tags=req.tags)
        assert second.success
    path = project.duckdb_path
    page_events = SOURCES_BY_NAME["pageEvents"]
    assert day_truth(after, page_events, days) != day_truth(before, page_events, days)
    for s in EVENTS:
        assert loaded(path, s, days) == day_truth(after, s, days), s.table
        raw = dict(query(path, f"SELECT day, count(*) FROM pendo.{s.table} GROUP BY 1"))
        enriched = dict(query(path, f"SELECT day, count(*) FROM analytics.{s.table} GROUP BY 1"))
        assert raw == enriched, s.table
    visitors = {v["visitorId"] for v in after.entities("visitors")}
    assert {v for (v,) in query(path, "SELECT visitor_id FROM pendo.visitors")} == visitors


class _Receiver(BaseHTTPRequestHandler):
    posts: list[dict]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts.append(  # type: ignore[attr-defined]
            {"content_type": self.headers.get("Content-Type"), "body": json.loads(body)}
        )
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def receiver():
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_failed_run_is_summarised_in_the_log_and_posted_to_the_webhook(
    subscription, make_project, receiver, capfd
):
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    faults = Faults(fail_every=1, fail_status=500)
    with EmulatorServer(subscription, integration_key=TEST_KEY, faults=faults).start() as server:
        project = make_project(server, PENDO_ALERT_WEBHOOK=url, PENDO_MAX_RETRIES="1")
        result = project.materialize(
            ["pendo/page_events"], "2026-10-01", "2026-10-03", raise_on_error=False
        )
    assert not result.success
    instance = project.instance
    run = instance.get_run_by_id(result.run_id)
    records = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    failure = records[0].event_log_entry.dagster_event
    sensor = project.defs.get_sensor_def(FAILURE_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    context = dg.build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR,
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()
    capfd.readouterr()
    sensor(context)
    logged = capfd.readouterr().err
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["content_type"] == "application/json"
    body = post["body"]
    assert body["assets"] == ["pendo/page_events"]
    assert body["days"] == "2026-10-01...2026-10-03"
    assert "pageEvents for 2026-10-01" in body["error"]
    assert "HTTP 500" in body["error"]
    assert "re-materialize" in body["what_to_do"]
    text = body["text"]
    for part in ("pendo/page_events", "2026-10-01...2026-10-03", "HTTP 500", "What to do:"):
        assert part in text
    assert TEST_KEY not in json.dumps(body)
    assert text.splitlines()[0] in logged and "What to do:" in logged


def test_without_a_webhook_the_summary_is_only_logged(subscription, make_project, receiver, capfd):
    faults = Faults(fail_every=1, fail_status=500)
    with EmulatorServer(subscription, integration_key=TEST_KEY, faults=faults).start() as server:
        project = make_project(server, PENDO_MAX_RETRIES="0")
        result = project.materialize(["pendo/events"], "2026-10-02", raise_on_error=False)
    run = project.instance.get_run_by_id(result.run_id)
    failure = (
        project.instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        .records[0]
        .event_log_entry.dagster_event
    )
    context = dg.build_run_status_sensor_context(
        sensor_name=FAILURE_SENSOR,
        dagster_event=failure,
        dagster_instance=project.instance,
        dagster_run=run,
    ).for_run_failure()
    capfd.readouterr()
    project.defs.get_sensor_def(FAILURE_SENSOR)(context)
    logged = capfd.readouterr().err
    assert receiver.posts == []
    assert "Days: 2026-10-02" in logged and "events for 2026-10-02" in logged
    assert "Assets: pendo/events" in logged


# -- the automation sensor and the shared condition ------------------------------------------

ENTITY_KEYS = [f"pendo/{s.table}" for s in ENTITIES]
OLD_DAYS = ["2026-09-10", "2026-09-11", "2026-09-12"]  # two months before the pinned today


def test_the_automation_sensor_is_defined_and_running_over_every_asset(emulator, make_project):
    project = make_project(emulator)
    sensor = project.defs.get_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.asset_selection == dg.AssetSelection.all()


def test_enriched_events_and_daily_marts_share_one_condition(emulator, make_project):
    project = make_project(emulator)
    graph = project.defs.resolve_asset_graph()
    labels = {
        str(graph.get(dg.AssetKey.from_user_string(k)).automation_condition)
        for k in ["analytics/page_events", "analytics/events", "analytics/page_daily_metrics"]
    }
    assert len(labels) == 1, labels
    assert "all_deps_blocking_checks_passed" in labels.pop()


def test_a_backfill_of_old_raw_days_flows_to_enriched_then_marts(emulator, make_project):
    """What the running sensor does on its ticks, evaluated against a real instance."""
    project = make_project(emulator)
    now = clock.now(TIMEZONE)
    enriched = dg.AssetKey(["analytics", "page_events"])
    mart = dg.AssetKey(["analytics", "page_daily_metrics"])

    def tick(cursor=None):
        return dg.evaluate_automation_conditions(
            project.defs, project.instance, evaluation_time=now, cursor=cursor
        )

    first = tick()  # a fresh warehouse: nothing to derive yet
    assert first.get_requested_partitions(enriched) == set()
    assert project.materialize(ENTITY_KEYS).success
    assert project.materialize(["pendo/page_events"], OLD_DAYS[0], OLD_DAYS[-1]).success
    second = tick(first.cursor)
    # One tick asks for the days and everything that follows from them; the backfill it launches
    # runs enriched events before the mart (and each asset's days as one range run).
    assert second.get_requested_partitions(enriched) == set(OLD_DAYS)
    assert second.get_requested_partitions(mart) == set(OLD_DAYS)
    # Marts that also read event streams never loaded for those days wait for them.
    account = dg.AssetKey(["analytics", "account_daily_metrics"])
    assert second.get_requested_partitions(account) == set()
    keys = ["analytics/page_events", "analytics/page_daily_metrics"]
    assert project.materialize(keys, OLD_DAYS[0], OLD_DAYS[-1]).success
    third = tick(second.cursor)
    assert third.get_requested_partitions(enriched) == set()  # handled
    assert third.get_requested_partitions(mart) == set()
