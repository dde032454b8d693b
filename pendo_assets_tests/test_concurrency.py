"""Several processes on one DuckDB file: two backfills at once, a writer SIGKILLed while it holds
the write lock (and mid-transaction), and a reader during a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from filelock import FileLock, Timeout

from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.warehouse.store import Warehouse, stage

from .conftest import day_truth, loaded, materialize_command, project_env

# Left out of `make test-quick`: backfills and writers in separate processes.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DAYS = [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)]
TYPES = {"day": "DATE", "n": "BIGINT", "label": "VARCHAR"}

# A separate process that stages `rows` rows over DAYS and replaces those days with them.
WRITER = textwrap.dedent(
    """
    import sys
    from datetime import date
    from pathlib import Path
    import pyarrow as pa
    from pendo_assets.warehouse.store import Warehouse, stage

    path, rows, staged = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    days = [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)]
    n = pa.array(range(rows), pa.int64())
    import pyarrow.compute as pc
    idx = pc.cast(pc.divide(n, (rows + 2) // 3), pa.int32())
    day = pc.take(pa.array(days, pa.date32()), idx)
    label = pc.cast(n, pa.string())
    table = pa.table({"day": day, "n": n, "label": label})
    f = stage(table, {"day": "DATE", "n": "BIGINT", "label": "VARCHAR"}, staged)
    print("staged", flush=True)
    Warehouse(path).replace_days("pendo", "t", days, [f], {"day": "DATE"})
    print("written", flush=True)
    """
)


def small_batch(tmp_path: Path, per_day: int, offset: int) -> object:
    rows = [(d, offset + i, f"v{offset + i}") for d in DAYS for i in range(per_day)]
    table = pa.table(
        {
            "day": pa.array([r[0] for r in rows], pa.date32()),
            "n": pa.array([r[1] for r in rows], pa.int64()),
            "label": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    return stage(table, TYPES, tmp_path / f"batch-{offset}.parquet")


def lock_is_held(path: str) -> bool:
    lock = FileLock(path + ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def counts(wh: Warehouse) -> dict[date, tuple[int, int]]:
    return {
        d: (n, s) for d, n, s in wh.query("SELECT day, count(*), sum(n) FROM pendo.t GROUP BY 1")
    }


def test_a_writer_killed_mid_write_leaves_the_old_days_and_does_not_block(tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    wh = Warehouse(path, lock_timeout_s=30)
    wh.replace_days("pendo", "t", DAYS, [small_batch(tmp_path, 5, 0)], {"day": "DATE"})
    before = counts(wh)
    assert before == {d: (5, 10) for d in DAYS}

    rows = 6_000_000
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, path, str(rows), str(tmp_path / "big.parquet")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not lock_is_held(path):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the writer never took the lock"
            time.sleep(0.005)
        time.sleep(0.3)  # inside the transaction: the delete and part of the insert are done
        assert lock_is_held(path), "the write finished before we could kill it; use more rows"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert "written" not in proc.stdout.read()

    # The OS released the dead writer's lock: the next access gets it at once.
    started = time.monotonic()
    reader = Warehouse(path, lock_timeout_s=5)
    assert counts(reader) == before  # no partial partition
    assert time.monotonic() - started < 5

    # Re-running the write leaves exactly its rows: no duplicates from the killed attempt.
    subprocess.run(
        [sys.executable, "-c", WRITER, path, "30000", str(tmp_path / "again.parquet")],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    per_day = 10_000
    expected = {
        d: (per_day, sum(range(i * per_day, (i + 1) * per_day))) for i, d in enumerate(DAYS)
    }
    assert counts(reader) == expected


def test_a_reader_during_a_write_waits_for_it_and_sees_whole_days(tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    wh = Warehouse(path, lock_timeout_s=60)
    wh.replace_days("pendo", "t", DAYS, [small_batch(tmp_path, 5, 0)], {"day": "DATE"})
    before = counts(wh)
    big = small_batch(tmp_path, 100_000, 1000)
    seen: list[dict] = []
    write_started = threading.Event()

    def write() -> None:
        with wh.transaction() as con:
            write_started.set()
            con.execute("DELETE FROM pendo.t")
            con.execute(
                "INSERT INTO pendo.t BY NAME SELECT * FROM read_parquet(?)", [str(big.path)]
            )
            time.sleep(0.5)  # a slow write transaction

    writer = threading.Thread(target=write)
    writer.start()
    write_started.wait(10)
    # Another Warehouse object in another thread = another connection, behind the same locks.
    seen.append(counts(Warehouse(path, lock_timeout_s=60)))
    writer.join()
    # It waited for the commit instead of reading half a write.
    assert seen[0] != before
    assert seen[0] == counts(wh)
    assert {d: n for d, (n, _) in seen[0].items()} == {d: 100_000 for d in DAYS}


def test_two_backfills_of_different_ranges_at_once_are_both_exact(emulator, subscription, tmp_path):
    home_a, home_b = tmp_path / "home_a", tmp_path / "home_b"
    home_a.mkdir()
    home_b.mkdir()
    base = {**os.environ, **project_env(emulator, tmp_path)}
    select = "pendo/page_events,pendo/events,pendo/feature_events"
    ranges = {"a": ("2026-10-01", "2026-10-04"), "b": ("2026-10-05", "2026-10-08")}
    procs = {}
    for name, home in (("a", home_a), ("b", home_b)):
        start, end = ranges[name]
        procs[name] = subprocess.Popen(
            materialize_command(select, partition_range=f"{start}...{end}"),
            env={**base, "DAGSTER_HOME": str(home)},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    outputs = {}
    try:
        for name, proc in procs.items():
            outputs[name] = proc.communicate(timeout=240)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, proc in procs.items():
        assert proc.returncode == 0, outputs[name][1][-3000:]
    days = [date(2026, 10, 1) + timedelta(days=i) for i in range(8)]
    path = base["PENDO_DUCKDB_PATH"]
    for source_name in ("pageEvents", "events", "featureEvents"):
        source = SOURCES_BY_NAME[source_name]
        assert loaded(path, source, days) == day_truth(subscription, source, days), source.table
