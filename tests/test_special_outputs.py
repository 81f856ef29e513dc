"""Outputs that are not regular files: ``-o /dev/null`` (a build's probe), a FIFO. The linker
writes into such a file; altlink links into a temporary file elsewhere and then writes the
finished output into it. Renaming it over the target, as a regular output is put in place,
had replaced /dev/null itself with the image (as root: for every program on the machine)."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from test_link import FW_LD, MAIN_S, asm
from toolchain import LDSCRIPTS, altlink, env_without_altlink_vars, write

LD = "aarch64-linux-gnu-ld"
CC = "aarch64-linux-gnu-gcc"


def leftovers(*dirs) -> list[str]:
    return [n for d in dirs for n in os.listdir(d) if n.startswith(".")]


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_an_output_that_is_a_device_stays_the_device(tmp_path):
    """A null device as the image, the map, the manifest and the raw binary: each still the
    device after the link (ld alone writes into it), nothing left beside it."""
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    main = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    p = altlink("link", "--ncaps", "4", "--manifest", null, "--bin", null, "--", LD,
                "-L", LDSCRIPTS, "-T", script, f"-Map={null}", main, "-o", null, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert leftovers(tmp_path) == []


def test_an_output_that_is_a_fifo_gets_the_image(tmp_path):
    """A FIFO as the image: a reader gets the image ld links (as from ld alone), and the FIFO
    is still one."""
    fifo = tmp_path / "image.fifo"
    os.mkfifo(fifo)
    main = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    cmd = [CC, "-nostdlib", "-static", f"-L{LDSCRIPTS}", f"-Wl,-T,{script}", str(main)]
    subprocess.run([*cmd, "-o", tmp_path / "plain.elf"], check=True)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    try:
        p = altlink("link", "--ncaps", "4", "--", *cmd, "-o", fifo, cwd=tmp_path)
        got = reader.communicate(timeout=30)[0]
    finally:
        reader.kill()
        reader.wait()
    assert p.returncode == 0, p.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got == (tmp_path / "plain.elf").read_bytes()
    assert leftovers(tmp_path) == []


def test_an_output_whose_name_is_as_long_as_a_name_can_be(tmp_path):
    """A name of 250 bytes (ld takes up to 255): the temporary files beside it have names that
    fit too (the link failed: "File name too long"), and so do those of its map and manifest;
    so does a name of multibyte characters."""
    main = asm(tmp_path, "main", MAIN_S)
    script = write(tmp_path / "fw.ld", FW_LD)
    for name in ("n" * 250, "é" * 125):
        p = altlink("link", "--ncaps", "4", "--manifest", name[:-5] + ".json", "--", LD,
                    "-L", LDSCRIPTS, "-T", script, f"-Map={name[:-4]}.map", main, "-o", name,
                    cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / name).is_file() and (tmp_path / f"{name[:-4]}.map").is_file()
    assert leftovers(tmp_path) == []


def test_a_temporary_file_for_a_device_goes_where_it_can(tmp_path, monkeypatch):
    # A target that is not a regular file gets its temporary file in $TMPDIR, else /tmp (as
    # the linker's message file does: outputs.temp_dirs gives both the order): a $TMPDIR
    # that cannot take one is passed over, not an error.
    from altlink import outputs

    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    assert outputs.temp_dirs() == [str(tmp_path / "missing"), "/tmp"]
    assert outputs.temp_dirs(str(tmp_path / "out.elf"))[-1] == str(tmp_path)
    keep: list[str] = []
    path = outputs.temp_path("/dev/null", keep=keep)
    try:
        assert os.path.dirname(path) == "/tmp" and keep == [path]
    finally:
        os.remove(path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    path = outputs.temp_path("/dev/null")
    assert os.path.dirname(path) == str(tmp_path)
    # a regular target's stays beside it, whatever $TMPDIR says
    (tmp_path / "d").mkdir()
    path = outputs.temp_path(str(tmp_path / "d" / "x.elf"))
    assert os.path.dirname(path) == str(tmp_path / "d")


def _file_size_limit(size: int):
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return limit


def test_an_output_that_cannot_be_written_is_named_not_a_bug(tmp_path):
    """A manifest or raw binary that the disk will not take (here a file size limit, as a full
    disk or a quota gives): a one-line error naming it, exit 2, no file left behind; before,
    "internal error (a bug in altlink)", exit 4. The image (small) is linked; the manifest of
    300 entries is not."""
    src = "#include <altlink/alternative.h>\n\t.text\n\t.globl _start\n_start:\n" + \
        '\talternative_insn "mov x0, #1", "mov x0, #2", 1\n' * 300 + "\tret\n" + \
        "\t.data\n\t.word 1\n"
    main = asm(tmp_path, "many", src)
    # .data at the next 128 KB: an image of 13 KB (4 KB pages), a raw binary of 128 KB; the
    # manifest is about 100 KB
    script = write(tmp_path / "fw.ld", FW_LD.replace(". = 0x480000;", ". = ALIGN(0x20000);"))
    for option, name in (("--manifest", "fw.json"), ("--bin", "fw.bin")):
        limit = 64 << 10
        argv = [sys.executable, "-m", "altlink", "link", "--no-cache", "--ncaps", "4",
                option, name, "--", LD, "-z", "max-page-size=0x1000", "-L", LDSCRIPTS, "-T",
                script, main, "-o", "fw.elf"]
        p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True,
                           env=env_without_altlink_vars(), preexec_fn=_file_size_limit(limit))
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().splitlines() == [f"{name}: cannot write: File too large"]
        assert not (tmp_path / name).exists() and not (tmp_path / "fw.elf").exists()
        assert leftovers(tmp_path) == []
