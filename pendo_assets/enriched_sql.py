"""SQL for enriched event tables: every raw row of the day plus the names its ids point to.

Generated from the catalog's lookups; runs inside DuckDB. Lookups are pre-filtered to the ids
that occur on the requested days, so one day's work scales with that day's rows, and each
entity contributes at most one row per id (``any_value``), so a duplicated entity can never
duplicate an event row.
"""

from __future__ import annotations

from pendo_assets.catalog import (
    NESTED_BY_TABLE,
    RAW_SCHEMA,
    SOURCES_BY_TABLE,
    EntitySource,
    EventSource,
    Lookup,
    Nested,
)
from pendo_assets.pendo.tables import column_names

ENTITY_KEY = "__id"


def entity_id_column(entity: EntitySource) -> str:
    return column_names([entity.id_field])[entity.id_field]


def lookup_id_column(table: str) -> str:
    """The id column of a lookup target: an entity or a nested table."""
    if table in NESTED_BY_TABLE:
        return NESTED_BY_TABLE[table][0].key_column
    return entity_id_column(SOURCES_BY_TABLE[table])


def all_lookups(source: EventSource) -> tuple[Lookup, ...]:
    return (*source.lookups, *source.nested_lookups)


def lookup_tables(source: EventSource) -> list[str]:
    """Every table (entity or nested) the enriched query joins, sorted."""
    return sorted({lk.entity for lk in all_lookups(source)})


def lookup_columns(source: EventSource) -> list[str]:
    out: list[str] = []
    for lk in all_lookups(source):
        out.extend(c for c in lk.names if c not in out)
    out.extend(c for c in source.derived if c not in out)
    return out


def nested_query(nested: Nested, parent: EntitySource) -> str:
    """SELECT that flattens ``parent``'s JSON array column into ``pendo.<nested.table>``."""
    pid = entity_id_column(parent)
    cols = ",\n       ".join(f"{expr} AS {name}" for name, expr in nested.columns.items())
    app = " p.app_id," if parent.app_scoped else ""
    where = f"\nWHERE {nested.where}" if nested.where else ""
    return (
        f"SELECT{' DISTINCT' if nested.distinct else ''} p.{pid} AS {nested.parent_key},{app}\n"
        f"       {cols}\n"
        f"FROM (SELECT *, unnest(CAST({nested.field} AS JSON[])) AS j "
        f"FROM {RAW_SCHEMA}.{parent.table} WHERE {nested.field} IS NOT NULL) p{where}"
    )


def enriched_query(
    source: EventSource, raw_columns: list[str], entity_columns: dict[str, list[str]] | None = None
) -> str:
    """SELECT for ``analytics.<table>`` over ``pendo.<table>`` for days ``$1``..``$2``.

    ``entity_columns`` (table -> its columns) lets a name whose column the user dropped with
    PENDO_DROP_COLUMNS come out as NULL instead of failing the query.
    """
    raw = f"{RAW_SCHEMA}.{source.table}"
    produced: dict[str, str] = {}  # output column -> qualified expression
    joins: list[str] = []
    for i, lk in enumerate(all_lookups(source)):
        eid = lookup_id_column(lk.entity)
        alias = f"l{i}"
        if lk.column in produced:
            on_expr = produced[lk.column]
            prefilter = ""
        else:
            on_expr = f"e.{lk.column}"
            prefilter = (
                f" WHERE {eid} IN (SELECT {lk.column} FROM {raw} WHERE day BETWEEN $1 AND $2)"
            )
        have = None if entity_columns is None else set(entity_columns.get(lk.entity, []))
        names = ", ".join(
            f"any_value({col}) AS {out}"
            if have is None or col in have
            else f"CAST(NULL AS VARCHAR) AS {out}"
            for out, col in lk.names.items()
        )
        joins.append(
            f"LEFT JOIN (SELECT {eid} AS {ENTITY_KEY}, {names} "
            f"FROM {RAW_SCHEMA}.{lk.entity}{prefilter} GROUP BY 1) {alias} "
            f"ON {alias}.{ENTITY_KEY} = {on_expr}"
        )
        for out in lk.names:
            produced.setdefault(out, f"{alias}.{out}")
    extra = [f"{expr} AS {out}" for out, expr in produced.items() if out not in raw_columns]
    select = ",\n       ".join(["e.*", *extra])
    sql = f"SELECT {select}\nFROM {raw} e\n" + "\n".join(joins) + "\nWHERE e.day BETWEEN $1 AND $2"
    if not source.derived:
        return sql
    derived = ",\n       ".join(f"{expr} AS {out}" for out, expr in source.derived.items())
    return f"SELECT *,\n       {derived}\nFROM (\n{sql}\n) enriched"
