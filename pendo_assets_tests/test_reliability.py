"""Faults, Pendo's memory limit, authentication, time zones, DST, schema drift and bad input,
each against the emulator over HTTP: every failure ends in exact data or one clear error with
nothing written."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pendo_assets.catalog import EVENTS, SOURCES_BY_NAME
from pendo_assets.definitions import build_definitions
from pendo_assets.emulator import Drift, EmulatorServer, Faults
from pendo_assets.pendo.days import days_between
from pendo_assets.run_tags import range_tags
from pendo_assets.settings import SettingsError, load_settings

from .conftest import (
    TEST_KEY,
    TIMEZONE,
    TODAY,
    day_truth,
    excluded_visitors,
    loaded,
    materialize_command,
    project_env,
    query,
    small_subscription,
)

# Left out of `make test-quick`: fault-injected backfills, DST days and CLI subprocesses.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RAW_KEYS = [f"pendo/{s.table}" for s in EVENTS]
PAGE_EVENTS = SOURCES_BY_NAME["pageEvents"]


def table_exists(path: str, table: str) -> bool:
    if not os.path.exists(path):
        return False
    return bool(
        query(path, "SELECT 1 FROM information_schema.tables WHERE table_name = ?", [table])
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every step error message of a failed run, causes included."""
    parts = []
    for event in result.all_events:
        if event.is_step_failure:
            info = event.step_failure_data.error
            while info is not None:
                parts.append(info.message)
                info = info.cause
    return "\n".join(parts)


# -- 1. transient faults --------------------------------------------------------------------


def test_backfill_through_transient_faults_equals_a_clean_run(
    emulator, subscription, make_project, tmp_path
):
    faults = Faults(
        fail_every=4,
        fail_status=429,
        retry_after_s=0.1,  # type: ignore[arg-type]  # the header takes seconds as text
        reset_every=7,
        truncate_every=9,
        garbage_every=11,
        timeout_every=13,
        timeout_sleep_s=1.3,
    )
    start, end = "2026-10-05", "2026-10-09"
    with EmulatorServer(subscription, integration_key=TEST_KEY, faults=faults).start() as faulty:
        # About every other request fails: with all sources fetched at once the faults land on
        # requests in no fixed order, so give each request room for a long unlucky streak.
        project = make_project(
            faulty, PENDO_MAX_RETRIES="12", PENDO_REQUEST_TIMEOUT_S="1", PENDO_MAX_CONCURRENCY="4"
        )
        result = project.materialize(RAW_KEYS, start, end)
        # Half-way, switch the failures to 500s: both kinds are retried.
        faults.update(fail_status=500)
        result2 = project.materialize(RAW_KEYS, start, end)
        statuses = faulty.stats.snapshot()["by_status"]
    assert result.success and result2.success
    assert statuses.get("429") and statuses.get("500")
    clean_path = str(tmp_path / "clean.duckdb")
    env = project_env(emulator, tmp_path, PENDO_DUCKDB_PATH=clean_path)
    clean_defs = build_definitions(load_settings(env))
    with dg.DagsterInstance.ephemeral() as inst:
        clean = dg.materialize(
            list(clean_defs.assets),
            selection=[dg.AssetKey.from_user_string(k) for k in RAW_KEYS],
            resources=clean_defs.resources,
            instance=inst,
            tags=range_tags(start, end),
        )
    assert clean.success
    con = duckdb.connect(project.duckdb_path, read_only=True)
    try:
        con.execute(f"ATTACH '{clean_path}' AS clean (READ_ONLY)")
        for s in EVENTS:
            n = con.execute(f"SELECT count(*) FROM pendo.{s.table}").fetchone()[0]
            assert n > 0, s.table
            for a, b in (("pendo", "clean.pendo"), ("clean.pendo", "pendo")):
                diff = con.execute(
                    f"SELECT count(*) FROM (SELECT * FROM {a}.{s.table} "
                    f"EXCEPT ALL SELECT * FROM {b}.{s.table})"
                ).fetchone()[0]
                assert diff == 0, f"{s.table}: {diff} rows differ from a clean run"
    finally:
        con.close()


