"""A Linux 6.1 kernel with ThinLTO (``LLVM=1``, ``CONFIG_LTO_CLANG_THIN``) built through altlink
(tests/kbuild.py's ``llvm-lto`` build: the tests' configuration with LTO on). Every object is
LLVM bitcode: altlink reads no entry before a link, and lld's LTO makes the code. The entries
of vmlinux.o, of KVM's hypervisor object and of each module exist only in the outputs, where
they get an object's checks (their callbacks left undefined by a partial link are the next
link's), and the final vmlinux link checks vmlinux.o's as objects.
"""
from __future__ import annotations

import shutil

import kbuild
import pytest
from toolchain import altlink

pytestmark = [pytest.mark.kernel_build, pytest.mark.timeout(3600),
              pytest.mark.skipif(not all(shutil.which(t) for t in ("clang", "ld.lld",
                                                                     "llvm-ar")),
                                 reason="the LLVM toolchain is missing")]


@pytest.fixture(scope="module")
def lto_build():
    # KVM's hypervisor object is linked again in every run too (it is not among the outputs
    # kbuild removes for all builds): its partial link was the internal error.
    nvhe = kbuild.base_dir("llvm-lto") / "out/arch/arm64/kvm/hyp/nvhe/kvm_nvhe.tmp.o"
    nvhe.unlink(missing_ok=True)
    return kbuild.build(toolchain="llvm-lto")


def test_an_lto_kernel_links_through_altlink_clean(lto_build):
    """Before the fix, the partial link of KVM's hypervisor objects (kvm_nvhe.tmp.o) was an
    internal error: its entries' callbacks, left undefined, were not left to the next link."""
    assert "CONFIG_LTO_CLANG_THIN=y" in (lto_build.out / ".config").read_text()
    log = lto_build.make_log.read_text()
    assert "vmlinux.a(init/main.o): note: LTO object" in log
    links = lto_build.links()
    for rec in links:
        assert rec["linked"] and rec["errors"] == 0, rec
    by_name = {r["output"].rsplit("/", 1)[-1]: r for r in links}
    assert {"vmlinux", "vmlinux.o", "kvm_nvhe.tmp.o", "loop.ko"} <= set(by_name)
    # Most of vmlinux.o's entries come from no object read before its link (the assembly
    # files' are read); vmlinux's all come from vmlinux.o.
    vo = by_name["vmlinux.o"]
    assert vo["entries"] * 10 < vo["image_entries"], vo
    assert by_name["vmlinux"]["entries"] == by_name["vmlinux"]["image_entries"] > 500


def test_the_lto_vmlinux_and_modules_check_clean(lto_build):
    out = lto_build.out
    cap = ["--abi", "linux-v6.1", "--cap-table", lto_build.cap_header]
    p = altlink("check", *cap, out / "vmlinux")
    assert p.returncode == 0, p.stdout + p.stderr
    mods = sorted(out.glob("**/*.ko"))
    assert mods
    p = altlink("check", *cap, "--symbols-from", out / "vmlinux", *mods)
    assert p.returncode == 0, p.stdout + p.stderr
