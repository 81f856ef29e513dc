"""The cross-check: every entry collected from the objects (their records' digests) is found in
the linked image, at the place its symbol got, with the same site and replacement code
(ALT013, ALT016)."""
from __future__ import annotations

import itertools
import struct
import sys
from collections import Counter
from functools import cached_property
from itertools import compress

from altlink import insn
from altlink.branches import NUMPY_FROM_ENTRIES
from altlink.check_core import callback_mask
from altlink.elf import ET_REL, SHT_NOBITS, STB_LOCAL, STT_SECTION, ElfFile, string_table
from altlink.findings import Finding, finding
from altlink.insn import mnemonic, word_text
from altlink.linkset import Input
from altlink.records import (
    _PACKED,
    Anchor,
    EntryDigest,
    ObjectRecord,
    Target,
    digest_alone,
    expected,
    masked_words,
    packed_columns_of,
)
from altlink.symbols import SymtabColumns, columns_pay
from altlink.table import Entry
from altlink.values import Frozen


def names_asked(objects: list[ObjectRecord]) -> set[str]:
    """The image symbols the cross-check of these records looks up by name: where each site
    and each branch target of a replacement was anchored, each callback, each global a
    replacement branches to. (Another, asked for on a rarer path, reads the rest.)"""
    names: set[str] = set()
    add = names.add
    for obj in objects:
        if not obj.entries:  # (its digest is not unpacked: most objects of a link)
            continue
        for e in obj.digest or ():
            if e.site_anchor is not None:
                add(e.site_anchor.name)
            if e.alt_symbol:
                add(e.alt_symbol)
            for r in e.alt_relocs or ():
                if isinstance(r, Target):
                    if r.global_name is not None:
                        add(r.global_name)
                    if r.anchor is not None:
                        add(r.anchor.name)
    return names


def _signature(e) -> tuple:
    return (e.cap_raw, e.orig_len, e.alt_len)


def cross_check(objects: list[ObjectRecord], image: Input, profile,
                members: frozenset[str] = frozenset(),
                reported: set[int] | None = None, fast: bool = True,
                asked: set[str] | None = None,
                packs: list | RecordColumns | None = None,
                wrapped: frozenset[str] = frozenset(),
                unmatched: list[int] | None = None,
                placed_paths: set[str] | None = None) -> list[Finding]:
    """Every entry collected from the objects must be in the image, at the place its
    symbol+offset got, with the same site and replacement code (ALT013, ALT016). ``wrapped``:
    the names the link wraps (``linkcmd.wrapped_names``), whose references may resolve to
    ``__wrap_NAME`` (a callback, a replacement's branch).

    An object's entries are found in the image as one block, in their order. First every
    object whose sites all match is placed; then an object whose block is there with some
    sites moved or gone (a /DISCARD/ rule that lld lets through) is placed by its other
    entries and replacements, and the entries that differ are reported one by one. ``members``
    names the inputs that are archive members: the linker pulls in only some of them, and the
    entries of one it did not link are not missing. The objects are compared through their
    records' digests; only those rarer paths read an object again. ``reported`` gets the
    image entries a finding was made for. ``asked``: ``names_asked(objects)``, where the caller
    made it already (a link, while its linker runs). ``packs``: for the array compare,
    ``packed_columns_of`` of the first of ``objects``, or the ``RecordColumns`` of all of
    them, made already (``packed_columns_early``: a link of many entries, while its linker
    runs). ``unmatched`` gets the positions of the image's entries that no object's block
    holds (an LTO object's, say: code altlink did not read before the link);
    ``placed_paths``, the paths of the objects whose block was found in the image.

    ``fast`` (the default) compares a large table's entries all at once where every block is
    where the objects are (``_cross_check_arrays``), else reads the code of a linked image's
    whole table at once, each place through the section its entry already names
    (``_PlaceReader``), before any entry is compared; ``fast=False`` reads each place by
    address when a comparison asks for it (the reference the tests compare with: the same
    findings).
    """
    if fast and image.elf.type != ET_REL and image.table.size >= ARRAYS_FROM_ENTRIES and \
            "numpy" in sys.modules:
        got = _cross_check_arrays(objects, image, profile, reported, asked, packs, wrapped,
                                  unmatched, placed_paths)
        if got is not None:
            return got
    img = image.table.entries
    findings: list[Finding] = []
    # The names asked for matter where the image's symbols are read from their columns only
    # (a large table): a small one is indexed whole, and 40,000 entries' names cost 20 ms.
    columns = columns_pay(image.elf)
    syms = _ImageSymbols(image.elf, columns, wanted=(
        names_asked(objects) if asked is None else asked) if columns else None)
    syms.wrapped = wrapped
    used: set[int] = set()
    placed: dict[int, int] = {}
    todo = [k for k, obj in enumerate(objects) if obj.entries and obj.digest]
    memo: dict[tuple[int, int, int], bool] = {}
    reader = _PlaceReader(image.elf) if fast and image.elf.type != ET_REL else None

    def site_ok(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry) -> bool:
        """_site_matches, once per pair: placing and comparing ask the same question."""
        key = (id(obj), e.pos, ie.index)
        got = memo.get(key)
        if got is None:
            got = memo[key] = e.site_words is not None and \
                _words_match(e.site_words, _words_at(image, ie.site, e.orig_len))
        return got

    keys = None
    if reader is not None:  # every site's words, read once (a placed block's signature
        site_words = [reader.words(ie.site, ie.orig_len) for ie in img]  # is its entries')
        at = {ie.index: k for k, ie in enumerate(img)}
        # A block whose signatures and site words are all the image's: found by one compare
        keys = [(ie.cap_raw, ie.orig_len, ie.alt_len, w) for ie, w in zip(img, site_words)]

        def site_ok(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry) -> bool:
            return e.site_words is not None and \
                _words_match(e.site_words, site_words[at[ie.index]])

    def alt_ok(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry) -> bool:
        full = obj.full()
        return _alt_matches(full, full.table.entries[e.pos], image, ie, syms, profile)

    # Where an object's block may be. With the image's symbols: where they say its first site
    # went. Else where the last block ended, then the image entries with the signature and
    # the first site word of its first entry (the first pass) or only the signature (the
    # second, where sites may differ). Never the whole table for each object: that grows
    # with the square of the objects (tables out of link order, archive members the linker
    # left out). The index is made when first needed.
    by_sig: dict[tuple, list[int]] = {}
    by_word: dict[tuple, list[int]] = {}
    by_addr: dict[int | None, list[int]] = {}

    def index() -> None:
        if by_sig or not img:
            return
        for i, ie in enumerate(img):
            sig = _signature(ie)
            by_sig.setdefault(sig, []).append(i)
            got = _words_at(image, ie.site, 4)
            by_word.setdefault((sig, got[0] if got else None), []).append(i)
            by_addr.setdefault(ie.site.address, []).append(i)

    def by_site(e: EntryDigest, pos: int):
        if image.elf.type != ET_REL:  # ld -r: symbols are not addresses yet
            want = expected(e.site_anchor, syms)
            if want:
                if pos < len(img) and img[pos].site.address in want:
                    yield pos  # in link order, as usual: no index needed
                index()
                yield from sorted(i for a in want for i in by_addr.get(a, ()))
                return
        yield pos
        index()
        sig = _signature(e)
        if not e.site_words or e.site_words[0] is None:  # relocated: any word
            yield from by_sig.get(sig, [])
        else:  # a word the image cannot show (None) may be it too
            yield from sorted(by_word.get((sig, e.site_words[0]), []) +
                              by_word.get((sig, None), []))

    def by_signature(e: EntryDigest, pos: int):
        yield pos
        index()
        yield from by_sig.get(_signature(e), [])

    def place(match, candidates) -> None:
        pos = 0
        for k in todo:
            if k in placed:
                continue
            obj = objects[k]
            start = _find_block(obj, image, img, used, match, candidates(obj.digest[0], pos),
                                keys)
            if start is not None:
                n = len(obj.digest)
                placed[k] = start
                used.update(range(start, start + n))
                pos = start + n

    place(site_ok, by_site)
    by_sites = set(placed)  # every site of these blocks matched
    unplaced = [k for k in todo if k not in placed and
                (objects[k].path not in members or
                 _member_linked(objects[k].full(), image, syms))]
    if unplaced:
        todo = unplaced
        place(lambda obj, e, image, ie: site_ok(obj, e, image, ie) or
              alt_ok(obj, e, image, ie), by_signature)
    for k, obj in enumerate(objects):
        if k in placed:
            for j, e in enumerate(obj.digest):
                ie = img[placed[k] + j]
                if k not in by_sites and not site_ok(obj, e, image, ie):
                    made = [_moved_site(obj, e, image, ie)]
                elif image.elf.type != ET_REL:  # addresses and linked code: images only
                    made = _compare_entry(obj, e, image, ie, syms, profile, reader)
                else:
                    continue
                if made and reported is not None:
                    reported.add(ie.index)
                findings += made
        elif k in unplaced:
            what = "the table is not in the image" if not img else \
                "not found in the image's table"
            for e in obj.digest:
                findings.append(finding(
                    "ALT013", f"entry is missing from the linked image ({what}; discarded by "
                    "the linker script or --gc-sections? keep the table with KEEP())",
                    obj.path, f"{e.table_section} entry {e.index} site "
                    f"{e.site_section}+{e.site_offset:#x}", entry=e.index))
    if unmatched is not None:
        unmatched.extend(i for i in range(len(img)) if i not in used)
    if placed_paths is not None:
        placed_paths.update(objects[k].path for k in placed)
    return findings


