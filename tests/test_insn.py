"""altlink.insn against the real AArch64 toolchain.

The truth comes from GNU as/ld/objdump wherever they know the encoding: each
instruction is assembled and linked at a known address and the target that
objdump prints is compared with classify()/target(); relocate() is compared
with the same instruction assembled at another address; the reach of every
field is compared with what the assembler (branches) or linker (ADRP)
accepts. FEAT_CMPBR is newer than binutils 2.40, so its words are built from
the Arm ARM's field layout (see CMPBR below).
"""

from __future__ import annotations

import re
import shutil
import struct

import pytest
from toolchain import run

from altlink import insn

AS = "aarch64-linux-gnu-as"
LD = "aarch64-linux-gnu-ld"
OBJDUMP = "aarch64-linux-gnu-objdump"
MARCH = "-march=armv8.8-a+sve"  # 8.8 for BC.cond (FEAT_HBC), +sve for a plain SVE word

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in (AS, LD, OBJDUMP)),
    reason="the AArch64 GNU toolchain is not installed",
)

LINE = re.compile(r"^\s*([0-9a-f]+):\s+([0-9a-f]{8})\s+(\S+)\s*(.*)$")
TARGET = re.compile(r"([0-9a-f]+) <[^>]*>")


def build(tmp, name: str, source: str, sections: dict[str, int], defsyms=None) -> str:
    """Assemble and link ``source`` with each section at its address; return objdump -d."""
    src = tmp / f"{name}.s"
    src.write_text(source)
    obj, elf = tmp / f"{name}.o", tmp / f"{name}.elf"
    run([AS, MARCH, src, "-o", obj])
    cmd = [LD, "-static", "-nostdlib", "-e", "0"]
    cmd += [f"--section-start={sec}={addr:#x}" for sec, addr in sections.items()]
    cmd += [f"--defsym={sym}={addr:#x}" for sym, addr in (defsyms or {}).items()]
    run([*cmd, obj, "-o", elf])
    return run([OBJDUMP, "-d", elf]).stdout


def parse(dump: str) -> dict[int, tuple[int, str, str]]:
    """address -> (word, mnemonic, operands) for every instruction objdump lists."""
    out = {}
    for line in dump.splitlines():
        m = LINE.match(line)
        if m:
            out[int(m.group(1), 16)] = (int(m.group(2), 16), m.group(3), m.group(4))
    return out


def objdump_target(operands: str) -> int | None:
    found = TARGET.findall(operands)
    return int(found[-1], 16) if found else None


# --- classify / target against objdump ------------------------------------------

MAIN = 0x10000000  # .tmain
FAR_CODE = 0x16400000  # +100 MiB: still in B/BL reach
LOW_DATA = 0x00010000  # ADRP below
FAR_DATA = 0xC0000123  # ADRP ~2.8 GiB above (beyond Linux's s32)

# (assembly, kind, name); one instruction each, laid out from MAIN.
PCREL = [
    ("b back", "branch26", "b"),
    ("b fwd", "branch26", "b"),
    ("b far_code", "branch26", "b"),
    ("bl back", "branch26", "bl"),
    ("bl far_code", "branch26", "bl"),
    ("b.eq back", "cond19", "b.cond"),
    ("b.hi fwd", "cond19", "b.cond"),
    ("b.nv fwd", "cond19", "b.cond"),
    ("bc.ne back", "cond19", "bc.cond"),
    ("bc.ge fwd", "cond19", "bc.cond"),
    ("cbz x3, back", "cmp19", "cbz"),
    ("cbz w3, fwd", "cmp19", "cbz"),
    ("cbnz w4, back", "cmp19", "cbnz"),
    ("cbnz x30, fwd", "cmp19", "cbnz"),
    ("tbz x5, #40, back", "test14", "tbz"),
    ("tbz w0, #0, fwd", "test14", "tbz"),
    ("tbnz w6, #3, back", "test14", "tbnz"),
    ("tbnz x7, #63, fwd", "test14", "tbnz"),
    ("adrp x0, back", "adrp", "adrp"),
    ("adrp x1, far_data", "adrp", "adrp"),
    ("adrp x2, low_data", "adrp", "adrp"),
    ("adr x1, back", "immovable", "adr"),
    ("adr x2, fwd", "immovable", "adr"),
    ("ldr w2, lit", "immovable", "ldr-literal"),
    ("ldr x2, back", "immovable", "ldr-literal"),
    ("ldrsw x3, lit", "immovable", "ldrsw-literal"),
    ("prfm pldl1keep, lit", "immovable", "prfm-literal"),
    ("ldr s0, lit", "immovable", "ldr-literal-simd"),
    ("ldr d1, back", "immovable", "ldr-literal-simd"),
    ("ldr q2, lit", "immovable", "ldr-literal-simd"),
]

