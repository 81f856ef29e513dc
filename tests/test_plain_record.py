"""An object's whole record made by the extension (``records.make_plain``,
``_speedups.object_plain``) against its reference, ``make_record(...).to_plain()``: the same
plain data, pickled to the same bytes, wherever the extension makes it; and where it leaves
an object to the Python, the Python's. ``altlink check --no-cache`` (``records_of`` with
``with_digest=False``, no cache) takes it; a link (with the digest, ``make_whole``) takes it
with the digest made by the Python, in this process and in forked copies.

tests/test_speedups.py compares the same (its ``_record``) on every object it has, damaged
copies too; here: each of the benchmark's synthetic objects is made whole by the extension
(none left to the Python), Debian's 992 modules where they are fetched, and the findings of
a check of many objects (forked) the same with the extension and without.
"""
from __future__ import annotations

import pickle

import pytest
from test_cache import options
from test_make_fast import V61, debians_modules, synthetic_objects
from test_speedups import binutils, built

from altlink import records, speedups
from altlink.batch import check_paths
from altlink.check_core import resolve_ncaps
from altlink.elf import from_bytes
from altlink.findings import Finding
from altlink.linkset import Input
from altlink.values import astuple, replace


@pytest.fixture(autouse=True)
def _as_the_environment_says():
    yield
    speedups.use(None)


def resolved(*args):
    """The options as ``check_linkset.collect`` resolves them (NCAPS known)."""
    o = options(*args)
    return replace(o, profile=resolve_ncaps(o.profile, o.caps, [], []))


def compare(paths, opts) -> int:
    """How many of the objects the extension made whole; each the same as the reference."""
    speedups.use(True)
    whole = 0
    for p in paths:
        data = p.read_bytes()
        got = records.make_plain(from_bytes(str(p), data), opts)
        inp = Input.load(from_bytes(str(p), data))
        want = records.make_record(inp, opts, with_digest=False).to_plain()
        if got is None:
            continue
        whole += 1
        assert got == want, p
        assert pickle.dumps(got, protocol=-1) == pickle.dumps(want, protocol=-1), p
        rec = records.ObjectRecord.from_valid(str(p), got)
        assert rec.findings == records.make_record(inp, opts, with_digest=False).findings
        # with the digest, as a link makes the record (``make_whole``): sent back by a
        # forked copy (``plain_with``), or kept (``record_from``)
        ref = records.make_record(Input.load(from_bytes(str(p), data)), opts)
        parts = records.make_whole(from_bytes(str(p), data), opts)
        sent = records.plain_with(parts)
        assert sent == ref.to_plain(), p
        assert pickle.dumps(sent, protocol=-1) == pickle.dumps(ref.to_plain(), protocol=-1), p
        kept = records.record_from(from_bytes(str(p), data), parts, opts.profile)
        assert (kept.digest, kept.findings, kept.defines, kept.flags, kept.is_module) == \
            (ref.digest, ref.findings, ref.defines, ref.flags, ref.is_module), p
        assert kept.to_plain() == ref.to_plain(), p
    return whole


@built
@binutils
def test_the_synthetic_objects_whole():
    objs, args = synthetic_objects()
    assert compare(objs, resolved(*args)) == len(objs)  # none left to the Python
    v61 = tuple("linux-v6.1" if a == "linux-v4.17" else a for a in args)
    compare(objs, resolved(*v61))  # (findings: most left to the Python)


@built
def test_debians_modules_whole():
    mods = debians_modules()
    assert compare(mods, resolved(*V61)) > len(mods) // 2


def _rows(findings):
    return [astuple(f) if isinstance(f, Finding) else tuple(f) for f in findings]


@built
@binutils
@pytest.mark.parametrize("abi", ["linux-v4.17", "linux-v6.1"])
def test_a_check_of_many_objects(abi):
    """``check_paths`` of 120 objects (made in this process and, where it forks, in a forked
    copy), without a cache: the same findings, in the same order, with the extension and
    without; and without the object that defines the callbacks (``base.o``), each callback
    left undefined found where its ``Deferred`` stands."""
    objs, args = synthetic_objects()
    args = tuple(abi if a == "linux-v4.17" else a for a in args)
    for paths in ([str(p) for p in objs], [str(p) for p in objs if p.name != "base.o"]):
        paths = (paths * (120 // len(paths) + 1))[:120]
        got = {}
        for on in (True, False):
            speedups.use(on)
            stats: dict = {}
            got[on] = _rows(check_paths(paths, options(*args), [], stats=stats)), stats
        assert got[True] == got[False]
        assert got[True][1]["objects"] == 120
    assert len(got[True][0]) > 100  # (the callbacks base.o defines, undefined)
