"""A firmware engineer's first day: a small firmware of one's own, outside the repository, built
with the real AArch64 toolchain and linked with ``altlink`` as a separate process, as a user
does. Each test checks the exact message, the exit status and the files left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from toolchain import INCLUDE, LDSCRIPTS, ROOT, altlink, env_without_altlink_vars, run, write

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed",
)

CC, LD = "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld"

CAPS = "HAS_A\nHAS_B\nHAS_C\nHAS_D\n"

START_S = r"""
#include "caps.h"
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	alternative_insn "mov x0, #1", "mov x0, #2", ALT_CAP_HAS_D
#ifdef ALTLINK_ABI_LINUX_V61
	alternative_cb ALT_CAP_HAS_C, CB
#else
	alternative_cb CB
#endif
	mov x2, #0
	alternative_cb_end
	mov x8, #93
	svc #0
	.size _start, . - _start

	.globl patch_entry_cb
	.type patch_entry_cb, %function
patch_entry_cb:
	ret
	.size patch_entry_cb, . - patch_entry_cb
"""

FW_LD = """
ENTRY(_start)
SECTIONS {
  . = 0x400000;
  .text : { *(.text .text.*) }
  INCLUDE alternatives.ld
  .data : { *(.data) }
}
"""

OUTS = ("fw.elf", "fw.alt.json", "fw.bin")


def firmware(d: Path, caps: str = CAPS, cb: str = "patch_entry_cb", v61: bool = False) -> Path:
    """The sources, the capability header (``altlink caps``) and start.o, in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    write(d / "caps.txt", caps)
    write(d / "fw.ld", FW_LD)
    write(d / "start.S", START_S)
    p = altlink("caps", "caps.txt", "-o", "caps.h", cwd=d)
    assert p.returncode == 0, p.stderr
    defines = [f"-DCB={cb}"] + (["-DALTLINK_ABI_LINUX_V61"] if v61 else [])
    run([CC, "-I", INCLUDE, "-I", d, *defines, "-c", d / "start.S", "-o", d / "start.o"])
    return d


def link_args(*objs: str, table: str = "caps.txt") -> list[str]:
    return ["link", "-o", "fw.elf", "--manifest", "fw.alt.json", "--bin", "fw.bin",
            "--cap-table", table, "--", LD, "-L", LDSCRIPTS, "-T", "fw.ld", *objs, "-o",
            "fw.elf"]


# ---- 1. a failed link leaves none of its outputs ------------------------------------------------

BAD_S = r"""
	.text
	.globl bad
bad:	nop
	.pushsection .altinstr_replacement, "ax"
1:	movz x0, #1
	movz x1, #2
	.popsection
	.pushsection .altinstructions, "a"
	.word bad - .
	.word 1b - .
	.hword 1
	.byte 4
	.byte 8
	.popsection
"""


@pytest.mark.parametrize("how", ["findings", "linker", "input"])
def test_failed_link_removes_the_earlier_outputs(tmp_path, how):
    d = firmware(tmp_path / "fw")
    p = altlink(*link_args("start.o"), cwd=d)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert all((d / n).is_file() for n in OUTS)

    if how == "findings":  # an object with an ALT001 entry
        run([CC, "-c", write(d / "bad.S", BAD_S), "-o", d / "bad.o"])
        args, rc = link_args("start.o", "bad.o"), 1
        want = ("bad.o: error: ALT001: replacement is 8 bytes, site is 4 (cap 1 HAS_B) "
                "[.text+0x0 bad] (altlink explain ALT001)\n")
    elif how == "linker":  # the linker fails
        args, rc = link_args("start.o", "-lnothing"), 3
        want = "cannot find -lnothing"
    else:  # an object cut short after its ELF magic
        (d / "junk.o").write_bytes(b"\x7fELF" + bytes(8))
        args, rc = link_args("start.o", "junk.o"), 2
        want = "junk.o"
    p = altlink(*args, cwd=d)
    assert p.returncode == rc, p.stderr
    assert want in p.stderr
    left = [n for n in OUTS if (d / n).exists()]
    assert left == []
    assert [n for n in os.listdir(d) if n.startswith(".")] == []


