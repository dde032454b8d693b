"""Asset checks, generated from the catalog (raw sources) and the mart declarations.

Every check runs in the run that materializes its asset, once per run: in a range run it
covers every day of the range, lists each day's result in its metadata and, when it fails,
names the days that differ. Run on its own (no partition range), a check covers every day in
the warehouse.

Blocking (ERROR): grain uniqueness, required ids, reconciliation with Pendo, entity id
uniqueness and mart tie-outs; downstream steps in the same run do not start after one fails,
and automation waits for them (``all_deps_blocking_checks_passed``).
Warnings, never blocking: unknown ids, partition gaps (freshness: pendo_assets.freshness).
"""

from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from pendo_assets.assets.raw import asset_key
from pendo_assets.catalog import (
    ENTITIES,
    EVENTS,
    RAW_SCHEMA,
    SOURCES_BY_TABLE,
    Source,
)
from pendo_assets.enriched import entity_id_column
from pendo_assets.marts.models import MARTS, Mart, tie_out_sql
from pendo_assets.pendo.tables import column_names
from pendo_assets.pendo.totals import pendo_day_totals
from pendo_assets.resources import PendoResource
from pendo_assets.settings import Settings
from pendo_assets.warehouse.io_manager import WarehouseResource
from pendo_assets.warehouse.store import Warehouse, markdown_table

# Pendo tags are deleted and re-made, so some event rows always point at unknown ids.
UNKNOWN_ID_WARN_SHARE = 0.05
MAX_DAYS_NAMED = 20  # failure descriptions name at most this many days

GRAIN = "grain_is_unique"
REQUIRED = "required_ids_present"
RECONCILES = "reconciles_with_pendo"
UNKNOWN = "known_ids_share"
COMPLETE = "no_missing_days"
UNIQUE_IDS = "ids_are_unique"
TIES_OUT = "ties_out_with_raw"


# -- helpers ---------------------------------------------------------------------------------


def run_days(context: dg.AssetCheckExecutionContext) -> list[date] | None:
    """The days the run materialized (partition range or single partition), or None."""
    tags = context.run.tags
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if tags.get(PARTITION_NAME_TAG):
        return [date.fromisoformat(tags[PARTITION_NAME_TAG])]
    return None


def _fq(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def _exists(wh: Warehouse, schema: str, table: str) -> bool:
    return wh.exists(schema, table)


def _days_in(wh: Warehouse, fq: str) -> list[date]:
    return [d for (d,) in wh.query(f"SELECT DISTINCT day FROM {fq} ORDER BY 1")]


def _check_days(context, wh: Warehouse, fq: str) -> list[date]:
    days = run_days(context)
    return days if days is not None else _days_in(wh, fq)


def _name_days(days: list[date]) -> str:
    names = ", ".join(d.isoformat() for d in days[:MAX_DAYS_NAMED])
    more = len(days) - MAX_DAYS_NAMED
    return names + (f" and {more} more" if more > 0 else "")


def _bad_days_md(header: list[str], rows: list[tuple]) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(header, rows) if rows else "(none)")


def _range(days: list[date]) -> list:
    return [min(days), max(days)]


def _missing_table(key: dg.AssetKey, name: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=False,
        description=f"{key.to_user_string()} is not in the warehouse yet: materialize it first.",
    )


# -- raw events ------------------------------------------------------------------------------


def _grain_result(wh: Warehouse, source: Source, key, fq, days, present: set[str]):
    names = column_names(source.columns)
    grain = [names[p] for p in source.grain if names[p] in present]
    dropped = [names[p] for p in source.grain if names[p] not in present]
    dupes = wh.query(
        f"""SELECT day, count(*), sum(n - 1) FROM (
                SELECT {", ".join(dict.fromkeys(["day", *grain]))}, count(*) AS n FROM {fq}
                WHERE day BETWEEN ? AND ? GROUP BY ALL HAVING count(*) > 1
            ) GROUP BY day ORDER BY day""",
        _range(days),
    )
    dupes = [r for r in dupes if r[0] in set(days)]
    bad = [d for d, _, _ in dupes]
    meta = {
        "grain": dg.MetadataValue.json(grain),
        "days_checked": dg.MetadataValue.int(len(days)),
        "duplicated_rows_by_day": _bad_days_md(
            ["day", "duplicated keys", "extra rows"], [(str(d), a, int(b)) for d, a, b in dupes]
        ),
        "failed_days": dg.MetadataValue.json([d.isoformat() for d in bad]),
    }
    if dropped:
        meta["grain_columns_dropped"] = dg.MetadataValue.json(dropped)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=GRAIN,
        passed=not bad,
        metadata=meta,
        description=(
            f"Duplicated rows on {_name_days(bad)}" if bad else f"Grain unique on {len(days)} days"
        ),
    )


