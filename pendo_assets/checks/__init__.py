"""Asset checks, by what they check: raw event tables (``raw_events``, with reconciliation in
``reconcile`` and partition bookkeeping in ``partitions``), entity tables (``entities``) and
marts (``marts``, and the NPS tie-out of poll answers in ``nps``); ``shared`` holds check
names, day helpers and the result builder.

Every check runs in the run that materializes its asset, once per run: in a range run it
covers every day of the range, lists each day's result in its metadata and, when it fails,
names the days that differ. Run on its own (no partition range), a check covers every day in
the warehouse.

Blocking (ERROR), only on data that is certainly wrong: grain uniqueness, ids Pendo always
sends, reconciliation with Pendo on *final* days, entity id uniqueness and mart tie-outs;
downstream steps in the same run do not start after one fails, and automation waits for them
(``all_deps_blocking_checks_passed``). Warnings, never ERROR: unknown ids, partition gaps,
freshness, young days that still differ from Pendo, totals Pendo could not answer, and
segments whose members Pendo would not answer (``members``).
"""

from __future__ import annotations

import dagster as dg

from pendo_assets.catalog import EVENTS
from pendo_assets.checks.entities import build_entity_checks
from pendo_assets.checks.marts import all_mart_checks, build_mart_checks, mart_key
from pendo_assets.checks.members import build_members_checks
from pendo_assets.checks.nps import nps_checks
from pendo_assets.checks.raw_events import build_raw_event_checks
from pendo_assets.settings import Settings

__all__ = [
    "all_checks",
    "build_entity_checks",
    "build_mart_checks",
    "build_raw_event_checks",
    "mart_key",
]


def all_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """Every check of the project; ``settings.clock`` decides which days are final."""
    return [
        build_entity_checks(),
        *build_members_checks(),
        *(build_raw_event_checks(s, settings) for s in EVENTS),
        *all_mart_checks(),
        *nps_checks(),
    ]
