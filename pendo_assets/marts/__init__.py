"""Analytics marts: one SQL file per table, declared in ``models`` and run inside DuckDB.

No Dagster here: ``pendo_assets.assets.marts`` wires these into assets and
``pendo_assets.checks`` turns their tie-outs into asset checks.
"""
