"""Configuration fails at load time, naming the variable and a valid example."""

import re
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from pendo_assets.checks.shared import RECONCILES
from pendo_assets.settings import (
    DEFAULT_DUCKDB_PATH,
    WEEKDAYS,
    Settings,
    SettingsError,
    default_of,
    env_of,
    load_settings,
)

TODAY = date(2026, 11, 26)
REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
KEYED = {"PENDO_INTEGRATION_KEY": "k", "PENDO_START_DATE": "2026-01-01"}


def load(**env):
    return load_settings({**KEYED, **env}, today=TODAY)


def test_defaults_with_a_key():
    s = load()
    assert s.base_url == "https://app.pendo.io"
    assert s.app_ids is None
    assert s.timezone == "UTC"
    assert s.duckdb_path == DEFAULT_DUCKDB_PATH
    assert s.include_anonymous and s.apply_exclude_list
    assert s.max_concurrency == 8 and s.days_per_request == 30 and s.lookback_days == 10
    assert not s.demo


@pytest.mark.parametrize(
    "region,host",
    [
        ("us", "app.pendo.io"),
        ("eu", "app.eu.pendo.io"),
        ("us1", "us1.app.pendo.io"),
        ("jpn", "app.jpn.pendo.io"),
        ("AU", "app.au.pendo.io"),
    ],
)
def test_regions(region, host):
    assert load(PENDO_REGION=region).host == host


def test_base_url_overrides_region():
    assert load(PENDO_REGION="eu", PENDO_BASE_URL="https://adopt.pendo.io/").base_url == (
        "https://adopt.pendo.io"
    )


def test_app_ids():
    assert load(PENDO_APP_ID="-323232").app_ids == [-323232]
    assert load(PENDO_APP_ID="-323232, 5629499534213120").app_ids == [-323232, 5629499534213120]
    assert load(PENDO_APP_ID="*").app_ids is None


@pytest.mark.parametrize(
    "var,value",
    [
        ("PENDO_REGION", "mars"),
        ("PENDO_APP_ID", "web-app"),
        ("PENDO_START_DATE", "2012-12-31"),
        ("PENDO_START_DATE", "2027-01-01"),
        ("PENDO_START_DATE", "01/02/2026"),
        ("PENDO_TIMEZONE", "Eastern Time"),
        ("PENDO_INCLUDE_ANONYMOUS", "maybe"),
        ("PENDO_MAX_CONCURRENCY", "0"),
        ("PENDO_DAYS_PER_REQUEST", "31"),
        ("PENDO_DUCKDB_PATH", "data/pendo.duckdb"),
        ("PENDO_DROP_COLUMNS", "Remote IP"),
        ("PENDO_ALERT_WEBHOOK", "not a url"),
        ("PENDO_DUCKDB_MEMORY_LIMIT", "lots"),
    ],
)
def test_bad_values_name_the_variable_and_an_example(var, value):
    with pytest.raises(SettingsError) as err:
        load(**{var: value})
    assert var in str(err.value)
    assert "Example:" in str(err.value)


def test_unwritable_duckdb_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SettingsError, match="PENDO_DUCKDB_PATH"):
        load(PENDO_DUCKDB_PATH=str(blocker / "warehouse.duckdb"))


def test_start_date_is_required_with_a_key():
    with pytest.raises(SettingsError, match="PENDO_START_DATE is required"):
        load_settings({"PENDO_INTEGRATION_KEY": "k"}, today=TODAY)


def test_demo_mode_without_a_key():
    s = load_settings({}, today=TODAY)
    assert s.demo
    assert s.base_url.startswith("http://127.0.0.1")
    assert s.first_day < TODAY


def test_motherduck_path_is_accepted():
    assert load(PENDO_DUCKDB_PATH="md:pendo_warehouse").duckdb_path == "md:pendo_warehouse"
    with pytest.raises(SettingsError, match="PENDO_DUCKDB_PATH"):
        load(PENDO_DUCKDB_PATH="md:")


# -- one default per setting -----------------------------------------------------------------


@pytest.fixture()
def field_defaults():
    """Change ``Settings`` field defaults for one test (restored after it)."""
    changed: list = []

    def change(**defaults):
        for name, value in defaults.items():
            field = Settings.model_fields[name]
            changed.append((field, field.default))
            field.default = value
        Settings.model_rebuild(force=True)

    yield change
    for field, old in reversed(changed):
        field.default = old
    Settings.model_rebuild(force=True)


