"""What a new Pendo event source needs: one catalog entry, and nothing else.

A throw-away event source shaped like ``events`` is declared in the catalog (monkeypatched) and
every place that serves sources must pick it up: the raw and enriched assets with their column
schemas, the asset checks (reconciliation with Pendo included), the emulator's answers, a real
materialization against the emulator, the docs' source table and the bench's source lists.

What a new source needs besides the ``EventSource(...)`` entry, precisely:
- ``emulator``: an existing generator when the rows have the shape of a source we have (this
  one reuses ``events``' "activity"); otherwise a new generator in
  ``pendo_assets/emulator/events.py`` (``entities.py`` for an entity).
- The generated tables of docs/warehouse.md: ``python -m pendo_assets.docs`` rewrites them
  (``test_docs.py`` fails until then).
- Marts and the usage report read the tables their SQL names (``marts/models.py``): a new source
  reaches them only where an analyst writes it into a mart, by design.

Every module binding of the catalog's source lists is patched, so a module that copies the list
at import time (instead of reading the catalog when it builds) is exactly what this test finds.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import date

import dagster as dg
import pytest

import bench.run
import pendo_assets.definitions  # noqa: F401  (every module that reads the catalog is loaded)
from pendo_assets import catalog
from pendo_assets.assets.report import FUNNEL
from pendo_assets.docs import sources_table
from pendo_assets.emulator.entities import ENTITY_GENERATORS
from pendo_assets.emulator.events import EVENT_GENERATORS
from pendo_assets_tests.conftest import day_truth, loaded

# Left out of `make test-quick`: Dagster runs against the emulator.
pytestmark = pytest.mark.slow

EXTRA = dataclasses.replace(
    catalog.SOURCES_BY_NAME["events"],
    name="extraEvents",
    table="extra_events",
    description="One row per visitor and day of a throw-away source (a test's).",
)


def declare(monkeypatch, source: catalog.EventSource) -> None:
    """Add ``source`` to the catalog for this test, wherever a module holds the catalog's lists."""
    lists = {"SOURCES": catalog.SOURCES, "EVENTS": catalog.EVENTS}
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith(("pendo_assets", "bench")):
            continue
        for name, old in lists.items():
            if getattr(module, name, None) is old:
                monkeypatch.setattr(module, name, (*old, source))
    monkeypatch.setitem(catalog.SOURCES_BY_NAME, source.name, source)
    monkeypatch.setitem(catalog.SOURCES_BY_TABLE, source.table, source)


def test_a_new_event_source_needs_only_its_catalog_entry(monkeypatch, emulator, make_project):
    # Every declared source names a generator the emulator has.
    for s in catalog.SOURCES:
        generators = ENTITY_GENERATORS if s.kind == "entity" else EVENT_GENERATORS
        assert s.emulator in generators, s.name
    # The report's guide funnel is the catalog's, in its order.
    assert [label for label, _ in FUNNEL] == list(catalog.GUIDE_FUNNEL.values())
    assert set(catalog.GUIDE_FUNNEL) <= set(catalog.GUIDE_EVENT_TYPES)

    declare(monkeypatch, EXTRA)
    raw, enriched = (
        dg.AssetKey(["pendo", "extra_events"]),
        dg.AssetKey(["analytics", "extra_events"]),
    )
    project = make_project(emulator)
    graph = project.defs.resolve_asset_graph()
    assert EXTRA.description in graph.get(raw).description
    assert "`pendo.extra_events`" in graph.get(enriched).description
    for key in (raw, enriched):
        columns = {c.name for c in graph.get(key).metadata["dagster/column_schema"].columns}
        assert {"visitor_id", "account_id", "day", "num_events"} <= columns
    assert {"account_name", "visitor_email"} <= {
        c.name for c in graph.get(enriched).metadata["dagster/column_schema"].columns
    }
    # The same checks as the source it is shaped like.
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == raw}
    like = {k.name for k in graph.asset_check_keys if k.asset_key.path == ["pendo", "events"]}
    assert checks == like and "reconciles_with_pendo" in checks

    # Loaded for real from the emulator, checked against Pendo's totals, names joined in.
    days = [date(2026, 10, 5), date(2026, 10, 6)]
    assert project.materialize(["pendo/accounts", "pendo/visitors"]).success  # names joined
    keys = [raw.to_user_string(), enriched.to_user_string()]
    result = project.materialize(keys, *(d.isoformat() for d in days))
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    own = {e.check_name: e.passed for e in evaluations if e.asset_key == raw}
    assert own == {**dict.fromkeys(checks, True), "is_fresh": False}
    # Freshness watches it too (stale here: two days of an eleven-week history are loaded).
    assert {(e.asset_key, e.check_name) for e in evaluations if e.check_name == "is_fresh"} == {
        (raw, "is_fresh"),
        (enriched, "is_fresh"),
    }
    truth = day_truth(emulator.subscription, EXTRA, days)
    assert all(n > 0 for n, _, _ in truth.values())
    assert loaded(project.duckdb_path, EXTRA, days) == truth
    named = project.query(
        "SELECT count(*) FILTER (WHERE account_name IS NOT NULL), count(*) "
        "FROM analytics.extra_events WHERE account_id <> ''"
    )[0]
    assert named[0] == named[1] > 0

    # The docs' source table and the bench's source lists.
    assert "| `extraEvents` | `pendo.extra_events`, `analytics.extra_events` | daily" in (
        sources_table()
    )
    assert EXTRA in bench.run.backfill_sources()
    assert "extraEvents" in bench.run.ingest_sources()


@pytest.fixture(autouse=True)
def _forget_cached_days():
    """The emulator caches generated days by source name; the throw-away source's go with it."""
    yield
    from pendo_assets.emulator import events

    events.day_rows.cache_clear()
