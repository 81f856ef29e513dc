"""What the codes of a link's image read as in its manifest (``manifest.CodeTexts``), kept
between links beside the objects' records (the record cache's directory, ``records``).

A code's text (its bytes and disassembly as JSON, the plan of its lines that depend on the
address, its words that may need a fix-up) depends on the code's bytes alone, through
altlink's own code (``insn``, ``manifest``) and capstone's: it is made again at every link
(about 10 µs a distinct code: 0.2 s of CPU for the synthetic firmware's 19,000), the same
each time. Kept here under ``code_digest`` (altlink's files and capstone's, as the records
are) and the interpreter's version, so that nothing is read back that the running code and
capstone would not make; a file that does not read back as that shape is ignored.

The texts of one key are a base file and the files of the links since, each with the codes
it made that were not kept yet (``.delta``: a relink after an edit adds a few); the link that
finds ``MAX_DELTAS`` of them writes them all into the base again. Files that would take more than
``bound_bytes()`` are begun again from one link's codes. Each file holds the sha256 of its
pickle, checked when it is read. Best effort, as the records are: files
written under a temporary name and renamed (concurrent links read whole files or none, and
two writing the same codes write the same texts), a directory that cannot be written is
done without. ``tests/test_textcache.py`` holds a manifest written with texts read back to
one written without.
"""
from __future__ import annotations

import _pickle as pickle
import io
import os
import sys
from _thread import get_ident  # (threading's, without threading)
from itertools import islice

FORMAT = 1
FOLDER = "texts"
BASE = ".base"
DELTA = ".delta"
# The files of the links since the base from which the next link writes them all into it.
MAX_DELTAS = 8
# The bytes the files of a key take at most (``bound_bytes``): about 180,000 codes.
MAX_BYTES = 32 << 20
# CodeTexts' tables, in the order kept.
FIELDS = ("code_json", "simple", "disasm_json", "lines", "word_json", "word_kinds")


class Kept:
    """What ``load`` read: the files (to be written into the base by the link that finds
    ``MAX_DELTAS`` of them), how many items each table had (the rest, this link's own, go
    into its ``.delta``)."""

    def __init__(self, folder: str, key: str, files: list[str], sizes: tuple[int, ...],
                 size: int) -> None:
        self.folder, self.key, self.files, self.sizes = folder, key, files, sizes
        self.bytes = size  # the files' bytes


def key_of(cache_dir: str) -> str:
    """The texts' key: altlink's code and capstone (``code_digest``), the interpreter, the
    format."""
    from altlink import code_digest, sha256_for

    text = f"altlink texts {FORMAT} {code_digest(cache_dir)} {sys.hexversion}".encode()
    return sha256_for(len(text))(text).hexdigest()[:40]


def load(cache_dir: str | None, texts=None):
    """``texts`` (a ``manifest.CodeTexts``, new where None) with the texts kept in
    ``cache_dir`` added, and ``texts.kept`` set (``Kept``: for ``save``); ``texts``
    unchanged, without ``kept``, where there is no cache directory."""
    if texts is None:
        from altlink.manifest import CodeTexts

        texts = CodeTexts()
    if not cache_dir:
        return texts
    folder = os.path.join(cache_dir, FOLDER)
    key = key_of(cache_dir)
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith(key)
                       and (n.endswith(DELTA) or n.endswith(BASE)))
    except OSError:
        names = []
    tables = [getattr(texts, f) for f in FIELDS]
    read = []
    size = 0
    for name in names:
        got = _read(os.path.join(folder, name))
        if got is None:
            continue
        read.append(name)
        size += got[1]
        for table, part in zip(tables, got[0]):
            table.update(part)
    texts.kept = Kept(folder, key, read, tuple(map(len, tables)), size)
    return texts


