"""Fetch sources as typed tables: entities in pages, events in multi-day windows split back
into subscription-local days, concurrently under the client's bound.

Also where Pendo's answers are checked before anything is written: every ``day`` (or
``browserTime``) must fall on the requested subscription-local days, so a time-zone mismatch
fails loudly instead of shifting data by a day.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from pendo_assets.catalog import AGGREGATED_MEASURES, BIGINT, DATE, VARCHAR, Source
from pendo_assets.pendo import queries
from pendo_assets.pendo.client import (
    PendoClient,
    PendoError,
    PendoMemoryLimitError,
    PendoTimeoutError,
)
from pendo_assets.pendo.days import (
    UTC,
    day_bounds_ms,
    describe_offset,
    hours_in_day,
    local_midnight_ms,
)
from pendo_assets.pendo.tables import (
    Batch,
    TypedTable,
    column_names,
    parse_batch,
    parse_rest_rows,
    rows_to_table,
)

ENTITY_PAGE_SIZE = 100_000
# An entity page that hits Pendo's memory limit or times out is asked again half as big, down
# to this many rows; below it the source fails naming the page size.
ENTITY_PAGE_FLOOR = 1_000
# With a wrong time zone Pendo answers its own local day containing our `first` (it rounds
# `first` down), so every event moves by whole hours: up to a day plus a zone offset (14 h).
# Events further out are late arrivals Pendo filed under the day it returned them for.
MAX_ZONE_SHIFT_MS = (24 + 14) * 3_600_000
# Fewer events than this outside the days cannot show a systematic shift (two poll answers
# from a browser with a wrong clock on a day of three); the aggregated sources' exact `day`
# check catches a wrong zone anyway.
MIN_SHIFTED_EVENTS = 5


# What one event request aims to bring back: big enough that Pendo's per-request cost is paid
# rarely, small enough that an answer is a few MB and far from Pendo's memory limit.
ROWS_PER_REQUEST = 50_000


class TimezoneMismatchError(PendoError):
    pass


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch, as the project's settings say (``PendoResource.options`` derives it: the
    settings' defaults live there, once, so none is repeated here)."""

    scope: queries.Scope
    zone: ZoneInfo
    zone_name: str
    drop_columns: frozenset[str]
    days_per_request: int  # the upper bound; WindowSizer sizes windows
    max_concurrency: int
    entity_page_size: int
    entity_page_floor: int
    rows_per_request: int = ROWS_PER_REQUEST


# -- entities ------------------------------------------------------------------------------


def fill_app_id(table: TypedTable, source: Source, opts: FetchOptions) -> TypedTable:
    """Rows without ``appId`` get the app the request named, if it named exactly one.

    Pendo leaves out fields it was not asked about (a real pageEvents answer has no ``appId``);
    with one app asked the row can only be that app's. With several apps, or all of them, the
    app is unknown and stays NULL.
    """
    ids = opts.scope.app_ids
    if not source.app_scoped or ids is None or len(ids) != 1 or "app_id" in opts.drop_columns:
        return table
    t, types = table.table, dict(table.types)
    if "app_id" not in t.column_names:
        types["app_id"] = BIGINT
        col = pa.array([ids[0]] * t.num_rows, pa.int64())
        return TypedTable(t.append_column("app_id", col), types)
    col = t.column("app_id")
    if col.null_count == 0:
        return table
    value = ids[0] if types.get("app_id") != VARCHAR else str(ids[0])
    filled = pc.fill_null(col, pa.scalar(value, col.type))
    return TypedTable(t.set_column(t.column_names.index("app_id"), "app_id", filled), types)


def fetch_entity(
    client: PendoClient, source: Source, opts: FetchOptions, since_ms: int | None = None
) -> Iterator[TypedTable]:
    """Yield the entity table in pages (accounts/visitors can be millions of rows); with
    ``since_ms``, only the rows changed since then (``source.updated_field``).

    App tags (pages, features, ...) are at most thousands per app and come in one request;
    should even that exceed Pendo's memory limit or time out, they are paged like visitors.
    """
    if source.rest is not None:
        # Every app's objects come in one list (no paging on Pendo's REST lists).
        rows = client.get(f"{source.rest}?expand=*", source.name, source.name, parse_rest_rows)
        yield rows_to_table(rows, source, opts.drop_columns)
        return
    if source.app_scoped:
        try:
            batch = client.aggregate(
                queries.entity_request(source, opts.scope),
                source.name,
                parse_batch,
                split_on_timeout=True,
            )
        except (PendoMemoryLimitError, PendoTimeoutError):
            pass
        else:
            yield fill_app_id(batch.to_table(source, opts.drop_columns), source, opts)
            return
    yield from _fetch_entity_pages(client, source, opts, since_ms)


