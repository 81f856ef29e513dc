"""The manifest (docs/reference.md, section 5): what a runtime or a later stage patches against.

JSON, keys sorted, deterministic; addresses as hex strings; paths relative to the manifest's
directory; bound to the image and its raw binary by sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from itertools import compress, count, repeat
from operator import contains, not_

from altlink import binding, insn, progress, speedups
from altlink.caps import CapTable
from altlink.elf import SHN_ABS, SHT_NOBITS, STT_FUNC
from altlink.errors import AltlinkError
from altlink.findings import Finding
from altlink.gcpause import collector_paused
from altlink.linkset import Input
from altlink.nested import Nested
from altlink.nested import find as find_nested
from altlink.rawbin import RawLayout
from altlink.table import Entry, Profile

SCHEMA_ID = "altlink-manifest/1"
SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "schema", "manifest.schema.json")


def hx(v: int) -> str:
    return f"{v:#x}"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            shown = progress.task(f"hashing {path}", os.fstat(f.fileno()).st_size >> 20)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                shown.advance()
            progress.erase()
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read: {e.strerror}") from None
    return h.hexdigest()


def sha256_later(path: str):
    """Start hashing a file in a thread (hashlib releases the GIL: a 270 MB image hashes while
    its table is decoded); returns a function that waits for the digest."""
    import threading

    box: dict = {}

    def work() -> None:
        try:
            box["sha"] = sha256_file(path)
        except AltlinkError as e:
            box["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()

    def result() -> str:
        t.join()
        if "error" in box:
            raise box["error"]
        return box["sha"]

    return result


def relpath(path: str, manifest_path: str | None) -> str:
    base = os.path.dirname(os.path.abspath(manifest_path)) if manifest_path else os.getcwd()
    return os.path.relpath(os.path.abspath(path), base)


@dataclass(frozen=True)
class BinInfo:
    """The raw binary a manifest names: its path, sha256 and layout."""

    path: str
    sha256: str
    layout: RawLayout


def build(image: Input, profile: Profile, caps: CapTable | None, image_path: str,
          image_sha: str, manifest_path: str | None, binary: BinInfo | None = None,
          sources=None, refuse: bool = False, nested: list[Nested] | None = None,
          findings: list[Finding] | None = None, encoded: bool = False,
          texts: CodeTexts | None = None, site_names: SiteNames | None = None,
          sections=None) -> dict:
    """The manifest of a linked image whose table was decoded into ``image``.

    With ``refuse``, the entries ``check`` reports at error severity are left out, listed
    under ``refused`` with their code and message (and their findings appended to
    ``findings``). ``nested``: the images embedded in it (default: those the profile's
    symbols bound, :mod:`altlink.nested`), whose entries the manifest carries too.
    ``encoded``: the entries as their JSON text (``Encoded``), for ``dumps`` alone to read:
    the same text, made without a dict per entry or json's encoder. ``texts``: what codes
    read as, made before (``CodeTexts``; the image's other codes are added to it).
    ``site_names``: the names of the table's sites, being made in a forked copy
    (``SiteNames``; used where every entry is written from the table's columns).
    ``sections``: the sections' digests (``binding.section_digests``), made before, or a
    ``Later`` that gives them when the manifest is written; made here where None.
    """
    elf = image.elf
    table = image.table.sections[0] if image.table.sections else None
    img = {"path": relpath(image_path, manifest_path), "sha256": image_sha,
           "machine": "aarch64",
           "patch_sha256": None,
           "sections": binding.section_digests(elf) if sections is None else sections}
    if binary is not None:
        img["bin"] = {"path": relpath(binary.path, manifest_path), "sha256": binary.sha256,
                      "base": hx(binary.layout.base)}
    cap_names = {str(i): n for i, n in enumerate(caps.names)} if caps else {}
    records = _Records(image, profile, caps, binary, sources, texts, site_names)
    refused = _refusals(image, profile, caps, refuse, findings)
    with collector_paused():
        if encoded and not refused:
            entries = records.table_json(image.table, joined=True)
            if not isinstance(entries, EncodedLater):
                entries = Encoded(entries)
        elif encoded:
            entries = Encoded(records.entries_json([e for e in image.table.entries
                                                    if e.index not in refused]))
        else:
            entries = [records.entry(e) for e in image.table.entries if e.index not in refused]
    # (from the places the entries' columns read, where they read every entry's)
    img["patch_sha256"] = binding.patch_digest_of(image, profile,
                                                  None if refused else records.places)
    out = {"schema": SCHEMA_ID, "abi": profile.abi, "ncaps": profile.ncaps, "image": img,
           "caps": cap_names, "entries": entries}
    if refused:
        out["refused"] = _refused_records(refused)
    if nested is None:
        nested = find_nested(elf, elf.data)
    if nested:
        out["nested"] = [_nested(n, elf, profile, caps, binary, refuse, findings) for n in nested]
    if table is not None:
        out["table"] = {"address": hx(table.addr), "size": table.size,
                        "file_offset": table.offset,
                        "bin_offset": binary.layout.offset_of(table.addr, elf)
                        if binary else None}
    return out


def _refusals(image: Input, profile: Profile, caps: CapTable | None, refuse: bool,
              findings: list[Finding] | None) -> dict[int, Finding]:
    if not refuse:
        return {}
    from altlink.checks import refusals
    from altlink.linkset import Options

    got = refusals(image, Options(profile, caps))
    if findings is not None:
        findings.extend(got[i] for i in sorted(got))
    return got


def _refused_records(refused: dict[int, Finding]) -> list[dict]:
    return [{"index": i, "code": refused[i].code, "message": refused[i].message}
            for i in sorted(refused)]


def _nested(n: Nested, outer_elf, profile: Profile, caps: CapTable | None,
            binary: BinInfo | None, refuse: bool, findings: list[Finding] | None) -> dict:
    """The record of an embedded image: where it lies in the outer image, and its entries,
    each place with ``outer``: the same bytes' address and offsets in the outer image."""
    inner = Input.load(n.elf)
    refused = _refusals(inner, profile, caps, refuse, findings)
    records = _Records(inner, profile, caps, None, None)
    layout = binary.layout if binary is not None else None

    def outer(part: dict | None) -> None:
        if part is None:
            return
        off = part["file_offset"]
        if off is None:
            part["outer"] = None
            return
        addr = n.outer_address(off)
        part["outer"] = {"address": hx(addr), "file_offset": n.outer_file_offset(off),
                         "bin_offset": layout.offset_of(addr, outer_elf)
                         if layout is not None else None}

    entries = []
    with collector_paused():
        for e in inner.table.entries:
            if e.index in refused:
                continue
            rec = records.entry(e)
            outer(rec["site"])
            if rec["replacement"] is not None:
                rec["replacement"]["file_offset"] = n.elf.file_offset(e.alt.address)
                outer(rec["replacement"])
            entries.append(rec)
    out = {"start": n.start, "end": n.end, "address": hx(n.address),
           "file_offset": n.file_offset,
           "bin_offset": layout.offset_of(n.address, outer_elf) if layout else None,
           "size": n.size, "sha256": hashlib.sha256(n.elf.data).hexdigest(),
           "entries": entries}
    table = inner.table.sections[0] if inner.table.sections else None
    if table is not None:
        out["table"] = {"address": hx(table.addr), "size": table.size,
                        "file_offset": table.offset,
                        "outer": {"address": hx(n.outer_address(table.offset)),
                                  "file_offset": n.outer_file_offset(table.offset)}}
    if refused:
        out["refused"] = _refused_records(refused)
    return out


class _Records:
    """The entries' records of one manifest. What many entries share is worked out once: the
    fields of each capability number, and what each distinct byte string of code is (a table
    repeats a few sites and replacements many times)."""

    def __init__(self, image: Input, profile: Profile, caps: CapTable | None,
                 binary: BinInfo | None, sources, texts: CodeTexts | None = None,
                 site_names: SiteNames | None = None) -> None:
        self.elf = image.elf
        self.names = image.names
        self.profile = profile
        self.caps = caps
        self.layout = binary.layout if binary is not None else None
        self.site_names = site_names
        self.sources = sources
        self._cap_fields: dict[int, tuple[str, int | None, str | None]] = {}
        self._codes: dict[bytes, _Code] = {}
        # entry_json's: the text of each capability field's keys, of each callback, of each
        # fixed disassembly; each section's bytes and its offset in the raw binary
        self._cap_json: dict[int, str] = {}
        self._callback_json: dict[int, str] = {}
        self._sec_data: dict[int, tuple | None] = {}
        self._bin_at: dict[int, int | None] = {}
        # what each byte string of code reads as (the same anywhere: ``CodeTexts``)
        self.texts = texts = texts if texts is not None else CodeTexts()
        self._disasm_json = texts.disasm_json
        self._code_json = texts.code_json
        self._simple = texts.simple
        # every entry's places as entries_json read them, where it read them all
        # (``binding.digest_of_places``' columns, with which entries are callbacks)
        self.places: tuple | None = None

    def _place(self, addr: int, length: int) -> tuple[bytes, int | None]:
        """The bytes at ``addr`` (b"" where the image has none) and its file offset: as
        ``read_addr`` and ``file_offset``, from one lookup of the section."""
        elf = self.elf
        sec = elf.section_at(addr)
        if sec is None or sec.type == SHT_NOBITS:
            return b"", None
        off = addr - sec.addr
        if addr + length > sec.addr + sec.size:
            return b"", sec.offset + off
        return elf.section_data(sec)[off:off + length], sec.offset + off

    def entry(self, e: Entry) -> dict:
        kind, cap, cap_name = self._cap(e.cap_raw)
        site_addr = e.site.address
        site_bytes, site_off = self._place(site_addr, e.orig_len)
        site = {"address": f"{site_addr:#x}", "file_offset": site_off,
                "bin_offset": self.layout.offset_of(site_addr, self.elf)
                if self.layout is not None else None,
                "length": e.orig_len, "symbol": self.names.at_address(site_addr),
                "bytes": site_bytes.hex(),
                "disasm": self._code(site_bytes, site_addr).disasm(site_bytes, site_addr)}
        if self.sources is not None:
            src = self.sources(site_addr)
            if src:
                site["source"] = src
        rec = {"index": e.index, "kind": kind, "cap": cap, "cap_raw": e.cap_raw,
               "cap_name": cap_name, "site": site, "replacement": None, "callback": None}
        alt_addr = e.alt.address
        if kind == "callback":
            sym = self._callback_symbol(alt_addr)
            rec["callback"] = {"symbol": sym.name if sym else None, "address": f"{alt_addr:#x}"}
            return rec
        alt_len = e.alt_len
        repl = self._place(alt_addr, alt_len)[0]
        code = self._code(repl, alt_addr)
        fixups = []
        for i, word, fixup_kind in code.branches:
            pc = alt_addr + 4 * i
            if insn.needs_fixup(word, alt_addr, alt_len, pc):
                fixups.append({"insn": i, "kind": fixup_kind,
                               "target": f"{insn.target(word, pc):#x}"})
        rec["replacement"] = {"address": f"{alt_addr:#x}", "bytes": repl.hex(),
                              "disasm": code.disasm(repl, alt_addr), "fixups": fixups}
        return rec

    def entry_json(self, e: Entry) -> str:
        """``entry``'s record as ``dumps`` writes it (``_ENCODER.encode(self.entry(e))``),
        written directly: each place's bytes from the section it names, what entries share
        (capability fields, callbacks, disassemblies of code that reads the same anywhere)
        written once. ``tests/test_image_fast.py`` compares the two."""
        head = self._head(e.cap_raw)
        site = e.site
        site_addr = site.address
        site_bytes, site_off = self._at(site, e.orig_len)
        sym = self.names.at_address(site_addr)
        parts = [f'"address": "{site_addr:#x}", "bin_offset": {_int(self._bin_offset(site))}, '
                 f'"bytes": "{site_bytes.hex()}", "disasm": {self._disasm(site_bytes, site_addr)}, '
                 f'"file_offset": {_int(site_off)}, "length": {e.orig_len}, ']
        if self.sources is not None:
            src = self.sources(site_addr)
            if src:
                parts.append(f'"source": {_enc(src)}, ')
        site_text = "".join(parts)
        sym_text = "null" if sym is None else _enc(sym)
        alt_addr = e.alt.address
        if self._cap(e.cap_raw)[0] == "callback":
            cb = self._callback(alt_addr)
            return (f'{{"callback": {cb}, {head}"index": {e.index}, "kind": "callback", '
                    f'"replacement": null, "site": {{{site_text}"symbol": {sym_text}}}}}')
        alt_len = e.alt_len
        repl = self._at(e.alt, alt_len)[0]
        fixups = self._fixups(self._code(repl, alt_addr).branches, alt_addr, alt_len)
        return (f'{{"callback": null, {head}"index": {e.index}, "kind": "static", '
                f'"replacement": {{"address": "{alt_addr:#x}", "bytes": "{repl.hex()}", '
                f'"disasm": {self._disasm(repl, alt_addr)}, "fixups": [{fixups}]}}, '
                f'"site": {{{site_text}"symbol": {sym_text}}}}}')

    def entries_json(self, entries: list[Entry], columns: bool = True) -> list[str]:
        """``entry_json`` of each entry, made a column at a time where there are many: each
        field of every entry at once (places read from their sections, symbols named by
        ``Symbolizer.at_addresses``), what each distinct byte string of code reads as made
        once for all (``CodeTexts.prepare``: capstone run once over all their words), each
        entry's text one format. An entry with a place that ``_at`` or ``_bin_offset`` would not
        read from its section directly is made by ``entry_json``. ``columns=False``:
        ``entry_json`` of each (the reference, compared in ``tests/test_image_fast.py``)."""
        if not columns or len(entries) < COLUMNS_FROM_ENTRIES:
            return list(map(self.entry_json, entries))
        cols = list(zip(*entries))
        index, sites, alts, cap_raws, orig_lens, alt_lens = cols[1], *cols[4:9]
        _, s_idx, s_off, s_addr, _, _ = zip(*sites)
        _, a_idx, a_off, a_addr, _, _ = zip(*alts)
        return self._from_columns(index, s_addr, a_addr, cap_raws, orig_lens, alt_lens,
                                  self._places(s_idx, s_off, s_addr, orig_lens),
                                  self._places(a_idx, a_off, a_addr, alt_lens),
                                  entries.__getitem__, self.names.at_addresses)

    def table_json(self, table, joined: bool = False) -> list[str]:
        """``entries_json`` of every entry of ``table``, from the columns it was read as
        (``Table.columns``), without making its entries (``Entry`` and ``Place`` objects,
        a third of the time of the text), each place read as ``_places_np`` reads it:
        ``tests/test_image_fast.py`` compares the two. ``joined``: runs of entries' texts
        joined as ``dumps`` joins them, one str a run (``Encoded``'s), where that is
        quicker (``_from_columns``)."""
        c = table.columns
        if c is None or table.size < COLUMNS_FROM_ENTRIES:
            return self.entries_json(table.entries)
        # (the compiled writer reads the columns themselves: no list of 80,000 ints made)
        s_addr, a_addr, cap_raws, orig_lens, alt_lens = (
            _array64(c[k], k.endswith("addr")) if speedups.postlink() is not None
            else c[k].tolist() for k in ("site_addr", "alt_addr", "cap", "orig_len", "alt_len"))
        names_of = self.names.at_addresses if self.site_names is None \
            else lambda _: self.site_names()
        # the sites' names looked up by the compiled writer in the image's table of names
        # (the symbols' columns: ``_name_index``), where it writes the entries
        index_of = None
        if self.site_names is None and speedups.postlink() is not None:
            index_of = partial(_name_index, self.names, self.elf)
        # (the compiled reader's codes of both places at once: equal ones one object in both;
        # those the texts do not know, but for a callback's replacement's, in fresh)
        kinds = callback = None
        fresh: list[bytes] = []
        if type(cap_raws) is not list:
            kinds, callback = self._kinds(cap_raws)
        codes = self._codes_np(((c["site_sec"], c["site_off"], c["orig_len"], None),
                                (c["alt_sec"], c["alt_off"], c["alt_len"], callback)), fresh)
        return self._from_columns(
            range(table.size), s_addr, a_addr, cap_raws, orig_lens, alt_lens,
            self._places_np(c["site_sec"], c["site_off"], c["site_addr"], c["orig_len"],
                            arrays=speedups.postlink() is not None,
                            codes=codes and codes[0]),
            self._places_np(c["alt_sec"], c["alt_off"], c["alt_addr"], c["alt_len"], False,
                            codes=codes and codes[1]),
            table.entry, names_of, joined, index_of,
            fresh=fresh if codes is not None and callback is not None else None,
            kinds=None if kinds is None else (kinds, callback))

    def _kinds(self, cap_raws) -> tuple[dict[int, bool], object]:
        """Of an array of capabilities (a table's column): which of its values are a
        callback's, and which of its entries are (a numpy array of bools)."""
        kinds = {c: self._cap(c)[0] == "callback" for c in _distinct(cap_raws)}
        return kinds, _is_in(cap_raws, [c for c, cb in kinds.items() if cb])

    def _from_columns(self, index, s_addr, a_addr, cap_raws, orig_lens, alt_lens, site, repl,
                      entry_at, names_of, joined: bool = False, index_of=None,
                      fresh: list[bytes] | None = None, kinds=None) -> list[str]:
        """``entries_json``'s text from its entries' columns and their places' (``site``,
        ``repl``: ``_places``'); ``entry_at(k)``: the ``k``-th entry (for ``entry_json``,
        where a place is not read from its section directly); ``names_of(s_addr)``: the
        sites' names (``Symbolizer.at_addresses``: None for none); ``index_of()``: the
        image's table of names for the compiled writer to look the sites up in
        (``_name_index``; None: none, the names made by ``names_of``). ``joined``: where the
        compiled writer writes them, runs of entries joined (``table_json``'s). ``fresh``:
        the codes of the sites and the static replacements that the texts do not know
        (``_codes_np``'s), where every place is read from its section: those are prepared,
        not every code looked for in the texts (none, where the texts were kept by an
        earlier link). ``kinds``: which capabilities are a callback's and which entries are
        (a numpy array of bools), made before (``_kinds``), where the columns are arrays
        (``_array64``'s: ``table_json``'s for the compiled writer)."""
        arrays = kinds is not None
        if arrays:
            kinds, is_callback = kinds
            callback = is_callback.tolist()
        else:
            kinds = {c: self._cap(c)[0] == "callback" for c in set(cap_raws)}
            callback = list(map(kinds.__getitem__, cap_raws))
        s_code, s_file, s_bin, s_bad = site
        a_code, _, _, a_bad = repl
        bad = sorted(set(s_bad).union(k for k in a_bad if not callback[k]))
        for k in bad:  # made by entry_json below
            s_code[k] = a_code[k] = b""
        if bad or fresh is None:
            repl_codes = set(compress(a_code, map(not_, callback)))  # (the static entries')
            self.texts.prepare(repl_codes.union(s_code))
        elif fresh:
            self.texts.prepare(fresh)
        codes = self._code_json
        simple = self._simple

        def site_text(k: int) -> str:
            """The site's bytes and disassembly, of a code whose lines depend on the address:
            from its lines' plan (_disasm)."""
            c = s_code[k]
            return f'"bytes": "{c.hex()}", "disasm": {self._disasm(c, int(s_addr[k]))}'

        def repl_text(k: int) -> str:
            """A static replacement's fields after its address, where they depend on it."""
            c, aa = a_code[k], int(a_addr[k])
            text, branches = codes[c]
            if text is None:  # lines that depend on the address
                text = f'"bytes": "{c.hex()}", "disasm": {self._disasm(c, aa)}'
            return f'{text}, "fixups": [{self._fixups(branches, aa, int(alt_lens[k]))}]'

        pl = speedups.postlink()
        ix = index_of() if pl is not None and index_of is not None else None
        # (after the table of names: the callbacks' functions then found in the symbols'
        # columns it made, not by a search of the table's bytes for each value)
        cbs = {aa: self._callback(aa) for aa in (
            set(a_addr[is_callback].tolist()) if arrays else set(compress(a_addr, callback)))}
        heads = {c: self._head(c) for c in kinds}
        src = None if self.sources is None else \
            [f'"source": {_enc(t)}, ' if t else "" for t in map(self.sources, _listed(s_addr))]
        names = names_of(_listed(s_addr)) if ix is None else None
        columns = [callback, cap_raws, index, a_addr, s_addr, s_bin, s_file, orig_lens, src,
                   names]
        if pl is not None:  # compiled: None where the Python writes the entry
            # (an entry whose places entry_json reads: the Python's, below)
            cb_c = callback
            if bad:
                cb_c = list(callback)
                for k in bad:
                    cb_c[k] = None
            args = (heads, cbs, codes, simple, self._disasm_json, site_text, repl_text, cb_c,
                    _given(cap_raws), None if index == range(len(s_code)) else _listed(index),
                    _given(a_addr), a_code, _given(alt_lens), _given(s_addr), s_code,
                    s_bin, s_file, _given(orig_lens), src, names if ix is None else ix)
            filled = partial(self._filled, columns, s_code, a_code, site_text, repl_text,
                             heads, cbs, bad, entry_at)
            if joined:  # made a run at a time as they are written (dump)
                self._with_places(None, bad, s_addr, orig_lens, s_code, a_addr, alt_lens,
                                  a_code, callback)
                return EncodedLater(partial(_runs, pl, args, len(s_code), filled),
                                    len(s_code))
            out = pl.entry_texts(*args)
            holes = [k for k, t in enumerate(out) if t is None] if None in out else []
            for k, t in zip(holes, filled(holes)):
                out[k] = t
            return self._with_places(out, bad, s_addr, orig_lens, s_code, a_addr, alt_lens,
                                     a_code, callback)
        out = self._entry_texts(columns, s_code, a_code, range(len(s_code)), site_text,
                                repl_text, heads, cbs)
        for k in bad:
            out[k] = self.entry_json(entry_at(k))
        return self._with_places(out, bad, s_addr, orig_lens, s_code, a_addr, alt_lens,
                                 a_code, callback)

    def _filled(self, columns, s_code, a_code, site_text, repl_text, heads, cbs, bad,
                entry_at, holes: list[int]) -> list[str]:
        """The texts of the entries ``holes`` (positions) the compiled writer left to the
        Python (``_from_columns``' arguments): ``entry_json``'s of an entry in ``bad``,
        ``_entry_texts``' of the others (their sites named here where the columns have no
        names)."""
        bad = set(bad).intersection(holes) if bad else ()
        made = [k for k in holes if k not in bad] if bad else holes
        texts = []
        if made:
            columns = [None if c is None else c[made].tolist() if hasattr(c, "tolist")
                       else [c[k] for k in made] for c in columns]  # (numpy's arrays too)
            if columns[9] is None:  # (those entries' names alone)
                columns[9] = self.names.at_addresses(columns[4])
            texts = self._entry_texts(columns, [s_code[k] for k in made],
                                      [a_code[k] for k in made], made, site_text, repl_text,
                                      heads, cbs)
        if not bad:
            return texts
        by_hole = dict(zip(made, texts))
        return [by_hole[k] if k not in bad else self.entry_json(entry_at(k)) for k in holes]

    def _with_places(self, out, bad, s_addr, orig_lens, s_code, a_addr, alt_lens, a_code,
                     callback):
        """``out``, every entry's places kept for ``binding.digest_of_places`` where the
        columns read them all (no entry in ``bad``)."""
        if not bad:
            self.places = (s_addr, orig_lens, s_code, a_addr, alt_lens, a_code, callback)
        return out

    def _entry_texts(self, columns, s_code, a_code, at, site_text, repl_text, heads,
                     cbs) -> list[str]:
        """``_from_columns``' entries' texts, the reference (``_postlink.entry_texts`` is held
        to it): ``columns`` (callback, cap_raws, index, a_addr, s_addr, s_bin, s_file,
        orig_lens, src, names) of some entries, their codes ``s_code`` and ``a_code``, and
        ``at`` their positions, which ``site_text`` and ``repl_text`` take."""
        callback, cap_raws, index, a_addr, s_addr, s_bin, s_file, orig_lens, src, names = \
            columns
        codes = self._code_json
        # the site's bytes and disassembly
        st = [codes[c][0] for c in s_code]
        for k in [k for k, t in enumerate(st) if t is None]:
            st[k] = site_text(at[k])
        # the replacement's fields after its address (a callback's: none)
        simple = self._simple
        rc = [None if cb else simple[c] for c, cb in zip(a_code, callback)]
        for k in [k for k, (t, cb) in enumerate(zip(rc, callback)) if t is None and not cb]:
            rc[k] = repl_text(at[k])
        return [f'{{"callback": null, {heads[cr]}"index": {i}, "kind": "static", "replacement": '
                f'{{"address": "{aa:#x}", {r}}}, "site": {{"address": "{sa:#x}", "bin_offset": '
                f'{sb}, {t}, "file_offset": {sf}, "length": {n}, {so}"symbol": '
                f'{y}}}}}' if not cb else
                f'{{"callback": {cbs[aa]}, {heads[cr]}"index": {i}, "kind": "callback", '
                f'"replacement": null, "site": {{"address": "{sa:#x}", "bin_offset": {sb}, '
                f'{t}, "file_offset": {sf}, "length": {n}, {so}"symbol": '
                f'{y}}}}}'
                for cb, cr, i, aa, r, sa, sb, t, sf, n, so, y in zip(
                    callback, cap_raws, index, a_addr, rc, s_addr, s_bin, st, s_file, orig_lens,
                    repeat("") if src is None else src, map(_name_json, names))]

    def _fixups(self, branches, alt_addr: int, alt_len: int) -> str:
        """The text of a replacement's fix-ups (inside the list's brackets): of its words
        that may need one (``_Code.branches``), those that do at ``alt_addr``."""
        fixups = []
        for i, word, fixup_kind in branches:
            pc = alt_addr + 4 * i
            if insn.needs_fixup(word, alt_addr, alt_len, pc):
                fixups.append(f'{{"insn": {i}, "kind": {_enc(fixup_kind)}, '
                              f'"target": "{insn.target(word, pc):#x}"}}')
        return ", ".join(fixups)

    def _head(self, cap_raw: int) -> str:
        """The text of the capability fields' keys of an entry (``entry_json``'s)."""
        head = self._cap_json.get(cap_raw)
        if head is None:
            kind, cap, cap_name = self._cap(cap_raw)
            head = self._cap_json[cap_raw] = (
                f'"cap": {_int(cap)}, "cap_name": {_str(cap_name)}, "cap_raw": {cap_raw}, ')
        return head

    def _callback_symbol(self, addr: int):
        """The function at a callback's address: the image's, else an absolute function
        symbol of that value (a ROM's, which GNU ld gives the image for ``-R rom.elf``)."""
        fn = self.names.function_at(addr)
        if fn is None:
            fn = next((s for s in self.elf.symbols_at_value(addr) if s.shndx == SHN_ABS
                       and s.type == STT_FUNC and s.name), None)
        return fn

    def _callback(self, addr: int) -> str:
        """The text of a callback's record (``entry_json``'s)."""
        cb = self._callback_json.get(addr)
        if cb is None:
            fn = self._callback_symbol(addr)
            cb = self._callback_json[addr] = (
                f'{{"address": "{addr:#x}", '
                f'"symbol": {"null" if fn is None else _enc(fn.name)}}}')
        return cb

    def _places(self, idx, off, addr, length) -> tuple[list, list, list, list[int]]:
        """For each place (its section's index, offset, address, and the length read): its
        bytes, file offset and offset in the raw binary (``null`` without one), where ``_at``
        and ``_bin_offset`` read them from the section directly; and the positions of the
        places they do not (their bytes b"", their offsets None)."""
        info = self._place_info(set(idx))
        got = [(g[3][o:o + n], g[2] + o, g[4] if type(g[4]) is str else g[4] + o)
               if g is not None and a - o == g[0] and 0 <= o and o + n <= g[1] and o < g[5]
               else None
               for g, o, a, n in zip(map(info.__getitem__, idx), off, addr, length)]
        bad = [k for k, g in enumerate(got) if g is None]
        for k in bad:
            got[k] = _NOWHERE
        codes, files, bins = map(list, zip(*got)) if got else ([], [], [])
        return codes, files, bins, bad

    def _place_info(self, idxs) -> dict:
        """For each section index of ``idxs``: (its address, size, file offset, bytes, offset in
        the raw binary or "null" without one, the bound of a place's offset in it), where
        ``_at`` and ``_bin_offset`` read its places from it directly; else None."""
        layout = self.layout
        info = {}
        for i in idxs:
            got = self._section(i)
            if got is None:
                info[i] = None
                continue
            sec, data = got
            if layout is None:
                info[i] = (sec.addr, sec.size, sec.offset, data, "null", sec.size + 1)
                continue
            b = self._bin_at.get(i, False)
            if b is False:
                b = self._bin_at[i] = _section_lma(layout, self.elf, i)
            # _bin_offset's: the place's offset inside the section
            info[i] = None if b is None else (sec.addr, sec.size, sec.offset, data,
                                              b[2], sec.size)
        return info

    def _codes_np(self, columns, fresh: list | None = None) -> list[list[bytes]] | None:
        """The bytes of the places of each (section index, offset, length, unlisted) of
        ``columns`` (a table's, as ``_places_np`` takes them), as ``_places_np`` slices them
        before it empties those it does not read from their section, made by the compiled
        ``places_codes``: equal codes one object in all of them, the texts' key where they
        know the code (``fresh``: where given, the others are appended to it, but for those
        only at places ``unlisted`` marks: an array of bools, or None). None where it is not
        used (``_places_np`` then slices them)."""
        import numpy as np

        pl = speedups.postlink()
        if pl is None:
            return None
        info = self._place_info(np.flatnonzero(np.bincount(np.concatenate(
            [idx for idx, _, _, _ in columns]))).tolist())
        datas = {i: b"" if g is None else g[3] for i, g in info.items()}
        return pl.places_codes(datas, [(np.ascontiguousarray(idx, dtype=np.int64),
                                        off.astype(np.uint64, copy=False),
                                        length.astype(np.uint64, copy=False),
                                        None if unlisted is None else
                                        np.ascontiguousarray(unlisted, dtype=np.uint8))
                                       for idx, off, length, unlisted in columns],
                               self._code_json, fresh)

    def _places_np(self, idx, off, addr, length, offsets: bool = True,
                   arrays: bool = False, codes: list | None = None
                   ) -> tuple[list, list | None, list | None, list[int]]:
        """``_places`` of the columns of a table read with numpy (``Table.columns``: arrays),
        the offsets and the places' tests made for all at once. Without ``offsets``, the file
        and raw binary offsets are None (a replacement's: not written); with ``arrays``, they
        are arrays (64-bit unsigned; the raw binary's still a list where there is none), as
        ``_postlink.entry_texts`` reads them, their values at the places not read from their
        section (``bad``) whatever they are. ``codes``: the places' bytes, made before
        (``_codes_np``'s), emptied here where they are not read from their section."""
        import numpy as np

        n = len(idx)
        ok = np.zeros(n, dtype=bool)
        if offsets:
            files = np.zeros(n, dtype=np.uint64)
            bins = np.zeros(n, dtype=np.uint64)
        off = off.astype(np.uint64, copy=False)
        addr = addr.astype(np.uint64, copy=False)
        length = length.astype(np.uint64, copy=False)
        info = self._place_info(np.flatnonzero(np.bincount(idx)).tolist())  # (np.unique imports numpy.ma)
        datas = {}
        for i, g in info.items():
            datas[i] = b"" if g is None else g[3]
            if g is None:
                continue
            # (every place in one section, as a firmware's sites: no copy of the columns)
            at = slice(None) if len(info) == 1 else np.flatnonzero(idx == i)
            o, a, ln = off[at], addr[at], length[at]
            size = np.uint64(g[1])
            # (the tests of _places, without an unsigned sum or difference wrapping)
            ok[at] = (a >= o) & (a - o == np.uint64(g[0])) & (o <= size) & (ln <= size - o) \
                & (o < np.uint64(g[5]))
            if not offsets:
                continue
            files[at] = o + np.uint64(g[2])
            if type(g[4]) is not str:
                bins[at] = o + np.uint64(g[4])
        pl = speedups.postlink()
        if codes is None and pl is not None:
            codes = pl.place_codes(datas, np.ascontiguousarray(idx, dtype=np.int64), off,
                                   length, self._code_json)
        if codes is None:  # (compiled: the same slices)
            codes = [d[o:o + k] for d, o, k in zip(map(datas.__getitem__, idx.tolist()),
                                                   off.tolist(), length.tolist())]
        bad = np.flatnonzero(~ok).tolist()
        if not offsets:
            for k in bad:
                codes[k] = _NOWHERE[0]
            return codes, None, None, bad
        if arrays:
            return codes, files, bins if self.layout is not None else ["null"] * n, bad
        files_l = files.tolist()
        bins_l = bins.tolist() if self.layout is not None else ["null"] * n
        for k in bad:
            codes[k], files_l[k], bins_l[k] = _NOWHERE
        return codes, files_l, bins_l, bad

    def _at(self, place, length: int) -> tuple[bytes, int | None]:
        """``_place(place.address, length)``, from the section the image's table reader
        found the place in (``table.read_image_table``: ``section_at`` of its address)."""
        got = self._section(place.section_index)
        if got is None or place.address != got[0].addr + place.offset:
            return self._place(place.address, length)
        sec, data = got
        off = place.offset
        if place.address + length > sec.addr + sec.size:
            return b"", sec.offset + off
        return data[off:off + length], sec.offset + off

    def _section(self, idx: int) -> tuple | None:
        """(section, its bytes) of section ``idx``; None for none, or one without bytes."""
        got = self._sec_data.get(idx, False)
        if got is False:
            secs = self.elf.sections
            sec = secs[idx] if 0 < idx < len(secs) else None
            got = self._sec_data[idx] = None if sec is None or sec.type == SHT_NOBITS \
                else (sec, self.elf.section_data(sec))
        return got

    def _bin_offset(self, place) -> int | None:
        """``layout.offset_of`` of the place's address: from its section's offset in the raw
        binary where the layout's sections do not overlap (one holds each address)."""
        layout = self.layout
        if layout is None:
            return None
        idx = place.section_index
        got = self._bin_at.get(idx, False)
        if got is False:
            got = self._bin_at[idx] = _section_lma(layout, self.elf, idx)
        if got is None or place.address != got[0] + place.offset \
                or not 0 <= place.offset < got[1]:
            return layout.offset_of(place.address, self.elf)
        return got[2] + place.offset

    def _disasm(self, code: bytes, address: int) -> str:
        """The JSON list of ``_code(code, address).disasm(code, address)``: written once for
        code that reads the same anywhere; else each line that depends on the address made
        from its target (``insn.target_line``), or by ``insn.disasm`` where it is not."""
        got = self._disasm_json.get(code)
        if got is None:
            c = self._code(code, address)
            if not c.moving:
                got = self._disasm_json[code] = f"[{', '.join(map(_enc, c.lines))}]"
                return got
            got = self._disasm_json[code] = _moving_plan(c, code)
        if type(got) is str:
            return got
        parts = []
        for part in got:
            if type(part) is str:
                parts.append(part)
            elif type(part) is int:
                pc = address + 4 * part
                parts.append(_enc(insn.disasm(code[4 * part:4 * part + 4], pc)[0]))
            else:
                prefix, i, offset, page = part
                pc = address + 4 * i
                parts.append(f'{prefix}{((pc & _PAGE) if page else pc) + offset & _MASK64:#x}"')
        return f"[{', '.join(parts)}]"

    def _cap(self, cap_raw: int) -> tuple[str, int | None, str | None]:
        """The entry's kind, capability and capability name."""
        got = self._cap_fields.get(cap_raw)
        if got is None:
            profile, caps = self.profile, self.caps
            cap = profile.cap(cap_raw)
            got = ("callback" if profile.is_callback(cap_raw) else "static", cap,
                   caps.name(cap) if caps is not None and cap is not None else None)
            self._cap_fields[cap_raw] = got
        return got

    def _code(self, code: bytes, address: int) -> _Code:
        """What ``code`` is, worked out at its first place, ``address``."""
        got = self._codes.get(code)
        if got is None:
            got = self._codes[code] = _analyse(code, address)
        return got


class CodeTexts:
    """What each distinct byte string of code reads as in a manifest, wherever it lies: made
    once for the codes of many entries (``prepare``), and shareable between manifests (a
    link makes it from its objects' records while the linker runs: ``early_texts``)."""

    def __init__(self) -> None:
        # its bytes and disassembly as JSON, and its words that may need a fix-up
        self.code_json: dict[bytes, tuple[str | None, tuple]] = {}
        # a replacement's fields after its address, where the same anywhere (else None)
        self.simple: dict[bytes, str | None] = {}
        # the JSON list of its lines: the text, or the plan of a code whose lines depend on
        # the address (``_moving_plan``)
        self.disasm_json: dict[bytes, str | list] = {}
        # each word's line (``insn.word_lines``), its text as JSON where it has one, and its
        # kind where it may need a fix-up
        self.lines: dict[int, str | tuple | None] = {}
        self.word_json: dict[int, str] = {}
        self.word_kinds: dict[int, str] = {}

    def add_compact(self, table, items) -> None:
        """The codes of a compact table (``textcache``'s, read in place from a texts file: a
        buffer) known too: each a code that reads the same anywhere and needs no fix-up,
        its text ``code_json``'s (with no fix-ups) and ``simple``'s. The compiled writer
        looks them up in the table itself; the Python, through the two dicts (``_Compacted``:
        where a dict has no code). Without the compiled writer, the table's codes are put in
        the dicts: ``items(table)``, its (code, text) pairs (``textcache._compact_items``)."""
        pl = speedups.postlink()
        if pl is None:
            compact_into(self.code_json, self.simple, items(table))
            return
        if type(self.code_json) is not _Compacted:
            self.code_json = _Compacted(self.code_json, _code_of_text, pl.compact_get)
            self.simple = _Compacted(self.simple, _SIMPLE_TEXT.format, pl.compact_get)
        self.code_json.compact += (table,)
        self.simple.compact = self.code_json.compact

    def empty(self) -> bool:
        """Whether no code is known."""
        return not self.code_json and not getattr(self.code_json, "compact", ())

    def prepare(self, codes) -> None:
        """What ``entries_json`` writes of each of ``codes`` not known yet, from
        ``insn.word_lines`` of all their words at once: in ``code_json``, its bytes and
        disassembly (``"bytes": ..., "disasm": [...]``, None where a line depends on the
        address: then its lines' plan is put in ``disasm_json``, as ``_Records._disasm``
        makes it) and its words that may need a fix-up (``_Code.branches``); in ``simple``,
        the replacement's fields after its address where they are the same anywhere."""
        known = self.code_json
        new = [c for c in codes if c not in known]
        if not new:
            return
        groups: dict[int, list[bytes]] = {}  # by length: each length's words read at once
        for c in new:
            groups.setdefault(len(c), []).append(c)
        split = []
        for n, group in groups.items():
            k = n // 4
            data = b"".join(group) if n == 4 * k else b"".join(c[:4 * k] for c in group)
            flat = struct.unpack(f"<{k * len(group)}I", data)
            split.append((n, k, group, flat))
        lines, text, kinds = self.lines, self.word_json, self.word_kinds
        fresh = set().union(*(f for _, _, _, f in split)).difference(lines)
        if fresh:
            got = insn.word_lines(fresh)
            lines.update(got)
            text.update((w, _enc(t)) for w, t in got.items() if type(t) is str)
            # (a word that may need a fix-up is PC-relative: its line is not a text)
            kinds.update((w, k) for w, t in got.items() if type(t) is not str
                         and (k := insn.decode(w).kind) in insn.FIXUP_KINDS)
        simple, plans = self.simple, self.disasm_json
        for n, k, group, flat in split:
            got = list(map(text.get, flat))
            rows = list(zip(*[iter(got)] * k)) if k else [()] * len(group)
            # (the codes with a word that may need a fix-up, and those with a line that
            # depends on the address, found at C speed)
            marked = {i // k for i in compress(count(), map(kinds.__contains__, flat))}
            tail = n > 4 * k
            rest: Iterable[int] = range(len(group))
            if not tail:  # the codes that read the same anywhere and need no fix-up
                rest = sorted(marked.union(compress(count(), map(contains, rows,
                                                                 repeat(None)))))
                done, done_rows = group, rows
                if rest:
                    keep = set(range(len(group))).difference(rest)
                    done = [group[j] for j in keep]
                    done_rows = [rows[j] for j in keep]
                texts = list(map(_CODE_TEXT.format, map(bytes.hex, done),
                                 map(", ".join, done_rows)))
                known.update(zip(done, zip(texts, repeat(()))))
                simple.update(zip(done, map(_SIMPLE_TEXT.format, texts)))
            for j in rest:
                c, row = group[j], rows[j]
                if tail:
                    row = (*row, _enc(_tail_line(c)))
                branches = ()
                if j in marked:
                    branches = tuple((i, w, kinds[w]) for i, w in
                                     enumerate(flat[j * k:j * k + k]) if w in kinds)
                if None in row:  # lines that depend on the address: their plan (_disasm)
                    plans[c] = [t if t is not None else i
                                if (line := lines[flat[j * k + i]]) is None
                                else (_enc(line[0])[:-1], i, line[1], line[2])
                                for i, t in enumerate(row)]
                    known[c] = (None, branches)
                    simple[c] = None
                    continue
                t = f'"bytes": "{c.hex()}", "disasm": [{", ".join(row)}]'
                known[c] = (t, branches)
                simple[c] = None if branches else f'{t}, "fixups": []'


def compact_into(code_json: dict, simple: dict, pairs) -> None:
    """A compact table's (code, text) pairs (``textcache``'s) put in ``CodeTexts``' two dicts
    where they do not have the code, as the compiled writer reads them: ``code_json``'s
    value the text with no fix-ups (``_code_of_text``), ``simple``'s the replacement's fields
    (``_SIMPLE_TEXT``)."""
    for code, text in pairs:
        if not dict.__contains__(code_json, code):
            code_json[code] = _code_of_text(text)
            simple[code] = _SIMPLE_TEXT.format(text)


def is_compact(code, value, simple_text) -> bool:
    """Whether a code of ``CodeTexts`` (its ``code_json`` value and its ``simple`` text)
    is what a compact table holds: it reads the same anywhere (a text, ASCII) and needs no
    fix-up (its ``simple`` that text with none)."""
    text, branches = value
    return text is not None and not branches and type(code) is bytes and text.isascii() \
        and simple_text == _SIMPLE_TEXT.format(text)


def _code_of_text(text: str) -> tuple[str, tuple]:
    """``CodeTexts.code_json``'s value of a code whose text a compact table holds."""
    return text, ()


class _Compacted(dict):
    """A table of ``CodeTexts`` (``code_json`` or ``simple``, by code) whose codes are those
    of its compact tables (``compact``: buffers, ``textcache``'s) too, where it has none
    itself: their value ``of_text(text)``, the text ``get(table, code)`` finds (the
    compiled ``compact_get``). The compiled writer reads the tables itself; its own items
    alone are its items (what ``textcache.save`` keeps of a link's new codes)."""

    __slots__ = ("compact", "_of_text", "_get")

    def __init__(self, items: dict, of_text, get) -> None:
        super().__init__(items)
        self.compact: tuple = ()
        self._of_text = of_text
        self._get = get

    def _text(self, code) -> str | None:
        if type(code) is bytes:
            for table in self.compact:
                got = self._get(table, code)
                if got is not None:
                    return got
        return None

    def __missing__(self, code):
        text = self._text(code)
        if text is None:
            raise KeyError(code)
        return self._of_text(text)

    def __contains__(self, code) -> bool:
        return dict.__contains__(self, code) or self._text(code) is not None

    def get(self, code, default=None):
        got = dict.get(self, code, _NONE)
        if got is not _NONE:
            return got
        text = self._text(code)
        return default if text is None else self._of_text(text)


_NONE = object()


class SiteNames:
    """The names of an image's table's sites (``Symbolizer.at_addresses`` of their addresses,
    as ``_Records.table_json`` asks for them), made in a forked copy of this process while it
    makes the rest of the manifest: ``SiteNames.later``. Called, it gives them."""

    def __init__(self, job) -> None:
        self._job = job

    @classmethod
    def later(cls, image: Input, from_entries: int | None = None) -> SiteNames | None:
        """Started, where the table was read as columns (``Table.columns``) and has at least
        ``from_entries`` entries (``SITE_NAMES_FORK_FROM``) and this process can fork (no
        thread: call it before any starts); else None."""
        from altlink import forkmap

        table = image.table
        if table.columns is None or table.size < (
                SITE_NAMES_FORK_FROM if from_entries is None else from_entries) \
                or not forkmap.can_fork():
            return None
        job = forkmap.Forked(partial(image.names.at_addresses,
                                     table.columns["site_addr"].tolist()))
        job.start()
        return cls(job)

    def __call__(self) -> list[str | None]:
        return self._job.result()

    def cancel(self) -> None:
        """The copy ended, where its names were not asked for."""
        self._job.cancel()


def _name_json(name: str | None) -> str:
    """A site's name as JSON (null for none)."""
    return _NULL if name is None else _enc(name)


def _name_index(names, elf) -> tuple | None:
    """The image's table of names by address for ``_postlink.entry_texts`` (which looks each
    site up in it as ``Symbolizer.at_addresses`` does): the index of addresses made from
    the symbol table's columns (``symbols.column_index``), as (its values, each one's best
    symbol's name's offset in the string table, both 64-bit arrays; the string table).
    ``names``: the image's ``Symbolizer``, whose index is used where it has one made so.
    None where the columns are not read (numpy not loaded, a table ``SymtabColumns`` does not
    read): the names are then made by ``at_addresses``."""
    import sys

    from altlink import symbols

    if "numpy" not in sys.modules or elf.symtab is None:
        return None
    got = names.__dict__.get("_addr_index")
    if not isinstance(got, symbols._ColumnIndex):
        got = symbols.column_index(elf)
        if got is None:
            return None
    cols = symbols.SymtabColumns.columns(elf)
    np = cols.np
    best = np.array(got.best, dtype=np.int64)
    return (np.array(got.keys, dtype=np.uint64), cols.st_name[best].astype(np.int64),
            cols.strtab)


# The entries from which the sites' names are made in a forked copy (``SiteNames``): about 1
# µs an entry (the image's symbols indexed by address, each site looked up and named), beside
# a fork and the names sent back (about 5 ms).
SITE_NAMES_FORK_FROM = 8_000


@dataclass(frozen=True)
class _Code:
    """What a byte string of code is wherever it lies: its disassembly, where the lines of the
    PC-relative words (their text shows the target) are left to each place; and the words that
    may need a fix-up when it is a replacement, as (index, word, kind)."""

    lines: tuple[str, ...]
    moving: tuple[int, ...]  # the lines that depend on the address
    branches: tuple[tuple[int, int, str], ...]

    def disasm(self, code: bytes, address: int) -> list[str]:
        """:func:`insn.disasm` of ``code`` at ``address`` (whole words; a malformed entry's
        odd tail shown raw)."""
        if not self.moving:
            return list(self.lines)
        lines = list(self.lines)
        for i in self.moving:
            lines[i] = insn.disasm(code[4 * i:4 * i + 4], address + 4 * i)[0]
        return lines


_PAGE = ~0xFFF
_MASK64 = (1 << 64) - 1


def _moving_plan(c: _Code, code: bytes) -> list:
    """How ``_Records._disasm`` writes the lines of ``c`` (code with lines that depend on
    the address), each as JSON: a fixed line as its text; a line ``insn.target_line`` makes
    as (its text up to the target, its index, the target's offset, page); else its index."""
    plan: list = list(map(_enc, c.lines))
    for i in c.moving:
        word = code[4 * i:4 * i + 4]
        line = insn.target_line(int.from_bytes(word, "little")) if len(word) == 4 else None
        plan[i] = i if line is None else (_enc(line[0])[:-1], i, line[1], line[2])
    return plan


def codes_of(counts, words, others) -> set[bytes]:
    """The byte strings of code that columns of words give: for each group of entries, its
    count column (an entry's number of words plus one, 0 for none: a byte each), its words
    end to end (4 bytes each), and a byte for each word, not 0 where the word is not the
    one the image will hold (empty: every word is), as the objects' records keep their
    sites and replacements. A code with such a word is left out."""
    out: set[bytes] = set()
    add = out.add
    for cnt, data, other in zip(counts, words, others):
        at = 0
        for c in cnt:
            if c > 1:
                end = at + 4 * c - 4
                if not other or not any(other[at >> 2:end >> 2]):
                    add(data[at:end])
                at = end
    return out


_CODE_TEXT = '"bytes": "{}", "disasm": [{}]'  # a code's text, from its hex and its lines
_SIMPLE_TEXT = '{}, "fixups": []'  # a replacement's fields after its address, from that

# entries_json makes its entries a column at a time from this many entries on
COLUMNS_FROM_ENTRIES = 64
_NOWHERE = (b"", None, None)  # the place entries_json leaves to entry_json
_CALLBACK_KIND = '"kind": "callback", "replacement": null'
_NULL = "null"


def _words(code: bytes) -> tuple[int, ...]:
    """The whole words of ``code``."""
    return struct.unpack(f"<{len(code) // 4}I", code[:len(code) // 4 * 4])


def _tail_line(code: bytes) -> str:
    """The line of the bytes of ``code`` after its last whole word."""
    return f".byte {', '.join(f'{b:#04x}' for b in code[len(code) // 4 * 4:])}"


def _analyse(code: bytes, address: int) -> _Code:
    whole = len(code) // 4 * 4
    words = struct.unpack(f"<{whole // 4}I", code[:whole])
    lines = insn.disasm(code[:whole], address)
    if whole < len(code):
        lines.append(_tail_line(code))
    moving, branches = [], []
    for i, word in enumerate(words):
        if insn.classify(word).kind != "plain":  # a plain word reads the same everywhere
            moving.append(i)
        kind = insn.decode(word).kind
        if kind in insn.FIXUP_KINDS:
            branches.append((i, word, kind))
    return _Code(tuple(lines), tuple(moving), tuple(branches))


def _section_lma(layout: RawLayout, elf, idx: int) -> tuple[int, int, int] | None:
    """(address, size, offset in the raw binary) of section ``idx`` where ``layout.offset_of``
    finds every address of it in that section: the section is in the layout and no other
    section of the layout overlaps it. None otherwise (``offset_of`` decides)."""
    mine = [(s, lma) for s, lma in layout.sections if s.index == idx]
    if len(mine) != 1 or not 0 < idx < len(elf.sections) or elf.sections[idx] != mine[0][0]:
        return None
    sec, lma = mine[0]
    if any(s.index != idx and s.addr < sec.addr + sec.size and sec.addr < s.addr + s.size
           for s, _ in layout.sections):
        return None
    return sec.addr, sec.size, lma - layout.base


class EncodedLater:
    """A manifest's entries encoded as JSON text (``build``'s ``encoded``), made as they are
    written: iterated, the pieces ``Encoded`` holds (bytes for each run of entries the
    compiled writer made, the Python's texts between), made a few hundred entries at a time
    by ``pieces()``. ``dump`` writes each piece before the next is made (a link's 15 MB of
    text is never in memory at once: fresh memory is a page fault a page, more in a forked
    copy), ``dumps`` joins them. ``len``: the number of entries."""

    def __init__(self, pieces, count: int) -> None:
        self._pieces = pieces
        self._count = count

    def __iter__(self):
        return iter(self._pieces())

    def __len__(self) -> int:
        return self._count


def _runs(pl, args: tuple, n: int, filled, step: int | None = None):
    """The pieces of ``n`` entries' texts as ``_postlink.entry_texts(*args, joined=True)``
    makes them, ``step`` entries (``RUN_ENTRIES``) at a time, each None (an entry left to the
    Python) replaced by its text, ``filled(holes)``."""
    step = step or RUN_ENTRIES
    for lo in range(0, n, step):
        pieces, holes = pl.entry_texts(*args, True, lo, min(lo + step, n))
        if holes:
            texts = iter(filled(holes))
            pieces = [next(texts) if p is None else p for p in pieces]
        yield from pieces


# The entries the link's writer makes at a time (``_runs``): their text (about 400 bytes an
# entry) is under malloc's threshold for a mapping of its own, and the memory of one run is
# reused for the next.
RUN_ENTRIES = 256


def _listed(column) -> list:
    """``column`` as a list (``_postlink.entry_texts`` reads lists), not copied where it is
    one (an array's items as ints)."""
    if type(column) is list:
        return column
    return column.tolist() if hasattr(column, "tolist") else list(column)


def _given(column):
    """``column`` as ``_postlink.entry_texts`` reads it: a list (``_listed``), or an array of
    64-bit items as it is (``_array64``'s)."""
    return column if hasattr(column, "__array_interface__") else _listed(column)


def _array64(column, unsigned: bool):
    """A table's column as ``_postlink.entry_texts`` and ``places_blob`` read it in place of
    a list: contiguous 64-bit items (unsigned: the addresses; signed: the capabilities and
    lengths), not copied where it is so (``table._image_entries_np``'s)."""
    import numpy as np

    return np.ascontiguousarray(column, dtype=np.uint64 if unsigned else np.int64)


def _distinct(column) -> list[int]:
    """The distinct values of an array of integers (a table's capabilities), as ints."""
    import numpy as np

    if not len(column):
        return []
    if int(column.min()) >= 0 and int(column.max()) < 1 << 20:  # (np.unique imports numpy.ma)
        return np.flatnonzero(np.bincount(column)).tolist()
    s = np.sort(column)
    return s[np.concatenate(([True], s[1:] != s[:-1]))].tolist()


def _is_in(column, values: list[int]):
    """For each item of an array of integers, whether it is one of ``values`` (a few): an
    array of bools."""
    import numpy as np

    got = np.zeros(len(column), dtype=bool)
    for v in values:
        got |= column == v
    return got


class Encoded(list):
    """A manifest's entries already encoded as JSON text (``build``'s ``encoded``), one
    string each or, where made so, one string for each run of entries, joined as ``dumps``
    joins them (``table_json``'s ``joined``): ``dumps`` and ``dump`` write them as they
    are."""


class Later:
    """A manifest's value given when it is written (``dump``: the encoder asks ``get()``):
    the image's digests, which the link's process makes while its writer writes the entries
    (``linkoutputs.EarlyWriter.tell``)."""

    __slots__ = ("get",)

    def __init__(self, get) -> None:
        self.get = get


def _given_later(o):
    if type(o) is Later:
        return o.get()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# One encoder for every entry (json.dumps with options makes a new one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(", ", ": "),
                            default=_given_later)
_enc = json.encoder.encode_basestring  # a str as _ENCODER writes it (ensure_ascii=False)


def _str(v: str | None) -> str:
    return "null" if v is None else _enc(v)


def _int(v: int | None) -> str:
    return "null" if v is None else int.__repr__(v)


def dumps(manifest: dict) -> str:
    """Keys sorted; one line per entry (diffable, and written by json's C encoder: a kernel's
    manifest of 28,000 entries takes a fraction of a second, where ``indent`` would take
    seconds)."""
    compact = _ENCODER.encode
    parts = []
    for key in sorted(manifest):
        val = manifest[key]
        if key == "entries" and isinstance(val, (list, EncodedLater)):
            body = ",\n  ".join(map(_text, val) if isinstance(val, (Encoded, EncodedLater))
                                else map(compact, val))
            text = f"[\n  {body}\n ]" if val else "[]"
        else:
            text = compact(val)
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def dump(manifest: dict, f) -> None:
    """Write ``dumps(manifest)`` to the text file ``f``, its entries a few thousand at a
    time: no copy of the whole text is made (a link's 40,000 entries are 15 MB, and each
    copy of that is fresh memory)."""
    from itertools import islice

    compact = _ENCODER.encode
    sep = "{\n"
    for key in sorted(manifest):
        val = manifest[key]
        f.write(f"{sep} {json.dumps(key)}: ")
        sep = ",\n"
        if key == "entries" and isinstance(val, EncodedLater):
            if val:
                f.write("[\n  ")
                _write_pieces(f, val, "")  # (each piece as it is made)
            f.write("\n ]" if val else "[]")
        elif key == "entries" and isinstance(val, list) and val:
            texts = iter(val if isinstance(val, Encoded) else map(compact, val))
            f.write("[\n  ")
            between = ""
            while chunk := list(islice(texts, _CHUNK)):
                if any(type(t) is bytes for t in chunk):
                    _write_pieces(f, chunk, between)
                else:
                    f.write(between)
                    f.write(",\n  ".join(chunk))
                between = ",\n  "
            f.write("\n ]")
        else:
            f.write(compact(val))
    f.write("\n}\n")


_CHUNK = 2048  # the entries dump writes at a time


def _text(piece: str | bytes) -> str:
    """An ``Encoded`` piece as text (a run of entries the compiled writer made is ASCII
    bytes)."""
    return piece.decode("ascii") if type(piece) is bytes else piece


def _write_pieces(f, pieces: Iterable, sep: str) -> None:
    """``f.write(sep + ",\n  ".join(map(_text, pieces)))``, the bytes among ``pieces`` written
    to the text file's binary buffer as they are (a link's 15 MB not copied twice more: as
    text, then encoded)."""
    raw = getattr(f, "buffer", None)
    for piece in pieces:
        f.write(sep)
        sep = ",\n  "
        if type(piece) is not bytes:
            f.write(piece)
        elif raw is None or f.encoding.lower().replace("-", "") not in _ASCII_SUPERSETS:
            f.write(piece.decode("ascii"))
        else:
            f.flush()
            raw.write(piece)


_ASCII_SUPERSETS = frozenset({"utf8", "ascii", "latin1", "iso88591"})


def load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read the manifest: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # deep nesting: recursion
        raise AltlinkError(f"{path}: not a JSON manifest: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_ID:
        raise AltlinkError(f"{path}: not an altlink manifest (schema {SCHEMA_ID!r} expected)")
    problem = _shape_problem(data)
    if problem:
        raise AltlinkError(f"{path}: not an altlink manifest: {problem}")
    return data


def _shape_problem(m: dict) -> str | None:
    """The first part of a manifest that is not of the type the commands read (the full rules
    are the JSON Schema's; this keeps a hand-edited file from reaching them as a traceback)."""
    def listof(v, kind) -> bool:
        return isinstance(v, list) and all(isinstance(x, kind) for x in v)

    if not isinstance(m.get("image", {}), dict):
        return "image is not an object"
    entries = m.get("entries")
    if not isinstance(entries, list):
        return "entries is not a list"
    for i, e in enumerate(entries):
        where = f"entries[{i}]"
        if not isinstance(e, dict):
            return f"{where} is not an object"
        for key in ("site", "replacement", "callback"):
            if e.get(key) is not None and not isinstance(e[key], dict):
                return f"{where}.{key} is not an object"
        for key in ("site", "replacement"):
            part = e.get(key) or {}
            if part.get("disasm") is not None and not listof(part["disasm"], str):
                return f"{where}.{key}.disasm is not a list of strings"
        fixups = (e.get("replacement") or {}).get("fixups")
        if fixups is not None and not listof(fixups, dict):
            return f"{where}.replacement.fixups is not a list of objects"
        for part, key, kind in _SCALARS:
            v = (e.get(part) or {}) if part else e
            v = v.get(key)
            if v is not None and (not isinstance(v, kind) or isinstance(v, bool)):
                return f"{where}{'.' + part if part else ''}.{key} is not " \
                    f"{'an integer' if kind is int else 'a string'}"
    if not isinstance(m.get("caps") or {}, dict):
        return "caps is not an object"
    return None


# The scalar fields the commands read, where present: (part of the entry, key, type).
_SCALARS = [(None, "index", int), (None, "kind", str), (None, "cap_raw", int), (None, "cap", int),
            ("site", "address", str), ("site", "length", int), ("site", "symbol", str),
            ("site", "bytes", str), ("site", "source", str), ("replacement", "address", str),
            ("replacement", "bytes", str), ("callback", "address", str),
            ("callback", "symbol", str)]
