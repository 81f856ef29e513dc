"""The boot proof: boot a real Linux arm64 kernel (6.1, 6.12) under qemu-system-aarch64, read
its memory once it has applied its alternatives, and compare every alternative site with what
`altlink patch` makes of the same vmlinux offline for the capabilities the kernel detected.

    python3 tests/bootproof.py KBUILD_OUT [CPU ...]     prints the result table

KBUILD_OUT is a kernel build's O= directory (vmlinux, arch/arm64/boot/Image, System.map and
the generated capability header). How it works:

1. Boot ``-M virt -cpu CPU -kernel Image -append "console=ttyAMA0 nokaslr earlycon"`` with a
   QMP socket. The kernel has no root file system: it applies its alternatives (boot ones,
   then the vDSO's and the rest in ``apply_alternatives_all``) and panics in
   ``mount_root``, before ``free_initmem``, so even ``.init.text`` sites are still there.
2. Stop the machine at the panic and save the first 64 MiB of RAM (QMP ``pmemsave``). The
   Image is found in it by its first 64 bytes: its physical load address. With ``nokaslr``
   the kernel runs at its link address, so a virtual address ``va`` of the image is at
   ``load + va - _text``.
3. The kernel's own bitmap of detected capabilities, ``cpu_hwcaps`` (6.12: ``system_cpucaps``;
   System.map), gives the capability set; ``altlink manifest`` (with the generated
   ``cpucaps.h``, 6.12's ``cpucap-defs.h``) and
   ``altlink patch --caps`` that set make the offline image.
4. Every entry's site, the vDSO's too, is compared. ``alt_cb_patch_nops`` depends only on
   the image (it writes NOPs) and is emulated; the other callbacks of Linux arm64 read
   state only the booted kernel has (the SMCCC conduit found in the firmware's device tree,
   the Spectre-v4 mitigation state), so offline they are left as they are and their sites
   are reported by name, identical or not.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from toolchain import altlink

from altlink.patch import LINUX_BOOT_CAPS  # noqa: E402

RAM_BASE = 0x40000000  # QEMU virt
DUMP_SIZE = 64 << 20
PANIC = "Kernel panic - not syncing"
APPLIED = "alternatives: applying system-wide alternatives"
# Callbacks whose result depends only on the image (emulated offline).
IMAGE_ONLY_CALLBACKS = ("alt_cb_patch_nops",)
CPUS = ("max", "cortex-a57", "cortex-a72")
# The kernel's bitmap of the capabilities it detected: Linux 6.1's name, then 6.12's.
CPUCAPS_BITMAPS = ("cpu_hwcaps", "system_cpucaps")
# The generated capability header, under the build's arch/arm64/include/generated/asm: Linux
# 6.1 names it cpucaps.h, 6.12 cpucap-defs.h.
CAP_HEADERS = ("cpucaps.h", "cpucap-defs.h")


@dataclass
class Booted:
    cpu: str
    console: str
    ram: bytes  # RAM from RAM_BASE
    load: int  # physical address of _text

    def read(self, phys: int, size: int) -> bytes:
        off = phys - RAM_BASE
        return self.ram[off:off + size]


@dataclass
class Comparison:
    cpu: str
    caps: list[str]
    compared: int = 0
    identical: int = 0
    static_differ: list[str] = field(default_factory=list)
    image_only_differ: list[str] = field(default_factory=list)
    runtime_callbacks: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (same, n)
    nested_compared: int = 0
    nested_identical: int = 0
    changed: int = 0  # sites the boot changed (booted != the vmlinux file)
    nested_changed: int = 0


def system_map(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.setdefault(parts[2], int(parts[0], 16))
    return out


class _Qmp:
    def __init__(self, path: str, deadline: float) -> None:
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(60)
        self.f = self.sock.makefile("rw")
        self._reply()
        self.cmd("qmp_capabilities")

    def _reply(self) -> dict:
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name: str, **args) -> dict:
        self.f.write(json.dumps({"execute": name, **({"arguments": args} if args else {})})
                     + "\n")
        self.f.flush()
        got = self._reply()
        if "error" in got:
            raise RuntimeError(f"QMP {name}: {got['error']}")
        return got

    def close(self) -> None:
        self.sock.close()


def run_until(cmd: list[str], marker: str, workdir: Path, timeout: float, what: str) -> bytes:
    """Run QEMU (``cmd``, its QMP socket at ``workdir/qmp.sock``, its console into
    ``workdir/console.log``) until the console shows ``marker``, then stop it and return the
    first ``DUMP_SIZE`` bytes of its RAM; ``what`` names the failure when it does not get
    there within ``timeout`` seconds."""
    qmp_path = str(workdir / "qmp.sock")
    console_path = workdir / "console.log"
    dump = workdir / "ram.bin"
    for p in (qmp_path, dump):
        if os.path.exists(p):
            os.unlink(p)
    deadline = time.monotonic() + timeout
    with open(console_path, "wb") as console:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console,
                                stderr=subprocess.STDOUT)
        try:
            qmp = _Qmp(qmp_path, deadline)
            while marker not in console_path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} within {timeout:.0f} s (exit "
                                       f"{proc.poll()}):\n"
                                       + console_path.read_text(errors="replace")[-3000:])
                time.sleep(0.1)
            qmp.cmd("stop")
            qmp.cmd("pmemsave", val=RAM_BASE, size=DUMP_SIZE, filename=str(dump))
            qmp.cmd("quit")
            qmp.close()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ram = dump.read_bytes()
    dump.unlink()
    return ram


def boot(image: Path, cpu: str, workdir: Path, timeout: float = 120) -> Booted:
    """Boot until the kernel panics for want of a root file system; the RAM then."""
    workdir.mkdir(parents=True, exist_ok=True)
    qmp_path = str(workdir / "qmp.sock")
    console_path = workdir / "console.log"
    cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", cpu, "-nographic", "-nic", "none",
           "-kernel", str(image), "-append", "console=ttyAMA0 nokaslr earlycon", "-m", "256",
           "-qmp", f"unix:{qmp_path},server,nowait"]
    ram = run_until(cmd, PANIC, workdir, timeout, f"{cpu}: no panic")
    head = image.read_bytes()[:64]
    at = ram.find(head)
    if at < 0:
        raise RuntimeError(f"{cpu}: the Image is not in the first {DUMP_SIZE >> 20} MiB of RAM")
    return Booted(cpu, console_path.read_text(errors="replace"), ram, RAM_BASE + at)


KEEP_CALLBACKS = """
# The callbacks whose result depends on state only the booted kernel has: left as they are.
def _keep(entry, words, nr_inst):
    return words


