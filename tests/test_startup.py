"""What a small link through altlink costs before and beside its linker: a Linux build sends
every ``ld -r`` of a composite module and every ``.ko`` link through altlink (thousands of
processes), and its configure steps probe the linker (``ld --version``). Each run pays for
what it imports, so these tests hold the imports of a kernel module's link and of a probe to
what they use (no timed assertion: the figures are docs/performance.md's).

Each runs ``cli.main`` in a fresh interpreter, as the ``altlink`` command does
(``gcpause.process_ends`` first), and reads ``sys.modules`` when it is done.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys

import pytest
from test_checks import CALLBACK, R0, build
from toolchain import ROOT, env_without_altlink_vars, write

import altlink
from altlink import caps, cli

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld")),
    reason="the AArch64 GNU toolchain is not installed",
)

# What neither a kernel module's link nor a probe imports: the command line's parser (with
# gettext and locale), re (with enum), dataclasses (with copy and inspect), typing,
# subprocess, signal's enums, hashlib (OpenSSL's: a small link's keys are the interpreter's
# own sha256's, altlink.sha256_for).
NEVER = ("argparse", "gettext", "locale", "re", "enum", "dataclasses", "copy", "typing",
         "subprocess", "signal", "shutil", "textwrap", "hashlib", "_hashlib")
# ... nor, for a module's link without findings, threading (its locks, thread-local data and
# thread ids are _thread's), nor what only a finding, a sorted table, a raw binary, a manifest
# or callbacks in the image need.
LINK_NEVER = NEVER + ("threading", "altlink.report", "altlink.sources", "altlink.tablesort",
                      "altlink.rawbin", "altlink.manifest", "altlink.reach")

_LOADED = """\
import sys
from altlink import cli
from altlink.gcpause import process_ends
process_ends()  # the altlink command's own process (cli.run)
rc = cli.main(sys.argv[1:])
print(rc, " ".join(sorted(m for m in sys.modules if m in @NAMES@
                          or type(sys.modules[m]).__name__ == "module"
                          and m == "inspect")) or "-")
""".replace("@NAMES@", repr(LINK_NEVER))

# Linux's generated capability header (arch/arm64/include/generated/asm/cpucaps.h), as Kbuild
# passes it: --cap-table of a header with #define lines.
CPUCAPS_H = """\
#ifndef __ASM_CPUCAPS_H
#define __ASM_CPUCAPS_H

/* Generated file - do not edit */

#define ARM64_ALWAYS_BOOT                   \t0
#define ARM64_HAS_LSE_ATOMICS               \t1
#define ARM64_WORKAROUND_1                  \t2
#define ARM64_HAS_CRC32                     \t3

#define ARM64_NCAPS\t\t\t\t\t4

