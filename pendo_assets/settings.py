"""Every ``PENDO_*`` setting, declared once: a field of the ``Settings`` resource.

A field's type and default are the setting's; its ``Env`` says which variable sets it and how
that text is parsed and checked. ``load_settings`` reads every variable when the definitions
load, so a bad value fails at load time with a message naming the variable and an example of a
valid value. Everything else derives from the fields: ``PendoResource`` carries this resource
(and hands the Pendo layer its options), the warehouse resource and the assets read it.

The integration key itself is *not* a setting here: ``PendoResource`` takes it through
``EnvVar`` so its value never enters run config or logs. We only look at whether it is set, to
choose demo mode.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from pendo_assets.clock import ENV as TODAY_VAR
from pendo_assets.clock import Clock, parse_pin
from pendo_assets.pendo.queries import MAX_DAYS_PER_REQUEST
from pendo_assets.warehouse.store import LOCK_WAIT_S

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
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A PENDO_* variable has a value we cannot use. The message names it."""


def _bad(var: str, value: str, why: str, example: str) -> SettingsError:
    return SettingsError(f"{var}={value!r} is not valid: {why}. Example: {var}={example}")


# A parser turns a variable's text into the field's value: (text, variable, field default).
Parse = Callable[[str, str, Any], Any]


@dataclass(frozen=True)
class Env:
    """Field metadata: the variable that sets a setting and how its text is read."""

    var: str
    parse: Parse


def _flag(raw: str, var: str, default: bool) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise _bad(var, raw, "expected true or false", "true")


def _between(lo: float, hi: float) -> Parse:
    """A bounded number of the default's type (whole numbers for int settings)."""

    def parse(raw: str, var: str, default: float) -> float:
        if raw.strip() == "":
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

    return parse


def _region(raw: str, var: str, default: str) -> str:
    region = raw.strip().lower() or default
    if region not in REGION_HOSTS:
        raise _bad(var, raw, f"use one of {', '.join(REGION_HOSTS)}", "eu")
    return region


def _url(example: str) -> Parse:
    def parse(raw: str, var: str, default: str | None) -> str | None:
        value = raw.strip()
        if not value:
            return default
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
            raise _bad(var, value, "expected an http(s) URL", example)
        return value.rstrip("/")

    return parse