PLAIN = [
    "add x0, x1, x2",
    "nop",
    "ret",
    "br x0",
    "blr x1",
    "msr tpidr_el0, x0",
    "mrs x0, tpidr_el0",
    "bti c",
    "paciasp",
    "autiasp",
    "hint #34",
    "braa x0, x1",
    "retaa",
    "eret",
    "svc #0",
    "brk #0x800",
    "isb",
    "dsb sy",
    "ldr x0, [x1, #8]",
    "str w2, [sp, #-16]!",
    "ldp x29, x30, [sp], #16",
    "movz x0, #0x1234, lsl #16",
    "add x0, x0, :lo12:far_data",
    "ld1 {v0.16b}, [x0]",
    "ldr q0, [x0]",
    "add z0.d, z0.d, z1.d",
    "ldr z0, [x0]",
    "casal x0, x1, [x2]",
]


@pytest.fixture(scope="module")
def main_image(tmp_path_factory):
    lines = [insn_ for insn_, _, _ in PCREL] + PLAIN
    source = "\n".join(
        [
            '.section .tmain,"ax"',
            ".globl _start",
            "_start:",
            "back:",
            *lines,
            "fwd: nop",
            "lit: .word 0",
            '.section .tfar,"ax"',
            "far_code: ret",
            '.section .dlow,"a"',
            "low_data: .quad 0",
            '.section .dfar,"a"',
            "far_data: .quad 0",
            "",
        ]
    )
    sections = {".tmain": MAIN, ".tfar": FAR_CODE, ".dlow": LOW_DATA, ".dfar": FAR_DATA}
    dump = build(tmp_path_factory.mktemp("insn"), "main", source, sections)
    listing = parse(dump)
    assert len([a for a in listing if MAIN <= a < FAR_CODE]) == len(lines) + 2
    return listing


@pytest.mark.parametrize("i", range(len(PCREL)), ids=[c[0] for c in PCREL])
def test_pcrel_matches_objdump(main_image, i):
    text, kind, name = PCREL[i]
    pc = MAIN + 4 * i
    word, mnemonic, operands = main_image[pc]
    expected = objdump_target(operands)
    assert expected is not None, f"objdump shows no target for {text}: {operands}"
    found = insn.classify(word)
    assert (found.kind, found.name) == (kind, name), f"{text} {word:#010x} {mnemonic}"
    assert insn.target(word, pc) == expected
    if kind == "adrp":
        assert found.offset == expected - (pc & ~0xFFF)
    else:
        assert found.offset == expected - pc
    assert insn.capstone_says_pcrel(word) is True


@pytest.mark.parametrize("i", range(len(PLAIN)), ids=PLAIN)
def test_plain_matches_objdump(main_image, i):
    pc = MAIN + 4 * (len(PCREL) + i)
    word, mnemonic, operands = main_image[pc]
    assert objdump_target(operands) is None, f"objdump shows a target: {mnemonic} {operands}"
    assert insn.classify(word) == insn.Classified("plain", None, "plain")
    assert insn.target(word, pc) is None
    assert insn.capstone_says_pcrel(word) is False
    assert insn.relocate(word, pc, pc + 0x123456780) == word
    assert not insn.needs_fixup(word, pc, 4, pc)


def test_disasm_matches_objdump(main_image):
    count = len(PCREL) + len(PLAIN)
    words = [main_image[MAIN + 4 * i][0] for i in range(count)]
    lines = insn.disasm(struct.pack(f"<{count}I", *words), MAIN)
    assert len(lines) == count
    for i, line in enumerate(lines):
        word, mnemonic, operands = main_image[MAIN + 4 * i]
        assert line.split()[0] == mnemonic, (line, mnemonic)
        expected = objdump_target(operands)
        if expected is not None:
            assert line.endswith(f" {expected:#x}"), (line, operands)


