#!/usr/bin/env python3
"""Fetch Debian's current 6.1 arm64 kernel (modules and vmlinux) for altlink.

    python3 tools/fetch_kernel.py [--dest DIR] [--modules-only] [--print-version]
                                  [--offline] [--source "URI SUITE"] [-q]

Standard library only (Python 3.9+).  What it does:

1. Reads the machine's apt sources (deb822 ``*.sources`` and one-line
   ``*.list``; falls back to deb.debian.org bookworm, bookworm-updates and
   bookworm-security when they name no 6.1 kernel), fetches each suite's
   ``InRelease`` (checked with ``gpgv`` against the source's keyring when
   ``gpgv`` and a keyring are present) and its ``main/binary-arm64/Packages``
   index (checked against the SHA256 in ``InRelease``).
2. Picks the highest version of ``linux-image-6.1.0-<abi>-cloud-arm64-unsigned``
   (never a pinned one) and the ``-dbg`` package of the same version.
3. Streams each ``.deb`` from the mirror: the ar archive and its
   ``data.tar.xz`` (or ``.zst``/``.gz``/``.bz2``/plain) are parsed on the fly;
   only ``lib/modules/<release>/**/*.ko`` (``.ko.xz``/``.ko.zst``/``.ko.gz``
   are decompressed to ``.ko``) and ``usr/lib/debug/boot/vmlinux-<release>``
   are written, into a temporary directory; the .deb's SHA256 and size are
   checked against the index at the end, and only then is the result
   renamed into place.  Nothing else, and not the .deb, touches the disk.
4. Prints the cache directory ``<dest>/<version>/`` holding ``modules/``
   (the tree under ``lib/modules/<release>/``, e.g.
   ``modules/kernel/net/key/af_key.ko``), ``vmlinux`` (not with
   ``--modules-only``) and ``info.json`` (packages, sha256s, counts).

A second run finds everything in place, downloads nothing and prints the
path.  ``--offline`` uses the newest complete cache without any network
access.  ``--print-version`` prints the version found and exits.

Errors (network, checksum, no such package) are one line on stderr and exit
status 2.  ``zstd``-compressed members need Python 3.14's ``compression.zstd``
or the ``zstd`` program (Debian package ``zstd``); Debian 6.1 packages use
``data.tar.xz`` and uncompressed ``.ko``, which need neither.
"""

from __future__ import annotations

import argparse
import bz2
import glob
import gzip
import hashlib
import http.client
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

ARCH = "arm64"
FLAVOUR = "cloud-arm64"
SERIES = "6.1"
COMPONENT = "main"
DEFAULT_SOURCES = [
    ("http://deb.debian.org/debian", "bookworm", None),
    ("http://deb.debian.org/debian", "bookworm-updates", None),
    ("http://deb.debian.org/debian-security", "bookworm-security", None),
]
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
USER_AGENT = "altlink-fetch-kernel/1"
TIMEOUT = 60
CHUNK = 1 << 20

QUIET = False


class FetchError(Exception):
    """An expected failure: reported as one line, exit status 2."""


