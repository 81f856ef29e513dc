"""altlink as the linker of a real Linux kernel build (tests/kbuild.py): Debian's
linux-source-6.1 and linux-source-6.12, tinyconfig plus modules,
``make LD="altlink link ... -- aarch64-linux-gnu-ld"`` and, for 6.1 with clang and lld,
``make LLVM=1 LD="altlink link ... -- ld.lld"``.

Every link that makes vmlinux (and vmlinux.o, the kallsyms passes), the vDSO and each module
goes through altlink and is clean; what altlink checked is what ``altlink scan`` finds in the
outputs; the manifest still verifies after Kbuild's own post-link steps; and a defect planted
in a kernel source file stops the build with ALT008 naming the object, the function and the
line.
"""
from __future__ import annotations

import json
import re
import subprocess

import kbuild
import pytest
from toolchain import altlink

# The first use of the build compiles the kernel: minutes, beyond the suite's usual timeout.
pytestmark = [pytest.mark.kernel_build, pytest.mark.timeout(3600)]


def _ld_lines(make_log: str) -> list[str]:
    """The outputs Kbuild says it links (quiet mode: "  LD      vmlinux", "  LD [M]  x.ko")."""
    return [m.group(1) for m in re.finditer(r"^\s+LD(?: \[M\])?\s+(\S+)$", make_log, re.M)]


def test_every_link_of_the_kernel_build_goes_through_altlink_clean(kernel_build):
    links = kernel_build.links()
    by_output = {rec["output"]: rec for rec in links}
    said = _ld_lines(kernel_build.make_log.read_text())
    assert said, "no LD line in make's output"
    for out in said:  # each link Kbuild ran was altlink's
        assert any(o == out or o.endswith("/" + out) for o in by_output), (out, sorted(by_output))
    for rec in links:
        assert rec["linked"] and rec["errors"] == 0, rec
    names = {o.rsplit("/", 1)[-1] for o in by_output}
    assert {"vmlinux", "vmlinux.o", "vdso.so.dbg", *kernel_build.kernel.modules} <= names, \
        sorted(names)
    assert "lkdtm.o" in names  # a multi-object module's partial link (ld -r) too


def test_entries_checked_are_the_entries_in_the_outputs(kernel_build):
    """Per link: the entries collected from the objects, those in the linked output, and what
    ``altlink scan`` of the output finds are the same number (vmlinux has hundreds)."""
    out = kernel_build.out
    finals = [r for r in kernel_build.links()
              if r["output"].rsplit("/", 1)[-1] in ("vmlinux.o", "vdso.so.dbg")
              or r["output"].endswith(".ko")]
    assert len(finals) >= 2 + len(kernel_build.kernel.modules)
    for rec in finals:
        p = altlink("scan", "--abi", "linux-v6.1", "--format", "json", rec["output"],
                    cwd=rec["cwd"])
        assert p.returncode == 0, p.stderr
        scanned = sum(len(f["entries"]) for f in json.loads(p.stdout)["files"])
        assert rec["entries"] == rec["image_entries"] == scanned, rec
    vmlinux = next(r for r in kernel_build.links() if r["output"] == "vmlinux")
    assert vmlinux["entries"] == vmlinux["image_entries"] > 500
    p = altlink("scan", "--abi", "linux-v6.1", "--format", "json", out / "vmlinux")
    assert sum(len(f["entries"]) for f in json.loads(p.stdout)["files"]) == \
        vmlinux["image_entries"]
    ko = {r["output"].rsplit("/", 1)[-1]: r["image_entries"] for r in finals}
    assert ko["loop.ko"] > 0 and ko["lkdtm.ko"] > 0  # modules with alternatives
    assert ko["vdso.so.dbg"] > 0


def test_manifest_verifies_after_kbuild_post_link_steps(kernel_build):
    """sorttable rewrote vmlinux after the link: the manifest still verifies, saying so."""
    out = kernel_build.out
    assert "SORTTAB vmlinux" in kernel_build.make_log.read_text()
    p = altlink("verify", "vmlinux", "vmlinux.alt.json", cwd=out)
    assert p.returncode == 0, p.stdout
    assert "vmlinux: note: changed after the link" in p.stdout
    # sorttable sorts the exception table in place (here it lies in .init.data)
    assert re.search(r"changed after the link \(sha256 [0-9a-f]{16}\.\.\., linked as "
                     r"[0-9a-f]{16}\.\.\.\): contents of \S", p.stdout), p.stdout
    p = altlink("verify", "arch/arm64/kernel/vdso/vdso.so.dbg",
                "arch/arm64/kernel/vdso/vdso.so.dbg.alt.json", cwd=out)
    assert p.returncode == 0, p.stdout


def test_modules_check_clean_against_the_built_vmlinux(kernel_build):
    out = kernel_build.out
    kos = sorted(str(p.relative_to(out)) for p in out.glob("**/*.ko"))
    p = altlink("check", "--abi", "linux-v6.1", "--cap-table", kernel_build.kernel.cap_header,
                "--symbols-from", "vmlinux", *kos, cwd=out)
    assert p.returncode == 0, p.stdout + p.stderr


