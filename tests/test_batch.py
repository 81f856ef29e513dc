"""``altlink check`` of many files (``altlink/batch.py``): each file is mapped once, the kernel
modules told from the other objects by their section names before any is decoded.

What is checked:
- ``ElfFile.may_have_section``, the quick test, never misses a module that ``is_module_elf``
  (the section headers decoded) finds: on the committed kernel modules, on built objects, on
  an object with a longer section name ending in the module's, and on a names table cut
  right after the module's name (no NUL after it); and it passes the plain objects;
- a file that only looks like a module is checked as the object it is, with the same findings
  as when checked without the modules, serially and over forked processes;
- every file is opened once.
"""
from __future__ import annotations

import os
import shutil
import struct
from collections import Counter

import pytest
from test_checks import CALLBACK, R0_8, THIS_MODULE, build
from test_kernel import SLICE_MODULES
from toolchain import GNU_LD

from altlink import batch, elf, inputs, speedups
from altlink.errors import AltlinkError
from altlink.linkset import MODULE_SECTION, Options, is_module_elf
from altlink.table import Profile

pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")

V417 = Options(Profile("linux-v4.17", 4))
DECOY = '\t.section .x.gnu.linkonce.this_module, "aw"\n\t.zero 8\n\t.text\n'


def objects(tmp_path):
    mod = build(tmp_path, "mod", THIS_MODULE + CALLBACK + "\tent site0, my_cb, 4, 4, 0\n")
    decoy = build(tmp_path, "decoy", DECOY + R0_8 + "\tent site0, r0, 1, 4, 8\n")  # ALT001
    plain = build(tmp_path, "plain", CALLBACK + "\tent site0, my_cb, 4, 4, 0\n")
    return mod, decoy, plain


def cut_after_module_name(src, dst):
    """A copy of a module object whose section name table ends right after the module's
    section name, without its NUL (hand-made: no tool writes one)."""
    data = bytearray(src.read_bytes())
    e = elf.read_elf(str(src))
    st = e.sections[e.shstrndx]
    names = bytes(data[st.offset:st.offset + st.size])
    at = names.index(MODULE_SECTION.encode() + b"\0")
    size_at = e.shoff + e.shstrndx * 64 + 32  # sh_size of the names table's header
    struct.pack_into("<Q", data, size_at, at + len(MODULE_SECTION))
    dst.write_bytes(bytes(data))
    return dst


def test_the_quick_test_never_misses_a_module(tmp_path):
    mod, decoy, plain = objects(tmp_path)
    cut = cut_after_module_name(mod, tmp_path / "cut.o")
    modules = [*SLICE_MODULES, mod, cut]
    for p in [*modules, decoy, plain]:
        full = is_module_elf(elf.read_elf(str(p)))
        quick = elf.map_elf(str(p)).may_have_section(MODULE_SECTION)
        assert quick or not full, p
        assert full == (p in modules), p
    assert elf.map_elf(str(decoy)).may_have_section(MODULE_SECTION)  # a tail: kept to check
    assert not elf.map_elf(str(plain)).may_have_section(MODULE_SECTION)
    assert MODULE_SECTION in elf.read_elf(str(cut)).sections_by_name


@pytest.mark.parametrize("parallel", [False, True])
def test_a_file_that_looks_like_a_module_is_checked_as_an_object(tmp_path, monkeypatch,
                                                                 parallel):
    mod, decoy, plain = objects(tmp_path)
    if parallel:
        monkeypatch.setattr(batch, "PARALLEL_MIN", 1)
        monkeypatch.setattr(batch, "MODULES_CHUNK", 1)  # a chunk a file: each process takes some
    jobs = 2 if parallel else 1
    paths = [str(decoy), str(mod), str(plain)]
    got = batch.check_paths(paths, V417, [], jobs=jobs)
    want = (batch.check_paths([str(mod)], V417, [], jobs=1)
            + batch.check_paths([str(decoy), str(plain)], V417, [], jobs=1))
    assert got == want
    assert [f.code for f in got] == ["ALT015", "ALT001"]
    assert got[1].file == str(decoy)


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_a_ko_file_that_is_no_module_is_checked_as_an_object(tmp_path, monkeypatch, parallel,
                                                             cached):
    # A .ko file is mapped by the worker that checks it (batch._sort_out): one that is not a
    # module goes back to be checked with the objects, as the same file named .o is.
    mod, decoy, plain = objects(tmp_path)
    ko_decoy = tmp_path / "decoy.ko"
    ko_plain = tmp_path / "plain.ko"
    shutil.copy(decoy, ko_decoy)
    shutil.copy(plain, ko_plain)
    junk = tmp_path / "junk.ko"
    junk.write_text("not an object\n")
    if parallel:
        monkeypatch.setattr(batch, "PARALLEL_MIN", 1)
        monkeypatch.setattr(batch, "MODULES_CHUNK", 1)  # a chunk a file: each process takes some
    jobs = 2 if parallel else 1
    # With a record cache, a module is checked through its record, which says whether the
    # file is a module (batch._module_from_record): made the first time, read back the next.
    cache = str(tmp_path / "records") if cached else None
    want = batch.check_paths([str(decoy), str(mod), str(plain)], V417, [], jobs=1)
    for _ in range(2 if cached else 1):
        got = batch.check_paths([str(ko_decoy), str(mod), str(ko_plain)], V417, [], jobs=jobs,
                                cache_dir=cache)
        assert [(f.code, f.message) for f in got] == [(f.code, f.message) for f in want]
        assert [f.code for f in got] == ["ALT015", "ALT001"]
        assert got[1].file == str(ko_decoy)
    with pytest.raises(AltlinkError, match=r"junk\.ko: not an ELF file"):
        batch.check_paths([str(ko_decoy), str(junk), str(mod)], V417, [], jobs=jobs,
                          cache_dir=cache)


