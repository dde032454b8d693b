"""Subscription-local days.

Pendo's days start at midnight in the *subscription's* time zone and are reported as that
instant in UTC epoch milliseconds (04:00Z for America/New_York in summer). DST days are 23 or 25
hours long. Everything that turns a partition date into Pendo time, or back, lives here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

UTC = UTC


def local_midnight_ms(day: date, zone: ZoneInfo) -> int:
    """Epoch ms of 00:00 on ``day`` in ``zone``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def day_bounds_ms(day: date, zone: ZoneInfo) -> tuple[int, int]:
    return local_midnight_ms(day, zone), local_midnight_ms(day + timedelta(days=1), zone)


def hours_in_day(day: date, zone: ZoneInfo) -> int:
    start, end = day_bounds_ms(day, zone)
    return (end - start) // 3_600_000


def partition_dates(keys: Iterable[str]) -> list[date]:
    """Daily partition keys (``YYYY-MM-DD``, subscription-local days) as dates."""
    return [date.fromisoformat(k) for k in keys]


def days_between(first: date | str, last: date | str) -> list[date]:
    """Every day from ``first`` to ``last``, both included (dates or partition keys)."""
    a, b = (d if isinstance(d, date) else date.fromisoformat(d) for d in (first, last))
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


def windows(days: Iterable[date], size: int | None = None) -> list[list[date]]:
    """Split days into sorted runs of consecutive days, each at most ``size`` long."""
    out: list[list[date]] = []
    for d in sorted(set(days)):
        if out and (size is None or len(out[-1]) < size) and out[-1][-1] + timedelta(days=1) == d:
            out[-1].append(d)
        else:
            out.append([d])
    return out


def describe_offset(ms: int, configured: str) -> str:
    """Explain which time zone a Pendo day boundary belongs to, for error messages."""
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    hhmm = at.strftime("%H:%M")
    guesses = {
        "04:00": "America/New_York in summer",
        "05:00": "America/New_York in winter or America/Chicago in summer",
        "06:00": "America/Chicago in winter or America/Denver in summer",
        "07:00": "America/Denver in winter or America/Los_Angeles in summer",
        "08:00": "America/Los_Angeles in winter",
        "00:00": "UTC",
        "23:00": "Europe/Berlin or Europe/Paris in winter",
        "22:00": "Europe/Berlin or Europe/Paris in summer",
    }
    guess = guesses.get(hhmm)
    match = f", which matches {guess}" if guess else ""
    return (
        f"Pendo's days start at {hhmm} UTC{match}; PENDO_TIMEZONE is {configured}. "
        "Set PENDO_TIMEZONE to your Pendo subscription's time zone "
        "(Pendo: Settings > Subscription Settings > Time Zone)."
    )
