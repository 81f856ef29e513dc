"""The launcher form of ``altlink link``: one string that a build system takes as its linker
(Kbuild's ``LD=``, CMake's ``CMAKE_<LANG>_LINKER_LAUNCHER``, make's ``$(LD)``).

A build system runs its linker for more than links: it probes it (``ld --version``, ``ld -v``,
``cc -print-prog-name=ld``), and a configure step may link host objects. altlink checks only
what links AArch64 ELF inputs; everything else runs the linker unchanged, with its own output,
status and standard streams, so the build configures exactly as it would without altlink.
"""
from __future__ import annotations

import sys

from altlink.errors import AltlinkError, LinkerError
from altlink.filekind import BITCODE_MAGICS, ELF_MAGIC, EM_AARCH64, read_head

# (The command's reading, ``linkcmd``, and ``archive`` are imported where a command is read:
# a probe passed through needs neither.)
TYPE_CHECKING = False  # (``typing``'s, without its import)
if TYPE_CHECKING:
    from altlink import linkcmd

# Options after which a linker or a compiler driver prints something and links nothing.
# (``-v`` and ``-V`` print the version and still link what they are given: they are probes
# only in a command without inputs, which runs unchanged anyway.)
_PROBES = frozenset({
    "--version", "--help", "-help", "--target-help", "-dumpversion",
    "-dumpfullversion", "-dumpmachine", "-dumpspecs", "-###", "--print-multi-lib",
    "-print-multi-lib", "-print-multi-directory", "-print-multi-os-directory",
    "-print-libgcc-file-name", "-print-search-dirs", "-print-sysroot",
    "-print-sysroot-headers-suffix", "-print-targets", "--print-supported-cpus",
})
_PROBE_PREFIXES = ("-print-file-name=", "-print-prog-name=", "--print-file-name=",
                   "--print-prog-name=", "-dumpspecs")

# A relocatable (partial) link: no addresses, so no raw binary and no manifest.
RELOCATABLE = frozenset({"-r", "--relocatable", "-Ur", "-i"})


class Plan:
    """What to do with a command: run it unchanged (``passthrough``), or link it into
    ``output`` with this manifest; ``command``: the linker command as read, for the link.
    ``sources``: a compiler driver's command run unchanged that compiles these sources and
    links them (no object of theirs to read): its image, ``output``, is checked after it.
    (A plain class, as everything the launcher imports before the linker starts: dataclasses
    would cost 8 ms of imports on the way to the linker.)"""

    __slots__ = ("passthrough", "output", "manifest", "command", "sources")

    def __init__(self, passthrough: bool, output: str | None = None,
                 manifest: str | None = None,
                 command: linkcmd.LinkCommand | None = None,
                 sources: list[str] | None = None) -> None:
        self.passthrough = passthrough
        self.output = output
        self.manifest = manifest
        self.command = command
        self.sources = sources


def plan(command: list[str], output: str | None, manifest: str | None,
         manifest_suffix: str | None, parsed: linkcmd.LinkCommand | None = None,
         binary: str | None = None) -> Plan:
    """What ``altlink link`` does with this linker command: run it unchanged (a probe, a link
    of nothing, a link of no AArch64 input), or link it with these outputs. ``parsed``: the
    command as a plan of it read it before (which was not passed through).

    A compiler driver's command that compiles its sources and links them, with no object
    given (``gcc start.S main.c -o fw.elf``), may be a configure step's probe: it runs
    unchanged, and its image is checked after it (``sources``; a probe's has no table, and
    nothing is said); where altlink is asked for a manifest (``manifest``, not a suffix for
    every image) or a raw binary (``binary``) of it, it is linked as any link, as a probe
    never asks that."""
    if not command:
        raise AltlinkError("altlink link: no linker command after --")
    if parsed is not None:
        cmd = parsed
    else:
        if is_probe(command[1:]):
            return Plan(True)
        from altlink import linkcmd

        cmd = linkcmd.parse(command)
        if not cmd.any_input(_is_aarch64) and not (  # (no inputs at all: none is)
                (manifest or binary) and cmd.sources):
            if cmd.sources and links(command):
                return Plan(True, cmd.output if cmd.output is not None else "a.out",
                            sources=cmd.sources)
            return Plan(True)
    if output is None:
        # GNU ld, lld and the compiler drivers all write a.out without -o.
        output = cmd.output if cmd.output is not None else "a.out"
    if manifest is None and manifest_suffix and not is_relocatable(command):
        manifest = output + manifest_suffix
    return Plan(False, output, manifest, cmd)


def is_probe(args: list[str]) -> bool:
    for a in args:
        if a[:1] != "-":  # (an input: most words of a large link)
            continue
        if a in _PROBES or a.startswith(_PROBE_PREFIXES):
            return True
        if a.startswith("-Wl,") and any(w in ("--version", "--help") for w in a[4:].split(",")):
            return True
    return False


# A compiler driver's options that stop it before the link: it compiles, assembles,
# preprocesses, lists dependencies or checks the syntax only.
_NO_LINK = frozenset({"-c", "-S", "-E", "-M", "-MM", "-fsyntax-only", "--precompile"})


def links(command: list[str]) -> bool:
    """Whether a compiler driver's command links (none of ``_NO_LINK``)."""
    return _NO_LINK.isdisjoint(command[1:])


def is_relocatable(command: list[str]) -> bool:
    for a in command[1:]:
        if a in RELOCATABLE:
            return True
        if a.startswith("-Wl,") and any(w in RELOCATABLE for w in a[4:].split(",")):
            return True
    return False


def _is_aarch64(path: str) -> bool:
    """Whether an input is (or, for an archive, holds) AArch64 ELF or LTO bitcode: what altlink
    checks. A host object of a configure probe is not."""
    from altlink import archive

    try:
        if archive.is_archive(path):
            for m in archive.iter_members(path):  # the first AArch64 member decides
                if _head_is_aarch64(archive.read_head(m)):
                    return True
            return False
        head = read_head(path, 20)
    except (OSError, AltlinkError):
        return True  # unreadable: the link proper reports it, naming the file
    return head is None or _head_is_aarch64(head)  # (None, unreadable: as above)


def _head_is_aarch64(head: bytes) -> bool:
    if head[:4] in BITCODE_MAGICS:
        return True  # LTO bitcode: named in a note, checked after the link
    if head[:4] != ELF_MAGIC or len(head) < 20:
        return False
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big") == EM_AARCH64


def exec_unchanged(command: list[str]) -> None:
    """The linker in this process's place, as it was given (``os.execvp``): its output,
    status and signals are the command's own, and nothing of altlink is left to wait for
    it. Returns only where it cannot be run (for ``run_unchanged`` to report)."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except (OSError, ValueError):
        return


def run_unchanged(command: list[str]) -> int:
    """Run the linker as it was given, with altlink's standard streams: its output and status
    are the command's own."""
    import subprocess

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        rc = subprocess.call(command)
    except OSError as e:  # exit 3, as a link whose linker cannot run
        raise LinkerError(f"{command[0]}: cannot run the linker: {e.strerror}") from None
    return 128 - rc if rc < 0 else rc
