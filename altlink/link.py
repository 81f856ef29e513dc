"""The link's flow: check the link set (its objects' records), run the real linker into a
temporary file (``linker``), check the linked image and cross-check it against what was
collected (``check_image``, ``crosscheck``), sort its table if asked (``tablesort``), then write
image, raw binary and manifest (``linkoutputs``).

Outputs are complete or absent: everything is written beside its target under a temporary
name and renamed into place only when every check has passed.
"""
from __future__ import annotations

import os
import stat
from functools import partial

from altlink import branches, forkmap, inputs, launcher, outputs
from altlink.check_image import check_after_link, check_unread_entries
from altlink.check_linkset import LinkDefined, collect
from altlink.crosscheck import (
    ARRAYS_FROM_ENTRIES,
    RecordColumns,
    cross_check,
    members_linked,
    names_asked,
    packed_columns_early,
)
from altlink.elf import ET_REL, read_elf
from altlink.errors import AltlinkError
from altlink.findings import Finding, Policy, has_errors
from altlink.gcpause import keep
from altlink.linkcmd import gcc_lto_plugin, wrapped_names
from altlink.linker import LinkStart
from altlink.linkoutputs import (
    EarlyWriter,
    commit,
    image_facts,
    make_files,
    temp_outputs,
    writer_texts,
)
from altlink.linkset import Input, Options
from altlink.records import ObjectRecord, default_cache_dir
from altlink.table import Profile
from altlink.values import Value, replace

# What the image shows of an entry the cross-check already reported from its object.
_SAME_PROBLEM = frozenset({"ALT012", "ALT013", "ALT016"})


# A default made for each request (a dataclass's ``default_factory``).
_MADE = object()


class LinkRequest(Value):
    """What ``link`` is asked to do: the linker's command, the outputs, the options. (A value
    class written out, as a dataclass's, ``values.Value``: a dataclass is made when its module
    is imported, a kernel module's link's time.)"""

    _fields = ("command", "output", "manifest", "binary", "options", "symbols_from",
               "sort_table", "source_lines", "policy", "cache_dir")
    command: list[str]
    output: str
    manifest: str | None
    binary: str | None
    options: Options
    symbols_from: list[str]
    sort_table: bool
    source_lines: bool
    policy: Policy
    # Where the objects' records are kept between links (records.ObjectCache); None: nowhere.
    cache_dir: str | None

    def __init__(self, command: list[str], output: str, manifest: str | None = None,
                 binary: str | None = None, options: Options = _MADE,
                 symbols_from: list[str] = _MADE, sort_table: bool = False,
                 source_lines: bool = False, policy: Policy = _MADE,
                 cache_dir: str | None = _MADE) -> None:
        self.command = command
        self.output = output
        self.manifest = manifest
        self.binary = binary
        self.options = Options() if options is _MADE else options
        self.symbols_from = [] if symbols_from is _MADE else symbols_from
        self.sort_table = sort_table
        self.source_lines = source_lines
        self.policy = Policy() if policy is _MADE else policy
        self.cache_dir = default_cache_dir() if cache_dir is _MADE else cache_dir


class LinkResult(Value):
    """What a link did: its findings and notes, and what it linked and wrote (a value class,
    as ``LinkRequest``)."""

    _fields = ("findings", "notes", "linked", "written", "stats")
    findings: list[Finding]
    notes: list[str]
    linked: bool
    written: list[str]
    # What was checked: objects, entries collected from them, entries in the linked image.
    stats: dict

    def __init__(self, findings: list[Finding], notes: list[str], linked: bool = False,
                 written: list[str] = _MADE, stats: dict = _MADE) -> None:
        self.findings = findings
        self.notes = notes
        self.linked = linked
        self.written = [] if written is _MADE else written
        self.stats = {} if stats is _MADE else stats


