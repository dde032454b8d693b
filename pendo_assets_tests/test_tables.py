"""JSON -> typed table: flattening, naming and type inference on real Pendo samples."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.pendo.tables import column_name, column_names, flatten_row, rows_to_table

# Real Pendo answers from public repositories (copied from ../shared/pendo_samples).
SAMPLES = Path(__file__).resolve().parent / "samples"


def sample(name: str) -> list[dict]:
    path = SAMPLES / name
    return json.loads(path.read_text())["results"]


@pytest.mark.parametrize(
    "path,name",
    [
        ("accountId", "account_id"),
        ("metadata.agent.name", "metadata_agent_name"),
        ("numEvents", "num_events"),
        ("remoteIp", "remote_ip"),
        ("metadata.auto__323232.firstvisit", "metadata_auto__323232_firstvisit"),
        ("createdByUser.id", "created_by_user_id"),
        ("group", "group_"),
        ("URLPath", "url_path"),
        ("9lives", "c_9lives"),
        ("plan level", "plan_level"),
    ],
)
def test_column_names_are_snake_case_and_need_no_quoting(path, name):
    assert column_name(path) == name


def test_clashing_paths_get_distinct_names():
    names = column_names(["fooBar", "foo_bar", "foo.bar"])
    assert len(set(names.values())) == 3
    # The smallest path keeps the plain name, so the mapping is stable between batches.
    assert names["foo.bar"] == "foo_bar"
    assert sorted(names.values()) == ["foo_bar", "foo_bar_2", "foo_bar_3"]


def test_visitor_sample_flattens_metadata_and_types_epoch_ms():
    t = rows_to_table(sample("visitors.json"), SOURCES_BY_NAME["visitors"])
    row = t.table.to_pylist()[0]
    assert row["visitor_id"] == "0"
    assert row["metadata_agent_email"] == "metus.urna.convallis@odiosempercursus.net"
    assert row["metadata_auto_lastvisit"] == datetime.fromtimestamp(1515771385415 / 1000, UTC)
    assert t.types["metadata_auto_lastvisit"] == "TIMESTAMPTZ"
    assert row["metadata_auto_accountids"] == '["Acme Corp"]'
    assert t.types["metadata_auto_accountids"] == "JSON"
    assert row["metadata_auto_idhash"] == 4108050209
    assert row["metadata_auto__323232_firstvisit"] is not None
    assert row["metadata_salesforce_email"] == row["metadata_agent_email"]


def test_page_event_parameters_stay_json_and_null():
    t = rows_to_table(sample("pageEvents_parameters_object.json"), SOURCES_BY_NAME["pageEvents"])
    rows = t.table.to_pylist()
    assert [r["parameters"] for r in rows] == ['{"param":"value"}', None]
    assert t.types["parameters"] == "JSON"
    assert t.types["num_events"] == "BIGINT"


def test_mixed_types_widen_to_text_without_losing_values():
    rows = [{"id": "a", "score": 1}, {"id": "b", "score": "high"}, {"id": "c", "score": 2.5}]
    t = rows_to_table(rows, SOURCES_BY_NAME["pages"])
    assert t.types["score"] == "VARCHAR"
    assert t.table.column("score").to_pylist() == ["1", "high", "2.5"]


def test_int_and_float_widen_to_double():
    rows = [{"id": "a", "x": 1}, {"id": "b", "x": 2.5}]
    t = rows_to_table(rows, SOURCES_BY_NAME["pages"])
    assert t.types["x"] == "DOUBLE"
    assert t.table.column("x").to_pylist() == [1.0, 2.5]


def test_empty_batch_keeps_declared_columns():
    t = rows_to_table([], SOURCES_BY_NAME["featureEvents"])
    assert t.num_rows == 0
    assert {"visitor_id", "feature_id", "num_events"} <= set(t.types)
    assert "day" not in t.types  # computed by the fetcher, not read from Pendo


def test_drop_columns_leaves_them_out():
    t = rows_to_table(
        sample("featureEvents.json"), SOURCES_BY_NAME["featureEvents"], frozenset({"remote_ip"})
    )
    assert "remote_ip" not in t.table.column_names
    assert t.table.num_rows == 3


def test_flatten_keeps_lists_and_json_fields_whole():
    flat = flatten_row(
        {"a": {"b": {"c": 1}}, "l": [1, {"x": 2}], "p": {"k": "v"}}, frozenset({"p"})
    )
    assert flat == {"a.b.c": 1, "l": [1, {"x": 2}], "p": {"k": "v"}}
