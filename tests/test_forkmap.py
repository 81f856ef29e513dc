"""Work shared between this process and forked copies (``altlink/forkmap.py``).

``queue_map`` hands chunks of the items out through a pipe as each process is done with one:
every chunk is made exactly once, by this process or a copy, and the results are the serial
ones; a process that meets an error stops, and every chunk before the first such error was
made whole (the first error in the items' order is the one a serial run meets)."""
from __future__ import annotations

import os
import time

import pytest

from altlink import forkmap


def square_chunk(items):
    return [(x, x * x, os.getpid()) for x in items], False


def flatten(got):
    return [r for _lo, rs in sorted(got, key=lambda t: t[0]) for r in rs]


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_every_chunk_once_and_the_serial_results(jobs, tmp_path, monkeypatch, forks):
    items = list(range(101))
    here = os.getpid()
    mark = tmp_path / "a copy took a chunk"

    def fn(chunk):
        # This process waits, in its first chunk, for a copy to take one (for up to 20 s):
        # otherwise it could take them all before a copy starts.
        if os.getpid() != here:
            mark.touch()
        elif forks:
            for _ in range(2000):
                if mark.exists():
                    break
                time.sleep(0.01)
        return square_chunk(chunk)

    got = forkmap.queue_map(fn, items, jobs, 4)
    assert [lo for lo, _ in sorted(got)] == list(range(0, 101, 4))  # each chunk once
    rows = flatten(got)
    assert [(x, y) for x, y, _ in rows] == [(x, x * x) for x in items]
    pids = {pid for _, _, pid in rows}
    assert len(forks) == (jobs - 1 if forkmap.can_fork() else 0)
    if forks:
        assert pids - {here}  # a copy worked (this process too, unless the copies were quicker)
    else:
        assert pids == {here}


def test_after_fork_runs_here_once():
    seen = []
    got = forkmap.queue_map(square_chunk, list(range(20)), 2, 2,
                            after_fork=lambda: seen.append(os.getpid()))
    assert seen == [os.getpid()] and len(flatten(got)) == 20


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_error_stops_its_process_and_the_first_is_found(jobs):
    def fn(items):
        out = []
        for x in items:
            if x in (37, 70):
                out.append(ValueError(x))
                return out, True
            out.append(x)
        return out, False

    rows = flatten(forkmap.queue_map(fn, list(range(100)), jobs, 3))
    errors = [r for r in rows if isinstance(r, ValueError)]
    assert errors and errors[0].args == (37,)
    # every item before the first error was made
    assert [r for r in rows if not isinstance(r, ValueError) and r < 37] == list(range(37))


def test_more_chunks_than_the_pipe_holds():
    items = list(range(20000))
    got = forkmap.queue_map(square_chunk, items, 2, 1)
    assert len(got) <= forkmap.MAX_CHUNKS  # larger chunks, their numbers in one pipe page
    assert [x for x, _, _ in flatten(got)] == items
