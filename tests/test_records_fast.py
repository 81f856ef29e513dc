"""Reading a record back (``altlink/records.py``): ``digests_ok`` checks an object's entry
digests a field at a time over the whole list; ``digests_ok_py``, entry by entry, is the
reference. Both must accept every record altlink makes and refuse the same damaged ones.

What is checked:
- the records of toolchain-built objects (a replacement branching to a global and to a local
  symbol: ``Target`` with and without a global name) and, when the tests' kernel build is there,
  of its objects: both accept them;
- every field of such a digest replaced by values of the wrong type or shape, one at a time:
  both refuse it, or both accept it.

``digest`` takes a run of words as it is where no relocation falls in it; ``digest_py``, a
word at a time, is the reference: both give the same digests of every object above and of
objects with every form of entry (relocated site words, branches out of replacements,
callbacks, damaged tables).

A record's plain data (``to_plain``) keeps the callbacks an object leaves to the link set and
its definitions as columns; read back (``from_plain``), the findings, in their order among the
callbacks, and the definitions are the record's own.

A record read back keeps its digest packed (its columns pickled apart) until the digest is
asked for; what is checked of that:
- unpacked, it is the digest made from the object, for the toolchain-built objects and the
  kernel build's, and the summary columns and counts are the digest's;
- packed columns that are damaged (not a pickle, the wrong number of columns or entries, a
  field of the wrong type) are never used: the digest is made again from the object, the
  same as without the cache.
"""
from __future__ import annotations

import os
import pickle
import shutil

import pytest
from test_cache import options
from test_link import asm, far_source
from toolchain import GNU_LD

from altlink import records
from altlink.check_linkset import collect
from altlink.elf import read_elf
from altlink.findings import Deferred
from altlink.records import Anchor, EntryDigest, Target

pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")

V61 = ("--abi", "linux-v6.1", "--ncaps", "80")


def digests(paths, opts) -> list[list[EntryDigest]]:
    recs, profile, _ = collect([read_elf(str(p)) for p in paths], opts, [], None)
    for r in recs:
        assert r.digest == records.digest_py(r.full(), profile)
        assert_unpacks_the_same(r)
    return [r.digest for r in recs]


def assert_unpacks_the_same(rec) -> None:
    """A record made now, as plain data (the cache's) and back: its digest unpacks the same."""
    back = records.ObjectRecord.from_plain(rec.path, rec.to_plain())
    assert back._packed is not None  # not unpacked yet
    assert (back.summary(), back.entries, back.callbacks) == \
        (rec.summary(), len(rec.digest), sum(d.alt_len == 0 for d in rec.digest))
    assert back.digest == rec.digest and back._packed is None
    assert back == rec


def toolchain_digests(tmp_path) -> list[list[EntryDigest]]:
    objs = [asm(tmp_path, "g", far_source("bl", True)),
            asm(tmp_path, "l", far_source("b", False))]
    got = digests(objs, options("--abi", "linux-v4.17", "--ncaps", "4"))
    marks = [m for d in got for e in d for m in (e.alt_relocs or ())]
    assert any(type(m) is Target and m.global_name is None for m in marks)
    assert any(type(m) is Target and m.global_name is not None for m in marks)
    return got


def test_both_accept_what_altlink_makes(tmp_path):
    for d in toolchain_digests(tmp_path):
        assert records.digests_ok(d) and records.digests_ok_py(d)


@pytest.mark.kernel_build
@pytest.mark.timeout(3600)  # the first use of the build compiles the kernel
def test_both_accept_the_kernel_builds_records(kernel_build):
    out = kernel_build.out
    objs = sorted(p for p in out.glob("kernel/**/*.o") if p.stat().st_size)
    objs = [p for p in objs if not p.name.endswith(".mod.o")]
    assert len(objs) > 50
    seen = 0
    for d in digests(objs, options(*V61, "--cap-table", kernel_build.cap_header)):
        assert records.digests_ok(d) and records.digests_ok_py(d)
        seen += len(d)
    assert seen > 100


BAD = [None, True, False, 0, -1, 1.0, "x", b"x", (), (1,), (None,), (True,), ("x",), [1],
       (1, "x"), ((1,),), Anchor("a", True, 0), Anchor("a", 1, 0), Anchor(1, False, 0),
       Anchor("a", False, 0.5), Target("t", None, 0, None), Target("t", "t", 0, None),
       Target(1, None, 0, None), Target("t", b"t", 0, None), Target("t", None, "0", None),
       Target("t", None, 0, Anchor("a", False, 0)), Target("t", None, 0, ("a", False, 0)),
       (Target("t", None, 0, Anchor("a", False, 0)),), (Target("t", None, 0, 5),),
       (Target("t", "g", 0, None), None, True), (False,), (None, None), (1, 2), (1, 2, 3)]


