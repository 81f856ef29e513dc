"""The codes' texts kept in a compact table (``textcache``, its FORMAT 2) and read where the
texts file lies: the compiled ``_postlink`` functions held to ``textcache``'s Python.

- ``compact_table``: the same bytes as the Python makes, of random codes (of every length up
  to 20 bytes, empty ones too, a code given twice: its first text kept), and each code's
  text read back by both (``compact_get``), none for a code not in it; ``compact_items`` the
  pairs in the order made. The codes' hash the same in both (the table keeps it).
- A buffer that is not a table (a bad magic, slots not a power of two, a size that does not
  add up) refused, as ``textcache._compact_valid`` refuses it; an item that is not (bytes,
  ASCII str) refused.
- The texts (``manifest.CodeTexts``) with a compact table: the dicts find its codes
  (``_Compacted``), a code of the dict's own first; without the compiled writer, its codes
  put in the dicts.
- The writer (``entry_texts``, ``places_codes``) reads the table: entries written from a
  table the same as from the dicts it was made of; codes a table knows are not fresh.
"""
from __future__ import annotations

import random
import struct

import pytest
from test_postlink import built

from altlink import manifest as manifestmod
from altlink import speedups, textcache


@pytest.fixture(autouse=True)
def _as_the_environment_says():
    yield
    speedups.use(None)


def _items(rng: random.Random, n: int) -> list[tuple[bytes, str]]:
    out = []
    for k in range(n):
        code = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 4, 4, 8, 12, 16,
                                                                   rng.randrange(0, 21)])))
        out.append((code, f'"bytes": "{code.hex()}", "disasm": ["x{k}"]'))
    if out:  # a code given twice: its first text kept
        out.append((out[0][0], "another"))
    return out


@built
def test_the_table_is_the_pythons():
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(5)
    for n in (0, 1, 2, 7, 100, 3000):
        items = _items(rng, n)
        table = pl.compact_table(items)
        assert table == textcache._compact_table_py(items)
        assert textcache._compact_valid(table)
        first = {}
        for code, text in items:
            first.setdefault(code, text)
        assert pl.compact_items(table) == textcache._compact_items(table) == \
            list(first.items())
        for code, text in first.items():
            assert pl.compact_get(table, code) == textcache._compact_get(table, code) == text
        for code in (b"\xff" * 21, b"zz", b"\x01\x02\x03"):
            if code not in first:
                assert pl.compact_get(table, code) is textcache._compact_get(table, code) \
                    is None


@built
def test_the_hash_is_the_same():
    """The table files each code by its hash: one made from ``_code_hash`` finds its codes in
    the compiled reader, at every length (the words and the tail)."""
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(9)
    for n in range(0, 25):
        code = bytes(rng.getrandbits(8) for _ in range(n))
        table = textcache._compact_table_py([(code, "t")])
        slots = struct.unpack_from("<I", table, 4)[0]
        h = textcache._code_hash(code)
        at = h & (slots - 1)
        assert struct.unpack_from("<II", table, 16 + 8 * at) == (h & 0xFFFFFFFF, 1)
        assert pl.compact_get(table, code) == "t"


@built
def test_what_is_not_a_table():
    pl = speedups.get(speedups.POSTLINK)
    good = pl.compact_table([(b"\x01\x02\x03\x04", "a")])
    bad = [b"", b"ALTX" + good[4:], good[:4] + struct.pack("<I", 3) + good[8:],
           good[:-1], good + b"\0"]
    for table in bad:
        assert not textcache._compact_valid(table)
        with pytest.raises(ValueError):
            pl.compact_get(table, b"\x01\x02\x03\x04")
        with pytest.raises(ValueError):
            pl.compact_items(table)
    for item in [(b"a", "\xe9"), ("a", "b"), (b"a",), (b"a", b"b")]:
        with pytest.raises(ValueError):
            pl.compact_table([item])
        with pytest.raises(ValueError):
            textcache._compact_table_py([item])


