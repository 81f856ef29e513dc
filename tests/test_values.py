"""The value classes written out (``altlink/values.py``) behave as the dataclasses they were,
and ``altlink check`` of objects whose records are kept makes only the dataclasses that
``dataclasses.replace`` or ``astuple`` need, and does not import ``typing``.

Each class is compared with a dataclass of the same fields and defaults made here
(``make_dataclass``): equality (of the same class only), hash, repr, the defaults, and no
assignment to a frozen one.
"""
from __future__ import annotations

import dataclasses
import pickle

import pytest

from altlink.caps import CapTable
from altlink.crosscheck import _Addr
from altlink.elf import Segment
from altlink.findings import Policy
from altlink.insn import Classified
from altlink.link import LinkRequest, LinkResult
from altlink.linkset import Input, Options
from altlink.reach import Reached
from altlink.records import default_cache_dir
from altlink.symbolspace import Definition
from altlink.table import DEFAULT_ABI, Profile, Table


class Made:
    """A default made for each object, by ``make`` (a dataclass's ``default_factory``)."""

    def __init__(self, make) -> None:
        self.make = make


# (class, frozen, the fields with their defaults (a missing default: required), two values
# of each field)
CASES = [
    (Profile, True, [("abi", DEFAULT_ABI), ("ncaps", None)], [("linux-v6.1", 85), ("xen", 3)]),
    (CapTable, True, [("names",), ("path", "")], [(("A", "B"), "t"), (("C",), "u")]),
    (Policy, True, [("disabled", frozenset()), ("werror", False)],
     [(frozenset({"ALT001"}), True), (frozenset(), False)]),
    (Segment, True, [(n,) for n in ("type", "flags", "offset", "vaddr", "paddr", "filesz",
                                     "memsz", "align")],
     [(1, 5, 0, 0x1000, 0x1000, 64, 128, 8), (2, 6, 8, 0, 0, 1, 1, 1)]),
    (Definition, True, [("path",), ("symbol",), ("section",)],
     [("a.o", ("s", 1), None), ("b.o", ("t", 2), ("sec",))]),
    (Table, False, [("path",), ("entries",), ("findings",), ("sections",), ("columns", None)],
     [("a.o", [1, 2], [], [3], None), ("b.o", [], ["f"], [], {"x": 1})]),
    (Input, False, [("elf",), ("table",), ("names",), ("_relocs", {})],
     [("e", "t", "n", {1: 2}), ("f", "u", "m", {})]),
    # (a kernel module's link makes none of these as a dataclass: tests/test_startup.py)
    (Classified, True, [("kind",), ("offset",), ("name",)],
     [("plain", None, "plain"), ("adrp", 4096, "adrp")]),
    (_Addr, True, [("address",), ("defined", True)], [(16, True), (32, False)]),
    (Reached, True, [("callback",), ("what",), ("name",), ("path",), ("entry", None)],
     [("cb", "hook", "__asan_load8", ("cb",), None), ("d", "site", "f+0x4", ("d", "f"), 3)]),
    (LinkResult, False, [("findings",), ("notes",), ("linked", False), ("written", []),
                         ("stats", {})],
     [(["f"], ["n"], True, ["a.elf"], {"objects": 1}), ([], [], False, [], {})]),
    (LinkRequest, False, [("command",), ("output",), ("manifest", None), ("binary", None),
                          ("options", Options()), ("symbols_from", []), ("sort_table", False),
                          ("source_lines", False), ("policy", Policy()),
                          ("cache_dir", Made(default_cache_dir))],
     [(["ld", "a.o"], "a.elf", "a.json", "a.bin", Options(Profile("xen-v4.17", 3)), ["v"],
       True, True, Policy(werror=True), "c"),
      (["ld"], "b.elf", None, None, Options(), [], False, False, Policy(), None)]),
]


def reference(cls, frozen, fields):
    """The dataclass the class was: the same name, fields and defaults."""
    specs = []
    for name, *default in fields:
        if not default:
            specs.append((name, object))
        elif type(default[0]) in (dict, list):
            specs.append((name, object, dataclasses.field(default_factory=type(default[0]))))
        elif isinstance(default[0], Made):
            specs.append((name, object, dataclasses.field(default_factory=default[0].make)))
        else:
            specs.append((name, object, dataclasses.field(default=default[0])))
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=frozen)


