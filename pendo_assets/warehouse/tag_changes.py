"""What changed in a keyed table between two loads, kept until it is dealt with.

A load of a table of *tags* (rows whose rules decide which rows of another, daily table belong
to them) compares the rows it replaces with the new ones, in the load's transaction: a key that
is new, gone, or whose watched columns differ is recorded in ``_state.tag_changes`` as pending,
with whether the row is still flagged (``dirty``: its owner is still recomputing). A repair that
rewrote a tag's rows marks the pending record repaired, in the same transaction as its rows.
No Pendo knowledge here: the asset layer says which columns to watch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from pendo_assets.pendo.days import windows
from pendo_assets.warehouse.side_tables import STATE_SCHEMA, SideTable
from pendo_assets.warehouse.store import Statement, Warehouse, quote, run_statement

TAG_CHANGES_TABLE = SideTable(
    schema=STATE_SCHEMA,
    name="tag_changes",
    description="One row per tag found new, changed or deleted by a load of its table, pending "
    "until a repair rewrites that tag's rows of the daily table (then marked repaired, with "
    "its rows before and after).",
    columns={
        "source": ("VARCHAR", "The daily table's source whose rows follow the tag"),
        "tag_id": ("VARCHAR", "The tag's id"),
        "change": ("VARCHAR", "new, changed or deleted"),
        "detected_at": ("TIMESTAMPTZ", "When the load that saw it ran"),
        "dirty": ("BOOLEAN", "Still being recomputed at the newest load: the repair waits"),
        "repaired_at": ("TIMESTAMPTZ", "When a repair reloaded its rows; NULL while pending"),
        "repair_run": ("VARCHAR", "The Dagster run that repaired it"),
        "rows_before": ("BIGINT", "The tag's rows in the repaired days, before the repair"),
        "rows_after": ("BIGINT", "... and after it"),
    },
)
TAG_CHANGES = TAG_CHANGES_TABLE.fq
_PREV = "_tag_watch_previous"
# Keys of a load's report (materialization metadata) that the repair sensor reads.
DETECTED, REPAIRS_DUE = "tag_changes_detected", "tag_repairs_due"

CREATE = TAG_CHANGES_TABLE.create


@dataclass(frozen=True)
class Pending:
    """Tags of one source whose rows must be reloaded (``reload``) or removed (``deleted``),
    and those that wait while their owner still recomputes them (``waiting``)."""

    reload: tuple[str, ...]
    deleted: tuple[str, ...]
    waiting: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.reload or self.deleted)


@dataclass
class TagWatch:
    """Records changes of the keyed table it watches (see the module docstring).

    ``fingerprint`` columns (rules, last-updated time) decide "changed"; ``flag`` is the dirty
    column; ``also`` are statements run when anything changed (forgetting state that assumed
    the old rows). After a write, ``detected`` holds what it recorded, ``due`` what is pending
    for the source now, and ``day_runs`` the runs of days ``daily_table`` holds (what a repair
    rewrites).
    """

    source: str
    key: str
    fingerprint: Sequence[str]
    flag: str | None
    now: datetime
    daily_table: tuple[str, str]
    also: Sequence[Statement] = ()
    existed: bool = field(default=False, init=False)
    detected: list[tuple[str, str, bool]] = field(default_factory=list, init=False)
    due: Pending | None = field(default=None, init=False)
    day_runs: list[tuple[date, date]] = field(default_factory=list, init=False)

    def _select(self, con, schema: str, table: str) -> str:
        have = Warehouse.columns(con, schema, table)
        parts = [
            f"coalesce(CAST({quote(c)} AS VARCHAR), '')" if c in have else "''"
            for c in self.fingerprint
        ]
        flag = f"coalesce({quote(self.flag)}, false)" if self.flag in have else "false"
        fingerprint = ", ".join(parts) or "''"
        return (
            f"SELECT CAST({quote(self.key)} AS VARCHAR) AS id, md5(concat_ws('|', "
            f"{fingerprint})) AS fp, {flag} AS dirty "
            f"FROM {quote(schema)}.{quote(table)}"
        )

    def before(self, con, schema: str, table: str) -> None:
        self.existed = bool(Warehouse.columns(con, schema, table))
        self.detected = []
        if self.existed:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {_PREV} AS {self._select(con, schema, table)}"
            )

    def after(self, con, schema: str, table: str) -> None:
        # A first load has nothing to compare with: every tag is as Pendo computed it.
        if not self.existed:
            return
        self._detect(con, schema, table)
        self.due = _pending(con, self.source)
        daily_schema, daily = self.daily_table
        if self.due and Warehouse.columns(con, daily_schema, daily):
            days = con.execute(
                f"SELECT DISTINCT day FROM {quote(daily_schema)}.{quote(daily)} ORDER BY 1"
            ).fetchall()
            self.day_runs = [(w[0], w[-1]) for w in windows([d for (d,) in days])]

    def report(self) -> dict:
        """What the write found, JSON-ready: the changes it detected and the repairs due."""
        due = self.due or Pending((), (), ())
        return {
            DETECTED: [{"tag_id": t, "change": c, "dirty": d} for t, c, d in self.detected],
            REPAIRS_DUE: {
                "source": self.source,
                "reload": list(due.reload),
                "deleted": list(due.deleted),
                "waiting_while_dirty": list(due.waiting),
                "day_runs": [[a.isoformat(), b.isoformat()] for a, b in self.day_runs],
            },
        }

    def _detect(self, con, schema: str, table: str) -> None:
        current = self._select(con, schema, table)
        self.detected = con.execute(
            f"""SELECT coalesce(n.id, p.id),
                       CASE WHEN p.id IS NULL THEN 'new' WHEN n.id IS NULL THEN 'deleted'
                            ELSE 'changed' END,
                       coalesce(n.dirty, false)
                FROM ({current}) n FULL JOIN {_PREV} p ON n.id = p.id
                WHERE p.id IS NULL OR n.id IS NULL OR n.fp <> p.fp
                ORDER BY 1"""
        ).fetchall()
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
        con.execute(CREATE)
        if self.detected:
            ids = [t for t, _, _ in self.detected]
            # A newer change supersedes a pending one; a tag new since the last repair and
            # changed again is still new (none of its rows are loaded).
            was_new = {
                t
                for (t,) in con.execute(
                    f"SELECT tag_id FROM {TAG_CHANGES} WHERE source = $s AND repaired_at IS NULL "
                    "AND change = 'new' AND tag_id IN (SELECT unnest($ids::VARCHAR[]))",
                    {"s": self.source, "ids": ids},
                ).fetchall()
            }
            con.execute(
                f"DELETE FROM {TAG_CHANGES} WHERE source = $s AND repaired_at IS NULL "
                "AND tag_id IN (SELECT unnest($ids::VARCHAR[]))",
                {"s": self.source, "ids": ids},
            )
            changes = ["new" if t in was_new and c == "changed" else c for t, c, _ in self.detected]
            con.execute(
                f"INSERT INTO {TAG_CHANGES} (source, tag_id, change, detected_at, dirty) "
                "SELECT $s, unnest($ids::VARCHAR[]), unnest($changes::VARCHAR[]), $now, "
                "unnest($dirty::BOOLEAN[])",
                {
                    "s": self.source,
                    "ids": ids,
                    "changes": changes,
                    "now": self.now,
                    "dirty": [d for _, _, d in self.detected],
                },
            )
            for statement in self.also:
                run_statement(con, statement)
        # Pendo may have finished (or restarted) recomputing a pending tag since.
        con.execute(
            f"UPDATE {TAG_CHANGES} t SET dirty = n.dirty FROM ({current}) n "
            "WHERE t.source = $s AND t.repaired_at IS NULL AND t.tag_id = n.id",
            {"s": self.source},
        )
        con.execute(f"DROP TABLE IF EXISTS {_PREV}")


def _pending(con, source: str) -> Pending:
    if not Warehouse.columns(con, STATE_SCHEMA, "tag_changes"):
        return Pending((), (), ())
    rows = con.execute(
        f"SELECT tag_id, change, dirty FROM {TAG_CHANGES} "
        "WHERE source = ? AND repaired_at IS NULL ORDER BY tag_id",
        [source],
    ).fetchall()
    ready = [(t, c) for t, c, dirty in rows if not dirty or c == "deleted"]
    return Pending(
        tuple(t for t, c in ready if c != "deleted"),
        tuple(t for t, c in ready if c == "deleted"),
        tuple(t for t, c, dirty in rows if dirty and c != "deleted"),
    )


def mark_repaired(
    source: str,
    counts: dict[str, tuple[int, int]],
    run_id: str,
    started: datetime,
    now: datetime,
) -> list[Statement]:
    """Statements that mark the pending changes of these tags, seen before the repair
    ``started``, repaired (run in the transaction that rewrites their rows). ``counts``:
    tag -> (rows before, rows after)."""
    if not counts:
        return []
    tags = sorted(counts)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}",
        CREATE,
        (
            f"UPDATE {TAG_CHANGES} t SET repaired_at = $now, repair_run = $run, "
            "rows_before = c.before, rows_after = c.after "
            "FROM (SELECT unnest($tags::VARCHAR[]) AS tag, unnest($before::BIGINT[]) AS before, "
            "unnest($after::BIGINT[]) AS after) c "
            "WHERE t.source = $s AND t.tag_id = c.tag AND t.repaired_at IS NULL "
            "AND t.detected_at <= $started",
            {
                "now": now,
                "run": run_id,
                "tags": tags,
                "before": [counts[t][0] for t in tags],
                "after": [counts[t][1] for t in tags],
                "s": source,
                "started": started,
            },
        ),
    ]
