"""The link's outputs, made from the linked image: the raw binary and the manifest, written
into temporary files, then committed beside the image once its checks have passed. Where it
can fork, a copy writes them while the image is checked: one forked while the linker still
runs (``EarlyWriter``: it prepares what it can until the image is there), else after it.
``req`` is the link's ``link.LinkRequest``."""
from __future__ import annotations

import os
from functools import partial

from altlink import outputs, speedups
from altlink.errors import AltlinkError
from altlink.linkset import Input


def temp_outputs(req, tmp_files: list[str]) -> tuple[str | None, str | None]:
    """The temporary files of the raw binary and the manifest, as the request asks for them."""
    return (outputs.temp_path(req.binary, "bin", tmp_files) if req.binary else None,
            outputs.temp_path(req.manifest, "json", tmp_files) if req.manifest else None)


def early_texts(packs, running, texts=None):
    """What the codes of the objects' records read as in a manifest (``manifest.CodeTexts``),
    made while ``running()`` (a link's linker), a chunk of codes at a time: the words of a
    site or replacement that no relocation fills in are the image's words, so most of the
    image's codes are known before it is linked; the rest is left to the manifest. ``packs``:
    the records' columns (``crosscheck.RecordColumns``). ``texts``: those known already
    (``textcache.load``), added to."""
    from altlink import manifest as manifestmod

    if texts is None:
        texts = manifestmod.CodeTexts()
    if not running():
        return texts
    # (a site's word that a relocation fills in is not known, 0 in site_known; a
    # replacement's is marked, not 0 in alt_marks)
    unknown = tuple(k.translate(_UNKNOWN) for k in packs.site_known)
    codes = list(manifestmod.codes_of(packs.site_count + packs.alt_count,
                                      packs.site_bytes + packs.alt_bytes,
                                      unknown + packs.alt_marks))
    for k in range(0, len(codes), EARLY_CODES_CHUNK):
        if not running():
            break
        texts.prepare(codes[k:k + EARLY_CODES_CHUNK])
    return texts


_UNKNOWN = bytes([1]) + bytes(255)  # site_known's 0 (not known) as 1, 1 (known) as 0
# early_texts' codes at a time (about 5 ms of CPU)
EARLY_CODES_CHUNK = 1024


def make_files(req, image: Input, profile, tmp_image: str, tmp_bin: str | None,
               tmp_manifest: str | None, texts=None, facts=None) -> None:
    """Write the raw binary and the manifest of the image into their temporary files. (The
    manifest's module is imported here: a link that writes neither, as each of a kernel's
    module links, does without it.) ``texts``: what codes read as, made before
    (``early_texts``). ``facts``: where given, a function that gives the image's digests,
    and the raw binary's, which the caller wrote (``image_facts``'s): asked for when the
    manifest's part after its entries is written."""
    if not (tmp_bin or tmp_manifest):
        return
    from altlink.gcpause import collector_paused

    with collector_paused():  # (what it makes lives until it ends: nothing to collect)
        _make_files(req, image, profile, tmp_image, tmp_bin, tmp_manifest, texts, facts)


def image_facts(req, elf, tmp_image: str, tmp_bin: str | None) -> dict:
    """What the manifest says of the image but its entries: its sha256 (``"image"``), its
    sections' digests (``"sections"``), and where a raw binary is asked for, the sha256 of the
    raw binary (``"bin"``), written into ``tmp_bin`` here: ``make_files``' ``facts``, made by
    the link's process while its early writer writes the entries (``EarlyWriter.tell``)."""
    import hashlib

    from altlink import binding

    # (the image's bytes as read, mapped: the file, not read again; no manifest module here)
    got = {"image": hashlib.sha256(elf.data).hexdigest(),
           "sections": binding.section_digests(elf), "bin": None}
    if tmp_bin:
        got["bin"] = _write_raw_binary(req, elf, tmp_bin)[0]
    return got


def _write_raw_binary(req, elf, tmp_bin: str):
    """The image's raw binary written into ``tmp_bin``: its sha256 and its layout
    (``rawbin.layout``)."""
    from altlink import rawbin  # (not imported where no binary is written)

    lay = rawbin.layout(elf)
    # (a piece at a time, the image's bytes not copied where they need not be)
    return _write_pieces(rawbin.raw_pieces(elf, lay) or [rawbin.raw_binary(elf, lay)], tmp_bin,
                         req.binary), lay


