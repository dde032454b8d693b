"""Pendo changes history after we load it: tags are retroactive (a new, edited or deleted page,
feature or track type changes its rows on every stored day), and raw guide/poll events can
arrive twice. The warehouse follows: the morning's entity load detects changed tags, the
repair sensor's runs reload just those tags' rows over every loaded day, and the weekly sweep
finds what detection missed. Everything runs through Dagster against the emulator."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import pytest

from pendo_assets.automation import (
    REFRESH_SCHEDULE,
    SWEEP_SCHEDULE,
    TAG_REPAIR_SENSOR,
)
from pendo_assets.catalog import SOURCES_BY_NAME, is_epoch_ms_field
from pendo_assets.emulator import EmulatorServer, TagChange
from pendo_assets.emulator.entities import tag_change_id
from pendo_assets.pendo.days import days_between
from pendo_assets.run_tags import RANGE_END_TAG, RANGE_START_TAG

from .conftest import TEST_KEY, day_truth, loaded, small_subscription
from .test_automation import NY

# Left out of `make test-quick`: retagging repairs and the weekly sweep over the whole history.
pytestmark = pytest.mark.slow

FIRST, LAST = date(2026, 10, 1), date(2026, 11, 20)
DAYS = days_between(FIRST, LAST)
TAGGED = ("pageEvents", "featureEvents", "trackEvents")
# Every entity the enriched tables join (so automation has all it waits for).
ENTITY_KEYS = [
    "pendo/accounts",
    "pendo/visitors",
    "pendo/pages",
    "pendo/features",
    "pendo/track_types",
]
EVENT_KEYS = ["pendo/page_events", "pendo/feature_events", "pendo/track_events"]
MORNING = datetime(2026, 11, 21, 6, 0, tzinfo=NY)
BASE = small_subscription()
AT = BASE.history_end_ms  # the tags change after the last day we hold
CREATED_PAGE = TagChange("pages", "create", AT, salt=1)
EDITED_FEATURE = TagChange("features", "edit", AT, index=2, salt=2)
DELETED_PAGE = TagChange("pages", "delete", AT, index=3)
DIRTY_TRACK_TYPE = TagChange("trackTypes", "edit", AT, index=0, dirty=True, salt=3)


def _execute(project, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run what a schedule or sensor asked for, as the daemon would: its assets, their checks,
    its run config and tags."""
    assets = [*(project.defs.assets or []), *(project.defs.asset_checks or [])]
    selection = request.asset_selection or [dg.AssetKey.from_user_string(k) for k in EVENT_KEYS]
    return dg.materialize(
        assets,
        selection=selection,
        resources=project.defs.resources,
        instance=project.instance,
        run_config=request.run_config,
        tags=request.tags,
    )


def _morning(project) -> None:
    """The 06:00 refresh's Pendo part: every entity of a tag kind, then the lookback days."""
    schedule = project.defs.get_schedule_def(REFRESH_SCHEDULE)
    with dg.build_schedule_context(scheduled_execution_time=MORNING) as ctx:
        (request,) = schedule.evaluate_tick(ctx).run_requests
    project.materialize(ENTITY_KEYS)
    project.materialize(EVENT_KEYS, request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG])


