"""``demo.scaffold`` with ``driver`` duckdb / postgres / mysql: the demo warehouse in that engine,
answering the demo's queries like the SQLite demo."""

from __future__ import annotations

from pathlib import Path

import pytest

import servers
from ktx_daemon.abi import OpError
from semantic_layer import ops

QUERY = {
    "measures": ["orders.revenue", "order_items.quantity_total"],
    "dimensions": ["customers.segment"],
    "execute": True,
}


def _rows(project: Path) -> list:
    return ops.query({"projectDir": str(project), **QUERY})["rows"]


def test_duckdb_demo(tmp_path: Path) -> None:
    servers.need_module("duckdb")
    sqlite = ops.scaffold({"dir": str(tmp_path / "sqlite")})
    duck = ops.scaffold({"dir": str(tmp_path / "duck"), "driver": "duckdb"})
    assert "warehouse.duckdb" in duck["created"] and "warehouse.db" not in duck["files"]
    assert "driver: duckdb" in (tmp_path / "duck/ktx.yaml").read_text()
    assert _rows(tmp_path / "duck") == _rows(Path(sqlite["dir"]))
    again = ops.scaffold({"dir": str(tmp_path / "duck"), "driver": "duckdb"})
    assert again["created"] == [] and "warehouse.duckdb" in again["kept"]


@pytest.mark.parametrize(
    ("driver", "fixture"), [("postgres", "pg_server"), ("mysql", "mariadb_server")]
)
def test_server_demo(request, tmp_path: Path, monkeypatch, driver: str, fixture: str) -> None:
    server: servers.Server = request.getfixturevalue(fixture)
    name = f"demo_{driver}_{tmp_path.name[-6:].replace('-', '_')}".lower()
    server.create_database(name)
    scheme = "postgresql" if driver == "postgres" else "mysql"
    dsn = f"{scheme}://{server.user}:{server.password}@{server.host}:{server.port}/{name}"
    env = "PGPASSWORD" if driver == "postgres" else "MYSQL_PWD"
    monkeypatch.delenv(env, raising=False)
    result = ops.scaffold({"dir": str(tmp_path / "d"), "driver": driver, "dsn": dsn})
    text = (tmp_path / "d/ktx.yaml").read_text()
    assert server.password not in text  # the DSN's password is never written
    assert f"password_env: {env}" in text and f"database: {name}" in text
    assert any(f"export {env}=" in note for note in result["notes"])
    ops_validate = ops.validate({"projectDir": str(tmp_path / "d")})
    assert ops_validate["ok"] is False  # the variable is not set yet: validate says so
    monkeypatch.setenv(env, server.password)
    assert ops.validate({"projectDir": str(tmp_path / "d")})["ok"] is True
    sqlite = ops.scaffold({"dir": str(tmp_path / "sqlite")})
    assert _rows(tmp_path / "d") == _rows(Path(sqlite["dir"]))
    # Again into the same database: the demo's tables are recognised and kept.
    again = ops.scaffold({"dir": str(tmp_path / "d2"), "driver": driver, "dsn": dsn})
    assert any("kept table orders" in n for n in again["notes"])


@pytest.mark.parametrize(
    ("driver", "fixture"), [("postgres", "pg_server"), ("mysql", "mariadb_server")]
)
def test_server_demo_never_touches_a_users_table(
    request, tmp_path: Path, driver: str, fixture: str
) -> None:
    server: servers.Server = request.getfixturevalue(fixture)
    name = f"own_{driver}_{tmp_path.name[-6:].replace('-', '_')}".lower()
    server.create_database(name)
    scheme = "postgresql" if driver == "postgres" else "mysql"
    dsn = f"{scheme}://{server.user}:{server.password}@{server.host}:{server.port}/{name}"
    if driver == "postgres":
        import psycopg

        with psycopg.connect(dsn) as con:
            con.execute("CREATE TABLE orders (id int)")
            con.execute("INSERT INTO orders VALUES (1)")
    else:
        import pymysql

        con = pymysql.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            password=server.password,
            database=name,
            autocommit=True,
        )
        with con.cursor() as cur:
            cur.execute("CREATE TABLE orders (id int)")
            cur.execute("INSERT INTO orders VALUES (1)")
        con.close()
    with pytest.raises(OpError) as info:
        ops.scaffold({"dir": str(tmp_path / "d"), "driver": driver, "dsn": dsn})
    assert info.value.code == "demo_db_not_empty"
    assert "orders" in info.value.message
