"""ktx.yaml keys of the duckdb, postgres and mysql drivers, secrets by reference only, and the
``feature_required`` answer when a driver's package is not installed (no server needed)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from ktx_daemon.abi import OpError
from semantic_layer import ops
from semantic_layer.project import dsn_password, load_project


def _yaml(root: Path, text: str) -> Path:
    (root / "ktx.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def _errors(root: Path) -> dict[str, str]:
    return {e["key"]: e["message"] for e in ops.validate({"projectDir": str(root)})["errors"]}


def test_server_keys_are_read(tmp_path: Path) -> None:
    _yaml(
        tmp_path,
        """
        connections:
          pg:
            driver: postgres
            host: db.internal
            port: 5433
            database: shop
            user: analyst
            password_env: SHOP_PG_PASSWORD
            sslmode: require
          my: {driver: mysql, dsn: "mysql://analyst@db.internal:3306/shop"}
          duck: {driver: duckdb, path: data/shop.duckdb}
        """,
    )
    project = load_project(tmp_path, load_sources=False)
    assert project.issues == []
    pg = project.connections["pg"]
    assert pg.settings == {
        "host": "db.internal",
        "port": 5433,
        "database": "shop",
        "user": "analyst",
        "password_env": "SHOP_PG_PASSWORD",
        "sslmode": "require",
    }
    assert project.connections["my"].settings == {"dsn": "mysql://analyst@db.internal:3306/shop"}
    assert project.connections["duck"].path == (tmp_path / "data/shop.duckdb").resolve()


@pytest.mark.parametrize("driver", ["postgres", "mysql"])
def test_a_literal_password_is_refused_with_the_fix(tmp_path: Path, driver: str) -> None:
    _yaml(
        tmp_path,
        f"""
        connections:
          db: {{driver: {driver}, host: h, database: d, user: u, password: hunter2}}
        """,
    )
    errors = _errors(tmp_path)
    message = errors["connections.db.password"]
    assert "literal password" in message and "password_env: NAME" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:hunter2@h/d",
        "mysql://u:hunter2@h:3306/d",
        "host=h dbname=d password=hunter2",
        "host=h PASSWORD = hunter2",
    ],
)
def test_a_password_inside_a_dsn_is_refused(tmp_path: Path, dsn: str) -> None:
    assert dsn_password(dsn)
    driver = "mysql" if dsn.startswith("mysql") else "postgres"
    _yaml(tmp_path, f'connections:\n  db: {{driver: {driver}, dsn: "{dsn}"}}\n')
    message = _errors(tmp_path)["connections.db.dsn"]
    assert "literal password" in message and "password_env: NAME" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("spec", "key", "needle"),
    [
        ("{driver: postgres, hostname: h}", "connections.db.hostname", "unknown key"),
        ("{driver: postgres, port: '5432'}", "connections.db.port", "integer"),
        ("{driver: postgres, port: 70000}", "connections.db.port", "integer"),
        ("{driver: mysql, dsn: 'mysql://u@h/d', host: h}", "connections.db.host", "either"),
        (
            "{driver: postgres, password_env: 'MY VAR'}",
            "connections.db.password_env",
            "environment",
        ),
        ("{driver: duckdb, host: h}", "connections.db.host", "unknown key"),
        ("{driver: mysql, sslmode: maybe}", "connections.db.sslmode", "sslmode"),
    ],
)
def test_bad_connection_keys(tmp_path: Path, spec: str, key: str, needle: str) -> None:
    _yaml(tmp_path, f"connections:\n  db: {spec}\n")
    errors = _errors(tmp_path)
    assert key in errors, errors
    assert needle in errors[key]


DEMO_SOURCE = "name: orders\ntable: orders\ncolumns: [{name: id, type: number}]\n" + (
    "measures: [{name: n, expr: 'count(*)'}]\n"
)


@pytest.mark.parametrize(
    ("driver", "module", "feature", "extra"),
    [
        ("postgres", "psycopg", "postgres", "host: 127.0.0.1, port: 1, database: d"),
        ("mysql", "pymysql", "mysql", "host: 127.0.0.1, port: 1, database: d"),
        ("duckdb", "duckdb", "duckdb", "path: w.duckdb"),
    ],
)
def test_a_missing_driver_package_asks_for_its_feature(
    tmp_path: Path, monkeypatch, driver: str, module: str, feature: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    _yaml(tmp_path, f"connections:\n  wh: {{driver: {driver}, {extra}}}\n")
    (tmp_path / "semantic-layer/wh").mkdir(parents=True)
    (tmp_path / "semantic-layer/wh/orders.yaml").write_text(DEMO_SOURCE)
    expected = {
        "feature": feature,
        "connectionId": "wh",
        "suggestions": [f"ktx runtime install --feature {feature}"],
    }
    for call in (
        lambda: ops.query({"projectDir": str(tmp_path), "measures": ["orders.n"], "execute": True}),
        lambda: ops.validate({"projectDir": str(tmp_path)}),
    ):
        with pytest.raises(OpError) as info:
            call()
        assert info.value.code == "feature_required"
        assert info.value.details == expected
        assert f"ktx runtime install --feature {feature}" in info.value.message
    # Compiling needs no driver.
    compiled = ops.query({"projectDir": str(tmp_path), "measures": ["orders.n"]})
    assert compiled["dialect"] == driver


def test_demo_scaffold_asks_for_the_duckdb_feature(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(OpError) as info:
        ops.scaffold({"dir": str(tmp_path / "d"), "driver": "duckdb"})
    assert info.value.code == "feature_required"
    assert info.value.details["feature"] == "duckdb"
    assert not (tmp_path / "d").exists()


def test_demo_scaffold_payload_errors(tmp_path: Path) -> None:
    for payload, field in (
        ({"driver": "oracle"}, "driver"),
        ({"driver": "postgres"}, "dsn"),
        ({"driver": "mysql", "dsn": "postgresql://h/d"}, "dsn"),
    ):
        with pytest.raises(OpError) as info:
            ops.scaffold({"dir": str(tmp_path / "d"), **payload})
        assert info.value.code == "invalid_payload"
        assert info.value.details["field"] == field


@pytest.mark.parametrize(
    ("driver", "function"),
    [
        ("postgres", "pg_advisory_lock(1)"),
        ("postgres", "lo_import('/etc/passwd')"),
        ("postgres", "set_config('default_transaction_read_only', 'off', false)"),
        ("postgres", "pg_read_file('/etc/passwd')"),
        ("mysql", "load_file('/etc/passwd')"),
        ("mysql", "get_lock('x', 1)"),
        ("duckdb", "getenv('HOME')"),
    ],
)
def test_side_effect_functions_are_refused_in_filters(
    tmp_path: Path, driver: str, function: str
) -> None:
    """Functions a read-only transaction does not stop (session state, locks, files)."""
    _yaml(tmp_path, f"connections:\n  wh: {{driver: {driver}}}\n")
    (tmp_path / "semantic-layer/wh").mkdir(parents=True)
    (tmp_path / "semantic-layer/wh/orders.yaml").write_text(DEMO_SOURCE)
    with pytest.raises(OpError) as info:
        ops.query(
            {
                "projectDir": str(tmp_path),
                "measures": ["orders.n"],
                "filters": [f"{function} IS NOT NULL AND orders.id > 0"],
            }
        )
    assert info.value.code == "invalid_filter"
    assert "is not allowed" in info.value.message
