"""The offline patcher, `altlink patch`, on the sample firmware built by SCons (both toolchains,
both profiles) and on small images with misbehaving callbacks.

Whether the patched image runs each site's expected variant, and matches the C runtime byte
for byte, is tested with the runtime in test_runtime.py; here: what the patcher writes and
where, the raw binary, callbacks by emulation and by Python, and its errors.
"""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from test_runtime import ABIS, CAPS, SUBSETS, TOOLCHAINS, Sample, build_sample, parse_run
from toolchain import LDSCRIPTS, SIMPLE_LD, compile, link, qemu, run, write

from altlink import cli
from altlink import manifest as manifestmod

MOVZ_IMM16 = 0xFFFF << 5

# The sample's fw_callback in Python: `movz wN, #0` becomes `movz wN, #1`.
PY_CALLBACKS = """
MOVZ_IMM16 = 0xFFFF << 5


def fw_callback(entry, words, nr_inst):
    assert entry["callback"]["symbol"] == "fw_callback" and nr_inst == len(words)
    return [(w & ~MOVZ_IMM16) | (1 << 5) for w in words]
"""


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[tuple[str, str], Sample]:
    base = tmp_path_factory.getbasetemp() / "samples"
    return {(t, abi): s for abi in ABIS for t, s in build_sample(base, abi).items()}


def patch(*args) -> int:
    return cli.main(["patch", *map(str, args)])


def site_ranges(m: dict) -> list[tuple[int, int]]:
    return [(e["site"]["file_offset"], e["site"]["file_offset"] + e["site"]["length"])
            for e in m["entries"]]


def outside(data: bytes, ranges) -> bytes:
    """``data`` with every range cut out."""
    out, pos = bytearray(), 0
    for start, end in sorted(ranges):
        out += data[pos:start]
        pos = end
    return bytes(out + data[pos:])


@pytest.mark.parametrize("abi", ABIS)
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_patcher_writes_only_the_sites_and_the_binary_is_objcopys(samples, tmp_path, toolchain,
                                                                  abi):
    """For every capability subset: outside the site ranges of the manifest the patched image
    is the original byte for byte; the active sites changed; the patched raw binary is what
    objcopy -O binary makes of the patched image."""
    s = samples[toolchain, abi]
    m = manifestmod.load(str(s.manifest))
    original = s.elf.read_bytes()
    ranges = site_ranges(m)
    for subset in SUBSETS:
        out, binary = tmp_path / "p.elf", tmp_path / "p.bin"
        assert patch(s.elf, "--manifest", s.manifest, "--caps", ",".join(subset), "--emulate",
                     "fw_callback", "-o", out, "--bin", binary) == 0
        patched = out.read_bytes()
        assert len(patched) == len(original)
        assert outside(patched, ranges) == outside(original, ranges), subset
        for e, (start, end) in zip(m["entries"], ranges):
            active = e["kind"] == "callback" and e["cap"] is None or e["cap_name"] in subset
            assert (patched[start:end] != original[start:end]) == active, (subset, e["index"])
        ref = tmp_path / "objcopy.bin"
        run(["aarch64-linux-gnu-objcopy", "-O", "binary", out, ref])
        assert binary.read_bytes() == ref.read_bytes(), subset
    assert s.bin.read_bytes() != binary.read_bytes()


@pytest.mark.parametrize("abi", ABIS)
def test_python_callbacks_give_what_emulation_gives(samples, tmp_path, abi):
    s = samples["gnu", abi]
    py = write(tmp_path / "callbacks.py", PY_CALLBACKS)
    for subset in (CAPS, ("HAS_LSE",), ()):
        caps = ",".join(subset)
        emulated, python = tmp_path / "emulated.elf", tmp_path / "python.elf"
        assert patch(s.elf, "--manifest", s.manifest, "--caps", caps, "--emulate",
                     "fw_callback", "-o", emulated) == 0
        assert patch(s.elf, "--manifest", s.manifest, "--caps", caps, "--callbacks", py,
                     "-o", python) == 0
        assert python.read_bytes() == emulated.read_bytes(), subset
    # ...and the callback did something: the site now holds movz wN, #1.
    cb = next(e for e in manifestmod.load(str(s.manifest))["entries"] if e["kind"] == "callback")
    off = cb["site"]["file_offset"]
    (word,) = struct.unpack_from("<I", python.read_bytes(), off)
    assert (word & MOVZ_IMM16) >> 5 == (0 if abi == "linux-v6.1" else 1)


