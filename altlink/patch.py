"""Offline patching (docs/reference.md, section 2): apply the alternatives of a manifest to its image and raw
binary for an active capability set.

Entries are applied in table order on a working copy, so a later entry sees the effect of an
earlier one. Only the bytes of the sites are ever written. Callbacks run offline only where the
user asks: ``--emulate`` runs the image's own callback in an emulator (:mod:`altlink.emulate`),
``--callbacks FILE.py`` registers Python implementations by name.
"""
from __future__ import annotations

import importlib.util
import os
import struct
from dataclasses import dataclass, field
from typing import Callable

from altlink import insn, rawbin
from altlink.elf import from_bytes
from altlink.errors import AltlinkError
from altlink.table import ABIS, Profile, image_table_sections

# A Python callback: (entry record, original words, nr_inst) -> the nr_inst new words.
PyCallback = Callable[[dict, list, int], list]


class PatchError(AltlinkError):
    """An entry cannot be applied (a finding at error severity: exit 1)."""

    exit_code = 1


class ManifestError(AltlinkError):
    """A manifest field the patcher cannot read (exit 2; the CLI names the manifest file)."""


@dataclass
class Plan:
    """What to apply: the active capabilities and how to run callbacks. ``boot_caps``: the
    capabilities applied in a first pass (None: the profile's default, :func:`boot_caps`)."""

    caps: frozenset[int]
    emulate: frozenset[str] = frozenset()
    callbacks: dict[str, PyCallback] = field(default_factory=dict)
    max_insns: int = 1_000_000
    boot_caps: frozenset[int] | None = None
    # False only to study the patcher's own semantics on entries check refuses (the tests
    # that compare it with the C runtime): the command line always refuses them.
    refuse: bool = True


# The boot-scope capabilities of the kernels the linux-v6.1 profile describes, Linux 6.1 to
# 6.12 (arch/arm64/kernel/cpufeature.c: the types ARM64_CPUCAP_BOOT_CPU_FEATURE and
# ARM64_CPUCAP_STRICT_BOOT_CPU_FEATURE, which have SCOPE_BOOT_CPU). update_cpu_capabilities()
# sets them in boot_capabilities (6.12: boot_cpucaps) when the boot CPU has them;
# apply_boot_alternatives() applies the entries of those capabilities first, then
# apply_alternatives_all() the vDSO's entries and the rest of the kernel's, in table order.
# Later kernels renamed some (6.1's HAS_SYSREG_GIC_CPUIF and HAS_IRQ_PRIO_MASKING are 6.12's
# HAS_GIC_CPUIF_SYSREGS and HAS_GIC_PRIO_MASKING) and added others; no name is boot-scope in
# one of these kernels and of another scope in another, so the list is their union and a
# kernel's table picks its own names from it.
LINUX_BOOT_CAPS = ("ALWAYS_BOOT", "HAS_SYSREG_GIC_CPUIF", "HAS_VIRT_HOST_EXTN",
                   "HAS_ADDRESS_AUTH_ARCH_QARMA5", "HAS_ADDRESS_AUTH_ARCH_QARMA3",
                   "HAS_ADDRESS_AUTH_IMP_DEF", "HAS_ADDRESS_AUTH", "HAS_IRQ_PRIO_MASKING",
                   "BTI", "MTE", "MTE_ASYMM",
                   # Linux 6.12's new names
                   "HAS_GIC_CPUIF_SYSREGS", "HAS_GIC_PRIO_MASKING",
                   "HAS_GIC_PRIO_RELAXED_SYNC", "HAS_HCX", "HAS_S1PIE", "HAS_S1POE",
                   "HAS_VA52")


@dataclass
class Result:
    image: bytes | None  # None when patched in place (``patch(output=...)``)
    binary: bytes | None
    applied: list[int]  # indexes of the entries applied
    written: list[tuple[int, int]]  # (file offset, length) of every write into the image
    nested_applied: int = 0  # entries of nested images applied


# Prefixes a capability name may carry in the user's words but not in the table (Linux's
# generated header says ARM64_HAS_LSE_ATOMICS for the cpucaps line HAS_LSE_ATOMICS).
_NAME_PREFIXES = ("ARM64_", "ALT_CAP_")


