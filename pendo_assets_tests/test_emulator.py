"""The embedded Pendo emulator over real HTTP: data shape and determinism, the aggregation
grammar the client sends (and a 400 for the rest), time zones and DST, errors, every fault
knob, streaming, admin endpoints and CLI."""

from __future__ import annotations

import functools
import json
import re
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import ijson
import pytest
import requests

from pendo_assets.catalog import AGGREGATED_MEASURES, GUIDE_EVENT_TYPES, SOURCES, SOURCES_BY_NAME
from pendo_assets.clock import Clock
from pendo_assets.emulator import Drift, EmulatorServer, Faults, Subscription
from pendo_assets.emulator.entities import deleted_tag_ids
from pendo_assets.emulator.events import hour_parts

KEY = "emulator-test-key"
OTHER_APP = 5629499534213120
DEFAULT_APP = -323232
# The server's clock is pinned (which days are live) to 2026-07-15; NOW is an instant of it.
NOW = datetime(2026, 7, 15, 15, 0, tzinfo=UTC)
SUMMER, WINTER = date(2026, 7, 14), date(2026, 1, 14)  # weekdays in EDT and in EST
SPRING_FORWARD, FALL_BACK = date(2026, 3, 8), date(2026, 11, 1)


# The test subscription; keyword arguments override its fields.
make_sub = functools.partial(
    Subscription,
    first_day=date(2026, 1, 1),
    last_day=date(2026, 11, 26),
    n_visitors=200,
    n_accounts=20,
    drift=(
        Drift("events", "customScore", date(2026, 7, 1), date(2026, 7, 1), "int"),
        Drift("events", "customScore", date(2026, 7, 2), date(2026, 7, 2), "str"),
    ),
)


@pytest.fixture(scope="module")
def sub() -> Subscription:
    return make_sub()


@pytest.fixture(scope="module")
def server(sub) -> Iterator[EmulatorServer]:
    with EmulatorServer(sub, integration_key=KEY, clock=Clock(NOW.date())) as srv:
        yield srv


@pytest.fixture()
def fresh(sub) -> Iterator[EmulatorServer]:
    """A server of the test's own, for fault knobs and request counting."""
    with EmulatorServer(sub, integration_key=KEY, clock=Clock(NOW.date())) as srv:
        yield srv


def body(source: str, params=None, ts=None, *ops) -> dict:
    spec = {source: params}
    if ts is not None:
        spec["timeSeries"] = ts
    return {
        "response": {"mimeType": "application/json"},
        "request": {"requestId": "t", "pipeline": [{"source": spec}, *ops]},
    }


def days(first, count: int = 1, period: str = "dayRange") -> dict:
    return {"period": period, "first": first, "count": count}


def post(srv: EmulatorServer, payload, key: str | None = KEY, **kw) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["x-pendo-integration-key"] = key  # lower-case, as tap-pendo sends it
    data = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return requests.post(f"{srv.url}/api/v1/aggregation", data=data, headers=headers, **kw)


def get(srv: EmulatorServer, path: str, key: str | None = KEY) -> requests.Response:
    headers = {"X-Pendo-Integration-Key": key} if key is not None else {}
    return requests.get(f"{srv.url}{path}", headers=headers, timeout=10)


def results(srv: EmulatorServer, payload) -> list[dict]:
    r = post(srv, payload)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def noon(d: date) -> int:
    """12:00 UTC of ``d``: inside the same New York day, which Pendo rounds ``first`` down to."""
    return ms(datetime(d.year, d.month, d.day, 12, tzinfo=UTC))


def has_path(row: dict, path: str) -> bool:
    """Dotted path present; a null object on the way counts (``group`` may be null)."""
    value = row
    for part in path.split("."):
        if value is None:
            return True
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


# --- data: determinism and shape ------------------------------------------------------------
def test_same_config_gives_identical_data_and_seed_changes_it(sub, server):
    twin = make_sub()
    for name in ("accounts", "visitors", "pages", "guides"):
        assert json.dumps(twin.entities(name)) == json.dumps(sub.entities(name))
    for source in ("events", "pageEvents", "guideEvents"):
        assert twin.event_rows(source, DEFAULT_APP, SUMMER) == sub.event_rows(
            source, DEFAULT_APP, SUMMER
        )
    other = make_sub(seed=8)
    assert other.event_rows("events", DEFAULT_APP, SUMMER) != sub.event_rows(
        "events", DEFAULT_APP, SUMMER
    )
    payload = body("pageEvents", {"appId": 'expandAppIds("*")'}, days(ms(NOW), 2))
    assert post(server, payload).content == post(server, payload).content


