"""Project loading and validation: ``ktx.yaml``, connections and source files.

Layout (pinned)::

    <root>/ktx.yaml                                  connections
    <root>/semantic-layer/<connection-id>/<source>.yaml   one source per file

Loading never stops at the first problem: every problem becomes an :class:`~.errors.Issue`
(file, key, line, message) and the sources that are sound are still returned, so
``semantic.validate`` reports everything at once. Expressions are parsed with sqlglot in the
connection's dialect and every column reference is resolved here, at load time, into the SQL
the compiler splices in (source alias = source name).
"""

from __future__ import annotations

import difflib
import re
import threading
from pathlib import Path
from typing import Any

from semantic_layer.errors import Issue, Record, SemanticError

PROJECT_FILE = "ktx.yaml"
SOURCES_DIR = "semantic-layer"

#: driver -> sqlglot dialect.
DRIVERS: dict[str, str] = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "duckdb": "duckdb",
    "bigquery": "bigquery",
    "snowflake": "snowflake",
    "mysql": "mysql",
    "tsql": "tsql",
    "clickhouse": "clickhouse",
    "redshift": "redshift",
    "databricks": "databricks",
}
COLUMN_TYPES = ("string", "number", "time", "boolean")
RELATIONSHIPS = ("many_to_one", "one_to_many", "one_to_one")
INVERSE = {"many_to_one": "one_to_many", "one_to_many": "many_to_one", "one_to_one": "one_to_one"}
SOURCE_KEYS = ("name", "table", "sql", "grain", "columns", "joins", "measures", "segments")
SOURCE_KEYS_OPTIONAL = ("description",)
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONNECTION_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