CALLBACKS = {name: _keep for name in NAMES}
"""


def compare(out: Path, booted: Booted, workdir: Path) -> Comparison:
    """Patch ``out``'s vmlinux offline for the capabilities ``booted`` detected, and compare
    every site."""
    vmlinux = out / "vmlinux"
    symbols = system_map(out / "System.map")
    text = symbols["_text"]

    def phys(va: int) -> int:
        return booted.load + va - text

    manifest = workdir / "vmlinux.alt.json"
    if not manifest.exists():
        got = altlink("manifest", "--abi", "linux-v6.1", "--cap-table", cap_table(out),
                      vmlinux, "-o", manifest)
        if got.returncode != 0:
            raise RuntimeError(f"altlink manifest: {got.stderr}")
    m = json.loads(manifest.read_text())
    names = m["caps"]
    boot_caps = [n for n, name in names.items() if name in LINUX_BOOT_CAPS]
    ncaps = m["ncaps"]
    bitmap = next(symbols[s] for s in CPUCAPS_BITMAPS if s in symbols)
    words = booted.read(phys(bitmap), (ncaps + 63) // 64 * 8)
    bits = int.from_bytes(words, "little")
    detected = [n for n in range(ncaps) if bits >> n & 1]
    callbacks = sorted({e["callback"]["symbol"] for e in m["entries"]
                        if e["kind"] == "callback"})
    runtime = [c for c in callbacks if c not in IMAGE_ONLY_CALLBACKS]
    keep = workdir / "keep_callbacks.py"
    keep.write_text(f"NAMES = {runtime!r}\n" + KEEP_CALLBACKS)
    patched = workdir / f"vmlinux.{booted.cpu}"
    args = ["patch", vmlinux, "--manifest", manifest, "--caps",
            ",".join(map(str, detected)), "--boot-caps", ",".join(boot_caps), "-o", patched,
            "--callbacks", keep]
    emulate = [c for c in callbacks if c in IMAGE_ONLY_CALLBACKS]
    if emulate:
        args += ["--emulate", ",".join(emulate)]
    got = altlink(*args)
    if got.returncode != 0:
        raise RuntimeError(f"altlink patch: {got.stderr}")
    offline = patched.read_bytes()
    original = vmlinux.read_bytes()
    patched.unlink()
    result = Comparison(booted.cpu, [names[str(n)] for n in detected])
    for e in m["entries"]:
        site = e["site"]
        va, n, off = int(site["address"], 16), site["length"], site["file_offset"]
        live = booted.read(phys(va), n)
        same = live == offline[off:off + n]
        result.compared += 1
        result.identical += same
        result.changed += live != original[off:off + n]
        label = f"entry {e['index']} {site['symbol']} ({e['cap_name']})"
        cb = (e["callback"] or {}).get("symbol")
        if cb in runtime:
            s, k = result.runtime_callbacks.get(cb, (0, 0))
            result.runtime_callbacks[cb] = (s + same, k + 1)
        elif not same:
            (result.image_only_differ if cb else result.static_differ).append(label)
    for nested in m.get("nested") or []:
        for e in nested["entries"]:
            outer = e["site"]["outer"]
            va, n, off = int(outer["address"], 16), e["site"]["length"], outer["file_offset"]
            live = booted.read(phys(va), n)
            same = live == offline[off:off + n]
            result.nested_compared += 1
            result.nested_identical += same
            result.nested_changed += live != original[off:off + n]
            if not same:
                result.static_differ.append(f"{nested['start']} entry {e['index']} "
                                            f"{e['site']['symbol']} ({e['cap_name']})")
    return result


def cap_table(out: Path) -> Path:
    """The build's generated capability header (ARM64_<NAME> n, ARM64_NCAPS)."""
    generated = out / "arch" / "arm64" / "include" / "generated" / "asm"
    return next((generated / h for h in CAP_HEADERS if (generated / h).exists()),
                generated / CAP_HEADERS[0])


