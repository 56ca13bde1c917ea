"""Read-only execution. Only SQLite has an executor; every other driver is ``no_executor``.

Three independent locks keep a query from changing the database: the file is opened with a
``file:...?mode=ro`` URI (SQLite refuses every write), ``PRAGMA query_only=ON`` is set, and an
authorizer allows only reads, SELECT and scalar functions (not ``load_extension``). Python's
``sqlite3`` also runs a single statement per ``execute``.
"""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from semantic_layer.errors import Record, SemanticError
from semantic_layer.project import Connection

DEFAULT_MAX_ROWS = 1000
DEFAULT_TIMEOUT_SECONDS = 60.0

_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


class Result(Record):
    """Rows (at most ``max_rows``), the total row count and whether rows were cut."""

    __slots__ = ("rows", "total_rows", "truncated", "elapsed_ms")

    def __init__(
        self, rows: list[list[Any]], total_rows: int, truncated: bool, elapsed_ms: float
    ) -> None:
        self.rows = rows
        self.total_rows = total_rows
        self.truncated = truncated
        self.elapsed_ms = elapsed_ms


def _authorizer(action: int, arg1: Any, arg2: Any, _db: Any, _trigger: Any) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open ``path`` so that no statement can change it."""
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    con.execute("PRAGMA query_only=ON")
    con.set_authorizer(_authorizer)
    return con


def run_sqlite(
    path: Path,
    sql: str,
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Result:
    """Run one SELECT read-only; keep ``max_rows`` rows, count all of them."""
    if not path.is_file():
        raise SemanticError(
            "execution_error",
            f"SQLite database not found: {path} (the connection's `path:` in ktx.yaml is "
            "relative to the project root)",
            {"path": str(path)},
        )
    started = time.monotonic()
    deadline = started + timeout
    try:
        con = open_readonly(path)
    except sqlite3.Error as exc:
        raise SemanticError(
            "execution_error", f"cannot open {path} read-only: {exc}", {"path": str(path)}
        ) from None
    con.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        cursor = con.execute(sql)
        rows: list[list[Any]] = []
        total = 0
        for row in cursor:
            total += 1
            if len(rows) < max_rows:
                rows.append([_json_value(v) for v in row])
    except sqlite3.Error as exc:
        if time.monotonic() > deadline:
            raise SemanticError(
                "execution_timeout",
                f"query on {path} took longer than {timeout:g}s and was interrupted",
                {"path": str(path), "timeoutSeconds": timeout},
            ) from None
        raise SemanticError(
            "execution_error",
            f"SQLite refused the query on {path}: {exc}",
            {"path": str(path), "sql": sql},
        ) from None
    finally:
        con.close()
    elapsed = (time.monotonic() - started) * 1000
    return Result(rows, total, total > len(rows), round(elapsed, 3))


def execute(conn: Connection, sql: str, max_rows: int, timeout: float) -> Result:
    """Run ``sql`` on ``conn`` if ktx has an executor for its driver."""
    if conn.driver != "sqlite" or conn.path is None:
        raise SemanticError(
            "no_executor",
            f"no executor for driver {conn.driver} (connection {conn.id!r}); ktx executes "
            "SQLite only: drop --execute to get the compiled SQL",
            {"driver": conn.driver, "connectionId": conn.id},
        )
    return run_sqlite(conn.path, sql, max_rows=max_rows, timeout=timeout)
