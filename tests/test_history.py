"""Bugs that real kernels shipped or nearly shipped, rebuilt small: each test builds the
real-world shape of one public case with the real toolchain (C or assembly through
``<altlink/alternative.h>``, linked by GNU ld or lld, run under qemu-aarch64 where running
tells), and asserts that altlink reports exactly the code that catches it, and nothing for
the shape the kernel fixed it to. docs/historical-bugs.md has the table: what happened,
the commit, the code, the test.

Where another test file already covers the code with hand-written entries, these tests
build the case as the kernel had it instead: test_checks.py (one broken entry per code),
test_link.py (the link stage: veneers, discarded sections, --gc-sections), test_reach.py
(ALT014 on hand-written hooks), test_runtime.py (runtime against offline patcher).
"""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from test_checks import assert_clean, assert_only, check, codes
from test_link import Image, altlink, asm, linker_command
from test_runtime import DRIVER_LD, RUNTIME, SAMPLE
from toolchain import LDSCRIPTS, ROOT, compile, link, qemu, run, write

from altlink import insn
from altlink import manifest as manifestmod
from altlink import patch as patchmod

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld",
                                      "ld.lld", "clang", "qemu-aarch64")),
    reason="the AArch64 toolchains (GNU, LLVM) and qemu-aarch64 are needed",
)

V61 = ("--abi", "linux-v6.1")
V417 = ("--abi", "linux-v4.17", "--ncaps", "4")  # test_link.asm builds with ALT_NCAPS=4
PROFILES = {"v4.17": V417, "v6.1": V61}
PROFILE_DEFINES = {"v4.17": [], "v6.1": ["ALTLINK_ABI_LINUX_V61"]}
KERNEL_SYMS = ROOT / "tests" / "data" / "kernel" / "vmlinux.syms"  # Debian 6.1's vmlinux symbols


def link_json(*args, cwd: Path) -> tuple[int, list[dict]]:
    """``altlink link --format json ARGS`` as a user runs it: the exit code and the findings
    (none when the linker itself failed, exit 3)."""
    p = altlink("link", "--format", "json", *args, cwd=cwd)
    return p.returncode, (json.loads(p.stdout)["findings"] if p.stdout.strip() else [])


def c_object(tmp: Path, name: str, text: str, toolchain: str = "gnu", flags=(),
             defines=()) -> Path:
    return compile(write(tmp / f"{name}.c", text), tmp / f"{name}.o", toolchain,
                   ["-Wall", "-Werror", *flags], defines)


def check_entries(obj: Path) -> int:
    """How many entries ``altlink scan`` finds in an object."""
    p = altlink("scan", "--format", "json", *V417, obj, cwd=obj.parent)
    return len(json.loads(p.stdout)["files"][0]["entries"])


def branch_target(img: Image, addr: int) -> int:
    (word,) = struct.unpack("<I", img.read(addr, 4))
    assert word >> 26 in (0x05, 0x25), f"{word:#010x} is not B or BL"
    return addr + (((word & 0x3FFFFFF) ^ 0x2000000) - 0x2000000) * 4


# == f7b93d42945c (5.8): veneers after .altinstr_replacement ======================================
#
# Before 5.8 replacements lived in .altinstr_replacement, an output section of its own far from
# the text in a big kernel. A B in a replacement back to the text was out of the linker's reach,
# so the linker sent it through a veneer placed after .altinstr_replacement; the patcher
# re-encoded the branch at the site to reach that veneer, out of range from the site: crash at
# boot. Linux 5.8 moved replacements into a subsection of the site's own section.

VENEER_S = r"""
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	alternative_insn "nop", "b done", 1
	mov	x0, #1
done:
	mov	x8, #93
	svc	#0
	.size _start, . - _start
"""

