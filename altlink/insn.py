"""AArch64 instruction classification and re-encoding for moving replacement code.

A replacement instruction is copied to the site. Whether that is allowed, and
what the copied word must be, depends only on the word (and, for a branch, on
where its target lies). :func:`decode` answers by encoding alone, in pure
Python integer operations (it runs on every word of every replacement);
:func:`classify` adds capstone as a second opinion for words the decoder
calls plain. The kinds (docs/reference.md, section 2):

``branch26`` B, BL; ``cond19`` B.cond, BC.cond; ``cmp19`` CBZ, CBNZ;
``test14`` TBZ, TBNZ; ``adrp`` ADRP
    PC-relative, re-encoded by :func:`relocate` when the code moves.
``immovable``
    ADR and the literal loads (LDR W/X, LDRSW, PRFM, LDR S/D/Q): PC-relative,
    but altlink does not rewrite them (an ADR or literal cannot be widened
    into a sequence of the same length), so moving one is a build-time error.
``pcrel-unknown``
    PC-relative encodings altlink cannot re-encode: FEAT_CMPBR compare and
    branch (CB<cc>, CBB<cc>, CBH<cc>, register and immediate forms), the
    unallocated SIMD/FP literal-load slot, and anything capstone decodes as
    reading the PC that the decoder does not know. Always an error.
``plain``
    Everything else: copied unchanged.

Addresses are 64-bit and wrap modulo 2**64, as the hardware computes them.

The ``linux-*`` profiles (:func:`profile_problem`, :func:`profile_reach`)
model Linux's own patcher, ``get_alt_insn()`` in
``arch/arm64/kernel/alternative.c`` with the helpers of
``arch/arm64/include/asm/insn.h`` and ``arch/arm64/kernel/insn.c`` (later
``arch/arm64/lib/insn.c``, and partly inlined into the header).
Facts checked against those sources (the 4.18/4.19-era file with
``ARM64_CB_PATCH``, the 5.x file with the SPDX header, and the 5.10/5.15/6.x
stable-review patches that touch ``get_alt_insn``):

* ``get_alt_insn()`` handles, in this order: ``aarch64_insn_is_branch_imm()``
  (B, BL, CBZ, CBNZ, TBZ, TBNZ, B.cond) -- re-encoded when the target is
  outside the replacement; ``aarch64_insn_is_adrp()`` -- *always* re-encoded
  to the same 4 KiB page, whatever its target; ``aarch64_insn_uses_literal()``
  (LDR literal, LDRSW literal, ADR/ADRP, PRFM literal) -- ``BUG()`` at boot.
  Anything else is copied unchanged.
* ``aarch64_insn_is_bcond()`` is mask ``0xff000010`` value ``0x54000000``:
  BC.cond (FEAT_HBC, bit 4 set) is not a branch to Linux 4.17 to 6.1 and is
  copied unchanged. (Upstream commit 2ccd8ff980b5, "arm64: probes: Handle
  probes on hinted conditional branch instructions", v7.1-rc4, widens the
  mask to ``0xff000000``; stable backports to 6.6 and 6.12 were posted. Its
  Fixes: tag is 7f86d128e437, the FEAT_HBC hwcap; no 6.1.y backport was found,
  and the profile keeps the 6.1 release's behaviour.)
* ``ldr_lit`` is mask ``0xbf000000`` value ``0x18000000`` (V = 0 only),
  ``ldrsw_lit`` ``0xff000000``/``0x98000000``, ``prfm_lit``
  ``0xff000000``/``0xd8000000``: the SIMD/FP literal loads (V = 1) are in no
  Linux release's ``aarch64_insn_uses_literal()`` and are copied silently.
* ``aarch64_insn_adrp_get_offset()`` and ``aarch64_insn_adrp_set_offset()``
  carry the page delta in an ``s32``: a delta outside [-2 GiB, +2 GiB) is
  silently truncated (the architecture reaches +-4 GiB).
* No re-encoding range is checked (``aarch64_insn_encode_immediate()`` masks
  the field): an out-of-range branch is silently corrupted. altlink reports it.
* ``branch_insn_requires_update()``: in the 5.10-and-later files, "outside
  ``[repl, repl + alt_len]``, end inclusive"; in the 4.18/4.19-era file it first
  re-encodes any target for which ``kernel_text_address()`` is true and
  ``BUG()``s for a target in neither the kernel text nor this replacement.
"""

