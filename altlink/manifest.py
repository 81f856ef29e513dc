"""The manifest (SPEC section 5): what a runtime or a later stage patches against.

JSON, keys sorted, deterministic; addresses as hex strings; paths relative to the manifest's
directory; bound to the image and its raw binary by sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass

from altlink import insn
from altlink.caps import CapTable
from altlink.checks import Input
from altlink.errors import AltlinkError
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
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
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
          sources=None) -> dict:
    """The manifest of a linked image whose table was decoded into ``image``."""
    elf = image.elf
    img = {"path": relpath(image_path, manifest_path), "sha256": image_sha,
           "machine": "aarch64"}
    if binary is not None:
        img["bin"] = {"path": relpath(binary.path, manifest_path), "sha256": binary.sha256,
                      "base": hx(binary.layout.base)}
    cap_names = {str(i): n for i, n in enumerate(caps.names)} if caps else {}
    entries = [_entry(image, e, profile, caps, binary, sources) for e in image.table.entries]
    table = image.table.sections[0] if image.table.sections else None
    out = {"schema": SCHEMA_ID, "abi": profile.abi, "ncaps": profile.ncaps, "image": img,
           "caps": cap_names, "entries": entries}
    if table is not None:
        out["table"] = {"address": hx(table.addr), "size": table.size,
                        "file_offset": table.offset,
                        "bin_offset": binary.layout.offset_of(table.addr, elf)
                        if binary else None}
    return out


def _entry(image: Input, e: Entry, profile: Profile, caps: CapTable | None,
           binary: BinInfo | None, sources) -> dict:
    elf = image.elf
    callback = profile.is_callback(e.cap_raw)
    cap = profile.cap(e.cap_raw)
    site_addr = e.site.address
    site_bytes = elf.read_addr(site_addr, e.orig_len) or b""
    site = {"address": hx(site_addr), "file_offset": elf.file_offset(site_addr),
            "bin_offset": binary.layout.offset_of(site_addr, elf) if binary else None,
            "length": e.orig_len, "symbol": image.names.at_address(site_addr),
            "bytes": site_bytes.hex(), "disasm": _disasm(site_bytes, site_addr)}
    if sources is not None:
        src = sources(site_addr)
        if src:
            site["source"] = src
    rec = {"index": e.index, "kind": "callback" if callback else "static", "cap": cap,
           "cap_raw": e.cap_raw,
           "cap_name": caps.name(cap) if caps is not None and cap is not None else None,
           "site": site, "replacement": None, "callback": None}
    if callback:
        sym = image.names.function_at(e.alt.address)
        rec["callback"] = {"symbol": sym.name if sym else None, "address": hx(e.alt.address)}
        return rec
    repl = elf.read_addr(e.alt.address, e.alt_len) or b""
    fixups = []
    n = len(repl) // 4
    for i, word in enumerate(struct.unpack(f"<{n}I", repl[:n * 4])):
        pc = e.alt.address + 4 * i
        c = insn.decode(word)
        if c.kind in insn.FIXUP_KINDS and insn.needs_fixup(word, e.alt.address, e.alt_len, pc):
            fixups.append({"insn": i, "kind": c.kind, "target": hx(insn.target(word, pc))})
    rec["replacement"] = {"address": hx(e.alt.address), "bytes": repl.hex(),
                          "disasm": _disasm(repl, e.alt.address), "fixups": fixups}
    return rec


def _disasm(code: bytes, address: int) -> list[str]:
    """Whole instructions only: a malformed entry's odd length leaves a tail, shown raw."""
    whole = len(code) // 4 * 4
    out = insn.disasm(code[:whole], address)
    if whole < len(code):
        out.append(f".byte {', '.join(f'{b:#04x}' for b in code[whole:])}")
    return out


def dumps(manifest: dict) -> str:
    """Keys sorted; one line per entry (diffable, and written by json's C encoder: a kernel's
    manifest of 28,000 entries takes a fraction of a second, where ``indent`` would take
    seconds)."""
    def compact(v) -> str:
        return json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))

    parts = []
    for key in sorted(manifest):
        val = manifest[key]
        if key == "entries" and isinstance(val, list):
            body = ",\n  ".join(compact(e) for e in val)
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
