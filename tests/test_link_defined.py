"""Callbacks that no object defines but the link itself does: an assignment in a linker script
(``NAME = EXPR;``, in ``PROVIDE`` too) or ``--defsym NAME=EXPR``. Linux's vmlinux.lds names
kernel functions this way for the KVM hypervisor's objects, whose symbols objcopy prefixes
with ``__kvm_nvhe_`` (``__kvm_nvhe_kvm_update_va_mask = kvm_update_va_mask;``), and their
alternatives name those as callbacks. Such a callback is not ALT006 before the link; it is
checked in the linked image (ALT007 where it is not a function in code)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from altlink import linkcmd
from altlink.errors import AltlinkError
from tests.toolchain import altlink, run, write

# An object whose one alternative is a callback it leaves undefined (linux-v6.1: bit 15 of
# the cap field marks a callback).
HYP_S = """
    .text
    .globl hyp_entry
    .type hyp_entry, %function
hyp_entry:
661: nop
662: ret
    .size hyp_entry, .-hyp_entry
    .pushsection .altinstructions, "a"
    .word 661b - .
    .word kvm_update_va_mask - .
    .hword 0x8001
    .byte 4
    .byte 0
    .popsection
"""

KERNEL_S = """
    .text
    .globl _start
    .type _start, %function
_start: bl __kvm_nvhe_hyp_entry
    ret
    .size _start, .-_start
    .globl kvm_update_va_mask
    .type kvm_update_va_mask, %function
kvm_update_va_mask: nop
    ret
    .size kvm_update_va_mask, .-kvm_update_va_mask
    .data
    .globl some_data
some_data: .quad 0
"""

SCRIPT = """
ENTRY(_start)
SECTIONS
{{
    . = 0x400000;
    .text : {{ *(.text .text.*) }}
    .altinstructions : {{ *(.altinstructions) }}
    .data : {{ *(.data) }}
    /DISCARD/ : {{ *(.note.gnu.property) }}
    {alias}
}}
"""


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> Path:
    """kvm_nvhe.o as Kbuild makes it (objects linked by ``ld -r``, through altlink, then every
    symbol prefixed ``__kvm_nvhe_`` by objcopy) and the kernel's own object."""
    d = tmp_path_factory.mktemp("kvm")
    run(["aarch64-linux-gnu-gcc", "-c", write(d / "hyp.S", HYP_S), "-o", d / "hyp.o"])
    run(["aarch64-linux-gnu-gcc", "-c", write(d / "kernel.S", KERNEL_S), "-o", d / "kernel.o"])
    proc = altlink("link", "--abi", "linux-v6.1", "-o", "kvm_nvhe.tmp.o", "--",
                   "aarch64-linux-gnu-ld", "-r", "hyp.o", "-o", "kvm_nvhe.tmp.o", cwd=d)
    assert proc.returncode == 0, proc.stderr  # a partial link leaves the callback undefined
    run(["aarch64-linux-gnu-objcopy", "--prefix-symbols=__kvm_nvhe_", "kvm_nvhe.tmp.o",
         "kvm_nvhe.o"], cwd=d)
    return d


ALIASES = {
    "assignment": "__kvm_nvhe_kvm_update_va_mask = kvm_update_va_mask;",
    "PROVIDE": "PROVIDE(__kvm_nvhe_kvm_update_va_mask = kvm_update_va_mask);",
    "PROVIDE_HIDDEN": "PROVIDE_HIDDEN(__kvm_nvhe_kvm_update_va_mask = kvm_update_va_mask);",
    "INCLUDE": "INCLUDE image-vars.ld",
}


