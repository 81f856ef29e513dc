"""altlink inside builds it was not written for: the launcher form (one string as the
build's linker), archives as binutils and Kbuild write them, partial links and modules, tables
that a linker script merged into another section, and images rewritten after the link."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_link import FW_LD, MAIN_S, asm
from toolchain import LDSCRIPTS, altlink, env_without_altlink_vars, run, write

AR = "aarch64-linux-gnu-ar"
LD = "aarch64-linux-gnu-ld"


def fw_command(d: Path, objs, out="fw.elf", script: str = FW_LD) -> list[str]:
    return [LD, "-L", str(LDSCRIPTS), "-T", str(write(d / "fw.ld", script)), *map(str, objs),
            "-o", out]


@pytest.fixture()
def main_obj(tmp_path) -> Path:
    return asm(tmp_path, "main", MAIN_S)


# == the launcher form ============================================================================


def test_launcher_takes_the_output_from_the_linker_command(tmp_path, main_obj):
    p = altlink("link", "--ncaps", "4", "--", *fw_command(tmp_path, [main_obj]), cwd=tmp_path,
                env={"ALTLINK_MANIFEST": ".alt.json"})
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "fw.elf.alt.json").read_text())
    assert m["image"]["path"] == "fw.elf" and len(m["entries"]) == 3
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*altlink*"))


@pytest.mark.parametrize("probe", [["--version"], ["-v"], ["--help"], []])
def test_a_probe_runs_the_linker_unchanged(tmp_path, probe):
    bare = subprocess.run([LD, *probe], capture_output=True, text=True)
    p = altlink("link", "--cap-table", "does-not-exist.txt", "--", LD, *probe, cwd=tmp_path)
    assert (p.returncode, p.stdout, p.stderr) == (bare.returncode, bare.stdout, bare.stderr)


def test_a_compiler_driver_probe_runs_unchanged(tmp_path):
    cc = "aarch64-linux-gnu-gcc"
    bare = subprocess.run([cc, "-print-prog-name=ld"], capture_output=True, text=True)
    p = altlink("link", "--", cc, "-print-prog-name=ld", cwd=tmp_path)
    assert (p.returncode, p.stdout) == (0, bare.stdout)


def test_a_link_of_host_objects_runs_unchanged(tmp_path):
    """A configure step's link of host (x86-64 here) objects is not altlink's business."""
    src = write(tmp_path / "probe.c", "int main(void) { return 0; }\n")
    run(["gcc", "-c", src, "-o", tmp_path / "probe.o"])
    p = altlink("link", "--cap-table", "missing.txt", "--", "gcc", tmp_path / "probe.o", "-o",
                tmp_path / "probe", cwd=tmp_path, env={"ALTLINK_MANIFEST": ".alt.json"})
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "probe").exists() and not (tmp_path / "probe.alt.json").exists()


def test_a_command_passed_through_is_the_linker_in_altlinks_place(tmp_path):
    """The ``altlink`` command passes a probe on by ``exec``: the linker runs as the process
    the build started (the same pid), nothing of altlink waits for it. A caller's process
    (``cli.main``: SCons, the tests) is never replaced: the linker runs beside it. One that
    cannot be run is named as a link names it (exit 3)."""
    fake = write(tmp_path / "fake-ld", "#!/bin/sh\necho \"$$ $*\" > pid.txt\nexit 7\n")
    fake.chmod(0o755)
    p = subprocess.Popen([sys.executable, "-m", "altlink", "link", "--", str(fake), "--version"],
                         cwd=tmp_path, env=env_without_altlink_vars())
    assert p.wait() == 7
    assert (tmp_path / "pid.txt").read_text().split() == [str(p.pid), "--version"]
    code = ("import os, sys\nfrom altlink import cli\n"
            f"rc = cli.main(['link', '--', {str(fake)!r}, '-v'])\n"
            "print(rc, os.getpid())\n")
    q = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, env=env_without_altlink_vars())
    rc, pid = q.stdout.split()
    assert rc == "7" and (tmp_path / "pid.txt").read_text().split()[0] != pid
    r = altlink("link", "--", str(tmp_path / "no-such-ld"), "--version", cwd=tmp_path)
    assert r.returncode == 3
    assert r.stderr.splitlines() == [
        f"{tmp_path / 'no-such-ld'}: cannot run the linker: No such file or directory"]


def test_verbose_link_is_still_checked(tmp_path, main_obj):
    """``ld -v`` with inputs prints the version and links: altlink checks that link."""
    p = altlink("link", "--ncaps", "2", "--", *fw_command(tmp_path, [main_obj]), "-v",
                cwd=tmp_path)
    assert p.returncode == 1 and "ALT011" in p.stderr
    assert not (tmp_path / "fw.elf").exists()


def test_a_failing_probe_keeps_its_status(tmp_path):
    p = altlink("link", "--", LD, "--no-such-option-at-all", "-v", cwd=tmp_path)
    bare = subprocess.run([LD, "--no-such-option-at-all", "-v"], capture_output=True, text=True)
    assert p.returncode == bare.returncode


def test_environment_variables_configure_the_launcher(tmp_path, main_obj):
    caps = write(tmp_path / "caps.txt", "A\nB\nC\nD\n")
    env = {"ALTLINK_CAP_TABLE": str(caps), "ALTLINK_MANIFEST": ".json",
           "ALTLINK_ABI": "linux-v4.17"}
    p = altlink("link", "--", *fw_command(tmp_path, [main_obj]), cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "fw.elf.json").read_text())
    assert m["caps"] == {"0": "A", "1": "B", "2": "C", "3": "D"} and m["ncaps"] == 4
    # The command line wins over the variable.
    small = write(tmp_path / "small.txt", "A\nB\n")
    p = altlink("link", "--cap-table", small, "--", *fw_command(tmp_path, [main_obj]),
                cwd=tmp_path, env=env)
    assert p.returncode == 1 and "ALT011" in p.stderr


def test_werror_and_bad_values_from_the_environment(tmp_path, main_obj):
    p = altlink("link", "--ncaps", "4", "--", *fw_command(tmp_path, [main_obj]), cwd=tmp_path,
                env={"ALTLINK_WERROR": "maybe"})
    assert p.returncode == 2
    assert p.stderr.strip() == "ALTLINK_WERROR='maybe': expected 1 or 0 (yes/no, true/false)"
    p = altlink("link", "--", *fw_command(tmp_path, [main_obj]), cwd=tmp_path,
                env={"ALTLINK_ABI": "linux-v9"})
    assert p.returncode == 2 and "ALTLINK_ABI='linux-v9'" in p.stderr


def test_symbols_from_the_environment(tmp_path):
    """$ALTLINK_SYMBOLS_FROM, a path list, as --symbols-from: a module's kernel callback."""
    mod = asm(tmp_path, "mod", MODULE_S)
    modo = asm(tmp_path, "mod.mod", THIS_MODULE_S)
    run([LD, "-r", mod, modo, "-o", tmp_path / "mod.ko"])
    for name, body in (("vmlinux", ".globl kernel_cb\n.type kernel_cb,%function\nkernel_cb: ret\n"),
                       ("other", "")):
        obj = asm(tmp_path, name, ".text\n.globl _start\n_start: ret\n" + body)
        run([LD, "-Ttext=0x1000", obj, "-o", tmp_path / name])
    p = altlink("check", "--ncaps", "4", "mod.ko", cwd=tmp_path,
                env={"ALTLINK_SYMBOLS_FROM": "other"})
    assert p.returncode == 1 and "ALT006" in p.stdout
    p = altlink("check", "--ncaps", "4", "mod.ko", cwd=tmp_path,
                env={"ALTLINK_SYMBOLS_FROM": f"other{os.pathsep}vmlinux"})
    assert p.returncode == 0, p.stdout
    # The command line wins over the variable.
    p = altlink("check", "--ncaps", "4", "--symbols-from", "other", "mod.ko", cwd=tmp_path,
                env={"ALTLINK_SYMBOLS_FROM": "vmlinux"})
    assert p.returncode == 1 and "ALT006" in p.stdout


