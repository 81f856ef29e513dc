"""Property tests for altlink.insn: relocate() on random branches and ADRPs.

The field layouts below are written out from the Arm ARM independently of
altlink.insn (its masks and reach table are not used to decide what to expect).
"""

from __future__ import annotations

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from altlink import insn

M64 = (1 << 64) - 1

# kind -> (fixed bits mask, fixed bits value, field mask, field width, scale)
# branch26: B/BL          x00101 imm26                      (bit 31: link)
# cond19:   B.cond/BC.cond 01010100 imm19 o0 cond           (bit 4: BC)
# cmp19:    CBZ/CBNZ       sf 011010 op imm19 Rt
# test14:   TBZ/TBNZ       b5 011011 op b40 imm14 Rt
# adrp:     ADRP           1 immlo 10000 immhi Rd
LAYOUT = {
    "branch26": (0x7C000000, 0x14000000, 0x03FFFFFF, 26, 4),
    "cond19": (0xFF000000, 0x54000000, 0x00FFFFE0, 19, 4),
    "cmp19": (0x7E000000, 0x34000000, 0x00FFFFE0, 19, 4),
    "test14": (0x7E000000, 0x36000000, 0x0007FFE0, 14, 4),
    "adrp": (0x9F000000, 0x90000000, 0x60FFFFE0, 21, 4096),
}
NAMES = {
    "branch26": ("b", "bl"),
    "cond19": ("b.cond", "bc.cond"),
    "cmp19": ("cbz", "cbnz"),
    "test14": ("tbz", "tbnz"),
    "adrp": ("adrp",),
}


def signed64(v: int) -> int:
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def fits(kind: str, displacement: int) -> bool:
    *_, width, scale = LAYOUT[kind]
    assert displacement % scale == 0
    units = displacement // scale
    return -(1 << (width - 1)) <= units < (1 << (width - 1))


@st.composite
def words(draw, kinds=tuple(LAYOUT)):
    kind = draw(st.sampled_from(kinds))
    fixed_mask, fixed_value, _, _, _ = LAYOUT[kind]
    word = (draw(st.integers(0, 0xFFFFFFFF)) & ~fixed_mask) | fixed_value
    return kind, word


addresses = st.integers(0, M64).map(lambda a: a & ~3)


@st.composite
def moves(draw):
    """(from_pc, to_pc): anywhere, or near each other so that most moves fit."""
    start = draw(addresses)
    near = draw(st.sampled_from([1 << 12, 1 << 16, 1 << 21, 1 << 28, 1 << 33, 1 << 64]))
    delta = draw(st.integers(-near, near)) & ~3
    return start, (start + delta) & M64


@settings(max_examples=1500)
@given(words(), moves())
@example(("branch26", 0x14000000), (0, (1 << 27)))  # needs -2**27: fits exactly
@example(("branch26", 0x14000000), (0, -((1 << 27) - 4) & M64))  # wraps: +2**27 - 4
@example(("adrp", 0x90000000), (1 << 32, 0))  # page delta +4 GiB: one page too far
@example(("test14", 0x36000000), (0x8000, 0))
def test_relocate_keeps_target_or_raises(kw, move):
    kind, word = kw
    from_pc, to_pc = move
    _, _, field, _, _ = LAYOUT[kind]
    before = insn.classify(word)
    assert before.kind == kind
    tgt = insn.target(word, from_pc)
    if kind == "adrp":
        assert tgt & 0xFFF == 0
        needed = signed64(tgt - (to_pc & ~0xFFF))
    else:
        needed = signed64(tgt - to_pc)
    try:
        moved = insn.relocate(word, from_pc, to_pc)
    except insn.RangeError as err:
        assert not fits(kind, needed)
        assert err.displacement == needed
        assert kind in str(err)
        return
    assert fits(kind, needed)
    after = insn.classify(moved)
    assert (after.kind, after.name) == (kind, before.name)
    assert insn.target(moved, to_pc) == tgt
    # condition, register, bit number, link bit, sf, op: everything outside the field
    assert moved & ~field & 0xFFFFFFFF == word & ~field & 0xFFFFFFFF
    # and back again gives the original word
    assert insn.relocate(moved, to_pc, from_pc) == word


@given(words(), st.data())
def test_encode_offset_round_trips(kw, data):
    kind, word = kw
    *_, width, scale = LAYOUT[kind]
    units = data.draw(st.integers(-(1 << (width - 1)), (1 << (width - 1)) - 1))
    encoded = insn.encode_offset(word, kind, units * scale)
    assert insn.decode(encoded).offset == units * scale
    assert encoded & ~LAYOUT[kind][2] == word & ~LAYOUT[kind][2]
    too_far = data.draw(st.sampled_from([units + (1 << width), units - (1 << width)]))
    try:
        insn.encode_offset(word, kind, too_far * scale)
    except insn.RangeError:
        pass
    else:
        raise AssertionError(f"{kind} accepted {too_far * scale:+#x}")


@given(words(), addresses)
def test_names_and_targets(kw, pc):
    kind, word = kw
    found = insn.decode(word)
    assert found.kind == kind
    assert found.name == NAMES[kind][0 if len(NAMES[kind]) == 1 else _variant(kind, word)]
    if kind == "adrp":
        assert insn.target(word, pc) == ((pc & ~0xFFF) + found.offset) & M64
    else:
        assert insn.target(word, pc) == (pc + found.offset) & M64


def _variant(kind: str, word: int) -> int:
    if kind == "branch26":
        return word >> 31
    if kind == "cond19":
        return (word >> 4) & 1
    return (word >> 24) & 1


@settings(max_examples=2000)
@given(st.integers(0, 0xFFFFFFFF), st.sampled_from([0x8, 0xA, 0xC, 0xE, None]))
def test_decoder_agrees_with_capstone(word, group):
    """Capstone never sees the PC in a word the decoder calls plain, and every
    word with a decoded displacement that capstone knows reads the PC."""
    if group is not None:  # bias towards the groups that hold PC-relative encodings
        word = (word & ~(0xE << 25)) | (group << 25)
    found = insn.decode(word)
    assert found.kind in insn.KINDS
    assert (found.offset is None) == (found.kind == "plain")
    opinion = insn.capstone_says_pcrel(word)
    assume(opinion is not None)
    if opinion:
        assert found.kind != "plain", f"{word:#010x}"
    else:
        assert found.offset is None, f"{word:#010x} {found}"
    assert insn.classify(word).kind == found.kind


@given(words(kinds=("branch26", "cond19", "cmp19", "test14")), st.data())
def test_needs_fixup_is_outside_the_block(kw, data):
    kind, word = kw
    repl = data.draw(st.integers(0, M64 - 4096)) & ~3
    length = 4 * data.draw(st.integers(1, 63))
    pc = repl + 4 * data.draw(st.integers(0, length // 4 - 1))
    tgt = insn.target(word, pc)
    outside = not repl <= tgt <= repl + length
    assert insn.needs_fixup(word, repl, length, pc) is outside
