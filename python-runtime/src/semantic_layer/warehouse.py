"""Executors for the warehouses beyond SQLite: PostgreSQL, DuckDB and MySQL/MariaDB.

Each driver is an optional runtime feature (``postgres``: psycopg 3, ``duckdb``: duckdb,
``mysql``: PyMySQL). When its package is not importable an op fails with ``feature_required``
``{feature, connectionId, suggestions}``; the Rust runner installs the feature and retries once.

Read-only is enforced by the engine, not only by the filter check of :mod:`semantic_layer.sqlexpr`:

* PostgreSQL: the session starts with ``default_transaction_read_only=on``, every query runs in a
  ``BEGIN READ ONLY`` transaction through a server-side cursor (``DECLARE`` takes exactly one
  SELECT, never a data-modifying WITH), with ``SET LOCAL statement_timeout``.
* DuckDB: ``read_only=True`` with ``enable_external_access=false`` (no ``COPY TO``, ``ATTACH``,
  extension install) and the configuration locked; exactly one statement per query.
* MySQL/MariaDB: the session is ``TRANSACTION READ ONLY``, every query runs in ``START
  TRANSACTION READ ONLY``, one statement per call (PyMySQL never enables multi-statements), with
  ``max_statement_time`` (MariaDB, seconds) or ``max_execution_time`` (MySQL, ms).

Time: besides the engine's own statement timeout, the watchdog of :mod:`semantic_layer.execute`
interrupts the query at the deadline or when the daemon's client is gone (PostgreSQL
``cancel``, DuckDB ``interrupt``, MySQL ``KILL QUERY`` from a second connection).

Rows are streamed in batches (``fetchmany`` on a server-side / unbuffered cursor): the first
``max_rows`` are kept, the rest only counted, so memory stays bounded whatever the result size.

Connections: in the daemon (:data:`ktx_daemon.lifecycle.serving`) one connection per
connection id is kept and reused, dropped after a failure that broke it (the next call opens a
new one; a kept connection the server dropped while idle is re-opened within the same call) and
closed when the daemon stops; a call that finds it busy uses a temporary connection. DuckDB's is
closed after :attr:`DuckDBEngine.idle_close` seconds without calls, because even a read-only
DuckDB connection keeps other processes from writing the file. One-shot calls open and close.

Errors are one line in user terms naming the connection id and the fix (``connection_error``
for unreachable host, wrong password, missing database or incomplete settings;
``execution_error`` for what the engine refuses, e.g. a missing table); never a traceback.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import os
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from semantic_layer.errors import SemanticError
from semantic_layer.project import Connection

#: driver -> (runtime feature, Python module that must import).
FEATURES: dict[str, tuple[str, str]] = {
    "postgres": ("postgres", "psycopg"),
    "duckdb": ("duckdb", "duckdb"),
    "mysql": ("mysql", "pymysql"),
}

#: Seconds to wait for a server to accept a connection.
CONNECT_TIMEOUT_SECONDS = 10

#: Seconds one validate check (a LIMIT 0 statement) may take.
CHECK_TIMEOUT_SECONDS = 10.0

#: Rows fetched per round trip while streaming.
FETCH_BATCH = 500


def json_value(value: Any) -> Any:
    """A database value as JSON: numbers stay numbers (integral decimals become int), times
    become ISO text like SQLite's, bytes become hex."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value() and value.as_tuple().exponent >= 0:
            return int(value)
        return float(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (_dt.timedelta, uuid.UUID)):
        return str(value)
    return str(value)


def require_driver(conn: Connection) -> Any:
    """Import and return the driver module of ``conn`` or raise ``feature_required``."""
    feature, module = FEATURES[conn.driver]
    try:
        return __import__(module)
    except ImportError:
        pass
    # A daemon that started before the feature was installed: look at site-packages again.
    import importlib

    importlib.invalidate_caches()
    try:
        return __import__(module)
    except ImportError:
        raise SemanticError(
            "feature_required",
            f"connection {conn.id!r} uses driver {conn.driver}, whose runtime feature "
            f"{feature!r} is not installed; run `ktx runtime install --feature {feature}`",
            {
                "feature": feature,
                "connectionId": conn.id,
                "suggestions": [f"ktx runtime install --feature {feature}"],
            },
        ) from None


