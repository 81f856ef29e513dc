"""``_postlink.places_codes``: the codes of a table's sites and replacements read in one pass
(the link's manifest writer: ``_Records._codes_np``), held to the slices the Python takes.

- Random columns, several triples at once, with and without ``known`` (a dict, as the texts'
  ``code_json``; keys of other types among its keys): each list the slices of its triple;
  equal codes one object across all the lists, that of ``known``'s key where it has the
  bytes; past a thousand distinct codes (the set grown while it is filled).
- None where a section index is not in ``datas``, its bytes are not bytes, or a triple's
  columns are not of one length; a ``known`` that is not a dict, or a column that is not a
  triple, refused.
- The manifest's places read so (``_Records._codes_np``): the synthetic firmware's sites' and
  replacements' codes as ``_places_np`` reads them alone, each code one object in both,
  though the texts know none of them.
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


def _columns(rng: random.Random, datas: dict, n: int, many: bool):
    import numpy as np

    idx = [rng.choice(list(datas)) for _ in range(n)]
    off = [rng.choice([0, 1, 4, 1 << 40, *[rng.randrange(0, 3000)] * (6 if many else 1)])
           for _ in range(n)]
    length = [rng.choice([0, 1, 4, 8, 9, 16, (1 << 64) - 1, rng.randrange(0, 20)])
              for _ in range(n)]
    want = [datas[i][o:o + k] for i, o, k in zip(idx, off, length)]
    return want, (np.array(idx, dtype=np.int64), np.array(off, dtype=np.uint64),
                  np.array(length, dtype=np.uint64))


@built
@pytest.mark.parametrize("many", [False, True])
def test_the_codes_of_several_columns(many):
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(11 + many)
    for _ in range(40 if not many else 4):
        datas = {i: bytes(rng.getrandbits(8 if many else 2)
                          for _ in range(rng.randrange(2000, 3000) if many else
                                         rng.randrange(0, 40)))
                 for i in rng.sample(range(1, 9), rng.randrange(1, 5))}
        parts = [_columns(rng, datas, 6000 if many else rng.randrange(0, 300), many)
                 for _ in range(rng.randrange(1, 4))]
        wants = [w for w, _ in parts]
        every = [c for w in wants for c in w]
        known = {bytes(bytearray(c)): None for c in rng.sample(every, len(every) // 3)}
        known.update({1: 2, "ab": 3})
        for given in (None, known):
            args = (datas, [cols for _, cols in parts]) + ((given,) if given is not None else ())
            got = pl.places_codes(*args)
            assert got == wants
            one = {}
            for c in (c for g in got for c in g):
                assert one.setdefault(c, c) is c  # (equal: the same object, in every list)
            if given is not None:
                keys = {k: k for k in given if type(k) is bytes}
                assert all(keys[c] is c for g in got for c in g if c in keys)
            if len(parts) == 1:  # (place_codes: the same of one triple)
                assert pl.place_codes(datas, *parts[0][1], *args[2:]) == wants[0]
        if many:
            assert len(set(every)) > 1000


@built
def test_what_it_leaves_to_the_python_and_refuses():
    import numpy as np

    pl = speedups.get(speedups.POSTLINK)
    one = np.zeros(1, dtype=np.uint64)
    at1 = np.ones(1, dtype=np.int64)
    assert pl.places_codes({1: b"ab"}, [(at1, one, one)]) == [[b""]]
    assert pl.places_codes({0: b"ab"}, [(at1, one, one)]) is None
    assert pl.places_codes({1: bytearray(b"ab")}, [(at1, one, one)]) is None
    assert pl.places_codes({1: b"ab"}, [(at1, one, one), (np.ones(2, dtype=np.int64), one,
                                                           one)]) is None
    with pytest.raises(TypeError, match="known"):
        pl.places_codes({1: b"ab"}, [(at1, one, one)], [b"a"])
    with pytest.raises(TypeError, match="column"):
        pl.places_codes({1: b"ab"}, [(at1, one)])
    assert pl.places_codes({1: b"ab"}, []) == []


@built
@gnu
def test_the_manifests_codes_of_both_places(tmp_path):
    """The synthetic firmware's places as the manifest reads them, with texts that know none
    of its codes."""
    from test_branches import synthetic_firmware
    from test_image_fast import table_columns

    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    if inp.table.columns is None:
        inp = table_columns(inp)
    records = manifestmod._Records(inp, Profile("linux-v4.17", 85), None, None, None,
                                   manifestmod.CodeTexts())
    c = inp.table.columns
    sites, alts = records._codes_np(((c["site_sec"], c["site_off"], c["orig_len"], None),
                                     (c["alt_sec"], c["alt_off"], c["alt_len"], None)))
    assert len(sites) == len(alts) == inp.table.size > 256
    one = {}
    assert all(one.setdefault(x, x) is x for x in sites + alts)
    assert len(one) > 100
    for (sec, off, addr, n, offsets), codes in zip(
            (("site_sec", "site_off", "site_addr", "orig_len", True),
             ("alt_sec", "alt_off", "alt_addr", "alt_len", False)), (sites, alts)):
        cols = (c[sec], c[off], c[addr], c[n], offsets)
        assert records._places_np(*cols, codes=list(codes)) == records._places_np(*cols)


@built
def test_the_fresh_codes():
    """``fresh``: each code made (not a key of ``known``) appended once, the very object of
    the lists, but for a code only at places a column's ``unlisted`` marks; none where
    ``known`` has them all."""
    import numpy as np

    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(17)
    for _ in range(60):
        datas = {i: bytes(rng.getrandbits(2) for _ in range(rng.randrange(0, 40)))
                 for i in rng.sample(range(1, 9), rng.randrange(1, 5))}
        parts = [_columns(rng, datas, rng.randrange(0, 200), False)
                 for _ in range(rng.randrange(1, 3))]
        every = [c for w, _ in parts for c in w]
        known = {bytes(bytearray(c)): None for c in rng.sample(every, len(every) // 2)}
        fresh: list = []
        got = pl.places_codes(datas, [cols for _, cols in parts], known, fresh)
        assert sorted(fresh) == sorted(set(every) - set(known))
        objects = {id(c) for g in got for c in g}
        assert all(id(c) in objects for c in fresh)
        # (some places unlisted, in some columns)
        marks = [None if rng.random() < 0.3 else
                 np.array([rng.random() < 0.5 for _ in w], dtype=bool) for w, _ in parts]
        listed = {c for (w, _), m in zip(parts, marks) for k, c in enumerate(w)
                  if m is None or not m[k]}
        fresh = []
        again = pl.places_codes(datas, [(*cols, m) for (_, cols), m in zip(parts, marks)],
                                known, fresh)
        assert again == got and len(fresh) == len(set(fresh))
        assert set(fresh) == listed - set(known)
        all_known = dict.fromkeys(every)
        none: list = []
        pl.places_codes(datas, [cols for _, cols in parts], all_known, none)
        assert none == []
    with pytest.raises(TypeError, match="fresh"):
        pl.places_codes({}, [], None, ())


@built
@gnu
def test_the_codes_prepared(tmp_path, monkeypatch):
    """The synthetic firmware's manifest: with texts that know none of its codes, those its
    places read (``fresh``) prepared, in one call; with the texts of an earlier manifest,
    none; the same text as the entries written one by one either way."""
    from test_branches import synthetic_firmware
    from test_image_fast import table_columns

    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    if inp.table.columns is None:
        inp = table_columns(inp)
    profile = Profile("linux-v4.17", 85)
    speedups.use(True)
    want = manifestmod._Records(inp, profile, None, None, None).entries_json(
        inp.table.entries, columns=False)
    asked = []
    prepare = manifestmod.CodeTexts.prepare
    monkeypatch.setattr(manifestmod.CodeTexts, "prepare",
                        lambda self, codes: asked.append(list(codes)) or prepare(self, codes))
    texts = manifestmod.CodeTexts()
    assert manifestmod._Records(inp, profile, None, None, None, texts).table_json(
        inp.table) == want
    assert len(asked) == 1 and len(asked[0]) == len(set(asked[0])) > 100
    asked.clear()
    assert manifestmod._Records(inp, profile, None, None, None, texts).table_json(
        inp.table) == want
    assert asked == []
