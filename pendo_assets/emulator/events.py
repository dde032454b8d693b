"""Row generators for the event sources, named by the catalog's ``EventSource.emulator``.

One (app, local day) first gets its *activity*: the visitors active that day and their
sessions (server, IP, user agent, volume, and the one UTC hour the session is filed under).
Each event source then derives its rows from that activity with its own ``Random``, so any
(source, app, day) is generated on its own, and sources agree on who was active.

Every day row is filed under the hour its session starts in. Aggregated rows carry
``firstTime``/``lastTime`` (first and last event, as real Pendo rows do); about a quarter of
sessions run on into the next hour, and an hourRange answer then has two rows for them, one
per hour, with their own counts and times (``hour_parts``). Merged back (sum the counts, min
and max the times) hour rows equal the day rows exactly.
"""

from __future__ import annotations

import bisect
import functools
import json
import random
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, NamedTuple

from pendo_assets.catalog import SOURCES_BY_NAME, TAG_ENTITY_OF
from pendo_assets.emulator import vocabulary as V
from pendo_assets.emulator.entities import (
    VisitorCore,
    _consts,
    deleted_tag_ids,
    features,
    guides,
    pages,
    tag_change_app,
    tag_change_id,
    tag_change_reaches,
    track_types,
    visitor_agent,
    visitor_core,
)
from pendo_assets.emulator.ids import rng_for
from pendo_assets.emulator.subscription import HOUR_MS

if TYPE_CHECKING:
    from pendo_assets.emulator.subscription import Subscription

# Relative activity by local hour of day: office hours are busiest.
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 7, 8, 9, 8, 7, 5, 3, 3, 2, 2, 1, 1)
_WEEKDAY_FACTOR = (1.0, 1.05, 1.05, 1.0, 0.9, 0.35, 0.25)  # Mon..Sun
_DELETED_SHARE = 0.03  # share of page/feature event rows whose tag was deleted since


class Session(NamedTuple):
    """One visitor's activity on one app and day from one server/IP/user agent."""

    core: VisitorCore
    account_id: str
    hour_ms: int  # UTC start of the hour this session's day rows are filed under
    server: str
    remote_ip: str
    user_agent: str
    num_events: int
    num_minutes: int
    seed: int  # shared by guideEvents and pollEvents so they tell the same story
    place: tuple
    spans: bool = False  # runs on into the next hour (never past the day's last hour)


def server_name(sub: Subscription, app_id: int) -> str:
    k = sub.app_ids.index(app_id)
    return ("app.example.com", "portal.example.com")[k] if k < 2 else f"app{k}.example.com"