def test_vmlinux_o_checks_clean_with_the_link_s_script(kernel_build):
    """``altlink check vmlinux.o`` before the final link: KVM's ``__kvm_nvhe_*`` callbacks
    are names vmlinux.lds defines; with the script given (``-T``) the object checks clean,
    without it they are ALT006 (the test can fail: the kernel has KVM)."""
    out = kernel_build.out
    base = ["check", "--abi", "linux-v6.1", "--cap-table", kernel_build.kernel.cap_header,
            "--no-cache"]
    p = altlink(*base, "-T", "arch/arm64/kernel/vmlinux.lds", "vmlinux.o", cwd=out)
    assert (p.returncode, p.stdout) == (0, ""), p.stdout + p.stderr
    p = altlink(*base, "vmlinux.o", cwd=out)
    assert p.returncode == 1
    assert "ALT006: callback __kvm_nvhe_" in p.stdout


DEFECT_C = r"""
#include <linux/module.h>
#include <asm/alternative.h>

static noinline int altlink_defect(void)
{
	unsigned long v;

	asm volatile(ALTERNATIVE("mov %0, #0", "adr %0, .", ARM64_HAS_CNP) : "=r"(v));
	return v != 0;
}

static int __init defect_init(void)
{
	return altlink_defect();
}
module_init(defect_init);
MODULE_LICENSE("GPL");
"""


def test_a_planted_defect_stops_the_build(kernel_build, tmp_path):
    """An ADR in a replacement, in a kernel source file built by Kbuild (an external module,
    with debug information): the module's link fails with ALT008 naming the object, the
    function and the source line, and leaves no .ko."""
    (tmp_path / "defect.c").write_text(DEFECT_C)
    (tmp_path / "Kbuild").write_text("obj-m += defect.o\nccflags-y += -g\n")
    line = DEFECT_C.splitlines().index(
        next(s for s in DEFECT_C.splitlines() if "ALTERNATIVE(" in s)) + 1
    p = subprocess.run(kernel_build.make_args(f"M={tmp_path}", "modules"),
                       cwd=kernel_build.src, capture_output=True, text=True,
                       env=kbuild.build_env(tmp_path / "links.jsonl"))
    assert p.returncode != 0
    found = [s for s in p.stderr.splitlines() if "ALT008" in s]
    assert len(found) == 1, p.stderr[-3000:]
    assert found[0].startswith(f"{tmp_path}/defect.c:{line}: error: ALT008: "), found[0]
    assert "defect.o" in found[0] and "altlink_defect" in found[0] and "adr" in found[0]
    assert not (tmp_path / "defect.ko").exists()


def test_a_kbuild_with_altlink_under_the_linkers_name(kernel_build, tmp_path):
    """No LD= at all: a symbolic link to altlink named as the toolchain's linker, first in
    PATH, its options from the environment (as ccache is used). An external module's link
    goes through altlink: the defect above is ALT008 and leaves no .ko; the same module with
    a replacement that may move (``mov``) links, checked."""
    linker = kbuild._LINKER[kernel_build.toolchain]
    bindir = tmp_path / "altlink-bin"
    bindir.mkdir()
    exe = kbuild.altlink_ld().split(" link ")[0]
    if " " in exe:  # (no installed command: python -m altlink)
        pytest.skip("altlink is not installed as a command here")
    (bindir / linker).symlink_to(exe)

    def build(name: str, source: str) -> subprocess.CompletedProcess:
        mod = tmp_path / name
        mod.mkdir()
        (mod / "defect.c").write_text(source)
        (mod / "Kbuild").write_text("obj-m += defect.o\n")
        env = kbuild.build_env(mod / "links.jsonl")
        env.update(PATH=f"{bindir}:{env['PATH']}", ALTLINK_ABI="linux-v6.1",
                   ALTLINK_CAP_TABLE=str(kernel_build.cap_header))
        return subprocess.run(kernel_build.make_args(f"M={mod}", "modules", ld=linker),
                              cwd=kernel_build.src, capture_output=True, text=True, env=env)

    p = build("bad", DEFECT_C)
    assert p.returncode != 0
    assert [s for s in p.stderr.splitlines() if "ALT008" in s], p.stderr[-3000:]
    assert not (tmp_path / "bad" / "defect.ko").exists()
    p = build("good", DEFECT_C.replace('"adr %0, ."', '"mov %0, #1"'))
    assert p.returncode == 0, p.stderr[-3000:]
    links = [json.loads(line) for line in (tmp_path / "good" / "links.jsonl").read_text()
             .splitlines()]
    ko = [r for r in links if r["output"].endswith("defect.ko")]
    assert len(ko) == 1 and ko[0]["linked"] and ko[0]["entries"] == 1 and not ko[0]["errors"]
