"""Each asset check failing on data made wrong on purpose, blocking in a raw+enriched run, and
the `dg launch` CLI printing passing check evaluations."""

from __future__ import annotations

import os
import subprocess
from datetime import date, timedelta

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import pendo_assets.assets.raw as raw_module
from pendo_assets.catalog import ENTITIES
from pendo_assets.emulator import EmulatorServer
from pendo_assets.pendo.tables import TypedTable

from .conftest import (
    REPO,
    TEST_KEY,
    TODAY,
    materialize_command,
    project_env,
    small_subscription,
)

# Left out of `make test-quick`: the CLI over marts and rollups and one Dagster run per
# failing check.
pytestmark = pytest.mark.slow

DAY1, DAY2, DAY3 = "2026-10-06", "2026-10-07", "2026-10-08"
ENTITY_KEYS = [f"pendo/{s.table}" for s in ENTITIES]


def first_row(table: str) -> str:
    """A WHERE condition that picks one row of ``table`` on the day bound to ``?``."""
    return f"rowid = (SELECT min(rowid) FROM {table} WHERE day = ?)"


def evaluation(result, key: str, name: str):
    found = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == key and e.check_name == name
    ]
    assert len(found) == 1, (key, name, result.get_asset_check_evaluations())
    return found[0]


@pytest.fixture()
def loaded(emulator, make_project):
    project = make_project(emulator)
    project.materialize(ENTITY_KEYS)
    result = project.materialize(["pendo/page_events"], DAY1, DAY2)
    assert result.success
    ok = evaluation(result, "pendo/page_events", "reconciles_with_pendo")
    assert ok.passed and ok.metadata["failed_days"].value == []
    return project


def test_a_duplicated_row_fails_the_grain_check(loaded):
    loaded.execute(
        "INSERT INTO pendo.page_events SELECT * FROM pendo.page_events WHERE day = ? LIMIT 1",
        [DAY2],
    )
    result = loaded.run_checks("pendo/page_events", DAY1, DAY2)
    grain = evaluation(result, "pendo/page_events", "grain_is_unique")
    assert not grain.passed and grain.severity == dg.AssetCheckSeverity.ERROR
    assert grain.metadata["failed_days"].value == [DAY2]
    assert DAY2 in grain.description and DAY1 not in grain.description
    # The extra row also makes the warehouse disagree with Pendo on that day only.
    recon = evaluation(result, "pendo/page_events", "reconciles_with_pendo")
    assert not recon.passed and recon.metadata["failed_days"].value == [DAY2]


def test_a_dropped_row_fails_reconciliation_naming_the_day(loaded):
    loaded.execute(f"DELETE FROM pendo.page_events WHERE {first_row('pendo.page_events')}", [DAY1])
    result = loaded.run_checks("pendo/page_events", DAY1, DAY2)
    recon = evaluation(result, "pendo/page_events", "reconciles_with_pendo")
    assert not recon.passed
    assert recon.metadata["failed_days"].value == [DAY1]
    assert f"differs from Pendo on {DAY1}" in recon.description
    table = recon.metadata["days"].value
    assert DAY1 in table and DAY2 in table and "DIFFERS" in table
    assert evaluation(result, "pendo/page_events", "grain_is_unique").passed


def test_a_null_required_id_fails(loaded):
    loaded.execute(
        f"UPDATE pendo.page_events SET page_id = NULL WHERE {first_row('pendo.page_events')}",
        [DAY2],
    )
    result = loaded.run_checks("pendo/page_events", DAY1, DAY2)
    req = evaluation(result, "pendo/page_events", "required_ids_present")
    assert not req.passed and req.metadata["failed_days"].value == [DAY2]


def test_a_missing_day_warns_naming_it(loaded):
    result = loaded.materialize(["pendo/page_events"], "2026-10-09")  # 10-08 never loaded
    assert result.success  # a warning never fails the run
    gap = evaluation(result, "pendo/page_events", "no_missing_days")
    assert not gap.passed and gap.severity == dg.AssetCheckSeverity.WARN
    assert gap.metadata["missing_days"].value == [DAY3]
    assert DAY3 in gap.description
    stale = evaluation(result, "pendo/page_events", "is_fresh")
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN


def test_unknown_ids_warn_above_the_threshold_only(loaded):
    result = loaded.run_checks("pendo/page_events", DAY1, DAY2)
    known = evaluation(result, "pendo/page_events", "known_ids_share")
    assert known.passed and 0 < known.metadata["unknown_share"].value <= 0.05  # deleted tags
    loaded.execute("DELETE FROM pendo.pages WHERE id IN (SELECT id FROM pendo.pages LIMIT 6)")
    result = loaded.run_checks("pendo/page_events", DAY1, DAY2)
    unknown = evaluation(result, "pendo/page_events", "known_ids_share")
    assert not unknown.passed and unknown.severity == dg.AssetCheckSeverity.WARN
    assert unknown.metadata["unknown_share"].value > 0.05
    assert result.success


def test_a_duplicated_entity_id_fails(loaded):
    loaded.execute("INSERT INTO pendo.accounts SELECT * FROM pendo.accounts LIMIT 1")
    result = loaded.run_checks("pendo/accounts")
    dup = evaluation(result, "pendo/accounts", "ids_are_unique")
    assert not dup.passed and len(dup.metadata["duplicated_ids"].value) == 1


