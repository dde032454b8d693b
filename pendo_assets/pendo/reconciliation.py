"""The verdict of reconciling an event source's days with Pendo's own totals, as pure functions
of the numbers: ours, Pendo's, and which days are final. Plain Python; no I/O, no Dagster.

Pendo's data is live: events are processed hourly, some arrive hours or days late, tags are
reprocessed retroactively, and a day is final only after ``final_after_days``. So only a
*final* day that differs is certainly wrong (``Verdict.failed_final``); a *young* day that
differs is asked once more and, when it still differs, is a warning (``Verdict.young_changing``);
a day Pendo could not answer is a warning too (``Verdict.not_asked``). Final days that agreed
are remembered with our totals (``Verdict.to_remember``); while ours stay the same, they are
settled and not asked again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum

from pendo_assets.catalog import EventSource
from pendo_assets.pendo.totals import DayTotals, Failures

# (rows, sum of numEvents) of one day as the warehouse holds it; numEvents is None for
# per-event sources.
Ours = tuple[int, int | None]


class Outcome(Enum):
    """What one day came to; the value is how the check's table says it."""

    OK = "ok"
    SETTLED = "ok (agreed before, unchanged: not asked again)"
    FAILED_FINAL = "DIFFERS (final)"
    YOUNG_CHANGING = "differs (young, still changing)"
    NOT_ASKED = "could not ask Pendo"


@dataclass(frozen=True)
class DayVerdict:
    day: date
    final: bool
    ours: Ours
    theirs: DayTotals | None  # Pendo's answer (remembered, for a settled day); None: no answer
    again: DayTotals | None  # Pendo's second answer, for a young day that differed at first
    outcome: Outcome


@dataclass(frozen=True)
class Verdict:
    days: tuple[DayVerdict, ...]
    # Pendo's failures to answer that left days unreconciled: (days asked, error).
    unanswered: Failures
    # Final days that agreed with Pendo (asked now, not settled before), with our totals.
    to_remember: dict[date, Ours]

    def _with(self, outcome: Outcome) -> list[date]:
        return [d.day for d in self.days if d.outcome is outcome]

    @property
    def failed_final(self) -> list[date]:
        return self._with(Outcome.FAILED_FINAL)

    @property
    def young_changing(self) -> list[DayVerdict]:
        return [d for d in self.days if d.outcome is Outcome.YOUNG_CHANGING]

    @property
    def not_asked(self) -> list[date]:
        return self._with(Outcome.NOT_ASKED)

    @property
    def settled(self) -> list[date]:
        return self._with(Outcome.SETTLED)

    @property
    def checked_final(self) -> list[date]:
        """Final days compared with Pendo's totals (asked now or settled before)."""
        return [d.day for d in self.days if d.final and d.theirs is not None]

    @property
    def young(self) -> list[date]:
        return [d.day for d in self.days if not d.final]

    @property
    def passed(self) -> bool:
        """No final day differs: the only verdict that may fail a run."""
        return not self.failed_final


def empty(source: EventSource) -> Ours:
    """Our totals of a day without rows."""
    return (0, None if source.per_event else 0)


def final_days(days: Sequence[date], today: date, final_after_days: int) -> set[date]:
    """The days Pendo no longer changes: older than ``final_after_days`` on ``today``."""
    return {d for d in days if (today - d).days > final_after_days}


def settled_days(
    source: EventSource,
    final: set[date],
    remembered: Mapping[date, tuple],
    ours: Mapping[date, Ours],
) -> set[date]:
    """Final days that agreed before and whose totals are unchanged: not asked again."""
    none = empty(source)
    return {d for d in final if d in remembered and tuple(remembered[d]) == ours.get(d, none)}


def _differs(source: EventSource, theirs: DayTotals, ours: Ours) -> bool:
    return not theirs.agrees(source, ours)


def ask_again(
    source: EventSource,
    days: Sequence[date],
    final: set[date],
    theirs: Mapping[date, DayTotals],
    ours: Mapping[date, Ours],
) -> list[date]:
    """Young days that differ from Pendo's first answer: they still move at Pendo, so they
    are asked once more before they are called different."""
    none = empty(source)
    return [
        d
        for d in days
        if d not in final and d in theirs and _differs(source, theirs[d], ours.get(d, none))
    ]


def judge(
    source: EventSource,
    days: Sequence[date],
    ours: Mapping[date, Ours],
    theirs: Mapping[date, DayTotals],
    again: Mapping[date, DayTotals],
    final: set[date],
    settled: set[date],
    failures: Failures = (),
) -> Verdict:
    """The verdict on ``days``: ``theirs`` are Pendo's first answers (settled days' remembered
    totals included), ``again`` its answers for the days ``ask_again`` named, ``failures`` the
    windows Pendo could not answer."""
    none = empty(source)
    out = []
    for d in days:
        mine, first, second = ours.get(d, none), theirs.get(d), again.get(d)
        if first is None:
            outcome = Outcome.NOT_ASKED
        elif not _differs(source, first, mine):
            outcome = Outcome.SETTLED if d in settled else Outcome.OK
        elif d in final:
            outcome = Outcome.FAILED_FINAL
        elif second is None:
            outcome = Outcome.NOT_ASKED  # differed, and the second question went unanswered
        elif _differs(source, second, mine):
            outcome = Outcome.YOUNG_CHANGING
        else:
            outcome = Outcome.OK
        out.append(DayVerdict(d, d in final, mine, first, second, outcome))
    unasked = {v.day for v in out if v.outcome is Outcome.NOT_ASKED}
    return Verdict(
        days=tuple(out),
        unanswered=[(w, exc) for w, exc in failures if set(w) & unasked],
        to_remember={
            v.day: v.ours for v in out if v.final and v.outcome is Outcome.OK and v.theirs
        },
    )
