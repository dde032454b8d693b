"""Pendo JSON rows -> typed, snake_case, columnar tables (Arrow).

Nested objects are flattened into columns named by their path (``metadata.agent.name`` ->
``metadata_agent_name``); arrays, and the objects a source declares as JSON (``parameters``),
are kept whole as JSON text. Types come from the catalog where declared, else are inferred per
batch; a column whose values disagree (a number here, a string there) becomes VARCHAR rather
than failing or losing a value. The DuckDB type of every column travels with the table
(``TypedTable.types``) so the warehouse can create and widen columns.
"""

from __future__ import annotations

import io
import json
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from pendo_assets.catalog import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    JSON,
    TIMESTAMPTZ,
    VARCHAR,
    Source,
    is_epoch_ms_field,
)

# Arrow's default allocator (mimalloc) keeps freed blocks per thread; with eight fetch threads
# parsing a day each, a year-long range's peak memory grew with its length. The system
# allocator hands them back, so a range holds only the days in flight (see bench/).
pa.set_memory_pool(pa.system_memory_pool())

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
    if declared == TIMESTAMPTZ or (declared is None and is_epoch_ms_field(path)):
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


def _python_column(values: list, path: str, declared: str | None) -> tuple[str, pa.Array]:
    duck_type, converted = _infer(values, path, declared)
    try:
        return duck_type, pa.array(converted, type=ARROW_TYPES[duck_type])
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return VARCHAR, pa.array([_json_text(v) for v in values], type=pa.string())


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
        types[name], arrays[name] = _python_column(values, path, declared)
    return _assemble(arrays, types, extra)


def _assemble(arrays: dict[str, pa.Array], types: dict[str, str], extra: dict | None) -> TypedTable:
    for name, (duck_type, values) in (extra or {}).items():
        arrow_type = ARROW_TYPES[duck_type]
        if isinstance(values, pa.Array):
            arrays[name] = values if values.type == arrow_type else values.cast(arrow_type)
        else:
            arrays[name] = pa.array(values, type=arrow_type)
        types[name] = duck_type
    if not arrays:
        return TypedTable(pa.table({}), {})
    return TypedTable(pa.table(arrays), types)


def declared_types(source: Source, drop_columns: frozenset[str] = frozenset()) -> dict[str, str]:
    """The DuckDB columns every table of ``source`` has, even when empty."""
    names = column_names(source.columns)
    return {names[p]: t for p, t in source.columns.items() if names[p] not in drop_columns}


# -- columnar fast path --------------------------------------------------------------------
#
# A response body is parsed by Arrow's JSON reader straight into columns, so a row costs no
# Python objects. Arrow cannot express everything Pendo may send without losing or changing a
# value (a number in one row and text in the next, an integer beyond 64 bits, an object that
# must stay JSON text exactly as sent, an ISO date Arrow would turn into a timestamp), so such
# a column -- or, if Arrow refuses the whole body, every column -- is built by the Python path
# above instead. Both paths give the same table for the same rows (tests prove it).

_SKIP = object()
_BIG = float(2**63)


