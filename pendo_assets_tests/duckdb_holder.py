"""An analyst's SQL client, as its own process (DuckDB's file lock is per process): it opens a
DuckDB file read-only (``--read-write``: as a writer) and keeps it open, answering commands on
stdin, one per line:

- ``days <schema.table>``: a JSON list of [day, rows] of the table, by day;
- ``reconnect``: close and open the file again (what a BI tool does on refresh);
- ``quit``.

With ``--hold-s N`` it takes no commands: it holds the file N seconds, then closes it and exits.
It prints ``ready`` once the file is open.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import duckdb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--hold-s", type=float, default=None)
    parser.add_argument("--read-write", action="store_true")
    args = parser.parse_args()
    con = duckdb.connect(args.path, read_only=not args.read_write)
    print("ready", flush=True)
    if args.hold_s is not None:
        time.sleep(args.hold_s)
        con.close()
        return
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "days":
            rows = con.execute(f"SELECT day, count(*) FROM {arg} GROUP BY 1 ORDER BY 1").fetchall()
            print(json.dumps([[d.isoformat(), n] for d, n in rows]), flush=True)
        elif cmd == "reconnect":
            con.close()
            con = duckdb.connect(args.path, read_only=True)
            print("ok", flush=True)
        elif cmd == "quit":
            break
    con.close()


if __name__ == "__main__":
    main()
