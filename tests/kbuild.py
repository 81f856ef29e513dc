"""Real Linux arm64 builds from Debian's linux-source-6.1 and linux-source-6.12, with Kbuild's
``LD`` pointed at altlink's launcher form: every link of vmlinux, the vDSO and the modules goes
through altlink.

Each source is unpacked once and the build directory is kept between runs (Linux 6.1 under
``$ALTLINK_KBUILD_DIR``, default ``~/.cache/altlink-tests/linux-6.1``; Linux 6.12 under
``$ALTLINK_KBUILD612_DIR``, default beside the 6.1 one with ``-6.12`` added to its name), so
that only the first run compiles the kernel (minutes on 2 cores). Every run then removes what
the links made and builds again: the links, and only the links, run again through the altlink
under test. A file lock makes the build happen once when several test processes
(pytest-xdist) want it.

The configuration is ``tinyconfig`` plus :data:`CONFIG` (say it in the README), the same for
both versions: a serial console for the boot proof and modules whose code has alternatives.

Two toolchains (:data:`TOOLCHAINS`), each its own build directory from the one source tree:
``gnu`` (gcc, GNU as and ld, ``CROSS_COMPILE=aarch64-linux-gnu-``) and ``llvm`` (``LLVM=1``:
clang with its integrated assembler, ld.lld, llvm-ar/nm/objcopy), the two Linux supports.
:data:`BUILDS` are the builds the tests make: Linux 6.1 with both, Linux 6.12 with ``gnu``;
``llvm-lto`` (``llvm`` with ThinLTO) is built by tests/test_kbuild_lto.py alone.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from toolchain import make_logged, run_or_fail

ROOT = Path(__file__).resolve().parent.parent
CROSS = "aarch64-linux-gnu-"


@dataclass(frozen=True)
class Linux:
    """One kernel version the tests build: Debian's ``linux-source-<version>``."""

    version: str
    # The generated capability header (``--cap-table``), relative to the O= directory:
    # ``cpucaps.h`` in Linux 6.1, ``cpucap-defs.h`` in 6.12 (where asm/cpucaps.h is a header
    # of C code).
    cap_header: str
    toolchains: tuple[str, ...]
    # The modules of CONFIG with alternatives in their code (6.12 has no test_user_copy: it
    # became a KUnit test).
    modules: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"linux-source-{self.version}"

    @property
    def tarball(self) -> Path:
        return Path(f"/usr/src/{self.name}.tar.xz")


def skip_without_source(kernel: Linux) -> None:
    """Skip a test of a later kernel whose source apt could not install (./run adds Debian's
    security suite, where linux-source-6.12 is, to a system whose sources lack it; a machine
    that cannot reach it has no 6.12). Linux 6.1's source is never optional."""
    if kernel is not LINUX_61 and not kernel.tarball.exists():
        import pytest

        pytest.skip(f"{kernel.tarball} is missing: apt could not install {kernel.name} "
                    "(Debian's bookworm-security suite)")


LINUX_61 = Linux("6.1", "arch/arm64/include/generated/asm/cpucaps.h", ("gnu", "llvm"),
                 ("loop.ko", "lkdtm.ko", "test_user_copy.ko", "test_module.ko"))
LINUX_612 = Linux("6.12", "arch/arm64/include/generated/asm/cpucap-defs.h", ("gnu",),
                  ("loop.ko", "lkdtm.ko", "test_module.ko"))
KERNELS = (LINUX_61, LINUX_612)

