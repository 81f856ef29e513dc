"""What the link stage needs of each object, as plain data that can be kept by content.

An object's record holds what the object alone decides: its table's findings and the findings
of the objects' phase (``check_objects.check_object``); the callbacks it leaves to the link
set (``Deferred``, resolved when every object's definitions are known); its global
definitions; and the digest of its entries that the cross-check compares with the linked image
(masked site and replacement words, the symbols that anchor each site and branch target). The
link set's own checks (``check_linkset.check_records``) and the cross-check (``crosscheck``)
then need no object's ELF, except to word a finding, where the object is read again.

A relink reads the records of unchanged objects from the cache (``ObjectCache``): keyed by the
object's sha256, a hash of altlink's own code (``altlink.code_digest``), the record format and
the options, never by path.
"""
from __future__ import annotations

# pickle's functions, without pickle.py (which imports re: 1 ms of a check); -1: the
# highest protocol
import _pickle as pickle
import io
import itertools
import operator
import os
import struct
from _thread import get_ident  # (threading's, without threading: 0.7 ms a run)
from _weakref import ref as weak_ref  # (weakref.ref, without weakref.py: 0.3 ms a check)
from bisect import bisect_right
from collections import namedtuple
from collections.abc import Callable
from functools import partial

from altlink import code_digest, forkmap, sha256_for, speedups
from altlink.check_core import cap_facts, facts_of
from altlink.elf import (
    SHN_UNDEF,
    SHN_XINDEX,
    STB_LOCAL,
    STB_WEAK,
    STT_SECTION,
    ElfFile,
    _cstr,
    _section_names,
)
from altlink.errors import AltlinkError
from altlink.findings import CODES, ERROR, NOTE, WARNING, Deferred, Finding
from altlink.linkset import Input
from altlink.symbolspace import definitions
from altlink.table import CB_BIT_V61, NCAPS_MARKED
from altlink.values import Value

RECORD_FORMAT = 5  # 2: objects have their ALT017 findings; 3: the digest kept packed;
# 4: its words and flags packed as bytes (``_pack_columns``); 5: the callbacks left to the
# link set and the definitions as columns of plain values (``to_plain``: no named tuple to
# build, no class to look up, when a record is read back), the summary columns as bytes


class Anchor(namedtuple("Anchor", "name is_global delta")):
    """A section offset as the image finds it: the symbol before it and the distance."""

    __slots__ = ()


# name: for messages; global_name: a global symbol, looked up by name in the image, or None;
# anchor: else, where the symbol's section offset went (an Anchor, or None)
class Target(namedtuple("Target", "name global_name addend anchor")):
    """What a relocated branch in a replacement is meant to reach."""

    __slots__ = ()


# pos: position in the object's table.entries; site_words: masked (None where relocated),
# None where the site is undefined; site_anchor: an Anchor or None; alt_symbol: a name or
# None; alt_words: as in the object, None where there is no replacement to compare;
# alt_relocs: per word, None, True (relocated), or a Target (a branch)
class EntryDigest(namedtuple("EntryDigest", "pos index table_section cap_raw orig_len alt_len "
                             "site_section site_offset site_words site_anchor alt_symbol "
                             "alt_defined alt_words alt_relocs")):
    """What the cross-check compares of one entry (``digest``)."""

    __slots__ = ()


# The columns of an entry's digest that a record keeps apart from the others: what checking a
# record's findings (``ObjectRecord.consistent``) and counting its entries need. Kept as bytes,
# an entry a row (``_summary_bytes``): the table's own widths for the capability field and the
# lengths (``table.ENTRY``), 32 bits for the index.
_SUMMARY = ("index", "cap_raw", "orig_len", "alt_len")
_SUMMARY_ROW = struct.Struct("<IHBB")
_ALT_LEN_AT = 7  # alt_len's byte in a row
# The packed columns (``_pack_columns``): the others, the words and flags as bytes.
_PACKED = ("table_section", "site_section", "site_offset", "site_count", "site_bytes",
           "site_known", "anchor_name", "anchor_global", "anchor_delta", "alt_symbol",
           "alt_defined", "alt_count", "alt_bytes", "alt_marks", "targets")


class ObjectRecord(Value):
    """What the link stage needs of one object (the module's docstring)."""

    _fields = ("path", "is_module", "flags", "table_findings", "findings", "defines", "digest",
               "_load", "_items", "_define_cols", "_input", "_packed", "_profile")
    _compare = _fields[:7]  # (and shown by ``repr``: the others are how it is kept)
    path: str
    is_module: bool
    flags: tuple[int, ...]  # of its .altinstructions sections
    table_findings: list[Finding]
    findings: list  # Finding | Deferred, in the order the checks made them
    defines: dict[str, tuple[int, str | None, bool]]  # global name: (type, section, exec)
    # A property (below): a record read back keeps its digest packed (``_packed``) until the
    # digest is first asked for (the cross-check does; ``altlink check`` of objects does not).
    digest: list[EntryDigest]
    _load: Callable | None
    # A record read back: its findings as plain data (findings, their positions, the
    # callbacks' entry indexes and symbols), until ``findings`` (a property, below) is asked
    # for; ``check_linkset.check_records`` asks only where it cannot answer from the symbols.
    _items: tuple | None
    # A record read back: its definitions as columns (names, types, sections, executable),
    # until ``defines`` (a property, below) is asked for; the link set's first definitions
    # are found from the columns (``define_columns``).
    _define_cols: tuple | None
    _input: object
    # (summary columns, packed columns (pickled; or a tuple, made by the extension now:
    # ``make_whole``), the records to unpack with it or None): the record's
    # plain data, until the digest is made
    _packed: tuple | None
    # the profile the record was made under: to make the digest again from the object,
    # where the packed one proves damaged
    _profile: object

    def __init__(self, path: str, is_module: bool, flags: tuple[int, ...],
                 table_findings: list[Finding], findings: list | None,
                 defines: dict | None, digest: list[EntryDigest] | None,
                 _load: Callable | None = None, _items: tuple | None = None,
                 _define_cols: tuple | None = None, _input: object = None,
                 _packed: tuple | None = None, _profile: object = None) -> None:
        self.path = path
        self.is_module = is_module
        self.flags = flags
        self.table_findings = table_findings
        self.findings = findings
        self.defines = defines
        self.digest = digest
        self._load = _load
        self._items = _items
        self._define_cols = _define_cols
        self._input = _input
        # given a digest (``replace`` too): nothing packed
        self._packed = _packed if self._digest is None else None
        self._profile = _profile

    def __repr__(self) -> str:
        return "ObjectRecord(" + ", ".join(
            f"{name}={value!r}" for name, value in zip(self._compare, self._compared(self))) + ")"

    def full(self):
        """The object's Input, read again where a rare path needs more than the record."""
        if self._input is None:
            self._input = self._load()
        return self._input

    @property
    def loaded(self):
        """The object's Input where this process has read it (the record was made now, or
        ``full`` was asked), else None."""
        return self._input

    def summary(self) -> tuple[tuple, tuple, tuple, tuple]:
        """The entries' index, cap_raw, orig_len and alt_len columns, without making the
        digest where it is still packed."""
        if self._packed is not None:
            got = self._packed[0]
            if type(got) is bytes:  # as read back: made columns once
                got = _summary_columns(got)
                self._packed = (got, *self._packed[1:])
            return got
        if not self._digest:
            return ((), (), (), ())
        cols = tuple(zip(*self._digest))
        return tuple(cols[EntryDigest._fields.index(f)] for f in _SUMMARY)  # type: ignore

    @property
    def entries(self) -> int:
        rows = self._summary_rows()
        return len(rows) // _SUMMARY_ROW.size if rows is not None else len(self.summary()[0])

    @property
    def callbacks(self) -> int:
        """The entries with no replacement (``alt_len`` 0)."""
        rows = self._summary_rows()
        if rows is not None:
            return rows[_ALT_LEN_AT::_SUMMARY_ROW.size].count(0)
        return self.summary()[3].count(0)

    def define_columns(self) -> tuple[tuple, tuple, tuple, tuple]:
        """The definitions as columns: names, types, sections, executable."""
        if self._defines is None and self._define_cols is not None:
            return self._define_cols
        values = tuple(self._defines.values())
        return (tuple(self._defines), *zip(*values)) if values else ((), (), (), ())

    def _summary_rows(self) -> bytes | None:
        """The summary as the bytes it was read back as, where it still is."""
        if self._packed is not None and type(self._packed[0]) is bytes:
            return self._packed[0]
        return None

    # -- plain data for the cache: tuples, lists, strings, numbers, bytes (``_NoGlobals``) ---
    def to_plain(self) -> tuple:
        """The record as plain data (``RECORD_FORMAT`` 5): the format, whether the object is
        a module, its table's flags, its table's findings, then its other findings apart from
        the callbacks it leaves to the link set (``Deferred``): the findings, their positions
        among the items, and the callbacks as two columns (entry indexes, symbols); its
        definitions as four columns (names, types, sections, executable); the digest's
        summary columns and its packed columns."""
        fs = [_finding_plain(f, self.path) for f in self.table_findings]
        es: list = []
        at: list[int] = []
        d_index: list[int] = []
        d_symbol: list[str] = []
        for k, f in enumerate(self.findings):
            if isinstance(f, Deferred):
                d_index.append(f.index)
                d_symbol.append(f.symbol)
            else:
                es.append(_finding_plain(f, self.path))
                at.append(k)
        defines = self.define_columns()
        summary, packed = self._packed[:2] if self._packed else _pack(self._digest)
        if type(packed) is tuple:  # (made by the extension, ``make_whole``)
            packed = pickle.dumps(packed, protocol=-1)
        return (RECORD_FORMAT, self.is_module, self.flags, fs, es, tuple(at),
                (tuple(d_index), tuple(d_symbol)), defines, _summary_bytes(summary), packed)

    @classmethod
    def from_plain(cls, path: str, t: tuple) -> ObjectRecord:
        """The record from its plain data; a ValueError when any field is not of the shape
        ``to_plain`` gives (``valid_plain``). The digest stays packed: it is checked when it
        is unpacked (``digest``)."""
        if not valid_plain(t):
            raise ValueError("not a record of this format")
        return cls.from_valid(path, t)

    @classmethod
    def from_valid(cls, path: str, t: tuple) -> ObjectRecord:
        """``from_plain`` of data ``valid_plain`` (or ``valid_plains``) already passed."""
        _fmt, is_module, flags, fs, es, at, (d_index, d_symbol), defines, summary, packed = t
        return cls(path, is_module, tuple(flags),
                   [_finding_from(f, path) for f in fs] if fs else [], None, None, None,
                   _packed=(summary, packed, None), _items=(es, at, d_index, d_symbol),
                   _define_cols=defines)

    def consistent(self, profile) -> bool:
        """Whether the findings hold what the entries' own fields decide: a static entry whose
        replacement and site lengths differ, or a callback with a replacement length, has an
        error of its own (ALT001, ALT002, or ALT011 for a capability the checks stopped at).
        A record whose findings were lost or cut fails this."""
        own = {f.entry for f in self.findings
               if isinstance(f, Finding) and f.severity == ERROR and f.entry is not None}
        is_callback = profile.is_callback
        for index, cap_raw, orig_len, alt_len in zip(*self.summary()):
            if (alt_len != 0 if is_callback(cap_raw) else alt_len != orig_len) \
                    and index not in own:
                return False
        return True

    def consistent_fast(self, profile) -> bool:
        """``consistent`` (the reference), with the profile's test of a callback written out
        for the rows (``Profile.is_callback``: the callback bit of linux-v6.1, else a cap field
        equal to NCAPS), and the findings looked at only where an entry needs its own."""
        rows = self._summary_rows()
        rows = _SUMMARY_ROW.iter_unpack(rows) if rows is not None else zip(*self.summary())
        bad = []  # (loops in the method: a comprehension is a call of its own, a record)
        if profile.abi == "linux-v6.1":
            for i, c, o, a in rows:
                if a != 0 if c & CB_BIT_V61 else a != o:
                    bad.append(i)
        else:
            n = profile.ncaps  # (None: no entry is a callback)
            for i, c, o, a in rows:
                if a != 0 if c == n else a != o:
                    bad.append(i)
        if not bad:
            return True
        own = {f.entry for f in self.findings
               if isinstance(f, Finding) and f.severity == ERROR and f.entry is not None}
        return own.issuperset(bad)


