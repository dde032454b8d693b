"""The emulator in its own process for the bench: ``python -m bench.emulator '<json spec>'``.

The spec holds ``Subscription`` fields plus ``key`` and the two latency knobs; the first line
printed is the URL. Runs until SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import date

from pendo_assets.emulator import EmulatorServer, EntityEdit, Faults, Subscription


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
    server = EmulatorServer(Subscription(**spec), integration_key=key, faults=faults)

    def on_signal(signum: int, frame: object) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    print(f"bench emulator at {server.url}", flush=True)
    server.serve_forever()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