# A big kernel's layout: the text, then (256 MiB further) the replacements.
FAR_REPLACEMENTS_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	.altinstructions : { KEEP(*(.altinstructions)) }
	. = 0x10400000;
	.altinstr_replacement : { KEEP(*(.altinstr_replacement)) }
}
"""


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_f7b93d42945c_veneer_after_altinstr_replacement(tmp_path, linker):
    obj = asm(tmp_path, "veneer", VENEER_S)
    script = write(tmp_path / "far.ld", FAR_REPLACEMENTS_LD)
    cmd = linker_command(linker, [obj], "x.elf", script)
    # What the linker does on its own: the replacement's B goes to a veneer next to it.
    run(cmd, cwd=tmp_path)
    img = Image(tmp_path / "x.elf")
    row = img.table()[0]
    veneer = branch_target(img, row.alt)
    assert veneer != img.symbol("done") and 0 < veneer - row.alt < 0x1000

    # altlink link: the linker redirected the replacement (ALT016, from the object's view).
    # GNU ld's veneer is a little further on: re-encoded at the site the branch would reach
    # for it, 256 MiB away (ALT009). lld's thunk is right after the replacement: the image's
    # view of that entry (ALT016, the patcher would fall through at the site) is the same
    # problem, not repeated. Nothing is written.
    rc, found = link_json("-o", "fw.elf", *V417, "--", *cmd, cwd=tmp_path)
    want = ["ALT009", "ALT016"] if linker == "ld" else ["ALT016"]
    assert rc == 1 and sorted(f["code"] for f in found) == want, found
    assert all(f["entry"] == 0 for f in found)
    from_object = next(f for f in found if f["file"] == str(obj))
    assert from_object["code"] == "ALT016" and "through a veneer or stub" in \
        from_object["message"] and "not to done at" in from_object["message"]
    assert not (tmp_path / "fw.elf").exists()
    # The image alone, as a kernel build links it.
    if linker == "ld":
        assert veneer - row.alt > 4
        assert_only("ALT009", *V417, tmp_path / "x.elf", count=1, place="_start",
                    message=f"(b {veneer:#x}) at the site {img.symbol('_start'):#x}: "
                    "branch26 needs")
    else:
        assert veneer == row.alt + 4
        assert_only("ALT016", *V417, tmp_path / "x.elf", count=1, place="_start",
                    message="branches to a linker thunk or veneer right after the replacement")

    # Linux 5.8's fix: the replacement in a subsection of the site's section, next to it.
    fixed = asm(tmp_path, "fixed", VENEER_S, defines=["ALTLINK_ABI_LINUX_V61"])
    cmd = linker_command(linker, [fixed], "y.elf", script)
    assert link_json("-o", "fixed.elf", *V61, "--", *cmd, cwd=tmp_path) == (0, [])


# == 5679b2814219 (5.8, and 5.7.y): internal branches "fixed up" ===================================
#
# Once replacements sat in the text (f7b93d42945c), branch_insn_requires_update() re-encoded
# every branch whose target was kernel text, the replacement's own branches included: at the
# site they jumped back into the replacement's copy. The rule (docs/reference.md, section 2): a branch whose target
# is inside [replacement, replacement + alt_len] (end inclusive) is copied unchanged.

SITES_S = r"""
#include <altlink/alternative.h>
	.text

	/* int sum_site(void): 0; patched, 5 + 4 + 3 + 2 + 1 in a loop. */
	.globl	sum_site
	.type	sum_site, %function
sum_site:
alternative_if 0
	mov	w1, #0
	mov	w2, #5
1:	add	w1, w1, w2
	subs	w2, w2, #1
	b.ne	1b			// internal, backwards
	cbz	w2, 2f			// internal, to the end of the replacement
2:
alternative_else
	mov	w1, #0
	nop
	nop
	nop
	nop
	nop
alternative_endif
	mov	w0, w1
	ret
	.size	sum_site, . - sum_site

	/* int mixed_site(int x): 10; patched, 20 for an even x, 21 (outside) for an odd one. */
	.globl	mixed_site
	.type	mixed_site, %function
mixed_site:
alternative_if 0
	tbz	w0, #0, 3f		// internal, forwards
	b	odd_path		// outward: re-encoded at the site
3:	mov	w0, #20
alternative_else
	mov	w0, #10
	nop
	nop
alternative_endif
	ret
	.size	mixed_site, . - mixed_site

	.type	odd_path, %function
odd_path:
	mov	w0, #21
	ret
	.size	odd_path, . - odd_path
	.section .note.GNU-stack, "", %progbits
"""

# Prints what each site returned, after patching with the C runtime ("runtime") or not
# ("none"), then the text in hex.
SITES_MAIN_C = r"""
#include <stddef.h>
#include <stdint.h>
#include <altlink/alternative.h>
#include "alt_runtime.h"
#include "fw.h"

extern char __text_start[], __text_end[];
extern struct alt_instr __alt_instructions[], __alt_instructions_end[];
int sum_site(void);
int mixed_site(int x);

static void out(const char *s, unsigned long n) { sys_write(1, s, n); }

static void number(const char *label, unsigned long n, int v)
{
	char b[12];
	int i = sizeof(b);

	out(label, n);
	b[--i] = '\n';
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	out(b + i, sizeof(b) - (unsigned long)i);
}

