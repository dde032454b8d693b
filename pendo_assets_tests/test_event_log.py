"""The batched SQLite event-log storage against Dagster's own, on the installed release.

The same partition-range workload (two daily assets, a blocking check, one asset that fails) runs
on an instance with the stock storage and on one with ours; what Dagster then reports per
partition must be identical, and ours must have written it in far fewer transactions.
"""

import json
import os
import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pendo_assets import dagster_internals
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


@pytest.fixture(autouse=True)
def dagsters_own_planning(monkeypatch):
    """Compare the storages on Dagster's own planning, in which a range run plans an
    unpartitioned check once per day: per-partition planned check rows for the storage to
    write. The project's definitions loader plans those once
    (``dagster_internals.plan_unpartitioned_once``, process-wide); a test that loaded the
    definitions earlier in this process installed it, so it is taken off for these tests."""
    run_class = dagster_internals.resolve("DagsterRun")
    method = run_class.get_resolved_partitions_subset_for_events
    if hasattr(method, "__wrapped__"):
        monkeypatch.setattr(
            run_class, "get_resolved_partitions_subset_for_events", method.__wrapped__
        )


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


def test_planned_events_over_a_range_are_serialized_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "100000")
    calls = []
    real = event_log.serialize_value

    def counting(value):
        if isinstance(value, dg.EventLogEntry):
            calls.append(value.dagster_event.event_type_value)
        return real(value)

    monkeypatch.setattr(event_log, "serialize_value", counting)
    with _instance(tmp_path / "home", True) as instance:
        _run(instance)
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("right"), "right_has_rows"), limit=1000
        )
    assert len(history) == 61  # a planned row per partition and the evaluation ...
    assert calls.count("ASSET_CHECK_EVALUATION_PLANNED") == 2  # ... from one per planned check
    # Three assets, 60 planned partitions each: one serialization of each asset's events.
    assert calls.count("ASSET_MATERIALIZATION_PLANNED") == 3


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


def _index(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "history" / "runs" / "index.db")


def _planned_rows(db: sqlite3.Connection, run_id: str) -> list[tuple]:
    """A run's planned rows in storage order, with what differs between two runs taken out."""
    stamp = re.compile(r'"timestamp": [-0-9.e]+')
    rows = db.execute(
        "SELECT dagster_event_type, step_key, asset_key, partition, event FROM event_logs "
        "WHERE run_id = ? AND dagster_event_type LIKE '%PLANNED' ORDER BY id",
        (run_id,),
    ).fetchall()
    return [(*r[:4], stamp.sub("", r[4].replace(run_id, "RUN"))) for r in rows]


def _planned_check_rows(db: sqlite3.Connection, run_id: str) -> list[tuple]:
    stamp = re.compile(r'"timestamp": [-0-9.e]+')
    rows = db.execute(
        "SELECT asset_key, check_name, partition, execution_status, evaluation_event, "
        "length(evaluation_event_timestamp), create_timestamp IS NOT NULL "
        "FROM asset_check_executions WHERE run_id = ? ORDER BY id",
        (run_id,),
    ).fetchall()
    return [(*r[:4], stamp.sub("", r[4].replace(run_id, "RUN")), *r[5:]) for r in rows]


