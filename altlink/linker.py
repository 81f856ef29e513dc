"""The real linker as a process of the link stage: started with signals held, its messages shown
naming the real output, stopped when the link is interrupted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from altlink import outputs
from altlink.errors import LinkerError


class Linker:
    """The real linker, writing a temporary image. Its messages go to
    ``stderr`` (altlink's own by default) once it is done, with the temporary output's name
    replaced by the real one, so that they name a file the user knows ("fw.elf has a LOAD
    segment with RWX permissions")."""

    def __init__(self, argv: list[str], stdout, stderr, tmp: str, output: str) -> None:
        self.argv, self.tmp, self.output = argv, tmp, output
        self.stdout, self.stderr = stdout, stderr
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it with signals held, once the caller holds this object: an interrupt then
        comes after ``proc`` is known, so the caller's clean-up stops the linker, which would
        otherwise go on to write the temporary file after altlink removed it."""
        with outputs.signals_held():
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdout=self.stdout,
                    stderr=subprocess.PIPE if self.stderr is None else self.stderr)
            except OSError as e:
                raise LinkerError(f"{self.argv[0]}: cannot run the linker: {e.strerror}") \
                    from None

    def finish(self) -> None:
        """Wait for the linker; its messages are shown; LinkerError when it failed."""
        proc = self.proc
        _, err = proc.communicate()
        self.proc = None
        if err:
            err = err.replace(self.tmp.encode(), self.output.encode()).replace(
                os.path.basename(self.tmp).encode(), os.path.basename(self.output).encode())
            out = getattr(sys.stderr, "buffer", None)
            if out is not None:
                sys.stderr.flush()
                out.write(err)
                out.flush()
            else:
                sys.stderr.write(err.decode("utf-8", "replace"))
        if proc.returncode != 0:
            raise LinkerError(f"altlink link: the linker failed (exit {proc.returncode}): "
                              f"{self.argv[0]}")

    def stop(self) -> None:
        """A linker still running (altlink was interrupted) is ended and its messages
        dropped: the link did not happen."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate()

