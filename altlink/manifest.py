"""The manifest (docs/reference.md, section 5): what a runtime or a later stage patches against.

JSON, keys sorted, deterministic; addresses as hex strings; paths relative to the manifest's
directory; bound to the image and its raw binary by sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass

from altlink import binding, insn, progress
from altlink.caps import CapTable
from altlink.elf import SHT_NOBITS
from altlink.errors import AltlinkError
from altlink.findings import Finding
from altlink.gcpause import collector_paused
from altlink.linkset import Input
from altlink.nested import Nested
from altlink.nested import find as find_nested
from altlink.rawbin import RawLayout
from altlink.table import Entry, Profile

SCHEMA_ID = "altlink-manifest/1"
SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "schema", "manifest.schema.json")


def hx(v: int) -> str:
    return f"{v:#x}"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            shown = progress.task(f"hashing {path}", os.fstat(f.fileno()).st_size >> 20)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                shown.advance()
            progress.erase()
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read: {e.strerror}") from None
    return h.hexdigest()


def sha256_later(path: str):
    """Start hashing a file in a thread (hashlib releases the GIL: a 270 MB image hashes while
    its table is decoded); returns a function that waits for the digest."""
    import threading

    box: dict = {}

    def work() -> None:
        try:
            box["sha"] = sha256_file(path)
        except AltlinkError as e:
            box["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()

    def result() -> str:
        t.join()
        if "error" in box:
            raise box["error"]
        return box["sha"]

    return result


def relpath(path: str, manifest_path: str | None) -> str:
    base = os.path.dirname(os.path.abspath(manifest_path)) if manifest_path else os.getcwd()
    return os.path.relpath(os.path.abspath(path), base)


@dataclass(frozen=True)
class BinInfo:
    path: str
    sha256: str
    layout: RawLayout


def build(image: Input, profile: Profile, caps: CapTable | None, image_path: str,
          image_sha: str, manifest_path: str | None, binary: BinInfo | None = None,
          sources=None, refuse: bool = False, nested: list[Nested] | None = None,
          findings: list[Finding] | None = None) -> dict:
    """The manifest of a linked image whose table was decoded into ``image``.

    With ``refuse``, the entries ``check`` reports at error severity are left out, listed
    under ``refused`` with their code and message (and their findings appended to
    ``findings``). ``nested``: the images embedded in it (default: those the profile's
    symbols bound, :mod:`altlink.nested`), whose entries the manifest carries too.
    """
    elf = image.elf
    table = image.table.sections[0] if image.table.sections else None
    img = {"path": relpath(image_path, manifest_path), "sha256": image_sha,
           "machine": "aarch64",
           "patch_sha256": binding.patch_digest_of(image, profile),
           "sections": binding.section_digests(elf)}
    if binary is not None:
        img["bin"] = {"path": relpath(binary.path, manifest_path), "sha256": binary.sha256,
                      "base": hx(binary.layout.base)}
    cap_names = {str(i): n for i, n in enumerate(caps.names)} if caps else {}
    records = _Records(image, profile, caps, binary, sources)
    refused = _refusals(image, profile, caps, refuse, findings)
    with collector_paused():
        entries = [records.entry(e) for e in image.table.entries if e.index not in refused]
    out = {"schema": SCHEMA_ID, "abi": profile.abi, "ncaps": profile.ncaps, "image": img,
           "caps": cap_names, "entries": entries}
    if refused:
        out["refused"] = _refused_records(refused)
    if nested is None:
        nested = find_nested(elf, elf.data)
    if nested:
        out["nested"] = [_nested(n, elf, profile, caps, binary, refuse, findings) for n in nested]
    if table is not None:
        out["table"] = {"address": hx(table.addr), "size": table.size,
                        "file_offset": table.offset,
                        "bin_offset": binary.layout.offset_of(table.addr, elf)
                        if binary else None}
    return out


def _refusals(image: Input, profile: Profile, caps: CapTable | None, refuse: bool,
              findings: list[Finding] | None) -> dict[int, Finding]:
    if not refuse:
        return {}
    from altlink.checks import refusals
    from altlink.linkset import Options

    got = refusals(image, Options(profile, caps))
    if findings is not None:
        findings.extend(got[i] for i in sorted(got))
    return got


def _refused_records(refused: dict[int, Finding]) -> list[dict]:
    return [{"index": i, "code": refused[i].code, "message": refused[i].message}
            for i in sorted(refused)]


def _nested(n: Nested, outer_elf, profile: Profile, caps: CapTable | None,
            binary: BinInfo | None, refuse: bool, findings: list[Finding] | None) -> dict:
    """The record of an embedded image: where it lies in the outer image, and its entries,
    each place with ``outer``: the same bytes' address and offsets in the outer image."""
    inner = Input.load(n.elf)
    refused = _refusals(inner, profile, caps, refuse, findings)
    records = _Records(inner, profile, caps, None, None)
    layout = binary.layout if binary is not None else None

    def outer(part: dict | None) -> None:
        if part is None:
            return
        off = part["file_offset"]
        if off is None:
            part["outer"] = None
            return
        addr = n.outer_address(off)
        part["outer"] = {"address": hx(addr), "file_offset": n.outer_file_offset(off),
                         "bin_offset": layout.offset_of(addr, outer_elf)
                         if layout is not None else None}

    entries = []
    with collector_paused():
        for e in inner.table.entries:
            if e.index in refused:
                continue
            rec = records.entry(e)
            outer(rec["site"])
            if rec["replacement"] is not None:
                rec["replacement"]["file_offset"] = n.elf.file_offset(e.alt.address)
                outer(rec["replacement"])
            entries.append(rec)
    out = {"start": n.start, "end": n.end, "address": hx(n.address),
           "file_offset": n.file_offset,
           "bin_offset": layout.offset_of(n.address, outer_elf) if layout else None,
           "size": n.size, "sha256": hashlib.sha256(n.elf.data).hexdigest(),
           "entries": entries}
    table = inner.table.sections[0] if inner.table.sections else None
    if table is not None:
        out["table"] = {"address": hx(table.addr), "size": table.size,
                        "file_offset": table.offset,
                        "outer": {"address": hx(n.outer_address(table.offset)),
                                  "file_offset": n.outer_file_offset(table.offset)}}
    if refused:
        out["refused"] = _refused_records(refused)
    return out


