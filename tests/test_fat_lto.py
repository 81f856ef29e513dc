"""GCC's ``-flto -ffat-lto-objects`` objects carry the IR and the code made without LTO. A link
through the gcc driver takes the IR (link-time optimization: here ``g`` is inlined into ``f``,
which moves ``f``'s alternative site), so that the code beside it is not what is linked and
its entries are not the image's: such objects are LTO objects there, checked in the linked
image (the link stopped on a false ALT013 before). A link by ld itself, without GCC's plugin,
links their code: they are checked as objects."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from toolchain import (
    FREESTANDING,
    INCLUDE,
    LDSCRIPTS,
    ROOT,
    SIMPLE_LD,
    env_without_altlink_vars,
    run,
    write,
)

from altlink.linkcmd import gcc_lto_plugin

GCC = "aarch64-linux-gnu-gcc"
pytestmark = pytest.mark.skipif(not shutil.which(GCC), reason="the AArch64 GNU toolchain is "
                                "not installed")

F = r"""
#include <altlink/alternative.h>
int g(int);
int f(int x)
{
	int r;
	x = g(x) + g(x + 3);
	asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", 1) : "=r"(r));
	return r + x;
}
"""
G = "int g(int x) { return x * 7 + 1; }\n"
START = "\t.text\n\t.globl _start\n_start:\tmov w0, #1\n\tbl f\n\tmov x8, #93\n\tsvc #0\n"


def objects(tmp: Path, fat: bool = True) -> list[str]:
    write(tmp / "fw.ld", SIMPLE_LD)
    write(tmp / "f.c", F)
    write(tmp / "g.c", G)
    write(tmp / "start.S", START)
    flags = [*FREESTANDING, f"-I{INCLUDE}", "-DALT_NCAPS=4"]
    lto = ["-flto", *(["-ffat-lto-objects"] if fat else [])]
    run([GCC, *flags, "-c", "start.S", "-o", "start.o"], cwd=tmp)
    for name in ("f", "g"):
        run([GCC, *flags, *lto, "-c", f"{name}.c", "-o", f"{name}.o"], cwd=tmp)
    return ["start.o", "f.o", "g.o"]


def link(tmp: Path, linker: list[str], objs: list[str]) -> subprocess.CompletedProcess:
    env = env_without_altlink_vars()
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "altlink", "link", "-v", "--ncaps", "4", "--", *linker,
         "-static", "-nostdlib", f"-L{LDSCRIPTS}", "-T", "fw.ld", *objs, "-o", "fw.elf"],
        cwd=tmp, capture_output=True, text=True, env=env)


def f_calls_g(tmp: Path) -> bool:
    dis = run(["aarch64-linux-gnu-objdump", "-d", "fw.elf"], cwd=tmp).stdout
    return "bl" in dis.split("<f>:")[1].split("\n\n")[0]


@pytest.mark.parametrize("fat", [True, False])
def test_the_gcc_driver_links_the_ir(tmp_path, fat):
    objs = objects(tmp_path, fat)
    p = link(tmp_path, [GCC, *FREESTANDING, "-flto"], objs)
    assert p.returncode == 0, p.stderr
    assert "f.o: note: LTO object, and 1 more (g.o): their alternatives exist only after the " \
        "link and are checked in the linked image" in p.stderr
    assert "checked 1 object (0 entries" in p.stderr
    assert "cross-checked 1 entry" in p.stderr
    assert not f_calls_g(tmp_path)  # (g inlined: the IR was linked, f's site moved)


def test_the_gcc_driver_without_flto_at_the_link(tmp_path):
    """gcc 12 optimizes such objects at the link without -flto too."""
    objs = objects(tmp_path)
    p = link(tmp_path, [GCC, *FREESTANDING], objs)
    assert p.returncode == 0, p.stderr
    assert "checked 1 object (0 entries" in p.stderr
    assert not f_calls_g(tmp_path)


@pytest.mark.parametrize("linker", [["aarch64-linux-gnu-ld"], [GCC, *FREESTANDING, "-flto",
                                                               "-fno-lto"]])
def test_a_link_of_the_code_beside_the_ir(tmp_path, linker):
    """ld itself (no plugin), or the driver told -fno-lto: the fat objects' code is linked,
    and they are checked as objects."""
    objs = objects(tmp_path)
    p = link(tmp_path, linker, objs)
    assert p.returncode == 0, p.stderr
    assert "LTO object" not in p.stderr
    assert "checked 3 objects (1 entry" in p.stderr
    assert f_calls_g(tmp_path)


@pytest.mark.parametrize("argv, ir", [
    (["aarch64-linux-gnu-gcc", "a.o"], True),
    (["gcc-12", "-flto=auto", "a.o"], True),
    (["/usr/bin/aarch64-linux-gnu-gcc-12", "-fno-use-linker-plugin", "a.o"], True),
    (["c++", "a.o"], True),
    (["aarch64-linux-gnu-gcc", "-flto", "-fno-lto", "a.o"], False),
    (["aarch64-linux-gnu-gcc", "-fno-lto", "-flto", "a.o"], True),
    (["aarch64-linux-gnu-gcc", "-fuse-ld=lld", "a.o"], False),
    (["clang", "--target=aarch64-linux-gnu", "a.o"], False),
    (["aarch64-linux-gnu-ld", "a.o"], False),
    (["aarch64-linux-gnu-ld", "-plugin", "/usr/lib/gcc-cross/aarch64-linux-gnu/12/"
      "liblto_plugin.so", "a.o"], True),
    (["ld.gold", "--plugin=/x/liblto_plugin.so", "a.o"], True),
    (["ld.lld", "a.o"], False),
])
def test_gcc_lto_plugin(argv, ir):
    assert gcc_lto_plugin(argv) is ir
