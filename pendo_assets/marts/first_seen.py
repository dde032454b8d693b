"""First-seen tables: the first loaded day of every (visitor, feature) and (visitor, page).

A daily mart needs "did this visitor click this feature on any earlier loaded day?". Asking
the events table that for every day would rescan all history each time, so we keep
``analytics.<subject>_first_seen(visitor_id, <id>, first_day)`` and fold days into it as they
are processed. ``analytics.first_seen_days`` remembers which event days were folded, with a
fingerprint (rows, sum of num_events), so a day that was re-loaded since is folded again and a
day loaded for the first time (even one earlier than everything else) is folded on the next run.

Folding a day can move a pair's first day: loading an earlier day after later ones makes some
later "first-time" visitors returning. ``fold`` reports those later days so their mart rows
can be recomputed in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pendo_assets.catalog import ANALYTICS_SCHEMA
from pendo_assets.marts.models import FirstSeen, Mart
from pendo_assets.pendo.days import windows
from pendo_assets.warehouse.store import Warehouse

FOLDED_DAYS = f"{ANALYTICS_SCHEMA}.first_seen_days"


def _ensure(con, fs: FirstSeen) -> str:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ANALYTICS_SCHEMA}")
    table = f"{ANALYTICS_SCHEMA}.{fs.table}"
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table} "
        f"(visitor_id VARCHAR, {fs.id_column} VARCHAR, first_day DATE NOT NULL)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {FOLDED_DAYS} "
        "(subject VARCHAR, day DATE, row_count BIGINT, sum_events HUGEINT)"
    )
    return table


def days_to_fold(con, fs: FirstSeen, run_days: Sequence[date]) -> list[date]:
    """The run's days, plus loaded days never folded or changed since, plus days now gone.

    Reads only the ``day`` and ``num_events`` columns of the events table.
    """
    loaded = {
        d: (n, s)
        for d, n, s in con.execute(
            f"SELECT day, count(*), coalesce(sum(num_events), 0)::HUGEINT "
            f"FROM {fs.events_table} GROUP BY day"
        ).fetchall()
    }
    folded = {
        d: (n, s)
        for d, n, s in con.execute(
            f"SELECT day, row_count, sum_events FROM {FOLDED_DAYS} WHERE subject = ?",
            [fs.subject],
        ).fetchall()
    }
    todo = set(run_days)
    todo |= {d for d, fp in loaded.items() if folded.get(d) != fp}
    todo |= set(folded) - set(loaded)
    return sorted(todo)


def fold(con, fs: FirstSeen, run_days: Sequence[date]) -> dict[date, int]:
    """Fold the days that need it into the first-seen table (inside the caller's transaction).

    Returns {day: pairs whose first day moved to or away from it}, for days outside
    ``run_days``: their first-time/returning counts changed.
    """
    table = _ensure(con, fs)
    todo = days_to_fold(con, fs, run_days)
    if not todo:
        return {}
    idc = fs.id_column
    con.execute("CREATE OR REPLACE TEMP TABLE _todo (day DATE)")
    con.executemany("INSERT INTO _todo VALUES (?)", [[d] for d in todo])
    # Earliest day of each pair within the days being folded.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _fold AS
            SELECT visitor_id, {idc}, min(day) AS first_day
            FROM {fs.events_table}
            WHERE day IN (SELECT day FROM _todo)
            GROUP BY visitor_id, {idc}"""
    )
    # Stored pairs the fold can change: those seen again, and those first seen on a day
    # being folded (that day may have lost the pair).
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _old AS
            SELECT s.* FROM {table} s WHERE s.first_day IN (SELECT day FROM _todo)
            UNION
            SELECT s.* FROM {table} s
            SEMI JOIN _fold f ON f.visitor_id = s.visitor_id AND f.{idc} = s.{idc}"""
    )
    # A pair whose stored first day is being folded but is no longer on it (a re-loaded day
    # lost rows) needs its first day among the other days: rare, so looked up only then.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _lost AS
            SELECT o.visitor_id, o.{idc} FROM _old o
            LEFT JOIN _fold f ON f.visitor_id = o.visitor_id
                             AND f.{idc} = o.{idc}
            WHERE o.first_day IN (SELECT day FROM _todo)
              AND (f.first_day IS NULL OR f.first_day > o.first_day)"""
    )
    lost = con.execute("SELECT count(*) FROM _lost").fetchone()[0]
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _rest AS
            SELECT e.visitor_id, e.{idc}, min(e.day) AS first_day
            FROM {fs.events_table} e
            SEMI JOIN _lost l ON l.visitor_id = e.visitor_id AND l.{idc} = e.{idc}
            WHERE e.day NOT IN (SELECT day FROM _todo)
            GROUP BY e.visitor_id, e.{idc}"""
        if lost
        else "CREATE OR REPLACE TEMP TABLE _rest AS "
        f"SELECT visitor_id, {idc}, NULL::DATE AS first_day FROM _lost"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _changes AS
            WITH j AS (
                SELECT coalesce(f.visitor_id, o.visitor_id) AS visitor_id,
                       coalesce(f.{idc}, o.{idc}) AS {idc},
                       o.first_day AS old_day,
                       f.first_day AS fold_day
                FROM _fold f
                FULL JOIN _old o ON o.visitor_id = f.visitor_id
                                AND o.{idc} = f.{idc}
            )
            SELECT j.visitor_id, j.{idc}, j.old_day,
                   CASE
                       WHEN j.old_day IS NULL THEN j.fold_day
                       WHEN j.old_day NOT IN (SELECT day FROM _todo)
                           THEN least(j.fold_day, j.old_day)
                       WHEN j.fold_day <= j.old_day THEN j.fold_day
                       ELSE least(j.fold_day, r.first_day)
                   END AS new_day
            FROM j
            LEFT JOIN _rest r ON r.visitor_id = j.visitor_id
                             AND r.{idc} = j.{idc}"""
    )
    con.execute("DELETE FROM _changes WHERE old_day IS NOT DISTINCT FROM new_day")
    con.execute(
        f"""DELETE FROM {table} s USING _changes c
            WHERE c.visitor_id = s.visitor_id
              AND c.{idc} = s.{idc}"""
    )
    con.execute(
        f"INSERT INTO {table} SELECT visitor_id, {idc}, new_day FROM _changes "
        "WHERE new_day IS NOT NULL"
    )
    con.execute(
        f"DELETE FROM {FOLDED_DAYS} WHERE subject = ? AND day IN (SELECT day FROM _todo)",
        [fs.subject],
    )
    con.execute(
        f"""INSERT INTO {FOLDED_DAYS}
            SELECT ?, day, count(*), coalesce(sum(num_events), 0)::HUGEINT
            FROM {fs.events_table} WHERE day IN (SELECT day FROM _todo) GROUP BY day""",
        [fs.subject],
    )
    moved = con.execute(
        """SELECT d, count(*) FROM (
               SELECT old_day AS d FROM _changes WHERE old_day IS NOT NULL
               UNION ALL
               SELECT new_day AS d FROM _changes WHERE new_day IS NOT NULL
           ) GROUP BY d"""
    ).fetchall()
    for t in ("_todo", "_fold", "_old", "_lost", "_rest", "_changes"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    run = set(run_days)
    return {d: n for d, n in sorted(moved) if d not in run}


def fold_and_recompute(con, mart: Mart, run_days: Sequence[date]) -> dict[date, int]:
    """Fold ``mart``'s first-seen table, then rewrite the mart's *other* days it changed.

    Returns {day: pairs moved} for the mart days recomputed here (days already in the mart
    table only: a day never materialized is computed when it is). Runs in the caller's
    transaction, so the first-seen table and the mart rows it feeds change together.
    """
    assert mart.first_seen is not None
    moved = fold(con, mart.first_seen, run_days)
    if not moved or not Warehouse.columns(con, ANALYTICS_SCHEMA, mart.name):
        return {}
    present = {
        d
        for (d,) in con.execute(
            f"SELECT DISTINCT day FROM {mart.table} WHERE day BETWEEN ? AND ?",
            [min(moved), max(moved)],
        ).fetchall()
    }
    redo = {d: n for d, n in moved.items() if d in present}
    for run in windows(redo):
        con.execute(f"DELETE FROM {mart.table} WHERE day BETWEEN ? AND ?", [run[0], run[-1]])
        con.execute(
            f"INSERT INTO {mart.table} BY NAME SELECT * FROM ({mart.sql})", [run[0], run[-1]]
        )
    return redo
