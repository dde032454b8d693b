"""IO manager round trip: downstream Python assets load one partition or a range as pandas."""

from datetime import date

import dagster as dg
import pyarrow as pa

from pendo_assets.run_tags import range_tags
from pendo_assets.settings import Settings
from pendo_assets.warehouse.io_manager import (
    DuckDBWarehouseIOManager,
    StagedDays,
    StagedTable,
    WarehouseResource,
)
from pendo_assets.warehouse.store import Warehouse, stage

PARTS = dg.DailyPartitionsDefinition(start_date="2026-10-01", end_date="2026-10-06")


def test_round_trip_partitions_and_tables(tmp_path):
    db = str(tmp_path / "w.duckdb")

    @dg.asset(
        key=["pendo", "clicks"],
        partitions_def=PARTS,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def clicks(context: dg.AssetExecutionContext) -> StagedDays:
        days = [date.fromisoformat(k) for k in context.partition_keys]
        files = []
        for i, d in enumerate(days):
            t = pa.table(
                {
                    "day": pa.array([d] * (i + 1), pa.date32()),
                    "n": pa.array(range(i + 1), pa.int64()),
                }
            )
            files.append(stage(t, {"day": "DATE", "n": "BIGINT"}, tmp_path / f"{d}.parquet"))
        return StagedDays(days, files, {"day": "DATE", "n": "BIGINT"})

    @dg.asset(key=["pendo", "names"])
    def names() -> StagedTable:
        t = pa.table({"id": ["a", "b"], "name": ["A", "B"]})
        return StagedTable(
            [stage(t, {"id": "VARCHAR", "name": "VARCHAR"}, tmp_path / "names.parquet")],
            {"id": "VARCHAR"},
        )

    seen = {}

    @dg.asset(
        ins={
            "clicks": dg.AssetIn(key=["pendo", "clicks"]),
            "names": dg.AssetIn(key=["pendo", "names"]),
        },
        partitions_def=PARTS,
        io_manager_key="mem",
    )
    def downstream(context: dg.AssetExecutionContext, clicks, names) -> None:
        seen[context.partition_key] = (
            len(clicks),
            sorted(clicks["day"].astype(str).unique()),
            sorted(names["name"]),
        )

    wh = WarehouseResource(settings=Settings(duckdb_path=db))
    resources = {"io_manager": DuckDBWarehouseIOManager(resource=wh), "mem": dg.InMemoryIOManager()}
    instance = dg.DagsterInstance.ephemeral()
    tags = range_tags("2026-10-01", "2026-10-03")
    assert dg.materialize(
        [clicks, names], resources=resources, instance=instance, tags=tags, selection=[clicks.key]
    ).success
    assert dg.materialize([names], resources=resources, instance=instance).success
    assert dg.materialize(
        [clicks, names, downstream],
        resources=resources,
        instance=instance,
        partition_key="2026-10-02",
        selection=[downstream.key],
    ).success
    assert seen == {"2026-10-02": (2, ["2026-10-02"], ["A", "B"])}
    rows = Warehouse(db).query("SELECT day, count(*) FROM pendo.clicks GROUP BY 1 ORDER BY 1")
    assert [n for _, n in rows] == [1, 2, 3]
    df = Warehouse(db).read_df("pendo", "clicks", [date(2026, 10, 1), date(2026, 10, 2)])
    assert len(df) == 3
