"""Two fast ways over a linked image, each held to the reference it replaces.

The image's checks (``check_image.image_alone_checks``: what ``altlink check`` reports of an
image, and what ``manifest`` and ``patch`` refuse) have two ways: ``fast`` runs the entry
checks only on the entries ``check_image.may_find`` keeps and the overlap check only where
``check_image.sites_overlap`` finds two sites sharing a byte; ``fast=False`` checks every
entry (the reference). Both must give the same findings, in the same order, and refuse the
same entries.

They are compared on every image the tests have, linked by the real linkers: the small images
of the checks' tests (one broken entry each), the synthetic firmware of the benchmark, the
sample firmware (GNU and LLVM), the tests' kernel builds (``kernel_build``) and Debian's vmlinux
when it has been fetched; each as linked (clean), and with its table broken in every way the
entry checks know (``broken``: hand-made fields and places in a real table), so that the
comparison is never between two empty lists.

The manifest's entries: ``manifest.build(..., encoded=True)`` writes each entry's JSON text
directly, a column at a time (``_Records.entries_json``: each distinct code's lines from
``insn.word_lines``, capstone run once over all the words; the sites named by
``Symbolizer.at_addresses``) or entry by entry (``_Records.entry_json``); the reference
builds a dict per entry for json's encoder. ``manifest.dumps`` must give the same bytes all
three ways (and ``manifest.dump``, which writes it in pieces, the same as ``dumps``), its
patch digest made from the places the columns read (``binding.digest_of_places``) or by
``binding.patch_digest``, on the same images as linked and broken (entries refused, places outside
sections, odd lengths), with and without the raw binary's offsets, with source lines (an
image with DWARF), and with the vdso nested in Debian's vmlinux; ``insn.word_lines`` is also
held to ``insn.word_line`` on the words of each image's code and on words of every class
with targets near zero (capstone writes a small number in decimal). Its sections' digests, hashed through views of the file
(``ElfFile.section_view``), are those of their copies; its table read a column at a time
(``table.read_image_table`` with numpy), the entries and findings read entry by entry.
"""
from __future__ import annotations

import io
import random
import shutil
import struct
from pathlib import Path

import pytest
from test_checks import CALLBACK, IMAGE_BAD, image_of, repl
from test_kernel import full_kernel

from altlink import checks, insn, rawbin
from altlink import manifest as manifestmod
from altlink.caps import load as load_caps
from altlink.elf import SHT_NOBITS, read_elf
from altlink.linkset import Input, Options
from altlink.table import Profile, Table, _image_place
from altlink.values import astuple

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed",
)

V417 = Profile("linux-v4.17", 4)


def same_findings(inp: Input, options: Options) -> list[tuple]:
    """The findings of ``altlink check`` of the image, and the entries manifest and patch
    refuse, both ways: they must agree. Returns the findings."""
    got = [[astuple(f) for f in checks.check([inp], options, fast=fast)]
           for fast in (True, False)]
    assert got[0] == got[1]
    refused = [checks.refusals(inp, options, fast=fast) for fast in (True, False)]
    assert refused[0] == refused[1]
    return got[0]