# --- FEAT_CMPBR: pcrel-unknown ------------------------------------------------
# Arm ARM (DDI 0487, A64 "Compare and branch (register)" / "(immediate)",
# FEAT_CMPBR, Armv9.6):
#   CB<cc>, CBB<cc>, CBH<cc> (register): sf 1110100 cc(23:21) Rm(20:16) sz(15:14) imm9(13:5) Rt
#       sz = 00 CB<cc> (W/X by sf), 10 CBB<cc>, 11 CBH<cc>
#   CB<cc> (immediate):                  sf 1110101 cc(23:21) imm6(20:15) 0 imm9(13:5) Rt
#   target = PC + SignExtend(imm9:'00'), +-1 KiB
# binutils 2.40 and capstone 5.0.9 do not know them. The first four words are
# LLVM's own MC test vectors (llvm/test/MC/AArch64/cmpbr-*.s) as a cross-check
# of the layout.


def cmpbr_reg(sf, cc, rm, sz, imm9, rt):
    return sf << 31 | 0b1110100 << 24 | cc << 21 | rm << 16 | sz << 14 | (imm9 & 0x1FF) << 5 | rt


def cmpbr_imm(sf, cc, imm6, imm9, rt):
    return sf << 31 | 0b1110101 << 24 | cc << 21 | imm6 << 15 | (imm9 & 0x1FF) << 5 | rt


CMPBR = [
    (0x7423A005, -1024, "cbbcc"),  # cbbge w5, w3, #-1024
    (0x7423E005, -1024, "cbhcc"),  # cbhge w5, w3, #-1024
    (0x75002005, -1024, "cbcc-imm"),  # cbgt w5, #0, #-1024
    (0xF51FA005, -1024, "cbcc-imm"),  # cbgt x5, #63, #-1024
    (cmpbr_reg(1, 0b110, 2, 0b00, 255, 1), 1020, "cbcc"),  # cbeq x1, x2, .+1020
    (cmpbr_reg(0, 0b111, 9, 0b00, 1, 30), 4, "cbcc"),  # cbne w30, w9, .+4
    (cmpbr_reg(0, 0b001, 3, 0b10, -1, 0), -4, "cbbcc"),  # cbbge w0, w3, .-4
    (cmpbr_imm(1, 0b111, 17, 0, 2), 0, "cbcc-imm"),  # cbne x2, #17, .
]


def test_cmpbr_layout_matches_llvm_vectors():
    assert cmpbr_reg(0, 0b001, 3, 0b10, -256, 5) == 0x7423A005
    assert cmpbr_reg(0, 0b001, 3, 0b11, -256, 5) == 0x7423E005
    assert cmpbr_imm(0, 0b000, 0, -256, 5) == 0x75002005
    assert cmpbr_imm(1, 0b000, 63, -256, 5) == 0xF51FA005


CMPBR_AT = 0x400000


@pytest.fixture(scope="module")
def cmpbr_image(tmp_path_factory):
    source = "\n".join(['.section .tc,"ax"', *(f".inst {w:#x}" for w, _, _ in CMPBR), ""])
    return parse(build(tmp_path_factory.mktemp("cmpbr"), "cmpbr", source, {".tc": CMPBR_AT}))


@pytest.mark.parametrize("i", range(len(CMPBR)), ids=[f"{w:#010x}" for w, _, _ in CMPBR])
def test_cmpbr_is_pcrel_unknown(cmpbr_image, i):
    word, offset, name = CMPBR[i]
    pc = CMPBR_AT + 4 * i
    got, mnemonic, _ = cmpbr_image[pc]
    assert got == word and mnemonic == ".inst"  # binutils 2.40: undefined
    found = insn.classify(word)
    assert found == insn.Classified("pcrel-unknown", offset, name)
    assert insn.target(word, pc) == pc + offset
    assert insn.capstone_says_pcrel(word) is None  # capstone 5.0.9 cannot decode it
    assert insn.disasm(word.to_bytes(4, "little"), pc) == [f".inst {word:#010x}"]
    with pytest.raises(ValueError, match="pcrel-unknown") as err:
        insn.relocate(word, pc, pc + 64)
    assert not isinstance(err.value, insn.RangeError)
    # even with the target inside the replacement: never copied silently
    assert insn.needs_fixup(word, pc - 2048, 4096, pc)


