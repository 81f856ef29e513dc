"""``rawbin.raw_pieces``: the raw binary a piece at a time (each section's bytes, the zeros
between), as the link's writer writes and hashes it, held to ``rawbin.raw_binary``.

- The images the tests link (the synthetic firmware, a small image): the pieces joined are
  ``raw_binary``'s bytes, the sections' pieces views of the file's bytes (no copy).
- Layouts with gaps (before a section, after the last, none) and with sections that overlap
  (None: ``raw_binary`` decides which bytes win).
"""
from __future__ import annotations

import shutil

import pytest

from altlink import rawbin
from altlink.elf import read_elf

gnu = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed")


def _images(tmp_path):
    from test_branches import synthetic_firmware
    from test_checks import image_of
    from test_image_fast import SMALL

    (tmp_path / "synth").mkdir()
    yield synthetic_firmware(tmp_path / "synth")
    yield image_of(tmp_path, SMALL)


@gnu
def test_pieces_of_linked_images(tmp_path):
    for path in _images(tmp_path):
        elf = read_elf(str(path))
        lay = rawbin.layout(elf)
        want = rawbin.raw_binary(read_elf(str(path)), lay)
        pieces = rawbin.raw_pieces(elf, lay)
        assert pieces is not None and len(pieces) >= len(lay.sections)
        assert b"".join(pieces) == want
        assert sum(type(p) is memoryview for p in pieces) == len(lay.sections)
        assert rawbin.raw_pieces(elf) is not None
        del pieces


@gnu
def test_pieces_of_other_layouts(tmp_path):
    """Gaps anywhere, the same as ``raw_binary``'s; sections that overlap: None."""
    from test_branches import synthetic_firmware

    elf = read_elf(str(synthetic_firmware(tmp_path)))
    lay = rawbin.layout(elf)
    secs = [s for s, _ in lay.sections]
    assert len(secs) >= 2
    a, b = secs[0], secs[1]
    cases = {  # (section, its LMA), as layout sorts them; the binary's base and size
        "gap before and after": ((1000, [(a, 1100), (b, 1100 + a.size + 12)]), 40),
        "no gap": ((0, [(a, 0), (b, a.size)]), 0),
        "a gap at the end": ((0, [(a, 0)]), 9),
    }
    for name, ((base, sections), tail) in cases.items():
        end = max(lma + s.size for s, lma in sections)
        lay = rawbin.RawLayout(base, end - base + tail, tuple(sections))
        pieces = rawbin.raw_pieces(elf, lay)
        assert pieces is not None, name
        assert b"".join(pieces) == rawbin.raw_binary(elf, lay), name
        del pieces
    overlap = rawbin.RawLayout(0, a.size - 4 + b.size, ((a, 0), (b, a.size - 4)))
    assert rawbin.raw_pieces(elf, overlap) is None
    assert rawbin.raw_binary(elf, overlap)[a.size - 4:] == elf.section_data(b)


def test_no_view_of_the_image_is_kept_by_an_error(tmp_path, monkeypatch):
    """The writer's raw binary written from views of the image's mapping: where the write
    fails, none is left (in the error's traceback either), and the image can be closed."""
    import mmap

    from altlink import linkoutputs, outputs

    data = mmap.mmap(-1, 4096)
    pieces = [memoryview(data)[:100], bytes(3), memoryview(data)[100:200]]

    class Full(Exception):
        pass

    def fail(*a, **k):
        raise Full

    monkeypatch.setattr(outputs, "writing", fail)
    with pytest.raises(Full) as got:
        linkoutputs._write_pieces(pieces, str(tmp_path / "x.tmp"), str(tmp_path / "x"))
    assert pieces == [] and got.traceback
    data.close()  # (BufferError where a view were left)
    monkeypatch.undo()
    pieces = [memoryview(b"ab"), bytes(2)]
    import hashlib

    assert linkoutputs._write_pieces(pieces, str(tmp_path / "y.tmp"), str(tmp_path / "y")) \
        == hashlib.sha256(b"ab\0\0").hexdigest()
    assert (tmp_path / "y.tmp").read_bytes() == b"ab\0\0"
