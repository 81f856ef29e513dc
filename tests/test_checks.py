"""The checks of docs/reference.md, section 3 (ALT001-ALT012, ALT015, and ALT009/ALT017/ALT018 on linked
images), driven through ``altlink check`` on inputs built by the real AArch64 toolchain.

Every broken input is a hand-written ``.altinstructions`` entry in assembly, built to trigger
exactly one code: each test asserts that the set of codes reported is exactly that code, and
that the message and the place name the right thing. The clean inputs (good static entries,
internal and outward branches, ADRP, callbacks resolved in the link set or through
``--symbols-from``) must report nothing.
"""
from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from toolchain import LDSCRIPTS, compile, link, write

from altlink import cli

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed",
)

V417 = ("--abi", "linux-v4.17", "--ncaps", "4")  # capabilities 0..3; 4 marks a callback
V61 = ("--abi", "linux-v6.1")
PROFILES = {"v4.17": V417, "v6.1": V61}
CB = {"v4.17": "4", "v6.1": "0x8001"}  # the cap field of a callback entry, per profile
CMPBR = 0x74000040  # FEAT_CMPBR "cbgt w0, w0, #+8" (binutils 2.40 has no mnemonic for it)
BC_ARCH = ".arch armv8.8-a\n"  # BC.cond is FEAT_HBC

# The entry macro and a function with three one-instruction sites at .text+0, +4, +8.
PRELUDE = """\
	.macro ent site, repl, cap, olen, alen
	.pushsection .altinstructions, "a"
	.word \\site - .
	.word \\repl - .
	.hword \\cap
	.byte \\olen
	.byte \\alen
	.popsection
	.endm

	.text
	.balign 4
	.globl func
	.type func, %function
func:
site0:	nop
site1:	nop
site2:	nop
	ret
	.size func, . - func
"""

CALLBACK = """\
	.text
	.globl my_cb
	.type my_cb, %function
my_cb:	ret
	.size my_cb, . - my_cb
"""


def repl(label: str, *insns: str, section: str = '.altinstr_replacement, "ax"') -> str:
    """A replacement block at ``label`` in ``section``."""
    body = "".join(f"\t{i}\n" for i in insns)
    return f"\t.pushsection {section}\n\t.balign 4\n{label}:\n{body}\t.popsection\n"


def build(tmp: Path, name: str, body: str, prelude: bool = True, flags=()) -> Path:
    """Assemble ``body`` (after the prelude) with gcc/GNU as into ``tmp/name.o``."""
    src = write(tmp / f"{name}.S", (PRELUDE if prelude else "") + body)
    return compile(src, tmp / f"{name}.o", flags=flags)


def check(*args) -> tuple[int, list[dict]]:
    """``altlink check --format json ARGS``: the exit code and the findings."""
    out = io.StringIO()
    rc = cli.main(["check", "--format", "json", *map(str, args)], out=out)
    return rc, json.loads(out.getvalue())["findings"]


def codes(findings: list[dict]) -> set[str]:
    return {f["code"] for f in findings}


def assert_clean(*args) -> None:
    rc, found = check(*args)
    assert found == [], found
    assert rc == 0


def assert_only(code: str, *args, message: str = "", place: str = "", count: int | None = None,
                severity: str = "error") -> list[dict]:
    """Exactly ``code`` is reported; every finding's message and place contain the texts."""
    rc, found = check(*args)
    assert codes(found) == {code}, found
    for f in found:
        assert message in f["message"], f
        assert place in f["place"], f
        assert f["severity"] == severity, f
    if count is not None:
        assert len(found) == count, found
    assert rc == (1 if severity == "error" else 0)
    return found


# ---- one broken entry per object: exactly one code --------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    code: str
    body: str
    args: tuple = V417
    message: str = ""
    place: str = ""
    flags: tuple = ()


R0 = repl("r0", "movz x0, #1")
R0_8 = repl("r0", "movz x0, #1", "movz x1, #2")

