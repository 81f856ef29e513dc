"""The optional C extension for a link's work after its linker (``altlink/_postlink.c``, loaded
by ``altlink/speedups.py`` as ``speedups.postlink()``), held to the Python it stands for.

- ``entry_texts`` (the manifest's entries' texts from the table's columns,
  ``manifest._Records._from_columns``) against ``_Records._entry_texts``, the reference, on
  random columns: every field of every kind the columns hold, and fields the C leaves to the
  Python (text outside ASCII, ints that are not 64-bit or not exact ints): where it leaves an
  entry None, the Python's text fills it, and the whole is the reference's.
- The manifest written with and without the extension (``speedups.use``): the same bytes, on
  every image the tests link (a small image, the benchmark's synthetic firmware, the sample
  firmware by GNU ld and ld.lld, the kernel builds, Debian's vmlinux where fetched), as linked
  and broken (entries refused, places outside sections), with and without the raw binary's
  offsets and source lines.
- Where ``./run test`` runs the tests (ALTLINK_REQUIRE_SPEEDUPS=1) the extension must be built
  and used; one built from another ``_postlink.c`` than the one beside it is not used (stale).
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_speedups import loaded_in

from altlink import manifest as manifestmod
from altlink import rawbin, speedups
from altlink.caps import load as load_caps
from altlink.elf import read_elf
from altlink.linkset import Input
from altlink.table import Profile

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = os.environ.get("ALTLINK_REQUIRE_SPEEDUPS") == "1"
built = pytest.mark.skipif(
    not speedups.available(speedups.POSTLINK),
    reason="altlink's C extension altlink/_postlink.c is not built in this environment "
    f"({'; '.join(speedups.WHY_OF[speedups.POSTLINK])})")
gnu = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed")


@pytest.fixture(autouse=True)
def _as_the_environment_says():
    yield
    speedups.use(None)


def test_built_where_required():
    """``./run test`` sets ALTLINK_REQUIRE_SPEEDUPS=1: its venv must have the extension."""
    if not REQUIRED:
        pytest.skip("ALTLINK_REQUIRE_SPEEDUPS is not set (./run test sets it)")
    assert speedups.available(speedups.POSTLINK), speedups.WHY_OF[speedups.POSTLINK]
    speedups.use(None)
    assert speedups.postlink() is not None


# -- entry_texts against the reference -----------------------------------------------------------

def _random_columns(rng: random.Random, n: int, odd: bool):
    """Columns as ``_from_columns`` gives ``entry_texts`` (with ``odd``: fields the C leaves
    to the Python, now and then), and the dicts they are looked up in."""
    def text(ascii_only: bool = False) -> str:
        s = "".join(rng.choice("abc_.$+0x19") for _ in range(rng.randrange(0, 12)))
        if odd and not ascii_only and rng.random() < 0.03:
            s += rng.choice(["é", "名", "\U0001f600", "\x7f", "\x80"])
        return s

    def number(hexed: bool = False):
        v = rng.choice([0, 1, 4, 0x40_0000, rng.getrandbits(20), rng.getrandbits(48),
                        (1 << 63) - 1, (1 << 64) - 1 if hexed else -(1 << 63)])
        if odd and rng.random() < 0.02:
            return rng.choice([1 << 64, -1, True, 1 << 70]) if hexed else \
                rng.choice([1 << 63, -(1 << 63) - 1, False, None, 1 << 80, 2.5])
        return v

    cap_raws_known = [rng.getrandbits(16) for _ in range(6)]
    heads = {c: f'"cap": {c & 0xff}, "cap_name": "{text()}", "cap_raw": {c}, '
             for c in cap_raws_known}
    codes_known = [bytes(rng.getrandbits(8) for _ in range(4 * rng.randrange(0, 4)))
                   for _ in range(12)]
    codes = {c: (None if rng.random() < 0.2 else f'"bytes": "{c.hex()}", "disasm": '
                 f'["{text()}"]', ()) for c in codes_known}
    # (a code's replacement fields are made at each place where its lines depend on it: no
    # plan of them here, so that the callables make them)
    simple = {c: None if codes[c][0] is None else f'"bytes": "{c.hex()}", "fixups": []'
              for c in codes_known}
    callback = [rng.random() < 0.15 for _ in range(n)]
    a_addr = [number(True) for _ in range(n)]
    cbs = {aa: f'{{"address": "{aa:#x}", "symbol": "{text()}"}}'
           for aa, cb in zip(a_addr, callback) if cb}
    if odd:  # a callback's address missing from cbs, a cap_raw missing from heads
        for k in range(n):
            if callback[k] and rng.random() < 0.02:
                a_addr[k] = object()
                cbs[a_addr[k]] = "x"
    cap_raws = [rng.choice(cap_raws_known) for _ in range(n)]
    columns = (callback, cap_raws, [number() for _ in range(n)], a_addr,
               [number(True) for _ in range(n)],
               [rng.choice(["null", number()]) for _ in range(n)],
               [number() for _ in range(n)], [number() for _ in range(n)],
               None if rng.random() < 0.5 else
               [rng.choice(["", f'"source": "{text()}", ']) for _ in range(n)],
               [rng.choice([None, text(), text() + rng.choice(['"', "\\", "\n", "\x7f"])
                            if odd else text()]) for _ in range(n)])
    s_code = [rng.choice(codes_known) for _ in range(n)]
    a_code = [rng.choice(codes_known) for _ in range(n)]
    return heads, cbs, codes, simple, columns, s_code, a_code


def _site_text(k: int) -> str:
    return f'"bytes": "", "disasm": ["site {k}"]'


def _repl_text(k: int) -> str:
    return f'"bytes": "", "disasm": ["replacement {k}"], "fixups": [{k}]'


@built
@pytest.mark.parametrize("odd", [False, True])
def test_entry_texts_against_the_reference(odd):
    """``_postlink.entry_texts`` against ``_Records._entry_texts`` on random columns: the
    same texts, where it makes them; None only where a field is not what it writes (``odd``),
    and then the reference's text fills it."""
    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(11 + odd)
    made = holes = 0
    for _ in range(300):
        n = rng.randrange(0, 60)
        heads, cbs, codes, simple, columns, s_code, a_code = _random_columns(rng, n, odd)
        records = SimpleNamespace(_code_json=codes, _simple=simple)
        want = manifestmod._Records._entry_texts(records, columns, s_code, a_code, range(n),
                                                 _site_text, _repl_text, heads, cbs)
        (callback, cap_raws, index, a_addr, s_addr, s_bin, s_file, orig_lens, src,
         names) = columns
        got = pl.entry_texts(heads, cbs, codes, simple, {}, _site_text, _repl_text, callback,
                             cap_raws, index, a_addr, a_code, [4] * n, s_addr, s_code, s_bin,
                             s_file, orig_lens, src, names)
        assert len(got) == n
        for k, (g, w) in enumerate(zip(got, want)):
            if g is None:
                holes += 1
                assert odd, (k, w)
            else:
                made += 1
                assert g == w, k
    assert made > 3000
    assert (holes > 50) is odd


