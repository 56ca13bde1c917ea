"""Execution on the SQLite fixture: every result equals a hand-written SQL answer."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from ktx_daemon.abi import OpError
from semantic_layer import ops
from semantic_layer.errors import SemanticError
from semantic_layer.execute import run_sqlite


def run(project: Path, **query: Any) -> dict[str, Any]:
    return ops.query({"projectDir": str(project), "execute": True, **query})


def answer(project: Path, sql: str) -> list[list[Any]]:
    con = sqlite3.connect(project / "warehouse.db")
    try:
        return [list(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def test_join_dimension_measure_filter(semantic_shop: Path) -> None:
    result = run(semantic_shop, measures=["orders.revenue"], dimensions=["customers.segment"])
    assert result["headers"] == ["customers.segment", "orders.revenue"]
    assert result["plan"]["execution"]["mode"] == "executed"
    expected = answer(
        semantic_shop,
        """
        SELECT c.segment, SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END)
        FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
        GROUP BY c.segment ORDER BY c.segment IS NULL, c.segment
        """,
    )
    assert result["rows"] == expected
    # enterprise, smb, and NULL (a customer without segment + an order without customer)
    assert result["totalRows"] == len(expected) == 3
    # The measure filter applies to revenue only: order_count still counts refunds.
    both = run(semantic_shop, measures=["orders.order_count", "orders.revenue"], dimensions=[])
    assert both["rows"] == answer(
        semantic_shop,
        "SELECT COUNT(*), SUM(CASE WHEN status <> 'refunded' THEN amount END) FROM orders",
    )


def test_dimension_on_own_source(semantic_shop: Path) -> None:
    result = run(semantic_shop, measures=["orders.order_count"], dimensions=["orders.status"])
    assert result["rows"] == answer(
        semantic_shop, "SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status"
    )


def test_two_hop_join(semantic_shop: Path) -> None:
    result = run(semantic_shop, measures=["orders.revenue"], dimensions=["regions.name"])
    assert result["rows"] == answer(
        semantic_shop,
        """
        SELECT r.name, SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END)
        FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
        LEFT JOIN regions r ON r.id = c.region_id
        GROUP BY r.name ORDER BY r.name IS NULL, r.name
        """,
    )


def test_row_filter(semantic_shop: Path) -> None:
    result = run(
        semantic_shop,
        measures=["orders.order_count"],
        dimensions=["customers.name"],
        filters=["orders.amount > 50 AND customers.segment IN ('enterprise', 'smb')"],
    )
    assert result["rows"] == answer(
        semantic_shop,
        """
        SELECT c.name, COUNT(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
        WHERE o.amount > 50 AND c.segment IN ('enterprise', 'smb')
        GROUP BY c.name ORDER BY c.name
        """,
    )


def test_filter_on_boolean_column_with_expr(semantic_shop: Path) -> None:
    result = run(semantic_shop, measures=["orders.order_count"], filters=["orders.is_large"])
    assert result["rows"] == answer(
        semantic_shop, "SELECT COUNT(*) FROM orders WHERE amount >= 100"
    )


def test_having_filter(semantic_shop: Path) -> None:
    result = run(
        semantic_shop,
        measures=["orders.revenue"],
        dimensions=["customers.name"],
        filters=["orders.revenue > 100", "orders.order_count >= 2"],
    )
    expected = answer(
        semantic_shop,
        """
        SELECT c.name, SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END) AS rev
        FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
        GROUP BY c.name HAVING rev > 100 AND COUNT(*) >= 2 ORDER BY c.name
        """,
    )
    assert result["rows"] == expected
    assert len(expected) == 3  # Acme, Globex, Initech (Ada has 65.5)
    assert "HAVING" in result["sql"]
    assert result["headers"] == ["customers.name", "orders.revenue"]  # order_count stays hidden


def test_having_across_measure_sources(semantic_shop: Path) -> None:
    result = run(
        semantic_shop,
        measures=["orders.revenue", "order_items.quantity_total"],
        dimensions=["customers.segment"],
        filters=["order_items.quantity_total >= 8"],
    )
    assert result["plan"]["strategy"] == "per_source_ctes"
    assert result["rows"] == answer(
        semantic_shop,
        """
        WITH r AS (SELECT c.segment AS s,
                          SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END) AS rev
                   FROM orders o LEFT JOIN customers c ON c.id = o.customer_id GROUP BY c.segment),
             q AS (SELECT c.segment AS s, SUM(i.quantity) AS qty FROM order_items i
                   LEFT JOIN orders o ON o.id = i.order_id
                   LEFT JOIN customers c ON c.id = o.customer_id GROUP BY c.segment)
        SELECT r.s, r.rev, q.qty FROM r JOIN q ON r.s IS q.s WHERE q.qty >= 8
        ORDER BY r.s IS NULL, r.s
        """,
    )


def test_segments(semantic_shop: Path) -> None:
    result = run(
        semantic_shop,
        measures=["orders.order_count", "orders.revenue"],
        dimensions=["customers.segment"],
        segments=["orders.large", "customers.enterprise"],
    )
    assert result["rows"] == answer(
        semantic_shop,
        """
        SELECT c.segment, COUNT(*), SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END)
        FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
        WHERE o.amount >= 100 AND c.segment = 'enterprise'
        GROUP BY c.segment ORDER BY c.segment
        """,
    )


@pytest.mark.parametrize(
    ("granularity", "expected"),
    [
        (
            "day",
            [
                ["2024-01-15", 1],
                ["2024-01-20", 1],
                ["2024-02-03", 1],
                ["2024-03-10", 1],
                ["2024-03-11", 1],
                ["2024-04-01", 1],
                ["2024-06-30", 1],
                ["2024-07-01", 1],
                ["2024-12-30", 1],
                ["2025-01-01", 1],
                ["2025-01-05", 1],
            ],
        ),
        (
            # Mondays: Sunday 2024-03-10 belongs to the week of 2024-03-04; Wed 2025-01-01 and
            # Sun 2025-01-05 to the week of Monday 2024-12-30.
            "week",
            [
                ["2024-01-15", 2],
                ["2024-01-29", 1],
                ["2024-03-04", 1],
                ["2024-03-11", 1],
                ["2024-04-01", 1],
                ["2024-06-24", 1],
                ["2024-07-01", 1],
                ["2024-12-30", 3],
            ],
        ),
        (
            "month",
            [
                ["2024-01-01", 2],
                ["2024-02-01", 1],
                ["2024-03-01", 2],
                ["2024-04-01", 1],
                ["2024-06-01", 1],
                ["2024-07-01", 1],
                ["2024-12-01", 1],
                ["2025-01-01", 2],
            ],
        ),
        (
            "quarter",
            [
                ["2024-01-01", 5],
                ["2024-04-01", 2],
                ["2024-07-01", 1],
                ["2024-10-01", 1],
                ["2025-01-01", 2],
            ],
        ),
        ("year", [["2024-01-01", 9], ["2025-01-01", 2]]),
    ],
)
def test_time_granularities(semantic_shop: Path, granularity: str, expected: list) -> None:
    result = run(
        semantic_shop,
        measures=["orders.order_count"],
        dimensions=[f"orders.created_at:{granularity}"],
    )
    assert result["headers"] == [f"orders.created_at:{granularity}", "orders.order_count"]
    assert result["rows"] == expected


def test_granularity_desc_order_and_limit(semantic_shop: Path) -> None:
    result = run(
        semantic_shop,
        measures=["orders.order_count"],
        dimensions=["orders.created_at:month"],
        orderBy=["orders.created_at:month:desc"],
        limit=3,
    )
    assert result["rows"] == [["2025-01-01", 2], ["2024-12-01", 1], ["2024-07-01", 1]]
    by_count = run(
        semantic_shop,
        measures=["orders.order_count"],
        dimensions=["orders.status"],
        orderBy=["orders.order_count:desc", "orders.status"],
    )
    assert by_count["rows"] == answer(
        semantic_shop,
        "SELECT status, COUNT(*) AS n FROM orders GROUP BY status ORDER BY n DESC, status",
    )


def test_fanout_same_revenue_with_and_without_item_measure(semantic_shop: Path) -> None:
    alone = run(semantic_shop, measures=["orders.revenue"], dimensions=["customers.segment"])
    both = run(
        semantic_shop,
        measures=["orders.revenue", "order_items.quantity_total"],
        dimensions=["customers.segment"],
    )
    assert both["headers"] == [
        "customers.segment",
        "orders.revenue",
        "order_items.quantity_total",
    ]
    assert [r[:2] for r in both["rows"]] == alone["rows"]
    expected_qty = answer(
        semantic_shop,
        """
        SELECT c.segment, SUM(i.quantity) FROM order_items i
        LEFT JOIN orders o ON o.id = i.order_id LEFT JOIN customers c ON c.id = o.customer_id
        GROUP BY c.segment ORDER BY c.segment IS NULL, c.segment
        """,
    )
    assert [[r[0], r[2]] for r in both["rows"]] == expected_qty
    # The naive single join double counts: prove the fixture would expose it.
    naive = answer(
        semantic_shop,
        """
        SELECT c.segment, SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END)
        FROM customers c JOIN orders o ON o.customer_id = c.id
        JOIN order_items i ON i.order_id = o.id GROUP BY c.segment ORDER BY c.segment
        """,
    )
    assert naive != [r for r in alone["rows"] if r[0] is not None]


def test_fanout_without_dimensions(semantic_shop: Path) -> None:
    result = run(semantic_shop, measures=["orders.order_count", "order_items.quantity_total"])
    assert result["rows"] == answer(
        semantic_shop,
        "SELECT (SELECT COUNT(*) FROM orders), (SELECT SUM(quantity) FROM order_items)",
    )


def test_measure_fanned_out_by_dimension_counts_each_row_once(semantic_shop: Path) -> None:
    # customers -> orders is one_to_many: count each customer once per order status.
    result = run(semantic_shop, measures=["customers.customer_count"], dimensions=["orders.status"])
    assert result["plan"]["measureSources"][0]["strategy"] == "distinct_grain_keys"
    assert result["rows"] == answer(
        semantic_shop,
        """
        SELECT status, COUNT(*) FROM (
          SELECT DISTINCT c.id, o.status FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
        ) GROUP BY status ORDER BY status IS NULL, status
        """,
    )
    # Orders' revenue by product: each order counted once per product it contains.
    by_product = run(semantic_shop, measures=["orders.revenue"], dimensions=["order_items.product"])
    assert by_product["rows"] == answer(
        semantic_shop,
        """
        SELECT k.product, SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END)
        FROM (SELECT DISTINCT o.id, i.product FROM orders o
              LEFT JOIN order_items i ON i.order_id = o.id) k
        JOIN orders o ON o.id = k.id GROUP BY k.product ORDER BY k.product
        """,
    )


def test_count_distinct_with_measure_filter(semantic_shop: Path) -> None:
    result = run(semantic_shop, measures=["orders.buyers", "orders.largest_order"])
    assert result["rows"] == answer(
        semantic_shop,
        "SELECT COUNT(DISTINCT CASE WHEN status <> 'refunded' THEN customer_id END), MAX(amount) "
        "FROM orders",
    )


def test_column_expr_measure(semantic_shop: Path) -> None:
    result = run(semantic_shop, measures=["order_items.item_revenue"], dimensions=["orders.status"])
    assert result["rows"] == answer(
        semantic_shop,
        """
        SELECT o.status, SUM(i.quantity * i.unit_price) FROM order_items i
        LEFT JOIN orders o ON o.id = i.order_id GROUP BY o.status ORDER BY o.status
        """,
    )


def test_max_rows_truncates_but_counts(semantic_shop: Path) -> None:
    result = run(
        semantic_shop, measures=["orders.order_count"], dimensions=["orders.id"], maxRows=2
    )
    assert len(result["rows"]) == 2
    assert result["totalRows"] == 11
    assert result["plan"]["execution"]["truncated"] is True


def test_compile_only_has_no_rows(semantic_shop: Path) -> None:
    result = ops.query({"projectDir": str(semantic_shop), "measures": ["orders.revenue"]})
    assert result["rows"] == []
    assert result["totalRows"] is None
    assert result["plan"]["execution"] == {"mode": "compile_only"}
    assert result["dialect"] == "sqlite"
    assert result["connectionId"] == "warehouse"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM orders",
        "DROP TABLE orders",
        "UPDATE orders SET amount = 0",
        "INSERT INTO regions VALUES (9, 'x')",
        "CREATE TABLE t (x)",
        "PRAGMA query_only=OFF",
        "ATTACH DATABASE ':memory:' AS other",
        "SELECT 1; DELETE FROM orders",
        "WITH x AS (SELECT 1) DELETE FROM orders",
    ],
)
def test_execution_is_read_only(semantic_shop: Path, statement: str) -> None:
    db = semantic_shop / "warehouse.db"
    before = _digest(db)
    with pytest.raises(SemanticError) as info:
        run_sqlite(db, statement)
    assert info.value.code == "execution_error"
    assert _digest(db) == before
    assert answer(semantic_shop, "SELECT COUNT(*) FROM orders") == [[11]]


def test_missing_database_is_reported(semantic_shop: Path) -> None:
    (semantic_shop / "warehouse.db").unlink()
    with pytest.raises(OpError) as info:
        run(semantic_shop, measures=["orders.revenue"])
    assert info.value.code == "execution_error"
    assert "warehouse.db" in info.value.message
    assert not (semantic_shop / "warehouse.db").exists()  # read-only open never creates it


def test_other_drivers_have_no_executor(semantic_shop: Path) -> None:
    (semantic_shop / "ktx.yaml").write_text(
        "connections:\n  warehouse:\n    driver: snowflake\n", encoding="utf-8"
    )
    with pytest.raises(OpError) as info:
        run(semantic_shop, measures=["orders.revenue"])
    assert info.value.code == "no_executor"
    assert "no executor for driver snowflake" in info.value.message
    compiled = ops.query({"projectDir": str(semantic_shop), "measures": ["orders.revenue"]})
    assert compiled["dialect"] == "snowflake"


def test_having_on_a_measure_of_another_source_stays_hidden(semantic_shop: Path) -> None:
    result = run(
        semantic_shop,
        measures=["orders.revenue"],
        dimensions=["customers.segment"],
        filters=["order_items.quantity_total >= 8"],
    )
    assert result["headers"] == ["customers.segment", "orders.revenue"]
    # Quantities per segment: enterprise 17, smb 9, NULL 6.
    assert result["rows"] == [["enterprise", 555.75], ["smb", 269.75]]


def test_runaway_query_is_interrupted(semantic_shop: Path) -> None:
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
    )
    with pytest.raises(SemanticError) as info:
        run_sqlite(semantic_shop / "warehouse.db", endless, timeout=0.2)
    assert info.value.code == "execution_timeout"


def test_colliding_aliases_stay_distinct(semantic_shop: Path) -> None:
    # `orders.created_at:month` and a column named `created_at__month` would both be
    # aliased orders__created_at__month; the second gets a suffix.
    path = semantic_shop / "semantic-layer/warehouse/orders.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "columns:\n",
            "columns:\n"
            '  - {name: created_at__month, type: string, expr: "substr(created_at, 1, 7)"}\n',
        ),
        encoding="utf-8",
    )
    result = run(
        semantic_shop,
        measures=["orders.order_count", "order_items.quantity_total"],
        dimensions=["orders.created_at:month", "orders.created_at__month"],
        filters=["orders.created_at < '2024-03-01'"],
    )
    assert result["rows"] == [["2024-01-01", "2024-01", 2, 4], ["2024-02-01", "2024-02", 1, 4]]


def _add_average(project: Path) -> None:
    """orders.average_order_value: an average, the classic victim of fan-out."""
    orders = project / "semantic-layer/warehouse/orders.yaml"
    orders.write_text(
        orders.read_text(encoding="utf-8").replace(
            "measures:\n", 'measures:\n  - {name: average_order_value, expr: "avg(amount)"}\n'
        ),
        encoding="utf-8",
    )


def _add_payments(project: Path) -> None:
    """A second one_to_many branch from orders (a `sql:` source, declared from orders)."""
    con = sqlite3.connect(project / "warehouse.db")
    try:
        con.executescript(
            """
            CREATE TABLE payments_raw (id INTEGER PRIMARY KEY, order_id INTEGER, method TEXT,
                                       paid REAL);
            INSERT INTO payments_raw VALUES (1, 1, 'card', 70.0), (2, 1, 'cash', 50.0),
              (3, 2, 'card', 80.5), (4, 4, 'card', 300.0), (5, 4, 'card', 10.25),
              (6, 7, 'wire', 150.0);
            """
        )
        con.commit()
    finally:
        con.close()
    (project / "semantic-layer/warehouse/payments.yaml").write_text(
        "name: payments\n"
        'sql: "select id, order_id, method, paid from payments_raw"\n'
        "grain: [id]\n"
        "columns:\n"
        "  - {name: id, type: number}\n"
        "  - {name: order_id, type: number}\n"
        "  - {name: method, type: string}\n"
        "  - {name: paid, type: number}\n"
        "measures:\n"
        '  - {name: paid_total, expr: "sum(paid)"}\n'
        '  - {name: average_payment, expr: "avg(paid)"}\n',
        encoding="utf-8",
    )
    orders = project / "semantic-layer/warehouse/orders.yaml"
    orders.write_text(
        orders.read_text(encoding="utf-8").replace(
            "joins:\n",
            "joins:\n"
            '  - {to: payments, "on": "id = payments.order_id", relationship: one_to_many}\n',
        ),
        encoding="utf-8",
    )


def test_two_one_to_many_branches_do_not_multiply(semantic_shop: Path) -> None:
    # orders -> order_items and orders -> payments: measures on both branches and on orders.
    _add_payments(semantic_shop)
    _add_average(semantic_shop)
    result = run(
        semantic_shop,
        measures=[
            "orders.revenue",
            "order_items.quantity_total",
            "payments.paid_total",
            "payments.average_payment",
        ],
        dimensions=["customers.segment"],
    )
    assert result["rows"] == answer(
        semantic_shop,
        """
        WITH o AS (SELECT c.segment s, SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END) v
                   FROM orders o LEFT JOIN customers c ON c.id = o.customer_id GROUP BY 1),
             i AS (SELECT c.segment s, SUM(i.quantity) v FROM order_items i
                   LEFT JOIN orders o ON o.id = i.order_id
                   LEFT JOIN customers c ON c.id = o.customer_id GROUP BY 1),
             p AS (SELECT c.segment s, SUM(p.paid) v, AVG(p.paid) a FROM payments_raw p
                   LEFT JOIN orders o ON o.id = p.order_id
                   LEFT JOIN customers c ON c.id = o.customer_id GROUP BY 1),
             d AS (SELECT s FROM o UNION SELECT s FROM i UNION SELECT s FROM p)
        SELECT d.s, o.v, i.v, p.v, p.a FROM d LEFT JOIN o ON o.s IS d.s
        LEFT JOIN i ON i.s IS d.s LEFT JOIN p ON p.s IS d.s ORDER BY d.s IS NULL, d.s
        """,
    )
    # Averages on the 'one' side by a dimension of each 'many' side: each order once per value.
    by_both = run(
        semantic_shop,
        measures=["orders.average_order_value"],
        dimensions=["order_items.product", "payments.method"],
    )
    assert by_both["rows"] == answer(
        semantic_shop,
        """
        SELECT k.product, k.method, AVG(o.amount)
        FROM (SELECT DISTINCT o.id, i.product, p.method FROM orders o
              LEFT JOIN order_items i ON i.order_id = o.id
              LEFT JOIN payments_raw p ON p.order_id = o.id) k
        JOIN orders o ON o.id = k.id GROUP BY k.product, k.method
        ORDER BY k.product IS NULL, k.product, k.method IS NULL, k.method
        """,
    )
    # A sibling branch as dimension: items by payment method, each item once per method.
    sibling = run(
        semantic_shop, measures=["order_items.quantity_total"], dimensions=["payments.method"]
    )
    assert sibling["rows"] == answer(
        semantic_shop,
        """
        SELECT k.method, SUM(i.quantity)
        FROM (SELECT DISTINCT i.id, p.method FROM order_items i
              LEFT JOIN orders o ON o.id = i.order_id
              LEFT JOIN payments_raw p ON p.order_id = o.id) k
        JOIN order_items i ON i.id = k.id GROUP BY k.method ORDER BY k.method IS NULL, k.method
        """,
    )


def test_filter_on_the_many_side_keeps_one_side_rows_once(semantic_shop: Path) -> None:
    # A condition on order_items selects the orders having at least one matching item; the
    # orders measures (a sum, an average, a count) are not multiplied by matching items.
    _add_average(semantic_shop)
    result = run(
        semantic_shop,
        measures=["orders.revenue", "orders.average_order_value", "orders.order_count"],
        dimensions=["customers.segment"],
        filters=["order_items.product IN ('widget', 'gadget')"],
    )
    assert result["rows"] == answer(
        semantic_shop,
        """
        SELECT c.segment, SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END), AVG(o.amount),
               COUNT(*)
        FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
        WHERE EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id
                      AND i.product IN ('widget', 'gadget'))
        GROUP BY c.segment ORDER BY c.segment IS NULL, c.segment
        """,
    )


def test_having_without_dimensions(semantic_shop: Path) -> None:
    # SQLite before 3.39 refuses HAVING without GROUP BY: the condition filters an outer query.
    kept = run(semantic_shop, measures=["orders.order_count"], filters=["orders.revenue > 100"])
    assert kept["rows"] == answer(
        semantic_shop,
        "SELECT COUNT(*) FROM orders "
        "WHERE (SELECT SUM(amount) FROM orders WHERE status <> 'refunded') > 100",
    )
    assert kept["rows"] == [[11]]
    gone = run(semantic_shop, measures=["orders.order_count"], filters=["orders.revenue > 1e9"])
    assert gone["rows"] == []
    for select in sqlglot.parse_one(kept["sql"], read="sqlite").find_all(exp.Select):
        assert not select.args.get("having") or select.args.get("group"), kept["sql"]


def test_reserved_words_as_names(semantic_shop: Path) -> None:
    # A source named `group` over a table "order" with columns "order" and "from".
    con = sqlite3.connect(semantic_shop / "warehouse.db")
    try:
        con.executescript(
            """
            CREATE TABLE "order" (id INTEGER PRIMARY KEY, "order" INTEGER, "from" TEXT);
            INSERT INTO "order" VALUES (1, 2, 'a'), (2, 3, 'b'), (3, 5, 'a');
            """
        )
        con.commit()
    finally:
        con.close()
    (semantic_shop / "semantic-layer/warehouse/group.yaml").write_text(
        "name: group\n"
        "table: '\"order\"'\n"
        "grain: [id]\n"
        "columns:\n"
        "  - {name: id, type: number}\n"
        "  - {name: order, type: number}\n"
        "  - {name: from, type: string}\n"
        "measures:\n"
        "  - {name: total, expr: 'sum(\"order\")'}\n",
        encoding="utf-8",
    )
    result = run(
        semantic_shop,
        measures=["group.total"],
        dimensions=["group.from"],
        filters=['"group"."order" > 2'],
    )
    assert result["rows"] == answer(
        semantic_shop,
        'SELECT "from", SUM("order") FROM "order" WHERE "order" > 2 GROUP BY 1 ORDER BY 1',
    )
    assert result["rows"] == [["a", 5], ["b", 3]]


def test_like_with_escape(semantic_shop: Path) -> None:
    result = run(
        semantic_shop,
        measures=["orders.order_count"],
        filters=["orders.status LIKE 'c!%' ESCAPE '!' OR orders.status LIKE 'ref%'"],
    )
    assert result["rows"] == answer(
        semantic_shop,
        "SELECT COUNT(*) FROM orders WHERE status LIKE 'c!%' ESCAPE '!' OR status LIKE 'ref%'",
    )
    escaped = run(
        semantic_shop,
        measures=["orders.order_count"],
        filters=["orders.status LIKE 'p!%' ESCAPE '!'"],
    )
    assert escaped["rows"] == [[0]]