BAD = [
    # ALT001: the .org constraint
    Bad("alt001-longer", "ALT001", R0_8 + "\tent site0, r0, 1, 4, 8\n",
        message="replacement is 8 bytes, site is 4 (cap 1)", place=".text+0x0 func"),
    Bad("alt001-shorter-v61", "ALT001", R0 + "\tent site1, r0, 2, 8, 4\n", V61,
        message="replacement is 4 bytes, site is 8 (cap 2)", place=".text+0x4 site1"),
    # ALT002: a callback with a replacement length
    Bad("alt002-v417", "ALT002", CALLBACK + "\tent site0, my_cb, 4, 4, 4\n",
        message="callback entry has alt_len 4, must be 0", place=".text+0x0 func"),
    Bad("alt002-v61", "ALT002", CALLBACK + "\tent site2, my_cb, 0x8001, 4, 8\n", V61,
        message="callback entry has alt_len 8, must be 0", place=".text+0x8 site2"),
    # ALT003: site length and alignment
    Bad("alt003-len6", "ALT003", R0_8 + "\tent site0, r0, 1, 6, 6\n",
        message="site length 6 is not a non-zero multiple of 4", place=".text+0x0 func"),
    Bad("alt003-len0-callback", "ALT003", CALLBACK + "\tent site1, my_cb, 4, 0, 0\n",
        message="site length 0 is not a non-zero multiple of 4", place=".text+0x4 site1"),
    Bad("alt003-unaligned", "ALT003", R0 + "\tent site0+2, r0, 1, 4, 4\n",
        message="site is not 4-byte aligned", place=".text+0x2 func+0x2"),
    # ALT004: the site is not code
    Bad("alt004-data", "ALT004", R0 + "\t.data\nd_site:\t.word 0\n\tent d_site, r0, 1, 4, 4\n",
        message="site is in .data, not in an executable section", place=".data+0x0 d_site"),
    Bad("alt004-rodata", "ALT004",
        R0 + '\t.section .rodata, "a"\nro_site:\t.word 0\n\tent ro_site, r0, 1, 4, 4\n',
        message="site is in .rodata", place=".rodata+0x0 ro_site"),
    Bad("alt004-undefined", "ALT004", R0 + "\tent ext_site, r0, 1, 4, 4\n",
        message="site is at undefined symbol ext_site", place=".altinstructions entry 0"),
    Bad("alt004-past-end", "ALT004", R0_8 + "\tent site2+4, r0, 1, 8, 8\n",
        message="site runs past the end of .text (0x10 bytes)", place=".text+0xc site2+0x4"),
    Bad("alt004-before-start", "ALT004", R0 + "\tent func-8, r0, 1, 4, 4\n",
        message="site is 0x8 bytes before the start of .text"),
    # ALT005: the replacement is not code, or runs past its section
    Bad("alt005-data", "ALT005", "\t.data\nd_repl:\tmovz x0, #1\n\tent site0, d_repl, 1, 4, 4\n",
        message="replacement is in .data, not in .altinstr_replacement or an executable "
        "section", place=".text+0x0 func"),
    Bad("alt005-past-end", "ALT005", R0 + "\tent site0, r0, 1, 8, 8\n",
        message="runs past the end of .altinstr_replacement (0x4 bytes)"),
    Bad("alt005-before-start", "ALT005", R0 + "\tent site0, r0-8, 1, 4, 4\n",
        message="replacement is 0x8 bytes before the start of .altinstr_replacement"),
    Bad("alt005-undefined", "ALT005", "\tent site0, ext_repl, 1, 4, 4\n",
        message="replacement is undefined symbol ext_repl"),
    # ALT006: a callback nowhere in the link set
    Bad("alt006-v417", "ALT006", "\tent site0, missing_cb, 4, 4, 0\n",
        message="callback missing_cb is not defined in the link set",
        place=".altinstructions entry 0"),
    Bad("alt006-v61", "ALT006", R0 + "\tent site0, r0, 1, 4, 4\n"
        "\tent site1, missing_cb, 0x8002, 4, 0\n", V61,
        message="callback missing_cb is not defined in the link set",
        place=".altinstructions entry 1"),
    # ALT007: the callback is data
    Bad("alt007-data-object", "ALT007",
        "\t.data\n\t.globl cb_data\n\t.type cb_data, %object\ncb_data:\t.xword 0\n"
        "\t.size cb_data, 8\n\tent site0, cb_data, 4, 4, 0\n",
        message="callback cb_data is in .data, not an executable section",
        place=".text+0x0 func"),
    Bad("alt007-local-data", "ALT007",
        "\t.data\n\t.type cb_local, %object\ncb_local:\t.xword 0\n"
        "\tent site0, cb_local, 0x8000, 4, 0\n", V61,
        message="callback cb_local is in .data, not an executable section"),
    Bad("alt007-object-in-text", "ALT007",
        "\t.text\n\t.globl cb_obj\n\t.type cb_obj, %object\ncb_obj:\tret\n"
        "\t.size cb_obj, 4\n\tent site0, cb_obj, 4, 4, 0\n",
        message="callback cb_obj is not a function (symbol type STT_OBJECT)"),
    # ALT008: BC.cond assembled with -march=armv8.8-a (FEAT_HBC); more ALT008 cases below
    Bad("alt008-bc-cond-march", "ALT008", repl("r0", "bc.ne func") + "\tent site2, r0, 1, 4, 4\n",
        V61, message="linux-v6.1's patcher copies BC.cond unchanged", place=".text+0x8 site2",
        flags=("-march=armv8.8-a",)),
    # ALT010: overlapping sites (identical ranges: a warning, tested below)
    Bad("alt010-overlap", "ALT010", R0_8 + repl("r1", "movz x2, #3")
        + "\tent site0, r0, 1, 8, 8\n\tent site1, r1, 2, 4, 4\n",
        message="entries 0 and 1 patch overlapping sites", place=".text+0x4 site1"),
    # ALT011: capability numbers
    Bad("alt011-ncaps", "ALT011", R0 + "\tent site0, r0, 5, 4, 4\n",
        message="capability 5 is not in the table (NCAPS 4)", place=".text+0x0 func"),
    Bad("alt011-v61-ncaps", "ALT011", R0 + "\tent site0, r0, 3, 4, 4\n",
        (*V61, "--ncaps", "3"), message="capability 3 is not in the table (NCAPS 3)"),
    Bad("alt011-v61-callback-cap", "ALT011", CALLBACK + "\tent site0, my_cb, 0x8007, 4, 0\n",
        (*V61, "--ncaps", "4"), message="capability 7 is not in the table (NCAPS 4)"),
    Bad("alt011-marker-disagrees", "ALT011", CALLBACK + "\tent site0, my_cb, 4, 4, 0\n",
        ("--ncaps", "3"), message="looks like a callback (my_cb) with marker 4, but NCAPS is 3"),
    # ALT012: a malformed table
    Bad("alt012-size", "ALT012", R0 + "\tent site0, r0, 1, 4, 4\n"
        '\t.pushsection .altinstructions, "a"\n\t.byte 0\n\t.popsection\n',
        message=".altinstructions is 13 bytes, not a multiple of 12"),
    Bad("alt012-abs32", "ALT012", R0 + '\t.pushsection .altinstructions, "a"\n'
        "\t.word site0\n\t.word r0 - .\n\t.hword 1\n\t.byte 4, 4\n\t.popsection\n",
        message="site relocation is R_AARCH64_ABS32, expected R_AARCH64_PREL32",
        place=".altinstructions entry 0"),
    Bad("alt012-no-reloc", "ALT012", R0 + '\t.pushsection .altinstructions, "a"\n'
        "\t.word site0 - .\n\t.word 0\n\t.hword 1\n\t.byte 4, 4\n\t.popsection\n",
        message="no relocation for the replacement offset"),
    Bad("alt012-not-alloc", "ALT012", R0 + '\t.section .altinstructions, ""\n'
        "\t.word site0 - .\n\t.word r0 - .\n\t.hword 1\n\t.byte 4, 4\n",
        message=".altinstructions is not allocated"),
    Bad("alt012-nobits", "ALT012", '\t.section .altinstructions, "a", %nobits\n\t.skip 24\n',
        message=".altinstructions has no contents (NOBITS)", place="section 4 .altinstructions"),
    # ALT005 for a replacement with no contents (an executable NOBITS section)
    Bad("alt005-nobits", "ALT005", '\t.section .altrepl_bss, "ax", %nobits\nr0:\t.skip 8\n'
        "\tent site0, r0, 1, 4, 4\n", message="replacement is in .altrepl_bss, which has no "
        "contents (NOBITS)", place=".text+0x0 func"),
    # ALT015: a module's own callback (with --module; .modinfo is tested below)
    Bad("alt015-global", "ALT015", CALLBACK + "\tent site0, my_cb, 4, 4, 0\n",
        (*V417, "--module"), message="callback my_cb is defined by the module itself (Linux "
        "rejects such modules at load)",
        place=".text+0x0 func"),
    Bad("alt015-local-v61", "ALT015",
        "\t.text\n\t.type local_cb, %function\nlocal_cb:\tret\n\t.size local_cb, 4\n"
        "\tent site1, local_cb, 0x8002, 4, 0\n", (*V61, "--module"),
        message="callback local_cb is defined by the module itself", place=".text+0x4 site1"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_one_broken_entry_reports_exactly_its_code(tmp_path, case):
    o = build(tmp_path, "bad", case.body, flags=case.flags)
    found = assert_only(case.code, *case.args, o, message=case.message, place=case.place)
    assert all(f["file"] == str(o) for f in found)


# ---- ALT008: instructions that cannot be moved, or that the profile's patcher mishandles ------

# (replacement instruction, the name altlink gives it, extra assembler text)
IMMOVABLE = [
    ("adr x0, func", "adr"),
    ("adr x0, .", "adr"),  # a target inside the replacement: still an error (docs/reference.md, section 2)
    ("ldr x0, func", "ldr-literal"),
    ("ldr w0, func", "ldr-literal"),
    ("ldrsw x0, func", "ldrsw-literal"),
    ("prfm pldl1keep, func", "prfm-literal"),
    ("ldr q0, func", "ldr-literal-simd"),
    ("ldr q0, 1f\n1:", "ldr-literal-simd"),  # the end of the replacement: still an error
    ("ldr d0, func", "ldr-literal-simd"),
    ("ldr s0, func", "ldr-literal-simd"),
    (f".inst {CMPBR:#x}", "cbcc"),
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("insn,name", IMMOVABLE,
                         ids=[n + "-" + i.split()[-1].replace(":", "") for i, n in IMMOVABLE])
def test_alt008_immovable_instruction(tmp_path, insn, name, profile):
    o = build(tmp_path, "imm", repl("r0", "nop", insn) + "\tent site0, r0, 1, 8, 8\n")
    found = assert_only("ALT008", *PROFILES[profile], o, place=".text+0x0 func", count=1)
    assert f"replacement instruction 1 ({name}," in found[0]["message"]


@pytest.mark.parametrize("profile", PROFILES)
def test_alt008_bc_cond_outward_under_both_profiles(tmp_path, profile):
    """Linux 4.17 to 6.1 copy BC.cond unchanged: outward, it is an error under both."""
    o = build(tmp_path, "bc", BC_ARCH + repl("r0", "bc.eq func") + "\tent site1, r0, 1, 4, 4\n")
    found = assert_only("ALT008", *PROFILES[profile], o, place=".text+0x4 site1", count=1)
    assert "BC.cond unchanged" in found[0]["message"]
    assert f"linux-{profile}'s patcher" in found[0]["message"]


@pytest.mark.parametrize("profile", PROFILES)
def test_alt008_bc_cond_via_inst(tmp_path, profile):
    # bc.ne +0x100 (outside a 4-byte replacement), written as a word: 0x54000000 | imm19 | 0x10 | cond
    word = 0x54000000 | ((0x100 >> 2) << 5) | 0x10 | 0x1
    o = build(tmp_path, "bc", repl("r0", f".inst {word:#x}") + "\tent site1, r0, 1, 4, 4\n")
    assert_only("ALT008", *PROFILES[profile], o, message="BC.cond unchanged", count=1)


@pytest.mark.parametrize("profile", PROFILES)
def test_bc_cond_inside_the_replacement_is_clean(tmp_path, profile):
    o = build(tmp_path, "bc", BC_ARCH + repl("r0", "bc.eq 1f", "nop", "1:")
              + "\tent site0, r0, 1, 8, 8\n")
    assert_clean(*PROFILES[profile], o)


# ---- ALT010: overlap (error) against the same range (warning) -------------------------------


def test_alt010_identical_range_is_a_warning(tmp_path):
    o = build(tmp_path, "same", R0 + repl("r1", "movz x0, #2")
              + "\tent site1, r0, 1, 4, 4\n\tent site1, r1, 2, 4, 4\n")
    assert_only("ALT010", *V417, o, severity="warning", count=1, place=".text+0x4 site1",
                message="entries 0 and 1 patch the same site; the later one wins")


def test_alt010_across_sections_and_adjacent_sites_is_clean(tmp_path):
    o = build(tmp_path, "adj", R0_8 + repl("r1", "movz x0, #2")
              + "\tent site0, r0, 1, 8, 8\n\tent site2, r1, 2, 4, 4\n")
    assert_clean(*V417, o)


IDMAP = """\
	.pushsection ".idmap.text", "a"
	.globl idmap_func
	.type idmap_func, %function
idmap_func:
id_site:	nop
	ret
id_repl:	movz x0, #1
	.size idmap_func, . - idmap_func
	.popsection
"""


def test_code_in_a_read_only_section_the_assembler_marked_as_code_is_clean(tmp_path):
    """Linux 6.12 assembles ``.idmap.text`` as "a", not "ax" (code that runs only through the
    identity map; its linker script puts it in ``.rodata.text``), with alternatives in it: a
    site and a replacement there are code by the assembler's ``$x`` mapping symbol. A
    read-only section of data (``alt004-rodata``) and code in ``.data`` (``alt005-data``)
    are still ALT004 and ALT005."""
    o = build(tmp_path, "idmap", IDMAP + R0 + "\tent id_site, r0, 1, 4, 4\n"
              "\tent site0, id_repl, 2, 4, 4\n")
    assert_clean(*V417, o)
    clang = compile(write(tmp_path / "idmap_clang.S", PRELUDE + IDMAP + R0
                          + "\tent id_site, r0, 1, 4, 4\n"), tmp_path / "idmap_clang.o",
                    toolchain="llvm")
    assert_clean(*V417, clang)


# ---- ALT011: capability tables (text and header form), NCAPS ----------------------------------

CAPS_TEXT = "# capabilities\nHAS_FOO\n\nHAS_BAR   # two\nHAS_BAZ\n"
CAPS_HEADER = ("#ifndef CAPS_H\n#define CAPS_H\n#define ALT_CAP_HAS_FOO 0\n#define ALT_CAP_HAS_BAR 1\n"
               "#define ALT_CAP_HAS_BAZ 2\n#define ALT_NCAPS 3\n#endif\n")


@pytest.fixture(params=["text", "header"])
def cap_table(request, tmp_path) -> Path:
    if request.param == "text":
        return write(tmp_path / "caps.txt", CAPS_TEXT)
    return write(tmp_path / "caps.h", CAPS_HEADER)


def test_cap_table_names_the_capability(tmp_path, cap_table):
    o = build(tmp_path, "a", R0_8 + "\tent site0, r0, 1, 4, 8\n")
    assert_only("ALT001", "--cap-table", cap_table, o, message="(cap 1 HAS_BAR)")


def test_alt011_cap_beyond_the_table(tmp_path, cap_table):
    o = build(tmp_path, "a", R0 + repl("r1", "nop")
              + "\tent site0, r0, 2, 4, 4\n\tent site1, r1, 7, 4, 4\n")
    assert_only("ALT011", "--cap-table", cap_table, o, count=1, place=".text+0x4 site1",
                message="capability 7 is not in the table (NCAPS 3)")


def test_alt011_v61_cap_beyond_the_table(tmp_path, cap_table):
    o = build(tmp_path, "a", CALLBACK + R0 + "\tent site0, r0, 2, 4, 4\n"
              "\tent site1, my_cb, 0x8002, 4, 0\n\tent site2, my_cb, 0x8003, 4, 0\n")
    assert_only("ALT011", *V61, "--cap-table", cap_table, o, count=1, place=".text+0x8 site2",
                message="capability 3 is not in the table (NCAPS 3)")


def test_alt011_table_contradicts_the_callback_entries(tmp_path, cap_table):
    """Objects built with ALT_NCAPS=4 checked against a table of 3: the callbacks' marker
    (4) is not NCAPS, so the table and the code disagree."""
    o = build(tmp_path, "a", CALLBACK + "\tent site0, my_cb, 4, 4, 0\n\tent site1, my_cb, 4, 4, 0\n")
    assert_only("ALT011", "--cap-table", cap_table, o, count=2,
                message="looks like a callback (my_cb) with marker 4, but NCAPS is 3")


def test_alt011_ncaps_option_contradicts_the_table(tmp_path, cap_table):
    o = build(tmp_path, "a", R0 + "\tent site0, r0, 2, 4, 4\n")
    found = assert_only("ALT011", "--cap-table", cap_table, "--ncaps", "5", o, count=1,
                        message="--ncaps 5 contradicts the capability table")
    assert found[0]["file"] == str(cap_table)


def test_cap_table_matching_the_entries_is_clean(tmp_path, cap_table):
    o = build(tmp_path, "a", CALLBACK + R0 + "\tent site0, r0, 2, 4, 4\n"
              "\tent site1, my_cb, 3, 4, 0\n")
    assert_clean("--cap-table", cap_table, o)


def scan_json(*args, rc: int = 0) -> dict:
    out = io.StringIO()
    assert cli.main(["scan", "--format", "json", *map(str, args)], out=out) == rc
    return json.loads(out.getvalue())


def test_ncaps_inferred_from_the_callback_entries(tmp_path):
    """No table, no --ncaps: callbacks (alt_len 0, a named symbol) all carry NCAPS."""
    o = build(tmp_path, "a", CALLBACK + R0 + "\tent site0, r0, 2, 4, 4\n"
              "\tent site1, my_cb, 5, 4, 0\n\tent site2, my_cb, 5, 4, 0\n")
    assert_clean(o)
    scanned = scan_json(o)
    assert scanned["ncaps"] == 5
    assert [e["kind"] for e in scanned["files"][0]["entries"]] == ["static", "callback", "callback"]
    # ... and a capability at or beyond the inferred NCAPS is reported
    bad = build(tmp_path, "b", CALLBACK + repl("r0", "nop") + "\tent site0, r0, 6, 4, 4\n"
                "\tent site1, my_cb, 5, 4, 0\n")
    assert_only("ALT011", bad, count=1, message="capability 6 is not in the table (NCAPS 5)")


# ---- ALT012: relocations and flags ---------------------------------------------------------------


def test_alt012_abs64_relocation_in_the_table(tmp_path):
    """``.xword site`` puts an R_AARCH64_ABS64 over both offset fields."""
    o = build(tmp_path, "a", R0 + '\t.pushsection .altinstructions, "a"\n'
              "\t.xword site0\n\t.hword 1\n\t.byte 4, 4\n\t.popsection\n")
    found = assert_only("ALT012", *V417, o, count=2, place=".altinstructions entry 0")
    msgs = sorted(f["message"] for f in found)
    assert "R_AARCH64_ABS64, expected R_AARCH64_PREL32" in msgs[1]
    assert "no relocation for the replacement offset" in msgs[0]


def test_alt012_inputs_disagree_on_table_flags(tmp_path):
    a = build(tmp_path, "a", R0 + "\tent site0, r0, 1, 4, 4\n")
    b = build(tmp_path, "b", repl("r0", "nop") + '\t.pushsection .altinstructions, "aw"\n'
              "\t.word site0 - .\n\t.word r0 - .\n\t.hword 1\n\t.byte 4, 4\n\t.popsection\n")
    found = assert_only("ALT012", *V417, a, b, count=1,
                        message="inputs disagree on the flags of .altinstructions")
    assert f'"a" in {a}' in found[0]["message"] and f'"aw" in {b}' in found[0]["message"]
    assert_clean(*V417, a, a)  # the same flags twice: fine


# ---- ALT015: modules -------------------------------------------------------------------------

# What modpost's *.mod.c adds to every module: its struct module.
THIS_MODULE = '\t.section .gnu.linkonce.this_module, "aw"\n\t.zero 64\n\t.text\n'
MODINFO = '\t.section .modinfo, "a"\n\t.asciz "license=GPL"\n\t.text\n'


def test_alt015_automatic_for_an_object_with_the_module_structure(tmp_path):
    o = build(tmp_path, "mod", THIS_MODULE + CALLBACK + "\tent site0, my_cb, 4, 4, 0\n")
    assert_only("ALT015", *V417, o, count=1, message="callback my_cb is defined by the module itself")
    plain = build(tmp_path, "plain", CALLBACK + "\tent site0, my_cb, 4, 4, 0\n")
    assert_clean(*V417, plain)  # the same object, not a module: fine


def test_modinfo_alone_is_kernel_code(tmp_path):
    """Built-in modules keep their .modinfo in vmlinux (Linux 5.2 and later): an object with
    .modinfo and no module structure is part of the kernel, and its callbacks are its own."""
    o = build(tmp_path, "builtin", MODINFO + CALLBACK + "\tent site0, my_cb, 4, 4, 0\n")
    assert_clean(*V417, o)


def test_alt015_callback_in_another_object_of_the_module(tmp_path):
    """A module linked from several objects: the callback is still the module's own."""
    a = build(tmp_path, "a", "\tent site0, my_cb, 4, 4, 0\n")
    b = build(tmp_path, "b", CALLBACK, prelude=False)
    assert_only("ALT015", *V417, "--module", a, b, count=1,
                message="callback my_cb is defined by the module itself (Linux rejects such "
                "modules at load)")
    assert_clean(*V417, a, b)  # the same link set as a kernel: fine


def test_module_callback_from_the_kernel_is_clean(tmp_path):
    kernel = link([build(tmp_path, "k", CALLBACK.replace("my_cb:", "_start:\n\tret\nmy_cb:"),
                         prelude=False)], tmp_path / "vmlinux")
    mod = build(tmp_path, "mod", MODINFO + "\tent site0, my_cb, 4, 4, 0\n")
    assert_clean(*V417, "--symbols-from", kernel, mod)
    assert_only("ALT006", *V417, mod, message="callback my_cb is not defined")


# ---- clean inputs: nothing to report -----------------------------------------------------------


def clean_source(profile: str) -> str:
    """Good entries of every form, one per site: static entries with replacements in
    .altinstr_replacement, a later subsection of .text and another executable section;
    internal branches (to the end of the replacement too: the end is inclusive); outward
    branches of every kind; ADRP + ADD; callbacks defined in another object (cb_other)."""
    cb = (lambda cap: f"{0x8000 | cap:#x}") if profile == "v6.1" else (lambda cap: "4")
    forms = [  # (replacement instructions, where)
        (("movz x0, #1",), '.altinstr_replacement, "ax"'),
        (("movz x0, #1", "movz x1, #2"), '.altinstr_replacement, "ax"'),
        (("movz x0, #2",), ".text, 1"),  # Linux 5.8+: a later subsection of the text
        (("movz x0, #3",), '.text.alt, "ax"'),
        (("b 1f", "nop", "1:"), '.altinstr_replacement, "ax"'),
        (("cbz x0, 1f", "tbz x1, #3, 1f", "b.ne 1f", "1:"), '.altinstr_replacement, "ax"'),
        ((f".inst {0x54000000 | (2 << 5) | 0x10:#x}", "nop"), '.altinstr_replacement, "ax"'),
        (("b func",), '.altinstr_replacement, "ax"'),
        (("bl func", "b.ne func", "cbnz x0, func", "tbnz x0, #1, func"),
         '.altinstr_replacement, "ax"'),
        (("adrp x0, some_data", "add x0, x0, :lo12:some_data"), '.altinstr_replacement, "ax"'),
        (("b other_func",), '.altinstr_replacement, "ax"'),
    ]
    lens = [sum(1 for i in ins if not i.endswith(":")) * 4 for ins, _ in forms]
    text = ["\t.text\n\t.globl many\n\t.type many, %function\nmany:\n"]
    for k, n in enumerate(lens):
        text.append(f"s{k}:" + "\tnop\n" * (n // 4))
    for k in range(3):
        text.append(f"cbs{k}:\tnop\n\tnop\n")
    text.append("\tret\n\t.size many, . - many\n")
    text.append('\t.section .rodata, "a"\nsome_data:\t.xword 0\n')
    for k, ((ins, where), n) in enumerate(zip(forms, lens)):
        text.append(repl(f"r{k}", *ins, section=where))
        text.append(f"\tent s{k}, r{k}, {k % 4}, {n}, {n}\n")
    for k in range(3):
        text.append(f"\tent cbs{k}, cb_other, {cb(k)}, 8, 0\n")
    return "".join(text)


OTHER = """\
	.text
	.globl cb_other, other_func, _start
	.type cb_other, %function
cb_other:	ret
	.size cb_other, 4
	.type other_func, %function
other_func:	ret
	.size other_func, 4
	.type _start, %function
_start:	bl many
	b .
	.size _start, 8
"""


@pytest.fixture(scope="module", params=["v4.17-gnu", "v6.1-gnu", "v4.17-llvm", "v6.1-llvm"])
def clean_objects(request, tmp_path_factory):
    profile, tc = request.param.split("-")
    tmp = tmp_path_factory.mktemp(request.param)
    srcs = (write(tmp / "sites.S", PRELUDE + clean_source(profile)), write(tmp / "other.S", OTHER))
    objs = [compile(s, s.with_suffix(".o"), toolchain=tc) for s in srcs]
    return profile, tmp, objs


def test_clean_objects(clean_objects):
    profile, _, objs = clean_objects
    assert_clean(*PROFILES[profile], *objs)
    scanned = scan_json(*PROFILES[profile], objs[0])["files"][0]["entries"]
    assert [e["kind"] for e in scanned].count("callback") == 3
    assert {e["callback"] for e in scanned if e["kind"] == "callback"} == {"cb_other"}


def test_clean_objects_linked(clean_objects):
    """The same inputs linked: the image is clean too, without --ncaps (inferred)."""
    profile, tmp, objs = clean_objects
    script = write(tmp / "img.ld", "ENTRY(_start)\nSECTIONS {\n . = 0x400000;\n"
                   " .text : { *(.text .text.*) }\n INCLUDE alternatives.ld\n"
                   " .rodata : { *(.rodata) }\n}\n")
    image = link(objs, tmp / "clean.elf", script=script, flags=[f"-L{LDSCRIPTS}"])
    assert_clean(*PROFILES[profile], image)
    assert_clean("--abi", "linux-" + profile, image)
    scanned = scan_json("--abi", "linux-" + profile, image)
    if profile == "v4.17":
        assert scanned["ncaps"] == 4
    kinds = [e["kind"] for e in scanned["files"][0]["entries"]]
    assert kinds.count("callback") == 3 and kinds.count("static") == 11


def test_callback_in_another_object_is_needed(clean_objects):
    """Without the object that defines the callback: ALT006 (the clean run is not vacuous)."""
    profile, _, objs = clean_objects
    assert_only("ALT006", *PROFILES[profile], objs[0], count=3,
                message="callback cb_other is not defined in the link set")


def test_callback_via_symbols_from_image(clean_objects):
    profile, tmp, objs = clean_objects
    kernel = link([objs[1]], tmp / "kernel.elf", flags=["--unresolved-symbols=ignore-all"])
    rc, found = check(*PROFILES[profile], "--symbols-from", kernel, objs[0])
    assert found == [] and rc == 0


def test_alternative_h_objects_are_clean(tmp_path):
    """Objects made with the package's own macros (C and assembly), both toolchains."""
    src = write(tmp_path / "m.S", "#include <altlink/alternative.h>\n\t.text\n"
                "\t.globl f\n\t.type f, %function\nf:\n"
                "alternative_if 1\n\tmovz x0, #1\nalternative_else\n\tmovz x0, #0\n"
                "alternative_endif\nalternative_if_not 2\n\tnop\n\tnop\nalternative_else\n"
                "\tb f\n\tbl f\nalternative_endif\n\tret\n")
    csrc = write(tmp_path / "c.c", '#include <altlink/alternative.h>\nalt_callback_fn my_cb;\n'
                 "void my_cb(struct alt_instr *a, uint32_t *o, uint32_t *u, int n)\n"
                 "{ (void)a; (void)o; (void)u; (void)n; }\n"
                 'int g(void) { int v; asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", 3)'
                 ' : "=r"(v)); return v; }\n'
                 "#ifdef ALTLINK_ABI_LINUX_V61\n"
                 'void h(void) { asm volatile(ALTERNATIVE_CB("nop", 2, my_cb)); }\n#else\n'
                 'void h(void) { asm volatile(ALTERNATIVE_CB("nop", my_cb)); }\n#endif\n')
    for tc in ("gnu", "llvm"):
        for profile, defs in (("v4.17", ["ALT_NCAPS=4"]), ("v6.1", ["ALTLINK_ABI_LINUX_V61"])):
            objs = [compile(s, tmp_path / f"{s.stem}-{tc}-{profile}.o", toolchain=tc,
                            defines=defs) for s in (src, csrc)]
            assert_clean(*PROFILES[profile], *objs)
            assert_clean("--abi", "linux-" + profile, *objs)  # v4.17: NCAPS inferred


# ---- linked images: ALT009, ALT017, ALT018 -----------------------------------------------------

FAR = """\
	.text
	.globl _start
	.type _start, %function
_start:
s_b:	nop
s_bcond: nop
s_cbz:	nop
s_tbz:	nop
s_adrp:	nop
	ret
	.size _start, . - _start
	.section .fartext, "ax"
far:	ret
	.section .fardata, "aw"
fdata:	.xword 0
	.pushsection .altinstr_replacement, "ax"
r_b:	b far
r_bcond: b.ne far
r_cbz:	cbz x0, far
r_tbz:	tbz x0, #1, far
r_adrp:	adrp x0, fdata
	.popsection
	ent s_b, r_b, 0, 4, 4
	ent s_bcond, r_bcond, 1, 4, 4
	ent s_cbz, r_cbz, 2, 4, 4
	ent s_tbz, r_tbz, 3, 4, 4
	ent s_adrp, r_adrp, 0, 4, 4
"""
FAR_KINDS = ["branch26", "cond19", "cmp19", "test14", "adrp"]


@pytest.fixture(scope="module")
def far_object(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("far")
    return tmp, compile(write(tmp / "far.S", PRELUDE.split("\t.text")[0] + FAR), tmp / "far.o")


@pytest.mark.parametrize("profile", PROFILES)
def test_alt009_branches_out_of_range_at_the_site(far_object, profile):
    """The replacements and their targets 3 GiB above the sites: every re-encoded branch is
    out of reach at its site (ADRP: beyond the s32 page delta of Linux's patcher)."""
    tmp, obj = far_object
    assert_clean(*PROFILES[profile], obj)  # the object alone is fine: it is the layout
    image = link([obj], tmp / f"far-{profile}.elf", flags=[
        # the table half-way: its s32 offsets reach both
        "-Ttext=0x400000", "--section-start=.altinstructions=0x60000000",
        "--section-start=.altinstr_replacement=0xc0000000",
        "--section-start=.fartext=0xc0001000", "--section-start=.fardata=0xc0002000"])
    found = assert_only("ALT009", *PROFILES[profile], image, count=5)
    for f, kind, site in zip(sorted(found, key=lambda f: f["entry"]), FAR_KINDS,
                             ("s_b", "s_bcond", "s_cbz", "s_tbz", "s_adrp")):
        assert f"{kind} needs" in f["message"], f
        assert "replacement instruction 0" in f["message"] and "at the site 0x4" in f["message"]
        assert f["place"].split()[-1] in (site, "_start")  # s_b is _start's first word
        assert f["file"] == str(image)
    assert "under linux-" in found[4]["message"]  # the s32 of Linux's ADRP
    # the instruction is shown as linked: its real target
    assert "(b 0xc0001000)" in found[0]["message"]
    assert "(adrp x0, 0xc0002000)" in found[4]["message"]


def test_alt009_needs_the_far_layout(far_object):
    tmp, obj = far_object
    near = link([obj], tmp / "near.elf", flags=["-Ttext=0x400000"])
    assert_clean(*V417, near)
    assert_clean(*V61, near)


def image_of(tmp: Path, body: str, script: str | None = None, flags=()) -> Path:
    obj = build(tmp, "img", body.replace("func:", "func:\n_start:").replace(
        ".globl func", ".globl func, _start"))
    ld = write(tmp / "img.ld", script) if script else None
    return link([obj], tmp / "img.elf", script=ld, flags=flags)


def test_alt018_table_not_aligned_in_the_image(tmp_path):
    script = ("ENTRY(_start)\nSECTIONS {\n . = 0x400000;\n .text : { *(.text) }\n"
              " .altinstr_replacement : { *(.altinstr_replacement) }\n"
              " . = ALIGN(4) + 2;\n .altinstructions : { *(.altinstructions) }\n}\n")
    image = image_of(tmp_path, R0 + repl("r1", "nop") + "\tent site0, r0, 1, 4, 4\n"
                     "\tent site1, r1, 2, 4, 4\n", script)
    assert_only("ALT018", *V417, image, count=1, severity="warning",
                message=".altinstructions is at 0x40001a, not 4-byte aligned",
                place="section 3 .altinstructions")
    rc, found = check(*V417, "--werror", image)
    assert rc == 1 and codes(found) == {"ALT018"}
    # the same object linked with the fragment (ALIGN(4)) is clean
    good = image_of(tmp_path, R0 + repl("r1", "nop") + "\tent site0, r0, 1, 4, 4\n"
                    "\tent site1, r1, 2, 4, 4\n")
    assert_clean(*V417, good)


def test_alt017_branch_from_code_into_a_replacement(tmp_path):
    body = R0_8 + "\tent site0, r0, 1, 8, 8\n\t.text\ncaller:\tb r0+4\n"
    obj_only = build(tmp_path, "obj", body)
    assert_clean(*V417, obj_only)  # only a linked image shows where branches land
    image = image_of(tmp_path, body)
    found = assert_only("ALT017", *V417, image, count=1, place=".text+0x0 func")
    assert "(caller) branches into the replacement of entry 0" in found[0]["message"]


def test_alt017_branch_from_one_replacement_into_another(tmp_path):
    body = (R0 + repl("r1", "b r0") + "\tent site0, r0, 1, 4, 4\n\tent site1, r1, 2, 4, 4\n")
    # The assembler resolved the branch inside .altinstr_replacement: the object shows it.
    obj = build(tmp_path, "obj", body)
    assert_only("ALT017", *V417, obj, count=1, place=".text+0x0 func",
                message="the replacement of entry 1 branches into the replacement of entry 0 "
                "at .altinstr_replacement+0x0")
    image = image_of(tmp_path, body)
    assert_only("ALT017", *V417, image, count=1, place=".text+0x0 func",
                message="the replacement of entry 1 branches into the replacement of entry 0")


def test_alt017_object_relocated_branch_between_replacements(tmp_path):
    """A replacement's branch relocated against a symbol the object defines among its
    replacements (a global label: the assembler leaves a relocation) lands there at any
    layout; the object's check says so, as the link's does. A weak one may be replaced."""
    body = (R0.replace("r0:", "\t.globl r0\nr0:") + repl("r1", "b r0")
            + "\tent site0, r0, 1, 4, 4\n\tent site1, r1, 2, 4, 4\n")
    assert_only("ALT017", *V417, build(tmp_path, "glob", body), count=1,
                message="the replacement of entry 1 branches into the replacement of entry 0")
    assert_clean(*V417, build(tmp_path, "weak", body.replace(".globl r0", ".weak r0")))
    # To its own start, to its own end (where the next one starts), and out: fine.
    own = (repl("r0", "b 1f") + "1:\n" + repl("r1", "b r1") + repl("r2", "b func")
           + "\tent site0, r0, 1, 4, 4\n\tent site1, r1, 2, 4, 4\n\tent site2, r2, 3, 4, 4\n")
    assert_clean(*V417, build(tmp_path, "own", own.replace("\t.popsection\n1:\n", "1:\n\t.popsection\n", 1)))


# The object checks hold on the linked image too (the table read back from the image).
IMAGE_BAD = [
    ("ALT001", R0_8 + "\tent site0, r0, 1, 4, 8\n", "replacement is 8 bytes, site is 4"),
    ("ALT003", R0 + "\tent site0+2, r0, 1, 4, 4\n", "site is not 4-byte aligned"),
    ("ALT004", R0 + "\t.data\nd_site:\t.word 0\n\tent d_site, r0, 1, 4, 4\n",
     "site is in .data"),
    ("ALT007", "\t.data\n\t.globl cb_data\n\t.type cb_data, %object\ncb_data:\t.xword 0\n"
     "\tent site0, cb_data, 4, 4, 0\n", "not in an executable section"),
    ("ALT008", repl("r0", "ldr x0, func") + "\tent site0, r0, 1, 4, 4\n", "ldr-literal"),
    ("ALT010", R0_8 + repl("r1", "nop") + "\tent site0, r0, 1, 8, 8\n"
     "\tent site1, r1, 2, 4, 4\n", "overlapping"),
    ("ALT011", R0 + "\tent site0, r0, 9, 4, 4\n", "capability 9 is not in the table"),
]


@pytest.mark.parametrize("code,body,message", IMAGE_BAD, ids=[c for c, _, _ in IMAGE_BAD])
def test_object_checks_on_a_linked_image(tmp_path, code, body, message):
    image = image_of(tmp_path, body)
    assert_only(code, *V417, image, message=message, count=1)


def test_alt011_image_marker_contradicts_ncaps(tmp_path):
    """An image built with ALT_NCAPS=4 checked with --ncaps 3: its callback entry (alt_len 0,
    marker 4) contradicts NCAPS, as in an object (not a 0-byte static replacement)."""
    image = image_of(tmp_path, CALLBACK + "\tent site0, my_cb, 4, 4, 0\n")
    assert_clean("--ncaps", "4", image)
    assert_only("ALT011", "--ncaps", "3", image, count=1,
                message="looks like a callback (my_cb) with marker 4, but NCAPS is 3")


def test_alt011_callback_markers_disagree_without_a_table(tmp_path):
    """No table, no --ncaps, and the callbacks carry two markers: NCAPS cannot be inferred,
    and the table contradicts itself (ALT011), not 0-byte static replacements (ALT001)."""
    o = build(tmp_path, "a", CALLBACK + "\tent site0, my_cb, 4, 4, 0\n"
              "\tent site1, my_cb, 4, 4, 0\n\tent site2, my_cb, 5, 4, 0\n")
    found = assert_only("ALT011", o)
    assert any("callback entries carry different markers" in f["message"] for f in found)
    assert any(f["entry"] == 2 and "marker 5" in f["message"] for f in found)


def test_alt012_image_offset_outside_the_image(tmp_path):
    """Offsets that resolve outside every section of the image: a malformed table (ALT012),
    not a site or replacement in the wrong section (ALT004/ALT005/ALT007)."""
    image = image_of(tmp_path, CALLBACK + R0 + repl("r1", "nop") + "\tent site0, r0, 1, 4, 4\n"
                     '\t.pushsection .altinstructions, "a"\n\t.word site1 - . + 0x10000000\n'
                     "\t.word r1 - .\n\t.hword 2\n\t.byte 4, 4\n"
                     "\t.word site2 - .\n\t.word my_cb - . - 0x100000\n\t.hword 4\n"
                     "\t.byte 4, 0\n\t.popsection\n")
    found = assert_only("ALT012", *V417, image, count=2)
    site0 = int(scan_json(*V417, image, rc=1)["files"][0]["entries"][0]["site"]["address"], 16)
    assert found[0]["place"] == ".altinstructions entry 1"
    assert found[0]["message"] == \
        f"site offset points outside the image ({site0 + 4 + 0x10000000:#x})"
    assert found[1]["place"] == ".altinstructions entry 2"
    assert found[1]["message"].startswith("replacement offset points outside the image")


def test_alt014_callback_reaches_a_sanitizer_hook(tmp_path):
    hooked = ("\t.text\n\t.globl my_cb, __asan_load8\n\t.type my_cb, %function\n"
              "my_cb:\tstp x29, x30, [sp, #-16]!\n\tbl __asan_load8\n\tldp x29, x30, [sp], #16\n"
              "\tret\n\t.size my_cb, . - my_cb\n\t.type __asan_load8, %function\n"
              "__asan_load8:\tret\n\t.size __asan_load8, 4\n\tent site0, my_cb, 4, 4, 0\n")
    assert_clean(*V417, build(tmp_path, "obj", hooked))  # objects: only the image is followed
    image = image_of(tmp_path, hooked)
    assert_only("ALT014", *V417, image, severity="warning", count=1, place=".text+0x0 func",
                message="callback my_cb reaches the sanitizer hook __asan_load8 (via my_cb -> "
                "__asan_load8)")
    assert_clean(*V417, "-W", "no-ALT014", image)


def test_alt010_every_overlapping_pair_is_reported(tmp_path):
    """A long site overlapping two short ones that do not overlap each other: both pairs."""
    o = build(tmp_path, "three", repl("r0", "nop", "nop", "nop") + repl("r1", "nop")
              + repl("r2", "nop") + "\tent site0, r0, 1, 12, 12\n\tent site1, r1, 2, 4, 4\n"
              "\tent site2, r2, 3, 4, 4\n")
    found = assert_only("ALT010", *V417, o, count=2)
    assert [(f["message"], f["place"]) for f in found] == [
        ("entries 0 and 1 patch overlapping sites", ".text+0x4 site1"),
        ("entries 0 and 2 patch overlapping sites", ".text+0x8 site2"),
    ]


def test_alt012_relocation_section_not_whole_entries(tmp_path):
    """A .rela.altinstructions whose size is not whole RELA entries is a malformed table
    (ALT012, exit 1), not an unreadable file."""
    import struct as _struct
    import subprocess
    import sys

    from elftools.elf.elffile import ELFFile
    from toolchain import run

    src = write(tmp_path / "t.S", """
    .text
    .globl f
    .type f, %function
f:
661: nop
662: ret
    .pushsection .altinstructions, "a"
    .word 661b - .
    .word 663f - .
    .hword 0
    .byte 4
    .byte 4
    .popsection
    .pushsection .altinstr_replacement, "ax"
663: nop
    .popsection
""")
    obj = tmp_path / "t.o"
    run(["aarch64-linux-gnu-gcc", "-c", src, "-o", obj])
    data = bytearray(obj.read_bytes())
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        shoff, shentsize = elf["e_shoff"], elf["e_shentsize"]
        index = next(i for i, s in enumerate(elf.iter_sections())
                     if s.name == ".rela.altinstructions")
    size_at = shoff + index * shentsize + 32  # sh_size of an Elf64_Shdr
    size = _struct.unpack_from("<Q", data, size_at)[0]
    _struct.pack_into("<Q", data, size_at, size - 8)
    obj.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "altlink", "check", "--ncaps", "1",
                           "--format", "json", str(obj)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    assert {f["code"] for f in findings} == {"ALT012"}
    assert any("not a multiple of 24" in f["message"] for f in findings)


# Linux 7's dcache_by_myline_op_nosync (arch/arm64/include/asm/assembler.h), for op cvau: an
# alternative_if whose body assembles to nothing, so the entry's site and replacement are
# both 0 bytes (Debian's 7.2.13 vmlinux has three). It patches nothing; the kernel's patcher
# reads nr_inst 0.
EMPTY_ALTERNATIVE = """\
#include <altlink/alternative.h>
	.macro op_nosync op
alternative_if 1
	.ifnc	\\op, cvau
	mov	x0, x1
	.endif
alternative_else_nop_endif
	.endm
	.text
	.globl _start, func
	.type func, %function
_start:
func:	op_nosync cvau
	op_nosync civac
	ret
	.size func, . - func
"""


def test_an_empty_alternative_is_no_finding(tmp_path):
    """An empty static entry (0-byte site and replacement) is well formed: no ALT003 in the
    object or the image; the manifest lists it (length 0) and the patcher patches nothing
    there. A zero-length site with a replacement, or a callback's, is still ALT003."""
    src = write(tmp_path / "empty.S", EMPTY_ALTERNATIVE)
    obj = compile(src, tmp_path / "empty.o", defines=["ALT_NCAPS=4"])
    scanned = scan_json(*V417, obj)["files"][0]["entries"]
    assert [(e["orig_len"], e["alt_len"]) for e in scanned] == [(0, 0), (4, 4)]
    assert_clean(*V417, obj)
    image = link([obj], tmp_path / "empty.elf", script=write(
        tmp_path / "img.ld", "ENTRY(_start)\nSECTIONS {\n . = 0x400000;\n"
        " .text : { *(.text .text.*) }\n INCLUDE alternatives.ld\n}\n"),
        flags=[f"-L{LDSCRIPTS}"])
    assert_clean(*V417, image)
    manifest = tmp_path / "empty.json"
    assert cli.main(["manifest", *V417, str(image), "-o", str(manifest)]) == 0
    entries = json.loads(manifest.read_text())["entries"]
    assert [e["site"]["length"] for e in entries] == [0, 4]
    patched = tmp_path / "patched.elf"
    assert cli.main(["patch", str(image), "--manifest", str(manifest), "--caps", "1", "-o",
                     str(patched)]) == 0
    changed = [i for i, (a, b) in enumerate(zip(image.read_bytes(), patched.read_bytes()))
               if a != b]
    site = entries[1]["site"]["file_offset"]
    assert changed and all(site <= i < site + 4 for i in changed)  # the 4-byte site alone
    # Linked through altlink, as Kbuild links vmlinux.o (ld -r) and then vmlinux: the
    # cross-check finds the empty entry in both outputs (its table was "missing from the
    # linked image", ALT013, for every entry of the object: Linux 7.2's cache.o).
    script = write(tmp_path / "link.ld", "ENTRY(_start)\nSECTIONS {\n . = 0x400000;\n"
                   " .text : { *(.text .text.*) }\n INCLUDE alternatives.ld\n}\n")
    rel, linked = tmp_path / "rel.o", tmp_path / "linked.elf"
    assert cli.main(["link", *V417, "--no-cache", "--", "aarch64-linux-gnu-ld", "-r", str(obj),
                     "-o", str(rel)]) == 0
    assert cli.main(["link", *V417, "--no-cache", "--", "aarch64-linux-gnu-ld",
                     f"-L{LDSCRIPTS}", "-T", str(script), str(rel), "-o", str(linked)]) == 0
    assert_clean(*V417, linked)
    # (the same entry with a replacement, or as a callback: ALT003 as before)
    assert "ALT003" in codes(check(*V417, build(tmp_path, "with", R0 + "\tent site1, r0, 1, 0, 4\n"))[1])


# A replacement in .text (where Linux 7 puts them: .subsection 1 of the same section) and,
# before it, a word of data that reads as "b .+8", a branch onto it: a constant table in
# .text, as Linux's sha256-armv8 code has (Debian's 7.2.13 vmlinux: one K256 word read as a
# branch into a replacement, ALT017). The assembler's mapping symbols ($d, $x) mark the word
# as data. The same word as an instruction (.inst) is a branch, and ALT017.
DATA_IN_TEXT = """\
	.text
	.balign 4
table:	.word 0x14000002
	.word 0
r0:	movz x0, #1
	ent site0, r0, 1, 4, 4
"""


def test_a_word_of_data_that_reads_as_a_branch_is_no_alt017(tmp_path):
    assert_clean(*V417, build(tmp_path, "data", DATA_IN_TEXT))  # the object
    assert_only("ALT017", *V417, build(tmp_path, "code", DATA_IN_TEXT.replace(
        ".word 0x14000002", ".inst 0x14000002")), count=1, message="code at .text+0x")
    script = ("ENTRY(_start)\nSECTIONS {\n . = 0x400000;\n .text : { *(.text) }\n"
              " INCLUDE alternatives.ld\n}\n")
    image = image_of(tmp_path, DATA_IN_TEXT, script, flags=[f"-L{LDSCRIPTS}"])
    assert_clean(*V417, image)
    code = image_of(tmp_path / "code", DATA_IN_TEXT.replace(".word 0x14000002",
                                                            ".inst 0x14000002"),
                    script, flags=[f"-L{LDSCRIPTS}"])
    assert_only("ALT017", *V417, code, count=1, message="code at 0x")


def test_an_empty_entry_at_the_end_of_its_sections_is_no_finding(tmp_path):
    """An empty entry sharing its site with another entry, and one whose replacement is the
    end of .altinstr_replacement (in the image, the address where the next section starts):
    nothing to patch or copy, so no ALT010, ALT004 or ALT005, in the object, the image and
    the manifest (which lists all four)."""
    empty = "alternative_if 1\n\t.if 0\n\tmov x0, x1\n\t.endif\nalternative_else_nop_endif\n"
    one = "alternative_if {}\n\tmov x0, x1\nalternative_else_nop_endif\n"
    src = write(tmp_path / "ends.S", "#include <altlink/alternative.h>\n\t.text\n"
                "\t.globl _start, func\n\t.type func, %function\n_start:\nfunc:\n" + empty +
                one.format(2) + "\tnop\n" + one.format(3) + empty + "\tret\n"
                "\t.size func, . - func\n")
    obj = compile(src, tmp_path / "ends.o", defines=["ALT_NCAPS=4"])
    assert_clean(*V417, obj)
    image = link([obj], tmp_path / "ends.elf", script=write(
        tmp_path / "img.ld", "ENTRY(_start)\nSECTIONS {\n . = 0x400000;\n"
        " .text : { *(.text .text.*) }\n INCLUDE alternatives.ld\n}\n"),
        flags=[f"-L{LDSCRIPTS}"])
    assert_clean(*V417, image)
    manifest = tmp_path / "ends.json"
    assert cli.main(["manifest", *V417, str(image), "-o", str(manifest)]) == 0
    m = json.loads(manifest.read_text())
    assert [e["site"]["length"] for e in m["entries"]] == [0, 4, 4, 0]
    assert not m.get("refused")