def _get_digest(rec: ObjectRecord, together: bool = True) -> list[EntryDigest]:
    """The record's digest, unpacked where it is still packed: with the others read back
    with it (``_unpack_group``), or, ``together=False``, alone."""
    if rec._digest is None:
        summary = rec.summary()
        _, packed, group = rec._packed
        if group and together:
            _unpack_group(group)
            if rec._digest is not None:
                return rec._digest
        got = _digests_from([summary], [packed]) if type(packed) is tuple else \
            _unpack(summary, packed) if packed != NOT_MADE else None
        if got is None:  # damaged (or not made): made from the object, as the cache would
            if rec._profile is None or (rec._load is None and rec._input is None):
                raise ValueError(f"{rec.path}: the record's digest is damaged")
            got = digest(rec.full(), rec._profile)
        rec._digest = got
        rec._packed = None
    return rec._digest


def digest_alone(rec: ObjectRecord) -> list[EntryDigest]:
    """The record's digest, unpacked alone where it is still packed (not with the records
    read back with it: the cross-check's arrays ask for a few objects' digests)."""
    return _get_digest(rec, together=False)


def _set_digest(rec: ObjectRecord, value) -> None:
    rec._digest = value


ObjectRecord.digest = property(_get_digest, _set_digest)  # type: ignore[assignment]


def consistent_together(recs: list[ObjectRecord], profile) -> list[bool]:
    """``consistent_fast`` of each record, decided over all their summary rows at once where
    they were read back (bytes) and no entry of any has lengths its kind forbids (then none
    needs a finding of its own): a comparison of whole columns of bytes, not a loop an
    entry. Where an entry has such lengths, each record on its own. (``consistent`` over the
    records' columns with ``Profile.is_callback`` a column at a time took as long as the
    loop.)"""
    rows = [r._summary_rows() for r in recs]
    if len(recs) >= VALID_TOGETHER_FROM and None not in rows \
            and _lengths_fine(b"".join(rows), profile):  # type: ignore[arg-type]
        return [True] * len(recs)
    return [r.consistent_fast(profile) for r in recs]


def _lengths_fine(rows: bytes, profile) -> bool:
    """Whether every entry of these summary rows has the lengths its kind asks: a callback's
    alt_len 0 (``Profile.is_callback``: the callback bit of linux-v6.1, else a cap field
    equal to NCAPS), a static entry's alt_len its orig_len. The columns are byte strings; a
    mask of 0xFF bytes for the static entries keeps their orig_len, which is then the
    expected alt_len column."""
    size = _SUMMARY_ROW.size
    alt, orig, low, high = rows[7::size], rows[6::size], rows[4::size], rows[5::size]
    n, every = len(alt), (1 << (8 * len(alt))) - 1
    if profile.abi == "linux-v6.1":
        static = int.from_bytes(high.translate(_BIT15_CLEAR), "little")
    elif profile.ncaps is None or not 0 <= profile.ncaps <= 0xFFFF:
        static = every  # (no cap field equals NCAPS)
    else:
        callback = int.from_bytes(low.translate(_equal_to(profile.ncaps & 0xFF)), "little") \
            & int.from_bytes(high.translate(_equal_to(profile.ncaps >> 8)), "little")
        static = callback ^ every
    expected = int.from_bytes(orig, "little") & static
    return alt == expected.to_bytes(n, "little")


# 0xFF for a cap field's high byte without the callback bit (bit 15), else 0
_BIT15_CLEAR = bytes(0 if b & 0x80 else 0xFF for b in range(256))


def _equal_to(v: int) -> bytes:
    """The translation of a byte to 0xFF where it is ``v``, else 0."""
    return bytes(0xFF if b == v else 0 for b in range(256))


def _get_findings(rec: ObjectRecord) -> list:
    """The record's findings, made from its plain data where it was read back (``_items``):
    the callbacks, and each finding at its position among them."""
    if rec._findings is None and rec._items is not None:
        es, at, d_index, d_symbol = rec._items
        items: list = list(map(_new_deferred, zip(d_index, d_symbol)))
        for k, f in zip(at, es):  # in the order of their positions: each lands on its own
            items.insert(k, _finding_from(f, rec.path))
        rec._findings, rec._items = items, None
    return rec._findings


def _set_findings(rec: ObjectRecord, value) -> None:
    rec._findings = value


ObjectRecord.findings = property(_get_findings, _set_findings)  # type: ignore[assignment]


def _get_defines(rec: ObjectRecord) -> dict:
    """The record's definitions, made from its columns where it was read back."""
    if rec._defines is None and rec._define_cols is not None:
        names, types, sections, executable = rec._define_cols
        rec._defines = dict(zip(names, zip(types, sections, executable)))
        rec._define_cols = None
    return rec._defines


def _set_defines(rec: ObjectRecord, value) -> None:
    rec._defines = value


ObjectRecord.defines = property(_get_defines, _set_defines)  # type: ignore[assignment]


def _summary_bytes(summary) -> bytes:
    """The summary columns as bytes, an entry a row (``_SUMMARY_ROW``)."""
    if type(summary) is bytes:
        return summary
    return b"".join(map(_SUMMARY_ROW.pack, *summary))


def _summary_columns(summary) -> tuple:
    """The summary columns (index, cap_raw, orig_len, alt_len) of a summary kept as bytes:
    ``_summary_columns_py``'s, by the extension where it is used (``summary_columns``: a
    cached link asks it of every record)."""
    if type(summary) is not bytes:
        return summary
    sp = speedups.get()
    if sp is not None:
        got = sp.summary_columns(summary)
        if got is not None:
            return got
    return _summary_columns_py(summary)


def _summary_columns_py(summary) -> tuple:
    """The reference for ``_summary_columns``."""
    if type(summary) is not bytes:
        return summary
    if not summary:
        return ((), (), (), ())
    return tuple(zip(*_SUMMARY_ROW.iter_unpack(summary)))


_new_deferred = partial(tuple.__new__, Deferred)  # Deferred((index, symbol)), at C speed


def _pack(digest: list[EntryDigest]) -> tuple[tuple, bytes]:
    """A digest as plain data: the summary columns (``_SUMMARY``), and the others
    (``_pack_columns``) pickled into bytes, read only when the digest is asked for."""
    if not digest:
        summary: tuple = ((), (), (), ())
    else:
        cols = dict(zip(EntryDigest._fields, zip(*digest)))
        summary = tuple(cols[f] for f in _SUMMARY)
    return summary, pickle.dumps(_pack_columns(digest), protocol=-1)


def _u32(words: list[int]) -> bytes:
    return struct.pack(f"<{len(words)}I", *words)


def _pack_columns(digest: list[EntryDigest]) -> tuple:
    """The digest's columns but for the summary, as ``_PACKED`` names them: names and offsets
    as tuples; the words, their counts and the flags as bytes (a count is the number of words
    plus one, 0 for None; a word the image cannot show, None, is 0 in ``site_bytes`` and 0 in
    ``site_known``, which is empty where every word is known; a replacement word's mark is 0
    for None, 1 for True, 2 for a ``Target``, the next of ``targets``, and ``alt_marks`` is
    empty where every mark is None); each anchor's delta a 64-bit word (a tuple of numbers
    where one does not fit)."""
    chain = itertools.chain.from_iterable
    n = len(digest)
    if not n:
        return ((), (), (), b"", b"", b"", (), b"", b"", (), b"", b"", b"", b"", ())
    (_, _, table_section, _, _, _, site_section, site_offset, site_words, site_anchor,
     alt_symbol, alt_defined, alt_words, alt_relocs) = zip(*digest)
    site_count = bytes([0 if w is None else len(w) + 1 for w in site_words])
    words = list(chain(w for w in site_words if w is not None))
    site_known = b""
    if None in words:
        site_known = bytes([w is not None for w in words])
        words = [0 if w is None else w for w in words]
    deltas = [0 if a is None else a.delta for a in site_anchor]
    try:
        anchor_delta: bytes | tuple = struct.pack(f"<{n}Q", *deltas)
    except struct.error:  # beyond 64 bits (an offset past its section)
        anchor_delta = tuple(deltas)
    marks = list(chain(r for r in alt_relocs if r is not None))
    alt_marks, targets = b"", ()
    if any(marks):
        alt_marks = bytes([0 if m is None else 1 if m is True else 2 for m in marks])
        targets = tuple([(t.name, t.global_name, t.addend,
                          None if t.anchor is None else tuple(t.anchor))
                         for t in marks if type(t) is Target])
    return (table_section, site_section, site_offset, site_count, _u32(words), site_known,
            tuple([None if a is None else a.name for a in site_anchor]),
            bytes([a is not None and a.is_global for a in site_anchor]), anchor_delta,
            alt_symbol, bytes(alt_defined),
            bytes([0 if w is None else len(w) + 1 for w in alt_words]),
            _u32(list(chain(w for w in alt_words if w is not None))), alt_marks, targets)


