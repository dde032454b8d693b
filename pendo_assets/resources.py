"""Dagster resources: the Pendo client as a typed ``ConfigurableResource``.

The integration key arrives through ``EnvVar("PENDO_INTEGRATION_KEY")``: Dagster resolves it
inside the run process, so it never appears in run config, the UI or logs.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date

import dagster as dg
from pydantic import PrivateAttr

from pendo_assets.catalog import Source
from pendo_assets.pendo.client import PendoClient
from pendo_assets.pendo.fetch import ENTITY_PAGE_FLOOR, ENTITY_PAGE_SIZE, FetchOptions
from pendo_assets.pendo.queries import Scope
from pendo_assets.pendo.totals import ask_window, collect, totals_windows
from pendo_assets.settings import Settings


class PendoResource(dg.ConfigurableResource):
    """Talks to Pendo's Aggregation API (or the embedded emulator in demo mode), as the
    ``settings`` resource says: the client and the Pendo layer's options derive from it."""

    settings: Settings
    integration_key: str
    # Not settings: tests and benches shrink them to page small entity tables.
    entity_page_size: int = ENTITY_PAGE_SIZE
    entity_page_floor: int = ENTITY_PAGE_FLOOR

    _client: PendoClient | None = PrivateAttr(default=None)
    _options: FetchOptions | None = PrivateAttr(default=None)
    # Pendo's totals asked for while the run still loads, for the reconciliation checks.
    _totals: dict = PrivateAttr(default_factory=dict)
    _totals_pool: ThreadPoolExecutor | None = PrivateAttr(default=None)
    # Windows waiting to be asked: (table, first day, arrival, future, source, window, ours).
    _totals_queue: list = PrivateAttr(default_factory=list)
    _totals_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _totals_order: itertools.count = PrivateAttr(default_factory=itertools.count)

    @property
    def client(self) -> PendoClient:
        # One client per resource instance, so one bound on requests in flight per run.
        if self._client is None:
            s = self.settings
            self._client = PendoClient(
                s.base_url,
                self.integration_key,
                timeout_s=s.request_timeout_s,
                max_retries=s.max_retries,
                max_concurrency=s.max_concurrency,
                backoff_base_s=s.retry_backoff_s,
            )
        return self._client

    def teardown_after_execution(self, context) -> None:
        if self._totals_pool is not None:
            self._totals_pool.shutdown(wait=True, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def prefetch_totals(
        self, source: Source, days: list[date], ours: dict[date, int] | None = None
    ) -> None:
        """Ask Pendo for ``days``' totals in the background, through the run's one client, so
        the reconciliation check finds them ready instead of asking after every load
        (``ours``: the rows per day just loaded, see ``totals.ask_window``)."""
        if not days:
            return
        opts = self.options
        if self._totals_pool is None:
            # One queue of windows for every source (see _ask_next_totals): a source's totals
            # are all asked before the next source's, so its check can run while the others'
            # are still being asked, instead of every check waiting for the end.
            self._totals_pool = ThreadPoolExecutor(
                max_workers=opts.max_concurrency, thread_name_prefix="totals"
            )
        futures = []
        for w in totals_windows(days, opts):
            future: Future = Future()
            with self._totals_lock:
                heapq.heappush(
                    self._totals_queue,
                    (source.table, w[0], next(self._totals_order), future, source, w, ours),
                )
            self._totals_pool.submit(self._ask_next_totals)
            futures.append(future)
        self._totals[source.name] = (frozenset(days), futures)

    def _ask_next_totals(self) -> None:
        """Ask the first waiting window, in the order the checks will want them: Dagster runs
        the raw event check steps one after another, sorted by name (``pendo_<table>_checks``),
        so a source's totals come before those of the sources checked after it, whatever
        order their loads finished in. Requests go in the client's background: a load still
        waiting for a slot goes first, since every check waits for the whole load step."""
        with self._totals_lock:
            table, *_, future, source, w, ours = heapq.heappop(self._totals_queue)
        if not future.set_running_or_notify_cancel():
            return
        try:
            with self.client.ranked(table, background=True):
                future.set_result(ask_window(self.client, source, w, self.options, ours))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future
            future.set_exception(exc)

    def prefetched_totals(self, source: Source, days: list[date]) -> tuple | None:
        """(totals, failures) asked during this run's load for a superset of ``days``, once."""
        entry = self._totals.pop(source.name, None)
        if entry is None or not set(days) <= entry[0]:
            return None
        totals, failures = collect(f.result() for f in entry[1])
        wanted = set(days)
        return (
            {d: t for d, t in totals.items() if d in wanted},
            [(w, exc) for w, exc in failures if wanted & set(w)],
        )

    @property
    def options(self) -> FetchOptions:
        """The Pendo layer's options, derived from the settings once per resource instance."""
        if self._options is None:
            s = self.settings
            self._options = FetchOptions(
                scope=Scope(
                    app_ids=None if s.app_ids is None else tuple(s.app_ids),
                    include_anonymous=s.include_anonymous,
                    apply_exclude_list=s.apply_exclude_list,
                ),
                zone=s.zone,
                zone_name=s.timezone,
                drop_columns=frozenset(s.drop_columns),
                days_per_request=s.days_per_request,
                max_concurrency=s.max_concurrency,
                entity_page_size=self.entity_page_size,
                entity_page_floor=self.entity_page_floor,
            )
        return self._options
