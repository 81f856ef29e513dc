"""``_postlink.entry_texts`` reading the sites' file and raw binary offsets from arrays
(``manifest._Records._places_np(..., arrays=True)``: no list of 40,000 ints made for each),
held to the lists the Python reads.

- Random columns (``test_postlink``'s), the offsets given as 64-bit unsigned arrays: the
  texts made from the lists, entry by entry and joined, over a range too.
- Arrays of another length or item size refused.
- ``_places_np`` with ``arrays``: the lists' values where a place is read from its section.
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


def _args(case, s_bin, s_file) -> list:
    heads, cbs, codes, simple, columns, s_code, a_code = case
    (cb, cap_raws, index, a_addr, s_addr, _, _, orig_lens, src, names) = columns
    return [heads, cbs, codes, simple, {}, _site_text, _repl_text, cb, cap_raws, index, a_addr,
            a_code, [0] * len(cb), s_addr, s_code, s_bin, s_file, orig_lens, src, names]


@built
def test_offsets_from_arrays():
    import numpy as np

    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(91)
    for _ in range(150):
        n = rng.randrange(0, 50)
        case = _random_columns(rng, n, rng.random() < 0.3)
        # (the lists' ints that the C writes: signed 64-bit ones)
        files = [rng.choice([0, 1, rng.getrandbits(32), (1 << 63) - 1]) for _ in range(n)]
        bins = [rng.choice([0, 7, rng.getrandbits(40), (1 << 63) - 1]) for _ in range(n)]
        want = pl.entry_texts(*_args(case, bins, files))
        arrays = (np.array(bins, dtype=np.uint64), np.array(files, dtype=np.uint64))
        for s_bin, s_file in ((arrays[0], files), (bins, arrays[1]), arrays,
                              (["null"] * n, arrays[1])):
            args = _args(case, s_bin, s_file)
            got = pl.entry_texts(*args)
            if type(s_bin) is list and s_bin[:1] == ["null"]:
                want_here = pl.entry_texts(*_args(case, s_bin, files))
            else:
                want_here = want
            assert got == want_here
            lo = rng.randrange(n + 1)
            pieces, holes = pl.entry_texts(*args, True, lo, n)
            assert holes == [k for k in range(lo, n) if want_here[k] is None]
            assert b",\n  ".join(p for p in pieces if p is not None) == ",\n  ".join(
                t for t in want_here[lo:] if t is not None).encode()
    case = _random_columns(rng, 3, False)
    top = np.array([(1 << 64) - 1] * 3, dtype=np.uint64)  # (as the f-string writes it)
    got = pl.entry_texts(*_args(case, top, top))
    assert all(f'"bin_offset": {(1 << 64) - 1}, ' in t and
               f'"file_offset": {(1 << 64) - 1}, ' in t for t in got)
    for bad in (np.zeros(2, dtype=np.uint64), np.zeros(3, dtype=np.uint32),
                np.zeros(6, dtype=np.uint32), b"\0" * 24, np.zeros((3, 2), np.uint64)[:, 0]):
        with pytest.raises((ValueError, BufferError), match="s_file|contiguous"):
            pl.entry_texts(*_args(case, [0] * 3, bad))


@built
@gnu
def test_places_as_arrays(tmp_path):
    """``_places_np(..., arrays=True)``: the offsets' lists' values, where each place is read
    from its section; with and without a raw binary."""
    from test_branches import synthetic_firmware
    from test_image_fast import table_columns

    from altlink import rawbin

    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    if inp.table.columns is None:
        inp = table_columns(inp)
    c = inp.table.columns
    profile = Profile("linux-v4.17", 85)
    for binary in (None, manifestmod.BinInfo("fw.bin", "ab" * 32, rawbin.layout(inp.elf))):
        records = manifestmod._Records(inp, profile, None, binary, None)
        cols = (c["site_sec"], c["site_off"], c["site_addr"], c["orig_len"])
        codes, files, bins, bad = records._places_np(*cols)
        a_codes, a_files, a_bins, a_bad = records._places_np(*cols, arrays=True)
        assert a_codes == codes and a_bad == bad and not bad
        assert a_files.tolist() == files
        assert (a_bins if binary is None else a_bins.tolist()) == bins
        assert (binary is None) == (bins[0] == "null")
