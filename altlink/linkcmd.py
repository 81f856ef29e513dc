"""Reading a linker command line: its output, its inputs (objects, archives, ``-l`` libraries,
``@response`` files), for ``aarch64-linux-gnu-ld``, ``ld.lld``, and the gcc/clang drivers."""
from __future__ import annotations

import os
import stat

from altlink import ldscript
from altlink.errors import AltlinkError
from altlink.filekind import (
    AR_MAGIC,
    AR_THIN_MAGIC,
    BITCODE_MAGICS,
    COMPILED_SUFFIXES,
    ELF_MAGIC,
    SOURCE_SUFFIXES,
    open_input,
    read_head,
)

# Options whose value is the next argument (linker and compiler-driver spellings).
_TAKES_ARG = {
    "-o", "-T", "-L", "-l", "-e", "-m", "-u", "-z", "-y", "-Y", "-h", "-R", "-F", "-f", "-G",
    "-A", "-a", "-b", "-c", "-P", "--script", "-script", "-dT", "--dT", "--default-script",
    "-default-script", "--entry", "--undefined", "--output",
    "--library", "--library-path", "--soname", "-soname", "--version-script", "--dynamic-linker",
    "-dynamic-linker", "-rpath", "-rpath-link", "--rpath", "--sysroot", "--section-start",
    "-Ttext", "-Tdata", "-Tbss", "-Ttext-segment", "--defsym", "--wrap", "--trace-symbol",
    "--format", "--oformat", "--architecture", "--emulation", "--image-base", "--just-symbols",
    "-just-symbols",
    "--retain-symbols-file", "--plugin", "--plugin-opt", "--dependency-file", "--exclude-libs",
    "--filter", "--auxiliary", "--hash-style", "--build-id", "--sort-section",
    "-Map", "--Map", "--target", "-target", "-x", "-Xlinker", "-Xassembler", "-Xpreprocessor",
    "-include", "-isystem", "-I", "-MF", "-MT", "-MQ", "-B", "-specs", "--specs", "-arch",
    "-idirafter", "-iprefix", "-imacros", "-iquote", "-isysroot", "-plugin", "-plugin-opt",
}
_OUTPUT_SPELLINGS = ("-o", "--output")
# The options naming a linker script, with the script as the next word or after "=" (GNU ld
# takes a long option with one dash or two): -T's, and the default script's (-dT,
# --default-script), which ld reads as it reads -T's, looked for in the -L directories too
# (Trusted Firmware-A's LTO build links with ``gcc -Wl,-dT SCRIPT``).
_SCRIPT_SPELLINGS = ("-T", "--script", "-script", "-dT", "--dT", "--default-script",
                     "-default-script")
_SCRIPT_EQ = ("--script=", "-script=", "-dT=", "--dT=", "--default-script=",
              "-default-script=")
# The options naming a file the linker reads for its symbols only.
_JUST_SYMBOLS = ("-R", "--just-symbols", "-just-symbols")
_JUST_SYMBOLS_EQ = ("--just-symbols=", "-just-symbols=")


