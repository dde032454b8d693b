"""Asset checks on NPS: the buckets in `analytics.poll_events` tie out with the raw answers.

The raw side is recomputed independently of the enriched SQL: answers to `NPSRating` polls
(`pendo.polls`) in `pendo.poll_events` whose text is a whole number 0-10, bucketed by a lookup
list rather than the enriched table's CASE.
"""

from __future__ import annotations

import dagster as dg

from pendo_assets import step_order
from pendo_assets.assets.shared import table_key
from pendo_assets.catalog import ANALYTICS_SCHEMA, RAW_SCHEMA
from pendo_assets.warehouse.io_manager import WarehouseResource
from pendo_assets.warehouse.store import markdown_table

NPS_BUCKETS_TIE_OUT = "nps_buckets_tie_out"
POLL_EVENTS_KEY = table_key(f"{ANALYTICS_SCHEMA}.poll_events")

# Bucket of scores 0..10, by position.
_BUCKET_OF = ["detractor"] * 7 + ["passive"] * 2 + ["promoter"] * 2

ENRICHED_SQL = f"""
    SELECT nps_bucket, count(*) FROM {ANALYTICS_SCHEMA}.poll_events
    WHERE nps_bucket IS NOT NULL GROUP BY 1
"""
RAW_SQL = f"""
    WITH answers AS (
        SELECT trim(e.poll_response) AS r
        FROM {RAW_SCHEMA}.poll_events e
        JOIN (SELECT DISTINCT poll_id FROM {RAW_SCHEMA}.polls
              WHERE question_type = 'NPSRating') p ON p.poll_id = e.poll_id
    )
    SELECT (?::VARCHAR[])[CAST(regexp_extract(r, '^(10|[0-9])(\\.0+)?$', 1) AS INTEGER) + 1],
           count(*)
    FROM answers
    WHERE regexp_full_match(r, '(10|[0-9])(\\.0+)?')
    GROUP BY 1
"""


def _counts(rows: list[tuple]) -> dict[str, int]:
    return {b: 0 for b in ("detractor", "passive", "promoter")} | {b: int(n) for b, n in rows}


@dg.asset_check(
    asset=POLL_EVENTS_KEY,
    name=NPS_BUCKETS_TIE_OUT,
    blocking=True,
    # Straight after analytics.poll_events, not behind the other sources' checks.
    op_tags=step_order.tags(step_order.ENRICHED),
    # pendo.polls is written by the guides asset, so table_key names that one.
    additional_deps=[table_key(f"{RAW_SCHEMA}.poll_events"), table_key(f"{RAW_SCHEMA}.polls")],
    description="Detractor, passive and promoter counts in analytics.poll_events equal the "
    "raw NPS answers (pendo.poll_events on NPSRating polls) bucketed independently.",
)
def nps_buckets_tie_out(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.warehouse
    needed = [(ANALYTICS_SCHEMA, "poll_events"), (RAW_SCHEMA, "poll_events"), (RAW_SCHEMA, "polls")]
    missing = wh.missing([".".join(t) for t in needed])
    if missing:
        return dg.AssetCheckResult(
            passed=False, description=f"Missing {', '.join(missing)}: materialize them first."
        )
    with wh.connect() as con:
        cols = set(wh.columns(con, ANALYTICS_SCHEMA, "poll_events"))
        enriched = _counts(con.execute(ENRICHED_SQL).fetchall()) if "nps_bucket" in cols else None
        raw = _counts(con.execute(RAW_SQL, [_BUCKET_OF]).fetchall())
    if enriched is None:
        return dg.AssetCheckResult(
            passed=False,
            description="analytics.poll_events has no nps_bucket column: re-materialize it.",
        )
    rows = [(b, enriched[b], raw[b]) for b in raw]
    return dg.AssetCheckResult(
        passed=enriched == raw,
        metadata={
            **{f"{b}_count": dg.MetadataValue.int(enriched[b]) for b in enriched},
            "tie_out": dg.MetadataValue.md(markdown_table(["bucket", "enriched", "raw"], rows)),
        },
    )


def nps_checks() -> list[dg.AssetChecksDefinition]:
    return [nps_buckets_tie_out]
