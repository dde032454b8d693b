"""Property tests for flattening and type inference on arbitrary nested JSON rows: no crash,
no two fields sharing a column, and every leaf value found again in its column (converted as
documented in ``pendo_assets.pendo.tables``: lists, JSON fields and mixed-kind columns as JSON
text; ints mixed with floats as DOUBLE; epoch-ms leaves as timestamps)."""

from __future__ import annotations

import json
import math
import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pendo_assets.catalog import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    JSON,
    SOURCES_BY_NAME,
    TIMESTAMPTZ,
    VARCHAR,
    Source,
)
from pendo_assets.pendo.tables import column_names, flatten_row, rows_to_table

# Left out of `make test-quick`: property-based (hypothesis) runs.
pytestmark = pytest.mark.slow

GENERIC = Source(
    name="anything",
    table="anything",
    kind="entity",
    description="One row per generated test row.",
    columns={},
    id_field="id",
    json_fields=frozenset({"parameters"}),
)
# Pendo field names are camelCase words (never dotted); mix in names that clash once
# snake_cased (fooBar / foo_bar), reserved words, leading digits and epoch-ms leaves.
KEYS = st.one_of(
    st.from_regex(r"[a-z][a-zA-Z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(
        ["fooBar", "foo_bar", "foo", "bar", "select", "group", "1st", "lastvisit", "parameters"]
    ),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
ROWS = st.lists(st.dictionaries(KEYS, VALUES, max_size=6), min_size=1, max_size=6)


def as_found(cell, duck_type: str, original):
    """Does the output ``cell`` hold ``original`` under the documented conversion?"""
    if duck_type == BIGINT:
        return cell == original and type(original) is int
    if duck_type == BOOLEAN:
        return cell is original
    if duck_type == DOUBLE:
        return isinstance(original, (int, float)) and cell == float(original)
    if duck_type == TIMESTAMPTZ:
        return cell == original and type(original) is int
    if duck_type in (VARCHAR, JSON):
        if isinstance(original, str):
            return cell == original
        if isinstance(original, int) and not isinstance(original, bool):
            return cell == str(original)
        decoded = json.loads(cell)
        if isinstance(original, float):
            return math.isclose(decoded, original, rel_tol=0, abs_tol=0) or decoded == original
        return decoded == original
    raise AssertionError(f"unexpected type {duck_type}")


def check(rows: list[dict], source: Source) -> None:
    table = rows_to_table(rows, source)
    flat = [flatten_row(r, source.json_fields) for r in rows]
    paths = {p for r in flat for p in r} | set(source.columns)
    names = column_names(paths)
    # No collision: distinct fields get distinct columns, each a valid bare name.
    assert len(set(names.values())) == len(names)
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", n) for n in names.values())
    out_cols = set(table.table.column_names)
    assert out_cols <= set(names.values())
    assert set(table.types) == out_cols
    if out_cols:
        assert table.num_rows == len(rows)
    # Timestamps as epoch ms: Python datetimes cannot hold every int64 millisecond.
    arrow = table.table
    for name, t in table.types.items():
        if t == TIMESTAMPTZ:
            i = arrow.column_names.index(name)
            arrow = arrow.set_column(i, name, arrow.column(name).cast(pa.int64()))
    data = arrow.to_pylist()
    for i, r in enumerate(flat):
        for path, value in r.items():
            if value is None:
                continue
            name = names[path]
            assert name in out_cols, f"{path!r} ({value!r}) has no column"
            cell = data[i][name]
            assert as_found(cell, table.types[name], value), (path, value, cell, table.types[name])


@settings(max_examples=150, deadline=None)
@given(ROWS)
def test_arbitrary_rows_flatten_without_loss(rows):
    check(rows, GENERIC)


@settings(max_examples=75, deadline=None)
@given(st.lists(st.dictionaries(KEYS, VALUES, max_size=4), min_size=1, max_size=4))
def test_arbitrary_metadata_on_a_catalog_source(metadata_rows):
    # Declared columns (visitorId, metadata.agent.email, ...) next to arbitrary custom fields.
    rows = [
        {"visitorId": f"v{i}", "metadata": {"agent": {"email": f"v{i}@x.io"}, "custom": m}}
        for i, m in enumerate(metadata_rows)
    ]
    check(rows, SOURCES_BY_NAME["visitors"])
