"""altlink: link-stage collection, validation and patching of AArch64 alternatives."""

__version__ = "0.1.0"

_digest: list[str] = []


def code_digest() -> str:
    """A hash of the package's own files (its Python modules and the headers, linker scripts,
    schema and runtime it ships), made once per process: what altlink makes of an input
    (a record in the cache, a link in SCons) is kept under it, so that any change to the code
    makes those again, whatever the version string says."""
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
        _digest.append(h.hexdigest())  # two threads at once compute the same value
    return _digest[0]