def _find_block(obj: ObjectRecord, image: Input, img: list[Entry], used: set[int], match,
                candidates, keys: list | None = None) -> int | None:
    """The first of the image positions ``candidates`` where the object's entries are, unused,
    as one block. ``keys`` (signature and site words of each image entry) finds a block that
    ``match`` would accept for its sites alone at C speed; ``match`` decides the others."""
    ents = obj.digest
    k = len(ents)
    first = _signature(ents[0])
    mine = None
    for i in candidates:
        if i + k > len(img) or _signature(img[i]) != first:
            continue
        if any(i + j in used for j in range(k)):
            continue
        if keys is not None:
            if mine is None:  # an undefined site (None) never matches
                mine = [(e.cap_raw, e.orig_len, e.alt_len, e.site_words) for e in ents] \
                    if all(e.site_words is not None for e in ents) else False
            if mine and keys[i:i + k] == mine:
                return i
        if all(_signature(e) == _signature(img[i + j]) and
               match(obj, e, image, img[i + j]) for j, e in enumerate(ents)):
            return i
    return None


def _words_at(image: Input, place, length: int) -> list[int | None] | None:
    """The words at a place of the output: by address in an image; by section and offset,
    masked where relocations remain, in a relocatable output (``ld -r``)."""
    if image.elf.type == ET_REL:
        if not place.defined or place.section_index >= len(image.elf.sections):
            return None
        if length == 0:
            return ()  # an empty site (an empty static entry): no words, none to differ
        return masked_words(image, place.section_index, place.offset, length) or None
    data = image.elf.read_addr(place.address, length) if place.address is not None else None
    if data is None or len(data) < length:
        return None
    return struct.unpack(f"<{length // 4}I", data[:length // 4 * 4])


def _words_match(want, got) -> bool:
    """The words agree where both are known (None: changed by a relocation)."""
    if got is None or len(got) < len(want):
        return False
    if None not in want and None not in got:  # the usual case, compared at C speed
        return tuple(got[:len(want)]) == tuple(want)
    return all(w is None or h is None or w == h for w, h in zip(want, got))


def _alt_matches(obj: Input, e: Entry, image: Input, ie: Entry, syms: _ImageSymbols,
                 profile) -> bool:
    """The entry's replacement (or callback) is the image entry's: evidence that the image
    entry is this one even where its site is not."""
    if profile.is_callback(e.cap_raw):
        if not e.alt.symbol:
            return False
        if image.elf.type == ET_REL:
            return ie.alt.symbol == e.alt.symbol
        return ie.alt.address in syms.addresses(e.alt.symbol)
    if not e.alt.defined or not e.alt_len:
        return False
    want = masked_words(obj, e.alt.section_index, e.alt.offset, e.alt_len)
    return bool(want) and _words_match(want, _words_at(image, ie.alt, e.alt_len))


def _moved_site(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry) -> Finding:
    """ALT013 for an entry that is in the image but whose site is not the object's code."""
    addr = ie.site.address
    where = f"{e.site_section}+{e.site_offset:#x}"
    if addr is None:  # a relocatable output
        msg = (f"site {where} is {ie.site.describe()} in the output, which does not hold the "
               "object's code for it")
        return finding("ALT013", msg, obj.path,
                       f"{e.table_section} entry {e.index} -> output entry {ie.index}",
                       entry=e.index)
    sec = image.elf.section_at(addr)
    if sec is None or not sec.executable:
        inside = f"in {sec.name}" if sec is not None else "outside every section"
        msg = (f"site {where} is at {addr:#x} in the image, {inside}: the linker discarded "
               f"{e.site_section} (a /DISCARD/ rule, or --gc-sections) but kept the entry, "
               "which now patches whatever is at that address")
    else:
        msg = (f"site {where} is at {addr:#x} in the image ({sec.name}), which does not hold "
               "the object's code for it")
        shared = [s.name for s in image.elf.sections if s.alloc and s.size and
                  s.type != SHT_NOBITS and s.addr <= addr < s.addr + s.size]
        if len(shared) > 1:  # (an OVERLAY: sections that share their addresses)
            msg += (f": {', '.join(shared)} share that address (an overlay), and a patcher "
                    "writes to whichever is loaded when it runs; keep alternative sites out "
                    "of overlays")
    return finding("ALT013", msg, obj.path,
                   f"{e.table_section} entry {e.index} -> image entry {ie.index}",
                   entry=e.index)


def members_linked(members: list[ElfFile], image: Input) -> set[str]:
    """The paths of the archive members among ``members`` that the linker pulled into
    ``image`` (``_member_linked``, as the cross-check decides it)."""
    syms = _ImageSymbols(image.elf, columns=False)  # (decoded: asked for a few members)
    return {m.path for m in members if _member_linked(Input.load(m), image, syms)}


def _member_linked(obj: Input, image: Input, syms: _ImageSymbols) -> bool:
    """Did the linker pull this archive member in? Yes when one of its global definitions is
    in the image with the member's own bytes there."""
    for s in obj.elf.symbols:
        if not s.name or s.bind == STB_LOCAL or not s.defined or s.type == STT_SECTION or \
                not 0 < s.shndx < len(obj.elf.sections):
            continue
        sec = obj.elf.sections[s.shndx]
        if not sec.alloc or sec.type == SHT_NOBITS:
            continue
        if image.elf.type == ET_REL and s.name in syms.globals:
            return True  # ld -r: names are all there is to go by
        for addr in syms.addresses(s.name):
            n = min(16, sec.size - s.value) // 4
            if n <= 0:
                continue
            want = masked_words(obj, s.shndx, s.value, 4 * n)
            if any(w is not None for w in want) and \
                    _words_match(want, _words_at(image, _Addr(addr), 4 * n)):
                return True
    return False


class _Addr(Frozen):
    """An address of an image, where a table Place is expected."""

    _fields = ("address", "defined")
    address: int
    defined: bool

    def __init__(self, address: int, defined: bool = True) -> None:
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "defined", defined)


class _PlaceReader:
    """Reads a linked image's code at a table entry's place through the section the place
    already names (``table._image_place`` found it by address, as ``ElfFile.read_addr`` would
    again): the same bytes as ``read_addr(place.address, size)``, without the lookup."""

    def __init__(self, elf: ElfFile) -> None:
        self.elf = elf
        self._secs: dict[int, tuple[bytes, int] | None] = {}
        self._fmt: dict[int, str] = {}

    def read(self, place, size: int) -> bytes | None:
        idx = place.section_index
        got = self._secs.get(idx, False)
        if got is False:
            sec = self.elf.sections[idx] if 0 < idx < len(self.elf.sections) else None
            got = self._secs[idx] = None if sec is None or sec.type == SHT_NOBITS or \
                not sec.alloc else (self.elf.section_data(sec), sec.size)
        if got is None or place.offset + size > got[1]:
            return None
        return got[0][place.offset:place.offset + size]

    def words(self, place, length: int) -> tuple | None:
        """``_words_at`` of an image."""
        data = self.read(place, length)
        if data is None or len(data) < length:
            return None
        fmt = self._fmt.get(length)
        if fmt is None:
            fmt = self._fmt[length] = f"<{length // 4}I"
        return struct.unpack(fmt, data[:length // 4 * 4])


def _by_name_columns(elf: ElfFile, wanted: set[str] | None = None
                     ) -> tuple[dict[str, int], dict[str, list[int]], dict[str, int]] | None:
    """``_ImageSymbols``' index from the symbol table's columns (``SymtabColumns``): the
    symbols kept picked with numpy, their names looked up in the string table split once
    (``elf.string_table``), the dicts made by ``zip``. Returns the last address of each name,
    every address of the names that occur more than once (static symbols of different files),
    and the globals; of the names in ``wanted`` only, where it is given. None where the
    columns cannot be read."""
    cols = SymtabColumns.columns(elf)
    if cols is None:
        return None
    np, rec = cols.np, cols.rec
    idx = np.flatnonzero((rec["shndx"] != 0) & cols.named())
    if wanted is not None:  # the symbols of those names only (a kernel's: 1,000 of 41,000)
        return _wanted_by_name(cols, idx, wanted)
    all_names = _symbol_names(cols, idx)
    all_values = rec["value"][idx].tolist()
    keep = (cols.typ[idx] != STT_SECTION).tolist()
    glob = (cols.bind[idx] != STB_LOCAL).tolist()
    return _by_name_dicts(all_names, all_values, keep, glob)


def _symbol_names(cols: SymtabColumns, idx) -> list[str]:
    """The names of the symbols at ``idx`` (named ones: their offsets in the string table),
    from the string table split once (``elf.string_table``)."""
    np = cols.np
    strings = string_table(cols.strtab)
    offs = cols.st_name[idx].tolist()
    all_names = list(map(strings.get, offs))
    if None in all_names:  # tails of longer names, where the linker shared the bytes: each
        starts = np.fromiter(strings, dtype=np.int64, count=len(strings))  # is inside the
        texts = list(strings.values())  # string that starts last before it (ascending keys)
        tails = [k for k, nm in enumerate(all_names) if nm is None]
        at = np.searchsorted(starts, np.array([offs[k] for k in tails]), side="right") - 1
        for k, j in zip(tails, at.tolist()):
            all_names[k] = texts[j][offs[k] - int(starts[j]):]
    return all_names


def _by_name_dicts(all_names: list[str], all_values: list[int], keep: list[bool],
                   glob: list[bool]) -> tuple[dict[str, int], dict[str, list[int]], dict[str, int]]:
    """``_by_name_columns``' dicts from the symbols' names, values, whether each is kept (not a
    section symbol) and whether it is global, in table order."""
    names, values = list(compress(all_names, keep)), list(compress(all_values, keep))
    last = dict(zip(names, values))
    many: dict[str, list[int]] = {}
    if len(last) < len(names):  # names more than once: every address, in table order
        twice = {n for n, c in Counter(names).items() if c > 1}
        for n, v in compress(zip(names, values), map(twice.__contains__, names)):
            many.setdefault(n, []).append(v)
    return last, many, dict(compress(zip(all_names, all_values), glob))


_KEY_WORDS = 3  # a name's key: its first 24 bytes
_LO, _HI = 0x0101010101010101, 0x8080808080808080
_MULT = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def _name_key(name: bytes) -> int:
    """``_wanted_by_name``'s key of one name, its top 16 bits: the name's first 24 bytes, 8 at
    a time (zeros past its end), mixed as the numpy side mixes them."""
    key = 0
    for j in range(_KEY_WORDS):
        key = (key * _MULT + int.from_bytes(name[8 * j:8 * j + 8], "little")) & _MASK64
    return (key * _MULT & _MASK64) >> 48


def _wanted_by_name(cols: SymtabColumns, idx, wanted: set[str]):
    """``_by_name_columns`` for the ``wanted`` names, without a name of the others made. Each
    symbol's name gets a 16-bit key from its first 24 bytes, read from the string table with
    numpy 8 at a time (up to its NUL, found by ``strlen``'s bit trick); only the symbols whose
    key is a wanted name's have their names read and compared (a kernel's 41,000 symbols: 3
    ms instead of 20)."""
    np = cols.np
    u64 = np.uint64
    # Every offset of the string table read as a little-endian word: the 8 bytes from there
    # (16 NULs follow the table, so a word never reads past the buffer).
    words = np.ndarray((cols.size + 1,), dtype="<u8", buffer=cols.text, strides=(1,))
    st = np.minimum(cols.st_name[idx], cols.size)
    key = np.zeros(len(st), dtype=u64)
    live = np.ones(len(st), dtype=bool)  # no NUL yet in the name's words before this one
    for j in range(_KEY_WORDS):
        w = words[np.minimum(st + 8 * j, cols.size)] if j else words[st]
        if j:
            w[~live] = 0
        zero = (w - u64(_LO)) & ~w & u64(_HI)  # the high bit of each NUL byte (and above)
        low = zero & (~zero + u64(1))  # the first NUL's high bit; 0 where there is none
        w &= (low >> u64(7)) - u64(1)  # the bytes before the NUL (all 8 where none)
        live &= zero == 0
        key *= u64(_MULT)
        key += w
    key *= u64(_MULT)
    table = np.zeros(1 << 16, dtype=bool)
    table[[_name_key(n.encode()) for n in wanted if n.isascii()]] = True
    sel = np.flatnonzero(table[(key >> u64(48)).astype(np.intp)])
    strtab, find = cols.strtab, cols.strtab.find
    names = []
    for a in st[sel].tolist():
        end = find(b"\0", a)
        names.append(strtab[a:end if end >= 0 else len(strtab)].decode("ascii"))
    hit = list(map(wanted.__contains__, names))
    rows = idx[sel]
    return _by_name_dicts(list(compress(names, hit)),
                          list(compress(cols.rec["value"][rows].tolist(), hit)),
                          list(compress((cols.typ[rows] != STT_SECTION).tolist(), hit)),
                          list(compress((cols.bind[rows] != STB_LOCAL).tolist(), hit)))


_MISSING = object()

# The symbols from which the cross-check of a large table (``_cross_check_arrays``) indexes
# the image's symbols from the table's columns, rather than decoding every symbol.
ARRAYS_COLUMNS_FROM_SYMBOLS = 2_000


class _Globals:
    """``_ImageSymbols.globals``: the value of each global by name (``get``, ``in``, ``[]``),
    the whole index read first where a name outside those read is asked for."""

    def __init__(self, syms: _ImageSymbols) -> None:
        self._syms = syms

    def get(self, name: str, default=None):
        got = self._syms._global(name)
        return default if got is _MISSING else got

    def __contains__(self, name: str) -> bool:
        return self._syms._global(name) is not _MISSING

    def __getitem__(self, name: str) -> int:
        got = self._syms._global(name)
        if got is _MISSING:
            raise KeyError(name)
        return got


class _ImageSymbols:
    """The image's defined symbols by name (not section symbols, not nameless ones): every
    address of a name, in table order (``addresses``), the value of each global
    (``globals``), the names at an address (``names_at``).

    ``columns`` (None: where it pays, ``symbols.columns_pay``: a large table not decoded yet,
    numpy loaded) reads them from the table's columns (``_by_name_columns``) without decoding
    a symbol, and there, with ``wanted``, the symbols of those names only: a name outside them
    asked for reads the rest first (``_complete``). Else from the decoded symbols, one by one
    (the reference the tests compare with). A kernel's 41,000 symbols: 60 ms decoded and
    indexed, 28 ms from the columns, 15 ms for the names the cross-check asks for."""

    wrapped: frozenset[str] = frozenset()  # the names the link wraps (``cross_check``)

    def __init__(self, elf: ElfFile, columns: bool | None = None,
                 wanted: set[str] | None = None) -> None:
        self.elf = elf
        self._names: dict[int, list[str]] | None = None
        self.globals = _Globals(self)
        self._wanted: set[str] | None = None
        got = _by_name_columns(elf, wanted) \
            if (columns_pay(elf) if columns is None else columns) else None
        if got is not None:
            self._last, self._many, self._globals = got
            self._wanted = wanted
            return
        by_name: dict[str, list[int]] = {}
        # s.shndx, not the property s.defined: every symbol of the image passes here
        for s in elf.symbols:
            if s.shndx and s.name and s.type != STT_SECTION:
                by_name.setdefault(s.name, []).append(s.value)
        self._last, self._many = {}, by_name
        self._globals = {s.name: s.value for s in elf.symbols
                         if s.shndx and s.name and s.bind != STB_LOCAL}

    @classmethod
    def of_index(cls, elf: ElfFile, got: tuple, wanted: set[str]) -> _ImageSymbols:
        """The symbols of the names ``wanted`` alone, whose index (``_by_name_dicts``' of
        those names' symbols, in the table's order) is ``got``, as ``wanted`` makes it from
        the columns; another name asked reads the rest (``_complete``)."""
        self = cls.__new__(cls)
        self.elf = elf
        self._names = None
        self.globals = _Globals(self)
        self._last, self._many, self._globals = got
        self._wanted = wanted
        return self

    def _complete(self) -> None:
        """The index of every name, where only the wanted ones were read."""
        self._last, self._many, self._globals = _by_name_columns(self.elf)  # type: ignore
        self._wanted = None

    def _global(self, name: str):
        if self._wanted is not None and name not in self._wanted:
            self._complete()
        return self._globals.get(name, _MISSING)

    def addresses(self, name: str) -> list[int]:
        if self._wanted is not None and name not in self._wanted:
            self._complete()
        got = self._many.get(name)
        if got is not None:
            return got
        value = self._last.get(name)
        return [] if value is None else [value]

    @property
    def by_name(self) -> dict[str, list[int]]:
        """Every name and its addresses, in table order (for the tests)."""
        if self._wanted is not None:
            self._complete()
        out = {n: [v] for n, v in self._last.items()}
        out.update(self._many)
        return out

    def names_at(self, addr: int) -> list[str]:
        if self._names is None:
            self._names = {}
            for name, addrs in self.by_name.items():  # (rare: a possible stub's names)
                for a in addrs:
                    self._names.setdefault(a, []).append(name)
        return self._names.get(addr, [])


def _compare_entry(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry,
                   syms: _ImageSymbols, profile, reader: _PlaceReader | None = None
                   ) -> list[Finding]:
    out: list[Finding] = []
    addr = ie.site.address
    anchor = e.site_anchor
    if anchor is not None and not _anchored_at(anchor, syms, addr):
        want = expected(anchor, syms)
        out.append(finding("ALT013", f"site is at {addr:#x} in the image, but "
                           f"{e.site_section}+{e.site_offset:#x} was linked at "
                           f"{min(want):#x}", obj.path, _place(e, ie), entry=e.index))
    if profile.is_callback(e.cap_raw):
        if e.alt_symbol and not e.alt_defined:
            got = syms.globals.get(e.alt_symbol)
            if got is not None and got != ie.alt.address and \
                    ie.alt.address not in _wrapped_at(e.alt_symbol, syms):
                out.append(finding("ALT013", f"callback {e.alt_symbol} is at {got:#x}, but the "
                                   f"image entry points at {ie.alt.address:#x}", obj.path,
                                   _place(e, ie), entry=e.index))
        return out
    if not e.alt_defined or ie.alt.address is None or e.alt_words is None:
        return out
    out += _compare_replacement(obj, e, image, ie, syms, None, reader)
    return out


def _place(e: EntryDigest, ie: Entry) -> str:
    """Where a cross-check finding is: the object's entry and the image's."""
    return f"{e.table_section} entry {e.index} -> image entry {ie.index}"


def _anchored_at(anchor, syms: _ImageSymbols, addr: int | None) -> bool:
    """Whether ``addr`` is where the image put the anchored place, or the image does not say
    (``expected`` empty): ``expected``'s answer without making its set (40,000 entries)."""
    name, is_global, delta = anchor
    if is_global:
        got = syms.globals.get(name)
        if got is not None:
            return addr == got + delta
    addrs = syms.addresses(name)
    if not addrs:
        return True
    return addr is not None and addr - delta in addrs


def _looks_like_stub(image: Input, syms: _ImageSymbols, addr: int) -> bool:
    """Code the linker made at ``addr`` (``insn.is_linker_stub``)."""
    elf = image.elf
    return insn.is_linker_stub(syms.names_at(addr),
                               elf.read_addr(addr, 12) or elf.read_addr(addr, 8))


def _branch_targets(t: Target, syms: _ImageSymbols) -> set[int]:
    """The image addresses a relocated branch of an object was meant to reach (empty when
    the image does not say)."""
    if t.global_name is not None and t.global_name in syms.globals:
        return {syms.globals[t.global_name] + t.addend,
                *(a + t.addend for a in _wrapped_at(t.global_name, syms))}
    return expected(t.anchor, syms)


def _wrapped_at(name: str, syms: _ImageSymbols) -> tuple[int, ...]:
    """Where ``--wrap`` may have sent a reference to ``name`` in the image: ``__wrap_NAME``'s
    address (GNU ld and gold for a name the object leaves undefined; ld.lld for any
    reference through the symbol), or NAME's for ``__real_NAME``."""
    if not syms.wrapped:
        return ()
    from altlink.linkcmd import linked_name

    other = linked_name(name, syms.wrapped)
    got = syms.globals.get(other) if other != name else None
    return () if got is None else (got,)


def _compare_replacement(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry,
                         syms: _ImageSymbols, place: str | None,
                         reader: _PlaceReader | None = None) -> list[Finding]:
    """Re-read the replacement as linked: the linker may have rewritten it (ALT016).
    ``place``: where its findings are (None: ``_place``, made when one is)."""
    out: list[Finding] = []
    words = e.alt_words
    n = len(words)
    got = reader.read(ie.alt, 4 * n) if reader is not None else \
        image.elf.read_addr(ie.alt.address, 4 * n)
    if got is None or len(got) < 4 * n:
        out.append(finding("ALT013", "replacement is not in the image's contents", obj.path,
                           place or _place(e, ie), entry=e.index))
        return out
    linked = struct.unpack(f"<{n}I", got)
    if linked == tuple(words) and not any(e.alt_relocs):
        return out  # the usual case: no relocated word, the object's code unchanged
    place = place or _place(e, ie)
    for i, (w, lw, r) in enumerate(zip(words, linked, e.alt_relocs)):
        pc = ie.alt.address + 4 * i
        if r is None:
            if w != lw:
                out.append(finding("ALT016", f"the linker rewrote replacement instruction {i}: "
                                   f"{word_text(w, pc)} became {word_text(lw, pc)}", obj.path,
                                   place, entry=e.index))
            continue
        before, after = insn.decode(w), insn.decode(lw)
        if before.kind != after.kind or before.name != after.name:
            out.append(finding("ALT016", f"the linker turned replacement instruction {i} "
                               f"({mnemonic(w)}) into {word_text(lw, pc)}: an erratum fix or "
                               "relaxation, which is not valid once the code moves", obj.path,
                               place, entry=e.index))
            continue
        if after.kind == "branch26" and isinstance(r, Target):
            tgt = insn.target(lw, pc)
            if tgt is None:
                continue
            want = _branch_targets(r, syms)
            if (tgt not in want) if want else _looks_like_stub(image, syms, tgt):
                to = f"{r.name} at {min(want):#x}" if want else r.name
                out.append(finding(
                    "ALT016", f"replacement instruction {i} branches to {tgt:#x}, not to "
                    f"{to}: the linker redirected it through a veneer or stub, which is not "
                    "reachable once the code moves (place the target within 128 MiB of the "
                    "replacement and of the site)", obj.path, place, entry=e.index))
    return out


# -- the whole link set at once ---------------------------------------------------------------

# The image entries from which ``cross_check`` compares the records with the image as arrays
# (``_cross_check_arrays``), where numpy is loaded (a link of as many entries imports it
# while its linker runs) and the table was read as columns.
ARRAYS_FROM_ENTRIES = NUMPY_FROM_ENTRIES

_MASK64 = (1 << 64) - 1


def _cross_check_arrays(objects: list[ObjectRecord], image: Input, profile,
                        reported: set[int] | None, asked: set[str] | None,
                        packs: list | RecordColumns | None = None,
                        wrapped: frozenset[str] = frozenset(),
                        unmatched: list[int] | None = None,
                        placed_paths: set[str] | None = None) -> list[Finding] | None:
    """``cross_check`` of a linked image whose table holds every object's block where the
    objects are, in their order (a link's usual table), decided for all entries at once:
    the records' packed columns end to end (``records.packed_columns_of``; their arrays,
    ``RecordColumns.arrays``, made from the records alone) against the image's table columns
    (``Table.columns``) and the words at their places. Each block is placed where the
    reference's first candidate is (its first site anchored there, every signature and known
    site word the image's), so the placement is the reference's; then each entry's anchor,
    callback and replacement words are compared as arrays, and an entry where any of them
    differs, or that they cannot decide (a relocated word but a branch to a named place, a
    name with several addresses), is compared by ``_compare_entry``, the reference. None
    where any block is not where the array compare looks for it (the caller places them one
    by one)."""
    import numpy as np

    table = image.table
    tab = table.columns
    if tab is None or len(tab["cap"]) != table.size:
        return None
    rc = packs if type(packs) is RecordColumns and len(packs.packs) == len(objects) else \
        RecordColumns((packs or []) + packed_columns_of(objects[len(packs or []):]))
    ns, n = rc.ns, rc.n
    if n == 0 or n > table.size:
        return None
    ra = rc.arrays(profile)
    if ra is None:  # a number no table holds: the reference decides
        return None
    if not (np.array_equal(ra.cap, tab["cap"][:n]) and
            np.array_equal(ra.olen, tab["orig_len"][:n]) and
            np.array_equal(ra.alen, tab["alt_len"][:n])):
        return None
    # Every site's words: known where the record knows them, as the image has them.
    if not ra.sites_whole:  # an undefined site, or words cut short
        return None
    elf = image.elf
    sizes = _readable_sizes(elf)
    site_sec, site_off = tab["site_sec"][:n], tab["site_off"][:n].astype(np.int64)
    if not np.all(site_off + ra.olen <= sizes[site_sec]):
        return None
    same = ra.site_want == _gather_words(np, elf, site_sec, site_off, ra.scount)
    if ra.site_unknown is not None:
        same |= ra.site_unknown
    if not same.all():
        return None
    if ra.deltas is None:
        return None
    # Each site where its anchor says (the reference's ``_anchored_at``), from the image's
    # symbols of the names the records ask for (``_KeyedNames``); a block's first site
    # decides where the reference looks for it.
    site_addr = tab["site_addr"][:n]
    named = _KeyedNames.of(np, elf, ra, wrapped)
    anchored = _anchors_hold(np, named, ra, site_addr)
    if not anchored[ra.firsts].all():
        return None
    # Now every block is where the reference places it: compare each entry.
    flagged = ~anchored
    alt_addr = tab["alt_addr"][:n]
    # a callback named but not defined in its object: where the image's global is
    if ra.cb_at is not None:
        value, has = _globals_of(np, named.syms(), ra.cb_names)
        flagged[ra.cb_at] |= has & (value != alt_addr[ra.cb_at])
    # a replacement: its words as the image has them, unchanged where nothing relocates them
    alt_sec, alt_off = tab["alt_sec"][:n], tab["alt_off"][:n].astype(np.int64)
    fits = alt_off + 4 * ra.words_n <= sizes[alt_sec]
    rw = ra.replacements
    if not fits[ra.compare].all():  # (a replacement past its section's bytes: rare)
        flagged |= ra.compare & ~fits
        rw = _ReplacementWords(np, ra.compare & fits, ra.words_n, rc.alt_bytes, rc.alt_marks,
                               rc.every_target)
    _compare_replacements(np, elf, named, rw, alt_sec, alt_off, alt_addr, flagged)
    if unmatched is not None:  # (the blocks end to end from the table's start)
        unmatched.extend(range(n, table.size))
    if placed_paths is not None:
        placed_paths.update(o.path for o, k in zip(objects, ns) if k)
    findings: list[Finding] = []
    if not flagged.any():
        return findings
    # The entries the arrays could not pass: each compared by the reference.
    syms = named.syms()
    reader = _PlaceReader(elf)
    ends = np.cumsum(ns)
    for r in np.flatnonzero(flagged).tolist():
        k = int(np.searchsorted(ends, r, side="right"))
        obj = objects[k]
        e = digest_alone(obj)[r - (int(ends[k]) - ns[k])]
        ie = table.entry(r)
        made = _compare_entry(obj, e, image, ie, syms, profile, reader)
        if made and reported is not None:
            reported.add(ie.index)
        findings += made
    return findings


# The records whose packed columns ``packed_columns_early`` reads at a time, between two looks
# at its linker (about 5 ms of 2,002 synthetic objects' 40 ms).
EARLY_PACKS_CHUNK = 256


def packed_columns_early(objects: list[ObjectRecord], running) -> list | RecordColumns:
    """``packed_columns_of`` of the first of ``objects``, read a chunk at a time while
    ``running()`` (a link's linker): what the array compare asks of the records, made while
    the linker runs; the rest is left to the cross-check, so that a linker that ends first
    does not wait for it. All of them read with the linker still running: their
    ``RecordColumns``."""
    out: list = []
    for k in range(0, len(objects), EARLY_PACKS_CHUNK):
        if not running():
            return out
        out += packed_columns_of(objects[k:k + EARLY_PACKS_CHUNK])
    if not running():
        return out
    got = RecordColumns(out)
    got.asked  # noqa: B018 - made now
    return got


class RecordColumns:
    """The records' side of the array compare: their packed columns (``packed_columns_of``)
    end to end, and what it reads of them that the image does not decide, made from the
    records alone (a link makes it while its linker runs)."""

    def __init__(self, packs: list) -> None:
        chain = itertools.chain.from_iterable
        self.packs = packs
        self.ns = [len(s[0]) for s, _ in packs]
        self.n = sum(self.ns)
        self.summaries = [s for s, _ in packs]
        (_, _, _, self.site_count, self.site_bytes, self.site_known, anchor_name,
         self.anchor_global, self.anchor_delta, alt_symbol, self.alt_defined, self.alt_count,
         self.alt_bytes, self.alt_marks, targets) = \
            list(zip(*(c for _, c in packs))) or [()] * len(_PACKED)
        self.names = list(chain(anchor_name))
        self.symbols = list(chain(alt_symbol))
        self.every_target = list(chain(targets))

    _arrays: tuple | None = None  # (profile, its ``_RecordArrays``)

    def arrays(self, profile) -> _RecordArrays | None:
        """What the array compare reads of the records as numpy arrays (``_RecordArrays``),
        made once for ``profile`` (a link makes them while its linker runs); None where a
        number does not fit them (the reference decides)."""
        got = self._arrays
        if got is None or got[0] != profile:
            import numpy as np

            made = _RecordArrays(np, self, profile)
            got = self._arrays = (profile, made if made.fine else None)
        return got[1]

    @cached_property
    def asked(self) -> set[str]:
        """``names_asked``'s, from the columns."""
        asked = set(self.names) | {s for s in self.symbols if s}
        asked.discard(None)
        for t in self.every_target:
            if t[1] is not None:
                asked.add(t[1])
            if t[3] is not None:
                asked.add(t[3][0])
        return asked


class _RecordArrays:
    """``RecordColumns``' arrays for ``_cross_check_arrays``, of the records alone (and the
    profile, which says which entries are callbacks): the signatures, the sites' words and
    counts, the anchors (each entry's name as a position in ``keys``, the distinct names),
    the callbacks named but not defined, the replacements compared and their words
    (``_ReplacementWords``). ``fine`` is False where a number does not fit them (a
    capability or length past 64 bits, an anchor's delta past 64 bits)."""

    def __init__(self, np, rc: RecordColumns, profile) -> None:
        chain = itertools.chain.from_iterable
        n = rc.n
        self.fine = False
        summaries = rc.summaries
        try:
            self.cap = np.fromiter(chain(s[1] for s in summaries), dtype=np.int64, count=n)
            self.olen = np.fromiter(chain(s[2] for s in summaries), dtype=np.int64, count=n)
            self.alen = np.fromiter(chain(s[3] for s in summaries), dtype=np.int64, count=n)
        except (OverflowError, ValueError):
            return
        if not all(type(d) is bytes for d in rc.anchor_delta):
            return
        self.scount = np.frombuffer(b"".join(rc.site_count), dtype=np.uint8
                                    ).astype(np.int64) - 1
        self.sites_whole = bool(np.array_equal(self.scount, self.olen // 4))
        self.site_want = np.frombuffer(b"".join(rc.site_bytes), dtype="<u4")
        self.site_unknown = None
        if any(rc.site_known):
            self.site_unknown = np.frombuffer(
                b"".join(k or b"\1" * (len(w) // 4) for k, w in zip(rc.site_known,
                                                                    rc.site_bytes)),
                dtype=np.uint8) == 0
        self.deltas = np.frombuffer(b"".join(rc.anchor_delta), dtype="<u8")
        self.is_global = np.frombuffer(b"".join(rc.anchor_global), dtype=np.uint8) == 1
        # the anchors' names: each entry's as a position in ``keys`` (len(keys): none)
        names = self.names = rc.names
        keys = list(dict.fromkeys(names))
        if None in keys:
            keys.remove(None)
        self.keys = keys
        pos = dict(zip(keys, range(len(keys))))
        pos[None] = len(keys)
        self.ids = np.fromiter(map(pos.__getitem__, names), dtype=np.int64, count=n)
        ns = rc.ns
        self.firsts = np.cumsum([0, *ns[:-1]])[np.array(ns) > 0] if ns else \
            np.zeros(0, dtype=np.int64)
        # the callbacks: those named but not defined in their object
        self.is_cb = is_cb = callback_mask(profile, self.cap)
        self.defined = defined = np.frombuffer(b"".join(rc.alt_defined), dtype=np.uint8) == 1
        symbols = rc.symbols
        cb_named = is_cb & ~defined & np.array([bool(s) for s in symbols], dtype=bool)
        self.cb_at = self.cb_names = None
        if cb_named.any():
            self.cb_at = np.flatnonzero(cb_named)
            self.cb_names = [symbols[i] for i in self.cb_at.tolist()]
        # the replacements compared: defined in their object, of some words
        acount = np.frombuffer(b"".join(rc.alt_count), dtype=np.uint8).astype(np.int64)
        self.compare = ~is_cb & defined & (acount > 0)
        self.words_n = np.where(acount > 0, acount - 1, 0)
        self.replacements = _ReplacementWords(np, self.compare, self.words_n, rc.alt_bytes,
                                              rc.alt_marks, rc.every_target)
        # the names asked of the image beside the anchors': the callbacks' and the targets'
        side = set(self.cb_names or ())
        for t in rc.every_target:
            if t[1] is not None:
                side.add(t[1])
            if t[3] is not None:
                side.add(t[3][0])
        self.side = side
        self.fine = True


class _ReplacementWords:
    """The records' side of ``_compare_replacements`` for the replacements ``compare``
    (their ``words_n`` words each): where each word compared is (its entry, its place in
    the replacement), the records' word, and the relocated ones (mark 1, or 2: a branch,
    whose ``Target``, one of the records' ``every_target``, is ``targets[target_of]``)."""

    def __init__(self, np, compare, words_n, alt_bytes, alt_marks, every_target: list
                 ) -> None:
        counts = self.counts = np.where(compare, words_n, 0)
        want_all = np.frombuffer(b"".join(alt_bytes), dtype="<u4")
        # the records' words of every replacement (callbacks' too: they hold none), and of
        # those compared
        first_all = np.cumsum(words_n) - words_n
        entry = self.entry = np.repeat(np.arange(len(counts)), counts)
        first = np.cumsum(counts) - counts
        within = self.within = np.arange(int(counts.sum())) - first[entry]
        rec_at = first_all[entry] + within
        self.want = want_all[rec_at]
        self.moved = None
        if any(alt_marks):
            marks_all = np.frombuffer(b"".join(m or bytes(len(w) // 4)
                                               for m, w in zip(alt_marks, alt_bytes)),
                                      dtype=np.uint8)
            marks = marks_all[rec_at]
            self.moved = marks != 0
            self.branch = np.flatnonzero(marks == 2)
            # the Target of each mark 2, in order over all the records, as a position among
            # the distinct ones (``targets``: the image is asked of each once)
            tnum = (np.cumsum(marks_all == 2) - 1)[rec_at][self.branch]
            distinct = dict.fromkeys(every_target[k] for k in tnum.tolist())
            self.targets = list(distinct)
            at = dict(zip(self.targets, range(len(self.targets))))
            self.target_of = np.fromiter((at[every_target[k]] for k in tnum.tolist()),
                                         dtype=np.int64, count=len(tnum))


class _KeyedNames:
    """The image's symbols of the records' anchor names (``_RecordArrays.keys``), as arrays
    by key (the last, ``len(keys)``, no anchor): the value of its global (``gval``, where
    ``ghas``), how many defined symbols (not section symbols) have the name (``acount``)
    and the address of the one where there is one (``aval``); ``_anchors_hold`` reads them.
    ``syms()``: the ``_ImageSymbols`` of the reference's questions, made when first asked."""

    def __init__(self, np, m: int) -> None:
        self.gval = np.zeros(m, dtype=np.uint64)  # (symbols' values: 64-bit numbers)
        self.ghas = np.zeros(m, dtype=bool)
        self.aval = np.zeros(m, dtype=np.uint64)
        self.acount = np.zeros(m, dtype=np.int64)
        self._syms: _ImageSymbols | None = None
        self._make_syms = None

    def syms(self) -> _ImageSymbols:
        if self._syms is None:
            self._syms = self._make_syms()
        return self._syms

    @classmethod
    def of(cls, np, elf: ElfFile, ra: _RecordArrays, wrapped: frozenset[str]) -> _KeyedNames:
        """From the symbol table's columns where they pay (``ARRAYS_COLUMNS_FROM_SYMBOLS``):
        each symbol's name decoded once and looked up among the keys, the arrays made by
        numpy, and ``syms()`` the index of ``ra.side``'s names alone (another name asked
        reads the rest, ``_ImageSymbols._complete``). Else from ``_ImageSymbols``' whole
        index, a key at a time."""
        keys = ra.keys
        out = cls(np, len(keys) + 1)
        if columns_pay(elf, ARRAYS_COLUMNS_FROM_SYMBOLS) and out._from_columns(np, elf, ra):
            out._syms = None
        else:
            syms = _ImageSymbols(elf, columns_pay(elf, ARRAYS_COLUMNS_FROM_SYMBOLS))
            get, addresses = syms._globals.get, syms.addresses
            if syms._wanted is not None:  # (never: made without ``wanted``)
                get = syms.globals.get
            values = list(map(get, keys))
            has = [(k, g) for k, g in enumerate(values) if g is not None]
            if has:
                k, g = zip(*has)
                out.gval[list(k)], out.ghas[list(k)] = g, True
            found = list(map(addresses, keys))
            out.acount[:len(keys)] = list(map(len, found))
            one = [(k, a[0]) for k, a in enumerate(found) if len(a) == 1]
            if one:
                k, a = zip(*one)
                out.aval[list(k)] = a
            out._syms = syms
        if out._syms is not None:
            out._syms.wrapped = wrapped
        else:
            make = out._make_syms

            def made() -> _ImageSymbols:
                syms = make()
                syms.wrapped = wrapped
                return syms

            out._make_syms = made
        return out

    def _from_columns(self, np, elf: ElfFile, ra: _RecordArrays) -> bool:
        cols = SymtabColumns.columns(elf)
        if cols is None:
            return False
        rec = cols.rec
        idx = np.flatnonzero((rec["shndx"] != 0) & cols.named())
        all_names = _symbol_names(cols, idx)
        keys, side = ra.keys, ra.side
        # every name asked: the anchors' (the keys), then the others (``side``)
        pos = dict(zip(keys, range(len(keys))))
        m = len(keys)
        extra = [name for name in side if name not in pos]
        pos.update(zip(extra, range(m + 1, m + 1 + len(extra))))
        key = np.fromiter(map(pos.get, all_names, itertools.repeat(-1)), dtype=np.int64,
                          count=len(all_names))
        values = rec["value"][idx]
        kept = cols.typ[idx] != STT_SECTION
        glob = cols.bind[idx] != STB_LOCAL
        anchor = (key >= 0) & (key < m)
        # how many symbols of each name (not section symbols), and the one's address
        sel = np.flatnonzero(anchor & kept)
        self.acount[:m] = np.bincount(key[sel], minlength=m)[:m]
        one = sel[self.acount[key[sel]] == 1]
        self.aval[key[one]] = values[one]
        # each name's global: the last in the table's order, as a dict made in order keeps
        sel = np.flatnonzero(anchor & glob)
        if len(sel):
            k = key[sel]
            order = np.argsort(k, kind="stable")
            k, sel = k[order], sel[order]
            last = np.flatnonzero(np.append(k[1:] != k[:-1], True))
            self.gval[k[last]] = values[sel[last]]
            self.ghas[k[last]] = True
        # the index the reference asks of: the side names' symbols, in the table's order
        in_side = np.zeros(m + 1 + len(extra), dtype=bool)
        for name in side:
            in_side[pos[name]] = True
        at = np.flatnonzero((key >= 0) & in_side[np.maximum(key, 0)]).tolist()
        side_names = [all_names[i] for i in at]
        rows = idx[at]

        def make() -> _ImageSymbols:
            got = _by_name_dicts(side_names, rec["value"][rows].tolist(),
                                 (cols.typ[rows] != STT_SECTION).tolist(),
                                 (cols.bind[rows] != STB_LOCAL).tolist())
            return _ImageSymbols.of_index(elf, got, set(side))

        self._make_syms = make
        return True


def _readable_sizes(elf: ElfFile):
    """For each section index, how many bytes of it ``_PlaceReader.read`` reads (-1: none
    read, not even nothing: no section, or one without contents in memory)."""
    import numpy as np

    out = np.full(max(len(elf.sections), 1), -1, dtype=np.int64)
    for k, sec in enumerate(elf.sections):
        if 0 < k and sec.alloc and sec.type != SHT_NOBITS:
            out[k] = min(sec.size, len(elf.section_data(sec)))
    return out


def _gather_words(np, elf: ElfFile, secs, offsets, counts):
    """The little-endian words of each entry's place (``counts`` words from ``offsets`` in
    the sections ``secs``, all within their readable bytes), end to end."""
    total = int(counts.sum())
    out = np.zeros(total, dtype=np.uint32)
    if not total:
        return out
    entry = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    at = offsets[entry].astype(np.int64) + 4 * (np.arange(total) - first[entry])
    where = secs[entry]
    for s in np.flatnonzero(np.bincount(where)).tolist():  # (np.unique imports numpy.ma)
        sel = np.flatnonzero(where == s)
        data = np.frombuffer(elf.section_data(elf.sections[s]), dtype=np.uint8)
        b = data[at[sel][:, None] + np.arange(4)].astype(np.uint32)
        out[sel] = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
    return out


def _globals_of(np, syms: _ImageSymbols, names: list[str]):
    """The image's global value of each name (a symbol's 64-bit value), and whether it has
    one."""
    get = syms.globals.get
    values = {name: get(name) for name in dict.fromkeys(names)}
    got = [values[n] for n in names]
    return (np.array([0 if v is None else v for v in got], dtype=np.uint64),
            np.array([v is not None for v in got], dtype=bool))


def _anchors_hold(np, named: _KeyedNames, ra: _RecordArrays, addr):
    """``_anchored_at`` of each entry's anchor (none: it holds) at its image site's address,
    for all at once: a name's global value or its one address plus the delta
    (``_KeyedNames``' arrays); a name with several addresses asked of ``_anchored_at``
    itself."""
    ids, is_global, deltas = ra.ids, ra.is_global, ra.deltas
    none = ids == len(ra.keys)
    by_global = is_global & named.ghas[ids] & ~none
    base = np.where(by_global, named.gval[ids], named.aval[ids])
    to = base + deltas
    hit = (to >= base) & (to == addr)
    acount = named.acount[ids]
    ok = none | np.where(by_global, hit, (acount == 0) | ((acount == 1) & hit))
    hard = ~none & ~ok & ~by_global & (acount > 1)
    if hard.any():
        syms = named.syms()
        for r in np.flatnonzero(hard).tolist():
            ok[r] = _anchored_at(Anchor(ra.names[r], bool(is_global[r]), int(deltas[r])),
                                 syms, int(addr[r]))
    return ok


def _compare_replacements(np, elf, named: _KeyedNames, rw: _ReplacementWords, alt_sec,
                          alt_off, alt_addr, flagged) -> None:
    """``_compare_replacement``'s verdict on each replacement ``rw`` compares, as arrays: the
    replacement's words as the image has them are the object's, but where a relocation
    falls: there, a B or BL the linker left a B or BL to where its ``Target`` says (one
    address); anything else there is flagged for the reference (``flagged``, set in place)."""
    got = _gather_words(np, elf, alt_sec, alt_off, rw.counts)
    differs = rw.want != got
    if rw.moved is not None:
        ok = np.zeros(len(got), dtype=bool)
        branch = rw.branch
        if len(branch):
            w, lw = rw.want[branch], got[branch]
            same_op = ((w >> 26) == (lw >> 26)) & (((w >> 26) & 0x1F) == 5)
            imm = (lw & 0x3FFFFFF).astype(np.int64)
            imm = np.where(imm >= 1 << 25, imm - (1 << 26), imm) * 4
            pc = alt_addr[rw.entry[branch]] + (4 * rw.within[branch]).astype(np.uint64)
            tgt = pc + imm.astype(np.uint64)  # wraps as the reference's & MASK64
            aim, single = _target_addresses(np, named.syms(), rw.targets)
            ok[branch] = same_op & single[rw.target_of] & (tgt == aim[rw.target_of])
        differs = np.where(rw.moved, ~ok, differs)
    bad = np.zeros(len(rw.counts), dtype=bool)
    np.logical_or.at(bad, rw.entry[differs], True)
    flagged |= bad


def _target_addresses(np, syms: _ImageSymbols, targets: list):
    """The one address each ``Target`` of ``targets`` (``records._pack_columns``' tuples) is
    meant to reach (``_branch_targets``), and whether it is one address (not none, not
    several, within 64 bits)."""
    aims = []
    for name, global_name, addend, anchor in targets:
        want = _branch_targets(Target(name, global_name, addend,
                                      None if anchor is None else Anchor(*anchor)), syms)
        aims.append(next(iter(want)) if len(want) == 1 and 0 <= next(iter(want)) <= _MASK64
                    else -1)
    aim = np.array([a if a >= 0 else 0 for a in aims], dtype=np.uint64)
    return aim, np.array([a >= 0 for a in aims], dtype=bool)
