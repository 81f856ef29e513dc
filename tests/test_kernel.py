"""Real Linux 6.1 arm64 kernel inputs (Debian's cloud-arm64 packages): ``scan`` agrees with
readelf on every entry, and every module checks clean against its vmlinux.

The committed slice (tests/data/kernel, see its README) always runs. The whole kernel (992
modules and the 273 MB vmlinux) runs when ``tools/fetch_kernel.py`` has put it in its cache
(``.ci/run`` does), or where ``ALTLINK_KERNEL_DIR`` names such a directory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import refdecode
from tests.toolchain import ROOT, altlink

SLICE = ROOT / "tests" / "data" / "kernel"
SLICE_MODULES = sorted((SLICE / "modules").glob("*.ko"))
V61 = ["--abi", "linux-v6.1"]


def full_kernel() -> Path | None:
    env = os.environ.get("ALTLINK_KERNEL_DIR")
    if env:
        return Path(env)
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "fetch_kernel.py"), "--offline",
                           "-q"], capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        path = Path(proc.stdout.strip().splitlines()[-1])
        if (path / "vmlinux").exists() or list(path.glob("vmlinux*")):
            return path
    return None


def compare_object(path: Path, scanned: dict) -> int:
    """Every entry of a module: altlink's scan against readelf's relocations. Returns the
    number of entries compared."""
    ref = refdecode.decode(str(path))
    got = scanned["entries"]
    assert len(got) == len(ref.entries), path
    for g, r in zip(got, ref.entries):
        where = f"{path.name} entry {r.index}"
        assert (g["cap_raw"], g["orig_len"], g["alt_len"]) == (r.cap, r.orig_len, r.alt_len), where
        assert r.orig is not None and r.orig.is_section_sym, where
        assert (g["site"]["section"], g["site"]["addend"]) == (r.orig.sym, r.orig.addend), where
        if r.alt.is_section_sym:
            assert (g["alt"]["section"], g["alt"]["addend"]) == (r.alt.sym, r.alt.addend), where
        else:
            assert (g["alt"]["symbol"], g["alt"]["addend"]) == (r.alt.sym, r.alt.addend), where
        assert g["kind"] == ("callback" if r.is_callback else "static"), where
    return len(got)


def scan_json(*paths, extra=()) -> dict:
    proc = altlink("scan", *V61, "--format", "json", *extra, *paths)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_slice_scan_agrees_with_readelf():
    data = scan_json(*SLICE_MODULES)
    by_path = {f["path"]: f for f in data["files"]}
    n = sum(compare_object(p, by_path[str(p)]) for p in SLICE_MODULES)
    assert n == 1646  # the slice's README: 679 callback + 967 static entries


def test_slice_modules_check_clean_against_vmlinux_symbols():
    proc = altlink("check", *V61, "--cap-table", SLICE / "cpucaps", "--symbols-from",
                   SLICE / "vmlinux.syms", "--format", "json", *SLICE_MODULES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["findings"] == []


def test_linux_cpucaps_header_reads_like_the_table():
    a = scan_json(SLICE / "modules" / "xor.ko", extra=("--cap-table", SLICE / "cpucaps.h"))
    b = scan_json(SLICE / "modules" / "xor.ko", extra=("--cap-table", SLICE / "cpucaps"))
    assert a == b
    names = {e["cap_name"] for e in a["files"][0]["entries"]}
    assert names == {"ALWAYS_SYSTEM", "HAS_NO_FPSIMD"}


@pytest.fixture(scope="module")
def other_image(tmp_path_factory) -> Path:
    """A linked image that is not the kernel: it defines none of the modules' callbacks."""
    d = tmp_path_factory.mktemp("other")
    src = d / "o.S"
    src.write_text(".text\n.globl _start\n_start: ret\n")
    subprocess.run(["aarch64-linux-gnu-gcc", "-c", src, "-o", d / "o.o"], check=True)
    subprocess.run(["aarch64-linux-gnu-ld", d / "o.o", "-o", d / "other"], check=True)
    return d / "other"


def test_slice_module_callbacks_need_the_kernel(other_image):
    """A module's callback alt_cb_patch_nops is the kernel's, resolved when Linux loads the
    module: without --symbols-from that is not an error; checked against an image that does
    not define it, it is ALT006 (proves the clean check above depends on the kernel's
    symbols)."""
    proc = altlink("check", *V61, "--format", "json", SLICE / "modules" / "xor.ko")
    assert proc.returncode == 0 and json.loads(proc.stdout)["findings"] == []
    proc = altlink("check", *V61, "--symbols-from", other_image, "--format", "json",
                   SLICE / "modules" / "xor.ko")
    codes = {f["code"] for f in json.loads(proc.stdout)["findings"]}
    assert proc.returncode == 1 and codes == {"ALT006"}


