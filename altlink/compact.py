"""The compact binary manifest: the table of a manifest (docs/reference.md, section 5) in a small
little-endian form that a C runtime reads (``altlink/runtime/alt_runtime.c``,
``alt_apply_blob``). The layout is documented in ``altlink/runtime/README.md``:

header, 40 bytes::

    0  u32 magic "ALTB"      10 u8  profile (0 linux-v4.17, 1 linux-v6.1)
    4  u16 version (2)       11 u8  reserved (0)
    6  u16 header_size (40)  12 u32 ncaps (0xffffffff: unknown)
    8  u16 entry_size (32)   16 u32 count
                             20 u32 reserved (0)
                             24 u64 table address (0: none)
                             32 8 bytes: the first 8 bytes of the image's sha256

then ``count`` entries of ``entry_size`` bytes::

    0  u64 site address      16 u16 cap_raw      19 u8 alt_len
    8  u64 replacement or    18 u8  orig_len     20 u32 reserved (0)
           callback address  24 u64 entry address (0: unknown)

Addresses are link-time addresses of the outer image; a runtime adds its load bias. The
entries are the manifest's (those check refuses are not there), then those of its nested
images (:mod:`altlink.nested`) at their addresses in the outer image. Version 1 (24-byte
entries, no entry address: entry ``i`` was the table's ``i``-th) is still read. A reader
accepts larger ``header_size`` and ``entry_size`` (fields appended by a later version) and
reads the prefix it knows; ``version`` changes when a known field changes meaning.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from altlink.errors import AltlinkError

MAGIC = b"ALTB"
VERSION = 2
HEADER = struct.Struct("<4sHHHBBIIIQ8s")
ENTRY_V1 = struct.Struct("<QQHBBI")
ENTRY = struct.Struct("<QQHBBIQ")
HEADER_SIZE = HEADER.size  # 40
ENTRY_SIZE = ENTRY.size  # 32
PROFILES = ("linux-v4.17", "linux-v6.1")  # index = the header's profile byte
NCAPS_UNKNOWN = 0xFFFFFFFF
MAX_COUNT = 1 << 24  # a sanity bound for decode: 16 Mi entries is not a real table

assert HEADER_SIZE == 40 and ENTRY_SIZE == 32 and ENTRY_V1.size == 24


@dataclass(frozen=True)
class BlobEntry:
    site: int
    alt: int  # replacement, or callback
    cap_raw: int
    orig_len: int
    alt_len: int
    entry: int | None = None  # the entry's own address in its table (passed to a callback)


@dataclass(frozen=True)
class Blob:
    abi: str
    ncaps: int | None
    table: int | None
    image_id: bytes  # the first 8 bytes of the image's sha256
    entries: tuple[BlobEntry, ...]


def _num(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise AltlinkError(f"manifest: {what} is not a number")
    try:
        return v if isinstance(v, int) else int(v, 0)
    except ValueError:
        raise AltlinkError(f"manifest: {what} {v!r} is not a number") from None


def _field(v, what: str, bits: int) -> int:
    n = _num(v, what)
    if not 0 <= n < 1 << bits:
        raise AltlinkError(f"manifest: {what} {n:#x} does not fit in {bits} bits")
    return n


def from_manifest(m: dict) -> Blob:
    """The blob's contents for a manifest (a dict as :func:`altlink.manifest.load` returns)."""
    abi = m.get("abi")
    if abi == "xen-v4.17":  # a profile of the table, not of this form
        raise AltlinkError("manifest: profile 'xen-v4.17' has no compact form: the compact "
                           "manifest is for altlink's C runtime, which patches as Linux does; "
                           "Xen patches itself")
    if abi not in PROFILES:
        raise AltlinkError(f"manifest: profile {abi!r} is not one of {', '.join(PROFILES)}")
    ncaps = m.get("ncaps")
    if ncaps is not None:
        ncaps = _field(ncaps, "ncaps", 32)
        if ncaps == NCAPS_UNKNOWN:
            raise AltlinkError(f"manifest: ncaps {ncaps:#x} is reserved for 'unknown'")
    sha = str((m.get("image") or {}).get("sha256") or "")
    try:
        image_id = bytes.fromhex(sha)[:8]
    except ValueError:
        raise AltlinkError(f"manifest: image sha256 {sha!r} is not hex") from None
    if len(image_id) != 8:
        raise AltlinkError("manifest: no image sha256")
    table = m.get("table")
    table_addr = _field(table.get("address"), "table address", 64) if table else None
    recs = m.get("entries")
    if not isinstance(recs, list):
        raise AltlinkError("manifest: no entry list")
    entries = _entries(recs, table_addr, None, "")
    for k, n in enumerate(m.get("nested") or []):
        if not isinstance(n, dict) or not isinstance(n.get("entries"), list):
            raise AltlinkError(f"manifest: nested image {k} has no entry list")
        entries += _entries(n["entries"], None, n, f"nested image {k} ")
    return Blob(abi, ncaps, table_addr, image_id, tuple(entries))


