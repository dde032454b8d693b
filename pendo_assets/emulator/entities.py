"""Row generators for the entity sources (accounts, visitors, pages, features, guides, ...).

Generators are named by the catalog's ``EntitySource.emulator`` in ``ENTITY_GENERATORS``.
Visitors are derived from a cheap per-index hash (not a ``Random`` each) so a million of them
stream fast; the other entities are small and use one ``Random`` per row.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, NamedTuple

from pendo_assets.catalog import SOURCES_BY_NAME
from pendo_assets.emulator import vocabulary as V
from pendo_assets.emulator.expressions import set_path
from pendo_assets.emulator.ids import digest, mix64, pendo_id, rng_for, seed_of, short_token
from pendo_assets.emulator.subscription import DAY_MS, HOUR_MS

if TYPE_CHECKING:
    from pendo_assets.emulator.subscription import Subscription

ANONYMOUS_PREFIX = "_PENDO_T_"


def app_group_name(app_id: int) -> str:
    """Per-app metadata group: ``auto_<appId>`` with ``_`` for the minus sign."""
    return "auto_" + str(app_id).replace("-", "_")


class VisitorCore(NamedTuple):
    """What event generators need to know about a visitor (cheap to compute by index)."""

    index: int
    visitor_id: str
    account_id: str  # "" for anonymous visitors
    account_ids: tuple[str, ...]
    anonymous: bool
    excluded: bool  # on the subscription's Exclude List (dropped by blacklist: "apply")
    apps: int  # bit k set: uses app k of sub.app_ids (bit 0 always)
    h: int


# NamedTuple construction through tuple.__new__ skips a Python-level __new__ per visitor.
_new = tuple.__new__


class _Consts(NamedTuple):
    base: int
    anon_threshold: int
    account_ids: tuple[str, ...]


@functools.lru_cache(maxsize=64)
def _consts(sub: Subscription) -> _Consts:
    account_ids = tuple(digest(sub.seed, "account", j).hex()[:13] for j in range(sub.account_count))
    return _Consts(
        base=seed_of(sub.seed, "visitors"),
        anon_threshold=int(sub.anonymous_share * 65536),
        account_ids=account_ids,
    )


def account_ids(sub: Subscription) -> tuple[str, ...]:
    return _consts(sub).account_ids


def visitor_core(sub: Subscription, i: int, consts: _Consts | None = None) -> VisitorCore:
    c = consts or _consts(sub)
    h = mix64(c.base ^ (i * 0x9E3779B1))
    anonymous = (h & 0xFFFF) < c.anon_threshold
    apps = 1 | ((h >> 40) & 0xFFFE)  # other apps: one hash bit each, about half the visitors
    if anonymous:
        vid = ANONYMOUS_PREFIX + short_token(mix64(h))
        return _new(VisitorCore, (i, vid, "", (), True, False, apps, h))
    accs = c.account_ids
    u = ((h >> 16) & 0xFFFF) / 65536.0
    a = int(len(accs) * u**1.6)  # skewed: low-index accounts are the big customers
    if (h >> 32) & 0xF == 0 and len(accs) > 1:
        account_ids_ = (accs[a], accs[(a + 7) % len(accs)])
    else:
        account_ids_ = (accs[a],)
    excluded = (h >> 50) % 100 == 0
    return _new(VisitorCore, (i, str(i + 1), accs[a], account_ids_, False, excluded, apps, h))


# Lookup tables so per-visitor formatting stays cheap (a million visitors must stream fast).
_OCTETS = tuple(str(n) for n in range(256))
_HEX16 = tuple(format(n, "x") for n in range(65536))


def visitor_agent(core: VisitorCore) -> tuple[str, str, int]:
    """(remote ip, language, index into ``V.USER_AGENTS``) a visitor usually shows."""
    h = mix64(core.h ^ 0xA5A5)
    if h & 0x7 == 0:
        x = _HEX16
        ip = f"2001:db8:{x[(h >> 8) & 0xFFFF]}:{x[(h >> 24) & 0xFFFF]}::{x[(h >> 40) & 0xFFF]}"
    else:
        o = _OCTETS
        a, b, c, d = 11 + (h >> 8) % 200, (h >> 16) & 0xFF, (h >> 24) & 0xFF, 1 + (h >> 32) % 254
        ip = f"{o[a]}.{o[b]}.{o[c]}.{o[d]}"
    return ip, V.LANGUAGES[(h >> 44) % len(V.LANGUAGES)], (h >> 52) % len(V.USER_AGENTS)


class _VisitorParts(NamedTuple):
    core: VisitorCore
    ip: str
    lang: str
    ua: int
    email: str | None
    firstvisit: int
    lastvisit: int
    lastupdated: int
    custom: tuple | None  # (role or None, beta_opt_in or None, internal) for identified visitors


def _visitor_parts(sub: Subscription) -> Iterator[_VisitorParts]:
    consts = _consts(sub)
    start = sub.history_start_ms
    span = sub.history_end_ms - start
    year = 365 * DAY_MS
    n_first, n_last, n_dom = len(V.FIRST_NAMES), len(V.LAST_NAMES), len(V.EMAIL_DOMAINS)
    new = _new
    for i in range(sub.visitor_count):
        core = visitor_core(sub, i, consts)
        h2 = mix64(core.h)
        ip, lang, ua = visitor_agent(core)
        lastvisit = start + (h2 >> 20) % span
        email = custom = None
        if not core.anonymous:
            if h2 & 0xF:  # a few identified visitors lack an email
                email = (
                    f"{V.FIRST_NAMES[(h2 >> 4) % n_first]}.{V.LAST_NAMES[(h2 >> 12) % n_last]}"
                    f"{i}@{V.EMAIL_DOMAINS[(h2 >> 18) % n_dom]}"
                )
            custom = (
                V.ROLES[(h2 >> 25) % len(V.ROLES)] if h2 >> 24 & 1 else None,
                bool(h2 >> 30 & 1) if h2 >> 28 & 3 == 0 else None,
                core.excluded,
            )
        firstvisit = start - (h2 >> 8) % year
        lastupdated = lastvisit + (h2 >> 40) % HOUR_MS
        parts = (core, ip, lang, ua, email, firstvisit, lastvisit, lastupdated, custom)
        yield new(_VisitorParts, parts)


def _custom_dict(custom: tuple) -> dict:
    role, beta, internal = custom
    out: dict = {}
    if role is not None:
        out["role"] = role
    if beta is not None:
        out["beta_opt_in"] = beta
    if internal:
        out["internal"] = True
    return out


def iter_visitors(sub: Subscription) -> Iterator[dict]:
    """Visitor rows one at a time (never a list of all of them)."""
    groups = [(k, app_group_name(app)) for k, app in enumerate(sub.app_ids)]
    for p in _visitor_parts(sub):
        core = p.core
        browser, version, os_name, ua = V.USER_AGENTS[p.ua]
        agent: dict = {"ipaddress": p.ip, "language": p.lang}
        if p.email is not None:
            agent["email"] = p.email
        metadata: dict = {
            "agent": agent,
            "auto": {
                "accountid": core.account_id,
                "accountids": list(core.account_ids),
                "firstvisit": p.firstvisit,
                "id": core.visitor_id,
                "idhash": core.h & 0xFFFFFFFF,
                "lastbrowsername": browser,
                "lastbrowserversion": version,
                "lastoperatingsystem": os_name,
                "lastservername": "app.example.com",
                "lastupdated": p.lastupdated,
                "lastuseragent": ua,
                "lastvisit": p.lastvisit,
                "nid": core.index,
            },
        }
        for k, group in groups:
            if core.apps >> k & 1:
                metadata[group] = {
                    "firstvisit": p.firstvisit + k * HOUR_MS,
                    "lastvisit": p.lastvisit,
                }
        if p.custom is not None:
            metadata["custom"] = _custom_dict(p.custom)
        yield {"visitorId": core.visitor_id, "metadata": metadata}


def iter_visitors_json(sub: Subscription, identified_only: bool = False) -> Iterator[str]:
    """The same rows as ``iter_visitors``, already JSON-encoded (ASCII, compact).

    The server's fast path for plain visitor dumps: formatting one string is several times
    cheaper than building nested dicts and encoding them.
    """
    dumps = functools.partial(json.dumps, separators=(",", ":"))
    ua_parts = [
        (
            f'"lastbrowsername":{dumps(b)},"lastbrowserversion":{dumps(v)},"lastoperatingsystem":{dumps(o)},',
            dumps(u),
        )
        for b, v, o, u in V.USER_AGENTS
    ]
    group_names = [dumps(app_group_name(app)) for app in sub.app_ids]
    custom_cache: dict[tuple, str] = {}
    q = encode_basestring_ascii  # C-fast JSON string quoting
    for p in _visitor_parts(sub):
        core = p.core
        if identified_only and core.anonymous:
            continue
        browser_part, ua = ua_parts[p.ua]
        email = f',"email":{q(p.email)}' if p.email is not None else ""
        groups = ""
        for k, name in enumerate(group_names):
            if core.apps >> k & 1:
                first = p.firstvisit + k * HOUR_MS
                groups += f',{name}:{{"firstvisit":{first},"lastvisit":{p.lastvisit}}}'
        if p.custom is not None:
            custom = custom_cache.get(p.custom)
            if custom is None:
                custom = custom_cache[p.custom] = ',"custom":' + dumps(_custom_dict(p.custom))
        else:
            custom = ""
        vid = q(core.visitor_id)
        accountids = ",".join(map(q, core.account_ids))
        yield (
            f'{{"visitorId":{vid},"metadata":{{"agent":{{"ipaddress":"{p.ip}","language":"{p.lang}"{email}}},'
            f'"auto":{{"accountid":{q(core.account_id)},"accountids":[{accountids}],'
            f'"firstvisit":{p.firstvisit},"id":{vid},"idhash":{core.h & 0xFFFFFFFF},{browser_part}'
            f'"lastservername":"app.example.com","lastupdated":{p.lastupdated},"lastuseragent":{ua},'
            f'"lastvisit":{p.lastvisit},"nid":{core.index}}}{groups}{custom}}}}}'
        )


def _user(k: int) -> dict:
    uid, username, first, last, role = V.USERS[k % len(V.USERS)]
    return {"id": uid, "username": username, "first": first, "last": last, "role": role}


def accounts(sub: Subscription) -> list[dict]:
    ids = account_ids(sub)
    start, end = sub.history_start_ms, sub.history_end_ms
    rows = []
    for j, account_id in enumerate(ids):
        rng = rng_for(sub.seed, "account", j)
        if j < len(V.ACCOUNT_NAMES):
            name = V.ACCOUNT_NAMES[j]  # the unicode names are always present
        else:
            name = rng.choice(V.ACCOUNT_NAMES) + rng.choice(V.ACCOUNT_SUFFIXES)
        firstvisit = start - rng.randrange(DAY_MS, 700 * DAY_MS)
        lastvisit = rng.randrange(start, end)
        custom: dict = {}
        if rng.random() < 0.6:
            custom["plan"] = rng.choice(V.PLANS)
        if rng.random() < 0.5:
            custom["seats"] = rng.randint(1, 500)
        if rng.random() < 0.3:
            custom["region"] = rng.choice(V.REGIONS_CUSTOM)
        metadata: dict = {
            "agent": {"name": name, "industry": rng.choice(V.INDUSTRIES)},
            "auto": {
                "id": account_id,
                "idhash": rng.getrandbits(32),
                "firstvisit": firstvisit,
                "lastvisit": lastvisit,
                "lastupdated": lastvisit + rng.randrange(HOUR_MS),
            },
            "custom": custom,
        }
        if rng.random() < 0.25:
            metadata["salesforce"] = {"accountid": "001" + pendo_id(sub.seed, "sf", j)[:15]}
        if rng.random() < 0.7:
            # A custom date field: Pendo declares it `time` and sends epoch ms (drawn last, so
            # every other field keeps the value it had before this field existed).
            custom["renewaldate"] = end + rng.randrange(DAY_MS, 400 * DAY_MS)
        rows.append({"accountId": account_id, "metadata": metadata})
    return rows


def _tag_common(sub: Subscription, kind: str, app_id: int, i: int, name: str, rng) -> dict:
    created = sub.history_start_ms - rng.randrange(DAY_MS, 400 * DAY_MS)
    updated = created + rng.randrange(DAY_MS, 300 * DAY_MS)
    group = None
    if rng.random() < 0.8:
        area = rng.randrange(len(V.PRODUCT_AREAS))
        group = {
            "id": pendo_id(sub.seed, "group", app_id, area),
            "name": V.PRODUCT_AREAS[area],
            "description": "",
            "color": V.TAG_COLORS[area % len(V.TAG_COLORS)],
            "length": rng.randint(1, 40),
        }
    return {
        "id": pendo_id(sub.seed, kind, app_id, i),
        "appId": app_id,
        "name": name,
        "kind": kind,
        "color": rng.choice(V.TAG_COLORS),
        "dirty": rng.random() < 0.05,
        "group": group,
        "createdByUser": _user(rng.randrange(3)),
        "lastUpdatedByUser": _user(rng.randrange(3)),
        "createdAt": created,
        "lastUpdatedAt": updated,
        "rootVersionId": pendo_id(sub.seed, kind, app_id, i, "root"),
        "stableVersionId": pendo_id(sub.seed, kind, app_id, i, "stable"),
    }


def _numbered(names: tuple[str, ...], i: int) -> str:
    base = names[i % len(names)]
    return base if i < len(names) else f"{base} {i // len(names) + 1}"


def _each(sub: Subscription, kind: str, app_id: int, n: int, row: Callable) -> tuple[dict, ...]:
    """``row(i, rng)`` for the ``n`` items of one kind and app, each with its own ``Random``."""
    return tuple(row(i, rng_for(sub.seed, kind, app_id, i)) for i in range(n))


def _page_id(sub: Subscription, app_id: int, rng) -> str | None:
    page_rows = pages(sub, app_id)
    return rng.choice(page_rows)["id"] if page_rows else None


@functools.lru_cache(maxsize=256)
def pages(sub: Subscription, app_id: int) -> tuple[dict, ...]:
    def page(i: int, rng) -> dict:
        row = _tag_common(sub, "Page", app_id, i, _numbered(V.PAGE_NAMES, i), rng)
        path = V.PAGE_PATHS[i % len(V.PAGE_PATHS)]
        rule = f"//*{path}" + (f"/section{i}" if i >= len(V.PAGE_PATHS) else "")
        row["rules"] = [{"rule": rule, "designerHint": f"https://app.example.com{path}"}]
        return row

    return _each(sub, "Page", app_id, sub.n_pages, page)


@functools.lru_cache(maxsize=256)
def features(sub: Subscription, app_id: int) -> tuple[dict, ...]:
    def feature(i: int, rng) -> dict:
        row = _tag_common(sub, "Feature", app_id, i, _numbered(V.FEATURE_NAMES, i), rng)
        row["pageId"] = _page_id(sub, app_id, rng)
        row["appWide"] = rng.random() < 0.1
        row["isCoreEvent"] = rng.random() < 0.2
        row["elementPathRules"] = [f"#feature-{i}", f"button[data-action='f{i}']"]
        row["eventPropertyConfigurations"] = [] if rng.random() < 0.7 else [{"name": "label"}]
        return row

    return _each(sub, "Feature", app_id, sub.n_features, feature)


@functools.lru_cache(maxsize=256)
def track_types(sub: Subscription, app_id: int) -> tuple[dict, ...]:
    def track_type(i: int, rng) -> dict:
        name = _numbered(V.TRACK_TYPE_NAMES, i)
        row = _tag_common(sub, "TrackType", app_id, i, name, rng)
        row["trackTypeName"] = name
        row["trackTypeRules"] = [name]
        return row

    return _each(sub, "TrackType", app_id, sub.n_track_types, track_type)


def _poll(sub: Subscription, app_id: int, i: int, k: int, qtype: str, question: str) -> dict:
    """A guide poll as Pendo stores it: NPS polls carry their 0-10 scale."""
    poll: dict = {
        "id": pendo_id(sub.seed, "Poll", app_id, i, k),
        "question": question,
        "questionType": qtype,
        "attributes": {"type": qtype},
    }
    if qtype == "NPSRating":
        poll["numericResponses"] = list(range(11))
    return poll


@functools.lru_cache(maxsize=256)
def guides(sub: Subscription, app_id: int) -> tuple[dict, ...]:
    def guide(i: int, rng) -> dict:
        gid = pendo_id(sub.seed, "Guide", app_id, i)
        created = sub.history_start_ms - rng.randrange(DAY_MS, 200 * DAY_MS)
        state = (
            "public" if i < 2 else rng.choice(("public", "public", "draft", "disabled", "staged"))
        )
        n_steps = 1 if i == 0 else rng.randint(1, 3)
        polls: list[dict] = []
        if i == 0:  # an NPS guide: a 0-10 score poll plus a free-text follow-up
            polls = [
                _poll(sub, app_id, i, 0, "NPSRating", V.NPS_QUESTION),
                _poll(sub, app_id, i, 1, "FreeForm", V.NPS_FOLLOW_UP),
            ]
        elif i == 1 or rng.random() < 0.2:
            polls = [_poll(sub, app_id, i, 0, "FreeForm", V.FREE_TEXT_QUESTION)]
        steps = []
        for s in range(n_steps):
            steps.append(
                {
                    "id": pendo_id(sub.seed, "GuideStep", app_id, i, s),
                    "guideId": gid,
                    "type": "lightbox" if s == 0 else "tooltip",
                    "pageId": _page_id(sub, app_id, rng),
                    "rank": s * 1000,
                    "advanceMethod": "button",
                    "attributes": {"themeId": "default"},
                    "lastUpdatedAt": created + s,
                    "resetAt": 0,
                    # Polls live on the first step.
                    "pollIds": [p["id"] for p in polls] if s == 0 else [],
                }
            )
            if n_steps > 1:  # Pendo names the steps of multi-step walkthroughs only
                steps[-1]["name"] = V.STEP_NAMES[s % len(V.STEP_NAMES)]
        return {
            "id": gid,
            "appId": app_id,
            "name": _numbered(V.GUIDE_NAMES, i),
            "state": state,
            "launchMethod": rng.choice(("auto", "badge", "launcher", "api")),
            "isMultiStep": n_steps > 1,
            "createdAt": created,
            "lastUpdatedAt": created + rng.randrange(DAY_MS, 50 * DAY_MS),
            "publishedAt": created + DAY_MS if state != "draft" else None,
            "resetAt": 0,
            "createdByUser": _user(rng.randrange(3)),
            "lastUpdatedByUser": _user(rng.randrange(3)),
            "attributes": {"type": "building-block", "device": {"desktop": True}},
            "audience": [{"source": {"visitors": None}}, {"identified": "visitorId"}],
            "steps": steps,
            "polls": polls,
        }

    return _each(sub, "Guide", app_id, sub.n_guides, guide)


def _per_app(per_app: Callable[[Subscription, int], tuple[dict, ...]]) -> Callable:
    def rows(sub: Subscription, app_ids: tuple[int, ...] | None = None) -> list[dict]:
        apps = sub.app_ids if app_ids is None else app_ids
        return [row for app in apps if app in sub.app_ids for row in per_app(sub, app)]

    return rows


@functools.lru_cache(maxsize=64)
def _accounts_cached(sub: Subscription) -> tuple[dict, ...]:
    return tuple(accounts(sub))


# Keyed by catalog Source.name: (subscription, app ids or None for all) -> iterable of rows.
# Rows may be cached and shared, so callers must not mutate them.
ENTITY_GENERATORS: dict[str, Callable[..., Iterable[dict]]] = {
    "accounts": lambda sub, app_ids=None: _accounts_cached(sub),
    "visitors": lambda sub, app_ids=None: iter_visitors(sub),
    "pages": _per_app(pages),
    "features": _per_app(features),
    "guides": _per_app(guides),
    "trackTypes": _per_app(track_types),
    "segments": lambda sub, app_ids=None: _segments(sub),
}


def _segments(sub: Subscription) -> tuple[dict, ...]:
    from pendo_assets.emulator.segments import segments  # it builds on the visitors above

    return segments(sub)


def entity_rows(
    sub: Subscription, source_name: str, app_ids: tuple[int, ...] | None = None
) -> Iterable[dict]:
    """Rows of an entity source; app-scoped ones only for ``app_ids`` (default: all apps)."""
    rows = ENTITY_GENERATORS[SOURCES_BY_NAME[source_name].emulator](sub, app_ids)
    changes = [c for c in sub.tag_changes if c.source == source_name]
    if changes:
        rows = _with_tag_changes(sub, rows, changes, app_ids)
    drifts = [d for d in sub.drift if d.source == source_name]
    rows = _with_drift(sub, rows, drifts) if drifts else rows
    edits = [e for e in sub.edits if e.source == source_name]
    return _with_edits(sub, rows, edits) if edits else rows


def _with_edits(sub: Subscription, rows: Iterable[dict], edits: list) -> Iterator[dict]:
    salts = [seed_of(sub.seed, "edit", e.source, e.salt) for e in edits]
    for n, row in enumerate(rows):
        for e, salt in zip(edits, salts, strict=True):
            if (mix64(salt ^ n) % 1_000_000) >= e.share * 1_000_000:
                continue
            if e.delete:
                row = None
                break
            row = set_path(row, e.field, e.value)
            stamp = SOURCES_BY_NAME[e.source].updated_field  # segments have none
            if stamp is not None:
                row = set_path(row, stamp, e.at_ms)
        if row is not None:
            yield row


def _with_drift(sub: Subscription, rows: Iterable[dict], drifts: list) -> Iterator[dict]:
    salts = [seed_of(sub.seed, "drift", d.source, d.field) for d in drifts]
    for n, row in enumerate(rows):
        row = dict(row)
        for d, salt in zip(drifts, salts, strict=True):
            h = mix64(salt ^ n)
            row[d.field] = h % 1000 if d.kind == "int" else f"v{h % 10**6}"
        yield row


def deleted_tag_ids(sub: Subscription, kind: str, app_id: int, n: int = 2) -> tuple[str, ...]:
    """Ids of tags that were deleted: still referenced by old events, absent from entities."""
    return tuple(pendo_id(sub.seed, kind, app_id, "deleted", k) for k in range(n))


# -- retroactive tag changes (TagChange) ---------------------------------------------------
TAG_KINDS = {"pages": "Page", "features": "Feature", "trackTypes": "TrackType"}
_TAG_BASE = {"pages": pages, "features": features, "trackTypes": track_types}


def tag_change_app(sub: Subscription, change) -> int:
    return sub.app_ids[0] if change.app_id is None else change.app_id


def tag_change_id(sub: Subscription, change) -> str:
    """The id of the tag a ``TagChange`` creates, edits or deletes."""
    app_id = tag_change_app(sub, change)
    if change.action == "create":
        return pendo_id(sub.seed, TAG_KINDS[change.source], app_id, "created", change.salt)
    return _TAG_BASE[change.source](sub, app_id)[change.index]["id"]


def tag_change_reaches(sub: Subscription, change, day: date) -> bool:
    """Has Pendo reprocessed ``day`` for this change yet? A dirty tag is reprocessed newest day
    first, and has reached only the newer half of the history."""
    if not change.dirty:
        return True
    span = (sub.last_day - sub.first_day).days
    return day >= sub.first_day + timedelta(days=span // 2 + 1)


def _widened(source: str, row: dict, salt: int) -> dict:
    row = dict(row)
    if source == "pages":
        row["rules"] = [*row["rules"], {"rule": f"//*/widened{salt}", "designerHint": None}]
    elif source == "features":
        row["elementPathRules"] = [*row["elementPathRules"], f"#widened-{salt}"]
    else:
        row["trackTypeRules"] = [*row["trackTypeRules"], f"alias{salt}"]
    return row


def _created_tag(sub: Subscription, change) -> dict:
    app_id = tag_change_app(sub, change)
    kind = TAG_KINDS[change.source]
    rng = rng_for(sub.seed, kind, app_id, "created", change.salt)
    name = f"New {kind.lower()} {change.salt}"
    row = _tag_common(sub, kind, app_id, 0, name, rng)
    row["id"] = tag_change_id(sub, change)
    row["rootVersionId"] = row["id"] + "-root"
    row["stableVersionId"] = row["id"] + "-stable"
    if change.source == "pages":
        row["rules"] = [{"rule": f"//*/new{change.salt}", "designerHint": None}]
    elif change.source == "features":
        row["pageId"] = _page_id(sub, app_id, rng)
        row["appWide"] = False
        row["isCoreEvent"] = False
        row["elementPathRules"] = [f"#new-{change.salt}"]
        row["eventPropertyConfigurations"] = []
    else:
        row["trackTypeName"] = name
        row["trackTypeRules"] = [name]
    return row


def _with_tag_changes(
    sub: Subscription, rows: Iterable[dict], changes: list, app_ids: tuple[int, ...] | None
) -> list[dict]:
    out = list(rows)
    for change in changes:
        app_id = tag_change_app(sub, change)
        if app_ids is not None and app_id not in app_ids:
            continue
        tag_id = tag_change_id(sub, change)
        stamp = {"lastUpdatedAt": change.at_ms, "dirty": change.dirty}
        if change.action == "create":
            out.append({**_created_tag(sub, change), "createdAt": change.at_ms, **stamp})
        elif change.action == "edit":
            out = [
                {**_widened(change.source, r, change.salt), **stamp} if r["id"] == tag_id else r
                for r in out
            ]
        else:
            out = [r for r in out if r["id"] != tag_id]
    return out
