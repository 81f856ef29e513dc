"""The profile read from the tables' raw fields (``altlink/abiscan.py``), for a command without
``--abi``, against its reference: every table read (``inputs.load``), then
``table.detect_abi``.

- Each file's bits (callback-marked entries without and with a replacement, unmarked ones
  without) are those of the entries the reader reads, and the fast way answers for every real
  file without leaving it to the reference: the fuzz seeds (objects of both profiles, gcc's
  and clang's, archives, thin archives, images), the sample firmware's objects and images
  (GNU and LLVM), the benchmark's synthetic firmware, the committed kernel modules, and,
  where they are there, Debian's 992 modules and vmlinux.
- Damaged files (the fuzzer's mutations of the seeds, one to three files at a time): the same
  answer, or the same error (the first unusable file, named as ``inputs.load`` names it).
- ``altlink check`` without ``--abi``: the same output, notes and exit status as with the
  reference in its place.
"""
from __future__ import annotations

import io
import itertools
import random
import shutil
import sys
from pathlib import Path

import pytest
from fuzz import fuzz as harness
from fuzz import mutate
from test_kernel import SLICE_MODULES, full_kernel
from toolchain import GNU_LD
from toolchain import synthetic_firmware as built_firmware

from altlink import abiscan, cli, inputs
from altlink.errors import AltlinkError
from altlink.table import CB_BIT_V61, detect_abi

pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    d = tmp_path_factory.mktemp("abiscan") / "seeds"
    return harness.prepare_seeds(str(d), firmware=False)


def seed_files(s) -> list[Path]:
    d = Path(s.dir)
    out = [d / o for o, _ in s.objects] + [d / a for a, _ in s.archives]
    out += [d / i.elf for i in s.images]
    return out + [Path(m) for m, _ in s.modules]


def reference_bits(path, count: list | None = None) -> int:
    """The bits of the entries the reader reads (``inputs.load``); their number appended to
    ``count``."""
    out = n = 0
    for inp in inputs.load([str(path)]):
        for e in inp.table.entries:
            marked = e.cap_raw & CB_BIT_V61
            out |= (abiscan.MARKED_ALT if e.alt_len else abiscan.MARKED) if marked else \
                (abiscan.UNMARKED_CB if e.alt_len == 0 else 0)
            n += 1
    if count is not None:
        count.append(n)
    return out


def outcome(fn, paths):
    try:
        return "abi", fn([str(p) for p in paths])
    except AltlinkError as e:
        return "error", str(e)


def same_bits(paths) -> int:
    """Each file's bits the same both ways, found by the fast way itself; the answer for all
    of them the same. The number of files with entries."""
    counts: list[int] = []
    for p in paths:
        bits = abiscan._path_bits(str(p))  # _Unsure would fail the test: a real file
        assert bits == reference_bits(p, counts), p
    with_entries = sum(n > 0 for n in counts)
    paths = [str(p) for p in paths]
    assert abiscan.detect_abi_paths(paths) == abiscan.detect_abi_reference(paths)
    return with_entries


def test_the_rule_over_bits_is_detect_abis():
    from altlink.table import Entry, Place, Table

    place = Place(".text", 1, 0)
    for caps in ([], [0x8002], [0x8002, 4], [0x8002, 0x8003], [0x8002, 0x8001]):
        for lens in ([0] * len(caps), [4] * len(caps), [0, 4, 0][:len(caps)]):
            entries = [Entry("x.o", i, ".altinstructions", 12 * i, place, place, c, 4, a)
                       for i, (c, a) in enumerate(zip(caps, lens))]
            data = b"".join(bytes(8) + c.to_bytes(2, "little")
                            + bytes([4, a]) for c, a in zip(caps, lens))
            got = abiscan.abi_of_bits(abiscan.entry_bits(data, len(caps)))
            assert got == detect_abi([Table("x.o", entries, [], [])]), (caps, lens)


def test_the_seeds(seeds):
    files = seed_files(seeds)
    assert same_bits(files) >= 5
    v61 = [p for p in files if "v61" in p.name]
    assert abiscan.detect_abi_paths([str(p) for p in v61]) == "linux-v6.1"
    assert abiscan.detect_abi_paths([str(p) for p in files]) is None  # v4.17's callbacks too


