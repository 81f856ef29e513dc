"""The symbol table read a column at a time (``elf._symbols_by_column``, at C speed) gives the
same symbols as the reading one symbol at a time, on the committed kernel modules, an image
of the toolchain, and Debian's vmlinux when it has been fetched (48,000 of its 155,000 names
are tails of longer names, as the linker shares them)."""
from __future__ import annotations

import shutil

import pytest
from test_kernel import SLICE_MODULES, full_kernel
from toolchain import compile, link, write

from altlink.elf import read_elf


def same(path) -> int:
    elf = read_elf(str(path))
    ref = elf._read_symbols(elf.symtab, columns=False)
    got = elf._read_symbols(elf.symtab)
    assert got == ref
    assert all(type(s) is type(r) for s, r in zip(got, ref))
    return len(got)


def test_kernel_modules():
    assert sum(same(m) for m in SLICE_MODULES) > 1000


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-ld"), reason="no AArch64 toolchain")
def test_an_image_with_a_name_that_is_not_ascii(tmp_path):
    # A string table that is not all ASCII is split byte by byte (offsets are not characters).
    src = write(tmp_path / "a.S", "".join(
        f"\t.text\n\t.globl {n}\n\t.type {n}, %function\n{n}:\tret\n\t.size {n}, 4\n"
        for n in ("__pi_memcpy", "memcpy", "_start", "x\u00e9t\u00e9")))
    image = link([compile(src, tmp_path / "a.o")], tmp_path / "a.elf")
    assert same(image) >= 4
    names = {s.name for s in read_elf(str(image)).symbols}
    assert {"__pi_memcpy", "memcpy", "x\u00e9t\u00e9"} <= names


def test_debians_vmlinux():
    kdir = full_kernel()
    if kdir is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    assert same(kdir / "vmlinux") > 100_000
