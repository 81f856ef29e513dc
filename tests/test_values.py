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
from altlink.elf import Segment
from altlink.findings import Policy
from altlink.linkset import Input
from altlink.symbolspace import Definition
from altlink.table import DEFAULT_ABI, Profile, Table

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
]


def reference(cls, frozen, fields):
    """The dataclass the class was: the same name, fields and defaults."""
    specs = []
    for name, *default in fields:
        if not default:
            specs.append((name, object))
        elif isinstance(default[0], dict):
            specs.append((name, object, dataclasses.field(default_factory=dict)))
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


_MADE = """\
import dataclasses, sys
made = []
real = dataclasses.dataclass
def counting(cls=None, **kw):
    def wrap(c):
        made.append(c.__name__)
        return real(c, **kw)
    return wrap if cls is None else wrap(cls)
dataclasses.dataclass = counting
from altlink import cli
from altlink.gcpause import process_ends
process_ends()
rc = cli.main(sys.argv[1:])
print(rc, " ".join(sorted(made)), "typing" in sys.modules)
"""


def test_a_check_whose_records_are_kept_makes_only_the_dataclasses_replace_needs(tmp_path):
    """``altlink check`` of objects whose records are kept makes (compiles the methods of)
    only ``Finding``, ``Options`` and ``ObjectRecord``, which ``dataclasses.replace`` and
    ``astuple`` are used on: the other classes it imports are written out; and it does not
    import ``typing`` (its named tuples are ``collections.namedtuple``'s)."""
    from test_cache import check_in_a_process

    made = check_in_a_process(tmp_path, _MADE)
    made()  # the records made
    assert made() == "0 Finding ObjectRecord Options False"
