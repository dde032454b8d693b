"""Parse and run a Pendo aggregation request body (pure functions, no HTTP).

``parse_request`` validates everything up front (so errors become a 400 before any row is
streamed) and returns a ``Query``; ``run`` yields the result rows lazily, so entity sources
and streaming-friendly operators (filter, identified, limit) never hold the whole result.

The emulator speaks the part of Pendo's grammar the client sends (``pendo_assets.pendo.
queries``): a source with ``appId``, ``blacklist: "apply"``, visitors' ``identified`` and the
catalog's null id parameters; ``timeSeries`` as ``dayRange``/``hourRange`` from an epoch-ms
``first`` over a positive ``count``; and the operators ``identified``, ``filter``
(``<field> <op> <literal>``), ``select`` (``{out: field}``), ``sort`` (ascending), ``limit``,
``count`` and ``group`` (with ``count``/``sum`` fields). A segment's visitors are asked with a
``segmentId`` parameter on ``visitors`` or a ``segment`` step, whichever of the two
``Subscription.segment_shapes`` lets this Pendo answer. Anything else answers 400, as Pendo
does for what it cannot run, rather than being ignored. Emulator choices where Pendo is
unclear:
- The pipeline runs once over the rows of all periods (days in order, apps in request order
  within a day), not once per period; ``count``/``group`` see the whole range.
- ``blacklist: "apply"`` drops events of the few visitors on the Exclude List (visitors with
  ``metadata.custom.internal == true``); entity sources ignore it.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pendo_assets.catalog import SOURCES_BY_NAME, EntitySource
from pendo_assets.emulator.entities import entity_rows, iter_visitors_json
from pendo_assets.emulator.events import activity, hour_parts
from pendo_assets.emulator.expressions import (
    ExpressionError,
    compile_filter,
    get_path,
    is_field,
    set_path,
)
from pendo_assets.emulator.segments import PARAMETER, PIPELINE, segment_filter
from pendo_assets.emulator.subscription import DEFAULT_APP_ID, HOUR_MS, Subscription

Step = Callable[[Iterator[dict]], Iterator[dict]]

_EXPAND_ALL = re.compile(r'\s*expandAppIds\(\s*"\*"\s*\)\s*')
# Real Pendo operators the client never sends (a clearer 400 than "unknown operator").
_UNSUPPORTED = {"eval", "reduce", "unwind", "merge", "spawn", "join", "bulkExpand"}
_UNSUPPORTED |= {"cat", "fork", "switch"}
_MAX_PERIODS = 24 * 366 * 3


class AggregationError(ValueError):
    """A request Pendo would reject: answered with ``status`` and a plain-text message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Query:
    """A parsed aggregation request."""

    source: str
    params: dict
    app_ids: tuple[int, ...]
    period: str | None  # "dayRange", "hourRange" or None (entities)
    periods: list[int] = field(default_factory=list)  # start ms of each period, in order
    steps: list[Step] = field(default_factory=list)
    segment_id: str | None = None  # the segment whose visitors are asked, either shape

    @property
    def is_event(self) -> bool:
        return SOURCES_BY_NAME[self.source].kind == "event"

    @property
    def tag(self) -> tuple[str, str] | None:
        """(tag field, id) when the source was asked for one tag's rows only."""
        for key in SOURCES_BY_NAME[self.source].params:
            if isinstance(self.params.get(key), str):
                return key, self.params[key]
        return None

    @property
    def identified_only(self) -> bool:
        """``visitors: {"identified": true}``: anonymous visitors left out."""
        return self.source == "visitors" and bool(self.params.get("identified"))

    @property
    def days_asked(self) -> float:
        """Days covered by the time series (hours count as 1/24 day); latency scales with it."""
        if self.period == "hourRange":
            return len(self.periods) / 24
        return float(len(self.periods))