class Connection(Record):
    """A warehouse connection from ``ktx.yaml``.

    ``path`` is the absolute database file (sqlite, duckdb). ``settings`` holds the server
    keys of postgres/mysql as written (``host``, ``port``, ``database``, ``user``,
    ``password_env``, ``sslmode`` or ``dsn``); a password is never among them, only the name
    of the environment variable that holds it.
    """

    __slots__ = ("id", "driver", "dialect", "path", "settings")

    def __init__(
        self,
        id: str,
        driver: str,
        dialect: str,
        path: Path | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.driver = driver
        self.dialect = dialect
        self.path = path
        self.settings = settings or {}


class Column(Record):
    """A declared column; ``sql`` is its expression with alias = source name."""

    __slots__ = ("name", "type", "sql")

    def __init__(self, name: str, type: str, sql: Any = None) -> None:
        self.name = name
        self.type = type
        self.sql = sql


class Measure(Record):
    """An aggregate; ``sql`` already has the measure filter applied inside each aggregate."""

    __slots__ = ("name", "source", "sql")

    def __init__(self, name: str, source: str, sql: Any = None) -> None:
        self.name = name
        self.source = source
        self.sql = sql


class Segment(Record):
    """A named row condition over the source's own columns."""

    __slots__ = ("name", "source", "sql")

    def __init__(self, name: str, source: str, sql: Any = None) -> None:
        self.name = name
        self.source = source
        self.sql = sql


class Join(Record):
    """A join edge as declared (``source`` -> ``to``); ``on`` is resolved SQL."""

    __slots__ = ("source", "to", "relationship", "on", "key")

    def __init__(
        self, source: str, to: str, relationship: str, on: Any = None, key: str = ""
    ) -> None:
        self.source = source
        self.to = to
        self.relationship = relationship
        self.on = on
        self.key = key


class Source(Record):
    """One source file, resolved.

    ``lines`` maps key paths of the file to 1-based lines and ``paths`` each declared item,
    ``(kind, name)`` with kind column/measure/segment, to its key path such as
    ``("columns", 2)``: later checks (the database check of validate) report file:line too.
    """

    __slots__ = (
        "name",
        "connection",
        "file",
        "relation",
        "grain",
        "columns",
        "measures",
        "segments",
        "joins",
        "lines",
        "paths",
    )

    def __init__(self, name: str, connection: str, file: str, relation: Any = None) -> None:
        self.name = name
        self.connection = connection
        self.file = file
        self.relation = relation
        self.grain: list[str] = []
        self.columns: dict[str, Column] = {}
        self.measures: dict[str, Measure] = {}
        self.segments: dict[str, Segment] = {}
        self.joins: list[Join] = []
        self.lines: dict[tuple[Any, ...], int] = {}
        self.paths: dict[tuple[str, str], tuple[Any, ...]] = {}


class Project(Record):
    """A loaded project. ``sources[connection_id][source_name]``; ``lines`` maps key paths of
    ``ktx.yaml`` to 1-based lines."""

    __slots__ = ("root", "connections", "sources", "issues", "source_files", "lines")

    def __init__(
        self,
        root: Path,
        connections: dict[str, Connection],
        sources: dict[str, dict[str, Source]],
        issues: list[Issue],
        source_files: int = 0,
    ) -> None:
        self.root = root
        self.connections = connections
        self.sources = sources
        self.issues = issues
        self.source_files = source_files
        self.lines: dict[tuple[Any, ...], int] = {}

    def connection(self, connection_id: str | None) -> Connection:
        """The named connection, or the only one; raises unknown/ambiguous_connection."""
        if connection_id is None:
            if len(self.connections) == 1:
                return next(iter(self.connections.values()))
            if not self.connections:
                raise SemanticError(
                    "unknown_connection",
                    f"{self.root / PROJECT_FILE} declares no connections; add one under "
                    "`connections:`",
                )
            raise SemanticError(
                "ambiguous_connection",
                f"this project has {len(self.connections)} connections "
                f"({', '.join(sorted(self.connections))}); pick one with --connection-id",
                {"connections": sorted(self.connections)},
            )
        conn = self.connections.get(connection_id)
        if conn is None:
            close = difflib.get_close_matches(connection_id, list(self.connections), n=3)
            raise SemanticError(
                "unknown_connection",
                f"unknown connection {connection_id!r} in {self.root / PROJECT_FILE} "
                f"(known: {', '.join(sorted(self.connections)) or 'none'})",
                {
                    "connectionId": connection_id,
                    "known": sorted(self.connections),
                    "suggestions": close,
                },
            )
        return conn


def project_root_from_payload(payload: dict[str, Any]) -> Path:
    """``projectDir``: an absolute directory that holds ``ktx.yaml``.

    Finding the project (``--project-dir``, or the nearest ``ktx.yaml`` upwards from the
    current directory) is the CLI's job, done once in Rust (``ktx_runner::project``) before the
    runtime is touched; the ops receive its result and only check it.
    """
    project_dir = payload.get("projectDir")
    if project_dir is None:
        raise SemanticError(
            "invalid_payload", "payload needs 'projectDir'", {"field": "projectDir"}
        )
    if not isinstance(project_dir, str) or not Path(project_dir).is_absolute():
        raise SemanticError(
            "invalid_payload",
            "'projectDir' must be an absolute path (string)",
            {"field": "projectDir"},
        )
    root = Path(project_dir).resolve()
    if not (root / PROJECT_FILE).is_file():
        raise SemanticError(
            "project_not_found",
            f"no {PROJECT_FILE} in {root}; pass the directory that holds {PROJECT_FILE} "
            "(or run `ktx demo DIR` to create one)",
            {"projectDir": str(root)},
        )
    return root


class _FileContext:
    """Collects issues for one file, with line lookup."""

    def __init__(self, rel: str, lines: dict[tuple[Any, ...], int], issues: list[Issue]):
        self.rel = rel
        self.lines = lines
        self.issues = issues

    def add(self, path: tuple[Any, ...], message: str) -> None:
        self.issues.append(issue_at(self.rel, self.lines, path, message))


def issue_at(
    file: str, lines: dict[tuple[Any, ...], int], path: tuple[Any, ...], message: str
) -> Issue:
    """An :class:`Issue` at key ``path`` of ``file``, on the line of ``path`` or of its nearest
    enclosing key that ``lines`` knows."""
    from semantic_layer.yamlio import format_key

    line = None
    probe = path
    while line is None:
        line = lines.get(probe)
        if not probe:
            break
        probe = probe[:-1]
    return Issue(file, format_key(path), line, message)


def load_project(root: Path, *, load_sources: bool = True) -> Project:
    """Load ``root``: ``ktx.yaml`` and every connection's source files.

    ``load_sources=False`` reads ``ktx.yaml`` alone (to pick a connection cheaply).
    """
    from semantic_layer.yamlio import YamlError, load

    issues: list[Issue] = []
    connections: dict[str, Connection] = {}
    project = Project(root=root, connections=connections, sources={}, issues=issues)
    try:
        data, lines = load(root / PROJECT_FILE)
    except YamlError as exc:
        issues.append(Issue(PROJECT_FILE, "", exc.line, exc.message, syntax=True))
        return project
    except (OSError, UnicodeDecodeError) as exc:
        issues.append(Issue(PROJECT_FILE, "", None, f"cannot read: {exc}"))
        return project
    project.lines = lines
    ctx = _FileContext(PROJECT_FILE, lines, issues)
    _load_connections(root, data, ctx, connections)
    if load_sources:
        _load_sources(root, project, None)
    return project


def _load_sources(root: Path, project: Project, only_connection: str | None) -> None:
    """Source files of every connection, or of ``only_connection`` alone, into ``project``."""
    connections, issues = project.connections, project.issues
    layer = root / SOURCES_DIR
    if not layer.is_dir():
        return
    for entry in sorted(layer.iterdir()):
        rel = f"{SOURCES_DIR}/{entry.name}"
        if entry.is_file():
            if entry.suffix in (".yaml", ".yml"):
                issues.append(
                    Issue(rel, "", None, "source files go in semantic-layer/<connection-id>/")
                )
            continue
        if not entry.is_dir():
            continue
        if entry.name not in connections:
            if only_connection is None:
                issues.append(
                    Issue(
                        rel,
                        "",
                        None,
                        f"directory {entry.name!r} matches no connection in {PROJECT_FILE} "
                        f"(known: {', '.join(sorted(connections)) or 'none'})",
                    )
                )
            continue
        if only_connection is not None and entry.name != only_connection:
            continue
        _load_connection_sources(root, connections[entry.name], entry, project)


_CACHE: dict[tuple[Any, ...], Project] = {}
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()  # the daemon may serve requests from several threads


def _fingerprint(root: Path, only_connection: str | None) -> tuple[Any, ...]:
    """Stat data of every file a query load would read: equal fingerprints, equal projects."""

    def stat(path: Path) -> tuple[Any, ...]:
        try:
            st = path.stat()
        except OSError:
            return (path.name, None)
        return (path.name, st.st_mtime_ns, st.st_size, st.st_ino)

    parts: list[Any] = [str(root), only_connection, stat(root / PROJECT_FILE)]
    layer = root / SOURCES_DIR
    try:
        entries = sorted(layer.iterdir()) if layer.is_dir() else []
    except OSError:
        entries = []
    for entry in entries:
        parts.append(stat(entry))
        if entry.is_dir() and only_connection in (None, entry.name):
            try:
                parts.extend(stat(f) for f in sorted(entry.iterdir()))
            except OSError:
                parts.append((entry.name, "unreadable"))
    return tuple(parts)


def load_query_project(root: Path, connection_id: str | None) -> Project:
    """``ktx.yaml`` and the chosen connection's source files, each read once (the query path).

    The connection is ``connection_id``, or the only one: :meth:`Project.connection` raises
    unknown/ambiguous_connection. When ``ktx.yaml`` has issues no source is read. The result is
    reused while no file it read has changed (the daemon's hot path); loaded projects are never
    mutated by the compiler (it copies every expression it uses).
    """
    key = _fingerprint(root, connection_id)
    with _CACHE_LOCK:
        project = _CACHE.get(key)
    if project is None:
        project = load_project(root, load_sources=False)
        if not project.issues:
            _load_sources(root, project, project.connection(connection_id).id)
        with _CACHE_LOCK:
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = project
    return project


def _load_connections(
    root: Path, data: Any, ctx: _FileContext, connections: dict[str, Connection]
) -> None:
    if not isinstance(data, dict):
        ctx.add((), "ktx.yaml must be a mapping with a `connections:` key")
        return
    conns = data.get("connections")
    if not isinstance(conns, dict) or not conns:
        ctx.add(("connections",), "`connections` must be a non-empty mapping of id -> settings")
        return
    for conn_id, spec in conns.items():
        path = ("connections", conn_id)
        if not isinstance(conn_id, str) or not _CONNECTION_ID_RE.match(conn_id):
            ctx.add(path, f"connection id {conn_id!r} must match [A-Za-z0-9_][A-Za-z0-9_-]*")
            continue
        if not isinstance(spec, dict):
            ctx.add(path, "connection settings must be a mapping with `driver:`")
            continue
        driver = spec.get("driver")
        if driver not in DRIVERS:
            ctx.add(
                (*path, "driver"),
                f"unknown driver {driver!r}; use one of {', '.join(DRIVERS)}",
            )
            continue
        conn = Connection(id=conn_id, driver=driver, dialect=DRIVERS[driver])
        if driver == "sqlite":
            unknown = sorted(str(k) for k in spec if k not in ("driver", "path"))
            if unknown:
                ctx.add((*path, unknown[0]), "unknown key; a sqlite connection has driver, path")
                continue
            db_path = spec.get("path")
            if not isinstance(db_path, str) or not db_path:
                ctx.add((*path, "path"), "sqlite needs `path:` (relative to the project root)")
                continue
            conn.path = (root / db_path).resolve()
        elif driver == "duckdb":
            unknown = sorted(str(k) for k in spec if k not in ("driver", "path"))
            if unknown:
                ctx.add((*path, unknown[0]), "unknown key; a duckdb connection has driver, path")
                continue
            db_path = spec.get("path")
            if db_path is not None:
                if not isinstance(db_path, str) or not db_path:
                    ctx.add(
                        (*path, "path"),
                        "duckdb `path:` must name a file (relative to the project root)",
                    )
                    continue
                conn.path = (root / db_path).resolve()
        elif driver in SERVER_DRIVERS:
            settings = _server_settings(driver, spec, path, ctx)
            if settings is None:
                continue
            conn.settings = settings
        connections[conn_id] = conn


#: Drivers that talk to a server, and the keys their connection may have besides ``driver``.
SERVER_DRIVERS = ("postgres", "mysql")
SERVER_KEYS = ("host", "port", "database", "user", "password_env", "sslmode", "dsn")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def dsn_password(dsn: str) -> bool:
    """True when the connection string ``dsn`` carries a password (URL or key=value form)."""
    from urllib.parse import urlsplit

    if "://" in dsn:
        try:
            return urlsplit(dsn).password is not None or "password=" in dsn.lower()
        except ValueError:
            return False
    return re.search(r"(^|\s)password\s*=", dsn, re.IGNORECASE) is not None


def _server_settings(
    driver: str, spec: dict[Any, Any], path: tuple[Any, ...], ctx: _FileContext
) -> dict[str, Any] | None:
    """The checked server keys of a postgres/mysql connection, or None after adding issues.

    Every key is optional at load time (a project may only compile); the executor says what is
    missing when it has to connect."""
    if "password" in spec:
        ctx.add(
            (*path, "password"),
            "a literal password is not allowed in ktx.yaml; put it in an environment variable "
            "and write `password_env: NAME` instead",
        )
        return None
    unknown = sorted(str(k) for k in spec if k != "driver" and k not in SERVER_KEYS)
    if unknown:
        ctx.add(
            (*path, unknown[0]),
            f"unknown key; a {driver} connection has driver, {', '.join(SERVER_KEYS)}",
        )
        return None
    settings: dict[str, Any] = {}
    ok = True
    for key in SERVER_KEYS:
        if key not in spec:
            continue
        value = spec[key]
        if key == "port":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
                ctx.add((*path, key), "`port:` must be an integer from 1 to 65535")
                ok = False
                continue
        elif not isinstance(value, str) or not value:
            ctx.add((*path, key), f"`{key}:` must be a non-empty string")
            ok = False
            continue
        settings[key] = value
    if not ok:
        return None
    if "dsn" in settings:
        others = sorted(k for k in settings if k not in ("dsn", "password_env"))
        if others:
            ctx.add(
                (*path, others[0]),
                "use either `dsn:` or host/port/database/user/sslmode, not both",
            )
            return None
        if dsn_password(settings["dsn"]):
            ctx.add(
                (*path, "dsn"),
                "the `dsn:` holds a literal password; remove it from the dsn and write "
                "`password_env: NAME` (an environment variable that holds the password)",
            )
            return None
    env = settings.get("password_env")
    if env is not None and not _ENV_NAME_RE.match(env):
        ctx.add(
            (*path, "password_env"),
            f"`password_env:` must name an environment variable (e.g. KTX_PG_PASSWORD), "
            f"got {env!r}",
        )
        return None
    if driver == "mysql" and "sslmode" in settings:
        if settings["sslmode"] not in ("disable", "prefer", "require", "verify-ca", "verify-full"):
            ctx.add(
                (*path, "sslmode"),
                "`sslmode:` must be disable, prefer, require, verify-ca or verify-full",
            )
            return None
    return settings


def _load_connection_sources(
    root: Path, conn: Connection, directory: Path, project: Project
) -> None:
    from semantic_layer.yamlio import YamlError, load

    raw: list[tuple[Source, dict[str, Any], _FileContext]] = []
    by_name: dict[str, Source] = {}
    #: File stems of sources that failed to load: joins to them are not reported again.
    broken: set[str] = set()
    for file in sorted(directory.iterdir()):
        rel = f"{SOURCES_DIR}/{conn.id}/{file.name}"
        if file.is_dir():
            project.issues.append(
                Issue(rel, "", None, "nested directories are not read; move sources up")
            )
            continue
        if file.suffix == ".yml":
            project.issues.append(Issue(rel, "", None, "rename to .yaml (only .yaml is read)"))
            continue
        if file.suffix != ".yaml":
            continue
        project.source_files += 1
        try:
            data, lines = load(file)
        except YamlError as exc:
            project.issues.append(Issue(rel, "", exc.line, exc.message, syntax=True))
            broken.add(file.stem)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            project.issues.append(Issue(rel, "", None, f"cannot read: {exc}"))
            broken.add(file.stem)
            continue
        ctx = _FileContext(rel, lines, project.issues)
        source = _load_source_shape(conn, data, ctx)
        if source is None:
            broken.add(file.stem)
            continue
        source.lines = lines
        if source.name in by_name:
            ctx.add(
                ("name",),
                f"duplicate source name {source.name!r} (also in {by_name[source.name].file})",
            )
            continue
        by_name[source.name] = source
        raw.append((source, data, ctx))
    # Phases 2 and 3: columns of every source first, then expressions (joins look across).
    for source, data, ctx in raw:
        _resolve_columns(conn, source, data, ctx)
    for source, data, ctx in raw:
        _resolve_expressions(conn, source, data, ctx, by_name, broken)
    _check_join_pairs(by_name, {s.name: c for s, _, c in raw})
    project.sources[conn.id] = by_name


def _as_list(value: Any, ctx: _FileContext, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        ctx.add((key,), f"`{key}` must be a list")
        return []
    return value


def _load_source_shape(conn: Connection, data: Any, ctx: _FileContext) -> Source | None:
    """Names, types and structure; expressions come in phase 2."""
    if not isinstance(data, dict):
        ctx.add((), "a source file must be a mapping with name, table|sql, columns, measures")
        return None
    for key in data:
        if key not in SOURCE_KEYS and key not in SOURCE_KEYS_OPTIONAL:
            close = difflib.get_close_matches(str(key), SOURCE_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            ctx.add((key,), f"unknown key{hint} (known: {', '.join(SOURCE_KEYS)})")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        ctx.add(("name",), f"`name` must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got {name!r}")
        return None
    stem = ctx.rel.rsplit("/", 1)[-1].removesuffix(".yaml")
    if stem != name:
        ctx.add(
            ("name",),
            f"source {name!r} must be in {name}.yaml (one source per file, named after it); "
            "rename the file or the source",
        )
    source = Source(name=name, connection=conn.id, file=ctx.rel)
    has_table, has_sql = data.get("table") is not None, data.get("sql") is not None
    if has_table == has_sql:
        ctx.add(("table",), "give exactly one of `table:` or `sql:`")

    taken: dict[str, str] = {}

    def claim(kind: str, item_name: str, path: tuple[Any, ...]) -> bool:
        if item_name in taken:
            ctx.add(path, f"duplicate name {item_name!r} (already a {taken[item_name]} here)")
            return False
        taken[item_name] = kind
        return True

    for i, col in enumerate(_as_list(data.get("columns"), ctx, "columns")):
        path = ("columns", i)
        if not isinstance(col, dict):
            ctx.add(path, "a column is a mapping {name, type, expr?}")
            continue
        _unknown_keys(col, ("name", "type", "expr", "description"), ctx, path)
        cname, ctype = col.get("name"), col.get("type")
        if not isinstance(cname, str) or not _NAME_RE.match(cname):
            ctx.add((*path, "name"), f"column name must be an identifier, got {cname!r}")
            continue
        if ctype not in COLUMN_TYPES:
            ctx.add((*path, "type"), f"type {ctype!r} must be one of {', '.join(COLUMN_TYPES)}")
            continue
        if claim("column", cname, (*path, "name")):
            source.columns[cname] = Column(cname, ctype)
            source.paths[("column", cname)] = path
    if not source.columns:
        ctx.add(("columns",), "declare at least one column")

    grain = data.get("grain", [])
    if isinstance(grain, str):
        grain = [grain]
    if not isinstance(grain, list) or not all(isinstance(g, str) for g in grain):
        ctx.add(("grain",), "`grain` must be a list of column names")
    else:
        for g in grain:
            if g not in source.columns:
                ctx.add(("grain",), f"grain column {g!r} is not a declared column")
        source.grain = list(grain)

    for kind, key in (("measure", "measures"), ("segment", "segments")):
        for i, item in enumerate(_as_list(data.get(key), ctx, key)):
            path = (key, i)
            if not isinstance(item, dict):
                ctx.add(path, f"a {kind} is a mapping {{name, expr}}")
                continue
            allowed = ("name", "expr", "description") + (("filter",) if kind == "measure" else ())
            _unknown_keys(item, allowed, ctx, path)
            iname = item.get("name")
            if not isinstance(iname, str) or not _NAME_RE.match(iname):
                ctx.add((*path, "name"), f"{kind} name must be an identifier, got {iname!r}")
                continue
            if not claim(kind, iname, (*path, "name")):
                continue
            source.paths[(kind, iname)] = path
            if kind == "measure":
                source.measures[iname] = Measure(iname, name)
            else:
                source.segments[iname] = Segment(iname, name)

    _load_joins(source, data, ctx)
    return source


def _load_joins(source: Source, data: dict[str, Any], ctx: _FileContext) -> None:
    """The `joins:` list: target, relationship (the `on` condition comes in phase 3)."""
    name = source.name
    for i, join in enumerate(_as_list(data.get("joins"), ctx, "joins")):
        path = ("joins", i)
        if not isinstance(join, dict):
            ctx.add(path, "a join is a mapping {to, on, relationship}")
            continue
        if True in join and "on" not in join:  # YAML 1.1 reads a bare `on:` key as true
            join["on"] = join.pop(True)
        _unknown_keys(join, ("to", "on", "relationship"), ctx, path)
        to, rel = join.get("to"), join.get("relationship")
        if not isinstance(to, str) or not to:
            ctx.add((*path, "to"), "`to` must name a source of the same connection")
            continue
        if rel not in RELATIONSHIPS:
            ctx.add(
                (*path, "relationship"),
                f"relationship {rel!r} must be one of {', '.join(RELATIONSHIPS)}",
            )
            continue
        if to == name:
            ctx.add((*path, "to"), "a source cannot join itself")
            continue
        source.joins.append(Join(name, to, rel, key=f"joins[{i}]"))


def _unknown_keys(item: dict[Any, Any], allowed: tuple[str, ...], ctx: _FileContext, path) -> None:
    for key in item:
        if key not in allowed:
            ctx.add((*path, key), f"unknown key (allowed: {', '.join(allowed)})")


def _resolve_columns(
    conn: Connection, source: Source, data: dict[str, Any], ctx: _FileContext
) -> None:
    """Parse the relation and the column expressions of ``source`` (phase 2)."""
    from sqlglot import exp

    from semantic_layer import sqlexpr
    from semantic_layer.sqlexpr import ExprError

    dialect = conn.dialect
    alias = source.name

    # The relation: a table name or a SELECT.
    if data.get("table") is not None and data.get("sql") is None:
        import sqlglot
        from sqlglot.errors import ParseError, TokenError

        table = data["table"]
        try:
            if not isinstance(table, str):
                raise ParseError("not a string")
            rel = sqlglot.parse_one(table, into=exp.Table, read=dialect)
            if not isinstance(rel.this, exp.Identifier):  # e.g. a table function call
                raise ParseError("not a plain table name")
            for node in rel.walk():
                node.comments = None
            rel.set("alias", exp.TableAlias(this=sqlexpr.identifier(alias, dialect)))
            source.relation = rel
        except (ParseError, TokenError):
            ctx.add(
                ("table",),
                f"{table!r} is not a table name in {dialect} (write [schema.]table, or use "
                "`sql:` for a query)",
            )
    elif data.get("sql") is not None and data.get("table") is None:
        try:
            query = sqlexpr.parse_fragment(data["sql"], dialect)
            if not isinstance(query, exp.Query):
                raise ExprError(f"{data['sql']!r} must be a single SELECT query")
            source.relation = exp.Subquery(
                this=query, alias=exp.TableAlias(this=sqlexpr.identifier(alias, dialect))
            )
        except ExprError as exc:
            ctx.add(("sql",), str(exc))

    for i, col in enumerate(data.get("columns") or []):
        if not isinstance(col, dict) or col.get("name") not in source.columns:
            continue
        column = source.columns[col["name"]]
        if col.get("expr") is None:
            column.sql = exp.column(
                sqlexpr.identifier(column.name, dialect),
                table=sqlexpr.identifier(alias, dialect),
            )
            continue
        try:
            tree = sqlexpr.parse_fragment(col["expr"], dialect)
            sqlexpr.check_nodes(tree, col["expr"], aggregates=False)

            def physical(c: exp.Column, text: str = col["expr"]) -> exp.Expression:
                if c.args.get("db") or (c.table and c.table != alias):
                    raise ExprError(f"{text!r}: a column expr may only use columns of {alias}")
                return exp.column(c.this.copy(), table=sqlexpr.identifier(alias, dialect))

            column.sql = sqlexpr.wrap(sqlexpr.map_columns(tree, physical, copy=False))
        except ExprError as exc:
            ctx.add(("columns", i, "expr"), str(exc))


def _resolve_expressions(
    conn: Connection,
    source: Source,
    data: dict[str, Any],
    ctx: _FileContext,
    by_name: dict[str, Source],
    broken: set[str],
) -> None:
    """Parse measures, segments and joins once every column is resolved (phase 3)."""
    from sqlglot import exp

    from semantic_layer import sqlexpr
    from semantic_layer.sqlexpr import ExprError

    dialect = conn.dialect
    alias = source.name

    def own(text: str) -> Any:
        def resolve(c: exp.Column) -> exp.Expression:
            if c.args.get("db") or (c.table and c.table != alias):
                raise ExprError(
                    f"{text!r}: {c.sql()} is not a column of {alias} (only columns of {alias} "
                    "may appear here)"
                )
            return _column_sql(source, c.name, text)

        return resolve

    for i, item in enumerate(data.get("measures") or []):
        if not isinstance(item, dict) or item.get("name") not in source.measures:
            continue
        measure = source.measures[item["name"]]
        text = item.get("expr")
        try:
            tree = sqlexpr.parse_fragment(text, dialect)
            sqlexpr.check_nodes(tree, text, aggregates=True)
            sqlexpr.check_measure_shape(tree, text)
            _check_aggregate_types(source, tree, text)
            resolved = sqlexpr.map_columns(tree, own(text), copy=False)
        except ExprError as exc:
            ctx.add(("measures", i, "expr"), str(exc))
            continue
        ftext = item.get("filter")
        if ftext is not None:
            try:
                ftree = sqlexpr.parse_fragment(ftext, dialect)
                sqlexpr.check_nodes(ftree, ftext, aggregates=False)
                _check_condition(source, ftree, ftext)
                cond = sqlexpr.map_columns(ftree, own(ftext), copy=False)
            except ExprError as exc:
                ctx.add(("measures", i, "filter"), str(exc))
                continue
            resolved = _apply_measure_filter(resolved, cond)
        measure.sql = resolved

    for i, item in enumerate(data.get("segments") or []):
        if not isinstance(item, dict) or item.get("name") not in source.segments:
            continue
        text = item.get("expr")
        try:
            tree = sqlexpr.parse_fragment(text, dialect)
            sqlexpr.check_nodes(tree, text, aggregates=False)
            _check_condition(source, tree, text)
            source.segments[item["name"]].sql = sqlexpr.map_columns(tree, own(text), copy=False)
        except ExprError as exc:
            ctx.add(("segments", i, "expr"), str(exc))
    _resolve_joins(conn, source, data, ctx, by_name, broken)


def _resolve_joins(
    conn: Connection,
    source: Source,
    data: dict[str, Any],
    ctx: _FileContext,
    by_name: dict[str, Source],
    broken: set[str],
) -> None:
    """Resolve each join's `on` against its own and the target's columns (phase 3)."""
    from sqlglot import exp

    from semantic_layer import sqlexpr
    from semantic_layer.sqlexpr import ExprError

    dialect = conn.dialect
    alias = source.name

    for join in source.joins:
        idx = int(join.key[len("joins[") : -1])
        target = by_name.get(join.to)
        if target is None and join.to in broken:
            continue  # the target's own file already has an error
        if target is None:
            close = difflib.get_close_matches(join.to, list(by_name), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            ctx.add(
                ("joins", idx, "to"),
                f"join to unknown source {join.to!r} in connection {conn.id!r}{hint}",
            )
            continue
        text = (data.get("joins") or [])[idx].get("on")
        seen: set[str] = set()

        def resolve_on(
            c: exp.Column, text: str = text, target: Source = target, seen: set[str] = seen
        ) -> exp.Expression:
            if c.args.get("db"):
                raise ExprError(f"{text!r}: use source.column, not {c.sql()}")
            if not c.table or c.table == alias:
                seen.add(alias)
                return _column_sql(source, c.name, text)
            if c.table == target.name:
                seen.add(target.name)
                return _column_sql(target, c.name, text)
            raise ExprError(
                f"{text!r}: {c.table!r} is neither {alias} nor the join target {target.name}"
            )

        try:
            tree = sqlexpr.parse_fragment(text, dialect)
            sqlexpr.check_nodes(tree, text, aggregates=False)
            if not sqlexpr.is_boolean_shape(tree):
                raise ExprError(f"{text!r} must be a condition such as a = b.id")
            join.on = sqlexpr.map_columns(tree, resolve_on, copy=False)
            if seen != {alias, target.name}:
                raise ExprError(
                    f"{text!r} must relate a column of {alias} to a column of {target.name} "
                    f"(qualify the target's columns: {target.name}.<column>)"
                )
        except ExprError as exc:
            join.on = None
            ctx.add(("joins", idx, "on"), str(exc))


def _column_sql(source: Source, name: str, text: str) -> Any:
    from semantic_layer.sqlexpr import ExprError

    column = source.columns.get(name)
    if column is None:
        if name in source.measures:
            raise ExprError(f"{text!r}: {name!r} is a measure of {source.name}, not a column")
        close = difflib.get_close_matches(name, list(source.columns), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ExprError(f"{text!r}: unknown column {name!r} in source {source.name}{hint}")
    if column.sql is None:
        raise ExprError(f"{text!r}: column {name!r} of {source.name} has an invalid expr")
    return column.sql.copy()


def _check_condition(source: Source, tree: Any, text: str) -> None:
    from sqlglot import exp

    from semantic_layer.sqlexpr import ExprError, is_boolean_shape

    if is_boolean_shape(tree):
        return
    inner = tree
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Column) and not inner.table:
        column = source.columns.get(inner.name)
        if column is not None and column.type == "boolean":
            return
    raise ExprError(f"{text!r} must be a condition (a comparison, AND/OR, IN, LIKE...)")


def _check_aggregate_types(source: Source, tree: Any, text: str) -> None:
    from sqlglot import exp

    from semantic_layer.sqlexpr import ExprError

    for agg in tree.find_all(exp.Sum, exp.Avg):
        arg = agg.this
        if isinstance(arg, exp.Column) and arg.name in source.columns:
            ctype = source.columns[arg.name].type
            if ctype in ("string", "time"):
                raise ExprError(
                    f"{text!r}: {agg.sql_name().lower()}() over {ctype} column {arg.name!r}"
                )


def _apply_measure_filter(tree: Any, cond: Any) -> Any:
    """Put ``cond`` inside every aggregate: ``sum(x)`` -> ``sum(CASE WHEN cond THEN x END)``.

    Rewrites ``tree`` (a fresh tree of the caller's) in place and returns it.
    """
    from sqlglot import exp

    def guarded(value: exp.Expression) -> exp.Expression:
        return exp.Case(ifs=[exp.If(this=cond.copy(), true=value)])

    def visit(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.AggFunc):
            return node
        arg = node.this
        if isinstance(arg, exp.Star):
            node.set("this", guarded(exp.Literal.number(1)))
        elif isinstance(arg, exp.Distinct):
            arg.set("expressions", [guarded(e) for e in arg.expressions])
        elif arg is not None:
            node.set("this", guarded(arg))
        return node

    return tree.transform(visit, copy=False)


def _check_join_pairs(by_name: dict[str, Source], ctxs: dict[str, _FileContext]) -> None:
    """A pair of sources may be joined once (in either direction): the graph stays simple."""
    seen: dict[frozenset[str], Join] = {}
    for name in sorted(by_name):
        for join in by_name[name].joins:
            if join.on is None or join.to not in by_name:
                continue
            pair = frozenset((join.source, join.to))
            first = seen.get(pair)
            if first is None:
                seen[pair] = join
                continue
            idx = int(join.key[len("joins[") : -1])
            ctxs[name].add(
                ("joins", idx),
                f"{first.source} and {first.to} are already joined by "
                f"{by_name[first.source].file} {first.key}; declare the join once",
            )
            join.on = None


def join_edges(sources: dict[str, Source]) -> dict[str, list[tuple[str, str, Any]]]:
    """Adjacency: source -> [(neighbour, relationship as traversed, on)], both directions."""
    edges: dict[str, list[tuple[str, str, Any]]] = {name: [] for name in sources}
    for source in sources.values():
        for join in source.joins:
            if join.on is None or join.to not in sources:
                continue
            edges[source.name].append((join.to, join.relationship, join.on))
            edges[join.to].append((source.name, INVERSE[join.relationship], join.on))
    for name in edges:
        edges[name].sort(key=lambda e: e[0])
    return edges
