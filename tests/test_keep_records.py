"""A first link's records kept in the cache: the records the extension makes whole before any
fork are many files to create (about 0.3 ms of the kernel's time each on this machine's ext4,
against some 15 µs to make the record), so where they are many they are written by this
process and forked copies beside it (``records._keep_all``). Every one is kept, each file as
a record kept alone writes it, and the next link reads them all back."""
from __future__ import annotations

import pytest
from test_cache import options, record_files, record_findings
from test_checks import R0, build

from altlink import forkmap, records, speedups


def _objects(tmp_path, n: int):
    # (no two alike: one record file each)
    return [build(tmp_path, f"o{k}", R0 + f"\tent site{k % 3}, r0, {k % 4}, 4, 4\n"
                  + "\tnop\n" * k) for k in range(n)]


def _file_bytes(cache) -> dict:
    return {p.relative_to(cache): p.read_bytes() for p in record_files(cache)}


@pytest.mark.parametrize("many", [False, True])
def test_a_first_links_records_are_all_kept_as_one_process_keeps_them(tmp_path, monkeypatch,
                                                                       many, forks):
    if speedups.get() is None:
        pytest.skip("the compiled extension is not built here")
    v417 = options("--abi", "linux-v4.17", "--ncaps", "4")
    n = records.PARALLEL_MIN + 6 if many else records.PARALLEL_MIN - 1
    objs = _objects(tmp_path, n)
    monkeypatch.setattr(forkmap, "cpus", lambda: 2)
    shared = tmp_path / "shared"
    want = record_findings(objs, v417, None)
    assert record_findings(objs, v417, shared) == want
    # one forked copy beside this process where they are many (two CPUs), none where few
    assert len(forks) == (1 if many else 0)
    # the same files, byte for byte, as this process alone writes them
    monkeypatch.setattr(forkmap, "cpus", lambda: 1)
    alone = tmp_path / "alone"
    assert record_findings(objs, v417, alone) == want
    got = _file_bytes(shared)
    assert len(got) == n and got == _file_bytes(alone)
    # and read back by the next link, none made again
    made: list[int] = []
    plain = records.make_plain
    monkeypatch.setattr(records, "make_plain", lambda *a: (made.append(1), plain(*a))[1])
    assert record_findings(objs, v417, shared) == want
    assert made == []
