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
from functools import partial

from altlink import (
    archive,
    branches,
    forkmap,
    inputs,
    insn,
    launcher,
    linkcmd,
    outputs,
    rawbin,
    sources,
)
from altlink import manifest as manifestmod
from altlink.checks import Checker
from altlink.elf import ET_REL, SHT_NOBITS, STB_LOCAL, STT_SECTION, ElfFile, read_elf
from altlink.errors import AltlinkError, LinkerError
from altlink.findings import Finding, Policy, finding, has_errors
from altlink.linkset import Input, Options
from altlink.records import (
    EntryDigest,
    ObjectRecord,
    Target,
    check_records,
    default_cache_dir,
    expected,
    make_record,
    masked_words,
    records_of,
)
from altlink.table import ENTRY, ENTRY_SIZE, Entry, Profile

# The checks that only a linked image can answer; the others were made on the objects.
POST_LINK_CODES = frozenset({"ALT009", "ALT013", "ALT014", "ALT016", "ALT017", "ALT018"})
# What the image shows of an entry the cross-check already reported from its object.
_SAME_PROBLEM = frozenset({"ALT012", "ALT013", "ALT016"})


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
    policy: Policy = field(default_factory=Policy)
    # Where the objects' records are kept between links (records.ObjectCache); None: nowhere.
    cache_dir: str | None = field(default_factory=lambda: default_cache_dir())


@dataclass
class LinkResult:
    findings: list[Finding]
    notes: list[str]
    linked: bool = False
    written: list[str] = field(default_factory=list)
    # What was checked: objects, entries collected from them, entries in the linked image.
    stats: dict = field(default_factory=dict)


def link(req: LinkRequest, linker_stdout=None, linker_stderr=None) -> LinkResult:
    """Check, link, cross-check and write. The request's policy decides what stops the link
    (a silenced code does not, a warning made an error does), so that the outputs are written
    exactly when the run succeeds."""
    cmd = linkcmd.parse(req.command)
    if launcher.is_relocatable(req.command):  # ld -r: undefined callbacks are the next link's
        req = replace(req, options=replace(req.options, partial=True))
    notes = inputs.Notes()
    loaded = inputs.load_elfs(cmd.inputs, notes=notes)
    # Shared libraries on the command line are not linked in: they only define symbols (a
    # callback may live in one), as --symbols-from images do.
    objects = [e for e in loaded if e.type == ET_REL]
    shared = [e for e in loaded if e.type != ET_REL]
    archives = [p for p in cmd.inputs if archive.is_archive(p)]
    members = frozenset(o.path for o in objects
                        if any(o.path.startswith(a + "(") for a in archives))
    images = [read_elf(p) for p in req.symbols_from] + shared

    tmp_files: list[str] = []
    stats: dict = {}
    linker = writer = None
    try:
        records, profile, findings = collect(objects, req.options, images, req.cache_dir)
        stats["objects"] = len(objects)
        stats["entries"] = sum(len(r.digest) for r in records)
        stats["callbacks"] = sum(d.alt_len == 0 for r in records for d in r.digest)
        findings = req.policy.apply(findings)
        if has_errors(findings):  # the linker does not run: no map, no messages of its own
            return LinkResult(sources.attach(findings), notes.lines, stats=stats)
        tmp_image = outputs.temp_path(req.output, "elf", tmp_files)
        linker = _Linker(cmd.with_output(tmp_image), linker_stdout, linker_stderr, tmp_image,
                         req.output)
        linker.start()
        # numpy, for the image's ALT017 scan, is imported while the linker runs.
        numpy_import = branches.prefetch(sum(s.size for o in objects for s in o.sections
                                             if s.executable))
        linker.finish()
        if numpy_import is not None:
            numpy_import.join()  # before any fork: forkmap forks only a single thread
        image = Input.load(read_elf(tmp_image))
        stats["image_entries"] = len(image.table.entries)
        tmp_bin = tmp_manifest = None
        if not req.sort_table and image.elf.type != ET_REL and (req.binary or req.manifest):
            tmp_bin, tmp_manifest = _temp_outputs(req, tmp_files)
            if forkmap.can_fork():  # written by a forked copy while the image is checked
                writer = forkmap.Forked(partial(_make_files, req, image, profile, tmp_image,
                                                tmp_bin, tmp_manifest))
                writer.start()
        post = Checker([image], Options(profile, req.options.caps, req.options.module),
                       images)
        post.only = POST_LINK_CODES
        seen: set[int] = set()
        crossed = cross_check(records, image, profile, members, seen)
        # One problem, one finding: where the cross-check reported an image entry from its
        # object (which names the source), the image's own view of it is not repeated (lld's
        # thunk after a replacement: ALT016 twice; a discarded site: ALT013 and ALT012).
        post_findings = [f for f in post.run() if not (
            f.entry in seen and f.file == tmp_image and f.code in _SAME_PROBLEM)] + crossed
        # Findings in the linked image name the output, not the temporary file.
        findings += req.policy.apply([replace(f, file=req.output) if f.file == tmp_image else f
                                      for f in post_findings])
        if has_errors(findings):
            return LinkResult(sources.attach(findings, paths={req.output: tmp_image}),
                              notes.lines, linked=True, stats=stats)
        if req.sort_table:
            sort_table(tmp_image, image, req.output)
            image.elf.close()
            image = Input.load(read_elf(tmp_image))
        if image.elf.type == ET_REL and (req.binary or req.manifest):
            raise AltlinkError(f"{req.output}: the linker made a relocatable object (ld -r), "
                               "which has no addresses: no raw binary or manifest for it; "
                               "link the final image for those")
        os.chmod(tmp_image, (0o666 if image.elf.type == ET_REL else 0o777) & ~outputs._umask())
        findings = sources.attach(findings, paths={req.output: tmp_image})
        if writer is not None:
            writer.result()
        else:
            if tmp_bin is None and tmp_manifest is None:
                tmp_bin, tmp_manifest = _temp_outputs(req, tmp_files)
            _make_files(req, image, profile, tmp_image, tmp_bin, tmp_manifest)
        image.elf.close()
        written = _commit(req, tmp_image, tmp_bin, tmp_manifest)
        return LinkResult(findings, notes.lines, linked=True, written=written, stats=stats)
    finally:
        if linker is not None:
            linker.stop()  # before the temporary files go: it writes one of them
        if writer is not None:
            writer.cancel()  # likewise
        for t in tmp_files:
            outputs.remove(t)