def _items(pattern: str, what: str, example: str, every: bool = True, kind: type = str) -> Parse:
    """A comma-separated list, each item matching ``pattern``; empty (or ``*`` when ``every``
    item may be meant): the default."""

    def parse(raw: str, var: str, default: list | None) -> list | None:
        if raw.strip() == "" or (every and raw.strip() == ALL_APPS):
            return default
        items = list(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
        for item in items:
            if not re.fullmatch(pattern, item):
                raise _bad(var, raw, f"{item!r} {what}", example)
        return [kind(i) for i in items]

    return parse


def _columns(example: str) -> Parse:
    return _items(r"[a-z_][a-z0-9_]*", "is not a snake_case column name", example, every=False)


def _timezone(raw: str, var: str, default: str) -> str:
    name = raw.strip() or default
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(var, name, "not an IANA time zone name", "America/New_York") from None
    return name


def _start_date(raw: str, var: str, default: None) -> str | None:
    if raw.strip() == "":
        return default
    try:
        value = datetime.strptime(raw.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise _bad(var, raw, "expected a date as YYYY-MM-DD", "2024-01-01") from None
    if value < EARLIEST_START:
        raise _bad(var, raw, "Pendo has no data before 2013", "2024-01-01")
    return value.isoformat()  # whether it is in the future: load_settings, which knows today


def _duckdb_path(raw: str, var: str, default: str) -> str:
    raw = raw.strip() or default
    if raw.startswith("md:") or raw.startswith("motherduck:"):
        if raw in ("md:", "motherduck:"):
            raise _bad(var, raw, "a MotherDuck path needs a database name", "md:pendo")
        return raw
    if raw == ":memory:":
        raise _bad(var, raw, "the warehouse must be a file other processes can read", default)
    path = Path(raw)
    if path.stem in ("pendo", "analytics"):
        # DuckDB names the catalog after the file's stem; it would clash with our schemas.
        raise _bad(
            var, raw, "the file's name must not equal a schema name (pendo, analytics)", default
        )
    _check_file(path, var, raw, default)
    if path.exists() and not os.access(path, os.W_OK):
        raise _bad(var, raw, "the file is not writable", default)
    return raw


def _check_file(path: Path, var: str, raw: str, example: str, why: str = "") -> None:
    """``path`` is a file (or none yet) in a directory we may write."""
    if path.exists() and path.is_dir():
        raise _bad(var, raw, "it is a directory, not a file", example)
    probe = path.parent if str(path.parent) else Path(".")
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise _bad(var, raw, f"directory {probe} is not writable{why}", example)


def _memory_limit(raw: str, var: str, default: str) -> str:
    value = (raw.strip() or default).replace(" ", "")
    if not re.fullmatch(r"\d+(\.\d+)?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value, flags=re.I):
        raise _bad(var, raw, "expected a size like 512MB or 2GB", default)
    return value


def _weekday(raw: str, var: str, default: int | None) -> int | None:
    """A day name (or its first three letters), or ``never``."""
    value = raw.strip().lower()
    if not value:
        return default
    if value in ("never", "none"):
        return None
    for i, name in enumerate(WEEKDAYS):
        if value in (name, name[:3]):
            return i
    raise _bad(var, raw, "expected a day of the week (monday ... sunday) or never", "sunday")


def _pin(raw: str, var: str, default: None) -> str | None:
    try:
        day = parse_pin(raw)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return default if day is None else day.isoformat()


def _as_is(raw: str, var: str, default: str | None) -> str | None:
    return raw.strip() or default


class Settings(dg.ConfigurableResource):
    """The project's configuration: one field per ``PENDO_*`` variable (see ``Env``).

    Fields whose default is None and that say "derived" are filled by ``load_settings`` from
    other settings (the base URL from the region, demo mode from the key, ...)."""

    region: Annotated[str, Env("PENDO_REGION", _region)] = "us"
    # Derived when unset: the region's host, or the emulator in demo mode.
    base_url: Annotated[str | None, Env("PENDO_BASE_URL", _url("https://app.eu.pendo.io"))] = None
    app_ids: Annotated[
        list[int] | None,
        Env(
            "PENDO_APP_ID",
            _items(
                r"-?\d+",
                "is not a numeric Pendo app id (or * for all apps)",
                "-323232,5629499534213120",
                kind=int,
            ),
        ),
    ] = None  # None: every app
    # ISO date; derived in demo mode (DEMO_HISTORY_DAYS before today), required with a key.
    start_date: Annotated[str | None, Env("PENDO_START_DATE", _start_date)] = None
    timezone: Annotated[str, Env("PENDO_TIMEZONE", _timezone)] = "UTC"
    duckdb_path: Annotated[str, Env("PENDO_DUCKDB_PATH", _duckdb_path)] = (
        "data/pendo_warehouse.duckdb"
    )
    # DuckDB's own default is 80% of RAM; a cap makes long ranges spill to disk instead.
    duckdb_memory_limit: Annotated[str, Env("PENDO_DUCKDB_MEMORY_LIMIT", _memory_limit)] = "1GB"
    # The snapshot analysts and BI tools open; derived: beside the warehouse. None after
    # loading: no publishing (MotherDuck, or the variable set to the warehouse itself).
    duckdb_read_path: Annotated[str | None, Env("PENDO_DUCKDB_READ_PATH", _as_is)] = None
    # How long a run waits for another process (an analyst's SQL client) to let go of the file.
    duckdb_lock_wait_s: Annotated[
        float, Env("PENDO_DUCKDB_LOCK_WAIT_S", _between(0.0, 24 * 3600.0))
    ] = LOCK_WAIT_S
    include_anonymous: Annotated[bool, Env("PENDO_INCLUDE_ANONYMOUS", _flag)] = True
    apply_exclude_list: Annotated[bool, Env("PENDO_APPLY_EXCLUDE_LIST", _flag)] = True
    drop_columns: Annotated[
        list[str], Env("PENDO_DROP_COLUMNS", _columns("remote_ip,user_agent"))
    ] = []
    max_concurrency: Annotated[int, Env("PENDO_MAX_CONCURRENCY", _between(1, 64))] = 8
    days_per_request: Annotated[
        int, Env("PENDO_DAYS_PER_REQUEST", _between(1, MAX_DAYS_PER_REQUEST))
    ] = MAX_DAYS_PER_REQUEST
    lookback_days: Annotated[int, Env("PENDO_LOOKBACK_DAYS", _between(1, 90))] = 10
    # Pendo processes events hourly, some arrive days late, and a day is final after about 9
    # days: older days than this block on reconciliation.
    final_after_days: Annotated[int, Env("PENDO_FINAL_AFTER_DAYS", _between(0, 90))] = 9
    request_timeout_s: Annotated[float, Env("PENDO_REQUEST_TIMEOUT_S", _between(1, 3600))] = 300.0
    max_retries: Annotated[int, Env("PENDO_MAX_RETRIES", _between(0, 20))] = 6
    retry_backoff_s: Annotated[float, Env("PENDO_RETRY_BACKOFF_S", _between(0.0, 60.0))] = 1.0
    alert_webhook: Annotated[
        str | None, Env("PENDO_ALERT_WEBHOOK", _url("https://hooks.example.com/pendo-alerts"))
    ] = None
    # No PENDO_INTEGRATION_KEY of the user's: running on the embedded emulator. Derived: on
    # when no key is set (`make dev` without a key sets PENDO_DEMO=1 and a demo key).
    demo: Annotated[bool | None, Env("PENDO_DEMO", _flag)] = None
    # Whether PENDO_INTEGRATION_KEY is set (never its value: PendoResource reads it as EnvVar).
    has_integration_key: bool = False
    # Columns that entity history versions on although they change on every visit by default.
    history_track_columns: Annotated[
        list[str], Env("PENDO_HISTORY_TRACK_COLUMNS", _columns("metadata_auto_lastvisit"))
    ] = []
    # Day of the week (0 = Monday) whose refresh re-reads accounts/visitors whole; None: never.
    full_refresh_weekday: Annotated[int | None, Env("PENDO_FULL_REFRESH_WEEKDAY", _weekday)] = 6
    # Day of the week of the deep reconciliation of the whole history with Pendo per day and
    # tag (the sweep); None: never.
    sweep_weekday: Annotated[int | None, Env("PENDO_SWEEP_WEEKDAY", _weekday)] = 6
    # Incremental refreshes ask for rows updated since the newest loaded lastupdated minus this.
    incremental_margin_minutes: Annotated[
        int, Env("PENDO_INCREMENTAL_MARGIN_MINUTES", _between(0, 7 * 24 * 60))
    ] = 60
    # Segments whose visitors are loaded; None: every segment.
    segments: Annotated[
        list[str] | None,
        Env(
            "PENDO_SEGMENTS",
            _items(
                r"[A-Za-z0-9_-]+",
                "is not a Pendo segment id (letters, digits, - and _)",
                "aJ0KOADQZVL5h9zQhiQ0q26PNTM,Xb3kP0mZ7dQe2LrYw9sT1uVnH4c",
            ),
        ),
    ] = None
    # The pinned "today" (ISO date) of the one clock; None: the machine's clock.
    today: Annotated[str | None, Env(TODAY_VAR, _pin)] = None

    @property
    def clock(self) -> Clock:
        """The one clock every Dagster reader of "now" uses (see pendo_assets.clock)."""
        return Clock(parse_pin(self.today))

    @property
    def first_day(self) -> date:
        """PENDO_START_DATE as a date: the first daily partition."""
        return date.fromisoformat(self.start_date)

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


def env_of(name: str) -> Env | None:
    """The ``Env`` of the setting ``name`` (None for fields no variable sets)."""
    return next((m for m in Settings.model_fields[name].metadata if isinstance(m, Env)), None)


def default_of(name: str) -> Any:
    """The setting's one default: its field's."""
    return Settings.model_fields[name].get_default(call_default_factory=True)


DEFAULT_DUCKDB_PATH: str = default_of("duckdb_path")


def default_read_path(duckdb_path: str) -> str:
    """``<warehouse stem>.read.duckdb`` beside the warehouse: DuckDB names both catalogs alike."""
    path = Path(duckdb_path)
    return str(path.with_name(path.stem + ".read" + (path.suffix or ".duckdb")))


def _read_path(value: str | None, duckdb_path: str) -> str | None:
    """The file runs publish for readers; None when publishing is off (MotherDuck serves
    readers itself, or the variable names the warehouse)."""
    var = env_of("duckdb_read_path").var
    if duckdb_path.startswith(("md:", "motherduck:")):
        if value and value != duckdb_path:
            raise _bad(var, value, "MotherDuck serves readers itself; leave it unset", duckdb_path)
        return None
    value = value or default_read_path(duckdb_path)
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
    beside = " (snapshots are written beside the file)"
    _check_file(path, var, value, default_read_path(duckdb_path), beside)
    return value


def load_settings(env: Mapping[str, str] | None = None, today: date | None = None) -> Settings:
    """Read and validate every PENDO_* variable; raise SettingsError naming the bad one.

    ``today`` pins the clock (tests); otherwise PENDO_TODAY does, from ``env`` or, when
    ``env`` does not name it, from the process's environment (the clock is the process's)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        spec = env_of(name)
        raw = env.get(spec.var) if spec else None
        if spec and spec.var == TODAY_VAR and raw is None:
            raw = os.environ.get(TODAY_VAR)
        if raw is not None:
            values[name] = spec.parse(raw, spec.var, default_of(name))
    if today is not None:
        values["today"] = today.isoformat()
    today = Clock(parse_pin(values.get("today"))).today()

    # Derived settings, each in one place.
    has_key = bool(env.get("PENDO_INTEGRATION_KEY", "").strip())
    values["has_integration_key"] = has_key
    demo = values.setdefault("demo", not has_key)
    if not values.get("base_url"):
        region = values.get("region", default_of("region"))
        values["base_url"] = DEMO_BASE_URL if demo else REGION_HOSTS[region]
    start_var = env_of("start_date").var
    if values.get("start_date") is None:
        if not demo:
            raise SettingsError(
                f"{start_var} is required with a PENDO_INTEGRATION_KEY: the first day to "
                f"load, fixed so partitions never move. Example: {start_var}=2024-01-01"
            )
        values["start_date"] = (today - timedelta(days=DEMO_HISTORY_DAYS)).isoformat()
    elif date.fromisoformat(values["start_date"]) > today:
        raise _bad(
            start_var,
            env[start_var],
            f"it is in the future (today is {today.isoformat()})",
            "2024-01-01",
        )
    duckdb_path = values.get("duckdb_path", DEFAULT_DUCKDB_PATH)
    values["duckdb_read_path"] = _read_path(values.get("duckdb_read_path"), duckdb_path)
    return Settings(**values)