def _make_files(req, image: Input, profile, tmp_image: str, tmp_bin: str | None,
                tmp_manifest: str | None, texts=None, facts=None) -> None:
    from altlink import manifest as manifestmod

    # the sites' names made in a forked copy (before the thread below: a process with threads
    # does not fork), and the image hashed in a thread (hashlib lets go of the interpreter),
    # while the raw binary and the manifest's entries are made (not where an entry may be
    # refused: then the entries' text is not made from the table's columns; nor where the
    # compiled writer looks the names up itself, a few milliseconds)
    names = manifestmod.SiteNames.later(image) if tmp_manifest and not req.policy.disabled \
        and speedups.postlink() is None else None
    try:
        _write(req, image, profile, tmp_image, tmp_bin, tmp_manifest, texts, names, facts)
    finally:
        if names is not None:
            names.cancel()


def _write(req, image: Input, profile, tmp_image: str, tmp_bin: str | None,
           tmp_manifest: str | None, texts, names, facts=None) -> None:
    from altlink import manifest as manifestmod

    elf = image.elf
    image_sha = sections = bin_info = None
    if facts is not None:  # (made by the caller: given when the manifest's end is written)
        if not tmp_manifest:
            return
        image_sha = manifestmod.Later(lambda: facts()["image"])
        sections = manifestmod.Later(lambda: facts()["sections"])
        if tmp_bin:
            from altlink import rawbin

            bin_info = manifestmod.BinInfo(req.binary, manifestmod.Later(
                lambda: facts()["bin"]), rawbin.layout(elf))
    elif tmp_manifest:
        image_sha = manifestmod.sha256_later(tmp_image)
    if tmp_bin and facts is None:
        bin_info = manifestmod.BinInfo(req.binary, *_write_raw_binary(req, elf, tmp_bin))
    if tmp_manifest:
        lines = None
        if req.source_lines:
            from altlink import sources

            lines = sources.site_lines(tmp_image, [e.site.address for e in image.table.entries],
                                       os.path.dirname(os.path.abspath(req.manifest)))
        # An entry check refuses, let through by -W no-CODE, is still left out of the
        # manifest (the link's own checks found nothing else at error severity).
        m = manifestmod.build(image, profile, req.options.caps, req.output, "", req.manifest,
                              bin_info, lines, refuse=bool(req.policy.disabled), encoded=True,
                              texts=texts, site_names=names, sections=sections)
        m["image"]["sha256"] = image_sha if type(image_sha) is manifestmod.Later else \
            image_sha()
        with outputs.writing(tmp_manifest, req.manifest, "w", encoding="utf-8") as f:
            manifestmod.dump(m, f)
        if texts is not None:  # the codes' texts made here, kept for the next links
            from altlink import textcache

            textcache.save(texts)


def writer_texts(kept: str | None, packs, running):
    """What the image's codes will read as in the manifest (``manifest.CodeTexts``), made
    while ``running()`` (a link's linker): those kept by earlier links in the cache
    directory ``kept`` (``textcache``; None: not read), else those made from the records'
    columns ``packs`` (``early_texts``; None: none). None where neither is asked."""
    texts = None
    if kept:
        from altlink import textcache

        texts = textcache.load(kept)
    # (not where texts were kept: a relink's codes are among them but for a few, which the
    # writer makes)
    if packs is not None and (texts is None or texts.empty()):
        texts = early_texts(packs, running, texts)
    return texts