# --- relocate against the assembler at two addresses ------------------------------

BLOCK = [
    "b tgt",
    "bl tgt2",
    "b.eq tgt",
    "b.lt tgt2",
    "bc.ne tgt",
    "bc.vs tgt2",
    "cbz x1, tgt",
    "cbnz w2, tgt2",
    "tbz x3, #33, tgt",
    "tbnz w4, #7, tgt2",
    "adrp x5, tgt",
    "adrp x6, data",
    "adrp x7, low",
    "nop",
    "add x0, x1, #3",
]
FAR_BLOCK = ["b ftgt", "bl ftgt", "bl ftgt2", "adrp x0, fdata", "adrp x1, low", "adrp x2, ftgt"]

PLACES = {
    ".na": 0x10010000,
    ".ntgt": 0x10014000,
    ".nb": 0x10019004,  # not page-aligned, below the targets: negative displacements
    ".fa": 0x08000000,
    ".fb": 0x0F000008,
    ".ftgt": 0x0BF00000,
    ".dlow": 0x00001000,
    ".ddata": 0x10123000,
    ".dfar": 0xB0000000,
}


@pytest.fixture(scope="module")
def two_places(tmp_path_factory):
    def block(section, lines):
        return [f'.section {section},"ax"', *lines]

    source = "\n".join(
        [
            *block(".na", BLOCK),
            *block(".nb", BLOCK),
            *block(".fa", FAR_BLOCK),
            *block(".fb", FAR_BLOCK),
            '.section .ntgt,"ax"',
            "nop",
            "tgt: nop",
            "tgt2: ret",
            '.section .ftgt,"ax"',
            "ftgt: nop",
            "ftgt2: ret",
            '.section .dlow,"a"',
            "low: .quad 0",
            '.section .ddata,"a"',
            ".skip 0x840",
            "data: .quad 0",
            '.section .dfar,"a"',
            "fdata: .quad 0",
            "",
        ]
    )
    return parse(build(tmp_path_factory.mktemp("reloc"), "reloc", source, PLACES))


@pytest.mark.parametrize(
    "lines,a,b", [(BLOCK, ".na", ".nb"), (FAR_BLOCK, ".fa", ".fb")], ids=["near", "far"]
)
def test_relocate_matches_assembler(two_places, lines, a, b):
    base_a, base_b = PLACES[a], PLACES[b]
    for i, text in enumerate(lines):
        pc_a, pc_b = base_a + 4 * i, base_b + 4 * i
        word_a, word_b = two_places[pc_a][0], two_places[pc_b][0]
        assert insn.relocate(word_a, pc_a, pc_b) == word_b, text
        assert insn.relocate(word_b, pc_b, pc_a) == word_a, text
        assert insn.target(word_a, pc_a) == insn.target(word_b, pc_b), text


# --- reach: exactly at the limit fits, one step past does not ----------------------

# (kind, assembly with {d} for the displacement, lowest, highest)
BRANCH_LIMITS = [
    ("branch26", "b . {d:+#x}", -(1 << 27), (1 << 27) - 4),
    ("branch26", "bl . {d:+#x}", -(1 << 27), (1 << 27) - 4),
    ("cond19", "b.ne . {d:+#x}", -(1 << 20), (1 << 20) - 4),
    ("cond19", "bc.gt . {d:+#x}", -(1 << 20), (1 << 20) - 4),
    ("cmp19", "cbz x9, . {d:+#x}", -(1 << 20), (1 << 20) - 4),
    ("cmp19", "cbnz w9, . {d:+#x}", -(1 << 20), (1 << 20) - 4),
    ("test14", "tbz x9, #50, . {d:+#x}", -(1 << 15), (1 << 15) - 4),
    ("test14", "tbnz w9, #5, . {d:+#x}", -(1 << 15), (1 << 15) - 4),
]


def _assemble(tmp, name, lines):
    src = tmp / f"{name}.s"
    src.write_text("\n".join(['.section .tr,"ax"', *lines, ""]))
    return run([AS, MARCH, src, "-o", tmp / f"{name}.o"], check=False)


