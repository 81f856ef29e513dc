"""Notes that name the cause of many findings at once: objects built for another table ABI
profile, or checked against a capability table smaller than the one they were built with.
Each note is said once, after the findings, with the option that fixes it."""
from __future__ import annotations

import re

from altlink.findings import Finding
from altlink.table import NCAPS_MARKED

_LOOKS_LIKE_CALLBACK = re.compile(r"looks like a callback \(.*\) with marker (\d+), "
                                  r"but NCAPS is (\d+)")
_NOT_IN_TABLE = re.compile(r"^capability (\d+) is not in the table \(NCAPS (\d+)\)")
CB_BIT_V61 = 0x8000


def notes(findings: list[Finding], abi: str, ncaps_from: str | None) -> list[str]:
    """The notes for these findings, checked under ``abi``; ``ncaps_from`` says where NCAPS
    came from (``the capability table caps.txt``, ``--ncaps 4``), None where it was inferred
    from the entries."""
    out = []
    used, ncaps, callbacks_with_length = 0, None, False
    for f in findings:
        m = _LOOKS_LIKE_CALLBACK.search(f.message) if f.code == "ALT011" else None
        if m and int(m.group(1)) & CB_BIT_V61:
            if abi in NCAPS_MARKED:
                line = ("altlink: note: the callback entries carry bit 15 (0x8000), as "
                        "linux-v6.1 marks callbacks: the objects look built for linux-v6.1; "
                        "use --abi linux-v6.1")
                if line not in out:
                    out.append(line)
            continue
        if m is None and f.code == "ALT011":
            m = _NOT_IN_TABLE.match(f.message)
        if m:
            used, ncaps = max(used, int(m.group(1))), int(m.group(2))
        if f.code == "ALT002" and abi in NCAPS_MARKED:
            callbacks_with_length = True
        if (f.code == "ALT001" and abi == "linux-v6.1"
                and f.message.startswith("replacement is 0 bytes")):
            line = ("altlink: note: entries without a replacement carry no bit 15 (0x8000), "
                    "as linux-v4.17 and Xen callbacks do (cap == NCAPS): the objects look "
                    "built for linux-v4.17; use --abi linux-v4.17 (for Xen, xen-v4.17)")
            if line not in out:
                out.append(line)
    if out:  # the profile explains the numbers too
        return out
    if ncaps_from and ncaps is not None and used >= ncaps:
        out.append(f"altlink: note: the entries use capability numbers up to {used}, but "
                   f"{ncaps_from} gives NCAPS {ncaps}: it looks too small; use the table the "
                   "objects were built with")
    elif ncaps_from and callbacks_with_length:
        out.append(f"altlink: note: an entry with a replacement has the callback marker "
                   f"(its capability is NCAPS), so {ncaps_from} looks too small; use the "
                   "table the objects were built with")
    return out