def _connection_error(conn: Connection, reason: str, message: str) -> SemanticError:
    return SemanticError(
        "connection_error",
        message,
        {"connectionId": conn.id, "driver": conn.driver, "reason": reason},
    )


def _password(conn: Connection) -> str | None:
    name = conn.settings.get("password_env")
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise _connection_error(
            conn,
            "config",
            f"connection {conn.id!r}: environment variable {name} (its `password_env:`) is not "
            f"set; export {name}=<password> before running ktx",
        )
    return value


def one_line(exc: BaseException) -> str:
    """The driver's message alone, on one line: PostgreSQL's primary message (not the LINE 1 /
    caret context), MySQL's text without the error-number tuple."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        text = str(primary)
    elif len(exc.args) == 2 and isinstance(exc.args[0], int) and isinstance(exc.args[1], str):
        text = f"{exc.args[1]} (error {exc.args[0]})"
    else:
        text = str(exc)
    # DuckDB (like psql) appends "LINE n: <sql>" and a caret line: the SQL is in the details.
    text = re.split(r"\n\s*LINE \d+:", text)[0]
    text = " ".join(text.split())
    return text[:300] or type(exc).__name__


class Engine:
    """One open connection to a warehouse. Subclasses implement the driver calls."""

    #: Engine name as users know it.
    name = "database"

    #: Seconds a kept connection may stay idle in the daemon before it is closed (None: until
    #: the daemon stops or the server drops it).
    idle_close: float | None = None

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        #: Set when the connection can no longer be used (the pool drops it).
        self.broken = False
        self.lock = threading.Lock()
        #: Calls that used this connection so far (> 1: a kept connection, reused).
        self.uses = 0
        #: Bumped on every use of a kept connection (its idle timer compares it).
        self.stamp = 0
        #: Removed from the pool while in use: closed when the call ends.
        self.retired = False

    # -- what subclasses provide ------------------------------------------------------------
    def where(self) -> str:
        """Where the data lives, for messages (``host:port/db`` or the file)."""
        raise NotImplementedError

    def stream(self, sql: str, timeout: float) -> Iterator[list[tuple[Any, ...]]]:
        """Run one read-only SELECT; yield batches of rows."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Stop the running statement (called from the watchdog thread)."""

    def tables(self) -> list[str]:
        """Tables and views visible to the connection (for validate's hints)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection; never raises."""

    def classify(self, exc: BaseException) -> str:
        """``timeout``, ``missing_table``, ``broken`` (the connection is gone) or ``query``."""
        return "query"

    # -- shared -----------------------------------------------------------------------------
    def probe(self, sql: str) -> tuple[BaseException | None, list[str]]:
        """Run ``sql`` (a ``LIMIT 0`` query): (None, column names) or (the engine's error, [])."""
        try:
            return None, self.columns(sql)
        except Exception as exc:
            if self.classify(exc) in ("broken", "timeout"):
                self.broken = self.broken or self.classify(exc) == "broken"
                raise
            return exc, []

    def columns(self, sql: str) -> list[str]:
        """Column names of ``sql``'s result (rows are read and dropped)."""
        raise NotImplementedError

    def refused(self, exc: BaseException, sql: str) -> SemanticError:
        """The engine refused ``sql``: one line with the connection and the fix."""
        kind = self.classify(exc)
        fix = (
            "; run `ktx sl validate` to compare the YAML with the database"
            if kind == "missing_table"
            else ""
        )
        return SemanticError(
            "execution_error",
            f"{self.name} refused the query on connection {self.conn.id!r} ({self.where()}): "
            f"{one_line(exc)}{fix}",
            {"connectionId": self.conn.id, "driver": self.conn.driver, "sql": sql},
        )


