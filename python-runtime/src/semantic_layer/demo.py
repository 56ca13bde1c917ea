"""``demo.scaffold``: a small, deterministic SQLite warehouse with its semantic layer.

The project is written by Python (no binary is committed): ``ktx.yaml``,
``semantic-layer/warehouse/{customers,orders,order_items}.yaml`` and ``warehouse.db``.
Every file is written to a temporary name and renamed, so an interrupted run leaves no
half-written file. The first line of ``ktx.yaml`` marks the directory as a demo: running the
scaffold again there recreates missing files and keeps existing ones (edits survive).
"""

from __future__ import annotations

import os
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


def load_tables(con: Any, driver: str) -> None:
    """(Re)create the demo tables in an open DB-API connection of ``driver`` (duckdb,
    postgres, mysql) and load the rows; the caller commits. Nullable exactly like SQLite's."""
    types = _ENGINE_TYPES[driver]
    marker = "?" if driver == "duckdb" else "%s"
    cur = con.cursor()
    for (table, cols), rows in zip(_TABLES, build_rows()):
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        defs = ", ".join(
            f"{name} {types[kind]}{' PRIMARY KEY' if name == 'id' else ''}"
            f"{'' if name == 'segment' or name == 'id' else ' NOT NULL'}"
            for name, kind in cols
        )
        cur.execute(f"CREATE TABLE {table} ({defs})")
        cur.executemany(f"INSERT INTO {table} VALUES ({', '.join([marker] * len(cols))})", rows)


def build_duckdb(path: Path) -> None:
    """Write the demo warehouse as a DuckDB file at ``path`` (replaced atomically)."""
    import duckdb

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        load_tables(con, "duckdb")
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


def scaffold(directory: Path) -> dict[str, Any]:
    """Create the demo in ``directory``; see :mod:`semantic_layer.ops` for the contract."""
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
    created: list[str] = []
    kept: list[str] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for rel, text in TEXT_FILES.items():
            target = directory / rel
            if target.exists():
                kept.append(rel)
                continue
            _write_text(target, text)
            created.append(rel)
        db = directory / DB_FILE
        if db.exists():
            kept.append(DB_FILE)
        else:
            build_database(db)
            created.append(DB_FILE)
    except (OSError, sqlite3.Error) as exc:
        raise SemanticError(
            "io_error", f"cannot write the demo into {directory}: {exc}", {"dir": str(directory)}
        ) from None
    return {
        "dir": str(directory),
        "files": FILES,
        "created": created,
        "kept": kept,
        "queries": example_queries(directory),
    }
