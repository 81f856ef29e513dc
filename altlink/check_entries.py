"""The checks of one entry of a table, from its own fields and the code it names: the same in
an object (places by section and offset) and in a linked image (by address). Also the sites
that entries of one table share (ALT010)."""
from __future__ import annotations

import struct

from altlink import insn, speedups
from altlink.check_core import Checks, cap_in_table, is_function
from altlink.elf import (
    ET_REL,
    SHN_UNDEF,
    SHT_NOBITS,
    STT_FUNC,
    STT_GNU_IFUNC,
    STT_NOTYPE,
    STT_OBJECT,
    STT_SECTION,
    Reloc,
    Section,
    Symbol,
)
from altlink.findings import ERROR, WARNING, Deferred
from altlink.insn import word_text
from altlink.linkset import Input
from altlink.table import NCAPS_MARKED, REPLACEMENT_SECTION, Entry


def check_entry(ck: Checks, inp: Input, pos: int, e: Entry) -> None:
    """The checks of one entry (``pos`` in its table), from its own fields and the code it
    names. A callback it leaves undefined (an object's) is a ``Deferred``: the link set
    resolves it (``check_linkset``)."""
    p = ck.profile
    callback = p.is_callback(e.cap_raw)
    cap = p.cap(e.cap_raw)

    def site_place() -> str:
        return ck.site_place(inp, e)

    if not _check_cap(ck, inp, e, callback, cap, site_place):
        return
    if not callback and e.orig_len == 0 and e.alt_len == 0:
        # An empty static entry patches nothing and copies nothing, as a patcher reads it
        # (``nr_inst`` 0): Linux 7's ``alternative_if`` ... ``alternative_else_nop_endif``
        # around a body that assembles to nothing (``dcache_by_line_op cvau``) makes them.
        # Where its site and its replacement are does not matter (either may be the end of
        # its section, which in an image is where the next section starts): only its
        # alignment is checked.
        _check_aligned(ck, inp, e, site_place, cap)
        return
    site_sec = _check_site(ck, inp, e, site_place, cap)
    if callback:
        if e.alt_len != 0:
            ck.add("ALT002", f"callback entry has alt_len {e.alt_len}, must be 0",
                   inp, site_place, e)
        check_callback(ck, inp, pos, e, site_place)
        return
    if e.alt_len != e.orig_len:
        ck.add("ALT001", f"replacement is {e.alt_len} bytes, site is {e.orig_len} "
               f"({ck.cap_label(cap)})", inp, site_place, e)
    repl_sec = _check_replacement_place(ck, inp, e, site_place)
    if repl_sec is not None and site_sec is not None:
        check_replacement_code(ck, inp, e, repl_sec, site_place)


def _check_cap(ck: Checks, inp: Input, e: Entry, callback: bool, cap: int | None,
               place: str) -> bool:
    p = ck.profile
    named = e.alt.symbol
    if named is None and e.alt.address is not None and not callback and e.alt_len == 0:
        sym = inp.names.function_at(e.alt.address)  # an image: no relocation is left
        named = sym.name if sym else None
    if p.abi in NCAPS_MARKED and not callback and e.alt_len == 0 and named \
            and p.ncaps is not None and e.orig_len:
        ck.add("ALT011", f"entry looks like a callback ({named}) with marker "
               f"{e.cap_raw}, but NCAPS is {p.ncaps}: the table and the code disagree",
               inp, place, e)
        return False
    if p.abi == "linux-v6.1" and callback and e.alt_len and e.alt_len == e.orig_len \
            and not _names_a_function(inp, e):
        # A static entry whose capability reached the callback bit (Linux 6.1 guards
        # against it: "cpucaps have overflown ARM64_CB_BIT"), not a callback with a length.
        ck.add("ALT011", f"capability field {e.cap_raw:#06x} has bit 15 set, the callback "
               "marker of linux-v6.1, but the entry has a replacement as long as its site, "
               "as a static entry does: its capability does not fit below 0x8000, and the "
               "patcher would call the replacement code as a callback", inp, place, e)
        return False
    if not cap_in_table(p, cap):
        ck.add("ALT011", f"capability {cap} is not in the table (NCAPS {p.ncaps})",
               inp, place, e)
    return True


def _names_a_function(inp: Input, e: Entry) -> bool:
    """Does the entry's second field point at a function (a callback's shape), rather
    than at code inside a section (a replacement's)?"""
    if e.alt.address is not None:  # an image
        sym = inp.names.function_at(e.alt.address)
        return sym is not None and sym.type in (STT_FUNC, STT_GNU_IFUNC)
    if not e.alt.symbol:
        return False  # a section symbol plus an offset
    if not e.alt.defined:
        return True  # defined elsewhere in the link set, as callbacks are
    return any(s.name == e.alt.symbol and s.shndx == e.alt.section_index
               and s.type in (STT_FUNC, STT_GNU_IFUNC) for s in inp.elf.symbols)


