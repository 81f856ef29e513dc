"""The fuzz harness: mutated objects, images, archives, manifests and compact manifests run
through ``altlink.cli.main`` (scan, check, manifest, show, verify, diff, patch with and without
``--emulate``, and link with a fake linker), checking what docs/reference.md, section 4, allows.

    python -m tests.fuzz.fuzz --seconds 600 --seed 1
    python -m tests.fuzz.fuzz --cases 2000 --seed 7 --crash-dir /tmp/crashes
    python -m tests.fuzz.fuzz --replay /tmp/crashes/<case>     # one saved case, in-process

Design: the driver (this process) builds the seeds once, then hands case numbers to worker
processes over a pipe. A worker makes the case from ``random.Random(f"{seed}:{index}")`` (so a
case is reproduced from its seed and index alone), writes its files into its own directory,
and runs the command in-process, under ``setitimer`` (a per-case alarm) and ``RLIMIT_AS`` (the
worker's memory). The driver keeps a wall-clock deadline per case as well and kills a worker
that misses it (stuck in C code, out of memory, dead on a signal); such a case is a failure
too. Every failure is saved with its files, command line and detail under the crash directory.

Allowed outcomes: exit 0, 1 or 2 (3 never: the fake linker does not fail); exit 2 with exactly
one line on stderr naming a file of the command; no exception escapes; no temporary file
(``.NAME.*``) left beside an output; an output that existed before a failed run is byte-for-byte
what it was, one that did not is still absent; a patched image differs from its input only
inside the sites of the manifest.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field

from . import mutate, seeds

ALARM = 10.0  # seconds a case may run in the worker before it is interrupted
GRACE = 10.0  # further seconds before the driver kills the worker
MEMORY = 1 << 30  # RLIMIT_AS of a worker
FILE_SIZE = 1 << 30  # RLIMIT_FSIZE of a worker
MAX_INSNS = (100, 2000, 50_000)  # --max-insns of the emulated callbacks

# Target -> weight. "elf-*" mutate an object, image, archive or module; "json-*" a manifest.
TARGETS = {
    "elf-scan": 8, "elf-check": 12, "elf-manifest": 8, "elf-show": 4, "elf-verify": 4,
    "elf-patch": 10, "json-show": 4, "json-verify": 4, "json-diff": 2, "json-patch": 14,
    "link": 8, "blob": 2, "caps": 3,
}


class FuzzTimeout(BaseException):
    """The per-case alarm. A BaseException, so that no ``except Exception`` in altlink hides
    it."""


@dataclass
class Case:
    index: int
    target: str
    seed: str  # the seed file it mutates
    mutations: list[str]
    argv: list[str]  # paths relative to the case directory
    files: dict[str, bytes] = field(repr=False)
    outputs: list[str] = field(default_factory=list)  # outputs the command may write
    old: dict[str, bytes] = field(default_factory=dict, repr=False)  # outputs there before
    sites: list[tuple[int, int]] | None = None  # patch: (address, length) of the sites
    patched_from: str | None = None  # patch: the input image, to compare the output with


@dataclass
class Outcome:
    index: int
    target: str
    seed: str
    mutations: list[str]
    argv: list[str]
    rc: int | None
    status: str  # "ok", or the kind of failure
    detail: str = ""
    signature: str = ""
    seconds: float = 0.0


# -- seeds ----------------------------------------------------------------------------------------

class Corpus:
    """The seeds' bytes, read once per worker."""

    def __init__(self, s: seeds.Seeds) -> None:
        self.s = s
        self.data: dict[str, bytes] = {}
        self.json: dict[str, dict] = {}
        for img in s.images:
            for p in (img.elf, img.binary, img.manifest, *img.objects):
                self.read(p)
            with open(self.path(img.manifest), encoding="utf-8") as f:
                self.json[img.manifest] = json.load(f)
        for p, _ in s.objects + s.archives + s.modules:
            self.read(p)
        for p in s.blobs:
            self.read(p)
        self.read(s.caps)
        for n in ("cpucaps", "cpucaps.h"):
            if (seeds.KERNEL / n).is_file():
                self.read(str(seeds.KERNEL / n))

    def path(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(self.s.dir, p)

    def read(self, p: str) -> bytes:
        if p not in self.data:
            with open(self.path(p), "rb") as f:
                self.data[p] = f.read()
        return self.data[p]


def load_seeds(seed_dir: str) -> seeds.Seeds:
    with open(os.path.join(seed_dir, "seeds.json")) as f:
        raw = json.load(f)
    raw["images"] = [seeds.Image(**i) for i in raw["images"]]
    for k in ("objects", "archives", "modules"):
        raw[k] = [tuple(x) for x in raw[k]]
    return seeds.Seeds(**raw)


def prepare_seeds(seed_dir: str, firmware: bool = True) -> seeds.Seeds:
    s = seeds.build(seed_dir, firmware)
    with open(os.path.join(seed_dir, "seeds.json"), "w") as f:
        json.dump(asdict(s), f, indent=1)
    return s


# -- cases ----------------------------------------------------------------------------------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _caps_arg(rng: random.Random, m: dict) -> str:
    names = [str(v) for v in (m.get("caps") or {}).values()] if isinstance(m.get("caps"), dict) \
        else []
    ncaps = m.get("ncaps") if isinstance(m.get("ncaps"), int) else 4
    pool = [str(i) for i in range(max(0, min(ncaps, 8)))] + names
    if not pool or rng.random() < 0.1:
        return ""
    return ",".join(sorted(set(rng.sample(pool, rng.randrange(1, len(pool) + 1)))))


def _dumps(m) -> bytes:
    return json.dumps(m, sort_keys=True, indent=1).encode()


def _old_outputs(rng: random.Random, case: Case) -> None:
    """Earlier outputs, some of the time: a failed run must leave them as they were (a failed
    link, none at all)."""
    if rng.random() < 0.5:
        for o in case.outputs:
            case.old[o] = f"old {o}\n".encode()


def _patch_args(rng: random.Random, case: Case, img: seeds.Image, m: dict) -> None:
    case.argv += ["--caps", _caps_arg(rng, m), "-o", "out/p.elf"]
    case.outputs.append("out/p.elf")
    if rng.random() < 0.3:
        case.argv += ["--bin", "out/p.bin"]
        case.outputs.append("out/p.bin")
    if rng.random() < 0.8:
        cbs = [c for c in img.callbacks if rng.random() < 0.8] or img.callbacks[:1]
        case.argv += ["--emulate", ",".join(cbs)]
    limit = rng.choice(MAX_INSNS) if rng.random() < 0.97 else rng.choice((0, -1))
    case.argv += [f"--max-insns={limit}"]


def _sites(m) -> list[tuple[int, int]] | None:
    """(address, length) of every site a manifest names, as the patcher reads them; None when
    the manifest is too broken to say (the patcher then refuses it)."""
    out = []
    try:
        for rec in m["entries"]:
            site = rec["site"]
            a, n = site["address"], site["length"]
            a = a if isinstance(a, int) else int(a, 0)
            n = n if isinstance(n, int) else int(n, 0)
            if not (0 <= a < 1 << 64 and 0 <= n < 1 << 64):
                return None
            out.append((a, n))
    except Exception:
        return None
    return out


def make_case(corpus: Corpus, rng: random.Random, index: int) -> Case:
    s = corpus.s
    target = rng.choices(list(TARGETS), list(TARGETS.values()))[0]
    case = Case(index, target, "", [], [], {})
    if target.startswith("elf-"):
        _elf_case(corpus, rng, case)
    elif target.startswith("json-"):
        _json_case(corpus, rng, case)
    elif target == "link":
        _link_case(corpus, rng, case)
    elif target == "caps":
        _caps_case(corpus, rng, case)
    else:
        blob = rng.choice(s.blobs) if s.blobs else None
        if blob is None:
            case.target = "elf-scan"
            _elf_case(corpus, rng, case)
        else:
            data, what = mutate.mutate_blob(rng, corpus.read(blob))
            case.seed, case.mutations = blob, [what]
            case.files["in.altb"] = data
            case.argv = ["<compact.decode>", "in.altb"]
    _old_outputs(rng, case)
    return case


def _drop(opts: list[str], names: tuple[str, ...]) -> list[str]:
    """``opts`` without the named options (each with its value)."""
    out, skip = [], False
    for o in opts:
        if skip:
            skip = False
        elif o in names:
            skip = True
        else:
            out.append(o)
    return out


def _silence(rng: random.Random) -> list[str]:
    """Sometimes silence the codes that would stop a broken input early (a silenced code does
    not stop a link: what follows must cope)."""
    if rng.random() < 0.7:
        return []
    codes = ("ALT001", "ALT003", "ALT004", "ALT005", "ALT008", "ALT009", "ALT010", "ALT011",
             "ALT012", "ALT013", "ALT016", "ALT017")
    return [f"-Wno-{c}" for c in rng.sample(codes, rng.randrange(1, len(codes) + 1))]


def _mutate_file(rng: random.Random, data: bytes, name: str) -> tuple[bytes, list[str]]:
    if data.startswith(b"!<arch>\n"):
        return mutate.mutate_ar(rng, data)
    return mutate.mutate_elf(rng, data)


def _elf_case(corpus: Corpus, rng: random.Random, case: Case) -> None:
    s = corpus.s
    verb = case.target[4:]
    if verb in ("scan", "check"):
        kind = rng.choices(("image", "object", "archive", "module"), (4, 4, 1, 3))[0]
    else:
        kind = "image"
    if kind == "image" or (kind == "module" and not s.modules):
        img = rng.choice(s.images)
        path, opts = img.elf, img.options
    elif kind == "object":
        path, opts = rng.choice(s.objects)
        img = None
    elif kind == "archive":
        path, opts = rng.choice(s.archives)
        img = None
    else:
        path, opts = rng.choice(s.modules)
        img = None
    data, what = _mutate_file(rng, corpus.read(path), path)
    ext = {"archive": ".a", "module": ".ko", "object": ".o"}.get(kind, ".elf")
    name = "in" + ext
    case.seed, case.mutations = os.path.basename(path), what
    case.files[name] = data
    if rng.random() < 0.2:  # the profile or NCAPS inferred from the table
        opts = _drop(opts, rng.choice((("--ncaps",), ("--abi",), ("--abi", "--cap-table"))))
    fmt = ["--format", rng.choice(("text", "json", "sarif"))] if rng.random() < 0.3 else []
    if verb == "scan":
        case.argv = ["scan", *opts, *fmt, name]
    elif verb == "check":
        case.argv = ["check", *opts, *fmt, *_silence(rng)]
        if kind == "module" and rng.random() < 0.3:
            case.argv.append("--module")
        if rng.random() < 0.2 and s.images:
            other = rng.choice(s.images)
            sym = other.elf
            if rng.random() < 0.5:
                case.files["sym.elf"], w = mutate.mutate_elf(rng, corpus.read(other.elf))
                case.mutations += [f"symbols-from: {x}" for x in w]
                sym = "sym.elf"
            else:
                sym = corpus.path(sym)
            case.argv += ["--symbols-from", sym]
        case.argv.append(name)
        if kind == "object" and rng.random() < 0.3:
            case.argv.append(corpus.path(rng.choice(s.objects)[0]))
    elif verb == "manifest":
        case.argv = ["manifest", *opts, name, "-o", "out/m.json"]
        case.outputs.append("out/m.json")
        if rng.random() < 0.3:
            case.argv += ["--bin", corpus.path(img.binary)]
        if rng.random() < 0.3:
            case.argv += ["--compact", "out/m.altb"]
            case.outputs.append("out/m.altb")
        if rng.random() < 0.2:
            case.argv.append("--source-lines")
    elif verb == "show":
        case.argv = ["show", *opts, name]
    elif verb == "verify":
        m = corpus.json[img.manifest]
        if rng.random() < 0.5:
            m = dict(m, image=dict(m.get("image") or {}, sha256=_sha(data)))
        case.files["in.alt.json"] = _dumps(m)
        case.argv = ["verify", name, "in.alt.json"]
    elif verb == "patch":
        m = corpus.json[img.manifest]
        m = dict(m, image=dict(m.get("image") or {}, sha256=_sha(data)))
        case.files["in.alt.json"] = _dumps(m)
        case.argv = ["patch", name, "--manifest", "in.alt.json"]
        _patch_args(rng, case, img, m)
        case.sites, case.patched_from = _sites(m), name


def _json_case(corpus: Corpus, rng: random.Random, case: Case) -> None:
    s = corpus.s
    img = rng.choice(s.images)
    m = corpus.json[img.manifest]
    case.seed = os.path.basename(img.manifest)
    if rng.random() < 0.15:
        text, what = mutate.mutate_json_text(rng, _dumps(m))
        mm = None
        case.mutations = [what]
    else:
        mm = m
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            mm, what = mutate.mutate_json(rng, mm)
            case.mutations.append(what)
        text = json.dumps(mm, sort_keys=True).encode()
    case.files["in.alt.json"] = text
    verb = case.target[5:]
    elf = corpus.path(img.elf)
    if verb == "show":
        case.argv = ["show", "in.alt.json"]
    elif verb == "verify":
        case.argv = ["verify", elf, "in.alt.json"]
    elif verb == "diff":
        case.argv = ["diff", corpus.path(img.manifest), "in.alt.json"]
        if rng.random() < 0.5:
            case.argv[1:] = case.argv[2:0:-1]
    else:
        case.argv = ["patch", elf, "--manifest", "in.alt.json"]
        _patch_args(rng, case, img, mm if isinstance(mm, dict) else m)
        case.sites, case.patched_from = (_sites(mm) if mm is not None else None), elf


def _caps_case(corpus: Corpus, rng: random.Random, case: Case) -> None:
    """A mutated capability table, turned into a header or used by scan and check."""
    s = corpus.s
    tables = [s.caps] + [str(seeds.KERNEL / n) for n in ("cpucaps", "cpucaps.h")
                         if (seeds.KERNEL / n).is_file()]
    table = rng.choice(tables)
    text, what = mutate.mutate_caps(rng, corpus.read(table))
    case.seed, case.mutations = os.path.basename(table), [what]
    case.files["caps.in"] = text
    r = rng.random()
    if r < 0.4:
        case.argv = ["caps", "caps.in", "-o", "out/caps.h"]
        case.outputs.append("out/caps.h")
    elif r < 0.7 or not s.modules:
        obj = rng.choice(s.objects)[0]
        case.argv = ["scan", "--cap-table", "caps.in", corpus.path(obj)]
    else:
        case.argv = ["check", "--abi", "linux-v6.1", "--cap-table", "caps.in",
                     rng.choice(s.modules)[0]]


def _link_case(corpus: Corpus, rng: random.Random, case: Case) -> None:
    s = corpus.s
    linkable = [i for i in s.images if i.objects]
    if not linkable:
        case.target = "elf-check"
        _elf_case(corpus, rng, case)
        return
    img = rng.choice(linkable)
    case.seed = img.elf
    objs = []
    which = rng.choice(("image", "object", "both", "none"))
    for i, o in enumerate(img.objects):
        data = corpus.read(o)
        name = f"in{i}{os.path.splitext(o)[1]}"
        if which in ("object", "both") and i == 0:
            data, what = _mutate_file(rng, data, o)
            case.mutations += [f"{o}: {w}" for w in what]
        case.files[name] = data
        objs.append(name)
    image = corpus.read(img.elf)
    if which in ("image", "both", "none") and which != "none":
        image, what = mutate.mutate_elf(rng, image)
        case.mutations += [f"image: {w}" for w in what]
    case.files["linked.elf"] = image
    case.argv = ["link", *img.options, *_silence(rng), "-o", "out/l.elf"]
    case.outputs.append("out/l.elf")
    if rng.random() < 0.8:
        case.argv += ["--manifest", "out/l.alt.json"]
        case.outputs.append("out/l.alt.json")
    if rng.random() < 0.6:
        case.argv += ["--bin", "out/l.bin"]
        case.outputs.append("out/l.bin")
    if rng.random() < 0.2:
        case.argv.append("--sort-table")
    if rng.random() < 0.1:
        case.argv.append("--source-lines")
    if rng.random() < 0.3:  # the objects through a response file
        words = " ".join(f"'{o}'" for o in objs)
        r = rng.random()
        if r < 0.2:
            words += " @in.rsp" * rng.choice((1, 4))
            case.mutations.append("response file names itself")
        elif r < 0.3:
            words += " 'unbalanced"
            case.mutations.append("response file with an open quote")
        elif r < 0.4:
            words += " @missing.rsp"
            case.mutations.append("response file names a missing one")
        case.files["in.rsp"] = words.encode()
        objs = ["@in.rsp"]
    case.argv += ["--", s.fake_ld, "--copy-from=linked.elf", *img.link_tail, *objs, "-o",
                  "l.elf"]


# -- running one case (in a worker, or in-process for a replay) ------------------------------------

def _alarm(signum, frame):
    raise FuzzTimeout()


def _signature(exc: BaseException) -> str:
    """Type and the deepest frame in altlink: the same bug found twice is one failure."""
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if _in_package(f.filename)] or tb[-1:]
    where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def _in_package(filename: str) -> bool:
    """Whether a frame's file is one of the package's own modules: by the package's real
    directory, not by a name in the path (a clone named ``altlink`` holds the tests too)."""
    import altlink

    package = os.path.realpath(os.path.dirname(altlink.__file__)) + os.sep
    return os.path.realpath(filename).startswith(package)


