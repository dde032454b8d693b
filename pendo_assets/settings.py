"""Environment -> validated settings, in one place.

Every ``PENDO_*`` variable is read and checked here when the definitions load, so a bad value
fails at load time with a message naming the variable and an example of a valid value. The
integration key itself is *not* read here: resources take it through ``EnvVar`` so its value
never enters run config or logs. We only look at whether it is set, to choose demo mode.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pendo_assets import clock
from pendo_assets.pendo.queries import MAX_DAYS_PER_REQUEST

REGION_HOSTS = {
    "us": "https://app.pendo.io",
    "eu": "https://app.eu.pendo.io",
    "us1": "https://us1.app.pendo.io",
    "jpn": "https://app.jpn.pendo.io",
    "au": "https://app.au.pendo.io",
}
ALL_APPS = "*"
# Pendo launched in 2013; an earlier start date is a typo, not history.
EARLIEST_START = date(2013, 1, 1)
# The demo emulator's history: this many days up to today (see pendo_assets.emulator).
DEMO_HISTORY_DAYS = 150
DEMO_BASE_URL = "http://127.0.0.1:8765"
# The key the demo emulator accepts (`make dev` starts it with this one); not a secret.
DEMO_KEY = "demo-key"
DEFAULT_DUCKDB_PATH = "data/pendo_warehouse.duckdb"
# DuckDB's own default is 80% of RAM; a cap makes long ranges spill to disk instead.
DEFAULT_DUCKDB_MEMORY_LIMIT = "1GB"
# How long a run waits for another process (an analyst's SQL client) to let go of the warehouse.
DEFAULT_DUCKDB_LOCK_WAIT_S = 300.0
# Pendo processes events hourly, some arrive days late, and a day is final after about 9 days.
DEFAULT_FINAL_AFTER_DAYS = 9

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A PENDO_* variable has a value we cannot use. The message names it."""


@dataclass(frozen=True)
class Settings:
    base_url: str
    app_ids: tuple[int, ...] | None  # None = every app (expandAppIds("*"))
    start_date: date
    timezone: str
    duckdb_path: str
    duckdb_memory_limit: str
    include_anonymous: bool
    apply_exclude_list: bool
    drop_columns: frozenset[str]
    max_concurrency: int
    days_per_request: int
    lookback_days: int
    final_after_days: int  # days older than this are final at Pendo: reconciliation blocks
    request_timeout_s: float
    max_retries: int
    retry_backoff_s: float
    alert_webhook: str | None
    demo: bool  # no PENDO_INTEGRATION_KEY of the user's: running on the embedded emulator
    # Whether PENDO_INTEGRATION_KEY is set (never its value: resources read it as an EnvVar).
    has_integration_key: bool = False
    # Columns that entity history versions on although they change on every visit by default.
    history_track_columns: frozenset[str] = frozenset()
    # Day of the week (0 = Monday) whose refresh re-reads accounts/visitors whole; None: never.
    full_refresh_weekday: int | None = 6
    # Incremental refreshes ask for rows updated since the newest loaded lastupdated minus this.
    incremental_margin_minutes: int = 60
    # The snapshot analysts and BI tools open (PENDO_DUCKDB_READ_PATH); None: no publishing
    # (MotherDuck, or the variable set to the warehouse itself).
    duckdb_read_path: str | None = None
    # Seconds a run waits while another process holds the warehouse file (PENDO_DUCKDB_LOCK_WAIT_S).
    duckdb_lock_wait_s: float = DEFAULT_DUCKDB_LOCK_WAIT_S
    # Segments whose visitors are loaded (PENDO_SEGMENTS); None: every segment.
    segments: tuple[str, ...] | None = None
    # Day of the week (0 = Monday) of the deep reconciliation of the whole history with Pendo
    # per day and tag (the sweep); None: never.
    sweep_weekday: int | None = 6

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def host(self) -> str:
        return re.sub(r"^https?://", "", self.base_url).split("/")[0]

    @property
    def warehouse_pool(self) -> str:
        """The Dagster concurrency pool of every asset that writes the warehouse, one per
        database: a pool limit of 1 (deploy/dagster.yaml) keeps one writer per DuckDB database
        even when runs are separate pods that share no file lock."""
        if self.duckdb_path.startswith(("md:", "motherduck:")):
            # Never the query string: it may carry motherduck_token.
            name = self.duckdb_path.split(":", 1)[1].split("?", 1)[0]
        else:
            name = Path(self.duckdb_path).stem
        return "duckdb_" + (re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "warehouse")