# --- parsing ------------------------------------------------------------------------------
def _load(body: bytes | str | dict) -> dict:
    if isinstance(body, dict):
        return body
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AggregationError(f"could not parse request body as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise AggregationError("request body must be a JSON object")
    return data


def resolve_app_ids(value: Any, sub: Subscription) -> tuple[int, ...]:
    """``appId`` absent -> the default app only (Pendo's multi-app gotcha)."""
    if value is None:
        return (DEFAULT_APP_ID if DEFAULT_APP_ID in sub.app_ids else sub.app_ids[0],)
    if isinstance(value, str) and _EXPAND_ALL.fullmatch(value):
        return sub.app_ids
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise AggregationError(f'bad appId {value!r} (emulator: ids, or expandAppIds("*"))')
    return tuple(dict.fromkeys(values))


def _periods(ts: Any, sub: Subscription) -> tuple[str, list[int]]:
    if not isinstance(ts, dict):
        raise AggregationError("timeSeries must be an object")
    extra = set(ts) - {"period", "first", "count"}
    if extra:
        raise AggregationError(f"timeSeries {sorted(extra)} unsupported in emulator")
    period, first, count = ts.get("period"), ts.get("first"), ts.get("count")
    if period not in ("dayRange", "hourRange"):
        raise AggregationError(f"unsupported period {period!r} (emulator: dayRange, hourRange)")
    if not isinstance(first, int) or isinstance(first, bool):
        raise AggregationError(f"timeSeries.first must be epoch ms (emulator), got {first!r}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise AggregationError(f"timeSeries.count must be a positive integer, got {count!r}")
    if count > _MAX_PERIODS:
        raise AggregationError("timeSeries too long")
    if period == "hourRange":
        start = first - first % HOUR_MS  # whole-hour zones: local hours are UTC hours
        return period, [start + k * HOUR_MS for k in range(count)]
    day0 = sub.local_day_of(first)  # Pendo rounds first down to its local day
    return period, [sub.local_midnight_ms(day0 + timedelta(days=k)) for k in range(count)]


def _check_params(name: str, params: dict, sub: Subscription) -> None:
    tag_params = SOURCES_BY_NAME[name].params
    for key, value in params.items():
        if key == "appId" or (key == "blacklist" and value == "apply") or value is None:
            continue  # a null id parameter (pageId: null) means every one, as the client asks
        if key in tag_params and isinstance(value, str):
            continue  # one tag's rows (pageId: "..."): how a changed tag's history is asked
        if key == "identified" and name == "visitors":
            continue
        if key == "segmentId" and name == "visitors" and PARAMETER in sub.segment_shapes:
            _segment(sub, value)  # an unknown segment is a 400 here, before any row
            continue
        raise AggregationError(f"source parameter {key}={value!r} unsupported in emulator")


def parse_request(body: bytes | str | dict, sub: Subscription) -> Query:
    """Validate a request body and build a ``Query`` (raises ``AggregationError``)."""
    data = _load(body)
    request = data.get("request")
    if not isinstance(request, dict):
        raise AggregationError("missing request object")
    pipeline = request.get("pipeline")
    if not isinstance(pipeline, list) or not pipeline:
        raise AggregationError("missing pipeline")
    first = pipeline[0]
    if not isinstance(first, dict) or not isinstance(first.get("source"), dict):
        raise AggregationError("pipeline must start with a source")
    spec = dict(first["source"])
    ts = spec.pop("timeSeries", None)
    if len(spec) != 1:
        raise AggregationError(f"source must name exactly one source, got {sorted(spec)}")
    ((name, params),) = spec.items()
    source = SOURCES_BY_NAME.get(name)
    if source is None:
        raise AggregationError(f"unknown source: {name}")
    if params is not None and not isinstance(params, dict):
        raise AggregationError(f"parameters of source {name} must be an object or null")
    if isinstance(source, EntitySource) and source.rest is not None:
        raise AggregationError(f"unknown source: {name}")  # a REST list, not an aggregation
    params = params or {}
    _check_params(name, params, sub)
    query = Query(
        source=name,
        params=params,
        app_ids=resolve_app_ids(params.get("appId"), sub) if source.app_scoped else sub.app_ids,
        period=None,
    )
    if source.kind == "event":
        if ts is None:
            raise AggregationError("no period specified for time series source")
        query.period, query.periods = _periods(ts, sub)
    if "segmentId" in params:
        query.steps.append(_segment_step(sub, params["segmentId"]))
        query.segment_id = params["segmentId"]
    for step in pipeline[1:]:
        query.steps.append(_compile_step(step, sub))
        if isinstance(step, dict) and isinstance(step.get("segment"), dict):
            query.segment_id = step["segment"].get("id")
    return query


# --- pipeline operators -------------------------------------------------------------------
def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0)
    if isinstance(value, bool | int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def _compile_step(step: Any, sub: Subscription) -> Step:
    if not isinstance(step, dict) or len(step) != 1:
        raise AggregationError(f"each pipeline step must be an object with one operator: {step!r}")
    ((op, arg),) = step.items()
    if op == "segment" and PIPELINE in sub.segment_shapes:
        segment_id = arg.get("id") if isinstance(arg, dict) else None
        return _segment_step(sub, segment_id)
    if op in _UNSUPPORTED or op == "segment":
        raise AggregationError(f"pipeline operator {op} is unsupported in emulator")
    builder = _OPERATORS.get(op)
    if builder is None:
        raise AggregationError(f"unknown pipeline operator: {op}")
    return builder(arg)


def _field_names(arg: Any) -> bool:
    return isinstance(arg, list) and all(is_field(k) for k in arg)


def _op_identified(arg: Any) -> Step:
    if not _field_names([arg]):
        raise AggregationError(f"identified takes a field name (emulator: no !), got {arg!r}")

    def is_identified(row: dict) -> bool:
        v = get_path(row, arg)
        return bool(v) and not (isinstance(v, str) and v.startswith("_PENDO_T_"))

    return lambda rows: (r for r in rows if is_identified(r))


def _op_filter(arg: Any) -> Step:
    try:
        predicate = compile_filter(arg)
    except ExpressionError as exc:
        raise AggregationError(str(exc)) from exc
    return lambda rows: (r for r in rows if predicate(r))


def _op_sort(arg: Any) -> Step:
    if not _field_names(arg) or not arg:
        raise AggregationError(f"sort takes field names (emulator: ascending), got {arg!r}")

    def run(rows: Iterator[dict]) -> Iterator[dict]:
        return iter(sorted(rows, key=lambda r: [_sort_key(get_path(r, k)) for k in arg]))

    return run


def _segment(sub: Subscription, segment_id: Any) -> Callable[[dict], bool]:
    member = segment_filter(sub, segment_id) if isinstance(segment_id, str) else None
    if member is None:
        raise AggregationError(f"segment {segment_id!r} not found")
    return member


def _segment_step(sub: Subscription, segment_id: Any) -> Step:
    """The visitors of a segment (a ``segmentId`` parameter or a ``segment`` step)."""
    member = _segment(sub, segment_id)
    return lambda rows: (r for r in rows if member(r))


def _op_select(arg: Any) -> Step:
    if not isinstance(arg, dict) or not arg or not _field_names(list(arg.values())):
        raise AggregationError(f"select takes {{out: field}} (emulator), got {arg!r}")

    def pick(row: dict) -> dict:
        out: dict = {}
        for name, path in arg.items():
            out = set_path(out, name, get_path(row, path))
        return out

    return lambda rows: (pick(r) for r in rows)


def _op_limit(arg: Any) -> Step:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
        raise AggregationError(f"limit takes a non-negative integer, got {arg!r}")
    return lambda rows: itertools.islice(rows, arg)


def _op_count(arg: Any) -> Step:
    if arg is not None:
        raise AggregationError(f"count takes null (emulator), got {arg!r}")

    def run(rows: Iterator[dict]) -> Iterator[dict]:
        yield {"count": sum(1 for _ in rows)}

    return run


def _aggregators(fields: Any) -> list[tuple[str, str | None]]:
    """``[{"rows": {"count": null}}, {"events": {"sum": "numEvents"}}]`` -> (out, summed field
    or None to count rows)."""
    specs: list[tuple[str, str | None]] = []
    for item in fields if isinstance(fields, list) else [fields]:
        ((out, spec),) = item.items() if isinstance(item, dict) and len(item) == 1 else [("", 0)]
        if spec == {"count": None}:
            specs.append((out, None))
        elif isinstance(spec, dict) and list(spec) == ["sum"] and is_field(spec["sum"]):
            specs.append((out, spec["sum"]))
        else:
            raise AggregationError(f"bad group field {item!r} (emulator: count of null or sum)")
    return specs


def _op_group(arg: Any) -> Step:
    keys = arg.get("group") if isinstance(arg, dict) else None
    if not _field_names(keys):
        raise AggregationError(f"group takes {{group: [fields], fields: [...]}}, got {arg!r}")
    specs = _aggregators(arg.get("fields", []))

    def run(rows: Iterator[dict]) -> Iterator[dict]:
        groups: dict[tuple, tuple[list, list]] = {}
        for r in rows:
            values = [get_path(r, k) for k in keys]
            gk = tuple(_sort_key(v) for v in values)
            totals = groups.setdefault(gk, (values, [0] * len(specs)))[1]
            for j, (_, summed) in enumerate(specs):
                v = 1 if summed is None else get_path(r, summed)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    totals[j] += v
        for values, totals in groups.values():
            out: dict = {}
            for k, v in zip(keys, values, strict=True):
                out = set_path(out, k, v)
            out.update((name, total) for (name, _), total in zip(specs, totals, strict=True))
            yield out

    return run


_OPERATORS: dict[str, Callable[[Any], Step]] = {
    "identified": _op_identified,
    "filter": _op_filter,
    "sort": _op_sort,
    "limit": _op_limit,
    "select": _op_select,
    "count": _op_count,
    "group": _op_group,
}


# --- running ------------------------------------------------------------------------------
def source_rows(
    query: Query, sub: Subscription, hidden: Callable[[date], int] | None = None
) -> Iterator[dict]:
    """Rows of the query's source before the pipeline operators (shared: don't mutate).

    ``hidden(day)`` rows at the end of each app's day are left out: events Pendo has not
    processed yet (live data, see ``Faults.live_days``).
    """
    if not query.is_event:
        rows: Iterable[dict] = entity_rows(sub, query.source, query.app_ids)
        if query.identified_only:
            rows = (r for r in rows if not r["visitorId"].startswith("_PENDO_T_"))
        yield from rows
        return
    exclude = query.params.get("blacklist") == "apply"
    tag_field, tag_id = query.tag or (None, None)
    raw = SOURCES_BY_NAME[query.source].per_event
    hourly = query.period == "hourRange"
    for start in query.periods:
        day = sub.local_day_of(start)
        for app_id in query.app_ids:
            if app_id not in sub.app_ids:
                continue
            excluded = (
                {s.core.visitor_id for s in activity(sub, app_id, day) if s.core.excluded}
                if exclude
                else ()
            )
            pairs = sub.day_rows(query.source, app_id, day)
            if hidden is not None and (k := hidden(day)) > 0:
                pairs = pairs[: max(0, len(pairs) - k)]
            for hour, row in pairs:
                if tag_field is not None and row[tag_field] != tag_id:
                    continue
                if hourly:
                    if raw:
                        if not start <= row["browserTime"] < start + HOUR_MS:
                            continue
                    elif not start - HOUR_MS <= hour <= start:
                        continue
                if excluded and row["visitorId"] in excluded:
                    continue
                if hourly and not raw:
                    # A row may run on from the hour before: yield this hour's part only.
                    for part_hour, part in hour_parts(hour, row):
                        if part_hour == start:
                            yield part
                    continue
                yield row


class MemoryLimitExceeded(AggregationError):
    """The query read more source rows than ``Faults.memory_limit_rows`` allows."""


def _bounded(rows: Iterator[dict], limit: int) -> Iterator[dict]:
    for n, row in enumerate(rows, 1):
        if n > limit:
            raise MemoryLimitExceeded("Query exceeded memory limit")
        yield row


def run(
    query: Query,
    sub: Subscription,
    hidden: Callable[[date], int] | None = None,
    max_source_rows: int = 0,
) -> Iterator[dict]:
    """Result rows of a parsed query, lazily.

    ``max_source_rows`` > 0: reading more event rows than that from the source raises
    ``MemoryLimitExceeded``, as Pendo's memory limit depends on what a query reads, not on
    what it answers (a ``group`` of one huge day is one row, and still too big).
    """
    rows: Iterator[dict] = source_rows(query, sub, hidden)
    if max_source_rows > 0:
        rows = _bounded(rows, max_source_rows)
    for step in query.steps:
        rows = step(rows)
    return rows


def run_encoded(query: Query, sub: Subscription) -> Iterator[str] | None:
    """Rows already JSON-encoded for plain visitor dumps (no operators), else ``None``.

    Lets the server stream a million visitors at well over 100k rows/s.
    """
    changed = (*sub.drift, *sub.edits)
    if query.source != "visitors" or query.steps or any(d.source == "visitors" for d in changed):
        return None  # (a segmentId parameter is a step too)
    return iter_visitors_json(sub, identified_only=query.identified_only)