def _loaded(packed: bytes) -> tuple | None:
    """The packed columns unpickled (only ``_RECORD_TYPES`` may be named); None where they
    are not a tuple of as many columns as ``_PACKED`` names."""
    try:
        cols = _NoGlobals(io.BytesIO(packed)).load()
    except Exception:  # noqa: BLE001 - damaged: the caller makes the digest again
        return None
    return cols if type(cols) is tuple and len(cols) == len(_PACKED) else None


def _word_counts(counts: list[bytes]) -> list[int]:
    """The number of words each count column gives (a count is words plus one, 0 for None)."""
    return [s - len(c) + c.count(0) for s, c in zip(map(sum, counts), counts)]


def columns_fine(ns: list[int], packs: list[tuple]) -> bool:
    """Whether ``packs`` (loaded by ``_loaded``) are the packed columns of records of ``ns``
    entries each, of the shape ``_pack_columns`` gives: each column's type and length, the
    words the counts ask for, the flags' values, the types of every name, offset and
    target; decided over all the records at once (a check per record costs more than its
    twenty entries)."""
    chain = itertools.chain.from_iterable
    (table_section, site_section, site_offset, site_count, site_bytes, site_known,
     anchor_name, anchor_global, anchor_delta, alt_symbol, alt_defined, alt_count,
     alt_bytes, alt_marks, targets) = zip(*packs)
    for col in (table_section, site_section, site_offset, anchor_name, alt_symbol, targets):
        if _types(col) != {tuple}:
            return False
    for col in (site_count, site_bytes, site_known, anchor_global, alt_defined, alt_count,
                alt_bytes, alt_marks):
        if _types(col) != {bytes}:
            return False
    for col in (table_section, site_section, site_offset, site_count, anchor_name,
                anchor_global, alt_symbol, alt_defined, alt_count):
        if list(map(len, col)) != ns:
            return False
    if not _types(anchor_delta) <= {bytes, tuple} or list(map(len, anchor_delta)) != \
            [8 * n if type(d) is bytes else n for d, n in zip(anchor_delta, ns)]:
        return False
    for counts, words, flags, values in ((site_count, site_bytes, site_known, b"\0\1"),
                                         (alt_count, alt_bytes, alt_marks, b"\0\1\2")):
        wn = _word_counts(counts)
        if list(map(len, words)) != [4 * w for w in wn] or \
                any(len(f) not in (0, w) for f, w in zip(flags, wn)) or \
                b"".join(flags).translate(None, values):
            return False
    if b"".join(anchor_global).translate(None, b"\0\1") or \
            b"".join(alt_defined).translate(None, b"\0\1"):
        return False
    if list(map(len, targets)) != [m.count(2) for m in alt_marks]:
        return False
    if not _types(chain(table_section)) <= {str} or not _types(chain(site_section)) <= {str} \
            or not _types(chain(site_offset)) <= {int} \
            or not _types(chain(anchor_name)) <= {str, _NONE} \
            or not _types(chain(alt_symbol)) <= {str, _NONE} \
            or not _types(chain(d for d in anchor_delta if type(d) is tuple)) <= {int}:
        return False
    every = list(chain(targets))
    if not every:
        return True
    if _types(every) != {tuple} or set(map(len, every)) != {4}:
        return False
    names, global_names, addends, anchors = zip(*every)
    anchors = [a for a in anchors if a is not None]
    if not (_types(names) == {str} and _types(global_names) <= {str, _NONE}
            and _types(addends) == {int} and _types(anchors) <= {tuple}):
        return False
    if not anchors:
        return True
    if set(map(len, anchors)) != {3}:
        return False
    a_names, a_globals, a_deltas = zip(*anchors)
    return _types(a_names) == {str} and _types(a_globals) == {bool} and \
        _types(a_deltas) == {int}


def _packed_columns(summary: tuple, packed: bytes) -> tuple | None:
    """The packed columns of ``_pack``, for a record of the summary's entries; None where
    they are not of the shape ``_pack_columns`` gives (damaged, or written by other code)."""
    cols = _loaded(packed)
    if cols is None or not columns_fine([len(summary[0])], [cols]):
        return None
    return cols


def _digests_from(summaries: list[tuple], packs: list[tuple]) -> list[EntryDigest]:
    """The digests of records (their summaries, their packed columns, which ``columns_fine``
    passed), end to end."""
    chain = itertools.chain.from_iterable
    cols = list(zip(*packs))
    (table_section, site_section, site_offset, site_count, site_bytes, site_known,
     anchor_name, anchor_global, anchor_delta, alt_symbol, alt_defined, alt_count,
     alt_bytes, alt_marks, targets) = cols
    site_words = _split_words(site_count, site_bytes, site_known, None)
    deltas = list(chain(d if type(d) is tuple else struct.unpack(f"<{len(d) // 8}Q", d)
                        for d in anchor_delta))
    new = tuple.__new__
    anchors = [None if name is None else new(Anchor, (name, g == 1, d))
               for name, g, d in zip(chain(anchor_name), b"".join(anchor_global), deltas)]
    every = iter([new(Target, (name, glob, addend, None if a is None else new(Anchor, a)))
                  for name, glob, addend, a in chain(targets)])
    marks = _split_words(alt_count, None, alt_marks, every)
    alt_words = _split_words(alt_count, alt_bytes, b"", None)
    pos = chain(range(len(s[0])) for s in summaries)
    index, cap_raw, orig_len, alt_len = [tuple(chain(s[k] for s in summaries)) for k in range(4)]
    return list(map(new, itertools.repeat(EntryDigest), zip(
        pos, index, chain(table_section), cap_raw, orig_len, alt_len, chain(site_section),
        chain(site_offset), site_words, anchors, chain(alt_symbol),
        map((1).__eq__, b"".join(alt_defined)), alt_words, marks)))


def _split_words(counts: tuple, data: tuple | None, flags: tuple, targets) -> list:
    """Each entry's words (``data``: the records' word bytes), or with ``data`` None its
    replacement's marks (None, True, or the next of ``targets``), from the records' count
    columns; None where the count is 0. ``flags``: the records' known (or mark) bytes, empty
    for a record where all words are known (or no mark is set)."""
    chain = itertools.chain.from_iterable
    wn = _word_counts(counts)
    if data is not None:
        values: tuple | list = struct.unpack(f"<{sum(wn)}I", b"".join(data))
        if any(flags):
            known = b"".join(f or b"\1" * w for f, w in zip(flags, wn))
            values = [v if k else None for v, k in zip(values, known)]
    elif any(flags):
        values = [None if m == 0 else True if m == 1 else next(targets)
                  for m in b"".join(f or bytes(w) for f, w in zip(flags, wn))]
    else:
        values = (None,) * sum(wn)
    out: list = []
    add = out.append
    p = 0
    for c in chain(counts):
        if c:
            add(tuple(values[p:p + c - 1]))
            p += c - 1
        else:
            add(None)
    return out


def _unpack(summary: tuple, packed: bytes) -> list[EntryDigest] | None:
    """The digest from ``_pack``'s data (the summary already checked by ``valid_plain``);
    None where the packed columns are not of the shape ``_pack`` gives (``columns_fine``)."""
    cols = _packed_columns(summary, packed)
    if cols is None:
        return None
    got = _digests_from([summary], [cols])
    return got if digests_ok(got) else None


def _unpack_group(group: _Group) -> None:
    """The packed digests of records read back together (``records_of``), unpacked and
    checked at once (``columns_fine`` over all their columns: a check per object costs more
    than the object's entries). Where that fails, or a record's columns are not a tuple of
    the right length, the record is left to be unpacked alone (``_unpack``)."""
    todo, summaries, packs = [], [], []
    for r in group.records():
        if r._digest is None and r._packed is not None:
            summary = r.summary()
            _, packed, _ = r._packed
            r._packed = (summary, packed, None)  # whatever comes of it: unpacked alone after
            cols = packed if type(packed) is tuple else _loaded(packed)
            if cols is not None:
                todo.append(r)
                summaries.append(summary)
                packs.append(cols)
    if not todo or not columns_fine([len(s[0]) for s in summaries], packs):
        return
    every = _digests_from(summaries, packs)
    start = 0
    for r, s in zip(todo, summaries):
        end = start + len(s[0])
        r._digest, r._packed = every[start:end], None
        start = end


def packed_columns_of(recs: list[ObjectRecord]) -> list[tuple]:
    """Each record's (summary, packed columns) (``_pack_columns``' shape), without making its
    digest where it is still packed: the columns read back (checked together, as
    ``_unpack_group`` checks them), else made from the digest (a record made now, or one whose
    packed columns prove damaged, made again from its object as ``digest`` makes it)."""
    out: list = [None] * len(recs)
    at, ns, packs = [], [], []
    for k, r in enumerate(recs):
        if r._digest is None and r._packed is not None and type(r._packed[1]) is tuple:
            out[k] = (r.summary(), r._packed[1])  # made by the extension (``make_whole``)
        elif r._digest is None and r._packed is not None and r._packed[1] != NOT_MADE:
            cols = _loaded(r._packed[1])
            if cols is not None:
                at.append(k)
                ns.append(len(r.summary()[0]))
                packs.append(cols)
    if at and columns_fine(ns, packs):
        for k, cols in zip(at, packs):
            out[k] = (recs[k].summary(), cols)
    else:
        for k, n, cols in zip(at, ns, packs):
            if columns_fine([n], [cols]):
                out[k] = (recs[k].summary(), cols)
    for k, r in enumerate(recs):
        if out[k] is None:
            d = _get_digest(r, together=False)
            out[k] = (r.summary(), _pack_columns(d))
    return out