def link(req: LinkRequest, linker_stdout=None, linker_stderr=None,
         start: LinkStart | None = None) -> LinkResult:
    """Check, link, cross-check and write. The request's policy decides what stops the link
    (a silenced code does not, a warning made an error does), so that the outputs are written
    exactly when the run succeeds. ``start``: the command read and its linker started by the
    caller (``LinkStart``), before it imported this module; else that happens here first."""
    if start is None:
        start = LinkStart(req.command, req.output, linker_stdout, linker_stderr)
    cmd = start.cmd
    if launcher.is_relocatable(req.command):  # ld -r: undefined callbacks are the next link's
        req = replace(req, options=replace(req.options, partial=True))
    notes = inputs.Notes()
    tmp_files = start.tmp_files
    stats: dict = {}
    writer = early = None
    try:
        # The objects' section headers are checked where their records are made; those of an
        # object whose record is kept were checked when it was made (its key: the same bytes).
        loaded = inputs.load_elfs(cmd.inputs, notes=notes, defer=True, data=cmd.data)
        # (GCC's LTO plugin links the IR of -ffat-lto-objects objects, not their code)
        loaded = inputs.without_fat_lto(loaded, lambda: gcc_lto_plugin(cmd.argv), notes)
        if cmd.sources:
            notes.write(inputs.sources_note(cmd.sources))
        # Shared libraries on the command line are not linked in: they only define symbols (a
        # callback may live in one), as --symbols-from images do.
        objects = [e for e in loaded if e.type == ET_REL]
        shared = [e for e in loaded if e.type != ET_REL]
        archives = cmd.archives
        members = frozenset(o.path for o in objects
                            if any(o.path.startswith(a + "(") for a in archives))
        # So do the files the linker reads only for their symbols (-R, --just-symbols).
        images = [read_elf(p) for p in (*req.symbols_from, *cmd.just_symbols())] + shared
        by_link = LinkDefined(cmd.defined_by_link, wrapped_names(cmd.argv))
        records, profile, findings = collect(objects, req.options, images, req.cache_dir,
                                             by_link=by_link)
        stats["objects"] = len(objects)
        summaries = [r.summary() for r in records]  # records read back stay packed
        stats["entries"] = sum(len(s[0]) for s in summaries)
        stats["callbacks"] = sum(s[3].count(0) for s in summaries)  # (ObjectRecord.callbacks)
        findings = req.policy.apply(findings)
        # An archive member's findings are the link's only where the linker pulls the member
        # in (ld takes those that define a name the link needs): held until the image says.
        held = [f for f in findings if f.file in members] if members else []
        if held:
            findings = [f for f in findings if f.file not in members]
        if has_errors(findings):  # a linker already running is stopped: nothing of its shows
            start.stop()
            return LinkResult(_with_lines(findings), notes.lines, stats=stats)
        linker = start.linker_started()
        tmp_image = linker.tmp
        # numpy, for the image's ALT017 scan, is imported while the linker runs.
        numpy_import = branches.prefetch(
            0 if stats["entries"] >= branches.NUMPY_FROM_ENTRIES else  # (numpy in any case)
            sum(o.code_size() for o in objects), stats["entries"])
        _remove_earlier_outputs(req, cmd)
        # What the cross-check will ask of the image, made while the linker still runs: the
        # records' digests unpacked, the names they look up (a kernel link's 1,000 entries: 7
        # ms). Not for many entries: the forks after the link would start that much later.
        asked = names_asked(records) if linker.running() and \
            stats["entries"] <= ASK_EARLY_ENTRIES else None
        # More entries are compared as arrays, of the records' packed columns: those read while
        # the linker runs, a chunk at a time (the forks wait for no more than a chunk).
        packs = packed_columns_early(records, linker.running) if asked is None and \
            stats["entries"] >= ARRAYS_FROM_ENTRIES else None
        # And, all of them read with the linker still running, their arrays (numpy's, once
        # its thread has imported it): the cross-check after the linker is then the image's
        # side alone (the synthetic firmware's 40,000 entries: 8 ms of its 20).
        if type(packs) is RecordColumns and linker.running():
            if numpy_import is not None:
                numpy_import.join()
            if linker.running():
                packs.arrays(profile)
        # The outputs' writer, forked while the linker still runs where it may be (once numpy
        # is imported: one thread forks): it reads the codes' texts kept from earlier links
        # (``textcache``: beside the records), or makes them from the records' columns, while
        # the linker runs; then waits for the image, reads it itself and writes the outputs,
        # beside this process's checks. Where it may not be forked, the texts are made here.
        writes = bool(req.binary or req.manifest) and not req.sort_table
        kept = req.cache_dir if req.manifest and req.cache_dir and \
            stats["entries"] >= TEXTS_KEPT_FROM else None
        text_packs = packs if req.manifest and type(packs) is RecordColumns else None
        texts = None
        tmp_bin = tmp_manifest = None
        if (writes and linker.running()) or kept or text_packs is not None:
            # (once numpy is imported: one thread forks, and no module is imported here while
            # its thread imports: a dataclass made here would read its half-imported ``typing``)
            if numpy_import is not None:
                numpy_import.join()
            # (a manifest's: a link that asks for the raw binary alone forks its writer after
            # the linker, as one whose linker ended first)
            if writes and req.manifest and forkmap.can_fork() and linker.running():
                tmp_bin, tmp_manifest = temp_outputs(req, tmp_files)
                writer = early = EarlyWriter(req, profile, tmp_image, tmp_bin, tmp_manifest,
                                             kept, text_packs)
            elif kept or text_packs is not None:
                texts = writer_texts(kept, text_packs, linker.running)
        linker.finish()
        if numpy_import is not None:
            numpy_import.join()  # before any fork: forkmap forks only a single thread
        if writer is not None:
            writer.go()
        try:
            image = Input.load(read_elf(tmp_image))
        except AltlinkError as e:  # (an image that is not AArch64, say): named as the output
            raise type(e)(str(e).replace(tmp_image, req.output) + _not_elf_why(cmd, tmp_image)
                          ) from None
        stats["image_entries"] = image.table.size
        # The early writer's manifest ends with the image's digests and the raw binary's:
        # made here (and the raw binary written), while it writes the entries.
        if early is not None and image.elf.type != ET_REL:
            early.tell(image_facts(req, image.elf, tmp_image, tmp_bin))
        if writer is None and writes and image.elf.type != ET_REL:
            tmp_bin, tmp_manifest = temp_outputs(req, tmp_files)
            if forkmap.can_fork():  # written by a forked copy while the image is checked
                writer = forkmap.Forked(partial(make_files, req, image, profile, tmp_image,
                                                tmp_bin, tmp_manifest, texts))
                writer.start()
        placed: set[str] = set()
        # (the image's checks forked beside the cross-check only where no writer already
        # shares two CPUs with this process: a third process there only slows the writer)
        findings += req.policy.apply(check_linked(req, records, image, profile, members,
                                                  tmp_image, asked, packs, by_link.wrapped,
                                                  placed, fork=writer is None or
                                                  forkmap.cpus() > 2)
                                     + by_link.check_in_image(image)
                                     + _folded(cmd, image, objects, profile, req))
        if held:
            findings += _of_members_linked(held, objects, image, placed)
        if has_errors(findings):
            return LinkResult(_with_lines(findings, paths={req.output: tmp_image}),
                              notes.lines, linked=True, stats=stats)
        if req.sort_table:
            from altlink.tablesort import sort_table  # (asked for: --sort-table)

            sort_table(tmp_image, image, req.output)
            image.elf.close()
            image = Input.load(read_elf(tmp_image))
        if image.elf.type == ET_REL and (req.binary or req.manifest):
            raise AltlinkError(f"{req.output}: the linker made a relocatable object (ld -r), "
                               "which has no addresses: no raw binary or manifest for it; "
                               "link the final image for those")
        outputs.give_new_file_mode(tmp_image, executable=image.elf.type != ET_REL)
        findings = _with_lines(findings, paths={req.output: tmp_image})
        if writer is None or writer.result() is False:  # (False: the early writer wrote none)
            if tmp_bin is None and tmp_manifest is None:
                tmp_bin, tmp_manifest = temp_outputs(req, tmp_files)
            make_files(req, image, profile, tmp_image, tmp_bin, tmp_manifest, texts)
        image.elf.close()
        written = commit(req, tmp_image, tmp_bin, tmp_manifest)
        # not freed one by one on the way out (the records' columns: 3 ms of 40,000 entries)
        keep(loaded, records, image, packs, asked, summaries, texts, start)
        return LinkResult(findings, notes.lines, linked=True, written=written, stats=stats)
    finally:
        if writer is not None:
            writer.cancel()  # before the temporary files go: it writes some of them
        start.close()  # stops a linker still running (it writes one), removes the files
        forkmap.wait_ending()  # the forked copies' ends, which their results did not wait for


