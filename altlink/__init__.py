"""altlink: link-stage collection, validation and patching of AArch64 alternatives."""

__version__ = "0.1.0"

_digest: list[str] = []


def code_digest() -> str:
    """A hash of the package's own files (its Python modules and the headers, linker scripts,
    schema and runtime it ships) and of the capstone it would import, made once per process:
    what altlink makes of an input (a record in the cache, a link in SCons) is kept under it,
    so that any change to the code makes those again, whatever the version string says.
    (Capstone's decoding is part of the checks, ``insn.classify``, and of the manifest's
    disassembly: another capstone, in another environment sharing the cache, may say
    otherwise.)"""
    if not _digest:
        import hashlib
        import os

        here = os.path.dirname(os.path.abspath(__file__))
        h = hashlib.sha256(__version__.encode() + b"\0")
        for root, dirs, files in os.walk(here):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for f in sorted(files):
                if f.endswith((".py", ".h", ".ld", ".json", ".c")):
                    path = os.path.join(root, f)
                    with open(path, "rb") as fh:
                        data = fh.read()
                    h.update(os.path.relpath(path, here).encode() + b"\0" +
                             len(data).to_bytes(8, "little") + data)
        h.update(_capstone_identity())
        _digest.append(h.hexdigest())  # two threads at once compute the same value
    return _digest[0]


def _capstone_identity() -> bytes:
    """The capstone package that ``import capstone`` would find first on ``sys.path``, by the
    size and modification time of its module and its library (another version differs in
    both; a reinstall of the same one only makes the records again), without importing it
    (0.09 s)."""
    import os
    import sys

    for entry in sys.path:
        pkg = os.path.join(entry or ".", "capstone")
        init = os.path.join(pkg, "__init__.py")
        try:
            st = os.stat(init)
        except OSError:
            continue
        out = [f"capstone {st.st_size} {st.st_mtime_ns}"]
        lib = os.path.join(pkg, "lib")
        try:
            names = sorted(os.listdir(lib))
        except OSError:
            names = []
        for name in names:
            try:
                st = os.stat(os.path.join(lib, name))
            except OSError:
                continue
            out.append(f"{name} {st.st_size} {st.st_mtime_ns}")
        return "\0".join(out).encode() + b"\0"
    return b"no capstone\0"
