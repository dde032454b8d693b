"""The emulator in its own process for the bench: ``python -m bench.emulator '<json spec>'``.

The spec holds ``Subscription`` fields plus ``key`` and the two latency knobs; the first line
printed is the URL. Runs until SIGTERM.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
from datetime import date

from pendo_assets.emulator import EmulatorServer, EntityEdit, Faults, Subscription, TagChange


def _warm(sub: Subscription) -> None:
    """Generate the whole history's event rows before the first request, and keep them.

    The emulator builds a day's rows on first use (a few milliseconds of CPU each, under one
    GIL shared by every request in flight). Counted as Pendo's time they would make both
    contenders look slower than the latency model says; warmed, an answer costs the model's
    latency plus encoding.
    """
    from datetime import timedelta

    from pendo_assets.catalog import EVENTS
    from pendo_assets.emulator import aggregation, events

    events.activity = aggregation.activity = functools.lru_cache(maxsize=None)(
        events.activity.__wrapped__
    )
    events.day_rows = functools.lru_cache(maxsize=None)(events.day_rows.__wrapped__)
    day = sub.first_day
    while day <= sub.last_day:
        for app_id in sub.app_ids:
            for source in EVENTS:
                sub.day_rows(source.name, app_id, day)
        day += timedelta(days=1)


def main() -> int:
    spec = json.loads(sys.argv[1])
    key = spec.pop("key")
    faults = Faults(
        latency_base_ms=spec.pop("latency_base_ms", 0.0),
        latency_per_day_ms=spec.pop("latency_per_day_ms", 0.0),
    )
    spec["first_day"] = date.fromisoformat(spec["first_day"])
    spec["last_day"] = date.fromisoformat(spec["last_day"])
    spec["edits"] = tuple(EntityEdit(**e) for e in spec.get("edits", ()))
    spec["tag_changes"] = tuple(TagChange(**c) for c in spec.get("tag_changes", ()))
    warm = spec.pop("warm", False)
    sub = Subscription(**spec)
    if warm:
        _warm(sub)
    server = EmulatorServer(sub, integration_key=key, faults=faults)

    def on_signal(signum: int, frame: object) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    print(f"bench emulator at {server.url}", flush=True)
    server.serve_forever()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