def _of_members_linked(held: list[Finding], objects: list, image: Input,
                       placed: set[str]) -> list[Finding]:
    """The findings ``held`` of the archive members that the linker pulled into ``image``:
    those whose entries the cross-check found there (``placed``), and those one of whose
    global definitions is there (``crosscheck.members_linked``). The findings of the members
    it left out are not the link's."""
    files = {f.file for f in held} - placed
    linked = placed | members_linked([o for o in objects if o.path in files], image)
    return [f for f in held if f.file in linked]


def _not_elf_why(cmd, path: str) -> str:
    """What to say after the error of a linked output that altlink cannot read as an image,
    where it is not ELF at all: a raw binary asked of the linker (ld.lld's ``--oformat
    binary``, a script's ``OUTPUT_FORMAT(binary)``), which has no table or symbols to
    cross-check."""
    from altlink.filekind import ELF_MAGIC, read_head
    from altlink.linkcmd import option_values

    head = read_head(path, 4)
    if head is None or head == ELF_MAGIC:
        return ""
    asked = "--oformat binary" if "binary" in option_values(cmd.argv, ("--oformat",)) else \
        "a raw binary?"
    return (f" (the linker wrote {asked}: altlink cross-checks the linked ELF image; link "
            "an ELF image and have altlink write the raw binary with --bin)")


