"""Every raw asset whose source has a real Pendo sample, run with all its checks over the
samples served as an aggregation API (``sample_server``), then read back from DuckDB.

The samples are Pendo's own published responses (US/Eastern days), not the emulator's idea of
them: rows without ``appId``, ``parameters`` as an object or null, entity answers already
narrowed by ``select``. Dates are pinned: the sample days and the checks' clock.
"""

from __future__ import annotations

import filecmp
import json
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from pendo_assets.catalog import SOURCES_BY_NAME

from .conftest import TEST_KEY
from .sample_server import SAMPLE_SOURCES, SAMPLES_DIR, SampleServer, sample_rows

# Left out of `make test-quick`: every raw asset with its checks on Pendo's own sample answers.
pytestmark = pytest.mark.slow

# The originals live in `../shared/pendo_samples` beside the checkout (a worktree may sit deeper).
SHARED_SAMPLES = next(
    (
        p / "shared" / "pendo_samples"
        for p in Path(__file__).resolve().parents[1:]
        if (p / "shared" / "pendo_samples").is_dir()
    ),
    None,
)
ZONE = "America/New_York"
ENTITY_KEYS = ["pendo/accounts", "pendo/visitors", "pendo/pages", "pendo/features"]
EVENT_KEYS = ["pendo/page_events", "pendo/feature_events"]
# The local days of the sample event rows (their `day` values at New York midnight).
SAMPLE_DAYS = ["2017-09-27", "2018-07-09", "2018-10-20", "2018-12-02"]


def test_the_samples_are_pendos_and_each_answers_a_source():
    assert set(SAMPLE_SOURCES) == {p.name for p in SAMPLES_DIR.glob("*.json")}
    for name, source in SAMPLE_SOURCES.items():
        assert source in SOURCES_BY_NAME, name
        assert json.loads((SAMPLES_DIR / name).read_text())["results"]
    if SHARED_SAMPLES is not None:  # the copies the tests carry equal the shared originals
        shared = sorted(p.name for p in SHARED_SAMPLES.iterdir())
        match, mismatch, errors = filecmp.cmpfiles(SHARED_SAMPLES, SAMPLES_DIR, shared, False)
        assert (mismatch, errors) == ([], []) and len(match) == len(shared)


@pytest.fixture()
def samples_server():
    with SampleServer(TEST_KEY, ZONE) as server:
        yield server


def _blocking_failures(result) -> list[str]:
    return [
        f"{e.asset_key.to_user_string()} {e.check_name}: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]


def test_every_raw_asset_with_a_sample_loads_it_and_passes_its_checks(samples_server, make_project):
    project = make_project(
        samples_server, PENDO_TIMEZONE=ZONE, PENDO_START_DATE="2017-09-01", PENDO_APP_ID="*"
    )
    results = [project.materialize(ENTITY_KEYS)]
    results += [project.materialize(EVENT_KEYS, day) for day in SAMPLE_DAYS]
    for result in results:
        assert result.success
        assert _blocking_failures(result) == []
    # What does warn on the samples: the entity samples are other excerpts than the event
    # samples, so every page/feature id is unknown; the days are years apart and old.
    warned = {
        (e.asset_key.to_user_string(), e.check_name)
        for r in results
        for e in r.get_asset_check_evaluations()
        if not e.passed
    }
    assert warned == {
        (key, check)
        for key in EVENT_KEYS
        for check in ("known_ids_share", "no_missing_days", "is_fresh")
    }
    rows = sample_rows()
    for key in ENTITY_KEYS + EVENT_KEYS:
        source = next(s for s in SOURCES_BY_NAME.values() if f"pendo/{s.table}" == key)
        (n,) = project.query(f"SELECT count(*) FROM pendo.{source.table}")[0]
        assert n == len(rows[source.name]), key
    # Each event row landed on the local day Pendo's `day` names.
    days = project.query("SELECT day, count(*) FROM pendo.page_events GROUP BY 1 ORDER BY 1")
    assert days == [(date(2017, 9, 27), 2), (date(2018, 12, 2), 3)]
    days = project.query("SELECT day, count(*) FROM pendo.feature_events GROUP BY 1 ORDER BY 1")
    assert days == [(date(2018, 7, 9), 2), (date(2018, 10, 20), 1)]
    # The real answer without appId: NULL (several apps asked), parameters kept as JSON.
    assert project.query(
        "SELECT app_id, parameters FROM pendo.page_events WHERE day = '2017-09-27' "
        "ORDER BY parameters NULLS LAST"
    ) == [(None, '{"param":"value"}'), (None, None)]
    assert project.query("SELECT metadata_agent_email FROM pendo.visitors") == [
        ("metus.urna.convallis@odiosempercursus.net",)
    ]
    assert project.query("SELECT DISTINCT first_time FROM pendo.page_events") == [(None,)]
    # Every request the client sent was one the samples could answer (no 400s hidden).
    sources = {next(iter(b["request"]["pipeline"][0]["source"])) for b in samples_server.requests}
    assert sources == {"accounts", "visitors", "pages", "features", "pageEvents", "featureEvents"}


def test_with_one_app_asked_the_rows_without_app_id_get_it(samples_server, make_project):
    project = make_project(
        samples_server, PENDO_TIMEZONE=ZONE, PENDO_START_DATE="2017-09-01", PENDO_APP_ID="-323232"
    )
    result = project.materialize(["pendo/page_events"], "2017-09-27")
    assert result.success and _blocking_failures(result) == []
    assert project.query("SELECT DISTINCT app_id FROM pendo.page_events") == [(-323232,)]
