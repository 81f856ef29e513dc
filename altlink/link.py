"""The link stage: check the link set, run the real linker into a temporary file, cross-check
the linked image against what was collected, then write image, raw binary and manifest.

Outputs are complete or absent: everything is written beside its target under a temporary
name and renamed into place only when every check has passed.
"""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass, field, replace

from altlink import insn, linkcmd, outputs, rawbin
from altlink import manifest as manifestmod
from altlink.checks import Checker, Input, Options
from altlink.elf import ET_REL, STB_LOCAL, STT_SECTION, ElfFile, read_elf
from altlink.errors import LinkerError
from altlink.findings import Finding, finding, has_errors
from altlink.inputs import load as load_inputs
from altlink.table import ENTRY, ENTRY_SIZE, Entry

# The checks that only a linked image can answer; the others were made on the objects.
POST_LINK_CODES = frozenset({"ALT009", "ALT013", "ALT014", "ALT016", "ALT017", "ALT018"})


@dataclass
class LinkRequest:
    command: list[str]
    output: str
    manifest: str | None = None
    binary: str | None = None
    options: Options = field(default_factory=Options)
    symbols_from: list[str] = field(default_factory=list)
    sort_table: bool = False
    source_lines: bool = False


@dataclass
class LinkResult:
    findings: list[Finding]
    notes: list[str]
    linked: bool = False
    written: list[str] = field(default_factory=list)


class _Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, s: str) -> None:
        self.lines.extend(x for x in s.splitlines() if x)


def link(req: LinkRequest, linker_stdout=None, linker_stderr=None) -> LinkResult:
    cmd = linkcmd.parse(req.command)
    notes = _Notes()
    objects = load_inputs(cmd.inputs, notes=notes)
    images = [read_elf(p) for p in req.symbols_from]
    pre = Checker(objects, req.options, images)
    findings = pre.run()
    if has_errors(findings):
        return LinkResult(findings, notes.lines)

    tmp_image = outputs.temp_path(req.output, "elf")
    tmp_files = [tmp_image]
    try:
        _run_linker(cmd.with_output(tmp_image), linker_stdout, linker_stderr)
        image = Input.load(read_elf(tmp_image))
        post = Checker([image], Options(pre.profile, req.options.caps, req.options.module),
                       images)
        post.only = POST_LINK_CODES
        post_findings = post.run() + cross_check(objects, image, pre.profile)
        # Findings in the linked image name the output, not the temporary file.
        findings += [replace(f, file=req.output) if f.file == tmp_image else f
                     for f in post_findings]
        if req.sort_table and not has_errors(findings):
            findings += sort_table(tmp_image, image)
            image.elf.close()
            image = Input.load(read_elf(tmp_image))
        if has_errors(findings):
            return LinkResult(findings, notes.lines, linked=True)
        os.chmod(tmp_image, 0o777 & ~outputs._umask())
        written = _write_outputs(req, image, pre.profile, tmp_image, tmp_files)
        return LinkResult(findings, notes.lines, linked=True, written=written)
    finally:
        for t in tmp_files:
            outputs.remove(t)


def _run_linker(argv: list[str], stdout, stderr) -> None:
    try:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr)
    except OSError as e:
        raise LinkerError(f"{argv[0]}: cannot run the linker: {e.strerror}") from None
    try:
        rc = proc.wait()
    except BaseException:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        raise
    if rc != 0:
        raise LinkerError(f"altlink link: the linker failed (exit {rc}): {' '.join(argv[:1])}")


def _write_outputs(req: LinkRequest, image: Input, profile, tmp_image: str,
                   tmp_files: list[str]) -> list[str]:
    elf = image.elf
    bin_info = None
    tmp_bin = None
    if req.binary:
        lay = rawbin.layout(elf)
        data = rawbin.raw_binary(elf, lay)
        tmp_bin = outputs.temp_path(req.binary, "bin")
        tmp_files.append(tmp_bin)
        with open(tmp_bin, "wb") as f:
            f.write(data)
        bin_info = manifestmod.BinInfo(req.binary, _sha(data), lay)
    tmp_manifest = None
    if req.manifest:
        sources = None
        if req.source_lines:
            from altlink.dwarf import LineTable
            sources = LineTable(elf, os.path.dirname(os.path.abspath(req.manifest))).lookup
        m = manifestmod.build(image, profile, req.options.caps, req.output,
                              manifestmod.sha256_file(tmp_image), req.manifest, bin_info,
                              sources)
        tmp_manifest = outputs.temp_path(req.manifest, "json")
        tmp_files.append(tmp_manifest)
        with open(tmp_manifest, "w", encoding="utf-8") as f:
            f.write(manifestmod.dumps(m))
    elf.close()
    written = []
    # The image first, the manifest last: a manifest on disk always has its image beside it.
    outputs.commit(tmp_image, req.output)
    written.append(req.output)
    if tmp_bin:
        outputs.commit(tmp_bin, req.binary)
        written.append(req.binary)
    if tmp_manifest:
        outputs.commit(tmp_manifest, req.manifest)
        written.append(req.manifest)
    return written