class LinkCommand:
    """A linker command as read: ``argv`` with response files expanded; ``output_index``, the
    index in argv of the output path's argument (None: no -o); ``output``; ``inputs``, the
    objects and archives in link order; the ``-L`` directories; the ``-T`` scripts. (Not a
    dataclass: it is read before the linker starts, and dataclasses' import is 8 ms.)

    ``parse`` leaves the inputs to be told from the other files the command names (each one
    opened for its first bytes, and the linker scripts read for their INPUT and GROUP) until
    they are first asked for: a link's linker starts after ``any_input`` has found its first
    AArch64 input, not after 2,000 files were opened. ``archives``: the inputs that are
    archives, told by the same bytes."""

    __slots__ = ("argv", "output_index", "output", "_inputs", "lib_dirs", "scripts",
                 "_pending", "_archives", "_scripts_read", "_unread", "_defined", "_just_symbols",
                 "_sources", "_data")

    def __init__(self, argv: list[str], output_index: int | None, output: str | None,
                 inputs: list[str] | None = None, lib_dirs: list[str] | None = None,
                 scripts: list[str] | None = None) -> None:
        self.argv = argv
        self.output_index = output_index
        self.output = output
        self._inputs = [] if inputs is None else inputs
        self._archives: set[str] | None = None
        self.lib_dirs = [] if lib_dirs is None else lib_dirs
        self.scripts = [] if scripts is None else scripts
        self._pending: tuple[list[str], bool] | None = None  # (the words, -static) to read
        # the linker scripts read: -T's, files on the command line read as scripts, and those
        # they INCLUDE (ldscript.Found.scripts)
        self._scripts_read: list[str] = []
        # the files the linker reads that altlink cannot without taking them from it (a pipe,
        # a FIFO: ``-T <(cpp fw.ld.S)``), each read by the linker as a script if not an object
        self._unread: list[str] = []
        self._defined: dict[str, str] | None = None
        self._just_symbols: list[str] = []  # -R FILE, --just-symbols FILE: as given
        self._sources: list[str] = []  # what a compiler driver compiles before it links
        # the bytes of the inputs read whole where they were told apart (``data``)
        self._data: dict[str, bytes] = {}

    @property
    def inputs(self) -> list[str]:
        if self._pending is not None:
            (words, static_only), self._pending = self._pending, None
            _read_inputs(self, words, static_only)
        return self._inputs

    @inputs.setter
    def inputs(self, value: list[str]) -> None:
        self._inputs, self._pending, self._archives = value, None, None
        self._data = {}

    @property
    def data(self) -> dict[str, bytes]:
        """The bytes of the inputs that were read whole where they were told apart from the
        command's other files (regular files of fewer than ``READ_WHOLE_BELOW`` bytes: a
        link's objects), by path: read once, not again by ``inputs.load_elfs``."""
        _ = self.inputs
        return self._data

    @property
    def archives(self) -> set[str]:
        """The inputs that are archives."""
        inputs = self.inputs
        if self._archives is None:
            self._archives = {p for p in inputs if _input_kind(p) == "archive"}
        return self._archives

    def any_input(self, pred) -> bool:
        """Whether ``pred`` holds for one of the inputs: the command line's in order, first,
        reading no further than the first it holds for; those its linker scripts add only
        where none does."""
        if self._pending is not None:
            for path in self._pending[0]:
                if _input_kind(path) is not None and pred(path):
                    return True
        return any(pred(p) for p in self.inputs)

    def defined_by_link(self) -> dict[str, str]:
        """The symbols the link itself defines, each with what defines it: ``--defsym NAME=``
        (``"--defsym"``), or an assignment in a linker script (its path: ``-T`` scripts, the
        scripts the command names as inputs, those they ``INCLUDE``). Linux's vmlinux.lds
        defines this way the KVM hypervisor's names of kernel functions
        (``__kvm_nvhe_kvm_update_va_mask = kvm_update_va_mask;``), which its alternatives
        name as callbacks. Read when first asked: a link whose callbacks are all defined by
        its objects never asks."""
        if self._defined is None:
            _ = self.inputs  # (the command's files told apart: its scripts read)
            out: dict[str, str] = {}
            for name in _defsyms(self.argv[1:]):
                out.setdefault(name, "--defsym")
            for path in self._scripts_read:
                ldscript.assigned(path, out)
            self._defined = out if not self._unread else _NamesOrUnread(out, self._unread[0])
        return self._defined

    @property
    def sources(self) -> list[str]:
        """The source files a compiler driver's command compiles itself before it links them
        (``gcc main.c start.o -o fw.elf``): no object of theirs is there to read."""
        _ = self.inputs  # (the command's files told apart)
        return self._sources

    def just_symbols(self) -> list[str]:
        """The files whose symbols the link reads without linking them in (``-R FILE``,
        ``--just-symbols FILE``; ``-R`` of a directory is an rpath, as ld takes it)."""
        return [f for f in self._just_symbols if _input_kind(f) == "object" and _is_elf(f)]

    def __repr__(self) -> str:
        return (f"LinkCommand(argv={self.argv!r}, output_index={self.output_index!r}, "
                f"output={self.output!r}, inputs={self.inputs!r}, "
                f"lib_dirs={self.lib_dirs!r}, scripts={self.scripts!r})")

    def words_but_output(self) -> list[str]:
        """The command's arguments (response files expanded) without the linker itself and the
        output's own words (``-o PATH``, ``-oPATH``, ``--output=PATH``)."""
        argv, at = self.argv, self.output_index
        if at is None:
            return argv[1:]
        return argv[1:at] + argv[at + (2 if argv[at] in _OUTPUT_SPELLINGS else 1):]

    def with_output(self, path: str) -> list[str]:
        """The command with its output redirected to ``path`` (an ``-o`` added where the
        command had none: ld, lld and the compiler drivers all take one)."""
        argv = list(self.argv)
        if self.output_index is None:
            return [*argv, "-o", path]
        arg = argv[self.output_index]
        if arg in _OUTPUT_SPELLINGS:
            argv[self.output_index + 1] = path
        elif arg.startswith("--output="):
            argv[self.output_index] = "--output=" + path
        else:  # -oPATH
            argv[self.output_index] = "-o" + path
        return argv