def _repair_requests(project, cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
    sensor = project.defs.get_sensor_def(TAG_REPAIR_SENSOR)
    with dg.build_sensor_context(instance=project.instance, cursor=cursor) as ctx:
        result = sensor.evaluate_tick(ctx)
    return list(result.run_requests), result.cursor


def _equal_to_pendo(project, sub, source_name: str) -> list[date]:
    """Days of ``source_name`` whose rows and numEvents differ from the emulator's Pendo."""
    source = SOURCES_BY_NAME[source_name]
    truth = day_truth(sub, source, DAYS)
    ours = loaded(project.duckdb_path, source, DAYS)
    return [d for d in DAYS if truth[d][:2] != ours[d][:2]]


@pytest.fixture()
def retagging(make_project):
    with EmulatorServer(BASE, integration_key=TEST_KEY).start() as emu:
        project = make_project(
            emu,
            PENDO_START_DATE=FIRST.isoformat(),
            PENDO_LOOKBACK_DAYS="3",
            PENDO_SWEEP_WEEKDAY="sunday",
        )
        project.materialize(ENTITY_KEYS)
        project.materialize(EVENT_KEYS, FIRST.isoformat(), LAST.isoformat())
        assert all(not _equal_to_pendo(project, BASE, s) for s in TAGGED)
        yield emu, project


def test_the_morning_brings_every_day_back_to_pendo_after_retroactive_tag_changes(retagging):
    emu, project = retagging
    changed = BASE.replace(
        tag_changes=(CREATED_PAGE, EDITED_FEATURE, DELETED_PAGE, DIRTY_TRACK_TYPE)
    )
    emu.subscription = changed
    # Pendo changed every stored day, not just the lookback window.
    assert all(_equal_to_pendo(project, changed, s) for s in ("pageEvents", "featureEvents"))

    _morning(project)
    # The lookback refresh alone leaves the older days wrong.
    stale = _equal_to_pendo(project, changed, "pageEvents")
    assert stale and max(stale) < LAST - timedelta(days=2)

    detected = project.query(
        "SELECT source, tag_id, change, dirty FROM _state.tag_changes ORDER BY 1, 2"
    )
    assert sorted(detected) == sorted(
        [
            ("pageEvents", tag_change_id(changed, CREATED_PAGE), "new", False),
            ("pageEvents", tag_change_id(changed, DELETED_PAGE), "deleted", False),
            ("featureEvents", tag_change_id(changed, EDITED_FEATURE), "changed", False),
            ("trackEvents", tag_change_id(changed, DIRTY_TRACK_TYPE), "changed", True),
        ]
    )
    # Remembered reconciliations of the changed sources are forgotten.
    remembered = project.query("SELECT DISTINCT source FROM _state.reconciled_days ORDER BY 1")
    assert ("pageEvents",) not in remembered and ("featureEvents",) not in remembered

    emu.stats.reset()
    automation = dg.evaluate_automation_conditions(defs=project.defs, instance=project.instance)
    requests, cursor = _repair_requests(project, None)
    # One run per changed source over every loaded day; the dirty track type waits.
    assert sorted(tuple(r.asset_selection) for r in requests) == [
        (dg.AssetKey(["pendo", "feature_events"]),),
        (dg.AssetKey(["pendo", "page_events"]),),
    ]
    for request in requests:
        assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
            FIRST.isoformat(),
            LAST.isoformat(),
        )
        result = _execute(project, request)
        assert result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["reconciles_with_pendo"].passed
    stats = emu.stats.snapshot()
    # Pendo work scales with the changed tags: only the two reloaded tags' rows were asked
    # (the deleted one needs no question), each over every day, a few windows each.
    assert stats["tag_days"] == {"pageEvents": len(DAYS), "featureEvents": len(DAYS)}
    assert 1 <= stats["tag_requests"]["pageEvents"] <= 4
    assert 1 <= stats["tag_requests"]["featureEvents"] <= 4
    loads = {s: n - stats["tag_requests"].get(s, 0) for s, n in stats["by_source"].items()}
    # Besides the tags' own rows, only reconciliation totals (one per window of 30 days).
    assert all(n <= 2 for n in loads.values()), loads

    assert _equal_to_pendo(project, changed, "pageEvents") == []
    assert _equal_to_pendo(project, changed, "featureEvents") == []
    # Enriched events (and so the marts after them) of every repaired day follow, old days too.
    automation = dg.evaluate_automation_conditions(
        defs=project.defs, instance=project.instance, cursor=automation.cursor
    )
    # (the marts in the same request: Dagster launches them after the enriched days they read).
    for table in ("page_events", "feature_events", "page_daily_metrics", "feature_daily_metrics"):
        requested = automation.get_requested_partitions(dg.AssetKey(["analytics", table]))
        assert {d.isoformat() for d in DAYS} <= requested, table
    deleted = tag_change_id(changed, DELETED_PAGE)
    assert project.query("SELECT count(*) FROM pendo.page_events WHERE page_id = ?", [deleted]) == [
        (0,)
    ]
    new_rows = project.query(
        "SELECT count(*) FROM pendo.page_events WHERE page_id = ?",
        [tag_change_id(changed, CREATED_PAGE)],
    )[0][0]
    assert new_rows == sum(
        1
        for d in DAYS
        for app in changed.app_ids
        for r in changed.event_rows("pageEvents", app, d)
        if r["pageId"] == tag_change_id(changed, CREATED_PAGE)
    ) - _excluded_rows(changed, tag_change_id(changed, CREATED_PAGE))
    repaired = project.query(
        "SELECT source, change, repaired_at IS NOT NULL, rows_after FROM _state.tag_changes "
        "WHERE source = 'pageEvents' ORDER BY change"
    )
    assert repaired == [("pageEvents", "deleted", True, 0), ("pageEvents", "new", True, new_rows)]

    # The track type is still being reprocessed at Pendo: its older days are not final yet.
    assert _equal_to_pendo(project, changed, "trackEvents")
    # Pendo finishes; the next morning's load sees the tag settled and repairs it.
    settled = changed.replace(
        tag_changes=(
            CREATED_PAGE,
            EDITED_FEATURE,
            DELETED_PAGE,
            TagChange("trackTypes", "edit", AT, index=0, dirty=False, salt=3),
        )
    )
    emu.subscription = settled
    _morning(project)
    requests, cursor = _repair_requests(project, cursor)
    assert [tuple(r.asset_selection) for r in requests] == [
        (dg.AssetKey(["pendo", "track_events"]),)
    ]
    assert _execute(project, requests[0]).success
    for source in TAGGED:
        assert _equal_to_pendo(project, settled, source) == [], source
    # Nothing left to repair: the next morning's load asks for nothing more.
    assert project.query("SELECT count(*) FROM _state.tag_changes WHERE repaired_at IS NULL") == [
        (0,)
    ]
    _morning(project)
    assert _repair_requests(project, cursor)[0] == []


