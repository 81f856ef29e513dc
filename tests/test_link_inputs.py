"""What a link reads of its inputs before the linker ends: the objects' section headers are
checked where their records are made (``inputs.load_elfs`` with ``defer``), never skipped for
an input that is unusable; the code estimate made without decoding them."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from test_link import AR, altlink, asm, linker_command
from toolchain import ROOT, run

from altlink import elf, inputs
from altlink.errors import AltlinkError


def _past_the_end(src: Path, dst: Path) -> Path:
    """A copy of an object whose section 1 starts past the end of the file (hand-made: an
    unusable object, as a truncated download leaves one)."""
    data = bytearray(src.read_bytes())
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    struct.pack_into("<Q", data, shoff + 64 + 24, len(data) + 0x100)  # section 1's sh_offset
    dst.write_bytes(bytes(data))
    return dst


def test_an_unusable_object_is_named_first_with_records_kept(tmp_path):
    # The link leaves its objects' section headers to where their records are made
    # (inputs.load_elfs defer=True): an object whose record is kept was checked when the
    # record was made. The first unusable input is still the one named, with the words
    # every input read at once would name it with, records kept or not, an archive's
    # member too; exit 2, nothing written.
    a = asm(tmp_path, "a", "\t.text\n\t.globl _start\n_start:\n\tbl fb\n")
    b = asm(tmp_path, "b", "\t.text\n\t.globl fb\nfb:\n\tret\n")
    c = asm(tmp_path, "c", "\t.text\n\t.globl fc\nfc:\n\tret\n")
    bad = _past_the_end(b, tmp_path / "bad.o")
    run([AR, "rcT", tmp_path / "thin.a", c, bad])
    cache = tmp_path / "records"
    ok = altlink("link", "--cache-dir", cache, "-o", "ok.elf", "--",
                 *linker_command("ld", [a, b, c], out="ok.elf"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    cut = tmp_path / "cut.a"  # an archive cut short in its first member
    cut.write_bytes(b"!<arch>\nb.o/            0           0     0     644     999       `\nab")
    thin = tmp_path / "thin.a"
    for order, first in (([a, bad, b], bad), ([bad, a, b, c], bad), ([bad, cut], bad),
                         ([a, cut, bad], cut), ([a, b, thin], f"{thin}("),
                         ([a, thin, cut], f"{thin}(")):
        with pytest.raises(AltlinkError) as want:  # every input read and checked at once
            inputs.load_elfs([str(p) for p in order])
        assert str(want.value).startswith(str(first))
        for records in (["--cache-dir", cache], ["--no-cache"]):
            got = altlink("link", *records, "-o", "x.elf", "--",
                          *linker_command("ld", order, out="x.elf"), cwd=tmp_path)
            assert got.returncode == 2, got.stderr
            assert got.stderr.strip().splitlines() == [str(want.value)], got.stderr
            assert not (tmp_path / "x.elf").exists()


def test_the_code_size_read_without_the_names_is_the_sections_sum(tmp_path):
    """``ElfFile.code_size`` from the raw section headers (the link's estimate of the code it
    will scan, for objects whose section names it does not decode) against the decoded
    sections, on objects of every kind the tests build and the committed kernel modules."""
    objs = [asm(tmp_path, "a", "\t.text\n\tnop\n\t.section .text.x, \"ax\"\n\tret\n"),
            asm(tmp_path, "e", "\t.data\n\t.word 1\n"),
            *sorted((ROOT / "tests" / "data").rglob("*.ko"))[:20]]
    for p in objs:
        raw, decoded = elf.map_elf(str(p)), elf.read_elf(str(p))
        want = sum(s.size for s in decoded.sections if s.executable and s.type != elf.SHT_NOBITS)
        assert raw.code_size() == want
        assert "sections" not in raw.__dict__
        assert decoded.code_size() == want
    assert elf.map_elf(str(objs[0])).code_size() == 8
    assert elf.map_elf(str(objs[1])).code_size() == 0


def test_a_file_s_first_bytes_are_read_or_none(tmp_path):
    # filekind.read_head: what the launcher, the link command's inputs and the kept code
    # digest read of a file's start; None, never an exception, where it cannot be read.
    from altlink import launcher, linkcmd
    from altlink.filekind import read_head

    short = tmp_path / "short"
    short.write_bytes(b"\x7fELF")
    assert read_head(str(short), 20) == b"\x7fELF"
    assert read_head(str(short), 2) == b"\x7f" + b"E"
    assert read_head(str(tmp_path / "missing"), 8) is None
    assert read_head(str(tmp_path), 8) is None  # a directory opens, but does not read
    archive = tmp_path / "lib.a"
    archive.write_bytes(b"!<arch>\n")
    assert linkcmd._input_kind(str(archive)) == "archive"
    assert linkcmd._input_kind(str(short)) == "object"
    assert linkcmd._input_kind(str(tmp_path)) is None
    # an input altlink cannot read is the link's to report: taken as one to check
    assert launcher._is_aarch64(str(tmp_path / "missing")) is True
    assert launcher._is_aarch64(str(short)) is False  # too short for a machine field