# Response files read for one command, at most (libiberty's expandargv allows as many): the
# depth limit alone lets a file that names itself four times expand 4^16 times.
MAX_RESPONSE_FILES = 2000


def expand_response_files(argv: list[str], depth: int = 0,
                          budget: list[int] | None = None) -> list[str]:
    """``@file`` arguments replaced by the file's words (POSIX shell quoting, nested)."""
    budget = [MAX_RESPONSE_FILES] if budget is None else budget
    out: list[str] = []
    for a in argv:
        if a.startswith("@") and len(a) > 1 and depth < 16:
            path = a[1:]
            budget[0] -= 1
            if budget[0] < 0:
                raise AltlinkError(f"{path}: more than {MAX_RESPONSE_FILES} response files "
                                   "(one that names itself?)")
            try:
                import shlex

                with open(path, encoding="utf-8") as f:
                    words = shlex.split(f.read(), comments=False, posix=True)
            except OSError as e:
                raise AltlinkError(f"{path}: cannot read response file: {e.strerror}") from None
            except ValueError as e:
                raise AltlinkError(f"{path}: bad quoting in response file: {e}") from None
            out.extend(expand_response_files(words, depth + 1, budget))
        else:
            out.append(a)
    return out


def _input_kind(path: str) -> str | None:
    """"archive" or "object" (ELF, LLVM bitcode) by the file's first bytes; None for another
    file (a linker script, say) or one that cannot be read."""
    return _kind_of(read_head(path, 8))


def _kind_of(head: bytes | None) -> str | None:
    """``_input_kind`` of a file whose first bytes (8 or more) are ``head``."""
    if head is None:
        return None
    if head[:8] in (AR_MAGIC, AR_THIN_MAGIC):
        return "archive"
    return "object" if head[:4] == ELF_MAGIC or head[:4] in BITCODE_MAGICS else None


# The inputs of fewer bytes than this are read whole when told apart (``LinkCommand.data``),
# as ``elf.map_file`` would read them.
READ_WHOLE_BELOW = 1 << 18


def _read_kind(path: str) -> tuple[str | None, bytes | None]:
    """``_input_kind(path)``, and the file's bytes where it is a file of at least 8 and fewer
    than ``READ_WHOLE_BELOW`` bytes, read whole with the one open (else None): a
    link's objects are each opened once, for what they are and what they hold."""
    opened = open_input(path)  # (a pipe is not read: the linker reads it)
    if opened is None:
        return None, None
    fd, size = opened
    try:
        if not 8 <= size < READ_WHOLE_BELOW:
            return _kind_of(os.read(fd, 8)), None
        data = os.read(fd, size)
        while len(data) < size and (more := os.read(fd, size - len(data))):
            data += more
    except OSError:
        return None, None
    finally:
        os.close(fd)
    return _kind_of(data[:8]), data if len(data) == size else None


