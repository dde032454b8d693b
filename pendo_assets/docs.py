"""Tables of docs/warehouse.md generated from the catalog: ``python -m pendo_assets.docs``
rewrites them in place.

The page embeds each table between ``<!-- <name>:start -->`` and ``<!-- <name>:end -->``; a test
keeps them in step with the catalog, so adding a source updates the docs too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pendo_assets.catalog import ANALYTICS_SCHEMA, RAW_SCHEMA, SOURCES
from pendo_assets.enriched_sql import lookup_columns
from pendo_assets.pendo.tables import column_names


def sources_table() -> str:
    lines = [
        "| Pendo source | asset / table | partitioned | one row is | ids | names joined in "
        "`analytics.*` |",
        "|---|---|---|---|---|---|",
    ]
    for s in SOURCES:
        names = column_names(s.columns)
        ids = ", ".join(f"`{names[p]}`" for p in s.required if p in names) or "-"
        if s.kind == "event":
            part = "daily (`day`)"
        elif s.updated_field:
            part = f"no (incremental on `{s.updated_field}`, full weekly)"
        elif s.rest:
            part = f"no (REST `GET {s.rest}`, replaced whole)"
        else:
            part = "no (replaced whole)"
        tables = f"`{RAW_SCHEMA}.{s.table}`"
        tables += "".join(f", `{RAW_SCHEMA}.{n.table}`" for n in s.nested)
        if s.members:
            tables += f", `{RAW_SCHEMA}.{s.members.table}`"
        if s.history_table:
            tables += f", `{s.history_table}`"
        tables += "".join(f", `{n.history_table}`" for n in s.nested if n.history_table)
        if s.kind == "event":
            tables += f", `{ANALYTICS_SCHEMA}.{s.table}`"
        joined = ", ".join(f"`{c}`" for c in lookup_columns(s)) or "-"
        lines.append(f"| `{s.name}` | {tables} | {part} | {s.description} | {ids} | {joined} |")
    return "\n".join(lines)


def tables_table() -> str:
    """Every ``pendo.*`` table: what one row is and the columns it always has. Pendo fields
    beyond the declared ones become columns too (docs/warehouse.md says how)."""
    lines = ["| table | one row is | columns it always has |", "|---|---|---|"]

    def row(table: str, description: str, columns: list[str]) -> None:
        cols = ", ".join(f"`{c}`" for c in columns)
        lines.append(f"| `{RAW_SCHEMA}.{table}` | {description} | {cols} |")

    for s in SOURCES:
        names = column_names(s.columns)
        row(s.table, s.description, [names[p] for p in s.columns])
        parent = f"`{RAW_SCHEMA}.{s.table}`"
        for n in s.nested:
            rebuilt = f" Rebuilt from {parent} in the same transaction as every load of it."
            app = ["app_id"] if s.app_scoped else []  # the parent's app, as enriched_sql writes it
            row(n.table, n.description + rebuilt, [n.parent_key, *app, *n.columns])
        if m := s.members:
            replaced = f" Replaced in the same transaction as every load of {parent}."
            row(m.table, m.description + replaced, [m.parent_key, m.member_key])
    return "\n".join(lines)


# Marker name -> the generated table between ``<!-- name:start -->`` and ``<!-- name:end -->``.
BLOCKS: dict[str, Callable[[], str]] = {"sources": sources_table, "tables": tables_table}
PAGE = Path(__file__).resolve().parents[1] / "docs" / "warehouse.md"


def block(text: str, name: str) -> str:
    """The text between the page's ``name`` markers."""
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]


def regenerate(text: str) -> str:
    for name, table in BLOCKS.items():
        pattern = rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)"
        text = re.sub(pattern, lambda m, t=table(): m.group(1) + t + m.group(2), text, flags=re.S)
    return text


if __name__ == "__main__":
    PAGE.write_text(regenerate(PAGE.read_text()))
    print(f"regenerated {', '.join(BLOCKS)} in {PAGE}")