# -- what a record read from a file must look like: every field, its type and its shape -------

def _int(x) -> bool:
    return type(x) is int


def _str(x) -> bool:
    return type(x) is str


def _opt(check, x) -> bool:
    return x is None or check(x)


def _tuple_of(check, x) -> bool:
    return type(x) is tuple and all(check(v) for v in x)


def _anchor(a) -> bool:
    return type(a) is Anchor and _str(a.name) and type(a.is_global) is bool and _int(a.delta)


def _target(t) -> bool:
    return (type(t) is Target and _str(t.name) and _opt(_str, t.global_name)
            and _int(t.addend) and _opt(_anchor, t.anchor))


def _finding_ok(t) -> bool:
    if type(t) is not tuple or len(t) != 10:
        return False
    tag, code, severity, message, own, file, place, source, entry, site = t
    return (tag == "f" and code in CODES and severity in (ERROR, WARNING, NOTE)
            and _str(message) and type(own) is bool and _str(file) and _str(place)
            and _opt(_str, source) and _opt(_int, entry)
            and (site is None or (type(site) is tuple and len(site) == 2 and _str(site[0])
                                  and _int(site[1]))))


def _digest_ok(pos: int, d) -> bool:
    return (type(d) is EntryDigest and d.pos == pos and _int(d.index)
            and _str(d.table_section) and _int(d.cap_raw) and _int(d.orig_len)
            and _int(d.alt_len) and _str(d.site_section) and _int(d.site_offset)
            and _opt(partial(_tuple_of, partial(_opt, _int)), d.site_words)
            and _opt(_anchor, d.site_anchor) and _opt(_str, d.alt_symbol)
            and type(d.alt_defined) is bool and _opt(partial(_tuple_of, _int), d.alt_words)
            and _opt(partial(_tuple_of, lambda r: r is None or r is True or _target(r)),
                     d.alt_relocs)
            and (d.alt_words is None) == (d.alt_relocs is None)
            and (d.alt_words is None or len(d.alt_words) == len(d.alt_relocs)))


def valid_plain(t) -> bool:
    """Whether ``t`` has the shape of ``ObjectRecord.to_plain``, field by field: a record
    file that was damaged, edited or written by other code is made again, never trusted
    (a string where the flags go would only fail later, deep in a check). The packed columns
    of the digest are only bytes here: they are checked when unpacked (``_unpack``)."""
    if type(t) is not tuple or len(t) != 10 or t[0] != RECORD_FORMAT:
        return False
    _, is_module, flags, fs, es, at, deferred, defines, summary, packed = t
    return (type(is_module) is bool and _tuple_of(lambda f: _int(f) and f >= 0, flags)
            and type(fs) is list and all(_finding_ok(f) for f in fs)
            and type(es) is list and all(_finding_ok(f) for f in es)
            and _columns_of(deferred, (_int, _str))
            and _tuple_of(_int, at) and len(at) == len(es)
            and _positions_ok(at, len(es) + len(deferred[0]))
            and _columns_of(defines, (_str, _int, partial(_opt, _str), _bool))
            and len(set(defines[0])) == len(defines[0])
            and type(summary) is bytes and len(summary) % _SUMMARY_ROW.size == 0
            and type(packed) is bytes)


def _bool(x) -> bool:
    return type(x) is bool


def _columns_of(cols, checks: tuple) -> bool:
    """Whether ``cols`` is a tuple of columns (tuples) of one length, as many as ``checks``,
    each value passing its column's check."""
    return (type(cols) is tuple and len(cols) == len(checks)
            and all(_tuple_of(check, col) for check, col in zip(checks, cols))
            and len(set(map(len, cols))) == 1)


def _positions_ok(at: tuple, n: int) -> bool:
    """Whether ``at`` are positions in a list of ``n`` items, each after the one before."""
    return all(a < b for a, b in zip(at, at[1:])) and (not at or (at[0] >= 0 and at[-1] < n))


def valid_plains(ts: list) -> list[bool]:
    """``valid_plain`` of each of ``ts`` (the records one ``records_of`` reads back), a field
    at a time over them all: every field's values of every record end to end, checked at
    once; where that finds anything wrong, each record on its own, so that only the bad ones
    are made again. ``valid_plains_py`` is the reference."""
    if len(ts) >= VALID_TOGETHER_FROM and _all_valid(ts):
        return [True] * len(ts)
    return valid_plains_py(ts)


VALID_TOGETHER_FROM = 4  # fewer records are checked each alone: quicker than the set-up


def valid_plains_py(ts: list) -> list[bool]:
    """The reference for ``valid_plains``: each record on its own."""
    return list(map(valid_plain, ts))


def _all_valid(ts: list) -> bool:
    """Whether every one of ``ts`` passes ``valid_plain``, decided over them all at once:
    for each field, the set of the types of all its values (and of the values inside them)."""
    chain = itertools.chain.from_iterable
    if _types(ts) != {tuple} or set(map(len, ts)) != {10}:
        return False
    fmt, is_module, flags, fs, es, at, deferred, defines, summary, packed = zip(*ts)
    if fmt.count(RECORD_FORMAT) != len(fmt) or _types(is_module) != {bool} \
            or _types(flags) != {tuple} or _types(fs) != {list} or _types(es) != {list} \
            or _types(at) != {tuple} or _types(deferred) != {tuple} \
            or _types(defines) != {tuple} or _types(summary) != {bytes} \
            or _types(packed) != {bytes}:
        return False
    every_flag = list(chain(flags))
    if every_flag and (_types(every_flag) != {int} or min(every_flag) < 0):
        return False
    if not all(map(_finding_ok, chain(fs))) or not all(map(_finding_ok, chain(es))):
        return False
    # the callbacks: two columns of one length, entry indexes and symbols
    if set(map(len, deferred)) != {2}:
        return False
    d_index, d_symbol = zip(*deferred)
    if _types(d_index) != {tuple} or _types(d_symbol) != {tuple} \
            or not _lengths_agree(d_index, d_symbol) \
            or not _types(chain(d_index)) <= {int} or not _types(chain(d_symbol)) <= {str}:
        return False
    # the findings' positions among the items
    if not _lengths_agree(at, es) or not _types(chain(at)) <= {int}:
        return False
    for k in [k for k, a in enumerate(at) if a]:
        if not _positions_ok(at[k], len(es[k]) + len(d_index[k])):
            return False
    # the definitions: four columns of one length, the names each once
    if set(map(len, defines)) != {4}:
        return False
    names, types, sections, executable = zip(*defines)
    if any(_types(c) != {tuple} for c in (names, types, sections, executable)) \
            or not _lengths_agree(names, types, sections, executable) \
            or not _types(chain(names)) <= {str} or not _types(chain(types)) <= {int} \
            or not _types(chain(sections)) <= {str, _NONE} \
            or not _types(chain(executable)) <= {bool} \
            or list(map(len, map(set, names))) != list(map(len, names)):
        return False
    # the summary: rows of bytes
    return not any(map(_SUMMARY_ROW.size.__rmod__, map(len, summary)))


def _lengths_agree(*columns) -> bool:
    """Whether the k-th values of ``columns`` (one value a record) have one length, each k."""
    lengths = list(map(len, columns[0]))
    return all(list(map(len, c)) == lengths for c in columns[1:])


def digests_ok_py(digest: list) -> bool:
    """The reference for ``digests_ok``: each entry's digest, field by field."""
    return all(_digest_ok(pos, d) for pos, d in enumerate(digest))


_NONE = type(None)


def _types(xs) -> set:
    return set(map(type, xs))


def _anchors_ok(anchors: list) -> bool:
    if not anchors:
        return True
    if _types(anchors) != {Anchor}:
        return False
    names, globs, deltas = zip(*anchors)
    return _types(names) == {str} and _types(globs) == {bool} and _types(deltas) == {int}


def digests_ok(digest: list) -> bool:
    """Whether every item of an object's digest list is an ``EntryDigest`` of the shape
    ``digest`` makes, as ``digests_ok_py`` decides it entry by entry, but a field at a time
    over the whole list (a type's set, at C speed): reading a record back is most of a cached
    link's work on its objects."""
    if not digest:
        return True
    if _types(digest) != {EntryDigest}:
        return False
    pos, *cols = zip(*digest)
    return pos == tuple(range(len(digest))) and columns_ok(*cols)


def columns_ok(index, table_section, cap_raw, orig_len, alt_len, site_section, site_offset,
               site_words, site_anchor, alt_symbol, alt_defined, alt_words, alt_relocs
               ) -> bool:
    """``digests_ok`` but for the positions, over the digest's columns (of one object, or of
    many objects' digests end to end: the records read back by one link are checked at once,
    ``_unpack_group``)."""
    for col in (index, cap_raw, orig_len, alt_len, site_offset):
        if _types(col) != {int}:
            return False
    if _types(table_section) != {str} or _types(site_section) != {str} \
            or _types(alt_defined) != {bool} or not _types(alt_symbol) <= {str, _NONE}:
        return False
    if not _types(site_words) <= {tuple, _NONE} or not _types(alt_words) <= {tuple, _NONE} \
            or not _types(alt_relocs) <= {tuple, _NONE}:
        return False
    chain = itertools.chain.from_iterable
    if not _types(chain(w for w in site_words if w is not None)) <= {int, _NONE}:
        return False
    if not _types(site_anchor) <= {Anchor, _NONE} \
            or not _anchors_ok([a for a in site_anchor if a is not None]):
        return False
    words = [w for w in alt_words if w is not None]
    relocs = [r for r in alt_relocs if r is not None]
    if [w is None for w in alt_words] != [r is None for r in alt_relocs] \
            or list(map(len, words)) != list(map(len, relocs)):
        return False
    if not _types(chain(words)) <= {int}:
        return False
    marks = list(chain(relocs))
    if not _types(marks) <= {_NONE, bool, Target} \
            or False in [m for m in marks if type(m) is bool]:
        return False
    targets = [m for m in marks if type(m) is Target]
    if not targets:
        return True
    names, global_names, addends, anchors = zip(*targets)
    return (_types(names) == {str} and _types(global_names) <= {str, _NONE}
            and _types(addends) == {int} and _types(anchors) <= {Anchor, _NONE}
            and _anchors_ok([a for a in anchors if a is not None]))


