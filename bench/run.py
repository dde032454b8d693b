"""`make bench`: the project against the naive way of loading Pendo, side by side, as figures.

Modes (each contender runs in its own process, so CPU and peak RSS are its own):

- default: the emulator with a latency model of 50 ms + 50 ms per day asked and a year of
  history. Naive script (sequential one-day requests, json.loads, pd.json_normalize, pd.concat
  in a loop, merge for names) vs the project through the README's one ``dg launch``
  (entities, the 6 event assets and their enriched assets over the range). Requests and
  Pendo time are printed per source for both.
- ``--mode ingest``: no latency, large payloads, no HTTP and no Dagster: response bytes ->
  typed table -> DuckDB, for the project's path, the naive one and DuckDB's own ``read_json``
  of the same bytes (the practical ceiling).
- ``--mode events``: Dagster's own bookkeeping of a one-year range run of 4 assets that do
  nothing, on the stock SQLite event log and on the project's batched one (``make dev``'s
  instance config, ``pendo_assets/instance/event_log.py``).
- ``--mode visitors``: 1,000,000 visitors loaded by the project's path and by the naive one
  (peak RSS of each), then one enriched day against that visitors table (timed).

- ``--mode retag``: a one-year warehouse after Pendo recomputed one new page's and one edited
  feature's history: the tag repair (only those tags' rows) against a full reload of both event
  tables: wall time, requests, Pendo days asked (``bench/retag.py``).
- ``--mode refresh``: the morning visitors refresh (1,000,000 by default, ``--visitors N``)
  after 1% of them changed: full re-read vs incremental (``lastupdated`` filter + merge by
  id), each followed by the history fold: wall time, requests, bytes, peak RSS.

- ``--mode publish``: the one-year backfill as users run it (each command publishes the
  readers' snapshot at its end), then the publish alone on that warehouse and on one 10x
  larger, beside DuckDB's ``COPY FROM DATABASE`` of the same file (bench/publish.py).

``--quick`` shrinks everything for a smoke run. Output is a plain-text table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pendo_assets import clock
from pendo_assets.catalog import ANALYTICS_SCHEMA, ENTITIES, EVENTS, RAW_SCHEMA, EventSource
from pendo_assets.instance import write_local_config

KEY = "bench-key"
PROJECT = "project (1 dagster command)"
TIMEZONE = "America/New_York"


def backfill_sources() -> tuple[EventSource, ...]:
    """The backfill loads every event source of the catalog."""
    return EVENTS


def backfill_keys() -> list[str]:
    """The README's backfill: one run of the entities, the event sources and their enriched
    tables over the range (pendo_assets/step_order.py orders its steps; a test holds the README
    to this list)."""
    return [
        *(f"{RAW_SCHEMA}/{s.table}" for s in ENTITIES),
        *(f"{RAW_SCHEMA}/{s.table}" for s in backfill_sources()),
        *(f"{ANALYTICS_SCHEMA}/{s.table}" for s in backfill_sources()),
    ]


def ingest_sources() -> tuple[str, ...]:
    """The ingest mode keeps to the catalog's aggregated event sources."""
    return tuple(s.name for s in EVENTS if not s.per_event)


@dataclass
class Result:
    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    rows: int = 0
    requests: int | None = None
    max_in_flight: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_cpu_s(self) -> float:
        return self.rows / self.cpu_s if self.cpu_s else 0.0


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, float, str]:
    """Run ``cmd`` to completion: (wall s, CPU s incl. its children, peak RSS MB, stdout)."""
    started = time.monotonic()
    # stderr (Dagster's logs) goes to a file: two pipes read one after the other would
    # deadlock once the unread one fills up.
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=errf)
        out = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        errf.seek(0)
        err = errf.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:8])} failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, out.decode()


# -- the emulator, in its own process ------------------------------------------------------