def test_the_sample_firmware(tmp_path):
    from test_header import build_sample

    for toolchain in ("gnu", "llvm"):
        if toolchain == "llvm" and not shutil.which("ld.lld"):
            continue
        for profile in ("linux-v4.17", "linux-v6.1"):
            d = tmp_path / toolchain / profile
            image = build_sample(d, toolchain, profile)
            assert same_bits([*sorted(d.glob("*.o")), image]) >= 3
            want = "linux-v6.1" if profile == "linux-v6.1" else None
            assert abiscan.detect_abi_paths([str(image)]) == want


def test_the_synthetic_firmware():
    fw = built_firmware()
    objs = [Path(fw.dir) / o for o in fw.objects]
    assert same_bits(objs) > 20


def test_the_committed_modules():
    assert same_bits(SLICE_MODULES) > 10
    assert abiscan.detect_abi_paths([str(p) for p in SLICE_MODULES]) == "linux-v6.1"


def test_debians_kernel():
    kdir = full_kernel()
    if kdir is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    mods = sorted((kdir / "modules").rglob("*.ko"))
    assert len(mods) > 900
    assert same_bits([*mods, kdir / "vmlinux"]) > 500


def damaged(seeds, tmp_path, count: int, seed: int) -> list[Path]:
    """Files the fuzzer's mutators made from the seeds (ELF files and archives)."""
    rng = random.Random(seed)
    files = seed_files(seeds)
    out = []
    for k in range(count):
        src = rng.choice(files)
        data = src.read_bytes()
        if data[:8] in (b"!<arch>\n", b"!<thin>\n"):
            new, _what = mutate.mutate_ar(rng, data)
        else:
            new, _what = mutate.mutate_elf(rng, data)
        p = tmp_path / f"d{k}{src.suffix}"
        p.write_bytes(new)
        out.append(p)
    return out


def test_damaged_files(seeds, tmp_path):
    """The answer or the error of the reference, for each damaged file alone and for runs of
    them with the seeds; where the fast way answers for a file, its bits are the reader's."""
    files = damaged(seeds, tmp_path, 500, 13)
    good = seed_files(seeds)
    rng = random.Random(14)
    answered = errors = 0
    for p in files:
        got = outcome(abiscan.detect_abi_paths, [p])
        assert got == outcome(abiscan.detect_abi_reference, [p]), p
        errors += got[0] == "error"
        if got[0] == "abi":
            try:
                bits = abiscan._path_bits(str(p))
            except abiscan._Unsure:
                continue
            assert bits == reference_bits(p), p
            answered += 1
    for _ in range(150):
        paths = rng.sample(files, rng.randint(1, 3)) + rng.sample(good, 2)
        rng.shuffle(paths)
        assert outcome(abiscan.detect_abi_paths, paths) == \
            outcome(abiscan.detect_abi_reference, paths), paths
    assert errors > 50 and answered > 100  # both kinds were met


