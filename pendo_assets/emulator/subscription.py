"""The emulated Pendo subscription: configuration plus the public ground-truth data API.

Everything is derived from the configuration: the same ``Subscription`` always yields
byte-identical rows, and every (source, app, day) cell is generated on its own from a
``random.Random`` seeded by a hash of (seed, source, app, day), so one day far in the past
costs only that day.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pendo_assets.clock import Clock
from pendo_assets.settings import DEMO_HISTORY_DAYS

DEFAULT_APP_ID = -323232
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Drift:
    """Schema drift: add top-level ``field`` to every row of ``source`` on [first_day, last_day].

    ``kind`` picks the value type (``"int"`` or ``"str"``); two drifts on the same field with
    different kinds over different days let tests check type widening. Entity sources get the
    field on every row regardless of days.
    """

    source: str
    field: str
    first_day: date
    last_day: date
    kind: Literal["int", "str"] = "int"


@dataclass(frozen=True)
class EntityEdit:
    """Entities edited since the base data: the knob for incremental refreshes.

    About ``share`` of ``source``'s rows (picked by a hash of ``salt`` and the row's position)
    get ``field`` (a dotted path, e.g. ``metadata.custom.plan``) set to ``value`` and
    ``metadata.auto.lastupdated`` set to ``at_ms``, as Pendo does on a metadata update; with
    ``delete`` they disappear instead. Swap a server's subscription for one with more edits to
    model changes between two loads.
    """

    source: str
    share: float
    at_ms: int
    field: str = "metadata.custom.plan"
    value: Any = "enterprise"
    delete: bool = False
    salt: int = 0


@dataclass(frozen=True)
class TagChange:
    """A page, feature or track type created, edited or deleted after the base data, which
    Pendo applies retroactively: its event rows change on *every* stored day.

    ``source`` is the tag entity (``pages``, ``features``, ``trackTypes``); ``index`` picks the
    existing tag an edit or delete applies to (of ``app_id``, default the first app). A created
    tag gets rows from about ``share`` of each day's sessions; an edit widens the tag's rules:
    its rows count one more event and about ``share`` of the other sessions gain a row. Both
    move ``lastUpdatedAt`` to ``at_ms``. With ``dirty`` Pendo is still reprocessing (newest days
    first): the tag shows ``dirty: true`` and only the newer half of the history has its new
    rows yet. A deleted tag disappears, and so do its rows.
    """

    source: Literal["pages", "features", "trackTypes"]
    action: Literal["create", "edit", "delete"]
    at_ms: int
    index: int = 0
    app_id: int | None = None
    share: float = 0.3
    dirty: bool = False
    salt: int = 0


@dataclass(frozen=True)
class Subscription:
    """Configuration of one emulated subscription (all data is a pure function of it)."""

    first_day: date
    last_day: date  # inclusive
    seed: int = 7
    timezone: str = "America/New_York"
    app_ids: tuple[int, ...] = (DEFAULT_APP_ID, 5629499534213120)
    n_accounts: int = 50
    n_visitors: int = 600
    anonymous_share: float = 0.2
    daily_active_share: float = 0.35
    scale: float = 1.0  # multiplies accounts, visitors (and so event volume)
    n_pages: int = 30  # per app
    n_features: int = 40  # per app
    n_guides: int = 6  # per app
    n_track_types: int = 5  # per app
    drift: tuple[Drift, ...] = ()
    # Raw events whose browser clock is off: the first ``stray_raw_events`` guide and poll
    # events of each app and day carry a browserTime ``stray_shift_ms`` before the day's local
    # midnight, outside the day Pendo files (and returns) them under.
    stray_raw_events: int = 0
    stray_shift_ms: int = 3 * 3_600_000
    # Raw events at the very edges of their local day (DST days included): the first
    # ``edge_raw_events`` guide and poll events of each app and day are sent on the day's first
    # milliseconds, the last ones received (guideTimestamp) on its last. ``midnight_raw_events``
    # more are sent just before the next midnight and received just after it. Pendo files all
    # of them under that day.
    edge_raw_events: int = 0
    midnight_raw_events: int = 0
    edits: tuple[EntityEdit, ...] = ()
    # How this Pendo answers a segment's visitors: a `segmentId` parameter on the visitors
    # source ("parameter"), a `{"segment": {"id": ...}}` pipeline step ("pipeline"), or both.
    # The other shape answers 400, as Pendo does for what it cannot run.
    segment_shapes: tuple[str, ...] = ("parameter", "pipeline")
    # REST lists (GET /api/v1/segment) as a bare array, or wrapped in {"results": [...]}.
    rest_lists_wrapped: bool = False
    tag_changes: tuple[TagChange, ...] = ()
    # Raw guide/poll events sent twice, identical in every field (Pendo counts both): the
    # first ``duplicate_raw_events`` of each app and day.
    duplicate_raw_events: int = 0
    # A guide event type Pendo may start sending (one the marts have no column for): when set,
    # about one guide step in ten seen also gets an event of this type. Unset, no random number
    # is drawn for it, so the generated data stays the same.
    unknown_guide_event_type: str | None = None

    def __post_init__(self) -> None:
        # Lists would make the dataclass unhashable (it keys the per-day caches).
        object.__setattr__(self, "drift", tuple(self.drift))
        object.__setattr__(self, "edits", tuple(self.edits))
        object.__setattr__(self, "tag_changes", tuple(self.tag_changes))
        object.__setattr__(self, "app_ids", tuple(self.app_ids))
        object.__setattr__(self, "segment_shapes", tuple(self.segment_shapes))
        if self.first_day > self.last_day:
            raise ValueError("first_day is after last_day")
        ZoneInfo(self.timezone)  # fail early on a bad zone name

    @classmethod
    def demo(cls, today: date | None = None, **overrides: object) -> Subscription:
        """The demo subscription: DEMO_HISTORY_DAYS of history up to ``today`` (default: the
        clock's), the days the demo settings start from."""

        today = today or Clock.from_env().today()
        kwargs: dict = {"first_day": today - timedelta(days=DEMO_HISTORY_DAYS), "last_day": today}
        kwargs.update(overrides)
        return cls(**kwargs)

    def replace(self, **changes: object) -> Subscription:
        return dataclasses.replace(self, **changes)

    # --- sizes and time -----------------------------------------------------------------
    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def visitor_count(self) -> int:
        return max(1, round(self.n_visitors * self.scale))

    @cached_property
    def account_count(self) -> int:
        return max(1, round(self.n_accounts * self.scale))

    def local_midnight_ms(self, day: date) -> int:
        """Local midnight of ``day`` in the subscription time zone, as UTC epoch ms."""
        return _local_midnight_ms(self.timezone, day)

    def local_day_of(self, ms: int) -> date:
        """The subscription-local date containing the instant ``ms``."""
        return datetime.fromtimestamp(ms / 1000, self.tz).date()

    def day_hours(self, day: date) -> int:
        """Length of a local day in hours (23 or 25 on DST changes)."""
        start = self.local_midnight_ms(day)
        return (self.local_midnight_ms(day + timedelta(days=1)) - start) // HOUR_MS

    @cached_property
    def history_start_ms(self) -> int:
        return self.local_midnight_ms(self.first_day)

    @cached_property
    def history_end_ms(self) -> int:
        return self.local_midnight_ms(self.last_day + timedelta(days=1))

    # --- public data API ----------------------------------------------------------------
    def entities(self, source_name: str) -> list[dict]:
        """All rows of an entity source (accounts, visitors, pages, features, guides, ...)."""
        from pendo_assets.emulator import entities

        return [dict(r) for r in entities.entity_rows(self, source_name)]

    def iter_visitors(self) -> Iterator[dict]:
        """Visitors one at a time: a million visitors never exist as one list."""
        from pendo_assets.emulator import entities

        return entities.iter_visitors(self)

    def event_rows(self, source_name: str, app_id: int, local_day: date) -> list[dict]:
        """Pendo-shaped rows of an event source for one app and one subscription-local day."""
        return [dict(row) for _, row in self.day_rows(source_name, app_id, local_day)]

    def day_rows(self, source_name: str, app_id: int, local_day: date) -> list[tuple[int, dict]]:
        """(hour start ms, row) pairs for one day; hourRange answers are these, by hour.

        The rows are cached and shared: callers must not mutate them.
        """
        from pendo_assets.emulator import events

        return events.day_rows(self, source_name, app_id, local_day)


@functools.lru_cache(maxsize=4096)
def _local_midnight_ms(timezone: str, day: date) -> int:
    midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))
    return int(midnight.timestamp()) * 1000


__all__ = [
    "DAY_MS",
    "DEFAULT_APP_ID",
    "HOUR_MS",
    "Drift",
    "EntityEdit",
    "Subscription",
    "TagChange",
]