def test_branch_reach_matches_assembler(tmp_path):
    fits, beyond = [], []
    for _kind, form, lo, hi in BRANCH_LIMITS:
        fits += [form.format(d=lo), form.format(d=hi)]
        beyond += [form.format(d=lo - 4), form.format(d=hi + 4)]
    ok = _assemble(tmp_path, "fits", fits)
    assert ok.returncode == 0, ok.stderr
    bad = _assemble(tmp_path, "beyond", beyond)
    failed = {int(n) for n in re.findall(r"beyond\.s:(\d+): Error", bad.stderr)}
    assert failed == set(range(2, 2 + len(beyond))), bad.stderr  # line 1 is .section

    dump = run([OBJDUMP, "-d", tmp_path / "fits.o"]).stdout
    words = [w for _, (w, _, _) in sorted(parse(dump).items())]
    assert len(words) == len(fits)
    for n, (kind, _form, lo, hi) in enumerate(BRANCH_LIMITS):
        assert insn.reach(kind) == (lo, hi)
        for j, d in enumerate((lo, hi)):
            word = words[2 * n + j]
            assert insn.decode(word).offset == d
            # the same instruction, moved so that it needs exactly d, and one step more
            pc = 0x40000000
            moved = insn.relocate(word, pc, pc)
            assert moved == word
            step = -4 if d == lo else 4
            with pytest.raises(insn.RangeError) as err:
                insn.relocate(word, pc, pc - step)
            assert err.value.displacement == d + step
            assert err.value.reach == (lo, hi)
            assert kind in str(err.value)
            assert f"{d + step:+#x}" in str(err.value)
            back = insn.relocate(word, pc, pc + d)  # now a branch to itself
            assert insn.decode(back).offset == 0


ADRP_AT = 0x200000000


def _adrp_link(tmp, name, deltas):
    lines = [f"adrp x{i}, t{i}" for i in range(len(deltas))]
    src = tmp / f"{name}.s"
    src.write_text("\n".join(['.section .tadrp,"ax"', *lines, ""]))
    obj, elf = tmp / f"{name}.o", tmp / f"{name}.elf"
    run([AS, src, "-o", obj])
    cmd = [LD, "-static", "-nostdlib", "-e", "0", f"--section-start=.tadrp={ADRP_AT:#x}"]
    cmd += [f"--defsym=t{i}={ADRP_AT + d:#x}" for i, d in enumerate(deltas)]
    return run([*cmd, obj, "-o", elf], check=False), elf


def test_adrp_reach_matches_linker(tmp_path):
    lo, hi = insn.reach("adrp")
    assert (lo, hi) == (-(1 << 32), (1 << 32) - 4096)
    ok, elf = _adrp_link(tmp_path, "fits", [lo, hi, 0])
    assert ok.returncode == 0, ok.stderr
    words = [w for _, (w, _, _) in sorted(parse(run([OBJDUMP, "-d", elf]).stdout).items())]
    bad, _ = _adrp_link(tmp_path, "beyond", [lo - 4096, hi + 4096])
    assert bad.returncode != 0
    assert bad.stderr.count("relocation truncated to fit: R_AARCH64_ADR_PREL_PG_HI21") == 2

    for i, d in enumerate((lo, hi)):
        assert insn.decode(words[i]).offset == d
        assert insn.target(words[i], ADRP_AT + 4 * i) == ADRP_AT + d
    # words[2] points at its own page; move it so the page delta is exactly the limit
    here = words[2]
    pc = ADRP_AT + 8
    assert insn.decode(insn.relocate(here, pc, pc - hi)).offset == hi
    assert insn.decode(insn.relocate(here, pc, pc - lo)).offset == lo
    assert insn.relocate(here, pc, pc - hi) == words[1] & ~0x1F | 2
    with pytest.raises(insn.RangeError, match=r"adrp needs page delta \+0x100000000"):
        insn.relocate(here, pc, pc - hi - 4096)
    with pytest.raises(insn.RangeError, match=r"-0x100001000"):
        insn.relocate(here, pc, pc - lo + 4096)
    # same page: any address within the page is fine
    assert insn.relocate(here, pc, (pc & ~0xFFF) + 0xFFC) == here