class Emulator:
    def __init__(self, spec: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.emulator", json.dumps(spec)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        m = re.search(r"http://[\w.:-]+", line)
        if not m:
            self.stop()
            raise SystemExit(f"emulator did not start: {line!r}")
        self.url = m.group(0)

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/_emulator/stats") as r:
            return json.loads(r.read())

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/_emulator/stats/reset", data=b"{}")
        urllib.request.urlopen(req).read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def worker(name: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "bench.workers", name, json.dumps(kwargs, default=str)]


def parse_worker(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# -- modes ---------------------------------------------------------------------------------


def latency_history(args) -> tuple[int, float, date, date, dict]:
    """(days, scale, first, last day loaded, emulator spec) of a year (14 days with --quick)
    up to yesterday, behind the latency model of 50 ms + 50 ms per day asked, warmed."""
    days = 14 if args.quick else 365
    scale = 0.2 if args.quick else 1.0
    today = clock.Clock.from_env().today()
    last = today - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    spec = {
        "first_day": str(first - timedelta(days=1)),
        "last_day": str(today),
        "scale": scale,
        "key": KEY,
        "timezone": TIMEZONE,
        "latency_base_ms": 50,
        "latency_per_day_ms": 50,
        "warm": True,
    }
    return days, scale, first, last, spec


def mode_backfill(args) -> tuple[list[Result], list[str]]:
    days, scale, first, last, spec = latency_history(args)
    results = []
    work = Path(tempfile.mkdtemp(prefix="pendo-bench-"))
    try:
        # Naive: a fresh emulator, so neither side profits from the other's warm caches.
        emu = Emulator(spec)
        try:
            wall, cpu, rss, out = run_measured(
                worker(
                    "naive_backfill",
                    url=emu.url,
                    first=first,
                    last=last,
                    duckdb=str(work / "naive.duckdb"),
                )
            )
            st = emu.stats()
        finally:
            emu.stop()
        info = parse_worker(out)
        naive = Result(
            "naive script",
            wall,
            cpu,
            rss,
            info["rows"],
            st["aggregation_requests"],
            st["max_in_flight"],
        )
        naive.extra["pendo_s"] = st["latency_s"]
        naive.extra["by source"] = per_source(st)
        results.append(naive)
        emu = Emulator(spec)
        try:
            r = project_backfill(emu, first, last, work)
        finally:
            emu.stop()
        results.append(r)
        notes = [
            f"history: {days} days ({first}..{last}), emulator scale {scale}, "
            "latency 50 ms + 50 ms per day asked; each contender gets a fresh emulator with "
            "its history generated before the clock starts",
        ]
        if not args.quick:
            # Memory is bounded by days in flight, not by the range: compare with 7 days.
            emu = Emulator(spec)
            try:
                r7 = project_backfill(emu, last - timedelta(days=6), last, work / "seven")
            finally:
                emu.stop()
            r7.name = "project, 7-day range"
            results.append(r7)
        return results, notes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def project_backfill(emu: Emulator, first: date, last: date, work: Path) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    home = work / "dagster_home"
    home.mkdir(exist_ok=True)
    write_local_config(str(home))  # the instance config `make dev` gives users
    # ... and the instance it creates on its first start (the README's first command): its
    # storages exist before a user's first backfill. Creating them costs ~0.4 s once.
    run_measured(worker("init_instance"), {**os.environ, "DAGSTER_HOME": str(home)})
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PENDO_INTEGRATION_KEY": KEY,
        "PENDO_BASE_URL": emu.url,
        "PENDO_DEMO": "0",
        "PENDO_TIMEZONE": TIMEZONE,
        "PENDO_START_DATE": first.isoformat(),
        "PENDO_DUCKDB_PATH": str(work / "project.duckdb"),
    }
    for k in ("PENDO_MAX_CONCURRENCY", "PENDO_DAYS_PER_REQUEST"):
        env.pop(k, None)  # default settings
    events = backfill_sources()
    dg = str(Path(sys.executable).parent / "dg")
    cmd = [dg, "launch", "--assets", ",".join(backfill_keys()), "--partition-range"]
    cmd.append(f"{first}...{last}")
    r = Result(PROJECT)
    started = time.monotonic()
    r.wall_s, r.cpu_s, r.rss_mb, _ = run_measured(cmd, env)
    st = emu.stats()
    r.requests = st["aggregation_requests"]
    r.max_in_flight = st["max_in_flight"]
    r.extra["pendo_s"] = st["latency_s"]
    r.extra["pendo_busy_s"] = st["busy_s"]
    r.extra["by source"] = per_source(st)
    r.extra["run phases"] = run_phases(home, r.wall_s)
    r.extra["requests in time"] = request_timeline(
        st.get("timeline", []), {"backfill": (started, started + r.wall_s)}
    )
    import duckdb

    con = duckdb.connect(env["PENDO_DUCKDB_PATH"], read_only=True)
    try:
        r.rows = sum(
            con.execute(f"SELECT count(*) FROM {ANALYTICS_SCHEMA}.{s.table}").fetchone()[0]
            for s in events
        )
    finally:
        con.close()
    return r


def per_source(stats: dict) -> dict[str, tuple[int, float]]:
    """(requests, modelled Pendo seconds) per source, from the emulator's stats."""
    pendo = stats.get("latency_by_source", {})
    return {k: (n, pendo.get(k, 0.0)) for k, n in sorted(stats["by_source"].items())}


def request_timeline(timeline: list, spans: dict[str, tuple[float, float]]) -> list[str]:
    """Per command that asked Pendo: when its first request opened and its last one closed
    (seconds from the command's start), and the mean requests open in between: the share of
    the command spent at the bound, whatever else the machine was doing."""
    out = []
    for step, (t0, t1) in spans.items():
        mine = [(a, b) for a, b, *_ in timeline if t0 <= a <= t1]
        if not mine:
            continue
        first, last = min(a for a, _ in mine), max(b for _, b in mine)
        open_s = sum(b - a for a, b in mine)
        out.append(
            f"{step}: first request at {first - t0:.1f} s, last answered at {last - t0:.1f} s "
            f"of {t1 - t0:.1f} s; {open_s / max(last - first, 1e-9):.2f} open on average between"
        )
    return out


def run_phases(home: Path, command_s: float) -> str:
    """Where the backfill command's time went, read back from its Dagster run: before the
    first step (process start-up, definitions, the run and its planned events), the event load
    step (its slowest source's fetch, the rest writes), the steps after it (entities, checks
    waiting for Pendo's totals, enriched) and after the last step."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for record in instance.get_run_records():
            stats = instance.get_run_step_stats(record.dagster_run.run_id)
            load = [s for s in stats if s.step_key == "load_pendo_events"]
            if not load:
                continue
            fetch = max(
                (
                    e.asset_materialization.metadata["fetch_seconds"].value
                    for e in instance.all_logs(
                        record.dagster_run.run_id,
                        of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
                    )
                    if "fetch_seconds" in e.asset_materialization.metadata
                ),
                default=0.0,
            )
            first = min(s.start_time or 0 for s in stats)
            last = max(s.end_time or 0 for s in stats)
            load_s = (load[0].end_time or 0) - (load[0].start_time or 0)
            others = sum(
                (s.end_time or 0) - (s.start_time or 0)
                for s in stats
                if s.step_key != "load_pendo_events"
            )
            after = (record.end_time or last) - last
            before = command_s - (last - first) - after
            return (
                f"start-up before the first step (and exit) {before:.1f} s; "
                f"event load step {load_s:.1f} s (fetch {fetch:.1f} s, writes "
                f"{load_s - fetch:.1f} s); {len(stats) - 1} other steps {others:.1f} s; "
                f"after the last step {after:.1f} s"
            )
    return "no backfill run found"


def mode_events(args) -> tuple[list[Result], list[str]]:
    days = 30 if args.quick else 365
    work = Path(tempfile.mkdtemp(prefix="pendo-bench-events-"))
    results = []
    try:
        for batched in (False, True):
            home = work / f"home-{batched}"
            home.mkdir()
            wall, cpu, rss, out = run_measured(
                worker("dagster_bookkeeping", home=str(home), days=days, assets=4, batched=batched)
            )
            got = parse_worker(out)
            name = "batched event log" if batched else "stock SQLite event log"
            results.append(
                Result(name, wall_s=got["bookkeeping_s"], cpu_s=cpu, rss_mb=rss, rows=got["rows"])
            )
        notes = [f"{days} daily partitions x 4 assets, one range run, assets do nothing"]
        return results, notes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mode_ingest(args) -> tuple[list[Result], list[str]]:
    days = 3 if args.quick else 30
    scale = 1.0 if args.quick else 20.0
    work = Path(tempfile.mkdtemp(prefix="pendo-bench-ingest-"))
    sources = ingest_sources()
    try:
        _, _, _, out = run_measured(
            worker("make_payloads", out=str(work), days=days, scale=scale, sources=sources)
        )
        info = parse_worker(out)
        results = []
        for name, label in (
            ("project_ingest", "project ingestion path"),
            ("naive_ingest", "naive script"),
            ("duckdb_ingest", "DuckDB read_json (ceiling)"),
        ):
            _, _, rss, out = run_measured(worker(name, dir=str(work)))
            w = parse_worker(out)
            # The work alone (bytes -> table -> DuckDB), not interpreter and import start-up.
            results.append(Result(label, w["work_wall_s"], w["work_cpu_s"], rss, w["rows"]))
        notes = [
            f"{days} days x {len(sources)} event sources, emulator scale {scale}: "
            f"{info['files']} payloads, {info['bytes'] / 1e6:.0f} MB of JSON, no latency",
        ]
        return results, notes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mode_visitors(args) -> tuple[list[Result], list[str]]:
    n = 20_000 if args.quick else 1_000_000
    today = clock.Clock.from_env().today()
    spec = {
        "first_day": str(today - timedelta(days=3)),
        "last_day": str(today),
        "n_visitors": n,
        "n_accounts": max(50, n // 100),
        "daily_active_share": 0.05,
        "key": KEY,
        "timezone": TIMEZONE,
    }
    work = Path(tempfile.mkdtemp(prefix="pendo-bench-visitors-"))
    results = []
    try:
        emu = Emulator(spec)
        try:
            day = today - timedelta(days=1)
            wall, cpu, rss, out = run_measured(
                worker("project_visitors", url=emu.url, duckdb=str(work / "p.duckdb"), day=str(day))
            )
            info = parse_worker(out)
            r = Result("project visitors load", wall, cpu, rss, info["visitors"])
            r.requests = emu.stats()["aggregation_requests"]
            results.append(r)
            emu.reset()
            wall, cpu, rss, out = run_measured(
                worker("naive_visitors", url=emu.url, duckdb=str(work / "n.duckdb"))
            )
            r2 = Result("naive visitors load", wall, cpu, rss, parse_worker(out)["visitors"])
            r2.requests = emu.stats()["aggregation_requests"]
            results.append(r2)
        finally:
            emu.stop()
        e = Result("enriched day vs visitors", info["enriched_s"], 0.0, 0.0, info["enriched_rows"])
        results.append(e)
        notes = [
            f"{n:,} visitors; enriched day {day}: {info['enriched_rows']} events joined to "
            f"{info['visitors']:,} visitors in {info['enriched_s']:.3f} s",
        ]
        return results, notes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mode_refresh(args) -> tuple[list[Result], list[str]]:
    """A morning refresh of N visitors where 1% changed overnight: full vs incremental."""
    n = 20_000 if args.quick else args.visitors
    first, last = date(2026, 6, 1), date(2026, 6, 30)  # pinned: figures never depend on today
    spec = {
        "first_day": str(first),
        "last_day": str(last),
        "n_visitors": n,
        "n_accounts": max(50, n // 100),
        "key": KEY,
        "timezone": TIMEZONE,
    }
    work = Path(tempfile.mkdtemp(prefix="pendo-bench-refresh-"))
    base, full_db, inc_db = (str(work / f"{x}.duckdb") for x in ("base", "full", "inc"))
    results: list[Result] = []
    try:
        emu = Emulator(spec)
        try:
            run_measured(worker("refresh_visitors", url=emu.url, duckdb=base, full=True,
                                at="2026-07-01T10:00:00+00:00"))  # fmt: skip
        finally:
            emu.stop()
        for db in (full_db, inc_db):
            shutil.copy(base, db)
        # Overnight, 1% of the visitors changed plan (Pendo bumps their lastupdated).
        edited_at = int(datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp() * 1000)
        edit = {"source": "visitors", "share": 0.01, "at_ms": edited_at,
                "field": "metadata.custom.plan", "value": "enterprise"}  # fmt: skip
        emu = Emulator({**spec, "edits": [edit]})
        try:
            for name, db, full in (("full refresh", full_db, True), ("incremental", inc_db, False)):
                emu.reset()
                wall, cpu, rss, out = run_measured(
                    worker(
                        "refresh_visitors",
                        url=emu.url,
                        duckdb=db,
                        full=full,
                        at="2026-07-02T10:00:00+00:00",
                    )  # fmt: skip
                )
                info = parse_worker(out)
                stats = emu.stats()
                r = Result(name, wall, cpu, rss, info["fetched"])
                r.requests = stats["aggregation_requests"]
                r.extra = {**info, "bytes": stats["response_bytes"]}
                results.append(r)
        finally:
            emu.stop()
        import duckdb

        con = duckdb.connect()
        con.execute(f"ATTACH '{full_db}' AS f (READ_ONLY); ATTACH '{inc_db}' AS i (READ_ONLY)")
        diff = con.execute(
            "SELECT count(*) FROM ((SELECT * FROM f.pendo.visitors EXCEPT ALL "
            "SELECT * FROM i.pendo.visitors) UNION ALL (SELECT * FROM i.pendo.visitors "
            "EXCEPT ALL SELECT * FROM f.pendo.visitors))"
        ).fetchone()[0]
        con.close()
        notes = [f"{n:,} visitors, 1% changed overnight; rows differing between the full and "
                 f"the incremental result: {diff}"]  # fmt: skip
        for r in results:
            notes.append(
                f"{r.name}: {r.wall_s:.1f} s wall, {r.requests} requests, "
                f"{r.extra['bytes'] / 1e6:.1f} MB from Pendo, {r.rows:,} rows fetched, "
                f"peak RSS {r.rss_mb:.0f} MB, {r.extra['new_versions']:,} new history versions"
            )
        return results, notes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mode_publish(args) -> tuple[list[Result], list[str]]:
    """Publish time beside run time: the year's backfill, then the snapshot of its warehouse."""
    days = 14 if args.quick else 365
    last = clock.Clock.from_env().today() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    spec = {"first_day": str(first - timedelta(days=1)), "last_day": str(last + timedelta(days=1)),
            "scale": 0.2 if args.quick else 1.0, "key": KEY, "timezone": TIMEZONE,
            "latency_base_ms": 50, "latency_per_day_ms": 50, "warm": True}  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="pendo-bench-publish-"))
    try:
        emu = Emulator(spec)
        try:
            run = project_backfill(emu, first, last, work)
        finally:
            emu.stop()
        run.name = f"project, {days}-day backfill (1 command)"
        results, notes = [run], []
        year = str(work / "project.duckdb")
        big = str(work / "x10.duckdb")
        _, _, _, out = run_measured(worker_publish("scale", src=year, dst=big, factor=10))
        notes.append(f"x 10: {parse_worker(out)['rows']:,} rows in every table together")
        for label, db in ((f"{days} days", year), (f"{days} days x 10", big)):
            _, _, _, out = run_measured(worker_publish("measure", duckdb=db))
            m = parse_worker(out)
            mb = m["bytes"] / 1e6
            results.append(Result(f"publish, {label} ({mb:,.1f} MB)", m["publish_s"]))
            results.append(Result(f"COPY FROM DATABASE, {label}", m["copy_from_database_s"]))
            notes.append(
                f"{label}: {mb:,.1f} MB warehouse; publish {m['publish_s']:.2f} s "
                f"({mb / max(m['publish_s'], 1e-9):,.0f} MB/s), COPY FROM DATABASE "
                f"{m['copy_from_database_s']:.2f} s ({m['copy_from_database_bytes'] / 1e6:,.1f} MB)"
            )
        return results, notes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def worker_publish(name: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "bench.publish", name, json.dumps(kwargs)]


