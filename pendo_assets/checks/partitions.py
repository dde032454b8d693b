"""Partition bookkeeping checks of the raw event tables: gaps and freshness (warnings only)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg

from pendo_assets.checks.shared import COMPLETE, FRESH, name_days
from pendo_assets.settings import Settings


def _loaded_days(context, key: dg.AssetKey) -> list[date]:
    return sorted(date.fromisoformat(k) for k in context.instance.get_materialized_partitions(key))


def _complete_result(context, key) -> dg.AssetCheckResult:
    loaded = _loaded_days(context, key)
    missing: list[date] = []
    if loaded:
        have = set(loaded)
        span = (loaded[-1] - loaded[0]).days + 1
        missing = [loaded[0] + timedelta(days=i) for i in range(span)]
        missing = [d for d in missing if d not in have]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=COMPLETE,
        passed=bool(loaded) and not missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "oldest_loaded_day": dg.MetadataValue.text(str(loaded[0]) if loaded else "-"),
            "newest_loaded_day": dg.MetadataValue.text(str(loaded[-1]) if loaded else "-"),
            "loaded_days": dg.MetadataValue.int(len(loaded)),
            "missing_days": dg.MetadataValue.json([d.isoformat() for d in missing]),
        },
        description=(
            "No day loaded yet"
            if not loaded
            else f"Missing days between the oldest and newest loaded day: {name_days(missing)}"
            if missing
            else f"No gaps between {loaded[0]} and {loaded[-1]}"
        ),
    )


def _fresh_result(context, key, settings: Settings) -> dg.AssetCheckResult:
    loaded = _loaded_days(context, key)
    yesterday = datetime.now(settings.zone).date() - timedelta(days=1)
    newest = loaded[-1] if loaded else None
    passed = newest is not None and newest >= yesterday
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=FRESH,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "newest_loaded_day": dg.MetadataValue.text(str(newest) if newest else "-"),
            "yesterday": dg.MetadataValue.text(f"{yesterday} ({settings.timezone})"),
        },
        description=(
            f"Newest loaded day {newest} is yesterday or later"
            if passed
            else f"Newest loaded day is {newest or 'none'}, older than yesterday ({yesterday})"
        ),
    )
