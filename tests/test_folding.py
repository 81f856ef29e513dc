"""Identical code folding (``--icf=all``/``safe``: ld.lld and gold): the linker folds functions
whose code is the same, whatever their alternatives ask for, so that one function's code is
patched for another's capability. The link stops on ALT013 where that happened, and is
clean where the folded functions ask for the same, and where the command does not fold.

The harm is shown first, without altlink's check: the image linked by ld.lld with
``--icf=all``, patched offline for one capability, runs under qemu-aarch64 and the functions
that did not ask for it return the patched value."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from toolchain import (
    CLANG_CC,
    FREESTANDING,
    INCLUDE,
    LDSCRIPTS,
    SIMPLE_LD,
    altlink,
    qemu,
    run,
    write,
)

from altlink import folding

HAVE = all(shutil.which(t) for t in ("clang", "ld.lld", "aarch64-linux-gnu-ld.gold",
                                      "qemu-aarch64"))
pytestmark = pytest.mark.skipif(not HAVE, reason="clang, ld.lld, gold or qemu-aarch64 missing")

CAPS = "HAS_FAST_MUL\nHAS_CRC\n"

# twin_a and twin_b: one instruction of alternative each, the same code; ``zero``: that code
# without an alternative (assembly, so that it is `mov w0, #0` too, not `mov w0, wzr`). The
# exit status tells which of them return 1.
TWINS = """
#include "caps.h"
#include <altlink/alternative.h>
__attribute__((noinline)) int twin_a(void)
{
	int r;
	asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", ALT_CAP_HAS_FAST_MUL) : "=r"(r));
	return r;
}
__attribute__((noinline)) int twin_b(void)
{
	int r;
	asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", ALT_CAP_B) : "=r"(r));
	return r;
}
"""
ZERO = """
	.section .text.zero, "ax"
	.globl zero
	.type zero, %function
zero:	mov w0, #0
	ret
	.size zero, . - zero
"""
START = """
	.section .text._start, "ax"
	.globl _start
_start:	bl twin_a
	mov w19, w0
	bl twin_b
	add w19, w19, w0, lsl #1
	bl zero
	add w0, w19, w0, lsl #2
	mov x8, #93		// exit(twin_a + 2 * twin_b + 4 * zero)
	svc #0
"""


def ok(*args, cwd: Path) -> None:
    p = altlink(*args, cwd=cwd)
    assert p.returncode == 0, p.stderr


def objects(tmp: Path, twin_b_cap: str) -> list[str]:
    """The three objects, twin_b's alternative for ``twin_b_cap``."""
    write(tmp / "caps.txt", CAPS)
    write(tmp / "fw.ld", SIMPLE_LD)
    ok("caps", "caps.txt", "-o", "caps.h", cwd=tmp)
    write(tmp / "twins.c", TWINS.replace("ALT_CAP_B", f"ALT_CAP_{twin_b_cap}"))
    write(tmp / "zero.s", ZERO)
    write(tmp / "start.s", START)
    cc = [*CLANG_CC, *FREESTANDING, "-ffunction-sections", f"-I{INCLUDE}", f"-I{tmp}", "-c"]
    for src in ("start.s", "zero.s", "twins.c"):
        run([*cc, src, "-o", Path(src).stem + ".o"], cwd=tmp)
    return ["start.o", "zero.o", "twins.o"]


def linker(name: str) -> list[str]:
    return {"lld": ["ld.lld"], "gold": ["aarch64-linux-gnu-ld.gold"]}[name]


def ld_args(objs: list[str], out: str = "fw.elf") -> list[str]:
    return ["-static", "-L", str(LDSCRIPTS), "-T", "fw.ld", *objs, "-o", out]


def test_folded_code_is_patched_for_the_other_functions_capability(tmp_path):
    """Without the check: ld.lld folds zero and twin_b into twin_a's code, and patching for
    HAS_FAST_MUL alone (twin_a's capability) makes twin_b (HAS_CRC) and zero (none) return 1."""
    objs = objects(tmp_path, "HAS_CRC")
    # (--no-rosegment: the table shares the code's segment, as GNU ld puts it; qemu-aarch64
    # would map a read-only segment over the code's page)
    run([*linker("lld"), "--icf=all", "--no-rosegment", *ld_args(objs)], cwd=tmp_path)
    assert qemu(tmp_path / "fw.elf").returncode == 0  # unpatched: every function returns 0
    ok("manifest", "--abi", "linux-v4.17", "--cap-table", "caps.txt", "fw.elf", "-o", "fw.json",
       cwd=tmp_path)
    ok("patch", "fw.elf", "--manifest", "fw.json", "--caps", "HAS_FAST_MUL", "-o",
       "patched.elf", cwd=tmp_path)
    assert qemu(tmp_path / "patched.elf").returncode == 1 + 2 + 4  # twin_a, and the others
    # Linked apart (no folding), only twin_a changes.
    run([*linker("lld"), "--no-rosegment", *ld_args(objs, "apart.elf")], cwd=tmp_path)
    ok("manifest", "--abi", "linux-v4.17", "--cap-table", "caps.txt", "apart.elf", "-o",
       "apart.json", cwd=tmp_path)
    ok("patch", "apart.elf", "--manifest", "apart.json", "--caps", "HAS_FAST_MUL", "-o",
       "apart-patched.elf", cwd=tmp_path)
    assert qemu(tmp_path / "apart-patched.elf").returncode == 1


