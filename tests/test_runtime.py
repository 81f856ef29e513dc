"""The C runtime (altlink/runtime/) against the offline patcher (altlink patch), on real images
under qemu-aarch64.

- The sample firmware, built by SCons with both toolchains and both profiles, for every subset
  of its capabilities: patched at run time from its own table, patched offline and run with
  --no-patch, and patched at run time from the compact manifest, each site runs the variant
  its capability says, and the three texts are byte-identical.
- A test driver (built here by hand, so that the link stage does not refuse what it should
  refuse) with generated alternatives: random replacement words of every kind, run one
  entry at a time through the runtime and through altlink.patch: the same bytes, or the same
  error at the same entry and instruction; a load bias; the callback's arguments.
- The compact manifest: encode/decode, its errors, `altlink manifest --compact`.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from toolchain import (
    INCLUDE,
    LDSCRIPTS,
    ROOT,
    compile,
    env_without_altlink_vars,
    link,
    qemu,
    run,
    write,
)

from altlink import cli, compact, insn, rawbin
from altlink import manifest as manifestmod
from altlink import patch as patchmod
from altlink.elf import read_elf
from altlink.errors import AltlinkError
from altlink.linkset import Input
from altlink.table import Profile

RUNTIME = ROOT / "altlink" / "runtime"
SAMPLE = ROOT / "samples"
SCONS = Path(sys.executable).parent / "scons"
ABIS = ("linux-v4.17", "linux-v6.1")
TOOLCHAINS = ("gnu", "llvm")


# ---- the sample, built by SCons into a temporary copy of the project --------------------

@dataclass(frozen=True)
class Sample:
    toolchain: str
    abi: str
    dir: Path

    @property
    def elf(self) -> Path:
        return self.dir / "fw.elf"

    @property
    def manifest(self) -> Path:
        return self.dir / "fw.alt.json"

    @property
    def bin(self) -> Path:
        return self.dir / "fw.bin"

    @property
    def blob(self) -> Path:
        return self.dir / "fw.altb"  # the compact manifest, built by samples/SConscript


_built: dict[tuple[str, str], Path] = {}


def build_sample(base: Path, abi: str) -> dict[str, Sample]:
    """The sample built with both toolchains for ``abi`` by the project's own SConstruct, in a
    copy of the project under ``base`` (the repository's build/ is left alone)."""
    key = (str(base), abi)
    if key not in _built:
        root = base / f"project-{abi}"
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        shutil.copy(ROOT / "SConstruct", root)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(SAMPLE, root / "samples", ignore=ignore)
        shutil.copytree(ROOT / "site_scons", root / "site_scons", ignore=ignore)
        env = env_without_altlink_vars()
        env["PATH"] = f"{SCONS.parent}{os.pathsep}{env.get('PATH', '')}"
        proc = subprocess.run([str(SCONS), "-Q", f"ALTLINK_ABI={abi}"], cwd=root, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _built[key] = root
    return {t: Sample(t, abi, _built[key] / "build" / t) for t in TOOLCHAINS}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[tuple[str, str], Sample]:
    base = tmp_path_factory.getbasetemp() / "samples"
    return {(t, abi): s for abi in ABIS for t, s in build_sample(base, abi).items()}


# ---- what the sample should print ---------------------------------------------------------

CAPS = ("HAS_FAST_MUL", "HAS_CRC", "HAS_LSE")
SUBSETS = [c for n in range(len(CAPS) + 1) for c in itertools.combinations(CAPS, n)]
_DOC_LINE = re.compile(r"^ \*   (site \w+|callback site)\s{2,}.*?\s{2,}(\()?(HAS_\w+)"
                       r"(?: under (linux-v[\d.]+)\))?$", re.M)


def site_caps() -> dict[str, tuple[str, str | None]]:
    """Each site's capability as main.c's header comment documents it: site -> (capability,
    the only profile where it applies, or None for every profile)."""
    text = (SAMPLE / "fw" / "main.c").read_text()
    found = {m[1]: (m[3], m[4] if m[2] else None) for m in _DOC_LINE.finditer(text)}
    assert len(found) == 6, f"main.c documents {sorted(found)}"
    return found


def expected(abi: str, subset, patched: bool = True) -> dict[str, str]:
    """site -> "patched" or "original". A callback site whose capability is documented for
    another profile always runs (linux-v4.17)."""
    out = {}
    for site, (cap, only_under) in site_caps().items():
        active = cap in subset or (only_under is not None and only_under != abi)
        out[site] = "patched" if patched and active else "original"
    return out


@dataclass(frozen=True)
class Run:
    variants: dict[str, str]
    text: bytes | None
    text_start: int | None


_TEXT_HEAD = re.compile(r"^text ([0-9a-f]{16})\.\.([0-9a-f]{16}):$")


def parse_run(proc: subprocess.CompletedProcess) -> Run:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    variants, hexdump, start, end = {}, [], None, None
    for line in proc.stdout.splitlines():
        m = _TEXT_HEAD.match(line)
        if m:
            start, end = int(m[1], 16), int(m[2], 16)
        elif start is not None:
            addr, data = line.split(" ")
            assert int(addr, 16) == start + 32 * len(hexdump)
            hexdump.append(data)
        else:
            site, variant = line.split(": ")
            variants[site] = variant
    text = bytes.fromhex("".join(hexdump)) if start is not None else None
    if text is not None:
        assert len(text) == end - start
    return Run(variants, text, start)


def offline_patch(sample: Sample, subset, out: Path, *extra: str) -> Path:
    args = ["patch", str(sample.elf), "--manifest", str(sample.manifest), "--caps",
            ",".join(subset), "--emulate", "fw_callback", "-o", str(out), *extra]
    assert cli.main(args) == 0
    return out


# ---- the sample: runtime, offline, blob ---------------------------------------------------

@pytest.mark.parametrize("subset", SUBSETS, ids=lambda s: "+".join(s) or "none")
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("abi", ABIS)
def test_runtime_offline_and_blob_agree(samples, tmp_path, abi, toolchain, subset):
    s = samples[toolchain, abi]
    want = expected(abi, subset)

    at_run_time = parse_run(qemu(s.elf, "--dump", *subset))
    assert at_run_time.variants == want

    image = offline_patch(s, subset, tmp_path / "patched.elf")
    offline = parse_run(qemu(image, "--no-patch", "--dump"))
    assert offline.variants == want
    assert offline.text == at_run_time.text

    from_blob = parse_run(qemu(s.elf, "--blob", s.blob, "--dump", *subset))
    assert from_blob.variants == want
    assert from_blob.text == at_run_time.text


@pytest.mark.parametrize("abi", ABIS)
def test_unpatched_run_dumps_the_image_text(samples, abi):
    """--no-patch runs every original, and --dump prints exactly the image's text (the raw
    binary starts at __text_start): what makes the comparisons above mean something."""
    s = samples["gnu", abi]
    got = parse_run(qemu(s.elf, "--no-patch", "--dump", *CAPS))
    assert got.variants == expected(abi, CAPS, patched=False)
    raw = s.bin.read_bytes()
    assert got.text_start == 0x400000
    assert got.text == raw[:len(got.text)]
    patched = parse_run(qemu(s.elf, "--dump", *CAPS))
    assert patched.text != got.text


def test_sample_reports_bad_arguments_and_blobs(samples, tmp_path):
    s = samples["gnu", "linux-v4.17"]
    bad = qemu(s.elf, "HAS_NOTHING")
    assert (bad.returncode, bad.stdout) == (2, "fw: unknown capability HAS_NOTHING\n")
    bad = qemu(s.elf, "--blob")  # without its FILE
    assert (bad.returncode, bad.stdout) == (2, "fw: unknown option --blob\n")

    missing = qemu(s.elf, "--blob", tmp_path / "missing.altb")
    assert missing.returncode == 1 and "cannot open" in missing.stdout

    corrupt = tmp_path / "corrupt.altb"
    corrupt.write_bytes(b"XXXX" + s.blob.read_bytes()[4:])
    got = qemu(s.elf, "--blob", corrupt, "HAS_CRC")
    assert got.returncode == 1
    assert "not a compact altlink manifest" in got.stdout
    assert "site" not in got.stdout  # no site ran

    other_profile = samples["gnu", "linux-v6.1"].blob
    got = qemu(s.elf, "--blob", other_profile, "HAS_CRC")
    assert got.returncode == 1 and "profile or ncaps differs" in got.stdout


# ---- the compact manifest -----------------------------------------------------------------

def test_compact_round_trip_matches_the_manifest(samples, tmp_path):
    for s in samples.values():
        m = manifestmod.load(str(s.manifest))
        data = s.blob.read_bytes()
        assert data == compact.encode(m)
        blob = compact.decode(data)
        assert blob.abi == m["abi"] and blob.ncaps == m["ncaps"]
        assert blob.table == int(m["table"]["address"], 16)
        assert blob.image_id == bytes.fromhex(m["image"]["sha256"])[:8]
        assert len(blob.entries) == len(m["entries"]) == 6
        for e, rec in zip(blob.entries, m["entries"]):
            assert e.site == int(rec["site"]["address"], 16)
            assert e.orig_len == rec["site"]["length"]
            assert e.cap_raw == rec["cap_raw"]
            if rec["kind"] == "callback":
                assert (e.alt, e.alt_len) == (int(rec["callback"]["address"], 16), 0)
            else:
                assert e.alt == int(rec["replacement"]["address"], 16)
                assert e.alt_len == e.orig_len
        # The layout, read independently of compact.py (README's table).
        magic, version, hsize, esize, profile, ncaps, count = struct.unpack_from(
            "<4sHHHBxIIxxxx", data)
        assert (magic, version, hsize, esize, count) == (b"ALTB", 2, 40, 32, 6)
        assert profile == ABIS.index(m["abi"]) and ncaps == m["ncaps"]
        assert len(data) == 40 + 32 * 6
        # Each entry's own address in the table (what a callback is given).
        table = int(m["table"]["address"], 16)
        for i, rec in enumerate(m["entries"]):
            (entry,) = struct.unpack_from("<Q", data, 40 + 32 * i + 24)
            assert entry == table + 12 * rec["index"] == blob.entries[i].entry


@pytest.mark.parametrize("abi", ABIS)
def test_compact_manifest_command_writes_only_the_blob(samples, tmp_path, capsys, abi):
    """`altlink manifest IMAGE --compact FILE` gives the blob the build made from the link's
    manifest; the JSON goes to -o only."""
    s = samples["llvm", abi]
    out = tmp_path / "fw.altb"
    args = ["manifest", str(s.elf), "--abi", abi, "--cap-table", str(SAMPLE / "fw" / "caps.txt"),
            "--bin", str(s.bin)]
    assert cli.main([*args, "--compact", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_bytes() == s.blob.read_bytes()
    both = tmp_path / "fw.json"
    out.unlink()
    assert cli.main([*args, "--compact", str(out), "-o", str(both)]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_bytes() == s.blob.read_bytes()
    assert manifestmod.load(str(both))["entries"] == manifestmod.load(str(s.manifest))["entries"]


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:20], "shorter than the 40-byte header"),
    (lambda b: b"ALTX" + b[4:], "not a compact altlink manifest"),
    (lambda b: b[:4] + b"\x03\x00" + b[6:], "version 3 is not supported"),
    (lambda b: b[:8] + b"\x10\x00" + b[10:], "below the minimum"),
    (lambda b: b[:10] + b"\x07" + b[11:], "unknown profile 7"),
    (lambda b: b[:16] + struct.pack("<I", 7) + b[20:], "7 entries of 32 bytes need 264 bytes"),
    (lambda b: b[:16] + struct.pack("<I", 1 << 30) + b[20:], "not a plausible table"),
    (lambda b: b + b"\0", "1 bytes after the last entry"),
])
def test_compact_decode_errors_are_one_line(samples, mutate, message):
    data = mutate(samples["gnu", "linux-v4.17"].blob.read_bytes())
    with pytest.raises(AltlinkError) as e:
        compact.decode(data, "fw.altb")
    assert message in str(e.value) and str(e.value).startswith("fw.altb: ")
    assert "\n" not in str(e.value)


def test_compact_decode_reads_a_longer_header_and_entries():
    """A later version may append fields: the sizes in the header say where things are."""
    m = {"abi": "linux-v4.17", "ncaps": 2, "image": {"sha256": "ab" * 32},
         "table": {"address": "0x5000"},
         "entries": [{"index": 0, "kind": "static", "cap_raw": 1,
                      "site": {"address": "0x4000", "length": 8},
                      "replacement": {"address": "0x4800", "bytes": "00" * 8}}]}
    data = compact.encode(m)
    longer = bytearray(data[:40] + b"\xee" * 8 + data[40:] + b"\xee" * 8)
    struct.pack_into("<HH", longer, 6, 48, 40)
    blob = compact.decode(bytes(longer))
    assert blob.entries == compact.decode(data).entries
    assert blob.entries[0] == compact.BlobEntry(0x4000, 0x4800, 1, 8, 8, 0x5000)


def test_compact_decode_reads_version_1():
    """Version 1: 24-byte entries, entry i the table's i-th (its address from the table's)."""
    v1 = struct.pack("<4sHHHBBIIIQ8s", b"ALTB", 1, 40, 24, 0, 0, 2, 2, 0, 0x5000, b"\xab" * 8)
    v1 += struct.pack("<QQHBBI", 0x4000, 0x4800, 1, 4, 4, 0) * 2
    blob = compact.decode(v1)
    assert [e.entry for e in blob.entries] == [0x5000, 0x500C]


def test_compact_encode_errors():
    base = {"abi": "linux-v4.17", "ncaps": 2, "image": {"sha256": "ab" * 32}, "entries": []}
    with pytest.raises(AltlinkError, match="profile 'linux-v9' is not one of"):
        compact.encode({**base, "abi": "linux-v9"})
    bad_site = {"index": 0, "kind": "static", "cap_raw": 1,
                "site": {"address": "0x1" + "0" * 16, "length": 4},
                "replacement": {"address": "0x10", "bytes": "00" * 4}}
    with pytest.raises(AltlinkError, match="entry 0 site address .* does not fit in 64 bits"):
        compact.encode({**base, "entries": [bad_site]})
    good = {**bad_site, "site": {"address": "0x10", "length": 4}}
    with pytest.raises(AltlinkError, match="entries must be in table order"):
        compact.encode({**base, "entries": [{**good, "index": 3}, {**good, "index": 1}]})


# ---- a test driver: generated alternatives, applied one entry at a time -------------------

DRIVER_C = r"""
/* Test driver: applies the table with the altlink runtime and prints the result and the text.
 *   drv table|blob|copy CAPS_HEX [BLOB]
 * copy: applies the blob to a copy of the text at another address (a load bias). */
#include <stddef.h>
#include <stdint.h>
#include <altlink/alternative.h>
#include "alt_runtime.h"
#include "fw.h"

extern char __text_start[], __text_end[];
extern struct alt_instr __alt_instructions[], __alt_instructions_end[];

static unsigned char blob[1 << 16];
static unsigned char copy[COPY_SIZE] __attribute__((aligned(4096)));

static void out(const char *s, unsigned long n) { sys_write(1, s, n); }

static void hex(uint64_t v, int digits)
{
	char b[16];
	for (int i = digits - 1; i >= 0; i--, v >>= 4)
		b[i] = "0123456789abcdef"[v & 0xf];
	out(b, (unsigned long)digits);
}

/* Checks its arguments: word 0 says whether alt is this site's entry, word 1 carries the
 * entry's cap and lengths, the rest are the site's words plus their index. */
alt_callback_fn drv_cb;
void drv_cb(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
	updptr[0] = (uint32_t *)ALT_ORIG_PTR(alt) == origptr && alt->orig_len == 4u * nr_inst
		? 0xd503201fu : 0xdeadbeefu;
	if (nr_inst > 1)
		updptr[1] = alt->cap | (uint32_t)alt->orig_len << 16 | (uint32_t)alt->alt_len << 24;
	for (int i = 2; i < nr_inst; i++)
		updptr[i] = origptr[i] + (uint32_t)i;
}

static long read_file(const char *path)
{
	long fd = sys_openat(-100, path, 0, 0), n, size = 0;
	if (fd < 0)
		return -1;
	while ((n = sys_read((int)fd, blob + size, sizeof(blob) - (unsigned long)size)) > 0)
		size += n;
	sys_close((int)fd);
	return size;
}

int fw_main(int argc, char **argv)
{
	uint64_t caps = 0;
	struct alt_config cfg = {
		.profile = ALT_PROFILE_DEFAULT, .ncaps = ALT_NCAPS, .caps = &caps, .caps_bits = 64,
	};
	struct alt_result res;
	const unsigned char *text = (const unsigned char *)__text_start;
	unsigned long size = (unsigned long)(__text_end - __text_start);
	char mode = argv[1][0];

	if (argc < 3 || size > sizeof(copy))
		return 2;
	for (const char *p = argv[2]; *p; p++)
		caps = caps << 4 | (uint64_t)(*p <= '9' ? *p - '0' : *p - 'a' + 10);
	if (mode == 't') {
		alt_apply_table(&cfg, __alt_instructions, __alt_instructions_end, &res);
	} else {
		long n = read_file(argv[3]);
		uintptr_t bias = 0;
		if (n < 0)
			return 3;
		if (mode == 'c') {
			for (unsigned long i = 0; i < size; i++)
				copy[i] = text[i];
			if (sys_mprotect(copy, sizeof(copy), 7) != 0)
				return 4;
			bias = (uintptr_t)copy - (uintptr_t)__text_start;
			text = copy;
		}
		alt_apply_blob(&cfg, blob, (size_t)n, bias, &res);
	}
	out("status ", 7); hex(res.status, 2);
	out(" entry ", 7); hex(res.entry, 8);
	out(" insn ", 6); hex((uint32_t)res.insn, 8);
	out(" word ", 6); hex(res.word, 8);
	out(" applied ", 9); hex(res.applied, 8);
	out("\n", 1);
	for (unsigned long i = 0; i < size; i += 32) {
		for (unsigned long j = i; j < i + 32 && j < size; j++)
			hex(text[j], 2);
		out("\n", 1);
	}
	return 0;
}
"""

# Sites in .text, then a gap, then the replacements: far enough for TBZ (+-32 KiB) to fail.
DRIVER_LD = """
ENTRY(_start)
PHDRS { text PT_LOAD FLAGS(7); data PT_LOAD FLAGS(6); }
SECTIONS
{
	. = 0x400000;
	__text_start = .;
	.text : { KEEP(*(.text.start)) *(.text .text.*) } :text
	.gap : { BYTE(0); . += 0x8fff; } :text
	INCLUDE alternatives.ld
	.rodata : { *(.rodata .rodata.*) }
	__text_end = .;
	. = ALIGN(4096);
	.data : { *(.data .data.*) } :data
	.bss : { . = ALIGN(16); __bss_start = .; *(.bss .bss.* COMMON) . = ALIGN(16); __bss_end = .; } :data
	/DISCARD/ : { *(.eh_frame .eh_frame_hdr .note.gnu.property) }
}
"""

NOP = 0xD503201F
STATUS = {"ok": 0, "length": 1, "immovable": 2, "pcrel-unknown": 3, "range": 4, "align": 9}


@dataclass(frozen=True)
class Alt:
    """One generated entry: the site's words, and the replacement's (None: a callback)."""

    cap: int
    site: tuple[int, ...]
    repl: tuple[int, ...] | None
    site_label: str | None = None  # share another entry's site
    misalign: str | None = None  # "site" or "repl": 2 bytes off a 4-byte boundary
    orig_len: int | None = None  # the table's orig_len when not 4 * len(site)


def driver_asm(alts: list[Alt], abi: str, ncaps: int) -> str:
    lines = ['\t.text', '\t.balign 4']
    for k, a in enumerate(alts):
        site = a.site_label or f"site_{k}"
        if a.site_label is None:
            pad = ["\t.byte 0, 0"] if a.misalign == "site" else []
            lines += ["\t.balign 4", *pad, f"{site}:"] + [f"\t.word {w:#010x}" for w in a.site]
        if a.repl is None:
            alt, cap = "drv_cb", (0x8000 | a.cap if abi == "linux-v6.1" else ncaps)
            alt_len = 0
        else:
            alt, cap, alt_len = f"repl_{k}", a.cap, 4 * len(a.repl)
            pad = ["\t.byte 0, 0"] if a.misalign == "repl" else []
            lines += ['\t.pushsection .altinstr_replacement, "ax"', '\t.balign 4', *pad,
                      f"{alt}:"]
            lines += [f"\t.word {w:#010x}" for w in a.repl] + ["\t.popsection"]
        orig_len = 4 * len(a.site) if a.orig_len is None else a.orig_len
        lines += ['\t.pushsection .altinstructions, "a"', '\t.balign 4',
                  f"\t.word {site} - .", f"\t.word {alt} - .", f"\t.hword {cap:#x}",
                  f"\t.byte {orig_len}, {alt_len}", "\t.popsection"]
    lines.append('\t.section .note.GNU-stack, "", %progbits')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Driver:
    elf: Path
    manifest: dict
    manifest_path: Path
    blob: Path
    abi: str


def build_driver(tmp: Path, alts: list[Alt], abi: str, toolchain: str = "gnu",
                 manifest: bool = True) -> Driver:
    tmp.mkdir(parents=True, exist_ok=True)
    ncaps = max(a.cap for a in alts) + 1
    defines = [f"ALT_NCAPS={ncaps}", "COPY_SIZE=0x20000"]
    if abi == "linux-v6.1":
        defines.append("ALTLINK_ABI_LINUX_V61")
    flags = [f"-I{RUNTIME}", f"-I{SAMPLE / 'fw'}", "-Wall", "-Werror"]
    objs = [
        compile(SAMPLE / "fw" / "start.S", tmp / "start.o", toolchain),
        compile(write(tmp / "sites.S", driver_asm(alts, abi, ncaps)), tmp / "sites.o",
                toolchain),
        compile(write(tmp / "drv.c", DRIVER_C), tmp / "drv.o", toolchain, flags, defines),
        compile(RUNTIME / "alt_runtime.c", tmp / "alt_runtime.o", toolchain, flags, defines),
    ]
    ld_flags = [f"-L{LDSCRIPTS}"] + (["--no-relax"] if toolchain == "llvm" else [])
    elf = link(objs, tmp / "drv.elf", toolchain, write(tmp / "drv.ld", DRIVER_LD), ld_flags)
    m_path, blob = tmp / "drv.alt.json", tmp / "drv.altb"
    if not manifest:
        return Driver(elf, {}, m_path, blob, abi)
    # The whole table, the entries check refuses included (through the API: the command
    # leaves them out): what the runtime and the patcher do with each is what is compared.
    e = read_elf(str(elf))
    m = manifestmod.build(Input.load(e), Profile(abi, ncaps), None, str(elf),
                          manifestmod.sha256_file(str(elf)), str(m_path))
    m_path.write_text(manifestmod.dumps(m))
    blob.write_bytes(compact.encode(m))
    return Driver(elf, manifestmod.load(str(m_path)), m_path, blob, abi)


@dataclass(frozen=True)
class Outcome:
    status: int
    entry: int | None
    insn: int | None
    text: bytes | None  # the text after patching, when it succeeded


def run_driver(d: Driver, caps: set[int], mode: str = "table") -> Outcome:
    args = [mode, f"{sum(1 << c for c in caps):x}"] + ([d.blob] if mode != "table" else [])
    proc = qemu(d.elf, *args)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[:400], proc.stderr)
    head, *dump = proc.stdout.splitlines()
    f = dict(zip(head.split()[::2], (int(v, 16) for v in head.split()[1::2])))
    if f["status"]:
        insn_ = f["insn"] if f["insn"] != 0xFFFFFFFF else None
        return Outcome(f["status"], f["entry"], insn_, None)
    return Outcome(0, None, None, bytes.fromhex("".join(dump)))