@pytest.mark.parametrize("how", [*ALIASES, "--defsym", "-Wl,--defsym", "ld.lld"])
def test_a_callback_the_link_defines_links_clean(objects, tmp_path, how):
    d = tmp_path
    alias = ALIASES.get(how, ALIASES["assignment"] if how == "ld.lld" else "")
    write(d / "image-vars.ld", ALIASES["assignment"] + "\n")
    script = write(d / "vmlinux.lds", SCRIPT.format(alias=alias))
    objs = [str(objects / "kernel.o"), str(objects / "kvm_nvhe.o")]
    if how == "-Wl,--defsym":
        linker = ["aarch64-linux-gnu-gcc", "-nostdlib", "-static",
                  "-Wl,--defsym,__kvm_nvhe_kvm_update_va_mask=kvm_update_va_mask"]
    else:
        linker = ["ld.lld" if how == "ld.lld" else "aarch64-linux-gnu-ld"]
        if how == "--defsym":
            linker += ["--defsym", "__kvm_nvhe_kvm_update_va_mask=kvm_update_va_mask"]
    proc = altlink("link", "--abi", "linux-v6.1", "-o", "vmlinux", "--manifest", "vmlinux.json",
                   "--", *linker, "-T", str(script), *objs, "-o", "vmlinux", cwd=d)
    assert proc.returncode == 0, proc.stderr
    assert "ALT0" not in proc.stderr
    [entry] = json.loads((d / "vmlinux.json").read_text())["entries"]
    nm = run(["aarch64-linux-gnu-nm", d / "vmlinux"]).stdout.split("\n")
    want = next(int(line.split()[0], 16) for line in nm if line.endswith(" kvm_update_va_mask"))
    assert entry["callback"] == {"address": f"{want:#x}", "symbol": "kvm_update_va_mask"}


def test_without_the_alias_the_callback_is_alt006(objects, tmp_path):
    """The same link with nothing defining the prefixed name: ALT006, before the linker (the
    test above can fail)."""
    script = write(tmp_path / "vmlinux.lds", SCRIPT.format(alias=""))
    proc = altlink("link", "--abi", "linux-v6.1", "-o", "vmlinux", "--",
                   "aarch64-linux-gnu-ld", "-T", str(script), str(objects / "kernel.o"),
                   str(objects / "kvm_nvhe.o"), "-o", "vmlinux", cwd=tmp_path)
    assert proc.returncode == 1
    assert "error: ALT006: callback __kvm_nvhe_kvm_update_va_mask is not defined in the " \
        "link set" in proc.stderr
    assert not (tmp_path / "vmlinux").exists()


@pytest.mark.parametrize("target, where", [("some_data", "in .data"),
                                           ("kvm_update_va_mask + 4", "which is not a function")])
def test_an_alias_that_is_no_function_is_alt007_in_the_image(objects, tmp_path, target, where):
    """What the name stands for is known once linked: a callback that the script points at
    data, or into a function, is ALT007 naming what defines it; no output is written."""
    script = write(tmp_path / "vmlinux.lds", SCRIPT.format(
        alias=f"__kvm_nvhe_kvm_update_va_mask = {target};"))
    proc = altlink("link", "--abi", "linux-v6.1", "-o", "vmlinux", "--manifest", "m.json", "--",
                   "aarch64-linux-gnu-ld", "-T", str(script), str(objects / "kernel.o"),
                   str(objects / "kvm_nvhe.o"), "-o", "vmlinux", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "ALT0" in line]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{objects / 'kvm_nvhe.o'}: error: ALT007: callback "
                               f"__kvm_nvhe_kvm_update_va_mask (defined by {script}) is at 0x")
    assert where in lines[0] and "[.altinstructions entry 0]" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vmlinux.lds"]