# -- PostgreSQL ----------------------------------------------------------------------------


class PostgresEngine(Engine):
    name = "PostgreSQL"

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        psycopg = require_driver(conn)
        self._psycopg = psycopg
        s = conn.settings
        params: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": "ktx",
            # Engine-enforced read-only for every transaction of this session.
            "options": "-c default_transaction_read_only=on",
        }
        for key, name in (("host", "host"), ("port", "port"), ("database", "dbname")):
            if key in s:
                params[name] = s[key]
        for key in ("user", "sslmode"):
            if key in s:
                params[key] = s[key]
        password = _password(conn)
        if password is not None:
            params["password"] = password
        self._target = self._describe(s)
        try:
            self.con = psycopg.connect(s.get("dsn", ""), autocommit=False, **params)
        except psycopg.Error as exc:
            raise self._connect_error(exc) from None
        self.con.read_only = True  # psycopg opens each transaction with BEGIN READ ONLY

    @staticmethod
    def _describe(s: dict[str, Any]) -> str:
        if "dsn" in s:
            from psycopg.conninfo import conninfo_to_dict

            try:
                d = conninfo_to_dict(s["dsn"])
            except Exception:
                return "its dsn"
            s = {"host": d.get("host"), "port": d.get("port"), "database": d.get("dbname")}
        host = s.get("host") or os.environ.get("PGHOST") or "localhost"
        port = s.get("port") or os.environ.get("PGPORT") or 5432
        return f"{host}:{port}/{s.get('database') or os.environ.get('PGDATABASE') or ''}"

    def where(self) -> str:
        return self._target

    def _connect_error(self, exc: BaseException) -> SemanticError:
        text = one_line(exc)
        low = text.lower()
        cid, at = self.conn.id, self._target
        if "password authentication failed" in low or "no password supplied" in low:
            return _connection_error(
                self.conn,
                "auth",
                f"connection {cid!r}: PostgreSQL at {at} refused the user or password; check "
                "`user:` and the variable named by `password_env:`",
            )
        if "does not exist" in low and "database" in low:
            return _connection_error(
                self.conn,
                "database_missing",
                f"connection {cid!r}: the database does not exist on PostgreSQL at {at}; fix "
                "`database:` in ktx.yaml or create it (`createdb NAME`)",
            )
        if "role" in low and "does not exist" in low:
            return _connection_error(
                self.conn,
                "auth",
                f"connection {cid!r}: PostgreSQL at {at} has no such user; fix `user:` in ktx.yaml",
            )
        where = (
            "`host:`/`port:` in ktx.yaml"
            if self.conn.settings
            else "the connection in ktx.yaml: it names no server, so libpq's defaults (PGHOST, "
            "PGPORT...) were used; add `host:`, `database:` and `user:` or a `dsn:`"
        )
        return _connection_error(
            self.conn,
            "unreachable",
            f"connection {cid!r}: cannot reach PostgreSQL at {at} ({text}); check that the "
            f"server runs and {where}",
        )

    def stream(self, sql: str, timeout: float) -> Iterator[list[tuple[Any, ...]]]:
        con = self.con
        try:
            con.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
            # A server-side cursor: DECLARE takes one SELECT, rows come FETCH_BATCH at a time.
            with con.cursor(name="ktx_query", withhold=False) as cur:
                cur.itersize = FETCH_BATCH
                cur.execute(sql)
                self.description = [d.name for d in cur.description or []]
                while True:
                    batch = cur.fetchmany(FETCH_BATCH)
                    if not batch:
                        break
                    yield batch
        finally:
            self._end()

    def _end(self) -> None:
        try:
            if not self.con.closed:
                self.con.rollback()
        except Exception:
            self.broken = True

    def columns(self, sql: str) -> list[str]:
        try:
            with self.con.cursor() as cur:
                cur.execute(f"SET LOCAL statement_timeout = {int(CHECK_TIMEOUT_SECONDS * 1000)}")
                cur.execute(sql)
                cur.fetchall()
                return [d.name for d in cur.description or []]
        finally:
            self._end()

    def tables(self) -> list[str]:
        try:
            rows = self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ANY "
                "(current_schemas(false)) ORDER BY 1"
            ).fetchall()
            return [r[0] for r in rows]
        finally:
            self._end()

    def interrupt(self) -> None:
        try:
            self.con.cancel_safe(timeout=2.0)
        except AttributeError:  # psycopg < 3.2
            self.con.cancel()

    def classify(self, exc: BaseException) -> str:
        errors = self._psycopg.errors
        if isinstance(exc, errors.QueryCanceled):
            return "timeout"
        if isinstance(exc, errors.UndefinedTable):
            return "missing_table"
        if isinstance(exc, self._psycopg.OperationalError) or self.con.broken or self.con.closed:
            return "broken"
        return "query"

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:
            pass


