"""Slowly changing history (SCD type 2) of a snapshot table, computed inside DuckDB.

``apply_history`` folds the current rows of a snapshot table (one row per key) into a history
table holding every version: the snapshot's columns plus ``valid_from``, ``valid_to`` (NULL
while current), ``is_current`` and ``is_deleted``. A key gets a new version only when one of
its *compared* columns changed; applying the same snapshot again adds nothing. Keys missing
from the snapshot are closed and get an ``is_deleted`` version only when the caller says the
snapshot is complete (a full load). No Pendo knowledge here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pendo_assets.warehouse.store import Warehouse, quote

# Spelled as information_schema spells them, so evolving the table never "widens" them.
VALIDITY_COLUMNS = {
    "valid_from": "TIMESTAMP WITH TIME ZONE",
    "valid_to": "TIMESTAMP WITH TIME ZONE",
    "is_current": "BOOLEAN",
    "is_deleted": "BOOLEAN",
}


@dataclass
class HistoryResult:
    new_versions: int = 0  # changed or new keys
    deleted: int = 0  # keys closed as deleted
    compared_columns: tuple[str, ...] = ()
    untracked_columns: tuple[str, ...] = ()


def compared_columns(
    columns: Iterable[str],
    key: str | tuple[str, ...],
    untracked_pattern: str,
    track: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """(compared, untracked): every column but the key, split by ``untracked_pattern`` unless
    listed in ``track``."""
    rx, track = re.compile(untracked_pattern), set(track)
    keys = _keys(key)
    compared, untracked = [], []
    for c in columns:
        if c in keys or c in VALIDITY_COLUMNS:
            continue
        (untracked if rx.search(c) and c not in track else compared).append(c)
    return compared, untracked


def apply_history(
    wh: Warehouse,
    snapshot: tuple[str, str],
    history: tuple[str, str],
    key: str | tuple[str, ...],
    loaded_at: datetime,
    full: bool,
    untracked_pattern: str = r"^$",
    track: Iterable[str] = (),
) -> HistoryResult:
    """Fold ``snapshot`` (schema, table) into ``history`` (schema, table) as of ``loaded_at``,
    in one transaction. ``full``: the snapshot holds every live key, so keys absent from it
    are deleted. ``key`` is a column, or several that together identify a row (a pair table).
    """
    with wh.transaction() as con:
        return _apply(wh, con, snapshot, history, key, loaded_at, full, untracked_pattern, track)


def _apply(wh, con, snapshot, history, key, loaded_at, full, untracked_pattern, track):
    src_cols = Warehouse.columns(con, *snapshot)
    for part in _keys(key):
        if part not in src_cols:
            raise ValueError(f"{'.'.join(snapshot)} has no key column {part!r}")
    src = f"{quote(snapshot[0])}.{quote(snapshot[1])}"
    hist = f"{quote(history[0])}.{quote(history[1])}"
    wh.evolve(con, history[0], history[1], {**src_cols, **VALIDITY_COLUMNS})
    last, later = con.execute(
        f"SELECT max(valid_from)::VARCHAR, max(valid_from) > $1::TIMESTAMPTZ FROM {hist}",
        [loaded_at],
    ).fetchone()
    if later:
        raise ValueError(
            f"{'.'.join(history)} already has versions from {last}; a load of "
            f"{loaded_at.isoformat()} cannot be applied before them"
        )
    compared, untracked = compared_columns(src_cols, key, untracked_pattern, track)
    k = _key_sql(key)
    differs = " OR ".join(f"h.{quote(c)} IS DISTINCT FROM s.{quote(c)}" for c in compared)
    present = " AND ".join(f"s.{quote(c)} IS NOT NULL" for c in _keys(key))
    unmatched = f"h.{quote(_keys(key)[0])} IS NULL"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _history_changed AS
        SELECT {k("s")} AS k FROM {src} s
        LEFT JOIN {hist} h ON {k("h")} = {k("s")} AND h.is_current
        WHERE {present}
          AND ({unmatched} OR h.is_deleted {"OR " + differs if differs else ""})"""
    )
    result = HistoryResult(compared_columns=tuple(compared), untracked_columns=tuple(untracked))
    result.new_versions = con.execute("SELECT count(*) FROM _history_changed").fetchone()[0]
    cols = ", ".join(quote(c) for c in src_cols)
    con.execute(
        f"UPDATE {hist} SET valid_to = $1, is_current = false "
        f"WHERE is_current AND {k()} IN (SELECT k FROM _history_changed)",
        [loaded_at],
    )
    con.execute(
        f"INSERT INTO {hist} BY NAME SELECT {cols}, $1::TIMESTAMPTZ AS valid_from, "
        "NULL::TIMESTAMPTZ AS valid_to, true AS is_current, false AS is_deleted "
        f"FROM {src} WHERE {k()} IN (SELECT k FROM _history_changed)",
        [loaded_at],
    )
    if full:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _history_gone AS
            SELECT * FROM {hist} h
            WHERE h.is_current AND NOT h.is_deleted
              AND NOT EXISTS (SELECT 1 FROM {src} s WHERE {k("s")} = {k("h")})"""
        )
        result.deleted = con.execute("SELECT count(*) FROM _history_gone").fetchone()[0]
        con.execute(
            f"UPDATE {hist} SET valid_to = $1, is_current = false "
            f"WHERE is_current AND {k()} IN (SELECT {k()} FROM _history_gone)",
            [loaded_at],
        )
        con.execute(
            f"INSERT INTO {hist} BY NAME SELECT * EXCLUDE (valid_from, valid_to, is_current, "
            "is_deleted), $1::TIMESTAMPTZ AS valid_from, NULL::TIMESTAMPTZ AS valid_to, "
            "true AS is_current, true AS is_deleted FROM _history_gone",
            [loaded_at],
        )
        con.execute("DROP TABLE _history_gone")
    con.execute("DROP TABLE _history_changed")
    return result


def _keys(key: str | tuple[str, ...]) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def _key_sql(key: str | tuple[str, ...]):
    """``k(alias)``: the key of a row as one comparable value (a row value for pairs)."""
    cols = _keys(key)

    def k(alias: str = "") -> str:
        parts = [f"{alias}.{quote(c)}" if alias else quote(c) for c in cols]
        return parts[0] if len(parts) == 1 else f"row({', '.join(parts)})"

    return k