def _cap_names(manifest: dict) -> dict[str, int]:
    """Every name a capability of the manifest's table answers to: its own, the same with
    ``ARM64_`` or ``ALT_CAP_`` in front, and, where every name of the table shares a prefix
    ending in ``_`` (``ARM64_HAS_X``, ``ARM64_WORKAROUND_Y``), the name without it."""
    table = {str(v): int(k) for k, v in (manifest.get("caps") or {}).items()
             if str(k).isdigit() and isinstance(v, str)}
    out = dict(table)
    for name, n in table.items():
        for prefix in _NAME_PREFIXES:
            out.setdefault(prefix + name, n)
    if len(table) > 1:
        common = os.path.commonprefix(list(table))
        common = common[:common.rfind("_") + 1]
        if common:
            for name, n in table.items():
                if len(name) > len(common):
                    out.setdefault(name[len(common):], n)
    return out


def parse_caps(spec: str, manifest: dict, what: str = "--caps") -> frozenset[int]:
    """``A,B`` by name (from the manifest's table, with or without the table's prefix) or
    number; empty for none. A name not in the table, or a number that is not a capability
    (NCAPS or above; with no NCAPS known, above the profile's field), is an error."""
    names = _cap_names(manifest)
    ncaps = manifest.get("ncaps")
    limit = ncaps if isinstance(ncaps, int) and not isinstance(ncaps, bool) else (
        0x8000 if manifest.get("abi") == "linux-v6.1" else 0x10000)
    out = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in names:
            out.add(names[part])
        elif part.isdigit():
            if int(part) >= limit:
                raise AltlinkError(f"{what}: no capability {part} (the manifest's NCAPS is "
                                   f"{limit})" if limit == ncaps else
                                   f"{what}: {part} is not a capability number (below {limit})")
            out.add(int(part))
        else:
            table = sorted(str(v) for v in (manifest.get("caps") or {}).values())
            known = ", ".join(table) or "none: the manifest has no capability table"
            raise AltlinkError(f"{what}: unknown capability {part!r} (known: {known})")
    return frozenset(out)


def boot_caps(manifest: dict) -> frozenset[int]:
    """The profile's default first-pass set: the boot-scope capabilities (Linux 6.1 to 6.12)
    that the manifest's table names (none for linux-v4.17: table order)."""
    if manifest.get("abi") != "linux-v6.1":
        return frozenset()
    names = _cap_names(manifest)
    return frozenset(names[n] for n in LINUX_BOOT_CAPS if n in names)


def callback_names(manifest: dict) -> set[str]:
    """The callbacks of the manifest's entries, nested images' included."""
    out = set()
    for rec in _all_records(manifest):
        cb = rec.get("callback") if isinstance(rec, dict) else None
        if isinstance(cb, dict) and isinstance(cb.get("symbol"), str):
            out.add(cb["symbol"])
    return out


def check_emulate(names, manifest: dict) -> None:
    """``--emulate`` names only callbacks of the image."""
    known = callback_names(manifest)
    for name in sorted(names):
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise AltlinkError(f"--emulate: {name!r} is not a callback of the image (its "
                               f"callbacks: {listed})")


def _all_records(manifest: dict):
    yield from manifest.get("entries") or []
    for n in manifest.get("nested") or []:
        if isinstance(n, dict):
            yield from n.get("entries") or []


def load_callbacks(path: str) -> dict[str, PyCallback]:
    """A Python file whose module-level ``CALLBACKS`` dict, or whose functions named like the
    callbacks, implement them."""
    spec = importlib.util.spec_from_file_location("altlink_user_callbacks", path)
    if spec is None or spec.loader is None:
        raise AltlinkError(f"{path}: cannot load callbacks from this file")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except OSError as e:
        raise AltlinkError(f"{path}: cannot read: {e.strerror}") from None
    except Exception as e:  # the user's code: report it in one line
        raise AltlinkError(f"{path}: error while loading callbacks: "
                           f"{type(e).__name__}: {e}") from None
    table = getattr(mod, "CALLBACKS", None)
    if isinstance(table, dict):
        return {str(k): v for k, v in table.items() if callable(v)}
    return {k: v for k, v in vars(mod).items() if callable(v) and not k.startswith("_")}


