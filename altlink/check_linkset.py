"""The link set's phase: what the whole set of objects decides, once each object was checked
alone (``check_objects``). The capability table (ALT011), the flags the objects give the table
(ALT012), and the callbacks an object leaves to the others (``Deferred``): defined (ALT006),
not by the module itself (ALT015), a function in code (ALT007).

The link stage, and ``altlink check`` of objects, check a link set from its objects' records
(``collect``, ``check_records``), which hold each object's findings and definitions: an object
is read again only to word a finding.
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from functools import partial
from itertools import repeat

from altlink.check_core import Checks, is_function, resolve_ncaps
from altlink.elf import STT_FUNC, STT_GNU_IFUNC, STT_NOTYPE, ElfFile
from altlink.findings import Deferred, Finding, finding
from altlink.linkset import Input, Options
from altlink.records import ObjectCache, ObjectRecord, make_record, preload_scans, records_of
from altlink.symbolspace import Definition, SymbolSpace
from altlink.table import NCAPS_MARKED, Entry, Profile, table_sections
from altlink.values import replace

MAX_CB_MASK = 0x7FFF


def check_cap_table(ck: Checks) -> None:
    """ALT011 for a capability count the profile's cap field cannot hold."""
    p = ck.profile
    caps = ck.options.caps
    if p.abi == "linux-v6.1" and p.ncaps is not None and p.ncaps > MAX_CB_MASK:
        path = caps.path if caps else "<ncaps>"
        ck.findings.append(finding("ALT011", f"{p.ncaps} capabilities reach the callback "
                                   "bit 0x8000 of the linux-v6.1 profile", path))
    if p.abi in NCAPS_MARKED and p.ncaps is not None and p.ncaps > 0xFFFF:
        path = caps.path if caps else "<ncaps>"
        ck.findings.append(finding("ALT011", f"{p.ncaps} capabilities do not fit the "
                                   "16-bit cap field", path))


def check_flags_agree(ck: Checks, tables: list[tuple[str, list[int]]]) -> None:
    """ALT012 when the inputs give .altinstructions different flags (``flags_finding``)."""
    f = flags_finding(tables)
    if f is not None and ck.wanted(f.code):
        ck.findings.append(f)


def flags_finding(tables: list[tuple[str, list[int]]]) -> Finding | None:
    """ALT012 when the link set's objects give .altinstructions different flags: ``tables``
    is each input's path and its table sections' flags."""
    seen: dict[int, str] = {}
    for path, flags in tables:
        for f in flags:
            seen.setdefault(f, path)
    if len(seen) < 2:
        return None
    desc = ", ".join(f"{_flags(f)} in {p}" for f, p in seen.items())
    return finding("ALT012", f"inputs disagree on the flags of .altinstructions: {desc}",
                   tables[0][0], "link set")


def _flags(flags: int) -> str:
    out = "".join(c for bit, c in ((2, "a"), (1, "w"), (4, "x")) if flags & bit)
    return f'"{out}"'


# -- callbacks between objects ---------------------------------------------------------------

def unresolved_is_error(options: Options, module: bool, images: list) -> bool:
    """Whether a callback defined nowhere in the link set is ALT006. A partial link leaves it
    to the link that follows; a module's is resolved against the kernel when it is loaded, so
    it is checked only against the kernel images the user names (``--symbols-from``)."""
    if options.partial:
        return False
    return not module or bool(images)


def callback_fine(d: Definition | None, module: bool, own: set[str]) -> bool:
    """A callback defined elsewhere in the link set needs no finding: defined (ALT006), not
    by the module itself (ALT015), a function in code (ALT007)."""
    return d is not None and not (module and d.path in own) and d.section is not None \
        and d.section.executable and is_function(d.symbol)


