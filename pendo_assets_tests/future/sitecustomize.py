"""Loaded (via PYTHONPATH) only by `make test-future`, which runs the suite under Debian's
libfaketime with the wall clock a year ahead and the monotonic clock left alone
(FAKETIME_DONT_FAKE_MONOTONIC=1, without which every timed thread wait hangs).

libfaketime 0.9.10 then makes ``clock_nanosleep`` fail with EINVAL, which is what
``time.sleep`` calls; a timed wait on an Event sleeps just as well through a path it leaves
alone. Nothing else changes.
"""

import threading
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(seconds)


time.sleep = _sleep