def _required_result(wh: Warehouse, source: Source, key, fq, days, present: set[str]):
    names = column_names(source.columns)
    required = [names[p] for p in source.required if names[p] in present]
    missing_cols = [names[p] for p in source.required if names[p] not in present]
    cond = " OR ".join(f"{c} IS NULL" for c in required) or "FALSE"
    counts = wh.query(
        f"SELECT day, count(*) FROM {fq} WHERE day BETWEEN ? AND ? AND ({cond}) "
        "GROUP BY day ORDER BY day",
        _range(days),
    )
    bad_rows = [(d, n) for d, n in counts if d in set(days)]
    bad = [d for d, _ in bad_rows]
    passed = not bad and not missing_cols
    desc = f"Required ids present on {len(days)} days"
    if missing_cols:
        desc = f"Required columns missing from the table: {', '.join(missing_cols)}"
    elif bad:
        desc = f"Rows with a null required id on {_name_days(bad)}"
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=REQUIRED,
        passed=passed,
        metadata={
            "required": dg.MetadataValue.json(required),
            "null_rows_by_day": _bad_days_md(
                ["day", "rows with a null id"], [(str(d), n) for d, n in bad_rows]
            ),
            "failed_days": dg.MetadataValue.json([d.isoformat() for d in bad]),
        },
        description=desc,
    )


def _reconcile_result(wh: Warehouse, source: Source, key, fq, days, pendo: PendoResource):
    sums = "coalesce(sum(num_events), 0)" if not source.raw else "NULL"
    ours = {
        d: (n, s)
        for d, n, s in wh.query(
            f"SELECT day, count(*), {sums} FROM {fq} WHERE day BETWEEN ? AND ? GROUP BY day",
            _range(days),
        )
    }
    theirs = pendo_day_totals(pendo.client, source, days, pendo.options)
    rows, bad = [], []
    for d in days:
        n, s = ours.get(d, (0, 0 if not source.raw else None))
        t = theirs[d]
        ok = n == t.rows and (source.raw or int(s) == t.num_events)
        if not ok:
            bad.append(d)
        rows.append((str(d), n, t.rows, s, t.num_events, "ok" if ok else "DIFFERS"))
    header = ["day", "warehouse rows", "Pendo rows", "warehouse numEvents", "Pendo numEvents"]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=RECONCILES,
        passed=not bad,
        metadata={
            "days": dg.MetadataValue.md(markdown_table([*header, "result"], rows)),
            "days_checked": dg.MetadataValue.int(len(days)),
            "failed_days": dg.MetadataValue.json([d.isoformat() for d in bad]),
            "warehouse_rows": dg.MetadataValue.int(sum(v[0] for v in ours.values())),
            "pendo_rows": dg.MetadataValue.int(sum(t.rows for t in theirs.values())),
        },
        description=(
            f"Warehouse differs from Pendo on {_name_days(bad)}"
            if bad
            else f"Row counts and numEvents equal Pendo's on all {len(days)} days"
        ),
    )


def _tag_lookups(source: Source, present: set[str]) -> list[tuple[str, Source]]:
    """(id column, entity) of the lookups that point at app tags (pages, features, guides)."""
    out = []
    for lk in source.lookups:
        entity = SOURCES_BY_TABLE[lk.entity]
        if entity.app_scoped and lk.id_column in present:
            out.append((lk.id_column, entity))
    return out


def _unknown_result(wh: Warehouse, source: Source, key, fq, days, present: set[str]):
    lookups = _tag_lookups(source, present)
    rows, worst = [], 0.0
    for col, entity in lookups:
        if not _exists(wh, RAW_SCHEMA, entity.table):
            return dg.AssetCheckResult(
                asset_key=key,
                check_name=UNKNOWN,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{RAW_SCHEMA}/{entity.table} is not loaded: every id is unknown",
            )
        eid = entity_id_column(entity)
        for d, total, unknown in wh.query(
            f"""SELECT e.day, count(*), count(*) FILTER (WHERE t.{eid} IS NULL)
                FROM {fq} e
                LEFT JOIN (SELECT DISTINCT {eid} FROM {RAW_SCHEMA}.{entity.table}) t
                       ON t.{eid} = e.{col}
                WHERE e.day BETWEEN ? AND ? GROUP BY e.day ORDER BY e.day""",
            _range(days),
        ):
            share = unknown / total if total else 0.0
            worst = max(worst, share)
            rows.append((str(d), col, total, unknown, f"{share:.2%}"))
    total = sum(r[2] for r in rows)
    unknown = sum(r[3] for r in rows)
    share = unknown / total if total else 0.0
    passed = share <= UNKNOWN_ID_WARN_SHARE
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=UNKNOWN,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unknown_share": dg.MetadataValue.float(round(share, 6)),
            "worst_day_share": dg.MetadataValue.float(round(worst, 6)),
            "threshold": dg.MetadataValue.float(UNKNOWN_ID_WARN_SHARE),
            "days": dg.MetadataValue.md(
                markdown_table(["day", "id column", "rows", "unknown", "share"], rows)
            ),
        },
        description=(
            f"{share:.2%} of rows point at ids unknown to the entity tables "
            f"(warning above {UNKNOWN_ID_WARN_SHARE:.0%}; Pendo tags get deleted and re-made)"
        ),
    )


