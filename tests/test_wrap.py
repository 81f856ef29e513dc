"""``--wrap=NAME``: the linker resolves a reference to NAME to ``__wrap_NAME`` (GNU ld and gold:
a reference the object leaves undefined; ld.lld: any reference through the symbol), and one
to ``__real_NAME`` to NAME. A callback or a replacement's branch to a wrapped name is the
wrapper's in the image: the link's checks resolve it so (the callback checked is the
wrapper), and the cross-check takes the wrapper's address for the name's."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from toolchain import (
    INCLUDE,
    LDSCRIPTS,
    SIMPLE_LD,
    altlink,
    run,
    write,
)

from altlink.linkcmd import linked_name, wrapped_names

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-ld",
                                      "aarch64-linux-gnu-ld.gold", "ld.lld")),
    reason="the AArch64 GNU toolchain, gold or ld.lld is missing")

# A callback my_cb and a replacement that calls helper, both left to other objects.
MAIN = r"""
#include <altlink/alternative.h>
	.text
	.globl _start
	.type _start, %function
_start:
	alternative_cb my_cb
	mov x2, #0
	alternative_cb_end
	alternative_if 1
	bl helper
	alternative_else
	nop
	alternative_endif
	mov x8, #93
	svc #0
	.size _start, . - _start
"""
FUNCS = """
	.text
	.type {name}, %function
	.globl {name}
{name}:	ret
	.size {name}, . - {name}
"""
DATA = """
	.data
	.type {name}, %object
	.globl {name}
{name}:	.quad 0
	.size {name}, 8
"""
LINKERS = {"ld": "aarch64-linux-gnu-ld", "gold": "aarch64-linux-gnu-ld.gold", "lld": "ld.lld"}


def build(tmp: Path, functions: list[str], data: tuple[str, ...] = ()) -> list[str]:
    """main.o, and lib.o defining ``functions`` (and ``data`` as objects in .data)."""
    write(tmp / "fw.ld", SIMPLE_LD)
    write(tmp / "main.S", MAIN)
    write(tmp / "lib.S", "".join(FUNCS.format(name=n) for n in functions)
          + "".join(DATA.format(name=n) for n in data))
    for name in ("main", "lib"):
        run(["aarch64-linux-gnu-gcc", "-DALT_NCAPS=4", f"-I{INCLUDE}", "-c", f"{name}.S",
             "-o", f"{name}.o"], cwd=tmp)
    return ["main.o", "lib.o"]


def link(tmp: Path, linker: list[str], objs: list[str], *extra: str):
    return altlink("link", "--ncaps", "4", "--manifest", "fw.json", "--", *linker, *extra,
                   "-static", "-L", LDSCRIPTS, "-T", "fw.ld", *objs, "-o", "fw.elf", cwd=tmp)


@pytest.mark.parametrize("ld", sorted(LINKERS))
@pytest.mark.parametrize("wrap", ["my_cb", "helper"])
def test_a_wrapped_callback_or_branch_target_is_the_wrappers(tmp_path, ld, wrap):
    objs = build(tmp_path, ["my_cb", "helper", f"__wrap_{wrap}"])
    p = link(tmp_path, [LINKERS[ld]], objs, f"--wrap={wrap}")
    assert p.returncode == 0, p.stderr
    assert "ALT0" not in p.stderr
    nm = run(["aarch64-linux-gnu-nm", "fw.elf"], cwd=tmp_path).stdout
    at = {ln.split()[2]: int(ln.split()[0], 16) for ln in nm.splitlines()
          if len(ln.split()) == 3}
    entries = json.loads((tmp_path / "fw.json").read_text())["entries"]
    if wrap == "my_cb":  # the callback the image runs, as the manifest names it
        cb = next(e for e in entries if e["kind"] == "callback")["callback"]
        assert (cb["symbol"], int(cb["address"], 16)) == ("__wrap_my_cb", at["__wrap_my_cb"])
    else:  # the replacement's bl reaches the wrapper (a fix-up in the manifest)
        dis = run(["aarch64-linux-gnu-objdump", "-d", "fw.elf"], cwd=tmp_path).stdout
        assert "<__wrap_helper>" in dis.split("<.altinstr_replacement>:")[1]


def test_only_the_wrapper_is_defined(tmp_path):
    """The name itself need not exist: every reference to it goes to the wrapper (ALT006
    before)."""
    objs = build(tmp_path, ["__wrap_my_cb", "helper"])
    p = link(tmp_path, [LINKERS["ld"]], objs, "--wrap=my_cb")
    assert p.returncode == 0, p.stderr


def test_the_wrapper_is_the_callback_checked(tmp_path):
    objs = build(tmp_path, ["my_cb", "helper"], data=("__wrap_my_cb",))
    p = link(tmp_path, [LINKERS["ld"]], objs, "--wrap=my_cb")
    assert p.returncode == 1, p.stderr
    assert "main.o: error: ALT007: callback __wrap_my_cb (--wrap=my_cb) is in .data, not an " \
        "executable section" in p.stderr
    assert "ALT013" not in p.stderr


def test_a_wrapper_that_is_missing(tmp_path):
    objs = build(tmp_path, ["my_cb", "helper"])
    p = link(tmp_path, [LINKERS["ld"]], objs, "--wrap=my_cb")
    assert p.returncode == 1
    assert "ALT006: callback __wrap_my_cb (--wrap=my_cb) is not defined in the link set" \
        in p.stderr


def test_through_the_compiler_driver(tmp_path):
    objs = build(tmp_path, ["my_cb", "helper", "__wrap_my_cb", "__wrap_helper"])
    p = altlink("link", "--ncaps", "4", "--", "aarch64-linux-gnu-gcc", "-nostdlib", "-static",
                "-Wl,--wrap,my_cb", "-Xlinker", "--wrap=helper", f"-L{LDSCRIPTS}",
                "-Wl,-T,fw.ld", *objs, "-o", "fw.elf", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("argv, names", [
    (["ld", "--wrap=a", "--wrap", "b", "-wrap=c"], {"a", "b", "c"}),
    (["gcc", "-Wl,--wrap,a", "-Wl,--wrap=b", "-Xlinker", "--wrap=c"], {"a", "b", "c"}),
    (["ld", "a.o", "--wrapped.o"], set()),
    (["ld", "wrap.o"], set()),
])
def test_wrapped_names(argv, names):
    assert wrapped_names(argv) == names


def test_linked_name():
    w = frozenset({"f"})
    assert [linked_name(n, w) for n in ("f", "__real_f", "g", "__real_g", "__wrap_f")] == \
        ["__wrap_f", "f", "g", "__real_g", "__wrap_f"]


def test_check_of_objects_with_the_links_wrap(tmp_path):
    """``altlink check --wrap NAME``, as the link's ``--wrap``: the objects checked as the link
    will resolve them (ALT006 without it, where only the wrapper is defined)."""
    objs = build(tmp_path, ["__wrap_my_cb", "helper"])
    p = altlink("check", "--ncaps", "4", *objs, cwd=tmp_path)
    assert p.returncode == 1 and "ALT006: callback my_cb is not defined" in p.stdout
    for wrap in (["--wrap", "my_cb"], ["--wrap=my_cb"]):
        p = altlink("check", "--ncaps", "4", *wrap, *objs, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    objs = build(tmp_path, ["my_cb", "helper"], data=("__wrap_my_cb",))
    p = altlink("check", "--ncaps", "4", "--wrap", "my_cb", *objs, cwd=tmp_path)
    assert p.returncode == 1
    assert "ALT007: callback __wrap_my_cb (--wrap=my_cb) is in .data" in p.stdout
