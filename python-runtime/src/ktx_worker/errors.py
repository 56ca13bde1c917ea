"""Typed call errors, shaped as the Rust side's ``CallError`` (``kind`` in snake case)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import traceback
    from types import TracebackType


class ScriptError(Exception):
    """An error with its ABI kind: ``load_failed``, ``missing_entrypoint``, ``bad_result``..."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        path: str | None = None,
        location: str | None = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.path = path
        self.location = location
        self.traceback = traceback

    def to_json(self) -> dict:
        """The error as the reply carries it."""
        return {
            "kind": self.kind,
            "message": self.message,
            "path": self.path,
            "location": self.location,
            "traceback": self.traceback,
        }


def _script_frames(tb: TracebackType | None, filename: str) -> list[traceback.FrameSummary]:
    import traceback  # imported on the first error, not at start-up (restart time)

    return [f for f in traceback.extract_tb(tb) if f.filename == filename]


def location_of(exc: BaseException, filename: str) -> str | None:
    """``file:line:col`` of the innermost frame in the script (``file:line`` before 3.11)."""
    if isinstance(exc, SyntaxError) and exc.filename == filename and exc.lineno:
        return f"{filename}:{exc.lineno}:{exc.offset or 1}"
    frames = _script_frames(exc.__traceback__, filename)
    if not frames:
        return None
    frame = frames[-1]
    col = getattr(frame, "colno", None)
    if col is None:
        return f"{filename}:{frame.lineno}"
    return f"{filename}:{frame.lineno}:{col + 1}"


def from_exception(kind: str, exc: BaseException, filename: str, skip: int) -> ScriptError:
    """A :class:`ScriptError` for ``exc``; its traceback skips the worker's ``skip`` frames."""
    import traceback

    tb = exc.__traceback__
    for _ in range(skip):
        if tb is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if isinstance(exc, SyntaxError):
        # Its formatted form repeats the source line and a caret: the location says where.
        message = f"{type(exc).__name__}: {exc.msg}"
    else:
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return ScriptError(kind, message, location=location_of(exc, filename), traceback=text or None)
