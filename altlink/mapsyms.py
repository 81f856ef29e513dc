"""Mapping symbols: the AArch64 ELF ABI's ``$x`` and ``$d`` (optionally followed by ``.`` and
any text), which the assembler puts where code and data start in a section. A word inside a
``$d`` run is data, however it decodes: a constant table in ``.text`` (the K256 table of
Linux's sha256-armv8 code) may hold a word that reads as a branch. ALT017 asks here before it
reports a branch found by its word scan: only then, so the symbols are decoded only where a
scan found something to report."""
from __future__ import annotations

from bisect import bisect_right


def is_data(elf, shndx: int, value: int) -> bool:
    """Whether the word at ``value`` of section ``shndx`` (an offset in an object, an address in
    an image: the symbols' values are the same kind) is data by its section's mapping symbols:
    the last of them at or before it is a ``$d``. False where the section has none (a stripped
    image: every word is taken for code, as the ALT017 scan takes it). Where a ``$x`` and a
    ``$d`` mark the same place, code: the check is kept."""
    table = elf.__dict__.get("_mapping_symbols")
    if table is None:
        table = elf.__dict__["_mapping_symbols"] = _read(elf)
    got = table.get(shndx)
    if got is None:
        return False
    values, data = got
    i = bisect_right(values, value) - 1
    return i >= 0 and data[i]


def _read(elf) -> dict[int, tuple[list[int], list[bool]]]:
    rows: dict[int, list[tuple[int, bool]]] = {}
    for s in elf.symbols:
        name = s.name
        if name[:1] == "$" and name[1:2] in ("d", "x") and (len(name) == 2 or name[2] == "."):
            got = rows.get(s.shndx)
            if got is None:
                got = rows[s.shndx] = []
            got.append((s.value, name[1] == "d"))
    out = {}
    for shndx, marks in rows.items():
        marks.sort(key=lambda m: (m[0], not m[1]))  # at one value, the code mark last
        out[shndx] = ([m[0] for m in marks], [m[1] for m in marks])
    return out
