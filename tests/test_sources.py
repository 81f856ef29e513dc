"""Source positions from DWARF line tables: findings start with ``file:line`` (docs/reference.md, section 3),
and ``--source-lines`` manifests carry ``source`` for each site."""
from __future__ import annotations

import json

from tests.toolchain import LDSCRIPTS, altlink, compile, write

BAD_C = """#define ALT_NCAPS 2
#include <altlink/alternative.h>

int f(void)
{
	int x;
	asm volatile(ALTERNATIVE("mov %w0, #0", "adr %x0, .", 1) : "=r"(x));
	return x;
}

int g(void)
{
	int y;
	asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", 1) : "=r"(y));
	return y;
}

void _start(void) { for (;;) f(); }
"""

LDS = """ENTRY(_start)
SECTIONS { . = 0x400000; .text : { *(.text .text.*) } INCLUDE alternatives.ld
  /DISCARD/ : { *(.eh_frame .note.gnu.property) } }
"""


def test_object_finding_starts_with_the_source_line(tmp_path):
    for toolchain in ("gnu", "llvm"):
        obj = compile(write(tmp_path / "src" / "bad.c", BAD_C), tmp_path / f"bad-{toolchain}.o",
                      toolchain, flags=["-g", "-ffunction-sections"])
        proc = altlink("check", obj.name, cwd=tmp_path)
        assert proc.returncode == 1
        line = proc.stdout.strip()
        assert line.startswith("src/bad.c:7: error: ALT008:"), (toolchain, line)
        assert f"[bad-{toolchain}.o .text.f+0x" in line or f"[bad-{toolchain}.o .text.f " in line


def test_without_debug_info_the_object_comes_first(tmp_path):
    obj = compile(write(tmp_path / "bad.c", BAD_C), tmp_path / "bad.o")
    proc = altlink("check", obj.name, cwd=tmp_path)
    assert proc.stdout.startswith("bad.o: error: ALT008:")


def test_link_and_manifest_source_lines(tmp_path):
    good = BAD_C.replace('"adr %x0, ."', '"mov %w0, #2"')
    obj = compile(write(tmp_path / "src" / "good.c", good), tmp_path / "good.o", flags=["-g"])
    script = write(tmp_path / "fw.ld", LDS)
    (tmp_path / "out").mkdir()
    proc = altlink("link", "-o", "fw.elf", "--manifest", "out/fw.alt.json", "--source-lines",
                   "--", "aarch64-linux-gnu-ld", f"-L{LDSCRIPTS}", "-T", script, obj, "-o",
                   "fw.elf", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "out" / "fw.alt.json").read_text())
    # Paths relative to the manifest's directory.
    assert {e["site"]["source"] for e in m["entries"]} == {"../src/good.c:7", "../src/good.c:14"}
    proc = altlink("manifest", tmp_path / "fw.elf", cwd=tmp_path)
    assert all("source" not in e["site"] for e in json.loads(proc.stdout)["entries"])


def test_post_link_finding_names_the_source(tmp_path):
    """ALT009 is found in the linked image (a temporary file until the link succeeds): its
    source line still comes from the image's line table."""
    far = BAD_C.replace('"adr %x0, ."', '"b _start"')
    obj = compile(write(tmp_path / "src" / "far.c", far), tmp_path / "far.o", flags=["-g"])
    lds = write(tmp_path / "far.ld", """ENTRY(_start)
SECTIONS { . = 0x400000; .text : { *(.text .text.*) }
  . = 0x10400000; .altinstr_replacement : { KEEP(*(.altinstr_replacement)) }
  .altinstructions : { KEEP(*(.altinstructions)) }
  /DISCARD/ : { *(.eh_frame .note.gnu.property) } }
""")
    proc = altlink("link", "-o", "fw.elf", "--", "aarch64-linux-gnu-ld", "-T", lds, obj, "-o",
                   "fw.elf", cwd=tmp_path)
    assert proc.returncode == 1
    assert "src/far.c:7: error: ALT009:" in proc.stderr, proc.stderr
    assert not (tmp_path / "fw.elf").exists()