def test_visitor_fast_path_matches_the_data_api(server, sub):
    visitors = sub.entities("visitors")
    assert results(server, body("visitors", None)) == visitors  # pre-encoded fast path
    identified = [v for v in visitors if not v["visitorId"].startswith("_PENDO_T_")]
    assert results(server, body("visitors", {"identified": True})) == identified
    assert results(server, body("visitors", None, None, {"limit": 5})) == visitors[:5]


def test_a_day_far_in_the_past_is_cheap():
    long = make_sub(first_day=date(2016, 1, 1))
    started = time.perf_counter()
    rows = long.event_rows("pageEvents", DEFAULT_APP, date(2016, 3, 2))
    assert rows and time.perf_counter() - started < 0.5
    assert long.event_rows("pageEvents", DEFAULT_APP, date(2015, 12, 31)) == []  # before history


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_every_catalog_source_answers_with_its_declared_fields(server, sub, source):
    params = {"appId": 'expandAppIds("*")'} if source.app_scoped else None
    ts = days(ms(datetime(2026, 7, 13, 12, tzinfo=UTC)), 3) if source.kind == "event" else None
    if source.kind == "entity" and source.rest:  # a REST list, not an aggregation source
        rows = get(server, source.rest).json()
    else:
        rows = results(server, body(source.name, params, ts))
    assert rows, source.name
    optional = {"metadata.agent.email"}  # missing on some visitors, as in real data
    # The loader derives `day` of per-event rows from browserTime: Pendo sends no `day` there.
    per_event = source.kind == "event" and source.per_event
    declared = [c for c in source.columns if not (per_event and c == "day")]
    for column in declared:
        present = sum(has_path(r, column) for r in rows)
        if column in optional:
            assert 0 < present < len(rows), column
        else:
            assert present == len(rows), (source.name, column)
    if source.app_scoped:
        assert {r["appId"] for r in rows} == set(sub.app_ids)


