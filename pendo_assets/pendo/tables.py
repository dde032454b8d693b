"""Pendo JSON rows -> typed, snake_case, columnar tables (Arrow).

Nested objects are flattened into columns named by their path (``metadata.agent.name`` ->
``metadata_agent_name``); arrays, and the objects a source declares as JSON (``parameters``),
are kept whole as JSON text. Types come from the catalog where declared, else are inferred per
batch; a column whose values disagree (a number here, a string there) becomes VARCHAR rather
than failing or losing a value. The DuckDB type of every column travels with the table
(``TypedTable.types``) so the warehouse can create and widen columns.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from pendo_assets.catalog import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    EPOCH_MS_LEAVES,
    JSON,
    TIMESTAMPTZ,
    VARCHAR,
    Source,
)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

ARROW_TYPES: dict[str, pa.DataType] = {
    VARCHAR: pa.string(),
    JSON: pa.string(),
    BIGINT: pa.int64(),
    DOUBLE: pa.float64(),
    BOOLEAN: pa.bool_(),
    TIMESTAMPTZ: pa.timestamp("ms", tz="UTC"),
    DATE: pa.date32(),
}

# Words DuckDB will not take as a bare column name.
_RESERVED_WORDS = """
    all analyse analyze and any array as asc asymmetric both case cast check collate
    column constraint create default deferrable desc describe distinct do else end except
    false fetch for foreign from grant group having in initially intersect into lateral
    leading limit offset on only or order pivot pivot_longer pivot_wider placing primary
    qualify references returning select show some summarize symmetric table then to
    trailing true union unique unpivot using variadic when where window with
"""
_RESERVED = frozenset(_RESERVED_WORDS.split()) | frozenset(keyword.kwlist)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^a-z0-9_]")


def column_name(path: str) -> str:
    """Pendo dotted path -> snake_case DuckDB column that needs no quoting."""
    parts = [_NON_WORD.sub("_", _CAMEL.sub("_", p).lower()) for p in path.split(".")]
    name = "_".join(parts) or "_"
    if name[0].isdigit():
        name = "c_" + name
    if name in _RESERVED:
        name += "_"
    return name


def column_names(paths: Iterable[str]) -> dict[str, str]:
    """Map paths to distinct column names; on a clash the smallest path keeps the plain name."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for path in sorted(paths):
        base = name = column_name(path)
        n = 2
        while name in taken:
            name = f"{base}_{n}"
            n += 1
        taken.add(name)
        out[path] = name
    return out


def flatten_row(row: dict, json_fields: frozenset[str], prefix: str = "", out=None) -> dict:
    """One nested row -> {dotted path: leaf}. Lists and JSON-declared objects stay whole."""
    if out is None:
        out = {}
    for key, value in row.items():
        path = prefix + str(key)
        if isinstance(value, dict) and path not in json_fields:
            if value:
                flatten_row(value, json_fields, path + ".", out)
            elif path not in out:
                out[path] = None
        else:
            out[path] = value
    return out


@dataclass
class TypedTable:
    """A batch of rows as Arrow columns, with each column's DuckDB type."""

    table: pa.Table
    types: dict[str, str] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _json_text(v):
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _infer(values: list, path: str, declared: str | None) -> tuple[str, list]:
    """Pick a DuckDB type for one column and return the values converted for Arrow."""
    kinds = {type(v) for v in values if v is not None}
    if declared == JSON or kinds & {list, dict}:
        if kinds <= {list, dict, str} or declared == JSON:
            return JSON, [_json_text(v) for v in values]
    if not kinds:
        return (declared or VARCHAR), values
    if declared == TIMESTAMPTZ or (declared is None and _leaf(path) in EPOCH_MS_LEAVES):
        if kinds == {int} and all(v is None or _INT64_MIN <= v <= _INT64_MAX for v in values):
            return TIMESTAMPTZ, values
    if kinds == {bool}:
        return BOOLEAN, values
    if kinds == {int}:
        if all(v is None or _INT64_MIN <= v <= _INT64_MAX for v in values):
            if declared == DOUBLE:
                return DOUBLE, [None if v is None else float(v) for v in values]
            return BIGINT, values
        return VARCHAR, [None if v is None else str(v) for v in values]
    if kinds <= {int, float}:
        return DOUBLE, [None if v is None else float(v) for v in values]
    if kinds == {str}:
        return VARCHAR, values
    # Mixed kinds: keep every value, as text.
    return VARCHAR, [_json_text(v) for v in values]


def rows_to_table(
    rows: list[dict],
    source: Source,
    drop_columns: frozenset[str] = frozenset(),
    extra: dict[str, tuple[str, list]] | None = None,
) -> TypedTable:
    """Flatten and type a batch of Pendo rows.

    Declared catalog columns are always present (null when absent), so an empty batch still
    carries the source's schema. ``extra`` adds computed columns: name -> (type, values).
    """
    json_fields = source.json_fields
    flat: list[dict] = []
    for r in rows:
        # Event rows are flat except for JSON-declared fields; skip the recursive walk for them.
        if any(type(v) is dict for v in r.values()):
            r = flatten_row(r, json_fields)
        flat.append(r)
    paths = dict.fromkeys(source.columns)
    for r in flat:
        paths.update(dict.fromkeys(r))
    names = column_names(paths)
    arrays: dict[str, pa.Array] = {}
    types: dict[str, str] = {}
    for path, name in names.items():
        if name in drop_columns:
            continue
        declared = source.columns.get(path)
        if declared == DATE:
            continue  # the day column is computed by the caller (extra), not read from Pendo
        values = [r.get(path) for r in flat]
        if declared is None and all(v is None for v in values):
            continue  # a field that is null everywhere here carries no type and no value
        duck_type, converted = _infer(values, path, declared)
        try:
            arrays[name] = pa.array(converted, type=ARROW_TYPES[duck_type])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            duck_type = VARCHAR
            arrays[name] = pa.array([_json_text(v) for v in values], type=pa.string())
        types[name] = duck_type
    for name, (duck_type, values) in (extra or {}).items():
        arrays[name] = pa.array(values, type=ARROW_TYPES[duck_type])
        types[name] = duck_type
    if not arrays:
        return TypedTable(pa.table({}), {})
    return TypedTable(pa.table(arrays), types)


def declared_types(source: Source, drop_columns: frozenset[str] = frozenset()) -> dict[str, str]:
    """The DuckDB columns every table of ``source`` has, even when empty."""
    names = column_names(source.columns)
    return {names[p]: t for p, t in source.columns.items() if names[p] not in drop_columns}
