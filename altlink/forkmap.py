"""Work shared between this process and forked copies of it.

``fork_map(fn, shares)`` runs ``fn`` on each share: the first share here, the others each in a
forked process that sends its result back through a pipe, pickled. The caller's process works
too, instead of waiting on a pool, and nothing is started that the fork does not give for free
(the inputs are already in memory, mapped or read).

Only a process with one thread forks: a fork copies the calling thread alone, and a lock
another thread held would stay held in the copy. Elsewhere (an SCons -j build runs its jobs in
threads) and where there is no fork, every share runs here, in turn.
"""
from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from altlink import outputs

S = TypeVar("S")
R = TypeVar("R")


_in_child = False


def in_child() -> bool:
    """Is this a forked worker of fork_map (whose result is sent back pickled)?"""
    return _in_child


def can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fork_map(fn: Callable[[S], R], shares: Sequence[S]) -> list[R]:
    """``[fn(s) for s in shares]``, the shares after the first in forked processes. An
    exception in one (say, an AltlinkError for an unreadable input) is raised here, that of
    the earliest share first; a signal here ends the children."""
    if len(shares) < 2 or not can_fork():
        return [fn(s) for s in shares]
    children: list[tuple[int, int]] = []  # (pid, read end)
    try:
        for share in shares[1:]:
            r, w = os.pipe()
            with outputs.signals_held():  # no signal between the fork and knowing the child
                pid = os.fork()
                if pid == 0:  # pragma: no cover - runs in the child
                    _child(fn, share, r, w)
                children.append((pid, r))
                os.close(w)
        first = fn(shares[0])
        results: list = [first]
        while children:
            pid, r = children[0]
            data = _read_all(r)
            os.close(r)
            os.waitpid(pid, 0)
            children.pop(0)
            results.append(_result(data))
        return results
    finally:
        for pid, r in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(r)


class _Failed:
    """A share's exception, as the child sends it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _result(data: bytes):
    if not data:
        raise RuntimeError("altlink: a forked worker ended without a result")
    got = pickle.loads(data)
    if isinstance(got, _Failed):
        raise got.error
    return got


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _child(fn, share, r: int, w: int) -> None:  # pragma: no cover - runs in the child
    global _in_child
    _in_child = True
    os.close(r)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)  # the parent cleans up; the child just ends
    code = 0
    try:
        try:
            data = pickle.dumps(fn(share), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - raised again in the parent
            try:
                data = pickle.dumps(_Failed(e), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                data = pickle.dumps(_Failed(RuntimeError(repr(e))))
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]
    except BaseException:  # noqa: BLE001 - nothing may unwind into the parent's frames
        code = 1
    finally:
        os._exit(code)
