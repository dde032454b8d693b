"""The reconciliation verdict on real numbers, without Pendo, a warehouse or Dagster: only a
final day that differs fails; late rows on young days, duplicated raw events and tags Pendo is
still reprocessing never do."""

from __future__ import annotations

from datetime import date, timedelta

from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.pendo.client import PendoTimeoutError
from pendo_assets.pendo.reconciliation import (
    Outcome,
    ask_again,
    final_days,
    judge,
    settled_days,
)
from pendo_assets.pendo.totals import DayTotals

EVENTS = SOURCES_BY_NAME["events"]
PAGE_EVENTS = SOURCES_BY_NAME["pageEvents"]
GUIDE_EVENTS = SOURCES_BY_NAME["guideEvents"]
TODAY = date(2026, 11, 25)
# 2026-11-14 is 11 days old: final with final_after_days=9; 2026-11-20 is 5 days old: young.
OLD, YOUNG = date(2026, 11, 14), date(2026, 11, 20)


def verdict(source, ours, theirs, again=None, settled=frozenset(), failures=()):
    days = sorted({*ours, *theirs})
    final = final_days(days, TODAY, 9)
    return judge(source, days, ours, theirs, again or {}, final, set(settled), list(failures))


def test_final_and_young_follow_the_days_age():
    days = [TODAY - timedelta(days=n) for n in (11, 10, 9, 5, 0)]
    assert final_days(days, TODAY, 9) == {date(2026, 11, 14), date(2026, 11, 15)}
    assert final_days(days, TODAY, 30) == set()


def test_agreeing_days_pass_and_final_ones_are_remembered():
    v = verdict(
        EVENTS,
        ours={OLD: (1834, 40211), YOUNG: (1790, 39877)},
        theirs={OLD: DayTotals(1834, 40211), YOUNG: DayTotals(1790, 39877)},
    )
    assert v.passed and [d.outcome for d in v.days] == [Outcome.OK, Outcome.OK]
    assert v.to_remember == {OLD: (1834, 40211)}  # young days still move: never remembered
    assert v.checked_final == [OLD] and v.young == [YOUNG]


def test_a_final_day_that_differs_fails_and_is_not_remembered():
    v = verdict(EVENTS, ours={OLD: (1833, 40190)}, theirs={OLD: DayTotals(1834, 40211)})
    assert not v.passed and v.failed_final == [OLD]
    assert v.days[0].outcome is Outcome.FAILED_FINAL
    assert v.to_remember == {}


def test_same_rows_but_other_num_events_differs_for_aggregated_sources():
    v = verdict(EVENTS, ours={OLD: (1834, 40210)}, theirs={OLD: DayTotals(1834, 40211)})
    assert v.failed_final == [OLD]


def test_late_rows_on_a_young_day_warn_and_never_fail():
    # We loaded 1790 rows; Pendo has since processed late events: 1802, then 1811 when asked
    # again. The day is young, so it is a warning with both numbers, and the run passes.
    ours = {YOUNG: (1790, 39877)}
    theirs = {YOUNG: DayTotals(1802, 40050)}
    final = final_days([YOUNG], TODAY, 9)
    assert ask_again(EVENTS, [YOUNG], final, theirs, ours) == [YOUNG]
    v = verdict(EVENTS, ours, theirs, again={YOUNG: DayTotals(1811, 40102)})
    assert v.passed and v.failed_final == []
    (day,) = v.young_changing
    assert (day.ours, day.theirs.rows, day.again.rows) == ((1790, 39877), 1802, 1811)
    assert v.to_remember == {}


def test_a_young_day_that_agrees_when_asked_again_is_ok():
    v = verdict(
        EVENTS,
        ours={YOUNG: (1811, 40102)},
        theirs={YOUNG: DayTotals(1802, 40050)},
        again={YOUNG: DayTotals(1811, 40102)},
    )
    assert v.passed and v.days[0].outcome is Outcome.OK and v.young_changing == []


def test_retagging_in_progress_moves_young_days_only_to_warnings():
    # Pendo is recomputing a page's rules: its young days' page events move between two asks;
    # a final day that agreed before and is unchanged is settled, not asked again.
    ours = {OLD: (412, 3120), YOUNG: (398, 2987)}
    settled = settled_days(PAGE_EVENTS, {OLD}, {OLD: (412, 3120)}, ours)
    assert settled == {OLD}
    v = verdict(
        PAGE_EVENTS,
        ours,
        theirs={OLD: DayTotals(412, 3120), YOUNG: DayTotals(405, 3044)},
        again={YOUNG: DayTotals(409, 3071)},
        settled=settled,
    )
    assert v.passed
    assert [d.outcome for d in v.days] == [Outcome.SETTLED, Outcome.YOUNG_CHANGING]
    assert v.settled == [OLD] and v.to_remember == {}  # settled days are remembered already
    # Once our rows change, the day is no longer settled: it is asked again.
    assert settled_days(PAGE_EVENTS, {OLD}, {OLD: (412, 3120)}, {OLD: (415, 3150)}) == set()


def test_duplicated_raw_events_agree_with_pendos_count():
    # Pendo sent three guide events twice; it counts them twice, and so do we (the grain
    # check names them): rows agree, and per-event sources have no numEvents to compare.
    v = verdict(GUIDE_EVENTS, ours={OLD: (257, None)}, theirs={OLD: DayTotals(257, None)})
    assert v.passed and v.to_remember == {OLD: (257, None)}
    assert verdict(GUIDE_EVENTS, {OLD: (257, None)}, {OLD: DayTotals(254, None)}).failed_final


def test_days_pendo_could_not_answer_warn_with_its_reason():
    timeout = PendoTimeoutError("Pendo timed out")
    v = verdict(
        EVENTS,
        ours={OLD: (1834, 40211), YOUNG: (1790, 39877)},
        theirs={YOUNG: DayTotals(1802, 40050)},
        failures=[([OLD], timeout), ([date(2026, 11, 1)], timeout)],
    )
    # The young day differed and its second question went unanswered too.
    assert v.not_asked == [OLD, YOUNG] and v.passed
    assert v.unanswered == [([OLD], timeout)]  # failures of other days are not this verdict's
    assert v.checked_final == [] and v.to_remember == {}


def test_a_day_without_rows_compares_as_zero():
    v = verdict(EVENTS, ours={}, theirs={OLD: DayTotals(0, 0)})
    assert v.passed and v.days[0].ours == (0, 0) and v.to_remember == {OLD: (0, 0)}
    v = verdict(EVENTS, ours={}, theirs={OLD: DayTotals(12, 30)})
    assert v.failed_final == [OLD]
