"""The analytics marts: what each one reads, its grain, its SQL and the totals that must tie
out with the raw tables.

Daily marts take the first and last day of the range as ``$1`` and ``$2``; rollups take no
parameters and cover the whole loaded history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pendo_assets.catalog import (
    ANALYTICS_SCHEMA,
    GUIDE_EVENT_TYPES,
    RAW_SCHEMA,
    guide_count_column,
)

SQL_DIR = Path(__file__).parent


@dataclass(frozen=True)
class TieOut:
    """``mart_expr`` summed over the mart's rows equals ``raw_expr`` over ``raw_table``."""

    label: str
    mart_expr: str
    raw_table: str  # schema-qualified
    raw_expr: str
    raw_where: str = "TRUE"


@dataclass(frozen=True)
class FirstSeen:
    """The first loaded day of each (visitor or account, subject) pair, for first-time /
    returning splits."""

    table: str  # analytics.<table>: <who>, <id_column>, first_day
    events_table: str  # enriched events it is folded from (schema-qualified, or a subquery)
    id_column: str
    who: str = "visitor_id"  # or account_id
    # Sums one day's event rows into the ledger of folded days: a day whose sum changes is
    # folded again. Raw guide/poll events have no num_events: they sum a hash of the pair.
    fingerprint: str = "sum(num_events)"

    @property
    def subject(self) -> str:
        return self.table

    @property
    def fingerprint_sql(self) -> str:
        return f"coalesce({self.fingerprint}, 0)::HUGEINT"


@dataclass(frozen=True)
class Mart:
    name: str  # table in the analytics schema, and the last part of the asset key
    description: str  # what one row is
    daily: bool
    grain: tuple[str, ...]
    reads: tuple[str, ...]  # schema-qualified tables the SQL reads
    tie_outs: tuple[TieOut, ...]
    # First-seen tables the SQL reads (visitors, then accounts), folded before each write.
    first_seen: tuple[FirstSeen, ...] = ()
    # Counts guide event types (a column per GUIDE_EVENT_TYPES entry, the rest in `other`),
    # so a warning check names types Pendo sent that have no column.
    counts_guide_types: bool = False

    @property
    def table(self) -> str:
        return f"{ANALYTICS_SCHEMA}.{self.name}"

    @property
    def sql(self) -> str:
        return load_sql(self.name)


# `/* per guide event type: <expression> */` in a mart's SQL stands for one expression per
# type in GUIDE_EVENT_TYPES, `{type}`, `{col}` (its count column) and `{visitors_col}` (its
# distinct-visitor column, named as dbt_pendo's pivot names it) filled in.
_PER_GUIDE_TYPE = re.compile(r"^( *)/\* per guide event type: (.+?) \*/", re.MULTILINE)
# Guide events of a type GUIDE_EVENT_TYPES does not list (or with no type).
GUIDE_OTHER_COLUMN = "count_guide_other"
KNOWN_GUIDE_TYPES_SQL = "(" + ", ".join(f"'{t}'" for t in GUIDE_EVENT_TYPES) + ")"


def guide_visitors_column(event_type: str) -> str:
    return f"count_visitors_{event_type}"


def _per_guide_type(m: re.Match) -> str:
    indent, expression = m.groups()
    return ",\n".join(
        indent
        + expression.format(
            type=t, col=guide_count_column(t), visitors_col=guide_visitors_column(t)
        )
        for t in GUIDE_EVENT_TYPES
    )


