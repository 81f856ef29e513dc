"""A link's record made whole by the extension with its digest (``records.make_plain`` with
``with_digest``, ``_speedups.object_plain``): its last field the digest's packed columns,
against the reference, ``_pack_columns(digest_py(Input.load(elf), profile))``: the same
columns, pickled to the same bytes (the record cache keeps them pickled, and a pickle writes a
string or a bytes object it meets twice once: the C makes the same objects the Python shares);
the rest of the record as without the digest. Where the C leaves the digest to the Python
(``NOT_MADE``), the record is the same as ``make_whole`` makes it with the Python's digest.

On the benchmark's synthetic objects (each made whole so, under linux-v4.17), the objects of
every form of entry, damaged copies, and Debian's 992 modules where they are fetched; the
records of a whole link set through ``records_of``, with and without a cache, the same as
without the extension (tests/test_speedups.py compares ``collect``'s records the same way, an
object at a time).
"""
from __future__ import annotations

import pickle
import random

import pytest
from test_checks import build, repl
from test_make_fast import V61, checked_objects, debians_modules, synthetic_objects
from test_plain_record import resolved
from test_speedups import KERNEL_510, KERNEL_OBJECTS, binutils, built, mutations

from altlink import records, speedups
from altlink.elf import from_bytes
from altlink.errors import AltlinkError
from altlink.linkset import Input


@pytest.fixture(autouse=True)
def _as_the_environment_says():
    yield
    speedups.use(None)


def reference(name: str, data: bytes, opts) -> tuple:
    """The packed columns the Python makes of the object's digest."""
    inp = Input.load(from_bytes(name, data))
    return records._pack_columns(records.digest_py(inp, opts.profile))


def compare(items, counts: dict | None = None) -> dict:
    """Each (name, bytes, options): where the extension makes the digest's columns, the same
    as the reference's, and the rest of the plain data as without the digest. Counts what it
    made: objects, with a relocated site word, with a replacement's branch target."""
    speedups.use(True)
    counts = {} if counts is None else counts
    for name, data, opts in items:
        try:
            t = records.make_plain(from_bytes(name, data), opts, True)
        except AltlinkError:
            continue
        if t is None:
            counts["left"] = counts.get("left", 0) + 1
            continue
        assert t[:-1] == records.make_plain(from_bytes(name, data), opts)[:-1], name
        if type(t[-1]) is not tuple:
            assert t[-1] == records.NOT_MADE, name
            counts["not made"] = counts.get("not made", 0) + 1
            continue
        want = reference(name, data, opts)
        assert t[-1] == want, name
        assert pickle.dumps(t[-1], protocol=-1) == pickle.dumps(want, protocol=-1), name
        counts["made"] = counts.get("made", 0) + 1
        if t[-1][5]:
            counts["unknown site word"] = counts.get("unknown site word", 0) + 1
        if t[-1][14]:
            counts["target"] = counts.get("target", 0) + 1
    return counts


def _of(paths, args) -> list:
    opts = resolved(*args)
    return [(str(p), p.read_bytes(), opts) for p in paths]


@built
@binutils
def test_the_synthetic_objects():
    objs, args = synthetic_objects()
    counts = compare(_of(objs, args))
    assert counts.get("made") == len(objs), counts  # none left to the Python
    v61 = tuple("linux-v6.1" if a == "linux-v4.17" else a for a in args)
    compare(_of(objs, v61))


@built
@binutils
def test_the_checks_objects(tmp_path):
    items = []
    for p, args in checked_objects(tmp_path):
        items += _of([p], args)
    assert compare(items).get("made", 0) >= 2


# Sites whose words a relocation changes (masked), replacements whose branches are relocated
# against global symbols, defined here (anchored) or not; and one against a local symbol, which
# the assembler relocates against its section's symbol (named by the Python: not made here).
BRANCHES = """\
	.globl ext_target
	.text
	.globl gfunc
	.type gfunc, %function
gfunc:	bl ext_site
	nop
	ret
	.size gfunc, . - gfunc
lfunc:	ret
"""