def test_failed_link_to_dev_null_leaves_it(tmp_path):
    """Only regular files are removed: ``-o /dev/null`` is not."""
    d = firmware(tmp_path / "fw")
    run([CC, "-c", write(d / "bad.S", BAD_S), "-o", d / "bad.o"])
    p = altlink("link", "-o", os.devnull, "--cap-table", "caps.txt", "--", LD, "-L", LDSCRIPTS,
                "-T", "fw.ld", "start.o", "bad.o", "-o", "x.elf", cwd=d)
    assert p.returncode == 1
    assert Path(os.devnull).exists() and not Path(os.devnull).is_file()


# ---- 3. findings that point at their cause ---------------------------------------------------


def test_objects_of_the_other_profile_get_one_note_naming_the_option(tmp_path):
    d = firmware(tmp_path / "fw", v61=True)
    p = altlink(*link_args("start.o"), cwd=d)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert lines == [
        "start.o: error: ALT011: entry looks like a callback (patch_entry_cb) with marker "
        "32770, but NCAPS is 4: the table and the code disagree [.text+0x4 _start+0x4] "
        "(altlink explain ALT011)",
        "altlink: note: the callback entries carry bit 15 (0x8000), as linux-v6.1 marks "
        "callbacks: the objects look built for linux-v6.1; use --abi linux-v6.1",
    ]
    assert [n for n in OUTS if (d / n).exists()] == []
    # with the option the note names, the link passes
    p = altlink("link", "--abi", "linux-v6.1", *link_args("start.o")[1:], cwd=d)
    assert (p.returncode, p.stderr) == (0, "")


def test_v417_objects_checked_as_v61_get_the_note(tmp_path):
    d = firmware(tmp_path / "fw")
    p = altlink("check", "--abi", "linux-v6.1", "--cap-table", "caps.txt", "start.o", cwd=d)
    assert p.returncode == 1
    assert ": error: ALT001: replacement is 0 bytes, site is 4" in p.stdout
    assert p.stderr == ("altlink: note: entries without a replacement carry no bit 15 (0x8000), "
                        "as linux-v4.17 and Xen callbacks do (cap == NCAPS): the objects look "
                        "built for linux-v4.17; use --abi linux-v4.17 (for Xen, xen-v4.17)\n")


def test_a_smaller_capability_table_is_named_once(tmp_path):
    d = firmware(tmp_path / "fw")  # built against four capabilities: callbacks carry 4
    write(d / "small.txt", "HAS_A\nHAS_B\n")
    p = altlink(*link_args("start.o", table="small.txt"), cwd=d)
    assert p.returncode == 1
    *findings, note = p.stderr.splitlines()
    assert [f.split(": ")[2] for f in findings] == ["ALT011", "ALT011"]
    assert note == ("altlink: note: the entries use capability numbers up to 4, but the "
                    "capability table small.txt gives NCAPS 2: it looks too small; use the "
                    "table the objects were built with")


def test_a_table_one_short_turns_a_static_entry_into_a_callback(tmp_path):
    """Three capabilities where the objects have four: the static entry of capability 3 has
    the callback marker (ALT002), the callback's marker 4 is out of the table (ALT011)."""
    d = firmware(tmp_path / "fw")
    write(d / "short.txt", "HAS_A\nHAS_B\nHAS_C\n")
    p = altlink("check", "--cap-table", "short.txt", "start.o", cwd=d)
    assert p.returncode == 1
    assert [ln.split(": ")[2] for ln in p.stdout.splitlines()] == ["ALT002", "ALT011"]
    assert p.stderr == ("altlink: note: the entries use capability numbers up to 4, but the "
                        "capability table short.txt gives NCAPS 3: it looks too small; use the "
                        "table the objects were built with\n")


