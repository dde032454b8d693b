"""The project's clock: what "today" and "now" are, with one override for reproducible runs.

``PENDO_TODAY=YYYY-MM-DD`` pins today's date for every process that reads it: settings (the
demo history and the start-date check), `make dev`, the emulator (its history and which of
its days are still live), the daily partitions (the last one is the day before), and the
freshness checks. The instant it pins is noon of that day in the zone asked for, so a pinned
run never depends on the hour it was started. Unset, both follow the machine's clock.

The test suite pins it (``pendo_assets_tests/conftest.py``) so its ranges, the emulator's data
and every subprocess (`dagster` CLI, `dagster dev`) agree whatever the date is.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo

ENV = "PENDO_TODAY"
PINNED_HOUR = time(12, 0)


def pinned() -> date | None:
    """The pinned date, or None when the machine's clock rules; a bad value fails loudly."""
    raw = os.environ.get(ENV, "").strip()
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


def now(zone: tzinfo | str | None = None) -> datetime:
    """The current instant in ``zone`` (local time when None); noon of the pinned day if set."""
    tz = _zone(zone)
    day = pinned()
    if day is None:
        return datetime.now(tz)
    at = datetime.combine(day, PINNED_HOUR, tzinfo=tz)
    return at if tz is not None else at.astimezone()


def today(zone: tzinfo | str | None = None) -> date:
    """Today's date in ``zone`` (the machine's zone when None), or the pinned date."""
    day = pinned()
    return day if day is not None else datetime.now(_zone(zone)).date()


# Checks that depend on a day's age take a ``Clock`` (tests pass a fixed one).
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current instant, timezone-aware (UTC); noon of the pinned day if PENDO_TODAY is set."""
    return now(UTC)