_PATCH_ERROR = re.compile(r"^entry (\d+): (?:replacement instruction (\d+) .*\((ALT00[89])\)|"
                          r"(site length|site|replacement) .*)$")


def patch_offline(d: Driver, caps: set[int]) -> Outcome:
    """altlink.patch on the same image: the raw binary (which starts at __text_start), or the
    error in the runtime's terms."""
    raw = rawbin.raw_binary(read_elf(str(d.elf)))
    plan = patchmod.Plan(frozenset(caps), frozenset({"drv_cb"}), refuse=False)
    try:
        res = patchmod.patch(str(d.elf), d.manifest, plan, binary=raw)
    except patchmod.PatchError as e:
        m = _PATCH_ERROR.match(str(e))
        assert m, str(e)
        if m[4]:  # the shape of the entry, not one of its instructions
            status = "align" if "aligned" in str(e) else "length"
            return Outcome(STATUS[status], int(m[1]), None, None)
        entry, i = int(m[1]), int(m[2])
        if m[3] == "ALT009":
            return Outcome(STATUS["range"], entry, i, None)
        code = bytes.fromhex(d.manifest["entries"][entry]["replacement"]["bytes"])
        kind = insn.classify(struct.unpack_from("<I", code, 4 * i)[0]).kind
        return Outcome(STATUS[kind], entry, i, None)
    return Outcome(0, None, None, res.binary)


