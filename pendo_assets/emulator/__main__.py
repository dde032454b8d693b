"""Run the demo Pendo emulator in the foreground.

    python -m pendo_assets.emulator --host 127.0.0.1 --port 8765 [--seed 7]
        [--timezone America/New_York] [--days 150] [--scale 1.0] [--key demo-key]
        [--latency-base-ms 0 --latency-per-day-ms 0]

Prints one line with the URL (``--port 0`` picks a free port) and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import timedelta

from pendo_assets.clock import Clock
from pendo_assets.emulator.faults import Faults
from pendo_assets.emulator.server import EmulatorServer
from pendo_assets.emulator.subscription import Subscription
from pendo_assets.settings import DEMO_HISTORY_DAYS, DEMO_KEY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pendo_assets.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timezone", default="America/New_York")
    parser.add_argument(
        "--days", type=int, default=DEMO_HISTORY_DAYS, help="days of history up to today"
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--key", default=DEMO_KEY, help="integration key to accept")
    parser.add_argument("--latency-base-ms", type=float, default=0.0)
    parser.add_argument("--latency-per-day-ms", type=float, default=0.0)
    args = parser.parse_args(argv)

    today = Clock.from_env().today(args.timezone)
    sub = Subscription(
        first_day=today - timedelta(days=args.days),
        last_day=today,
        seed=args.seed,
        timezone=args.timezone,
        scale=args.scale,
    )
    faults = Faults(
        latency_base_ms=args.latency_base_ms, latency_per_day_ms=args.latency_per_day_ms
    )
    server = EmulatorServer(
        sub, integration_key=args.key, host=args.host, port=args.port, faults=faults
    )

    stoppers: list[threading.Thread] = []

    def on_signal(signum: int, frame: object) -> None:
        # stop() waits for serve_forever to return, so it must run off the serving thread.
        stopper = threading.Thread(target=server.stop, daemon=True)
        stoppers.append(stopper)
        stopper.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(
        f"Pendo emulator listening on {server.url} (DEMO DATA, timezone {sub.timezone}, "
        f"days {sub.first_day}..{sub.last_day})",
        flush=True,
    )
    server.serve_forever()
    for stopper in stoppers:
        stopper.join(timeout=5)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
