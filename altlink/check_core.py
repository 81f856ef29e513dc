"""What the checks of every phase share: the findings of one check as they are made (``Checks``),
how a finding names its place, and the profile a check runs under (``resolve_ncaps``).

The checks themselves are by phase: ``check_entries`` (each entry of a table, in an object or
an image), ``check_objects`` (what one object alone decides), ``check_linkset`` (what the
whole link set decides: the capability table, the table's flags, callbacks between objects),
``check_image`` (what only the linked image decides). ``checks`` runs them for ``altlink
check``.
"""
from __future__ import annotations

from collections import Counter

from altlink.caps import CapTable
from altlink.elf import SHN_UNDEF, STT_FUNC, STT_GNU_IFUNC, STT_NOTYPE
from altlink.findings import Finding, finding
from altlink.linkset import Input, Options
from altlink.table import NCAPS_MARKED, Entry, Profile, Table
from altlink.values import replace


class Checks:
    """The findings of one check, as its checks add them, under the options it runs with
    (``options.profile`` resolved: NCAPS known; ``options.module`` saying whether the link
    set is a module). ``only``, if given, is the codes wanted: the others are not made."""

    def __init__(self, options: Options, only: frozenset[str] | None = None,
                 findings: list | None = None) -> None:
        self.options = options
        self.profile = options.profile
        self.module = options.module
        self.only = only
        self.findings: list = [] if findings is None else findings

    def wanted(self, code: str) -> bool:
        return self.only is None or code in self.only

    def add(self, code: str, message: str, inp: Input, place, entry: Entry | None = None,
            severity: str | None = None, at: tuple | None = None) -> None:
        """Record a finding; ``place`` may be a callable, named only when a finding is made
        (naming a place builds the symbol index of its section: most entries never need it).
        ``at`` is where its source line is looked up, (section, offset) or ("", address),
        when that is not the entry's site (an instruction of the replacement)."""
        if not self.wanted(code):
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
    if profile.ncaps is not None or profile.abi not in NCAPS_MARKED:
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


def cap_in_table(profile: Profile, cap: int | None) -> bool:
    """Whether an entry's capability is one the table has (no table known: any is); one out
    of it is ALT011."""
    return cap is None or profile.ncaps is None or cap < profile.ncaps


def cap_facts(profile: Profile, cap_raw: int) -> tuple[bool, bool]:
    """What an entry's capability field says for the checks: whether it marks a callback,
    and ``cap_in_table`` of its capability (the filters of many entries ask it once a field)."""
    return profile.is_callback(cap_raw), cap_in_table(profile, profile.cap(cap_raw))


_FACTS: dict[Profile, dict[int, tuple[bool, bool]]] = {}


def facts_of(profile: Profile) -> dict[int, tuple[bool, bool]]:
    """``cap_facts`` of the capability fields met so far under ``profile``, by field: a dict
    that its users fill as they meet new fields (``facts_of(p).get(c)``, else ``cap_facts``).
    Kept for the process: the objects of a link set share a few dozen fields, and each of
    thousands of objects asked them again (a profile is a value, and the facts depend on
    nothing else)."""
    got = _FACTS.get(profile)
    if got is None:
        got = _FACTS[profile] = {}
    return got


def callback_mask(profile: Profile, cap):
    """``profile.is_callback`` of each entry of a table read as columns (``cap``: its
    capability column, a numpy array of 16-bit fields), asked once a distinct field."""
    import numpy as np

    by_cap = np.zeros(1 << 16, dtype=bool)  # (the table's capability field: 16 bits)
    for c in set(cap.tolist()):
        by_cap[c] = profile.is_callback(c)
    return by_cap[cap]


def is_function(sym) -> bool:
    """A symbol a callback may be: a function, or an untyped label (assembly)."""
    return sym.type in (STT_FUNC, STT_GNU_IFUNC, STT_NOTYPE)