def same_outcome(runtime: Outcome, offline: Outcome, label: str) -> None:
    if offline.status:
        assert (runtime.status, runtime.entry, runtime.insn) == \
            (offline.status, offline.entry, offline.insn), label
    else:
        assert runtime.status == 0, (label, runtime)
        assert runtime.text == offline.text[:len(runtime.text)], label


# ---- generated instruction words ---------------------------------------------------------

def _field(value: int, bits: int) -> int:
    return value & ((1 << bits) - 1)


def _offset(r: random.Random, pos: int, n: int, bits: int) -> int:
    """A displacement in instructions: inside the replacement, to its end, small, or near
    either end of the field."""
    lim = 1 << (bits - 1)
    return r.choice([
        lambda: r.randrange(-pos, n - pos + 1),   # inside, end inclusive
        lambda: n - pos + r.randrange(1, 4),       # just past the end
        lambda: -pos - r.randrange(1, 4),          # just before the start
        lambda: r.randrange(-64, 64),
        lambda: r.randrange(lim - 0x2400, lim),    # near the top of the field
        lambda: r.randrange(-lim, -lim + 0x2400),  # near the bottom
        lambda: r.randrange(-lim, lim),
    ])()


def random_word(r: random.Random, pos: int, n: int) -> int:
    kind = r.choices(["plain", "b", "bcond", "cbz", "tbz", "adrp", "bad"],
                     [25, 15, 15, 10, 15, 12, 8])[0]
    if kind == "plain":
        return r.choice([NOP, 0x91000000 | r.getrandbits(22),  # add x, x, #imm
                         0xD2800000 | r.getrandbits(21),        # movz x
                         0x8B000000 | r.getrandbits(21)])       # add x, x, x
    if kind == "b":
        return (r.getrandbits(1) << 31) | 0x14000000 | _field(_offset(r, pos, n, 26), 26)
    if kind == "bcond":  # B.cond or BC.cond
        return 0x54000000 | _field(_offset(r, pos, n, 19), 19) << 5 | r.getrandbits(5)
    if kind == "cbz":
        return (r.getrandbits(1) << 31) | 0x34000000 | r.getrandbits(1) << 24 | \
            _field(_offset(r, pos, n, 19), 19) << 5 | r.getrandbits(5)
    if kind == "tbz":
        return (r.getrandbits(1) << 31) | 0x36000000 | r.getrandbits(6) << 18 | \
            _field(_offset(r, pos, n, 14), 14) << 5 | r.getrandbits(5)
    if kind == "adrp":
        imm = r.choice([r.randrange(-8, 8), r.randrange((1 << 19) - 16, 1 << 19),
                        r.randrange(-(1 << 19), -(1 << 19) + 16),
                        r.randrange(-(1 << 20), 1 << 20)])
        imm = _field(imm, 21)
        return 0x90000000 | (imm & 3) << 29 | (imm >> 2) << 5 | r.getrandbits(5)
    return r.choice([
        0x10000000 | r.getrandbits(24),                          # ADR
        0x18000000 | r.getrandbits(24),                          # LDR w literal
        0x58000000 | r.getrandbits(24),                          # LDR x literal
        0x98000000 | r.getrandbits(24),                          # LDRSW literal
        0xD8000000 | r.getrandbits(24),                          # PRFM literal
        0x1C000000 | r.getrandbits(24),                          # LDR s literal
        0x9C000000 | r.getrandbits(24),                          # LDR q literal
        0xDC000000 | r.getrandbits(24),                          # unallocated literal slot
        (r.getrandbits(1) << 31) | 0x74000000 | r.getrandbits(25),  # FEAT_CMPBR
    ])


