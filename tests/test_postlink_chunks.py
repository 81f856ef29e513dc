"""The link's manifest writer making its entries a few hundred at a time
(``manifest.EncodedLater``, ``manifest._runs``: ``_postlink.entry_texts`` over a range of the
entries, each run written before the next is made), held to the Python it stands for.

- ``_runs`` over random columns (with entries the C leaves to the Python, at a run's start,
  end and inside): for every number of entries a run (1, 2, a few, one less than all, all,
  more than all), the reference's entries joined; the positions of the entries left to the
  Python are theirs in the whole table.
- ``entry_texts``' range: the whole's texts of those entries; a range that is not one of
  the entries refused.
- A manifest made so (zero entries, one, a run exactly, one more than a run, the synthetic
  firmware's thousands): ``dump`` and ``dumps`` write the bytes the pure Python writes.
"""
from __future__ import annotations

import io
import random

import pytest
from test_postlink import _random_columns, _repl_text, _site_text, built, gnu
from test_postlink_runs import _reference

from altlink import manifest as manifestmod
from altlink import speedups
from altlink.elf import read_elf
from altlink.linkset import Input
from altlink.table import Profile


@pytest.fixture(autouse=True)
def _as_the_environment_says():
    yield
    speedups.use(None)


def _args(case, callback=None) -> tuple:
    heads, cbs, codes, simple, columns, s_code, a_code = case
    (cb, cap_raws, index, a_addr, s_addr, s_bin, s_file, orig_lens, src, names) = columns
    return (heads, cbs, codes, simple, {}, _site_text, _repl_text,
            cb if callback is None else callback, cap_raws, index, a_addr, a_code,
            [0] * len(cb), s_addr, s_code, s_bin, s_file, orig_lens, src, names)


@built
@pytest.mark.parametrize("odd", [False, True])
def test_runs_of_a_few_entries_against_the_reference(odd):
    """``_runs``, a run of ``step`` entries at a time, each entry left to the Python filled
    by ``filled`` (given the positions in the whole table): the reference's entries
    joined, whatever the step."""
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(61 + odd)
    asked_total = 0
    for _ in range(120):
        n = rng.randrange(0, 40)
        case = _random_columns(rng, n, False)
        want = _reference(case)
        callback = list(case[4][0])
        if odd and n:  # entries the Python writes: at either end and inside
            for k in {0, n - 1, rng.randrange(n), rng.randrange(n)}:
                callback[k] = None
        args = _args(case, callback)
        for step in sorted({1, 2, 3, max(n - 1, 1), max(n, 1), n + 1, 256}):
            asked = []

            def filled(holes, asked=asked, want=want):
                asked.extend(holes)
                return [want[k] for k in holes]

            pieces = list(manifestmod._runs(pl, args, n, filled, step))
            assert all(type(p) is bytes and p or type(p) is str for p in pieces)
            assert ",\n  ".join(manifestmod._text(p) for p in pieces) == ",\n  ".join(want)
            assert asked == [k for k in range(n) if callback[k] is None]
            # (a run's pieces: bytes runs, never more than the step's entries)
            assert sum(type(p) is bytes for p in pieces) <= n
            asked_total += len(asked)
    assert (asked_total > 0) is odd


@built
def test_entry_texts_over_a_range():
    """``entry_texts(..., start, stop)``: the texts of those entries alone, as the whole
    table's, entry by entry and joined (a hole's position in the whole table); a range that
    is not the entries' refused."""
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(71)
    for _ in range(60):
        n = rng.randrange(1, 40)
        case = _random_columns(rng, n, True)
        args = _args(case)
        whole = pl.entry_texts(*args)
        lo = rng.randrange(n + 1)
        hi = rng.randrange(lo, n + 1)
        assert pl.entry_texts(*args, False, lo, hi) == whole[lo:hi]
        assert pl.entry_texts(*args, False, lo) == whole[lo:]
        pieces, holes = pl.entry_texts(*args, True, lo, hi)
        assert holes == [k for k in range(lo, hi) if whole[k] is None]
        assert pieces.count(None) == len(holes)
        at = iter(holes)
        want = [whole[k] if whole[k] is not None else f"<{k}>" for k in range(lo, hi)]
        assert ",\n  ".join(f"<{next(at)}>" if p is None else p.decode("ascii")
                            for p in pieces) == ",\n  ".join(want)
        for lo, hi in ((-1, n), (0, n + 1), (2, 1), (n + 1, n + 1)):
            with pytest.raises(ValueError, match="start and stop"):
                pl.entry_texts(*args, True, lo, hi)


