"""The readers' snapshot's cost, in its own process: ``python -m bench.publish NAME '<json>'``.

- ``measure``: publish a warehouse file the way runs do (``snapshot.publish``: checkpointed
  file copied, renamed over the snapshot), and, for comparison, rewrite it with DuckDB's
  ``COPY FROM DATABASE``; the warehouse's size and both times.
- ``scale``: a warehouse ``factor`` times larger than ``src``: every table's rows ``factor``
  times, visitor ids made distinct per copy so the data compresses like real history would.

Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time


def measure(duckdb: str) -> dict:
    import duckdb as ddb

    from pendo_assets.warehouse.snapshot import publish
    from pendo_assets.warehouse.store import Warehouse

    read = duckdb.replace(".duckdb", ".bench-read.duckdb")
    if os.path.exists(read):
        os.remove(read)
    started = time.perf_counter()
    done = publish(Warehouse(duckdb), read)
    publish_s = time.perf_counter() - started
    assert done is not None and os.path.getsize(read) == os.path.getsize(duckdb)
    os.remove(read)
    rewrite = duckdb.replace(".duckdb", ".bench-copy.duckdb")
    con = ddb.connect()
    try:
        started = time.perf_counter()
        con.execute(f"ATTACH '{duckdb}' AS src (READ_ONLY)")
        con.execute(f"ATTACH '{rewrite}' AS dst")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
        copy_s = time.perf_counter() - started
    finally:
        con.close()
    copy_bytes = os.path.getsize(rewrite)
    os.remove(rewrite)
    return {
        "bytes": os.path.getsize(duckdb),
        "publish_s": publish_s,
        "copy_from_database_s": copy_s,
        "copy_from_database_bytes": copy_bytes,
    }


def scale(src: str, dst: str, factor: int) -> dict:
    import duckdb as ddb

    con = ddb.connect(dst)
    try:
        con.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'src'"
        ).fetchall()
        rows = 0
        for schema, table in tables:
            cols = {c for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'src' "
                "AND schema_name = ? AND table_name = ?", [schema, table]).fetchall()}  # fmt: skip
            fq = f'"{schema}"."{table}"'
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.execute(f"CREATE TABLE {fq} AS SELECT * FROM src.{fq} LIMIT 0")
            for i in range(factor):
                select = "SELECT *"
                if "visitor_id" in cols:
                    select += f" REPLACE (visitor_id || '#{i}' AS visitor_id)"
                con.execute(f"INSERT INTO {fq} {select} FROM src.{fq}")
            rows += con.execute(f"SELECT count(*) FROM {fq}").fetchone()[0]
        con.execute("DETACH src")
    finally:
        con.close()
    return {"rows": rows, "bytes": os.path.getsize(dst)}


WORKERS = {"measure": measure, "scale": scale}


def main() -> None:
    print(json.dumps(WORKERS[sys.argv[1]](**json.loads(sys.argv[2]))))


if __name__ == "__main__":
    main()
