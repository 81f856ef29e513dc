"""The real linker as a process of the link stage: started with signals held, its messages shown
naming the real output, stopped when the link is interrupted; started as early as it may be
(``LinkStart``), so that it runs beside altlink's own work."""
from __future__ import annotations

import _signal as signal  # (signal's functions, without the enums signal makes: 1 ms a run)
import _thread
import os
import sys

from altlink import linkcmd, outputs
from altlink.errors import AltlinkError, LinkerError


# The status of a linker whose wait returned as a signal came in, before its status was kept
# (the signal's handler raised then): it was reaped, its status lost; the link is interrupted.
_REAPED = -1


class Linker:
    """The real linker, writing a temporary image. Its messages go to
    ``stderr`` (altlink's own by default) once it is done, with the temporary output's name
    replaced by the real one, so that they name a file the user knows ("fw.elf has a LOAD
    segment with RWX permissions").

    It is started with ``os.posix_spawnp``, as the shell would start it: the file descriptors
    altlink was given (a make jobserver's, say) are the linker's too, and SIGPIPE and SIGXFSZ,
    which Python ignores, are the default again. What it prints that altlink shows later
    goes to an unnamed temporary file, not a pipe that it could fill and wait on. (Not
    ``subprocess``, whose imports, 5 ms, would delay the start of every link.)"""

    def __init__(self, argv: list[str], stdout, stderr, tmp: str, output: str,
                 side: list[tuple[str, str]] | None = None) -> None:
        self.argv, self.tmp, self.output = argv, tmp, output
        # the side files the linker writes into temporary files: (temporary, where it goes)
        self.side = side or []
        self.stdout, self.stderr = stdout, stderr
        self.pid: int | None = None
        self.status: int | None = None  # the exit status, once it was waited for
        self.held_stdout = False
        self._held: dict[int, int] = {}  # fd 1 and 2 of the linker: the file that holds it

    def start(self, hold_stdout: bool = False) -> None:
        """Start it with signals held, once the caller holds this object: an interrupt then
        comes after ``pid`` is known, so the caller's clean-up stops the linker, which would
        otherwise go on to write the temporary file after altlink removed it.

        ``hold_stdout``: what the linker prints on its standard output (``-M``, ``--verbose``)
        is kept and shown with its messages once it is done, as when the link may still be
        refused while it runs: a refused link shows nothing of the linker's."""
        self.held_stdout = hold_stdout and self.stdout is None
        actions = []
        try:
            for fd, given, hold in ((1, self.stdout, self.held_stdout),
                                    (2, self.stderr, self.stderr is None)):
                if hold:
                    self._held[fd] = _unnamed_file(self.tmp)
                    actions.append((os.POSIX_SPAWN_DUP2, self._held[fd], fd))
                elif given is not None:
                    actions.append((os.POSIX_SPAWN_DUP2, _fileno(given), fd))
        except OSError as e:
            self._close_held()
            raise LinkerError(f"altlink link: cannot hold the linker's messages: "
                              f"{e.strerror}") from None
        with outputs.signals_held():
            try:
                self.pid = os.posix_spawnp(
                    self.argv[0], self.argv, os.environ, file_actions=actions,
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
            except OSError as e:
                self._close_held()
                raise LinkerError(f"{self.argv[0]}: cannot run the linker: {e.strerror}") \
                    from None

    def running(self) -> bool:
        """Whether the linker is still at work (started, not yet exited)."""
        if self.pid is None or self.status is not None:
            return False
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # (reaped by a wait an interrupt cut off before its end)
            self.status = _REAPED
            return False
        if pid == 0:
            return True
        self.status = os.waitstatus_to_exitcode(status)
        return False

    def _wait(self) -> int:
        if self.status is None:  # (an interrupted wait is retried by Python itself)
            try:
                self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            except ChildProcessError:  # (as in running: the interrupt's unwinding goes on)
                self.status = _REAPED
        return self.status

    def finish(self) -> None:
        """Wait for the linker; its messages are shown; LinkerError when it failed."""
        status = self._wait()
        self.pid = None
        held, err = self._read_held(1), self._read_held(2)
        self._close_held()
        if held:  # (-M, --print-map: GNU ld's map names the output)
            _write(sys.stdout, held.replace(self.tmp.encode(), self.output.encode()),
                   "the linker's output (its map) to the standard output")
        if err:
            err = err.replace(self.tmp.encode(), self.output.encode()).replace(
                os.path.basename(self.tmp).encode(), os.path.basename(self.output).encode())
            _write(sys.stderr, err, "the linker's messages to the standard error")
        self._commit_side(status)
        if status != 0:
            raise LinkerError(f"altlink link: the linker failed (exit {status}): "
                              f"{self.argv[0]}")
        name_output_in_side_files(self.argv, self.tmp, self.output)

    def _commit_side(self, status: int) -> None:
        """The side files the linker wrote moved into place, naming the real output, as the
        linker alone leaves them: after a link that failed too (a map shows what overflowed a
        memory region), but not one it never wrote. Not after a link altlink stopped."""
        old, new = self.tmp.encode(), self.output.encode()
        for tmp_side, path in self.side:
            try:
                with open(tmp_side, "r+b") as f:
                    data = f.read()
                    if not data and status != 0:
                        continue
                    if old in data:
                        data = data.replace(old, new)
                        f.seek(0)
                        f.write(data)
                        f.truncate()
                outputs.put(tmp_side, path)
            except OSError as e:
                raise AltlinkError(f"{path}: cannot write: {e.strerror}") from None

    def stop(self) -> None:
        """A linker still running (altlink was interrupted) is ended and its messages
        dropped: the link did not happen."""
        if self.pid is not None:
            if self.running():
                try:
                    os.kill(self.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self._wait()
            self.pid = None
        self._close_held()

    def _read_held(self, fd: int) -> bytes:
        got = self._held.get(fd)
        if got is None:
            return b""
        size = os.fstat(got).st_size
        return os.pread(got, size, 0) if size else b""

    def _close_held(self) -> None:
        for got in self._held.values():
            os.close(got)
        self._held.clear()


def name_output_in_side_files(argv: list[str], tmp: str, output: str) -> None:
    """The side files that were not written into temporary files
    (``linkcmd.side_file_redirected``; those are ``Linker._commit_side``'s) made to say the
    real output, as without altlink, not the temporary file the linker wrote (``-Map``: GNU
    ld's ``OUTPUT(...)`` line; ``--dependency-file``: the rule's target, ld's and lld's): a
    build that reads the dependency file (CMake 3.27 and later asks the linker for it) then
    knows what the image depends on. A map GNU ld names after the output (``-Map=DIR``:
    ``DIR/OUTPUT.map``; ``-Map=%.map``: the output's name for ``%``) is moved to the name it
    would have had. Nothing is reported where a file cannot be read or written: it stays as
    the linker wrote it."""
    if not linkcmd.names_side_files(argv):
        return  # (most links: no word to read)
    files = [(f, f) for f in linkcmd.option_values(argv[1:], ("--dependency-file",))
             if not linkcmd.side_file_redirected(f)]
    for m in linkcmd.option_values(argv[1:], ("-Map", "--Map")):
        if m == "-" or linkcmd.side_file_redirected(m):
            continue  # the map on the standard output, or one written into a temporary file
        if os.path.isdir(m):
            files.append((os.path.join(m, os.path.basename(tmp) + ".map"),
                          os.path.join(m, os.path.basename(output) + ".map")))
        elif "%" in m:
            files.append((m.replace("%", tmp, 1), m.replace("%", output, 1)))
        else:
            files.append((m, m))
    old, new = tmp.encode(), output.encode()
    for written, named in files:
        try:
            with open(written, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if old not in data and written == named:
            continue
        try:
            if old in data:
                part = outputs.temp_path(named, "part")
                try:
                    with open(part, "wb") as f:
                        f.write(data.replace(old, new))
                    outputs.put(part, named)
                except OSError:
                    outputs.remove(part)
                    raise
                if written != named:
                    os.unlink(written)
            else:
                outputs.put(written, named)
        except (OSError, AltlinkError):
            continue


def _unnamed_file(beside: str) -> int:
    """A file for the linker's messages that no one else sees and that goes when closed: in
    the temporary directory (``$TMPDIR``, else /tmp), else beside the output (``beside``,
    where the linker writes too); an ``O_TMPFILE``, else a file made there and removed at
    once."""
    dirs = outputs.temp_dirs(beside)
    error: OSError | None = None
    for tmpdir in dirs:
        flags = getattr(os, "O_TMPFILE", 0)
        if flags:
            try:
                return os.open(tmpdir, flags | os.O_RDWR | os.O_CLOEXEC, 0o600)
            except OSError:
                pass  # a file system without it, or no such directory: made and removed
        for n in range(100):
            path = os.path.join(tmpdir, f".altlink-linker-{os.getpid()}-{n}")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            except OSError as e:
                error = e
                break
            os.unlink(path)
            return fd
    raise error or OSError(17, "no free name for a temporary file")


def _fileno(stream) -> int:
    """The descriptor of a stream given for the linker's output (a file object or a
    descriptor)."""
    return stream if isinstance(stream, int) else stream.fileno()


def _write(stream, data: bytes, what: str) -> None:
    """The linker's bytes on one of altlink's streams, as they are where it has a buffer;
    AltlinkError where the stream's reader went away (``what``, the message's words): ld
    itself dies of SIGPIPE then, no image, and so does the link, which is not yet committed."""
    out = getattr(stream, "buffer", None)
    try:
        if out is not None:
            stream.flush()
            out.write(data)
            out.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
    except BrokenPipeError:
        raise AltlinkError(f"altlink link: cannot write {what}: its reader went away; nothing "
                           "was linked") from None


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
        self._thread = _thread.get_ident()  # (before any file is made: ``close_unclosed``)
        _unclosed.setdefault(self._thread, []).append(self)
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
            self.linker.start(hold_stdout=True)
        return self.linker

    def _new_linker(self) -> Linker:
        """The linker, not started, writing a new temporary file beside the output."""
        tmp = outputs.temp_path(self.output, "elf", self.tmp_files)
        side: list[tuple[str, str]] = []

        def redirect(value: str) -> str | None:  # a map, a dependency file: temporary too
            if not linkcmd.side_file_redirected(value):
                return None
            side.append((outputs.temp_path(value, "side", self.tmp_files), value))
            return side[-1][0]

        argv = linkcmd.retarget_side_files(self.cmd.with_output(tmp), redirect)
        return Linker(argv, self.stdout, self.stderr, tmp, self.output, side)

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
        mine = _unclosed.get(self._thread)
        if mine is not None and self in mine:
            mine.remove(self)
            if not mine:
                _unclosed.pop(self._thread, None)


# The LinkStarts made and not closed yet, by the thread that made them. ``cli.main``, which
# turns signals into exceptions, closes those of its thread when it ends (``close_unclosed``):
# an interrupt that lands between a LinkStart's first temporary file and its caller's hold on
# it (a line of the caller where nothing has the object yet) still stops its linker and
# removes its files. A link closes its own as it ends; these are what an interrupt cut off.
_unclosed: dict[int, list[LinkStart]] = {}


def close_unclosed() -> None:
    """Every LinkStart this thread made and did not close, closed (``LinkStart.close``)."""
    for start in list(_unclosed.get(_thread.get_ident(), ())):
        start.close()