@pytest.mark.parametrize("how", ["-T", "INCLUDE", "--defsym", "--symbols-from", "nothing"])
def test_check_of_the_objects_reads_the_link_s_own_names(objects, tmp_path, how):
    """``altlink check`` of the objects of such a link: the callback a linker script assigns
    (``-T``; an INCLUDEd one found in ``-L``), or ``--defsym`` defines, is the link's, left
    to the linked image as the link leaves it; without them ALT006 (as ``altlink check
    vmlinux.o`` of a KVM kernel said 116 times)."""
    d = tmp_path
    (d / "inc").mkdir()
    write(d / "inc" / "image-vars.ld", ALIASES["assignment"] + "\n")
    write(d / "vmlinux.lds", SCRIPT.format(alias=ALIASES["INCLUDE"] if how == "INCLUDE"
                                           else ALIASES["assignment"]))
    objs = [str(objects / "kernel.o"), str(objects / "kvm_nvhe.o")]
    opts = {"-T": ["-T", "vmlinux.lds"], "INCLUDE": ["-T", "vmlinux.lds", "-L", "inc"],
            "--defsym": ["--defsym", "__kvm_nvhe_kvm_update_va_mask=kvm_update_va_mask"],
            "--symbols-from": [], "nothing": []}[how]
    if how == "--symbols-from":  # the linked image: the callback is checked there
        run(["aarch64-linux-gnu-ld", "-T", "vmlinux.lds", *objs, "-o", "vmlinux"], cwd=d)
        opts = ["--symbols-from", "vmlinux"]
    proc = altlink("check", "--abi", "linux-v6.1", "--no-cache", *opts, *objs, cwd=d)
    if how == "nothing":
        assert proc.returncode == 1
        assert "error: ALT006: callback __kvm_nvhe_kvm_update_va_mask" in proc.stdout
    else:
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize("opts, message", [
    (["-T", "nowhere.lds"], "altlink check: -T nowhere.lds: no such linker script"),
    (["--defsym", "=x"], "altlink check: --defsym =x: not NAME=EXPRESSION")])