def random_alts(seed: int, count: int) -> list[Alt]:
    r = random.Random(seed)
    alts = []
    for k in range(count):
        n = r.randint(1, 3)
        site = tuple(NOP for _ in range(n))
        if k % 9 == 4:
            alts.append(Alt(k, site, None))  # a callback
        else:
            alts.append(Alt(k, site, tuple(random_word(r, i, n) for i in range(n))))
    return alts


@pytest.mark.parametrize("abi", ABIS)
def test_runtime_matches_the_offline_patcher_on_random_replacements(tmp_path, abi):
    """Each entry alone (its capability the only one), then all at once: the runtime and
    altlink.patch give the same text, or fail at the same entry and instruction."""
    alts = random_alts(seed=20 + ABIS.index(abi), count=36)
    d = build_driver(tmp_path, alts, abi)
    kinds = set()
    for k in range(len(alts)):
        offline = patch_offline(d, {k})
        kinds.add(offline.status)
        same_outcome(run_driver(d, {k}), offline, f"entry {k} alone")
    every = set(range(len(alts)))
    same_outcome(run_driver(d, every), patch_offline(d, every), "every capability")
    same_outcome(run_driver(d, every, "blob"), patch_offline(d, every), "every, from the blob")
    # The generator reaches every outcome: success, unmovable, unknown, out of range.
    assert kinds >= {0, STATUS["immovable"], STATUS["pcrel-unknown"], STATUS["range"]}, kinds


