"""Progress of long work (checking many modules, hashing a big image), drawn on stderr only
when it is a terminal and the command line turned it on: never in the machine formats, never
into a file or a pipe. One line, redrawn in place at most ten times a second, and erased when
the work ends (or fails), so that the terminal is left as if nothing had been drawn."""
from __future__ import annotations

import os
import time

INTERVAL = 0.1
_stream = None  # where to draw; None: progress is off
_owner = 0  # the process that turned it on: forked copies draw nothing
_drawn = False


def enable(stream) -> bool:
    """Draw progress on ``stream`` from now on if it is a terminal (and TERM is not dumb)."""
    global _stream, _owner
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty and os.environ.get("TERM") != "dumb":
        _stream, _owner = stream, os.getpid()
        return True
    return False


def disable() -> None:
    global _stream
    erase()
    _stream = None


def _write(text: str) -> None:
    try:
        _stream.write(text)
        _stream.flush()
    except (OSError, ValueError):
        pass


def erase() -> None:
    """Remove the progress line, before anything else is written to the terminal."""
    global _drawn
    if _drawn and _stream is not None and os.getpid() == _owner:
        _write("\r\x1b[K")
    _drawn = False


class Task:
    """``total`` units of work under a label; ``advance(n)`` as they are done."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self._next = 0.0

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc) -> None:
        erase()

    def advance(self, n: int = 1) -> None:
        global _drawn
        self.done += n
        if _stream is None or os.getpid() != _owner:
            return
        now = time.monotonic()
        if now < self._next and self.done < self.total:
            return
        self._next = now + INTERVAL
        _write(f"\r\x1b[Kaltlink: {self.label} {min(100, self.done * 100 // self.total)}%")
        _drawn = True


def task(label: str, total: int) -> Task:
    return Task(label, total)
