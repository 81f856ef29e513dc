"""altlink.csbind, capstone's library called directly, against the capstone package's own
binding (the reference): the same text for every word, alone and side by side, with and
without skipdata; the package where the library is not usable; no import of the package on
the way to a disassembly."""

from __future__ import annotations

import random
import struct
import subprocess
import sys

import capstone
import pytest

from altlink import csbind, insn


def _package(skipdata: bool = False):
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.skipdata = skipdata
    return md


def _words(n: int, seed: int) -> list[int]:
    """Random words, half of them in the branch, system and load/store groups, and the forms
    a kernel's replacements hold."""
    rng = random.Random(seed)
    out = [0xD503201F, 0xD65F03C0, 0x14000010, 0x54FFFFB1, 0x90000000, 0x58000041,
           0xD5384600, 0xFFFFFFFF, 0x00000000]
    for i in range(n):
        w = rng.getrandbits(32)
        if i % 2:
            w = (w & ~(0xE << 25)) | (rng.choice((0x8, 0xA, 0xC, 0xE)) << 25)
        out.append(w)
    return out


def test_the_library_is_found_and_used():
    assert csbind.library_path() is not None
    assert isinstance(csbind.engine(), csbind.Engine)


@pytest.mark.parametrize("address", [0, 0x1000, 1 << 32, 0xFFFF_FFFF_FFFF_F000])
def test_each_word_reads_as_the_package_reads_it(address):
    ours, ref = csbind.engine(), _package()
    for w in _words(4000, address & 0xFFFF):
        code = w.to_bytes(4, "little")
        assert list(ours.disasm_lite(code, address)) == list(ref.disasm_lite(code, address)), \
            f"{w:#010x}"


def test_words_side_by_side_with_and_without_skipdata():
    words = _words(6000, 7)
    code = struct.pack(f"<{len(words)}I", *words)
    for skip in (False, True):
        ours, ref = csbind.engine(skip), _package(skip)
        got = list(ours.disasm_lite(code, 0x400000))
        assert got == list(ref.disasm_lite(code, 0x400000))
        assert len(got) > (len(words) - 10 if skip else 0)
    assert list(csbind.engine().disasm_lite(b"", 0)) == []


def test_the_package_where_the_library_is_not_usable(monkeypatch):
    monkeypatch.setattr(csbind, "_lib", False)
    monkeypatch.setattr(csbind, "library_path", lambda: None)
    md = csbind.engine(skipdata=True)
    assert isinstance(md, capstone.Cs) and md.skipdata
    # A library of another version than the layout here is not used either.
    monkeypatch.setattr(csbind, "API", (4, 0))
    assert csbind._open(_real_library_path()) is None


def _real_library_path() -> str:
    import os

    return os.path.join(os.path.dirname(capstone.__file__), "lib", "libcapstone.so")


def test_disassembly_does_not_import_the_package():
    code = ("import sys\nfrom altlink import insn\n"
            "print(insn.disasm(bytes.fromhex('1f2003d5c0035fd6'), 0x1000))\n"
            "print(sorted(insn.word_lines([0x14000010, 0xd503201f]).items()))\n"
            "print(insn.capstone_says_pcrel(0x5500001f))\n"
            "print('capstone' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.splitlines()
    assert out == ["['nop', 'ret']", "[(335544336, ('b ', 64, False)), (3573751839, 'nop')]",
                   "None", "False"]


def test_insn_texts_are_the_package_texts(monkeypatch):
    """``insn``'s lines (``disasm``, ``word_lines``) made through the library and through the
    package (the handles of this thread replaced) are the same."""
    words = _words(3000, 11)
    code = struct.pack(f"<{len(words)}I", *words)

    def lines():
        insn._word_text.cache_clear()
        insn._target_template.cache_clear()
        insn._capstone_probe.cache_clear()
        return insn.disasm(code, 0x80000), insn.word_lines(set(words))

    monkeypatch.delattr(insn._CS, "md", raising=False)
    monkeypatch.delattr(insn._CS, "skip", raising=False)
    ours = lines()
    assert isinstance(insn._CS.md, csbind.Engine)
    monkeypatch.setattr(insn._CS, "md", _package())
    monkeypatch.setattr(insn._CS, "skip", _package(True))
    assert lines() == ours