def parse(command: list[str]) -> LinkCommand:
    if not command:
        raise AltlinkError("altlink link: no linker command after --")
    argv = [command[0], *expand_response_files(command[1:])]
    out_index = None
    output = None
    inputs: list[str] = []
    lib_dirs: list[str] = []
    libs: list[tuple[int, str]] = []  # position in inputs, name
    scripts: list[str] = []
    symbols_only: list[str] = []  # -R, --just-symbols
    static_only = False
    i = 1
    n = len(argv)
    while i < n:
        a = argv[i]
        if a[:1] != "-":  # an input: no option to match (most words of a large link)
            inputs.append(a)
            i += 1
            continue
        nxt = argv[i + 1] if i + 1 < n else None
        if a in _OUTPUT_SPELLINGS:
            if nxt is None:
                raise AltlinkError(f"altlink link: {a} without a file in the linker command")
            out_index, output = i, nxt
            i += 2
            continue
        if a.startswith("--output="):
            out_index, output = i, a[len("--output="):]
        elif a.startswith("-o") and len(a) > 2 and not a.startswith("--"):
            out_index, output = i, a[2:]
        elif a.startswith("-Wl,"):
            _linker_words(a[4:].split(","), inputs, lib_dirs, libs, scripts, symbols_only)
        elif a == "-Xlinker" and nxt is not None:
            # an option and its value in two -Xlinker (-Xlinker -T -Xlinker fw.ld): both
            if nxt in _TAKES_ARG and i + 3 < len(argv) and argv[i + 2] == "-Xlinker":
                _linker_words([nxt, argv[i + 3]], inputs, lib_dirs, libs, scripts, symbols_only)
                i += 4
                continue
            _linker_words([nxt], inputs, lib_dirs, libs, scripts, symbols_only)
            i += 2
            continue
        elif a in _JUST_SYMBOLS and nxt is not None:
            symbols_only.append(nxt)
        elif a.startswith(_JUST_SYMBOLS_EQ):
            symbols_only.append(a.split("=", 1)[1])
        elif a in ("-L", "--library-path") and nxt is not None:
            lib_dirs.append(nxt)
        elif a.startswith("-L") and len(a) > 2:
            lib_dirs.append(a[2:])
        elif a.startswith("--library-path="):
            lib_dirs.append(a.split("=", 1)[1])
        elif a in ("-l", "--library") and nxt is not None:
            libs.append((len(inputs), nxt))
            inputs.append("")
        elif a.startswith("-l") and len(a) > 2:
            libs.append((len(inputs), a[2:]))
            inputs.append("")
        elif a.startswith("--library="):
            libs.append((len(inputs), a.split("=", 1)[1]))
            inputs.append("")
        elif a in _SCRIPT_SPELLINGS and nxt is not None:
            scripts.append(nxt)
        elif a.startswith("-T") and len(a) > 2 and not a.startswith("-Ttext") and \
                not a.startswith("-Tdata") and not a.startswith("-Tbss"):
            scripts.append(a[2:])
        elif a.startswith(_SCRIPT_EQ):
            scripts.append(a.split("=", 1)[1])
        elif a in ("-static", "-Bstatic", "--static"):
            static_only = True
        if a in _TAKES_ARG and a not in _OUTPUT_SPELLINGS:
            i += 2
            continue
        i += 1
    cmd = LinkCommand(argv, out_index, output, [], lib_dirs, scripts)
    cmd._just_symbols = symbols_only
    resolved = {pos: find_lib(name, lib_dirs, static_only) for pos, name in libs}
    words = [p for p in (resolved.get(pos, path) for pos, path in enumerate(inputs)) if p]
    cmd._pending = (words, static_only)  # read when the inputs are first asked for
    return cmd


