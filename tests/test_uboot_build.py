"""altlink in a firmware build it was not written for (tests/ubootbuild.py): U-Boot 2023.01
for arm64 from Debian bookworm's source, ``qemu_arm64_defconfig``, with
``make LD="altlink link -- aarch64-linux-gnu-ld"`` and no altlink option at all.

U-Boot has no alternatives, so altlink has to stay out of the way: every link U-Boot's
make runs (u-boot, the EFI applications, the standalone example and its ``ld -r``) goes
through altlink and is clean, with a manifest of no entries beside each image; the image is
byte for byte what ld alone links with the same command; and the u-boot.bin made from it
boots under qemu-system-aarch64 to U-Boot's autoboot prompt.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import time

import pytest
import ubootbuild
from toolchain import altlink

# The first use compiles U-Boot (about a minute of CPU on 2 cores; with the download, more).
pytestmark = [pytest.mark.kernel_build, pytest.mark.timeout(1800)]


@pytest.fixture(scope="session")
def uboot_build():
    return ubootbuild.build()


def test_every_link_of_the_u_boot_build_goes_through_altlink_clean(uboot_build):
    log = uboot_build.make_log.read_text()
    said = sorted(re.findall(r"^\s+LD\s+(\S+)$", log, re.M))  # "  LD      u-boot"
    links = uboot_build.links()
    assert sorted(r["output"] for r in links) == said
    assert "u-boot" in said and "examples/standalone/libstubs.o" in said
    assert len(said) >= 8, said
    for r in links:
        assert r["linked"] and r["findings"] == [] and r["errors"] == 0, r
        assert r["objects"] > 0, r  # read and checked, not passed by as a foreign link
        assert r["entries"] == r["image_entries"] == 0, r
    [u_boot] = [r for r in links if r["output"] == "u-boot"]
    assert u_boot["objects"] >= 500  # the thin archives' members, under --whole-archive
    out = uboot_build.out
    m = json.loads((out / "u-boot.alt.json").read_text())
    assert m["entries"] == []
    p = altlink("verify", "u-boot", "u-boot.alt.json", cwd=out)
    assert p.returncode == 0, p.stdout + p.stderr


def _final_link_command(out) -> list[str]:
    """The final link of u-boot as U-Boot's make ran it (``.u-boot.cmd``), without altlink's
    launcher in front."""
    text = (out / ".u-boot.cmd").read_text()
    m = re.match(r"cmd_u-boot := (.*?);\s*true\s*$", text, re.S)
    assert m, text[:300]
    words = shlex.split(m.group(1))
    assert "link" in words and "--" in words, words[:6]  # (through altlink's launcher)
    return words[words.index("--") + 1:]


def test_the_image_is_what_ld_alone_links(uboot_build, tmp_path):
    """altlink's launcher changes nothing in what the linker writes: u-boot's final link
    through altlink (the build's) and through ld alone, in the same directory, with the same
    words, gives the same bytes, and the same link map."""
    out = uboot_build.out
    words = _final_link_command(out)
    assert words[0] == f"{ubootbuild.CROSS}ld"
    i, j = words.index("-o"), words.index("-Map")
    words[i + 1], words[j + 1] = str(tmp_path / "bare"), str(tmp_path / "bare.map")
    p = subprocess.run(words, cwd=out, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "bare").read_bytes() == (out / "u-boot").read_bytes()
    assert (tmp_path / "bare.map").read_text().replace(str(tmp_path / "bare"), "u-boot") == \
        (out / "u-boot.map").read_text()


def test_u_boot_linked_through_altlink_boots(uboot_build, tmp_path):
    """u-boot.bin (objcopy of the image altlink wrote) as the firmware of QEMU's virt
    machine: it prints its banner with the build's date and reaches its autoboot prompt."""
    cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "256",
           "-nographic", "-monitor", "none", "-serial", "stdio", "-net", "none",
           "-bios", str(uboot_build.out / "u-boot.bin")]
    console = tmp_path / "console.log"
    with open(console, "wb") as f:
        q = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and q.poll() is None and \
                    b"Hit any key to stop autoboot" not in console.read_bytes():
                time.sleep(0.2)
        finally:
            q.kill()
            q.wait()
    text = console.read_text(errors="replace")
    assert "Hit any key to stop autoboot" in text, text[-2000:]
    assert "U-Boot 2023.01 (Nov 14 2023 - 22:13:20 +0000)" in text, text[:500]
