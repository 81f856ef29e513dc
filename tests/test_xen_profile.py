"""The ``xen-v4.17`` profile: Xen's arm patcher (``get_alt_insn()`` in
``xen/arch/arm/alternative.c``) marks callbacks as ``linux-v4.17`` does (``cap == ARM_NCAPS``)
but re-encodes only the immediate branches: an ADRP in a replacement is copied unchanged and
points at the wrong page at the site. Objects made by the GNU assembler from Xen's own entry
macro text, linked by GNU ld with a script laid out as Xen's ``xen.lds.S`` (the table merged
into ``.init.data`` between ``__alt_instructions`` and ``__alt_instructions_end``, the
replacements after ``_einittext``). tests/test_xen_build.py does the same on a real Xen build.
"""
from __future__ import annotations

import json

from toolchain import GNU_CC, GNU_LD, altlink, run, write

NCAPS = 18  # ARM_NCAPS of Xen 4.17

# Xen's ALTINSTR_ENTRY and alternative_cb, written out: a static entry whose CBNZ leaves the
# replacement (Xen re-encodes it), a callback, and, with -DWITH_ADRP, an ADRP.
ENTRIES_S = r"""
	.macro entry orig, repl, cap, olen, rlen
	.pushsection .altinstructions, "a"
	.word \orig - .
	.word \repl - .
	.hword \cap
	.byte \olen
	.byte \rlen
	.popsection
	.endm

	.text
	.globl _start
	.type _start, %function
_start:
1:	nop
2:	entry 1b, 3f, 3, 2b - 1b, 4f - 3f
	.pushsection .altinstr_replacement, "ax"
3:	cbnz x0, out
4:	.popsection
5:	b 6f
6:	entry 5b, wa_callback, 18, 6b - 5b, 0
#ifdef WITH_ADRP
7:	mov x0, #0
8:	entry 7b, 9f, 5, 8b - 7b, 10f - 9f
	.pushsection .altinstr_replacement, "ax"
9:	adrp x0, target
10:	.popsection
#endif
out:	ret
	.size _start, . - _start

	.globl wa_callback
	.type wa_callback, %function
wa_callback:
	ret
	.size wa_callback, . - wa_callback

	.data
target:	.quad 0
"""

XEN_LDS = """
ENTRY(_start)
SECTIONS
{
	. = 0x200000;
	.text : { _stext = .; *(.text) _etext = .; }
	. = ALIGN(4096);
	.init.text : {
		_sinittext = .; *(.init.text) _einittext = .;
		. = ALIGN(4096);
		*(.altinstr_replacement)
	}
	. = ALIGN(4096);
	.init.data : {
		*(.init.data)
		. = ALIGN(4);
		__alt_instructions = .;
		*(.altinstructions)
		__alt_instructions_end = .;
	}
	.data : { *(.data) }
	/DISCARD/ : { *(.eh_frame .note.gnu.property) }
}
"""

ADRP_LINE = "xen-v4.17's patcher copies ADRP unchanged"


def _objects(tmp_path):
    src = write(tmp_path / "entries.S", ENTRIES_S)
    write(tmp_path / "xen.lds", XEN_LDS)
    for name, defs in (("good.o", []), ("bad.o", ["-DWITH_ADRP"])):
        run([*GNU_CC, *defs, "-c", src, "-o", tmp_path / name])
    return tmp_path / "good.o", tmp_path / "bad.o"


def test_an_adrp_in_a_replacement_is_alt008_under_xens_patcher_only(tmp_path):
    _objects(tmp_path)
    # NCAPS from the callback's marker (no --ncaps), as under linux-v4.17
    p = altlink("check", "--abi", "xen-v4.17", "bad.o", cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bad.o: error: ALT008: replacement "
                                                   "instruction 0 (adrp x0, #0): "), lines
    assert ADRP_LINE in lines[0] and "[.text+0x8 _start+0x8]" in lines[0], lines[0]
    for args in (["--abi", "xen-v4.17", "--ncaps", NCAPS, "good.o"],
                 ["--abi", "linux-v4.17", "bad.o"]):  # Linux re-encodes the ADRP
        p = altlink("check", *args, cwd=tmp_path)
        assert p.returncode == 0 and p.stdout == "", (args, p.stdout, p.stderr)
    env = {"ALTLINK_ABI": "xen-v4.17"}
    p = altlink("check", "bad.o", cwd=tmp_path, env=env)
    assert p.returncode == 1 and ADRP_LINE in p.stdout, p.stdout + p.stderr


def test_xen_like_link_under_the_profile(tmp_path):
    """Through the launcher with Xen's layout: the image with the ADRP is refused (exit 1,
    no image); the other links, and its manifest has Xen's callback and the CBNZ's fix-up."""
    _objects(tmp_path)
    ld = [*GNU_LD, "-T", "xen.lds", "-N"]
    p = altlink("link", "--abi", "xen-v4.17", "--ncaps", NCAPS, "--manifest-suffix",
                ".alt.json", "--", *ld, "bad.o", "-o", "bad", cwd=tmp_path)
    assert p.returncode == 1 and ADRP_LINE in p.stderr, p.stdout + p.stderr
    assert not (tmp_path / "bad").exists()
    p = altlink("link", "--abi", "xen-v4.17", "--ncaps", NCAPS, "--manifest-suffix",
                ".alt.json", "--", *ld, "good.o", "-o", "good", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    m = json.loads((tmp_path / "good.alt.json").read_text())
    assert m["abi"] == "xen-v4.17" and m["ncaps"] == NCAPS
    static, cb = m["entries"]
    assert static["kind"] == "static" and static["cap"] == 3
    assert [f["kind"] for f in static["replacement"]["fixups"]] == ["cmp19"]
    assert cb["kind"] == "callback" and cb["cap"] is None and cb["cap_raw"] == NCAPS
    assert cb["callback"]["symbol"] == "wa_callback"
    p = altlink("check", "--abi", "xen-v4.17", "good", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == "", p.stdout + p.stderr


def test_no_compact_manifest_under_the_profile(tmp_path):
    """The compact form is for altlink's C runtime (Linux's patching): under xen-v4.17,
    ``altlink manifest --compact`` is one line and exit 2, and writes neither output."""
    _objects(tmp_path)
    run([*GNU_LD, "-T", "xen.lds", "-N", "good.o", "-o", "good"], cwd=tmp_path)
    p = altlink("manifest", "--abi", "xen-v4.17", "--ncaps", NCAPS, "--compact", "good.bin",
                "-o", "good.json", "good", cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == "", p.stdout + p.stderr
    assert p.stderr.splitlines() == [
        "manifest: profile 'xen-v4.17' has no compact form: the compact manifest is for "
        "altlink's C runtime, which patches as Linux does; Xen patches itself"], p.stderr
    assert not (tmp_path / "good.bin").exists() and not (tmp_path / "good.json").exists()
