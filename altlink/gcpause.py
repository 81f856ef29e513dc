"""The cyclic garbage collector paused while altlink works.

A link makes hundreds of thousands of small containers (records, entries, manifest records),
none of them in a cycle. Each full collection that their number sets off walks them and the
whole heap again: about a tenth of a link's time on its own, and more inside a big process
such as SCons (the figures are in docs/performance.md). Reference counting still frees
whatever is dropped.

The collector's switch is the whole process's, and an ``scons -j`` build runs several links
at once in threads of one process: the pauses are counted under a lock. The first to enter
turns the collector off (if it was on), the last to leave turns it on again (only if it was
on when the first entered), so no thread's leaving turns it on under another that is still
working, and none leaves it off.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