def _finding_plain(f: Finding, path: str) -> tuple:
    return ("f", f.code, f.severity, f.message, f.file == path, f.file, f.place, f.source,
            f.entry, f.site)


def _finding_from(t: tuple, path: str) -> Finding:
    _, code, severity, message, own, file, place, source, entry, site = t
    return Finding(code, severity, message, path if own else file, place, source, entry,
                   tuple(site) if site is not None else None)


# -- making a record -------------------------------------------------------------------------

def make_record(inp, options, with_digest: bool = True) -> ObjectRecord:
    """The record of one object (an ``linkset.Input``) under resolved options: the profile's
    NCAPS known, and ``options.module`` saying whether the link set is a module.
    ``with_digest=False``: the digest is not made now (``NOT_MADE``), but from the object
    when it is first asked for; the summary columns are the table's."""
    from altlink.check_objects import check_object  # (not for records read back)

    elf = inp.elf
    flags = tuple(s.flags for s in inp.table.sections)
    found = check_object(inp, options)
    if not with_digest:
        entries = inp.table.entries
        summary = tuple(tuple(map(get, entries)) for get in _SUMMARY_FIELDS)
        return ObjectRecord(inp.path, inp.is_module, flags, list(inp.table.findings), found,
                            _defines(elf), None, _input=inp, _profile=options.profile,
                            _packed=(summary, NOT_MADE, None))
    return ObjectRecord(inp.path, inp.is_module, flags, list(inp.table.findings), found,
                        _defines(elf), digest(inp, options.profile), _input=inp)


def make_plain(elf: ElfFile, options, with_digest: bool = False) -> tuple | None:
    """``make_record(Input.load(elf), options, with_digest=False).to_plain()`` (the
    reference), made by the extension from the object's bytes where its checks make no
    finding but the callbacks it leaves to the link set (``_speedups.object_plain``); None
    where the extension is not used or leaves the object to the Python (a file whose section
    headers ``sections`` refuses among them: ``make_record`` then says why). The section
    headers are not decoded here (``ElfFile.sections``). ``with_digest``: its last field is
    the digest's packed columns as a tuple (``_pack_columns(digest(...))``, not pickled)
    where the extension makes them too, else ``NOT_MADE``."""
    sp = speedups.get()
    if sp is None:
        return None
    p = options.profile
    got = _PLAIN_ARGS
    if got[0] is not p:  # (the objects of a set share one profile: made once for them)
        from altlink.check_objects import _MAYBE_NOT_PLAIN

        got[:] = [p, (_section_names, facts_of(p), partial(cap_facts, p), _MAYBE_NOT_PLAIN,
                      p.abi, RECORD_FORMAT)]
    return sp.object_plain(elf.data, *got[1], with_digest)


# ``make_plain``'s arguments but the object's bytes, for the last profile it was given
_PLAIN_ARGS: list = [None, None]


def make_whole(elf: ElfFile, options) -> tuple | None:
    """``make_record(Input.load(elf), options)`` with its digest, where the extension makes
    the rest of the record (``make_plain``): (its plain data, the object's Input, the
    digest), for ``record_from`` here or ``plain_with`` in a forked copy; None where it does
    not (``make_record`` then makes it all). Where the extension makes the digest's packed
    columns too (the plain data's last field a tuple), the Input and the digest are None:
    the object is not read by the Python at all."""
    t = make_plain(elf, options, True)
    if t is None:
        return None
    if type(t[-1]) is tuple:
        return t, None, None
    inp = Input.load(elf)
    return t, inp, digest(inp, options.profile)


def record_from(elf: ElfFile, whole: tuple, profile) -> ObjectRecord:
    """The record ``make_whole`` gave the parts of, its digest as made."""
    t, inp, dig = whole
    rec = ObjectRecord.from_valid(elf.path, t)
    if dig is not None:  # (else its packed columns, made by the extension: ``_packed``)
        rec._digest, rec._packed, rec._input = dig, None, inp
    rec._load = partial(Input.load, elf)
    rec._profile = profile
    return rec


def plain_with(whole: tuple) -> tuple:
    """The plain data (``to_plain``) of the record ``make_whole`` gave the parts of."""
    t, _inp, dig = whole
    if dig is None:
        return (*t[:-1], pickle.dumps(t[-1], protocol=-1))
    summary, packed = _pack(dig)
    return (*t[:-2], _summary_bytes(summary), packed)


# The summary columns (``_SUMMARY``) of a table's entries (``table.Entry``)
_SUMMARY_FIELDS = tuple(operator.attrgetter(f) for f in _SUMMARY)
# The packed digest of a record made without it (``make_record``'s ``with_digest``): the
# check of a kernel module, which no link takes as an input, never asks for it. It is made
# from the object where it is asked for, as a damaged one is.
NOT_MADE = b""


def _defines(elf: ElfFile) -> dict[str, tuple[int, str | None, bool]]:
    """The global definitions (``symbolspace.definitions``): what a callback check needs of each,
    its type and its section's name and whether it is code. Where the symbol table is not
    decoded yet, from its global symbols alone (``_global_defines``); ``_defines_py`` is the
    reference."""
    if elf._symbols is None:
        got = _global_defines(elf)
        if got is not None:
            return got
    return _defines_py(elf)


def _defines_py(elf: ElfFile) -> dict[str, tuple[int, str | None, bool]]:
    """The reference for ``_defines``: from every decoded symbol."""
    out: dict[str, tuple[int, str | None, bool]] = {}
    secs = elf.sections
    for name, s in definitions(elf, True).items():
        sec = secs[s.shndx] if s.shndx < len(secs) else None
        out[name] = (s.type, sec.name if sec else None, bool(sec and sec.executable))
    return out


def _global_defines(elf: ElfFile) -> dict[str, tuple[int, str | None, bool]] | None:
    """``_defines`` from the symbol table's bytes, decoding only the symbols from the first
    that is not local (the table's locals come first: a kernel object's hundreds of local
    symbols, most of its table, are skipped at C speed). None where the table is not one
    this reads (``_defines_py`` then reads it, or says what is wrong with it)."""
    try:
        sec = elf.symtab
        if sec is None:
            return {}
        if sec.entsize not in (0, 24) or sec.size % 24:
            return None
        strtab = elf.section_data(elf.section(sec.link)) if sec.link else b""
        data = elf.section_data(sec)
    except AltlinkError:
        return None
    sp = speedups.get()
    if sp is not None:
        got = sp.global_defines(data, strtab, elf.sections)
        if got is not None:
            return got
    binds = data[4::24].translate(_INFO_BIND)
    first = len(binds) - len(binds.lstrip(b"\0"))  # the first symbol that is not local
    tail = memoryview(data)[first * 24:]
    shndx = tail.cast("H")[3::12].tolist()
    if SHN_XINDEX in shndx:
        return None
    names = tail.cast("I")[0::6].tolist()
    types = bytes(tail[4::24]).translate(_INFO_TYPE)
    binds = binds[first:]
    secs = elf.sections
    nsecs = len(secs)
    out: dict[str, tuple[int, str | None, bool]] = {}
    for k, x in enumerate(shndx):
        if x == SHN_UNDEF or types[k] == STT_SECTION or binds[k] == STB_LOCAL:
            continue
        name = _cstr(strtab, names[k])
        if not name or name in out:
            continue
        sec = secs[x] if x < nsecs else None
        out[name] = (types[k], sec.name if sec else None, bool(sec and sec.executable))
    return out


_INFO_TYPE = bytes(b & 0xF for b in range(256))
_INFO_BIND = bytes(b >> 4 for b in range(256))


class Anchors:
    """For each section of an object, the symbols a place in it is found by in the image: the
    last named symbol at or before the offset (a global before a local at the same value,
    else the first in the symbol table; no ``$x``/``.L`` labels).

    Weak symbols are never anchors: another object's definition may take the name (Linux's
    ``__weak`` functions), while the weak copy's code stays linked at its object's place.

    A section's rows are made when a place in it is first asked for, from the symbols of that
    section alone (found by their section index, at C speed): an object's entries name two or
    three sections of dozens, and an object without entries asks nothing (a kernel's
    ``vmlinux.a`` has 349 of those among 559 members). ``AnchorsPy``, which sorts every
    section's symbols at once, is the reference."""

    def __init__(self, elf: ElfFile) -> None:
        self._elf = elf
        self._by_sec: dict[int, tuple[list[tuple], list[int]] | None] = {}
        self._shndx: list[int] | None = None

    def _section(self, shndx: int) -> tuple[list[tuple], list[int]] | None:
        syms = self._elf.symbols
        col = self._shndx
        if col is None:
            col = self._shndx = list(map(_SHNDX, syms))
        r = []
        for pos in itertools.compress(range(len(col)), map(shndx.__eq__, col)):
            s = syms[pos]
            if s.name and s.type != STT_SECTION and s.bind != STB_WEAK and \
                    not s.name.startswith(("$", ".L")):
                r.append((s.value, s.bind != STB_LOCAL, -pos, s.name))
        got = None
        if r:
            r.sort()
            got = (r, [x[0] for x in r])
        self._by_sec[shndx] = got
        return got

    def at(self, shndx: int, offset: int) -> Anchor | None:
        got = self._by_sec.get(shndx, _UNSEEN)
        if got is _UNSEEN:
            got = self._section(shndx)
        if got is None:
            return None
        rows, values = got
        i = bisect_right(values, offset) - 1
        if i < 0:
            return None
        # The rows with the largest value <= offset: the last of them is the best key.
        value, is_global, _, name = rows[i]
        return Anchor(name, is_global, offset - value)


_UNSEEN = object()
_SHNDX = operator.itemgetter(6)  # Symbol.shndx