# == archives as binutils and Kbuild write them ===================================================


LONG = "a_member_with_a_name_longer_than_sixteen"


def _member_src(name: str) -> str:
    return (f"#include <altlink/alternative.h>\n.text\n.globl {name}\n.type {name},%function\n"
            f"{name}:\nalternative_insn \"mov x0, #1\", \"mov x0, #2\", 1\nret\n")


@pytest.fixture()
def kbuild_archives(tmp_path) -> tuple[Path, Path]:
    """vmlinux.a as Kbuild 6.1 makes it: thin archives of thin archives with full paths
    (``ar cDPrST``), a regular archive nested in a thin one, then ``ar mPiT`` moving members
    (which writes names such as "/1651          /")."""
    d = tmp_path / "tree"
    for sub, names in (("init", ["main_o"]), ("drivers/deep", [LONG, "d2"]),
                       ("lib", ["libfn"])):
        (d / sub).mkdir(parents=True, exist_ok=True)
        for n in names:
            asm(d / sub, n, _member_src(n))
    run([AR, "cDPrST", "drivers/deep/built-in.a", f"drivers/deep/{LONG}.o", "drivers/deep/d2.o"],
        cwd=d)
    run([AR, "cDPrST", "drivers/built-in.a", "drivers/deep/built-in.a"], cwd=d)
    run([AR, "cDPrS", "lib/lib.a", "lib/libfn.o"], cwd=d)
    run([AR, "cDPrST", "vmlinux.a", "drivers/built-in.a", "init/main_o.o", "lib/lib.a"], cwd=d)
    run([AR, "mPiT", "drivers/deep/" + LONG + ".o", "vmlinux.a", "init/main_o.o"], cwd=d)
    return d, d / "vmlinux.a"


