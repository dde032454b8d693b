"""The multi-machine deployment, run for real on one machine: PostgreSQL storage and the run
queue from deploy/dagster.yaml, `dagster-daemon`, `dagster-webserver`, and two backfills of
different ranges launched at once through the webserver's GraphQL API.

The pool `duckdb_<database>` (limit 1, run granularity, deploy/dagster.yaml) must keep one
writing run at a time per DuckDB database; both backfills complete; the data equals the
emulator's; the webserver shows the runs, read from PostgreSQL.

PostgreSQL is Debian's package; the test starts its own throw-away cluster (initdb, pg_ctl) on
127.0.0.1 on a free port, as the `postgres` user when run as root (PostgreSQL refuses root),
and stops it afterwards even on failure. `.ci/run` installs the package when it is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pendo_assets.catalog import SOURCES_BY_TABLE
from pendo_assets.pendo.days import days_between
from pendo_assets.settings import load_settings
from pendo_assets_tests.ui_server import LAUNCH_BACKFILL, REPO_ROOT, DagsterDev, free_port

from .conftest import day_truth, loaded, project_env

DEPLOY_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
LOCATION = "pendo_assets.definitions"
# The daemon and webserver load the project the way a deployment does: through workspace.yaml.
WORKSPACE = str(REPO_ROOT / "workspace.yaml")
TABLES = ["events", "page_events"]
RANGES = [("2026-10-01", "2026-10-03"), ("2026-10-12", "2026-10-13")]
TIMEOUT_S = 150.0

BACKFILL = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill {
      status
      runs(limit: 20) { runId status creationTime startTime endTime tags { key value } }
    }
  }
}
"""
INSTANCE = "query { instance { info runQueuingSupported } }"
DONE = {"COMPLETED_SUCCESS", "COMPLETED_FAILED", "COMPLETED", "FAILED", "CANCELED"}


def pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


# Left out of `make test-quick` (slow): a PostgreSQL cluster, dagster-daemon and dagster-webserver.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        pg_bin("initdb") is None or pg_bin("pg_ctl") is None,
        reason="PostgreSQL is not installed: `sudo apt-get install -y postgresql` (Debian/Ubuntu; "
        "`.ci/run` does it) or put initdb and pg_ctl on PATH; then `make test`",
    ),
]


@dataclass
class Postgres:
    port: int
    data: Path


@pytest.fixture()
def postgres() -> Iterator[Postgres]:
    """A throw-away cluster; user `dagster` (trust auth on 127.0.0.1), database `dagster`."""
    root = Path(tempfile.mkdtemp(prefix="pendo-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)

    started = False
    try:
        run(pg_bin("initdb"), "-D", str(data), "-U", "dagster", "-A", "trust", "-E", "UTF8")
        run(
            pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "postgres.log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        started = True
        run(pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", "dagster")
        yield Postgres(port, data)
    finally:
        if started:
            subprocess.run(
                [*as_user, pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


def instance_yaml(port: int) -> str:
    """deploy/dagster.yaml with only what one machine must change: the port (fixed at 5432
    there), no TLS on the local socket, and runs as local processes instead of Kubernetes Jobs.
    Storage, the run queue and the concurrency pools are the file's own."""
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    db["port"] = port
    db["params"]["sslmode"] = "disable"
    config.pop("run_launcher")  # DefaultRunLauncher: one process per run
    return yaml.safe_dump(config)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stop() ends its code servers and runs too
        )


def test_two_backfills_on_postgres_with_the_daemon_keep_one_writer_per_database(
    emulator, subscription, postgres, tmp_path
):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")},
        **project_env(emulator, tmp_path),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USERNAME": "dagster",
        "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        "PYTHONUNBUFFERED": "1",
    }
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(postgres.port))
    pool = load_settings(env).warehouse_pool
    bindir = Path(sys.executable).parent
    # The deployment's one-time step (deploy/README.md): Dagster applies `default_limit` to a
    # pool only from the queue pass after the pool's first use, so two runs queued together
    # before that would both start. Setting the pool once closes that window.
    subprocess.run(
        [str(bindir / "dagster"), "instance", "concurrency", "set", pool, "1"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    daemon = start(
        [str(bindir / "dagster-daemon"), "run", "-w", WORKSPACE], env, tmp_path / "daemon.log"
    )
    port = free_port()
    web = start(
        [str(bindir / "dagster-webserver"), "-w", WORKSPACE, "-h", "127.0.0.1", "-p", str(port)],
        env,
        tmp_path / "webserver.log",
    )
    ui = DagsterDev(web, port, home, Path(env["PENDO_DUCKDB_PATH"]), tmp_path / "webserver.log")
    daemon_handle = DagsterDev(daemon, 0, home, ui.duckdb_path, tmp_path / "daemon.log")
    try:
        ui.wait_ready()
        selection = [{"path": ["pendo", t]} for t in TABLES]
        ids = []
        for first, last in RANGES:  # both queued before either runs
            launched = ui.graphql(
                LAUNCH_BACKFILL,
                {
                    "params": {
                        "partitionsByAssets": [
                            {
                                "assetKey": s,
                                "partitions": {"range": {"start": first, "end": last}},
                            }
                            for s in selection
                        ],
                    }
                },
            )["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            ids.append(launched["backfillId"])
        deadline = time.monotonic() + TIMEOUT_S
        backfills: dict[str, dict] = {}
        while time.monotonic() < deadline and len(backfills) < len(ids):
            for bid in ids:
                bf = ui.graphql(BACKFILL, {"id": bid})["partitionBackfillOrError"]
                if bf["status"] in DONE:
                    backfills[bid] = bf
            time.sleep(1)
        assert len(backfills) == len(ids), (
            f"backfills not done after {TIMEOUT_S:.0f}s\n{daemon_handle.log_tail()}"
        )
        runs = []
        for bid in ids:
            bf = backfills[bid]
            assert bf["status"] == "COMPLETED_SUCCESS", (bf, daemon_handle.log_tail())
            assert bf["runs"] and all(r["status"] == "SUCCESS" for r in bf["runs"]), bf
            runs += bf["runs"]
        # One writing run at a time: sorted by start, each starts after the previous ended,
        # although both were waiting in the queue together.
        runs.sort(key=lambda r: r["startTime"])
        assert len(runs) == len(RANGES)  # one range run per backfill (single-run policy)
        for before, after in zip(runs, runs[1:], strict=False):
            assert after["startTime"] >= before["endTime"], runs
            assert after["creationTime"] < before["endTime"], "not queued together"
        info = ui.graphql(INSTANCE)["instance"]
        assert info["runQueuingSupported"]
        assert "postgres" in info["info"].lower() and pool.startswith("duckdb_")
    finally:
        ui.stop()
        daemon_handle.stop()
    for first, last in RANGES:
        for table in TABLES:
            source = SOURCES_BY_TABLE[table]
            span = days_between(first, last)
            assert loaded(env["PENDO_DUCKDB_PATH"], source, span) == day_truth(
                subscription, source, span
            ), (table, first, last)
    assert runs_in_postgres(postgres.port) >= len(RANGES)


def runs_in_postgres(port: int) -> int:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="dagster")
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
            return cur.fetchone()[0]
    finally:
        con.close()
