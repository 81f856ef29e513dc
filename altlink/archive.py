"""Static archives (``ar``): the object members a linker may pull in, GNU and thin formats."""
from __future__ import annotations

import os
import stat
from collections import namedtuple
from collections.abc import Iterator

from altlink.errors import AltlinkError
from altlink.filekind import AR_MAGIC as MAGIC
from altlink.filekind import AR_THIN_MAGIC as THIN_MAGIC

_HDR = 60

# name; display: "lib.a(foo.o)", as linkers name members; data: bytes, or None for a thin
# archive's member, read from ``path``. (A named tuple: the launcher reads archives before the
# linker starts, and dataclasses would cost it 8 ms of imports.)
Member = namedtuple("Member", "name display data path", defaults=(None,))


def is_archive(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head in (MAGIC, THIN_MAGIC)


def members(path: str) -> list[Member]:
    """The members of a GNU or thin archive, in order, as bfd finds them: a thin archive's
    member is the file its name gives, relative to the archive's directory; one that names an
    element of a nested archive (``/OFFSET:ORIGIN``) is that archive's element at ``ORIGIN``."""
    return list(iter_members(path))


def iter_members(path: str) -> Iterator[Member]:
    """``members``, one at a time: who needs only the first few reads no further."""
    data = _read(path)
    thin = data.startswith(THIN_MAGIC)
    if not (thin or data.startswith(MAGIC)):
        raise AltlinkError(f"{path}: not an ar archive")
    longnames = b""
    nested: dict[str, tuple[bytes, bool, bytes]] = {}  # a nested archive, read once
    pos = 8
    while pos + _HDR <= len(data):
        raw_name, size, body = _header(path, data, pos, thin)
        if raw_name == "//":
            longnames = data[body:body + size]
        elif raw_name in ("/", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED"):
            pass
        elif thin:
            yield _thin_member(path, raw_name, longnames, pos, 0, nested)
            pos = body + (body & 1)  # a thin member's data is not in the archive
            continue
        else:
            name, _ = _member_name(path, raw_name, longnames, pos)
            yield Member(name, f"{path}({name})", data[body:body + size])
        pos = body + size
        pos += pos & 1


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read: {e.strerror}") from None


def _header(path: str, data: bytes, pos: int, thin: bool) -> tuple[str, int, int]:
    """The raw name, the size and the offset of the body of the member header at ``pos``."""
    hdr = data[pos:pos + _HDR]
    if len(hdr) < _HDR or hdr[58:60] != b"`\n":
        raise AltlinkError(f"{path}: bad archive member header at offset {pos:#x}")
    raw_name = hdr[0:16].decode("latin-1").rstrip()
    try:
        size = int(hdr[48:58].decode("ascii").strip() or "0")
    except ValueError:
        raise AltlinkError(f"{path}: bad member size at offset {pos:#x}") from None
    body = pos + _HDR
    if size < 0 or (body + size > len(data) and not (thin and raw_name not in ("/", "//"))):
        raise AltlinkError(f"{path}: member at offset {pos:#x} ({size} bytes) runs past "
                           "the end of the archive")
    return raw_name, size, body


def _thin_member(path: str, raw_name: str, longnames: bytes, pos: int, depth: int,
                 opened: dict[str, tuple[bytes, bool, bytes]]) -> Member:
    name, origin = _member_name(path, raw_name, longnames, pos)
    member_path = os.path.join(os.path.dirname(path), name)
    if origin == 0:
        return Member(name, f"{path}({name})", None, member_path)
    # An element of a nested archive: the one whose header is at ORIGIN in that archive.
    if depth > 8:
        raise AltlinkError(f"{path}: member at {pos:#x}: nested archives too deep")
    if member_path not in opened:
        nested = _read(member_path)
        nested_thin = nested.startswith(THIN_MAGIC)
        if not (nested_thin or nested.startswith(MAGIC)):
            raise AltlinkError(f"{path}: member at {pos:#x} names element {origin:#x} of "
                               f"{member_path}, which is not an ar archive")
        opened[member_path] = (nested, nested_thin,
                               _longnames(member_path, nested, nested_thin))
    nested, nested_thin, longnames_n = opened[member_path]
    raw, size, body = _header(member_path, nested, origin, nested_thin)
    if nested_thin:
        inner = _thin_member(member_path, raw, longnames_n, origin, depth + 1, opened)
        return inner._replace(display=f"{path}({inner.path})")
    inner_name, _ = _member_name(member_path, raw, longnames_n, origin)
    return Member(inner_name, f"{member_path}({inner_name})", nested[body:body + size])


def _longnames(path: str, data: bytes, thin: bool) -> bytes:
    pos = 8
    while pos + _HDR <= len(data):
        raw_name, size, body = _header(path, data, pos, thin)
        if raw_name == "//":
            return data[body:body + size]
        if raw_name not in ("/", "/SYM64/"):
            return b""  # the name table comes before the first member
        pos = body + size + ((body + size) & 1)
    return b""


def _member_name(path: str, raw: str, longnames: bytes, pos: int) -> tuple[str, int]:
    """A member's name and, for an element of a nested archive in a thin archive, its
    ``origin`` (0 otherwise). Names in the table end with "/\n" (GNU) or "\n"."""
    if raw.startswith("/") and raw[1:2].isdecimal():
        # As bfd reads it (strtol): the digits, then ":ORIGIN" or anything else; `ar m` on a
        # thin archive writes "/1651          /". (Read without ``re``: the launcher reads a
        # kernel's thin archive before the linker starts.)
        end = _decimal_end(raw, 1)
        off = int(raw[1:end])
        origin_text = None
        if raw[end:end + 1] == ":":
            origin_text = raw[end + 1:_decimal_end(raw, end + 1)] or None
        if off >= len(longnames):
            raise AltlinkError(f"{path}: member at {pos:#x} names long name {off}, past the "
                               "name table")
        end = longnames.find(b"\n", off)
        name = longnames[off:end if end >= 0 else len(longnames)].decode("utf-8", "replace")
        if name.endswith("/"):
            name = name[:-1]
        return name, int(origin_text or 0)
    if raw.startswith("#1/"):  # BSD long names are not used by GNU toolchains
        raise AltlinkError(f"{path}: BSD-format archive member names are not supported")
    return (raw[:-1] if raw.endswith("/") else raw), 0


def _decimal_end(text: str, i: int) -> int:
    """Where the run of decimal digits at ``text[i]`` ends."""
    while i < len(text) and text[i].isdecimal():
        i += 1
    return i


def read_member(m: Member) -> bytes:
    if m.data is not None:
        return m.data
    try:
        # A member is a path: a device (/dev/zero) would be read without end, a pipe opened
        # without end.
        if not stat.S_ISREG(os.stat(m.path or "").st_mode):
            raise AltlinkError(f"{m.display}: thin archive member {m.path} is not a regular "
                               "file")
        with open(m.path or "", "rb") as f:
            return f.read()
    except OSError as e:
        raise AltlinkError(f"{m.display}: cannot read thin archive member {m.path}: "
                           f"{e.strerror}") from None


def read_head(m: Member, n: int = 20) -> bytes:
    """The first ``n`` bytes of a member: enough to tell what it is without reading it all."""
    if m.data is not None:
        return m.data[:n]
    try:
        with open(m.path or "", "rb") as f:
            return f.read(n)
    except OSError as e:
        raise AltlinkError(f"{m.display}: cannot read thin archive member {m.path}: "
                           f"{e.strerror}") from None