# On top of tinyconfig: modules, a PL011 console (qemu's virt machine), modules with
# alternatives (uaccess, barriers, LSE atomics): loop, lkdtm, test_user_copy, test_module; and
# the link shape of a distribution's or defconfig's kernel: a relocatable (-pie) vmlinux with
# KASLR, linked three times for kallsyms, versioned modules with PLTs, pseudo-NMI (the
# interrupt masking sites), jump labels; and KVM, whose hypervisor objects (linked by ld -r,
# their symbols prefixed __kvm_nvhe_ by objcopy) have alternatives whose callbacks only
# vmlinux.lds defines (__kvm_nvhe_kvm_update_va_mask = kvm_update_va_mask;); and EFI, whose
# stub's objects objcopy also prefixes (__efistub_), as every distribution's kernel has them.
CONFIG = """
CONFIG_MODULES=y
CONFIG_MODULE_UNLOAD=y
CONFIG_MODVERSIONS=y
CONFIG_ARM64_MODULE_PLTS=y
CONFIG_RELOCATABLE=y
CONFIG_RANDOMIZE_BASE=y
CONFIG_KALLSYMS=y
CONFIG_KALLSYMS_ALL=y
CONFIG_ARM64_PSEUDO_NMI=y
CONFIG_JUMP_LABEL=y
CONFIG_PRINTK=y
CONFIG_TTY=y
CONFIG_SERIAL_AMBA_PL011=y
CONFIG_SERIAL_AMBA_PL011_CONSOLE=y
CONFIG_SERIAL_EARLYCON=y
CONFIG_DEBUG_FS=y
CONFIG_RUNTIME_TESTING_MENU=y
CONFIG_DEBUG_KERNEL=y
CONFIG_FUTEX=y
CONFIG_BLOCK=y
CONFIG_BLK_DEV=y
CONFIG_BLK_DEV_LOOP=m
CONFIG_LKDTM=m
CONFIG_TEST_LKM=m
CONFIG_TEST_USER_COPY=m
CONFIG_VIRTUALIZATION=y
CONFIG_KVM=y
CONFIG_EFI=y
"""

# What the links make: removed before each run so that every link runs again.
LINK_OUTPUTS = ("vmlinux", "vmlinux.o", "vmlinux.alt.json", ".tmp_vmlinux*", "System.map",
                "arch/arm64/boot/Image", "arch/arm64/kernel/vdso/vdso.so*",
                "arch/arm64/kernel/vdso-wrap.o", "**/*.ko", "**/*.ko.alt.json")


TOOLCHAINS = ("gnu", "llvm")
# The builds the tests make: (kernel, toolchain); Linux 6.12 with the GNU toolchain only, to
# keep CI's time.
BUILDS = tuple((k, t) for k in KERNELS for t in k.toolchains)


def build_id(build: tuple[Linux, str]) -> str:
    """A build's name in test ids: ``6.1-gnu``."""
    kernel, toolchain = build
    return f"{kernel.version}-{toolchain}"
# What make is told to use each toolchain, and the linker altlink runs for it.
_TOOLCHAIN_ARGS = {"gnu": [f"CROSS_COMPILE={CROSS}"], "llvm": ["LLVM=1"],
                   "llvm-lto": ["LLVM=1"]}
_LINKER = {"gnu": f"{CROSS}ld", "llvm": "ld.lld", "llvm-lto": "ld.lld"}

# ``llvm-lto``: the llvm build with ThinLTO (tests/test_kbuild_lto.py, not one of BUILDS):
# every object is LLVM bitcode, and vmlinux.o and the modules are made by lld's LTO.
LTO_CONFIG = """
# CONFIG_LTO_NONE is not set
CONFIG_LTO_CLANG_THIN=y
"""


def config_of(toolchain: str) -> str:
    """The configuration fragment on top of tinyconfig for a build with ``toolchain``."""
    return CONFIG + LTO_CONFIG if toolchain == "llvm-lto" else CONFIG


def base_dir(toolchain: str = "gnu", kernel: Linux = LINUX_61) -> Path:
    """The build's directory: ``$ALTLINK_KBUILD_DIR`` (the 6.1 gnu build; the llvm build
    beside it, with ``-llvm`` added to the name), else under the user's cache; Linux 6.12's
    is ``$ALTLINK_KBUILD612_DIR``, else beside the 6.1 one with ``-6.12`` added."""
    env = os.environ.get("ALTLINK_KBUILD_DIR")
    if env:
        base = Path(env)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                  ".cache")
        base = Path(cache) / "altlink-tests" / "linux-6.1"
    if kernel is not LINUX_61:
        env = os.environ.get("ALTLINK_KBUILD" + kernel.version.replace(".", "") + "_DIR")
        base = Path(env) if env else base.with_name(f"{base.name}-{kernel.version}")
    return base if toolchain == "gnu" else base.with_name(f"{base.name}-{toolchain}")


def altlink_ld(toolchain: str = "gnu", kernel: Linux = LINUX_61) -> str:
    """Kbuild's LD: altlink's launcher in front of the toolchain's linker (one string, split
    by make's shell)."""
    exe = Path(sys.executable).with_name("altlink")
    cmd = str(exe) if exe.exists() else f"{sys.executable} -m altlink"
    return (f"{cmd} link --abi linux-v6.1 --cap-table {kernel.cap_header} -- "
            f"{_LINKER[toolchain]}")


