"""The README's three commands work as written against a running Pendo (the emulator)."""

import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from pendo_assets.catalog import ENTITIES, EVENTS

from .conftest import TEST_KEY, materialize_command, project_env

# Left out of `make test-quick`: the README's commands as `dagster` CLI subprocesses.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_readme_commands(emulator, tmp_path):
    env = {**os.environ, **project_env(emulator, tmp_path)}
    os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
    entities = ",".join(f"pendo/{s.table}" for s in ENTITIES)
    raw = ",".join(f"pendo/{s.table}" for s in EVENTS)
    enriched = ",".join(f"analytics/{s.table}" for s in EVENTS)
    rng = "2026-10-01...2026-10-07"
    for cmd in (
        materialize_command(entities),
        materialize_command(raw, partition_range=rng),
        materialize_command(enriched, partition_range=rng),
    ):
        proc = run(cmd, env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert TEST_KEY not in proc.stdout + proc.stderr
    con = duckdb.connect(env["PENDO_DUCKDB_PATH"], read_only=True)
    try:
        for s in EVENTS:
            raw_days = con.execute(
                f"SELECT day, count(*) FROM pendo.{s.table} GROUP BY 1 ORDER BY 1"
            ).fetchall()
            enriched_days = con.execute(
                f"SELECT day, count(*) FROM analytics.{s.table} GROUP BY 1 ORDER BY 1"
            ).fetchall()
            assert raw_days == enriched_days, s.table
            assert {str(d) for d, _ in raw_days} <= {f"2026-10-0{i}" for i in range(1, 8)}
            if (
                not s.per_event
            ):  # aggregated sources have activity every day; poll answers are sparse
                assert len(raw_days) == 7, s.table
        assert con.execute("SELECT count(*) FROM pendo.visitors").fetchone()[0] > 0
    finally:
        con.close()
