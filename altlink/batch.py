"""Checking many files at once: kernel modules (each a finished link of its own) one by one,
over the machine's cores, through their records where there is a record cache; the other
objects as one link set; images each alone."""
from __future__ import annotations

from functools import partial

from altlink import forkmap, progress
from altlink.elf import ET_REL, ElfFile, map_elf, read_elf
from altlink.errors import AltlinkError
from altlink.findings import Finding
from altlink.gcpause import keep
from altlink.linkset import MODULE_SECTION, Input, Options, is_module_elf
from altlink.values import replace

TYPE_CHECKING = False  # (``typing``'s, without its import: 2 ms of a check)
if TYPE_CHECKING:
    from typing import TextIO

PARALLEL_MIN = 64  # fewer modules than this are not worth a second process


def _check_modules(items: list[tuple[int, str, ElfFile | None]], options: Options,
                   symbols_from: list[str], cache_dir: str | None = None,
                   images: list[ElfFile] | None = None, shown=None
                   ) -> tuple[list[tuple[int, list[Finding]]],
                              list[tuple[int, str, ElfFile | None]]]:
    """Check each file that is a kernel module alone, closing it after: its findings under its
    position; the other files' positions, paths and mappings are returned for the caller to
    check (the mapping None where it was not made here: in a forked worker, or unreadable).
    ``items`` are the files that may be modules (``_sort_out``), mapped, or None where the
    file is to be mapped here (a ``.ko`` file: read by the worker that checks it).

    With ``cache_dir``, each module is checked as the link set of one object it is, through
    its record (``check_linkset.collect``, as the objects are): a module checked before, and
    unchanged, is not checked again. numpy is imported for the scans of those whose records
    are made, where the modules are large enough (``_preload_scan``): not at all where every
    record is kept."""
    if images is None:
        images = [read_elf(p) for p in symbols_from]
    making = _Once(partial(_preload_scan, [path for _pos, path, _elf in items])) \
        if cache_dir is not None else None
    found: list[tuple[int, list[Finding]]] = []
    others: list[tuple[int, str, ElfFile | None]] = []
    keep = not forkmap.in_child()  # a mapping made here can go back to the caller
    if shown is None:
        shown = progress.task("checking files", len(items))
    for pos, path, elf in items:
        shown.advance()
        if elf is None:
            try:
                elf = map_elf(path)
            except AltlinkError:
                others.append((pos, path, None))  # load_elfs names the problem
                continue
            if not _may_be_module(elf):
                others.append((pos, path, elf if keep else None))
                continue
        if cache_dir is not None:
            # A record kept for these bytes says whether they are a module's: its section
            # headers need not be decoded to know.
            got = _module_from_record(elf, options, images, cache_dir, making)
            if got is None:
                others.append((pos, path, elf if keep else None))
                continue
            found.append((pos, *got))
        elif not is_module_elf(elf):  # its section headers read and checked now
            others.append((pos, path, elf if keep else None))
            continue
        else:
            from altlink.checks import check

            inp = Input.load(elf)
            found.append((pos, check([inp], options, images), _counts([inp.table.entries])))
        elf.close()
    progress.erase()
    return found, others


