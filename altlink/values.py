"""Small value classes written out, for the classes every command imports.

A ``dataclass`` writes its methods as source and compiles them when its module is imported:
0.3 to 0.9 ms a class, paid by every run of the command (``altlink check`` of objects whose
records are kept runs in about 0.1 s). A class written by hand is compiled once, into the
package's bytecode. ``Value`` gives such a class what ``@dataclass`` (``eq=True``) gives it:
equality of the same class by its fields, a ``repr`` naming them, unhashable unless frozen;
``Frozen``, what ``frozen=True`` adds: a hash of the fields and no assignment. Each class
lists its fields (``_fields``) and writes its own ``__init__`` (a frozen one through
``object.__setattr__``, as a dataclass's does). What is compared with a dataclass's
``replace``, ``astuple`` or ``fields`` stays a dataclass.
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
            if len(cls._fields) < 2:  # (``attrgetter`` of one name gives no tuple)
                raise TypeError(f"{cls.__name__}: a value class has two fields or more")
            cls._values = attrgetter(*cls._fields)

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._values(self) == other._values(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{self.__class__.__qualname__}(" + ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self._values(self))) + ")"


class Frozen(Value):
    """``@dataclass(frozen=True)``'s: hashable by the fields, no assignment after ``__init__``."""

    def __hash__(self) -> int:
        return hash(self._values(self))

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")