def test_entities_look_like_pendo(sub):
    accounts = sub.entities("accounts")
    names = {a["metadata"]["agent"]["name"] for a in accounts}
    assert {"Zürich Café GmbH", "株式会社テスト"} <= names
    plans = [a for a in accounts if "plan" in a["metadata"]["custom"]]
    assert 0 < len(plans) < len(accounts)
    seats = [
        a["metadata"]["custom"]["seats"] for a in accounts if "seats" in a["metadata"]["custom"]
    ]
    assert seats and all(isinstance(s, int) for s in seats)

    visitors = sub.entities("visitors")
    assert len(visitors) == len({v["visitorId"] for v in visitors}) == sub.visitor_count
    anonymous = [v for v in visitors if v["visitorId"].startswith("_PENDO_T_")]
    assert 0.1 < len(anonymous) / len(visitors) < 0.3
    assert all(v["metadata"]["auto"]["accountid"] == "" for v in anonymous)
    identified = [v for v in visitors if not v["visitorId"].startswith("_PENDO_T_")]
    assert all(
        v["metadata"]["auto"]["accountid"] in v["metadata"]["auto"]["accountids"]
        for v in identified
    )
    assert all("auto__323232" in v["metadata"] for v in visitors)
    assert any(f"auto_{OTHER_APP}" in v["metadata"] for v in visitors)

    pages = sub.entities("pages")
    for tag in pages + sub.entities("features") + sub.entities("trackTypes"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{27}", tag["id"])
    page_app = {p["id"]: p["appId"] for p in pages}
    assert all(page_app[f["pageId"]] == f["appId"] for f in sub.entities("features"))
    assert any(p["group"] is None for p in pages) and any(p["group"] for p in pages)
    guides = sub.entities("guides")
    assert any(g["polls"] for g in guides) and any(not g["polls"] for g in guides)
    assert all(g["steps"] for g in guides)


def test_event_rows_reference_some_deleted_tags(sub):
    live = {p["id"] for p in sub.entities("pages")}
    deleted = set(deleted_tag_ids(sub, "Page", DEFAULT_APP))
    seen = Counter()
    for k in range(14):
        for r in sub.event_rows("pageEvents", DEFAULT_APP, SUMMER - timedelta(days=k)):
            seen["live" if r["pageId"] in live else "deleted"] += 1
            assert r["pageId"] in live or r["pageId"] in deleted
    assert 0 < seen["deleted"] < 0.1 * seen["live"]


def test_weekdays_are_busier_than_weekends(sub):
    by_kind = Counter()
    for k in range(28):
        d = date(2026, 6, 1) + timedelta(days=k)
        by_kind["weekend" if d.weekday() >= 5 else "weekday"] += len(
            sub.event_rows("events", DEFAULT_APP, d)
        )
    assert by_kind["weekday"] / 20 > 2 * by_kind["weekend"] / 8


@pytest.mark.parametrize("source", [s for s in SOURCES if s.kind == "event"], ids=lambda s: s.name)
def test_event_rows_are_unique_on_the_catalog_grain(sub, source):
    for d in (SUMMER, WINTER, FALL_BACK):
        for app in sub.app_ids:
            rows = sub.event_rows(source.name, app, d)
            keys = [tuple(json.dumps(r.get(f), sort_keys=True) for f in source.grain) for r in rows]
            assert len(keys) == len(set(keys))


def test_raw_events_fall_inside_their_local_day(sub):
    start, end = sub.local_midnight_ms(SUMMER), sub.local_midnight_ms(SUMMER + timedelta(days=1))
    rows = sub.event_rows("guideEvents", DEFAULT_APP, SUMMER)
    polls = sub.event_rows("pollEvents", DEFAULT_APP, SUMMER)
    assert rows and all(start <= r["browserTime"] < end and "day" not in r for r in rows)
    # Only types the marts have a column for, unless told to send another (below).
    assert {r["type"] for r in rows} <= set(GUIDE_EVENT_TYPES)
    many = [
        p
        for k in range(20)
        for p in sub.event_rows("pollEvents", DEFAULT_APP, SUMMER - timedelta(days=k))
    ]
    assert any(isinstance(p["pollResponse"], int) for p in many)
    assert any(isinstance(p["pollResponse"], str) for p in many)
    assert all(0 <= p["pollResponse"] <= 10 for p in many if isinstance(p["pollResponse"], int))
    assert all(start <= p["browserTime"] < end for p in polls)


def test_guide_activity_is_about_one_guide_event_in_twenty_and_unknown_types_on_request(sub):
    def types(s) -> Counter:
        return Counter(
            r["type"]
            for k in range(40)
            for app in s.app_ids
            for r in s.event_rows("guideEvents", app, SUMMER - timedelta(days=k))
        )

    plain = types(sub)
    assert set(plain) == set(GUIDE_EVENT_TYPES)
    assert 0.035 < plain["guideActivity"] / plain.total() < 0.055  # 4.5% on a real subscription
    told = types(sub.replace(unknown_guide_event_type="guideFlown"))
    assert set(told) == {*GUIDE_EVENT_TYPES, "guideFlown"}
    assert told - Counter(guideFlown=told["guideFlown"]) == plain  # the rest is unchanged
    assert 0.02 < told["guideFlown"] / told.total() < 0.1


def test_schema_drift_adds_a_field_on_its_days_only(server):
    def score_types(d: date) -> set[type]:
        rows = results(server, body("events", None, days(noon(d))))
        assert rows
        return {type(r.get("customScore")) for r in rows}

    assert score_types(date(2026, 7, 1)) == {int}
    assert score_types(date(2026, 7, 2)) == {str}
    assert score_types(date(2026, 7, 3)) == {type(None)}


# --- time zones ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "utc_hour"), [(SUMMER, 4), (WINTER, 5)], ids=["summer-04Z", "winter-05Z"]
)
def test_day_is_the_local_midnight_in_utc_ms(server, sub, day, utc_hour):
    expected = ms(datetime(day.year, day.month, day.day, utc_hour, tzinfo=UTC))
    assert sub.local_midnight_ms(day) == expected
    # A UTC-midnight `first` of the next day lands in `day` for a zone west of UTC.
    first = ms(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))
    rows = results(server, body("events", None, days(first)))
    assert rows and {r["day"] for r in rows} == {expected}
    assert rows == sub.event_rows("events", DEFAULT_APP, day)