def test_a_mart_that_lost_a_row_fails_its_tie_out(loaded):
    keys = ["analytics/page_events", "analytics/page_daily_metrics"]
    assert loaded.materialize(keys, DAY1, DAY2).success
    mart = "analytics.page_daily_metrics"
    loaded.execute(f"DELETE FROM {mart} WHERE {first_row(mart)}", [DAY2])
    result = loaded.run_checks("analytics/page_daily_metrics", DAY1, DAY2)
    tie = evaluation(result, "analytics/page_daily_metrics", "ties_out_with_raw")
    assert not tie.passed and tie.metadata["failed_days"].value == [DAY2]


def test_failed_reconciliation_blocks_enriched_in_the_same_run(emulator, make_project, monkeypatch):
    """A loader bug that loses a row of one day: the check catches it, enriched never runs."""
    real = raw_module.fetch_days

    def lossy(client, source, days, opts, progress=None, **how):
        for d, table in real(client, source, days, opts, progress, **how):
            if d == date.fromisoformat(DAY2) and table.num_rows:
                keep = pc.not_equal(pa.array(range(table.num_rows)), 0)
                table = TypedTable(table.table.filter(keep), table.types)
            yield d, table

    monkeypatch.setattr(raw_module, "fetch_days", lossy)
    project = make_project(emulator)
    project.materialize(ENTITY_KEYS)
    result = project.materialize(
        ["pendo/feature_events", "analytics/feature_events"], DAY1, DAY2, raise_on_error=False
    )
    assert not result.success
    recon = evaluation(result, "pendo/feature_events", "reconciles_with_pendo")
    assert not recon.passed and recon.severity == dg.AssetCheckSeverity.ERROR
    assert recon.metadata["failed_days"].value == [DAY2]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "pendo/feature_events" in materialized
    assert "analytics/feature_events" not in materialized
    skipped = project.instance.get_materialized_partitions(
        dg.AssetKey(["analytics", "feature_events"])
    )
    assert skipped == set()


def test_enriched_automation_waits_for_blocking_checks(emulator, make_project):
    project = make_project(emulator)
    asset = next(
        a
        for a in project.defs.assets
        if dg.AssetKey(["analytics", "page_events"]) in getattr(a, "keys", set())
    )
    condition = asset.automation_conditions_by_key[dg.AssetKey(["analytics", "page_events"])]
    labels = str(condition)
    assert "all_deps_blocking_checks_passed" in labels and "eager" in labels


def test_cli_materializes_marts_and_rollups_with_passing_checks(tmp_path):
    """The commands of the README and docs/warehouse.md, as a user runs them, against an
    emulator ending today."""
    zone_today = TODAY  # the pinned clock (PENDO_TODAY), also the CLI's
    first, last = zone_today - timedelta(days=2), zone_today - timedelta(days=1)
    sub = small_subscription(first_day=zone_today - timedelta(days=5), last_day=zone_today)
    with EmulatorServer(sub, integration_key=TEST_KEY).start() as server:
        env = {**os.environ, **project_env(server, tmp_path)}
        env["PENDO_START_DATE"] = sub.first_day.isoformat()
        os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
        rng = f"{first}...{last}"
        events = ["events", "page_events", "feature_events", "guide_events", "poll_events"]
        commands = [
            ",".join(ENTITY_KEYS),
            (",".join(f"pendo/{t},analytics/{t}" for t in events), rng),
            (
                "analytics/account_daily_metrics,analytics/visitor_daily_metrics,"
                "analytics/feature_daily_metrics,analytics/page_daily_metrics,"
                "analytics/guide_daily_metrics",
                rng,
            ),
            "analytics/accounts,analytics/visitors,analytics/features,analytics/pages,"
            "analytics/guides,analytics/visitor_features",
        ]
        outputs = []
        for cmd in commands:
            select, extra = (
                (cmd, []) if isinstance(cmd, str) else (cmd[0], ["--partition-range", cmd[1]])
            )
            proc = subprocess.run(
                [*materialize_command(select), *extra],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=180,
            )
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0, out[-3000:]
            assert "RUN_SUCCESS" in out
            assert TEST_KEY not in out
            outputs.append(out)
    lines = [ln for ln in "\n".join(outputs).splitlines() if "ASSET_CHECK_EVALUATION" in ln]
    # known_ids_share may warn: the emulator deletes 3% of tags on average, and two days of a
    # small subscription ending *today* (for is_fresh) land on either side of the 5% line
    # depending on the date (6.4% for 2026-11-26..27).
    failed = [ln for ln in lines if "did not pass" in ln and "'known_ids_share'" not in ln]
    assert lines and not failed, failed
    passed = "\n".join(ln for ln in lines if "passed." in ln)
    for name, key in [
        ("ids_are_unique", "pendo/accounts"),
        ("reconciles_with_pendo", "pendo/page_events"),
        ("is_fresh", "pendo/events"),
        ("no_missing_days", "pendo/guide_events"),
        ("ties_out_with_raw", "analytics/feature_daily_metrics"),
        ("ties_out_with_raw", "analytics/visitor_features"),
    ]:
        assert f"Asset check '{name}' on '{key}' passed." in passed, (name, key)
    con = duckdb.connect(env["PENDO_DUCKDB_PATH"], read_only=True)
    try:
        days = con.execute(
            "SELECT count(DISTINCT day), sum(sum_clicks) FROM analytics.feature_daily_metrics"
        ).fetchone()
        raw = con.execute(
            "SELECT sum(num_events) FROM pendo.feature_events WHERE day BETWEEN ? AND ?",
            [first, last],
        ).fetchone()[0]
        rollup = con.execute("SELECT count(*), sum(sum_clicks) FROM analytics.features").fetchone()
    finally:
        con.close()
    assert days == (2, raw) and raw > 0
    assert rollup[0] > 0 and rollup[1] == raw
