"""Every Pendo source this project loads, declared once.

Assets, asset checks, the emulator, the tables of docs/warehouse.md and the tests are all
generated from ``SOURCES``. Adding a source is a new ``Source(...)`` entry here (plus, for the
emulator, a row generator keyed by the same name).

Column names are Pendo's dotted field paths; ``pendo.tables.column_name`` turns them into the
snake_case DuckDB names (``metadata.agent.name`` -> ``metadata_agent_name``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

# DuckDB types used in declared schemas. Undeclared fields are inferred per batch.
VARCHAR, BIGINT, DOUBLE, BOOLEAN, TIMESTAMPTZ, JSON, DATE = (
    "VARCHAR",
    "BIGINT",
    "DOUBLE",
    "BOOLEAN",
    "TIMESTAMPTZ",
    "JSON",
    "DATE",
)

# Leaf names that hold epoch milliseconds wherever they appear (Pendo's auto metadata and
# entity audit fields). Values that are not integers are left as they are.
EPOCH_MS_LEAVES = frozenset(
    {
        "browserTime",
        "createdAt",
        "lastUpdatedAt",
        "publishedAt",
        "resetAt",
        "showsAfter",
        "expiresAfter",
        "firstvisit",
        "lastvisit",
        "lastupdated",
    }
)
# Beyond that list, a leaf named like Pendo names its instants (`guideTimestamp`, `createdAt`,
# `lastSeenAt`) is epoch ms too. Names ending in `Time` are not ruled this way: `loadTime` is a
# duration in ms.
_EPOCH_MS_NAME = re.compile(r"(?:Timestamp|[a-z0-9]At)$")


def is_epoch_ms_field(path: str) -> bool:
    """Does the Pendo field ``path`` hold epoch milliseconds (landed as TIMESTAMPTZ)?"""
    leaf = path.rsplit(".", 1)[-1]
    return leaf in EPOCH_MS_LEAVES or _EPOCH_MS_NAME.search(leaf) is not None


@dataclass(frozen=True)
class Lookup:
    """Names joined onto an event row: the row's DuckDB ``column`` -> ``entity``'s ``id``.

    ``names`` maps an output column to a column of the entity table. ``column`` may name a
    column added by an earlier lookup of the same source (features -> their page).
    """

    column: str
    entity: str
    names: dict[str, str]


@dataclass(frozen=True)
class Nested:
    """A table flattened from a JSON array column of an entity (a guide's ``steps``), rebuilt
    in the same transaction as every load of that entity.

    ``columns`` maps an output column to a DuckDB expression over ``j`` (one array element,
    JSON) and ``p`` (the parent row).
    """

    table: str  # pendo.<table>
    field: str  # the parent's JSON array column
    key_column: str  # output column holding the element's own id
    parent_key: str  # output column holding the parent's id
    description: str
    columns: dict[str, str]
    types: dict[str, str]  # output column -> DuckDB type, for the UI schema
    # Rows whose element is not a usable key are left out (SQL over ``j``); with ``distinct``
    # a pair listed twice in the array is one row.
    where: str | None = None
    distinct: bool = False
    # The analytics table keeping every version of each row (SCD type 2), keyed by
    # (parent_key, key_column); the table is rebuilt whole from its parent, so it is complete.
    history: str | None = None

    @property
    def history_table(self) -> str | None:
        return f"{ANALYTICS_SCHEMA}.{self.history}" if self.history else None


@dataclass(frozen=True)
class Members:
    """A membership table of a REST entity (a segment's visitors): (parent id, member id) pairs
    asked from Pendo per parent row and written in the same transaction as the parent's load,
    replacing every pair of the parents asked."""

    table: str  # pendo.<table>
    parent_key: str  # output column holding the parent's id
    member_key: str  # output column holding the member's id
    description: str


@dataclass(frozen=True)
class Source:
    name: str  # Pendo's source name, as sent in the pipeline
    table: str  # DuckDB table (and last part of the asset key)
    kind: Literal["entity", "event"]
    description: str  # what one row is
    columns: dict[str, str]  # Pendo field path -> DuckDB type, for fields always present
    id_field: str  # Pendo field of the row's own id (entities) or its subject (events)
    per_event: bool = False  # one row per event (guide/poll events), timed by browserTime
    app_scoped: bool = True  # takes appId; accounts and visitors are subscription-wide
    grain: tuple[str, ...] = ()  # Pendo fields that together identify an event row
    # Pendo fields it always sends, never null. Never `appId`: Pendo leaves out fields the
    # request did not ask about, and a real pageEvents answer has rows without it.
    required: tuple[str, ...] = ()
    json_fields: frozenset[str] = frozenset()  # objects stored whole as JSON, not flattened
    lookups: tuple[Lookup, ...] = ()
    params: dict = field(default_factory=dict)  # extra source parameters
    # Event sources take `blacklist: "apply"` (Pendo's Exclude List) when it is enabled: Pendo's
    # own web app sends it on aggregated sources (events, pageEvents) as well as raw ones.
    takes_exclude_list: bool = False
    # Entities: the analytics table keeping every version of each row (SCD type 2).
    history: str | None = None
    # Entities: Pendo field (epoch ms) bumped on every change; enables incremental refresh.
    updated_field: str | None = None
    # Entities: tables flattened from JSON array columns, written with every load.
    nested: tuple[Nested, ...] = ()
    # Events: names joined from nested tables (``Lookup.entity`` names a ``Nested`` table).
    nested_lookups: tuple[Lookup, ...] = ()
    # Events: columns computed from the enriched row (output column -> DuckDB expression).
    derived: dict[str, str] = field(default_factory=dict)
    derived_types: dict[str, str] = field(default_factory=dict)  # for the UI schema
    # Entities read from a Pendo REST list (``GET <rest>``) instead of an aggregation source.
    rest: str | None = None
    # Entities whose metadata fields Pendo declares (``account`` / ``visitor`` metadata
    # schema): the declared types type every ``metadata_*`` column of a load.
    metadata_schema: str | None = None
    # REST entities: a membership table asked per row (segments -> their visitors).
    members: Members | None = None
    # Tag entities (pages, features, track types): the event source whose rows Pendo computes
    # from this tag's rules, retroactively over all history (``id_field`` there is the tag id),
    # and the fields whose change makes Pendo reprocess them (besides ``lastUpdatedAt``).
    retags: str | None = None
    rules: tuple[str, ...] = ()

    @property
    def history_table(self) -> str | None:
        return f"{ANALYTICS_SCHEMA}.{self.history}" if self.history else None


# Entity columns that change on every visit (or every sync), not because an attribute did:
# history does not open a new version for them unless PENDO_HISTORY_TRACK_COLUMNS names them.
# `metadata_auto_last*` (lastvisit, lastupdated, lastbrowsername, ...) and the per-app
# `metadata_auto_<app>_lastvisit`.
HISTORY_UNTRACKED_PATTERN = r"^metadata_auto_.*last[a-z]*$"

_AGGREGATED_EVENT_COLUMNS = {
    "visitorId": VARCHAR,
    "accountId": VARCHAR,
    "appId": BIGINT,
    "day": DATE,
    "numEvents": BIGINT,
    "numMinutes": BIGINT,
    "server": VARCHAR,
    "remoteIp": VARCHAR,
    "userAgent": VARCHAR,
    # First and last event of the period (day or hour): measures, not part of the grain.
    "firstTime": TIMESTAMPTZ,
    "lastTime": TIMESTAMPTZ,
}
# Fields of an aggregated row that describe the period's activity rather than identify the row:
# merging hour rows into a day sums the counts and takes min/max of the times.
AGGREGATED_MEASURES = ("numEvents", "numMinutes", "firstTime", "lastTime")
_AGGREGATED_GRAIN = ("visitorId", "accountId", "appId", "day", "server", "remoteIp", "userAgent")

_PER_EVENT_COLUMNS = {
    "visitorId": VARCHAR,
    "accountId": VARCHAR,
    "accountIds": JSON,
    "appId": BIGINT,
    "day": DATE,
    "browserTime": TIMESTAMPTZ,
    "type": VARCHAR,
    "guideId": VARCHAR,
    "guideStepId": VARCHAR,
    "url": VARCHAR,
    "loadTime": BIGINT,
    "country": VARCHAR,
    "region": VARCHAR,
    "latitude": DOUBLE,
    "longitude": DOUBLE,
    "remoteIp": VARCHAR,
    "serverName": VARCHAR,
    "userAgent": VARCHAR,
    # When Pendo's server took the event (epoch ms), beside the browser's own clock.
    "guideTimestamp": TIMESTAMPTZ,
}
# The `type` of guide events the marts count, each in its own column (`count_guide_seen`, ...);
# the marts count any other type in `count_guide_other` and a warning check names it.
GUIDE_EVENT_TYPES = (
    "guideSeen",
    "guideAdvanced",
    "guideDismissed",
    "guideSnoozed",
    "guideTimeout",
    "guideActivity",
)


def guide_count_column(event_type: str, prefix: str = "count") -> str:
    return f"{prefix}_guide_{event_type.removeprefix('guide').lower()}"


_PER_EVENT_GRAIN = (
    "visitorId",
    "accountId",
    "appId",
    "browserTime",
    "type",
    "guideId",
    "guideStepId",
)

_WHO = (
    Lookup("account_id", "accounts", {"account_name": "metadata_agent_name"}),
    Lookup("visitor_id", "visitors", {"visitor_email": "metadata_agent_email"}),
)

_TAG_COLUMNS = {
    "id": VARCHAR,
    "appId": BIGINT,
    "name": VARCHAR,
    "kind": VARCHAR,
    "color": VARCHAR,
    "dirty": BOOLEAN,
    "group.id": VARCHAR,
    "group.name": VARCHAR,
    "createdAt": TIMESTAMPTZ,
    "lastUpdatedAt": TIMESTAMPTZ,
    "createdByUser.id": VARCHAR,
    "createdByUser.username": VARCHAR,
    "lastUpdatedByUser.id": VARCHAR,
    "lastUpdatedByUser.username": VARCHAR,
    "rootVersionId": VARCHAR,
    "stableVersionId": VARCHAR,
}


# Who created and last changed an object, and when (tags and segments alike).
_AUDIT_COLUMNS = {
    k: _TAG_COLUMNS[k]
    for k in (
        "createdByUser.id",
        "createdByUser.username",
        "createdAt",
        "lastUpdatedByUser.id",
        "lastUpdatedByUser.username",
        "lastUpdatedAt",
    )
}


def _person(
    name: str,
    id_field: str,
    description: str,
    metadata: dict[str, str],
    nested: tuple[Nested, ...] = (),
) -> Source:
    """Accounts and visitors: not scoped to an app, and carrying Pendo's auto visit times,
    whose ``lastupdated`` lets a refresh ask only for rows changed since the last load."""
    return Source(
        name=name,
        table=name,
        kind="entity",
        history=f"{name[:-1]}_history",
        description=description,
        metadata_schema=name[:-1],
        columns={
            id_field: VARCHAR,
            **metadata,
            "metadata.auto.firstvisit": TIMESTAMPTZ,
            "metadata.auto.lastvisit": TIMESTAMPTZ,
            "metadata.auto.lastupdated": TIMESTAMPTZ,
        },
        id_field=id_field,
        app_scoped=False,
        updated_field="metadata.auto.lastupdated",
        required=(id_field,),
        nested=nested,
    )


def _tag_events(
    name: str,
    table: str,
    description: str,
    tag_field: str,
    lookups: tuple[Lookup, ...],
    json_field: str | None = None,
) -> Source:
    """Aggregated events of one kind of tag (pages, features, track types): the events grain
    plus the tag's id and, for some, a JSON object that also splits rows. The source is asked
    for ``{tag_field: null}``: every tag of that kind."""
    extra = (json_field,) if json_field else ()
    return Source(
        name=name,
        table=table,
        kind="event",
        description=description,
        columns={
            **_AGGREGATED_EVENT_COLUMNS,
            tag_field: VARCHAR,
            **{f: JSON for f in extra},
        },
        id_field=tag_field,
        grain=(*_AGGREGATED_GRAIN, tag_field, *extra),
        required=("visitorId", "day", tag_field),
        json_fields=frozenset(extra),
        lookups=(*_WHO, *lookups),
        params={tag_field: None},
        takes_exclude_list=True,
    )


# An NPS answer is a whole number 0-10 on an NPSRating poll; anything else is not a score.
_NPS_NUMBER = "TRY_CAST(poll_response AS DOUBLE)"
_NPS_SCORE = (
    f"CASE WHEN poll_type = 'NPSRating' AND {_NPS_NUMBER} BETWEEN 0 AND 10 "
    f"AND {_NPS_NUMBER} = floor({_NPS_NUMBER}) THEN CAST({_NPS_NUMBER} AS INTEGER) END"
)

SOURCES: tuple[Source, ...] = (
    # --- entities -------------------------------------------------------------------------
    _person(
        "accounts",
        "accountId",
        "One row per Pendo account, with its agent, auto and custom metadata "
        "flattened into columns (`metadata_agent_name`, `metadata_auto_lastvisit`, ...).",
        {"metadata.agent.name": VARCHAR},
    ),
    _person(
        "visitors",
        "visitorId",
        "One row per Pendo visitor (identified, and anonymous `_PENDO_T_` ones "
        "unless excluded), with agent, auto, per-app auto and custom metadata as columns.",
        {
            "metadata.agent.email": VARCHAR,
            "metadata.auto.accountid": VARCHAR,
            "metadata.auto.accountids": JSON,
        },
        nested=(
            Nested(
                table="visitor_accounts",
                field="metadata_auto_accountids",
                key_column="account_id",
                parent_key="visitor_id",
                description="One row per distinct (visitor, account) pair of every visitor's "
                "`metadata.auto.accountids`: the accounts a visitor belongs to.",
                columns={"account_id": "j->>'$'"},
                types={"account_id": VARCHAR},
                where="coalesce(j->>'$', '') <> ''",
                distinct=True,
                history="visitor_account_history",
            ),
        ),
    ),
    Source(
        name="pages",
        table="pages",
        kind="entity",
        history="page_history",
        description="One row per tagged page of every app, with its product area "
        "(`group_name`) and URL rules (`rules`, JSON).",
        columns={**_TAG_COLUMNS, "rules": JSON},
        id_field="id",
        required=("id",),
        retags="pageEvents",
        rules=("rules",),
    ),
    Source(
        name="features",
        table="features",
        kind="entity",
        history="feature_history",
        description="One row per tagged feature of every app, with the page it lives on "
        "(`page_id`) and its product area (`group_name`).",
        columns={
            **_TAG_COLUMNS,
            "pageId": VARCHAR,
            "appWide": BOOLEAN,
            "isCoreEvent": BOOLEAN,
            "elementPathRules": JSON,
        },
        id_field="id",
        required=("id",),
        json_fields=frozenset({"eventPropertyConfigurations"}),
        retags="featureEvents",
        rules=("elementPathRules", "pageId", "appWide"),
    ),
    Source(
        name="guides",
        table="guides",
        kind="entity",
        history="guide_history",
        description="One row per guide of every app: state, launch method, and its steps and "
        "polls as JSON arrays.",
        columns={
            "id": VARCHAR,
            "appId": BIGINT,
            "name": VARCHAR,
            "state": VARCHAR,
            "launchMethod": VARCHAR,
            "isMultiStep": BOOLEAN,
            "createdAt": TIMESTAMPTZ,
            "lastUpdatedAt": TIMESTAMPTZ,
            "publishedAt": TIMESTAMPTZ,
            "steps": JSON,
            "polls": JSON,
        },
        id_field="id",
        required=("id",),
        json_fields=frozenset({"audience"}),
        nested=(
            Nested(
                table="guide_steps",
                field="steps",
                key_column="step_id",
                parent_key="guide_id",
                description="One row per step of every guide: its rank and 1-based "
                "`step_number` in the guide, type, page and name (where Pendo has one).",
                columns={
                    "step_id": "j->>'id'",
                    "step_number": "row_number() OVER (PARTITION BY p.id "
                    "ORDER BY TRY_CAST(j->>'rank' AS BIGINT), j->>'id')",
                    "rank": "TRY_CAST(j->>'rank' AS BIGINT)",
                    "type": "j->>'type'",
                    "page_id": "j->>'pageId'",
                    "name": "j->>'name'",
                    "advance_method": "j->>'advanceMethod'",
                    "poll_ids": "CAST(j->'pollIds' AS JSON)",
                },
                types={
                    "step_id": VARCHAR,
                    "step_number": BIGINT,
                    "rank": BIGINT,
                    "type": VARCHAR,
                    "page_id": VARCHAR,
                    "name": VARCHAR,
                    "advance_method": VARCHAR,
                    "poll_ids": JSON,
                },
            ),
            Nested(
                table="polls",
                field="polls",
                key_column="poll_id",
                parent_key="guide_id",
                description="One row per poll of every guide: question text, question type "
                "(`NPSRating`, `FreeForm`, `PickList`, ...) and its choices (JSON).",
                columns={
                    "poll_id": "j->>'id'",
                    "question": "j->>'question'",
                    "question_type": "j->>'questionType'",
                    "is_nps": "coalesce(j->>'questionType' = 'NPSRating', false)",
                    "choices": "CAST(coalesce(j->'idResponses', j->'numericResponses') AS JSON)",
                },
                types={
                    "poll_id": VARCHAR,
                    "question": VARCHAR,
                    "question_type": VARCHAR,
                    "is_nps": BOOLEAN,
                    "choices": JSON,
                },
            ),
        ),
    ),
    Source(
        name="trackTypes",
        table="track_types",
        kind="entity",
        history="track_type_history",
        description="One row per track event type (custom `pendo.track()` event name) of "
        "every app.",
        columns={
            "id": VARCHAR,
            "appId": BIGINT,
            "name": VARCHAR,
            "trackTypeName": VARCHAR,
            "group.id": VARCHAR,
            "group.name": VARCHAR,
            "createdAt": TIMESTAMPTZ,
            "lastUpdatedAt": TIMESTAMPTZ,
            "trackTypeRules": JSON,
        },
        id_field="id",
        required=("id",),
        retags="trackEvents",
        rules=("trackTypeRules",),
    ),
    Source(
        name="segments",
        table="segments",
        kind="entity",
        history="segment_history",
        rest="/api/v1/segment",
        app_scoped=False,
        description="One row per Pendo segment (a saved visitor filter): name, whether it is "
        "shared, who created and last changed it and when, and its `definition` and "
        "`pipeline` (JSON).",
        columns={
            "id": VARCHAR,
            "name": VARCHAR,
            "kind": VARCHAR,
            "shared": BOOLEAN,
            "isFocusGroup": BOOLEAN,
            **_AUDIT_COLUMNS,
            "definition": JSON,
            "pipeline": JSON,
            "dependentMetadata": JSON,
        },
        id_field="id",
        required=("id",),
        json_fields=frozenset({"definition"}),
        members=Members(
            table="segment_visitors",
            parent_key="segment_id",
            member_key="visitor_id",
            description="One row per visitor of each segment (current membership, asked from "
            "Pendo on every load; every segment, or those `PENDO_SEGMENTS` lists).",
        ),
    ),
    # --- aggregated events -------------------------------------------------------------------
    Source(
        name="events",
        table="events",
        kind="event",
        description="One row per visitor, account, app, server, IP and user agent per day: "
        "all of that visitor's activity that day (`num_events`, `num_minutes`).",
        columns=dict(_AGGREGATED_EVENT_COLUMNS),
        id_field="visitorId",
        grain=_AGGREGATED_GRAIN,
        required=("visitorId", "day"),
        lookups=_WHO,
        takes_exclude_list=True,
    ),
    _tag_events(
        "pageEvents",
        "page_events",
        "One row per visitor, account, app, page, server, IP, user agent and URL "
        "parameters per day: page views (`num_events`) and time on the page (`num_minutes`).",
        "pageId",
        json_field="parameters",
        lookups=(Lookup("page_id", "pages", {"page_name": "name", "group_name": "group_name"}),),
    ),
    _tag_events(
        "featureEvents",
        "feature_events",
        "One row per visitor, account, app, feature, server, IP and user agent "
        "per day: clicks on the feature (`num_events`).",
        "featureId",
        lookups=(
            Lookup(
                "feature_id",
                "features",
                {"feature_name": "name", "group_name": "group_name", "page_id": "page_id"},
            ),
            Lookup("page_id", "pages", {"page_name": "name"}),
        ),
    ),
    _tag_events(
        "trackEvents",
        "track_events",
        "One row per visitor, account, app, track type, server, IP and user agent "
        "per day: custom track events sent with `pendo.track()` (`num_events`).",
        "trackTypeId",
        json_field="properties",
        lookups=(Lookup("track_type_id", "track_types", {"track_type_name": "name"}),),
    ),
    # --- per-event sources: one row per event, not per day --------------------------------
    Source(
        name="guideEvents",
        table="guide_events",
        kind="event",
        per_event=True,
        description=f"One row per guide interaction ({', '.join(GUIDE_EVENT_TYPES)}, ...), "
        "timed by the browser (`browser_time`).",
        columns={**_PER_EVENT_COLUMNS, "pollId": VARCHAR, "pollResponse": VARCHAR},
        id_field="guideId",
        grain=_PER_EVENT_GRAIN,
        required=("visitorId", "browserTime", "type", "guideId"),
        lookups=(*_WHO, Lookup("guide_id", "guides", {"guide_name": "name"})),
        takes_exclude_list=True,
    ),
    Source(
        name="pollEvents",
        table="poll_events",
        kind="event",
        per_event=True,
        description="One row per poll answer (NPS score or free text in `poll_response`), "
        "timed by the browser (`browser_time`).",
        columns={**_PER_EVENT_COLUMNS, "pollId": VARCHAR, "pollResponse": VARCHAR},
        id_field="pollId",
        grain=(*_PER_EVENT_GRAIN, "pollId"),
        required=("visitorId", "browserTime", "guideId", "pollId"),
        lookups=(*_WHO, Lookup("guide_id", "guides", {"guide_name": "name"})),
        takes_exclude_list=True,
        nested_lookups=(
            Lookup("poll_id", "polls", {"poll_question": "question", "poll_type": "question_type"}),
        ),
        derived={
            "nps_score": _NPS_SCORE,
            "nps_bucket": f"CASE WHEN ({_NPS_SCORE}) <= 6 THEN 'detractor' "
            f"WHEN ({_NPS_SCORE}) <= 8 THEN 'passive' "
            f"WHEN ({_NPS_SCORE}) <= 10 THEN 'promoter' END",
        },
        derived_types={"nps_score": "INTEGER", "nps_bucket": VARCHAR},
    ),
)

SOURCES_BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}
# Nested table -> (the table, the entity it is flattened from).
NESTED_BY_TABLE: dict[str, tuple[Nested, Source]] = {
    n.table: (n, s) for s in SOURCES for n in s.nested
}
# Membership table -> (the table, the REST entity whose load writes it).
MEMBERS_BY_TABLE: dict[str, tuple[Members, Source]] = {
    s.members.table: (s.members, s) for s in SOURCES if s.members
}
SOURCES_BY_TABLE: dict[str, Source] = {s.table: s for s in SOURCES}
ENTITIES: tuple[Source, ...] = tuple(s for s in SOURCES if s.kind == "entity")
# Every SCD type 2 history table (analytics.<name>): of entities and of the pair tables
# flattened from them.
HISTORIES: tuple[str, ...] = tuple(s.history for s in ENTITIES if s.history) + tuple(
    n.history for s in ENTITIES for n in s.nested if n.history
)
# Event source name -> the tag entity whose retroactive changes rewrite its history.
TAG_ENTITY_OF: dict[str, Source] = {s.retags: s for s in SOURCES if s.retags}
EVENTS: tuple[Source, ...] = tuple(s for s in SOURCES if s.kind == "event")

RAW_SCHEMA = "pendo"
ANALYTICS_SCHEMA = "analytics"
