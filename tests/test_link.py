"""``altlink link`` (docs/reference.md, sections 3 to 5) with the real linkers: GNU ld, the gcc driver and lld.

Inputs are small assembly, C and LTO files built here; outputs are read back with
pyelftools and ``objcopy``, never with altlink's own reader.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from elftools.elf.elffile import ELFFile
from toolchain import (
    FREESTANDING,
    GNU_CC,
    INCLUDE,
    LDSCRIPTS,
    ROOT,
    SIMPLE_LD,
    altlink,
    compile,
    env_without_altlink_vars,
    run,
    write,
)

GNU_LD = "aarch64-linux-gnu-ld"
LLD = "ld.lld"
GCC = GNU_CC[0]
OBJCOPY = "aarch64-linux-gnu-objcopy"
AR = "aarch64-linux-gnu-ar"
NCAPS = 4
LINKERS = ("ld", "gcc", "lld")
LD_LINKERS = ("ld", "lld")

# -- running altlink ------------------------------------------------------------------------


def linker_command(linker: str, objs, out="ld-out.elf", script: Path | None = None,
                   flags=()) -> list[str]:
    """A complete static link command for one of the three linkers."""
    if linker == "gcc":
        cmd = [GCC, "-nostdlib", "-static", "-Wl,--build-id=none"]
        if script is not None:
            cmd += [f"-L{LDSCRIPTS}", f"-Wl,-T,{script}"]
        return [*cmd, *[f"-Wl,{f}" for f in flags], *map(str, objs), "-o", out]
    cmd = [GNU_LD if linker == "ld" else LLD, "-static"]
    if script is not None:
        cmd += ["-L", str(LDSCRIPTS), "-T", str(script)]  # GNU ld: -L before the -T using it
    return [*cmd, *flags, *map(str, objs), "-o", out]


def no_outputs(*paths: Path) -> bool:
    return not any(p.exists() for p in paths)


def temp_leftovers(d: Path) -> list[str]:
    """Hidden temporary files altlink makes beside its outputs (``.NAME.XXXX.tag``)."""
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def fake_linker(d: Path, real: str = GNU_LD) -> tuple[Path, Path]:
    """A linker that records that it ran, says so on stdout and stderr, then runs the real
    one."""
    log = d / "linker-ran"
    script = write(d / "fake-ld", f'#!/bin/sh\necho "$@" >> "{log}"\necho "{LINKER_SAYS}"\n'
                   f'echo "{LINKER_SAYS}" >&2\nexec {real} "$@"\n')
    script.chmod(0o755)
    return script, log


LINKER_SAYS = "the fake linker ran"


# -- sources --------------------------------------------------------------------------------

MAIN_S = r"""
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	alternative_insn "mov x0, #1", "mov x0, #2", 1
	alternative_if 2
	b helper
	movz x1, #3
	alternative_else
	nop
	nop
	alternative_endif
#ifdef ALTLINK_ABI_LINUX_V61
	alternative_cb 3, my_cb
#else
	alternative_cb my_cb
#endif
	mov x2, #0
	alternative_cb_end
	bl helper
	mov x8, #93
	svc #0
	.size _start, . - _start

	.globl helper
	.type helper, %function
helper:
	ret
	.size helper, . - helper

	.globl my_cb
	.type my_cb, %function
my_cb:
	ret
	.size my_cb, . - my_cb

	.data
	.globl counter
counter:
	.quad 1
	.bss
	.globl scratch
scratch:
	.space 256
"""

# Text and data in two load regions with a gap between them, and a .bss at the end.
FW_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	INCLUDE alternatives.ld
	.rodata : { *(.rodata .rodata.*) }
	. = 0x480000;
	.data : { *(.data .data.*) }
	.bss : { *(.bss .bss.*) *(COMMON) }
}
"""


def entry_asm(site: str, repl: str, cap: int, orig_len: str, alt_len: str) -> str:
    """A hand-written table entry (for what the header's .org check would refuse)."""
    return (f"\t.pushsection .altinstructions, \"a\"\n\t.balign 4\n\t.word {site} - .\n"
            f"\t.word {repl} - .\n\t.hword {cap}\n\t.byte {orig_len}\n\t.byte {alt_len}\n"
            "\t.popsection\n")


# ALT001: the replacement is 8 bytes, the site 4.
BAD_S = r"""
	.text
	.globl bad_fn
	.type bad_fn, %function
bad_fn:
1:	nop
2:	ret
""" + entry_asm("1b", "3f", 1, "2b - 1b", "4f - 3f") + r"""
	.pushsection .altinstr_replacement, "ax"
3:	mov x0, #1
	mov x1, #1
4:
	.popsection
"""


def lib_member(name: str, reg: str) -> str:
    return f"""
#include <altlink/alternative.h>
	.text
	.globl {name}
	.type {name}, %function
{name}:
	alternative_insn "mov {reg}, #1", "mov {reg}, #2", 1
	ret
"""


CALLS_USED_S = r"""
	.text
	.globl _start
	.type _start, %function
_start:
	bl used_fn
	mov x8, #93
	svc #0
"""


def asm(tmp: Path, name: str, text: str, toolchain: str = "gnu", defines=()) -> Path:
    src = write(tmp / f"{name}.S", text)
    return compile(src, tmp / f"{name}.o", toolchain, defines=[f"ALT_NCAPS={NCAPS}", *defines])


# -- an independent reader --------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    site: int
    alt: int
    cap: int
    orig_len: int
    alt_len: int


class Image:
    """A linked image read with pyelftools."""

    def __init__(self, path: Path):
        self.data = path.read_bytes()
        self.elf = ELFFile(io.BytesIO(self.data))
        self.sections = [s for s in self.elf.iter_sections()]

    def section(self, name: str):
        return self.elf.get_section_by_name(name)

    def table(self) -> list[Row]:
        sec = self.section(".altinstructions")
        if sec is None:
            return []
        data, base = sec.data(), sec["sh_addr"]
        out = []
        for off in range(0, len(data) - len(data) % 12, 12):
            o, a, cap, ol, al = struct.unpack_from("<iiHBB", data, off)
            out.append(Row(base + off + o, base + off + 4 + a, cap, ol, al))
        return out

    def offset_of(self, addr: int) -> int:
        for s in self.sections:
            if s["sh_flags"] & 2 and s["sh_type"] != "SHT_NOBITS" and \
                    s["sh_addr"] <= addr < s["sh_addr"] + s["sh_size"]:
                return s["sh_offset"] + addr - s["sh_addr"]
        raise KeyError(hex(addr))

    def read(self, addr: int, size: int) -> bytes:
        off = self.offset_of(addr)
        return self.data[off:off + size]

    def symbol(self, name: str) -> int:
        return self.elf.get_section_by_name(".symtab").get_symbol_by_name(name)[0]["st_value"]


def objcopy_binary(image: Path, out: Path) -> bytes:
    run([OBJCOPY, "-O", "binary", image, out])
    return out.read_bytes()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# == the whole link, with each linker ============================================================


@pytest.mark.parametrize("linker", LINKERS)
def test_link_writes_image_binary_and_manifest(tmp_path, linker):
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    for d in ("img", "bin", "meta"):
        (tmp_path / d).mkdir()
    cmd = linker_command(linker, [obj], "linker-out.elf", script)
    p = altlink("link", "-o", "img/fw.elf", "--manifest", "meta/fw.json", "--bin", "bin/fw.bin",
                "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    image, binary, mpath = tmp_path / "img/fw.elf", tmp_path / "bin/fw.bin", tmp_path / "meta/fw.json"
    assert image.is_file() and binary.is_file() and mpath.is_file()
    assert not (tmp_path / "linker-out.elf").exists(), "the linker's own -o must be redirected"
    for d in ("img", "bin", "meta"):
        assert temp_leftovers(tmp_path / d) == []

    # The raw binary is what objcopy makes of the image: a gap of zeros between the two load
    # regions, and nothing for the trailing .bss.
    ref = objcopy_binary(image, tmp_path / "ref.bin")
    assert binary.read_bytes() == ref
    img = Image(image)
    assert img.symbol("counter") >= 0x480000
    assert len(ref) == img.symbol("counter") + 8 - 0x400000

    m = json.loads(mpath.read_text())
    schema = json.loads((ROOT / "altlink" / "schema" / "manifest.schema.json").read_text())
    jsonschema.validate(m, schema, cls=jsonschema.Draft202012Validator)
    # Paths relative to the manifest's directory; hashes of the files as written.
    assert m["image"]["path"] == "../img/fw.elf"
    assert m["image"]["bin"]["path"] == "../bin/fw.bin"
    assert m["image"]["sha256"] == sha256(image)
    assert m["image"]["bin"]["sha256"] == sha256(binary)
    assert m["image"]["bin"]["base"] == "0x400000"
    assert m["ncaps"] == NCAPS

    # Every entry as the table in the image has it, and its offsets point at the site's bytes.
    rows = img.table()
    assert [(e["kind"], e["cap_raw"]) for e in m["entries"]] == \
        [("static", 1), ("static", 2), ("callback", NCAPS)]
    assert len(rows) == 3
    raw = binary.read_bytes()
    for e, row in zip(m["entries"], rows):
        site = e["site"]
        assert int(site["address"], 16) == row.site and site["length"] == row.orig_len
        want = img.read(row.site, row.orig_len)
        assert bytes.fromhex(site["bytes"]) == want
        assert site["file_offset"] == img.offset_of(row.site)
        assert img.data[site["file_offset"]:site["file_offset"] + row.orig_len] == want
        assert raw[site["bin_offset"]:site["bin_offset"] + row.orig_len] == want
        if e["kind"] == "static":
            assert int(e["replacement"]["address"], 16) == row.alt
            assert bytes.fromhex(e["replacement"]["bytes"]) == img.read(row.alt, row.alt_len)
            assert e["callback"] is None
        else:
            assert e["callback"] == {"symbol": "my_cb", "address": hex(img.symbol("my_cb"))}
            assert e["replacement"] is None
    # The branch in entry 1's replacement leaves it: a fix-up to helper.
    assert m["entries"][1]["replacement"]["fixups"] == [
        {"insn": 0, "kind": "branch26", "target": hex(img.symbol("helper"))}]
    assert m["entries"][0]["site"]["symbol"] == "_start"
    table = img.section(".altinstructions")
    assert m["table"] == {"address": hex(table["sh_addr"]), "size": 36,
                          "file_offset": table["sh_offset"],
                          "bin_offset": table["sh_addr"] - 0x400000}


@pytest.mark.parametrize("linker", LD_LINKERS)
def test_link_without_linker_script(tmp_path, linker):
    """The linker's default layout (no fragment, no KEEP): still three outputs that agree."""
    obj = asm(tmp_path, "main", MAIN_S)
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--bin", "fw.bin", "--",
                *linker_command(linker, [obj]), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "fw.bin").read_bytes() == objcopy_binary(tmp_path / "fw.elf",
                                                                 tmp_path / "ref.bin")
    m = json.loads((tmp_path / "fw.json").read_text())
    assert m["image"]["path"] == "fw.elf" and len(m["entries"]) == 3


def test_manifest_is_deterministic(tmp_path):
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    cmd = linker_command("ld", [obj], "x.elf", script)
    outs = []
    for _ in range(2):
        p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--bin", "fw.bin", "--",
                    *cmd, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        outs.append([(tmp_path / n).read_bytes() for n in ("fw.json", "fw.elf", "fw.bin")])
    assert outs[0] == outs[1]
    # Keys sorted at every level (whatever the layout of the text).
    def check_sorted(pairs):
        keys = [k for k, _ in pairs]
        assert keys == sorted(keys)
        return dict(pairs)

    json.loads(outs[0][0].decode("utf-8"), object_pairs_hook=check_sorted)


