"""GNU ld's default linker script (``-dT FILE``, ``--default-script FILE``, ``=FILE``, with
one dash or two, and inside ``-Wl,``; Trusted Firmware-A's LTO build links with ``gcc -Wl,-dT
SCRIPT``) is read as ld reads it, as a ``-T`` script: looked for in the ``-L`` directories too,
for the names it defines and the inputs it names (INPUT, GROUP). altlink once read it only where it came as
a word of its own in the directory the link runs in (as a file the linker does not
recognise): a callback that only such a script defines was ALT006, and the link refused,
where ld alone links it."""
from __future__ import annotations

import json

import pytest

from altlink import linkcmd
from tests.toolchain import altlink, run, write

# One function whose alternative is a callback (linux-v6.1: bit 15 of the cap field) named
# cb_alias, which no object defines: the linker script makes it real_cb.
FW_S = """
    .text
    .globl _start
    .type _start, %function
_start:
661: nop
662: ret
    .size _start, .-_start
    .globl real_cb
    .type real_cb, %function
real_cb: ret
    .size real_cb, .-real_cb
    .pushsection .altinstructions, "a"
    .word 661b - .
    .word cb_alias - .
    .hword 0x8001
    .byte 4
    .byte 0
    .popsection
"""
SCRIPT = """
ENTRY(_start)
SECTIONS
{
    . = 0x400000;
    .text : { *(.text .text.*) }
    .altinstructions : { *(.altinstructions) }
    /DISCARD/ : { *(.note.gnu.property) }
}
cb_alias = real_cb;
"""

# (the words naming the script "fw.lds", kept in scripts/ and found through -L scripts)
SPELLINGS = {
    "-dT FILE": ["-dT", "fw.lds"],
    "--dT FILE": ["--dT", "fw.lds"],
    "-dT=FILE": ["-dT=fw.lds"],
    "--dT=FILE": ["--dT=fw.lds"],
    "--default-script FILE": ["--default-script", "fw.lds"],
    "-default-script FILE": ["-default-script", "fw.lds"],
    "--default-script=FILE": ["--default-script=fw.lds"],
    "-default-script=FILE": ["-default-script=fw.lds"],
    "-script=FILE": ["-script=fw.lds"],
    "-Wl,-dT=FILE": ["-Wl,-dT=fw.lds"],
    "-Wl,-dT,FILE": ["-Wl,-dT,fw.lds"],
    "-Wl,--default-script=FILE": ["-Wl,--default-script=fw.lds"],
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_default_script_is_read_as_a_script(tmp_path, spelling):
    """The script is found in the -L directory and read: the name it defines is the link's
    (not ALT006 before the link)."""
    write(tmp_path / "scripts" / "fw.lds", SCRIPT)
    linker = "aarch64-linux-gnu-gcc" if spelling.startswith("-Wl,") else "aarch64-linux-gnu-ld"
    cmd = linkcmd.parse([linker, "-L", str(tmp_path / "scripts"), *SPELLINGS[spelling],
                         str(tmp_path / "fw.o"), "-o", "fw.elf"])
    assert cmd.scripts == ["fw.lds"]
    assert cmd.defined_by_link().get("cb_alias") == str(tmp_path / "scripts" / "fw.lds")


@pytest.mark.parametrize("spelling", ["--default-script=FILE", "-dT FILE", "-Wl,-dT=FILE"])
def test_a_callback_the_default_script_defines_links_clean(tmp_path, spelling):
    """A real link (GNU ld, or the gcc driver with ``-Wl,``), the script in a ``-L``
    directory: altlink links what ld alone links, the callback the script's real_cb."""
    run(["aarch64-linux-gnu-gcc", "-c", write(tmp_path / "fw.S", FW_S), "-o",
         tmp_path / "fw.o"])
    write(tmp_path / "scripts" / "fw.lds", SCRIPT)
    if spelling.startswith("-Wl,"):
        linker = ["aarch64-linux-gnu-gcc", "-nostdlib", "-static"]
    else:
        linker = ["aarch64-linux-gnu-ld"]
    words = [*linker, "-L", "scripts", *SPELLINGS[spelling], "fw.o", "-o", "fw.elf"]
    bare = run([*words[:-1], "bare.elf"], cwd=tmp_path, check=False)
    assert bare.returncode == 0, bare.stderr
    proc = altlink("link", "--abi", "linux-v6.1", "--manifest", "fw.json", "--", *words,
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ALT0" not in proc.stderr
    assert (tmp_path / "fw.elf").read_bytes() == (tmp_path / "bare.elf").read_bytes()
    [entry] = json.loads((tmp_path / "fw.json").read_text())["entries"]
    assert entry["callback"]["symbol"] == "real_cb"