def entry_keys(m: dict) -> list[tuple]:
    """What a manifest says the kernel patches: each entry's site, length, capability field
    and replacement or callback, the nested images' included."""
    def key(e: dict, where: str) -> tuple:
        alt = e["replacement"] or e["callback"]
        return (where, e["index"], e["site"]["address"], e["site"]["length"], e["cap_raw"],
                alt["address"])

    return [key(e, "") for e in m["entries"]] + [
        key(e, n["start"]) for n in m.get("nested") or [] for e in n["entries"]]


def row(c: Comparison) -> str:
    runtime = ", ".join(f"{name} ({same} of {n} identical)"
                        for name, (same, n) in sorted(c.runtime_callbacks.items()))
    return (f"| `{c.cpu}` | {len(c.caps)} | {c.compared} | {c.changed} | {c.identical} | "
            f"{c.nested_compared} | {c.nested_changed} | {c.nested_identical} | "
            f"{runtime or 'none'} |")


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    cpus = argv[1:] or list(CPUS)
    with tempfile.TemporaryDirectory() as tmp:
        print("| CPU | capabilities | entries compared | changed by the boot | identical | "
              "vDSO entries | vDSO changed | vDSO identical | callbacks of the running kernel |")
        print("|---|---|---|---|---|---|---|---|---|")
        for cpu in cpus:
            booted = boot(out / "arch" / "arm64" / "boot" / "Image", cpu, Path(tmp) / cpu)
            c = compare(out, booted, Path(tmp))
            print(row(c))
            print(f"<!-- {cpu}: capabilities {', '.join(c.caps)}; static or image-only "
                  f"differences: {c.static_differ + c.image_only_differ} -->")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
