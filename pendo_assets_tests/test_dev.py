"""`make dev`'s launcher: demo mode only without a key; the demo settings load cleanly; the
`dagster` CLI loads the project quietly."""

import sys

from pendo_assets.dev import DEMO_KEY, DEMO_TIMEZONE, demo_env, effective_env, needs_emulator
from pendo_assets.settings import DEMO_HISTORY_DAYS, load_settings

from .conftest import TODAY, run_in_demo_mode


def test_a_key_means_no_emulator():
    assert needs_emulator({})
    assert needs_emulator({"PENDO_INTEGRATION_KEY": "  "})
    assert not needs_emulator({"PENDO_INTEGRATION_KEY": "real-key"})


def test_demo_env_points_every_process_at_the_emulator(tmp_path):
    env = demo_env({"PENDO_DUCKDB_PATH": str(tmp_path / "w.duckdb")}, "http://127.0.0.1:4567")
    s = load_settings(env)
    assert s.demo and s.base_url == "http://127.0.0.1:4567"
    assert s.timezone == DEMO_TIMEZONE
    assert (TODAY - s.first_day).days == DEMO_HISTORY_DAYS
    assert env["PENDO_INTEGRATION_KEY"] == DEMO_KEY
    assert s.duckdb_path == str(tmp_path / "w.duckdb")  # the user's path is kept


def test_a_key_kept_in_dotenv_is_not_demo_mode(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PENDO_INTEGRATION_KEY=from-file\nPENDO_REGION=eu\n")
    env = effective_env({"PENDO_REGION": "us"}, str(dotenv))
    assert not needs_emulator(env)
    assert env["PENDO_REGION"] == "us"  # the shell wins over .env
    assert needs_emulator(effective_env({}, str(tmp_path / "missing.env")))


def test_the_dagster_cli_loads_the_project_without_a_warning_flood(tmp_path):
    """No BetaWarning (17 about backfill_policy before pendo_assets.quiet) when the CLI loads us."""
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = run_in_demo_mode(
        [sys.executable, "-m", "dagster", "asset", "list", "-m", "pendo_assets.definitions"],
        tmp_path,
        DAGSTER_HOME=str(tmp_path),
        PENDO_DUCKDB_PATH=str(tmp_path / "w.duckdb"),
        PYTHONWARNINGS="default",  # show every warning once, as a fresh shell does
    )
    assert "pendo/page_events" in proc.stdout
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]
