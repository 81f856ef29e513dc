"""Making an object's record (``altlink/records.py``, ``altlink/check_objects.py``): each fast
way against its reference, on the same objects.

- ``Anchors`` makes a section's rows when a place in it is first asked for; ``AnchorsPy``
  makes every section's at once. Both name every place the same: at each symbol's value,
  beside it, and at a section's start and end, in every section.
- ``_defines`` reads an object's global definitions from the symbol table's global tail;
  ``_defines_py`` from every decoded symbol. The same dict, in the same order, for real
  objects and for symbol tables with bytes changed at random (hand-made: malformed input),
  or the same error.
- ``object_checks`` runs ``check_entry`` only where ``may_find`` cannot pass an entry;
  ``fast=False`` runs it on every entry. The same findings and ``Deferred`` callbacks in the
  same order, under both profiles, as a module and not.

The objects: every good and broken entry of the checks' tests, the committed kernel modules,
the benchmark's synthetic firmware (24 objects), and, where they are there, the kernel
build's objects and Debian's 992 modules.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from test_cache import options
from test_checks import BAD, CALLBACK, R0, R0_8, build, check, clean_source, repl
from test_kernel import SLICE_MODULES
from toolchain import GNU_LD
from toolchain import synthetic_firmware as built_firmware

from altlink import records
from altlink.check_core import Checks, resolve_ncaps
from altlink.check_objects import may_find, object_checks
from altlink.elf import from_bytes, read_elf
from altlink.errors import AltlinkError
from altlink.findings import Finding
from altlink.linkset import Input
from altlink.values import astuple, replace

pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")

ROOT = Path(__file__).resolve().parent.parent
V417 = ("--abi", "linux-v4.17", "--ncaps", "4")
V61 = ("--abi", "linux-v6.1", "--ncaps", "80")


def checked_objects(tmp_path) -> list[tuple[Path, tuple]]:
    """Objects with every form of entry and every broken entry, each with its arguments."""
    out = [(build(tmp_path, f"clean{p}", clean_source(p)), args)
           for p, args in (("v4.17", V417), ("v6.1", V61))]
    out.append((build(tmp_path, "cb", "\tent site0, other_cb, 4, 4, 0\n"), V417))
    out.append((build(tmp_path, "def", CALLBACK + R0_8 + "\tent site0, r0, 1, 4, 8\n"), V417))
    out += [(build(tmp_path, f"bad{k}", c.body, flags=c.flags), c.args)
            for k, c in enumerate(BAD)]
    return out


def synthetic_objects() -> tuple[list[Path], tuple]:
    """The benchmark's synthetic firmware's objects (compiled once, in bench/out)."""
    fw = built_firmware()
    d = Path(fw.dir)
    return [d / o for o in fw.objects], ("--abi", "linux-v4.17", "--cap-table", d / "cpucaps")


def as_rows(items) -> list[tuple]:
    """Findings with every field (``site`` too, which equality leaves out), and Deferred."""
    return [astuple(f) if isinstance(f, Finding) else ("deferred", *f) for f in items]


def same_anchors(path) -> int:
    elf = read_elf(str(path))
    fast, ref = records.Anchors(elf), records.AnchorsPy(elf)
    asked = 0
    for sec in elf.sections:
        offsets = {0, sec.size, sec.size - 1, -1}
        offsets.update(v + d for s in elf.symbols if s.shndx == sec.index
                       for v in (s.value,) for d in (-4, -1, 0, 1, 4))
        for off in sorted(offsets):
            assert fast.at(sec.index, off) == ref.at(sec.index, off), (path, sec.name, off)
            asked += ref.at(sec.index, off) is not None
    assert fast.at(len(elf.sections) + 5, 0) is None
    return asked


def same_defines(path=None, data=None) -> int:
    """``_defines`` of a fresh reading against ``_defines_py``'s, or the same error."""
    def read():
        return read_elf(str(path)) if data is None else from_bytes("x.o", data)

    try:
        fast = records._defines(read())
    except AltlinkError as e:
        fast = ("error", str(e))
    try:
        ref = records._defines_py(read())
    except AltlinkError as e:
        ref = ("error", str(e))
    assert fast == ref, path
    if isinstance(fast, dict):
        assert list(fast) == list(ref)  # the same order: the first definition of a name wins
    return len(fast)


