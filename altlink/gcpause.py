"""The cyclic garbage collector paused while altlink works.

A link makes hundreds of thousands of small containers (records, entries, manifest records),
none of them in a cycle. Each full collection that their number sets off walks them and the
whole heap again: about a tenth of a link's time on its own, and more inside a big process
such as SCons. Reference counting still frees whatever is dropped.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
