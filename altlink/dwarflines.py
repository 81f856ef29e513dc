"""The rows of DWARF line tables that cover given addresses, read from the file's bytes.

This is the fast path of ``sources``: the ELF section headers, ``.debug_aranges``, each
unit's header and first DIE and its line program header are read with ``struct`` from the
bytes (a linked image through a read-only mapping, so that only the units that hold the
addresses are touched), and the line programs run over the bytes. It gives what
``sources.lookup_pyelftools`` gives, the reference it is tested against: the same units, the
same relocations of a relocatable object (pyelftools' ``R_AARCH64_ABS64``, ``ABS32`` and
``PREL32``, wrapped to the field's width, over the sections pyelftools relocates), the same
file names and the same row at an address. Whatever it does not know (a form, a unit type,
a compressed section, a relocation pyelftools would refuse, bytes that end too soon) raises
``Unsupported``, and ``sources`` asks pyelftools instead.
"""
from __future__ import annotations

import mmap
import os
import struct
from bisect import bisect_left, bisect_right

_BASE_SHIFT = 32  # a relocatable object's section n is placed at n << 32 (as sources does)

# The sections pyelftools reads (and relocates, in a relocatable object) for get_dwarf_info.
_PYELFTOOLS_SECTIONS = (
    ".debug_info", ".debug_aranges", ".debug_abbrev", ".debug_str", ".debug_line",
    ".debug_frame", ".debug_loc", ".debug_ranges", ".debug_pubtypes", ".debug_pubnames",
    ".debug_addr", ".debug_str_offsets", ".debug_line_str", ".debug_loclists",
    ".debug_rnglists", ".debug_sup", ".gnu_debugaltlink", ".debug_types", ".eh_frame")
_RELOCATED = (".debug_info", ".debug_line", ".debug_str_offsets", ".debug_str",
              ".debug_line_str", ".debug_abbrev")
# R_AARCH64_ABS64, ABS32, PREL32: (bytes, pc-relative)
_RELOCS = {257: (8, False), 258: (4, False), 261: (4, True)}

_BIG = 1 << 80  # above every address


class Unsupported(Exception):
    """Something this reader leaves to pyelftools."""


def _uleb(data, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _sleb(data, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if b & 0x40:
                value -= 1 << shift
            return value, i


def _cstring(data, i: int) -> tuple[bytes, int]:
    """The C string at ``i`` and the position after its NUL (bytes, or a memoryview)."""
    if i > len(data):
        raise Unsupported("string outside its section")
    if isinstance(data, memoryview):
        j = i
        while True:
            chunk = bytes(data[j:j + 256])
            k = chunk.find(0)
            if k >= 0:
                end = j + k
                break
            if len(chunk) < 256:
                raise Unsupported("unterminated string")
            j += 256
    else:
        end = data.find(b"\0", i)
        if end < 0:
            raise Unsupported("unterminated string")
    return bytes(data[i:end]), end + 1


class _Elf:
    """The section headers of a little-endian ELF64 file, and its sections' bytes."""

    def __init__(self, data):
        if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise Unsupported("not a little-endian ELF64 file")
        self.data = data
        self.type, = struct.unpack_from("<H", data, 16)
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        if shoff == 0 or shnum == 0 or shentsize != 64 or shoff + 64 * shnum > len(data):
            raise Unsupported("section headers")
        self.headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + 64 * i)
                        for i in range(shnum)]
        if shstrndx >= shnum:
            raise Unsupported("section names")
        names = self._raw(shstrndx)
        self.names = [_cstring(names, h[0])[0].decode("utf-8", "replace")
                      for h in self.headers]
        self.index = {name: i for i, name in enumerate(self.names)}  # the last of a name
        for name in self.names:
            if name.startswith(".zdebug"):
                raise Unsupported("compressed DWARF")

    def _raw(self, i: int):
        _name, sh_type, _flags, _addr, off, size = self.headers[i][:6]
        if sh_type == 8:  # SHT_NOBITS
            return b""
        if off + size > len(self.data):
            raise Unsupported("section past the end of the file")
        return self.data[off:off + size]

    def section(self, name: str, copy: bool = True):
        """The bytes of the (last) section named ``name``; of a mapped file, without
        ``copy``, a view of them."""
        i = self.index.get(name)
        if i is None:
            return None
        if self.headers[i][2] & 0x800:  # SHF_COMPRESSED
            raise Unsupported("compressed section")
        if copy or not isinstance(self.data, mmap.mmap):
            return self._raw(i)
        _name, sh_type, _flags, _addr, off, size = self.headers[i][:6]
        if sh_type == 8 or off + size > len(self.data):
            raise Unsupported("section outside the file")
        return memoryview(self.data)[off:off + size]


