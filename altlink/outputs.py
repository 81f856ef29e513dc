"""Writing outputs atomically: a temporary file beside the target, renamed into place when
complete, so an earlier output stays intact until a new one replaces it, and an interrupted run
never leaves a partial file."""
from __future__ import annotations

import _signal as signal  # (signal's functions, without the enums signal makes: 1 ms a run)
import os
import stat

from altlink.errors import AltlinkError


def temp_path(target: str, tag: str = "tmp", keep: list[str] | None = None) -> str:
    """A new, empty temporary file in the target's directory (same filesystem: rename works);
    for a target that is not a regular file (``-o /dev/null``: written into, never replaced,
    ``put``), in the temporary directory (``temp_dirs``: ``$TMPDIR``, else /tmp, the first that
    takes one).

    With ``keep``, the path is added to that list, the caller's list of files to remove, in
    the same step as the file is made: a signal cannot fall between the two and leave a file
    nobody removes."""
    # (the target's name cut where it is long: the temporary name must fit where the
    # target's fits, NAME_MAX, 255 bytes on Linux's filesystems)
    name = os.path.basename(target)
    while len(os.fsencode(name)) > TEMP_NAME_KEPT:
        name = name[:TEMP_NAME_KEPT if len(name) > TEMP_NAME_KEPT else -1]
    dirs = [os.path.dirname(os.path.abspath(target))] if not is_special(target) else \
        temp_dirs()
    with signals_held():
        for k, d in enumerate(dirs):
            made = _new_file(os.path.join(d, f".{name}."), tag, target, d,
                             last=k == len(dirs) - 1)
            if made is not None:
                break
        fd, path = made
        if keep is not None:
            keep.append(path)
    os.close(fd)
    return path


def _new_file(prefix: str, tag: str, target: str, d: str, last: bool
              ) -> tuple[int, str] | None:
    """A new file named ``prefix`` and a random part and ``tag``: its descriptor and path;
    None where the directory ``d`` will not take one and it is not the ``last`` one tried."""
    for _ in range(100):
        path = f"{prefix}{os.urandom(4).hex()}.{tag}"
        try:
            # The mode as a new file of the target's gets: the kernel applies the umask
            # (never changed here: other threads of an scons -j build create files too).
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL |
                           getattr(os, "O_CLOEXEC", 0), 0o666), path
        except FileExistsError:
            continue
        except OSError as e:
            if not last:
                return None
            raise AltlinkError(f"{target}: cannot create a file in {d}: {e.strerror}") \
                from None
    raise AltlinkError(f"{target}: cannot create a file in {d}: every name was taken")


def temp_dirs(beside: str | None = None) -> list[str]:
    """Where a temporary file that need not be beside its target is made, in the order to
    try: ``$TMPDIR`` (where set), /tmp, then the directory of ``beside`` (where given)."""
    dirs = [os.environ.get("TMPDIR") or "", "/tmp"]
    if beside is not None:
        dirs.append(os.path.dirname(beside) or ".")
    return [d for d in dirs if d]


# The bytes of a target's name that its temporary file's name keeps, at most: with the
# dot before, and the dot, 8 digits, a dot and a tag after, it stays within 255 bytes.
TEMP_NAME_KEPT = 200


