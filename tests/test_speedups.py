"""The optional C extension (``altlink/_speedups.c``, loaded by ``altlink/speedups.py``): the
same records with it and without it, on every object the tests have, and on damaged copies.

- Where ``./run test`` runs the tests (ALTLINK_REQUIRE_SPEEDUPS=1), the extension must be
  built and used: a venv without it fails here. Elsewhere, where it is not built, the
  comparisons are skipped and say so.
- Where it cannot be built (no C compiler), the package still builds and installs, and runs
  its Python; with a compiler, the wheel carries it and its source.
- It is used only where it was built from the source beside it: a copy of the package whose
  ``_speedups.c`` differs by a byte does not load it (stale), nor does ALTLINK_NO_SPEEDUPS=1.
- A record made with it and without it: the same bytes (the record as the cache pickles it,
  with its section headers, table entries and findings), or the same error, for the checks'
  objects (every good and broken entry), the committed Linux slices (tests/data/kernel*:
  Linux 6.1's modules, 5.10's and 7.2's objects and modules),
  the benchmark's synthetic firmware under both profiles, and copies of some of those with
  bytes changed in their headers, section headers, tables, relocations, symbols and string
  tables, or truncated.
"""
from __future__ import annotations

import os
import pickle
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_cache import options
from test_checks import build, repl
from test_make_fast import V61, V417, checked_objects, debians_modules, synthetic_objects
from toolchain import GNU_LD

from altlink import records, speedups
from altlink.branches import into_ranges_py
from altlink.check_core import Checks, facts_of
from altlink.check_entries import sites_overlap, sites_overlap_py
from altlink.check_linkset import collect
from altlink.check_objects import (
    _moves_fine,
    _moves_fine_py,
    _rela_parts,
    branch_ranges,
    marked_words,
    may_find,
)
from altlink.elf import _RELA, _SHDR, Section, from_bytes, map_bytes
from altlink.errors import AltlinkError
from altlink.linkset import Input
from altlink.table import read_table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
KERNEL_OBJECTS = sorted((DATA / "kernel" / "modules").glob("*.ko"))
KERNEL_510 = sorted((DATA / "kernel-5.10").glob("*/*.[ok]*"))
KERNEL_72 = sorted((DATA / "kernel-7.2").glob("*/*.[ok]*"))

REQUIRED = os.environ.get("ALTLINK_REQUIRE_SPEEDUPS") == "1"
built = pytest.mark.skipif(
    not speedups.available(),
    reason="altlink's C extension (altlink/_speedups.c) is not built in this environment "
    f"({'; '.join(speedups.WHY)}): the comparison of its results with the Python's is "
    "skipped (./run test builds it and requires it)")
binutils = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")


@pytest.fixture(autouse=True)
def _as_the_environment_says():
    yield
    speedups.use(None)


def test_built_where_required():
    """``./run test`` sets ALTLINK_REQUIRE_SPEEDUPS=1: its venv must have the extension,
    built from the source beside it, and use it."""
    if not REQUIRED:
        pytest.skip("ALTLINK_REQUIRE_SPEEDUPS is not set (./run test sets it)")
    assert speedups.available(), speedups.WHY
    assert os.environ.get("ALTLINK_NO_SPEEDUPS", "") in ("", "0")
    speedups.use(None)
    assert speedups.get() is not None


def made(data: bytes, args: tuple, on: bool, name: str = "x.o"):
    """What altlink makes of an object, with the extension (``on``) or without: its section
    headers, its table's entries and findings, and its record as the cache keeps it, pickled;
    or the error it reports."""
    speedups.use(on)
    return _each_alone(data, name), _record(data, args, name)


def _each_alone(data: bytes, name: str):
    """What each function the extension does gives alone, on the object just read (nothing
    decoded before it): its global definitions, its table."""
    out = []
    for what in (records._defines, lambda elf: read_table(elf).__dict__, _kept, _headers):
        try:
            out.append(pickle.dumps(what(from_bytes(name, data)), protocol=-1))
        except AltlinkError as e:
            out.append(("error", str(e)))
    return out