#endif /* __ASM_CPUCAPS_H */
"""


def _run(tmp_path, script: str, *words: str) -> str:
    env = env_without_altlink_vars()
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", script, *words], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=True, timeout=120
                          ).stdout.strip()


def test_a_kernel_module_link_imports_only_what_it_uses(tmp_path):
    """``altlink link --abi linux-v6.1 --cap-table cpucaps.h -- ld -r ...`` of a module's
    objects (one with an alternative, one with its callback), as Kbuild runs it: neither the
    first link (the objects' records made) nor the next (the records kept) imports anything
    of ``LINK_NEVER``; the real ``inspect`` neither (the stand-in ``cli._inspect_when_used``
    leaves is asked nothing)."""
    a = build(tmp_path, "a", R0 + "\tent site0, r0, 1, 4, 4\n"
              "\tent site1, my_cb, 0x8001, 4, 0\n")  # (linux-v6.1: a callback's bit 15)
    b = build(tmp_path, "b", CALLBACK, prelude=False)
    write(tmp_path / "cpucaps.h", CPUCAPS_H)
    words = ["link", "--abi", "linux-v6.1", "--cap-table", "cpucaps.h", "--cache-dir",
             str(tmp_path / "cache"), "--", "aarch64-linux-gnu-ld", "-r", "-EL",
             "-maarch64elf", "-z", "noexecstack", "--build-id=sha1", "-o", "m.ko", str(a),
             str(b)]
    assert _run(tmp_path, _LOADED, *words) == "0 -"  # (records made)
    assert _run(tmp_path, _LOADED, *words) == "0 -"  # (records kept)
    assert (tmp_path / "m.ko").read_bytes()[:4] == b"\x7fELF"


_PROBE = """\
import os, sys
from altlink import cli, launcher
from altlink.gcpause import process_ends

def exec_unchanged(command):  # where the linker would take the process: what it loaded
    print(command[1:], " ".join(sorted(m for m in sys.modules if m in @NAMES@)) or "-")
    sys.stdout.flush()
    os._exit(0)

launcher.exec_unchanged = exec_unchanged
process_ends()
cli.main(sys.argv[1:])
""".replace("@NAMES@", repr(("threading", "altlink.linker", "altlink.linkcmd", "altlink.archive",
                            "struct", "collections") + NEVER))


def test_a_probe_passed_through_imports_next_to_nothing(tmp_path):
    """``altlink link -- ld --version`` (a configure step's probe) runs the linker unchanged
    in its place: before that it imports neither ``threading``, the linker's module, the
    command's reading (linkcmd, archive) nor anything of ``NEVER``."""
    for words in (["--", "aarch64-linux-gnu-ld", "--version"],
                  ["--abi", "linux-v6.1", "--", "aarch64-linux-gnu-gcc", "-print-prog-name=ld"]):
        got = _run(tmp_path, _PROBE, "link", *words)
        assert got == f"{words[words.index('--') + 2:]!r} -", got


def test_the_quick_link_options_are_the_link_parser_s():
    """``cli.LINK_DESTS`` (what ``_quick_link_args`` sets for each option) and
    ``LINK_APPEND_OPTIONS`` are the link's parser's."""
    parser = cli.build_parser("link")
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    dests, appends = {}, set()
    for a in sub.choices["link"]._actions:
        if isinstance(a, argparse._HelpAction) or not a.option_strings:
            continue
        dests.update(dict.fromkeys(a.option_strings, a.dest))
        if isinstance(a, argparse._AppendAction):
            appends.update(a.option_strings)
        if a.dest == "format":
            assert tuple(a.choices) == cli.CHECK_FORMATS
        if a.dest == "abi":
            assert tuple(a.choices) == cli.ABIS
    assert dests == cli.LINK_DESTS
    assert appends == cli.LINK_APPEND_OPTIONS


_LD = ["--", "ld", "-r", "-o", "m.ko", "a.o"]
QUICK_LINK = [  # words the quick reading takes
    ["link", *_LD], ["link", "--", "ld"], ["link", "--", "--", "ld"],
    ["link", "--", "ld", "--", "x"], ["link", "--", "-x"], ["link", "--format", "sarif", "--", ""],
    ["link", "--abi", "linux-v6.1", "--cap-table", "arch/arm64/include/generated/asm/cpucaps.h",
     *_LD],
    ["link", "-o", "x", "--manifest", "m", "--manifest-suffix", ".j", "--bin", "b", "--ncaps",
     " 7", "--symbols-from", "a", "--symbols-from", "b", "--format", "json", "--cache-dir", "",
     "-W", "no-ALT001", "-Wno-ALT002", *_LD],
    ["link", "-ofoo", "--abi=xen-v4.17", "--manifest=", "--bin=b.bin", "--sort-table",
     "--source-lines", "--werror", "--no-cache", "-v", "--verbose", "--module", *_LD],
    ["link", "-o", "", "--abi", "linux-v4.17", "--abi", "linux-v6.1", "--ncaps=12", *_LD],
    ["link", "--symbols-from=-x", "--manifest-suffix=", *_LD],
]
NOT_QUICK_LINK = [  # words left to the parser, which reads them or reports what is wrong
    ["link"], ["link", "--help"], ["link", "-h", *_LD], ["link", "--version", *_LD],
    ["link", "--"], ["link", "ld", "-r", "a.o"], ["link", "--abi", "linux-v9", *_LD],
    ["link", "--abi=", *_LD], ["link", "--format", "xml", *_LD], ["link", "--ncaps", "x", *_LD],
    ["link", "--ncaps", "-1", *_LD], ["link", "--manif", "m", *_LD], ["link", "-vo", "x", *_LD],
    ["link", "-o", "-x", *_LD], ["link", "-o=x", *_LD], ["link", "-oa=b", *_LD],
    ["link", "-W=no-ALT001", *_LD], ["link", "-Wa=b", *_LD], ["link", "-o", *_LD],
    ["link", "--werror=1", *_LD], ["link", "x.o", *_LD], ["link", "-W", "-x", *_LD],
]


@pytest.mark.parametrize("env", [{}, {"ALTLINK_ABI": "linux-v6.1", "ALTLINK_CAP_TABLE": "t",
                                      "ALTLINK_WERROR": "yes", "ALTLINK_MANIFEST": ".alt.json"},
                                 {"ALTLINK_WERROR": "0", "ALTLINK_ABI": ""}])
def test_the_quick_link_reading_is_the_parser_s(monkeypatch, env):
    """``altlink link`` words read without argparse (``cli._quick_link_args``) give what the
    parser gives, with the same defaults from the environment; any other words are left to
    the parser; an unusable ``ALTLINK_WERROR`` is the same error."""
    for k in ("ALTLINK_ABI", "ALTLINK_CAP_TABLE", "ALTLINK_WERROR", "ALTLINK_MANIFEST"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for words in QUICK_LINK:
        quick = cli._quick_link_args(words)
        assert quick is not None, words
        assert vars(quick) == vars(cli.build_parser("link").parse_args(words)), words
    for words in NOT_QUICK_LINK:
        assert cli._quick_link_args(words) is None, words
    monkeypatch.setenv("ALTLINK_WERROR", "maybe")
    with pytest.raises(cli.AltlinkError) as quick:
        cli._quick_link_args(QUICK_LINK[0])
    with pytest.raises(cli.AltlinkError) as parser:
        cli.build_parser("link")
    assert str(quick.value) == str(parser.value)


def test_a_define_line_is_read_as_the_pattern_reads_it():
    """``caps.define_match`` (a capability header's ``#define NAME VALUE`` lines, read without
    ``re``) gives ``re.match(caps._DEFINE_PATTERN, line)``'s groups: with every character of
    the first three planes as a separator, in the name and after the value, and on lines
    made of the pattern's parts, perturbed."""
    pattern = re.compile(caps._DEFINE_PATTERN)

    def same(line: str) -> None:
        m = pattern.match(line)
        assert caps.define_match(line) == (m.groups() if m else None), repr(line)

    for c in map(chr, range(0x30000)):
        for line in (f"#define{c}A 1", f"#define A{c}1", f"#define A{c} 1", f"{c}#define A 1",
                     f"#{c}define A 1", f"#define A 1{c}2", f"#define {c}"):
            same(line)
    spaces = ["", " ", "\t", "  ", "\x0b", "\x1c", "\u00a0", "\u2003", "\x85", "\u3000"]
    names = ["", "A", "ARM64_NCAPS", "é", "١2", "_x", "a-b", "x(", "\u00b2", "\u2160"]
    values = ["", "1", "0x10", "12u", "(1)", "-", "#", "é"]
    ends = ["", "x", "#", "define", "//c", " /* c */"]
    rng = random.Random(13)
    for _ in range(20_000):
        same("".join((rng.choice(spaces), rng.choice(["#", "#", "", "x"]), rng.choice(spaces),
                      rng.choice(["define", "define", "defin", "definex", "Define"]),
                      rng.choice(spaces), rng.choice(names), rng.choice(spaces),
                      rng.choice(values), rng.choice(spaces), rng.choice(ends))))


def test_a_capability_header_reads_as_before():
    """Linux's generated header and altlink's own (``caps.header``) read back as tables."""
    table = caps.parse_text(CPUCAPS_H, "cpucaps.h")
    assert table.names == ("ALWAYS_BOOT", "HAS_LSE_ATOMICS", "WORKAROUND_1", "HAS_CRC32")
    assert caps.parse_text(caps.header(table), "caps.h").names == table.names
    with pytest.raises(cli.AltlinkError, match=r"^h:3: ALT_CAP_B is not a number: 'x'$"):
        caps.parse_text("#define ALT_CAP_A 0\n#define ALT_NCAPS 2\n #  define ALT_CAP_B x\n",
                        "h")



_DIGEST = """\
import sys
sys.path.insert(0, sys.argv[1])
import altlink
altlink._SETTLED = float(sys.argv[3])
kept = altlink.code_digest(sys.argv[2])
altlink._digest.clear()
print(kept, altlink.code_digest(), altlink.__file__, "hashlib" in sys.modules)
"""


def test_the_code_digest_kept_is_the_one_made(tmp_path):
    """``altlink.code_digest(keep_in)`` (the record cache's directory) keeps the digest under
    the package files' identities and reads it back in the next process; a file written
    again (the same size, its modification time set back) has another identity, and the
    digest is made again; files changed less than ``_SETTLED`` seconds before leave nothing
    kept. Run on a copy of the package (``_SETTLED`` 0 there: its files were just copied)."""
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "altlink", pkg / "altlink",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    env = env_without_altlink_vars()

    def digest(settled: float = 0.0, keep_in=cache) -> tuple[str, str]:
        out = subprocess.run([sys.executable, "-c", _DIGEST, str(pkg), str(keep_in),
                              str(settled)], capture_output=True, text=True, check=True,
                             env=env).stdout.split()
        assert out[2] == str(pkg / "altlink" / "__init__.py") and out[3] == "False", out
        return out[0], out[1]

    def kept_files():
        return sorted(cache.rglob(".code.*"))

    kept, made = digest()
    assert kept == made and len(kept) == 64
    (where,) = kept_files()
    assert where.read_text() == made
    where.write_text("0" * 64)  # (read back, not made again)
    assert digest() == ("0" * 64, made)
    errors = pkg / "altlink" / "errors.py"
    st = errors.stat()
    text = errors.read_text()
    errors.write_text(text.replace("exit_code = 2", "exit_code = 5", 1))
    os.utime(errors, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert errors.stat().st_size == st.st_size and errors.stat().st_mtime_ns == st.st_mtime_ns
    again, remade = digest()
    assert again == remade != made and len(kept_files()) == 2
    assert digest(3600.0, tmp_path / "fresh") == (remade, remade)
    assert not (tmp_path / "fresh").exists()  # (just changed: not kept)


def test_the_small_hash_is_hashlib_s(monkeypatch):
    """``altlink.sha256_for``: the interpreter's own sha256 for a small size where hashlib is
    not imported, hashlib's for a large one, the same digests (the record cache's keys and
    the code's digest)."""
    data = bytes(range(256)) * 4099
    assert altlink.sha256_for(10) is hashlib.sha256  # (imported already: no other)
    monkeypatch.delitem(sys.modules, "hashlib")
    monkeypatch.setattr(altlink, "_asked", [0])  # (what this process asked for before)
    small, large = altlink.sha256_for(10), altlink.sha256_for(altlink.HASHLIB_FROM)
    assert large is hashlib.sha256 and small is not hashlib.sha256
    for make in (small, large):
        h = make(b"altlink")
        c = h.copy()
        c.update(data)
        assert c.hexdigest() == hashlib.sha256(b"altlink" + data).hexdigest()
        assert h.hexdigest() == hashlib.sha256(b"altlink").hexdigest()
