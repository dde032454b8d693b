"""The batched SQLite event-log storage against Dagster's own, on the installed release.

The same partition-range workload (two daily assets, a blocking check, one asset that fails) runs
on an instance with the stock storage and on one with ours; what Dagster then reports per
partition must be identical, and ours must have written it in far fewer transactions.
"""

import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pendo_assets.dagster_internals import SqliteEventLogStorage
from pendo_assets.instance import (
    enable_event_batching,
    event_log,
    render_local_config,
    write_local_config,
)
from pendo_assets.instance.event_log import BatchedSqliteEventLogStorage
from pendo_assets.run_tags import range_tags

# Left out of `make test-quick`: the same range runs on stock and batched event-log storage.
pytestmark = pytest.mark.slow

PARTS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-03-02")
FIRST, LAST = "2025-01-01", "2025-03-01"  # 60 partitions
RANGE_TAGS = range_tags(FIRST, LAST)


class NoIO(dg.IOManager):
    def handle_output(self, context, obj) -> None:
        pass

    def load_input(self, context):
        return None


def _assets():
    policy = dg.BackfillPolicy.single_run()

    @dg.asset(
        partitions_def=PARTS,
        backfill_policy=policy,
        check_specs=[dg.AssetCheckSpec("positive", asset="left", blocking=True)],
    )
    def left(context: dg.AssetExecutionContext):
        keys = context.partition_keys
        yield dg.Output(None, metadata={"days": len(keys)})
        yield dg.AssetCheckResult(check_name="positive", passed=len(keys) > 30)

    @dg.asset(partitions_def=PARTS, backfill_policy=policy, deps=[left])
    def right(context: dg.AssetExecutionContext) -> None:
        context.add_output_metadata({"days": len(context.partition_keys)})

    @dg.asset(partitions_def=PARTS, backfill_policy=policy)
    def broken(context: dg.AssetExecutionContext) -> None:
        raise RuntimeError("Pendo said no")

    @dg.asset_check(asset=right)
    def right_has_rows(context) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, metadata={"n": 0})

    return [left, right, broken, right_has_rows]


def _instance(home: Path, batched: bool) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    config: dict = {"telemetry": {"enabled": False}}
    if batched:
        config["event_log_storage"] = {
            "module": event_log.MODULE,
            "class": event_log.CLASS,
            "config": {"base_dir": str(home / "history" / "runs")},
        }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return dg.DagsterInstance.from_config(str(home))


def _run(instance: dg.DagsterInstance) -> None:
    *assets, check = _assets()
    for selection in (["left", "right"], ["broken"]):
        dg.materialize(
            [*assets, check],
            selection=selection,
            instance=instance,
            tags=RANGE_TAGS,
            resources={"io_manager": NoIO()},
            raise_on_error=False,
        )


def _report(instance: dg.DagsterInstance) -> dict:
    """What Dagster shows for the workload, without ids or timestamps."""
    out: dict = {}
    storage = instance.event_log_storage
    for name in ("left", "right", "broken"):
        key = dg.AssetKey(name)
        out[name, "materialized"] = sorted(instance.get_materialized_partitions(key))
        failed = (
            storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                key
            )
        )
        out[name, "failed"] = sorted(failed)
        latest = instance.get_latest_materialization_event(key)
        out[name, "latest"] = (
            None
            if latest is None
            else (
                latest.dagster_event.partition,
                dict(latest.asset_materialization.metadata),
            )
        )
        record = instance.get_asset_records([key])
        out[name, "has_record"] = bool(record and record[0].asset_entry.last_materialization)
    for check_key in (
        dg.AssetCheckKey(dg.AssetKey("left"), "positive"),
        dg.AssetCheckKey(dg.AssetKey("right"), "right_has_rows"),
    ):
        history = storage.get_asset_check_execution_history(check_key, limit=10_000)
        out[check_key.to_user_string()] = sorted(
            (r.partition or "", r.status.value) for r in history
        )
    return out


