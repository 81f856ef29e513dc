"""A child that a wait reaped as a signal came in, before the waiter kept what it got (the
signal's handler raised right after the wait returned, and the link unwinds): the unwinding
ends it again, and neither the linker nor a forked copy is waited for a second time as if it
were still there ("No child processes" was an internal error instead of the interrupt's exit,
seen once in the interrupted-writing runs of ``test_failsafe.py``)."""
from __future__ import annotations

import os
import sys

import pytest

from altlink import forkmap
from altlink.linker import Linker

pytestmark = pytest.mark.skipif(not forkmap.can_fork(), reason="no fork here")


def test_a_linker_reaped_already(tmp_path):
    linker = Linker([sys.executable, "-c", "pass"], None, None, str(tmp_path / "t.elf"),
                    str(tmp_path / "o.elf"))
    linker.start()
    os.waitpid(linker.pid, 0)  # (the wait whose result the interrupt lost)
    assert linker.running() is False
    linker.stop()  # (no second wait that fails)
    assert linker.pid is None


def test_a_linker_reaped_already_waited_for(tmp_path):
    linker = Linker([sys.executable, "-c", "pass"], None, None, str(tmp_path / "t.elf"),
                    str(tmp_path / "o.elf"))
    linker.start()
    os.waitpid(linker.pid, 0)
    linker.stop()
    assert linker.pid is None and linker.status is not None


def test_a_forked_copy_reaped_already():
    copy = forkmap.Forked(lambda: 1)
    copy.start()
    os.waitpid(copy.pid, 0)
    copy.cancel()
    assert copy.pid is None
    copy.cancel()  # (a second cancel: nothing left to end)
