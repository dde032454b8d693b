"""The Definitions load, and the asset graph has the shape the catalog declares."""

import subprocess
import sys

import dagster as dg
from dagster.components.definitions import LazyDefinitions

from pendo_assets.catalog import ENTITIES, EVENTS, SOURCES
from pendo_assets.definitions import build_definitions, defs
from pendo_assets.settings import load_settings


def graph(d: dg.Definitions):
    return d.resolve_asset_graph()


def test_module_level_defs_load():
    # Dagster calls the decorated loader (`-m pendo_assets.definitions`); importing builds nothing.
    assert isinstance(defs, LazyDefinitions)
    keys = {k.to_user_string() for k in graph(defs()).get_all_asset_keys()}
    for s in SOURCES:
        assert f"pendo/{s.table}" in keys
    for s in EVENTS:
        assert f"analytics/{s.table}" in keys


def test_asset_graph_snapshot(tmp_path):
    env = {
        "PENDO_INTEGRATION_KEY": "k",
        "PENDO_START_DATE": "2026-01-01",
        "PENDO_TIMEZONE": "Europe/Berlin",
        "PENDO_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
    }
    d = build_definitions(load_settings(env))
    g = graph(d)
    for s in ENTITIES:
        node = g.get(dg.AssetKey(["pendo", s.table]))
        assert node.partitions_def is None
        assert node.group_name == "pendo_entities"
        assert set(node.kinds) >= {"pendo", "duckdb"}
        assert "one row per" in (node.description or "").lower()
    for s in EVENTS:
        raw = g.get(dg.AssetKey(["pendo", s.table]))
        enriched = g.get(dg.AssetKey(["analytics", s.table]))
        assert isinstance(raw.partitions_def, dg.DailyPartitionsDefinition)
        assert raw.partitions_def.timezone == "Europe/Berlin"
        assert raw.partitions_def.start.date().isoformat() == "2026-01-01"
        assert raw.backfill_policy == dg.BackfillPolicy.single_run()
        assert raw.group_name == "pendo_raw_events"
        assert enriched.partitions_def == raw.partitions_def
        assert raw.key in enriched.parent_keys
        for lk in s.lookups:
            entity = next(e for e in ENTITIES if e.table == lk.entity)
            assert dg.AssetKey(["pendo", entity.table]) in enriched.parent_keys
        schema = raw.metadata["dagster/column_schema"]
        names = {c.name for c in schema.columns}
        assert {"day", "visitor_id", "app_id"} <= names


def test_key_is_an_env_var_not_a_value(tmp_path, monkeypatch):
    monkeypatch.setenv("PENDO_INTEGRATION_KEY", "secret-value-123")
    env = {
        "PENDO_INTEGRATION_KEY": "secret-value-123",
        "PENDO_START_DATE": "2026-01-01",
        "PENDO_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
    }
    d = build_definitions(load_settings(env))
    pendo = d.resources["pendo"]
    assert isinstance(pendo.integration_key, dg.EnvVar)
    assert "secret-value-123" not in repr(pendo)


def test_runs_execute_in_one_process():
    job = defs().resolve_implicit_global_asset_job_def()
    assert job.executor_def == dg.in_process_executor


def test_loading_the_project_is_lean_and_leaves_its_objects_out_of_garbage_collection():
    # A fresh process: this one's freeze count depends on what other tests imported first.
    code = (
        "import gc, sys; before = gc.get_freeze_count(); "
        "from pendo_assets.definitions import defs; imported = gc.get_freeze_count(); defs(); "
        "loaded = gc.get_freeze_count(); gc.unfreeze(); defs(); "
        "print('pandas' in sys.modules, before, imported, loaded, gc.get_freeze_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    pandas, before, imported, after, reloaded = out[-5], *map(int, out[-4:])
    assert pandas == "False"  # only a DataFrame input needs it (0.2 s of every start)
    assert before == imported == 0  # importing the module builds nothing
    assert reloaded == 0  # once per process: a reload does not freeze the last load's garbage
    assert after > 100_000  # Dagster, pyarrow and the definitions


def test_run_tag_names_are_the_ones_runs_carry():
    # Dagster's own names (through pendo_assets.dagster_internals); users and the UI see these
    # strings, so an upgrade that renamed them would fail here.
    from pendo_assets import run_tags

    assert run_tags.PARTITION_TAG == "dagster/partition"
    assert run_tags.RANGE_START_TAG == "dagster/asset_partition_range_start"
    assert run_tags.RANGE_END_TAG == "dagster/asset_partition_range_end"


def test_side_tables_show_in_the_graph_downstream_of_their_writers(tmp_path):
    settings = load_settings({"PENDO_DEMO": "1", "PENDO_DUCKDB_PATH": str(tmp_path / "w.duckdb")})
    g = graph(build_definitions(settings))
    state = {k.to_user_string(): g.get(k) for k in g.get_all_asset_keys()}
    state = {k: n for k, n in state.items() if not n.is_materializable}
    first_seen = {
        f"analytics/{s}_{who}first_seen"
        for s in ("feature", "page", "guide")
        for who in ("", "account_")
    }
    assert set(state) == {
        "_state/reconciled_days",
        "_state/tag_changes",
        "analytics/first_seen_days",
        *first_seen,
    }
    for key, node in state.items():
        assert node.is_external and node.group_name == "warehouse_state"
        assert "not materialized on its own" in node.description, key
        assert node.metadata["dagster/table_name"] == key.replace("/", ".")
    columns = {
        k: [(c.name, c.type) for c in n.metadata["dagster/column_schema"].columns]
        for k, n in state.items()
    }
    assert columns["_state/reconciled_days"] == [
        ("source", "VARCHAR"),
        ("day", "DATE"),
        ("rows", "BIGINT"),
        ("num_events", "BIGINT"),
    ]
    assert columns["analytics/feature_account_first_seen"] == [
        ("account_id", "VARCHAR"),
        ("feature_id", "VARCHAR"),
        ("first_day", "DATE"),
    ]
    assert [c for c, _ in columns["_state/tag_changes"]][:3] == ["source", "tag_id", "change"]
    parents = {k: {p.to_user_string() for p in n.parent_keys} for k, n in state.items()}
    assert parents["_state/reconciled_days"] == {f"pendo/{s.table}" for s in EVENTS}
    assert parents["_state/tag_changes"] == {
        "pendo/pages",
        "pendo/features",
        "pendo/track_types",
        "pendo/page_events",
        "pendo/feature_events",
        "pendo/track_events",
    }
    assert parents["analytics/page_first_seen"] == {"analytics/page_daily_metrics"}
    assert parents["analytics/first_seen_days"] == {
        f"analytics/{s}_daily_metrics" for s in ("feature", "page", "guide")
    }
