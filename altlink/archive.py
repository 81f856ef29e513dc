"""Static archives (``ar``): the object members a linker may pull in, GNU and thin formats."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from altlink.errors import AltlinkError

MAGIC = b"!<arch>\n"
THIN_MAGIC = b"!<thin>\n"
_HDR = 60


@dataclass(frozen=True)
class Member:
    name: str
    display: str  # "lib.a(foo.o)", as linkers name members
    data: bytes | None  # None for a thin archive's member, read from ``path``
    path: str | None = None


def is_archive(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head in (MAGIC, THIN_MAGIC)


def members(path: str) -> list[Member]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read: {e.strerror}") from None
    thin = data.startswith(THIN_MAGIC)
    if not (thin or data.startswith(MAGIC)):
        raise AltlinkError(f"{path}: not an ar archive")
    out: list[Member] = []
    longnames = b""
    pos = 8
    while pos + _HDR <= len(data):
        hdr = data[pos:pos + _HDR]
        if hdr[58:60] != b"`\n":
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
        if raw_name == "//":
            longnames = data[body:body + size]
        elif raw_name in ("/", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED"):
            pass
        else:
            name = _member_name(path, raw_name, longnames, pos)
            if thin:
                member_path = os.path.join(os.path.dirname(path), name)
                out.append(Member(name, f"{path}({name})", None, member_path))
                pos = body  # a thin member's data is not in the archive
                pos += pos & 1
                continue
            out.append(Member(name, f"{path}({name})", data[body:body + size]))
        pos = body + size
        pos += pos & 1
    return out


def _member_name(path: str, raw: str, longnames: bytes, pos: int) -> str:
    if raw.startswith("/") and raw[1:].isdigit():
        off = int(raw[1:])
        if off >= len(longnames):
            raise AltlinkError(f"{path}: member at {pos:#x} names long name {off}, past the "
                               "name table")
        end = longnames.find(b"\n", off)
        name = longnames[off:end if end >= 0 else len(longnames)].decode("utf-8", "replace")
        return name.rstrip("/")
    if raw.startswith("#1/"):  # BSD long names are not used by GNU toolchains
        raise AltlinkError(f"{path}: BSD-format archive member names are not supported")
    return raw.rstrip("/")


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