# -- DuckDB --------------------------------------------------------------------------------


class DuckDBEngine(Engine):
    name = "DuckDB"

    #: Even a read-only DuckDB connection locks the file against writers in other processes
    #: (the user's loads): the daemon lets it go soon after the last call.
    idle_close = 2.0

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        duckdb = require_driver(conn)
        self._duckdb = duckdb
        path = conn.path
        if path is None:
            raise _connection_error(
                conn,
                "config",
                f"connection {conn.id!r}: a duckdb connection needs `path:` (the database file, "
                "relative to the project root) to execute",
            )
        if not path.is_file():
            raise _connection_error(
                conn,
                "database_missing",
                f"connection {conn.id!r}: DuckDB database not found: {path} (`path:` is relative "
                "to the project root; `ktx demo --driver duckdb` creates one)",
            )
        try:
            self.con = duckdb.connect(
                str(path),
                read_only=True,
                config={
                    # No file writes or reads outside the database, no ATTACH, no extensions.
                    "enable_external_access": False,
                    "autoinstall_known_extensions": False,
                    "autoload_known_extensions": False,
                },
            )
            self.con.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            raise _connection_error(
                conn,
                "unreachable",
                f"connection {conn.id!r}: cannot open DuckDB database {path} read-only "
                f"({one_line(exc)}); is another process writing it?",
            ) from None

    def where(self) -> str:
        return str(self.conn.path)

    def _one_statement(self, sql: str) -> None:
        # One SELECT only: not even a TEMP table, which would outlive the call on a kept
        # connection and could shadow a real table for later queries.
        try:
            statements = self.con.extract_statements(sql)
        except self._duckdb.Error:
            return  # the execute below reports the syntax error
        if len(statements) != 1:
            raise self._duckdb.InvalidInputException(
                f"expected exactly one SELECT statement, got {len(statements)}"
            )
        kind = statements[0].type
        if kind != self._duckdb.StatementType.SELECT:
            raise self._duckdb.InvalidInputException(
                f"only a SELECT may run, not a {getattr(kind, 'name', kind)} statement"
            )

    def stream(self, sql: str, timeout: float) -> Iterator[list[tuple[Any, ...]]]:
        self._one_statement(sql)
        cur = self.con.execute(sql)
        self.description = [d[0] for d in cur.description or []]
        while True:
            batch = cur.fetchmany(FETCH_BATCH)
            if not batch:
                break
            yield batch

    def columns(self, sql: str) -> list[str]:
        self._one_statement(sql)
        cur = self.con.execute(sql)
        cur.fetchall()
        return [d[0] for d in cur.description or []]

    def tables(self) -> list[str]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def interrupt(self) -> None:
        self.con.interrupt()

    def classify(self, exc: BaseException) -> str:
        text = str(exc).lower()
        if "interrupt" in text:
            return "timeout"
        if isinstance(exc, self._duckdb.CatalogException) and "table" in text:
            return "missing_table"
        if isinstance(exc, self._duckdb.ConnectionException):
            return "broken"
        return "query"

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:
            pass