def _int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ManifestError(f"{what} is not a number")
    try:
        n = v if isinstance(v, int) else int(v, 0)
    except ValueError:
        raise ManifestError(f"{what} {v[:40]!r} is not a number") from None
    if not -(1 << 64) < n < 1 << 64:  # and a huge one would not even print
        raise ManifestError(f"{what} does not fit in 64 bits")
    return n


class _Memory:
    """The image's loadable contents by address, over a mutable copy of the file; and the
    emulator for callbacks, made when first needed."""

    nested = False

    def __init__(self, path: str, data, view, max_insns: int) -> None:
        self.data = data
        self.elf = from_bytes(path, view)
        self.max_insns = max_insns
        self.emulator = None
        secs, _ = image_table_sections(self.elf)  # the rule every command uses
        self.table_addr = secs[0].addr if secs else None

    def emulate(self):
        if self.emulator is None:
            from altlink.emulate import Emulator

            self.emulator = Emulator(self.elf, self.data, self.max_insns)
        return self.emulator

    def offset(self, addr: int, length: int) -> int:
        sec = self.elf.section_at(addr)
        if sec is None or sec.type == 8 or addr + length > sec.addr + sec.size:
            raise AltlinkError(f"{self.elf.path}: address {addr:#x}+{length} is not in the "
                               "image's contents")
        return sec.offset + addr - sec.addr

    def read(self, addr: int, length: int) -> bytes:
        off = self.offset(addr, length)
        return bytes(self.data[off:off + length])

    def outer_address(self, addr: int) -> int:
        """The address of the byte at ``addr`` in the outer image (the raw binary's)."""
        return addr


class _NestedMemory(_Memory):
    """An image embedded in the outer one (:mod:`altlink.nested`): addresses are its own,
    the bytes read and written are the outer image's copy, where the kernel patches them."""

    nested = True

    def __init__(self, outer: _Memory, rec: dict, where: str) -> None:
        self.data = outer.data
        self.base = _int(rec.get("file_offset"), f"{where} file_offset")
        self.base_addr = _int(rec.get("address"), f"{where} address")
        size = _int(rec.get("size"), f"{where} size")
        if not 0 <= self.base <= self.base + size <= len(self.data):
            raise ManifestError(f"{where} lies outside the image")
        self.elf = from_bytes(f"{outer.elf.path}[{rec.get('start')}]",
                              bytes(self.data[self.base:self.base + size]))
        self.emulator = None
        self.table_addr = None

    def emulate(self):
        raise AltlinkError("emulating a callback of a nested image is not supported (give "
                           "a Python implementation with --callbacks)")

    def offset(self, addr: int, length: int) -> int:
        return self.base + super().offset(addr, length)

    def outer_address(self, addr: int) -> int:
        return self.base_addr + super().offset(addr, 4)


def _refuse(mem: _Memory, records: list, profile: Profile, manifest: dict, where: str) -> None:
    """An entry that ``check`` reports at error severity is refused, with check's words."""
    from altlink.caps import CapTable
    from altlink.checks import refusals
    from altlink.linkset import Input, Options
    from altlink.report import text_line

    names = manifest.get("caps") or {}
    table = None
    if profile.ncaps and all(str(i) in names for i in range(profile.ncaps)):
        table = CapTable(tuple(str(names[str(i)]) for i in range(profile.ncaps)))
    refused = refusals(Input.load(mem.elf), Options(profile, table))
    for rec in records:
        f = refused.get(rec.get("index")) if isinstance(rec, dict) else None
        if f is not None:
            raise PatchError(f"{where}entry {rec.get('index')}: refused, as check reports: "
                             f"{text_line(f)}")