# Small caches: an hourRange request asks the same day 24 times, but a whole history of
# rows must not pile up in memory.
@functools.lru_cache(maxsize=256)
def activity(sub: Subscription, app_id: int, day: date) -> tuple[Session, ...]:
    """Sessions of one app on one local day; empty outside the subscription's history."""
    if day < sub.first_day or day > sub.last_day or app_id not in sub.app_ids:
        return ()
    k = sub.app_ids.index(app_id)
    rng = rng_for(sub.seed, "activity", app_id, day.isoformat())
    n = sub.visitor_count
    share = sub.daily_active_share * _WEEKDAY_FACTOR[day.weekday()] * rng.uniform(0.85, 1.15)
    n_active = min(n, round(n * share))
    chosen = sorted(rng.sample(range(n), n_active))
    midnight = sub.local_midnight_ms(day)
    hours = sub.day_hours(day)
    cum: list[int] = []
    total = 0
    for h in range(hours):
        total += _HOUR_WEIGHTS[h % 24]
        cum.append(total)
    consts = _consts(sub)
    server = server_name(sub, app_id)
    sessions: list[Session] = []
    seen: set[tuple] = set()
    for i in chosen:
        core = visitor_core(sub, i, consts)
        if not core.apps >> k & 1:
            continue
        ip, _, ua_index = visitor_agent(core)
        ua = V.USER_AGENTS[ua_index]
        place = V.PLACES[(core.h >> 7) % len(V.PLACES)]
        for s in range(2 if rng.random() < 0.15 else 1):
            if s == 0:
                remote_ip, user_agent = ip, ua[3]
            else:  # a second device: phone on a mobile network
                remote_ip = (
                    f"100.{rng.randrange(64, 128)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                )
                user_agent = rng.choice(V.MOBILE_USER_AGENTS)[3]
            account_id = core.account_id
            if len(core.account_ids) > 1 and rng.random() < 0.3:
                account_id = core.account_ids[1]
            key = (core.visitor_id, account_id, remote_ip, user_agent)
            if key in seen:
                continue
            seen.add(key)
            hour = bisect.bisect_right(cum, rng.randrange(total))
            num_events = min(500, int(rng.paretovariate(1.2) * 3))
            num_minutes = max(1, min(num_events, round(num_events * rng.uniform(0.1, 0.7))))
            sessions.append(
                Session(
                    core=core,
                    account_id=account_id,
                    hour_ms=midnight + hour * HOUR_MS,
                    server=server,
                    remote_ip=remote_ip,
                    user_agent=user_agent,
                    num_events=num_events,
                    num_minutes=num_minutes,
                    seed=(seed := rng.getrandbits(63)),
                    place=place,
                    # From the seed, not another draw, so the generated data stays the same.
                    spans=hour < hours - 1 and (seed >> 3) & 3 == 0,
                )
            )
    return tuple(sessions)


Pairs = list[tuple[int, dict]]  # (hour start ms, row)


def _aggregated(s: Session, app_id: int, day_ms: int, num_events: int, num_minutes: int) -> dict:
    first = s.hour_ms + (s.seed >> 8) % 1_800_000
    if s.spans and num_events >= 2:
        last = s.hour_ms + HOUR_MS + (s.seed >> 30) % 1_800_000
    else:
        last = first + min(num_minutes * 60_000, 1_700_000) if num_events > 1 else first
    return {
        "accountId": s.account_id,
        "appId": app_id,
        "day": day_ms,
        "firstTime": first,
        "lastTime": last,
        "numEvents": num_events,
        "numMinutes": num_minutes,
        "remoteIp": s.remote_ip,
        "server": s.server,
        "userAgent": s.user_agent,
        "visitorId": s.core.visitor_id,
    }


def hour_parts(hour_ms: int, row: dict) -> list[tuple[int, dict]]:
    """(hour start, hourRange row) pairs of an aggregated day row: one, or two when its
    activity runs on into the next hour (counts split, each part with its own times)."""
    out = {k: v for k, v in row.items() if k != "day"}
    next_hour = hour_ms + HOUR_MS
    last = row.get("lastTime")
    if last is None or last < next_hour:
        return [(hour_ms, {**out, "hour": hour_ms})]
    n, m = row["numEvents"], row["numMinutes"]
    first_part = {
        **out,
        "numEvents": n - n // 2,
        "numMinutes": m - m // 2,
        "lastTime": next_hour - 1_000,
        "hour": hour_ms,
    }
    second_part = {
        **out,
        "numEvents": n // 2,
        "numMinutes": m // 2,
        "firstTime": min(next_hour + 1_000, last),
        "hour": next_hour,
    }
    return [(hour_ms, first_part), (next_hour, second_part)]


def _events(sub, app_id, day, sessions, rng) -> Pairs:
    day_ms = sub.local_midnight_ms(day)
    return [
        (s.hour_ms, _aggregated(s, app_id, day_ms, s.num_events, s.num_minutes)) for s in sessions
    ]


def _split(rng: random.Random, s: Session, parts: int) -> tuple[int, int]:
    num_events = rng.randint(1, max(1, s.num_events // parts))
    return num_events, rng.randint(0, min(num_events, max(1, s.num_minutes)))


def _tag_ids(sub: Subscription, app_id: int, rows: tuple[dict, ...], kind: str) -> tuple:
    return tuple(r["id"] for r in rows), deleted_tag_ids(sub, kind, app_id)


def _page_events(sub, app_id, day, sessions, rng) -> Pairs:
    day_ms = sub.local_midnight_ms(day)
    live, deleted = _tag_ids(sub, app_id, pages(sub, app_id), "Page")
    out: Pairs = []
    for s in sessions:
        n = min(len(live), rng.randint(1, min(6, 1 + s.num_events // 5)))
        for page_id in rng.sample(live, n):
            if rng.random() < _DELETED_SHARE:
                page_id = rng.choice(deleted)
            params = None if rng.random() < 0.7 else dict(rng.choice(V.PAGE_PARAMETERS))
            row = _aggregated(s, app_id, day_ms, *_split(rng, s, n))
            row["pageId"] = page_id
            row["parameters"] = params
            out.append((s.hour_ms, row))
    return out


def _feature_events(sub, app_id, day, sessions, rng) -> Pairs:
    day_ms = sub.local_midnight_ms(day)
    live, deleted = _tag_ids(sub, app_id, features(sub, app_id), "Feature")
    out: Pairs = []
    for s in sessions:
        n = min(len(live), rng.randint(0, min(5, s.num_events // 3)))
        for feature_id in rng.sample(live, n):
            if rng.random() < _DELETED_SHARE:
                feature_id = rng.choice(deleted)
            row = _aggregated(s, app_id, day_ms, *_split(rng, s, n))
            row["featureId"] = feature_id
            out.append((s.hour_ms, row))
    return out


def _track_events(sub, app_id, day, sessions, rng) -> Pairs:
    day_ms = sub.local_midnight_ms(day)
    live = tuple(r["id"] for r in track_types(sub, app_id))
    out: Pairs = []
    for s in sessions:
        if not live or rng.random() >= 0.35:
            continue
        n = min(len(live), rng.randint(1, 2))
        for track_type_id in rng.sample(live, n):
            row = _aggregated(s, app_id, day_ms, *_split(rng, s, n))
            row["trackTypeId"] = track_type_id
            row["properties"] = dict(rng.choice(V.TRACK_PROPERTIES))
            out.append((s.hour_ms, row))
    return out


def _guide_story(sub: Subscription, app_id: int, s: Session) -> tuple[list[dict], list[dict]]:
    """(guideEvents rows, pollEvents rows) of one session; both sources call this."""
    rng = random.Random(s.seed ^ 0x6A09E667)
    public = [g for g in guides(sub, app_id) if g["state"] == "public"]
    if not public or rng.random() >= 0.2:
        return [], []
    guide = rng.choice(public)
    polls = {p["id"]: p for p in guide["polls"]}
    path = V.PAGE_PATHS[rng.randrange(len(V.PAGE_PATHS))].replace("{id}", str(rng.randrange(999)))
    country, region, lat, lon = s.place
    base = {
        "accountId": s.account_id,
        "accountIds": list(s.core.account_ids),
        "appId": app_id,
        "country": country,
        "guideId": guide["id"],
        "latitude": lat,
        "loadTime": rng.randint(80, 4000),
        "longitude": lon,
        "pollId": None,
        "pollResponse": None,
        "region": region,
        "remoteIp": s.remote_ip,
        "serverName": s.server,
        "url": f"https://{s.server}{path}",
        "userAgent": s.user_agent,
        "visitorId": s.core.visitor_id,
    }
    # Start early enough in the hour that the whole story stays inside it.
    t = s.hour_ms + rng.randrange(3_000_000)
    guide_rows: list[dict] = []
    poll_rows: list[dict] = []

    def emit(kind: str, step: dict, rows: list[dict], **extra: object) -> None:
        nonlocal t
        t += rng.randint(1000, 20000)
        # Pendo's server receives the event a little after the browser sent it.
        received = t + 40 + t % 900
        rows.append(
            {
                **base,
                "browserTime": t,
                "guideStepId": step["id"],
                "guideTimestamp": received,
                "type": kind,
                **extra,
            }
        )

    extra = random.Random(s.seed ^ 0xBB67AE85) if sub.unknown_guide_event_type else None
    steps = guide["steps"]
    for si, step in enumerate(steps):
        emit("guideSeen", step, guide_rows)
        if step["pollIds"] and rng.random() < 0.6:
            for poll_id in step["pollIds"]:
                nps = polls[poll_id]["questionType"] == "NPSRating"
                answer = rng.randint(0, 10) if nps else rng.choice(V.FREE_TEXT_ANSWERS)
                emit("pollResponse", step, poll_rows, pollId=poll_id, pollResponse=answer)
        # About 4.5% of guide events, as seen on a real subscription.
        if rng.random() < 0.09:
            emit("guideActivity", step, guide_rows)
        if extra is not None and extra.random() < 0.1:
            # From its own Random and without moving `t`: the rest of the story is unchanged.
            at = t + extra.randint(1, 999)
            guide_rows.append(
                {
                    **base,
                    "browserTime": at,
                    "guideStepId": step["id"],
                    "guideTimestamp": at + 40 + at % 900,
                    "type": sub.unknown_guide_event_type,
                }
            )
        if si < len(steps) - 1 and rng.random() < 0.6:
            emit("guideAdvanced", step, guide_rows)
            continue
        r = rng.random()
        if r < 0.5:
            emit("guideDismissed", step, guide_rows)
        elif r < 0.65:
            emit("guideSnoozed", step, guide_rows)
        elif r < 0.75:
            emit("guideTimeout", step, guide_rows)
        elif si == len(steps) - 1:
            emit("guideAdvanced", step, guide_rows)  # finished the last step
        break
    return guide_rows, poll_rows


def _guide_events(sub, app_id, day, sessions, rng) -> Pairs:
    return [(s.hour_ms, row) for s in sessions for row in _guide_story(sub, app_id, s)[0]]


def _poll_events(sub, app_id, day, sessions, rng) -> Pairs:
    return [(s.hour_ms, row) for s in sessions for row in _guide_story(sub, app_id, s)[1]]


def _session_key(row: dict) -> tuple:
    return (row["visitorId"], row["accountId"], row["server"], row["remoteIp"], row["userAgent"])


def _retagged(sub, source_name, app_id, day, sessions, pairs: Pairs, changes: list) -> Pairs:
    """A tag-scoped day after retroactive tag changes: a deleted tag's rows are gone; a created
    tag has rows from some sessions; an edited (widened) tag counts one more event on its rows
    and gains rows from some other sessions. Days a dirty tag has not reached stay as they were.
    """
    tag_field = SOURCES_BY_NAME[source_name].tag_field
    day_ms = sub.local_midnight_ms(day)
    for change in changes:
        tag_id = tag_change_id(sub, change)
        if change.action == "delete":
            pairs = [(h, r) for h, r in pairs if r[tag_field] != tag_id]
            continue
        if not tag_change_reaches(sub, change, day):
            continue
        rng = rng_for(sub.seed, "retag", source_name, change.salt, app_id, day.isoformat())
        tagged = {_session_key(r) for _, r in pairs if r[tag_field] == tag_id}
        pairs = [
            (h, {**r, "numEvents": r["numEvents"] + 1}) if r[tag_field] == tag_id else (h, r)
            for h, r in pairs
        ]
        for s in sessions:
            if rng.random() >= change.share:
                continue
            row = _aggregated(s, app_id, day_ms, *_split(rng, s, 1))
            if _session_key(row) in tagged:
                continue
            row[tag_field] = tag_id
            if source_name == "pageEvents":
                row["parameters"] = None
            elif source_name == "trackEvents":
                row["properties"] = dict(rng.choice(V.TRACK_PROPERTIES))
            pairs.append((s.hour_ms, row))
    return pairs


EventGenerator = Callable[["Subscription", int, date, tuple[Session, ...], random.Random], Pairs]

# Keyed by the catalog's ``EventSource.emulator``: sources of one shape can share a generator.
EVENT_GENERATORS: dict[str, EventGenerator] = {
    "activity": _events,
    "page_views": _page_events,
    "feature_clicks": _feature_events,
    "track_calls": _track_events,
    "guide_story": _guide_events,
    "poll_answers": _poll_events,
}


def _grain_key(row: dict, grain: tuple[str, ...]) -> tuple:
    return tuple(
        json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
        for v in (row.get(f) for f in grain)
    )


@functools.lru_cache(maxsize=256)
def day_rows(sub: Subscription, source_name: str, app_id: int, day: date) -> tuple:
    """(hour ms, row) pairs of one event source, app and local day (cached; don't mutate)."""
    generator = EVENT_GENERATORS[SOURCES_BY_NAME[source_name].emulator]
    sessions = activity(sub, app_id, day)
    if not sessions:
        return ()
    pairs = generator(
        sub, app_id, day, sessions, rng_for(sub.seed, source_name, app_id, day.isoformat())
    )
    grain = SOURCES_BY_NAME[source_name].grain
    seen: set[tuple] = set()
    unique: Pairs = []
    for hour, row in pairs:  # the catalog grain must identify a row
        key = _grain_key(row, grain)
        if key not in seen:
            seen.add(key)
            unique.append((hour, row))
    if sub.edge_raw_events and SOURCES_BY_NAME[source_name].per_event:
        start, end = sub.local_midnight_ms(day), sub.local_midnight_ms(day + timedelta(days=1))
        for i in range(min(sub.edge_raw_events, len(unique) // 2)):
            # Sent on the day's first milliseconds; received on its last ones.
            unique[i][1].update(browserTime=start + i, guideTimestamp=start + i + 40)
            unique[-1 - i][1].update(browserTime=end - 41 - i, guideTimestamp=end - 1 - i)
    if sub.midnight_raw_events and SOURCES_BY_NAME[source_name].per_event:
        end = sub.local_midnight_ms(day + timedelta(days=1))
        middle = len(unique) // 2  # clear of the edge events above
        for i, (_, row) in enumerate(unique[middle : middle + sub.midnight_raw_events]):
            row.update(browserTime=end - 300 - i, guideTimestamp=end + 300 + i)
    changes = [
        c
        for c in sub.tag_changes
        if source_name in TAG_ENTITY_OF
        and c.source == TAG_ENTITY_OF[source_name].name
        and tag_change_app(sub, c) == app_id
    ]
    if changes:
        unique = _retagged(sub, source_name, app_id, day, sessions, unique, changes)
    if sub.duplicate_raw_events and SOURCES_BY_NAME[source_name].per_event:
        # Sent twice, identical: copies, since rows may be altered below (stray times, drift).
        unique += [(h, dict(r)) for h, r in unique[: sub.duplicate_raw_events]]
    if sub.stray_raw_events and SOURCES_BY_NAME[source_name].per_event:
        midnight = sub.local_midnight_ms(day)
        for i, (_, row) in enumerate(unique[: sub.stray_raw_events]):
            row["browserTime"] = midnight - sub.stray_shift_ms + i * 1000
    for d in sub.drift:
        if d.source == source_name and d.first_day <= day <= d.last_day:
            drng = rng_for(sub.seed, "drift", source_name, d.field, app_id, day.isoformat())
            for _, row in unique:
                row[d.field] = (
                    drng.randint(0, 1000) if d.kind == "int" else f"v{drng.randrange(10**6)}"
                )
    return tuple(unique)