def _excluded_rows(sub, page_id: str) -> int:
    from .conftest import excluded_visitors

    skip = excluded_visitors(sub)
    return sum(
        1
        for d in DAYS
        for app in sub.app_ids
        for r in sub.event_rows("pageEvents", app, d)
        if r["pageId"] == page_id and r["visitorId"] in skip
    )


def test_the_weekly_sweep_repairs_slices_changed_behind_our_back(retagging):
    emu, project = retagging
    page = BASE.entities("pages")[0]["id"]
    # Drift that tag detection cannot see: one page's rows of an old day lost, another day's
    # counts wrong, a whole day of all events missing.
    project.execute("DELETE FROM pendo.page_events WHERE day = ? AND page_id = ?", [FIRST, page])
    project.execute(
        "UPDATE pendo.feature_events SET num_events = num_events + 5 WHERE day = ?",
        [FIRST + timedelta(days=10)],
    )
    assert _equal_to_pendo(project, BASE, "pageEvents") == [FIRST]
    schedule = project.defs.get_schedule_def(SWEEP_SCHEDULE)
    assert schedule.cron_schedule == "0 7 * * 0"
    sunday = datetime(2026, 11, 15, 7, 0, tzinfo=NY)
    with dg.build_schedule_context(scheduled_execution_time=sunday) as ctx:
        (request,) = schedule.evaluate_tick(ctx).run_requests
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
        FIRST.isoformat(),
        "2026-11-14",
    )
    emu.stats.reset()
    result = _execute(project, request)
    assert result.success
    for source in TAGGED:
        assert _equal_to_pendo(project, BASE, source) == [], source
    by_key = {
        m.asset_key.to_user_string(): m.metadata
        for m in result.asset_materializations_for_node("load_pendo_events")
        if m.partition == "2026-11-14"
    }
    assert by_key["pendo/page_events"]["sweep_slices_reloaded"].value == 1
    feature_slices = by_key["pendo/feature_events"]["sweep_slices_reloaded"].value
    assert feature_slices == len(
        {
            r["featureId"]
            for app in BASE.app_ids
            for r in BASE.event_rows("featureEvents", app, FIRST + timedelta(days=10))
        }
    )
    assert by_key["pendo/track_events"]["sweep_slices_reloaded"].value == 0
    stats = emu.stats.snapshot()
    # Totals per day and tag in windows of 30 days (45 days: 2 windows per source), then only
    # the differing tags' rows.
    assert stats["tag_requests"].get("trackEvents", 0) == 0
    assert stats["tag_days"]["pageEvents"] == 1


