"""A compiler driver's command that compiles sources and links them in one step
(``gcc start.o sites.S main.c -o fw.elf``): their objects exist only inside the driver, so
altlink says that their alternatives are checked in the linked image only; with no object at
all, such a command is a configure step's probe and runs unchanged, unless altlink is asked
for a manifest or raw binary of it, which a probe never asks."""
from __future__ import annotations

import json
import subprocess
import sys

from toolchain import ROOT, qemu, run

FW = ROOT / "samples" / "fw"


def altlink(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "altlink", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True)


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


def test_sources_only_link_through_altlink_where_a_manifest_is_asked_for(tmp_path):
    sources = [FW / "start.S", FW / "sites.S", FW / "main.c",
               ROOT / "altlink" / "runtime" / "alt_runtime.c"]
    cmd = driver(tmp_path, *sources)
    p = altlink("link", "--cap-table", FW / "caps.txt", "--", *cmd, cwd=tmp_path)
    assert (p.returncode, p.stderr) == (0, "")  # a probe's shape: the linker alone
    assert not list(tmp_path.glob("*.json"))
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
