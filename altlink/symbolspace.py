"""Where a link set's symbols are defined: its objects' global definitions, then those of the
images named by ``--symbols-from``; what a callback check looks a name up in."""
from __future__ import annotations

from altlink.check_core import is_function
from altlink.elf import SHN_UNDEF, STB_LOCAL, STT_SECTION, ElfFile, Section, Symbol
from altlink.linkset import Input
from altlink.values import Frozen


class Definition(Frozen):
    """Where a global symbol is defined: which file, and the symbol."""

    _fields = ("path", "symbol", "section")
    path: str
    symbol: Symbol
    section: Section | None

    def __init__(self, path: str, symbol: Symbol, section: Section | None) -> None:
        _set = object.__setattr__
        _set(self, "path", path)
        _set(self, "symbol", symbol)
        _set(self, "section", section)


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

    # Whether ``lookup``'s answer may depend on ``asking`` (the objects are searched, less the
    # one asking); a space that never skips one says False (``check_linkset.RecordSpace``).
    asking_matters = True

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
                 if is_function(s)}
        return names | {n for elf in self.images for n, s in definitions(elf, True).items()
                        if is_function(s)}

    def did_you_mean(self, name: str) -> str:
        """`` (did you mean my_cb?)`` for a misspelled callback, or ""."""
        cache = self.__dict__.setdefault("_close", {})
        if name not in cache:
            import difflib  # only for a finding's hint

            close = difflib.get_close_matches(name, self.function_names(), n=1, cutoff=0.75)
            cache[name] = f" (did you mean {close[0]}?)" if close else ""
        return cache[name]