def same_checks(path, args) -> int:
    """``object_checks`` both ways, as the link set's object and as a module's."""
    base = options(*args)
    made = 0
    for module in (False, True):
        got = []
        for fast in (True, False):
            inp = Input.load(read_elf(str(path)))
            profile = resolve_ncaps(base.profile, base.caps, [inp.table], [])
            ck = Checks(replace(base, profile=profile, module=module))
            object_checks(ck, inp, fast=fast)
            got.append(as_rows(ck.findings))
        assert got[0] == got[1], (path, module)
        made += len(got[0])
    return made


def test_every_form_of_entry(tmp_path):
    objs = checked_objects(tmp_path)
    findings = sum(same_checks(p, a) for p, a in objs)
    assert findings > len(BAD)  # the broken entries' findings were compared
    assert sum(same_anchors(p) for p, _ in objs) > 100
    assert sum(same_defines(p) for p, _ in objs) > 0
    # the filter passed some entries and kept others
    inp = Input.load(read_elf(str(objs[0][0])))
    ck = Checks(options(*V417))
    kept = may_find(ck, inp)
    assert 0 < len(kept) < len(inp.table.entries)


def test_replacements_alternating_between_sections(tmp_path):
    """Replacements in two sections, their entries in turn: the first entry of one section
    out of its range (ALT005), then one of the other section, then one in range in the first
    with a word the checks report (ADR to outside the replacement) where the other section
    has a plain word at the same offset. What ``may_find`` keeps of each section (its limits, its words' marks) is that
    section's: the same findings as the reference."""
    body = (repl("a0", "movz x0, #1", "movz x0, #2", section='.altinstr_replacement, "ax"')
            + repl("b0", "movz x1, #1", section='.text.alt, "ax"')
            + repl("b1", "adr x0, func", section='.text.alt, "ax"')
            + "\tent site1, b0 + 64, 1, 4, 4\n"  # out of .text.alt: ALT005
            + "\tent site0, a0, 1, 4, 4\n"
            + "\tent site2, b1, 1, 4, 4\n"
            + "\tent site0, a0 + 4, 2, 4, 4\n")
    obj = build(tmp_path, "alternating", body)
    found = same_checks(obj, V417)
    codes = {f["code"] for f in check(*V417, obj)[1]}
    assert {"ALT005", "ALT008"} <= codes and found >= 4, codes


def test_branches_into_replacements_both_ways(tmp_path):
    """ALT017 in objects (``check_object_branches``): the relocated branches looked for among
    the marked words of merged ranges, and, the reference, in each replacement's words: the
    same findings, where replacements share words, overlap, touch, branch to global labels
    among them (relocated), to local ones (the assembler's), to weak ones and out."""
    glob = R0.replace("r0:", "\t.globl r0\nr0:")
    bodies = {
        "reloc": glob + repl("r1", "nop", "b r0", "bl r0")
        + "\tent site0, r0, 1, 4, 4\n\tent site1, r1, 2, 12, 12\n",
        # entry 2 shares entry 1's replacement, entry 3 its second half: overlapping ranges
        "shared": glob + repl("r1", "b r0", "cbz x0, r0", "nop") + repl("r3", "tbz x1, #3, r0")
        + "\tent site0, r0, 1, 4, 4\n\tent site1, r1, 2, 12, 12\n"
        "\tent site2, r1, 3, 12, 12\n\tent site0, r1+4, 1, 8, 8\n\tent site2, r3, 2, 4, 4\n",
        "local": R0 + repl("r1", "b r0", "b.ne r0")
        + "\tent site0, r0, 1, 4, 4\n\tent site1, r1, 2, 8, 8\n",
        "weak": R0.replace("r0:", "\t.weak r0\nr0:") + repl("r1", "b r0")
        + "\tent site0, r0, 1, 4, 4\n\tent site1, r1, 2, 4, 4\n",
        "out": glob + repl("r1", "b func", "bl r0") + "\tent site0, r0, 1, 4, 4\n"
        "\tent site1, r1, 2, 8, 8\n",
        # a replacement placed before its section (ALT005), where the section ends with a
        # relocated branch: no word before the section is read (it was an internal error)
        "before": repl("r0", "nop", "nop") + glob.replace("r0", "r1") + repl("r2", "b r1", "nop")
        + "\tent site0, r0-8, 1, 4, 4\n\tent site1, r1, 2, 4, 4\n",
    }
    made = {name: same_checks(build(tmp_path, name, body), V417)
            for name, body in bodies.items()}
    assert made["reloc"] and made["shared"] and made["local"] and made["out"]
    assert not made["weak"]
    rc, found = check(*V417, tmp_path / "before.o")
    assert rc == 1 and {f["code"] for f in found} == {"ALT005"}
    assert [f["message"] for f in found] == [
        "replacement is 0x8 bytes before the start of .altinstr_replacement"]


