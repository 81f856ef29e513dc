"""The numpy scan of ALT017 (``branches.into_ranges_np``), the scan by opcode bytes
(``branches.into_ranges_bytes``) and the compiled one (``_speedups.into_ranges``, where the
extension is built: ``./run test`` requires it) give what the per-word reference
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

from altlink import branches, speedups
from altlink.check_core import Checks
from altlink.check_image import check_branches_into_replacements
from altlink.elf import SHT_NOBITS, read_elf
from altlink.linkset import Input, Options
from altlink.table import Profile

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed",
)


def compiled(data, addr: int, starts: list[int], ends: list[int]) -> list[tuple]:
    """The extension's scan itself (not ``into_ranges_c``, which falls back on the Python
    where the C declines): None here is a failure."""
    got = speedups._checked().into_ranges(data, addr, starts, ends)
    assert got is not None
    return got


def fast_scans() -> list:
    """The scans that must give the reference's answer: the compiled one where it is built."""
    return [branches.into_ranges_np, branches.into_ranges_bytes] + (
        [compiled] if speedups.available() else [])


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
        got = branches.into_ranges_py(data, b, starts, ends)
        for scan in fast_scans():
            assert scan(data, b, starts, ends) == got, (s.name, scan.__name__)
        total += len(got)
    return total


def same_findings(path, profile: Profile) -> list:
    """ALT017 of the image with each scan: the same findings."""
    inp = Input.load(read_elf(str(path)))
    out = []
    for scan in [branches.into_ranges_py, *fast_scans()]:
        ck = Checks(Options(profile))
        check_branches_into_replacements(ck, inp, scan)
        out.append(ck.findings)
    assert all(o == out[0] for o in out)
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
        got = branches.into_ranges_py(data, addr, starts, ends)
        for scan in fast_scans():
            assert scan(data, addr, starts, ends) == got, (hex(addr), scan.__name__)
        assert len(got) > 1000
        assert all(t < 1 << 64 for _, _, t in got)
        # Ranges out of order (bisect's answer, step for step) and ranges ending before they
        # start: what the reference gives, whatever it means.
        shuffled = list(starts)
        rng.shuffle(shuffled)
        backwards = [e - 16 for e in ends]
        for st, en in ((shuffled, ends), (starts, backwards)):
            got = branches.into_ranges_py(data, addr, st, en)
            for scan in fast_scans()[1:]:  # (numpy sorts by its own rule: sorted ranges only)
                assert scan(data, addr, st, en) == got, (hex(addr), scan.__name__)
    for scan in fast_scans():
        assert scan(data, 0, [], []) == branches.into_ranges_py(data, 0, [], []) == []


def test_the_compiled_scan_declines_what_is_not_an_address():
    """Addresses and ranges beyond 64 bits, negative ones, code that runs past 2**64, and
    ints that are not ints: the C returns None and ``into_ranges_c`` gives the Python's answer
    (the reference's: it takes no pc modulo 2**64)."""
    if not speedups.available():
        pytest.skip("the extension is not built")
    sp = speedups._checked()
    data = (0x14000001).to_bytes(4, "little") * 8  # b .+4, eight times
    cases = [(0, [4], [1 << 64]), (0, [-4], [8]), (-8, [4], [8]), (1 << 64, [4], [8]),
             ((1 << 64) - 8, [0], [1 << 70]), (0, [4.0], [8]), (0, [True], [8])]
    for addr, starts, ends in cases:
        want = branches.into_ranges_py(data, addr, starts, ends)
        if isinstance(starts[0], float):
            assert sp.into_ranges(data, addr, starts, ends) is None
            continue
        got = sp.into_ranges(data, addr, starts, ends)
        assert got is None or got == want, (addr, starts, ends)
        assert branches.into_ranges_c(data, addr, starts, ends) == want, (addr, starts, ends)
    # The code's last word at 2**64 - 4: within; one word further, declined.
    top = (1 << 64) - 4 * 8
    assert sp.into_ranges(data, top, [top], [(1 << 64) - 1]) == \
        branches.into_ranges_py(data, top, [top], [(1 << 64) - 1]) != []
    assert sp.into_ranges(data, top + 4, [top], [(1 << 64) - 1]) is None
    assert sp.into_ranges(data, 0, [0], []) is None  # (the reference fails on max([]))


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
