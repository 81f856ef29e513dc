"""Trust in altlink's own results and behaviour (issue 15): an internal error has its own exit
status, records are keyed by altlink's own sources and validated when read, and nothing
process-wide is changed under the threads of an ``scons -j`` build."""
from __future__ import annotations

import subprocess
import sys

from toolchain import ROOT, env_without_altlink_vars, write

# A wrapper that breaks one function of the package, then runs the command line as the
# ``altlink`` script does: the error is altlink's own, whatever the input.
BROKEN = """
import sys
import altlink.caps
def broken(table):
    raise TypeError("unexpected shape\\nof a table")
altlink.caps.header = broken
from altlink.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_broken(tmp_path, **env):
    table = write(tmp_path / "caps.txt", "HAS_A\nHAS_B\n")
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    e.pop("ALTLINK_TRACEBACK", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", BROKEN, "caps", str(table)],
                          capture_output=True, text=True, env=e)


def test_an_internal_error_exits_4_with_one_line(tmp_path):
    p = _run_broken(tmp_path)
    assert p.returncode == 4, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("altlink: internal error (a bug in altlink")
    assert "TypeError: unexpected shape\\nof a table" in lines[0]
    assert "Traceback" not in p.stderr
    assert p.stdout == ""


def test_an_internal_error_shows_the_traceback_when_asked(tmp_path):
    p = _run_broken(tmp_path, ALTLINK_TRACEBACK="1")
    assert p.returncode == 4
    assert "Traceback (most recent call last)" in p.stderr
    assert "in broken" in p.stderr
    assert p.stderr.splitlines()[-1].startswith("altlink: internal error")


def test_help_and_readme_give_the_exit_statuses():
    p = subprocess.run([sys.executable, "-m", "altlink", "--help"], capture_output=True,
                       text=True, env={**env_without_altlink_vars(), "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0
    assert "4 altlink's own failure" in p.stdout and "ALTLINK_TRACEBACK=1" in p.stdout
    readme = (ROOT / "README.md").read_text()
    assert "| 4 | altlink's own failure" in readme


def test_fuzz_signature_keeps_the_package_frames_in_a_clone_named_altlink(tmp_path):
    """The fuzz harness names a failure by its deepest frame in the package. A frame of a file
    under some other folder named ``altlink`` (a clone of the repository is one, and holds the
    tests and the harness) is not the package's."""
    from fuzz import fuzz as harness

    from altlink import forkmap

    ns: dict = {}
    exec(compile("def cb(x):\n    raise ValueError(x)\n",
                 str(tmp_path / "altlink" / "tests" / "cb.py"), "exec"), ns)
    try:
        forkmap.fork_map(ns["cb"], [1])  # one share: runs here, calls cb
    except ValueError as e:
        sig = harness._signature(e)
    assert sig.startswith("ValueError at forkmap.py:"), sig
