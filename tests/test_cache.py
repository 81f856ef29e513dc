"""The objects' records and their cache (``altlink/records.py``): the link stage's pre-link
findings and cross-check come from records, made from the objects or read back from the cache.

What is checked:
- a record gives the findings ``altlink check`` gives on the same objects, in the same order,
  whether made now, made by the processes that share the work, or read from the cache;
- a relink makes records only for the objects that changed, and the cache is keyed by
  content and options, never by path;
- a damaged or hostile cache is never trusted, and an unusable one never fails a link;
- the link's outputs are the same with and without the cache.
"""
from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path

import pytest
from test_checks import BAD, CALLBACK, OTHER, R0, THIS_MODULE, build, clean_source
from test_link import FW_LD, MAIN_S, asm, linker_command
from toolchain import GNU_LD, LDSCRIPTS, compile, write

from altlink import cli, forkmap, records, speedups
from altlink.check_linkset import NO_TABLE_NCAPS, collect
from altlink.checks import check
from altlink.elf import map_elf, read_elf
from altlink.errors import AltlinkError
from altlink.link import LinkRequest, link
from altlink.linkset import Input, Options
from altlink.table import Profile
from altlink.values import astuple

pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")


def options(*args):
    """The check options the command-line arguments give."""
    ns = cli.build_parser().parse_args(["check", *map(str, args), "x.o"])
    return cli.options_from(ns)


def record_files(cache: Path) -> list[Path]:
    """The cache's record files (not its folders' trimming stamps)."""
    return [p for p in cache.rglob("*") if p.is_file() and not p.name.startswith(".")]


def as_rows(findings) -> list[tuple]:
    return [astuple(f) for f in findings]  # with ``site``, which equality leaves out


def checker_findings(paths, opts, images=()) -> list[tuple]:
    """What ``altlink check`` says of the objects as one link set."""
    inputs = [Input.load(read_elf(str(p))) for p in paths]
    return as_rows(check(inputs, opts, [read_elf(str(i)) for i in images]))


def record_findings(paths, opts, cache: Path | None, images=()) -> list[tuple]:
    """What the link stage's pre-link check says of them, through records."""
    elfs = [read_elf(str(p)) for p in paths]
    _, _, found = collect(elfs, opts, [read_elf(str(i)) for i in images],
                          str(cache) if cache else None)
    return as_rows(found)


def assert_same_three_ways(tmp_path, paths, opts, images=()) -> list[tuple]:
    """Records made now, written to a cache, and read back: the checker's findings each time."""
    want = checker_findings(paths, opts, images)
    cache = tmp_path / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    assert record_findings(paths, opts, None, images) == want
    assert record_findings(paths, opts, cache, images) == want  # made, then kept
    if records.ObjectCache.options_key_of(opts) is not None:
        assert any(cache.rglob("*")), "no record was kept"
    assert record_findings(paths, opts, cache, images) == want  # read back
    return want


# ---- records say what the checker says ------------------------------------------------------

@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_records_give_the_checker_findings(tmp_path, case):
    o = build(tmp_path, "bad", case.body, flags=case.flags)
    want = assert_same_three_ways(tmp_path, [o], options(*case.args))
    assert {w[0] for w in want} == {case.code}  # the case does make its finding


def test_records_of_a_link_set_with_callbacks_between_objects(tmp_path):
    """Callbacks resolved in another object, missing (ALT006), not a function (ALT007), and
    a module's own (ALT015): the link-set part of the check, from the records' definitions."""
    sites = build(tmp_path, "sites", clean_source("v4.17"))
    other = compile(write(tmp_path / "other.S", OTHER), tmp_path / "other.o")
    data_cb = build(tmp_path, "datacb", '\t.data\n\t.globl cb_other\ncb_other:\t.word 0\n',
                    prelude=False)
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    assert assert_same_three_ways(tmp_path, [sites, other], v417) == []
    missing = assert_same_three_ways(tmp_path, [sites], v417)
    assert [w[0] for w in missing] == ["ALT006"] * 3
    not_code = assert_same_three_ways(tmp_path, [sites, data_cb], v417)
    assert [w[0] for w in not_code] == ["ALT007"] * 3
    module = assert_same_three_ways(tmp_path, [sites, other],
                                    options("--abi", "linux-v4.17", "--ncaps", "4", "--module"))
    assert [w[0] for w in module] == ["ALT015"] * 3
    # The same callbacks from two objects (a name found fine once is fine for every object
    # of the set: the records' symbol space skips no object), fine and not.
    sites2 = build(tmp_path, "sites2", clean_source("v4.17"))
    assert assert_same_three_ways(tmp_path, [sites, sites2, other], v417) == []
    module = assert_same_three_ways(tmp_path, [sites, other, sites2],
                                    options("--abi", "linux-v4.17", "--ncaps", "4", "--module"))
    assert [(w[0], os.path.basename(w[3])) for w in module] == \
        [("ALT015", "sites.o")] * 3 + [("ALT015", "sites2.o")] * 3


