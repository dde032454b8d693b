"""HTTP client for Pendo's Aggregation API: retries, a bound on requests in flight, streaming
parses and request/byte/row accounting. Plain Python; no Dagster.

Retries live here rather than in urllib3's ``Retry`` because a Pendo answer can also fail
*while its body streams* (a reset or a cut-off body after a 200), which only the code that
parses the body can see; one loop covers status, connection and body failures alike.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from pendo_assets.pendo.tables import parse_body_rows as parse_rows

AGGREGATION_PATH = "/api/v1/aggregation"
MEMORY_LIMIT_TEXT = "exceeded memory limit"


class PendoError(RuntimeError):
    """Pendo refused or failed a request; the message says what to do."""


class PendoAuthError(PendoError):
    """The key itself is refused: every request of the run would fail the same way."""


class PendoAccessError(PendoError):
    """The key works but may not read this source (403 after other requests succeeded)."""

    def __init__(self, message: str, source: str):
        super().__init__(message)
        self.source = source


class PendoQueryError(PendoError):
    """Pendo answered 400: the request itself is wrong (message is Pendo's)."""

    def __init__(self, message: str, status: int, pendo_message: str):
        super().__init__(message)
        self.status = status
        self.pendo_message = pendo_message


class PendoMemoryLimitError(PendoQueryError):
    """Pendo's per-query memory limit: ask again for a smaller window."""


class PendoUnavailableError(PendoError):
    """Retries were exhausted on 429/5xx/timeouts/resets/broken bodies."""


class PendoTimeoutError(PendoUnavailableError):
    """Pendo did not answer in time and the caller asked to split instead of retrying."""


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    bytes: int = 0
    rows: int = 0
    max_in_flight: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class _Slots:
    """At most ``n`` requests open at once; a freed slot goes to the waiting request with the
    lowest priority value (requests of equal priority in the order they came).

    An event load asks ranked by its source (``PendoClient.ranked``), so sources finish one
    after another and each is written while the next still loads; reconciliation totals asked
    ahead of the checks ask in the background, so they only take slots no load wants: the
    loads, which every check waits for, finish first, and the totals fill the rest.
    """

    def __init__(self, n: int):
        self._n = n
        self._used = 0
        self._waiting: list[tuple[tuple, int, threading.Event]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """How many requests may be open at once."""
        return self._n

    @contextmanager
    def hold(self, priority: tuple = (0,)) -> Iterator[None]:
        with self._lock:
            if self._used < self._n:  # a free slot means nobody waits
                self._used += 1
                granted = None
            else:
                granted = threading.Event()
                entry = (priority, next(self._order), granted)
                heapq.heappush(self._waiting, entry)
        if granted is not None:
            try:
                granted.wait()
            except BaseException:
                with self._lock:
                    if granted.is_set():  # handed over meanwhile: pass it on
                        self._release()
                    else:
                        self._waiting.remove(entry)
                        heapq.heapify(self._waiting)
                raise
        try:
            yield
        finally:
            with self._lock:
                self._release()

    def _release(self) -> None:
        """Hand the slot straight to the first in line, waking that thread only: waking every
        waiter to let them race for it cost tens of milliseconds per request under the GIL."""
        if self._waiting:
            heapq.heappop(self._waiting)[2].set()
        else:
            self._used -= 1


class _Retryable(Exception):
    def __init__(self, status: str, retry_after: float | None = None, timeout: bool = False):
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after
        self.timeout = timeout  # no answer in time (client read timeout or Pendo's 408)


class PendoClient:
    """Thread-safe; share one per process so the in-flight bound holds across all work."""

    def __init__(
        self,
        base_url: str,
        integration_key: str,
        *,
        timeout_s: float,
        max_retries: int,
        max_concurrency: int,
        backoff_base_s: float,
        backoff_cap_s: float = 60.0,
    ):
        if not integration_key:
            raise PendoAuthError(
                "PENDO_INTEGRATION_KEY is empty: set it to an integration key of your Pendo "
                "subscription (Settings > Integrations > Integration Keys), or unset it to run "
                "the demo on the embedded emulator"
            )
        self.base_url = base_url.rstrip("/")
        self.host = self.base_url.split("://", 1)[-1].split("/", 1)[0]
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._key = integration_key
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_concurrency + 2)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._slots = _Slots(max_concurrency)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.stats = ClientStats()
        # The same counters per Pendo source, for sources fetched at once through this client.
        self.source_stats: dict[str, ClientStats] = {}
        self._current = threading.local()  # the source of the request this thread is sending
        # Until one request has been accepted, send one at a time: a wrong key then costs a
        # single request instead of one per worker thread.
        self._verified = threading.Event()
        self._first = threading.Lock()
        self._auth_error: PendoAuthError | None = None

    def __repr__(self) -> str:  # never show the key
        return f"PendoClient({self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    # -- public ---------------------------------------------------------------------------
    def aggregate(
        self,
        body: dict,
        what: str,
        parse: Callable[[bytes], Any] | None = None,
        *,
        split_on_timeout: bool = False,
    ):
        """Run one aggregation and return its ``results`` rows.

        ``what`` names the request in errors ("pageEvents for 2026-10-01"). ``parse`` turns the
        whole body (one day or one page, so bounded) into the result, e.g. a columnar batch;
        it raises ``ValueError`` on a body that is not the JSON Pendo sends, which is retried.
        The default returns the rows as dicts. With ``split_on_timeout`` a timed-out request is
        not retried as it is: ``PendoTimeoutError`` lets the caller ask for less (Pendo's
        answer time grows with the window, so the same request would time out again).
        """
        parse = parse or parse_rows
        if self._auth_error is not None:
            raise self._auth_error
        if self._verified.is_set():
            return self._with_retries(body, what, parse, split_on_timeout)
        with self._first:
            if self._auth_error is not None:
                raise self._auth_error
            if not self._verified.is_set():
                rows = self._with_retries(body, what, parse, split_on_timeout)
                self._verified.set()
                return rows
        return self.aggregate(body, what, parse, split_on_timeout=split_on_timeout)

    def get(self, path: str, what: str, source: str, parse: Callable[[bytes], Any]):
        """GET one of Pendo's REST endpoints (``/api/v1/segment``, the metadata schema), with
        the same key header, bound, retries and accounting as aggregations (under ``source``).

        A refusal (401/403) after the key has been accepted raises ``PendoAccessError``: REST
        endpoints may be closed to a key that reads aggregations. Before that it condemns the
        key, as for aggregations (so ask a REST endpoint after an aggregation when a refusal
        must not stop the run).
        """
        if self._auth_error is not None:
            raise self._auth_error
        rows = self._with_retries({}, what, parse, False, rest=(path, source))
        self._verified.set()
        return rows

    # -- internals ------------------------------------------------------------------------
    def _with_retries(
        self,
        body: dict,
        what: str,
        parse: Callable[[bytes], Any],
        split_on_timeout: bool,
        rest: tuple[str, str] | None = None,
    ):
        last = ""
        self._current.stats = self._stats_of(rest[1] if rest else _source_name(body))
        for attempt in range(self.max_retries + 1):
            try:
                return self._once(body, what, parse, rest)
            except _Retryable as exc:
                last = exc.status
                if split_on_timeout and exc.timeout:
                    raise PendoTimeoutError(
                        f"Pendo did not answer {what} within {self.timeout_s:g} s "
                        "(PENDO_REQUEST_TIMEOUT_S)"
                    ) from None
                if attempt == self.max_retries:
                    break
                delay = min(self.backoff_cap_s, self.backoff_base_s * 2**attempt)
                delay = delay * (0.5 + random.random() / 2)
                if exc.retry_after is not None:
                    delay = min(max(delay, exc.retry_after), max(self.backoff_cap_s, 1.0))
                with self._lock:
                    for st in self._counted():
                        st.retries += 1
                time.sleep(delay)
        raise PendoUnavailableError(
            f"Pendo did not answer {what} after {self.max_retries + 1} attempts "
            f"(last status: {last}) at {self.host}. Pendo may be degraded; re-run later, or "
            "raise PENDO_MAX_RETRIES / PENDO_REQUEST_TIMEOUT_S."
        )

    def _once(
        self, body: dict, what: str, parse: Callable[[bytes], Any], rest: tuple | None = None
    ):
        headers = {
            "X-Pendo-Integration-Key": self._key,
            "Content-Type": "application/json",
            "Accept-Encoding": "gzip",
        }
        with self._slots.hold(getattr(self._current, "priority", (0,))):
            with self._lock:
                self._in_flight += 1
                for st in self._counted():
                    st.requests += 1
                    st.max_in_flight = max(st.max_in_flight, self._in_flight)
            try:
                status, data = self._send(headers, body, what, rest)
            finally:
                with self._lock:
                    self._in_flight -= 1
        # Parsed once the slot is free: the bound is on requests open at Pendo, and the next
        # request need not wait while this answer becomes a table.
        try:
            rows = parse(data)
        except ValueError as exc:
            self._count_bytes(len(data))
            raise _Retryable(
                f"HTTP {status} with a cut-off or non-JSON body ({str(exc)[:200]})"
            ) from None
        with self._lock:
            for st in self._counted():
                st.bytes += len(data)
                st.rows += len(rows)
        return rows

    def _send(
        self, headers: dict, body: dict, what: str, rest: tuple[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One request (a POST aggregation, or a GET of ``rest`` = (path, source)): its status
        and whole body, or the error it is."""
        timeout = (30, self.timeout_s)
        try:
            if rest is None:
                resp = self._session.post(
                    self.base_url + AGGREGATION_PATH,
                    json=body,
                    headers=headers,
                    timeout=timeout,
                    stream=True,
                )
            else:
                headers = {k: v for k, v in headers.items() if k != "Content-Type"}
                resp = self._session.get(
                    self.base_url + rest[0], headers=headers, timeout=timeout, stream=True
                )
        except requests.Timeout:
            raise _Retryable("timeout", timeout=True) from None
        except requests.ConnectionError as exc:
            raise _Retryable(f"connection error ({type(exc).__name__})") from None
        with resp:
            status = resp.status_code
            if status in (401, 403) and rest is not None and self._verified.is_set():
                # The key works for aggregations: this endpoint alone is closed to it.
                raise PendoAccessError(
                    f"Pendo refused {what} (HTTP {status}, GET {rest[0]}) at {self.host}: the "
                    "integration key may not read this endpoint",
                    rest[1],
                )
            if status == 403 and self._verified.is_set():
                # The key has been accepted in this run, so it is valid: it may not read this
                # source. Only this request fails; other sources go on.
                source = _source_name(body)
                raise PendoAccessError(
                    f"the integration key may not read {source} (HTTP 403) at {self.host}, "
                    f"though it read other sources in this run ({what}). Give the key access "
                    f"to {source} in Pendo (Settings > Integrations > Integration Keys, or ask "
                    "a Pendo admin), or leave this asset out of your runs.",
                    source,
                )
            if status in (401, 403):
                # 401 always, 403 before any request succeeded: the key itself is wrong, and
                # every later request of the run would fail the same way.
                self._auth_error = PendoAuthError(
                    f"Pendo rejected the integration key (HTTP {status}) for {self.host}: "
                    "check PENDO_INTEGRATION_KEY and PENDO_REGION (a key works only against "
                    "its own region's host)"
                )
                self._verified.set()
                raise self._auth_error
            if status == 429 or status >= 500 or status == 408:
                text = _short(resp)
                if status == 408 and MEMORY_LIMIT_TEXT in text.lower():
                    raise PendoMemoryLimitError(f"Pendo: {text} ({what})", status, text)
                raise _Retryable(f"HTTP {status}", _retry_after(resp), timeout=status == 408)
            if status >= 400:
                text = _short(resp)
                cls = (
                    PendoMemoryLimitError if MEMORY_LIMIT_TEXT in text.lower() else PendoQueryError
                )
                hint = ""
                if status == 400 and cls is PendoQueryError:
                    # One integration saw a wrong regional host answer 400, not 401/403.
                    hint = " (if every request fails like this, check PENDO_REGION too)"
                raise cls(
                    f"Pendo rejected the request for {what} (HTTP {status}): "
                    f"{text or '(empty)'}{hint}",
                    status,
                    text,
                )
            # One day or one entity page: read it whole, then parse in C (json / Arrow)
            # instead of building Python objects event by event.
            chunks: list[bytes] = []
            count = 0
            try:
                for chunk in resp.iter_content(1 << 20):
                    chunks.append(chunk)
                    count += len(chunk)
            except (requests.RequestException, OSError) as exc:
                self._count_bytes(count)
                raise _Retryable(
                    f"HTTP {status}, body interrupted ({type(exc).__name__})"
                ) from None
            if count == 0:
                raise _Retryable(f"HTTP {status} with an empty body")
            return status, b"".join(chunks)

    def _count_bytes(self, n: int) -> None:
        with self._lock:
            for st in self._counted():
                st.bytes += n

    def _stats_of(self, source: str) -> ClientStats:
        with self._lock:
            return self.source_stats.setdefault(source, ClientStats())

    def _counted(self) -> tuple[ClientStats, ...]:
        """The run's counters and those of this thread's source (caller holds the lock)."""
        mine = getattr(self._current, "stats", None)
        return (self.stats,) if mine is None else (self.stats, mine)

    @contextmanager
    def ranked(self, rank: str, background: bool = False) -> Iterator[None]:
        """Requests this thread sends meanwhile take a free slot after every waiting request
        of a lower ``rank``; ``background`` ones after every waiting request that is not.
        Unranked requests (entities, a check's own questions) go first."""
        before = getattr(self._current, "priority", (0,))
        self._current.priority = (2 if background else 1, rank)
        try:
            yield
        finally:
            self._current.priority = before

    def wait_verified(self, timeout_s: float) -> bool:
        """Block until a request has been accepted (the key works), at most ``timeout_s``."""
        return self._verified.wait(timeout_s)

    def source_stats_dict(self, source: str) -> dict:
        return self._stats_of(source).as_dict()


def _source_name(body: dict) -> str:
    """The Pendo source a request body reads (for messages)."""
    try:
        spec = body["request"]["pipeline"][0]["source"]
        return next(k for k in spec if k != "timeSeries")
    except (KeyError, IndexError, TypeError, StopIteration):
        return "this source"


def _short(resp: requests.Response) -> str:
    try:
        return resp.text.strip()[:500]
    except Exception:  # noqa: BLE001 - a broken error body must not hide the status
        return ""


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
