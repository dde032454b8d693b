"""Thread-safe request statistics of an emulator server."""

from __future__ import annotations

import threading
from collections import Counter


class Stats:
    """Counters updated by handler threads; read them via attributes or ``snapshot()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0  # API requests, any outcome (all are aggregation requests)
            self.aggregation_requests = 0
            self.by_source: Counter[str] = Counter()
            # Requests for one tag's rows (a retroactive tag change being repaired), by source,
            # and the days they asked.
            self.tag_requests: Counter[str] = Counter()
            self.tag_days: Counter[str] = Counter()
            self.days_asked: Counter[str] = Counter()
            self.by_status: Counter[int] = Counter()
            self.in_flight = 0
            self.max_in_flight = 0
            self.response_bytes = 0  # body bytes sent
            self.rows = 0  # result rows streamed
            self.connections = 0  # TCP connections accepted (keep-alive reuses them)
            self.latency_s = 0.0  # modelled Pendo time (latency knobs), summed over requests
            self.latency_by_source: Counter[str] = Counter()  # the same, per source
            # Time aggregation requests were open here (latency, building and sending the
            # answer), summed: Pendo's time as the client saw it.
            self.busy_s = 0.0
            # (opened, closed, source, modelled seconds) of every aggregation request, on this
            # machine's monotonic clock (shared by its processes): when requests were in flight.
            self.timeline: list[tuple[float, float, str | None, float]] = []

    def begin(self) -> None:
        with self._lock:
            self.requests += 1
            self.aggregation_requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def connection(self) -> None:
        with self._lock:
            self.connections += 1

    def end(
        self, started: float, ended: float, source: str | None = None, model_s: float = 0.0
    ) -> None:
        with self._lock:
            self.in_flight -= 1
            self.busy_s += ended - started
            self.timeline.append((started, ended, source, model_s))

    def waited(self, seconds: float, source: str | None = None) -> None:
        with self._lock:
            self.latency_s += seconds
            if source is not None:
                self.latency_by_source[source] += seconds

    def source(self, name: str, days: float = 0.0, tagged: bool = False) -> None:
        with self._lock:
            self.by_source[name] += 1
            self.days_asked[name] += days
            if tagged:
                self.tag_requests[name] += 1
                self.tag_days[name] += days

    def status(self, code: int) -> None:
        with self._lock:
            self.by_status[code] += 1

    def sent(self, n_bytes: int, n_rows: int = 0) -> None:
        with self._lock:
            self.response_bytes += n_bytes
            self.rows += n_rows

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "aggregation_requests": self.aggregation_requests,
                "by_source": dict(self.by_source),
                "days_asked": dict(self.days_asked),
                "tag_requests": dict(self.tag_requests),
                "tag_days": dict(self.tag_days),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "response_bytes": self.response_bytes,
                "rows": self.rows,
                "connections": self.connections,
                "latency_s": round(self.latency_s, 3),
                "latency_by_source": {k: round(v, 3) for k, v in self.latency_by_source.items()},
                "busy_s": round(self.busy_s, 3),
                "timeline": [(round(a, 4), round(b, 4), s, m) for a, b, s, m in self.timeline],
            }