def _fetch_entity_pages(
    client: PendoClient, source: Source, opts: FetchOptions, since_ms: int | None = None
) -> Iterator[TypedTable]:
    after: str | None = None
    page = 0
    size = opts.entity_page_size
    floor = min(opts.entity_page_floor, size)
    while True:
        body = queries.entity_request(source, opts.scope, after, size, since_ms)
        what = f"{source.name} (page {page + 1}, {size} rows)"
        try:
            batch = client.aggregate(body, what, parse_batch, split_on_timeout=size > floor)
        except (PendoMemoryLimitError, PendoTimeoutError) as exc:
            if size > floor:
                size = max(floor, size // 2)  # same page, half as big; later pages stay small
                continue
            said = exc.pendo_message if isinstance(exc, PendoMemoryLimitError) else str(exc)
            raise PendoError(
                f"{source.name} page {page + 1} (after id {after!r}) still fails at {size} rows "
                f"per page, the smallest we ask for: {said}. Pendo cannot serve this source in "
                "pages this small; ask Pendo support about the query limits of your "
                "subscription."
            ) from None
        n = len(batch)
        last = batch.values(source.id_field)[n - 1].as_py() if n else None
        if n or page == 0:
            yield fill_app_id(batch.to_table(source, opts.drop_columns), source, opts)
        del batch  # one page in memory at a time
        if n < size:
            return
        if last is None or (after is not None and str(last) <= after):
            raise PendoError(
                f"Pendo returned {source.name} out of id order while paging; cannot page safely"
            )
        after = str(last)
        page += 1


# -- events --------------------------------------------------------------------------------


def _day_ms_map(days: list[date], zone: ZoneInfo) -> dict[int, date]:
    return {local_midnight_ms(d, zone): d for d in days}


def _check_days(
    source: Source, batch: Batch, expected: dict[int, date], opts: FetchOptions, what: str
) -> pa.Array:
    """Map each aggregated row's ``day`` (UTC ms) to its local date, or fail on a mismatch."""
    values = batch.values("day")
    if len(values) == 0:
        return pa.array([], pa.date32())
    if pa.types.is_int64(values.type):
        starts = pa.array(list(expected), pa.int64())
        idx = pc.index_in(values, value_set=starts)
        if idx.null_count == 0:
            return pc.take(pa.array(list(expected.values()), pa.date32()), idx)
    # Some row is off: find it in Python to say which and why.
    for ms in values.to_pylist():
        d = expected.get(ms) if type(ms) is int else None
        if d is None:
            if isinstance(ms, (int, float)) and not isinstance(ms, bool):
                raise TimezoneMismatchError(
                    f"{what}: Pendo returned a day starting at epoch ms {int(ms)} that is not "
                    "a local midnight of the requested days. "
                    f"{describe_offset(int(ms), opts.zone_name)} Nothing was written."
                )
            raise PendoError(
                f"{what}: a row has no usable `day` value ({ms!r}); nothing was written"
            )
    raise PendoError(f"{what}: the `day` values are not epoch milliseconds; nothing was written")


def _check_browser_times(
    batch: Batch, start_ms: int, end_ms: int, opts: FetchOptions, what: str
) -> None:
    """Fail on per-event rows that show Pendo's days are not the configured zone's days.

    Pendo files a raw event under the day it returns it for (its bucket is the truth), so a
    few events whose browser clock lies outside the requested days are kept. Only a
    systematic shift is a time-zone error: most events outside the days (at least
    ``MIN_SHIFTED_EVENTS``), all of them within a day and a zone offset of the window.
    """
    values = batch.values("browserTime")
    if (pa.types.is_int64(values.type) or pa.types.is_float64(values.type)) and len(values):
        inside = pc.and_(pc.greater_equal(values, start_ms), pc.less(values, end_ms))
        if values.null_count == 0 and pc.all(inside).as_py():
            return
    times = values.to_pylist()
    for t in times:
        if not isinstance(t, (int, float)) or isinstance(t, bool):
            raise PendoError(
                f"{what}: a row has no usable `browserTime` ({t!r}); nothing was written"
            )
    outside = [t for t in times if not start_ms <= t < end_ms]
    near = all(start_ms - MAX_ZONE_SHIFT_MS <= t < end_ms + MAX_ZONE_SHIFT_MS for t in times)
    if len(outside) >= MIN_SHIFTED_EVENTS and 2 * len(outside) > len(times) and near:
        first = min(outside)
        raise TimezoneMismatchError(
            f"{what}: {len(outside)} of {len(times)} event(s) fall outside the requested days "
            f"in {opts.zone_name} (first at "
            f"{datetime.fromtimestamp(first / 1000, tz=UTC):%Y-%m-%d %H:%M} UTC), "
            "so Pendo's days are not the configured time zone's days. Set PENDO_TIMEZONE to "
            "your Pendo subscription's time zone (Pendo: Settings > Subscription Settings > "
            "Time Zone). Nothing was written."
        )


def _hour_row_key(row: dict) -> tuple:
    # Every field but the period and its measures identifies the row: the catalog's grain plus
    # any field Pendo adds (kept apart rather than merged away).
    skip = ("hour", "day", *AGGREGATED_MEASURES)
    return tuple(
        (k, json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else repr(v))
        for k, v in sorted(row.items())
        if k not in skip
    )


def _aggregate_hours(rows: list[dict], source: Source, day_ms: int) -> list[dict]:
    """Merge hourRange rows of one day into day rows, as a dayRange answer would have them:
    numEvents/numMinutes summed, firstTime the earliest, lastTime the latest."""
    out: dict[tuple, dict] = {}
    for r in rows:
        r = dict(r)
        r.pop("hour", None)
        r["day"] = day_ms
        key = _hour_row_key(r)
        acc = out.get(key)
        if acc is None:
            out[key] = r
            continue
        for f in ("numEvents", "numMinutes"):
            if f in acc or f in r:
                acc[f] = (acc.get(f) or 0) + (r.get(f) or 0)
        for f, pick in (("firstTime", min), ("lastTime", max)):
            got = [v for v in (acc.get(f), r.get(f)) if isinstance(v, (int, float))]
            if got:
                acc[f] = pick(got)
    return list(out.values())


def _fetch_day_by_hours(
    client: PendoClient, source: Source, day: date, opts: FetchOptions
) -> list[dict]:
    start_ms = local_midnight_ms(day, opts.zone)
    rows: list[dict] = []
    for h in range(hours_in_day(day, opts.zone)):  # rare: dict rows are fine here
        first = start_ms + h * 3_600_000
        body = queries.event_request(source, opts.scope, first, 1, period="hourRange")
        hour_label = datetime.fromtimestamp(first / 1000, tz=opts.zone).strftime("%H:00")
        try:
            rows.extend(client.aggregate(body, f"{source.name} for {day} hour {hour_label}"))
        except PendoMemoryLimitError as exc:
            raise PendoError(
                f"{source.name} for {day}, hour {hour_label} ({opts.zone_name}) still exceeds "
                f"Pendo's query memory limit even for one hour: {exc.pendo_message}. Load "
                "fewer apps at a time (PENDO_APP_ID), or ask Pendo support about the limit."
            ) from None
    if source.per_event:
        return rows
    return _aggregate_hours(rows, source, start_ms)


def fetch_window(
    client: PendoClient,
    source: Source,
    days: list[date],
    opts: FetchOptions,
    on_split: Callable[[int], None] | None = None,
) -> dict[date, TypedTable]:
    """Fetch consecutive days in one request and split the rows back into days.

    A window that exceeds Pendo's memory limit, or times out, is asked again a day at a time;
    a single day over the memory limit is asked hour by hour.
    """
    first_ms = local_midnight_ms(days[0], opts.zone)
    what = f"{source.name} for {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")
    try:
        batch = client.aggregate(
            queries.event_request(source, opts.scope, first_ms, len(days)),
            what,
            parse_batch,
            split_on_timeout=len(days) > 1,
        )
    except (PendoMemoryLimitError, PendoTimeoutError):
        if len(days) > 1:
            if on_split is not None:
                on_split(len(days))
            return _day_by_day(client, source, days, opts)
        batch = _RowsBatch(_fetch_day_by_hours(client, source, days[0], opts))
    if source.per_event and len(days) > 1:
        unsure = _unsure_days(batch, days, opts, what)
        if unsure:
            # Only Pendo's one-day answers say where these days' doubtful events belong.
            out = split_days(batch, source, days, opts, what)
            out.update(_day_by_day(client, source, sorted(unsure), opts))
            return out
    return split_days(batch, source, days, opts, what)