@built
def test_entry_texts_refuses_columns_of_other_lengths():
    pl = speedups.get(speedups.POSTLINK)
    one = [0]
    with pytest.raises(ValueError, match="s_file"):
        pl.entry_texts({}, {}, {}, {}, {}, _site_text, _repl_text, [False], one, one, one,
                       [b""], one, one, [b""], one, [], one, None, [None])
    with pytest.raises(ValueError, match="callback"):
        pl.entry_texts({}, {}, {}, {}, {}, _site_text, _repl_text, (False,), one, one, one,
                       [b""], one, one, [b""], one, one, one, None, [None])


@built
def test_entry_texts_passes_on_an_error_of_its_callables():
    pl = speedups.get(speedups.POSTLINK)

    def fails(k):
        raise KeyError(k)

    code = b"\x1f\x20\x03\xd5"
    with pytest.raises(KeyError):
        pl.entry_texts({1: "h, "}, {}, {code: (None, ())}, {code: "r"}, {}, fails, _repl_text,
                       [False], [1], [0], [4], [code], [4], [8], [code], [0], [0], [4], None,
                       [None])


@built
def test_fixups_and_lines_at_each_place_against_the_python():
    """Where a code's text depends on its place: a replacement's fix-ups (``_Records._fixups``:
    ``insn.needs_fixup`` and ``insn.target`` of each word that may need one) and the lines of
    a site or replacement made from their plan (``_Records._disasm``), made by
    ``entry_texts`` at random addresses (near 0, near 2**64, and any) from words of every
    kind that may need a fix-up (targets inside, at the end of, and outside the
    replacement): the Python's texts; a word whose kind is not what its encoding says, and a
    plan's line that insn.disasm makes at each place, are left to the Python."""
    from altlink import insn

    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(7)
    tops = [0x14000000, 0x94000000, 0x54000000, 0x54000010, 0x34000000, 0xB5000000,
            0x36000000, 0xB7000000, 0x90000000, 0xF0000000, 0xD503201F, 0x10000000]

    def word() -> int:
        w = rng.choice(tops) | rng.getrandbits(24) if rng.random() < 0.5 else \
            rng.choice(tops) | ((rng.randrange(-6, 6) & 0x7FFFF) << 5)
        if (w & 0x7C000000) == 0x14000000 and rng.random() < 0.5:
            w = (w & 0xFC000000) | (rng.randrange(-6, 6) & 0x3FFFFFF)
        return w

    calls = []

    def site_text(k):
        calls.append(k)
        return f'"bytes": "{s_code[k].hex()}", "disasm": ' \
            f'{manifestmod._Records._disasm(records, s_code[k], s_addr[k])}'

    def repl_text(k):
        calls.append(k)
        c, aa = a_code[k], a_addr[k]
        text, branches = codes[c]
        if text is None:
            text = f'"bytes": "{c.hex()}", "disasm": ' \
                f'{manifestmod._Records._disasm(records, c, aa)}'
        return f'{text}, "fixups": [{manifestmod._Records._fixups(records, branches, aa, alt_lens[k])}]'

    fixups = compared = 0
    for _ in range(200):
        codes, plans = {}, {}
        for _ in range(8):
            words = [word() for _ in range(rng.randrange(1, 5))]
            c = b"".join(w.to_bytes(4, "little") for w in words)
            branches = tuple((i, w, insn.decode(w).kind) for i, w in enumerate(words)
                             if insn.decode(w).kind in insn.FIXUP_KINDS)
            if branches and rng.random() < 0.05:  # a kind its encoding does not say
                i, w, _ = branches[0]
                branches = ((i, w, rng.choice(["adrp", "branch26", "test14", "other"])),
                            *branches[1:])
            moving = rng.random() < 0.5
            codes[c] = (None if moving else f'"bytes": "{c.hex()}", "disasm": ["x"]', branches)
            if moving:
                plans[c] = [rng.choice([
                    '"nop"', (rng.choice(['"b ', '"adrp x0, ']), rng.randrange(len(words)),
                              rng.randrange(-(1 << 20), 1 << 20), rng.random() < 0.5)])
                    for _ in range(len(words))]
                if rng.random() < 0.05:
                    plans[c][0] = 0  # a line insn.disasm makes at each place
                elif rng.random() < 0.2:
                    plans[c] = "[" + ", ".join(f'"{i}"' for i in range(len(words))) + "]"
        simple = dict.fromkeys(codes)
        records = SimpleNamespace(_code_json=codes, _simple=simple, _disasm_json=plans)
        n = 30
        s_code = [rng.choice(list(codes)) for _ in range(n)]
        a_code = [rng.choice(list(codes)) for _ in range(n)]
        near = [0, 4, 0xFFC, 0x1000, (1 << 64) - 8, (1 << 64) - 0x1000, (1 << 63)]
        a_addr = [rng.choice(near) if rng.random() < 0.3 else rng.getrandbits(64) & ~3
                  for _ in range(n)]
        s_addr = [rng.choice(near) if rng.random() < 0.3 else rng.getrandbits(64) & ~3
                  for _ in range(n)]
        alt_lens = [rng.choice([0, 4, 8, 16, 24, 255]) for _ in range(n)]
        columns = ([False] * n, [1] * n, list(range(n)), a_addr, s_addr, [0] * n, [0] * n,
                   [4] * n, None, [None] * n)
        heads = {1: '"cap": 1, '}
        calls.clear()
        want = manifestmod._Records._entry_texts(records, columns, s_code, a_code, range(n),
                                                 site_text, repl_text, heads, {})
        want_calls = len(calls)
        calls.clear()
        got = pl.entry_texts(heads, {}, codes, simple, plans, site_text, repl_text, [False] * n,
                             [1] * n, list(range(n)), a_addr, a_code, alt_lens, s_addr, s_code,
                             [0] * n, [0] * n, [4] * n, None, [None] * n)
        assert got == want
        assert len(calls) < want_calls
        compared += n
        fixups += sum(t.count('"insn"') for t in got)
    assert compared == 6000 and fixups > 2000


