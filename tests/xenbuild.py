"""A real Xen hypervisor build for arm64 (Debian bookworm's xen 4.17 source), with Xen's ``LD``
pointed at altlink's launcher form: every partial link (``ld -r`` of each directory's
built_in.o, prelink.o) and the three final links of xen-syms go through altlink.

Xen's arm code has its own copy of the alternatives (``xen/arch/arm/alternative.c``): the
table is laid out as Linux's, callbacks are marked by ``cpufeature == ARM_NCAPS``, as the
``linux-v4.17`` profile reads them, and the linker script merges the table into
``.init.data`` between ``__alt_instructions`` and ``__alt_instructions_end``. Its patcher
re-encodes only the immediate branches: the ``xen-v4.17`` profile.

The source is Debian's upstream tarball (:data:`TARBALL`, checked against the sha256 that
Debian's signed Sources index gives it), downloaded once into ``$ALTLINK_XENBUILD_DIR``
(default ``~/.cache/altlink-tests/xen-4.17``), or taken from ``$ALTLINK_XEN_TARBALL``. When
that version has left the archive (a point release replaces it), apt fetches bookworm's
current xen source instead, with a sources list of its own in that directory: apt checks the
index's signature with Debian's keyring and the tarball against the index. The unpacked
tree is kept there and built in place: the first run compiles the hypervisor (about half a
minute on 2 cores), every later run removes what the links made and runs make again, so the
links run again through the altlink under test. A file lock makes the build happen once when
several test processes want it.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import debsource
from toolchain import make_logged, run_or_fail

VERSION = "4.17.5+72-g01140da4e8"
# The sha256 of the tarball in the Sources index of Debian bookworm (main), xen 4.17.5+72-
# g01140da4e8-1.
TARBALL = debsource.Tarball(
    "xen", f"xen_{VERSION}.orig.tar.xz",
    "53922f4d0a02c577f2ea9d63f65989cd88715779eebeed879ca1d314103ee06e",
    "xen_4.17.*.orig.tar.xz", "ALTLINK_XEN_TARBALL")
CROSS = "aarch64-linux-gnu-"
CPUFEATURE_H = "xen/arch/arm/include/asm/cpufeature.h"
MAKE_VARS = ("XEN_TARGET_ARCH=arm64", f"CROSS_COMPILE={CROSS}")

# What the links make: removed before each run, so that each link runs again.
LINK_OUTPUTS = ("**/built_in.o", "**/built_in_bin.o", "common/libfdt/libfdt-temp.o",
                "prelink.o", "xen-syms", "xen-syms.map", "xen", "**/*.alt.json")


def base_dir() -> Path:
    env = os.environ.get("ALTLINK_XENBUILD_DIR")
    if env:
        return Path(env)
    return debsource.cache_dir("xen-4.17")


def ncaps(src: Path) -> int:
    """ARM_NCAPS as Xen's own header defines it."""
    text = (src / CPUFEATURE_H).read_text()
    m = re.search(r"^#define ARM_NCAPS\s+(\d+)\s*$", text, re.M)
    if not m:
        raise RuntimeError(f"{src / CPUFEATURE_H}: no '#define ARM_NCAPS N' line")
    return int(m.group(1))


def cap_names(src: Path) -> list[str]:
    """The capability names, numbered as Xen's header numbers them (0 .. ARM_NCAPS - 1)."""
    n = ncaps(src)
    text = (src / CPUFEATURE_H).read_text()
    found = {int(v): k for k, v in re.findall(r"^#define ([A-Z0-9_]+)\s+(\d+)\s*$", text, re.M)
             if k != "ARM_NCAPS" and int(v) < n}
    if sorted(found) != list(range(n)):
        raise RuntimeError(f"{src / CPUFEATURE_H}: capabilities 0..{n - 1} not all defined")
    return [found[i] for i in range(n)]


def altlink_ld(n: int) -> str:
    """Xen's LD: altlink's launcher in front of the GNU linker (one string, split by make's
    shell), as the README gives it."""
    return f"{debsource.altlink_command()} link --abi xen-v4.17 --ncaps {n} -- {CROSS}ld"


