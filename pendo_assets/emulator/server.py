"""The HTTP face of the emulator: ``POST /api/v1/aggregation`` and friends (stdlib only).

Results are streamed with ``Transfer-Encoding: chunked`` in JSON-encoded batches, so a
million-row answer never exists in memory as a whole. HTTP/1.1 keep-alive lets a
``requests.Session`` reuse connections.

Endpoints:
- ``POST /api/v1/aggregation`` (header ``X-Pendo-Integration-Key``)
- ``GET /api/v1/segment[/<id>]`` and ``GET /api/v1/metadata/schema/{account,visitor}`` (same
  header; ``Faults.forbidden_paths`` refuses them with a 403)
- ``GET|POST /_emulator/faults`` read / update ``Faults`` fields (JSON), no auth
- ``GET /_emulator/stats``, ``POST /_emulator/stats/reset`` (also resets fault counters)
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pendo_assets.clock import Clock
from pendo_assets.emulator.aggregation import (
    AggregationError,
    MemoryLimitExceeded,
    parse_request,
    run,
    run_encoded,
)
from pendo_assets.emulator.entities import entity_rows
from pendo_assets.emulator.faults import FaultCounters, Faults
from pendo_assets.emulator.segments import metadata_schema
from pendo_assets.emulator.stats import Stats
from pendo_assets.emulator.subscription import Subscription
from pendo_assets.settings import DEMO_KEY

BATCH_ROWS = 1000
MEMORY_LIMIT_MESSAGE = "Query exceeded memory limit"
GARBAGE_BODY = b"<html><body><h1>503 Service Unavailable</h1></body></html>"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: EmulatorServer


class EmulatorServer:
    """A Pendo aggregation endpoint serving ``subscription``'s data on ``host:port``.

    The socket is bound at construction (so ``url`` is known); ``start()`` serves in a
    background thread. Use as a context manager to always stop it.
    """

    def __init__(
        self,
        subscription: Subscription,
        integration_key: str = DEMO_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.subscription = subscription
        self.integration_key = integration_key
        self.faults = faults if faults is not None else Faults()
        # Which days are still live (Faults.live_days): the project's clock, so PENDO_TODAY
        # pins it as it pins the settings'.
        self.clock = clock or Clock.from_env()
        self.stats = Stats()
        self.counters = FaultCounters()
        self._live_lock = threading.Lock()
        self._live_seen = 0  # aggregation requests that touched a young day (Faults.live_days)
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.emulator = self
        self._thread: threading.Thread | None = None
        self._serving = False
        self._stopped = False

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"pendo-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` from another thread (``__main__``)."""
        self._serving = True
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        """Stop serving and close every socket; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._serving:
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd.server_close()
        # Idle keep-alive connections would otherwise keep handler threads blocked on reads.
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


def _batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PendoEmulator/1.0"
    server: _HTTPServer

    @property
    def emu(self) -> EmulatorServer:
        return self.server.emulator

    def setup(self) -> None:
        super().setup()
        self.emu._track(self.connection, True)
        self.emu.stats.connection()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.emu._track(self.connection, False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: tests and the CLI should not spam stderr

    # --- plumbing ---------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if body or status != 403:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)
        if self._path().startswith("/api/"):  # admin traffic stays out of the stats
            self.emu.stats.status(status)
            self.emu.stats.sent(len(body))

    def _send_json(self, status: int, data: object) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _authorized(self) -> bool:
        # http.server's header lookup is case-insensitive.
        return self.headers.get("X-Pendo-Integration-Key") == self.emu.integration_key

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    # --- routes -------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        path = self._path()
        if path == "/_emulator/stats":
            self._send_json(200, self.emu.stats.snapshot())
        elif path == "/_emulator/faults":
            self._send_json(200, self.emu.faults.to_dict())
        elif path == "/api/v1/aggregation":
            self._send(405, b"method not allowed\n")
        elif path.startswith("/api/v1/"):
            self._rest(path)
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        body = self._read_body()
        if path == "/api/v1/aggregation":
            self._aggregation(body)
        elif path == "/_emulator/faults":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise TypeError("expected a JSON object")
                self.emu.faults.update(**changes)
            except (TypeError, ValueError) as exc:
                self._send(400, f"{exc}\n".encode())
                return
            self._send_json(200, self.emu.faults.to_dict())
        elif path == "/_emulator/stats/reset":
            self.emu.stats.reset()
            self.emu.counters.reset()
            self._send_json(200, self.emu.stats.snapshot())
        else:
            self._send(404, b"not found\n")

    def _rest(self, path: str) -> None:
        """Pendo's REST reads: segments and the metadata schemas."""
        emu = self.emu
        if not self._authorized():
            self._send(emu.faults.auth_status)
            return
        if any(path.startswith(p) for p in emu.faults.forbidden_paths):
            self._send(403)
            return
        sub = emu.subscription
        parts = path.split("/")[3:]  # after /api/v1
        if parts[:2] == ["metadata", "schema"] and len(parts) == 3:
            schema = metadata_schema(sub, parts[2])
            if schema is not None:
                self._send_json(200, schema)
                return
        elif parts == ["segment"]:
            rows = list(entity_rows(sub, "segments"))
            self._send_json(200, {"results": rows} if sub.rest_lists_wrapped else rows)
            return
        elif parts[:1] == ["segment"] and len(parts) == 2:
            found = [r for r in entity_rows(sub, "segments") if r["id"] == parts[1]]
            if found:
                self._send_json(200, found[0])
                return
        self._send(404, b"not found\n")

    def _aggregation(self, body: bytes) -> None:
        emu = self.emu
        started = time.monotonic()
        emu.stats.begin()
        self._source: str | None = None
        self._model_s = 0.0
        try:
            self._aggregation_inner(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client went away mid-answer
        finally:
            emu.stats.end(started, time.monotonic(), self._source, self._model_s)

    def _aggregation_inner(self, body: bytes) -> None:
        emu = self.emu
        faults = emu.faults
        if not self._authorized():
            if faults.auth_status == 403:
                self._send(403)
            else:
                self._send(
                    faults.auth_status, b"unauthorized: missing or invalid integration key\n"
                )
            return
        counters = emu.counters
        if counters.fire("reset", faults.reset_every):
            self._reset_connection()
            return
        if counters.fire("timeout", faults.timeout_every):
            time.sleep(faults.timeout_sleep_s)
        if counters.fire("fail", faults.fail_every):
            status = faults.fail_status
            headers = {"Retry-After": f"{faults.retry_after_s:g}"} if status == 429 else None
            message = b"Too Many Requests\n" if status == 429 else b"Internal Server Error\n"
            self._send(status, message, headers=headers)
            return
        if counters.fire("garbage", faults.garbage_every):
            self._send(200, GARBAGE_BODY, "text/html")
            return
        truncate = counters.fire("truncate", faults.truncate_every)

        sub = emu.subscription
        if faults.wrong_timezone:
            sub = sub.replace(timezone=faults.wrong_timezone)
        try:
            query = parse_request(body, sub)
        except AggregationError as exc:
            self._send(exc.status, f"{exc}\n".encode())
            return
        emu.stats.source(query.source, query.days_asked, query.tag is not None)
        self._source = query.source
        if query.source in (faults.forbidden_sources or ()):
            self._send(403)  # a valid key without access to this source
            return
        if query.segment_id is not None and query.segment_id in faults.refused_segments:
            self._send(400, b"Unexpected error occurred evaluating segment\n")
            return
        delay_ms = faults.latency_base_ms + faults.latency_per_day_ms * query.days_asked
        if delay_ms > 0:
            emu.stats.waited(delay_ms / 1000, query.source)
            self._model_s = delay_ms / 1000
            time.sleep(delay_ms / 1000)
        if faults.slow_over_days and query.days_asked > faults.slow_over_days:
            time.sleep(faults.timeout_sleep_s)
        encoded = run_encoded(query, sub)
        hidden = self._live_hidden(query, sub, faults)
        limit = faults.memory_limit_rows
        if query.is_event and limit <= 0:
            rows: Iterator = run(query, sub, hidden)
        elif query.is_event:
            # Events: the limit is on the rows the query reads (a day's answer is bounded).
            try:
                rows = iter(list(run(query, sub, hidden, max_source_rows=limit)))
            except MemoryLimitExceeded:
                self._send(400, f"{MEMORY_LIMIT_MESSAGE}\n".encode())
                return
        else:
            # Entities: on the rows it answers (a page of visitors, not the whole table).
            rows = encoded if encoded is not None else run(query, sub, hidden)
            slow = faults.slow_over_rows
            if limit > 0 or slow > 0:
                head = list(itertools.islice(rows, max(limit, slow) + 1))
                if limit > 0 and len(head) > limit:
                    self._send(400, f"{MEMORY_LIMIT_MESSAGE}\n".encode())
                    return
                if slow > 0 and len(head) > slow:
                    time.sleep(faults.timeout_sleep_s)
                rows = itertools.chain(head, rows)
        if faults.omit_fields and encoded is None:
            omit = set(faults.omit_fields)
            rows = ({k: v for k, v in r.items() if k not in omit} for r in rows)
        self._stream(rows, truncate, encoded=encoded is not None)

    def _live_hidden(self, query, sub: Subscription, faults: Faults):
        """Rows each young day still lacks in this answer (``Faults.live_days``), or None."""
        if faults.live_days <= 0 or not query.is_event:
            return None
        today = self.emu.clock.today(sub.timezone)

        def young(day) -> bool:
            return (today - day).days < faults.live_days

        if not any(young(sub.local_day_of(p)) for p in query.periods):
            return None
        with self.emu._live_lock:
            seen = self.emu._live_seen
            self.emu._live_seen += 1
        missing = max(0, faults.live_backlog - seen)
        return lambda day: missing if young(day) else 0

    def _reset_connection(self) -> None:
        """Drop the connection with a TCP RST: the client sees a reset / disconnect."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _stream(self, rows: Iterator, truncate: bool, encoded: bool = False) -> None:
        """Stream ``{"results": [...]}`` in batches; ``encoded`` rows are JSON strings."""

        def encode(batch: list) -> bytes:
            if encoded:
                return ",".join(batch).encode()
            return json.dumps(batch, ensure_ascii=False, separators=(",", ":"))[1:-1].encode()

        stats = self.emu.stats
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        stats.status(200)
        head = b'{"results":['
        if truncate:
            # Half of the first batch, no terminating chunk, then hang up.
            batch = next(_batches(rows, BATCH_ROWS), [])
            data = head + encode(batch)
            cut = data[: max(1, len(data) // 2)]
            self._write_chunk(cut)
            stats.sent(len(cut))
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        pending = head
        try:
            for batch in _batches(rows, BATCH_ROWS):
                data = pending + encode(batch)
                pending = b","
                self._write_chunk(data)
                stats.sent(len(data), len(batch))
            data = (head if pending == head else b"") + b"]}"
            self._write_chunk(data)
            self.wfile.write(b"0\r\n\r\n")
            stats.sent(len(data))
        except Exception:
            # Headers are out: all we can do is break the stream so the client notices.
            self.close_connection = True
            raise