@built
def test_place_codes_against_the_slices():
    """``_postlink.place_codes`` against the slices ``_Records._places_np`` takes, on random
    places: inside their section's bytes, across its end, past it, of huge lengths and
    offsets; None where a section is not among the bytes, or not bytes, or the columns are
    not of one length."""
    import numpy as np

    pl = speedups.get(speedups.POSTLINK)
    rng = random.Random(3)
    compared = 0
    for _ in range(300):
        datas = {i: bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
                 for i in rng.sample(range(1, 9), rng.randrange(1, 5))}
        n = rng.randrange(0, 50)
        idx = [rng.choice(list(datas)) for _ in range(n)]
        off = [rng.choice([0, 1, 3, 4, 39, 40, 41, 1 << 40, (1 << 64) - 1,
                           rng.randrange(0, 48)]) for _ in range(n)]
        length = [rng.choice([0, 1, 4, 8, 12, 255, 1 << 63, (1 << 64) - 1,
                              rng.randrange(0, 48)]) for _ in range(n)]
        got = pl.place_codes(datas, np.array(idx, dtype=np.int64),
                             np.array(off, dtype=np.uint64), np.array(length, dtype=np.uint64))
        assert got == [datas[i][o:o + k] for i, o, k in zip(idx, off, length)]
        compared += n
    assert compared > 5000
    one = np.zeros(1, dtype=np.uint64)
    assert pl.place_codes({0: b"ab"}, np.ones(1, dtype=np.int64), one, one) is None
    assert pl.place_codes({1: bytearray(b"ab")}, np.ones(1, dtype=np.int64), one, one) is None
    assert pl.place_codes({1: b"ab"}, np.ones(2, dtype=np.int64), one, one) is None


