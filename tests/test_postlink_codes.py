"""``_postlink.place_codes`` giving equal codes as one object (the link's manifest writer:
about 20,000 codes at 80,000 places), held to the slices the Python takes.

- Random places, many of them equal codes, with and without ``known`` (a dict, as the texts'
  ``code_json``; keys of other types among its keys): the slices, each one equal code one
  object, that of ``known``'s key where it has the bytes; past a thousand distinct codes
  (the set grown while it is filled).
- A ``known`` that is not a dict refused.
- The manifest's places read so: each code of the synthetic firmware's table one object,
  and a key of the texts' where they know it.
"""
from __future__ import annotations

import random

import pytest
from test_postlink import built, gnu

from altlink import manifest as manifestmod
from altlink import speedups
from altlink.elf import read_elf
from altlink.linkset import Input
from altlink.table import Profile


@pytest.fixture(autouse=True)
def _as_the_environment_says():
    yield
    speedups.use(None)


@built
@pytest.mark.parametrize("many", [False, True])
def test_equal_codes_are_one_object(many):
    import numpy as np

    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(5 + many)
    for _ in range(40 if not many else 4):
        # (bytes of few values: many equal codes; with ``many``, thousands of others too)
        datas = {i: bytes(rng.getrandbits(8 if many else 2)
                          for _ in range(rng.randrange(2000, 3000) if many else
                                         rng.randrange(0, 40)))
                 for i in rng.sample(range(1, 9), rng.randrange(1, 5))}
        n = 6000 if many else rng.randrange(0, 300)
        idx = [rng.choice(list(datas)) for _ in range(n)]
        off = [rng.choice([0, 1, 4, 1 << 40, *[rng.randrange(0, 3000)] * (6 if many else 1)])
               for _ in range(n)]
        length = [rng.choice([0, 1, 4, 8, (1 << 64) - 1, rng.randrange(0, 12)])
                  for _ in range(n)]
        want = [datas[i][o:o + k] for i, o, k in zip(idx, off, length)]
        cols = (np.array(idx, dtype=np.int64), np.array(off, dtype=np.uint64),
                np.array(length, dtype=np.uint64))
        # (known: copies of some of the codes, and keys that are not bytes)
        known = {bytes(bytearray(c)): None for c in rng.sample(want, len(want) // 3)}
        known.update({1: 2, "ab": 3, bytearray(b"x").decode(): 4})
        for given in (None, known):
            got = pl.place_codes(datas, *cols, given) if given is not None else \
                pl.place_codes(datas, *cols)
            assert got == want
            one = {}
            for c in got:
                assert one.setdefault(c, c) is c  # (equal: the same object)
            if given is not None:
                keys = {k: k for k in given if type(k) is bytes}
                assert all(keys[c] is c for c in got if c in keys)
        if many:
            assert len(set(want)) > 1000
    one = np.zeros(1, dtype=np.uint64)
    with pytest.raises(TypeError, match="known"):
        pl.place_codes({0: b"ab"}, np.zeros(1, dtype=np.int64), one, one, [b"a"])


@built
@gnu
def test_the_manifests_codes_are_the_texts_keys(tmp_path):
    """The places of the synthetic firmware's table as the manifest reads them: a code one
    object wherever it lies, the texts' own key where they know it (made by an earlier
    manifest)."""
    from test_branches import synthetic_firmware
    from test_image_fast import table_columns

    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    if inp.table.columns is None:
        inp = table_columns(inp)
    profile = Profile("linux-v4.17", 85)
    texts = manifestmod.CodeTexts()
    manifestmod.dumps(manifestmod.build(inp, profile, None, inp.path, "", None,
                                        encoded=True, texts=texts))
    records = manifestmod._Records(inp, profile, None, None, None, texts)
    c = inp.table.columns
    codes, files, bins, bad = records._places_np(c["site_sec"], c["site_off"], c["site_addr"],
                                                 c["orig_len"])
    alt, none, none_too, _ = records._places_np(c["alt_sec"], c["alt_off"], c["alt_addr"],
                                                c["alt_len"], False)
    assert none is None and none_too is None and len(files) == len(codes)
    keys = {k: k for k in texts.code_json}
    assert len(codes) > 256 and not bad
    assert all(keys[x] is x for x in codes)
    assert sum(x in keys for x in alt) > len(alt) // 2
    assert all(keys[x] is x for x in alt if x in keys)