def _section_of(inp: Input, shndx: int, address: int | None) -> Section | None:
    if address is not None:
        return inp.elf.section_at(address)
    if 0 < shndx < len(inp.elf.sections):
        return inp.elf.sections[shndx]
    return None


def _check_aligned(ck: Checks, inp: Input, e: Entry, place: str, cap: int | None) -> None:
    pos = e.site.address if e.site.address is not None else e.site.offset
    if pos % 4:
        ck.add("ALT003", f"site is not 4-byte aligned ({ck.cap_label(cap)})", inp, place,
               e)


def _check_site(ck: Checks, inp: Input, e: Entry, place: str, cap: int | None) -> Section | None:
    if e.orig_len == 0 or e.orig_len % 4:  # (an empty static entry does not come here)
        ck.add("ALT003", f"site length {e.orig_len} is not a non-zero multiple of 4 "
               f"({ck.cap_label(cap)})", inp, place, e)
    _check_aligned(ck, inp, e, place, cap)
    if e.site.address is not None and not e.site.defined:
        return None  # outside the image: reported by the table reader (ALT012)
    sec = _section_of(inp, e.site.section_index, e.site.address)
    if sec is None or not inp.elf.is_code(sec):
        where = f"in {sec.name}" if sec is not None else "outside every section"
        if e.site.section_index == SHN_UNDEF and e.site.symbol:
            where = f"at undefined symbol {e.site.symbol}"
        ck.add("ALT004", f"site is {where}, not in an executable section", inp, place, e)
        return None
    if e.site.offset < 0:
        ck.add("ALT004", f"site is {-e.site.offset:#x} bytes before the start of {sec.name}",
               inp, place, e)
        return None
    if e.site.offset + e.orig_len > sec.size:
        ck.add("ALT004", f"site runs past the end of {sec.name} ({sec.size:#x} bytes)",
               inp, place, e)
        return None
    return sec


def _check_replacement_place(ck: Checks, inp: Input, e: Entry, place: str) -> Section | None:
    if e.alt.address is not None and not e.alt.defined:
        return None  # outside the image: reported by the table reader (ALT012)
    sec = _section_of(inp, e.alt.section_index, e.alt.address)
    if sec is None:
        what = f"undefined symbol {e.alt.symbol}" if e.alt.symbol and not e.alt.defined \
            else "outside every section"
        ck.add("ALT005", f"replacement is {what}", inp, place, e)
        return None
    if not (sec.name == REPLACEMENT_SECTION or inp.elf.is_code(sec)):
        ck.add("ALT005", f"replacement is in {sec.name}, not in {REPLACEMENT_SECTION} or "
               "an executable section", inp, place, e)
        return None
    if sec.type == SHT_NOBITS:
        ck.add("ALT005", f"replacement is in {sec.name}, which has no contents (NOBITS)",
               inp, place, e)
        return None
    if e.alt.offset < 0:
        ck.add("ALT005", f"replacement is {-e.alt.offset:#x} bytes before the start of "
               f"{sec.name}", inp, place, e)
        return None
    if e.alt.offset + e.alt_len > sec.size:
        ck.add("ALT005", f"replacement {sec.name}+{e.alt.offset:#x} ({e.alt_len} bytes) "
               f"runs past the end of {sec.name} ({sec.size:#x} bytes)", inp, place, e)
        return None
    return sec


def check_replacement_code(ck: Checks, inp: Input, e: Entry, sec: Section, place: str) -> None:
    """The replacement's instructions, each as a patcher copies it to the site."""
    words = replacement_words(inp, e, sec)
    if not words:
        return
    relocs = None  # the section's relocations, indexed for the first word that needs them
    classify = insn.classify
    for i, word in enumerate(words):
        c = classify(word)
        if c.kind == "plain":
            continue  # nothing to check (check_replacement_word), its relocation unasked
        if relocs is None:
            relocs = inp.relocs_of(sec) if inp.elf.type == ET_REL else {}
        check_replacement_word(ck, inp, e, sec, place, i, word, c,
                               relocs.get(e.alt.offset + 4 * i))


def replacement_words(inp: Input, e: Entry, sec: Section) -> tuple[int, ...]:
    """The words of the replacement that a patcher copies over the site (as many as both
    hold); ``sec`` is the replacement's section."""
    n = min(e.alt_len, e.orig_len) // 4
    if n == 0:
        return ()
    return struct.unpack_from(f"<{n}I", inp.elf.section_data(sec), e.alt.offset)


