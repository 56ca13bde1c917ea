"""Errors of the semantic layer, independent of the ABI (``ops`` maps them to ``abi.OpError``).

This module imports nothing heavy, so every other module may import it. It also holds
:class:`Record`, the base of the package's small data classes.
"""

from __future__ import annotations

from typing import Any


class Record:
    """Base of plain data classes: ``__slots__`` fields, dataclass-like ``repr`` and ``==``.

    Used instead of ``@dataclass``, whose class creation (generated code ``exec``'d per class)
    cost about 0.4 ms per class on every one-shot import. Subclasses list their fields in
    ``__slots__`` and write ``__init__`` themselves.
    """

    __slots__ = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._field_names())

    @classmethod
    def _field_names(cls) -> list[str]:
        return [n for c in reversed(cls.__mro__) for n in c.__dict__.get("__slots__", ())]

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._field_names())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, like a non-frozen dataclass


class SemanticError(Exception):
    """An expected failure with a stable ``code`` (see :mod:`semantic_layer.ops` for the list)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


class Issue(Record):
    """One problem found while loading a project (immutable, hashable).

    ``file`` is relative to the project root (POSIX separators), ``key`` is a path inside the
    file such as ``measures[1].expr`` (empty for the whole file), ``line`` is 1-based or None.
    ``syntax`` is True for YAML syntax errors (the file could not be read at all).
    """

    __slots__ = ("file", "key", "line", "message", "syntax")

    file: str
    key: str
    line: int | None
    message: str
    syntax: bool

    def __init__(
        self, file: str, key: str, line: int | None, message: str, syntax: bool = False
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "file", file)
        setattr_(self, "key", key)
        setattr_(self, "line", line)
        setattr_(self, "message", message)
        setattr_(self, "syntax", syntax)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: an Issue is immutable")

    def __hash__(self) -> int:
        return hash(self._fields())

    def to_json(self) -> dict[str, Any]:
        """The issue as the ``semantic.validate`` response shows it."""
        return {"file": self.file, "key": self.key, "line": self.line, "message": self.message}

    def render(self) -> str:
        """``file:line: key: message`` for human-readable messages."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key + ': ' if self.key else ''}{self.message}"
