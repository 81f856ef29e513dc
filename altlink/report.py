"""Rendering findings: one line each (text), JSON, or SARIF 2.1.0."""
from __future__ import annotations

from altlink import __version__
from altlink.errors import one_line
from altlink.findings import CODES, ERROR, NOTE, WARNING, Finding, page_path, page_section

FORMATS = ("text", "json", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def hint(code: str) -> str:
    """What the first finding of each code ends with in text output."""
    return f"(altlink explain {code})"


def text_line(f: Finding) -> str:
    return one_line(_text_line(f))


def _text_line(f: Finding) -> str:
    """``src/foo.c:42: error: ALT001: msg [obj/foo.o .text+0x40 func+0x10]`` or, without a
    source line, ``obj/foo.o: error: ALT001: msg [.text+0x40 func+0x10]``."""
    if f.source:
        where = f" [{f.file} {f.place}]" if f.place else f" [{f.file}]"
        return f"{f.source}: {f.severity}: {f.code}: {f.message}{where}"
    where = f" [{f.place}]" if f.place else ""
    return f"{f.file}: {f.severity}: {f.code}: {f.message}{where}"


def render(findings: list[Finding], fmt: str) -> str:
    if fmt == "json":
        import json

        return json.dumps(to_json(findings), indent=2, sort_keys=True) + "\n"
    if fmt == "sarif":
        import json

        return json.dumps(to_sarif(findings), indent=2, sort_keys=True) + "\n"
    lines, hinted = [], set()
    for f in findings:
        line = text_line(f)
        if f.code in CODES and f.code not in hinted:
            hinted.add(f.code)
            line += f" {hint(f.code)}"
        lines.append(line + "\n")
    return "".join(lines)


def summary(findings: list[Finding]) -> dict:
    return {"errors": sum(f.severity == ERROR for f in findings),
            "warnings": sum(f.severity == WARNING for f in findings),
            "notes": sum(f.severity == NOTE for f in findings)}


def to_json(findings: list[Finding]) -> dict:
    return {"findings": [{"code": f.code, "severity": f.severity, "message": f.message,
                          "file": f.file, "place": f.place, "source": f.source,
                          "entry": f.entry} for f in findings],
            "summary": summary(findings)}


def _rule(code: str, severity: str, title: str) -> dict:
    """A SARIF rule from the code's page. helpUri must be an absolute URI (SARIF 3.49.12): the
    page as installed with this altlink, a ``file:`` URI, the same page ``altlink explain``
    prints."""
    fix = page_section(code, "How to fix")
    return {"id": code, "name": code,
            "shortDescription": {"text": title},
            "fullDescription": {"text": page_section(code, "What it means") or title},
            "help": {"text": f"{fix} {hint(code)}".strip()},
            "helpUri": page_path(code).as_uri(),
            "defaultConfiguration": {"level": severity}}


def to_sarif(findings: list[Finding]) -> dict:
    rules = [_rule(code, sev, title) for code, (sev, title) in sorted(CODES.items())]
    results = []
    for f in findings:
        loc: dict = {}
        if f.source and ":" in f.source:
            path, _, line = f.source.rpartition(":")
            region = {"startLine": int(line)} if line.isdigit() else {}
            loc["physicalLocation"] = {"artifactLocation": {"uri": path}, **(
                {"region": region} if region else {})}
        else:
            loc["physicalLocation"] = {"artifactLocation": {"uri": f.file}}
        if f.place:
            loc["logicalLocations"] = [{"fullyQualifiedName": f"{f.file} {f.place}"}]
        level = f.severity if f.severity in (ERROR, WARNING, NOTE) else "none"
        res = {"ruleId": f.code, "ruleIndex": sorted(CODES).index(f.code) if f.code in CODES
               else 0, "level": level, "message": {"text": f.message}, "locations": [loc]}
        results.append(res)
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "altlink", "version": __version__,
                                          "rules": rules}},
                      "results": results}]}
