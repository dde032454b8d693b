"""The usage report: charts a person would rather look at than read, drawn from the daily marts.

One PNG (daily active visitors and accounts, top features, top pages, the guide funnel) and a
small HTML page embedding it, written next to the warehouse file under ``reports/``, and the
same chart inline in the materialization metadata so it shows in the Dagster UI.
"""

import base64
import html
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from pendo_assets.assets.marts import rollup_automation
from pendo_assets.assets.shared import demo_note, require_tables, table_key
from pendo_assets.catalog import ANALYTICS_SCHEMA, GUIDE_FUNNEL, guide_count_column
from pendo_assets.settings import DEFAULT_DUCKDB_PATH, Settings
from pendo_assets.warehouse.io_manager import WarehouseResource

REPORT_GROUP = "analytics_reports"
REPORT_KEY = table_key(f"{ANALYTICS_SCHEMA}.usage_report")
WINDOW_DAYS = 30
TOP_N = 10
# The marts the charts read, by table. Their asset keys are the same path.
READS = (
    "analytics.visitor_daily_metrics",
    "analytics.account_daily_metrics",
    "analytics.feature_daily_metrics",
    "analytics.page_daily_metrics",
    "analytics.guide_daily_metrics",
)
# (label, column of analytics.guide_daily_metrics) of each step of the catalog's guide funnel.
FUNNEL = tuple((label, guide_count_column(t)) for t, label in GUIDE_FUNNEL.items())


@dataclass
class UsageData:
    """What the charts show, for the window ``first``..``last`` (inclusive)."""

    first: date
    last: date
    daily: list[tuple[date, int, int]] = field(default_factory=list)  # day, visitors, accounts
    top_features: list[tuple[str, int]] = field(default_factory=list)  # name, clicks
    top_pages: list[tuple[str, int]] = field(default_factory=list)  # name, page views
    funnel: list[tuple[str, int]] = field(default_factory=list)  # step, guide events

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def report_dir(database: str) -> Path:
    """``reports/`` beside the warehouse file (beside the default path for MotherDuck)."""
    local = DEFAULT_DUCKDB_PATH if database.startswith(("md:", "motherduck:")) else database
    return Path(local).resolve().parent / "reports"


def _top(con, subject: str, measure: str, window: list) -> list[tuple]:
    """The ``TOP_N`` pages or features by ``measure`` over the window, by name (or id)."""
    return con.execute(
        f"""
        SELECT coalesce(any_value({subject}_name), {subject}_id), sum({measure})::BIGINT AS n
        FROM analytics.{subject}_daily_metrics WHERE day BETWEEN $1 AND $2
        GROUP BY {subject}_id HAVING n > 0 ORDER BY n DESC, 1 LIMIT {TOP_N}
        """,
        window,
    ).fetchall()


def read_usage(con, window_days: int = WINDOW_DAYS) -> UsageData | None:
    """Up to the last ``window_days`` days that have data in the marts (from the first loaded
    day when fewer are loaded); None when the marts are empty."""
    first, last = con.execute(
        "SELECT min(day), max(day) FROM analytics.visitor_daily_metrics"
    ).fetchone()
    if last is None:
        return None
    first = max(first, last - timedelta(days=window_days - 1))
    window = [first, last]
    data = UsageData(first, last)
    data.daily = con.execute(
        """
        WITH v AS (SELECT day, count(DISTINCT visitor_id) AS n FROM analytics.visitor_daily_metrics
                   WHERE day BETWEEN $1 AND $2 GROUP BY day),
             a AS (SELECT day, count(DISTINCT account_id) AS n FROM analytics.account_daily_metrics
                   WHERE day BETWEEN $1 AND $2 AND account_id <> '' GROUP BY day)
        SELECT v.day, v.n, coalesce(a.n, 0) FROM v LEFT JOIN a USING (day) ORDER BY v.day
        """,
        window,
    ).fetchall()
    data.top_features = _top(con, "feature", "sum_clicks", window)
    data.top_pages = _top(con, "page", "sum_pageviews", window)
    sums = ", ".join(f"coalesce(sum({col}), 0)::BIGINT" for _, col in FUNNEL)
    totals = con.execute(
        f"SELECT {sums} FROM analytics.guide_daily_metrics WHERE day BETWEEN $1 AND $2", window
    ).fetchone()
    data.funnel = [(step, int(n)) for (step, _), n in zip(FUNNEL, totals, strict=True)]
    return data


def _bars(ax, rows: list[tuple[str, int]], title: str, color: str) -> None:
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    if not rows:
        ax.text(0.5, 0.5, "no data in this window", ha="center", va="center", color="grey")
        ax.set_axis_off()
        return
    labels = [(name if len(name) <= 28 else name[:27] + "…") for name, _ in rows][::-1]
    values = [n for _, n in rows][::-1]
    # Positions, not category labels: two features may share a name.
    ax.barh(range(len(values)), values, color=color)
    ax.set_yticks(range(len(values)), labels)
    # Room for at least 5 bars, so one or two bars stay bar-shaped, at the top.
    ax.set_ylim(len(values) - max(len(values), 5) - 0.5, len(values) - 0.5)
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,}", va="center", fontsize=7)