def check_replacement_word(ck: Checks, inp: Input, e: Entry, sec: Section, place: str, i: int,
                           word: int, c: insn.Classified, r: Reloc | None) -> None:
    """Replacement instruction ``i`` (``word``, of kind ``c``; ``r`` its relocation in an
    object) copied to the site: movable at all (ALT008), re-encodable under the profile
    (ALT008), in range from the site in an image (ALT009), and not a branch to a linker's thunk
    right after the replacement (ALT016)."""
    if c.kind == "plain":
        return
    off = e.alt.offset + 4 * i
    image = e.alt.address is not None
    # In an image, show the instruction where it is linked (its real target).
    at = e.alt.address + 4 * i if image else 0
    if c.kind in ("immovable", "pcrel-unknown"):
        why = ("cannot be moved: it is PC-relative and no patcher re-encodes it"
               if c.kind == "immovable" else
               "is PC-relative in a form altlink cannot re-encode; it is never copied "
               "silently")
        ck.add("ALT008", f"replacement instruction {i} ({c.name}, {word_text(word, at)}) "
               f"{why}", inp, place, e, at=_insn_at(inp, e, sec, off, i))
        return
    internal = _internal_target(inp, e, sec, off, word, c, r)
    if internal:
        end = e.alt.offset + e.alt_len
        if image and c.offset is not None and off + c.offset == end \
                and _linker_stub(inp, e.alt.address + e.alt_len):
            # lld puts a range-extension thunk right after the replacement: a patcher
            # takes the branch for one to the end of the block and copies it as is.
            ck.add("ALT016", f"replacement instruction {i} ({word_text(word, at)}) "
                   "branches to a linker thunk or veneer right after the replacement: "
                   "a patcher copies it as a branch to the end of the block, and at the "
                   "site it falls through instead of reaching the thunk's target "
                   "(place the target within 128 MiB of the replacement)",
                   inp, place, e)
        return
    problem = insn.profile_problem(word, ck.profile.abi)
    if problem:
        ck.add("ALT008", f"replacement instruction {i} ({word_text(word, at)}): {problem}",
               inp, place, e, at=_insn_at(inp, e, sec, off, i))
        return
    if image:
        pc = e.alt.address + 4 * i
        to = e.site.address + 4 * i
        try:
            insn.relocate(word, pc, to, abi=ck.profile.abi)
        except (insn.RangeError, ValueError) as err:  # ValueError: misaligned
            ck.add("ALT009", f"replacement instruction {i} ({word_text(word, at)}) at the "
                   f"site {to:#x}: {err}", inp, place, e)


def _internal_target(inp: Input, e: Entry, sec: Section, off: int, word: int,
                     c: insn.Classified, r: Reloc | None) -> bool | None:
    """Is the instruction's target inside the replacement (copied as a block)?"""
    if c.kind == "adrp":
        return False  # Linux re-encodes every ADRP
    if r is not None:  # object: the target is the relocation's
        try:
            sym = inp.elf.symbol(r.sym)
        except IndexError:
            return None
        if sym.shndx != sec.index:
            return False
        tgt = sym.value + r.addend
        return e.alt.offset <= tgt <= e.alt.offset + e.alt_len
    if c.offset is None:
        return None
    tgt = off + c.offset
    return e.alt.offset <= tgt <= e.alt.offset + e.alt_len


def _insn_at(inp: Input, e: Entry, sec: Section, off: int, i: int) -> tuple | None:
    """Where replacement instruction ``i`` is, for its source line (the site's where the
    instruction has none). Only where the replacement is in a section of its own
    (``.altinstr_replacement``): a line table row there comes from the source of the
    instruction (assembly). In the site's own section (a later subsection, linux-v6.1),
    a C function's asm statement leaves its replacement the row of the function's last
    line, which would mislead: the site's line is kept."""
    if e.alt.address is not None:  # an image
        site_sec = inp.elf.section_at(e.site.address) if e.site.address is not None \
            else None
        return None if site_sec is sec or site_sec is None or \
            site_sec.name == sec.name else ("", e.alt.address + 4 * i)
    return None if sec.name == e.site.section else (sec.name, off)


