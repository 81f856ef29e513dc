"""``altlink check``: every check a set of inputs allows, phase by phase. docs/reference.md,
section 3. A link set of objects gets the objects' checks (``check_objects``) and the link
set's (``check_linkset``); a linked image the checks of its entries (``check_entries``), of the
table as a whole, and of the image (``check_image``).

Input is plain data (ELF files, their decoded tables, a profile, a capability table); output is
a list of findings. Nothing here prints or knows of JSON.
"""
from __future__ import annotations

from functools import partial

from altlink.check_core import Checks, resolve_ncaps
from altlink.check_linkset import Callbacks, check_cap_table, check_flags_agree
from altlink.check_objects import object_checks
from altlink.elf import ET_REL, ElfFile
from altlink.findings import CODES, ERROR, Finding
from altlink.linkset import Input, Options
from altlink.symbolspace import SymbolSpace
from altlink.values import replace

__all__ = ["check", "refusals", "REFUSING_CODES"]


def check(inputs: list[Input], options: Options, symbols_from: list[ElfFile] | None = None,
          only: frozenset[str] | None = None, fast: bool = True) -> list[Finding]:
    """The findings of the inputs as one check: objects as one link set (a module when any
    of them is one), an image alone; callbacks are looked up in the objects, then in the
    ``symbols_from`` images. ``only``, if given, is the codes wanted. ``fast=False`` checks
    an image's entries one by one (``check_image.image_alone_checks``, the reference)."""
    images = symbols_from or []
    findings = [f for i in inputs for f in i.table.findings if only is None or f.code in only]
    profile = resolve_ncaps(options.profile, options.caps, [i.table for i in inputs], findings)
    objects = [i for i in inputs if i.elf.type == ET_REL]
    module = options.module or any(i.is_module for i in objects)
    ck = Checks(replace(options, profile=profile, module=module), only, findings)
    check_cap_table(ck)
    check_flags_agree(ck, [(i.path, [s.flags for s in i.table.sections]) for i in inputs])
    callbacks = Callbacks(ck, SymbolSpace(objects, images), {i.path for i in objects}, images)
    for inp in inputs:
        if inp.elf.type == ET_REL:
            one = Checks(ck.options, only)
            object_checks(one, inp)
            callbacks.resolve(inp.path, one.findings, partial(_itself, inp), inp)
        else:
            from altlink.check_image import image_alone_checks  # not for objects and modules

            image_alone_checks(ck, inp, fast)
    return ck.findings


def _itself(inp: Input) -> Input:
    """The object as its own loader (``Callbacks.resolve``): it is already read."""
    return inp


# What manifest and patch refuse: the codes check reports at error severity (ALT010 is an
# error for overlapping sites, a warning for one shared site). The warnings' checks (ALT014's
# reach of the callbacks) are not run for it.
REFUSING_CODES = frozenset(c for c, (sev, _t) in CODES.items() if sev == ERROR) | {"ALT010"}


def refusals(image: Input, options: Options, fast: bool = True) -> dict[int, Finding]:
    """The entries of a linked image that ``check`` reports at error severity under
    ``options``, each with its first such finding: ``manifest`` leaves them out and ``patch``
    refuses them, with the same code and message as ``check``."""
    out: dict[int, Finding] = {}
    for f in check([image], options, only=REFUSING_CODES, fast=fast):
        if f.severity == ERROR and f.entry is not None:
            out.setdefault(f.entry, f)
    return out