def test_duplicated_raw_events_load_with_pendos_counts_and_the_run_succeeds(make_project):
    sub = small_subscription(duplicate_raw_events=2)
    with EmulatorServer(sub, integration_key=TEST_KEY).start() as emu:
        project = make_project(emu)
        days = days_between("2026-10-05", "2026-10-07")
        project.materialize(["pendo/accounts", "pendo/visitors", "pendo/guides"])
        # Raw, enriched and the guide mart in one run: every blocking check downstream passes.
        result = project.materialize(
            [
                "pendo/guide_events",
                "pendo/poll_events",
                "analytics/guide_events",
                "analytics/poll_events",
                "analytics/guide_daily_metrics",
            ],
            "2026-10-05",
            "2026-10-07",
        )
        assert result.success
        assert all(
            e.passed
            for e in result.get_asset_check_evaluations()
            if e.severity == dg.AssetCheckSeverity.ERROR
        )
        checks = {
            (e.asset_key.to_user_string(), e.check_name): e
            for e in result.get_asset_check_evaluations()
        }
        for key, source in (("pendo/guide_events", "guideEvents"), ("pendo/poll_events", None)):
            assert checks[(key, "reconciles_with_pendo")].passed
            if source:
                identical = checks[(key, "identical_rows")]
                assert not identical.passed
                assert identical.severity == dg.AssetCheckSeverity.WARN
        guide = SOURCES_BY_NAME["guideEvents"]
        assert loaded(project.duckdb_path, guide, days) == {
            d: (n, 0, 0) for d, (n, _, _) in day_truth(sub, guide, days).items()
        }
        # Pendo's server time lands as a timestamp, equal to Pendo's milliseconds.
        (kind,) = project.query(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'guide_events' AND column_name = 'guide_timestamp'"
        )[0]
        assert kind == "TIMESTAMP WITH TIME ZONE"
        got = sorted(
            v
            for (v,) in project.query(
                "SELECT epoch_ms(guide_timestamp) FROM pendo.guide_events WHERE day = ?",
                [days[0]],
            )
        )
        want = sorted(
            r["guideTimestamp"]
            for app in sub.app_ids
            for r in sub.event_rows("guideEvents", app, days[0])
            if r["visitorId"] not in _skip(sub)
        )
        assert got == want


def _skip(sub):
    from .conftest import excluded_visitors

    return excluded_visitors(sub)


@pytest.mark.parametrize(
    ("path", "epoch_ms"),
    [
        ("guideTimestamp", True),
        ("metadata.auto.firstvisit", True),
        ("metadata.custom.renewedAt", True),
        ("lastSeenAt", True),
        ("browserTime", True),
        ("loadTime", False),  # a duration
        ("format", False),
        ("metadata.custom.chat", False),
        ("numEvents", False),
    ],
)
def test_epoch_ms_fields_are_known_by_name(path, epoch_ms):
    assert is_epoch_ms_field(path) is epoch_ms


def test_one_tags_history_and_totals_per_day_and_tag_come_from_pendo_without_dagster(emulator):
    """The plain-Python side: one tag's rows over many days, and Pendo's totals per (day, tag)."""
    from zoneinfo import ZoneInfo

    from pendo_assets.pendo.client import PendoClient
    from pendo_assets.pendo.fetch import FetchOptions
    from pendo_assets.pendo.queries import Scope
    from pendo_assets.pendo.slices import fetch_tag_days, slice_totals

    sub = emulator.subscription
    source = SOURCES_BY_NAME["featureEvents"]
    days = days_between("2026-10-01", "2026-10-12")
    opts = FetchOptions(Scope(apply_exclude_list=False), ZoneInfo(sub.timezone), sub.timezone)
    client = PendoClient(emulator.url, TEST_KEY)
    truth: dict = {}
    for d in days:
        for app in sub.app_ids:
            for r in sub.event_rows("featureEvents", app, d):
                n, e = truth.get((d, r["featureId"]), (0, 0))
                truth[(d, r["featureId"])] = (n + 1, e + r["numEvents"])
    emulator.stats.reset()
    totals, answered, failures = slice_totals(client, source, days, opts)
    assert failures == [] and answered == days
    assert {k: (t.rows, t.num_events) for k, t in totals.items()} == truth
    assert emulator.stats.snapshot()["by_source"] == {"featureEvents": 1}  # 12 days, 1 window
    tag = sorted(truth)[0][1]
    rows = {d: t.num_rows for d, t in fetch_tag_days(client, source, tag, days, opts)}
    assert rows == {d: truth.get((d, tag), (0, 0))[0] for d in days}
