"""The indexes of an ELF file's sections made in one pass (``ElfFile._index_sections``: the
sections by name, the symbol table, the relocation sections of each section), whichever of
them is read first, against each made on its own (``sections_by_name_py``, ``symtab_py``,
``relocation_sections_py``): on the committed kernel modules, objects with every form of
entry and every broken table of the checks' tests, an image, a shared object (its dynamic
relocations and symbols), the same stripped (the dynamic symbol table alone) and an object
whose section types were changed at random."""
from __future__ import annotations

import random
import shutil

import pytest
from test_checks import BAD, build, clean_source
from test_kernel import SLICE_MODULES
from toolchain import GNU_LD, compile, link, run, write

from altlink.elf import SHT_DYNSYM, SHT_RELA, from_bytes, read_elf
from altlink.errors import AltlinkError

FIRST = ("sections_by_name", "symtab", "_relocation_sections")


def same(data: bytes, path: str = "x.o") -> tuple:
    """Each index read first in turn, against the references; what they hold."""
    for first in FIRST:
        elf = from_bytes(path, data)
        getattr(elf, first)
        assert elf.sections_by_name == elf.sections_by_name_py()
        assert elf.symtab == elf.symtab_py()
        assert elf._relocation_sections == elf.relocation_sections_py()
        for sec in elf.sections:
            assert elf.relocation_sections_for(sec) == elf.relocation_sections_py().get(
                sec.index, [])
    return elf.symtab.type if elf.symtab else None, len(elf._relocation_sections)


pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")


def test_the_indexes_of_every_kind_of_file(tmp_path):
    seen = [same(m.read_bytes(), str(m)) for m in SLICE_MODULES]
    objs = [build(tmp_path, f"clean{p}", clean_source(p)) for p in ("v4.17", "v6.1")]
    objs += [build(tmp_path, f"bad{k}", c.body, flags=c.flags) for k, c in enumerate(BAD)]
    seen += [same(o.read_bytes(), str(o)) for o in objs]
    image = link(objs[:1], tmp_path / "a.elf", flags=["-e", "0", "--unresolved-symbols=ignore-all"])
    pic = compile(write(tmp_path / "pic.S", "\t.text\n\t.globl f\nf:\tret\n"
                        "\t.data\n\t.globl p\np:\t.quad ext\n"), tmp_path / "pic.o")
    shared = link([pic], tmp_path / "a.so", flags=["-shared"])
    stripped = tmp_path / "s.so"
    run(["aarch64-linux-gnu-strip", "-o", stripped, shared])
    for p in (image, shared, stripped):
        seen.append(same(p.read_bytes(), str(p)))
    assert seen[-1][0] == SHT_DYNSYM  # the dynamic symbol table where no other
    assert read_elf(str(shared)).sections_by_name[".rela.dyn"]  # an image's allocated ones
    assert sum(n for _t, n in seen) > 100


def test_section_types_changed_at_random(tmp_path):
    data = build(tmp_path, "clean", clean_source("v4.17")).read_bytes()
    elf = from_bytes("clean.o", data)
    rng = random.Random(13)
    kinds = (SHT_RELA, 9, 2, 11, 0x40000014, 1, 8)  # RELA, REL, SYMTAB, DYNSYM, CREL, ...
    read = 0
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = elf.shoff + 64 * rng.randrange(len(elf.sections))
            field = rng.choice([4, 8, 40, 44])  # sh_type, sh_flags, sh_link, sh_info
            damaged[at + field:at + field + 4] = (
                rng.choice(kinds) if field == 4 else rng.randrange(20)).to_bytes(4, "little")
        try:
            same(bytes(damaged))
        except AltlinkError:
            continue
        read += 1
    assert read > 100


def test_section_name_tables_kept_by_their_bytes(tmp_path, monkeypatch):
    """Objects with the same section name table share its decoded names (``elf._section_names``,
    kept for the process by the table's bytes): the same sections as decoded with nothing
    kept; a large table is decoded each time, not kept."""
    from altlink import elf as elfmod

    objs = [build(tmp_path, f"clean{p}", clean_source(p)) for p in ("v4.17", "v6.1")]
    objs += [build(tmp_path, f"bad{k}", c.body, flags=c.flags) for k, c in enumerate(BAD)]
    # two tables of the same length, names at the same offsets, but for one letter
    objs += [compile(write(tmp_path / f"{x}.S", f"\t.section .text.{x}, \"ax\"\n\tret\n"),
                     tmp_path / f"{x}.o") for x in ("aa", "ab")]
    paths = [*objs, *SLICE_MODULES]
    monkeypatch.setattr(elfmod, "_NAME_TABLES", {})
    kept = [read_elf(str(p)).sections for p in paths]
    assert len(elfmod._NAME_TABLES) < len(paths)  # shared between objects
    for p, secs in zip(paths, kept):
        elfmod._NAME_TABLES.clear()
        assert read_elf(str(p)).sections == secs
    monkeypatch.setattr(elfmod, "_NAME_TABLE_KEPT", 16)
    elfmod._NAME_TABLES.clear()
    assert read_elf(str(objs[0])).sections == kept[0] and not elfmod._NAME_TABLES
    monkeypatch.setattr(elfmod, "_NAME_TABLES_MAX", 2)  # full: emptied, then kept again
    monkeypatch.setattr(elfmod, "_NAME_TABLE_KEPT", 4096)
    for p, secs in zip(paths, kept):
        assert read_elf(str(p)).sections == secs
        assert len(elfmod._NAME_TABLES) <= 2
