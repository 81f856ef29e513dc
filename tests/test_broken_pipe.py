"""A closed pipe: where the reader of altlink's standard output went away (``altlink ... |
head``), the command ends quietly with status 0, as a filter does; a BrokenPipeError from any
other pipe (a forked copy's that ended, say) is altlink's own failure, never a silent success
that leaves no outputs (a link that asked for its raw binary alone once ended so); and a link
whose linker's map cannot be passed on fails, as the linker alone would."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from altlink import cli
from altlink.cli import EXIT_INTERNAL


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("words", [["check", "--help"], ["--version"], ["caps", "--help"]])
def test_a_reader_that_went_away(words, buffered):
    """The output written as the command ends (argparse's help: in the buffer until the end,
    where the standard output is a pipe and Python's own buffering is on) or at once."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    p = subprocess.Popen([sys.executable, "-m", "altlink", *words], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # (before altlink writes)
    err = p.stderr.read()
    assert p.wait() == 0 and err == b""


def test_another_pipe_is_a_failure(monkeypatch, capsys):
    def broken(args, out):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "check", broken)
    assert cli.main(["check", "x.o"]) == EXIT_INTERNAL
    assert "internal error" in capsys.readouterr().err


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-ld"), reason="no AArch64 binutils")
def test_a_link_whose_map_cannot_be_written(tmp_path):
    """A link whose linker prints its map (``-M``) to a standard output whose reader went
    away fails, as ld alone does (it dies of SIGPIPE): no image, no manifest, one line; not
    a quiet success that wrote nothing."""
    from toolchain import LDSCRIPTS, env_without_altlink_vars, synthetic_firmware

    fw = synthetic_firmware()
    d = Path(fw.dir)
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-m", "altlink", "link", "-o", str(out / "fw.elf"), "--manifest",
         str(out / "fw.json"), "--abi", "linux-v4.17", "--cap-table", str(d / fw.cap_table),
         "--no-cache", "--", "aarch64-linux-gnu-ld", "-M", "-static", "--build-id=none",
         "-L", str(LDSCRIPTS), "-T", str(d / fw.ldscript),
         *(str(d / o) for o in fw.objects), "-o", str(out / "fw.elf")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_without_altlink_vars())
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait() == 2, err
    assert "its reader went away" in err and len(err.splitlines()) == 1
    assert sorted(os.listdir(out)) == []


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-ld"), reason="no AArch64 binutils")
def test_a_link_whose_messages_cannot_be_written(tmp_path):
    """The same where the linker's messages (a warning: an executable stack) go to a standard
    error whose reader went away (``2>&1 | head``): a failure, not an image-less success."""
    from toolchain import env_without_altlink_vars

    src = tmp_path / "x.S"
    src.write_text("\t.globl _start\n_start:\tret\n")
    obj = tmp_path / "x.o"
    subprocess.run(["aarch64-linux-gnu-gcc", "-c", str(src), "-o", str(obj)], check=True)
    out = tmp_path / "out"
    out.mkdir()
    r, w = os.pipe()
    os.close(r)
    p = subprocess.run([sys.executable, "-m", "altlink", "link", "-o", str(out / "x.elf"),
                        "--abi", "linux-v4.17", "--ncaps", "4", "--no-cache", "--",
                        "aarch64-linux-gnu-ld", "-z", "execstack", "--warn-execstack",
                        str(obj), "-o", str(out / "x.elf")],
                       stdout=w, stderr=w, env=env_without_altlink_vars())
    os.close(w)
    assert p.returncode == 2
    assert sorted(os.listdir(out)) == []
