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
from _thread import allocate_lock  # (threading.Lock, without threading's imports: 1 ms a run)

_lock = allocate_lock()
_depth = 0
_was_enabled = False
_kept: list | None = None  # what ``keep`` holds, once ``process_ends`` was called


def process_ends() -> None:
    """This process ends with ``os._exit`` when its command is done (the ``altlink`` command,
    ``cli.run``): the collector stays off to the end (turned on again after a link of
    hundreds of thousands of objects, its first collection walks them all: 10 to 20 ms after
    a kernel's link), and what ``keep`` is given is never freed."""
    global _kept
    gc.disable()
    _kept = []


def ends_here() -> bool:
    """Whether ``process_ends`` was called: the process is the ``altlink`` command's own,
    which nothing else goes on in after its command (not SCons's, not a test's)."""
    return _kept is not None


def keep(*objs) -> None:
    """Hold ``objs`` until the process ends, where it ends with ``os._exit``
    (``process_ends``): freeing a link's inputs, records and image one object at a time, when
    the function that made them returns, is work for nobody (6 ms after a kernel's link).
    Elsewhere (SCons, the tests, which call ``cli.main``): nothing."""
    if _kept is not None:
        _kept.append(objs)


def collector_paused() -> _Paused:
    """The collector paused for the ``with`` block (the module's docstring)."""
    return _Paused()


class _Paused:
    """``collector_paused``'s block. (A class, not ``contextlib.contextmanager``: contextlib
    is imported by no other module of a check.)"""

    def __enter__(self) -> None:
        global _depth, _was_enabled
        with _lock:
            if _depth == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _depth += 1

    def __exit__(self, *exc) -> None:
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