def _day_by_day(
    client: PendoClient, source: Source, days: list[date], opts: FetchOptions
) -> dict[date, TypedTable]:
    out: dict[date, TypedTable] = {}
    for d in days:
        out.update(fetch_window(client, source, [d], opts))
    return out


def _local_dates(ms: pa.Array, opts: FetchOptions) -> pa.Array:
    """Epoch milliseconds as subscription-local dates (DST included); nulls stay null."""
    ts = pc.cast(ms, pa.int64(), safe=False).cast(pa.timestamp("ms", tz=opts.zone_name))
    return pc.cast(pc.local_timestamp(ts), pa.date32())


def _unsure_days(batch: Batch, days: list[date], opts: FetchOptions, what: str) -> set[date]:
    """The days of a multi-day per-event answer whose events cannot all be filed from the rows.

    A raw event carries no day. Pendo files it under the local day of its time: the browser's
    (``browserTime``) or its own receiving server's (``guideTimestamp``); which one is not
    documented. Where both name the same day of the window, that is the day. Where they
    differ (a browser clock off, an event sent just before midnight and received after), the
    event belongs to one of the two days and both are asked alone. Where the row cannot name a
    day of the window at all (no ``guideTimestamp`` and a ``browserTime`` outside the window),
    every day is. A wrong time zone fails here instead (``_check_browser_times``).
    """
    start_ms, _ = day_bounds_ms(days[0], opts.zone)
    _, end_ms = day_bounds_ms(days[-1], opts.zone)
    _check_browser_times(batch, start_ms, end_ms, opts, what)
    browser = batch.values("browserTime")
    if not len(browser):
        return set()
    server = batch.values("guideTimestamp")
    if not (pa.types.is_integer(server.type) or pa.types.is_floating(server.type)):
        server = pa.nulls(len(browser), pa.int64())
    inside = pc.and_(pc.greater_equal(browser, start_ms), pc.less(browser, end_ms))
    browser_day, server_day = _local_dates(browser, opts), _local_dates(server, opts)
    agree = pc.fill_null(pc.equal(browser_day, server_day), True)  # no server time: browser's
    doubtful = pc.invert(pc.and_(inside, agree))
    if not pc.any(doubtful).as_py():
        return set()
    window = set(days)
    unsure: set[date] = set()
    pairs = zip(
        browser_day.filter(doubtful).to_pylist(),
        server_day.filter(doubtful).to_pylist(),
        strict=True,
    )
    for b, s in pairs:
        if s not in window:
            return window
        # split_days put the event on its browser day, kept inside the window: ask that too.
        unsure |= {min(max(b, days[0]), days[-1]), s}
    return unsure


