"""altlink under a tool's own name (a symbolic link named as the linker or the compiler driver,
first in PATH, as ccache is used): every run of that tool is a run of ``altlink link -- TOOL``,
with the next TOOL in PATH, its options from the environment."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_link import BAD_S, FW_LD, MAIN_S, asm
from toolchain import INCLUDE, LDSCRIPTS, env_without_altlink_vars, write

LD = "aarch64-linux-gnu-ld"
CC = "aarch64-linux-gnu-gcc"
ALTLINK = Path(sys.executable).with_name("altlink")  # the installed command


def masquerade(tmp: Path, *names: str) -> Path:
    d = tmp / "altlink-bin"
    d.mkdir(exist_ok=True)
    for name in names:
        (d / name).symlink_to(ALTLINK)
    return d


def run(argv, cwd: Path, bindir: Path, **env) -> subprocess.CompletedProcess:
    e = env_without_altlink_vars()
    e["PATH"] = f"{bindir}{os.pathsep}{e.get('PATH', os.defpath)}"
    e.update(env)
    return subprocess.run(list(map(str, argv)), cwd=cwd, capture_output=True, text=True, env=e)


def link_argv(tmp: Path, objs, out: str = "fw.elf") -> list:
    return [LD, "-L", LDSCRIPTS, "-T", write(tmp / "fw.ld", FW_LD), *objs, "-o", out]


@pytest.fixture()
def main_obj(tmp_path) -> Path:
    return asm(tmp_path, "main", MAIN_S)


def test_a_link_under_the_linkers_name_is_checked_and_written(tmp_path, main_obj):
    bindir = masquerade(tmp_path, LD)
    caps = write(tmp_path / "caps.txt", "A\nB\nC\nD\n")
    p = run(link_argv(tmp_path, [main_obj]), tmp_path, bindir, ALTLINK_CAP_TABLE=str(caps),
            ALTLINK_MANIFEST=".alt.json", ALTLINK_LOG=str(tmp_path / "log.jsonl"))
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "fw.elf.alt.json").read_text())
    assert m["ncaps"] == 4 and len(m["entries"]) == 3
    # (the log says altlink linked it, with the linker it found after itself in PATH)
    log = json.loads((tmp_path / "log.jsonl").read_text())
    assert log["linked"] and log["entries"] == 3


def test_a_finding_stops_the_link_under_the_linkers_name(tmp_path, main_obj):
    bindir = masquerade(tmp_path, LD)
    bad = asm(tmp_path, "bad", BAD_S)
    p = run(link_argv(tmp_path, [main_obj, bad]), tmp_path, bindir, ALTLINK_NCAPS="4")
    assert p.returncode == 1 and "ALT" in p.stderr
    assert not (tmp_path / "fw.elf").exists()


def test_a_probe_under_the_linkers_name_is_the_linker_unchanged(tmp_path):
    bindir = masquerade(tmp_path, LD)
    bare = subprocess.run([LD, "--version"], capture_output=True, text=True)
    p = run([LD, "--version"], tmp_path, bindir)
    assert (p.returncode, p.stdout, p.stderr) == (0, bare.stdout, bare.stderr)


def test_the_compiler_driver_compiles_unchanged_and_its_links_are_checked(tmp_path):
    """Named as the driver: a compile (no object to link) runs unchanged; the driver's link
    of objects is checked."""
    bindir = masquerade(tmp_path, CC)
    src = write(tmp_path / "main.S", MAIN_S)
    p = run([CC, f"-I{INCLUDE}", "-DALT_NCAPS=4", "-c", src, "-o", "main.o"], tmp_path, bindir,
            ALTLINK_LOG=str(tmp_path / "log.jsonl"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "main.o").exists() and not (tmp_path / "log.jsonl").exists()
    fw_ld = write(tmp_path / "fw.ld", FW_LD)
    p = run([CC, "-nostdlib", "-static", f"-L{LDSCRIPTS}", f"-Wl,-T,{fw_ld}", "main.o",
             "-o", "fw.elf"], tmp_path, bindir, ALTLINK_NCAPS="2",
            ALTLINK_LOG=str(tmp_path / "log.jsonl"))
    assert p.returncode == 1 and "ALT011" in p.stderr  # (caps 2 and 3 with NCAPS 2)
    assert not (tmp_path / "fw.elf").exists()


def test_no_other_tool_of_that_name_is_one_line_and_exit_3(tmp_path):
    bindir = masquerade(tmp_path, "no-such-linker")
    p = run(["no-such-linker", "-o", "x"], tmp_path, bindir)
    assert p.returncode == 3
    assert p.stderr.splitlines() == [
        f"altlink: {bindir / 'no-such-linker'}: altlink runs as no-such-linker and finds no "
        "other no-such-linker in PATH to run"]


def test_a_tool_that_finds_the_linker_in_path_again_gets_the_real_one(tmp_path, main_obj):
    """A wrapper that runs its linker by name through PATH comes back to altlink's link, in
    the environment altlink ran it with: that run is the linker unchanged (no loop, no
    second check of the same link)."""
    bindir = masquerade(tmp_path, LD)
    wrapdir = tmp_path / "wrap"
    wrapper = write(wrapdir / LD, f'#!/bin/sh\necho wrapped >> "{tmp_path}/wrapped"\n'
                    f'exec {LD} "$@"\n')
    wrapper.chmod(0o755)
    e = env_without_altlink_vars()
    path = f"{bindir}{os.pathsep}{wrapdir}{os.pathsep}{e.get('PATH', os.defpath)}"
    p = run(link_argv(tmp_path, [main_obj]), tmp_path, bindir, PATH=path, ALTLINK_NCAPS="4",
            ALTLINK_LOG=str(tmp_path / "log.jsonl"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "wrapped").read_text() == "wrapped\n"
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1  # one link, one check
    assert (tmp_path / "fw.elf").exists()


def test_altlink_as_itself_is_not_a_masquerade(tmp_path):
    p = run([ALTLINK, "--version"], tmp_path, masquerade(tmp_path))
    q = run([sys.executable, "-m", "altlink", "--version"], tmp_path, masquerade(tmp_path))
    assert p.returncode == q.returncode == 0 and p.stdout == q.stdout
    assert p.stdout.startswith("altlink ")


def test_a_compile_under_the_drivers_name_is_handed_over_before_the_command_line(tmp_path):
    """Each compile of a build runs altlink when it is named as the compiler driver: a compile
    (-c, no link) or a probe is handed to the real driver before altlink's command line
    (altlink.cli, the link's modules) is imported; the object is the driver's own."""
    bindir = masquerade(tmp_path, CC)
    src = write(tmp_path / "f.c", "int f(void) { return 1; }\n")
    subprocess.run([CC, "-c", src, "-o", tmp_path / "bare.o"], check=True)
    for args, made in ((["-c", src, "-o", "f.o"], "f.o"), (["--version"], None)):
        p = run([sys.executable, "-X", "importtime", bindir / CC, *args], tmp_path, bindir)
        assert p.returncode == 0, p.stderr
        imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "altlink.masquerade" in imported and "altlink.cli" not in imported, imported
        if made:
            assert (tmp_path / made).read_bytes() == (tmp_path / "bare.o").read_bytes()
