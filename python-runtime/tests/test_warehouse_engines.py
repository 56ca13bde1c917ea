"""DuckDB, PostgreSQL and MariaDB executors against real engines (servers from tests/servers.py):
read-only enforced by the engine, timeouts, streaming, errors in user terms, the daemon's kept
connections and ``semantic.validate`` per engine."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import servers
from ktx_daemon import lifecycle
from ktx_daemon.abi import OpError
from semantic_layer import execute, ops, warehouse
from semantic_layer.errors import SemanticError
from semantic_layer.project import load_project

ENGINE_IDS = ("duck", "pg", "maria")
SRC = Path(__file__).resolve().parents[1] / "src"


def connection(project: Path, cid: str):
    project_ = load_project(project)
    assert not project_.issues, project_.issues
    return project_.connections[cid]


def checksum(project: Path, cid: str) -> list[Any]:
    """Row counts and sums of every demo table, read through the executor itself."""
    sql = (
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), "
        "(SELECT sum(amount) FROM orders), (SELECT count(*) FROM order_items), "
        "(SELECT sum(quantity * unit_price) FROM order_items)"
    )
    return execute.execute(connection(project, cid), sql, 10, 10.0).rows


# -- read-only -----------------------------------------------------------------------------

WRITES = [
    "DELETE FROM orders",
    "DROP TABLE orders",
    "UPDATE orders SET amount = 0",
    "INSERT INTO customers (id, name, country, created_at) VALUES (99, 'x', 'US', "
    "'2024-01-01 00:00:00')",
    "CREATE TABLE t (x int)",
    "CREATE TEMPORARY TABLE orders (x int)",
    "SELECT 1; DELETE FROM orders",
    "WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x",
    "TRUNCATE orders",
    "ALTER TABLE orders ADD COLUMN y int",
]
ENGINE_WRITES = {
    "duck": [
        "COPY orders TO '{tmp}/out.csv'",
        "ATTACH '{tmp}/other.duckdb' AS o",
        "SET enable_external_access = true",
        "CHECKPOINT",
    ],
    "pg": [
        "COPY orders TO '{tmp}/out.csv'",
        "SET default_transaction_read_only = off",
        "SELECT pg_read_file('/etc/hostname')",
    ],
    "maria": [
        "SELECT * FROM orders INTO OUTFILE '{tmp}/out.csv'",
        "LOCK TABLES orders WRITE",
        "SELECT GET_LOCK('ktx', 1) FROM orders FOR UPDATE",
    ],
}


@pytest.mark.parametrize("cid", ENGINE_IDS)
def test_our_check_refuses_writes_in_filters_and_sql_sources(
    warehouses: Path, tmp_path: Path, cid: str
) -> None:
    with pytest.raises(OpError) as info:
        ops.query(
            {
                "projectDir": str(warehouses),
                "connectionId": cid,
                "measures": ["orders.order_count"],
                "filters": ["orders.id = 1; DELETE FROM orders"],
                "execute": True,
            }
        )
    assert info.value.code == "invalid_filter"
    project = tmp_path / "p"
    shutil.copytree(warehouses, project)
    (project / f"semantic-layer/{cid}/evil.yaml").write_text(
        "name: evil\nsql: DELETE FROM orders RETURNING id\ncolumns: [{name: id, type: number}]\n"
        "measures: [{name: n, expr: 'count(*)'}]\n"
    )
    with pytest.raises(OpError) as info:
        ops.query(
            {
                "projectDir": str(project),
                "connectionId": cid,
                "measures": ["evil.n"],
                "execute": True,
            }
        )
    assert info.value.code == "invalid_project"
    assert "evil.yaml" in info.value.message


@pytest.mark.parametrize("cid", ENGINE_IDS)
def test_the_engine_refuses_writes_when_our_check_is_bypassed(
    warehouses: Path, tmp_path: Path, cid: str
) -> None:
    before = checksum(warehouses, cid)
    assert before[0][0] == 8 and before[0][1] == 40
    conn = connection(warehouses, cid)
    os.chmod(tmp_path, 0o777)  # a server running as nobody could write here: it must not
    for statement in WRITES + ENGINE_WRITES[cid]:
        sql = statement.format(tmp=tmp_path)
        # execute.execute is what ops.query calls after compiling: no filter check here.
        with pytest.raises(SemanticError) as info:
            execute.execute(conn, sql, 10, 10.0)
        assert info.value.code == "execution_error", (sql, info.value.message)
        assert "\n" not in info.value.message
        assert checksum(warehouses, cid) == before, sql
    assert list(tmp_path.iterdir()) == []


def test_postgres_never_commits(warehouses: Path, pg_server: servers.Server) -> None:
    """A side effect a READ ONLY transaction allows (a large object) is rolled back."""
    import psycopg

    pg = connection(warehouses, "pg")
    assert execute.execute(pg, "SELECT lo_create(0) > 0", 1, 5.0).rows == [[True]]
    with psycopg.connect(
        host=pg_server.host,
        port=pg_server.port,
        user="ktx",
        password=servers.PASSWORD,
        dbname=pg_server.database,
    ) as con:
        assert con.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)


def test_kept_connections_stay_read_only(warehouses: Path, monkeypatch) -> None:
    """A statement that flips the session's access mode on a kept connection does not make
    the next call writable."""
    monkeypatch.setattr(lifecycle, "serving", True)
    try:
        maria = connection(warehouses, "maria")
        execute.execute(maria, "SET SESSION TRANSACTION READ WRITE", 1, 5.0)  # runs: a SET
        with pytest.raises(SemanticError):
            execute.execute(maria, "DELETE FROM orders", 1, 5.0)
        pg = connection(warehouses, "pg")
        execute.execute(
            pg, "SELECT set_config('default_transaction_read_only', 'off', false)", 1, 5.0
        )
        rows = execute.execute(pg, "SELECT current_setting('transaction_read_only')", 1, 5.0).rows
        assert rows == [["on"]]
        assert warehouse.pooled_count() == 2
        assert checksum(warehouses, "maria")[0][1] == 40
    finally:
        warehouse.close_all()
    assert warehouse.pooled_count() == 0


# -- timeouts ------------------------------------------------------------------------------

SLOW = {
    "pg": "SELECT pg_sleep(30)",
    "maria": "SELECT SLEEP(30)",
    "duck": "SELECT sum(a.range * b.range) FROM range(1000000) a CROSS JOIN range(1000000) b",
}


@pytest.mark.parametrize("cid", ENGINE_IDS)
def test_timeout_holds_within_ten_percent(warehouses: Path, cid: str) -> None:
    conn = connection(warehouses, cid)
    timeout = 2.0
    started = time.monotonic()
    with pytest.raises(SemanticError) as info:
        execute.execute(conn, SLOW[cid], 10, timeout)
    elapsed = time.monotonic() - started
    assert info.value.code == "execution_timeout", info.value.message
    assert f"connection {cid!r}" in info.value.message
    assert timeout * 0.9 <= elapsed <= timeout * 1.1, elapsed
    # The connection is usable afterwards (the statement was really stopped).
    assert checksum(warehouses, cid)[0][1] == 40


@pytest.mark.parametrize("cid", ["pg", "maria"])
def test_the_server_enforces_the_statement_timeout_itself(warehouses: Path, cid: str) -> None:
    """Without our watchdog (its interrupt disabled) the engine's own timeout stops the query."""
    conn = connection(warehouses, cid)
    engine = warehouse.open_engine(conn)
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            for _ in engine.stream(SLOW[cid], 1.0):
                pass
        assert engine.classify(info.value) == "timeout"
        assert time.monotonic() - started < 1.5
    finally:
        engine.close()


