"""altlink as the linker of a real build it was not written for (tests/xenbuild.py): the Xen
4.17 hypervisor for arm64 from Debian bookworm's source, ``defconfig``, and
``make -C xen XEN_TARGET_ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-
LD="altlink link --abi xen-v4.17 --ncaps N -- aarch64-linux-gnu-ld"``.

Every link Xen's build runs (each directory's ``ld -r``, prelink.o, the three links of
xen-syms for its symbol table) goes through altlink and is clean; the manifest of xen-syms
says what an independent reading of the image says (readelf's symbols and sections, the
table's bytes decoded here, nm); the one callback is Xen's own function; ``altlink check``
of the image is clean under the profiles that read Xen's callbacks and not under the other;
the image is byte for byte what ld alone links; an ADR and an ADRP planted in a Xen
source file stop the build with ALT008, the ADRP because Xen's patcher copies it; and Xen,
booted under qemu-system-aarch64, patches its sites as ``altlink patch`` does offline.
"""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess

import pytest
import xenbuild
from toolchain import altlink

# The first use compiles the hypervisor (half a minute on 2 cores; with the download, more).
pytestmark = [pytest.mark.kernel_build, pytest.mark.timeout(1800)]

READELF = f"{xenbuild.CROSS}readelf"


@pytest.fixture(scope="session")
def xen_build():
    return xenbuild.build()


def _ld_lines(make_log: str) -> list[str]:
    """The partial links Xen's make says it runs ("  LD      common/built_in.o") and the
    final links it echoes in full ("... -o ./.xen-syms.0")."""
    quiet = re.findall(r"^\s+LD\s+(\S+)$", make_log, re.M)
    final = re.findall(r"-o (\S*xen-syms\S*)$", make_log, re.M)
    return quiet + final


