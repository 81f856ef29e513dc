"""What the codes of a link's image read as in its manifest (``manifest.CodeTexts``), kept
between links beside the objects' records (the record cache's directory, ``records``).

A code's text (its bytes and disassembly as JSON, the plan of its lines that depend on the
address, its words that may need a fix-up) depends on the code's bytes alone, through
altlink's own code (``insn``, ``manifest``) and capstone's: it is made again at every link
(about 10 µs a distinct code: 0.2 s of CPU for the synthetic firmware's 19,000), the same
each time. Kept here under ``code_digest`` (altlink's files and capstone's, as the records
are) and the interpreter's version, so that nothing is read back that the running code and
capstone would not make; a file that does not read back as that shape is ignored.

A file holds most codes (those that read the same anywhere and need no fix-up: 15,000 of
the synthetic firmware's 19,000) in a compact table (``_compact_table``), which the link's
writer reads where the file is mapped, no Python object made for each code
(``manifest.CodeTexts.add_compact``: a link's texts read in about 10 ms, not 20, into 8 MB
of its memory, not 13); the other codes, and the tables of words, pickled after it.

The texts of one key are a base file and the files of the links since, each with the codes
it made that were not kept yet (``.delta``: a relink after an edit adds a few); the link that
finds ``MAX_DELTAS`` of them writes them all into the base again. Files that would take more than
``bound_bytes()`` are begun again from one link's codes. Each file holds the sha256 of the rest,
checked when it is read. Best effort, as the records are: files
written under a temporary name and renamed (concurrent links read whole files or none, and
two writing the same codes write the same texts), a directory that cannot be written is
done without. ``tests/test_textcache.py`` holds a manifest written with texts read back to
one written without.
"""
from __future__ import annotations

import _pickle as pickle
import io
import mmap
import os
import struct
import sys
from _thread import get_ident  # (threading's, without threading)
from itertools import islice

FORMAT = 2
FOLDER = "texts"
BASE = ".base"
DELTA = ".delta"
# The files of the links since the base from which the next link writes them all into it.
MAX_DELTAS = 8
# The bytes the files of a key take at most (``bound_bytes``): about 180,000 codes.
MAX_BYTES = 32 << 20
# CodeTexts' tables, in the order kept.
FIELDS = ("code_json", "simple", "disasm_json", "lines", "word_json", "word_kinds")
# A file, after the sha256 of the rest: this, the compact table's bytes (u64), the table, and
# the pickled tables (FIELDS: their items the table does not hold).
MAGIC = b"ALTT"
_HEAD = struct.Struct("<4sQ")


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
    read = []
    size = 0
    for name in names:
        got = _read(os.path.join(folder, name))
        if got is None:
            continue
        read.append(name)
        parts, compact, n = got
        size += n
        for f, part in zip(FIELDS, parts):
            getattr(texts, f).update(part)
        if compact is not None:
            texts.add_compact(compact, _compact_items)
    texts.kept = Kept(folder, key, read, _sizes(texts), size)
    return texts


def _sizes(texts) -> tuple[int, ...]:
    """The items of each of ``texts``' tables (FIELDS), not counting its compact tables'."""
    return tuple(dict.__len__(getattr(texts, f)) for f in FIELDS)


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
    unchanged = _sizes(texts) == kept.sizes
    merge = sum(n.endswith(DELTA) for n in kept.files) >= MAX_DELTAS
    if unchanged and not merge:
        return  # nothing new
    bound = bound_bytes()
    # (merged where nothing is new too: links that ran at once, each writing its own delta,
    # leave more than MAX_DELTAS, which every later link would read)
    if merge:
        # (the compact tables' codes, then the dicts': a code in both reads the same)
        held = [item for t in getattr(tables[0], "compact", ()) for item in _items(t)]
        data = _contents([dict(t) for t in tables], held)
        if len(data) <= bound:
            if _write(os.path.join(kept.folder, kept.key + BASE), data):
                _unlink_all(kept.folder, [n for n in kept.files if n != kept.key + BASE])
                _remove_others(kept.folder, kept.key)
            return
    if unchanged:
        return
    new = _contents([dict(islice(t.items(), n, None)) for t, n in zip(tables, kept.sizes)])
    if kept.bytes + len(new) > bound:  # begun again: the files read removed
        _unlink_all(kept.folder, kept.files)
    if len(new) <= bound:
        _write(os.path.join(kept.folder, f"{kept.key}.{os.getpid()}.{os.urandom(6).hex()}"
                            f"{DELTA}"), new)


