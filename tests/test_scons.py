"""The SCons tool, driven by real ``scons`` runs on small temporary projects."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.toolchain import ROOT, write

SCONS = Path(sys.executable).parent / "scons"
SITE_TOOLS = ROOT / "site_scons" / "site_tools"

CAPS = "# capabilities of the test firmware\nHAS_A\nHAS_B\n"

SITES_S = r"""
#include "caps.h"
#include <altlink/alternative.h>
    .text
    .globl _start
    .type _start, %function
_start:
    alternative_insn "mov x0, #0", "mov x0, #1", ALT_CAP_HAS_A
    alternative_if ALT_CAP_HAS_B
    mov x1, #2
    alternative_else
    mov x1, #3
    alternative_endif
    bl patch_cb_user
    mov x8, #93
    svc #0
    .size _start, . - _start
"""

MAIN_C = r"""
#include "caps.h"
#include <altlink/alternative.h>
#include <stdint.h>

void fw_cb(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
    for (int i = 0; i < nr_inst; i++)
        updptr[i] = origptr[i];
}

int patch_cb_user(int x)
{
#ifdef ALTLINK_ABI_LINUX_V61
    asm volatile(ALTERNATIVE_CB("mov %w0, %w0", ALT_CAP_HAS_B, fw_cb) : "+r"(x));
#else
    asm volatile(ALTERNATIVE_CB("mov %w0, %w0", fw_cb) : "+r"(x));
#endif
    return x;
}
"""

LDSCRIPT = """
ENTRY(_start)
SECTIONS
{
    . = 0x400000;
    .text : { *(.text .text.*) }
    INCLUDE alternatives.ld
    .rodata : { *(.rodata .rodata.*) }
    /DISCARD/ : { *(.eh_frame .note.gnu.property) }
}
"""

SCONSTRUCT = r"""
import os
env = Environment(tools=["default", "altlink"], toolpath=[os.environ["ALTLINK_TEST_TOOLPATH"]],
                  ENV={"PATH": os.environ["PATH"]},
                  CC="aarch64-linux-gnu-gcc", AS="aarch64-linux-gnu-gcc",
                  LINK="aarch64-linux-gnu-ld",
                  CCFLAGS=["-O2", "-ffreestanding", "-fno-pic", "-nostdlib"],
                  ASFLAGS=["-ffreestanding"], LINKFLAGS=["-static"])
for key in ("ALTLINK_ABI", "ALTLINKCOMSTR", "LINKFLAGS_EXTRA", "CACHE"):
    if key in ARGUMENTS:
        env[key] = ARGUMENTS[key]
if "LINKFLAGS_EXTRA" in ARGUMENTS:
    env.Append(LINKFLAGS=ARGUMENTS["LINKFLAGS_EXTRA"].split())
if "CACHE" in ARGUMENTS:
    CacheDir(ARGUMENTS["CACHE"])
env.AltCaps("build/caps.h", "caps.txt")
env.Append(CPPPATH=[Dir("build")])
env["ALTLINK_LDSCRIPT"] = File("fw.ld")
env["ALTLINK_CAP_TABLE"] = File("caps.txt")
if "SYMS" in ARGUMENTS:
    env["ALTLINK_SYMBOLS_FROM"] = [File(ARGUMENTS["SYMS"])]