int fw_main(int argc, char **argv)
{
	uint64_t caps = 1;	/* capability 0 */
	struct alt_config cfg = {
		.profile = ALT_PROFILE_DEFAULT, .ncaps = ALT_NCAPS, .caps = &caps, .caps_bits = 64,
	};
	struct alt_result res;

	if (argc > 1 && argv[1][0] == 'r' &&
		alt_apply_table(&cfg, __alt_instructions, __alt_instructions_end, &res) != ALT_OK)
		return 1;
	number("sum ", 4, sum_site());
	number("even ", 5, mixed_site(2));
	number("odd ", 4, mixed_site(3));
	for (const unsigned char *p = (const unsigned char *)__text_start;
		p < (const unsigned char *)__text_end; p++) {
		char h[2] = { "0123456789abcdef"[*p >> 4], "0123456789abcdef"[*p & 15] };
		out(h, 2);
	}
	out("\n", 1);
	return 0;
}
"""

PATCHED = ["sum 15", "even 20", "odd 21"]
ORIGINAL = ["sum 0", "even 10", "odd 10"]


def outcome(proc) -> tuple[list[str], str]:
    """What the driver printed (the sites' values) and the text it dumped."""
    assert proc.returncode == 0, (proc.returncode, proc.stdout[:300], proc.stderr[:300])
    *values, text = proc.stdout.splitlines()
    return values, text


@pytest.mark.parametrize("toolchain", ["gnu", "llvm"])
def test_5679b2814219_internal_branches_are_not_fixed_up(tmp_path, toolchain, monkeypatch):
    defines = ["ALTLINK_ABI_LINUX_V61", "ALT_NCAPS=1"]  # replacements in .text, subsection 1
    flags = [f"-I{RUNTIME}", f"-I{SAMPLE / 'fw'}", "-Wall", "-Werror"]
    objs = [compile(SAMPLE / "fw" / "start.S", tmp_path / "start.o", toolchain),
            compile(write(tmp_path / "sites.S", SITES_S), tmp_path / "sites.o", toolchain,
                    defines=defines),
            compile(write(tmp_path / "main.c", SITES_MAIN_C), tmp_path / "main.o", toolchain,
                    flags, defines),
            compile(RUNTIME / "alt_runtime.c", tmp_path / "rt.o", toolchain, flags, defines)]
    script = write(tmp_path / "drv.ld", DRIVER_LD)
    linker = linker_command("ld" if toolchain == "gnu" else "lld", objs, "x.elf", script,
                            ["--no-relax"] if toolchain == "llvm" else [])
    rc, found = link_json("-o", "drv.elf", "--manifest", "drv.json", *V61, "--ncaps", "1",
                          "--", *linker, cwd=tmp_path)
    assert (rc, found) == (0, [])
    elf, m = tmp_path / "drv.elf", manifestmod.load(str(tmp_path / "drv.json"))
    # Only the outward branch is a fix-up; b.ne, cbz (to the end) and tbz stay as they are.
    assert [[f["kind"] for f in e["replacement"]["fixups"]] for e in m["entries"]] == \
        [[], ["branch26"]]

    assert outcome(qemu(elf, "none"))[0] == ORIGINAL
    values, runtime_text = outcome(qemu(elf, "runtime"))  # the C runtime
    assert values == PATCHED
    out = tmp_path / "offline.elf"
    assert altlink("patch", elf, "--manifest", "drv.json", "--caps", "0", "-o", out,
                   cwd=tmp_path).returncode == 0
    values, offline_text = outcome(qemu(out, "none"))  # altlink patch
    assert values == PATCHED and offline_text == runtime_text

    # The 5.7 rule ("a target in the kernel text is re-encoded"), which is every target here:
    # the internal branches now leave the site for the replacement's copy.
    monkeypatch.setattr(insn, "needs_fixup", lambda word, repl, alt_len, pc: True)
    buggy = patchmod.patch(str(elf), m, patchmod.Plan(frozenset({0})))
    (tmp_path / "buggy.elf").write_bytes(buggy.image)
    got = qemu(tmp_path / "buggy.elf", "none")
    assert got.returncode != 0 or got.stdout.splitlines()[:3] != PATCHED


# == 8e8ae788964a (6.18, 2025): a module's own callback ===========================================
#
# Modules apply their alternatives at load, before their own code may run: a callback defined
# in the module crashed the load (an instruction abort on the module's not yet executable
# text). The fix makes Linux reject such modules. ALT015 says it at build time, automatically
# for an object with the module structure (a .ko, linked with ld -r as Kbuild does) and with --module.

MODULE_C = r"""
#include <stdint.h>
#include <altlink/alternative.h>

#ifdef OWN_CALLBACK
alt_callback_fn mod_patch_cb;
void mod_patch_cb(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
	(void)alt;
	for (int i = 0; i < nr_inst; i++)
		updptr[i] = origptr[i];
}
#define CALLBACK mod_patch_cb
#else
#define CALLBACK alt_cb_patch_nops	/* the kernel's, as every Debian 6.1 module uses */
#endif

#ifdef MODINFO
__attribute__((section(".modinfo"), used)) static const char license[] = "license=GPL";
#endif
#ifdef THIS_MODULE	/* what modpost's .mod.c adds to every module */
__attribute__((section(".gnu.linkonce.this_module"), used)) static char this_module[64];
#endif

int mod_fast_path(void)
{
	int v = 0;

	asm volatile(ALTERNATIVE_CB("mov %w0, #1", 26, CALLBACK) : "+r"(v));
	return v;
}
"""


@pytest.mark.parametrize("toolchain", ["gnu", "llvm"])
def test_8e8ae788964a_module_callback_inside_the_module(tmp_path, toolchain):
    def module(name: str, *defines: str) -> Path:
        obj = c_object(tmp_path, name, MODULE_C, toolchain,
                       defines=["ALTLINK_ABI_LINUX_V61", *defines])
        ko = tmp_path / f"{name}.ko"
        run([*(["aarch64-linux-gnu-ld"] if toolchain == "gnu" else ["ld.lld"]), "-r", obj,
             "-o", ko])
        return ko

    kernel = ("--symbols-from", KERNEL_SYMS)
    own = module("own", "OWN_CALLBACK", "MODINFO", "THIS_MODULE")
    assert_only("ALT015", *V61, *kernel, own, count=1, place="mod_fast_path",
                message="callback mod_patch_cb is defined by the module itself")
    # The same object without the module structure is kernel code (a built-in module keeps
    # its .modinfo in vmlinux), unless --module says otherwise.
    plain = module("plain", "OWN_CALLBACK", "MODINFO")
    assert_clean(*V61, *kernel, plain)
    assert_only("ALT015", *V61, *kernel, "--module", plain, count=1)
    # The shape of every Debian 6.1 module: the callback is the kernel's alt_cb_patch_nops.
    assert_clean(*V61, *kernel, module("fixed", "MODINFO", "THIS_MODULE"))


# == a2c0b0fbe014 (5.18, arm64) and d35652a5fc99 (6.6, x86): instrumented patching code =========
#
# arm64's patch_alternative() (the callback of every static entry) was instrumented by KCSAN:
# it called __tsan_read4 while the LL/SC atomics inside __tsan_read4 were half-way to LSE, and
# the boot hung. x86 disabled KASAN in apply_alternatives() for false reports on half-patched
# code. ALT014 follows a callback's calls in the image; here the callback is built with the
# compilers' real instrumentation (KCSAN: -fsanitize=thread, KASAN outline:
# -fsanitize=kernel-address, KCOV: -fsanitize-coverage=trace-pc), the hooks stubbed.

PATCH_CB_C = r"""
#include <stdint.h>
#include <altlink/alternative.h>

alt_callback_fn patch_cb;
void patch_cb(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
	(void)alt;
	for (int i = 0; i < nr_inst; i++)
		updptr[i] = origptr[i] | 1;
}
"""

SITE_C = r"""
#include <altlink/alternative.h>

void _start(void)
{
	asm volatile(ALTERNATIVE_CB("nop", 1, patch_cb));
	for (;;)
		;
}
"""

# What the kernel's Makefiles pass (scripts/Makefile.kcsan, .kasan with outline, .kcov).
SANITIZERS = {
    "kcsan": ({"gnu": ["-fsanitize=thread"], "llvm": ["-fsanitize=thread"]}, "__tsan_"),
    "kasan": ({"gnu": ["-fsanitize=kernel-address",
                       "--param", "asan-instrumentation-with-call-threshold=0"],
               "llvm": ["-fsanitize=kernel-address",
                        "-mllvm", "-asan-instrumentation-with-call-threshold=0"]}, "__asan_"),
    "kcov": ({"gnu": ["-fsanitize-coverage=trace-pc"],
              "llvm": ["-fsanitize-coverage=trace-pc"]}, "__sanitizer_cov_trace_pc"),
}

IMAGE_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	INCLUDE alternatives.ld
	.rodata : { *(.rodata .rodata.*) }
	.data : { *(.data .data.* .bss .bss.*) }
	/DISCARD/ : { *(.eh_frame .note.gnu.property .init_array* .ctors*) }
}
"""


def hook_stubs(tmp: Path, obj: Path, toolchain: str) -> Path:
    """The sanitizer runtime, stubbed: one `ret` function per hook the object calls."""
    undefined = run(["aarch64-linux-gnu-nm", "-u", obj]).stdout.split()
    hooks = sorted(s for s in undefined if s.startswith("__"))
    body = "".join(f"\t.globl {h}\n\t.type {h}, %function\n{h}:\tret\n\t.size {h}, 4\n"
                   for h in hooks)
    return compile(write(tmp / "hooks.S", "\t.text\n" + body), tmp / "hooks.o", toolchain)


def callback_image(tmp: Path, toolchain: str, flags) -> Path:
    v61 = ["ALTLINK_ABI_LINUX_V61"]
    cb = c_object(tmp, "cb", PATCH_CB_C, toolchain, flags, v61)
    site = c_object(tmp, "site", SITE_C, toolchain, defines=v61)
    return link([cb, site, hook_stubs(tmp, cb, toolchain)], tmp / "fw.elf", toolchain,
                write(tmp / "fw.ld", IMAGE_LD), [f"-L{LDSCRIPTS}"])


@pytest.mark.parametrize("sanitizer", SANITIZERS)
@pytest.mark.parametrize("toolchain", ["gnu", "llvm"])
def test_a2c0b0fbe014_instrumented_callback(tmp_path, toolchain, sanitizer):
    flags, prefix = SANITIZERS[sanitizer]
    image = callback_image(tmp_path / "instrumented", toolchain, flags[toolchain])
    found = assert_only("ALT014", *V61, image, severity="warning", place="_start")
    assert all(f["message"].startswith("callback patch_cb reaches the sanitizer hook " + prefix)
               for f in found), found
    rc, _ = check(*V61, "--werror", image)
    assert rc == 1
    # The same callback built without instrumentation (noinstr): nothing reached.
    assert_clean(*V61, callback_image(tmp_path / "noinstr", toolchain, []))


# The hook itself was being patched: __tsan_read4's LL/SC atomics had an LSE alternative.
# A callback that calls (uninstrumented) code with an alternative site of its own.
ATOMIC_S = r"""
#include <altlink/alternative.h>
	.text
	.globl	counter_inc
	.type	counter_inc, %function
