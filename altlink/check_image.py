"""The image's phase: what only a linked image decides. The table's alignment (ALT018),
branches into replacements from anywhere in its code (ALT017), what the callbacks reach
(ALT014), and, for entries the objects' checks passed, what the final addresses decide
(ALT009, a thunk after a replacement: ALT016). ``crosscheck`` compares the image with the
objects."""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace

from altlink import branches, insn
from altlink.check_core import Checks, resolve_ncaps
from altlink.check_entries import (
    check_entry,
    check_overlaps,
    check_replacement_word,
    replacement_words,
)
from altlink.elf import SHT_NOBITS
from altlink.findings import Finding
from altlink.linkset import Input, Options
from altlink.table import Entry

# The checks that only a linked image can answer; the others were made on the objects.
POST_LINK_CODES = frozenset({"ALT009", "ALT013", "ALT014", "ALT016", "ALT017", "ALT018"})


def check_after_link(image: Input, options: Options, fast: bool = True) -> list[Finding]:
    """The checks of a linked image whose objects were checked before the link (``options``
    as the link set's, the profile resolved): only what the final addresses decide.
    ``fast`` passes over the entries ``may_reencode`` rules out for the whole table at once;
    ``fast=False`` (the reference) asks ``check_linked_entry`` of each."""
    findings: list[Finding] = []
    profile = resolve_ncaps(options.profile, options.caps, [image.table], findings)
    ck = Checks(replace(options, profile=profile), only=POST_LINK_CODES, findings=findings)
    for e in may_reencode(image, profile) if fast else image.table.entries:
        check_linked_entry(ck, image, e)
    image_checks(ck, image)
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


def image_alone_checks(ck: Checks, inp: Input) -> None:
    """An image checked alone (``altlink check`` of an image, and what manifest and patch
    refuse): each entry's checks as for an object's, the sites they share, then the
    image-wide checks; added to ``ck``."""
    for pos, e in enumerate(inp.table.entries):
        check_entry(ck, inp, pos, e)
    if ck.wanted("ALT010"):
        check_overlaps(ck, inp)
    image_checks(ck, inp)


def image_checks(ck: Checks, inp: Input) -> None:
    """The image-wide checks, added to ``ck``."""
    check_table_alignment(ck, inp)
    check_branches_into_replacements(ck, inp)
    check_callback_reach(ck, inp)


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

def check_branches_into_replacements(ck: Checks, inp: Input, scan=None) -> None:
    """ALT017: a branch from outside a replacement into it, or from one replacement into
    another entry's replacement. Replacement code runs only once copied to its site. ``scan`` is
    the word scan (``branches.into_ranges``); by default the one for the code's size."""
    callback: dict[int, bool] = {}
    for e in inp.table.entries:
        if e.cap_raw not in callback:
            callback[e.cap_raw] = ck.profile.is_callback(e.cap_raw)
    # by address, end and index (entries may share one), then position: never the entries
    ranges = [(r[0], r[1], r[4]) for r in sorted(
        (e.alt.address, e.alt.address + e.alt_len, e.index, pos, e)
        for pos, e in enumerate(inp.table.entries)
        if e.alt.address is not None and e.alt_len and not callback[e.cap_raw])]
    if not ranges:
        return
    starts = [r[0] for r in ranges]
    ends = [r[1] for r in ranges]
    def owner(addr: int):
        i = bisect_right(starts, addr) - 1
        if i >= 0 and ranges[i][0] <= addr < ranges[i][1]:
            return ranges[i][2]
        return None

    code = [s for s in inp.elf.sections if s.executable and s.size and s.type != SHT_NOBITS]
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
            if src is None:
                what = f"code at {pc:#x} ({inp.names.at_address(pc) or sec.name})"
            else:
                what = f"the replacement of entry {src.index}"
            ck.add("ALT017", f"{what} branches into the replacement of entry "
                   f"{dst.index} at {tgt:#x}, which runs only once copied to its site",
                   inp, ck.site_place(inp, dst), dst)

def check_callback_reach(ck: Checks, inp: Input) -> None:
    """ALT014: sanitizer hooks and alternative sites a callback reaches in an image."""
    if not ck.wanted("ALT014"):
        return
    from altlink.reach import callback_reach

    callbacks: dict[str, int] = {}
    by_cb: dict[str, Entry] = {}
    for e in inp.table.entries:
        if ck.profile.is_callback(e.cap_raw) and e.alt.address is not None:
            sym = inp.names.function_at(e.alt.address)
            name = sym.name if sym else f"{e.alt.address:#x}"
            callbacks.setdefault(name, e.alt.address)
            by_cb.setdefault(name, e)
    if not callbacks:
        return
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