VariantDir("build", "src", duplicate=False)
outs = env.AltProgram("build/fw.elf", ["build/sites.S", "build/main.c"])
Default(outs)
"""

OUTPUTS = ("build/fw.elf", "build/fw.alt.json", "build/fw.bin")


@pytest.fixture
def project(tmp_path):
    write(tmp_path / "SConstruct", SCONSTRUCT)
    write(tmp_path / "caps.txt", CAPS)
    write(tmp_path / "fw.ld", LDSCRIPT)
    write(tmp_path / "src" / "sites.S", SITES_S)
    write(tmp_path / "src" / "main.c", MAIN_C)
    return tmp_path


def scons(cwd: Path, *args, toolpath: Path = SITE_TOOLS, env=None, check=True):
    e = dict(os.environ if env is None else env)
    e["ALTLINK_TEST_TOOLPATH"] = str(toolpath)
    e.pop("ALTLINK_ABI", None)
    proc = subprocess.run([str(SCONS), "-Q", *args], cwd=cwd, capture_output=True, text=True,
                          env=e)
    if check and proc.returncode != 0:
        raise AssertionError(f"scons {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def linked(proc) -> bool:
    return "altlink link -o build/fw.elf" in proc.stdout


def test_builds_all_three_outputs_with_j2_and_runs(project):
    proc = scons(project, "-j2")
    assert linked(proc)
    for out in OUTPUTS:
        assert (project / out).is_file(), out
    run = subprocess.run(["qemu-aarch64", str(project / "build/fw.elf")], capture_output=True)
    assert run.returncode == 0
    assert b"HAS_A" in (project / "build/caps.h").read_bytes()


def test_second_run_does_nothing(project):
    scons(project)
    proc = scons(project)
    assert "is up to date" in proc.stdout
    assert not linked(proc)


def test_clean_removes_all_three(project):
    scons(project)
    proc = scons(project, "-c")
    for out in OUTPUTS:
        assert not (project / out).exists(), out
    assert "Removed build/fw.alt.json" in proc.stdout


def test_cachedir_restores_all_three(project, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    scons(project, f"CACHE={cache}")
    first = {o: (project / o).read_bytes() for o in OUTPUTS}
    scons(project, "-c", f"CACHE={cache}")
    proc = scons(project, f"CACHE={cache}")
    for out in OUTPUTS:
        assert f"Retrieved `{out}' from cache" in proc.stdout, proc.stdout
        assert (project / out).read_bytes() == first[out]
    assert not linked(proc)


@pytest.mark.parametrize("edit", ["ldscript", "captable", "abi", "linkflags", "fragment_dep",
                                  "script_input"])
def test_changes_relink(project, edit):
    scons(project)
    args = []
    if edit == "ldscript":
        p = project / "fw.ld"
        p.write_text(p.read_text().replace("0x400000", "0x500000"))
    elif edit == "captable":
        p = project / "caps.txt"
        p.write_text(p.read_text() + "HAS_C\n")
    elif edit == "abi":
        args = ["ALTLINK_ABI=linux-v6.1"]
    elif edit == "linkflags":
        args = ["LINKFLAGS_EXTRA=--build-id=none"]
    elif edit == "fragment_dep":
        # The linker script's INCLUDE is a dependency too: a local copy shadows the fragment.
        frag = (ROOT / "altlink" / "ldscripts" / "alternatives.ld").read_text()
        write(project / "alternatives.ld", frag)
        scons(project)  # picks up the new include path candidate
        (project / "alternatives.ld").write_text(frag + "\n/* edited */\n")
    elif edit == "script_input":
        # An object that only the linker script names (INPUT) is a dependency too.
        write(project / "extra.S", ".text\n.globl extra\nextra: ret\n")
        subprocess.run(["aarch64-linux-gnu-gcc", "-c", "extra.S", "-o", "extra.o"],
                       cwd=project, check=True)
        p = project / "fw.ld"
        p.write_text("INPUT(extra.o)\n" + p.read_text())
        scons(project)
        assert not linked(scons(project))
        write(project / "extra.S", ".text\n.globl extra\nextra: nop\n ret\n")
        subprocess.run(["aarch64-linux-gnu-gcc", "-c", "extra.S", "-o", "extra.o"],
                       cwd=project, check=True)
    proc = scons(project, *args)
    assert linked(proc), proc.stdout


def test_symbols_from_image_is_a_dependency(project, tmp_path):
    other = tmp_path / "kernel"
    other.mkdir()
    write(other / "k.S", ".text\n.globl k\n.type k,%function\nk: ret\n")
    subprocess.run(["aarch64-linux-gnu-gcc", "-c", str(other / "k.S"), "-o",
                    str(other / "k.o")], check=True)
    subprocess.run(["aarch64-linux-gnu-ld", "-e", "k", str(other / "k.o"), "-o",
                    str(project / "kernel.elf")], check=True)
    scons(project, "SYMS=kernel.elf")
    assert not linked(scons(project, "SYMS=kernel.elf"))
    subprocess.run(["aarch64-linux-gnu-ld", "-e", "k", "-Ttext=0x800000", str(other / "k.o"),
                    "-o", str(project / "kernel.elf")], check=True)
    assert linked(scons(project, "SYMS=kernel.elf"))


def test_comstr_gives_quiet_output(project):
    proc = scons(project, "ALTLINKCOMSTR=Linking $TARGET")
    assert "Linking build/fw.elf" in proc.stdout
    assert "altlink link" not in proc.stdout


def test_failed_check_fails_build_and_leaves_no_outputs(project):
    scons(project)
    # A hand-written entry whose replacement is longer than its site (ALT001).
    write(project / "src" / "bad.S", """
    .text
    .globl bad