class AnchorsPy(Anchors):
    """The reference for ``Anchors``: every section's rows made at once (the lookup,
    ``Anchors.at``, is the same)."""

    def __init__(self, elf: ElfFile) -> None:
        super().__init__(elf)
        rows: dict[int, list[tuple]] = {}
        for pos, s in enumerate(elf.symbols):
            if s.name and s.type != STT_SECTION and s.bind != STB_WEAK and \
                    not s.name.startswith(("$", ".L")):
                rows.setdefault(s.shndx, []).append((s.value, s.bind != STB_LOCAL, -pos,
                                                     s.name))
        for shndx, r in rows.items():
            r.sort()
            self._by_sec[shndx] = (r, [x[0] for x in r])

    def _section(self, shndx: int) -> None:
        return None  # every section with rows has them already


def expected(anchor: Anchor | None, syms) -> set[int]:
    """Where the image put an anchored place (``crosscheck._ImageSymbols``); empty: unknown."""
    if anchor is None:
        return set()
    name, is_global, delta = anchor
    if is_global and name in syms.globals:
        return {syms.globals[name] + delta}
    return {a + delta for a in syms.addresses(name)}


def digest(inp, profile) -> list[EntryDigest]:
    """Each entry of an object's table as the cross-check compares it with the linked image
    (``EntryDigest``): ``digest_py``'s, but where no relocation falls in a run of words (a
    set test over the run, at C speed) the words are taken as they are, and each entry's
    fields are read by unpacking its tuple, its anchor found in ``Anchors``' rows in place."""
    elf = inp.elf
    anchors = Anchors(elf)
    by_sec, section = anchors._by_sec, anchors._section
    secs = elf.sections
    nsecs = len(secs)
    parts: dict[int, tuple] = {}  # per section: bytes, relocations, relocated offsets' set
    facts = facts_of(profile)  # cap_raw: (is_callback's answer, ...)
    sp = speedups.get()
    if sp is not None:  # the loop below, compiled (``altlink.speedups``)
        got = sp.digest_entries(inp.table.entries, nsecs, facts, partial(cap_facts, profile),
                                partial(_part_of, parts, inp), partial(_rows_of, anchors),
                                _masked, partial(_alt_relocs, inp, anchors), _NONES, _nones,
                                EntryDigest, Anchor)
        if got is not None:
            return got
    out = []
    append = out.append
    new = tuple.__new__
    unpackers, nones = _UNPACKERS, _NONES  # (by number of words, as made: no call each)
    for pos, (_file, index, table_section, _toff, site, alt, cap_raw, orig_len, alt_len,
              _addr) in enumerate(inp.table.entries):
        site_section, shndx, offset = site[0], site[1], site[2]
        site_words = site_anchor = None
        if shndx:  # defined
            got = parts.get(shndx)
            if got is None:
                got = parts[shndx] = _part(inp, secs[shndx])
            data, relocs, relocated = got
            n = orig_len // 4
            if offset < 0 or offset + 4 * n > len(data):
                site_words = ()
            else:
                unpack = unpackers.get(n)
                if unpack is None:
                    unpack = _words(n).unpack_from
                site_words = unpack(data, offset)
                if relocated and not relocated.isdisjoint(range(offset, offset + 4 * n, 4)):
                    site_words = _masked(got, offset, orig_len)
            rows = by_sec.get(shndx, _UNSEEN)
            if rows is _UNSEEN:
                rows = section(shndx)
            if rows is not None:  # Anchors.at
                i = bisect_right(rows[1], offset) - 1
                if i >= 0:
                    value, is_global, _, name = rows[0][i]
                    site_anchor = new(Anchor, (name, is_global, offset - value))
        alt_words = alt_relocs = None
        shndx = alt[1]
        if shndx and 0 < shndx < nsecs:
            cb = facts.get(cap_raw)
            if cb is None:
                cb = facts[cap_raw] = cap_facts(profile, cap_raw)
            if not cb[0]:
                got = parts.get(shndx)
                if got is None:
                    got = parts[shndx] = _part(inp, secs[shndx])
                data, relocs, relocated = got
                offset, n = alt[2], alt_len // 4
                if 0 <= offset and offset + 4 * n <= len(data):
                    unpack = unpackers.get(n)
                    if unpack is None:
                        unpack = _words(n).unpack_from
                    alt_words = unpack(data, offset)
                    if not relocated or relocated.isdisjoint(range(offset, offset + 4 * n, 4)):
                        alt_relocs = nones.get(n) or _nones(n)
                    else:
                        alt_relocs = _alt_relocs(inp, anchors, got, offset, alt_words)
        append(new(EntryDigest, (pos, index, table_section, cap_raw, orig_len, alt_len,
                                 site_section, site[2], site_words, site_anchor, alt[4],
                                 bool(alt[1]), alt_words, alt_relocs)))
    return out


def _part_of(parts: dict[int, tuple], inp, shndx: int) -> tuple:
    """``_part`` of section ``shndx``, kept in ``parts`` (``digest``'s)."""
    got = parts.get(shndx)
    if got is None:
        got = parts[shndx] = _part(inp, inp.elf.sections[shndx])
    return got


def _rows_of(anchors: Anchors, shndx: int):
    """The anchors' rows of section ``shndx`` (``Anchors.at``'s), made where not made yet."""
    got = anchors._by_sec.get(shndx, _UNSEEN)
    return anchors._section(shndx) if got is _UNSEEN else got


def _alt_relocs(inp, anchors: Anchors, part: tuple, offset: int, words: tuple) -> tuple:
    """A replacement's words' relocations (``EntryDigest.alt_relocs``) where some fall in it:
    None for a word none applies to."""
    _, relocs, relocated = part
    return tuple(None if (offset + 4 * i) not in relocated else
                 _reloc_target(inp, relocs.get(offset + 4 * i), w, anchors)
                 for i, w in enumerate(words))


_NONES: dict[int, tuple] = {}


def _nones(n: int) -> tuple:
    got = _NONES.get(n)
    if got is None:
        got = _NONES[n] = (None,) * n
    return got


def _part(inp, sec) -> tuple:
    relocs = inp.relocs_of(sec)
    offsets = relocs.offsets
    return (inp.elf.section_data(sec), relocs,
            offsets.keys() if isinstance(offsets, dict) else offsets)


_WORDS: dict[int, struct.Struct] = {}
_UNPACKERS: dict = {}  # n: ``_words(n).unpack_from``


def _words(n: int) -> struct.Struct:
    got = _WORDS.get(n)
    if got is None:
        got = _WORDS[n] = struct.Struct(f"<{n}I")
        _UNPACKERS[n] = got.unpack_from
    return got


def digest_py(inp, profile) -> list[EntryDigest]:
    """The reference for ``digest``: each entry's words through ``_masked``, a word at a time."""
    elf = inp.elf
    anchors = Anchors(elf)
    secs = elf.sections
    # Per section: its bytes, its relocations and their offsets (a table's entries point
    # into few sections).
    parts: dict[int, tuple] = {}

    def part(index: int) -> tuple:
        got = parts.get(index)
        if got is None:
            relocs = inp.relocs_of(secs[index])
            got = parts[index] = (elf.section_data(secs[index]), relocs, relocs.offsets)
        return got

    out = []
    new = tuple.__new__
    for pos, e in enumerate(inp.table.entries):
        site, alt = e.site, e.alt
        site_words = site_anchor = None
        if site.section_index:  # defined
            site_words = _masked(part(site.section_index), site.offset, e.orig_len)
            site_anchor = anchors.at(site.section_index, site.offset)
        alt_words = alt_relocs = None
        if alt.section_index and not profile.is_callback(e.cap_raw) and \
                0 < alt.section_index < len(secs):
            data, relocs, offsets = part(alt.section_index)
            n = e.alt_len // 4
            if 0 <= alt.offset and alt.offset + 4 * n <= len(data):
                alt_words = struct.unpack_from(f"<{n}I", data, alt.offset)
                alt_relocs = tuple(
                    None if (alt.offset + 4 * i) not in offsets else
                    _reloc_target(inp, relocs.get(alt.offset + 4 * i), w, anchors)
                    for i, w in enumerate(alt_words))
        out.append(new(EntryDigest, (pos, e.index, e.table_section, e.cap_raw, e.orig_len,
                                     e.alt_len, site.section, site.offset, site_words,
                                     site_anchor, alt.symbol, bool(alt.section_index),
                                     alt_words, alt_relocs)))
    return out


def _masked(part: tuple, offset: int, length: int) -> tuple:
    data, _, offsets = part
    n = length // 4
    if offset < 0 or offset + 4 * n > len(data):
        return ()
    words = struct.unpack_from(f"<{n}I", data, offset)
    return tuple(None if (offset + 4 * i) in offsets else w for i, w in enumerate(words))


def _reloc_target(inp, r, word: int, anchors: Anchors):
    from altlink import insn

    if r is None:
        return None
    if insn.decode(word).kind != "branch26":
        return True
    elf = inp.elf
    try:
        sym = elf.symbol(r.sym)
    except IndexError:
        return Target("?", None, 0, None)
    if sym.type != STT_SECTION and sym.name:
        glob = sym.name if sym.bind != STB_LOCAL else None
        if not sym.defined:
            return Target(sym.name, glob, r.addend, None)
        return Target(sym.name, glob, r.addend, anchors.at(sym.shndx, sym.value + r.addend))
    if not 0 < sym.shndx < len(elf.sections):
        return Target("?", None, 0, None)
    off = sym.value + r.addend
    name = inp.names.at_offset(sym.shndx, off) or f"{elf.sections[sym.shndx].name}+{off:#x}"
    return Target(name, None, r.addend, anchors.at(sym.shndx, off))


def masked_words(inp, sec_index: int, offset: int, length: int) -> tuple:
    """Words of an object's section, None where a relocation will change them; empty when
    they run past the section."""
    sec = inp.elf.sections[sec_index]
    relocs = inp.relocs_of(sec)
    return _masked((inp.elf.section_data(sec), relocs, relocs.offsets), offset, length)


# -- many objects: from the cache, else made, on the machine's cores ---------------------------

PARALLEL_MIN = 64  # fewer objects to read than this are not worth a second process


def preload_scans(objects: list[ElfFile]) -> None:
    """numpy imported now when the ALT017 scans of these objects' code are quicker with it
    (:func:`branches.preload`)."""
    if not objects:  # (every record kept)
        return
    from altlink import branches

    if branches.compiled():  # (scanned without numpy)
        return
    branches.preload(sum(map(_code_size, objects)))