@contextmanager
def _counting_connections(cls):
    """Count the connections the storage opens (each is one transaction on a fresh engine)."""
    opened: list[str] = []
    original = SqliteEventLogStorage._connect

    @contextmanager
    def counted(self, shard):
        opened.append(shard)
        with original(self, shard) as conn:
            yield conn

    mp = pytest.MonkeyPatch()
    mp.setattr(SqliteEventLogStorage, "_connect", counted)
    try:
        yield opened
    finally:
        mp.undo()


def test_batched_storage_reports_exactly_what_the_stock_storage_does(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "100000")
    reports = {}
    for batched in (False, True):
        with _instance(tmp_path / f"batched-{batched}", batched) as instance:
            assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage) is batched
            _run(instance)
            reports[batched] = _report(instance)
    stock, ours = reports[False], reports[True]
    assert ours == stock
    # and the workload really covered what it claims to:
    assert len(stock["left", "materialized"]) == 60
    assert stock["broken", "materialized"] == []
    assert len(stock["broken", "failed"]) == 60
    # An unpartitioned check in a range run: a planned row per partition, one evaluation.
    assert sorted(set(s for _, s in stock["left:positive"])) == ["PLANNED", "SUCCEEDED"]
    assert sorted(set(s for _, s in stock["right:right_has_rows"])) == ["FAILED", "PLANNED"]
    # Dagster's own quirk, kept: 60 planned rows stay PLANNED beside the one evaluation.
    assert len(stock["right:right_has_rows"]) == 61


def test_batched_storage_writes_a_range_in_a_few_transactions(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "100000")
    counts = {}
    for batched in (False, True):
        with _instance(tmp_path / f"batched-{batched}", batched) as instance:
            with _counting_connections(SqliteEventLogStorage) as opened:
                _run(instance)
            counts[batched] = len(opened)
    print(f"connections opened: stock {counts[False]}, batched {counts[True]}")
    # Stock: a run-file and an index transaction per planned and per materialized partition.
    assert counts[False] > 4 * 60
    assert counts[True] * 5 < counts[False], counts


def test_planned_check_over_a_range_is_serialized_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "100000")
    calls = []
    real = event_log.serialize_value

    def counting(value):
        calls.append(type(value).__name__)
        return real(value)

    monkeypatch.setattr(event_log, "serialize_value", counting)
    with _instance(tmp_path / "home", True) as instance:
        _run(instance)
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("right"), "right_has_rows"), limit=1000
        )
    assert len(history) == 61  # a planned row per partition and the evaluation ...
    assert calls.count("EventLogEntry") == 2  # ... from one serialization per planned check


def test_make_dev_writes_the_local_instance_config_and_keeps_a_users_own(tmp_path):
    home = tmp_path / "home"
    assert write_local_config(str(home)) == "written"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
        assert instance.event_log_storage._base_dir == str((home / "history" / "runs").resolve())
    assert write_local_config(str(home)) == "current"
    config = home / "dagster.yaml"
    config.write_text(config.read_text().replace("telemetry:", "# older\ntelemetry:"))
    assert write_local_config(str(home)) == "refreshed"  # an older copy of ours
    assert config.read_text() == render_local_config(str(home))
    own = "telemetry:\n  enabled: true\n"
    config.write_text(own)
    assert write_local_config(str(home)) == "kept"  # the user's file: never overwritten
    assert config.read_text() == own


def test_the_batched_storage_turns_event_batching_on_unless_the_user_chose(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    with _instance(tmp_path / "home", batched=False):
        assert "DAGSTER_EVENT_BATCH_SIZE" not in os.environ  # Dagster's own storage: untouched
    with _instance(tmp_path / "home-batched", batched=True):
        assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "1000"
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "0")
    with _instance(tmp_path / "home-off", batched=True):
        assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "0"
    env: dict[str, str] = {}
    enable_event_batching(env)
    assert int(env["DAGSTER_EVENT_BATCH_SIZE"]) >= 365  # a year of one asset in one batch
    env = {"DAGSTER_EVENT_BATCH_SIZE": "0"}
    enable_event_batching(env)
    assert env["DAGSTER_EVENT_BATCH_SIZE"] == "0"