# Page and feature days share one SQL file, tag_daily_metrics.sql, with these names filled in
# (column names as dbt_pendo has them). Features also carry the page they live on.
_NO_EXTRA = {"per_columns": "", "spine_columns": "", "spine_join": "", "m_columns": ""}
TAG_DAYS: dict[str, dict[str, str]] = {
    "page_daily_metrics": {
        "tag": "page",
        "tags": "pendo.pages",
        "sum": "sum_pageviews",
        "records": "count_pageview_events",
        "per_visitor": "avg_daily_pageviews_per_visitor",
        "share": "percent_of_daily_pageviews",
        **_NO_EXTRA,
        "out_columns": "",
    },
    "feature_daily_metrics": {
        "tag": "feature",
        "tags": "pendo.features",
        "sum": "sum_clicks",
        "records": "count_click_events",
        "per_visitor": "avg_daily_clicks_per_visitor",
        "share": "percent_of_daily_clicks",
        "per_columns": "\n           any_value(page_id) AS page_id,"
        "\n           any_value(page_name) AS page_name,",
        "spine_columns": ", p.page_id, pg.name AS page_name",
        "spine_join": "\n    LEFT JOIN pendo.pages pg ON pg.id = p.page_id",
        "m_columns": "\n           coalesce(per.page_id, s.page_id) AS page_id,"
        "\n           coalesce(per.page_name, s.page_name) AS page_name,",
        "out_columns": "\n       page_id,\n       page_name,",
    },
}


@cache
def load_sql(name: str) -> str:
    if name in TAG_DAYS:
        return (SQL_DIR / "tag_daily_metrics.sql").read_text().format(**TAG_DAYS[name])
    sql = (SQL_DIR / f"{name}.sql").read_text()
    sql = sql.replace("{known_guide_types}", KNOWN_GUIDE_TYPES_SQL)
    return _PER_GUIDE_TYPE.sub(_per_guide_type, sql)


def _a(table: str) -> str:
    return f"{ANALYTICS_SCHEMA}.{table}"


def _p(table: str) -> str:
    return f"{RAW_SCHEMA}.{table}"


_HAS_ACCOUNT = "coalesce(account_id, '') <> ''"


def _guide_tie_outs(prefix: str = "count") -> tuple[TieOut, ...]:
    """One tie-out per listed type, one for every other type, and one for all guide events:
    a type Pendo starts sending is counted (in `other`) and cannot go unnoticed."""
    raw = _p("guide_events")
    outs = []
    for t in GUIDE_EVENT_TYPES:
        col = guide_count_column(t, prefix)
        outs.append(TieOut(t, col, raw, "count(*)", f"type = '{t}'"))
    outs.append(
        TieOut(
            "other guide event types",
            GUIDE_OTHER_COLUMN,
            raw,
            "count(*)",
            f"type IS NULL OR type NOT IN {KNOWN_GUIDE_TYPES_SQL}",
        )
    )
    outs.append(TieOut("guide events", "count_guide_events", raw, "count(*)"))
    outs.append(TieOut("poll responses", "count_poll_responses", _p("poll_events"), "count(*)"))
    return tuple(outs)


def _first_seen(subject: str, events: str, id_column: str, **kw: str) -> tuple[FirstSeen, ...]:
    """First-seen tables of visitors and of accounts (empty account ids left out)."""
    return (
        FirstSeen(f"{subject}_first_seen", events, id_column, **kw),
        FirstSeen(
            f"{subject}_account_first_seen",
            f"(SELECT * FROM {events} WHERE {_HAS_ACCOUNT})",
            id_column,
            who="account_id",
            **kw,
        ),
    )


FEATURE_FIRST_SEEN = _first_seen("feature", _a("feature_events"), "feature_id")
PAGE_FIRST_SEEN = _first_seen("page", _a("page_events"), "page_id")
# Guide visitors include poll answerers, so first-time ones do too.
_GUIDE_ACTIVITY = (
    f"(SELECT day, visitor_id, account_id, guide_id FROM {_a('guide_events')} "
    f"UNION ALL SELECT day, visitor_id, account_id, guide_id FROM {_a('poll_events')})"
)
GUIDE_FIRST_SEEN = _first_seen(
    "guide", _GUIDE_ACTIVITY, "guide_id", fingerprint="sum(hash(visitor_id, account_id, guide_id))"
)

