"""One clock for the project: PENDO_TODAY pins "today" for settings, the emulator and the
partitions, and a machine clock a year ahead (Debian's faketime) changes none of them."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import date

import pytest

from pendo_assets import clock
from pendo_assets.settings import SettingsError, load_settings

from .conftest import TODAY, run_in_demo_mode
from .ui_server import REPO_ROOT

PROBE = """
import json, os
from datetime import datetime
from pendo_assets import clock
from pendo_assets.emulator import Subscription
from pendo_assets.partitions import daily_partitions
from pendo_assets.settings import load_settings
s = load_settings({"PENDO_DUCKDB_PATH": os.environ["PROBE_DB"]})
print(json.dumps({
    "machine_year": datetime.now().year,
    "today": clock.today().isoformat(),
    "demo_start": s.start_date.isoformat(),
    "emulator_last_day": Subscription.demo().last_day.isoformat(),
    "last_partition": daily_partitions(s).get_last_partition_key(),
}))
"""


def test_the_suite_runs_on_its_pinned_today(monkeypatch):
    assert os.environ[clock.ENV] == TODAY.isoformat()
    assert clock.today() == clock.today("Asia/Tokyo") == TODAY
    assert clock.now("America/New_York").date() == TODAY
    monkeypatch.setenv(clock.ENV, "2026-13-01")
    with pytest.raises(SettingsError, match="PENDO_TODAY='2026-13-01' is not valid"):
        load_settings({"PENDO_DUCKDB_PATH": "data/w.duckdb"})
    monkeypatch.delenv(clock.ENV)
    assert clock.today() == date.today()


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
