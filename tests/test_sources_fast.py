"""The fast reader of line tables (altlink/dwarflines.py) against pyelftools (the reference,
sources.rows_pyelftools): the same file:line at every address of objects and images built by
gcc and clang, DWARF 4 and 5, and pyelftools' answer where the fast reader stands aside."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import pytest

from altlink import dwarflines, sources
from tests.toolchain import compile, link, write

HEADER = """static inline int twice(int x)
{
	return x + x;
}

static inline int clamp(int x)
{
	if (x > 100)
		return 100;
	return x;
}
"""

C = """#include "util.h"

int counter;

int step(int x)
{
	int y = twice(x);
	for (int i = 0; i < x; i++)
		y += clamp(i * 3);
	return y;
}

__attribute__((noinline)) int other(int a, int b)
{
	if (a > b)
		return step(a - b);
	return clamp(b) + counter;
}

void _start(void)
{
	for (;;)
		counter += other(counter, 7);
}
"""

ASM = """	.text
	.globl	asm_add
	.type	asm_add, %function
asm_add:
	add	x0, x0, x1
	cmp	x0, #3
	b.ne	1f
	mov	x0, #0
1:	ret
	.size	asm_add, . - asm_add
"""

VARIANTS = [(tc, dwarf, fs) for tc in ("gnu", "llvm") for dwarf in (4, 5)
            for fs in (False, True)]


def _exec_sections(path):
    """(name, size) of each executable section of a little-endian ELF64 file."""
    data = path.read_bytes()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    heads = [struct.unpack_from("<IIQQQQ", data, shoff + 64 * i) for i in range(shnum)]
    strtab = data[heads[shstrndx][4]:]
    out = []
    for name, _type, flags, addr, _off, size in heads:
        if flags & 4:  # SHF_EXECINSTR
            out.append((strtab[name:strtab.index(b"\0", name)].decode(), addr, size))
    return out


def _build(tmp_path, toolchain, dwarf, function_sections, extra=(), ld_flags=()):
    src = tmp_path / "src"
    write(src / "util.h", HEADER)
    flags = ["-g", f"-gdwarf-{dwarf}", *extra] + (["-ffunction-sections"] if function_sections else [])
    tag = f"{toolchain}-{dwarf}-{int(function_sections)}"
    objs = [compile(write(src / "prog.c", C), tmp_path / f"prog-{tag}.o", toolchain, flags),
            compile(write(src / "add.S", ASM), tmp_path / f"add-{tag}.o", toolchain, flags)]
    image = link(objs, tmp_path / f"prog-{tag}.elf", toolchain, flags=["-e", "_start", *ld_flags])
    return objs, image


def _rows_of_pyelftools_entries(path, section, offsets):
    """The rows as pyelftools' own line program reader gives them (``get_entries``, one
    object per row: too slow for a kernel), with the rule of sources: the last row at or
    before an address in its sequence, before the next row; the last unit's."""
    import io

    from elftools.elf.elffile import ELFFile

    data = path.read_bytes()
    elf = ELFFile(io.BytesIO(sources._placed(data)))
    dwarf = elf.get_dwarf_info(relocate_dwarf_sections=True, follow_links=False)
    bases = sources._section_bases(elf, section) if section else [0]
    wanted = {b + o: o for b in bases for o in offsets}
    found = {}
    for cu in dwarf.iter_CUs():
        prog = dwarf.line_program_for_CU(cu)
        comp = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
        comp_dir = comp.value.decode() if comp is not None else ""
        prev = None
        for entry in prog.get_entries():
            state = entry.state
            if state is None:
                continue
            if prev is not None and prev.address < state.address:
                name = sources._file_name(prog, prev.file, comp_dir)
                for a in wanted:
                    if prev.address <= a < state.address and name and prev.line > 0:
                        found[wanted[a]] = (name, prev.line)
            prev = None if state.end_sequence else state
    return found


def _same(path, section, offsets):
    fast = dwarflines.lines(str(path), section, offsets)  # raises where it would stand aside
    assert fast == sources.rows_pyelftools(str(path), section, offsets), (path, section)
    return fast


@pytest.mark.skipif(not shutil.which("clang"), reason="no clang")
@pytest.mark.parametrize("toolchain,dwarf,function_sections", VARIANTS)
def test_every_address_as_pyelftools_reads_it(tmp_path, toolchain, dwarf, function_sections):
    objs, image = _build(tmp_path, toolchain, dwarf, function_sections)
    files = set()
    for obj in objs:  # relocatable: every offset of every section with code, and past it
        for name, _addr, size in _exec_sections(obj):
            offsets = list(range(0, size + 8))
            rows = _same(obj, name, offsets)
            assert rows == _rows_of_pyelftools_entries(obj, name, offsets), (obj, name)
            files |= {f for f, _ in rows.values()}
    for _name, addr, size in _exec_sections(image):  # linked: every address, and around
        offsets = list(range(addr - 8, addr + size + 8))
        rows = _same(image, "", offsets)
        assert rows and rows == _rows_of_pyelftools_entries(image, "", offsets), image
        files |= {f for f, _ in rows.values()}
    # The rows name the C file, the header of its inline functions and the assembly file.
    assert {str(tmp_path / "src" / n) for n in ("prog.c", "util.h", "add.S")} <= files, files