def _read_inputs(cmd: LinkCommand, words: list[str], static_only: bool) -> None:
    """The command's inputs from the files it names (``words``, libraries resolved): the
    objects and archives, in order, then those its linker scripts add (a file the linker
    does not recognise is read as a script, as ld does)."""
    implicit: list[str] = []
    cmd._archives = set()
    for path in words:
        kind, data = _read_kind(path)
        if kind is not None:
            cmd._inputs.append(path)
            if kind == "archive":
                cmd._archives.add(path)
            elif data is not None:
                cmd._data[path] = data
        elif path.endswith(_COMPILED_SUFFIXES) and os.path.isfile(path):
            cmd._sources.append(path)
        elif _may_be_script(path):
            implicit.append(path)  # ld reads a file it does not recognise as a script
        elif _is_pipe(path):
            cmd._unread.append(path)
    _script_inputs(cmd, cmd.scripts + implicit, static_only)


_SOURCE_SUFFIXES, _COMPILED_SUFFIXES = SOURCE_SUFFIXES, COMPILED_SUFFIXES


def _may_be_script(path: str) -> bool:
    return os.path.isfile(path) and not path.endswith(_SOURCE_SUFFIXES)


def _is_pipe(path: str) -> bool:
    """Whether ``path`` is a pipe or a FIFO: a file the linker reads that altlink cannot read
    without taking its bytes from the linker."""
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


class _NamesOrUnread(dict):
    """``LinkCommand.defined_by_link``'s names where the linker reads a script that altlink
    could not (``unread``, a pipe): any other name may be that script's, and is said to be,
    so that a callback it defines is checked in the linked image (``LinkDefined``) rather
    than refused before the link (ALT006). A name it does not define fails in the linker."""

    def __init__(self, names: dict[str, str], unread: str) -> None:
        super().__init__(names)
        self.unread = f"{unread}, a pipe altlink does not read"

    def get(self, name, default=None):
        return super().get(name, self.unread)


def _script_inputs(cmd: LinkCommand, scripts: list[str], static_only: bool) -> None:
    """Add the objects and archives that the linker scripts name (INPUT, GROUP), after the
    command line's own, each once."""
    found = ldscript.Found()
    for s in scripts:
        path = ldscript.resolve(s, cmd.lib_dirs)  # -T: also in the -L directories
        if path is not None:
            ldscript.scan(path, cmd.lib_dirs, lambda n: find_lib(n, cmd.lib_dirs, static_only),
                          found)
        elif _is_pipe(s):
            cmd._unread.append(s)
    cmd._scripts_read = found.scripts
    if not found.inputs:  # (most scripts: no realpath of every input)
        return
    seen = {os.path.realpath(p) for p in cmd._inputs}
    for p in found.inputs:
        kind = _input_kind(p)
        if kind is not None and os.path.realpath(p) not in seen:
            seen.add(os.path.realpath(p))
            cmd._inputs.append(p)
            if kind == "archive":
                cmd._archives.add(p)


def _linker_option_words(args: list[str]) -> list[str]:
    """The words of a linker or compiler-driver command as the linker gets them: ``-Wl,``
    lists split, the word after each ``-Xlinker``."""
    words: list[str] = []
    for i, a in enumerate(args):
        if a.startswith("-Wl,"):
            words += a[4:].split(",")
        elif a == "-Xlinker" and i + 1 < len(args):
            words.append(args[i + 1])
        elif i == 0 or args[i - 1] != "-Xlinker":
            words.append(a)
    return words


def option_values(args: list[str], spellings: tuple[str, ...]) -> list[str]:
    """The values of a linker option spelled any of ``spellings`` (``--opt VALUE`` or
    ``--opt=VALUE``; a one-letter option ``-X VALUE``)."""
    words = _linker_option_words(args)
    out = []
    for i, w in enumerate(words):
        if w in spellings and i + 1 < len(words):
            out.append(words[i + 1])
        elif w.startswith("--") or w.startswith("-") and len(w) > 3 and "=" in w:
            opt, eq, value = w.partition("=")
            if eq and opt in spellings:
                out.append(value)
    return out


