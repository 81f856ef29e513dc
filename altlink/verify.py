"""``altlink verify``: does a manifest belong to an image (hash, table, and every entry).

Three cases: the image as linked (same sha256); an image rewritten after the link whose
table, sites and replacements are unchanged (the manifest's ``patch_sha256`` matches: a note
names what changed, and patching against the manifest is still right); anything else, with
the entries that moved or changed named.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from altlink import binding
from altlink import manifest as manifestmod
from altlink.elf import ElfFile, read_elf
from altlink.linkset import Input
from altlink.table import Profile


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    note: str | None = None  # the image was post-processed: what changed


def verify(image_path: str, manifest_path: str) -> Verdict:
    """Whether the manifest describes the image, and how."""
    m = manifestmod.load(manifest_path)
    elf = read_elf(image_path)
    return check(elf, m, manifestmod.sha256_file(image_path))


def profile_of(m: dict) -> Profile:
    ncaps = m.get("ncaps")
    return Profile(str(m.get("abi")), ncaps if isinstance(ncaps, int) else None)


def check(elf: ElfFile, m: dict, sha: str) -> Verdict:
    img = m.get("image") or {}
    want = img.get("sha256")
    image = Input.load(elf)
    profile = profile_of(m)
    verdict = Verdict(_entry_problems(m, image, profile))
    if sha == want:
        return verdict
    recorded = img.get("patch_sha256")
    got = binding.patch_digest_of(image, profile)
    if recorded is None:
        verdict.problems.insert(0, f"image sha256 {sha} differs from the manifest's {want} "
                                "(the manifest has no patch binding to tell more)")
    elif got != recorded:
        verdict.problems.insert(0, f"image sha256 {sha} differs from the manifest's {want}, "
                                "and so do the table, sites or replacements that patching "
                                "depends on")
    elif not verdict.problems:
        sections = img.get("sections")
        changed = binding.what_changed(sections, binding.section_digests(elf)) \
            if isinstance(sections, dict) else "not recorded"
        verdict.note = (f"changed after the link (sha256 {sha[:16]}..., linked as "
                        f"{str(want)[:16]}...): {changed}; the table, every site and every "
                        "replacement are as linked, so the manifest still applies")
    return verdict


def _entry_problems(m: dict, image: Input, profile: Profile) -> list[str]:
    problems: list[str] = []
    entries = m.get("entries")
    if not isinstance(entries, list):
        return ["manifest has no entry list"]
    # Entries the manifest refused (errors that check reports) are listed apart, by index.
    refused = {r.get("index") for r in m.get("refused") or [] if isinstance(r, dict)}
    table = [e for e in image.table.entries if e.index not in refused]
    if len(entries) != len(table):
        return [f"the image has {len(table)} entries, the manifest {len(entries)}"
                + (f" (and {len(refused)} refused)" if refused else "")]
    elf = image.elf
    for rec, e in zip(entries, table):
        if not isinstance(rec, dict):
            problems.append(f"entry {e.index}: not an object")
            continue
        site = rec.get("site") or {}
        if site.get("address") != f"{e.site.address:#x}" or site.get("length") != e.orig_len:
            problems.append(f"entry {e.index}: site {site.get('address')}+{site.get('length')} "
                            f"in the manifest, {e.site.address:#x}+{e.orig_len} in the image")
        if rec.get("cap_raw") != e.cap_raw:
            problems.append(f"entry {e.index}: cap_raw {rec.get('cap_raw')} in the manifest, "
                            f"{e.cap_raw} in the image")
        kind = "callback" if profile.is_callback(e.cap_raw) else "static"
        if rec.get("kind") != kind:
            problems.append(f"entry {e.index}: kind {rec.get('kind')} in the manifest, {kind} "
                            "in the image")
        got = elf.read_addr(e.site.address, e.orig_len)
        if got is not None and site.get("bytes") != got.hex():
            problems.append(f"entry {e.index}: site bytes differ")
        repl = rec.get("replacement")
        if kind == "static" and isinstance(repl, dict):
            if repl.get("address") != f"{e.alt.address:#x}":
                problems.append(f"entry {e.index}: replacement {repl.get('address')} in the "
                                f"manifest, {e.alt.address:#x} in the image")
            else:
                code = elf.read_addr(e.alt.address, e.alt_len)
                if code is not None and repl.get("bytes") != code.hex():
                    problems.append(f"entry {e.index}: replacement bytes differ")
        cb = rec.get("callback")
        if kind == "callback" and isinstance(cb, dict) and \
                cb.get("address") != f"{e.alt.address:#x}":
            problems.append(f"entry {e.index}: callback {cb.get('address')} in the manifest, "
                            f"{e.alt.address:#x} in the image")
    return problems