def _kept(elf):
    """``may_find``'s entries, and the ranges of ``check_object_branches``, under both
    profiles."""
    inp = Input.load(elf)
    out = []
    for args in (V417, V61):
        ck = Checks(options(*args))
        out.append(may_find(ck, inp))
        out.append(branch_ranges(inp, facts_of(ck.profile), ck.profile, speedups.get()))
        out.append(records.digest(inp, ck.profile))
    return out


def _headers(elf):
    """The code's size from the section headers before they are decoded (``code_size``), the
    sections by name, the symbol table and the relocation sections by section
    (``_index_sections``), and whether two sites share a byte (``sites_overlap``)."""
    out = [elf.code_size(), elf._index_sections(), elf.code_size()]  # (decoded: again)
    try:
        out.append(sites_overlap(read_table(elf).entries))
    except AltlinkError as e:
        out.append(("error", str(e)))
    return out


def _record(data: bytes, args: tuple, name: str):
    try:
        elf = from_bytes(name, data)
        recs, _profile, found = collect([elf], options(*args), [], None)
        rec = recs[0]
        table = rec.full().table
        # (the record, its findings and the check's each pickled alone: a record the
        # extension makes whole, ``records.make_plain``, shares no string with the section
        # headers, which it does not decode: a finding's place names them when it is worded)
        made = (pickle.dumps((elf.sections, table.entries, table.findings), protocol=-1),
                *(pickle.dumps(x, protocol=-1) for x in (found, rec.to_plain(), rec.findings)))
    except AltlinkError as e:
        return ("error", str(e))
    # The record without its digest, as ``altlink check --no-cache`` makes it
    elf = from_bytes(name, data)
    recs, _profile, found = collect([elf], options(*args), [], None, with_digest=False)
    return pickle.dumps((*made, *(pickle.dumps(x, protocol=-1) for x in (
        found, recs[0].to_plain(), recs[0].findings))), protocol=-1)


def same_both_ways(data: bytes, args: tuple, name: str = "x.o"):
    fast, ref = made(data, args, True, name), made(data, args, False, name)
    assert fast == ref, name
    return fast[1]


def hits(paths_args) -> dict:
    """How often each function of the extension answered (not None) and passed (None)."""
    speedups.use(True)
    sp = speedups.get()
    counts: dict = {}
    real = {n: getattr(sp, n) for n in ("sections", "object_entries", "global_defines",
                                        "may_find", "branch_ranges", "object_branch_words",
                                        "digest_entries", "index_sections", "code_size",
                                        "sites_overlap", "object_plain")}

    def counted(n):
        def f(*a):
            got = real[n](*a)
            counts[n, got is not None] = counts.get((n, got is not None), 0) + 1
            return got
        return f
    try:
        for n in real:
            setattr(sp, n, counted(n))
        for p, args in paths_args:
            made(Path(p).read_bytes(), args, True, str(p))
    finally:
        for n, f in real.items():
            setattr(sp, n, f)
    return counts


@built
def test_the_committed_linux_slices():
    objs = [(p, V61) for p in KERNEL_OBJECTS] + [(p, ("--abi", "linux-v4.17"))
                                                 for p in KERNEL_510]
    objs += [(p, ("--abi", "linux-v6.1")) for p in KERNEL_72]
    assert len(objs) >= 20
    for p, args in objs:
        got = same_both_ways(p.read_bytes(), args, str(p))
        assert type(got) is bytes, got  # (no error: read as the kernel tests read them)
    counts = hits(objs)  # the extension read each of them
    assert counts.get(("sections", True), 0) >= len(objs), counts
    # none passed to the Python; a record made whole where the checks find nothing but
    # callbacks left to the link set
    assert not [k for k in counts if not k[1] and k[0] != "object_plain"], counts
    assert counts.get(("object_plain", True), 0) >= 10, counts
    assert counts.get(("object_entries", True), 0) >= len(objs) - 2, counts
    assert counts.get(("global_defines", True)) >= len(objs), counts


@built
@binutils
def test_the_checks_objects(tmp_path):
    """Every form of entry and every broken one (tests/test_checks.py's), built with the
    toolchain."""
    objs = checked_objects(tmp_path)
    for p, args in objs:
        same_both_ways(p.read_bytes(), args, str(p))
    counts = hits(objs)
    assert counts.get(("object_entries", True), 0) > len(objs) // 2, counts


