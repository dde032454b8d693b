"""Enriched SQL on a hand-made warehouse: names joined, no row lost or duplicated."""

from datetime import date

import duckdb

from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.enriched_sql import enriched_query

D = date(2026, 10, 1)


def setup(con, with_email=True):
    con.execute("CREATE SCHEMA pendo")
    con.execute(
        "CREATE TABLE pendo.feature_events AS SELECT * FROM (VALUES "
        "('v1','a1','f1',DATE '2026-10-01',3), ('v2','a1','f2',DATE '2026-10-01',1), "
        "('v3','', 'f9',DATE '2026-10-01',2), ('v1','a1','f1',DATE '2026-10-02',5)) "
        "t(visitor_id, account_id, feature_id, day, num_events)"
    )
    email = ", 'v1@x.io' AS metadata_agent_email" if with_email else ""
    con.execute(f"CREATE TABLE pendo.visitors AS SELECT 'v1' AS visitor_id{email}")
    # A duplicated entity row must not duplicate event rows.
    con.execute(
        "CREATE TABLE pendo.accounts AS SELECT * FROM (VALUES ('a1','Acme'),('a1','Acme')) "
        "t(account_id, metadata_agent_name)"
    )
    con.execute(
        "CREATE TABLE pendo.features AS SELECT * FROM (VALUES "
        "('f1','Export','Reports','p1'), ('f2','Share',NULL,'p404')) "
        "t(id, name, group_name, page_id)"
    )
    con.execute(
        "CREATE TABLE pendo.pages AS SELECT 'p1' AS id, 'Dashboard' AS name, 'Home' AS group_name"
    )


def run(con, entity_columns=None):
    src = SOURCES_BY_NAME["featureEvents"]
    raw_cols = [r[0] for r in con.execute("DESCRIBE pendo.feature_events").fetchall()]
    sql = enriched_query(src, raw_cols, entity_columns)
    cur = con.execute(f"SELECT * FROM ({sql}) ORDER BY visitor_id", [D, D])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_names_are_joined_and_rows_kept():
    con = duckdb.connect()
    setup(con)
    rows = run(con)
    assert [r["visitor_id"] for r in rows] == ["v1", "v2", "v3"]
    v1, v2, v3 = rows
    names = ("account_name", "visitor_email", "feature_name", "group_name", "page_id", "page_name")
    assert tuple(v1[k] for k in names) == (
        "Acme",
        "v1@x.io",
        "Export",
        "Reports",
        "p1",
        "Dashboard",
    )
    assert (v2["feature_name"], v2["page_id"], v2["page_name"]) == ("Share", "p404", None)
    # Unknown feature, anonymous account: the row is kept, its names are null.
    assert v3["feature_name"] is None and v3["account_name"] is None


def test_a_dropped_name_column_comes_out_null():
    con = duckdb.connect()
    setup(con, with_email=False)
    cols = {
        t: [r[0] for r in con.execute(f"DESCRIBE pendo.{t}").fetchall()]
        for t in ("visitors", "accounts", "features", "pages")
    }
    rows = run(con, cols)
    assert [r["visitor_email"] for r in rows] == [None, None, None]
    assert rows[0]["account_name"] == "Acme"