def test_retries_are_bounded_and_the_error_names_source_day_and_status(
    fresh_emulator, make_project
):
    fresh_emulator.faults.update(fail_every=1, fail_status=500)
    project = make_project(fresh_emulator, PENDO_MAX_RETRIES="2")
    result = project.materialize(["pendo/page_events"], "2026-10-01", raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "pageEvents for 2026-10-01" in text
    assert "last status: HTTP 500" in text
    assert "after 3 attempts" in text
    assert fresh_emulator.stats.snapshot()["aggregation_requests"] == 3
    assert not table_exists(project.duckdb_path, "page_events")


@pytest.mark.parametrize("knob", ["garbage_every", "truncate_every"])
def test_a_body_that_is_not_json_or_cut_off_fails_clearly_and_writes_nothing(
    fresh_emulator, make_project, knob
):
    fresh_emulator.faults.update(**{knob: 1})
    project = make_project(fresh_emulator, PENDO_MAX_RETRIES="1")
    result = project.materialize(["pendo/page_events"], "2026-10-01", raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "pageEvents for 2026-10-01" in text
    assert (
        ("non-JSON" in text)
        if knob == "garbage_every"
        else ("cut-off" in text or "interrupted" in text)
    )
    assert not table_exists(project.duckdb_path, "page_events")


# -- 2. memory limit ------------------------------------------------------------------------


def _day_rows(sub, day: date) -> int:
    return sum(len(sub.event_rows("pageEvents", app, day)) for app in sub.app_ids)


@pytest.mark.parametrize("day", ["2026-10-01", "2026-11-01"], ids=["24h", "25h-dst"])
def test_memory_limit_falls_back_to_hours_and_lands_exactly(
    fresh_emulator, subscription, make_project, day
):
    d = date.fromisoformat(day)
    fresh_emulator.faults.update(memory_limit_rows=_day_rows(subscription, d) // 2)
    project = make_project(fresh_emulator)
    result = project.materialize(["pendo/page_events"], day)
    assert result.success
    by_source = fresh_emulator.stats.snapshot()["by_status"]
    # The day was refused once, then asked per hour; Pendo's totals for the same day read the
    # same rows and are refused too: reconciliation warns instead of crashing the check step.
    assert by_source.get("400") == 2
    (recon,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "reconciles_young_days"
    ]
    assert not recon.passed and recon.severity == dg.AssetCheckSeverity.WARN
    assert f"could not reconcile {day}: " in recon.description
    assert "exceeded memory limit" in recon.description
    hours = 25 if day == "2026-11-01" else 24
    # The refused day, then one request per hour (asset checks may add their own queries).
    assert fresh_emulator.stats.snapshot()["aggregation_requests"] >= 1 + hours
    assert loaded(project.duckdb_path, PAGE_EVENTS, [d]) == day_truth(
        subscription, PAGE_EVENTS, [d]
    )


def test_an_hour_still_too_big_fails_naming_source_day_and_hour(fresh_emulator, make_project):
    fresh_emulator.faults.update(memory_limit_rows=1)
    project = make_project(fresh_emulator)
    result = project.materialize(["pendo/page_events"], "2026-10-01", raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    # Night hours may hold a single row; the first hour with more rows is named.
    assert re.search(r"pageEvents for 2026-10-01, hour \d\d:00 \(America/New_York\)", text)
    assert "memory limit" in text
    assert not table_exists(project.duckdb_path, "page_events")


# -- 3. authentication ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_a_wrong_key_fails_at_once_with_at_most_two_requests(fresh_emulator, make_project, status):
    wrong = "wrong-key-9d8e7f6a5b"
    fresh_emulator.faults.update(auth_status=status)
    project = make_project(fresh_emulator, PENDO_INTEGRATION_KEY=wrong)
    keys = ["pendo/accounts", "pendo/visitors", *RAW_KEYS]
    result = project.materialize(keys, "2026-10-01", "2026-10-05", raise_on_error=False)
    assert not result.success
    assert fresh_emulator.stats.snapshot()["requests"] <= 2
    assert fresh_emulator.stats.snapshot()["by_status"] == {str(status): 1}
    text = failure_text(result)
    assert "PENDO_INTEGRATION_KEY" in text and "PENDO_REGION" in text
    assert f"HTTP {status}" in text
    assert wrong not in text
    assert not any(
        table_exists(project.duckdb_path, s.table) for s in [*EVENTS, SOURCES_BY_NAME["accounts"]]
    )


# -- 5. time zone and DST -------------------------------------------------------------------


def test_a_time_zone_mismatch_fails_naming_the_offset_and_writes_nothing(emulator, make_project):
    project = make_project(emulator, PENDO_TIMEZONE="UTC")
    result = project.materialize(["pendo/page_events"], "2026-10-01", raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert (
        "Pendo's days start at 04:00 UTC, which matches America/New_York in summer; "
        "PENDO_TIMEZONE is UTC" in text
    )
    assert "Set PENDO_TIMEZONE" in text
    assert not table_exists(project.duckdb_path, "page_events")
    raw = project.materialize(["pendo/guide_events"], "2026-10-01", raise_on_error=False)
    assert not raw.success
    assert "Set PENDO_TIMEZONE" in failure_text(raw)
    assert not table_exists(project.duckdb_path, "guide_events")


def test_when_pendo_switches_time_zone_loaded_days_stay_untouched(
    fresh_emulator, subscription, make_project
):
    project = make_project(fresh_emulator)
    days = days_between("2026-10-01", "2026-10-02")
    assert project.materialize(["pendo/page_events"], "2026-10-01", "2026-10-02").success
    before = query(project.duckdb_path, "SELECT * FROM pendo.page_events ORDER BY ALL")
    fresh_emulator.faults.update(wrong_timezone="Europe/Berlin")
    result = project.materialize(
        ["pendo/page_events"], "2026-10-01", "2026-10-02", raise_on_error=False
    )
    assert not result.success
    assert "Pendo's days start at 22:00 UTC" in failure_text(result)
    assert query(project.duckdb_path, "SELECT * FROM pendo.page_events ORDER BY ALL") == before
    assert loaded(project.duckdb_path, PAGE_EVENTS, days) == day_truth(
        subscription, PAGE_EVENTS, days
    )


def test_dst_days_of_23_and_25_hours_load_exactly(make_project):
    sub = small_subscription(first_day=date(2026, 3, 6), last_day=date(2026, 3, 9))
    sub_fall = small_subscription(first_day=date(2026, 10, 30), last_day=date(2026, 11, 2))
    for s, day in ((sub, "2026-03-08"), (sub_fall, "2026-11-01")):
        with EmulatorServer(s, integration_key=TEST_KEY).start() as server:
            project = make_project(server, PENDO_START_DATE=s.first_day.isoformat())
            result = project.materialize(RAW_KEYS, day)
            assert result.success
            d = date.fromisoformat(day)
            assert s.day_hours(d) == (23 if day.startswith("2026-03") else 25)
            for source in EVENTS:
                assert loaded(project.duckdb_path, source, [d]) == day_truth(s, source, [d]), (
                    source.table,
                    day,
                )
            # Raw events near both ends of the long/short day are filed under it, not a neighbour.
            rows = query(project.duckdb_path, "SELECT day, browser_time FROM pendo.guide_events")
            assert rows and all(ts.astimezone(s.tz).date() == d for _, ts in rows)
            os.remove(project.duckdb_path)


# -- 8. schema drift ------------------------------------------------------------------------


def test_a_field_that_appears_disappears_and_changes_type_widens_and_keeps_data(make_project):
    drift = (
        Drift("pageEvents", "customScore", date(2026, 10, 2), date(2026, 10, 3), "int"),
        Drift("pageEvents", "customScore", date(2026, 10, 5), date(2026, 10, 5), "str"),
    )
    sub = small_subscription(drift=drift)
    col_type = (
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'page_events' AND column_name = 'custom_score'"
    )
    with EmulatorServer(sub, integration_key=TEST_KEY).start() as server:
        project = make_project(server)
        assert project.materialize(["pendo/page_events"], "2026-10-01", "2026-10-03").success
        assert query(project.duckdb_path, col_type) == [("BIGINT",)]
        before = query(
            project.duckdb_path,
            "SELECT day, custom_score FROM pendo.page_events WHERE custom_score IS NOT NULL",
        )
        assert before
        assert project.materialize(["pendo/page_events"], "2026-10-04", "2026-10-05").success
        assert query(project.duckdb_path, col_type) == [("VARCHAR",)]
        # A later re-run of an int day into the widened column still works.
        assert project.materialize(["pendo/page_events"], "2026-10-02").success
    path = project.duckdb_path
    after = query(
        path,
        "SELECT day, custom_score FROM pendo.page_events "
        "WHERE custom_score IS NOT NULL AND day <= '2026-10-03'",
    )
    assert sorted((d, str(v)) for d, v in before) == sorted(after)
    per_day = dict(query(path, "SELECT day, count(custom_score) FROM pendo.page_events GROUP BY 1"))
    assert per_day[date(2026, 10, 1)] == 0 and per_day[date(2026, 10, 4)] == 0
    internal = excluded_visitors(sub)  # on the Exclude List, left out of pageEvents too
    expected = {
        (d, str(r["customScore"]))
        for d in days_between("2026-10-01", "2026-10-05")
        for app in sub.app_ids
        for r in sub.event_rows("pageEvents", app, d)
        if "customScore" in r and r["visitorId"] not in internal
    }
    got = set(
        query(
            path, "SELECT day, custom_score FROM pendo.page_events WHERE custom_score IS NOT NULL"
        )
    )
    assert got == expected
    days = days_between("2026-10-01", "2026-10-05")
    assert loaded(path, PAGE_EVENTS, days) == day_truth(sub, PAGE_EVENTS, days)


# -- 10. bad configuration ------------------------------------------------------------------


def _env(**changes: str) -> dict[str, str]:
    env = {
        "PENDO_INTEGRATION_KEY": TEST_KEY,
        "PENDO_START_DATE": "2026-09-01",
        "PENDO_TIMEZONE": TIMEZONE,
        "PENDO_DEMO": "0",
        "PENDO_DUCKDB_PATH": "/tmp/pendo-reliability/warehouse.duckdb",
    }
    env.update(changes)
    return env


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PENDO_REGION", "mars"),
        ("PENDO_APP_ID", "my-app"),
        ("PENDO_START_DATE", (TODAY + timedelta(days=3)).isoformat()),
        ("PENDO_START_DATE", "2012-12-31"),
        ("PENDO_TIMEZONE", "Mars/Olympus_Mons"),
    ],
)
def test_each_bad_setting_gives_one_message_naming_it_and_an_example(var, value):
    with pytest.raises(SettingsError) as err:
        load_settings(_env(**{var: value}))
    message = str(err.value)
    assert message.startswith(f"{var}={value!r} is not valid")
    assert f"Example: {var}=" in message


def test_an_unwritable_duckdb_path_is_refused(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(SettingsError) as err:
        load_settings(_env(PENDO_DUCKDB_PATH=str(blocker / "warehouse.duckdb")))
    assert "PENDO_DUCKDB_PATH=" in str(err.value) and "not writable" in str(err.value)


@pytest.mark.parametrize(
    ("var", "value"), [("PENDO_REGION", "mars"), ("PENDO_TIMEZONE", "Mars/Olympus_Mons")]
)
def test_the_cli_with_a_bad_setting_exits_with_one_clear_message_and_writes_nothing(
    emulator, tmp_path, var, value
):
    env = {**os.environ, **project_env(emulator, tmp_path), var: value}
    os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
    proc = subprocess.run(
        materialize_command("pendo/page_events", partition="2026-10-01"),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert out.count("is not valid") == 1  # one message: the traceback's last line
    assert f"{var}={value!r} is not valid" in out.strip().splitlines()[-1]
    assert f"Example: {var}=" in out
    assert emulator.url  # the emulator was up, yet nothing was asked of it or written
    assert not os.path.exists(env["PENDO_DUCKDB_PATH"])
