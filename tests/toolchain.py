"""The real toolchains the tests build with: GNU (gcc + GNU as + GNU ld) and LLVM (clang + lld)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "altlink" / "include"
LDSCRIPTS = ROOT / "altlink" / "ldscripts"

GNU_CC = ["aarch64-linux-gnu-gcc"]
CLANG_CC = ["clang", "--target=aarch64-linux-gnu"]
GNU_LD = ["aarch64-linux-gnu-ld"]
LLD = ["ld.lld"]
# A linker script for a small static image at 0x400000 with the alternatives fragment (link
# with -L LDSCRIPTS).
SIMPLE_LD = """
ENTRY(_start)
SECTIONS
{
	. = 0x400000;
	.text : { *(.text .text.*) }
	INCLUDE alternatives.ld
	/DISCARD/ : { *(.eh_frame .note.gnu.property) }
}
"""
FREESTANDING = ["-ffreestanding", "-fno-pic", "-fno-stack-protector", "-nostdlib", "-O2"]

TOOLCHAINS = {"gnu": (GNU_CC, GNU_LD), "llvm": (CLANG_CC, LLD)}


class BuildError(Exception):
    def __init__(self, cmd, proc):
        self.cmd, self.stdout, self.stderr, self.returncode = cmd, proc.stdout, proc.stderr, proc.returncode
        super().__init__(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}")


def run(cmd, cwd=None, check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise BuildError(cmd, proc)
    return proc


def run_or_fail(cmd: list[str], what: str | None = None, **kw) -> None:
    """Run a build's step (a configuration, an unpack); a RuntimeError with the end of its
    output where it fails, named ``what`` (else by its command)."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{what or ' '.join(cmd)} failed (exit {p.returncode}):\n"
                           f"{p.stdout[-2000:]}{p.stderr[-3000:]}")


def make_logged(args: list[str], log: Path, what: str, **kw) -> None:
    """Run make with its output into ``log``; a RuntimeError with the log's last 40 lines,
    saying that ``what`` failed, where it fails."""
    with open(log, "w") as f:
        p = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, **kw)
    if p.returncode != 0:
        tail = "".join(log.read_text().splitlines(True)[-40:])
        raise RuntimeError(f"{what} failed:\n{tail}")


def compile(src: Path, out: Path, toolchain: str = "gnu", flags=(), defines=()) -> Path:
    """Compile or assemble one C (.c) or assembly (.S) file to an object with the given toolchain."""
    cc = TOOLCHAINS[toolchain][0]
    cmd = [*cc, *FREESTANDING, f"-I{INCLUDE}", *[f"-D{d}" for d in defines], *flags, "-c", src, "-o", out]
    run(cmd)
    return out


def link(objs, out: Path, toolchain: str = "gnu", script: Path | None = None, flags=()) -> Path:
    ld = TOOLCHAINS[toolchain][1]
    cmd = [*ld, "-static", "-nostdlib", *flags]
    if script is not None:
        cmd += ["-T", script]
    cmd += [*objs, "-o", out]
    run(cmd)
    return out


def qemu(image: Path, *args, timeout: int = 30) -> subprocess.CompletedProcess:
    return run(["qemu-aarch64", image, *args], check=False, timeout=timeout)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# The environment variables the package reads, but for ALTLINK_CACHE_DIR (the record cache,
# which the tests set to the session's own): a user's setting of any changes what altlink does,
# so no test sees them (tests/conftest.py). tests/test_imports.py holds this list to the
# package's sources.
ALTLINK_ENV = ("ALTLINK_ABI", "ALTLINK_CAP_TABLE", "ALTLINK_NCAPS", "ALTLINK_SYMBOLS_FROM",
               "ALTLINK_WERROR", "ALTLINK_MANIFEST", "ALTLINK_LOG", "ALTLINK_CACHE_SIZE",
               "ALTLINK_TRACEBACK", "ALTLINK_NO_SPEEDUPS", "ALTLINK_UNDER")


def env_without_altlink_vars() -> dict:
    """The environment without the user's ALTLINK_* settings; the record cache stays the
    test session's (tests/conftest.py), never the user's."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("ALTLINK_") or k == "ALTLINK_CACHE_DIR"}


def altlink(*args, cwd=None, env: dict | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m altlink ARGS`` as a user runs it, from ``cwd``: this checkout's package, in
    the environment without the user's ALTLINK_* settings, with ``env``'s variables added;
    its output captured as text. (A hang is a failure after ``timeout`` seconds.)"""
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH")]))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "altlink", *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def synthetic_firmware(objects: int = 24):
    """The benchmark's synthetic firmware (``bench/synth.py``), compiled once into bench/out:
    its ``synth.Firmware`` (``dir``, ``objects`` in link order, ``cap_table``, ``ldscript``)."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import synth
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return synth.build(synth.Params(objects=objects), jobs=2,
                       altlink=str(Path(sys.executable).parent / "altlink"))