@built
@binutils
def test_the_synthetic_firmware_both_profiles():
    objs, args = synthetic_objects()
    v61 = tuple("linux-v6.1" if a == "linux-v4.17" else a for a in args)
    for p in objs:
        for a in (args, v61):
            same_both_ways(p.read_bytes(), a, str(p))
    counts = hits([(p, args) for p in objs])
    assert counts.get(("object_entries", True), 0) > len(objs) // 2, counts
    assert counts.get(("object_entries", False), 0) == 0, counts  # never passed to the Python
    # each record made whole, with its digest (a link's) and without (a check's)
    assert counts.get(("object_plain", True), 0) == 2 * len(objs), counts


def mutations(data: bytes, rng: random.Random, count: int):
    """Copies of an object with bytes changed where the extension reads: the ELF header's
    section fields, the section headers, and the bytes of its table, its relocations, its
    symbol table and string tables; and copies cut short."""
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shnum = int.from_bytes(data[0x3C:0x3E], "little")
    secs = [_SHDR.unpack_from(data, shoff + i * 64) for i in range(shnum)]
    spans = [(0x20, 0x40), (shoff, shoff + shnum * 64)]
    spans += [(s[4], s[4] + s[5]) for s in secs if s[1] in (1, 2, 3, 4) and s[5]]
    for k in range(count):
        b = bytearray(data)
        if k % 7 == 6:
            yield bytes(b[:rng.randrange(0x40, len(b))])
            continue
        for _ in range(rng.choice((1, 1, 2, 4))):
            lo, hi = rng.choice(spans)
            at = rng.randrange(lo, min(hi, len(b)))
            b[at] = rng.choice((0, 0xFF, b[at] ^ (1 << rng.randrange(8)), rng.randrange(256)))
        yield bytes(b)


@built
def test_damaged_copies():
    """Copies with bytes changed in every part the extension reads, or cut short: the same
    record or the same error, and never a crash (this process runs them)."""
    rng = random.Random(13)
    samples = [(p, V61) for p in KERNEL_OBJECTS[:4]] + [(p, ("--abi", "linux-v4.17"))
                                                       for p in KERNEL_510[:3]]
    if shutil.which(GNU_LD[0]):
        objs, args = synthetic_objects()
        samples += [(p, args) for p in objs[:3]]
    outcomes = set()
    for p, args in samples:
        for data in mutations(p.read_bytes(), rng, 36):
            got = same_both_ways(data, args, str(p))
            outcomes.add("error" if type(got) is tuple else "record")
    assert outcomes == {"error", "record"}


