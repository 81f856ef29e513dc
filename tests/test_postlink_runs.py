"""The compiled writer of a link's manifest (``altlink/_postlink.c``) writing the entries as
runs of text, and naming the sites itself, held to the Python it stands for.

- ``entry_texts(..., joined=True)``: the entries' texts joined into runs (bytes), a None for
  each entry the Python writes, with their positions: filled with the reference's texts
  (``_Records._entry_texts``), the same text as the reference's entries joined, on random
  columns (with fields the C leaves to the Python).
- The sites named from a table of names (``manifest._name_index``: the values of the image's
  addressable symbols and the offsets of their names) as ``Symbolizer.at_addresses`` names
  them: on random tables (names the C leaves to the Python: empty, outside ASCII, with
  quotes), and on the images the tests link, at every site and around every symbol.
- ``manifest.dump`` of entries made so: the same bytes as ``dumps``, to a file and to a
  text stream, a few entries at a time.
"""
from __future__ import annotations

import io
import random
from bisect import bisect_right

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


def _call(pl, case, names, joined):
    heads, cbs, codes, simple, columns, s_code, a_code = case
    (callback, cap_raws, index, a_addr, s_addr, s_bin, s_file, orig_lens, src, _) = columns
    return pl.entry_texts(heads, cbs, codes, simple, {}, _site_text, _repl_text, callback,
                          cap_raws, index, a_addr, a_code, [0] * len(callback), s_addr,
                          s_code, s_bin, s_file, orig_lens, src, names, joined)


def _reference(case) -> list[str]:
    heads, cbs, codes, simple, columns, s_code, a_code = case
    records = SimpleRecords(codes, simple)
    return manifestmod._Records._entry_texts(records, columns, s_code, a_code,
                                             range(len(s_code)), _site_text, _repl_text,
                                             heads, cbs)


class SimpleRecords:
    def __init__(self, codes, simple):
        self._code_json = codes
        self._simple = simple


def _filled(pieces: list, holes: list[int], want: list[str]) -> str:
    """The runs with each None replaced by the reference's text of its entry, joined."""
    at = iter(holes)
    return ",\n  ".join(want[next(at)] if p is None else p.decode("ascii") for p in pieces)


@built
@pytest.mark.parametrize("odd", [False, True])
def test_runs_against_the_reference(odd):
    """The runs filled with the reference's texts where the C left a None: the reference's
    entries joined; a None exactly where ``entry_texts`` gives None entry by entry (and for
    an entry whose callback is not a bool), none of the runs empty."""
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(21 + odd)
    holes_seen = 0
    for _ in range(300):
        n = rng.randrange(0, 60)
        case = _random_columns(rng, n, odd)
        columns = case[4]
        if odd and n:  # an entry the Python is to write whatever its fields
            columns[0][rng.randrange(n)] = None
        want = _reference(case) if not odd else None
        per = _call(pl, case, columns[9], False)
        pieces, holes = _call(pl, case, columns[9], True)
        assert holes == [k for k, t in enumerate(per) if t is None]
        assert pieces.count(None) == len(holes)
        assert all(p is None or type(p) is bytes and p for p in pieces)
        assert not any(a is not None and b is not None for a, b in zip(pieces, pieces[1:]))
        if odd:  # the reference of each entry the C wrote is its text entry by entry
            want = [t if t is not None else f"<python {k}>" for k, t in enumerate(per)]
        assert _filled(pieces, holes, want) == ",\n  ".join(want)
        holes_seen += len(holes)
    assert (holes_seen > 0) == odd


def _names_table(rng: random.Random, odd: bool):
    """A table of names as ``_name_index`` gives it (keys, offsets, string table), and the
    Python's lookup of an address in it (``Symbolizer.at_addresses``' rule)."""
    import numpy as np

    n = rng.randrange(0, 40)
    keys = sorted(set(rng.choice([rng.getrandbits(12), rng.getrandbits(40),
                                  (1 << 64) - 1 - rng.getrandbits(8)]) for _ in range(n)))
    strtab = bytearray(b"\0")
    offs = []
    for _ in keys:
        name = "".join(rng.choice("abc_.$0x19") for _ in range(rng.randrange(1, 12)))
        if odd and rng.random() < 0.2:
            name = rng.choice(["", name + '"', "\\" + name, name + "\x01", name + "\x7f",
                               name + "é", "名"])
        offs.append(len(strtab))
        strtab += name.encode() + b"\0"
    if keys and rng.random() < 0.3:  # a name run past the table's end, without its NUL
        offs[-1] = len(strtab)
        strtab += b"tail"
    strtab = bytes(strtab)

    def name_of(k: int) -> str:
        off = offs[k]
        end = strtab.find(b"\0", off)
        return strtab[off:end if end >= 0 else len(strtab)].decode("utf-8", "replace")

    def lookup(a: int) -> str | None:
        p = bisect_right(keys, a)
        if not p:
            return None
        return name_of(p - 1) if a == keys[p - 1] else f"{name_of(p - 1)}+{a - keys[p - 1]:#x}"

    def base(a: int) -> str:  # the name of the symbol (without "+0x...")
        return name_of(bisect_right(keys, a) - 1)

    table = (np.array(keys, dtype=np.uint64), np.array(offs, dtype=np.int64), strtab)
    return keys, table, lookup, base


