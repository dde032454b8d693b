"""``make bench BENCH_ARGS="--mode retag"``: Pendo recomputed two tags' history; how much does
the warehouse pay to follow?

A one-year warehouse of page and feature events is loaded through Dagster. Then, at Pendo, one
page is created and one feature's rules are widened: both change every stored day. Two ways
back to Pendo's numbers, each on its own copy of the warehouse and a fresh emulator:

- **repair**: what the morning does (the tag entities' load detects the change; the
  ``pendo_tag_repair_sensor``'s runs reload only those tags' rows over the year, with checks);
- **full reload**: every day of both event tables reloaded whole (with checks).

Printed: wall time, requests, Pendo days asked and Pendo time of each, and whether both end
equal to Pendo. Each contender runs in its own process (``python -m bench.retag worker ...``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.run import KEY, TIMEZONE, Emulator, Result, latency_history, parse_worker, run_measured

ENTITY_KEYS = ["pendo/pages", "pendo/features"]
EVENT_KEYS = ["pendo/page_events", "pendo/feature_events"]


def _changes(at_ms: int) -> list[dict]:
    return [
        {"source": "pages", "action": "create", "at_ms": at_ms, "salt": 1},
        {"source": "features", "action": "edit", "at_ms": at_ms, "index": 2, "salt": 2},
    ]


def mode_retag(args) -> tuple[list[Result], list[str]]:
    from pendo_assets.emulator import Subscription

    days, scale, first, last, spec = latency_history(args)
    today = last + timedelta(days=1)
    at_ms = Subscription(first_day=first, last_day=today, timezone=TIMEZONE).history_end_ms
    work = Path(tempfile.mkdtemp(prefix="pendo-bench-retag-"))
    try:
        base = work / "base.duckdb"
        emu = Emulator(spec)
        try:
            run_measured(_worker("load", emu.url, base, work / "home-base", first, last))
        finally:
            emu.stop()
        results = []
        changed = {**spec, "tag_changes": _changes(at_ms)}
        for name, how in (("repair (changed tags only)", "repair"), ("full reload", "full")):
            db = work / f"{how}.duckdb"
            shutil.copy(base, db)
            emu = Emulator(changed)
            try:
                wall, cpu, rss, out = run_measured(
                    _worker(how, emu.url, db, work / f"home-{how}", first, last)
                )
                stats = emu.stats()
                differing = _differing(emu.url, str(db), str(first), str(last))
            finally:
                emu.stop()
            info = parse_worker(out)
            r = Result(name, wall, cpu, rss, info["rows"], stats["aggregation_requests"])
            r.max_in_flight = stats["max_in_flight"]
            r.extra = {
                "days asked": round(sum(stats["days_asked"].values())),
                "tag requests": sum(stats["tag_requests"].values()),
                "rows from Pendo": stats["rows"],
                "MB from Pendo": round(stats["response_bytes"] / 1e6, 1),
                "pendo_s": stats["latency_s"],
                "runs": info["runs"],
                "differing days": differing,
            }
            results.append(r)
        notes = [
            f"history: {days} days ({first}..{last}) of page and feature events, emulator scale "
            f"{scale}, latency 50 ms + 50 ms per day asked; then at Pendo one page created and "
            "one feature's rules widened (both change every day)",
        ]
        for r in results:
            notes.append(
                f"{r.name}: {r.wall_s:.1f} s wall, {r.requests} requests "
                f"({r.extra['tag requests']} for one tag), {r.extra['days asked']} Pendo days "
                f"asked, {r.extra['pendo_s']:.1f} s of Pendo time, {r.extra['rows from Pendo']:,} "
                f"rows ({r.extra['MB from Pendo']} MB) from Pendo, {r.extra['runs']} run(s); "
                f"days differing from Pendo afterwards: {r.extra['differing days']}"
            )
        repair, full = results
        notes.append(
            f"repair / full reload: wall {repair.wall_s / full.wall_s:.2f}, requests "
            f"{repair.requests / full.requests:.2f}, Pendo days asked "
            f"{repair.extra['days asked'] / full.extra['days asked']:.2f}, rows from Pendo "
            f"{repair.extra['rows from Pendo'] / max(1, full.extra['rows from Pendo']):.2f}"
        )
        return results, notes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _worker(how: str, url: str, db: Path, home: Path, first, last) -> list[str]:
    spec = {"how": how, "url": url, "db": str(db), "home": str(home)}
    spec.update(first=str(first), last=str(last))
    return [sys.executable, "-m", "bench.retag", "worker", json.dumps(spec)]


def worker(how: str, url: str, db: str, home: str, first: str, last: str) -> dict:
    """One contender in this process: ``load`` builds the base warehouse; ``repair`` runs the
    morning's tag-entity load and the repair sensor's runs; ``full`` reloads every day."""
    import dagster as dg

    from pendo_assets.automation import TAG_REPAIR_SENSOR
    from pendo_assets.definitions import build_definitions
    from pendo_assets.settings import load_settings

    env = {
        "PENDO_INTEGRATION_KEY": KEY,
        "PENDO_BASE_URL": url,
        "PENDO_DEMO": "0",
        "PENDO_TIMEZONE": TIMEZONE,
        "PENDO_START_DATE": first,
        "PENDO_DUCKDB_PATH": db,
        "DAGSTER_HOME": home,
    }
    os.environ.update(env)
    Path(home).mkdir(parents=True, exist_ok=True)
    defs = build_definitions(load_settings(env))
    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    instance = dg.DagsterInstance.ephemeral()

    def run(keys, tags=None, run_config=None) -> None:
        result = dg.materialize(
            assets,
            selection=keys,
            resources=defs.resources,
            instance=instance,
            tags=tags or {},
            run_config=run_config,
        )
        assert result.success

    from pendo_assets.run_tags import range_tags

    keys = [dg.AssetKey.from_user_string(k) for k in EVENT_KEYS]
    runs = 0
    # Every contender loads the tags first (the morning's entity load, which detects changes).
    run([dg.AssetKey.from_user_string(k) for k in ENTITY_KEYS])
    if how in ("load", "full"):
        run(keys, range_tags(first, last))
        runs = 1
    else:
        sensor = defs.get_sensor_def(TAG_REPAIR_SENSOR)
        with dg.build_sensor_context(instance=instance) as ctx:
            requests = sensor.evaluate_tick(ctx).run_requests
        for request in requests:
            run(list(request.asset_selection), request.tags, request.run_config)
        runs = len(requests)
    return {"rows": _rows(db), "runs": runs}


def _rows(db: str) -> int:
    import duckdb

    con = duckdb.connect(db, read_only=True)
    try:
        return sum(
            con.execute(f"SELECT count(*) FROM pendo.{t}").fetchone()[0]
            for t in ("page_events", "feature_events")
        )
    finally:
        con.close()


def _differing(url: str, db: str, first: str, last: str) -> int:
    """Days of either table whose rows and numEvents differ from Pendo's own totals."""
    from pendo_assets.catalog import SOURCES_BY_NAME
    from pendo_assets.pendo.days import days_between
    from pendo_assets.pendo.totals import try_day_totals
    from pendo_assets.resources import PendoResource
    from pendo_assets.settings import Settings
    from pendo_assets.warehouse.store import Warehouse

    days = days_between(first, last)
    pendo = PendoResource(settings=Settings(base_url=url, timezone=TIMEZONE), integration_key=KEY)
    opts, client = pendo.options, pendo.client
    wh = Warehouse(db)
    bad = 0
    for name in ("pageEvents", "featureEvents"):
        source = SOURCES_BY_NAME[name]
        theirs, _ = try_day_totals(client, source, days, opts)
        ours = {
            d: (n, e)
            for d, n, e in wh.query(
                f"SELECT day, count(*), sum(num_events) FROM pendo.{source.table} GROUP BY 1"
            )
        }
        bad += sum(1 for d in days if ours.get(d, (0, 0)) != (theirs[d].rows, theirs[d].num_events))
    return bad


def main() -> int:
    if sys.argv[1] != "worker":
        raise SystemExit("usage: python -m bench.retag worker '<json>'")
    started = time.monotonic()
    result = worker(**json.loads(sys.argv[2]))
    result["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
