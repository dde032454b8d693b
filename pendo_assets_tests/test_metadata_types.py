"""Declared metadata types: Pendo's metadata schema types every ``metadata_*`` column of
accounts and visitors; values that do not fit stay visible in ``<column>_raw``; a refused
schema endpoint falls back to inference and says so. Unit tests on the parser and the
conversion, then loads through Dagster against the emulator, read back from DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from pendo_assets.catalog import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    JSON,
    SOURCES_BY_NAME,
    TIMESTAMPTZ,
    VARCHAR,
)
from pendo_assets.emulator import EmulatorServer, EntityEdit, Faults
from pendo_assets.emulator.segments import metadata_schema
from pendo_assets.pendo.metadata_schema import conform, parse_schema
from pendo_assets.pendo.tables import TypedTable, rows_to_table
from pendo_assets_tests.conftest import TEST_KEY, small_subscription

ACCOUNTS = SOURCES_BY_NAME["accounts"]
VISITORS = SOURCES_BY_NAME["visitors"]


def test_schema_types_every_declared_field_and_the_catalog_wins():
    doc = {
        "custom": {
            "renewaldate": {"Type": "time", "DisplayName": "Renewal"},
            "seats": {"Type": "number"},
            "count": {"type": "integer"},  # lower-case key tolerated
            "ratio": {"Type": "float"},
            "vip": {"Type": "boolean"},
            "tags": {"Type": "list"},
            "plan": {"Type": "string"},
            "notes": {"Type": ""},  # untyped: inferred
            "odd": {"Type": "geo"},  # unknown: inferred
        },
        "agent": {"name": {"Type": "integer"}},  # the catalog says VARCHAR: the catalog wins
        "broken": "not an object",
    }
    assert parse_schema(doc, ACCOUNTS) == {
        "metadata_custom_count": BIGINT,
        "metadata_custom_plan": VARCHAR,
        "metadata_custom_ratio": DOUBLE,
        "metadata_custom_renewaldate": TIMESTAMPTZ,
        "metadata_custom_seats": DOUBLE,
        "metadata_custom_tags": JSON,
        "metadata_custom_vip": BOOLEAN,
    }
    with pytest.raises(ValueError):
        parse_schema(["not", "a", "schema"], ACCOUNTS)


def _table(values: list, source=ACCOUNTS) -> TypedTable:
    rows = [{"accountId": f"a{i}", "metadata": {"custom": {"f": v}}} for i, v in enumerate(values)]
    return rows_to_table(rows, source)


def test_epoch_ms_become_timestamps_equal_to_pendos_milliseconds():
    ms = [1_767_225_600_000, None, 1_790_000_000_123]
    table, misfits = conform(_table(ms), {"metadata_custom_f": TIMESTAMPTZ})
    assert table.types["metadata_custom_f"] == TIMESTAMPTZ
    got = table.table.column("metadata_custom_f").cast(pa.int64()).to_pylist()
    assert got == ms
    assert misfits == {} and "metadata_custom_f_raw" not in table.table.column_names


@pytest.mark.parametrize(
    ("declared", "values", "typed", "raw"),
    [
        # Numeric text is a number; prose is not a time: NULL there, the text in _raw.
        (
            TIMESTAMPTZ,
            [1_700_000_000_000, "1700000000001", "next spring", True, 1.5],
            [1_700_000_000_000, 1_700_000_000_001, None, None, None],
            [None, None, "next spring", "true", "1.5"],
        ),
        (BOOLEAN, [True, "false", "yes", 1], [True, False, None, None], [None, None, "yes", "1"]),
        (BIGINT, [3, 4.0, 4.5, "7", "x"], [3, 4, None, 7, None], [None, None, "4.5", None, "x"]),
        (DOUBLE, [3, 2.5, "0.25", "n/a"], [3.0, 2.5, 0.25, None], [None, None, None, "n/a"]),
        (VARCHAR, ["a", 5, True], ["a", "5", "true"], None),
        (JSON, [["x", "y"], "solo", None], ['["x","y"]', None, None], [None, "solo", None]),
    ],
)
def test_values_that_do_not_fit_stay_visible_in_a_raw_column(declared, values, typed, raw):
    table, misfits = conform(_table(values), {"metadata_custom_f": declared})
    assert table.types["metadata_custom_f"] == declared
    col = table.table.column("metadata_custom_f")
    if declared == TIMESTAMPTZ:
        col = col.cast(pa.int64())
    assert col.to_pylist() == typed
    if raw is None:
        assert misfits == {} and "metadata_custom_f_raw" not in table.types
    else:
        assert table.types["metadata_custom_f_raw"] == VARCHAR
        assert table.table.column("metadata_custom_f_raw").to_pylist() == raw
        assert misfits == {"metadata_custom_f": sum(v is not None for v in raw)}


def test_the_emulators_schema_declares_every_custom_field_it_sends():
    sub = small_subscription()
    for source, kind in ((ACCOUNTS, "account"), (VISITORS, "visitor")):
        declared = parse_schema(metadata_schema(sub, kind), source)
        table = rows_to_table(sub.entities(source.name), source)
        custom = {c for c in table.types if c.startswith("metadata_custom_")}
        assert custom and custom <= set(declared), (source.name, custom - set(declared))
    assert parse_schema(metadata_schema(sub, "account"), ACCOUNTS)[
        "metadata_custom_renewaldate"
    ] == (TIMESTAMPTZ)


# -- through Dagster -----------------------------------------------------------------------


def _load(project, keys=("pendo/accounts", "pendo/visitors")) -> dict:
    result = project.materialize(list(keys))
    assert result.success
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def test_a_custom_time_field_is_a_timestamp_equal_to_pendos_milliseconds(make_project):
    sub = small_subscription()
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server)
        meta = _load(project)
    truth = {
        a["accountId"]: a["metadata"]["custom"].get("renewaldate") for a in sub.entities("accounts")
    }
    assert sum(v is not None for v in truth.values()) >= 3
    types = dict(
        project.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'pendo' AND table_name = 'accounts'"
        )
    )
    assert types["metadata_custom_renewaldate"] == "TIMESTAMP WITH TIME ZONE"
    assert types["metadata_custom_seats"] == "DOUBLE"  # declared `number`
    got = dict(
        project.query(
            "SELECT account_id, epoch_ms(metadata_custom_renewaldate) FROM pendo.accounts"
        )
    )
    assert got == truth
    assert "declared by Pendo" in meta["pendo/accounts"]["metadata_types"].value
    assert meta["pendo/accounts"]["values_not_fitting_declared_type"].value == {}
    visitor_types = dict(
        project.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'pendo' AND table_name = 'visitors'"
        )
    )
    assert visitor_types["metadata_custom_beta_opt_in"] == "BOOLEAN"
    assert visitor_types["metadata_auto_accountids"] == "JSON"


def test_values_that_do_not_fit_never_fail_the_load(make_project):
    # Someone typed prose into a third of the renewal dates.
    at = small_subscription().history_end_ms
    sub = small_subscription(
        edits=(
            EntityEdit(
                "accounts", 0.34, at, field="metadata.custom.renewaldate", value="next spring"
            ),
        )
    )
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=Faults()) as server:
        project = make_project(server)
        meta = _load(project, ["pendo/accounts"])
    prose = {
        a["accountId"]
        for a in sub.entities("accounts")
        if a["metadata"]["custom"].get("renewaldate") == "next spring"
    }
    assert prose
    rows = project.query(
        "SELECT account_id, metadata_custom_renewaldate, metadata_custom_renewaldate_raw "
        "FROM pendo.accounts"
    )
    assert {a for a, _, raw in rows if raw == "next spring"} == prose
    assert all(ts is None for a, ts, _ in rows if a in prose)
    assert any(isinstance(ts, datetime) for _, ts, _ in rows)
    assert meta["pendo/accounts"]["values_not_fitting_declared_type"].value == {
        "metadata_custom_renewaldate": len(prose)
    }


def test_a_refused_schema_endpoint_falls_back_to_inference_and_says_so(make_project):
    sub = small_subscription()
    faults = Faults(forbidden_paths=["/api/v1/metadata/schema"])
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=faults) as server:
        project = make_project(server)
        meta = _load(project)
    for key in ("pendo/accounts", "pendo/visitors"):
        said = meta[key]["metadata_types"].value
        assert said.startswith("inferred from the values") and "403" in said, said
    (dtype,) = project.query(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'pendo' "
        "AND table_name = 'accounts' AND column_name = 'metadata_custom_renewaldate'"
    )[0]
    assert dtype == "BIGINT"  # today's inference: epoch ms as a number
    n = project.query("SELECT count(*) FROM pendo.accounts")[0][0]
    assert n == len(sub.entities("accounts"))


def test_timestamps_are_utc_instants():
    ms = 1_767_225_600_000
    table, _ = conform(_table([ms]), {"metadata_custom_f": TIMESTAMPTZ})
    value = table.table.column("metadata_custom_f")[0].as_py()
    assert value == datetime.fromtimestamp(ms / 1000, UTC)


def test_an_existing_warehouse_switches_to_declared_timestamps_without_new_versions(
    make_project,
):
    """Before declared types, a custom time field landed as BIGINT ms. The first load that
    knows its type converts the stored column (entity and history) in place; history opens no
    version for it; a later load that cannot read the schema keeps the timestamps."""
    sub = small_subscription()
    truth = {
        a["accountId"]: a["metadata"]["custom"].get("renewaldate") for a in sub.entities("accounts")
    }
    keys = ["pendo/accounts", "analytics/account_history"]

    def column_types(project) -> set[str]:
        return {
            t
            for (t,) in project.query(
                "SELECT data_type FROM information_schema.columns "
                "WHERE column_name = 'metadata_custom_renewaldate'"
            )
        }

    faults = Faults(forbidden_paths=["/api/v1/metadata/schema"])
    with EmulatorServer(sub, integration_key=TEST_KEY, faults=faults) as server:
        project = make_project(server)
        assert project.materialize(keys).success
        assert column_types(project) == {"BIGINT"}
        server.faults.update(forbidden_paths=[])
        assert project.materialize(keys).success
        assert column_types(project) == {"TIMESTAMP WITH TIME ZONE"}
        server.faults.update(forbidden_paths=["/api/v1/metadata/schema"])
        assert project.materialize(keys).success
        assert column_types(project) == {"TIMESTAMP WITH TIME ZONE"}
    got = dict(
        project.query(
            "SELECT account_id, epoch_ms(metadata_custom_renewaldate) FROM pendo.accounts"
        )
    )
    assert got == truth
    history = project.query(
        "SELECT account_id, count(*), any_value(epoch_ms(metadata_custom_renewaldate)) "
        "FROM analytics.account_history GROUP BY 1"
    )
    assert {a: (n, ms) for a, n, ms in history} == {a: (1, ms) for a, ms in truth.items()}


def test_epoch_ms_meeting_timestamps_become_timestamps_in_the_warehouse():
    from pendo_assets.warehouse.store import convert, widen

    assert widen("BIGINT", "TIMESTAMPTZ") == "TIMESTAMPTZ"
    assert widen("TIMESTAMP WITH TIME ZONE", "BIGINT") == "TIMESTAMP WITH TIME ZONE"
    assert widen("DOUBLE", "TIMESTAMPTZ") == "VARCHAR"  # not epoch ms for sure: text
    assert (
        convert('"c"', "BIGINT", "TIMESTAMP WITH TIME ZONE") == "timezone('UTC', epoch_ms(\"c\"))"
    )
    assert convert('"c"', "BIGINT", "DOUBLE") == 'CAST("c" AS DOUBLE)'