@pytest.mark.parametrize(("day", "hours"), [(SPRING_FORWARD, 23), (FALL_BACK, 25)])
def test_hour_range_over_dst_days(server, sub, day, hours):
    assert sub.day_hours(day) == hours
    start = sub.local_midnight_ms(day)
    next_day = sub.local_midnight_ms(day + timedelta(days=1))
    assert next_day - start == hours * 3_600_000
    rows = results(server, body("events", None, days(start, 24, "hourRange")))
    assert rows and all("day" not in r and r["hour"] % 3_600_000 == 0 for r in rows)
    assert all(start <= r["hour"] < start + 24 * 3_600_000 for r in rows)
    day_rows = sub.event_rows("events", DEFAULT_APP, day)
    in_day = [r for r in rows if r["hour"] < next_day]
    total = sum(r["numEvents"] for r in day_rows)
    if hours == 23:  # the 24th hour is already the next local day
        assert sum(r["numEvents"] for r in in_day) == total
        spill = [r for r in rows if r["hour"] >= next_day]
        assert all(r["hour"] == next_day for r in spill)
    else:  # 24 of 25 hours: the 25th asks one more
        last = results(server, body("events", None, days(start + 24 * 3_600_000, 1, "hourRange")))
        assert sum(r["numEvents"] for r in in_day + last) == total


def merge_hour_rows(hourly: list[dict]) -> list[str]:
    """Hour rows merged as a day answer has them: counts summed, min/max of the times."""
    merged: dict[str, dict] = {}
    for r in hourly:
        row = {k: v for k, v in r.items() if k != "hour"}
        key = json.dumps(
            {k: v for k, v in row.items() if k not in AGGREGATED_MEASURES}, sort_keys=True
        )
        acc = merged.get(key)
        if acc is None:
            merged[key] = row
            continue
        acc["numEvents"] += row["numEvents"]
        acc["numMinutes"] += row["numMinutes"]
        acc["firstTime"] = min(acc["firstTime"], row["firstTime"])
        acc["lastTime"] = max(acc["lastTime"], row["lastTime"])
    return sorted(json.dumps(r, sort_keys=True) for r in merged.values())


def test_hour_rows_partition_the_day_rows(server, sub):
    start = sub.local_midnight_ms(SUMMER)
    for source in ("pageEvents", "guideEvents"):
        hourly = results(server, body(source, None, days(start, 24, "hourRange")))
        daily = sub.event_rows(source, DEFAULT_APP, SUMMER)
        if SOURCES_BY_NAME[source].per_event:
            assert sorted(map(json.dumps, hourly)) == sorted(map(json.dumps, daily))
            assert all(start <= r["browserTime"] < start + 86_400_000 for r in hourly)
        else:
            # Real Pendo: every aggregated row has firstTime/lastTime, per period; activity
            # that runs on into the next hour is one row per hour, so hour rows outnumber day
            # rows, and only merged do they equal them.
            assert all(r["firstTime"] <= r["lastTime"] for r in hourly + daily)
            assert all(r["hour"] <= r["firstTime"] < r["hour"] + 3_600_000 for r in hourly)
            assert len(hourly) > len(daily)
            want = [
                json.dumps({k: v for k, v in r.items() if k != "day"}, sort_keys=True)
                for r in daily
            ]
            assert merge_hour_rows(hourly) == sorted(want)


# --- request grammar ----------------------------------------------------------------------
def test_app_selection(server, sub):
    ts = days(noon(SUMMER))
    assert {r["appId"] for r in results(server, body("events", {}, ts))} == {DEFAULT_APP}
    assert {
        r["appId"] for r in results(server, body("events", {"appId": 'expandAppIds("*")'}, ts))
    } == {
        DEFAULT_APP,
        OTHER_APP,
    }
    assert {r["appId"] for r in results(server, body("events", {"appId": [OTHER_APP]}, ts))} == {
        OTHER_APP
    }
    assert {r["appId"] for r in results(server, body("events", {"appId": OTHER_APP}, ts))} == {
        OTHER_APP
    }
    assert {r["appId"] for r in results(server, body("pages", None))} == {DEFAULT_APP}
    both = results(server, body("pages", {"appId": [DEFAULT_APP, OTHER_APP]}))
    assert len(both) == len(sub.entities("pages"))
    # Accounts and visitors are subscription-wide: appId does not narrow them.
    assert len(results(server, body("visitors", {"appId": OTHER_APP}))) == sub.visitor_count