@built
@pytest.mark.parametrize("odd", [False, True])
def test_names_from_a_table_of_names(odd):
    """Each site named from the table of names: the text of the same entry with the
    Python's names; None only where that name is one the C leaves to the Python (empty,
    outside printable ASCII, with a quote or a backslash), entry by entry and in runs."""
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(31 + odd)
    named = left = 0
    for _ in range(300):
        n = rng.randrange(0, 50)
        keys, table, lookup, base = _names_table(rng, odd)
        case = list(_random_columns(rng, n, False))
        case[4] = columns = list(case[4])
        s_addr = columns[4]
        for k in range(n):  # at, before, after and between the keys
            if keys and rng.random() < 0.7:
                s_addr[k] = min(rng.choice(keys) + rng.choice([0, 0, 1, 4, 0x1000]),
                                (1 << 64) - 1)
        names = [lookup(a) for a in s_addr]
        columns[9] = names
        by_list = _call(pl, case, names, False)
        assert None not in by_list or odd
        by_table = _call(pl, case, table, False)
        for k, (a, b) in enumerate(zip(by_list, by_table)):
            if b is None:
                assert names[k] is not None
                name = base(s_addr[k])
                assert (
                    name == "" or not name.isascii() or not name.isprintable()
                    or '"' in name or "\\" in name), name
                left += 1
            else:
                assert a == b
                named += 1
        pieces, holes = _call(pl, case, table, True)
        assert holes == [k for k, t in enumerate(by_table) if t is None]
        want = _reference(case)
        assert [t for t in by_list if t is not None] == \
            [t for t, a in zip(want, by_list) if a is not None]
        assert _filled(pieces, holes, want) == ",\n  ".join(want)
    assert named > 1000 and (left > 0) == odd


def _images(tmp_path):
    from test_branches import synthetic_firmware
    from test_checks import image_of
    from test_image_fast import SMALL

    (tmp_path / "synth").mkdir(exist_ok=True)
    yield synthetic_firmware(tmp_path / "synth"), Profile("linux-v4.17", 85)
    yield image_of(tmp_path, SMALL), Profile("linux-v4.17", 4)


@built
@gnu
def test_the_table_of_names_of_linked_images(tmp_path):
    """On the images the tests link: ``_name_index`` is made, and the name the C writes of
    each site, of each symbol's value and of the addresses around it is
    ``Symbolizer.at_addresses``'."""
    import numpy as np  # noqa: F401 - the symbols' columns are read with it

    pl = speedups.get(speedups.POSTLINK)
    for path, _ in _images(tmp_path):
        inp = Input.load(read_elf(str(path)))
        table = manifestmod._name_index(inp.names, inp.elf)
        assert table is not None
        values = {s.value for s in inp.elf.symbols}
        addrs = sorted({e.site.address for e in inp.table.entries}
                       | {v + d for v in values for d in (-1, 0, 1, 6) if 0 <= v + d < 1 << 64})
        names = Input.load(read_elf(str(path))).names.at_addresses(addrs)
        n = len(addrs)
        texts = pl.entry_texts({0: ""}, {}, {b"": ("t", ())}, {b"": "r"}, {},
                               _site_text, _repl_text, [False] * n, [0] * n, [0] * n,
                               [0] * n, [b""] * n, [0] * n, addrs, [b""] * n, [0] * n,
                               [0] * n, [0] * n, None, table)
        got = [t[t.rindex('"symbol": ') + 10:-2] for t in texts]
        assert got == [manifestmod._name_json(x) for x in names]
        assert sum(x is not None and "+" in x for x in names) > 10