def _symbols(image) -> dict[str, int]:
    out = subprocess.run([READELF, "-sW", str(image)], capture_output=True, text=True,
                         check=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 8 and f[0].endswith(":") and f[0] != "Num:":
            syms.setdefault(f[7], int(f[1], 16))
    return syms


def _sections(image) -> list[tuple[str, int, int, int]]:
    """(name, address, file offset, size) of each PROGBITS section, from readelf -S."""
    out = subprocess.run([READELF, "-SW", str(image)], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for m in re.finditer(r"\]\s+(\S+)\s+PROGBITS\s+([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)", out):
        found.append((m.group(1), int(m.group(2), 16), int(m.group(3), 16),
                      int(m.group(4), 16)))
    return found


def _file_offset(sections, addr: int) -> int:
    for _name, start, off, size in sections:
        if start <= addr < start + size:
            return off + addr - start
    raise AssertionError(f"{addr:#x} is in no section")


def _table(image) -> tuple[int, list[tuple[int, int, int, int, int]]]:
    """The image's table, read without altlink: its address, and per entry (site, replacement
    or callback address, cpufeature, orig_len, repl_len), as Xen's struct alt_instr lays it
    out and ALT_ORIG_PTR/ALT_REPL_PTR compute the addresses."""
    syms, secs = _symbols(image), _sections(image)
    start, end = syms["__alt_instructions"], syms["__alt_instructions_end"]
    data = image.read_bytes()
    off = _file_offset(secs, start)
    raw = data[off:off + end - start]
    entries = []
    for i in range(0, len(raw), 12):
        orig, repl, cap, olen, rlen = struct.unpack_from("<iiHBB", raw, i)
        entries.append((start + i + orig, start + i + 4 + repl, cap, olen, rlen))
    return start, entries


def test_every_link_of_the_xen_build_goes_through_altlink_clean(xen_build):
    links = xen_build.links()
    outputs = {rec["output"].removeprefix("./"): rec for rec in links}
    said = [s.removeprefix("./") for s in _ld_lines(xen_build.make_log.read_text())]
    assert said, "no link in make's output"
    assert set(said) == set(outputs), (sorted(said), sorted(outputs))
    for rec in links:
        assert rec["linked"] and rec["errors"] == 0 and not rec["findings"], rec
    assert {"prelink.o", "common/built_in.o", "arch/arm/built_in.o",
            ".xen-syms.0", ".xen-syms.1", "xen-syms"} <= set(outputs)
    final = outputs["xen-syms"]
    # what was collected from the objects is what is in the image; one callback
    assert final["entries"] == final["image_entries"] == outputs["prelink.o"]["entries"] > 300
    assert final["callbacks"] == 1
    assert (xen_build.xen / "xen-syms.alt.json").exists()
    assert not (xen_build.xen / "prelink.o.alt.json").exists()  # a partial link: none


def test_entries_of_the_objects_are_the_relocations_readelf_shows(xen_build):
    """prelink.o (the ``ld -r`` of everything): two PREL32 relocations per entry in its
    table's relocation section, as readelf -r lists them, as many entries as altlink
    collected."""
    out = subprocess.run([READELF, "-rW", str(xen_build.xen / "prelink.o")],
                         capture_output=True, text=True, check=True).stdout
    part = out.split("Relocation section '.rela.altinstructions'")[1]
    part = part.split("Relocation section")[0]
    relocs = re.findall(r"^[0-9a-f]+\s+[0-9a-f]+\s+(R_AARCH64_\w+)", part, re.M)
    assert set(relocs) == {"R_AARCH64_PREL32"}
    rec = next(r for r in xen_build.links() if r["output"] == "prelink.o")
    assert len(relocs) == 2 * rec["entries"]


def test_manifest_is_what_the_image_says(xen_build):
    """Each manifest entry against the table decoded here from readelf's symbols and section
    headers: the table's place, each site's address, length and bytes, each replacement's
    address and length, each capability and callback; every capability below ARM_NCAPS."""
    xen = xen_build.xen
    image = xen / "xen-syms"
    m = json.loads((xen / "xen-syms.alt.json").read_text())
    n = xen_build.ncaps
    assert m["abi"] == "xen-v4.17" and m["ncaps"] == n
    start, table = _table(image)
    assert m["table"]["address"] == hex(start) and m["table"]["size"] == 12 * len(table)
    secs = _sections(image)
    init_data = next(s for s in secs if s[0] == ".init.data")
    assert init_data[1] <= start < init_data[1] + init_data[3]  # merged into .init.data
    data = image.read_bytes()
    assert len(m["entries"]) == len(table) > 300
    for e, (site, repl, cap, olen, rlen) in zip(m["entries"], table):
        assert int(e["site"]["address"], 16) == site and e["site"]["length"] == olen, e
        off = _file_offset(secs, site)
        assert e["site"]["file_offset"] == off
        assert bytes.fromhex(e["site"]["bytes"]) == data[off:off + olen]
        assert e["cap_raw"] == cap < n or cap == n, e
        if cap == n:  # ARM_CB_PATCH
            assert e["kind"] == "callback" and e["replacement"] is None and rlen == 0
            assert int(e["callback"]["address"], 16) == repl
        else:
            assert e["kind"] == "static" and e["cap"] == cap and rlen == olen, e
            assert int(e["replacement"]["address"], 16) == repl
            roff = _file_offset(secs, repl)
            assert bytes.fromhex(e["replacement"]["bytes"]) == data[roff:roff + rlen]
    assert sum(1 for t in table if t[2] == n) == 1
    # Xen's get_alt_insn() re-encodes only the immediate branches (insn_is_branch_imm()):
    # an ADRP it would copy unchanged (ALT008 under xen-v4.17), so no fix-up is another kind
    kinds = {f["kind"] for e in m["entries"] if e["replacement"]
             for f in e["replacement"]["fixups"]}
    assert kinds and kinds <= {"branch26", "cond19", "cmp19", "test14"}, kinds


def test_the_callback_is_xens_own_function(xen_build):
    """The one callback entry names the function Xen's entry.S passes to ``alternative_cb``
    (read from the source), at the address nm gives it, a function in .text."""
    src = (xen_build.xen / "arch/arm/arm64/entry.S").read_text()
    named = re.findall(r"^\s*alternative_cb\s+(\w+)\s*$", src, re.M)
    assert named == ["arm_enable_wa2_handling"], named
    m = json.loads((xen_build.xen / "xen-syms.alt.json").read_text())
    cbs = [e for e in m["entries"] if e["kind"] == "callback"]
    assert [e["callback"]["symbol"] for e in cbs] == named
    nm = subprocess.run([f"{xenbuild.CROSS}nm", str(xen_build.xen / "xen-syms")],
                        capture_output=True, text=True, check=True).stdout
    addr = next(int(a, 16) for a, t, s in (ln.split() for ln in nm.splitlines()
                                           if len(ln.split()) == 3) if s == named[0])
    assert int(cbs[0]["callback"]["address"], 16) == addr
    # the site is the branch the callback patches: in wa2_ssbd, a 4-byte site
    assert cbs[0]["site"]["symbol"].startswith("wa2_ssbd") and cbs[0]["site"]["length"] == 4


def test_check_of_the_image_under_each_profile(xen_build):
    """xen-syms checks clean as Xen's patcher reads it (cap == ARM_NCAPS is a callback, also
    when NCAPS and the profile are found from the image), and not as Linux 6.1 reads it: there
    the callback entry is a static entry without a replacement (ALT001), and altlink says
    which profile the objects look built for."""
    xen, n = xen_build.xen, xen_build.ncaps
    for args in (["--abi", "xen-v4.17", "--ncaps", n], ["--abi", "xen-v4.17"],
                 ["--abi", "linux-v4.17", "--ncaps", n], []):
        p = altlink("check", *args, "xen-syms", cwd=xen)
        assert p.returncode == 0 and p.stdout == "" and p.stderr == "", (args, p.stdout,
                                                                         p.stderr)
    p = altlink("check", "--abi", "linux-v6.1", "xen-syms", cwd=xen)
    assert p.returncode == 1
    assert [ln.split(": ")[2] for ln in p.stdout.splitlines()] == ["ALT001"], p.stdout
    assert "wa2_ssbd" in p.stdout and "(for Xen, xen-v4.17)" in p.stderr


def test_manifest_command_and_the_raw_binary(xen_build, tmp_path):
    """``altlink manifest`` of the linked image gives the link's entries; with Xen's raw
    binary (``objcopy -O binary`` of xen-syms, made by Xen's build), each site's bytes are
    at its bin_offset in it; names come from a capability table made from Xen's header."""
    xen = xen_build.xen
    caps = tmp_path / "cpucaps"
    names = xenbuild.cap_names(xen_build.src)
    caps.write_text("\n".join(names) + "\n")
    out = tmp_path / "m.json"
    p = altlink("manifest", "--abi", "xen-v4.17", "--cap-table", caps, "--bin", "xen", "-o", out,
                "xen-syms", cwd=xen)
    assert p.returncode == 0, p.stdout + p.stderr
    made = json.loads(out.read_text())
    linked = json.loads((xen / "xen-syms.alt.json").read_text())
    assert made["ncaps"] == linked["ncaps"] == len(names)
    binary = (xen / "xen").read_bytes()
    assert made["image"]["bin"]["base"] == hex(_symbols(xen / "xen-syms")["_start"])
    assert len(linked["entries"]) == len(made["entries"])
    for a, b in zip(linked["entries"], made["entries"]):
        assert a["site"]["address"] == b["site"]["address"]
        assert a["cap_raw"] == b["cap_raw"] and a["callback"] == b["callback"]
        assert b["cap_name"] == (names[b["cap"]] if b["kind"] == "static" else None)
        off = b["site"]["bin_offset"]
        assert binary[off:off + b["site"]["length"]] == bytes.fromhex(b["site"]["bytes"])
    p = altlink("verify", "xen-syms", "xen-syms.alt.json", cwd=xen)
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_image_is_what_ld_alone_links(xen_build, tmp_path):
    """altlink's launcher changes nothing in what the linker writes: xen-syms's first link
    (prelink.o and the dummy symbol table), through altlink and through ld alone, gives the
    same bytes."""
    xen = xen_build.xen
    args = ["-EL", "--fix-cortex-a53-843419", "-T", "arch/arm/xen.lds", "-N", "prelink.o",
            "common/symbols-dummy.o"]
    bare = subprocess.run([f"{xenbuild.CROSS}ld", *args, "-o", tmp_path / "bare"], cwd=xen,
                          capture_output=True, text=True)
    assert bare.returncode == 0, bare.stderr
    p = altlink("link", "--abi", "xen-v4.17", "--ncaps", xen_build.ncaps, "--",
                f"{xenbuild.CROSS}ld", *args, "-o", tmp_path / "alt", cwd=xen)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "alt").read_bytes() == (tmp_path / "bare").read_bytes()


DEFECT_C = r"""
#include <xen/init.h>
#include <asm/alternative.h>

int altlink_defect_target;

int altlink_defect(void)
{
    unsigned long v, w;

    asm volatile(ALTERNATIVE("mov %0, #0", "adr %0, .", ARM_HAS_SB) : "=r"(v));
    asm volatile(ALTERNATIVE("mov %0, #0", "adrp %0, altlink_defect_target", ARM_HAS_SB)
                 : "=r"(w));
    return v != w;
}
"""


def test_a_planted_defect_stops_the_xen_build(xen_build, tmp_path):
    """An ADR and an ADRP in replacements (Xen's patcher would copy both unchanged: the
    address of the replacement, the page of the site), in a source file of a copy of the
    built tree, compiled by Xen's own rules with debug information: the link of its directory
    fails with two ALT008 lines naming the source lines, the object and the function, and
    leaves no built_in.o. (linux-v4.17 would accept the ADRP: Linux re-encodes it.)"""
    src = tmp_path / xen_build.src.name
    shutil.copytree(xen_build.src, src, symlinks=True)
    xenbuild.remove_link_outputs(src / "xen")
    arm = src / "xen/arch/arm"
    (arm / "altlink_defect.c").write_text(DEFECT_C)
    with open(arm / "Makefile", "a") as f:
        f.write("obj-y += altlink_defect.o\n$(obj)/altlink_defect.o: CFLAGS-y += -g\n")
    lines = [i + 1 for i, s in enumerate(DEFECT_C.splitlines()) if "ALTERNATIVE(" in s]
    p = subprocess.run(xen_build.make_args(src=src), capture_output=True, text=True,
                       env=xenbuild.build_env(tmp_path / "links.jsonl"))
    assert p.returncode != 0
    found = [s for s in p.stderr.splitlines() if "ALT008" in s]
    assert len(found) == 2, p.stderr[-3000:]
    for s, line, what in zip(found, lines, ("(adr, adr x", "(adrp x")):
        assert re.match(rf"(\S*/)?arch/arm/altlink_defect\.c:{line}: error: ALT008: ", s), s
        assert "[arch/arm/altlink_defect.o .text+0x" in s and " altlink_defect" in s, s
        assert what in s, s
    assert "xen-v4.17's patcher copies ADRP unchanged" in found[1]
    assert not (arm / "built_in.o").exists()
    assert not (src / "xen/xen-syms").exists()
    recs = [json.loads(s) for s in (tmp_path / "links.jsonl").read_text().splitlines()]
    failed = [r for r in recs if not r["linked"]]
    assert [r["output"] for r in failed] == ["arch/arm/built_in.o"]
    shutil.rmtree(src)  # 50 MB: pytest keeps the temporary directories of three runs


KEEP_CALLBACK = """
def _keep(entry, words, nr_inst):
    return words


CALLBACKS = {"arm_enable_wa2_handling": _keep}
"""
ARM_SSBD_RUNTIME = 2  # enum ssbd_state, xen/arch/arm/include/asm/cpuerrata.h
NOP = bytes.fromhex("1f2003d5")


@pytest.mark.parametrize("cpu", ["cortex-a57", "max"])
def test_the_booted_xen_patches_what_the_manifest_says(xen_build, tmp_path, cpu):
    """Xen booted under qemu-system-aarch64 on a Cortex-A57 (errata workarounds) and on
    QEMU's max CPU (FEAT_SB), stopped after it has patched itself (at its panic for want of
    a dom0 kernel), its RAM read: the table Xen says it patches is the manifest's; the capabilities Xen's own
    ``cpu_hwcaps`` holds, given to ``altlink patch``, give every static site the bytes the
    booted Xen has; the callback's site is what arm_enable_wa2_handling makes of it for the
    SSBD state the booted Xen found (a NOP only under ARM_SSBD_RUNTIME)."""
    xen = xen_build.xen
    booted = xenbuild.boot(xen / "xen", tmp_path / "boot", cpu)
    m = json.loads((xen / "xen-syms.alt.json").read_text())
    found = xenbuild.PATCHING.search(booted.console)
    assert found, booted.console[-3000:]
    start = int(m["table"]["address"], 16)
    assert (int(found.group(1), 16), int(found.group(2), 16)) == \
        (start, start + m["table"]["size"])
    syms = _symbols(xen / "xen-syms")

    def phys(va: int) -> int:
        return booted.load + va - syms["_start"]

    bits = int.from_bytes(booted.read(phys(syms["cpu_hwcaps"]), 8), "little")
    caps = [n for n in range(m["ncaps"]) if bits >> n & 1]
    assert caps, f"Xen found no capability on {cpu}"
    keep = tmp_path / "keep.py"
    keep.write_text(KEEP_CALLBACK)
    p = altlink("patch", "xen-syms", "--manifest", "xen-syms.alt.json", "--caps",
                ",".join(map(str, caps)), "--callbacks", keep, "-o", tmp_path / "patched",
                cwd=xen)
    assert p.returncode == 0, p.stdout + p.stderr
    offline = (tmp_path / "patched").read_bytes()
    original = (xen / "xen-syms").read_bytes()
    changed = differ = 0
    for e in m["entries"]:
        site = e["site"]
        va, n, off = int(site["address"], 16), site["length"], site["file_offset"]
        live = booted.read(phys(va), n)
        if e["kind"] == "callback":
            ssbd = int.from_bytes(booted.read(phys(syms["ssbd_state"]), 4), "little")
            assert live == (NOP if ssbd == ARM_SSBD_RUNTIME else original[off:off + n]), \
                (ssbd, live.hex())
            continue
        changed += live != original[off:off + n]
        differ += live != offline[off:off + n]
        assert live == offline[off:off + n], (e["index"], site["symbol"], e["cap"],
                                              live.hex(), offline[off:off + n].hex())
    assert changed > 0 and differ == 0
