"""altlink: link-stage collection, validation and patching of AArch64 alternatives."""
from __future__ import annotations

import sys

__version__ = "0.1.0"

_digest: list[str] = []

# The package's files that its digest covers: its Python modules and the headers, linker
# scripts, schema and runtime it ships.
_DIGESTED = (".py", ".h", ".ld", ".json", ".c", ".so")  # .so: the C extension, where built
# A digest is kept (``code_digest``'s ``keep_in``) only where every file was last changed at
# least this long before (seconds): a write in the same tick of the clock as the files were
# looked at would leave their identities as they were (git's "racily clean" files).
_SETTLED = 2.0
# Data of this many bytes in all, or more, is hashed by hashlib (``sha256_for``).
HASHLIB_FROM = 1 << 20
_asked = [0]  # the bytes that ``sha256_for`` was asked for in this process, in all


def sha256_for(size: int = 0, count: bool = True):
    """``hashlib.sha256``, or, for data of fewer than ``HASHLIB_FROM`` bytes in all (``size``,
    added to what this process asked for before: ``altlink check`` of a thousand modules
    keys each one's record on its own) while hashlib is not imported yet, the interpreter's
    own sha256 (``_sha256``, ``_sha2`` from Python 3.12: the same digests): hashlib's import
    (with OpenSSL's library) is about 3 ms of a run, a kernel module's link's too, and the
    built-in hash is slower by about 2.5 ns a byte. ``count``: False for data hashed once a
    process (the package's own files, ``code_digest``), not added."""
    if count:
        _asked[0] += size
    if _asked[0] < HASHLIB_FROM and "hashlib" not in sys.modules:
        try:
            from _sha256 import sha256
        except ImportError:
            try:
                from _sha2 import sha256
            except ImportError:  # (a Python built without its own hashes)
                sha256 = None
        if sha256 is not None:
            return sha256
    import hashlib

    return hashlib.sha256


def code_digest(keep_in: str | None = None) -> str:
    """A hash of the package's own files (``_DIGESTED``: its Python modules and the headers,
    linker scripts, schema and runtime it ships) and of the capstone it would import, made
    once per process: what altlink makes of an input (a record in the cache, a link in
    SCons) is kept under it, so that any change to the code makes those again, whatever the
    version string says. (Capstone's decoding is part of the checks, ``insn.classify``, and
    of the manifest's disassembly: another capstone, in another environment sharing the
    cache, may say otherwise.)

    ``keep_in``: a directory (the record cache's) where the digest is kept under the files'
    identities (each one's path, inode, size and times of modification and change, and
    capstone's, ``_capstone_identity``), so that the next process reads it there instead of
    reading and hashing every file (3 ms of every run, a kernel module's link's). Any write
    to a file, or its replacement, gives it another change time (which, unlike the
    modification time, no one sets back); a digest is kept only where every file was
    changed ``_SETTLED`` seconds or more before it was made, so that a write in the same
    tick of the clock cannot hide."""
    if not _digest:
        import os

        here = os.path.dirname(os.path.abspath(__file__))
        files: list[tuple[str, str, os.stat_result]] = []
        _package_files(here, "", files)
        capstone = _capstone_identity()
        where = None
        if keep_in:
            stamp = "\0".join([here, __version__] + [
                f"{rel}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
                for rel, _, st in files]).encode() + b"\0" + capstone
            key = sha256_for(len(stamp), count=False)(stamp).hexdigest()
            where = os.path.join(keep_in, key[:2], f".code.{key[2:]}")
            kept = _read_digest(where)
            if kept is not None:
                _digest.append(kept)
                return kept
        h = sha256_for(sum(st.st_size for _, _, st in files), count=False)(
            __version__.encode() + b"\0")
        for rel, path, _ in files:
            with open(path, "rb") as fh:
                data = fh.read()
            h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
        h.update(capstone)
        digest = h.hexdigest()
        if where is not None:
            import time

            settled = (time.time() - _SETTLED) * 1e9
            if all(st.st_ctime_ns < settled and st.st_mtime_ns < settled
                   for _, _, st in files):
                _keep_digest(keep_in, where, digest)
        _digest.append(digest)  # two threads at once compute the same value
    return _digest[0]


def _package_files(folder: str, rel: str, out: list) -> None:
    """The digested files under ``folder`` (``rel``: its path in the package), in the order
    of ``os.walk`` with its folders and files sorted (not ``__pycache__``), each with its
    ``stat``: ``(path in the package, path, stat)``."""
    import os

    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:  # (os.walk's: a folder it cannot list is passed over)
        return
    subfolders = []
    for e in entries:
        try:
            is_dir = e.is_dir()
        except OSError:  # (os.walk's: a file)
            is_dir = False
        if is_dir:
            if e.name != "__pycache__" and not e.is_symlink():  # (os.walk's: not followed)
                subfolders.append(e)
        elif e.name.endswith(_DIGESTED):
            out.append((rel + e.name, e.path, e.stat()))
    for e in subfolders:
        _package_files(e.path, f"{rel}{e.name}/", out)


def _read_digest(path: str) -> str | None:
    """A digest kept at ``path``, or None where there is none that reads as one."""
    from altlink.filekind import read_head

    data = read_head(path, 128)
    if data is None:
        return None
    if len(data) == 64 and not data.strip(b"0123456789abcdef"):
        return data.decode()
    return None


def _keep_digest(directory: str, path: str, digest: str) -> None:
    """The digest written at ``path`` (under a temporary name, then renamed); best effort,
    as the record cache is."""
    import os
    from _thread import get_ident

    tmp = f"{path}.{os.getpid()}.{get_ident()}.tmp"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)  # (private, as the records are)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(digest.encode())
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _capstone_identity() -> bytes:
    """The capstone package that ``import capstone`` would find first on ``sys.path``, by the
    size and modification time of its module and its library (another version differs in
    both; a reinstall of the same one only makes the records again), without importing it
    (0.09 s)."""
    import os
    import sys

    for entry in sys.path:
        pkg = os.path.join(entry or ".", "capstone")
        init = os.path.join(pkg, "__init__.py")
        try:
            st = os.stat(init)
        except OSError:
            continue
        out = [f"capstone {st.st_size} {st.st_mtime_ns}"]
        lib = os.path.join(pkg, "lib")
        try:
            names = sorted(os.listdir(lib))
        except OSError:
            names = []
        for name in names:
            try:
                st = os.stat(os.path.join(lib, name))
            except OSError:
                continue
            out.append(f"{name} {st.st_size} {st.st_mtime_ns}")
        return "\0".join(out).encode() + b"\0"
    return b"no capstone\0"