from __future__ import annotations

import struct
from _thread import _local  # (threading.local, without threading: 0.7 ms a run)
from functools import lru_cache

from altlink.values import Frozen

__all__ = [
    "ABIS",
    "FIXUP_KINDS",
    "KINDS",
    "Classified",
    "RangeError",
    "capstone_says_pcrel",
    "classify",
    "decode",
    "disasm",
    "encode_offset",
    "field_mask",
    "needs_fixup",
    "profile_problem",
    "profile_reach",
    "reach",
    "relocate",
    "target",
]

FIXUP_KINDS = ("branch26", "cond19", "cmp19", "test14", "adrp")
KINDS = (*FIXUP_KINDS, "immovable", "pcrel-unknown", "plain")
ABIS = ("linux-v4.17", "linux-v6.1", "xen-v4.17")

_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_PAGE = ~0xFFF

# kind -> (lowest, highest) displacement in bytes, from the field width.
_REACH = {
    "branch26": (-(1 << 27), (1 << 27) - 4),
    "cond19": (-(1 << 20), (1 << 20) - 4),
    "cmp19": (-(1 << 20), (1 << 20) - 4),
    "test14": (-(1 << 15), (1 << 15) - 4),
    "adrp": (-(1 << 32), (1 << 32) - 4096),
}
# Linux keeps the ADRP page delta in an s32 (see the module docstring).
_LINUX_ADRP_REACH = (-(1 << 31), (1 << 31) - 4096)

_IMM26 = 0x03FFFFFF
_IMM19 = 0x00FFFFE0  # bits 23:5
_IMM14 = 0x0007FFE0  # bits 18:5
_IMM9 = 0x00003FE0  # bits 13:5 (FEAT_CMPBR)
_ADR_IMM = 0x60FFFFE0  # immlo bits 30:29, immhi bits 23:5
_FIELD = {
    "branch26": _IMM26,
    "cond19": _IMM19,
    "cmp19": _IMM19,
    "test14": _IMM14,
    "adrp": _ADR_IMM,
}


class Classified(Frozen):
    """What one instruction word is, for moving it.

    ``offset`` is the signed byte displacement from the instruction (for
    ``adrp``: the page delta in bytes, ``imm << 12``), or None when the word
    is not PC-relative or the displacement is not known.

    (A value class written out, ``values.Frozen``, as the dataclass it was: a
    dataclass is made when its module is imported, by each kernel module's link.)
    """

    _fields = ("kind", "offset", "name")
    kind: str
    offset: int | None
    name: str

    def __init__(self, kind: str, offset: int | None, name: str) -> None:
        _set = object.__setattr__
        _set(self, "kind", kind)
        _set(self, "offset", offset)
        _set(self, "name", name)


class RangeError(ValueError):
    """A re-encoded displacement does not fit the instruction's field."""

    def __init__(self, kind: str, displacement: int, limits: tuple[int, int], why: str = ""):
        self.kind = kind
        self.displacement = displacement
        self.reach = limits
        self.why = why
        lo, hi = limits
        what = "page delta" if kind == "adrp" else "displacement"
        super().__init__(
            f"{kind} needs {what} {displacement:+#x} but reaches "
            f"{lo:+#x}..{hi:+#x} ({_size(hi + (4096 if kind == 'adrp' else 4))})"
            + (f" {why}" if why else "")
        )

    def __reduce__(self):
        return (type(self), (self.kind, self.displacement, self.reach, self.why))


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"+-{n >> shift} {unit}"
    return f"+-{n} bytes"


_PLAIN = Classified("plain", None, "plain")


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _signed64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def _check_word(word: int) -> None:
    if not 0 <= word <= _MASK32:
        raise ValueError(f"not a 32-bit instruction word: {word!r}")


# Names of the FEAT_CMPBR register forms by sz (bits 15:14); 01 is unallocated.
_CMPBR_REG = {0: "cbcc", 2: "cbbcc", 3: "cbhcc"}
# LDR (literal) family with V = 0, by opc (bits 31:30).
_LITERAL_GPR = ("ldr-literal", "ldr-literal", "ldrsw-literal", "prfm-literal")


