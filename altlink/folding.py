"""Identical code folding (``--icf=all`` or ``--icf=safe``: lld, gold, mold): the linker keeps one
copy of functions whose code and relocations are the same, and points every folded symbol at
it. It compares the functions' own sections only: the ``.altinstructions`` entries that name
a site in them are not part of the comparison. Two functions that differ only in their
alternatives (the same instructions, another capability or replacement), or a function with
an alternative and one without, whose instructions are alike, become one copy, and every
entry of either patches the code that both run: one function's code changes for the
capability of the other. The cross-check cannot see it (each site is where its symbol went).

Where a link's command asks for the folding, each site of the linked image that more than one
function's code was folded into is compared with what those functions' objects ask for at
that offset (their entries: capability, lengths, replacement or callback); where they differ,
that is ALT013, the entry different in the linked image. A link without ``--icf`` does
none of this work."""
from __future__ import annotations

from bisect import bisect_right

from altlink.elf import SHN_UNDEF, STT_FUNC, STT_SECTION, ElfFile
from altlink.findings import Finding, finding
from altlink.linkcmd import option_values
from altlink.linkset import Input

# The modes of --icf that fold (``none``, the default, does not).
_FOLDING = ("all", "safe")


def requested(argv: list[str]) -> bool:
    """Whether a linker command folds identical code: its last ``--icf`` option (lld, gold and
    mold; ``--icf=MODE`` or ``--icf MODE``, with one dash or two), given to the linker or
    through a compiler driver (``-Wl,--icf=all``, ``-Xlinker --icf=all``), is ``all`` or
    ``safe``."""
    modes = option_values(argv[1:], ("--icf", "-icf"))
    return bool(modes) and modes[-1] in _FOLDING


def check(image: Input, objects: list[ElfFile], profile, caps=None) -> list[Finding]:
    """ALT013 for each site of ``image`` (linked from ``objects`` with ``--icf``) that is the
    code of several functions whose objects ask for different alternatives there. A function
    the objects do not define (a linker's symbol, a stripped name) is not compared."""
    sites = sorted({e.site.address for e in image.table.entries
                    if e.orig_len and e.site.address is not None})
    if not sites:
        return []
    groups = _functions_by_start(image.elf)
    starts = sorted(groups)
    objs = _ObjectFunctions(objects)
    out: list[Finding] = []
    for a in sites:
        i = bisect_right(starts, a) - 1
        if i < 0:
            continue
        start = starts[i]
        covering = sorted({(name, size) for name, size in groups[start] if a < start + size})
        if len(covering) < 2:
            continue  # one function's code (or none): nothing folded here
        asks = []  # (function, what its objects may ask for at this offset)
        for name, size in covering:
            options = objs.asks(name, size, a - start)
            if options:
                asks.append((name, options))
        if len(asks) < 2 or set.intersection(*(set(o for o, _ in opts) for _, opts in asks)):
            continue  # (some functions unknown, or every one asks for the same)
        out.append(_finding(a, asks, profile, caps))
    return out


def _functions_by_start(elf: ElfFile) -> dict[int, list[tuple[str, int]]]:
    """The image's functions (defined, sized), as (name, size) by their address."""
    groups: dict[int, list[tuple[str, int]]] = {}
    for s in elf.symbols:
        if s.type == STT_FUNC and s.size and s.shndx != SHN_UNDEF and s.name:
            groups.setdefault(s.value, []).append((s.name, s.size))
    return groups


