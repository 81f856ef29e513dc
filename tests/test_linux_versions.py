"""What altlink knows of each Linux version the tests build (tests/kbuild.py: 6.1 and 6.12),
checked against that version's own source and build: the capability header's name, the
boot-scope capabilities of the first patching pass, the callbacks the boot proof leaves to the
running kernel.
"""
from __future__ import annotations

import re

import pytest
from test_boot import RUNTIME_CALLBACKS

from altlink import caps as capsmod
from altlink.patch import boot_caps

pytestmark = [pytest.mark.kernel_build, pytest.mark.timeout(3600)]


def boot_scope(src) -> set[str]:
    """The capabilities that arch/arm64/kernel/cpufeature.c gives a SCOPE_BOOT_CPU type
    (ARM64_CPUCAP_BOOT_CPU_FEATURE, ARM64_CPUCAP_STRICT_BOOT_CPU_FEATURE) in any of its
    #ifdef branches: each ``.type`` belongs to the ``.capability`` before it."""
    found, cap = set(), None
    for line in (src / "arch/arm64/kernel/cpufeature.c").read_text().splitlines():
        if m := re.match(r"\s*\.capability = ARM64_(\w+),", line):
            cap = m.group(1)
        elif (m := re.match(r"\s*\.type = ARM64_CPUCAP_(\w+),", line)) and cap:
            if m.group(1) in ("BOOT_CPU_FEATURE", "STRICT_BOOT_CPU_FEATURE"):
                found.add(cap)
    return found


def test_the_build_generates_the_capability_header_altlink_is_given(kernel_build):
    table = capsmod.load(str(kernel_build.cap_header))
    assert table.ncaps > 60 and "HAS_LSE_ATOMICS" in table.names


def test_the_first_pass_is_the_sources_boot_scope_capabilities(kernel_build):
    """altlink patch's default --boot-caps on this kernel's table are the capabilities its
    cpufeature.c gives the boot CPU's scope."""
    table = capsmod.load(str(kernel_build.cap_header))
    manifest = {"abi": "linux-v6.1", "ncaps": table.ncaps,
                "caps": {str(i): n for i, n in enumerate(table.names)}}
    source = boot_scope(kernel_build.src)
    assert len(source) > 8
    assert {table.names[i] for i in boot_caps(manifest)} == source & set(table.names)


def test_every_callback_of_the_source_is_known_to_the_boot_proof(kernel_build):
    """The callbacks that arm64's code names (``alternative_cb``, ``ALTERNATIVE_CB``) are
    either the one the boot proof emulates or ones it leaves to the running kernel."""
    named = set()
    for path in (kernel_build.src / "arch/arm64").rglob("*.[chS]"):
        text = path.read_text(errors="replace")
        named |= set(re.findall(r"^\s*alternative_cb\s+\w+,\s*(\w+)", text, re.M))
        # ALTERNATIVE_CB("insn\n" /* comment */ "insn\n", cap, callback): the last argument
        named |= set(re.findall(r"ALTERNATIVE_CB\([^;]*?,\s*(\w+)\s*\)", text))
    named -= {"cb"}  # the macros' own parameter
    assert "alt_cb_patch_nops" in named and "kvm_update_va_mask" in named, sorted(named)
    assert named - {"alt_cb_patch_nops"} <= RUNTIME_CALLBACKS, sorted(named)
