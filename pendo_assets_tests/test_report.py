"""The usage report's numbers and drawing, on hand-made mart rows (fast; the asset itself runs
end to end through the UI in test_ui_e2e.py)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from pendo_assets.assets.report import (
    TOP_N,
    UsageData,
    query_note,
    read_usage,
    render_html,
    render_png,
    report_dir,
)
from pendo_assets.settings import Settings
from pendo_assets.warehouse.io_manager import WarehouseResource

LAST = date(2026, 11, 20)


def marts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA analytics")
    con.execute("CREATE TABLE analytics.visitor_daily_metrics (day DATE, visitor_id VARCHAR)")
    con.execute("CREATE TABLE analytics.account_daily_metrics (day DATE, account_id VARCHAR)")
    con.execute(
        "CREATE TABLE analytics.feature_daily_metrics "
        "(day DATE, feature_id VARCHAR, feature_name VARCHAR, sum_clicks BIGINT)"
    )
    con.execute(
        "CREATE TABLE analytics.page_daily_metrics "
        "(day DATE, page_id VARCHAR, page_name VARCHAR, sum_pageviews BIGINT)"
    )
    con.execute(
        "CREATE TABLE analytics.guide_daily_metrics (day DATE, guide_id VARCHAR, "
        "count_guide_seen BIGINT, count_guide_advanced BIGINT, count_guide_dismissed BIGINT, "
        "count_guide_snoozed BIGINT, count_guide_timeout BIGINT)"
    )
    # 40 days: the report's 30-day window must leave out the first 10.
    for i in range(40):
        d = LAST - timedelta(days=39 - i)
        for v in range(i % 5 + 1):
            con.execute("INSERT INTO analytics.visitor_daily_metrics VALUES (?, ?)", [d, f"v{v}"])
        con.execute("INSERT INTO analytics.account_daily_metrics VALUES (?, 'a1')", [d])
        # Activity without an account (anonymous visitors) is no account.
        con.execute("INSERT INTO analytics.account_daily_metrics VALUES (?, '')", [d])
        for f in range(12):
            con.execute(
                "INSERT INTO analytics.feature_daily_metrics VALUES (?, ?, ?, ?)",
                [d, f"f{f}", None if f == 11 else f"Feature {f}", f + 1],
            )
        con.execute("INSERT INTO analytics.page_daily_metrics VALUES (?, 'p1', 'Home', 7)", [d])
        # A page of the date spine never viewed: no bar.
        con.execute("INSERT INTO analytics.page_daily_metrics VALUES (?, 'p0', 'Idle', 0)", [d])
        con.execute(
            "INSERT INTO analytics.guide_daily_metrics VALUES (?, 'g1', 10, 4, 3, 1, 2)", [d]
        )


def test_read_usage_covers_the_last_30_days_with_top_lists_and_the_funnel():
    con = duckdb.connect()
    marts(con)
    data = read_usage(con)
    assert data is not None
    assert (data.first, data.last, data.days) == (LAST - timedelta(days=29), LAST, 30)
    assert len(data.daily) == 30
    assert data.daily[-1] == (LAST, 39 % 5 + 1, 1)
    assert len(data.top_features) == TOP_N
    # Feature 11 has no name: it is shown by id, and it clicks most (12 a day for 30 days).
    assert data.top_features[0] == ("f11", 12 * 30)
    assert data.top_features[1] == ("Feature 10", 11 * 30)
    assert data.top_pages == [("Home", 7 * 30)]
    assert data.funnel == [
        ("seen", 300),
        ("advanced", 120),
        ("dismissed", 90),
        ("snoozed", 30),
        ("timed out", 60),
    ]


def test_read_usage_is_none_on_empty_marts():
    con = duckdb.connect()
    marts(con)
    con.execute("DELETE FROM analytics.visitor_daily_metrics")
    assert read_usage(con) is None


def test_read_usage_window_starts_at_the_first_loaded_day():
    con = duckdb.connect()
    marts(con)
    con.execute("DELETE FROM analytics.visitor_daily_metrics WHERE day < ?", [LAST - timedelta(2)])
    data = read_usage(con)
    assert (data.first, data.last, len(data.daily)) == (LAST - timedelta(2), LAST, 3)


def test_render_png_and_html():
    con = duckdb.connect()
    marts(con)
    data = read_usage(con)
    png = render_png(data, " (demo data)")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (13 * 80, int(8.5 * 80))
    assert len(png) < 300_000
    page = render_html(png, "Pendo <usage>")
    assert "<title>Pendo &lt;usage&gt;</title>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgo' in page


def test_the_report_points_analysts_at_the_readers_snapshot():
    on = WarehouseResource(
        settings=Settings(duckdb_path="data/w.duckdb", duckdb_read_path="data/w.read.duckdb")
    )
    note = query_note(on)
    assert "data/w.read.duckdb (PENDO_DUCKDB_READ_PATH" in note and "data/w.duckdb" not in note
    page = render_html(b"png", "Pendo usage", note)
    assert "<p" in page and "data/w.read.duckdb (PENDO_DUCKDB_READ_PATH" in page
    # Publishing off (the variable names the warehouse): the warehouse is where to query.
    off = WarehouseResource(settings=Settings(duckdb_path="data/w.duckdb"))
    assert "in data/w.duckdb." in query_note(off)


def test_render_png_with_empty_lists_still_draws():
    empty = UsageData(LAST, LAST, daily=[], funnel=[("seen", 0)])
    assert render_png(empty)[:4] == b"\x89PNG"


def test_report_dir_is_beside_the_warehouse(tmp_path):
    assert report_dir(str(tmp_path / "w" / "x.duckdb")) == tmp_path / "w" / "reports"
    assert report_dir("md:pendo").name == "reports"
    assert report_dir("md:pendo").parent.name == "data"
