"""A run over several raw sources fetches them all at once, through the run's one bound."""

import threading
import time
from datetime import date, timedelta

import dagster as dg

from pendo_assets.catalog import EVENTS, SOURCES_BY_NAME
from pendo_assets_tests.conftest import day_truth, loaded, pendo_at

FIRST = date(2026, 10, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(3)]
AGGREGATED = [s for s in EVENTS if not s.per_event]


def _record_sources(monkeypatch, module, name: str) -> list[str]:
    """Wrap ``module.name(client, source, ...)``; the list of sources it is called for."""
    calls: list[str] = []
    real = getattr(module, name)

    def recording(client, source, *args):
        calls.append(source.name)
        return real(client, source, *args)

    monkeypatch.setattr(module, name, recording)
    return calls


def _materializations(result) -> dict[str, dict]:
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def test_sources_are_fetched_together_under_one_bound(fresh_emulator, subscription, make_project):
    # 3 days a day at a time: one source alone never has more than 3 requests to make.
    fresh_emulator.faults.update(latency_base_ms=150)
    project = make_project(fresh_emulator, PENDO_MAX_CONCURRENCY="4", PENDO_DAYS_PER_REQUEST="1")
    keys = [f"pendo/{s.table}" for s in AGGREGATED]
    result = project.materialize(keys, str(DAYS[0]), str(DAYS[-1]))
    assert result.success
    stats = fresh_emulator.stats.snapshot()
    # Sequential steps would peak at 3; together they reach the bound and never pass it.
    assert stats["max_in_flight"] == 4
    for s in AGGREGATED:
        assert loaded(project.duckdb_path, s, DAYS) == day_truth(subscription, s, DAYS), s.name
    # Each source's metadata counts its own requests, and together they are all of them.
    metadata = _materializations(result)
    per_source = {
        k: m["pendo_requests"].value for k, m in metadata.items() if "pendo_requests" in m
    }
    assert set(per_source) == set(keys)
    assert all(n == 3 for n in per_source.values()), per_source
    # The loads' requests (the checks' totals queries come after, in their own steps).
    assert sum(per_source.values()) == 4 * 3


def test_a_subset_runs_only_the_sources_asked_for(fresh_emulator, make_project):
    project = make_project(fresh_emulator)
    result = project.materialize(["pendo/page_events"], str(DAYS[0]))
    assert result.success
    assert set(_materializations(result)) == {"pendo/page_events"}
    asked = fresh_emulator.stats.snapshot()["by_source"]
    assert set(asked) == {"pageEvents"}  # the load and its reconciliation, nothing else
    assert SOURCES_BY_NAME["pageEvents"].table == "page_events"


def test_a_failing_source_lets_the_others_land_then_fails_the_step_naming_it(
    fresh_emulator, subscription, make_project
):
    project = make_project(fresh_emulator)
    assert project.materialize(["pendo/accounts"]).success  # the key is known to work
    fresh_emulator.faults.update(forbidden_sources=["featureEvents", "trackEvents"])
    keys = [f"pendo/{s.table}" for s in AGGREGATED]
    result = project.materialize(keys, str(DAYS[0]), raise_on_error=False)
    assert not result.success
    assert set(_materializations(result)) == {"pendo/events", "pendo/page_events"}
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    text = str(failure.step_failure_data.error)
    assert "2 of 4 Pendo sources failed (featureEvents, trackEvents)" in text
    assert "may not read featureEvents (HTTP 403)" in text
    for s in (SOURCES_BY_NAME["events"], SOURCES_BY_NAME["pageEvents"]):
        assert loaded(project.duckdb_path, s, DAYS[:1]) == day_truth(subscription, s, DAYS[:1])


def _checks(result, key: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == key
    }


