"""The compiled writer reading a table's columns as they were read (arrays of 64-bit items), not
as lists of ints (``manifest._Records.table_json``: no list of 80,000 ints made, nor its
ints): held to the same functions given lists.

- ``entry_texts`` with the addresses (unsigned) and the capabilities and lengths (signed) as
  arrays: the same texts as with the lists, entry by entry and in runs, on random columns
  (with fields the C leaves to the Python) and with replacements' fix-ups and lines made at
  each place.
- ``places_blob`` with the addresses and lengths as arrays, unsigned or signed: the same
  bytes as with the lists; None where a value is not what ``struct.pack`` takes (below 0,
  a length over 0xffff).
- The helpers ``_distinct`` and ``_is_in`` against the Python's sets.
- A manifest of the synthetic firmware written so: the same text as its entries written one
  by one (``columns=False``).
"""
from __future__ import annotations

import random

import pytest
from test_postlink import _random_columns, _repl_text, _site_text, built, gnu

from altlink import manifest as manifestmod
from altlink import speedups
from altlink.elf import read_elf
from altlink.linkset import Input
from altlink.table import Profile


@pytest.fixture(autouse=True)
def _as_the_environment_says():
    yield
    speedups.use(None)


def _array(column: list, unsigned: bool):
    """``column`` as an array of 64-bit items, where each is an int that fits; else None."""
    import numpy as np

    lo, hi = (0, 1 << 64) if unsigned else (-(1 << 63), 1 << 63)
    if not all(type(v) is int and lo <= v < hi for v in column):
        return None
    return np.array(column, dtype=np.uint64 if unsigned else np.int64)


@built
@pytest.mark.parametrize("odd", [False, True])
def test_entry_texts_of_arrays(odd):
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(71 + odd)
    as_arrays = 0
    for _ in range(300):
        n = rng.randrange(0, 60)
        heads, cbs, codes, simple, columns, s_code, a_code = _random_columns(rng, n, odd)
        callback, cap_raws, index, a_addr, s_addr, s_bin, s_file, orig_lens, src, names = \
            columns
        alt_lens = [rng.choice([0, 4, 8, rng.getrandbits(8)]) for _ in range(n)]
        lists = [cap_raws, a_addr, alt_lens, s_addr, orig_lens]
        arrays = [_array(cap_raws, False), _array(a_addr, True), _array(alt_lens, False),
                  _array(s_addr, True), _array(orig_lens, False)]
        # (each column an array where its values fit, the others lists)
        given = [a if a is not None and rng.random() < 0.8 else c
                 for a, c in zip(arrays, lists)]
        as_arrays += sum(g is not c for g, c in zip(given, lists))

        for joined in (False, True):
            got, want = (pl.entry_texts(heads, cbs, codes, simple, {}, _site_text, _repl_text,
                                        callback, cap, index, aa, a_code, al, sa, s_code,
                                        s_bin, s_file, ol, src, names, joined)
                         for cap, aa, al, sa, ol in (given, lists))
            assert got == want
    assert as_arrays > 500


