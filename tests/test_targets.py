"""Outputs that would replace one another or an input: refused before anything is written
(exit 2, one line naming the file), the input left as it was. A manifest or raw binary named
as an object of the link used to replace it without a word (exit 0). (The image itself may
replace an input, as lld allows ``-r part.o more.o -o part.o``: the linker has read it first;
tests/test_link.py holds that.)"""
from __future__ import annotations

import subprocess

import pytest
from test_link import FW_LD, MAIN_S, asm
from toolchain import LDSCRIPTS, altlink, write

LD = "aarch64-linux-gnu-ld"
CC = "aarch64-linux-gnu-gcc"


@pytest.fixture()
def fw(tmp_path):
    main = asm(tmp_path, "main", MAIN_S)
    write(tmp_path / "fw.ld", FW_LD)
    return tmp_path, main.name


def _refused(p: subprocess.CompletedProcess, line: str) -> None:
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines() == [line]


@pytest.mark.parametrize("form", ["ld", "driver"])
def test_an_output_named_as_an_input_is_refused(fw, form):
    d, main = fw
    before = (d / main).read_bytes()
    if form == "ld":
        link = [LD, "-L", LDSCRIPTS, "-T", "fw.ld", main]
    else:
        link = [CC, "-nostdlib", "-static", f"-L{LDSCRIPTS}", "-Wl,-T,fw.ld", main]
    for options, out, what, name in (
            (["--manifest", main], "fw.elf", "the manifest", main),
            (["--bin", f"./{main}"], "fw.elf", "the raw binary", f"./{main}"),
            (["--manifest", "fw.ld"], "fw.elf", "the manifest", "fw.ld")):
        p = altlink("link", "--ncaps", "4", *options, "--", *link, "-o", out, cwd=d)
        _refused(p, f"{name}: {what} would replace an input of the link: name another file")
        assert (d / main).read_bytes() == before  # (replaced by the manifest, before)
        assert not (d / "fw.elf").exists()


def test_two_outputs_named_as_one_file_are_refused(fw):
    d, main = fw
    link = [LD, "-L", LDSCRIPTS, "-T", "fw.ld", main]
    p = altlink("link", "--ncaps", "4", "--manifest", "fw.elf", "--", *link, "-o", "fw.elf",
                cwd=d)
    _refused(p, "fw.elf: named as both the image and the manifest: one would replace the "
             "other")
    (d / "sub").mkdir()
    p = altlink("link", "--ncaps", "4", "--manifest", "fw.out", "--bin", "sub/../fw.out",
                "--", *link, "-o", "fw.elf", cwd=d)
    _refused(p, "sub/../fw.out: named as both the manifest and the raw binary: one would "
             "replace the other")
    assert sorted(x.name for x in d.iterdir()) == sorted([main, "main.S", "fw.ld", "sub"])


@pytest.mark.parametrize("spelling", [["-o", "fw.elf"], ["-ofw.elf"], ["--output=fw.elf"]])
def test_the_image_s_own_name_is_not_an_input(fw, spelling):
    # (the output's words are not compared: every spelling of -o links)
    d, main = fw
    p = altlink("link", "--ncaps", "4", "--manifest", "fw.json", "--", LD, "-L", LDSCRIPTS,
                "-T", "fw.ld", main, *spelling, cwd=d)
    assert p.returncode == 0, p.stderr
    assert (d / "fw.elf").is_file() and (d / "fw.json").is_file()


def test_manifest_and_patch_refuse_to_replace_what_they_read(fw):
    d, main = fw
    p = altlink("link", "--ncaps", "4", "--manifest", "fw.json", "--", LD, "-L", LDSCRIPTS,
                "-T", "fw.ld", main, "-o", "fw.elf", cwd=d)
    assert p.returncode == 0, p.stderr
    image, manifest = (d / "fw.elf").read_bytes(), (d / "fw.json").read_bytes()
    _refused(altlink("manifest", "--ncaps", "4", "fw.elf", "-o", "fw.elf", cwd=d),
             "fw.elf: the manifest would replace an input of the command: name another file")
    _refused(altlink("manifest", "--ncaps", "4", "fw.elf", "-o", "m.json", "--compact",
                     "m.json", cwd=d),
             "m.json: named as both the manifest and the compact manifest: one would "
             "replace the other")
    _refused(altlink("patch", "fw.elf", "--manifest", "fw.json", "--caps", "", "-o",
                     "fw.json", cwd=d),
             "fw.json: the patched image would replace an input of the command: name "
             "another file")
    _refused(altlink("patch", "fw.elf", "--manifest", "fw.json", "--caps", "", "-o",
                     "p.elf", "--bin", "fw.elf", cwd=d),
             "fw.elf: the raw binary would replace an input of the command: name another "
             "file")
    assert (d / "fw.elf").read_bytes() == image and (d / "fw.json").read_bytes() == manifest
    # patched in place: the image is both, as asked
    write(d / "cb.py", "def my_cb(entry, words, nr_inst):\n    return words\n")
    p = altlink("patch", "fw.elf", "--manifest", "fw.json", "--caps", "", "--callbacks",
                "cb.py", "-o", "fw.elf", cwd=d)
    assert p.returncode == 0, p.stderr