def is_special(target: str) -> bool:
    """Is the target a file that is there and is neither a regular file nor a directory: a
    device (``/dev/null``), a FIFO, a socket? The linker writes into such a file, as a build's
    probe asks (``-o /dev/null``); renaming a finished output over it would replace the device
    with a regular file, for every program on the machine."""
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def put(tmp: str, target: str) -> None:
    """A finished temporary file put in place: renamed over the target; written into a
    target that is not a regular file (``is_special``), and removed. Raises OSError."""
    if not is_special(target):
        os.replace(tmp, target)
        return
    with open(tmp, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.unlink(tmp)


def _read_umask() -> int | None:
    """The process's umask as the kernel reports it (Linux 4.7 and later), read without
    changing it; None where it is not reported."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _set_and_restore() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# Where the kernel does not report it, the umask is read once, here, as the package is
# imported: os.umask can only read it by setting it, and a file another thread made between
# the set and the restore would get mode 0666.
_UMASK_AT_IMPORT = _read_umask()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = _set_and_restore()


def _umask() -> int:
    """The umask, for a file another program made (the linker's image) that must get the
    mode a new file gets: read from the kernel each time, else as it was at import."""
    m = _read_umask()
    return _UMASK_AT_IMPORT if m is None else m


def give_new_file_mode(path: str, executable: bool) -> None:
    """The mode a new file gets under the umask, given to a file another program made (the
    linker's image): 0777 less the umask for an executable, 0666 less it otherwise."""
    os.chmod(path, (0o777 if executable else 0o666) & ~_umask())


def remove(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def remove_stale(paths: list[str]) -> None:
    """The previous outputs at these targets, removed: a failed or interrupted link leaves none
    of its outputs (as SCons and make do), so that an image from an earlier build cannot be
    flashed after a failed one. Only regular files go (``-o /dev/null`` stays)."""
    with signals_held():
        for path in paths:
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)
            except OSError:
                pass


def write_bytes(target: str, data: bytes, mode: int | None = None) -> None:
    made: list[str] = []
    try:
        tmp = temp_path(target, keep=made)
        with writing(tmp, target, "wb") as f:
            f.write(data)
        finish(tmp, target, mode)
        made.clear()
    finally:
        for path in made:
            remove(path)


class writing:
    """``open(tmp, mode)`` for a block that writes a target's temporary file: an OSError there
    (a full disk, a file size limit, a quota; in the close too, where buffered writes land) is
    an AltlinkError naming the target, not the temporary file. The caller removes the file."""

    def __init__(self, tmp: str, target: str, mode: str, **kw) -> None:
        self.target = target
        try:
            self.f = open(tmp, mode, **kw)
        except OSError as e:
            raise self._error(e) from None

    def _error(self, e: OSError) -> AltlinkError:
        return AltlinkError(f"{self.target}: cannot write: {e.strerror or e}")

    def __enter__(self):
        return self.f

    def __exit__(self, typ, e, tb) -> None:
        try:
            self.f.close()
        except OSError as e2:
            if e is None:
                raise self._error(e2) from None
        if isinstance(e, OSError):
            raise self._error(e) from None


def finish(tmp: str, target: str, mode: int | None = None) -> None:
    """A temporary file, written in full, put in place: on disk first, then its mode, then
    renamed over the target."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
        put(tmp, target)
    except OSError as e:
        raise AltlinkError(f"{target}: cannot write: {e.strerror}") from None


def signals_held() -> _SignalsHeld:
    """SIGINT, SIGTERM and SIGHUP wait until the block ends (then are handled as before): the
    renames that put a set of outputs in place happen all or none. Python runs signal handlers
    in the main thread only, so elsewhere no signal can land in the block anyway."""
    return _SignalsHeld()


class _SignalsHeld:
    """``signals_held``'s block. (A class, not ``contextlib.contextmanager``: contextlib is
    imported by no other module of a check.)"""

    def __enter__(self) -> None:
        self.got: list[int] = []
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        # None: a handler set outside Python, kept
        self.old = {s: h for s, h in old.items() if h is not None}
        got = self.got
        try:
            for s in self.old:
                signal.signal(s, lambda signum, frame: got.append(signum))
        except ValueError:  # not the main thread (signal.signal's rule; threading is not
            self.old = {}   # imported for it): none lands here

    def __exit__(self, *exc) -> None:
        old, got = self.old, self.got
        for s, h in old.items():
            signal.signal(s, h)
        if got:
            h = old[got[0]]
            if callable(h):
                h(got[0], None)
            elif h == signal.SIG_DFL:
                signal.raise_signal(got[0])


def commit(tmp: str, target: str) -> None:
    """Move a finished temporary file into place (``put``)."""
    try:
        put(tmp, target)
    except OSError as e:
        remove(tmp)
        raise AltlinkError(f"{target}: cannot write: {e.strerror}") from None


def check_targets(targets: list[tuple[str, str | None]], words: list[str] = (),
                  what: str = "the link") -> None:
    """Refuse (AltlinkError, exit 2) outputs that would replace one another or an input:
    ``targets`` are (what, path) pairs (a None path: not asked for), ``words`` the command's
    arguments that may name its inputs (objects, scripts, images, as themselves, as an
    option's value after ``=``, after ``,`` in ``-Wl,...``, or joined to ``-T``/``-R``).
    ld refuses an ``-o`` that names one of its inputs; a link through altlink writes a
    temporary file, which ld cannot compare, and a manifest or raw binary written over an
    object would have replaced it without a word. A target is one file by its directory and
    name (a rename replaces the name, not what a symbolic link there points to). Targets that
    are not regular files (``-o /dev/null``) are written into, never replaced: not refused.
    An argument is compared only where its last part is a target's name (no file system
    access for the thousands of inputs of a large link)."""
    seen: dict[tuple[int, int, str], str] = {}
    names: dict[str, list[tuple[tuple[int, int, str], str, str]]] = {}
    for label, path in targets:
        if not path or is_special(path):
            continue
        key = _entry_key(path)
        if key is None:
            continue  # (no such directory: the output cannot be made there, nor replace any)
        if key in seen and seen[key] != label:
            raise AltlinkError(f"{path}: named as both {seen[key]} and {label}: one would "
                               "replace the other")
        seen[key] = label
        names.setdefault(key[2], []).append((key, label, path))
    if not names:
        return
    # The words that hold a target's name somewhere, found at C speed in the words joined by
    # NUL (which no argument holds): a 2,000-object link's words in 0.1 ms, not 3 ms.
    joined = "\0".join(words)
    for name in names:
        i = joined.find(name)
        while i >= 0:
            start = joined.rfind("\0", 0, i) + 1
            end = joined.find("\0", i)
            end = len(joined) if end < 0 else end
            _check_word(joined[start:end], names, what)
            i = joined.find(name, end)


def _check_word(word: str, names: dict, what: str) -> None:
    for part in word.replace("=", ",").split(","):
        if part[:2] in ("-T", "-R") and len(part) > 2:
            part = part[2:]
        got = names.get(part.rpartition("/")[2])
        if got is None or part.startswith("-"):
            continue
        key = _entry_key(part)
        for k, label, path in got:
            if k == key:
                raise AltlinkError(f"{path}: {label} would replace an input of {what}: "
                                   "name another file")


def _entry_key(path: str) -> tuple[int, int, str] | None:
    """A path's directory entry: its directory (device and inode, whatever the path's
    spelling) and its name; None where the directory is not there."""
    head, _, name = path.rpartition("/")
    if not head:
        head = "/" if path.startswith("/") else "."
    try:
        st = os.stat(head)
    except OSError:
        return None
    return st.st_dev, st.st_ino, name
