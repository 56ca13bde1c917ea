"""Errors of the semantic layer, independent of the ABI (``ops`` maps them to ``abi.OpError``).

This module imports nothing heavy, so every other module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SemanticError(Exception):
    """An expected failure with a stable ``code`` (see :mod:`semantic_layer.ops` for the list)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class Issue:
    """One problem found while loading a project.

    ``file`` is relative to the project root (POSIX separators), ``key`` is a path inside the
    file such as ``measures[1].expr`` (empty for the whole file), ``line`` is 1-based or None.
    """

    file: str
    key: str
    line: int | None
    message: str
    #: True for YAML syntax errors (the file could not be read at all).
    syntax: bool = False

    def to_json(self) -> dict[str, Any]:
        """The issue as the ``semantic.validate`` response shows it."""
        return {"file": self.file, "key": self.key, "line": self.line, "message": self.message}

    def render(self) -> str:
        """``file:line: key: message`` for human-readable messages."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key + ': ' if self.key else ''}{self.message}"