def _sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


# -- cross-check ---------------------------------------------------------------------------------

def _signature(inp: Input, e: Entry) -> tuple:
    return (e.cap_raw, e.orig_len, e.alt_len)


def cross_check(objects: list[Input], image: Input, profile) -> list[Finding]:
    """Every entry collected from the objects must be in the image, in order, at the place its
    symbol+offset got, with the same site and replacement code (ALT013, ALT016)."""
    findings: list[Finding] = []
    img_entries = image.table.entries
    syms = _ImageSymbols(image.elf)
    pos = 0
    for obj in objects:
        ents = obj.table.entries
        if not ents:
            continue
        start = _find_block(obj, ents, image, img_entries, pos)
        if start is None:
            what = "the table is not in the image" if not img_entries else \
                "not found in the image's table"
            for e in ents:
                findings.append(finding(
                    "ALT013", f"entry is missing from the linked image ({what}; discarded by "
                    "the linker script or --gc-sections? keep the table with KEEP())",
                    obj.path, f"{e.table_section} entry {e.index} site "
                    f"{e.site.section}+{e.site.offset:#x}", entry=e.index))
            continue
        for j, e in enumerate(ents):
            ie = img_entries[start + j]
            findings += _compare_entry(obj, e, image, ie, syms, profile)
        pos = start + len(ents)
    return findings


def _find_block(obj: Input, ents: list[Entry], image: Input, img: list[Entry],
                pos: int) -> int | None:
    k = len(ents)
    first = _signature(obj, ents[0])
    candidates = [pos] + [i for i in range(len(img)) if i != pos]
    for i in candidates:
        if i + k > len(img):
            continue
        if _signature(image, img[i]) != first:
            continue
        if all(_signature(obj, e) == _signature(image, img[i + j]) and
               _site_matches(obj, e, image, img[i + j]) for j, e in enumerate(ents)):
            return i
    return None


def _masked_words(inp: Input, sec_index: int, offset: int, length: int) -> list[int | None]:
    """Words of an object's section, None where a relocation will change them."""
    sec = inp.elf.sections[sec_index]
    data = inp.elf.section_data(sec)
    relocs = inp.relocs_of(sec)
    n = length // 4
    if offset < 0 or offset + 4 * n > len(data):
        return []
    words = struct.unpack_from(f"<{n}I", data, offset)
    return [None if (offset + 4 * i) in relocs else w for i, w in enumerate(words)]


def _site_matches(obj: Input, e: Entry, image: Input, ie: Entry) -> bool:
    if not e.site.defined or ie.site.address is None:
        return False
    want = _masked_words(obj, e.site.section_index, e.site.offset, e.orig_len)
    got = image.elf.read_addr(ie.site.address, e.orig_len)
    if got is None or len(got) < 4 * len(want):
        return False
    have = struct.unpack(f"<{len(want)}I", got[:4 * len(want)])
    return all(w is None or w == h for w, h in zip(want, have))


class _ImageSymbols:
    def __init__(self, elf: ElfFile) -> None:
        self.by_name: dict[str, list[int]] = {}
        for s in elf.symbols:
            if s.defined and s.name and s.type != STT_SECTION:
                self.by_name.setdefault(s.name, []).append(s.value)
        self.globals = {s.name: s.value for s in elf.symbols
                        if s.defined and s.name and s.bind != STB_LOCAL}

    def addresses(self, name: str) -> list[int]:
        return self.by_name.get(name, [])


def _expected_addresses(obj: Input, shndx: int, offset: int, syms: _ImageSymbols) -> set[int]:
    """Where the image put an object's section offset, through the symbols defined there."""
    sym = None
    best = None
    for s in obj.elf.symbols:
        if s.shndx == shndx and s.name and s.type != STT_SECTION and s.value <= offset \
                and not s.name.startswith(("$", ".L")):
            key = (s.value, s.bind != STB_LOCAL)
            if best is None or key > best:
                best, sym = key, s
    if sym is None:
        return set()
    if sym.bind != STB_LOCAL and sym.name in syms.globals:
        return {syms.globals[sym.name] + offset - sym.value}
    return {a + offset - sym.value for a in syms.addresses(sym.name)}