def test_scan_reads_kbuild_thin_archives_as_ar_lists_them(kbuild_archives):
    d, arc = kbuild_archives
    listed = run([AR, "t", "vmlinux.a"], cwd=d).stdout.split()
    assert "init/main_o.o" in listed and f"drivers/deep/{LONG}.o" in listed
    p = altlink("scan", "--ncaps", "4", "--format", "json", "vmlinux.a", cwd=d)
    assert p.returncode == 0, p.stderr
    files = [f["path"] for f in json.loads(p.stdout)["files"]]
    assert files == ["vmlinux.a(init/main_o.o)", f"vmlinux.a(drivers/deep/{LONG}.o)",
                     "vmlinux.a(drivers/deep/d2.o)", "lib/lib.a(lib/libfn.o)"]


def test_link_of_a_kbuild_archive_is_clean_and_cross_checked(kbuild_archives):
    d, arc = kbuild_archives
    start = asm(d, "start", ".text\n.globl _start\n.type _start,%function\n_start:\n"
                "bl main_o\nbl d2\nbl libfn\nbl " + LONG + "\nret\n")
    cmd = [LD, "-L", str(LDSCRIPTS), "-T", str(write(d / "fw.ld", FW_LD)), str(start),
           "--whole-archive", "vmlinux.a", "--no-whole-archive", "-o", "fw.elf"]
    p = altlink("link", "--ncaps", "4", "--manifest", "fw.json", "--", *cmd, cwd=d)
    assert p.returncode == 0, p.stderr
    assert len(json.loads((d / "fw.json").read_text())["entries"]) == 4
    # A member the archive names but that is gone: one line naming it, exit 2.
    os.remove(d / "drivers/deep/d2.o")
    p = altlink("link", "--ncaps", "4", "--", *cmd, cwd=d)
    assert p.returncode == 2
    assert p.stderr.startswith("vmlinux.a(drivers/deep/d2.o): cannot read thin archive member")


# == modules and partial links ====================================================================


MODULE_S = r"""
#include <altlink/alternative.h>
	.text
	.globl mod_fn
	.type mod_fn, %function
mod_fn:
	alternative_cb kernel_cb
	nop
	alternative_cb_end
	ret
"""
THIS_MODULE_S = '\t.section .gnu.linkonce.this_module, "aw"\n\t.zero 64\n'
MODINFO_S = '\t.section .modinfo, "a"\n\t.asciz "license=GPL"\n'


def test_ko_link_leaves_kernel_callbacks_to_the_load(tmp_path):
    """A .ko (ld -r of the module's objects and its .mod.o) whose callback the kernel
    defines: resolved when Linux loads it, so not an error without --symbols-from."""
    mod = asm(tmp_path, "mod", MODULE_S)
    modo = asm(tmp_path, "mod.mod", THIS_MODULE_S + MODINFO_S)
    p = altlink("link", "--ncaps", "4", "--", LD, "-r", mod, modo, "-o", "mod.ko", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "mod.ko").exists()
    # With the kernel named, the callback is checked against it.
    kobj = asm(tmp_path, "k", ".text\n.globl _start\n_start: ret\n")
    run([LD, "-Ttext=0x1000", kobj, "-o", tmp_path / "vmlinux"])
    p = altlink("check", "--ncaps", "4", "--symbols-from", "vmlinux", "mod.ko", cwd=tmp_path)
    assert p.returncode == 1
    assert "ALT006: callback kernel_cb is not defined in the link set or in the --symbols-from " \
        "images" in p.stdout


