"""Hostile input never crashes altlink (issue: "a link-stage tool reads whatever the compiler,
a vendor blob or an attacker hands it"): a bounded, deterministic run of the fuzz harness
(tests/fuzz/, docs/fuzzing.md), and one regression test per failure the fuzzer found, each on
a minimized input built here from a real toolchain seed (the mutation named in its docstring).

The allowed outcomes (docs/reference.md, section 4): exit 0, 1 or 2; exit 2 with exactly one line on stderr,
naming the file; never a traceback, a hang or an unbounded allocation.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz import fuzz as harness
from fuzz import mutate, seeds
from toolchain import ROOT, env_without_altlink_vars

from altlink import cli

pytestmark = pytest.mark.skipif(not seeds.have_toolchain(),
                                reason="the AArch64 GNU toolchain is not installed")



@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fuzz") / "seeds"
    harness.prepare_seeds(str(d), firmware=False)  # the same seeds on every run
    return d


def main(*args, cwd=None) -> tuple[int, str, str]:
    """``altlink ARGS`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    saved, old = sys.stderr, os.getcwd()
    sys.stderr = err
    try:
        if cwd:
            os.chdir(cwd)
        rc = cli.main([str(a) for a in args], out=out)
    finally:
        sys.stderr = saved
        os.chdir(old)
    return rc, out.getvalue(), err.getvalue()


def altlink(*args, cwd=None, memory: int | None = None) -> subprocess.CompletedProcess:
    """``python -m altlink ARGS`` as a process, under an address-space limit if given."""
    env = env_without_altlink_vars()
    env["PYTHONPATH"] = str(ROOT)

    def limit():
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "altlink", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, preexec_fn=limit, timeout=120)


def one_line_naming(err: str, name) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert str(name) in lines[0], err
    assert "Traceback" not in err


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ---- the bounded run ----------------------------------------------------------------------------

# (seed, cases): about 10 s each here; the long run is docs/fuzzing.md's command.
RUNS = [(1, 1200), (2, 1200), (3, 1200)]


@pytest.mark.parametrize("seed,cases", RUNS, ids=[f"seed{s}" for s, _ in RUNS])
def test_fuzz_bounded_run(seed_dir, seed, cases):
    stats = harness.fuzz(seed=seed, cases=cases, work_dir=str(seed_dir.parent))
    assert stats.cases == cases
    assert stats.failures == [], stats.summary()
    # The run reaches every target, and every outcome docs/reference.md, section 4, allows.
    assert set(stats.targets) == set(harness.TARGETS) - {"blob"}  # no firmware: no blob
    assert {0, 1, 2} <= set(stats.exits)


def _case(files: dict, argv: list, **kw) -> harness.Case:
    return harness.Case(0, "test", "", [], argv, {k: v.encode() for k, v in files.items()}, **kw)


def test_harness_reports_a_hang_and_an_escaping_exception(seed_dir, tmp_path):
    """The oracles: a Python callback that never returns is stopped by the per-case alarm, one
    that raises SystemExit (which cli.main does not catch) is an escaped exception."""
    base = ["patch", str(seed_dir / "v61.elf"), "--manifest", str(seed_dir / "v61.alt.json"),
            "--caps", "LSE", "-o", "out/p.elf", "--callbacks", "cb.py"]
    res = harness.run_case(_case({"cb.py": "def patch_cb(rec, words, n):\n    while True:\n"
                                  "        pass\n"}, base, outputs=["out/p.elf"]),
                           str(tmp_path / "a"), alarm=1.0)
    assert res.status == "hang" and "patch.py" in res.signature, res
    res = harness.run_case(_case({"cb.py": "def patch_cb(rec, words, n):\n"
                                  "    raise SystemExit(5)\n"}, base), str(tmp_path / "b"))
    assert res.status == "exception" and res.signature.startswith("SystemExit at "), res
    res = harness.run_case(_case({"cb.py": "def patch_cb(rec, words, n):\n"
                                  "    return [0xd503201f] * n\n"}, base,
                                 outputs=["out/p.elf"]), str(tmp_path / "c"))
    assert res.status == "ok" and res.rc == 0, res


def test_harness_reports_an_exit_2_naming_no_file_and_keeps_old_outputs(seed_dir, tmp_path):
    res = harness.run_case(_case({}, ["patch", str(seed_dir / "v61.elf"), "--manifest",
                                      str(seed_dir / "v61.alt.json"), "--caps", "NOPE", "-o",
                                      "out/p.elf"]), str(tmp_path / "a"))
    assert res.status == "ok" and res.rc == 2  # "--caps: unknown capability": a usage error
    res = harness.run_case(_case({}, ["patch", str(seed_dir / "v61.elf"), "--caps", "0"]),
                           str(tmp_path / "u"))
    assert res.status == "unnamed" and res.rc == 2, res  # missing options: names no file
    # A run that succeeds may replace an old output; one that fails must not touch it.
    argv = ["manifest", "--ncaps", "4", str(seed_dir / "v417.elf"), "-o", "out/m.json"]
    res = harness.run_case(_case({}, argv, outputs=["out/m.json"],
                                 old={"out/m.json": b"old\n"}), str(tmp_path / "b"))
    assert res.status == "ok" and res.rc == 0, res
    res = harness.run_case(_case({}, [*argv[:3], "missing.elf", *argv[4:]],
                                 outputs=["out/m.json"], old={"out/m.json": b"old\n"}),
                           str(tmp_path / "c"))
    assert res.status == "ok" and res.rc == 2, res


# ---- regressions: one per failure the fuzzer found --------------------------------------------


def test_emulate_runs_under_an_address_space_limit(seed_dir, tmp_path):
    """unicorn reserved a 1 GiB code buffer for every emulator: under ``ulimit -v`` (the
    fuzzer's 1 GiB RLIMIT_AS) ``patch --emulate`` killed the process from C (exit 1, "Could
    not allocate dynamic translator buffer"), leaving no message naming a file."""
    out = tmp_path / "p.elf"
    proc = altlink("patch", seed_dir / "v61.elf", "--manifest", seed_dir / "v61.alt.json",
                   "--caps", "LSE", "-o", out, "--emulate", "patch_cb", memory=1 << 30)
    assert proc.returncode == 0, proc.stderr
    assert "applied 2 of 6" in proc.stderr
    # The callback ran: the site of entry 4 (a nop) is now "mov w0, #7".
    m = json.loads((seed_dir / "v61.alt.json").read_text())
    off = m["entries"][4]["site"]["file_offset"]
    assert out.read_bytes()[off:off + 4] == struct.pack("<I", 0x528000E0 | 0x1F)


def edited_manifest(seed_dir: Path, tmp_path: Path, edit, name: str = "v61") -> Path:
    """The seed image's manifest with one edit (a function of the manifest dict), as the
    fuzzer made it; the image's sha256 still matches, so the patcher reads every entry."""
    m = json.loads((seed_dir / f"{name}.alt.json").read_text())
    edit(m)
    p = tmp_path / "bad.alt.json"
    p.write_text(json.dumps(m))
    return p


def _set(path: str, value):
    """An edit that sets the node at ``a/b/0/c`` to ``value`` (deletes it for ``...``)."""
    def edit(m):
        keys = [int(k) if k.isdigit() else k for k in path.split("/")]
        node = m
        for k in keys[:-1]:
            node = node[k]
        if value is ...:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return edit


# (path, value) the fuzzer set, each of which made patch, show, diff or verify raise; and the
# commands that do not refuse that manifest (exit 2), with their exit status: show prints what
# it can, diff says the manifests differ (1, as diff(1)), verify that the manifest does not
# belong to the image (1).
_READABLE = {"show": 0, "diff": 1, "verify": 1}
BAD_MANIFEST_FIELDS = [
    ("entries/5/site/address", ..., _READABLE),  # "manifest: entry 5 site address ..." named no file
    ("entries/2/cap_raw", ["nop"], {}),  # the same
    ("caps", "63", {}),  # AttributeError in parse_caps
    ("abi", [[]], _READABLE),  # ValueError: unknown ABI profile, from insn.relocate
    ("abi", "linux-v9", _READABLE),
    ("entries/2/site/length", "0x" + "f" * 5000, {}),  # ValueError: int too long to print
    ("entries/5/callback/symbol", [["x"]], {}),  # TypeError: unhashable list
    ("entries/4/kind", [None, "22"], {}),  # TypeError in diff: unhashable key
    ("entries/1/kind", [{"insn": {}}], {}),
    ("entries/0/index", ..., {"patch": 1, "show": 0, "diff": 0, "verify": 0}),
    ("entries/3/site/symbol", {"a": 1}, {}),
]


@pytest.mark.parametrize("path,value,status", BAD_MANIFEST_FIELDS,
                         ids=[f"{p}={str(v)[:12]}" for p, v, _ in BAD_MANIFEST_FIELDS])
def test_bad_manifest_field_is_one_line_naming_the_manifest(seed_dir, tmp_path, path, value,
                                                            status):
    bad = edited_manifest(seed_dir, tmp_path, _set(path, value))
    image, good = seed_dir / "v61.elf", seed_dir / "v61.alt.json"
    out = tmp_path / "p.elf"
    for args in (["patch", image, "--manifest", bad, "--caps", "0,1,2,3", "-o", out,
                  "--emulate", "patch_cb", "--max-insns", "1000"],
                 ["show", bad], ["diff", good, bad], ["diff", bad, good], ["verify", image, bad]):
        rc, _, err = main(*args)
        assert rc == status.get(args[0], 2), (args, err)
        if rc == 2:
            one_line_naming(err, bad)
        assert not out.exists() or args[0] != "patch" or rc == 0


def test_deeply_nested_manifest_is_exit_2(tmp_path):
    """json.load raised RecursionError (not a ValueError) on 10,000 nested lists."""
    p = tmp_path / "deep.json"
    p.write_text("[" * 10000 + "]" * 10000)
    for args in (["show", p], ["diff", p, p]):
        rc, _, err = main(*args)
        assert rc == 2
        one_line_naming(err, p)


def poke(data: bytes, section: str, offset: int, size: int, value: int) -> bytes:
    """``data`` with ``size`` bytes at ``offset`` in ``section`` (a seed's layout) set."""
    sec = mutate.layout(data).named(section)[0]
    buf = bytearray(data)
    mutate.poke(buf, sec[3] + offset, size, value)
    return bytes(buf)


def alt_field(data: bytes, entry: int, name: str, value: int) -> bytes:
    off, size = mutate.ALT_FIELDS[name]
    return poke(data, ".altinstructions", 12 * entry + off, size, value)


def phdr_field(data: bytes, index: int, name: str, value: int) -> bytes:
    lay = mutate.layout(data)
    off, size = mutate.PHDR_FIELDS[name]
    buf = bytearray(data)
    mutate.poke(buf, lay.phoff + index * mutate.PHDR.size + off, size, value)
    return bytes(buf)


def with_manifest(seed_dir: Path, tmp_path: Path, data: bytes, name: str = "v61"):
    """A mutated image and its seed's manifest, its sha256 made to match (as the fuzzer's
    patch cases do, so that the patcher reads the mutated image)."""
    img = tmp_path / "in.elf"
    img.write_bytes(data)
    m = json.loads((seed_dir / f"{name}.alt.json").read_text())
    m["image"]["sha256"] = hashlib.sha256(data).hexdigest()
    mp = tmp_path / "in.alt.json"
    mp.write_text(json.dumps(m))
    return img, mp


def test_manifest_of_a_site_length_not_a_multiple_of_4(seed_dir, tmp_path):
    """orig_len 0xff in an image: the manifest disassembled 255 bytes and insn.disasm raised
    ValueError (fuzz: elf-manifest fw.elf .altinstructions[3].orig_len=0xff; here 14 bytes,
    which the seed's small .text holds). The whole words are disassembled."""
    img = tmp_path / "in.elf"
    img.write_bytes(alt_field((seed_dir / "v417.elf").read_bytes(), 3, "orig_len", 14))
    rc, _, err = main("manifest", "--ncaps", "4", img, "-o", tmp_path / "m.json")
    assert rc == 0, err
    m = json.loads((tmp_path / "m.json").read_text())
    # check refuses the entry (ALT003): the manifest leaves it out; `show`, which lists every
    # entry, disassembles it.
    assert {(r["index"], r["code"]) for r in m["refused"]} >= {(3, "ALT003")}
    assert 3 not in [e["index"] for e in m["entries"]]
    from altlink import cli as climod

    m, _ = climod._image_manifest(str(img), climod.build_parser().parse_args(
        ["show", "--ncaps", "4", str(img)]), None)
    site = m["entries"][3]["site"]
    assert site["length"] == 14 and len(site["bytes"]) == 28
    assert site["disasm"][:3] == ["nop", "nop", "nop"]


def test_table_offsets_wrap_at_64_bits(seed_dir, tmp_path):
    """An offset of -2^31 from a table at 0x4000xx reaches below address 0: the manifest held
    "-0x7fbf..." (not an address) and --compact then failed with a second stderr line (fuzz:
    elf-manifest fw.elf .altinstructions[4].alt_offset=-0x80000000). The address wraps, as the
    runtime's 64-bit arithmetic does, and is reported outside the image (ALT012)."""
    img = tmp_path / "in.elf"
    img.write_bytes(alt_field((seed_dir / "v417.elf").read_bytes(), 4, "alt_offset",
                              -0x80000000))
    rc, _, err = main("manifest", "--ncaps", "4", img, "-o", tmp_path / "m.json",
                      "--compact", tmp_path / "m.altb")
    assert rc == 0, err
    assert "ALT012" in err and "-0x" not in err
    m = json.loads((tmp_path / "m.json").read_text())
    assert [r["code"] for r in m["refused"] if r["index"] == 4] == ["ALT012"]
    from altlink import cli as climod

    m, _ = climod._image_manifest(str(img), climod.build_parser().parse_args(
        ["show", "--ncaps", "4", str(img)]), None)
    cb, table = m["entries"][4]["callback"], int(m["table"]["address"], 16)
    assert cb["address"] == hex((table + 4 * 12 + 4 - 0x80000000) % (1 << 64))
    rc, _, err = main("check", "--ncaps", "4", img)
    assert rc == 1 and "-0x" not in err


def test_emulating_an_image_whose_segment_is_larger_on_disk_than_in_memory(seed_dir,
                                                                             tmp_path):
    """p_memsz below p_filesz: unicorn's mem_write to the unmapped rest raised UcError
    through patch (fuzz: elf-patch v61.elf phdr0.p_memsz=...). Now exit 1: the callback
    cannot be emulated, a finding for that entry."""
    data = (seed_dir / "v61.elf").read_bytes()
    data = phdr_field(data, 0, "p_memsz", 0x20)
    img, mp = with_manifest(seed_dir, tmp_path, data)
    out = tmp_path / "p.elf"
    rc, _, err = main("patch", img, "--manifest", mp, "--caps", "LSE", "-o", out,
                      "--emulate", "patch_cb")
    assert rc == 1, err
    assert "emulating callback patch_cb" in err and len(err.splitlines()) == 1
    assert not out.exists()


def section_field(data: bytes, section: str, name: str, value: int) -> bytes:
    sec = mutate.layout(data).named(section)[0]
    off, size = mutate.SHDR_FIELDS[name]
    buf = bytearray(data)
    mutate.poke(buf, sec[1] + off, size, value)
    return bytes(buf)


def test_raw_binary_of_far_apart_sections_is_refused(seed_dir, tmp_path):
    """One section address moved to 0x70000000 in a 130 KB image: ``patch --bin`` built a
    1.8 GB raw binary (5.5 GB of memory, 27 s), and under ``ulimit -v`` died with a
    MemoryError traceback. A raw binary is now bounded (rawbin.MAX_BIN): exit 2 naming the
    image, nothing written."""
    data = section_field((seed_dir / "v61.elf").read_bytes(), ".data", "sh_addr", 0x70000000)
    img, mp = with_manifest(seed_dir, tmp_path, data)
    out, binary = tmp_path / "p.elf", tmp_path / "p.bin"
    proc = altlink("patch", img, "--manifest", mp, "--caps", "0", "-o", out, "--bin", binary,
                   memory=1 << 30)
    assert proc.returncode == 2, proc.stderr
    one_line_naming(proc.stderr, img)
    assert "raw binary" in proc.stderr
    assert not out.exists() and not binary.exists()


# ---- the instruction limit of emulated callbacks ------------------------------------------------


@pytest.mark.parametrize("limit", [1000, None])
def test_instruction_limit_stops_a_callback_that_never_returns(seed_dir, tmp_path, limit):
    """spin_cb is ``b .``: the limit (default 1,000,000) ends it, a finding (exit 1) naming
    the entry and the limit, in well under the fuzzer's alarm."""
    out = tmp_path / "p.elf"
    args = ["patch", seed_dir / "v61.elf", "--manifest", seed_dir / "v61.alt.json", "--caps",
            "SPIN", "-o", out, "--emulate", "spin_cb"]
    if limit:
        args += ["--max-insns", limit]
    proc = altlink(*args)
    assert proc.returncode == 1, proc.stderr
    n = limit or 1_000_000
    assert proc.stderr.splitlines() == [
        f"entry 5: emulating callback spin_cb: the callback did not return within {n} "
        "instructions (stopped at pc 0x400030)"]
    assert not out.exists()


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_instruction_limit_must_be_positive(seed_dir, tmp_path, limit):
    """unicorn reads a count of 0 as "no limit" (and a negative one wraps): ``--max-insns 0``
    ran spin_cb for ever, in C, where no Python alarm reaches (fuzz: the driver killed the
    worker)."""
    out = tmp_path / "p.elf"
    proc = altlink("patch", seed_dir / "v61.elf", "--manifest", seed_dir / "v61.alt.json",
                   "--caps", "SPIN", "-o", out, "--emulate", "spin_cb", f"--max-insns={limit}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "--max-insns" in lines[0], proc.stderr
    assert not out.exists()


def test_emulator_refuses_a_limit_below_one(seed_dir):
    from altlink.elf import read_elf
    from altlink.emulate import Emulator
    from altlink.errors import AltlinkError

    data = bytearray((seed_dir / "v61.elf").read_bytes())
    with pytest.raises(AltlinkError, match="instruction limit"):
        Emulator(read_elf(str(seed_dir / "v61.elf")), data, max_insns=0)


# ---- inputs that name other files: thin archives, response files --------------------------------


def _ar_header(name: str, size: int) -> bytes:
    return f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{size:<10}`\n".encode()


