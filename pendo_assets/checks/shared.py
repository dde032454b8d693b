"""What every check module shares: check names, the days a run covers, naming days."""

from __future__ import annotations

from datetime import date

import dagster as dg

from pendo_assets.pendo.days import days_between, partition_dates
from pendo_assets.run_tags import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from pendo_assets.warehouse.store import Warehouse, markdown_table

MAX_DAYS_NAMED = 20  # failure descriptions name at most this many days

GRAIN = "grain_is_unique"
# Per-event sources (guide and poll events) instead: identical rows are possible at Pendo and
# counted there, so they are shown, never blocking; reconciliation compares the counts.
IDENTICAL = "identical_rows"
REQUIRED = "required_ids_present"
RECONCILES = "reconciles_with_pendo"
YOUNG = "reconciles_young_days"
UNKNOWN = "known_ids_share"
COMPLETE = "no_missing_days"
UNIQUE_IDS = "ids_are_unique"
TIES_OUT = "ties_out_with_raw"
KNOWN_TYPES = "guide_event_types_known"
# Every segment's members were asked this load (one that failed keeps its last known members).
MEMBERS = "members_loaded"
# Checks that only ever warn: they never return ERROR, whatever happens.
WARNING_ONLY = frozenset({UNKNOWN, COMPLETE, YOUNG, IDENTICAL, KNOWN_TYPES, MEMBERS})


def run_days(context: dg.AssetCheckExecutionContext) -> list[date] | None:
    """The days the run materialized (partition range or single partition), or None."""
    tags = context.run.tags
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return days_between(start, end)
    if tags.get(PARTITION_TAG):
        return partition_dates([tags[PARTITION_TAG]])
    return None


def fq_name(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def days_in(wh: Warehouse, fq: str) -> list[date]:
    return [d for (d,) in wh.query(f"SELECT DISTINCT day FROM {fq} ORDER BY 1")]


def check_days(context, wh: Warehouse, fq: str) -> list[date]:
    days = run_days(context)
    return days if days is not None else days_in(wh, fq)


def name_days(days: list[date]) -> str:
    names = ", ".join(d.isoformat() for d in days[:MAX_DAYS_NAMED])
    more = len(days) - MAX_DAYS_NAMED
    return names + (f" and {more} more" if more > 0 else "")


def bad_days_md(header: list[str], rows: list[tuple]) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(header, rows) if rows else "(none)")


def day_span(days: list[date]) -> list:
    return [min(days), max(days)]


def result(
    key: dg.AssetKey, name: str, passed: bool, description: str = "", metadata: dict | None = None
) -> dg.AssetCheckResult:
    """A check's result at the severity that check always has: WARN for the warning-only
    checks, ERROR for the others (which block downstream assets when declared blocking)."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN
        if name in WARNING_ONLY
        else dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata or {},
    )


def missing_table(key: dg.AssetKey, name: str) -> dg.AssetCheckResult:
    return result(
        key,
        name,
        False,
        f"{key.to_user_string()} is not in the warehouse yet: materialize it first.",
    )
