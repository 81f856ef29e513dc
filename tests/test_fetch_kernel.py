"""tools/fetch_kernel.py fails closed: it takes the kernel only through the system's apt (which
checks each package against its signed index) and dpkg-deb, and stops with one line and exit
status 2 when apt refuses. Here apt and dpkg are stand-ins on the PATH that answer as the real
ones do; the package is a real .deb made by dpkg-deb."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from toolchain import ROOT, write

FETCH = ROOT / "tools" / "fetch_kernel.py"
RELEASE = "6.1.0-99-cloud-arm64"
VERSION = "6.1.999-1"

pytestmark = pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="no dpkg-deb")


def make_deb(tmp: Path, version: str = VERSION) -> Path:
    """A real .deb of the -unsigned package with two modules in it."""
    tree = tmp / "pkg"
    write(tree / "DEBIAN" / "control",
          f"Package: linux-image-{RELEASE}-unsigned\nVersion: {version}\nArchitecture: arm64\n"
          "Maintainer: tests <tests@example.org>\nDescription: a stand-in\n")
    for ko in ("kernel/net/a.ko", "kernel/crypto/b.ko"):
        write(tree / "lib" / "modules" / RELEASE / ko, f"ELF {ko}\n")
    write(tree / "boot" / f"vmlinuz-{RELEASE}", "not a module\n")
    deb = tmp / f"linux-image-{RELEASE}-unsigned_{version}_arm64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree),
                    str(deb)], check=True, capture_output=True)
    return deb


def stand_ins(tmp: Path, download: str) -> dict:
    """A PATH with apt-get, apt-cache and dpkg that know one arm64 kernel; ``download`` is the
    shell apt-get runs for ``download``. dpkg-deb is the real one."""
    bin_dir = tmp / "bin"
    scripts = {
        "apt-cache": f"""case "$1" in
  pkgnames) echo linux-image-{RELEASE}-unsigned; echo linux-image-{RELEASE}-dbg;
            echo linux-image-6.1.0-7-cloud-arm64-unsigned;;
  policy) case "$2" in *-{RELEASE}-*) echo "  Candidate: {VERSION}";;
                       *) echo "  Candidate: (none)";; esac;;
esac
""",
        "apt-get": f"""for a in "$@"; do case "$a" in
  update) exit 0;;
  download) {download}; exit $?;;
esac; done
exit 1
""",
        "dpkg": """case "$1" in
  --print-architecture) echo amd64;;
  --print-foreign-architectures) echo arm64;;
  *) exec /usr/bin/dpkg "$@";;
esac
""",
    }
    for name, body in scripts.items():
        p = write(bin_dir / name, "#!/bin/sh\n" + body)
        p.chmod(0o755)
    if not (bin_dir / "dpkg-deb").exists():
        (bin_dir / "dpkg-deb").symlink_to(shutil.which("dpkg-deb"))
    return {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}


def fetch(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(FETCH), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_package_apt_refuses_stops_the_fetch(tmp_path):
    """apt-get download refuses a package it cannot authenticate: the fetch fails with apt's
    reason in one line, exit 2, and nothing is left in the cache (the tool it replaced went on
    unchecked when it could not check a signature, and said so only without -q)."""
    env = stand_ins(tmp_path, 'echo "WARNING: The following packages cannot be authenticated!'
                              '" >&2; echo "E: Some packages could not be authenticated" >&2; '
                              "exit 100")
    proc = fetch(env, "--dest", tmp_path / "cache", "--modules-only", "-q")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("fetch_kernel: error: apt-get download "
                           f"linux-image-{RELEASE}-unsigned:arm64={VERSION} failed: ")
    assert line.endswith("E: Some packages could not be authenticated")
    assert not list((tmp_path / "cache").rglob("*.ko"))


def test_the_modules_come_from_the_package_apt_gave(tmp_path):
    deb = make_deb(tmp_path)
    env = stand_ins(tmp_path, f'cp "{deb}" .')
    proc = fetch(env, "--dest", tmp_path / "cache", "--modules-only", "-q")
    assert proc.returncode == 0, proc.stderr
    out = Path(proc.stdout.strip())
    assert out == tmp_path / "cache" / VERSION
    kos = sorted(str(p.relative_to(out / "modules")) for p in out.rglob("*.ko"))
    assert kos == ["kernel/crypto/b.ko", "kernel/net/a.ko"]
    info = json.loads((out / "info.json").read_text())
    assert info["release"] == RELEASE and info["modules"]["count"] == 2
    assert info["packages"]["unsigned"]["sha256"] == hashlib.sha256(deb.read_bytes()).hexdigest()
    # a second run asks apt for nothing more
    env = stand_ins(tmp_path, "exit 100")
    assert fetch(env, "--dest", tmp_path / "cache", "--modules-only", "-q").stdout == proc.stdout


def test_a_package_other_than_the_one_asked_for_is_refused(tmp_path):
    deb = make_deb(tmp_path, "6.1.998-1")
    env = stand_ins(tmp_path, f'cp "{deb}" ./linux-image-{RELEASE}-unsigned_{VERSION}_arm64.deb')
    proc = fetch(env, "--dest", tmp_path / "cache", "--modules-only", "-q")
    assert proc.returncode == 2
    assert "not linux-image-" in proc.stderr and "6.1.998-1" in proc.stderr
    assert not list((tmp_path / "cache").rglob("*.ko"))


def test_offline_takes_the_newest_version_as_dpkg_orders_them(tmp_path):
    for version in ("6.1.9-1", "6.1.10-1", "6.1.10-1~bpo"):
        d = tmp_path / version
        (d / "modules").mkdir(parents=True)
        (d / "vmlinux").write_bytes(b"")
        (d / "info.json").write_text(json.dumps({"version": version}))
    proc = fetch(os.environ, "--dest", tmp_path, "--offline")
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path / "6.1.10-1")