class LinkDefined:
    """What the link itself does to the names of a link set: the callbacks that no object of
    it defines but the link does (its linker scripts' assignments, ``--defsym``: ``defined``
    gives each such name with what defines it, read when first needed), and the names it
    wraps (``--wrap``: ``wrapped``), whose undefined references it resolves otherwise. The
    entries of the callbacks it defines are kept in ``asked`` (the object's path, the
    entry's index, the name, what defines it) and checked in the linked image
    (``check_in_image``): before the link, nothing says what the name will stand for."""

    def __init__(self, defined: Callable[[], dict[str, str]],
                 wrapped: frozenset[str] = frozenset()) -> None:
        self._defined = defined
        self._names: dict[str, str] | None = None
        self.asked: list[tuple[str, int, str, str]] = []
        self.wrapped = wrapped  # the names the link wraps (``linkcmd.wrapped_names``)

    def where(self, name: str) -> str | None:
        if self._names is None:
            self._names = self._defined()
        return self._names.get(name)

    def check_in_image(self, image: Input) -> list[Finding]:
        """ALT007 for each callback asked whose value in the linked image is not a function
        in an executable section. A name the image's symbol table lacks (a stripped image)
        is not checked: the cross-check compares what the image has."""
        out: list[Finding] = []
        seen: dict[str, str | None] = {}
        for path, index, name, where in self.asked:
            if name not in seen:
                seen[name] = _image_problem(image, name)
            problem = seen[name]
            if problem is not None:
                out.append(finding("ALT007", f"callback {name} (defined by {where}) {problem}",
                                   path, f".altinstructions entry {index}", entry=index))
        return out


def _image_problem(image: Input, name: str) -> str | None:
    """What is wrong with ``name`` as a callback in a linked image: its value not in an
    executable section, or not a function's; None when it is fine, or not in the image."""
    d = SymbolSpace([], [image.elf]).lookup(name)  # (as a --symbols-from image's names)
    if d is None:
        return None
    addr = d.symbol.value
    sec = image.elf.section_at(addr)
    if sec is None or not sec.executable:
        where = sec.name if sec is not None else "no section"
        return f"is at {addr:#x}, in {where}, not an executable section"
    fn = image.names.function_at(addr)
    if fn is None or not is_function(fn):
        return f"is at {addr:#x}, which is not a function"
    return None


class Callbacks:
    """The callbacks the objects of one link set leave to each other, resolved in the link
    set's symbols (``space``); ``own`` is the paths of the set's objects. ``by_link``: the
    names the link itself defines, whose entries are left to the linked image."""

    def __init__(self, ck: Checks, space: SymbolSpace, own: set[str],
                 images: list[ElfFile], by_link: LinkDefined | None = None) -> None:
        self.ck, self.space, self.own, self.images = ck, space, own, images
        self.by_link = by_link
        self._fine: set[tuple[str, str]] = set()
        # Callbacks found fine whichever file asks: where the space's answer does not depend
        # on the asking file (``SymbolSpace.asking_matters``), one lookup a name.
        self._fine_names: set[str] = set()

    def resolve(self, path: str, items: list, load: Callable[[], Input],
                asking: Input | str | None = None) -> None:
        """Add one object's findings (``path``'s ``items``: findings and ``Deferred``) to the
        check, each ``Deferred`` resolved where it stands. ``load`` gives the object's Input,
        read only to word a finding; ``asking`` is the object as the symbol space knows it
        (``SymbolSpace.lookup`` skips it: it leaves the name undefined)."""
        ck = self.ck
        for item in items:
            if not isinstance(item, Deferred):
                ck.findings.append(item)
                continue
            if (item.symbol, path) in self._fine or item.symbol in self._fine_names:
                continue  # the same callback, from the same file, already found fine
            name = self._linked(item.symbol)
            d = self.space.lookup(name, asking)
            if callback_fine(d, ck.module, self.own):
                if self.space.asking_matters:
                    self._fine.add((item.symbol, path))
                else:
                    self._fine_names.add(item.symbol)
                continue
            if d is None and self.by_link is not None:
                where = self.by_link.where(name)
                if where is not None:  # checked in the linked image
                    self.by_link.asked.append((path, item.index, name, where))
                    continue
            inp = load()
            e = inp.table.entries[item.index]
            self.check_undefined(inp, e, lambda inp=inp, e=e: ck.site_place(inp, e))

    def _linked(self, name: str) -> str:
        """The symbol the link resolves a callback its object leaves undefined to: the name
        itself, or what ``--wrap`` makes of it (``__wrap_NAME``)."""
        if self.by_link is None or not self.by_link.wrapped:
            return name
        from altlink.linkcmd import linked_name

        return linked_name(name, self.by_link.wrapped)

    def all_fine(self, symbols) -> bool:
        """Whether each of these callbacks was found fine already, whichever file asks:
        ``resolve`` of items that are only these callbacks would add nothing."""
        return not self.space.asking_matters and self._fine_names.issuperset(symbols)

    def check_undefined(self, inp: Input, e: Entry, place) -> None:
        """The findings of a callback entry whose object leaves the callback undefined."""
        ck, name = self.ck, e.alt.symbol or ""
        linked = self._linked(name)
        d = self.space.lookup(linked, inp)
        if linked != name:  # (named as the link resolves it: --wrap)
            name = f"{linked} (--wrap={name})" if linked.startswith("__wrap_") else \
                f"{linked} (for {name}: --wrap={linked})"
        if callback_fine(d, ck.module, self.own):
            return
        if d is None:
            if not unresolved_is_error(ck.options, ck.module, self.images):
                return
            where = " or in the --symbols-from images" if self.images else ""
            ck.add("ALT006", f"callback {name} is not defined in the link set{where}"
                   + self.space.did_you_mean(linked), inp, ck.entry_place(e), e)
            return
        # (the entries' checks: only where a callback is not fine, imported then)
        from altlink.check_entries import check_callback_def

        if ck.module and d.path in self.own:
            ck.add("ALT015", f"callback {name} is defined by the module itself "
                   "(Linux rejects such modules at load)", inp, place, e)
        check_callback_def(ck, inp, e, d.symbol, d.section, name, place)