def _compare_entry(obj: Input, e: Entry, image: Input, ie: Entry, syms: _ImageSymbols,
                   profile) -> list[Finding]:
    out: list[Finding] = []
    place = f"{e.table_section} entry {e.index} -> image entry {ie.index}"
    want = _expected_addresses(obj, e.site.section_index, e.site.offset, syms)
    if want and ie.site.address not in want:
        out.append(finding("ALT013", f"site is at {ie.site.address:#x} in the image, but "
                           f"{e.site.section}+{e.site.offset:#x} was linked at "
                           f"{min(want):#x}", obj.path, place, entry=e.index))
    if profile.is_callback(e.cap_raw):
        if e.alt.symbol and not e.alt.defined:
            got = syms.globals.get(e.alt.symbol)
            if got is not None and got != ie.alt.address:
                out.append(finding("ALT013", f"callback {e.alt.symbol} is at {got:#x}, but the "
                                   f"image entry points at {ie.alt.address:#x}", obj.path,
                                   place, entry=e.index))
        return out
    if not e.alt.defined or ie.alt.address is None:
        return out
    out += _compare_replacement(obj, e, image, ie, syms, place)
    return out


def _compare_replacement(obj: Input, e: Entry, image: Input, ie: Entry, syms: _ImageSymbols,
                         place: str) -> list[Finding]:
    """Re-read the replacement as linked: the linker may have rewritten it (ALT016)."""
    out: list[Finding] = []
    sec = obj.elf.sections[e.alt.section_index]
    n = e.alt_len // 4
    data = obj.elf.section_data(sec)
    if e.alt.offset + 4 * n > len(data):
        return out
    words = struct.unpack_from(f"<{n}I", data, e.alt.offset)
    got = image.elf.read_addr(ie.alt.address, 4 * n)
    if got is None or len(got) < 4 * n:
        out.append(finding("ALT013", "replacement is not in the image's contents", obj.path,
                           place, entry=e.index))
        return out
    linked = struct.unpack(f"<{n}I", got)
    relocs = obj.relocs_of(sec)
    for i, (w, lw) in enumerate(zip(words, linked)):
        r = relocs.get(e.alt.offset + 4 * i)
        pc = ie.alt.address + 4 * i
        before, after = insn.decode(w), insn.decode(lw)
        if r is None:
            if w != lw:
                out.append(finding("ALT016", f"the linker rewrote replacement instruction {i}: "
                                   f"{_dis(w, pc)} became {_dis(lw, pc)}", obj.path, place,
                                   entry=e.index))
            continue
        if before.kind != after.kind or before.name != after.name:
            out.append(finding("ALT016", f"the linker changed replacement instruction {i} from "
                               f"{before.name} to {after.name} ({_dis(lw, pc)})", obj.path, place,
                               entry=e.index))
            continue
        if after.kind == "branch26":
            try:
                sym = obj.elf.symbol(r.sym)
            except IndexError:
                continue
            if sym.name and sym.type != STT_SECTION and sym.bind != STB_LOCAL:
                want = syms.globals.get(sym.name)
                tgt = insn.target(lw, pc)
                if want is not None and tgt is not None and tgt != want + r.addend:
                    out.append(finding(
                        "ALT016", f"replacement instruction {i} branches to {tgt:#x}, not to "
                        f"{sym.name} at {want + r.addend:#x}: the linker redirected it through "
                        "a veneer or stub, which is not reachable once the code moves",
                        obj.path, place, entry=e.index))
    return out


def _dis(word: int, pc: int) -> str:
    d = insn.disasm(struct.pack("<I", word), pc)
    return d[0] if d else f"{word:#010x}"


# -- sorting ---------------------------------------------------------------------------------

def sort_table(path: str, image: Input) -> list[Finding]:
    """Sort the image's table by site address (stable), rewriting the relative offsets."""
    entries = image.table.entries
    if not entries:
        return []
    spans = sorted((e.site.address, e.site.address + e.orig_len, e.index) for e in entries)
    for (_a1, b1, i1), (a2, _b2, i2) in zip(spans, spans[1:]):
        if a2 < b1:
            return [finding("ALT010", f"--sort-table refused: entries {i1} and {i2} patch "
                            "overlapping sites, so their order matters", image.path,
                            f"site {a2:#x}")]
    sec = image.table.sections[0]
    if len(image.table.sections) != 1:
        return [finding("ALT012", "--sort-table needs exactly one .altinstructions section",
                        image.path)]
    order = sorted(entries, key=lambda e: (e.site.address, e.index))
    out = bytearray()
    for i, e in enumerate(order):
        addr = sec.addr + i * ENTRY_SIZE
        out += ENTRY.pack(e.site.address - addr, e.alt.address - (addr + 4), e.cap_raw,
                          e.orig_len, e.alt_len)
    image.elf.close()
    with open(path, "r+b") as f:
        f.seek(sec.offset)
        f.write(out)
    return []


def print_notes(notes: list[str]) -> None:
    for n in notes:
        sys.stderr.write(n + "\n")


__all__ = ["LinkRequest", "LinkResult", "link", "cross_check", "sort_table", "ET_REL"]
