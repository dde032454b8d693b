"""First-seen tables: the first loaded day of every (visitor, feature), (visitor, page) and
(visitor, guide), and of the same with accounts in place of visitors.

A daily mart needs "did this visitor click this feature on any earlier loaded day?". Asking
the events table that for every day would rescan all history each time, so we keep
``analytics.<subject>_first_seen(visitor_id|account_id, <id>, first_day)`` and fold days into
it as they are processed. ``analytics.first_seen_days`` remembers which event days were folded,
with a fingerprint (rows, and a sum such as that of num_events), so a day that was re-loaded
since is folded again and a day loaded for the first time (even one earlier than everything
else) is folded on the next run.

Folding a day can move a pair's first day: loading an earlier day after later ones makes some
later "first-time" visitors returning. ``fold`` reports those later days so their mart rows
can be recomputed in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cache
from pathlib import Path

from pendo_assets.catalog import ANALYTICS_SCHEMA
from pendo_assets.marts.models import FirstSeen, Mart
from pendo_assets.pendo.days import windows
from pendo_assets.warehouse.side_tables import SideTable
from pendo_assets.warehouse.store import Warehouse

FOLD_SQL = Path(__file__).with_name("first_seen_fold.sql")
# Days whose pairs moved in the fold: the old and the new first day of each changed pair.
_MOVED = """SELECT d, count(*) FROM (
               SELECT old_day AS d FROM _changes WHERE old_day IS NOT NULL
               UNION ALL
               SELECT new_day AS d FROM _changes WHERE new_day IS NOT NULL
           ) GROUP BY d"""


@cache
def _fold_sql() -> dict[str, str]:
    """The named steps of ``first_seen_fold.sql``, in order."""
    steps: dict[str, str] = {}
    name = None
    for line in FOLD_SQL.read_text().splitlines():
        if line.startswith("-- step: "):
            name = line.removeprefix("-- step: ").strip()
            steps[name] = ""
        elif name is not None and not line.startswith("--"):
            steps[name] += line + "\n"
    return {n: sql.strip().rstrip(";") for n, sql in steps.items()}


def _fold_steps(**names: str) -> dict[str, str]:
    return {n: sql.format(**names) for n, sql in _fold_sql().items()}


def first_seen_table(fs: FirstSeen) -> SideTable:
    who = fs.who.removesuffix("_id")
    subject = fs.id_column.removesuffix("_id")
    return SideTable(
        schema=ANALYTICS_SCHEMA,
        name=fs.table,
        description=f"One row per ({who}, {subject}) pair ever seen in the events, with the "
        "first loaded day it was seen on: what splits first-time from returning in the daily "
        "marts. Folded in by the marts that read it, in the transaction that writes their days.",
        columns={
            fs.who: ("VARCHAR", f"The {who}"),
            fs.id_column: ("VARCHAR", f"The {subject}"),
            "first_day": ("DATE", "First loaded day the pair was seen on"),
        },
        not_null=frozenset({"first_day"}),
    )


FOLDED = SideTable(
    schema=ANALYTICS_SCHEMA,
    name="first_seen_days",
    description="One row per first-seen table and event day folded into it, with the day's "
    "fingerprint then: a day whose rows changed since (or a day never folded) is folded again "
    "by the next mart run that reads the table.",
    columns={
        "subject": ("VARCHAR", "The first-seen table"),
        "day": ("DATE", "The folded event day"),
        "row_count": ("BIGINT", "Event rows of the day when folded"),
        "sum_events": ("HUGEINT", "Sum the fingerprint takes of the day's rows when folded"),
    },
)


def _ensure(con, fs: FirstSeen) -> str:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ANALYTICS_SCHEMA}")
    table = first_seen_table(fs)
    con.execute(table.create)
    con.execute(FOLDED.create)
    return table.fq


def days_to_fold(con, fs: FirstSeen, run_days: Sequence[date]) -> list[date]:
    """The run's days, plus loaded days never folded or changed since, plus days now gone.

    Reads only the ``day`` column and what the fingerprint sums of the events table.
    """
    loaded = {
        d: (n, s)
        for d, n, s in con.execute(
            f"SELECT day, count(*), {fs.fingerprint_sql} FROM {fs.events_table} GROUP BY day"
        ).fetchall()
    }
    folded = {
        d: (n, s)
        for d, n, s in con.execute(
            f"SELECT day, row_count, sum_events FROM {FOLDED.fq} WHERE subject = ?",
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
    steps = _fold_steps(
        first_seen=table,
        events=fs.events_table,
        who=fs.who,
        id=fs.id_column,
        fingerprint=fs.fingerprint_sql,
        folded_days=FOLDED.fq,
    )
    params = {"subject": fs.subject, "days": todo}
    lost: bool | None = None
    for name, sql in steps.items():
        if name in ("rest", "no_rest"):
            if lost is None:
                lost = con.execute("SELECT count(*) FROM _lost").fetchone()[0] > 0
            if (name == "rest") != lost:
                continue
        con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})
    moved = con.execute(_MOVED).fetchall()
    for t in ("_todo", "_fold", "_old", "_lost", "_rest", "_changes"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    run = set(run_days)
    return {d: n for d, n in sorted(moved) if d not in run}


def fold_and_recompute(con, mart: Mart, run_days: Sequence[date], timezone: str) -> dict[date, int]:
    """Fold ``mart``'s first-seen tables, then rewrite the mart's *other* days they changed.

    Also sets the session variable ``pendo_timezone`` the mart's SQL reads (a tag's creation
    day is a subscription-local day). Returns {day: pairs moved} for the mart days recomputed
    here (days already in the mart table only: a day never materialized is computed when it
    is). Runs in the caller's transaction, so the first-seen tables and the mart rows they
    feed change together.
    """
    con.execute("SET VARIABLE pendo_timezone = ?", [timezone])
    moved: dict[date, int] = {}
    for fs in mart.first_seen:
        for d, n in fold(con, fs, run_days).items():
            moved[d] = moved.get(d, 0) + n
    if not moved or not Warehouse.columns(con, ANALYTICS_SCHEMA, mart.name):
        return {}
    present = {
        d
        for (d,) in con.execute(
            f"SELECT DISTINCT day FROM {mart.table} WHERE day BETWEEN ? AND ?",
            [min(moved), max(moved)],
        ).fetchall()
    }
    redo = {d: n for d, n in sorted(moved.items()) if d in present}
    if redo:  # a table written before the mart gained columns gets them first
        described = con.execute(f"DESCRIBE ({mart.sql})", [min(redo), max(redo)]).fetchall()
        Warehouse.evolve(con, ANALYTICS_SCHEMA, mart.name, {r[0]: r[1] for r in described})
    for run in windows(redo):
        con.execute(f"DELETE FROM {mart.table} WHERE day BETWEEN ? AND ?", [run[0], run[-1]])
        con.execute(
            f"INSERT INTO {mart.table} BY NAME SELECT * FROM ({mart.sql})", [run[0], run[-1]]
        )
    return redo