def save(texts) -> None:
    """What ``texts`` gained since ``load`` (the codes this link made), kept for the next
    links: in a ``.delta`` file of its own; where ``MAX_DELTAS`` were read (whether this link
    made codes or not), all that was read with it in a new base, those files then removed
    (and those of other keys not written for a day: another altlink's, or capstone's, and a
    killed link's temporary files). Where
    the files would take more than ``bound_bytes()``, begun again: every file read removed,
    the new codes alone kept."""
    kept = getattr(texts, "kept", None)
    if kept is None:
        return
    tables = [getattr(texts, f) for f in FIELDS]
    unchanged = tuple(map(len, tables)) == kept.sizes
    merge = sum(n.endswith(DELTA) for n in kept.files) >= MAX_DELTAS
    if unchanged and not merge:
        return  # nothing new
    bound = bound_bytes()
    # (merged where nothing is new too: links that ran at once, each writing its own delta,
    # leave more than MAX_DELTAS, which every later link would read)
    if merge:
        data = pickle.dumps(tuple(tables), protocol=-1)
        if len(data) <= bound:
            if _write(os.path.join(kept.folder, kept.key + BASE), data):
                _unlink_all(kept.folder, [n for n in kept.files if n != kept.key + BASE])
                _remove_others(kept.folder, kept.key)
            return
    if unchanged:
        return
    new = pickle.dumps(tuple(dict(islice(t.items(), n, None))
                             for t, n in zip(tables, kept.sizes)), protocol=-1)
    if kept.bytes + len(new) > bound:  # begun again: the files read removed
        _unlink_all(kept.folder, kept.files)
    if len(new) <= bound:
        _write(os.path.join(kept.folder, f"{kept.key}.{os.getpid()}.{os.urandom(6).hex()}"
                            f"{DELTA}"), new)


def bound_bytes() -> int:
    """The bytes the texts files of a key take at most: ``MAX_BYTES``, or a thirty-second of
    the record cache's bound (``ALTLINK_CACHE_SIZE``) where that is less."""
    from altlink.records import cache_size_limit

    limit = cache_size_limit()
    return MAX_BYTES if limit == 0 else min(MAX_BYTES, limit // 32)


def _unlink_all(folder: str, names: list[str]) -> None:
    for n in names:
        _unlink(os.path.join(folder, n))


def _write(path: str, data: bytes) -> bool:
    """``data`` kept at ``path`` after its sha256, written whole or not at all."""
    from altlink import sha256_for

    tmp = f"{path}.{os.getpid()}.{get_ident()}.tmp"  # (this thread's: scons -j links in threads)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                f.write(sha256_for(len(data))(data).digest())
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
    except OSError:
        return False  # a read-only or full cache directory: the next link makes them again
    return True


# Another key's files are removed by a link that writes a base where not written for this long
# (seconds).
OTHERS_KEPT = 24 * 3600.0


def _remove_others(folder: str, key: str) -> None:
    import time

    old = time.time() - OTHERS_KEPT
    try:
        with os.scandir(folder) as it:
            for e in it:
                if (not e.name.startswith(key) or e.name.endswith(".tmp")) and \
                        e.stat(follow_symlinks=False).st_mtime < old:
                    _unlink(e.path)
    except OSError:
        pass


class _Plain(pickle.Unpickler):
    """Texts are dicts, tuples, lists, strings, bytes and numbers: a file naming a class or a
    function (which unpickling would call) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{module}.{name} in a texts file")


def _read(path: str) -> tuple[tuple, int] | None:
    """A texts file's tables and its size, or None where it cannot be read or is not of
    their shape."""
    from altlink import sha256_for

    try:
        with open(path, "rb") as f:
            data = f.read()
        view = memoryview(data)[32:]
        if sha256_for(len(view))(view).digest() != data[:32]:
            return None
        got = _Plain(io.BytesIO(view)).load()
    except Exception:  # noqa: BLE001 - a missing or unusable file: its codes made again
        return None
    if type(got) is not tuple or len(got) != len(FIELDS) or \
            any(type(t) is not dict for t in got):
        return None
    return got, len(data)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
