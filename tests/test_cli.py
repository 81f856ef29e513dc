"""The command line of docs/reference.md, sections 3 and 4 for ``scan`` and ``check``: the output formats
(text, JSON, SARIF 2.1.0), ``--werror``, ``-W no-CODE``, the exit codes, and ``scan`` against
an independent readelf-based decoder (tests/refdecode.py).

Unusable input exits 2 with exactly one line on stderr naming the file, never a traceback;
those cases run ``python -m altlink`` as a real process.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import struct
import sys
from pathlib import Path

import pytest
import refdecode
from test_checks import CALLBACK, PRELUDE, R0, R0_8, V61, V417, build, repl
from toolchain import ROOT, altlink, compile, env_without_altlink_vars, link, run, write

from altlink import cli
from altlink.findings import CODES

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld",
                                      "aarch64-linux-gnu-as", "aarch64-linux-gnu-readelf")),
    reason="the AArch64 GNU toolchain is not installed",
)

AS = "aarch64-linux-gnu-as"


def main(*args) -> tuple[int, str]:
    out = io.StringIO()
    rc = cli.main([str(a) for a in args], out=out)
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def objs(tmp_path_factory) -> dict[str, Path]:
    """Objects for the format tests: one error, one warning, one clean."""
    tmp = tmp_path_factory.mktemp("cli")
    return {
        "error": build(tmp, "error", R0_8 + "\tent site0, r0, 1, 4, 8\n"),
        "warning": build(tmp, "warning", R0 + repl("r1", "movz x0, #2")
                         + "\tent site1, r0, 1, 4, 4\n\tent site1, r1, 2, 4, 4\n"),
        "clean": build(tmp, "clean", CALLBACK + R0 + "\tent site0, r0, 1, 4, 4\n"
                       "\tent site1, my_cb, 4, 4, 0\n"),
        "two": build(tmp, "two", R0_8 + repl("r1", "ldr x0, func")
                     + "\tent site0, r0, 1, 4, 8\n\tent site2, r1, 2, 4, 4\n"),
    }


# ---- formats -----------------------------------------------------------------------------------


def test_text_format_one_line_per_finding(objs):
    rc, out = main("check", *V417, objs["two"])
    assert rc == 1
    f = objs["two"]
    assert out.splitlines() == [
        f"{f}: error: ALT001: replacement is 8 bytes, site is 4 (cap 1) [.text+0x0 func] "
        "(altlink explain ALT001)",
        f"{f}: error: ALT008: replacement instruction 0 (ldr-literal, ldr x0, #0) cannot be "
        "moved: it is PC-relative and no patcher re-encodes it [.text+0x8 site2] "
        "(altlink explain ALT008)",
    ]


def test_only_the_first_finding_of_a_code_has_the_hint(tmp_path):
    f = build(tmp_path, "twice", R0_8 + "\tent site0, r0, 1, 4, 8\n\tent site1, r0, 2, 4, 8\n")
    p = altlink("check", *V417, f)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert [ln.endswith(" (altlink explain ALT001)") for ln in lines] == [True, False]
    assert lines[1].endswith("(cap 2) [.text+0x4 site1]")


def test_text_format_clean_prints_nothing(objs):
    p = altlink("check", *V417, objs["clean"])
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_json_format(objs):
    rc, out = main("check", "--format", "json", *V417, objs["two"], objs["warning"])
    assert rc == 1
    doc = json.loads(out)
    assert doc["summary"] == {"errors": 2, "warnings": 1, "notes": 0}
    got = [(f["code"], f["severity"], f["file"], f["entry"], f["place"]) for f in doc["findings"]]
    assert got == [
        ("ALT001", "error", str(objs["two"]), 0, ".text+0x0 func"),
        ("ALT008", "error", str(objs["two"]), 1, ".text+0x8 site2"),
        ("ALT010", "warning", str(objs["warning"]), 1, ".text+0x4 site1"),
    ]
    for f in doc["findings"]:
        assert set(f) == {"code", "severity", "message", "file", "place", "source", "entry"}
        assert f["message"]


def test_json_format_clean(objs):
    rc, out = main("check", "--format", "json", *V417, objs["clean"])
    assert rc == 0
    assert json.loads(out) == {"findings": [], "summary": {"errors": 0, "warnings": 0,
                                                          "notes": 0}}


SARIF_SCHEMA = ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"  # OASIS's (tests/data/README.md)
_SARIF_VALIDATOR: list = []


def check_sarif(doc: dict) -> None:
    """Valid against the official SARIF 2.1.0 schema, and what the schema cannot say that a
    consumer (GitHub code scanning) relies on: unique rule ids, a ``ruleIndex`` that names
    the rule of the ``ruleId``, at least one location per result."""
    import jsonschema

    if not _SARIF_VALIDATOR:
        schema = json.loads(SARIF_SCHEMA.read_text())
        _SARIF_VALIDATOR.append(jsonschema.Draft4Validator(schema))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _SARIF_VALIDATOR[0].iter_errors(doc)]
    assert errors == []
    for r in doc["runs"]:
        rules = r["tool"]["driver"].get("rules", [])
        ids = [rule["id"] for rule in rules]
        assert len(ids) == len(set(ids))
        for res in r["results"]:
            if "ruleIndex" in res:
                assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
            assert res["locations"]


def test_sarif_format(objs):
    rc, out = main("check", "--format", "sarif", *V417, objs["two"], objs["warning"])
    assert rc == 1
    doc = json.loads(out)
    check_sarif(doc)
    run_ = doc["runs"][0]
    assert run_["tool"]["driver"]["name"] == "altlink"
    assert {r["id"] for r in run_["tool"]["driver"]["rules"]} == set(CODES)
    got = [(r["ruleId"], r["level"]) for r in run_["results"]]
    assert got == [("ALT001", "error"), ("ALT008", "error"), ("ALT010", "warning")]
    loc = run_["results"][0]["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == str(objs["two"])
    assert loc["logicalLocations"][0]["fullyQualifiedName"] == f"{objs['two']} .text+0x0 func"
    assert "replacement is 8 bytes" in run_["results"][0]["message"]["text"]


def test_sarif_rules_point_at_the_code_pages(objs):
    """Each rule carries its page: the summary, the fix, and the installed page's file: URI."""
    _, out = main("check", "--format", "sarif", *V417, objs["clean"])
    doc = json.loads(out)
    check_sarif(doc)
    assert doc["runs"][0]["results"] == []
    for rule in doc["runs"][0]["tool"]["driver"]["rules"]:
        code = rule["id"]
        page = ROOT / "altlink" / "docs" / "codes" / f"{code}.md"
        assert rule["helpUri"] == page.as_uri()
        text = " ".join(page.read_text().split())
        assert len(rule["fullDescription"]["text"]) > 40
        assert rule["fullDescription"]["text"] in text
        hint = f" (altlink explain {code})"
        assert rule["help"]["text"].endswith(hint)
        fix = rule["help"]["text"][:-len(hint)]
        assert len(fix) > 20 and fix in text.split("## How to fix")[1]
    sample = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}["ALT001"]
    assert sample["fullDescription"]["text"].startswith("A static (non-callback) entry must "
                                                         "have `alt_len == orig_len`")


