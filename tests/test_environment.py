"""The environment variables altlink reads, and the suite's shield from a user's settings of
them (tests/conftest.py clears every one, tests/toolchain.py lists them): a developer who set
``ALTLINK_CACHE_SIZE=1`` or ``ALTLINK_TRACEBACK=1`` in their shell must get the same results as
CI."""
from __future__ import annotations

import ast
import os
import re

from toolchain import ALTLINK_ENV, ROOT, altlink, compile, env_without_altlink_vars, write

# ALTLINK_* strings of the package that are not environment variables: the SCons tool's are
# construction variables (an SConstruct's, not the process's), and these are C names.
NOT_ENVIRONMENT = {"ALTLINK_CAPS_H": "the capability header's include guard"}
SCONS_FILES = {"scons_tool.py", "site_tools"}


def package_names() -> dict[str, str]:
    """Every string of the package's Python that is a whole ALTLINK_* name, with a file that
    holds it (the SCons tool's files left out)."""
    names = {}
    for path in sorted((ROOT / "altlink").rglob("*.py")):
        if SCONS_FILES & set(path.relative_to(ROOT / "altlink").parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    re.fullmatch(r"ALTLINK_[A-Z0-9_]+", node.value):
                names.setdefault(node.value, path.name)
    return names


def test_the_suite_clears_every_variable_the_package_reads():
    names = package_names()
    assert "ALTLINK_ABI" in names and "ALTLINK_UNDER" in names  # (the scan sees them)
    unlisted = {n: f for n, f in names.items()
                if n not in ALTLINK_ENV and n != "ALTLINK_CACHE_DIR" and n not in NOT_ENVIRONMENT}
    assert not unlisted, f"read by the package, not cleared for the tests: {unlisted}"
    # and nothing listed that the package no longer reads
    assert not set(ALTLINK_ENV) - set(names), set(ALTLINK_ENV) - set(names)


def test_every_variable_is_documented_for_users():
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "reference.md").read_text()
    missing = [n for n in (*ALTLINK_ENV, "ALTLINK_CACHE_DIR") if f"`{n}" not in docs]
    assert not missing, f"not in README.md or docs/reference.md: {missing}"


def test_a_users_settings_reach_neither_a_test_nor_its_altlink(tmp_path, monkeypatch):
    # the fixture cleared them; the cache is the session's
    assert not [k for k in ALTLINK_ENV if k in os.environ]
    assert os.environ["ALTLINK_CACHE_DIR"]
    # set now (as a test's own code might), they stay out of the altlink a test runs
    monkeypatch.setenv("ALTLINK_ABI", "no-such-abi")
    monkeypatch.setenv("ALTLINK_WERROR", "maybe")
    assert "ALTLINK_ABI" not in env_without_altlink_vars()
    obj = compile(write(tmp_path / "f.c", "int f(void) { return 1; }\n"), tmp_path / "f.o")
    p = altlink("check", obj, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    # unless the test gives them
    p = altlink("check", obj, cwd=tmp_path, env={"ALTLINK_ABI": "no-such-abi"})
    assert p.returncode == 2 and "ALTLINK_ABI='no-such-abi'" in p.stderr, p.stderr