def _entries(recs: list, table: int | None, nested: dict | None, where: str) -> list:
    """The blob entries of a list of manifest entries; a nested image's at their addresses
    in the outer image (its ``outer`` fields)."""
    n_table = None
    if nested is not None:
        t = nested.get("table") or {}
        outer = t.get("outer") or {}
        n_table = _field(outer.get("address"), f"{where}table address", 64) if outer else None
    out, last = [], -1
    for pos, rec in enumerate(recs):
        if not isinstance(rec, dict):
            raise AltlinkError(f"manifest: {where}entry {pos} is not an object")
        idx = rec.get("index")
        if not isinstance(idx, int) or isinstance(idx, bool) or idx <= last:
            raise AltlinkError(f"manifest: {where}entry {pos} has index {idx!r}: the entries "
                               "must be in table order")
        last = idx
        site = rec.get("site") or {}
        if rec.get("kind") == "callback":
            alt_rec, alt_len = rec.get("callback") or {}, 0
        else:
            alt_rec = rec.get("replacement") or {}
            alt_len = len(str(alt_rec.get("bytes") or "")) // 2
        what = f"{where}entry {idx}"
        if nested is None:
            site_addr = _field(site.get("address"), f"{what} site address", 64)
            alt_addr = _field(alt_rec.get("address"), f"{what} {rec.get('kind')} address", 64)
            base = table
        else:
            site_addr = _field((site.get("outer") or {}).get("address"),
                               f"{what} site outer address", 64)
            if rec.get("kind") == "callback":
                raise AltlinkError(f"manifest: {what}: a callback of a nested image has no "
                                   "address in the outer image")
            alt_addr = _field((alt_rec.get("outer") or {}).get("address"),
                              f"{what} replacement outer address", 64)
            base = n_table
        out.append(BlobEntry(
            site_addr, alt_addr,
            _field(rec.get("cap_raw"), f"{what} cap_raw", 16),
            _field(site.get("length"), f"{what} site length", 8),
            _field(alt_len, f"{what} replacement length", 8),
            base + 12 * idx if base is not None else None))
    return out


def pack(blob: Blob) -> bytes:
    ncaps = NCAPS_UNKNOWN if blob.ncaps is None else blob.ncaps
    head = HEADER.pack(MAGIC, VERSION, HEADER_SIZE, ENTRY_SIZE, PROFILES.index(blob.abi), 0,
                       ncaps, len(blob.entries), 0, blob.table or 0, blob.image_id)
    return head + b"".join(ENTRY.pack(e.site, e.alt, e.cap_raw, e.orig_len, e.alt_len, 0,
                                      e.entry or 0)
                           for e in blob.entries)


def encode(manifest: dict) -> bytes:
    """The compact binary form of a manifest."""
    return pack(from_manifest(manifest))


def decode(data: bytes, name: str = "compact manifest") -> Blob:
    """Read a compact manifest, checking every size; errors name ``name``."""
    if len(data) < HEADER_SIZE:
        raise AltlinkError(f"{name}: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte "
                           "header")
    (magic, version, header_size, entry_size, profile, _r0, ncaps, count, _r1, table,
     image_id) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise AltlinkError(f"{name}: magic {magic!r} is not {MAGIC!r}: not a compact altlink "
                           "manifest")
    if version not in (1, VERSION):
        raise AltlinkError(f"{name}: version {version} is not supported (this reader knows "
                           f"1 and {VERSION})")
    min_entry = ENTRY_SIZE if version >= 2 else ENTRY_V1.size
    if header_size < HEADER_SIZE or entry_size < min_entry:
        raise AltlinkError(f"{name}: header size {header_size} or entry size {entry_size} is "
                           f"below the minimum ({HEADER_SIZE}, {min_entry})")
    if profile >= len(PROFILES):
        raise AltlinkError(f"{name}: unknown profile {profile}")
    if count > MAX_COUNT:
        raise AltlinkError(f"{name}: {count} entries is not a plausible table")
    need = header_size + count * entry_size
    if len(data) < need:
        raise AltlinkError(f"{name}: {count} entries of {entry_size} bytes need {need} bytes, "
                           f"the data has {len(data)}")
    if len(data) > need:
        raise AltlinkError(f"{name}: {len(data) - need} bytes after the last entry")
    entries = []
    for i in range(count):
        pos = header_size + i * entry_size
        if version >= 2:
            site, alt, cap_raw, orig_len, alt_len, _r, entry = ENTRY.unpack_from(data, pos)
        else:
            site, alt, cap_raw, orig_len, alt_len, _r = ENTRY_V1.unpack_from(data, pos)
            entry = table + 12 * i if table else 0
        entries.append(BlobEntry(site, alt, cap_raw, orig_len, alt_len, entry or None))
    return Blob(PROFILES[profile], None if ncaps == NCAPS_UNKNOWN else ncaps, table or None,
                image_id, tuple(entries))


__all__ = ["Blob", "BlobEntry", "decode", "encode", "from_manifest", "pack", "MAGIC",
           "VERSION", "HEADER_SIZE", "ENTRY_SIZE"]
