"""Every SQL example in the README and docs/*.md runs against a warehouse loaded through
Dagster."""

import re
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pendo_assets.catalog import ENTITIES, EVENTS, HISTORIES
from pendo_assets.definitions import build_definitions
from pendo_assets.emulator import EmulatorServer, EntityEdit, TagChange
from pendo_assets.marts.models import DAILY_MARTS, ROLLUPS
from pendo_assets.settings import load_settings

from .conftest import TEST_KEY, TODAY, Project, project_env, small_subscription

# Left out of `make test-quick`: a warehouse loaded through Dagster for every example query.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def queries_in(page: Path) -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", page.read_text(), flags=re.S)
    return [q.strip() for b in blocks for q in b.split(";") if q.strip()]


def readme_queries() -> list[str]:
    """Every query of the README and the docs pages."""
    return [q for page in PAGES for q in queries_in(page)]


def test_readme_and_docs_have_sql_examples():
    counts = {p.name: len(queries_in(p)) for p in PAGES}
    assert counts["README.md"] >= 3 and counts["sql-examples.md"] >= 10, counts
    assert counts["history-changes.md"] >= 1, counts


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    # Data up to yesterday, so "last week" and "yesterday" examples have rows.
    today = TODAY
    first = today - timedelta(days=9)
    sub = small_subscription(first_day=first - timedelta(days=1), last_day=today)
    mp = pytest.MonkeyPatch()

    with EmulatorServer(sub, integration_key=TEST_KEY).start() as server:
        env = project_env(
            server, tmp_path_factory.mktemp("readme"), PENDO_START_DATE=first.isoformat()
        )
        for k, v in env.items():
            mp.setenv(k, v)
        project = Project(
            env,
            build_definitions(load_settings(env)),
            dg.DagsterInstance.ephemeral(),
            env["PENDO_DUCKDB_PATH"],
        )
        start, end = first.isoformat(), (today - timedelta(days=1)).isoformat()
        project.materialize([f"pendo/{s.table}" for s in ENTITIES])
        histories = [f"analytics/{h}" for h in HISTORIES]
        project.materialize(histories)
        # Some accounts change plan before the morning refresh: history gets a second version;
        # a page is tagged, which Pendo applies retroactively (_state.tag_changes).
        server.subscription = sub.replace(
            edits=(
                EntityEdit(
                    "accounts", 0.4, sub.history_end_ms + 7_200_000, value="enterprise plus"
                ),
            ),
            tag_changes=(TagChange("pages", "create", sub.history_end_ms + 7_200_000),),
        )
        project.materialize(["pendo/accounts", "analytics/account_history", "pendo/pages"])
        daily = [f"pendo/{s.table}" for s in EVENTS] + [f"analytics/{s.table}" for s in EVENTS]
        daily += [f"analytics/{m.name}" for m in DAILY_MARTS]
        project.materialize(daily, start, end)
        project.materialize([f"analytics/{m.name}" for m in ROLLUPS])
    # Analysts query the snapshot the last run published, as the README tells them to.
    yield load_settings(env).duckdb_read_path
    project.instance.dispose()
    mp.undo()


def test_every_readme_query_runs(warehouse):
    con = duckdb.connect(warehouse, read_only=True)
    try:
        # "Last week" and "yesterday" are as of the suite's pinned today, not DuckDB's clock.
        pinned = f"DATE '{TODAY.isoformat()}'"
        results = {
            q: con.execute(q.replace("current_date", pinned)).fetchall() for q in readme_queries()
        }
    finally:
        con.close()
    empty = [q.splitlines()[0] for q, rows in results.items() if not rows]
    # Every example answers with rows on ten days of demo data, except possibly the
    # "went quiet" one (no account need be inactive for two weeks of a ten-day history).
    assert all("quiet" in q for q in empty), empty