# -- the link set's checks from the records ------------------------------------------------

_DefSymbol = namedtuple("_DefSymbol", "type")
_DefSection = namedtuple("_DefSection", "name executable")


class RecordSpace(SymbolSpace):
    """The global symbols of a link set from its objects' records, then those of
    ``--symbols-from`` images."""

    asking_matters = False  # no object is skipped: an object's record has its name undefined

    def __init__(self, records: list[ObjectRecord], images: list[ElfFile]) -> None:
        super().__init__([], images)
        self.records = records
        self._first: dict[str, tuple] | None = None

    def lookup(self, name: str, asking=None) -> Definition | None:
        if self._first is None:
            self._first = first_definitions(self.records)
        got = self._first.get(name)
        if got is not None:
            path, typ, secname, executable = got
            sec = _DefSection(secname, executable) if secname is not None else None
            return Definition(path, _DefSymbol(typ), sec)  # type: ignore[arg-type]
        return super().lookup(name, asking)

    def function_names(self) -> set[str]:
        names = {n for r in self.records for n, (typ, _sec, _x) in r.defines.items()
                 if typ in (STT_FUNC, STT_GNU_IFUNC, STT_NOTYPE)}
        return names | super().function_names()


def first_definitions(records: list[ObjectRecord]) -> dict[str, tuple]:
    """Each global name defined by the records: the first record's path and definition
    (type, section, executable), from the records' columns (``define_columns``: a record
    read back makes no dictionary), updated from the last record to the first at C speed;
    ``first_definitions_py`` is the reference."""
    first: dict[str, tuple] = {}
    for r in reversed(records):
        names, types, sections, executable = r.define_columns()
        first.update(zip(names, zip(repeat(r.path), types, sections, executable)))
    return first


def first_definitions_py(records: list[ObjectRecord]) -> dict[str, tuple]:
    """The reference for ``first_definitions``: name by name, the first kept."""
    first: dict[str, tuple] = {}
    for r in records:
        for n, d in r.defines.items():
            first.setdefault(n, (r.path, *d))
    return first


def check_records(records: list[ObjectRecord], options: Options, images: list[ElfFile],
                  findings: list[Finding], fast: bool = True,
                  by_link: LinkDefined | None = None) -> list[Finding]:
    """The pre-link checks of a link set from its objects' records (``options`` resolved:
    NCAPS known, ``module`` saying whether the set is a module), appended to ``findings``:
    the findings ``checks.check`` makes over the objects themselves, in the same order.

    ``fast``: a record read back whose findings are only callbacks found fine already (its
    symbols, ``Callbacks.all_fine``) is passed without its findings made (``fast=False``,
    the reference, makes every record's). ``by_link``: the names the link defines
    (``Callbacks``)."""
    ck = Checks(options, findings=findings)
    check_cap_table(ck)
    if not fast or len({f for r in records for f in r.flags}) > 1:  # (else nothing to find)
        check_flags_agree(ck, [(r.path, list(r.flags)) for r in records])
    callbacks = Callbacks(ck, RecordSpace(records, images), {r.path for r in records}, images,
                          None if options.partial else by_link)
    for rec in records:
        items = rec._items if fast else None
        if items is not None and not items[0] and callbacks.all_fine(items[3]):
            continue  # no finding, and callbacks found fine already
        callbacks.resolve(rec.path, rec.findings, rec.full, rec.path)
    return findings


