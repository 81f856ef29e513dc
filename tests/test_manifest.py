"""The manifest (docs/reference.md, section 5) and its JSON Schema: what ``altlink link --manifest`` and
``altlink manifest`` write, validated with jsonschema and checked against the image itself."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import jsonschema
import pytest
from test_link import FW_LD, MAIN_S, NCAPS, Image, altlink, asm, linker_command, sha256
from toolchain import ROOT, compile, run, write

SCHEMA_PATH = ROOT / "altlink" / "schema" / "manifest.schema.json"
CAPS = ["HAS_A", "HAS_B", "HAS_C", "HAS_D"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, manifest: dict) -> list[str]:
    return [e.message for e in validator.iter_errors(manifest)]


@pytest.fixture(scope="module")
def linked(tmp_path_factory) -> tuple[Path, dict]:
    """An image linked through altlink with GNU ld: the manifest, with a capability table."""
    d = tmp_path_factory.mktemp("linked")
    obj = asm(d, "main", MAIN_S)
    write(d / "caps.txt", "# test capabilities\n" + "\n".join(CAPS) + "\n")
    p = altlink("link", "--cap-table", "caps.txt", "-o", "fw.elf", "--manifest", "fw.json",
                "--bin", "fw.bin", "--",
                *linker_command("ld", [obj], "x.elf", write(d / "fw.ld", FW_LD)), cwd=d)
    assert p.returncode == 0, p.stderr
    return d, json.loads((d / "fw.json").read_text())


# == the schema ====================================================================================


def test_schema_ships_with_the_package():
    from altlink import manifest

    assert Path(manifest.SCHEMA_FILE) == SCHEMA_PATH
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema"] == {"const": manifest.SCHEMA_ID}
    # that the wheel carries it: tests/test_packaging.py, which builds one


def test_linked_manifest_validates(validator, linked):
    d, m = linked
    assert errors(validator, m) == []
    assert m["caps"] == {str(i): n for i, n in enumerate(CAPS)}
    assert [e["cap_name"] for e in m["entries"]] == ["HAS_B", "HAS_C", None]
    assert m["entries"][2]["cap"] is None  # a linux-v4.17 callback has no capability


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_linux_v61_manifest_validates(tmp_path, validator, linker):
    obj = asm(tmp_path, "main", MAIN_S, defines=["ALTLINK_ABI_LINUX_V61"])
    p = altlink("link", "--abi", "linux-v6.1", "-o", "fw.elf", "--manifest", "fw.json", "--",
                *linker_command(linker, [obj], "x.elf", write(tmp_path / "fw.ld", FW_LD)),
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "fw.json").read_text())
    assert errors(validator, m) == []
    assert m["abi"] == "linux-v6.1" and "bin" not in m["image"]
    cb = m["entries"][2]
    assert (cb["kind"], cb["cap"], cb["cap_raw"]) == ("callback", 3, 0x8003)
    # Without --bin there is no binary to point into.
    assert all(e["site"]["bin_offset"] is None for e in m["entries"])
    assert m["table"]["bin_offset"] is None


def test_source_lines(tmp_path, validator):
    (tmp_path / "src").mkdir()
    (tmp_path / "out").mkdir()
    src = write(tmp_path / "src" / "main.S", MAIN_S)
    obj = compile(src, tmp_path / "main.o", flags=["-g"], defines=[f"ALT_NCAPS={NCAPS}"])
    p = altlink("link", "--source-lines", "-o", "out/fw.elf", "--manifest", "out/fw.json", "--",
                *linker_command("ld", [obj], "x.elf"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "out" / "fw.json").read_text())
    assert errors(validator, m) == []
    lines = MAIN_S.splitlines()
    # The first line of each site: the macro line, the original code after alternative_else,
    # the code inside alternative_cb.
    want = [lines.index(x) + 1 for x in ('\talternative_insn "mov x0, #1", "mov x0, #2", 1',
                                         "\tnop", "\tmov x2, #0")]
    assert [e["site"]["source"] for e in m["entries"]] == [f"../src/main.S:{n}" for n in want]


# Each mutation breaks one rule of the format; the schema must catch every one.
def _set(path, value):
    def apply(m):
        obj = m
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
    return apply


def _both(a, b):
    def apply(m):
        a(m)
        b(m)
    return apply


def _delete(path):
    def apply(m):
        obj = m
        for k in path[:-1]:
            obj = obj[k]
        del obj[path[-1]]
    return apply


MUTATIONS = {
    "unknown top-level key": _set(["extra"], 1),
    "wrong schema id": _set(["schema"], "altlink-manifest/2"),
    "unknown abi": _set(["abi"], "linux-v5.0"),
    "ncaps as a string": _set(["ncaps"], "4"),
    "no entries": _delete(["entries"]),
    "image without sha256": _delete(["image", "sha256"]),
    "short sha256": _set(["image", "sha256"], "abc"),
    "other machine": _set(["image", "machine"], "x86_64"),
    "unknown image key": _set(["image", "size"], 5),
    "bin base as a number": _set(["image", "bin", "base"], 4194304),
    "caps key not a number": _set(["caps", "x"], "HAS_X"),
    "cap name with a space": _set(["caps", "0"], "HAS A"),
    "address as a number": _set(["entries", 0, "site", "address"], 4194304),
    "address in upper case": _set(["entries", 0, "site", "address"], "0x4000B0"),
    "address with leading zeros": _set(["entries", 0, "site", "address"], "0x00400000"),
    "address without 0x": _set(["entries", 0, "site", "address"], "400000"),
    "address past 64 bits": _set(["entries", 0, "site", "address"], "0x1" + "0" * 16),
    "odd hex bytes": _set(["entries", 0, "site", "bytes"], "1f2003d"),
    "negative file offset": _set(["entries", 0, "site", "file_offset"], -1),
    "unknown site key": _set(["entries", 0, "site", "section"], ".text"),
    "unknown kind": _set(["entries", 0, "kind"], "dynamic"),
    "static without replacement": _set(["entries", 0, "replacement"], None),
    "static with a callback": _set(["entries", 0, "callback"],
                                   {"symbol": "f", "address": "0x0"}),
    "static without a capability": _set(["entries", 0, "cap"], None),
    "callback with a replacement": _set(["entries", 2, "replacement"],
                                        {"address": "0x0", "bytes": "", "disasm": [],
                                         "fixups": []}),
    "callback without callback": _set(["entries", 2, "callback"], None),
    "callback key missing": _delete(["entries", 2, "callback", "symbol"]),
    "unknown fixup kind": _set(["entries", 1, "replacement", "fixups", 0, "kind"], "adr"),
    "fixup target as a number": _set(["entries", 1, "replacement", "fixups", 0, "target"], 1),
    "unknown fixup key": _set(["entries", 1, "replacement", "fixups", 0, "reach"], 1),
    "cap_raw past 16 bits": _set(["entries", 0, "cap_raw"], 0x10000),
    "missing entry key": _delete(["entries", 0, "cap_name"]),
    "unknown table key": _set(["table", "align"], 4),
    "table without size": _delete(["table", "size"]),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_schema_rejects(validator, linked, name):
    _, m = linked
    bad = copy.deepcopy(m)
    assert errors(validator, bad) == []
    MUTATIONS[name](bad)
    assert errors(validator, bad), f"the schema accepts: {name}"


def test_optional_parts_are_optional(validator, linked):
    _, m = linked
    m = copy.deepcopy(m)
    del m["table"]
    del m["image"]["bin"]
    m["entries"][0]["site"]["source"] = "src/foo.c:42"
    assert errors(validator, m) == []


# == the manifest and its image =====================================================================


def test_offsets_and_hashes_point_into_the_files(linked):
    d, m = linked
    image, binary = d / "fw.elf", d / "fw.bin"
    assert m["image"]["sha256"] == sha256(image) and m["image"]["bin"]["sha256"] == sha256(binary)
    img, raw = Image(image), binary.read_bytes()
    for e in m["entries"]:
        s = e["site"]
        want = bytes.fromhex(s["bytes"])
        assert len(want) == s["length"] > 0
        assert img.data[s["file_offset"]:s["file_offset"] + s["length"]] == want
        assert raw[s["bin_offset"]:s["bin_offset"] + s["length"]] == want
        assert int(m["image"]["bin"]["base"], 16) + s["bin_offset"] == int(s["address"], 16)
    t = m["table"]
    table = img.section(".altinstructions").data()
    assert img.data[t["file_offset"]:t["file_offset"] + t["size"]] == table
    assert raw[t["bin_offset"]:t["bin_offset"] + t["size"]] == table


@pytest.mark.parametrize("linker", ["ld", "lld"])
def test_manifest_command_matches_link(tmp_path, linker, validator):
    """An image linked without altlink gets the same manifest from ``altlink manifest``."""
    obj = asm(tmp_path, "main", MAIN_S)
    cmd = linker_command(linker, [obj], "plain.elf", write(tmp_path / "fw.ld", FW_LD))
    run(cmd, cwd=tmp_path)
    run(["aarch64-linux-gnu-objcopy", "-O", "binary", "plain.elf", "plain.bin"], cwd=tmp_path)
    p = altlink("link", "-o", "fw.elf", "--manifest", "fw.json", "--bin", "fw.bin", "--", *cmd,
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "fw.elf").read_bytes() == (tmp_path / "plain.elf").read_bytes()
    p = altlink("manifest", "plain.elf", "--bin", "plain.bin", "-o", "plain.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    linked = json.loads((tmp_path / "fw.json").read_text())
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert errors(validator, plain) == []
    assert plain["image"]["path"] == "plain.elf" and plain["image"]["bin"]["path"] == "plain.bin"
    for m in (linked, plain):
        m["image"]["path"] = m["image"]["bin"]["path"] = "-"
    assert plain == linked
    # To stdout, the same text (paths relative to the current directory).
    p = altlink("manifest", "plain.elf", "--bin", "plain.bin", cwd=tmp_path)
    assert p.stdout == (tmp_path / "plain.json").read_text()


def test_manifest_paths_are_relative_to_the_manifest(linked, tmp_path):
    d, _ = linked
    (tmp_path / "img").mkdir()
    (tmp_path / "deep" / "meta").mkdir(parents=True)
    (tmp_path / "img" / "fw.elf").write_bytes((d / "fw.elf").read_bytes())
    p = altlink("manifest", "img/fw.elf", "-o", "deep/meta/m.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "deep" / "meta" / "m.json").read_text())
    assert m["image"]["path"] == "../../img/fw.elf"
    p = altlink("manifest", "fw.elf", cwd=tmp_path / "img")
    assert json.loads(p.stdout)["image"]["path"] == "fw.elf"


def test_manifest_bytes_are_stable(linked, tmp_path):
    d, _ = linked
    a = altlink("manifest", "--cap-table", "caps.txt", "fw.elf", "--bin", "fw.bin", cwd=d)
    b = altlink("manifest", "--cap-table", "caps.txt", "fw.elf", "--bin", "fw.bin", cwd=d)
    assert a.returncode == 0 and a.stdout == b.stdout
    assert a.stdout == (d / "fw.json").read_text()
    assert a.stdout.encode("ascii")  # plain ASCII: addresses, hex and disassembly


# == verify, show and diff against manifests that were changed by hand =============================


@pytest.mark.parametrize("change,problem", [
    (_set(["entries", 0, "cap_raw"], 3), "entry 0: cap_raw 3 in the manifest, 1 in the image"),
    (_set(["entries", 1, "site", "address"], "0x400000"), "entry 1: site 0x400000+8"),
    (_set(["entries", 2, "kind"], "static"), "entry 2: kind static in the manifest, callback"),
    (_delete(["entries", 2]), "the image has 3 entries, the manifest 2"),
    (_both(_set(["image", "sha256"], "0" * 64), _set(["image", "patch_sha256"], "1" * 64)),
     "image sha256"),
])
def test_verify_reports_what_differs(linked, tmp_path, change, problem):
    from altlink.cli import main

    d, m = linked
    m = copy.deepcopy(m)
    change(m)
    path = str(write(tmp_path / "m.json", json.dumps(m)))
    out = io.StringIO()
    assert main(["verify", str(d / "fw.elf"), path], out=out) == 1
    assert f"{path}: error: {problem}" in out.getvalue(), out.getvalue()


@pytest.mark.parametrize("text,why", [
    ("{not json", "not a JSON manifest"),
    ('{"schema": "other/1"}', "not an altlink manifest"),
])
def test_verify_unusable_manifest_is_exit_2(linked, tmp_path, text, why):
    d, _ = linked
    write(tmp_path / "m.json", text)
    p = altlink("verify", d / "fw.elf", "m.json", cwd=tmp_path)
    assert p.returncode == 2 and why in p.stderr and "m.json" in p.stderr
    assert "Traceback" not in p.stderr


def test_diff_added_and_removed(linked, tmp_path):
    _, m = linked
    fewer = copy.deepcopy(m)
    del fewer["entries"][0]
    write(tmp_path / "a.json", json.dumps(m))
    write(tmp_path / "b.json", json.dumps(fewer))
    p = altlink("diff", "a.json", "b.json", cwd=tmp_path)
    assert p.returncode == 1  # they differ, as diff(1) says
    assert p.stdout.splitlines() == ["- static cap 1 at _start"]
    p = altlink("diff", "b.json", "a.json", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stdout.splitlines() == ["+ static cap 1 at _start"]


def test_show_names_caps_and_fixups(linked):
    d, m = linked
    p = altlink("show", "fw.json", cwd=d)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.splitlines()[0] == f"fw.elf: 3 alternatives (linux-v4.17, NCAPS {NCAPS})"
    assert "static cap 1 HAS_B" in out and "callback cap always" in out
    assert "branch26 fix-up -> " + m["entries"][1]["replacement"]["fixups"][0]["target"] in out


@pytest.mark.parametrize("text,problem", [
    ('{"schema": "altlink-manifest/1", "image": [], "entries": []}', "image is not an object"),
    ('{"schema": "altlink-manifest/1", "entries": {"0": {}}}', "entries is not a list"),
    ('{"schema": "altlink-manifest/1", "entries": [1]}', "entries[0] is not an object"),
    ('{"schema": "altlink-manifest/1", "entries": [{"site": "x"}]}',
     "entries[0].site is not an object"),
    ('{"schema": "altlink-manifest/1", "entries": [{"site": {"disasm": "nop"}}]}',
     "entries[0].site.disasm is not a list of strings"),
    ('{"schema": "altlink-manifest/1", "entries": [{"replacement": {"fixups": [0]}}]}',
     "entries[0].replacement.fixups is not a list of objects"),
])
def test_malformed_manifest_is_exit_2_for_every_command(linked, tmp_path, capsys, text,
                                                        problem):
    from altlink.cli import main

    d, _ = linked
    m = str(write(tmp_path / "m.json", text))
    for args in (["verify", d / "fw.elf", m], ["show", m], ["diff", d / "fw.json", m],
                 ["diff", m, d / "fw.json"]):
        assert main([str(a) for a in args], out=io.StringIO()) == 2, args
        assert capsys.readouterr().err.splitlines() == [f"{m}: not an altlink manifest: {problem}"]