def test_verify_show_diff(tmp_path):
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--",
                *linker_command("ld", [obj], "x.elf", script), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "fw.json").read_text())

    p = altlink("verify", "fw.elf", "fw.json", cwd=tmp_path)
    assert p.returncode == 0 and "matches" in p.stdout, p.stdout + p.stderr

    # show: the disassembly of every site and replacement, and the callback.
    p = altlink("show", "fw.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    for e in m["entries"]:
        for line in e["site"]["disasm"] + (e["replacement"] or {}).get("disasm", []):
            assert line in p.stdout
    assert "mov x0, #2" in p.stdout and "callback my_cb" in p.stdout
    # An image shows the same (an image alone does not tell callbacks apart: --ncaps).
    assert altlink("show", "--ncaps", NCAPS, "fw.elf", cwd=tmp_path).stdout.splitlines()[1:] == \
        p.stdout.splitlines()[1:]

    # A modified image no longer matches its manifest.
    data = bytearray((tmp_path / "fw.elf").read_bytes())
    off = m["entries"][0]["site"]["file_offset"]
    data[off:off + 4] = bytes.fromhex("1f2003d5")  # nop
    (tmp_path / "patched.elf").write_bytes(bytes(data))
    p = altlink("verify", "patched.elf", "fw.json", cwd=tmp_path)
    assert p.returncode == 1
    assert "sha256" in p.stdout and "entry 0: site bytes differ" in p.stdout

    # diff: a relink with another replacement reports the changed entry, and only it.
    asm(tmp_path, "main", MAIN_S.replace('"mov x0, #2"', '"mov x0, #3"'))
    p = altlink("link", "-o", "fw2.elf", "--manifest", "fw2.json", "--",
                *linker_command("ld", [tmp_path / "main.o"], "x.elf", script), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = altlink("diff", "fw.json", "fw2.json", cwd=tmp_path)
    assert p.returncode == 1  # the manifests differ, as diff(1) says
    changed = [line for line in p.stdout.splitlines() if line.strip()]
    assert len(changed) == 1 and changed[0].startswith("~"), p.stdout
    assert "replacement code changed" in changed[0] and "_start" in changed[0]
    p = altlink("diff", "fw.json", "fw.json", cwd=tmp_path)
    assert (p.returncode, p.stdout) == (0, "no differences\n")
    p = altlink("diff", "fw.json", "missing.json", cwd=tmp_path)
    assert p.returncode == 2 and "missing.json" in p.stderr


# Data loaded into ROM after the code (LMA != VMA), a NOLOAD .bss between, a second RAM region.
LOAD_ADDRESS_LD = """
ENTRY(_start)
MEMORY
{
	rom (rx) : ORIGIN = 0x400000, LENGTH = 1M
	ram (rwx) : ORIGIN = 0x480000, LENGTH = 1M
}
SECTIONS
{
	.text : { *(.text .text.*) } > rom
	.altinstr_replacement : { KEEP(*(.altinstr_replacement)) } > rom
	.altinstructions : { KEEP(*(.altinstructions)) } > rom
	.bss (NOLOAD) : { *(.bss .bss.*) } > ram
	.data : { *(.data .data.*) } > ram AT > rom
	.sram 0x490000 : { LONG(0x12345678) } > ram
}
"""


@pytest.mark.parametrize("linker", LD_LINKERS)
def test_raw_binary_uses_load_addresses(tmp_path, linker):
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "lma.ld", LOAD_ADDRESS_LD)
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--bin", "fw.bin", "--",
                *linker_command(linker, [obj], "x.elf", script), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    raw = (tmp_path / "fw.bin").read_bytes()
    assert raw == objcopy_binary(tmp_path / "fw.elf", tmp_path / "ref.bin")
    # .data is in the binary right after the code (its LMA), not at 0x480000.
    img = Image(tmp_path / "fw.elf")
    data = img.section(".data")
    assert data["sh_addr"] >= 0x480000 and 0 <= raw.find(data.data()) < 0x1000
    assert len(raw) == 0x90004

    # Linkers that leave every p_paddr zero: objcopy then places sections by their VMA.
    from altlink import rawbin
    from altlink.elf import read_elf

    elf = bytearray((tmp_path / "fw.elf").read_bytes())
    phoff, phnum = struct.unpack_from("<Q", elf, 0x20)[0], struct.unpack_from("<H", elf, 0x38)[0]
    for i in range(phnum):
        struct.pack_into("<Q", elf, phoff + 56 * i + 24, 0)
    (tmp_path / "zero.elf").write_bytes(bytes(elf))
    ref = objcopy_binary(tmp_path / "zero.elf", tmp_path / "zero.bin")
    assert ref != raw
    assert rawbin.raw_binary(read_elf(str(tmp_path / "zero.elf"))) == ref


# == cross-check: what the linker did to the table and the replacements ==========================

NO_KEEP_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	.altinstr_replacement : { *(.altinstr_replacement) }
	.altinstructions : { *(.altinstructions) }
	.data : { *(.data .data.*) }
	.bss : { *(.bss .bss.*) }
}
"""


@pytest.mark.parametrize("linker", LD_LINKERS)
def test_gc_sections_dropping_the_table_is_alt013(tmp_path, linker):
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "nokeep.ld", NO_KEEP_LD)
    cmd = linker_command(linker, [obj], "x.elf", script, ["--gc-sections"])
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--bin", "fw.bin", "--", *cmd,
                cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    lines = [line for line in p.stderr.splitlines() if "ALT013" in line]
    assert len(lines) == 3 and all("main.o: error: ALT013:" in x for x in lines), p.stderr
    assert "KEEP" in lines[0]
    assert no_outputs(tmp_path / "fw.elf", tmp_path / "fw.json", tmp_path / "fw.bin")
    assert temp_leftovers(tmp_path) == []
    # The same script keeps the table without --gc-sections.
    cmd = linker_command(linker, [obj], "x.elf", script)
    assert altlink("link", "-o", "fw.elf", "--", *cmd, cwd=tmp_path).returncode == 0


EXIT_TEXT_S = r"""
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	alternative_insn "mov x0, #1", "mov x0, #2", 1
	mov x8, #93
	svc #0

	.section .exit.text, "ax"
	.globl exit_fn
	.type exit_fn, %function
exit_fn:
	alternative_insn "mov x1, #1", "mov x1, #2", 2
	ret
"""

DISCARD_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	INCLUDE alternatives.ld
	/DISCARD/ : { *(.exit.text) }
}
"""


def test_discarded_site_section_gnu_ld_refuses_to_link(tmp_path):
    """GNU ld itself rejects the table's reference into the discarded section: exit 3, its
    message passed through, nothing written."""
    obj = asm(tmp_path, "exit", EXIT_TEXT_S)
    script = write(tmp_path / "discard.ld", DISCARD_LD)
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--",
                *linker_command("ld", [obj], "x.elf", script), cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert "referenced in section `.altinstructions'" in p.stderr
    assert "defined in discarded section `.exit.text'" in p.stderr
    assert no_outputs(tmp_path / "fw.elf", tmp_path / "fw.json")
    assert temp_leftovers(tmp_path) == []


def test_discarded_site_section_lld_is_alt013(tmp_path):
    """lld links silently, resolving the site of the discarded section's entry to address 0:
    altlink reports that entry (and only that one)."""
    obj = asm(tmp_path, "exit", EXIT_TEXT_S)
    script = write(tmp_path / "discard.ld", DISCARD_LD)
    cmd = linker_command("lld", [obj], "x.elf", script)
    assert run(cmd, cwd=tmp_path).returncode == 0  # lld alone says nothing
    assert Image(tmp_path / "x.elf").table()[1].site == 0
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    lines = [line for line in p.stderr.splitlines() if "ALT013" in line]
    assert len(lines) == 1, p.stderr
    assert ".exit.text" in lines[0] and "discarded" in lines[0] and "entry 1" in lines[0]
    assert "entry 0" not in p.stderr  # the entry in .text is fine
    assert no_outputs(tmp_path / "fw.elf", tmp_path / "fw.json")


FAR_S = r"""
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	alternative_insn "nop", "BRANCH far_function", 1
	mov x8, #93
	svc #0

	.section .far.text, "ax"
	GLOBAL
	.type far_function, %function
far_function:
	ret
"""


def far_source(branch: str, global_: bool = True) -> str:
    return FAR_S.replace("BRANCH", branch).replace(
        "GLOBAL", ".globl far_function" if global_ else "")


# far_function 256 MiB above the code: a direct BL cannot reach it.
FAR_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	INCLUDE alternatives.ld
	. = 0x10400000;
	.far : { *(.far.text) }
}
"""


@pytest.mark.parametrize("symbol", ["global", "local", "stripped"])
@pytest.mark.parametrize("linker", LD_LINKERS)
def test_veneer_in_replacement_is_alt016(tmp_path, linker, symbol):
    """Found by the target's symbol (global or local), and in an image without symbols by
    the veneer's code."""
    obj = asm(tmp_path, "far", far_source("bl", symbol == "global"))
    script = write(tmp_path / "far.ld", FAR_LD)
    cmd = linker_command(linker, [obj], "x.elf", script, ["-s"] if symbol == "stripped" else [])
    # What the linker does on its own: the BL in the replacement goes to a veneer.
    run(cmd, cwd=tmp_path)
    img = Image(tmp_path / "x.elf")
    row = img.table()[0]
    word = struct.unpack("<I", img.read(row.alt, 4))[0]
    assert word >> 26 == 0x25  # still a BL ...
    target = row.alt + (((word & 0x3FFFFFF) ^ 0x2000000) - 0x2000000) * 4
    assert target != 0x10400000 and abs(target - row.alt) < 0x1000  # ... to a nearby veneer

    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "ALT016" in p.stderr and "veneer" in p.stderr, p.stderr
    assert no_outputs(tmp_path / "fw.elf", tmp_path / "fw.json")


# The replacement sits next to far_function, the site 256 MiB away: the linker is content,
# but the branch re-encoded at the site cannot reach.
FAR_REPLACEMENT_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	.altinstructions : { KEEP(*(.altinstructions)) }
	. = 0x10400000;
	.altinstr_replacement : { KEEP(*(.altinstr_replacement)) }
	.far : { . += 0x100; *(.far.text) }
}
"""


@pytest.mark.parametrize("linker", LD_LINKERS)
def test_branch_out_of_range_at_the_site_is_alt009(tmp_path, linker):
    obj = asm(tmp_path, "far", far_source("b"))
    script = write(tmp_path / "far.ld", FAR_REPLACEMENT_LD)
    p = altlink("link", "-o", "fw.elf", "--", *linker_command(linker, [obj], "x.elf", script),
                cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "fw.elf: error: ALT009:" in p.stderr and "+-128 MiB" in p.stderr, p.stderr
    assert "ALT016" not in p.stderr  # the linker did not touch the replacement
    assert not (tmp_path / "fw.elf").exists()
    # Reachable from the site (the same code, near layout): fine.
    script = write(tmp_path / "near.ld", FAR_REPLACEMENT_LD.replace("0x10400000", "0x500000"))
    p = altlink("link", "-o", "fw.elf", "--", *linker_command(linker, [obj], "x.elf", script),
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr


# ADRP at page offset 0xff8, a load, then a load through the ADRP's register: the Cortex-A53
# erratum 843419 sequence. The replacement section is page-aligned so that the layout is known.
ERRATUM_S = r"""
	.text
	.globl _start
	.type _start, %function