counter_inc:				// x0: the counter
	mov	w1, #1
alternative_if_not 26			// LL/SC, until LSE atomics are patched in
1:	ldxr	w2, [x0]
	add	w2, w2, w1
	stxr	w3, w2, [x0]
	cbnz	w3, 1b
alternative_else
	.arch_extension lse
	stadd	w1, [x0]
	nop
	nop
	nop
alternative_endif
	ret
	.size	counter_inc, . - counter_inc
"""

COUNTING_CB_C = r"""
#include <stdint.h>
#include <altlink/alternative.h>

void counter_inc(uint32_t *counter);
static uint32_t patched;

alt_callback_fn patch_cb;
void patch_cb(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
	(void)alt;
	counter_inc(&patched);
	for (int i = 0; i < nr_inst; i++)
		updptr[i] = origptr[i];
}
"""


def test_a2c0b0fbe014_callback_calls_code_that_is_being_patched(tmp_path):
    v61 = ["ALTLINK_ABI_LINUX_V61"]
    objs = [c_object(tmp_path, "cb", COUNTING_CB_C, defines=v61),
            c_object(tmp_path, "site", SITE_C, defines=v61),
            compile(write(tmp_path / "atomic.S", ATOMIC_S), tmp_path / "atomic.o",
                    defines=v61)]
    image = link(objs, tmp_path / "fw.elf", script=write(tmp_path / "fw.ld", IMAGE_LD),
                 flags=[f"-L{LDSCRIPTS}"])
    assert_only("ALT014", *V61, image, severity="warning", count=1,
                message="callback patch_cb reaches alternative site counter_inc+0x4 (entry 1, "
                "via patch_cb -> counter_inc)")


# == arm64 4.17-era and Xen: a replacement branching into another entry's replacement ============
#
# branch_insn_requires_update() (arm64 until 5679b2814219, and Xen's copy) re-encoded targets in
# the kernel text, left targets inside the entry's own replacement, and BUG()ed on anything
# else: "Branching into *another* alternate sequence is doomed". A replacement that reuses the
# tail of another replacement hits that BUG() at boot.

SHARED_TAIL_S = r"""
#include <altlink/alternative.h>
	.text
	.globl	_start
	.type	_start, %function