def test_records_of_a_module_found_by_its_module_structure(tmp_path):
    """The module structure in one object makes the whole link set a module: the records of
    the other objects are made again under the module's rules."""
    a = build(tmp_path, "a", "\tent site0, my_cb, 4, 4, 0\n")
    b = build(tmp_path, "b", THIS_MODULE + CALLBACK, prelude=False)
    found = assert_same_three_ways(tmp_path, [a, b], options("--abi", "linux-v4.17",
                                                             "--ncaps", "4"))
    assert [w[0] for w in found] == ["ALT015"]


def test_records_with_flags_that_disagree_and_a_cap_table(tmp_path):
    a = build(tmp_path, "a", R0 + "\tent site0, r0, 1, 4, 4\n")
    b = build(tmp_path, "b", '\t.pushsection .altinstructions, "aw"\n\t.word site0 - .\n'
              "\t.word r0 - .\n\t.hword 7\n\t.byte 4, 4\n\t.popsection\n" + R0)
    caps = write(tmp_path / "caps", "A\nB\nC\n")
    found = assert_same_three_ways(tmp_path, [a, b], options("--cap-table", caps))
    assert [w[0] for w in found] == ["ALT012", "ALT011"]


# The options under which the records of objects without entries are kept where NCAPS is
# inferred.
NOT_GIVEN = Options(Profile("linux-v4.17", NO_TABLE_NCAPS))


def test_where_ncaps_is_inferred_only_records_without_entries_are_kept(tmp_path):
    """v4.17 without --ncaps: NCAPS comes from every entry of the link set, so the record of
    an object with entries cannot be kept; one without entries is the same under any NCAPS,
    and is kept (a firmware link without alternatives reads no object again)."""
    sites = build(tmp_path, "sites", clean_source("v4.17"))
    other = compile(write(tmp_path / "other.S", OTHER), tmp_path / "other.o")
    opts = options("--abi", "linux-v4.17")
    cache = tmp_path / "c"
    want = checker_findings([sites, other], opts)
    assert record_findings([sites, other], opts, cache) == want == []
    [kept] = record_files(cache)
    assert record_findings([sites, other], opts, cache) == want
    assert record_files(cache) == [kept]
    # The record kept is other's, as made under an NCAPS given.
    [made] = [r for r in collect([read_elf(str(other))], options(
        "--abi", "linux-v4.17", "--ncaps", "7"), [], None)[0]]
    [back] = records.ObjectCache(str(cache), records.ObjectCache.options_key_of(
        NOT_GIVEN), None).get_many([read_elf(str(other))])
    assert back[0] is not None and back[0] == made and back[0].summary() == made.summary()
    assert back[0].defines == made.defines


def test_a_record_with_entries_kept_under_that_ncaps_is_not_taken(tmp_path):
    """A record kept under the NCAPS under which the records of objects without entries are
    kept, but with entries (made so through the API: the command line refuses a negative
    NCAPS), is not taken by a link that infers NCAPS: it makes its own."""
    sites = build(tmp_path, "sites", R0 + "\tent site0, r0, 3, 4, 4\n\tent site1, cb, 5, 4, 0\n")
    cache = tmp_path / "c"
    record_findings([sites], NOT_GIVEN, cache)
    assert record_files(cache)
    inferred = options("--abi", "linux-v4.17")
    assert record_findings([sites], inferred, cache) == checker_findings([sites], inferred)