@lru_cache(maxsize=1 << 16)
def decode(word: int) -> Classified:
    """Classify ``word`` by its encoding alone (no capstone).

    Encodings (Arm ARM, A64 "Branches, exception generating and system
    instructions", "Data processing -- immediate", "Loads and stores"):

    - B/BL ``x00101`` imm26; B.cond ``01010100`` imm19 ``0`` cond, BC.cond the
      same with bit 4 set (FEAT_HBC);
    - CBZ/CBNZ ``sf011010 op`` imm19 Rt; TBZ/TBNZ ``b5 011011 op`` b40 imm14 Rt;
    - ADR/ADRP ``op immlo 10000`` immhi Rd;
    - LDR (literal) ``opc 011 V 00`` imm19 Rt;
    - FEAT_CMPBR (Armv9.6): CB<cc>/CBB<cc>/CBH<cc> (register)
      ``sf 1110100 cc Rm sz`` imm9 Rt and CB<cc> (immediate)
      ``sf 1110101 cc imm6 0`` imm9 Rt, imm9 scaled by 4 (+-1 KiB).
    """
    _check_word(word)
    group = (word >> 25) & 0xF
    if group & 0xE == 0xA:  # branches, exception generation, system
        top = word & 0x7E000000
        if top == 0x14000000 or top == 0x16000000:  # B, BL
            return Classified(
                "branch26",
                _signed(word & _IMM26, 26) << 2,
                "bl" if word >> 31 else "b",
            )
        if top == 0x34000000:  # CBZ, CBNZ
            return Classified(
                "cmp19",
                _signed((word & _IMM19) >> 5, 19) << 2,
                "cbnz" if word & 0x01000000 else "cbz",
            )
        if top == 0x36000000:  # TBZ, TBNZ
            return Classified(
                "test14",
                _signed((word & _IMM14) >> 5, 14) << 2,
                "tbnz" if word & 0x01000000 else "tbz",
            )
        if word & 0xFF000000 == 0x54000000:  # B.cond, BC.cond
            return Classified(
                "cond19",
                _signed((word & _IMM19) >> 5, 19) << 2,
                "bc.cond" if word & 0x10 else "b.cond",
            )
        if top == 0x74000000:  # FEAT_CMPBR
            offset = _signed((word & _IMM9) >> 5, 9) << 2
            if word & 0x01000000:
                return Classified("pcrel-unknown", offset, "cbcc-imm")
            name = _CMPBR_REG.get((word >> 14) & 3, "cmpbr-unallocated")
            return Classified("pcrel-unknown", offset, name)
        return _PLAIN
    if group & 0xE == 0x8:  # data processing -- immediate
        if word & 0x1F000000 == 0x10000000:  # ADR, ADRP
            imm = _signed(((word >> 3) & 0x1FFFFC) | ((word >> 29) & 3), 21)
            if word >> 31:
                return Classified("adrp", imm << 12, "adrp")
            return Classified("immovable", imm, "adr")
        return _PLAIN
    if group & 0x5 == 0x4:  # loads and stores
        if word & 0x3B000000 == 0x18000000:  # LDR (literal) family
            offset = _signed((word & _IMM19) >> 5, 19) << 2
            opc = word >> 30
            if not word & 0x04000000:
                return Classified("immovable", offset, _LITERAL_GPR[opc])
            if opc == 3:  # unallocated in the SIMD/FP slot
                return Classified("pcrel-unknown", offset, "ldr-literal-unallocated")
            return Classified("immovable", offset, "ldr-literal-simd")
        return _PLAIN
    return _PLAIN


def _may_be_pcrel(word: int) -> bool:
    """Whether a word the decoder calls plain lies in an encoding group where a PC-relative
    form could be: not data processing (register, SIMD/FP, or immediate: the immediate group's
    only PC-relative class is ADR/ADRP, which :func:`decode` knows), not loads and stores
    (their only PC-relative class, the literal loads, :func:`decode` knows), and not the
    three classes of the branch and system group whose every form takes its operands from
    registers and immediates alone: exception generation (SVC, BRK, ...), the system
    instructions (hints, barriers, MSR, MRS, SYS, TLBI, DC, ...) and the branches to a
    register (BR, BLR, RET, ERET, and their pointer-authenticating forms), bits 31:26 110101.
    The rest of the branch and system group and the unallocated and SVE/SME groups are left
    to capstone (its import costs a process about 0.09 s of CPU: a kernel's replacements
    hold MRS, MSR, barriers and RET, which alone asked for it)."""
    if word >> 26 == 0x35:  # 0xD4000000 to 0xD7FFFFFF
        return False
    op0 = (word >> 25) & 0xF
    if op0 & 0x7 in (0x5, 0x7):  # data processing: register, SIMD and FP
        return False
    if op0 & 0xE == 0x8:  # data processing: immediate
        return False
    if op0 & 0x5 == 0x4:  # loads and stores
        return False
    return True


