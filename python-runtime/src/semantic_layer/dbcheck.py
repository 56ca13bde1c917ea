"""The database half of ``semantic.validate``: does what the YAML names exist in the database?

Loading a project checks the YAML against itself; ``--execute`` then meets the database. This
module closes the gap for the connections ktx can open: for a SQLite connection the file must
exist and open read-only (exactly as ``--execute`` opens it, :func:`execute.open_readonly`),
then every loaded source is prepared against it as ``SELECT ... LIMIT 0`` statements: the
relation (``table:`` or ``sql:``), each column, then (when every column is sound) each measure,
segment and join. SQLite resolves names when it prepares a statement, so a missing table,
column or function is found without reading a row; a progress handler bounds the whole check
of one connection.

Every finding is an :class:`~.errors.Issue` at the file, key and line that declared the thing
(the path of a connection in ``ktx.yaml``, ``columns[2].name`` in a source file...). What could
not be checked, and why (a driver ktx has no executor for, a database that cannot be opened or
is locked, a check that ran out of time), is a warning whose message starts with
``could not check``: validate never claims more than it verified.
"""

from __future__ import annotations

import difflib
import sqlite3
import time
from typing import Any

from sqlglot import exp

from semantic_layer.errors import Issue, Record
from semantic_layer.project import (
    PROJECT_FILE,
    Connection,
    Project,
    Source,
    issue_at,
)

#: Time allowed for the checks of one connection (they only prepare statements: normally ms).
CHECK_TIMEOUT_SECONDS = 10.0

#: SQLite errors that say nothing about the project, only about the database file or the
#: moment: the check could not run, the project may be fine.
_ENVIRONMENT_ERRORS = (
    "interrupted",
    "database is locked",
    "database table is locked",
    "unable to open",
    "disk i/o error",
    "out of memory",
    "malformed",
)


class DatabaseCheck(Record):
    """What validate did with one connection's database (the ``databases`` list entries).

    ``checked`` is True when the database was opened and its sources were checked against it
    (the errors then include whatever was missing); ``reason`` says why not otherwise.
    """

    __slots__ = ("connection_id", "driver", "path", "checked", "reason")

    def __init__(
        self,
        connection_id: str,
        driver: str,
        path: str | None,
        checked: bool,
        reason: str | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.driver = driver
        self.path = path
        self.checked = checked
        self.reason = reason

    def to_json(self) -> dict[str, Any]:
        """The entry as the ``semantic.validate`` response shows it."""
        return {
            "connectionId": self.connection_id,
            "driver": self.driver,
            "path": self.path,
            "checked": self.checked,
            "reason": self.reason,
        }


class _CouldNotCheck(Exception):
    """The database stopped answering usefully (locked, interrupted...): stop this connection."""


class _Database:
    """What the checks need from an open database, the same for every engine."""

    #: Engine name in messages ("SQLite refuses ...").
    name = "SQLite"

    def __init__(self, conn: Connection, where: str) -> None:
        self.conn = conn
        #: Where the data is, in messages: the file, or host:port/database.
        self.where = where

    def probe(self, sql: str) -> tuple[Exception | None, list[str]]:
        """(None, column names) when the engine accepts ``sql``, else (its error, []);
        raises :class:`_CouldNotCheck` when the failure is the database's, not the project's."""
        raise NotImplementedError

    def tables(self) -> list[str]:
        raise NotImplementedError

    def missing_table(self, exc: Exception) -> bool:
        raise NotImplementedError


class _SQLiteDatabase(_Database):
    def __init__(self, conn: Connection, con: sqlite3.Connection) -> None:
        super().__init__(conn, str(conn.path))
        self.con = con

    def probe(self, sql: str) -> tuple[Exception | None, list[str]]:
        try:
            cursor = self.con.execute(sql)
            cursor.fetchall()
            return None, [d[0] for d in cursor.description or []]
        except sqlite3.Error as exc:
            text = str(exc).lower()
            if any(marker in text for marker in _ENVIRONMENT_ERRORS):
                raise _CouldNotCheck(_environment_reason(self.conn, exc)) from None
            return exc, []

    def tables(self) -> list[str]:
        rows = self.con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
        )
        return [row[0] for row in rows]

    def missing_table(self, exc: Exception) -> bool:
        return "no such table" in str(exc)


