"""An analyst's open SQL client never fails a run: readers open the snapshot runs publish
(PENDO_DUCKDB_READ_PATH), and a client left open on the warehouse itself is waited for.

Clients are separate processes (pendo_assets_tests/duckdb_holder.py): DuckDB's file lock is per
process, so a connection inside the test process would not conflict with the run at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from pendo_assets.automation import failure_summary
from pendo_assets.catalog import SOURCES
from pendo_assets.reader import PUBLISH_SENSOR
from pendo_assets.settings import SettingsError, load_settings
from pendo_assets.warehouse.snapshot import is_stale, publish
from pendo_assets.warehouse.store import Warehouse
from pendo_assets_tests.conftest import TODAY, day_truth, loaded, query

# Left out of `make test-quick`: SQL clients in other processes holding the warehouse and
# the snapshot.
pytestmark = pytest.mark.slow

EVENTS = next(s for s in SOURCES if s.name == "events")
FIRST = date(2026, 10, 1)


def days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


@contextmanager
def client(
    path: str, hold_s: float | None = None, read_write: bool = False
) -> Iterator[subprocess.Popen]:
    """A read-only DuckDB client in its own process, holding ``path`` open; always stopped."""
    cmd = [sys.executable, "-m", "pendo_assets_tests.duckdb_holder", path]
    if read_write:
        cmd.append("--read-write")
    if hold_s is not None:
        cmd += ["--hold-s", str(hold_s)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def ask(proc: subprocess.Popen, command: str) -> str:
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def all_messages(instance: dg.DagsterInstance) -> list[str]:
    return [m for run in instance.get_runs() for m in run_messages(instance, run.run_id)]


def run_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        r.event_log_entry.user_message
        for r in instance.get_records_for_run(run_id, limit=100_000).records
    ]


def test_a_client_on_the_snapshot_never_blocks_a_backfill_and_sees_it_on_reconnect(
    emulator, subscription, make_project
):
    project = make_project(emulator)
    read_path = project.env["PENDO_DUCKDB_PATH"].replace(".duckdb", ".read.duckdb")
    first = days(FIRST, 3)
    project.materialize(["pendo/events"], first[0].isoformat(), first[-1].isoformat())
    # Published at the run's end: the snapshot holds exactly what the warehouse holds.
    assert query(read_path, "SELECT count(*) FROM pendo.events") == project.query(
        "SELECT count(*) FROM pendo.events"
    )
    with client(read_path) as analyst:
        before = json.loads(ask(analyst, "days pendo.events"))
        assert [d for d, _ in before] == [d.isoformat() for d in first]
        backfill = days(FIRST + timedelta(days=3), 10)
        result = project.materialize(
            ["pendo/events"], backfill[0].isoformat(), backfill[-1].isoformat()
        )
        assert result.success
        assert any(
            f"Published the readers' snapshot {read_path}" in m
            for m in run_messages(project.instance, result.run_id)
        )
        # The open connection keeps its consistent snapshot ...
        assert json.loads(ask(analyst, "days pendo.events")) == before
        # ... and a reconnect sees exactly the warehouse's days, the backfill's among them.
        assert ask(analyst, "reconnect") == "ok"
        after = dict(json.loads(ask(analyst, "days pendo.events")))
        ask(analyst, "quit")
    truth = day_truth(subscription, EVENTS, first + backfill)
    assert after == {d.isoformat(): truth[d][0] for d in first + backfill}
    assert loaded(project.duckdb_path, EVENTS, first + backfill) == truth
    assert not is_stale(project.duckdb_path, read_path)
    leftovers = [p.name for p in Path(read_path).parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_client_holding_the_warehouse_makes_a_run_wait_log_it_and_land(
    emulator, subscription, make_project
):
    project = make_project(emulator, PENDO_DUCKDB_LOCK_WAIT_S="120")
    project.materialize(["pendo/events"], FIRST.isoformat(), FIRST.isoformat())
    wanted = days(FIRST, 7)
    # The pool last out: a failing assertion stops the client first, so the run ends too.
    with ThreadPoolExecutor(1) as pool, client(project.duckdb_path) as analyst:
        running = pool.submit(
            project.materialize, ["pendo/events"], wanted[0].isoformat(), wanted[-1].isoformat()
        )
        # The client lets go only once the run has said it waits, and a few seconds later.
        deadline = time.monotonic() + 120
        while not any(m.startswith("Waiting for PID") for m in all_messages(project.instance)):
            assert time.monotonic() < deadline and not running.done(), "the run never waited"
            time.sleep(0.2)
        time.sleep(2)
        assert not running.done()  # still waiting while the client holds the file
        ask(analyst, "quit")
        result = running.result(timeout=300)
    assert result.success
    messages = run_messages(project.instance, result.run_id)
    waits = [i for i, m in enumerate(messages) if m.startswith("Waiting for PID")]
    # Said once, naming the client's process; the days were fetched before the wait.
    assert len(waits) == 1, messages
    assert f"PID {analyst.pid} (" in messages[waits[0]]
    fetched = [i for i, m in enumerate(messages) if "fetched 7/7 days of events" in m]
    assert fetched and fetched[0] < waits[0]
    assert loaded(project.duckdb_path, EVENTS, wanted) == day_truth(subscription, EVENTS, wanted)


def test_a_client_holding_the_warehouse_past_the_wait_fails_the_run_clearly(emulator, make_project):
    project = make_project(emulator, PENDO_DUCKDB_LOCK_WAIT_S="1")
    project.materialize(["pendo/events"], FIRST.isoformat(), FIRST.isoformat())
    before = project.query("SELECT day, count(*) FROM pendo.events GROUP BY 1")
    later = days(FIRST + timedelta(days=1), 3)
    with client(project.duckdb_path, hold_s=120) as analyst:
        result = project.materialize(
            ["pendo/events"], later[0].isoformat(), later[-1].isoformat(), raise_on_error=False
        )
        failures = [
            e.step_failure_data.error
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        pid = analyst.pid
    assert not result.success and failures
    error = failures[0]
    while error.cause is not None and "held open" not in error.message:
        error = error.cause
    text = error.message
    assert f"held open by PID {pid} (" in text, text
    assert "waiting 1 s (PENDO_DUCKDB_LOCK_WAIT_S)" in text
    assert "Close the SQL client" in text
    read_path = project.duckdb_path.replace(".duckdb", ".read.duckdb")
    assert f"{read_path} (PENDO_DUCKDB_READ_PATH)" in text
    assert project.query("SELECT day, count(*) FROM pendo.events GROUP BY 1") == before
    # The failure alert's advice says the same.
    _, alert = failure_summary(project.instance.get_run_by_id(result.run_id), [text], None)
    assert "connect it to PENDO_DUCKDB_READ_PATH" in alert["what_to_do"]


def test_publish_replaces_a_snapshot_a_writer_holds_and_drops_its_log(tmp_path):
    path, read_path = str(tmp_path / "w.duckdb"), str(tmp_path / "w.read.duckdb")
    wh = Warehouse(path, read_path=read_path)
    with wh.transaction() as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS v")
    assert publish(wh, read_path).bytes == os.path.getsize(path)
    assert publish(wh, read_path) is None  # unchanged: nothing to copy
    # Someone opened the snapshot read-write and left a log behind.
    with client(read_path, hold_s=30):
        Path(read_path + ".wal").write_bytes(b"stale log of the previous snapshot")
        with wh.transaction() as con:
            con.execute("INSERT INTO t VALUES (2)")
        assert is_stale(path, read_path)
        assert publish(wh, read_path) is not None
    assert not os.path.exists(read_path + ".wal")
    assert query(read_path, "SELECT sum(v) FROM t") == [(3,)]


def test_publish_waits_for_a_writer_outside_the_project_and_names_it(tmp_path):
    path, read_path = str(tmp_path / "w.duckdb"), str(tmp_path / "w.read.duckdb")
    said: list[str] = []
    wh = Warehouse(path, read_path=read_path, lock_wait_s=120, log_wait=said.append)
    with wh.transaction() as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS v")
    # Readers never hold up the copy; a writer does, until it closes.
    with client(path):
        assert publish(wh, read_path) is not None
    with wh.transaction() as con:
        con.execute("INSERT INTO t VALUES (2)")
    with ThreadPoolExecutor(1) as pool, client(path, read_write=True) as writer:
        copying = pool.submit(publish, wh, read_path)
        deadline = time.monotonic() + 60
        while not said:
            assert time.monotonic() < deadline and not copying.done(), "publish never waited"
            time.sleep(0.1)
        assert not copying.done()
        ask(writer, "quit")
        assert copying.result(timeout=60) is not None
    assert len(said) == 1 and f"Waiting for PID {writer.pid} (" in said[0], said
    assert query(read_path, "SELECT sum(v) FROM t") == [(3,)]


def test_automation_runs_leave_publishing_to_the_sensor(emulator, make_project):
    project = make_project(emulator)
    read_path = project.env["PENDO_DUCKDB_PATH"].replace(".duckdb", ".read.duckdb")
    tags = {"dagster/from_automation_condition": "true"}
    result = dg.materialize(
        [*(project.defs.assets or [])],
        selection=[dg.AssetKey.from_user_string("pendo/pages")],
        resources=project.defs.resources,
        instance=project.instance,
        tags=tags,
    )
    assert result.success and not os.path.exists(read_path)
    sensor = project.defs.get_sensor_def(PUBLISH_SENSOR)
    outcome = sensor(dg.build_sensor_context(instance=project.instance))
    assert "Published the readers' snapshot" in outcome.skip_message
    assert query(read_path, "SELECT count(*) FROM pendo.pages") == project.query(
        "SELECT count(*) FROM pendo.pages"
    )
    outcome = sensor(dg.build_sensor_context(instance=project.instance))
    assert outcome.skip_message == "the readers' snapshot is current"


def test_reader_settings(tmp_path):
    env = {"PENDO_DEMO": "1", "PENDO_TODAY": TODAY.isoformat()}
    wh = str(tmp_path / "wh.duckdb")
    s = load_settings({**env, "PENDO_DUCKDB_PATH": wh})
    assert s.duckdb_read_path == str(tmp_path / "wh.read.duckdb")
    assert s.duckdb_lock_wait_s == 300
    assert load_settings({**env}).duckdb_read_path == "data/pendo_warehouse.read.duckdb"
    # The warehouse itself: publishing off. MotherDuck: nothing to publish.
    off = {**env, "PENDO_DUCKDB_PATH": wh, "PENDO_DUCKDB_READ_PATH": wh}
    assert load_settings(off).duckdb_read_path is None
    assert load_settings({**env, "PENDO_DUCKDB_PATH": "md:pendo_wh"}).duckdb_read_path is None
    for bad in (
        {"PENDO_DUCKDB_PATH": "md:pendo_wh", "PENDO_DUCKDB_READ_PATH": str(tmp_path / "r.duckdb")},
        {"PENDO_DUCKDB_READ_PATH": str(tmp_path / "analytics.duckdb")},
        {"PENDO_DUCKDB_READ_PATH": str(tmp_path)},
        {"PENDO_DUCKDB_LOCK_WAIT_S": "soon"},
        {"PENDO_DUCKDB_LOCK_WAIT_S": "-1"},
    ):
        var = "PENDO_DUCKDB_LOCK_WAIT_S" if "PENDO_DUCKDB_LOCK_WAIT_S" in bad else "READ_PATH"
        with pytest.raises(SettingsError, match=var):
            load_settings({**env, "PENDO_DUCKDB_PATH": wh, **bad})


def test_every_asset_description_points_analysts_at_the_snapshot(emulator, make_project):
    project = make_project(emulator)
    read_path = project.env["PENDO_DUCKDB_PATH"].replace(".duckdb", ".read.duckdb")
    specs = [spec for a in project.defs.assets for spec in a.specs]
    assert len(specs) > 20
    for spec in specs:
        assert f"open `{read_path}` (PENDO_DUCKDB_READ_PATH)" in spec.description, spec.key
    off = make_project(emulator, PENDO_DUCKDB_READ_PATH=project.duckdb_path)
    assert not any(
        "PENDO_DUCKDB_READ_PATH" in s.description for a in off.defs.assets for s in a.specs
    )
