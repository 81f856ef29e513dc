"""The boot proof (docs/boot-proof.md): Linux 6.1 and 6.12 arm64 kernels built from Debian's
linux-source-6.1 and linux-source-6.12 boot under qemu-system-aarch64 on several CPU models;
every alternative site of the booted kernel, the vDSO's included, is compared with `altlink
patch` of the same vmlinux for the capabilities that kernel detected (tests/bootproof.py).

The kernels are tests/kbuild.py's builds (their O= directories, linked through altlink): 6.1
with GNU and LLVM, 6.12 with GNU; or the O= directory that ``ALTLINK_KBUILD_OUT`` names.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import bootproof
import kbuild
import pytest

# The first use of the kbuild fixture compiles the kernel (minutes on 2 cores; pytest-timeout
# counts fixture setup).
pytestmark = [pytest.mark.kernel_build, pytest.mark.timeout(3600)]

# The callbacks of Linux arm64 (6.1, 6.12) whose result depends on state only the running
# kernel has: the SMCCC conduit (HVC or SMC, from the firmware's PSCI node), whether the
# Spectre-v4 and Spectre-BHB mitigations are dynamic, KVM's layout, KASAN's mode. Their sites
# are listed by name, not required identical.
RUNTIME_CALLBACKS = {"smccc_patch_fw_mitigation_conduit",
                     "spectre_v4_patch_fw_mitigation_enable",
                     "spectre_bhb_patch_loop_iter", "spectre_bhb_patch_wa3",
                     "spectre_bhb_patch_clearbhb", "spectre_bhb_patch_loop_mitigation_enable",
                     "kvm_update_va_mask", "kvm_patch_vector_branch",
                     "kvm_get_kimage_voffset", "kvm_compute_final_ctr_el0",
                     "cortex_a76_erratum_1463225_svc_handler", "kasan_hw_tags_enable"}


@pytest.fixture(scope="module", params=kbuild.BUILDS, ids=kbuild.build_id)
def kernel_out(request) -> Path:
    """Each kernel the tests build (the kernel_build fixture's builds)."""
    kernel, toolchain = request.param
    env = os.environ.get("ALTLINK_KBUILD_OUT")
    if env:  # a build directory of one's own, for a quick run
        if request.param != kbuild.BUILDS[0]:
            pytest.skip("ALTLINK_KBUILD_OUT names one build")
        if not (Path(env) / "vmlinux").exists():
            pytest.fail(f"ALTLINK_KBUILD_OUT={env}: no vmlinux there")
        return Path(env)
    kbuild.skip_without_source(kernel)
    return kbuild.build(toolchain=toolchain, kernel=kernel).out


@pytest.fixture(scope="module")
def work(tmp_path_factory, kernel_out) -> Path:
    return tmp_path_factory.mktemp("boot")


def test_the_links_manifest_describes_what_the_kernel_patches(kernel_out, work):
    """Where the kernel was linked through altlink (Kbuild's LD), the link's own manifest has
    every entry, the vDSO's included, that a manifest of the final vmlinux has."""
    own = kernel_out / "vmlinux.alt.json"
    if not own.exists():
        pytest.skip("this kernel was not linked through altlink (no vmlinux.alt.json)")
    made = work / "final.alt.json"
    got = bootproof.altlink("manifest", "--abi", "linux-v6.1", "--cap-table",
                            bootproof.cap_table(kernel_out), kernel_out / "vmlinux", "-o", made)
    assert got.returncode == 0, got.stderr
    final = json.loads(made.read_text())
    assert final.get("refused") is None and len(final["nested"][0]["entries"]) > 0
    assert bootproof.entry_keys(json.loads(own.read_text())) == bootproof.entry_keys(final)


@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None,
                    reason="qemu-system-aarch64 (Debian's qemu-system-arm) is not installed")
@pytest.mark.parametrize("cpu", bootproof.CPUS)
def test_every_site_of_the_booted_kernel_is_what_altlink_patch_makes(kernel_out, work, cpu):
    booted = bootproof.boot(kernel_out / "arch" / "arm64" / "boot" / "Image", cpu, work / cpu)
    assert bootproof.APPLIED in booted.console or "applying boot alternatives" in booted.console
    c = bootproof.compare(kernel_out, booted, work)
    # The boot changed sites (the comparison is not of two unpatched texts) ...
    assert c.changed > 0 and "ALWAYS_SYSTEM" in c.caps, c
    # ... and every static entry's and image-only callback's site is byte-identical.
    assert c.static_differ == [] and c.image_only_differ == [], c
    assert c.nested_compared > 0 and c.nested_identical == c.nested_compared, c
    runtime_sites = sum(n for _same, n in c.runtime_callbacks.values())
    runtime_same = sum(same for same, _n in c.runtime_callbacks.values())
    assert set(c.runtime_callbacks) <= RUNTIME_CALLBACKS, c.runtime_callbacks
    assert c.identical == c.compared - runtime_sites + runtime_same, c
