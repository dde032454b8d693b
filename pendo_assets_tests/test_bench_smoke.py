"""The bench runs end to end in its quick mode and prints its table (figures, no assertions
on timings: those belong to `make bench`, not to tests)."""

import subprocess
import sys
from pathlib import Path

import pytest

# Left out of `make test-quick`: the benchmarks, end to end.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def row(out: str, label: str) -> list[str]:
    lines = [ln for ln in out.splitlines() if ln.startswith(label)]
    assert len(lines) == 1, out
    return lines[0][len(label) :].split()


def test_quick_backfill_prints_naive_and_project_rows():
    out = run_bench()
    naive = row(out, "naive script")
    project = row(out, "project (1 dagster command)")
    # wall, CPU, requests, max in flight, rows, rows/CPU-s, peak RSS
    assert len(naive) == len(project) == 7
    assert int(naive[2]) > 0 and int(project[2]) > 0
    assert int(project[3]) >= 1
    # Both loaded the same event rows from the same emulated subscription.
    assert naive[4] == project[4] and int(project[4].replace(",", "")) > 0
    assert "wall ratio project/naive:" in out
    assert "backfill run: start-up before the first step" in out
    assert "project max requests in flight:" in out


def test_quick_ingest_prints_the_three_contenders():
    out = run_bench("--mode", "ingest")
    rows = {
        label: row(out, label)[4]
        for label in ("project ingestion path", "naive script", "DuckDB read_json (ceiling)")
    }
    assert len(set(rows.values())) == 1 and rows["naive script"] != "0"
    assert "rows/CPU-s DuckDB/project:" in out
