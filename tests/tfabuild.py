"""Real Trusted Firmware-A builds (Debian bookworm's arm-trusted-firmware 2.8.0 source) with
TF-A's ``LD`` pointed at altlink's launcher form and no altlink option, as a user puts it:
``make PLAT=qemu CROSS_COMPILE=aarch64-linux-gnu- LD="altlink link -- aarch64-linux-gnu-ld"``.
TF-A has no alternatives: altlink has to stay out of the way of each link shape TF-A has
(:data:`CONFIGS`): GNU ld with ``--fatal-warnings -O1 --gc-sections``, ``-Map=FILE`` and
``--script`` a linker script TF-A preprocesses from its ``.ld.S``; a PIE BL31 (``-pie
--no-dynamic-linker``); FVP's BL1, BL2, BL31 and the test secure payload BL32, with debug
information; an LTO build, where TF-A links through the gcc driver (``-Wl,--gc-sections``,
``-Wl,-Map=FILE``, ``-Wl,-dT`` and the script as the driver's own word); clang with ld.lld;
and altlink under the linker's name first in ``PATH`` with no ``LD=`` at all.

TF-A 2.8's ``--fatal-warnings`` makes binutils 2.40's warning about its RWX load segments an
error, with or without altlink: ``TF_LDFLAGS=--no-warn-rwx-segments`` in the environment, as
Debian's own package builds it (``-Wl,`` in front where gcc links; ld.lld does not warn).

The source is Debian's upstream tarball (``debsource``), downloaded once into
``$ALTLINK_TFABUILD_DIR`` (default ``~/.cache/altlink-tests/tf-a-2.8.0``), or taken from
``$ALTLINK_TFA_TARBALL``. The tree is unpacked there and each configuration is built out of
tree (``BUILD_BASE=``, one directory each, ``make -j2``): the first run compiles them (about
40 s of CPU), every later run removes what the links made and runs make again, so the links
run again through the altlink under test. A file lock makes the build happen once when
several test processes want it.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import debsource
from toolchain import make_logged

# The sha256 of the tarball in the Sources index of Debian bookworm (main),
# arm-trusted-firmware 2.8.0+dfsg-1.
TARBALL = debsource.Tarball(
    "arm-trusted-firmware", "arm-trusted-firmware_2.8.0+dfsg.orig.tar.xz",
    "a4ecc35e0b893fe8682c075fc1bdb858de87e4cb18fbed9a1597e2c9f6d320de",
    "arm-trusted-firmware_2.8.0*.orig.tar.xz", "ALTLINK_TFA_TARBALL")
CROSS = "aarch64-linux-gnu-"
# A fixed build message (TF-A prints "Built : ..." with the time of each link by default).
TIMESTAMP = '"altlink test build"'
# What the links make (and what TF-A makes of the images): removed before each run.
LINK_OUTPUTS = ("*/*/bl*/bl*.elf", "*/*/bl*/bl*.map", "*/*/bl*/bl*.dump",
                "*/*/bl*/build_message.o", "*/*/bl*.bin", "**/*.alt.json")
# Where altlink's masquerade config finds "the linker": ld's two names, as TF-A's make looks
# for them (it prefers ``${CROSS_COMPILE}ld.bfd`` from PATH where there is one).
PATH_NAMES = (f"{CROSS}ld", f"{CROSS}ld.bfd")


@dataclass(frozen=True)
class Config:
    """One TF-A build: ``name`` (its directory under ``out/``), make's variables, its
    targets, the linker after altlink's ``--`` (None: altlink is found under ld's name in
    PATH, no ``LD=``), the ``TF_LDFLAGS`` of the environment, and the tools it needs."""
    name: str
    make_vars: tuple[str, ...]
    targets: tuple[str, ...]
    linker: str | None
    tf_ldflags: str
    needs: tuple[str, ...] = ()

    @property
    def plat(self) -> str:
        return next(v.split("=", 1)[1] for v in self.make_vars if v.startswith("PLAT="))

    @property
    def images(self) -> tuple[str, ...]:
        """The ELF images the targets link (``bl31`` links ``bl31/bl31.elf``)."""
        return tuple(f"{t}/{t}.elf" for t in self.targets)


RWX = "--no-warn-rwx-segments"
CONFIGS = (
    Config("qemu", ("PLAT=qemu",), ("bl1", "bl2", "bl31"), f"{CROSS}ld", RWX),
    Config("qemu-pie", ("PLAT=qemu", "ENABLE_PIE=1"), ("bl31",), f"{CROSS}ld", RWX),
    Config("fvp", ("PLAT=fvp", "SPD=tspd", "DEBUG=1"), ("bl1", "bl2", "bl31", "bl32"),
           f"{CROSS}ld", RWX),
    Config("qemu-lto", ("PLAT=qemu", "ENABLE_LTO=1"), ("bl1", "bl2", "bl31"), f"{CROSS}gcc",
           f"-Wl,{RWX}"),
    Config("qemu-llvm", ("PLAT=qemu", "CC=clang"), ("bl1", "bl2", "bl31"), "ld.lld", "",
           needs=("clang", "ld.lld", "llvm-ar", "llvm-objcopy", "llvm-objdump")),
    Config("qemu-path", ("PLAT=qemu",), ("bl31",), None, RWX),
)


def base_dir() -> Path:
    env = os.environ.get("ALTLINK_TFABUILD_DIR")
    return Path(env) if env else debsource.cache_dir("tf-a-2.8.0")


def altlink_ld(linker: str, *options: str) -> str:
    """TF-A's LD: altlink's launcher in front of the linker, with no option but ``options``
    (one string, split by make's shell)."""
    return " ".join([debsource.altlink_command(), "link", *options, "--", linker])


def link_commands(make_output: str) -> dict[str, list[str]]:
    """The links in the output of a TF-A make run with V=1, by output: the linker's command
    alone, as altlink ran it (the words after the launcher's ``--``, or the masquerade's
    own: ld.bfd's name)."""
    launcher = f"{debsource.altlink_command()} link "
    found = {}
    for line in make_output.splitlines():
        if line.startswith((launcher, f"{PATH_NAMES[1]} ")) and " -o " in line:
            words = shlex.split(line)
            if line.startswith(launcher):
                words = words[words.index("--") + 1:]
            found[words[words.index("-o") + 1]] = words
    return found


def available(c: Config) -> bool:
    """Whether this machine has what ``c`` needs (the masquerade, an ``altlink`` program)."""
    if c.linker is None and not Path(debsource.altlink_command()).is_file():
        return False
    return all(shutil.which(t) for t in c.needs)


class TfaBuild:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.src = base / "trusted-firmware-a-2.8.0"  # the tarball's one directory
        self.out = base / "out"
        self.log = base / "links.jsonl"
        self.path_bin = base / "path-bin"  # altlink under ld's names (the masquerade)
        self.configs = [c for c in CONFIGS if available(c)]

    def config(self, name: str) -> Config:
        return next(c for c in CONFIGS if c.name == name)

    def build_dir(self, c: Config) -> Path:
        """Where ``c``'s images are (TF-A's ``BUILD_PLAT``)."""
        return self.out / c.name / c.plat / ("debug" if "DEBUG=1" in c.make_vars else "release")

    def make_log(self, c: Config) -> Path:
        return self.base / f"make-{c.name}.log"

    def make_args(self, c: Config, build_base: Path | None = None) -> list[str]:
        ld = [] if c.linker is None else [f"LD={altlink_ld(c.linker)}"]
        return ["make", "-C", str(self.src), f"CROSS_COMPILE={CROSS}", *c.make_vars, *ld,
                f"BUILD_BASE={build_base or self.out / c.name}",
                f"BUILD_MESSAGE_TIMESTAMP={TIMESTAMP}", "V=1", "-j2", *c.targets]

    def env(self, c: Config, log: Path) -> dict:
        env = debsource.build_env(log, TF_LDFLAGS=c.tf_ldflags)
        if c.linker is None:
            env["PATH"] = f"{self.path_bin}{os.pathsep}{env.get('PATH', os.defpath)}"
        return env

    def links(self) -> list[dict]:
        return self.links_in(self.log)

    @staticmethod
    def links_in(log: Path) -> list[dict]:
        """The links an ``ALTLINK_LOG`` file records."""
        return [json.loads(line) for line in log.read_text().splitlines() if line]

    def link_commands(self, c: Config) -> dict[str, list[str]]:
        """The links ``c``'s make ran (its V=1 log): ``link_commands``."""
        return link_commands(self.make_log(c).read_text())


def make_path_bin(tb: TfaBuild) -> None:
    """altlink under ld's two names, for the masquerade config (made again each run: the
    altlink under test is another in each worktree)."""
    tb.path_bin.mkdir(parents=True, exist_ok=True)
    for name in PATH_NAMES:
        link = tb.path_bin / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(debsource.altlink_command())


def build(base: Path | None = None) -> TfaBuild:
    """Every available config built (or relinked) through altlink; raises on a failed build,
    with the end of make's output."""
    tb = TfaBuild(base or base_dir())

    def make() -> None:
        debsource.unpack(TARBALL, tb.base, tb.src)
        make_path_bin(tb)
        if tb.log.exists():
            tb.log.unlink()
        for c in tb.configs:
            debsource.remove_outputs(tb.out / c.name, LINK_OUTPUTS)
            make_logged(tb.make_args(c), tb.make_log(c),
                        f"the TF-A build {c.name!r} through altlink", env=tb.env(c, tb.log))

    debsource.build_once(tb.base, tb.build_dir(CONFIGS[0]) / "bl31.bin", make)
    return tb