def _bad(var: str, value: str, why: str, example: str) -> SettingsError:
    return SettingsError(f"{var}={value!r} is not valid: {why}. Example: {var}={example}")


def _bool(env: Mapping[str, str], var: str, default: bool) -> bool:
    raw = env.get(var)
    if raw is None:
        return default
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise _bad(var, raw, "expected true or false", "true")


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], var: str, default: N, lo: N, hi: N) -> N:
    """A bounded number of the default's type (whole numbers for int settings)."""
    raw = env.get(var)
    if raw is None or raw.strip() == "":
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise _bad(var, raw, f"expected {what}", str(default)) from None
    if not lo <= value <= hi:
        raise _bad(var, raw, f"must be between {lo} and {hi}", str(default))
    return value


def parse_app_ids(raw: str | None) -> tuple[int, ...] | None:
    var = "PENDO_APP_ID"
    if raw is None or raw.strip() in ("", ALL_APPS):
        return None
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if not re.fullmatch(r"-?\d+", part):
            raise _bad(
                var,
                raw,
                f"{part!r} is not a numeric Pendo app id (or * for all apps)",
                "-323232,5629499534213120",
            )
        ids.append(int(part))
    return tuple(ids)


def parse_timezone(raw: str | None) -> str:
    name = (raw or "UTC").strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(
            "PENDO_TIMEZONE", name, "not an IANA time zone name", "America/New_York"
        ) from None
    return name


