"""``altlink verify``: does a manifest belong to an image (hash, table, and every entry)."""
from __future__ import annotations

from altlink import manifest as manifestmod
from altlink.checks import Input
from altlink.elf import read_elf
from altlink.table import Profile


def verify(image_path: str, manifest_path: str) -> list[str]:
    """The reasons the manifest does not describe the image; empty when it does."""
    m = manifestmod.load(manifest_path)
    problems = []
    sha = manifestmod.sha256_file(image_path)
    want = (m.get("image") or {}).get("sha256")
    if sha != want:
        problems.append(f"image sha256 {sha} differs from the manifest's {want}")
    image = Input.load(read_elf(image_path))
    entries = m.get("entries")
    if not isinstance(entries, list):
        return problems + ["manifest has no entry list"]
    if len(entries) != len(image.table.entries):
        problems.append(f"the image has {len(image.table.entries)} entries, the manifest "
                        f"{len(entries)}")
        return problems
    profile = Profile(str(m.get("abi")), m.get("ncaps") if isinstance(m.get("ncaps"), int)
                      else None)
    for rec, e in zip(entries, image.table.entries):
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
        got = image.elf.read_addr(e.site.address, e.orig_len)
        if got is not None and site.get("bytes") != got.hex():
            problems.append(f"entry {e.index}: site bytes differ")
    return problems
