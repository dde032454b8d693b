"""The columnar fast path (Arrow's JSON reader) builds exactly the table the Python path
(``rows_to_table``) builds from the same rows -- on real Pendo samples, on every emulated
source, and on the irregular rows that must fall back to Python column by column or whole."""

import json
from datetime import date
from pathlib import Path

import pytest

from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.emulator import Subscription
from pendo_assets.pendo.tables import Batch, parse_body_rows, rows_to_table

# Real Pendo answers from public repositories (copied from ../shared/pendo_samples).
SAMPLES = Path(__file__).resolve().parent / "samples"
SAMPLE_SOURCES = {
    "accounts_after_select.json": "accounts",
    "featureEvents.json": "featureEvents",
    "features_id_name.json": "features",
    "pageEvents.json": "pageEvents",
    "pageEvents_parameters_object.json": "pageEvents",
    "pages_id_name.json": "pages",
    "visitors.json": "visitors",
}


def assert_same(body: bytes, source_name: str) -> Batch:
    source = SOURCES_BY_NAME[source_name]
    batch = Batch(body)
    fast = batch.to_table(source)
    slow = rows_to_table(parse_body_rows(body), source)
    assert fast.types == slow.types
    assert fast.table.schema.names == slow.table.schema.names
    assert fast.table.schema.types == slow.table.schema.types
    assert fast.table.to_pylist() == slow.table.to_pylist()
    return batch


def body_of(rows: list[dict]) -> bytes:
    return json.dumps({"results": rows}).encode()


@pytest.mark.parametrize("name", sorted(SAMPLE_SOURCES))
def test_real_samples_give_identical_tables(name):
    path = SAMPLES / name
    batch = assert_same(path.read_bytes(), SAMPLE_SOURCES[name])
    assert len(batch) > 0


@pytest.fixture(scope="module")
def subscription() -> Subscription:
    return Subscription(first_day=date(2026, 3, 1), last_day=date(2026, 3, 3), scale=0.5)


@pytest.mark.parametrize(
    "source_name",
    ["events", "pageEvents", "featureEvents", "trackEvents", "guideEvents"],
)
def test_emulated_event_days_give_identical_tables_on_the_fast_path(subscription, source_name):
    rows = subscription.event_rows(source_name, -323232, date(2026, 3, 2))
    assert rows
    batch = assert_same(body_of(rows), source_name)
    assert batch.fast  # Arrow read the whole body; no per-row Python for these columns


def test_poll_answers_mixing_scores_and_text_fall_back_to_python(subscription):
    rows = subscription.event_rows("pollEvents", -323232, date(2026, 3, 2))
    kinds = {type(r.get("pollResponse")) for r in rows}
    assert {int, str} <= kinds
    batch = assert_same(body_of(rows), "pollEvents")
    assert not batch.fast


@pytest.mark.parametrize(
    "source_name", ["accounts", "visitors", "pages", "features", "guides", "trackTypes"]
)
def test_emulated_entities_give_identical_tables(subscription, source_name):
    assert_same(body_of(subscription.entities(source_name)), source_name)


def test_visitor_metadata_takes_the_fast_path_without_python_rows(subscription):
    batch = Batch(body_of(subscription.entities("visitors")))
    table = batch.to_table(SOURCES_BY_NAME["visitors"])
    assert batch.fast and batch._rows is None
    assert table.types["metadata_auto_lastvisit"] == "TIMESTAMPTZ"
    assert table.types["metadata_auto_accountids"] == "JSON"


IRREGULAR = {
    "mixed number and text -> VARCHAR (whole body falls back)": [
        {"id": "a", "score": 1},
        {"id": "b", "score": "high"},
        {"id": "c", "score": 2.5},
    ],
    "int and float -> DOUBLE": [{"id": "a", "x": 1}, {"id": "b", "x": 2.5}],
    "integer beyond 64 bits stays exact text": [{"id": "a", "big": 2**64}, {"id": "b", "big": 3}],
    "ISO dates stay text": [{"id": "a", "when": "2024-01-01"}, {"id": "b", "when": None}],
    "empty objects and null parents": [
        {"id": "a", "group": {}},
        {"id": "b", "group": None},
        {"id": "c", "group": {"id": "g", "name": "G"}},
    ],
    "lists of objects and floats stay JSON": [
        {"id": "a", "rules": [{"rule": "//x", "n": 1}], "w": [1, 2.5]},
        {"id": "b", "rules": [], "w": None},
    ],
    "nested lists of text": [{"id": "a", "l": [["x", "y"], []]}, {"id": "b", "l": None}],
    "booleans and epoch ms": [
        {"id": "a", "dirty": True, "createdAt": 1700000000000},
        {"id": "b", "dirty": False, "createdAt": None},
    ],
    "unicode and escapes": [{"id": "a", "name": 'é "q" \\ \n', "tags": ["ü", "\t"]}],
}


@pytest.mark.parametrize("case", sorted(IRREGULAR))
def test_irregular_rows_give_identical_tables(case):
    assert_same(body_of(IRREGULAR[case]), "pages")


def test_json_declared_objects_keep_their_exact_text():
    rows = [
        {"visitorId": "v", "appId": 1, "day": 0, "pageId": "p", "parameters": {"b": 1, "a": None}},
        {"visitorId": "w", "appId": 1, "day": 0, "pageId": "p", "parameters": {"q": "x"}},
        {"visitorId": "x", "appId": 1, "day": 0, "pageId": "p", "parameters": None},
        {"visitorId": "y", "appId": 1, "day": 0, "pageId": "p", "parameters": {}},
    ]
    batch = assert_same(body_of(rows), "pageEvents")
    t = batch.to_table(SOURCES_BY_NAME["pageEvents"])
    assert t.table.column("parameters").to_pylist() == ['{"a":null,"b":1}', '{"q":"x"}', None, "{}"]


def test_mixed_types_fall_back_whole_and_keep_every_value():
    batch = Batch(body_of(IRREGULAR["mixed number and text -> VARCHAR (whole body falls back)"]))
    assert not batch.fast
    t = batch.to_table(SOURCES_BY_NAME["pages"])
    assert t.types["score"] == "VARCHAR"
    assert t.table.column("score").to_pylist() == ["1", "high", "2.5"]


def test_empty_and_null_results_are_no_rows():
    for body in (b'{"results":[]}', b'{"results":null}', b"{}"):
        t = Batch(body).to_table(SOURCES_BY_NAME["events"])
        assert t.num_rows == 0
        assert t.types["visitor_id"] == "VARCHAR"


def test_a_cut_off_body_is_an_error_not_a_short_table():
    with pytest.raises(ValueError):
        Batch(b'{"results":[{"id":"a"},{"id":')