def _loaded_days(context, key: dg.AssetKey) -> list[date]:
    return sorted(date.fromisoformat(k) for k in context.instance.get_materialized_partitions(key))


def _complete_result(context, key) -> dg.AssetCheckResult:
    loaded = _loaded_days(context, key)
    missing: list[date] = []
    if loaded:
        have = set(loaded)
        span = (loaded[-1] - loaded[0]).days + 1
        missing = [loaded[0] + timedelta(days=i) for i in range(span)]
        missing = [d for d in missing if d not in have]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=COMPLETE,
        passed=bool(loaded) and not missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "oldest_loaded_day": dg.MetadataValue.text(str(loaded[0]) if loaded else "-"),
            "newest_loaded_day": dg.MetadataValue.text(str(loaded[-1]) if loaded else "-"),
            "loaded_days": dg.MetadataValue.int(len(loaded)),
            "missing_days": dg.MetadataValue.json([d.isoformat() for d in missing]),
        },
        description=(
            "No day loaded yet"
            if not loaded
            else f"Missing days between the oldest and newest loaded day: {_name_days(missing)}"
            if missing
            else f"No gaps between {loaded[0]} and {loaded[-1]}"
        ),
    )


def build_raw_event_checks(source: Source, settings: Settings) -> dg.AssetChecksDefinition:
    key = asset_key(source)
    specs = [
        dg.AssetCheckSpec(
            GRAIN,
            asset=key,
            blocking=True,
            description="No two rows share all dimension columns (the grain) on a day.",
        ),
        dg.AssetCheckSpec(
            REQUIRED, asset=key, blocking=True, description="Ids that Pendo always sends are set."
        ),
        dg.AssetCheckSpec(
            RECONCILES,
            asset=key,
            blocking=True,
            description="Each day's row count (and sum of numEvents) equals what Pendo's own "
            "aggregation (count / group by day) reports for the same filters.",
        ),
        dg.AssetCheckSpec(
            COMPLETE,
            asset=key,
            description="No missing day between the oldest and the newest loaded day (warning).",
        ),
    ]
    if any(SOURCES_BY_TABLE[lk.entity].app_scoped for lk in source.lookups):
        specs.append(
            dg.AssetCheckSpec(
                UNKNOWN,
                asset=key,
                additional_deps=[
                    asset_key(SOURCES_BY_TABLE[lk.entity])
                    for lk in source.lookups
                    if SOURCES_BY_TABLE[lk.entity].app_scoped
                ],
                description="Share of rows whose page/feature/guide/track type id is unknown "
                f"to the entity tables (warning above {UNKNOWN_ID_WARN_SHARE:.0%}).",
            )
        )
    fq = _fq(RAW_SCHEMA, source.table)

    @dg.multi_asset_check(specs=specs, name=f"{RAW_SCHEMA}_{source.table}_checks")
    def _checks(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        pendo: PendoResource,
    ) -> Iterator[dg.AssetCheckResult]:
        wh = warehouse.warehouse
        if not _exists(wh, RAW_SCHEMA, source.table):
            for spec in specs:
                yield _missing_table(key, spec.name)
            return
        with wh.connect() as con:
            present = set(wh.columns(con, RAW_SCHEMA, source.table))
        days = _check_days(context, wh, fq)
        if days:
            yield _grain_result(wh, source, key, fq, days, present)
            yield _required_result(wh, source, key, fq, days, present)
            yield _reconcile_result(wh, source, key, fq, days, pendo)
            if any(s.name == UNKNOWN for s in specs):
                yield _unknown_result(wh, source, key, fq, days, present)
        else:
            for name in (GRAIN, REQUIRED, RECONCILES, UNKNOWN):
                if any(s.name == name for s in specs):
                    yield dg.AssetCheckResult(
                        asset_key=key, check_name=name, passed=True, description="No days"
                    )
        yield _complete_result(context, key)

    return _checks


# -- entities --------------------------------------------------------------------------------