B = 0x14000000
TBZ_W0 = 0x36000000          # tbz w0, #0, .+0
ADRP_X0 = 0x90000000         # adrp x0, .+0


def adrp(pages: int) -> int:
    imm = _field(pages, 21)
    return ADRP_X0 | (imm & 3) << 29 | (imm >> 2) << 5


GOOD = [
    Alt(0, (NOP, NOP), (0xD2800020, B | 1)),             # movz x0,#1; b to the end: inside
    Alt(1, (NOP,), (B | 0x40,)),                          # b out of the replacement
    Alt(2, (NOP, NOP, NOP), (adrp(0), 0x91000000, adrp(-3))),
    Alt(3, (NOP,), (TBZ_W0 | _field(-0x2000, 14) << 5,)),  # tbz -32 KiB: fits at the site
    Alt(4, (NOP, NOP, NOP), None),                        # callback
    Alt(5, (NOP, NOP, NOP), (0xD2800040, 0xD2800060, 0xD2800080), site_label=None),
    Alt(6, (NOP, NOP, NOP), None, site_label="site_5"),   # callback on a site patched above
    Alt(7, (NOP,), (0x54000000 | _field(0x3000, 19) << 5 | 0x10,)),  # bc.eq out, re-encoded
]


@pytest.mark.parametrize("abi", ABIS)
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_runtime_table_blob_and_load_bias_agree(tmp_path, abi, toolchain):
    """The same result from the table, from the blob, and from the blob applied to a copy of
    the text at another address; the callback sees its own entry and what earlier entries
    wrote to its site."""
    d = build_driver(tmp_path, GOOD, abi, toolchain)
    for caps in ({1, 5}, set(range(8)), {2, 3, 4, 6, 7}):
        offline = patch_offline(d, caps)
        table = run_driver(d, caps)
        same_outcome(table, offline, f"table {caps}")
        assert run_driver(d, caps, "blob") == table
        assert run_driver(d, caps, "copy") == table
    text = run_driver(d, set(range(8))).text
    words = dict(_site_words(d, text))
    # entry 5 then callback 6: the callback's word 0 says alt matched the site, word 1 has
    # the cap and lengths, word 2 is entry 5's word plus 2.
    cap6 = 0x8006 if abi == "linux-v6.1" else 8
    assert words[5] == [NOP, cap6 | 12 << 16, 0xD2800080 + 2]
    cap4 = 0x8004 if abi == "linux-v6.1" else 8
    assert words[4] == [NOP, cap4 | 12 << 16, NOP + 2]


