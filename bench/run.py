#!/usr/bin/env python3
"""altlink's benchmarks: each altlink figure beside a reference measured in the same run.

    .venv/bin/python bench/run.py [--quick] [--objects N] [--kernel DIR] [--reps N]
                                  [--profile] [--wait-load L] [--write docs/performance.md]

Not part of the test suite (STYLE: speed is measured here, never asserted in a test). It
prints a Markdown report on stdout; ``--write FILE`` also puts it, without the profiles, into
FILE between the ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` markers (the text around
them is kept). The first run compiles the synthetic firmware into ``bench/out/`` (2,000
objects: about a minute on 2 CPUs); later runs reuse it. A full run then takes 3 to 5 minutes.

What it measures, on the same files, each command several times (``--reps``, 5; 3 with
``--quick``), altlink and its reference interleaved so that a change in the load of this shared
machine hits both alike; the figures are the best wall time (and the median), the CPU time
(user + system, of the process and the children it waited for) and the peak RSS (``wait4``):

- ``altlink check --abi linux-v6.1 --symbols-from vmlinux`` over every module of the real
  kernel, against ``readelf -W -r -x .altinstructions`` over the same modules (as xargs would
  run it: as few processes as the command line allows);
- ``altlink manifest --abi linux-v6.1`` of the real vmlinux, against ``readelf -W -x
  .altinstructions`` of it;
- a link of the synthetic firmware (``bench/synth.py``) by ``scons -Q alt.elf`` (AltProgram)
  against ``scons -Q plain.elf`` (Program): same objects, linker, flags and linker script, the
  same SConstruct, objects built before, the image deleted before each run;
- the same relink after one object changed (to see the effect of any caching);
- ``altlink link`` against the bare linker, without SCons;
- ``altlink check`` over the synthetic objects against readelf over them;
- ``altlink --version``: the interpreter's start-up and the CLI's imports, the floor of every
  altlink command.

The kernel comes from ``--kernel DIR`` or ``tools/fetch_kernel.py --offline``; without one its
rows are skipped. ``--profile`` adds a cProfile summary (top 20 by own time) of each altlink
command that misses its target.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import pstats
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import synth  # noqa: E402

BIN = os.path.dirname(os.path.abspath(sys.executable))
PYTHON = sys.executable
ALTLINK = os.path.join(BIN, "altlink")
SCONS = os.path.join(BIN, "scons")
READELF = "aarch64-linux-gnu-readelf"
LD = "aarch64-linux-gnu-ld"
OUT = synth.OUT
ARG_LIMIT = 128 * 1024  # GNU xargs' default buffer: what `xargs readelf ...` would pass

# Python's compiled bytecode is kept, as an installed package has it (this machine sets
# PYTHONDONTWRITEBYTECODE, which would make every altlink run compile its modules again); in
# bench/out, so that nothing is written into the package.
PYCACHE = os.path.join(OUT, "pycache")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = PYCACHE


# -- one timed run -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float     # user + system of the process and the children it waited for
    rss_kb: int    # peak resident set of the largest of them
    rc: int


def run_once(argv: list[str], cwd: str | None = None, stdout=subprocess.DEVNULL,
             stderr=subprocess.DEVNULL) -> Sample:
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, stdout=stdout, stderr=stderr, env=ENV)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return Sample(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, p.returncode)


@dataclass
class Job:
    """A command to time: one process, or several run one after the other (xargs batches)."""

    name: str
    argvs: list[list[str]]
    cwd: str | None = None
    prepare: Callable[[], None] | None = None  # before each run, not timed
    ok_rcs: tuple[int, ...] = (0,)

    def run(self) -> Sample:
        if self.prepare:
            self.prepare()
        t0 = time.perf_counter()
        samples = [run_once(a, self.cwd) for a in self.argvs]
        wall = time.perf_counter() - t0
        return Sample(wall, sum(s.cpu for s in samples), max(s.rss_kb for s in samples),
                      max(s.rc for s in samples))

    def check(self) -> str | None:
        """One run with the output kept: None when it succeeded, else what went wrong."""
        if self.prepare:
            self.prepare()
        for a in self.argvs:
            with tempfile.TemporaryFile() as out:
                s = run_once(a, self.cwd, stdout=out, stderr=subprocess.STDOUT)
                if s.rc not in self.ok_rcs:
                    out.seek(0)
                    text = out.read().decode("utf-8", "replace").strip().splitlines()
                    return f"exit {s.rc}: " + (text[0][:200] if text else "(no output)")
        return None


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(s.wall for s in self.samples)

    @property
    def median(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def cpu(self) -> float:
        return min(s.cpu for s in self.samples)

    @property
    def rss_mb(self) -> float:
        return max(s.rss_kb for s in self.samples) / 1024


def batches(prefix: list[str], files: list[str], limit: int = ARG_LIMIT) -> list[list[str]]:
    """``prefix + files`` split as xargs splits it: as few commands as fit ``limit`` bytes."""
    out, cur, size = [], [], sum(len(a) + 1 for a in prefix)
    for f in files:
        if cur and size + len(f) + 1 > limit:
            out.append(prefix + cur)
            cur, size = [], sum(len(a) + 1 for a in prefix)
        cur.append(f)
        size += len(f) + 1
    if cur:
        out.append(prefix + cur)
    return out


# -- rows ----------------------------------------------------------------------------------------

@dataclass
class Row:
    title: str
    subject: Job
    reference: Job | None
    target: str                                   # as the report prints it
    meets: Callable[[Series, Series | None], bool] | None = None
    profile_argv: list[str] | None = None         # altlink's arguments, for --profile
    profile_cwd: str | None = None
    before_rep: Callable[[int], None] | None = None
    note: str = ""
    s: Series = field(default_factory=Series)
    r: Series = field(default_factory=Series)
    error: str | None = None
    load: float = 0.0                             # the highest 1-minute load seen during it

    def measure(self, reps: int, log) -> None:
        jobs = [self.subject] + ([self.reference] if self.reference else [])
        for j in jobs:  # a first run: warms the page cache, and must succeed
            problem = j.check()
            if problem:
                self.error = f"{j.name}: {problem}"
                log(f"  {self.title}: {self.error}")
                return
        for k in range(reps):
            if self.before_rep:
                self.before_rep(k)
            order = jobs if k % 2 == 0 else jobs[::-1]
            for j in order:
                sample = j.run()
                (self.s if j is self.subject else self.r).samples.append(sample)
            self.load = max(self.load, os.getloadavg()[0])
        log(f"  {self.title}: {self.s.best:.3f} s" +
            (f" vs {self.r.best:.3f} s" if self.reference else ""))

    def met(self) -> bool | None:
        if self.error or self.meets is None or not self.s.samples:
            return None
        return self.meets(self.s, self.r if self.reference else None)


def ratio(s: Series, r: Series) -> float:
    return s.best / r.best if r.best > 0 else float("inf")


# -- machine facts ---------------------------------------------------------------------------------

def _first_line(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def _git() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "altlink"], cwd=ROOT,
                           capture_output=True, text=True).stdout.splitlines()
    return f"{head}" + (f" with uncommitted changes to {len(dirty)} paths under altlink/"
                        if dirty else "")


def machine_facts() -> dict:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import SCons

    import altlink
    return {
        "cpus": cpus, "cpu_model": model, "load_start": os.getloadavg(),
        "python": platform.python_version(), "system": f"{platform.system()} "
        f"{platform.release()} {platform.machine()}",
        "ld": _first_line([LD, "--version"]), "readelf": _first_line([READELF, "--version"]),
        "scons": SCons.__version__, "altlink": altlink.__version__, "git": _git(),
    }


def load_verdict(load: float, cpus: int) -> str:
    if load >= cpus:
        return "HIGH: the machine was busy, every figure is pessimistic"
    if load >= cpus / 2:
        return "moderate"
    return "low"


def wait_for_load(limit: float, max_wait: float, log) -> None:
    t0 = time.time()
    while os.getloadavg()[0] > limit and time.time() - t0 < max_wait:
        log(f"load {os.getloadavg()[0]:.2f} > {limit}: waiting ...")
        time.sleep(30)


# -- the kernel ------------------------------------------------------------------------------------

def find_kernel(given: str | None) -> str | None:
    if given:
        return given
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fetch_kernel.py"),
                        "--offline", "-q"], capture_output=True, text=True)
    d = r.stdout.strip()
    return d if r.returncode == 0 and d and os.path.isdir(d) else None


def kernel_rows(kdir: str) -> tuple[list[Row], str]:
    mods = sorted(os.path.relpath(os.path.join(dp, f), kdir)
                  for dp, _, fs in os.walk(os.path.join(kdir, "modules"))
                  for f in fs if f.endswith(".ko"))
    rows: list[Row] = []
    have_vmlinux = os.path.exists(os.path.join(kdir, "vmlinux"))
    if mods and have_vmlinux:
        ref = batches([READELF, "-W", "-r", "-x", ".altinstructions"], mods)
        # The modules' records kept in the benchmark's own cache (never the user's): the check
        # again of an unchanged tree; and with none, as a first check is.
        records = os.path.join(OUT, "kernel-records")
        for cache in (["--no-cache"], ["--cache-dir", records]):
            args = ["check", "--abi", "linux-v6.1", "--symbols-from", "vmlinux", *cache, *mods]
            rows.append(Row(
                f"`altlink check --abi linux-v6.1 --symbols-from vmlinux`, {len(mods)} kernel "
                "modules, " + ("`--no-cache`" if cache[0] == "--no-cache" else
                               "records kept"),
                Job("altlink check", [[ALTLINK, *args]], kdir),
                Job("readelf", ref, kdir, ok_rcs=(0, 1)),
                "≤ 0.8 × readelf", lambda s, r: s.best <= 0.8 * r.best, args, kdir,
                note=f"readelf `-W -r -x .altinstructions`, {len(ref)} process(es) as xargs "
                "batches them"))
    if have_vmlinux:
        out = os.path.join(OUT, "vmlinux.alt.json")
        args = ["manifest", "--abi", "linux-v6.1", "vmlinux", "-o", out]
        rows.append(Row(
            "`altlink manifest --abi linux-v6.1` of vmlinux",
            Job("altlink manifest", [[ALTLINK, *args]], kdir),
            Job("readelf", [[READELF, "-W", "-x", ".altinstructions", "vmlinux"]], kdir),
            "< 1 s, < 200 MB", lambda s, r: s.best < 1 and s.rss_mb < 200, args, kdir,
            note="readelf `-W -x .altinstructions vmlinux` (the table's bytes only)"))
        args = ["check", "--abi", "linux-v6.1", "vmlinux"]
        rows.append(Row(
            "`altlink check --abi linux-v6.1` of vmlinux",
            Job("altlink check", [[ALTLINK, *args]], kdir),
            Job("readelf", [[READELF, "-W", "-x", ".altinstructions", "vmlinux"]], kdir),
            "< 1.5 s", lambda s, r: s.best < 1.5, args, kdir,
            note="readelf `-W -x .altinstructions vmlinux` (the table's bytes only)"))
        image_mb = os.path.getsize(os.path.join(kdir, "vmlinux")) / (1 << 20)
        patched = os.path.join(OUT, "vmlinux.patched")
        args = ["patch", "vmlinux", "--manifest", out, "--caps", "STATIC", "-o", patched]

        patch_argv = [ALTLINK, *args]

        def static_caps() -> None:  # every capability no callback uses: all of them applied
            import json
            with open(out, encoding="utf-8") as f:
                m = json.load(f)
            cb = {e["cap"] for e in m["entries"] if e["kind"] == "callback"}
            caps = ",".join(str(c) for c in sorted({e["cap"] for e in m["entries"]} - cb))
            patch_argv[patch_argv.index("--caps") + 1] = caps
        rows.append(Row(
            "`altlink patch` of vmlinux, every static entry applied",
            Job("altlink patch", [patch_argv], kdir, prepare=static_caps),
            Job("cp", [["cp", "vmlinux", patched + ".cp"]], kdir),
            f"< 1.5 s, RSS ≤ 1.5 × the image ({1.5 * image_mb:.0f} MB)",
            lambda s, r: s.best < 1.5 and s.rss_mb <= 1.5 * image_mb, args, kdir,
            note="`cp vmlinux` (a copy of the image, which the patched output is); the "
            "manifest is the one the row above writes"))
    size = os.path.getsize(os.path.join(kdir, "vmlinux")) if have_vmlinux else 0
    desc = f"`{kdir}`: {len(mods)} modules" + (
        f", vmlinux {size / 1e6:.0f} MB" if have_vmlinux else ", no vmlinux")
    return rows, desc


# -- a Kbuild vmlinux link --------------------------------------------------------------------------

def kbuild_link(kdir: str) -> tuple[list[str], list[str]] | None:
    """The final vmlinux link of a Linux 6.1 Kbuild tree built through altlink (``make
    LD="altlink link OPTIONS -- LD"``): altlink's options and the bare linker command, as
    ``scripts/link-vmlinux.sh`` runs it, output left to the caller. With kallsyms that is the
    last of its links, which adds the symbol table the links before it made
    (``.tmp_vmlinux.kallsyms2.o``, or ``3`` when a third link was needed), still in the tree."""
    import re
    import shlex

    try:
        with open(os.path.join(kdir, ".vmlinux.cmd"), encoding="utf-8") as f:
            line = next(x for x in f if x.startswith("cmd_vmlinux :="))
        with open(os.path.join(kdir, ".config"), encoding="utf-8") as f:
            config = set(re.findall(r"^(CONFIG_\w+)=y$", f.read(), re.M))
    except (OSError, StopIteration):
        return None
    if config & {"CONFIG_LTO_CLANG", "CONFIG_DEBUG_INFO_BTF", "CONFIG_VMLINUX_MAP"}:
        return None  # another form of the link (vmlinux.o, a BTF object, a map)
    words = shlex.split(line.split(":=", 1)[1].split(";")[0])
    if len(words) < 4:
        return None
    ld, kbuild_ldflags, ldflags_vmlinux = shlex.split(words[1]), words[2], words[3]
    opts: list[str] = []
    if "--" in ld:  # "altlink link OPTIONS -- LD": altlink's options, then the linker
        cut = ld.index("--")
        opts = [o for o in ld[:cut] if o != "link" and not o.endswith("altlink")]
        ld = ld[cut + 1:]
    # Makefile: with modules, the libraries are in vmlinux.a; without, they are linked apart
    modules = "CONFIG_MODULES" in config
    objs = ["vmlinux.a", *([".vmlinux.export.o"] if modules else []),
            "init/version-timestamp.o"]
    # (arch/arm64/Makefile: the EFI stub's library is one of libs-y, a file, not a folder)
    stub = ["./drivers/firmware/efi/libstub/lib.a"] if "CONFIG_EFI_STUB" in config else []
    libs = stub if modules else ["arch/arm64/lib/lib.a", "lib/lib.a", *stub]
    extra: list[str] = []
    if "CONFIG_KALLSYMS" in config:
        made = [(os.path.getmtime(p), p) for p in (
            os.path.join(kdir, f".tmp_vmlinux.kallsyms{n}.o") for n in (2, 3))
            if os.path.exists(p)]
        if not made:
            return None
        extra = [os.path.basename(max(made)[1])]  # the last step's (a third is rare)
    cmd = ld + shlex.split(kbuild_ldflags) + shlex.split(ldflags_vmlinux) + [
        "--script=./arch/arm64/kernel/vmlinux.lds", "--whole-archive", *objs,
        "--no-whole-archive", "--start-group", *libs, "--end-group", *extra]
    return opts, cmd


def kbuild_rows(kdir: str) -> tuple[list[Row], str]:
    got = kbuild_link(kdir)
    if got is None:
        return [], f"`{kdir}`: no vmlinux link of the form this benchmark repeats"
    opts, ld = got
    work = os.path.join(OUT, "kbuild")
    os.makedirs(work, exist_ok=True)
    records = os.path.join(work, "records")
    plain = os.path.join(work, "plain")
    rows = []
    for cached in (False, True):
        img = os.path.join(work, "alt")
        argv = ["link", *opts, "-o", img]
        argv += ["--cache-dir", records] if cached else \
            ["--no-cache", "--manifest", img + ".alt.json"]
        argv += ["--", *ld, "-o", img]
        rows.append(Row(
            "`altlink link` of a Linux 6.1 vmlinux (Kbuild), " +
            ("records cached, no manifest" if cached else "no record cache, with manifest"),
            Job("altlink link", [[ALTLINK, *argv]], kdir),
            Job("ld", [ld + ["-o", plain]], kdir),
            "≤ 1.5 × ld" if cached else "≤ 2 × ld",
            (lambda s, r: s.best <= 1.5 * r.best) if cached else
            (lambda s, r: s.best <= 2 * r.best), argv, kdir,
            note="the same command as `scripts/link-vmlinux.sh` runs it, bare: "
            f"`{' '.join(ld[:1])} ... vmlinux.a ...`, output in `bench/out/kbuild`"))
    mods = kbuild_module_links(kdir)
    if mods:
        outdir = os.path.join(work, "modules")
        os.makedirs(outdir, exist_ok=True)
        alt_cmds, ld_cmds = [], []
        for k, (mopts, mld, inputs) in enumerate(mods):
            out = os.path.join(outdir, f"m{k}")
            alt_cmds.append([ALTLINK, "link", *mopts, "--cache-dir", records, "--",
                             *mld, "-o", out + ".alt.ko", *inputs])
            ld_cmds.append([*mld, "-o", out + ".ko", *inputs])
        rows.append(Row(
            f"the tree's {len(mods)} module links (`ld -r`, each its own process), records "
            "cached", Job("altlink link", alt_cmds, kdir), Job("ld", ld_cmds, kdir),
            "(no target: start-up)", None,
            note="each module's final link as Kbuild runs it (`.<module>.ko.cmd`: the module's "
            "object and its `.mod.o`, `-T scripts/module.lds`), one after the other, bare: "
            "the same `ld -r` commands"))
    n = len(subprocess.run(["ar", "t", "vmlinux.a"], cwd=kdir, capture_output=True,
                           text=True).stdout.split())
    kallsyms = [w for w in ld if w.startswith(".tmp_vmlinux.kallsyms")]
    return rows, f"`{kdir}`: its final vmlinux link (`vmlinux.a`, {n} members" + (
        f", with kallsyms: `{kallsyms[0]}`)" if kallsyms else ")") + (
        f" and its {len(mods)} module links" if mods else "")


def uboot_rows(out: str) -> tuple[list[Row], str]:
    """U-Boot's final link (``tests/ubootbuild.py``'s tree: ``.u-boot.cmd``), through altlink
    as that build runs it (``altlink link -- ld ...``: no option at all) and by ld alone, both
    writing into ``bench/out/uboot``: a firmware link without alternatives, with a map."""
    try:
        with open(os.path.join(out, ".u-boot.cmd")) as f:
            text = f.read()
    except OSError as e:
        return [], f"`{out}`: no U-Boot build ({e.strerror})"
    m = re.match(r"cmd_u-boot := (.*?);\s*true\s*$", text, re.S)
    words = shlex.split(m.group(1)) if m else []
    if "--" not in words or "-o" not in words or "-Map" not in words:
        return [], f"`{out}`: `.u-boot.cmd` is not a link through altlink's launcher"
    ld = words[words.index("--") + 1:]
    work = os.path.join(OUT, "uboot")
    os.makedirs(work, exist_ok=True)

    def to(name: str) -> list[str]:
        cmd = list(ld)
        cmd[cmd.index("-o") + 1] = os.path.join(work, name)
        cmd[cmd.index("-Map") + 1] = os.path.join(work, name + ".map")
        return cmd

    argv = ["link", "--cache-dir", os.path.join(work, "records"), "--", *to("alt")]
    n = sum(1 for w in ld if w.endswith("built-in.o"))
    row = Row("`altlink link -- ld ...` of U-Boot 2023.01 (`qemu_arm64_defconfig`, no "
              "alternatives, `-Map`), records cached",
              Job("altlink link", [[ALTLINK, *argv]], out), Job("ld", [to("plain")], out),
              "(no target)", None, argv, out,
              note="the same command as U-Boot's make runs it (`.u-boot.cmd`), bare, output "
              "and map in `bench/out/uboot`")
    return [row], f"`{out}`: U-Boot's final link ({n} thin archives under `--whole-archive`)"


def kbuild_module_links(kdir: str, most: int = 20) -> list[tuple[list[str], list[str],
                                                                 list[str]]]:
    """Up to ``most`` of the tree's module links (``cmd_X.ko := LD ... -o X.ko X.o X.mod.o``,
    as Kbuild's ``scripts/Makefile.modfinal`` runs them): altlink's options, the bare linker
    command without its output, and the inputs. Only links through ``altlink link``."""
    import glob
    import shlex

    out = []
    for cmd in sorted(glob.glob(os.path.join(kdir, "**", ".*.ko.cmd"), recursive=True)):
        try:
            with open(cmd, encoding="utf-8") as f:
                line = next(x for x in f if x.startswith("cmd_"))
        except (OSError, StopIteration):
            continue
        words = shlex.split(line.split(":=", 1)[1].split(";")[0])
        if "--" not in words or "-o" not in words:
            continue
        cut = words.index("--")
        opts = [o for o in words[:cut] if o != "link" and not o.endswith("altlink")]
        ld = words[cut + 1:]
        o = ld.index("-o")
        out.append((opts, ld[:o], ld[o + 2:]))
        if len(out) == most:
            break
    return out


# -- growth: link cost against the number of objects and the size of the text --------------------

PAD_S = """\
	.text
	.type pad, %function