# -- streaming -----------------------------------------------------------------------------

MANY = {
    "pg": "SELECT g, repeat('x', 100) FROM generate_series(1, 200000) AS g",
    "duck": "SELECT range, repeat('x', 100) FROM range(200000)",
    "maria": "SELECT a.id * 10000 + b.id * 100 + c.id, REPEAT('x', 100) FROM order_items a "
    "CROSS JOIN order_items b CROSS JOIN order_items c",
}


@pytest.mark.parametrize("cid", ENGINE_IDS)
def test_rows_are_capped_and_streamed(warehouses: Path, cid: str) -> None:
    conn = connection(warehouses, cid)
    tracemalloc.start()
    try:
        result = execute.execute(conn, MANY[cid], 5, 30.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.rows) == 5 and result.truncated
    assert result.total_rows >= 200000
    # All rows at once would be > 30 MB of Python objects; batches of FETCH_BATCH stay small.
    assert peak < 8 * 1024 * 1024, peak


# -- errors --------------------------------------------------------------------------------


def _project(tmp_path: Path, warehouses: Path, cid: str, yaml_entry: str) -> Path:
    root = tmp_path / "p"
    (root / "semantic-layer").mkdir(parents=True)
    shutil.copytree(warehouses / "semantic-layer" / cid, root / "semantic-layer" / cid)
    (root / "ktx.yaml").write_text("connections:\n" + yaml_entry)
    return root