class _EngineDatabase(_Database):
    """A DuckDB, PostgreSQL or MySQL connection of :mod:`semantic_layer.warehouse`."""

    def __init__(self, conn: Connection, engine: Any) -> None:
        super().__init__(conn, engine.where())
        self.engine = engine
        self.name = engine.name

    def probe(self, sql: str) -> tuple[Exception | None, list[str]]:
        try:
            return self.engine.probe(sql)
        except Exception as exc:  # timeout or a broken connection: the engine's, not ours
            kind = self.engine.classify(exc)
            if kind == "timeout":
                reason = f"the check took longer than {CHECK_TIMEOUT_SECONDS:g}s and was stopped"
            else:
                reason = f"the connection to {self.where} failed during the check ({exc})"
            raise _CouldNotCheck(reason) from None

    def tables(self) -> list[str]:
        try:
            return self.engine.tables()
        except Exception as exc:
            raise _CouldNotCheck(f"cannot list the tables of {self.where}: {exc}") from None

    def missing_table(self, exc: Exception) -> bool:
        return self.engine.classify(exc) == "missing_table"


def check_databases(project: Project) -> tuple[list[Issue], list[Issue], list[DatabaseCheck]]:
    """Check every connection of ``project`` against its database: (errors, warnings, checks)."""
    errors: list[Issue] = []
    warnings: list[Issue] = []
    checks: list[DatabaseCheck] = []
    for conn_id in sorted(project.connections):
        conn = project.connections[conn_id]
        checks.append(_check_connection(project, conn, errors, warnings))
    return errors, warnings, checks


def _sources_phrase(project: Project, conn: Connection) -> str:
    n = len(project.sources.get(conn.id, {}))
    return f"{n} source{'' if n == 1 else 's'}"


def _check_connection(
    project: Project, conn: Connection, errors: list[Issue], warnings: list[Issue]
) -> DatabaseCheck:
    where = ("connections", conn.id)

    def at_connection(sink: list[Issue], key: str, message: str) -> None:
        sink.append(issue_at(PROJECT_FILE, project.lines, (*where, key), message))

    from semantic_layer import warehouse

    if conn.driver in warehouse.ENGINES:
        return _check_engine(project, conn, errors, warnings, at_connection)
    if conn.driver != "sqlite" or conn.path is None:
        reason = (
            f"ktx has no executor for driver {conn.driver}; SQLite, DuckDB, PostgreSQL and "
            "MySQL/MariaDB databases are read"
        )
        at_connection(
            warnings,
            "driver",
            f"could not check connection {conn.id!r} against its database: {reason}, so the "
            f"tables and columns of its {_sources_phrase(project, conn)} were not checked",
        )
        return DatabaseCheck(conn.id, conn.driver, None, False, reason)

    path = conn.path
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as exc:  # e.g. a parent directory that cannot be searched
        return _not_checked(project, conn, warnings, f"cannot look at {path}: {exc}")
    if not exists:
        at_connection(
            errors,
            "path",
            f"SQLite database not found: {path} (`path:` is relative to the project root "
            f"{project.root}); --execute would fail",
        )
        return DatabaseCheck(conn.id, conn.driver, str(path), False, "database not found")
    if not is_file:
        at_connection(errors, "path", f"{path} is not a file; `path:` must name a SQLite database")
        return DatabaseCheck(conn.id, conn.driver, str(path), False, "not a file")

    from semantic_layer.execute import open_readonly

    try:
        con = open_readonly(path)
    except sqlite3.Error as exc:
        return _not_checked(project, conn, warnings, f"cannot open {path} read-only: {exc}")
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    con.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    db = _SQLiteDatabase(conn, con)
    try:
        try:
            tables = db.tables()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "encrypted" in str(exc):
                at_connection(
                    errors, "path", f"{path} is not a SQLite database ({exc}); --execute would fail"
                )
                return DatabaseCheck(conn.id, conn.driver, str(path), False, str(exc))
            raise _CouldNotCheck(_environment_reason(conn, exc)) from None
        _check_sources(project, db, tables, errors)
    except _CouldNotCheck as exc:
        return _not_checked(project, conn, warnings, str(exc))
    finally:
        con.close()
    return DatabaseCheck(conn.id, conn.driver, str(path), True)