def test_the_committed_modules():
    for p in SLICE_MODULES:
        same_checks(p, V61)
        same_anchors(p)
    assert sum(same_defines(p) for p in SLICE_MODULES) > 10


def test_the_synthetic_firmware():
    objs, args = synthetic_objects()
    deferred = 0
    for p in objs:
        same_checks(p, args)
        same_anchors(p)
        same_defines(p)
        inp = Input.load(read_elf(str(p)))
        profile = resolve_ncaps(options(*args).profile, options(*args).caps, [inp.table], [])
        deferred += sum(d for _, d in may_find(Checks(replace(options(*args), profile=profile)),
                                               inp))
    assert deferred > 10  # callbacks defined elsewhere: their Deferred made by the filter


def test_damaged_symbol_tables(tmp_path):
    o = build(tmp_path, "def", CALLBACK + R0_8 + "\tent site0, r0, 1, 4, 8\n"
              "\t.globl g1\n\t.weak w1\n\t.local l1\ng1:\nw1:\nl1:\tnop\n")
    data = o.read_bytes()
    elf = read_elf(str(o))
    (symtab,) = [s for s in elf.sections if s.name == ".symtab"]
    assert same_defines(o) >= 3
    rng = random.Random(13)
    for _ in range(400):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            sym = rng.randrange(symtab.size // 24)
            field = rng.choice([0, 4, 6, 7])  # name, info, shndx (both bytes)
            b[symtab.offset + 24 * sym + field] = rng.randrange(256)
        same_defines(data=bytes(b))


@pytest.mark.kernel_build
@pytest.mark.timeout(3600)  # the first use of the build compiles the kernel
def test_the_kernel_builds_objects(kernel_build):
    objs = sorted(p for p in kernel_build.out.glob("kernel/**/*.o") if p.stat().st_size)
    objs = [p for p in objs if not p.name.endswith(".mod.o")]
    assert len(objs) > 50
    args = (*V61, "--cap-table", kernel_build.cap_header)
    for p in objs:
        same_checks(p, args)
        same_anchors(p)
        same_defines(p)


def debians_modules() -> list:
    """Debian's 992 modules of Linux 6.1 (``tools/fetch_kernel.py``); the test is skipped
    where they are not fetched."""
    from test_kernel import full_kernel

    kdir = full_kernel()
    if kdir is None:
        pytest.skip("the full kernel is not fetched (python3 tools/fetch_kernel.py)")
    mods = sorted((kdir / "modules").rglob("*.ko"))
    assert len(mods) > 900
    return mods


def test_debians_modules():
    mods = debians_modules()
    for p in mods:
        same_checks(p, ("--abi", "linux-v6.1"))
        same_defines(p)
    for p in mods[::20]:
        same_anchors(p)
