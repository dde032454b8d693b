"""DuckDB warehouse: atomic replace of tables and day partitions, insert by column name,
schema evolution, and one writer at a time across processes. No Pendo knowledge here.

DuckDB lets only one process open a database file, even read-only, while another has it open.
So every access takes an OS file lock beside the database (released by the OS even when the
holder is SIGKILLed), opens the file for one short transaction, and closes it right away.
Slow work (fetching from Pendo) happens before, on staged Parquet files. A process outside the
project (an analyst's SQL client) that holds the file is waited for, with backoff, up to
``lock_wait_s``; readers belong on the published snapshot (``snapshot.py``) instead.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

log = logging.getLogger("pendo_assets.warehouse")

T = TypeVar("T")
DAY_COLUMN = "day"
FILES_PER_SCAN = 31

_NUMERIC_RANK = {"BIGINT": 1, "DOUBLE": 2}
# information_schema spells some types differently from how we declare them.
_ALIASES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}


def _is_timestamptz(t: str) -> bool:
    return _ALIASES.get(t.upper(), t.upper()) == "TIMESTAMPTZ"


def widen(a: str, b: str) -> str:
    """The narrowest DuckDB type that holds values of both types without loss.

    Integers that meet timestamps are epoch milliseconds, the only way times arrive (a field
    inferred as a number before its declared type was known): they become timestamps.
    """
    a, b = a.upper(), b.upper()
    if a == b or _ALIASES.get(a, a) == _ALIASES.get(b, b):
        return a
    if {a, b} & {"BIGINT"} and (_is_timestamptz(a) or _is_timestamptz(b)):
        return a if _is_timestamptz(a) else b
    if a in _NUMERIC_RANK and b in _NUMERIC_RANK:
        return a if _NUMERIC_RANK[a] > _NUMERIC_RANK[b] else b
    if {a, b} <= {"INTEGER", "BIGINT", "HUGEINT"}:
        return "BIGINT"
    return "VARCHAR"


def convert(expr: str, have: str, want: str) -> str:
    """SQL turning ``expr`` of type ``have`` into ``want`` (epoch ms into timestamps, see
    ``widen``; everything else a cast)."""
    if have.upper() == "BIGINT" and _is_timestamptz(want):
        return f"timezone('UTC', epoch_ms({expr}))"
    return f"CAST({expr} AS {want})"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class StagedFile:
    """A Parquet file holding one batch, with the DuckDB type of each of its columns."""

    path: Path
    types: dict[str, str]
    rows: int


def stage(table: pa.Table, types: dict[str, str], path: Path) -> StagedFile:
    # Staging files live for seconds: cheap LZ4 beats zstd's smaller files here.
    pq.write_table(table, path, compression="lz4")
    return StagedFile(path, dict(types), table.num_rows)


# A statement run inside a write's transaction: SQL alone, or SQL and its parameters.
Statement = str | tuple[str, list | dict]


class Watch(Protocol):
    """Something that looks at a table around a write, in the write's transaction: ``before``
    sees the rows being replaced, ``after`` the rows that replaced them."""

    def before(self, con: duckdb.DuckDBPyConnection, schema: str, table: str) -> None: ...

    def after(self, con: duckdb.DuckDBPyConnection, schema: str, table: str) -> None: ...


def run_statement(con: duckdb.DuckDBPyConnection, statement: Statement) -> None:
    if isinstance(statement, str):
        con.execute(statement)
    else:
        con.execute(*statement)


@dataclass
class WriteResult:
    rows_by_day: dict[date, int] = field(default_factory=dict)
    rows_written: int = 0
    table_rows: int = 0
    columns: list[tuple[str, str]] = field(default_factory=list)
    preview: str = ""  # the first rows written, as a markdown table
    # Other days a query write's ``prepare`` step rewrote, with what it reports about each.
    other_days: dict[date, dict] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)  # what the write adds to the output's metadata
    summary: str = ""  # one line for the run's log


# DuckDB's words when another process holds the file: 'IO Error: Could not set lock on file
# "/x.duckdb": Conflicting lock is held in /usr/bin/duckdb (PID 4242) by user ann. ...'
_LOCK_CONFLICT = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
# The first retry comes quickly (a client that only runs one query), later ones every few s.
# How long a writer waits for a process outside the project (an analyst's SQL client) to let go
# of the file: the PENDO_DUCKDB_LOCK_WAIT_S setting's default, written here once.
LOCK_WAIT_S = 300.0
LOCK_RETRY_FIRST_S = 0.1
LOCK_RETRY_MAX_S = 5.0


class WarehouseLockedError(RuntimeError):
    """Another process held the warehouse file for longer than the run may wait."""


def lock_holder(message: str) -> str:
    """'PID 4242 (/usr/bin/duckdb)' from DuckDB's lock error, or what DuckDB said."""
    m = _HOLDER.search(message)
    return f"PID {m['pid']} ({m['program']})" if m else "another process"


