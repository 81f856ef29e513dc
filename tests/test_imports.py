"""The package's modules import one another one way: no cycles.

Every ``import`` statement of every module of ``altlink/`` is read with ``ast`` (at module
level, inside functions and under ``if TYPE_CHECKING``: a cycle hidden in a function is still a
cycle), the imports of ``altlink`` modules make a graph, and each cycle is reported with the
modules on it and the lines that import.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from toolchain import ROOT

PACKAGE = ROOT / "altlink"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> dict[str, int]:
    """The ``altlink`` modules that the module imports, each with the line of its first
    import (``from altlink import x`` imports the module ``altlink.x`` where there is one,
    else the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in known and target != name:
            out.setdefault(target, line)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    add(f"{source}.{alias.name}", node.lineno)
                else:
                    add(source, node.lineno)
    return out


def import_graph() -> dict[str, dict[str, int]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def describe(comp: list[str], graph: dict[str, dict[str, int]]) -> str:
    edges = [f"{a} imports {b} (line {graph[a][b]})" for a in comp for b in comp
             if b in graph[a]]
    return "; ".join(edges)


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    # The reader itself: an import inside a function and a relative one are edges.
    pkg = tmp_path / "altlink"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from altlink.b import g\n    return g\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "c.py").write_text("from altlink import a, b\n")
    known = {"altlink", "altlink.a", "altlink.b", "altlink.c"}
    graph = {n: imports_of(n, pkg / f"{n.split('.')[-1]}.py", known)
             for n in ("altlink.a", "altlink.b", "altlink.c")}
    assert graph == {"altlink.a": {"altlink.b": 2}, "altlink.b": {"altlink.a": 1},
                     "altlink.c": {"altlink.a": 1, "altlink.b": 1}}
    assert cycles(graph) == [["altlink.a", "altlink.b"]]


def test_no_module_of_the_package_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "altlink.checks" in graph and "altlink.records" in graph
    found = cycles(graph)
    assert not found, "import cycles: " + " | ".join(describe(c, graph) for c in found)


def test_starting_the_linker_loads_neither_the_checks_nor_the_tables():
    # The link starts its linker (altlink.linker.LinkStart) before it imports the checks, so
    # that their import runs beside the linker: what that start needs stays small.
    graph = import_graph()
    seen, todo = set(), ["altlink.linker", "altlink.launcher"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    assert {"altlink.linkcmd", "altlink.filekind", "altlink.outputs"} <= seen
    assert not [m for m in seen if m.startswith((
        "altlink.check", "altlink.records", "altlink.linkset", "altlink.table",
        "altlink.findings", "altlink.inputs", "altlink.elf"))], seen


def test_the_way_to_the_linker_imports_no_dataclasses_or_typing():
    # What runs before the linker starts (the CLI with the link's parser, the launcher's plan
    # and the start) is on the link's critical path: dataclasses (with inspect) and typing
    # are 11 ms of imports there; shutil (argparse's terminal width) and textwrap (the help's
    # epilogs) 4 ms. Checked in a fresh interpreter, by what it has loaded.
    code = ("import sys\n"
            "from altlink import cli, launcher, linker, outputs\n"
            "cli.build_parser('link')\n"
            "print(' '.join(m for m in ('dataclasses', 'typing', 'inspect', 'altlink.elf',\n"
            "                           'shutil', 'textwrap')\n"
            "               if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == []


def test_checking_files_does_not_load_the_link():
    # altlink check of objects checks their link set as the link does (check_linkset), and
    # needs nothing of the linker, the cross-check or the link's outputs.
    seen = reachable(import_graph(), "altlink.batch")
    assert "altlink.check_linkset" in seen
    assert not {"altlink.link", "altlink.linker", "altlink.crosscheck",
                "altlink.linkoutputs"} & set(seen), seen


# The phases of a check and of a link, in the order the data goes through them: a module of
# one phase may use the phases before it, never one after it (the objects' checks know nothing
# of the link set, the link set's nothing of the image).
PHASES = [
    {"altlink.check_core"},
    {"altlink.check_entries"},
    {"altlink.check_objects"},
    {"altlink.records", "altlink.symbolspace"},
    {"altlink.check_linkset"},
    {"altlink.check_image", "altlink.crosscheck"},
    {"altlink.link"},
]


def reachable(graph: dict[str, dict[str, int]], start: str) -> dict[str, list[str]]:
    """Every module ``start`` imports, directly or not, with the chain of imports to it."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        m = todo.pop()
        for n in graph.get(m, {}):
            if n not in paths:
                paths[n] = paths[m] + [n]
                todo.append(n)
    return paths


def later_phase_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for k, phase in enumerate(PHASES):
        later = set().union(*PHASES[k + 1:])
        for m in sorted(phase):
            for n, chain in sorted(reachable(graph, m).items()):
                if n in later:
                    out.append(" -> ".join(chain))
    return out


def test_the_phase_rule_sees_an_import_of_a_later_phase():
    graph = {"altlink.check_objects": {"altlink.findings": 3},
             "altlink.findings": {"altlink.check_linkset": 9}, "altlink.check_linkset": {}}
    assert later_phase_imports(graph) == [
        "altlink.check_objects -> altlink.findings -> altlink.check_linkset"]


def test_no_phase_imports_a_later_one():
    graph = import_graph()
    assert set().union(*PHASES) <= set(graph), "a phase names a module that is gone"
    assert later_phase_imports(graph) == []


def test_the_code_map_names_every_module_and_only_those():
    # docs/code-map.md is how a newcomer finds the flow: a module added, moved or removed
    # without it going there makes the map wrong.
    text = (ROOT / "docs" / "code-map.md").read_text()
    tables = [ln for ln in text.splitlines() if ln.startswith("| `")]
    named = {n for ln in tables for n in re.findall(r"`([a-z_]+)`", ln.split("|")[1])}
    package = {m.split(".", 1)[1] for m in modules() if "." in m and m.count(".") == 1}
    package -= {"__main__"}
    assert named == package, (f"not in the map: {sorted(package - named)}; "
                              f"in the map, not in the package: {sorted(named - package)}")