def _query_error(project: Path) -> OpError:
    with pytest.raises(OpError) as info:
        ops.query({"projectDir": str(project), "measures": ["orders.revenue"], "execute": True})
    return info.value


def _server(request, cid: str) -> servers.Server:
    return request.getfixturevalue("pg_server" if cid == "pg" else "mariadb_server")


def _entry(cid: str, **over: Any) -> str:
    driver = "postgres" if cid == "pg" else "mysql"
    lines = [f"  {cid}:", f"    driver: {driver}"] + [f"    {k}: {v}" for k, v in over.items()]
    return "\n".join(lines) + "\n"


def _settings(server: servers.Server, **over: Any) -> dict[str, Any]:
    base = {
        "host": server.host,
        "port": server.port,
        "database": server.database,
        "user": server.user,
        "password_env": servers.PASSWORD_ENV,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _check_one_line(exc: OpError, cid: str, *needles: str) -> None:
    assert "\n" not in exc.message and "Traceback" not in exc.message, exc.message
    assert f"connection {cid!r}" in exc.message, exc.message
    for needle in needles:
        assert needle in exc.message, exc.message


@pytest.mark.parametrize("cid", ["pg", "maria"])
def test_server_down(request, warehouses: Path, tmp_path: Path, cid: str) -> None:
    server = _server(request, cid)
    port = servers.free_port()  # nothing listens there
    root = _project(tmp_path, warehouses, cid, _entry(cid, **_settings(server, port=port)))
    exc = _query_error(root)
    assert exc.code == "connection_error" and exc.details["reason"] == "unreachable"
    _check_one_line(exc, cid, f"127.0.0.1:{port}", "check that the server runs")


@pytest.mark.parametrize("cid", ["pg", "maria"])
def test_wrong_password(request, warehouses: Path, tmp_path: Path, cid: str, monkeypatch) -> None:
    server = _server(request, cid)
    monkeypatch.setenv("KTX_WRONG_PW", "not-the-password")
    root = _project(
        tmp_path, warehouses, cid, _entry(cid, **_settings(server, password_env="KTX_WRONG_PW"))
    )
    exc = _query_error(root)
    assert exc.code == "connection_error" and exc.details["reason"] == "auth"
    _check_one_line(exc, cid, "password_env")
    assert "not-the-password" not in exc.message
    monkeypatch.delenv("KTX_WRONG_PW")
    exc = _query_error(root)
    assert exc.code == "connection_error" and exc.details["reason"] == "config"
    _check_one_line(exc, cid, "export KTX_WRONG_PW=")


@pytest.mark.parametrize("cid", ["pg", "maria"])
def test_missing_database(request, warehouses: Path, tmp_path: Path, cid: str) -> None:
    server = _server(request, cid)
    root = _project(tmp_path, warehouses, cid, _entry(cid, **_settings(server, database="nope")))
    exc = _query_error(root)
    assert exc.code == "connection_error" and exc.details["reason"] == "database_missing"
    _check_one_line(exc, cid, "database:")


@pytest.mark.parametrize("cid", ENGINE_IDS)
def test_missing_table(warehouses: Path, tmp_path: Path, cid: str) -> None:
    root = tmp_path / "p"
    shutil.copytree(warehouses, root)
    path = root / f"semantic-layer/{cid}/orders.yaml"
    path.write_text(path.read_text().replace("table: orders", "table: orders_gone"))
    exc = _query_error_for(root, cid)
    assert exc.code == "execution_error"
    _check_one_line(exc, cid, "orders_gone", "ktx sl validate")


def _query_error_for(project: Path, cid: str) -> OpError:
    with pytest.raises(OpError) as info:
        ops.query(
            {
                "projectDir": str(project),
                "connectionId": cid,
                "measures": ["orders.revenue"],
                "execute": True,
            }
        )
    return info.value


def test_missing_duckdb_file(warehouses: Path, tmp_path: Path) -> None:
    root = _project(
        tmp_path, warehouses, "duck", "  duck:\n    driver: duckdb\n    path: no.duckdb\n"
    )
    exc = _query_error(root)
    assert exc.code == "connection_error" and exc.details["reason"] == "database_missing"
    _check_one_line(exc, "duck", "no.duckdb")
    assert not (root / "no.duckdb").exists()  # read-only open never creates it


# -- validate per engine -------------------------------------------------------------------


def test_validate_checks_every_engine(warehouses: Path) -> None:
    result = ops.validate({"projectDir": str(warehouses)})
    assert (result["ok"], result["errors"], result["warnings"]) == (True, [], [])
    assert {d["connectionId"]: d["checked"] for d in result["databases"]} == {
        "duck": True,
        "maria": True,
        "pg": True,
        "sqlite": True,
    }


def test_validate_finds_missing_tables_and_columns_per_engine(
    warehouses: Path, tmp_path: Path
) -> None:
    root = tmp_path / "p"
    shutil.copytree(warehouses, root)
    for cid in ("duck", "pg", "maria", "sqlite"):
        customers = root / f"semantic-layer/{cid}/customers.yaml"
        customers.write_text(customers.read_text().replace("{name: country,", "{name: countri,"))
        items = root / f"semantic-layer/{cid}/order_items.yaml"
        items.write_text(items.read_text().replace("table: order_items", "table: order_itemz"))
    result = ops.validate({"projectDir": str(root)})
    assert result["ok"] is False
    by_file = {(e["file"], e["key"]): e["message"] for e in result["errors"]}
    for cid in ("duck", "pg", "maria", "sqlite"):
        col = by_file[(f"semantic-layer/{cid}/customers.yaml", "columns[3].name")]
        assert "column 'countri' does not exist" in col and "did you mean country" in col, col
        table = by_file[(f"semantic-layer/{cid}/order_items.yaml", "table")]
        assert "table 'order_itemz' does not exist" in table, table
        assert "did you mean order_items" in table, table
    assert len(result["errors"]) == 8, result["errors"]


@pytest.mark.parametrize("cid", ["pg", "maria"])
def test_validate_reports_unreachable_and_bad_credentials(
    request, warehouses: Path, tmp_path: Path, cid: str
) -> None:
    server = _server(request, cid)
    port = servers.free_port()
    entries = _entry(cid, **_settings(server, port=port))
    other = "b" + cid
    entries += _entry(cid, **_settings(server, user="nobody_here")).replace(
        f"  {cid}:", f"  {other}:", 1
    )
    root = _project(tmp_path, warehouses, cid, entries)
    shutil.copytree(root / "semantic-layer" / cid, root / "semantic-layer" / other)
    result = ops.validate({"projectDir": str(root)})
    assert result["ok"] is False
    keys = {e["key"]: e["message"] for e in result["errors"]}
    assert f"connections.{cid}.host" in keys, keys
    assert "cannot reach" in keys[f"connections.{cid}.host"]
    assert f"connections.{other}.user" in keys, keys
    assert {d["connectionId"]: d["checked"] for d in result["databases"]} == {
        cid: False,
        other: False,
    }


def test_validate_says_when_a_connection_names_no_database(tmp_path: Path) -> None:
    (tmp_path / "ktx.yaml").write_text(
        "connections:\n  pg: {driver: postgres}\n  duck: {driver: duckdb}\n"
    )
    result = ops.validate({"projectDir": str(tmp_path)})
    assert result["ok"] is True
    assert [w["message"].startswith("could not check connection") for w in result["warnings"]] == [
        True,
        True,
    ]


# -- the daemon keeps one connection per connection id --------------------------------------


def _pg_backends(server: servers.Server) -> list[tuple[int, Any]]:
    import psycopg

    with psycopg.connect(
        host=server.host,
        port=server.port,
        user="postgres",
        password=servers.PASSWORD,
        dbname="postgres",
        autocommit=True,
    ) as con:
        return con.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = 'ktx' "
            "ORDER BY pid"
        ).fetchall()