pad:
	.rept 32768
	b	1f
1:	add	x0, x0, #1
	cbz	x1, 2f
	bl	pad
2:	tbnz	x2, #3, 3f
	ldr	x3, [x4, #8]
	b.ne	3f
3:	nop
	.endr
	.size pad, . - pad
"""


def pad_objects(mb: int) -> list[str]:
    """``mb`` MiB of code without alternatives (branches of every form): one object of 1 MiB,
    made once into bench/out, linked ``mb`` times (its symbol is local)."""
    path = os.path.join(OUT, "pad-1m.o")
    if mb and not os.path.exists(path):
        src = path[:-2] + ".S"
        with open(src, "w", encoding="utf-8") as f:
            f.write(PAD_S)
        subprocess.run(["aarch64-linux-gnu-as", src, "-o", path + ".tmp"], check=True)
        os.replace(path + ".tmp", path)
    return [path] * mb


@dataclass
class Growth:
    what: str      # "objects" or "text"
    objects: int
    entries: int
    text_mb: float
    row: Row


def growth_rows(counts: list[int], pads: list[int], args, log) -> list[Growth]:
    out = []

    def link_row(fw: synth.Firmware, extra: list[str], label: str) -> Row:
        d = fw.dir
        synth.write_sconstruct(fw, args.abi)
        os.makedirs(os.path.join(d, "cli"), exist_ok=True)
        ld = [LD, "-static", "--build-id=none", f"-L{_ldscripts()}", "-T", "fw.ld",
              *fw.objects, *extra]
        argv = ["link", "-o", "cli/g.elf", "--manifest", "cli/g.alt.json", "--bin",
                "cli/g.bin", "--cap-table", "cpucaps", "--abi", args.abi, "--cache-dir",
                "records", "--", *ld, "-o", "cli/g.elf"]
        return Row(label, Job("altlink link", [[ALTLINK, *argv]], d),
                   Job("ld", [ld + ["-o", "cli/gplain.elf"]], d), "", None, argv, d)

    def text_mb(row: Row) -> float:
        from altlink.elf import read_elf
        elf = read_elf(os.path.join(row.subject.cwd, "cli", "g.elf"))
        return sum(x.size for x in elf.sections if x.executable) / (1 << 20)

    for n in counts:
        fw = synth.build(synth.Params(objects=n, sites=args.sites, abi=args.abi), args.jobs,
                         ALTLINK, log)
        out.append(Growth("objects", len(fw.objects), fw.entries, 0.0,
                          link_row(fw, [], f"growth: {len(fw.objects)} objects")))
    base = synth.build(synth.Params(objects=300, sites=args.sites, abi=args.abi), args.jobs,
                       ALTLINK, log)
    for mb in pads:
        extra = pad_objects(mb)
        out.append(Growth("text", len(base.objects), base.entries, 0.0,
                          link_row(base, extra, f"growth: {len(base.objects)} objects + "
                                   f"{mb} MiB of code")))
    for g in out:
        g.row.measure(args.growth_reps, log)
        if not g.row.error:
            g.text_mb = text_mb(g.row)
    return out


def growth_table(gs: list[Growth]) -> list[str]:
    out = ["", "### Growth", "",
           "`altlink link` (records cached, with the manifest and the raw binary) beside the "
           "bare `ld`, best of the runs; the cost is altlink's time less the linker's.", "",
           "| link | objects | entries | code | ld | altlink link | ratio | altlink's cost "
           "| cost per 1,000 entries | cost per MiB of code |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for g in gs:
        r = g.row
        if r.error:
            out.append(f"| {r.title} | failed: {r.error} | | | | | | | | |")
            continue
        cost = r.s.best - r.r.best
        out.append(f"| {g.what} | {g.objects:,} | {g.entries:,} | {g.text_mb:.1f} MiB | "
                   f"{fmt_s(r.r.best)} | {fmt_s(r.s.best)} | {ratio(r.s, r.r):.2f} | "
                   f"{fmt_s(cost)} | {fmt_s(cost / g.entries * 1000)} | "
                   f"{fmt_s(cost / g.text_mb) if g.text_mb else '—'} |")
    return out


# -- the synthetic firmware -----------------------------------------------------------------------

def synthetic_rows(fw: synth.Firmware, abi: str) -> list[Row]:
    synth.write_sconstruct(fw, abi)
    d = fw.dir
    objs = fw.objects

    def rm(*names: str) -> Callable[[], None]:
        def f() -> None:
            for n in names:
                try:
                    os.remove(os.path.join(d, n))
                except FileNotFoundError:
                    pass
        return f

    # Build both once (SCons records the objects' signatures), so that each timed run only
    # relinks.
    subprocess.run([SCONS, "-Q", "alt.elf", "plain.elf"], cwd=d, check=True,
                   stdout=subprocess.DEVNULL, env=ENV)
    rows = []
    scons_alt = [SCONS, "-Q", "alt.elf"]
    scons_plain = [SCONS, "-Q", "plain.elf"]
    rows.append(Row(
        "SCons with nothing to do (`scons -Q alt.elf`, up to date)",
        Job("scons AltProgram", [scons_alt], d), Job("scons Program", [scons_plain], d),
        "(SCons' own cost)", None,
        note="Program: `scons -Q plain.elf`, up to date: start-up, reading the SConstruct, "
        "the signatures of the objects"))
    records_dir = os.path.join(d, "records")
    ENV["ALTLINK_CACHE_DIR"] = records_dir  # the links' record cache: the benchmark's own

    def no_records() -> None:
        shutil.rmtree(records_dir, ignore_errors=True)

    def first_link() -> None:
        rm("alt.elf")()
        no_records()

    link_argv = ["link", "-o", "prof/alt.elf", "--manifest", "prof/alt.alt.json", "--bin",
                 "prof/alt.bin", "--cap-table", "cpucaps", "--abi", abi, "--",
                 LD, "-static", "--build-id=none", f"-L{_ldscripts()}", "-T", "fw.ld", *objs,
                 "-o", "prof/alt.elf"]
    rows.append(Row(
        f"AltProgram link, {len(objs)} objects, {fw.entries:,} entries (`scons -Q alt.elf`), "
        "first link: no records cached",
        Job("scons AltProgram", [scons_alt], d, prepare=first_link),
        Job("scons Program", [scons_plain], d, prepare=rm("plain.elf")),
        "≤ 1.3 × Program", lambda s, r: s.best <= 1.3 * r.best,
        link_argv[:link_argv.index("--")] + ["--no-cache"] + link_argv[link_argv.index("--"):],
        d,
        note="Program: `scons -Q plain.elf`, same SConstruct, objects, ld, flags and script; "
        "the image deleted before each run, and for AltProgram the record cache too"))
    rows.append(Row(
        "the same link, the objects' records cached (the image deleted)",
        Job("scons AltProgram", [scons_alt], d, prepare=rm("alt.elf")),
        Job("scons Program", [scons_plain], d, prepare=rm("plain.elf")),
        "≤ 1.3 × Program", lambda s, r: s.best <= 1.3 * r.best, link_argv, d,
        note="the image deleted before each run; the records of the objects kept from the "
        "runs before"))

    def relink(k: int) -> None:
        synth.swap(fw, k + 1)
        forget_variant(fw, abi, records_dir)

    rows.append(Row(
        "the same relink after one object changed",
        Job("scons AltProgram", [scons_alt], d),
        Job("scons Program", [scons_plain], d),
        "≤ 1.3 × Program", lambda s, r: s.best <= 1.3 * r.best,
        before_rep=relink,
        note=f"`{fw.variant_object}` replaced by a rebuild with other constants before each "
        "pair of runs, and its record removed from the cache: one object to read again"))
    os.makedirs(os.path.join(d, "cli"), exist_ok=True)
    os.makedirs(os.path.join(d, "prof"), exist_ok=True)
    ld = [LD, "-static", "--build-id=none", f"-L{_ldscripts()}", "-T", "fw.ld", *objs]
    outputs = ["--manifest", "cli/alt.alt.json", "--bin", "cli/alt.bin"]
    # As the kernel's rows, and with both outputs cached too: the manifest's writer is a
    # third process beside the checks on two CPUs.
    for cached, more in ((False, True), (True, True), (True, False)):
        argv = ["link", "-o", "cli/alt.elf", *(outputs if more else []), "--cap-table",
                "cpucaps", "--abi", abi, *([] if cached else ["--no-cache"]),
                "--", *ld, "-o", "cli/alt.elf"]
        rows.append(Row(
            "`altlink link` (no SCons), the same link, " +
            ("records cached" if cached else "`--no-cache`") +
            (", with manifest and raw binary" if more else ", no manifest"),
            Job("altlink link", [[ALTLINK, *argv]], d),
            Job("ld", [ld + ["-o", "cli/plain.elf"]], d),
            "≤ 1.5 × ld" if cached else "≤ 2 × ld",
            (lambda s, r: s.best <= 1.5 * r.best) if cached else
            (lambda s, r: s.best <= 2 * r.best), argv, d,
            note="reference: the bare `aarch64-linux-gnu-ld` command"))
    readelf = Job("readelf", batches([READELF, "-W", "-r", "-x", ".altinstructions"], objs), d)
    for cached in (False, True):
        args = ["check", "--cap-table", "cpucaps", "--abi", abi,
                *([] if cached else ["--no-cache"]), *objs]
        rows.append(Row(
            f"`altlink check`, the {len(objs)} synthetic objects, " +
            ("records cached" if cached else "`--no-cache`"),
            Job("altlink check", [[ALTLINK, *args]], d), readelf,
            "≤ readelf", lambda s, r: s.best <= r.best, args, d,
            note="readelf `-W -r -x .altinstructions` over the same objects"))
    return rows


def forget_variant(fw: synth.Firmware, abi: str, records_dir: str) -> None:
    """Remove the records of both builds of the variant object, so that every relink has
    exactly one object to read again (as an edit to one file gives)."""
    from altlink import caps as capsmod
    from altlink.linkset import Options
    from altlink.records import ObjectCache
    from altlink.table import Profile

    table = capsmod.load(os.path.join(fw.dir, "cpucaps"))
    key = ObjectCache.options_key_of(Options(Profile(abi, table.ncaps), table, False))
    cache = ObjectCache(records_dir, key)
    for v in fw.variant:
        with open(os.path.join(fw.dir, v), "rb") as f:
            path = cache.record_path(f.read())
        if os.path.exists(path):
            os.remove(path)


def _ldscripts() -> str:
    return os.path.join(ROOT, "altlink", "ldscripts")


# -- profiles --------------------------------------------------------------------------------------

def profile(row: Row, top: int = 20) -> str:
    """cProfile of the row's altlink command: the ``top`` functions by own time, then where
    the command's time goes (its callees by cumulative time, two levels deep)."""
    prof = os.path.join(OUT, "profile.out")
    argv = [PYTHON, "-m", "cProfile", "-o", prof, "-m", "altlink", *row.profile_argv]
    subprocess.run(argv, cwd=row.profile_cwd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=ENV)
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(top)
    text = _short(buf.getvalue())
    text = re.sub(r"^.*profile\.out\n", "", text, flags=re.MULTILINE)
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    lines += ["", "where the time goes (cumulative, callees of the command):"]
    lines += _tree(st, "cmd_" + row.profile_argv[0])
    return "\n".join(lines)


def _short(text: str) -> str:
    return text.replace(ROOT + "/", "").replace(sys.base_prefix + "/lib/", "")


def _tree(st: pstats.Stats, root_name: str, depth: int = 3, share: float = 0.04) -> list[str]:
    stats = st.stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    roots = [k for k in stats if k[2] == root_name and k[0].endswith("cli.py")]
    if not roots:
        return ["  (command function not found)"]
    total = stats[roots[0]][3] or 1.0
    out: list[str] = []

    def walk(key, level: int) -> None:
        kids = []
        for k, v in stats.items():
            edge = v[4].get(key)
            if edge:
                kids.append((edge[3], k))
        for ct, k in sorted(kids, reverse=True):
            if ct < share * total:
                break
            name = _short(f"{k[0]}:{k[1]}({k[2]})")
            out.append(f"{'  ' * (level + 1)}{ct:6.3f} s {100 * ct / total:3.0f}%  {name}")
            if level < depth:
                walk(k, level + 1)

    out.append(f"  {total:6.3f} s 100%  {root_name}")
    walk(roots[0], 1)
    return out


# -- the report ------------------------------------------------------------------------------------

def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x >= 0.1 else f"{x * 1000:.0f} ms"


def report(facts: dict, rows: list[Row], extra: list[str], reps: int, profiles: dict,
           growth: list[Growth] = ()) -> str:
    cpus = facts["cpus"]
    l0 = facts["load_start"]
    l1 = facts["load_end"]
    peak = max([r.load for r in rows] + [l0[0], l1[0]])
    out = ["### Machine and run", ""]
    out.append(f"- {cpus} CPUs ({facts['cpu_model']}), {facts['system']}; Python "
               f"{facts['python']}, SCons {facts['scons']}, {facts['ld']}")
    out.append(f"- load average (1/5/15 min) at the start {l0[0]:.2f} / {l0[1]:.2f} / "
               f"{l0[2]:.2f}, at the end {l1[0]:.2f} / {l1[1]:.2f} / {l1[2]:.2f}, highest "
               f"1-min load seen {peak:.2f}: **{load_verdict(peak, cpus)}**")
    out.append(f"- altlink {facts['altlink']} at git {facts['git']}")
    out += [f"- {x}" for x in extra]
    out.append("- Python bytecode cached (`PYTHONPYCACHEPREFIX=bench/out/pycache`), as for an "
               "installed package")
    out.append(f"- {reps} runs of each command, altlink and reference interleaved; wall = best "
               "(median); CPU = user + system of the fastest run; RSS = peak resident set")
    out += ["", "### Figures", "",
            "| measurement | altlink: wall best (median) | CPU | peak RSS | reference: wall "
            "best (median) | CPU | ratio wall (CPU) | target | met |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            out.append(f"| {r.title} | failed: {r.error} | | | | | | {r.target} | — |")
            continue
        s = r.s
        line = f"| {r.title} | {fmt_s(s.best)} ({fmt_s(s.median)}) | {fmt_s(s.cpu)} | " \
               f"{s.rss_mb:.0f} MB | "
        if r.reference:
            q = r.r
            rc = s.cpu / q.cpu if q.cpu else float("inf")
            line += f"{fmt_s(q.best)} ({fmt_s(q.median)}) | {fmt_s(q.cpu)} | " \
                    f"{ratio(s, q):.2f} ({rc:.2f}) | "
        else:
            line += "— | — | — | "
        met = r.met()
        line += f"{r.target} | {'—' if met is None else ('yes' if met else '**no**')} |"
        out.append(line)
    notes = [f"- {r.title}: {r.note}" for r in rows if r.note]
    forced = next((r for r in rows if r.title.startswith("AltProgram link")), None)
    relink = next((r for r in rows if r.title.startswith("the same relink")), None)
    if forced and relink and forced.s.samples and relink.s.samples and not (
            forced.error or relink.error):
        notes.append(f"- relink after one changed object / full link: AltProgram "
                     f"{relink.s.best / forced.s.best:.2f}, Program "
                     f"{relink.r.best / forced.r.best:.2f} (1.00 = nothing is reused)")
    if notes:
        out += ["", "References:", ""] + notes
    if growth:
        out += growth_table(list(growth))
    if profiles:
        out += ["", "### Profiles of the commands that miss their target", ""]
        for title, text in profiles.items():
            out += [f"{title} (cProfile, top 20 by own time):", "", "```", text, "```", ""]
    return "\n".join(out).rstrip() + "\n"


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def write_doc(path: str, text: str, command: str) -> None:
    block = f"{BEGIN}\n<!-- written by `{command}`; edit the text outside the markers -->\n\n" \
            f"{text}\n{END}"
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = (old.rstrip() + "\n\n" if old else "# Performance\n\n") + block + "\n"
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(path + ".tmp", path)


# -- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="300 objects and 3 runs each (unless --objects/--reps say otherwise)")
    ap.add_argument("--objects", type=int, help="synthetic objects (default 2000)")
    ap.add_argument("--sites", type=int, default=20, help="alternative sites per object")
    ap.add_argument("--kernel", metavar="DIR",
                    help="kernel directory with vmlinux and modules/ (default: "
                    "tools/fetch_kernel.py --offline)")
    ap.add_argument("--no-kernel", action="store_true", help="skip the real kernel")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic firmware")
    ap.add_argument("--reps", type=int, help="runs of each command (default 5, --quick 3)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel compilations (default 2)")
    ap.add_argument("--abi", default="linux-v4.17", choices=("linux-v4.17", "linux-v6.1"),
                    help="profile of the synthetic firmware")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile each altlink command that misses its target")
    ap.add_argument("--wait-load", type=float, metavar="L",
                    help="first wait (up to 30 min) until the 1-minute load is at most L")
    ap.add_argument("--write", metavar="FILE", help="also write the report into FILE")
    ap.add_argument("--uboot", metavar="DIR",
                    help="time U-Boot's final link in this build tree (tests/ubootbuild.py's "
                    "out/: ~/.cache/altlink-tests/u-boot-2023.01/out)")
    ap.add_argument("--kbuild", metavar="DIR",
                    help="a Linux 6.1 Kbuild output tree built through altlink link (with "
                    "kallsyms or without): its final vmlinux link is timed against the bare "
                    "linker")
    ap.add_argument("--growth", action="store_true",
                    help="also the growth table: links of 500, 2,000 and 8,000 objects, and of "
                    "300 objects with 0 to 64 MiB more code")
    ap.add_argument("--growth-reps", type=int, default=3, help="runs of each growth link")
    args = ap.parse_args(argv)
    reps = args.reps or (3 if args.quick else 5)
    n_objects = args.objects or (300 if args.quick else 2000)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    os.makedirs(OUT, exist_ok=True)
    if args.wait_load is not None:
        wait_for_load(args.wait_load, 1800, log)
    facts = machine_facts()
    if facts["load_start"][0] >= facts["cpus"]:
        log(f"note: the load average is {facts['load_start'][0]:.2f} on {facts['cpus']} CPUs: "
            "the figures will be pessimistic (--wait-load waits for a quieter machine)")
    rows: list[Row] = []
    extra: list[str] = []
    if not args.no_kernel:
        kdir = find_kernel(args.kernel)
        if kdir:
            krows, desc = kernel_rows(kdir)
            rows += krows
            extra.append(f"kernel: {desc}")
        else:
            extra.append("kernel: none found (`python3 tools/fetch_kernel.py`), its rows "
                         "are skipped")
    if args.kbuild:
        krows, desc = kbuild_rows(os.path.abspath(args.kbuild))
        rows += krows
        extra.append(f"Kbuild: {desc}")
    if args.uboot:
        urows, desc = uboot_rows(os.path.abspath(args.uboot))
        rows += urows
        extra.append(f"U-Boot: {desc}")
    if not args.no_synthetic:
        p = synth.Params(objects=n_objects, sites=args.sites, abi=args.abi)
        t0 = time.perf_counter()
        fw = synth.build(p, args.jobs, ALTLINK, log)
        built = time.perf_counter() - t0
        extra.append(
            f"synthetic firmware: {len(fw.objects)} objects ({n_objects} generated + start.S "
            f"+ base.c), {fw.entries:,} entries ({fw.callbacks:,} callbacks, {fw.branches:,} "
            f"replacements branching out), profile {args.abi}, in "
            f"`{os.path.relpath(fw.dir, ROOT)}`" +
            (f" (compiled now in {built:.0f} s)" if built > 5 else " (cached)"))
        rows += synthetic_rows(fw, args.abi)
    startup = Row("`altlink --version` (start-up: interpreter and CLI imports)",
                  Job("altlink --version", [[ALTLINK, "--version"]]), None, "—")
    rows.append(startup)

    log(f"measuring, {reps} runs each ...")
    for r in rows:
        r.measure(reps, log)
    if not args.no_synthetic:
        synth.restore(fw)
    growth = growth_rows([500, 2000, 8000], [0, 4, 16, 64], args, log) if args.growth else []
    profiles: dict[str, str] = {}
    if args.profile:
        for r in rows:
            if r.profile_argv and r.met() is False:
                log(f"profiling {r.title} ...")
                profiles[r.title] = profile(r)
    facts["load_end"] = os.getloadavg()
    text = report(facts, rows, extra, reps, profiles, growth)
    sys.stdout.write(text)
    if args.write:  # the figures only: profiles are for whoever is optimizing, on stdout
        cmd = ".venv/bin/python bench/run.py " + " ".join(argv or sys.argv[1:])
        write_doc(args.write, report(facts, rows, extra, reps, {}, growth), cmd.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