def gcc_lto_plugin(argv: list[str]) -> bool:
    """Whether the link runs GCC's link-time optimization, which takes the IR of every object
    that carries it, ``-ffat-lto-objects`` ones too, and links the code it makes from that IR,
    not the code beside it: the gcc driver does on every link of such objects (``-flto`` at
    the link or not, through its linker plugin or without it: gcc 12 as measured), unless
    the link ends its options with ``-fno-lto`` or links with ld.lld (``-fuse-ld=lld``, which
    reads no GCC IR); ld and gold do where the command loads the plugin (``-plugin
    .../liblto_plugin.so``). ``argv``: the whole command, the linker or driver first."""
    joined = "\0".join(argv)
    if "plugin" in joined and any("lto_plugin" in v or "lto-plugin" in v for v in
                                  option_values(argv[1:], ("-plugin", "--plugin"))):
        return True
    if not _is_gcc_driver(argv[0]):
        return False
    lto, lld = True, False
    for a in argv[1:]:
        if a == "-fno-lto" or a.startswith("-flto"):
            lto = a != "-fno-lto"
        elif a.startswith("-fuse-ld="):
            linker = a[len("-fuse-ld="):]
            lld = linker == "lld" or linker.endswith(("/ld.lld", "/lld"))
    return lto and not lld


def _is_gcc_driver(program: str) -> bool:
    """``gcc``, ``g++``, ``cc``, ``c++``, with a target prefix and a version suffix or not
    (``aarch64-linux-gnu-gcc-12``); not clang."""
    name = os.path.basename(program)
    while True:  # (a version suffix: -12, -12.2)
        head, sep, tail = name.rpartition("-")
        if sep and tail.replace(".", "").isdigit():
            name = head
        else:
            break
    return name.rpartition("-")[2] in ("gcc", "g++", "cc", "c++")


def wrapped_names(argv: list[str]) -> frozenset[str]:
    """The symbols a linker command wraps (``--wrap=NAME``, ``--wrap NAME``, ``-wrap``, inside
    ``-Wl,`` and after ``-Xlinker``): the linker resolves a reference to NAME (GNU ld and gold:
    an undefined one; ld.lld: any through the symbol) to ``__wrap_NAME``, and one to
    ``__real_NAME`` to NAME. ``argv``: the whole command, the linker first."""
    if "wrap" not in "\0".join(argv):  # (most links: at C speed)
        return frozenset()
    return frozenset(option_values(argv[1:], ("--wrap", "-wrap")))


def linked_name(name: str, wrapped: frozenset[str]) -> str:
    """The symbol a reference to ``name`` left undefined by its object resolves to in a link
    that wraps ``wrapped`` (``wrapped_names``)."""
    if name in wrapped:
        return "__wrap_" + name
    if name.startswith("__real_") and name[7:] in wrapped:
        return name[7:]
    return name


def _defsyms(args: list[str]) -> list[str]:
    """The names of the ``--defsym NAME=EXPR`` options of a linker or compiler-driver command
    (``--defsym=``, ``-defsym``, inside ``-Wl,`` and after ``-Xlinker``)."""
    return [v.split("=", 1)[0].strip() for v in option_values(args, ("--defsym", "-defsym"))
            if "=" in v]


def defined_by(scripts: list[str], lib_dirs: list[str], defsyms: list[str]) -> dict[str, str]:
    """The names a link with these linker scripts (``-T``; and those they ``INCLUDE``, looked
    for as ld does, in the ``-L`` directories too) and ``--defsym NAME=EXPR`` options would
    define, each with what defines it, as ``LinkCommand.defined_by_link`` reads a link's:
    for ``altlink check -T``. A script that is not there is an error."""
    out: dict[str, str] = {}
    for d in defsyms:
        name, eq, _ = d.partition("=")
        if not eq or not name.strip():
            raise AltlinkError(f"altlink check: --defsym {d}: not NAME=EXPRESSION")
        out.setdefault(name.strip(), "--defsym")
    found = ldscript.Found()
    try:
        for s in scripts:
            # (a pipe is read here: nothing else will read it)
            path = ldscript.resolve(s, lib_dirs) or (s if _is_pipe(s) else None)
            if path is None:
                raise AltlinkError(f"altlink check: -T {s}: no such linker script (nor in the "
                                   "-L directories)")
            ldscript.scan(path, lib_dirs, lambda n: None, found)
        for path in found.scripts:
            ldscript.assigned(path, out)
    finally:
        ldscript.forget_pipes()  # (another call's /dev/fd/N is another pipe)
    return out


