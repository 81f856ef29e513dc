"""Small value classes written out, for the classes every command imports.

A ``dataclass`` writes its methods as source and compiles them when its module is imported:
0.3 to 0.9 ms a class, paid by every run of the command (``altlink check`` of objects whose
records are kept runs in about 0.1 s). A class written by hand is compiled once, into the
package's bytecode. ``Value`` gives such a class what ``@dataclass`` (``eq=True``) gives it:
equality of the same class by its fields, a ``repr`` naming them, unhashable unless frozen;
``Frozen``, what ``frozen=True`` adds: a hash of the fields and no assignment. Each class
lists its fields (``_fields``) and writes its own ``__init__`` (a frozen one through
``object.__setattr__``, as a dataclass's does). A class may compare (and hash) only some of
its fields (``_compare``, as a dataclass's ``field(compare=False)``); ``replace`` and
``astuple`` are ``dataclasses.replace``'s and ``astuple``'s for these classes (the module
``dataclasses``, with ``re``, ``enum`` and ``copy``, is a few milliseconds of every run).
"""
from __future__ import annotations

from operator import attrgetter


class Value:
    """``@dataclass``'s equality and repr, from the class's ``_fields`` (two or more)."""

    _fields: tuple[str, ...] = ()
    __hash__ = None  # type: ignore[assignment]  (as a dataclass with eq and not frozen)

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        if "_fields" in cls.__dict__:  # (not ``Frozen``, which names none)
            compare = cls.__dict__.get("_compare", cls._fields)
            if len(cls._fields) < 2 or len(compare) < 2:  # (``attrgetter`` of one name
                raise TypeError(f"{cls.__name__}: a value class has two fields or more")
            cls._values = attrgetter(*cls._fields)
            cls._compared = attrgetter(*compare)  # (the fields equality and hash look at)

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._compared(self) == other._compared(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{self.__class__.__qualname__}(" + ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self._values(self))) + ")"


class Frozen(Value):
    """``@dataclass(frozen=True)``'s: hashable by the fields, no assignment after ``__init__``."""

    def __hash__(self) -> int:
        return hash(self._compared(self))

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")


def replace(obj, **changes):
    """``dataclasses.replace`` of a value class: a new one, made by its ``__init__`` with
    these fields changed (a TypeError for a name that is not one of its fields). A
    dataclass's is ``dataclasses.replace``'s."""
    if not isinstance(obj, Value):
        import dataclasses

        return dataclasses.replace(obj, **changes)
    fields = obj._fields
    for name in changes:
        if name not in fields:
            raise TypeError(f"{obj.__class__.__name__} has no field {name!r}")
    return obj.__class__(**{**dict(zip(fields, obj._values(obj))), **changes})


def astuple(obj) -> tuple:
    """``dataclasses.astuple`` of a value class: its fields' values, in order (values that
    are value classes, lists, tuples or dicts copied as ``astuple`` copies them)."""
    return tuple(map(_copied, obj._values(obj)))


def _copied(v):
    if isinstance(v, Value):
        return astuple(v)
    if type(v) in (list, tuple):
        return type(v)(map(_copied, v))
    if type(v) is dict:
        return {_copied(k): _copied(x) for k, x in v.items()}
    return v
