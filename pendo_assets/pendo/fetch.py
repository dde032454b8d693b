"""Fetch sources as typed tables: entities in pages, events one subscription-local day at a
time (or in multi-day windows split back into days), concurrently under the client's bound.

Also where Pendo's answers are checked before anything is written: every ``day`` (or
``browserTime``) must fall on the requested subscription-local days, so a time-zone mismatch
fails loudly instead of shifting data by a day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from pendo_assets.catalog import DATE, Source
from pendo_assets.pendo import queries
from pendo_assets.pendo.client import PendoClient, PendoError, PendoMemoryLimitError
from pendo_assets.pendo.days import (
    UTC,
    day_bounds_ms,
    describe_offset,
    hours_in_day,
    local_midnight_ms,
    windows,
)
from pendo_assets.pendo.tables import (
    Batch,
    TypedTable,
    column_names,
    parse_batch,
)

ENTITY_PAGE_SIZE = 100_000


class TimezoneMismatchError(PendoError):
    pass


@dataclass(frozen=True)
class FetchOptions:
    scope: queries.Scope
    zone: ZoneInfo
    zone_name: str
    drop_columns: frozenset[str] = frozenset()
    days_per_request: int = 1
    max_concurrency: int = 8
    entity_page_size: int = ENTITY_PAGE_SIZE


# -- entities ------------------------------------------------------------------------------


def fetch_entity(
    client: PendoClient, source: Source, opts: FetchOptions, since_ms: int | None = None
) -> Iterator[TypedTable]:
    """Yield the entity table in pages (accounts/visitors can be millions of rows); with
    ``since_ms``, only the rows changed since then (``source.updated_field``)."""
    if source.app_scoped:
        # Tags are at most thousands per app: one request.
        batch = client.aggregate(
            queries.entity_request(source, opts.scope), source.name, parse_batch
        )
        yield batch.to_table(source, opts.drop_columns)
        return
    after: str | None = None
    page = 0
    while True:
        body = queries.entity_request(source, opts.scope, after, opts.entity_page_size, since_ms)
        batch = client.aggregate(body, f"{source.name} (page {page + 1})", parse_batch)
        n = len(batch)
        last = batch.values(source.id_column)[n - 1].as_py() if n else None
        if n or page == 0:
            yield batch.to_table(source, opts.drop_columns)
        del batch  # one page in memory at a time
        if n < opts.entity_page_size:
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
    values = batch.values("browserTime")
    if (pa.types.is_int64(values.type) or pa.types.is_float64(values.type)) and len(values):
        inside = pc.and_(pc.greater_equal(values, start_ms), pc.less(values, end_ms))
        if values.null_count == 0 and pc.all(inside).as_py():
            return
    outside = [
        t
        for t in values.to_pylist()
        if not (isinstance(t, (int, float)) and not isinstance(t, bool) and start_ms <= t < end_ms)
    ]
    if outside:
        first = outside[0]
        if not isinstance(first, (int, float)):
            raise PendoError(
                f"{what}: a row has no usable `browserTime` ({first!r}); nothing was written"
            )
        # Pendo's window started where its own local midnight is; estimate it from the event.
        raise TimezoneMismatchError(
            f"{what}: {len(outside)} event(s) fall outside the requested days in "
            f"{opts.zone_name} (first at "
            f"{datetime.fromtimestamp(first / 1000, tz=UTC):%Y-%m-%d %H:%M} UTC), "
            "so Pendo's days are not the configured time zone's days. Set PENDO_TIMEZONE to "
            "your Pendo subscription's time zone (Pendo: Settings > Subscription Settings > "
            "Time Zone). Nothing was written."
        )


def _aggregate_hours(rows: list[dict], source: Source, day_ms: int) -> list[dict]:
    """Re-aggregate hourRange rows of one day to day rows (sum numEvents/numMinutes)."""
    out: dict[tuple, dict] = {}
    for r in rows:
        r = dict(r)
        r.pop("hour", None)
        r["day"] = day_ms
        key = tuple(
            (k, repr(v)) for k, v in sorted(r.items()) if k not in ("numEvents", "numMinutes")
        )
        acc = out.get(key)
        if acc is None:
            out[key] = r
        else:
            acc["numEvents"] = (acc.get("numEvents") or 0) + (r.get("numEvents") or 0)
            acc["numMinutes"] = (acc.get("numMinutes") or 0) + (r.get("numMinutes") or 0)
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
                f"Pendo's query memory limit even for one hour: {exc.pendo_message}. Exclude "
                "columns or apps (PENDO_APP_ID), or ask Pendo support about the limit."
            ) from None
    if source.raw:
        return rows
    return _aggregate_hours(rows, source, start_ms)


def fetch_window(
    client: PendoClient, source: Source, days: list[date], opts: FetchOptions
) -> dict[date, TypedTable]:
    """Fetch consecutive days in one request and split the rows back into days."""
    first_ms = local_midnight_ms(days[0], opts.zone)
    what = f"{source.name} for {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")
    try:
        batch = client.aggregate(
            queries.event_request(source, opts.scope, first_ms, len(days)), what, parse_batch
        )
    except PendoMemoryLimitError:
        if len(days) > 1:
            out: dict[date, TypedTable] = {}
            for d in days:
                out.update(fetch_window(client, source, [d], opts))
            return out
        batch = _RowsBatch(_fetch_day_by_hours(client, source, days[0], opts))
    return split_days(batch, source, days, opts, what)


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
    if source.raw:
        start_ms, _ = day_bounds_ms(days[0], opts.zone)
        _, end_ms = day_bounds_ms(days[-1], opts.zone)
        _check_browser_times(batch, start_ms, end_ms, opts, what)
        table = batch.to_table(source, opts.drop_columns)
        local = (
            pc.local_timestamp(
                table.table.column("browser_time").cast(pa.timestamp("ms", tz=opts.zone_name))
            )
            if table.num_rows
            else pa.array([], pa.timestamp("ms"))
        )
        day_values = pc.cast(local, pa.date32())
        table = TypedTable(
            table.table.append_column(day_col, day_values), {**table.types, day_col: DATE}
        )
    else:
        row_days = _check_days(source, batch, _day_ms_map(days, opts.zone), opts, what)
        table = batch.to_table(source, opts.drop_columns, extra={day_col: (DATE, row_days)})
    if len(days) == 1:
        return {days[0]: table}
    out = {}
    col = table.table.column(day_col)
    for d in days:
        out[d] = TypedTable(
            table.table.filter(pc.equal(col, pa.scalar(d, pa.date32()))), table.types
        )
    return out


def fetch_days(
    client: PendoClient,
    source: Source,
    days: list[date],
    opts: FetchOptions,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[date, TypedTable]]:
    """Yield (day, table) for every day, fetching windows concurrently.

    At most ``2 * max_concurrency`` windows are pending at once, so a year-long range holds only
    a few days in memory however fast Pendo answers.
    """
    todo = windows(days, opts.days_per_request)
    total = len(days)
    done = 0
    with ThreadPoolExecutor(
        max_workers=opts.max_concurrency, thread_name_prefix=f"pendo-{source.name}"
    ) as pool:
        pending: set[Future] = set()
        it = iter(todo)
        try:
            while True:
                while len(pending) < 2 * opts.max_concurrency:
                    w = next(it, None)
                    if w is None:
                        break
                    pending.add(pool.submit(fetch_window, client, source, w, opts))
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