_start:
alternative_if 1
	mov	x0, #1
TAIL:	mov	x1, #2			// the tail the second replacement reuses
alternative_else
	nop
	nop
alternative_endif
alternative_if 2
	b	TAIL
alternative_else
	nop
alternative_endif
	mov	x8, #93
	svc	#0
	.size	_start, . - _start
"""


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_xen_branch_into_another_replacement(tmp_path, linker):
    obj = asm(tmp_path, "tail", SHARED_TAIL_S.replace("TAIL", "shared_tail"))
    # The assembler resolved the branch: the object shows it, before any link.
    assert_only("ALT017", *V417, obj, count=1,
                message="the replacement of entry 1 branches into the replacement of entry 0")
    script = write(tmp_path / "fw.ld", IMAGE_LD)
    cmd = linker_command(linker, [obj], "x.elf", script)
    rc, found = link_json("-o", "fw.elf", *V417, "--", *cmd, cwd=tmp_path)
    assert rc == 1 and codes(found) == {"ALT017"} and len(found) == 1, found
    assert "the replacement of entry 1 branches into the replacement of entry 0" in \
        found[0]["message"]
    run(cmd, cwd=tmp_path)  # the image as the linker makes it, checked alone: the same
    assert_only("ALT017", *V417, tmp_path / "x.elf", count=1)
    # The tail in the text, where both replacements may branch to it: fine.
    fixed = asm(tmp_path, "fixed", SHARED_TAIL_S.replace("TAIL:\t", "\t").replace(
        "b\tTAIL", "b\tshared_tail").replace("\tmov\tx8, #93", "shared_tail:\n\tmov\tx8, #93"))
    cmd = linker_command(linker, [fixed], "y.elf", script)
    assert link_json("-o", "fixed.elf", *V417, "--", *cmd, cwd=tmp_path) == (0, [])


# == a494398bde27 (6.2-rc4, s390): table entries for a discarded .exit.text =======================
#
# The s390 linker script threw .exit.text away (DISCARDS) while .altinstructions still referred
# to it. GNU ld before 2.36 refused ("`.exit.text' referenced in section `.altinstructions' of
# drivers/md/md.o: defined in discarded section"), the build log of the report shows; lld
# links silently and the entry patches whatever ends up at the address the site resolved to.
# (test_link.py has the same with an assembly input.)

EXIT_C = r"""
#include <altlink/alternative.h>

