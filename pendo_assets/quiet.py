"""The warnings we know and accept, silenced in one place so a start shows only news.

Imported first by ``pendo_assets.definitions`` (every Dagster process that loads the project:
`dagster dev`'s code server, the daemon's, the CLI, run workers). Each filter matches one
message, never a whole category, so a new warning of the same kind still shows.
"""

from __future__ import annotations

import warnings

from dagster import BetaWarning

# `BackfillPolicy.single_run()` is how a year of history becomes one run per asset selection
# instead of 365 (README > Backfilling history). Dagster marks the parameter beta and warns
# once per asset: 17 identical lines at every load. We depend on it knowingly.
warnings.filterwarnings(
    "ignore", message=r"Parameter `backfill_policy` of function `asset`", category=BetaWarning
)
# pendo_assets.freshness uses Dagster's freshness-check sensor, which 1.13 marks superseded by
# `FreshnessPolicy`. A FreshnessPolicy judges an asset by the time of its last materialization,
# so a backfill of old days would count as fresh; our check judges the newest *day* loaded.
warnings.filterwarnings(
    "ignore",
    message=r"Function `build_sensor_for_freshness_checks` is superseded",
    category=FutureWarning,
)
# The Pendo and warehouse resources carry the Settings resource (nested resources, the one
# place configuration lives); initialising a nested resource makes Dagster 1.13 read its own
# deprecated InitResourceContext.dagster_run (dagster/_core/execution/context/init.py).
warnings.filterwarnings(
    "ignore",
    message=r"InitResourceContext\.dagster_run is deprecated",
    category=DeprecationWarning,
)
