"""Freshness judged from the clock (pinned: PENDO_TODAY) and Dagster's record of loaded days,
evaluated without a run of the asset it watches."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import dagster as dg

from pendo_assets.freshness import FRESH, FRESHNESS_SENSOR, expected_day

from .conftest import TIMEZONE, TODAY

PAGE_EVENTS = dg.AssetKey(["pendo", "page_events"])
MART = dg.AssetKey(["analytics", "page_daily_metrics"])
YESTERDAY = "2026-11-20"  # TODAY is 2026-11-21


def record_days(instance: dg.DagsterInstance, key: dg.AssetKey, days: list[str]) -> None:
    """Days Dagster knows as loaded, reported without running anything."""
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))


def run_freshness(project, *keys: dg.AssetKey) -> dict[dg.AssetKey, dg.AssetCheckEvaluation]:
    """Only the freshness checks of ``keys``: no asset is selected, so none is materialized."""
    result = dg.materialize(
        [*project.defs.assets, *project.defs.asset_checks],
        selection=dg.AssetSelection.checks(*(dg.AssetCheckKey(k, FRESH) for k in keys)),
        resources=project.defs.resources,
        instance=project.instance,
        raise_on_error=False,
    )
    assert result.success  # a warning never fails the run
    assert result.get_asset_materialization_events() == []
    return {e.asset_key: e for e in result.get_asset_check_evaluations()}


def test_a_stale_asset_fails_without_being_materialized_naming_newest_and_expected_day(
    emulator, make_project
):
    project = make_project(emulator)
    record_days(project.instance, PAGE_EVENTS, ["2026-11-16", "2026-11-17"])
    found = run_freshness(project, PAGE_EVENTS, MART)
    stale = found[PAGE_EVENTS]
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert "2026-11-17" in stale.description and YESTERDAY in stale.description
    assert stale.metadata["newest_loaded_day"].value == "2026-11-17"
    assert stale.metadata["expected_day"].value == YESTERDAY
    assert stale.metadata["days_behind"].value == 3
    never = found[MART]  # never loaded at all
    assert not never.passed and "No day loaded yet" in never.description
    assert YESTERDAY in never.description


def test_yesterday_loaded_is_fresh_until_the_next_deadline(emulator, make_project):
    project = make_project(emulator)
    record_days(project.instance, PAGE_EVENTS, ["2026-11-19", YESTERDAY])
    fresh = run_freshness(project, PAGE_EVENTS)[PAGE_EVENTS]
    assert fresh.passed, fresh.description
    until = fresh.metadata["dagster/fresh_until_timestamp"].value
    zone = ZoneInfo(TIMEZONE)
    assert datetime.fromtimestamp(until, zone) == datetime(2026, 11, 22, 9, 0, tzinfo=zone)


def test_the_deadline_is_nine_in_the_subscription_zone():
    zone = ZoneInfo(TIMEZONE)
    before = datetime.combine(TODAY, time(8, 59), tzinfo=zone)
    after = datetime.combine(TODAY, time(9, 0), tzinfo=zone)
    assert expected_day(before)[0] == date(2026, 11, 19)
    assert expected_day(after)[0] == date(2026, 11, 20)


def test_the_freshness_sensor_is_running_and_asks_for_a_check_only_run(emulator, make_project):
    project = make_project(emulator)
    sensor = project.defs.get_sensor_def(FRESHNESS_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.build_sensor_context(instance=project.instance, definitions=project.defs) as ctx:
        result = sensor.evaluate_tick(ctx)
    (request,) = result.run_requests
    assert request.asset_selection in (None, [])  # checks only: no asset is re-materialized
    checks = set(request.asset_check_keys)
    assert dg.AssetCheckKey(PAGE_EVENTS, FRESH) in checks
    assert dg.AssetCheckKey(MART, FRESH) in checks
