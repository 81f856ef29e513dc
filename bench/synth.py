"""The synthetic firmware of the benchmark: thousands of small C and assembly objects full of
alternatives, compiled once by the real AArch64 toolchain and reused.

The objects are cached under ``bench/out/synth-<key>/``, where the key hashes everything the
objects are made from: the generator's parameters, its version, the C header of the package,
the capability table and the compiler's version. A finished cache holds ``objects.txt`` (the
objects in link order) and a ``done`` stamp; a half-built one is made again.

Of every four objects three are C (``ALTERNATIVE`` / ``ALTERNATIVE_CB`` in ``asm``
statements) and one is assembly (``alternative_insn``, ``alternative_if`` ...
``alternative_else`` ... ``alternative_endif``, ``alternative_else_nop_endif``,
``alternative_cb``). About a quarter of the sites are callbacks (to ``bench_cb_*`` in
``base.c``), and about one in ten static replacements branches out of itself (``b`` or ``bl``
to ``bench_out_*``), so that the checks and the manifest have fix-ups to compute. The profile
is ``linux-v4.17`` with Linux 6.1's 85-capability table (``tests/data/kernel/cpucaps``).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
HEADER = os.path.join(ROOT, "altlink", "include", "altlink", "alternative.h")
INCLUDE = os.path.join(ROOT, "altlink", "include")
CAP_TABLE = os.path.join(ROOT, "tests", "data", "kernel", "cpucaps")
LDSCRIPT = os.path.join(HERE, "fw.ld")

# Bump when the generated sources change shape: the cache key includes it.
GENERATOR_VERSION = 1

CC = "aarch64-linux-gnu-gcc"
CFLAGS = ["-O2", "-ffreestanding", "-fno-pic", "-fno-stack-protector", "-fno-builtin",
          "-nostdlib", "-Wall", "-Werror"]
N_CALLBACKS = 8
N_TARGETS = 64


@dataclass(frozen=True)
class Params:
    objects: int = 2000
    sites: int = 20        # alternative sites per object
    seed: int = 1
    asm_every: int = 4     # every n-th object is assembly
    abi: str = "linux-v4.17"


@dataclass(frozen=True)
class Firmware:
    """A finished cache: where everything is."""

    dir: str
    objects: list[str]      # relative to dir, in link order
    cap_table: str
    ldscript: str
    variant_object: str       # the object the relink measurement changes
    variant: tuple[str, str]  # two builds of it that differ in one constant
    entries: int
    callbacks: int
    branches: int


def _caps() -> list[str]:
    with open(CAP_TABLE, encoding="utf-8") as f:
        return [ln.split("#", 1)[0].strip() for ln in f
                if ln.split("#", 1)[0].strip()]


def key(p: Params) -> str:
    h = hashlib.sha256(json.dumps({"params": asdict(p), "version": GENERATOR_VERSION,
                                   "cflags": CFLAGS}, sort_keys=True).encode())
    for path in (HEADER, CAP_TABLE, LDSCRIPT):
        with open(path, "rb") as f:
            h.update(f.read())
    h.update(subprocess.run([CC, "--version"], capture_output=True, check=True).stdout)
    return h.hexdigest()[:12]


# -- sources -----------------------------------------------------------------------------------

_C_HEAD = '#include "caps.h"\n#include <altlink/alternative.h>\n\n'
_S_HEAD = _C_HEAD.replace("\n\n", "\n") + "\t.text\n"


def _c_source(i: int, p: Params, rng: random.Random, caps: list[str], salt: int = 0) -> tuple:
    """One C file: functions of four sites each. Returns (text, callbacks, branches)."""
    lines = [_C_HEAD]
    ncb = nbr = 0
    for f in range((p.sites + 3) // 4):
        n = min(4, p.sites - 4 * f)
        body = []
        for _ in range(n):
            cap = "ALT_CAP_" + rng.choice(caps[2:])
            k = rng.randrange(1, 4000) + salt
            r = rng.random()
            if r < 0.25:
                ncb += 1
                body.append(f'\tasm volatile(ALTERNATIVE_CB("mov %0, %0", '
                            f'bench_cb_{rng.randrange(N_CALLBACKS)}) : "+r"(r));')
            elif r < 0.32:
                nbr += 1
                body.append(f'\tasm volatile(ALTERNATIVE("nop", "b bench_out_'
                            f'{rng.randrange(N_TARGETS)}", {cap}));')
            elif r < 0.35:
                nbr += 1
                body.append(f'\tasm volatile(ALTERNATIVE("nop", "bl bench_out_'
                            f'{rng.randrange(N_TARGETS)}", {cap}) ::: "x30", "memory");')
            elif r < 0.55:
                body.append(f'\tasm volatile(ALTERNATIVE("add %0, %0, #{k % 4096}\\n\\tnop", '
                            f'"mov %0, #{k}\\n\\tadd %0, %0, #1", {cap}) : "+r"(r));')
            else:
                body.append(f'\tasm volatile(ALTERNATIVE("add %0, %0, #{k % 4096}", '
                            f'"sub %0, %0, #{k % 4096}", {cap}) : "+r"(r));')
        lines.append(f"long u{i}_f{f}(long x)\n{{\n\tlong r = x + {salt};\n" + "\n".join(body)
                     + "\n\treturn r;\n}\n\n")
    return "".join(lines), ncb, nbr


def _s_source(i: int, p: Params, rng: random.Random, caps: list[str]) -> tuple:
    """One assembly file: functions of four sites each, in every assembly form."""
    out = [_S_HEAD]
    ncb = nbr = 0
    for f in range((p.sites + 3) // 4):
        n = min(4, p.sites - 4 * f)
        name = f"s{i}_f{f}"
        out.append(f"\t.globl {name}\n\t.type {name}, %function\n\t.balign 4\n{name}:\n")
        for _ in range(n):
            cap = "ALT_CAP_" + rng.choice(caps[2:])
            r = rng.random()
            if r < 0.25:
                ncb += 1
                out.append(f"alternative_cb bench_cb_{rng.randrange(N_CALLBACKS)}\n"
                           "\tmov x2, x2\n\tmov x3, x3\nalternative_cb_end\n")
            elif r < 0.35:
                nbr += 1
                out.append(f"alternative_if {cap}\n\tmov x1, #2\n"
                           f"\tb bench_out_{rng.randrange(N_TARGETS)}\n"
                           "alternative_else\n\tnop\n\tnop\nalternative_endif\n")
            elif r < 0.6:
                out.append(f"alternative_if {cap}\n\tdsb sy\n\tisb\nalternative_else_nop_endif\n")
            elif r < 0.8:
                out.append(f"alternative_if_not {cap}\n\tmov x0, #{rng.randrange(4096)}\n"
                           "alternative_else\n\tmrs x0, tpidr_el2\nalternative_endif\n")
            else:
                out.append(f'alternative_insn "add x0, x0, #1", "sub x0, x0, #1", {cap}\n')
        out.append(f"\tret\n\t.size {name}, . - {name}\n\n")
    return "".join(out), ncb, nbr


def _base_source() -> str:
    cbs = "".join(
        f"void bench_cb_{k}(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, "
        f"int nr_inst)\n{{\n\t(void)alt;\n\tfor (int i = 0; i < nr_inst; i++)\n"
        f"\t\tupdptr[i] = origptr[i] + {k} * 0;\n}}\n\n" for k in range(N_CALLBACKS))
    outs = "".join(f"long bench_out_{k}(long x) {{ return x * {k + 3}; }}\n"
                   for k in range(N_TARGETS))
    decls = "".join(f"alt_callback_fn bench_cb_{k};\n" for k in range(N_CALLBACKS))
    decls += "".join(f"long bench_out_{k}(long x);\n" for k in range(N_TARGETS))
    return _C_HEAD + decls + "\n" + cbs + outs


_START = """\t.section .text.start, "ax"
\t.globl _start
\t.type _start, %function
_start:
\tb .
\t.size _start, . - _start
"""


# -- build -------------------------------------------------------------------------------------

def _compile(src: str, obj: str, cwd: str, abi: str) -> None:
    argv = [CC, *CFLAGS, "-I", ".", "-I", INCLUDE, "-c", src, "-o", obj]
    if abi == "linux-v6.1":
        argv.insert(1, "-DALTLINK_ABI_LINUX_V61")
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)}\n{r.stderr}")


def build(p: Params, jobs: int = 2, altlink: str = "altlink", log=None) -> Firmware:
    """The objects for these parameters: from the cache, or generated and compiled now. One
    process at a time (a file lock): the tests' workers ask for the same firmware at once."""
    d = os.path.join(OUT, f"synth-{key(p)}")
    os.makedirs(OUT, exist_ok=True)
    with open(d + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(d, p, jobs, altlink, log)


def _build(d: str, p: Params, jobs: int, altlink: str, log) -> Firmware:
    meta_path = os.path.join(d, "done")
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        fw = Firmware(d, meta["objects"], meta["cap_table"], meta["ldscript"],
                      meta["variant_object"], tuple(meta["variant"]), meta["entries"],
                      meta["callbacks"], meta["branches"])
        # The relink measurement swaps the variant in: always start from the first build.
        restore(fw)
        return fw
    if os.path.isdir(d):
        shutil.rmtree(d)
    for sub in ("src", "obj", "variant"):
        os.makedirs(os.path.join(d, sub))
    shutil.copyfile(CAP_TABLE, os.path.join(d, "cpucaps"))
    shutil.copyfile(LDSCRIPT, os.path.join(d, "fw.ld"))
    subprocess.run([altlink, "caps", "cpucaps", "-o", "caps.h"], cwd=d, check=True)

    caps = _caps()
    rng = random.Random(p.seed)
    jobs_list: list[tuple[str, str]] = []
    objects: list[str] = []
    entries = callbacks = branches = 0

    def add(name: str, text: str) -> None:
        with open(os.path.join(d, "src", name), "w", encoding="utf-8") as f:
            f.write(text)
        obj = "obj/" + name.rsplit(".", 1)[0] + ".o"
        jobs_list.append(("src/" + name, obj))
        objects.append(obj)

    add("start.S", _START)
    add("base.c", _base_source())
    variant_seed = None
    for i in range(p.objects):
        if i % p.asm_every == p.asm_every - 1:
            text, ncb, nbr = _s_source(i, p, rng, caps)
            add(f"s{i:05d}.S", text)
        else:
            if variant_seed is None:
                variant_seed = (i, rng.getstate())
            text, ncb, nbr = _c_source(i, p, rng, caps)
            add(f"u{i:05d}.c", text)
        entries += p.sites
        callbacks += ncb
        branches += nbr
    # The variant: the first C object with its constants changed (an edit to one file: same
    # sites, one more instruction per function).
    i, state = variant_seed
    vrng = random.Random()
    vrng.setstate(state)
    text, _, _ = _c_source(i, p, vrng, caps, salt=1)
    with open(os.path.join(d, "variant", f"u{i:05d}.c"), "w", encoding="utf-8") as f:
        f.write(text)
    jobs_list.append((f"variant/u{i:05d}.c", "variant/b.o"))
    vobj = f"obj/u{i:05d}.o"

    if log:
        log(f"compiling {len(jobs_list)} sources into {d} ({jobs} jobs) ...")
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        for fut in [ex.submit(_compile, s, o, d, p.abi) for s, o in jobs_list]:
            fut.result()
    shutil.copyfile(os.path.join(d, vobj), os.path.join(d, "variant", "a.o"))
    with open(os.path.join(d, "objects.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(objects) + "\n")
    meta = {"objects": objects, "cap_table": "cpucaps", "ldscript": "fw.ld",
            "variant_object": vobj, "variant": ["variant/a.o", "variant/b.o"],
            "entries": entries,
            "callbacks": callbacks, "branches": branches, "params": asdict(p)}
    with open(meta_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    os.replace(meta_path + ".tmp", meta_path)
    return _build(d, p, jobs, altlink, log)  # (read back as from the cache)


def restore(fw: Firmware) -> None:
    """Put the first build of the variant object back in place."""
    _put(fw, 0)


def swap(fw: Firmware, k: int) -> None:
    """Put build ``k % 2`` of the variant object in place: one object changed."""
    _put(fw, k % 2)


def _put(fw: Firmware, k: int) -> None:
    """Build ``k`` of the variant object in place, renamed over it (a link reading the
    objects meanwhile, another test's, never sees it half written), where it is not already."""
    src, dst = os.path.join(fw.dir, fw.variant[k]), os.path.join(fw.dir, fw.variant_object)
    with open(src, "rb") as f:
        want = f.read()
    try:
        with open(dst, "rb") as f:
            if f.read() == want:
                return
    except OSError:
        pass
    tmp = f"{dst}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(want)
    os.replace(tmp, dst)


SCONSTRUCT = '''# The benchmark's link: the same objects, linker, flags and script through Program and
# through AltProgram. Written by bench/synth.py; only targets named on the command line build.
import os

import altlink.scons_tool

objs = [File(x) for x in open("objects.txt").read().split()]
env = Environment(tools=["default", "altlink"], toolpath=[altlink.scons_tool.TOOLPATH],
                  LINK="aarch64-linux-gnu-ld", ENV={"PATH": os.environ["PATH"]})
env.Append(LINKFLAGS=["-static", "--build-id=none"])
env["ALTLINK_LDSCRIPT"] = File("fw.ld")
env["ALTLINK_CAP_TABLE"] = File("cpucaps")
env["ALTLINK_ABI"] = ABI

plain = env.Program("plain.elf", objs,
                    LINKFLAGS=env["LINKFLAGS"] + ["-L" + altlink.scons_tool.LDSCRIPT_DIR,
                                                  "-T", "fw.ld"])
env.Depends(plain, "fw.ld")
alt = env.AltProgram("alt.elf", objs)
Default(None)
'''


def write_sconstruct(fw: Firmware, abi: str) -> str:
    path = os.path.join(fw.dir, "SConstruct")
    text = SCONSTRUCT.replace("ABI\n", f"{abi!r}\n")
    if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return path
