"""`make dev` as a test fixture: ``python -m pendo_assets.dev`` on a free port, in its own process
group, with its own DAGSTER_HOME and warehouse, talking to Dagster over its own GraphQL API.

With no PENDO_INTEGRATION_KEY in its environment the launcher starts the Pendo emulator as its
own process, exactly as on a fresh checkout. ``stop()`` ends the whole process tree (launcher,
emulator, webserver, daemon, code servers, run workers) with ``os.killpg``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 150.0

LOCATIONS_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
  }
}
"""


# A partition backfill through the webserver's GraphQL, as the UI launches one.
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on PartitionSetNotFoundError { message }
  }
}
"""


class DagsterDevError(RuntimeError):
    """`dagster dev` did not come up; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(home: Path, duckdb_path: Path) -> dict[str, str]:
    """The caller's environment minus any PENDO_* setting: a fresh checkout with no key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PENDO_", "DAGSTER_"))}
    if "PENDO_TODAY" in os.environ:  # the pinned clock is the suite's, not a setting
        env["PENDO_TODAY"] = os.environ["PENDO_TODAY"]
    env["DAGSTER_HOME"] = str(home)
    env["PENDO_DUCKDB_PATH"] = str(duckdb_path)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class DagsterDev:
    proc: subprocess.Popen
    port: int
    home: Path
    duckdb_path: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60.0) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(
            self.url + "/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # the server's own error text, not just "500"
            raise AssertionError(f"GraphQL HTTP {exc.code}: {exc.read()[:3000]!r}") from None
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until the webserver answers and our code location has loaded."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DagsterDevError(
                    f"`make dev` exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/server_info", timeout=5) as resp:
                    resp.read()
                entries = self.graphql(LOCATIONS_QUERY, timeout=10)["workspaceOrError"]
                for entry in entries.get("locationEntries", []):
                    loaded = entry["locationOrLoadError"] or {}
                    if loaded.get("__typename") == "PythonError":
                        raise DagsterDevError(
                            f"code location {entry['name']} failed to load: {loaded['message']}"
                        )
                    if entry["loadStatus"] == "LOADED" and loaded:
                        return
                last = f"locations: {entries}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise DagsterDevError(
            f"`make dev` not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """End every process of the tree; SIGKILL whatever is left after a short grace."""
        pgid = self.proc.pid  # start_new_session: the launcher leads its own group
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and _group_alive(pgid):
            self.proc.poll()
            time.sleep(0.2)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)  # children orphaned by the SIGKILL are reaped by init


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start_dagster_dev(workdir: Path) -> DagsterDev:
    """Start `python -m pendo_assets.dev` (what `make dev` runs) and wait until it serves."""
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    # No telemetry from tests; everything else is `dagster dev`'s default instance.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    duckdb_path = workdir / "warehouse" / "pendo_warehouse.duckdb"
    log_path = workdir / "dagster_dev.log"
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pendo_assets.dev", "--port", str(port)],
            cwd=REPO_ROOT,
            env=clean_env(home, duckdb_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DagsterDev(proc, port, home, duckdb_path, log_path)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server