@built
def test_table_edge_cases():
    """Tables the extension reads only in part or not at all, each against the Python:
    relocations out of order, of another type, against a symbol past the table, against
    symbols in special sections, addends at the ends of 64 bits, names not UTF-8."""
    src = KERNEL_OBJECTS[0].read_bytes()
    elf = from_bytes("x.o", src)
    table = next(s for s in elf.sections if s.name == ".altinstructions")
    rela = elf.relocation_sections_for(table)[0]
    sym = elf.symtab
    strtab = elf.sections[sym.link]
    names = elf.sections[elf.shstrndx]
    n = rela.size // 24

    def rel_edit(i, offset=None, rtype=None, symbol=None, addend=None):
        b = bytearray(src)
        at = rela.offset + 24 * i
        o, info, a = _RELA.unpack_from(b, at)
        _RELA.pack_into(b, at, o if offset is None else offset,
                        ((info >> 32 if symbol is None else symbol) << 32)
                        | (info & 0xFFFFFFFF if rtype is None else rtype),
                        a if addend is None else addend)
        return bytes(b)

    first_sym = _RELA.unpack_from(src, rela.offset)[1] >> 32
    copies = [
        rel_edit(0, offset=4), rel_edit(1, offset=0), rel_edit(n - 1, offset=1 << 40),
        rel_edit(2, rtype=257), rel_edit(3, symbol=sym.size // 24),
        rel_edit(3, symbol=(1 << 32) - 1), rel_edit(0, addend=(1 << 63) - 1),
        rel_edit(0, addend=-(1 << 63)), rel_edit(1, addend=-(1 << 40)),
    ]
    # the symbol of the first relocation (a section's) in special sections, past the
    # sections, undefined; and undefined with a name (an undefined section symbol is named)
    defined = [s for s in elf.symbols if s.bind and s.shndx and s.type != 3 and s.name]
    for shndx, named in ((0, False), (0, True), (0xFFF1, False), (0xFFF2, False),
                         (0xFFFF, False), (0xFF00, False), (len(elf.sections), False)):
        b = bytearray(src)
        at = sym.offset + 24 * first_sym
        b[at + 6:at + 8] = shndx.to_bytes(2, "little")
        if named:
            at0 = sym.offset + 24 * defined[0].index
            b[at:at + 4] = b[at0:at0 + 4]
        copies.append(bytes(b))
    for tab in (strtab, names):  # a name that is not UTF-8, one not ended
        for at, byte in ((tab.offset + 1, 0xFF), (tab.offset + tab.size - 1, 0x41)):
            b = bytearray(src)
            b[at] = byte
            copies.append(bytes(b))
    b = bytearray(src)  # a symbol value near the top of 64 bits
    at = sym.offset + 24 * first_sym + 8
    b[at:at + 8] = ((1 << 64) - 2).to_bytes(8, "little")
    copies.append(bytes(b))
    # two global definitions of one name, of different types or sections (the first is the
    # definition kept)
    two = [defined[0]] + [s for s in defined if (s.type, s.shndx) != (defined[0].type,
                                                                     defined[0].shndx)][:1]
    assert len(two) == 2
    b = bytearray(src)
    one, other = (sym.offset + 24 * s.index for s in two)
    b[other:other + 4] = b[one:one + 4]
    copies.append(bytes(b))
    for k, data in enumerate(copies):
        same_both_ways(data, V61, f"copy{k}.o")


def _package_copy(tmp_path: Path, change_source: bool) -> Path:
    dst = tmp_path / "pkg" / "altlink"
    shutil.copytree(ROOT / "altlink", dst, ignore=shutil.ignore_patterns("__pycache__"))
    if change_source:
        with open(dst / "_speedups.c", "a") as f:
            f.write("/* a change after the build */\n")
    return dst.parent


def loaded_in(pkg: Path, what: str = "(speedups.get() is not None, speedups.WHY)",
              **env) -> tuple:
    """``what``, an expression of ``altlink.speedups``, as a new interpreter sees it with the
    package copy ``pkg`` first on its path and ``env`` in its environment."""
    code = f"from altlink import speedups\nprint(repr({what}))\n"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("ALTLINK_")}
    run_env.update(PYTHONPATH=str(pkg), **env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=run_env, cwd=str(pkg), check=True).stdout
    return eval(out)  # (its own output: a tuple's repr)


@built
def test_never_stale(tmp_path):
    """The extension built from another ``_speedups.c`` than the one beside it is not used,
    and says why; ALTLINK_NO_SPEEDUPS=1 turns a good one off."""
    good = _package_copy(tmp_path / "good", False)
    assert loaded_in(good) == (True, [])
    assert loaded_in(good, ALTLINK_NO_SPEEDUPS="1")[0] is False
    stale = _package_copy(tmp_path / "stale", True)
    used, why = loaded_in(stale)
    assert not used and "stale" in why[0], why


@built
@pytest.mark.parametrize("module", ["_speedups", "_postlink"])
def test_the_code_digest_covers_the_extension(tmp_path, module):
    """``altlink.code_digest`` (the record cache's key) changes with each extension's file."""
    pkg = _package_copy(tmp_path, False)
    code = "import altlink\nprint(altlink.code_digest())\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTLINK_")}
    env["PYTHONPATH"] = str(pkg)

    def digest():
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=str(pkg), check=True).stdout

    before = digest()
    so = next((pkg / "altlink").glob(f"{module}*.so"))
    so.write_bytes(so.read_bytes() + b"\0")
    assert digest() != before