@pytest.mark.parametrize("cls,frozen,fields,values", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_a_value_class_behaves_as_its_dataclass(cls, frozen, fields, values):
    ref = reference(cls, frozen, fields)
    names = [f[0] for f in fields]
    a, b = values
    for args in (a, b):
        got, want = cls(*args), ref(*args)
        assert repr(got) == repr(want)
        assert [getattr(got, n) for n in names] == [getattr(want, n) for n in names]
        assert got == cls(*args) and got != cls(*b if args is a else a)
        assert got != want and (got == want) is False  # another class: never equal
        assert cls(**dict(zip(names, args))) == got
        if frozen:
            assert hash(got) == hash(want)
            with pytest.raises(AttributeError):
                setattr(got, names[0], args[0])
            with pytest.raises(AttributeError):
                delattr(got, names[0])
        else:
            with pytest.raises(TypeError):
                hash(got)
            setattr(got, names[0], "changed")
            assert getattr(got, names[0]) == "changed"
    defaults = [f for f in fields if len(f) > 1]
    required = a[:len(fields) - len(defaults)]
    assert repr(cls(*required)) == repr(ref(*required))
    if frozen and cls is not Definition:  # (a Definition's symbol is an ELF named tuple)
        assert pickle.loads(pickle.dumps(cls(*a))) == cls(*a)


_LOADED = """\
import sys
from altlink import cli
from altlink.gcpause import process_ends
process_ends()
rc = cli.main(sys.argv[1:])
print(rc, " ".join(m for m in ("dataclasses", "typing", "re", "enum", "signal", "pickle",
                             "contextlib", "weakref") if m in sys.modules) or "-")
"""


def test_a_check_whose_records_are_kept_imports_no_dataclasses(tmp_path):
    """``altlink check`` of objects whose records are kept makes no dataclass: every class it
    imports is written out (``Finding``, ``Options`` and ``ObjectRecord`` too, with
    ``values.replace`` and ``astuple`` for what ``dataclasses`` gave them), so it imports
    neither ``dataclasses`` nor, with it, ``re`` and ``enum``; nor ``typing`` (its named
    tuples are ``collections.namedtuple``'s), ``signal``'s enums, ``pickle.py`` or
    ``contextlib`` (the collector's pause and the signals held are classes of their own), or
    ``weakref.py`` (a record group's references are ``_weakref``'s)."""
    from test_cache import check_in_a_process

    loaded = check_in_a_process(tmp_path, _LOADED)
    loaded()  # the records made
    assert loaded() == "0 -"


def test_findings_options_and_records_behave_as_their_dataclasses():
    """``Finding``, ``Options`` and ``ObjectRecord`` were dataclasses: the same equality (a
    finding's ``site`` and a record's private fields not compared), hash, repr, and
    ``values.replace``/``astuple`` give what ``dataclasses.replace``/``astuple`` gave."""
    from altlink.caps import CapTable
    from altlink.findings import Finding
    from altlink.linkset import Options
    from altlink.records import ObjectRecord
    from altlink.values import astuple, replace

    F = dataclasses.make_dataclass("Finding", [
        ("code", object), ("severity", object), ("message", object), ("file", object),
        ("place", object, dataclasses.field(default="")),
        ("source", object, dataclasses.field(default=None)),
        ("entry", object, dataclasses.field(default=None)),
        ("site", object, dataclasses.field(default=None, compare=False))], frozen=True)
    for args in [("ALT001", "error", "m", "a.o"), ("ALT017", "warning", "n", "b.o", ".text+0x4",
                                                   "a.c:3", 7, (".text", 4))]:
        got, want = Finding(*args), F(*args)
        assert repr(got) == repr(want) and hash(got) == hash(want)
        assert astuple(got) == dataclasses.astuple(want)
        assert got == replace(got, site=("x", 1)) and Finding(*args) == got
        assert astuple(replace(got, site=("x", 1), entry=3)) == \
            dataclasses.astuple(dataclasses.replace(want, site=("x", 1), entry=3))
        assert pickle.loads(pickle.dumps(got)) == got
        assert pickle.loads(pickle.dumps(got)).site == got.site
        with pytest.raises(AttributeError):
            got.code = "ALT002"
        with pytest.raises(TypeError):
            replace(got, nothing=1)
    assert Finding("ALT001", "error", "m", "a.o") != Finding("ALT001", "error", "m", "b.o")
    Opts = dataclasses.make_dataclass("Options", [
        ("profile", object, dataclasses.field(default=Profile())),
        ("caps", object, dataclasses.field(default=None)),
        ("module", object, dataclasses.field(default=False)),
        ("partial", object, dataclasses.field(default=False))], frozen=True)
    caps = CapTable(("A", "B"), "t")
    for args in [(), (Profile("linux-v6.1", 85), caps, True), (Profile(), None, False, True)]:
        got, want = Options(*args), Opts(*args)
        assert repr(got) == repr(want) and hash(got) == hash(want)
        assert replace(got, module=True) == Options(*replace(want, module=True).__dict__.values())
        assert pickle.loads(pickle.dumps(got)) == got
    assert Options().profile is Options().profile  # one default, as the dataclass's
    # A record: its first seven fields compared and shown, the others not.
    a = ObjectRecord("p", False, (), [], [], {}, [], _items=(1,), _profile="x")
    b = ObjectRecord("p", False, (), [], [], {}, [], _profile="y")
    assert a == b and a != replace(a, path="q") and repr(a) == repr(b)
    assert repr(a) == "ObjectRecord(path='p', is_module=False, flags=(), table_findings=[], " \
        "findings=[], defines={}, digest=[])"
    assert replace(a, flags=(1,))._profile == "x" and replace(a, flags=(1,)).flags == (1,)
    with pytest.raises(TypeError):
        hash(a)
