"""Reference decoder for AArch64 ``.altinstructions`` tables.

An independent oracle for altlink's ``scan``: everything here comes from
parsing the text that GNU ``readelf`` prints (``-h``, ``-S``, ``-s``, ``-r``
and ``-x``), never from pyelftools' relocation classes and never from altlink
code.  Standard library only.

One entry is 12 bytes, little-endian (docs/reference.md, section 1)::

    s32 orig_offset; s32 alt_offset; u16 cap; u8 orig_len; u8 alt_len

API
---
``decode(path, section=".altinstructions", symbols=True) -> Decoded``
    ``Decoded.elf_type`` is ``"REL"``, ``"EXEC"`` or ``"DYN"``;
    ``Decoded.entries`` is a list of :class:`Entry`, in file order (sections
    by index, then by offset); ``Decoded.sections`` the section table;
    ``Decoded.tables`` the decoded table sections (a file may hold more than
    one section of that name).

``entries(path, **kw) -> list[Entry]`` is ``decode(path, **kw).entries``.

For an object (ET_REL) each entry has ``orig`` and ``alt``: a :class:`Ref`
with the relocation readelf printed for that field (``sym`` as printed:
the section name for a section symbol; ``addend``; ``rtype``; ``sym_index``;
``sym_type``/``sym_bind``/``sym_shndx`` from ``readelf -s``), or ``None``
when no relocation hits that field.  For SHT_REL the addend is the s32
stored in the field (``Ref.implicit`` is True).

For a linked image (ET_EXEC/ET_DYN, e.g. vmlinux) each entry has
``site_addr`` = section address + entry offset + s32 ``orig_offset`` and
``alt_addr`` = section address + entry offset + 4 + s32 ``alt_offset``,
plus ``site_section``/``alt_section`` (the allocated section containing the
address) and, with ``symbols=True``, ``alt_funcs``: the names of the FUNC
symbols whose value is exactly ``alt_addr`` (sized ones first; vmlinux has
size-0 ``__kvm_nvhe_*`` aliases) and ``alt_func``, the first of them (what
a callback entry names).

Run as a script: ``python3 tests/refdecode.py FILE...`` prints every entry;
``python3 tests/refdecode.py --summary DIR_OR_FILES...`` walks ``*.ko``
(and plain files given) and prints counts only.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field

ENTRY_SIZE = 12
CALLBACK_BIT = 0x8000          # linux-v6.1 profile

__all__ = ["Ref", "Entry", "Section", "Symbol", "Reloc", "Decoded",
           "ReadelfError", "decode", "entries", "readelf_path",
           "ENTRY_SIZE", "CALLBACK_BIT"]


class ReadelfError(RuntimeError):
    """readelf failed, or printed something this parser does not know."""


# --------------------------------------------------------------------------
# running readelf

_READELF: str | None = None


def readelf_path() -> str:
    """``$ALTLINK_READELF``, else ``aarch64-linux-gnu-readelf``, else ``readelf``
    (GNU readelf does not depend on the target: the host one reads AArch64)."""
    global _READELF
    if _READELF is None:
        cand = [os.environ.get("ALTLINK_READELF"), "aarch64-linux-gnu-readelf",
                "readelf"]
        for c in cand:
            if c and shutil.which(c):
                _READELF = shutil.which(c)
                break
        else:
            raise ReadelfError("no readelf found (install binutils or "
                               "binutils-aarch64-linux-gnu, or set ALTLINK_READELF)")
    return _READELF


def _run(args: list[str]) -> str:
    cmd = [readelf_path()] + args
    env = dict(os.environ, LC_ALL="C", LANG="C")
    p = subprocess.run(cmd, capture_output=True, env=env)
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip()
        raise ReadelfError(f"{' '.join(cmd)}: exit {p.returncode}: {err}")
    return p.stdout.decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------
# data types

@dataclass(frozen=True)
class Section:
    index: int
    name: str
    type: str           # as printed: PROGBITS, NOBITS, RELA, REL, ...
    addr: int
    offset: int
    size: int
    entsize: int
    flags: str          # as printed, e.g. "AX"
    link: int
    info: int
    align: int

    @property
    def alloc(self) -> bool:
        return "A" in self.flags

    @property
    def execinstr(self) -> bool:
        return "X" in self.flags


@dataclass(frozen=True)
class Symbol:
    index: int
    value: int
    size: int
    type: str           # NOTYPE, FUNC, OBJECT, SECTION, ...
    bind: str
    vis: str
    shndx: str          # "UND", "ABS", "COM" or a decimal index
    name: str


@dataclass(frozen=True)
class Reloc:
    offset: int
    info: int
    rtype: str          # as printed, e.g. R_AARCH64_PREL32
    sym_index: int
    sym_value: int | None
    sym_name: str | None   # as printed; None when sym_index == 0
    addend: int | None     # None for SHT_REL

    @property
    def rtype_num(self) -> int:
        return self.info & 0xFFFFFFFF


@dataclass(frozen=True)
class Ref:
    """One relocated s32 field of an object's entry."""
    sym: str | None
    addend: int
    rtype: str
    sym_index: int = 0
    sym_type: str = ""
    sym_bind: str = ""
    sym_shndx: str = ""
    implicit: bool = False    # SHT_REL: addend read from the section contents

    @property
    def is_section_sym(self) -> bool:
        return self.sym_type == "SECTION"

    def __str__(self) -> str:
        a = self.addend
        s = self.sym if self.sym is not None else "*ABS*"
        return "{} {} {:x}".format(s, "-" if a < 0 else "+", abs(a))


