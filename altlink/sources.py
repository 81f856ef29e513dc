"""Source lines for findings and manifests, from the DWARF line tables.

No external program runs: a host's ``addr2line`` that does not know AArch64 gave wrong
names (``c.c/c.c/c.c:3``). ``dwarflines`` reads the tables from the file's bytes; what it
does not know (compressed sections, forms, unit types and relocations it does not read,
damaged tables) is read with pyelftools here (``rows_pyelftools``), the reference that
``dwarflines`` is tested against at every address of gcc's and clang's objects and images.

A relocatable object's line table holds its places as relocations against its sections;
pyelftools applies them (``R_AARCH64_ABS64`` and ``ABS32``) once altlink has given each
allocated section of the object a base of its own (its index times 2**32), so that the
address of a row names its section as well as the offset in it. A linked image's rows are
addresses. A file's tables are read only when something asks for a line in it (a finding
with a site, or ``--source-lines``), and in an image with ``.debug_aranges`` only the
compilation units that hold the asked addresses. At an address, the row is the last one at
or before it in its sequence, before the next row's address; where several units cover it,
the last unit's.
"""
from __future__ import annotations

import io
import os
import struct
from bisect import bisect_left
from collections import defaultdict

from altlink import dwarflines
from altlink.dwarflines import _sleb, _uleb
from altlink.findings import Finding
from altlink.values import replace

_BASE_SHIFT = 32  # a relocatable object's section n is placed at n << 32


def _relative(name: str, base: str) -> str:
    if os.path.isabs(name):
        rel = os.path.relpath(name, base)
        if not rel.startswith(".." + os.sep + ".."):
            return rel
    return name


def _placed(data: bytes) -> bytes:
    """A relocatable AArch64 object's bytes with each symbol of an allocated section moved to
    ``(section index << 32) + value``: relocations against it then give addresses that name
    the section. Other files are returned as they are."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return data  # not a little-endian ELF64: nothing altlink reads
    e_type, = struct.unpack_from("<H", data, 16)
    if e_type != 1:  # ET_REL only
        return data
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    if shentsize != 64 or shoff + 64 * shnum > len(data):
        return data
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + 64 * i) for i in range(shnum)]
    alloc = {i for i, h in enumerate(headers) if h[2] & 2}  # SHF_ALLOC
    out = bytearray(data)
    for _name, sh_type, _flags, _addr, off, size, _link, _info, _align, entsize in headers:
        if sh_type != 2 or entsize != 24 or off + size > len(data):  # SHT_SYMTAB
            continue
        for pos in range(off, off + size - size % 24, 24):
            shndx, value = struct.unpack_from("<HQ", data, pos + 6)
            if shndx in alloc:
                struct.pack_into("<Q", out, pos + 8, (shndx << _BASE_SHIFT) + value)
    return bytes(out)


def _section_bases(elf, section: str) -> list[int]:
    """Where ``_placed`` put the sections named ``section`` (one name may be several)."""
    return [i << _BASE_SHIFT for i, s in enumerate(elf.iter_sections()) if s.name == section]


def _text(name) -> str:
    """A name from the DWARF, as text (bytes that are not UTF-8 shown replaced)."""
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _file_name(lineprog, index: int, comp_dir: str) -> str | None:
    """The path of a line table's file ``index`` (1-based before DWARF 5, 0-based from 5)."""
    files = lineprog["file_entry"]
    dirs = lineprog["include_directory"]
    v5 = lineprog["version"] >= 5
    i = index if v5 else index - 1
    if not 0 <= i < len(files):
        return None
    entry = files[i]
    name = _text(entry.name)
    d = entry.dir_index
    if v5:
        folder = _text(dirs[d]) if 0 <= d < len(dirs) else ""
    else:
        folder = _text(dirs[d - 1]) if 0 < d <= len(dirs) else ""
    return os.path.join(comp_dir, folder, name)