def _is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == ELF_MAGIC


def _linker_words(words, inputs, lib_dirs, libs, scripts, symbols_only) -> None:
    # The linker's own response files (-Wl,@FILE, -Xlinker @FILE; EDK2 gives every library
    # of a link so): ld reads their words as its arguments.
    if any(w[:1] == "@" for w in words):
        words = expand_response_files(words)
    j = 0
    while j < len(words):
        w = words[j]
        nxt = words[j + 1] if j + 1 < len(words) else None
        if w in _OUTPUT_SPELLINGS or w.startswith("--output="):
            raise AltlinkError(f"altlink link: the output is given to the linker through the "
                               f"driver ({w}); give it as the driver's own -o OUTPUT, which "
                               "altlink redirects to a temporary file")
        if w in _SCRIPT_SPELLINGS and nxt is not None:
            scripts.append(nxt)
            j += 2
            continue
        if w in _JUST_SYMBOLS and nxt is not None:
            symbols_only.append(nxt)
            j += 2
            continue
        if w.startswith(_JUST_SYMBOLS_EQ):
            symbols_only.append(w.split("=", 1)[1])
        if w.startswith("-T") and len(w) > 2 and not w.startswith(("-Ttext", "-Tdata", "-Tbss")):
            scripts.append(w[2:])
        elif w.startswith(_SCRIPT_EQ):
            scripts.append(w.split("=", 1)[1])
        elif w.startswith("-L") and len(w) > 2:
            lib_dirs.append(w[2:])
        elif w.startswith("--library-path="):
            lib_dirs.append(w.split("=", 1)[1])
        elif w in ("-L", "--library-path") and nxt is not None:
            lib_dirs.append(nxt)
        elif w.startswith("-l") and len(w) > 2:
            libs.append((len(inputs), w[2:]))
            inputs.append("")
        elif w.startswith("--library="):
            libs.append((len(inputs), w.split("=", 1)[1]))
            inputs.append("")
        elif w in ("-l", "--library") and nxt is not None:
            libs.append((len(inputs), nxt))
            inputs.append("")
        if w in _TAKES_ARG:
            j += 2
            continue
        if not w.startswith("-"):
            inputs.append(w)
        j += 1


def find_lib(name: str, dirs: list[str], static_only: bool) -> str | None:
    """The archive or shared library a ``-lNAME`` resolves to among the ``-L`` directories
    (libraries outside them, the system's, are not part of the checked link set)."""
    if name.startswith(":"):
        cands = [name[1:]]
    else:
        cands = [f"lib{name}.a"] if static_only else [f"lib{name}.so", f"lib{name}.a"]
    for d in dirs:
        for c in cands:
            p = os.path.join(d, c)
            if os.path.isfile(p):
                # An archive's members may be linked in; a shared library only defines
                # symbols; a linker script named .so (libc.so) is read for what it names.
                return p
    return None


# Words in an option that may make the linker (or the compiler driver in front of it) write a
# file besides its output, keep one, or run something: a map, a dependency file, an import
# library, a reproduction archive, statistics, LTO's saved temporaries or cache, a trace, a
# separate debug file (mold), lld's error-handling script. Too wide on purpose: a word
# matched only costs the overlap below.
_SIDE_OUTPUT_WORDS = ("map", "depend", "implib", "reproduce", "why-extract", "stats",
                      "save-temps", "lto", "plugin", "dump", "trace", "cache", "print",
                      "incremental", "time-", "debug-file", "error-handling")