def _terminate(server: servers.Server, pid: int) -> None:
    import psycopg

    with psycopg.connect(
        host=server.host,
        port=server.port,
        user="postgres",
        password=servers.PASSWORD,
        dbname="postgres",
        autocommit=True,
    ) as con:
        con.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _poll(predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_daemon_keeps_reopens_and_closes_its_connection(
    warehouses: Path, tmp_path: Path, pg_server: servers.Server
) -> None:
    token = "t" * 43
    (tmp_path / "token").write_text(token)
    os.chmod(tmp_path / "token", 0o600)
    state = tmp_path / "state.json"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ktx_daemon",
            "serve",
            "--state-file",
            str(state),
            "--token-file",
            str(tmp_path / "token"),
            "--idle-timeout",
            "120",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "daemon.log", "wb"),
    )
    try:
        port = _poll(lambda: state.exists() and json.loads(state.read_text())["port"], "state")

        def call(op: str, payload: dict[str, Any]) -> dict[str, Any]:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            body = json.dumps({"abi": 1, "op": op, "payload": payload})
            c.request(
                "POST",
                "/v1/call",
                body,
                {"Authorization": f"Bearer {token}", "Host": f"127.0.0.1:{port}"},
            )
            data = json.loads(c.getresponse().read())
            c.close()
            return data

        query = {
            "projectDir": str(warehouses),
            "connectionId": "pg",
            "measures": ["orders.revenue"],
            "dimensions": ["customers.segment"],
            "execute": True,
        }
        assert _pg_backends(pg_server) == []
        for _ in range(3):
            assert call("semantic.query", query)["ok"]
        [(pid, started)] = _pg_backends(pg_server)  # one connection, reused by all three
        _terminate(pg_server, pid)
        _poll(lambda: _pg_backends(pg_server) == [], "the backend to go")
        answer = call("semantic.query", query)  # the kept connection is dead: re-opened
        assert answer["ok"], answer
        [(pid2, _)] = _pg_backends(pg_server)
        assert pid2 != pid
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request(
            "POST",
            "/v1/shutdown",
            "",
            {"Authorization": f"Bearer {token}", "Host": f"127.0.0.1:{port}"},
        )
        c.getresponse().read()
        proc.wait(timeout=20)
        _poll(lambda: _pg_backends(pg_server) == [], "the daemon's connection to close")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_one_shot_calls_open_and_close(warehouses: Path, pg_server: servers.Server) -> None:
    assert lifecycle.serving is False
    result = ops.query(
        {
            "projectDir": str(warehouses),
            "connectionId": "pg",
            "measures": ["orders.order_count"],
            "execute": True,
        }
    )
    assert result["rows"] == [[40]]
    assert warehouse.pooled_count() == 0
    _poll(lambda: _pg_backends(pg_server) == [], "the one-shot connection to close")