def broken(inp: Input, profile: Profile, moving: list[int], seed: int = 1,
           every: int = 7) -> Input:
    """``inp`` with one entry in ``every`` broken (the others as linked), each in one of the
    ways the entry checks look for: lengths, alignment, sites and replacements in data, past
    their section's end or outside the image, replacements at other code (any instruction:
    branches, literals), callback markers on static entries and the reverse, capabilities
    beyond NCAPS, callbacks at data or in the middle of a function, overlapping sites;
    ``moving``: addresses of PC-relative words (``moving_words``), for replacements."""
    elf = inp.elf
    rng = random.Random(seed)
    code = [s for s in elf.sections if s.alloc and s.executable and s.size >= 64
            and s.type != SHT_NOBITS]
    data = [s for s in elf.sections if s.alloc and not s.executable and s.size >= 16
            and s.type != SHT_NOBITS and s.name != ".altinstructions"]
    marker = 0x8000 if profile.abi == "linux-v6.1" else profile.ncaps

    def at(addr: int):
        return _image_place(elf, addr)

    def some_code(n: int = 1) -> int:
        sec = rng.choice(code)
        return sec.addr + rng.randrange(0, (sec.size - 4 * n) // 4) * 4

    count = 4 * seed

    def mutate(e, prev):
        nonlocal count
        how = count % 17
        count += 1
        if how == 16 and moving:  # a replacement starting at a PC-relative word
            return e._replace(alt=at(rng.choice(moving)), orig_len=4, alt_len=4, cap_raw=1)
        if how == 0:
            return e._replace(orig_len=6)
        if how == 1:
            return e._replace(orig_len=0)
        if how == 2:
            return e._replace(alt_len=e.orig_len + 4)
        if how == 3 and e.site.address is not None:
            return e._replace(site=at(e.site.address + 2))
        if how == 4 and data:
            return e._replace(site=at(rng.choice(data).addr))
        if how == 5:
            sec = rng.choice(code)
            return e._replace(site=at(sec.addr + sec.size - 4), orig_len=8, alt_len=8)
        if how == 6 and data:
            return e._replace(alt=at(rng.choice(data).addr + 4))
        if how == 7:
            sec = rng.choice(code)
            return e._replace(alt=at(sec.addr + sec.size - 4), orig_len=8, alt_len=8)
        if how in (8, 9):  # a static replacement at any code: many kinds of instruction
            n = rng.choice((1, 2, 4))
            return e._replace(alt=at(some_code(n)), orig_len=4 * n, alt_len=4 * n,
                              cap_raw=1)
        if how == 10 and marker is not None:
            return e._replace(cap_raw=marker | 2 if marker == 0x8000 else marker)
        if how == 11:
            return e._replace(cap_raw=1, alt_len=0)
        if how == 12 and marker is not None:  # a callback at data, or mid-function
            where = rng.choice(data).addr if data and rng.random() < 0.5 else some_code() + 4
            return e._replace(cap_raw=marker | 3 if marker == 0x8000 else marker,
                              alt=at(where), alt_len=0)
        if how == 13:
            return e._replace(cap_raw=(profile.ncaps or 64) + 5)
        if how == 14 and prev is not None and prev.site.address is not None:
            return e._replace(site=at(prev.site.address), orig_len=prev.orig_len + 4)
        return e._replace(site=at(0x10), alt=at(0x20))  # outside every section

    entries, prev = [], None
    for e in inp.table.entries:
        if rng.randrange(every) == 0:
            e = mutate(e, prev)
        entries.append(e)
        prev = e
    t = inp.table
    return Input(elf, Table(t.path, entries, list(t.findings), t.sections), inp.names)


def moving_words(elf, rng: random.Random, tries: int = 20_000) -> list[int]:
    """Addresses of words a patcher cannot copy as they are (PC-relative: literals, ADR,
    branches, ADRP), found among a sample of the code's words."""
    code = [s for s in elf.sections if s.alloc and s.executable and s.size >= 64
            and s.type != SHT_NOBITS]
    out = []
    for _ in range(tries):
        sec = rng.choice(code)
        addr = sec.addr + rng.randrange(0, sec.size // 4) * 4
        if insn.classify(int.from_bytes(elf.read_addr(addr, 4), "little")).kind != "plain":
            out.append(addr)
    return out


def same_section_digests(path) -> int:
    """``binding.section_digests`` hashes each section through a view of the file where its
    bytes are not read yet (``ElfFile.section_view``): the digests of its copies."""
    import hashlib

    from altlink import binding

    elf, other = read_elf(str(path)), read_elf(str(path))
    elf.section_data(elf.sections[1])  # one already read: its copy is hashed
    got = binding.section_digests(elf)
    ref = [hashlib.sha256(other.section_data(s)).hexdigest() if s.type != SHT_NOBITS
           else f"nobits:{s.size}" for s in other.sections if s.alloc and s.name]
    assert list(got.values()) == ref
    return len(ref)


def same_table(path) -> int:
    """``table.read_image_table`` a column at a time (numpy loaded, from any size) and entry
    by entry: the same entries (named tuples of the same types) and findings."""
    from altlink import branches, table

    branches.preload(1 << 30)
    was, table.COLUMNS_FROM_ENTRIES = table.COLUMNS_FROM_ENTRIES, 0
    try:
        got = table.read_image_table(read_elf(str(path)))
    finally:
        table.COLUMNS_FROM_ENTRIES = was
    ref = table.read_image_table(read_elf(str(path)), columns=False)
    # read as columns, the entries are made when asked for: one at a time, then all (the
    # ones made before kept), and the columns hold their fields
    assert got.size == len(ref.entries) and got.findings == ref.findings
    some = sorted({0, got.size // 2, got.size - 1}) if got.size else []
    alone = [got.entry(i) for i in some]
    assert alone == [ref.entries[i] for i in some]
    assert got.entries == ref.entries and all(got.entries[i] is e for i, e in zip(some, alone))
    assert [type(e.site) for e in got.entries] == [type(e.site) for e in ref.entries]
    if got.columns is not None:
        c = {k: v.tolist() for k, v in got.columns.items()}
        assert c["cap"] == [e.cap_raw for e in ref.entries]
        assert c["orig_len"] == [e.orig_len for e in ref.entries]
        assert c["alt_len"] == [e.alt_len for e in ref.entries]
        assert c["address"] == [e.address for e in ref.entries]
        for p in ("site", "alt"):
            places = [getattr(e, p) for e in ref.entries]
            assert c[f"{p}_addr"] == [x.address for x in places]
            assert c[f"{p}_sec"] == [x.section_index for x in places]
            assert c[f"{p}_off"] == [x.offset for x in places]
    return len(ref.entries)


def table_columns(inp: Input) -> Input:
    """The image with its table's columns (``Table.columns``, as ``read_image_table`` reads
    them with numpy) made from its entries, whatever they hold (broken places too)."""
    import numpy as np

    t = inp.table
    es = t.entries

    def col(values, dtype) -> np.ndarray:
        return np.array(list(values), dtype=dtype)

    cols = {"address": col((e.address for e in es), np.uint64),
            "cap": col((e.cap_raw for e in es), np.int64),
            "orig_len": col((e.orig_len for e in es), np.int64),
            "alt_len": col((e.alt_len for e in es), np.int64)}
    for p, places in (("site", [e.site for e in es]), ("alt", [e.alt for e in es])):
        cols[f"{p}_addr"] = col((x.address for x in places), np.uint64)
        cols[f"{p}_sec"] = col((x.section_index for x in places), np.int64)
        cols[f"{p}_off"] = col((x.offset for x in places), np.uint64)
    return Input(inp.elf, Table(t.path, es, list(t.findings), t.sections, cols), inp.names)


# What codes read as, shared by every manifest ``same_manifest`` makes (as a link's, made
# from its objects' records, is by its manifest): each finds codes another made before.
SHARED_TEXTS = manifestmod.CodeTexts()


def same_manifest(inp: Input, profile: Profile, caps=None, binary: bool = True,
                  sources=None, refuse: bool = True) -> dict:
    """The manifest's text six ways (refusing what check refuses): its entries' text a
    column at a time from the table's columns (``Table.columns``; made from its entries
    where the table was not read as columns) and from its entries (from any number of
    entries), the columns with what codes read as made before (``SHARED_TEXTS``) and with
    the sites' names made in a forked copy (``SiteNames``, from any number of entries:
    ended unused where an entry is refused), entry by entry, and from a dict per entry;
    without and with the raw binary's layout: the same bytes. Returns the reference's
    manifest (with the layout)."""
    from altlink import forkmap

    out = None
    columns = inp if inp.table.columns is not None else table_columns(inp)
    assert columns.table.columns is not None and columns.table.entries == inp.table.entries
    for bin_info in ([None, manifestmod.BinInfo("fw.bin", "ab" * 32, rawbin.layout(inp.elf))]
                     if binary else [None]):
        texts = []
        names = manifestmod.SiteNames.later(columns, from_entries=0)
        assert (names is None) == (not forkmap.can_fork())
        for image, encoded, columns_from, shared, site_names in (
                (columns, True, 0, None, None), (columns, True, 0, SHARED_TEXTS, None),
                (columns, True, 0, None, names),
                (Input(inp.elf, Table(inp.table.path, inp.table.entries, inp.table.findings,
                                      inp.table.sections), inp.names), True, 0, None, None),
                (inp, True, 1 << 62, None, None), (inp, False, 0, None, None)):
            was, manifestmod.COLUMNS_FROM_ENTRIES = manifestmod.COLUMNS_FROM_ENTRIES, \
                columns_from
            try:
                out = manifestmod.build(image, profile, caps, inp.path, "cd" * 32, None,
                                        bin_info, sources, refuse=refuse, encoded=encoded,
                                        texts=shared, site_names=site_names)
            finally:
                manifestmod.COLUMNS_FROM_ENTRIES = was
                if site_names is not None:
                    site_names.cancel()
            texts.append(manifestmod.dumps(out))
        assert len(set(texts)) == 1
        written = io.StringIO()  # as the link writes it: a few thousand entries at a time
        was, manifestmod._CHUNK = manifestmod._CHUNK, 7
        try:
            manifestmod.dump(out, written)
        finally:
            manifestmod._CHUNK = was
        assert written.getvalue() == texts[-1]
    return out


def same_word_lines(inp: Input) -> int:
    """``insn.word_lines`` of the words of the image's code (a sample of each executable
    section, its replacements whole) and ``insn.word_line`` of each: the same lines."""
    words: set[int] = set()
    for sec in inp.elf.sections:
        if sec.alloc and sec.executable and sec.type != SHT_NOBITS:
            data = inp.elf.section_data(sec)
            n = len(data) // 4
            words.update(struct.unpack(f"<{n}I", data[:4 * n])[:20_000])
    got = insn.word_lines(words)
    assert got == {w: insn.word_line(w) for w in words}
    return len(words)


def same_names(inp: Input) -> int:
    """``Symbolizer.at_addresses`` of the sites and beside them, and ``at_address`` of each."""
    addrs = [a + d for e in inp.table.entries if (a := e.site.address) is not None
             for d in (-4, 0, 4)]
    assert inp.names.at_addresses(addrs) == [inp.names.at_address(a) for a in addrs]
    return len(addrs)


manifests: list[dict] = []


def compare(path: Path, profile: Profile, every: int = 7, seeds=(1, 2),
            caps=None) -> tuple[list, set]:
    """The image as linked and broken: the findings as linked, and the codes found broken.
    Each one's manifest too (``same_manifest``; the last as linked is kept in ``manifests``)."""
    options = Options(profile, caps)
    inp = Input.load(read_elf(str(path)))
    assert inp.table.entries
    assert same_section_digests(path) > 2
    assert same_table(path) == len(inp.table.entries)
    clean = same_findings(inp, options)
    assert same_word_lines(inp) > 5 and same_names(inp)
    manifest = same_manifest(inp, profile, caps)
    manifests[:] = [manifest]
    assert len(manifest["entries"]) == len(inp.table.entries) - len(manifest.get("refused", []))
    moving = moving_words(inp.elf, random.Random(0))
    codes: set[str] = set()
    for seed in seeds:
        bad = broken(inp, profile, moving, seed, every)
        codes |= {f[0] for f in same_findings(bad, options)}
        assert same_manifest(bad, profile, caps).get("refused")
        if seed == seeds[0]:  # every broken entry written (build's default): none refused
            assert not same_manifest(bad, profile, caps, refuse=False).get("refused")
    return clean, codes


# The codes every broken table shows; ALT007 needs data to put a callback in, ALT008 a
# PC-relative word the patcher cannot move, ALT009 a re-encoded one that no longer reaches.
BROKEN = {"ALT001", "ALT002", "ALT003", "ALT004", "ALT005", "ALT010", "ALT011"}


@pytest.mark.parametrize("code,body,message", IMAGE_BAD, ids=[c for c, _, _ in IMAGE_BAD])
def test_one_broken_entry(tmp_path, code, body, message):
    image = image_of(tmp_path, body)
    found = same_findings(Input.load(read_elf(str(image))), Options(V417))
    assert {f[0] for f in found} == {code} and message in found[0][2]


# 16 sites, their replacements and 4 callback entries, beside code of every kind (PC-relative
# literals and addresses, branches) for replacements moved onto it.
SMALL = (CALLBACK + "\t.data\n\t.type dobj, %object\ndobj:\t.xword 0, 0\n\t.size dobj, 16\n"
         "\t.text\nother:\tadr x0, func\n\tldr x1, func\n\tb func\n\tadrp x2, func\n"
         "\tcbz x0, func\n\tbl my_cb\n\tret\n"
         + "".join(f"s{i}:\tnop\n" for i in range(16))
         + "".join(repl(f"q{i}", "movz x0, #1") for i in range(16))
         + "".join(f"\tent s{i}, q{i}, {i % 4}, 4, 4\n" for i in range(16))
         + "".join(f"\tent site{i}, my_cb, 4, 4, 0\n" for i in range(3)))


def test_a_small_image_broken_every_way(tmp_path):
    clean, codes = compare(image_of(tmp_path, SMALL), V417, every=2, seeds=range(12))
    assert clean == [] and BROKEN | {"ALT007", "ALT008"} <= codes


def test_the_synthetic_firmware(tmp_path):
    from test_branches import synthetic_firmware

    image = synthetic_firmware(tmp_path)
    clean, codes = compare(image, Profile("linux-v4.17", 85))
    assert clean == [] and BROKEN | {"ALT009"} <= codes


@pytest.mark.parametrize("toolchain", ["gnu", "llvm"])
def test_the_sample_firmware(tmp_path, toolchain):
    from test_header import build_sample

    if toolchain == "llvm" and not shutil.which("ld.lld"):
        pytest.skip("no ld.lld")
    image = build_sample(tmp_path / toolchain, toolchain, "linux-v4.17")
    clean, codes = compare(image, Profile("linux-v4.17", 3), every=2, seeds=range(20))
    assert clean == [] and BROKEN | {"ALT007"} <= codes


@pytest.mark.kernel_build
@pytest.mark.timeout(3600)
def test_kernel_build(kernel_build):

    caps = load_caps(str(kernel_build.cap_header))
    clean, codes = compare(kernel_build.out / "vmlinux", Profile("linux-v6.1", caps.ncaps),
                           caps=caps)
    assert clean == [] and BROKEN | {"ALT007"} <= codes


def test_debian_vmlinux():
    kernel = full_kernel()
    if kernel is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    clean, codes = compare(kernel / "vmlinux", Profile("linux-v6.1"), every=40, seeds=(1,))
    assert clean == [] and BROKEN | {"ALT007"} <= codes
    assert [n["start"] for n in manifests[0]["nested"]] == ["vdso_start"]



def test_manifest_with_source_lines(tmp_path):
    from test_link import MAIN_S, NCAPS, linker_command
    from toolchain import compile, run, write

    from altlink.sources import site_lines

    obj = compile(write(tmp_path / "main.S", MAIN_S), tmp_path / "main.o", flags=["-g"],
                  defines=[f"ALT_NCAPS={NCAPS}"])
    run(linker_command("ld", [obj], str(tmp_path / "fw.elf")), cwd=tmp_path)
    inp = Input.load(read_elf(str(tmp_path / "fw.elf")))
    lines = site_lines(inp.path, [e.site.address for e in inp.table.entries], str(tmp_path))
    m = same_manifest(inp, Profile("linux-v4.17", NCAPS), sources=lines)
    assert [e["site"]["source"].split(":")[0] for e in m["entries"]] == ["main.S"] * 3


def test_table_with_places_outside_the_image(tmp_path):
    """Offsets that resolve outside every section (ALT012), read both ways."""
    outside = ('\t.pushsection .altinstructions, "a"\n\t.word other - . + 0x10000000\n'
               "\t.word q1 - .\n\t.hword 2\n\t.byte 4, 4\n"
               "\t.word other + 4 - .\n\t.word my_cb - . - 0x100000\n\t.hword 4\n"
               "\t.byte 4, 0\n\t.popsection\n")
    image = image_of(tmp_path, SMALL + outside)
    assert same_table(image) == 21
    inp = Input.load(read_elf(str(image)))
    found = same_findings(inp, Options(V417))
    assert [f[0] for f in found] == ["ALT012", "ALT012"]
    # the manifest with the entries check refuses kept (build's default): the callback
    # outside the image is named by its address alone
    entries = same_manifest(inp, V417, refuse=False)["entries"]
    assert [e["callback"] for e in entries if e["index"] == 20] == [
        {"address": hex(inp.table.entries[20].alt.address), "symbol": None}]


def test_word_lines_near_address_zero():
    """``insn.word_lines`` against ``insn.word_line`` on words of every class: random words,
    and the PC-relative kinds with random fields and with targets within a few KiB of
    their place (capstone writes a target below 10 in decimal: ``b #4``; such a word's line
    is left to each place, and ``word_lines`` must not make one from its text elsewhere)."""
    rng = random.Random(13)
    words = {rng.randrange(1 << 32) for _ in range(20_000)} | {0x14000001}
    for base, mask, field in ((0x14000000, 0x03FFFFFF, 0x03FFFFFF),  # b
                              (0x94000000, 0x03FFFFFF, 0x03FFFFFF),  # bl
                              (0x54000000, 0x00FFFFFF, 0x00FFFFE0),  # b.cond, bc.cond
                              (0xB4000000, 0x01FFFFFF, 0x00FFFFE0),  # cbz, cbnz
                              (0x36000000, 0x81FFFFFF, 0x0007FFE0),  # tbz, tbnz
                              (0x10000000, 0x7FFFFFFF, 0x00FFFFE0),  # adr, adrp
                              (0x18000000, 0xC4FFFFFF, 0x00FFFFE0),  # literal loads
                              (0x74000000, 0x81FFFFFF, 0x00003FE0),  # FEAT_CMPBR
                              (0xD5000000, 0x00FFFFFF, 0)):  # system
        for _ in range(1500):
            word = base | rng.randrange(1 << 32) & mask
            words.add(word)
            if field:  # the same word with a small displacement, forward or back
                low = field & -field
                words.add(word & ~field | rng.randrange(-64, 1100) * low & field)
    got = insn.word_lines(words)
    assert got == {w: insn.word_line(w) for w in words}
    # the test has words of each kind of line: text, a target line, and each place's
    kinds = {type(v) for v in got.values()}
    assert kinds == {str, tuple, type(None)}
    assert got[0x14000001] is None and insn.word_line(0x14000001) is None  # "b #4"


def test_codes_read_from_the_objects_records(tmp_path):
    """``linkoutputs.early_texts``: what the codes of a link set's records (their sites' and
    replacements' words, as the objects hold them) read as, made before the image exists.
    Every code of the image whose words no relocation filled in is among them (a replacement
    whose branch leaves it is not: its word is the linker's), and the manifest made with
    them is the reference's, byte for byte."""
    from test_branches import synthetic_firmware
    from toolchain import synthetic_firmware as built_firmware

    from altlink import crosscheck, inputs, linkoutputs
    from altlink.check_linkset import collect

    fw = built_firmware()
    objects = inputs.load_elfs([str(Path(fw.dir) / o) for o in fw.objects],
                               notes=inputs.Notes(), defer=True)
    profile = Profile("linux-v4.17", 85)
    records, _, _ = collect(objects, Options(profile), [], None)
    packs = crosscheck.packed_columns_early(records, lambda: True)
    assert type(packs) is crosscheck.RecordColumns
    assert not linkoutputs.early_texts(packs, lambda: False).code_json  # the linker ended
    texts = linkoutputs.early_texts(packs, lambda: True)
    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    elf = inp.elf
    static = [e for e in inp.table.entries if not profile.is_callback(e.cap_raw)]
    codes = {elf.read_addr(e.site.address, e.orig_len) for e in inp.table.entries} \
        | {elf.read_addr(e.alt.address, e.alt_len) for e in static}
    unknown = {c for c in codes if c not in texts.code_json}

    def leaves(e) -> bool:
        code = elf.read_addr(e.alt.address, e.alt_len)
        return any(insn.needs_fixup(w, e.alt.address, e.alt_len, e.alt.address + 4 * i)
                   for i, w in enumerate(struct.unpack(f"<{len(code) // 4}I", code)))

    leaving = {elf.read_addr(e.alt.address, e.alt_len) for e in static if leaves(e)}
    assert len(codes) > 200 and leaving and unknown == leaving
    before = len(texts.code_json)
    ref = manifestmod.dumps(manifestmod.build(inp, profile, None, inp.path, "", None,
                                              encoded=True))
    got = manifestmod.dumps(manifestmod.build(inp, profile, None, inp.path, "", None,
                                              encoded=True, texts=texts))
    assert got == ref and len(texts.code_json) == before + len(unknown)


@pytest.mark.parametrize("chunk", [1, 7, 16384])
def test_the_places_digest_a_few_at_a_time(tmp_path, monkeypatch, chunk):
    """``binding.digest_of_places`` hashes the places' pieces a few thousand at a time: with
    any number at a time, the reference's digest (``patch_digest_py``, each place read by
    address) of the synthetic firmware."""
    from test_branches import synthetic_firmware

    from altlink import binding

    monkeypatch.setattr(binding, "_PLACES_CHUNK", chunk)
    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    profile = Profile("linux-v4.17", 85)
    m = manifestmod.build(inp, profile, None, inp.path, "", None, encoded=True)
    table = inp.table.sections[0]
    assert m["image"]["patch_sha256"] == binding.patch_digest_py(
        inp.elf, table.addr, table.size, inp.table.entries, profile)
