"""Where "now" comes from. Checks that depend on a day's age take a ``Clock`` so tests pin it
instead of depending on today's date."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)
