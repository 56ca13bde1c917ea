"""ABI v1 ops of the semantic layer: the contract the Rust CLI (``ktx sl``, ``ktx demo``) uses.

Registered in ``ktx_daemon.abi.OPS``. Every path in a response is absolute unless said
otherwise; unknown payload keys are ignored; camelCase throughout.

``semantic.query``
==================
Payload::

    projectDir   str             the absolute directory holding ktx.yaml. Exactly this
                                 directory: finding it (--project-dir, or upwards from the
                                 current directory) is the CLI's job (ktx_runner::project).
    connectionId str|null        optional when ktx.yaml has exactly one connection
    measures     [str]           >= 1, "source.measure"
    dimensions   [str]           "source.column" or "source.column:day|week|month|quarter|year"
    filters      [str]           SQL conditions over "source.column" / "source.measure"
                                 (top-level AND parts over measures become HAVING)
    segments     [str]           "source.segment"
    orderBy      [str]           "field[:asc|desc]", field = a dimension or measure exactly as
                                 written in the query; default: the dimensions, ascending
    limit        int >= 1        default 1000 (the SQL's LIMIT / TOP)
    execute      bool            default false
    maxRows      int >= 1        default 1000; rows returned when executing (totalRows still
                                 counts every row the query produced)
    timeoutSeconds number        default 60; a finite number with 0 < t <= 86400 (NaN,
                                 infinity, 0, negatives and booleans are invalid_payload).
                                 Execution is interrupted at most ~0.1 s after it, even in a
                                 slow row: see semantic_layer.execute for the bounds (one
                                 value <= 16 MiB, SQLite heap <= 256 MiB for the process).
                                 On DuckDB/PostgreSQL/MySQL the time counts from the call,
                                 connecting included, and the engine's own statement timeout
                                 is set too (semantic_layer.warehouse)

Lists may be omitted (empty). Result::

    connectionId str             the connection used
    dialect      str             sqlglot dialect: sqlite|postgres|duckdb|bigquery|snowflake|
                                 mysql|tsql|clickhouse|redshift|databricks
    sql          str             pretty-printed, in that dialect
    headers      [str]           dimensions as written, then measures as written
    rows         [[json]]        one array per row in header order; [] when compile-only
    totalRows    int|null        null when compile-only (not executed), else the row count
    plan         object:
      strategy        "single_source" | "per_source_ctes"
      measureSources  [{source, measures: [str], joins: [{from, to, relationship}],
                        fanOut: bool, strategy: "direct" | "distinct_grain_keys"}]
      where           [str]  row conditions (filters + segments) as SQL
      having          [str]  measure conditions as written (qualified names)
      orderBy         [{field (SQL alias), desc: bool}]
      limit           int
      execution       {mode: "compile_only"} or
                      {mode: "executed", maxRows, truncated: bool, elapsedMs: number}

Semantics worth knowing on the CLI side:

* Time dimension values are the first day of the period as "YYYY-MM-DD" (weeks start on
  Monday in every dialect). SQLite time columns must hold ISO-8601 text.
* Executed rows are JSON the same way on every engine: integral DECIMALs are ints, other
  DECIMALs floats, timestamps "YYYY-MM-DD HH:MM:SS", dates "YYYY-MM-DD", bytes hex. The
  cross-engine tests (tests/test_warehouse_equality.py) hold SQLite, DuckDB, PostgreSQL and
  MariaDB to the same rows.
* NULLs sort last in both directions, in every dialect (sqlglot emulates NULLS LAST where the
  dialect lacks it).
* A measure's own ``filter`` becomes ``agg(CASE WHEN filter THEN x END)``: it never filters
  other measures. Joins are LEFT JOINs from each measure's source, so a dimension value can be
  null (e.g. an order without customer).
* No fan-out: ``orders.revenue`` by ``customers.segment`` is the same number with or without
  ``order_items.quantity_total`` in the query (see :mod:`semantic_layer.compiler`). Measures of a
  source with no row for some dimension value are null when several measure sources combine.
* Across a ``one_to_many`` edge (as seen from a measure's source S), each row of S counts once
  per distinct combination of dimension values it reaches: ``orders.revenue`` by
  ``order_items.product`` counts an order once under every product it contains (the groups may
  add up to more than the total; no group counts a row twice). A filter or segment on the many
  side keeps the rows of S having at least one matching related row (EXISTS semantics):
  ``order_items.product = 'widget'`` means "orders containing a widget" and ``!=`` "orders
  containing something other than a widget"; it never multiplies S's rows.
* Filters and segments apply to every measure of the query (each measure source joins the
  sources they mention, even ones no dimension uses); a measure's ``filter`` applies to it only.
* Filters and segments are refused unless they are one condition over known ``source.column``
  names: no ``;``, subquery, ``x IN table``, aggregate, window or file/extension function.
* Names from YAML that are SQL reserved words (``order``, ``group``...) are quoted in the SQL.
* The query loads ktx.yaml and the chosen connection's source files only; any problem there
  fails the query with ``invalid_yaml``/``invalid_project``. A loaded project is reused (daemon)
  until one of those files changes (mtime, size or inode).

``semantic.validate``
=====================
Payload: ``{projectDir}`` as above. Result::

    ok          bool    true when errors is empty
    projectDir  str
    connections int     connections declared without error
    sources     int     source files found (semantic-layer/<connection-id>/*.yaml)
    errors      [{file: str (relative to projectDir, "/" separators), key: str (e.g.
                 "measures[1].expr"; "" for the whole file), line: int|null (1-based),
                 message: str}], sorted by file, then line
    warnings    [same shape as errors]: what could not be checked and why; every message
                starts with "could not check". Warnings do not make ``ok`` false.
    databases   [{connectionId, driver, path: str|null (absolute, sqlite/duckdb), checked: bool,
                  reason: str|null}], one per connection declared without error, by id:
                ``checked`` is true when its sources were checked against the database.

Besides the YAML, validate checks each connection's database where ktx can open it (see
:mod:`semantic_layer.dbcheck`): a SQLite file that is missing or not a database is an error at
the connection's ``path`` in ktx.yaml; then, read-only, every loaded source is prepared against
it as ``SELECT ... LIMIT 0`` (no row is read): a missing table is an error at ``table``, a
missing column at ``columns[i].name`` (``.expr`` when it has one), an expression SQLite refuses
(unknown function...) at the measure's, segment's or join's key. DuckDB, PostgreSQL and
MySQL/MariaDB are checked the same way after connecting exactly as ``--execute`` does: an
unreachable server is an error at the connection's ``host`` (``dsn``), a refused user or password
at ``user``, a missing database at ``database``, a missing DuckDB file at ``path``. A literal
password (``password:``, or one inside ``dsn:``) is an error with the fix ``password_env: NAME``.
A driver ktx has no executor for, a postgres/mysql/duckdb connection that names no database
(compile-only), a database that is locked, or a check over 10 s is a warning at the connection
instead. A driver whose package is not installed fails the op with ``feature_required``.

Only a missing ktx.yaml (``project_not_found``) or a bad payload is an ``ok: false`` ABI
response; a broken project is a successful validate with ``ok: false``.

``demo.scaffold``
=================
Payload::

    dir      str             absolute; created with parents if missing
    driver   str, optional   sqlite (default) | duckdb | postgres | mysql
    dsn      str             postgres/mysql only, required there: the database to load the demo
                             tables into (postgresql://user:pw@host:5432/db, or key=value;
                             mysql://user:pw@host:3306/db). Its password is used to load and
                             never written: ktx.yaml then says ``password_env: PGPASSWORD``
                             (postgres) / ``MYSQL_PWD`` (mysql)

Result::

    dir      str     absolute
    driver   str     the driver of the demo's connection
    files    [str]   every demo file, relative to dir: ktx.yaml,
                     semantic-layer/warehouse/{customers,orders,order_items}.yaml and the
                     warehouse file: warehouse.db (sqlite) or warehouse.duckdb (duckdb); none
                     for a server
    created  [str]   files written by this call
    kept     [str]   files that already existed (a re-run on an earlier demo keeps them)
    queries  [str]   three `ktx sl query ...` command lines; the last uses --execute
    notes    [str]   optional: what to do before querying (export the password variable),
                     demo tables found already loaded and kept

A non-empty directory whose ktx.yaml does not start with the demo marker line is refused. On a
server, an existing table named like a demo table is kept only when it holds the demo's rows;
otherwise the call fails with ``demo_db_not_empty`` and changes nothing in that table.

Error codes (``abi.OpError.code``; ``details`` in brackets)
=========================================================
Close names the user may have meant are always data, ``details.suggestions`` (a list of
strings, possibly empty), never text in the message: the CLI prints them as
``did you mean: a, b?`` on a line of its own (``tests/test_op_contract.py`` checks every error
raised in the code base).

invalid_payload       a payload field has the wrong type or is missing [field]
project_not_found     no ktx.yaml in projectDir [projectDir]
invalid_yaml          query only: a project file is not valid YAML; the message has file:line
                      [errors: the validate-shaped error list]
invalid_project       query only: the project (ktx.yaml or the connection's sources) has
                      errors; the message lists them [errors]
unknown_connection    connectionId not in ktx.yaml [connectionId, known, suggestions]
ambiguous_connection  connectionId omitted but several connections exist [connections]
unknown_measure       [name, suggestions (closest "source.measure" names), connectionId]
unknown_dimension     [name, suggestions, connectionId]
unknown_segment       [name, suggestions, connectionId]
invalid_query         well-typed but meaningless query: no measure, duplicate, bad or empty
                      granularity, granularity on a non-time column, orderBy not in the query
                      or with a direction other than asc/desc [orderBy, fields]
invalid_filter        a filter is not a single condition over known qualified columns (several
                      statements, a subquery, ``x IN table``, an unknown or unqualified
                      column, an aggregate, measures and columns mixed in one AND part), does
                      not parse (the message says what is missing, in SQL terms), or nests
                      deeper than 20 levels (``sqlexpr.MAX_NESTING``) [filter,
                      suggestions when the filter names an unknown or unqualified column]
ambiguous_join        several shortest join paths [from, to, paths]
no_join_path          sources not connected by joins [from, to]
missing_grain         a measure source is fanned out by a one_to_many join and declares no
                      grain to deduplicate on [source, file]
no_executor           execute on a driver without an executor (bigquery, snowflake...)
                      [driver, connectionId]
feature_required      query/validate/demo.scaffold need a driver whose runtime feature is not
                      installed; the Rust runner installs it and retries once
                      [feature: postgres|duckdb|mysql, connectionId, suggestions]
connection_error      cannot connect: unreachable host, refused user or password, missing
                      database or DuckDB file, unset password variable, incomplete settings;
                      one line naming the connection and the fix
                      [connectionId, driver, reason: unreachable|auth|database_missing|config]
execution_error       the database is missing or refused the query (a missing table...), or
                      the query hit the size or memory bound
                      [path | connectionId+driver, sql?, limitBytes?]
execution_timeout     execution exceeded timeoutSeconds [path | connectionId, timeoutSeconds]
execution_cancelled   daemon only: the client disconnected and the query was stopped (no one
                      reads this answer) [path | connectionId]
demo_dir_not_empty    demo.scaffold target is not empty and not an earlier demo [dir]
demo_db_not_empty     demo.scaffold: the server database has a non-demo table of a demo
                      table's name [table]
io_error              demo.scaffold could not write [dir]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ktx_daemon.abi import OpError
from semantic_layer.errors import SemanticError


def _op_error(exc: SemanticError) -> OpError:
    return OpError(exc.code, exc.message, exc.details)


def _str_list(payload: dict[str, Any], key: str) -> list[str]:
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OpError("invalid_payload", f"{key!r} must be a list of strings", {"field": key})
    return value


def _int(payload: dict[str, Any], key: str, default: int) -> int:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OpError("invalid_payload", f"{key!r} must be an integer >= 1", {"field": key})
    return value


#: Largest ``timeoutSeconds`` accepted (one day).
MAX_TIMEOUT_SECONDS = 86400.0


def _timeout(payload: dict[str, Any]) -> float:
    value = payload.get("timeoutSeconds")
    if value is None:
        return 60.0
    # `timeout <= 0` alone lets NaN through (every comparison with NaN is False): NaN then
    # never times out. int() of a huge integer would overflow float(): check it as a number.
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, int):
        ok = 0 < value <= MAX_TIMEOUT_SECONDS
    elif ok:
        ok = math.isfinite(value) and 0 < value <= MAX_TIMEOUT_SECONDS
    if not ok:
        raise OpError(
            "invalid_payload",
            f"'timeoutSeconds' must be a number of seconds greater than 0 and at most "
            f"{MAX_TIMEOUT_SECONDS:g}, got {repr(value)[:40]}",
            {"field": "timeoutSeconds"},
        )
    return float(value)


def query(payload: dict[str, Any]) -> dict[str, Any]:
    """``semantic.query``: compile (and optionally execute) a semantic query."""
    try:
        return _query(payload)
    except SemanticError as exc:
        raise _op_error(exc) from None
    except RecursionError:
        # A backstop: every user fragment is refused past sqlexpr.MAX_NESTING before sqlglot
        # recurses into it, and YAML past yamlio.MAX_DEPTH.
        raise OpError(
            "invalid_query",
            "the query or a project expression nests too deeply to compile; simplify the "
            "deepest filter or expression (at most 20 levels of parentheses, function calls, "
            "CASE and NOT)",
        ) from None


def _query(payload: dict[str, Any]) -> dict[str, Any]:
    from semantic_layer.compiler import QueryRequest, compile_query
    from semantic_layer.project import load_query_project, project_root_from_payload

    req = QueryRequest(
        measures=_str_list(payload, "measures"),
        dimensions=_str_list(payload, "dimensions"),
        filters=_str_list(payload, "filters"),
        segments=_str_list(payload, "segments"),
        order_by=_str_list(payload, "orderBy"),
        limit=_int(payload, "limit", 1000),
    )
    execute = payload.get("execute", False)
    if not isinstance(execute, bool):
        raise OpError("invalid_payload", "'execute' must be a boolean", {"field": "execute"})
    max_rows = _int(payload, "maxRows", 1000)
    timeout = _timeout(payload)
    connection_id = payload.get("connectionId")
    if connection_id is not None and not isinstance(connection_id, str):
        raise OpError(
            "invalid_payload", "'connectionId' must be a string", {"field": "connectionId"}
        )

    project = load_query_project(project_root_from_payload(payload), connection_id)
    if project.issues:
        _raise_issues(project)
    conn = project.connection(connection_id)

    compiled = compile_query(project, conn, req)
    result: dict[str, Any] = {
        "connectionId": conn.id,
        "dialect": compiled.dialect,
        "sql": compiled.sql,
        "headers": compiled.headers,
        "rows": [],
        "totalRows": None,
        "plan": compiled.plan,
    }
    if not execute:
        compiled.plan["execution"] = {"mode": "compile_only"}
        return result
    from semantic_layer.execute import execute as run

    outcome = run(conn, compiled.sql, max_rows=max_rows, timeout=timeout)
    result["rows"] = outcome.rows
    result["totalRows"] = outcome.total_rows
    compiled.plan["execution"] = {
        "mode": "executed",
        "maxRows": max_rows,
        "truncated": outcome.truncated,
        "elapsedMs": outcome.elapsed_ms,
    }
    return result


def _in_file_order(issues: list[Any]) -> list[Any]:
    """Issues by file, then line (loading finds them phase by phase, across files)."""
    return sorted(issues, key=lambda i: (i.file, i.line if i.line is not None else 0))


def _raise_issues(project: Any) -> None:
    issues = _in_file_order(project.issues)
    syntax = any(i.syntax for i in issues)
    shown = "\n".join(f"  {i.render()}" for i in issues[:20])
    more = f"\n  ... and {len(issues) - 20} more" if len(issues) > 20 else ""
    head = "invalid YAML in" if syntax else f"{len(issues)} problem(s) in"
    raise SemanticError(
        "invalid_yaml" if syntax else "invalid_project",
        f"{head} project {project.root}:\n{shown}{more}\nrun `ktx sl validate` for the full list",
        {"errors": [i.to_json() for i in issues], "projectDir": str(project.root)},
    )


def validate(payload: dict[str, Any]) -> dict[str, Any]:
    """``semantic.validate``: check every connection and source file, and each connection's
    database where ktx can open it."""
    from semantic_layer.dbcheck import check_databases
    from semantic_layer.project import load_project, project_root_from_payload

    try:
        root = project_root_from_payload(payload)
    except SemanticError as exc:
        raise _op_error(exc) from None
    project = load_project(root)
    try:
        db_errors, warnings, checks = check_databases(project)
    except SemanticError as exc:  # feature_required: the runner installs the driver, retries
        raise _op_error(exc) from None
    errors = project.issues + db_errors
    return {
        "ok": not errors,
        "projectDir": str(root),
        "connections": len(project.connections),
        "sources": project.source_files,
        "errors": [i.to_json() for i in _in_file_order(errors)],
        "warnings": [i.to_json() for i in _in_file_order(warnings)],
        "databases": [c.to_json() for c in checks],
    }


def scaffold(payload: dict[str, Any]) -> dict[str, Any]:
    """``demo.scaffold``: write the demo project into ``dir``."""
    from semantic_layer.demo import scaffold as build

    directory = payload.get("dir")
    if not isinstance(directory, str) or not directory:
        raise OpError("invalid_payload", "'dir' must be a non-empty path string", {"field": "dir"})
    driver = payload.get("driver") or "sqlite"
    dsn = payload.get("dsn")
    if not isinstance(driver, str):
        raise OpError("invalid_payload", "'driver' must be a string", {"field": "driver"})
    if dsn is not None and (not isinstance(dsn, str) or not dsn):
        raise OpError("invalid_payload", "'dsn' must be a non-empty string", {"field": "dsn"})
    try:
        return build(Path(directory), driver=driver, dsn=dsn)
    except SemanticError as exc:
        raise _op_error(exc) from None