def collect(objects: list[ElfFile], options: Options, images: list[ElfFile],
            cache_dir: str | None) -> tuple[list[ObjectRecord], Profile, list[Finding]]:
    """The records of a link set's objects, the profile (NCAPS resolved) and the pre-link
    findings: those Checker makes over the objects, in its order."""
    from altlink.checks import resolve_ncaps

    profile_findings: list[Finding] = []
    profile = options.profile
    # The objects' ALT017 scans (over whole sections where replacements live in .text).
    branches.preload(sum(s.size for o in objects for s in o.sections if s.executable))
    if options.caps is not None or profile.ncaps is not None or profile.abi != "linux-v4.17":
        profile = resolve_ncaps(profile, options.caps, [], profile_findings)
        opts = replace(options, profile=profile)
        records = records_of(objects, opts, cache_dir)
    else:  # NCAPS is inferred from every entry of the link set: nothing can be kept
        loaded = [Input.load(e) for e in objects]
        profile = resolve_ncaps(profile, None, [i.table for i in loaded], profile_findings)
        opts = replace(options, profile=profile, caps=None)
        records = [make_record(i, opts) for i in loaded]
    if not opts.module and any(r.is_module for r in records):
        # The module structure in any object makes the whole link set a module (ALT015).
        opts = replace(opts, module=True)
        records = records_of(objects, opts, cache_dir, [r._input for r in records])
    findings = [f for r in records for f in r.table_findings] + profile_findings
    return records, profile, check_records(records, opts, images, findings)


