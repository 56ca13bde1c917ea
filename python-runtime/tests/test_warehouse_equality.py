"""Cross-engine equality: the demo warehouse in SQLite, DuckDB, PostgreSQL and MariaDB, and a
matrix of semantic queries that must return the same rows, in the same order, on all four.

Every query's order is defined by the query (the default order is by every dimension; an
explicit ``orderBy`` ends with enough fields to break ties), so rows are compared in order.
Numbers are compared with a relative tolerance of 1e-9 (absolute 1e-9 near zero): engines sum
doubles in different orders; integers must be equal. Any mismatch is a compiler or dialect bug.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from semantic_layer import ops

ENGINES = ("sqlite", "duck", "pg", "maria")
REL_TOL = 1e-9
ABS_TOL = 1e-9

Q = dict
QUERIES: dict[str, dict[str, Any]] = {
    "revenue_by_segment": Q(measures=["orders.revenue"], dimensions=["customers.segment"]),
    "count_by_status": Q(measures=["orders.order_count"], dimensions=["orders.status"]),
    "avg_by_status": Q(measures=["orders.average_order_value"], dimensions=["orders.status"]),
    "two_sources_by_segment": Q(
        measures=["orders.revenue", "order_items.quantity_total"],
        dimensions=["customers.segment"],
    ),
    "three_sources_by_segment": Q(
        measures=["customers.customer_count", "orders.order_count", "order_items.quantity_total"],
        dimensions=["customers.segment"],
    ),
    "item_revenue_by_product": Q(
        measures=["order_items.item_revenue"], dimensions=["order_items.product"]
    ),
    "quantity_by_country_two_hops": Q(
        measures=["order_items.quantity_total"], dimensions=["customers.country"]
    ),
    "customers_by_order_status_one_to_many": Q(
        measures=["customers.customer_count"], dimensions=["orders.status"]
    ),
    "customers_by_product_one_to_many_two_hops": Q(
        measures=["customers.customer_count"], dimensions=["order_items.product"]
    ),
    "revenue_by_product_one_to_many": Q(
        measures=["orders.revenue"], dimensions=["order_items.product"]
    ),
    "grain_day": Q(measures=["orders.order_count"], dimensions=["orders.created_at:day"]),
    "grain_week": Q(measures=["orders.order_count"], dimensions=["orders.created_at:week"]),
    "grain_month": Q(
        measures=["orders.order_count", "orders.revenue"], dimensions=["orders.created_at:month"]
    ),
    "grain_quarter": Q(measures=["orders.revenue"], dimensions=["orders.created_at:quarter"]),
    "grain_year": Q(measures=["orders.order_count"], dimensions=["orders.created_at:year"]),
    "customer_grain_month": Q(
        measures=["customers.customer_count"], dimensions=["customers.created_at:month"]
    ),
    "quarter_and_segment": Q(
        measures=["orders.revenue"], dimensions=["orders.created_at:quarter", "customers.segment"]
    ),
    "items_by_order_month": Q(
        measures=["order_items.item_revenue"],
        dimensions=["orders.created_at:month"],
        filters=["order_items.quantity > 1"],
    ),
    "filter_status": Q(
        measures=["orders.revenue"],
        dimensions=["customers.segment"],
        filters=["orders.status = 'completed'"],
    ),
    "filter_many_side_exists": Q(
        measures=["orders.order_count"],
        dimensions=["customers.segment"],
        filters=["order_items.product = 'widget'"],
    ),
    "filter_many_side_not_equal": Q(
        measures=["orders.order_count"],
        dimensions=["customers.segment"],
        filters=["order_items.product != 'widget'"],
    ),
    "filter_in": Q(
        measures=["orders.order_count"],
        dimensions=["customers.country"],
        filters=["customers.country IN ('US', 'GB')"],
    ),
    "filter_is_null": Q(
        measures=["orders.order_count", "orders.revenue"],
        filters=["customers.segment IS NULL"],
    ),
    "filter_time_range": Q(
        measures=["orders.order_count"],
        dimensions=["orders.status"],
        filters=["orders.created_at >= '2024-06-01'", "orders.created_at < '2024-10-01'"],
    ),
    "filter_between_amount": Q(
        measures=["orders.revenue"],
        dimensions=["orders.created_at:quarter"],
        filters=["orders.amount BETWEEN 50 AND 200"],
    ),
    "filter_like": Q(
        measures=["order_items.quantity_total"],
        dimensions=["order_items.product"],
        filters=["order_items.product LIKE 'g%'"],
    ),
    "having_revenue": Q(
        measures=["orders.revenue"],
        dimensions=["customers.segment"],
        filters=["orders.revenue > 1500"],
    ),
    "having_count": Q(
        measures=["orders.order_count"],
        dimensions=["orders.status"],
        filters=["orders.order_count >= 5"],
    ),
    "having_and_row_filter": Q(
        measures=["orders.order_count", "orders.average_order_value"],
        dimensions=["customers.country"],
        filters=["orders.amount >= 50", "orders.order_count > 1"],
    ),
    "having_week": Q(
        measures=["orders.order_count"],
        dimensions=["orders.created_at:week"],
        filters=["orders.order_count >= 2"],
    ),
    "segment_large": Q(
        measures=["orders.order_count"], dimensions=["orders.status"], segments=["orders.large"]
    ),
    "segment_enterprise": Q(
        measures=["orders.revenue"],
        dimensions=["customers.country"],
        segments=["customers.enterprise"],
    ),
    "segment_other_source_items": Q(
        measures=["order_items.quantity_total"],
        dimensions=["order_items.product"],
        segments=["customers.enterprise"],
    ),
    "segments_two": Q(
        measures=["orders.order_count"],
        dimensions=["orders.created_at:month"],
        segments=["orders.large", "customers.enterprise"],
    ),
    "order_measure_desc_limit": Q(
        measures=["orders.revenue"],
        dimensions=["customers.country"],
        order_by=["orders.revenue:desc", "customers.country"],
        limit=3,
    ),
    "order_dimension_desc": Q(
        measures=["orders.order_count"],
        dimensions=["orders.status"],
        order_by=["orders.status:desc"],
    ),
    "order_time_desc_limit": Q(
        measures=["orders.order_count"],
        dimensions=["orders.created_at:month"],
        order_by=["orders.created_at:month:desc"],
        limit=4,
    ),
    "limit_only": Q(measures=["orders.order_count"], dimensions=["orders.created_at:day"], limit=5),
    "no_dimensions": Q(
        measures=["orders.order_count", "orders.revenue", "orders.average_order_value"]
    ),
    "order_by_count_then_product": Q(
        measures=["order_items.quantity_total", "orders.order_count"],
        dimensions=["order_items.product"],
        order_by=["orders.order_count:desc", "order_items.product"],
    ),
    "raw_time_dimension": Q(measures=["orders.revenue"], dimensions=["orders.created_at"], limit=6),
    "null_dimension_desc_sorts_last": Q(
        measures=["customers.customer_count"],
        dimensions=["customers.segment"],
        order_by=["customers.segment:desc"],
    ),
    "customer_week_and_name": Q(
        measures=["orders.revenue"],
        dimensions=["customers.created_at:week", "customers.name"],
    ),
    "having_on_average": Q(
        measures=["orders.average_order_value"],
        dimensions=["order_items.product"],
        filters=["orders.average_order_value > 100"],
    ),
    "computed_column_filter": Q(
        measures=["order_items.item_revenue", "order_items.quantity_total"],
        dimensions=["orders.status"],
        filters=["order_items.line_total >= 80"],
    ),
    "filter_or_and_not": Q(
        measures=["orders.order_count"],
        dimensions=["customers.segment"],
        filters=[
            "(orders.status = 'completed' OR orders.amount > 150) AND NOT orders.status = 'pending'"
        ],
    ),
}


def _payload(project: Path, cid: str, q: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "projectDir": str(project),
        "connectionId": cid,
        "execute": True,
        "measures": q["measures"],
        "dimensions": q.get("dimensions", []),
        "filters": q.get("filters", []),
        "segments": q.get("segments", []),
    }
    if "order_by" in q:
        payload["orderBy"] = q["order_by"]
    if "limit" in q:
        payload["limit"] = q["limit"]
    return payload


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b


def test_matrix_is_large_enough() -> None:
    assert len(QUERIES) >= 30
    grains = {
        d.rsplit(":", 1)[1]
        for q in QUERIES.values()
        for d in q.get("dimensions", [])
        if d.count(":") == 1
    }
    assert grains >= {"day", "week", "month", "quarter", "year"}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_same_rows_on_every_engine(warehouses: Path, name: str) -> None:
    q = QUERIES[name]
    results = {cid: ops.query(_payload(warehouses, cid, q)) for cid in ENGINES}
    base = results["sqlite"]
    assert base["rows"], f"{name}: the query returns no rows on SQLite; it tests nothing"
    for cid in ENGINES[1:]:
        got = results[cid]
        assert got["headers"] == base["headers"]
        assert got["totalRows"] == base["totalRows"], (cid, got["rows"], base["rows"])
        ok = len(got["rows"]) == len(base["rows"]) and all(
            len(r) == len(s) and all(same(x, y) for x, y in zip(r, s, strict=True))
            for r, s in zip(got["rows"], base["rows"], strict=True)
        )
        assert ok, (
            f"{name}: {cid} differs from sqlite\n{cid}: {got['rows']}\n"
            f"sqlite: {base['rows']}\n{got['sql']}"
        )
