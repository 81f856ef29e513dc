"""The image's phase: what only a linked image decides. The table's alignment (ALT018),
branches into replacements from anywhere in its code (ALT017), what the callbacks reach
(ALT014), and, for entries the objects' checks passed, what the final addresses decide
(ALT009, a thunk after a replacement: ALT016). ``crosscheck`` compares the image with the
objects."""
from __future__ import annotations

import struct
from bisect import bisect_right

from altlink import branches, insn, mapsyms
from altlink.check_core import Checks, callback_mask, cap_facts, is_function, resolve_ncaps
from altlink.check_entries import (
    check_entry,
    check_overlaps,
    check_replacement_word,
    replacement_words,
)
from altlink.elf import SHT_NOBITS
from altlink.findings import Finding
from altlink.linkset import Input, Options
from altlink.table import REPLACEMENT_SECTION, Entry
from altlink.values import replace

# The checks that only a linked image can answer; the others were made on the objects.
POST_LINK_CODES = frozenset({"ALT009", "ALT013", "ALT014", "ALT016", "ALT017", "ALT018"})


def check_after_link(image: Input, options: Options, fast: bool = True) -> list[Finding]:
    """The checks of a linked image whose objects were checked before the link (``options``
    as the link set's, the profile resolved): only what the final addresses decide.
    ``fast`` passes over the entries ``linked_entries_to_check`` rules out for the whole table
    at once; ``fast=False`` (the reference) asks ``check_linked_entry`` of each."""
    findings: list[Finding] = []
    profile = resolve_ncaps(options.profile, options.caps, [image.table], findings)
    ck = Checks(replace(options, profile=profile), only=POST_LINK_CODES, findings=findings)
    for e in linked_entries_to_check(image, profile) if fast else image.table.entries:
        check_linked_entry(ck, image, e)
    image_checks(ck, image, fast)
    return ck.findings


