"""`manifest` and `patch` refuse what `check` refuses, with check's own code and message;
`patch` takes only the image's capabilities and callbacks; and, under linux-v6.1, it applies
the boot-scope capabilities first, as Linux 6.1 boots.

The image is assembled and linked with the GNU toolchain; its table is written entry by entry
in assembly so that it can hold what the macros never make (a callback with a replacement
length, a capability above NCAPS, a BC.cond). The order test runs the patched image under
qemu-aarch64: its exit status is what the shared site returns.
"""
from __future__ import annotations

import json

import pytest
from toolchain import LDSCRIPTS, SIMPLE_LD, compile, link, qemu, write

from altlink import cli
from altlink import manifest as manifestmod
from altlink.elf import read_elf
from altlink.linkset import Input
from altlink.table import Profile

V61 = ["--abi", "linux-v6.1"]
# Capability 1 is BTI, a boot-scope capability of Linux 6.1; 0 and 2 are not.
CAPS = "HAS_LSE_ATOMICS\nBTI\nHAS_FOO\n"

SRC = r"""
	.macro entry orig, alt, cap, olen, alen
	.word \orig - .
	.word \alt - .
	.hword \cap
	.byte \olen, \alen
	.endm

	.text
	.globl _start
_start:
	bl	site0
	bl	site1
	bl	site2
	bl	site3
	bl	site4			// x0: what the shared site leaves
	mov	x8, #93			// exit(x0)
	svc	#0

site0:	mov	x0, #0			// entry 0: HAS_LSE_ATOMICS, fine
	ret
site1:	mov	x0, #0			// entry 1: a BC.cond leaving its replacement (ALT008)
	ret
site2:	mov	x0, #0			// entry 2: a callback with alt_len 4 (ALT002)
	ret
site3:	mov	x0, #0			// entry 3: capability 7, NCAPS is 3 (ALT011)
	ret
site4:	mov	x0, #3			// entries 4 (HAS_LSE_ATOMICS) and 5 (BTI): one site
	ret

	.globl	cb
	.type	cb, %function
cb:	ret
	.size	cb, . - cb

	.section .altinstr_replacement, "ax"
r0:	mov	x0, #1
r1:	.inst	0x54ffffd0		// bc.eq .-8 (cb, outside every replacement)
r3:	mov	x0, #2
r4:	mov	x0, #4
r5:	mov	x0, #5

	.section .altinstructions, "a"
	entry	site0, r0, 0, 4, 4
	entry	site1, r1, 1, 4, 4
	entry	site2, cb, 0x8000, 4, 4
	entry	site3, r3, 7, 4, 4
	entry	site4, r4, 0, 4, 4
	entry	site4, r5, 1, 4, 4
"""

LD = SIMPLE_LD


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    obj = compile(write(tmp / "t.S", SRC), tmp / "t.o", "gnu")
    elf = link([obj], tmp / "t.elf", "gnu", write(tmp / "t.ld", LD), [f"-L{LDSCRIPTS}"])
    return elf, write(tmp / "caps.txt", CAPS)


def main(*args) -> int:
    return cli.main([str(a) for a in args])


def error_lines(text: str) -> dict[str, str]:
    """check's text lines at error severity, by code: the message part."""
    out = {}
    for line in text.splitlines():
        if ": error: " in line:
            code, message = line.split(": error: ", 1)[1].split(": ", 1)
            out[code] = message.rsplit(" [", 1)[0]
    return out


