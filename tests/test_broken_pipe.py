"""A closed pipe: where the reader of altlink's standard output went away (``altlink ... |
head``), the command ends quietly with status 0, as a filter does; a BrokenPipeError from any
other pipe (a forked copy's that ended, say) is altlink's own failure, never a silent success
that leaves no outputs (a link that asked for its raw binary alone once ended so)."""
from __future__ import annotations

import os
import subprocess
import sys

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
