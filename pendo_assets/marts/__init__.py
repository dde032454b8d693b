"""Analytics marts: one SQL file per table (page and feature days share one template), declared
in ``models`` and run inside DuckDB.

No Dagster here: ``pendo_assets.assets.marts`` wires these into assets and
``pendo_assets.checks`` turns their tie-outs into asset checks.
"""