def test_manifest_refuses_what_check_refuses_with_its_words(image, tmp_path, capsys):
    elf, caps = image
    assert main("check", *V61, "--cap-table", caps, elf) == 1
    checked = error_lines(capsys.readouterr().out)
    assert set(checked) == {"ALT002", "ALT008", "ALT011"}, checked
    assert "BC.cond" in checked["ALT008"]

    m = tmp_path / "m.json"
    # The manifest of the other entries is written: the command succeeds.
    assert main("manifest", *V61, "--cap-table", caps, elf, "-o", m) == 0
    refused_lines = error_lines(capsys.readouterr().err)
    assert refused_lines == checked
    data = manifestmod.load(str(m))
    from test_nested import schema_errors

    assert schema_errors(data) == []
    assert [e["index"] for e in data["entries"]] == [0, 4, 5]
    assert {(r["index"], r["code"]) for r in data["refused"]} == {
        (1, "ALT008"), (2, "ALT002"), (3, "ALT011")}
    assert {r["code"]: r["message"] for r in data["refused"]} == checked


def test_patch_refuses_an_entry_check_refuses(image, tmp_path, capsys):
    """A manifest that holds the refused entries (made without refusing, through the API, as
    an older altlink wrote them): patch names check's finding and writes nothing."""
    elf, caps = image
    from altlink import caps as capsmod

    table = capsmod.load(str(caps))
    e = read_elf(str(elf))
    m = manifestmod.build(Input.load(e), Profile("linux-v6.1", table.ncaps), table, str(elf),
                          manifestmod.sha256_file(str(elf)), None)
    assert [r["index"] for r in m["entries"]] == [0, 1, 2, 3, 4, 5]
    for drop, code in ((2, "ALT008"), (3, "ALT002")):  # keep only entries 0 and 4 and one bad
        kept = dict(m, entries=[r for r in m["entries"] if r["index"] in (0, drop - 1, 4)])
        path = write(tmp_path / f"m{drop}.json", json.dumps(kept))
        out = tmp_path / "p.elf"
        assert main("patch", elf, "--manifest", path, "--caps", "", "-o", out) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"error: {code}: " in err, err
        assert not out.exists()


def test_patch_takes_only_the_images_capabilities_and_callbacks(image, tmp_path, capsys):
    elf, caps = image
    m = tmp_path / "m.json"
    main("manifest", *V61, "--cap-table", caps, elf, "-o", m)
    capsys.readouterr()
    out = tmp_path / "p.elf"
    for args, words in ((["--caps", "0,9"], "no capability 9"),
                        (["--caps", "3"], "no capability 3"),
                        (["--caps", "HAS_BAR"], "unknown capability 'HAS_BAR'"),
                        (["--caps", "", "--boot-caps", "NOPE"], "--boot-caps: unknown"),
                        (["--caps", "", "--emulate", "no_such_cb"],
                         "'no_such_cb' is not a callback of the image")):
        assert main("patch", elf, "--manifest", m, *args, "-o", out) == 2, args
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and words in err, (args, err)
        assert not out.exists()
    # Names with and without the table's common prefix (Linux's header says ARM64_...).
    for spec in ("ARM64_HAS_LSE_ATOMICS", "HAS_LSE_ATOMICS", "0"):
        assert main("patch", elf, "--manifest", m, "--caps", spec, "-o", out) == 0, spec
        assert qemu(out).returncode == 4, spec  # site4: entry 4 applied


@pytest.mark.parametrize("boot, expected", [(None, 4), ("", 5), ("HAS_LSE_ATOMICS", 5),
                                            ("BTI", 4)])
def test_boot_capabilities_first_changes_a_shared_site(image, tmp_path, boot, expected):
    """Entries 4 (HAS_LSE_ATOMICS) and 5 (BTI) patch one site. In table order (no boot
    capabilities) entry 5 is applied last and wins; with BTI first (Linux 6.1's default: BTI
    is boot-scope), entry 4 is applied last and wins."""
    elf, caps = image
    m = tmp_path / "m.json"
    main("manifest", *V61, "--cap-table", caps, elf, "-o", m)
    out = tmp_path / "p.elf"
    extra = [] if boot is None else ["--boot-caps", boot]
    assert main("patch", elf, "--manifest", m, "--caps", "HAS_LSE_ATOMICS,BTI", *extra,
                "-o", out) == 0
    assert qemu(out).returncode == expected
    assert qemu(elf).returncode == 3  # unpatched