def may_reencode(inp: Input, profile) -> list[Entry]:
    """The entries of an image that ``check_linked_entry`` has to look at, in their order:
    all but those it would pass without a finding because none of their replacement words is
    one a patcher re-encodes (a branch or ADRP). Each replacement section's words are
    classified at once by their top byte (``bytes.translate``); an entry the mask cannot
    answer (a place not 4-byte aligned, or past the section's bytes) is kept."""
    out: list[Entry] = []
    secs = inp.elf.sections
    masks: dict[int, bytes | None] = {}
    callback: dict[int, bool] = {}
    for e in inp.table.entries:
        cb = callback.get(e.cap_raw)
        if cb is None:
            cb = callback[e.cap_raw] = profile.is_callback(e.cap_raw)
        alt = e.alt
        # check_linked_entry returns at once (section_at found the place's section when the
        # table was read: index 0 is none)
        if cb or alt.address is None or e.site.address is None or not e.site.section_index \
                or not alt.section_index:
            continue
        idx = alt.section_index
        mask = masks.get(idx, False)
        if mask is False:
            sec = secs[idx] if idx < len(secs) else None
            mask = masks[idx] = None if sec is None or sec.type == SHT_NOBITS else \
                inp.elf.section_data(sec)[3::4].translate(_REENCODED_MASK)
        if mask is None:
            out.append(e)  # check_linked_entry decides
            continue
        size = min(e.alt_len, e.orig_len)
        if alt.offset + size > secs[idx].size or size < 4:
            continue  # returns at once, or has no word
        n = size // 4
        words = mask[alt.offset // 4:alt.offset // 4 + n]
        if alt.offset % 4 or len(words) != n or words.count(0) != n:
            out.append(e)
    return out


def check_unread_entries(image: Input, options: Options, positions: list[int]
                         ) -> list[Finding]:
    """The checks made of an object's entries before a link (each entry's own: sizes, places,
    capability, callback, replacement words; ALT010 with any other site), made in the linked
    image for the entries at ``positions``: those no object read before the link accounts for
    (``crosscheck.cross_check``'s ``unmatched``): an LTO object's, a source's that the
    compiler driver compiles in the link's own command, an object's that a piped linker
    script names. What the final addresses decide is ``check_after_link``'s, of every entry."""
    profile = resolve_ncaps(options.profile, options.caps, [image.table], [])
    ck = Checks(replace(options, profile=profile))
    entries = image.table.entries
    wanted = set(positions)
    for pos, e in may_find(ck, image):  # (as ``image_alone_checks``: a whole LTO kernel's)
        if pos in wanted:
            check_entry(ck, image, pos, e)
    if sites_overlap(image):
        check_overlaps(ck, image, among={entries[pos].index for pos in positions})
    # (a callback left undefined, ``Deferred``: a partial link's, for the link that takes it)
    return [f for f in ck.findings if type(f) is Finding and f.code not in POST_LINK_CODES]


def linked_entries_to_check(inp: Input, profile) -> list[Entry]:
    """The entries of an image that ``check_linked_entry`` has to look at, in their order:
    ``may_reencode``'s, and where the table was read as columns (``Table.columns``, numpy
    loaded), fewer: a replacement whose re-encoded words are all B or BL, each decided at
    once as ``check_replacement_word`` decides it (a target inside the replacement but not
    at its end: copied as a block; outside: its displacement from the site in reach, a
    multiple of 4), is passed too."""
    table = inp.table
    cols = table.columns
    if cols is None or len(cols["cap"]) != table.size:
        return may_reencode(inp, profile)
    import numpy as np

    secs = inp.elf.sections
    cap = cols["cap"]
    alt_sec, site_sec = cols["alt_sec"], cols["site_sec"]
    alt_off = cols["alt_off"].astype(np.int64)
    alen, olen = cols["alt_len"], cols["orig_len"]
    size = np.minimum(alen, olen)
    # check_linked_entry returns at once for a callback, or a place outside every section
    todo = ~callback_mask(profile, cap) & (site_sec != 0) & (alt_sec != 0)
    keep = np.zeros(len(cap), dtype=bool)
    reencoded = np.frombuffer(_REENCODED_MASK, dtype=np.uint8).astype(bool)
    for s in np.flatnonzero(np.bincount(alt_sec[todo])).tolist():
        mine = todo & (alt_sec == s)
        sec = secs[s] if s < len(secs) else None
        if sec is None or sec.type == SHT_NOBITS:
            keep |= mine  # check_linked_entry decides
            continue
        data = inp.elf.section_data(sec)
        mine &= (alt_off + size <= sec.size) & (size >= 4)  # else: at once, or no word
        n = size // 4
        odd = mine & ((alt_off % 4 != 0) | (alt_off // 4 + n > len(data) // 4))
        keep |= odd  # the mask cannot answer
        at = np.flatnonzero(mine & ~odd)
        if not len(at):
            continue
        counts = n[at]
        entry = np.repeat(at, counts)
        first = np.cumsum(counts) - counts
        i = np.arange(int(counts.sum())) - np.repeat(first, counts)
        words = np.frombuffer(data, dtype="<u4", count=len(data) // 4)[alt_off[entry] // 4 + i]
        moved = reencoded[words >> 24]
        if not moved.any():
            continue
        branch = ((words >> 26) & 0x1F) == 5  # B, BL (insn.decode's branch26)
        imm = (words & 0x3FFFFFF).astype(np.int64)
        imm = np.where(imm >= 1 << 25, imm - (1 << 26), imm) * 4
        rel = 4 * i + imm  # the target, from the replacement's start
        inside = (rel >= 0) & (rel <= alen[entry])
        # outside: the displacement from the site, as insn.relocate computes it (64-bit)
        disp = (cols["alt_addr"][entry] - cols["site_addr"][entry]
                + imm.astype(np.uint64)).view(np.int64)
        reach = (disp % 4 == 0) & (disp >= -(1 << 27)) & (disp <= (1 << 27) - 4)
        passed = ~moved | (branch & np.where(inside, rel != alen[entry], reach))
        bad = np.zeros(len(cap), dtype=bool)
        np.logical_or.at(bad, entry[~passed], True)
        keep |= bad
    return [table.entry(i) for i in np.flatnonzero(keep).tolist()]


def image_alone_checks(ck: Checks, inp: Input, fast: bool = True) -> None:
    """An image checked alone (``altlink check`` of an image, and what manifest and patch
    refuse): each entry's checks as for an object's, the sites they share, then the
    image-wide checks; added to ``ck``. ``fast`` runs ``check_entry`` only on the entries
    ``may_find`` keeps, and ``check_overlaps`` only where two sites overlap
    (``sites_overlap``); ``fast=False`` (the reference) runs both over every entry.
    numpy is imported first where ALT017's scan will use it, so that naming a callback or a
    linker's stub indexes the image's symbols from their columns (``symbols.column_index``)."""
    branches.preload(sum(s.size for s in _code_sections(inp)))
    if fast:
        for pos, e in may_find(ck, inp):
            check_entry(ck, inp, pos, e)
    else:
        for pos, e in enumerate(inp.table.entries):
            check_entry(ck, inp, pos, e)
    if ck.wanted("ALT010") and (not fast or sites_overlap(inp)):
        check_overlaps(ck, inp)
    image_checks(ck, inp, fast)


def may_find(ck: Checks, inp: Input) -> list[tuple[int, Entry]]:
    """The entries of an image (with their positions, in order) that ``check_entry`` has to
    look at: all but those whose fields, places and replacement words show that it would make
    no finding. What many entries share is decided once: each capability field, each section,
    each callback address, each distinct replacement's bytes (``insn.classify`` of its words:
    all plain, and none of the replacement checks applies). An entry outside what this knows
    (a place that is not an address, or not in a section) is kept."""
    p = ck.profile
    secs = inp.elf.sections
    nsecs = len(secs)
    caps: dict[int, tuple[bool, bool]] = {}  # cap_raw -> (callback, capability in range)
    callbacks: dict[int, bool] = {}  # callback address -> no finding
    plain: dict[bytes, bool] = {}  # a replacement's bytes -> every word plain
    datas: dict[int, bytes] = {}
    out: list[tuple[int, Entry]] = []
    keep = out.append
    for pos, e in enumerate(inp.table.entries):
        cap_raw, olen, alen = e.cap_raw, e.orig_len, e.alt_len
        got = caps.get(cap_raw)
        if got is None:
            got = caps[cap_raw] = cap_facts(p, cap_raw)
        cb, cap_ok = got
        site, alt = e.site, e.alt
        saddr = site.address
        # _check_cap: its lookups (alt_len 0 in a static entry, a callback with a
        # replacement) and ALT011; _check_site: ALT003, ALT004
        if not cap_ok or alen == 0 and not cb or cb and alen or saddr is None \
                or alt.address is None or not olen or olen % 4 or saddr % 4 \
                or not 0 < site.section_index < nsecs:
            keep((pos, e))
            continue
        sec = secs[site.section_index]
        if not sec.executable or site.offset + olen > sec.size or site.offset < 0:
            keep((pos, e))
            continue
        if cb:  # check_callback, once per address
            if alt.section_index:
                ok = callbacks.get(alt.address)
                if ok is None:
                    ok = callbacks[alt.address] = _callback_ok(inp, alt)
                if not ok:
                    keep((pos, e))
            continue
        if alen != olen:
            keep((pos, e))  # ALT001
            continue
        idx = alt.section_index
        if not idx:
            continue  # outside the image: no finding here (ALT012 from the table reader)
        if idx >= nsecs:
            keep((pos, e))
            continue
        rsec = secs[idx]
        if not (rsec.executable or rsec.name == REPLACEMENT_SECTION) or \
                rsec.type == SHT_NOBITS or alt.offset < 0 or alt.offset + alen > rsec.size:
            keep((pos, e))  # ALT005
            continue
        data = datas.get(idx)
        if data is None:
            data = datas[idx] = inp.elf.section_data(rsec)
        code = data[alt.offset:alt.offset + alen]
        ok = plain.get(code)
        if ok is None:
            ok = plain[code] = all(insn.classify(w).kind == "plain" for w in
                                   struct.unpack(f"<{len(code) // 4}I", code))
        if not ok:
            keep((pos, e))
    return out


def _callback_ok(inp: Input, alt) -> bool:
    """``check_callback`` of an image's callback at ``alt`` makes no finding."""
    sec = inp.elf.sections[alt.section_index]
    sym = inp.names.function_at(alt.address)
    return sec.executable and (sym is None or is_function(sym))


def sites_overlap(inp: Input) -> bool:
    """Whether ``check_overlaps`` has anything to report: two sites of one section that share
    a byte (an identical range included), by one sort of the sites."""
    entries = inp.table.entries
    spans = sorted(zip([e.site.section_index for e in entries],
                       [e.site.offset for e in entries],
                       [e.site.offset + e.orig_len for e in entries],
                       [e.orig_len and e.site.defined for e in entries]))
    sec, end = None, 0
    for s, a, b, real in spans:
        if not real:
            continue
        if s == sec and a < end:
            return True
        if s != sec:
            sec, end = s, b
        elif b > end:
            end = b
    return False


def image_checks(ck: Checks, inp: Input, fast: bool = True) -> None:
    """The image-wide checks, added to ``ck``. ``fast``: where the table was read as columns
    (``Table.columns``), ALT017's ranges and ALT014's callbacks and sites are taken from them
    at once; ``fast=False`` (the reference) from the entries, one by one."""
    check_table_alignment(ck, inp)
    check_branches_into_replacements(ck, inp, fast=fast)
    check_callback_reach(ck, inp, fast=fast)


def check_linked_entry(ck: Checks, inp: Input, e: Entry) -> None:
    """What the final addresses decide of an entry the objects' checks passed: a re-encoded
    branch or ADRP out of range at the site (ALT009), a thunk right after the replacement
    (ALT016)."""
    if ck.profile.is_callback(e.cap_raw) or e.alt.address is None \
            or e.site.address is None:
        return
    site_sec = inp.elf.section_at(e.site.address)
    repl_sec = inp.elf.section_at(e.alt.address)
    if site_sec is None or repl_sec is None or repl_sec.type == SHT_NOBITS \
            or e.alt.offset + min(e.alt_len, e.orig_len) > repl_sec.size:
        return

    def site_place() -> str:
        return ck.site_place(inp, e)

    words = replacement_words(inp, e, repl_sec)
    if not any(w >> 24 in _REENCODED_TOPS for w in words):
        return  # no branch, no ADRP: the others are not classified at all
    for i, word in enumerate(words):
        c = insn.decode(word)
        if c.kind in insn.FIXUP_KINDS:
            check_replacement_word(ck, inp, e, repl_sec, site_place, i, word, c, None)


# The top bytes of the words a patcher re-encodes: the immediate branches
# (branches.maybe_branch) and ADRP.
_REENCODED_TOPS = frozenset(b for b in range(256) if branches.maybe_branch(b << 24)
                            or (b << 24) & 0x9F000000 == 0x90000000)
_REENCODED_MASK = bytes(b in _REENCODED_TOPS for b in range(256))

def check_table_alignment(ck: Checks, inp: Input) -> None:
    for sec in inp.table.sections:
        if sec.addr % 4:
            ck.add("ALT018", f"{sec.name} is at {sec.addr:#x}, not 4-byte aligned: a "
                   "runtime reading it with the MMU off faults", inp,
                   f"section {sec.index} {sec.name}")

def check_branches_into_replacements(ck: Checks, inp: Input, scan=None,
                                     fast: bool = True) -> None:
    """ALT017: a branch from outside a replacement into it, or from one replacement into
    another entry's replacement. Replacement code runs only once copied to its site. ``scan`` is
    the word scan (``branches.into_ranges``); by default the one for the code's size.
    ``fast``: the replacements' ranges sorted from the table's columns (``_ranges_np``) where
    it was read as columns."""
    got = _ranges_np(ck, inp) if fast else None
    if got is not None:
        starts, ends, at = got
        ranges = _Ranges(starts, ends, at, inp.table)
    else:
        ents = inp.table.entries
        callback: dict[int, bool] = {}
        for e in ents:
            if e.cap_raw not in callback:
                callback[e.cap_raw] = ck.profile.is_callback(e.cap_raw)
        # by address, end and index (entries may share one), then position: never the entries
        keys = [(e.alt.address, e.alt.address + e.alt_len, e.index, pos)
                for pos, e in enumerate(ents)
                if e.alt.address is not None and e.alt_len and not callback[e.cap_raw]]
        keys.sort()
        ranges = [(a, end, ents[pos]) for a, end, _, pos in keys]
        starts = [r[0] for r in ranges]
        ends = [r[1] for r in ranges]
    if not ranges:
        return
    def owner(addr: int):
        i = bisect_right(starts, addr) - 1
        if i >= 0 and ranges[i][0] <= addr < ranges[i][1]:
            return ranges[i][2]
        return None

    code = _code_sections(inp)
    scan = scan or branches.scanner(sum(s.size for s in code))
    for sec in code:
        for pc, _word, tgt in scan(inp.elf.section_data(sec), sec.addr, starts, ends):
            dst = owner(tgt)
            if dst is None:
                continue
            src = owner(pc)
            if src is dst or (src is not None and
                              src.alt.address <= tgt <= src.alt.address + src.alt_len):
                continue  # internal, or to its own end (end inclusive): moves as a block
            if mapsyms.is_data(inp.elf, sec.index, pc):
                continue  # a word of data, a constant that reads as a branch (asked last:
                # the question decodes the symbols)
            if src is None:
                what = f"code at {pc:#x} ({inp.names.at_address(pc) or sec.name})"
            else:
                what = f"the replacement of entry {src.index}"
            ck.add("ALT017", f"{what} branches into the replacement of entry "
                   f"{dst.index} at {tgt:#x}, which runs only once copied to its site",
                   inp, ck.site_place(inp, dst), dst)

class _Ranges:
    """ALT017's ranges as ``(start, end, entry)`` by position, made from their columns
    (``_ranges_np``) only where a branch lands in one."""

    def __init__(self, starts: list[int], ends: list[int], at: list[int], table) -> None:
        self.starts, self.ends, self.at, self.table = starts, ends, at, table

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple:
        return self.starts[i], self.ends[i], self.table.entry(self.at[i])


def _ranges_np(ck: Checks, inp: Input) -> tuple[list[int], list[int], list[int]] | None:
    """ALT017's replacement ranges from the table's columns (``Table.columns``): the starts,
    the ends and the entries' positions, sorted as the reference sorts them (by address, end,
    index: an image entry's index is its position). None where the table was not read as
    columns, or a range would end past 2**64 (the reference keeps such a number whole)."""
    cols = inp.table.columns
    if cols is None or len(cols["cap"]) != inp.table.size:
        return None
    import numpy as np

    alen = cols["alt_len"]
    at = np.flatnonzero(~callback_mask(ck.profile, cols["cap"]) & (alen > 0))
    start = cols["alt_addr"][at]
    end = start + alen[at].astype(np.uint64)
    if (end < start).any():
        return None
    order = np.lexsort((at, end, start))
    return start[order].tolist(), end[order].tolist(), at[order].tolist()


def _code_sections(inp: Input) -> list:
    """The sections ALT017's scan reads: code with contents."""
    return [s for s in inp.elf.sections if s.executable and s.size and s.type != SHT_NOBITS]


def check_callback_reach(ck: Checks, inp: Input, fast: bool = True) -> None:
    """ALT014: sanitizer hooks and alternative sites a callback reaches in an image.
    ``fast``: the callbacks and the sites taken from the table's columns where it was read as
    columns (the distinct callback addresses found at once, the sites sorted by numpy)."""
    if not ck.wanted("ALT014"):
        return
    callbacks: dict[str, int] = {}
    by_cb: dict[str, Entry] = {}
    named: set[int] = set()  # callback addresses named already (thousands of entries, a few)
    cols = inp.table.columns if fast else None
    if cols is not None and len(cols["cap"]) == inp.table.size:
        import numpy as np

        at = np.flatnonzero(callback_mask(ck.profile, cols["cap"]))
        addrs = cols["alt_addr"][at]
        order = np.argsort(addrs, kind="stable")  # each address's first entry, in order
        ranked = addrs[order]
        firsts = order[np.concatenate(([True], ranked[1:] != ranked[:-1]))] if len(at) else at
        found = [(int(addrs[k]), inp.table.entry(int(at[k]))) for k in np.sort(firsts)]
        sites = (cols["site_addr"], cols["orig_len"], np.arange(len(cols["cap"])))
    else:
        is_callback: dict[int, bool] = {}
        found = []
        for e in inp.table.entries:
            cb = is_callback.get(e.cap_raw)
            if cb is None:
                cb = is_callback[e.cap_raw] = ck.profile.is_callback(e.cap_raw)
            addr = e.alt.address
            if cb and addr is not None and addr not in named:
                named.add(addr)
                found.append((addr, e))
        sites = None
    for addr, e in found:
        sym = inp.names.function_at(addr)
        name = sym.name if sym else f"{addr:#x}"
        callbacks.setdefault(name, addr)
        by_cb.setdefault(name, e)
    if not callbacks:
        return
    from altlink.reach import callback_reach  # (an image with callbacks only)

    if sites is None:
        sites = [(e.site.address, e.orig_len, e.index) for e in inp.table.entries
                 if e.site.address is not None]
    for r in callback_reach(inp.elf, callbacks, sites):
        e = by_cb[r.callback]
        via = " -> ".join(r.path)
        if r.what == "hook":
            msg = (f"callback {r.callback} reaches the sanitizer hook {r.name} (via {via}): "
                   "instrumented code runs while text is half-patched; build the callback "
                   "and its callees without instrumentation (noinstr)")
        else:
            msg = (f"callback {r.callback} reaches alternative site {r.name} (entry "
                   f"{r.entry}, via {via}): it may run code that is being patched")
        ck.add("ALT014", msg, inp, ck.site_place(inp, e), e)