def all_tables(texts) -> list[dict]:
    """``texts``' tables (FIELDS) as dicts, the codes of its compact tables put in."""
    from altlink.manifest import compact_into

    tables = [dict(getattr(texts, f)) for f in FIELDS]
    for t in getattr(texts.code_json, "compact", ()):
        compact_into(tables[0], tables[1], _items(t))
    return tables


def _contents(tables: list[dict], held: list | None = None) -> bytes:
    """A file's contents but its digest, of ``tables`` (FIELDS'): the codes of ``code_json``
    that read the same anywhere and need no fix-up (``simple`` their text and no fix-ups),
    and those of ``held`` (a compact table's items: (code, text)), in a compact table; the
    rest pickled. ``tables`` are changed."""
    from altlink.manifest import is_compact

    codes, simple = tables[0], tables[1]
    items = dict(reversed(held)) if held else {}  # (a code's first text kept: all the same)
    for code, value in list(codes.items()):
        if is_compact(code, value, simple.get(code)):
            items.setdefault(code, value[0])
            del codes[code], simple[code]
    table = _compact_table(list(items.items())) if items else b""
    return _HEAD.pack(MAGIC, len(table)) + table + pickle.dumps(tuple(tables), protocol=-1)


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


def _read(path: str) -> tuple[tuple, memoryview | None, int] | None:
    """A texts file's pickled tables, its compact table (a view of the file, mapped where it
    can be; None for none) and its size; None where it cannot be read or is not of their
    shape."""
    from altlink import sha256_for

    try:
        with open(path, "rb") as f:
            try:  # (the compact table read where it lies, not copied)
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # (a file system that does not map, an empty file)
                data = f.read()
        view = memoryview(data)
        if len(view) < 32 + _HEAD.size or \
                sha256_for(len(view) - 32)(view[32:]).digest() != view[:32]:
            return None
        magic, n = _HEAD.unpack_from(view, 32)
        at = 32 + _HEAD.size
        compact = view[at:at + n]
        if magic != MAGIC or len(compact) != n or (n and not _compact_valid(compact)):
            return None
        got = _Plain(io.BytesIO(view[at + n:])).load()
    except Exception:  # noqa: BLE001 - a missing or unusable file: its codes made again
        return None
    if type(got) is not tuple or len(got) != len(FIELDS) or \
            any(type(t) is not dict for t in got):
        return None
    return got, compact if n else None, len(view)


# -- the compact table (``_postlink.c`` has the same, which the link uses) -----------------
#   header:  b"ALTC", then little-endian u32s: the slots (a power of two), the records, the
#            records' bytes
#   slots:   two little-endian u32s each, the code's hash's low 32 bits and its record's
#            offset in the records plus 1 (0: empty), from the hash (``_code_hash``) masked
#            on (linear probing)
#   records: little-endian u32s: the code's length, the text's length; then the code, then
#            the text (ASCII)
_TABLE = struct.Struct("<4sIII")
_SLOT = struct.Struct("<II")
_RECORD = struct.Struct("<II")
_M64 = (1 << 64) - 1


def _code_hash(code: bytes) -> int:
    """The hash a compact table files a code by (``code_hash`` in ``_postlink.c``)."""
    n = len(code)
    h = 0x9E3779B97F4A7C15 ^ n
    i = 0
    while n - i >= 8:
        h = ((h ^ int.from_bytes(code[i:i + 8], "little")) * 0xFF51AFD7ED558CCD) & _M64
        h ^= h >> 32
        i += 8
    h = ((h ^ int.from_bytes(code[i:], "little")) * 0xC4CEB9FE1A85EC53) & _M64
    return (h ^ (h >> 29)) & ~(1 << 63)


