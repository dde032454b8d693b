"""Column schemas shown in the Dagster UI, derived from the catalog."""

from __future__ import annotations

import dagster as dg

from pendo_assets.catalog import Source
from pendo_assets.enriched_sql import lookup_columns
from pendo_assets.pendo.tables import column_names


def raw_schema(source: Source, drop: frozenset[str] = frozenset()) -> dg.TableSchema:
    names = column_names(source.columns)

    def describe(path: str) -> str:
        if path == "day" and source.kind == "event":
            return "Subscription-local date of the partition"
        return f"Pendo field `{path}`"

    return dg.TableSchema(
        columns=[
            dg.TableColumn(names[p], t, description=describe(p))
            for p, t in source.columns.items()
            if names[p] not in drop
        ]
    )


def enriched_schema(source: Source, drop: frozenset[str] = frozenset()) -> dg.TableSchema:
    cols = list(raw_schema(source, drop).columns)
    have = {c.name for c in cols}
    for name in lookup_columns(source):
        if name in have:
            continue
        if name in source.derived:
            dtype = source.derived_types.get(name, "VARCHAR")
            cols.append(dg.TableColumn(name, dtype, description="Computed from the row"))
        else:
            cols.append(dg.TableColumn(name, "VARCHAR", description="Joined from the entities"))
    return dg.TableSchema(columns=cols)
