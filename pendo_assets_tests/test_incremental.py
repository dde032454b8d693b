"""Incremental entity refresh through Dagster against the emulator: only changed rows are
fetched (counted at the emulator), the table ends equal to a full refresh's, history versions
the changes, and only a full refresh closes deleted visitors."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from pendo_assets.assets.raw import refresh_plan
from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.emulator import EmulatorServer, EntityEdit, Faults
from pendo_assets.settings import SettingsError, load_settings
from pendo_assets_tests.conftest import TEST_KEY, small_subscription

# Left out of `make test-quick`: full and incremental entity refreshes of a large emulated
# subscription.
pytestmark = pytest.mark.slow

KEYS = [
    "pendo/accounts",
    "pendo/visitors",
    "analytics/account_history",
    "analytics/visitor_history",
]
MARGIN_MIN = 60


@pytest.fixture()
def server():
    sub = small_subscription(n_visitors=400)
    srv = EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()).start()
    try:
        yield srv
    finally:
        srv.stop()


def run(project, full: bool = False, as_of: str = "2026-11-21T11:00:00+00:00"):
    ops = {
        "load_pendo_entities": {"config": {"full_refresh": full}},
        "analytics__account_history": {"config": {"as_of": as_of}},
        "analytics__visitor_history": {"config": {"as_of": as_of}},
    }
    result = dg.materialize(
        list(project.defs.assets or []),
        selection=[dg.AssetKey.from_user_string(k) for k in KEYS],
        resources=project.defs.resources,
        instance=project.instance,
        run_config={"ops": ops},
    )
    assert result.success
    return result


def visitors_metadata(result) -> dict:
    (mat,) = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["pendo", "visitors"])
    ]
    return mat.metadata


def full_flag(result) -> bool:
    return visitors_metadata(result)["full_refresh"].value


def test_incremental_fetches_only_changed_rows_and_ends_like_a_full_refresh(server, make_project):
    project = make_project(server, PENDO_FULL_REFRESH_WEEKDAY="never")
    base = server.subscription
    assert full_flag(run(project, as_of="2026-11-21T11:00:00+00:00"))  # first load is full
    visitors = base.entities("visitors")
    watermark = max(v["metadata"]["auto"]["lastupdated"] for v in visitors)
    edited_at = base.history_end_ms + 3_600_000
    server.subscription = base.replace(
        edits=(EntityEdit("visitors", 0.05, edited_at, "metadata.custom.plan", "enterprise"),)
    )
    since = watermark - MARGIN_MIN * 60_000
    expected = [
        v
        for v in server.subscription.entities("visitors")
        if v["metadata"]["auto"]["lastupdated"] >= since
    ]
    changed = [v for v in expected if v["metadata"]["auto"]["lastupdated"] == edited_at]
    assert 5 <= len(changed) < len(expected) + 1 and len(expected) < len(visitors) // 5

    server.stats.reset()
    result = run(project, as_of="2026-11-22T11:00:00+00:00")
    assert not full_flag(result)
    # Only the changed visitors (and the safety margin's) crossed the wire for visitors.
    assert visitors_metadata(result)["pendo_rows"].value == len(expected)
    # Counted at the emulator too: accounts are incremental as well (none changed, only the
    # margin's), so every row served is one the filter lets through.
    accounts = base.entities("accounts")
    acc_since = max(a["metadata"]["auto"]["lastupdated"] for a in accounts) - MARGIN_MIN * 60_000
    acc_expected = [a for a in accounts if a["metadata"]["auto"]["lastupdated"] >= acc_since]
    assert server.stats.rows == len(expected) + len(acc_expected)
    assert server.stats.rows < len(visitors) // 5
    incremental = project.query("SELECT * FROM pendo.visitors ORDER BY visitor_id")
    assert project.query(
        "SELECT count(*) FROM pendo.visitors WHERE metadata_custom_plan = 'enterprise' "
        "AND epoch_ms(metadata_auto_lastupdated) = ?",
        [edited_at],
    ) == [(len(changed),)]
    # History: one new version per changed visitor, validity chained.
    assert project.query(
        "SELECT count(*) FROM analytics.visitor_history WHERE NOT is_current "
        "AND valid_to = TIMESTAMPTZ '2026-11-22 11:00:00+00'"
    ) == [(len(changed),)]
    assert project.query(
        "SELECT count(*), count(DISTINCT visitor_id) FROM analytics.visitor_history "
        "WHERE is_current"
    ) == [(len(visitors), len(visitors))]

    run(project, full=True, as_of="2026-11-23T11:00:00+00:00")
    assert project.query("SELECT * FROM pendo.visitors ORDER BY visitor_id") == incremental
    # Same data again: no new version.
    assert project.query("SELECT count(*) FROM analytics.visitor_history") == [
        (len(visitors) + len(changed),)
    ]


def test_a_deleted_visitor_is_closed_only_by_a_full_refresh(server, make_project):
    project = make_project(server, PENDO_FULL_REFRESH_WEEKDAY="never")
    base = server.subscription
    run(project, as_of="2026-11-21T11:00:00+00:00")
    n = len(base.entities("visitors"))
    server.subscription = base.replace(
        edits=(EntityEdit("visitors", 0.03, base.history_end_ms, delete=True),)
    )
    gone = n - len(server.subscription.entities("visitors"))
    assert gone > 0
    assert not full_flag(run(project, as_of="2026-11-22T11:00:00+00:00"))
    assert project.query("SELECT count(*) FROM pendo.visitors") == [(n,)]
    assert project.query("SELECT count(*) FROM analytics.visitor_history WHERE is_deleted") == [
        (0,)
    ]
    assert full_flag(run(project, full=True, as_of="2026-11-23T11:00:00+00:00"))
    assert project.query("SELECT count(*) FROM pendo.visitors") == [(n - gone,)]
    assert project.query(
        "SELECT count(*) FROM analytics.visitor_history WHERE is_deleted AND is_current "
        "AND valid_from = TIMESTAMPTZ '2026-11-23 11:00:00+00'"
    ) == [(gone,)]


def test_the_weekly_full_refresh_day_and_the_run_config_choose_a_full_load():
    visitors = SOURCES_BY_NAME["visitors"]
    sunday = datetime(2026, 11, 22, 6, tzinfo=UTC)  # a Sunday
    monday = datetime(2026, 11, 23, 6, tzinfo=UTC)
    settings = load_settings({"PENDO_FULL_REFRESH_WEEKDAY": "sunday"}, today=monday.date())
    assert refresh_plan(visitors, settings, 10_000_000, False, sunday).full
    plan = refresh_plan(visitors, settings, 10_000_000, False, monday)
    assert (plan.full, plan.since_ms) == (False, 10_000_000 - MARGIN_MIN * 60_000)
    assert refresh_plan(visitors, settings, 10_000_000, True, monday).full
    assert refresh_plan(visitors, settings, None, False, monday).reason == "first load"
    assert refresh_plan(SOURCES_BY_NAME["pages"], settings, None, False, monday).full
    never = load_settings({"PENDO_FULL_REFRESH_WEEKDAY": "never"}, today=monday.date())
    assert not refresh_plan(visitors, never, 10_000_000, False, sunday).full


def test_a_bad_full_refresh_weekday_fails_at_load_naming_the_variable():
    with pytest.raises(SettingsError, match="PENDO_FULL_REFRESH_WEEKDAY"):
        load_settings({"PENDO_FULL_REFRESH_WEEKDAY": "someday"})