@pytest.mark.parametrize("abi", ABIS)
def test_a_callback_with_no_implementation_is_named(samples, tmp_path, capsys, abi):
    s = samples["gnu", abi]
    out = tmp_path / "p.elf"
    assert patch(s.elf, "--manifest", s.manifest, "--caps", "HAS_LSE", "-o", out) == 1
    err = capsys.readouterr().err
    assert "callback fw_callback has no offline implementation" in err
    assert "--emulate fw_callback" in err and len(err.splitlines()) == 1
    assert not out.exists()
    # A Python file that implements other callbacks only: the same error.
    other = write(tmp_path / "other.py", "def not_it(entry, words, n):\n    return words\n")
    assert patch(s.elf, "--manifest", s.manifest, "--caps", "HAS_LSE", "--callbacks", other,
                 "-o", out) == 1
    assert "callback fw_callback has no offline implementation" in capsys.readouterr().err
    if abi == "linux-v6.1":  # a callback whose capability is absent needs no implementation
        assert patch(s.elf, "--manifest", s.manifest, "--caps", "HAS_CRC", "-o", out) == 0
        assert parse_run(qemu(out, "--no-patch")).variants["site crc"] == "patched"


def test_a_manifest_for_another_image_is_refused(samples, tmp_path, capsys):
    gnu, llvm = samples["gnu", "linux-v4.17"], samples["llvm", "linux-v4.17"]
    out, binary = tmp_path / "p.elf", tmp_path / "p.bin"
    assert patch(gnu.elf, "--manifest", llvm.manifest, "--caps", "HAS_CRC", "--emulate",
                 "fw_callback", "-o", out, "--bin", binary) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "belongs to another image" in captured.err and len(captured.err.splitlines()) == 1
    assert str(gnu.elf) in captured.err
    assert list(tmp_path.iterdir()) == []  # no output, not even a temporary file


def test_python_callback_errors_are_one_line(samples, tmp_path, capsys):
    s = samples["gnu", "linux-v4.17"]
    out = tmp_path / "p.elf"
    cases = {  # a callback that fails is a failed patch (1); a file that does not load, 2
        "raises.py": ("def fw_callback(entry, words, n):\n    raise KeyError('boom')\n",
                      "Python callback fw_callback failed: KeyError", 1),
        "short.py": ("def fw_callback(entry, words, n):\n    return []\n",
                     "must return 1 32-bit words", 1),
        "syntax.py": ("def fw_callback(:\n", "error while loading callbacks: SyntaxError", 2),
    }
    for name, (text, message, status) in cases.items():
        rc = patch(s.elf, "--manifest", s.manifest, "--caps", "", "--callbacks",
                   write(tmp_path / name, text), "-o", out)
        err = capsys.readouterr().err
        assert rc == status and message in err and len(err.splitlines()) == 1, (name, err)
        assert not out.exists()


# ---- callbacks that misbehave under emulation ---------------------------------------------

BAD_CALLBACKS_C = r"""
#include <stdint.h>
#include <altlink/alternative.h>

alt_callback_fn null_cb, loop_cb;

/* Reads through a NULL pointer. */
void null_cb(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
	volatile uint32_t *nothing = 0;
	(void)alt, (void)origptr;
	for (int i = 0; i < nr_inst; i++)
		updptr[i] = *nothing;
}

/* Never returns. */
void loop_cb(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
	(void)alt, (void)origptr, (void)updptr, (void)nr_inst;
	for (;;)
		__asm__ volatile("");
}

void _start(void)
{
	__asm__ volatile(ALTERNATIVE_CB("nop", null_cb));
	__asm__ volatile(ALTERNATIVE_CB("nop", loop_cb));
	for (;;)
		;
}
"""

BAD_LD = SIMPLE_LD


@pytest.fixture(scope="module")
def bad_callbacks(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("bad-callbacks")
    obj = compile(write(tmp / "bad.c", BAD_CALLBACKS_C), tmp / "bad.o", "gnu",
                  ["-Wall", "-Werror"], ["ALT_NCAPS=1"])
    elf = link([obj], tmp / "bad.elf", "gnu", write(tmp / "bad.ld", BAD_LD), [f"-L{LDSCRIPTS}"])
    manifest = tmp / "bad.alt.json"
    assert cli.main(["manifest", str(elf), "--ncaps", "1", "-o", str(manifest)]) == 0
    return elf, manifest


def test_an_emulated_callback_that_faults_is_one_line(bad_callbacks, tmp_path, capsys):
    elf, manifest = bad_callbacks
    out = tmp_path / "p.elf"
    assert patch(elf, "--manifest", manifest, "--caps", "", "--emulate", "null_cb,loop_cb",
                 "-o", out) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("entry 0: emulating callback null_cb: fault in the callback at pc 0x4")
    assert "UC_ERR_READ_UNMAPPED" in err or "unmapped" in err.lower()
    assert not out.exists()


def test_an_emulated_callback_that_never_returns_hits_the_limit(bad_callbacks, tmp_path,
                                                                capsys):
    elf, manifest = bad_callbacks
    out = tmp_path / "p.elf"
    py = write(tmp_path / "null.py", "def null_cb(entry, words, n):\n    return words\n")
    assert patch(elf, "--manifest", manifest, "--caps", "", "--callbacks", py, "--emulate",
                 "loop_cb", "--max-insns", "5000", "-o", out) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("entry 1: emulating callback loop_cb: the callback did not return "
                          "within 5000 instructions (stopped at pc 0x4"), err
    assert not out.exists()