DAILY_MARTS: tuple[Mart, ...] = (
    Mart(
        name="account_daily_metrics",
        description="One row per day and account: active visitors, events, minutes, event "
        "records, distinct pages viewed and features clicked and the visitors who did, "
        "per-visitor averages and the account's share of the day's visitors. Activity without "
        "an account (anonymous visitors) is the row with account_id ''.",
        daily=True,
        grain=("day", "account_id"),
        reads=(_a("events"), _a("page_events"), _a("feature_events")),
        tie_outs=(
            TieOut("events", "sum_events", _p("events"), "sum(num_events)"),
            TieOut("minutes", "sum_minutes", _p("events"), "sum(num_minutes)"),
            TieOut("event records", "count_event_records", _p("events"), "count(*)"),
        ),
    ),
    Mart(
        name="visitor_daily_metrics",
        description="One row per day and visitor: email, main account of the day, events, "
        "minutes, event records, distinct pages viewed and features clicked.",
        daily=True,
        grain=("day", "visitor_id"),
        reads=(_a("events"), _a("page_events"), _a("feature_events")),
        tie_outs=(
            TieOut("events", "sum_events", _p("events"), "sum(num_events)"),
            TieOut("minutes", "sum_minutes", _p("events"), "sum(num_minutes)"),
            TieOut("event records", "count_event_records", _p("events"), "count(*)"),
        ),
    ),
    Mart(
        name="feature_daily_metrics",
        description="One row per day and feature, from the day the feature was created (zeros "
        "on days without clicks) plus any day with clicks: clicks, minutes, click records, "
        "visitors, accounts, first-time and returning visitors and accounts, per-visitor "
        "averages and the feature's share of the day's clicks, visitors and accounts.",
        daily=True,
        grain=("day", "feature_id"),
        reads=(_a("feature_events"), _p("features"), _p("pages")),
        tie_outs=(
            TieOut("clicks", "sum_clicks", _p("feature_events"), "sum(num_events)"),
            TieOut("minutes", "sum_minutes", _p("feature_events"), "sum(num_minutes)"),
            TieOut("click records", "count_click_events", _p("feature_events"), "count(*)"),
        ),
        first_seen=FEATURE_FIRST_SEEN,
    ),
    Mart(
        name="page_daily_metrics",
        description="One row per day and page, from the day the page was created (zeros on "
        "days without views) plus any day with views: page views, minutes, view records, "
        "visitors, accounts, first-time and returning visitors and accounts, per-visitor "
        "averages and the page's share of the day's page views, visitors and accounts.",
        daily=True,
        grain=("day", "page_id"),
        reads=(_a("page_events"), _p("pages")),
        tie_outs=(
            TieOut("page views", "sum_pageviews", _p("page_events"), "sum(num_events)"),
            TieOut("minutes", "sum_minutes", _p("page_events"), "sum(num_minutes)"),
            TieOut("page view records", "count_pageview_events", _p("page_events"), "count(*)"),
        ),
        first_seen=PAGE_FIRST_SEEN,
    ),
    Mart(
        name="guide_daily_metrics",
        description="One row per day and guide, from the day the guide was created (zeros on "
        "days without events) plus any day with events: visitors, accounts, first-time and "
        "returning visitors and accounts, guide events by type (seen, advanced, dismissed, "
        "snoozed, timed out, activity, other) and distinct visitors per type, poll responses, "
        "and the step funnel (steps, visitors who saw the first and the last step, visitors "
        "per step as JSON).",
        daily=True,
        grain=("day", "guide_id"),
        reads=(_a("guide_events"), _a("poll_events"), _p("guide_steps"), _p("guides")),
        tie_outs=_guide_tie_outs(),
        first_seen=GUIDE_FIRST_SEEN,
        counts_guide_types=True,
    ),
)

