"""Declared metadata types: Pendo's metadata schema -> the DuckDB type of every ``metadata_*``
column of accounts and visitors.

Pendo declares each metadata field's type (``GET /api/v1/metadata/schema/{account,visitor}``:
``{group: {field: {"Type": "time" | "boolean" | "number" | ..., ...}}}``); inferring from
values cannot tell a renewal date (epoch ms) from a count. A load reads the schema once and
``conform`` types its batches with it. A value that does not fit its declared type never fails
the load: the typed column holds NULL there and ``<column>_raw`` (VARCHAR) holds the value as
Pendo sent it. Plain Python; no Dagster.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pyarrow as pa

from pendo_assets.catalog import BIGINT, BOOLEAN, DOUBLE, JSON, TIMESTAMPTZ, VARCHAR, Source
from pendo_assets.pendo.client import PendoAuthError, PendoClient, PendoError
from pendo_assets.pendo.tables import ARROW_TYPES, TypedTable, column_names

SCHEMA_PATH = "/api/v1/metadata/schema/{kind}"
RAW_SUFFIX = "_raw"

# Pendo's declared type -> DuckDB. Untyped ("") and unknown types are left to inference.
DECLARED = {
    "time": TIMESTAMPTZ,
    "boolean": BOOLEAN,
    "number": DOUBLE,
    "float": DOUBLE,
    "integer": BIGINT,
    "string": VARCHAR,
    "list": JSON,
}

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class DeclaredTypes:
    """The declared type of each column of one load, or why there are none (``fallback``)."""

    types: dict[str, str] = field(default_factory=dict)  # column -> DuckDB type
    fallback: str | None = None  # why types are inferred instead (the endpoint refused, ...)

    def describe(self, kind: str) -> str:
        path = SCHEMA_PATH.format(kind=kind)
        if self.fallback is not None:
            return f"inferred from the values: {self.fallback}"
        return f"declared by Pendo (GET {path}): {len(self.types)} metadata fields"


def parse_schema(doc: object, source: Source) -> dict[str, str]:
    """``{group: {field: {"Type": ...}}}`` -> {column: DuckDB type}. The catalog's own column
    types win (downstream SQL relies on them); untyped and unknown fields are left out."""
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object of metadata groups, got {type(doc).__name__}")
    paths: dict[str, str] = {}
    for group, fields in doc.items():
        if not isinstance(fields, dict):
            continue
        for name, spec in fields.items():
            if not isinstance(spec, dict):
                continue
            kind = spec.get("Type", spec.get("type"))
            duck = DECLARED.get(kind.lower()) if isinstance(kind, str) else None
            path = f"metadata.{group}.{name}"
            if duck is not None and path not in source.columns:
                paths[path] = duck
    names = column_names([*source.columns, *paths])
    return {names[p]: t for p, t in sorted(paths.items())}


def read_declared_types(client: PendoClient, source: Source) -> DeclaredTypes:
    """The schema of ``source`` from Pendo, or a fallback saying why not (never raises but for
    a rejected key: then every request of the run fails the same way)."""
    if source.metadata_schema is None:
        return DeclaredTypes(fallback=f"{source.name} has no metadata schema")
    path = SCHEMA_PATH.format(kind=source.metadata_schema)
    try:
        doc = client.get(path, f"the {source.metadata_schema} metadata schema", source.name, _json)
        return DeclaredTypes(parse_schema(doc, source))
    except PendoAuthError:
        raise
    except (PendoError, ValueError) as exc:
        return DeclaredTypes(fallback=f"GET {path} failed ({exc})")


class _Doc(dict):
    """A parsed schema: no rows in the client's accounting (the source's rows are its
    entities)."""

    def __len__(self) -> int:
        return 0


def _json(data: bytes):
    doc = json.loads(data)
    return _Doc(doc) if isinstance(doc, dict) else doc


def _text(v) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def fit(value, duck_type: str) -> tuple[bool, object]:
    """(fits, the value converted for ``duck_type``'s Arrow column)."""
    if value is None:
        return True, None
    if duck_type == VARCHAR:
        return True, _text(value)
    if duck_type == JSON:
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                return False, None
            return isinstance(parsed, list | dict), value
        return isinstance(value, list | dict), _text(value)
    if duck_type == BOOLEAN:
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return True, value.lower() == "true"
        return False, None
    if isinstance(value, bool):
        return False, None
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            value = int(text)
        else:
            try:
                value = float(text)
            except ValueError:
                return False, None
    if not isinstance(value, int | float):
        return False, None
    if duck_type == DOUBLE:
        return True, float(value)
    if isinstance(value, float):
        if not value.is_integer() or abs(value) >= 2.0**63:
            return False, None
        value = int(value)
    return (_INT64_MIN <= value <= _INT64_MAX), value


def conform(table: TypedTable, declared: dict[str, str]) -> tuple[TypedTable, dict[str, int]]:
    """Give every declared column of ``table`` its declared type; values that do not fit go to
    ``<column>_raw``. Returns the table and how many values did not fit, per column."""
    t, types = table.table, dict(table.types)
    misfits: dict[str, int] = {}
    for name, want in declared.items():
        # JSON text is checked even when inferred as JSON: a plain string beside lists is
        # kept as text there, and would not cast to JSON in DuckDB.
        if name not in types or (types[name] == want and want != JSON):
            continue
        col = t.column(name).combine_chunks()
        have = types[name]
        if have == BIGINT and want in (TIMESTAMPTZ, DOUBLE):
            typed, raw = col.cast(ARROW_TYPES[want]), None  # every 64-bit integer fits
        else:
            values = col.to_pylist()
            if have == TIMESTAMPTZ:  # Arrow gives datetimes back: Pendo sent epoch ms
                values = [None if v is None else int(v.timestamp() * 1000) for v in values]
            fitted = [fit(v, want) for v in values]
            typed = pa.array([v if ok else None for ok, v in fitted], ARROW_TYPES[want])
            bad = [None if ok else _text(v) for (ok, _), v in zip(fitted, values, strict=True)]
            raw = pa.array(bad, pa.string()) if any(v is not None for v in bad) else None
        t = t.set_column(t.column_names.index(name), name, typed)
        types[name] = want
        if raw is not None:
            misfits[name] = len(raw) - raw.null_count
            raw_name = name + RAW_SUFFIX
            if raw_name in types:
                raw_name += "_"  # Pendo has a field of that name itself
            t = t.append_column(raw_name, raw)
            types[raw_name] = VARCHAR
    return TypedTable(t, types), misfits


class DeclaredTyping:
    """Types the batches of one entity load as Pendo declares them.

    The schema is read once, when the first batch has arrived: the key has then been accepted,
    so a schema endpoint closed to it falls back to inference instead of passing for a bad key.
    """

    def __init__(self, client: PendoClient, source: Source, drop: frozenset[str]):
        self._client, self._source, self._drop = client, source, drop
        self.declared: DeclaredTypes | None = None
        self.misfits: dict[str, int] = {}

    @property
    def types(self) -> dict[str, str]:
        """Declared columns (none dropped): every batch of the load has them."""
        if self.declared is None:
            return {}
        return {c: t for c, t in self.declared.types.items() if c not in self._drop}

    def __call__(self, batch: TypedTable) -> TypedTable:
        if self._source.metadata_schema is None:
            return batch
        if self.declared is None:
            self.declared = read_declared_types(self._client, self._source)
        table, bad = conform(batch, self.types)
        for col, n in bad.items():
            self.misfits[col] = self.misfits.get(col, 0) + n
        return table
