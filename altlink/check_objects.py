"""The objects' phase: what one object alone decides, before any link. Its entries' checks
(``check_entries``), the sites they share, and the branches into replacements the object
already fixes (ALT017). A callback the object leaves undefined is a ``Deferred`` here, which the
link set resolves (``check_linkset``). ``records.make_record`` keeps the result."""
from __future__ import annotations

import struct
from bisect import bisect_right
from functools import partial

from altlink import branches, insn, mapsyms, speedups
from altlink.check_core import Checks, cap_facts, facts_of
from altlink.check_entries import check_entry, check_overlaps
from altlink.elf import SHF_EXECINSTR, SHT_NOBITS, SHT_RELA, STB_WEAK, Reloc, Section
from altlink.findings import Deferred, Finding
from altlink.linkset import Input, Options
from altlink.table import REPLACEMENT_SECTION, Entry
from altlink.values import replace


def check_object(inp: Input, options: Options) -> list[Finding | Deferred]:
    """The findings of one object under resolved options (the profile's NCAPS known,
    ``options.module`` saying whether its link set is a module), in the order they are made;
    its table's own findings (``inp.table.findings``) are not among them."""
    # A module is one link set: the module structure in the object makes it the module's.
    if not options.module and inp.is_module:
        options = replace(options, module=True)
    ck = Checks(options)
    object_checks(ck, inp)
    return ck.findings


def object_checks(ck: Checks, inp: Input, fast: bool = True) -> None:
    """The object's checks, added to ``ck``. ``check_entry`` runs on the entries
    ``may_find`` keeps (an undefined callback that is otherwise fine is its ``Deferred``
    alone), and the overlap check where one sort of the sites finds two sharing a byte;
    ``fast=False``, the reference, runs both on every entry."""
    entries = inp.table.entries
    rels: dict = {}  # the sections' ``_rela_parts``, read once for both
    if fast:
        for pos, deferred in may_find(ck, inp, rels):
            if deferred:
                ck.findings.append(Deferred(pos, entries[pos].alt.symbol or ""))
            else:
                check_entry(ck, inp, pos, entries[pos])
    else:
        for pos, e in enumerate(entries):
            check_entry(ck, inp, pos, e)
    if ck.wanted("ALT010"):
        check_overlaps(ck, inp, fast)
    if ck.wanted("ALT017"):
        check_object_branches(ck, inp, fast=fast, rels=rels)