class _Linker:
    """The real linker, writing a temporary image. Its messages go to
    ``stderr`` (altlink's own by default) once it is done, with the temporary output's name
    replaced by the real one, so that they name a file the user knows ("fw.elf has a LOAD
    segment with RWX permissions")."""

    def __init__(self, argv: list[str], stdout, stderr, tmp: str, output: str) -> None:
        self.argv, self.tmp, self.output = argv, tmp, output
        self.stdout, self.stderr = stdout, stderr
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it with signals held, once the caller holds this object: an interrupt then
        comes after ``proc`` is known, so the caller's clean-up stops the linker, which would
        otherwise go on to write the temporary file after altlink removed it."""
        with outputs.signals_held():
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdout=self.stdout,
                    stderr=subprocess.PIPE if self.stderr is None else self.stderr)
            except OSError as e:
                raise LinkerError(f"{self.argv[0]}: cannot run the linker: {e.strerror}") \
                    from None

    def finish(self) -> None:
        """Wait for the linker; its messages are shown; LinkerError when it failed."""
        proc = self.proc
        _, err = proc.communicate()
        self.proc = None
        if err:
            err = err.replace(self.tmp.encode(), self.output.encode()).replace(
                os.path.basename(self.tmp).encode(), os.path.basename(self.output).encode())
            out = getattr(sys.stderr, "buffer", None)
            if out is not None:
                sys.stderr.flush()
                out.write(err)
                out.flush()
            else:
                sys.stderr.write(err.decode("utf-8", "replace"))
        if proc.returncode != 0:
            raise LinkerError(f"altlink link: the linker failed (exit {proc.returncode}): "
                              f"{self.argv[0]}")

    def stop(self) -> None:
        """A linker still running (altlink was interrupted) is ended and its messages
        dropped: the link did not happen."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate()


def _temp_outputs(req: LinkRequest, tmp_files: list[str]) -> tuple[str | None, str | None]:
    """The temporary files of the raw binary and the manifest, as the request asks for them."""
    return (outputs.temp_path(req.binary, "bin", tmp_files) if req.binary else None,
            outputs.temp_path(req.manifest, "json", tmp_files) if req.manifest else None)


def _make_files(req: LinkRequest, image: Input, profile, tmp_image: str, tmp_bin: str | None,
                tmp_manifest: str | None) -> None:
    """Write the raw binary and the manifest of the image into their temporary files."""
    elf = image.elf
    bin_info = None
    if tmp_bin:
        lay = rawbin.layout(elf)
        data = rawbin.raw_binary(elf, lay)
        with open(tmp_bin, "wb") as f:
            f.write(data)
        bin_info = manifestmod.BinInfo(req.binary, _sha(data), lay)
    if tmp_manifest:
        lines = None
        if req.source_lines:
            lines = sources.site_lines(tmp_image, [e.site.address for e in image.table.entries],
                                       os.path.dirname(os.path.abspath(req.manifest)))
        # An entry check refuses, let through by -W no-CODE, is still left out of the
        # manifest (the link's own checks found nothing else at error severity).
        m = manifestmod.build(image, profile, req.options.caps, req.output,
                              manifestmod.sha256_file(tmp_image), req.manifest, bin_info,
                              lines, refuse=bool(req.policy.disabled))
        with open(tmp_manifest, "w", encoding="utf-8") as f:
            f.write(manifestmod.dumps(m))


def _commit(req: LinkRequest, tmp_image: str, tmp_bin: str | None,
            tmp_manifest: str | None) -> list[str]:
    written = []
    # The image first, the manifest last: a manifest on disk always has its image beside it;
    # and no signal between the renames (a new image beside the old manifest).
    with outputs.signals_held():
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

def _signature(e) -> tuple:
    return (e.cap_raw, e.orig_len, e.alt_len)