def patch(image_path: str, m: dict, plan: Plan, *, check_hash: bool = True,
          binary: bytes | None = None, output: str | None = None) -> Result:
    """Apply the manifest's entries to the image at ``image_path`` (and to ``binary``, its raw
    binary, when given); returns the patched bytes. Raises PatchError on an entry that cannot
    be applied, AltlinkError on a manifest that does not belong to the image.

    With ``output`` (a file the caller made, such as a temporary file beside the target), the
    image is copied there by the kernel and patched in place through a writable mapping, and
    ``Result.image`` is None: the process holds no copy of the image, only the pages of the
    sites and replacements it touches (a kernel image is hundreds of megabytes).

    Order: the entries of the first-pass capabilities (``plan.boot_caps``; by default the
    profile's, :func:`boot_caps`) in table order, then those of the nested images, then the
    image's other entries in table order, as Linux 6.1 boots. Entries on separate sites do
    not depend on the order; two entries on one site do (the one applied last wins).
    """
    # The image is hashed in a thread while the kernel copies it (both release the GIL); the
    # verdict is taken before anything is applied, and before a failed copy is reported.
    digest = None
    if check_hash:
        from altlink.manifest import sha256_later

        digest = sha256_later(image_path)

    def check_binding() -> None:
        if digest is None:
            return
        got = digest()
        want = (m.get("image") or {}).get("sha256")
        # An image post-processed after the link (sorttable, strip, a signature) is patched
        # when its table, sites and replacements are as the manifest has them.
        if got != want and _binding_problems(image_path, m, got):
            raise AltlinkError(f"{image_path}: sha256 {got[:16]}... does not match the "
                               f"manifest's {str(want)[:16]}..., nor do its table, sites and "
                               "replacements: this manifest belongs to another image")

    if output is None:
        check_binding()
        try:
            with open(image_path, "rb") as f:
                data = bytearray(f.read())
        except OSError as e:
            raise AltlinkError(f"{image_path}: cannot read: {e.strerror}") from None
        return _patch(image_path, data, bytes(data), m, plan, binary)
    try:
        mapped = _mapped_copy(image_path, output)
    except AltlinkError:
        check_binding()  # what is wrong with the image comes first, as when it was hashed first
        raise
    try:
        check_binding()
        result = _patch(image_path, mapped, mapped, m, plan, binary)
        mapped.flush()
    finally:
        mapped.close()
    return result


def _binding_problems(image_path: str, m: dict, sha: str) -> list[str]:
    from altlink import verify
    from altlink.elf import read_elf

    elf = read_elf(image_path)
    try:
        return verify.check(elf, m, sha).problems
    finally:
        elf.close()


def _mapped_copy(image_path: str, output: str):
    """``output`` made a copy of the image (by the kernel: copy_file_range or sendfile), mapped
    for writing."""
    import mmap
    import shutil

    try:
        shutil.copyfile(image_path, output)
    except OSError as e:
        raise AltlinkError(f"{image_path}: cannot copy to {output}: {e.strerror}") from None
    try:
        fd = os.open(output, os.O_RDWR)
    except OSError as e:
        raise AltlinkError(f"{output}: cannot open: {e.strerror}") from None
    try:
        if os.fstat(fd).st_size == 0:
            raise AltlinkError(f"{image_path}: empty file, not an ELF file")
        return mmap.mmap(fd, 0, access=mmap.ACCESS_WRITE)
    except OSError as e:
        raise AltlinkError(f"{output}: cannot map: {e.strerror}") from None
    finally:
        os.close(fd)


