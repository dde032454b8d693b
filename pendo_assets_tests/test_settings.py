"""Configuration fails at load time, naming the variable and a valid example."""

from datetime import date

import pytest

from pendo_assets.settings import DEFAULT_DUCKDB_PATH, SettingsError, load_settings

TODAY = date(2026, 11, 26)
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
    assert load(PENDO_APP_ID="-323232").app_ids == (-323232,)
    assert load(PENDO_APP_ID="-323232, 5629499534213120").app_ids == (-323232, 5629499534213120)
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
    assert s.start_date < TODAY


def test_motherduck_path_is_accepted():
    assert load(PENDO_DUCKDB_PATH="md:pendo_warehouse").duckdb_path == "md:pendo_warehouse"
    with pytest.raises(SettingsError, match="PENDO_DUCKDB_PATH"):
        load(PENDO_DUCKDB_PATH="md:")
