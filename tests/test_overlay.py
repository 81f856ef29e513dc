"""A linker script's OVERLAY gives several output sections one address: a site in one of
them is at an address whose code depends on which overlay is loaded when a patcher runs. The
link stops (ALT013) saying so, where the message used to say only that the address does not
hold the object's code."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from toolchain import INCLUDE, LDSCRIPTS, ROOT, env_without_altlink_vars, run, write

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed")

FUNC = r"""
#include <altlink/alternative.h>
	.section .text.{name}, "ax"
	.globl {name}
	.type {name}, %function
{name}:	alternative_insn "mov x0, #{a}", "mov x0, #{b}", {cap}
	{more}
	ret
	.size {name}, . - {name}
"""
SCRIPT = """
ENTRY(_start)
SECTIONS {{
  . = 0x400000;
  .text : {{ *(.text) }}
  INCLUDE alternatives.ld
  {layout}
}}
"""
OVERLAY = """OVERLAY 0x500000 : AT (0x600000) {
    .ov1 { *(.text.f1) }
    .ov2 { *(.text.f2) }
  }"""
APART = """.ov1 0x500000 : { *(.text.f1) }
  .ov2 0x510000 : { *(.text.f2) }"""


def link(tmp: Path, layout: str) -> subprocess.CompletedProcess:
    write(tmp / "f1.S", FUNC.format(name="f1", a=1, b=2, cap=1, more=""))
    write(tmp / "f2.S", FUNC.format(name="f2", a=3, b=4, cap=2, more="nop"))
    write(tmp / "start.S", "\t.text\n\t.globl _start\n_start:\tb .\n")
    write(tmp / "fw.ld", SCRIPT.format(layout=layout))
    for name in ("start", "f1", "f2"):
        run(["aarch64-linux-gnu-gcc", "-DALT_NCAPS=4", f"-I{INCLUDE}", "-c", f"{name}.S",
             "-o", f"{name}.o"], cwd=tmp)
    env = env_without_altlink_vars()
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "altlink", "link", "--ncaps", "4", "--",
         "aarch64-linux-gnu-ld", "-static", "-L", str(LDSCRIPTS), "-T", "fw.ld", "start.o",
         "f1.o", "f2.o", "-o", "fw.elf"], cwd=tmp, capture_output=True, text=True, env=env)


def test_a_site_in_an_overlay(tmp_path):
    p = link(tmp_path, OVERLAY)
    assert p.returncode == 1, p.stderr
    assert "f1.o: error: ALT013: site .text.f1+0x0 is at 0x500000 in the image (.ov2), " \
        "which does not hold the object's code for it: .ov1, .ov2 share that address (an " \
        "overlay), and a patcher writes to whichever is loaded when it runs; keep " \
        "alternative sites out of overlays" in p.stderr


def test_the_same_sections_apart(tmp_path):
    p = link(tmp_path, APART)
    assert p.returncode == 0, p.stderr
