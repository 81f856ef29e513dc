"""The link set as data: one input file with its decoded table (``Input``), and what the set is
checked as (``Options``). Reading a linker command, a manifest or a batch needs these and not
the checks (``check_core`` and the phases' modules).
"""
from __future__ import annotations

from altlink.caps import CapTable
from altlink.elf import ElfFile, RelocMap, Section
from altlink.symbols import Symbolizer
from altlink.table import Profile, Table, read_table
from altlink.values import Frozen, Value


class Input(Value):
    """One file of a check: its ELF, its decoded table and a namer for its places."""

    _fields = ("elf", "table", "names", "_relocs")
    elf: ElfFile
    table: Table
    names: Symbolizer
    _relocs: dict[int, RelocMap]

    def __init__(self, elf: ElfFile, table: Table, names: Symbolizer,
                 _relocs: dict[int, RelocMap] | None = None) -> None:
        self.elf = elf
        self.table = table
        self.names = names
        self._relocs = {} if _relocs is None else _relocs

    @classmethod
    def load(cls, elf: ElfFile) -> Input:
        return cls(elf, read_table(elf), Symbolizer(elf))

    @property
    def path(self) -> str:
        return self.elf.path

    def relocs_of(self, sec: Section) -> RelocMap:
        got = self._relocs.get(sec.index)
        if got is None:
            got = self.elf.reloc_map(sec)
            self._relocs[sec.index] = got
        return got

    def relocs_indexed(self, sec: Section) -> bool:
        """Whether ``relocs_of(sec)`` is already made (a lookup of a few offsets need not)."""
        return sec.index in self._relocs

    @property
    def is_module(self) -> bool:
        return is_module_elf(self.elf)


# What makes a link set a kernel module: the ``struct module`` that modpost's ``*.mod.c``
# defines, which Linux loads with it. Not ``.modinfo``: since Linux 5.2 the built-in modules keep
# theirs in vmlinux.
MODULE_SECTION = ".gnu.linkonce.this_module"


def is_module_elf(elf: ElfFile) -> bool:
    return MODULE_SECTION in elf.sections_by_name


_DEFAULT_PROFILE = Profile()  # (the options' default profile, one for all, as a dataclass's)


class Options(Frozen):
    """What the checks of a link set are told: the profile, the capability table, a module."""

    _fields = ("profile", "caps", "module", "partial")
    profile: Profile
    caps: CapTable | None
    module: bool
    # A partial link (ld -r): a symbol it leaves undefined is resolved by a later link, where
    # a callback that is still undefined is reported.
    partial: bool

    def __init__(self, profile: Profile = _DEFAULT_PROFILE, caps: CapTable | None = None,
                 module: bool = False, partial: bool = False) -> None:
        _set = object.__setattr__
        _set(self, "profile", profile)
        _set(self, "caps", caps)
        _set(self, "module", module)
        _set(self, "partial", partial)