def test_records_made_in_parallel_are_the_same(tmp_path, monkeypatch, forks):
    """Enough objects for the work to be shared between processes: the same records, and the
    first unreadable object in input order is the one reported."""
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    objs = [build(tmp_path, f"o{k}", R0 + f"\tent site{k % 3}, r0, {k % 6}, 4, 4\n")
            for k in range(records.PARALLEL_MIN + 6)]
    # Two CPUs, whatever this machine has (forkmap.cpus reads the affinity mask, not
    # os.cpu_count), and a count of the forks: the work is shared, not done here alone.
    monkeypatch.setattr(forkmap, "cpus", lambda: 2)
    want = checker_findings(objs, v417)
    assert {w[0] for w in want} == {"ALT002", "ALT011"}  # caps 4 (a callback's) and 5
    # (with the extension, the records of the objects without findings are made whole here
    # before any fork, and the few others here too: the work is shared where the Python
    # makes them)
    speedups.use(False)
    try:
        assert record_findings(objs, v417, None) == want
        assert forks == [1]
    finally:
        speedups.use(None)
    assert record_findings(objs, v417, None) == want
    assert record_findings(objs, v417, tmp_path / "cache") == want
    # One record per content: objects with the same bytes under other names share one.
    assert len(record_files(tmp_path / "cache")) == len({o.read_bytes() for o in objs})
    # Two objects whose headers are damaged: the first one named.
    for k in (40, 9):
        data = bytearray(objs[k].read_bytes())
        data[0x28:0x30] = (1 << 40).to_bytes(8, "little")  # e_shoff past the end
        objs[k].write_bytes(data)
    with pytest.raises(Exception, match=r"o9\.o"):
        record_findings(objs, v417, None)


def test_records_made_in_parallel_name_the_first_unreadable_headers(tmp_path, monkeypatch, forks):
    """Objects mapped without their section headers read (``map_elf``, as a check or link
    reads them): in each process that makes records, the headers of the objects it takes are
    read where it makes their records. An object whose record cannot be made (its symbol
    table's entry size) before one whose headers cannot be read: the headers are named, as
    where every object's headers are read before any record is made."""
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    objs = [build(tmp_path, f"o{k}", R0 + f"\tent site{k % 3}, r0, {k % 6}, 4, 4\n")
            for k in range(records.PARALLEL_MIN + 30)]
    originals = {k: objs[k].read_bytes() for k in (5, 70, 90)}
    monkeypatch.setattr(forkmap, "cpus", lambda: 2)
    # Where the Python makes the records (the work shared with a forked copy); with the
    # extension, which makes most of them whole here before any fork, below.
    speedups.use(False)
    try:
        _first_unreadable_named(objs, v417)
    finally:
        speedups.use(None)
    assert len(forks) == 4
    if speedups.get() is not None:
        for k, data in originals.items():
            objs[k].write_bytes(data)
        _first_unreadable_named(objs, v417)


def _first_unreadable_named(objs, v417) -> None:
    """``test_records_made_in_parallel_name_the_first_unreadable_headers``' checks, on the
    objects as built; they are damaged in turn."""

    def made(paths):
        return as_rows(collect([map_elf(str(p)) for p in paths], v417, [], None)[2])

    assert made(objs) == checker_findings(objs, v417)
    data = bytearray(objs[5].read_bytes())
    symtab = read_elf(str(objs[5])).symtab
    shoff = int.from_bytes(data[0x28:0x30], "little")
    data[shoff + 64 * symtab.index + 56] = 23  # sh_entsize
    objs[5].write_bytes(data)
    with pytest.raises(AltlinkError, match=r"o5\.o: symbol table entry size 23"):
        made(objs)
    for k in (90, 70):  # a section's bytes past the end of the file
        data = bytearray(objs[k].read_bytes())
        shoff = int.from_bytes(data[0x28:0x30], "little")
        data[shoff + 64 + 24:shoff + 64 + 32] = (len(data) + 0x100).to_bytes(8, "little")
        objs[k].write_bytes(data)
    with pytest.raises(AltlinkError, match=r"o70\.o: section 1 \(.text\) at .* runs past"):
        made(objs)
    with pytest.raises(AltlinkError, match=r"o70\.o: section 1"):
        made(objs[:60] + objs[70:])  # the headers' error in a process that made no record


# ---- the cache --------------------------------------------------------------------------------