def _folded(cmd, image: Input, objects: list, profile: Profile, req: LinkRequest) -> list:
    """ALT013 where the linker folded functions whose alternatives differ (``folding``): only
    for a command that asks for identical code folding (``--icf``)."""
    if image.elf.type == ET_REL or "icf" not in "\0".join(cmd.argv):  # (at C speed)
        return []
    from altlink import folding

    if not folding.requested(cmd.argv):
        return []
    return folding.check(image, objects, profile, req.options.caps)


def _with_lines(findings: list[Finding], **where) -> list[Finding]:
    """``sources.attach``: the findings with their source lines. Its module, and the DWARF
    reader it imports (4 ms of a module's link), are imported only where there are findings."""
    if not findings:
        return findings
    from altlink import sources

    return sources.attach(findings, **where)


def _remove_earlier_outputs(req: LinkRequest, cmd) -> None:
    """The outputs of an earlier link removed while the linker runs (as ld removes its output
    before it writes): this link replaces them, or, failing, removes them all the same
    (``cli.cmd_link``), and freeing an image's blocks is then not on the link's path. A
    target that is also read (an input, a script, a ``--symbols-from`` image) stays until it
    is replaced."""
    # The same file by its device and inode, whatever the path's spelling (a symbolic link,
    # "..", a hard link): the targets that exist first (none at a first link), then one
    # stat an input, not the 4,000 lstat calls of realpath for a 2,000-object link.
    present: dict[tuple[int, int], str] = {}
    sizes = set()
    for p in (req.output, req.manifest, req.binary):
        try:
            st = os.lstat(p) if p else None
        except OSError:
            continue
        if st is not None and stat.S_ISREG(st.st_mode):  # (remove_stale's rule)
            present[(st.st_dev, st.st_ino)] = p
            sizes.add(st.st_size)
    # (an input read whole when the command was read, of a size no target has, is none of
    # them: not looked at again)
    read = cmd.data
    for p in (*cmd.inputs, *cmd.scripts, *req.symbols_from):
        if not present:
            return
        got = read.get(p)
        if got is not None and len(got) not in sizes:
            continue
        try:
            st = os.stat(p)
        except OSError:
            continue
        present.pop((st.st_dev, st.st_ino), None)
    outputs.remove_stale(list(present.values()))


