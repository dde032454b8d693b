"""Partition bookkeeping checks of the raw event tables: gaps (a warning only).

Freshness is Dagster's own, evaluated without a run: ``pendo_assets.freshness``."""

from __future__ import annotations

from datetime import date

import dagster as dg

from pendo_assets.checks.shared import COMPLETE, name_days, result
from pendo_assets.pendo.days import days_between, partition_dates


def _loaded_days(context, key: dg.AssetKey) -> list[date]:
    return sorted(partition_dates(context.instance.get_materialized_partitions(key)))


def _complete_result(context, key) -> dg.AssetCheckResult:
    loaded = _loaded_days(context, key)
    missing: list[date] = []
    if loaded:
        have = set(loaded)
        missing = [d for d in days_between(loaded[0], loaded[-1]) if d not in have]
    return result(
        key,
        COMPLETE,
        bool(loaded) and not missing,
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