def test_a_matching_table_gets_no_note(tmp_path):
    d = firmware(tmp_path / "fw")
    p = altlink("check", "--cap-table", "caps.txt", "start.o", cwd=d)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


@pytest.mark.parametrize("command", ["check", "link"])
def test_a_misspelled_callback_gets_did_you_mean(tmp_path, command):
    d = firmware(tmp_path / "fw", cb="patch_entry_cbb")
    if command == "check":
        p = altlink("check", "--cap-table", "caps.txt", "start.o", cwd=d)
        out = p.stdout
    else:
        p = altlink(*link_args("start.o"), cwd=d)
        out = p.stderr
    assert p.returncode == 1
    assert out == ("start.o: error: ALT006: callback patch_entry_cbb is not defined in the "
                   "link set (did you mean patch_entry_cb?) [.altinstructions entry 1] "
                   "(altlink explain ALT006)\n")


def test_a_callback_unlike_any_name_gets_no_guess(tmp_path):
    d = firmware(tmp_path / "fw", cb="zzz_other")
    p = altlink("check", "--cap-table", "caps.txt", "start.o", cwd=d)
    assert p.returncode == 1
    assert "callback zzz_other is not defined in the link set [" in p.stdout


# ---- 8. progress on a terminal, and only there -------------------------------------------------

MODULE_S = r"""
	.text
	.globl f
	.type f, %function
f:	nop
	ret
	.size f, . - f
	.pushsection .altinstr_replacement, "ax"
1:	mov x0, #1
	.popsection
	.pushsection .altinstructions, "a"
	.word f - .
	.word 1b - .
	.hword 1
	.byte 4
	.byte 4
	.popsection
	.section .modinfo, "a"
	.asciz "license=GPL"
	.section .gnu.linkonce.this_module, "aw"
	.zero 64
"""


def modules(d: Path, n: int) -> list[str]:
    run([CC, "-c", write(d / "m.S", MODULE_S), "-o", d / "m.ko"])
    names = [f"m{i:03}.ko" for i in range(n)]
    for name in names:
        shutil.copy(d / "m.ko", d / name)
    return names


def on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """``python -m altlink ARGV`` with stderr on a pseudo-terminal (stdout a pipe): the exit
    status, stdout, and what the terminal received."""
    import pty

    e = env_without_altlink_vars()
    e.update(PYTHONPATH=str(ROOT), TERM="xterm")
    try:
        master, slave = pty.openpty()
    except OSError as err:  # a chroot without /dev/pts: no terminal to show progress on
        pytest.skip(f"no pseudo-terminal can be opened here ({err})")
    proc = subprocess.Popen([sys.executable, "-m", "altlink", *argv], cwd=cwd, env=e,
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    got = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        got += chunk
    out = proc.stdout.read().decode()
    os.close(master)
    return proc.wait(), out, got.decode()


def test_progress_on_a_terminal_only(tmp_path):
    names = modules(tmp_path, 80)
    rc, out, tty = on_a_terminal(["check", "--ncaps", "4", *names], tmp_path)
    assert (rc, out) == (0, "")
    assert "\r\x1b[Kaltlink: checking files " in tty
    assert "%" in tty and tty.endswith("\r\x1b[K")  # the line erased at the end
    # not in a machine format, even on a terminal
    rc, out, tty = on_a_terminal(["check", "--format", "json", "--ncaps", "4", *names],
                                 tmp_path)
    assert rc == 0 and tty == "" and json.loads(out)["findings"] == []
    # not when stderr is not a terminal
    p = altlink("check", "--ncaps", "4", *names, cwd=tmp_path)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_progress_is_erased_before_a_message(tmp_path):
    """A module that cannot be read, after others: the progress line goes before the error."""
    names = modules(tmp_path, 3)
    (tmp_path / "bad.ko").write_bytes((tmp_path / "m.ko").read_bytes()[:80])
    rc, _out, tty = on_a_terminal(["check", "--abi", "linux-v4.17", "--ncaps", "4", *names,
                                   "bad.ko"], tmp_path)
    assert rc == 2
    assert "\r\x1b[Kaltlink: checking files " in tty
    *drawn, message = tty.split("\r\x1b[K")
    assert message.startswith("bad.ko: ") and message.endswith("\r\n") and \
        message.count("\n") == 1, repr(tty)


# ---- 9. -v says what was checked ------------------------------------------------------------


def test_verbose_link_and_check_say_what_was_checked(tmp_path):
    d = firmware(tmp_path / "fw")
    p = altlink(*link_args("start.o"), cwd=d)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")  # success is silent
    p = altlink("link", "-v", *link_args("start.o")[1:], cwd=d)
    assert p.returncode == 0
    assert p.stderr == ("altlink: checked 1 object (2 entries, 1 callback resolved); linked "
                        "fw.elf and cross-checked 2 entries; wrote fw.elf, fw.bin, "
                        "fw.alt.json\n")
    p = altlink("check", "-v", "--cap-table", "caps.txt", "start.o", "fw.elf", cwd=d)
    assert (p.returncode, p.stdout) == (0, "")
    assert p.stderr == "altlink: checked 1 object, 1 image: 4 entries, 2 callbacks resolved\n"


def test_verbose_failed_link_says_nothing_was_written(tmp_path):
    d = firmware(tmp_path / "fw", cb="patch_entry_cbb")
    p = altlink("link", "-v", *link_args("start.o")[1:], cwd=d)
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1] == ("altlink: checked 1 object (2 entries, 0 callbacks "
                                         "resolved); wrote nothing")