def test_first_is_rounded_down_to_its_local_day_and_count_walks_forward(server, sub):
    want = [sub.local_midnight_ms(SUMMER + timedelta(days=k)) for k in range(3)]
    end_of_day = sub.local_midnight_ms(SUMMER + timedelta(days=1)) - 1
    for first in (sub.local_midnight_ms(SUMMER), noon(SUMMER), end_of_day):
        rows = results(server, body("events", None, days(first, 3)))
        assert list(dict.fromkeys(r["day"] for r in rows)) == want  # in order, one array


def test_identified_filter_sort_limit_count(server, sub):
    ts = days(noon(SUMMER))
    truth = sub.event_rows("events", DEFAULT_APP, SUMMER)
    known = [r for r in truth if not r["visitorId"].startswith("_PENDO_T_")]
    assert 0 < len(known) < len(truth)
    assert results(server, body("events", None, ts, {"identified": "visitorId"})) == known
    got = results(server, body("events", None, ts, {"filter": "numEvents >= 5"}))
    assert got == [r for r in truth if r["numEvents"] >= 5]
    assert results(server, body("events", None, ts, {"count": None})) == [{"count": len(truth)}]

    # Entity paging as the client does it: after the last id, sorted by id, a page at a time.
    visitors = sorted(sub.entities("visitors"), key=lambda v: v["visitorId"])
    after = json.dumps(visitors[10]["visitorId"])
    page = [{"filter": f"visitorId > {after}"}, {"sort": ["visitorId"]}, {"limit": 5}]
    assert results(server, body("visitors", None, None, *page)) == visitors[11:16]
    # Incremental entities: the rows updated since a time.
    accounts = sub.entities("accounts")
    since = sorted(a["metadata"]["auto"]["lastupdated"] for a in accounts)[10]
    newer = {"filter": f"metadata.auto.lastupdated >= {since}"}
    want = [a for a in accounts if a["metadata"]["auto"]["lastupdated"] >= since]
    assert results(server, body("accounts", None, None, newer)) == want
    assert 0 < len(want) < len(accounts)
    identified = results(server, body("visitors", {"identified": True}, None, {"count": None}))
    assert identified == [
        {"count": sum(not v["visitorId"].startswith("_PENDO_T_") for v in visitors)}
    ]


def test_group_counts_rows_and_sums_fields(server, sub):
    truth = sub.event_rows("events", DEFAULT_APP, SUMMER) + sub.event_rows(
        "events", DEFAULT_APP, SUMMER + timedelta(days=1)
    )
    fields = [{"events": {"sum": "numEvents"}}, {"rows": {"count": None}}]
    grouped = results(
        server,
        body(
            "events",
            None,
            days(noon(SUMMER), 2),
            {"group": {"group": ["day", "accountId"], "fields": fields}},
        ),
    )
    want = Counter()
    for r in truth:
        want[(r["day"], r["accountId"])] += r["numEvents"]
    assert {(g["day"], g["accountId"]): g["events"] for g in grouped} == dict(want)
    assert sum(g["rows"] for g in grouped) == len(truth)


def test_exclude_list_and_null_id_params(server, sub):
    ts = days(noon(date(2026, 7, 1)), 14)
    internal = {
        v["visitorId"]
        for v in sub.entities("visitors")
        if v["metadata"].get("custom", {}).get("internal")
    }
    assert internal, "the demo Exclude List should not be empty"
    rows = results(server, body("events", None, ts))
    applied = results(server, body("events", {"blacklist": "apply"}, ts))
    assert applied == [r for r in rows if r["visitorId"] not in internal]
    assert len(applied) < len(rows)
    # The catalog's `pageId: null` (every page), as the client sends it.
    pages = results(server, body("pageEvents", None, ts))
    assert results(server, body("pageEvents", {"pageId": None}, ts)) == pages


