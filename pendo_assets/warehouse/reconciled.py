"""Final days that agreed with Pendo, remembered with the totals they had then.

A final day no longer changes at Pendo; while the warehouse still holds the same totals for it,
reconciliation need not ask Pendo again. Kept in the ``_state`` schema, apart from the data
schemas analysts browse.
"""

from __future__ import annotations

from datetime import date

from pendo_assets.catalog import Source
from pendo_assets.warehouse.store import Statement, Warehouse

LEDGER_SCHEMA, LEDGER_TABLE = "_state", "reconciled_days"
LEDGER = f"{LEDGER_SCHEMA}.{LEDGER_TABLE}"


def remembered(wh: Warehouse, source: Source, days: list[date]) -> dict[date, tuple]:
    """Final days that agreed with Pendo earlier: {day: (rows, numEvents)} as they were then."""
    if not days or not wh.exists(LEDGER_SCHEMA, LEDGER_TABLE):
        return {}
    found = wh.query(
        f"SELECT day, rows, num_events FROM {LEDGER} WHERE source = ? AND day BETWEEN ? AND ?",
        [source.name, min(days), max(days)],
    )
    return {d: (n, s) for d, n, s in found}


_CREATE = (
    f"CREATE SCHEMA IF NOT EXISTS {LEDGER_SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {LEDGER} (source VARCHAR, day DATE, rows BIGINT, "
    "num_events BIGINT, PRIMARY KEY (source, day))",
)


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
