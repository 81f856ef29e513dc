"""Command line: parses arguments, calls the package, prints. ``main(argv)`` returns the exit code.

Exit status (docs/reference.md, section 4): 0 success, 1 findings at error severity, 2 unusable input or
usage (one line naming the file, never a traceback), 3 the external linker failed, 4 altlink's
own failure (a bug: one line, the traceback only with ``ALTLINK_TRACEBACK=1``).
"""
from __future__ import annotations

import _signal as signal  # (signal's functions, without the enums signal makes: 1 ms a run)
import os
import sys

from altlink import __version__, progress
from altlink.errors import AltlinkError, one_line
from altlink.gcpause import collector_paused, ends_here, keep, process_ends

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_LINKER, EXIT_INTERNAL = 0, 1, 2, 3, 4
ABIS = ("linux-v4.17", "linux-v6.1", "xen-v4.17")

EPILOG = """exit status: 0 no errors, 1 findings at error severity, 2 unusable input or usage,
3 the linker failed, 4 altlink's own failure (a bug in altlink; set ALTLINK_TRACEBACK=1 for
the traceback)"""


def _parser_class():
    """The parsers' class: usage errors exit 2 with one line. (argparse, with ``re``, is
    imported only when a parser is built: a link starts its linker before, ``_early_link``.)"""
    import argparse

    class _Parser(argparse.ArgumentParser):
        def __init__(self, *a, **k) -> None:
            k.setdefault("formatter_class", _formatter_class())
            super().__init__(*a, **k)

        def error(self, message: str):
            raise AltlinkError(f"{self.prog}: {message}")

        def format_help(self) -> str:
            lazy = getattr(self, "_lazy_epilog", None)
            if lazy is not None:  # filled when help is shown, not for every run
                self.epilog, self._lazy_epilog = lazy(), None
            return super().format_help()

    return _Parser


def _formatter_class():
    """argparse's help formatter (the descriptions as written), whose width is the terminal's
    as ``shutil.get_terminal_size`` gives it, found without importing shutil: argparse makes a
    formatter for every option it is given, and shutil's imports (bz2, lzma) were 3 ms of
    each run, a kernel module's link's too."""
    import argparse

    class _Formatter(argparse.RawDescriptionHelpFormatter):
        def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
            if width is None:
                width = _terminal_columns() - 2  # (argparse's margin)
            super().__init__(prog, indent_increment, max_help_position, width)

    return _Formatter


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, else standard output's terminal,
    else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _common(p, findings: bool = True,
            formats: tuple[str, ...] = ("text", "json", "sarif")) -> None:
    g = p.add_argument_group("profile")
    g.add_argument("--abi", choices=ABIS,
                   default=os.environ.get("ALTLINK_ABI") or None,
                   help="table ABI profile (default linux-v4.17, or $ALTLINK_ABI)")
    g.add_argument("--cap-table", metavar="F", default=os.environ.get("ALTLINK_CAP_TABLE") or None,
                   help="capability table (text or generated header; or $ALTLINK_CAP_TABLE)")
    g.add_argument("--ncaps", type=int, metavar="N",
                   help="number of capabilities where there is no table (or $ALTLINK_NCAPS)")
    g.add_argument("--symbols-from", metavar="IMAGE", action="append", default=None,
                   help="also resolve callbacks against this image's symbols (repeatable; or "
                   "$ALTLINK_SYMBOLS_FROM, a list of paths separated by ':')")
    if findings:
        r = p.add_argument_group("report")
        r.add_argument("--format", choices=formats, default="text",
                       help="text (one line per finding, default), " + " or ".join(
                           f for f in formats if f != "text")
                       + (" (SARIF 2.1.0)" if "sarif" in formats else ""))
        r.add_argument("--werror", action="store_true", default=_env_flag("ALTLINK_WERROR"),
                       help="make warnings errors (or $ALTLINK_WERROR=1)")
        r.add_argument("-W", dest="wflags", action="append", default=[], metavar="no-CODE",
                       help="silence one code, e.g. -W no-ALT014 (repeatable; any case)")


def _env_flag(name: str) -> bool:
    """A yes/no environment variable: 1, yes, true, on; or 0, no, false, off, empty."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "no", "false", "off"):
        return False
    if value in ("1", "yes", "true", "on"):
        return True
    raise AltlinkError(f"{name}={os.environ[name]!r}: expected 1 or 0 (yes/no, true/false)")


def _env_paths(args) -> None:
    """``--symbols-from`` given on the command line wins over ``$ALTLINK_SYMBOLS_FROM``."""
    if getattr(args, "symbols_from", False) is None:
        value = os.environ.get("ALTLINK_SYMBOLS_FROM", "")
        args.symbols_from = [p for p in value.split(os.pathsep) if p]


def _positive(text: str) -> int:
    """An instruction limit: unicorn reads a count of 0 as "no limit"."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: must be at least 1 (0 would mean no limit)")
    return n


# What ``altlink COMMAND --help`` ends with: examples, then the exit statuses.
_EPILOGS = {
    "scan": (["altlink scan build/fw/main.o", "altlink scan --format json fw.elf"],
             "0 listed, 1 a table finding at error severity, 2 unusable input or usage"),
    "check": (["altlink check --cap-table caps.txt build/*.o",
               "altlink check --abi linux-v6.1 --symbols-from vmlinux $(find . -name '*.ko')"],
              "0 no finding at error severity, 1 findings at error severity, 2 unusable input "
              "or usage"),
    "link": (["altlink link -o fw.elf --manifest fw.alt.json --bin fw.bin --cap-table caps.txt "
              "\\\n      -- aarch64-linux-gnu-ld -T fw.ld start.o main.o -o fw.elf"],
             "0 linked and written, 1 findings at error severity, 2 unusable input or usage, "
             "3 the linker failed (its messages passed through); after a failure none of -o, "
             "--manifest and --bin is left"),
    "manifest": (["altlink manifest fw.elf -o fw.alt.json --bin fw.bin"],
                 "0 written, 2 unusable input or usage"),
    "verify": (["altlink verify fw.elf fw.alt.json"],
               "0 the manifest belongs to the image, 1 it does not, 2 unusable input or usage"),
    "show": (["altlink show fw.alt.json", "altlink show fw.elf"],
             "0 shown, 2 unusable input or usage"),
    "diff": (["altlink diff old.alt.json new.alt.json"],
             "0 no differences, 1 the manifests differ, 2 unusable input or usage"),
    "patch": (["altlink patch fw.elf --manifest fw.alt.json --caps HAS_CRC,HAS_LSE "
               "-o fw-patched.elf"],
              "0 patched, 2 unusable input or usage"),
    "caps": (["altlink caps caps.txt -o caps.h"], "0 written, 2 unusable input or usage"),
    "explain": (["altlink explain ALT001"], "0 shown, 2 an unknown code"),
    "paths": (["altlink paths --include", "altlink paths"], "0 printed, 2 usage"),
}