def _site_words(d: Driver, text: bytes):
    for rec in d.manifest["entries"]:
        off = int(rec["site"]["address"], 16) - 0x400000
        n = rec["site"]["length"] // 4
        yield rec["index"], list(struct.unpack_from(f"<{n}I", text, off))


BAD = [
    Alt(0, (NOP, NOP), (NOP, 0x10000000)),                      # adr x0, .
    Alt(1, (NOP,), (0x58000000,)),                               # ldr x0, .
    Alt(2, (NOP,), (0x5C000000,)),                               # ldr d0, . (SIMD/FP)
    Alt(3, (NOP, NOP), (NOP, 0x74000000 | 0x20)),                # FEAT_CMPBR
    Alt(4, (NOP,), (TBZ_W0 | _field(0x1FF0, 14) << 5,)),         # tbz out of reach at the site
    Alt(5, (NOP,), (adrp((1 << 19) - 1),)),                      # adrp past the s32 at the site
    Alt(6, (NOP,), (B | _field((1 << 25) - 1, 26),)),            # b +128 MiB: too far
]
BAD_STATUS = ["immovable", "immovable", "immovable", "pcrel-unknown", "range", "range", "range"]
BAD_INSN = [1, 0, 0, 1, 0, 0, 0]


@pytest.mark.parametrize("abi", ABIS)
def test_runtime_errors_name_the_entry_and_instruction(tmp_path, abi):
    d = build_driver(tmp_path, BAD, abi)
    for k, (status, insn_) in enumerate(zip(BAD_STATUS, BAD_INSN)):
        got = run_driver(d, {k})
        assert (got.status, got.entry, got.insn) == (STATUS[status], k, insn_), k
        assert patch_offline(d, {k}) == got, k
        assert run_driver(d, {k}, "blob") == got
    # The sample prints it: `fw: patching failed at entry N, instruction I (word): ...`
    assert run_driver(d, set()).status == 0


