"""The files a linker writes besides the image (a map, a dependency file) are what the linker
alone writes: they name the real output, not the temporary file altlink has the linker write,
and sit where the linker alone would put them (CMake 3.27 and later reads the linker's
dependency file to know when to relink; a map named after the output)."""
from __future__ import annotations

import subprocess

import pytest
from toolchain import altlink, run, write

START_S = """
    .text
    .globl _start
    .type _start, %function
_start: nop
    ret
    .size _start, .-_start
"""


def both(tmp_path, linker: list[str], extra, names: list[str]) -> tuple[dict, dict]:
    """The link through altlink and by the linker alone, each in its own directory with the
    same relative names; each directory's files (``names`` and whatever else is there, less
    the object) as bytes."""
    got = []
    for how in ("alt", "bare"):
        d = tmp_path / how
        (d / "o").mkdir(parents=True)
        (d / "maps").mkdir()
        run(["aarch64-linux-gnu-gcc", "-c", write(d / "start.S", START_S), "-o", d / "start.o"])
        cmd = [*linker, "start.o", *extra]
        p = altlink("link", "--", *cmd, cwd=d) if how == "alt" else \
            subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        got.append({str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*"))
                    if f.is_file() and f.suffix not in (".o", ".S")})
    for n in names:
        assert n in got[1], got[1].keys()
    return got[0], got[1]


@pytest.mark.parametrize("linker", [["aarch64-linux-gnu-ld"], ["ld.lld"],
                                    ["aarch64-linux-gnu-gcc", "-nostdlib", "-static"]])
def test_the_map_and_dependency_file_are_the_linker_s(tmp_path, linker):
    if linker[0].endswith("gcc"):
        extra = ["-o", "o/fw.elf", "-Wl,-Map,o/fw.map,--dependency-file=o/fw.d"]
    else:
        extra = ["-o", "o/fw.elf", "-Map", "o/fw.map", "--dependency-file", "o/fw.d"]
    alt, bare = both(tmp_path, linker, extra, ["o/fw.elf", "o/fw.map", "o/fw.d"])
    assert alt == bare
    assert bare["o/fw.d"].startswith(b"o/fw.elf:")


@pytest.mark.parametrize("how", ["directory", "percent"])
def test_a_map_named_after_the_output_is_where_ld_puts_it(tmp_path, how):
    """GNU ld names the map after the output where ``-Map`` is a directory (``DIR/fw.elf.map``)
    or has a ``%`` (the output's name): there, and nothing else left in the directory."""
    extra = ["-o", "o/fw.elf", "-Map=maps" if how == "directory" else "-Map=%.map"]
    name = "maps/fw.elf.map" if how == "directory" else "o/fw.elf.map"
    alt, bare = both(tmp_path, ["aarch64-linux-gnu-ld"], extra, [name])
    assert alt == bare


def test_the_map_on_the_standard_output_names_the_output(tmp_path):
    """``-M`` (GNU ld's map on the standard output): what ld alone prints."""
    out = []
    for how in ("alt", "bare"):
        d = tmp_path / how
        d.mkdir()
        run(["aarch64-linux-gnu-gcc", "-c", write(d / "start.S", START_S), "-o", d / "start.o"])
        cmd = ["aarch64-linux-gnu-ld", "start.o", "-o", "fw.elf", "-M"]
        p = altlink("link", "--", *cmd, cwd=d) if how == "alt" else \
            subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        out.append(p.stdout)
    assert "OUTPUT(fw.elf elf64-littleaarch64)" in out[1]
    assert out[0] == out[1]


def test_a_failed_link_leaves_the_map_ld_leaves(tmp_path):
    """The linker fails (an undefined reference): its map is left as ld alone leaves it
    (where a memory region overflowed, the map says what filled it), the image is not."""
    got = []
    for how in ("alt", "bare"):
        d = tmp_path / how
        d.mkdir()
        write(d / "u.S", "\t.globl _start\n_start:\tbl nowhere\n")
        run(["aarch64-linux-gnu-gcc", "-c", d / "u.S", "-o", d / "u.o"])
        cmd = ["aarch64-linux-gnu-ld", "u.o", "-o", "fw.elf", "-Map", "fw.map"]
        p = altlink("link", "--", *cmd, cwd=d) if how == "alt" else \
            subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        assert p.returncode == (3 if how == "alt" else 1), p.stderr
        got.append(sorted(f.name for f in d.iterdir()))
        got.append((d / "fw.map").read_bytes())
    assert got[0] == got[2] == ["fw.map", "u.S", "u.o"]
    assert got[1] == got[3]


def test_every_spelling_of_a_side_file_is_redirected():
    from altlink import linkcmd

    argv = ["gcc", "-Map", "a", "-Map=b", "--Map=c", "--dependency-file", "d",
            "--dependency-file=e", "-Wl,--gc-sections,-Map,f,--dependency-file=g",
            "-Xlinker", "-Map", "-Xlinker", "h", "-Xlinker", "-Map=i", "-Map=%.map",
            "-Xlinker", "--no-undefined", "x.o", "-o", "fw.elf"]
    got = linkcmd.retarget_side_files(argv, lambda v: None if "%" in v else "T" + v)
    assert got == ["gcc", "-Map", "Ta", "-Map=Tb", "--Map=Tc", "--dependency-file", "Td",
                   "--dependency-file=Te", "-Wl,--gc-sections,-Map,Tf,--dependency-file=Tg",
                   "-Xlinker", "-Map", "-Xlinker", "Th", "-Xlinker", "-Map=Ti", "-Map=%.map",
                   "-Xlinker", "--no-undefined", "x.o", "-o", "fw.elf"]
