"""What a file is, from its first bytes: the magic numbers of the inputs a link takes (ELF, LLVM
bitcode, ``ar`` archives) and the ELF machine altlink checks; and from its name, a source a
compiler driver compiles. Constants and one small reader (``read_head``): the launcher decides
from them, before the linker starts, whether a command is altlink's to check."""
from __future__ import annotations

ELF_MAGIC = b"\x7fELF"
# LLVM bitcode, bare or in its wrapper: what -flto objects hold until the link.
BITCODE_MAGICS = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")
AR_MAGIC = b"!<arch>\n"
AR_THIN_MAGIC = b"!<thin>\n"
EM_AARCH64 = 183

# What a compiler driver compiles rather than passes to the linker as a script.
SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".c++", ".C", ".s", ".S", ".sx", ".i", ".ii",
                   ".h", ".hpp", ".m", ".mm", ".f", ".F", ".f90", ".go", ".rs", ".d")
# ... of those, what it compiles to code (not headers, not dependency files)
COMPILED_SUFFIXES = tuple(s for s in SOURCE_SUFFIXES if s not in (".h", ".hpp", ".d"))


def open_input(path: str) -> tuple[int, int] | None:
    """A descriptor of ``path`` open for reading, and the file's size, where it is a regular
    file; else None (it cannot be opened, or it is a pipe, a device, a directory). A pipe
    (``<(...)``, a FIFO) is not even opened: its bytes read here would be taken from the
    linker, which reads the same file after altlink, and a FIFO's writer would find its
    reader gone."""
    import os
    import stat

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        return os.open(path, os.O_RDONLY), st.st_size
    except OSError:
        return None


def read_head(path: str, size: int) -> bytes | None:
    """The first ``size`` bytes of a regular file (fewer where it is shorter), or None where
    it cannot be opened or read, or is not a regular file (``open_input``). ``os.read``: no
    file object for a few bytes (a link names thousands of inputs; ``os`` is imported by
    every caller already)."""
    import os

    opened = open_input(path)
    if opened is None:
        return None
    fd = opened[0]
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)
