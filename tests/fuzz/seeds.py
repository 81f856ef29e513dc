"""The real inputs the fuzzer mutates, built with the AArch64 toolchain (and taken from the
repository where they exist): objects, an archive, linked images with their manifests and raw
binaries under both table profiles, the sample firmware, and real kernel modules.

Every seed is checked to be clean before it is used, so that a mutation, not the seed, is what
a failure shows.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "tests" / "data" / "kernel"
# Small modules: each fuzz case copies its input, and a smaller file is a faster case.
MODULES = ("crc7.ko", "psnap.ko", "nf_socket_ipv4.ko", "mdio-cavium.ko", "xor.ko")

# The table entries by hand (as the tests write them), so that the seed holds every kind: a
# plain static entry, an outward branch (branch26 fix-up), ADRP+ADD (adrp fix-up), a block
# with an internal branch, and callbacks. CB_PATCH and CB_SPIN are the cap fields of the two
# callback entries (NCAPS under linux-v4.17; 0x8000|cap under linux-v6.1).
SEED_S = r"""
	.macro ent site, repl, cap, olen, alen
	.pushsection .altinstructions, "a"
	.word \site - .
	.word \repl - .
	.hword \cap
	.byte \olen
	.byte \alen
	.popsection
	.endm

	.text
	.balign 4
	.globl _start
	.type _start, %function
_start:
site0:	nop
site1:	nop
site2:	adrp x0, data0
	add x0, x0, :lo12:data0
site3:	nop
	nop
	nop
site4:	nop
#ifdef CB_SPIN
site5:	nop
#endif
	mov x8, #93
	svc #0
	.size _start, . - _start

	.globl target
	.type target, %function
target:	ret
	.size target, . - target

	.globl spin_cb
	.type spin_cb, %function
spin_cb:
	b spin_cb
	.size spin_cb, . - spin_cb

	.pushsection .altinstr_replacement, "ax"
	.balign 4
r0:	mov w0, #1
r1:	b target
r2:	adrp x0, data1
	add x0, x0, :lo12:data1
r3:	mov w0, #1
	b 1f
	mov w0, #2
1:
	.popsection

	ent site0, r0, 0, 4, 4
	ent site1, r1, 1, 4, 4
	ent site2, r2, 2, 8, 8
	ent site3, r3, 3, 12, 12
	ent site4, patch_cb, CB_PATCH, 4, 0
#ifdef CB_SPIN
	ent site5, spin_cb, CB_SPIN, 4, 0
#endif

	.data
	.balign 8
data0:	.quad 1
data1:	.quad 2
"""

# A callback for --emulate: every site word becomes "mov w<same register>, #7".
CB_C = r"""
void patch_cb(void *alt, unsigned *orig, unsigned *upd, int nr)
{
	(void)alt;
	for (int i = 0; i < nr; i++)
		upd[i] = 0x528000e0u | (orig[i] & 0x1fu);
}
"""

CAPS_TXT = "FAST_MUL\nCRC\nLSE\nSPIN\n"

# The fake linker of the link cases: copies the image named by --copy-from= to its -o (the
# option is one altlink's command parser skips), so that a mutated image is what was "linked".
FAKE_LD = """#!/bin/sh
src=; out=
while [ $# -gt 0 ]; do
  case "$1" in
    --copy-from=*) src=${1#--copy-from=} ;;
    -o) shift; out=$1 ;;
  esac
  shift