def _code_size(elf: ElfFile) -> int:
    """The object's code, for ``preload_scans``: its section headers' (``code_size``: not
    decoded where they are not yet, in a process that makes no record of it), 0 where they
    cannot be read (their error is the object's record's)."""
    try:
        return elf.code_size()
    except AltlinkError:
        return 0


def records_of(objects: list[ElfFile], options, cache_dir: str | None,
               loaded: list | None = None,
               before_making: Callable[[], None] | None = None,
               with_digest: bool = True) -> list[ObjectRecord]:
    """The records of the objects, in their order: from the cache where it has them, the
    others made (``loaded`` may give objects already read, as ``linkset.Input``).
    ``before_making`` is called once before any record is made, if one is; ``with_digest``
    (``make_record``'s) for those made."""

    key = ObjectCache.options_key_of(options) if cache_dir else None
    cache = ObjectCache(cache_dir, key, options.profile) if key else None
    out: list[ObjectRecord | None] = [None] * len(objects)
    where: list[str | None] = [None] * len(objects)
    todo: list[int] = []
    if cache is not None:
        for i, (rec, path) in enumerate(cache.get_many(objects)):
            out[i], where[i] = rec, path
    for i, elf in enumerate(objects):
        if out[i] is None:
            todo.append(i)
        else:
            out[i]._load = partial(Input.load, elf)
            out[i]._profile = options.profile
    # Without a digest or a cache (``altlink check --no-cache``), the records the extension
    # makes whole from the objects' bytes (``make_plain``: a few microseconds an object) are
    # made first, here: a forked copy is worth it only for the others, if they are many.
    for i in todo if not with_digest and cache is None else ():
        if loaded is None or loaded[i] is None:
            t = make_plain(objects[i], options)
            if t is not None:
                out[i] = rec = ObjectRecord.from_valid(objects[i].path, t)
                rec._load = partial(Input.load, objects[i])
                rec._profile = options.profile
    # With the digest (a link's), those the extension makes whole with their digest's packed
    # columns (``make_plain``: about 30 microseconds an object) are made here too, before any
    # fork; the others (the digest made by the Python, or the whole record) after.
    made = []
    for i in todo if with_digest and speedups.get() is not None else ():
        if loaded is None or loaded[i] is None:
            t = make_plain(objects[i], options, True)
            if t is not None and type(t[-1]) is tuple:
                out[i] = record_from(objects[i], (t, None, None), options.profile)
                made.append(i)
    if cache is not None and made:
        _keep_all(cache, [(where[i], out[i]) for i in made])
    todo = [i for i in todo if out[i] is None]
    # The section headers of the objects whose records are made, checked in their order
    # before any is made (``inputs.load_elfs`` may leave them: ``defer``): the first unusable
    # one is named (those made whole above have usable ones: the extension read them).
    # Those of an object whose record is kept were checked when it was made.
    # Where the records are made in forked copies too, each process reads the headers of the
    # objects it takes, and they are checked in order here only where one met an error
    # (``_make_in_parallel``).
    jobs = min(forkmap.cpus(), 8)
    parallel = jobs > 1 and len(todo) >= PARALLEL_MIN and loaded is None and forkmap.can_fork()
    if not parallel:
        check_headers(objects, todo)
    if todo:  # the objects' checks (``make_record``), imported once, before any fork
        import altlink.check_objects  # noqa: F401
    if todo and before_making is not None:
        before_making()
    # The ALT017 scans of the objects whose records are made (whole sections where the
    # replacements live in .text): numpy, when they are worth it. Where the records are made
    # in forked copies too, it is imported here once they run, and they scan with the
    # standard library (or import it for a large section of their own): the import is not
    # on the way to the fork, and the copies take more of the work meanwhile. A link whose
    # records are all kept imports nothing here.
    scans = partial(preload_scans, [objects[i] for i in todo])
    if parallel:
        _make_in_parallel(objects, todo, options, cache, where, out, jobs, with_digest, scans)
    else:
        scans()
        for i in todo:
            whole = make_whole(objects[i], options) if with_digest and \
                (loaded is None or loaded[i] is None) else None
            if whole is not None:
                out[i] = record_from(objects[i], whole, options.profile)
            else:
                inp = loaded[i] if loaded is not None and loaded[i] is not None else \
                    Input.load(objects[i])
                out[i] = make_record(inp, options, with_digest)
            if cache is not None:
                cache.put(where[i], out[i])
    packed = [r for r in out if r is not None and r._packed is not None]
    group = _Group(packed)
    for r in packed:
        r._packed = (*r._packed[:2], group)
    return out  # type: ignore[return-value]


def _keep_all(cache: ObjectCache, kept: list[tuple[str, ObjectRecord]]) -> None:
    """The records ``kept`` (path, record) written into the cache, by this process and, where
    they are many, forked copies beside it: a record's file costs more to create than its
    record costs the extension to make (0.3 ms of the kernel's time a file, on ext4, against
    some 15 us), so the files of a first link's 2,000 records are written on every CPU."""
    jobs = min(forkmap.cpus(), 8) if len(kept) >= PARALLEL_MIN else 1
    step = -(-len(kept) // jobs)
    forkmap.fork_map(partial(_keep_share, cache),
                     [kept[k:k + step] for k in range(0, len(kept), step)])


def _keep_share(cache: ObjectCache, kept: list[tuple[str, ObjectRecord]]) -> None:
    for path, rec in kept:
        cache.put(path, rec)


def check_headers(objects: list[ElfFile], todo: list[int]) -> None:
    """The section headers of ``objects[i]`` for each ``i`` of ``todo``, in their order: the
    first that cannot be read raises its error."""
    for i in todo:
        objects[i].sections  # noqa: B018


class _Group:
    """The records one ``records_of`` read back, to unpack together (``_unpack_group``):
    held by each of them, holding them weakly (no cycle for the collector to find)."""

    def __init__(self, recs: list[ObjectRecord]) -> None:
        self.refs = [weak_ref(r) for r in recs]

    def records(self) -> list[ObjectRecord]:
        return [r for r in map(weak_ref.__call__, self.refs) if r is not None]


def _make_in_parallel(objects: list[ElfFile], todo: list[int], options, cache, where, out,
                      jobs: int, with_digest: bool = True,
                      after_fork: Callable[[], None] | None = None) -> None:
    """Make the records of ``todo`` in this process and ``jobs - 1`` forked ones, which take
    chunks of ``MAKE_CHUNK`` objects in turn as each is done with one (``forkmap.queue_map``:
    object sizes vary, and a link's linker runs beside them); each keeps its own records.
    ``after_fork`` runs here once the copies work (numpy's import, ``records_of``)."""

    got = forkmap.queue_map(partial(_make_share, objects, options, cache, where, with_digest),
                            todo, jobs, MAKE_CHUNK, after_fork)
    errors = [(todo[lo + k], r) for lo, res in got for k, r in enumerate(res)
              if isinstance(r, AltlinkError)]
    if errors:  # the first object whose section headers cannot be read, as without a fork
        check_headers(objects, todo)
        raise min(errors, key=lambda t: t[0])[1]  # else the first in input order
    plain = [(todo[lo + k], r) for lo, res in got for k, r in enumerate(res)
             if type(r) is tuple]
    ok = valid_plains([r for _, r in plain])
    for (i, t), good in zip(plain, ok):
        if not good:
            raise ValueError(f"{objects[i].path}: a forked worker's record is not one")
        out[i] = ObjectRecord.from_valid(objects[i].path, t)
    for lo, res in got:
        for k, r in enumerate(res):
            i = todo[lo + k]
            if type(r) is not tuple:
                out[i] = r
            out[i]._load = partial(Input.load, objects[i])
            out[i]._profile = options.profile


MAKE_CHUNK = 8  # objects a process takes at a time (``_make_in_parallel``)


def _make_share(objects: list[ElfFile], options, cache, where, with_digest: bool,
                share: list[int]) -> tuple[list, bool]:
    """The records of a share, and whether it met an error (the last item then): plain data
    when made in a forked process, to send back."""

    here = not forkmap.in_child()
    got: list = []
    for i in share:
        try:
            # (the parts the extension makes whole: ``make_whole``)
            whole = make_whole(objects[i], options) if with_digest else None
            if whole is not None and not here and cache is None:
                got.append(plain_with(whole))
                continue
            rec = record_from(objects[i], whole, options.profile) if whole is not None else \
                make_record(Input.load(objects[i]), options, with_digest)
        except AltlinkError as e:
            got.append(e)
            return got, True  # the share's first error; the caller reports the first of all
        if cache is not None:
            cache.put(where[i], rec)
        got.append(rec if here else rec.to_plain())
    return got, False


# -- the cache -------------------------------------------------------------------------------

def default_cache_dir() -> str | None:
    """``$ALTLINK_CACHE_DIR`` (empty: no cache), else ``$XDG_CACHE_HOME/altlink/records``."""
    env = os.environ.get("ALTLINK_CACHE_DIR")
    if env is not None:
        return env or None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        if not os.path.isabs(home):  # no home directory to speak of: no cache
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "altlink", "records")


# The record cache's size, at most (``$ALTLINK_CACHE_SIZE``: bytes, or with a K, M or G suffix;
# 0: no bound). Each of its 256 folders is kept under its share, as ccache keeps its own:
# the folder a process writes a record into is looked over at most once a day (its
# ``TRIM_STAMP`` file), and its oldest records removed until it is under nine tenths of its
# share. Records altlink no longer reads (another version's, or an object's that changed)
# are the oldest: they go first.
DEFAULT_CACHE_SIZE = 1 << 30
TRIM_EVERY = 24 * 3600.0
TRIM_STAMP = ".trimmed"
# Files one process removes from a folder at most: a cache far over its bound (a smaller
# ALTLINK_CACHE_SIZE) is brought under it by the links that write into it, a little each.
TRIM_BATCH = 16
_FOLDERS = 256


