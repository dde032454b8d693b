"""Segments (``GET /api/v1/segment``) and their visitors, and the metadata schemas
(``GET /api/v1/metadata/schema/{account,visitor}``) of the emulated subscription.

A segment is a saved visitor filter: its ``pipeline`` holds filter steps in the grammar the
emulator evaluates (``expressions.compile_filter``), and its members are the visitors that pass
them all, asked as ``visitors: {"segmentId": id}`` or a ``{"segment": {"id": id}}`` step
(``Subscription.segment_shapes`` says which the emulated Pendo answers).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from pendo_assets.emulator.entities import _user, account_ids, app_group_name, iter_visitors
from pendo_assets.emulator.expressions import compile_filter
from pendo_assets.emulator.ids import pendo_id, rng_for
from pendo_assets.emulator.subscription import DAY_MS

if TYPE_CHECKING:
    from pendo_assets.emulator.subscription import Subscription

# The shapes of a segment-membership request (``Subscription.segment_shapes``).
PARAMETER, PIPELINE = "parameter", "pipeline"


def _definitions(sub: Subscription) -> list[tuple[str, list[str]]]:
    """(name, filter expressions) of each segment; the last one matches nobody."""
    first_account = account_ids(sub)[0]
    recent = sub.history_end_ms - 30 * DAY_MS
    return [
        ("Admins", ['metadata.custom.role == "admin"']),
        ("Billing contacts", ['metadata.custom.role == "billing"']),
        ("Largest customer", [f'metadata.auto.accountid == "{first_account}"']),
        ("Active last 30 days", [f"metadata.auto.lastvisit >= {recent}"]),
        (
            "Recent admins",
            ['metadata.custom.role == "admin"', f"metadata.auto.lastvisit >= {recent}"],
        ),
        ("Nobody yet", ['metadata.custom.role == "astronaut"']),
    ]


@functools.lru_cache(maxsize=64)
def segments(sub: Subscription) -> tuple[dict, ...]:
    rows = []
    for i, (name, filters) in enumerate(_definitions(sub)):
        rng = rng_for(sub.seed, "Segment", i)
        created = sub.history_start_ms - rng.randrange(DAY_MS, 300 * DAY_MS)
        fields = sorted({f.split()[0] for f in filters})
        rows.append(
            {
                "id": pendo_id(sub.seed, "Segment", i),
                "name": name,
                "kind": "Segment",
                "shared": i % 3 != 2,
                "isFocusGroup": False,
                "createdByUser": _user(rng.randrange(3)),
                "createdAt": created,
                "lastUpdatedByUser": _user(rng.randrange(3)),
                "lastUpdatedAt": created + rng.randrange(DAY_MS, 60 * DAY_MS),
                "definition": {
                    "type": "and",
                    "rules": [{"kind": "expression", "expression": f} for f in filters],
                },
                "pipeline": [{"source": {"visitors": None}}, *({"filter": f} for f in filters)],
                "dependentMetadata": fields,
            }
        )
    return tuple(rows)


@functools.lru_cache(maxsize=64)
def _filters(sub: Subscription) -> dict[str, list[Callable[[dict], bool]]]:
    return {
        seg["id"]: [compile_filter(step["filter"]) for step in seg["pipeline"] if "filter" in step]
        for seg in segments(sub)
    }


def segment_filter(sub: Subscription, segment_id: str) -> Callable[[dict], bool] | None:
    """``row -> is the visitor in the segment``, or None for an unknown segment."""
    predicates = _filters(sub).get(segment_id)
    if predicates is None:
        return None
    return lambda row: all(p(row) for p in predicates)


def segment_visitors(sub: Subscription, segment_id: str) -> set[str]:
    """Ground truth for tests: the ids of the segment's visitors."""
    member = segment_filter(sub, segment_id)
    if member is None:
        raise KeyError(segment_id)
    return {v["visitorId"] for v in iter_visitors(sub) if member(v)}


def _field(kind: str, display: str) -> dict:
    # The shape tap-pendo reads (`Type`), with the other attributes Pendo sends beside it.
    return {
        "Type": kind,
        "DisplayName": display,
        "ElementType": "",
        "ElementFormat": "",
        "Dirty": False,
        "IsHidden": False,
        "IsDeleted": False,
        "IsCalculated": False,
        "IsPerApp": False,
    }


def metadata_schema(sub: Subscription, kind: str) -> dict | None:
    """Pendo's declared metadata types of ``account`` or ``visitor`` (None: no such kind)."""
    auto_times = {
        "firstvisit": _field("time", "First Visit"),
        "lastvisit": _field("time", "Last Visit"),
        "lastupdated": _field("time", "Last Updated"),
    }
    if kind == "account":
        return {
            "agent": {"name": _field("string", "Name"), "industry": _field("string", "Industry")},
            "auto": {
                "id": _field("string", "Account ID"),
                "idhash": _field("integer", "ID Hash"),
                **auto_times,
            },
            "custom": {
                "plan": _field("string", "Plan"),
                "seats": _field("number", "Seats"),
                "region": _field("string", "Region"),
                "renewaldate": _field("time", "Renewal Date"),
            },
            "salesforce": {"accountid": _field("string", "Salesforce Account ID")},
        }
    if kind == "visitor":
        return {
            "agent": {
                "email": _field("string", "Email"),
                "ipaddress": _field("string", "IP Address"),
                "language": _field("string", "Language"),
            },
            "auto": {
                "accountid": _field("string", "Account ID"),
                "accountids": _field("list", "Account IDs"),
                "id": _field("string", "Visitor ID"),
                "idhash": _field("integer", "ID Hash"),
                "nid": _field("integer", "Numeric ID"),
                "lastbrowsername": _field("string", "Browser"),
                "lastbrowserversion": _field("string", "Browser Version"),
                "lastoperatingsystem": _field("string", "Operating System"),
                "lastservername": _field("string", "Server"),
                "lastuseragent": _field("string", "User Agent"),
                **auto_times,
            },
            **{
                app_group_name(app): {
                    "firstvisit": _field("time", "First Visit"),
                    "lastvisit": _field("time", "Last Visit"),
                }
                for app in sub.app_ids
            },
            "custom": {
                "role": _field("string", "Role"),
                "beta_opt_in": _field("boolean", "Beta Opt-in"),
                "internal": _field("boolean", "Internal"),
                # Declared but not typed: left to inference, as Pendo's "" type is.
                "notes": _field("", "Notes"),
            },
        }
    return None
