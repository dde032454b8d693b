"""Aggregation request bodies (Pendo's pipeline grammar), built from the catalog.

Only this module knows how a request is spelled: the envelope, ``timeSeries``, how apps are
selected and how entity tables are paged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pendo_assets.catalog import Source

ALL_APPS_EXPR = 'expandAppIds("*")'


# Pendo's ETL guidance: at most 30 days per aggregation call.
MAX_DAYS_PER_REQUEST = 30


@dataclass(frozen=True)
class Scope:
    """Which slice of the subscription a request covers (derived from the settings)."""

    app_ids: tuple[int, ...] | None  # None = every app
    include_anonymous: bool
    apply_exclude_list: bool


def app_param(app_ids: tuple[int, ...] | None):
    # Without appId Pendo answers for the default app only; ask for all apps explicitly.
    if app_ids is None:
        return ALL_APPS_EXPR
    return app_ids[0] if len(app_ids) == 1 else list(app_ids)


def envelope(pipeline: list[dict], request_id: str) -> dict:
    return {
        "response": {"mimeType": "application/json"},
        "request": {"requestId": request_id, "pipeline": pipeline},
    }


def source_params(source: Source, scope: Scope) -> dict | None:
    params = dict(source.params)
    if source.app_scoped:
        params["appId"] = app_param(scope.app_ids)
    if source.takes_exclude_list and scope.apply_exclude_list:
        params["blacklist"] = "apply"
    if source.name == "visitors" and not scope.include_anonymous:
        params["identified"] = True
    return params or None


def _anonymous_filter(source: Source, scope: Scope) -> list[dict]:
    # `identified: "visitorId"` drops anonymous (_PENDO_T_) visitors' rows.
    if scope.include_anonymous or source.kind != "event":
        return []
    return [{"identified": "visitorId"}]


def event_pipeline(
    source: Source,
    scope: Scope,
    first_ms: int,
    count: int,
    period: str = "dayRange",
) -> list[dict]:
    """Rows of an event source for ``count`` periods starting at ``first_ms``."""
    return [
        {
            "source": {
                source.name: source_params(source, scope),
                "timeSeries": {"period": period, "first": first_ms, "count": count},
            }
        },
        *_anonymous_filter(source, scope),
    ]


def event_request(
    source: Source, scope: Scope, first_ms: int, count: int, period: str = "dayRange"
) -> dict:
    rid = f"pendo-assets:{source.name}:{period}:{first_ms}:{count}"
    return envelope(event_pipeline(source, scope, first_ms, count, period), rid)


def totals_request(
    source: Source, scope: Scope, first_ms: int, count: int, by: tuple[str, ...] = ()
) -> dict:
    """Pendo's own row count (and sum of numEvents) of an event source, for reconciliation.

    Aggregated sources: one row per day, ``{"day", "rows", "numEvents"}``, from a ``group`` on
    ``day`` over ``count`` days. Per-event sources have no ``day`` field to group on (they are
    timed by ``browserTime``): ``{"count": N}`` over the ``count`` days.
    The rows are filtered exactly as the loading request filters them (apps, Exclude List,
    anonymous visitors), so the numbers compare with what landed. ``by`` adds fields to group
    on besides the day (the tag id: totals per day and tag).
    """
    pipeline = event_pipeline(source, scope, first_ms, count)
    if source.per_event:
        pipeline.append({"count": None})
    else:
        pipeline.append(
            {
                "group": {
                    "group": ["day", *by],
                    "fields": [
                        {"rows": {"count": None}},
                        {"numEvents": {"sum": "numEvents"}},
                    ],
                }
            }
        )
    by_what = "".join(f":by:{f}" for f in by)
    return envelope(pipeline, f"pendo-assets:totals:{source.name}:{first_ms}:{count}{by_what}")


def entity_request(
    source: Source,
    scope: Scope,
    after_id: str | None = None,
    limit: int | None = None,
    since_ms: int | None = None,
) -> dict:
    """All rows of an entity source; with ``limit``, one page sorted by id after ``after_id``;
    with ``since_ms``, only rows whose ``updated_field`` is at or after it (incremental).

    Pendo has no cursor: paging is sort + filter on the id + limit, which is what Pendo's
    own ETL examples and maintained taps do for large visitor tables.
    """
    pipeline: list[dict] = [{"source": {source.name: source_params(source, scope)}}]
    if since_ms is not None:
        if source.updated_field is None:
            raise ValueError(f"{source.name} has no updated field to filter on")
        pipeline.append({"filter": f"{source.updated_field} >= {int(since_ms)}"})
    if limit is not None:
        id_field = source.id_field
        if after_id is not None:
            pipeline.append({"filter": f"{id_field} > {_quote(after_id)}"})
        pipeline.append({"sort": [id_field]})
        pipeline.append({"limit": limit})
    suffix = f":{after_id}" if after_id is not None else ""
    if since_ms is not None:
        suffix += f":since:{int(since_ms)}"
    return envelope(pipeline, f"pendo-assets:{source.name}{suffix}")


def _quote(value: str) -> str:
    # Pendo's expression language takes "..." strings with backslash escapes, like JSON.
    return json.dumps(value)


# The two ways Pendo has been seen to answer a segment's visitors: a `segmentId` parameter on
# the `visitors` source, and a `segment` pipeline step after it. Neither is verified; the
# client asks one and, on a 400, the other.
SEGMENT_PARAMETER = "segmentId parameter"
SEGMENT_STEP = "segment pipeline step"
SEGMENT_SHAPES = (SEGMENT_PARAMETER, SEGMENT_STEP)


def segment_visitors_request(
    segment_id: str,
    shape: str,
    scope: Scope,
    visitors: Source,
    after_id: str | None = None,
    limit: int | None = None,
) -> dict:
    """The visitor ids of one segment, one page sorted by id after ``after_id``."""
    params = source_params(visitors, scope) or {}
    pipeline: list[dict]
    if shape == SEGMENT_PARAMETER:
        pipeline = [{"source": {visitors.name: {**params, "segmentId": segment_id}}}]
    elif shape == SEGMENT_STEP:
        pipeline = [{"source": {visitors.name: params or None}}, {"segment": {"id": segment_id}}]
    else:
        raise ValueError(f"unknown segment membership shape {shape!r}")
    id_field = visitors.id_field
    pipeline.append({"select": {id_field: id_field}})
    if limit is not None:
        if after_id is not None:
            pipeline.append({"filter": f"{id_field} > {_quote(after_id)}"})
        pipeline.append({"sort": [id_field]})
        pipeline.append({"limit": limit})
    suffix = f":{after_id}" if after_id is not None else ""
    return envelope(pipeline, f"pendo-assets:segment:{segment_id}{suffix}")
