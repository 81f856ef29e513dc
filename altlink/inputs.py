"""Turning the files a user names into checked inputs: objects, images and archive members."""
from __future__ import annotations

from altlink import archive, elf
from altlink.elf import BITCODE_MAGICS
from altlink.errors import AltlinkError
from altlink.linkset import Input

TYPE_CHECKING = False  # (``typing``'s, without its import: 2 ms of a check)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO


class Notes:
    """Notes for stderr (``notes=`` of ``load``), kept to be written when the command or the
    link ends: an unusable input found after a note is still exit 2 with one line."""

    def __init__(self) -> None:
        self.chunks: list[str] = []

    def write(self, s: str) -> None:
        self.chunks.append(s)

    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def lines(self) -> list[str]:
        """The notes' lines, without their line ends and without empty ones."""
        return [x for s in self.chunks for x in s.splitlines() if x]


def is_lto(data: bytes, e: elf.ElfFile | None = None) -> bool:
    """An LTO object carries IR, not code: LLVM bitcode, or ELF with GCC's .gnu.lto_ sections."""
    if data[:4] in BITCODE_MAGICS:
        return True
    if e is not None:
        return e.may_have_section_prefix(".gnu.lto_") and any(
            s.name.startswith(".gnu.lto_") for s in e.sections) and not any(
            s.executable and s.size for s in e.sections)
    return False


def load(paths: list[str], notes: TextIO | None = None) -> list[Input]:
    """Read every named file (archives: every ELF member); LTO objects are noted and skipped."""
    return [Input.load(e) for e in load_elfs(paths, notes)]


def load_elfs(paths: list[str], notes: TextIO | None = None,
              mapped: dict[str, list[elf.ElfFile]] | None = None,
              defer: bool = False, data: dict[str, bytes] | None = None) -> list[elf.ElfFile]:
    """As ``load``, without decoding the tables yet. ``mapped`` may give ELF files already
    mapped (``elf.map_elf``) by path, one for each time the path is named, taken in turn.
    ``data``: the bytes of some of the files, read already (``LinkCommand.data``: each a
    regular file's, read whole), by path: not read again.

    ``defer``: the section headers of the relocatable objects (archive members too) are not
    checked here but where they are first read: ``records.records_of`` checks those of the
    objects whose records it makes, in their order, before it makes any; an object whose
    record is kept had them checked when the record was made (the same bytes, the same
    code: the record's key). A file found unusable here is reported after the deferred
    objects before it are checked, so that the first unusable file is named, as without."""
    out: list[elf.ElfFile] = []
    lto: list[str] = []
    deferred: list[elf.ElfFile] = []
    for path in paths:
        try:
            _load_one(path, out, lto, mapped, deferred if defer else None,
                      data.get(path) if data else None)
        except AltlinkError:
            for d in deferred:
                d.sections  # noqa: B018  (an earlier file's error first)
            raise
    if lto and notes is not None:
        notes.write(lto_note(lto))
    return out


def _load_one(path: str, out: list[elf.ElfFile], lto: list[str],
              mapped: dict[str, list[elf.ElfFile]] | None,
              deferred: list[elf.ElfFile] | None, read: bytes | None = None) -> None:
    """``path``'s ELF files appended to ``out`` (an archive's members), or its name to ``lto``;
    a mapped object's section headers left unchecked where ``deferred`` is given (it is
    appended there). ``read``: the file's bytes, read already (``elf.map_file``'s where it
    reads a small file)."""
    if mapped and mapped.get(path):
        e = mapped[path].pop(0)
        if deferred is not None and e.type == elf.ET_REL:
            deferred.append(e)
        else:
            e.sections  # noqa: B018  (checked as read_elf checks them)
        if is_lto(b"", e):
            lto.append(path)
        else:
            out.append(e)
        return
    # each file opened once: its first bytes say what it is
    data = read if read else elf.map_file(path)
    head = data[:8]
    if head in (archive.MAGIC, archive.THIN_MAGIC):
        del data  # read again by member (a mapping is closed with its last reference)
        for m in archive.members(path):
            data = archive.read_member(m)
            if is_lto(data):
                lto.append(m.display)
                continue
            if data[:4] != b"\x7fELF":
                continue
            e = _elf_file(m.display, data, deferred)
            if is_lto(data, e):
                lto.append(m.display)
                continue
            out.append(e)
        return
    if head[:4] in BITCODE_MAGICS:
        lto.append(path)
        return
    e = _elf_file(path, data, deferred)
    if is_lto(head, e):
        lto.append(path)
        return
    out.append(e)


def _elf_file(path: str, data, deferred: list[elf.ElfFile] | None) -> elf.ElfFile:
    """The ELF file of these bytes, its section headers checked now (``elf.from_bytes``), or,
    a relocatable object where ``deferred`` is given, left to be checked where first read
    (it is appended there)."""
    if deferred is None:
        return elf.from_bytes(path, data)
    e = elf.map_bytes(path, data)
    if e.type == elf.ET_REL:
        deferred.append(e)
    else:
        e.sections  # noqa: B018  (checked as from_bytes checks them)
    return e


def without_fat_lto(objects: list[elf.ElfFile], ir_linked: Callable[[], bool],
                    notes: TextIO | None = None) -> list[elf.ElfFile]:
    """``objects`` without those that carry GCC's LTO IR beside their code (``-ffat-lto-
    objects``) where the link takes the IR (``ir_linked``: asked only where there is one,
    ``linkcmd.gcc_lto_plugin``): the code they carry is not what is linked, and their
    alternatives, as LTO objects', exist only after the link (one note names them)."""
    fat = [e for e in objects if e.type == elf.ET_REL and
           e.may_have_section_prefix(".gnu.lto_") and
           any(s.name.startswith(".gnu.lto_") for s in e.sections)]
    if not fat or not ir_linked():
        return objects
    if notes is not None:
        notes.write(lto_note([e.path for e in fat]))
    gone = {id(e) for e in fat}
    return [e for e in objects if id(e) not in gone]


def lto_note(names: list[str]) -> str:
    """One note for the LTO objects of a command, however many (a kernel built with
    CONFIG_LTO_CLANG has hundreds in one link)."""
    if len(names) == 1:
        what = "LTO object: its alternatives exist"
    else:
        what = (f"LTO object, and {len(names) - 1} more ({_more(names[1:])}): their "
                "alternatives exist")
    return f"{names[0]}: note: {what} only after the link and are checked in the linked image\n"


def sources_note(names: list[str]) -> str:
    """One note for the source files a compiler driver compiles in the link's own command:
    their objects exist only inside the driver, so their alternatives are not checked before
    the link, only in the linked image (the image's checks and the cross-check)."""
    if len(names) == 1:
        what = "compiled by the link's own command: its alternatives are"
    else:
        what = (f"this source, and {len(names) - 1} more ({_more(names[1:])}), compiled by "
                "the link's own command: their alternatives are")
    return (f"{names[0]}: note: {what} checked only in the linked image, not before the link "
            "as objects' are; compile to objects first for every check\n")


def _more(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