# -- MySQL / MariaDB -----------------------------------------------------------------------


def _mysql_params(conn: Connection) -> dict[str, Any]:
    s = dict(conn.settings)
    if "dsn" in s:
        from urllib.parse import parse_qs, unquote, urlsplit

        try:
            url = urlsplit(s["dsn"])
            port = url.port
        except ValueError as exc:
            raise _connection_error(
                conn, "config", f"connection {conn.id!r}: `dsn:` is not a valid URL ({exc})"
            ) from None
        if url.scheme not in ("mysql", "mariadb"):
            raise _connection_error(
                conn,
                "config",
                f"connection {conn.id!r}: a mysql `dsn:` must look like "
                "mysql://user@host:3306/database",
            )
        s = {k: v for k, v in s.items() if k == "password_env"}
        if url.hostname:
            s["host"] = url.hostname
        if port:
            s["port"] = port
        if url.username:
            s["user"] = unquote(url.username)
        if url.path.strip("/"):
            s["database"] = unquote(url.path.strip("/"))
        mode = parse_qs(url.query).get("sslmode") or parse_qs(url.query).get("ssl-mode")
        if mode:
            s["sslmode"] = mode[0].lower()
    params: dict[str, Any] = {
        "host": s.get("host", "localhost"),
        "port": int(s.get("port", 3306)),
        "user": s.get("user") or os.environ.get("USER") or "root",
        "database": s.get("database"),
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "autocommit": True,
        "charset": "utf8mb4",
    }
    password = _password(conn)
    if password is not None:
        params["password"] = password
    mode = s.get("sslmode")
    if mode == "disable":
        params["ssl_disabled"] = True
    elif mode == "require":  # encrypted, certificate not checked (libpq's meaning)
        params["ssl"] = {"check_hostname": False}
    elif mode in ("verify-ca", "verify-full"):
        params["ssl_verify_cert"] = True
        params["ssl_verify_identity"] = mode == "verify-full"
    return params