def thin_archive(path: Path, member: str, size: int = 1000) -> Path:
    names = f"{member}/\n".encode()
    names += b"\n" * (len(names) & 1)
    path.write_bytes(b"!<thin>\n" + _ar_header("//", len(names)) + names
                     + _ar_header("/0", size))
    return path


@pytest.mark.parametrize("member", ["/dev/zero", "fifo"])
def test_thin_archive_member_that_is_not_a_regular_file(tmp_path, member):
    """A thin archive's member is a path: "/dev/zero" was read to the end, which never comes
    (memory without bound; under ulimit -v a MemoryError traceback), and a FIFO's open waited
    for a writer for ever."""
    if member == "fifo":
        os.mkfifo(tmp_path / "fifo")
    lib = thin_archive(tmp_path / "libthin.a", member)
    proc = altlink("scan", lib, memory=1 << 30)
    assert proc.returncode == 2, proc.stderr
    one_line_naming(proc.stderr, lib)
    assert f"{member} is not a regular file" in proc.stderr


def test_response_file_that_names_itself(seed_dir, tmp_path):
    """``@r`` where r holds "@r @r @r @r": 4^16 expansions (the depth limit alone does not
    bound the count): the link never started. Now at most 2000 response files, as libiberty's
    expandargv allows."""
    rsp = tmp_path / "r"
    rsp.write_text("@r @r @r @r\n")
    proc = subprocess.run([sys.executable, "-m", "altlink", "link", "-o", tmp_path / "x.elf",
                           "--", "aarch64-linux-gnu-ld", "@r"], cwd=tmp_path, timeout=60,
                          capture_output=True, text=True,
                          env={**env_without_altlink_vars(), "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "r: " in proc.stderr, proc.stderr
    assert "response files" in proc.stderr
    assert not (tmp_path / "x.elf").exists()


# ---- loops bounded by the input's own numbers -----------------------------------------------------


def test_callback_reach_scans_a_bounded_amount_of_code(tmp_path, monkeypatch):
    """ALT014 follows a callback's calls through the functions' symbol extents. Extents are
    st_size, a number from the file: 3990 functions each sized to the end of a 64 KiB pad
    made ``check`` of a 280 KB image scan 320 MB of code (6 s; 16 MB of pad: half an hour).
    The scan now has a budget (reach.MAX_SCAN bytes per image)."""
    from toolchain import compile as cc
    from toolchain import link as ld

    from altlink import reach
    from altlink.elf import read_elf

    n, pad = 3990, 65536
    lines = ["\t.text", "\t.globl _start", "\t.type _start, %function", "_start:",
             "site:\tnop", "\tret", "\t.size _start, . - _start",
             "\t.globl cb", "\t.type cb, %function", "cb:"]
    lines += [f"\tbl f{i}" for i in range(n)] + ["\tret", "\t.size cb, . - cb"]
    for i in range(n):
        lines += [f"\t.type f{i}, %function", f"f{i}:", "\tret"]
    lines += [f"\t.space {pad}", "end_text:"]
    lines += [f"\t.size f{i}, end_text - f{i}" for i in range(n)]
    lines += ['\t.pushsection .altinstructions, "a"', "\t.word site - .", "\t.word cb - .",
              "\t.hword 4", "\t.byte 4", "\t.byte 0", "\t.popsection"]
    src = tmp_path / "wide.S"
    src.write_text("\n".join(lines) + "\n")
    img = ld([cc(src, tmp_path / "wide.o")], tmp_path / "wide.elf", flags=["-Ttext=0x400000",
                                                                            "-e", "_start"])
    scanned = []
    calls = reach._calls
    monkeypatch.setattr(reach, "_calls", lambda e, s, t: scanned.append(t - s) or calls(e, s, t))
    elf = read_elf(str(img))
    cb = next(s.value for s in elf.symbols if s.name == "cb")
    reach.callback_reach(elf, {"cb": cb}, [])
    assert len(scanned) > 1  # it does follow the calls
    assert sum(scanned) <= reach.MAX_SCAN
    rc, _, err = main("check", "--ncaps", "4", img)
    assert rc == 0, err


@pytest.mark.parametrize("ncaps", ["100000000000", "0x10000000", "-3"])
def test_capability_header_with_a_huge_count(tmp_path, ncaps):
    """``#define ALT_NCAPS 100000000000`` with one capability defined: the reader listed the
    missing numbers 0..NCAPS-1 (a hang; under ulimit -v a MemoryError traceback)."""
    h = tmp_path / "caps.h"
    h.write_text(f"#define ALT_CAP_A 0\n#define ALT_NCAPS {ncaps}\n")
    proc = altlink("caps", h, memory=1 << 30)
    assert proc.returncode == 2, proc.stderr
    one_line_naming(proc.stderr, h)
    assert "ALT_NCAPS" in proc.stderr


def test_unusable_cap_table_is_the_only_line_even_when_the_profile_is_inferred(seed_dir,
                                                                                tmp_path):
    """Without --abi the profile is inferred from the table, with a note; a capability table
    that cannot be read then made exit 2 print two lines, the note first (fuzz: caps
    caps.txt: a line twice)."""
    caps = tmp_path / "caps.txt"
    caps.write_text("FAST_MUL\nCRC\nLSE\nSPIN\nSPIN\n")
    rc, _, err = main("scan", "--cap-table", caps, seed_dir / "seed-v61.o")
    assert rc == 2
    one_line_naming(err, caps)
    junk = tmp_path / "junk.elf"
    junk.write_bytes(b"\x7fELF\x02\x01")
    rc, _, err = main("check", "--symbols-from", junk, seed_dir / "seed-v61.o")
    assert rc == 2
    one_line_naming(err, junk)
    # An error after the profile is chosen (fuzz: elf-manifest v61.elf e_phnum=0x4000 with
    # --bin), and one after an LTO object's note: the notes are printed when the command
    # ends, not before an error.
    img = tmp_path / "in.elf"
    data = bytearray((seed_dir / "v61.elf").read_bytes())
    mutate.poke(data, mutate.EHDR_FIELDS["e_phnum"][0], 2, 0x4000)
    img.write_bytes(data)
    rc, _, err = main("manifest", img, "-o", tmp_path / "m.json", "--bin", seed_dir / "v61.bin")
    assert rc == 2
    one_line_naming(err, img)
    lto = tmp_path / "lto.o"
    lto.write_bytes(b"BC\xc0\xde" + b"\0" * 60)
    rc, _, err = main("check", lto, junk)
    assert rc == 2
    one_line_naming(err, junk)
    rc, _, err = main("scan", "--format", "json", lto, seed_dir / "seed-v61.o")
    assert rc == 0 and "lto.o: note: LTO object" in err and "bit 15" in err


def test_two_entries_sharing_a_replacement(seed_dir, tmp_path):
    """Entries 0 and 1 of an image with the same replacement (address and length): ALT017's
    sort of (start, end, entry) compared two Entry objects, a TypeError (fuzz: check fw.elf
    with .altinstructions' size enlarged over other data)."""
    data = (seed_dir / "v417.elf").read_bytes()
    sec = mutate.layout(data).named(".altinstructions")[0]
    alt0 = struct.unpack_from("<i", data, sec[3] + 4)[0]
    img = tmp_path / "in.elf"
    img.write_bytes(alt_field(data, 1, "alt_offset", alt0 - 12))
    rc, out, err = main("check", "--ncaps", "4", img)
    assert rc == 0 and err == "", err


def fake_linker(tmp_path: Path, image: Path) -> list[str]:
    """A linker command whose "linker" copies ``image`` to its -o (the fuzzer's link cases)."""
    ld = tmp_path / "fake-ld"
    ld.write_text(seeds.FAKE_LD)
    ld.chmod(0o755)
    return [str(ld), f"--copy-from={image}"]


def test_sort_table_of_an_entry_that_points_out_of_reach(seed_dir, tmp_path):
    """With ALT012 silenced, --sort-table rewrote an entry whose site is outside the image
    (wrapped below 0): its new relative offset did not fit the s32 field, a struct.error (fuzz:
    link --sort-table with -W no-ALT012 ..., orig_offset=-0x18202f11). Refused instead."""
    img = tmp_path / "linked.elf"
    img.write_bytes(alt_field((seed_dir / "v417.elf").read_bytes(), 0, "orig_offset",
                              -0x80000000))
    out = tmp_path / "out.elf"
    rc, _, err = main("link", "--ncaps", "4", "-W", "no-ALT012", "-W", "no-ALT013", "-W",
                      "no-ALT004", "--sort-table", "-o", out, "--",
                      *fake_linker(tmp_path, img), seed_dir / "seed-v417.o",
                      seed_dir / "libcb.a", "-o", out)
    assert rc == 2
    one_line_naming(err, out)
    assert "--sort-table refused" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name[0] == "."] == []


def test_cross_check_of_a_replacement_offset_below_its_section(seed_dir, tmp_path):
    """An object's replacement relocation with addend -2^63+8, ALT005 silenced: the
    cross-check unpacked the object's section at that offset, a struct.error (fuzz: link with
    .rela.altinstructions bytes changed)."""
    data = bytearray((seed_dir / "seed-v61.o").read_bytes())
    rs = mutate.layout(bytes(data)).named(".rela.altinstructions")[0]
    for i in range(rs[4] // 24):
        if struct.unpack_from("<Q", data, rs[3] + 24 * i)[0] == 4:  # entry 0's replacement
            struct.pack_into("<q", data, rs[3] + 24 * i + 16, -(1 << 63) + 8)
    obj = tmp_path / "in.o"
    obj.write_bytes(data)
    out = tmp_path / "out.elf"
    rc, _, err = main("link", "--abi", "linux-v6.1", "-W", "no-ALT005", "-o", out, "--",
                      *fake_linker(tmp_path, seed_dir / "v61.elf"), obj,
                      seed_dir / "libcb.a", "-o", out)
    assert rc == 0 and "Traceback" not in err, err


def test_check_of_a_misaligned_site_with_a_branch_to_re_encode(seed_dir, tmp_path):
    """Entry 1's site moved by 2 bytes in an image: re-encoding its replacement's branch
    for that site raised ValueError ("displacement +0x26 is not a multiple of 4"), which the
    checks did not expect (fuzz: check with .altinstructions bytes changed). The misaligned
    site is ALT003; its branch cannot be placed there, ALT009."""
    data = (seed_dir / "v61.elf").read_bytes()
    sec = mutate.layout(data).named(".altinstructions")[0]
    o1 = struct.unpack_from("<i", data, sec[3] + 12)[0]
    img = tmp_path / "in.elf"
    img.write_bytes(alt_field(data, 1, "orig_offset", o1 + 2))
    rc, out, err = main("check", "--abi", "linux-v6.1", "--format", "json", img)
    assert rc == 1, err
    codes = {f["code"] for f in json.loads(out)["findings"]}
    assert {"ALT003", "ALT009"} <= codes


def test_source_lines_of_file_names_that_are_not_utf8(seed_dir, tmp_path):
    """DWARF file names of bytes that are not UTF-8: addr2line's output was decoded as text,
    a UnicodeDecodeError while naming a finding's source line (fuzz: check an object with
    .debug_line_str bytes changed)."""
    data = bytearray((seed_dir / "seed-v61.o").read_bytes())
    lay = mutate.layout(bytes(data))
    s = lay.named(".debug_line_str")[0]
    for i in range(s[3], s[3] + s[4]):
        if data[i] not in (0, ord("/")):
            data[i] = 0xF4
    mutate.poke(data, lay.named(".altinstructions")[0][3] + 11, 1, 8)  # ALT001 for entry 0
    obj = tmp_path / "in.o"
    obj.write_bytes(data)
    rc, out, err = main("check", "--abi", "linux-v6.1", obj)
    assert rc == 1 and "ALT001" in out, err