@dataclass
class Entry:
    section: str              # name of the table section
    section_index: int
    index: int                # entry number within that section
    offset: int               # byte offset of the entry in that section
    orig_raw: int             # s32 as stored in the file (0 in RELA objects)
    alt_raw: int
    cap: int
    orig_len: int
    alt_len: int
    # ET_REL
    orig: Ref | None = None
    alt: Ref | None = None
    # linked images
    entry_addr: int | None = None
    site_addr: int | None = None
    alt_addr: int | None = None
    site_section: str | None = None
    alt_section: str | None = None
    alt_func: str | None = None
    alt_funcs: tuple[str, ...] = ()

    @property
    def is_callback(self) -> bool:
        """linux-v6.1 profile: cap & 0x8000."""
        return bool(self.cap & CALLBACK_BIT)

    @property
    def cap_number(self) -> int:
        return self.cap & 0x7FFF

    def describe(self) -> str:
        cb = f" (cb {self.cap_number})" if self.is_callback else ""
        head = (f"{self.section}[{self.index}] +0x{self.offset:x} cap=0x{self.cap:04x}{cb} "
                f"orig_len={self.orig_len} alt_len={self.alt_len}")
        if self.site_addr is not None:
            return "{} site=0x{:x}({}) alt=0x{:x}({}){}".format(
                head, self.site_addr, self.site_section, self.alt_addr,
                self.alt_section,
                f" func={self.alt_func}" if self.alt_func else "")
        return "{} orig=[{}] alt=[{}]".format(
            head,
            f"{self.orig} {self.orig.rtype}" if self.orig else f"no reloc, raw={self.orig_raw}",
            f"{self.alt} {self.alt.rtype}" if self.alt else f"no reloc, raw={self.alt_raw}")


@dataclass
class Decoded:
    path: str
    elf_type: str             # REL, EXEC, DYN, ...
    machine: str
    elf_class: str
    data: str
    sections: list[Section]
    tables: list[Section]
    entries: list[Entry] = field(default_factory=list)
    # relocation sections (name, type) that apply to the table sections
    reloc_sections: list[tuple[str, str]] = field(default_factory=list)
    # every relocation type seen against the table sections
    reloc_types: dict[str, int] = field(default_factory=dict)

    @property
    def linked(self) -> bool:
        return self.elf_type != "REL"


# --------------------------------------------------------------------------
# parsers of readelf output

