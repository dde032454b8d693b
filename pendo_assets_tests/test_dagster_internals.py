"""Dagster's private names stay behind one seam (pendo_assets/dagster_internals.py), so an
upgrade is one place to look: no ``dagster._`` anywhere else in the code, every private module a
configuration file names is listed there, and every listed name still exists."""

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pendo_assets import dagster_internals
from pendo_assets.dagster_internals import INTERNALS
from pendo_assets.run_tags import range_tags

from .conftest import planned_partitions

REPO = Path(__file__).resolve().parents[1]
SEAM = REPO / "pendo_assets" / "dagster_internals.py"
PRIVATE = re.compile(r"\bdagster\._\w")
CONFIG_MODULE = re.compile(r"^\s*module:\s*(dagster\._[\w.]+)", re.MULTILINE)


def python_files() -> list[Path]:
    files = [
        p for d in ("pendo_assets", "pendo_assets_tests", "bench") for p in (REPO / d).rglob("*.py")
    ]
    assert len(files) > 50  # the walk found the code
    return files


def test_no_private_dagster_name_outside_the_seam():
    here = Path(__file__).resolve()
    offenders = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in python_files()
        if p.resolve() not in (SEAM, here)
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == [], "import these through pendo_assets/dagster_internals.py:\n" + "\n".join(
        offenders
    )


def test_configuration_files_name_only_listed_private_modules():
    listed = {entry.path.partition(":")[0] for entry in INTERNALS.values()}
    configs = list((REPO / "deploy").rglob("*.yaml"))
    assert configs
    named = {m for p in configs for m in CONFIG_MODULE.findall(p.read_text())}
    assert named <= listed, named - listed
    # deploy/local/dagster.yaml (what `make dev` writes) names no private module at all.
    assert CONFIG_MODULE.findall((REPO / "deploy" / "local" / "dagster.yaml").read_text()) == []


@pytest.mark.parametrize("name", sorted(INTERNALS))
def test_every_listed_name_exists_and_says_why(name):
    entry = INTERNALS[name]
    assert PRIVATE.match(entry.path) and ":" in entry.path, entry.path
    assert len(entry.why) > 40 and entry.upgrade, name
    assert getattr(dagster_internals, name) is dagster_internals.resolve(name)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'NotAName'"):
        dagster_internals.NotAName  # noqa: B018


def test_loading_the_definitions_does_not_import_the_storage_internals():
    # The SQLite storage modules (~300 modules, about a second) are for processes that store
    # events; a code server that only loads the definitions never imports them.
    code = (
        "import sys; from pendo_assets.definitions import defs; defs(); "
        "print(sorted(m for m in sys.modules if m.startswith('dagster._core.storage.event_log')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split("\n")
    assert out[-2] == "[]", out[-2]


# -- plan_unpartitioned_once: a range run plans unpartitioned assets and checks once ---------

DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]


def _range_project(fail_daily: bool = False):
    daily = dg.DailyPartitionsDefinition(start_date="2026-10-01", end_date="2026-10-04")

    # Dagster keeps the partitions of the plan's last asset output as the run's range: a
    # partitioned asset last (as the backfill's enriched tables are) is what brings the bug out.
    @dg.asset(backfill_policy=dg.BackfillPolicy.single_run())
    def a_names() -> None:
        return None

    @dg.asset(partitions_def=daily, backfill_policy=dg.BackfillPolicy.single_run(), deps=[a_names])
    def daily_rows() -> None:
        if fail_daily:
            raise RuntimeError("Pendo said no")
        return None

    @dg.asset_check(asset=daily_rows)
    def rows_ok() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    return [a_names, daily_rows, rows_ok]


def _range_run(instance, fail_daily: bool = False):
    return dg.materialize(
        _range_project(fail_daily),
        instance=instance,
        tags=range_tags(DAYS[0], DAYS[-1]),
        raise_on_error=False,
    )


def test_dagster_itself_still_plans_an_unpartitioned_asset_per_day_of_a_range():
    """The upstream behaviour the fix is for: when an upgrade fixes it, drop the fix."""
    dagster_internals.plan_unpartitioned_once()
    method = dagster_internals.resolve("DagsterRun").get_resolved_partitions_subset_for_events
    with dg.instance_for_test() as instance:
        run = instance.get_run_by_id(_range_run(instance).run_id)
        assert method(run, None) is None
        assert sorted(method.__wrapped__(run, None).get_partition_keys()) == DAYS


def test_a_range_run_plans_unpartitioned_assets_and_checks_once_and_days_per_day():
    dagster_internals.plan_unpartitioned_once()
    dagster_internals.plan_unpartitioned_once()  # once per process, however often asked
    with dg.instance_for_test() as instance:
        result = _range_run(instance)
        assert result.success
        assert planned_partitions(instance, result.run_id) == {
            "a_names": [None],
            "daily_rows": DAYS,
        }
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("daily_rows"), "rows_ok"), limit=10
        )
        # One row for the run's one evaluation, none left PLANNED per day.
        assert [(r.run_id, r.status.value, r.partition) for r in history] == [
            (result.run_id, "SUCCEEDED", None)
        ]


def test_a_failed_range_run_still_marks_each_of_its_days_failed():
    dagster_internals.plan_unpartitioned_once()
    with dg.instance_for_test() as instance:
        result = _range_run(instance, fail_daily=True)
        assert not result.success
        storage = instance.event_log_storage
        attempts = (
            storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                dg.AssetKey("daily_rows")
            )
        )
        assert sorted(attempts) == DAYS
        assert {run_id for run_id, _ in attempts.values()} == {result.run_id}