def build_entity_check(source: Source) -> dg.AssetChecksDefinition:
    key = asset_key(source)
    eid = entity_id_column(source)

    @dg.asset_check(
        asset=key,
        name=UNIQUE_IDS,
        blocking=True,
        description=f"Every `{eid}` appears once in `{RAW_SCHEMA}.{source.table}`.",
    )
    def _unique(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        wh = warehouse.warehouse
        if not _exists(wh, RAW_SCHEMA, source.table):
            return _missing_table(key, UNIQUE_IDS)
        dupes = wh.query(
            f"SELECT {eid}, count(*) FROM {RAW_SCHEMA}.{source.table} "
            f"GROUP BY {eid} HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT 20"
        )
        rows = wh.query(f"SELECT count(*) FROM {RAW_SCHEMA}.{source.table}")[0][0]
        return dg.AssetCheckResult(
            passed=not dupes,
            metadata={
                "rows": dg.MetadataValue.int(rows),
                "duplicated_ids": dg.MetadataValue.json([str(i) for i, _ in dupes]),
            },
            description=(
                f"Duplicated ids: {', '.join(str(i) for i, _ in dupes)}"
                if dupes
                else "Every id is unique"
            ),
        )

    return _unique


# -- marts -----------------------------------------------------------------------------------


def mart_key(mart: Mart) -> dg.AssetKey:
    schema, table = mart.table.split(".")
    return dg.AssetKey([schema, table])


def build_mart_checks(mart: Mart) -> dg.AssetChecksDefinition:
    key = mart_key(mart)
    specs = [
        dg.AssetCheckSpec(
            GRAIN,
            asset=key,
            blocking=True,
            description=f"One row per ({', '.join(mart.grain)}).",
        ),
        dg.AssetCheckSpec(
            TIES_OUT,
            asset=key,
            blocking=True,
            additional_deps=sorted(
                {dg.AssetKey(t.raw_table.split(".")) for t in mart.tie_outs},
                key=lambda k: k.to_user_string(),
            ),
            description="Totals equal the raw tables': "
            + "; ".join(f"{t.mart_expr} = {t.raw_expr} of {t.raw_table}" for t in mart.tie_outs),
        ),
    ]

    @dg.multi_asset_check(specs=specs, name=f"{key.path[0]}_{key.path[-1]}_checks")
    def _checks(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        wh = warehouse.warehouse
        schema, table = mart.table.split(".")
        if not _exists(wh, schema, table):
            for spec in specs:
                yield _missing_table(key, spec.name)
            return
        days = _check_days(context, wh, mart.table) if mart.daily else None
        where, params = ("WHERE day BETWEEN ? AND ?", _range(days)) if days else ("", [])
        dupes = wh.query(
            f"SELECT {', '.join(mart.grain)}, count(*) FROM {mart.table} {where} "
            f"GROUP BY ALL HAVING count(*) > 1 LIMIT 20",
            params,
        )
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=GRAIN,
            passed=not dupes,
            metadata={"duplicated_keys": dg.MetadataValue.json([list(map(str, r)) for r in dupes])},
            description=f"{len(dupes)} duplicated keys" if dupes else "Grain unique",
        )
        yield _tie_out_result(wh, mart, key, days)

    return _checks


def _tie_out_result(wh: Warehouse, mart: Mart, key, days: list[date] | None):
    rows, bad_days, bad_labels = [], set(), []
    for tie in mart.tie_outs:
        if mart.daily:
            if not days:
                continue
            for d, ours, raw in wh.query(tie_out_sql(mart, tie, by_day=True), _range(days)):
                if d not in set(days):
                    continue
                ok = ours == raw
                rows.append((str(d), tie.label, int(ours), int(raw), "ok" if ok else "DIFFERS"))
                if not ok:
                    bad_days.add(d)
                    if tie.label not in bad_labels:
                        bad_labels.append(tie.label)
        else:
            ((ours, raw),) = wh.query(tie_out_sql(mart, tie, by_day=False))
            ok = ours == raw
            rows.append(("all", tie.label, int(ours), int(raw), "ok" if ok else "DIFFERS"))
            if not ok:
                bad_labels.append(tie.label)
    passed = not bad_labels
    header = ["day", "total", mart.name, "raw", "result"]
    if passed:
        desc = f"{', '.join(t.label for t in mart.tie_outs)} tie out with the raw tables"
    elif mart.daily:
        desc = (
            f"{', '.join(bad_labels)} differ from the raw tables on {_name_days(sorted(bad_days))}"
        )
    else:
        desc = f"{', '.join(bad_labels)} differ from the raw tables"
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=TIES_OUT,
        passed=passed,
        metadata={
            "totals": dg.MetadataValue.md(markdown_table(header, rows)),
            "failed_days": dg.MetadataValue.json([d.isoformat() for d in sorted(bad_days)]),
        },
        description=desc,
    )


def all_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    return [
        *(build_entity_check(s) for s in ENTITIES),
        *(build_raw_event_checks(s, settings) for s in EVENTS),
        *(build_mart_checks(m) for m in MARTS),
    ]