bad: 661: nop
662:
    ret
    .pushsection .altinstructions, "a"
    .word 661b - .
    .word 663f - .
    .hword 0
    .byte 4
    .byte 8
    .popsection
    .pushsection .altinstr_replacement, "ax"
663: nop
    nop
    .popsection
""")
    sc = (project / "SConstruct").read_text().replace(
        '["build/sites.S", "build/main.c"]', '["build/sites.S", "build/main.c", "build/bad.S"]')
    (project / "SConstruct").write_text(sc)
    proc = scons(project, check=False)
    assert proc.returncode != 0
    assert "error: ALT001: replacement is 8 bytes, site is 4" in proc.stderr
    for out in OUTPUTS:
        assert not (project / out).exists(), out
    assert not [p for p in (project / "build").iterdir() if p.name.startswith(".fw.elf.")]


def test_abi_define_follows_variable(project):
    """ALTLINK_ABI=linux-v6.1 reaches the compiler as ALTLINK_ABI_LINUX_V61 (the callback
    entry then carries the 0x8000 marker) and the link as the profile."""
    import json

    scons(project)
    m = json.loads((project / "build/fw.alt.json").read_text())
    cb = [e for e in m["entries"] if e["kind"] == "callback"]
    assert m["abi"] == "linux-v4.17" and cb and cb[0]["cap_raw"] == 2  # NCAPS
    proc = scons(project, "ALTLINK_ABI=linux-v6.1")
    assert "-DALTLINK_ABI_LINUX_V61" in proc.stdout
    m = json.loads((project / "build/fw.alt.json").read_text())
    cb = [e for e in m["entries"] if e["kind"] == "callback"]
    assert m["abi"] == "linux-v6.1"
    assert cb and cb[0]["cap_raw"] == 0x8000 | 1 and cb[0]["cap"] == 1


def test_installed_package_with_toolpath(project, tmp_path_factory):
    """An installed copy of the package: toolpath=altlink/site_tools; its version relinks."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(ROOT / "altlink", site / "altlink",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)
    toolpath = site / "altlink" / "site_tools"
    proc = scons(project, toolpath=toolpath, env=env)
    assert linked(proc)
    assert f"-I{site / 'altlink' / 'include'}" in proc.stdout
    assert not linked(scons(project, toolpath=toolpath, env=env))
    init = site / "altlink" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.'))
    assert linked(scons(project, toolpath=toolpath, env=env))


def test_missing_package_is_a_clear_error(project, tmp_path_factory):
    """The installed tool file in a Python that has SCons but not the altlink package."""
    import SCons

    lone = tmp_path_factory.mktemp("lone")
    shutil.copy(ROOT / "altlink" / "site_tools" / "altlink.py", lone / "altlink.py")
    only_scons = tmp_path_factory.mktemp("only_scons")
    (only_scons / "SCons").symlink_to(Path(SCons.__file__).parent)
    code = ("import sys; sys.argv = ['scons', '-Q']; "
            f"sys.path.insert(0, {str(only_scons)!r}); "
            "import SCons.Script; SCons.Script.main()")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["ALTLINK_TEST_TOOLPATH"] = str(lone)
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=project, capture_output=True,
                          text=True, env=env)
    assert proc.returncode != 0
    assert "needs the altlink package" in proc.stderr + proc.stdout


# ---- what SCons prints is what it runs -------------------------------------------------------

OPTIONS_SCONSTRUCT = """
env["ALTLINK_WERROR"] = True
env["ALTLINK_WFLAGS"] = ["no-alt014"]
env["ALTLINK_NCAPS"] = "2"
env["ALTLINK_SORT"] = True
"""

