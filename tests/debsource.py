"""The tests' real builds of Debian sources (Xen, U-Boot): what they share. The source
tarball is downloaded once and checked against the sha256 that Debian's signed Sources index
gives it. When that version has left the archive (a point release replaces it), apt fetches
bookworm's current source of the package instead, with a sources list, index and cache of its
own: apt checks the index's signature with Debian's keyring and the tarball against the
index."""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

SOURCES = ("deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
           "http://deb.debian.org/debian bookworm main\n")


class Tarball:
    """``name``: the upstream tarball's file name in Debian's pool; ``package``: its source
    package; ``sha256``: the index's; ``pattern``: what apt's fetch of the current version is
    named (a glob); ``env``: the variable that may name a copy of the tarball."""

    def __init__(self, package: str, name: str, sha256: str, pattern: str, env: str) -> None:
        self.package, self.name, self.sha256 = package, name, sha256
        self.pattern, self.env = pattern, env

    @property
    def urls(self) -> tuple[str, ...]:
        path = f"debian/pool/main/{self.package[0]}/{self.package}/{self.name}"
        return (f"http://deb.debian.org/{path}", f"https://deb.debian.org/{path}")


def fetch_with_apt(t: Tarball, base: Path) -> Path:
    """bookworm's current source tarball of ``t.package``, as ``apt-get source
    --download-only`` fetches and checks it, with a sources list, index and cache of its own
    under ``base``."""
    apt = base / "apt"
    for d in ("lists/partial", "cache/archives/partial", "dl"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(SOURCES)
    opts = [f"-oDir::Etc::SourceList={apt / 'sources.list'}", "-oDir::Etc::SourceParts=-",
            f"-oDir::State::Lists={apt / 'lists'}", f"-oDir::Cache={apt / 'cache'}",
            "-oDebug::NoLocking=1", "-q"]
    if os.geteuid() == 0:
        opts.append("-oAPT::Sandbox::User=root")  # the private directories are root's
    for args in (["update"], ["source", "--download-only", t.package]):
        p = subprocess.run(["apt-get", *opts, *args], cwd=apt / "dl", capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["?"])[-1]
            raise RuntimeError(f"apt-get {args[0]} of {t.package}'s source failed: {last}")
    found = sorted((apt / "dl").glob(t.pattern))
    if not found:
        raise RuntimeError(f"{apt / 'dl'}: apt fetched no {t.pattern}")
    return found[-1]


def fetch(t: Tarball, base: Path) -> Path:
    """The source tarball, verified: ``$<t.env>``, else downloaded once into ``base`` (through
    apt when the pinned version has left the archive). Raises with one line when it cannot
    be had or does not match."""
    given = os.environ.get(t.env)
    path = Path(given) if given else base / t.name
    if not path.exists():
        if given:
            raise RuntimeError(f"{path}: {t.env} names no file")
        base.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        errors = []
        for url in t.urls:
            try:
                with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
                break
            except OSError as e:
                errors.append(f"{url}: {e}")
        else:
            try:
                return fetch_with_apt(t, base)
            except RuntimeError as e:
                raise RuntimeError(f"cannot download {t.package}'s source: "
                                   f"{'; '.join(errors)}; {e}") from None
        tmp.rename(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != t.sha256:
        if not given:
            path.unlink()
        raise RuntimeError(f"{path}: sha256 {h.hexdigest()}, Debian's index says {t.sha256}")
    return path


def cache_dir(name: str) -> Path:
    """``~/.cache/altlink-tests/NAME`` (or under ``$XDG_CACHE_HOME``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "altlink-tests" / name


def unpack(t: Tarball, base: Path, dest: Path) -> None:
    """The tarball's one directory, as ``dest`` (once: where it is there, nothing)."""
    if dest.exists():
        return
    tarball = fetch(t, base)
    tmp = base / "unpacking"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp)], check=True)
    (top,) = tmp.iterdir()  # <package>-<version>
    top.rename(dest)
    shutil.rmtree(tmp)


def build_once(base: Path, built: Path, build: Callable[[], None]) -> None:
    """``build()`` under ``base``'s file lock, once for a test run: a run whose other worker
    made the build already (and ``built`` is there) takes it as it is."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = base / "built-by"
        me = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid {os.getpid()}"
        if stamp.exists() and stamp.read_text() == me and built.exists():
            return  # this test run's build, made by another worker
        build()
        stamp.write_text(me)


def remove_outputs(top: Path, patterns) -> None:
    """The files the ``patterns`` (globs) match under ``top``, removed (a build's links'
    outputs: each link then runs again)."""
    for pattern in patterns:
        for p in top.glob(pattern):
            if p.is_file() or p.is_symlink():
                p.unlink()


def altlink_command() -> str:
    """The altlink under test as a build's make runs it (one string, split by its shell)."""
    exe = Path(sys.executable).with_name("altlink")
    return str(exe) if exe.exists() else f"{sys.executable} -m altlink"


def build_env(log: Path, **more: str) -> dict:
    """The environment of a build through altlink: none of the caller's ALTLINK_ settings
    but its record cache, a manifest beside every image, each link logged into ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTLINK_")
           or k == "ALTLINK_CACHE_DIR"}
    env.update(ALTLINK_MANIFEST=".alt.json", ALTLINK_LOG=str(log), **more)
    return env