def build_env(log: Path) -> dict:
    return debsource.build_env(log)


class XenBuild:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.src = base / "xen-4.17"  # the tarball's one directory, whatever its version
        self.xen = self.src / "xen"
        self.log = base / "links.jsonl"
        self.make_log = base / "make.log"

    @property
    def ncaps(self) -> int:
        return ncaps(self.src)

    def make_args(self, *targets: str, ld: str | None = None, src: Path | None = None
                  ) -> list[str]:
        return ["make", "-C", str((src or self.src) / "xen"), *MAKE_VARS,
                f"LD={ld or altlink_ld(self.ncaps)}", f"-j{min(os.cpu_count() or 2, 4)}",
                *targets]

    def links(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


def configure(xb: XenBuild) -> None:
    if (xb.xen / ".config").exists():
        return
    run_or_fail(["make", "-C", str(xb.xen), *MAKE_VARS, "defconfig"], "Xen's defconfig")


def remove_link_outputs(xen: Path) -> None:
    debsource.remove_outputs(xen, LINK_OUTPUTS)


def build(base: Path | None = None) -> XenBuild:
    """The hypervisor built (or relinked) through altlink; raises on a failed build, with the
    end of make's output."""
    xb = XenBuild(base or base_dir())

    def make() -> None:
        debsource.unpack(TARBALL, xb.base, xb.src)
        configure(xb)
        remove_link_outputs(xb.xen)
        if xb.log.exists():
            xb.log.unlink()
        make_logged(xb.make_args(), xb.make_log, "the Xen build through altlink",
                    env=build_env(xb.log))

    debsource.build_once(xb.base, xb.xen / "xen-syms", make)
    return xb


# --- the boot: Xen under qemu-system-aarch64, stopped once it has patched itself -------------

RAM_BASE = 0x40000000  # QEMU virt (bootproof.run_until saves the RAM from there)
DUMP_SIZE = 64 << 20
PATCHING = re.compile(r"alternatives: Patching with alt table ([0-9a-f]+) -> ([0-9a-f]+)")
# Xen prints this after the panic it reaches for want of a dom0 kernel, well after
# apply_alternatives_all(), and waits five seconds before it resets.
STOP_AT = "Reboot in five seconds"


class Booted:
    def __init__(self, console: str, ram: bytes, load: int) -> None:
        self.console, self.ram, self.load = console, ram, load

    def read(self, phys: int, size: int) -> bytes:
        return self.ram[phys - RAM_BASE:phys - RAM_BASE + size]


def boot(image: Path, workdir: Path, cpu: str = "cortex-a57", timeout: float = 120) -> Booted:
    """Boot Xen (EL2: ``virtualization=on``) with a dom0 module that is no kernel, so that
    Xen reads its command line (``bootargs``: it logs at INFO, where it says where its
    table is), applies its alternatives, and panics creating dom0; then save the RAM."""
    from bootproof import run_until

    workdir.mkdir(parents=True, exist_ok=True)
    qmp_path, console_path = str(workdir / "qmp.sock"), workdir / "console.log"
    not_a_kernel = workdir / "not-a-kernel"
    not_a_kernel.write_bytes(bytes(4096))
    cmd = ["qemu-system-aarch64", "-M", "virt,virtualization=on,gic-version=3", "-cpu", cpu,
           "-m", "256", "-smp", "1", "-nographic", "-nic", "none", "-no-reboot",
           "-kernel", str(image),
           "-append", "loglvl=all console=dtuart dtuart=/pl011@9000000",
           "-device", f"guest-loader,addr=0x49000000,kernel={not_a_kernel},"
           "bootargs=console=hvc0",
           "-qmp", f"unix:{qmp_path},server,nowait"]
    ram = run_until(cmd, STOP_AT, workdir, timeout, f"{cpu}: Xen did not reach its dom0 panic")
    at = ram.find(image.read_bytes()[:64])
    if at < 0:
        raise RuntimeError(f"{cpu}: Xen's image is not in the first {DUMP_SIZE >> 20} MiB")
    return Booted(console_path.read_text(errors="replace"), ram, RAM_BASE + at)
