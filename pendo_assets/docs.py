"""README tables generated from the catalog: ``python -m pendo_assets.docs``.

The README embeds this output between ``<!-- sources:start -->`` and ``<!-- sources:end -->``;
a test keeps the two in step, so adding a source updates the docs too.
"""

from __future__ import annotations

from pendo_assets.catalog import ANALYTICS_SCHEMA, RAW_SCHEMA, SOURCES, EntitySource, EventSource
from pendo_assets.enriched_sql import lookup_columns
from pendo_assets.pendo.tables import column_names


def _entity_refresh(s: EntitySource) -> str:
    if s.updated_field:
        return f"no (incremental on `{s.updated_field}`, full weekly)"
    if s.rest:
        return f"no (REST `GET {s.rest}`, replaced whole)"
    return "no (replaced whole)"


def sources_table() -> str:
    lines = [
        "| Pendo source | asset / table | partitioned | one row is | ids | names joined in "
        "`analytics.*` |",
        "|---|---|---|---|---|---|",
    ]
    for s in SOURCES:
        names = column_names(s.columns)
        ids = ", ".join(f"`{names[p]}`" for p in s.required if p in names) or "-"
        tables = f"`{RAW_SCHEMA}.{s.table}`"
        if isinstance(s, EventSource):
            part = "daily (`day`)"
            tables += f", `{ANALYTICS_SCHEMA}.{s.table}`"
            joined = ", ".join(f"`{c}`" for c in lookup_columns(s)) or "-"
        else:
            part = _entity_refresh(s)
            tables += "".join(f", `{RAW_SCHEMA}.{n.table}`" for n in s.nested)
            if s.members:
                tables += f", `{RAW_SCHEMA}.{s.members.table}`"
            if s.history_table:
                tables += f", `{s.history_table}`"
            tables += "".join(f", `{n.history_table}`" for n in s.nested if n.history_table)
            joined = "-"
        lines.append(f"| `{s.name}` | {tables} | {part} | {s.description} | {ids} | {joined} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(sources_table())
