"""The order a run takes its steps in: Dagster's ``dagster/priority`` op tag, highest first.

The in-process executor runs one step at a time: the ready step with the highest priority.
The documented backfill is one run of the entities, the event sources and their enriched
tables over a range. Pendo is its bottleneck (the client keeps ``PENDO_MAX_CONCURRENCY``
requests open), so the run asks Pendo from its first step and does Dagster and DuckDB work
while Pendo answers:

1. the event loads come first: they ask Pendo the most, and as each window lands its
   reconciliation totals are queued behind the loads, in the background;
2. the entities follow while those totals are asked (their few requests go ahead of the
   totals in the client's queue), then the entity checks the enriched tables block on;
3. a source's enriched days are built as soon as its own blocking checks have passed, and
   checked (freshness of both its tables, poll events' NPS tie-out), while Pendo still answers
   the later sources' totals;
4. the event checks go in the order their totals are asked (by table; ``rank`` in
   ``pendo/client.py``), each finding its totals first.

Any other step (marts and their grain and tie-out checks) keeps Dagster's default of 0 and
follows what it reads; a mart's freshness check takes ``ENRICHED`` like every freshness check.
Priorities only order steps that are ready; dependencies and blocking checks decide which are.
"""

from __future__ import annotations

from collections.abc import Mapping

from pendo_assets.catalog import EVENTS, EventSource

PRIORITY_TAG = "dagster/priority"  # Dagster's op tag, read by its in-process executor

EVENT_LOADS = 400
ENTITY_LOADS = 300
ENTITY_CHECKS = 200
ENRICHED = 100
# Event checks count down from here, one per source in table order: below every step above.
EVENT_CHECKS = 50


def tags(priority: int) -> Mapping[str, str]:
    """The op tags that give a step ``priority``."""
    return {PRIORITY_TAG: str(priority)}


def event_checks(source: EventSource) -> int:
    """A source's check step comes before those of sources later by table, as its totals do."""
    return EVENT_CHECKS - sorted(s.table for s in EVENTS).index(source.table)