def _patch(image_path: str, data, view, m: dict, plan: Plan, binary: bytes | None) -> Result:
    """Patch ``data`` (a bytearray, or the mapped copy) in place; ``view`` is what the image's
    headers are read from (the original bytes, or the mapping itself)."""
    mem = _Memory(image_path, data, view, plan.max_insns)
    ncaps = m.get("ncaps")
    profile = Profile(str(m.get("abi")), ncaps if isinstance(ncaps, int) else None)
    if profile.abi not in ABIS:
        raise ManifestError(f"profile {str(m.get('abi'))[:40]!r} is not one of "
                            f"{', '.join(ABIS)}")
    entries = m.get("entries")
    if not isinstance(entries, list):
        raise ManifestError("no entry list")
    nested = []
    for i, rec in enumerate(m.get("nested") or []):
        if not isinstance(rec, dict) or not isinstance(rec.get("entries"), list):
            raise ManifestError(f"nested image {i} is not an object with an entry list")
        where = f"nested image {i} ({rec.get('start')})"
        nested.append((_NestedMemory(mem, rec, where), rec["entries"], f"{where}: "))
    if plan.refuse:
        _refuse(mem, entries, profile, m, "")
        for nmem, recs, where in nested:
            _refuse(nmem, recs, profile, m, where)
    lay = rawbin.layout(mem.elf) if binary is not None else None
    out_bin = bytearray(binary) if binary is not None else None
    applied: list[int] = []
    written: list[tuple[int, int]] = []
    first = boot_caps(m) if plan.boot_caps is None else plan.boot_caps
    run = _Run(profile, plan, mem.elf, lay, out_bin, written)
    # Pass 1: the boot capabilities (Linux 6.1's apply_boot_alternatives); none: table order,
    # one pass, as the C runtime applies.
    if first:
        applied += run.apply(mem, entries, lambda cap: cap in first)
    # Pass 2 (apply_alternatives_all): the nested images (apply_alternatives_vdso), then the
    # image's other entries.
    for nmem, recs, where in nested:
        run.apply(nmem, recs, lambda cap: True, where)
    applied += run.apply(mem, entries, lambda cap: cap not in first)
    return Result(bytes(data) if isinstance(data, bytearray) else None,
                  bytes(out_bin) if out_bin is not None else None, applied, written,
                  run.nested_applied)


class _Run:
    """Applying entries: the plan, and where each write goes."""

    def __init__(self, profile: Profile, plan: Plan, outer_elf, lay,
                 out_bin: bytearray | None, written: list[tuple[int, int]]) -> None:
        self.profile, self.plan, self.lay, self.out_bin = profile, plan, lay, out_bin
        self.outer_elf = outer_elf
        self.written = written
        self.nested_applied = 0

    def apply(self, mem: _Memory, entries: list, this_pass, where: str = "") -> list[int]:
        profile, plan = self.profile, self.plan
        applied = []
        for rec in entries:
            if not isinstance(rec, dict):
                raise ManifestError(f"{where}an entry is not an object")
            idx = rec.get("index")
            cap_raw = _int(rec.get("cap_raw"), f"{where}entry {idx} cap_raw")
            callback = profile.is_callback(cap_raw)
            try:  # the site's shape, whether or not the entry is applied (as the C runtime)
                site_addr, length = _site(rec, idx, callback)
            except PatchError as e:
                raise PatchError(f"{where}{e}") from None
            cap = profile.cap(cap_raw)
            if cap is not None:
                if cap not in plan.caps or not this_pass(cap):
                    continue
                if profile.ncaps is not None and cap >= profile.ncaps:
                    continue  # never applied, as Linux's cpus_have_cap() answers
            elif not this_pass(None):
                continue  # a linux-v4.17 callback: in the second pass
            try:
                self._apply_one(mem, rec, idx, callback, site_addr, length)
            except PatchError as e:
                if where:
                    raise PatchError(f"{where}{e}") from None
                raise
            if mem.nested:
                self.nested_applied += 1
            else:
                applied.append(idx)
        return applied

    def _apply_one(self, mem: _Memory, rec: dict, idx, callback: bool, site_addr: int,
                   length: int) -> None:
        plan = self.plan
        if length == 0:
            return  # an empty static entry (``_site``): nothing to write
        if callback:
            words = _run_callback(mem, rec, site_addr, length, plan)
        else:
            repl = rec.get("replacement") or {}
            repl_addr = _int(repl.get("address"), f"entry {idx} replacement address")
            # The C runtime refuses these too (altlink/runtime/alt_runtime.c).
            repl_len = len(str(repl.get("bytes") or "")) // 2
            if repl_len != length:
                raise PatchError(f"entry {idx}: replacement is {repl_len} bytes, site is "
                                 f"{length} (ALT001)")
            if repl_addr % 4:
                raise PatchError(f"entry {idx}: replacement {repl_addr:#x} is not 4-byte "
                                 "aligned")
            words = _static_words(mem, idx, site_addr, repl_addr, length, self.profile.abi)
        new = struct.pack(f"<{len(words)}I", *words)
        off = mem.offset(site_addr, length)
        mem.data[off:off + length] = new
        self.written.append((off, length))
        if mem.emulator is not None:
            mem.emulator.write(site_addr, new)
        if self.out_bin is not None and self.lay is not None:
            boff = self.lay.offset_of(mem.outer_address(site_addr), self.outer_elf)
            if boff is None or boff + length > len(self.out_bin):
                raise AltlinkError(f"entry {idx}: site {site_addr:#x} is not in the raw binary")
            self.out_bin[boff:boff + length] = new