def run_check(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stderr
    sys.stderr = err
    try:
        rc = cli.main(["check", "--no-cache", *map(str, args)], out=out)
    except SystemExit as e:  # noqa: B012
        rc = e.code
    finally:
        sys.stderr = saved
    return rc, out.getvalue(), err.getvalue()


def test_check_without_abi_as_with_the_reference(seeds, tmp_path, monkeypatch):
    """``altlink check`` without --abi: the same findings, notes and exit status with the
    reference in the fast way's place (and the files read again by ``check_paths``), for
    good files of both profiles, named twice, and damaged ones."""
    files = seed_files(seeds)
    runs = [[p] for p in files] + [files, files + files[:3]]
    runs += [[p] for p in damaged(seeds, tmp_path, 60, 15)]
    got = [run_check(*r) for r in runs]
    # The reference reads every table and gives ``check_paths`` no file read on the way.
    monkeypatch.setattr(abiscan, "detect_abi_paths",
                        lambda paths, mapped=None: abiscan.detect_abi_reference(paths))
    assert got == [run_check(*r) for r in runs]
    assert any("using --abi linux-v6.1" in err for _, _, err in got)
    assert any(rc == 2 for rc, _, _ in got)


# One entry of each kind, and a callback beside a static entry (what decides the answer).
KINDS = {
    "marked-cb": "\tent site0, other_cb, 0x8001, 4, 0\n",
    "marked-alt": "\tent site0, r0, 0x8001, 4, 4\n",
    "unmarked-cb": "\tent site0, other_cb, 4, 4, 0\n",
    "static": "\tent site0, r0, 1, 4, 4\n",
    "marked-cb-and-static": "\tent site0, other_cb, 0x8001, 4, 0\n\tent site1, r0, 1, 4, 4\n",
}
R0 = '\t.pushsection .altinstr_replacement, "ax"\nr0:\tmovz x0, #1\n\t.popsection\n'


def variants(data: bytes):
    """``data`` with one field of its table, relocations, symbols or section headers set to
    a value that breaks an assumption, each in turn."""
    lay = mutate.layout(data)
    shnum = len(lay.sections)
    for name, hdr, typ, off, size, _ in lay.sections:
        fields = ("sh_name", "sh_type", "sh_offset", "sh_size", "sh_link", "sh_info")
        for f in fields:
            at, width = mutate.SHDR_FIELDS[f]
            cur = mutate.peek(bytearray(data), hdr + at, width)
            for v in (0, 1, cur + 1, cur - 1, cur + 12, shnum, len(data), len(data) + 1,
                      mutate.SHT_REL, mutate.SHT_NOBITS, 0x40000014, (1 << 8 * width) - 1):
                buf = bytearray(data)
                mutate.poke(buf, hdr + at, width, v)
                yield bytes(buf)
        if typ == mutate.SHT_RELA and name == ".rela.altinstructions":
            nsyms = sum(s[4] // 24 for s in lay.sections if s[2] == mutate.SHT_SYMTAB)
            for i in range(size // 24):
                for at, width, values in ((0, 8, (1, 2, 12, 100)), (8, 4, (0, 257, 261, 0xFFFF)),
                                          (12, 4, (0, nsyms - 1, nsyms, 0xFFFFFF))):
                    for v in values:
                        buf = bytearray(data)
                        mutate.poke(buf, off + 24 * i + at, width, v)
                        yield bytes(buf)
        if typ == mutate.SHT_SYMTAB:
            for i in range(size // 24):
                for v in (*mutate.SHNDX_VALUES, shnum, shnum - 1):
                    buf = bytearray(data)
                    mutate.poke(buf, off + 24 * i + 6, 2, v)
                    yield bytes(buf)
    # Two fields: another relocation section for the table (REL, CREL: the reader's other
    # way, or its error), and a name table of no contents past the file's end.
    table = [i for i, s in enumerate(lay.sections) if s[0] == ".altinstructions"]
    for name, hdr, *_ in lay.sections:
        if table and name in (".text", ".data", ".bss", ".rela.text"):
            for t in (mutate.SHT_RELA, mutate.SHT_REL, 0x40000014):
                buf = bytearray(data)
                mutate.poke(buf, hdr + 4, 4, t)
                mutate.poke(buf, hdr + 44, 4, table[0])
                yield bytes(buf)
        if name in (".altinstructions", ".strtab"):  # of no type: its extent is checked
            for t, at in itertools.product((0, mutate.SHT_NOBITS), (24, 32)):  # where it
                buf = bytearray(data)  # is read, not with the headers
                mutate.poke(buf, hdr + 4, 4, t)
                mutate.poke(buf, hdr + at, 8, len(data))  # its offset or its size
                yield bytes(buf)
        if name == ".shstrtab":
            buf = bytearray(data)
            mutate.poke(buf, hdr + 4, 4, mutate.SHT_NOBITS)
            mutate.poke(buf, hdr + 32, 8, len(data))
            yield bytes(buf)
    for f in ("e_shoff", "e_shnum", "e_shstrndx", "e_shentsize"):
        at, width = mutate.EHDR_FIELDS[f]
        for v in (0, 1, shnum - 1, shnum + 1, len(data), 0xFFFF):
            buf = bytearray(data)
            mutate.poke(buf, at, width, v)
            yield bytes(buf)


def test_damaged_tables(tmp_path):
    """Objects of one or two entries (so that losing one changes the answer), each with one
    field of its relocations, symbols or section headers changed: the reference's answer or
    error, and where the fast way answers, the entries' bits the reader reads."""
    from test_checks import build

    answered = unsure = errors = 0
    for kind, body in KINDS.items():
        obj = build(tmp_path, kind, R0 + body)
        data = obj.read_bytes()
        assert abiscan._path_bits(str(obj)) == reference_bits(obj)
        for k, new in enumerate(variants(data)):
            p = tmp_path / f"{kind}-{k}.o"
            p.write_bytes(new)
            got = outcome(abiscan.detect_abi_paths, [p])
            assert got == outcome(abiscan.detect_abi_reference, [p]), (kind, k)
            if got[0] == "error":
                errors += 1
                continue
            try:
                bits = abiscan._path_bits(str(p))
            except abiscan._Unsure:
                unsure += 1
                continue
            assert bits == reference_bits(p), (kind, k)
            answered += 1
    assert answered > 500 and unsure > 100 and errors > 100