_start:
1:	nop
	nop
	nop
2:	mov x8, #93
	svc #0
""" + entry_asm("1b", "3f", 1, "2b - 1b", "4f - 3f") + r"""
	.pushsection .altinstr_replacement, "ax"
	.balign 4096
	.skip 0xff8
3:	adrp x0, data_word
	ldr x1, [x1]
	ldr x2, [x0, #:lo12:data_word]
4:
	.popsection
	.data
	.balign 8
	.globl data_word
data_word:
	.quad 7
"""

ERRATUM_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	.altinstr_replacement : { KEEP(*(.altinstr_replacement)) }
	.altinstructions : { KEEP(*(.altinstructions)) }
	.data : { *(.data) }
}
"""


@pytest.mark.parametrize("linker", LD_LINKERS)
def test_erratum_843419_fix_in_replacement_is_alt016(tmp_path, linker):
    obj = asm(tmp_path, "erratum", ERRATUM_S)
    script = write(tmp_path / "erratum.ld", ERRATUM_LD)
    plain = linker_command(linker, [obj], "x.elf", script)
    p = altlink("link", "-o", "fw.elf", "--", *plain, cwd=tmp_path)
    assert p.returncode == 0, p.stderr  # without the erratum fix the code stays as written

    fixed = linker_command(linker, [obj], "x.elf", script, ["--fix-cortex-a53-843419"])
    run(fixed, cwd=tmp_path)
    img = Image(tmp_path / "x.elf")
    row = img.table()[0]
    assert row.alt % 4096 == 0xFF8
    words = struct.unpack("<3I", img.read(row.alt, 12))
    if linker == "ld":  # GNU ld: the ADRP becomes an ADR (the target is within 1 MiB)
        assert words[0] & 0x9F000000 == 0x10000000
    else:  # lld: the final load becomes a branch to a patch stub
        assert words[2] >> 26 == 0x05
    p = altlink("link", "-o", "fw2.elf", "--", *fixed, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "ALT016" in p.stderr, p.stderr
    assert ("adrp" in p.stderr and "adr " in p.stderr) if linker == "ld" else \
        "instruction 2" in p.stderr
    assert not (tmp_path / "fw2.elf").exists()


# == failures: nothing written, nothing left behind ==============================================


def test_prelink_finding_stops_the_link_and_shows_nothing_of_the_linker(tmp_path):
    """The linker starts while the inputs are checked, where it writes nothing but its output:
    a finding in an object then stops it; nothing it printed is shown, and neither its output
    nor any temporary file is left."""
    main = asm(tmp_path, "main", MAIN_S)
    bad = asm(tmp_path, "bad", BAD_S)
    ld, log = fake_linker(tmp_path)
    script = write(tmp_path / "fw.ld", FW_LD)
    cmd = [str(ld), "-static", "-L", str(LDSCRIPTS), "-T", str(script), str(main), str(bad),
           "-o", "x.elf"]
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--bin", "fw.bin", "--", *cmd,
                cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "bad.o" in p.stderr and "ALT001" in p.stderr and "replacement is 8 bytes, site is 4" \
        in p.stderr
    assert LINKER_SAYS not in p.stdout + p.stderr
    assert no_outputs(tmp_path / "fw.elf", tmp_path / "fw.json", tmp_path / "fw.bin",
                      tmp_path / "x.elf")
    assert temp_leftovers(tmp_path) == []
    # The fake linker works: without the bad object it runs, what it printed is shown (its
    # stdout, held while it might still be stopped, too), and altlink succeeds.
    cmd.remove(str(bad))
    p = altlink("link", "-o", "fw.elf", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert log.exists()
    assert LINKER_SAYS in p.stdout and LINKER_SAYS in p.stderr


def test_the_linker_runs_as_the_shell_would_run_it(tmp_path):
    """The linker gets the descriptors altlink was given (a make jobserver's pipe: an LTO
    link's lto-wrapper uses it) and SIGPIPE at its default, as when it runs without altlink;
    what it prints, a megabyte on each stream while altlink still checks, is all shown, with
    the temporary output's name replaced by the output's."""
    main = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    seen = tmp_path / "seen"
    ld = write(tmp_path / "chatty-ld", f"""#!/bin/sh
for a in "$@"; do case "$prev" in -o) out=$a;; esac; prev=$a; done
{{ [ -e /proc/self/fd/$JOBSERVER_FD ] && echo fd-open; grep '^SigIgn' /proc/self/status; }} > {seen}
head -c 1000000 /dev/zero | tr '\\0' 'o'; echo
head -c 1000000 /dev/zero | tr '\\0' 'e' >&2; echo "wrote $out" >&2
exec {GNU_LD} "$@"
""")
    ld.chmod(0o755)
    r, w = os.pipe()
    try:
        env = env_without_altlink_vars()
        env["PYTHONPATH"] = str(ROOT)
        env["JOBSERVER_FD"] = str(r)
        p = subprocess.run(
            [sys.executable, "-m", "altlink", "link", "-o", "fw.elf", "--", str(ld), "-static",
             "-L", str(LDSCRIPTS), "-T", str(script), str(main), "-o", "fw.elf"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, pass_fds=(r,))
    finally:
        os.close(r)
        os.close(w)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = seen.read_text().split()
    assert lines[0] == "fd-open"
    ignored = int(lines[-1], 16)  # SigIgn: the mask of ignored signals
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert p.stdout.count("o") >= 1_000_000 and p.stderr.count("e") >= 1_000_000
    assert "wrote fw.elf" in p.stderr
    assert (tmp_path / "fw.elf").exists() and temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("spelling", ["same", "symlink", "dotdot"])
def test_an_output_that_is_also_an_input_stays_until_it_is_replaced(tmp_path, spelling):
    """``ld -r part.o more.o -o part.o``: the earlier outputs are removed while the linker
    runs, but not one the linker still has to read, however its path is spelled (the same
    file by a symbolic link, or through ".."). A slow linker reads it after that removal."""
    part = asm(tmp_path, "part", MAIN_S)
    more = asm(tmp_path, "more", ".text\n.globl more_fn\nmore_fn:\n\tret\n")
    (tmp_path / "sub").mkdir()
    given = {"same": part.name, "symlink": "alias.o", "dotdot": "sub/../part.o"}[spelling]
    if spelling == "symlink":
        (tmp_path / "alias.o").symlink_to(part.name)
    slow = write(tmp_path / "slow-ld", f"#!/bin/sh\nsleep 2\nexec {GNU_LD} \"$@\"\n")
    slow.chmod(0o755)
    before = part.read_bytes()
    p = altlink("link", "-o", "part.o", "--", str(slow), "-r", given, more.name, "-o",
                "part.o", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert part.read_bytes() != before  # relinked: part.o now holds more_fn as well
    assert b"more_fn" in part.read_bytes()
    assert temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("linker, why", [("no-such-ld", "No such file or directory"),
                                         ("./fw.ld", "Permission denied")])
def test_a_linker_that_cannot_run_is_one_line_and_exit_3(tmp_path, linker, why):
    """A linker that is not there, or not a program: exit 3 (the linker failed) with one line
    naming it and why, and nothing left behind."""
    main = asm(tmp_path, "main", MAIN_S)
    write(tmp_path / "fw.ld", FW_LD)
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", linker, "-T", "fw.ld",
                str(main), "-o", "fw.elf", cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert p.stderr.splitlines() == [f"{linker}: cannot run the linker: {why}"]
    assert no_outputs(tmp_path / "fw.elf", tmp_path / "fw.json")
    assert temp_leftovers(tmp_path) == []


def test_the_linker_s_messages_are_held_without_a_temporary_directory(tmp_path):
    """$TMPDIR names no directory: the linker's messages are held beside the output, where
    the linker writes too, and shown as ever."""
    main = asm(tmp_path, "main", MAIN_S)
    ld, log = fake_linker(tmp_path)
    script = write(tmp_path / "fw.ld", FW_LD)
    env = env_without_altlink_vars()
    env["PYTHONPATH"] = str(ROOT)
    env["TMPDIR"] = str(tmp_path / "no-such-dir")
    p = subprocess.run(
        [sys.executable, "-m", "altlink", "link", "-o", "fw.elf", "--", str(ld), "-static",
         "-L", str(LDSCRIPTS), "-T", str(script), str(main), "-o", "fw.elf"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert LINKER_SAYS in p.stdout and LINKER_SAYS in p.stderr
    assert temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("problem", ["cap-table", "input"])
def test_unusable_input_after_the_linker_started_stops_it(tmp_path, problem):
    """The linker starts before altlink reads its capability table and the inputs: an
    unusable one is exit 2 with its one line, and the linker, already running, leaves
    nothing (no message, no output, no temporary file)."""
    main = asm(tmp_path, "main", MAIN_S)
    ld, log = fake_linker(tmp_path)
    script = write(tmp_path / "fw.ld", FW_LD)
    junk = tmp_path / "junk.o"  # an ELF header whose section headers are past the end
    junk.write_bytes(main.read_bytes()[:128])
    opts = ["--cap-table", "missing.txt"] if problem == "cap-table" else []
    inputs = [str(main)] + ([str(junk)] if problem == "input" else [])
    p = altlink("link", *opts, "-o", "fw.elf", "--", str(ld), "-static", "-L", str(LDSCRIPTS),
                "-T", str(script), *inputs, "-o", "x.elf", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert ("missing.txt" if problem == "cap-table" else "junk.o") in p.stderr
    assert LINKER_SAYS not in p.stdout + p.stderr
    assert no_outputs(tmp_path / "fw.elf", tmp_path / "x.elf")
    assert temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("option", [["-Map", "fw.map"], ["-Map=fw.map"], ["--dependency-file",
                                    "fw.d"]], ids=["Map", "Map=", "dependency-file"])
def test_prelink_finding_with_a_linker_that_writes_other_files_leaves_none(tmp_path, option):
    """A linker command that writes a file besides its output (a map, a dependency file)
    writes it into a temporary file too, so it may start before the inputs are checked: a
    refused link leaves no such file (nor any temporary one); a link that passes, the file
    where it was asked for."""
    main = asm(tmp_path, "main", MAIN_S)
    bad = asm(tmp_path, "bad", BAD_S)
    ld, log = fake_linker(tmp_path)
    script = write(tmp_path / "fw.ld", FW_LD)
    cmd = [str(ld), "-static", *option, "-L", str(LDSCRIPTS), "-T", str(script), str(main),
           str(bad), "-o", "fw.elf"]
    p = altlink("link", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    log.unlink(missing_ok=True)  # (it may have started: the files it wrote are gone)
    assert sorted(x.name for x in tmp_path.iterdir()) == [
        "bad.S", "bad.o", "fake-ld", "fw.ld", "main.S", "main.o"]
    cmd.remove(str(bad))
    p = altlink("link", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert log.exists() and (tmp_path / option[-1].split("=")[-1]).exists()


@pytest.mark.parametrize("argv,only", [
    # Kbuild's vmlinux and module links, a firmware link through the gcc driver
    (["ld", "-EL", "-maarch64elf", "-z", "noexecstack", "--no-undefined", "-X", "--pic-veneer",
      "--build-id=sha1", "--orphan-handling=warn", "--script=vmlinux.lds", "--whole-archive",
      "vmlinux.a", "--no-whole-archive", "-o", "vmlinux"], True),
    (["ld", "-r", "-EL", "-maarch64elf", "--build-id=sha1", "-T", "module.lds", "-o", "m.ko",
      "m.o", "m.mod.o"], True),
    (["aarch64-linux-gnu-gcc", "-nostdlib", "-Wl,--gc-sections,-T,fw.ld", "map.o", "dump.o",
      "-o", "fw.elf"], True),  # names of files are not options
    # a map and a dependency file, written into temporary files as the output is
    (["ld", "-Map", "fw.map", "a.o", "-o", "fw.elf"], True),
    (["ld.lld", "--Map=fw.map", "a.o", "-o", "fw.elf"], True),
    (["gcc", "-Wl,--gc-sections,-Map=fw.map", "a.o", "-o", "fw.elf"], True),
    (["gcc", "-Xlinker", "-Map", "-Xlinker", "fw.map", "a.o", "-o", "fw.elf"], True),
    (["gcc", "-Wl,--dependency-file=fw.d", "a.o", "-o", "fw.elf"], True),
    # ... but not a map GNU ld names after the output, nor one on the standard output
    (["ld", "-Map=%.map", "a.o", "-o", "fw.elf"], False),
    (["ld", "-Map", ".", "a.o", "-o", "fw.elf"], False),
    (["ld", "-Map=-", "a.o", "-o", "fw.elf"], False),
    (["ld", "--print-map", "a.o", "-o", "fw.elf"], False),
    (["ld.lld", "--reproduce=r.tar", "a.o", "-o", "fw.elf"], False),
    (["ld.lld", "--why-extract=w.txt", "a.o", "-o", "fw.elf"], False),
    (["gcc", "-flto", "-save-temps", "a.o", "-o", "fw.elf"], False),
    (["clang", "-Wl,--thinlto-cache-dir=c", "a.o", "-o", "fw.elf"], False),
    (["mold", "--separate-debug-file", "a.o", "-o", "fw.elf"], False),
    (["ld.lld", "--error-handling-script=./on-error.sh", "a.o", "-o", "fw.elf"], False),
], ids=["kbuild-vmlinux", "kbuild-module", "driver", "Map", "lld-Map", "Wl-Map", "Xlinker-Map",
        "dependency-file", "Map-percent", "Map-directory", "Map-stdout", "print-map", "reproduce", "why-extract", "save-temps", "thinlto-cache",
        "separate-debug-file", "error-handling-script"])
def test_which_linker_commands_may_start_before_the_checks(argv, only):
    from altlink import linkcmd

    assert linkcmd.writes_only_output(argv) is only


def test_the_early_linker_is_stopped_by_a_usage_error(tmp_path):
    """``altlink link`` starts its linker before argparse reads the command line, where the
    words before ``--`` are the link's own options spelled in full: a value the parser then
    rejects (an unknown --abi) is exit 2 with the parser's line, and the linker, already
    running, leaves nothing."""
    main = asm(tmp_path, "main", MAIN_S)
    ld, _ = fake_linker(tmp_path)
    script = write(tmp_path / "fw.ld", FW_LD)
    cmd = [str(ld), "-static", "-L", str(LDSCRIPTS), "-T", str(script), str(main), "-o", "x.elf"]
    # It was started before the parser ran: seen where the link starts it (whether the
    # linker got to write anything before it was stopped depends on the machine's load).
    code = ("import sys\n"
            "from altlink import cli, linker\n"
            "started = []\n"
            "class Spy(linker.LinkStart):\n"
            "    def __init__(self, *a, **k):\n"
            "        started.append('argparse' in sys.modules)\n"
            "        super().__init__(*a, **k)\n"
            "linker.LinkStart = Spy\n"
            "try:\n"
            "    rc = cli.main(sys.argv[1:])\n"
            "except SystemExit as e:\n"
            "    rc = e.code\n"
            "print(started, rc)\n")
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, "-c", code, "link", "--abi", "linux-v9", "-o", "fw.elf",
                        "--manifest", "fw.json", "--", *cmd], capture_output=True, text=True,
                       cwd=tmp_path, env=e, timeout=120)
    assert p.stdout.split("\n")[-2:] == ["[False] 2", ""], p.stdout + p.stderr
    assert "invalid choice: 'linux-v9'" in p.stderr
    assert LINKER_SAYS not in p.stdout + p.stderr
    assert no_outputs(tmp_path / "fw.elf", tmp_path / "fw.json", tmp_path / "x.elf")
    assert temp_leftovers(tmp_path) == []


@pytest.mark.parametrize("opts, early, thin", [
    (["-o", "fw.elf", "--manifest", "fw.json", "--bin=fw.bin", "-Wno-ALT014", "-v"], True,
     False),
    (["-ofw.elf", "--werror", "-W", "no-ALT014", "--no-cache"], True, False),
    ([], True, False),
    (["-o", "fw.elf"], True, True),  # Kbuild's vmlinux.a: a thin archive, long member names
    (["-o", "fw.elf", "--manif", "fw.json"], False, False),  # an abbreviation: the parser
    (["-vo", "fw.elf"], False, False),  # short options run together: the parser decides
    (["--help"], False, False),
])
def test_which_link_command_lines_start_the_linker_before_they_are_parsed(tmp_path, opts,
                                                                          early, thin):
    """``cli._early_link`` reads ``-o`` from the words themselves, before argparse is
    imported, only where every word before ``--`` is an option of the link spelled in full;
    the linker then starts with none of argparse, re, subprocess, shlex, dataclasses or
    typing loaded (their imports would delay it). Elsewhere it starts nothing."""
    main = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    inputs = [str(main)]
    if thin:  # a member named past 15 characters: a long name, /OFFSET
        long = tmp_path / "a_member_with_a_long_name.o"
        shutil.copy(main, long)
        subprocess.run([AR, "rcsT", str(tmp_path / "vmlinux.a"), str(long)], check=True)
        inputs = ["--whole-archive", str(tmp_path / "vmlinux.a"), "--no-whole-archive"]
    words = ["link", *opts, "--", GNU_LD, "-static", "-L", str(LDSCRIPTS), "-T", str(script),
             *inputs, "-o", "x.elf"]
    code = (
        "import sys\n"
        "from altlink import cli, linker\n"
        "seen = []\n"
        "class Spy(linker.LinkStart):\n"
        "    def __init__(self, *a, **k):\n"
        "        seen.append(sorted({'argparse', 're', 'subprocess', 'shlex', 'dataclasses',\n"
        "                            'typing'} & set(sys.modules)))\n"
        "        super().__init__(*a, **k)\n"
        "linker.LinkStart = Spy\n"
        "try:\n"
        "    cli.main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(seen[:1], 'EARLY' if seen and seen[0] == [] else 'LATE')\n")
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, "-c", code, *words], capture_output=True, text=True,
                       cwd=tmp_path, env=e)
    assert p.stdout.split()[-1:] == (["EARLY"] if early else ["LATE"]), p.stdout + p.stderr
    if "--help" not in opts:
        assert temp_leftovers(tmp_path) == []


def test_a_link_makes_what_its_records_codes_read_as_while_its_linker_runs(tmp_path,
                                                                           monkeypatch):
    """A link of many entries that writes a manifest makes what its records' codes read as
    (``linkoutputs.early_texts``, from the records' columns it read while its linker ran)
    and gives them to the manifest's writer: here with the limits lowered, the linker taken
    to run until they are made, and the writer in this process. They are made once numpy's
    import in a thread is over (no module is imported beside it: a dataclass made while it
    imports ``typing`` reads a half-imported module). Its manifest is the one made from the
    image alone, byte for byte; the replacement whose branch the linker filled in was not
    known before."""
    import threading
    import time

    from altlink import crosscheck, forkmap, linkoutputs, rawbin
    from altlink import link as link_mod
    from altlink import manifest as manifestmod
    from altlink.elf import read_elf
    from altlink.link import LinkRequest, link
    from altlink.linkset import Input, Options
    from altlink.table import Profile

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(link_mod, "ASK_EARLY_ENTRIES", -1)
    monkeypatch.setattr(link_mod, "ARRAYS_FROM_ENTRIES", 0)
    monkeypatch.setattr(crosscheck, "ARRAYS_FROM_ENTRIES", 0)
    monkeypatch.setattr(link_mod, "packed_columns_early", lambda records, running:
                        crosscheck.packed_columns_early(records, lambda: True))
    monkeypatch.setattr(forkmap, "can_fork", lambda: False)
    made, given = [], []

    def importing(code_bytes, entries=0):  # numpy's import, taken to last
        t = threading.Thread(target=time.sleep, args=(0.5,), name="altlink-numpy")
        t.start()
        return t

    def early(packs, running, texts=None):
        assert "altlink-numpy" not in [t.name for t in threading.enumerate()]
        made.append(real_early(packs, lambda: True, texts))
        made.append(set(made[-1].code_json))
        return made[0]

    def make_files(*args):
        given.append(args[-1])
        return real(*args)

    real, real_early = link_mod.make_files, linkoutputs.early_texts
    monkeypatch.setattr(linkoutputs, "early_texts", early)
    monkeypatch.setattr(link_mod.branches, "prefetch", importing)
    monkeypatch.setattr(link_mod, "make_files", make_files)
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    profile = Profile("linux-v4.17", NCAPS)
    res = link(LinkRequest(linker_command("ld", [obj], "x.elf", script), "fw.elf",
                           manifest="fw.json", binary="fw.bin", options=Options(profile),
                           cache_dir=None))
    assert res.linked and not res.findings
    assert len(made) == 2 and given == [made[0]]
    image = Input.load(read_elf("fw.elf"))
    ref = manifestmod.build(image, profile, None, "fw.elf", sha256(tmp_path / "fw.elf"),
                            "fw.json", manifestmod.BinInfo("fw.bin", sha256(tmp_path / "fw.bin"),
                                                           rawbin.layout(image.elf)))
    assert (tmp_path / "fw.json").read_text() == manifestmod.dumps(ref)
    leaving = bytes.fromhex(ref["entries"][1]["replacement"]["bytes"])
    assert ref["entries"][1]["replacement"]["fixups"] and leaving not in made[1]
    assert {bytes.fromhex(ref["entries"][0]["site"]["bytes"]),
            bytes.fromhex(ref["entries"][0]["replacement"]["bytes"])} <= made[1]


def test_a_link_s_writer_names_the_sites_in_a_forked_copy(tmp_path, monkeypatch):
    """Without the compiled writer (which looks the names up itself), the forked writer of a
    link of many entries has the sites' names made in a forked copy of itself
    (``manifest.SiteNames``) while it makes the rest: here with the limits lowered (the
    image's table read as columns). Its manifest is the one made from the image alone, byte
    for byte."""
    import numpy  # noqa: F401 - the image's table is read as columns with it

    from altlink import manifest as manifestmod
    from altlink import speedups
    from altlink import table as table_mod
    from altlink.elf import read_elf
    from altlink.link import LinkRequest, link
    from altlink.linkset import Input, Options
    from altlink.table import Profile

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(table_mod, "COLUMNS_FROM_ENTRIES", 0)
    monkeypatch.setattr(manifestmod, "SITE_NAMES_FORK_FROM", 0)
    real = manifestmod.SiteNames.later

    def later(image, from_entries=None):  # (in the writer: a file says it ran)
        got = real(image, from_entries)
        (tmp_path / "forked").write_text(str(got is not None))
        return got

    monkeypatch.setattr(manifestmod.SiteNames, "later", later)
    monkeypatch.setattr(speedups, "postlink", lambda: None)  # (the Python writes)
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    profile = Profile("linux-v4.17", NCAPS)
    res = link(LinkRequest(linker_command("ld", [obj], "x.elf", script), "fw.elf",
                           manifest="fw.json", options=Options(profile), cache_dir=None))
    assert res.linked and not res.findings
    assert (tmp_path / "forked").read_text() == "True"
    image = Input.load(read_elf("fw.elf"))
    ref = manifestmod.build(image, profile, None, "fw.elf", sha256(tmp_path / "fw.elf"),
                            "fw.json")
    assert (tmp_path / "fw.json").read_text() == manifestmod.dumps(ref)


def test_a_link_without_manifest_or_binary_does_not_load_their_modules(tmp_path):
    """A kernel build runs a link for each module (``ld -r``, no manifest, no raw binary):
    those links do without the manifest's module (and its imports: json, hashlib's
    digests of files, the disassembler)."""
    main = asm(tmp_path, "main", MAIN_S)
    words = ["link", "--", GNU_LD, "-r", str(main), "-o", "m.ko"]
    code = ("import sys\n"
            "from altlink import cli\n"
            "rc = cli.main(sys.argv[1:])\n"
            "print(rc, ' '.join(m for m in ('altlink.manifest', 'capstone') if m in sys.modules))\n")
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    e["ALTLINK_CACHE_DIR"] = str(tmp_path / "cache")
    for _ in range(2):  # the record made, then read back
        p = subprocess.run([sys.executable, "-c", code, *words], capture_output=True,
                           text=True, cwd=tmp_path, env=e)
        assert p.stdout.split() == ["0"], p.stdout + p.stderr
    assert (tmp_path / "m.ko").exists()


def test_the_early_link_options_are_the_link_parser_s():
    """``cli.LINK_VALUE_OPTIONS`` and ``LINK_FLAG_OPTIONS`` (read before argparse is) are the
    options of the link's parser, by whether they take a value (and -o, -W besides)."""
    import argparse

    from altlink import cli

    parser = cli.build_parser("link")
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    values, flags = set(), set()
    for a in sub.choices["link"]._actions:
        if isinstance(a, argparse._HelpAction) or not a.option_strings:
            continue
        (flags if a.nargs == 0 else values).update(a.option_strings)
    assert values == cli.LINK_VALUE_OPTIONS | {"-o", "-W"}
    assert flags == cli.LINK_FLAG_OPTIONS


UNDEFINED_S = r"""
	.text
	.globl _start
_start:
	bl missing_function
"""


@pytest.mark.parametrize("linker", LINKERS)
def test_linker_failure_exits_3_and_leaves_nothing(tmp_path, linker):
    obj = asm(tmp_path, "undef", UNDEFINED_S)
    out = tmp_path / "out"
    out.mkdir()
    p = altlink("link", "-o", "out/fw.elf", "--manifest", "out/fw.json", "--bin", "out/fw.bin",
                "--", *linker_command(linker, [obj], "x.elf"), cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    # The linker's own message, and altlink's one line naming the linker.
    want = "undefined symbol: missing_function" if linker == "lld" else \
        "undefined reference to `missing_function'"
    assert want in p.stderr
    assert "the linker failed" in p.stderr and "Traceback" not in p.stderr
    assert list(out.iterdir()) == []  # no outputs and no temporary files
    assert not (tmp_path / "x.elf").exists()


def test_failed_link_removes_the_previous_outputs(tmp_path):
    """A failed link leaves none of its outputs, not even the previous good ones (as SCons and
    make do): a stale image cannot be flashed after a failed build."""
    good = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    outs = [tmp_path / n for n in ("fw.elf", "fw.json", "fw.bin")]
    args = ("link", "-o", "fw.elf", "--manifest", "fw.json", "--bin", "fw.bin", "--")

    def relink_good():
        assert altlink(*args, *linker_command("ld", [good], "x.elf", script),
                       cwd=tmp_path).returncode == 0
        assert all(p.is_file() for p in outs)

    relink_good()
    # The linker fails ...
    undef = asm(tmp_path, "undef", UNDEFINED_S.replace("_start", "other"))
    p = altlink(*args, *linker_command("ld", [good, undef], "x.elf", script), cwd=tmp_path)
    assert p.returncode == 3
    assert no_outputs(*outs)
    # ... or a check fails, before the link or after it.
    relink_good()
    bad = asm(tmp_path, "bad", BAD_S)
    assert altlink(*args, *linker_command("ld", [good, bad], "x.elf", script),
                   cwd=tmp_path).returncode == 1
    assert no_outputs(*outs)
    relink_good()
    nokeep = write(tmp_path / "nokeep.ld", NO_KEEP_LD)
    assert altlink(*args, *linker_command("ld", [good], "x.elf", nokeep, ["--gc-sections"]),
                   cwd=tmp_path).returncode == 1
    assert no_outputs(*outs)
    assert temp_leftovers(tmp_path) == []


def test_missing_linker_is_exit_3(tmp_path):
    obj = asm(tmp_path, "main", MAIN_S)
    p = altlink("link", "-o", "fw.elf", "--", "no-such-linker", str(obj), "-o", "x.elf",
                cwd=tmp_path)
    assert p.returncode == 3 and "no-such-linker" in p.stderr and "Traceback" not in p.stderr
    assert temp_leftovers(tmp_path) == [] and not (tmp_path / "fw.elf").exists()


def test_output_directory_missing_is_exit_2(tmp_path):
    obj = asm(tmp_path, "main", MAIN_S)
    ld, log = fake_linker(tmp_path)
    p = altlink("link", "-o", "nowhere/fw.elf", "--", ld, str(obj), "-o", "x.elf", cwd=tmp_path)
    assert p.returncode == 2 and "nowhere" in p.stderr and "Traceback" not in p.stderr
    assert not log.exists()
    p = altlink("link", "-o", "fw.elf", "--manifest", "nowhere/fw.json", "--", ld, str(obj),
                "-o", "x.elf", cwd=tmp_path)
    assert p.returncode == 2 and "nowhere" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "fw.elf").exists() and temp_leftovers(tmp_path) == []

def test_warning_made_an_error_writes_no_outputs(tmp_path):
    """The policy decides before anything is written: a warning under --werror stops the link,
    a silenced error does not (Python API: the request carries the policy)."""
    from altlink.findings import Policy
    from altlink.link import LinkRequest, link

    same = asm(tmp_path, "same", SAME_SITE_S)  # ALT010 warning: two entries for one site
    script = write(tmp_path / "fw.ld", FW_LD)
    cmd = linker_command("ld", [same], str(tmp_path / "x.elf"), script)
    out = tmp_path / "fw.elf"
    res = link(LinkRequest(cmd, str(out), policy=Policy(werror=True)))
    assert [f.code for f in res.findings] == ["ALT010"] and res.findings[0].severity == "error"
    assert not out.exists() and not res.written
    res = link(LinkRequest(cmd, str(out)))
    assert [f.severity for f in res.findings] == ["warning"] and out.exists()
    out.unlink()
    bad = asm(tmp_path, "bad", BAD_S)
    cmd = linker_command("ld", [same, bad], str(tmp_path / "x.elf"), script)
    res = link(LinkRequest(cmd, str(out), policy=Policy(frozenset({"ALT001"}))))
    assert "ALT001" not in [f.code for f in res.findings]
    assert res.written and out.exists()


# == the linker command ============================================================================


def test_response_files_nested_and_quoted(tmp_path):
    d = tmp_path / "my objs"
    d.mkdir()
    main = asm(d, "main", MAIN_S)
    bad = asm(d, "bad", BAD_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    write(tmp_path / "inner.rsp", f"-L '{LDSCRIPTS}'\n-T \"{script}\"\n-o 'linker out.elf'\n")
    write(tmp_path / "outer.rsp", f'"{main}" @inner.rsp\n')
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", GNU_LD, "-static",
                "@outer.rsp", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "fw.json").read_text())["entries"]  # checked after LTO
    assert not (tmp_path / "linker out.elf").exists()
    # The objects named in a response file are checked before the link.
    write(tmp_path / "outer.rsp", f'"{main}" "{bad}" @inner.rsp\n')
    p = altlink("link", "-o", "fw2.elf", "--", GNU_LD, "-static", "@outer.rsp", cwd=tmp_path)
    assert p.returncode == 1 and "my objs/bad.o" in p.stderr and "ALT001" in p.stderr
    # An unreadable response file is unusable input, one line naming it.
    p = altlink("link", "-o", "fw3.elf", "--", GNU_LD, "@missing.rsp", cwd=tmp_path)
    assert p.returncode == 2 and "missing.rsp" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("spelling", ["-Wl,", "-Xlinker"])
def test_the_linkers_own_response_file_through_the_driver(tmp_path, spelling):
    """``-Wl,--start-group,@libs.lst,--end-group`` (EDK2 gives every library of a link so):
    the driver passes ``@libs.lst`` to ld, which reads it. Its archive's members are the
    link's inputs: a defect in one is found, and a clean one is linked and checked (the
    command was taken for one with no AArch64 input, and run unchanged, unchecked)."""
    main = asm(tmp_path, "main", MAIN_S)
    bad = asm(tmp_path, "bad", BAD_S)
    run([AR, "rcs", tmp_path / "libfw.a", main], cwd=tmp_path)
    run([AR, "rcs", tmp_path / "libbad.a", main, bad], cwd=tmp_path)
    script = write(tmp_path / "fw.ld", FW_LD)

    def link(lib: str, out: str) -> subprocess.CompletedProcess:
        write(tmp_path / "libs.lst", f"'{tmp_path / lib}'\n")
        group = (["-Wl,--whole-archive,@libs.lst,--no-whole-archive"] if spelling == "-Wl,"
                 else ["-Xlinker", "--whole-archive", "-Xlinker", "@libs.lst",
                       "-Xlinker", "--no-whole-archive"])
        return altlink("link", "--ncaps", str(NCAPS), "--manifest", out + ".json", "--", GCC,
                       "-nostdlib", "-static", f"-L{LDSCRIPTS}", f"-Wl,-T,{script}", *group,
                       "-o", out, cwd=tmp_path)

    p = link("libfw.a", "fw.elf")
    assert p.returncode == 0, p.stderr
    assert len(json.loads((tmp_path / "fw.elf.json").read_text())["entries"]) == 3
    p = link("libbad.a", "bad.elf")
    assert p.returncode == 1 and "ALT001" in p.stderr and "libbad.a(bad.o)" in p.stderr
    assert not (tmp_path / "bad.elf").exists()

def make_archive(tmp_path: Path, members: dict[str, str], thin: bool = False) -> Path:
    objs = [asm(tmp_path, name, text) for name, text in members.items()]
    lib = tmp_path / "libx.a"
    lib.unlink(missing_ok=True)
    run([AR, "rcsT" if thin else "rcs", lib, *[o.name for o in objs]], cwd=tmp_path)
    return lib


LIB = {"used": lib_member("used_fn", "x3"), "unused": lib_member("unused_fn", "x4")}


@pytest.mark.parametrize("form", ["-lx", "path", "thin", "-Wl,-lx"])
def test_archives(tmp_path, form):
    make_archive(tmp_path, LIB, thin=form == "thin")
    start = asm(tmp_path, "start", CALLS_USED_S)
    if form == "-lx":
        cmd = [GNU_LD, "-static", str(start), "-L.", "-lx", "-o", "x.elf"]
    elif form == "-Wl,-lx":
        cmd = [GCC, "-nostdlib", "-static", str(start), "-Wl,-L.,-lx", "-o", "x.elf"]
    else:
        cmd = [LLD, "-static", str(start), "libx.a", "-o", "x.elf"]
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", *cmd, cwd=tmp_path)
    # Only the member the linker pulled in is in the image, and the other one's entry is not
    # reported missing.
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "fw.json").read_text())
    assert [e["site"]["symbol"] for e in m["entries"]] == ["used_fn"]
    assert m["entries"][0]["replacement"]["disasm"] == ["mov x3, #2"]

    # A bad member the linker leaves out is not the link's: nothing of it is said (before,
    # its findings stopped the link); one it pulls in (-u) is named as the linkers name
    # members, and its findings stop the link.
    make_archive(tmp_path, {**LIB, "bad": BAD_S}, thin=form == "thin")
    p = altlink("link", "-o", "fw2.elf", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "bad.o" not in p.stderr and (tmp_path / "fw2.elf").exists()
    pull = ["-Wl,-u,bad_fn"] if cmd[0] == GCC else ["-u", "bad_fn"]
    p = altlink("link", "-o", "fw3.elf", "--", cmd[0], *pull, *cmd[1:], cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "libx.a(bad.o)" in p.stderr and "ALT001" in p.stderr
    assert not (tmp_path / "fw3.elf").exists()


@pytest.mark.parametrize("linker", LD_LINKERS)
@pytest.mark.parametrize("form", ["INPUT in -T", "GROUP via INCLUDE", "implicit script",
                                  "-l script"])
def test_inputs_named_by_linker_scripts(tmp_path, linker, form):
    """Objects and archives that a linker script names (INPUT, GROUP with AS_NEEDED, through an
    INCLUDE, in a script given as an input, in a libNAME.so that is a script) are part of the
    link set: checked before the link, and cross-checked after it."""
    sub = tmp_path / "sub"
    main = asm(tmp_path, "main", MAIN_S)
    helper = asm(sub, "helper2", lib_member("helper2_fn", "x5"))
    make_archive(tmp_path, LIB)
    names = {"INPUT in -T": f"INPUT({helper.name})",
             "GROUP via INCLUDE": f'GROUP("{helper.name}" AS_NEEDED(-lx))',
             "implicit script": f"INPUT ( {helper.name} libx.a )",
             "-l script": f"GROUP ( {helper.name} -lx )"}[form]
    script = FW_LD
    extra = []
    if form == "INPUT in -T":
        script = names + "\n" + FW_LD
    elif form == "GROUP via INCLUDE":
        write(sub / "inputs.ld", "/* the firmware's parts */\n" + names + "\n")
        script = "INCLUDE inputs.ld\n" + FW_LD
    elif form == "implicit script":
        extra = [str(write(tmp_path / "parts.lds", names + "\n"))]
    else:
        # A script named as a library (libc.so is one); .a, since the link is -static.
        write(sub / "libparts.a", "/* GNU ld script */\n" + names + "\n")
        extra = ["-lparts"]
    ldscript = write(tmp_path / "fw.ld", script)
    # GNU ld looks for an INCLUDEd script in the -L directories given before the -T.
    cmd = [GNU_LD if linker == "ld" else LLD, "-static", "-L", str(LDSCRIPTS), f"-L{sub}", "-L.",
           "-T", str(ldscript), str(main), *extra, "--undefined=helper2_fn",
           "--undefined=used_fn", "-o", "x.elf"]
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "fw.json").read_text())
    want = {"helper2_fn"} if form == "INPUT in -T" else {"helper2_fn", "used_fn"}
    assert want <= {e["site"]["symbol"] for e in m["entries"]}
    assert "unused_fn" not in {e["site"]["symbol"] for e in m["entries"]}

    # A bad object named only by the script is checked before the link: ALT001, by name.
    bad = asm(sub, "helper2", BAD_S.replace("bad_fn", "helper2_fn"))
    p = altlink("link", "-o", "fw2.elf", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 1 and f"{bad.name}: error: ALT001" in p.stderr, p.stderr
    assert not (tmp_path / "fw2.elf").exists()


def test_linker_script_reading_is_bounded(tmp_path):
    """A script that INCLUDEs itself, a comment never closed, a binary file given as a script:
    read without end or error."""
    from altlink import ldscript

    loop = write(tmp_path / "loop.ld", "INCLUDE loop.ld\nINPUT(a.o) /* never closed INPUT(b.o)")
    write(tmp_path / "a.o", "a file")
    write(tmp_path / "b.o", "a file")
    found = ldscript.scan(str(loop), [str(tmp_path)], lambda n: None)
    assert found.scripts == [str(loop)]  # read once
    assert found.inputs == ["a.o"] or found.inputs == [str(tmp_path / "a.o")]  # not b.o
    (tmp_path / "bin.ld").write_bytes(b"\x7fELF\0\0INPUT(a.o)")
    assert ldscript.scan(str(tmp_path / "bin.ld"), [], lambda n: None).inputs == []
    assert ldscript.tokens('GROUP ( "a b.o" AS_NEEDED(-lc) ) /* x */ INPUT(c.o,d.o)') == \
        ["GROUP", "(", "a b.o", "AS_NEEDED", "(", "-lc", ")", ")", "INPUT", "(", "c.o", ",",
         "d.o", ")"]


def test_a_link_command_s_inputs_are_read_when_first_asked_for(tmp_path, monkeypatch):
    """The launcher's plan opens the command's files only up to its first AArch64 input (the
    linker of a 2,000-object link starts without 2,000 files opened first); the inputs read
    afterwards are the objects and archives in order, then what a file ld would read as a
    script adds (INPUT), and the archives among them."""
    import builtins

    from altlink import launcher

    main = asm(tmp_path, "main", MAIN_S)
    objs = []
    for k in range(40):
        objs.append(tmp_path / f"o{k}.o")
        shutil.copy(main, objs[-1])
    subprocess.run([AR, "rcs", str(tmp_path / "libx.a"), str(objs[1])], check=True)
    extra = write(tmp_path / "extra.ld", f"INPUT({objs[2]})\nINPUT({tmp_path / 'late.o'})\n")
    shutil.copy(main, tmp_path / "late.o")
    command = [GNU_LD, *map(str, objs[:20]), str(tmp_path / "libx.a"), str(extra),
               *map(str, objs[20:]), "-o", str(tmp_path / "x.elf")]
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(path, *a, **k):
        opened.append(str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", counting_open)
    plan = launcher.plan(command, None, None, None)
    assert not plan.passthrough and plan.output == str(tmp_path / "x.elf")
    assert set(opened) == {str(objs[0])}
    inputs = plan.command.inputs
    assert inputs == [*map(str, objs[:20]), str(tmp_path / "libx.a"), *map(str, objs[20:]),
                      str(tmp_path / "late.o")]  # objs[2] once, where the command has it
    assert plan.command.archives == {str(tmp_path / "libx.a")}
    # A command whose inputs are no AArch64 objects (a configure probe's host object) still
    # runs unchanged, all of its files read to tell.
    host = tmp_path / "host.o"
    host.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x01\x00\x3e\x00" + bytes(44))
    assert launcher.plan(["ld", str(host), str(extra), "-o", "a"], None, None, None).passthrough \
        is False  # the script's INPUT adds AArch64 objects
    assert launcher.plan(["ld", str(host), "-o", "a"], None, None, None).passthrough


def test_linker_script_words_are_the_regular_expressions_words():
    """``ldscript.tokens`` (str methods) gives ``tokens_re``'s words: on binutils' own scripts,
    altlink's, and on every short text of the characters that matter (quotes, comments never
    closed, punctuation, tabs)."""
    import glob
    import itertools

    from altlink import ldscript

    texts = [Path(p).read_text(errors="replace") for p in
             sorted(glob.glob("/usr/lib/aarch64-linux-gnu/ldscripts/*"))[:40] +
             sorted(glob.glob(str(LDSCRIPTS / "*.ld")))]
    assert len(texts) > 10
    texts += ["".join(t) for n in range(7) for t in itertools.product('a /*"(;\t', repeat=n)]
    for text in texts:
        assert ldscript.tokens(text) == ldscript.tokens_re(text), repr(text)


OUT_OF_ORDER_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	.altinstructions : ALIGN(4) { KEEP(*z*.o(.altinstructions)) KEEP(*(.altinstructions)) }
	.altinstr_replacement : { KEEP(*(.altinstr_replacement)) }
}
"""


def out_of_order_objects(tmp_path: Path, n: int) -> tuple[list[Path], Path, Path]:
    """``n`` objects with one alike entry each, a start object and OUT_OF_ORDER_LD, which puts
    the tables of the z objects (every other one) first."""
    objs = []
    for k in range(n):
        name = f"{'z' if k % 2 else 'a'}{k:03d}"  # the z objects' tables go first
        body = (f"\t.text\n\t.globl f{k}\n\t.type f{k}, %function\nf{k}:\n1:\tnop\n2:\tret\n"
                + entry_asm("1b", "3f", 1, "2b - 1b", "4f - 3f") +
                "\t.pushsection .altinstr_replacement, \"ax\"\n3:\tmov x0, #1\n4:\n"
                "\t.popsection\n")
        src = write(tmp_path / f"{name}.s", body)
        objs.append(tmp_path / f"{name}.o")
        run(["aarch64-linux-gnu-as", str(src), "-o", str(objs[-1])])
    start = asm(tmp_path, "start", CALLS_USED_S.replace("bl used_fn", "bl f0"))
    return objs, start, write(tmp_path / "order.ld", OUT_OF_ORDER_LD)


def test_tables_out_of_link_order_are_matched_by_symbol(tmp_path, monkeypatch):
    """A linker script that puts some objects' tables first: each object's entries are found
    where its symbols say, not by searching the whole table for each object (which grows with
    the square of the objects, and with many alike entries takes minutes)."""
    from altlink import crosscheck
    from altlink.link import LinkRequest, link
    from altlink.linkset import Options
    from altlink.table import Profile

    n = 120
    objs, start, script = out_of_order_objects(tmp_path, n)
    looked = []
    real = crosscheck._words_at
    monkeypatch.setattr(crosscheck, "_words_at", lambda *a: looked.append(1) or real(*a))
    # The reference path reads every site it compares through _words_at (the fast one reads
    # them all once, up front): count its looks.
    from functools import partial

    import altlink.link
    monkeypatch.setattr(altlink.link, "cross_check", partial(crosscheck.cross_check,
                                                             fast=False))
    # counted in this process (a link forks its cross-check where it can)
    monkeypatch.setattr(altlink.link.forkmap, "can_fork", lambda: False)
    monkeypatch.chdir(tmp_path)
    res = link(LinkRequest([GNU_LD, "-static", "-T", str(script), str(start), *map(str, objs),
                            "-o", "x.elf"], str(tmp_path / "fw.elf"),
                           options=Options(Profile("linux-v4.17", NCAPS))))
    assert res.linked and res.findings == [], res.findings
    order = Image(tmp_path / "fw.elf").table()
    assert [r.site for r in order] != sorted(r.site for r in order)  # out of link order
    assert 0 < len(looked) < 6 * n, len(looked)  # a linear number of looks, not n * n / 4


def test_archive_member_whose_table_is_dropped_is_alt013(tmp_path):
    make_archive(tmp_path, LIB)
    start = asm(tmp_path, "start", CALLS_USED_S)
    script = write(tmp_path / "nokeep.ld", NO_KEEP_LD)
    p = altlink("link", "-o", "fw.elf", "--", GNU_LD, "-static", "--gc-sections", "-T",
                script, start, "-L.", "-lx", "-o", "x.elf", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    lines = [x for x in p.stderr.splitlines() if "ALT013" in x]
    assert len(lines) == 1 and "libx.a(used.o)" in lines[0], p.stderr


@pytest.mark.skipif(not shutil.which(LLD), reason="no ld.lld")
def test_a_raw_binary_asked_of_the_linker_is_refused_saying_so(tmp_path):
    """ld.lld's --oformat binary writes no ELF image to cross-check (GNU ld refuses it for
    AArch64): exit 2 naming the output and what to do instead, nothing written."""
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", SIMPLE_LD)
    p = altlink("link", "--", *linker_command("lld", [obj], "fw.bin", script,
                                               flags=["--oformat=binary"]), cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("fw.bin: not an ELF file (the linker wrote --oformat binary: ")
    assert "--bin" in p.stderr and len(p.stderr.splitlines()) == 1
    assert sorted(x.name for x in tmp_path.iterdir()) == ["fw.ld", "main.S", "main.o"]


@pytest.mark.parametrize("spelling", ["-o OUT", "-oOUT", "--output=OUT", "--output OUT",
                                      "-Wl-form", "none"])
def test_output_spellings(tmp_path, spelling):
    obj = asm(tmp_path, "main", MAIN_S)
    if spelling == "-Wl-form":
        cmd = [GCC, "-nostdlib", "-static", "-Wl,--build-id=none", str(obj), "-o", "OUT"]
    else:
        cmd = [GNU_LD, "-static", str(obj)]
        cmd += {"none": [], "-oOUT": ["-oOUT"], "--output=OUT": ["--output=OUT"],
                "-o OUT": ["-o", "OUT"], "--output OUT": ["--output", "OUT"]}[spelling]
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "fw.elf").exists()
    # The linker wrote to altlink's temporary file, never to its own output.
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "a.out").exists()
    assert temp_leftovers(tmp_path) == []
    assert json.loads((tmp_path / "fw.json").read_text())["entries"]  # checked after LTO


def test_driver_passed_output_is_refused(tmp_path):
    obj = asm(tmp_path, "main", MAIN_S)
    for form in (["-Wl,-o,x.elf"], ["-Xlinker", "--output=x.elf"]):
        p = altlink("link", "-o", "fw.elf", "--", GCC, "-nostdlib", "-static", str(obj), *form,
                    cwd=tmp_path)
        assert p.returncode == 2 and "driver's own -o" in p.stderr, p.stderr
        assert not (tmp_path / "fw.elf").exists()


def test_linker_messages_name_the_output(tmp_path):
    """The linker writes a temporary file; its messages still name the file the user asked
    for."""
    obj = asm(tmp_path, "main", MAIN_S)
    cmd = linker_command("ld", [obj], "ld-out.elf", write(tmp_path / "one.ld", NO_KEEP_LD))
    plain = run(cmd, cwd=tmp_path)
    if "RWX" not in plain.stderr:
        pytest.skip("this GNU ld does not warn about RWX segments")
    p = altlink("link", "-o", "fw.elf", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "warning: fw.elf has a LOAD segment with RWX permissions" in p.stderr, p.stderr
    assert ".fw.elf." not in p.stderr

LTO_C = r"""
#include <altlink/alternative.h>
extern void far_function(void);
void _start(void)
{
	asm volatile(ALTERNATIVE("nop", "b far_function", 1));
	for (;;)
		;
}
"""

FAR_FUNCTION_S = r"""
	.section .far.text, "ax"
	.globl far_function
	.type far_function, %function
far_function:
	ret
"""


@pytest.mark.parametrize("toolchain", ["llvm", "gnu"])
def test_lto_object_is_noted_and_the_image_checked(tmp_path, toolchain):
    src = write(tmp_path / "lto.c", LTO_C)
    lto = compile(src, tmp_path / "lto.o", toolchain, flags=["-flto"],
                  defines=[f"ALT_NCAPS={NCAPS}"])
    # No table before the link: LLVM bitcode, or GCC's IR in .gnu.lto_ sections.
    if toolchain == "llvm":
        assert lto.read_bytes()[:4] == b"BC\xc0\xde"
    else:
        assert Image(lto).section(".altinstructions") is None
    far = asm(tmp_path, "far", FAR_FUNCTION_S)

    def command(script):
        if toolchain == "llvm":
            return linker_command("lld", [lto, far], "x.elf", script)
        return [*linker_command("gcc", [lto, far], "x.elf", script), "-flto", "-O2"]

    near = write(tmp_path / "near.ld", FAR_REPLACEMENT_LD.replace("0x10400000", "0x500000"))
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", *command(near),
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "lto.o: note: LTO object" in p.stderr
    m = json.loads((tmp_path / "fw.json").read_text())
    assert len(m["entries"]) == 1
    assert m["entries"][0]["replacement"]["fixups"][0]["kind"] == "branch26"
    # The same code laid out so that the branch cannot reach from the site: found after the
    # link, since only the image has the entry.
    far_ld = write(tmp_path / "far.ld", FAR_REPLACEMENT_LD)
    p = altlink("link", "-o", "fw2.elf", "--", *command(far_ld), cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "lto.o: note: LTO object" in p.stderr and "ALT009" in p.stderr
    assert not (tmp_path / "fw2.elf").exists()


LTO_BAD_CALLBACK_C = r"""
#include <altlink/alternative.h>
long table_of_values[4] __attribute__((used));
void _start(void)
{
	asm volatile(ALTERNATIVE_CB("mov x0, #0", table_of_values));
	for (;;)
		;
}
"""


@pytest.mark.parametrize("toolchain", ["llvm", "gnu"])
def test_an_lto_objects_entries_get_an_objects_checks_in_the_image(tmp_path, toolchain):
    """An entry no object read before the link holds (here an LTO object's) is checked in the
    image as an object's would have been: its callback is an array (ALT007). Before, only
    what the final addresses decide was checked there, and this link was clean."""
    src = write(tmp_path / "lto.c", LTO_BAD_CALLBACK_C)
    lto = compile(src, tmp_path / "lto.o", toolchain, flags=["-flto"],
                  defines=[f"ALT_NCAPS={NCAPS}"])
    script = write(tmp_path / "fw.ld", SIMPLE_LD)
    command = linker_command("lld", [lto], "x.elf", script) if toolchain == "llvm" else \
        [*linker_command("gcc", [lto], "x.elf", script), "-flto", "-O2"]
    p = altlink("link", "-o", "fw.elf", "--", *command, cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "lto.o: note: LTO object" in p.stderr
    assert "ALT007: callback table_of_values is not in an executable section" in p.stderr
    assert not (tmp_path / "fw.elf").exists()
    # The same object compiled without LTO: the same finding, before the link.
    plain = compile(src, tmp_path / "plain.o", toolchain, defines=[f"ALT_NCAPS={NCAPS}"])
    q = altlink("link", "-o", "fw.elf", "--", *linker_command(
        "lld" if toolchain == "llvm" else "gcc", [plain], "y.elf", script), cwd=tmp_path)
    assert q.returncode == 1 and "ALT007: callback table_of_values" in q.stderr, q.stderr


LTO_CALLBACK_ELSEWHERE_C = r"""
#include <altlink/alternative.h>
extern void patch_it(void);
void entry(void)
{
	asm volatile(ALTERNATIVE_CB("mov x0, #0", patch_it));
}
"""


@pytest.mark.parametrize("toolchain", ["llvm", "gnu"])
def test_a_partial_lto_link_leaves_its_undefined_callback_to_the_next(tmp_path, toolchain):
    """``ld -r`` of LTO objects (Kbuild's vmlinux.o and modules with CONFIG_LTO_CLANG): the
    entries exist only in the output, and a callback it leaves undefined is the next link's,
    as an object's is (Linux 6.1's kvm_nvhe.tmp.o stopped on an internal error)."""
    src = write(tmp_path / "lto.c", LTO_CALLBACK_ELSEWHERE_C)
    lto = compile(src, tmp_path / "lto.o", toolchain, flags=["-flto"],
                  defines=[f"ALT_NCAPS={NCAPS}"])
    cmd = [LLD, "-r", str(lto), "-o", "part.o"] if toolchain == "llvm" else \
        [GCC, "-r", "-nostdlib", "-flto", "-O2", "-flinker-output=nolto-rel", str(lto), "-o",
         "part.o"]
    p = altlink("link", "-o", "part.o", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "lto.o: note: LTO object" in p.stderr
    assert Image(tmp_path / "part.o").section(".altinstructions") is not None


def test_a_source_the_driver_compiles_gets_an_objects_checks_in_the_image(tmp_path):
    """``gcc -nostdlib ... main.c -o fw.elf``: the object of main.c is made and linked by the
    command itself, so its entries are checked in the image, all of the checks an object's
    get (before: only what the final addresses decide)."""
    src = write(tmp_path / "main.c", LTO_BAD_CALLBACK_C)
    script = write(tmp_path / "fw.ld", SIMPLE_LD)
    p = altlink("link", "-o", "fw.elf", "--", *linker_command("gcc", [], "x.elf", script),
                *FREESTANDING, f"-I{INCLUDE}", f"-DALT_NCAPS={NCAPS}", str(src), cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "main.c: note:" in p.stderr
    assert "ALT007: callback table_of_values is not in an executable section" in p.stderr


@pytest.mark.parametrize("toolchain", ["llvm", "gnu"])
def test_many_lto_objects_make_one_note(tmp_path, toolchain):
    """A kernel built with LTO links hundreds of IR objects at once: one note names the first
    and counts the rest, instead of a line each."""
    objs = []
    for name in ("lto", "lto2", "lto3"):
        src = write(tmp_path / f"{name}.c", LTO_C if name == "lto" else LTO_C.replace(
            "void _start", f"__attribute__((used)) void {name}_start"))
        objs.append(compile(src, tmp_path / f"{name}.o", toolchain, flags=["-flto"],
                            defines=[f"ALT_NCAPS={NCAPS}"]))
    objs.append(asm(tmp_path, "far", FAR_FUNCTION_S))
    script = write(tmp_path / "near.ld", FAR_REPLACEMENT_LD.replace("0x10400000", "0x500000"))
    cmd = (linker_command("lld", objs, "x.elf", script) if toolchain == "llvm" else
           [*linker_command("gcc", objs, "x.elf", script), "-flto", "-O2"])
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    notes = [x for x in p.stderr.splitlines() if "LTO object" in x]
    assert notes == [f"{objs[0]}: note: LTO object, and 2 more ({objs[1]}, {objs[2]}): their "
                     "alternatives exist only after the link and are checked in the linked "
                     "image"], p.stderr
    assert json.loads((tmp_path / "fw.json").read_text())["entries"]  # checked after LTO


@pytest.mark.parametrize("linker", LD_LINKERS)
def test_relocatable_link(tmp_path, linker):
    """``ld -r`` (how kernel modules are linked): the combined object is cross-checked by
    section and offset; it has no addresses, so no manifest or raw binary."""
    main = asm(tmp_path, "main", MAIN_S)
    lib = asm(tmp_path, "lib", lib_member("used_fn", "x3"))
    ld = GNU_LD if linker == "ld" else LLD
    p = altlink("link", "-o", "combined.o", "--", ld, "-r", main, lib, "-o", "x.o",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(Image(tmp_path / "combined.o").section(".altinstructions").data()) == 4 * 12
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--",
                *linker_command(linker, ["combined.o"], "x.elf"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(json.loads((tmp_path / "fw.json").read_text())["entries"]) == 4
    p = altlink("link", "-o", "combined2.o", "--manifest", "c.json", "--", ld, "-r", main, lib,
                "-o", "x.o", cwd=tmp_path)
    assert p.returncode == 2 and "relocatable object" in p.stderr
    assert no_outputs(tmp_path / "combined2.o", tmp_path / "c.json")

# == --sort-table ==================================================================================

# Three entries in reverse site order, each with its own replacement and capability.
UNSORTED_S = r"""
	.text
	.globl _start
	.type _start, %function
_start:
10:	nop
11:	nop
12:	nop
	nop
13:	mov x8, #93
	svc #0
""" + entry_asm("12b", "22f", 3, "13b - 12b", "23f - 22f") + \
    entry_asm("11b", "21f", 2, "12b - 11b", "22f - 21f") + \
    entry_asm("10b", "20f", 1, "11b - 10b", "21f - 20f") + r"""
	.pushsection .altinstr_replacement, "ax"
20:	mov x0, #1
21:	b _start
22:	mov x2, #3
	mov x3, #3
23:
	.popsection
"""

# Two entries for one site (ALT010 warning): the later one wins, in either table order.
SAME_SITE_S = r"""
	.text
	.globl _start
	.type _start, %function
_start:
	nop
1:	nop
2:	mov x8, #93
	svc #0
""" + entry_asm("1b", "3f", 1, "2b - 1b", "4f - 3f") + \
    entry_asm("1b", "4f", 2, "2b - 1b", "5f - 4f") + \
    entry_asm("_start", "5f", 3, "1b - _start", "6f - 5f") + r"""
	.pushsection .altinstr_replacement, "ax"
3:	mov x0, #1
4:	mov x0, #2
5:	mov x0, #3
6:
	.popsection
"""


@pytest.mark.parametrize("linker", LD_LINKERS)
def test_sort_table(tmp_path, linker):
    obj = asm(tmp_path, "unsorted", UNSORTED_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    cmd = linker_command(linker, [obj], "x.elf", script)
    assert altlink("link", "-o", "plain.elf", "--", *cmd, cwd=tmp_path).returncode == 0
    p = altlink("link", "--sort-table", "-o", "sorted.elf", "--manifest", "sorted.json", "--bin",
                "sorted.bin", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    plain, srt = Image(tmp_path / "plain.elf"), Image(tmp_path / "sorted.elf")
    before, after = plain.table(), srt.table()
    assert [r.site for r in before] == sorted((r.site for r in before), reverse=True)
    assert [r.site for r in after] == sorted(r.site for r in before)
    assert sorted(after, key=lambda r: r.site) == sorted(before, key=lambda r: r.site)
    # Only the table changed; the table symbols still bound it.
    assert srt.symbol("__alt_instructions") == plain.symbol("__alt_instructions")
    tab = srt.section(".altinstructions")
    lo, hi = tab["sh_offset"], tab["sh_offset"] + tab["sh_size"]
    assert srt.data[:lo] == plain.data[:lo] and srt.data[hi:] == plain.data[hi:]
    # The manifest and the raw binary describe the sorted image.
    m = json.loads((tmp_path / "sorted.json").read_text())
    assert [int(e["site"]["address"], 16) for e in m["entries"]] == [r.site for r in after]
    assert [e["cap"] for e in m["entries"]] == [1, 2, 3]
    assert (tmp_path / "sorted.bin").read_bytes() == objcopy_binary(tmp_path / "sorted.elf",
                                                                    tmp_path / "ref.bin")
    assert altlink("verify", "sorted.elf", "sorted.json", cwd=tmp_path).returncode == 0


def test_sort_table_keeps_the_order_of_entries_for_one_site(tmp_path):
    obj = asm(tmp_path, "same", SAME_SITE_S)
    cmd = linker_command("ld", [obj], "x.elf", write(tmp_path / "fw.ld", FW_LD))
    p = altlink("link", "--sort-table", "-o", "fw.elf", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "warning: ALT010" in p.stderr
    rows = Image(tmp_path / "fw.elf").table()
    assert [r.cap for r in rows] == [3, 1, 2]  # by site; 1 still before 2


OVERLAP_S = r"""
	.text
	.globl _start
	.type _start, %function
_start:
	nop
1:	nop
	nop
2:	mov x8, #93
	svc #0
""" + entry_asm("1b", "3f", 1, "2b - 1b", "4f - 3f") + \
    entry_asm("_start", "4f", 2, "2b - 1b", "5f - 4f") + r"""
	.pushsection .altinstr_replacement, "ax"
3:	mov x0, #1
	mov x0, #1
4:	mov x0, #2
	mov x0, #2
5:
	.popsection
"""


def test_sort_table_refuses_to_reorder_overlapping_entries(tmp_path):
    from altlink.errors import AltlinkError
    from altlink.findings import Policy
    from altlink.link import LinkRequest, link

    obj = asm(tmp_path, "overlap", OVERLAP_S)
    cmd = linker_command("ld", [obj], str(tmp_path / "x.elf"),
                         write(tmp_path / "fw.ld", FW_LD))
    p = altlink("link", "--sort-table", "-o", "fw.elf", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 1 and "ALT010" in p.stderr and "overlapping" in p.stderr
    # Even with ALT010 silenced, sorting would change which entry wins: refused.
    out = tmp_path / "fw.elf"
    req = LinkRequest(cmd, str(out), sort_table=True, policy=Policy(frozenset({"ALT010"})))
    with pytest.raises(AltlinkError, match=r"fw\.elf: --sort-table refused: entries 0 .* "
                       r"and 1 .* overlapping"):
        link(req)
    assert not out.exists() and temp_leftovers(tmp_path) == []
    req.sort_table = False
    assert link(req).written == [str(out)]


SHARED_LIB_S = """
    .text
    .globl lib_cb
    .type lib_cb, %function
lib_cb: ret
    .size lib_cb, .-lib_cb
"""

CALLS_LIB_CB_S = """
    .text
    .globl _start
    .type _start, %function
_start:
661: nop
662: ret
    .pushsection .altinstructions, "a"
    .word 661b - .
    .word lib_cb - .
    .hword 0x8001
    .byte 4
    .byte 0
    .popsection
"""


@pytest.mark.parametrize("how", ["path", "-l", "stripped"])
def test_callback_defined_in_a_shared_library(tmp_path, how):
    """A shared library on the link command is not checked as an input, but its symbols
    (the dynamic ones, when it is stripped) resolve callbacks."""
    from tests.toolchain import run, write

    lib_o = tmp_path / "lib.o"
    run(["aarch64-linux-gnu-gcc", "-c", write(tmp_path / "lib.S", SHARED_LIB_S), "-o", lib_o])
    so = tmp_path / "libcb.so"
    run(["aarch64-linux-gnu-ld", "-shared", lib_o, "-o", so])
    if how == "stripped":
        run(["aarch64-linux-gnu-strip", so])
    main_o = tmp_path / "main.o"
    run(["aarch64-linux-gnu-gcc", "-c", write(tmp_path / "main.S", CALLS_LIB_CB_S), "-o",
         main_o])
    lib_args = ["-L", str(tmp_path), "-lcb"] if how == "-l" else [str(so)]
    proc = subprocess.run([sys.executable, "-m", "altlink", "link", "--abi", "linux-v6.1",
                           "-o", str(tmp_path / "fw.elf"), "--", "aarch64-linux-gnu-ld",
                           str(main_o), *lib_args, "-o", str(tmp_path / "fw.elf")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ALT006" not in proc.stderr
    # Without the library the callback is unresolved: the test above can fail.
    proc = subprocess.run([sys.executable, "-m", "altlink", "check", "--abi", "linux-v6.1",
                           str(main_o)], capture_output=True, text=True)
    assert proc.returncode == 1 and "ALT006" in proc.stdout


# A weak function with an alternative site, preempted by a strong definition in another
# object (the kernel's `__weak arch_cpu_idle` in kernel/sched/idle.c and arm64's own): the
# weak function's code is still linked, at its object's place; the image's symbol of that
# name is the other definition.
WEAK_S = r"""
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	bl idle
	b .
	.weak idle
	.type idle, %function
idle:
	nop
	alternative_insn "mov x0, #1", "mov x0, #2", 1
	ret
"""

STRONG_S = r"""
	.text
	.globl idle
	.type idle, %function
idle:
	mov x0, #7
	ret
"""


@pytest.mark.parametrize("linker", LD_LINKERS)
def test_a_site_in_a_preempted_weak_function_is_where_its_object_put_it(tmp_path, linker):
    objs = [asm(tmp_path, "weak", WEAK_S), asm(tmp_path, "strong", STRONG_S)]
    script = write(tmp_path / "fw.ld", SIMPLE_LD)
    cmd = linker_command(linker, objs, "x.elf", script)
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--", *cmd, cwd=tmp_path)
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    from altlink.elf import read_elf

    elf = read_elf(str(tmp_path / "fw.elf"))
    start = next(s.value for s in elf.symbols if s.name == "_start")
    (entry,) = json.loads((tmp_path / "fw.json").read_text())["entries"]
    assert int(entry["site"]["address"], 16) == start + 12  # bl, b, nop: the weak copy's site


_IMPORTED = """\
import sys
from altlink import cli
from altlink.gcpause import process_ends
process_ends()  # the altlink command's own process (cli.run)
rc = cli.main(sys.argv[1:])
print(rc, type(sys.modules.get("inspect")).__name__,
      " ".join(m for m in ("ast", "dis", "tokenize", "altlink.sources", "altlink.dwarflines")
               if m in sys.modules))
"""


def test_a_link_imports_neither_inspect_nor_the_source_lines(tmp_path):
    """A link without findings, as each of a kernel's module links (``ld -r``) or a firmware's
    with its manifest and raw binary, through the altlink command: ``inspect`` (with ast,
    dis, tokenize), which only ``dataclasses`` imports, stays a stand-in that no one asks
    anything of (every dataclass on the way has its docstring), and the source lines'
    module is not imported, there being no finding to give a line to. A finding is given its
    line."""
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    env = env_without_altlink_vars()
    env["PYTHONPATH"] = str(ROOT)

    def imported(*args) -> str:
        return subprocess.run([sys.executable, "-c", _IMPORTED, "link", *map(str, args)],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=True, timeout=120).stdout.strip()

    full = linker_command("ld", [obj], "fw.elf", script)
    assert imported("-o", "fw.elf", "--manifest", "fw.json", "--bin", "fw.bin", "--ncaps",
                    NCAPS, "--", *full) == "0 _ImportedWhenUsed"
    assert json.loads((tmp_path / "fw.json").read_text())["entries"]
    assert imported("--ncaps", NCAPS, "--", GNU_LD, "-r", "-o", "part.o", obj) == \
        "0 _ImportedWhenUsed"
    bad = asm(tmp_path, "bad", BAD_S)  # (ALT001)
    got = imported("--ncaps", NCAPS, "--", GNU_LD, "-r", "-o", "bad.o", bad)
    assert got.startswith("1 ") and "altlink.sources" in got, got
