"""Real Linux 7.2 arm64 objects and a module (tests/data/kernel-7.2, built through altlink from
Debian sid's 7.2.13 source): replacements in the code's own section (``.subsection 1``), and
empty entries (site and replacement of 0 bytes). Each entry as altlink reads it is compared
with an independent decoder of readelf's output (tests/refdecode.py); the objects check clean
as one link set, and link through altlink as Kbuild links them (``ld -r``, then an image)."""
from __future__ import annotations

import json

import refdecode
from toolchain import ROOT, altlink

SLICE = ROOT / "tests" / "data" / "kernel-7.2"
OBJECTS = sorted((SLICE / "objects").glob("*.o"))
MODULES = sorted((SLICE / "modules").glob("*.ko"))
CAPS = SLICE / "cpucap-defs.h"
V61 = ("--abi", "linux-v6.1", "--cap-table", str(CAPS))
CB_BIT = 0x8000


def test_the_slice_is_the_one_its_readme_describes():
    assert [p.name for p in OBJECTS] == ["alternative.o", "cache.o", "entry-common.o",
                                         "entry.o", "proton-pack.o"]
    assert [p.name for p in MODULES] == ["loop.ko"]
    assert "#define ARM64_NCAPS\t\t\t\t\t125" in CAPS.read_text()


def test_every_entry_is_read_as_readelf_shows_it():
    """Site and replacement (symbol and addend of each relocation), lengths, the capability
    field and the kind; the replacements in the sections of the code (no
    .altinstr_replacement), and cache.o's three empty entries."""
    p = altlink("scan", *V61, "--format", "json", *OBJECTS, *MODULES)
    assert p.returncode == 0, p.stderr
    files = refdecode.assert_scan_matches(json.loads(p.stdout), (*OBJECTS, *MODULES),
                                          lambda cap: bool(cap & CB_BIT))
    counts = {}
    for name, got in files.items():
        assert all(g["alt"]["section"] != ".altinstr_replacement" for g in got
                   if g["kind"] == "static"), name
        counts[name] = (len(got), sum(g["kind"] == "callback" for g in got),
                        sum(g["orig_len"] == 0 for g in got))
    assert counts == {"alternative.o": (1, 0, 0), "cache.o": (38, 0, 3),
                      "entry-common.o": (116, 21, 0), "entry.o": (101, 18, 0),
                      "proton-pack.o": (22, 9, 0), "loop.ko": (7, 5, 0)}


def test_the_objects_check_clean_as_one_link_set_and_the_module_alone():
    for files in (OBJECTS, MODULES):
        p = altlink("check", *V61, "--format", "json", *files)
        assert p.returncode == 0, p.stdout + p.stderr
        assert json.loads(p.stdout)["findings"] == []


def test_the_objects_link_through_altlink_as_kbuild_links_them(tmp_path):
    """ld -r of the objects (Kbuild's vmlinux.o), then an image of it: both clean, every entry
    found by the cross-check (cache.o's empty ones were "missing", ALT013, and stopped the
    Linux 7.2 build); the manifest lists the empty entries, 0 bytes each."""
    rel = tmp_path / "vmlinux.o"
    p = altlink("link", *V61, "--no-cache", "--", "aarch64-linux-gnu-ld", "-r", *OBJECTS,
                "-o", rel)
    assert p.returncode == 0, p.stderr
    script = tmp_path / "k.ld"
    script.write_text("ENTRY(caches_clean_inval_pou)\nSECTIONS {\n . = 0x400000;\n"
                      " .text : { *(.entry.text) *(.noinstr.text) *(.text .text.*) }\n"
                      " .altinstructions : { *(.altinstructions) }\n"
                      " .data : { *(.data .data.* .bss .bss.*) }\n}\n")
    image, manifest = tmp_path / "k.elf", tmp_path / "k.json"
    p = altlink("link", *V61, "--no-cache", "--manifest", manifest, "--",
                "aarch64-linux-gnu-ld", "--unresolved-symbols=ignore-all", "-T", script,
                rel, "-o", image)
    assert p.returncode == 0, p.stderr
    entries = json.loads(manifest.read_text())["entries"]
    assert len(entries) == 278
    assert sum(e["site"]["length"] == 0 for e in entries) == 3
