"""A real U-Boot build for arm64 (Debian bookworm's u-boot 2023.01 source,
``qemu_arm64_defconfig``) with U-Boot's ``LD`` pointed at altlink's launcher form with no
options at all: ``make LD="altlink link -- aarch64-linux-gnu-ld"``, the one line a user
changes. U-Boot has no alternatives: the build shows that altlink stays out of the way of a
firmware build it was not written for (U-Boot's own Kbuild: ``-pie --gc-sections -Bstatic``,
``-Ttext 0x0`` as two words, thin archives under ``--whole-archive``, ``-L DIR -lgcc`` with
the directory as its own word, a link map, the EFI applications' ``-shared`` links, the
standalone example's ``ld -r`` and final link).

The source is Debian's upstream tarball (``debsource``), downloaded once into
``$ALTLINK_UBOOTBUILD_DIR`` (default ``~/.cache/altlink-tests/u-boot-2023.01``), or taken from
``$ALTLINK_UBOOT_TARBALL``. The tree is unpacked there and built out of tree (``O=``): the
first run compiles U-Boot (about a minute of CPU on 2 cores), every later run removes what the
links made and runs make again, so the links run again through the altlink under test. A file
lock makes the build happen once when several test processes want it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import debsource
from toolchain import make_logged, run_or_fail

# The sha256 of the tarball in the Sources index of Debian bookworm (main), u-boot
# 2023.01+dfsg-2+deb12u3.
TARBALL = debsource.Tarball(
    "u-boot", "u-boot_2023.01+dfsg.orig.tar.xz",
    "e75da6f089d063aaef39a1c17f1631791d87700662624e18de2121fa39a1ed44",
    "u-boot_2023.01*.orig.tar.xz", "ALTLINK_UBOOT_TARBALL")
CROSS = "aarch64-linux-gnu-"
DEFCONFIG = "qemu_arm64_defconfig"
# A fixed build date (U-Boot prints it): the same bytes from every build.
SOURCE_DATE_EPOCH = "1700000000"
# What the links make: removed before each run, so that each link runs again.
LINK_OUTPUTS = ("u-boot", "u-boot.bin", "u-boot-nodtb.bin", "u-boot.map", "u-boot.srec",
                "u-boot.sym", "lib/efi_loader/*.so", "lib/efi_loader/*.efi",
                "lib/efi_selftest/*.so", "lib/efi_selftest/*.efi",
                "examples/standalone/hello_world", "examples/standalone/hello_world.bin",
                "examples/standalone/hello_world.srec", "examples/standalone/libstubs.o",
                "**/*.alt.json")


def base_dir() -> Path:
    env = os.environ.get("ALTLINK_UBOOTBUILD_DIR")
    return Path(env) if env else debsource.cache_dir("u-boot-2023.01")


def altlink_ld() -> str:
    """U-Boot's LD: altlink's launcher in front of the GNU linker, with no option (one string,
    split by make's shell)."""
    return f"{debsource.altlink_command()} link -- {CROSS}ld"


def build_env(log: Path) -> dict:
    return debsource.build_env(log, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)


class UBootBuild:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.src = base / "u-boot-2023.01"  # the tarball's one directory
        self.out = base / "out"
        self.log = base / "links.jsonl"
        self.make_log = base / "make.log"

    def make_args(self, *targets: str, ld: str | None = None) -> list[str]:
        return ["make", "-C", str(self.src), f"O={self.out}", f"CROSS_COMPILE={CROSS}",
                f"LD={ld or altlink_ld()}", f"-j{min(os.cpu_count() or 2, 4)}", *targets]

    def links(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


def configure(ub: UBootBuild) -> None:
    if (ub.out / ".config").exists():
        return
    run_or_fail(["make", "-C", str(ub.src), f"O={ub.out}", f"CROSS_COMPILE={CROSS}",
                 DEFCONFIG], f"U-Boot's {DEFCONFIG}")


def build(base: Path | None = None) -> UBootBuild:
    """U-Boot built (or relinked) through altlink; raises on a failed build, with the end of
    make's output."""
    ub = UBootBuild(base or base_dir())

    def make() -> None:
        debsource.unpack(TARBALL, ub.base, ub.src)
        configure(ub)
        debsource.remove_outputs(ub.out, LINK_OUTPUTS)
        if ub.log.exists():
            ub.log.unlink()
        make_logged(ub.make_args(), ub.make_log, "the U-Boot build through altlink",
                    env=build_env(ub.log))

    debsource.build_once(ub.base, ub.out / "u-boot.bin", make)
    return ub