def render_png(data: UsageData, subtitle: str = "") -> bytes:
    # Imported here, not at module level: matplotlib costs every Dagster process that loads
    # the definitions (CLI, code server, run worker) over half a second otherwise.
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to PNG, also inside run workers
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    """The four charts on one page, as PNG bytes."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), dpi=80)
    try:
        fig.suptitle(
            f"Pendo usage, {data.first.isoformat()} to {data.last.isoformat()}{subtitle}",
            fontsize=14,
            fontweight="bold",
        )
        ax = axes[0][0]
        ax.set_title("Daily active visitors and accounts", loc="left", fontsize=11, weight="bold")
        if data.daily:
            days = [d for d, _, _ in data.daily]
            ax.plot(days, [v for _, v, _ in data.daily], marker="o", ms=3, label="visitors")
            ax.plot(days, [a for _, _, a in data.daily], marker="o", ms=3, label="accounts")
            ax.set_ylim(bottom=0)
            ax.legend(frameon=False, fontsize=8)
            ax.spines[["top", "right"]].set_visible(False)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
            if len(days) <= 8:
                ax.set_xticks(days)  # whole days only; the auto locator would add noons
            else:
                ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=8))
            ax.tick_params(axis="x", labelsize=8, labelrotation=30)
        _bars(axes[0][1], data.top_features, f"Top {TOP_N} features by clicks", "#4C72B0")
        _bars(axes[1][0], data.top_pages, f"Top {TOP_N} pages by page views", "#55A868")
        ax = axes[1][1]
        ax.set_title("Guide funnel (all guides)", loc="left", fontsize=11, fontweight="bold")
        steps = [s for s, _ in data.funnel]
        counts = [n for _, n in data.funnel]
        ax.bar(steps, counts, color=["#8172B2", "#64B5CD", "#C44E52", "#CCB974", "#8C8C8C"])
        ax.spines[["top", "right"]].set_visible(False)
        seen = counts[0] if counts else 0
        for x, n in enumerate(counts):
            share = f"\n{100 * n / seen:.0f}% of seen" if seen and x else ""
            ax.text(x, n, f"{n:,}{share}", ha="center", va="bottom", fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def render_html(png: bytes, title: str, note: str = "") -> str:
    """The page: title, chart, and ``note`` (where to query the numbers) under it."""
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    t = html.escape(title)
    footer = f'\n<p style="color: #555">{html.escape(note)}</p>' if note else ""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{t}</title></head>\n'
        f'<body style="font-family: sans-serif; margin: 2em"><h1>{t}</h1>\n'
        f'<img src="{uri}" alt="{t}" style="max-width: 100%">{footer}</body></html>\n'
    )


def query_note(warehouse: WarehouseResource) -> str:
    """Where analysts query the numbers behind the charts: the readers' snapshot."""
    where = warehouse.read_path or warehouse.database
    what = " (PENDO_DUCKDB_READ_PATH, the snapshot published after each run)"
    return (
        f"The numbers behind these charts: the analytics.*_daily_metrics tables in "
        f"{where}{what if warehouse.read_path else ''}."
    )


def build_report_asset(settings: Settings) -> dg.AssetsDefinition:
    subtitle = " (demo data)" if settings.demo else ""

    @dg.asset(
        key=REPORT_KEY,
        deps=[table_key(t) for t in READS],
        group_name=REPORT_GROUP,
        kinds={"duckdb", "matplotlib"},
        pool=settings.warehouse_pool,
        automation_condition=rollup_automation(),
        description=f"The usage report: daily active visitors and accounts, the top "
        f"{TOP_N} features and pages and the guide funnel over the last {WINDOW_DAYS} loaded "
        f"days, drawn from the daily marts. Written as `usage_report.png` and "
        f"`usage_report.html` in `reports/` beside the warehouse file, and shown in this "
        f"asset's materialization metadata, with where to query the numbers behind it. Not a "
        f"table: one materialization is one "
        f"report.{demo_note(settings)}",
    )
    def usage_report(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        wh = warehouse.warehouse
        require_tables(wh, "the usage report", READS, then="this asset")
        with wh.connect() as con:
            data = read_usage(con)
        if data is None:
            raise dg.Failure(
                "the daily marts have no rows yet: materialize some days of them first."
            )
        png = render_png(data, subtitle)
        out = report_dir(warehouse.database)
        out.mkdir(parents=True, exist_ok=True)
        png_path = out / "usage_report.png"
        html_path = out / "usage_report.html"
        title = f"Pendo usage, {data.first} to {data.last}{subtitle}"
        png_path.write_bytes(png)
        html_path.write_text(render_html(png, title, query_note(warehouse)))
        context.log.info(f"wrote {png_path} ({len(png):,} bytes) and {html_path}")
        uri = "data:image/png;base64," + base64.b64encode(png).decode()
        active = [v for _, v, _ in data.daily]
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(f"![{title}]({uri})"),
                "png": dg.MetadataValue.path(str(png_path)),
                "html": dg.MetadataValue.path(str(html_path)),
                "query_in": dg.MetadataValue.path(warehouse.read_path or warehouse.database),
                "first_day": dg.MetadataValue.text(data.first.isoformat()),
                "last_day": dg.MetadataValue.text(data.last.isoformat()),
                "days_with_data": dg.MetadataValue.int(len(data.daily)),
                "peak_daily_active_visitors": dg.MetadataValue.int(max(active, default=0)),
                "guides_seen": dg.MetadataValue.int(data.funnel[0][1]),
                "png_bytes": dg.MetadataValue.int(len(png)),
            }
        )

    return usage_report