class _RowsBatch(Batch):
    """Rows already parsed (hour-by-hour answers re-aggregated to a day)."""

    def __init__(self, rows: list[dict]):
        self._data = None
        self._rows = rows
        self.items = None


def split_days(
    batch: Batch | list[dict], source: Source, days: list[date], opts: FetchOptions, what: str
) -> dict[date, TypedTable]:
    if isinstance(batch, list):
        batch = _RowsBatch(batch)
    day_col = column_names(source.columns)["day"]
    if source.per_event:
        start_ms, _ = day_bounds_ms(days[0], opts.zone)
        _, end_ms = day_bounds_ms(days[-1], opts.zone)
        _check_browser_times(batch, start_ms, end_ms, opts, what)
        table = batch.to_table(source, opts.drop_columns)
        if len(days) == 1:
            # Pendo returned these events for this day: they belong to it.
            day_values = pa.array([days[0]] * table.num_rows, pa.date32())
        else:
            # A multi-day answer has no bucket per row: an event goes to the local day of its
            # browserTime (midnight and DST included, tested against one-day answers), kept
            # inside the window; ``fetch_window`` replaces the days ``_unsure_days`` doubts
            # with one-day answers.
            local = (
                pc.local_timestamp(
                    table.table.column("browser_time").cast(pa.timestamp("ms", tz=opts.zone_name))
                )
                if table.num_rows
                else pa.array([], pa.timestamp("ms"))
            )
            day_values = pc.cast(local, pa.date32())
            lo, hi = pa.scalar(days[0], pa.date32()), pa.scalar(days[-1], pa.date32())
            day_values = pc.min_element_wise(pc.max_element_wise(day_values, lo), hi)
        table = TypedTable(
            table.table.append_column(day_col, day_values), {**table.types, day_col: DATE}
        )
    else:
        row_days = _check_days(source, batch, _day_ms_map(days, opts.zone), opts, what)
        table = batch.to_table(source, opts.drop_columns, extra={day_col: (DATE, row_days)})
    table = fill_app_id(table, source, opts)
    if len(days) == 1:
        return {days[0]: table}
    out = {}
    col = table.table.column(day_col)
    for d in days:
        out[d] = TypedTable(
            table.table.filter(pc.equal(col, pa.scalar(d, pa.date32()))), table.types
        )
    return out