class _Records:
    """The entries' records of one manifest. What many entries share is worked out once: the
    fields of each capability number, and what each distinct byte string of code is (a table
    repeats a few sites and replacements many times)."""

    def __init__(self, image: Input, profile: Profile, caps: CapTable | None,
                 binary: BinInfo | None, sources) -> None:
        self.elf = image.elf
        self.names = image.names
        self.profile = profile
        self.caps = caps
        self.layout = binary.layout if binary is not None else None
        self.sources = sources
        self._cap_fields: dict[int, tuple[str, int | None, str | None]] = {}
        self._codes: dict[bytes, _Code] = {}

    def _place(self, addr: int, length: int) -> tuple[bytes, int | None]:
        """The bytes at ``addr`` (b"" where the image has none) and its file offset: as
        ``read_addr`` and ``file_offset``, from one lookup of the section."""
        elf = self.elf
        sec = elf.section_at(addr)
        if sec is None or sec.type == SHT_NOBITS:
            return b"", None
        off = addr - sec.addr
        if addr + length > sec.addr + sec.size:
            return b"", sec.offset + off
        return elf.section_data(sec)[off:off + length], sec.offset + off

    def entry(self, e: Entry) -> dict:
        kind, cap, cap_name = self._cap(e.cap_raw)
        site_addr = e.site.address
        site_bytes, site_off = self._place(site_addr, e.orig_len)
        site = {"address": f"{site_addr:#x}", "file_offset": site_off,
                "bin_offset": self.layout.offset_of(site_addr, self.elf)
                if self.layout is not None else None,
                "length": e.orig_len, "symbol": self.names.at_address(site_addr),
                "bytes": site_bytes.hex(),
                "disasm": self._code(site_bytes, site_addr).disasm(site_bytes, site_addr)}
        if self.sources is not None:
            src = self.sources(site_addr)
            if src:
                site["source"] = src
        rec = {"index": e.index, "kind": kind, "cap": cap, "cap_raw": e.cap_raw,
               "cap_name": cap_name, "site": site, "replacement": None, "callback": None}
        alt_addr = e.alt.address
        if kind == "callback":
            sym = self.names.function_at(alt_addr)
            rec["callback"] = {"symbol": sym.name if sym else None, "address": f"{alt_addr:#x}"}
            return rec
        alt_len = e.alt_len
        repl = self._place(alt_addr, alt_len)[0]
        code = self._code(repl, alt_addr)
        fixups = []
        for i, word, fixup_kind in code.branches:
            pc = alt_addr + 4 * i
            if insn.needs_fixup(word, alt_addr, alt_len, pc):
                fixups.append({"insn": i, "kind": fixup_kind,
                               "target": f"{insn.target(word, pc):#x}"})
        rec["replacement"] = {"address": f"{alt_addr:#x}", "bytes": repl.hex(),
                              "disasm": code.disasm(repl, alt_addr), "fixups": fixups}
        return rec

    def _cap(self, cap_raw: int) -> tuple[str, int | None, str | None]:
        """The entry's kind, capability and capability name."""
        got = self._cap_fields.get(cap_raw)
        if got is None:
            profile, caps = self.profile, self.caps
            cap = profile.cap(cap_raw)
            got = ("callback" if profile.is_callback(cap_raw) else "static", cap,
                   caps.name(cap) if caps is not None and cap is not None else None)
            self._cap_fields[cap_raw] = got
        return got

    def _code(self, code: bytes, address: int) -> _Code:
        """What ``code`` is, worked out at its first place, ``address``."""
        got = self._codes.get(code)
        if got is None:
            got = self._codes[code] = _analyse(code, address)
        return got