def note(msg: str) -> None:
    if not QUIET:
        print("fetch_kernel: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Debian version comparison (dpkg's algorithm)

def _order(c: str) -> int:
    if c == "~":
        return -1
    if "0" <= c <= "9":
        return 0
    if ("a" <= c <= "z") or ("A" <= c <= "Z"):
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in v:
        e, v = v.split(":", 1)
        epoch = int(e)
    if "-" in v:
        up, rev = v.rsplit("-", 1)
    else:
        up, rev = v, ""
    return epoch, up, rev


def version_compare(a: str, b: str) -> int:
    """<0, 0, >0 as dpkg --compare-versions orders a and b."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


# --------------------------------------------------------------------------
# apt configuration

def _apt_config(name: str) -> str | None:
    exe = shutil.which("apt-config")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "shell", "V", name], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=20).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"^V='(.*)'$", out.strip())
    return m.group(1) if m else None


def _deb822_stanzas(text: str):
    stanza: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
            continue
        if line[0] in " \t" and key:
            stanza[key] += "\n" + line.strip()
            continue
        if ":" in line:
            key, val = line.split(":", 1)
            key = key.strip().lower()
            stanza[key] = val.strip()
    if stanza:
        yield stanza


def apt_sources() -> list[tuple[str, str, str | None]]:
    """(uri, suite, keyring-or-None) of every enabled ``deb`` source whose
    components include main, in the order apt lists them."""
    etc = _apt_config("Dir::Etc") or "etc/apt"
    root = _apt_config("Dir") or "/"
    etc = os.path.join(root, etc)
    main_list = os.path.join(etc, _apt_config("Dir::Etc::sourcelist") or "sources.list")
    parts = os.path.join(etc, _apt_config("Dir::Etc::sourceparts") or "sources.list.d")
    out: list[tuple[str, str, str | None]] = []

    def add(uri: str, suite: str, comps: list[str], keyring: str | None) -> None:
        if not re.match(r"^(https?|file):", uri) or COMPONENT not in comps:
            return
        if suite.endswith("/"):        # flat repository: not a Debian mirror
            return
        item = (uri.rstrip("/"), suite, keyring)
        if item not in out:
            out.append(item)

    def one_line(path: str) -> None:
        try:
            text = open(path, encoding="utf-8", errors="replace").read()
        except OSError:
            return
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line.startswith("deb "):
                continue
            keyring = None
            m = re.match(r"^deb\s+\[([^\]]*)\]\s+(.*)$", line)
            if m:
                opts, rest = m.group(1), m.group(2)
                km = re.search(r"signed-by=(\S+)", opts)
                keyring = km.group(1) if km else None
            else:
                rest = line[4:]
            toks = rest.split()
            if len(toks) >= 3:
                add(toks[0], toks[1], toks[2:], keyring)

    one_line(main_list)
    for path in sorted(glob.glob(os.path.join(parts, "*.list"))):
        one_line(path)
    for path in sorted(glob.glob(os.path.join(parts, "*.sources"))):
        try:
            text = open(path, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        for st in _deb822_stanzas(text):
            if st.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in st.get("types", "").split():
                continue
            keyring = st.get("signed-by")
            if keyring and ("\n" in keyring or not keyring.startswith("/")):
                keyring = None     # embedded key block or fingerprints
            for uri in st.get("uris", "").split():
                for suite in st.get("suites", "").split():
                    add(uri, suite, st.get("components", "").split(), keyring)
    return out


def install_proxy() -> None:
    """Use apt's http(s) proxy when the environment names none."""
    handlers = {}
    for scheme in ("http", "https"):
        if os.environ.get(scheme + "_proxy") or os.environ.get(scheme.upper() + "_PROXY"):
            continue
        p = _apt_config(f"Acquire::{scheme}::Proxy")
        if p and p.upper() != "DIRECT" and "://" in p:
            handlers[scheme] = p
    if handlers:
        urllib.request.install_opener(
            urllib.request.build_opener(urllib.request.ProxyHandler(handlers)))


# --------------------------------------------------------------------------
# network

def _open(url: str):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        raise FetchError(f"cannot fetch {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(f"cannot fetch {url}: {reason}") from None


def fetch_bytes(url: str) -> bytes:
    for attempt in (1, 2):
        try:
            with _open(url) as r:
                return r.read()
        except FetchError:
            if attempt == 2:
                raise
        except (OSError, EOFError, http.client.HTTPException) as e:  # reset mid-body
            if attempt == 2:
                raise FetchError(f"cannot fetch {url}: {e}") from None
        time.sleep(1)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# indexes

def _signed_text(inrelease: bytes) -> str:
    text = inrelease.decode("utf-8", "replace")
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return text
    body = text.split("\n\n", 1)[1]
    body = body.split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    return "\n".join(line[2:] if line.startswith("- ") else line
                     for line in body.splitlines())


def _verify_signature(data: bytes, url: str, keyring: str | None) -> bool:
    gpgv = shutil.which("gpgv")
    rings = []
    if keyring and os.path.exists(keyring):
        rings = [keyring]
    elif not keyring:
        rings = [p for p in [DEFAULT_KEYRING] + sorted(glob.glob("/etc/apt/trusted.gpg.d/*.gpg"))
                 if os.path.exists(p)]
    if not gpgv or not rings:
        return False
    with tempfile.NamedTemporaryFile(suffix=".InRelease") as tf:
        tf.write(data)
        tf.flush()
        cmd = [gpgv, "--quiet"]
        for r in rings:
            cmd += ["--keyring", r]
        p = subprocess.run(cmd + [tf.name], capture_output=True)
    if p.returncode != 0:
        raise FetchError("bad signature on {} (gpgv: {})".format(
            url, p.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]))
    return True


def _parse_packages(lines, pattern: re.Pattern) -> list[dict[str, str]]:
    """Stanzas (as dicts of their single-line fields) whose Package matches;
    lines is an iterable of text lines, read once (the index is ~50 MB)."""
    out = []
    cur: dict[str, str] | None = None
    started = False
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            if cur is not None:
                out.append(cur)
            cur, started = None, False
            continue
        if not started:
            started = True
            m = re.match(r"^Package: (\S+)$", line)
            cur = {"Package": m.group(1)} if m and pattern.match(m.group(1)) else None
            continue
        if cur is not None and line[:1] not in (" ", "\t") and ":" in line:
            k, v = line.split(":", 1)
            cur[k] = v.strip()
    if cur is not None:
        out.append(cur)
    return out


def suite_packages(uri: str, suite: str, keyring: str | None, pattern: re.Pattern,
                   cache_root: str) -> list[dict[str, str]]:
    """Stanzas of the suite's arm64 index whose Package matches pattern.
    The matching stanzas are cached by the index's SHA256."""
    rel_url = f"{uri}/dists/{suite}/InRelease"
    raw = fetch_bytes(rel_url)
    signed = _verify_signature(raw, rel_url, keyring)
    if not signed:
        note(f"{rel_url}: signature not checked (no gpgv or keyring)")
    release = _signed_text(raw)
    sums: dict[str, tuple[str, int]] = {}
    in_sha = False
    for line in release.splitlines():
        if not line.startswith(" "):
            in_sha = line.startswith("SHA256:")
            continue
        if in_sha:
            parts = line.split()
            if len(parts) == 3:
                sums[parts[2]] = (parts[0], int(parts[1]))
    base = f"{COMPONENT}/binary-{ARCH}/Packages"
    choices = [(e, d) for e, d in ((".xz", lzma.LZMAFile), (".gz", gzip.GzipFile),
                                   ("", lambda f: f)) if base + e in sums]
    if not choices:
        note(f"{rel_url} has no {base} index")
        return []
    ext, dec = choices[0]
    want, size = sums[base + ext]
    key = hashlib.sha256(pattern.pattern.encode()).hexdigest()[:12]
    cache = os.path.join(cache_root, ".index", f"{want}-{key}.json")
    _USED_INDEX.add(cache)
    if os.path.exists(cache):
        try:
            with open(cache, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
    url = f"{uri}/dists/{suite}/{base}{ext}"
    blob = fetch_bytes(url)
    got = hashlib.sha256(blob).hexdigest()
    if got != want or len(blob) != size:
        raise FetchError(f"{url}: sha256 {got}, size {len(blob)}; "
                         f"InRelease says {want}, {size}")
    try:
        with io.TextIOWrapper(dec(io.BytesIO(blob)), encoding="utf-8",
                              errors="replace") as text:
            found = _parse_packages(text, pattern)
    except (lzma.LZMAError, OSError, EOFError, zlib.error) as e:
        raise FetchError(f"{url}: cannot decompress: {e}") from None
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    _write_atomic(cache, json.dumps(found).encode())
    return found


_USED_INDEX: set[str] = set()


def _prune_index(cache_root: str) -> None:
    """Drop cached index extracts not used by this run (older indexes)."""
    for p in glob.glob(os.path.join(cache_root, ".index", "*.json")):
        if p not in _USED_INDEX:
            try:
                os.unlink(p)
            except OSError:
                pass


def find_kernel(sources, cache_root: str) -> dict:
    """The newest 6.1 <flavour> kernel: {'version', 'release', 'unsigned', 'dbg'}
    where the last two are index stanzas plus '_uri'/'_suite'."""
    pat = re.compile(rf"^linux-image-({re.escape(SERIES)}(?:\.[0-9]+)*(?:-[0-9]+|\+deb[0-9]+))-{re.escape(FLAVOUR)}-(unsigned|dbg)$")
    cands: dict[tuple[str, str], dict] = {}
    for uri, suite, keyring in sources:
        for st in suite_packages(uri, suite, keyring, pat, cache_root):
            if st.get("Architecture") not in (ARCH, None):
                continue
            m = pat.match(st["Package"])
            st = dict(st, _uri=uri, _suite=suite)
            key = (st["Version"], m.group(1))
            cands.setdefault(key, {})[m.group(2)] = st
    _prune_index(cache_root)
    best = None
    for (ver, abi), pk in cands.items():
        if "unsigned" not in pk:
            continue
        if best is None or version_compare(ver, best[0]) > 0 or (
                version_compare(ver, best[0]) == 0 and abi > best[1]):
            best = (ver, abi)
    if best is None:
        return {}
    pk = cands[best]
    return {"version": best[0], "release": f"{best[1]}-{FLAVOUR}",
            "unsigned": pk["unsigned"], "dbg": pk.get("dbg")}


# --------------------------------------------------------------------------
# streaming .deb extraction

class HashingReader(io.RawIOBase):
    """Reads a response, feeding SHA256 and counting bytes."""

    def __init__(self, resp, url: str):
        self.resp, self.url = resp, url
        self.sha = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            b = self.resp.read(n if n is not None and n >= 0 else CHUNK)
        except (OSError, EOFError, http.client.HTTPException) as e:
            raise FetchError(f"download of {self.url} failed after {self.count} bytes: {e}"
                             ) from None
        self.sha.update(b)
        self.count += len(b)
        return b

    def readexactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            b = self.read(n - len(out))
            if not b:
                raise FetchError(f"{self.url}: truncated after {self.count} bytes")
            out += b
        return bytes(out)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class Limited(io.RawIOBase):
    """At most n bytes of an underlying reader (one ar member)."""

    def __init__(self, raw: HashingReader, n: int):
        self.raw, self.left = raw, n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.left <= 0:
            return 0
        data = self.raw.read(min(len(b), self.left, CHUNK))
        if not data:
            raise FetchError(f"{self.raw.url}: truncated inside an ar member")
        b[:len(data)] = data
        self.left -= len(data)
        return len(data)

    def drain(self) -> None:
        buf = bytearray(CHUNK)
        while self.readinto(buf):
            pass


def _ar_members(r: HashingReader):
    if r.readexactly(8) != b"!<arch>\n":
        raise FetchError(f"{r.url}: not an ar archive (.deb)")
    while True:
        hdr = b""
        first = r.read(60)
        if not first:
            return
        hdr = first + (r.readexactly(60 - len(first)) if len(first) < 60 else b"")
        if hdr[58:60] != b"`\n":
            raise FetchError(f"{r.url}: bad ar member header")
        name = hdr[0:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(hdr[48:58].decode("ascii").strip())
        member = Limited(r, size)
        yield name, member
        member.drain()
        if size % 2:
            r.readexactly(1)


def _zstd_stream(src: io.RawIOBase):
    """A readable binary stream of the zstd-decompressed src."""
    try:
        from compression import zstd  # Python 3.14+
        return zstd.ZstdFile(io.BufferedReader(src, CHUNK))
    except ImportError:
        pass
    exe = shutil.which("zstd")
    if not exe:
        raise FetchError("a zstd-compressed member needs the zstd program "
                         "(apt-get install zstd) or Python 3.14")
    p = subprocess.Popen([exe, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    err: list[BaseException] = []

    def feed() -> None:
        try:
            while True:
                b = src.read(CHUNK)
                if not b:
                    break
                p.stdin.write(b)
        except BaseException as e:   # reported by the reader below
            err.append(e)
        finally:
            try:
                p.stdin.close()
            except OSError:
                pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()

    class Out(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            n = p.stdout.readinto(b)
            if not n:
                t.join()
                if err:
                    raise err[0]
                if p.wait() != 0:
                    raise FetchError(f"zstd failed (exit {p.returncode})")
            return n

    return io.BufferedReader(Out(), CHUNK)


def _decompressor_for(name: str):
    """(suffix, function(path_in, path_out)) for a compressed module."""
    def via_zstd(src: str, dst: str) -> None:
        try:
            from compression import zstd  # Python 3.14+
            with zstd.open(src, "rb") as f, open(dst, "wb") as o:
                shutil.copyfileobj(f, o, CHUNK)
            return
        except ImportError:
            pass
        exe = shutil.which("zstd")
        if not exe:
            raise FetchError(".ko.zst modules need the zstd program (apt-get install zstd)")
        subprocess.run([exe, "-dqf", src, "-o", dst], check=True)

    def via_open(opener):
        def f(src: str, dst: str) -> None:
            with opener(src, "rb") as i, open(dst, "wb") as o:
                shutil.copyfileobj(i, o, CHUNK)
        return f

    for suf, fn in ((".ko.xz", via_open(lzma.open)), (".ko.gz", via_open(gzip.open)),
                    (".ko.zst", via_zstd), (".ko", None)):
        if name.endswith(suf):
            return suf, fn
    return None, None


def _safe_rel(path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise FetchError(f"unsafe path in package: {path!r}")
    return "/".join(parts)


def extract_deb(url: str, sha256: str, size: int, want, out_dir: str) -> dict:
    """Stream the .deb at url; for every regular file of data.tar.* for which
    want(relpath) returns a destination (relative to out_dir), write it there.
    Returns stats; raises FetchError on any mismatch."""
    t0 = time.time()
    resp = _open(url)
    r = HashingReader(resp, url)
    stats = {"files": 0, "bytes": 0, "data_member": None, "module_compression": set()}
    with resp:
        for name, member in _ar_members(r):
            if not name.startswith("data.tar"):
                continue
            stats["data_member"] = name
            buffered = io.BufferedReader(member, CHUNK)
            if name.endswith(".xz"):
                stream = lzma.LZMAFile(buffered)
            elif name.endswith(".gz"):
                stream = gzip.GzipFile(fileobj=buffered)
            elif name.endswith(".bz2"):
                stream = bz2.BZ2File(buffered)
            elif name.endswith(".zst"):
                stream = _zstd_stream(member)
            elif name == "data.tar":
                stream = buffered
            else:
                raise FetchError(f"{url}: unknown data member {name}")
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tf:
                    for ti in tf:
                        if not ti.isreg():
                            continue
                        rel = _safe_rel(ti.name)
                        dest = want(rel)
                        if not dest:
                            continue
                        suf, dec = _decompressor_for(dest)
                        if suf and suf != ".ko":
                            stats["module_compression"].add(suf)
                        target = os.path.join(out_dir, dest)
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        src = tf.extractfile(ti)
                        if dec is None:
                            with open(target, "wb") as o:
                                shutil.copyfileobj(src, o, CHUNK)
                        else:
                            tmp = target + ".part"
                            with open(tmp, "wb") as o:
                                shutil.copyfileobj(src, o, CHUNK)
                            final = target[: -len(suf)] + ".ko"
                            dec(tmp, final)
                            os.unlink(tmp)
                            target = final
                        stats["files"] += 1
                        stats["bytes"] += os.path.getsize(target)
            except (tarfile.TarError, lzma.LZMAError, EOFError, zlib.error, OSError) as e:
                raise FetchError(f"{url}: cannot read {name}: {e}") from None
            # the rest of the member (tar padding, compressor trailer) is read
            # by _ar_members' drain so the whole .deb is hashed
        r.drain()
    got = r.sha.hexdigest()
    if r.count != size or got != sha256:
        raise FetchError(f"{url}: sha256 {got}, {r.count} bytes; "
                         f"the index says {sha256}, {size} bytes")
    if stats["data_member"] is None:
        raise FetchError(f"{url}: no data.tar member")
    stats["seconds"] = round(time.time() - t0, 1)
    stats["module_compression"] = sorted(stats["module_compression"])
    return stats


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


def newest_cached(root: str, modules_only: bool) -> str | None:
    best = None
    for d in glob.glob(os.path.join(root, "*")):
        if not os.path.isdir(d) or os.path.basename(d).startswith("."):
            continue
        if not _complete(d, modules_only):
            continue
        v = _read_info(d).get("version", os.path.basename(d))
        if best is None or version_compare(v, best[0]) > 0:
            best = (v, d)
    return best[1] if best else None


def _pkg_info(st: dict) -> dict:
    return {"package": st["Package"], "version": st["Version"],
            "filename": st["Filename"], "size": int(st["Size"]),
            "sha256": st["SHA256"], "suite": st["_suite"], "uri": st["_uri"]}


def fetch(dest_root: str, modules_only: bool, k: dict) -> str:
    """Make DEST/<version>/ complete for kernel k (from find_kernel)."""
    ver, release = k["version"], k["release"]
    out = os.path.join(dest_root, ver)
    if _complete(out, modules_only):
        return out
    os.makedirs(out, exist_ok=True)
    info = _read_info(out) or {"version": ver, "release": release, "packages": {}}
    info["version"], info["release"] = ver, release

    def save_info() -> None:
        _write_atomic(os.path.join(out, "info.json"),
                      (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())

    mod_prefix = f"lib/modules/{release}/"
    if not os.path.isdir(os.path.join(out, "modules")):
        st = k["unsigned"]
        url = "{}/{}".format(st["_uri"], st["Filename"])
        note("downloading {} {} ({:.1f} MB) and extracting the modules".format(st["Package"], ver, int(st["Size"]) / 1e6))
        tmp = tempfile.mkdtemp(dir=out, prefix=".modules.tmp-")
        try:
            def want_mod(rel: str) -> str | None:
                if rel.startswith(mod_prefix) and re.search(r"\.ko(\.(xz|gz|zst))?$", rel):
                    return rel[len(mod_prefix):]
                return None
            stats = extract_deb(url, st["SHA256"], int(st["Size"]), want_mod, tmp)
            if not stats["files"]:
                raise FetchError(f"{url}: no {mod_prefix}*.ko in the package")
            os.chmod(tmp, 0o755)
            os.replace(tmp, os.path.join(out, "modules"))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        info["packages"]["unsigned"] = _pkg_info(st)
        info["modules"] = {"count": stats["files"], "bytes": stats["bytes"],
                           "data_member": stats["data_member"],
                           "compression": stats["module_compression"] or ["none"],
                           "seconds": stats["seconds"]}
        save_info()
        note(f"{stats['files']} modules ({stats['bytes'] / 1e6:.1f} MB) "
             f"in {stats['seconds']:.1f} s")
    elif not os.path.isfile(os.path.join(out, "info.json")):
        save_info()

    if not modules_only and not os.path.isfile(os.path.join(out, "vmlinux")):
        st = k["dbg"]
        if not st:
            raise FetchError(f"no linux-image-{release}-dbg {ver} in the index")
        url = "{}/{}".format(st["_uri"], st["Filename"])
        note("downloading {} {} ({:.1f} MB) and extracting vmlinux".format(st["Package"], ver, int(st["Size"]) / 1e6))
        tmp = tempfile.mkdtemp(dir=out, prefix=".vmlinux.tmp-")
        names = (f"usr/lib/debug/boot/vmlinux-{release}",
                 f"usr/lib/debug/lib/modules/{release}/vmlinux")
        try:
            stats = extract_deb(url, st["SHA256"], int(st["Size"]),
                                lambda rel: "vmlinux" if rel in names else None, tmp)
            if not stats["files"]:
                raise FetchError("{}: no {} in the package".format(url, " or ".join(names)))
            os.replace(os.path.join(tmp, "vmlinux"), os.path.join(out, "vmlinux"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        info["packages"]["dbg"] = _pkg_info(st)
        info["vmlinux"] = {"bytes": stats["bytes"], "data_member": stats["data_member"],
                           "seconds": stats["seconds"]}
        save_info()
        note("vmlinux ({:.1f} MB) in {:.1f} s".format(stats["bytes"] / 1e6, stats["seconds"]))
    return out


# --------------------------------------------------------------------------

def main(argv=None) -> int:
    global QUIET
    ap = argparse.ArgumentParser(
        description=f"Fetch Debian's current {SERIES} {ARCH} kernel modules and vmlinux.")
    ap.add_argument("--dest", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "altlink", "kernel"),
        help="cache root (default: ~/.cache/altlink/kernel); the files go to DEST/<version>/")
    ap.add_argument("--modules-only", action="store_true",
                    help="only the modules (the ~21 MB -unsigned package), no vmlinux")
    ap.add_argument("--print-version", action="store_true",
                    help="print the package version found in the index and exit")
    ap.add_argument("--offline", action="store_true",
                    help="no network: print the newest complete cached directory")
    ap.add_argument("--source", action="append", default=[], metavar='"URI SUITE"',
                    help="use this mirror and suite instead of apt's sources (repeatable)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    QUIET = args.quiet
    dest = os.path.abspath(os.path.expanduser(args.dest))
    try:
        if args.offline:
            d = newest_cached(dest, args.modules_only)
            if not d:
                raise FetchError(f"no complete cached kernel under {dest}")
            if args.print_version:
                print(_read_info(d).get("version", os.path.basename(d)))
            else:
                print(d)
            return 0
        install_proxy()
        if args.source:
            sources = []
            for s in args.source:
                parts = s.split()
                if len(parts) != 2:
                    raise FetchError(f'--source wants "URI SUITE", got {s!r}')
                sources.append((parts[0].rstrip("/"), parts[1], None))
            candidates = [sources]
        else:
            configured = apt_sources()
            candidates = [configured] if configured else []
            if configured != DEFAULT_SOURCES:
                candidates.append(DEFAULT_SOURCES)
        os.makedirs(dest, exist_ok=True)
        for i, sources in enumerate(candidates):
            k = find_kernel(sources, dest)
            if k:
                break
            if i + 1 < len(candidates):
                note("no {} kernel in apt's sources; trying {}".format(
                    SERIES, ", ".join(f"{u} {s}" for u, s, _ in candidates[i + 1])))
        if not k:
            raise FetchError("no linux-image-{}*-{}-unsigned package in the {} index of {}".format(
                SERIES, FLAVOUR, ARCH, ", ".join(f"{u} {s}" for u, s, _ in candidates[-1])))
        if args.print_version:
            print(k["version"])
            return 0
        print(fetch(dest, args.modules_only, k))
        return 0
    except FetchError as e:
        hint = ""
        if str(e).startswith("cannot fetch") and not args.offline and \
                newest_cached(dest, args.modules_only):
            hint = " (--offline uses the cached kernel)"
        print(f"fetch_kernel: error: {e}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fetch_kernel: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"fetch_kernel: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
