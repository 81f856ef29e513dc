"""Real Linux 5.10 arm64 objects and modules (tests/data/kernel-5.10, built through altlink
from Debian's 5.10.262 source): the table layout of altlink's default profile, linux-v4.17,
where a callback is the entry whose capability is ARM64_NCAPS. Each entry as altlink reads
it is compared with an independent decoder of readelf's output (tests/refdecode.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import refdecode
from toolchain import ROOT, altlink, env_without_altlink_vars

SLICE = ROOT / "tests" / "data" / "kernel-5.10"
OBJECTS = sorted((SLICE / "objects").glob("*.o"))
MODULES = sorted((SLICE / "modules").glob("*.ko"))
CAPS = SLICE / "cpucaps.h"
NCAPS = 63  # ARM64_NCAPS of 5.10.262's cpucaps.h
V417 = ("--abi", "linux-v4.17", "--cap-table", str(CAPS))


def test_the_slice_is_the_one_its_readme_describes():
    assert [p.name for p in OBJECTS] == ["cache.o", "entry.o", "irq-gic-v3-its.o",
                                         "proton-pack.o", "signal.o"]
    assert [p.name for p in MODULES] == ["loop.ko", "test_user_copy.ko"]
    assert f"#define ARM64_NCAPS\t\t\t\t{NCAPS}" in CAPS.read_text()


def test_every_entry_is_read_as_readelf_shows_it():
    """Site and replacement (section and addend of each relocation), lengths, the capability
    field, and the kind: a callback exactly where the capability is NCAPS, its replacement
    the callback's symbol."""
    p = altlink("scan", *V417, "--format", "json", *OBJECTS, *MODULES)
    assert p.returncode == 0, p.stderr
    files = refdecode.assert_scan_matches(json.loads(p.stdout), (*OBJECTS, *MODULES),
                                          lambda cap: cap == NCAPS)
    counts = {}
    for name, got in files.items():
        counts[name] = (len(got), sum(g["kind"] == "callback" for g in got))
    assert counts == {"cache.o": (17, 0), "entry.o": (60, 16), "irq-gic-v3-its.o": (28, 0),
                      "proton-pack.o": (1, 0), "signal.o": (38, 0), "loop.ko": (4, 0),
                      "test_user_copy.ko": (16, 0)}


def test_the_objects_check_clean_as_one_link_set_and_the_modules_alone():
    for files in (OBJECTS, MODULES):
        p = altlink("check", *V417, "--format", "json", *files)
        assert p.returncode == 0, p.stdout + p.stderr
        assert json.loads(p.stdout)["findings"] == []


def test_the_callbacks_are_found_where_they_are_defined():
    """entry.o's callbacks are defined in proton-pack.o: without it, ALT006 for each."""
    p = altlink("check", *V417, "--format", "json", SLICE / "objects" / "entry.o")
    assert p.returncode == 1
    found = json.loads(p.stdout)["findings"]
    assert {f["code"] for f in found} == {"ALT006"}
    assert {f["message"].split()[1] for f in found} == {
        "spectre_v4_patch_fw_mitigation_enable", "smccc_patch_fw_mitigation_conduit"}


def test_read_with_the_v61_profile_the_callbacks_are_errors_and_the_note_says_why():
    """The same objects under linux-v6.1, where a callback has bit 15: cap 63 is then a
    capability out of range with no replacement, and altlink names the profile to use."""
    p = altlink("check", "--abi", "linux-v6.1", "--cap-table", CAPS, *OBJECTS)
    assert p.returncode == 1
    assert "ALT011: capability 63 is not in the table (NCAPS 63)" in p.stdout
    assert "use --abi linux-v4.17" in p.stderr


def test_a_partial_link_of_the_slice_is_cross_checked(tmp_path):
    """entry.o and proton-pack.o linked by ld -r through altlink: every entry collected is
    found in the output, callbacks resolved inside the link set."""
    log = tmp_path / "log.jsonl"
    objs = [SLICE / "objects" / n for n in ("entry.o", "proton-pack.o")]
    e = env_without_altlink_vars()
    e["ALTLINK_LOG"] = str(log)
    p = subprocess.run([sys.executable, "-m", "altlink", "link", *V417, "--",
                        "aarch64-linux-gnu-ld", "-r", *map(str, objs), "-o",
                        str(tmp_path / "both.o")], capture_output=True, text=True, env=e)
    assert (p.returncode, p.stderr) == (0, "")
    rec = json.loads(log.read_text())
    assert rec["linked"] and (rec["entries"], rec["image_entries"], rec["callbacks"]) == (
        61, 61, 16)
    assert Path(tmp_path / "both.o").exists()
