"""The documented `dg` commands work as written against a running Pendo (the emulator), and
none prints a notice (Dagster's own `dagster asset materialize` prints that `dg launch`
supersedes it)."""

import os
import re
import shlex
import subprocess

import dagster as dg
import duckdb
import pytest

from pendo_assets.catalog import ENTITIES, EVENTS
from pendo_assets.run_tags import RANGE_START_TAG

from .conftest import DG, REPO, TEST_KEY, planned_partitions, project_env

# Left out of `make test-quick`: the documented commands as `dg` subprocesses.
pytestmark = pytest.mark.slow

NOTICES = ("superseded", "Warning:")  # Dagster's notice; any Python warning line


def documented_commands() -> list[str]:
    """Every `dg` command in a ```bash block of the README and the docs/ pages, in order."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return [
        line.strip()
        for page in pages
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)
        for line in block.splitlines()
        if line.strip().startswith("dg ")
    ]


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_docs_document_dg_launch_over_every_source():
    launches = [c for c in documented_commands() if c.startswith("dg launch ")]
    selected = {a for c in launches for a in shlex.split(c)[3].split(",")}
    for s in ENTITIES:
        assert f"pendo/{s.table}" in selected, s.table
    for s in EVENTS:
        assert {f"pendo/{s.table}", f"analytics/{s.table}"} <= selected, s.table
    assert any("--partition-range" in c for c in launches)


def test_the_readme_backfills_in_one_run_what_the_bench_measures():
    """The README's backfill is one `dg launch` over a range, the command `make bench` times."""
    from bench.run import backfill_keys

    ranged = [c for c in documented_commands() if "--partition-range" in c]
    readme = [shlex.split(c)[3].split(",") for c in ranged if c.startswith("dg launch ")]
    assert backfill_keys() in readme


def test_documented_commands_run_as_written_without_a_notice(emulator, tmp_path):
    env = {**os.environ, **project_env(emulator, tmp_path)}
    os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
    launches = [c for c in documented_commands() if c.startswith("dg launch ")]
    for command in launches:
        argv = shlex.split(command)
        proc = run([DG, *argv[1:]], env)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{command}\n{out[-3000:]}"
        assert "RUN_SUCCESS" in out, command
        assert not [n for n in NOTICES if n in out], f"{command}\n{out[-3000:]}"
        assert TEST_KEY not in out
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
    # The backfill's run planned its unpartitioned entities once and its days one by one
    # (dagster_internals.plan_unpartitioned_once).
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        ranged = [r for r in instance.get_runs() if RANGE_START_TAG in r.tags]
        backfill = ranged[-1]  # newest first: the README's backfill is the first range run
        planned = planned_partitions(instance, backfill.run_id)
    for s in ENTITIES:
        assert planned[f"pendo/{s.table}"] == [None], s.table
    for s in EVENTS:
        assert sorted(planned[f"pendo/{s.table}"]) == [f"2026-10-0{i}" for i in range(1, 8)]
