"""`make dev`: start the Dagster UI; with no PENDO_INTEGRATION_KEY, start the embedded Pendo
emulator first, as its own process, and point every Dagster process at it.

Run as ``python -m pendo_assets.dev --port 3000``. Honours PORT (via --port), DAGSTER_HOME and
PENDO_DUCKDB_PATH from the environment. Stops the emulator when the UI stops.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from datetime import timedelta

from dotenv import dotenv_values

from pendo_assets.clock import Clock
from pendo_assets.instance import write_local_config
from pendo_assets.settings import DEMO_HISTORY_DAYS, DEMO_KEY

DEMO_TIMEZONE = "America/New_York"
BANNER = "=" * 78


def start_emulator(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pendo_assets.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--timezone",
            DEMO_TIMEZONE,
            "--days",
            str(DEMO_HISTORY_DAYS),
            "--key",
            DEMO_KEY,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://[\w.:-]+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the Pendo emulator did not start: {line!r}")
    return proc, match.group(0)


def demo_env(env: dict[str, str], url: str) -> dict[str, str]:
    today = Clock.from_env().today()
    return {
        **env,
        "PENDO_DEMO": "1",
        "PENDO_BASE_URL": url,
        "PENDO_INTEGRATION_KEY": DEMO_KEY,
        "PENDO_TIMEZONE": DEMO_TIMEZONE,
        "PENDO_START_DATE": (today - timedelta(days=DEMO_HISTORY_DAYS)).isoformat(),
    }


def effective_env(environ: dict[str, str], dotenv_file: str = ".env") -> dict[str, str]:
    """The shell's variables over those in ``.env``.

    Dagster loads .env into its processes; reading it here too means a key kept in .env is
    not mistaken for demo mode. Variables set in the shell win, as they do in Dagster.
    """
    from_file = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None}
    return {**from_file, **environ}


def needs_emulator(env: dict[str, str]) -> bool:
    """Demo mode: no key of the user's. With a key we talk to Pendo and never start the emulator."""
    return not env.get("PENDO_INTEGRATION_KEY", "").strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    env = effective_env(dict(os.environ))
    env.setdefault("DAGSTER_HOME", os.path.abspath(".dagster_home"))
    os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
    config = write_local_config(env["DAGSTER_HOME"])
    if config == "kept":
        print(
            f"{env['DAGSTER_HOME']}/dagster.yaml is your own (no pendo-assets marker line), so it "
            "is kept; deploy/local/dagster.yaml has the batched event log (docs/performance.md)."
        )
    if sys.prefix != sys.base_prefix:
        # As if the venv were activated: dg warns when the project's .venv is not the active one.
        env.setdefault("VIRTUAL_ENV", sys.prefix)
    emulator = None
    if needs_emulator(env):
        emulator, url = start_emulator(env)
        env = demo_env(env, url)
        print(
            f"{BANNER}\nDEMO MODE: PENDO_INTEGRATION_KEY is not set, so this runs on the embedded"
            f" Pendo emulator at {url}\n(synthetic data, time zone {DEMO_TIMEZONE}, the last "
            f"{DEMO_HISTORY_DAYS} days). To load your subscription, set PENDO_INTEGRATION_KEY,\n"
            f"PENDO_REGION and PENDO_START_DATE (see README).\n{BANNER}",
            flush=True,
        )
    # `dg dev` finds the project through pyproject.toml's [tool.dg] (make runs from its root).
    ui = subprocess.Popen(
        [sys.executable, "-m", "dagster_dg_cli.cli", "dev", "-h", args.host, "-p", str(args.port)],
        env=env,
    )

    def forward(signum, _frame):
        ui.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        return ui.wait()
    finally:
        if ui.poll() is None:
            ui.terminate()
            try:
                ui.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ui.kill()
        if emulator is not None:
            emulator.terminate()
            try:
                emulator.wait(timeout=10)
            except subprocess.TimeoutExpired:
                emulator.kill()


if __name__ == "__main__":
    raise SystemExit(main())