# --- errors -------------------------------------------------------------------------------
def test_auth_401_and_403_empty(fresh):
    payload = body("accounts", None)
    r = post(fresh, payload, key=None)
    assert r.status_code == 401 and r.text.strip()
    r = post(fresh, payload, key="wrong")
    assert r.status_code == 401
    fresh.faults.auth_status = 403
    r = post(fresh, payload, key="wrong")
    assert r.status_code == 403 and r.content == b""


DAY = days(noon(SUMMER))


def _group(field: dict) -> dict:
    return {"group": {"group": ["day"], "fields": [field]}}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(body("pageViews", None), "unknown source", id="unknown-source"),
        pytest.param("{not json", "JSON", id="bad-json"),
        pytest.param(json.dumps({"request": {}}), "pipeline", id="no-pipeline"),
        pytest.param(body("events", None), "no period specified", id="no-timeseries"),
        # Pendo grammar the client never sends: a 400, never a silently different answer.
        pytest.param(body("events", None, days("now()")), "epoch ms", id="time-expression"),
        pytest.param(body("events", None, days(noon(SUMMER), -1)), "positive", id="count<0"),
        pytest.param(
            body("events", None, {"period": "dayRange", "first": 0, "last": 1}),
            "unsupported in emulator",
            id="last",
        ),
        pytest.param(body("events", None, days(0, 1, "weekRange")), "period", id="weekRange"),
        pytest.param(
            body("pageEvents", {"pageId": ["x", "y"]}, DAY),
            "unsupported in emulator",
            id="id-list-param",
        ),
        pytest.param(
            body("events", {"eventClass": ["web"]}, DAY), "unsupported in emulator", id="param"
        ),
        pytest.param(body("accounts", None, None, {"merge": {}}), "unsupported", id="merge"),
        pytest.param(body("accounts", None, None, {"eval": {}}), "unsupported", id="eval"),
        pytest.param(body("accounts", None, None, {"frobnicate": 1}), "unknown", id="bad-op"),
        pytest.param(
            body("accounts", None, None, {"filter": "accountId == "}),
            "Cannot parse filter expression",
            id="bad-filter",
        ),
        pytest.param(
            body("accounts", None, None, {"filter": 'accountId > "a" && accountId < "b"'}),
            "Cannot parse filter expression",
            id="filter-and",
        ),
        pytest.param(
            body("events", None, DAY, {"identified": "!visitorId"}), "identified", id="anonymous"
        ),
        pytest.param(body("accounts", None, None, {"sort": ["-accountId"]}), "sort", id="desc"),
        pytest.param(body("accounts", None, None, {"count": "accountId"}), "count", id="count"),
        pytest.param(
            body("events", None, DAY, _group({"m": {"max": "numEvents"}})),
            "bad group field",
            id="group-max",
        ),
    ],
)
def test_bad_requests_answer_400_plain_text(server, payload, message):
    r = post(server, payload)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/plain")
    assert message in r.text


# --- faults -------------------------------------------------------------------------------
def test_latency_is_roughly_honoured(fresh):
    fresh.faults.update(latency_base_ms=100, latency_per_day_ms=20)
    started = time.perf_counter()
    post(fresh, body("events", None, days(noon(date(2026, 7, 1)), 1))).raise_for_status()
    one_day = time.perf_counter() - started
    started = time.perf_counter()
    post(fresh, body("events", None, days(noon(date(2026, 7, 1)), 10))).raise_for_status()
    ten_days = time.perf_counter() - started
    assert 0.12 <= one_day < 1.0
    assert 0.30 <= ten_days < 1.5


def test_fail_every_429_with_retry_after_then_500(fresh):
    fresh.faults.update(fail_every=2, fail_status=429, retry_after_s=3)
    statuses = [post(fresh, body("accounts", None)) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 429, 200, 429]
    assert statuses[1].headers["Retry-After"] == "3" and statuses[1].reason == "Too Many Requests"
    fresh.faults.update(fail_every=1, fail_status=500)
    r = post(fresh, body("accounts", None))
    assert r.status_code == 500 and "Retry-After" not in r.headers


