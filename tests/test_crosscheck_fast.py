"""The cross-check's two ways (``altlink/crosscheck.py``): ``cross_check`` reads a linked
image's whole table at once, each place through the section its entry names, and finds an
object's block by one compare of signatures and site words; ``fast=False`` reads each place
by address when a comparison asks for it, entry by entry (the reference). Both must give the
same findings, and report the same image entries.

What is checked, on links made by the real linkers (GNU ld and ld.lld) with problems planted:
- the table dropped by --gc-sections (ALT013, every entry missing);
- a site's section discarded, which lld lets through (ALT013: the entry placed by its
  replacement, its site moved);
- a replacement's BL sent through a veneer (ALT016), by a global and by a local symbol;
- an archive member whose table was dropped, and one the linker left out;
- a clean link with entries out of link order;
- a replacement's B that cannot reach from the site (ALT009, the post-link checks, whose
  ``fast`` way, ``check_image.may_reencode``, is held to the entry-by-entry one in every link);
and, with the tests' kernel builds (``kernel_build``: GNU and LLVM), their vmlinux against
the objects of its final link: clean, and with one site word of an object changed (ALT013).
"""
from __future__ import annotations

import shutil

import pytest
from test_link import (
    CALLS_USED_S,
    DISCARD_LD,
    EXIT_TEXT_S,
    FAR_LD,
    FAR_REPLACEMENT_LD,
    GNU_LD,
    LIB,
    LLD,
    MAIN_S,
    NCAPS,
    NO_KEEP_LD,
    asm,
    far_source,
    linker_command,
    make_archive,
    out_of_order_objects,
)
from toolchain import run, write

from altlink import binding, check_image, crosscheck, inputs
from altlink import link as link_mod
from altlink import records as records_mod
from altlink import table as table_mod
from altlink.check_linkset import collect
from altlink.cli import build_parser, options_from
from altlink.elf import ET_REL, read_elf
from altlink.link import LinkRequest, link
from altlink.linkset import Input, Options
from altlink.table import Profile
from altlink.values import astuple, replace

pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD), reason="no AArch64 binutils")


def with_columns(image: Input) -> Input:
    """The image with its table read as columns (``Table.columns``), whatever its size."""
    import numpy  # noqa: F401 - the columns are read with it

    real = table_mod.COLUMNS_FROM_ENTRIES
    table_mod.COLUMNS_FROM_ENTRIES = 0
    try:
        read = table_mod.read_image_table(image.elf)
    finally:
        table_mod.COLUMNS_FROM_ENTRIES = real
    assert read.entries == image.table.entries
    assert read.columns is not None or not read.sections
    return Input(image.elf, read, image.names)


