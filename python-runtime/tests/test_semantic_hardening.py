"""Issue 12, items 12 and 13: validate checks the database; messages stay in user terms.

* Item 12: ``semantic.validate`` finds what ``--execute`` would hit (a missing SQLite file, a
  missing table or column, an expression SQLite refuses) at file:line, and says what it could
  not check.
* Item 13: filter errors never show sqlglot internals, deep nesting is refused with the limit
  rather than a RecursionError, and an ``orderBy`` direction typo says "asc or desc".
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from ktx_daemon.abi import OpError
from semantic_layer import ops, sqlexpr, yamlio

ORDERS = "semantic-layer/warehouse/orders.yaml"


def validate(project: Path) -> dict[str, Any]:
    result = ops.validate({"projectDir": str(project)})
    assert result["ok"] is (not result["errors"])
    return result


def where(issues: list[dict[str, Any]]) -> list[tuple[str, str, int | None]]:
    return [(i["file"], i["key"], i["line"]) for i in issues]


def query_error(project: Path, **query: Any) -> OpError:
    with pytest.raises(OpError) as info:
        ops.query({"projectDir": str(project), **query})
    return info.value


def sql(project: Path, *statements: str) -> None:
    con = sqlite3.connect(project / "warehouse.db")
    try:
        for statement in statements:
            con.execute(statement)
        con.commit()
    finally:
        con.close()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


# -- item 12: validate checks the database ----------------------------------------------------


def test_missing_sqlite_file_is_an_error_at_the_connection_path(semantic_shop: Path) -> None:
    db = (semantic_shop / "warehouse.db").resolve()
    db.unlink()
    result = validate(semantic_shop)
    assert result["ok"] is False
    [error] = result["errors"]
    assert where([error]) == [("ktx.yaml", "connections.warehouse.path", 4)]
    assert "SQLite database not found" in error["message"] and str(db) in error["message"]
    assert result["databases"] == [
        {
            "connectionId": "warehouse",
            "driver": "sqlite",
            "path": str(db),
            "checked": False,
            "reason": "database not found",
        }
    ]
    # ... which is exactly what --execute hits.
    failure = query_error(semantic_shop, measures=["orders.revenue"], execute=True)
    assert failure.code == "execution_error"


def test_a_file_that_is_not_a_database_is_an_error(semantic_shop: Path) -> None:
    (semantic_shop / "warehouse.db").write_bytes(b"not a database\n" * 200)
    [error] = validate(semantic_shop)["errors"]
    assert where([error]) == [("ktx.yaml", "connections.warehouse.path", 4)]
    assert "is not a SQLite database" in error["message"]


def test_missing_table_and_columns_are_errors_at_their_lines(semantic_shop: Path) -> None:
    sql(
        semantic_shop,
        "ALTER TABLE orders RENAME COLUMN amount TO amt",
        "ALTER TABLE regions RENAME TO region",
    )
    result = validate(semantic_shop)
    assert result["ok"] is False
    errors = {(e["file"], e["key"], e["line"]): e["message"] for e in result["errors"]}
    assert list(errors) == [
        (ORDERS, "columns[3].name", 8),  # {name: amount, type: number}
        (ORDERS, "columns[5].expr", 10),  # {name: is_large, ..., expr: "amount >= 100"}
        ("semantic-layer/warehouse/regions.yaml", "table", 2),
    ]
    amount = errors[(ORDERS, "columns[3].name", 8)]
    assert "column 'amount' does not exist in table orders" in amount
    assert "did you mean amt?" in amount
    assert "no such column" in errors[(ORDERS, "columns[5].expr", 10)]
    regions = errors[("semantic-layer/warehouse/regions.yaml", "table", 2)]
    assert "table 'regions' does not exist" in regions and "did you mean region?" in regions
    assert result["databases"][0]["checked"] is True
    assert result["warnings"] == []
    # The load-time checks alone (what validate did before) see nothing wrong, --execute fails.
    failure = query_error(semantic_shop, measures=["orders.revenue"], execute=True)
    assert failure.code == "execution_error" and "amount" in failure.message


def test_expressions_sqlite_refuses_are_errors(semantic_shop: Path) -> None:
    path = semantic_shop / ORDERS
    text = path.read_text(encoding="utf-8").replace("max(amount)", "median(amount)")
    path.write_text(text, encoding="utf-8")
    write(
        semantic_shop / "semantic-layer/warehouse/order_totals.yaml",
        """
        name: order_totals
        sql: "SELECT order_id, sum(quantity) AS total FROM order_items GROUP BY order_idd"
        columns:
          - {name: order_id, type: number}
        """,
    )
    errors = validate(semantic_shop)["errors"]
    assert where(errors) == [
        ("semantic-layer/warehouse/order_totals.yaml", "sql", 2),
        (ORDERS, "measures[3].expr", 17),  # largest_order
    ]
    assert "no such column: order_idd" in errors[0]["message"]
    assert "measure 'largest_order'" in errors[1]["message"]
    assert "no such function" in errors[1]["message"]


def test_a_sound_project_is_checked_and_clean(semantic_shop: Path) -> None:
    result = validate(semantic_shop)
    assert (result["ok"], result["errors"], result["warnings"]) == (True, [], [])
    assert [d["checked"] for d in result["databases"]] == [True]


def test_what_could_not_be_checked_is_a_warning(semantic_shop: Path) -> None:
    write(
        semantic_shop / "ktx.yaml",
        """
        connections:
          warehouse:
            driver: sqlite
            path: warehouse.db
          pg:
            driver: postgres
        """,
    )
    write(
        semantic_shop / "semantic-layer/pg/visits.yaml",
        "name: visits\ntable: visits\ncolumns: [{name: id, type: number}]\n",
    )
    result = validate(semantic_shop)
    assert result["ok"] is True  # warnings are not errors
    [warning] = result["warnings"]
    assert where([warning]) == [("ktx.yaml", "connections.pg.driver", 6)]
    assert warning["message"].startswith("could not check connection 'pg'")
    assert "postgres" in warning["message"] and "1 source" in warning["message"]
    assert [(d["connectionId"], d["checked"]) for d in result["databases"]] == [
        ("pg", False),
        ("warehouse", True),
    ]


def test_a_locked_database_could_not_be_checked(semantic_shop: Path) -> None:
    # A writer in the middle of a commit (EXCLUSIVE lock, rollback journal) blocks readers:
    # validate waits SQLite's busy timeout, then says it could not check.
    holder = sqlite3.connect(semantic_shop / "warehouse.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        result = validate(semantic_shop)
    finally:
        holder.close()
    assert result["ok"] is True
    [warning] = result["warnings"]
    assert where([warning]) == [("ktx.yaml", "connections.warehouse.path", 4)]
    assert warning["message"].startswith("could not check the 4 sources of connection")
    assert "locked" in warning["message"]
    assert result["databases"][0]["checked"] is False


# -- item 13: messages in user terms ----------------------------------------------------------

SQLGLOT_WORDS = ("sqlglot", "<class", "Required keyword", "expressions.")


@pytest.mark.parametrize(
    ("bad_filter", "expected"),
    [
        ("orders.status =", "'=' has nothing on its right (at character 15)"),
        ("= 'paid'", "'=' has nothing on its left"),
        ("orders.amount > 1 AND", "'AND' has nothing on its right"),
        ("orders.status LIKE", "'LIKE' has nothing on its right"),
        ("orders.amount BETWEEN 1", "BETWEEN needs both bounds"),
        ("NOT", "'NOT' has nothing on its right"),
        ("CASE WHEN orders.amount > 1", "CASE needs WHEN <condition> THEN <value> ... END"),
        ("orders..status = 'paid'", "a name is missing"),
        ("(orders.amount > 1", "a '(' is not closed"),
        ("orders.amount > 1)", "unexpected ')'"),
        ("orders.status = 'paid", "a string literal is not closed"),
        ("orders.status = 'a'\n  AND", "(line 2, column"),
    ],
)
def test_filter_parse_errors_name_the_filter_in_sql_terms(
    semantic_shop: Path, bad_filter: str, expected: str
) -> None:
    error = query_error(semantic_shop, measures=["orders.revenue"], filters=[bad_filter])
    assert error.code == "invalid_filter"
    assert error.message.startswith(f"cannot parse filter {bad_filter!r}: "), error.message
    assert expected in error.message, error.message
    for word in SQLGLOT_WORDS:
        assert word not in error.message, error.message


def test_refused_filters_say_filter_and_use_sql_words(semantic_shop: Path) -> None:
    error = query_error(semantic_shop, measures=["orders.revenue"], filters=["orders.status IS"])
    assert error.message.startswith("filter 'orders.status IS' contains an alias"), error.message


def nested(kind: str, n: int) -> str:
    return {
        "parens": "(" * n + "orders.amount > 1" + ")" * n,
        "functions": "abs(" * n + "orders.amount" + ")" * n + " > 1",
        "nots": "NOT " * n + "orders.amount > 1",
        "not_parens": "NOT (" * (n // 2) + "orders.amount > 1" + ")" * (n // 2),
        "case": "CASE WHEN " * n + "orders.amount > 1" + " THEN 1 END" * n + " = 1",
        "minus": "orders.amount > " + "- " * n + "1",
    }[kind]


KINDS = ["parens", "functions", "nots", "not_parens", "case", "minus"]


@pytest.mark.parametrize("kind", KINDS)
def test_deep_nesting_is_refused_with_the_limit(semantic_shop: Path, kind: str) -> None:
    limit = sqlexpr.MAX_NESTING
    assert limit == 20  # documented in ops.py and the message
    for n in (limit + 2, 200, 5000):
        error = query_error(semantic_shop, measures=["orders.revenue"], filters=[nested(kind, n)])
        assert error.code == "invalid_filter"
        assert "nests too deeply: at most 20 levels" in error.message, error.message
        assert error.message.startswith("filter "), error.message
        assert len(error.message) < 600  # a 5000-level filter is not echoed in full


def _deep_call(frames: int, fn: Any) -> Any:
    return fn() if frames == 0 else _deep_call(frames - 1, fn)


@pytest.mark.parametrize("kind", KINDS)
def test_nesting_at_the_limit_compiles_and_runs_from_a_deep_stack(
    semantic_shop: Path, kind: str
) -> None:
    # The limit leaves room: 300 frames below the op (more than a daemon thread's) and the
    # deepest accepted filter still compiles, renders and executes.
    results: list[Any] = []

    def run() -> None:
        payload = {
            "projectDir": str(semantic_shop),
            "measures": ["orders.revenue"],
            "dimensions": ["orders.status"],
            "filters": [nested(kind, sqlexpr.MAX_NESTING)],
            "execute": True,
        }
        results.append(_deep_call(300, lambda: ops.query(payload)))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    assert results and results[0]["totalRows"] >= 1


def test_deep_yaml_is_an_invalid_yaml_issue(
    semantic_shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = semantic_shop / "semantic-layer/warehouse/deep.yaml"
    path.write_text("name: deep\ncolumns: " + "[" * 600 + "]" * 600 + "\n", encoding="utf-8")
    for loader in (None, yaml.SafeLoader):
        monkeypatch.setattr(yamlio, "PURE_LOADER", loader)
        errors = validate(semantic_shop)["errors"]
        assert [e["file"] for e in errors] == ["semantic-layer/warehouse/deep.yaml"]
        assert "nested more than 64 levels" in errors[0]["message"], errors
        failure = query_error(semantic_shop, measures=["orders.revenue"])
        assert failure.code == "invalid_yaml"
    assert sys.getrecursionlimit() >= 1000  # nothing raised the limit to get there


@pytest.mark.parametrize("order", ["orders.revenue:up", "orders.revenue:descending"])
def test_order_direction_must_be_asc_or_desc(semantic_shop: Path, order: str) -> None:
    error = query_error(semantic_shop, measures=["orders.revenue"], orderBy=[order])
    assert error.code == "invalid_query"
    assert "must be asc or desc" in error.message, error.message
    assert "not in the query" not in error.message
    assert error.details["orderBy"] == order


def test_order_by_granularity_and_case_insensitive_direction_still_work(
    semantic_shop: Path,
) -> None:
    base = {"projectDir": str(semantic_shop), "measures": ["orders.revenue"]}
    month = ["orders.created_at:month"]
    for order in (month, ["orders.created_at:month:DESC"], ["orders.revenue:Asc"]):
        ops.query({**base, "dimensions": month, "orderBy": order})
    error = query_error(semantic_shop, measures=["orders.revenue"], orderBy=month)
    assert "not in the query" in error.message  # a real field that is not in the query
    error = query_error(
        semantic_shop, measures=["orders.revenue"], dimensions=month, orderBy=[month[0] + ":up"]
    )
    assert "must be asc or desc" in error.message