def _check_sources(project: Project, db: _Database, tables: list[str], errors: list[Issue]) -> None:
    sources = project.sources.get(db.conn.id, {})
    sound: set[str] = set()
    for name in sorted(sources):
        if _check_source(db, sources[name], tables, errors):
            sound.add(name)
    for name in sorted(sound):
        _check_joins(db, sources[name], sources, sound, errors)


#: connection_error reasons -> the ktx.yaml key of the connection the error is reported at.
_REASON_KEYS = {"auth": "user", "database_missing": "database", "config": "driver"}


def _check_engine(
    project: Project, conn: Connection, errors: list[Issue], warnings: list[Issue], at_connection
) -> DatabaseCheck:
    """DuckDB, PostgreSQL, MySQL: connect as --execute does, then the same source checks."""
    from semantic_layer import warehouse
    from semantic_layer.errors import SemanticError

    label = None if conn.path is None else str(conn.path)
    if not conn.settings and conn.path is None:
        # A compile-only connection: nothing names a server or file to check against.
        need = "`path:`" if conn.driver == "duckdb" else "`host:`/`database:` or `dsn:`"
        reason = f"this {conn.driver} connection names no database ({need} would let ktx read it)"
        at_connection(
            warnings,
            "driver",
            f"could not check connection {conn.id!r} against its database: {reason}, so the "
            f"tables and columns of its {_sources_phrase(project, conn)} were not checked",
        )
        return DatabaseCheck(conn.id, conn.driver, None, False, reason)
    # feature_required propagates: the Rust runner installs the driver and retries.
    warehouse.require_driver(conn)
    try:
        with warehouse.engine_for(conn) as engine:
            db = _EngineDatabase(conn, engine)
            try:
                _check_sources(project, db, db.tables(), errors)
            except _CouldNotCheck as exc:
                return _not_checked(project, conn, warnings, str(exc))
            return DatabaseCheck(conn.id, conn.driver, label, True)
    except SemanticError as exc:
        if exc.code == "feature_required":
            raise
        reason = exc.details.get("reason", "unreachable")
        settings = conn.settings
        key = _REASON_KEYS.get(reason)
        if conn.driver == "duckdb":
            key = "path"
        elif "dsn" in settings:
            key = "dsn"
        elif key is None or (key not in settings and key != "driver"):
            key = "host" if "host" in settings else "driver"
        at_connection(errors, key, f"{exc.message}; --execute would fail")
        return DatabaseCheck(conn.id, conn.driver, label, False, reason)


def _not_checked(
    project: Project, conn: Connection, warnings: list[Issue], reason: str
) -> DatabaseCheck:
    warnings.append(
        issue_at(
            PROJECT_FILE,
            project.lines,
            ("connections", conn.id, "path" if conn.path is not None else "driver"),
            f"could not check the {_sources_phrase(project, conn)} of connection {conn.id!r} "
            f"against its database: {reason}",
        )
    )
    return DatabaseCheck(
        conn.id, conn.driver, None if conn.path is None else str(conn.path), False, reason
    )


def _probe(db: _Database, select: exp.Select) -> tuple[Exception | None, list[str]]:
    """Run ``select`` as a LIMIT 0 statement in the connection's dialect (see
    :meth:`_Database.probe`)."""
    return db.probe(select.limit(0, copy=False).sql(dialect=db.conn.dialect))


def _environment_reason(conn: Connection, exc: Exception) -> str:
    if "interrupted" in str(exc).lower():
        return f"the check took longer than {CHECK_TIMEOUT_SECONDS:g}s and was stopped"
    return f"cannot read {conn.path}: {exc}"