# ---- ALT008 names the line of the instruction that cannot be moved ----------------------------

ADR_S = """#include "caps.h"
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	alternative_if ALT_CAP_HAS_B
	nop
	adr x0, .
	alternative_else
	nop
	nop
	alternative_endif
	mov x8, #93
	svc #0
	.size _start, . - _start
"""


@pytest.mark.parametrize("command", ["check", "link"])
def test_alt008_points_at_the_replacement_instruction(tmp_path, command):
    """With DWARF lines (``-g``), ALT008 names the line of the ADR in the replacement (9), not
    the line of the site (11)."""
    d = firmware(tmp_path / "fw")
    write(d / "adr.S", ADR_S)
    run([CC, "-g", "-I", INCLUDE, "-I", d, "-c", d / "adr.S", "-o", d / "adr.o"])
    if command == "check":
        p = altlink("check", "--cap-table", "caps.txt", "adr.o", cwd=d)
        out = p.stdout
    else:
        p = altlink(*link_args("adr.o"), cwd=d)
        out = p.stderr
    assert p.returncode == 1
    assert out.startswith("adr.S:9: error: ALT008: replacement instruction 1 (adr"), out


ADR_C = """#include "caps.h"
#include <altlink/alternative.h>

long f(void)
{
	long x;
	asm volatile(ALTERNATIVE("mov %0, #0", "adr %0, .", ALT_CAP_HAS_B) : "=r"(x));
	return x;
}
"""


@pytest.mark.parametrize("v61", [False, True], ids=["linux-v4.17", "linux-v6.1"])
def test_alt008_in_c_names_the_asm_statement(tmp_path, v61):
    """C gives a replacement no line of its own (or, in a subsection, the function's last
    line): the finding keeps the line of the ALTERNATIVE (7), never the closing brace (9)."""
    d = firmware(tmp_path / "fw")
    write(d / "adr.c", ADR_C)
    run([CC, "-g", "-O2", "-ffreestanding", "-I", INCLUDE, "-I", d,
         *(["-DALTLINK_ABI_LINUX_V61"] if v61 else []), "-c", d / "adr.c", "-o", d / "adr.o"])
    abi = ["--abi", "linux-v6.1"] if v61 else []
    p = altlink("check", *abi, "--cap-table", "caps.txt", "adr.o", cwd=d)
    assert p.returncode == 1
    assert p.stdout.startswith("adr.c:7: error: ALT008: replacement instruction 0 (adr"), p.stdout
