"""``demo.scaffold``: a small, deterministic warehouse with its semantic layer.

The project is written by Python (no binary is committed): ``ktx.yaml``,
``semantic-layer/warehouse/{customers,orders,order_items}.yaml`` and the warehouse: SQLite
``warehouse.db`` (default), DuckDB ``warehouse.duckdb``, or the demo tables loaded into the
PostgreSQL / MySQL database a DSN names (then ``ktx.yaml`` names that server; a password from
the DSN is never written: the connection says ``password_env: PGPASSWORD`` / ``MYSQL_PWD``).
Every file is written to a temporary name and renamed, so an interrupted run leaves no
half-written file. The first line of ``ktx.yaml`` marks the directory as a demo: running the
scaffold again there recreates missing files and keeps existing ones (edits survive).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
from pathlib import Path
from typing import Any

from semantic_layer.errors import SemanticError

MARKER = "# ktx demo project (created by `ktx demo`)"

KTX_YAML = f"""{MARKER}
connections:
  warehouse:
    driver: sqlite
    path: warehouse.db
"""

CUSTOMERS_YAML = """name: customers
table: customers
grain: [id]
columns:
  - {name: id, type: number}
  - {name: name, type: string}
  - {name: segment, type: string}
  - {name: country, type: string}
  - {name: created_at, type: time}
measures:
  - {name: customer_count, expr: "count(*)"}
segments:
  - {name: enterprise, expr: "segment = 'enterprise'"}
"""

ORDERS_YAML = """name: orders
table: orders
grain: [id]
columns:
  - {name: id, type: number}
  - {name: customer_id, type: number}
  - {name: status, type: string}
  - {name: amount, type: number}
  - {name: created_at, type: time}
joins:
  - {to: customers, "on": "customer_id = customers.id", relationship: many_to_one}
measures:
  - {name: order_count, expr: "count(*)"}
  - {name: revenue, expr: "sum(amount)", filter: "status != 'refunded'"}
  - {name: average_order_value, expr: "avg(amount)"}
segments:
  - {name: large, expr: "amount >= 100"}
"""

ORDER_ITEMS_YAML = """name: order_items
table: order_items
grain: [id]
columns:
  - {name: id, type: number}
  - {name: order_id, type: number}
  - {name: product, type: string}
  - {name: quantity, type: number}
  - {name: unit_price, type: number}
  - {name: line_total, type: number, expr: "quantity * unit_price"}
joins:
  - {to: orders, "on": "order_id = orders.id", relationship: many_to_one}
measures:
  - {name: quantity_total, expr: "sum(quantity)"}
  - {name: item_revenue, expr: "sum(line_total)"}
"""

TEXT_FILES = {
    "ktx.yaml": KTX_YAML,
    "semantic-layer/warehouse/customers.yaml": CUSTOMERS_YAML,
    "semantic-layer/warehouse/orders.yaml": ORDERS_YAML,
    "semantic-layer/warehouse/order_items.yaml": ORDER_ITEMS_YAML,
}
DB_FILE = "warehouse.db"
FILES = [*TEXT_FILES, DB_FILE]

_CUSTOMERS = [
    (1, "Acme Corp", "enterprise", "US", "2023-11-02 09:15:00"),
    (2, "Globex", "enterprise", "DE", "2023-12-14 16:40:00"),
    (3, "Initech", "smb", "US", "2024-01-08 11:05:00"),
    (4, "Umbrella", "smb", "FR", "2024-02-20 08:30:00"),
    (5, "Hooli", "enterprise", "US", "2024-03-03 13:00:00"),
    (6, "Ada Lovelace", "consumer", "GB", "2024-03-28 19:45:00"),
    (7, "Grace Hopper", "consumer", "US", "2024-05-11 10:10:00"),
    (8, "Wonka", None, "GB", "2024-06-01 12:00:00"),
]
_PRODUCTS = [("widget", 12.5), ("gadget", 40.0), ("gizmo", 99.75), ("doohickey", 7.25)]
_STATUSES = ["completed", "completed", "shipped", "refunded", "completed", "pending"]


def _lcg(seed: int):
    state = seed
    while True:
        state = (state * 1103515245 + 12345) % 2**31
        yield state


def build_rows() -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The demo dataset: customers, orders, order_items (deterministic)."""
    rand = _lcg(20240101)
    orders: list[tuple] = []
    items: list[tuple] = []
    item_id = 1
    for order_id in range(1, 41):
        customer_id = next(rand) % 7 + 1  # customer 8 has no orders
        status = _STATUSES[next(rand) % len(_STATUSES)]
        month = next(rand) % 12 + 1
        day = next(rand) % 28 + 1
        hour = next(rand) % 24
        created = f"2024-{month:02d}-{day:02d} {hour:02d}:{next(rand) % 60:02d}:00"
        amount = 0.0
        for _ in range(next(rand) % 3 + 1):
            product, price = _PRODUCTS[next(rand) % len(_PRODUCTS)]
            quantity = next(rand) % 4 + 1
            items.append((item_id, order_id, product, quantity, price))
            amount += quantity * price
            item_id += 1
        orders.append((order_id, customer_id, status, amount, created))
    return list(_CUSTOMERS), orders, items


