"""The real linker as a process of the link stage: started with signals held, its messages shown
naming the real output, stopped when the link is interrupted; started as early as it may be
(``LinkStart``), so that it runs beside altlink's own work."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from altlink import linkcmd, outputs
from altlink.errors import AltlinkError, LinkerError


class Linker:
    """The real linker, writing a temporary image. Its messages go to
    ``stderr`` (altlink's own by default) once it is done, with the temporary output's name
    replaced by the real one, so that they name a file the user knows ("fw.elf has a LOAD
    segment with RWX permissions")."""

    def __init__(self, argv: list[str], stdout, stderr, tmp: str, output: str) -> None:
        self.argv, self.tmp, self.output = argv, tmp, output
        self.stdout, self.stderr = stdout, stderr
        self.proc: subprocess.Popen | None = None
        self.held_stdout = False

    def start(self, hold_stdout: bool = False) -> None:
        """Start it with signals held, once the caller holds this object: an interrupt then
        comes after ``proc`` is known, so the caller's clean-up stops the linker, which would
        otherwise go on to write the temporary file after altlink removed it.

        ``hold_stdout``: what the linker prints on its standard output (``-M``, ``--verbose``)
        is kept and shown with its messages once it is done, as when the link may still be
        refused while it runs: a refused link shows nothing of the linker's."""
        self.held_stdout = hold_stdout and self.stdout is None
        with outputs.signals_held():
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdout=subprocess.PIPE if self.held_stdout else self.stdout,
                    stderr=subprocess.PIPE if self.stderr is None else self.stderr)
            except OSError as e:
                raise LinkerError(f"{self.argv[0]}: cannot run the linker: {e.strerror}") \
                    from None

    def running(self) -> bool:
        """Whether the linker is still at work (started, not yet exited)."""
        return self.proc is not None and self.proc.poll() is None

    def finish(self) -> None:
        """Wait for the linker; its messages are shown; LinkerError when it failed."""
        proc = self.proc
        held, err = proc.communicate()
        self.proc = None
        if held:
            _write(sys.stdout, held)
        if err:
            err = err.replace(self.tmp.encode(), self.output.encode()).replace(
                os.path.basename(self.tmp).encode(), os.path.basename(self.output).encode())
            _write(sys.stderr, err)
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



def _write(stream, data: bytes) -> None:
    """The linker's bytes on one of altlink's streams, as they are where it has a buffer."""
    out = getattr(stream, "buffer", None)
    if out is not None:
        stream.flush()
        out.write(data)
        out.flush()
    else:
        stream.write(data.decode("utf-8", "replace"))


class LinkStart:
    """A link's command read (``linkcmd.parse``) and, where it writes nothing but its output
    (``linkcmd.writes_only_output``), its linker started at once, into a temporary file: the
    linker then runs while altlink imports its checks and reads and checks the inputs. A link
    those checks refuse stops it and drops its messages (``close``), so that nothing shows it
    ran. This module imports little, so that the linker starts early.

    ``linker`` is None where it has to wait for the checks: a command that may write other
    files (a map, a dependency file), or an output directory where no temporary file can be
    made (reported after the inputs' findings, as when the linker starts late).
    ``parsed``: the command as ``linkcmd.parse`` read it already (``launcher.plan``).
    ``tmp_files`` are the link's temporary files, removed by ``close``."""

    def __init__(self, command: list[str], output: str, stdout=None, stderr=None,
                 parsed: linkcmd.LinkCommand | None = None) -> None:
        self.cmd = parsed if parsed is not None else linkcmd.parse(command)
        self.output, self.stdout, self.stderr = output, stdout, stderr
        self.tmp_files: list[str] = []
        self.linker: Linker | None = None
        if not linkcmd.writes_only_output(self.cmd.argv):
            return
        try:
            self.linker = self._new_linker()
        except AltlinkError:
            return
        try:
            self.linker.start(hold_stdout=True)
        except BaseException:  # an interrupt held while it started: the caller has no object
            self.close()
            raise

    def linker_started(self) -> Linker:
        """The linker, started now if it was not yet (the checks passed)."""
        if self.linker is None:
            self.linker = self._new_linker()
            self.linker.start()
        return self.linker

    def _new_linker(self) -> Linker:
        """The linker, not started, writing a new temporary file beside the output."""
        tmp = outputs.temp_path(self.output, "elf", self.tmp_files)
        return Linker(self.cmd.with_output(tmp), self.stdout, self.stderr, tmp, self.output)

    def stop(self) -> None:
        """A linker still running is stopped, its messages dropped (``Linker.stop``)."""
        if self.linker is not None:
            self.linker.stop()

    def close(self) -> None:
        """The linker stopped and every temporary file removed (the committed ones were renamed
        away before)."""
        self.stop()
        for t in self.tmp_files:
            outputs.remove(t)