done
exec cp "$src" "$out"
"""

CC = "aarch64-linux-gnu-gcc"
LD = "aarch64-linux-gnu-ld"
AR = "aarch64-linux-gnu-ar"
FLAGS = ["-ffreestanding", "-fno-pic", "-fno-stack-protector", "-nostdlib", "-O2", "-g"]


@dataclass
class Image:
    """A linked image with its manifest and raw binary, and how to call altlink on it."""

    name: str
    elf: str
    manifest: str
    binary: str
    options: list[str]  # profile options for scan/check/manifest
    callbacks: list[str]  # callback names an --emulate may name
    objects: list[str] = field(default_factory=list)  # what it was linked from
    link_tail: list[str] = field(default_factory=list)  # the linker command's other words


@dataclass
class Seeds:
    dir: str
    images: list[Image]
    objects: list[tuple[str, list[str]]]  # (path, profile options)
    archives: list[tuple[str, list[str]]]
    modules: list[tuple[str, list[str]]]
    blobs: list[str]  # compact manifests
    fake_ld: str
    caps: str


def _run(cmd: list[str], cwd: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"seed build failed: {' '.join(cmd)}:\n{proc.stdout}{proc.stderr}")


def _altlink(args: list[str], cwd: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for k in ("ALTLINK_ABI", "ALTLINK_NCAPS"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-m", "altlink", *args], cwd=cwd,
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"seed build failed: altlink {' '.join(args)}:\n{proc.stdout}"
                           f"{proc.stderr}")


def have_toolchain() -> bool:
    return all(shutil.which(t) for t in (CC, LD, AR))


def build(d: str | os.PathLike, firmware: bool = True) -> Seeds:
    """Build the seeds in directory ``d``; with ``firmware``, also copy the sample firmware
    where it was built (it changes as the sample does: a run that must be repeatable leaves
    it out)."""
    d = str(d)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed.S"), "w") as f:
        f.write(SEED_S)
    with open(os.path.join(d, "cb.c"), "w") as f:
        f.write(CB_C)
    with open(os.path.join(d, "caps.txt"), "w") as f:
        f.write(CAPS_TXT)
    fake = os.path.join(d, "fake-ld")
    with open(fake, "w") as f:
        f.write(FAKE_LD)
    os.chmod(fake, 0o755)
    images: list[Image] = []
    objects: list[tuple[str, list[str]]] = []
    archives: list[tuple[str, list[str]]] = []
    _run([CC, *FLAGS, "-c", "cb.c", "-o", "cb.o"], d)
    _run([AR, "rcsD", "libcb.a", "cb.o"], d)
    _run([AR, "rcsTD", "libthin.a", "cb.o"], d)  # members by path
    profiles = {
        "v417": (["--abi", "linux-v4.17", "--ncaps", "4"], ["-DCB_PATCH=4"], ["patch_cb"]),
        "v61": (["--abi", "linux-v6.1", "--cap-table", os.path.join(d, "caps.txt")],
                ["-DCB_PATCH=0x8002", "-DCB_SPIN=0x8003"], ["patch_cb", "spin_cb"]),
    }
    for name, (opts, defines, cbs) in profiles.items():
        obj = f"seed-{name}.o"
        _run([CC, *FLAGS, *defines, "-c", "seed.S", "-o", obj], d)
        tail = ["-static", "-nostdlib", "-Ttext=0x400000", "-e", "_start", "--build-id=none"]
        _altlink(["link", "-o", f"{name}.elf", "--manifest", f"{name}.alt.json", "--bin",
                  f"{name}.bin", *opts, "--", LD, *tail, obj, "libcb.a", "-o", f"{name}.elf"], d)
        images.append(Image(name, f"{name}.elf", f"{name}.alt.json", f"{name}.bin", opts, cbs,
                            [obj, "libcb.a"], tail))
        objects.append((obj, opts))
        archives.append(("libcb.a", opts))
    if shutil.which("clang"):
        _run(["clang", "--target=aarch64-linux-gnu", *FLAGS, "-DCB_PATCH=4", "-c", "seed.S",
              "-o", "seed-clang.o"], d)
        objects.append(("seed-clang.o", profiles["v417"][0]))
    objects.append(("cb.o", profiles["v417"][0]))
    archives.append(("libthin.a", profiles["v417"][0]))
    blobs = []
    # The sample firmware, where `scons -Q` built it: copied, since other builds replace it.
    for tc in ("gnu", "llvm") if firmware else ():
        src = ROOT / "build" / tc
        if all((src / n).is_file() for n in ("fw.elf", "fw.alt.json", "fw.bin")):
            sub = os.path.join(d, f"fw-{tc}")
            os.makedirs(sub, exist_ok=True)
            for n in ("fw.elf", "fw.alt.json", "fw.bin", "fw.altb"):
                if (src / n).is_file():
                    shutil.copyfile(src / n, os.path.join(sub, n))
            table = ROOT / "samples" / "fw" / "caps.txt"
            opts = ["--cap-table", str(table)] if table.is_file() else []
            images.append(Image(f"fw-{tc}", f"fw-{tc}/fw.elf", f"fw-{tc}/fw.alt.json",
                                f"fw-{tc}/fw.bin", opts, ["fw_callback"]))
            if os.path.isfile(os.path.join(sub, "fw.altb")):
                blobs.append(f"fw-{tc}/fw.altb")
    modules = []
    kopts = ["--abi", "linux-v6.1", "--cap-table", str(KERNEL / "cpucaps")]
    for m in MODULES:
        if (KERNEL / "modules" / m).is_file():
            modules.append((str(KERNEL / "modules" / m), kopts))
    return Seeds(d, images, objects, archives, modules, blobs, fake,
                 os.path.join(d, "caps.txt"))
