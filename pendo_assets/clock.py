"""The project's one clock: what "today" and "now" are, with one pin for reproducible runs.

``PENDO_TODAY=YYYY-MM-DD`` pins today's date. Dagster code reads the clock the ``Settings``
resource carries (``settings.clock``: the partitions, the refresh plan and schedules,
freshness, reconciliation); processes without settings (the emulator, `make dev`, the bench)
read ``Clock.from_env()``: both come from the same variable, so every process agrees. The
instant a pinned clock gives is noon of that day in the zone asked for, so a pinned run never
depends on the hour it was started. Unpinned, the clock follows the machine's.

The test suite pins it once (``pendo_assets_tests/conftest.py``) so its ranges, the emulator's
data and every subprocess (`dagster` CLI, `dagster dev`) agree whatever the date is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo

ENV = "PENDO_TODAY"
PINNED_HOUR = time(12, 0)


def parse_pin(raw: str | None) -> date | None:
    """``PENDO_TODAY``'s date, or None when unset; a bad value fails naming the variable."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{ENV}={raw!r} is not valid: expected YYYY-MM-DD. Example: {ENV}=2026-11-21"
        ) from None


def _zone(zone: tzinfo | str | None) -> tzinfo | None:
    return ZoneInfo(zone) if isinstance(zone, str) else zone


@dataclass(frozen=True)
class Clock:
    """The machine's clock, or a pinned day. Calling it gives the current instant in UTC, so
    it is what checks that depend on a day's age take."""

    pinned: date | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Clock:
        return cls(parse_pin((os.environ if env is None else env).get(ENV)))

    def now(self, zone: tzinfo | str | None = None) -> datetime:
        """The current instant in ``zone`` (local time when None); noon of the pinned day."""
        tz = _zone(zone)
        if self.pinned is None:
            return datetime.now(tz)
        at = datetime.combine(self.pinned, PINNED_HOUR, tzinfo=tz)
        return at if tz is not None else at.astimezone()

    def today(self, zone: tzinfo | str | None = None) -> date:
        """Today's date in ``zone`` (the machine's zone when None), or the pinned date."""
        return self.pinned if self.pinned is not None else datetime.now(_zone(zone)).date()

    def at(self, instant: datetime) -> datetime:
        """``instant`` (a schedule's tick) as this clock sees it. A pinned clock stands still
        at its day (the partitions end there too): a later tick is read as the pinned noon; an
        earlier one (a replayed morning) keeps its own time."""
        if self.pinned is None:
            return instant
        return min(instant, self.now(instant.tzinfo or UTC))

    def __call__(self) -> datetime:
        return self.now(UTC)
