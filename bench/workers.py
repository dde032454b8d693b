"""What the bench measures, one contender per process: ``python -m bench.workers NAME '<json>'``.

Each worker prints one JSON line (rows and any timings) as its last line of output. The naive
workers are written the way a first Pendo script usually is, on purpose.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

KEY = "bench-key"
TIMEZONE = "America/New_York"
ALL_APPS = 'expandAppIds("*")'


def naive_names() -> dict[str, tuple[str, str, str]]:
    """Entity each naive tag event table takes its names from: {source: (entity source, tag
    field, name field)}, from the catalog's tag events."""
    from pendo_assets.catalog import EVENTS, TAG_ENTITY_OF

    return {
        s.name: (TAG_ENTITY_OF[s.name].name, s.tag_field, "name") for s in EVENTS if s.tag_field
    }


# -- naive ---------------------------------------------------------------------------------


def _naive_post(url: str, source: dict, time_series: dict | None = None) -> list[dict]:
    import requests

    src = dict(source)
    if time_series:
        src["timeSeries"] = time_series
    body = {
        "response": {"mimeType": "application/json"},
        "request": {"pipeline": [{"source": src}]},
    }
    r = requests.post(
        url + "/api/v1/aggregation",
        data=json.dumps(body),
        headers={"X-Pendo-Integration-Key": KEY, "Content-Type": "application/json"},
        timeout=600,
    )
    r.raise_for_status()
    return json.loads(r.text)["results"]


def naive_backfill(url: str, first: str, last: str, duckdb: str) -> dict:
    import duckdb as ddb
    import pandas as pd

    from pendo_assets.catalog import EVENTS

    zone = ZoneInfo(TIMEZONE)
    tag_names = naive_names()
    accounts = pd.json_normalize(_naive_post(url, {"accounts": None}))
    visitors = pd.json_normalize(_naive_post(url, {"visitors": None}))
    names = {
        s: pd.json_normalize(_naive_post(url, {s: {"appId": ALL_APPS}}))
        for s, _, _ in tag_names.values()
    }
    d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    con = ddb.connect(duckdb)
    rows = 0
    for source in (s.name for s in EVENTS):
        df = pd.DataFrame()
        d = d0
        while d <= d1:
            ms = int(datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000)
            # The Exclude List, as Pendo's own web app (and the project, by default) asks.
            results = _naive_post(
                url,
                {source: {"appId": ALL_APPS, "blacklist": "apply"}},
                {"period": "dayRange", "first": ms, "count": 1},
            )
            df = pd.concat([df, pd.json_normalize(results)], ignore_index=True)
            d += timedelta(days=1)
        df = df.merge(
            accounts[["accountId", "metadata.agent.name"]], on="accountId", how="left"
        ).merge(visitors[["visitorId", "metadata.agent.email"]], on="visitorId", how="left")
        if source in tag_names:
            entity, id_field, name_field = tag_names[source]
            lookup = names[entity][["id", name_field]].rename(
                columns={"id": id_field, name_field: f"{entity}_name"}
            )
            df = df.merge(lookup, on=id_field, how="left")
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].astype(str)
        con.execute(f"CREATE TABLE {source} AS SELECT * FROM df")
        rows += len(df)
    con.close()
    return {"rows": rows}


def naive_ingest(dir: str) -> dict:  # noqa: A002
    import duckdb as ddb
    import pandas as pd

    con = ddb.connect()
    rows = 0
    for src_dir in sorted(Path(dir).iterdir()):
        df = pd.DataFrame()
        for f in sorted(src_dir.glob("*.json")):
            df = pd.concat([df, pd.json_normalize(json.loads(f.read_bytes())["results"])])
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].astype(str)
        con.execute(f"CREATE TABLE {src_dir.name} AS SELECT * FROM df")
        rows += con.execute(f"SELECT count(*) FROM {src_dir.name}").fetchone()[0]
    return {"rows": rows}


def naive_visitors(url: str, duckdb: str) -> dict:
    import duckdb as ddb
    import pandas as pd

    df = pd.json_normalize(_naive_post(url, {"visitors": None}))
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype(str)
    con = ddb.connect(duckdb)
    con.execute("CREATE TABLE visitors AS SELECT * FROM df")
    con.close()
    return {"visitors": len(df)}


# -- ceiling -------------------------------------------------------------------------------


def duckdb_ingest(dir: str) -> dict:  # noqa: A002
    import duckdb as ddb

    con = ddb.connect()
    rows = 0
    for src_dir in sorted(Path(dir).iterdir()):
        files = sorted(str(f) for f in src_dir.glob("*.json"))
        biggest = max(Path(f).stat().st_size for f in files)
        con.execute(
            f"CREATE TABLE {src_dir.name} AS SELECT unnest(results, recursive := true) "
            f"FROM read_json(?, maximum_object_size = {biggest + 1024})",
            [files],
        )
        rows += con.execute(f"SELECT count(*) FROM {src_dir.name}").fetchone()[0]
    return {"rows": rows}


