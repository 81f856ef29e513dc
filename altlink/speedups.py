"""The optional compiled fast paths, built by setup.py where a C compiler and Python's headers
are there: ``altlink._speedups`` (from ``_speedups.c``: making an object's record) and
``altlink._postlink`` (from ``_postlink.c``: a link's work after its linker). Each is used only
where it was built from the source shipped beside it (the sha256 its build embedded is that
of its ``.c`` file now), and neither where ALTLINK_NO_SPEEDUPS is set to anything but "" or
"0". Without them, altlink runs its Python, which gives the same results
(tests/test_speedups.py and tests/test_postlink.py compare them); each of their functions
returns None (or leaves a part None) where the Python is to do the work."""
from __future__ import annotations

import os

SPEEDUPS = "_speedups"
POSTLINK = "_postlink"
MODULES = (SPEEDUPS, POSTLINK)

_current: dict = {}  # each module's: the module to use, or None (``use``: decided again)
_built: dict = {}  # each module's: the module, or None (``_checked``'s, once a process)
_forced: list = []  # [True or False] where ``use`` said so (the tests)
WHY: list[str] = []  # why ``_speedups`` is not used, where it is not
WHY_OF: dict[str, list[str]] = {SPEEDUPS: WHY, POSTLINK: []}  # the same, of each module


def get(name: str = SPEEDUPS):
    """The extension module ``name`` (``_speedups`` by default) where it is to be used, else
    None."""
    got = _current.get(name, False)
    if got is not False:
        return got
    on = _forced[0] if _forced else \
        os.environ.get("ALTLINK_NO_SPEEDUPS", "") in ("", "0")
    if name not in _built:
        _built[name] = _checked(name)
    got = _current[name] = _built[name] if on else None
    return got


def postlink():
    """``altlink._postlink`` where it is to be used, else None."""
    got = _current.get(POSTLINK, False)
    return get(POSTLINK) if got is False else got


def use(on: bool | None) -> None:
    """Use the extensions (where built from their sources) or not, whatever the environment
    says; None: as the environment says (ALTLINK_NO_SPEEDUPS)."""
    _forced[:] = [] if on is None else [on]
    _current.clear()


def available(name: str = SPEEDUPS) -> bool:
    """Whether the extension ``name`` is built from the source beside it (used or not)."""
    if name not in _built:
        _built[name] = _checked(name)
    return _built[name] is not None


def _checked(name: str = SPEEDUPS):
    """The extension ``name`` (``_speedups`` by default), where it imports and its embedded
    sha256 is that of the source beside it; else None (``WHY_OF[name]`` says why)."""
    why = WHY_OF[name]
    try:
        module = __import__(f"altlink.{name}", fromlist=[name])
    except ImportError as e:
        why.append(f"not built ({e})")
        return None
    from altlink import sha256_for

    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.c")
    try:
        with open(src, "rb") as f:
            data = f.read()
    except OSError as e:
        why.append(f"its source cannot be read ({e.strerror})")
        return None
    if getattr(module, "SOURCE_SHA256", "") != sha256_for(count=False)(data).hexdigest():
        why.append(f"built from another source than altlink/{name}.c (stale): rebuild it")
        return None
    return module
