"""Column schemas shown in the Dagster UI, derived from the catalog."""

from __future__ import annotations

import dagster as dg

from pendo_assets.catalog import Source
from pendo_assets.enriched import lookup_columns
from pendo_assets.pendo.tables import column_names


def raw_schema(source: Source, drop: frozenset[str] = frozenset()) -> dg.TableSchema:
    names = column_names(source.columns)
    cols = [
        dg.TableColumn(names[p], t, description=f"Pendo field `{p}`")
        for p, t in source.columns.items()
        if names[p] not in drop
    ]
    if source.kind == "event":
        for c in cols:
            if c.name == "day":
                c_desc = "Subscription-local date of the partition"
                cols[cols.index(c)] = dg.TableColumn("day", "DATE", description=c_desc)
    return dg.TableSchema(columns=cols)


def enriched_schema(source: Source, drop: frozenset[str] = frozenset()) -> dg.TableSchema:
    cols = list(raw_schema(source, drop).columns)
    have = {c.name for c in cols}
    for name in lookup_columns(source):
        if name not in have:
            cols.append(dg.TableColumn(name, "VARCHAR", description="Joined from the entities"))
    return dg.TableSchema(columns=cols)
