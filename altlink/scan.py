"""``altlink scan``: the entries of objects or images as a readable table or as JSON."""
from __future__ import annotations

from altlink.caps import CapTable
from altlink.linkset import Input
from altlink.table import Entry, Place, Profile


def entry_record(inp: Input, e: Entry, profile: Profile, caps: CapTable | None) -> dict:
    callback = profile.is_callback(e.cap_raw)
    cap = profile.cap(e.cap_raw)
    return {
        "index": e.index,
        "kind": "callback" if callback else "static",
        "cap": cap,
        "cap_raw": e.cap_raw,
        "cap_name": caps.name(cap) if caps is not None and cap is not None else None,
        "orig_len": e.orig_len,
        "alt_len": e.alt_len,
        "table": {"section": e.table_section, "offset": e.table_offset,
                  "address": _hex(e.address)},
        "site": _place(inp, e.site),
        "alt": _place(inp, e.alt),
        "callback": _callback_name(inp, e) if callback else None,
    }


def _hex(v: int | None) -> str | None:
    return None if v is None else f"{v:#x}"


def _place(inp: Input, p: Place) -> dict:
    rec = {"section": p.section or None, "offset": p.offset if p.defined else None,
           "address": _hex(p.address), "symbol": p.symbol,
           "name": _name(inp, p)}
    if p.address is None:
        rec["addend"] = p.addend
    return rec


def _name(inp: Input, p: Place) -> str | None:
    if p.address is not None:
        return inp.names.at_address(p.address)
    if not p.defined:
        return p.symbol
    return inp.names.at_offset(p.section_index, p.offset)


def _callback_name(inp: Input, e: Entry) -> str | None:
    if e.alt.address is not None:
        sym = inp.names.function_at(e.alt.address)
        return sym.name if sym else None
    if e.alt.symbol:
        return e.alt.symbol
    sym = inp.names.function_at_offset(e.alt.section_index, e.alt.offset)
    return sym.name if sym else None


def scan_json(inputs: list[Input], profile: Profile, caps: CapTable | None) -> dict:
    return {"abi": profile.abi, "ncaps": profile.ncaps,
            "files": [{"path": i.path, "type": "object" if i.elf.type == 1 else "image",
                       "entries": [entry_record(i, e, profile, caps) for e in i.table.entries]}
                      for i in inputs]}


def scan_text(inputs: list[Input], profile: Profile, caps: CapTable | None) -> str:
    lines = []
    for inp in inputs:
        n = len(inp.table.entries)
        ncaps = f", NCAPS {profile.ncaps}" if profile.ncaps is not None else ""
        lines.append(f"{inp.path}: {n} entr{'y' if n == 1 else 'ies'} ({profile.abi}{ncaps})")
        if not n:
            continue
        rows = [("#", "kind", "cap", "site", "len", "replacement / callback")]
        for e in inp.table.entries:
            r = entry_record(inp, e, profile, caps)
            cap = "-" if r["cap"] is None else str(r["cap"])
            if r["cap_name"]:
                cap += f" {r['cap_name']}"
            site = _where(r["site"])
            if r["kind"] == "callback":
                alt = f"callback {r['callback'] or _where(r['alt'])}"
            else:
                alt = f"{_where(r['alt'])} ({e.alt_len} bytes)"
            rows.append((str(e.index), r["kind"], cap, site, str(e.orig_len), alt))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[5])
    return "\n".join(lines) + "\n"


def _where(rec: dict) -> str:
    if rec["address"]:
        base = rec["address"]
    elif rec["section"]:
        base = f"{rec['section']}+{rec['offset']:#x}"
    else:
        return rec["symbol"] or "?"
    return f"{base} <{rec['name']}>" if rec["name"] else base