__attribute__((section(".exit.text"), used, noinline)) void drv_exit(void)
{
	asm volatile(ALTERNATIVE("mov x1, #1", "mov x1, #2", 2) ::: "x1");
}

void _start(void)
{
	asm volatile(ALTERNATIVE("mov x0, #1", "mov x0, #2", 1) ::: "x0");
	for (;;)
		;
}
"""

DISCARD_EXIT_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	INCLUDE alternatives.ld
	/DISCARD/ : { *(.exit.text) *(.eh_frame .note.gnu.property) }
}
"""


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_a494398bde27_entries_for_discarded_exit_text(tmp_path, linker):
    obj = c_object(tmp_path, "exit", EXIT_C, defines=["ALT_NCAPS=4"])
    assert_clean(*V417, obj)
    cmd = linker_command(linker, [obj], "x.elf", write(tmp_path / "d.ld", DISCARD_EXIT_LD))
    p = altlink("link", "--format", "json", "-o", "fw.elf", *V417, "--", *cmd, cwd=tmp_path)
    if linker == "ld":  # GNU ld refuses, as it did for s390: its message, exit 3
        assert p.returncode == 3, p.stderr
        assert "`.exit.text' referenced in section `.altinstructions' of " in p.stderr
        assert "exit.o: defined in discarded section `.exit.text' of " in p.stderr
    else:
        # lld links, resolving the site to 0. The cross-check names the cause (ALT013), about
        # drv_exit's entry, the first in the object; the image's own view of that entry (an
        # offset outside the image, ALT012) is the same problem and is not repeated.
        found = json.loads(p.stdout)["findings"]
        assert p.returncode == 1 and [f["code"] for f in found] == ["ALT013"], found
        assert found[0]["entry"] == 0 and found[0]["file"] == str(obj)
        assert "the linker discarded .exit.text" in found[0]["message"]
        run(cmd, cwd=tmp_path)  # the image alone: only the offset outside it shows
        assert_only("ALT012", *V417, tmp_path / "x.elf", count=1,
                    message="site offset points outside the image (0x0)")
    assert not (tmp_path / "fw.elf").exists()
    # RUNTIME_DISCARD_EXIT: keep .exit.text in the image (freed at run time instead).
    kept = write(tmp_path / "k.ld", DISCARD_EXIT_LD.replace("*(.exit.text) ", "").replace(
        ".text : { *(.text .text.*) }", ".text : { *(.text .text.*) *(.exit.text) }"))
    cmd = linker_command(linker, [obj], "y.elf", kept)
    assert link_json("-o", "kept.elf", *V417, "--", *cmd, cwd=tmp_path) == (0, [])


# == --gc-sections without KEEP: the whole table dropped ==========================================
#
# Nothing refers to .altinstructions by name, so --gc-sections drops it unless the linker
# script KEEPs it; the image then simply has no alternatives, and the image alone cannot tell.

GC_C = r"""
#include <altlink/alternative.h>

int fast_mul(int a, int b)
{
	int v;

	asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", 1) : "=r"(v));
	return v ? a * b : 0;
}

void _start(void)
{
	asm volatile(ALTERNATIVE("nop", "mov x0, #2", 2) ::: "x0");
	for (;;)
		(void)fast_mul(2, 3);
}
"""

NO_KEEP_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	.altinstr_replacement : { *(.altinstr_replacement) }
	.altinstructions : { *(.altinstructions) }
	/DISCARD/ : { *(.eh_frame .note.gnu.property) }
}
"""


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_gc_sections_without_keep_drops_the_table(tmp_path, linker):
    obj = c_object(tmp_path, "gc", GC_C, flags=["-ffunction-sections"], defines=["ALT_NCAPS=4"])
    cmd = linker_command(linker, [obj], "x.elf", write(tmp_path / "nokeep.ld", NO_KEEP_LD),
                         ["--gc-sections"])
    rc, found = link_json("-o", "fw.elf", *V417, "--", *cmd, cwd=tmp_path)
    entries = check_entries(obj)  # fast_mul's, its copy inlined into _start, and _start's
    assert entries == 3
    assert rc == 1 and codes(found) == {"ALT013"} and len(found) == entries, found
    assert all("the table is not in the image" in f["message"] and "KEEP" in f["message"]
               for f in found)
    # What the linker made, checked alone: no table, nothing to report. Only the link stage,
    # which saw the entries in the objects, can tell.
    run(cmd, cwd=tmp_path)
    assert Image(tmp_path / "x.elf").section(".altinstructions") is None
    assert_clean(*V417, tmp_path / "x.elf")
    # The fragment KEEPs the table: the same --gc-sections link is clean.
    cmd = linker_command(linker, [obj], "y.elf", write(tmp_path / "keep.ld", IMAGE_LD),
                         ["--gc-sections"])
    assert link_json("-o", "kept.elf", *V417, "--", *cmd, cwd=tmp_path) == (0, [])


# == ARM64_CB_BIT (6.1): capabilities growing into the callback bit ==============================
#
# 6.1 marks a callback with bit 15 of the cap field (ARM64_CB_BIT) and guards it with
# `#if ARM64_NCAPS >= ARM64_CB_BIT / #error "cpucaps have overflown ARM64_CB_BIT"`. A table
# past 0x7fff names, or an entry whose capability reaches bit 15, turns a static entry into a
# "callback" whose callback is replacement code.

def test_arm64_cb_bit_capability_table_overflow(tmp_path):
    obj = asm(tmp_path, "ok", "#include <altlink/alternative.h>\n\t.text\nf:\n"
              "\talternative_insn \"nop\", \"mov x0, #1\", 5\n\tret\n",
              defines=["ALTLINK_ABI_LINUX_V61"])
    names = "".join(f"CAP_{i}\n" for i in range(0x8000))
    big = write(tmp_path / "cpucaps", names)
    assert_only("ALT011", *V61, "--cap-table", big, obj, count=1,
                message="32768 capabilities reach the callback bit 0x8000")
    fits = write(tmp_path / "cpucaps-fits", names[:names.index("CAP_32767")])  # 0x7fff names
    assert_clean(*V61, "--cap-table", fits, obj)


# A static entry whose capability is 0x8000 (what `.hword cap` writes once NCAPS reaches it):
# hand-written, since <altlink/alternative.h> refuses the capability when assembling.
CAP_8000_S = r"""
	.text
	.globl	_start
	.type	_start, %function