def _rows_at(dwarf, cus, wanted: list[int], found: dict[int, tuple[str, int]]) -> None:
    """For each address of ``wanted`` (sorted) in the line programs of ``cus``, the row that
    covers it: the last row at or before it in its sequence, before the next address."""
    data = dwarf.debug_line_sec.stream.getbuffer()
    for cu in cus:
        lineprog = dwarf.line_program_for_CU(cu)
        if lineprog is None:
            continue
        top = cu.get_top_DIE()
        comp = top.attributes.get("DW_AT_comp_dir")
        comp_dir = _text(comp.value) if comp is not None and \
            isinstance(comp.value, bytes) else ""
        for (file, line), addresses in _covered(lineprog, data, wanted).items():
            name = _file_name(lineprog, file, comp_dir)
            if name is not None and line > 0:
                for a in addresses:
                    found[a] = (name, line)


def _covered(lineprog, data, wanted: list[int]) -> dict[tuple[int, int], list[int]]:
    """The rows of one line program (DWARF 2 to 5) that cover addresses of ``wanted``, as
    (file, line): addresses. pyelftools reads the header and has applied the relocations;
    the opcodes are run here, with no object per row: a kernel's tables have millions of
    rows, of which a few thousand matter."""
    h = lineprog.header
    min_len = h["minimum_instruction_length"]
    max_ops = h.get("maximum_operations_per_instruction", 1) or 1
    line_base, line_range, opcode_base = h["line_base"], h["line_range"], h["opcode_base"]
    lengths = list(h["standard_opcode_lengths"])
    addr_size = h.get("address_size") or lineprog.structs.address_size
    i, end = lineprog.program_start_offset, lineprog.program_end_offset
    out: dict[tuple[int, int], list[int]] = {}
    lo_wanted, hi_wanted = (wanted[0], wanted[-1]) if wanted else (1, 0)

    address, file, line, op_index = 0, 1, 1, 0
    prev = None  # (address, file, line) of the last row, in this sequence

    def row(address, file, line, prev, end_sequence=False):
        if prev is not None and address > prev[0] and address > lo_wanted \
                and prev[0] <= hi_wanted:
            a, b = bisect_left(wanted, prev[0]), bisect_left(wanted, address)
            if a < b:
                out.setdefault((prev[1], prev[2]), []).extend(wanted[a:b])
        return None if end_sequence else (address, file, line)

    while i < end:
        op = data[i]
        i += 1
        if op >= opcode_base:  # special opcode: advance, then a row
            adj = op - opcode_base
            step = adj // line_range
            if max_ops == 1:
                address += min_len * step
            else:
                address += min_len * ((op_index + step) // max_ops)
                op_index = (op_index + step) % max_ops
            line += line_base + adj % line_range
            prev = row(address, file, line, prev)
        elif op == 0:  # extended
            n, i = _uleb(data, i)
            sub, args = data[i], i + 1
            i += n
            if sub == 1:  # end_sequence
                prev = row(address, file, line, prev, True)
                address, file, line, op_index = 0, 1, 1, 0
            elif sub == 2:  # set_address
                size = n - 1 if n > 1 else addr_size
                address = int.from_bytes(data[args:args + size], "little")
                op_index = 0
            # define_file (3), set_discriminator (4), vendor ones: nothing for rows
        elif op == 1:  # copy
            prev = row(address, file, line, prev)
        elif op == 2:  # advance_pc
            step, i = _uleb(data, i)
            if max_ops == 1:
                address += min_len * step
            else:
                address += min_len * ((op_index + step) // max_ops)
                op_index = (op_index + step) % max_ops
        elif op == 3:  # advance_line
            delta, i = _sleb(data, i)
            line += delta
        elif op == 4:  # set_file
            file, i = _uleb(data, i)
        elif op == 8:  # const_add_pc
            step = (255 - opcode_base) // line_range
            if max_ops == 1:
                address += min_len * step
            else:
                address += min_len * ((op_index + step) // max_ops)
                op_index = (op_index + step) % max_ops
        elif op == 9:  # fixed_advance_pc
            address += int.from_bytes(data[i:i + 2], "little")
            op_index = 0
            i += 2
        else:  # set_column, negate_stmt, ... and unknown ones: their operands skipped
            for _ in range(lengths[op - 1] if op - 1 < len(lengths) else 0):
                _, i = _uleb(data, i)
    return out


def _lines(f, section: str, offsets: list[int]) -> dict[int, tuple[str, int]]:
    from elftools.elf.elffile import ELFFile

    head = f.read(64)
    f.seek(0)
    if len(head) >= 18 and head[16] == 1:  # ET_REL: small, read and placed (``_placed``)
        f = io.BytesIO(_placed(f.read()))
    elf = ELFFile(f)  # an image is read from the file, section by section
    if elf.get_section_by_name(".debug_line") is None:
        return {}
    dwarf = elf.get_dwarf_info(relocate_dwarf_sections=True, follow_links=False)
    bases = _section_bases(elf, section) if section else [0]
    addresses = {b + o: o for b in bases for o in offsets}
    wanted = sorted(addresses)
    cus = None
    if not section:  # an image: only the units that hold the addresses, when it says which
        aranges = dwarf.get_aranges()
        if aranges is not None and aranges.entries:
            where = {aranges.cu_offset_at_addr(a) for a in wanted}
            if None not in where:
                cus = [dwarf.get_CU_at(off) for off in sorted(where)]
    found: dict[int, tuple[str, int]] = {}
    _rows_at(dwarf, cus if cus is not None else dwarf.iter_CUs(), wanted, found)
    return {addresses[a]: row for a, row in found.items()}


def rows_pyelftools(path: str, section: str, offsets: list[int]
                    ) -> dict[int, tuple[str, int]]:
    """(file, line) for each offset (sorted), read with pyelftools: the reference that
    ``dwarflines`` is tested against, and what answers where ``dwarflines`` cannot."""
    try:
        with open(path, "rb") as f:
            return _lines(f, section, offsets)
    except Exception:  # noqa: BLE001 - damaged or unknown DWARF: no source lines, no failure
        return {}


def rows(path: str, section: str, offsets: list[int]) -> dict[int, tuple[str, int]]:
    """(file, line) for each offset (sorted): ``dwarflines`` reads the bytes; what it does
    not know (``dwarflines.Unsupported``, or bytes it cannot read) pyelftools reads."""
    try:
        return dwarflines.lines(path, section, offsets)
    except Exception:  # noqa: BLE001 - the reference decides, damaged DWARF included
        return rows_pyelftools(path, section, offsets)


def lookup(path: str, section: str, offsets: list[int], base: str | None = None
           ) -> dict[int, str]:
    """``file:line`` for each offset of ``section`` (or address, with section ``""``) that a
    line table covers; nothing for a file without one, or whose DWARF cannot be read."""
    if not offsets:
        return {}
    rows_ = rows(path, section, sorted(set(offsets)))
    base = base or os.getcwd()
    names = {name: _relative(name, base) for name, _line in set(rows_.values())}
    return {off: f"{names[name]}:{line}" for off, (name, line) in rows_.items()}


def attach(findings: list[Finding], base: str | None = None,
           paths: dict[str, str] | None = None) -> list[Finding]:
    """Findings with ``source`` filled in where the site's file has a line table. ``paths``
    maps a file as findings name it to where it is on disk (a link's temporary image).

    ``site`` is ``(section, offset)`` (section ``""``: an address); a finding about one
    instruction of a replacement has ``(section, offset, site_section, site_offset)``: the
    instruction's line, else (C's asm statements give their replacements no line) the site's."""
    paths = paths or {}
    wanted: dict[tuple[str, str], list[int]] = defaultdict(list)
    for f in findings:
        if f.site is not None and f.source is None:
            for k in range(0, len(f.site) - 1, 2):
                wanted[(f.file, f.site[k])].append(f.site[k + 1])
    if not wanted:
        return findings
    found = {key: lookup(paths.get(key[0], key[0]), key[1], offs, base)
             for key, offs in wanted.items()}
    out = []
    for f in findings:
        if f.site is not None and f.source is None:
            src = next((found.get((f.file, f.site[k]), {}).get(f.site[k + 1])
                        for k in range(0, len(f.site) - 1, 2)
                        if found.get((f.file, f.site[k]), {}).get(f.site[k + 1])), None)
            if src:
                f = replace(f, source=src)
        out.append(f)
    return out


def site_lines(path: str, addresses: list[int], base: str | None = None):
    """A ``lookup(address)`` for a manifest's sites in a linked image, all read in one call."""
    found = lookup(path, "", addresses, base)
    return found.get
