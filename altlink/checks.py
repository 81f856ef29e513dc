"""The checks of docs/reference.md, section 3 over decoded tables: a link set of objects, or a linked image.

Input is plain data (ELF files, their decoded tables, a profile, a capability table); output is
a list of findings. Nothing here prints or knows of JSON.
"""
from __future__ import annotations

import difflib
import struct
from collections import Counter
from dataclasses import dataclass, replace

from altlink import branches, insn
from altlink.caps import CapTable
from altlink.elf import (
    ET_REL,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_RELA,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    STT_GNU_IFUNC,
    STT_NOTYPE,
    STT_OBJECT,
    STT_SECTION,
    ElfFile,
    Reloc,
    Section,
    Symbol,
)
from altlink.findings import CODES, ERROR, WARNING, Deferred, Finding, finding
from altlink.linkset import Input, Options
from altlink.table import REPLACEMENT_SECTION, Entry, Profile, Table

MAX_CB_MASK = 0x7FFF
# The per-entry codes decided on the objects; a check of the linked image that wants none of
# them makes only the checks the final addresses decide.
OBJECT_ENTRY_CODES = frozenset({"ALT001", "ALT002", "ALT003", "ALT004", "ALT005", "ALT006",
                                "ALT007", "ALT008", "ALT010", "ALT011", "ALT015"})


@dataclass(frozen=True)
class Definition:
    """Where a global symbol is defined: which file, and the symbol."""

    path: str
    symbol: Symbol
    section: Section | None


def definitions(elf: ElfFile, global_only: bool) -> dict[str, Symbol]:
    """The symbols an ELF file defines, by name (a global wins over locals, else the first).
    Made once per file and kept on it: a kernel's modules are checked one by one against one
    vmlinux."""
    cache = elf.__dict__.setdefault("_altlink_defs", {})
    index = cache.get(global_only)
    if index is None:
        index = {}
        for s in elf.symbols:
            if s.shndx == SHN_UNDEF or not s.name or s.type == STT_SECTION:
                continue
            if global_only and s.bind == STB_LOCAL:
                continue
            cur = index.get(s.name)
            if cur is None or (cur.bind == STB_LOCAL and s.bind != STB_LOCAL):
                index[s.name] = s
        cache[global_only] = index
    return index


def _definition(elf: ElfFile, name: str, global_only: bool) -> Definition | None:
    """Where an ELF file defines ``name`` (``definitions``)."""
    s = definitions(elf, global_only).get(name)
    if s is None:
        return None
    secs = elf.sections
    return Definition(elf.path, s, secs[s.shndx] if s.shndx < len(secs) else None)


def _image_definition(elf: ElfFile, name: str) -> Definition | None:
    """Where a ``--symbols-from`` image defines ``name`` (a global wins), looked up by name
    alone: the image's whole symbol table is not decoded for a handful of callbacks."""
    cache = elf.__dict__.setdefault("_altlink_image_defs", {})
    if name in cache:
        return cache[name]
    found = [s for s in elf.find_symbols(name)
             if s.shndx != SHN_UNDEF and s.type != STT_SECTION]
    found.sort(key=lambda s: s.bind == STB_LOCAL)
    d = None
    if found:
        s, secs = found[0], elf.sections
        d = Definition(elf.path, s, secs[s.shndx] if s.shndx < len(secs) else None)
    cache[name] = d
    return d


class SymbolSpace:
    """The global symbols of a link set, then those of ``--symbols-from`` images."""

    def __init__(self, objects: list[Input], images: list[ElfFile]) -> None:
        self.objects = objects
        self.images = images

    def lookup(self, name: str, asking: Input | None = None) -> Definition | None:
        """The definition of ``name``; ``asking`` (an object that has it undefined, so does
        not define it) is skipped."""
        for inp in self.objects:
            if inp is asking:
                continue
            d = _definition(inp.elf, name, True)
            if d is not None:
                return d
        for elf in self.images:
            d = _image_definition(elf, name)
            if d is not None:
                return d
        return None

    def function_names(self) -> set[str]:
        """The global functions the link set and the images define, for "did you mean"."""
        names = {n for inp in self.objects for n, s in definitions(inp.elf, True).items()
                 if _is_function(s)}
        return names | {n for elf in self.images for n, s in definitions(elf, True).items()
                        if _is_function(s)}

    def did_you_mean(self, name: str) -> str:
        """`` (did you mean my_cb?)`` for a misspelled callback, or ""."""
        cache = self.__dict__.setdefault("_close", {})
        if name not in cache:
            close = difflib.get_close_matches(name, self.function_names(), n=1, cutoff=0.75)
            cache[name] = f" (did you mean {close[0]}?)" if close else ""
        return cache[name]