@pytest.mark.parametrize("json_each", [True, False], ids=["json_each", "no-json_each"])
def test_a_range_runs_planned_events_are_stored_as_the_stock_storage_stores_them(
    tmp_path, monkeypatch, json_each
):
    """Row by row, in the run's file and in the index: one planned event per asset and
    partition, and one planned check row per check and partition, identical to Dagster's own
    but for run ids and times; also where SQLite has no json_each (the check rows' INSERT
    fails to compile and goes row by row)."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    if not json_each:
        monkeypatch.setattr(event_log.sa.func, "json_each", event_log.sa.func.no_json_each)
    stored = {}
    for batched in (False, True):
        home = tmp_path / f"batched-{batched}"
        with _instance(home, batched) as instance:
            _run(instance)
            runs = [r.run_id for r in reversed(instance.get_runs())]
            if batched:
                assert instance.event_log_storage._json_each is json_each
        db = _index(home)
        stored[batched] = [
            (
                _planned_rows(db, run_id),
                _planned_rows(sqlite3.connect(home / "history" / "runs" / f"{run_id}.db"), run_id),
                _planned_check_rows(db, run_id),
            )
            for run_id in runs
        ]
    assert stored[True] == stored[False]
    (index_rows, run_rows, check_rows), (broken_rows, _, _) = stored[True]
    assert [r[2] for r in check_rows if r[1] == "positive"][
        :60
    ] == PARTS.get_partition_keys_in_range(dg.PartitionKeyRange(FIRST, LAST))
    assert index_rows == run_rows
    planned = [r for r in index_rows if r[0] == "ASSET_MATERIALIZATION_PLANNED"]
    by_asset = {a: [r[3] for r in planned if r[2] == a] for a in {r[2] for r in planned}}
    days = PARTS.get_partition_keys_in_range(dg.PartitionKeyRange(FIRST, LAST))
    assert len(days) == 60
    assert by_asset == {'["left"]': days, '["right"]': days}
    assert [r[3] for r in broken_rows if r[0] == "ASSET_MATERIALIZATION_PLANNED"] == days


def test_the_index_rows_ids_are_their_own(tmp_path, monkeypatch):
    """The batch path works out the ids of the index rows it inserts; every row that points at
    one (indexed tags, the asset's latest materialization, check executions) must point at the
    event it was written for, in both runs (the second starts after the first's ids)."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    home = tmp_path / "home"
    with _instance(home, batched=True) as instance:
        _run(instance)
    db = _index(home)
    events = {i: json.loads(e) for i, e in db.execute("SELECT id, event FROM event_logs")}
    tags = db.execute("SELECT event_id, asset_key, key, value FROM asset_event_tags").fetchall()
    assert len(tags) >= 2 * 60  # a data version per materialized partition of left and right
    for event_id, asset_key, key, value in tags:
        data = events[event_id]["dagster_event"]["event_specific_data"]["materialization"]
        assert json.dumps(data["asset_key"]["path"]) == asset_key
        assert data["tags"][key] == value
    latest = db.execute("SELECT asset_key, last_materialization FROM asset_keys").fetchall()
    assert sum(record is not None for _, record in latest) == 2  # left and right
    for _, record in latest:
        if record is not None:
            record = json.loads(record)
            assert events[record["storage_id"]] == record["event_log_entry"]
    checks = db.execute(
        "SELECT evaluation_event_storage_id, evaluation_event, evaluation_event_timestamp "
        "FROM asset_check_executions"
    ).fetchall()
    assert len(checks) == 2 * 60 + 2  # planned per partition, and the two evaluations
    stamps = dict(db.execute("SELECT id, timestamp FROM event_logs"))
    for storage_id, event, stamp in checks:
        assert events[storage_id] == json.loads(event)
        assert stamps[storage_id] == stamp  # the same instant, written the same way


def _stored_events(tmp_path) -> list[dg.EventLogEntry]:
    """Every event of the workload's runs, as Dagster's own storage reads them back."""
    with _instance(tmp_path / "stock", batched=False) as instance:
        _run(instance)
        return [e for r in instance.get_runs() for e in instance.all_logs(r.run_id)]


def test_planned_rows_are_the_rows_dagster_builds(tmp_path, monkeypatch):
    """One serialization per asset, filled in with each event's partition and time: the rows
    must be Dagster's own, also for partitions and times that JSON writes unusually, and for
    events that differ from their asset's first in anything else."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    events = _stored_events(tmp_path)
    planned_type = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    planned = [e for e in events if e.dagster_event_type == planned_type]
    assert len(planned) == 3 * 60
    first = planned[0]
    data = first.dagster_event.event_specific_data

    def planned_like(partition=data.partition, timestamp=first.timestamp, **fields):
        dagster_event = first.dagster_event._replace(
            event_specific_data=data._replace(partition=partition)
        )
        return first._replace(timestamp=timestamp, dagster_event=dagster_event, **fields)

    odd = [
        planned_like(partition=p)
        for p in ('2025-"01"', "a\\b", "naïve|Zürich", "\u2028", "x" * 300, "{}", "1e-289")
    ]
    odd += [planned_like(timestamp=t) for t in (1e10, 0.1, 1796416068.0, 5e-324)]
    odd += [
        planned_like(run_id="another-run"),
        planned_like(level=40),
        planned_like(user_message="said something"),
        first._replace(dagster_event=first.dagster_event._replace(message="planned, differently")),
        planned_like(partition=""),  # Dagster stores no partition for an empty one
    ]
    with _instance(tmp_path / "batched", batched=True) as instance:
        storage = instance.event_log_storage
        rows = event_log._PlannedRows(storage)
        for event in [*events, *odd, *planned]:
            assert rows.row(event) == storage._event_to_row(event), event
        # and the fast way was taken: each asset's first event made a fillable template
        assert len(rows._templates) >= 3