@pytest.mark.parametrize("cid", ENGINE_IDS)
def test_a_gone_client_stops_the_query(warehouses: Path, cid: str) -> None:
    """In the daemon, a client that disconnects stops the statement (cancel / interrupt /
    KILL QUERY), well before its timeout."""
    from ktx_daemon import cancel

    conn = connection(warehouses, cid)
    gone_at = time.monotonic() + 0.5
    started = time.monotonic()
    with cancel.scope(lambda: time.monotonic() > gone_at):
        with pytest.raises(SemanticError) as info:
            execute.execute(conn, SLOW[cid], 10, 30.0)
    assert info.value.code == "execution_cancelled", info.value.message
    assert time.monotonic() - started < 5.0
    assert checksum(warehouses, cid)[0][1] == 40


def test_concurrent_calls_on_one_connection_id(warehouses: Path, monkeypatch) -> None:
    """Two calls at once on one kept connection: the second uses a temporary connection."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(lifecycle, "serving", True)
    conn = connection(warehouses, "pg")
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(execute.execute, conn, "SELECT pg_sleep(0.5), 1", 1, 10.0)
                for _ in range(2)
            ]
            results = [f.result() for f in futures]
        assert [r.rows[0][1] for r in results] == [1, 1]
        assert warehouse.pooled_count() == 1
    finally:
        warehouse.close_all()


def test_a_kept_duckdb_connection_lets_writers_in_soon(warehouses: Path, monkeypatch) -> None:
    """DuckDB locks the file even for a read-only reader: the daemon closes its idle one."""
    monkeypatch.setattr(lifecycle, "serving", True)
    conn = connection(warehouses, "duck")
    writer = [
        sys.executable,
        "-c",
        "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
        str(conn.path),
    ]
    try:
        execute.execute(conn, "SELECT 1", 1, 5.0)
        assert warehouse.pooled_count() == 1
        # While kept, a writer in another process is refused...
        assert subprocess.run(writer, capture_output=True).returncode != 0
        # ...and a few seconds after the last call it gets in.
        _poll(lambda: warehouse.pooled_count() == 0, "the idle DuckDB connection to close")
        assert subprocess.run(writer, capture_output=True).returncode == 0
    finally:
        warehouse.close_all()


@pytest.mark.parametrize("cid", ["pg", "maria"])
def test_a_dsn_connection_executes(request, warehouses: Path, tmp_path: Path, cid: str) -> None:
    server = _server(request, cid)
    scheme = "postgresql" if cid == "pg" else "mysql"
    dsn = f"{scheme}://{server.user}@{server.host}:{server.port}/{server.database}"
    entry = _entry(cid, dsn=f'"{dsn}"', password_env=servers.PASSWORD_ENV)
    root = _project(tmp_path, warehouses, cid, entry)
    result = ops.query(
        {"projectDir": str(root), "measures": ["orders.order_count"], "execute": True}
    )
    assert result["rows"] == [[40]]
    assert ops.validate({"projectDir": str(root)})["ok"] is True


def test_a_replaced_duckdb_file_is_reopened(warehouses: Path, tmp_path: Path, monkeypatch) -> None:
    from semantic_layer import demo

    monkeypatch.setattr(lifecycle, "serving", True)
    root = tmp_path / "p"
    shutil.copytree(warehouses, root)
    conn = connection(root, "duck")
    try:
        assert execute.execute(conn, "SELECT count(*) FROM orders", 1, 5.0).rows == [[40]]
        fresh = root / "fresh.duckdb"
        demo.build_duckdb(fresh)
        import duckdb

        con = duckdb.connect(str(fresh))
        con.execute("DELETE FROM orders WHERE id > 10")
        con.close()
        os.replace(fresh, conn.path)
        assert execute.execute(conn, "SELECT count(*) FROM orders", 1, 5.0).rows == [[10]]
    finally:
        warehouse.close_all()