@pytest.mark.parametrize("compiled", [True, False])
def test_the_texts_find_the_tables_codes(compiled):
    if compiled and not speedups.available(speedups.POSTLINK):
        pytest.skip("altlink's C extension altlink/_postlink.c is not built")
    speedups.use(compiled)
    texts = manifestmod.CodeTexts()
    assert texts.empty()
    texts.code_json[b"\x01\x00\x00\x00"] = ("own", ())  # (the dict's: before the table's)
    texts.simple[b"\x01\x00\x00\x00"] = 'own, "fixups": []'
    texts.add_compact(textcache._compact_table_py([(b"\x01\x00\x00\x00", "table's"),
                                                   (b"\x02\x00\x00\x00", "two")]),
                      textcache._compact_items)
    texts.add_compact(textcache._compact_table_py([(b"\x03\x00\x00\x00", "three")]),
                      textcache._compact_items)
    assert not texts.empty()
    for code, text in [(b"\x01\x00\x00\x00", "own"), (b"\x02\x00\x00\x00", "two"),
                       (b"\x03\x00\x00\x00", "three")]:
        assert code in texts.code_json and code in texts.simple
        assert texts.code_json[code] == texts.code_json.get(code) == (text, ())
        assert texts.simple[code] == texts.simple.get(code) == f'{text}, "fixups": []'
    assert b"\x04\x00\x00\x00" not in texts.code_json
    assert texts.code_json.get(b"\x04\x00\x00\x00", 5) == 5
    with pytest.raises(KeyError):
        texts.simple[b"\x04\x00\x00\x00"]
    # (compiled: the dicts hold their own codes alone, the tables read in place; else every
    # code put in the dicts)
    assert len(texts.code_json) == (1 if compiled else 3)
    assert textcache.all_tables(texts)[0] == {b"\x01\x00\x00\x00": ("own", ()),
                                             b"\x02\x00\x00\x00": ("two", ()),
                                             b"\x03\x00\x00\x00": ("three", ())}


@built
def test_the_writer_reads_the_table(tmp_path):
    """The synthetic firmware's manifest written with texts whose codes that read the same
    anywhere are in a compact table, as with the dicts they were made of; and places_codes
    lists no code the table knows as fresh."""
    import numpy as np
    from test_branches import synthetic_firmware
    from test_textcache import PROFILE, text_of

    from altlink.elf import read_elf
    from altlink.linkset import Input

    inp = Input.load(read_elf(str(synthetic_firmware(tmp_path))))
    made = manifestmod.CodeTexts()
    want = text_of(inp, made)
    tables = [dict(getattr(made, f)) for f in textcache.FIELDS]
    data = textcache._contents(tables)  # (the codes that read the same anywhere: a table)
    n = textcache._HEAD.unpack_from(data)[1]
    table = data[textcache._HEAD.size:textcache._HEAD.size + n]
    assert len(tables[0]) < len(made.code_json) / 2
    texts = manifestmod.CodeTexts()
    for f, t in zip(textcache.FIELDS, tables):
        getattr(texts, f).update(t)
    texts.add_compact(table, textcache._compact_items)
    assert text_of(inp, texts) == want
    assert len(texts.code_json) == len(tables[0])  # (nothing made again)
    pl = speedups.get(speedups.POSTLINK)
    codes = list(textcache._compact_items(table))[:50]
    data = b"".join(c for c, _ in codes) + b"\x7f\x7f\x7f\x7f"
    offs = np.cumsum([0] + [len(c) for c, _ in codes]).astype(np.uint64)
    lens = np.array([len(c) for c, _ in codes] + [4], dtype=np.uint64)
    fresh: list = []
    got = pl.places_codes({1: data}, [(np.ones(len(lens), dtype=np.int64), offs, lens)],
                          texts.code_json, fresh)
    assert got[0] == [c for c, _ in codes] + [b"\x7f\x7f\x7f\x7f"]
    assert fresh == [b"\x7f\x7f\x7f\x7f"]