# -- the project ---------------------------------------------------------------------------


def _pendo(url: str = "http://127.0.0.1:9"):
    """The project's Pendo resource on ``url``: its client and options, settings at their
    defaults (the Settings resource's fields)."""
    from pendo_assets.resources import PendoResource
    from pendo_assets.settings import Settings

    settings = Settings(base_url=url, timezone=TIMEZONE)
    return PendoResource(settings=settings, integration_key=KEY)


def _options():
    return _pendo().options


def project_ingest(dir: str) -> dict:  # noqa: A002
    """Response bytes -> typed table (with day validation) -> staged Parquet -> DuckDB."""
    from pendo_assets.catalog import RAW_SCHEMA, SOURCES_BY_NAME
    from pendo_assets.pendo.fetch import split_days
    from pendo_assets.pendo.tables import Batch, declared_types
    from pendo_assets.warehouse.store import Warehouse, stage

    opts = _options()
    staging = Path(tempfile.mkdtemp(prefix="bench-stage-"))
    wh = Warehouse(str(staging / "warehouse.duckdb"))
    rows = 0
    for src_dir in sorted(Path(dir).iterdir()):
        source = SOURCES_BY_NAME[src_dir.name]
        files, days = [], []
        for f in sorted(src_dir.glob("*.json")):
            day = date.fromisoformat(f.stem)
            tables = split_days(Batch(f.read_bytes()), source, [day], opts, f.name)
            t = tables[day]
            files.append(stage(t.table, t.types, staging / f"{source.table}-{day}.parquet"))
            days.append(day)
        result = wh.replace_days(RAW_SCHEMA, source.table, days, files, declared_types(source))
        rows += result.rows_written
    return {"rows": rows}


def make_payloads(out: str, days: int, scale: float, sources: list[str]) -> dict:
    from pendo_assets.emulator import Subscription

    last = date(2026, 6, 30)
    sub = Subscription(first_day=last - timedelta(days=days), last_day=last, scale=scale)
    files = n_bytes = 0
    for name in sources:
        target = Path(out) / name
        target.mkdir(parents=True, exist_ok=True)
        for i in range(days):
            d = last - timedelta(days=i)
            rows = [r for app in sub.app_ids for r in sub.event_rows(name, app, d)]
            data = json.dumps({"results": rows}, separators=(",", ":")).encode()
            (target / f"{d}.json").write_bytes(data)
            files += 1
            n_bytes += len(data)
    return {"files": files, "bytes": n_bytes}


def project_visitors(url: str, duckdb: str, day: str) -> dict:
    """Entities through the project's paged fetch, one event day, then that enriched day."""
    from pendo_assets.catalog import ANALYTICS_SCHEMA, RAW_SCHEMA, SOURCES_BY_NAME
    from pendo_assets.enriched_sql import enriched_query
    from pendo_assets.pendo.fetch import fetch_days, fetch_entity
    from pendo_assets.pendo.tables import declared_types
    from pendo_assets.warehouse.store import Warehouse, stage

    client = _pendo(url).client
    opts = _options()
    staging = Path(tempfile.mkdtemp(prefix="bench-visitors-"))
    wh = Warehouse(duckdb)
    for name in ("visitors", "accounts"):
        source = SOURCES_BY_NAME[name]
        files = [
            stage(t.table, t.types, staging / f"{name}-{i}.parquet")
            for i, t in enumerate(fetch_entity(client, source, opts))
        ]
        wh.replace_table(RAW_SCHEMA, source.table, files, declared_types(source))
    events = SOURCES_BY_NAME["events"]
    d = date.fromisoformat(day)
    files = [
        stage(t.table, t.types, staging / f"events-{dd}.parquet")
        for dd, t in fetch_days(client, events, [d], opts)
    ]
    wh.replace_days(RAW_SCHEMA, events.table, [d], files, declared_types(events))
    with wh.connect() as con:
        raw_cols = list(wh.columns(con, RAW_SCHEMA, events.table))
    started = time.perf_counter()
    result = wh.replace_days_from_query(
        ANALYTICS_SCHEMA, events.table, [d], enriched_query(events, raw_cols)
    )
    enriched_s = time.perf_counter() - started
    visitors = wh.query(f"SELECT count(*) FROM {RAW_SCHEMA}.visitors")[0][0]
    return {"visitors": visitors, "enriched_s": enriched_s, "enriched_rows": result.rows_written}