def test_adrp_linux_reach():
    lo, hi = insn.profile_reach("adrp", "linux-v6.1")
    assert (lo, hi) == (-(1 << 31), (1 << 31) - 4096)
    assert insn.profile_reach("branch26", "linux-v4.17") == insn.reach("branch26")
    word = 0x90000000  # adrp x0, .
    pc = 0x100000000
    assert insn.decode(insn.relocate(word, pc, pc - hi, abi="linux-v6.1")).offset == hi
    with pytest.raises(insn.RangeError, match="linux-v6.1"):
        insn.relocate(word, pc, pc - hi - 4096, abi="linux-v6.1")
    insn.relocate(word, pc, pc - hi - 4096)  # architecturally fine


def test_encode_offset_checks():
    b = 0x14000000
    assert insn.encode_offset(b, "branch26", -4) == 0x17FFFFFF
    with pytest.raises(ValueError, match="multiple of 4"):
        insn.encode_offset(b, "branch26", 2)
    with pytest.raises(ValueError, match="not cond19"):
        insn.encode_offset(b, "cond19", 4)
    with pytest.raises(ValueError, match="multiple of 4096"):
        insn.encode_offset(0x90000000, "adrp", 4)
    with pytest.raises(ValueError):
        insn.reach("adr")
    with pytest.raises(ValueError):
        insn.classify(1 << 32)


# --- immovable ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "i", [i for i, c in enumerate(PCREL) if c[1] == "immovable"], ids=lambda i: PCREL[i][0]
)
def test_immovable_cannot_be_moved(main_image, i):
    pc = MAIN + 4 * i
    word = main_image[pc][0]
    with pytest.raises(ValueError, match="immovable") as err:
        insn.relocate(word, pc, pc + 4)
    assert not isinstance(err.value, insn.RangeError)
    assert insn.needs_fixup(word, pc, 4, pc)  # even when its target is inside


# --- docs/reference.md, section 2: which words need a fix-up ----------------------------------------------


def test_needs_fixup_end_inclusive():
    repl, length = 0x1000, 16
    for pc in range(repl, repl + length, 4):
        for dest, inside in [
            (repl - 4, False),
            (repl, True),
            (repl + 8, True),
            (repl + length, True),  # end inclusive: "just past the replacement"
            (repl + length + 4, False),
        ]:
            for kind, word in [
                ("branch26", 0x94000000),
                ("cond19", 0x54000001),
                ("cond19", 0x54000011),
                ("cmp19", 0xB5000003),
                ("test14", 0x37080004),
            ]:
                w = insn.encode_offset(word, kind, dest - pc)
                assert insn.needs_fixup(w, repl, length, pc) is not inside, (kind, pc, dest)
    adrp_here = 0x90000000
    assert insn.needs_fixup(adrp_here, repl, length, repl)  # Linux re-encodes every ADRP


# --- profiles ---------------------------------------------------------------------
# Linux's predicates (arch/arm64/include/asm/insn.h, __AARCH64_INSN_FUNCS), the
# ones get_alt_insn() consults: aarch64_insn_is_branch_imm() is b|bl|cbz|cbnz|
# tbz|tbnz|bcond; aarch64_insn_uses_literal() is ldr_lit|ldrsw_lit|adr|adrp|prfm_lit.
LINUX = {
    "b": (0xFC000000, 0x14000000),
    "bl": (0xFC000000, 0x94000000),
    "cbz": (0x7F000000, 0x34000000),
    "cbnz": (0x7F000000, 0x35000000),
    "tbz": (0x7F000000, 0x36000000),
    "tbnz": (0x7F000000, 0x37000000),
    "bcond": (0xFF000010, 0x54000000),
    "adr": (0x9F000000, 0x10000000),
    "adrp": (0x9F000000, 0x90000000),
    "ldr_lit": (0xBF000000, 0x18000000),
    "ldrsw_lit": (0xFF000000, 0x98000000),
    "prfm_lit": (0xFF000000, 0xD8000000),
}


# Xen's copy (xen/arch/arm/alternative.c and arch/arm/include/asm/arm64/insn.h, 4.17):
# get_alt_insn() consults only insn_is_branch_imm(), with Linux's masks, and copies every
# other word, the literal loads, ADR and ADRP included.
XEN = {k: LINUX[k] for k in ("b", "bl", "cbz", "cbnz", "tbz", "tbnz", "bcond")}