class Warehouse:
    """One DuckDB database; every method opens, works in one transaction, and closes."""

    _local_locks: dict[str, threading.RLock] = {}

    def __init__(
        self,
        path: str,
        lock_timeout_s: float = 1800.0,
        memory_limit: str | None = None,
        lock_wait_s: float = LOCK_WAIT_S,
        read_path: str | None = None,
        log_wait: Callable[[str], None] | None = None,
    ):
        """``lock_wait_s``: how long to wait for a process outside the project that holds the
        file; ``read_path``: where readers belong instead (named in the error); ``log_wait``:
        where to say, once, that a wait began (the run's log)."""
        self.path = path
        self.lock_wait_s = lock_wait_s
        self.read_path = read_path
        self._log_wait = log_wait or log.warning
        # DuckDB's own default is 80% of RAM; PENDO_DUCKDB_MEMORY_LIMIT caps it (it spills).
        self._config = {"memory_limit": memory_limit} if memory_limit else {}
        self.remote = path.startswith(("md:", "motherduck:"))
        self.lock_timeout_s = lock_timeout_s
        if not self.remote:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file_lock = FileLock(path + ".lock", timeout=lock_timeout_s)
        self._thread_lock = self._local_locks.setdefault(path, threading.RLock())

    # -- connections ----------------------------------------------------------------------
    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An open connection held under the cross-process lock; closed on exit."""
        # MotherDuck has no local file to lock: its service serialises writers itself.
        with self.exclusive():
            con = self._open()
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No other thread or project process uses the file meanwhile (it is not opened)."""
        with self._thread_lock, nullcontext() if self.remote else self._file_lock:
            yield

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting with backoff while a process outside the project holds it."""
        return self.wait_for_file(lambda: duckdb.connect(self.path, config=self._config))

    def wait_for_file(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, retried with backoff for up to ``lock_wait_s`` while it fails because
        another process holds DuckDB's lock on the file; says once who is waited for."""
        deadline = time.monotonic() + self.lock_wait_s
        pause, holder = LOCK_RETRY_FIRST_S, None
        while True:
            try:
                return attempt()
            except (duckdb.IOException, BlockingIOError) as exc:
                message = str(exc)
                if isinstance(exc, duckdb.IOException) and _LOCK_CONFLICT not in message:
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WarehouseLockedError(self._locked_message(message)) from None
                if holder is None:
                    holder = lock_holder(message)
                    self._log_wait(
                        f"Waiting for {holder} to close the DuckDB warehouse {self.path} "
                        f"(up to {self.lock_wait_s:.0f} s, PENDO_DUCKDB_LOCK_WAIT_S); what this "
                        "run fetched is kept and written as soon as the file is free."
                    )
                time.sleep(min(pause, left))
                pause = min(pause * 2, LOCK_RETRY_MAX_S)

    def _locked_message(self, duckdb_message: str) -> str:
        readers = (
            f"point SQL clients and BI tools at the published snapshot {self.read_path} "
            "(PENDO_DUCKDB_READ_PATH), which runs never wait for"
            if self.read_path
            else "point SQL clients and BI tools at a published snapshot (PENDO_DUCKDB_READ_PATH)"
        )
        return (
            f"The DuckDB warehouse {self.path} is held open by {lock_holder(duckdb_message)}, "
            f"still after waiting {self.lock_wait_s:.0f} s (PENDO_DUCKDB_LOCK_WAIT_S). Close the "
            "SQL client, BI tool or notebook connected to that file (DuckDB CLI, DBeaver, "
            f"DataGrip, Metabase, Evidence, a Python session) and re-run; {readers}. "
            f"DuckDB said: {duckdb_message.split('. However')[0]}"
        )

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- schema ---------------------------------------------------------------------------
    @staticmethod
    def columns(con, schema: str, table: str) -> dict[str, str]:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
        return {name: dtype for name, dtype in rows}

    @classmethod
    def evolve(cls, con, schema: str, table: str, types: dict[str, str]) -> dict[str, str]:
        """Create the table, add missing columns and widen types so ``types`` fits."""
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        existing = cls.columns(con, schema, table)
        fq = f"{quote(schema)}.{quote(table)}"
        if not existing:
            cols = ", ".join(f"{quote(c)} {t}" for c, t in types.items()) or '"_empty" INTEGER'
            con.execute(f"CREATE TABLE {fq} ({cols})")
            return cls.columns(con, schema, table)
        for col, t in types.items():
            have = existing.get(col)
            if have is None:
                con.execute(f"ALTER TABLE {fq} ADD COLUMN {quote(col)} {t}")
            else:
                want = widen(have, t)
                if want != have.upper():
                    using = convert(quote(col), have, want)
                    con.execute(
                        f"ALTER TABLE {fq} ALTER COLUMN {quote(col)} TYPE {want} USING {using}"
                    )
        return cls.columns(con, schema, table)

    @staticmethod
    def _insert_files(con, fq: str, files: Sequence[StagedFile], target: dict[str, str]) -> None:
        """Insert staged files by column name; files with the same columns go in one scan."""
        groups: dict[tuple, list[StagedFile]] = {}
        for f in files:
            if f.rows and f.types:
                groups.setdefault(tuple(sorted(f.types.items())), []).append(f)
        for sig, group in groups.items():
            select = ", ".join(f"{convert(quote(c), t, target[c])} AS {quote(c)}" for c, t in sig)
            # A month of days per scan: a year in one scan makes DuckDB buffer far more.
            for i in range(0, len(group), FILES_PER_SCAN):
                con.execute(
                    f"INSERT INTO {fq} BY NAME SELECT {select} FROM read_parquet(?)",
                    [[str(f.path) for f in group[i : i + FILES_PER_SCAN]]],
                )

    # -- writes ---------------------------------------------------------------------------
    def replace_table(
        self,
        schema: str,
        table: str,
        files: Sequence[StagedFile],
        base_types: dict[str, str],
        after: Sequence[Statement] = (),
        merge_key: str | None = None,
        watch: Watch | None = None,
    ) -> WriteResult:
        """Write the staged rows into an unpartitioned table in one transaction, then run the
        ``after`` statements in it. Without ``merge_key`` every row is replaced; with it the
        rows are upserted by that column (an incremental load never deletes). ``watch`` sees
        the table before and after, in the same transaction."""
        paths = [str(f.path) for f in files if f.rows and f.types]

        def clear(con, fq: str, target: dict[str, str]) -> None:
            if merge_key is None:
                con.execute(f"DELETE FROM {fq}")
            elif paths:
                con.execute(
                    f"DELETE FROM {fq} WHERE {quote(merge_key)} IN "
                    f"(SELECT CAST({quote(merge_key)} AS {target[merge_key]}) "
                    "FROM read_parquet(?))",
                    [paths],
                )

        return self._write_staged(schema, table, files, base_types, clear, None, after, watch)

    def replace_slices(
        self,
        schema: str,
        table: str,
        key_column: str | None,
        slices: Sequence[tuple[date, str | None]],
        files: Sequence[StagedFile],
        base_types: dict[str, str],
        days: Sequence[date],
        after: Sequence[Statement] = (),
    ) -> WriteResult:
        """Atomically replace some slices of a daily table with the staged rows, which hold
        exactly those slices: ``(day, key)`` is the rows of ``day`` whose ``key_column`` is
        ``key``, ``(day, None)`` the whole day. Every other row stays. ``days`` are the days
        the result reports on."""
        whole = sorted({d for d, k in slices if k is None})
        keyed = [(d, k) for d, k in slices if k is not None and d not in set(whole)]

        def clear(con, fq: str, target: dict[str, str]) -> None:
            if whole:
                _delete_days(con, fq, whole)
            if keyed:
                con.execute(
                    f"DELETE FROM {fq} USING (SELECT unnest($days::DATE[]) AS d, "
                    f"unnest($keys::VARCHAR[]) AS k) s WHERE {fq}.{DAY_COLUMN} = s.d "
                    f"AND CAST({fq}.{quote(key_column)} AS VARCHAR) = s.k",
                    {"days": [d for d, _ in keyed], "keys": [k for _, k in keyed]},
                )

        return self._write_staged(schema, table, files, base_types, clear, days, after)

    def replace_days(
        self,
        schema: str,
        table: str,
        days: Sequence[date],
        files: Sequence[StagedFile],
        base_types: dict[str, str],
    ) -> WriteResult:
        """Atomically replace the rows of ``days`` with the staged files' rows."""

        def clear(con, fq: str, target: dict[str, str]) -> None:
            _delete_days(con, fq, days)

        return self._write_staged(schema, table, files, base_types, clear, days)

    def _write_staged(
        self,
        schema: str,
        table: str,
        files: Sequence[StagedFile],
        base_types: dict[str, str],
        clear: Callable[[duckdb.DuckDBPyConnection, str, dict[str, str]], None],
        days: Sequence[date] | None,
        after: Sequence[Statement] = (),
        watch: Watch | None = None,
    ) -> WriteResult:
        """One transaction: widen the table for the staged columns, ``clear`` the rows being
        replaced, insert the staged rows, run ``after``."""
        types = _merged_types(base_types, files)
        fq = f"{quote(schema)}.{quote(table)}"
        with self.transaction() as con:
            if watch is not None:
                watch.before(con, schema, table)
            target = self.evolve(con, schema, table, types)
            clear(con, fq, target)
            self._insert_files(con, fq, files, target)
            for statement in after:
                run_statement(con, statement)
            if watch is not None:
                watch.after(con, schema, table)
            result = self._result(con, schema, table, days)
        result.rows_written = sum(f.rows for f in files)
        return result

    def replace_days_from_query(
        self,
        schema: str,
        table: str,
        days: Sequence[date],
        sql: str,
        prepare: Callable[[duckdb.DuckDBPyConnection], dict[date, dict]] | None = None,
    ) -> WriteResult:
        """Atomically replace ``days`` with the rows of a query run inside DuckDB.

        ``sql`` takes the first and last day as ``$1`` and ``$2`` and returns a ``day``
        column; only rows of ``days`` are kept, so a set of days with gaps is safe too.
        ``prepare`` runs first in the same transaction (upkeep the query reads, which may
        rewrite other days of the table); the days it returns are ``other_days`` of the result.
        """
        fq = f"{quote(schema)}.{quote(table)}"
        days = sorted(set(days))
        with self.transaction() as con:
            other_days = prepare(con) if prepare is not None else {}
            described = con.execute(f"DESCRIBE ({sql})", [days[0], days[-1]]).fetchall()
            types = {row[0]: row[1] for row in described}
            target = self.evolve(con, schema, table, types)
            _delete_days(con, fq, days)
            select = ", ".join(f"CAST({quote(c)} AS {target[c]}) AS {quote(c)}" for c in types)
            con.execute(
                f"INSERT INTO {fq} BY NAME SELECT {select} FROM ({sql}) "
                f"WHERE {DAY_COLUMN} IN (SELECT unnest($3::DATE[]))",
                [days[0], days[-1], days],
            )
            result = self._result(con, schema, table, days)
        result.rows_written = sum(result.rows_by_day.values())
        result.other_days = other_days
        return result

    def replace_table_from_query(self, schema: str, table: str, sql: str) -> WriteResult:
        fq = f"{quote(schema)}.{quote(table)}"
        with self.transaction() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            con.execute(f"CREATE OR REPLACE TABLE {fq} AS {sql}")
            result = self._result(con, schema, table, None)
        result.rows_written = result.table_rows
        return result

    def table_result(self, con, schema: str, table: str) -> WriteResult:
        """Rows, columns and a preview of a whole table, as a write reports them."""
        return self._result(con, schema, table, None)

    def _result(self, con, schema: str, table: str, days: Sequence[date] | None) -> WriteResult:
        fq = f"{quote(schema)}.{quote(table)}"
        res = WriteResult()
        res.table_rows = con.execute(f"SELECT count(*) FROM {fq}").fetchone()[0]
        res.columns = list(self.columns(con, schema, table).items())
        res.preview = self._preview(con, fq, days)
        if days is not None:
            counts = dict(
                con.execute(
                    f"SELECT {DAY_COLUMN}, count(*) FROM {fq} "
                    f"WHERE {DAY_COLUMN} BETWEEN ? AND ? GROUP BY 1",
                    [min(days), max(days)],
                ).fetchall()
            )
            res.rows_by_day = {d: counts.get(d, 0) for d in days}
        return res

    # -- reads ----------------------------------------------------------------------------
    def exists(self, schema: str, table: str) -> bool:
        with self.connect() as con:
            return bool(self.columns(con, schema, table))

    def missing(self, tables: Sequence[str]) -> list[str]:
        """Which of ``tables`` (``schema.table``) are not in the warehouse: one connection."""
        with self.connect() as con:
            present = {
                f"{s}.{t}"
                for s, t in con.execute(
                    "SELECT table_schema, table_name FROM information_schema.tables"
                ).fetchall()
            }
        return [t for t in tables if t not in present]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with self.connect() as con:
            return con.execute(sql, params or []).fetchall()

    def read_df(self, schema: str, table: str, days: Sequence[date] | None = None):
        fq = f"{quote(schema)}.{quote(table)}"
        with self.connect() as con:
            if days is None:
                return con.execute(f"SELECT * FROM {fq}").df()
            return con.execute(
                f"SELECT * FROM {fq} WHERE {DAY_COLUMN} BETWEEN ? AND ? ORDER BY {DAY_COLUMN}",
                [min(days), max(days)],
            ).df()

    @staticmethod
    def _preview(con, fq: str, days: Sequence[date] | None, limit: int = 5) -> str:
        where, params = "", []
        if days is not None:
            where = f" WHERE {DAY_COLUMN} BETWEEN ? AND ?"
            params = [min(days), max(days)]
        cur = con.execute(f"SELECT * FROM {fq}{where} LIMIT {int(limit)}", params)
        return markdown_table([d[0] for d in cur.description], cur.fetchall())


def markdown_table(names: list[str], rows: list[tuple], width: int = 40) -> str:
    def cell(v) -> str:
        s = "" if v is None else str(v)
        s = s.replace("|", "\\|").replace("\n", " ")
        return s if len(s) <= width else s[: width - 1] + "…"

    head = "| " + " | ".join(names) + " |"
    sep = "|" + "---|" * len(names)
    body = ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def _merged_types(base: dict[str, str], files: Sequence[StagedFile]) -> dict[str, str]:
    types = dict(base)
    for f in files:
        for c, t in f.types.items():
            types[c] = widen(types[c], t) if c in types else t
    return types


def _delete_days(con, fq: str, days: Sequence[date]) -> None:
    days = sorted(set(days))
    contiguous = (days[-1] - days[0]).days + 1 == len(days)
    if contiguous:
        con.execute(f"DELETE FROM {fq} WHERE {DAY_COLUMN} BETWEEN ? AND ?", [days[0], days[-1]])
    else:
        con.execute(f"DELETE FROM {fq} WHERE {DAY_COLUMN} IN (SELECT unnest(?))", [days])
