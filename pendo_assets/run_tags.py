"""The Dagster run tags the project reads and writes: which partition (or range of partitions)
a run covers. They are part of Dagster's public behaviour (the UI and `dg launch
--partition-range` set them) but Dagster exports them only from a private module, so they come
through ``pendo_assets.dagster_internals``."""

from pendo_assets import dagster_internals as internals

PARTITION_TAG = internals.PARTITION_NAME_TAG
RANGE_START_TAG = internals.ASSET_PARTITION_RANGE_START_TAG
RANGE_END_TAG = internals.ASSET_PARTITION_RANGE_END_TAG


def range_tags(start: str, end: str | None = None) -> dict[str, str]:
    """The tags of one run over the partitions ``start`` … ``end`` (just ``start`` without it)."""
    return {RANGE_START_TAG: start, RANGE_END_TAG: end or start}