def parse_body_rows(data: bytes) -> list[dict]:
    """``{"results": [...]}`` -> the rows; a missing or null ``results`` is no rows."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    return doc.get("results") or []


def parse_rest_rows(data: bytes) -> list[dict]:
    """A REST list (``GET /api/v1/segment``): a bare array, or the array in ``results``."""
    doc = json.loads(data)
    if isinstance(doc, dict) and "results" in doc:
        doc = doc["results"] or []
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise ValueError(f"expected a JSON array of objects, got {type(doc).__name__}")
    return doc


def _read_items(data: bytes) -> pa.StructArray | None:
    """The ``results`` items as one Arrow struct array, or None when Arrow cannot read them."""
    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 64),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != 1 or "results" not in table.column_names:
        return None
    results = table.column("results").combine_chunks()
    if (
        not pa.types.is_list(results.type)
        or not pa.types.is_struct(results.type.value_type)
        or results.null_count
    ):
        return None
    return results.flatten()


def _exact_list(t: pa.DataType) -> bool:
    """Lists Arrow gives back value for value as Python parsed them (no floats, no objects)."""
    if pa.types.is_list(t):
        return _exact_list(t.value_type)
    return (
        pa.types.is_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_int64(t)
        or pa.types.is_null(t)
    )


def _walk(items: pa.StructArray, prefix: tuple[str, ...], json_fields, out: dict) -> None:
    # StructArray.flatten() carries a null parent into its children (``"group": null``).
    for f, child in zip(items.type, items.flatten(), strict=True):
        keys = (*prefix, f.name)
        path = ".".join(keys)
        if pa.types.is_struct(f.type) and path not in json_fields:
            if f.type.num_fields:
                _walk(child, keys, json_fields, out)
            else:  # only ``{}`` seen: the Python path flattens that to null
                out[path] = (keys, pa.nulls(len(child)))
        else:
            out[path] = (keys, child)


def _arrow_column(arr: pa.Array, path: str, declared: str | None):
    """(DuckDB type, column) from Arrow alone, _SKIP, or None when Python must decide."""
    t = arr.type
    if arr.null_count == len(arr):
        if declared is None:
            return _SKIP
        return declared, pa.nulls(len(arr), ARROW_TYPES[declared])
    if pa.types.is_list(t):
        if _exact_list(t):
            return JSON, pa.array([_json_text(v) for v in arr.to_pylist()], type=pa.string())
        return None
    if pa.types.is_string(t):
        return (JSON if declared == JSON else VARCHAR), arr
    if declared == JSON:
        return None
    if pa.types.is_boolean(t):
        return BOOLEAN, arr
    if pa.types.is_int64(t):
        if declared == TIMESTAMPTZ or (declared is None and is_epoch_ms_field(path)):
            return TIMESTAMPTZ, arr.cast(ARROW_TYPES[TIMESTAMPTZ])
        if declared == DOUBLE:
            return DOUBLE, arr.cast(pa.float64())
        return BIGINT, arr
    if pa.types.is_float64(t):
        # Arrow reads an integer beyond 64 bits as a double; Python keeps it as text.
        if pc.any(pc.greater_equal(pc.abs(arr), _BIG)).as_py():
            return None
        return DOUBLE, arr
    return None  # timestamps Arrow guessed from ISO text, objects kept as JSON, ...


class Batch:
    """The rows of one response body: Arrow columns where Arrow could read them, Python
    dicts (parsed lazily, only if some column needs them) for the rest."""

    def __init__(self, data: bytes):
        self._data: bytes | None = data
        self._rows: list[dict] | None = None
        self.items = _read_items(data)
        if self.items is None:
            self._rows = parse_body_rows(data)  # raises ValueError on a broken body
            self._data = None

    @property
    def fast(self) -> bool:
        return self.items is not None

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self._rows or [])

    @property
    def rows(self) -> list[dict]:
        if self._rows is None:
            self._rows = parse_body_rows(self._data or b"{}")
        return self._rows

    def values(self, key: str) -> pa.Array:
        """A top-level field of every row, as an Arrow array (all null when absent)."""
        if self.items is not None:
            idx = self.items.type.get_field_index(key)
            if idx < 0:
                return pa.nulls(len(self))
            return self.items.flatten()[idx]
        try:
            return pa.array([r.get(key) for r in self.rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return pa.array([_json_text(r.get(key)) for r in self.rows], type=pa.string())

    def _path_values(self, keys: tuple[str, ...]) -> list:
        out = []
        for r in self.rows:
            v = r
            for k in keys:
                v = v.get(k) if isinstance(v, dict) else None
            out.append(v)
        return out

    def to_table(
        self,
        source: Source,
        drop_columns: frozenset[str] = frozenset(),
        extra: dict[str, tuple[str, list | pa.Array]] | None = None,
    ) -> TypedTable:
        """The same table ``rows_to_table`` builds from these rows."""
        if self.items is None:
            return rows_to_table(self.rows, source, drop_columns, extra)
        leaves: dict[str, tuple[tuple[str, ...], pa.Array]] = {}
        _walk(self.items, (), source.json_fields, leaves)
        paths = dict.fromkeys(source.columns)
        paths.update(dict.fromkeys(leaves))
        n = len(self)
        arrays: dict[str, pa.Array] = {}
        types: dict[str, str] = {}
        for path, name in column_names(paths).items():
            if name in drop_columns:
                continue
            declared = source.columns.get(path)
            if declared == DATE:
                continue
            leaf = leaves.get(path)
            col = _arrow_column(leaf[1] if leaf else pa.nulls(n), path, declared)
            if col is _SKIP:
                continue
            if col is None:
                values = self._path_values(leaf[0])
                if declared is None and all(v is None for v in values):
                    continue
                col = _python_column(values, path, declared)
            types[name], arrays[name] = col
        return _assemble(arrays, types, extra)


def parse_batch(data: bytes) -> Batch:
    """Client parser (``PendoClient.aggregate(..., parse=parse_batch)``)."""
    return Batch(data)
