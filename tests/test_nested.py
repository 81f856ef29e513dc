"""Nested images: an ELF image with its own alternative, built with the toolchain and
embedded with `.incbin` between two symbols of an outer firmware (as Linux embeds its vDSO
between vdso_start and vdso_end). Its entries are in the outer image's manifest, with places
in both images; `altlink patch` patches them in the outer image, and the patched outer
firmware, run under qemu-aarch64, runs the replacement from inside the embedded image.
"""
from __future__ import annotations

import json

import pytest
from toolchain import LDSCRIPTS, SIMPLE_LD, compile, link, qemu, run, write

from altlink import cli, compact
from altlink import manifest as manifestmod
from altlink.elf import read_elf

V61 = ["--abi", "linux-v6.1"]
CAPS = "HAS_FOO\nHAS_BAR\n"

INNER = r"""
#include "caps.h"
#include <altlink/alternative.h>
	.text
	.globl	inner_fn
	.type	inner_fn, %function
inner_fn:
	alternative_insn "mov x0, #1", "mov x0, #2", ALT_CAP_HAS_BAR
	ret
	.size	inner_fn, . - inner_fn
"""

# Linked at 0 like a vDSO; the code is position-independent.
INNER_LD = """
SECTIONS
{
	. = 0;
	.text : { *(.text .text.*) }
	INCLUDE alternatives.ld
	/DISCARD/ : { *(.eh_frame .note.gnu.property) }
}
"""

OUTER = r"""
	.text
	.globl	_start
_start:
	bl	{start} + INNER_FN_OFFSET	// the embedded image's inner_fn, where it lies
	mov	x8, #93				// exit(x0)
	svc	#0

	.section .text.embedded, "ax"
	.balign	4096
	.globl	{start}, {end}
{start}:
	.incbin	"{inner}"
	.balign	4096
{end}:
"""

OUTER_LD = SIMPLE_LD


def main(*args) -> int:
    return cli.main([str(a) for a in args])


def schema_errors(m: dict) -> list[str]:
    import jsonschema

    schema = json.loads(open(manifestmod.SCHEMA_FILE).read())
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(m)]


def build(tmp, start: str, end: str):
    caps = write(tmp / "caps.txt", CAPS)
    assert main("caps", caps, "-o", tmp / "caps.h") == 0
    inner_o = compile(write(tmp / "inner.S", INNER), tmp / "inner.o", "gnu", [f"-I{tmp}"],
                      ["ALTLINK_ABI_LINUX_V61"])
    inner = link([inner_o], tmp / "inner.elf", "gnu", write(tmp / "inner.ld", INNER_LD),
                 [f"-L{LDSCRIPTS}"])
    elf = read_elf(str(inner))
    fn = next(s for s in elf.symbols if s.name == "inner_fn")
    offset = elf.file_offset(fn.value)
    src = write(tmp / "outer.S", OUTER.format(start=start, end=end, inner=inner))
    outer_o = compile(src, tmp / "outer.o", "gnu", [f"-Wa,--defsym,INNER_FN_OFFSET={offset}"])
    outer = link([outer_o], tmp / "outer.elf", "gnu", write(tmp / "outer.ld", OUTER_LD),
                 [f"-L{LDSCRIPTS}"])
    return outer, inner, caps


@pytest.fixture(scope="module")
def vdso(tmp_path_factory):
    """Embedded between vdso_start and vdso_end: found without being named."""
    return build(tmp_path_factory.mktemp("vdso"), "vdso_start", "vdso_end")


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    return build(tmp_path_factory.mktemp("named"), "blob_start", "blob_end")


