"""Reading an object's table (``altlink/table.py``): ``read_object_table`` reads a table whose
relocations are as the assembler writes them from their columns (``_entries_in_order``), any
other with its relocations indexed at once, an entry with two good PREL32 relocations
resolved in place; ``read_object_table_py``, each place through ``_resolve``, is the
reference. Both must give
the same table (entries, findings, sections).

What is checked:
- the committed kernel modules, objects with every form of entry and every broken table of
  the checks' tests, and the kernel build's objects (both toolchains);
- an object's table and its relocations with bytes changed at random (hand-made: malformed
  input): the same table, or the same error;
- the same with the symbols the relocations name changed at random (their names, types,
  sections and values: ``_targets`` reads them from their bytes), and the symbol table's
  link to its string table.
"""
from __future__ import annotations

import random
import shutil

import pytest
from test_checks import BAD, build, clean_source
from test_kernel import SLICE_MODULES
from toolchain import GNU_LD

from altlink import table
from altlink.elf import STT_NOTYPE, STT_SECTION, from_bytes, read_elf
from altlink.errors import AltlinkError
from altlink.table import read_object_table, read_object_table_py, table_sections

pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")


def same_table(elf) -> int:
    fast, ref = read_object_table(elf), read_object_table_py(elf)
    assert fast == ref, elf.path
    assert [e.site for e in fast.entries] == [e.site for e in ref.entries]  # every field
    return len(fast.entries) + len(fast.findings)


def test_modules_and_every_form_of_entry(tmp_path, monkeypatch):
    ways = []  # which of the fast path's two ways each table section took
    real = table._entries_in_order
    monkeypatch.setattr(table, "_entries_in_order",
                        lambda *a: ways.append(real(*a) is None) or real(*a))
    seen = sum(same_table(read_elf(str(p))) for p in SLICE_MODULES)
    objs = [build(tmp_path, f"clean{p}", clean_source(p)) for p in ("v4.17", "v6.1")]
    objs += [build(tmp_path, f"bad{k}", c.body, flags=c.flags) for k, c in enumerate(BAD)]
    findings = 0
    for o in objs:
        elf = read_elf(str(o))
        seen += same_table(elf)
        findings += len(read_object_table(elf).findings)
    assert seen > 1000 and findings > 0  # tables with findings of their own were compared
    assert ways.count(False) > 10 and ways.count(True) >= 3  # by columns, and entry by entry


@pytest.mark.kernel_build
@pytest.mark.timeout(3600)  # the first use of the build compiles the kernel
def test_the_kernel_builds_objects(kernel_build):
    objs = [p for p in sorted(kernel_build.out.glob("**/*.o")) if is_aarch64(p)]  # not the host's
    assert len(objs) > 100
    assert sum(same_table(read_elf(str(p))) for p in objs) > 100


def is_aarch64(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(20)
    return head[:4] == b"\x7fELF" and head[18:20] == (183).to_bytes(2, "little")


def _section_bytes(elf, name):
    (sec,) = [s for s in elf.sections if s.name == name]
    return sec.offset, sec.size


def test_damaged_tables_and_relocations(tmp_path):
    o = build(tmp_path, "clean", clean_source("v4.17"))
    data = o.read_bytes()
    elf = read_elf(str(o))
    spans = [_section_bytes(elf, ".altinstructions"), _section_bytes(elf, ".rela.altinstructions")]
    rng = random.Random(13)
    errors = compared = 0
    for k in range(400):
        damaged = bytearray(data)
        off, size = spans[k % 2]
        for _ in range(rng.randint(1, 4)):
            damaged[off + rng.randrange(size)] = rng.randrange(256)
        got = []
        for read in (read_object_table, read_object_table_py):
            try:
                got.append(read(from_bytes("damaged.o", bytes(damaged))))
            except AltlinkError as e:
                got.append(str(e))
        assert got[0] == got[1], k
        errors += isinstance(got[0], str)
        compared += not isinstance(got[0], str) and bool(got[0].findings)
    assert compared > 10  # damage the table reports, not only unreadable files


def test_damaged_symbols(tmp_path):
    o = build(tmp_path, "clean", clean_source("v4.17"))
    data = o.read_bytes()
    elf = read_elf(str(o))
    (symtab,) = [s for s in elf.sections if s.name == ".symtab"]
    named = {r.sym for rs in elf.relocation_sections_for(table_sections(elf)[0])
             for r in elf.relocations(rs)}
    assert {elf.symbol(i).type for i in named} >= {STT_SECTION, STT_NOTYPE}  # callbacks too
    link_at = elf.shoff + symtab.index * 64 + 40  # the symbol table's header: sh_link
    rng = random.Random(13)
    kinds = set()
    for k in range(600):
        damaged = bytearray(data)
        if k % 10 == 0:
            damaged[link_at] = rng.choice([0, symtab.index, len(elf.sections), 200])
        for _ in range(rng.randint(1, 3)):
            sym = rng.choice(sorted(named))
            field = rng.choice([0, 1, 4, 6, 7, 8, 9])  # name, info, shndx, value
            damaged[symtab.offset + 24 * sym + field] = rng.randrange(256)
        got = []
        for read in (read_object_table, read_object_table_py):
            try:
                got.append(read(from_bytes("damaged.o", bytes(damaged))))
            except AltlinkError as e:
                got.append(str(e))
        assert got[0] == got[1], k
        if not isinstance(got[0], str):
            assert [e.site for e in got[0].entries] == [e.site for e in got[1].entries]
            assert [e.alt for e in got[0].entries] == [e.alt for e in got[1].entries]
        kinds.add("error" if isinstance(got[0], str) else bool(got[0].findings))
    assert kinds == {"error", True, False}  # unreadable, tables with findings, and clean
