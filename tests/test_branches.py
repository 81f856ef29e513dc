"""The numpy scan of ALT017 (``branches.into_ranges_np``) and the scan by opcode bytes
(``branches.into_ranges_bytes``) give what the per-word reference
(``branches.into_ranges_py``) gives, on every input the tests have: words of every branch
form at addresses that wrap, the synthetic firmware of the benchmark, the sample firmware, the
committed kernel modules, and Debian's vmlinux when it has been fetched.

Each input is compared twice: with its real replacements as the ranges (the findings of the
check, through the ``scan`` of ``check_image.check_branches_into_replacements``), and with
dense ranges over its code (thousands of branches land in them), so that the comparison is
never between two empty lists.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from test_kernel import SLICE_MODULES, full_kernel
from toolchain import LDSCRIPTS, link
from toolchain import synthetic_firmware as built_firmware

from altlink import branches
from altlink.check_core import Checks
from altlink.check_image import check_branches_into_replacements
from altlink.elf import SHT_NOBITS, read_elf
from altlink.linkset import Input, Options
from altlink.table import Profile

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed",
)


def dense(lo: int, hi: int, step: int = 96, width: int = 40) -> tuple[list[int], list[int]]:
    """Ranges of ``width`` bytes every ``step`` bytes over [lo, hi), with overlapping pairs
    (two ranges at one start, as entries sharing a replacement give)."""
    starts, ends = [], []
    for a in range(lo, hi, step):
        starts += [a, a]
        ends += [a + width // 2, a + width]
    return starts, ends


def code_sections(elf):
    return [s for s in elf.sections if s.executable and s.size and s.type != SHT_NOBITS]


def same_scan(elf, at_zero: bool = False, step: int = 96) -> int:
    """Both scans over every code section with dense ranges over the whole code; returns the
    number of branches found in them."""
    secs = code_sections(elf)
    base = [0 if at_zero else s.addr for s in secs]
    lo = min(base)
    hi = max(b + s.size for b, s in zip(base, secs))
    starts, ends = dense(max(lo - 64, 0), hi + 64, step, 2 * step // 3)
    total = 0
    for b, s in zip(base, secs):
        data = elf.section_data(s)
        got = branches.into_ranges_np(data, b, starts, ends)
        assert got == branches.into_ranges_py(data, b, starts, ends), s.name
        assert got == branches.into_ranges_bytes(data, b, starts, ends), s.name
        total += len(got)
    return total


def same_findings(path, profile: Profile) -> list:
    """ALT017 of the image with each scan: the same findings."""
    inp = Input.load(read_elf(str(path)))
    out = []
    for scan in (branches.into_ranges_np, branches.into_ranges_py, branches.into_ranges_bytes):
        ck = Checks(Options(profile))
        check_branches_into_replacements(ck, inp, scan)
        out.append(ck.findings)
    assert out[0] == out[1] == out[2]
    return out[0]


def test_every_branch_form_and_wrapping_addresses():
    rng = random.Random(17)
    # Branch opcodes of every form (B, BL, B.cond, BC.cond, CBZ/CBNZ, TBZ/TBNZ, both widths),
    # with random fields, among random words.
    tops = [0x14, 0x15, 0x16, 0x17, 0x94, 0x97, 0x54, 0x34, 0x35, 0xB4, 0xB5, 0x36, 0x37,
            0xB6, 0xB7]
    words = []
    for _ in range(60_000):
        if rng.random() < 0.6:
            words.append((rng.choice(tops) << 24) | rng.getrandbits(24))
        else:
            words.append(rng.getrandbits(32))
    data = b"".join(w.to_bytes(4, "little") for w in words) + b"\x00\x01"  # a ragged tail
    # The last one ends just below 2**64: forward branches wrap to low addresses.
    for addr in (0, 0x400000, 0xFFFF800008000000, 0x1000, (1 << 64) - 4 * len(words) - 64):
        starts, ends = [], []
        for pc in rng.sample(range(len(words)), 3000):
            from altlink import insn
            t = insn.target(words[pc], addr + 4 * pc)
            if t is not None:
                starts.append(t - rng.randrange(0, 12, 4))
                ends.append(t + rng.randrange(0, 12, 4))
        order = sorted(zip(starts, ends))
        starts, ends = [s for s, _ in order], [e for _, e in order]
        got = branches.into_ranges_np(data, addr, starts, ends)
        assert got == branches.into_ranges_py(data, addr, starts, ends), hex(addr)
        assert got == branches.into_ranges_bytes(data, addr, starts, ends), hex(addr)
        assert len(got) > 1000
        assert all(t < 1 << 64 for _, _, t in got)
    assert branches.into_ranges_np(data, 0, [], []) == branches.into_ranges_py(data, 0, [], []) \
        == branches.into_ranges_bytes(data, 0, [], [])


def synthetic_firmware(tmp_path: Path) -> Path:
    """The benchmark's synthetic firmware, 24 objects (compiled once, in bench/out), linked
    by GNU ld into ``tmp_path/fw.elf``."""
    fw = built_firmware()
    d = Path(fw.dir)
    return link([d / o for o in fw.objects], tmp_path / "fw.elf", script=d / "fw.ld",
                flags=["-L", LDSCRIPTS, "-static"])


def test_the_synthetic_firmware(tmp_path):
    image = synthetic_firmware(tmp_path)
    assert same_scan(read_elf(str(image)), step=16) > 20
    assert same_findings(image, Profile("linux-v4.17", 85)) == []


def test_the_sample_firmware(tmp_path):
    from test_header import build_sample

    for toolchain in ("gnu", "llvm"):
        if toolchain == "llvm" and not shutil.which("ld.lld"):
            continue
        image = build_sample(tmp_path / toolchain, toolchain, "linux-v4.17")
        assert same_scan(read_elf(str(image))) > 10
        assert same_findings(image, Profile("linux-v4.17", 3)) == []


def test_the_committed_kernel_modules():
    assert SLICE_MODULES
    found = sum(same_scan(read_elf(str(m)), at_zero=True) for m in SLICE_MODULES)
    assert found > 1000


def test_debians_vmlinux():
    kdir = full_kernel()
    if kdir is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    vmlinux = kdir / "vmlinux"
    assert same_scan(read_elf(str(vmlinux))) > 10_000
    assert same_findings(vmlinux, Profile("linux-v6.1")) == []
