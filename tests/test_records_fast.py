"""Reading a record back (``altlink/records.py``): ``digests_ok`` checks an object's entry
digests a field at a time over the whole list; ``digests_ok_py``, entry by entry, is the
reference. Both must accept every record altlink makes and refuse the same damaged ones.

What is checked:
- the records of toolchain-built objects (a replacement branching to a global and to a local
  symbol: ``Target`` with and without a global name) and, when the tests' kernel build is there,
  of its objects: both accept them;
- every field of such a digest replaced by values of the wrong type or shape, one at a time:
  both refuse it, or both accept it.
"""
from __future__ import annotations

import shutil

import kbuild
import pytest
from test_cache import options
from test_link import asm, far_source
from toolchain import GNU_LD

from altlink import records
from altlink.check_linkset import collect
from altlink.elf import read_elf
from altlink.records import Anchor, EntryDigest, Target

pytestmark = pytest.mark.skipif(not shutil.which(GNU_LD[0]), reason="no AArch64 binutils")

V61 = ("--abi", "linux-v6.1", "--ncaps", "80")


def digests(paths, opts) -> list[list[EntryDigest]]:
    recs, _, _ = collect([read_elf(str(p)) for p in paths], opts, [], None)
    return [r.digest for r in recs]


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
    for d in digests(objs, options(*V61, "--cap-table", out / kbuild.CAP_HEADER)):
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