def test_check_s_link_options_that_name_nothing(objects, tmp_path, opts, message):
    proc = altlink("check", "--abi", "linux-v6.1", *opts, str(objects / "kernel.o"),
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr


def test_the_names_a_script_assigns(tmp_path):
    write(tmp_path / "inc.ld", "from_include = 1;\n")
    script = write(tmp_path / "a.ld", """/* commented = 1; */
MEMORY { ram (rwx) : ORIGIN = 0x0, LENGTH = 64K }
SECTIONS {
  .text : { _stext = .; *(.text) } > ram
  PROVIDE(provided = y); PROVIDE_HIDDEN( "quoted"=z ) ; HIDDEN(hidden=1)
  plus += 1; ASSERT(a == b, "c=d"); ASSERT(e <= f, "g"); ASSERT(h != i, "j");
  . = ALIGN(8);
  tight=.;
}
INCLUDE inc.ld
""")
    write(tmp_path / "x.o", "")
    cmd = linkcmd.parse(["ld", "-T", str(script), "-L", str(tmp_path), str(tmp_path / "x.o")])
    assert cmd.defined_by_link() == {
        name: str(tmp_path / ("inc.ld" if name == "from_include" else "a.ld"))
        for name in ("_stext", "provided", "quoted", "hidden", "tight", "from_include")}


def test_the_names_defsym_defines():
    cmd = linkcmd.parse(["gcc", "-Wl,--defsym,a=b", "-Wl,--defsym=c=d+4", "-Xlinker",
                         "--defsym", "-Xlinker", "e=f", "--defsym", "g=0x10", "-defsym=i=j",
                         "--defsym=k=l", "x.o", "-o", "y"])
    assert list(cmd.defined_by_link()) == ["a", "c", "e", "g", "i", "k"]
    assert set(cmd.defined_by_link().values()) == {"--defsym"}


def test_the_files_read_for_their_symbols_in_every_spelling(tmp_path):
    """-R and --just-symbols as ld, the drivers' -Wl, and -Xlinker (an option and its value
    in two -Xlinker too) spell them; their values are no inputs; -R of a directory (an
    rpath) and a file that is not ELF are no such file."""
    for name in ("r1", "r2", "r3", "r4", "r5", "r6", "r7", "x.o"):
        write(tmp_path / name, "\x7fELF")
    names = ["-R", "r1", "-Wl,-R,r2", "-Xlinker", "-R", "-Xlinker", "r3",
             "-Xlinker", "--just-symbols=r4", "--just-symbols", "r5", "-just-symbols", "r6",
             "-Wl,--just-symbols,r7", "-R", ".", "-Xlinker", "-T", "-Xlinker", "fw.ld",
             "x.o", "-o", "y"]
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        cmd = linkcmd.parse(["gcc", *names])
        assert cmd.just_symbols() == ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
        assert cmd.inputs == ["x.o"] and cmd.scripts == ["fw.ld"]
        write(tmp_path / "r4", "not ELF")
        assert "r4" not in cmd.just_symbols()
    finally:
        os.chdir(here)


def test_linker_options_split_over_two_xlinker(tmp_path):
    """``-Xlinker OPT -Xlinker VALUE``, as CMake's ``LINKER:`` prefix spells linker options
    for clang: the script, library directory and library are the linker's."""
    write(tmp_path / "fw.ld", "INPUT(extra.o)\nalias = start;\n")
    (tmp_path / "lib").mkdir()
    write(tmp_path / "lib" / "librom.a", "!<arch>\n")
    write(tmp_path / "extra.o", "\x7fELF")
    write(tmp_path / "x.o", "\x7fELF")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        cmd = linkcmd.parse(["clang", "x.o", "-Xlinker", "-T", "-Xlinker", "fw.ld",
                             "-Xlinker", "-L", "-Xlinker", "lib", "-Xlinker", "-l",
                             "-Xlinker", "rom", "-o", "fw.elf"])
        assert cmd.scripts == ["fw.ld"] and cmd.lib_dirs == ["lib"]
        assert cmd.inputs == ["x.o", "lib/librom.a", "extra.o"]
        assert cmd.defined_by_link() == {"alias": "fw.ld"}
        with pytest.raises(AltlinkError, match="through the driver"):
            linkcmd.parse(["clang", "x.o", "-Xlinker", "-o", "-Xlinker", "fw.elf"])
    finally:
        os.chdir(here)


ROM_S = """
    .text
    .globl rom_cb
    .type rom_cb, %function
rom_cb: nop
    ret
    .size rom_cb, .-rom_cb
    .data
    .globl rom_data
rom_data: .quad 0
"""


@pytest.mark.parametrize("option", [["-R", "rom.elf"], ["--just-symbols=rom.elf"],
                                    ["--just-symbols", "rom.elf"], ["-R", "."]])
def test_a_callback_in_a_file_linked_for_its_symbols_only(objects, tmp_path, option):
    """Firmware linked against a ROM's symbols (``-R FILE``, ``--just-symbols``): a callback
    the ROM defines resolves there, and is checked there (a ROM's data is ALT007 before the
    link); ``-R`` of a directory is an rpath, which defines nothing (ALT006)."""
    d = tmp_path
    run(["aarch64-linux-gnu-gcc", "-c", write(d / "rom.S", ROM_S), "-o", d / "rom.o"])
    run(["aarch64-linux-gnu-ld", "-Ttext=0x100000", "-e", "rom_cb", d / "rom.o", "-o",
         d / "rom.elf"])
    for cb in ("rom_cb", "rom_data"):
        run(["aarch64-linux-gnu-gcc", "-c", write(d / f"{cb}.S", HYP_S.replace(
            "kvm_update_va_mask", cb)), "-o", d / f"{cb}.o"])
    proc = altlink("link", "--abi", "linux-v6.1", "-o", "fw.elf", "--manifest", "fw.json",
                   "--", "aarch64-linux-gnu-ld", *option, "-Ttext=0x400000", "-e", "hyp_entry",
                   "rom_cb.o", "-o", "fw.elf", cwd=d)
    if option[-1] == ".":
        assert proc.returncode == 1 and "ALT006: callback rom_cb is not defined" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    assert "ALT0" not in proc.stderr
    # The manifest names the ROM's function (ld gives it to the image as an absolute symbol).
    [entry] = json.loads((d / "fw.json").read_text())["entries"]
    assert entry["callback"] == {"address": "0x100000", "symbol": "rom_cb"}
    proc = altlink("link", "--abi", "linux-v6.1", "-o", "fw.elf", "--", "aarch64-linux-gnu-ld",
                   *option, "-Ttext=0x400000", "-e", "hyp_entry", "rom_data.o", "-o", "fw.elf",
                   cwd=d)
    assert proc.returncode == 1
    assert "rom_data.o: error: ALT007: callback rom_data is in .data, not an executable " \
        "section" in proc.stderr
