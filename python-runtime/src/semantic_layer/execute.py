"""Read-only execution: SQLite here; PostgreSQL, DuckDB and MySQL/MariaDB in
:mod:`semantic_layer.warehouse` (sharing this module's watchdog); other drivers are
``no_executor``.

Three independent locks keep a query from changing the database: the file is opened with a
``file:...?mode=ro`` URI (SQLite refuses every write), ``PRAGMA query_only=ON`` is set, and an
authorizer allows only reads, SELECT and scalar functions (not ``load_extension``). Python's
``sqlite3`` also runs a single statement per ``execute``.

Bounds on the work a query can do (a filter is user input, a measure's expression comes from
YAML):

* Time: a watchdog thread calls ``Connection.interrupt()`` at the deadline, or as soon as the
  caller is gone (:func:`ktx_daemon.cancel.current`: the daemon's client disconnected); SQLite
  honours it at the next loop step, so one slow row cannot overshoot the way an opcode-count
  progress handler does (a row with one ``randomblob(16 MiB)`` is a handful of opcodes but
  40 ms). A progress handler every :data:`PROGRESS_OPCODES` steps checks the same deadline as a
  second line. Neither can stop SQLite inside one function call, so the next bound keeps every
  single call short.
* Size of one value: ``SQLITE_LIMIT_LENGTH`` is :data:`MAX_VALUE_BYTES`, so no string or blob
  (``randomblob(1e9)``, ``printf('%.*c', ...)``, ``group_concat``) can grow past it: producing one
  takes milliseconds, not seconds, and a larger one fails at once with ``execution_error``.
* Memory: SQLite's heap is capped for the whole process (``PRAGMA hard_heap_limit``,
  :data:`HEAP_LIMIT_BYTES`, shared by all queries running at once; a soft limit makes SQLite
  give back cache memory first). Past it a query fails with ``execution_error``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semantic_layer.errors import Record, SemanticError
from semantic_layer.project import Connection

DEFAULT_MAX_ROWS = 1000
DEFAULT_TIMEOUT_SECONDS = 60.0

#: Largest string or blob a query may produce or read (``SQLITE_LIMIT_LENGTH``).
MAX_VALUE_BYTES = 16 * 1024 * 1024

#: SQLite heap of the whole process, all queries together (``PRAGMA hard_heap_limit``).
HEAP_LIMIT_BYTES = 256 * 1024 * 1024

#: Above this SQLite starts to give memory back (``PRAGMA soft_heap_limit``).
SOFT_HEAP_LIMIT_BYTES = 64 * 1024 * 1024

#: Virtual-machine steps between two deadline / cancellation checks.
PROGRESS_OPCODES = 1000

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
    """Open ``path`` so that no statement can change it, with the size and memory bounds."""
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        con.execute("PRAGMA query_only=ON")
        # Process-wide; the pragma only ever lowers the limits, so repeating it is harmless.
        con.execute(f"PRAGMA hard_heap_limit={HEAP_LIMIT_BYTES}")
        con.execute(f"PRAGMA soft_heap_limit={SOFT_HEAP_LIMIT_BYTES}")
        setlimit = getattr(con, "setlimit", None)  # Python >= 3.11
        if setlimit is not None:
            setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        con.set_authorizer(_authorizer)
    except BaseException:
        con.close()
        raise
    return con


class _Watch:
    """One running statement the watchdog looks after."""

    __slots__ = ("con", "deadline", "check", "reason", "done")

    def __init__(self, con: Any, deadline: float, check: Callable[[], bool] | None) -> None:
        # ``con``: a sqlite3 connection or a warehouse Engine; both have ``interrupt()``.
        self.con = con
        self.deadline = deadline
        self.check = check
        #: "timeout" or "cancelled" once the watchdog interrupted the statement.
        self.reason: str | None = None
        self.done = False


class _Watchdog:
    """One thread for all running queries: interrupts each at its deadline or cancellation."""

    #: Seconds between two looks at whether a query's caller is gone.
    CHECK_INTERVAL = 0.1

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._active: set[_Watch] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch) -> None:
        with self._cond:
            self._active.add(watch)
            heapq.heappush(self._heap, (watch.deadline, next(self._ids), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, watch: _Watch) -> None:
        """Forget ``watch``; after this the watchdog never touches its connection again."""
        with self._cond:
            watch.done = True
            self._active.discard(watch)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._active:
                    self._cond.wait(30.0)
                    if not self._active:
                        self._thread = None
                        return
                    continue
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    watch = heapq.heappop(self._heap)[2]
                    if not watch.done:
                        self._interrupt(watch, "timeout")
                for watch in [w for w in self._active if w.check is not None]:
                    if watch.check is not None and watch.check():
                        self._interrupt(watch, "cancelled")
                next_deadline = self._heap[0][0] if self._heap else now + 30.0
                wait = next_deadline - time.monotonic()
                if any(w.check is not None for w in self._active):
                    wait = min(wait, self.CHECK_INTERVAL)
                wait = min(wait, 30.0)  # a far deadline must not overflow the wait
                if wait > 0:
                    self._cond.wait(wait)

    def _interrupt(self, watch: _Watch, reason: str) -> None:
        # Called with the lock held: remove() cannot run, so the connection is still open.
        watch.reason = reason
        watch.done = True
        self._active.discard(watch)
        if not isinstance(watch.con, sqlite3.Connection):
            # A server round trip (cancel request, KILL QUERY) must not hold up the other
            # watches: run it beside the watchdog.
            threading.Thread(target=_interrupt_quietly, args=(watch.con,), daemon=True).start()
            return
        try:
            watch.con.interrupt()
        except sqlite3.Error:
            pass


def _interrupt_quietly(con: Any) -> None:
    try:
        con.interrupt()
    except Exception:  # the statement ended or the connection closed meanwhile
        pass


_WATCHDOG = _Watchdog()


def _mib(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB"


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
    from ktx_daemon import cancel

    started = time.monotonic()
    deadline = started + timeout
    try:
        con = open_readonly(path)
    except sqlite3.Error as exc:
        raise SemanticError(
            "execution_error", f"cannot open {path} read-only: {exc}", {"path": str(path)}
        ) from None

    watch = _Watch(con, deadline, cancel.current())

    def progress() -> int:
        # Non-zero interrupts the statement (SQLITE_INTERRUPT).
        return 1 if watch.reason is not None or time.monotonic() > deadline else 0

    con.set_progress_handler(progress, PROGRESS_OPCODES)
    _WATCHDOG.add(watch)
    try:
        cursor = con.execute(sql)
        rows: list[list[Any]] = []
        total = 0
        for row in cursor:
            total += 1
            if len(rows) < max_rows:
                rows.append([_json_value(v) for v in row])
    except (sqlite3.Error, MemoryError) as exc:
        # Python's sqlite3 turns SQLITE_NOMEM (the heap limit) into MemoryError.
        name = getattr(exc, "sqlite_errorname", "")
        if watch.reason == "timeout" or time.monotonic() > deadline:
            raise SemanticError(
                "execution_timeout",
                f"query on {path} took longer than {timeout:g}s and was interrupted",
                {"path": str(path), "timeoutSeconds": timeout},
            ) from None
        if watch.reason == "cancelled":
            raise SemanticError(
                "execution_cancelled",
                f"query on {path} was stopped: the client went away",
                {"path": str(path)},
            ) from None
        if name == "SQLITE_TOOBIG" or "too big" in str(exc):
            raise SemanticError(
                "execution_error",
                f"the query on {path} produced a string or blob larger than the "
                f"{_mib(MAX_VALUE_BYTES)} limit of one value; change the filter or measure "
                "that builds it",
                {"path": str(path), "sql": sql, "limitBytes": MAX_VALUE_BYTES},
            ) from None
        if name == "SQLITE_NOMEM" or isinstance(exc, MemoryError):
            raise SemanticError(
                "execution_error",
                f"the query on {path} needed more than the {_mib(HEAP_LIMIT_BYTES)} of memory "
                "SQLite may use (all running queries together); simplify it or retry when "
                "fewer queries run",
                {"path": str(path), "sql": sql, "limitBytes": HEAP_LIMIT_BYTES},
            ) from None
        raise SemanticError(
            "execution_error",
            f"SQLite refused the query on {path}: {exc}",
            {"path": str(path), "sql": sql},
        ) from None
    finally:
        _WATCHDOG.remove(watch)
        con.close()
    elapsed = (time.monotonic() - started) * 1000
    return Result(rows, total, total > len(rows), round(elapsed, 3))


def run_engine(conn: Connection, sql: str, max_rows: int, timeout: float) -> Result:
    """Run one SELECT on a PostgreSQL, DuckDB or MySQL connection; rows are streamed, the first
    ``max_rows`` kept and the rest counted. See :mod:`semantic_layer.warehouse`."""
    started = time.monotonic()
    # The deadline counts from the call, connecting included: the user waits for both.
    deadline = started + timeout
    for attempt in (1, 2):
        try:
            return _run_engine_once(conn, sql, max_rows, timeout, started, deadline)
        except _StaleConnection:
            # A kept connection the server dropped since the last call (restart, idle
            # timeout): drop it and run once more on a new one.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class _StaleConnection(Exception):
    """A kept connection failed before producing anything: retry on a fresh one."""


def _run_engine_once(
    conn: Connection, sql: str, max_rows: int, timeout: float, started: float, deadline: float
) -> Result:
    from ktx_daemon import cancel
    from semantic_layer import warehouse

    with warehouse.engine_for(conn) as engine:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SemanticError(
                "execution_timeout",
                f"connecting to {conn.id!r} ({engine.where()}) took longer than the {timeout:g}s "
                "timeout; raise --timeout",
                {"connectionId": conn.id, "driver": conn.driver, "timeoutSeconds": timeout},
            )
        watch = _Watch(engine, deadline, cancel.current())
        _WATCHDOG.add(watch)
        rows: list[list[Any]] = []
        total = 0
        produced = False
        try:
            for batch in engine.stream(sql, remaining):
                produced = True
                total += len(batch)
                room = max_rows - len(rows)
                if room > 0:
                    rows.extend([warehouse.json_value(v) for v in row] for row in batch[:room])
        except Exception as exc:
            kind = engine.classify(exc)
            if kind == "broken":
                engine.broken = True
                if engine.uses > 1 and not produced and watch.reason is None:
                    raise _StaleConnection() from None
            details = {"connectionId": conn.id, "driver": conn.driver}
            if watch.reason == "cancelled":
                raise SemanticError(
                    "execution_cancelled",
                    f"query on connection {conn.id!r} was stopped: the client went away",
                    details,
                ) from None
            if kind == "timeout" or watch.reason == "timeout" or time.monotonic() > deadline:
                raise SemanticError(
                    "execution_timeout",
                    f"query on connection {conn.id!r} ({engine.where()}) took longer than "
                    f"{timeout:g}s and was stopped; raise --timeout or narrow the query",
                    {**details, "timeoutSeconds": timeout},
                ) from None
            if kind == "broken":
                raise SemanticError(
                    "connection_error",
                    f"connection {conn.id!r}: lost the connection to {engine.name} at "
                    f"{engine.where()} during the query ({warehouse.one_line(exc)}); retry, "
                    "and check that the server runs",
                    {**details, "reason": "unreachable"},
                ) from None
            raise engine.refused(exc, sql) from None
        finally:
            _WATCHDOG.remove(watch)
    elapsed = (time.monotonic() - started) * 1000
    return Result(rows, total, total > len(rows), round(elapsed, 3))


def execute(conn: Connection, sql: str, max_rows: int, timeout: float) -> Result:
    """Run ``sql`` on ``conn`` if ktx has an executor for its driver."""
    if conn.driver == "sqlite" and conn.path is not None:
        return run_sqlite(conn.path, sql, max_rows=max_rows, timeout=timeout)
    from semantic_layer import warehouse

    if warehouse.supported(conn):
        return run_engine(conn, sql, max_rows=max_rows, timeout=timeout)
    raise SemanticError(
        "no_executor",
        f"no executor for driver {conn.driver} (connection {conn.id!r}); ktx executes "
        "SQLite, DuckDB, PostgreSQL and MySQL/MariaDB: drop --execute to get the compiled SQL",
        {"driver": conn.driver, "connectionId": conn.id},
    )