def check_callback(ck: Checks, inp: Input, pos: int, e: Entry, place: str) -> None:
    alt = e.alt
    module = ck.module
    if alt.address is not None:  # image: the address must be a function in code
        if not alt.defined:
            return  # outside the image: reported by the table reader (ALT012)
        sec = inp.elf.section_at(alt.address)
        sym = inp.names.function_at(alt.address)
        name = sym.name if sym else f"{alt.address:#x}"
        if sec is None or not sec.executable:
            ck.add("ALT007", f"callback {name} is not in an executable section", inp,
                   place, e)
        elif sym is not None and not is_function(sym):
            ck.add("ALT007", f"callback {name} is not a function", inp, place, e)
        return
    if not alt.defined:  # defined elsewhere in the link set, or nowhere
        ck.findings.append(Deferred(pos, alt.symbol or ""))
        return
    sec = inp.elf.sections[alt.section_index]
    if alt.symbol:
        sym = next((s for s in inp.elf.symbols if s.name == alt.symbol
                    and s.shndx == alt.section_index), None)
    else:
        sym = inp.names.function_at_offset(alt.section_index, alt.offset)
    name = sym.name if sym else f"{sec.name}+{alt.offset:#x}"
    if module:
        ck.add("ALT015", f"callback {name} is defined by the module itself (Linux "
               "rejects such modules at load)", inp, place, e)
    if sym is None:
        if not sec.executable:
            ck.add("ALT007", f"callback {name} is not in an executable section", inp,
                   place, e)
        return
    check_callback_def(ck, inp, e, sym, sec, name, place)


def check_callback_def(ck: Checks, inp: Input, e: Entry, sym: Symbol, sec: Section | None,
                       name: str, place: str) -> None:
    if sec is None or not sec.executable:
        where = sec.name if sec is not None else "no section"
        ck.add("ALT007", f"callback {name} is in {where}, not an executable section",
               inp, place, e)
    elif not is_function(sym):
        ck.add("ALT007", f"callback {name} is not a function (symbol type "
               f"{_SYMBOL_TYPES.get(sym.type, sym.type)})",
               inp, place, e)


def check_overlaps(ck: Checks, inp: Input, fast: bool = False,
                   among: set[int] | None = None) -> None:
    """ALT010 for the sites that entries of one table share. ``fast``: nothing more where one
    sort of the sites finds none beginning before the one before it ends (``sites_overlap``;
    an object's check, ``check_objects.object_checks``); else, the reference, the sweep.
    ``among``: only the pairs of which one entry's index is in it."""
    if fast and not sites_overlap(inp.table.entries):
        return
    spans = sorted(((e.site.section_index, e.site.offset, e.site.offset + e.orig_len, e)
                    for e in inp.table.entries if e.orig_len and e.site.defined),
                   key=lambda t: (t[0], t[1], t[2], t[3].index))
    # A sweep over the spans sorted by start: each one against every earlier span of its
    # section that has not ended yet (not only its neighbour: a long site can overlap
    # several short ones that do not overlap each other).
    active: list[tuple[int, int, int, Entry]] = []
    for s2, a2, b2, e2 in spans:
        active = [t for t in active if t[0] == s2 and t[2] > a2]
        for _s1, a1, b1, e1 in active:
            if among is not None and e1.index not in among and e2.index not in among:
                continue
            place = ck.site_place(inp, e2)
            if (a1, b1) == (a2, b2):
                ck.add("ALT010", f"entries {e1.index} and {e2.index} patch the same "
                       "site; the later one wins when both apply", inp, place, e2,
                       severity=WARNING)
            else:
                ck.add("ALT010", f"entries {e1.index} and {e2.index} patch overlapping "
                       "sites", inp, place, e2, severity=ERROR)
        active.append((s2, a2, b2, e2))


def sites_overlap(entries: list[Entry]) -> bool:
    """Whether two of the entries' defined sites share a byte: sorted by section and start,
    a site that begins before the one before it in its section ends (each site ends where
    the next begins or before, so no earlier one reaches further). ``sites_overlap_py`` is
    the reference, which the extension (``altlink.speedups``) leaves what it does not read."""
    sp = speedups.get()
    if sp is not None:
        got = sp.sites_overlap(entries)
        if got is not None:
            return got
    return sites_overlap_py(entries)


def sites_overlap_py(entries: list[Entry]) -> bool:
    """The reference for ``sites_overlap``."""
    rows = sorted([(site[1], site[2], site[2] + orig_len)  # (section index, offset, end)
                   for _f, _i, _t, _o, site, _a, _c, orig_len, _l, _ad in entries
                   if orig_len and site[1]])
    for (s1, _a1, b1), (s2, a2, _b2) in zip(rows, rows[1:]):
        if s1 == s2 and b1 > a2:
            return True
    return False


def _linker_stub(inp: Input, addr: int) -> bool:
    """Code the linker made at ``addr`` (``insn.is_linker_stub``): the function named there,
    or the code."""
    sym = inp.names.function_at(addr)
    elf = inp.elf
    return insn.is_linker_stub([sym.name] if sym is not None else [],
                               elf.read_addr(addr, 12) or elf.read_addr(addr, 8))


_SYMBOL_TYPES = {STT_NOTYPE: "STT_NOTYPE", STT_OBJECT: "STT_OBJECT", STT_FUNC: "STT_FUNC",
                 STT_SECTION: "STT_SECTION", 6: "STT_TLS"}