class EarlyWriter:
    """``make_files`` in a copy forked before the image exists, while the linker runs: it
    imports what it writes with and makes the codes' texts (``writer_texts``: ``kept``,
    ``packs``), until ``go()`` says the linker has written the image, which it then reads
    itself; ``tell()`` then gives it what this process makes of the image while the copy
    writes the entries (``image_facts``: the digests the manifest ends with, and the raw
    binary, written here). ``result()``: whether it wrote the outputs (False: it did not;
    the image is a relocatable object, say, of which the link writes neither)."""

    def __init__(self, req, profile, tmp_image: str, tmp_bin: str | None,
                 tmp_manifest: str | None, kept: str | None, packs) -> None:
        from altlink import forkmap

        r, self._w = os.pipe()
        self._forked = forkmap.Forked(partial(_written_when_linked, r, self._w, req, profile,
                                              tmp_image, tmp_bin, tmp_manifest, kept, packs))
        try:
            self._forked.start()
        finally:
            os.close(r)

    def go(self) -> None:
        """The linker has written the image: read it and write the outputs."""
        os.write(self._w, b"1")

    def tell(self, facts: dict) -> None:
        """The image's digests and the raw binary's (``image_facts``'s), which the copy
        writes in the manifest after its entries (it writes no raw binary then)."""
        import pickle

        data = pickle.dumps(facts, protocol=-1)
        view = memoryview(len(data).to_bytes(8, "little") + data)
        try:
            while view:
                view = view[os.write(self._w, view):]
        except BrokenPipeError:  # the copy ended without them: its result says why
            pass
        self._close()

    def _close(self) -> None:
        if self._w is not None:
            os.close(self._w)  # (the copy reads its end: no go)
            self._w = None

    def result(self) -> bool:
        self._close()
        return self._forked.result()

    def cancel(self) -> None:
        self._close()
        self._forked.cancel()


class _Go:
    """The end of ``EarlyWriter``'s pipe that the forked copy reads: a byte, b"1", once the
    image is written; nothing (the pipe closed) where the link ends without it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.said: bytes | None = None
        self._facts: dict | None = None

    def waiting(self) -> bool:
        """Whether the word is still to come (not waited for)."""
        if self.said is None:
            import select

            if not select.select([self.fd], [], [], 0)[0]:
                return True
            self.said = os.read(self.fd, 1)
        return False

    def wait(self) -> bool:
        """Whether the image is written, once the word comes."""
        if self.said is None:
            self.said = os.read(self.fd, 1)
        return self.said == b"1"

    def facts(self) -> dict:
        """What the parent tells after the word (``EarlyWriter.tell``), once it comes;
        AltlinkError where the parent ends without it."""
        if self._facts is None:
            import pickle

            n = int.from_bytes(self._read(8), "little")
            self._facts = pickle.loads(self._read(n))
        return self._facts

    def _read(self, n: int) -> bytes:
        got = b""
        while len(got) < n:
            more = os.read(self.fd, n - len(got))
            if not more:
                raise AltlinkError("altlink link: the link ended before it gave its writer "
                                   "the image's digests")
            got += more
        return got

    def close(self) -> None:
        os.close(self.fd)


def _written_when_linked(r: int, w: int, req, profile, tmp_image: str, tmp_bin: str | None,
                         tmp_manifest: str | None, kept: str | None, packs) -> bool:
    os.close(w)  # (the parent's end: the copy sees the pipe closed where the parent ends)
    from altlink import manifest, rawbin  # noqa: F401 - imported while the linker runs
    from altlink.elf import ET_REL, read_elf

    speedups.postlink()  # (the compiled writer loaded, where there is one)

    go = _Go(r)
    try:
        texts = writer_texts(kept, packs, go.waiting)
        if not go.wait():
            return False
        image = Input.load(read_elf(tmp_image))
        try:
            if image.elf.type == ET_REL:
                return False
            make_files(req, image, profile, tmp_image, tmp_bin, tmp_manifest, texts, go.facts)
            return True
        finally:
            image.elf.close()
    finally:
        go.close()


def commit(req, tmp_image: str, tmp_bin: str | None,
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


def _write_pieces(pieces: list, path: str, final: str) -> str:
    """Write ``pieces`` (bytes, or views of the image's mapping) end to end into ``path`` (the
    temporary file of ``final``); their sha256."""
    import hashlib

    h = hashlib.sha256()
    piece = None
    try:
        with outputs.writing(path, final, "wb") as f:
            for piece in pieces:
                f.write(piece)
                h.update(piece)
    finally:  # (no view of the mapping kept, even by an error's traceback: it can be closed)
        pieces.clear()
        piece = None  # noqa: F841
    return h.hexdigest()

