"""The optional compiled fast path (``altlink._speedups``, built from ``_speedups.c`` by
setup.py where a C compiler and Python's headers are there): used only where it was built
from the source shipped beside it (the sha256 the build embedded is that of ``_speedups.c``
now), and not where ALTLINK_NO_SPEEDUPS is set to anything but "" or "0". Without it,
altlink runs its Python, which gives the same results (tests/test_speedups.py compares
them); each of its functions returns None where the Python is to do the work."""
from __future__ import annotations

import os

_current: list = []  # [the module to use, or None], decided once a process (``use``: again)
_built: list = []  # [the module, or None]: ``_checked``'s, once a process
_forced: list = []  # [True or False] where ``use`` said so (the tests)
WHY: list[str] = []  # why it is not used, where it is not


def get():
    """The extension module where it is to be used, else None."""
    if _current:
        return _current[0]
    on = _forced[0] if _forced else \
        os.environ.get("ALTLINK_NO_SPEEDUPS", "") in ("", "0")
    if not _built:
        _built.append(_checked())
    _current.append(_built[0] if on else None)
    return _current[0]


def use(on: bool | None) -> None:
    """Use the extension (where it is built from its source) or not, whatever the environment
    says; None: as the environment says (ALTLINK_NO_SPEEDUPS)."""
    _forced[:] = [] if on is None else [on]
    _current.clear()


def available() -> bool:
    """Whether the extension is built from the source beside it (used or not)."""
    if not _built:
        _built.append(_checked())
    return _built[0] is not None


def _checked():
    """The extension, where it imports and its embedded sha256 is that of the source beside
    it; else None (``WHY`` says why)."""
    try:
        from altlink import _speedups
    except ImportError as e:
        WHY.append(f"not built ({e})")
        return None
    from altlink import sha256_for

    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_speedups.c")
    try:
        with open(src, "rb") as f:
            data = f.read()
    except OSError as e:
        WHY.append(f"its source cannot be read ({e.strerror})")
        return None
    if getattr(_speedups, "SOURCE_SHA256", "") != sha256_for(count=False)(data).hexdigest():
        WHY.append("built from another source than altlink/_speedups.c (stale): rebuild it")
        return None
    return _speedups