@built
def test_fixups_and_lines_at_each_place_of_arrays():
    """Replacements whose fix-ups, and sites and replacements whose lines, are made at each
    place (from the address and length read from the arrays)."""
    import numpy as np

    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(5)
    b26 = (0x14000000 | 0x10).to_bytes(4, "little")  # b .+0x40
    adrp = (0x90000000).to_bytes(4, "little")
    codes = {b26: ('"bytes": "x", "disasm": ["b"]', ((0, 0x14000010, "branch26"),)),
             adrp: (None, ((0, 0x90000000, "adrp"),))}
    plans = {adrp: [("\"adrp x0, ", 0, 0, True)]}
    simple = {b26: None, adrp: None}
    n = 200
    a_code = [rng.choice([b26, adrp]) for _ in range(n)]
    s_code = [adrp] * n
    a_addr = [rng.getrandbits(40) * 4 for _ in range(n)]
    s_addr = [rng.getrandbits(40) * 4 for _ in range(n)]
    alt_lens = [rng.choice([4, 0x40, 0x44, 0x100]) for _ in range(n)]
    args = [{7: '"cap": 7, "cap_name": null, "cap_raw": 7, '}, {}, codes, simple, plans,
            _site_text, _repl_text, [False] * n, [7] * n, None, a_addr, a_code, alt_lens,
            s_addr, s_code, [1] * n, [2] * n, [4] * n, None, [None] * n]
    want = pl.entry_texts(*args)
    assert None not in want and any('"fixups": [{' in t for t in want) and \
        any('"fixups": []' in t for t in want)
    for k, dtype in ((8, np.int64), (10, np.uint64), (12, np.int64), (13, np.uint64),
                     (17, np.int64)):
        args[k] = np.array(args[k], dtype=dtype)
    assert pl.entry_texts(*args) == want


@built
@pytest.mark.parametrize("odd", [False, True])
def test_places_blob_of_arrays(odd):
    import numpy as np

    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(43 + odd)
    nones = 0
    for _ in range(200):
        n = rng.randrange(0, 40)
        cols = [[rng.choice([0, 1, rng.getrandbits(63), (1 << 63) - 1]) for _ in range(n)],
                [rng.getrandbits(rng.choice([8, 16])) for _ in range(n)],
                [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 12)))
                 for _ in range(n)],
                [rng.getrandbits(63) for _ in range(n)],
                [rng.getrandbits(16) for _ in range(n)],
                [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 12)))
                 for _ in range(n)],
                [rng.random() < 0.3 for _ in range(n)]]
        want = pl.places_blob(*cols)
        assert want is not None
        arrays = list(cols)
        for j in (0, 1, 3, 4):
            if rng.random() < 0.7:
                arrays[j] = np.array(cols[j], dtype=rng.choice([np.int64, np.uint64]))
        bad = False
        if odd and n:
            j, k = rng.choice([0, 1, 3, 4]), rng.randrange(n)
            value = rng.choice([-1, 1 << 16] if j in (1, 4) else [-1])
            arrays[j] = np.array(cols[j], dtype=np.int64)
            arrays[j][k] = value
            # (a callback's length is not packed: not wrong there)
            bad = not (j == 4 and cols[6][k])
        got = pl.places_blob(*arrays)
        if bad:
            assert got is None
            nones += 1
        else:
            assert got == want
    assert (nones > 0) == odd
    # (an array of other items: read as a sequence, as before)
    assert pl.places_blob(np.array([1], dtype=np.uint32), [2], [b""], [3], [4], [b""]) is None


def test_distinct_and_is_in():
    import numpy as np

    rng = random.Random(3)
    for _ in range(100):
        values = [rng.choice([0, 1, 85, 1 << 16, rng.getrandbits(24), -rng.getrandbits(8)])
                  for _ in range(rng.randrange(0, 50))]
        a = np.array(values, dtype=np.int64)
        assert sorted(manifestmod._distinct(a)) == sorted(set(values))
        some = rng.sample(sorted(set(values)), min(2, len(set(values))))
        assert manifestmod._is_in(a, some).tolist() == [v in some for v in values]


@built
@gnu
def test_the_manifest_of_the_columns(tmp_path):
    """The synthetic firmware's manifest written from its table's columns (read as arrays by
    the C) and written entry by entry: the same text."""
    from test_branches import synthetic_firmware
    from test_image_fast import table_columns

    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    if inp.table.columns is None:
        inp = table_columns(inp)
    profile = Profile("linux-v4.17", 85)
    speedups.use(True)
    records = manifestmod._Records(inp, profile, None, None, None)
    got = records.table_json(inp.table)
    assert records.places is not None
    assert type(records.places[0]) is not list  # (the columns as read)
    want = manifestmod._Records(inp, profile, None, None, None).entries_json(
        inp.table.entries, columns=False)
    assert got == want
