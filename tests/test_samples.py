"""The make, CMake and Meson samples (samples/make, samples/cmake, samples/meson): the sample
firmware built by plain make and by CMake, every link through altlink's launcher form, and by
Meson with altlink under the compiler driver's name; each run under qemu-aarch64."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from toolchain import ROOT, env_without_altlink_vars, qemu

SAMPLES = ROOT / "samples"


def build_env() -> dict:
    env = env_without_altlink_vars()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the altlink under test
    return env


def run_fw(image: Path, *caps: str) -> dict[str, str]:
    p = qemu(image, *caps)
    assert p.returncode == 0, p.stdout + p.stderr
    return dict(line.split(": ", 1) for line in p.stdout.splitlines() if line.startswith("site "))


@pytest.mark.parametrize("abi", ["linux-v4.17", "linux-v6.1"])
def test_make_sample_builds_through_altlink_and_runs(tmp_path, abi):
    out = tmp_path / "build"
    p = subprocess.run(["make", "-C", SAMPLES / "make", f"O={out}", f"ALTLINK_ABI={abi}"],
                       capture_output=True, text=True, env=build_env())
    assert p.returncode == 0, p.stdout + p.stderr
    assert "altlink link --abi" in p.stdout  # the link make ran was altlink's
    m = json.loads((out / "fw.elf.alt.json").read_text())
    assert m["abi"] == abi and len(m["entries"]) >= 6
    sites = run_fw(out / "fw.elf", "HAS_CRC")
    assert sites["site crc"] == "patched" and sites["site mul"] == "original"
    # Nothing to do the second time: make's own dependency tracking.
    again = subprocess.run(["make", "-C", SAMPLES / "make", f"O={out}", f"ALTLINK_ABI={abi}"],
                           capture_output=True, text=True, env=build_env())
    assert "altlink link" not in again.stdout


def test_make_sample_fails_the_build_and_leaves_no_image(tmp_path):
    """A capability table smaller than the objects use: the link fails (ALT011) with make's
    own error, and there is no fw.elf to flash."""
    out = tmp_path / "build"
    small = tmp_path / "caps.txt"
    small.write_text("HAS_FAST_MUL\n")
    ld = f"altlink link --cap-table {small} -- aarch64-linux-gnu-ld"
    p = subprocess.run(["make", "-C", SAMPLES / "make", f"O={out}", f"LD={ld}"],
                       capture_output=True, text=True, env=build_env())
    assert p.returncode != 0
    assert "error: ALT011" in p.stderr
    assert not (out / "fw.elf").exists() and not (out / "fw.elf.alt.json").exists()


@pytest.mark.parametrize("toolchain, script_option, generator", [
    ("aarch64-none.cmake", "-Wl,-T,", "Unix Makefiles"),
    ("aarch64-clang.cmake", "-Xlinker -T -Xlinker ", "Ninja")])
def test_cmake_sample_builds_through_the_linker_launcher_and_runs(tmp_path, toolchain,
                                                                  script_option, generator):
    """gcc and GNU ld with make, clang and ld.lld with Ninja: CMake's LINKER: options reach
    the linker as each compiler passes them on (clang: an option and its value in two
    -Xlinker)."""
    out = tmp_path / "build"
    env = build_env()
    p = subprocess.run(["cmake", "-G", generator, "-S", SAMPLES / "cmake", "-B", out,
                        "--toolchain", SAMPLES / "cmake" / toolchain],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run(["cmake", "--build", out, "--verbose"], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "altlink link --abi linux-v4.17" in p.stdout  # CMake ran the launcher
    assert script_option + str(SAMPLES / "cmake" / ".." / "fw" / "fw.ld") in p.stdout
    m = json.loads((out / "fw.elf.alt.json").read_text())
    assert len(m["entries"]) >= 6
    sites = run_fw(out / "fw.elf", "HAS_LSE")
    assert sites["site call"] == "patched" and sites["site crc"] == "original"


def meson_env(tmp_path: Path, **altlink_vars: str) -> dict:
    """The environment of a Meson build with altlink under the compiler driver's name, first
    in PATH (Meson has no linker launcher), and its options."""
    bindir = tmp_path / "altlink-bin"
    bindir.mkdir(exist_ok=True)
    if not (bindir / "aarch64-linux-gnu-gcc").exists():
        (bindir / "aarch64-linux-gnu-gcc").symlink_to(Path(sys.executable).with_name("altlink"))
    env = build_env()
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    env.update(altlink_vars)
    return env


def meson(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([Path(sys.executable).with_name("meson"), *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_meson_sample_builds_with_altlink_under_the_drivers_name_and_runs(tmp_path):
    """Meson links with the compiler driver it found at setup: altlink named as that driver,
    first in PATH, runs each compile unchanged and checks each link, with nothing about
    altlink in the build's own files but its paths. The configure step's probes (a sanity
    program compiled and linked in one command) run unchanged."""
    out, log = tmp_path / "build", tmp_path / "links.jsonl"
    env = meson_env(tmp_path, ALTLINK_CAP_TABLE=str(SAMPLES / "fw" / "caps.txt"),
                    ALTLINK_MANIFEST=".alt.json", ALTLINK_LOG=str(log))
    p = meson(env, "setup", "--cross-file", SAMPLES / "meson" / "aarch64.ini", out,
              SAMPLES / "meson")
    assert p.returncode == 0, p.stdout + p.stderr
    assert not log.exists()  # (its probes ran unchanged: nothing linked through altlink)
    p = meson(env, "compile", "-C", out)
    assert p.returncode == 0, p.stdout + p.stderr
    links = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["output"], r["entries"], r["errors"]) for r in links] == [("fw.elf", 6, 0)]
    assert len(json.loads((out / "fw.elf.alt.json").read_text())["entries"]) == 6
    sites = run_fw(out / "fw.elf", "HAS_CRC")
    assert sites["site crc"] == "patched" and sites["site mul"] == "original"


def test_meson_sample_fails_the_build_and_leaves_no_image(tmp_path):
    small = tmp_path / "caps.txt"
    small.write_text("HAS_FAST_MUL\n")
    out = tmp_path / "build"
    env = meson_env(tmp_path, ALTLINK_CAP_TABLE=str(small))
    p = meson(env, "setup", "--cross-file", SAMPLES / "meson" / "aarch64.ini", out,
              SAMPLES / "meson")
    assert p.returncode == 0, p.stdout + p.stderr
    p = meson(env, "compile", "-C", out)
    assert p.returncode != 0
    assert "error: ALT011" in p.stdout + p.stderr
    assert not (out / "fw.elf").exists()


def test_paths_point_at_what_the_package_ships():
    p = subprocess.run([sys.executable, "-m", "altlink", "paths"], capture_output=True,
                       text=True)
    dirs = dict(line.split("\t") for line in p.stdout.splitlines())
    assert (Path(dirs["include"]) / "altlink" / "alternative.h").is_file()
    assert (Path(dirs["ldscripts"]) / "alternatives.ld").is_file()
    assert (Path(dirs["runtime"]) / "alt_runtime.c").is_file()
    one = subprocess.run([sys.executable, "-m", "altlink", "paths", "--runtime"],
                         capture_output=True, text=True)
    assert one.stdout == dirs["runtime"] + "\n"