def test_final_days_that_agreed_are_not_asked_again_while_unchanged(
    fresh_emulator, subscription, make_project
):
    """Days of early October are final at the suite's clock (2026-11-25)."""
    project = make_project(fresh_emulator, PENDO_DAYS_PER_REQUEST="1")
    first, last = str(DAYS[0]), str(DAYS[-1])
    assert project.materialize(["pendo/page_events"], first, last).success
    loads_and_totals = fresh_emulator.stats.snapshot()["by_source"]["pageEvents"]
    assert loads_and_totals == 3 + 3  # 3 one-day loads, 3 one-day totals
    again = project.materialize(["pendo/page_events"], first, last)
    checks = _checks(again, "pendo/page_events")
    assert checks["reconciles_with_pendo"].passed
    assert checks["reconciles_with_pendo"].metadata["days_not_asked_again"].value == 3
    # The second run asked Pendo only for the loads: the three final days were settled.
    assert fresh_emulator.stats.snapshot()["by_source"]["pageEvents"] == loads_and_totals + 3
    # A day whose rows changed in the warehouse is asked again, and the difference found.
    project_rows = project.query("SELECT count(*) FROM pendo.page_events WHERE day = ?", [DAYS[1]])[
        0
    ][0]
    assert project_rows > 1
    project.execute(
        "DELETE FROM pendo.page_events WHERE rowid IN "
        "(SELECT rowid FROM pendo.page_events WHERE day = ? LIMIT 1)",
        [DAYS[1]],
    )
    checked = project.run_checks("pendo/page_events", first, last)
    result = _checks(checked, "pendo/page_events")["reconciles_with_pendo"]
    assert not result.passed
    assert result.metadata["failed_days"].value == [str(DAYS[1])]
    assert result.metadata["days_not_asked_again"].value == 2


def test_the_load_asks_pendos_totals_so_the_checks_find_them_ready(
    fresh_emulator, make_project, monkeypatch
):
    from pendo_assets.checks import reconcile

    asked_by_checks = _record_sources(monkeypatch, reconcile, "try_day_totals")
    project = make_project(fresh_emulator, PENDO_DAYS_PER_REQUEST="1")
    keys = [f"pendo/{s.table}" for s in AGGREGATED]
    result = project.materialize(keys, str(DAYS[0]), str(DAYS[-1]))
    assert result.success
    for key in keys:
        checks = _checks(result, key)
        assert checks["reconciles_with_pendo"].passed, key
        assert checks["reconciles_with_pendo"].metadata["days_checked"].value == 3
    assert asked_by_checks == []  # every check found its totals asked during the load
    by_source = fresh_emulator.stats.snapshot()["by_source"]
    assert all(by_source[s.name] == 3 + 3 for s in AGGREGATED), by_source  # loads + totals


def test_totals_asked_during_the_load_are_asked_in_the_order_the_checks_run(
    fresh_emulator, monkeypatch
):
    # The checks run one after another, sorted by name (pendo_<table>_checks); if every
    # source's totals were asked side by side, all would finish together at the end and each
    # check would wait for it. A window already taken is not given back.
    from pendo_assets import resources
    from pendo_assets.pendo.totals import try_day_totals

    started = _record_sources(monkeypatch, resources, "ask_window")
    fresh_emulator.faults.update(latency_base_ms=50)
    pendo = pendo_at(fresh_emulator.url, max_concurrency=1, days_per_request=1)
    days = [FIRST + timedelta(days=i) for i in range(4)]
    # page_events is checked after feature_events.
    later, sooner = SOURCES_BY_NAME["pageEvents"], SOURCES_BY_NAME["featureEvents"]
    try:
        with pendo.client._slots.hold():  # a load holds the only slot meanwhile
            pendo.prefetch_totals(later, days)
            _wait_for(lambda: started == ["pageEvents"])  # its first window is taken
            pendo.prefetch_totals(sooner, days)
        got_sooner = pendo.prefetched_totals(sooner, days)
        got_later = pendo.prefetched_totals(later, days)
        assert started == ["pageEvents"] + ["featureEvents"] * 4 + ["pageEvents"] * 3
        for source, got in ((later, got_later), (sooner, got_sooner)):
            assert got == try_day_totals(pendo.client, source, days, pendo.options)
            assert sum(t.rows for t in got[0].values()) > 0
        assert pendo.prefetched_totals(later, days) is None  # handed out once
    finally:
        pendo.teardown_after_execution(None)


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_freed_slot_goes_to_loads_before_background_totals_and_by_rank():
    from pendo_assets.pendo.client import _Slots

    slots = _Slots(1)
    got: list[str] = []

    def ask(name: str, priority: tuple) -> None:
        with slots.hold(priority):
            got.append(name)

    waiting = [
        ("totals of page_events", (2, "page_events")),
        ("totals of events", (2, "events")),
        ("load of page_events", (1, "page_events")),
        ("load of events", (1, "events")),
        ("a check's own question", (0,)),
    ]
    threads = [threading.Thread(target=ask, args=w) for w in waiting]
    with slots.hold():  # every slot taken: all of them wait
        for n, t in enumerate(threads, 1):
            t.start()
            _wait_for(lambda n=n: len(slots._waiting) == n)
    for t in threads:
        t.join(10)
    assert got == [
        "a check's own question",
        "load of events",
        "load of page_events",
        "totals of events",
        "totals of page_events",
    ]