def _relocated(elf: _Elf) -> dict[str, bytes]:
    """The debug sections of a relocatable object that this reader uses, relocated as
    pyelftools relocates them once ``sources._placed`` has moved the symbols; every other
    section pyelftools would relocate is checked to be one it accepts."""
    if struct.unpack_from("<H", elf.data, 18)[0] != 183:  # EM_AARCH64: its relocations
        raise Unsupported("a relocatable object for another machine")
    alloc = {i for i, h in enumerate(elf.headers) if h[2] & 2}  # SHF_ALLOC
    symvalues: dict[int, list[int]] = {}
    out: dict[str, bytes] = {}
    for name in _PYELFTOOLS_SECTIONS:
        target = elf.index.get(name)
        if target is None:
            continue
        data = elf.section(name)
        rel = next((i for i, n in enumerate(elf.names)
                    if n in (".rel" + name, ".rela" + name) and elf.headers[i][1] in (4, 9)),
                   None)
        if rel is None:
            if name in _RELOCATED:
                out[name] = data
            continue
        _n, sh_type, _f, _a, _o, _s, link, _i, _al, entsize = elf.headers[rel]
        if sh_type != 4 or entsize != 24 or link >= len(elf.headers) or \
                elf.headers[link][1] not in (2, 11) or elf.headers[link][9] != 24:
            raise Unsupported("relocations pyelftools reads otherwise")
        values = symvalues.get(link)
        if values is None:
            raw = elf._raw(link)
            placed = elf.headers[link][1] == 2  # sources._placed moves SHT_SYMTAB's only
            values = []
            for pos in range(0, len(raw) - len(raw) % 24, 24):
                shndx, value = struct.unpack_from("<HQ", raw, pos + 6)
                values.append((shndx << _BASE_SHIFT) + value if placed and shndx in alloc
                              else value)
            symvalues[link] = values
        relocs = elf._raw(rel)
        patched = bytearray(data)
        size = len(patched)
        for r_offset, r_info, r_addend in struct.iter_unpack("<QQq", relocs[:len(relocs) // 24 * 24]):
            sym, rtype = r_info >> 32, r_info & 0xFFFFFFFF
            recipe = _RELOCS.get(rtype)
            if recipe is None or sym >= len(values) or r_offset + recipe[0] > size:
                raise Unsupported("a relocation pyelftools does not apply")
            width, pcrel = recipe
            value = values[sym] + r_addend - (r_offset if pcrel else 0)
            if width == 8:
                struct.pack_into("<Q", patched, r_offset, value % (1 << 64))
            else:
                struct.pack_into("<I", patched, r_offset, value % (1 << 32))
        if name in _RELOCATED:
            out[name] = bytes(patched)
    return out


# The size of each form's value: an int, or "u" (a ULEB128), "s" (SLEB128), "o" (the
# offset size), "a" (the address size), "r" (ref_addr), "z" (a C string), "b1"/"b2"/"b4"/"bu"
# (a block with a length of that size).
_FORMS = {
    0x01: "a", 0x03: "b2", 0x04: "b4", 0x05: 2, 0x06: 4, 0x07: 8, 0x08: "z", 0x09: "bu",
    0x0A: "b1", 0x0B: 1, 0x0C: 1, 0x0D: "s", 0x0E: "o", 0x0F: "u", 0x10: "r", 0x11: 1,
    0x12: 2, 0x13: 4, 0x14: 8, 0x15: "u", 0x17: "o", 0x18: "bu", 0x19: 0, 0x1A: "u",
    0x1B: "u", 0x1C: 4, 0x1D: "o", 0x1E: 16, 0x1F: "o", 0x20: 8, 0x21: 0, 0x22: "u",
    0x23: "u", 0x24: 8, 0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4, 0x29: 1, 0x2A: 2, 0x2B: 3,
    0x2C: 4, 0x1F01: "u", 0x1F02: "u", 0x1F20: "o", 0x1F21: "o",
}
_STRX = (0x1A, 0x25, 0x26, 0x27, 0x28)


def _value(data, i: int, form: int, offsize: int, addrsize: int, version: int):
    """(value, next position) of one attribute value: an int, or bytes for a string."""
    kind = _FORMS.get(form)
    if kind is None:
        raise Unsupported(f"form {form:#x}")
    if kind.__class__ is int:
        return int.from_bytes(data[i:i + kind], "little"), i + kind
    if kind == "u":
        return _uleb(data, i)
    if kind == "s":
        return _sleb(data, i)
    if kind == "z":
        return _cstring(data, i)
    if kind in ("o", "a", "r"):
        n = offsize if kind == "o" else addrsize if kind == "a" else \
            (addrsize if version <= 2 else offsize)
        return int.from_bytes(data[i:i + n], "little"), i + n
    if kind == "bu":
        n, i = _uleb(data, i)
    else:
        w = int(kind[1])
        n, i = int.from_bytes(data[i:i + w], "little"), i + w
    return None, i + n


class _Dwarf:
    """The sections one lookup reads, and how to find a unit's line program."""

    def __init__(self, elf: _Elf, sections: dict[str, object]):
        self.info = sections.get(".debug_info")
        self.abbrev = sections.get(".debug_abbrev")
        self.line = sections.get(".debug_line")
        self.str = sections.get(".debug_str")
        self.line_str = sections.get(".debug_line_str")
        self.str_offsets = sections.get(".debug_str_offsets")

    def _string(self, table, offset: int) -> bytes:
        if table is None or offset >= len(table):
            raise Unsupported("string outside its table")
        return _cstring(table, offset)[0]

    def units(self):
        """The offset of each unit in .debug_info, in order."""
        info, off = self.info, 0
        while off < len(info):
            length, = struct.unpack_from("<I", info, off)
            if length == 0xFFFFFFFF:
                length, = struct.unpack_from("<Q", info, off + 4)
                nxt = off + 12 + length
            else:
                nxt = off + 4 + length
            yield off
            off = nxt

    def unit(self, off: int):
        """(stmt_list, comp_dir) of the unit at ``off``: stmt_list None without a line table."""
        info = self.info
        length, = struct.unpack_from("<I", info, off)
        offsize, i = (8, off + 12) if length == 0xFFFFFFFF else (4, off + 4)
        version, = struct.unpack_from("<H", info, i)
        i += 2
        if not 2 <= version <= 5:
            raise Unsupported(f"DWARF version {version}")
        if version >= 5:
            unit_type, addrsize = info[i], info[i + 1]
            if unit_type not in (1, 3):  # DW_UT_compile, DW_UT_partial
                raise Unsupported(f"unit type {unit_type}")
            abbrev_off = int.from_bytes(info[i + 2:i + 2 + offsize], "little")
            i += 2 + offsize
        else:
            abbrev_off = int.from_bytes(info[i:i + offsize], "little")
            addrsize = info[i + offsize]
            i += offsize + 1
        code, i = _uleb(info, i)
        if code == 0:
            return None, ""
        specs = self._abbrev(abbrev_off, code)
        attrs: dict[int, tuple[int, object]] = {}
        for name, form, implicit in specs:
            while form == 0x16:  # DW_FORM_indirect
                form, i = _uleb(info, i)
            if form == 0x21:
                value = implicit
            else:
                value, i = _value(info, i, form, offsize, addrsize, version)
            attrs[name] = (form, value)
        stmt = attrs.get(0x10)  # DW_AT_stmt_list
        if stmt is None:
            return None, ""
        if stmt[0] not in (0x05, 0x06, 0x07, 0x0B, 0x0F, 0x17):
            raise Unsupported("stmt_list form")
        comp = attrs.get(0x1B)  # DW_AT_comp_dir
        comp_dir = ""
        if comp is not None:
            form, value = comp
            if form == 0x08:
                comp_dir = value
            elif form == 0x0E:
                comp_dir = self._string(self.str, value)
            elif form == 0x1F:
                comp_dir = self._string(self.line_str, value)
            elif form in _STRX:
                base = attrs.get(0x72)  # DW_AT_str_offsets_base
                if base is None or self.str_offsets is None:
                    raise Unsupported("strx without str_offsets_base")
                at = base[1] + value * offsize
                if at + offsize > len(self.str_offsets):
                    raise Unsupported("strx")
                comp_dir = self._string(
                    self.str, int.from_bytes(self.str_offsets[at:at + offsize], "little"))
            else:
                raise Unsupported("comp_dir form")
            comp_dir = comp_dir.decode("utf-8", "replace")
        return stmt[1], comp_dir

    def _abbrev(self, off: int, code: int) -> list[tuple[int, int, int]]:
        """The attributes (name, form, implicit constant) of abbreviation ``code`` of the
        table at ``off``: the first of that code (a unit's own DIE's is often the last)."""
        data = self.abbrev
        i = off
        while True:
            c, i = _uleb(data, i)
            if c == 0:
                raise Unsupported("abbreviation code not found")
            if c == code:
                break
            while data[i] & 0x80:  # tag
                i += 1
            i += 2  # its last byte, and children
            while True:  # (name, form) pairs up to (0, 0); implicit_const has a value
                b = data[i]
                if b & 0x80:
                    while data[i] & 0x80:
                        i += 1
                i += 1
                f = data[i]
                if f & 0x80:
                    f, i = _uleb(data, i)
                else:
                    i += 1
                    if f == 0x21:
                        while data[i] & 0x80:
                            i += 1
                        i += 1
                    elif f == 0 and b == 0:
                        break
        _tag, i = _uleb(data, i)
        i += 1  # children
        specs = []
        while True:
            name, i = _uleb(data, i)
            form, i = _uleb(data, i)
            if name == 0 and form == 0:
                return specs
            implicit = None
            if form == 0x21:
                implicit, i = _sleb(data, i)
            specs.append((name, form, implicit))

    def program(self, off: int):
        """The header of the line program at ``off``: (version, dirs, files, params, start,
        end), files as (name, dir_index)."""
        data = self.line
        length, = struct.unpack_from("<I", data, off)
        if length == 0xFFFFFFFF:
            length, = struct.unpack_from("<Q", data, off + 4)
            offsize, i = 8, off + 12
        else:
            offsize, i = 4, off + 4
        end = i + length
        version, = struct.unpack_from("<H", data, i)
        i += 2
        addrsize = None
        if version >= 5:
            addrsize = data[i]
            i += 2
        i += offsize  # header_length: pyelftools starts the program where the header ends
        min_len = data[i]
        i += 1
        max_ops = 1
        if version >= 4:
            max_ops = data[i]
            i += 1
        line_base = data[i + 1] - 256 if data[i + 1] > 127 else data[i + 1]
        line_range, opcode_base = data[i + 2], data[i + 3]
        i += 4
        lengths = list(data[i:i + opcode_base - 1])
        if len(lengths) != max(opcode_base - 1, 0):
            raise Unsupported("line program header")
        i += max(opcode_base - 1, 0)
        if version >= 5:
            dirs, i = self._entries(data, i, offsize)
            files, i = self._entries(data, i, offsize)
            if not dirs or not files:
                raise Unsupported("empty v5 tables")
            try:
                dirs = [d[1] for d in dirs]
                files = [(f[1], f[2]) for f in files]
            except KeyError:
                raise Unsupported("v5 entries without path or directory") from None
        else:
            dirs = []
            while True:
                name, i = _cstring(data, i)
                if not name:
                    break
                dirs.append(name)
            files = []
            while True:
                name, i = _cstring(data, i)
                if not name:
                    break
                d, i = _uleb(data, i)
                _, i = _uleb(data, i)
                _, i = _uleb(data, i)
                files.append((name, d))
        params = (min_len, max_ops or 1, line_base, line_range, opcode_base, lengths, addrsize)
        return version, dirs, files, params, i, end

    def _entries(self, data, i: int, offsize: int):
        """A DWARF 5 directory or file table: a dict per entry, content type: value; a
        path as (form, value), its string read only when a row names it (``name``)."""
        count = data[i]
        i += 1
        formats = []
        for _ in range(count):
            ctype, i = _uleb(data, i)
            form, i = _uleb(data, i)
            if ctype == 1 and form not in (0x08, 0x0E, 0x1F):
                raise Unsupported("path form")
            if form not in (0x08, 0x0E, 0x1F, 0x05, 0x06, 0x07, 0x0B, 0x0F, 0x0D, 0x1E,
                            0x09, 0x0A, 0x03, 0x04):
                raise Unsupported(f"line table form {form:#x}")
            formats.append((ctype, form))
        n, i = _uleb(data, i)
        if n and (not formats or n > len(data) - i):  # each entry takes a byte at least
            raise Unsupported("directory or file count")
        out = []
        for _ in range(n):
            entry = {}
            for ctype, form in formats:
                if form == 0x1F or form == 0x0E:  # line_strp, strp
                    value = (form, int.from_bytes(data[i:i + offsize], "little"))
                    i += offsize
                elif form == 0x0F:  # udata
                    value = data[i]
                    if value < 0x80:
                        i += 1
                    else:
                        value, i = _uleb(data, i)
                elif form == 0x0B:  # data1
                    value = data[i]
                    i += 1
                elif form == 0x1E:  # data16: an MD5
                    value = None
                    i += 16
                else:
                    value, i = _value(data, i, form, offsize, 8, 5)
                    if form == 0x08:
                        value = (form, value)
                entry[ctype] = value
            out.append(entry)
        return out, i

    def name(self, path) -> bytes:
        """The string of a path of a DWARF 5 table, (form, value)."""
        form, value = path
        if form == 0x08:
            return value
        return self._string(self.str if form == 0x0E else self.line_str, value)


_TABLES: dict[tuple, tuple] = {}


def _tables(min_len: int, line_base: int, line_range: int, opcode_base: int, lengths):
    """What each special opcode adds to the address and to the line; what const_add_pc adds;
    the number of operands of each standard opcode."""
    key = (min_len, line_base, line_range, opcode_base, tuple(lengths))
    t = _TABLES.get(key)
    if t is None:
        adv = [0] * 256
        ladv = [0] * 256
        for op in range(opcode_base, 256):
            adj = op - opcode_base
            adv[op] = min_len * (adj // line_range)
            ladv[op] = line_base + adj % line_range
        nops = [lengths[op - 1] if op - 1 < len(lengths) else 0 for op in range(256)]
        t = _TABLES[key] = (adv, ladv, min_len * ((255 - opcode_base) // line_range), nops)
    return t


def _covered(data, start: int, end: int, params, wanted: list[int]
             ) -> dict[tuple[int, int], list[int]]:
    """The rows of one line program that cover addresses of ``wanted`` (sorted), as
    (file, line): addresses. A row covers the addresses from its own up to the next row's
    in its sequence; the addresses of a key are in the order the rows came."""
    min_len, max_ops, line_base, line_range, opcode_base, lengths, addr_size = params
    if line_range == 0 or max_ops != 1:  # VLIW's op_index: not AArch64
        raise Unsupported("line_range 0, or several operations per instruction")
    adv, ladv, const_add, nops = _tables(min_len, line_base, line_range, opcode_base, lengths)
    if opcode_base > 5 and nops[5] != 1 or opcode_base > 6 and nops[6] != 0:
        raise Unsupported("set_column or negate_stmt with other operands")
    out: dict[tuple[int, int], list[int]] = {}
    nwanted = len(wanted)
    uleb = _uleb

    address, file, line = 0, 1, 1
    has_prev = False
    pa = pf = pl = 0  # the last row of this sequence
    nw = -1  # the first wanted address at or after pa; -1: look again at the next row
    i = start
    # The opcodes in the order of how often GCC's and clang's tables use them.
    while i < end:
        op = data[i]
        i += 1
        if op >= opcode_base:  # special opcode: advance, then a row
            address += adv[op]
            line += ladv[op]
        elif op == 5:  # set_column
            while data[i] & 0x80:
                i += 1
            i += 1
            continue
        elif op == 1:  # copy: a row
            pass
        elif op == 6:  # negate_stmt
            continue
        elif op == 3:  # advance_line
            b = data[i]
            if b < 0x40:
                line += b
                i += 1
            elif b < 0x80:
                line += b - 0x80
                i += 1
            elif data[i + 1] < 0x80:
                b2 = data[i + 1]
                line += (b & 0x7F) | (b2 << 7) if b2 < 0x40 else \
                    ((b & 0x7F) | (b2 << 7)) - (1 << 14)
                i += 2
            else:
                delta, i = _sleb(data, i)
                line += delta
            continue
        elif op == 4:  # set_file
            b = data[i]
            if b < 0x80:
                file = b
                i += 1
            else:
                file, i = uleb(data, i)
            continue
        elif op == 0:  # extended
            n, i = uleb(data, i)
            sub, args = data[i], i + 1
            i += n
            if sub == 1:  # end_sequence: a row that ends the sequence
                if nw < address and has_prev and address > pa:
                    a, b = bisect_left(wanted, pa), bisect_left(wanted, address)
                    if a < b:
                        out.setdefault((pf, pl), []).extend(wanted[a:b])
                has_prev = False
                nw = -1
                address, file, line = 0, 1, 1
            elif sub == 2:  # set_address
                size = n - 1 if n > 1 else addr_size
                if size is None:
                    raise Unsupported("set_address size")
                address = int.from_bytes(data[args:args + size], "little")
                nw = -1
            continue
        elif op == 2:  # advance_pc
            b = data[i]
            if b < 0x80:
                address += min_len * b
                i += 1
            else:
                step, i = uleb(data, i)
                address += min_len * step
            continue
        elif op == 8:  # const_add_pc
            address += const_add
            continue
        elif op == 9:  # fixed_advance_pc
            address += data[i] | data[i + 1] << 8
            i += 2
            continue
        else:  # prologue_end, set_isa, ... and unknown ones: their operands skipped
            for _ in range(nops[op]):
                while data[i] & 0x80:
                    i += 1
                i += 1
            continue
        # A row at (address, file, line): the rows before it that cover wanted addresses
        # are looked at only when the next wanted address is passed (nw), or after a
        # set_address (nw -1).
        if nw < address:
            if has_prev and address > pa:
                a, b = bisect_left(wanted, pa), bisect_left(wanted, address)
                if a < b:
                    out.setdefault((pf, pl), []).extend(wanted[a:b])
            j = bisect_left(wanted, address)
            nw = wanted[j] if j < nwanted else _BIG
            has_prev = True
        pa, pf, pl = address, file, line
    return out


def _file_name(dwarf: _Dwarf, version: int, dirs, files, index: int, comp_dir: str
               ) -> str | None:
    """The path of a line table's file ``index`` (1-based before DWARF 5, 0-based from 5)."""
    v5 = version >= 5
    i = index if v5 else index - 1
    if not 0 <= i < len(files):
        return None
    name, d = files[i]
    if not isinstance(d, int):
        raise Unsupported("file entry")
    if v5:
        name = dwarf.name(name)
        folder = _text(dwarf.name(dirs[d])) if 0 <= d < len(dirs) else ""
    else:
        folder = _text(dirs[d - 1]) if 0 < d <= len(dirs) else ""
    return os.path.join(comp_dir, folder, _text(name))


def _text(name) -> str:
    if not isinstance(name, bytes):
        raise Unsupported("a name that is not a string")
    return name.decode("utf-8", "replace")


def lines(path: str, section: str, offsets: list[int]) -> dict[int, tuple[str, int]]:
    """(file, line) for each offset of ``section`` (an address, with section ``""``) that
    a line table covers, as ``sources.lookup_pyelftools`` finds it; ``Unsupported`` (or an
    error from bytes that end too soon) where this reader cannot say."""
    with open(path, "rb") as f:
        head = f.read(64)
        f.seek(0)
        if len(head) >= 18 and head[16] == 1:  # ET_REL: small, read whole
            data = f.read()
        else:  # an image: mapped, closed when the last view of it goes
            try:
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file
                raise Unsupported("empty file") from None
    return _lines(data, section, offsets)


def _lines(data, section: str, offsets: list[int]) -> dict[int, tuple[str, int]]:
    elf = _Elf(data)
    if ".debug_line" not in elf.index:
        return {}
    if elf.type == 1:
        sections = _relocated(elf)
    else:
        for name in _PYELFTOOLS_SECTIONS:
            if ".rel" + name in elf.index or ".rela" + name in elf.index:
                raise Unsupported("an image with relocations for its DWARF")
        # The large ones are read where the units are; the line programs run over bytes.
        sections = {name: elf.section(name, copy=name not in (".debug_info", ".debug_abbrev"))
                    for name in _RELOCATED}
    if sections.get(".debug_info") is None:
        raise Unsupported("no .debug_info")
    dwarf = _Dwarf(elf, sections)
    if section:
        bases = [i << _BASE_SHIFT for i, n in enumerate(elf.names) if n == section]
    else:
        bases = [0]
    addresses = {b + o: o for b in bases for o in offsets}
    wanted = sorted(addresses)
    units = None
    if not section:  # an image: only the units that hold the addresses, when it says which
        ranges = _aranges(elf.section(".debug_aranges"))
        if ranges:
            keys = [r[0] for r in ranges]
            where = set()
            for a in wanted:
                begin, length, unit = ranges[bisect_right(keys, a) - 1]
                where.add(unit if begin <= a < begin + length else None)
            if None not in where:
                units = sorted(where)
    found: dict[int, tuple[str, int]] = {}
    line_data = dwarf.line
    for off in units if units is not None else dwarf.units():
        stmt, comp_dir = dwarf.unit(off)
        if stmt is None:
            continue
        if line_data is None:
            raise Unsupported("no .debug_line")
        version, dirs, files, params, start, end = dwarf.program(stmt)
        for (file, line), where_ in _covered(line_data, start, end, params, wanted).items():
            name = _file_name(dwarf, version, dirs, files, file, comp_dir)
            if name is not None and line > 0:
                for a in where_:
                    found[a] = (name, line)
    return {addresses[a]: row for a, row in found.items()}


def _aranges(data) -> list[tuple[int, int, int]]:
    """.debug_aranges as (begin, length, unit offset), sorted by begin as pyelftools sorts
    them (a stable sort: among equal begins, the later set last)."""
    if not data:
        return []
    out = []
    off = 0
    while off < len(data):
        length, = struct.unpack_from("<I", data, off)
        if length == 0xFFFFFFFF:
            length, = struct.unpack_from("<Q", data, off + 4)
            offsize, i, nxt = 8, off + 12, off + 12 + length
        else:
            offsize, i, nxt = 4, off + 4, off + 4 + length
        i += 2  # version
        unit = int.from_bytes(data[i:i + offsize], "little")
        i += offsize
        addrsize, segsize = data[i], data[i + 1]
        i += 2
        if segsize != 0 or addrsize not in (4, 8):
            raise Unsupported("aranges with segments")
        tuple_size = 2 * addrsize
        i = -(-i // tuple_size) * tuple_size
        fmt = "<QQ" if addrsize == 8 else "<II"
        while True:
            if i + tuple_size > len(data):
                raise Unsupported("aranges past the end")
            begin, size = struct.unpack_from(fmt, data, i)
            i += tuple_size
            if begin == 0 and size == 0:
                break
            out.append((begin, size, unit))
        off = nxt
    out.sort(key=lambda r: r[0])
    return out