@built
def test_entry_texts_numbers_the_entries_without_an_index():
    """``index`` None: each entry's index is its position ``k``."""
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(81)
    case = _random_columns(rng, 30, False)
    columns = list(case[4])
    columns[2] = list(range(30))
    case = (*case[:4], tuple(columns), *case[5:])
    args = list(_args(case))
    want = pl.entry_texts(*args)
    assert want == _reference(case)
    args[9] = None
    assert pl.entry_texts(*args) == want
    assert pl.entry_texts(*args, False, 5, 9) == want[5:9]


def _written(m: dict) -> tuple[str, str, str]:
    """``dumps``' text, ``dump``'s to a file, ``dump``'s to a text stream."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp()
    os.close(fd)
    try:
        with open(path, "w", encoding="utf-8") as f:
            manifestmod.dump(m, f)
        with open(path, encoding="utf-8") as f:
            to_file = f.read()
    finally:
        os.unlink(path)
    stream = io.StringIO()
    manifestmod.dump(m, stream)
    return manifestmod.dumps(m), to_file, stream.getvalue()


def test_dump_of_entries_made_later():
    """``EncodedLater``: zero entries written as ``[]``, pieces as ``Encoded``'s (bytes
    and str), made again each time it is read."""
    made = []

    def pieces():
        made.append(1)
        return iter([b'{"a": 1}', '{"b": "\u00e9"}', b'{"c": 3},\n  {"d": 4}'])

    for entries, count in ((manifestmod.EncodedLater(lambda: iter(()), 0), 0),
                           (manifestmod.EncodedLater(pieces, 4), 4)):
        later = {"entries": entries, "schema": "x"}
        listed = {"entries": manifestmod.Encoded(entries), "schema": "x"}
        assert len(entries) == count
        want = manifestmod.dumps(listed)
        assert _written(later) == (want, want, want)
    assert len(made) == 4


@built
@gnu
@pytest.mark.parametrize("run", [1, 2, 255, 256, 4096])
def test_manifests_a_run_at_a_time(tmp_path, monkeypatch, run):
    """The synthetic firmware's manifest (its hundreds of entries), its first entries
    alone (zero, one, a run exactly, a run and one) and the entries of one of its sections
    read at a time: the text the pure Python writes, whatever the run."""
    from test_branches import synthetic_firmware
    from test_image_fast import table_columns

    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    if inp.table.columns is None:
        inp = table_columns(inp)
    profile = Profile("linux-v4.17", 85)
    table = inp.table
    monkeypatch.setattr(manifestmod, "COLUMNS_FROM_ENTRIES", 0)
    monkeypatch.setattr(manifestmod, "RUN_ENTRIES", run)
    assert table.size > 256
    for size in sorted({min(x, table.size) for x in (0, 1, run, run + 1, table.size)}):
        cut = _first(inp, size)
        speedups.use(False)
        want = manifestmod.dumps(manifestmod.build(cut, profile, None, inp.path, "", None,
                                                   encoded=True))
        speedups.use(None)
        m = manifestmod.build(cut, profile, None, inp.path, "", None, encoded=True)
        assert isinstance(m["entries"], manifestmod.EncodedLater)
        assert len(m["entries"]) == size
        assert _written(m) == (want, want, want)


def _first(inp: Input, size: int) -> Input:
    """``inp`` with its table's first ``size`` entries alone (its columns cut)."""
    from altlink.table import Table

    t = inp.table
    table = Table(t.path, t.entries[:size], t.findings, t.sections,
                  {k: v[:size] for k, v in t.columns.items()})
    return Input(inp.elf, table, inp.names)
