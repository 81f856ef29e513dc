"""Mutations of ELF files, manifests (JSON) and compact manifests.

The ELF mutators know the layout of the seed they mutate (read here with ``struct``,
independently of altlink's reader): they set header fields, section and program header fields,
relocation types and symbol indexes in ``.rela.altinstructions``, symbol table fields and
``.altinstructions`` entries to values picked to break assumptions (zero, one, the file size and
its neighbours, powers of two, all ones, values past the end), next to plain bit flips, byte
sets, splices and truncations. The JSON mutators walk the manifest to a random node and delete
it, retype it, or set it to a wild value; the text mutators break the JSON itself.

Every mutator takes a ``random.Random`` and returns a one-line description of what it did, so
that a case can be named and reproduced from its seed and index.
"""
from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
PHDR = struct.Struct("<IIQQQQQQ")
SYM = struct.Struct("<IBBHQQ")
RELA = struct.Struct("<QQq")
ALT = struct.Struct("<iiHBB")

# Field name -> (offset in the struct, size in bytes).
EHDR_FIELDS = {"e_type": (16, 2), "e_machine": (18, 2), "e_version": (20, 4),
               "e_entry": (24, 8), "e_phoff": (32, 8), "e_shoff": (40, 8), "e_flags": (48, 4),
               "e_ehsize": (52, 2), "e_phentsize": (54, 2), "e_phnum": (56, 2),
               "e_shentsize": (58, 2), "e_shnum": (60, 2), "e_shstrndx": (62, 2),
               "ei_class": (4, 1), "ei_data": (5, 1)}
SHDR_FIELDS = {"sh_name": (0, 4), "sh_type": (4, 4), "sh_flags": (8, 8), "sh_addr": (16, 8),
               "sh_offset": (24, 8), "sh_size": (32, 8), "sh_link": (40, 4), "sh_info": (44, 4),
               "sh_addralign": (48, 8), "sh_entsize": (56, 8)}
PHDR_FIELDS = {"p_type": (0, 4), "p_flags": (4, 4), "p_offset": (8, 8), "p_vaddr": (16, 8),
               "p_paddr": (24, 8), "p_filesz": (32, 8), "p_memsz": (40, 8), "p_align": (48, 8)}
SYM_FIELDS = {"st_name": (0, 4), "st_info": (4, 1), "st_other": (5, 1), "st_shndx": (6, 2),
              "st_value": (8, 8), "st_size": (16, 8)}
RELA_FIELDS = {"r_offset": (0, 8), "r_type": (8, 4), "r_sym": (12, 4), "r_addend": (16, 8)}
ALT_FIELDS = {"orig_offset": (0, 4), "alt_offset": (4, 4), "cap": (8, 2), "orig_len": (10, 1),
              "alt_len": (11, 1)}

SHT_SYMTAB, SHT_RELA, SHT_NOBITS, SHT_REL, SHT_SYMTAB_SHNDX = 2, 4, 8, 9, 18
SECTION_TYPES = (0, 1, 2, 3, 4, 8, 9, 11, 17, 18, 19, 0x40000014, 0x6FFFFFFF, 0xFFFFFFFF)
RELOC_TYPES = (0, 1, 257, 258, 260, 261, 262, 273, 275, 282, 283, 1024, 1027, 0xFFFF,
               0xFFFFFFFF)
SHNDX_VALUES = (0, 1, 2, 0xFEFF, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF)


@dataclass
class Layout:
    """Where the interesting structures of a seed ELF are (file offsets)."""

    size: int
    shoff: int
    shnum: int
    phoff: int
    phnum: int
    sections: list[tuple[str, int, int, int, int, int]]  # name, hdr off, type, off, size, entsize

    def named(self, name: str) -> list[tuple[str, int, int, int, int, int]]:
        return [s for s in self.sections if s[0] == name]

    def of_type(self, *types: int) -> list[tuple[str, int, int, int, int, int]]:
        return [s for s in self.sections if s[2] in types]


