"""The warehouse's side tables as assets of the graph, so the UI shows them and who writes them.

They are Dagster's *external* assets (``AssetSpec``s, not materializable on their own): each is
written inside the transaction of the assets (or the check) upstream of it, never by a run of
its own. Their column schemas come from the same declarations as their ``CREATE`` statements
(``warehouse.side_tables.SideTable``).
"""

from __future__ import annotations

import dagster as dg

from pendo_assets.assets.shared import asset_key, table_key
from pendo_assets.catalog import ENTITIES, EVENTS, SOURCES_BY_NAME
from pendo_assets.marts.first_seen import FOLDED, first_seen_table
from pendo_assets.marts.models import MARTS
from pendo_assets.warehouse.reconciled import RECONCILED_DAYS
from pendo_assets.warehouse.side_tables import SideTable
from pendo_assets.warehouse.tag_changes import TAG_CHANGES_TABLE

STATE_GROUP = "warehouse_state"


def _spec(table: SideTable, deps: list[dg.AssetKey], written_by: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=table_key(table.fq),
        deps=deps,
        group_name=STATE_GROUP,
        kinds={"duckdb"},
        description=f"{table.description}\n\nDuckDB table `{table.fq}`, written by "
        f"{written_by}: not materialized on its own.",
        metadata={
            "dagster/table_name": table.fq,
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        c,
                        t,
                        description=what,
                        constraints=dg.TableColumnConstraints(nullable=c not in table.not_null),
                    )
                    for c, (t, what) in table.columns.items()
                ]
            ),
        },
    )


def state_specs() -> list[dg.AssetSpec]:
    """Every side table, with the assets that write it as its upstream."""
    tags = [s for s in ENTITIES if s.retags]
    specs = [
        _spec(
            RECONCILED_DAYS,
            [asset_key(s) for s in EVENTS],
            "the `reconciles_with_pendo` check of each raw event table (and forgotten by the "
            "loads that change those days)",
        ),
        _spec(
            TAG_CHANGES_TABLE,
            [
                *(asset_key(s) for s in tags),
                *(asset_key(SOURCES_BY_NAME[s.retags]) for s in tags),
            ],
            "the loads of the tag tables (pages, features, track types: Pendo recomputes their "
            "events from their rules over all history) and the repair runs of their event "
            "tables",
        ),
    ]
    writers: dict[str, list[dg.AssetKey]] = {}
    tables: dict[str, SideTable] = {}
    for mart in MARTS:
        for fs in mart.first_seen:
            tables[fs.table] = first_seen_table(fs)
            writers.setdefault(fs.table, []).append(table_key(mart.table))
    for name, table in tables.items():
        specs.append(_spec(table, writers[name], "the daily marts that read it"))
    folders = sorted({k for keys in writers.values() for k in keys}, key=str)
    specs.append(_spec(FOLDED, folders, "the daily marts that fold first-seen tables"))
    return specs


def state_assets() -> dg.AssetsDefinition:
    """The side tables as one definition of external assets."""
    return dg.AssetsDefinition(specs=state_specs())
