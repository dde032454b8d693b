"""The reader's copy of the warehouse: a consistent snapshot published atomically beside it.

DuckDB lets no process write a file that another process holds open, even read-only, so an
analyst's SQL client left open on the warehouse would stop every run. Readers open the snapshot
instead. Publishing copies the checkpointed warehouse file byte for byte into a new file next to
the snapshot and renames it over the snapshot (``os.replace``): a client holding the previous
snapshot keeps reading that one (its file lives on until it is closed) and never blocks the
publish; a client that connects afterwards sees the new data.

Why a byte copy: after a checkpoint the file *is* the database, so copying it costs disk
bandwidth only (no decoding, no recompression) and scales linearly with the file; DuckDB's own
``COPY FROM DATABASE`` rewrites every row and costs CPU several times over (measured in
``bench/run.py --mode publish``, figures in docs/performance.md).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pendo_assets.warehouse.store import Warehouse


@dataclass
class Published:
    path: str
    bytes: int
    seconds: float


def is_stale(warehouse_path: str, read_path: str) -> bool:
    """Whether the warehouse changed since the snapshot was published (or there is none).

    A published snapshot carries the warehouse file's size and modification time, so this costs
    two ``stat`` calls; a write-ahead log beside the warehouse means uncheckpointed changes."""
    try:
        src = os.stat(warehouse_path)
    except FileNotFoundError:
        return False
    if os.path.exists(warehouse_path + ".wal"):
        return True
    try:
        dst = os.stat(read_path)
    except FileNotFoundError:
        return True
    return (dst.st_size, dst.st_mtime_ns) != (src.st_size, src.st_mtime_ns)


def publish(wh: Warehouse, read_path: str) -> Published | None:
    """Copy the warehouse to ``read_path`` atomically if it changed since the last publish;
    None when the snapshot was already current (or there is no warehouse yet)."""
    with wh.exclusive():  # no run of the project writes meanwhile
        if not os.path.exists(wh.path):
            return None
        if os.path.exists(wh.path + ".wal"):
            # A process died before its checkpoint: fold the log into the file first.
            with wh.connect() as con:
                con.execute("CHECKPOINT")
        if not is_stale(wh.path, read_path):
            return None
        started = time.monotonic()
        size = _copy_shared(wh, Path(read_path))
        return Published(read_path, size, time.monotonic() - started)


def _copy_shared(wh: Warehouse, target: Path) -> int:
    """Copy the warehouse under a shared lock on it: DuckDB's read-only clients hold the same
    kind (they never block the copy), a read-write one outside the project is waited for."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(wh.path, "rb") as src:
        wh.wait_for_file(lambda: shared_lock(src))
        stat = os.fstat(src.fileno())
        try:
            with open(tmp, "wb") as dst:
                _copy_bytes(src, dst, stat.st_size)
                os.fsync(dst.fileno())
            # The snapshot carries the warehouse's size and time: ``is_stale`` compares them.
            os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            # A log a writer of the old snapshot left must not be replayed into the new one.
            Path(str(target) + ".wal").unlink(missing_ok=True)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    _fsync_dir(target.parent)
    return stat.st_size


def shared_lock(f) -> None:
    """A shared POSIX lock on the whole file, as DuckDB's read-only clients take; raises
    ``BlockingIOError`` while a read-write client holds DuckDB's exclusive one."""
    try:
        import fcntl
    except ImportError:  # Windows: no POSIX locks (and DuckDB's lock is not one there)
        return
    try:
        fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:  # EAGAIN, or EACCES on some systems
        if not isinstance(exc, BlockingIOError | PermissionError):
            raise
        # Worded as DuckDB words it, so the wait's message names the holder the same way.
        raise BlockingIOError(exc.errno, f"Conflicting lock is held in {_writer(f)}") from None


def _writer(f) -> str:
    """'<program> (PID n)' of the process holding a write lock on ``f`` (Linux's /proc/locks)."""
    inode = os.fstat(f.fileno()).st_ino
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        parts = line.split()
        # "1: POSIX  ADVISORY  WRITE 4242 fd:00:1234567 0 EOF" (waiters' lines have "->")
        if len(parts) > 5 and parts[1:4] == ["POSIX", "ADVISORY", "WRITE"]:
            if not parts[5].endswith(f":{inode}"):
                continue
            pid = parts[4]
            try:
                program = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                program = "a process"
            return f"{program} (PID {pid})"
    return "another process"


def _copy_bytes(src, dst, size: int) -> None:
    """In-kernel copy (``copy_file_range``: shares extents on btrfs/XFS, no user-space buffer)."""
    if not hasattr(os, "copy_file_range"):  # macOS, Windows
        shutil.copyfileobj(src, dst, 16 << 20)
        dst.flush()
        return
    done = 0
    while done < size:
        n = os.copy_file_range(src.fileno(), dst.fileno(), size - done, done, done)
        if n == 0:
            break
        done += n


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