def _command(sub, name: str, help: str, **kw):
    parser = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".",
                            **kw)
    parser._lazy_epilog = lambda: _epilog(name)  # made only for --help (textwrap)
    return parser


def _epilog(name: str) -> str:
    """A command's help epilog: its examples and its exit statuses."""
    import textwrap

    examples, exits = _EPILOGS[name]
    statuses, _, after = exits.partition("; ")
    exits = (statuses + ", 4 altlink's own failure (a bug: ALTLINK_TRACEBACK=1 shows the "
             "traceback)" + (f"; {after}" if after else ""))
    return ("examples:\n" + "".join(f"  {e}\n" for e in examples) + "\n"
            + textwrap.fill("exit status: " + exits, 78, subsequent_indent="  ") + "\n")


def build_parser(only: str | None = None):
    """The command line's parser; ``only``: with that command's parser alone (what a run of
    that command needs: the link's linker starts sooner without the others, 5 ms)."""
    import argparse

    def want(name: str) -> bool:
        return only is None or name == only

    _Parser = _parser_class()
    p = _Parser(prog="altlink", description="Link-stage validation and patching of AArch64 "
                "alternatives.", epilog="Run 'altlink COMMAND --help' for a command's options, "
                "examples and exit statuses.\n\n" + EPILOG)
    p.add_argument("--version", action="version", version=f"altlink {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    if want("scan"):
        s = _command(sub, "scan", "list the entries of objects or images")
        _common(s, formats=("text", "json"))  # SARIF is for findings; scan lists entries
        s.add_argument("files", nargs="+", metavar="FILE", help="objects, archives or images")

    if want("check"):
        c = _command(sub, "check", "validate objects (as one link set) or images")
        _common(c)
        c.add_argument("--module", action="store_true",
                       help="kernel-module rules (also automatic for a link set with .gnu.linkonce.this_module, the module structure modpost adds)")
        g = c.add_argument_group("the link's own symbols (as the link reads them)")
        g.add_argument("-T", "--script", dest="scripts", metavar="SCRIPT", action="append",
                       default=None,
                       help="a linker script of the link: a callback it (or a script it INCLUDEs) assigns is the link's, checked when linked (Linux: arch/arm64/kernel/vmlinux.lds for KVM's __kvm_nvhe_ names)")
        g.add_argument("-L", dest="lib_dirs", metavar="DIR", action="append", default=None,
                       help="where INCLUDE and -T look for scripts, as the linker's -L")
        g.add_argument("--defsym", dest="defsyms", metavar="NAME=EXPR", action="append",
                       default=None, help="a symbol the link defines, as the linker's --defsym")
        g.add_argument("--wrap", dest="wraps", metavar="NAME", action="append", default=None,
                       help="a symbol the link wraps, as the linker's --wrap: a callback left "
                       "undefined named NAME is __wrap_NAME's")
        _cache_options(c)
        _verbose_option(c)
        c.add_argument("files", nargs="+", metavar="FILE",
                       help="objects (one link set), kernel modules or images")

    if want("link"):
        ln = _command(sub, "link", "check, link, cross-check, write image, manifest, binary",
                      usage="altlink link [-o OUT] [--manifest M] [--bin B] [--sort-table] "
                      "[options] -- LINKER_COMMAND...")
        _common(ln)
        ln.add_argument("-o", dest="output", metavar="OUT",
                        help="the image (default: the linker command's own -o)")
        ln.add_argument("--manifest", metavar="M",
                        help="write the manifest here (default: the image's name plus "
                        "$ALTLINK_MANIFEST, a suffix such as .alt.json, where it is set)")
        ln.add_argument("--manifest-suffix", metavar="SUFFIX",
                        default=os.environ.get("ALTLINK_MANIFEST") or None,
                        help="write a manifest beside the image, named after it with this suffix "
                        "(vmlinux -> vmlinux.alt.json with .alt.json; or $ALTLINK_MANIFEST); not "
                        "for a partial link (ld -r)")
        ln.add_argument("--bin", metavar="B", help="write the raw binary (objcopy -O binary) here")
        ln.add_argument("--sort-table", action="store_true",
                        help="sort the table in the image by site address")
        ln.add_argument("--source-lines", action="store_true",
                        help="add DWARF source lines to the manifest")
        _cache_options(ln)
        _verbose_option(ln)
        ln.add_argument("--module", action="store_true", help=argparse.SUPPRESS)
        ln.add_argument("linker", nargs=argparse.REMAINDER, metavar="LINKER_COMMAND",
                        help="the linker and its arguments, after --")

    if want("manifest"):
        m = _command(sub, "manifest", "a manifest for an already linked image")
        _common(m, findings=False)
        m.add_argument("image", metavar="IMAGE", help="the linked image")
        m.add_argument("-o", dest="output", metavar="M", help="write here (default: stdout)")
        m.add_argument("--bin", metavar="B", help="also describe this raw binary of the image")
        m.add_argument("--source-lines", action="store_true", help="add DWARF source lines")
        m.add_argument("--nested", action="append", default=[], metavar="START,END",
                       help="also the ELF image embedded between these two symbols (repeatable; "
                       "Linux's vdso_start,vdso_end is found without it)")
        m.add_argument("--compact", metavar="FILE",
                       help="also write the compact binary manifest for C runtimes here (the JSON "
                       "then goes only to -o)")

    if want("verify"):
        v = _command(sub, "verify", "does this manifest belong to this image")
        v.add_argument("image", metavar="IMAGE", help="the image (as linked, or post-processed)")
        v.add_argument("manifest", metavar="M", help="its manifest")

    if want("show"):
        sh = _command(sub, "show", "a readable table with site and replacement disassembly")
        _common(sh, findings=False)
        sh.add_argument("file", metavar="IMAGE-or-MANIFEST", help="a linked image or a manifest")

    if want("diff"):
        d = _command(sub, "diff", "what changed between two manifests")
        d.add_argument("old", metavar="M1", help="the old manifest")
        d.add_argument("new", metavar="M2", help="the new manifest")

    if want("patch"):
        pt = _command(sub, "patch", "apply the alternatives for a capability set, offline")
        pt.add_argument("image", metavar="IMAGE", help="the linked image")
        pt.add_argument("--manifest", required=True, metavar="M", help="the image's manifest")
        pt.add_argument("--caps", required=True, metavar="A,B",
                        help="the active capabilities, by name or number ('' for none)")
        pt.add_argument("-o", dest="output", required=True, metavar="OUT", help="the patched image")
        pt.add_argument("--bin", metavar="B", help="also write the patched raw binary here")
        pt.add_argument("--boot-caps", metavar="A,B",
                        help="capabilities applied in a first pass, before the others (default: "
                        "for linux-v6.1, the boot-scope capabilities of Linux 6.1 to 6.12; '' for "
                        "table order)")
        pt.add_argument("--emulate", action="append", default=[], metavar="NAME,...",
                        help="run these callbacks of the image in an emulator")
        pt.add_argument("--callbacks", metavar="FILE.py",
                        help="Python implementations of callbacks, by name")
        pt.add_argument("--max-insns", type=_positive, default=1_000_000, metavar="N",
                        help="instruction limit for an emulated callback (default 1000000)")

    if want("paths"):
        pa = _command(sub, "paths", "where the package keeps its C header, linker-script "
                      "fragment and C runtime (for Makefiles and other build systems)")
        what = pa.add_mutually_exclusive_group()
        what.add_argument("--include", action="store_const", dest="which", const="include",
                          help="the directory to add with -I for <altlink/alternative.h>")
        what.add_argument("--ldscripts", action="store_const", dest="which", const="ldscripts",
                          help="the directory to add with -L for INCLUDE alternatives.ld")
        what.add_argument("--runtime", action="store_const", dest="which", const="runtime",
                          help="the directory of the C runtime (alt_runtime.c, alt_runtime.h)")

    if want("caps"):
        cp = _command(sub, "caps", "write the C header of a capability table")
        cp.add_argument("table", metavar="TABLE", help="the capability table (cpucaps format)")
        cp.add_argument("-o", dest="output", metavar="HEADER", help="write here (default: stdout)")

    if want("explain"):
        ex = _command(sub, "explain", "print the page of a diagnostic code")
        ex.add_argument("code", metavar="CODE", help="a code such as ALT001 (any case)")
    return p


def _verbose_option(p) -> None:
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say what was checked (success is otherwise silent)")


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


def _checked(stats: dict, findings) -> str:
    """``3 entries, 1 callback resolved``: what ``-v`` says of the entries checked."""
    unresolved = sum(f.code == "ALT006" for f in findings)
    return (f"{_plural(stats.get('entries', 0), 'entry', 'entries')}, "
            f"{_plural(stats.get('callbacks', 0) - unresolved, 'callback')} resolved")


def _cache_options(p) -> None:
    p.add_argument("--cache-dir", metavar="DIR",
                   help="keep the objects' records here, by content, so that a relink or a "
                   "check again reads only the objects that changed (default "
                   "$ALTLINK_CACHE_DIR, else $XDG_CACHE_HOME/altlink/records)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor keep records")


def _policy(args):
    from altlink.findings import Policy, known_code

    disabled = set()
    for w in args.wflags:
        code = known_code(w[3:]) if w[:3].lower() == "no-" else None
        if code is None:
            raise AltlinkError(f"altlink: -W {w}: expected no-ALTnnn with a known code")
        disabled.add(code)
    return Policy(frozenset(disabled), args.werror)


def options_from(args, tables=None, paths=None, mapped=None):
    """The check options (profile, capability table) the common arguments describe. Without
    ``--abi`` (or ``ALTLINK_ABI``), the profile the tables show (``tables``, or the tables of
    the files ``paths`` names: ``abiscan.detect_abi_paths``, which fills ``mapped``), else
    linux-v4.17."""
    from altlink import caps as capsmod
    from altlink.linkset import Options
    from altlink.table import DEFAULT_ABI, Profile, detect_abi

    abi = args.abi
    if abi is not None and abi not in ABIS:
        raise AltlinkError(f"ALTLINK_ABI={abi!r}: expected one of {', '.join(ABIS)}")
    note = None
    if abi is None and (paths or tables):
        if paths:
            from altlink.abiscan import detect_abi_paths

            abi = detect_abi_paths(paths, mapped)
        else:
            abi = detect_abi(tables)
        if abi is not None:
            note = (f"altlink: note: the table marks callbacks with bit 15: using --abi {abi} "
                    "(pass --abi to choose)\n")
    abi = abi or DEFAULT_ABI
    ncaps = args.ncaps
    if ncaps is None and os.environ.get("ALTLINK_NCAPS"):
        try:
            ncaps = int(os.environ["ALTLINK_NCAPS"], 0)
        except ValueError:
            raise AltlinkError(f"ALTLINK_NCAPS={os.environ['ALTLINK_NCAPS']!r} is not a "
                               "number") from None
    if ncaps is not None and ncaps < 0:
        raise AltlinkError(f"altlink: --ncaps {ncaps} is negative")
    table = capsmod.load(args.cap_table) if args.cap_table else None
    if note:
        _notes(args).write(note)
    return Options(Profile(abi, ncaps), table, getattr(args, "module", False))


def _emit(findings, args, out, options) -> int:
    from altlink.findings import has_errors

    findings = _policy(args).apply(findings)
    if findings:  # (their source lines: nothing to read for none)
        from altlink.sources import attach

        findings = attach(findings)
    if findings or args.format != "text":  # (no finding as text: no line, nothing imported)
        from altlink.report import render

        out.write(render(findings, args.format))
    _advise(findings, args, options)
    return EXIT_FINDINGS if has_errors(findings) else EXIT_OK


def _advise(findings, args, options) -> None:
    """Once, after the findings: the profile or table that explains them, with the option."""
    if not findings:  # (nothing to explain: ``notes`` of none is none)
        return
    from altlink.advice import notes

    if options.caps is not None:
        source = f"the capability table {options.caps.path}"
    elif args.ncaps is not None:
        source = f"--ncaps {args.ncaps}"
    elif os.environ.get("ALTLINK_NCAPS"):
        source = f"ALTLINK_NCAPS={os.environ['ALTLINK_NCAPS']}"
    else:
        source = None
    for line in notes(findings, options.profile.abi, source):
        sys.stderr.write(line + "\n")


def cmd_scan(args, out) -> int:
    from altlink import inputs as inputsmod
    from altlink.check_core import resolve_ncaps
    from altlink.scan import scan_json, scan_text

    loaded = inputsmod.load(args.files, notes=_notes(args))
    tables = [i.table for i in loaded]
    options = options_from(args, tables)
    findings = [f for t in tables for f in t.findings]
    profile = resolve_ncaps(options.profile, options.caps, tables, findings)
    if args.format == "json":
        import json
        out.write(json.dumps(scan_json(loaded, profile, options.caps), indent=2,
                             sort_keys=True) + "\n")
    else:
        out.write(scan_text(loaded, profile, options.caps))
    if findings:
        from altlink.report import render
        sys.stderr.write(render(_policy(args).apply(findings), "text"))
    from altlink.findings import has_errors
    return EXIT_FINDINGS if has_errors(_policy(args).apply(findings)) else EXIT_OK


def cmd_check(args, out) -> int:
    if ends_here():  # the altlink command's own process, one thread
        _inspect_when_used()
    from altlink.batch import check_paths

    # Without --abi, the profile the tables show: from their raw fields (abiscan), the files
    # read on the way checked from there.
    mapped: dict = {}
    options = options_from(args, paths=args.files, mapped=mapped)
    stats: dict = {}
    by_link = None
    if args.scripts or args.defsyms or args.wraps:  # what the link does to names
        from altlink.check_linkset import LinkDefined
        from altlink.linkcmd import defined_by

        names = defined_by(args.scripts or [], args.lib_dirs or [], args.defsyms or [])
        by_link = LinkDefined(lambda: names, frozenset(args.wraps or ()))
    findings = check_paths(args.files, options, args.symbols_from, notes=_notes(args),
                           cache_dir=_cache_dir(args), stats=stats if args.verbose else None,
                           mapped=mapped, by_link=by_link)
    rc = _emit(findings, args, out, options)
    if args.verbose:
        what = [_plural(stats[k], w) for k, w in (("modules", "module"), ("objects", "object"),
                                                  ("images", "image")) if stats.get(k)]
        sys.stderr.write(f"altlink: checked {', '.join(what) or 'nothing'}: "
                         f"{_checked(stats, findings)}\n")
    return rc


def _inspect_when_used() -> None:
    """``inspect`` imported where it is first used, not where ``dataclasses`` imports it (with
    ``ast``, ``dis`` and ``tokenize``: 8 to 10 ms of CPU, a tenth of a check of 2,002 objects
    whose records are kept): ``dataclasses`` only asks it for the signature of a class
    without a docstring. A stand-in module takes its place in ``sys.modules`` until then; the
    first name asked of it imports the real module, which takes its place and answers. In
    the ``altlink`` command's own process only (``ends_here``: not in SCons's, nor a test's),
    before anything has imported it. (``importlib.util.LazyLoader`` loads a module at the
    next ``import`` of it, which is ``dataclasses``'.)"""
    if "inspect" not in sys.modules:
        sys.modules["inspect"] = _ImportedWhenUsed("inspect")


class _ImportedWhenUsed(type(sys)):
    """A module's stand-in (``_inspect_when_used``): imports it at the first name asked."""

    __spec__ = None  # what ``import`` asks of a module it finds in sys.modules

    def __getattr__(self, name: str):
        import importlib

        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def _cache_dir(args) -> str | None:
    from altlink.records import default_cache_dir

    if args.no_cache:
        return None
    return args.cache_dir if args.cache_dir is not None else default_cache_dir()


def cmd_link(args, out) -> int:
    from altlink import launcher, outputs
    from altlink.linker import LinkStart

    command = args.linker[1:] if args.linker[:1] == ["--"] else args.linker
    # A link that fails, for any reason or none (an interrupt), leaves none of its outputs.
    targets = [p for p in (args.output, args.manifest, args.bin) if p]
    start = early = getattr(args, "early_link", None)
    try:
        if early is not None and (early.command != command or early.output != args.output):
            early.close()  # (never: both read the same words)
            start = early = None
        plan = launcher.plan(command, args.output, args.manifest, args.manifest_suffix,
                             parsed=early.start.cmd if early is not None else None,
                             binary=args.bin)
        if plan.passthrough:  # a probe or a foreign link: the linker alone, exactly as it is
            rc = launcher.run_unchanged(command)
            if rc == 0 and plan.sources is not None:  # ... then what it made, checked
                return _check_driver_image(plan, args, out)
            return rc
        try:
            # (the image may replace an input, as lld allows ``-r part.o more.o -o part.o``:
            # read before it is replaced; not the manifest or the raw binary)
            outputs.check_targets([("the image", plan.output), ("the manifest", plan.manifest),
                                   ("the raw binary", args.bin)])
            outputs.check_targets([("the manifest", plan.manifest), ("the raw binary", args.bin)],
                                  plan.command.words_but_output() if plan.command is not None
                                  else command[1:])
        except AltlinkError:
            targets = []  # (one of them is an input or another's: none is removed)
            raise
        targets = [p for p in (plan.output, plan.manifest, args.bin) if p]
        # The linker starts before the checks' modules are imported and the capability table
        # read: all of that runs beside it. (From ``main``, before the command line was
        # parsed, where the words allow: ``_early_link``.)
        start = early.start if early is not None else \
            LinkStart(command, plan.output, parsed=plan.command)
        if ends_here():  # (as check's: a module's link never asks it, nor one without numpy)
            _inspect_when_used()
        from altlink.link import LinkRequest, link

        options = options_from(args)
        req = LinkRequest(command, plan.output, plan.manifest, args.bin, options,
                          args.symbols_from, args.sort_table, args.source_lines, _policy(args))
        req.cache_dir = _cache_dir(args)
        result = link(req, start=start)
    except BaseException:
        if start is not None:
            start.close()
        outputs.remove_stale(targets)
        raise
    from altlink.findings import has_errors

    for n in result.notes:
        sys.stderr.write(n + "\n")
    findings = _policy(args).apply(result.findings)
    if os.environ.get("ALTLINK_LOG"):
        _log_link(os.environ["ALTLINK_LOG"], req, result, findings)
    if has_errors(findings):
        outputs.remove_stale(targets)
    if findings or args.format != "text":  # (no finding as text: no line, nothing imported)
        from altlink.report import render

        text = render(findings, args.format)
        (sys.stderr if args.format == "text" else out).write(text)
    _advise(findings, args, options)
    if args.verbose:
        s = result.stats
        line = (f"altlink: checked {_plural(s.get('objects', 0), 'object')} "
                f"({_checked(s, findings)})")
        if result.linked:
            line += (f"; linked {plan.output} and cross-checked "
                     f"{_plural(s.get('image_entries', 0), 'entry', 'entries')}")
        line += f"; wrote {', '.join(result.written) if result.written else 'nothing'}"
        sys.stderr.write(line + "\n")
    return EXIT_FINDINGS if has_errors(findings) else EXIT_OK


def _check_driver_image(plan, args, out) -> int:
    """The image a compiler driver's command linked from sources it compiled itself, run
    unchanged (``launcher.Plan.sources``), checked as ``altlink check IMAGE`` checks one:
    nothing is said of an image with no table (a configure step's probe, a host program);
    with findings at error severity, the image is removed (exit 1), as a link's would be."""
    from altlink import elf, inputs, outputs
    from altlink.errors import AltlinkError as Unreadable

    if outputs.is_special(plan.output):  # (-o /dev/null, a FIFO: nothing to read back)
        return EXIT_OK
    try:
        img = elf.read_elf(plan.output)
    except (Unreadable, OSError):
        return EXIT_OK  # not an image altlink reads (a host program, a probe's /dev/null)
    from altlink.checks import check
    from altlink.findings import has_errors
    from altlink.linkset import Input
    from altlink.report import render

    try:
        image = Input.load(img)
        if img.type == elf.ET_REL or not (image.table.size or image.table.findings):
            return EXIT_OK  # (no table: nothing to check, nothing to say)
        found = check([image], options_from(args))
    except Unreadable as e:
        sys.stderr.write(f"{one_line(str(e))}\n")
        outputs.remove_stale([plan.output])
        return e.exit_code
    findings = _policy(args).apply(found)
    sys.stderr.write(inputs.sources_note(plan.sources) + "\n")
    text = render(findings, args.format)
    (sys.stderr if args.format == "text" else out).write(text)
    if has_errors(findings):
        outputs.remove_stale([plan.output])
        return EXIT_FINDINGS
    return EXIT_OK


def _log_link(path: str, req, result, findings) -> None:
    """One JSON line per link appended to ``$ALTLINK_LOG``: what a build's links checked
    (one write with O_APPEND, so that parallel links do not interleave their lines)."""
    import json

    from altlink.findings import ERROR

    rec = {"output": req.output, "cwd": os.getcwd(), "linked": result.linked,
           "written": result.written, **result.stats,
           "errors": sum(f.severity == ERROR for f in findings),
           "findings": sorted({f.code for f in findings})}
    line = (json.dumps(rec, sort_keys=True) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as e:
        raise AltlinkError(f"{path}: cannot write the link log ($ALTLINK_LOG): "
                           f"{e.strerror}") from None


def cmd_paths(args, out) -> int:
    """One directory per line (include, ldscripts, runtime), or the one asked for."""
    package = os.path.dirname(os.path.abspath(__file__))
    dirs = {"include": os.path.join(package, "include"),
            "ldscripts": os.path.join(package, "ldscripts"),
            "runtime": os.path.join(package, "runtime")}
    if args.which:
        out.write(dirs[args.which] + "\n")
    else:
        out.write("".join(f"{k}\t{v}\n" for k, v in dirs.items()))
    return EXIT_OK


def _image_manifest(path: str, args, manifest_path: str | None, binary: str | None = None,
                    refuse: bool = False, encoded: bool = False):
    from altlink import manifest as manifestmod
    from altlink.check_core import resolve_ncaps
    from altlink.elf import ET_REL, read_elf
    from altlink.linkset import Input

    elf = read_elf(path)
    if elf.type == ET_REL:
        raise AltlinkError(f"{path}: a relocatable object, not a linked image; link it first")
    image_sha = manifestmod.sha256_later(path)
    if refuse:  # numpy, which the refusals' ALT017 scan of a large image uses, reads its table
        from altlink import branches
        from altlink.elf import SHT_NOBITS
        branches.preload(sum(s.size for s in elf.sections
                             if s.executable and s.type != SHT_NOBITS))
    image = Input.load(elf)
    options = options_from(args, [image.table])
    findings = list(image.table.findings)
    profile = resolve_ncaps(options.profile, options.caps, [image.table], findings)
    bin_info = None
    if binary:
        from altlink import rawbin
        lay = rawbin.layout(elf)
        bin_info = manifestmod.BinInfo(binary, manifestmod.sha256_file(binary), lay)
    lines = None
    if getattr(args, "source_lines", False):
        from altlink.sources import site_lines
        base = os.path.dirname(os.path.abspath(manifest_path)) if manifest_path else os.getcwd()
        lines = site_lines(path, [e.site.address for e in image.table.entries], base)
    from altlink import nested as nestedmod

    pairs = [nestedmod.parse_pair(p) for p in getattr(args, "nested", None) or []]
    nested = nestedmod.find(elf, elf.data, pairs)
    refused: list = []
    m = manifestmod.build(image, profile, options.caps, path, "", manifest_path,
                          bin_info, lines, refuse=refuse, nested=nested, findings=refused,
                          encoded=encoded)
    m["image"]["sha256"] = image_sha()  # hashed in a thread while the manifest was made
    return m, findings + [f for f in refused if f not in findings]


def cmd_manifest(args, out) -> int:
    from altlink import manifest as manifestmod
    from altlink import outputs
    from altlink.report import render

    outputs.check_targets([("the manifest", args.output), ("the compact manifest", args.compact)],
                          [args.image, *([args.bin] if args.bin else [])], "the command")
    # the entries as JSON text unless the compact form reads them
    m, findings = _image_manifest(args.image, args, args.output, args.bin, refuse=True,
                                  encoded=not args.compact)
    if findings:
        sys.stderr.write(render(findings, "text"))
    text = manifestmod.dumps(m)
    if args.compact:
        from altlink import compact
        outputs.write_bytes(args.compact, compact.encode(m))
    if args.output:
        outputs.write_bytes(args.output, text.encode("utf-8"))
    elif not args.compact:
        out.write(text)
    keep(m)  # not freed on the way out (Debian's vmlinux: 27,000 entries, 20 ms)
    # The entries check reports at error severity are left out of the manifest (listed under
    # "refused", and named on stderr as check names them): the manifest of the others is
    # usable, so it is written, and the command succeeds.
    return EXIT_OK


def cmd_verify(args, out) -> int:
    from altlink.verify import verify

    verdict = verify(args.image, args.manifest)
    for p in verdict.problems:
        out.write(f"{args.manifest}: error: {p}\n")
    if verdict.problems:
        return EXIT_FINDINGS
    if verdict.note:
        out.write(f"{args.image}: note: {verdict.note}\n")
    out.write(f"{args.manifest}: matches {args.image}\n")
    return EXIT_OK


def cmd_show(args, out) -> int:
    from altlink import manifest as manifestmod
    from altlink.show import show

    try:
        with open(args.file, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise AltlinkError(f"{args.file}: cannot open: {e.strerror}") from None
    if head == b"\x7fELF":
        m, _ = _image_manifest(args.file, args, None)
    else:
        m = manifestmod.load(args.file)
    out.write(show(m))
    return EXIT_OK


def cmd_diff(args, out) -> int:
    from altlink import manifest as manifestmod
    from altlink.show import diff

    text = diff(manifestmod.load(args.old), manifestmod.load(args.new))
    out.write(text)
    return EXIT_OK if text == "no differences\n" else EXIT_FINDINGS  # as diff(1)


def cmd_explain(args, out) -> int:
    from altlink.findings import known_code, page_path

    code = known_code(args.code)
    if code is None:
        raise AltlinkError(f"altlink explain: {args.code}: not a diagnostic code (ALT001 to "
                           "ALT018)")
    out.write(page_path(code).read_text(encoding="utf-8"))
    return EXIT_OK


def cmd_caps(args, out) -> int:
    from altlink import caps as capsmod
    from altlink import outputs

    text = capsmod.header(capsmod.load(args.table))
    if args.output:
        outputs.write_bytes(args.output, text.encode("utf-8"))
    else:
        out.write(text)
    return EXIT_OK


def cmd_patch(args, out) -> int:
    from altlink import manifest as manifestmod
    from altlink import outputs, patch, rawbin
    from altlink.elf import read_elf

    # (the patched image may replace the image itself: patched in place)
    outputs.check_targets([("the patched image", args.output), ("the raw binary", args.bin)],
                          [args.manifest, *([args.callbacks] if args.callbacks else [])],
                          "the command")
    outputs.check_targets([("the raw binary", args.bin)], [args.image], "the command")
    m = manifestmod.load(args.manifest)
    emulate = frozenset(n.strip() for part in args.emulate for n in part.split(",") if n.strip())
    if emulate:
        from altlink.emulate import require
        require()
    try:
        patch.check_emulate(emulate, m)
        boot = None if args.boot_caps is None else patch.parse_caps(args.boot_caps, m,
                                                                     "--boot-caps")
        caps = patch.parse_caps(args.caps, m)
    except AltlinkError as e:  # against the manifest's table and callbacks: name it
        raise AltlinkError(f"{args.manifest}: {e}") from None
    callbacks = patch.load_callbacks(args.callbacks) if args.callbacks else {}
    plan = patch.Plan(caps, emulate, callbacks, args.max_insns, boot)
    binary = None
    if args.bin:
        elf = read_elf(args.image)
        binary = rawbin.raw_binary(elf)
        elf.close()
    # The image is copied to a temporary file beside the output and patched there in place.
    made: list[str] = []
    try:
        tmp = outputs.temp_path(args.output, keep=made)
        try:
            result = patch.patch(args.image, m, plan, binary=binary, output=tmp)
        except patch.ManifestError as e:
            raise AltlinkError(f"{args.manifest}: {e}") from None
        outputs.finish(tmp, args.output, os.stat(args.image).st_mode & 0o777)
        made.clear()
    finally:
        for path in made:
            outputs.remove(path)
    if args.bin and result.binary is not None:
        outputs.write_bytes(args.bin, result.binary)
    total = len(m.get("entries") or []) + sum(len(n.get("entries") or [])
                                              for n in m.get("nested") or [])
    sys.stderr.write(f"{args.output}: applied {len(result.applied) + result.nested_applied} "
                     f"of {total} alternatives\n")
    keep(m, result)  # not freed on the way out (Debian's vmlinux's manifest: 60 ms)
    return EXIT_OK


COMMANDS = {"patch": cmd_patch, "scan": cmd_scan, "check": cmd_check, "link": cmd_link, "manifest": cmd_manifest,
            "verify": cmd_verify, "show": cmd_show, "diff": cmd_diff, "caps": cmd_caps,
            "paths": cmd_paths, "explain": cmd_explain}


def _notes(args):
    """The command's notes (an ``inputs.Notes``), written to stderr when it ends."""
    if not hasattr(args, "_notes"):
        from altlink.inputs import Notes

        args._notes = Notes()
    return args._notes


def internal_error(e: BaseException) -> int:
    """Report an exception that escaped the package (a bug in altlink, never a finding) and
    give its exit status; the traceback only with ALTLINK_TRACEBACK=1."""
    if os.environ.get("ALTLINK_TRACEBACK") == "1":
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    sys.stderr.write(one_line(f"altlink: internal error (a bug in altlink, not a problem with "
                              f"the input): {type(e).__name__}: {e}") +
                     " (ALTLINK_TRACEBACK=1 shows the traceback)\n")
    return EXIT_INTERNAL


class Terminated(BaseException):
    """SIGTERM, or SIGHUP (the terminal went away), raised so that the cleanup of temporary
    outputs runs (the default ends the process on the spot, leaving them behind)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


# The signals that end a command through ``Terminated``: SIGHUP only where it is not ignored
# (``nohup`` ignores it, and a command run so must go on).
_ENDING = (signal.SIGTERM, signal.SIGHUP)


class _EarlyLink:
    """A link's linker started by ``main`` before the command line is parsed: the linker
    command and altlink's ``-o`` as read from the words, and its ``LinkStart``."""

    def __init__(self, command: list[str], output: str | None, start) -> None:
        self.command, self.output, self.start = command, output, start

    def close(self) -> None:
        self.start.close()


# The options of ``altlink link`` (its parser, ``build_parser``) that take a value, and those
# that do not; tests/test_cli.py checks both against the parser.
LINK_VALUE_OPTIONS = frozenset({
    "--manifest", "--manifest-suffix", "--bin", "--abi", "--cap-table", "--ncaps",
    "--symbols-from", "--format", "--cache-dir"})
LINK_FLAG_OPTIONS = frozenset({
    "--sort-table", "--source-lines", "--werror", "--no-cache", "-v", "--verbose", "--module"})
# ... and the attribute each sets (-o and -W besides), for ``_quick_link_args``; those given
# again to add one more (``LINK_APPEND_OPTIONS``). tests/test_link.py checks them too.
LINK_DESTS = {"-o": "output", "--manifest": "manifest", "--manifest-suffix": "manifest_suffix",
              "--bin": "bin", "--abi": "abi", "--cap-table": "cap_table", "--ncaps": "ncaps",
              "--symbols-from": "symbols_from", "--format": "format",
              "--cache-dir": "cache_dir", "-W": "wflags", "--sort-table": "sort_table",
              "--source-lines": "source_lines", "--werror": "werror", "--no-cache": "no_cache",
              "-v": "verbose", "--verbose": "verbose", "--module": "module"}
LINK_APPEND_OPTIONS = frozenset({"--symbols-from", "-W"})


def _link_words(words: list[str]) -> tuple[list[tuple[str, str | None, str]], list[str]] | None:
    """``altlink link OPTIONS -- LINKER...`` read without argparse, where the words before
    ``--`` are all options of the link's own, spelled in full: each option as ``(name, value,
    how)`` in order (``how``: "next" for a value in the next word, "=" for ``--name=value``,
    "attached" for ``-oVALUE`` or ``-WVALUE``, "" for a switch, whose value is None), and
    the linker command. None for any other words (an abbreviation, ``--help``, a bad option,
    no ``--``)."""
    try:
        cut = words.index("--")
    except ValueError:
        return None
    opts, command = words[:cut], words[cut + 1:]
    read: list[tuple[str, str | None, str]] = []
    i = 0
    while i < len(opts):
        a = opts[i]
        if a in ("-o", "-W") or a in LINK_VALUE_OPTIONS:
            if i + 1 == len(opts):
                return None
            read.append((a, opts[i + 1], "next"))
            i += 2
            continue
        if a.startswith("-o") and not a.startswith("-o="):
            read.append(("-o", a[2:], "attached"))
        elif a.startswith("--") and a.split("=", 1)[0] in LINK_VALUE_OPTIONS:
            name, _, value = a.partition("=")
            read.append((name, value, "="))
        elif a in LINK_FLAG_OPTIONS:
            read.append((a, None, ""))
        elif a.startswith("-W") and a != "-W":
            read.append(("-W", a[2:], "attached"))
        else:
            return None
        i += 1
    return read, command


def _early_link(words: list[str]) -> _EarlyLink | None:
    """``altlink link OPTIONS -- LINKER...``: the linker started before argparse is imported
    and the command line parsed (about 15 ms sooner), where the words before ``--`` are all
    options of the link's own, spelled in full (``_link_words``), so that ``-o`` is known for
    certain. Anything else (an abbreviation, ``--help``, a bad option, a command the launcher
    passes through, a command it cannot read) starts nothing here: the parser and
    ``cmd_link`` decide as usual, and report what is wrong."""
    got = _link_words(words)
    if got is None:
        return None
    # -o and the outputs' options, as the parser will read them (the last of each)
    given = {name: value for name, value, _ in got[0] if value is not None}
    command = got[1]
    from altlink import launcher

    output = given.get("-o")
    try:
        plan = launcher.plan(command, output, given.get("--manifest"), given.get(
            "--manifest-suffix", os.environ.get("ALTLINK_MANIFEST") or None),
            binary=given.get("--bin"))
    except AltlinkError:
        return None  # reported by cmd_link, which reads the command again
    if plan.passthrough:
        if ends_here() and plan.sources is None:  # the altlink command's process (``run``):
            # the linker takes its place (not where its image is checked after it)
            launcher.exec_unchanged(command)  # (back only where it cannot be run: reported
        return None                           # by cmd_link, as run_unchanged reports it)
    from altlink.linker import LinkStart  # (not for a command passed through: signals, files)

    try:
        start = LinkStart(command, plan.output, parsed=plan.command)
    except BaseException:  # an interrupt: a link that fails leaves none of its outputs
        from altlink import outputs

        outputs.remove_stale([p for p in (plan.output, plan.manifest, given.get("--bin"))
                              if p])
        raise
    return _EarlyLink(command, output, start)


# The options of ``altlink check`` (its parser, ``build_parser``), by the attribute each sets:
# those that take a value, those given again to add one more, and the switches.
# tests/test_cli.py checks them against the parser.
CHECK_VALUE_OPTIONS = {"--abi": "abi", "--cap-table": "cap_table", "--ncaps": "ncaps",
                       "--format": "format", "--cache-dir": "cache_dir"}
CHECK_APPEND_OPTIONS = {"--symbols-from": "symbols_from", "-W": "wflags", "-T": "scripts",
                        "--script": "scripts", "-L": "lib_dirs", "--defsym": "defsyms",
                        "--wrap": "wraps"}
CHECK_FLAG_OPTIONS = {"--werror": "werror", "--module": "module", "--no-cache": "no_cache",
                      "-v": "verbose", "--verbose": "verbose"}
CHECK_FORMATS = ("text", "json", "sarif")


def _quick_check_args(words: list[str]):
    """``build_parser("check").parse_args(words)`` without argparse (which, with its parser
    built, is about 7 ms of an ``altlink check`` of objects whose records are kept, 0.1 s),
    where ``words`` are ``check``, options of its own spelled in full each with its value
    as the next word (a value that argparse takes: an ``--abi`` or ``--format`` among its
    choices, an ``--ncaps`` that ``int`` reads, none starting with ``-``), then one file or
    more, none starting with ``-``. Anything else (``--help``, an abbreviation, ``--x=y``,
    an option after a file, ``--``, no file) gives None: the parser reads the words, and
    reports what is wrong. The defaults are the parser's, read from the environment as it
    reads them (``ALTLINK_WERROR`` first, which may be unusable)."""
    werror = _env_flag("ALTLINK_WERROR")
    values: dict = {"command": "check", "abi": os.environ.get("ALTLINK_ABI") or None,
                    "cap_table": os.environ.get("ALTLINK_CAP_TABLE") or None, "ncaps": None,
                    "symbols_from": None, "format": "text", "werror": werror, "wflags": [],
                    "module": False, "cache_dir": None, "no_cache": False, "verbose": False,
                    "scripts": None, "lib_dirs": None, "defsyms": None, "wraps": None}
    i, n = 1, len(words)
    while i < n and words[i].startswith("-"):
        a = words[i]
        flag = CHECK_FLAG_OPTIONS.get(a)
        if flag is not None:
            values[flag] = True
            i += 1
            continue
        if i + 1 == n or words[i + 1].startswith("-"):
            return None
        value: object = words[i + 1]
        if a in CHECK_APPEND_OPTIONS:
            dest = CHECK_APPEND_OPTIONS[a]
            values[dest] = [*(values[dest] or ()), value]
        elif a in CHECK_VALUE_OPTIONS:
            if a == "--abi" and value not in ABIS or a == "--format" and \
                    value not in CHECK_FORMATS:
                return None
            if a == "--ncaps":
                try:
                    value = int(words[i + 1])
                except ValueError:
                    return None
            values[CHECK_VALUE_OPTIONS[a]] = value
        else:
            return None
        i += 2
    files = words[i:]
    if not files or any(f.startswith("-") for f in files):
        return None
    values["files"] = files
    import types

    return types.SimpleNamespace(**values)


def _quick_link_args(words: list[str]):
    """``build_parser("link").parse_args(words)`` without argparse (which, with its parser
    built, is about 5 ms of a kernel module's link), where ``words`` are ``link``, options of
    its own spelled in full (``_link_words``), ``--`` and a linker command: a value in the
    next word that does not start with ``-``, ``--name=value``, ``-oVALUE`` or ``-WVALUE``
    without ``=``; an ``--abi`` or ``--format`` among its choices, an ``--ncaps`` that
    ``int`` reads. Anything else gives None: the parser reads the words, and reports what is
    wrong. The defaults are the parser's, read from the environment as it reads them
    (``ALTLINK_WERROR`` first, which may be unusable)."""
    got = _link_words(words[1:])
    if got is None or not got[1]:
        return None
    werror = _env_flag("ALTLINK_WERROR")
    values: dict = {"command": "link", "abi": os.environ.get("ALTLINK_ABI") or None,
                    "cap_table": os.environ.get("ALTLINK_CAP_TABLE") or None, "ncaps": None,
                    "symbols_from": None, "format": "text", "werror": werror, "wflags": [],
                    "output": None, "manifest": None,
                    "manifest_suffix": os.environ.get("ALTLINK_MANIFEST") or None,
                    "bin": None, "sort_table": False, "source_lines": False, "cache_dir": None,
                    "no_cache": False, "verbose": False, "module": False}
    for name, value, how in got[0]:
        dest = LINK_DESTS[name]
        if value is None:
            values[dest] = True
            continue
        if how == "next" and value.startswith("-") or how == "attached" and "=" in value:
            return None
        if name == "--abi" and value not in ABIS or name == "--format" and \
                value not in CHECK_FORMATS:
            return None
        if name == "--ncaps":
            try:
                values[dest] = int(value)
            except ValueError:
                return None
        elif name in LINK_APPEND_OPTIONS:
            values[dest] = [*(values[dest] or ()), value]
        else:
            values[dest] = value
    values["linker"] = ["--", *got[1]]
    import types

    return types.SimpleNamespace(**values)


class _Output:
    """The standard output as a command writes to it (``out``): a write that fails, or the
    flush at the end (a full disk, a file size limit, a quota), is an AltlinkError (exit 2)
    that says so, as cat(1) reports a write error; not altlink's own failure, and never
    lost in a flush whose error nobody sees. A reader that went away (a closed pipe) still
    ends the command quietly (``main``)."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _output_error(e) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _output_error(e) from None


def _stdout_gone() -> bool:
    """Whether the standard output is a pipe or socket whose reader went away (poll says so
    of its writing end): a BrokenPipeError from writing it ends the command quietly, as a
    filter's does; one from any other pipe (a forked copy's, say) is a failure."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.__stdout__.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # (no standard output, or no poll)
        return False


def _output_error(e: OSError) -> AltlinkError:
    return AltlinkError(f"altlink: cannot write the standard output: {e.strerror or e}")


def main(argv: list[str] | None = None, out=None) -> int:
    out = _Output(out or sys.stdout)
    previous: dict[int, object] = {}
    try:  # (signal.signal's rule: the main thread only; threading is not imported for it)
        for s in _ENDING:
            if s == signal.SIGTERM or signal.getsignal(s) == signal.SIG_DFL:
                previous[s] = signal.signal(s, _terminate)
        main_thread = True
    except ValueError:
        main_thread = False
    early = None
    try:
        words = sys.argv[1:] if argv is None else argv
        if words[:1] == ["link"]:
            early = _early_link(words[1:])
        args = _quick_check_args(words) if words[:1] == ["check"] else \
            _quick_link_args(words) if words[:1] == ["link"] else None
        if args is None:
            parser = build_parser(words[0] if words and words[0] in _EPILOGS else None)
            if not words:  # bare altlink: the commands, as git
                parser.print_help(sys.stderr)
                return EXIT_INPUT
            try:
                args = parser.parse_args(argv)
            except SystemExit as e:  # --help, --version, a usage error: argparse said it
                sys.stdout.flush()  # (here, where a reader that went away is seen: below)
                return e.code if isinstance(e.code, int) else \
                    EXIT_OK if e.code is None else EXIT_INPUT
        if early is not None:
            args.early_link, early = early, None  # cmd_link's now, which closes it
        _env_paths(args)
        if getattr(args, "format", "text") == "text" and main_thread:
            progress.enable(sys.stderr)  # a terminal only
        with collector_paused():
            rc = COMMANDS[args.command](args, out)
        out.flush()
        if hasattr(args, "_notes"):
            sys.stderr.write(args._notes.text())
        return rc
    except AltlinkError as e:
        progress.erase()
        try:
            sys.stderr.write(f"{one_line(str(e))}\n")
        except OSError:  # (a standard error that cannot be written: the status says it)
            pass
        return e.exit_code
    except BrokenPipeError as e:
        if _stdout_gone():  # the reader of the output went away (``| head``): quietly
            return EXIT_OK
        return internal_error(e)  # (a pipe of altlink's own: a failure, never a success)
    except KeyboardInterrupt:
        sys.stderr.write("altlink: interrupted\n")
        return 130
    except Terminated as e:
        sys.stderr.write("altlink: terminated\n" if e.signum == signal.SIGTERM else
                         "altlink: hangup\n")
        return 128 + e.signum
    except Exception as e:  # noqa: BLE001 - altlink's own failure, not the user's input
        return internal_error(e)
    finally:
        if early is not None:  # a usage error or an interrupt before cmd_link had it
            early.close()
        linker = sys.modules.get("altlink.linker")
        if linker is not None:  # a link's start that an interrupt cut off from its caller
            linker.close_unclosed()
        progress.disable()
        for s, h in previous.items():
            if h is not None:  # (None: a handler set outside Python, which stays replaced)
                signal.signal(s, h)


def run(words: list[str] | None = None) -> None:
    """The ``altlink`` command: ``main``, then the process ends at once, its streams flushed
    (``os._exit``): freeing what a link leaves in memory, one object at a time, is work for
    nobody (40 ms after a kernel's link; ``main`` itself has removed its temporary files).
    Callers in the same process (SCons, the tests) use ``main``, which returns."""
    process_ends()
    rc = main(words)  # (``words``: altlink under a tool's name, ``masquerade.run``)
    forked = sys.modules.get("altlink.forkmap")
    if forked is not None:  # its copies still ending, waited for: their time is the command's
        forked.wait_ending()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, a closed stream: nothing more to say
            pass
    os._exit(rc)