def test_nested_entries_have_places_in_both_images(vdso, tmp_path):
    outer, inner, caps = vdso
    m_path = tmp_path / "m.json"
    run(["aarch64-linux-gnu-objcopy", "-O", "binary", outer, tmp_path / "o.bin"])
    assert main("manifest", *V61, "--cap-table", caps, outer, "--bin", tmp_path / "o.bin",
                "-o", m_path) == 0
    m = manifestmod.load(str(m_path))
    assert schema_errors(m) == []
    assert m["entries"] == []  # the outer image has no table of its own
    (n,) = m["nested"]
    o = read_elf(str(outer))
    start = next(s for s in o.symbols if s.name == "vdso_start").value
    assert (n["start"], n["end"], int(n["address"], 16)) == ("vdso_start", "vdso_end", start)
    assert n["file_offset"] == o.file_offset(start)
    inner_bytes = inner.read_bytes()
    outer_bytes = outer.read_bytes()
    assert outer_bytes[n["file_offset"]:n["file_offset"] + len(inner_bytes)] == inner_bytes
    (e,) = n["entries"]
    assert e["cap_name"] == "HAS_BAR" and e["site"]["disasm"] == ["mov x0, #1"]
    i = read_elf(str(inner))
    for part in (e["site"], e["replacement"]):
        inner_off = i.file_offset(int(part["address"], 16))
        assert part["file_offset"] == inner_off
        out = part["outer"]
        assert out["file_offset"] == n["file_offset"] + inner_off
        assert int(out["address"], 16) == start + inner_off
        assert outer_bytes[out["file_offset"]:out["file_offset"] + 4] == \
            inner_bytes[inner_off:inner_off + 4]
    # The raw binary holds the outer image from 0x400000: the same bytes there.
    raw = (tmp_path / "o.bin").read_bytes()
    boff = e["site"]["outer"]["bin_offset"]
    assert raw[boff:boff + 4] == bytes.fromhex(e["site"]["bytes"])
    # The compact manifest carries it at its outer addresses, with its own table's entry.
    blob = compact.decode(compact.encode(m))
    (b,) = blob.entries
    assert b.site == int(e["site"]["outer"]["address"], 16)
    assert b.alt == int(e["replacement"]["outer"]["address"], 16)
    assert b.entry == int(n["table"]["outer"]["address"], 16) + 12 * e["index"]


def test_patch_patches_the_nested_image_and_it_runs(vdso, tmp_path, capsys):
    outer, _inner, caps = vdso
    m = tmp_path / "m.json"
    assert main("manifest", *V61, "--cap-table", caps, outer, "-o", m) == 0
    assert qemu(outer).returncode == 1  # the site as linked
    for spec, status in (("HAS_BAR", 2), ("HAS_FOO", 1), ("", 1)):
        out, binary = tmp_path / "p.elf", tmp_path / "p.bin"
        assert main("patch", outer, "--manifest", m, "--caps", spec, "-o", out,
                    "--bin", binary) == 0, spec
        assert qemu(out).returncode == status, spec
        ref = tmp_path / "objcopy.bin"
        run(["aarch64-linux-gnu-objcopy", "-O", "binary", out, ref])
        assert binary.read_bytes() == ref.read_bytes(), spec
    assert "applied 1 of 1 alternatives" in capsys.readouterr().err


def test_nested_image_named_by_the_user(named, tmp_path, capsys):
    outer, _inner, caps = named
    m = tmp_path / "m.json"
    assert main("manifest", *V61, "--cap-table", caps, outer, "-o", m) == 0
    assert "nested" not in json.loads(m.read_text())  # not the profile's symbols
    assert main("manifest", *V61, "--cap-table", caps, outer, "--nested",
                "blob_start,blob_end", "-o", m) == 0
    assert len(json.loads(m.read_text())["nested"][0]["entries"]) == 1
    out = tmp_path / "p.elf"
    assert main("patch", outer, "--manifest", m, "--caps", "HAS_BAR", "-o", out) == 0
    assert qemu(out).returncode == 2
    capsys.readouterr()
    for pair, words in (("blob_start,nope", "no symbol nope"), ("_start,blob_end",
                                                                "is not an ELF file"),
                        ("blob_start", "expected START_SYMBOL,END_SYMBOL")):
        assert main("manifest", *V61, "--cap-table", caps, outer, "--nested", pair,
                    "-o", tmp_path / "x.json") == 2, pair
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and words in err, (pair, err)
        assert not (tmp_path / "x.json").exists()


# ---- the C runtime: the sample firmware with a nested image, patched from its compact
# manifest at run time -------------------------------------------------------------------

EMBED = r"""
	.section .text.embedded, "ax"
	.balign	4096
	.globl	vdso_start, vdso_end
vdso_start:
	.incbin	"{inner}"
	.balign	4096
vdso_end:
"""