# -- output --------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = ["", "wall s", "CPU s", "requests", "max in flight", "rows", "rows/CPU-s", "peak RSS MB"]
    lines = []
    for r in results:
        lines.append(
            [
                r.name,
                f"{r.wall_s:.2f}",
                f"{r.cpu_s:.2f}" if r.cpu_s else "-",
                "-" if r.requests is None else str(r.requests),
                "-" if r.max_in_flight is None else str(r.max_in_flight),
                f"{r.rows:,}",
                f"{r.rows_per_cpu_s:,.0f}" if r.cpu_s else "-",
                f"{r.rss_mb:.0f}" if r.rss_mb else "-",
            ]
        )
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def ratios(mode: str, results: list[Result]) -> list[str]:
    by = {r.name: r for r in results}
    out = []
    if mode == "backfill":
        p, n = by[PROJECT], by["naive script"]
        out.append(f"wall ratio project/naive: {p.wall_s / n.wall_s:.3f}  (target <= 0.15)")
        out.append("requests / Pendo s per source (project | naive):")
        for name in sorted(set(p.extra["by source"]) | set(n.extra["by source"])):
            pr, ps = p.extra["by source"].get(name, (0, 0.0))
            nr, ns = n.extra["by source"].get(name, (0, 0.0))
            out.append(f"  {name:<14} {pr:>5} / {ps:7.1f} s | {nr:>5} / {ns:7.1f} s")
        out.append(
            f"  {'all':<14} {p.requests:>5} / {p.extra['pendo_s']:7.1f} s | "
            f"{n.requests:>5} / {n.extra['pendo_s']:7.1f} s"
        )
        out.append(f"backfill run: {p.extra.get('run phases', '-')}")
        for line in p.extra.get("requests in time", []):
            out.append(f"  {line}")
        if p.extra.get("pendo_s") is not None and p.max_in_flight:
            floor = p.extra["pendo_s"] / 8  # PENDO_MAX_CONCURRENCY's default
            out.append(
                f"floor (Pendo time of the project's {p.requests} requests / 8 in flight): "
                f"{floor:.1f} s; project wall / floor: {p.wall_s / floor:.2f}  (target <= 1.3)"
            )
            # The emulator's own CPU (building and sending answers) on top of the model: what
            # Pendo's time looked like from the client.
            busy = p.extra["pendo_busy_s"] / 8
            out.append(
                f"observed Pendo time (requests open at the emulator) / 8: {busy:.1f} s "
                f"({p.extra['pendo_busy_s'] / p.extra['pendo_s']:.2f} x the model)"
            )
        out.append(f"CPU ratio project/naive: {p.cpu_s / n.cpu_s:.3f}")
        out.append(f"rows/CPU-s ratio project/naive: {p.rows_per_cpu_s / n.rows_per_cpu_s:.2f}")
        out.append(f"peak RSS ratio project/naive: {p.rss_mb / n.rss_mb:.2f}")
        out.append(f"project max requests in flight: {p.max_in_flight}  (target <= 8)")
        seven = by.get("project, 7-day range")
        if seven:
            out.append(
                f"peak RSS one year / 7 days: {p.rss_mb / seven.rss_mb:.2f}  (target 0.8..1.2)"
            )
    elif mode == "events":
        s, b = by["stock SQLite event log"], by["batched event log"]
        out.append(f"Dagster bookkeeping, batched: {b.wall_s:.2f} s  (target <= 2 s)")
        out.append(f"batched/stock: {b.wall_s / s.wall_s:.3f}")
    elif mode == "ingest":
        p, n = by["project ingestion path"], by["naive script"]
        d = by["DuckDB read_json (ceiling)"]
        out.append(
            f"rows/CPU-s project/naive: {p.rows_per_cpu_s / n.rows_per_cpu_s:.2f}  (target >= 10)"
        )
        out.append(
            f"rows/CPU-s DuckDB/project: {d.rows_per_cpu_s / p.rows_per_cpu_s:.2f}  (target <= 3)"
        )
    elif mode == "refresh":
        f, i = by["full refresh"], by["incremental"]
        out.append(f"wall incremental/full: {i.wall_s / f.wall_s:.3f}")
        out.append(f"bytes incremental/full: {i.extra['bytes'] / f.extra['bytes']:.4f}")
        out.append(f"peak RSS incremental/full: {i.rss_mb / f.rss_mb:.2f}")
    elif mode == "publish":
        run, one = results[0], results[1]
        out.append(f"publish / run time, one year: {one.wall_s / run.wall_s:.3f}")
    elif mode == "visitors":
        p, n = by["project visitors load"], by["naive visitors load"]
        e = by["enriched day vs visitors"]
        out.append(f"project peak RSS: {p.rss_mb:.0f} MB  (target <= 1536)")
        out.append(f"peak RSS project/naive: {p.rss_mb / n.rss_mb:.2f}  (target <= 0.33)")
        out.append(f"enriched day: {e.wall_s:.3f} s  (target <= 1 s)")
    return out


def mode_retag(args) -> tuple[list[Result], list[str]]:
    from bench.retag import mode_retag as retag

    return retag(args)


MODES = {
    "backfill": mode_backfill,
    "retag": mode_retag,
    "events": mode_events,
    "ingest": mode_ingest,
    "visitors": mode_visitors,
    "refresh": mode_refresh,
    "publish": mode_publish,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="backfill")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument(
        "--visitors", type=int, default=1_000_000, help="visitors for --mode refresh"
    )
    args = parser.parse_args(argv)
    # One "today" for the bench and every process it starts (emulator, naive script, Dagster):
    # the subscription's date, not the machine's, or a range ending "yesterday" could name a
    # day the project's partitions do not have yet (the machine's date runs ahead of New York's
    # for five hours every night).
    os.environ.setdefault(clock.ENV, clock.Clock.from_env().today(TIMEZONE).isoformat())
    results, notes = MODES[args.mode](args)
    print(f"mode: {args.mode}{' (quick)' if args.quick else ''}")
    for note in notes:
        print(note)
    print(table(results))
    for line in ratios(args.mode, results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