def test_both_refuse_the_same_damage(tmp_path):
    found = [d for d in toolchain_digests(tmp_path) if d]
    one = found[0]
    tried = refused = 0
    for e in range(len(one)):
        for field in EntryDigest._fields:
            for bad in BAD:
                d = list(one)
                d[e] = d[e]._replace(**{field: bad})
                want = records.digests_ok_py(d)
                assert records.digests_ok(d) == want, (e, field, bad)
                tried += 1
                refused += not want
    # and a list that is not all digests, or out of order
    for d in ([*one, "x"], [one[0], tuple(one[0])], list(reversed(one)) if len(one) > 1
              else [one[0]._replace(pos=1)], [*one, *one]):
        assert records.digests_ok(d) == records.digests_ok_py(d) is False
    assert refused > tried // 2 and refused < tried  # some damage is still a good shape


def _damaged_packs(packed: bytes, n: int) -> list[bytes]:
    cols = pickle.loads(packed)
    out = [b"", packed[:len(packed) // 2], b"not a pickle", pickle.dumps(cols[:-1]),
           pickle.dumps(list(cols)), pickle.dumps(tuple(c[:-1] for c in cols))]
    for k in range(len(cols)):  # each packed column with a value of the wrong type
        out.append(pickle.dumps(tuple(c if j != k else (b"x", *c[1:])
                                      for j, c in enumerate(cols))))
    assert n > 0
    return out


def test_a_damaged_packed_digest_is_made_again_from_the_object(tmp_path, monkeypatch):
    """Two objects' records read back together: one with its packed columns damaged (each
    damage in turn), the other intact. The records' digests are unpacked together; the
    damaged one is made again from its object, the intact one is unpacked as it is."""
    objs = [asm(tmp_path, "g", far_source("bl", True)), asm(tmp_path, "l", far_source("b", False))]
    opts = options("--abi", "linux-v4.17", "--ncaps", "4")
    want = digests(objs, opts)
    cache = tmp_path / "cache"
    collect([read_elf(str(p)) for p in objs], opts, [], str(cache))
    files = {pickle.loads(p.read_bytes())[9]: p for p in cache.rglob("*")
             if p.is_file() and not p.name.startswith(".")}  # (not the trimming stamps)
    assert len(files) == 2
    path = max(files.values(), key=lambda p: p.stat().st_size)
    plain = pickle.loads(path.read_bytes())  # altlink's own record: trusted here
    made = []
    real = records.digest

    def counting(inp, profile):
        made.append(os.path.basename(inp.path))
        return real(inp, profile)

    monkeypatch.setattr(records, "digest", counting)

    def read_back():
        recs, _, _ = collect([read_elf(str(p)) for p in objs], opts, [], str(cache))
        assert all(r._packed is not None for r in recs)  # the records themselves read back
        return recs

    damaged = _damaged_packs(plain[9], len(plain[8]) // 8)
    for bad in damaged:
        path.write_bytes(pickle.dumps((*plain[:9], bad)))
        assert [r.digest for r in read_back()] == want
    assert len(made) == len(damaged) and len(set(made)) == 1
    path.write_bytes(pickle.dumps(plain))  # and the record as altlink wrote it: unpacked
    alone = []
    real_unpack = records._unpack
    monkeypatch.setattr(records, "_unpack", lambda *a: alone.append(a) or real_unpack(*a))
    assert [r.digest for r in read_back()] == want and len(made) == len(damaged)
    assert alone == []  # both unpacked together
    # each alone, as a record that is not read back with others is
    for r in read_back():
        r._packed = (*r._packed[:2], None)
        assert r.digest in want
    assert len(made) == len(damaged)


# A site whose words the linker changes (a call and an ADRP, relocated in the object).
RELOCATED_SITE = """\
	.globl f2
	.type f2, %function
f2:
s_rel:	bl func
	adrp x0, func
	ret
	.size f2, . - f2
	.pushsection .altinstr_replacement, "ax"
r_rel:	nop
	nop
	.popsection
	ent s_rel, r_rel, 1, 8, 8
"""


def test_digest_and_the_reference_agree_on_every_form(tmp_path):
    from test_checks import BAD, clean_source
    from test_checks import build as build_checked

    from altlink.linkset import Input

    objs = [build_checked(tmp_path, f"clean{p}", clean_source(p)) for p in ("v4.17", "v6.1")]
    objs.append(build_checked(tmp_path, "relocated_site", RELOCATED_SITE))
    objs += [asm(tmp_path, "g", far_source("bl", True)), asm(tmp_path, "l", far_source("b", False))]
    seen = []
    for profile_args in (("--abi", "linux-v4.17", "--ncaps", "4"), V61):
        got = digests(objs, options(*profile_args))
        seen += [d for ds in got for d in ds]
    for k, case in enumerate(BAD):
        o = build_checked(tmp_path, f"bad{k}", case.body, flags=case.flags)
        opts = options(*case.args)
        inp = Input.load(read_elf(str(o)))
        assert records.digest(inp, opts.profile) == records.digest_py(inp, opts.profile), case.id
        seen += records.digest(inp, opts.profile)
    # the runs with a relocated word, in sites and in replacements, were there to compare
    assert any(d.site_words and None in d.site_words for d in seen)
    assert any(d.alt_relocs and any(m is not None for m in d.alt_relocs) for d in seen)
    assert any(d.alt_relocs and all(m is None for m in d.alt_relocs) for d in seen)


def checked_plains(tmp_path) -> list[tuple]:
    """The plain records (``to_plain``) of objects with findings, callbacks left to others
    and definitions."""
    return [r.to_plain() for r in checked_records(tmp_path)]


def checked_records(tmp_path) -> list:
    """The records of ``checked_plains``' objects, made now."""
    from test_checks import BAD, CALLBACK, R0_8
    from test_checks import build as build_checked

    objs = [build_checked(tmp_path, "cb", "\tent site0, other_cb, 4, 4, 0\n"),
            build_checked(tmp_path, "def", CALLBACK + R0_8 + "\tent site0, r0, 1, 4, 8\n"),
            # a finding (ALT001) between two callbacks left to the link set
            build_checked(tmp_path, "mixed", R0_8 + "\tent site0, other_cb, 4, 4, 0\n"
                          "\tent site1, r0, 1, 4, 8\n\tent site2, third_cb, 4, 4, 0\n")]
    objs += [build_checked(tmp_path, f"bad{k}", c.body, flags=c.flags)
             for k, c in enumerate(BAD[:6])]
    recs, _, _ = collect([read_elf(str(p)) for p in objs],
                         options("--abi", "linux-v4.17", "--ncaps", "4"), [], None)
    return recs


def test_findings_and_definitions_read_back_are_the_records_own(tmp_path):
    """A record as plain data and back: its findings in their order among the callbacks it
    leaves to the link set (a finding first, last, between two callbacks, alone), its table's
    findings and its definitions are the record's own."""
    from altlink.findings import Deferred, Finding

    recs = checked_records(tmp_path)
    kinds = [[type(f) for f in r.findings] for r in recs]
    assert [Deferred, Finding, Deferred] in kinds  # a finding between two callbacks
    assert any(k[:1] == [Finding] for k in kinds) and any(r.defines for r in recs)
    for r in recs:
        back = records.ObjectRecord.from_plain(r.path, r.to_plain())
        assert back.findings == r.findings and back.table_findings == r.table_findings
        assert [type(f) for f in back.findings] == [type(f) for f in r.findings]
        assert back.defines == r.defines and list(back.defines) == list(r.defines)
        assert (back.is_module, back.flags, back.summary()) == \
            (r.is_module, r.flags, r.summary())


BAD_VALUES = [None, True, 0, "x", b"x", (), (1,), [1], ("x", 1)]


def test_records_read_back_together_are_refused_as_each_alone(tmp_path):
    """``valid_plains`` (the records one ``records_of`` reads back, checked a field at a time
    over them all) against ``valid_plains_py`` (each on its own, ``valid_plain``): the same
    verdict for every record, when one of several is damaged in any field, at any depth."""
    from altlink.findings import Deferred

    plains = checked_plains(tmp_path)
    assert records.valid_plains(plains) == records.valid_plains_py(plains) == [True] * len(plains)
    assert any(t[4] for t in plains) and any(t[7][0] for t in plains)  # findings, definitions
    assert any(t[6][0] for t in plains)  # callbacks left to the link set
    damaged: list = []
    for k, t in enumerate(plains):
        fmt, is_module, flags, fs, es, at, deferred, defines, summary, packed = t
        for field in range(10):  # each field replaced
            for bad in [*BAD_VALUES, [], {}, 1.0]:
                damaged.append((k, (*t[:field], bad, *t[field + 1:])))
        damaged += [(k, t[:9]), (k, (*t, 1)), (k, list(t)), (k, (4, *t[1:]))]
        for bad in [-1, True, 1.0, "x", None]:
            damaged.append((k, (fmt, is_module, (*flags, bad), *t[3:])))
        # the summary: rows of 8 bytes
        for bad in [summary[:-1], summary + b"\0", summary[1:], bytearray(summary),
                    list(summary), tuple(summary), summary.decode("latin-1"),
                    records._summary_columns(summary), summary + bytes(8)]:
            damaged.append((k, (*t[:8], bad, packed)))
        for bad in [*BAD_VALUES, Deferred(1, "x"), ("f", 1)]:
            damaged.append((k, (*t[:3], [*fs, bad], *t[4:])))
            damaged.append((k, (*t[:4], [*es, bad], (*at, len(es) + len(deferred[0])),
                                *t[6:])))
        # the findings' positions among the callbacks
        n = len(es) + len(deferred[0])
        for bad_at in [(*at, n), (*at, -1), at[:-1], (*at[:-1], n), (*at[:-1], True),
                       (*at[:-1], "0"), (*at[:-1], None), tuple(reversed(at)) + at[:1],
                       list(at), (n,) * len(at), (-1,) * len(at)]:
            damaged.append((k, (*t[:5], bad_at, *t[6:])))
        # the callbacks: entry indexes, symbols
        index, symbol = deferred
        for bad_cols in [(index,), (index, symbol, ()), (index + (1,), symbol),
                         (index, symbol + ("x",)), (index + (True,), symbol + ("x",)),
                         (index + ("1",), symbol + ("x",)), (index + (1,), symbol + (b"x",)),
                         (index + (1,), symbol + (None,)), (list(index), symbol),
                         (index, list(symbol)), [index, symbol], (symbol, index)]:
            damaged.append((k, (*t[:6], bad_cols, *t[7:])))
        for j in range(len(index)):
            damaged.append((k, (*t[:6], (index[:j] + ("0",) + index[j + 1:], symbol), *t[7:])))
            damaged.append((k, (*t[:6], (index, symbol[:j] + (0,) + symbol[j + 1:]), *t[7:])))
        # the definitions: names, types, sections, executable
        names, types, sections, execs = defines
        for bad_cols in [defines[:3], (*defines, ()), list(defines), (names + ("x",), *defines[1:]),
                         (names, types + (2,), sections, execs)]:
            damaged.append((k, (*t[:7], bad_cols, *t[8:])))
        for j in range(len(names)):
            for c, bads in enumerate([(5, None, b"x"), ("2", None, True, 1.0),
                                      (b".text", 1, True), (1, None, "x")]):
                for bad in bads:
                    col = defines[c][:j] + (bad,) + defines[c][j + 1:]
                    damaged.append((k, (*t[:7], (*defines[:c], col, *defines[c + 1:]),
                                        *t[8:])))
            if j:  # a name given twice
                twice = names[:j] + (names[0],) + names[j + 1:]
                damaged.append((k, (*t[:7], (twice, *defines[1:]), *t[8:])))
    refused = 0
    for k, bad in damaged:
        ts = [*plains[:k], bad, *plains[k + 1:]]
        want = records.valid_plains_py(ts)
        assert records.valid_plains(ts) == want, (k, bad)
        assert want[:k] + want[k + 1:] == [True] * (len(ts) - 1)
        refused += not want[k]
    assert refused > len(damaged) * 9 // 10  # nearly every damage is refused


def test_the_link_sets_checks_of_records_read_back_are_the_references(tmp_path):
    """What ``altlink check`` of objects whose records are kept does its own way, against
    the references, on the records read back of link sets with callbacks defined in another
    object, twice, nowhere, in data, with findings, flags that disagree and a module:
    ``check_records`` (records whose callbacks were all found fine passed whole) against
    ``fast=False``; ``first_definitions`` against ``first_definitions_py``;
    ``consistent_fast`` against ``consistent``, and on records whose findings were lost or
    whose lengths changed."""
    from test_cache import OTHER, R0, THIS_MODULE, clean_source
    from test_checks import BAD, CALLBACK
    from test_checks import build as build_checked
    from toolchain import compile, write

    from altlink.check_linkset import check_records, first_definitions, first_definitions_py
    from altlink.values import replace

    sites = build_checked(tmp_path, "sites", clean_source("v4.17"))
    sites2 = build_checked(tmp_path, "sites2", clean_source("v4.17"))
    other = compile(write(tmp_path / "other.S", OTHER), tmp_path / "other.o")
    data_cb = build_checked(tmp_path, "datacb", "\t.data\n\t.globl cb_other\ncb_other:\t.word 0\n",
                            prelude=False)
    aw = build_checked(tmp_path, "aw", '\t.pushsection .altinstructions, "aw"\n'
                       "\t.word site0 - .\n\t.word r0 - .\n\t.hword 1\n\t.byte 4, 4\n"
                       "\t.popsection\n" + R0)
    module = build_checked(tmp_path, "mod", THIS_MODULE + CALLBACK, prelude=False)
    bad = [build_checked(tmp_path, f"bad{k}", c.body, flags=c.flags)
           for k, c in enumerate(BAD) if c.args == BAD[0].args]
    v417 = ("--abi", "linux-v4.17", "--ncaps", "4")
    sets = [([sites, other], v417), ([sites, sites2, other], v417), ([sites, sites2], v417),
            ([sites, data_cb, sites2], v417), ([sites, aw, other], v417),
            ([sites, other, sites2], (*v417, "--module")), ([sites, module], v417),
            (bad + [sites, other], v417), (bad, v417)]
    cache = str(tmp_path / "cache")
    seen = {"skipped": 0, "resolved": 0, "bad": 0}
    for paths, args in sets:
        opts = options(*args)

        collect([read_elf(str(p)) for p in paths], opts, [], cache)  # the records kept
        recs, resolved = _read_back(paths, opts, cache)
        fast = check_records(recs, resolved, [], [])
        seen["skipped"] += sum(r._items is not None for r in recs)
        ref_recs, _ = _read_back(paths, opts, cache)
        assert fast == check_records(ref_recs, resolved, [], [], fast=False), paths
        assert first_definitions(recs) == first_definitions_py(recs)
        for r in ref_recs:
            assert r.consistent_fast(resolved.profile) == r.consistent(resolved.profile) is True
            own = [f for f in r.findings if not isinstance(f, Deferred)]
            lost = replace(r, findings=[f for f in r.findings if isinstance(f, Deferred)])
            assert lost.consistent_fast(resolved.profile) == lost.consistent(resolved.profile)
            seen["bad"] += own != [] and not lost.consistent(resolved.profile)
            index, cap, orig, alt = r.summary()
            for k in range(len(index)):
                for new_alt in (0, orig[k], orig[k] + 4):
                    changed = replace(r, findings=list(r.findings))
                    rows = records._summary_bytes(
                        (index, cap, orig, alt[:k] + (new_alt,) + alt[k + 1:]))
                    changed._packed = (rows, records.NOT_MADE, None)
                    assert changed.consistent_fast(resolved.profile) == \
                        changed.consistent(resolved.profile), (r.path, k, new_alt)
                    seen["resolved"] += not changed.consistent(resolved.profile)
    assert seen["skipped"] > 3 and seen["bad"] > 3 and seen["resolved"] > 10, seen


def test_a_record_made_without_its_digest_makes_it_when_asked(tmp_path):
    """The module check's records (``with_digest=False``: no link takes a module) keep no
    digest; asked for, it is made from the object: the digest of a record made with it, for
    the record made now, read back from the cache, and read back together with others."""
    from test_kernel import SLICE_MODULES

    opts = options(*V61)
    elfs = [read_elf(str(p)) for p in SLICE_MODULES[:4]]
    full, _, _ = collect(elfs, opts, [], None)
    cache = str(tmp_path / "records")
    for _ in ("made", "read back"):
        recs, _, _ = collect(elfs, opts, [], cache, with_digest=False)
        for r, f in zip(recs, full):
            assert r.summary() == f.summary() and (r.entries, r.callbacks) == \
                (f.entries, f.callbacks)
            assert r._packed is not None and r._packed[1] == records.NOT_MADE
            assert r.to_plain()[9] == records.NOT_MADE
        assert [r.digest for r in recs] == [f.digest for f in full]
        assert sum(r.entries for r in full) > 10


def test_a_record_file_is_read_whole_whatever_its_size(tmp_path):
    # records._read_whole reads a chunk, and on while a read fills one.
    for size in (0, 1, 63, 64, 65, 128, 200, 1 << 17):
        p = tmp_path / f"r{size}"
        data = os.urandom(size)
        p.write_bytes(data)
        assert records._read_whole(str(p), 64) == data, size
        assert records._read_whole(str(p)) == data, size


def _read_back(paths, opts, cache: str):
    """The records of the objects, all read back from the cache (their findings not made
    yet where ``consistent_fast`` did not need them), and the options they were checked under
    (NCAPS and the module resolved)."""
    from altlink.records import records_of
    from altlink.values import replace

    recs, profile, _ = collect([read_elf(str(p)) for p in paths], opts, [], cache)
    resolved = replace(opts, profile=profile, module=opts.module or any(r.is_module for r in recs))
    recs = records_of([read_elf(str(p)) for p in paths], resolved, cache)
    assert all(r._packed is not None for r in recs)  # read back
    return recs, resolved


def test_records_are_found_consistent_together_as_each_alone():
    """``consistent_together`` (every summary row of the records read back compared at once)
    against ``consistent``, each record on its own, under both profiles and NCAPS of one byte,
    of two, none and past the cap field: records whose entries have the lengths their kinds
    ask, and records with one entry that has not, with and without the error of its own."""
    import random

    from altlink.findings import ERROR, Finding
    from altlink.table import Profile

    rnd = random.Random(13)
    profiles = [Profile("linux-v6.1", 80), Profile("linux-v4.17", 4), Profile("linux-v4.17", 0x104),
                Profile("linux-v4.17", 0), Profile("linux-v4.17", None),
                Profile("linux-v4.17", 0x10004), Profile("xen-v4.17", 4)]

    def record(profile, bad: bool, own: bool):
        n = rnd.randrange(1, 12)
        caps = [rnd.choice([4, 0x104, 0x8004, 0x8050, 0, 1, 0x0401, 80, 0xFFFF]) for _ in range(n)]
        orig = [rnd.choice([4, 8, 12]) for _ in range(n)]
        alt = [0 if profile.is_callback(c) else o for c, o in zip(caps, orig)]
        findings: list = [Deferred(k, "cb") for k in range(n) if alt[k] == 0 and rnd.random() < .5]
        if bad:  # one entry whose alt_len its kind forbids: 0 for a static one, or not 0
            k = rnd.randrange(n)
            alt[k] = orig[k] if alt[k] == 0 else rnd.choice([0, alt[k] + 4])
            if own:
                findings.append(Finding("ALT001", ERROR, "m", "p", "", None, k))
        rows = records._summary_bytes((tuple(range(n)), tuple(caps), tuple(orig), tuple(alt)))
        return records.ObjectRecord("p", False, (), [], findings, {}, None,
                                    _packed=(rows, records.NOT_MADE, None))

    seen = set()
    for profile in profiles:
        for _ in range(300):
            bad = rnd.randrange(-4, 8)  # the record with a forbidden length, if any
            recs = [record(profile, k == bad, rnd.random() < .3) for k in range(8)]
            got = records.consistent_together(recs, profile)  # (rows as read back: bytes)
            assert all(r._summary_rows() is not None for r in recs)
            want = [r.consistent(profile) for r in recs]
            assert got == want, profile
            seen.add(all(want))
    assert seen == {True, False}
    # one entry alone whose cap field is like a callback's in one byte, or in its bit 15 only
    for profile, cap, alt in [(profiles[1], 0x104, 0), (profiles[1], 0x8004, 0),
                              (profiles[2], 4, 0), (profiles[2], 0x204, 0), (profiles[2], 0x105, 0),
                              (profiles[0], 0x8004, 4), (profiles[0], 0x0004, 0),
                              (profiles[0], 0x8050, 8), (profiles[3], 0x100, 0)]:
        fine = [records.ObjectRecord("p", False, (), [], [], {}, None, _packed=(
            records._summary_bytes(((0, 1), (1, 2), (4, 8), (4, 8))), records.NOT_MADE, None))
            for _ in range(4)]
        odd = records.ObjectRecord("p", False, (), [], [], {}, None, _packed=(
            records._summary_bytes(((0, 1), (1, cap), (4, 4), (4, alt))), records.NOT_MADE, None))
        got = records.consistent_together([*fine, odd], profile)
        assert got == [r.consistent(profile) for r in [*fine, odd]] == [True] * 4 + [False], \
            (profile, cap, alt)