def layout(data: bytes) -> Layout | None:
    """The seed's layout, or None where it is not a little-endian ELF64 this can read."""
    if len(data) < EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    f = EHDR.unpack_from(data, 0)
    phoff, shoff, phnum, shnum, shstrndx = f[5], f[6], f[10], f[12], f[13]
    secs = []
    raw = []
    if shnum == 0 and shoff and shoff + SHDR.size <= len(data):  # extended numbering
        shnum = SHDR.unpack_from(data, shoff)[5]
        if shstrndx == 0xFFFF:
            shstrndx = SHDR.unpack_from(data, shoff)[6]
    if shoff and shoff + shnum * SHDR.size <= len(data):
        raw = [SHDR.unpack_from(data, shoff + i * SHDR.size) for i in range(shnum)]
    names = b""
    if 0 < shstrndx < len(raw):
        s = raw[shstrndx]
        names = data[s[4]:s[4] + s[5]]
    for i, s in enumerate(raw):
        end = names.find(b"\0", s[0])
        name = names[s[0]:end if end >= 0 else None].decode("latin-1") if s[0] < len(names) \
            else ""
        secs.append((name, shoff + i * SHDR.size, s[1], s[4], s[5], s[9]))
    if not (phoff and phoff + phnum * PHDR.size <= len(data)):
        phnum = 0
    return Layout(len(data), shoff, len(raw), phoff, phnum, secs)


def interesting(rng: random.Random, size: int, cur: int, file_size: int) -> int:
    """A value for a field of ``size`` bytes (little-endian, wrapped to the field)."""
    bits = 8 * size
    top = (1 << bits) - 1
    pick = rng.randrange(12)
    if pick == 0:
        v = rng.choice((0, 1, 2, 3, 4, 8, 12, 16, 24, 64))
    elif pick == 1:
        v = rng.choice((top, top >> 1, (top >> 1) + 1, top - 1, top - 11))
    elif pick == 2:
        v = file_size + rng.choice((-13, -12, -8, -4, -1, 0, 1, 4, 12, 4096))
    elif pick == 3:
        v = 1 << rng.randrange(bits)
    elif pick == 4:
        v = cur + rng.choice((-1, 1, -4, 4, -12, 12, 1 << 12, -(1 << 12), 1 << 20, 1 << 31))
    elif pick == 5:
        v = cur ^ (1 << rng.randrange(bits))
    elif pick == 6:
        v = rng.choice((0x7F, 0x80, 0xFF, 0x100, 0xFFF, 0x1000, 0xFFFF, 0x10000, 0x7FFFFFFF,
                        0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 40, 1 << 48, 1 << 63))
    elif pick == 7:
        v = rng.randrange(top + 1)
    elif pick == 8:
        v = cur * rng.choice((2, 16, 4096, 1 << 20))
    elif pick == 9:
        v = file_size // rng.choice((2, 3, 12, 24, 64))
    elif pick == 10:
        v = -cur
    else:
        v = rng.randrange(min(file_size + 64, top + 1))
    return v & top


