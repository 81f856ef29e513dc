"""ALT014: a callback that reaches sanitizer hooks or alternative sites, in a linked image
(Linux a2c0b0fbe014 and d35652a5fc99: instrumented patching code hung or misreported at boot)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.toolchain import compile, link, write

CALLBACK_C = r"""
#define ALT_NCAPS 2
#include <altlink/alternative.h>
#include <stdint.h>

void __tsan_read4(void *p);
void helper(uint32_t *p);

void cb_clean(struct alt_instr *alt, uint32_t *o, uint32_t *u, int n)
{
    for (int i = 0; i < n; i++)
        u[i] = o[i];
}

void cb_tsan(struct alt_instr *alt, uint32_t *o, uint32_t *u, int n)
{
    helper(u);          /* helper is instrumented: it calls __tsan_read4 */
    u[0] = o[0];
}

void cb_patched(struct alt_instr *alt, uint32_t *o, uint32_t *u, int n)
{
    int x;
    asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", 1) : "=r"(x));
    u[0] = o[0] + x;
}

int _start(void)
{
    int a = 0;
    asm volatile(ALTERNATIVE_CB("mov %w0, #0", cb_clean) : "+r"(a));
#ifdef WITH_TSAN
    asm volatile(ALTERNATIVE_CB("mov %w0, #0", cb_tsan) : "+r"(a));
#endif
#ifdef WITH_PATCHED
    asm volatile(ALTERNATIVE_CB("mov %w0, #0", cb_patched) : "+r"(a));
#endif
    return a;
}
"""

HELPERS_S = """
    .text
    .globl helper
    .type helper, %function
helper:
    stp x29, x30, [sp, #-16]!
    bl __tsan_read4
    ldp x29, x30, [sp], #16
    ret
    .size helper, . - helper
    .globl __tsan_read4
    .type __tsan_read4, %function
__tsan_read4:
    ret
    .size __tsan_read4, . - __tsan_read4
"""

LDS = """
ENTRY(_start)
SECTIONS { . = 0x400000; .text : { *(.text .text.*) } INCLUDE alternatives.ld
  /DISCARD/ : { *(.eh_frame .note.gnu.property) } }
"""


def build(tmp_path, tsan: bool, patched: bool):
    defs = (["WITH_TSAN"] if tsan else []) + (["WITH_PATCHED"] if patched else [])
    c = compile(write(tmp_path / "cb.c", CALLBACK_C), tmp_path / "cb.o", defines=defs)
    h = compile(write(tmp_path / "h.S", HELPERS_S), tmp_path / "h.o")
    from tests.toolchain import LDSCRIPTS
    return link([c, h], tmp_path / "fw.elf", script=write(tmp_path / "fw.ld", LDS),
                flags=[f"-L{LDSCRIPTS}"])


def check(image, *extra):
    proc = subprocess.run([sys.executable, "-m", "altlink", "check", "--format", "json",
                           str(image), *extra], capture_output=True, text=True)
    return proc.returncode, json.loads(proc.stdout)["findings"]


def test_clean_callback_reaches_nothing(tmp_path):
    rc, findings = check(build(tmp_path, tsan=False, patched=False))
    assert rc == 0 and findings == []


def test_callback_reaching_sanitizer_hook_through_a_callee(tmp_path):
    rc, findings = check(build(tmp_path, tsan=True, patched=False))
    assert [f["code"] for f in findings] == ["ALT014"]
    f = findings[0]
    assert f["severity"] == "warning" and rc == 0
    assert "cb_tsan" in f["message"] and "__tsan_read4" in f["message"]
    assert "cb_tsan -> helper -> __tsan_read4" in f["message"]


def test_callback_with_its_own_alternative_site(tmp_path):
    rc, findings = check(build(tmp_path, tsan=False, patched=True))
    assert [f["code"] for f in findings] == ["ALT014"]
    assert "cb_patched" in findings[0]["message"] and "site" in findings[0]["message"]


@pytest.mark.parametrize("flag,code", [("--werror", 1), ("-Wno-ALT014", 0)])
def test_werror_and_silencing(tmp_path, flag, code):
    image = build(tmp_path, tsan=True, patched=False)
    args = ["--werror"] if flag == "--werror" else ["-W", "no-ALT014"]
    rc, findings = check(image, *args)
    assert rc == code
    assert bool(findings) == (flag == "--werror")
