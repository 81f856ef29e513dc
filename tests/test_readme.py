"""The README's examples, run as written: the shell blocks are read from README.md (not copied
here), so that an edit that breaks one fails this test.

A block runs when every command in it is one this machine can run: ``altlink link`` and
``altlink patch`` (in a directory holding the ``start.o``, ``main.o``, ``fw.ld`` and
``caps.txt`` the README names), ``make -C samples/...``, ``cmake -S samples/...`` and
``qemu-aarch64`` (in a copy of the repository's samples). The others (``./run``, a Linux
tree's Kbuild, a vmlinux of one's own) are left out by what they name."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from toolchain import INCLUDE, ROOT, env_without_altlink_vars, run, write

README = ROOT / "README.md"
CC = "aarch64-linux-gnu-gcc"

# What a block must not name to be run here.
NOT_HERE = ("./run ", "ARCH=arm64", "vmlinux", "modules")
IN_FIRMWARE = ("altlink link ", "altlink patch ")
IN_SAMPLES = ("make -C samples/", "cmake -S samples/", "cmake --build ", "qemu-aarch64 ")


def shell_blocks(text: str) -> list[str]:
    """The indented code blocks of a Markdown text (fenced blocks other than sh/shell left
    out), dedented, in order."""
    blocks, cur, fence = [], [], None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if fence is not None:
            if line.strip().startswith("```"):
                if fence in ("sh", "shell", "bash", "console"):
                    blocks.append("\n".join(cur))
                fence, cur = None, []
            else:
                cur.append(line)
            continue
        if line.strip().startswith("```"):
            fence, cur = line.strip()[3:].strip(), []
            continue
        indented = line.startswith("    ") and line.strip()
        if indented and (cur or i == 0 or not lines[i - 1].strip()):
            cur.append(line)
            continue
        if cur and not line.strip() and i + 1 < len(lines) and lines[i + 1].startswith("    "):
            cur.append("")
            continue
        if cur:
            blocks.append(textwrap.dedent("\n".join(cur)).strip())
            cur = []
    if cur:
        blocks.append(textwrap.dedent("\n".join(cur)).strip())
    return [b for b in blocks if b]


def commands(block: str) -> list[str]:
    return [c.strip() for c in re.split(r"\s*&&\s*|\n", block.replace("\\\n", " ")) if c.strip()]


def kind(block: str) -> str | None:
    cmds = commands(block)
    if any(word in block for word in NOT_HERE) or not cmds:
        return None
    if all(c.startswith(IN_FIRMWARE) for c in cmds):
        return "firmware"
    if all(c.startswith(IN_SAMPLES) for c in cmds):
        return "samples"
    return None


MAIN_C = r"""
#include "caps.h"
#include <altlink/alternative.h>
#include <stdint.h>

void fw_callback(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
	(void)alt;
	for (int i = 0; i < nr_inst; i++)
		updptr[i] = origptr[i];
}

int work(int x)
{
	asm volatile(ALTERNATIVE("mov %w0, #1", "mov %w0, #2", ALT_CAP_HAS_CRC) : "=r"(x));
	asm volatile(ALTERNATIVE("add %w0, %w0, #1", "add %w0, %w0, #2", ALT_CAP_HAS_LSE)
			: "+r"(x));
	asm volatile(ALTERNATIVE_CB("mov %w0, %w0", fw_callback) : "+r"(x));
	return x;
}
"""

START_S = """
	.text
	.globl _start
	.type _start, %function
_start:
	bl work
	mov x8, #93
	svc #0
	.size _start, . - _start
"""

FW_LD = """
ENTRY(_start)
SECTIONS {
  . = 0x400000;
  .text : { *(.text .text.*) }
  INCLUDE alternatives.ld
  .data : { *(.data) }
  /DISCARD/ : { *(.eh_frame .note.gnu.property) }
}
"""


def environment() -> dict:
    env = env_without_altlink_vars()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this altlink
    return env


def firmware_dir(d: Path, env: dict) -> Path:
    """What the README's link command names: start.o, main.o, fw.ld, caps.txt."""
    write(d / "caps.txt", "HAS_CRC\nHAS_LSE\n")
    write(d / "fw.ld", FW_LD)
    subprocess.run(["altlink", "caps", "caps.txt", "-o", "caps.h"], cwd=d, env=env, check=True)
    flags = ["-ffreestanding", "-fno-pic", "-nostdlib", "-O2", "-I", INCLUDE, "-I", d]
    run([CC, *flags, "-c", write(d / "main.c", MAIN_C), "-o", d / "main.o"])
    run([CC, "-c", write(d / "start.S", START_S), "-o", d / "start.o"])
    return d


def test_the_readme_examples_run_as_written(tmp_path):
    blocks = [(b, kind(b)) for b in shell_blocks(README.read_text())]
    runnable = [(b, k) for b, k in blocks if k]
    # the README's link, patch, make and CMake examples at least: never a vacuous pass
    assert sum(k == "firmware" for _, k in runnable) >= 2, [b for b, _ in blocks]
    assert sum(k == "samples" for _, k in runnable) >= 2, [b for b, _ in blocks]
    env = environment()
    fw = firmware_dir(tmp_path / "fw", env)
    shutil.copytree(ROOT / "samples", tmp_path / "repo" / "samples",
                    ignore=shutil.ignore_patterns("build", "__pycache__"))
    for block, k in runnable:
        cwd = fw if k == "firmware" else tmp_path / "repo"
        p = subprocess.run(["sh", "-e", "-c", block], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=900)
        assert p.returncode == 0, f"{block}\n{p.stdout}\n{p.stderr}"
    # what the link example promises: the three outputs; the patch example: its two
    for name in ("fw.elf", "fw.alt.json", "fw.bin", "fw-patched.elf", "fw-patched.bin"):
        assert (fw / name).is_file(), name


def test_the_extraction_finds_indented_and_list_blocks():
    text = ("Intro:\n\n    altlink link -o a -- ld x.o -o a\n\n1. **Offline**:\n\n"
            "       altlink patch fw.elf --manifest m \\\n           --emulate cb\n\n"
            "   This refuses...\n\n```sh\nmake -C samples/make\n```\n\n```python\nx = 1\n```\n")
    assert shell_blocks(text) == ["altlink link -o a -- ld x.o -o a",
                                  "altlink patch fw.elf --manifest m \\\n    --emulate cb",
                                  "make -C samples/make"]
    assert [kind(b) for b in shell_blocks(text)] == ["firmware", "firmware", "samples"]
    assert kind("./run demo") is None
    assert kind("altlink check --symbols-from vmlinux $(find modules -name '*.ko')") is None


@pytest.fixture(autouse=True)
def _toolchain():
    if not shutil.which(CC):
        pytest.skip("the AArch64 GNU toolchain is not installed")