# -- manifests with and without the extension ----------------------------------------------------

def same_manifest_both_ways(inp: Input, profile: Profile, caps=None, sources=None) -> int:
    """The manifest of ``inp`` written with the extension and without, its entries a column
    at a time from any number of them, refusing what check refuses and not, with and without
    the raw binary's layout: the same text. Returns the entries written."""
    from test_image_fast import table_columns

    columns = inp if inp.table.columns is not None else table_columns(inp)
    written = 0
    was, manifestmod.COLUMNS_FROM_ENTRIES = manifestmod.COLUMNS_FROM_ENTRIES, 0
    try:
        for bin_info in (None, manifestmod.BinInfo("fw.bin", "ab" * 32,
                                                   rawbin.layout(inp.elf))):
            for refuse in (True, False):
                texts = []
                for on in (True, False):
                    speedups.use(on)
                    m = manifestmod.build(columns, profile, caps, inp.path, "cd" * 32, None,
                                          bin_info, sources, refuse=refuse, encoded=True)
                    texts.append(manifestmod.dumps(m))
                assert texts[0] == texts[1]
                # (the compiled writer's entries are runs of them: counted in the text)
                written += len(json.loads(texts[0])["entries"])
    finally:
        manifestmod.COLUMNS_FROM_ENTRIES = was
    return written