def parse_start_date(raw: str | None, today: date) -> date | None:
    var = "PENDO_START_DATE"
    if raw is None or raw.strip() == "":
        return None
    try:
        value = datetime.strptime(raw.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise _bad(var, raw, "expected a date as YYYY-MM-DD", "2024-01-01") from None
    if value < EARLIEST_START:
        raise _bad(var, raw, "Pendo has no data before 2013", "2024-01-01")
    if value > today:
        raise _bad(var, raw, f"it is in the future (today is {today.isoformat()})", "2024-01-01")
    return value


def parse_base_url(env: Mapping[str, str]) -> str:
    explicit = env.get("PENDO_BASE_URL", "").strip()
    region_raw = env.get("PENDO_REGION", "us")
    region = region_raw.strip().lower() or "us"
    if region not in REGION_HOSTS:
        raise _bad("PENDO_REGION", region_raw, f"use one of {', '.join(REGION_HOSTS)}", "eu")
    if explicit:
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", explicit):
            raise _bad(
                "PENDO_BASE_URL", explicit, "expected an http(s) URL", "https://app.eu.pendo.io"
            )
        return explicit.rstrip("/")
    return REGION_HOSTS[region]


def parse_memory_limit(raw: str | None) -> str:
    value = (raw or DEFAULT_DUCKDB_MEMORY_LIMIT).strip().replace(" ", "")
    if not re.fullmatch(r"\d+(\.\d+)?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value, flags=re.I):
        raise _bad(
            "PENDO_DUCKDB_MEMORY_LIMIT",
            raw or "",
            "expected a size like 512MB or 2GB",
            DEFAULT_DUCKDB_MEMORY_LIMIT,
        )
    return value


def check_duckdb_path(raw: str) -> str:
    var = "PENDO_DUCKDB_PATH"
    if raw.startswith("md:") or raw.startswith("motherduck:"):
        if raw in ("md:", "motherduck:"):
            raise _bad(var, raw, "a MotherDuck path needs a database name", "md:pendo")
        return raw
    if raw == ":memory:":
        raise _bad(
            var, raw, "the warehouse must be a file other processes can read", DEFAULT_DUCKDB_PATH
        )
    path = Path(raw)
    if path.stem in ("pendo", "analytics"):
        # DuckDB names the catalog after the file's stem; it would clash with our schemas.
        raise _bad(
            var,
            raw,
            "the file's name must not equal a schema name (pendo, analytics)",
            DEFAULT_DUCKDB_PATH,
        )
    if path.exists() and path.is_dir():
        raise _bad(var, raw, "it is a directory, not a file", DEFAULT_DUCKDB_PATH)
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise _bad(var, raw, f"directory {probe} is not writable", DEFAULT_DUCKDB_PATH)
    if path.exists() and not os.access(path, os.W_OK):
        raise _bad(var, raw, "the file is not writable", DEFAULT_DUCKDB_PATH)
    return raw


def default_read_path(duckdb_path: str) -> str:
    """``<warehouse stem>.read.duckdb`` beside the warehouse: DuckDB names both catalogs alike."""
    path = Path(duckdb_path)
    return str(path.with_name(path.stem + ".read" + (path.suffix or ".duckdb")))


def parse_read_path(raw: str | None, duckdb_path: str) -> str | None:
    """``PENDO_DUCKDB_READ_PATH``: the file runs publish for readers; None when publishing is
    off (MotherDuck serves readers itself, or the variable names the warehouse)."""
    var = "PENDO_DUCKDB_READ_PATH"
    value = (raw or "").strip()
    remote = duckdb_path.startswith(("md:", "motherduck:"))
    if remote:
        if value and value != duckdb_path:
            raise _bad(var, value, "MotherDuck serves readers itself; leave it unset", duckdb_path)
        return None
    if not value:
        value = default_read_path(duckdb_path)
    if value.startswith(("md:", "motherduck:")) or value == ":memory:":
        raise _bad(var, value, "expected a local file path", default_read_path(duckdb_path))
    path, warehouse = Path(value), Path(duckdb_path)
    if path.resolve() == warehouse.resolve():
        return None
    if path.stem.split(".")[0] in ("pendo", "analytics"):
        # DuckDB names the catalog after the file's name up to its first dot.
        raise _bad(
            var,
            value,
            "the file's name must not start with a schema name (pendo, analytics)",
            default_read_path(DEFAULT_DUCKDB_PATH),
        )
    if path.exists() and path.is_dir():
        raise _bad(var, value, "it is a directory, not a file", default_read_path(duckdb_path))
    probe = path.parent if str(path.parent) else Path(".")
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise _bad(
            var,
            value,
            f"directory {probe} is not writable (snapshots are written beside the file)",
            default_read_path(duckdb_path),
        )
    return value


def load_settings(env: Mapping[str, str] | None = None, today: date | None = None) -> Settings:
    """Read and validate every PENDO_* variable; raise SettingsError naming the bad one."""
    env = os.environ if env is None else env
    try:
        today = today or clock.today()
    except ValueError as exc:  # a bad PENDO_TODAY
        raise SettingsError(str(exc)) from None
    has_key = bool(env.get("PENDO_INTEGRATION_KEY", "").strip())
    # `make dev` without a key starts the emulator and sets PENDO_DEMO=1 plus a demo key.
    demo = _bool(env, "PENDO_DEMO", not has_key)
    base_url = parse_base_url(env)
    if demo and not env.get("PENDO_BASE_URL", "").strip():
        base_url = DEMO_BASE_URL
    timezone = parse_timezone(env.get("PENDO_TIMEZONE"))
    start = parse_start_date(env.get("PENDO_START_DATE"), today)
    if start is None:
        if not demo:
            raise SettingsError(
                "PENDO_START_DATE is required with a PENDO_INTEGRATION_KEY: the first day to "
                "load, fixed so partitions never move. Example: PENDO_START_DATE=2024-01-01"
            )
        start = today - timedelta(days=DEMO_HISTORY_DAYS)
    webhook = env.get("PENDO_ALERT_WEBHOOK", "").strip() or None
    if webhook and not re.fullmatch(r"https?://\S+", webhook):
        raise _bad(
            "PENDO_ALERT_WEBHOOK",
            webhook,
            "expected an http(s) URL",
            "https://hooks.example.com/pendo-alerts",
        )
    drop = frozenset(c.strip() for c in env.get("PENDO_DROP_COLUMNS", "").split(",") if c.strip())
    for col in drop:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", col):
            raise _bad(
                "PENDO_DROP_COLUMNS",
                env["PENDO_DROP_COLUMNS"],
                f"{col!r} is not a snake_case column name",
                "remote_ip,user_agent",
            )
    track = _column_list(env, "PENDO_HISTORY_TRACK_COLUMNS", "metadata_auto_lastvisit")
    duckdb_path = check_duckdb_path(env.get("PENDO_DUCKDB_PATH", "").strip() or DEFAULT_DUCKDB_PATH)
    return Settings(
        base_url=base_url,
        app_ids=parse_app_ids(env.get("PENDO_APP_ID")),
        start_date=start,
        timezone=timezone,
        duckdb_path=duckdb_path,
        duckdb_memory_limit=parse_memory_limit(env.get("PENDO_DUCKDB_MEMORY_LIMIT")),
        include_anonymous=_bool(env, "PENDO_INCLUDE_ANONYMOUS", True),
        apply_exclude_list=_bool(env, "PENDO_APPLY_EXCLUDE_LIST", True),
        drop_columns=drop,
        max_concurrency=_number(env, "PENDO_MAX_CONCURRENCY", 8, 1, 64),
        days_per_request=_number(
            env, "PENDO_DAYS_PER_REQUEST", MAX_DAYS_PER_REQUEST, 1, MAX_DAYS_PER_REQUEST
        ),
        lookback_days=_number(env, "PENDO_LOOKBACK_DAYS", 10, 1, 90),
        final_after_days=_number(env, "PENDO_FINAL_AFTER_DAYS", DEFAULT_FINAL_AFTER_DAYS, 0, 90),
        request_timeout_s=float(_number(env, "PENDO_REQUEST_TIMEOUT_S", 300, 1, 3600)),
        max_retries=_number(env, "PENDO_MAX_RETRIES", 6, 0, 20),
        retry_backoff_s=_number(env, "PENDO_RETRY_BACKOFF_S", 1.0, 0.0, 60.0),
        alert_webhook=webhook,
        demo=demo,
        has_integration_key=has_key,
        history_track_columns=track,
        full_refresh_weekday=parse_weekday(env.get("PENDO_FULL_REFRESH_WEEKDAY")),
        sweep_weekday=parse_weekday(env.get("PENDO_SWEEP_WEEKDAY"), "PENDO_SWEEP_WEEKDAY"),
        incremental_margin_minutes=_number(
            env, "PENDO_INCREMENTAL_MARGIN_MINUTES", 60, 0, 7 * 24 * 60
        ),
        duckdb_read_path=parse_read_path(env.get("PENDO_DUCKDB_READ_PATH"), duckdb_path),
        duckdb_lock_wait_s=_number(
            env, "PENDO_DUCKDB_LOCK_WAIT_S", DEFAULT_DUCKDB_LOCK_WAIT_S, 0.0, 24 * 3600.0
        ),
        segments=parse_segments(env.get("PENDO_SEGMENTS")),
    )


def parse_segments(raw: str | None) -> tuple[str, ...] | None:
    """``PENDO_SEGMENTS``: segment ids, comma-separated; unset, empty or ``*``: every segment."""
    if raw is None or raw.strip() in ("", ALL_APPS):
        return None
    ids = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    for sid in ids:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", sid):
            raise _bad(
                "PENDO_SEGMENTS",
                raw,
                f"{sid!r} is not a Pendo segment id (letters, digits, - and _)",
                "aJ0KOADQZVL5h9zQhiQ0q26PNTM,Xb3kP0mZ7dQe2LrYw9sT1uVnH4c",
            )
    return ids


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def parse_weekday(raw: str | None, var: str = "PENDO_FULL_REFRESH_WEEKDAY") -> int | None:
    """``var`` (``PENDO_FULL_REFRESH_WEEKDAY``, ``PENDO_SWEEP_WEEKDAY``): a day name (or its
    first three letters), or ``never``; default sunday."""
    value = (raw or "sunday").strip().lower()
    if value in ("never", "none"):
        return None
    for i, name in enumerate(WEEKDAYS):
        if value in (name, name[:3]):
            return i
    raise _bad(
        var,
        raw or "",
        "expected a day of the week (monday ... sunday) or never",
        "sunday",
    )


def _column_list(env: Mapping[str, str], var: str, example: str) -> frozenset[str]:
    raw = env.get(var, "")
    cols = frozenset(c.strip() for c in raw.split(",") if c.strip())
    for col in cols:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", col):
            raise _bad(var, raw, f"{col!r} is not a snake_case column name", example)
    return cols