def test_sarif_check_is_not_vacuous():
    good = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
        {"ruleId": "ALT001", "level": "error", "message": {"text": "m"},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.o"}}}]}]}]}
    check_sarif(good)
    for broken in ({**good, "version": "2.0.0"},
                   {**good, "runs": [{"tool": {"driver": {}}, "results": []}]},
                   {**good, "runs": [{**good["runs"][0], "results": [
                       {**good["runs"][0]["results"][0], "level": "fatal"}]}]},
                   {**good, "runs": [{**good["runs"][0], "results": [
                       {**good["runs"][0]["results"][0], "locations": []}]}]},
                   # what only the official schema knows
                   {**good, "runProperties": {}},
                   {**good, "runs": [{**good["runs"][0], "results": [
                       {**good["runs"][0]["results"][0], "kind": "bad"}]}]},
                   {**good, "runs": [{**good["runs"][0], "results": [
                       {**good["runs"][0]["results"][0], "message": {"txt": "m"}}]}]},
                   {**good, "runs": [{**good["runs"][0], "results": [
                       {**good["runs"][0]["results"][0], "locations": [{"physicalLocation": {
                           "artifactLocation": {"uri": "a.o", "index": -2}}}]}]}]}):
        with pytest.raises((AssertionError, KeyError)):
            check_sarif(broken)


# ---- --werror and -W ----------------------------------------------------------------------------


def test_warning_exits_0_and_werror_makes_it_an_error(objs):
    rc, out = main("check", *V417, objs["warning"])
    assert rc == 0 and ": warning: ALT010: " in out
    rc, out = main("check", "--werror", *V417, objs["warning"])
    assert rc == 1 and ": error: ALT010: " in out
    rc, out = main("check", "--werror", "--format", "json", *V417, objs["warning"])
    assert rc == 1 and json.loads(out)["summary"]["errors"] == 1


def test_W_no_code_silences(objs):
    rc, out = main("check", "-W", "no-ALT010", "--werror", *V417, objs["warning"])
    assert (rc, out) == (0, "")
    rc, out = main("check", "-W", "no-ALT001", *V417, objs["two"])
    assert rc == 1 and "ALT001" not in out and "ALT008" in out
    rc, out = main("check", "-W", "no-ALT001", "-W", "no-ALT008", *V417, objs["two"])
    assert (rc, out) == (0, "")


# ---- exit codes --------------------------------------------------------------------------------


def assert_unusable(proc, name: str | None) -> None:
    """Exit 2, exactly one line on stderr naming the file, nothing on stdout, no traceback."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    if name is not None:
        assert name in lines[0], lines[0]
    assert proc.stdout == ""


def patched(src: Path, dst: Path, offset: int, fmt: str, value: int) -> Path:
    data = bytearray(src.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def unusable(tmp_path_factory, objs) -> dict[str, Path]:
    """Files altlink cannot read, each made by a real tool where one makes it."""
    tmp = tmp_path_factory.mktemp("unusable")
    good = objs["clean"]
    plain = write(tmp / "plain.s", "\t.text\nf:\tnop\n")
    out = {
        "missing": tmp / "does-not-exist.o",
        "not-elf": write(tmp / "notes.txt", "hello, not an object\n"),
        "empty": write(tmp / "empty.o", ""),
        "directory": tmp / "dir.o",
        "elf32-ilp32": tmp / "ilp32.o",  # GNU as -mabi=ilp32
        "big-endian": tmp / "be.o",  # GNU as -EB
        "machine-patched": patched(good, tmp / "x86-patched.o", 18, "<H", 62),  # e_machine
        "truncated-header": tmp / "trunc-hdr.o",
        "truncated": tmp / "trunc.o",
    }
    run([AS, "-mabi=ilp32", plain, "-o", out["elf32-ilp32"]])
    run([AS, "-EB", plain, "-o", out["big-endian"]])
    out["directory"].mkdir()
    out["truncated-header"].write_bytes(good.read_bytes()[:40])
    out["truncated"].write_bytes(good.read_bytes()[:300])
    if shutil.which("gcc"):  # the host compiler makes a real x86-64 object
        out["machine-x86-64"] = compile_host(tmp)
    # CREL: a relocation format altlink does not read (the table's RELA retyped)
    out["crel"] = retype_rela(good, tmp / "crel.o", 0x40000014)
    return out


def compile_host(tmp: Path) -> Path:
    src = write(tmp / "host.c", "int host_fn(void) { return 1; }\n")
    run(["gcc", "-c", src, "-o", tmp / "host.o"])
    return tmp / "host.o"


def retype_rela(src: Path, dst: Path, sh_type: int) -> Path:
    data = bytearray(src.read_bytes())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    strtab_off = struct.unpack_from("<Q", data, shoff + 64 * shstrndx + 24)[0]
    for i in range(shnum):
        name_off = struct.unpack_from("<I", data, shoff + 64 * i)[0]
        name = bytes(data[strtab_off + name_off:]).split(b"\0", 1)[0]
        if name == b".rela.altinstructions":
            struct.pack_into("<I", data, shoff + 64 * i + 4, sh_type)
            break
    else:
        raise AssertionError("no .rela.altinstructions")
    dst.write_bytes(bytes(data))
    return dst


UNUSABLE = ["missing", "not-elf", "empty", "directory", "elf32-ilp32", "big-endian",
            "machine-patched", "machine-x86-64", "truncated-header", "truncated", "crel"]
REASONS = {"missing": "cannot open", "not-elf": "not an ELF file", "empty": "empty file",
           "elf32-ilp32": "ELF32", "big-endian": "big-endian", "machine-patched": "machine 62",
           "machine-x86-64": "machine 62", "truncated-header": "truncated ELF header",
           "truncated": "past the end of the file", "crel": "CREL"}


@pytest.mark.parametrize("command", ["check", "scan"])
@pytest.mark.parametrize("kind", UNUSABLE)
def test_unusable_input_exits_2_with_one_line(unusable, kind, command):
    if kind not in unusable:
        pytest.skip("no host compiler")
    f = unusable[kind]
    proc = altlink(command, *V417, f)
    assert_unusable(proc, str(f))
    if kind in REASONS:
        assert REASONS[kind] in proc.stderr


def test_every_truncation_of_an_object_is_unusable_input(objs, tmp_path, capsys):
    """Cut a real object at every 8 bytes: always exit 2 with one line, never an exception."""
    data = objs["two"].read_bytes()
    cut = tmp_path / "cut.o"
    for n in range(0, len(data), 8):
        cut.write_bytes(data[:n])
        rc = cli.main(["check", *V417, str(cut)], out=io.StringIO())
        err = capsys.readouterr().err
        assert rc == 2, n
        assert len(err.splitlines()) == 1 and str(cut) in err, (n, err)


def test_unusable_among_good_inputs_names_the_bad_one(objs, unusable):
    proc = altlink("check", *V417, objs["clean"], unusable["big-endian"])
    assert_unusable(proc, str(unusable["big-endian"]))


def test_symbols_from_unusable_file(objs, unusable):
    proc = altlink("check", *V417, "--symbols-from", unusable["not-elf"], objs["clean"])
    assert_unusable(proc, str(unusable["not-elf"]))


def test_bad_capability_table_names_file_and_line(objs, tmp_path):
    table = write(tmp_path / "caps.txt", "HAS_FOO\nHAS BAR\n")
    proc = altlink("check", "--cap-table", table, objs["clean"])
    assert_unusable(proc, f"{table}:2")
    proc = altlink("check", "--cap-table", tmp_path / "nope.txt", objs["clean"])
    assert_unusable(proc, str(tmp_path / "nope.txt"))


def test_linux_61s_header_name_on_a_later_kernel_says_which_file_to_give(objs, tmp_path):
    """Linux 6.12 generates cpucap-defs.h where 6.1 generated cpucaps.h: the 6.1 command
    line on a 6.12 tree fails in one line that names the file to give instead, and that
    file is read as a capability table."""
    asm = tmp_path / "arch/arm64/include/generated/asm"
    asm.mkdir(parents=True)
    defs = write(asm / "cpucap-defs.h", "#ifndef __ASM_CPUCAP_DEFS_H\n"
                 "#define __ASM_CPUCAP_DEFS_H\n\n/* Generated file - do not edit */\n\n"
                 + "".join(f"#define ARM64_HAS_{i}\t{i}\n" for i in range(4))
                 + "#define ARM64_NCAPS\t\t\t\t\t4\n\n#endif /* __ASM_CPUCAP_DEFS_H */\n")
    proc = altlink("check", "--abi", "linux-v6.1", "--cap-table", asm / "cpucaps.h",
                   objs["clean"])
    assert_unusable(proc, str(asm / "cpucaps.h"))
    assert f"this kernel generates cpucap-defs.h: --cap-table {defs})" in proc.stderr
    proc = altlink("check", "--cap-table", defs, objs["clean"])  # built for linux-v4.17
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Neither name there: no hint.
    proc = altlink("check", "--cap-table", tmp_path / "cpucaps.h", objs["clean"])
    assert_unusable(proc, str(tmp_path / "cpucaps.h"))
    assert "generates" not in proc.stderr


BAD_USAGE = [
    ("check",),
    ("scan",),
    ("frobnicate", "x.o"),
    ("check", "--abi", "linux-v5.0", "x.o"),
    ("check", "--format", "xml", "x.o"),
    ("check", "--ncaps", "many", "x.o"),
    ("check", "--ncaps", "-1", "x.o"),
    ("check", "--no-such-option", "x.o"),
    ("check", "-W", "no-ALT999", "x.o"),
    ("check", "-W", "ALT001", "x.o"),
    ("scan", "--format", "sarif", "x.o"),  # SARIF is for findings, scan lists entries
    ("explain", "ALT999"),
]


@pytest.mark.parametrize("args", BAD_USAGE, ids=lambda a: " ".join(a) or "nothing")
def test_bad_usage_exits_2_with_one_line(objs, args):
    args = tuple(str(objs["clean"]) if a == "x.o" else a for a in args)
    assert_unusable(altlink(*args), None)


def test_bad_environment_exits_2(objs):
    proc = altlink("check", objs["clean"], env={"ALTLINK_NCAPS": "four"})
    assert_unusable(proc, "ALTLINK_NCAPS")


def test_environment_sets_the_profile(objs):
    """ALTLINK_NCAPS and ALTLINK_ABI stand in for --ncaps and --abi."""
    proc = altlink("check", objs["clean"], env={"ALTLINK_NCAPS": "3"})
    assert proc.returncode == 1 and "ALT011" in proc.stdout
    proc = altlink("check", objs["clean"], env={"ALTLINK_NCAPS": "4"})
    assert (proc.returncode, proc.stdout) == (0, "")


def test_exit_1_for_errors_0_for_clean(objs):
    assert altlink("check", *V417, objs["error"]).returncode == 1
    assert altlink("check", *V417, objs["clean"]).returncode == 0


# ---- scan ------------------------------------------------------------------------------------


def test_scan_text(objs, tmp_path):
    caps = write(tmp_path / "caps.txt", "HAS_A\nHAS_B\nHAS_C\nHAS_D\n")
    rc, out = main("scan", "--cap-table", caps, objs["clean"])
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == f"{objs['clean']}: 2 entries (linux-v4.17, NCAPS 4)"
    assert lines[1].split() == ["#", "kind", "cap", "site", "len", "replacement", "/", "callback"]
    assert lines[2].split() == ["0", "static", "1", "HAS_B", ".text+0x0", "<func>", "4",
                                ".altinstr_replacement+0x0", "<r0>", "(4", "bytes)"]
    assert lines[3].split() == ["1", "callback", "-", ".text+0x4", "<site1>", "4",
                                "callback", "my_cb"]


def test_scan_text_image_and_v61(tmp_path):
    o = build(tmp_path, "v61", CALLBACK.replace("my_cb:", "_start:\nmy_cb:")
              .replace(".globl my_cb", ".globl my_cb, _start") + R0
              + "\tent site0, r0, 1, 4, 4\n\tent site1, my_cb, 0x8002, 4, 0\n")
    image = link([o], tmp_path / "v61.elf", flags=["-Ttext=0x400000"])
    rc, out = main("scan", *V61, image)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == f"{image}: 2 entries (linux-v6.1)"
    assert lines[2].split()[:4] == ["0", "static", "1", "0x400000"]
    assert lines[3].split()[:3] == ["1", "callback", "2"]
    assert lines[3].split()[-2:] == ["callback", "my_cb"]


def test_scan_reports_table_findings_on_stderr(tmp_path, capsys):
    o = build(tmp_path, "odd", R0 + "\tent site0, r0, 1, 4, 4\n"
              '\t.pushsection .altinstructions, "a"\n\t.byte 0\n\t.popsection\n')
    rc, out = main("scan", *V417, o)
    assert rc == 1
    assert out.splitlines()[0] == f"{o}: 1 entry (linux-v4.17, NCAPS 4)"
    err = capsys.readouterr().err
    assert f"{o}: error: ALT012: .altinstructions is 13 bytes" in err


def test_scan_json(objs, tmp_path):
    caps = write(tmp_path / "caps.txt", "HAS_A\nHAS_B\nHAS_C\nHAS_D\n")
    rc, out = main("scan", "--format", "json", "--cap-table", caps, objs["clean"])
    assert rc == 0
    doc = json.loads(out)
    assert (doc["abi"], doc["ncaps"]) == ("linux-v4.17", 4)
    (f,) = doc["files"]
    assert (f["path"], f["type"]) == (str(objs["clean"]), "object")
    static, cb = f["entries"]
    assert (static["kind"], static["cap"], static["cap_name"], static["cap_raw"]) == \
        ("static", 1, "HAS_B", 1)
    assert (static["orig_len"], static["alt_len"]) == (4, 4)
    assert static["site"]["section"] == ".text" and static["site"]["offset"] == 0
    assert static["alt"]["section"] == ".altinstr_replacement" and static["alt"]["name"] == "r0"
    assert static["table"] == {"section": ".altinstructions", "offset": 0, "address": None}
    assert (cb["kind"], cb["cap"], cb["cap_raw"], cb["callback"]) == ("callback", None, 4,
                                                                      "my_cb")
    assert cb["alt_len"] == 0 and cb["site"]["offset"] == 4


# ---- scan against the independent readelf decoder ------------------------------------------------

SCAN_SOURCES = {
    "v4.17": CALLBACK + R0_8 + repl("r1", "b func", section=".text, 1")
    + "\tent site0, r0, 1, 8, 8\n\tent site2, r1, 3, 4, 4\n\tent site1, my_cb, 4, 4, 0\n"
    "\tent site2, ext_cb, 4, 4, 0\n",
    "v6.1": CALLBACK + R0 + repl("r1", "nop", "nop", section='.text.alt, "ax"')
    + "\tent site0, r0, 2, 4, 4\n\tent site1, r1, 0, 8, 8\n\tent site2, my_cb, 0x8001, 4, 0\n"
    "\tent site0, ext_cb, 0x8003, 4, 0\n",
}


def scan_entries(*args) -> list[dict]:
    rc, out = main("scan", "--format", "json", *args)
    assert rc == 0
    (f,) = json.loads(out)["files"]
    return f["entries"]


def ref_is_callback(e, profile: str) -> bool:
    return e.is_callback if profile == "v6.1" else e.cap == 4


@pytest.mark.parametrize("toolchain", ["gnu", "llvm"])
@pytest.mark.parametrize("profile", ["v4.17", "v6.1"])
def test_scan_agrees_with_refdecode_on_objects(tmp_path, profile, toolchain):
    src = write(tmp_path / "s.S", PRELUDE + SCAN_SOURCES[profile])
    o = compile(src, tmp_path / "s.o", toolchain=toolchain)
    args = V417 if profile == "v4.17" else V61
    mine = scan_entries(*args, o)
    ref = refdecode.decode(str(o))
    assert ref.elf_type == "REL"
    assert len(mine) == len(ref.entries) == 4
    for m, r in zip(mine, ref.entries):
        assert (m["cap_raw"], m["orig_len"], m["alt_len"]) == (r.cap, r.orig_len, r.alt_len)
        assert (m["table"]["section"], m["table"]["offset"]) == (r.section, r.offset)
        assert m["kind"] == ("callback" if ref_is_callback(r, profile) else "static")
        for place, ref_ in ((m["site"], r.orig), (m["alt"], r.alt)):
            assert ref_ is not None and ref_.rtype == "R_AARCH64_PREL32"
            assert place["addend"] == ref_.addend
            if ref_.is_section_sym:
                assert place["section"] == ref_.sym and place["symbol"] is None
                assert place["offset"] == ref_.addend
            else:
                assert place["symbol"] == ref_.sym
        if m["kind"] == "callback":
            assert m["callback"] == r.alt.sym


@pytest.mark.parametrize("profile", ["v4.17", "v6.1"])
def test_scan_agrees_with_refdecode_on_images(tmp_path, profile):
    src = write(tmp_path / "s.S", PRELUDE.replace("func:", "func:\n_start:")
                .replace(".globl func", ".globl func, _start")
                + SCAN_SOURCES[profile] + "\t.text\n\t.globl ext_cb\n\t.type ext_cb, %function\n"
                "ext_cb:\tret\n\t.size ext_cb, 4\n")
    o = compile(src, tmp_path / "s.o")
    image = link([o], tmp_path / "s.elf", flags=["-Ttext=0x410000"])
    args = V417 if profile == "v4.17" else V61
    mine = scan_entries(*args, image)
    ref = refdecode.decode(str(image))
    assert ref.elf_type == "EXEC"
    assert len(mine) == len(ref.entries) == 4
    for m, r in zip(mine, ref.entries):
        assert (m["cap_raw"], m["orig_len"], m["alt_len"]) == (r.cap, r.orig_len, r.alt_len)
        assert m["table"]["address"] == hex(r.entry_addr)
        assert m["site"]["address"] == hex(r.site_addr)
        assert m["alt"]["address"] == hex(r.alt_addr)
        assert (m["site"]["section"], m["alt"]["section"]) == (r.site_section, r.alt_section)
        assert m["kind"] == ("callback" if ref_is_callback(r, profile) else "static")
        if m["kind"] == "callback":
            assert m["callback"] == r.alt_func
    # without --ncaps the v4.17 marker is inferred from the image alone
    if profile == "v4.17":
        assert [e["kind"] for e in scan_entries(image)] == [e["kind"] for e in mine]


# ---- docs/codes: one page per code, in step with the code table ------------------------------


def test_every_code_has_its_page():
    index = (ROOT / "altlink" / "docs" / "codes" / "README.md").read_text()
    for code, (severity, _title) in CODES.items():
        page = (ROOT / "altlink" / "docs" / "codes" / f"{code}.md").read_text()
        assert page.startswith(f"# {code}: "), code
        assert f"**Default severity:** {severity}" in page, code
        for section in ("## What it means", "## Why it matters at boot", "## Example",
                        "## Minimal input", "## How to fix"):
            assert section in page, (code, section)
        assert f": {severity}: {code}: " in page, code  # an example diagnostic
        assert f"| [{code}]({code}.md) | {severity}" in index, code


def test_names_from_a_file_never_break_the_one_line_error(tmp_path, monkeypatch, capsys):
    """A section or symbol name may hold a newline or a form feed (found by the fuzzer: a
    section name "\\f" in an error): the error stays one line, the character escaped."""
    from altlink.errors import AltlinkError, one_line

    assert one_line("plain name é") == "plain name é"
    assert one_line("a\nb\fc\u2028d\x85") == "a\\nb\\x0cc\\u2028d\\x85"

    def broken(args, out):
        raise AltlinkError("x.o: section 18 (\f\n) runs past the end of the file")

    monkeypatch.setitem(cli.COMMANDS, "scan", broken)
    assert cli.main(["scan", "x.o"]) == 2
    err = capsys.readouterr().err
    assert err == "x.o: section 18 (\\x0c\\n) runs past the end of the file\n"


# ---- commands that behave as their kind: usage, help, explain --------------------------------


def test_bare_altlink_lists_the_commands():
    """As git does: the usage and every command on stderr, exit 2."""
    p = altlink()
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("usage: altlink ")
    for name in cli.COMMANDS:
        assert re.search(rf"^    {name} +\S", p.stderr, re.M), name
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_help_has_examples_and_exit_statuses(command):
    p = altlink(command, "--help")
    assert p.returncode == 0, p.stderr
    examples = p.stdout.split("\nexamples:\n")[1].split("\n\n")[0]
    assert examples.startswith(f"  altlink {command} ")
    exits = " ".join(p.stdout.split("\nexit status: ")[1].split())
    assert exits.startswith("0 ") and " 2 " in exits
    assert ", 4 altlink's own failure (a bug: ALTLINK_TRACEBACK=1 shows the traceback)" in exits


def test_every_option_and_argument_has_help():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [f"{name} {a.dest}" for name, p in sub.choices.items() for a in p._actions
               if not a.help]
    assert missing == []


def test_w_codes_are_case_insensitive(objs):
    p = altlink("check", *V417, "-W", "no-alt010", objs["warning"])
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    p = altlink("check", *V417, "-W", "NO-Alt010", objs["warning"])
    assert (p.returncode, p.stdout) == (0, "")
    p = altlink("check", *V417, objs["warning"])  # the warning the option silenced
    assert ": warning: ALT010: " in p.stdout


def test_explain_prints_the_installed_page():
    for code in ("ALT001", "alt001", "Alt014"):
        p = altlink("explain", code)
        assert p.returncode == 0 and p.stderr == ""
        want = (ROOT / "altlink" / "docs" / "codes" / f"{code.upper()}.md").read_text()
        assert p.stdout == want
    assert p.stdout.startswith("# ALT014: ")


def test_explain_of_an_unknown_code_is_one_line():
    p = altlink("explain", "ALT999")
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == "altlink explain: ALT999: not a diagnostic code (ALT001 to ALT018)\n"


def test_the_quick_check_options_are_the_check_parser_s():
    """``cli.CHECK_VALUE_OPTIONS``, ``CHECK_APPEND_OPTIONS`` and ``CHECK_FLAG_OPTIONS`` (read
    without argparse) are the options of the check's parser, each with the attribute it
    sets, and ``CHECK_FORMATS`` its formats."""
    parser = cli.build_parser("check")
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    values, appends, flags = {}, {}, {}
    for a in sub.choices["check"]._actions:
        if isinstance(a, argparse._HelpAction) or not a.option_strings:
            continue
        kind = flags if a.nargs == 0 else appends if isinstance(
            a, argparse._AppendAction) else values
        kind.update(dict.fromkeys(a.option_strings, a.dest))
        if a.dest == "format":
            assert tuple(a.choices) == cli.CHECK_FORMATS
    assert values == cli.CHECK_VALUE_OPTIONS
    assert appends == cli.CHECK_APPEND_OPTIONS
    assert flags == cli.CHECK_FLAG_OPTIONS


QUICK = [  # words the quick reading takes
    ["check", "a.o"], ["check", "a.o", "b.o", ""],
    ["check", "--abi", "linux-v6.1", "--cap-table", "caps.h", "--cache-dir", "c", "a.o"],
    ["check", "--ncaps", "7", "--ncaps", " 12", "--format", "json", "a.o"],
    ["check", "--symbols-from", "vmlinux", "--symbols-from", "x", "-W", "no-ALT014", "-W",
     "no-alt001", "--werror", "--module", "--no-cache", "-v", "--verbose", "a.o", "b.ko"],
    ["check", "--abi", "xen-v4.17", "--format", "sarif", "--cache-dir", "", "a.o"],
    ["check", "-T", "vmlinux.lds", "--script", "b.ld", "-L", "d", "-L", "e", "--defsym",
     "a=b", "--defsym", "c=0x10", "a.o"],
]
NOT_QUICK = [  # words left to the parser, which reads them or reports what is wrong
    ["check"], ["check", "--help"], ["check", "-h"], ["check", "--abi", "linux-v9", "a.o"],
    ["check", "--abi=linux-v6.1", "a.o"], ["check", "--cache", "c", "a.o"],
    ["check", "--ncaps", "0x10", "a.o"], ["check", "--ncaps", "-1", "a.o"],
    ["check", "a.o", "--abi", "linux-v6.1"], ["check", "--", "a.o"], ["check", "-", "a.o"],
    ["check", "-Wno-ALT014", "a.o"], ["check", "--format", "xml", "a.o"],
    ["check", "--cache-dir"], ["check", "--no-cache"], ["check", "--version", "a.o"],
    ["check", "-vv", "a.o"], ["check", "a.o", "-v"], ["check", "--symbols-from", "-x", "a.o"],
    ["check", "-Tvmlinux.lds", "a.o"], ["check", "--defsym=a=b", "a.o"],
]


@pytest.mark.parametrize("env", [{}, {"ALTLINK_ABI": "linux-v6.1", "ALTLINK_CAP_TABLE": "t",
                                      "ALTLINK_WERROR": "yes"}, {"ALTLINK_WERROR": "0"}])
def test_the_quick_check_reading_is_the_parser_s(monkeypatch, env):
    """``altlink check`` words read without argparse (``cli._quick_check_args``) give what
    the parser gives, with the same defaults from the environment; any other words are left
    to the parser; an unusable ``ALTLINK_WERROR`` is the same error."""
    for k in ("ALTLINK_ABI", "ALTLINK_CAP_TABLE", "ALTLINK_WERROR"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for words in QUICK:
        quick = cli._quick_check_args(words)
        assert quick is not None, words
        assert vars(quick) == vars(cli.build_parser("check").parse_args(words)), words
    for words in NOT_QUICK:
        assert cli._quick_check_args(words) is None, words
    monkeypatch.setenv("ALTLINK_WERROR", "maybe")
    with pytest.raises(cli.AltlinkError) as quick:
        cli._quick_check_args(QUICK[0])
    with pytest.raises(cli.AltlinkError) as parser:
        cli.build_parser("check")
    assert str(quick.value) == str(parser.value)


def test_a_check_of_objects_does_not_import_argparse(objs):
    """``altlink check`` of objects with plain options reads its words without argparse; a
    usage error is still argparse's, one line, exit 2."""
    script = ("import sys\nfrom altlink import cli\nrc = cli.main(sys.argv[1:])\n"
              "print(rc, 'argparse' in sys.modules)")
    args = ["check", "--abi", "linux-v4.17", "--ncaps", "4", "--no-cache", str(objs["clean"])]
    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    got = run([sys.executable, "-c", script, *args], check=False, env=e)
    assert got.stdout.split() == ["0", "False"], got.stdout + got.stderr
    bad = altlink("check", "--abi", "linux-v9", objs["clean"])
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "--abi" in bad.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("args", [["paths", "--include"], ["explain", "ALT001"]])
def test_a_standard_output_that_takes_nothing_is_an_error(args):
    """The standard output on a full disk (/dev/full): exit 2 and a line that says so. A
    short output used to be lost in the flush at the end with exit 0; a long one was an
    "internal error" (exit 4)."""
    import subprocess

    e = env_without_altlink_vars()
    e["PYTHONPATH"] = str(ROOT)
    e.pop("PYTHONUNBUFFERED", None)  # (a user's buffered output: lost at the end before)
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "altlink", *args], stdout=full,
                           stderr=subprocess.PIPE, text=True, env=e)
    assert p.returncode == 2, p.stderr
    assert p.stderr == "altlink: cannot write the standard output: No space left on device\n"