def test_slots_are_handed_over_never_exceeded_and_all_given_back():
    from pendo_assets.pendo.client import _Slots

    slots = _Slots(3)
    lock = threading.Lock()
    open_now, most, done = 0, 0, []

    def ask(n: int) -> None:
        nonlocal open_now, most
        with slots.hold((n % 3, n)):
            with lock:
                open_now += 1
                most = max(most, open_now)
            time.sleep(0.002)
            with lock:
                open_now -= 1
        done.append(n)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(done) == list(range(40))
    assert most == 3
    assert slots._used == 0 and slots._waiting == []


def test_a_ranked_source_takes_the_slots_before_a_lower_ranked_one(fresh_emulator, monkeypatch):
    # Event loads are ranked by table, as their checks run: while the first source still has
    # windows to ask, the second one waits, so the first is written while the second loads.
    from pendo_assets.pendo.client import PendoClient
    from pendo_assets.pendo.fetch import fetch_days

    granted: list[str] = []  # the source of each request, in the order sent
    real = PendoClient._send

    def send(self, headers, body, what, rest=None):
        granted.append(what.split(" ")[0])
        return real(self, headers, body, what, rest)

    monkeypatch.setattr(PendoClient, "_send", send)
    fresh_emulator.faults.update(latency_base_ms=200)
    days = [FIRST + timedelta(days=i) for i in range(6)]
    first, second = SOURCES_BY_NAME["featureEvents"], SOURCES_BY_NAME["pageEvents"]
    for ranked in (True, False):
        granted.clear()
        got: dict[str, list] = {}
        pendo = pendo_at(fresh_emulator.url, max_concurrency=2, days_per_request=1)

        def load(source, pendo=pendo, got=got, ranked=ranked) -> None:
            rank = source.table if ranked else None
            got[source.name] = list(
                fetch_days(pendo.client, source, days, pendo.options, rank=rank)
            )

        try:
            threads = [threading.Thread(target=load, args=(s,)) for s in (first, second)]
            threads[0].start()
            _wait_for(lambda: len(granted) >= 2)  # its one-day probe answered: it asks windows
            threads[1].start()
            for t in threads:
                t.join(30)
        finally:
            pendo.teardown_after_execution(None)
        assert sorted(granted) == ["featureEvents"] * 6 + ["pageEvents"] * 6
        for source in (first, second):
            assert sorted(d for d, _ in got[source.name]) == days
        if ranked:
            # Only the probe and a window freed while the first had none waiting go between.
            assert granted[-5:] == ["pageEvents"] * 5, granted
        else:
            # Sharing the slots, the first source ends among the second's last windows.
            assert "featureEvents" in granted[-5:], granted