def test_lines_of_the_assembly_file(tmp_path):
    """The rows themselves: asm_add's four instructions are lines 5 to 8 and ``ret`` line 9
    of add.S, in the object and in the image (DWARF 5 and 4)."""
    for dwarf in (4, 5):
        objs, image = _build(tmp_path, "gnu", dwarf, False)
        rows = dwarflines.lines(str(objs[1]), ".text", [0, 4, 8, 12, 16, 20])
        assert {o: line for o, (_f, line) in rows.items()} == \
            {0: 5, 4: 6, 8: 7, 12: 8, 16: 9}, rows
        syms = subprocess.run(["aarch64-linux-gnu-nm", image], capture_output=True,
                              text=True, check=True).stdout.split()
        at = int(syms[syms.index("asm_add") - 2], 16)
        rows = dwarflines.lines(str(image), "", [at + 16])
        assert rows == {at + 16: (str(tmp_path / "src" / "add.S"), 9)}


def test_compressed_debug_sections_are_read_by_pyelftools(tmp_path):
    """Compressed DWARF (-gz) is not read by the fast reader: sources.rows gives what
    pyelftools gives."""
    objs, image = _build(tmp_path, "gnu", 5, False, extra=["-gz=zlib"],
                         ld_flags=["--compress-debug-sections=zlib"])
    for path, section in ((objs[0], ".text"), (image, "")):
        offsets = list(range(0, 256)) if section else \
            [a for _n, addr, size in _exec_sections(image) for a in range(addr, addr + size)]
        with pytest.raises(dwarflines.Unsupported):
            dwarflines.lines(str(path), section, offsets)
        rows = sources.rows(str(path), section, offsets)
        assert rows and rows == sources.rows_pyelftools(str(path), section, offsets)


def test_damaged_line_table_gives_what_pyelftools_gives(tmp_path):
    """A line program cut short: the fast reader fails, and the answer is pyelftools'."""
    objs, _image = _build(tmp_path, "gnu", 5, False)
    data = bytearray(objs[0].read_bytes())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    heads = [struct.unpack_from("<IIQQQQ", data, shoff + 64 * i) for i in range(shnum)]
    strtab = bytes(data[heads[shstrndx][4]:])
    line = next(h for h in heads if strtab[h[0]:].startswith(b".debug_line\0"))
    # The unit's length says it goes on well past the section's end.
    struct.pack_into("<I", data, line[4], line[5] + 4096)
    bad = tmp_path / "bad.o"
    bad.write_bytes(bytes(data))
    offsets = list(range(0, 64))
    with pytest.raises(Exception):  # noqa: B017 - any failure: bytes that end too soon
        dwarflines.lines(str(bad), ".text", offsets)
    assert sources.rows(str(bad), ".text", offsets) == \
        sources.rows_pyelftools(str(bad), ".text", offsets)


@pytest.mark.kernel_build
def test_debian_vmlinux_sites_as_pyelftools_reads_them():
    """On Debian's vmlinux (DWARF 5 by GCC 12, 2,277 units), a sample of the alternative
    sites and the addresses beside them."""
    from tests.test_kernel import full_kernel

    kdir = full_kernel()
    if kdir is None or not (kdir / "vmlinux").exists():
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    vmlinux = kdir / "vmlinux"
    proc = subprocess.run([sys.executable, "-m", "altlink", "manifest", vmlinux],
                          capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr
    sites = sorted(int(e["site"]["address"], 16) for e in json.loads(proc.stdout)["entries"])
    sample = sorted({a + d for a in sites[::200] for d in (-4, 0, 2, 4)})
    rows = _same(vmlinux, "", sample)
    assert len(rows) > len(sample) // 2


@pytest.mark.skipif(not shutil.which("ld.lld"), reason="no ld.lld")
@pytest.mark.parametrize("toolchain", ["gnu", "llvm"])
def test_two_units_at_one_address(tmp_path, toolchain):
    """An overlay links two units' code at one address: both line tables cover it (clang
    writes no .debug_aranges, so both units are read; GCC's name both). The answer is the
    later unit's, as pyelftools' reading gives it."""
    one = write(tmp_path / "one.c", "int one(int x)\n{\n\treturn x * 7 + 1;\n}\n")
    two = write(tmp_path / "two.c", "int two(int x)\n{\n\tif (x > 3)\n\t\treturn x - 3;\n"
                "\treturn x * 5;\n}\n")
    objs = [compile(src, src.with_suffix(".o"), toolchain, ["-g"]) for src in (one, two)]
    script = write(tmp_path / "ov.ld", """SECTIONS {
  OVERLAY 0x400000 : AT(0x10000) { .ov1 { *one.o(.text) } .ov2 { *two.o(.text) } }
  /DISCARD/ : { *(.eh_frame .note.gnu.property .comment) }
}
""")
    image = link(objs, tmp_path / "ov.elf", toolchain, script, flags=["-e", "0"])
    rows = _same(image, "", list(range(0x400000 - 8, 0x400000 + 0x20)))
    assert rows and {f for f, _ in rows.values()} == {str(two)}, rows