class MySQLEngine(Engine):
    name = "MySQL"

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        pymysql = require_driver(conn)
        self._pymysql = pymysql
        self._params = _mysql_params(conn)
        p = self._params
        self._target = f"{p['host']}:{p['port']}/{p['database'] or ''}"
        if not p["database"]:
            raise _connection_error(
                conn,
                "config",
                f"connection {conn.id!r}: a mysql connection needs `database:` (or a dsn "
                "ending in /database) to execute",
            )
        try:
            self.con = pymysql.connect(**p)
            version = self.con.get_server_info()
            self.mariadb = "mariadb" in version.lower()
            self.name = "MariaDB" if self.mariadb else "MySQL"
            with self.con.cursor() as cur:
                # MariaDB < 11.1 names the access mode tx_read_only, MySQL 8 only
                # transaction_read_only.
                try:
                    cur.execute("SELECT @@session.transaction_read_only")
                    self._ro_var = "transaction_read_only"
                except pymysql.Error:
                    self._ro_var = "tx_read_only"
                # Engine-enforced read-only for every transaction of this session.
                cur.execute("SET SESSION TRANSACTION READ ONLY")
        except pymysql.Error as exc:
            raise self._connect_error(exc) from None
        self.thread_id = self.con.thread_id()

    def where(self) -> str:
        return self._target

    def _connect_error(self, exc: BaseException) -> SemanticError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        cid, at = self.conn.id, self._target
        if code == 1045:
            return _connection_error(
                self.conn,
                "auth",
                f"connection {cid!r}: {self.name} at {at} refused the user or password; check "
                "`user:` and the variable named by `password_env:`",
            )
        if code in (1049, 1044):
            # 1044: MySQL answers "access denied" for a database the user may not see, which
            # includes one that does not exist.
            maybe = "" if code == 1049 else f" (or user {self._params['user']!r} may not use it)"
            return _connection_error(
                self.conn,
                "database_missing",
                f"connection {cid!r}: the database does not exist on {self.name} at {at}{maybe}; "
                "fix `database:` in ktx.yaml or create it (CREATE DATABASE name)",
            )
        return _connection_error(
            self.conn,
            "unreachable",
            f"connection {cid!r}: cannot reach {self.name} at {at} ({one_line(exc)}); check "
            "that the server runs and `host:`/`port:` in ktx.yaml",
        )

    def _set_timeout(self, cur: Any, timeout: float) -> None:
        # The session's access mode is set again on every call: a statement of an earlier call
        # (``SET SESSION TRANSACTION READ WRITE`` runs even in a read-only transaction) must
        # not leave a kept connection writable.
        if self.mariadb:
            limit = f"max_statement_time = {max(timeout, 0.001):.3f}"
        else:
            limit = f"max_execution_time = {max(1, int(timeout * 1000))}"
        cur.execute(f"SET SESSION {self._ro_var} = 1, SESSION {limit}")

    def stream(self, sql: str, timeout: float) -> Iterator[list[tuple[Any, ...]]]:
        pymysql = self._pymysql
        with self.con.cursor() as cur:
            self._set_timeout(cur, timeout)
            cur.execute("START TRANSACTION READ ONLY")
        try:
            # Unbuffered: rows come from the socket as they are fetched.
            with self.con.cursor(pymysql.cursors.SSCursor) as cur:
                cur.execute(sql)
                self.description = [d[0] for d in cur.description or []]
                while True:
                    batch = cur.fetchmany(FETCH_BATCH)
                    if not batch:
                        break
                    yield list(batch)
        finally:
            self._end()

    def _end(self) -> None:
        try:
            with self.con.cursor() as cur:
                cur.execute("ROLLBACK")
        except Exception:
            self.broken = True

    def columns(self, sql: str) -> list[str]:
        try:
            with self.con.cursor() as cur:
                self._set_timeout(cur, CHECK_TIMEOUT_SECONDS)
                cur.execute("START TRANSACTION READ ONLY")
                cur.execute(sql)
                cur.fetchall()
                return [d[0] for d in cur.description or []]
        finally:
            self._end()

    def tables(self) -> list[str]:
        with self.con.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
                "ORDER BY 1"
            )
            return [r[0] for r in cur.fetchall()]

    def interrupt(self) -> None:
        # PyMySQL has no cancel: a second connection kills the running statement.
        params = dict(self._params, connect_timeout=2)
        killer = self._pymysql.connect(**params)
        try:
            with killer.cursor() as cur:
                cur.execute(f"KILL QUERY {int(self.thread_id)}")
        finally:
            killer.close()

    def classify(self, exc: BaseException) -> str:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if code in (1969, 3024, 1317):  # max_statement_time, max_execution_time, KILL QUERY
            return "timeout"
        if code == 1146:
            return "missing_table"
        if isinstance(exc, self._pymysql.OperationalError) and code in (2006, 2013, 2003, 0):
            return "broken"
        if isinstance(exc, (self._pymysql.InterfaceError,)):
            return "broken"
        return "query"

    def close(self) -> None:
        try:
            self.con.close()
        except Exception:
            pass


ENGINES: dict[str, type[Engine]] = {
    "postgres": PostgresEngine,
    "duckdb": DuckDBEngine,
    "mysql": MySQLEngine,
}


def supported(conn: Connection) -> bool:
    """True when ktx can execute on ``conn``'s driver (SQLite is :mod:`execute`'s own)."""
    return conn.driver in ENGINES


def open_engine(conn: Connection) -> Engine:
    """A new connection for ``conn`` (the caller closes it)."""
    return ENGINES[conn.driver](conn)


# -- the daemon's connections --------------------------------------------------------------

_POOL: dict[str, tuple[tuple[Any, ...], Engine]] = {}
_POOL_LOCK = threading.Lock()