@pytest.fixture(scope="module")
def kernel():
    path = full_kernel()
    if path is None:
        pytest.skip("the full kernel is not fetched (python3 tools/fetch_kernel.py)")
    return path


def _vmlinux(kernel: Path) -> Path:
    cands = sorted(kernel.glob("vmlinux*"))
    assert cands, kernel
    return cands[0]


def _modules(kernel: Path) -> list[Path]:
    mods = sorted(kernel.rglob("*.ko"))
    assert len(mods) > 500, kernel
    return mods


def test_full_kernel_modules_check_clean(kernel):
    proc = altlink("check", *V61, "--cap-table", SLICE / "cpucaps", "--symbols-from",
                   _vmlinux(kernel), "--format", "json", *_modules(kernel))
    assert proc.returncode == 0, proc.stdout[:2000] + proc.stderr[:2000]
    assert json.loads(proc.stdout)["findings"] == []


def test_full_kernel_scan_agrees_with_readelf(kernel):
    mods = _modules(kernel)
    data = scan_json(*mods)
    by_path = {f["path"]: f for f in data["files"]}
    n = sum(compare_object(p, by_path[str(p)]) for p in mods)
    assert n > 20000


def test_full_vmlinux_checks_clean_and_manifest_matches_readelf(kernel, tmp_path):
    vm = _vmlinux(kernel)
    proc = altlink("check", *V61, "--cap-table", SLICE / "cpucaps", "--format", "json", vm)
    assert proc.returncode == 0 and json.loads(proc.stdout)["findings"] == [], proc.stdout[:2000]
    out = tmp_path / "vmlinux.alt.json"
    proc = altlink("manifest", *V61, "--cap-table", SLICE / "cpucaps", vm, "-o", out)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(out.read_text())
    ref = refdecode.decode(str(vm))
    assert len(m["entries"]) == len(ref.entries) > 20000
    for e, r in zip(m["entries"], ref.entries):
        assert int(e["site"]["address"], 16) == r.site_addr
        assert e["cap_raw"] == r.cap and e["site"]["length"] == r.orig_len
        if r.is_callback:
            assert int(e["callback"]["address"], 16) == r.alt_addr
            # The plain name, not a size-0 __kvm_nvhe_ alias.
            assert e["callback"]["symbol"] == r.alt_func
            assert not e["callback"]["symbol"].startswith("__kvm_nvhe_")
        else:
            assert int(e["replacement"]["address"], 16) == r.alt_addr


def test_profile_is_detected_from_the_callback_bit():
    """Without --abi, a table whose callbacks carry bit 15 is read as linux-v6.1 (with a note);
    --abi still decides when given."""
    proc = altlink("scan", "--format", "json", SLICE / "modules" / "xor.ko")
    assert json.loads(proc.stdout)["abi"] == "linux-v6.1"
    assert "using --abi linux-v6.1" in proc.stderr
    proc = altlink("scan", "--abi", "linux-v4.17", "--format", "json", SLICE / "modules" / "xor.ko")
    data = json.loads(proc.stdout)
    assert data["abi"] == "linux-v4.17" and "note" not in proc.stderr
    # Static-only tables give no evidence: the default stays.
    proc = altlink("scan", "--format", "json", SLICE / "modules" / "mdio-cavium.ko")
    assert json.loads(proc.stdout)["abi"] == "linux-v4.17"


def test_modules_checked_in_parallel_give_the_same_findings(monkeypatch, other_image):
    """Modules are checked over the cores; the findings and their order do not depend on it."""
    from altlink import batch
    from altlink.linkset import Options
    from altlink.table import Profile

    monkeypatch.setattr(batch, "PARALLEL_MIN", 1)
    monkeypatch.setattr(batch, "MODULES_CHUNK", 2)
    paths = [str(p) for p in SLICE_MODULES]
    options = Options(Profile("linux-v6.1", None))
    images = [str(other_image)]  # not the kernel: the modules' callbacks are unresolved
    serial = batch.check_paths(paths, options, images, jobs=1)
    parallel = batch.check_paths(paths, options, images, jobs=2)
    assert serial == parallel
    assert {f.code for f in serial} == {"ALT006"}
    assert [f.file for f in serial] == sorted((f.file for f in serial), key=paths.index)