def cache_size_limit() -> int:
    """``$ALTLINK_CACHE_SIZE`` in bytes (0: no bound), else ``DEFAULT_CACHE_SIZE``; an
    AltlinkError (exit 2) naming the variable for a value that is not a size."""
    env = os.environ.get("ALTLINK_CACHE_SIZE", "").strip()
    if not env:
        return DEFAULT_CACHE_SIZE
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(env[-1:].upper(), 1)
    digits = env[:-1] if scale != 1 else env
    if not digits.isdigit():
        raise AltlinkError(f"ALTLINK_CACHE_SIZE={env!r}: expected a size in bytes, or with a "
                           "K, M or G suffix (0: no bound)")
    return int(digits) * scale


def trim_folder(folder: str, share: int, now: float) -> None:
    """One folder of the record cache kept under ``share`` bytes: where its ``TRIM_STAMP`` is
    missing or older than ``TRIM_EVERY``, the stamp is renewed first (a concurrent process
    then leaves the folder alone), and the oldest files (by the time they were written)
    removed until the folder is under nine tenths of its share (the space they take on disk),
    ``TRIM_BATCH`` at most (the stamp is then left due, for the next process). Best effort,
    as the cache is: a record removed while another process reads it is a miss there, made
    again."""
    stamp = os.path.join(folder, TRIM_STAMP)
    try:
        if now - os.stat(stamp).st_mtime < TRIM_EVERY:
            return
    except OSError:
        pass
    try:
        with open(stamp, "wb"):
            pass
        os.utime(stamp, (now, now))
        files = []
        with os.scandir(folder) as it:
            for e in it:
                if e.name != TRIM_STAMP and e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    # (the space it takes on disk, as du counts it: a record of a few hundred
                    # bytes takes a block of 4 KiB)
                    files.append((st.st_mtime, getattr(st, "st_blocks", 0) * 512 or st.st_size,
                                  e.path))
    except OSError:
        return
    total = sum(size for _, size, _ in files)
    if total <= share:
        return
    files.sort()
    removed = 0
    for _mtime, size, path in files:
        if total <= share * 9 // 10:
            break
        if removed == TRIM_BATCH:  # the rest by the next process that writes here
            _set_time(stamp, now - TRIM_EVERY)
            break
        _unlink(path)
        total -= size
        removed += 1


def _set_time(path: str, t: float) -> None:
    try:
        os.utime(path, (t, t))
    except OSError:
        pass


class _NoGlobals(pickle.Unpickler):
    """Records are tuples, lists, dicts, strings, numbers and the named tuples of
    ``_RECORD_TYPES``: a record file naming any other class or function (which unpickling
    would call) is refused."""

    def find_class(self, module, name):
        t = _RECORD_TYPES.get(name)
        if t is not None and module == t.__module__:
            return t
        raise pickle.UnpicklingError(f"{module}.{name} in a record")


# A link set of this many objects or more keeps its records together too (``get_many``): one
# file read instead of one for each object.
PACK_FROM = 32
PACK_SUFFIX = ".pack"


class ObjectCache:
    """Records by content. Best effort: a record that cannot be read or written is made
    again; files are written under a temporary name and renamed, so concurrent links (scons
    -j) never see half a record, and two writing the same one write the same bytes."""

    def __init__(self, directory: str, options_key: str, profile=None) -> None:
        self.dir = directory
        self.options_key = options_key
        self.profile = profile  # the records' own (resolved): to check them against
        self.hits = self.misses = 0
        self._folders: set[str] = set()  # made (and looked over for trimming) by this process
        self._share = cache_size_limit() // _FOLDERS  # each folder's (0: no bound)
        self._keyed = None  # the hash of the key's prefix, copied for each object
        self._folder = ""  # the directory's path, ending with a separator

    @staticmethod
    def options_key_of(options) -> str | None:
        """What of the options a record depends on; None: records cannot be kept (NCAPS
        still to be inferred from the whole link set)."""
        p = options.profile
        if p.ncaps is None and p.abi in NCAPS_MARKED:
            return None
        caps = options.caps
        names = repr(caps.names).encode() if caps else b""
        caps_key = sha256_for(len(names))(names).hexdigest() if caps else "-"
        return f"{p.abi}/{p.ncaps}/{caps_key}/{int(options.module)}"

    def record_path(self, data, size: int = 0) -> str:
        """Where the record of an object with these bytes is kept. ``size``: how many bytes
        of objects this cache is asked to key in all (``sha256_for``: hashlib for many)."""
        if self._keyed is None:
            self._key_with(max(size, len(data)))
        h = self._keyed.copy()
        h.update(data)
        key = h.hexdigest()
        return f"{self._folder}{key[:2]}/{key[2:]}"

    def _key_with(self, size: int) -> None:
        """The hash every record's key starts from (``record_path``), made by ``sha256_for``
        for ``size`` bytes of objects in all."""
        self._keyed = sha256_for(size)(
            f"altlink {code_digest(self.dir)} record {RECORD_FORMAT} "
            f"{self.options_key}\0".encode())
        self._folder = os.path.join(self.dir, "")  # (os.path.join(dir, a, b) is this + a/b)

    def pack_path(self, paths: list[str]) -> str:
        """Where the records of a link set whose records are kept at ``paths``
        (``record_path``), in that order, are kept together (``get_many``)."""
        cut = len(self._folder)  # (each record's key: its path in the cache)
        keys = "\0".join([p[cut:] for p in paths]).encode()
        h = sha256_for(len(keys))(b"altlink pack\0")
        h.update(keys)
        key = h.hexdigest()
        return f"{self._folder}{key[:2]}/{key[2:]}{PACK_SUFFIX}"

    def get_many(self, elfs: list[ElfFile]) -> list[tuple[ObjectRecord | None, str]]:
        """``get`` of each of ``elfs``: the records read back together, checked together
        (``valid_plains``). A link set of ``PACK_FROM`` objects or more whose records were
        all read back keeps them in one more file, its pack (``pack_path``: keyed by the
        records' own keys, in order): the next time the same objects are read, their records
        come from that one file, checked as the records' own files are; where the pack is
        missing or any record in it fails those checks, from the records' own files."""
        datas = [e.data for e in elfs]
        if datas and self._keyed is None:  # (keyed by hashlib for many bytes: sha256_for)
            self._key_with(sum(map(len, datas)))
        paths = list(map(self.record_path, datas))
        pack = self.pack_path(paths) if len(paths) >= PACK_FROM else None
        if pack is not None:
            plains = _read_pack(pack, len(paths))
            if plains is not None:
                recs = self._from_plains(elfs, plains)
                if None not in recs:
                    self.hits += len(recs)
                    return list(zip(recs, paths))
        plains = []
        add = plains.append
        for path in paths:
            try:
                add(_NoGlobals(io.BytesIO(_read_whole(path))).load())
            except Exception:  # noqa: BLE001 - a missing or unusable record is made again
                add(None)
        recs = self._from_plains(elfs, plains)
        out = list(zip(recs, paths))
        hits = sum(r is not None for r in recs)
        self.hits += hits
        self.misses += len(out) - hits
        if pack is not None and hits == len(out):
            self._keep(pack, plains)
        return out

    def _from_plains(self, elfs: list[ElfFile], plains: list) -> list[ObjectRecord | None]:
        """The records of ``elfs`` from their plain data as read back (None where there is
        none): each checked (``valid_plains``, then ``consistent_together``), None where it
        fails."""
        read = [t for t in plains if t is not None]
        ok = iter(valid_plains(read))
        recs: list[ObjectRecord | None] = []
        from_valid = ObjectRecord.from_valid
        for e, t in zip(elfs, plains):
            rec = None
            if t is not None and next(ok):
                try:
                    rec = from_valid(e.path, t)
                except Exception:  # noqa: BLE001 - as get: made again
                    rec = None
            recs.append(rec)
        if self.profile is not None:  # the records whose findings are missing made again
            got = [r for r in recs if r is not None]
            fine = iter(consistent_together(got, self.profile))
            recs = [r if r is None or next(fine) else None for r in recs]
        return recs

    def get(self, elf: ElfFile) -> tuple[ObjectRecord | None, str]:
        path = self.record_path(elf.data)
        try:
            with open(path, "rb") as f:
                rec = ObjectRecord.from_plain(elf.path, _NoGlobals(f).load())
            if self.profile is not None and not rec.consistent_fast(self.profile):
                raise ValueError("findings missing")
        except Exception:  # noqa: BLE001 - a missing or unusable record is made again
            self.misses += 1
            return None, path
        self.hits += 1
        return rec, path

    def put(self, where: str, rec: ObjectRecord) -> None:
        self._keep(where, rec.to_plain())

    def _keep(self, where: str, plain) -> None:
        """``plain`` (a record's, or a pack's list of them) kept at ``where``."""
        # This thread's own (an SCons -j build links in threads of one process).
        tmp = f"{where}.{os.getpid()}.{get_ident()}.tmp"
        try:
            folder = os.path.dirname(where)
            first = folder not in self._folders
            if first:
                # Private: the records are the user's own (what a link trusts).
                os.makedirs(self.dir, mode=0o700, exist_ok=True)
                os.makedirs(folder, mode=0o700, exist_ok=True)
                self._folders.add(folder)
            try:
                with open(tmp, "wb") as f:
                    pickle.dump(plain, f, protocol=-1)
                os.replace(tmp, where)
            except BaseException:
                _unlink(tmp)
                raise
            if first and self._share:
                import time

                trim_folder(folder, self._share, time.time())
        except OSError:
            pass  # a read-only or full cache directory: the link goes on without it


def _read_whole(path: str, chunk: int = 1 << 16) -> bytes:
    """A file's bytes by ``os.read`` (a record is a few kilobytes: one read, without a file
    object's buffering)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, chunk)
        if len(data) == chunk:  # more to come
            parts = [data]
            while more := os.read(fd, chunk):
                parts.append(more)
            data = b"".join(parts)
        return data
    finally:
        os.close(fd)


def _read_pack(path: str, n: int) -> list | None:
    """A pack's list of ``n`` records' plain data, or None where it is missing, unreadable
    or not a list of ``n``."""
    try:
        got = _NoGlobals(io.BytesIO(_read_whole(path))).load()
    except Exception:  # noqa: BLE001 - a missing or unusable pack: the records' own files
        return None
    return got if type(got) is list and len(got) == n else None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


_RECORD_TYPES = {t.__name__: t for t in (EntryDigest, Anchor, Target, Deferred)}
