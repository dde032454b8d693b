"""The Dagster run tags the project reads and writes: which partition (or range of partitions)
a run covers. Dagster defines these names in a private module; they are part of its public
behaviour (the UI and `dagster asset materialize --partition-range` set them), so they are
spelled once here rather than imported from Dagster's internals."""

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(start: str, end: str | None = None) -> dict[str, str]:
    """The tags of one run over the partitions ``start`` … ``end`` (just ``start`` without it)."""
    return {RANGE_START_TAG: start, RANGE_END_TAG: end or start}