def dagster_bookkeeping(home: str, days: int, assets: int, batched: bool) -> dict:
    """A range run of ``assets`` daily assets that do nothing: its time is Dagster's own."""
    import os

    import dagster as dg

    from pendo_assets.instance import write_local_config
    from pendo_assets.run_tags import range_tags

    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = "1000" if batched else "0"
    if batched:
        write_local_config(home)  # the instance config `make dev` gives users
    first = date(2025, 1, 1)
    parts = dg.DailyPartitionsDefinition(start_date=first.isoformat())
    last = (first + timedelta(days=days - 1)).isoformat()

    def make(i: int):
        @dg.asset(
            name=f"a{i}",
            partitions_def=parts,
            backfill_policy=dg.BackfillPolicy.single_run(),
            check_specs=[dg.AssetCheckSpec("ok", asset=f"a{i}")],
        )
        def _a(context):
            yield dg.Output(None, metadata={"days": len(context.partition_keys)})
            yield dg.AssetCheckResult(passed=True)

        return _a

    class NoIO(dg.IOManager):
        def handle_output(self, context, obj):
            pass

        def load_input(self, context):
            return None

    defs = [make(i) for i in range(assets)]
    with dg.DagsterInstance.from_config(home) as instance:
        started = time.perf_counter()
        dg.materialize(
            defs,
            instance=instance,
            resources={"io_manager": NoIO()},
            tags=range_tags(first.isoformat(), last),
        )
        seconds = time.perf_counter() - started
        n = len(instance.get_materialized_partitions(dg.AssetKey("a0")))
    return {"rows": n * assets, "bookkeeping_s": seconds}


def refresh_visitors(url: str, duckdb: str, full: bool, at: str, margin_min: int = 60) -> dict:
    """The morning visitors refresh as the entity asset does it: full (replace) or incremental
    (rows updated since the newest loaded lastupdated minus the margin, merged by id), then
    the history fold."""
    from pendo_assets.catalog import (
        ANALYTICS_SCHEMA,
        HISTORY_UNTRACKED_PATTERN,
        RAW_SCHEMA,
        SOURCES_BY_NAME,
    )
    from pendo_assets.pendo.fetch import fetch_entity
    from pendo_assets.pendo.tables import declared_types
    from pendo_assets.warehouse.history import apply_history
    from pendo_assets.warehouse.store import Warehouse, stage

    source = SOURCES_BY_NAME["visitors"]
    client = _pendo(url).client
    staging = Path(tempfile.mkdtemp(prefix="bench-refresh-"))
    wh = Warehouse(duckdb)
    since = None
    if not full:
        wm = wh.query(f"SELECT epoch_ms(max(metadata_auto_lastupdated)) FROM {RAW_SCHEMA}.visitors")
        since = wm[0][0] - margin_min * 60_000
    files = [
        stage(t.table, t.types, staging / f"visitors-{i}.parquet")
        for i, t in enumerate(fetch_entity(client, source, _options(), since_ms=since))
    ]
    types = declared_types(source)
    if full:
        wh.replace_table(RAW_SCHEMA, source.table, files, types)
    else:
        wh.replace_table(RAW_SCHEMA, source.table, files, types, merge_key="visitor_id")
    hist = apply_history(
        wh,
        (RAW_SCHEMA, "visitors"),
        (ANALYTICS_SCHEMA, "visitor_history"),
        "visitor_id",
        datetime.fromisoformat(at),
        full,
        HISTORY_UNTRACKED_PATTERN,
    )
    shutil.rmtree(staging, ignore_errors=True)
    return {
        "fetched": sum(f.rows for f in files),
        "visitors": wh.query(f"SELECT count(*) FROM {RAW_SCHEMA}.visitors")[0][0],
        "new_versions": hist.new_versions,
    }


def init_instance() -> dict:
    """Create the storages of the instance in ``DAGSTER_HOME``, as ``make dev``'s first start
    does for a user before any backfill."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(limit=1)
        return {"runs": len(runs), "schedules": instance.schedule_storage is not None}


WORKERS = {
    f.__name__: f
    for f in (
        dagster_bookkeeping,
        refresh_visitors,
        naive_backfill,
        naive_ingest,
        naive_visitors,
        duckdb_ingest,
        project_ingest,
        make_payloads,
        project_visitors,
        init_instance,
    )
}


def main() -> None:
    # Import everything first: the figures a worker reports cover its work, not start-up.
    import duckdb  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.json  # noqa: F401
    import requests  # noqa: F401

    import pendo_assets.enriched_sql  # noqa: F401
    import pendo_assets.pendo.fetch  # noqa: F401
    import pendo_assets.warehouse.store  # noqa: F401

    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = WORKERS[sys.argv[1]](**json.loads(sys.argv[2]))
    result["work_cpu_s"] = time.process_time() - cpu0
    result["work_wall_s"] = time.perf_counter() - wall0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