def _reraise(e: BaseException) -> int:
    """In place of ``cli.internal_error`` while a case runs: the exception escapes to the
    harness, which keeps its deepest frame in altlink as the failure's signature."""
    raise e


def _names(case: Case) -> list[str]:
    """What a one-line error may name: the files of the command."""
    out = list(case.files)
    for name, data in case.files.items():  # and what a response file names
        if name.endswith(".rsp"):
            out += [w.strip("'@") for w in data.decode("latin-1").split()]
    for a in case.argv[1:]:
        for part in (a, a.split("=", 1)[-1]):
            if not part.startswith("-") and ("." in part or os.sep in part):
                out += [part, os.path.basename(part)]
    return [n for n in out if n]


def _leftovers(case_dir: str, before: set[str]) -> list[str]:
    out = []
    for d, _dirs, files in os.walk(case_dir):
        for f in files:
            p = os.path.relpath(os.path.join(d, f), case_dir)
            if f.startswith(".") and p not in before:
                out.append(p)
    return out


def _file_ranges(data: bytes, sites: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """File offsets of the sites, through the image's allocated sections (read here without
    altlink)."""
    lay = mutate.layout(data)
    out = []
    if lay is None:
        return out
    for _name, hoff, typ, off, size, _ent in lay.sections:
        flags = int.from_bytes(data[hoff + 8:hoff + 16], "little")
        addr = int.from_bytes(data[hoff + 16:hoff + 24], "little")
        if not flags & 2 or typ == mutate.SHT_NOBITS or not size:
            continue
        for a, n in sites:
            if addr <= a and a + n <= addr + size:
                out.append((off + a - addr, n))
    return out


def run_case(case: Case, case_dir: str, alarm: float = ALARM) -> Outcome:
    """Write the case's files into ``case_dir``, run it in this process, judge the result."""
    from altlink import cli, compact
    from altlink.errors import AltlinkError

    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(os.path.join(case_dir, "out"))
    for name, data in {**case.files, **case.old}.items():
        with open(os.path.join(case_dir, name), "wb") as f:
            f.write(data)
    before = {n for n in case.old}
    with open(os.path.join(case_dir, "case.json"), "w") as f:  # what --replay reads
        json.dump({"index": case.index, "target": case.target, "seed": case.seed,
                   "mutations": case.mutations, "argv": case.argv, "outputs": case.outputs,
                   "old": {k: v.decode("latin-1") for k, v in case.old.items()},
                   "sites": case.sites, "patched_from": case.patched_from}, f, indent=1)
    out, err = io.StringIO(), io.StringIO()
    res = Outcome(case.index, case.target, case.seed, case.mutations, case.argv, None, "ok")
    cwd = os.getcwd()
    saved = sys.stdout, sys.stderr
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    t0 = time.monotonic()
    try:
        os.chdir(case_dir)
        sys.stdout, sys.stderr = out, err
        signal.setitimer(signal.ITIMER_REAL, alarm)
        try:
            if case.argv[0] == "<compact.decode>":
                with open(case.argv[1], "rb") as f:
                    blob = f.read()
                try:
                    compact.decode(blob, case.argv[1])
                    res.rc = 0
                except AltlinkError as e:
                    err.write(f"{e}\n")
                    res.rc = e.exit_code
            else:
                report, cli.internal_error = cli.internal_error, _reraise
                try:
                    res.rc = cli.main(list(case.argv), out=out)
                finally:
                    cli.internal_error = report
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except FuzzTimeout as e:
        res.status, res.signature = "hang", "timeout in " + _signature(e)[len("FuzzTimeout at "):]
        res.detail = "".join(traceback.format_exception(e)[-6:])
    except MemoryError as e:
        res.status, res.signature = "memory", _signature(e)
        res.detail = "".join(traceback.format_exception(e))
    except BaseException as e:  # noqa: BLE001  (what the fuzzer is looking for)
        res.status, res.signature = "exception", _signature(e)
        res.detail = "".join(traceback.format_exception(e))
    finally:
        res.seconds = time.monotonic() - t0
        sys.stdout, sys.stderr = saved
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(cwd)
    if res.status == "ok":
        _judge(case, case_dir, res, err.getvalue(), before)
    return res


_VALIDATOR = []


def _schema_problem(path: str) -> str | None:
    """Why the shipped JSON Schema refuses a manifest altlink wrote (None: it accepts it, or
    jsonschema is not installed)."""
    if not _VALIDATOR:
        try:
            import jsonschema

            from altlink.manifest import SCHEMA_FILE
            with open(SCHEMA_FILE) as f:
                _VALIDATOR.append(jsonschema.Draft202012Validator(json.load(f)))
        except ImportError:
            _VALIDATOR.append(None)
    if _VALIDATOR[0] is None:
        return None
    with open(path, encoding="utf-8") as f:
        m = json.load(f)
    err = next(iter(_VALIDATOR[0].iter_errors(m)), None)
    if err is None:
        return None
    where = "/".join(str(p) for p in err.absolute_path)
    return f"{where}: {err.message[:200]}"


def _judge(case: Case, case_dir: str, res: Outcome, err: str, before: set[str]) -> None:
    def fail(status: str, signature: str, detail: str) -> None:
        res.status, res.signature, res.detail = status, signature, detail

    verb = case.argv[0]
    if res.rc not in (0, 1, 2):
        return fail("exit", f"{verb} exit {res.rc}", err[-2000:])
    if res.rc == 2:
        lines = err.splitlines()
        if len(lines) != 1 or not lines[0].strip():
            return fail("stderr", f"{verb} exit 2 with {len(lines)} lines", err[-2000:])
        names = _names(case)
        usage = lines[0].startswith(("--caps:", f"altlink {verb}: argument "))
        if not any(n in lines[0] for n in names) and not usage:
            words = " ".join(w for w in lines[0].split()[:3] if not any(c.isdigit() for c in w))
            return fail("unnamed", f"{verb} exit 2 names no file: {words}", lines[0])
    left = _leftovers(case_dir, before)
    if left:
        return fail("leftover", f"{verb} left temporary files", ", ".join(left))
    for o in case.outputs:
        p = os.path.join(case_dir, o)
        exists = os.path.exists(p)
        data = open(p, "rb").read() if exists else None
        if res.rc == 0:
            if o in case.old and data == case.old[o] and not o.endswith(".bin"):
                return fail("output", f"{verb} exit 0 kept the old {o}", o)
        elif verb == "link":  # a failed link removes its earlier outputs too
            if exists:
                return fail("output", f"{verb} exit {res.rc} left {o}", o)
        elif o in case.old:
            if data != case.old[o]:
                return fail("output", f"{verb} exit {res.rc} changed {o}", o)
        elif exists:
            return fail("output", f"{verb} exit {res.rc} wrote {o}", o)
    for o in case.outputs:
        if res.rc == 0 and o.endswith(".json") and os.path.exists(os.path.join(case_dir, o)):
            problem = _schema_problem(os.path.join(case_dir, o))
            if problem:
                return fail("schema", f"{verb} wrote a manifest the schema refuses: "
                            f"{problem.split(':')[0]}", problem)
    if verb == "patch" and res.rc == 0 and case.sites is not None and case.patched_from:
        src = os.path.join(case_dir, case.patched_from)
        with open(src, "rb") as f:
            a = f.read()
        with open(os.path.join(case_dir, "out/p.elf"), "rb") as f:
            b = f.read()
        if len(a) != len(b):
            return fail("patch", "patch changed the image's size", f"{len(a)} -> {len(b)}")
        allowed = _file_ranges(a, case.sites)
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y and not any(o <= i < o + n for o, n in allowed):
                return fail("patch", "patch wrote outside the sites", f"file offset {i:#x}")


# -- the worker --------------------------------------------------------------------------------------

def limit_resources(memory: int = MEMORY) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE, FILE_SIZE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def worker_main(seed_dir: str, work_dir: str, seed: int, alarm: float, memory: int) -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    log = os.open(os.path.join(work_dir, "worker.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)  # anything a library prints goes to the log, not into the protocol
    os.dup2(log, 2)
    for k in ("ALTLINK_ABI", "ALTLINK_NCAPS"):
        os.environ.pop(k, None)
    corpus = Corpus(load_seeds(seed_dir))
    import altlink.cli  # noqa: F401  (import before the limit: a case measures altlink alone)
    import altlink.emulate  # noqa: F401
    import altlink.link  # noqa: F401
    limit_resources(memory)
    case_dir = os.path.join(work_dir, "case")
    proto.write("ready\n")
    for line in sys.stdin:
        index = int(line)
        case = make_case(corpus, random.Random(f"{seed}:{index}"), index)
        res = run_case(case, case_dir, alarm)
        if res.status != "ok":
            with open(os.path.join(case_dir, "outcome.json"), "w") as f:
                json.dump(asdict(res), f, indent=1)
        proto.write(json.dumps(asdict(res)) + "\n")


class Worker:
    def __init__(self, seed_dir: str, work_dir: str, seed: int, alarm: float,
                 memory: int) -> None:
        self.work_dir = work_dir
        os.makedirs(work_dir, exist_ok=True)
        root = str(seeds.ROOT)
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.fuzz", "--worker", "--seed-dir", seed_dir,
             "--work-dir", work_dir, "--seed", str(seed), "--alarm", str(alarm),
             "--memory", str(memory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root, env=env, text=True,
            bufsize=1, start_new_session=True)
        self.current: int | None = None
        self.started = 0.0
        line = self._readline(120)
        if line != "ready\n":
            raise RuntimeError(f"fuzz worker did not start: {line!r}; see "
                               f"{work_dir}/worker.log")

    def _readline(self, timeout: float) -> str | None:
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if r else None

    def send(self, index: int) -> None:
        self.current, self.started = index, time.monotonic()
        self.proc.stdin.write(f"{index}\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


# -- the driver ----------------------------------------------------------------------------------

@dataclass
class Stats:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    targets: Counter = field(default_factory=Counter)
    exits: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)  # the first of each signature
    failure_count: int = 0

    def summary(self) -> str:
        rate = self.cases / self.seconds if self.seconds else 0.0
        lines = [f"seed {self.seed}: {self.cases} inputs in {self.seconds:.0f} s "
                 f"({rate:.1f}/s), {self.failure_count} failing, "
                 f"{len(self.failures)} distinct",
                 "  targets: " + ", ".join(f"{k} {v}" for k, v in sorted(self.targets.items())),
                 "  exits: " + ", ".join(f"{k} {v}" for k, v in sorted(self.exits.items(),
                                                                       key=str))]
        for f in self.failures:
            lines.append(f"  FAIL [{f['status']}] {f['signature']}: case {f['index']} "
                         f"({f['target']} {f['seed']}: {'; '.join(f['mutations'])})")
        return "\n".join(lines)


def fuzz(seed: int = 0, seconds: float | None = None, cases: int | None = None,
         workers: int = 1, work_dir: str | None = None, crash_dir: str | None = None,
         alarm: float = ALARM, memory: int = MEMORY, log: str | None = None,
         start: int = 0, progress=None, firmware: bool = True) -> Stats:
    """Run cases ``start, start+1, ...`` of ``seed`` until ``seconds`` pass or ``cases`` ran."""
    if seconds is None and cases is None:
        raise ValueError("give seconds or cases")
    own_tmp = work_dir is None
    work_dir = work_dir or tempfile.mkdtemp(prefix="altlink-fuzz-")
    seed_dir = os.path.join(work_dir, "seeds")
    if not os.path.exists(os.path.join(seed_dir, "seeds.json")):
        prepare_seeds(seed_dir, firmware)
    corpus = Corpus(load_seeds(seed_dir))
    stats = Stats(seed)
    logf = open(log, "a") if log else None
    pool = [Worker(seed_dir, os.path.join(work_dir, f"w{i}"), seed, alarm, memory)
            for i in range(workers)]
    t0 = time.monotonic()
    nxt = start
    seen: set[str] = set()

    def more() -> bool:
        if cases is not None and nxt - start >= cases:
            return False
        return seconds is None or time.monotonic() - t0 < seconds

    def record(res: dict, w: Worker) -> None:
        stats.cases += 1
        stats.targets[res["target"]] += 1
        stats.exits[res["rc"] if res["status"] == "ok" else res["status"]] += 1
        if logf:
            logf.write(json.dumps({k: res[k] for k in ("index", "target", "seed", "mutations",
                                                      "rc", "status", "seconds")}) + "\n")
        if res["status"] == "ok":
            return
        stats.failure_count += 1
        if crash_dir:
            dst = os.path.join(crash_dir, f"seed{seed}-case{res['index']}")
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(os.path.join(w.work_dir, "case"), dst, symlinks=True)
            with open(os.path.join(dst, "outcome.json"), "w") as f:
                json.dump(res, f, indent=1)
        if res["signature"] not in seen:
            seen.add(res["signature"])
            stats.failures.append(res)
        if progress:
            progress(f"FAIL [{res['status']}] {res['signature']} (case {res['index']})")

    try:
        for w in pool:
            if more():
                w.send(nxt)
                nxt += 1
        while any(w.current is not None for w in pool):
            busy = [w for w in pool if w.current is not None]
            r, _, _ = select.select([w.proc.stdout for w in busy], [], [], 1.0)
            now = time.monotonic()
            for w in busy:
                res = None
                restart = False
                if w.proc.stdout in r:
                    line = w.proc.stdout.readline()
                    if line:
                        res = json.loads(line)
                        restart = res["status"] in ("memory", "hang")
                    else:  # the worker died: a signal, an abort in C code, an exit
                        rc = w.proc.wait()
                        res = _dead(w, corpus, seed, rc)
                        restart = True
                elif now - w.started > alarm + GRACE:
                    w.kill()
                    res = _dead(w, corpus, seed, None)
                    restart = True
                if res is None:
                    continue
                idx = w.current
                w.current = None
                record(res, w)
                if restart:
                    w.kill()
                    i = pool.index(w)
                    pool[i] = w = Worker(seed_dir, w.work_dir, seed, alarm, memory)
                if more() and idx is not None:
                    w.send(nxt)
                    nxt += 1
    finally:
        for w in pool:
            w.close() if w.proc.poll() is None else None
        if logf:
            logf.close()
        stats.seconds = time.monotonic() - t0
        if own_tmp and not crash_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    return stats


def _dead(w: Worker, corpus: Corpus, seed: int, rc: int | None) -> dict:
    """The outcome of a case whose worker died or had to be killed (the case is made again
    here, from its seed and index, to name it)."""
    tail = ""
    with contextlib.suppress(OSError):
        with open(os.path.join(w.work_dir, "worker.log"), errors="replace") as f:
            tail = f.read()[-2000:]
    case = make_case(corpus, random.Random(f"{seed}:{w.current}"), w.current or 0)
    if rc is None:
        status, sig = "hang", f"{case.argv[0]}: killed after the alarm and grace period"
    else:
        status, sig = "died", f"{case.argv[0]}: worker died (exit {rc})"
    res = Outcome(case.index, case.target, case.seed, case.mutations, case.argv, None, status,
                  tail, sig, time.monotonic() - w.started)
    with contextlib.suppress(OSError):
        with open(os.path.join(w.work_dir, "case", "outcome.json"), "w") as f:
            json.dump(asdict(res), f, indent=1)
    return asdict(res)


def replay(case_dir: str, alarm: float = ALARM) -> Outcome:
    """Run a saved failing case again, in this process (from a copy of its directory)."""
    with open(os.path.join(case_dir, "case.json")) as f:
        saved = json.load(f)
    files = {}
    for d, _dirs, names in os.walk(case_dir):
        for n in names:
            p = os.path.relpath(os.path.join(d, n), case_dir)
            if p not in ("case.json", "outcome.json") and not p.startswith("out" + os.sep):
                with open(os.path.join(d, n), "rb") as f:
                    files[p] = f.read()
    case = Case(saved["index"], saved["target"], saved["seed"], saved["mutations"],
                saved["argv"], files, saved["outputs"],
                {k: v.encode("latin-1") for k, v in saved["old"].items()},
                [tuple(x) for x in saved["sites"]] if saved["sites"] is not None else None,
                saved["patched_from"])
    tmp = tempfile.mkdtemp(prefix="altlink-replay-")
    try:
        return run_case(case, os.path.join(tmp, "case"), alarm)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.fuzz", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--seconds", type=float, help="run for this long")
    p.add_argument("--cases", type=int, help="run this many cases")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first case number")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--work-dir", help="seeds and worker directories (default: a temporary one)")
    p.add_argument("--crash-dir", help="save every failing case here")
    p.add_argument("--log", help="append one JSON line per input tried")
    p.add_argument("--alarm", type=float, default=ALARM, help="seconds per case")
    p.add_argument("--memory", type=int, default=MEMORY, help="RLIMIT_AS of a worker, bytes")
    p.add_argument("--no-firmware", action="store_true",
                   help="leave out the sample firmware (build/*/fw.elf) from the seeds")
    p.add_argument("--replay", metavar="DIR", help="run one saved case in-process")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seed-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.seed_dir, args.work_dir, args.seed, args.alarm, args.memory)
        return 0
    if args.replay:
        res = replay(args.replay, args.alarm)
        print(json.dumps(asdict(res), indent=1))
        return 0 if res.status == "ok" else 1
    if args.seconds is None and args.cases is None:
        p.error("give --seconds or --cases")
    stats = fuzz(args.seed, args.seconds, args.cases, args.workers, args.work_dir,
                 args.crash_dir, args.alarm, args.memory, args.log, args.start,
                 progress=lambda s: print(s, file=sys.stderr, flush=True),
                 firmware=not args.no_firmware)
    print(stats.summary())
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
