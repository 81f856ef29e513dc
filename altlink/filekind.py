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


def read_head(path: str, size: int) -> bytes | None:
    """The first ``size`` bytes of a file (fewer where it is shorter), or None where it cannot
    be opened or read. ``os.read``: no file object for a few bytes (a link names thousands of
    inputs; ``os`` is imported by every caller already)."""
    import os

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)
