"""Segment membership: the visitor ids of each segment, asked from Pendo segment by segment.

Segments are not an aggregation source; their visitors are, in one of two shapes Pendo has been
seen to answer (``queries.SEGMENT_SHAPES``). The shape that worked last is asked first; a 400
tries the other. A segment that neither answers fails alone, with both of Pendo's messages, and
the others still load. Plain Python; no Dagster.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import pyarrow as pa

from pendo_assets.catalog import VARCHAR, Members, Source
from pendo_assets.pendo import queries
from pendo_assets.pendo.client import (
    PendoAuthError,
    PendoClient,
    PendoError,
    PendoMemoryLimitError,
    PendoQueryError,
)
from pendo_assets.pendo.fetch import FetchOptions
from pendo_assets.pendo.tables import TypedTable, parse_batch


@dataclass(frozen=True)
class SegmentResult:
    segment_id: str
    table: TypedTable | None  # (parent_key, member_key) rows; None when the segment failed
    shape: str | None = None  # the membership shape Pendo answered
    error: str | None = None


class _Shapes:
    """The shape to ask first, shared by the segments of one load."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order = list(queries.SEGMENT_SHAPES)

    def order(self) -> list[str]:
        with self._lock:
            return list(self._order)

    def worked(self, shape: str) -> None:
        with self._lock:
            self._order.remove(shape)
            self._order.insert(0, shape)


def _pages(
    client: PendoClient, segment_id: str, shape: str, visitors: Source, opts: FetchOptions
) -> list[str]:
    ids: list[str] = []
    after: str | None = None
    size = opts.entity_page_size
    page = 0
    while True:
        body = queries.segment_visitors_request(
            segment_id, shape, opts.scope, visitors, after, size
        )
        batch = client.aggregate(
            body, f"visitors of segment {segment_id} (page {page + 1})", parse_batch
        )
        got = [v for v in batch.values(visitors.id_field).to_pylist() if v is not None]
        ids.extend(str(v) for v in got)
        if len(batch) < size:
            return ids
        last = str(got[-1]) if got else None
        if last is None or (after is not None and last <= after):
            raise PendoError(
                f"Pendo returned the visitors of segment {segment_id} out of id order while "
                "paging; cannot page safely"
            )
        after, page = last, page + 1


def _one(
    client: PendoClient,
    segment_id: str,
    members: Members,
    visitors: Source,
    opts: FetchOptions,
    shapes: _Shapes,
) -> SegmentResult:
    refused: list[str] = []
    for shape in shapes.order():
        try:
            ids = _pages(client, segment_id, shape, visitors, opts)
        except PendoAuthError:
            raise
        except PendoQueryError as exc:
            if exc.status != 400 or isinstance(exc, PendoMemoryLimitError):
                return SegmentResult(segment_id, None, error=str(exc))
            refused.append(f"as a {shape}: {exc.pendo_message or exc}")
            continue
        except PendoError as exc:
            return SegmentResult(segment_id, None, error=str(exc))
        shapes.worked(shape)
        unique = sorted(set(ids))
        table = pa.table(
            {
                members.parent_key: pa.array([segment_id] * len(unique), pa.string()),
                members.member_key: pa.array(unique, pa.string()),
            }
        )
        types = {members.parent_key: VARCHAR, members.member_key: VARCHAR}
        return SegmentResult(segment_id, TypedTable(table, types), shape)
    return SegmentResult(
        segment_id,
        None,
        error=f"Pendo answered 400 to the visitors of segment {segment_id} asked both ways ("
        + "; ".join(refused)
        + "). Its other segments were loaded; check the segment in Pendo (Segments), or leave "
        "it out with PENDO_SEGMENTS.",
    )


def fetch_segment_visitors(
    client: PendoClient,
    segment_ids: list[str],
    members: Members,
    visitors: Source,
    opts: FetchOptions,
) -> Iterator[SegmentResult]:
    """Each segment's visitors (or why not), as they come; concurrent under the client's
    bound."""
    if not segment_ids:
        return
    shapes = _Shapes()
    with ThreadPoolExecutor(
        max_workers=max(1, min(opts.max_concurrency, len(segment_ids))),
        thread_name_prefix="segments",
    ) as pool:
        futures = [
            pool.submit(_one, client, sid, members, visitors, opts, shapes) for sid in segment_ids
        ]
        for future in as_completed(futures):
            yield future.result()
