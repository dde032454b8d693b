"""Pendo's own published responses (``samples/*.json``) served as an aggregation API.

Independent of the emulator: a small HTTP server on 127.0.0.1 that answers
``POST /api/v1/aggregation`` with the sample rows of the requested source, keeps the rows of
the requested days (``timeSeries``, days in the subscription's zone) and applies the
pipeline operators the client sends (``identified``, ``filter`` on an id, ``sort``,
``limit``, ``group``, ``count``). Any other operator, or a source without a sample, answers
400, so a test fails loudly when the client starts asking for something the samples cannot
answer.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

SAMPLES_DIR = Path(__file__).parent / "samples"
# Which source each sample answers (several samples may answer one source).
SAMPLE_SOURCES = {
    "pageEvents.json": "pageEvents",
    "pageEvents_parameters_object.json": "pageEvents",
    "featureEvents.json": "featureEvents",
    "visitors.json": "visitors",
    "accounts_after_select.json": "accounts",
    "pages_id_name.json": "pages",
    "features_id_name.json": "features",
}
_FILTER = re.compile(r'^\s*([A-Za-z_][\w.]*)\s*>\s*("(?:[^"\\]|\\.)*")\s*$')


def sample_rows() -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = defaultdict(list)
    for name, source in SAMPLE_SOURCES.items():
        rows[source] += json.loads((SAMPLES_DIR / name).read_text())["results"]
    return dict(rows)


class BadRequest(ValueError):
    pass


def _day_starts(ts: dict, zone: ZoneInfo) -> set[int]:
    if ts.get("period") != "dayRange" or not isinstance(ts.get("count"), int):
        raise BadRequest(f"the samples only answer dayRange with a count, not {ts!r}")
    # Pendo rounds `first` down to the start of its local day.
    day = datetime.fromtimestamp(int(ts["first"]) / 1000, zone).date()
    out = set()
    for k in range(ts["count"]):
        d = day + timedelta(days=k)
        out.add(int(datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000))
    return out


def _apps_match(row: dict, app_param) -> bool:
    if app_param is None or isinstance(app_param, str):  # expandAppIds("*")
        return True
    apps = app_param if isinstance(app_param, list) else [app_param]
    return "appId" not in row or row["appId"] in apps  # a row without appId is the app asked


def _group(rows: list[dict], spec: dict) -> list[dict]:
    keys = spec.get("group") or []
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k) for k in keys)].append(r)
    out = []
    for values, members in groups.items():
        row = dict(zip(keys, values, strict=True))
        for field in spec.get("fields") or []:
            for name, agg in field.items():
                ((fn, arg),) = agg.items()
                if fn == "count":
                    row[name] = len(members)
                elif fn == "sum":
                    row[name] = sum(m.get(arg) or 0 for m in members)
                else:
                    raise BadRequest(f"the sample server has no {fn!r} aggregation")
        out.append(row)
    return out


def answer(body: dict, samples: dict[str, list[dict]], zone: ZoneInfo) -> list[dict]:
    pipeline = body["request"]["pipeline"]
    spec = dict(pipeline[0]["source"])
    ts = spec.pop("timeSeries", None)
    ((name, params),) = spec.items()
    if name not in samples:
        raise BadRequest(f"no sample for source {name}")
    params = params or {}
    rows = [r for r in samples[name] if _apps_match(r, params.get("appId"))]
    if ts is not None:
        starts = _day_starts(ts, zone)
        rows = [r for r in rows if r.get("day") in starts]
    for step in pipeline[1:]:
        ((op, arg),) = step.items()
        if op == "identified":
            rows = [r for r in rows if not str(r.get(arg, "")).startswith("_PENDO_T_")]
        elif op == "filter":
            m = _FILTER.match(arg)
            if not m:
                raise BadRequest(f"the sample server cannot filter {arg!r}")
            field, value = m.group(1), json.loads(m.group(2))
            rows = [r for r in rows if str(r.get(field)) > value]
        elif op == "sort":
            for key in reversed(arg):
                rows.sort(key=lambda r, k=key.lstrip("-"): str(r.get(k)), reverse=key[0] == "-")
        elif op == "limit":
            rows = rows[:arg]
        elif op == "group":
            rows = _group(rows, arg)
        elif op == "count":
            rows = [{"count": len(rows)}]
        else:
            raise BadRequest(f"the sample server does not apply {op!r}")
    return rows


class SampleServer:
    """Serve the samples on a free port of 127.0.0.1; a context manager always stops it."""

    def __init__(self, key: str, timezone: str):
        samples, zone = sample_rows(), ZoneInfo(timezone)
        self.requests: list[dict] = []
        log = self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                log.append(body)
                if self.headers.get("X-Pendo-Integration-Key") != key:
                    self._send(401, b"unauthorized")
                    return
                try:
                    data = json.dumps({"results": answer(body, samples, zone)}).encode()
                except BadRequest as exc:
                    self._send(400, str(exc).encode())
                    return
                self._send(200, data)

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> SampleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