def check_linked(req: LinkRequest, records: list[ObjectRecord], image: Input, profile: Profile,
                 members: frozenset[str], tmp_image: str,
                 asked: set[str] | None = None, packs=None,
                 wrapped: frozenset[str] = frozenset(),
                 placed: set[str] | None = None, fork: bool = True) -> list[Finding]:
    """The linked image's findings: its own checks (``check_image``) and the cross-check
    against the objects' records (``crosscheck``), one finding a problem, naming the output
    (``req.output``) rather than the temporary file the linker wrote (``tmp_image``).
    ``asked`` and ``packs``: what the cross-check reads of the records, made while the linker
    ran (``cross_check``'s); ``wrapped``: the names the command wraps (``--wrap``);
    ``placed`` gets the paths of the objects whose entries were found in the image.
    ``fork``: whether the image's checks may run in a forked copy (False: here, after the
    cross-check)."""
    symtab = image.elf.symtab
    options = Options(profile, req.options.caps, req.options.module)
    checking = None
    # The image's checks run in a forked copy, beside the cross-check here, where both are
    # worth a fork (2 to 4 ms for a link's process, 15 ms at 250 MB, and as long again
    # waiting for the copy's end): the many links of a kernel's modules (tens of entries and
    # hundreds of symbols each) do both here, and so does a link of many entries but some
    # thousands of symbols (the synthetic firmware's checks take 7 ms here, 14 ms forked). The
    # cross-check, the larger, stays in this process: the same work in a fresh copy is slower
    # (each page it touches first is copied). Neither side decodes the whole symbol table
    # where numpy reads its columns (``symbols.columns_pay``): each reads what it asks for.
    symbols = symtab.size // 24 if symtab else 0
    if fork and forkmap.can_fork() and \
            _cross_check_cost(image.table.size, symbols) >= FORK_CROSS_CHECK_FROM and \
            _image_checks_cost(symbols) >= FORK_IMAGE_CHECKS_FROM:
        checking = forkmap.Forked(partial(check_after_link, image, options))
        checking.start()
    unmatched: list[int] = []
    try:
        crossed, seen = _crossed(records, image, profile, members, asked, packs, wrapped,
                                 unmatched, placed)
        post = checking.result() if checking is not None else \
            check_after_link(image, options)
    finally:
        if checking is not None:
            checking.cancel()
    if unmatched:  # code read by no one before the link (LTO, a driver's source): the rest
        post += check_unread_entries(image, options, unmatched)
    # One problem, one finding: where the cross-check reported an image entry from its
    # object (which names the source), the image's own view of it is not repeated (lld's
    # thunk after a replacement: ALT016 twice; a discarded site: ALT013 and ALT012).
    found = [f for f in post if not (
        f.entry in seen and f.file == tmp_image and f.code in _SAME_PROBLEM)] + crossed
    return [replace(f, file=req.output) if f.file == tmp_image else f for f in found]


# The entries from which a link that writes a manifest reads the texts of its codes kept by
# earlier links (``textcache``) and keeps those it makes: where they take more than a few
# milliseconds to make.
TEXTS_KEPT_FROM = 2_000


# The entries whose names the link gathers for the cross-check while its linker runs, at most.
ASK_EARLY_ENTRIES = 5_000


# The cross-check's own time, as measured on the synthetic firmware and the kernel builds: about
# 5 µs an image entry and 0.3 µs an image symbol (indexed by name). Above 10 ms it is forked.
FORK_CROSS_CHECK_FROM = 10e-3


# The image's checks' own time, as measured on the synthetic firmware (18,000 symbols: 7 ms)
# and Debian's vmlinux (155,000: 70 ms): about 0.4 µs an image symbol (the function map, the
# callbacks named, ALT017's scan beside). From 15 ms they are forked.
FORK_IMAGE_CHECKS_FROM = 15e-3


def _image_checks_cost(symbols: int) -> float:
    return symbols * 0.4e-6


def _cross_check_cost(entries: int, symbols: int) -> float:
    return entries * 5e-6 + symbols * 0.3e-6


def _crossed(records: list[ObjectRecord], image: Input, profile: Profile,
             members: frozenset[str], asked: set[str] | None = None,
             packs=None, wrapped: frozenset[str] = frozenset(),
             unmatched: list[int] | None = None, placed: set[str] | None = None
             ) -> tuple[list[Finding], set[int]]:
    """``cross_check``'s findings and the image entries they were made for."""
    seen: set[int] = set()
    return cross_check(records, image, profile, members, seen, asked=asked, packs=packs,
                       wrapped=wrapped, unmatched=unmatched, placed_paths=placed), seen


__all__ = ["LinkRequest", "LinkResult", "link", "check_linked"]
