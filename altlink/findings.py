"""Findings: the stable diagnostic codes of docs/reference.md, section 3 and one finding as plain data."""
from __future__ import annotations

from collections import namedtuple

from altlink.values import Frozen, replace

TYPE_CHECKING = False  # (``typing``'s, without its import: 2 ms of a check)
if TYPE_CHECKING:
    from pathlib import Path

ERROR, WARNING, NOTE = "error", "warning", "note"

# code -> (default severity, short title). Each code has a page, altlink/docs/codes/<CODE>.md.
CODES: dict[str, tuple[str, str]] = {
    "ALT001": (ERROR, "static entry: replacement length differs from the site"),
    "ALT002": (ERROR, "callback entry with a replacement length"),
    "ALT003": (ERROR, "site length zero (an empty static entry aside) or not a multiple of 4, or site not aligned"),
    "ALT004": (ERROR, "site not inside an executable section"),
    "ALT005": (ERROR, "replacement outside the replacement or executable sections"),
    "ALT006": (ERROR, "callback symbol undefined in the link set"),
    "ALT007": (ERROR, "callback symbol is not a function in an executable section"),
    "ALT008": (ERROR, "replacement holds an instruction that cannot be moved"),
    "ALT009": (ERROR, "re-encoded branch or ADRP out of range at the site"),
    "ALT010": (ERROR, "entries patch overlapping sites"),
    "ALT011": (ERROR, "capability not in the capability table"),
    "ALT012": (ERROR, "malformed alternative table"),
    "ALT013": (ERROR, "entry missing from or different in the linked image"),
    "ALT014": (WARNING, "callback reaches instrumented or patched code"),
    "ALT015": (ERROR, "module callback defined by the module itself"),
    "ALT016": (ERROR, "linker rewrote or redirected replacement code"),
    "ALT017": (ERROR, "branch into a replacement from outside it"),
    "ALT018": (WARNING, "alternative table not 4-byte aligned in the image"),
}

# The pages ship inside the package (``altlink explain CODE`` prints one): ``page_path``.


def known_code(text: str) -> str | None:
    """``text`` as a code (``alt014`` is ``ALT014``: codes are case-insensitive), or None."""
    code = text.strip().upper()
    return code if code in CODES else None


def page_path(code: str) -> Path:
    from pathlib import Path  # only for a page (pathlib is a tenth of a check's imports)

    return Path(__file__).resolve().parent / "docs" / "codes" / f"{code}.md"


def page_section(code: str, heading: str) -> str:
    """The first paragraph under ``## heading`` of a code's page, as one line ("" if none)."""
    lines = page_path(code).read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(f"## {heading}") + 1
    except ValueError:
        return ""
    para: list[str] = []
    for line in lines[start:]:
        if line.startswith("#") or (not line.strip() and para):
            break
        if line.strip():
            para.append(line.strip())
    return " ".join(para)


class Finding(Frozen):
    """One diagnostic: a code, a severity, a message and where it is.

    ``file`` is the object or image; ``place`` the bracketed detail (``obj/foo.o .text+0x40
    func+0x10`` or ``.altinstructions entry 7``); ``source`` a ``file:line`` when DWARF line
    tables give one.
    """

    _fields = ("code", "severity", "message", "file", "place", "source", "entry", "site")
    _compare = _fields[:-1]  # (``site`` is not compared: a dataclass's ``compare=False``)
    code: str
    severity: str
    message: str
    file: str
    place: str
    source: str | None
    entry: int | None
    # Where the site is, for source lines: (section, offset) in an object, ("", address) in an
    # image; None when the finding is not about a site. A finding about one instruction of a
    # replacement puts that instruction's place first: (section, offset, site section, offset).
    site: tuple | None

    def __init__(self, code: str, severity: str, message: str, file: str, place: str = "",
                 source: str | None = None, entry: int | None = None,
                 site: tuple | None = None) -> None:
        _set = object.__setattr__
        _set(self, "code", code)
        _set(self, "severity", severity)
        _set(self, "message", message)
        _set(self, "file", file)
        _set(self, "place", place)
        _set(self, "source", source)
        _set(self, "entry", entry)
        _set(self, "site", site)

    def with_severity(self, severity: str) -> Finding:
        return replace(self, severity=severity)


def finding(code: str, message: str, file: str, place: str = "", source: str | None = None,
            entry: int | None = None, severity: str | None = None) -> Finding:
    return Finding(code, severity or CODES[code][0], message, file, place, source, entry)


class Deferred(namedtuple("Deferred", "index symbol")):
    """A callback an object leaves undefined: checked once the whole link set is known
    (an object's record keeps it in place of a finding). ``index``: the entry's position in
    the object's table; ``symbol``: the callback's name."""

    __slots__ = ()


class Policy(Frozen):
    """What the user asked of the report: codes silenced, warnings made errors."""

    _fields = ("disabled", "werror")
    disabled: frozenset[str]
    werror: bool

    def __init__(self, disabled: frozenset[str] = frozenset(), werror: bool = False) -> None:
        object.__setattr__(self, "disabled", disabled)
        object.__setattr__(self, "werror", werror)

    def apply(self, findings: list[Finding]) -> list[Finding]:
        out = []
        for f in findings:
            if f.code in self.disabled:
                continue
            if self.werror and f.severity == WARNING:
                f = f.with_severity(ERROR)
            out.append(f)
        return out


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)