ROLLUPS: tuple[Mart, ...] = (
    Mart(
        name="accounts",
        description="One row per account: its current attributes plus lifetime activity (first "
        "and last active day, active days, events, minutes, distinct visitors) and NPS (latest "
        "and mean score, responses).",
        daily=False,
        grain=("account_id",),
        reads=(_p("accounts"), _a("account_daily_metrics"), _a("events"), _a("poll_events")),
        tie_outs=(TieOut("events", "sum_events", _p("events"), "sum(num_events)", _HAS_ACCOUNT),),
    ),
    Mart(
        name="visitors",
        description="One row per visitor: its current attributes plus lifetime activity (first "
        "and last active day, active days, events, minutes, distinct accounts) and NPS (latest "
        "and mean score, responses).",
        daily=False,
        grain=("visitor_id",),
        reads=(_p("visitors"), _a("visitor_daily_metrics"), _a("events"), _a("poll_events")),
        tie_outs=(TieOut("events", "sum_events", _p("events"), "sum(num_events)"),),
    ),
    Mart(
        name="features",
        description="One row per feature (deleted ones included): lifetime clicks, first and "
        "last click day, active days, distinct visitors and accounts.",
        daily=False,
        grain=("feature_id",),
        reads=(
            _p("features"),
            _p("pages"),
            _a("feature_daily_metrics"),
            _a("feature_events"),
        ),
        tie_outs=(TieOut("clicks", "sum_clicks", _p("feature_events"), "sum(num_events)"),),
    ),
    Mart(
        name="pages",
        description="One row per page (deleted ones included): lifetime page views, minutes, "
        "first and last view day, active days, distinct visitors and accounts.",
        daily=False,
        grain=("page_id",),
        reads=(_p("pages"), _a("page_daily_metrics"), _a("page_events")),
        tie_outs=(TieOut("page views", "sum_pageviews", _p("page_events"), "sum(num_events)"),),
    ),
    Mart(
        name="guides",
        description="One row per guide (deleted ones included): lifetime guide events by "
        "type, poll responses, active days, distinct visitors and accounts.",
        daily=False,
        grain=("guide_id",),
        reads=(
            _p("guides"),
            _a("guide_daily_metrics"),
            _a("guide_events"),
            _a("poll_events"),
        ),
        tie_outs=_guide_tie_outs(),
        counts_guide_types=True,
    ),
    Mart(
        name="visitor_features",
        description="One row per visitor and feature they ever clicked: first and last click "
        "day, clicks, minutes and active days.",
        daily=False,
        grain=("visitor_id", "feature_id"),
        reads=(_a("feature_events"),),
        tie_outs=(TieOut("clicks", "sum_clicks", _p("feature_events"), "sum(num_events)"),),
    ),
)

MARTS: tuple[Mart, ...] = DAILY_MARTS + ROLLUPS
MARTS_BY_NAME: dict[str, Mart] = {m.name: m for m in MARTS}


def tie_out_sql(mart: Mart, tie: TieOut, by_day: bool) -> str:
    """(day?, mart value, raw value) for days ``$1``..``$2`` (by_day) or the whole table.

    A FULL JOIN by day, so a day present on one side only shows up as a difference.
    """
    if not by_day:
        return (
            f"SELECT (SELECT coalesce(sum({tie.mart_expr}), 0) FROM {mart.table})::HUGEINT, "
            f"(SELECT coalesce({tie.raw_expr}, 0) FROM {tie.raw_table} "
            f"WHERE {tie.raw_where})::HUGEINT"
        )
    return f"""
        WITH m AS (
            SELECT day, sum({tie.mart_expr}) AS v FROM {mart.table}
            WHERE day BETWEEN $1 AND $2 GROUP BY day
        ), r AS (
            SELECT day, {tie.raw_expr} AS v FROM {tie.raw_table}
            WHERE day BETWEEN $1 AND $2 AND ({tie.raw_where}) GROUP BY day
        )
        SELECT coalesce(m.day, r.day) AS day,
               coalesce(m.v, 0)::HUGEINT, coalesce(r.v, 0)::HUGEINT
        FROM m FULL JOIN r ON m.day = r.day
        ORDER BY 1
    """
