#!/usr/bin/env python3
"""One job, three ELF readers: the alternative tables of a set of kernel modules.

    .venv/bin/python bench/readers.py [DIR] [--reps N]

For each module (``*.ko`` under DIR; default: the committed slice, tests/data/kernel/modules),
read the ELF, find ``.altinstructions`` and its ``.rela`` section, and give each entry's
fields with the symbol and addend of its two relocations. altlink's own reader
(``table.read_table``), pyelftools, and lief (if installed) do the same job; the figures are
the best of ``--reps`` runs of each, in turns, in this process (CPU time). Each reader's
entry count must agree. Figures: docs/dependencies.md.
"""
from __future__ import annotations

import argparse
import glob
import os
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ENTRY = struct.Struct("<iiHBB")  # orig_offset, alt_offset, cpucap, orig_len, alt_len


def altlink_job(paths: list[str]) -> int:
    from altlink.elf import read_elf
    from altlink.table import read_table

    n = 0
    for p in paths:
        elf = read_elf(p)
        n += len(read_table(elf).entries)
        elf.close()
    return n


def pyelftools_job(paths: list[str]) -> int:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    n = 0
    for p in paths:
        with open(p, "rb") as f:
            elf = ELFFile(f)
            sec = elf.get_section_by_name(".altinstructions")
            if sec is None:
                continue
            rela = next((s for s in elf.iter_sections() if isinstance(s, RelocationSection)
                         and s["sh_info"] == elf.get_section_index(".altinstructions")), None)
            symtab = elf.get_section(rela["sh_link"]) if rela else None
            by_off = {}
            for r in rela.iter_relocations() if rela else ():
                sym = symtab.get_symbol(r["r_info_sym"])
                by_off[r["r_offset"]] = (sym.name, sym["st_shndx"], r["r_addend"])
            data = sec.data()
            for off in range(0, len(data) - len(data) % 12, 12):
                cap, orig_len, alt_len = ENTRY.unpack_from(data, off)[2:]
                site, alt = by_off.get(off), by_off.get(off + 4)
                del site, alt
                n += 1
    return n


def lief_job(paths: list[str]) -> int:
    import lief

    n = 0
    for p in paths:
        elf = lief.ELF.parse(p)
        sec = elf.get_section(".altinstructions")
        if sec is None:
            continue
        by_off = {}
        for r in elf.object_relocations:
            if r.section is not None and r.section.name == ".altinstructions":
                by_off[r.address] = (r.symbol.name if r.has_symbol else "", r.addend)
        data = bytes(sec.content)
        for off in range(0, len(data) - len(data) % 12, 12):
            ENTRY.unpack_from(data, off)
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=os.path.join(ROOT, "tests", "data", "kernel",
                                                           "modules"))
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(args.dir, "**", "*.ko"), recursive=True))
    jobs = {"altlink": altlink_job, "pyelftools": pyelftools_job}
    try:
        import lief  # noqa: F401
        jobs["lief"] = lief_job
    except ImportError:
        pass
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    for _ in range(args.reps):
        for name, job in jobs.items():
            t0 = time.process_time()
            counts[name] = job(paths)
            best[name] = min(best.get(name, 1e9), time.process_time() - t0)
    print(f"{len(paths)} modules, {counts['altlink']} entries")
    for name in jobs:
        print(f"{name:11s} {best[name] * 1000:8.0f} ms CPU  ({best[name] / best['altlink']:.1f} x "
              f"altlink)  entries {counts[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
