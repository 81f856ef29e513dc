"""``./run demo``: build the sample firmware through altlink with SCons, show its manifest,
run it under qemu-aarch64."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(cmd: list[str], **kw) -> int:
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, **kw).returncode


def main() -> int:
    step("build the sample firmware with SCons through altlink (gcc + GNU ld, clang + lld)")
    if run([BIN / "scons", "-Q"]) != 0:
        return 1
    image = ROOT / "build" / "gnu" / "fw.elf"
    manifest = ROOT / "build" / "gnu" / "fw.alt.json"
    step("the manifest: every alternative with its site and replacement")
    run([BIN / "altlink", "show", manifest.relative_to(ROOT)])
    step("run it under qemu-aarch64 (nothing patched: every site runs its original code)")
    rc = run(["qemu-aarch64", image.relative_to(ROOT)])
    print(f"(exit status {rc})")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