def make_args(out: Path, *targets: str, ld: str | None = None, toolchain: str = "gnu",
              kernel: Linux = LINUX_61) -> list[str]:
    return ["make", f"O={out}", "ARCH=arm64", *_TOOLCHAIN_ARGS[toolchain],
            f"LD={ld or altlink_ld(toolchain, kernel)}", f"-j{os.cpu_count() or 2}", *targets]


def build_env(log: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTLINK_")
           or k == "ALTLINK_CACHE_DIR"}
    env.update(ALTLINK_MANIFEST=".alt.json", ALTLINK_LOG=str(log), KBUILD_BUILD_TIMESTAMP="0",
               KBUILD_BUILD_USER="altlink", KBUILD_BUILD_HOST="test")
    return env


class KernelBuild:
    def __init__(self, base: Path, toolchain: str = "gnu", kernel: Linux = LINUX_61) -> None:
        self.base = base
        self.toolchain = toolchain
        self.kernel = kernel
        self.src = base / kernel.name
        self.out = base / "out"
        self.log = base / "links.jsonl"
        self.make_log = base / "make.log"

    @property
    def cap_header(self) -> Path:
        return self.out / self.kernel.cap_header

    def make_args(self, *targets: str, ld: str | None = None) -> list[str]:
        return make_args(self.out, *targets, ld=ld, toolchain=self.toolchain,
                         kernel=self.kernel)

    def links(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


def unpack(base: Path, kernel: Linux = LINUX_61) -> Path:
    src = base / kernel.name
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "unpack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _unpack(src, kernel)


def _unpack(src: Path, kernel: Linux) -> Path:
    if (src / "Makefile").exists():
        return src
    if not kernel.tarball.exists():
        raise RuntimeError(f"{kernel.tarball} is missing: apt-get install {kernel.name}")
    tmp = src.with_name("unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(kernel.tarball), "-C", str(tmp)], check=True)
    (tmp / kernel.name).rename(src)
    shutil.rmtree(tmp)
    return src


def configure(kb: KernelBuild) -> None:
    frag = kb.base / "altlink.config"
    config = config_of(kb.toolchain)
    if (kb.out / ".config").exists() and frag.exists() and frag.read_text() == config:
        return
    kb.out.mkdir(parents=True, exist_ok=True)
    frag.write_text(config)
    # Kconfig records the compiler and linker it saw (CONFIG_CC_IS_CLANG, CONFIG_LD_IS_LLD).
    plain = ["make", f"O={kb.out}", "ARCH=arm64", *_TOOLCHAIN_ARGS[kb.toolchain]]
    for cmd in ([*plain, "tinyconfig"],
                [str(kb.src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(kb.out),
                 str(kb.out / ".config"), str(frag)],
                [*plain, "olddefconfig"]):
        run_or_fail(cmd, cwd=kb.src)


def remove_link_outputs(out: Path) -> None:
    for pattern in LINK_OUTPUTS:
        for p in out.glob(pattern):
            if p.is_file():
                p.unlink()
    # A module of several objects is first a partial link (ld -r) of them: foo.o from the
    # objects its foo.mod lists.
    for mod in out.glob("**/*.mod"):
        if len(mod.read_text().split()) > 1:
            mod.with_suffix(".o").unlink(missing_ok=True)


def build(base: Path | None = None, toolchain: str = "gnu",
          kernel: Linux = LINUX_61) -> KernelBuild:
    """``kernel`` built (or relinked) through altlink with ``toolchain``; raises on a failed
    build, with the end of make's output."""
    kb = KernelBuild(base or base_dir(toolchain, kernel), toolchain, kernel)
    kb.base.mkdir(parents=True, exist_ok=True)
    with open(kb.base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = kb.base / "built-by"
        # One build per test run: the workers of one pytest-xdist run share its id.
        me = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid {os.getpid()}"
        if stamp.exists() and stamp.read_text() == me and (kb.out / "vmlinux").exists():
            return kb  # this test run's build, made by another worker
        if toolchain == "gnu":
            unpack(kb.base, kernel)
        elif not kb.src.is_symlink():  # one source tree for both builds (O= builds)
            kb.src.symlink_to(unpack(base_dir("gnu", kernel), kernel))
        configure(kb)
        remove_link_outputs(kb.out)
        if kb.log.exists():
            kb.log.unlink()
        make_logged(kb.make_args("Image", "modules"), kb.make_log,
                    f"the Linux {kernel.version} {toolchain} build through altlink", cwd=kb.src,
                    env=build_env(kb.log))
        stamp.write_text(me)
        return kb