def test_memory_limit_then_hour_range_succeeds_and_sums_to_the_day(fresh, sub):
    day_rows = sub.event_rows("pageEvents", DEFAULT_APP, SUMMER)
    start = sub.local_midnight_ms(SUMMER)
    per_hour = Counter(
        h
        for hour, row in sub.day_rows("pageEvents", DEFAULT_APP, SUMMER)
        for h, _ in hour_parts(hour, row)
    )
    fresh.faults.memory_limit_rows = max(per_hour.values())
    assert len(day_rows) > fresh.faults.memory_limit_rows
    r = post(fresh, body("pageEvents", None, days(start)))
    assert r.status_code == 400 and "Query exceeded memory limit" in r.text
    hourly = []
    for h in range(24):
        hourly += results(
            fresh, body("pageEvents", None, days(start + h * 3_600_000, 1, "hourRange"))
        )
    assert len(hourly) == sum(per_hour.values()) > len(day_rows)
    assert sum(r["numEvents"] for r in hourly) == sum(r["numEvents"] for r in day_rows)
    assert sum(r["numMinutes"] for r in hourly) == sum(r["numMinutes"] for r in day_rows)


def test_reset_truncate_garbage(fresh):
    payload = body("events", None, days(noon(SUMMER)))
    fresh.faults.reset_every = 1
    with pytest.raises(requests.exceptions.ConnectionError):
        post(fresh, payload)
    fresh.faults.reset_every = 0

    fresh.faults.truncate_every = 1
    with pytest.raises((requests.exceptions.ChunkedEncodingError, ValueError)):
        post(fresh, payload).json()
    fresh.faults.truncate_every = 0

    fresh.faults.garbage_every = 1
    r = post(fresh, payload)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html"
    with pytest.raises(ValueError):
        r.json()
    fresh.faults.garbage_every = 0
    assert post(fresh, payload).status_code == 200


def test_timeout_every(fresh):
    fresh.faults.update(timeout_every=2, timeout_sleep_s=1.0)
    payload = body("accounts", None)
    assert post(fresh, payload, timeout=0.5).status_code == 200
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(fresh, payload, timeout=0.3)
    assert post(fresh, payload, timeout=0.5).status_code == 200


def test_wrong_timezone_answers_utc_days(fresh, sub):
    fresh.faults.wrong_timezone = "UTC"
    rows = results(fresh, body("events", None, days(noon(SUMMER))))
    assert rows and {r["day"] % 86_400_000 for r in rows} == {0}
    assert {r["day"] for r in rows} != {sub.local_midnight_ms(SUMMER)}


