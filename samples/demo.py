"""``./run demo``: build the sample firmware through altlink with SCons, show its manifest, then
run it under qemu-aarch64 three ways for one capability set: unpatched, patched at start-up by
the altlink C runtime, and patched offline by ``altlink patch``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CAPS = ["HAS_CRC", "HAS_LSE"]  # the "CPU" of this demo: no HAS_FAST_MUL


def step(title: str, *explanation: str) -> None:
    print(f"\n=== {title}", flush=True)
    for line in explanation:
        print(f"    {line}", flush=True)


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    shown = [c.name if isinstance(c, Path) and c.parent == BIN else str(c) for c in cmd]
    print("$ " + " ".join(shown), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, **kw)


def text_of(cmd: list) -> bytes:
    """The text section the firmware prints with --dump (after patching, if it patches)."""
    out = subprocess.run([str(c) for c in cmd] + ["--dump"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("text "))
    return bytes.fromhex("".join(line.split(" ")[1] for line in lines[start + 1:]))


def main() -> int:
    build = Path("build") / "gnu"
    image, manifest, blob = build / "fw.elf", build / "fw.alt.json", build / "fw.altb"
    patched = Path("build") / "demo" / "fw-patched.elf"

    step("build the sample firmware with SCons through altlink (gcc + GNU ld, clang + lld)",
         "Each build links the firmware with the altlink runtime (altlink/runtime/) and writes",
         "the image (fw.elf), its manifest (fw.alt.json), raw binary (fw.bin) and the compact",
         "manifest the runtime can read (fw.altb).")
    if run([BIN / "scons", "-Q"]).returncode != 0:
        return 1

    step("the manifest: every alternative with its site and replacement")
    run([BIN / "altlink", "show", manifest])

    step(f"1. unpatched: capabilities {' '.join(CAPS)}, but --no-patch",
         "fw_main skips the runtime: every site runs the code it was compiled with.")
    if run(["qemu-aarch64", image, "--no-patch", *CAPS]).returncode != 0:
        return 1

    step(f"2. patched at start-up by the C runtime, for {' '.join(CAPS)}",
         "fw_main calls alt_apply_table() on its own table (__alt_instructions..), with an",
         "mprotect hook that makes the text writable around each write. The sites of HAS_CRC",
         "and HAS_LSE run their replacements (site call's branch re-encoded for the site);",
         "the callback site runs fw_callback's rewrite (linux-v4.17: callbacks always run).")
    if run(["qemu-aarch64", image, *CAPS]).returncode != 0:
        return 1

    step("2b. the same, from the compact manifest",
         "With --blob, fw_main reads fw.altb (openat/read) and calls alt_apply_blob() instead.")
    if run(["qemu-aarch64", image, "--blob", blob, *CAPS]).returncode != 0:
        return 1

    step(f"3. patched offline by altlink patch, for {','.join(CAPS)}",
         "altlink patch applies the manifest to a copy of the image; --emulate runs the image's",
         "own fw_callback in an emulator. The patched image runs with --no-patch: its sites",
         "already hold the replacements.")
    (ROOT / patched.parent).mkdir(parents=True, exist_ok=True)
    if run([BIN / "altlink", "patch", image, "--manifest", manifest, "--caps", ",".join(CAPS),
            "--emulate", "fw_callback", "-o", patched]).returncode != 0:
        return 1
    if run(["qemu-aarch64", patched, "--no-patch"]).returncode != 0:
        return 1

    step("compare: the text after patching, with --dump")
    at_run_time = text_of(["qemu-aarch64", image, *CAPS])
    offline = text_of(["qemu-aarch64", patched, "--no-patch"])
    same = at_run_time == offline and len(offline) > 0
    print(f"    run-time patched and offline patched text ({len(offline)} bytes): "
          f"{'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