def count_made(monkeypatch) -> list[str]:
    """The objects whose records are made, by ``make_record`` or whole by the extension
    (``make_plain``, a check without a cache)."""
    made: list[str] = []
    real, real_plain = records.make_record, records.make_plain

    def counting(inp, opts, *more):
        made.append(os.path.basename(inp.path))
        return real(inp, opts, *more)

    def counting_plain(elf, opts, *more):
        got = real_plain(elf, opts, *more)
        if got is not None:
            made.append(os.path.basename(elf.path))
        return got

    monkeypatch.setattr(records, "make_record", counting)
    monkeypatch.setattr(records, "make_plain", counting_plain)
    return made



def test_an_objects_bytes_are_hashed_once_for_its_key_and_many_by_hashlib(tmp_path,
                                                                         monkeypatch):
    """The key of a record hashes the object's bytes once (a first key, made to choose the
    hash for the link set's size, hashed the first object twice: a check of a thousand
    kernel modules, each its own link set, hashed every module twice). The interpreter's
    own sha256 serves a process that asks for little in all; hashlib one that asks for
    more, however it is split (the modules' check asks one module at a time)."""
    import altlink

    obj = build(tmp_path, "one", clean_source("v4.17"))
    data = obj.read_bytes()
    hashed: list[int] = []
    real = records.sha256_for

    def counting(size=0):
        made = real(size)

        class Counted:
            def __init__(self, first=b""):
                self.h = made(first)

            def copy(self):
                c = Counted.__new__(Counted)
                c.h = self.h.copy()
                return c

            def update(self, b):
                hashed.append(len(b))
                self.h.update(b)

            def hexdigest(self):
                return self.h.hexdigest()
        return Counted

    monkeypatch.setattr(records, "sha256_for", counting)
    cache = records.ObjectCache(str(tmp_path / "c"), "k")
    (path,) = [p for _r, p in cache.get_many([map_elf(str(obj))])]
    assert hashed == [len(data)]
    assert path == records.ObjectCache(str(tmp_path / "c"), "k").record_path(data)
    monkeypatch.setattr(altlink, "_asked", [0])
    small = altlink.sha256_for(altlink.HASHLIB_FROM // 2)
    more = altlink.sha256_for(altlink.HASHLIB_FROM // 2)
    assert small(b"x").hexdigest() == more(b"x").hexdigest()
    import hashlib

    assert more is hashlib.sha256

def test_a_relink_reads_again_only_the_object_that_changed(tmp_path, monkeypatch):
    objs = [build(tmp_path, f"o{k}", R0 + f"\tent site{k % 3}, r0, {k % 4}, 4, 4\n")
            for k in range(5)]
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    made = count_made(monkeypatch)
    cache = tmp_path / "cache"
    record_findings(objs, v417, cache)
    assert sorted(made) == [f"o{k}.o" for k in range(5)]
    made.clear()
    assert record_findings(objs, v417, cache) == checker_findings(objs, v417)
    assert made == []
    build(tmp_path, "o2", R0 + "\tent site1, r0, 3, 4, 4\n")  # other contents
    assert record_findings(objs, v417, cache) == checker_findings(objs, v417)
    assert made == ["o2.o"]


def test_the_key_is_the_content_and_the_options_not_the_path(tmp_path, monkeypatch):
    o = build(tmp_path, "a", R0 + "\tent site0, r0, 1, 4, 8\n")  # ALT001
    moved = tmp_path / "elsewhere" / "b.o"
    moved.parent.mkdir()
    shutil.copy(o, moved)
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    cache = tmp_path / "cache"
    made = count_made(monkeypatch)
    record_findings([o], v417, cache)
    found = record_findings([moved], v417, cache)
    assert made == ["a.o"]  # the copy's record was read, not made
    assert found == checker_findings([moved], v417) and str(moved) in found[0][3]
    record_findings([o], options("--abi", "linux-v4.17", "--ncaps", "5"), cache)
    record_findings([o], options("--abi", "linux-v6.1"), cache)
    assert made == ["a.o"] * 3  # other options: other records


def test_a_damaged_or_hostile_record_is_made_again(tmp_path, monkeypatch):
    o = build(tmp_path, "a", R0 + "\tent site0, r0, 1, 4, 8\n")
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    cache = tmp_path / "cache"
    want = record_findings([o], v417, cache)
    (rec,) = record_files(cache)
    made = count_made(monkeypatch)

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    wrong_shape = (records.RECORD_FORMAT, False, (), [], [], (), ((), ()), ((), (), (), ()),
                   (("x",), (), (), ()), b"")
    for damage in (b"", rec.read_bytes()[:20], b"not a pickle", pickle.dumps(Boom()),
                   pickle.dumps((records.RECORD_FORMAT + 1, "future")),
                   pickle.dumps(wrong_shape)):
        rec.write_bytes(damage)
        assert record_findings([o], v417, cache) == want
    assert len(made) == 6 and not Path("pwned").exists() and not (tmp_path / "pwned").exists()


def count_reads(monkeypatch) -> list[str]:
    """The cache's files read (records and packs), by name."""
    read: list[str] = []
    real = records._read_whole

    def counting(path, *more):
        read.append(os.path.basename(path))
        return real(path, *more)

    monkeypatch.setattr(records, "_read_whole", counting)
    return read


def test_a_link_sets_records_are_read_back_from_its_pack(tmp_path, monkeypatch):
    """A link set whose records were all read back keeps them in one pack too: the next
    check of the same objects reads that one file and finds what the checker finds; a pack
    that is damaged, of another length, or whose record lost its findings is passed over
    for the records' own files, which give the same findings; a set with a record made
    keeps no pack."""
    monkeypatch.setattr(records, "PACK_FROM", 3)
    objs = [build(tmp_path, f"o{k}", R0 + f"\tent site{k % 3}, r0, {k + 2}, 4, 4\n")
            for k in range(4)]
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    cache = tmp_path / "cache"
    want = checker_findings(objs, v417)
    assert {w[0] for w in want} == {"ALT002", "ALT011"}
    assert record_findings(objs, v417, cache) == want  # made: no pack
    assert not list(cache.rglob("*" + records.PACK_SUFFIX))
    assert record_findings(objs, v417, cache) == want  # read back: the pack written
    (pack,) = cache.rglob("*" + records.PACK_SUFFIX)
    read = count_reads(monkeypatch)
    made = count_made(monkeypatch)
    assert record_findings(objs, v417, cache) == want
    assert read == [pack.name] and made == []
    assert record_findings(objs[:2], v417, cache) == checker_findings(objs[:2], v417)
    assert len(read) == 3, "a set under PACK_FROM reads its records' own files"
    good = pack.read_bytes()
    plains = pickle.loads(good)
    lost = list(plains)
    lost[2] = (*lost[2][:3], [], [], (), *lost[2][6:])  # o2's ALT002 lost
    for damage in (b"", good[:100], b"not a pickle", pickle.dumps(plains[:3]),
                   pickle.dumps(tuple(plains)), pickle.dumps(lost)):
        pack.write_bytes(damage)
        read.clear()
        assert record_findings(objs, v417, cache) == want
        assert read[0] == pack.name and len(read) == 5  # the pack, then each record
        assert pack.read_bytes() == good, "written again from the records' own files"
    assert made == []
    build(tmp_path, "o2", R0 + "\tent site2, r0, 1, 4, 4\n")  # other contents
    assert record_findings(objs, v417, cache) == checker_findings(objs, v417)
    assert made == ["o2.o"] and len(list(cache.rglob("*" + records.PACK_SUFFIX))) == 1


def test_an_unusable_cache_does_not_fail_the_link(tmp_path):
    o = build(tmp_path, "a", R0 + "\tent site0, r0, 1, 4, 4\n")
    blocker = write(tmp_path / "file", "not a directory")
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    assert record_findings([o], v417, blocker / "cache") == checker_findings([o], v417)
    if os.geteuid() != 0:  # root writes anyway
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert record_findings([o], v417, ro) == checker_findings([o], v417)



def test_another_capstone_keys_the_records_apart(tmp_path):
    """Capstone's decoding is part of the checks (a word it reads as PC-relative) and of the
    manifest's text: a record or an SCons link made with one capstone is never taken with
    another (an environment that shares the cache, an upgrade): the code's digest, which
    keys both, names the capstone ``import capstone`` would find, without importing it."""
    import subprocess
    import sys

    import capstone

    real = Path(capstone.__file__).parent
    other = tmp_path / "other" / "capstone"
    shutil.copytree(real, other)
    (other / "__init__.py").write_text((real / "__init__.py").read_text() + "\n# another\n")
    code = ("import sys\n{}import altlink\nprint(altlink.code_digest())\n"
            "print('capstone' in sys.modules)\n")

    def digest(first: str | None) -> list[str]:
        put = f"sys.path.insert(0, {first!r})\n" if first else ""
        p = subprocess.run([sys.executable, "-c", code.format(put)], capture_output=True,
                           text=True, check=True)
        return p.stdout.split()

    here, again, there = digest(None), digest(None), digest(str(other.parent))
    assert here == again and here[1] == there[1] == "False"  # (capstone not imported)
    assert here[0] != there[0]

def test_link_outputs_are_the_same_with_and_without_the_cache(tmp_path, monkeypatch):
    """The whole link, twice with a cache (made, then read) and once without: the same image,
    raw binary, manifest (apart from its own name) and findings."""
    main = asm(tmp_path, "main", MAIN_S)
    helper = build(tmp_path, "h", R0 + "\tent site0, r0, 1, 4, 4\n")
    script = write(tmp_path / "fw.ld", FW_LD)
    monkeypatch.chdir(tmp_path)
    outs = {}
    for run, cache in (("nocache", None), ("made", "cache"), ("read", "cache")):
        d = tmp_path / run
        d.mkdir()
        cmd = linker_command("ld", [main, helper], str(d / "fw.elf"), script)
        req = LinkRequest(cmd, str(d / "fw.elf"), str(d / "fw.json"), str(d / "fw.bin"),
                          options("--abi", "linux-v4.17", "--ncaps", "4"),
                          cache_dir=str(tmp_path / cache) if cache else None)
        res = link(req)
        assert res.linked and res.written, res.findings
        outs[run] = ((d / "fw.elf").read_bytes(), (d / "fw.bin").read_bytes(),
                     (d / "fw.json").read_text().replace(run, "RUN"),
                     [(f.code, f.message) for f in res.findings])
    assert outs["nocache"] == outs["made"] == outs["read"]
    assert any((tmp_path / "cache").rglob("*"))


def test_cli_cache_options(tmp_path):
    main = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    cmd = [GNU_LD[0], "-static", "-L", str(LDSCRIPTS), "-T", str(script), str(main),
           "-o", "x.elf"]
    common = ["link", "-o", str(tmp_path / "fw.elf"), "--ncaps", "4"]
    assert cli.main([*common, "--cache-dir", str(tmp_path / "c1"), "--", *cmd]) == 0
    assert len(record_files(tmp_path / "c1")) == 1
    os.environ["ALTLINK_CACHE_DIR"] = str(tmp_path / "c2")  # conftest restores it
    assert cli.main([*common, "--no-cache", "--", *cmd]) == 0
    assert not (tmp_path / "c2").exists()
    assert cli.main([*common, "--", *cmd]) == 0
    assert (tmp_path / "c2").exists()


def test_check_reads_records_too(tmp_path, monkeypatch, capsys):
    """``altlink check`` of objects goes through the same records: a second check of the same
    objects makes none, and says the same."""
    a = build(tmp_path, "a", R0 + "\tent site0, r0, 1, 4, 8\n")  # ALT001
    b = build(tmp_path, "b", R0 + "\tent site1, r0, 2, 4, 4\n")
    args = ["check", "--abi", "linux-v4.17", "--ncaps", "4", "--cache-dir", str(tmp_path / "c"),
            str(a), str(b)]
    made = count_made(monkeypatch)
    assert cli.main(args) == 1
    first = capsys.readouterr()
    assert sorted(made) == ["a.o", "b.o"] and "ALT001" in first.out
    assert cli.main(args) == 1
    assert capsys.readouterr() == first and sorted(made) == ["a.o", "b.o"]
    assert cli.main([*args[:5], "--no-cache", *args[7:]]) == 1
    assert capsys.readouterr() == first and len(made) == 4


def test_a_check_that_keeps_no_record_makes_no_digest(tmp_path, monkeypatch, capsys):
    """A record's digest is for a link's cross-check: ``altlink check --no-cache`` makes none
    (and says what the check with records says); a check that keeps its records makes each
    one's, so that a later link reads whole records."""
    a = build(tmp_path, "a", R0 + "\tent site0, r0, 1, 4, 8\n")  # ALT001
    b = build(tmp_path, "b", R0 + "\tent site1, r0, 2, 4, 4\n")
    made: list[str] = []
    real, real_plain = records.digest, records.make_plain
    monkeypatch.setattr(records, "digest", lambda inp, *more: (
        made.append(os.path.basename(inp.path)), real(inp, *more))[1])

    def plain(elf, opts, with_digest=False):  # (the digest made by the extension)
        got = real_plain(elf, opts, with_digest)
        if got is not None and type(got[-1]) is tuple:
            made.append(os.path.basename(elf.path))
        return got

    monkeypatch.setattr(records, "make_plain", plain)
    args = ["check", "--abi", "linux-v4.17", "--ncaps", "4", str(a), str(b)]
    assert cli.main([*args[:5], "--no-cache", *args[5:]]) == 1
    first = capsys.readouterr()
    assert "ALT001" in first.out and made == []
    assert cli.main([*args[:5], "--cache-dir", str(tmp_path / "c"), *args[5:]]) == 1
    assert capsys.readouterr() == first and sorted(made) == ["a.o", "b.o"]
    kept = [pickle.loads(f.read_bytes()) for f in record_files(tmp_path / "c")]
    assert len(kept) == 2 and all(t[-1] != records.NOT_MADE for t in kept)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("ALTLINK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert records.default_cache_dir() == str(tmp_path / "xdg" / "altlink" / "records")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert records.default_cache_dir() == str(tmp_path / "home" / ".cache" / "altlink" /
                                              "records")
    monkeypatch.setenv("ALTLINK_CACHE_DIR", "")
    assert records.default_cache_dir() is None


def _disk(path: Path) -> int:
    st = path.stat()
    return getattr(st, "st_blocks", 0) * 512 or st.st_size


def _old_files(folder: Path, first: int, n: int) -> list[Path]:
    """``n`` files of 1,000 bytes written in 1970, as old records would be, oldest first."""
    out = []
    for k in range(n):
        f = folder / f"{first + k:062x}"
        f.write_bytes(b"x" * 1000)
        os.utime(f, (1_000_000 + k, 1_000_000 + k))
        out.append(f)
    return out


def test_the_cache_is_kept_under_its_size(tmp_path, monkeypatch):
    """``$ALTLINK_CACHE_SIZE`` bounds the cache: the folder a link writes a record into is
    looked over at most once a day (its stamp), and its oldest files go until the space they
    take on disk is under nine tenths of its share (a 256th), at most ``TRIM_BATCH`` a time
    (the stamp then left due); the record just written stays, and the links' findings are the
    same. 0: no bound; a value that is not a size is one line naming the variable."""
    objs = [build(tmp_path, f"o{k}", R0 + f"\tent site{k % 3}, r0, {k % 4}, 4, 4\n")
            for k in range(3)]
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    cache = tmp_path / "cache"
    want = record_findings(objs, v417, cache)  # records kept, folders stamped now
    folders = {p.parent for p in record_files(cache)}
    assert all((f / records.TRIM_STAMP).is_file() for f in folders)
    # a folder that holds one of the records (two may share one: their keys' first byte,
    # which altlink's own code changes)
    parents = [p.parent for p in record_files(cache)]
    keep = next(p for p in sorted(record_files(cache)) if parents.count(p.parent) == 1)
    folder, stamp = keep.parent, keep.parent / records.TRIM_STAMP
    old = _old_files(folder, 0, 24)  # another version's records, say
    share = 16 * _disk(old[0])  # a folder's: room for 16 of them
    monkeypatch.setenv("ALTLINK_CACHE_SIZE", str(256 * share))
    # A stamp younger than a day: the folder is left as it is until then.
    keep.unlink()  # made again: written into its folder
    assert record_findings(objs, v417, cache) == want and all(f.exists() for f in old)
    # Looked over more than a day ago: the oldest go, the newest stay, under 9/10 of a share.
    os.utime(stamp, (1_000_000, 1_000_000))
    keep.unlink()
    assert record_findings(objs, v417, cache) == want
    left = [f for f in old if f.exists()]
    assert keep.exists() and 0 < len(left) < len(old) and left == old[len(old) - len(left):]
    assert sum(_disk(p) for p in folder.iterdir()) <= share * 9 // 10
    assert time.time() - stamp.stat().st_mtime < 3600  # renewed
    # Far over: TRIM_BATCH files a time, the stamp left due for the next writer.
    monkeypatch.setattr(records, "TRIM_BATCH", 5)
    more = _old_files(folder, 100, 20)
    os.utime(stamp, (1_000_000, 1_000_000))
    gone = []
    for _ in range(3):
        keep.unlink()
        assert record_findings(objs, v417, cache) == want
        gone.append(sum(not f.exists() for f in more + left))
        assert time.time() - stamp.stat().st_mtime >= records.TRIM_EVERY  # still due
    assert gone == [5, 10, 15]
    # No bound: nothing goes, whatever the stamp says.
    monkeypatch.setenv("ALTLINK_CACHE_SIZE", "0")
    present = [f.exists() for f in more + left]
    keep.unlink()
    record_findings(objs, v417, cache)
    assert [f.exists() for f in more + left] == present
    for bad in ("lots", "1T", "-5", "1.5G"):
        monkeypatch.setenv("ALTLINK_CACHE_SIZE", bad)
        with pytest.raises(records.AltlinkError, match=f"ALTLINK_CACHE_SIZE='{bad}'"):
            records.cache_size_limit()
    for good, n in (("2G", 2 << 30), ("500m", 500 << 20), ("64K", 64 << 10), ("12345", 12345)):
        monkeypatch.setenv("ALTLINK_CACHE_SIZE", good)
        assert records.cache_size_limit() == n
    monkeypatch.delenv("ALTLINK_CACHE_SIZE")
    assert records.cache_size_limit() == records.DEFAULT_CACHE_SIZE


_LOADED = """\
import sys
from altlink import cli
from altlink.gcpause import process_ends
process_ends()  # the altlink command's own process (cli.run)
rc = cli.main(sys.argv[1:])
print(rc, type(sys.modules.get("inspect")).__name__,
      " ".join(m for m in ("ast", "dis", "tokenize", "altlink.check_entries",
                           "altlink.check_objects", "altlink.insn", "altlink.branches",
                           "altlink.checks", "altlink.sources", "altlink.report",
                           "altlink.advice") if m in sys.modules))
"""


def check_in_a_process(tmp_path, script: str):
    """A function that runs ``script`` (``python -c``) with the arguments of ``altlink
    check`` of two objects, one's callback in the other, with a record cache; it gives the
    script's output."""
    import subprocess
    import sys

    a = build(tmp_path, "a", CALLBACK + R0 + "\tent site0, r0, 1, 4, 4\n")
    b = build(tmp_path, "b", "\tent site1, my_cb, 4, 4, 0\n")
    args = ["check", "--abi", "linux-v4.17", "--ncaps", "4", "--cache-dir",
            str(tmp_path / "c"), str(a), str(b)]

    def run() -> str:
        return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                              text=True, check=True).stdout.strip()

    return run


def test_a_check_whose_records_are_kept_imports_only_what_it_uses(tmp_path):
    """``altlink check`` of objects whose records are all kept runs none of the objects'
    checks: it imports neither them (check_entries, check_objects, insn, branches) nor, with
    no finding, the source lines, the report's text or the notes that explain findings; and
    ``inspect`` (with ast, dis, tokenize), which only ``dataclasses`` imports, is a stand-in
    that no one asks anything of."""
    loaded = check_in_a_process(tmp_path, _LOADED)
    first = loaded()  # the records made: the objects' checks run
    assert first.startswith("0 ") and "altlink.check_objects" in first, first
    assert loaded() == "0 _ImportedWhenUsed", "records kept: " + loaded()


def test_the_stand_in_for_inspect_imports_it_when_asked(monkeypatch):
    """The stand-in ``cli._inspect_when_used`` leaves in ``sys.modules`` answers as the module
    does: the first name asked of it imports ``inspect``, which takes its place."""
    import inspect as real
    import sys

    monkeypatch.delitem(sys.modules, "inspect")
    cli._inspect_when_used()
    stand_in = sys.modules["inspect"]
    assert type(stand_in) is cli._ImportedWhenUsed
    import inspect  # as dataclasses imports it: the stand-in, still

    assert inspect is stand_in and sys.modules["inspect"] is stand_in
    assert str(inspect.signature(options)) == "(*args)"
    assert sys.modules["inspect"] is not stand_in and sys.modules["inspect"].signature
    assert inspect.isfunction is sys.modules["inspect"].isfunction
    monkeypatch.setitem(sys.modules, "inspect", real)