def writes_only_output(argv: list[str]) -> bool:
    """Whether the linker command writes nothing but its output (``-o``) and the side files
    altlink redirects (``side_file_redirected``), as far as its options tell: then the linker
    may start before the inputs are checked, since a refused link only has to remove those
    (temporary) files. Every option is looked at, ``-Wl,`` lists split."""
    if names_side_files(argv) and not all(map(side_file_redirected,
                                              option_values(argv[1:], SIDE_FILE_OPTIONS))):
        return False
    for a in argv[1:]:
        pieces = a[4:].split(",") if a.startswith("-Wl,") else [a]
        for p in pieces:
            if p.startswith("-") and p != "-" and any(w in p.lower()
                                                      for w in _SIDE_OUTPUT_WORDS) \
                    and not (p in SIDE_FILE_OPTIONS or p.startswith(_SIDE_FILE_EQ)):
                return False
    return True


# The options naming a file the linker writes besides the image that names the image: a map
# (GNU ld, lld: "-Map FILE", "-Map=FILE") and a dependency file (ld 2.35 and later, lld).
SIDE_FILE_OPTIONS = ("-Map", "--Map", "--dependency-file")
_SIDE_FILE_EQ = tuple(o + "=" for o in SIDE_FILE_OPTIONS)


def names_side_files(argv: list[str]) -> bool:
    """Whether any word of the command may name a side file (``SIDE_FILE_OPTIONS``, in any
    spelling): one search of the joined words, so that a link without one (most: Kbuild's)
    walks no option list for them."""
    joined = "\0".join(argv)
    return "-Map" in joined or "--dependency-file" in joined


def side_file_redirected(value: str) -> bool:
    """Whether altlink has the linker write a side file (``SIDE_FILE_OPTIONS``) given so into
    a temporary file, moved into place once the linker is done: a file name, not ``-`` (GNU
    ld's map on the standard output), a directory or a name with ``%`` (which GNU ld names
    after the output: those are put right after the link, ``linker.name_output_in_side_files``)."""
    return value != "-" and "%" not in value and not os.path.isdir(value)


def _retarget(words: list[str], i: int, sub) -> int:
    """``words[i]`` given its new value where it is a side-file option (the next word, or
    ``=VALUE``); the index after what it took."""
    w = words[i]
    if w in SIDE_FILE_OPTIONS and i + 1 < len(words):
        words[i + 1] = sub(words[i + 1])
        return i + 2
    if w.startswith(_SIDE_FILE_EQ):
        opt, _, value = w.partition("=")
        words[i] = f"{opt}={sub(value)}"
    return i + 1


def retarget_side_files(argv: list[str], redirect) -> list[str]:
    """``argv`` with the value of each side-file option (``SIDE_FILE_OPTIONS``: the value as
    the next word, ``=VALUE``, inside ``-Wl,`` lists, across two ``-Xlinker``) replaced by
    ``redirect(value)``, where that is not None."""
    if not names_side_files(argv):
        return argv

    def sub(value: str) -> str:
        got = redirect(value)
        return value if got is None else got

    out = list(argv)
    i = 1
    while i < len(out):
        a = out[i]
        if a.startswith("-Wl,"):
            pieces = a[4:].split(",")
            j = 0
            while j < len(pieces):
                j = _retarget(pieces, j, sub)
            out[i] = "-Wl," + ",".join(pieces)
            i += 1
        elif a == "-Xlinker" and i + 1 < len(out):
            if out[i + 1] in SIDE_FILE_OPTIONS and i + 3 < len(out) and out[i + 2] == "-Xlinker":
                out[i + 3] = sub(out[i + 3])
                i += 4
            else:
                one = [out[i + 1]]  # (-Xlinker -Map=FILE)
                _retarget(one, 0, sub)
                out[i + 1] = one[0]
                i += 2
        else:
            i = _retarget(out, i, sub)
    return out