class WindowSizer:
    """Days per request for one source, from what it returned so far.

    Starts at one day; after each answer the next windows hold about ``rows_per_request`` rows
    at the source's average rows per day, at most ``days_per_request`` days. Once Pendo has
    refused a window (memory limit, timeout), the budget drops to the largest answer it has
    accepted, so later windows stay at a size known to work.
    """

    def __init__(self, opts: FetchOptions):
        self.limit = max(1, opts.days_per_request)
        self.target = max(1, opts.rows_per_request)
        self.size = 1
        self.rows = 0
        self.days = 0
        self.largest_accepted = 0
        self._lock = threading.Lock()

    @property
    def measured(self) -> bool:
        return self.days > 0

    def _resize(self) -> None:
        per_day = max(1.0, self.rows / self.days) if self.days else 1.0
        self.size = max(1, min(self.limit, int(self.target // per_day)))

    def observe(self, days: int, rows: int, largest_answer: int) -> None:
        with self._lock:
            self.days += days
            self.rows += rows
            self.largest_accepted = max(self.largest_accepted, largest_answer)
            self._resize()

    def refused(self) -> None:
        with self._lock:
            self.target = max(1, min(self.target, self.largest_accepted))
            self._resize()


def _next_window(days: list[date], start: int, size: int) -> list[date]:
    """The longest run of consecutive days from ``days[start]``, at most ``size`` long."""
    w = [days[start]]
    for d in days[start + 1 : start + size]:
        if d - w[-1] != timedelta(days=1):
            break
        w.append(d)
    return w


def fetch_days(
    client: PendoClient,
    source: Source,
    days: list[date],
    opts: FetchOptions,
    on_progress: Callable[[int, int], None] | None = None,
    rank: str | None = None,
) -> Iterator[tuple[date, TypedTable]]:
    """Yield (day, table) for every day, fetching adaptive windows concurrently.

    With ``rank``, the requests wait for those of lower-ranked sources loading at the same
    time (``PendoClient.ranked``): sources sharing the bound finish one after another.

    The first request asks for one day alone; once it has answered, windows are sized by
    ``WindowSizer`` and up to ``max_concurrency`` are in flight (so a refusal resizes the
    windows not yet asked for), and a year-long range
    holds only a few windows in memory however fast Pendo answers.
    """
    todo = sorted(days)
    sizer = WindowSizer(opts)
    total = len(todo)
    done = 0
    nxt = 0

    def fetch(w: list[date]) -> dict[date, TypedTable]:
        split: list[int] = []
        with client.ranked(rank) if rank is not None else nullcontext():
            out = fetch_window(client, source, w, opts, on_split=split.append)
        rows = [t.num_rows for t in out.values()]
        # A refused window was answered a day at a time: the largest day is what Pendo took.
        sizer.observe(len(w), sum(rows), max(rows, default=0) if split else sum(rows))
        if split:
            sizer.refused()
        return out

    with ThreadPoolExecutor(
        max_workers=opts.max_concurrency + 1, thread_name_prefix=f"pendo-{source.name}"
    ) as pool:
        pending: set[Future] = set()
        try:
            while True:
                # Until the first answer the source's size is unknown: one probe request.
                # Ranked, one more than the bound: a window already waits when a slot frees,
                # so it goes to this source and not to a lower-ranked one.
                room = opts.max_concurrency + (rank is not None) if sizer.measured else 1
                while len(pending) < room and nxt < total:
                    w = _next_window(todo, nxt, sizer.size)
                    nxt += len(w)
                    pending.add(pool.submit(fetch, w))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    for d, t in sorted(f.result().items()):
                        done += 1
                        yield d, t
                    if on_progress:
                        on_progress(done, total)
        finally:
            for f in pending:
                f.cancel()
