"""One clock for the project: PENDO_TODAY pins "today" for settings, the emulator and the
partitions, and a machine clock a year ahead (Debian's faketime) changes none of them."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from pendo_assets import clock
from pendo_assets.automation import REFRESH_SCHEDULE, SWEEP_SCHEDULE
from pendo_assets.clock import Clock
from pendo_assets.emulator import EmulatorServer, Subscription
from pendo_assets.run_tags import RANGE_END_TAG
from pendo_assets.settings import WEEKDAYS, SettingsError, load_settings

from .conftest import TODAY, run_in_demo_mode, small_subscription
from .test_freshness import run_freshness
from .ui_server import REPO_ROOT

PROBE = """
import json, os
from datetime import datetime
from pendo_assets.clock import Clock
from pendo_assets.emulator import Subscription
from pendo_assets.partitions import daily_partitions
from pendo_assets.settings import load_settings
s = load_settings({"PENDO_DUCKDB_PATH": os.environ["PROBE_DB"]})
print(json.dumps({
    "machine_year": datetime.now().year,
    "today": Clock.from_env().today().isoformat(),
    "demo_start": s.start_date,
    "emulator_last_day": Subscription.demo().last_day.isoformat(),
    "last_partition": daily_partitions(s).get_last_partition_key(),
}))
"""


def test_the_suite_runs_on_its_pinned_today(monkeypatch):
    assert os.environ[clock.ENV] == TODAY.isoformat()
    pinned = Clock.from_env()
    assert pinned.today() == pinned.today("Asia/Tokyo") == TODAY
    assert pinned.now("America/New_York").date() == TODAY
    monkeypatch.setenv(clock.ENV, "2026-13-01")
    with pytest.raises(SettingsError, match="PENDO_TODAY='2026-13-01' is not valid"):
        load_settings({"PENDO_DUCKDB_PATH": "data/w.duckdb"})
    monkeypatch.delenv(clock.ENV)
    assert Clock.from_env().today() == date.today()


@pytest.mark.skipif(
    shutil.which("faketime") is None,
    reason="faketime is missing: `sudo apt-get install -y faketime` (Debian/Ubuntu)",
)
@pytest.mark.skipif(
    "faketime" in os.environ.get("LD_PRELOAD", ""),
    reason="already under faketime (make test-future): this test shifts the clock itself",
)
def test_a_machine_clock_a_year_ahead_changes_nothing_pinned(tmp_path):
    proc = run_in_demo_mode(
        ["faketime", "-f", "+365d", sys.executable, "-c", PROBE],
        REPO_ROOT,
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        PYTHONPATH=str(REPO_ROOT / "pendo_assets_tests" / "future"),
        PROBE_DB=str(tmp_path / "w.duckdb"),
    )
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["machine_year"] == date.today().year + 1  # faketime did move the machine clock
    assert seen == {
        "machine_year": seen["machine_year"],
        "today": "2026-11-21",
        "demo_start": "2026-06-24",  # 150 days of demo history before the pinned today
        "emulator_last_day": "2026-11-21",
        "last_partition": "2026-11-20",  # partitions end the pinned day before
    }


# Nine days after the suite's TODAY, so the emulator's last days are final there, not at TODAY.
# Before the day this test was written: Dagster's partitions end at the pinned day but never
# after the machine's own (it reads its clock), so a pin must not be in the machine's future.
PIN = date(2026, 11, 30)
PAGE_EVENTS = dg.AssetKey(["pendo", "page_events"])


@pytest.mark.slow  # two materializations on the emulator
def test_every_reader_of_now_follows_the_one_pinned_clock(emulator, make_project):
    """Pin another day where a project takes it (PENDO_TODAY): the partitions, the refresh and
    sweep schedules, the entities' refresh plan, freshness, reconciliation and the emulator
    all see that day; none keeps the suite's or the machine's."""
    project = make_project(
        emulator, PENDO_TODAY=PIN.isoformat(), PENDO_FULL_REFRESH_WEEKDAY=WEEKDAYS[PIN.weekday()]
    )
    assert load_settings(project.env).clock == Clock(PIN)
    yesterday = (PIN - timedelta(days=1)).isoformat()

    parts = project.defs.resolve_asset_graph().get(PAGE_EVENTS).partitions_def
    assert parts.get_last_partition_key() == yesterday

    # A tick years after the pinned day (a machine clock far ahead) still asks for its days.
    late = datetime(2031, 3, 2, 6, tzinfo=UTC)
    for name in (REFRESH_SCHEDULE, SWEEP_SCHEDULE):
        schedule = next(s for s in project.defs.schedules if s.name == name)
        with dg.build_schedule_context(scheduled_execution_time=late) as ctx:
            (request,) = schedule.evaluate_tick(ctx).run_requests
        assert request.tags[RANGE_END_TAG] == yesterday, name

    fresh = run_freshness(project, PAGE_EVENTS)[PAGE_EVENTS]
    assert fresh.metadata["expected_day"].value == yesterday

    # The pinned day is the weekly full-refresh day, so even the first load says so.
    entities = project.materialize(["pendo/accounts"])
    said = [e.user_message for e in project.instance.all_logs(entities.run_id)]
    weekly = f"accounts: full load (weekly full refresh ({WEEKDAYS[PIN.weekday()]}"
    assert any(weekly in m for m in said), said

    # The emulator's last days are young at the suite's TODAY but final at the pinned day.
    loaded = project.materialize(["pendo/page_events"], "2026-11-19", "2026-11-20")
    recon = next(
        e for e in loaded.get_asset_check_evaluations() if e.check_name == "reconciles_with_pendo"
    )
    assert recon.passed and recon.metadata["days_checked"].value == 2

    # make_project set PENDO_TODAY for this test: an emulator started now reads the same day.
    assert EmulatorServer(small_subscription()).clock == Clock(PIN)
    assert Subscription.demo().last_day == PIN


def test_nothing_but_the_clock_reads_the_machines_date():
    """Every "now" of the package comes from pendo_assets.clock: no other module asks the
    machine for the date or the time of day."""
    package = REPO_ROOT / "pendo_assets"
    readers = re.compile(r"\b(datetime\.now|datetime\.utcnow|date\.today|time\.time)\(")
    found = [
        f"{p.relative_to(REPO_ROOT)}:{n}"
        for p in package.rglob("*.py")
        if p.name != "clock.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if readers.search(line)
    ]
    assert found == []