def linux_handles(word: int) -> bool:
    """get_alt_insn() re-encodes it, or BUG()s on it: anything but a silent copy."""
    return any(word & mask == value for mask, value in LINUX.values())


@pytest.mark.parametrize("abi", ["linux-v4.17", "linux-v6.1"])
def test_profile_problem_is_linux_silent_copy(main_image, abi):
    for i, (text, _kind, name) in enumerate(PCREL):
        word = main_image[MAIN + 4 * i][0]
        problem = insn.profile_problem(word, abi)
        silently_copied = not linux_handles(word)
        if name == "adrp" and text.endswith("far_data"):
            assert problem is not None and "s32" in problem, text  # beyond +-2 GiB
            continue
        assert (problem is not None) == silently_copied, (text, problem)
        if name == "bc.cond":
            assert "0xff000010" in problem and abi in problem
        if name == "ldr-literal-simd":
            assert "aarch64_insn_uses_literal" in problem
    for i in range(len(PLAIN)):
        assert insn.profile_problem(main_image[MAIN + 4 * (len(PCREL) + i)][0], abi) is None
    for word, _, _ in CMPBR:  # silently copied by Linux too, but an error under every profile
        assert not linux_handles(word)
        assert insn.profile_problem(word, abi) is None
    with pytest.raises(ValueError, match="unknown ABI"):
        insn.profile_problem(0xD503201F, "linux-v5.0")


def test_profile_problem_is_xen_silent_copy(main_image):
    """Under xen-v4.17, a problem is what Xen's patcher copies silently and altlink would
    otherwise move: every ADRP, and as under Linux BC.cond and the SIMD/FP literal loads.
    ADR and the other literal loads, also copied by Xen, are errors under every profile
    (``immovable``), so they give None here."""
    for i, (text, _kind, name) in enumerate(PCREL):
        word = main_image[MAIN + 4 * i][0]
        problem = insn.profile_problem(word, "xen-v4.17")
        copied = not any(word & mask == value for mask, value in XEN.values())
        moved = insn.classify(word).kind not in ("immovable", "pcrel-unknown")
        assert (problem is not None) == (copied and (moved or name == "ldr-literal-simd")), \
            (text, problem)
        if name == "adrp":
            assert "xen-v4.17's patcher copies ADRP unchanged" in problem
            assert insn.profile_problem(word, "linux-v4.17") is None or "far_data" in text
    for i in range(len(PLAIN)):
        word = main_image[MAIN + 4 * (len(PCREL) + i)][0]
        assert insn.profile_problem(word, "xen-v4.17") is None


def test_unallocated_pcrel_slots_are_errors(tmp_path):
    # LDR (literal) with opc = 11, V = 1, and CB<cc> (register) with sz = 01: no
    # instruction, but inside PC-relative encoding classes: never copied silently.
    words = [0xDC000020, cmpbr_reg(1, 0, 1, 0b01, 2, 3)]
    source = "\n".join(['.section .tu,"ax"', *(f".inst {w:#x}" for w in words), ""])
    listing = parse(build(tmp_path, "unalloc", source, {".tu": 0x400000}))
    assert [m for _, m, _ in listing.values()] == [".inst", ".inst"]  # undefined to binutils
    assert insn.classify(words[0]) == insn.Classified("pcrel-unknown", 4, "ldr-literal-unallocated")
    assert insn.classify(words[1]) == insn.Classified("pcrel-unknown", 8, "cmpbr-unallocated")
    for word in words:
        assert insn.capstone_says_pcrel(word) is None
        with pytest.raises(ValueError, match="cannot be moved"):
            insn.relocate(word, 0x400000, 0x500000)


