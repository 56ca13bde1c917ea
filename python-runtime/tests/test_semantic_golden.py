"""SQL golden tests: the compiled SQL of fixed queries, per dialect, byte for byte.

Goldens live in tests/fixtures/semantic/golden/<case>/<dialect>.sql. To regenerate after an
intended change, run ``KTX_UPDATE_GOLDENS=1 python3 -m pytest tests/test_semantic_golden.py``
and review every diff before committing it: the goldens are the reviewed truth.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from semantic_layer import ops

FIXTURES = Path(__file__).parent / "fixtures" / "semantic"
GOLDEN = FIXTURES / "golden"
UPDATE = os.environ.get("KTX_UPDATE_GOLDENS") == "1"

DRIVERS = [
    "sqlite",
    "postgres",
    "bigquery",
    "snowflake",
    "duckdb",
    "mysql",
    "tsql",
    "clickhouse",
    "redshift",
    "databricks",
]

CASES: dict[str, dict[str, Any]] = {
    # A many_to_one join, a dimension and a measure with its own filter.
    "revenue_by_segment": {
        "measures": ["orders.revenue", "orders.order_count"],
        "dimensions": ["customers.segment"],
    },
    # Every granularity, a row filter, a segment, a HAVING filter, explicit order and limit.
    "time_grains": {
        "measures": ["orders.order_count"],
        "dimensions": [
            "orders.created_at:day",
            "orders.created_at:week",
            "orders.created_at:month",
            "orders.created_at:quarter",
            "orders.created_at:year",
        ],
        "filters": ["orders.status IN ('completed', 'shipped')", "orders.order_count > 1"],
        "segments": ["orders.large"],
        "orderBy": ["orders.order_count:desc"],
        "limit": 50,
    },
    # Two measure sources across one_to_many: per-source CTEs joined on the dimensions.
    "fanout_ctes": {
        "measures": ["orders.revenue", "order_items.quantity_total"],
        "dimensions": ["customers.segment"],
        "filters": ["order_items.quantity_total >= 2"],
    },
    # A measure condition without dimensions: an outer WHERE over the one aggregate row
    # (HAVING without GROUP BY needs SQLite >= 3.39).
    "having_without_dimensions": {
        "measures": ["orders.order_count"],
        "filters": ["orders.revenue > 100"],
    },
    # A measure fanned out by its dimension: distinct (grain, dimension) keys first.
    "fanout_grain_keys": {
        "measures": ["customers.customer_count"],
        "dimensions": ["orders.status"],
        "filters": ["regions.name = 'north'"],
    },
}


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for driver in DRIVERS:
        root = tmp_path_factory.mktemp(driver) / "shop"
        shutil.copytree(FIXTURES / "shop", root)
        extra = "    path: warehouse.db\n" if driver == "sqlite" else ""
        (root / "ktx.yaml").write_text(
            f"connections:\n  warehouse:\n    driver: {driver}\n{extra}", encoding="utf-8"
        )
        out[driver] = root
    return out


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_sql(projects: dict[str, Path], case: str, driver: str) -> None:
    result = ops.query({"projectDir": str(projects[driver]), **CASES[case]})
    sql = result["sql"] + "\n"
    # The SQL must parse back in its own dialect: a cheap guard against broken rendering.
    sqlglot.parse_one(sql, read=result["dialect"])
    golden = GOLDEN / case / f"{driver}.sql"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(sql, encoding="utf-8")
    assert golden.is_file(), f"missing golden {golden}; run with KTX_UPDATE_GOLDENS=1 and review"
    assert sql == golden.read_text(encoding="utf-8")


def test_no_stray_goldens() -> None:
    expected = {f"{c}/{d}.sql" for c in CASES for d in DRIVERS}
    found = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*.sql")}
    assert found == expected