def test_capability_names_with_and_without_the_tables_common_prefix():
    from altlink.errors import AltlinkError
    from altlink.patch import parse_caps

    m = {"abi": "linux-v6.1", "ncaps": 3, "caps": {"0": "FW_HAS_A", "1": "FW_HAS_B",
                                                  "2": "FW_C"}}
    assert parse_caps("FW_HAS_A,HAS_B,C", m) == {0, 1, 2}  # FW_ is every name's prefix
    assert parse_caps("ARM64_FW_C,2", m) == {2}
    for bad in ("A", "HAS_C", "3", "FW_D"):
        with pytest.raises(AltlinkError):
            parse_caps(bad, m)
    # Without NCAPS (no table), a number is taken below the profile's callback bit.
    assert parse_caps("5", {"abi": "linux-v6.1", "ncaps": None, "caps": {}}) == {5}
    with pytest.raises(AltlinkError, match="not a capability number"):
        parse_caps("32768", {"abi": "linux-v6.1", "ncaps": None, "caps": {}})


def test_link_leaves_out_what_check_refuses_even_when_silenced(image, tmp_path):
    """`altlink link -W no-CODE` links a table check refuses; its manifest still leaves the
    refused entries out, as `altlink manifest` does."""
    elf, caps = image
    obj = elf.parent / "t.o"
    out, m = tmp_path / "l.elf", tmp_path / "l.json"
    assert main("link", *V61, "--cap-table", caps, "-W", "no-ALT008", "-W", "no-ALT002",
                "-W", "no-ALT011", "-o", out, "--manifest", m, "--", "aarch64-linux-gnu-ld",
                f"-L{LDSCRIPTS}", "-T", elf.parent / "t.ld", obj, "-o", out) == 0
    data = manifestmod.load(str(m))
    assert [e["index"] for e in data["entries"]] == [0, 4, 5]
    assert {(r["index"], r["code"]) for r in data["refused"]} == {
        (1, "ALT008"), (2, "ALT002"), (3, "ALT011")}


def test_the_default_boot_capabilities_are_each_kernels_boot_scope_names():
    """Linux 6.12 renamed two of 6.1's boot-scope capabilities (the GIC's system registers and
    pseudo-NMI's priority masking) and added five: a 6.12 table's default first pass has them,
    a 6.1 table's has 6.1's names, and neither has a capability of another scope."""
    from altlink.patch import boot_caps

    def first_pass(names: list[str]) -> set[str]:
        m = {"abi": "linux-v6.1", "ncaps": len(names),
             "caps": {str(i): n for i, n in enumerate(names)}}
        return {names[i] for i in boot_caps(m)}

    v612 = ["ALWAYS_BOOT", "ALWAYS_SYSTEM", "BTI", "HAS_GIC_CPUIF_SYSREGS",
            "HAS_GIC_PRIO_MASKING", "HAS_GIC_PRIO_RELAXED_SYNC", "HAS_HCX", "HAS_LSE_ATOMICS",
            "HAS_S1PIE", "HAS_S1POE", "HAS_VA52", "HAS_VIRT_HOST_EXTN", "MTE"]
    assert first_pass(v612) == set(v612) - {"ALWAYS_SYSTEM", "HAS_LSE_ATOMICS"}
    v61 = ["ALWAYS_BOOT", "HAS_SYSREG_GIC_CPUIF", "HAS_IRQ_PRIO_MASKING", "HAS_LSE_ATOMICS"]
    assert first_pass(v61) == set(v61) - {"HAS_LSE_ATOMICS"}
    assert first_pass([f"ARM64_{n}" for n in v61]) == {f"ARM64_{n}" for n in v61[:3]}
    assert boot_caps({"abi": "linux-v4.17", "ncaps": 4, "caps": {"0": "BTI"}}) == set()