def classify(word: int) -> Classified:
    """Classify ``word``: :func:`decode`, then capstone's second opinion.

    A word the decoder calls plain but capstone decodes as reading the PC is
    ``pcrel-unknown`` (name ``capstone:<mnemonic>``, offset None): never
    copied silently. Capstone's answers are cached per word (bounded).
    """
    found = decode(word)
    if found is _PLAIN and _may_be_pcrel(word):
        probe = _capstone_probe(word)
        if probe is not None and probe[1]:
            return Classified("pcrel-unknown", None, f"capstone:{probe[0]}")
    return found


def is_veneer(words: tuple[int, ...]) -> bool:
    """The code a linker inserts to reach a far branch target (GNU ld's veneers, lld's
    thunks): ADRP x16 / ADD x16 / BR x16, or LDR x16, literal / BR x16. ``words``: two or
    three words from the address."""
    if len(words) > 2 and (words[0] & 0x9F00001F) == 0x90000010 and \
            (words[1] & 0xFFC003FF) == 0x91000210 and words[2] == 0xD61F0200:
        return True
    return (words[0] & 0xFF00001F) == 0x58000010 and words[1] == 0xD61F0200


# Names the linkers give the code they insert: GNU ld's veneers and erratum stubs, lld's
# thunks and erratum patches.
STUB_NAME_MARKS = ("_veneer", "__AArch64AbsLongThunk_", "__AArch64ADRPThunk_", "Thunk_",
                   "__CortexA53843419_", "__erratum_843419_", "__erratum_835769_")