def may_find(ck: Checks, inp: Input, rels: dict | None = None) -> list[tuple[int, bool]]:
    """The entries of an object (their positions, in order) that ``check_entry`` has to look
    at, each with True where all it would make is the entry's ``Deferred`` (a callback the
    object leaves undefined, its fields and site fine). The others are those whose fields,
    places and replacement words show that it would make no finding. What many entries share
    is decided once: each capability field, each section, each distinct replacement's bytes
    (``insn.classify`` of its words: all plain, and none of the replacement checks
    applies). An entry outside what this knows (a place by address, a defined callback) is
    kept. ``rels``: the sections' ``_rela_parts`` read so far (the extension's), to share."""
    p = ck.profile
    secs = inp.elf.sections
    nsecs = len(secs)
    caps = facts_of(p)  # cap_raw -> (callback, capability in range)
    plain: dict[bytes, bool] = {}  # a replacement's bytes -> every word plain
    sp = speedups.get()
    if sp is not None:  # the loop below, compiled (``altlink.speedups``), and _moves_fine's
        rels = {} if rels is None else rels
        got = sp.may_find(inp.table.entries, secs, caps, partial(cap_facts, p),
                          inp.elf.section_data, _MAYBE_NOT_PLAIN,
                          partial(_words_kept, inp, secs, plain, p.abi, rels),
                          (p.abi, partial(_rela_parts_at, inp, secs, rels),
                           partial(_read_symbols, inp)))
        if got is not None:
            return got
    datas: dict[int, tuple[bytes, bytes]] = {}  # section: its bytes, its words' marks
    out: list[tuple[int, bool]] = []
    keep = out.append
    # Per section, as first met: its size where it may hold a site (code), else -1; where it
    # may hold a replacement (code, or the replacements' section, not NOBITS), else -1.
    site_lim: list[int | None] = [None] * nsecs
    alt_lim: list[int | None] = [None] * nsecs
    for pos, (_f, _i, _t, _o, site, alt, cap_raw, olen, alen, _a) in \
            enumerate(inp.table.entries):
        got = caps.get(cap_raw)
        if got is None:
            got = caps[cap_raw] = cap_facts(p, cap_raw)
        cb, cap_ok = got
        _sn, sidx, soff, saddr, _ss, _sa = site
        _an, idx, aoff, aaddr, _as, _aa = alt
        # _check_cap: ALT011 (alt_len 0 in a static entry, a callback with a replacement, a
        # capability out of the table); _check_site: ALT003, ALT004
        if not cap_ok or (alen == 0 and not cb) or (cb and alen) \
                or saddr is not None or aaddr is not None \
                or not olen or olen % 4 or soff % 4 or not 0 < sidx < nsecs:
            keep((pos, False))
            continue
        lim = site_lim[sidx]
        if lim is None:
            sec = secs[sidx]
            lim = site_lim[sidx] = sec.size if sec.flags & SHF_EXECINSTR else -1
        if soff + olen > lim or soff < 0:
            keep((pos, False))
            continue
        if cb:  # check_callback: an undefined one is the link set's (Deferred)
            keep((pos, not idx))
            continue
        if alen != olen or not 0 < idx < nsecs:
            keep((pos, False))  # ALT001, ALT005
            continue
        lim = alt_lim[idx]
        if lim is None:
            rsec = secs[idx]
            lim = alt_lim[idx] = rsec.size if (
                rsec.flags & SHF_EXECINSTR or rsec.name == REPLACEMENT_SECTION) and \
                rsec.type != SHT_NOBITS else -1
        if aoff < 0 or aoff + alen > lim:
            keep((pos, False))  # ALT005
            continue
        got = datas.get(idx)
        if got is None:
            data = inp.elf.section_data(secs[idx])
            # each word's top byte: 1 where it may not be plain (``insn._SURELY_PLAIN``)
            got = datas[idx] = (data, data[3:len(data) // 4 * 4:4].translate(_MAYBE_NOT_PLAIN))
        data, marks = got
        if not aoff % 4 and 1 not in marks[aoff // 4:(aoff + alen) // 4]:
            continue  # every word plain by its top byte alone
        if _words_kept(inp, secs, plain, p.abi, None, idx, aoff, alen, data):
            keep((pos, False))
    return out


def _words_kept(inp: Input, secs: list[Section], plain: dict[bytes, bool], abi: str,
                rels: dict | None, idx: int, aoff: int, alen: int,
                data: bytes | None = None) -> bool:
    """``may_find``'s last test of an entry, whose replacement (at ``aoff`` of section
    ``idx``, ``data`` its bytes) is not plain by its words' top bytes alone: whether it is
    kept (a word that is not plain and that a patcher does not move as it is). ``plain``:
    the replacements' bytes met so far, whether their words are all plain; ``rels``: the
    sections' ``_rela_parts`` read so far (for the extension), or None."""
    if data is None:
        data = inp.elf.section_data(secs[idx])
    code = data[aoff:aoff + alen]
    ok = plain.get(code)
    if ok is None:
        ok = plain[code] = all(insn.classify(w).kind == "plain" for w in
                               struct.unpack(f"<{len(code) // 4}I", code))
    return not ok and not _moves_fine(inp, secs[idx], aoff, code, abi, rels)


def _moves_fine(inp: Input, sec: Section, offset: int, code: bytes, abi: str,
                rels: dict | None = None) -> bool:
    """Whether ``check_replacement_code`` of an object's replacement (``code``, at
    ``offset`` of ``sec``) would make no finding: each word plain, or one a patcher moves
    (no ALT008: not immovable, and the profile's patcher handles it, ``profile_problem``).
    What an object's check reports of such a word depends on nothing else: where its target
    is decides only an image's findings. What the check reads to get there (the section's
    relocations, a relocated word's symbol) is read here too, with the same errors.
    ``rels``: the sections' ``_rela_parts`` read so far, by index (the extension's)."""
    sp = speedups.get()
    if sp is not None:
        got = sp.moves_fine(code, offset, abi, _rela_parts(inp, sec, rels=rels))
        if got is not None:
            fine, symbols = got
            _read_symbols(inp, symbols)
            return fine
    return _moves_fine_py(inp, sec, offset, code, abi)


def _moves_fine_py(inp: Input, sec: Section, offset: int, code: bytes, abi: str) -> bool:
    """The reference for ``_moves_fine``."""
    relocs = None
    for i, w in enumerate(struct.unpack(f"<{len(code) // 4}I", code)):
        c = insn.classify(w)
        if c.kind == "plain":
            continue
        if c.kind in ("immovable", "pcrel-unknown"):
            return False
        if relocs is None:
            relocs = inp.relocs_of(sec)
        r = relocs.get(offset + 4 * i)
        if c.kind != "adrp" and r is not None:
            try:
                inp.elf.symbol(r.sym)  # _internal_target's
            except IndexError:
                pass
        if insn.profile_problem(w, abi):
            return False
    return True


def _read_symbols(inp: Input, symbols: list[int]) -> None:
    """The symbols that ``_moves_fine_py`` reads (a relocated branch's), read as it reads
    them, where the extension decided (``moves_fine``): the same errors."""
    for sym in symbols:
        try:
            inp.elf.symbol(sym)
        except IndexError:
            pass


def _rela_parts_at(inp: Input, secs: list[Section], rels: dict, idx: int) -> list | None:
    """``_rela_parts`` of section ``idx``, kept in ``rels`` (``may_find``'s extension)."""
    return _rela_parts(inp, secs[idx], rels=rels)


def _rela_parts(inp: Input, sec: Section, few: int = 256, rels: dict | None = None
                ) -> list[bytes] | None:
    """The bytes of the RELA sections that apply to ``sec``, in order, as ``RelocMap`` reads
    them, for the extension's ``moves_fine``: None where they are indexed already
    (``Input.relocs_of``), where one is not RELA of whole entries, or where they hold more
    than ``few`` relocations (the Python indexes them once). ``rels``: those read so far, by
    section index, where this one is kept too."""
    if rels is not None:
        got = rels.get(sec.index, rels)
        if got is rels:
            got = rels[sec.index] = _rela_parts(inp, sec, few)
        return got
    if inp.relocs_indexed(sec):
        return None
    rel = inp.elf.relocation_sections_for(sec)
    if any(rs.type != SHT_RELA or rs.size % 24 for rs in rel) or \
            sum(rs.size for rs in rel) > few * 24:
        return None
    return [inp.elf.section_data(rs) for rs in rel]


_MAYBE_NOT_PLAIN = bytes(1 - b for b in insn._SURELY_PLAIN)


def check_object_branches(ck: Checks, inp: Input, scan=None, fast: bool = True,
                          rels: dict | None = None) -> None:
    """ALT017 in an object, where the object already fixes the target: a branch the
    assembler resolved inside a section of replacements (no relocation), and a relocated
    branch of a replacement whose symbol the object defines (not weak) in a section of
    replacements. Other relocated branches land where the link puts them: the linked image
    is checked for those. ``scan`` is the word scan (``branches.into_ranges``); by default
    the one for the code's size. The relocated branches are looked for among the words a
    replacement's opcode byte marks (merged ranges, ``str.find`` over the marks);
    ``fast=False``, the reference, looks at each word of each replacement that has a mark.
    ``rels``: the sections' ``_rela_parts`` read so far (the extension's)."""
    secs = inp.elf.sections
    p = ck.profile
    facts = facts_of(p)  # cap_raw: (is_callback's answer, ...)
    sp = speedups.get() if fast and scan is None else None
    by_sec = branch_ranges(inp, facts, p, sp)
    if not by_sec:
        return
    index = {}
    for shndx, ranges in by_sec.items():
        ranges.sort()  # by start, end and index (entries may share one; an index is unique)
        index[shndx] = ([r[0] for r in ranges], [r[1] for r in ranges], ranges)

    def owner(shndx: int, off: int) -> Entry | None:
        got = index.get(shndx)
        if got is None:
            return None
        starts, _, ranges = got
        i = bisect_right(starts, off) - 1
        if i >= 0 and ranges[i][0] <= off < ranges[i][1]:
            return ranges[i][3]
        return None

    for shndx, (starts, ends, ranges) in index.items():
        sec = secs[shndx]
        data = inp.elf.section_data(sec)
        # Compiled: the hits no relocation applies to, and the marked words' relocations
        # (``_relocated_branches`` reads their symbols, as below)
        parts = _rela_parts(inp, sec, rels=rels) if sp is not None else None
        got = sp.object_branch_found(data, ranges, parts, shndx) if parts is not None else None
        if got is not None:
            found, relocated = got
            _symbol_branches(inp, relocated, index, found)
            _report_branches(ck, inp, shndx, found, owner)
            continue
        reloc_at = _reloc_finder(inp, sec)
        # (the relocated offsets, where they are few or indexed: the words without one are
        # passed without a lookup each)
        relocated = _relocated_offsets(inp, sec) if fast else None
        words = sp.object_branch_words(data, ranges) if sp is not None else None
        if words is None and fast:
            scan = scan or branches.scanner(len(data))
            words = scan(data, 0, starts, ends), marked_words(data, ranges)
        if words is not None:
            hits, marked = words
            if relocated is not None:
                found = [(off, shndx, tgt) for off, _w, tgt in hits if off not in relocated]
                marked = [off for off in marked if off in relocated]
            else:
                found = [(off, shndx, tgt) for off, _w, tgt in hits if reloc_at(off) is None]
            _relocated_branches(inp, data, marked, reloc_at, index, found)
            _report_branches(ck, inp, shndx, found, owner)
            continue
        # The reference: each word of each replacement that has a mark.
        found = [(off, shndx, tgt) for off, _w, tgt in
                 (scan or branches.scanner(len(data)))(data, 0, starts, ends)
                 if reloc_at(off) is None]
        marks = data[3:len(data) // 4 * 4:4].translate(branches._IS_BRANCH)
        for lo, hi, _i, _e in ranges:
            start, stop = max(lo - lo % 4, 0), min(hi, len(data) - 3)
            if 0 <= start < stop and 1 not in marks[start // 4:(stop + 3) // 4]:
                continue
            _relocated_branches(inp, data, range(start, stop, 4), reloc_at, index, found)
        _report_branches(ck, inp, shndx, found, owner)


def branch_ranges(inp: Input, facts: dict, p, sp=None
                  ) -> dict[int, list[tuple[int, int, int, Entry]]]:
    """For each section of replacements (not NOBITS) of static entries (not callbacks), the
    replacements' (offset, end, entry index, entry), in the entries' order. ``facts``: the
    profile ``p``'s ``facts_of``; ``sp``: the extension (``altlink.speedups``), which makes
    the same, or None."""
    got = None if sp is None else \
        sp.branch_ranges(inp.table.entries, inp.elf.sections, facts, partial(cap_facts, p))
    return got if got is not None else _branch_ranges(inp, facts, p)


def _branch_ranges(inp: Input, facts: dict, p) -> dict[int, list[tuple[int, int, int, Entry]]]:
    secs = inp.elf.sections
    nsecs = len(secs)
    by_sec: dict[int, list[tuple[int, int, int, Entry]]] = {}
    for e in inp.table.entries:
        _f, index, _t, _o, _site, (_n, shndx, offset, address, _s, _a), cap_raw, _l, \
            alt_len, _ea = e
        if address is None and alt_len > 0 and 0 < shndx < nsecs:
            got = facts.get(cap_raw)
            if got is None:
                got = facts[cap_raw] = cap_facts(p, cap_raw)
            if not got[0] and secs[shndx].type != SHT_NOBITS:
                got = by_sec.get(shndx)
                if got is None:
                    got = by_sec[shndx] = []
                got.append((offset, offset + alt_len, index, e))
    return by_sec


def marked_words(data: bytes, ranges: list[tuple]) -> list[int]:
    """The offsets of the words of ``data`` that may be branches (``maybe_branch``, by their
    opcode byte) among the words of ``ranges`` ((start, end, ...) sorted), in order: the
    ranges as spans of word numbers, merged where they overlap or touch (each word looked at
    once), each searched at C speed (``find`` over the words' marks). ``_speedups``'
    ``object_branch_words`` makes the same list."""
    # Each word's opcode byte says at once whether it may be a branch (maybe_branch): a
    # replacement with none is passed without a word's decoding.
    marks = data[3:len(data) // 4 * 4:4].translate(branches._IS_BRANCH)
    spans: list[tuple[int, int]] = []
    last = len(data) - 3
    a0 = b0 = -1  # the span being merged
    for lo, hi, *_ in ranges:
        # (a replacement placed before its section's start, ALT005: no word there)
        start = lo - lo % 4 if lo > 0 else 0
        stop = hi if hi < last else last
        if start >= stop:
            continue
        a, b = start >> 2, (stop + 3) >> 2
        if a <= b0:
            if b > b0:
                b0 = b
        else:
            if b0 >= 0:
                spans.append((a0, b0))
            a0, b0 = a, b
    if b0 >= 0:
        spans.append((a0, b0))
    out: list[int] = []
    find = marks.find
    for a, b in spans:
        k = find(1, a, b)
        while k >= 0:
            out.append(4 * k)
            k = find(1, k + 1, b)
    return out


def _report_branches(ck: Checks, inp: Input, shndx: int, found: list, owner) -> None:
    """ALT017 for the branches ``found`` in section ``shndx`` ((offset, the target's section,
    its offset there)) that land in a replacement (``owner``) other than their own."""
    secs = inp.elf.sections
    sec = secs[shndx]
    for off, tshndx, tgt in sorted(set(found)):
        dst = owner(tshndx, tgt)
        if dst is None:
            continue
        src = owner(shndx, off)
        if src is dst or (src is not None and tshndx == shndx and
                          src.alt.offset <= tgt <= src.alt.offset + src.alt_len):
            continue  # internal, or to its own end (end inclusive): moves as a block
        if mapsyms.is_data(inp.elf, shndx, off):
            continue  # a word of data, a constant that reads as a branch (asked last: the
            # question decodes the symbols)
        if src is None:
            name = inp.names.at_offset(shndx, off)
            what = f"code at {sec.name}+{off:#x}" + (f" ({name})" if name else "")
        else:
            what = f"the replacement of entry {src.index}"
        ck.add("ALT017", f"{what} branches into the replacement of entry "
               f"{dst.index} at {secs[tshndx].name}+{tgt:#x}, which runs only once "
               "copied to its site", inp, ck.site_place(inp, dst), dst)


def _relocated_branches(inp: Input, data: bytes, offsets, reloc_at, index: dict,
                        found: list) -> None:
    """Of the words at ``offsets`` of a section's ``data``, the branches (``maybe_branch``)
    whose relocation's symbol the object defines (not weak) in a section of ``index``: each
    added to ``found`` as (offset, the symbol's section, its target's offset there)."""
    for off in offsets:
        if not branches.maybe_branch(int.from_bytes(data[off:off + 4], "little")):
            continue
        r = reloc_at(off)
        if r is None:
            continue  # the assembler's: in the section's scan
        _symbol_branches(inp, ((off, r.sym, r.addend),), index, found)


def _symbol_branches(inp: Input, relocated, index: dict, found: list) -> None:
    """Of the relocated branches (offset, the relocation's symbol, its addend), those whose
    symbol the object defines (not weak) in a section of ``index``: each added to ``found``
    as (offset, the symbol's section, its target's offset there)."""
    for off, symbol, addend in relocated:
        try:
            sym = inp.elf.symbol(symbol)
        except IndexError:
            continue
        if sym.shndx in index and sym.bind != STB_WEAK:
            found.append((off, sym.shndx, sym.value + addend))


def _relocated_offsets(inp: Input, sec: Section, few: int = 256):
    """The offsets of ``sec`` that a relocation applies to (a container for ``in``), where
    its relocations are indexed already (``Input.relocs_of``) or are at most ``few`` RELA
    entries; else None (``_reloc_finder`` looks up the few offsets asked). An offset is in it
    exactly where ``_reloc_finder``'s lookup finds a relocation."""
    if inp.relocs_indexed(sec):
        return inp.relocs_of(sec).offsets
    rel = inp.elf.relocation_sections_for(sec)
    if any(rs.type != SHT_RELA or rs.size % 24 for rs in rel) or \
            sum(rs.size for rs in rel) > few * 24:
        return None
    out: set[int] = set()
    for rs in rel:
        out.update(memoryview(inp.elf.section_data(rs)).cast("Q")[0::3].tolist())
    return out


def _reloc_finder(inp: Input, sec: Section):
    """The relocation at an offset of ``sec`` (or None), for a few offsets: looked up in the
    relocation sections' bytes, at C speed, without indexing them all (a kernel module's
    .text has thousands of relocations, and its ALT017 check asks about a few words)."""
    rel = inp.elf.relocation_sections_for(sec)
    if inp.relocs_indexed(sec) or any(rs.type != SHT_RELA or rs.size % 24 for rs in rel):
        return inp.relocs_of(sec).get
    parts = [inp.elf.section_data(rs) for rs in rel]

    def at(off: int) -> Reloc | None:
        key = off.to_bytes(8, "little")
        for data in parts:
            pos = data.find(key)
            while pos >= 0:
                if pos % 24 == 0:
                    o, info, addend = struct.unpack_from("<QQq", data, pos)
                    return Reloc(o, info & 0xFFFFFFFF, info >> 32, addend)
                pos = data.find(key, pos + 1)
        return None
    return at