@pytest.mark.parametrize("ld", ["lld", "gold"])
def test_a_link_that_folds_functions_whose_alternatives_differ_stops(tmp_path, ld):
    objs = objects(tmp_path, "HAS_CRC")
    p = altlink("link", "--abi", "linux-v4.17", "--cap-table", "caps.txt", "--", *linker(ld),
                "--icf=all", *ld_args(objs), cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "ALT013" in ln]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("twins.o: error: ALT013: the linker folded the identical code "
                               "of twin_a, twin_b, zero (--icf) into one copy at 0x"), lines
    assert "(twin_a: cap 0 HAS_FAST_MUL; twin_b: cap 1 HAS_CRC; zero: no alternative)" \
        in lines[0]
    assert lines[0].endswith("[.text.twin_a+0x0 twin_a] (altlink explain ALT013)")
    assert not (tmp_path / "fw.elf").exists()


def test_a_function_without_an_alternative_folded_with_one_that_has_it(tmp_path):
    """The twins ask for the same, but zero, folded with them, asks for nothing."""
    objs = objects(tmp_path, "HAS_FAST_MUL")
    p = altlink("link", "--abi", "linux-v4.17", "--cap-table", "caps.txt", "--",
                *linker("lld"), "--icf=all", *ld_args(objs), cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "(twin_a: cap 0 HAS_FAST_MUL; twin_b: cap 0 HAS_FAST_MUL; zero: no alternative)" \
        in p.stderr


def test_folding_functions_that_ask_for_the_same_is_clean(tmp_path):
    """Without zero, the twins (the same alternative) fold harmlessly: each one's code is
    patched exactly as it asks."""
    objs = [o for o in objects(tmp_path, "HAS_FAST_MUL") if o != "zero.o"]
    write(tmp_path / "nozero.s", ZERO.replace("zero", "other").replace("#0", "#7"))
    run([*CLANG_CC, "-c", "nozero.s", "-o", "other.o"], cwd=tmp_path)
    start = START.replace("bl zero", "bl other")
    write(tmp_path / "start.s", start)
    run([*CLANG_CC, "-c", "start.s", "-o", "start.o"], cwd=tmp_path)
    p = altlink("link", "--abi", "linux-v4.17", "--cap-table", "caps.txt", "--",
                *linker("lld"), "--icf=all", *ld_args([*objs, "other.o"]), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    nm = run(["aarch64-linux-gnu-nm", "fw.elf"], cwd=tmp_path).stdout
    addr = {ln.split()[2]: ln.split()[0] for ln in nm.splitlines() if len(ln.split()) == 3}
    assert addr["twin_a"] == addr["twin_b"]  # folded, and rightly clean


@pytest.mark.parametrize("how", [[], ["--icf=none"], ["--icf=all", "--icf=none"]])
def test_a_link_that_does_not_fold_is_not_checked_for_it(tmp_path, how):
    objs = objects(tmp_path, "HAS_CRC")
    p = altlink("link", "--abi", "linux-v4.17", "--cap-table", "caps.txt", "--",
                *linker("lld"), *how, *ld_args(objs), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""


def test_through_the_compiler_driver(tmp_path):
    objs = objects(tmp_path, "HAS_CRC")
    p = altlink("link", "--abi", "linux-v4.17", "--cap-table", "caps.txt", "--",
                *CLANG_CC, "-fuse-ld=lld", "-nostdlib", "-static", "-Wl,--icf=all",
                f"-L{LDSCRIPTS}", "-Wl,-T,fw.ld", *objs, "-o", "fw.elf", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "ALT013: the linker folded the identical code of twin_a, twin_b, zero" in p.stderr


@pytest.mark.parametrize("argv, folds", [
    (["ld.lld", "--icf=all"], True),
    (["ld.lld", "--icf=safe"], True),
    (["ld.lld", "-icf=all"], True),
    (["ld.lld", "--icf", "all"], True),
    (["ld.lld", "--icf=all", "--icf=none"], False),
    (["ld.lld", "--icf=none"], False),
    (["ld.lld"], False),
    (["clang", "-Wl,--gc-sections,--icf=all"], True),
    (["clang", "-Xlinker", "--icf=safe"], True),
    (["clang", "-Wl,--icf=all", "-Xlinker", "--icf=none"], False),
    (["ld.lld", "--icf-foo=all"], False),
])
def test_requested(argv, folds):
    assert folding.requested(argv) is folds