def poke(buf: bytearray, off: int, size: int, value: int) -> None:
    if 0 <= off and off + size <= len(buf):
        buf[off:off + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")


def peek(buf: bytearray, off: int, size: int) -> int:
    if 0 <= off and off + size <= len(buf):
        return int.from_bytes(buf[off:off + size], "little")
    return 0


def _set_field(rng, buf, lay, base: int, fields: dict, what: str, only=None) -> str:
    name = rng.choice(only or sorted(fields))
    off, size = fields[name]
    cur = peek(buf, base + off, size)
    v = interesting(rng, size, cur, lay.size)
    poke(buf, base + off, size, v)
    return f"{what}.{name}={v:#x}"


# -- ELF mutators: each (rng, buf, layout) -> description ---------------------------------------

def m_bitflip(rng, buf, lay) -> str:
    n = rng.choice((1, 1, 2, 4, 16))
    offs = []
    for _ in range(n):
        off = rng.randrange(len(buf))
        buf[off] ^= 1 << rng.randrange(8)
        offs.append(off)
    return f"bitflip@{','.join(hex(o) for o in offs[:4])}"


def m_byteset(rng, buf, lay) -> str:
    off = rng.randrange(len(buf))
    n = rng.choice((1, 2, 4, 8))
    val = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    for i in range(off, min(off + n, len(buf))):
        buf[i] = val
    return f"byteset@{off:#x}x{n}={val:#x}"


def m_splice(rng, buf, lay) -> str:
    n = rng.choice((4, 8, 12, 16, 64, 256))
    src = rng.randrange(len(buf))
    dst = rng.randrange(len(buf))
    chunk = bytes(buf[src:src + n])
    buf[dst:dst + len(chunk)] = chunk
    return f"splice {src:#x}->{dst:#x}x{len(chunk)}"


def m_ehdr(rng, buf, lay) -> str:
    return _set_field(rng, buf, lay, 0, EHDR_FIELDS, "ehdr")


def m_shnum_extended(rng, buf, lay) -> str:
    """e_shnum 0 / e_shstrndx SHN_XINDEX: the real values come from section 0."""
    if not lay.shoff:
        return m_ehdr(rng, buf, lay)
    poke(buf, 60, 2, 0)
    n = rng.choice((lay.shnum, 1 << 16, 1 << 20, (1 << 20) + 1, 1 << 32, (1 << 64) - 1))
    poke(buf, lay.shoff + 32, 8, n)
    if rng.random() < 0.5:
        poke(buf, 62, 2, 0xFFFF)
        poke(buf, lay.shoff + 44, 4, rng.choice((0, 1, lay.shnum - 1, 0xFFFFFFFF)))
    return f"e_shnum=0 section0.sh_size={n:#x}"


def _pick_section(rng, lay, prefer=(".altinstructions", ".rela.altinstructions", ".symtab",
                                    ".strtab", ".altinstr_replacement", ".text",
                                    ".shstrtab")):
    if not lay.sections:
        return None
    if rng.random() < 0.7:
        cands = [s for s in lay.sections if s[0] in prefer]
        if cands:
            return rng.choice(cands)
    return rng.choice(lay.sections)


def m_shdr(rng, buf, lay) -> str:
    s = _pick_section(rng, lay)
    if s is None:
        return m_ehdr(rng, buf, lay)
    if rng.random() < 0.15:
        v = rng.choice(SECTION_TYPES)
        poke(buf, s[1] + 4, 4, v)
        return f"{s[0]}.sh_type={v:#x}"
    return _set_field(rng, buf, lay, s[1], SHDR_FIELDS, s[0] or "section")


def m_huge_table(rng, buf, lay) -> str:
    """``.altinstructions`` (or a relocation or symbol table) claims a wild size."""
    cands = (lay.named(".altinstructions") + lay.named(".rela.altinstructions")
             + lay.of_type(SHT_SYMTAB))
    if not cands:
        return m_shdr(rng, buf, lay)
    s = rng.choice(cands)
    v = rng.choice((1 << 32, (1 << 32) - 4, 12 * (1 << 28), (1 << 64) - 12, lay.size,
                    lay.size - s[3], lay.size - s[3] + 12, s[4] + 12, s[4] * 1000))
    poke(buf, s[1] + 32, 8, v)
    return f"{s[0]}.sh_size={v:#x}"


def m_phdr(rng, buf, lay) -> str:
    if not lay.phnum:
        return m_ehdr(rng, buf, lay)
    i = rng.randrange(lay.phnum)
    return _set_field(rng, buf, lay, lay.phoff + i * PHDR.size, PHDR_FIELDS, f"phdr{i}")


def _entries(lay, sec, size) -> int:
    return max(0, min(sec[4], lay.size - sec[3]) // size) if sec[3] < lay.size else 0


def m_rela(rng, buf, lay) -> str:
    """Bad relocation types, symbol indexes, offsets and addends (``.rela.altinstructions``
    first)."""
    cands = lay.named(".rela.altinstructions") or lay.of_type(SHT_RELA)
    cands = [s for s in cands if _entries(lay, s, RELA.size)]
    if not cands or rng.random() < 0.1:
        cands = [s for s in lay.of_type(SHT_RELA) if _entries(lay, s, RELA.size)]
    if not cands:
        return m_shdr(rng, buf, lay)
    s = rng.choice(cands)
    i = rng.randrange(_entries(lay, s, RELA.size))
    base = s[3] + i * RELA.size
    what = f"{s[0]}[{i}]"
    r = rng.random()
    if r < 0.3:
        v = rng.choice(RELOC_TYPES)
        poke(buf, base + 8, 4, v)
        return f"{what}.r_type={v}"
    if r < 0.6:
        nsyms = sum(_entries(lay, t, SYM.size) for t in lay.of_type(SHT_SYMTAB))
        v = rng.choice((0, nsyms - 1, nsyms, nsyms + 1, 0xFFFFFF, 0xFFFFFFFF, 1 << 31))
        poke(buf, base + 12, 4, v)
        return f"{what}.r_sym={v:#x}"
    return _set_field(rng, buf, lay, base, RELA_FIELDS, what, ["r_offset", "r_addend"])


def m_symtab(rng, buf, lay) -> str:
    cands = [s for s in lay.of_type(SHT_SYMTAB) if _entries(lay, s, SYM.size)]
    if not cands:
        return m_shdr(rng, buf, lay)
    s = cands[0]
    i = rng.randrange(_entries(lay, s, SYM.size))
    base = s[3] + i * SYM.size
    if rng.random() < 0.4:
        v = rng.choice(SHNDX_VALUES + (len(lay.sections), len(lay.sections) - 1))
        poke(buf, base + 6, 2, v)
        return f"sym{i}.st_shndx={v:#x}"
    return _set_field(rng, buf, lay, base, SYM_FIELDS, f"sym{i}")


def m_strtab(rng, buf, lay) -> str:
    """A string table without its terminators, or filled with invalid UTF-8."""
    cands = lay.named(".strtab") + lay.named(".shstrtab")
    cands = [s for s in cands if s[3] < lay.size]
    if not cands:
        return m_byteset(rng, buf, lay)
    s = rng.choice(cands)
    end = min(s[3] + s[4], len(buf))
    fill = rng.choice((b"A", b"\xff", b"\xc3"))
    for i in range(s[3], end):
        if buf[i] == 0 or rng.random() < 0.3:
            buf[i] = fill[0]
    return f"{s[0]} filled with {fill!r}"


def m_altentry(rng, buf, lay) -> str:
    """An ``.altinstructions`` entry pointing outside the image, at other sections, or with
    wild lengths and capabilities."""
    cands = [s for s in lay.named(".altinstructions") if _entries(lay, s, ALT.size)]
    if not cands:
        return m_shdr(rng, buf, lay)
    s = rng.choice(cands)
    i = rng.randrange(_entries(lay, s, ALT.size))
    base = s[3] + i * ALT.size
    name = rng.choice(sorted(ALT_FIELDS))
    off, size = ALT_FIELDS[name]
    if name in ("orig_len", "alt_len"):
        v = rng.choice((0, 1, 2, 3, 4, 8, 12, 16, 252, 255, rng.randrange(256)))
    elif name == "cap":
        v = rng.choice((0, 3, 4, 5, 0x7FFF, 0x8000, 0x8001, 0x8004, 0xFFFF,
                        rng.randrange(1 << 16)))
    else:
        v = rng.choice((0, -4, 4, 0x7FFFFFFF, -0x80000000, -(s[3] + off + base),
                        rng.randrange(-(1 << 31), 1 << 31), peek(buf, base + off, 4) + 4,
                        peek(buf, base + off, 4) - 12, 1 << 20))
    poke(buf, base + off, size, v)
    return f".altinstructions[{i}].{name}={v:#x}"


def m_section_bytes(rng, buf, lay) -> str:
    """Bit flips or byte sets inside one section's contents (tables, code, DWARF lines)."""
    cands = [s for s in lay.sections if s[4] and s[3] + s[4] <= lay.size and s[2] != SHT_NOBITS]
    if not cands:
        return m_bitflip(rng, buf, lay)
    hot = [s for s in cands if s[0] in (".altinstructions", ".rela.altinstructions", ".symtab",
                                         ".text", ".altinstr_replacement", ".debug_line",
                                         ".rela.text", ".strtab")]
    s = rng.choice(hot if hot and rng.random() < 0.8 else cands)
    n = rng.choice((1, 2, 4, 8))
    offs = []
    for _ in range(n):
        off = s[3] + rng.randrange(s[4])
        if rng.random() < 0.5:
            buf[off] ^= 1 << rng.randrange(8)
        else:
            buf[off] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        offs.append(off - s[3])
    return f"{s[0]}+{','.join(hex(o) for o in offs[:4])} changed"


def m_truncate(rng, buf, lay) -> str:
    cuts = [EHDR.size - 1, EHDR.size, lay.size // 2, lay.size - 1]
    for s in lay.sections:
        cuts += [s[3], s[3] + s[4] // 2, s[3] + s[4] - 1]
    if lay.shoff:
        cuts.append(lay.shoff + SHDR.size // 2)
    cut = rng.choice([c for c in cuts if 0 < c < lay.size] or [1])
    del buf[cut:]
    return f"truncate@{cut:#x}"


def m_extend(rng, buf, lay) -> str:
    n = rng.choice((1, 12, 4096))
    buf += bytes(rng.randrange(256) for _ in range(n))
    return f"extend+{n}"


ELF_MUTATORS = [
    (m_bitflip, 6), (m_byteset, 4), (m_splice, 2), (m_ehdr, 4), (m_shnum_extended, 1),
    (m_shdr, 10), (m_huge_table, 3), (m_phdr, 4), (m_rela, 8), (m_symtab, 6), (m_strtab, 1),
    (m_altentry, 10), (m_section_bytes, 6), (m_truncate, 3), (m_extend, 1),
]


def mutate_elf(rng: random.Random, data: bytes, count: int | None = None) -> tuple[bytes, list]:
    """``data`` with one to three mutations (a truncation last); their descriptions."""
    lay = layout(data)
    buf = bytearray(data)
    if lay is None:
        return bytes(buf), []
    n = count or rng.choice((1, 1, 1, 2, 2, 3))
    funcs = [f for f, _ in ELF_MUTATORS]
    weights = [w for _, w in ELF_MUTATORS]
    picked = rng.choices(funcs, weights, k=n)
    picked.sort(key=lambda f: f is m_truncate)
    out = []
    for f in picked:
        if not buf:
            break
        out.append(f(rng, buf, lay))
    return bytes(buf), out


# -- manifests -----------------------------------------------------------------------------------

def wild_value(rng: random.Random, depth: int = 0):
    r = rng.randrange(22)
    if r == 0:
        return None
    if r == 1:
        return rng.choice((True, False))
    if r == 2:
        return rng.choice((0, -1, 1, 3, 4, 12, 255, 256, 1024, 4096))
    if r == 3:
        return rng.choice((2 ** 31, 2 ** 32, 2 ** 63, 2 ** 64, 2 ** 64 - 1, -(2 ** 63),
                           10 ** 30, 10 ** 400))
    if r == 4:
        return rng.choice((0.5, -1.5, 1e308, -1e308, float("inf"), float("nan")))
    if r == 5:
        return rng.choice(("", "0", "0x", "-0x10", "0x" + "f" * 17, "0xffffffffffffffff",
                           "0x8000000000000000", "0b101", "0o17", "1_000", " 12 ", "1e3"))
    if r == 6:
        return "0x" + "f" * rng.choice((16, 64, 5000))
    if r == 7:
        return rng.choice(("zz", "\u00e9\u4e2d", "\ud800", "a" * 100000, "\x00", "nop",
                           "1f2003d5", "1f2003d" * 3, "xyz!"))
    if r == 8:
        return [] if rng.random() < 0.5 else {}
    if r == 9:
        return [wild_value(rng, depth + 1) for _ in range(rng.randrange(4))] if depth < 4 \
            else []
    if r == 10:
        return {rng.choice(("index", "site", "address", "length", "bytes", "x", "")):
                wild_value(rng, depth + 1) for _ in range(rng.randrange(4))} if depth < 4 else {}
    if r == 11:
        d = rng.choice((50, 300))  # deeper nesting: mutate_json_text
        v = []
        for _ in range(d):
            v = [v]
        return v
    if r == 12:
        return f"{rng.randrange(1 << 64):#x}"
    if r == 13:
        return f"{rng.randrange(0x3f0000, 0x420000):#x}"
    if r == 14:
        return rng.randrange(-(1 << 70), 1 << 70)
    if r == 15:
        return rng.choice(("static", "callback", "adrp", "branch26", "cond19", "test14",
                           "cmp19", "bogus"))
    if r == 16:
        return ["nop"] * rng.choice((0, 1, 300))
    if r == 17:
        return "ff" * rng.choice((0, 1, 3, 4, 256, 1 << 16))
    if r == 18:
        return [{"insn": wild_value(rng, depth + 1), "kind": "branch26",
                 "target": wild_value(rng, depth + 1)}]
    if r == 19:
        return rng.choice((4, 8, 12, 1028, 0, -4, 1 << 40))
    if r == 20:
        return rng.choice(("linux-v4.17", "linux-v6.1", "linux-v9", ""))
    return str(rng.randrange(100))


def typed_value(rng: random.Random, key):
    """A value of the type the commands expect for ``key`` but wrong in value (so that the
    manifest passes the shape check and reaches the code that uses it); None: no idea."""
    if key in ("address", "target", "base"):
        return rng.choice((f"{rng.randrange(0x3ff000, 0x421000):#x}",
                           f"{rng.randrange(1 << 64):#x}", "0x0", "0xfffffffffffffffc",
                           f"{rng.randrange(0x400000, 0x400100) & ~3:#x}",
                           f"{rng.randrange(0x400000, 0x400100) | 1:#x}"))
    if key in ("length", "size", "file_offset", "bin_offset", "insn", "index", "ncaps"):
        return rng.choice((0, 1, 2, 3, 4, 8, 12, 16, 252, 255, 256, 1024, 1028, -4, -1,
                           1 << 31, 1 << 63, rng.randrange(300)))
    if key in ("cap_raw", "cap"):
        return rng.choice((0, 1, 2, 3, 4, 5, 0x7FFF, 0x8000, 0x8002, 0x8003, 0xFFFF, 1 << 16,
                           -1, rng.randrange(1 << 16)))
    if key == "bytes":
        return "".join(rng.choice(("1f2003d5", "00000014", "00000090", "00000058", "c0035fd6",
                                   "00000054", "ffffffff", "00000034", "00000036", "f"))
                       for _ in range(rng.choice((0, 1, 2, 3, 64))))
    if key == "kind":
        return rng.choice(("static", "callback", "", "Static"))
    if key == "symbol":
        return rng.choice(("patch_cb", "spin_cb", "fw_callback", "target", "_start", "", "?"))
    if key == "sha256":
        return rng.choice(("", "00" * 32, "zz" * 32, "ab"))
    return None


def _paths(v, path=()):
    yield path, v
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _paths(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _paths(x, path + (i,))


def _put(root, path, value):
    node = root
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def mutate_json(rng: random.Random, m: dict) -> tuple[dict, str]:
    """One structural mutation of a manifest (a deep copy)."""
    m = json.loads(json.dumps(m))
    paths = [p for p, _ in _paths(m) if p]
    # Prefer the fields the commands compute with.
    hot = [p for p in paths if p[-1] in ("address", "length", "cap_raw", "index", "bytes",
                                         "kind", "ncaps", "abi", "sha256", "insn", "target",
                                         "fixups", "callback", "replacement", "site", "symbol",
                                         "entries", "caps", "image", "table", "file_offset",
                                         "bin_offset")]
    path = rng.choice(hot if hot and rng.random() < 0.8 else paths)
    r = rng.random()
    if r < 0.15:
        node = m
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
        return m, f"delete {'/'.join(map(str, path))}"
    if r < 0.22:
        node = m
        for p in path[:-1]:
            node = node[p]
        if isinstance(node, list):
            node.insert(path[-1], node[path[-1]])
            return m, f"duplicate {'/'.join(map(str, path))}"
    if r < 0.27 and isinstance(m.get("entries"), list):
        rng.shuffle(m["entries"])
        return m, "shuffle entries"
    v = typed_value(rng, path[-1]) if rng.random() < 0.6 else None
    if v is None:
        v = wild_value(rng)
    _put(m, path, v)
    desc = repr(v)
    if len(desc) > 60:
        desc = desc[:57] + "..."
    return m, f"set {'/'.join(map(str, path))}={desc}"


def mutate_json_text(rng: random.Random, text: bytes) -> tuple[bytes, str]:
    """Breaking the JSON itself."""
    r = rng.randrange(7)
    buf = bytearray(text)
    if r == 0:
        cut = rng.randrange(len(buf))
        return bytes(buf[:cut]), f"truncate@{cut}"
    if r == 1:
        off = rng.randrange(len(buf))
        buf[off] ^= 1 << rng.randrange(8)
        return bytes(buf), f"bitflip@{off}"
    if r == 2:
        off = rng.randrange(len(buf))
        buf[off:off] = rng.choice((b"\xff", b"\xc3(", b"\x00", b"\xef\xbb\xbf"))
        return bytes(buf), f"bad utf-8 @{off}"
    if r == 3:
        return b"\xef\xbb\xbf" + bytes(buf), "BOM"
    if r == 4:
        d = rng.choice((100, 10000, 200000))
        return b"[" * d + b"]" * d, f"nested list depth {d}"
    if r == 5:
        return rng.choice((b"null", b"[]", b"1", b'"x"', b"{}", b"NaN",
                           b'{"schema": "altlink-manifest/1"}')), "not an object"
    d = rng.choice((100, 10000, 200000))
    inner = b'{"a":' * d + b"1" + b"}" * d
    return (b'{"schema": "altlink-manifest/1", "entries": [], "image": ' + inner + b"}",
            f"nested object depth {d}")


# -- compact manifests ---------------------------------------------------------------------------

def mutate_blob(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    buf = bytearray(data)
    r = rng.randrange(5)
    fields = {"version": (4, 2), "header_size": (6, 2), "entry_size": (8, 2), "profile": (10, 1),
              "ncaps": (12, 4), "count": (16, 4), "table": (24, 8)}
    if r <= 1:
        name = rng.choice(sorted(fields))
        off, size = fields[name]
        v = interesting(rng, size, peek(buf, off, size), len(buf))
        poke(buf, off, size, v)
        return bytes(buf), f"blob.{name}={v:#x}"
    if r == 2:
        cut = rng.randrange(len(buf))
        return bytes(buf[:cut]), f"truncate@{cut}"
    if r == 3:
        off = rng.randrange(len(buf))
        buf[off] ^= 1 << rng.randrange(8)
        return bytes(buf), f"bitflip@{off}"
    return bytes(buf) + bytes(rng.choice((1, 24, 100))), "extend"


# -- ar archives ---------------------------------------------------------------------------------

def _ar_headers(data: bytes) -> list[tuple[int, int]]:
    """(header offset, member size) of each member of a GNU archive (of a thin one: the
    member's data is not in the archive)."""
    out = []
    pos = 8
    thin = data.startswith(b"!<thin>\n")
    while pos + 60 <= len(data):
        try:
            size = int(data[pos + 48:pos + 58].decode("ascii").strip() or "0")
        except ValueError:
            break
        out.append((pos, size))
        name = data[pos:pos + 16].rstrip()
        pos += 60 + (size if not thin or name in (b"/", b"//") else 0)
        pos += pos & 1
    return out


def mutate_ar(rng: random.Random, data: bytes) -> tuple[bytes, list]:
    """Archive member headers (sizes, names, terminators), the long-name table, or the ELF
    member inside."""
    heads = _ar_headers(data)
    if not heads:
        return data, []
    if rng.random() < 0.15 and b"//" in data:  # the long names: what a thin member's path is
        i = data.index(b"//")
        start = i + 60
        new = rng.choice((b"/dev/zero/\n", b"../../../../etc/passwd/\n", b"/\n", b"x" * 40,
                          b"\xff\xfe/\n", b"/tmp/\n"))
        buf = bytearray(data)
        buf[start:start + len(new)] = new
        return bytes(buf[:len(data)]), [f"ar long names={new[:24]!r}"]
    pos, size = rng.choice(heads)
    buf = bytearray(data)
    r = rng.randrange(4)
    if r == 0:
        v = rng.choice((b"9999999999", b"-5        ", b"0x10      ", b"          ",
                        str(size + 1).encode().ljust(10), str(size - 1).encode().ljust(10),
                        str(len(data)).encode().ljust(10)))
        buf[pos + 48:pos + 58] = v
        return bytes(buf), [f"ar@{pos:#x}.size={v.strip()!r}"]
    if r == 1:
        v = rng.choice((b"/99999          ", b"//              ", b"#1/20           ",
                        b"/               ", b"/SYM64/         ", b"\xff\xfe/           ",
                        b"/dev/zero/      ", b"../../../x/     ", b"/tmp/           "))
        buf[pos:pos + 16] = v
        return bytes(buf), [f"ar@{pos:#x}.name={v.strip()!r}"]
    if r == 2:
        buf[pos + 58:pos + 60] = b"xx"
        return bytes(buf), [f"ar@{pos:#x} bad terminator"]
    body = data[pos + 60:pos + 60 + size]
    if body[:4] != b"\x7fELF":
        return m_truncate_bytes(rng, data)
    new, what = mutate_elf(rng, body)
    if len(new) != size and rng.random() < 0.7:
        buf[pos + 48:pos + 58] = str(len(new)).encode().ljust(10)
    buf[pos + 60:pos + 60 + size] = new
    return bytes(buf), [f"member@{pos:#x}: {w}" for w in what]


def m_truncate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, list]:
    cut = rng.randrange(1, max(2, len(data)))
    return data[:cut], [f"truncate@{cut:#x}"]


# -- capability tables ---------------------------------------------------------------------------

def mutate_caps(rng: random.Random, text: bytes) -> tuple[bytes, str]:
    """A capability table (cpucaps text, or the generated header): numbers, names, lines."""
    lines = text.split(b"\n")
    i = rng.randrange(len(lines))
    r = rng.randrange(8)
    if r <= 1:
        nums = [j for j, ln in enumerate(lines) if ln.startswith(b"#define")]
        if nums:
            i = rng.choice(nums)
            words = lines[i].split()
            v = rng.choice((b"100000000000", b"0x10000000", b"-3", b"0", b"4294967296",
                            b"1" * 5000, b"0x", b"zz", b"65536", b"32768", b"3u", b"7UL"))
            lines[i] = b" ".join(words[:2] + [v])
            return b"\n".join(lines), f"caps line {i + 1} number={v[:12]!r}"
    if r == 2:
        lines.insert(i, lines[i])
        return b"\n".join(lines), f"caps line {i + 1} twice"
    if r == 3:
        del lines[i]
        return b"\n".join(lines), f"caps line {i + 1} deleted"
    if r == 4:
        junk = rng.choice((b"NOT A NAME", b"\xff\xfe", b"A" * 100000, b"#define ALT_NCAPS",
                           b"#define ALT_CAP_X", b"#define ARM64_NCAPS 99999999",
                           b"\x00", b"x # y"))
        lines.insert(i, junk)
        return b"\n".join(lines), f"caps line {i + 1} inserted {junk[:12]!r}"
    if r == 5:
        cut = rng.randrange(len(text) + 1)
        return text[:cut], f"caps truncate@{cut}"
    buf = bytearray(text)
    off = rng.randrange(max(1, len(buf)))
    if buf:
        buf[off] ^= 1 << rng.randrange(8)
    return bytes(buf), f"caps bitflip@{off}"