def test_c_runtime_patches_the_nested_image_as_altlink_patch_does(tmp_path):
    """The sample firmware, linked by `altlink link` with an image embedded between
    vdso_start and vdso_end: the link's manifest carries the nested entry; the firmware
    applies its compact manifest with the C runtime (`fw --blob`), and the text it then
    dumps is what `altlink patch` makes, the nested site included."""
    from test_runtime import RUNTIME, SAMPLE, parse_run

    fw = SAMPLE / "fw"
    caps = fw / "caps.txt"
    assert main("caps", caps, "-o", tmp_path / "caps.h") == 0
    defines = ["ALTLINK_ABI_LINUX_V61"]
    inner_src = write(tmp_path / "inner.S", INNER.replace("HAS_BAR", "HAS_CRC"))
    inner = link([compile(inner_src, tmp_path / "inner.o", "gnu", [f"-I{tmp_path}"], defines)],
                 tmp_path / "inner.elf", "gnu", write(tmp_path / "inner.ld", INNER_LD),
                 [f"-L{LDSCRIPTS}"])
    flags = [f"-I{tmp_path}", f"-I{RUNTIME}", f"-I{fw}", "-Wall", "-Werror"]
    objs = [compile(fw / "start.S", tmp_path / "start.o", "gnu"),
            compile(fw / "sites.S", tmp_path / "sites.o", "gnu", flags, defines),
            compile(fw / "main.c", tmp_path / "main.o", "gnu", flags, defines),
            compile(RUNTIME / "alt_runtime.c", tmp_path / "alt_runtime.o", "gnu", flags,
                    defines),
            compile(write(tmp_path / "embed.S", EMBED.format(inner=inner)),
                    tmp_path / "embed.o", "gnu")]
    elf, m_path = tmp_path / "fw.elf", tmp_path / "fw.alt.json"
    assert main("link", "--abi", "linux-v6.1", "--cap-table", caps, "-o", elf, "--manifest",
                m_path, "--", "aarch64-linux-gnu-ld", f"-L{LDSCRIPTS}", "-T", fw / "fw.ld",
                *objs, "-o", elf) == 0
    m = manifestmod.load(str(m_path))
    assert schema_errors(m) == []
    (n,) = m["nested"]
    (e,) = n["entries"]
    assert e["cap_name"] == "HAS_CRC"
    blob = tmp_path / "fw.altb"
    blob.write_bytes(compact.encode(m))
    site = int(e["site"]["outer"]["address"], 16)
    for subset in (["HAS_CRC"], ["HAS_LSE"], ["HAS_CRC", "HAS_LSE"]):
        booted = parse_run(qemu(elf, "--blob", blob, "--dump", *subset))
        out = tmp_path / "p.elf"
        assert main("patch", elf, "--manifest", m_path, "--caps", ",".join(subset),
                    "--emulate", "fw_callback", "-o", out) == 0
        off = read_elf(str(out)).file_offset(booted.text_start)  # one segment, as in the file
        offline = out.read_bytes()[off:off + len(booted.text)]
        assert booted.text == offline, subset
        at = site - booted.text_start
        want = e["replacement"]["bytes"] if "HAS_CRC" in subset else e["site"]["bytes"]
        assert booted.text[at:at + 4].hex() == want, subset


def test_show_lists_the_nested_entries_and_the_refused(vdso, tmp_path, capsys):
    outer, _inner, caps = vdso
    m_path = tmp_path / "m.json"
    assert main("manifest", *V61, "--cap-table", caps, outer, "-o", m_path) == 0
    m = json.loads(m_path.read_text())
    m["refused"] = [{"index": 7, "code": "ALT002", "message": "callback entry has alt_len 4"}]
    m_path.write_text(json.dumps(m))
    capsys.readouterr()
    assert main("show", m_path) == 0
    text = capsys.readouterr().out
    e = m["nested"][0]["entries"][0]
    assert f"nested image vdso_start..vdso_end at {m['nested'][0]['address']}" in text
    assert f"site {e['site']['address']} <inner_fn> (4 bytes), in the outer image " \
        f"{e['site']['outer']['address']}" in text
    assert "[7] refused: ALT002: callback entry has alt_len 4" in text


def test_diff_names_a_nested_entry_that_changed(vdso, tmp_path, capsys):
    outer, _inner, caps = vdso
    old = tmp_path / "old.json"
    assert main("manifest", *V61, "--cap-table", caps, outer, "-o", old) == 0
    m = json.loads(old.read_text())
    m["nested"][0]["entries"][0]["replacement"]["bytes"] = "1f2003d5"
    new = write(tmp_path / "new.json", json.dumps(m))
    capsys.readouterr()
    assert main("diff", old, new) == 1  # differences, as diff(1)
    out = capsys.readouterr().out
    assert out == "~ static cap 1 at inner_fn in the nested image vdso_start: replacement " \
        "code changed\n", out