def compare(path: Path, profile: Profile, caps=None, every: int = 7, seeds=(1, 2)) -> None:
    """The image as linked and broken (``test_image_fast.broken``): the same manifests."""
    from test_image_fast import broken, moving_words

    inp = Input.load(read_elf(str(path)))
    assert inp.table.entries
    assert same_manifest_both_ways(inp, profile, caps) >= 4 * len(inp.table.entries)
    moving = moving_words(inp.elf, random.Random(0))
    for seed in seeds:
        assert same_manifest_both_ways(broken(inp, profile, moving, seed, every), profile,
                                       caps)


@built
@gnu
def test_a_small_image(tmp_path):
    from test_checks import image_of
    from test_image_fast import SMALL

    compare(image_of(tmp_path, SMALL), Profile("linux-v4.17", 4), every=2, seeds=range(6))


@built
@gnu
def test_the_synthetic_firmware(tmp_path):
    from test_branches import synthetic_firmware

    compare(synthetic_firmware(tmp_path), Profile("linux-v4.17", 85))


@built
@gnu
@pytest.mark.parametrize("toolchain", ["gnu", "llvm"])
def test_the_sample_firmware(tmp_path, toolchain):
    from test_header import build_sample

    if toolchain == "llvm" and not shutil.which("ld.lld"):
        pytest.skip("no ld.lld")
    compare(build_sample(tmp_path / toolchain, toolchain, "linux-v4.17"),
            Profile("linux-v4.17", 3), every=2, seeds=range(4))


@built
@gnu
def test_source_lines(tmp_path):
    from test_link import MAIN_S, NCAPS, linker_command
    from toolchain import compile, run, write

    from altlink.sources import site_lines

    obj = compile(write(tmp_path / "main.S", MAIN_S), tmp_path / "main.o", flags=["-g"],
                  defines=[f"ALT_NCAPS={NCAPS}"])
    run(linker_command("ld", [obj], str(tmp_path / "fw.elf")), cwd=tmp_path)
    inp = Input.load(read_elf(str(tmp_path / "fw.elf")))
    lines = site_lines(inp.path, [e.site.address for e in inp.table.entries], str(tmp_path))
    assert same_manifest_both_ways(inp, Profile("linux-v4.17", NCAPS), sources=lines)


@built
@pytest.mark.kernel_build
@pytest.mark.timeout(3600)
def test_kernel_build(kernel_build):
    caps = load_caps(str(kernel_build.cap_header))
    compare(kernel_build.out / "vmlinux", Profile("linux-v6.1", caps.ncaps), caps=caps)


@built
def test_debian_vmlinux():
    from test_kernel import full_kernel

    kernel = full_kernel()
    if kernel is None:
        pytest.skip("Debian's kernel is not fetched (tools/fetch_kernel.py)")
    compare(kernel / "vmlinux", Profile("linux-v6.1"), every=40, seeds=(1,))


# -- never a stale build -------------------------------------------------------------------------

def _loaded_in(pkg: Path, **env) -> tuple:
    return loaded_in(pkg, "(speedups.postlink() is not None, speedups.get() is not None, "
                          "speedups.WHY_OF)", **env)


@built
def test_never_stale(tmp_path):
    """``_postlink`` built from another ``_postlink.c`` than the one beside it is not used,
    and says why, while ``_speedups`` still is; ALTLINK_NO_SPEEDUPS=1 turns both off; the
    record cache's key (``altlink.code_digest``) changes with the module's file."""
    def copy(where: Path, change: bool) -> Path:
        dst = where / "pkg" / "altlink"
        shutil.copytree(ROOT / "altlink", dst, ignore=shutil.ignore_patterns("__pycache__"))
        if change:
            with open(dst / "_postlink.c", "a") as f:
                f.write("/* a change after the build */\n")
        return dst.parent

    good = copy(tmp_path / "good", False)
    assert _loaded_in(good)[:2] == (True, speedups.available())
    assert _loaded_in(good, ALTLINK_NO_SPEEDUPS="1")[:2] == (False, False)
    used, other, why = _loaded_in(copy(tmp_path / "stale", True))
    assert not used and other == speedups.available()
    assert "stale" in why["_postlink"][0] and not why["_speedups"], why
    # (that the record cache's key covers it: test_speedups.py, for both extensions)
