"""altlink in a firmware build it was not written for (tests/tfabuild.py): Trusted Firmware-A
2.8 from Debian bookworm's source, built for QEMU's virt machine and for Arm's FVP, with
``make LD="altlink link -- LINKER"`` and no altlink option at all (or with altlink under
ld's names first in ``PATH``), in six link shapes (``tfabuild.CONFIGS``).

TF-A has no alternatives, so altlink has to stay out of the way: every link of each build
goes through altlink and is clean, with an empty manifest beside each image; each image is
byte for byte what the linker alone links from the same command, and its link map the
same but for the output's name, which is the real output's; ``make`` run again relinks
nothing; and BL1, BL2 and BL31 boot under qemu-system-aarch64 into a small BL33 of the
test's, which BL31's PSCI then powers off. A function with an alternative planted in BL31
stops its link (TF-A's scripts have no place for the table, which --gc-sections drops),
until a script keeps the table.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tfabuild
from toolchain import INCLUDE, altlink, write

# The first use compiles TF-A six times (about 40 s of CPU; with the download, more).
pytestmark = [pytest.mark.kernel_build, pytest.mark.timeout(1200)]


@pytest.fixture(scope="session")
def tfa_build():
    return tfabuild.build()


def _config(tfa_build, name: str) -> tfabuild.Config:
    c = tfa_build.config(name)
    if c not in tfa_build.configs:
        pytest.skip(f"{name}: this machine lacks one of {c.needs or ('the altlink program',)}")
    return c


def _links(tfa_build, c: tfabuild.Config) -> dict[str, list[str]]:
    """``c``'s links as its make ran them, by output: one for each image it makes."""
    commands = tfa_build.link_commands(c)
    assert set(commands) == {str(tfa_build.build_dir(c) / i) for i in c.images}, commands
    return commands


def test_every_link_of_the_tfa_builds_goes_through_altlink_clean(tfa_build):
    links = tfa_build.links()
    by_output = {r["output"]: r for r in links}
    assert len(by_output) == len(links)  # each image linked once
    want = {str(tfa_build.build_dir(c) / image) for c in tfa_build.configs for image in c.images}
    assert set(by_output) == want
    said = {out for c in tfa_build.configs for out in tfa_build.link_commands(c)}
    assert said == want  # each link make ran (V=1) went through altlink, and no other
    for r in links:
        assert r["linked"] and r["findings"] == [] and r["errors"] == 0, r
        assert r["objects"] > 20, r  # read and checked, not passed by as a foreign link
        assert r["entries"] == r["image_entries"] == 0, r
        manifest = r["output"] + ".alt.json"
        assert r["written"] == [r["output"], manifest], r
        assert json.loads(open(manifest).read())["entries"] == []
    assert len(links) >= 12  # (15 here; 12 without clang)
    # nothing else beside the images: TF-A's own files (its script, map, dump) and the
    # manifest, no file of altlink's left over
    for c in tfa_build.configs:
        for image in c.images:
            d = (tfa_build.build_dir(c) / image).parent
            stage = d.name
            assert {p.name for p in d.iterdir() if p.suffix not in (".o", ".d")} == \
                {f"{stage}.{s}" for s in ("elf", "elf.alt.json", "ld", "map", "dump")}, d


def test_the_lto_build_links_through_the_gcc_driver_with_its_default_script(tfa_build):
    """TF-A's LTO link shape, as ``tfabuild`` means it: gcc as the linker, ``-Wl,-dT`` and
    the script as the driver's next word (GNU ld's default script: docs/historical-bugs.md)."""
    c = _config(tfa_build, "qemu-lto")
    for output, words in _links(tfa_build, c).items():
        assert words[0] == f"{tfabuild.CROSS}gcc"
        i = words.index("-Wl,-dT")
        assert words[i + 1] == output[:-len(".elf")] + ".ld"


def _bare_link(words: list[str], bare_out) -> list[str]:
    """``words`` (a link command) writing ``bare_out`` and its map beside it: ``-o FILE``,
    ``-Map=FILE`` or ``-Wl,-Map=FILE`` changed."""
    words = list(words)
    words[words.index("-o") + 1] = str(bare_out)
    for i, w in enumerate(words):
        if "-Map=" in w:
            words[i] = w.split("-Map=")[0] + f"-Map={bare_out}.map"
    return words