def cross_check(objects: list[ObjectRecord], image: Input, profile,
                members: frozenset[str] = frozenset(),
                reported: set[int] | None = None) -> list[Finding]:
    """Every entry collected from the objects must be in the image, at the place its
    symbol+offset got, with the same site and replacement code (ALT013, ALT016).

    An object's entries are found in the image as one block, in their order. First every
    object whose sites all match is placed; then an object whose block is there with some
    sites moved or gone (a /DISCARD/ rule that lld lets through) is placed by its other
    entries and replacements, and the entries that differ are reported one by one. ``members``
    names the inputs that are archive members: the linker pulls in only some of them, and the
    entries of one it did not link are not missing. The objects are compared through their
    records' digests; only those rarer paths read an object again. ``reported`` gets the
    image entries a finding was made for.
    """
    findings: list[Finding] = []
    img = image.table.entries
    syms = _ImageSymbols(image.elf)
    used: set[int] = set()
    placed: dict[int, int] = {}
    todo = [k for k, obj in enumerate(objects) if obj.digest]
    memo: dict[tuple[int, int, int], bool] = {}

    def site_ok(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry) -> bool:
        """_site_matches, once per pair: placing and comparing ask the same question."""
        key = (id(obj), e.pos, ie.index)
        got = memo.get(key)
        if got is None:
            got = memo[key] = e.site_words is not None and \
                _words_match(e.site_words, _words_at(image, ie.site, e.orig_len))
        return got

    def alt_ok(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry) -> bool:
        full = obj.full()
        return _alt_matches(full, full.table.entries[e.pos], image, ie, syms, profile)

    # Where an object's block may be. With the image's symbols: where they say its first site
    # went. Else where the last block ended, then the image entries with the signature and
    # the first site word of its first entry (the first pass) or only the signature (the
    # second, where sites may differ). Never the whole table for each object: that grows
    # with the square of the objects (tables out of link order, archive members the linker
    # left out). The index is made when first needed.
    by_sig: dict[tuple, list[int]] = {}
    by_word: dict[tuple, list[int]] = {}
    by_addr: dict[int | None, list[int]] = {}

    def index() -> None:
        if by_sig or not img:
            return
        for i, ie in enumerate(img):
            sig = _signature(ie)
            by_sig.setdefault(sig, []).append(i)
            got = _words_at(image, ie.site, 4)
            by_word.setdefault((sig, got[0] if got else None), []).append(i)
            by_addr.setdefault(ie.site.address, []).append(i)

    def by_site(e: EntryDigest, pos: int):
        if image.elf.type != ET_REL:  # ld -r: symbols are not addresses yet
            want = expected(e.site_anchor, syms)
            if want:
                if pos < len(img) and img[pos].site.address in want:
                    yield pos  # in link order, as usual: no index needed
                index()
                yield from sorted(i for a in want for i in by_addr.get(a, ()))
                return
        yield pos
        index()
        sig = _signature(e)
        if not e.site_words or e.site_words[0] is None:  # relocated: any word
            yield from by_sig.get(sig, [])
        else:  # a word the image cannot show (None) may be it too
            yield from sorted(by_word.get((sig, e.site_words[0]), []) +
                              by_word.get((sig, None), []))

    def by_signature(e: EntryDigest, pos: int):
        yield pos
        index()
        yield from by_sig.get(_signature(e), [])

    def place(match, candidates) -> None:
        pos = 0
        for k in todo:
            if k in placed:
                continue
            obj = objects[k]
            start = _find_block(obj, image, img, used, match, candidates(obj.digest[0], pos))
            if start is not None:
                n = len(obj.digest)
                placed[k] = start
                used.update(range(start, start + n))
                pos = start + n

    place(site_ok, by_site)
    unplaced = [k for k in todo if k not in placed and
                (objects[k].path not in members or
                 _member_linked(objects[k].full(), image, syms))]
    if unplaced:
        todo = unplaced
        place(lambda obj, e, image, ie: site_ok(obj, e, image, ie) or
              alt_ok(obj, e, image, ie), by_signature)
    for k, obj in enumerate(objects):
        if k in placed:
            for j, e in enumerate(obj.digest):
                ie = img[placed[k] + j]
                if not site_ok(obj, e, image, ie):
                    made = [_moved_site(obj, e, image, ie)]
                elif image.elf.type != ET_REL:  # addresses and linked code: images only
                    made = _compare_entry(obj, e, image, ie, syms, profile)
                else:
                    continue
                if made and reported is not None:
                    reported.add(ie.index)
                findings += made
        elif k in unplaced:
            what = "the table is not in the image" if not img else \
                "not found in the image's table"
            for e in obj.digest:
                findings.append(finding(
                    "ALT013", f"entry is missing from the linked image ({what}; discarded by "
                    "the linker script or --gc-sections? keep the table with KEEP())",
                    obj.path, f"{e.table_section} entry {e.index} site "
                    f"{e.site_section}+{e.site_offset:#x}", entry=e.index))
    return findings