def _pool_key(conn: Connection) -> tuple[Any, ...]:
    """What a kept connection was opened with: settings, password, and for a file its
    identity (a DuckDB file replaced since, e.g. by ``ktx demo``, is opened again)."""
    env = conn.settings.get("password_env")
    identity: tuple[int, ...] = ()
    if conn.path is not None:
        try:
            st = conn.path.stat()
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            identity = ()
    return (
        conn.driver,
        str(conn.path),
        identity,
        tuple(sorted((k, str(v)) for k, v in conn.settings.items())),
        os.environ.get(env) if env else None,
    )


def close_all() -> None:
    """Close every kept connection (the daemon's stop hook)."""
    with _POOL_LOCK:
        engines = [engine for _, engine in _POOL.values()]
        _POOL.clear()
    for engine in engines:
        engine.close()


def pooled_count() -> int:
    """How many connections the daemon keeps (for tests and diagnostics)."""
    with _POOL_LOCK:
        return len(_POOL)


@contextmanager
def engine_for(conn: Connection) -> Iterator[Engine]:
    """The connection to use for one call: the daemon's kept one (locked for the call) when
    free, else a temporary one closed afterwards."""
    from ktx_daemon import lifecycle

    if not lifecycle.serving:
        engine = open_engine(conn)
        engine.uses = 1
        try:
            yield engine
        finally:
            engine.close()
        return
    key = _pool_key(conn)
    pool_id = f"{conn.driver}:{conn.id}:{conn.path}"
    with _POOL_LOCK:
        entry = _POOL.get(pool_id)
        if entry is not None and (entry[0] != key or entry[1].broken):
            # ktx.yaml or the password changed, or the connection broke: retire it (closed
            # now if idle, else by the call using it).
            _POOL.pop(pool_id)
            _retire(entry[1])
            entry = None
        engine = entry[1] if entry is not None else None
        if engine is not None and engine.lock.acquire(blocking=False):
            engine.uses += 1
            engine.stamp += 1
        elif engine is not None:
            engine = None  # busy: this call gets a temporary connection
            keep = False
        else:
            keep = True
    if engine is not None:
        try:
            yield engine
        finally:
            _release(pool_id, engine)
        return
    fresh = open_engine(conn)
    fresh.uses = 1
    if keep:
        with _POOL_LOCK:
            keep = pool_id not in _POOL
            if keep:
                fresh.lock.acquire()
                _POOL[pool_id] = (key, fresh)
                lifecycle.on_stop(close_all)
    if keep:
        try:
            yield fresh
        finally:
            _release(pool_id, fresh)
        return
    try:
        yield fresh
    finally:
        fresh.close()


def _retire(engine: Engine) -> None:
    """Called with _POOL_LOCK held, after removing ``engine`` from the pool."""
    engine.retired = True
    if engine.lock.acquire(blocking=False):
        engine.lock.release()
        engine.close()


def _release(pool_id: str, engine: Engine) -> None:
    """End one call on a kept connection: drop it if it broke, or arm its idle close."""
    engine.lock.release()
    if engine.broken or engine.retired:
        _drop(pool_id, engine)
        return
    if engine.idle_close is not None:
        timer = threading.Timer(engine.idle_close, _close_if_idle, (pool_id, engine, engine.stamp))
        timer.daemon = True
        timer.start()


def _close_if_idle(pool_id: str, engine: Engine, stamp: int) -> None:
    with _POOL_LOCK:
        entry = _POOL.get(pool_id)
        if entry is None or entry[1] is not engine or engine.stamp != stamp:
            return  # used again since (a later timer decides), or gone already
        if not engine.lock.acquire(blocking=False):
            return
        _POOL.pop(pool_id)
    engine.lock.release()
    engine.close()


def _drop(pool_id: str, engine: Engine) -> None:
    with _POOL_LOCK:
        entry = _POOL.get(pool_id)
        if entry is not None and entry[1] is engine:
            _POOL.pop(pool_id)
    engine.close()
