"""Where a run's fetched batches wait as Parquet files until the IO manager writes them: a
temporary folder per source and run, removed once written, or at once if fetching fails."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staging_dir(name: str) -> Iterator[Path]:
    """A new folder for one source's batches. It is handed on (the IO manager ``discard``s it
    after the write); if the block fails before that, it is removed here."""
    path = Path(tempfile.mkdtemp(prefix=f"pendo-{name}-"))
    try:
        yield path
    except BaseException:
        discard(path)
        raise


def discard(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