def resolve_ncaps(profile: Profile, caps: CapTable | None, tables: list[Table],
                  findings: list[Finding]) -> Profile:
    """Fix NCAPS for the v4.17 profile: from the table or options, else from the entries.

    Without a table or ``--ncaps``, the callback marker is inferred: entries with no
    replacement (``alt_len == 0``) whose relocation names a symbol (in an object), or that
    patch a site (in an image, where no relocation is left) are callbacks, and they all carry
    the same marker, which is NCAPS.
    """
    if caps is not None:
        if profile.ncaps is not None and profile.ncaps != caps.ncaps:
            findings.append(finding("ALT011", f"--ncaps {profile.ncaps} contradicts the "
                                    f"capability table {caps.path} ({caps.ncaps} capabilities)",
                                    caps.path or "<caps>"))
        profile = Profile(profile.abi, caps.ncaps)
    if profile.ncaps is not None or profile.abi != "linux-v4.17":
        return profile
    markers = Counter(e.cap_raw for t in tables for e in t.entries
                      if e.alt_len == 0 and (e.alt.symbol or
                                             (e.alt.address is not None and e.orig_len)))
    if len(markers) == 1:
        return Profile(profile.abi, next(iter(markers)))
    if len(markers) > 1:
        # The most common marker is taken as NCAPS, so that every other callback entry is
        # reported as contradicting it (ALT011), not as a 0-byte static replacement (ALT001).
        ncaps = min(markers, key=lambda m: (-markers[m], m))
        where = next(t.path for t in tables for e in t.entries if e.cap_raw == ncaps)
        seen = ", ".join(f"{m} in {n} entr{'y' if n == 1 else 'ies'}"
                         for m, n in sorted(markers.items()))
        findings.append(finding("ALT011", f"callback entries carry different markers ({seen}): "
                                f"NCAPS cannot be inferred, {ncaps} is assumed; give --ncaps "
                                "or --cap-table", where))
        return Profile(profile.abi, ncaps)
    return profile