# gcc's LTO names its partitions in the map by temporary files of its own, new each link
LTRANS = re.compile(r"/tmp/cc\w+\.ltrans(\d+)\.ltrans\.o")


def _map(path, output) -> str:
    return LTRANS.sub(r"LTRANS\1", path.read_text().replace(str(output), "OUTPUT"))


@pytest.mark.parametrize("name", [c.name for c in tfabuild.CONFIGS])
def test_the_images_are_what_the_linker_alone_links(tfa_build, tmp_path, name):
    """Each link as make ran it, run again with the linker alone (the words after
    altlink's ``--``; the masquerade's ``ld.bfd`` is /usr/bin's without altlink's directory
    in PATH), writing elsewhere: the same image, byte for byte, and the same link map but for
    the output's name (GNU ld's maps say ``OUTPUT(<the real output> ...)``)."""
    c = _config(tfa_build, name)
    for output, words in _links(tfa_build, c).items():
        bare = tmp_path / output.replace("/", "_")
        p = subprocess.run(_bare_link(words, bare), cwd=tfa_build.src,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert bare.read_bytes() == open(output, "rb").read(), output
        map_file = Path(output[:-len(".elf")] + ".map")
        assert _map(bare.with_name(bare.name + ".map"), bare) == _map(map_file, output), output
        if c.linker != "ld.lld":  # (ld.lld's map does not name the output)
            assert f"OUTPUT({output} elf64-littleaarch64)" in map_file.read_text()


@pytest.mark.parametrize("name", [c.name for c in tfabuild.CONFIGS])
def test_altlinks_raw_binary_is_tfas_own(tfa_build, tmp_path, name):
    """Each link again through altlink with ``--bin`` (the image elsewhere): the raw binary
    is TF-A's own ``objcopy -O binary`` of its image (BL1's data is loaded in ROM and copied
    to RAM: the binary follows the load addresses)."""
    c = _config(tfa_build, name)
    for output, words in _links(tfa_build, c).items():
        out = tmp_path / output.replace("/", "_")
        binary = tmp_path / "raw.bin"
        p = altlink("link", "--bin", binary, "--", *_bare_link(words, out), cwd=tfa_build.src)
        assert p.returncode == 0, p.stderr
        tfas = tfa_build.build_dir(c) / (output.split("/")[-1][:-len(".elf")] + ".bin")
        assert binary.read_bytes() == tfas.read_bytes(), output


@pytest.mark.parametrize("name", [c.name for c in tfabuild.CONFIGS])
def test_make_again_links_nothing(tfa_build, tmp_path, name):
    """``make`` a second time with the same command: every image is up to date (altlink
    left nothing that makes make link again, nor changed an image's time), no link runs."""
    c = _config(tfa_build, name)
    log = tmp_path / "links.jsonl"
    before = {i: (tfa_build.build_dir(c) / i).stat().st_mtime_ns for i in c.images}
    p = subprocess.run(tfa_build.make_args(c), capture_output=True, text=True,
                       env=tfa_build.env(c, log))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert not log.exists(), log.read_text()
    assert " -o " not in p.stdout, p.stdout[-2000:]
    assert {i: (tfa_build.build_dir(c) / i).stat().st_mtime_ns for i in c.images} == before


def test_under_lds_name_alone_tfa_passes_altlink_by(tfa_build, tmp_path):
    """Why the masquerade config names altlink ``aarch64-linux-gnu-ld.bfd`` too: TF-A's make
    links with ``${CROSS_COMPILE}ld.bfd`` wherever PATH has one. A copy of that build, its
    BL31 linked again: with altlink under ``aarch64-linux-gnu-ld`` alone first in PATH, make
    links it with /usr/bin's ld.bfd and altlink never runs; with both names, through
    altlink."""
    c = _config(tfa_build, "qemu-path")
    only_ld = tmp_path / "bin"
    only_ld.mkdir()
    (only_ld / tfabuild.PATH_NAMES[0]).symlink_to(tfa_build.path_bin / tfabuild.PATH_NAMES[0])
    copy = tmp_path / "out"
    shutil.copytree(tfa_build.out / c.name, copy, symlinks=True)
    image = copy / tfa_build.build_dir(c).relative_to(tfa_build.out / c.name) / "bl31/bl31.elf"
    for path_bin, logged in ((only_ld, False), (tfa_build.path_bin, True)):
        log = tmp_path / f"links-{path_bin.name}.jsonl"
        env = tfa_build.env(c, log)
        env["PATH"] = env["PATH"].replace(str(tfa_build.path_bin), str(path_bin), 1)
        image.unlink()
        p = subprocess.run(tfa_build.make_args(c, build_base=copy), capture_output=True,
                           text=True, env=env)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        assert image.exists()
        assert f"{tfabuild.PATH_NAMES[1]} -o {image} " in p.stdout
        assert log.exists() == logged
    assert [r["output"] for r in tfa_build.links_in(log)] == [str(image)]


BL33 = r"""
	.text
	.globl	_start
_start:
	ldr	x1, =0x09000000		// QEMU virt's PL011
	adr	x2, msg
1:	ldrb	w3, [x2], #1
	cbz	w3, 2f
	str	w3, [x1]
	b	1b
2:	ldr	x0, =0x84000008		// PSCI SYSTEM_OFF, to BL31
	smc	#0
	b	.
msg:	.asciz	"BL33: altlink's test payload\n"
"""


def _bl33(tmp_path):
    s, o, b = tmp_path / "bl33.S", tmp_path / "bl33.o", tmp_path / "bl33.bin"
    s.write_text(BL33)
    subprocess.run([f"{tfabuild.CROSS}as", str(s), "-o", str(o)], check=True)
    subprocess.run([f"{tfabuild.CROSS}objcopy", "-O", "binary", "-j", ".text", str(o),
                    str(b)], check=True)
    return b.read_bytes()


# (Not the LTO build: TF-A 2.8 built with gcc 12's LTO prints nothing under QEMU, linked
# by the gcc driver alone too; its images are the driver's own, byte for byte, above.)
@pytest.mark.parametrize("name,bl31_from", [("qemu", "qemu"), ("qemu", "qemu-pie"),
                                            ("qemu-llvm", "qemu-llvm")])
def test_tfa_linked_through_altlink_boots(tfa_build, tmp_path, name, bl31_from):
    """BL1 as the firmware of QEMU's virt machine (secure), loading BL2, BL31 (the PIE one
    too: it relocates itself) and a BL33 through semihosting from the directory it runs in:
    each stage prints its banner, BL33 runs in the normal world and asks BL31 for PSCI's
    SYSTEM_OFF, and QEMU powers off."""
    c, c31 = _config(tfa_build, name), _config(tfa_build, bl31_from)
    for stage, config in (("bl1", c), ("bl2", c), ("bl31", c31)):
        (tmp_path / f"{stage}.bin").write_bytes((tfa_build.build_dir(config) /
                                                 f"{stage}.bin").read_bytes())
    (tmp_path / "bl33.bin").write_bytes(_bl33(tmp_path))
    cmd = ["qemu-system-aarch64", "-M", "virt,secure=on", "-cpu", "cortex-a57", "-m", "1024",
           "-nographic", "-monitor", "none", "-serial", "stdio", "-net", "none",
           "-bios", "bl1.bin", "-semihosting-config", "enable=on,target=native"]
    console = tmp_path / "console.log"
    with open(console, "wb") as f:
        q = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT)
        try:
            q.wait(timeout=60)
        except subprocess.TimeoutExpired:
            q.kill()
            q.wait()
    text = console.read_text(errors="replace")
    for stage in ("BL1", "BL2", "BL31"):
        assert f"NOTICE:  {stage}: Built : altlink test build" in text, text[-2000:]
    assert "BL33: altlink's test payload" in text, text[-2000:]
    assert "QEMU System Power off" in text and q.returncode == 0, text[-2000:]


