"""End to end through the UI's own interfaces: `make dev` on a fresh checkout (no key, so the
emulator runs as its own process), the asset graph over /graphql, the entities launched with
``launchRun`` and a 3-day backfill of every partitioned asset with ``launchPartitionBackfill``
(the mutations the UI sends), run by `dagster dev`'s own daemon, then the rows read back from
the DuckDB file."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from pendo_assets.assets.report import REPORT_GROUP, REPORT_KEY
from pendo_assets.automation import (
    AUTOMATION_SENSOR,
    FAILURE_SENSOR,
    REFRESH_SCHEDULE,
    SWEEP_SCHEDULE,
    TAG_REPAIR_SENSOR,
)
from pendo_assets.catalog import ANALYTICS_SCHEMA, ENTITIES, EVENTS, RAW_SCHEMA
from pendo_assets.freshness import FRESHNESS_SENSOR
from pendo_assets.reader import PUBLISH_SENSOR
from pendo_assets.warehouse.store import Warehouse
from pendo_assets_tests.ui_server import LAUNCH_BACKFILL, DagsterDev

from .conftest import TODAY

# Left out of `make test-quick`: `dagster dev` over GraphQL.
pytestmark = pytest.mark.slow

LOCATION = "pendo_assets.definitions"
REPOSITORY = "__repository__"
ASSET_JOB = "__ASSET_JOB"  # the implicit job the UI's "Materialize" button runs
RUN_TIMEOUT_S = 180.0
# The backfill daemon ticks every 30 s: one tick to submit the run, one to mark it complete.
BACKFILL_TIMEOUT_S = 240.0

ASSET_NODES = """
query {
  assetNodes {
    assetKey { path }
    groupName
    kinds
    description
    isPartitioned
    jobNames
    partitionKeys
  }
}
"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


RUN_STATUS = """
query($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
  }
}
"""

BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      isAssetBackfill
      runs(limit: 100) { runId status tags { key value } }
      error { message }
    }
  }
}
"""

RUN_LOGS = """
query($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    __typename
    ... on EventConnection {
      events { __typename ... on MessageEvent { message } }
      cursor
      hasMore
    }
  }
}
"""

LATEST_MATERIALIZATION = """
query($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      assetMaterializations(limit: 1) {
        partition
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on MarkdownMetadataEntry { mdStr }
        }
      }
    }
  }
}
"""

DONE_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
DONE_BACKFILL = {"COMPLETED_SUCCESS", "COMPLETED_FAILED", "COMPLETED", "FAILED", "CANCELED"}


def key(path: list[str]) -> str:
    return "/".join(path)


def launch_assets(server: DagsterDev, paths: list[list[str]]) -> str:
    """What the UI's "Materialize" button sends for a selection of unpartitioned assets."""
    launched = server.graphql(
        LAUNCH_RUN,
        {
            "params": {
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                    "jobName": ASSET_JOB,
                    "assetSelection": [{"path": p} for p in paths],
                },
                "mode": "default",
                "executionMetadata": {"tags": [{"key": "test", "value": "ui_e2e"}]},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


@dataclass
class Loaded:
    server: DagsterDev
    nodes: dict[str, dict]
    days: list[str]
    entity_run_id: str
    backfill: dict


def wait_run(server: DagsterDev, run_id: str) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        status = server.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in DONE_RUN:
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} not finished after {RUN_TIMEOUT_S:.0f}s")


def wait_backfill(server: DagsterDev, backfill_id: str) -> dict:
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while time.monotonic() < deadline:
        bf = server.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if bf["status"] in DONE_BACKFILL:
            return bf
        time.sleep(0.5)
    raise AssertionError(f"backfill {backfill_id} not finished after {BACKFILL_TIMEOUT_S:.0f}s")


def run_messages(server: DagsterDev, run_id: str) -> list[str]:
    # Pages of 1000: the most any supported Dagster release answers at once.
    messages: list[str] = []
    cursor = None
    while True:
        logs = server.graphql(RUN_LOGS, {"runId": run_id, "cursor": cursor})["logsForRun"]
        messages += [e.get("message") or "" for e in logs["events"]]
        if not logs["hasMore"]:
            return messages
        cursor = logs["cursor"]


@pytest.fixture(scope="module")
def loaded(dagster_dev: DagsterDev) -> Loaded:
    """Entities, then a 3-day backfill of every partitioned asset, as a person would in the UI."""
    server = dagster_dev
    nodes = {key(n["assetKey"]["path"]): n for n in server.graphql(ASSET_NODES)["assetNodes"]}

    entity_run = launch_assets(server, [[RAW_SCHEMA, s.table] for s in ENTITIES])
    assert wait_run(server, entity_run) == "SUCCESS", server.log_tail()

    partitioned = [n for n in nodes.values() if n["isPartitioned"]]
    # Three settled days before the lookback window (10 days), so the daily refresh schedule
    # does not touch them; the automation sensor (running) leaves the backfill's own assets to
    # it (in_progress) and at most re-derives rollups and the report once the marts land.
    all_days = partitioned[0]["partitionKeys"]
    days = all_days[-20:-17]
    launched = server.graphql(
        LAUNCH_BACKFILL,
        {
            "params": {
                "assetSelection": [{"path": n["assetKey"]["path"]} for n in partitioned],
                "partitionNames": days,
                "tags": [{"key": "test", "value": "ui_e2e"}],
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = wait_backfill(server, launched["backfillId"])
    return Loaded(server, nodes, days, entity_run, backfill)


INSTIGATORS = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        sensors { name sensorState { status } }
        schedules { name scheduleState { status } }
      }
    }
  }
}
"""


def test_automation_schedule_and_sensors_are_running_and_the_start_is_quiet(dagster_dev):
    """What the Automation page shows on a fresh checkout: everything on, no toggle to find."""
    (repo,) = dagster_dev.graphql(INSTIGATORS)["repositoriesOrError"]["nodes"]
    states = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    states |= {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
    assert states == {
        AUTOMATION_SENSOR: "RUNNING",
        FAILURE_SENSOR: "RUNNING",
        FRESHNESS_SENSOR: "RUNNING",
        PUBLISH_SENSOR: "RUNNING",
        REFRESH_SCHEDULE: "RUNNING",
        SWEEP_SCHEDULE: "RUNNING",
        TAG_REPAIR_SENSOR: "RUNNING",
    }
    # No default (stopped) automation sensor next to ours, and no warning flood in the log.
    log = dagster_dev.log_tail(200_000)
    assert "BetaWarning" not in log and "is superseded" not in log, log[-3000:]


def test_asset_graph_lists_our_assets_with_groups_kinds_and_demo_descriptions(dagster_dev):
    nodes = {key(n["assetKey"]["path"]): n for n in dagster_dev.graphql(ASSET_NODES)["assetNodes"]}
    expected = {
        **{f"{RAW_SCHEMA}/{s.table}": "pendo_entities" for s in ENTITIES},
        **{f"{RAW_SCHEMA}/{s.table}": "pendo_raw_events" for s in EVENTS},
        **{f"{ANALYTICS_SCHEMA}/{s.table}": "analytics_events" for s in EVENTS},
    }
    missing = sorted(set(expected) - set(nodes))
    assert not missing, f"not in the UI's asset graph: {missing}"
    for name, group in expected.items():
        node = nodes[name]
        assert node["groupName"] == group, name
        assert {"pendo", "duckdb"} <= set(node["kinds"]), (name, node["kinds"])
        # The launcher ran without a key: every description says it is demo data and how to
        # switch to a real subscription.
        assert "DEMO DATA" in node["description"], name
        assert "PENDO_INTEGRATION_KEY" in node["description"], name
        assert ASSET_JOB in node["jobNames"], name
        assert node["isPartitioned"] == (group != "pendo_entities"), name
    for name, node in nodes.items():
        assert node["description"], f"{name} has no description"
        assert "duckdb" in node["kinds"], name
    # The demo subscription covers at least the last 120 days, one partition per day.
    keys = nodes[f"{RAW_SCHEMA}/page_events"]["partitionKeys"]
    assert len(keys) >= 120
    assert date.fromisoformat(keys[-1]) >= TODAY - timedelta(days=2)


def test_entities_and_backfill_succeed_through_the_daemon(loaded: Loaded):
    bf = loaded.backfill
    assert bf["isAssetBackfill"]
    assert bf["status"] == "COMPLETED_SUCCESS", (bf, loaded.server.log_tail())
    assert bf["runs"], "the backfill launched no run"
    assert all(r["status"] == "SUCCESS" for r in bf["runs"]), bf["runs"]
    for run in bf["runs"]:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags.get("test") == "ui_e2e"
        assert "dagster/backfill" in tags


def test_every_partitioned_table_has_rows_for_exactly_the_backfilled_days(loaded: Loaded):
    wh = Warehouse(str(loaded.server.duckdb_path))
    want = [date.fromisoformat(d) for d in loaded.days]
    partitioned = [name for name, n in loaded.nodes.items() if n["isPartitioned"]]
    assert len(partitioned) >= 2 * len(EVENTS)
    for name in partitioned:
        schema, table = name.split("/")
        rows = wh.query(f'SELECT day, count(*) FROM "{schema}"."{table}" GROUP BY day ORDER BY day')
        assert [d for d, _ in rows] == want, (name, rows)
        assert all(n > 0 for _, n in rows), (name, rows)
    for s in ENTITIES:
        (n,) = wh.query(f'SELECT count(*) FROM "{RAW_SCHEMA}"."{s.table}"')[0]
        assert n > 0, s.table
    # Enriched tables hold every raw row: none dropped, none duplicated.
    for s in EVENTS:
        raw = wh.query(f'SELECT count(*) FROM "{RAW_SCHEMA}"."{s.table}"')[0][0]
        enriched = wh.query(f'SELECT count(*) FROM "{ANALYTICS_SCHEMA}"."{s.table}"')[0][0]
        assert raw == enriched, s.table


def test_materializations_carry_rows_requests_bytes_seconds_and_a_preview(loaded: Loaded):
    data = loaded.server.graphql(LATEST_MATERIALIZATION, {"path": [RAW_SCHEMA, "page_events"]})
    (mat,) = data["assetNodeOrError"]["assetMaterializations"]
    assert mat["partition"] in loaded.days
    meta = {m["label"]: m for m in mat["metadataEntries"]}
    # Adaptive windows: a one-day probe, then the other days in as few requests as fit.
    assert 1 <= meta["pendo_requests"]["intValue"] <= len(loaded.days)
    assert meta["pendo_bytes"]["intValue"] > 0
    assert meta["fetch_seconds"]["floatValue"] >= 0
    assert meta["dagster/row_count"]["intValue"] > 0
    preview = meta["preview"]["mdStr"].splitlines()
    assert preview[1].startswith("|---") and len(preview) >= 3, preview[:3]
    entity = loaded.server.graphql(LATEST_MATERIALIZATION, {"path": [RAW_SCHEMA, "visitors"]})
    (mat,) = entity["assetNodeOrError"]["assetMaterializations"]
    meta = {m["label"]: m for m in mat["metadataEntries"]}
    assert meta["dagster/row_count"]["intValue"] > 0
    assert meta["pendo_requests"]["intValue"] >= 1


def test_range_runs_log_progress_in_days(loaded: Loaded):
    messages = [m for r in loaded.backfill["runs"] for m in run_messages(loaded.server, r["runId"])]
    n = len(loaded.days)
    for s in EVENTS:
        assert f"fetched {n}/{n} days of {s.name}" in messages, s.name


def test_usage_report_renders_next_to_the_warehouse_and_in_the_ui(loaded: Loaded):
    node = loaded.nodes[REPORT_KEY.to_user_string()]
    assert node["groupName"] == REPORT_GROUP
    assert "DEMO DATA" in node["description"]
    run_id = launch_assets(loaded.server, [list(REPORT_KEY.path)])
    assert wait_run(loaded.server, run_id) == "SUCCESS", loaded.server.log_tail()
    png = loaded.server.duckdb_path.parent / "reports" / "usage_report.png"
    html = png.with_suffix(".html")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in html.read_text()
    data = loaded.server.graphql(LATEST_MATERIALIZATION, {"path": list(REPORT_KEY.path)})
    (mat,) = data["assetNodeOrError"]["assetMaterializations"]
    meta = {m["label"]: m for m in mat["metadataEntries"]}
    assert meta["report"]["mdStr"].startswith("![Pendo usage")
    assert "data:image/png;base64," in meta["report"]["mdStr"]
    # The backfilled days are the only days in the marts: the chart covers exactly them.
    assert meta["days_with_data"]["intValue"] == len(loaded.days)
    assert meta["peak_daily_active_visitors"]["intValue"] > 0