def _find_block(obj: ObjectRecord, image: Input, img: list[Entry], used: set[int], match,
                candidates) -> int | None:
    """The first of the image positions ``candidates`` where the object's entries are, unused,
    as one block."""
    ents = obj.digest
    k = len(ents)
    first = _signature(ents[0])
    for i in candidates:
        if i + k > len(img) or _signature(img[i]) != first:
            continue
        if any(i + j in used for j in range(k)):
            continue
        if all(_signature(e) == _signature(img[i + j]) and
               match(obj, e, image, img[i + j]) for j, e in enumerate(ents)):
            return i
    return None


def _words_at(image: Input, place, length: int) -> list[int | None] | None:
    """The words at a place of the output: by address in an image; by section and offset,
    masked where relocations remain, in a relocatable output (``ld -r``)."""
    if image.elf.type == ET_REL:
        if not place.defined or place.section_index >= len(image.elf.sections):
            return None
        return masked_words(image, place.section_index, place.offset, length) or None
    data = image.elf.read_addr(place.address, length) if place.address is not None else None
    if data is None or len(data) < length:
        return None
    return struct.unpack(f"<{length // 4}I", data[:length // 4 * 4])


def _words_match(want, got) -> bool:
    """The words agree where both are known (None: changed by a relocation)."""
    if got is None or len(got) < len(want):
        return False
    if None not in want and None not in got:  # the usual case, compared at C speed
        return tuple(got[:len(want)]) == tuple(want)
    return all(w is None or h is None or w == h for w, h in zip(want, got))


def _alt_matches(obj: Input, e: Entry, image: Input, ie: Entry, syms: _ImageSymbols,
                 profile) -> bool:
    """The entry's replacement (or callback) is the image entry's: evidence that the image
    entry is this one even where its site is not."""
    if profile.is_callback(e.cap_raw):
        if not e.alt.symbol:
            return False
        if image.elf.type == ET_REL:
            return ie.alt.symbol == e.alt.symbol
        return ie.alt.address in syms.addresses(e.alt.symbol)
    if not e.alt.defined or not e.alt_len:
        return False
    want = masked_words(obj, e.alt.section_index, e.alt.offset, e.alt_len)
    return bool(want) and _words_match(want, _words_at(image, ie.alt, e.alt_len))


def _moved_site(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry) -> Finding:
    """ALT013 for an entry that is in the image but whose site is not the object's code."""
    addr = ie.site.address
    where = f"{e.site_section}+{e.site_offset:#x}"
    if addr is None:  # a relocatable output
        msg = (f"site {where} is {ie.site.describe()} in the output, which does not hold the "
               "object's code for it")
        return finding("ALT013", msg, obj.path,
                       f"{e.table_section} entry {e.index} -> output entry {ie.index}",
                       entry=e.index)
    sec = image.elf.section_at(addr)
    if sec is None or not sec.executable:
        inside = f"in {sec.name}" if sec is not None else "outside every section"
        msg = (f"site {where} is at {addr:#x} in the image, {inside}: the linker discarded "
               f"{e.site_section} (a /DISCARD/ rule, or --gc-sections) but kept the entry, "
               "which now patches whatever is at that address")
    else:
        msg = (f"site {where} is at {addr:#x} in the image ({sec.name}), which does not hold "
               "the object's code for it")
    return finding("ALT013", msg, obj.path,
                   f"{e.table_section} entry {e.index} -> image entry {ie.index}",
                   entry=e.index)


def _member_linked(obj: Input, image: Input, syms: _ImageSymbols) -> bool:
    """Did the linker pull this archive member in? Yes when one of its global definitions is
    in the image with the member's own bytes there."""
    for s in obj.elf.symbols:
        if not s.name or s.bind == STB_LOCAL or not s.defined or s.type == STT_SECTION or \
                not 0 < s.shndx < len(obj.elf.sections):
            continue
        sec = obj.elf.sections[s.shndx]
        if not sec.alloc or sec.type == SHT_NOBITS:
            continue
        if image.elf.type == ET_REL and s.name in syms.globals:
            return True  # ld -r: names are all there is to go by
        for addr in syms.addresses(s.name):
            n = min(16, sec.size - s.value) // 4
            if n <= 0:
                continue
            want = masked_words(obj, s.shndx, s.value, 4 * n)
            if any(w is not None for w in want) and \
                    _words_match(want, _words_at(image, _Addr(addr), 4 * n)):
                return True
    return False


@dataclass(frozen=True)
class _Addr:
    """An address of an image, where a table Place is expected."""

    address: int
    defined: bool = True


class _ImageSymbols:
    def __init__(self, elf: ElfFile) -> None:
        self.elf = elf
        self.by_name: dict[str, list[int]] = {}
        # s.shndx, not the property s.defined: every symbol of the image passes here
        for s in elf.symbols:
            if s.shndx and s.name and s.type != STT_SECTION:
                self.by_name.setdefault(s.name, []).append(s.value)
        self.globals = {s.name: s.value for s in elf.symbols
                        if s.shndx and s.name and s.bind != STB_LOCAL}
        self._names: dict[int, list[str]] | None = None

    def addresses(self, name: str) -> list[int]:
        return self.by_name.get(name, [])

    def names_at(self, addr: int) -> list[str]:
        if self._names is None:
            self._names = {}
            for name, addrs in self.by_name.items():
                for a in addrs:
                    self._names.setdefault(a, []).append(name)
        return self._names.get(addr, [])


def _compare_entry(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry,
                   syms: _ImageSymbols, profile) -> list[Finding]:
    out: list[Finding] = []
    place = f"{e.table_section} entry {e.index} -> image entry {ie.index}"
    want = expected(e.site_anchor, syms)
    if want and ie.site.address not in want:
        out.append(finding("ALT013", f"site is at {ie.site.address:#x} in the image, but "
                           f"{e.site_section}+{e.site_offset:#x} was linked at "
                           f"{min(want):#x}", obj.path, place, entry=e.index))
    if profile.is_callback(e.cap_raw):
        if e.alt_symbol and not e.alt_defined:
            got = syms.globals.get(e.alt_symbol)
            if got is not None and got != ie.alt.address:
                out.append(finding("ALT013", f"callback {e.alt_symbol} is at {got:#x}, but the "
                                   f"image entry points at {ie.alt.address:#x}", obj.path,
                                   place, entry=e.index))
        return out
    if not e.alt_defined or ie.alt.address is None or e.alt_words is None:
        return out
    out += _compare_replacement(obj, e, image, ie, syms, place)
    return out


# Names the linkers give the code they insert: GNU ld's veneers and erratum stubs, lld's
# thunks and erratum patches.
_STUB_MARKS = ("_veneer", "__AArch64AbsLongThunk_", "__AArch64ADRPThunk_", "Thunk_",
               "__CortexA53843419_", "__erratum_843419_", "__erratum_835769_")


def _looks_like_stub(image: Input, syms: _ImageSymbols, addr: int) -> bool:
    """Code the linker made: named as a veneer or thunk, or the veneer sequences themselves
    (``insn.is_veneer``)."""
    if any(m in n for n in syms.names_at(addr) for m in _STUB_MARKS):
        return True
    code = image.elf.read_addr(addr, 12)
    if code is None or len(code) < 8:
        return False
    return insn.is_veneer(struct.unpack(f"<{len(code) // 4}I", code))


def _branch_targets(t: Target, syms: _ImageSymbols) -> set[int]:
    """The image addresses a relocated branch of an object was meant to reach (empty when
    the image does not say)."""
    if t.global_name is not None and t.global_name in syms.globals:
        return {syms.globals[t.global_name] + t.addend}
    return expected(t.anchor, syms)


def _compare_replacement(obj: ObjectRecord, e: EntryDigest, image: Input, ie: Entry,
                         syms: _ImageSymbols, place: str) -> list[Finding]:
    """Re-read the replacement as linked: the linker may have rewritten it (ALT016)."""
    out: list[Finding] = []
    words = e.alt_words
    n = len(words)
    got = image.elf.read_addr(ie.alt.address, 4 * n)
    if got is None or len(got) < 4 * n:
        out.append(finding("ALT013", "replacement is not in the image's contents", obj.path,
                           place, entry=e.index))
        return out
    linked = struct.unpack(f"<{n}I", got)
    for i, (w, lw, r) in enumerate(zip(words, linked, e.alt_relocs)):
        pc = ie.alt.address + 4 * i
        if r is None:
            if w != lw:
                out.append(finding("ALT016", f"the linker rewrote replacement instruction {i}: "
                                   f"{_dis(w, pc)} became {_dis(lw, pc)}", obj.path, place,
                                   entry=e.index))
            continue
        before, after = insn.decode(w), insn.decode(lw)
        if before.kind != after.kind or before.name != after.name:
            out.append(finding("ALT016", f"the linker turned replacement instruction {i} "
                               f"({_mnemonic(w)}) into {_dis(lw, pc)}: an erratum fix or "
                               "relaxation, which is not valid once the code moves", obj.path,
                               place, entry=e.index))
            continue
        if after.kind == "branch26" and isinstance(r, Target):
            tgt = insn.target(lw, pc)
            if tgt is None:
                continue
            want = _branch_targets(r, syms)
            if (tgt not in want) if want else _looks_like_stub(image, syms, tgt):
                to = f"{r.name} at {min(want):#x}" if want else r.name
                out.append(finding(
                    "ALT016", f"replacement instruction {i} branches to {tgt:#x}, not to "
                    f"{to}: the linker redirected it through a veneer or stub, which is not "
                    "reachable once the code moves (place the target within 128 MiB of the "
                    "replacement and of the site)", obj.path, place, entry=e.index))
    return out


def _dis(word: int, pc: int) -> str:
    d = insn.disasm(struct.pack("<I", word), pc)
    return d[0] if d else f"{word:#010x}"


def _mnemonic(word: int) -> str:
    """The instruction as the object holds it (before relocation: the operands are not
    meaningful yet)."""
    return _dis(word, 0).split(" ", 1)[0]


# -- sorting ---------------------------------------------------------------------------------

def sort_table(path: str, image: Input, name: str | None = None) -> None:
    """Sort the image's table by site address, rewriting the relative offsets in place.

    The sort is stable, so entries for the same site keep their order (the later one still
    wins). It is refused (AltlinkError) where it would change the meaning of the table: two
    overlapping sites whose entries it would reorder, or a table that relocations still
    describe (``--emit-relocs``). ``name`` is how messages call the image.
    """
    name = name or path
    entries = image.table.entries
    if not entries:
        return
    if len(image.table.sections) != 1:
        raise AltlinkError(f"{name}: --sort-table needs exactly one .altinstructions section, "
                           f"the image has {len(image.table.sections)}")
    sec = image.table.sections[0]
    if image.elf.relocation_sections_for(sec):
        raise AltlinkError(f"{name}: --sort-table refused: relocations describe "
                           ".altinstructions (--emit-relocs?) and would no longer match it")
    order = sorted(entries, key=lambda e: (e.site.address, e.index))
    active: list[Entry] = []  # earlier in sorted order, still overlapping the current site
    for e in order:
        active = [a for a in active if a.site.address + a.orig_len > e.site.address]
        for a in active:
            if a.index > e.index and a.site.address < e.site.address:
                raise AltlinkError(
                    f"{name}: --sort-table refused: entries {e.index} (site "
                    f"{e.site.address:#x}, {e.orig_len} bytes) and {a.index} (site "
                    f"{a.site.address:#x}, {a.orig_len} bytes) patch overlapping sites, and "
                    "sorting would change which one is applied last; fix the overlap (ALT010) "
                    "or link without --sort-table")
        active.append(e)
    out = bytearray()
    for i, e in enumerate(order):
        addr = sec.addr + i * ENTRY_SIZE
        rel = (_rel32(e.site.address, addr), _rel32(e.alt.address, addr + 4))
        if None in rel:  # only an entry reported outside the image (ALT012) can be this far
            raise AltlinkError(f"{name}: --sort-table refused: entry {e.index} (site "
                               f"{e.site.address:#x}, replacement {e.alt.address:#x}) is out "
                               f"of reach of a 32-bit offset from its new place {addr:#x}")
        out += ENTRY.pack(*rel, e.cap_raw, e.orig_len, e.alt_len)
    image.elf.close()
    with open(path, "r+b") as f:
        f.seek(sec.offset)
        f.write(out)


def _rel32(target: int, field: int) -> int | None:
    """The s32 offset from ``field`` to ``target`` in 64-bit address arithmetic, or None."""
    rel = (target - field + (1 << 63)) % (1 << 64) - (1 << 63)
    return rel if -(1 << 31) <= rel < 1 << 31 else None


__all__ = ["LinkRequest", "LinkResult", "link", "cross_check", "sort_table"]