class _Once:
    """``fn()`` the first time it is called, nothing after."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self) -> None:
        fn, self.fn = self.fn, None
        if fn is not None:
            fn()


def _module_from_record(elf: ElfFile, options: Options, images: list[ElfFile],
                        cache_dir: str, making) -> tuple[list[Finding], tuple[int, int]] | None:
    """A module's findings (``checks.check`` over it alone) and its counts, through its
    record: the link set of one object, a module (``check_linkset.collect``). None where
    the file is not a module (its record says so: ``is_module_elf`` when it was made)."""
    from altlink.check_linkset import collect

    # No link takes a module as an input: its record's digest is made only if asked for.
    records, _profile, findings = collect([elf], replace(options, module=True), images,
                                          cache_dir, before_making=making, with_digest=False)
    if not records[0].is_module:
        return None
    return findings, (records[0].entries, records[0].callbacks)


def _may_be_module(elf: ElfFile) -> bool:
    """Whether the file may be a kernel module, without decoding its section headers."""
    return elf.type == ET_REL and elf.may_have_section(MODULE_SECTION)


def _sort_out(numbered: list[tuple[int, str]], given: dict[str, list[ElfFile]] | None = None
              ) -> tuple[list[tuple[int, str, ElfFile | None]], list[tuple[int, str]],
                         dict[str, list[ElfFile]]]:
    """Each file mapped once: the objects that may be kernel modules (their section names
    hold the module's section), to check alone; the other files' positions and paths, with
    the ELF files among them already mapped (for ``inputs.load_elfs``). A file named
    ``.ko`` is not mapped here but by the worker that checks it (``_check_modules``), so that
    the workers read the modules at once; one that proves not to be a module is read again
    by ``load_elfs`` where a worker mapped it. A file that is not an ELF file (an archive,
    bitcode) or cannot be read is left to ``load_elfs``, which reads it or names the
    problem. ``given``: files mapped already (``map_elf``'s), by path, one for each time the
    path is named, taken in turn (a ``.ko`` file too)."""
    maybe: list[tuple[int, str, ElfFile | None]] = []
    rest: list[tuple[int, str]] = []
    mapped: dict[str, list[ElfFile]] = {}
    for pos, path in numbered:
        if given and given.get(path):
            elf = given[path].pop(0)
        elif path.endswith(".ko"):
            maybe.append((pos, path, None))
            continue
        else:
            try:
                elf = map_elf(path)
            except AltlinkError:
                rest.append((pos, path))
                continue
        if _may_be_module(elf):
            maybe.append((pos, path, elf))
        else:
            rest.append((pos, path))
            mapped.setdefault(path, []).append(elf)
    return maybe, rest, mapped


def _counts(tables) -> tuple[int, int]:
    """Entries, and callback entries (those with no replacement), for ``check -v``."""
    entries = [e for t in tables for e in t]
    return len(entries), sum(e.alt_len == 0 for e in entries)


def _chunk(options: Options, symbols_from: list[str], cache_dir: str | None,
           images: list[ElfFile], shown, items: list[tuple[int, str, ElfFile | None]]
           ) -> tuple[list, bool]:
    """``_check_modules`` of a chunk of the files (``forkmap.queue_map``): its result, or the
    chunk's first error, which stops its process."""
    try:
        return [_check_modules(items, options, symbols_from, cache_dir, images, shown)], False
    except AltlinkError as e:
        return [e], True


MODULES_CHUNK = 16  # files a process takes at a time


def _preload_scan(paths: list[str]) -> None:
    """numpy for the ALT017 scans of the kernel modules, imported before the work is shared
    out, when they are large enough to be worth it (their sizes stand for their code) and
    the scans are not compiled (``branches.compiled``). Only
    the ``.ko`` files count: a module named otherwise is scanned all the same, by the
    reference where numpy is not loaded, and the objects' scans are only for the records
    the cache does not have (``records.records_of``)."""
    import os

    from altlink import branches

    if branches.compiled():  # (scanned without numpy)
        return
    total = 0
    for p in paths:
        if p.endswith(".ko"):
            try:
                total += os.path.getsize(p)
            except OSError:
                pass  # reported where it is read
    branches.preload(total)


def check_paths(paths: list[str], options: Options, symbols_from: list[str],
                notes: TextIO | None = None, jobs: int | None = None,
                cache_dir: str | None = None, stats: dict | None = None,
                mapped: dict[str, list[ElfFile]] | None = None,
                by_link=None) -> list[Finding]:
    """All the findings for ``altlink check PATHS``, in the order of the paths; the records
    of objects are kept in ``cache_dir`` (records.ObjectCache). ``stats``, if given, is
    filled with what was checked: modules, objects, images, entries, callbacks. ``mapped``
    may give ELF files read already (``abiscan.detect_abi_paths``), as ``_sort_out`` takes
    them. ``by_link``: the names the objects' link defines itself (``LinkDefined``: its
    linker scripts', ``check -T``), whose callbacks are left to the linked image."""
    counting = stats is not None  # (the objects' entries counted only then)
    stats = {} if stats is None else stats
    from altlink import inputs as inputsmod

    jobs = jobs or min(forkmap.cpus(), 8)
    maybe, rest, mapped = _sort_out(list(enumerate(paths)), mapped)
    if cache_dir is None:  # else in each worker, where it has records to make
        _preload_scan([p for _, p, _e in maybe])
    if jobs > 1 and len(maybe) >= PARALLEL_MIN and forkmap.can_fork():
        # Each process takes the next chunk of files when it is done with one: module sizes
        # vary along a sorted tree of paths. The --symbols-from images are read once, here.
        images = [read_elf(p) for p in symbols_from]
        shown = progress.task("checking files", len(maybe))
        got = sorted(forkmap.queue_map(partial(_chunk, options, symbols_from, cache_dir,
                                               images, shown), maybe, jobs, MODULES_CHUNK),
                     key=lambda t: t[0])
        found: list[tuple[int, list[Finding]]] = []
        not_modules: list[tuple[int, str, ElfFile | None]] = []
        for _lo, (r,) in got:
            if isinstance(r, AltlinkError):
                raise r  # the first in the paths' order: every chunk before it was checked
            found += r[0]
            not_modules += r[1]
        progress.erase()
    else:
        found, not_modules = _check_modules(maybe, options, symbols_from, cache_dir)
    modules = {pos for pos, *_ in found}
    here = {}  # mapped here: closed where another process checked it as a module
    for pos, _path, elf in maybe:
        if elf is not None:
            if pos in modules:
                elf.close()
            else:
                here[pos] = elf
    # The others are read as the objects they are, from their mappings where there are any.
    for pos, path, elf in sorted(not_modules, key=lambda t: t[0]):
        rest.append((pos, path))
        if elf is None:
            elf = here.get(pos)
        if elf is not None:
            mapped.setdefault(path, []).append(elf)
    findings = [f for _, fs, _n in sorted(found, key=lambda t: t[0]) for f in fs]
    stats.update(modules=len(found), entries=sum(n[0] for *_, n in found),
                 callbacks=sum(n[1] for *_, n in found))
    others = [p for _, p in sorted(rest)]
    # The objects' section headers are checked where their records are made: those whose
    # records are kept were checked when the records were made.
    loaded = inputsmod.load_elfs(others, notes=notes, mapped=mapped, defer=True)
    images = [read_elf(p) for p in symbols_from]
    objects = [e for e in loaded if e.type == ET_REL]
    if objects:  # one link set, checked through its objects' records, as the link stage does
        from altlink.check_linkset import collect

        # A record's digest is for a link's cross-check: made only where the record is kept
        # (a later link reads it back), not for a check that keeps nothing.
        records, _profile, more = collect(objects, options, images, cache_dir,
                                          with_digest=cache_dir is not None, by_link=by_link)
        findings += more
        if counting:
            stats["entries"] += sum(r.entries for r in records)
            stats["callbacks"] += sum(r.callbacks for r in records)
    stats.update(objects=len(objects), images=0)
    for img in (e for e in loaded if e.type != ET_REL):
        from altlink.checks import check

        inp = Input.load(img)
        findings += check([inp], options, images)
        n = _counts([inp.table.entries])
        stats["images"] += 1
        stats["entries"] += n[0]
        stats["callbacks"] += n[1]
    keep(locals())  # the inputs, records and images not freed on the way out (a kernel: 60 ms)
    return findings