SHAPES = [
    Alt(0, (NOP,), (NOP, NOP)),                     # alt_len 8, orig_len 4 (ALT001)
    Alt(1, (NOP,), (NOP,), misalign="repl"),        # replacement at 4n + 2
    Alt(2, (NOP,), (NOP,), misalign="site"),        # site at 4n + 2 (ALT003)
]
ODD_LENGTH = [Alt(0, (NOP, NOP), (NOP, NOP), orig_len=6)]  # not a multiple of 4 (ALT003)


@pytest.mark.parametrize("abi", ABIS)
def test_runtime_and_patcher_refuse_entries_of_the_wrong_shape(tmp_path, abi):
    """A table altlink link would refuse, linked by hand: the runtime and altlink patch stop
    at the same entry. The site checks (entry 2) hold whether or not the entry is active,
    the replacement checks only when it is applied."""
    d = build_driver(tmp_path, SHAPES, abi)
    for caps, (status, entry) in [({0}, ("length", 0)), ({1}, ("align", 1)),
                                  (set(), ("align", 2))]:
        got = run_driver(d, caps)
        assert (got.status, got.entry, got.insn) == (STATUS[status], entry, None), caps
        assert patch_offline(d, caps) == got, caps
        assert run_driver(d, caps, "blob") == got
    d = build_driver(tmp_path / "odd", ODD_LENGTH, abi, manifest=False)
    got = run_driver(d, set())
    assert (got.status, got.entry, got.insn) == (STATUS["length"], 0, None)