def _site(rec: dict, idx, callback: bool = False) -> tuple[int, int]:
    """The site's address and length. An empty static entry (0 bytes, a replacement of 0
    bytes) patches nothing, as the kernel's patcher reads it (Linux 7 makes them)."""
    site = rec.get("site") or {}
    site_addr = _int(site.get("address"), f"entry {idx} site address")
    length = _int(site.get("length"), f"entry {idx} site length")
    repl = rec.get("replacement")
    empty = length == 0 and not callback and isinstance(repl, dict) and repl.get("bytes") == ""
    if not empty and (length <= 0 or length % 4 or length > 1024):
        raise PatchError(f"entry {idx}: site length {length} is not a multiple of 4 in "
                         "1..1024")
    if site_addr % 4:
        raise PatchError(f"entry {idx}: site {site_addr:#x} is not 4-byte aligned (ALT003)")
    return site_addr, length


def _static_words(mem: _Memory, idx, site: int, repl: int, length: int, abi: str) -> list[int]:
    code = mem.read(repl, length)
    out = []
    for i, word in enumerate(struct.unpack(f"<{length // 4}I", code)):
        pc = repl + 4 * i
        c = insn.classify(word)
        if c.kind in ("immovable", "pcrel-unknown"):
            raise PatchError(f"entry {idx}: replacement instruction {i} ({c.name}) cannot be "
                             "moved (ALT008)")
        if c.kind in insn.FIXUP_KINDS and insn.needs_fixup(word, repl, length, pc):
            try:
                word = insn.relocate(word, pc, site + 4 * i, abi=abi)
            except insn.RangeError as e:
                raise PatchError(f"entry {idx}: replacement instruction {i} at the site "
                                 f"{site + 4 * i:#x}: {e} (ALT009)") from None
        out.append(word)
    return out


def _run_callback(mem: _Memory, rec: dict, site: int, length: int, plan: Plan) -> list[int]:
    cb = rec.get("callback") or {}
    name = cb.get("symbol")
    idx = rec.get("index")
    nr = length // 4
    orig = list(struct.unpack(f"<{nr}I", mem.read(site, length)))
    if name in plan.callbacks:
        try:
            got = plan.callbacks[name](rec, list(orig), nr)
        except Exception as e:
            raise PatchError(f"entry {idx}: Python callback {name} failed: "
                             f"{type(e).__name__}: {e}") from None
        if not isinstance(got, (list, tuple)) or len(got) != nr or not all(
                isinstance(w, int) and 0 <= w <= 0xFFFFFFFF for w in got):
            raise PatchError(f"entry {idx}: Python callback {name} must return {nr} 32-bit "
                             "words")
        return list(got)
    if name in plan.emulate:
        if mem.table_addr is None:
            raise PatchError(f"entry {idx}: the image has no .altinstructions section to pass "
                             "to the callback")
        cb_addr = _int(cb.get("address"), f"entry {idx} callback address")
        entry_addr = mem.table_addr + 12 * _int(idx, "entry index")
        try:
            return mem.emulate().call(cb_addr, entry_addr, site, orig)
        except AltlinkError as e:
            raise PatchError(f"entry {idx}: emulating callback {name}: {e}") from None
    raise PatchError(f"entry {idx}: callback {name or cb.get('address')} has no offline "
                     "implementation: pass --emulate "
                     f"{name or 'NAME'} to run the image's own code, or --callbacks FILE.py")


__all__ = ["Plan", "Result", "PatchError", "patch", "parse_caps", "load_callbacks", "boot_caps",
           "check_emulate", "LINUX_BOOT_CAPS"]
