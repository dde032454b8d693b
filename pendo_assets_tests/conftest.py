"""Shared fixtures: the embedded Pendo emulator on a free port (always stopped), a temporary
warehouse and DAGSTER_HOME, and Definitions built from environment variables exactly as
``dagster`` would build them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pendo_assets import clock
from pendo_assets.definitions import build_definitions
from pendo_assets.emulator import EmulatorServer, Faults, Subscription
from pendo_assets.resources import PendoResource
from pendo_assets.run_tags import range_tags
from pendo_assets.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
TEST_KEY = "test-integration-key-5f0c2a"  # distinctive, so leak greps can find it
TIMEZONE = "America/New_York"
FIRST_DAY = date(2026, 9, 1)
LAST_DAY = date(2026, 11, 20)
# The suite's one "today", pinned here only: every project a test builds (its partitions,
# refresh plan, schedules, freshness and reconciliation read ``settings.clock``) and every
# process the tests start (the emulator, the `dagster` CLI, `dagster dev`) read it through
# pendo_assets.clock, so no outcome depends on the real date. With the default
# PENDO_FINAL_AFTER_DAYS=9, days before 2026-11-12 are final at Pendo.
TODAY = date(2026, 11, 21)
os.environ[clock.ENV] = TODAY.isoformat()


def pendo_at(url: str = "http://127.0.0.1:9", **settings) -> PendoResource:
    """A Pendo resource on ``url`` with the suite's key and time zone; every other setting at
    its one default (its ``Settings`` field) unless given. Its ``client`` and ``options`` are
    what a run would use."""
    return PendoResource(
        settings=Settings(**{"base_url": url, "timezone": TIMEZONE, **settings}),
        integration_key=TEST_KEY,
    )


# The `dg` of this environment, run as from an activated virtualenv (as the docs say): dg warns
# when the project's .venv is not the active one.
DG = str(Path(sys.executable).parent / "dg")
if sys.prefix != sys.base_prefix:
    os.environ.setdefault("VIRTUAL_ENV", sys.prefix)


def small_subscription(**overrides) -> Subscription:
    base = dict(
        first_day=FIRST_DAY,
        last_day=LAST_DAY,
        timezone=TIMEZONE,
        n_accounts=12,
        n_visitors=90,
        n_pages=8,
        n_features=10,
        n_guides=3,
        n_track_types=3,
    )
    base.update(overrides)
    return Subscription(**base)


@pytest.fixture(scope="session")
def subscription() -> Subscription:
    return small_subscription()


@pytest.fixture(scope="session")
def emulator(subscription) -> Iterator[EmulatorServer]:
    server = EmulatorServer(subscription, integration_key=TEST_KEY).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def fresh_emulator(subscription) -> Iterator[EmulatorServer]:
    """An emulator of our own, for tests that change its faults or count its requests."""
    server = EmulatorServer(subscription, integration_key=TEST_KEY, faults=Faults()).start()
    try:
        yield server
    finally:
        server.stop()


def query(path: str, sql: str, params: list | None = None) -> list[tuple]:
    """Read the warehouse file as an analyst would: open read-only, query, close."""
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def excluded_visitors(sub: Subscription) -> set[str]:
    """Visitors on the emulated Exclude List (metadata.custom.internal), dropped by blacklist."""
    return {
        v["visitorId"]
        for v in sub.entities("visitors")
        if v.get("metadata", {}).get("custom", {}).get("internal") is True
    }


def day_truth(sub: Subscription, source, days) -> dict[date, tuple[int, int, int]]:
    """(rows, sum numEvents, sum numMinutes) per day, straight from the emulator's data."""
    skip = excluded_visitors(sub) if source.takes_exclude_list else set()
    out = {}
    for d in days:
        rows = [
            r
            for app in sub.app_ids
            for r in sub.event_rows(source.name, app, d)
            if r["visitorId"] not in skip
        ]
        out[d] = (
            len(rows),
            sum(r.get("numEvents", 0) for r in rows),
            sum(r.get("numMinutes", 0) for r in rows),
        )
    return out


def loaded(path: str, source, days) -> dict[date, tuple[int, int, int]]:
    """The warehouse's twin of ``day_truth``: (rows, sum num_events, sum num_minutes) per day."""
    sums = (
        "coalesce(sum(num_events),0), coalesce(sum(num_minutes),0)"
        if not source.per_event
        else "0,0"
    )
    got = {
        d: (n, e, m)
        for d, n, e, m in query(
            path, f"SELECT day, count(*), {sums} FROM pendo.{source.table} GROUP BY 1"
        )
    }
    return {d: got.get(d, (0, 0, 0)) for d in days}