def test_each_file_is_opened_once(tmp_path, monkeypatch):
    mod, decoy, plain = objects(tmp_path)
    paths = [str(mod), str(decoy), str(plain), *map(str, SLICE_MODULES[:2])]
    opened: Counter = Counter()
    real_os_open, real_open = os.open, open

    def os_open(path, *a, **k):
        opened[str(path)] += 1
        return real_os_open(path, *a, **k)

    def io_open(path, *a, **k):
        opened[str(path)] += 1
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("builtins.open", io_open)
    sp = speedups.get()
    if sp is not None:  # (the extension reads a small file itself: counted too)
        real_read = sp.read_small

        def read_small(path, *a):
            opened[str(path)] += 1
            return real_read(path, *a)

        monkeypatch.setattr(sp, "read_small", read_small)
    batch.check_paths(paths, V417, [], jobs=1)
    assert {p: opened[p] for p in paths} == {p: 1 for p in paths}


def test_each_files_section_names_are_read_once(tmp_path, monkeypatch):
    """The module test (``batch._sort_out``) and the LTO test (``inputs.load_elfs``) of an
    object look at its section names, read once (``ElfFile._section_name_table``)."""
    mod, decoy, plain = objects(tmp_path)
    paths = [str(mod), str(decoy), str(plain)]
    read: Counter = Counter()
    real = elf.ElfFile._read_section_name_table

    def counted(self):
        read[self.path] += 1
        return real(self)

    monkeypatch.setattr(elf.ElfFile, "_read_section_name_table", counted)
    for cache in (None, str(tmp_path / "records"), str(tmp_path / "records")):
        read.clear()
        batch.check_paths(paths, V417, [], jobs=1, cache_dir=cache)
        assert read == {p: 1 for p in paths}, read


def past_the_end(src, dst, section: int = 1):
    """A copy of an object whose section ``section`` starts past the end of the file
    (hand-made: an unusable object, as a truncated download leaves one)."""
    data = bytearray(src.read_bytes())
    e = elf.read_elf(str(src))
    struct.pack_into("<Q", data, e.shoff + section * 64 + 24, len(data) + 0x100)  # sh_offset
    dst.write_bytes(bytes(data))
    return dst


def test_an_unusable_object_is_named_first_with_records_kept(tmp_path):
    # check_paths leaves the objects' section headers to records_of (load_elfs defer=True):
    # an object whose record is kept was checked when the record was made; the first
    # unusable file is still the one named, records kept or not, whatever comes after it.
    mod, decoy, plain = objects(tmp_path)
    bad1 = past_the_end(plain, tmp_path / "bad1.o")
    bad2 = past_the_end(plain, tmp_path / "bad2.o", section=2)  # not a module's look-alike
    junk = tmp_path / "junk.o"
    junk.write_text("not an object\n")
    cache = str(tmp_path / "records")
    assert batch.check_paths([str(decoy), str(plain)], V417, [], jobs=1, cache_dir=cache)
    for order, first in [([decoy, bad1, plain, bad2], bad1), ([bad2, decoy, bad1], bad2),
                         ([plain, bad1, junk], bad1), ([junk, bad1, decoy], junk)]:
        paths = [str(p) for p in order]
        for cache_dir in (cache, None):
            with pytest.raises(AltlinkError) as got:
                batch.check_paths(paths, V417, [], jobs=1, cache_dir=cache_dir)
            with pytest.raises(AltlinkError) as want:  # every file checked as it is read
                inputs.load_elfs(paths)
            assert str(got.value) == str(want.value)
            assert str(got.value).startswith(f"{first}: ")
    assert "runs past the end of the file" in str(got.value) or str(junk) in str(got.value)