def test_altlink_check_of_the_images(tfa_build):
    """``altlink check`` of each image alone: no table, nothing to say, exit 0."""
    c = tfa_build.config("qemu")
    images = [str(tfa_build.build_dir(c) / i) for i in c.images]
    p = altlink("check", *images)
    assert p.returncode == 0 and p.stdout == "", p.stdout + p.stderr


DEFECT_C = r"""
#define ALT_NCAPS 4
#include <altlink/alternative.h>

unsigned long altlink_defect(void)
{
	unsigned long v;

	asm volatile(ALTERNATIVE("mov %0, #0", "mov %0, #1", 1) : "=r"(v));
	return v;
}
"""
# A script that augments TF-A's own (INSERT): a place for the table, kept from --gc-sections.
KEEP_TABLE = """
SECTIONS
{
	.altinstructions : ALIGN(4) { KEEP(*(.altinstructions)) }
}
INSERT AFTER .rodata;
"""


def test_an_alternative_planted_in_tfa_needs_a_place_in_its_script(tfa_build, tmp_path):
    """A function with an alternative (altlink's header) added to BL31 as TF-A takes
    prebuilt objects (``MODULE_OBJS``), kept by ``-u``, in a copy of the QEMU build. TF-A's
    linker scripts have no place for ``.altinstructions`` and TF-A links with
    ``--gc-sections``: ld alone drops the table, silently; through altlink the link stops
    with ALT013 and leaves no bl31.elf. With a script that keeps the table (INSERT, given in
    TF_LDFLAGS) the link is clean, and the manifest's one entry is the function's site."""
    c = _config(tfa_build, "qemu")
    obj = tmp_path / "defect.o"
    subprocess.run([f"{tfabuild.CROSS}gcc", f"-I{INCLUDE}", "-march=armv8-a", "-Os",
                    "-mgeneral-regs-only", "-ffunction-sections", "-ffreestanding", "-c",
                    str(write(tmp_path / "defect.c", DEFECT_C)), "-o", str(obj)], check=True)
    keep = write(tmp_path / "keep-table.ld", KEEP_TABLE)
    copy = tmp_path / "out"
    shutil.copytree(tfa_build.out / c.name, copy, symlinks=True)
    image = copy / tfa_build.build_dir(c).relative_to(tfa_build.out / c.name) / "bl31/bl31.elf"
    args = [f"LD={tfabuild.altlink_ld(c.linker, '--ncaps', '4')}" if a.startswith("LD=")
            else a for a in tfa_build.make_args(c, build_base=copy) if a not in c.targets]
    args += [f"MODULE_OBJS={obj}", "bl31"]
    for script, ok in (((), False), ((f"-T {keep}",), True)):
        image.unlink(missing_ok=True)
        env = tfa_build.env(c, tmp_path / "links.jsonl")
        env["TF_LDFLAGS"] = " ".join([c.tf_ldflags, "-u altlink_defect", *script])
        p = subprocess.run(args, capture_output=True, text=True, env=env)
        if not ok:
            assert p.returncode != 0
            [line] = [s for s in p.stderr.splitlines() if "ALT0" in s]
            assert line.startswith(f"{obj}: error: ALT013: entry is missing from the linked "
                                   "image (the table is not in the image"), line
            assert not image.exists()
            words = tfabuild.link_commands(p.stdout)[str(image)]
            bare = subprocess.run(words, cwd=tfa_build.src, capture_output=True, text=True)
            assert bare.returncode == 0, bare.stderr  # ld alone: linked, the table gone
            sections = subprocess.run([f"{tfabuild.CROSS}readelf", "-SW", str(image)],
                                      capture_output=True, text=True, check=True).stdout
            assert "altlink_defect" in subprocess.run(
                [f"{tfabuild.CROSS}nm", str(image)], capture_output=True, text=True).stdout
            assert ".altinstructions" not in sections
        else:
            assert p.returncode == 0, p.stderr[-2000:]
            m = json.loads(image.with_name("bl31.elf.alt.json").read_text())
            [entry] = m["entries"]
            assert entry["site"]["symbol"] == "altlink_defect"
            assert entry["replacement"]["disasm"] == ["mov x0, #1"]
