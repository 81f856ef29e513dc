"""``textcache``: what the codes of a link's image read as in its manifest, kept between links
beside the records. A manifest written with texts read back is the one written without, byte
for byte: the texts of one image used for another (the synthetic firmware as linked and with
its table broken in the ways the entry checks know: other codes, odd lengths, refused
entries), through the base, the deltas and their merging, and the start again of files
grown past their bound; and a link with a record cache writes the manifest of a link without
one. Nothing is read back under another altlink's code or capstone, from a damaged file, or
from a file that names a class."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from test_image_fast import broken, moving_words

from altlink import manifest as manifestmod
from altlink import textcache
from altlink.elf import read_elf
from altlink.linkset import Input
from altlink.table import Profile

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed",
)

PROFILE = Profile("linux-v4.17", 85)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory) -> Input:
    from test_branches import synthetic_firmware

    return Input.load(read_elf(str(synthetic_firmware(tmp_path_factory.mktemp("fw")))))


def text_of(inp: Input, texts=None) -> str:
    """The manifest's text as a link writes it (refusing what check refuses)."""
    return manifestmod.dumps(manifestmod.build(inp, PROFILE, None, inp.path, "", None,
                                               refuse=True, encoded=True, texts=texts))


def tables(texts) -> list[dict]:
    """Its tables, the codes of its compact tables in them."""
    return textcache.all_tables(texts)


def kept_files(cache: Path) -> list[str]:
    """The texts files of this altlink's key in the cache."""
    folder = cache / textcache.FOLDER
    key = textcache.key_of(str(cache))
    return sorted(n for n in os.listdir(folder) if n.startswith(key)
                  and not n.endswith(".tmp")) if folder.is_dir() else []


def test_texts_read_back_write_the_same_manifest(tmp_path, firmware):
    cache = str(tmp_path / "cache")
    ref = text_of(firmware)
    first = textcache.load(cache)
    assert not any(tables(first)) and first.kept.files == []
    assert text_of(firmware, first) == ref
    textcache.save(first)
    assert len(kept_files(tmp_path / "cache")) == 1
    again = textcache.load(cache)
    assert tables(again) == tables(first) and len(tables(again)[0]) > 200
    # (most codes in a compact table: read from the file where it lies)
    assert len(again.code_json) < len(tables(again)[0]) / 2
    assert text_of(firmware, again) == ref
    textcache.save(again)  # nothing new: nothing written
    assert len(kept_files(tmp_path / "cache")) == 1


def test_texts_of_other_images(tmp_path, firmware, monkeypatch):
    """Each broken table's manifest with the texts kept by the ones before: the same as
    without; the deltas merged into the base every ``MAX_DELTAS``, and the files begun again
    where they would take more than their bound; another key's files, and temporary
    files, removed by a merge where not written for a day."""
    cache = str(tmp_path / "cache")
    monkeypatch.setattr(textcache, "MAX_DELTAS", 2)
    moving = moving_words(firmware.elf, random.Random(0))
    # another altlink's files, and a killed link's temporary file: removed by a merge where
    # they were not written for a day
    folder = tmp_path / "cache" / textcache.FOLDER
    folder.mkdir(parents=True)
    key = textcache.key_of(cache)
    others = {n: folder / n for n in ("0" * 40 + ".base", "1" * 40 + ".base",
                                      f"{key}.7.1.base.7.1.tmp")}
    for n, path in others.items():
        path.write_bytes(b"")
        if n != "1" * 40 + ".base":  # (written now)
            os.utime(path, (1e9, 1e9))
    seen, bound = [], None
    for seed in range(1, 9):
        if seed in (6, 7):  # from here on, the files take at most what they took before
            bound = sum((folder / n).stat().st_size for n in seen[-1]) + 1
            monkeypatch.setattr(textcache, "MAX_BYTES", bound)
        bad = broken(firmware, PROFILE, moving, seed, every=3)
        texts = textcache.load(cache)
        known = len(tables(texts)[0])
        assert text_of(bad, texts) == text_of(bad)
        assert len(tables(texts)[0]) > known  # each broken table has codes of its own
        textcache.save(texts)
        seen.append(kept_files(tmp_path / "cache"))
        if bound is not None:
            assert sum((folder / n).stat().st_size for n in seen[-1]) <= bound
    bases = [any(n.endswith(textcache.BASE) for n in names) for names in seen]
    # (the sixth merges, and the seventh adds a delta, but each would take more than the
    # bound: begun again)
    assert [len(n) for n in seen[:6]] == [1, 2, 1, 2, 3, 1]
    assert bases[:7] == [False, False, True, True, True, False, False]
    assert not set(seen[5]) & set(seen[6])  # (its own delta kept where it fits the bound)
    assert [n for n, path in others.items() if path.exists()] == ["1" * 40 + ".base"]