def _one_line(exc: Exception) -> str:
    # Driver messages can span lines (PostgreSQL's LINE 1: ... caret); an issue is one line.
    from semantic_layer.warehouse import one_line

    return one_line(exc)


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _listing(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _check_source(db: _Database, source: Source, tables: list[str], errors: list[Issue]) -> bool:
    """Relation and columns first, then measures and segments; True if nothing was missing."""
    if source.relation is None:
        return False  # its own error is reported already

    def add(path: tuple[Any, ...], message: str) -> None:
        errors.append(issue_at(source.file, source.lines, path, message))

    conn = db.conn
    is_table = isinstance(source.relation, exp.Table)
    at, engine = db.where, db.name
    rel_key = ("table",) if is_table else ("sql",)
    failure, physical = _probe(db, exp.select(exp.Star()).from_(source.relation.copy()))
    if failure is not None:
        if is_table and db.missing_table(failure):
            table = source.relation.copy()
            table.set("alias", None)
            name = table.sql(dialect=conn.dialect)
            add(
                rel_key,
                f"table {name!r} does not exist in {at}{_hint(table.name, tables)} "
                f"(tables there: {_listing(tables)})",
            )
        else:
            what = "this table" if is_table else "this query"
            add(rel_key, f"{engine} refuses {what} on {at}: {_one_line(failure)}")
        return False
    lowered = {p.lower() for p in physical}
    relation = f"table {source.relation.name}" if is_table else "the result of `sql:`"

    sound = True
    for cname, column in source.columns.items():
        path = source.paths.get(("column", cname), ("columns",))
        if column.sql is None:
            sound = False
            continue
        has_expr = (*path, "expr") in source.lines
        if not has_expr and cname.lower() not in lowered:
            add(
                (*path, "name"),
                f"column {cname!r} does not exist in {relation} of {at}{_hint(cname, physical)} "
                f"(columns there: {_listing(physical)}; a computed column needs `expr:`)",
            )
            sound = False
            continue
        failure, _ = _probe(db, exp.select(column.sql.copy()).from_(source.relation.copy()))
        if failure is not None:
            key = (*path, "expr") if has_expr else (*path, "name")
            add(key, f"{engine} refuses column {cname!r} on {at}: {_one_line(failure)}")
            sound = False
    if not sound:
        return False  # measures and segments would repeat the column's error

    for kind, items, key in (
        ("measure", source.measures, "expr"),
        ("segment", source.segments, "expr"),
    ):
        for iname, item in items.items():
            if item.sql is None:
                continue
            path = source.paths.get((kind, iname), (f"{kind}s",))
            base = exp.select(exp.Literal.number(1)).from_(source.relation.copy())
            if kind == "measure":
                select = exp.select(item.sql.copy()).from_(source.relation.copy())
            else:
                select = base.where(item.sql.copy(), copy=False)
            failure, _ = _probe(db, select)
            if failure is not None:
                add(
                    (*path, key), f"{engine} refuses {kind} {iname!r} on {at}: {_one_line(failure)}"
                )
                sound = False
    return sound


def _check_joins(
    db: _Database,
    source: Source,
    sources: dict[str, Source],
    sound: set[str],
    errors: list[Issue],
) -> None:
    """Each join of ``source`` whose target is sound too, as ``FROM a LEFT JOIN b ON ...``."""
    for join in source.joins:
        if join.on is None or join.to not in sound:
            continue
        select = exp.select(exp.Literal.number(1)).from_(source.relation.copy())
        select = select.join(sources[join.to].relation.copy(), on=join.on.copy(), join_type="LEFT")
        failure, _ = _probe(db, select)
        if failure is not None:
            idx = int(join.key[len("joins[") : -1])
            errors.append(
                issue_at(
                    source.file,
                    source.lines,
                    ("joins", idx, "on"),
                    f"{db.name} refuses the join to {join.to} on {db.where}: {_one_line(failure)}",
                )
            )