@dataclass(frozen=True)
class _Code:
    """What a byte string of code is wherever it lies: its disassembly, where the lines of the
    PC-relative words (their text shows the target) are left to each place; and the words that
    may need a fix-up when it is a replacement, as (index, word, kind)."""

    lines: tuple[str, ...]
    moving: tuple[int, ...]  # the lines that depend on the address
    branches: tuple[tuple[int, int, str], ...]

    def disasm(self, code: bytes, address: int) -> list[str]:
        """:func:`insn.disasm` of ``code`` at ``address`` (whole words; a malformed entry's
        odd tail shown raw)."""
        if not self.moving:
            return list(self.lines)
        lines = list(self.lines)
        for i in self.moving:
            lines[i] = insn.disasm(code[4 * i:4 * i + 4], address + 4 * i)[0]
        return lines


def _analyse(code: bytes, address: int) -> _Code:
    whole = len(code) // 4 * 4
    words = struct.unpack(f"<{whole // 4}I", code[:whole])
    lines = insn.disasm(code[:whole], address)
    if whole < len(code):
        lines.append(f".byte {', '.join(f'{b:#04x}' for b in code[whole:])}")
    moving, branches = [], []
    for i, word in enumerate(words):
        if insn.classify(word).kind != "plain":  # a plain word reads the same everywhere
            moving.append(i)
        kind = insn.decode(word).kind
        if kind in insn.FIXUP_KINDS:
            branches.append((i, word, kind))
    return _Code(tuple(lines), tuple(moving), tuple(branches))


# One encoder for every entry (json.dumps with options makes a new one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def dumps(manifest: dict) -> str:
    """Keys sorted; one line per entry (diffable, and written by json's C encoder: a kernel's
    manifest of 28,000 entries takes a fraction of a second, where ``indent`` would take
    seconds)."""
    compact = _ENCODER.encode
    parts = []
    for key in sorted(manifest):
        val = manifest[key]
        if key == "entries" and isinstance(val, list):
            body = ",\n  ".join(map(compact, val))
            text = f"[\n  {body}\n ]" if val else "[]"
        else:
            text = compact(val)
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read the manifest: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # deep nesting: recursion
        raise AltlinkError(f"{path}: not a JSON manifest: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_ID:
        raise AltlinkError(f"{path}: not an altlink manifest (schema {SCHEMA_ID!r} expected)")
    problem = _shape_problem(data)
    if problem:
        raise AltlinkError(f"{path}: not an altlink manifest: {problem}")
    return data


def _shape_problem(m: dict) -> str | None:
    """The first part of a manifest that is not of the type the commands read (the full rules
    are the JSON Schema's; this keeps a hand-edited file from reaching them as a traceback)."""
    def listof(v, kind) -> bool:
        return isinstance(v, list) and all(isinstance(x, kind) for x in v)

    if not isinstance(m.get("image", {}), dict):
        return "image is not an object"
    entries = m.get("entries")
    if not isinstance(entries, list):
        return "entries is not a list"
    for i, e in enumerate(entries):
        where = f"entries[{i}]"
        if not isinstance(e, dict):
            return f"{where} is not an object"
        for key in ("site", "replacement", "callback"):
            if e.get(key) is not None and not isinstance(e[key], dict):
                return f"{where}.{key} is not an object"
        for key in ("site", "replacement"):
            part = e.get(key) or {}
            if part.get("disasm") is not None and not listof(part["disasm"], str):
                return f"{where}.{key}.disasm is not a list of strings"
        fixups = (e.get("replacement") or {}).get("fixups")
        if fixups is not None and not listof(fixups, dict):
            return f"{where}.replacement.fixups is not a list of objects"
        for part, key, kind in _SCALARS:
            v = (e.get(part) or {}) if part else e
            v = v.get(key)
            if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
                return f"{where}{'.' + part if part else ''}.{key} is not " \
                    f"{'an integer' if kind is int else 'a string'}"
    if not isinstance(m.get("caps") or {}, dict):
        return "caps is not an object"
    return None


# The scalar fields the commands read, where present: (part of the entry, key, type).
_SCALARS = [(None, "index", int), (None, "kind", str), (None, "cap_raw", int), (None, "cap", int),
            ("site", "address", str), ("site", "length", int), ("site", "symbol", str),
            ("site", "bytes", str), ("site", "source", str), ("replacement", "address", str),
            ("replacement", "bytes", str), ("callback", "address", str),
            ("callback", "symbol", str)]
