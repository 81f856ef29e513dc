"""Packaging: ``pip install`` of the project prints no setuptools warnings (a first ``./run``
printed some 220 lines of them), and the wheel carries every data file the commands read."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

from toolchain import ROOT

DATA = ["altlink/include/altlink/alternative.h", "altlink/ldscripts/alternatives.ld",
        "altlink/runtime/alt_runtime.c", "altlink/runtime/alt_runtime.h",
        "altlink/schema/manifest.schema.json", "altlink/site_tools/altlink.py",
        "altlink/docs/codes/ALT001.md", "altlink/docs/codes/ALT018.md"]


def _copy(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "setup.py"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "altlink", src / "altlink",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


def _pip_quietly(*args):
    proc = subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "-q",
                           "--disable-pip-version-check"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    # pip's own notes about this machine's index settings are not the project's
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines()
             if ln.strip() and "is ignored: it is neither a file nor a directory" not in ln]
    assert lines == []


def test_an_editable_install_is_quiet(tmp_path):
    """What ``./run`` does (``pip install -e``), into a prefix of its own."""
    # --ignore-installed: else pip first uninstalls the altlink of the running environment
    _pip_quietly("install", "-e", str(_copy(tmp_path)), "--prefix", str(tmp_path / "prefix"),
                 "--ignore-installed")
    assert list((tmp_path / "prefix").rglob("__editable__.altlink-*.pth"))


def test_the_wheel_builds_quietly_with_its_data(tmp_path):
    _pip_quietly("wheel", "-w", str(tmp_path / "dist"), str(_copy(tmp_path)))
    _installed_explain_works(tmp_path)
    (wheel,) = (tmp_path / "dist").glob("altlink-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [d for d in DATA if d not in names]
    assert missing == []


def _installed_explain_works(tmp_path):
    """``altlink explain`` from the installed wheel, away from the repository."""
    (wheel,) = (tmp_path / "dist").glob("altlink-*.whl")
    _pip_quietly("install", "--target", str(tmp_path / "site"), str(wheel))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run([sys.executable, "-c", "import altlink; print(altlink.__file__)"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.stdout.startswith(str(tmp_path / "site")), proc
    proc = subprocess.run([sys.executable, "-m", "altlink", "explain", "alt013"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (ROOT / "altlink" / "docs" / "codes" / "ALT013.md").read_text()