class Checker:
    """Runs the checks over the inputs of one check (a link set, or one image)."""

    def __init__(self, inputs: list[Input], options: Options,
                 symbols_from: list[ElfFile] | None = None,
                 only: frozenset[str] | None = None, defer: bool = False) -> None:
        self.inputs = inputs
        self.options = options
        self.only = only
        # Deferring (an object's record, records.make_record): a callback the object leaves
        # undefined becomes a Deferred, resolved once the whole link set is known; the
        # link-set checks (capability table, flags) are left to the link set.
        self.defer = defer
        self._pos = 0
        self._callbacks_ok: set[tuple[str | None, str]] = set()
        self.findings: list[Finding] = []
        for inp in inputs:
            self.findings.extend(f for f in inp.table.findings if self._wanted(f.code))
        self.profile = resolve_ncaps(options.profile, options.caps,
                                     [i.table for i in inputs], self.findings)
        objects = [i for i in inputs if i.elf.type == ET_REL]
        self._objects = objects
        self._symbols_from = symbols_from or []
        self._space: SymbolSpace | None = None
        # A module is one link set: the module structure in any of its objects makes them all
        # the module, and a callback defined in any of them is the module's own (ALT015).
        self.module = options.module or any(i.is_module for i in objects)
        self._own = {i.path for i in objects}
        # The word scan of ALT017 (branches.into_ranges); the tests name one implementation.
        self.branch_scan = None

    def space(self) -> SymbolSpace:
        """The link set's global symbols, read when a callback first needs resolving."""
        if self._space is None:
            self._space = SymbolSpace(self._objects, self._symbols_from)
        return self._space

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        if not self.defer:
            self._check_cap_table()
            self._check_flags_agree()
        # After a link, the entry checks the objects already passed are not made again: only
        # what the final addresses decide (ALT009, a thunk at a replacement's end: ALT016).
        relink = self.only is not None and not (self.only & OBJECT_ENTRY_CODES)
        for inp in self.inputs:
            for self._pos, e in enumerate(inp.table.entries):
                if relink:
                    self._check_entry_linked(inp, e)
                else:
                    self._check_entry(inp, e)
            if self._wanted("ALT010"):
                self._check_overlaps(inp)
            if inp.elf.type != ET_REL:
                self._check_table_alignment(inp)
                self._check_branches_into_replacements(inp)
                self._check_callback_reach(inp)
            elif self._wanted("ALT017"):
                self._check_object_branches(inp)
        return self.findings

    def _wanted(self, code: str) -> bool:
        return self.only is None or code in self.only

    def add(self, code: str, message: str, inp: Input, place, entry: Entry | None = None,
            severity: str | None = None, at: tuple | None = None) -> None:
        """Record a finding; ``place`` may be a callable, named only when a finding is made
        (naming a place builds the symbol index of its section: most entries never need it).
        ``at`` is where its source line is looked up, (section, offset) or ("", address),
        when that is not the entry's site (an instruction of the replacement)."""
        if not self._wanted(code):
            return
        if callable(place):
            place = place()
        f = finding(code, message, inp.path, place, entry=entry.index if entry else None,
                    severity=severity)
        if entry is not None:
            site = entry.site
            if site.address is not None:
                f = replace(f, site=("", site.address))
            elif site.defined:
                f = replace(f, site=(site.section, site.offset))
        if at is not None:  # its line, else the site's (sources.attach)
            f = replace(f, site=at + (f.site or ()))
        self.findings.append(f)

    @staticmethod
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

    # -- places ------------------------------------------------------------------------------
    def site_place(self, inp: Input, e: Entry) -> str:
        if not e.site.defined and e.site.address is None:  # an undefined symbol: no place
            return self.entry_place(e)
        return self._place(inp, e.site.section_index, e.site.offset, e.site.address,
                           e.site.section)

    def _place(self, inp: Input, shndx: int, offset: int, address: int | None,
               secname: str) -> str:
        if shndx == SHN_UNDEF:
            return f"{address:#x}" if address is not None else "?"
        if address is not None:
            name = inp.names.at_address(address)
            where = f"{secname}+{offset:#x}"
            return f"{where} {name}" if name else where
        name = inp.names.at_offset(shndx, offset)
        where = f"{secname}+{offset:#x}"
        return f"{where} {name}" if name else where

    @staticmethod
    def entry_place(e: Entry) -> str:
        return f"{e.table_section} entry {e.index}"

    def cap_label(self, cap: int | None) -> str:
        if cap is None:
            return "callback"
        name = self.options.caps.name(cap) if self.options.caps else None
        return f"cap {cap} {name}" if name else f"cap {cap}"

    # -- table-wide --------------------------------------------------------------------------
    def _check_cap_table(self) -> None:
        p = self.profile
        if p.abi == "linux-v6.1" and p.ncaps is not None and p.ncaps > MAX_CB_MASK:
            path = self.options.caps.path if self.options.caps else "<ncaps>"
            self.findings.append(finding("ALT011", f"{p.ncaps} capabilities reach the callback "
                                         "bit 0x8000 of the linux-v6.1 profile", path))
        if p.abi == "linux-v4.17" and p.ncaps is not None and p.ncaps > 0xFFFF:
            path = self.options.caps.path if self.options.caps else "<ncaps>"
            self.findings.append(finding("ALT011", f"{p.ncaps} capabilities do not fit the "
                                         "16-bit cap field", path))

    def _check_flags_agree(self) -> None:
        f = flags_finding([(i.path, [s.flags for s in i.table.sections]) for i in self.inputs])
        if f is not None and self._wanted(f.code):
            self.findings.append(f)

    # -- one entry ---------------------------------------------------------------------------
    def _check_entry(self, inp: Input, e: Entry) -> None:
        p = self.profile
        callback = p.is_callback(e.cap_raw)
        cap = p.cap(e.cap_raw)

        def site_place() -> str:
            return self.site_place(inp, e)

        if not self._check_cap(inp, e, callback, cap, site_place):
            return
        site_sec = self._check_site(inp, e, site_place, cap)
        if callback:
            if e.alt_len != 0:
                self.add("ALT002", f"callback entry has alt_len {e.alt_len}, must be 0",
                         inp, site_place, e)
            self._check_callback(inp, e, site_place)
            return
        if e.alt_len != e.orig_len:
            self.add("ALT001", f"replacement is {e.alt_len} bytes, site is {e.orig_len} "
                     f"({self.cap_label(cap)})", inp, site_place, e)
        repl_sec = self._check_replacement_place(inp, e, site_place)
        if repl_sec is not None and site_sec is not None:
            self._check_replacement_code(inp, e, repl_sec, site_place)

    def _check_entry_linked(self, inp: Input, e: Entry) -> None:
        if self.profile.is_callback(e.cap_raw) or e.alt.address is None \
                or e.site.address is None:
            return
        site_sec = inp.elf.section_at(e.site.address)
        repl_sec = inp.elf.section_at(e.alt.address)
        if site_sec is None or repl_sec is None or repl_sec.type == 8 \
                or e.alt.offset + min(e.alt_len, e.orig_len) > repl_sec.size:
            return

        def site_place() -> str:
            return self.site_place(inp, e)

        self._check_replacement_code(inp, e, repl_sec, site_place, linked=True)

    def _check_cap(self, inp: Input, e: Entry, callback: bool, cap: int | None,
                   place: str) -> bool:
        p = self.profile
        named = e.alt.symbol
        if named is None and e.alt.address is not None and not callback and e.alt_len == 0:
            sym = inp.names.function_at(e.alt.address)  # an image: no relocation is left
            named = sym.name if sym else None
        if p.abi == "linux-v4.17" and not callback and e.alt_len == 0 and named \
                and p.ncaps is not None and e.orig_len:
            self.add("ALT011", f"entry looks like a callback ({named}) with marker "
                     f"{e.cap_raw}, but NCAPS is {p.ncaps}: the table and the code disagree",
                     inp, place, e)
            return False
        if p.abi == "linux-v6.1" and callback and e.alt_len and e.alt_len == e.orig_len \
                and not self._names_a_function(inp, e):
            # A static entry whose capability reached the callback bit (Linux 6.1 guards
            # against it: "cpucaps have overflown ARM64_CB_BIT"), not a callback with a length.
            self.add("ALT011", f"capability field {e.cap_raw:#06x} has bit 15 set, the callback "
                     "marker of linux-v6.1, but the entry has a replacement as long as its site, "
                     "as a static entry does: its capability does not fit below 0x8000, and the "
                     "patcher would call the replacement code as a callback", inp, place, e)
            return False
        if cap is not None and p.ncaps is not None and cap >= p.ncaps:
            self.add("ALT011", f"capability {cap} is not in the table (NCAPS {p.ncaps})",
                     inp, place, e)
        return True

    @staticmethod
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

    def _section_of(self, inp: Input, shndx: int, address: int | None) -> Section | None:
        if address is not None:
            return inp.elf.section_at(address)
        if 0 < shndx < len(inp.elf.sections):
            return inp.elf.sections[shndx]
        return None

    def _check_site(self, inp: Input, e: Entry, place: str, cap: int | None) -> Section | None:
        if e.orig_len == 0 or e.orig_len % 4:
            self.add("ALT003", f"site length {e.orig_len} is not a non-zero multiple of 4 "
                     f"({self.cap_label(cap)})", inp, place, e)
        pos = e.site.address if e.site.address is not None else e.site.offset
        if pos % 4:
            self.add("ALT003", f"site is not 4-byte aligned ({self.cap_label(cap)})", inp, place,
                     e)
        if e.site.address is not None and not e.site.defined:
            return None  # outside the image: reported by the table reader (ALT012)
        sec = self._section_of(inp, e.site.section_index, e.site.address)
        if sec is None or not sec.executable:
            where = f"in {sec.name}" if sec is not None else "outside every section"
            if e.site.section_index == SHN_UNDEF and e.site.symbol:
                where = f"at undefined symbol {e.site.symbol}"
            self.add("ALT004", f"site is {where}, not in an executable section", inp, place, e)
            return None
        if e.site.offset + e.orig_len > sec.size or e.site.offset < 0:
            self.add("ALT004", f"site runs past the end of {sec.name} ({sec.size:#x} bytes)",
                     inp, place, e)
            return None
        return sec

    def _check_replacement_place(self, inp: Input, e: Entry, place: str) -> Section | None:
        if e.alt.address is not None and not e.alt.defined:
            return None  # outside the image: reported by the table reader (ALT012)
        sec = self._section_of(inp, e.alt.section_index, e.alt.address)
        if sec is None:
            what = f"undefined symbol {e.alt.symbol}" if e.alt.symbol and not e.alt.defined \
                else "outside every section"
            self.add("ALT005", f"replacement is {what}", inp, place, e)
            return None
        if not (sec.executable or sec.name == REPLACEMENT_SECTION):
            self.add("ALT005", f"replacement is in {sec.name}, not in {REPLACEMENT_SECTION} or "
                     "an executable section", inp, place, e)
            return None
        if sec.type == SHT_NOBITS:
            self.add("ALT005", f"replacement is in {sec.name}, which has no contents (NOBITS)",
                     inp, place, e)
            return None
        if e.alt.offset < 0 or e.alt.offset + e.alt_len > sec.size:
            self.add("ALT005", f"replacement {sec.name}+{e.alt.offset:#x} ({e.alt_len} bytes) "
                     f"runs past the end of {sec.name} ({sec.size:#x} bytes)", inp, place, e)
            return None
        return sec

    # -- replacement code --------------------------------------------------------------------
    def _check_replacement_code(self, inp: Input, e: Entry, sec: Section, place: str,
                                linked: bool = False) -> None:
        """``linked``: only what the final addresses decide (ALT009, ALT016), which only the
        words a patcher re-encodes can give: the others are not classified at all."""
        n = min(e.alt_len, e.orig_len) // 4
        if n == 0:
            return
        data = inp.elf.section_data(sec)
        words = struct.unpack_from(f"<{n}I", data, e.alt.offset)
        if linked and not any(w >> 24 in _REENCODED_TOPS for w in words):
            return  # no branch, no ADRP
        relocs = inp.relocs_of(sec) if inp.elf.type == ET_REL else {}
        image = e.alt.address is not None
        for i, word in enumerate(words):
            c = insn.decode(word) if linked else insn.classify(word)
            if linked and c.kind not in insn.FIXUP_KINDS:
                continue
            off = e.alt.offset + 4 * i
            r = relocs.get(off)
            if c.kind == "plain":
                continue
            # In an image, show the instruction where it is linked (its real target).
            at = e.alt.address + 4 * i if image else 0
            if c.kind in ("immovable", "pcrel-unknown"):
                why = ("cannot be moved: it is PC-relative and no patcher re-encodes it"
                       if c.kind == "immovable" else
                       "is PC-relative in a form altlink cannot re-encode; it is never copied "
                       "silently")
                self.add("ALT008", f"replacement instruction {i} ({c.name}, {_dis(word, at)}) "
                         f"{why}", inp, place, e, at=self._insn_at(inp, e, sec, off, i))
                continue
            internal = self._internal_target(inp, e, sec, off, word, c, r)
            if internal:
                end = e.alt.offset + e.alt_len
                if image and c.offset is not None and off + c.offset == end \
                        and _linker_stub(inp, e.alt.address + e.alt_len):
                    # lld puts a range-extension thunk right after the replacement: a patcher
                    # takes the branch for one to the end of the block and copies it as is.
                    self.add("ALT016", f"replacement instruction {i} ({_dis(word, at)}) "
                             "branches to a linker thunk or veneer right after the replacement: "
                             "a patcher copies it as a branch to the end of the block, and at the "
                             "site it falls through instead of reaching the thunk's target "
                             "(place the target within 128 MiB of the replacement)",
                             inp, place, e)
                continue
            problem = insn.profile_problem(word, self.profile.abi)
            if problem:
                self.add("ALT008", f"replacement instruction {i} ({_dis(word, at)}): {problem}",
                         inp, place, e, at=self._insn_at(inp, e, sec, off, i))
                continue
            if image:
                pc = e.alt.address + 4 * i
                to = e.site.address + 4 * i
                try:
                    insn.relocate(word, pc, to, abi=self.profile.abi)
                except (insn.RangeError, ValueError) as err:  # ValueError: misaligned
                    self.add("ALT009", f"replacement instruction {i} ({_dis(word, at)}) at the "
                             f"site {to:#x}: {err}", inp, place, e)

    def _internal_target(self, inp: Input, e: Entry, sec: Section, off: int, word: int,
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

    # -- callbacks ---------------------------------------------------------------------------
    def _check_callback(self, inp: Input, e: Entry, place: str) -> None:
        alt = e.alt
        module = self.module
        if alt.address is not None:  # image: the address must be a function in code
            if not alt.defined:
                return  # outside the image: reported by the table reader (ALT012)
            sec = inp.elf.section_at(alt.address)
            sym = inp.names.function_at(alt.address)
            name = sym.name if sym else f"{alt.address:#x}"
            if sec is None or not sec.executable:
                self.add("ALT007", f"callback {name} is not in an executable section", inp,
                         place, e)
            elif sym is not None and not _is_function(sym):
                self.add("ALT007", f"callback {name} is not a function", inp, place, e)
            return
        if not alt.defined:
            if self.defer:
                self.findings.append(Deferred(self._pos, alt.symbol or ""))
                return
            if (alt.symbol, inp.path) in self._callbacks_ok:
                return  # the same callback, from the same file, already found fine
            d = self.space().lookup(alt.symbol or "", inp)
            if callback_fine(d, module, self._own):
                self._callbacks_ok.add((alt.symbol, inp.path))
                return
            if d is None:
                if not unresolved_is_error(self.options, module, self._symbols_from):
                    return
                where = " or in the --symbols-from images" if self._symbols_from else ""
                self.add("ALT006", f"callback {alt.symbol} is not defined in the link "
                         f"set{where}" + self.space().did_you_mean(alt.symbol or ""), inp,
                         self.entry_place(e), e)
                return
            if module and d.path in self._own:
                self.add("ALT015", f"callback {alt.symbol} is defined by the module itself "
                         "(Linux rejects such modules at load)", inp, place, e)
            self._check_callback_def(inp, e, d.symbol, d.section, alt.symbol or "", place)
            return
        sec = inp.elf.sections[alt.section_index]
        if alt.symbol:
            sym = next((s for s in inp.elf.symbols if s.name == alt.symbol
                        and s.shndx == alt.section_index), None)
        else:
            sym = inp.names.function_at_offset(alt.section_index, alt.offset)
        name = sym.name if sym else f"{sec.name}+{alt.offset:#x}"
        if module:
            self.add("ALT015", f"callback {name} is defined by the module itself (Linux "
                     "rejects such modules at load)", inp, place, e)
        if sym is None:
            if not sec.executable:
                self.add("ALT007", f"callback {name} is not in an executable section", inp,
                         place, e)
            return
        self._check_callback_def(inp, e, sym, sec, name, place)

    def _check_callback_def(self, inp: Input, e: Entry, sym: Symbol, sec: Section | None,
                            name: str, place: str) -> None:
        if sec is None or not sec.executable:
            where = sec.name if sec is not None else "no section"
            self.add("ALT007", f"callback {name} is in {where}, not an executable section",
                     inp, place, e)
        elif not _is_function(sym):
            self.add("ALT007", f"callback {name} is not a function (symbol type "
                     f"{_SYMBOL_TYPES.get(sym.type, sym.type)})",
                     inp, place, e)

    # -- image-wide ----------------------------------------------------------------------------
    def _check_table_alignment(self, inp: Input) -> None:
        for sec in inp.table.sections:
            if sec.addr % 4:
                self.add("ALT018", f"{sec.name} is at {sec.addr:#x}, not 4-byte aligned: a "
                         "runtime reading it with the MMU off faults", inp,
                         f"section {sec.index} {sec.name}")

    def _check_branches_into_replacements(self, inp: Input) -> None:
        """ALT017: a branch from outside a replacement into it, or from one replacement into
        another entry's replacement. Replacement code runs only once copied to its site."""
        ranges = sorted(((e.alt.address, e.alt.address + e.alt_len, e)
                         for e in inp.table.entries
                         if e.alt.address is not None and e.alt_len
                         and not self.profile.is_callback(e.cap_raw)),
                        key=lambda r: (r[0], r[1], r[2].index))  # entries may share one
        if not ranges:
            return
        starts = [r[0] for r in ranges]
        ends = [r[1] for r in ranges]
        from bisect import bisect_right

        def owner(addr: int):
            i = bisect_right(starts, addr) - 1
            if i >= 0 and ranges[i][0] <= addr < ranges[i][1]:
                return ranges[i][2]
            return None

        code = [s for s in inp.elf.sections if s.executable and s.size and s.type != SHT_NOBITS]
        scan = self.branch_scan or branches.scanner(sum(s.size for s in code))
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
                self.add("ALT017", f"{what} branches into the replacement of entry "
                         f"{dst.index} at {tgt:#x}, which runs only once copied to its site",
                         inp, self.site_place(inp, dst), dst)

    def _check_object_branches(self, inp: Input) -> None:
        """ALT017 in an object, where the object already fixes the target: a branch the
        assembler resolved inside a section of replacements (no relocation), and a relocated
        branch of a replacement whose symbol the object defines (not weak) in a section of
        replacements. Other relocated branches land where the link puts them: the linked image
        is checked for those."""
        secs = inp.elf.sections
        by_sec: dict[int, list[tuple[int, int, Entry]]] = {}
        for e in inp.table.entries:
            if e.alt.defined and e.alt.address is None and e.alt_len > 0 \
                    and not self.profile.is_callback(e.cap_raw) \
                    and 0 < e.alt.section_index < len(secs) \
                    and secs[e.alt.section_index].type != SHT_NOBITS:
                by_sec.setdefault(e.alt.section_index, []).append(
                    (e.alt.offset, e.alt.offset + e.alt_len, e))
        if not by_sec:
            return
        from bisect import bisect_right

        index = {}
        for shndx, ranges in by_sec.items():
            ranges.sort(key=lambda r: (r[0], r[1], r[2].index))  # entries may share one
            index[shndx] = ([r[0] for r in ranges], [r[1] for r in ranges], ranges)

        def owner(shndx: int, off: int) -> Entry | None:
            got = index.get(shndx)
            if got is None:
                return None
            starts, _, ranges = got
            i = bisect_right(starts, off) - 1
            if i >= 0 and ranges[i][0] <= off < ranges[i][1]:
                return ranges[i][2]
            return None

        for shndx, (starts, ends, ranges) in index.items():
            sec = secs[shndx]
            data = inp.elf.section_data(sec)
            reloc_at = _reloc_finder(inp, sec)
            scan = self.branch_scan or branches.scanner(len(data))
            found = [(off, shndx, tgt) for off, _w, tgt in scan(data, 0, starts, ends)
                     if reloc_at(off) is None]
            for lo, hi, _e in ranges:
                for off in range(lo - lo % 4, min(hi, len(data) - 3), 4):
                    if not branches.maybe_branch(int.from_bytes(data[off:off + 4], "little")):
                        continue
                    r = reloc_at(off)
                    if r is None:
                        continue  # the assembler's: in the scan above
                    try:
                        sym = inp.elf.symbol(r.sym)
                    except IndexError:
                        continue
                    if sym.shndx in index and sym.bind != STB_WEAK:
                        found.append((off, sym.shndx, sym.value + r.addend))
            for off, tshndx, tgt in sorted(set(found)):
                dst = owner(tshndx, tgt)
                if dst is None:
                    continue
                src = owner(shndx, off)
                if src is dst or (src is not None and tshndx == shndx and
                                  src.alt.offset <= tgt <= src.alt.offset + src.alt_len):
                    continue  # internal, or to its own end (end inclusive): moves as a block
                if src is None:
                    name = inp.names.at_offset(shndx, off)
                    what = f"code at {sec.name}+{off:#x}" + (f" ({name})" if name else "")
                else:
                    what = f"the replacement of entry {src.index}"
                self.add("ALT017", f"{what} branches into the replacement of entry "
                         f"{dst.index} at {secs[tshndx].name}+{tgt:#x}, which runs only once "
                         "copied to its site", inp, self.site_place(inp, dst), dst)

    def _check_callback_reach(self, inp: Input) -> None:
        """ALT014: sanitizer hooks and alternative sites a callback reaches in an image."""
        if not self._wanted("ALT014"):
            return
        from altlink.reach import callback_reach

        callbacks: dict[str, int] = {}
        by_cb: dict[str, Entry] = {}
        for e in inp.table.entries:
            if self.profile.is_callback(e.cap_raw) and e.alt.address is not None:
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
            self.add("ALT014", msg, inp, self.site_place(inp, e), e)

    # -- overlaps ----------------------------------------------------------------------------
    def _check_overlaps(self, inp: Input) -> None:
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
                place = self.site_place(inp, e2)
                if (a1, b1) == (a2, b2):
                    self.add("ALT010", f"entries {e1.index} and {e2.index} patch the same "
                             "site; the later one wins when both apply", inp, place, e2,
                             severity=WARNING)
                else:
                    self.add("ALT010", f"entries {e1.index} and {e2.index} patch overlapping "
                             "sites", inp, place, e2, severity=ERROR)
            active.append((s2, a2, b2, e2))


def _reloc_finder(inp: Input, sec: Section):
    """The relocation at an offset of ``sec`` (or None), for a few offsets: looked up in the
    relocation sections' bytes, at C speed, without indexing them all (a kernel module's
    .text has thousands of relocations, and its ALT017 check asks about a few words)."""
    known = inp._relocs.get(sec.index)
    rel = inp.elf.relocation_sections_for(sec)
    if known is not None or any(rs.type != SHT_RELA or rs.size % 24 for rs in rel):
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


# What the linkers call the code they insert (GNU ld's veneers, lld's thunks), and that code
# (insn.is_veneer).
_STUB_NAMES = ("_veneer", "Thunk_")


def _linker_stub(inp: Input, addr: int) -> bool:
    sym = inp.names.function_at(addr)
    if sym is not None and any(m in sym.name for m in _STUB_NAMES):
        return True
    code = inp.elf.read_addr(addr, 12) or inp.elf.read_addr(addr, 8)
    if not code:
        return False
    return insn.is_veneer(struct.unpack(f"<{len(code) // 4}I", code))


# The top bytes of the words a patcher re-encodes: the immediate branches
# (branches.maybe_branch) and ADRP.
_REENCODED_TOPS = frozenset(b for b in range(256) if branches.maybe_branch(b << 24)
                            or (b << 24) & 0x9F000000 == 0x90000000)

_SYMBOL_TYPES = {STT_NOTYPE: "STT_NOTYPE", STT_OBJECT: "STT_OBJECT", STT_FUNC: "STT_FUNC",
                 STT_SECTION: "STT_SECTION", 6: "STT_TLS"}


def _is_function(sym: Symbol) -> bool:
    return sym.type in (STT_FUNC, STT_GNU_IFUNC, STT_NOTYPE)


def _flags(flags: int) -> str:
    out = "".join(c for bit, c in ((2, "a"), (1, "w"), (4, "x")) if flags & bit)
    return f'"{out}"'


def _dis(word: int, address: int = 0) -> str:
    got = insn.disasm(struct.pack("<I", word), address)
    return got[0] if got else f".inst {word:#010x}"


def unresolved_is_error(options: Options, module: bool, images: list) -> bool:
    """Whether a callback defined nowhere in the link set is ALT006. A partial link leaves it
    to the link that follows; a module's is resolved against the kernel when it is loaded, so
    it is checked only against the kernel images the user names (``--symbols-from``)."""
    if options.partial:
        return False
    return not module or bool(images)


def callback_fine(d: Definition | None, module: bool, own: set[str]) -> bool:
    """A callback defined elsewhere in the link set needs no finding: defined (ALT006), not
    by the module itself (ALT015), a function in code (ALT007)."""
    return d is not None and not (module and d.path in own) and d.section is not None \
        and d.section.executable and _is_function(d.symbol)


def flags_finding(tables: list[tuple[str, list[int]]]) -> Finding | None:
    """ALT012 when the link set's objects give .altinstructions different flags: ``tables``
    is each input's path and its table sections' flags."""
    seen: dict[int, str] = {}
    for path, flags in tables:
        for f in flags:
            seen.setdefault(f, path)
    if len(seen) < 2:
        return None
    desc = ", ".join(f"{_flags(f)} in {p}" for f, p in seen.items())
    return finding("ALT012", f"inputs disagree on the flags of .altinstructions: {desc}",
                   tables[0][0], "link set")


def check(inputs: list[Input], options: Options,
          symbols_from: list[ElfFile] | None = None) -> list[Finding]:
    return Checker(inputs, options, symbols_from).run()


# What manifest and patch refuse: the codes check reports at error severity (ALT010 is an
# error for overlapping sites, a warning for one shared site). The warnings' checks (ALT014's
# reach of the callbacks) are not run for it.
REFUSING_CODES = frozenset(c for c, (sev, _t) in CODES.items() if sev == ERROR) | {"ALT010"}


def refusals(image: Input, options: Options) -> dict[int, Finding]:
    """The entries of a linked image that ``check`` reports at error severity under
    ``options``, each with its first such finding: ``manifest`` leaves them out and ``patch``
    refuses them, with the same code and message as ``check``."""
    out: dict[int, Finding] = {}
    for f in Checker([image], options, only=REFUSING_CODES).run():
        if f.severity == ERROR and f.entry is not None:
            out.setdefault(f.entry, f)
    return out