def both(records, image, profile, members=frozenset(), arrays=None, unmatched=None,
         placed_paths=None):
    """The findings, reported entries and unmatched image entries of every way; they must
    agree: the reference
    (``fast=False``), the table read at once and each block found by one compare, and the
    whole table compared as arrays (``_cross_check_arrays``: on the table read as columns,
    from any number of entries). ``arrays``: whether the arrays must have decided (True),
    must have left it to the block-by-block way (False), or either (None). ``unmatched``, a
    list, gets the image entries no object holds, ``placed_paths``, a set, the objects
    whose entries were found (all ways agree on both too)."""
    got = {}
    decided = []
    real = crosscheck._cross_check_arrays

    def spy(*a, **k):
        out = real(*a, **k)
        decided.append(out is not None)
        return out

    # (and the arrays given the first half of the records' packed columns, as a link makes
    # them while its linker runs: ``packed_columns_early``)
    for way in ("reference", "blocks", "arrays", "arrays, packs made early",
                "arrays, all the records' columns made early",
                "arrays, all the records' arrays made early",
                "arrays, the image's symbols read as columns"):
        seen: set[int] = set()
        img, limit = image, 1 << 62
        if way.startswith("arrays") and image.elf.type != ET_REL:
            img, limit = with_columns(image), 0
        symbols_from = crosscheck.ARRAYS_COLUMNS_FROM_SYMBOLS
        if way.endswith("as columns"):  # (however few: ``_KeyedNames._from_columns``)
            img = with_columns(Input.load(read_elf(image.elf.path))) \
                if image.elf.type != ET_REL else image
            crosscheck.ARRAYS_COLUMNS_FROM_SYMBOLS = 0
        packs = None
        if way == "arrays, packs made early":
            packs = crosscheck.packed_columns_of(records[:len(records) // 2])
        elif way.startswith("arrays, all"):
            packs = crosscheck.packed_columns_early(records, lambda: True)
            assert type(packs) is crosscheck.RecordColumns
            if way.endswith("arrays made early"):  # (as a link makes them: ``link.link``)
                made = packs.arrays(profile)
                assert made is None or packs.arrays(profile) is made
        old = crosscheck.ARRAYS_FROM_ENTRIES
        crosscheck.ARRAYS_FROM_ENTRIES = limit
        crosscheck._cross_check_arrays = spy
        alone: list[int] = []
        placed: set[str] = set()
        try:
            found = crosscheck.cross_check(records, img, profile, members, seen,
                                           fast=way != "reference", packs=packs,
                                           unmatched=alone, placed_paths=placed)
        finally:
            crosscheck.ARRAYS_FROM_ENTRIES = old
            crosscheck._cross_check_arrays = real
            crosscheck.ARRAYS_COLUMNS_FROM_SYMBOLS = symbols_from
        got[way] = ([astuple(f) for f in found], seen, sorted(alone), placed)
    assert got["blocks"] == got["reference"]
    assert got["arrays"] == got["reference"]
    assert got["arrays, packs made early"] == got["reference"]
    assert got["arrays, all the records' columns made early"] == got["reference"]
    assert got["arrays, all the records' arrays made early"] == got["reference"]
    assert got["arrays, the image's symbols read as columns"] == got["reference"]
    if arrays is not None and image.elf.type != ET_REL:
        assert decided == [arrays] * 5
    if unmatched is not None:
        unmatched += got["reference"][2]
    if placed_paths is not None:
        placed_paths |= got["reference"][3]
    return got["reference"][:2]


@pytest.fixture
def compared(monkeypatch):
    """Every cross-check a link makes runs both ways; the codes each found are kept."""
    codes: list[list[str]] = []
    real = link_mod.cross_check

    def spy(records, image, profile, members=frozenset(), reported=None, asked=None,
            packs=None, wrapped=frozenset(), unmatched=None, placed_paths=None):
        # the names the link made while its linker ran are those the records ask for, and
        # the packed columns it read then are those of its first records
        assert asked is None or asked == crosscheck.names_asked(records)
        if type(packs) is crosscheck.RecordColumns:
            packs = packs.packs
        assert packs is None or packs == crosscheck.packed_columns_of(records[:len(packs)])
        rows, _ = both(records, image, profile, members)
        codes.append([r[0] for r in rows])
        return real(records, image, profile, members, reported, asked=asked, packs=packs,
                    wrapped=wrapped, unmatched=unmatched, placed_paths=placed_paths)

    monkeypatch.setattr(link_mod, "cross_check", spy)
    # in this process, where the spies keep what they saw (a link forks the image's checks)
    monkeypatch.setattr(link_mod.forkmap, "can_fork", lambda: False)
    real_post = link_mod.check_after_link

    def post_spy(image, options):
        got = [[astuple(f) for f in check_image.check_after_link(image, options, fast=fast)]
               for fast in (True, False)]
        assert got[0] == got[1]
        post.append([r[0] for r in got[0]])
        return real_post(image, options)

    monkeypatch.setattr(link_mod, "check_after_link", post_spy)
    return codes


post: list[list[str]] = []  # the post-link checks' codes, per link, for the tests to look at


@pytest.fixture(autouse=True)
def _post():
    post.clear()


def run_link(tmp_path, cmd, name="fw.elf"):
    opts = Options(Profile("linux-v4.17", NCAPS))
    return link(LinkRequest(cmd, str(tmp_path / name), options=opts, cache_dir=None))


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_table_dropped(tmp_path, monkeypatch, compared, linker):
    if linker == "lld" and not shutil.which(LLD):
        pytest.skip("no ld.lld")
    monkeypatch.chdir(tmp_path)
    obj = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "nokeep.ld", NO_KEEP_LD)
    run_link(tmp_path, linker_command(linker, [obj], "x.elf", script, ["--gc-sections"]))
    assert compared == [["ALT013"] * 3]


def test_discarded_site_lld(tmp_path, monkeypatch, compared):
    if not shutil.which(LLD):
        pytest.skip("no ld.lld")
    monkeypatch.chdir(tmp_path)
    obj = asm(tmp_path, "exit", EXIT_TEXT_S)
    script = write(tmp_path / "discard.ld", DISCARD_LD)
    run_link(tmp_path, linker_command("lld", [obj], "x.elf", script))
    assert compared == [["ALT013"]]


@pytest.mark.parametrize("symbol", [True, False])
def test_veneer(tmp_path, monkeypatch, compared, symbol):
    monkeypatch.chdir(tmp_path)
    obj = asm(tmp_path, "far", far_source("bl", symbol))
    script = write(tmp_path / "far.ld", FAR_LD)
    run_link(tmp_path, linker_command("ld", [obj], "x.elf", script))
    assert compared == [["ALT016"]]


def test_veneer_found_from_columns_read_while_linking(tmp_path, monkeypatch, compared):
    """A link of many entries reads its records' packed columns while its linker runs
    (``packed_columns_early``) and gives them to the cross-check, which finds the same: here
    with the limits lowered, and the linker taken to run until they are read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(link_mod, "ASK_EARLY_ENTRIES", -1)
    monkeypatch.setattr(link_mod, "ARRAYS_FROM_ENTRIES", 0)
    monkeypatch.setattr(crosscheck, "ARRAYS_FROM_ENTRIES", 0)
    early = []

    def running_until_read(records, running):
        early.append(crosscheck.packed_columns_early(records, lambda: True))
        return early[-1]

    monkeypatch.setattr(link_mod, "packed_columns_early", running_until_read)
    obj = asm(tmp_path, "far", far_source("bl", True))
    script = write(tmp_path / "far.ld", FAR_LD)
    result = run_link(tmp_path, linker_command("ld", [obj], "x.elf", script))
    assert [len(p.packs) for p in early] == [1]
    assert compared == [["ALT016"]]
    assert [f.code for f in result.findings] == ["ALT016"]


def test_the_records_arrays_are_made_while_the_linker_runs(tmp_path, monkeypatch, compared):
    """A link whose records' packed columns were all read while its linker ran makes their
    arrays then too (``RecordColumns.arrays``, once numpy is imported), under the link's
    profile, and the cross-check reads those: here with the limits lowered, and the linker
    taken to run until the check of the image starts."""
    from altlink import linker as linker_mod

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(link_mod, "ASK_EARLY_ENTRIES", -1)
    monkeypatch.setattr(link_mod, "ARRAYS_FROM_ENTRIES", 0)
    monkeypatch.setattr(crosscheck, "ARRAYS_FROM_ENTRIES", 0)
    monkeypatch.setattr(linker_mod.Linker, "running", lambda self: True)
    made: list[tuple] = []  # (the profile, whether the image's check had started)
    started: list[int] = []
    real_arrays = crosscheck.RecordColumns.arrays

    def arrays(self, profile):
        made.append((profile, bool(started)))
        return real_arrays(self, profile)

    monkeypatch.setattr(crosscheck.RecordColumns, "arrays", arrays)
    real_check = link_mod.check_linked

    def check_linked(req, records, image, profile, members, tmp_image, asked=None,
                     packs=None, *rest, **kw):
        started.append(1)
        assert type(packs) is crosscheck.RecordColumns and packs._arrays[0] == profile
        return real_check(req, records, image, profile, members, tmp_image, asked, packs,
                          *rest, **kw)

    monkeypatch.setattr(link_mod, "check_linked", check_linked)
    obj = asm(tmp_path, "far", far_source("bl", True))
    script = write(tmp_path / "far.ld", FAR_LD)
    result = run_link(tmp_path, linker_command("ld", [obj], "x.elf", script))
    assert started and made and made[0][1] is False
    assert compared == [["ALT016"]]
    assert [f.code for f in result.findings] == ["ALT016"]


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_branch_out_of_range_at_the_site(tmp_path, monkeypatch, compared, linker):
    """ALT009 from the post-link checks: a B in the replacement cannot reach from the site."""
    if linker == "lld" and not shutil.which(LLD):
        pytest.skip("no ld.lld")
    monkeypatch.chdir(tmp_path)
    obj = asm(tmp_path, "far", far_source("b"))
    script = write(tmp_path / "far.ld", FAR_REPLACEMENT_LD)
    run_link(tmp_path, linker_command(linker, [obj], "x.elf", script))
    assert post == [["ALT009"]] and compared == [[]]


def test_archive_members(tmp_path, monkeypatch, compared):
    monkeypatch.chdir(tmp_path)
    make_archive(tmp_path, LIB)
    start = asm(tmp_path, "start", CALLS_USED_S)
    script = write(tmp_path / "nokeep.ld", NO_KEEP_LD)
    run_link(tmp_path, [GNU_LD, "-static", "--gc-sections", "-T", str(script), str(start),
                        "-L.", "-lx", "-o", "x.elf"])
    keep = write(tmp_path / "keep.ld", NO_KEEP_LD.replace(
        "*(.altinstructions)", "KEEP(*(.altinstructions))"))
    run_link(tmp_path, [GNU_LD, "-static", "-T", str(keep), str(start), "-L.", "-lx",
                        "-o", "y.elf"], "fw2.elf")
    assert compared == [["ALT013"], []]


def test_out_of_order(tmp_path, monkeypatch, compared):
    """Tables out of link order (the z objects' first), alike entries: found by symbol."""
    monkeypatch.chdir(tmp_path)
    objs, start, script = out_of_order_objects(tmp_path, 12)
    res = run_link(tmp_path, [GNU_LD, "-static", "-T", str(script), str(start),
                              *map(str, objs), "-o", "x.elf"])
    assert res.linked and compared == [[]]


def planted_links(tmp_path):
    """Links with a problem for the cross-check planted: (command, the codes it finds)."""
    obj = asm(tmp_path, "main", MAIN_S)
    nokeep = write(tmp_path / "nokeep.ld", NO_KEEP_LD)
    far = asm(tmp_path, "far", far_source("bl", True))
    far_ld = write(tmp_path / "far.ld", FAR_LD)
    yield linker_command("ld", [obj], "x.elf", nokeep, ["--gc-sections"]), {"ALT013"}
    yield linker_command("ld", [far], "x.elf", far_ld), {"ALT016"}


def test_the_forked_cross_check_finds_what_the_one_in_process_finds(tmp_path, monkeypatch, forks):
    """The cross-check runs in a forked copy where it costs enough to be worth it: its
    findings come back whole (messages, places, entries) and the image's view of an entry it
    reported is still not repeated."""
    monkeypatch.chdir(tmp_path)
    for k, (cmd, codes) in enumerate(planted_links(tmp_path)):
        got = {}
        for forked in (True, False):
            monkeypatch.setattr(link_mod, "FORK_CROSS_CHECK_FROM", 0 if forked else 1e9)
            monkeypatch.setattr(link_mod, "FORK_IMAGE_CHECKS_FROM", 0)
            forks.clear()
            res = run_link(tmp_path, cmd, f"fw{k}.elf")
            assert bool(forks) == forked
            got[forked] = [astuple(f) for f in res.findings]
        assert got[True] == got[False]
        assert {f[0] for f in got[True]} == codes, got[True]


@pytest.mark.kernel_build
@pytest.mark.timeout(3600)
def test_kernel_build(kernel_build):
    """The final vmlinux link's objects (with kallsyms, the last step's symbol table) and the
    vmlinux the build made."""
    out = kernel_build.out
    # The last kallsyms object made, the one the final link took: Linux 6.1's
    # .tmp_vmlinux.kallsyms2.o, 6.12's .tmp_vmlinux2.kallsyms.o.
    kallsyms = max(out.glob(".tmp_vmlinux*kallsyms*.o"), key=lambda p: p.stat().st_mtime_ns)
    names = ["vmlinux.a", ".vmlinux.export.o", "init/version-timestamp.o", kallsyms.name]
    objects = [e for e in inputs.load_elfs([str(out / n) for n in names]) if e.type == ET_REL]
    image = Input.load(read_elf(str(out / "vmlinux")))
    opts = options_from(build_parser().parse_args(
        ["check", "--abi", "linux-v6.1", "--cap-table", str(kernel_build.cap_header), "x.o"]))
    records, profile, _ = collect(objects, opts, [], None)
    assert sum(len(r.digest) for r in records) > 500
    rows, _ = both(records, image, profile)
    assert rows == []
    post_opts = Options(profile, opts.caps, opts.module)
    assert check_image.check_after_link(image, post_opts) == \
        check_image.check_after_link(image, post_opts, fast=False) == []
    # the fast path did leave entries to the entry-by-entry check (branches, ADRP)
    assert 0 < len(check_image.may_reencode(image, profile)) < len(image.table.entries)
    # One object's site word changed: that entry is reported, the same way by both.
    k = next(k for k, r in enumerate(records)
             if r.digest and r.digest[0].site_words and r.digest[0].site_words[0] is not None)
    d = records[k].digest[0]
    changed = replace(records[k], digest=[
        d._replace(site_words=(d.site_words[0] ^ 1, *d.site_words[1:])), *records[k].digest[1:]])
    rows, seen = both([*records[:k], changed, *records[k + 1:]], image, profile)
    assert rows and {r[0] for r in rows} == {"ALT013"} and seen


# -- the manifest's patch digest: read by place (binding.patch_digest) and by address --------

def assert_same_digest(image: Input, profile) -> None:
    table = image.table.sections[0] if image.table.sections else None
    args = (image.elf, table.addr if table is not None else None,
            table.size if table is not None else 0, image.table.entries, profile)
    assert binding.patch_digest(*args) == binding.patch_digest_py(*args)


@pytest.mark.parametrize("case", ["main-ld", "main-lld", "discard-lld", "veneer-ld"])
def test_patch_digest_by_place(tmp_path, case):
    """Linked by the bare linker: clean, a site at address 0 outside every section (lld's
    discarded section), a veneer."""
    src, script, linker = {"main-ld": (MAIN_S, NO_KEEP_LD, "ld"),
                           "main-lld": (MAIN_S, NO_KEEP_LD, "lld"),
                           "discard-lld": (EXIT_TEXT_S, DISCARD_LD, "lld"),
                           "veneer-ld": (far_source("bl"), FAR_LD, "ld")}[case]
    if linker == "lld" and not shutil.which(LLD):
        pytest.skip("no ld.lld")
    obj = asm(tmp_path, "x", src)
    ld = write(tmp_path / "x.ld", script)
    run(linker_command(linker, [obj], str(tmp_path / "x.elf"), ld), cwd=tmp_path)
    image = Input.load(read_elf(str(tmp_path / "x.elf")))
    assert image.table.entries
    assert_same_digest(image, Profile("linux-v4.17", NCAPS))


@pytest.mark.kernel_build
@pytest.mark.timeout(3600)
def test_patch_digest_by_place_kernel(kernel_build):
    image = Input.load(read_elf(str(kernel_build.out / "vmlinux")))
    assert len(image.table.entries) > 500
    assert_same_digest(image, Profile("linux-v6.1", 80))


# -- the whole table as arrays: the synthetic firmware, clean and broken ---------------------

def synthetic_link(tmp_path):
    """The benchmark's synthetic firmware, 24 objects (compiled once, in bench/out), linked
    by GNU ld: (its records, the image's path, the profile)."""
    from pathlib import Path

    from test_cache import options
    from toolchain import LDSCRIPTS, synthetic_firmware
    from toolchain import link as ld_link

    fw = synthetic_firmware()
    d = Path(fw.dir)
    objs = [d / o for o in fw.objects]
    image = ld_link(objs, tmp_path / "fw.elf", script=d / "fw.ld",
                    flags=["-L", LDSCRIPTS, "-static"])
    opts = options("--abi", "linux-v4.17", "--cap-table", d / "cpucaps")
    records, profile, _ = collect([read_elf(str(p)) for p in objs], opts, [], None)
    return records, image, profile


def broken(image, tmp_path, name: str, change) -> Input:
    """A copy of the image with ``change(data, elf, entries, table section)`` made to its
    bytes."""
    elf = read_elf(str(image))
    entries = Input.load(elf).table.entries
    data = bytearray(image.read_bytes())
    change(data, elf, entries, elf.sections_by_name[".altinstructions"][0])
    out = tmp_path / f"{name}.elf"
    out.write_bytes(bytes(data))
    return Input.load(read_elf(str(out)))


def _file_offset(elf, addr: int) -> int:
    sec = elf.section_at(addr)
    return sec.offset + addr - sec.addr


def _replacements(entries, elf, data, top: int | None = None):
    """The entries with a replacement in .altinstr_replacement (whose first word's top six
    bits are ``top``, where given)."""
    for e in entries:
        if e.alt_len and e.alt.section == ".altinstr_replacement":
            o = _file_offset(elf, e.alt.address)
            if top is None or int.from_bytes(data[o:o + 4], "little") >> 26 == top:
                yield e, o


def _word_changed(data, elf, entries, tab):
    for _, o in list(_replacements(entries, elf, data))[3:6]:
        data[o] ^= 0x20  # a register of a plain word: ALT016


def _branch_moved(data, elf, entries, tab):
    for _, o in list(_replacements(entries, elf, data, top=5))[:2]:
        w = int.from_bytes(data[o:o + 4], "little")  # a B one word further: ALT016
        data[o:o + 4] = ((w & 0xFC000000) | ((w + 1) & 0x3FFFFFF)).to_bytes(4, "little")


def _b_made_bl(data, elf, entries, tab):
    for _, o in list(_replacements(entries, elf, data, top=5))[-2:]:
        data[o + 3] |= 0x80


def _callback_moved(data, elf, entries, tab):
    for e in [e for e in entries if e.alt_len == 0][:2]:
        o = tab.offset + e.table_offset + 4
        v = int.from_bytes(data[o:o + 4], "little", signed=True) + 4
        data[o:o + 4] = v.to_bytes(4, "little", signed=True)


def _replacement_outside(data, elf, entries, tab):
    e = next(e for e, _ in _replacements(entries, elf, data))
    o = tab.offset + e.table_offset + 4
    data[o:o + 4] = (-0x1000000).to_bytes(4, "little", signed=True)


def _site_word_changed(data, elf, entries, tab):
    data[_file_offset(elf, entries[len(entries) // 2].site.address)] ^= 1


def _last_two_swapped(data, elf, entries, tab):
    a, b = (tab.offset + e.table_offset for e in entries[-2:])
    data[a:a + 12], data[b:b + 12] = data[b:b + 12], data[a:a + 12]


# (the change, whether the arrays decide, the codes found)
BREAKAGES = [(_word_changed, True, {"ALT016"}), (_branch_moved, True, {"ALT016"}),
             (_b_made_bl, True, {"ALT016"}), (_callback_moved, True, {"ALT013"}),
             (_replacement_outside, True, {"ALT013"}), (_site_word_changed, False, {"ALT013"}),
             (_last_two_swapped, False, {"ALT013"})]


def test_the_synthetic_firmware_as_arrays(tmp_path):
    """Its 24 objects' records against the image GNU ld made: clean, compared as arrays
    (replacements that branch to a global, callbacks, two-word sites); then broken each way
    the cross-check finds, where the arrays leave the entries they cannot pass to the
    reference (a rewritten word, a branch sent elsewhere or made a BL, a callback moved, a
    replacement outside the image), or find a block not where they look and leave the whole
    table to the block-by-block way (a site word changed, two entries swapped)."""
    records, image, profile = synthetic_link(tmp_path)
    assert sum(r.entries for r in records) > 400
    digests = [r.digest for r in records]
    marks = [m for d in digests for e in d for m in (e.alt_relocs or ())]
    assert any(isinstance(m, records_mod.Target) for m in marks)
    assert any(profile.is_callback(e.cap_raw) for d in digests for e in d)
    assert both(records, Input.load(read_elf(str(image))), profile, arrays=True) == ([], set())
    for change, arrays, codes in BREAKAGES:
        rows, seen = both(records, broken(image, tmp_path, change.__name__, change), profile,
                          arrays=arrays)
        assert {r[0] for r in rows} == codes, change.__name__
        assert bool(seen) == (change is not _last_two_swapped)  # (missing: not placed)


def test_the_image_entries_no_object_holds(tmp_path):
    """An image entry no object read before the link holds (an LTO object's, say) is
    ``unmatched``: here the entries of an object whose record the cross-check is not given,
    the last (the arrays decide: the other blocks are where they look) or the first (they
    leave it to the blocks), and none where every record is given; each object whose
    record is given and has entries is placed."""
    records, image, profile = synthetic_link(tmp_path)
    img = Input.load(read_elf(str(image)))
    got: list[int] = []
    placed: set[str] = set()
    with_entries = {r.path for r in records if r.entries}
    assert both(records, img, profile, arrays=True, unmatched=got,
                placed_paths=placed) == ([], set())
    assert got == [] and placed == with_entries
    n = sum(r.entries for r in records)
    placed.clear()
    assert both(records[:-1], img, profile, arrays=True, unmatched=got,
                placed_paths=placed) == ([], set())
    assert got == list(range(n - records[-1].entries, n))
    assert placed == with_entries - {records[-1].path}
    got.clear()
    placed.clear()
    k = next(k for k, r in enumerate(records) if r.entries)
    assert both(records[:k] + records[k + 1:], img, profile, arrays=False,
                unmatched=got, placed_paths=placed) == ([], set())
    assert got == list(range(records[k].entries))
    assert placed == with_entries - {records[k].path}


def test_the_arrays_read_records_packed_and_made(tmp_path, monkeypatch):
    """The records read back from the cache, their digests still packed (the arrays read
    their columns without making the digests), and made now, give the same findings; a
    record whose packed columns are damaged is made again from its object."""
    records, image, profile = synthetic_link(tmp_path)
    packed = [records_mod.ObjectRecord.from_plain(r.path, r.to_plain()) for r in records]
    for r, p in zip(records, packed):
        p._input, p._profile = r.full(), profile
    damaged = packed[5]
    damaged._packed = (damaged._packed[0], b"not a pickle", None)
    img = broken(image, tmp_path, "word", _word_changed)
    want = both(records, img, profile, arrays=True)
    assert want[0]
    monkeypatch.setattr(crosscheck, "ARRAYS_FROM_ENTRIES", 0)
    seen: set[int] = set()
    found = crosscheck.cross_check(packed, with_columns(img), profile, frozenset(), seen)
    assert ([astuple(f) for f in found], seen) == want
    # only the objects of the entries reported, and the damaged one, were unpacked
    unpacked = [p for p in packed if p._packed is None]
    assert damaged in unpacked and len(unpacked) <= 1 + len(want[0])
    assert damaged.digest == records[5].digest


def test_a_site_moved_to_the_same_words(tmp_path):
    """An entry's site moved to other code with the same words (a NOP): its words pass, its
    anchor does not (ALT013, the site linked elsewhere). Where the entry is not its object's
    first, the arrays place every block and leave that entry to the reference; where it is
    the first, the block is not where they look, and the block-by-block way decides."""
    records, image, profile = synthetic_link(tmp_path)
    nop = 0xD503201F
    firsts, k = set(), 0
    for r in records:
        if r.entries:
            firsts.add(k)
        k += r.entries
    elf = read_elf(str(image))
    text = elf.sections_by_name[".text"][0]
    code = elf.section_data(text)
    nops = [text.addr + o for o in range(0, len(code), 4)
            if int.from_bytes(code[o:o + 4], "little") == nop]
    entries = Input.load(elf).table.entries
    for first in (False, True):
        e = next(e for e in entries if (e.index in firsts) == first and e.orig_len == 4 and
                 e.site.address in nops)
        to = next(a for a in nops if a != e.site.address)

        def move(data, elf, entries, tab, e=e, to=to):
            o = tab.offset + e.table_offset
            data[o:o + 4] = (to - (tab.addr + e.table_offset)).to_bytes(4, "little", signed=True)

        rows, seen = both(records, broken(image, tmp_path, f"moved{first}", move), profile,
                          arrays=not first)
        assert [r[0] for r in rows] == ["ALT013"] and seen == {e.index}
        assert "was linked at" in rows[0][2]


def _branch_far(data, elf, entries, tab):
    """A replacement's B sent 128 MiB - 4 on: in reach from the replacement, not from the
    site below it (ALT009)."""
    for _, o in list(_replacements(entries, elf, data, top=5))[:2]:
        w = int.from_bytes(data[o:o + 4], "little")
        data[o:o + 4] = ((w & 0xFC000000) | 0x1FFFFFF).to_bytes(4, "little")


def _branch_inside(data, elf, entries, tab):
    """Replacements' Bs to themselves and to the replacement's end (copied as a block; the
    end asks whether a linker's thunk is there)."""
    found = list(_replacements(entries, elf, data, top=5))
    for k, (e, o) in enumerate(found[:4]):
        w = int.from_bytes(data[o:o + 4], "little")
        data[o:o + 4] = ((w & 0xFC000000) | (k % 2) * (e.alt_len // 4)).to_bytes(4, "little")


def _branch_into_replacement(data, elf, entries, tab):
    """Words of .text made Bs into replacements (ALT017)."""
    text = elf.sections_by_name[".text"][0]
    for k, e in enumerate([e for e in entries if e.alt_len >= 8][:3]):
        pc = text.addr + 64 + 8 * k
        o = text.offset + pc - text.addr
        data[o:o + 4] = (0x14000000 | (((e.alt.address + 4 - pc) >> 2) & 0x3FFFFFF)
                         ).to_bytes(4, "little")


def _callback_at_a_site(data, elf, entries, tab):
    """A callback entry pointed at the function of another entry's site (ALT014)."""
    cb = next(e for e in entries if e.alt_len == 0)
    site = entries[-1].site.address
    o = tab.offset + cb.table_offset + 4
    data[o:o + 4] = (site - (tab.addr + cb.table_offset + 4)).to_bytes(4, "little", signed=True)


def test_the_synthetic_firmware_after_the_link(tmp_path):
    """The image's checks after the link (``check_after_link``) on the table read as
    columns, where B and BL are decided at once (``linked_entries_to_check``), against the
    entry-by-entry reference: clean, with Bs out of reach from their sites (ALT009), with Bs
    inside their replacements, branches into replacements (ALT017), a callback at an
    alternative site (ALT014), and broken the cross-check's ways; ALT017's ranges and ALT014's
    callbacks and sites are taken from the columns there too."""
    records, image, profile = synthetic_link(tmp_path)
    opts = Options(profile)
    cases = [("clean", None, set())] + [(c.__name__, c, None) for c, _, _ in BREAKAGES] + \
        [("far", _branch_far, {"ALT009"}), ("inside", _branch_inside, set()),
         ("into", _branch_into_replacement, {"ALT017"}),
         ("callback", _callback_at_a_site, {"ALT014"})]
    for name, change, codes in cases:
        img = with_columns(Input.load(read_elf(str(image))) if change is None else
                           broken(image, tmp_path, name, change))
        got = [astuple(f) for f in check_image.check_after_link(img, opts)]
        assert got == [astuple(f) for f in check_image.check_after_link(img, opts, fast=False)]
        kept = check_image.linked_entries_to_check(img, profile)
        mask = check_image.may_reencode(img, profile)
        assert set(kept) <= set(mask) and len(mask) > 20, name
        if codes is not None:
            assert {f[0] for f in got} == codes, name
        if name in ("far", "inside"):
            assert 0 < len(kept) <= 4, name
        elif name == "clean":
            assert kept == []


def test_packed_columns_early_stop_when_the_linker_ends(tmp_path, monkeypatch):
    """The records' packed columns read while a linker runs: a chunk at a time, none after
    it ends; what was read is the first records' ``packed_columns_of``, and the cross-check
    given it finds what it finds without it."""
    records, image, profile = synthetic_link(tmp_path)
    monkeypatch.setattr(crosscheck, "EARLY_PACKS_CHUNK", 3)
    looks = iter([True, True, False, True])
    early = crosscheck.packed_columns_early(records, lambda: next(looks))
    assert len(early) == 6 < len(records)
    assert early == crosscheck.packed_columns_of(records[:6])
    whole = crosscheck.packed_columns_early(records, lambda: True)
    assert whole.packs == crosscheck.packed_columns_of(records)
    assert whole.asked == crosscheck.names_asked(records)
    looks = iter([True] * ((len(records) + 2) // 3) + [False])  # ends after the last chunk
    assert crosscheck.packed_columns_early(records, lambda: next(looks)) == whole.packs
    img = broken(image, tmp_path, "word", _word_changed)
    assert both(records, img, profile, arrays=True)[0]
