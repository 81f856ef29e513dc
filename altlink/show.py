"""Readable views of a manifest: ``altlink show`` and ``altlink diff``."""
from __future__ import annotations


def _cap(rec: dict) -> str:
    if rec.get("cap") is None:
        return "always"
    name = rec.get("cap_name")
    return f"{rec['cap']} {name}" if name else str(rec["cap"])


def show(m: dict) -> str:
    lines = []
    img = m.get("image") or {}
    lines.append(f"{img.get('path')}: {len(m.get('entries') or [])} alternatives "
                 f"({m.get('abi')}, NCAPS {m.get('ncaps')})")
    for rec in m.get("entries") or []:
        lines += _entry(rec)
    lines += _refused(m)
    for n in m.get("nested") or []:
        lines.append(f"nested image {n.get('start')}..{n.get('end')} at {n.get('address')} "
                     f"(file offset {n.get('file_offset')}): {len(n.get('entries') or [])} "
                     "alternatives")
        for rec in n.get("entries") or []:
            lines += _entry(rec)
        lines += _refused(n)
    return "\n".join(lines) + "\n"


def _refused(m: dict) -> list[str]:
    return [f"[{r.get('index')}] refused: {r.get('code')}: {r.get('message')}"
            for r in m.get("refused") or [] if isinstance(r, dict)]


def _entry(rec: dict) -> list[str]:
    lines = []
    site = rec.get("site") or {}
    head = (f"[{rec.get('index')}] {rec.get('kind')} cap {_cap(rec)}: site "
            f"{site.get('address')} <{site.get('symbol')}> ({site.get('length')} bytes)")
    outer = site.get("outer")
    if isinstance(outer, dict):
        head += f", in the outer image {outer.get('address')}"
    if site.get("source"):
        head += f" {site['source']}"
    lines.append(head)
    left = list(site.get("disasm") or [])
    if rec.get("kind") == "callback":
        cb = rec.get("callback") or {}
        right = [f"callback {cb.get('symbol')} at {cb.get('address')}"]
        title = "callback"
    else:
        repl = rec.get("replacement") or {}
        right = list(repl.get("disasm") or [])
        title = f"replacement {repl.get('address')}"
        for fx in repl.get("fixups") or []:
            i = fx.get("insn")
            if isinstance(i, int) and 0 <= i < len(right):
                right[i] += f"   ; {fx.get('kind')} fix-up -> {fx.get('target')}"
    width = max([len(x) for x in left] + [len("site")]) + 2
    lines.append(f"    {'site'.ljust(width)}| {title}")
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        lines.append(f"    {a.ljust(width)}| {b}")
    return lines


def _key(rec: dict) -> tuple:
    site = rec.get("site") or {}
    return (site.get("symbol") or site.get("address"), rec.get("kind"), rec.get("cap_raw"))


def diff(old: dict, new: dict) -> str:
    """Entries added, removed and changed, keyed by site symbol, kind and capability."""
    lines = []
    for key in ("abi", "ncaps"):
        if old.get(key) != new.get(key):
            lines.append(f"~ {key}: {old.get(key)} -> {new.get(key)}")
    a: dict = {}
    for where, rec in _records(old):
        a.setdefault((*_key(rec), where), []).append(rec)
    b: dict = {}
    for where, rec in _records(new):
        b.setdefault((*_key(rec), where), []).append(rec)
    for key in sorted(set(a) | set(b), key=str):
        olds, news = a.get(key, []), b.get(key, [])
        for i in range(max(len(olds), len(news))):
            o = olds[i] if i < len(olds) else None
            n = news[i] if i < len(news) else None
            label = f"{key[1]} cap {key[2]} at {key[0]}"
            if key[3]:
                label += f" in the nested image {key[3]}"
            if o is None:
                lines.append(f"+ {label}")
            elif n is None:
                lines.append(f"- {label}")
            else:
                changes = _changes(o, n)
                if changes:
                    lines.append(f"~ {label}: {', '.join(changes)}")
    if not lines:
        lines.append("no differences")
    return "\n".join(lines) + "\n"


def _records(m: dict):
    """(nested image's start symbol, or "" for the image's own, entry) of a manifest."""
    for rec in m.get("entries") or []:
        yield "", rec
    for n in m.get("nested") or []:
        if isinstance(n, dict):
            for rec in n.get("entries") or []:
                yield str(n.get("start")), rec


def _changes(o: dict, n: dict) -> list[str]:
    out = []
    os_, ns = o.get("site") or {}, n.get("site") or {}
    if os_.get("address") != ns.get("address"):
        out.append(f"site {os_.get('address')} -> {ns.get('address')}")
    if os_.get("length") != ns.get("length"):
        out.append(f"length {os_.get('length')} -> {ns.get('length')}")
    if os_.get("bytes") != ns.get("bytes"):
        out.append("site code changed")
    orp, nrp = o.get("replacement") or {}, n.get("replacement") or {}
    if orp.get("bytes") != nrp.get("bytes"):
        out.append("replacement code changed")
    ocb, ncb = o.get("callback") or {}, n.get("callback") or {}
    if ocb.get("symbol") != ncb.get("symbol"):
        out.append(f"callback {ocb.get('symbol')} -> {ncb.get('symbol')}")
    return out