@built
@gnu
def test_dump_of_runs(tmp_path, monkeypatch):
    """``dump`` of a manifest whose entries are runs (bytes, and the Python's texts between):
    ``dumps``' text, to a file (the bytes written to its buffer) and to a text stream,
    a few entries at a time and all at once."""
    monkeypatch.setattr(manifestmod, "COLUMNS_FROM_ENTRIES", 0)  # (the small image's too)
    for path, profile in _images(tmp_path):
        inp = Input.load(read_elf(str(path)))
        from test_image_fast import table_columns

        columns = inp if inp.table.columns is not None else table_columns(inp)
        m = manifestmod.build(columns, profile, None, str(path), "cd" * 32, None,
                              encoded=True)
        # (made as they are written: here all of them, to split one)
        assert isinstance(m["entries"], manifestmod.EncodedLater)
        entries = m["entries"] = manifestmod.Encoded(m["entries"])
        assert any(type(p) is bytes for p in entries)
        # a run split, with a text of the Python's between
        runs = [p for p in entries if type(p) is bytes]
        first = runs[0].split(b",\n  ")
        if len(first) > 2:
            k = entries.index(runs[0])
            entries[k:k + 1] = [b",\n  ".join(first[:1]), first[1].decode(),
                                b",\n  ".join(first[2:])]
        speedups.use(False)
        ref = manifestmod.dumps(manifestmod.build(columns, profile, None, str(path),
                                                  "cd" * 32, None, encoded=True))
        speedups.use(None)
        assert manifestmod.dumps(m) == ref
        for chunk in (1, 2, 2048):
            was, manifestmod._CHUNK = manifestmod._CHUNK, chunk
            try:
                with open(tmp_path / "m.json", "w", encoding="utf-8") as f:
                    manifestmod.dump(m, f)
                stream = io.StringIO()
                manifestmod.dump(m, stream)
            finally:
                manifestmod._CHUNK = was
            assert (tmp_path / "m.json").read_text(encoding="utf-8") == ref
            assert stream.getvalue() == ref


@built
@pytest.mark.parametrize("odd", [False, True])
def test_places_blob_against_the_python(odd):
    """``_postlink.places_blob``: the bytes ``binding.digest_of_places`` packs of each entry's
    places, with callbacks told by their column and by their fields; None where a value is
    not what ``struct.pack`` takes, or a code not bytes, or a callback not a bool (``odd``)."""
    import struct

    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(41 + odd)
    nones = 0
    for _ in range(300):
        n = rng.randrange(0, 40)
        cols = [[rng.choice([0, 1, rng.getrandbits(64), (1 << 64) - 1]) for _ in range(n)],
                [rng.getrandbits(rng.choice([8, 16])) for _ in range(n)],
                [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 12)))
                 for _ in range(n)],
                [rng.getrandbits(64) for _ in range(n)],
                [rng.getrandbits(16) for _ in range(n)],
                [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 12)))
                 for _ in range(n)],
                [rng.random() < 0.3 for _ in range(n)]]
        bad = False
        if odd and n and rng.random() < 0.5:
            j, k = rng.randrange(7), rng.randrange(n)
            cols[j][k] = rng.choice({0: [1 << 64, -1, 2.0, True], 1: [1 << 16, -1, None],
                                     2: ["ab", bytearray(b"ab"), None],
                                     3: [1 << 64, -1, None], 4: [1 << 16, "1"],
                                     5: ["ab", memoryview(b"ab")], 6: [1, None]}[j])
            # (a callback's length and bytes are not packed: not wrong there)
            bad = not (j in (4, 5) and cols[6][k] is True)
        lens = [0xFFFF if cb else x for cb, x in zip(cols[6], cols[4])]
        alts = [b"" if cb else c for cb, c in zip(cols[6], cols[5])]
        got = pl.places_blob(*cols)
        if bad:
            assert got is None
            nones += 1
            continue
        head = struct.Struct("<QH").pack
        want = b"".join(head(a, b) + c + head(d, e) + f for a, b, c, d, e, f in zip(
            cols[0], cols[1], cols[2], cols[3], lens, alts))
        assert got == want
        assert pl.places_blob(*cols[:4], lens, alts) == want
        assert pl.places_blob(*cols[:4], lens, alts, None) == want
        if not odd:
            assert pl.places_blob(*(tuple(c) for c in cols)) == want
    assert pl.places_blob([0], [0], [b""], [0], [0], [b""], [True, False]) is None
    assert (nones > 0) == odd


@built
@gnu
@pytest.mark.parametrize("on", [True, False])
def test_the_patch_digest_of_the_places(tmp_path, on):
    """The manifest's patch digest from the places its columns read, packed by the C or by
    the Python: the reference's (``patch_digest_py``, each place read by address)."""
    from altlink import binding

    speedups.use(on)
    for path, profile in _images(tmp_path):
        inp = Input.load(read_elf(str(path)))
        from test_image_fast import table_columns

        columns = inp if inp.table.columns is not None else table_columns(inp)
        was, manifestmod.COLUMNS_FROM_ENTRIES = manifestmod.COLUMNS_FROM_ENTRIES, 0
        try:
            m = manifestmod.build(columns, profile, None, str(path), "", None, encoded=True)
        finally:
            manifestmod.COLUMNS_FROM_ENTRIES = was
        table = inp.table.sections[0]
        assert m["image"]["patch_sha256"] == binding.patch_digest_py(
            inp.elf, table.addr, table.size, inp.table.entries, profile)