WARN_S = """
    .text
    .globl warn
warn: nop
    ret
    .pushsection .altinstr_replacement, "ax"
1:  mov x0, #1
2:  mov x0, #2
    .popsection
    .pushsection .altinstructions, "a"
    .word warn - .
    .word 1b - .
    .hword 0
    .byte 4
    .byte 4
    .word warn - .
    .word 2b - .
    .hword 1
    .byte 4
    .byte 4
    .popsection
"""


def printed_link(proc) -> str:
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("altlink link ")]
    return line


@pytest.mark.parametrize("warn", [False, True], ids=["passes", "fails"])
def test_the_printed_command_does_what_scons_did(project, warn):
    """ALTLINKCOM as printed names every option the action uses (--cap-table, --ncaps, -W,
    --werror, --sort-table): run in a shell, it gives the same outputs or the same failure."""
    sc = (project / "SConstruct").read_text().replace('Default(outs)',
                                                      OPTIONS_SCONSTRUCT + 'Default(outs)')
    (project / "SConstruct").write_text(sc)
    if warn:  # a second entry for the same site: ALT010, a warning made an error
        write(project / "src" / "warn.S", WARN_S)
        sc = sc.replace('["build/sites.S", "build/main.c"]',
                        '["build/sites.S", "build/main.c", "build/warn.S"]')
        (project / "SConstruct").write_text(sc)
    proc = scons(project, check=False)
    line = printed_link(proc)
    for option in ("--cap-table caps.txt", "--ncaps 2", "-W no-alt014", "--werror",
                   "--sort-table", "--abi linux-v4.17"):
        assert f" {option} " in line, line
    by_scons = {o: (project / o).read_bytes() for o in OUTPUTS if (project / o).exists()}
    for o in OUTPUTS:
        (project / o).unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTLINK_")}
    env["PATH"] = f"{SCONS.parent}{os.pathsep}{env['PATH']}"
    shell = subprocess.run(["sh", "-c", line], cwd=project, capture_output=True, text=True,
                           env=env)
    by_shell = {o: (project / o).read_bytes() for o in OUTPUTS if (project / o).exists()}
    if warn:
        assert proc.returncode != 0 and shell.returncode == 1
        finding = [ln for ln in shell.stderr.splitlines() if ": ALT010: " in ln]
        assert len(finding) == 1 and ": error: ALT010: " in finding[0]
        assert finding[0] in proc.stderr.splitlines()
        assert by_scons == by_shell == {}
    else:
        assert proc.returncode == 0 and shell.returncode == 0, shell.stderr
        assert by_shell == by_scons and len(by_shell) == 3


@pytest.mark.parametrize("where", ["caps", "link"])
def test_altlinks_own_failure_in_scons_is_one_line_and_status_4(project, where):
    """A bug in altlink, running inside SCons's own process, is reported as cli reports one:
    one line, exit status 4 (SCons's "Error 4"), no traceback unless asked for."""
    planted = {"caps": "import altlink.caps\naltlink.caps.header = boom\n",
               "link": "import altlink.scons_tool\naltlink.scons_tool._link_argv = boom\n"}[where]
    sc = (project / "SConstruct").read_text().replace(
        "import os\n", "import os\ndef boom(*a, **k):\n    raise RuntimeError('planted')\n"
        + planted, 1)
    (project / "SConstruct").write_text(sc)
    proc = scons(project, check=False)
    assert proc.returncode != 0
    assert ("altlink: internal error (a bug in altlink, not a problem with the input): "
            "RuntimeError: planted (ALTLINK_TRACEBACK=1 shows the traceback)") in proc.stderr
    assert "Error 4" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_ncaps_that_is_not_a_number_is_a_usage_error(project):
    sc = (project / "SConstruct").read_text().replace(
        "Default(outs)", 'env["ALTLINK_NCAPS"] = [64]\nDefault(outs)')
    (project / "SConstruct").write_text(sc)
    proc = scons(project, check=False)
    assert "ALTLINK_NCAPS=[64] is not a number" in proc.stderr
    assert "Error 2" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
