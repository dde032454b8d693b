"""Injected failures and the per-fault counters that decide when they fire."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass


@dataclass
class Faults:
    """Failure knobs, read by the server on every aggregation request (change them any time).

    ``*_every = N`` fires on every Nth aggregation request (after auth) counted since that
    knob was last set to N; each knob has its own counter. When several fire on the same
    request the first of reset, timeout (then answers normally), fail, garbage, truncate
    wins.
    """

    latency_base_ms: float = 0.0  # every aggregation request sleeps this long ...
    latency_per_day_ms: float = 0.0  # ... plus this per day asked in the timeSeries
    fail_every: int = 0
    fail_status: int = 429  # 429 (with Retry-After) or 500
    retry_after_s: float = 1  # Retry-After header value in seconds (fractions allowed)
    # >0: answer 400 "Query exceeded memory limit" when an event query reads more source rows
    # than this (whatever its pipeline makes of them), or an entity query answers more rows.
    memory_limit_rows: int = 0
    timeout_every: int = 0
    timeout_sleep_s: float = 5.0  # sleep before answering (client read timeouts)
    reset_every: int = 0  # close the socket without answering (connection reset)
    truncate_every: int = 0  # 200 with a body cut off mid-JSON, then close
    garbage_every: int = 0  # 200 with a non-JSON HTML body
    wrong_timezone: str | None = None  # compute days in this zone instead of the subscription's
    auth_status: int = 401  # 401 with a short body, or 403 with an empty body (real Pendo)
    # A valid key that may not read these sources: their requests answer 403 (empty body).
    forbidden_sources: list[str] = dataclasses.field(default_factory=list)
    # Fields left out of every answered row, as real answers may lack fields the request did
    # not ask about (a real pageEvents sample has no appId).
    omit_fields: list[str] = dataclasses.field(default_factory=list)
    # REST paths (prefixes, e.g. "/api/v1/metadata/schema") this key may not read: 403.
    forbidden_paths: list[str] = dataclasses.field(default_factory=list)
    # Segments whose visitors Pendo cannot evaluate: 400 in either membership shape.
    refused_segments: list[str] = dataclasses.field(default_factory=list)
    # Requests covering more than this many days (or more than this many entity rows, for
    # entity sources) sleep ``timeout_sleep_s`` first: Pendo's answer time grows with the
    # window. 0 = off.
    slow_over_days: int = 0
    slow_over_rows: int = 0
    # Live data: days younger than this (by the server's clock, subscription time zone) are
    # still filling in. Such a day hides ``live_backlog`` of its rows minus one per aggregation
    # request that touched a young day before, so every answer for it differs from the last.
    live_days: int = 0
    live_backlog: int = 10

    def update(self, **changes: object) -> Faults:
        """Set fields by name; unknown names raise ``TypeError``."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown fault fields: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class FaultCounters:
    """Deterministic 'every Nth request' counters, one per fault knob."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, int]] = {}  # name -> (every it counted for, count)

    def fire(self, name: str, every: int) -> bool:
        if not every or every <= 0:
            return False
        with self._lock:
            counted_for, count = self._state.get(name, (every, 0))
            if counted_for != every:  # knob changed: start counting afresh
                count = 0
            count += 1
            self._state[name] = (every, count)
            return count % every == 0

    def reset(self) -> None:
        with self._lock:
            self._state.clear()
