"""Guide steps and polls flattened from the guides entity, NPS scores and buckets on poll
events, the guide step funnel and NPS per account/visitor: exact on a hand-made warehouse."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest

from pendo_assets.assets.raw import nested_statements
from pendo_assets.catalog import SOURCES_BY_NAME, SOURCES_BY_TABLE
from pendo_assets.enriched_sql import enriched_query
from pendo_assets.marts.first_seen import fold_and_recompute
from pendo_assets.marts.models import MARTS_BY_NAME

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)
NPS, TEXT = "pollNps", "pollWhy"
STEPS = [
    {"id": "s1", "guideId": "g1", "type": "lightbox", "pageId": "p1", "rank": 0,
     "name": "Welcome", "pollIds": [NPS, TEXT]},
    {"id": "s2", "guideId": "g1", "type": "tooltip", "pageId": "p1", "rank": 1000,
     "name": "Try it", "pollIds": []},
]  # fmt: skip
POLLS = [
    {"id": NPS, "question": "How likely are you to recommend us?", "questionType": "NPSRating",
     "numericResponses": list(range(11))},
    {"id": TEXT, "question": "Why?", "questionType": "FreeForm"},
]  # fmt: skip
# (visitor, account, day, ms, poll, response): scores 0, 6 detractors; 7, 8 passives;
# 9, 10 promoters; "11", "7.5" and "n/a" are not scores; the free text is not NPS.
ANSWERS = [
    ("v1", "a1", D1, 1, NPS, "0"),
    ("v2", "a1", D1, 2, NPS, "6"),
    ("v3", "a1", D1, 3, NPS, "7"),
    ("v4", "a2", D1, 4, NPS, "8"),
    ("v5", "a2", D1, 5, NPS, "9"),
    ("v1", "a1", D2, 6, NPS, "10"),
    ("v6", "a2", D2, 7, NPS, "11"),
    ("v6", "a2", D2, 8, NPS, "7.5"),
    ("v6", "a2", D2, 9, NPS, "n/a"),
    ("v1", "a1", D2, 10, TEXT, "9"),
]


@pytest.fixture()
def con():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA pendo; CREATE SCHEMA analytics")
    con.execute(
        "CREATE TABLE pendo.guides AS SELECT 'g1' AS id, -323232::BIGINT AS app_id, "
        "'Survey' AS name, ?::JSON AS steps, ?::JSON AS polls, "
        "TIMESTAMPTZ '2026-09-01 12:00:00+00' AS created_at",
        [json.dumps(STEPS), json.dumps(POLLS)],
    )
    for sql in nested_statements(SOURCES_BY_TABLE["guides"], frozenset()):
        con.execute(sql)
    con.execute(
        "CREATE TABLE pendo.poll_events (visitor_id VARCHAR, account_id VARCHAR, day DATE, "
        "browser_time TIMESTAMPTZ, guide_id VARCHAR, poll_id VARCHAR, poll_response VARCHAR)"
    )
    for v, a, d, ms, p, r in ANSWERS:
        con.execute(
            "INSERT INTO pendo.poll_events VALUES (?, ?, ?, make_timestamp(?::BIGINT * 1000000), "
            "'g1', ?, ?)",
            [v, a, d, ms, p, r],
        )
    for t in ("accounts", "visitors"):
        key = t[:-1] + "_id"
        con.execute(
            f"CREATE TABLE pendo.{t} ({key} VARCHAR, metadata_agent_name VARCHAR, "
            "metadata_agent_email VARCHAR)"
        )
    src = SOURCES_BY_NAME["pollEvents"]
    raw_cols = [r[0] for r in con.execute("DESCRIBE pendo.poll_events").fetchall()]
    con.execute(f"CREATE TABLE analytics.poll_events AS {enriched_query(src, raw_cols)}", [D1, D2])
    yield con
    con.close()


def test_steps_and_polls_are_flattened_from_the_guides(con):
    assert con.execute(
        "SELECT guide_id, step_id, step_number, rank, type, page_id, name "
        "FROM pendo.guide_steps ORDER BY step_number"
    ).fetchall() == [
        ("g1", "s1", 1, 0, "lightbox", "p1", "Welcome"),
        ("g1", "s2", 2, 1000, "tooltip", "p1", "Try it"),
    ]
    rows = con.execute(
        "SELECT poll_id, guide_id, question, question_type, is_nps, choices "
        "FROM pendo.polls ORDER BY poll_id"
    ).fetchall()
    assert rows[0][:5] == (NPS, "g1", "How likely are you to recommend us?", "NPSRating", True)
    assert json.loads(rows[0][5]) == list(range(11))
    assert rows[1][:5] == (TEXT, "g1", "Why?", "FreeForm", False)


def test_nps_scores_and_buckets_are_exact(con):
    got = con.execute(
        "SELECT visitor_id, poll_response, poll_question, nps_score, nps_bucket "
        "FROM analytics.poll_events ORDER BY browser_time"
    ).fetchall()
    q = "How likely are you to recommend us?"
    assert got == [
        ("v1", "0", q, 0, "detractor"),
        ("v2", "6", q, 6, "detractor"),
        ("v3", "7", q, 7, "passive"),
        ("v4", "8", q, 8, "passive"),
        ("v5", "9", q, 9, "promoter"),
        ("v1", "10", q, 10, "promoter"),
        ("v6", "11", q, None, None),
        ("v6", "7.5", q, None, None),
        ("v6", "n/a", q, None, None),
        ("v1", "9", "Why?", None, None),
    ]
    assert (
        con.execute("SELECT typeof(nps_score) FROM analytics.poll_events LIMIT 1").fetchone()[0]
        == "INTEGER"
    )


def test_accounts_and_visitors_carry_latest_and_mean_nps(con):
    # The rollups also read the daily metrics and events: empty ones will do here.
    for t, key in (("account", "account_id"), ("visitor", "visitor_id")):
        con.execute(
            f"CREATE TABLE analytics.{t}_daily_metrics ({key} VARCHAR, day DATE, "
            f"{'account_name' if t == 'account' else 'visitor_email'} VARCHAR, "
            "sum_events BIGINT, sum_minutes BIGINT)"
        )
    con.execute("CREATE TABLE analytics.events (visitor_id VARCHAR, account_id VARCHAR)")
    con.execute("INSERT INTO pendo.accounts (account_id) VALUES ('a1'), ('a2')")
    con.execute(
        "INSERT INTO pendo.visitors (visitor_id) SELECT DISTINCT visitor_id FROM pendo.poll_events"
    )
    accounts = con.execute(
        f"SELECT account_id, latest_nps_score, avg_nps_score, count_nps_responses "
        f"FROM ({MARTS_BY_NAME['accounts'].sql}) ORDER BY 1"
    ).fetchall()
    assert accounts == [("a1", 10, (0 + 6 + 7 + 10) / 4, 4), ("a2", 9, (8 + 9) / 2, 2)]
    visitors = dict(
        (r[0], r[1:])
        for r in con.execute(
            f"SELECT visitor_id, latest_nps_score, avg_nps_score, count_nps_responses "
            f"FROM ({MARTS_BY_NAME['visitors'].sql})"
        ).fetchall()
    )
    assert visitors["v1"] == (10, 5.0, 2)
    assert visitors["v6"] == (None, None, 0)


def test_guide_funnel_counts_visitors_per_step(con):
    con.execute(
        "CREATE TABLE analytics.guide_events AS SELECT * FROM (VALUES "
        "('v1','a1',DATE '2026-10-01','guideSeen','g1','s1','Survey'),"
        "('v1','a1',DATE '2026-10-01','guideSeen','g1','s1','Survey'),"
        "('v2','a1',DATE '2026-10-01','guideSeen','g1','s1','Survey'),"
        "('v1','a1',DATE '2026-10-01','guideAdvanced','g1','s1','Survey'),"
        "('v1','a1',DATE '2026-10-01','guideSeen','g1','s2','Survey')) "
        "t(visitor_id, account_id, day, type, guide_id, guide_step_id, guide_name)"
    )
    # What the mart's write does first: the first-seen tables and the time zone it reads.
    fold_and_recompute(con, MARTS_BY_NAME["guide_daily_metrics"], [D1], "America/New_York")
    row = con.execute(
        f"SELECT count_steps, count_visitors_first_step, count_visitors_last_step, step_funnel "
        f"FROM ({MARTS_BY_NAME['guide_daily_metrics'].sql}) WHERE day = $1",
        [D1, D1],
    ).fetchone()
    assert row[:3] == (2, 2, 1)
    assert [
        (s["step_id"], s["step_name"], s["count_visitors_seen"]) for s in json.loads(row[3])
    ] == [
        ("s1", "Welcome", 2),
        ("s2", "Try it", 1),
    ]


def test_nps_bucket_check_ties_out_in_a_real_run(emulator, make_project):
    """Entities, raw and enriched poll events through Dagster; the NPS check passes and the
    buckets match the emulator's answers."""
    from pendo_assets.catalog import ENTITIES
    from pendo_assets.checks.nps import NPS_BUCKETS_TIE_OUT
    from pendo_assets.emulator.entities import entity_rows

    project = make_project(emulator)
    assert project.materialize([f"pendo/{s.table}" for s in ENTITIES]).success
    day = "2026-10-05"
    assert project.materialize(["pendo/poll_events"], day, "2026-10-11").success
    result = project.materialize(["analytics/poll_events"], day, "2026-10-11")
    checks = [
        c for c in result.get_asset_check_evaluations() if c.check_name == NPS_BUCKETS_TIE_OUT
    ]
    assert checks and all(c.passed for c in checks)
    nps_polls = {
        p["id"]
        for g in entity_rows(emulator.subscription, "guides")
        for p in g["polls"]
        if p["questionType"] == "NPSRating"
    }
    assert project.query("SELECT count(*) FROM pendo.polls WHERE is_nps") == [(len(nps_polls),)]
    scored = project.query(
        "SELECT count(*), count(*) FILTER (nps_score BETWEEN 0 AND 10) FROM analytics.poll_events "
        "WHERE poll_id IN (SELECT poll_id FROM pendo.polls WHERE is_nps)"
    )[0]
    assert scored[0] > 0 and scored[0] == scored[1]
    assert project.query("SELECT count(*) FROM pendo.guide_steps")[0][0] == sum(
        len(g["steps"]) for g in entity_rows(emulator.subscription, "guides")
    )