@pytest.mark.parametrize("jobs", [1, 2])
def test_modules_checked_through_their_records_give_the_checkers_findings(
        monkeypatch, other_image, tmp_path, jobs):
    """With a record cache, each module is checked as the link set of one object it is,
    through its record (batch._module_from_record), made the first time and read back the
    next: the findings, their order and the counts are the checker's (no cache), against the
    kernel's symbols and against an image without the modules' callbacks (ALT006)."""
    from altlink import batch, cli

    monkeypatch.setattr(batch, "PARALLEL_MIN", 1)
    monkeypatch.setattr(batch, "MODULES_CHUNK", 2)
    paths = [str(p) for p in SLICE_MODULES]
    with_caps = cli.options_from(cli.build_parser().parse_args(
        ["check", *V61, "--cap-table", str(SLICE / "cpucaps"), "x.ko"]))
    def opts(*args):
        return cli.options_from(cli.build_parser().parse_args(["check", *args, "x.ko"]))

    # The last two read Linux 6.1's tables as linux-v4.17's, for findings of every kind: with
    # NCAPS given (records kept) and inferred from each module (records made each time).
    for k, (options, images) in enumerate([
            (with_caps, [str(other_image)]), (with_caps, [str(SLICE / "vmlinux.syms")]),
            (opts(*V61), []), (opts("--abi", "linux-v4.17", "--ncaps", "80"), []),
            (opts("--abi", "linux-v4.17"), [str(other_image)])]):
        want_stats: dict = {}
        want = batch.check_paths(paths, options, images, jobs=1, stats=want_stats)
        # One cache for all: the records the first made (against an image without the
        # callbacks) are read back by the second (against the kernel's symbols), which finds
        # them defined: a record holds nothing of the images.
        cache = str(tmp_path / "records")
        for _ in ("made", "read back"):
            stats: dict = {}
            assert batch.check_paths(paths, options, images, jobs=jobs, cache_dir=cache,
                                     stats=stats) == want
            assert stats == want_stats
        assert len(os.listdir(cache)) > 1  # the records were kept
        if k == 0:
            assert {f.code for f in want} == {"ALT006"}
        elif k < 3:
            assert want == []
        else:
            assert want  # ALT011 at least: the capability field read as linux-v4.17


def test_full_vmlinux_vdso_is_nested_and_patched(kernel, tmp_path):
    """Debian's vmlinux embeds its vDSO between vdso_start and vdso_end, with 4 sites of its
    own (``isb; mrs x2, cntvct_el0``, under HAS_ECV ``nop; mrs x2, cntvctss_el0``), which
    Linux patches at boot (apply_alternatives_vdso). The manifest carries them, placed as
    readelf places them in the vDSO cut out of the file; patch patches them in the image."""
    vm = _vmlinux(kernel)
    out = tmp_path / "vmlinux.alt.json"
    proc = altlink("manifest", *V61, "--cap-table", SLICE / "cpucaps", vm, "-o", out)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(out.read_text())
    from test_nested import schema_errors

    assert schema_errors(m) == []
    (vdso,) = m["nested"]
    assert (vdso["start"], vdso["end"], len(vdso["entries"])) == ("vdso_start", "vdso_end", 4)
    data = vm.read_bytes()
    cut = tmp_path / "vdso.so"
    cut.write_bytes(data[vdso["file_offset"]:vdso["file_offset"] + vdso["size"]])
    ref = refdecode.decode(str(cut))
    assert [int(e["site"]["address"], 16) for e in vdso["entries"]] == \
        [r.site_addr for r in ref.entries]
    for e in vdso["entries"]:
        assert e["cap_name"] == "HAS_ECV" and e["site"]["length"] == 8
        assert e["site"]["disasm"] == ["isb", "mrs x2, cntvct_el0"]
        assert e["replacement"]["disasm"] == ["nop", "mrs x2, cntvctss_el0"]
        off = e["site"]["outer"]["file_offset"]
        assert data[off:off + 8].hex() == e["site"]["bytes"]
    patched = tmp_path / "vmlinux.ecv"
    proc = altlink("patch", vm, "--manifest", out, "--caps", "ARM64_HAS_ECV", "-o", patched)
    assert proc.returncode == 0, proc.stderr
    new = patched.read_bytes()
    for e in vdso["entries"]:
        off = e["site"]["outer"]["file_offset"]
        assert new[off:off + 8] == bytes.fromhex("1f2003d5c2e03bd5"), e["index"]
    assert f"applied {sum(e['cap_name'] == 'HAS_ECV' for e in m['entries']) + 4} of" \
        in proc.stderr
