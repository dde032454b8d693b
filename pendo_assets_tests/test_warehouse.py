"""The DuckDB warehouse on its own: atomic replace, insert by name, schema evolution, locking."""

import multiprocessing as mp
import os
import signal
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from pendo_assets.warehouse.store import StagedFile, Warehouse, stage, widen

D1, D2, D3 = date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)


def staged(tmp_path: Path, name: str, cols: dict, types: dict) -> StagedFile:
    return stage(pa.table(cols), types, tmp_path / f"{name}.parquet")


def day_rows(tmp_path, day, n, extra=None, name=None):
    cols = {"day": pa.array([day] * n, pa.date32()), "v": pa.array(range(n), pa.int64())}
    types = {"day": "DATE", "v": "BIGINT"}
    for k, (t, values) in (extra or {}).items():
        cols[k] = values
        types[k] = t
    return staged(tmp_path, name or f"{day}-{n}", cols, types)


BASE = {"day": "DATE", "v": "BIGINT"}


def test_replace_days_is_idempotent_and_reports_per_day(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    files = [day_rows(tmp_path, D1, 3), day_rows(tmp_path, D2, 2)]
    for _ in range(3):
        res = wh.replace_days("pendo", "t", [D1, D2], files, BASE)
    assert res.rows_by_day == {D1: 3, D2: 2}
    assert wh.query("SELECT count(*) FROM pendo.t")[0][0] == 5


def test_replacing_one_day_leaves_the_others(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    wh.replace_days(
        "pendo", "t", [D1, D2], [day_rows(tmp_path, D1, 3), day_rows(tmp_path, D2, 2)], BASE
    )
    wh.replace_days("pendo", "t", [D2], [day_rows(tmp_path, D2, 7, name="again")], BASE)
    assert dict(wh.query("SELECT day, count(*) FROM pendo.t GROUP BY 1")) == {D1: 3, D2: 7}


def test_empty_partition_creates_table_and_clears_old_rows(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    empty = staged(tmp_path, "empty", {"day": pa.array([], pa.date32())}, {"day": "DATE"})
    wh.replace_days("pendo", "t", [D1], [empty], {**BASE, "name": "VARCHAR"})
    cols = wh.query("SELECT column_name FROM information_schema.columns WHERE table_name='t'")
    assert {c for (c,) in cols} == {"day", "v", "name"}
    wh.replace_days("pendo", "t", [D1], [day_rows(tmp_path, D1, 4)], BASE)
    wh.replace_days("pendo", "t", [D1], [empty], BASE)
    assert wh.query("SELECT count(*) FROM pendo.t")[0][0] == 0


def test_new_columns_are_added_and_old_rows_get_null(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    wh.replace_days("pendo", "t", [D1], [day_rows(tmp_path, D1, 2)], BASE)
    later = day_rows(tmp_path, D2, 1, {"plan": ("VARCHAR", pa.array(["gold"]))})
    wh.replace_days("pendo", "t", [D2], [later], BASE)
    rows = wh.query("SELECT day, plan FROM pendo.t ORDER BY day, v")
    assert rows == [(D1, None), (D1, None), (D2, "gold")]


def test_inserts_by_name_not_position(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    a = staged(
        tmp_path,
        "a",
        {"day": pa.array([D1], pa.date32()), "x": ["x1"], "y": ["y1"]},
        {"day": "DATE", "x": "VARCHAR", "y": "VARCHAR"},
    )
    b = staged(
        tmp_path,
        "b",
        {"y": ["y2"], "x": ["x2"], "day": pa.array([D2], pa.date32())},
        {"y": "VARCHAR", "x": "VARCHAR", "day": "DATE"},
    )
    wh.replace_days("pendo", "t", [D1], [a], {"day": "DATE"})
    wh.replace_days("pendo", "t", [D2], [b], {"day": "DATE"})
    assert wh.query("SELECT x, y FROM pendo.t ORDER BY day") == [("x1", "y1"), ("x2", "y2")]


def test_type_widens_number_to_text_keeping_earlier_values(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    n = day_rows(tmp_path, D1, 1, {"score": ("BIGINT", pa.array([42]))})
    s = day_rows(tmp_path, D2, 1, {"score": ("VARCHAR", pa.array(["high"]))})
    wh.replace_days("pendo", "t", [D1], [n], BASE)
    wh.replace_days("pendo", "t", [D2], [s], BASE)
    assert wh.query("SELECT score FROM pendo.t ORDER BY day") == [("42",), ("high",)]
    assert wh.query(
        "SELECT data_type FROM information_schema.columns WHERE column_name='score'"
    ) == [("VARCHAR",)]


def test_failed_write_leaves_old_rows(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    wh.replace_days("pendo", "t", [D1], [day_rows(tmp_path, D1, 3)], BASE)
    broken = StagedFile(tmp_path / "missing.parquet", {"day": "DATE", "v": "BIGINT"}, 5)
    with pytest.raises(Exception, match="missing.parquet"):
        wh.replace_days("pendo", "t", [D1], [day_rows(tmp_path, D1, 9, name="n"), broken], BASE)
    assert wh.query("SELECT count(*) FROM pendo.t")[0][0] == 3


def test_replace_from_query(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    wh.replace_days(
        "pendo", "t", [D1, D2], [day_rows(tmp_path, D1, 3), day_rows(tmp_path, D2, 2)], BASE
    )
    sql = "SELECT day, v, v * 10 AS v10 FROM pendo.t WHERE day BETWEEN $1 AND $2"
    for _ in range(2):
        res = wh.replace_days_from_query("analytics", "t", [D1, D2], sql)
    assert res.rows_by_day == {D1: 3, D2: 2}
    assert wh.query("SELECT sum(v10) FROM analytics.t")[0][0] == 10 * (0 + 1 + 2 + 0 + 1)


def test_widen_rules():
    assert widen("BIGINT", "DOUBLE") == "DOUBLE"
    assert widen("DOUBLE", "BIGINT") == "DOUBLE"
    assert widen("BIGINT", "VARCHAR") == "VARCHAR"
    assert widen("TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE") == (
        "TIMESTAMP WITH TIME ZONE"
    )
    assert widen("BOOLEAN", "BIGINT") == "VARCHAR"


def _writer(path: str, tmp: str, first: str, n_days: int, rows: int) -> None:
    wh = Warehouse(path)
    start = date.fromisoformat(first)
    for i in range(n_days):
        d = start + timedelta(days=i)
        f = day_rows(Path(tmp), d, rows, name=f"{os.getpid()}-{d}")
        wh.replace_days("pendo", "t", [d], [f], BASE)


def test_two_processes_writing_at_once_both_succeed(tmp_path):
    path = str(tmp_path / "w.duckdb")
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_writer, args=(path, str(tmp_path), "2026-01-01", 15, 50)),
        ctx.Process(target=_writer, args=(path, str(tmp_path), "2026-02-01", 15, 70)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    wh = Warehouse(path)
    assert wh.query("SELECT count(DISTINCT day), count(*) FROM pendo.t")[0] == (
        30,
        15 * 50 + 15 * 70,
    )


def _hold_lock_forever(path: str) -> None:
    wh = Warehouse(path)
    with wh.connect():
        time.sleep(600)


def test_lock_of_a_killed_holder_is_released(tmp_path):
    path = str(tmp_path / "w.duckdb")
    Warehouse(path).replace_days("pendo", "t", [D1], [day_rows(tmp_path, D1, 1)], BASE)
    ctx = mp.get_context("spawn")
    holder = ctx.Process(target=_hold_lock_forever, args=(path,))
    holder.start()
    deadline = time.time() + 30
    while time.time() < deadline:  # wait until the holder has the lock
        try:
            Warehouse(path, lock_timeout_s=0.2).query("SELECT 1")
            time.sleep(0.1)
        except Exception:
            break
    else:
        holder.kill()
        pytest.fail("the holder never took the lock")
    try:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        started = time.time()
        assert Warehouse(path, lock_timeout_s=10).query("SELECT count(*) FROM pendo.t")[0][0] == 1
        assert time.time() - started < 5
    finally:
        if holder.is_alive():
            holder.kill()


def test_replace_from_query_with_gaps_touches_only_those_days(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"))
    files = [day_rows(tmp_path, d, 2) for d in (D1, D2, D3)]
    wh.replace_days("pendo", "t", [D1, D2, D3], files, BASE)
    sql = "SELECT day, v FROM pendo.t WHERE day BETWEEN $1 AND $2"
    wh.replace_days_from_query("analytics", "t", [D1, D2, D3], sql)
    # Days 1 and 3 only: day 2 lies between them but is not replaced, so not duplicated.
    res = wh.replace_days_from_query("analytics", "t", [D1, D3], sql)
    assert res.rows_by_day == {D1: 2, D3: 2}
    assert dict(wh.query("SELECT day, count(*) FROM analytics.t GROUP BY 1")) == {
        D1: 2,
        D2: 2,
        D3: 2,
    }


def test_memory_limit_is_applied(tmp_path):
    wh = Warehouse(str(tmp_path / "w.duckdb"), memory_limit="300MB")
    limit = wh.query("SELECT current_setting('memory_limit')")[0][0]
    assert limit.replace(" ", "").upper().startswith(("286", "300"))  # DuckDB shows MiB