def _compact_table(items) -> bytes:
    """The compact table of ``items``, (code, text) pairs (bytes, an ASCII str), a code's
    first pair kept: the compiled ``compact_table``'s, else ``_compact_table_py``'s."""
    from altlink import speedups

    pl = speedups.postlink()
    return pl.compact_table(items) if pl is not None else _compact_table_py(items)


def _compact_table_py(items) -> bytes:
    """``_compact_table``'s reference."""
    items = list(items)
    slots = 8
    while slots < 2 * len(items):
        slots *= 2
    hashes, at = [0] * slots, [0] * slots
    recs = bytearray()
    count = 0
    for code, text in items:
        if type(code) is not bytes or type(text) is not str or not text.isascii():
            raise ValueError("compact_table: an item is not (bytes, an ASCII str)")
        h = _code_hash(code) & 0xFFFFFFFF
        i = h & (slots - 1)
        while at[i] and (hashes[i] != h or _record(recs, at[i] - 1)[0] != code):
            i = (i + 1) & (slots - 1)
        if at[i]:
            continue  # (a code's first pair kept)
        hashes[i], at[i] = h, len(recs) + 1
        t = text.encode("ascii")
        recs += _RECORD.pack(len(code), len(t)) + code + t
        count += 1
    pairs = [v for pair in zip(hashes, at) for v in pair]
    return _TABLE.pack(b"ALTC", slots, count, len(recs)) + \
        struct.pack(f"<{2 * slots}I", *pairs) + bytes(recs)


def _record(recs, off: int) -> tuple[bytes, str, int]:
    """The record at ``off`` of a table's records: its code, its text, the next's offset."""
    n, k = _RECORD.unpack_from(recs, off)
    at = off + _RECORD.size
    code = bytes(recs[at:at + n])
    text = bytes(recs[at + n:at + n + k])
    if len(code) != n or len(text) != k:
        raise ValueError("a compact table's records run past its end")
    return code, text.decode("ascii"), at + n + k


def _compact_valid(table) -> bool:
    """Whether ``table`` (a buffer) has a compact table's header and size."""
    if len(table) < _TABLE.size:
        return False
    magic, slots, _, size = _TABLE.unpack_from(table)
    return magic == b"ALTC" and slots > 0 and not slots & (slots - 1) and \
        len(table) == _TABLE.size + _SLOT.size * slots + size


def _compact_get(table, code: bytes) -> str | None:
    """The text of ``code`` in ``table`` (the compiled ``compact_get``'s reference)."""
    _, slots, _, _ = _TABLE.unpack_from(table)
    recs = memoryview(table)[_TABLE.size + _SLOT.size * slots:]
    h = _code_hash(code) & 0xFFFFFFFF
    i = h & (slots - 1)
    for _ in range(slots):
        h32, at = _SLOT.unpack_from(table, _TABLE.size + _SLOT.size * i)
        if not at:
            return None
        if h32 == h:
            got, text, _ = _record(recs, at - 1)
            if got == code:
                return text
        i = (i + 1) & (slots - 1)
    return None


def _compact_items(table) -> list[tuple[bytes, str]]:
    """``table``'s (code, text) pairs, in the order made (the compiled ``compact_items``'s
    reference)."""
    _, slots, _, size = _TABLE.unpack_from(table)
    recs = memoryview(table)[_TABLE.size + _SLOT.size * slots:]
    out, off = [], 0
    while off < size:
        code, text, off = _record(recs, off)
        out.append((code, text))
    return out


def _items(table) -> list[tuple[bytes, str]]:
    """``_compact_items``, compiled where it can be."""
    from altlink import speedups

    pl = speedups.postlink()
    return pl.compact_items(table) if pl is not None else _compact_items(table)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
