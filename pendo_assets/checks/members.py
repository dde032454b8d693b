"""Membership checks (warning only): every segment's visitors were asked in the latest load.

A segment Pendo would not answer fails alone in the load (the others land, it keeps its last
known members); this check makes that visible in the UI instead of a green run hiding it.
"""

from collections.abc import Sequence

import dagster as dg

from pendo_assets import step_order
from pendo_assets.assets.raw import MEMBERS_FAILED
from pendo_assets.assets.shared import asset_key
from pendo_assets.catalog import ENTITIES, RAW_SCHEMA, EntitySource
from pendo_assets.checks.shared import MEMBERS, result


def build_members_checks(
    sources: Sequence[EntitySource] = ENTITIES,
) -> list[dg.AssetChecksDefinition]:
    return [_members_check(s) for s in sources if s.members]


def _members_check(source: EntitySource) -> dg.AssetChecksDefinition:
    assert source.members is not None
    key = asset_key(source)
    table = f"{RAW_SCHEMA}.{source.members.table}"

    @dg.asset_check(
        asset=key,
        name=MEMBERS,
        op_tags=step_order.tags(step_order.ENTITY_CHECKS),
        description=f"Every {source.table[:-1]} asked had its members loaded into `{table}` "
        "by the latest load (warning: one that failed keeps its last known members).",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            return result(key, MEMBERS, False, f"{key.to_user_string()} was never loaded.")
        failed = event.asset_materialization.metadata.get(MEMBERS_FAILED)
        failed = dict(failed.value) if failed is not None else {}
        names = ", ".join(sorted(failed))
        return result(
            key,
            MEMBERS,
            not failed,
            f"Members not loaded for {len(failed)}: {names}. Each keeps its last known members "
            "in " + table + "; the reasons are in the metadata."
            if failed
            else f"Every {source.table[:-1]}'s members were loaded.",
            {"failed": dg.MetadataValue.json(failed)},
        )

    return _check