def test_every_unset_variable_loads_as_its_fields_default():
    s = load_settings({"PENDO_DEMO": "1"}, today=TODAY)
    derived = {"base_url", "start_date", "demo", "duckdb_read_path", "today"}
    for name in Settings.model_fields:
        if env_of(name) is not None and name not in derived:
            assert getattr(s, name) == default_of(name), name


def test_the_pendo_layer_and_the_client_declare_no_default_of_a_setting():
    """FetchOptions, Scope and PendoClient take every setting from the resource: none of them
    has a default of its own that could drift from the Settings field's."""
    import dataclasses
    import inspect

    from pendo_assets.pendo.client import PendoClient
    from pendo_assets.pendo.fetch import FetchOptions
    from pendo_assets.pendo.queries import Scope

    for cls, not_settings in ((FetchOptions, {"rows_per_request"}), (Scope, set())):
        defaulted = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        }
        assert defaulted == not_settings, cls
    params = inspect.signature(PendoClient).parameters
    for name in ("timeout_s", "max_retries", "max_concurrency", "backoff_base_s"):
        assert params[name].default is inspect.Parameter.empty, name


def test_a_changed_field_default_is_seen_everywhere(field_defaults, tmp_path):
    """The Settings field is the one place a default is written: change it there and the
    client, the Pendo layer's options, the warehouse, the partitions, the schedules and the
    checks all follow."""
    from pendo_assets.automation import REFRESH_SCHEDULE
    from pendo_assets.definitions import build_definitions
    from pendo_assets.pendo.queries import Scope

    changed = {
        "timezone": "Asia/Tokyo",
        "include_anonymous": False,
        "apply_exclude_list": False,
        "max_concurrency": 3,
        "days_per_request": 7,
        "request_timeout_s": 42.0,
        "max_retries": 2,
        "retry_backoff_s": 0.25,
        "duckdb_memory_limit": "2GB",
        "duckdb_lock_wait_s": 12.0,
        "lookback_days": 4,
        "final_after_days": 5,
    }
    field_defaults(**changed)
    db = str(tmp_path / "w.duckdb")
    defs = build_definitions(load_settings({"PENDO_DEMO": "1", "PENDO_DUCKDB_PATH": db}, TODAY))
    pendo = defs.resources["pendo"]
    opts, client = pendo.options, pendo.client
    try:
        assert opts.scope == Scope(None, include_anonymous=False, apply_exclude_list=False)
        assert (opts.zone_name, opts.max_concurrency, opts.days_per_request) == (
            "Asia/Tokyo",
            3,
            7,
        )
        assert (client.timeout_s, client.max_retries, client.backoff_base_s) == (42.0, 2, 0.25)
        assert client._slots.capacity == 3  # requests in flight at most
    finally:
        client.close()
    warehouse = defs.resources["warehouse"]
    assert (warehouse.memory_limit, warehouse.lock_wait_s) == ("2GB", 12.0)
    graph = defs.resolve_asset_graph()
    parts = graph.get(dg.AssetKey(["pendo", "page_events"])).partitions_def
    assert parts.timezone == "Asia/Tokyo"
    schedule = next(s for s in defs.schedules if s.name == REFRESH_SCHEDULE)
    assert schedule.execution_timezone == "Asia/Tokyo" and "last 4 days" in schedule.description
    recon = dg.AssetCheckKey(dg.AssetKey(["pendo", "page_events"]), RECONCILES)
    spec = next(sp for c in defs.asset_checks for sp in c.check_specs if sp.key == recon)
    assert "PENDO_FINAL_AFTER_DAYS=5 days" in spec.description


def _shown(name: str, value) -> str:
    """A default as the settings table writes it."""
    if name.endswith("weekday"):
        return WEEKDAYS[value]
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_settings_table_shows_every_variable_with_its_fields_default():
    """The docs' settings table names every variable, and the defaults it shows are the
    fields' (a row that names several variables lists their defaults in the same order)."""
    rows = [
        line.split("|")
        for doc in DOCS
        for line in doc.read_text().splitlines()
        if line.startswith("| `PENDO_")
    ]
    for name in Settings.model_fields:
        spec = env_of(name)
        if spec is None:
            continue
        row = next((r for r in rows if f"`{spec.var}`" in r[1]), None)
        assert row is not None, f"{spec.var} is missing from the settings table"
        default = default_of(name)
        if default is None or default == []:
            continue  # derived, unset or empty: said in words
        names = [v.strip(" `") for v in row[1].split(",")]
        shown = re.findall(r"`([^`]*)`", row[-2])[names.index(spec.var)]
        assert shown == _shown(name, default), spec.var