def parse_header(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s+([A-Za-z][A-Za-z ()/.']*?):\s+(.*)$", line)
        if m:
            out[m.group(1).strip()] = m.group(2).strip()
    return out


# [Nr] Name Type Address Off Size ES Flg Lk Inf Al ; name may be empty
# ([0]), flags may be empty.
_SEC_RE = re.compile(
    r"^\s*\[\s*(\d+)\]\s(.*?)\s+(\S+)\s+"
    r"([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s?([ A-Za-z]{3,}?)\s*"
    r"(\d+)\s+(\d+)\s+(\d+)\s*$")


def parse_sections(text: str) -> list[Section]:
    secs = []
    for line in text.splitlines():
        if not line.lstrip().startswith("["):
            continue
        if "[Nr]" in line:
            continue
        m = _SEC_RE.match(line)
        if not m:
            raise ReadelfError(f"cannot parse section header line: {line!r}")
        g = m.groups()
        secs.append(Section(index=int(g[0]), name=g[1].strip(), type=g[2],
                            addr=int(g[3], 16), offset=int(g[4], 16),
                            size=int(g[5], 16), entsize=int(g[6], 16),
                            flags=g[7].strip(), link=int(g[8]),
                            info=int(g[9]), align=int(g[10])))
    for i, s in enumerate(secs):
        if s.index != i:
            raise ReadelfError(f"section table out of order at [{s.index}]")
    return secs


_SYM_RE = re.compile(
    r"^\s*(\d+):\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+(\S+)\s+(\S+)\s+(\S+)"
    r"(?:\s+\[[^\]]*\])?\s+(\S+)(?: (.*))?$")


def parse_symtab(text: str, table: str = ".symtab") -> dict[int, Symbol]:
    """Symbols of the named table (``.symtab`` for objects)."""
    syms: dict[int, Symbol] = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^Symbol table '([^']*)' contains (\d+) entries", line)
        if m:
            cur = m.group(1)
            continue
        if cur != table or not line.strip() or line.lstrip().startswith("Num:"):
            continue
        m = _SYM_RE.match(line)
        if not m:
            raise ReadelfError(f"cannot parse symbol line: {line!r}")
        g = m.groups()
        size = int(g[2], 16) if g[2].startswith("0x") else int(g[2])
        syms[int(g[0])] = Symbol(int(g[0]), int(g[1], 16), size, g[3], g[4],
                                 g[5], g[6], g[7] or "")
    return syms


_RELHDR_RE = re.compile(
    r"^Relocation section '(.*)' at offset 0x([0-9a-f]+) contains (\d+) entr")


def parse_relocs(text: str) -> dict[int, list[Reloc]]:
    """Relocations keyed by the file offset of their relocation section
    (readelf names the section and its offset; the offset is unique)."""
    out: dict[int, list[Reloc]] = {}
    cur: list[Reloc] | None = None
    for line in text.splitlines():
        m = _RELHDR_RE.match(line)
        if m:
            cur = out.setdefault(int(m.group(2), 16), [])
            int(m.group(3))
            continue
        if cur is None:
            continue
        s = line.strip()
        if not s or s.startswith("Offset") or s.startswith("There are no"):
            continue
        toks = s.split()
        if len(toks) < 3 or not re.fullmatch(r"[0-9a-f]+", toks[0]) \
                or not re.fullmatch(r"[0-9a-f]+", toks[1]):
            # e.g. the relr/"Key to" trailers; not relocation lines
            continue
        off, info = int(toks[0], 16), int(toks[1], 16)
        symidx = info >> 32
        # type: one token, or "unrecognized: 0x..." (two tokens)
        i = 2
        rtype = toks[i]
        if rtype.startswith("unrecognized"):
            rtype = rtype + " " + toks[i + 1]
            i += 1
        i += 1
        rest = toks[i:]
        if symidx:
            if not rest:
                raise ReadelfError(f"relocation line without symbol: {line!r}")
            value = int(rest[0], 16)
            # name [+|- addend]; the name itself is re-read from the line so
            # that any inner spacing survives.
            tail = s.split(None, i + 1)[i + 1] if len(rest) > 1 else ""
            m = re.match(r"^(.*) ([+-]) ([0-9a-f]+)$", tail)
            if m:
                name = m.group(1)
                addend = int(m.group(3), 16) * (-1 if m.group(2) == "-" else 1)
            else:
                name, addend = tail, None
            cur.append(Reloc(off, info, rtype, symidx, value, name, addend))
        else:
            addend = None
            if rest:
                a = rest[-1]
                addend = -int(a[1:], 16) if a.startswith("-") else int(a, 16)
            cur.append(Reloc(off, info, rtype, 0, None, None, addend))
    return out


def parse_hexdump(text: str) -> bytes:
    """Bytes of one ``readelf -x`` section dump.  Each line is
    ``  0x<addr> `` then 16 byte slots as 4 groups of 8 hex digits each
    followed by a space (36 columns; missing bytes are blanks), then ASCII."""
    out = bytearray()
    for line in text.splitlines():
        m = re.match(r"^\s+0x([0-9a-f]+) ", line)
        if not m:
            continue
        hexpart = line[m.end():m.end() + 36]
        for g in hexpart.split():
            if not re.fullmatch(r"[0-9a-f]+", g) or len(g) % 2:
                raise ReadelfError(f"cannot parse hex dump line: {line!r}")
            out += bytes.fromhex(g)
    return bytes(out)


# --------------------------------------------------------------------------
# decoding

def _section_at(secs: list[Section], addr: int) -> str | None:
    best = None
    for s in secs:
        if s.alloc and s.addr <= addr < s.addr + s.size and s.size:
            best = s.name
            if s.type != "NOBITS":
                return best
    if best is None:
        # an address one past the end of a section (e.g. an empty site at
        # the end) is still reported against that section
        for s in secs:
            if s.alloc and s.size and addr == s.addr + s.size:
                return s.name
    return best


def decode(path: str, section: str = ".altinstructions",
           symbols: bool = True) -> Decoded:
    hdr = parse_header(_run(["-W", "-h", path]))
    elf_type = hdr.get("Type", "?").split()[0]
    machine = hdr.get("Machine", "?")
    elf_class = hdr.get("Class", "?")
    data = hdr.get("Data", "?")
    if elf_class != "ELF64" or "little endian" not in data:
        raise ReadelfError(f"{path}: {elf_class} {data}: only ELF64 little-endian is decoded")
    secs = parse_sections(_run(["-W", "-S", path]))
    tables = [s for s in secs if s.name == section]
    dec = Decoded(path, elf_type, machine, elf_class, data, secs, tables)
    if not tables:
        return dec

    contents: dict[int, bytes] = {}
    for t in tables:
        if t.type == "NOBITS":
            contents[t.index] = b""
            continue
        blob = parse_hexdump(_run(["-W", f"--hex-dump={t.index}", path]))
        if len(blob) != t.size:
            raise ReadelfError(f"{path}: hex dump of [{t.index}] {t.name} has {len(blob)} "
                               f"bytes, size {t.size}")
        if t.size % ENTRY_SIZE:
            raise ReadelfError(f"{path}: [{t.index}] {t.name} size {t.size} is not a "
                               f"multiple of {ENTRY_SIZE}")
        contents[t.index] = blob

    linked = elf_type != "REL"
    relocs_by_target: dict[int, list[tuple[Section, Reloc]]] = {}
    syms: dict[int, Symbol] = {}
    if not linked:
        rsecs = [s for s in secs if s.type in ("REL", "RELA")
                 and any(s.info == t.index for t in tables)]
        if rsecs:
            allrel = parse_relocs(_run(["-W", "-r", path]))
            for rs in rsecs:
                if rs.offset not in allrel:
                    raise ReadelfError(f"{path}: readelf -r printed no section at "
                                       f"offset 0x{rs.offset:x} ({rs.name})")
                lst = allrel[rs.offset]
                if rs.entsize and len(lst) != rs.size // rs.entsize:
                    raise ReadelfError(f"{path}: {rs.name}: parsed {len(lst)} relocations, "
                                       f"expected {rs.size // rs.entsize}")
                dec.reloc_sections.append((rs.name, rs.type))
                for r in lst:
                    relocs_by_target.setdefault(rs.info, []).append((rs, r))
                    dec.reloc_types[r.rtype] = dec.reloc_types.get(r.rtype, 0) + 1
            syms = parse_symtab(_run(["-W", "-s", path]))
    # address -> FUNC symbols defined there; sized symbols first, then by
    # symbol index (vmlinux has size-0 aliases such as
    # __kvm_nvhe_alt_cb_patch_nops at the address of alt_cb_patch_nops)
    func_at: dict[int, tuple[str, ...]] = {}
    if linked and symbols:
        cands: dict[int, list[Symbol]] = {}
        for s in parse_symtab(_run(["-W", "-s", path])).values():
            if s.type == "FUNC" and s.shndx not in ("UND", "ABS"):
                cands.setdefault(s.value, []).append(s)
        for addr, lst in cands.items():
            lst.sort(key=lambda s: (s.size == 0, s.index))
            func_at[addr] = tuple(s.name for s in lst)

    for t in tables:
        blob = contents[t.index]
        # field offset -> (relocation section, reloc)
        at: dict[int, tuple[Section, Reloc]] = {}
        for rs, r in relocs_by_target.get(t.index, []):
            if r.offset in at:
                raise ReadelfError(f"{path}: two relocations at {t.name}+0x{r.offset:x}")
            at[r.offset] = (rs, r)

        def ref(off: int, raw: int, at=at) -> Ref | None:
            hit = at.get(off)
            if hit is None:
                return None
            rs, r = hit
            implicit = rs.type == "REL" or r.addend is None
            addend = raw if implicit else r.addend
            sym = syms.get(r.sym_index) if r.sym_index else None
            return Ref(sym=r.sym_name, addend=addend, rtype=r.rtype,
                       sym_index=r.sym_index,
                       sym_type=sym.type if sym else "",
                       sym_bind=sym.bind if sym else "",
                       sym_shndx=sym.shndx if sym else "",
                       implicit=implicit)

        for k in range(len(blob) // ENTRY_SIZE):
            off = k * ENTRY_SIZE
            o, a, cap, ol, al = struct.unpack_from("<iiHBB", blob, off)
            e = Entry(section=t.name, section_index=t.index, index=k,
                      offset=off, orig_raw=o, alt_raw=a, cap=cap,
                      orig_len=ol, alt_len=al)
            if linked:
                e.entry_addr = t.addr + off
                e.site_addr = (t.addr + off + o) & 0xFFFFFFFFFFFFFFFF
                e.alt_addr = (t.addr + off + 4 + a) & 0xFFFFFFFFFFFFFFFF
                e.site_section = _section_at(secs, e.site_addr)
                e.alt_section = _section_at(secs, e.alt_addr)
                e.alt_funcs = func_at.get(e.alt_addr, ())
                e.alt_func = e.alt_funcs[0] if e.alt_funcs else None
            else:
                e.orig = ref(off, o)
                e.alt = ref(off + 4, a)
            dec.entries.append(e)
        # relocations that hit something other than the two offset fields
        for off in at:
            if off % ENTRY_SIZE not in (0, 4) or off >= len(blob):
                raise ReadelfError(f"{path}: relocation at {t.name}+0x{off:x} is not on an "
                                   "offset field")
    return dec


def entries(path: str, **kw) -> list[Entry]:
    return decode(path, **kw).entries


# --------------------------------------------------------------------------
# self-check

def _walk(args: list[str]) -> list[str]:
    files = []
    for a in args:
        if os.path.isdir(a):
            for root, _dirs, names in os.walk(a):
                for n in names:
                    if n.endswith(".ko"):
                        files.append(os.path.join(root, n))
        else:
            files.append(a)
    return sorted(files)


def _summary(files: list[str]) -> int:
    """Counts over many files; exit status 1 if any file failed to decode."""
    from collections import Counter
    c: Counter = Counter()
    types: Counter = Counter()
    relsecs: Counter = Counter()
    cbs: Counter = Counter()
    caps: Counter = Counter()
    lens: Counter = Counter()
    site_secs: Counter = Counter()
    alt_secs: Counter = Counter()
    ref_kinds: Counter = Counter()
    for f in files:
        c["files"] += 1
        try:
            d = decode(f)
        except ReadelfError as exc:
            c["failures"] += 1
            print(f"FAIL {f}: {exc}")
            continue
        if d.tables:
            c["files with .altinstructions"] += 1
        types.update(d.reloc_types)
        relsecs.update(f"{n} ({t})" for n, t in d.reloc_sections)
        for e in d.entries:
            c["entries"] += 1
            c["callback entries" if e.is_callback else "static entries"] += 1
            caps[f"0x{e.cap:04x}"] += 1
            lens[(e.orig_len, e.alt_len)] += 1
            if e.orig is not None or e.alt is not None:
                for which, r in (("site", e.orig), ("alt", e.alt)):
                    ref_kinds[(which, r.sym_type if r else "none",
                               "implicit" if r and r.implicit else "explicit")] += 1
            if e.is_callback:
                cbs[e.alt.sym if e.alt else (e.alt_func or f"0x{e.alt_addr:x}")] += 1
            site_secs[e.orig.sym if e.orig else e.site_section] += 1
            if not e.is_callback:
                alt_secs[e.alt.sym if e.alt else e.alt_section] += 1
    for k in ("files", "files with .altinstructions", "entries", "callback entries",
              "static entries", "failures"):
        print(f"{k}: {c[k]}")
    print(f"relocation types: {dict(sorted(types.items()))}")
    print(f"relocation sections: {dict(sorted(relsecs.items()))}")
    print(f"reference kinds (field, symbol type, addend): {dict(sorted(ref_kinds.items()))}")
    print(f"callbacks: {dict(sorted(cbs.items()))}")
    print(f"caps: {dict(sorted(caps.items()))}")
    print(f"(orig_len, alt_len): {dict(sorted(lens.items()))}")
    print(f"site sections: {dict(sorted(site_secs.items(), key=str))}")
    print(f"static replacement sections: {dict(sorted(alt_secs.items(), key=str))}")
    return 1 if c["failures"] else 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: refdecode.py FILE...  |  refdecode.py --summary DIR|FILE...")
        return 2
    if argv[0] == "--summary":
        return _summary(_walk(argv[1:]))
    for f in _walk(argv):
        d = decode(f)
        rel = f"; relocs {d.reloc_types}" if d.reloc_types else ""
        print(f"{f}: ELF {d.elf_type}, {len(d.entries)} entries in "
              f"{len(d.tables)} table section(s){rel}")
        for e in d.entries:
            print("  " + e.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def assert_scan_matches(scanned: dict, paths, is_callback) -> dict[str, list[dict]]:
    """Each file's entries as ``altlink scan --format json`` gave them (``scanned``, the parsed
    output) against this decoder's: the capability field, lengths, site and replacement
    (symbol and addend of each relocation) and the kind, a callback where ``is_callback`` of
    the capability field says so, its replacement the callback's symbol. The scanned entries
    by file name."""
    by_path = {f["path"]: f["entries"] for f in scanned["files"]}
    out = {}
    for path in paths:
        ref = decode(str(path)).entries
        got = by_path[str(path)]
        assert len(got) == len(ref), path
        for g, r in zip(got, ref):
            where = f"{path.name} entry {r.index}"
            assert (g["cap_raw"], g["orig_len"], g["alt_len"]) == (r.cap, r.orig_len,
                                                                   r.alt_len), where
            assert (g["site"]["section"], g["site"]["addend"]) == (r.orig.sym,
                                                                   r.orig.addend), where
            callback = is_callback(r.cap)
            assert g["kind"] == ("callback" if callback else "static"), where
            if callback:
                assert not r.alt.is_section_sym and r.alt_len == 0, where
                assert g["callback"] == g["alt"]["symbol"] == r.alt.sym, where
            else:
                assert (g["alt"]["section"], g["alt"]["addend"]) == (r.alt.sym,
                                                                     r.alt.addend), where
        out[path.name] = got
    return out
