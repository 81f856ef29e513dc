"""What a file is, from its first bytes: the magic numbers of the inputs a link takes (ELF, LLVM
bitcode, ``ar`` archives) and the ELF machine altlink checks. A module of constants alone: the
launcher decides from them, before the linker starts, whether a command is altlink's to check."""

ELF_MAGIC = b"\x7fELF"
# LLVM bitcode, bare or in its wrapper: what -flto objects hold until the link.
BITCODE_MAGICS = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")
AR_MAGIC = b"!<arch>\n"
AR_THIN_MAGIC = b"!<thin>\n"
EM_AARCH64 = 183