@built
@binutils
def test_relocated_words_and_branch_targets(tmp_path):
    args = ("--abi", "linux-v4.17", "--ncaps", "80")
    made = build(tmp_path, "targets", BRANCHES + repl("r0", "bl ext_target", "b gfunc")
                 + repl("r1", "bl ext_site", "nop")
                 + "\tent gfunc, r0, 1, 8, 8\n\tent site1, r1, 2, 8, 8\n")
    assert compare(_of([made], args)) == {"made": 1, "unknown site word": 1, "target": 1}
    local = build(tmp_path, "local", BRANCHES + repl("r0", "bl lfunc", "nop")
                  + "\tent gfunc, r0, 1, 8, 8\n")
    assert compare(_of([local], args)) == {"not made": 1}


@built
def test_the_committed_kernel_objects():
    counts = compare(_of(KERNEL_OBJECTS, V61) + _of(KERNEL_510, ("--abi", "linux-v4.17")))
    assert counts.get("made", 0) >= 5, counts


@built
def test_damaged_copies():
    """Copies with bytes changed where the extension reads (tests/test_speedups.py's): the
    same columns where it makes them, and never a crash."""
    rng = random.Random(17)
    samples = _of(KERNEL_OBJECTS[:4], V61) + _of(KERNEL_510[:3], ("--abi", "linux-v4.17"))
    items = []
    for name, data, opts in samples:
        items += [(name, d, opts) for d in mutations(data, rng, 40)]
    assert compare(items).get("made", 0) > 20


@built
def test_debians_modules():
    mods = debians_modules()
    counts = compare(_of(mods, V61))
    assert counts.get("made", 0) > len(mods) // 2, counts


@built
@binutils
@pytest.mark.parametrize("cached", [False, True])
def test_records_of_a_link_set(tmp_path, cached):
    """``records_of`` of the synthetic objects with the digest (a link's), with the extension
    and without: each record pickles to the same bytes, its digest is the same, and so are the
    packed columns the cross-check reads (``packed_columns_of``); with a cache, a second
    ``records_of`` reads back the same records."""
    objs, args = synthetic_objects()
    opts = resolved(*args)
    got = {}
    for on in (True, False):
        speedups.use(on)
        cache = str(tmp_path / f"cache-{on}") if cached else None
        for _ in range(2 if cached else 1):
            recs = records.records_of([from_bytes(str(p), p.read_bytes()) for p in objs], opts,
                                      cache)
            cols = records.packed_columns_of(recs)
            # (each record pickled alone, as the cache keeps it)
            got.setdefault(on, []).append(
                ([pickle.dumps(r.to_plain(), protocol=-1) for r in recs], cols,
                 [r.digest for r in recs]))
    assert got[True] == got[False]
    assert all(g[0] == got[True][0][0] for g in got[True])


@built
def test_summary_columns_against_their_reference():
    """A record's summary rows as columns (``_summary_columns``, which a cached link asks of
    every record), by the extension and by ``_summary_columns_py``: the same for rows of every
    width's extremes; bytes that are not whole rows left to the Python."""
    import struct

    sp = speedups.get()
    rng = random.Random(5)
    row = struct.Struct("<IHBB")
    for n in (0, 1, 2, 17, 300):
        rows = b"".join(row.pack(rng.choice((0, 1, 0xFFFFFFFF, rng.getrandbits(32))),
                                 rng.choice((0, 0x8000, 0xFFFF, rng.getrandbits(16))),
                                 rng.getrandbits(8), rng.choice((0, 255)))
                        for _ in range(n))
        assert sp.summary_columns(rows) == records._summary_columns_py(rows)
        speedups.use(True)
        assert records._summary_columns(rows) == records._summary_columns_py(rows)
    assert sp.summary_columns(b"\0" * 7) is None and sp.summary_columns(b"\0" * 9) is None
