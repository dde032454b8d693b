"""Daily partitions: days in the subscription's time zone, from PENDO_START_DATE."""

from __future__ import annotations

import dagster as dg

from pendo_assets.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    # Partition keys are subscription-local dates; the last one is yesterday (today is partial
    # and is picked up by the lookback refresh). With the clock pinned (PENDO_TODAY) the last
    # one is the pinned day's yesterday, whatever the machine's date.
    pinned = settings.clock.pinned
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date,
        timezone=settings.timezone,
        end_date=pinned.isoformat() if pinned else None,
    )
