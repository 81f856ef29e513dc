#!/usr/bin/env python3
"""Fetch Debian's current 6.1 arm64 kernel (modules and vmlinux) for altlink's tests.

    python3 tools/fetch_kernel.py [--dest DIR] [--modules-only] [--print-version]
                                  [--offline] [-q]

It verifies nothing itself: the system's apt finds, downloads and checks the packages, and
dpkg reads them. Anything apt cannot verify stops it (fail closed): one line on stderr,
exit status 2, nothing left in the cache.

1. apt must know Debian's arm64 packages: when arm64 is not one of dpkg's architectures, it
   is added (``dpkg --add-architecture arm64``) and the index updated (``apt-get update``),
   which needs root. apt checks the signature of each suite's index with its keyring.
2. The kernel is the highest ABI of ``linux-image-6.1.0-<abi>-cloud-arm64-unsigned`` that apt
   knows, at apt's candidate version (``apt-cache policy``), with the ``-dbg`` package of the
   same version for vmlinux.
3. ``apt-get download NAME:arm64=VERSION`` fetches each package and checks it against the
   hashes of the signed index: a package that does not match, or one from a source apt
   cannot authenticate, is refused by apt (this tool never allows unauthenticated ones). When
   apt's index is stale (the candidate is no longer on the mirror), the index is updated once
   and the download tried again.
4. ``dpkg-deb --fsys-tarfile`` gives each package's files as a tar stream, of which only
   ``lib/modules/<release>/**/*.ko`` and ``usr/lib/debug/boot/vmlinux-<release>`` are written
   (``dpkg-deb -x`` would also write the -dbg package's 1.4 GB of module debug copies).
   Each part is written to a temporary directory and renamed into place when complete.
5. It prints the cache directory ``<dest>/<version>/``, holding ``modules/`` (the tree
   under ``lib/modules/<release>/``), ``vmlinux`` (not with ``--modules-only``) and
   ``info.json`` (the packages, their sha256, counts).

A second run finds everything in place and downloads nothing. ``--offline`` prints the
newest complete cache without asking apt (versions compared by ``dpkg --compare-versions``).
"""

from __future__ import annotations

import argparse
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

ARCH = "arm64"
FLAVOUR = "cloud-arm64"
SERIES = "6.1"
IMAGE = re.compile(r"^linux-image-6\.1\.0-(\d+)-cloud-arm64-unsigned$")

QUIET = False


class FetchError(Exception):
    """Why the kernel could not be fetched and verified: one line."""