def test_keep_alive_stats_and_concurrency(fresh):
    with requests.Session() as session:
        for _ in range(3):
            r = session.post(
                f"{fresh.url}/api/v1/aggregation",
                json=body("pages", None),
                headers={"X-Pendo-Integration-Key": KEY},
            )
            assert r.status_code == 200
    stats = fresh.stats.snapshot()
    assert stats["connections"] == 1 and stats["aggregation_requests"] == 3
    assert stats["by_source"] == {"pages": 3} and stats["response_bytes"] > 0

    fresh.faults.latency_base_ms = 200
    threads = [
        threading.Thread(target=post, args=(fresh, body("accounts", None))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fresh.stats.max_in_flight >= 2


def test_admin_endpoints(fresh):
    r = requests.post(f"{fresh.url}/_emulator/faults", json={"fail_every": 1, "fail_status": 500})
    assert r.status_code == 200 and r.json()["fail_every"] == 1
    assert fresh.faults.fail_status == 500
    assert post(fresh, body("accounts", None)).status_code == 500
    assert requests.post(f"{fresh.url}/_emulator/faults", json={"nope": 1}).status_code == 400
    requests.post(f"{fresh.url}/_emulator/faults", json={"fail_every": 0}).raise_for_status()
    stats = requests.get(f"{fresh.url}/_emulator/stats").json()
    assert stats["aggregation_requests"] == 1 and stats["by_status"] == {"500": 1}
    assert requests.get(f"{fresh.url}/_emulator/faults").json()["fail_every"] == 0
    requests.post(f"{fresh.url}/_emulator/stats/reset").raise_for_status()
    assert requests.get(f"{fresh.url}/_emulator/stats").json()["requests"] == 0


# --- streaming and CLI --------------------------------------------------------------------
# Slow (8 s: a 200,000-visitor answer), so outside `make test-quick`'s 90 s.
@pytest.mark.slow
def test_large_visitor_answer_is_streamed_in_chunks():
    big = make_sub(scale=1000.0, drift=())  # 200,000 visitors
    assert big.visitor_count == 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with EmulatorServer(big, integration_key=KEY) as srv:
        r = post(srv, body("visitors", None), stream=True)
        assert r.status_code == 200 and r.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in r.headers
        n = 0
        anonymous = 0
        for row in ijson.items(r.raw, "results.item"):
            n += 1
            anonymous += row["visitorId"].startswith("_PENDO_T_")
        assert srv.stats.rows == n
    assert n == 200_000 and 0 < anonymous < n
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    # 200k visitor dicts would take several hundred MB; streaming keeps it flat.
    assert grown_mb < 150, grown_mb


def test_cli_serves_the_demo_until_terminated():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pendo_assets.emulator",
            "--port",
            "0",
            "--days",
            "5",
            "--key",
            "cli-key",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        # PENDO_TODAY pins both
        yesterday = days(noon(Clock.from_env().today() - timedelta(days=1)))
        assert "DEMO DATA" in line and "America/New_York" in line
        url = re.search(r"http://[\d.]+:\d+", line).group(0)
        r = requests.post(
            f"{url}/api/v1/aggregation",
            json=body("events", {"appId": 'expandAppIds("*")'}, yesterday),
            headers={"X-Pendo-Integration-Key": "cli-key"},
            timeout=10,
        )
        assert r.status_code == 200 and r.json()["results"]
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_server_stop_is_idempotent_and_faults_default(sub):
    srv = EmulatorServer(sub, port=0)
    assert srv.url.startswith("http://127.0.0.1:")
    srv.start()
    srv.stop()
    srv.stop()
    assert Faults().auth_status == 401 and Faults().fail_status == 429


# --- REST endpoints: metadata schemas and segments -----------------------------------------
def test_rest_endpoints_need_the_key_and_can_be_refused(sub):
    with EmulatorServer(sub, integration_key=KEY, clock=Clock(NOW.date())) as srv:
        schema = get(srv, "/api/v1/metadata/schema/account").json()
        assert schema["custom"]["renewaldate"]["Type"] == "time"
        assert get(srv, "/api/v1/metadata/schema/visitor").json()["custom"]["beta_opt_in"][
            "Type"
        ] == ("boolean")
        assert get(srv, "/api/v1/metadata/schema/guide").status_code == 404
        segments = get(srv, "/api/v1/segment").json()
        assert isinstance(segments, list) and segments
        one = get(srv, f"/api/v1/segment/{segments[0]['id']}").json()
        assert one == segments[0]
        assert get(srv, "/api/v1/segment", key="wrong").status_code == 401
        srv.faults.update(forbidden_paths=["/api/v1/metadata/schema"])
        assert get(srv, "/api/v1/metadata/schema/account").status_code == 403
        assert get(srv, "/api/v1/segment").status_code == 200


@pytest.mark.parametrize(
    ("shapes", "param_status", "step_status"),
    [(("parameter", "pipeline"), 200, 200), (("parameter",), 200, 400), (("pipeline",), 400, 200)],
)
def test_segment_membership_answers_only_the_shapes_this_pendo_knows(
    sub, shapes, param_status, step_status
):
    from pendo_assets.emulator.segments import segment_visitors, segments

    sub = sub.replace(segment_shapes=shapes)
    seg = segments(sub)[0]["id"]
    select = {"select": {"visitorId": "visitorId"}}
    with EmulatorServer(sub, integration_key=KEY, clock=Clock(NOW.date())) as srv:
        by_param = post(srv, body("visitors", {"segmentId": seg}, None, select))
        by_step = post(srv, body("visitors", None, None, {"segment": {"id": seg}}, select))
        unknown = post(srv, body("visitors", None, None, {"segment": {"id": "nope"}}))
    assert (by_param.status_code, by_step.status_code) == (param_status, step_status)
    for r in (by_param, by_step):
        if r.status_code == 200:
            rows = r.json()["results"]
            assert all(list(row) == ["visitorId"] for row in rows)
            assert {row["visitorId"] for row in rows} == segment_visitors(sub, seg)
    assert unknown.status_code == 400