class _ObjectFunctions:
    """The objects' functions by name (each object's symbols read once), and what each
    object's entries ask for at an offset of one of them (its table read only where one of
    its functions is asked for)."""

    def __init__(self, objects: list[ElfFile]) -> None:
        self.by_name: dict[str, list[tuple[ElfFile, int, int, int]]] = {}
        for obj in objects:
            n = len(obj.sections)
            for s in obj.symbols:
                if s.type == STT_FUNC and s.size and SHN_UNDEF < s.shndx < n and s.name:
                    self.by_name.setdefault(s.name, []).append((obj, s.shndx, s.value, s.size))
        self.inputs: dict[int, tuple[Input, dict]] = {}

    def asks(self, name: str, size: int, offset: int) -> list[tuple[tuple, tuple]]:
        """For each definition of ``name`` of that size in the objects (a static function's
        name may be in several): (what its object's entries ask for at ``offset`` of it,
        where: (object, section name, offset in the section))."""
        out = []
        for obj, shndx, value, sz in self.by_name.get(name, ()):
            if sz != size:
                continue
            inp, at = self._entries(obj)
            off = value + offset
            out.append((tuple(sorted(at.get((shndx, off), ()))),
                        (obj, inp.elf.sections[shndx].name, off)))
        return out

    def _entries(self, obj: ElfFile) -> tuple[Input, dict]:
        got = self.inputs.get(id(obj))
        if got is None:
            inp = Input.load(obj)
            at: dict[tuple[int, int], list[tuple]] = {}
            for e in inp.table.entries:
                if e.site.defined:
                    at.setdefault((e.site.section_index, e.site.offset), []).append(
                        _asked(inp, e))
            got = self.inputs[id(obj)] = (inp, at)
        return got


def _asked(inp: Input, e) -> tuple:
    """What an object's entry asks for at its site: its capability field and lengths, and its
    replacement's bytes with the relocations in them (type, symbol, addend), or its
    callback's name."""
    if not e.alt.defined:
        return (e.cap_raw, e.orig_len, e.alt_len, e.alt.symbol or "", b"", ())
    sec = inp.elf.sections[e.alt.section_index]
    lo, hi = e.alt.offset, e.alt.offset + e.alt_len
    data = bytes(inp.elf.section_data(sec)[lo:hi]) if e.alt_len else b""
    relocs = []
    if e.alt_len:
        rmap = inp.relocs_of(sec)
        for off in range(lo, hi):
            r = rmap.get(off)
            if r is not None:
                relocs.append((off - lo, r.type, _symbol_name(inp.elf, r.sym), r.addend))
    callback = e.alt.symbol or "" if not e.alt_len else ""
    return (e.cap_raw, e.orig_len, e.alt_len, callback, data, tuple(relocs))


def _symbol_name(elf: ElfFile, index: int) -> str:
    syms = elf.symbols
    if not 0 <= index < len(syms):
        return f"#{index}"
    s = syms[index]
    if s.type == STT_SECTION and 0 < s.shndx < len(elf.sections):
        return elf.sections[s.shndx].name
    return s.name


def _finding(addr: int, asks: list, profile, caps) -> Finding:
    def said(options) -> str:
        got, _where = options[0]
        if not got:
            return "no alternative"
        return ", ".join(_label(a, profile, caps) for a in got)

    parts = "; ".join(f"{name}: {said(opts)}" for name, opts in asks)
    names = ", ".join(name for name, _ in asks)
    # Named where an alternative asked for it: its object's place (the source line's).
    name, opts = next(((n, o) for n, o in asks if o[0][0]), asks[0])
    obj, secname, off = opts[0][1]
    return finding(
        "ALT013",
        f"the linker folded the identical code of {names} (--icf) into one copy at "
        f"{addr:#x}, a site whose alternatives differ between them ({parts}): each "
        "function's code is now patched as the others ask; link with --icf=none, or keep "
        "these functions out of the folding (lld and gold: --keep-unique=SYMBOL)",
        obj.path, f"{secname}+{off:#x} {name}")


def _label(asked: tuple, profile, caps) -> str:
    cap_raw, _orig, alt_len, callback, _data, _relocs = asked
    cap = profile.cap(cap_raw) if profile is not None else cap_raw
    if cap is None or (not alt_len and callback):
        return f"callback {callback}" if callback else "a callback"
    name = caps.name(cap) if caps is not None else None
    return f"cap {cap} {name}" if name else f"cap {cap}"
