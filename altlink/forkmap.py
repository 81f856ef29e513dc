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

# pickle's functions, without pickle.py (which imports re: 1 ms of a check); -1: the
# highest protocol
import _pickle as pickle
import _signal as signal  # (signal's functions, without the enums signal makes: 1 ms a run)
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial

from altlink import outputs
from altlink.errors import AltlinkError

TYPE_CHECKING = False  # (``typing``'s, without its import: 2 ms of a check)
if TYPE_CHECKING:
    from typing import TypeVar

    S = TypeVar("S")
    R = TypeVar("R")


_in_child = False


def in_child() -> bool:
    """Is this a forked worker of fork_map (whose result is sent back pickled)?"""
    return _in_child


def can_fork() -> bool:
    """Whether this process may fork: it runs one thread, as ``threading`` counts them (a
    process that has not imported it has started none of its threads; a module's link does
    not import it)."""
    threading = sys.modules.get("threading")
    return hasattr(os, "fork") and (threading is None or threading.active_count() == 1)


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
    children = [Forked(partial(fn, share)) for share in shares[1:]]
    try:
        for child in children:
            child.start()
        return [fn(shares[0])] + [child.result() for child in children]
    finally:
        for child in children:
            child.cancel()


# At most this many chunks: their numbers (4 bytes each) are written before anyone reads, and
# a pipe holds one page (4 KiB) where the user has used up the pipe pages the kernel allows
# (fs.pipe-user-pages-soft), 64 KiB otherwise.
MAX_CHUNKS = 1024


def queue_map(fn: Callable[[list[S]], tuple[list[R], bool]], items: Sequence[S], jobs: int,
              chunk: int, after_fork: Callable[[], None] | None = None
              ) -> list[tuple[int, list[R]]]:
    """``fn`` over ``items`` in chunks of ``chunk``, in this process and ``jobs - 1`` forked
    ones, each taking the next chunk whenever it is done with one: the work is shared as it
    goes, however the items' costs vary (and whatever else the machine runs: a link's
    linker). ``fn(chunk_items)`` gives the chunk's results and whether its process is to stop
    (an error: a later chunk is not worth making). The results, each chunk's under the
    position of its first item; a chunk no process took is not among them. ``after_fork``
    is called here once the copies run (work only this process needs first).

    The chunks are handed out through a pipe that holds their numbers, written before the
    fork: a process reads the next 4 bytes, and the kernel gives each read to one reader
    (the pipe's lock). Chunks go out in order, so every chunk before the first one that
    stopped a process was made whole."""
    spans = [(lo, min(lo + chunk, len(items))) for lo in range(0, len(items), max(chunk, 1))]
    if jobs < 2 or len(spans) < 2 or not can_fork():
        if after_fork is not None:
            after_fork()
        out = []
        for lo, hi in spans:
            got, stop = fn(items[lo:hi])
            out.append((lo, got))
            if stop:
                break
        return out
    if len(spans) > MAX_CHUNKS:  # the numbers must fit the pipe's buffer: larger chunks
        return queue_map(fn, items, jobs, -(-len(items) // MAX_CHUNKS), after_fork)
    r, w = os.pipe()
    try:
        os.write(w, b"".join(k.to_bytes(4, "little") for k in range(len(spans))))
    finally:
        os.close(w)

    def work() -> list[tuple[int, list[R]]]:
        done = []
        while ticket := os.read(r, 4):
            lo, hi = spans[int.from_bytes(ticket, "little")]
            got, stop = fn(items[lo:hi])
            done.append((lo, got))
            if stop:
                break
        return done

    children = [Forked(work) for _ in range(jobs - 1)]
    try:
        for child in children:
            child.start()
        if after_fork is not None:
            after_fork()
        out = work()
        for child in children:
            out += child.result()
        return out
    finally:
        for child in children:
            child.cancel()
        os.close(r)


class Forked:
    """``fn()`` in a forked copy of this process; ``result()`` gives what it returned, sent
    back pickled, or raises what it raised (a KeyboardInterrupt too), as if it had run here.
    The copy ends with ``os._exit``: none of the caller's clean-up runs in it. The caller
    checks ``can_fork()`` first."""

    def __init__(self, fn: Callable[[], R]) -> None:
        self.fn = fn
        self.pid: int | None = None

    def start(self) -> None:
        """Fork, with signals held: one that comes meanwhile is handled once ``pid`` is set,
        so that the caller, who already holds this object, can end the child."""
        if _ending:
            _reap()
        r, w = os.pipe()
        with outputs.signals_held():
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                _child(self.fn, r, w)
            self.pid, self._pipe = pid, r
            os.close(w)

    def result(self):
        """What ``fn`` returned, once the child has sent it (it closes its end of the pipe
        then, before it ends): a child still ending (giving its memory back: 3 ms for a
        link's copy) is not waited for, but reaped later (``_reap``)."""
        chunks = []
        while chunk := os.read(self._pipe, 1 << 20):
            chunks.append(chunk)
        os.close(self._pipe)
        pid, self.pid = self.pid, None
        if chunks:
            if not os.waitpid(pid, os.WNOHANG)[0]:
                _ending.append(pid)
            got = pickle.loads(b"".join(chunks))
            if isinstance(got, _Failed):
                raise got.error
            return got
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == -signal.SIGINT:
            raise KeyboardInterrupt
        raise AltlinkError(f"altlink: a forked worker ended without a result (status {code})")

    def cancel(self) -> None:
        """End the child if it is still there (the caller failed or was interrupted)."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:  # (reaped by a wait an interrupt cut off before its end)
            pass
        self.pid = None
        try:
            os.close(self._pipe)
        except OSError:  # (closed by a cancel that an interrupt cut off)
            pass


# The forked copies that had sent their result but not yet ended when it was read.
_ending: list[int] = []


def _reap(block: bool = False) -> None:
    """The copies of ``_ending`` that have ended since, reaped; none is waited for, unless
    ``block``."""
    for pid in list(_ending):
        try:
            done = os.waitpid(pid, 0 if block else os.WNOHANG)[0]
        except ChildProcessError:  # (reaped already: by a caller's own wait)
            done = pid
        if done:
            _ending.remove(pid)


def wait_ending() -> None:
    """The copies whose results were read while they were still ending, waited for: their
    time is then this process's children's (``wait4``'s, ``getrusage``'s), as whoever runs
    the command counts it; a caller waits here once its own work is done (``link.link``)."""
    if _ending:
        _reap(block=True)


class _Failed:
    """The child's exception, as it sends it."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _child(fn, r: int, w: int) -> None:  # pragma: no cover - runs in the child
    global _in_child
    _in_child = True
    os.close(r)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) != signal.SIG_IGN:  # (ignored under nohup: stays so)
            signal.signal(s, signal.SIG_DFL)  # the parent cleans up; the child just ends
    code = 0
    try:
        try:
            data = pickle.dumps(fn(), protocol=-1)
        except BaseException as e:  # noqa: BLE001 - raised again in the parent
            try:
                data = pickle.dumps(_Failed(e), protocol=-1)
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                data = pickle.dumps(_Failed(RuntimeError(repr(e))))
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]
        os.close(w)  # the parent has it all now: it need not wait for this process's end
    except BaseException:  # noqa: BLE001 - nothing may unwind into the parent's frames
        code = 1
    finally:
        os._exit(code)
