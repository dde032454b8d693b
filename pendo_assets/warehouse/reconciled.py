"""Final days that agreed with Pendo, remembered with the totals they had then.

A final day no longer changes at Pendo; while the warehouse still holds the same totals for it,
reconciliation need not ask Pendo again. Kept in the ``_state`` schema, apart from the data
schemas analysts browse.
"""

from __future__ import annotations

from datetime import date

from pendo_assets.catalog import Source
from pendo_assets.warehouse.side_tables import STATE_SCHEMA, SideTable
from pendo_assets.warehouse.store import Statement, Warehouse

RECONCILED_DAYS = SideTable(
    schema=STATE_SCHEMA,
    name="reconciled_days",
    description="One row per event source and final day that agreed with Pendo's own totals, "
    "with the totals it had then: while the raw table still holds them, reconciliation does "
    "not ask Pendo about that day again. Written by the `reconciles_with_pendo` check of each "
    "raw event table; a load that changes a day's rows forgets it in the same transaction.",
    columns={
        "source": ("VARCHAR", "Pendo event source (`pageEvents`, ...)"),
        "day": ("DATE", "Subscription-local day"),
        "rows": ("BIGINT", "Rows of the day when it agreed"),
        "num_events": ("BIGINT", "Sum of num_events when it agreed (NULL: per-event sources)"),
    },
    primary_key=("source", "day"),
)
LEDGER_SCHEMA, LEDGER_TABLE = RECONCILED_DAYS.schema, RECONCILED_DAYS.name
LEDGER = RECONCILED_DAYS.fq


def remembered(wh: Warehouse, source: Source, days: list[date]) -> dict[date, tuple]:
    """Final days that agreed with Pendo earlier: {day: (rows, numEvents)} as they were then."""
    if not days or not wh.exists(LEDGER_SCHEMA, LEDGER_TABLE):
        return {}
    found = wh.query(
        f"SELECT day, rows, num_events FROM {LEDGER} WHERE source = ? AND day BETWEEN ? AND ?",
        [source.name, min(days), max(days)],
    )
    return {d: (n, s) for d, n, s in found}


_CREATE = (f"CREATE SCHEMA IF NOT EXISTS {LEDGER_SCHEMA}", RECONCILED_DAYS.create)


def forget(source_name: str, days: list[date] | None = None) -> list[Statement]:
    """Statements that drop what was remembered of ``days`` (every day when None): run in the
    transaction that changes those days' rows, since Pendo changed them after they agreed."""
    if days is not None and not days:
        return []
    where, params = "source = $s", {"s": source_name}
    if days is not None:
        where += " AND day IN (SELECT unnest($days::DATE[]))"
        params["days"] = sorted(days)
    return [*_CREATE, (f"DELETE FROM {LEDGER} WHERE {where}", params)]


def remember(wh: Warehouse, source: Source, agreed: dict[date, tuple]) -> None:
    if not agreed:
        return
    with wh.transaction() as con:
        for statement in _CREATE:
            con.execute(statement)
        days = sorted(agreed)
        # One statement over lists, as first_seen_fold.sql takes its days: DuckDB runs
        # ``executemany`` row by row, 0.7 s for a year at the end of every range run's check.
        con.execute(
            f"INSERT OR REPLACE INTO {LEDGER} SELECT $source, unnest($days::DATE[]), "
            "unnest($rows::BIGINT[]), unnest($events::BIGINT[])",
            {
                "source": source.name,
                "days": days,
                "rows": [agreed[d][0] for d in days],
                "events": [agreed[d][1] for d in days],
            },
        )