def test_manifest_of_an_odd_length_site_is_not_a_traceback(tmp_path, capsys):
    """The manifest is written without the entry, whose ALT003 is reported, one line."""
    d = build_driver(tmp_path, ODD_LENGTH, "linux-v4.17", manifest=False)
    assert cli.main(["manifest", str(d.elf), "--ncaps", "1"]) == 0
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1 and ": error: ALT003: site length 6 " in err, err
    assert json.loads(out)["entries"] == []


def test_runtime_sources_build_standalone_with_both_compilers(tmp_path):
    """C99 and C11, -Wpedantic, no libc symbols pulled in (memcpy, memset), gcc and clang."""
    for toolchain, std in itertools.product(TOOLCHAINS, ("c99", "c11")):
        obj = compile(RUNTIME / "alt_runtime.c", tmp_path / f"rt-{toolchain}-{std}.o", toolchain,
                      [f"-std={std}", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O3"],
                      ["ALT_NCAPS=3"])
        undefined = run(["aarch64-linux-gnu-nm", "-u", obj]).stdout.split()
        assert undefined == [], (toolchain, std, undefined)
    # The header alone, types only, in a file that includes nothing else.
    src = write(tmp_path / "only.c", '#include "alt_runtime.h"\n'
                "int f(void) { return ALT_BLOB_HEADER_SIZE + (int)sizeof(struct alt_result); }\n")
    compile(src, tmp_path / "only.o", "gnu", [f"-I{RUNTIME}", f"-I{INCLUDE}", "-Wall", "-Werror"])


def test_runtime_readme_documents_the_layout():
    text = (RUNTIME / "README.md").read_text()
    for field in ("magic", "version", "header_size", "entry_size", "profile", "ncaps", "count",
                  "table", "image", "site", "cap_raw", "orig_len", "alt_len",
                  "alt_apply_table", "alt_apply_blob", "alt_sync_icache", "make_writable"):
        assert field in text, field
    assert f"{compact.HEADER_SIZE}" in text and f"{compact.ENTRY_SIZE}" in text


# An empty static entry (0-byte site and replacement: Linux 7 makes them where an
# alternative's body assembles to nothing) beside a real one, and a callback of 0 bytes.
EMPTY = [Alt(0, (), ()), Alt(1, (NOP,), (0xD2800020,))]
EMPTY_CALLBACK = [Alt(0, (NOP,), (NOP,)), Alt(1, (), None)]


@pytest.mark.parametrize("abi", ABIS)
def test_an_empty_entry_patches_nothing_and_a_callback_of_none_is_refused(tmp_path, abi):
    """The runtime and altlink patch agree: the empty entry is applied (it writes nothing),
    the entry after it is patched, from the table and from the blob. A callback of 0 bytes
    is a length error (ALT_E_LENGTH) whether or not its capability is active."""
    d = build_driver(tmp_path, EMPTY, abi)
    assert [e["site"]["length"] for e in d.manifest["entries"]] == [0, 4]
    for caps in ({0}, {0, 1}, set()):
        got = run_driver(d, caps)
        same_outcome(got, patch_offline(d, caps), f"caps {caps}")
        assert run_driver(d, caps, "blob") == got
    words = dict(_site_words(d, run_driver(d, {0, 1}).text))
    assert words == {0: [], 1: [0xD2800020]}
    d = build_driver(tmp_path / "cb", EMPTY_CALLBACK, abi, manifest=False)
    for caps in (set(), {0, 1}):
        got = run_driver(d, caps)
        assert (got.status, got.entry, got.insn) == (STATUS["length"], 1, None), caps