def note(msg: str) -> None:
    if not QUIET:
        print(f"fetch_kernel: {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], what: str, cwd: str | None = None,
         stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    except OSError as e:
        raise FetchError(f"{what}: cannot run {cmd[0]}: {e.strerror}") from None
    return proc


def _last_error(proc: subprocess.CompletedProcess) -> str:
    text = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) \
        else (proc.stderr or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E:")] or lines
    return errors[-1] if errors else f"exit status {proc.returncode}"


# --------------------------------------------------------------------------
# apt

def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _apt_update() -> None:
    if not _is_root():
        raise FetchError("apt's index must be updated (apt-get update), which needs root; "
                         "run this as root, or use --offline for a kernel already fetched")
    note("updating apt's index (apt-get update)")
    proc = _run(["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300", "update"],
                "apt-get update")
    if proc.returncode != 0:
        raise FetchError(f"apt-get update failed: {_last_error(proc)}")


def ensure_arm64() -> bool:
    """arm64 among dpkg's architectures; True when it was added (the index then updated)."""
    native = _run(["dpkg", "--print-architecture"], "dpkg")
    foreign = _run(["dpkg", "--print-foreign-architectures"], "dpkg")
    if native.returncode != 0 or foreign.returncode != 0:
        raise FetchError(f"dpkg failed: {_last_error(foreign)}")
    archs = (native.stdout + foreign.stdout).decode().split()
    if ARCH in archs:
        return False
    if not _is_root():
        raise FetchError(f"apt knows no {ARCH} packages: dpkg --add-architecture {ARCH} and "
                         "apt-get update need root; run this as root")
    note(f"adding {ARCH} to dpkg's architectures")
    proc = _run(["dpkg", "--add-architecture", ARCH], "dpkg --add-architecture")
    if proc.returncode != 0:
        raise FetchError(f"dpkg --add-architecture {ARCH} failed: {_last_error(proc)}")
    _apt_update()
    return True


def candidate(package: str) -> str | None:
    """apt's candidate version of ``package`` for arm64, or None."""
    proc = _run(["apt-cache", "policy", f"{package}:{ARCH}"], "apt-cache policy")
    if proc.returncode != 0:
        raise FetchError(f"apt-cache policy {package}:{ARCH} failed: {_last_error(proc)}")
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate":
            value = value.strip()
            return None if value in ("", "(none)") else value
    return None


def find_kernel() -> dict:
    """The newest cloud-arm64 kernel apt knows: its release, version and package names."""
    proc = _run(["apt-cache", "pkgnames", "linux-image-6.1.0-"], "apt-cache pkgnames")
    if proc.returncode != 0:
        raise FetchError(f"apt-cache pkgnames failed: {_last_error(proc)}")
    abis = sorted({int(m.group(1)) for name in proc.stdout.decode().split()
                   if (m := IMAGE.match(name))}, reverse=True)
    for abi in abis:
        release = f"6.1.0-{abi}-{FLAVOUR}"
        unsigned = f"linux-image-{release}-unsigned"
        version = candidate(unsigned)
        if version:
            return {"release": release, "version": version, "unsigned": unsigned,
                    "dbg": f"linux-image-{release}-dbg"}
    raise FetchError(f"apt knows no linux-image-{SERIES}.0-*-{FLAVOUR}-unsigned package for "
                     f"{ARCH} (is a Debian bookworm source configured?)")


def download(package: str, version: str, into: str) -> str:
    """``apt-get download`` of one arm64 package: apt checks it against its signed index,
    or fails. The path of the .deb."""
    spec = f"{package}:{ARCH}={version}"
    note(f"downloading {spec} (apt-get download)")
    proc = _run(["apt-get", "-q", "download", spec], "apt-get download", cwd=into)
    if proc.returncode != 0:
        raise FetchError(f"apt-get download {spec} failed: {_last_error(proc)}")
    debs = glob.glob(os.path.join(into, f"{package}_*_{ARCH}.deb"))
    if len(debs) != 1:
        raise FetchError(f"apt-get download {spec} left no single .deb in {into}")
    fields = _run(["dpkg-deb", "--field", debs[0], "Package", "Version", "Architecture"],
                  "dpkg-deb --field")
    got = dict(ln.split(": ", 1) for ln in fields.stdout.decode().splitlines() if ": " in ln)
    if fields.returncode != 0 or got != {"Package": package, "Version": version,
                                         "Architecture": ARCH}:
        raise FetchError(f"{debs[0]}: not {spec} ({got or _last_error(fields)})")
    return debs[0]


def extract(deb: str, want, into: str) -> dict:
    """The files of ``deb`` that ``want(path)`` names (a path under ``into``, or None), read
    from ``dpkg-deb --fsys-tarfile``."""
    t0 = time.monotonic()
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    files = size = 0
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                rel = member.name[2:] if member.name.startswith("./") else member.name
                dest = want(rel) if member.isfile() else None
                if dest is None:
                    continue
                path = os.path.join(into, dest)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                src = tar.extractfile(member)
                with open(path, "wb") as f:
                    shutil.copyfileobj(src, f, 1 << 20)
                os.chmod(path, 0o644)
                files += 1
                size += member.size
    except tarfile.TarError as e:
        proc.kill()
        raise FetchError(f"{deb}: dpkg-deb gave no readable tar: {e}") from None
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.wait()
    if proc.returncode != 0:
        raise FetchError(f"dpkg-deb --fsys-tarfile {deb} failed: "
                         f"{err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
    return {"files": files, "bytes": size, "seconds": round(time.monotonic() - t0, 1)}


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# cache

def _write_atomic(path: str, data: bytes) -> None:
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _complete(d: str, modules_only: bool) -> bool:
    if not os.path.isfile(os.path.join(d, "info.json")):
        return False
    if not os.path.isdir(os.path.join(d, "modules")):
        return False
    return modules_only or os.path.isfile(os.path.join(d, "vmlinux"))


def _read_info(d: str) -> dict:
    try:
        with open(os.path.join(d, "info.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _dpkg_compare(a: str, b: str) -> int:
    """dpkg's own comparison of two versions."""
    if a == b:
        return 0
    proc = _run(["dpkg", "--compare-versions", a, "gt", b], "dpkg --compare-versions")
    return 1 if proc.returncode == 0 else -1


def newest_cached(root: str, modules_only: bool) -> str | None:
    found = []
    for d in glob.glob(os.path.join(root, "*")):
        if os.path.isdir(d) and not os.path.basename(d).startswith(".") and \
                _complete(d, modules_only):
            found.append((_read_info(d).get("version", os.path.basename(d)), d))
    if not found:
        return None
    if len(found) == 1:
        return found[0][1]
    key = functools.cmp_to_key(lambda x, y: _dpkg_compare(x[0], y[0]))
    return max(found, key=key)[1]


def fetch(dest_root: str, modules_only: bool, k: dict) -> str:
    """Make DEST/<version>/ complete for kernel ``k`` (``find_kernel``)."""
    ver, release = k["version"], k["release"]
    out = os.path.join(dest_root, ver)
    if _complete(out, modules_only):
        return out
    os.makedirs(out, exist_ok=True)
    info = _read_info(out) or {"version": ver, "release": release, "packages": {}}
    info.update(version=ver, release=release)
    info.setdefault("packages", {})

    def save_info() -> None:
        _write_atomic(os.path.join(out, "info.json"),
                      (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())

    def get(package: str, tmp: str) -> str:
        try:
            return download(package, ver, tmp)
        except FetchError as e:
            if not _is_root():
                raise
            note(f"{e}; updating apt's index and trying again")
            _apt_update()
            return download(package, ver, tmp)

    mod_prefix = f"lib/modules/{release}/"
    if not os.path.isdir(os.path.join(out, "modules")):
        tmp = tempfile.mkdtemp(dir=out, prefix=".modules.tmp-")
        try:
            os.chmod(tmp, 0o755)  # apt's _apt user downloads into it
            deb = get(k["unsigned"], tmp)
            info["packages"]["unsigned"] = {"package": k["unsigned"], "version": ver,
                                            "filename": os.path.basename(deb),
                                            "size": os.path.getsize(deb), "sha256": _sha256(deb)}
            tree = os.path.join(tmp, "modules")
            stats = extract(deb, lambda rel: rel[len(mod_prefix):] if rel.startswith(mod_prefix)
                            and rel.endswith(".ko") else None, tree)
            if not stats["files"]:
                raise FetchError(f"{deb}: no {mod_prefix}*.ko in the package")
            os.chmod(tree, 0o755)
            os.replace(tree, os.path.join(out, "modules"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        info["modules"] = {"count": stats["files"], "bytes": stats["bytes"],
                           "seconds": stats["seconds"]}
        save_info()
        note(f"{stats['files']} modules ({stats['bytes'] / 1e6:.1f} MB)")
    elif not os.path.isfile(os.path.join(out, "info.json")):
        save_info()

    if not modules_only and not os.path.isfile(os.path.join(out, "vmlinux")):
        names = (f"usr/lib/debug/boot/vmlinux-{release}",
                 f"usr/lib/debug/lib/modules/{release}/vmlinux")
        tmp = tempfile.mkdtemp(dir=out, prefix=".vmlinux.tmp-")
        try:
            os.chmod(tmp, 0o755)
            deb = get(k["dbg"], tmp)
            info["packages"]["dbg"] = {"package": k["dbg"], "version": ver,
                                       "filename": os.path.basename(deb),
                                       "size": os.path.getsize(deb), "sha256": _sha256(deb)}
            stats = extract(deb, lambda rel: "vmlinux" if rel in names else None, tmp)
            if not stats["files"]:
                raise FetchError("{}: no {} in the package".format(deb, " or ".join(names)))
            os.replace(os.path.join(tmp, "vmlinux"), os.path.join(out, "vmlinux"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        info["vmlinux"] = {"bytes": stats["bytes"], "seconds": stats["seconds"]}
        save_info()
        note(f"vmlinux ({stats['bytes'] / 1e6:.1f} MB)")
    return out


# --------------------------------------------------------------------------

def main(argv=None) -> int:
    global QUIET
    ap = argparse.ArgumentParser(
        description=f"Fetch Debian's current {SERIES} {ARCH} kernel modules and vmlinux, "
        "through apt (which verifies them) and dpkg-deb.")
    ap.add_argument("--dest", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "altlink", "kernel"),
        help="cache root (default: ~/.cache/altlink/kernel); the files go to DEST/<version>/")
    ap.add_argument("--modules-only", action="store_true",
                    help="only the modules (the ~21 MB -unsigned package), no vmlinux")
    ap.add_argument("--print-version", action="store_true",
                    help="print the version apt would fetch and exit")
    ap.add_argument("--offline", action="store_true",
                    help="ask apt nothing: print the newest complete cached directory")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    QUIET = args.quiet
    dest = os.path.abspath(os.path.expanduser(args.dest))
    try:
        if args.offline:
            d = newest_cached(dest, args.modules_only)
            if not d:
                raise FetchError(f"no complete cached kernel under {dest}")
            print(_read_info(d).get("version", os.path.basename(d)) if args.print_version
                  else d)
            return 0
        ensure_arm64()
        k = find_kernel()
        if args.print_version:
            print(k["version"])
            return 0
        os.makedirs(dest, exist_ok=True)
        print(fetch(dest, args.modules_only, k))
        return 0
    except FetchError as e:
        print(f"fetch_kernel: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fetch_kernel: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"fetch_kernel: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
