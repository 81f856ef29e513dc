"""What ties a manifest to an image, beyond the sha256 of the image as linked.

Builds rewrite what the linker wrote: Kbuild's ``sorttable`` sorts the exception table in
place, firmware builds strip symbols, add sections with ``objcopy``, append signatures. Such an
image is still the one the manifest describes, as far as patching goes, when everything that
patching reads and writes is unchanged: the table, and every entry's site and replacement (or
callback), by address and bytes. The manifest keeps a digest of exactly that
(``image.patch_sha256``), and a digest of each allocated section by name, so that a changed
image can be told apart: post-processed (the digest of what patching depends on is the same:
the note names the sections that changed) or moved (it differs: the entries are named).
"""
from __future__ import annotations

import hashlib
import struct
from itertools import chain, islice

from altlink.elf import SHT_NOBITS, ElfFile

_TAG = b"altlink-patch-binding/1\0"


def patch_digest(elf: ElfFile, table_addr: int | None, table_size: int, entries,
                 profile) -> str:
    """sha256 of the table's address and bytes, and of every entry's site and replacement (or
    callback) addresses and bytes, in table order. An image entry's place names the section
    its address is in (``table.read_image_table`` found it), so its bytes are read from that
    section without another lookup, and hashed in one update; ``patch_digest_py``, which
    reads each place by address, is the reference."""
    h = hashlib.sha256(_TAG)
    if table_addr is not None:
        h.update(struct.pack("<QQ", table_addr, table_size))
        h.update(elf.read_addr(table_addr, table_size) or b"")
    secs = elf.sections
    datas: dict[int, tuple[bytes, int] | None] = {}
    callback: dict[int, bool] = {}

    def read(place, size: int) -> bytes:  # ElfFile.read_addr, from the place's section
        idx = place.section_index
        got = datas.get(idx, False)
        if got is False:
            sec = secs[idx] if 0 < idx < len(secs) else None
            got = datas[idx] = None if sec is None or sec.type == SHT_NOBITS else \
                (elf.section_data(sec), sec.size)
        if got is None or place.offset + size > got[1]:
            return b""
        return got[0][place.offset:place.offset + size]

    parts = []
    add = parts.append
    pack = struct.pack
    for e in entries:
        site, alt = e.site, e.alt
        add(pack("<QH", site.address or 0, e.orig_len))
        if site.address is not None:
            add(read(site, e.orig_len))
        cb = callback.get(e.cap_raw)
        if cb is None:
            cb = callback[e.cap_raw] = profile.is_callback(e.cap_raw)
        if cb:
            add(pack("<QH", alt.address or 0, 0xffff))
        else:
            add(pack("<QH", alt.address or 0, e.alt_len))
            if alt.address is not None:
                add(read(alt, e.alt_len))
    h.update(b"".join(parts))
    return h.hexdigest()


def digest_of_places(elf: ElfFile, table_addr: int | None, table_size: int, site_addrs,
                     orig_lens, site_bytes, alt_addrs, alt_lens, alt_bytes,
                     callback=None) -> str:
    """``patch_digest`` from the places of every entry already read (a manifest's columns):
    each entry's site address, length and bytes, its replacement's address, length and bytes
    (for a callback, 0xffff and none), hashed in one update. ``callback``: which entries
    are callbacks (then ``alt_lens`` and ``alt_bytes`` are their fields as read, whatever
    they are); None: ``alt_lens`` and ``alt_bytes`` say it. The bytes are packed by the
    compiled ``_postlink.places_blob`` where it is used (this loop is its reference)."""
    from altlink import speedups

    h = hashlib.sha256(_TAG)
    if table_addr is not None:
        h.update(struct.pack("<QQ", table_addr, table_size))
        h.update(elf.read_addr(table_addr, table_size) or b"")
    pl = speedups.postlink()
    blob = None if pl is None else pl.places_blob(site_addrs, orig_lens, site_bytes,
                                                  alt_addrs, alt_lens, alt_bytes, callback)
    if blob is not None:
        h.update(blob)
        return h.hexdigest()
    if callback is not None:
        alt_lens = [0xFFFF if cb else n for cb, n in zip(callback, alt_lens)]
        alt_bytes = [b"" if cb else c for cb, c in zip(callback, alt_bytes)]
    head = struct.Struct("<QH").pack
    parts = chain.from_iterable(zip(map(head, site_addrs, orig_lens), site_bytes,
                                    map(head, alt_addrs, alt_lens), alt_bytes))
    # (a few thousand entries at a time: their pieces' memory used again, not 15 MB of fresh
    # pages for 40,000 entries)
    while chunk := list(islice(parts, _PLACES_CHUNK)):
        h.update(b"".join(chunk))
    return h.hexdigest()


_PLACES_CHUNK = 16384  # the pieces digest_of_places hashes at a time (four an entry)


def patch_digest_py(elf: ElfFile, table_addr: int | None, table_size: int, entries,
                    profile) -> str:
    """The reference for ``patch_digest``: each place read by address, hashed in turn."""
    h = hashlib.sha256(_TAG)
    if table_addr is not None:
        h.update(struct.pack("<QQ", table_addr, table_size))
        h.update(elf.read_addr(table_addr, table_size) or b"")
    for e in entries:
        h.update(struct.pack("<QH", e.site.address or 0, e.orig_len))
        h.update(elf.read_addr(e.site.address, e.orig_len) or b"" if e.site.address is not None
                 else b"")
        alt = e.alt.address or 0
        if profile.is_callback(e.cap_raw):
            h.update(struct.pack("<QH", alt, 0xffff))
        else:
            h.update(struct.pack("<QH", alt, e.alt_len))
            h.update(elf.read_addr(alt, e.alt_len) or b"" if e.alt.address is not None
                     else b"")
    return h.hexdigest()


def patch_digest_of(image, profile, places=None) -> str:
    """:func:`patch_digest` of an image whose table was decoded (a ``linkset.Input``);
    ``places``: every entry's places already read, for ``digest_of_places``."""
    table = image.table.sections[0] if image.table.sections else None
    where = (image.elf, table.addr if table is not None else None,
             table.size if table is not None else 0)
    if places is not None:
        return digest_of_places(*where, *places)
    return patch_digest(*where, image.table.entries, profile)


def section_digests(elf: ElfFile) -> dict[str, str]:
    """The sha256 of each allocated section's contents (``"nobits:SIZE"`` for one without
    contents), by name; a name given to several sections gets ``#n`` after the first."""
    out: dict[str, str] = {}
    for s in elf.sections:
        if not s.alloc or not s.name:
            continue
        name = s.name
        n = 1
        while name in out:
            name = f"{s.name}#{n}"
            n += 1
        if s.type == SHT_NOBITS:
            out[name] = f"nobits:{s.size}"
        else:
            out[name] = hashlib.sha256(elf.section_view(s)).hexdigest()
    return out


def what_changed(old: dict[str, str], new: dict[str, str]) -> str:
    """A short phrase naming the allocated sections that changed, appeared or went."""
    changed = [n for n in old if n in new and old[n] != new[n]]
    gone = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    parts = []
    if changed:
        parts.append("contents of " + ", ".join(changed))
    if added:
        parts.append("sections added: " + ", ".join(added))
    if gone:
        parts.append("sections removed: " + ", ".join(gone))
    return "; ".join(parts) if parts else "only what is not loaded (symbols, debug " \
        "information, notes outside the segments, layout of the file)"