def planned_partitions(instance: dg.DagsterInstance, run_id: str) -> dict[str, list]:
    """Asset (user string) -> the partition of each planned materialization of the run."""
    planned: dict[str, list] = {}
    for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED):
        data = e.dagster_event.event_specific_data
        planned.setdefault(data.asset_key.to_user_string(), []).append(data.partition)
    return planned


@dataclass
class Project:
    env: dict[str, str]
    defs: dg.Definitions
    instance: dg.DagsterInstance
    duckdb_path: str

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return query(self.duckdb_path, sql, params)

    def execute(self, sql: str, params: list | None = None) -> None:
        """Change the warehouse behind the project's back (data made wrong on purpose)."""
        con = duckdb.connect(self.duckdb_path)
        try:
            con.execute(sql, params or [])
        finally:
            con.close()

    def run_checks(
        self, key: str, start: str | None = None, end: str | None = None
    ) -> dg.ExecuteInProcessResult:
        """Run only the checks of ``key`` (over a partition range when given)."""
        return dg.materialize(
            [*(self.defs.assets or []), *(self.defs.asset_checks or [])],
            selection=dg.AssetSelection.checks_for_assets(dg.AssetKey.from_user_string(key)),
            resources=self.defs.resources,
            instance=self.instance,
            tags=range_tags(start, end) if start else {},
            raise_on_error=False,
        )

    def materialize(
        self,
        keys: list[str],
        start: str | None = None,
        end: str | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        tags = range_tags(start, end) if start else {}
        # Checks too, so they run with the assets they check, as in a real run.
        assets = [*(self.defs.assets or []), *(self.defs.asset_checks or [])]
        selection = [dg.AssetKey.from_user_string(k) for k in keys]
        return dg.materialize(
            assets,
            selection=selection,
            resources=self.defs.resources,
            instance=self.instance,
            tags=tags,
            raise_on_error=raise_on_error,
        )


def materialize_command(
    select: str, *, partition: str | None = None, partition_range: str | None = None
) -> list[str]:
    """`dg launch --assets ...`, as the docs write it (run from the project's directory: dg
    finds the definitions through pyproject.toml's [tool.dg])."""
    cmd = [DG, "launch", "--assets", select]
    if partition:
        cmd += ["--partition", partition]
    if partition_range:
        cmd += ["--partition-range", partition_range]
    return cmd


def run_in_demo_mode(cmd: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with this environment plus ``extra`` and no integration key (demo mode),
    as a fresh shell would; fails the test, showing stderr, when it fails."""
    env = {**os.environ, **extra}
    env.pop("PENDO_INTEGRATION_KEY", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def project_env(server, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PENDO_INTEGRATION_KEY": TEST_KEY,
        "PENDO_BASE_URL": server.url,
        "PENDO_START_DATE": FIRST_DAY.isoformat(),
        "PENDO_TIMEZONE": TIMEZONE,
        "PENDO_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "PENDO_DEMO": "0",
        "PENDO_MAX_RETRIES": "2",
        "PENDO_RETRY_BACKOFF_S": "0.05",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    env.update(extra)
    return env


@pytest.fixture()
def make_project(tmp_path, monkeypatch):
    instances = []

    def make(server, **extra: str) -> Project:
        """A project on ``server`` (anything with a ``url``); its clock is the suite's unless
        ``extra`` pins another day (PENDO_TODAY)."""
        env = project_env(server, tmp_path, **extra)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
        defs = build_definitions(load_settings(env))
        instance = dg.DagsterInstance.ephemeral()
        instances.append(instance)
        return Project(env, defs, instance, env["PENDO_DUCKDB_PATH"])

    yield make
    for inst in instances:
        inst.dispose()


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    """`make dev` (python -m pendo_assets.dev) on a free port for one test module.

    Module-scoped, not session-scoped: the UI test modules are far apart in the suite, and an
    idle `dagster dev` (daemon ticking, code servers) would otherwise share the 2 cores with
    every test in between. A start costs about 10 s.

    Skipped only when the Dagster webserver is not installed; any other failure to start (for
    example our code location failing to load) fails the tests that use it.
    """
    import importlib.util

    from pendo_assets_tests.ui_server import start_dagster_dev

    if importlib.util.find_spec("dagster_webserver") is None:
        pytest.skip(
            "dagster dev cannot start: dagster-webserver is not installed (pip install -e .)"
        )
    server = start_dagster_dev(tmp_path_factory.mktemp("dagster_dev"))
    try:
        yield server
    finally:
        server.stop()
