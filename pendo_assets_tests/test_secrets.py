"""The integration key never leaves the process that uses it: after a successful and a failed
``dg launch`` with a real instance under a temporary DAGSTER_HOME, neither the
key nor an obvious encoding of it is in any file there, the CLI output, the run config, tags,
event logs, materialization metadata, error messages or the DuckDB file."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest
from dagster import serialize_value

from .conftest import TEST_KEY, materialize_command, project_env

# Left out of `make test-quick`: a good and a failed CLI run, then a grep of every
# artefact for the key.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def encodings(key: str) -> dict[str, bytes]:
    raw = key.encode()
    return {
        "plain": raw,
        "upper": key.upper().encode(),
        "base64": base64.b64encode(raw).rstrip(b"="),
        "urlsafe-base64": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "hex": raw.hex().encode(),
        "url-quoted": quote(key, safe="").encode(),
        "utf-16": key.encode("utf-16-le"),
        "reversed": key[::-1].encode(),
    }


def leaks(data: bytes, key: str) -> list[str]:
    return [name for name, enc in encodings(key).items() if enc in data or enc.lower() in data]


def materialize(env: dict[str, str], select: str, partition: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        materialize_command(select, partition=partition),
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=240,
    )


def test_the_key_is_nowhere_after_a_good_and_a_failed_run(fresh_emulator, tmp_path, monkeypatch):
    env = {**os.environ, **project_env(fresh_emulator, tmp_path)}
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True)
    assert env["PENDO_INTEGRATION_KEY"] == TEST_KEY

    good = materialize(env, "pendo/page_events,pendo/guide_events", "2026-10-01")
    assert good.returncode == 0, good.stderr[-3000:]
    # A 400 from Pendo ("Query exceeded memory limit", even per hour) fails the second run.
    fresh_emulator.faults.update(memory_limit_rows=1)
    bad = materialize(env, "pendo/page_events", "2026-10-02")
    assert bad.returncode != 0
    assert b"memory limit" in bad.stdout + bad.stderr

    found: dict[str, list[str]] = {}
    for name, out in (("good run output", good), ("failed run output", bad)):
        if hit := leaks(out.stdout + out.stderr, TEST_KEY):
            found[name] = hit
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files), "expected sqlite run/event storage"
    all_bytes = b""
    for p in files:
        data = p.read_bytes()
        all_bytes += data
        if hit := leaks(data, TEST_KEY):
            found[str(p.relative_to(home))] = hit
    # The storage is searchable as text: what we know is there, we can find.
    assert b"pendo__page_events" in all_bytes and b"2026-10-01" in all_bytes
    duck = Path(env["PENDO_DUCKDB_PATH"])
    assert duck.exists()
    for p in duck.parent.glob(duck.name + "*"):
        if hit := leaks(p.read_bytes(), TEST_KEY):
            found[p.name] = hit

    # The same through Dagster's own API: run config, tags, every event, metadata, errors.
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 2
        statuses = sorted(r.status.value for r in runs)
        assert statuses == ["FAILURE", "SUCCESS"]
        for run in runs:
            text = serialize_value(run).encode()
            for record in instance.get_records_for_run(run.run_id, limit=100_000).records:
                text += serialize_value(record.event_log_entry).encode()
            assert b"memory limit" in text or run.status.value == "SUCCESS"
            if hit := leaks(text, TEST_KEY):
                found[f"run {run.run_id}"] = hit
        mats = instance.fetch_materializations(
            dg.AssetKey(["pendo", "page_events"]), limit=100
        ).records
        assert mats
        for rec in mats:
            if hit := leaks(serialize_value(rec.asset_materialization).encode(), TEST_KEY):
                found[f"materialization {rec.asset_materialization.partition}"] = hit
    assert found == {}


def test_the_leak_check_would_see_an_encoded_key():
    assert "base64" in leaks(b"xx" + base64.b64encode(TEST_KEY.encode()) + b"yy", TEST_KEY)
    assert "plain" in leaks(b'{"key": "' + TEST_KEY.encode() + b'"}', TEST_KEY)
    assert leaks(b"nothing to see here", TEST_KEY) == []
