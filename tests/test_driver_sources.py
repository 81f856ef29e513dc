"""A compiler driver's command that compiles sources and links them in one step
(``gcc start.o sites.S main.c -o fw.elf``): their objects exist only inside the driver, so
altlink says that their alternatives are checked in the linked image only; with no object at
all (a configure step's probe looks so too), such a command runs unchanged and its image is
checked after it, unless altlink is asked for a manifest or raw binary of it, which a probe
never asks: then it is linked as any link."""
from __future__ import annotations

import json
import subprocess
import sys

from toolchain import ROOT, altlink, qemu, run

FW = ROOT / "samples" / "fw"


def driver(tmp_path, *sources) -> list[str]:
    """The sample firmware's link by the gcc driver, ``sources`` compiled by it."""
    paths = dict(line.split("\t") for line in altlink("paths", cwd=tmp_path).stdout.splitlines())
    run([sys.executable, "-m", "altlink", "caps", FW / "caps.txt", "-o", tmp_path / "caps.h"])
    return ["aarch64-linux-gnu-gcc", "-ffreestanding", "-fno-pic", "-fno-stack-protector",
            "-fno-builtin", "-nostdlib", "-static", "-O2", f"-I{tmp_path}",
            f"-I{paths['include']}", f"-I{paths['runtime']}", f"-I{FW}",
            "-Wl,--build-id=none", f"-L{paths['ldscripts']}", f"-T{FW}/fw.ld", *sources,
            "-o", "fw.elf"]


def test_sources_the_driver_compiles_are_named_in_a_note(tmp_path):
    run(["aarch64-linux-gnu-gcc", "-c", FW / "start.S", "-o", tmp_path / "start.o"])
    cmd = driver(tmp_path, "start.o", FW / "sites.S", FW / "main.c",
                 ROOT / "altlink" / "runtime" / "alt_runtime.c")
    p = altlink("link", "--cap-table", FW / "caps.txt", "--manifest", "fw.json", "--", *cmd,
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr == (
        f"{FW / 'sites.S'}: note: this source, and 2 more ({FW / 'main.c'}, "
        f"{ROOT / 'altlink' / 'runtime' / 'alt_runtime.c'}), compiled by the link's own "
        "command: their alternatives are checked only in the linked image, not before the "
        "link as objects' are; compile to objects first for every check\n")
    assert len(json.loads((tmp_path / "fw.json").read_text())["entries"]) >= 6
    assert qemu(tmp_path / "fw.elf", "HAS_LSE").returncode == 0


SOURCES = [FW / "start.S", FW / "sites.S", FW / "main.c",
           ROOT / "altlink" / "runtime" / "alt_runtime.c"]


def test_sources_only_link_runs_unchanged_and_its_image_is_checked(tmp_path):
    """No object at all (``gcc start.S main.c -o fw.elf``, which a configure step's probe
    looks like too): the command runs unchanged, then its image is checked; findings at error
    severity remove it (exit 1)."""
    cmd = driver(tmp_path, *SOURCES)
    p = altlink("link", "--cap-table", FW / "caps.txt", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr.startswith(f"{FW / 'start.S'}: note: this source, and 3 more")
    assert "error" not in p.stderr and not list(tmp_path.glob("*.json"))
    assert qemu(tmp_path / "fw.elf", "HAS_LSE").returncode == 0
    small = tmp_path / "small.txt"
    small.write_text("HAS_FAST_MUL\n")
    p = altlink("link", "--cap-table", small, "--", *cmd, cwd=tmp_path)
    assert p.returncode == 1 and "fw.elf: error: ALT011: " in p.stderr, p.stderr
    assert not (tmp_path / "fw.elf").exists()


def test_a_probe_of_sources_alone_is_the_driver_unchanged(tmp_path):
    """A configure step's probe: a program without alternatives, compiled and linked in one
    command, and a compile alone (-c): each exactly as the driver alone runs it (nothing
    said, its output as made)."""
    (tmp_path / "probe.c").write_text("void _start(void) { for (;;); }\n")
    for extra, out in (([], "probe"), (["-c"], "probe.o")):
        cmd = ["aarch64-linux-gnu-gcc", "-nostdlib", "-static", *extra, "probe.c", "-o", out]
        bare = subprocess.run([*cmd[:-1], "bare-" + out], cwd=tmp_path, capture_output=True,
                              text=True)
        p = altlink("link", "--cap-table", FW / "caps.txt", "--", *cmd, cwd=tmp_path)
        assert (p.returncode, p.stdout, p.stderr) == (bare.returncode, bare.stdout, bare.stderr)
        assert (tmp_path / out).read_bytes() == (tmp_path / ("bare-" + out)).read_bytes()


def test_sources_only_link_through_altlink_where_a_manifest_is_asked_for(tmp_path):
    cmd = driver(tmp_path, *SOURCES)
    p = altlink("link", "--cap-table", FW / "caps.txt", "--manifest", "fw.json", "--bin",
                "fw.bin", "--", *cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr.startswith(f"{FW / 'start.S'}: note: this source, and 3 more")
    m = json.loads((tmp_path / "fw.json").read_text())
    assert len(m["entries"]) >= 6 and (tmp_path / "fw.bin").stat().st_size > 0


def test_a_host_program_is_no_aarch64_image(tmp_path):
    """A manifest asked of a host program (gcc's): exit 2, naming the output, and nothing
    written."""
    (tmp_path / "m.c").write_text("int main(void) { return 0; }\n")
    p = altlink("link", "--manifest", "m.json", "--", "gcc", "m.c", "-o", "m", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr == "m: ELF machine 62 is not AArch64 (183)\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.c"]