def build_database(path: Path) -> None:
    """Write the demo warehouse to ``path`` (replaced atomically)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    customers, orders, items = build_rows()
    con = sqlite3.connect(tmp)
    try:
        con.executescript(
            """
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, segment TEXT,
                                    country TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE orders (id INTEGER PRIMARY KEY,
                                 customer_id INTEGER NOT NULL REFERENCES customers(id),
                                 status TEXT NOT NULL, amount REAL NOT NULL,
                                 created_at TEXT NOT NULL);
            CREATE TABLE order_items (id INTEGER PRIMARY KEY,
                                      order_id INTEGER NOT NULL REFERENCES orders(id),
                                      product TEXT NOT NULL, quantity INTEGER NOT NULL,
                                      unit_price REAL NOT NULL);
            """
        )
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", customers)
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", orders)
        con.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", items)
        con.commit()
    finally:
        con.close()
    os.replace(tmp, path)


#: Column types of the demo tables per engine (SQLite's are in :func:`build_database`).
_ENGINE_TYPES = {
    "duckdb": {"int": "INTEGER", "text": "VARCHAR", "real": "DOUBLE", "time": "TIMESTAMP"},
    "postgres": {"int": "INTEGER", "text": "TEXT", "real": "DOUBLE PRECISION", "time": "TIMESTAMP"},
    "mysql": {"int": "INT", "text": "VARCHAR(64)", "real": "DOUBLE", "time": "DATETIME"},
}
_TABLES = (
    (
        "customers",
        (
            ("id", "int"),
            ("name", "text"),
            ("segment", "text"),
            ("country", "text"),
            ("created_at", "time"),
        ),
    ),
    (
        "orders",
        (
            ("id", "int"),
            ("customer_id", "int"),
            ("status", "text"),
            ("amount", "real"),
            ("created_at", "time"),
        ),
    ),
    (
        "order_items",
        (
            ("id", "int"),
            ("order_id", "int"),
            ("product", "text"),
            ("quantity", "int"),
            ("unit_price", "real"),
        ),
    ),
)


def load_tables(con: Any, driver: str, replace: bool = True) -> list[str]:
    """Create the demo tables in an open DB-API connection of ``driver`` (duckdb, postgres,
    mysql) and load the rows; the caller commits. Nullable exactly like SQLite's.

    ``replace`` drops tables of the same names first (tests). Without it an existing table is
    kept when it holds the demo's row count (an earlier demo) and refused otherwise: a user's
    own ``orders`` is never touched. Returns the tables kept."""
    types = _ENGINE_TYPES[driver]
    marker = "?" if driver == "duckdb" else "%s"
    cur = con.cursor()
    kept: list[str] = []
    existing: set[str] = set()
    if not replace:
        where = (
            "table_schema = DATABASE()"
            if driver == "mysql"
            else ("table_schema = current_schema()")
        )
        cur.execute(f"SELECT table_name FROM information_schema.tables WHERE {where}")
        existing = {str(r[0]).lower() for r in cur.fetchall()}
    for (table, cols), rows in zip(_TABLES, build_rows(), strict=True):
        if table in existing:
            cur.execute(f"SELECT count(*) FROM {table}")
            count = cur.fetchone()[0]
            if count != len(rows):
                raise SemanticError(
                    "demo_db_not_empty",
                    f"the database already has a table {table!r} ({count} rows) that is not the "
                    "demo's; name an empty database in --dsn (e.g. create one: CREATE DATABASE "
                    "ktx_demo)",
                    {"table": table},
                )
            kept.append(table)
            continue
        if replace:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        defs = ", ".join(
            f"{name} {types[kind]}{' PRIMARY KEY' if name == 'id' else ''}"
            f"{'' if name == 'segment' or name == 'id' else ' NOT NULL'}"
            for name, kind in cols
        )
        cur.execute(f"CREATE TABLE {table} ({defs})")
        cur.executemany(f"INSERT INTO {table} VALUES ({', '.join([marker] * len(cols))})", rows)
    return kept


def build_duckdb(path: Path) -> None:
    """Write the demo warehouse as a DuckDB file at ``path`` (replaced atomically)."""
    import duckdb

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        load_tables(con, "duckdb", replace=False)
        con.commit()
    finally:
        con.close()
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _is_demo(directory: Path) -> bool:
    try:
        with (directory / "ktx.yaml").open(encoding="utf-8") as fh:
            return fh.readline().rstrip("\n") == MARKER
    except (OSError, UnicodeDecodeError):
        return False


def example_queries(directory: Path) -> list[str]:
    """Three command lines to try; the last one executes."""
    p = shlex.quote(str(directory))
    return [
        f"ktx sl query --project-dir {p} --measure orders.revenue --dimension customers.segment",
        f"ktx sl query --project-dir {p} --measure orders.order_count --measure orders.revenue "
        "--dimension orders.created_at:month --format sql",
        f"ktx sl query --project-dir {p} --measure orders.revenue "
        "--measure order_items.quantity_total --dimension customers.segment --execute "
        "--format table",
    ]


#: ``driver`` values of ``demo.scaffold`` -> the warehouse file written (None: a server).
DEMO_DRIVERS: dict[str, str | None] = {
    "sqlite": DB_FILE,
    "duckdb": "warehouse.duckdb",
    "postgres": None,
    "mysql": None,
}

#: The variable each server driver's own client reads a password from.
PASSWORD_ENVS = {"postgres": "PGPASSWORD", "mysql": "MYSQL_PWD"}


def _server_target(driver: str, dsn: str) -> tuple[dict[str, Any], str | None]:
    """(ktx.yaml connection keys, password or None) from ``dsn``; raises invalid_payload."""
    if driver == "postgres":
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = {k: v for k, v in conninfo_to_dict(dsn).items() if v not in (None, "")}
        except Exception as exc:
            raise SemanticError(
                "invalid_payload",
                f"--dsn is not a PostgreSQL connection string: {exc}",
                {"field": "dsn"},
            ) from None
        password = parts.pop("password", None) or os.environ.get("PGPASSWORD")
        keys = {
            "host": parts.get("host"),
            "port": parts.get("port"),
            "database": parts.get("dbname"),
            "user": parts.get("user"),
            "sslmode": parts.get("sslmode"),
        }
    else:
        from urllib.parse import unquote, urlsplit

        try:
            url = urlsplit(dsn)
            port = url.port
        except ValueError as exc:
            raise SemanticError(
                "invalid_payload", f"--dsn is not a valid URL: {exc}", {"field": "dsn"}
            ) from None
        if url.scheme not in ("mysql", "mariadb") or not url.hostname:
            raise SemanticError(
                "invalid_payload",
                "--dsn for mysql must look like mysql://user:password@host:3306/database",
                {"field": "dsn"},
            )
        password = (unquote(url.password) if url.password else None) or os.environ.get("MYSQL_PWD")
        keys = {
            "host": url.hostname,
            "port": port,
            "database": unquote(url.path.strip("/")) or None,
            "user": unquote(url.username) if url.username else None,
        }
    keys = {k: v for k, v in keys.items() if v is not None}
    if "port" in keys:
        keys["port"] = int(keys["port"])
    if not keys.get("database"):
        raise SemanticError(
            "invalid_payload",
            "--dsn must name the database to load the demo into (e.g. .../ktx_demo)",
            {"field": "dsn"},
        )
    if password is not None:
        keys["password_env"] = PASSWORD_ENVS[driver]
    return keys, password


def _yaml_scalar(value: Any) -> str:
    """``value`` as a YAML scalar: plain when that reads back as the same string."""
    if isinstance(value, int):
        return str(value)
    import yaml

    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def _ktx_yaml(driver: str, keys: dict[str, Any]) -> str:
    lines = [MARKER, "connections:", "  warehouse:", f"    driver: {driver}"]
    if driver in ("sqlite", "duckdb"):
        lines.append(f"    path: {DEMO_DRIVERS[driver]}")
    for key in ("host", "port", "database", "user", "sslmode", "password_env"):
        if key in keys:
            value = keys[key]
            lines.append(f"    {key}: {_yaml_scalar(value)}")
    return "\n".join(lines) + "\n"


def _load_server(driver: str, dsn: str, keys: dict[str, Any], password: str | None) -> list[str]:
    """Load the demo tables into the server database; returns the tables kept."""
    target = f"{keys.get('host', 'localhost')}:{keys.get('port', '')}/{keys['database']}"
    if driver == "postgres":
        import psycopg

        try:
            with psycopg.connect(
                dsn, connect_timeout=10, **({"password": password} if password else {})
            ) as con:
                kept = load_tables(con, "postgres", replace=False)
                con.commit()
                return kept
        except psycopg.Error as exc:
            raise SemanticError(
                "connection_error",
                f"cannot load the demo into PostgreSQL at {target}: {' '.join(str(exc).split())}",
                {"driver": driver},
            ) from None
    import pymysql

    try:
        con = pymysql.connect(
            host=keys["host"],
            port=keys.get("port", 3306),
            user=keys.get("user", "root"),
            password=password or "",
            database=keys["database"],
            connect_timeout=10,
            charset="utf8mb4",
        )
        try:
            kept = load_tables(con, "mysql", replace=False)
            con.commit()
            return kept
        finally:
            con.close()
    except pymysql.Error as exc:
        raise SemanticError(
            "connection_error",
            f"cannot load the demo into MySQL at {target}: {' '.join(str(exc).split())}",
            {"driver": driver},
        ) from None


def scaffold(directory: Path, driver: str = "sqlite", dsn: str | None = None) -> dict[str, Any]:
    """Create the demo in ``directory``; see :mod:`semantic_layer.ops` for the contract."""
    if driver not in DEMO_DRIVERS:
        raise SemanticError(
            "invalid_payload",
            f"unknown demo driver {driver!r}; use one of {', '.join(DEMO_DRIVERS)}",
            {"field": "driver"},
        )
    server = DEMO_DRIVERS[driver] is None
    if server and not dsn:
        raise SemanticError(
            "invalid_payload",
            f"the {driver} demo needs --dsn naming the database to load it into, e.g. "
            + (
                "postgresql://user@localhost:5432/ktx_demo"
                if driver == "postgres"
                else "mysql://user@localhost:3306/ktx_demo"
            ),
            {"field": "dsn"},
        )
    keys: dict[str, Any] = {}
    password = None
    if server and driver == "mysql":  # a URL: checked before asking for the driver
        keys, password = _server_target(driver, dsn or "")
    if driver != "sqlite":
        from semantic_layer.project import Connection
        from semantic_layer.warehouse import require_driver

        require_driver(Connection("warehouse", driver, driver))  # feature_required
    if server and driver == "postgres":  # libpq's parser comes with the driver
        keys, password = _server_target(driver, dsn or "")
    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise SemanticError(
            "demo_dir_not_empty",
            f"{directory} exists and is not a directory; choose another path",
            {"dir": str(directory)},
        )
    if directory.is_dir() and any(directory.iterdir()) and not _is_demo(directory):
        raise SemanticError(
            "demo_dir_not_empty",
            f"{directory} is not empty and is not an earlier ktx demo; choose an empty or new "
            "directory, e.g. `ktx demo ktx-demo`",
            {"dir": str(directory)},
        )
    texts = dict(TEXT_FILES)
    texts["ktx.yaml"] = _ktx_yaml(driver, keys)
    db_file = DEMO_DRIVERS[driver]
    files = [*texts, *([db_file] if db_file else [])]
    created: list[str] = []
    kept: list[str] = []
    notes: list[str] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if server:
            for table in _load_server(driver, dsn or "", keys, password):
                notes.append(f"kept table {table} (already the demo's)")
        for rel, text in texts.items():
            target = directory / rel
            if target.exists():
                kept.append(rel)
                continue
            _write_text(target, text)
            created.append(rel)
        if db_file is not None:
            db = directory / db_file
            if db.exists():
                kept.append(db_file)
            else:
                (build_database if driver == "sqlite" else build_duckdb)(db)
                created.append(db_file)
    except (OSError, sqlite3.Error) as exc:
        raise SemanticError(
            "io_error", f"cannot write the demo into {directory}: {exc}", {"dir": str(directory)}
        ) from None
    if password is not None:
        env = PASSWORD_ENVS[driver]
        notes.append(f"ktx.yaml reads the password from ${env}: export {env}=... before querying")
    result: dict[str, Any] = {
        "dir": str(directory),
        "driver": driver,
        "files": files,
        "created": created,
        "kept": kept,
        "queries": example_queries(directory),
    }
    if notes:
        result["notes"] = notes
    return result