_start:
1:	nop
2:	ret
	.size	_start, . - _start
	SECTION
3:	mov	x0, #1
4:	POP
	.pushsection .altinstructions, "a"
	.word	1b - .
	.word	3b - .
	.hword	0x8000
	.byte	2b - 1b
	.byte	4b - 3b
	.popsection
"""


@pytest.mark.parametrize("where", ["altinstr_replacement", "subsection"])
def test_arm64_cb_bit_entry_capability_reaches_bit_15(tmp_path, where):
    sec, pop = {"altinstr_replacement": ('.pushsection .altinstr_replacement, "ax"',
                                         ".popsection"),
                "subsection": (".subsection 1", ".previous")}[where]
    obj = asm(tmp_path, "cb", CAP_8000_S.replace("SECTION", sec).replace("POP", pop))
    message = "capability field 0x8000 has bit 15 set"
    assert_only("ALT011", *V61, obj, count=1, message=message, place="_start")
    image = link([obj], tmp_path / "cb.elf")
    assert_only("ALT011", *V61, image, count=1, message=message)
    # The header refuses such a capability when assembling.
    with pytest.raises(Exception, match="capability .* is out of range"):
        asm(tmp_path, "hdr", "#include <altlink/alternative.h>\n\t.text\n"
            "\talternative_insn \"nop\", \"mov x0, #1\", 0x8000\n",
            defines=["ALTLINK_ABI_LINUX_V61"])


# == 270a69c4485d, 8009479ee919 (x86) and the RISC-V auipc+jalr fix-ups: PC-relative code the
# patcher does not fix ===========================================================================
#
# x86 copied replacements without relocating RIP-relative operands until 270a69c4485d (6.5),
# and 8009479ee919 (6.8) dropped a RIP-relative VERW operand so that backports to kernels
# without it would not break; RISC-V learned to fix auipc+jalr pairs in alternatives for 6.3.
# On AArch64 Linux re-encodes B, BL, B.cond, CB(N)Z, TB(N)Z and ADRP, and nothing else: ADR and
# literal loads are BUG()s at boot, SIMD/FP literal loads and BC.cond are copied silently,
# FEAT_CMPBR is unknown to it. Each, written as C code does, is ALT008 under both profiles.

PCREL_C = r"""
#include <altlink/alternative.h>

const unsigned long table_base[4] = { 1, 2, 3, 4 };
void slow_path(void);