def test_built_in_module_code_in_vmlinux_is_not_a_module(tmp_path):
    """Built-in modules keep .modinfo in vmlinux: a callback they define is not ALT015."""
    src = MODINFO_S + "\t.text\n\t.globl kernel_cb\n\t.type kernel_cb, %function\n" \
        "kernel_cb:\n\tret\n" + MODULE_S + "\t.globl _start\n_start: ret\n"
    obj = asm(tmp_path, "builtin", src)
    p = altlink("link", "--ncaps", "4", "--", *fw_command(tmp_path, [obj], "vmlinux"),
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    # The same object with the module structure: the module's own callback (ALT015).
    mod = asm(tmp_path, "m", src.replace(MODINFO_S, THIS_MODULE_S))
    p = altlink("link", "--ncaps", "4", "--", LD, "-r", mod, "-o", "m.ko", cwd=tmp_path)
    assert p.returncode == 1 and "ALT015" in p.stderr
    assert not (tmp_path / "m.ko").exists()


def test_partial_link_output_is_cross_checked(tmp_path, main_obj):
    """ld -r output is compared with what was collected: a /DISCARD/ of the table is ALT013."""
    script = write(tmp_path / "drop.ld", "SECTIONS { /DISCARD/ : { *(.altinstructions) } }\n")
    p = altlink("link", "--ncaps", "4", "--", LD, "-r", "-T", script, main_obj, "-o", "p.o",
                cwd=tmp_path)
    assert p.returncode == 1 and "ALT013" in p.stderr, p.stderr
    assert not (tmp_path / "p.o").exists()


# == tables merged into another output section ====================================================


MERGED_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) *(.altinstr_replacement) }
	.rodata : {
		*(.rodata .rodata.*)
		. = ALIGN(4);
		__alt_instructions = .;
		KEEP(*(.altinstructions))
		__alt_instructions_end = .;
	}
	. = 0x480000;
	.data : { *(.data .data.*) }
	.bss : { *(.bss .bss.*) *(COMMON) }
}
"""


def test_table_merged_into_rodata_is_found_by_its_symbols(tmp_path, main_obj):
    cmd = [LD, "-T", str(write(tmp_path / "m.ld", MERGED_LD)), str(main_obj), "-o", "fw.elf"]
    p = altlink("link", "--ncaps", "4", "--manifest", "fw.json", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "fw.json").read_text())
    assert len(m["entries"]) == 3 and m["table"]["size"] == 36
    scan = altlink("scan", "--ncaps", "4", "fw.elf", cwd=tmp_path)
    assert scan.stdout.startswith("fw.elf: 3 entries"), scan.stdout
    check = altlink("check", "--ncaps", "4", "fw.elf", cwd=tmp_path)
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("tail,problem", [
    ("__alt_instructions_end = . - 4;", "not whole 12-byte entries"),
    ("", "__alt_instructions is defined but __alt_instructions_end is not"),
])
def test_table_symbols_that_do_not_bound_entries(tmp_path, main_obj, tail, problem):
    script = MERGED_LD.replace("__alt_instructions_end = .;", tail)
    cmd = [LD, "-T", str(write(tmp_path / "m.ld", script)), str(main_obj), "-o", "fw.elf"]
    run(cmd, cwd=tmp_path)
    p = altlink("check", "--ncaps", "4", "fw.elf", cwd=tmp_path)
    assert p.returncode == 1
    assert "ALT012" in p.stdout and problem in p.stdout, p.stdout


def test_table_symbols_that_disagree_with_the_section(tmp_path, main_obj):
    script = FW_LD.replace("INCLUDE alternatives.ld", """
	.altinstr_replacement : { KEEP(*(.altinstr_replacement)) }
	. = ALIGN(4);
	.altinstructions : {
		__alt_instructions = . + 12;
		KEEP(*(.altinstructions))
		__alt_instructions_end = .;
	}""")
    cmd = [LD, "-T", str(write(tmp_path / "m.ld", script)), str(main_obj), "-o", "fw.elf"]
    run(cmd, cwd=tmp_path)
    p = altlink("check", "--ncaps", "4", "fw.elf", cwd=tmp_path)
    assert p.returncode == 1 and "ALT012" in p.stdout
    assert "the runtime reads the table between the symbols" in p.stdout


# == images rewritten after the link ==============================================================


@pytest.fixture()
def linked_fw(tmp_path, main_obj) -> Path:
    p = altlink("link", "--ncaps", "4", "-o", "fw.elf", "--manifest", "fw.json", "--",
                *fw_command(tmp_path, [main_obj]), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    return tmp_path


def test_verify_the_image_as_linked(linked_fw):
    p = altlink("verify", "fw.elf", "fw.json", cwd=linked_fw)
    assert (p.returncode, p.stdout) == (0, "fw.json: matches fw.elf\n")


@pytest.mark.parametrize("post,changed", [
    (["aarch64-linux-gnu-strip", "fw.elf"], "only what is not loaded"),
    (["aarch64-linux-gnu-objcopy", "--add-section", ".sig=sig.bin", "--set-section-flags",
      ".sig=alloc,readonly", "fw.elf"], "sections added: .sig"),
    (["aarch64-linux-gnu-objcopy", "--update-section", ".data=data.bin", "fw.elf"],
     "contents of .data"),
])
def test_verify_a_post_processed_image(linked_fw, post, changed):
    d = linked_fw
    (d / "sig.bin").write_bytes(b"signature" * 7)
    (d / "data.bin").write_bytes(b"\x02" + b"\0" * 7)
    run(post, cwd=d)
    p = altlink("verify", "fw.elf", "fw.json", cwd=d)
    assert p.returncode == 0, p.stdout
    assert p.stdout.startswith("fw.elf: note: changed after the link") and changed in p.stdout
    assert "the manifest still applies" in p.stdout
    # patch accepts it too
    p = altlink("patch", "fw.elf", "--manifest", "fw.json", "--caps", "1", "--emulate", "my_cb",
                "-o", "p.elf", cwd=d)
    assert p.returncode == 0, p.stderr


def test_verify_names_the_entry_whose_site_changed(linked_fw):
    d = linked_fw
    m = json.loads((d / "fw.json").read_text())
    site = m["entries"][1]["site"]
    data = bytearray((d / "fw.elf").read_bytes())
    data[site["file_offset"]:site["file_offset"] + 4] = bytes.fromhex("000020d4")  # brk #0
    (d / "fw.elf").write_bytes(bytes(data))
    p = altlink("verify", "fw.elf", "fw.json", cwd=d)
    assert p.returncode == 1
    assert "and so do the table, sites or replacements" in p.stdout
    assert "fw.json: error: entry 1: site bytes differ" in p.stdout
    p = altlink("patch", "fw.elf", "--manifest", "fw.json", "--caps", "1", "--emulate", "my_cb",
                "-o", "p.elf", cwd=d)
    assert p.returncode == 2 and "this manifest belongs to another image" in p.stderr


def test_verify_of_a_copy_elsewhere(linked_fw, tmp_path_factory):
    other = tmp_path_factory.mktemp("copy")
    shutil.copy(linked_fw / "fw.elf", other / "fw.elf")
    p = altlink("verify", other / "fw.elf", linked_fw / "fw.json")
    assert p.returncode == 0, p.stdout


def test_find_symbols_agrees_with_the_whole_table():
    """find_symbols searches the table's bytes for the names' offsets: the same symbols as
    decoding every entry, for names shared as tails of longer ones too."""
    from toolchain import ROOT

    from altlink.elf import read_elf

    for path in sorted((ROOT / "tests" / "data" / "kernel" / "modules").glob("*.ko"))[:20]:
        elf = read_elf(str(path))
        names = {s.name for s in elf.symbols if s.name}
        for name in sorted(names)[:60] + ["init_module", "cleanup_module", "no_such_name"]:
            fresh = read_elf(str(path))  # before the whole table is decoded
            assert fresh.find_symbols(name) == [s for s in elf.symbols if s.name == name], \
                (path, name)
