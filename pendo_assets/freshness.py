"""Freshness that watches the clock, not the runs: is yesterday loaded by 09:00 local time?

Each daily asset (raw events, enriched events, marts) gets an ``is_fresh`` check. It reads only
Dagster's record of the asset's materialized days, never the asset itself, so it can run
without a run of the asset: Dagster's freshness-check sensor (``pendo_freshness_checks``,
running by default) launches a check-only run when the last passing result has expired. If the
06:00 refresh never ran, the checks turn red at the deadline, naming the newest loaded day and
the one expected.

The deadline is 09:00 in the subscription's time zone, three hours after the daily refresh
(``automation.REFRESH_CRON``). Before it, the day before yesterday is enough.
"""

from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta

import dagster as dg

from pendo_assets import step_order
from pendo_assets.dagster_internals import FRESH_UNTIL_METADATA_KEY, FRESHNESS_PARAMS_METADATA_KEY
from pendo_assets.pendo.days import partition_dates
from pendo_assets.settings import Settings

FRESH = "is_fresh"
FRESHNESS_SENSOR = "pendo_freshness_checks"
DEADLINE = time(9, 0)
SENSOR_INTERVAL_S = 15 * 60


def expected_day(now: datetime) -> tuple[date, datetime]:
    """(the newest day that must be loaded at ``now``, when that changes next), local time."""
    deadline = datetime.combine(now.date(), DEADLINE, tzinfo=now.tzinfo)
    if now >= deadline:
        return now.date() - timedelta(days=1), deadline + timedelta(days=1)
    return now.date() - timedelta(days=2), deadline


def newest_day(instance: dg.DagsterInstance, key: dg.AssetKey) -> date | None:
    days = partition_dates(instance.get_materialized_partitions(key))
    return max(days, default=None)


def freshness_result(
    key: dg.AssetKey, newest: date | None, now: datetime, settings: Settings
) -> dg.AssetCheckResult:
    expected, fresh_until = expected_day(now)
    due = f"{expected} (due by {DEADLINE:%H:%M} {settings.timezone})"
    if expected < settings.first_day:
        passed, text = True, f"No day is due yet (PENDO_START_DATE is {settings.start_date})"
    elif newest is None:
        passed, text = False, f"No day loaded yet; expected the newest to be {due}"
    elif newest >= expected:
        passed, text = True, f"Newest loaded day {newest}; expected {due}"
    else:
        behind = (expected - newest).days
        passed = False
        text = (
            f"Stale: newest loaded day is {newest}, expected {due}; {behind} day(s) behind. "
            "Did the daily refresh run? Materialize the missing days."
        )
    metadata: dict = {
        "newest_loaded_day": dg.MetadataValue.text(str(newest) if newest else "-"),
        "expected_day": dg.MetadataValue.text(str(expected)),
        "days_behind": dg.MetadataValue.int(max(0, (expected - newest).days) if newest else -1),
        FRESHNESS_PARAMS_METADATA_KEY: dg.MetadataValue.json(
            {"deadline": DEADLINE.isoformat(), "timezone": settings.timezone}
        ),
    }
    if passed:
        # Dagster's freshness sensor re-runs a passing check once this instant is past.
        metadata[FRESH_UNTIL_METADATA_KEY] = dg.MetadataValue.timestamp(fresh_until.timestamp())
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=FRESH,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=text,
        metadata=metadata,
    )


def build_freshness_checks(
    settings: Settings, keys: Sequence[dg.AssetKey]
) -> list[dg.AssetChecksDefinition]:
    """One check step per table name: a source's raw and enriched tables share one, each mart
    has its own. In a run that builds a table, its step follows the table's own step
    (``step_order.ENRICHED``), not the run's last one: a backfill judges each source's freshness
    while Pendo still answers the next source's totals, and only the last source's is left
    after Pendo's last answer (one step for all twelve tables took 0.7 s there)."""
    by_table: dict[str, list[dg.AssetKey]] = {}
    for key in keys:
        by_table.setdefault(key.path[-1], []).append(key)
    return [_freshness_check(settings, table, group) for table, group in by_table.items()]


def _freshness_check(
    settings: Settings, table: str, keys: Sequence[dg.AssetKey]
) -> dg.AssetChecksDefinition:
    specs = [
        dg.AssetCheckSpec(
            FRESH,
            asset=key,
            description=f"Yesterday ({settings.timezone}) is loaded by {DEADLINE:%H:%M}; judged "
            "from the days Dagster recorded, so it fires even when no run happens (warning).",
        )
        for key in keys
    ]

    @dg.multi_asset_check(
        specs=specs,
        can_subset=True,
        name=f"{table}_freshness",
        op_tags=step_order.tags(step_order.ENRICHED),
    )
    def _freshness(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        now = settings.clock.now(settings.zone)
        for check_key in sorted(context.selected_asset_check_keys, key=str):
            key = check_key.asset_key
            yield freshness_result(key, newest_day(context.instance, key), now, settings)

    return _freshness


def build_freshness(
    settings: Settings, keys: Sequence[dg.AssetKey]
) -> tuple[list[dg.AssetChecksDefinition], dg.SensorDefinition]:
    """The checks over ``keys`` (every daily asset) and the sensor that runs them."""
    checks = build_freshness_checks(settings, keys)
    sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=checks,
        name=FRESHNESS_SENSOR,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    return checks, sensor
