"""Capstone's engine, the library the pinned ``capstone`` package ships, called through
``ctypes`` for the one thing altlink asks of it: an AArch64 word's text (``disasm_lite``).

The package's Python module, on import, loads ``ctypes.util``, ``inspect``,
``importlib.resources``, ``pathlib`` and the constants of its 18 architectures before it opens
the library: about 60 ms of a process's CPU, in every process that writes a manifest or asks
capstone's second opinion on a word (a link's forked manifest writer, ``altlink manifest``).
Here the library is found in the package's folder without importing the package and opened
with the package's own flags; the prototypes and the instruction's layout are capstone
5.0's C API (``cs_open``, ``cs_option``, ``cs_disasm``, ``cs_free``, ``cs_version``), and the
library must say it is 5.0 (``cs_version``) and not a "diet" build without the
instructions' text (``cs_support``) to be used. Where it is not found, or says
otherwise, :func:`engine` gives the package's own ``Cs`` (the same methods): the package
stays the reference, and ``tests/test_csbind.py`` compares the two word for word.
"""
from __future__ import annotations

import ctypes
import os
import sys

CS_ARCH_ARM64 = 1  # CS_ARCH_AARCH64 in capstone 6
CS_MODE_ARM = 0  # little-endian
CS_OPT_SKIPDATA = 5
CS_OPT_ON = 3
CS_SUPPORT_DIET = 0xFFFF + 1  # a "diet" engine, built without the instructions' text
API = (5, 0)


class _Insn(ctypes.Structure):
    """``cs_insn`` of capstone 5.0 (include/capstone/capstone.h)."""

    _fields_ = (("id", ctypes.c_uint), ("address", ctypes.c_uint64), ("size", ctypes.c_uint16),
                ("bytes", ctypes.c_ubyte * 24), ("mnemonic", ctypes.c_char * 32),
                ("op_str", ctypes.c_char * 160), ("detail", ctypes.c_void_p))


_lib: ctypes.CDLL | None | bool = False  # False: not looked for yet; None: not usable


def library_path() -> str | None:
    """``capstone/lib/libcapstone.so`` in the first folder of ``sys.path`` that holds the
    package (where ``import capstone`` finds it), or None."""
    for folder in sys.path:
        pkg = os.path.join(folder or ".", "capstone")
        if os.path.isfile(os.path.join(pkg, "__init__.py")):
            lib = os.path.join(pkg, "lib", "libcapstone.so")
            return lib if os.path.isfile(lib) else None
    return None


def _library() -> ctypes.CDLL | None:
    global _lib
    if _lib is False:
        _lib = _open(library_path())
    return _lib  # type: ignore[return-value]


def _open(path: str | None) -> ctypes.CDLL | None:
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_DEEPBIND", 0))  # (the package's flags)
        lib.cs_version.restype = ctypes.c_int
        lib.cs_version.argtypes = (ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
        major, minor = ctypes.c_int(), ctypes.c_int()
        lib.cs_version(ctypes.byref(major), ctypes.byref(minor))
        if (major.value, minor.value) != API:
            return None
        lib.cs_support.restype = ctypes.c_bool
        lib.cs_support.argtypes = (ctypes.c_int,)
        if lib.cs_support(CS_SUPPORT_DIET):  # no text: the package's binding says so
            return None
        lib.cs_open.restype = ctypes.c_int
        lib.cs_open.argtypes = (ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_size_t))
        lib.cs_option.restype = ctypes.c_int
        lib.cs_option.argtypes = (ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p)
        lib.cs_disasm.restype = ctypes.c_size_t
        lib.cs_disasm.argtypes = (ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                                  ctypes.c_uint64, ctypes.c_size_t,
                                  ctypes.POINTER(ctypes.POINTER(_Insn)))
        lib.cs_free.restype = None
        lib.cs_free.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        lib.cs_errno.restype = ctypes.c_int
        lib.cs_errno.argtypes = (ctypes.c_size_t,)
        lib.cs_close.restype = ctypes.c_int
        lib.cs_close.argtypes = (ctypes.POINTER(ctypes.c_size_t),)
        return lib
    except (OSError, AttributeError):
        return None


class Engine:
    """An AArch64 handle of the library (``capstone.Cs``'s ``disasm_lite`` and ``arch``).
    Like the package's handle, one thread's own."""

    arch = CS_ARCH_ARM64

    def __init__(self, lib: ctypes.CDLL, skipdata: bool = False) -> None:
        self._lib = lib
        self._h = ctypes.c_size_t()
        status = lib.cs_open(CS_ARCH_ARM64, CS_MODE_ARM, ctypes.byref(self._h))
        if status != 0:
            raise OSError(f"capstone: cs_open failed ({status})")
        if skipdata and lib.cs_option(self._h, CS_OPT_SKIPDATA, CS_OPT_ON) != 0:
            raise OSError("capstone: cs_option(SKIPDATA) failed")

    def disasm_lite(self, code: bytes, address: int):
        """(address, size, mnemonic, operands) of each instruction of ``code`` at ``address``,
        up to the first word the engine cannot decode (with skipdata: over it, as ``.byte``)."""
        insns = ctypes.POINTER(_Insn)()
        n = self._lib.cs_disasm(self._h, bytes(code), len(code), address, 0,
                                ctypes.byref(insns))
        if not n:
            status = self._lib.cs_errno(self._h)
            if status != 0:
                raise OSError(f"capstone: cs_disasm failed ({status})")
            return
        try:
            for i in range(n):
                x = insns[i]
                yield x.address, x.size, x.mnemonic.decode("ascii"), x.op_str.decode("ascii")
        finally:
            self._lib.cs_free(insns, n)

    def __del__(self, _byref=ctypes.byref) -> None:
        # (``ctypes.byref`` kept from the start: at the interpreter's exit, the modules'
        # names are gone before the last handles are)
        h = getattr(self, "_h", None)
        if h is not None and h.value:
            self._lib.cs_close(_byref(h))


def engine(skipdata: bool = False):
    """An AArch64 disassembler: the library through ``Engine``, or the package's ``Cs``
    where the library is not usable here."""
    lib = _library()
    if lib is not None:
        return Engine(lib, skipdata)
    import capstone

    arch = getattr(capstone, "CS_ARCH_AARCH64", None)
    if arch is None:
        arch = capstone.CS_ARCH_ARM64
    md = capstone.Cs(arch, capstone.CS_MODE_ARM)
    if skipdata:
        md.skipdata = True
    return md