def is_linker_stub(names, code: bytes | None) -> bool:
    """Code a linker inserted: one of ``names`` (the symbols at its address) is named as a
    veneer, thunk or erratum stub, or ``code`` (8 or 12 bytes from the address, None where
    there are none) is a veneer's sequence (``is_veneer``)."""
    if any(m in n for n in names for m in STUB_NAME_MARKS):
        return True
    if code is None or len(code) < 8:
        return False
    return is_veneer(struct.unpack(f"<{len(code) // 4}I", code[:len(code) // 4 * 4]))


def target(word: int, pc: int) -> int | None:
    """The absolute address ``word`` refers to when executed at ``pc``.

    For ADRP, the target page: ``(pc & ~0xfff) + offset``. None when the word
    is not PC-relative or its displacement is unknown. By encoding alone.
    """
    found = decode(word)
    if found.offset is None:
        return None
    if found.kind == "adrp":
        return ((pc & _PAGE) + found.offset) & _MASK64
    return (pc + found.offset) & _MASK64


def reach(kind: str) -> tuple[int, int]:
    """The (lowest, highest) displacement in bytes the kind's field encodes."""
    try:
        return _REACH[kind]
    except KeyError:
        raise ValueError(f"not a fix-up kind: {kind!r} (one of {', '.join(FIXUP_KINDS)})") from None


def profile_reach(kind: str, abi: str | None) -> tuple[int, int]:
    """:func:`reach` as the profile's patcher can re-encode it.

    Linux carries the ADRP page delta in an ``s32`` (``aarch64_insn_adrp_get_offset``
    / ``_set_offset``), so under a ``linux-*`` profile an ADRP reaches
    [-2 GiB, +2 GiB - 4 KiB]; everything else is the architectural reach.
    """
    limits = reach(kind)
    if abi is None:
        return limits
    _check_abi(abi)
    return _LINUX_ADRP_REACH if kind == "adrp" else limits


def field_mask(kind: str) -> int:
    """The bits of the instruction that hold the kind's displacement."""
    reach(kind)
    return _FIELD[kind]


def encode_offset(word: int, kind: str, offset: int) -> int:
    """Write ``offset`` (bytes; for ADRP the page delta) into ``word``'s field.

    Raises ValueError when ``word`` is not of ``kind`` or ``offset`` is not a
    multiple of 4 (4096 for ADRP), :class:`RangeError` when it does not fit.
    """
    lo, hi = reach(kind)
    found = decode(word)
    if found.kind != kind:
        raise ValueError(f"{word:#010x} is {found.kind} ({found.name}), not {kind}")
    return _encode(word, kind, offset, lo, hi, "")


def _encode(word: int, kind: str, offset: int, lo: int, hi: int, why: str) -> int:
    unit = 4096 if kind == "adrp" else 4
    if offset % unit:
        raise ValueError(f"{kind} displacement {offset:+#x} is not a multiple of {unit}")
    if not lo <= offset <= hi:
        raise RangeError(kind, offset, (lo, hi), why)
    if kind == "branch26":
        return (word & ~_IMM26 & _MASK32) | ((offset >> 2) & _IMM26)
    if kind == "test14":
        return (word & ~_IMM14 & _MASK32) | (((offset >> 2) << 5) & _IMM14)
    if kind == "adrp":
        imm = offset >> 12
        return (word & ~_ADR_IMM & _MASK32) | ((imm & 3) << 29) | (((imm >> 2) << 5) & _IMM19)
    return (word & ~_IMM19 & _MASK32) | (((offset >> 2) << 5) & _IMM19)


def relocate(word: int, from_pc: int, to_pc: int, *, abi: str | None = None) -> int:
    """``word`` re-encoded so that, executed at ``to_pc``, it reaches what it
    reaches at ``from_pc`` (for ADRP: the same page).

    A plain word is returned unchanged. Raises ValueError for ``immovable``
    and ``pcrel-unknown`` words, :class:`RangeError` when the new displacement
    does not fit (with ``abi``, the reach of that profile's patcher, see
    :func:`profile_reach`).
    """
    found = decode(word)
    kind = found.kind
    if kind == "plain":
        found = classify(word)
        if found.kind == "plain":
            return word
    if kind not in _REACH:
        raise ValueError(
            f"{found.name} ({word:#010x}) at {from_pc:#x} is {found.kind}: it cannot be moved"
        )
    old = found.offset
    if kind == "adrp":
        new = _signed64((from_pc & _PAGE) + old - (to_pc & _PAGE))
    else:
        new = _signed64(from_pc + old - to_pc)
    lo, hi = profile_reach(kind, abi)
    why = ""
    if abi is not None and (lo, hi) != _REACH[kind]:
        why = f"under {abi} (its patcher keeps the ADRP page delta in an s32)"
    return _encode(word, kind, new, lo, hi, why)


def needs_fixup(word: int, repl_addr: int, alt_len: int, pc: int) -> bool:
    """Whether ``word``, at ``pc`` inside the replacement ``[repl_addr,
    repl_addr + alt_len)``, cannot be copied to the site verbatim (docs/reference.md, section 2).

    - a branch kind: its target lies outside ``[repl_addr, repl_addr +
      alt_len]`` (end inclusive: a branch to just past the replacement goes
      to just past the site). Inside, the code moves as a block and the word
      is copied unchanged, by altlink and by every Linux release;
    - ADRP: always True. Linux's ``get_alt_insn()`` re-encodes every ADRP to
      the same 4 KiB page, whatever the target; altlink does the same (an
      ADRP of a page inside the replacement has no block-move meaning
      anyway: the site and the replacement are not page-congruent);
    - ``immovable`` and ``pcrel-unknown``: always True (:func:`relocate`
      raises for them: docs/reference.md, section 2 makes them errors even with a target inside);
    - plain: False.
    """
    found = classify(word)
    kind = found.kind
    if kind == "plain":
        return False
    if kind in ("branch26", "cond19", "cmp19", "test14"):
        dest = (pc + found.offset) & _MASK64
        return not repl_addr <= dest <= repl_addr + alt_len
    return True


def _check_abi(abi: str) -> None:
    if abi not in ABIS:
        raise ValueError(f"unknown ABI profile {abi!r} (one of {', '.join(ABIS)})")


def profile_problem(word: int, abi: str) -> str | None:
    """How the ``abi`` profile's own patcher (Linux ``get_alt_insn()``) would
    mishandle ``word`` when it has to move it; None when it would not.

    Only what altlink itself would handle (or reject) but the kernel gets
    wrong silently:

    - BC.cond: ``aarch64_insn_is_bcond()`` (mask 0xff000010, value
      0x54000000) does not match it, so it is copied unchanged. This matters
      only when the target is outside the replacement (:func:`needs_fixup`):
      the caller decides;
    - SIMD/FP literal loads (LDR S/D/Q literal): not in
      ``aarch64_insn_uses_literal()``, so copied unchanged instead of the
      ``BUG()`` every other literal load gets (altlink rejects them anyway);
    - ADRP whose own page delta does not fit the ``s32`` of
      ``aarch64_insn_adrp_get_offset()``: the kernel computes a wrong target
      page. (The delta after the move is checked by ``relocate(..., abi=)``.)

    ``xen-v4.17`` models Xen's own copy of the patcher (``get_alt_insn()`` in
    ``xen/arch/arm/alternative.c``, checked against Xen 4.17): it re-encodes only
    ``insn_is_branch_imm()`` words (the same masks as Linux's, BC.cond excluded) and copies
    every other word, so on top of the above:

    - ADRP, any: copied unchanged, it computes its page from the site's address.

    ADR, LDR/LDRSW/PRFM literal (``BUG()`` at boot under Linux, copied by Xen) and
    FEAT_CMPBR (copied unchanged) are errors under every profile already, so they give None
    here.
    """
    _check_abi(abi)
    found = decode(word)
    if abi == "xen-v4.17" and found.kind == "adrp":
        return (
            "xen-v4.17's patcher copies ADRP unchanged: Xen's get_alt_insn() re-encodes "
            "only the immediate branches (insn_is_branch_imm()), so at the site the ADRP "
            "computes its page from the site's address"
        )
    if found.name == "bc.cond":
        return (
            f"{abi}'s patcher copies BC.cond unchanged: aarch64_insn_is_bcond() "
            "(mask 0xff000010, value 0x54000000) does not match it (bit 4 is set), "
            "so a target outside the replacement is not re-encoded"
        )
    if found.name == "ldr-literal-simd":
        return (
            f"{abi}'s patcher copies SIMD/FP literal loads unchanged: "
            "aarch64_insn_uses_literal() covers only LDR/LDRSW/PRFM literal and "
            "ADR/ADRP, so the load reads from the wrong address at the site"
        )
    if found.kind == "adrp":
        lo, hi = _LINUX_ADRP_REACH
        if not lo <= found.offset <= hi:
            return (
                f"{abi}'s patcher truncates this ADRP's page delta {found.offset:+#x} "
                "to the s32 of aarch64_insn_adrp_get_offset() and computes a wrong page"
            )
    return None


# --- capstone: second opinion and readable text --------------------------------

# Decoding a word at two page-aligned addresses 4 GiB apart: every operand that
# depends on the PC prints differently, every other operand the same.
_PROBE_A = 1 << 32
_PROBE_B = 1 << 33
# re.compile(r"#(0x[0-9a-f]+)$"), made where a first text is (a link that makes none, as a
# kernel module's, imports no re)
_TARGET_TEXT = None
_BARE = r"\1"  # the target without its "#"
_CS = _local()


def _cs():
    """This thread's capstone handle, made on its first use (detail off: not needed). A
    handle is not safe to share between threads (an scons -j build links in several)."""
    md = getattr(_CS, "md", None)
    if md is None:
        from altlink import csbind

        md = _CS.md = csbind.engine()
    return md


@lru_cache(maxsize=1 << 16)
def _capstone_probe(word: int) -> tuple[str, bool] | None:
    code = word.to_bytes(4, "little")
    md = _cs()
    first = next(md.disasm_lite(code, _PROBE_A), None)
    if first is None:
        return None
    second = next(md.disasm_lite(code, _PROBE_B), None)
    return first[2], second is None or first[3] != second[3]


def capstone_says_pcrel(word: int) -> bool | None:
    """Capstone's opinion on whether ``word`` reads the PC; None when capstone
    cannot decode it.

    Capstone 5.0.9's AArch64 details are not enough on their own: B, BL,
    B.cond, CBZ/CBNZ and TBZ/TBNZ carry ``CS_GRP_JUMP`` and
    ``CS_GRP_BRANCH_RELATIVE``, but BC.cond carries no group at all, and ADR,
    ADRP and the literal loads none either; their ``IMM`` operand is already
    the absolute target, indistinguishable from a plain immediate in one
    decode. So the word is decoded at two page-aligned addresses 4 GiB apart
    (``disasm_lite``, one cached handle): a PC-relative operand prints
    differently, nothing else does. Capstone 5.0.9 does not decode FEAT_CMPBR
    at all (None).
    """
    _check_word(word)
    probe = _capstone_probe(word)
    return None if probe is None else probe[1]


def disasm(code: bytes, address: int) -> list[str]:
    """One line per 4-byte word of ``code`` loaded at ``address``.

    Capstone's text, with a PC-relative target as a bare address
    (``b.eq 0x401000``), and ``.inst 0x%08x`` for a word capstone cannot decode.
    The text of a word that does not depend on its address is cached by word:
    a kernel's manifest disassembles tens of thousands of mostly equal words.
    """
    if len(code) % 4:
        raise ValueError(f"code is {len(code)} bytes, not a whole number of instructions")
    n = len(code) // 4
    words = struct.unpack(f"<{n}I", code)
    out = []
    for i, w in enumerate(words):
        pc = address + 4 * i
        template = _target_template(w)
        if template is not None:  # the text with the target recomputed for this address
            out.append(template.format(f"{target(w, pc):#x}"))
        else:
            out.append(_word_text(w, pc if classify(w).kind != "plain" else None))
    return out


def word_text(word: int, pc: int = 0) -> str:
    """One instruction word as messages show it: ``disasm``'s line for the word at ``pc``
    (``.inst 0x%08x`` for a word capstone cannot decode)."""
    return disasm(word.to_bytes(4, "little"), pc)[0]


def mnemonic(word: int) -> str:
    """The word's mnemonic alone (``.inst`` for a word capstone cannot decode): what an
    object's word says before relocation, whose operands are not meaningful yet."""
    return word_text(word).split(" ", 1)[0]


def target_line(word: int) -> tuple[str, int, bool] | None:
    """How ``disasm`` writes ``word`` at any address ``pc``: ``prefix + f"{t:#x}"``, where
    ``t`` is ``target(word, pc)``: ``(pc + offset)``, or for ADRP (``page``)
    ``(pc & ~0xfff) + offset``, modulo 2**64. Returns (prefix, offset, page); None for a
    word whose line is made otherwise."""
    template = _target_template(word)
    if template is None:
        return None
    found = decode(word)
    return (template[:-2].replace("{{", "{").replace("}}", "}"), found.offset,
            found.kind == "adrp")


@lru_cache(maxsize=1 << 15)
def _target_template(word: int) -> str | None:
    """For a PC-relative word whose target the decoder knows, capstone's text with the
    target left as ``{}``: the text then depends on the address only through the target, so
    capstone runs once per word, not once per place. None for other words."""
    if decode(word).offset is None:
        return None
    text = _word_text(word, 0)
    if not text.endswith(f"{target(word, 0):#x}"):
        return None
    return text[: -len(f"{target(word, 0):#x}")].replace("{", "{{").replace("}", "}}") + "{}"


def word_line(word: int) -> str | tuple[str, int, bool] | None:
    """How ``disasm`` writes ``word`` at any address: its text where the word is plain
    (:func:`classify`: it reads the same everywhere); :func:`target_line` where it is
    PC-relative (a tuple, or None where its line is made at each address by ``disasm``)."""
    if classify(word).kind == "plain":
        return _word_text(word, None)
    return target_line(word)


def word_lines(words) -> dict[int, str | tuple[str, int, bool] | None]:
    """:func:`word_line` of each of ``words`` (distinct), with capstone run over all of them
    at once (a manifest has thousands of distinct words, and a call per word spends twice
    capstone's decoding in Python around it). The words lie side by side from address 0:
    a plain word's text is the same at any address, and the lines of the PC-relative words
    are made from their text there and at 4 GiB above (``_target_line_at``); the probe of
    the words :func:`classify` asks capstone about is made at the probe's two addresses
    plus the word's place.
    ``word_line`` is the reference (``tests/test_image_fast.py`` compares the two)."""
    words = list(words)
    if not words:
        return {}
    sure = _SURELY_PLAIN
    found = [_PLAIN if sure[w >> 24] else decode(w) for w in words]
    texts = _texts(words, 0)
    out: dict[int, str | tuple[str, int, bool] | None] = {}
    probe = [i for i, (w, f) in enumerate(zip(words, found))
             if f is _PLAIN and _may_be_pcrel(w)]
    if probe:
        pw = [words[i] for i in probe]
        for i, a, b in zip(probe, _texts(pw, _PROBE_A, True), _texts(pw, _PROBE_B, True)):
            # _capstone_probe: the word reads the PC where its operands differ 4 GiB apart
            if a is not None and (b is None or a[1] != b[1]):
                found[i] = None  # pcrel-unknown: its lines are made at each address
    known = [i for i, f in enumerate(found) if f is not _PLAIN and f is not None
             and f.offset is not None]  # the words with a target
    far = [words[i] for i in known]
    far = dict(zip(known, (_target_line_at(w, found[i], t, _FAR + 4 * j) for j, (i, w, t)
                           in enumerate(zip(known, far, _texts(far, _FAR))))))
    for i, (w, f, text) in enumerate(zip(words, found, texts)):
        if f is _PLAIN:
            out[w] = text
        elif f is None or f.offset is None:
            out[w] = None
        else:
            line = _target_line_at(w, f, text, 4 * i)
            out[w] = line if line is not None and line == far[i] \
                and target(w, 0) >= _SMALL else target_line(w)
    return out


# By the word's top byte (bits 31:24): whether every word with it is plain by decode alone
# and not one that classify asks capstone about (decode's and _may_be_pcrel's tests read
# only bits 31:24 to tell these apart).
_SURELY_PLAIN = bytes(decode(t << 24) is _PLAIN and not _may_be_pcrel(t << 24)
                      for t in range(256))
_FAR = 1 << 32  # where word_lines decodes the PC-relative words a second time
# Capstone writes a small number in decimal ("b #4"): a word whose target is this small at
# one of the addresses is left to target_line (its text at address 0).
_SMALL = 1 << 12


def _texts(words: list[int], base: int, raw: bool = False) -> list:
    """Capstone's text of each word, the words side by side from ``base``, as
    ``_word_text(word, None)`` writes it; with ``raw``, (mnemonic, operands), or None where
    capstone cannot decode the word."""
    md = getattr(_CS, "skip", None)
    if md is None:  # a handle that steps over a word it cannot decode (4 bytes on AArch64)
        from altlink import csbind

        md = _CS.skip = csbind.engine(skipdata=True)
    out: list = [None] * len(words)
    for addr, size, mnemonic, op_str in md.disasm_lite(
            struct.pack(f"<{len(words)}I", *words), base):
        i = (addr - base) >> 2
        if mnemonic == ".byte" or size != 4:
            continue  # skipped: not decoded
        out[i] = (mnemonic, op_str) if raw else f"{mnemonic} {op_str}" if op_str else mnemonic
    if not raw:
        for i, t in enumerate(out):
            if t is None:
                out[i] = f".inst {words[i]:#010x}"
    return out


def _target_line_at(word: int, found: Classified, text: str,
                    pc: int) -> tuple[str, int, bool] | None:
    """``target_line(word)`` from the word's text at ``pc`` (``_word_text(word, pc)``
    without the target's ``#``): None where the text does not end with the target."""
    tail = target(word, pc)
    if tail < _SMALL:
        return None
    tail = f"#{tail:#x}"  # (the "#" that _word_text takes off the target)
    if not text.endswith(tail) or text.startswith(".inst "):
        return None
    return text[:-len(tail)], found.offset, found.kind == "adrp"


@lru_cache(maxsize=1 << 15)
def _word_text(word: int, address: int | None) -> str:
    """Capstone's text for one word; ``address`` None for a word whose text does not
    depend on where it is."""
    got = next(_cs().disasm_lite(word.to_bytes(4, "little"), address or 0), None)
    if got is None:
        return f".inst {word:#010x}"
    _addr, _size, mnemonic, op_str = got
    if op_str and address is not None and decode(word).offset is not None:
        global _TARGET_TEXT
        if _TARGET_TEXT is None:
            import re

            _TARGET_TEXT = re.compile(r"#(0x[0-9a-f]+)$")
        op_str = _TARGET_TEXT.sub(_BARE, op_str)
    return f"{mnemonic} {op_str}" if op_str else mnemonic
