"""Pausing Python's cyclic garbage collector around a bulk job.

A bulk job (a dedupe scan, a purchase-history import) makes millions of short-lived
objects and no reference cycles: reference counting frees them as before. But each
collection their allocations trigger walks every container still alive in the process,
and a full one walks all of them, however many the caller holds (a million import rows,
say). The dedupe scan and the loyalty import each spent a sixth to a quarter of their CPU
time in those walks (docs/benchmarks.md; docs/decisions.md, "The core pauses the cyclic
garbage collector for bulk jobs").

The collector's switch is process-wide, so the pause is shared: blocks running at once (in
other threads) count one another, the collector comes back when the last of them ends, and
only if it was on when the first began (a program that keeps it off keeps it off). Cycles
that other threads make meanwhile are collected after the pause.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0  # blocks in collector_paused() now, in every thread
_was_on = True  # whether the collector was on when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """Turn Python's cyclic garbage collector off for the block (``gc.disable``), for a job
    that allocates a great many objects and makes no reference cycles of its own.

    Nested and concurrent blocks share the pause: the collector is turned back on when the
    last of them ends, if it was on when the first began; an error in the block does not
    keep it off. Reference counting still frees every object that is not in a cycle.

    Example::

        with crmkit.collector_paused():
            import_a_million_rows()
    """
    global _pauses, _was_on
    with _lock:
        if _pauses == 0:
            _was_on = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_on:
                gc.enable()


__all__ = ["collector_paused"]