def test_the_bound_follows_the_record_cache(monkeypatch):
    monkeypatch.setenv("ALTLINK_CACHE_SIZE", "64K")
    assert textcache.bound_bytes() == 2048
    monkeypatch.setenv("ALTLINK_CACHE_SIZE", "0")
    assert textcache.bound_bytes() == textcache.MAX_BYTES
    monkeypatch.delenv("ALTLINK_CACHE_SIZE")
    assert textcache.bound_bytes() == textcache.MAX_BYTES


def test_nothing_read_back_under_another_code(tmp_path, firmware, monkeypatch):
    cache = str(tmp_path / "cache")
    texts = textcache.load(cache)
    text_of(firmware, texts)
    textcache.save(texts)
    assert not textcache.load(cache).empty()
    import altlink

    monkeypatch.setattr(altlink, "code_digest", lambda keep_in=None: "another")
    assert textcache.load(cache).empty()


@pytest.mark.parametrize("damage", ["byte", "short", "class", "shape", "table", "magic"])
def test_a_damaged_file_is_not_read(tmp_path, firmware, damage):
    import pickle

    cache = tmp_path / "cache"
    texts = textcache.load(str(cache))
    text_of(firmware, texts)
    textcache.save(texts)
    (name,) = kept_files(cache)
    path = cache / textcache.FOLDER / name
    data = bytearray(path.read_bytes())
    if damage == "byte":
        data[len(data) // 2] ^= 1
    elif damage == "short":
        data = data[:-10]
    else:  # the right digest of the wrong contents
        payload = pickle.dumps(Path("x") if damage == "class" else ({},) * 5, protocol=-1)
        if damage in ("table", "magic"):  # a compact table of 3 slots; another magic
            table = textcache._TABLE.pack(b"ALTC", 3, 0, 0) + bytes(12)
            payload = table + pickle.dumps(({},) * 6, protocol=-1)
        head = textcache._HEAD.pack(b"ALTX" if damage == "magic" else textcache.MAGIC,
                                    len(table) if damage == "table" else 0)
        payload = head + payload
        data = bytearray(__import__("hashlib").sha256(payload).digest() + payload)
    path.write_bytes(bytes(data))
    again = textcache.load(str(cache))
    assert again.empty() and again.kept.files == []
    assert text_of(firmware, again) == text_of(firmware)


def test_a_cache_that_cannot_be_written(tmp_path, firmware):
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    texts = textcache.load(str(blocked))  # (its texts folder cannot be made)
    assert text_of(firmware, texts) == text_of(firmware)
    textcache.save(texts)
    assert blocked.read_bytes() == b""


def test_the_link_keeps_texts(tmp_path, monkeypatch):
    """A link with a record cache (its codes' texts kept, then read back) writes the
    manifest and raw binary of a link without one, byte for byte."""
    from toolchain import synthetic_firmware

    from altlink import link as linkmod
    from altlink.cli import main

    monkeypatch.setattr(linkmod, "TEXTS_KEPT_FROM", 0)  # (24 objects: 480 entries)
    fw = synthetic_firmware()
    d = Path(fw.dir)
    ldscripts = Path(linkmod.__file__).parent / "ldscripts"
    monkeypatch.chdir(d)
    cache = tmp_path / "cache"

    def link(name: str, *cache_args: str) -> tuple[bytes, bytes]:
        out = tmp_path / name
        out.mkdir()
        argv = ["link", "-o", f"{out}/fw.elf", "--manifest", f"{out}/fw.alt.json", "--bin",
                f"{out}/fw.bin", "--cap-table", fw.cap_table, "--abi", "linux-v4.17",
                *cache_args, "--", "aarch64-linux-gnu-ld", "-static", "--build-id=none",
                f"-L{ldscripts}", "-T", fw.ldscript, *fw.objects, "-o", f"{out}/fw.elf"]
        assert main(argv) == 0
        return (out / "fw.alt.json").read_bytes(), (out / "fw.bin").read_bytes()

    ref = link("ref", "--no-cache")
    assert link("first", "--cache-dir", str(cache)) == ref
    (name,) = kept_files(cache)
    assert link("again", "--cache-dir", str(cache)) == ref
    assert kept_files(cache) == [name]  # read back whole: nothing new to keep