unsigned long site(void)
{
	register unsigned long x0 asm("x0") = 0;

	asm volatile(ALTERNATIVE("mov %0, #0", REPLACEMENT, 1) : "+r"(x0) :: "d0", "cc");
	return x0;
}
"""

PCREL = [  # (id, replacement, ALT008's name for it, toolchains, compiler flags)
    ("adr", "adr %0, table_base", "adr", ("gnu", "llvm"), ()),
    ("ldr-literal-pool", "ldr %0, =0x123456789abc", "ldr-literal", ("gnu", "llvm"), ()),
    ("ldr-literal-simd", "ldr d0, =0x3ff0000000000000", "ldr-literal-simd", ("gnu",), ()),
    ("bc-cond", "bc.ne slow_path", "BC.cond unchanged", ("gnu", "llvm"),
     ("-march=armv8.8-a",)),
    ("cmpbr", ".inst 0x74000040", "cbcc", ("gnu", "llvm"), ()),  # FEAT_CMPBR cbgt w0, w0, #8
]


PCREL_BUILDS = [(c, t) for c in PCREL for t in c[3]]  # clang 14 has no SIMD/FP `ldr =`


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case,toolchain", PCREL_BUILDS,
                         ids=[f"{c[0]}-{t}" for c, t in PCREL_BUILDS])
def test_pcrel_replacements_the_patcher_does_not_fix(tmp_path, case, toolchain, profile):
    _name, replacement, what, _toolchains, flags = case
    obj = c_object(tmp_path, "pcrel", PCREL_C.replace("REPLACEMENT", f'"{replacement}"'),
                   toolchain, flags, ["ALT_NCAPS=4", *PROFILE_DEFINES[profile]])
    found = assert_only("ALT008", *PROFILES[profile], obj, count=1, place="site")
    assert what in found[0]["message"], found
    # ADRP + ADD, which Linux does re-encode (the AArch64 counterpart of auipc + addi): clean.
    fixed = c_object(tmp_path, "fixed", PCREL_C.replace(
        "REPLACEMENT", '"adrp %0, table_base\\n\\tadd %0, %0, :lo12:table_base"').replace(
        '"mov %0, #0"', '"mov %0, #0\\n\\tnop"'), toolchain, flags,
        ["ALT_NCAPS=4", *PROFILE_DEFINES[profile]])
    assert_clean(*PROFILES[profile], fixed)


# == e31694e0a7a7 and dc02368164bd (objtool, 5.14/5.15): inconsistent .altinstructions ============
#
# objtool created .altinstructions as "aw" where the compiler's was "a" (e31694e0a7a7), and with
# sh_entsize set where the kernel's had 0 (dc02368164bd): tools reading the objects (kpatch-build)
# failed. altlink reports flags that disagree across the link set, and an sh_entsize that is
# not the 12 bytes of an entry (0, "unspecified", is what compilers and Linux write).

OBJTOOL_S = r"""
	.text
	.globl	thunk_user
	.type	thunk_user, %function
thunk_user:
1:	nop
2:	ret
	.size	thunk_user, . - thunk_user
	.pushsection .altinstr_replacement, "ax"
3:	mov	x16, #0
4:	.popsection
	.section .altinstructions, "aw"		// as objtool created it
	.word	1b - .
	.word	3b - .
	.hword	1
	.byte	2b - 1b
	.byte	4b - 3b
"""


def set_entsize(path: Path, section: str, entsize: int) -> Path:
    """Rewrite one section header's sh_entsize in place, as objtool's libelf wrote it."""
    data = bytearray(path.read_bytes())
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    strtab = struct.unpack_from("<Q", data, shoff + 64 * shstrndx + 0x18)[0]
    for i in range(shnum):
        hdr = shoff + 64 * i
        name = struct.unpack_from("<I", data, hdr)[0] + strtab
        if data[name:data.index(0, name)].decode() == section:
            struct.pack_into("<Q", data, hdr + 0x38, entsize)
    path.write_bytes(bytes(data))
    return path


def test_e31694e0a7a7_table_flags_disagree(tmp_path):
    compiler = c_object(tmp_path, "mul", GC_C, defines=["ALT_NCAPS=4"])
    objtool = asm(tmp_path, "objtool", OBJTOOL_S)
    found = assert_only("ALT012", *V417, compiler, objtool, count=1,
                        message="inputs disagree on the flags of .altinstructions")
    assert f'"a" in {compiler}' in found[0]["message"]
    assert f'"aw" in {objtool}' in found[0]["message"]
    # The link stops before the linker runs.
    cmd = linker_command("ld", [compiler, objtool], "x.elf", write(tmp_path / "fw.ld", IMAGE_LD))
    rc, found = link_json("-o", "fw.elf", *V417, "--", *cmd, cwd=tmp_path)
    assert rc == 1 and codes(found) == {"ALT012"} and not (tmp_path / "x.elf").exists()
    # Made "a", as e31694e0a7a7 did: clean.
    fixed = asm(tmp_path, "fixed", OBJTOOL_S.replace('"aw"', '"a"'))
    assert_clean(*V417, compiler, fixed)


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_dc02368164bd_table_entsize_is_not_an_entry(tmp_path, linker):
    obj = c_object(tmp_path, "mul", GC_C, defines=["ALT_NCAPS=4"])
    for entsize in (0, 12):  # unspecified (what compilers write), or the entry's size
        assert_clean(*V417, set_entsize(obj, ".altinstructions", entsize))
    set_entsize(obj, ".altinstructions", 16)
    assert_only("ALT012", *V417, obj, count=1,
                message="sh_entsize of .altinstructions is 16, but an entry is 12 bytes")
    cmd = linker_command(linker, [obj], "x.elf", write(tmp_path / "fw.ld", IMAGE_LD))
    rc, found = link_json("-o", "fw.elf", *V417, "--", *cmd, cwd=tmp_path)
    assert rc == 1 and codes(found) == {"ALT012"} and len(found) == 1, found
    run(cmd, cwd=tmp_path)
    if Image(tmp_path / "x.elf").section(".altinstructions")["sh_entsize"] == 16:
        # lld carries the input's entsize into the image; GNU ld resets it to 0.
        assert_only("ALT012", *V417, tmp_path / "x.elf", count=1)
    else:
        assert_clean(*V417, tmp_path / "x.elf")