# The NCAPS under which the records of objects without a table are kept where NCAPS is
# inferred (``_records_ncaps_inferred``): none that a table has.
NO_TABLE_NCAPS = -1


def _records_ncaps_inferred(objects: list[ElfFile], options: Options, cache_dir: str | None,
                            profile_findings: list[Finding],
                            before_making: Callable[[], None] | None, with_digest: bool):
    """The profile (NCAPS inferred from the link set's entries), the options resolved and
    the objects' records, where nothing gives NCAPS (``linux-v4.17``, ``xen-v4.17`` without
    a capability table or ``--ncaps``: the one-line adoption, ``altlink link -- ld ...``).

    The record of an object with entries depends on NCAPS (which of them are callbacks), so it
    is made each time. An object without entries has the same record whatever NCAPS is: those
    are kept in the cache as records made under ``NO_TABLE_NCAPS``, and a record read back
    under it is taken only where it has no entry (the command line refuses a negative NCAPS,
    but a caller of ``collect`` could keep records with entries there). A firmware link without alternatives (U-Boot's: 607 objects) then reads no
    object again, as a link with its NCAPS given does."""
    free = replace(options, profile=Profile(options.profile.abi, NO_TABLE_NCAPS), caps=None)
    kept: list = [None] * len(objects)
    if cache_dir:
        cache = ObjectCache(cache_dir, ObjectCache.options_key_of(free), free.profile)
        for i, (r, _path) in enumerate(cache.get_many(objects)):
            if r is not None and not r.entries:
                r._load = partial(Input.load, objects[i])
                kept[i] = r
    todo = [i for i, r in enumerate(kept) if r is None]
    no_table = [i for i in todo if not table_sections(objects[i])]
    if no_table:
        for i, r in zip(no_table, records_of([objects[i] for i in no_table], free, cache_dir,
                                             before_making=before_making,
                                             with_digest=with_digest)):
            kept[i] = r
        before_making = None  # (called once, before the first record made)
    rest = [i for i in todo if kept[i] is None]
    if rest and before_making is not None:
        before_making()
    preload_scans([objects[i] for i in rest])
    loaded = [Input.load(objects[i]) for i in rest]
    profile = resolve_ncaps(options.profile, None, [i.table for i in loaded], profile_findings)
    opts = replace(options, profile=profile, caps=None)
    for i, inp in zip(rest, loaded):
        kept[i] = make_record(inp, opts, with_digest)
    for r in kept:
        r._profile = profile
    return profile, opts, kept


def collect(objects: list[ElfFile], options: Options, images: list[ElfFile],
            cache_dir: str | None, before_making: Callable[[], None] | None = None,
            with_digest: bool = True, by_link: LinkDefined | None = None
            ) -> tuple[list[ObjectRecord], Profile, list[Finding]]:
    """The records of a link set's objects, the profile (NCAPS resolved) and the pre-link
    findings: those ``checks.check`` makes over the objects, in its order.
    ``before_making`` is called before any record is made; ``with_digest=False`` leaves the
    digests of the records made to be made when asked for (``records.make_record``);
    ``by_link``: the names the link itself defines (``check_records``)."""
    profile_findings: list[Finding] = []
    profile = options.profile
    if options.caps is not None or profile.ncaps is not None or \
            profile.abi not in NCAPS_MARKED:
        profile = resolve_ncaps(profile, options.caps, [], profile_findings)
        opts = replace(options, profile=profile)
        records = records_of(objects, opts, cache_dir, before_making=before_making,
                             with_digest=with_digest)
    else:  # NCAPS is inferred from every entry of the link set
        profile, opts, records = _records_ncaps_inferred(
            objects, options, cache_dir, profile_findings, before_making, with_digest)
    if not opts.module and any(r.is_module for r in records):
        # The module structure in any object makes the whole link set a module (ALT015).
        opts = replace(opts, module=True)
        records = records_of(objects, opts, cache_dir, [r.loaded for r in records],
                             with_digest=with_digest)
    findings = [f for r in records for f in r.table_findings] + profile_findings
    return records, profile, check_records(records, opts, images, findings, by_link=by_link)