@built
@binutils
def test_replacement_words(tmp_path):
    """Replacements whose words are of every kind (``may_find``'s test of each word's top
    byte, then its classification): copies of an object with words written at random into
    its replacements, and a replacement section that is not executable (``"a"``): the same
    entries kept, the same records."""
    body = "".join(repl(f"r{k}", "nop", "nop", "nop", "nop") for k in range(6))
    body += "".join(f"\tent site0, r{k}, 1, 16, 16\n" for k in range(6))
    not_code = build(tmp_path, "notcode", repl("n0", "movz x0, #1", "b n0",
                                               section='.altinstr_replacement, "a"')
                     + "\tent site0, n0, 1, 8, 8\n")
    same_both_ways(not_code.read_bytes(), V417, "notcode.o")
    obj = build(tmp_path, "words", body)
    src = obj.read_bytes()
    elf = from_bytes("words.o", src)
    alt = next(s for s in elf.sections if s.name == ".altinstr_replacement")
    assert alt.size == 6 * 16
    rng = random.Random(17)
    kinds = ([0xD503201F, 0x10000000, 0x90000000, 0x14000000, 0x94000000, 0x54000000,
              0xB4000000, 0x36000000, 0x58000000, 0xD63F0000, 0xD4000001, 0x91000000]
             + [rng.getrandbits(32) for _ in range(8)])
    kept = set()
    for k in range(40):
        b = bytearray(src)
        for w in range(alt.size // 4):
            if rng.random() < 0.4:
                word = rng.choice(kinds) | (rng.getrandbits(24) if rng.random() < 0.5 else 0)
                b[alt.offset + 4 * w:alt.offset + 4 * w + 4] = word.to_bytes(4, "little")
        data = bytes(b)
        same_both_ways(data, V417, f"words{k}.o")
        speedups.use(True)
        kept.add(len(may_find(Checks(options(*V417)), Input.load(from_bytes("w.o", data)))))
    assert len(kept) > 2  # some copies' replacements were kept, others passed


@built
def test_branch_words_against_their_references():
    """``object_branch_words`` against ``branches.into_ranges_py`` (every branch into a
    range, its target modulo 2**64) and ``check_objects.marked_words`` (the marked words of
    the merged ranges), on words of every branch kind and others, with ranges that overlap,
    touch, nest, start before the section or end past it, and are empty."""
    sp = speedups.get()
    rng = random.Random(5)
    branch_tops = [0x14, 0x17, 0x94, 0x97, 0x54, 0x34, 0x35, 0xB4, 0xB5, 0x36, 0x37, 0xB6,
                   0xB7, 0xD5, 0x91, 0x10, 0x90, 0x74]
    compared = found = marked = split = 0
    for _ in range(400):
        n = rng.randrange(0, 64)
        words = [(rng.choice(branch_tops) << 24) | rng.getrandbits(24)
                 if rng.random() < 0.6 else rng.getrandbits(32) for _ in range(n)]
        # small displacements too, forward and back, so that targets land in the ranges
        words = [w if rng.random() < 0.5 else (w & 0xFF00001F) | (rng.randrange(-40, 40)
                 & 0x7FFFF) << 5 if (w >> 24) & 0x7C != 0x14 else
                 (w & 0xFC000000) | (rng.randrange(-40, 40) & 0x3FFFFFF) for w in words]
        data = b"".join(w.to_bytes(4, "little") for w in words) + bytes(rng.randrange(4))
        ranges = []
        for _ in range(rng.randrange(0, 8)):
            lo = rng.randrange(-16, len(data) + 16)
            ranges.append((lo, lo + rng.choice((0, 1, 2, 4, 8, 12, 40, 200)), len(ranges)))
        ranges.sort()
        got = sp.object_branch_words(data, ranges)
        starts, ends = [r[0] for r in ranges], [r[1] for r in ranges]
        want = (into_ranges_py(data, 0, starts, ends), marked_words(data, ranges))
        assert got == want, (data.hex(), ranges)
        # the same split by the section's relocations (``object_branch_found``): some at
        # the hits and marked words, some twice, in one RELA part or two
        at = [o for o, _w, _t in want[0]] + want[1] + [rng.randrange(0, 300)]
        rels = [(rng.choice(at), rng.randrange(1 << 32), rng.randrange(-(1 << 63), 1 << 63))
                for _ in range(rng.randrange(0, 8))]
        cut = rng.randrange(len(rels) + 1)
        parts = [b"".join(_RELA.pack(o, (sym << 32) | 257, a) for o, sym, a in rels[:cut]),
                 b"".join(_RELA.pack(o, (sym << 32) | 257, a) for o, sym, a in rels[cut:])]
        first = {}
        for o, sym, a in rels:
            first.setdefault(o, (sym, a))
        assert sp.object_branch_found(data, ranges, parts, 7) == (
            [(o, 7, t) for o, _w, t in want[0] if o not in first],
            [(o, *first[o]) for o in want[1] if o in first]), (data.hex(), ranges, rels)
        split += any(o in first for o in at)
        compared += 1
        found += len(want[0])
        marked += len(want[1])
    assert found > 100 and marked > 100 and split > 100
    assert sp.object_branch_found(b"\0" * 8, [], [b"\0" * 23], 1) is None
    # starts or ends that are not 64-bit ints: the Python's
    assert sp.object_branch_words(b"\0" * 8, [(1 << 70, 1 << 71, 0)]) is None
    assert sp.object_branch_words(b"\0" * 8, [(0, 1.5, 0)]) is None


def test_an_install_without_a_compiler(tmp_path):
    """Where the extension cannot be built (here: the C compiler is ``false``), the wheel
    still builds and installs (``optional``), without the extension, and altlink runs its
    Python, saying why where asked; with the compiler, the wheel carries the extension and
    its source, and uses it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "setup.py"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "altlink", src / "altlink",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTLINK_")}
    code = ("from altlink import speedups\n"
            "print(repr((speedups.get() is not None, speedups.WHY)))\n")
    for cc, want in (("false", False), (None, True)):
        run_env = dict(env, **({"CC": cc} if cc else {}))
        dist, site = tmp_path / f"dist-{cc}", tmp_path / f"site-{cc}"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(dist), str(src)], check=True, env=run_env, capture_output=True)
        (wheel,) = dist.glob("altlink-*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        assert "altlink/_speedups.c" in names
        assert any(n.startswith("altlink/_speedups") and n.endswith(".so")
                   for n in names) is want, names
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                        "--target", str(site), str(wheel)], check=True, capture_output=True)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(env, PYTHONPATH=str(site)), cwd=str(tmp_path),
                             check=True).stdout
        used, why = eval(out)  # (its own output: a tuple's repr)
        assert used is want, why
        if not want:
            assert "not built" in why[0], why


@built
def test_sites_overlap_against_its_reference():
    """``sites_overlap`` against ``sites_overlap_py`` on sites that overlap, touch, nest,
    repeat, are empty, are in other sections or none, or reach the top of 64 bits; and
    entries it does not read (the Python's)."""
    sp = speedups.get()
    rng = random.Random(11)
    answers = set()
    for _ in range(2000):
        entries = []
        for i in range(rng.randrange(0, 9)):
            sec = rng.choice((None, 0, 1, 1, 2, 5))
            off = rng.choice((0, 4, 8, 12, 16, rng.randrange(64), (1 << 63) - 8))
            olen = rng.choice((0, 4, 4, 8, 12, 3))
            site = (".text", sec, off, None, None, 0)
            entries.append(("x.o", i, ".altinstructions", 12 * i, site, site, 1, olen, olen,
                            None))
        want = sites_overlap_py(entries)
        got = sp.sites_overlap(entries)
        assert got is want or (got is None and any(
            e[7] and e[4][1] and e[4][2] + e[7] >= 1 << 63 for e in entries)), entries
        answers.add(got)
    assert answers == {True, False, None}
    site = (".text", 1, 0, None, None, 0)
    for odd in (("x.o", 0, "", 0, site, site, 1, 4.0, 4, None), (1, 2),
                ("x.o", 0, "", 0, (".text", 1), site, 1, 4, 4, None),
                ("x.o", 0, "", 0, (".text", 1, 1 << 64), site, 1, 4, 4, None)):
        assert sp.sites_overlap([odd]) is None


@built
def test_section_indexes_and_code_sizes():
    """``_index_sections`` and ``code_size`` with the extension and without, on section
    tables of every type and flag that they read: sections made random (symbol tables,
    dynamic ones, relocation sections allocated or not, in a relocatable file and in an
    image, names shared), and an object's headers with each section's type and flags
    changed."""
    rng = random.Random(23)
    types = (0, 1, 2, 3, 4, 8, 9, 11, 0x40000014, 0x6FFFFFF6)
    for k in range(300):
        elf = from_bytes("x.o", KERNEL_OBJECTS[0].read_bytes())
        if k % 2:
            elf.type = 2  # (an image's: its allocated relocation sections are dynamic ones)
        secs = [Section(i, rng.choice(("", ".text", ".rela.text", ".symtab", ".dynsym", "a")),
                        rng.choice(types), rng.choice((0, 2, 4, 6)), 0, 0, 0, 0,
                        rng.randrange(4), 0, 0) for i in range(rng.randrange(0, 12))]
        elf.__dict__["sections"] = secs
        speedups.use(True)
        got = speedups.get().index_sections(secs, elf.type == 1)
        assert got == elf._index_sections_py(), secs
        assert got[1] is elf.__dict__["symtab"]
    src = KERNEL_OBJECTS[0].read_bytes()
    elf = from_bytes("x.o", src)
    sizes = set()
    for sec in elf.sections:
        at = elf.shoff + 64 * sec.index
        for typ, flags in ((8, sec.flags | 4), (1, sec.flags ^ 4), (sec.type, 0)):
            b = bytearray(src)
            b[at + 4:at + 8] = typ.to_bytes(4, "little")
            b[at + 8:at + 16] = flags.to_bytes(8, "little")
            both = []
            for on in (True, False):
                speedups.use(on)
                both.append(map_bytes("x.o", bytes(b)).code_size())
            assert both[0] == both[1], (sec, typ, flags)
            sizes.add(both[0])
    assert len(sizes) > 3


@built
@binutils
def test_moved_words_against_their_reference(tmp_path):
    """``check_objects._moves_fine`` with the extension (``moves_fine``) and without
    (``_moves_fine_py``), under each profile: replacements with relocated branches and
    ADRPs and words of every kind written at random (BC.cond, ADRPs near and far, literal
    loads, FEAT_CMPBR, words capstone is asked about), every window of them: the same
    answer, and the same symbols read, in the same order."""
    obj = build(tmp_path, "moves", repl("r0", "b far0", "bl far1", "adrp x0, far2",
                                        "b.eq far3", "cbz x0, far4", "tbz x0, #1, far5",
                                        "adrp x1, far6", "nop", "b far0", "nop"))
    src = obj.read_bytes()
    alt = next(s for s in from_bytes("m.o", src).sections
               if s.name == ".altinstr_replacement")
    sp = speedups.get()
    rng = random.Random(29)
    kinds = [0xD503201F, 0x10000000, 0x90000000, 0xF0000000, 0x14000000, 0x94000000,
             0x54000000, 0x54000010, 0xB4000000, 0x36000000, 0x58000000, 0x5C000000,
             0xDC000000, 0x74000000, 0x75000000, 0xD63F0000, 0xD4000001, 0x91000000,
             0x00000000, 0x55000000]
    # ADRPs at the ends of the reach of a Linux patcher's s32 page delta, and past them
    exact = [0x90400000, 0xF03FFFE0, 0x90C00000, 0xF0BFFFE0]
    rela = from_bytes("m.o", src).relocation_sections_for(alt)[0]
    outcomes: dict = {}
    for k in range(60):
        b = bytearray(src)
        for w in range(alt.size // 4):
            if k and rng.random() < 0.3:
                word = rng.choice(kinds) | (rng.getrandbits(24) if rng.random() < 0.7 else 0)
                if rng.random() < 0.1:
                    word = rng.choice(exact)
                b[alt.offset + 4 * w:alt.offset + 4 * w + 4] = word.to_bytes(4, "little")
        if k % 3 == 2:  # two relocations at one offset (the first is the one read)
            i, j = rng.sample(range(rela.size // 24), 2)
            b[rela.offset + 24 * j:rela.offset + 24 * j + 8] = \
                b[rela.offset + 24 * i:rela.offset + 24 * i + 8]
        data = bytes(b)
        for abi in ("linux-v4.17", "linux-v6.1", "xen-v4.17"):
            for lo in range(0, alt.size, 4):
                hi = rng.randrange(lo, alt.size + 1, 4)
                got = []
                for fn in (_moves_fine, _moves_fine_py):
                    speedups.use(True)
                    inp = Input.load(from_bytes("m.o", data))
                    read: list[int] = []
                    real = inp.elf.symbol
                    inp.elf.symbol = lambda i, real=real, read=read: (read.append(i), real(i))[1]
                    code = inp.elf.section_data(alt)[lo:hi]
                    got.append((fn(inp, alt, lo, code, abi), read))
                    if fn is _moves_fine:
                        c = sp.moves_fine(code, lo, abi, _rela_parts(inp, alt))
                assert got[0] == got[1], (data[alt.offset:alt.offset + alt.size].hex(), lo,
                                          hi, abi)
                key = (c is not None, got[0][0], bool(got[0][1]))
                outcomes[key] = outcomes.get(key, 0) + 1
    # the extension answered fine and not, with symbols read and none; and passed some
    assert {(True, True, True), (True, False, True), (True, True, False),
            (True, False, False)} <= set(outcomes), outcomes
    assert any(not k[0] for k in outcomes), outcomes
    assert sp.moves_fine(b"\0" * 4, 1 << 64, "linux-v6.1", None) is None
    assert sp.moves_fine(b"\0" * 4, 0, "linux-v5", None) is None
    assert sp.moves_fine(b"\0" * 6, 0, "linux-v6.1", None) is None


@built
def test_debians_modules():
    """Debian's 992 modules of Linux 6.1 (``tools/fetch_kernel.py``), where they are
    fetched: the same records, tables and checks with the extension and without."""
    for p in debians_modules():
        got = same_both_ways(p.read_bytes(), V61, str(p))
        assert type(got) is bytes, got


@built
def test_small_files_read(tmp_path):
    """``map_file`` with the extension (``read_small``) and without (``map_file_py``): the
    same bytes of a small file, and of a large one (opened there, mapped by the Python); a
    file that is empty, a folder, missing or unreadable left to the Python, which says the
    same of it either way."""
    import stat

    from altlink.elf import READ_BELOW, map_file, map_file_py

    sp = speedups.get()
    small = tmp_path / "small.o"
    small.write_bytes(bytes(range(256)) * 7)
    big = tmp_path / "big.o"
    big.write_bytes(b"\1" * READ_BELOW)
    empty = tmp_path / "empty.o"
    empty.write_bytes(b"")
    assert sp.read_small(str(small), READ_BELOW) == small.read_bytes()
    assert sp.read_small(os.fsencode(small), READ_BELOW) == small.read_bytes()
    assert type(sp.read_small(small, 1793)) is bytes
    fd = sp.read_small(small, 1792)
    assert type(fd) is int
    os.close(fd)
    for p in (empty, tmp_path, tmp_path / "missing", str(small) + "\0x"):
        assert sp.read_small(str(p), READ_BELOW) is None, p
    fd = sp.read_small(str(big), READ_BELOW)  # (open, for the caller to map)
    assert os.fstat(fd).st_size == READ_BELOW
    os.close(fd)
    for p in (small, big, empty, tmp_path, tmp_path / "missing"):
        got = []
        for on in (True, False):
            speedups.use(on)
            try:
                got.append(bytes(map_file(str(p))))
            except AltlinkError as e:
                got.append(str(e))
        assert got[0] == got[1] == (bytes(map_file_py(str(p))) if p in (small, big)
                                    else got[1]), p
    if os.geteuid() != 0:  # (root reads it anyway)
        small.chmod(0)
        assert sp.read_small(str(small), READ_BELOW) is None
        small.chmod(stat.S_IRUSR)
