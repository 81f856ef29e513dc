"""A link's objects are each opened once: ``linkcmd`` reads a small regular input whole where it
tells it apart from the command's other files (``LinkCommand.data``), ``inputs.load_elfs``
takes those bytes instead of reading the file again, and the link's removal of its earlier
outputs looks again only at the inputs of a size one of them has (an input that is a target
stays: tests/test_link.py's ``test_an_output_that_is_also_an_input_stays_until_it_is_replaced``).
"""
from __future__ import annotations

import shutil

import pytest

from altlink import inputs, linkcmd
from altlink.elf import map_file

pytestmark = pytest.mark.skipif(
    not shutil.which("aarch64-linux-gnu-as"), reason="the AArch64 GNU assembler is not installed")


def _objects(tmp_path):
    from toolchain import run, write

    out = []
    for k in range(3):
        src = write(tmp_path / f"o{k}.S", f".text\n.globl f{k}\nf{k}:\n" + "\tnop\n" * k +
                    "\tret\n")
        obj = tmp_path / f"o{k}.o"
        run(["aarch64-linux-gnu-as", "-o", str(obj), str(src)], cwd=tmp_path)
        out.append(obj)
    return out


def test_inputs_read_once_are_the_files_bytes(tmp_path):
    objs = _objects(tmp_path)
    archive = tmp_path / "lib.a"
    from toolchain import run

    run(["aarch64-linux-gnu-ar", "rcs", str(archive), str(objs[2])], cwd=tmp_path)
    big = tmp_path / "big.o"  # an object of READ_WHOLE_BELOW bytes: mapped later, not kept
    big.write_bytes(objs[0].read_bytes().ljust(linkcmd.READ_WHOLE_BELOW, b"\0"))
    script = tmp_path / "more.ld"
    script.write_text(f"INPUT({objs[1]})\n")
    tiny = tmp_path / "tiny.o"  # 4 bytes: ELF's magic, too short to be kept
    tiny.write_bytes(b"\x7fELF")
    cmd = linkcmd.parse(["ld", str(objs[0]), str(archive), str(big), str(tiny), str(script),
                         str(objs[0]), "-o", "out.elf"])
    assert cmd.inputs == [str(objs[0]), str(archive), str(big), str(tiny), str(objs[0]),
                          str(objs[1])]
    assert cmd.data == {str(objs[0]): objs[0].read_bytes()}  # (not a script's INPUT: kept
    # where the command line names it; the archive, the large and the short file not kept)
    assert linkcmd._read_kind(str(tmp_path)) == (None, None)  # a directory
    assert linkcmd._read_kind(str(tmp_path / "missing.o")) == (None, None)
    for p in (objs[0], archive, big, tiny, script):
        assert linkcmd._read_kind(str(p))[0] == linkcmd._input_kind(str(p))


def test_load_elfs_takes_the_bytes_read(tmp_path, monkeypatch):
    """The ELF files made from the bytes read with the command are those made from the files,
    and those files are not opened again."""
    objs = [str(o) for o in _objects(tmp_path)]
    want = inputs.load_elfs(objs)
    cmd = linkcmd.parse(["ld", *objs, "-o", "out.elf"])
    assert set(cmd.data) == set(objs)
    opened = []

    def counted(path):
        opened.append(path)
        return map_file(path)

    monkeypatch.setattr(inputs.elf, "map_file", counted)
    got = inputs.load_elfs(cmd.inputs, data=cmd.data)
    assert opened == []
    assert [(e.path, bytes(e.data), e.sections) for e in got] == \
        [(e.path, bytes(e.data), e.sections) for e in want]
    inputs.load_elfs(cmd.inputs)
    assert opened == objs