def test_capstone_opinion_overrides_plain(monkeypatch):
    # FEAT_PAuth_LR's RETAASPPC (a return authenticated with the address of a label): the
    # branch and system group, where new PC-relative forms appear; neither the decoder nor
    # capstone 5.0.9 knows it.
    word = 0x5500001F
    assert insn.classify(word).kind == "plain"
    monkeypatch.setattr(insn, "_capstone_probe", lambda w: ("newbranch", True))
    # Data processing and load/store words are not asked: their PC-relative classes (ADR/ADRP,
    # the literal loads) are the decoder's own. Nor are exception generation, the system
    # instructions and the branches to a register (0xD4000000 to 0xD7FFFFFF): none of their
    # forms reads the PC.
    for other in (0x8B020020, 0x52800020, 0xF9400020,  # add x0,x1,x2; mov w0,#1; ldr x0,[x1]
                  0xD4000001, 0xD503201F, 0xD5384600, 0xD50887BF, 0xD65F03C0, 0xD63F0200,
                  0xD65F0BFF, 0xD7FFFFFF):  # svc; nop; mrs; tlbi; ret; blr x16; retaa; ...
        assert insn.classify(other).kind == "plain"
    found = insn.classify(word)
    assert found == insn.Classified("pcrel-unknown", None, "capstone:newbranch")
    assert insn.decode(word).kind == "plain"  # the decoder alone does not know
    assert insn.needs_fixup(word, 0x1000, 4, 0x1000)
    with pytest.raises(ValueError, match="pcrel-unknown"):
        insn.relocate(word, 0x1000, 0x2000)
    assert insn.target(word, 0x1000) is None


# --- capstone -------------------------------------------------------------------


def test_capstone_sees_no_pc_in_system_and_register_branches():
    """The words ``insn.classify`` does not ask capstone about, as it would have: exception
    generation, the system instructions and the branches to a register (0xD4000000 to
    0xD7FFFFFF), every 4,099th word and the forms the kernel's replacements hold. Capstone
    decodes many of them and finds the PC in none."""
    kernel = (0xD5384600, 0xD5184600, 0xD53CD041, 0xD5033FDF, 0xD5033F9F, 0xD5033FBF,
              0xD50330FF, 0xD503201F, 0xD50887BF, 0xD50B7E22, 0xD65F03C0, 0xD4200000)
    decoded = 0
    for word in (*kernel, *range(0xD4000000, 0xD8000000, 4099)):
        probe = insn._capstone_probe.__wrapped__(word)
        if probe is not None:
            decoded += 1
            assert not probe[1], f"{word:#010x}: {probe[0]}"
    assert decoded > 1000




def test_capstone_facts():
    bc_ne = 0x54FFFFB1
    assert insn.capstone_says_pcrel(bc_ne) is True  # decoded, though it has no branch group
    assert insn.disasm(bc_ne.to_bytes(4, "little"), 0x1000) == ["bc.ne 0xff4"]
    assert insn.capstone_says_pcrel(0xD503201F) is False
    assert insn.disasm(b"\x1f\x20\x03\xd5\xff\xff\xff\xff", 0) == ["nop", ".inst 0xffffffff"]
    with pytest.raises(ValueError):
        insn.disasm(b"\x00\x00", 0)


def test_one_word_in_messages():
    # What the checks and the cross-check print of one word: disasm's line, the same
    # .inst form for a word capstone cannot decode, and the mnemonic alone.
    assert insn.word_text(0x54FFFFB1, 0x1000) == "bc.ne 0xff4"
    assert insn.word_text(0xFFFFFFFF, 0x1000) == ".inst 0xffffffff"
    assert insn.mnemonic(0x54FFFFB1) == "bc.ne"
    assert insn.mnemonic(0xFFFFFFFF) == ".inst"


def test_linker_stubs_by_name_and_by_code():
    # One recognition for the checks (a thunk after a replacement) and the cross-check (a
    # branch redirected through a veneer): by the names GNU ld and lld give, or by the code.
    ldr_br = (0x58000050).to_bytes(4, "little") + (0xD61F0200).to_bytes(4, "little")
    adrp_add_br = b"".join(w.to_bytes(4, "little") for w in (0x90000010, 0x91000210, 0xD61F0200))
    nops = (0xD503201F).to_bytes(4, "little") * 3
    for name in ("__far_veneer", "__AArch64AbsLongThunk_far", "__CortexA53843419_1000",
                 "__erratum_835769_veneer_0"):
        assert insn.is_linker_stub([name], nops), name
    assert insn.is_linker_stub([], ldr_br) and insn.is_linker_stub(["f"], adrp_add_br)
    assert not insn.is_linker_stub(["far"], nops)
    assert not insn.is_linker_stub([], None) and not insn.is_linker_stub([], nops[:4])
