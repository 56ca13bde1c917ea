"""Bad input: broken projects (validate) and bad queries, each with a precise, stable error."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ktx_daemon.abi import OpError
from semantic_layer import ops


def query_error(project: Path, **query: Any) -> OpError:
    with pytest.raises(OpError) as info:
        ops.query({"projectDir": str(project), **query})
    return info.value


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def errors_of(project: Path) -> list[dict[str, Any]]:
    result = ops.validate({"projectDir": str(project)})
    assert result["ok"] is (not result["errors"])
    return result["errors"]


# -- validate ---------------------------------------------------------------------------------


def test_fixture_project_is_valid(semantic_shop: Path) -> None:
    result = ops.validate({"projectDir": str(semantic_shop)})
    assert result == {
        "ok": True,
        "projectDir": str(semantic_shop.resolve()),
        "connections": 1,
        "sources": 4,
        "errors": [],
        "warnings": [],
        "databases": [
            {
                "connectionId": "warehouse",
                "driver": "sqlite",
                "path": str((semantic_shop / "warehouse.db").resolve()),
                "checked": True,
                "reason": None,
            }
        ],
    }


def test_the_op_takes_the_project_the_cli_found(semantic_shop: Path) -> None:
    # Discovery (upwards from the current directory) is the CLI's, in Rust: the op takes its
    # result, an absolute projectDir, and does no search of its own.
    result = ops.validate({"projectDir": str(semantic_shop)})
    assert result["projectDir"] == str(semantic_shop.resolve())
    start = semantic_shop / "semantic-layer" / "warehouse"
    for payload in ({"cwd": str(start)}, {"projectDir": "semantic-layer"}):
        with pytest.raises(OpError) as info:
            ops.validate(payload)
        assert info.value.code == "invalid_payload", payload
        assert info.value.details == {"field": "projectDir"}


def test_project_not_found(tmp_path: Path) -> None:
    with pytest.raises(OpError) as info:
        ops.validate({"projectDir": str(tmp_path)})
    assert info.value.code == "project_not_found"
    assert str(tmp_path) in info.value.message
    with pytest.raises(OpError) as info:
        ops.query({"projectDir": str(tmp_path), "measures": ["orders.revenue"]})
    assert info.value.code == "project_not_found"


def test_malformed_yaml_reports_file_and_line(semantic_shop: Path) -> None:
    write(
        semantic_shop / "semantic-layer/warehouse/regions.yaml",
        """
        name: regions
        table: regions
        columns:
          - {name: id, type: number}
          - {name: name, type: string
        """,
    )
    [error] = errors_of(semantic_shop)
    assert error["file"] == "semantic-layer/warehouse/regions.yaml"
    assert error["line"] == 5
    assert "invalid YAML" in error["message"]
    failure = query_error(semantic_shop, measures=["orders.revenue"])
    assert failure.code == "invalid_yaml"
    assert "semantic-layer/warehouse/regions.yaml:5" in failure.message
    assert failure.details["errors"][0]["line"] == 5


def test_malformed_ktx_yaml(semantic_shop: Path) -> None:
    write(semantic_shop / "ktx.yaml", "connections:\n  warehouse: [driver: sqlite\n")
    [error] = errors_of(semantic_shop)
    assert error["file"] == "ktx.yaml"
    assert error["line"] == 2  # where the unclosed '[' opens
    assert query_error(semantic_shop, measures=["orders.revenue"]).code == "invalid_yaml"


def test_duplicate_yaml_key_is_an_error(semantic_shop: Path) -> None:
    path = semantic_shop / "semantic-layer/warehouse/regions.yaml"
    write(path, "name: regions\ntable: regions\nname: other\ncolumns: [{name: id, type: number}]\n")
    [error] = errors_of(semantic_shop)
    assert error["line"] == 3
    assert "duplicate key 'name'" in error["message"]


def test_semantic_errors_name_file_key_and_line(semantic_shop: Path) -> None:
    write(
        semantic_shop / "semantic-layer/warehouse/regions.yaml",
        """
        name: regions
        table: regions
        grain: [id]
        columns:
          - {name: id, type: number}
          - {name: name, type: string}
          - {name: id, type: text}
        joins:
          - {to: planets, "on": "id = planets.region_id", relationship: many_to_one}
          - {to: customers, "on": "id = customers.region", relationship: one_to_many}
          - {to: orders, "on": "id = orders.id", relationship: many_to_many}
        measures:
          - {name: total, expr: "sum(population)"}
          - {name: bad_sum, expr: "sum(name)"}
          - {name: not_agg, expr: "id + 1"}
          - {name: sneaky, expr: "count(*)", filter: "id IN (SELECT id FROM orders)"}
        segments:
          - {name: north, expr: "name"}
        mesures: []
        """,
    )
    errors = {(e["key"], e["line"]): e["message"] for e in errors_of(semantic_shop)}
    f = "semantic-layer/warehouse/regions.yaml"
    assert all(e["file"] == f for e in errors_of(semantic_shop))
    assert "type 'text' must be one of" in errors[("columns[2].type", 7)]
    assert "unknown source 'planets'" in errors[("joins[0].to", 9)]
    assert "unknown column 'region'" in errors[("joins[1].on", 10)]
    assert "did you mean region_id" in errors[("joins[1].on", 10)]
    assert "many_to_many" in errors[("joins[2].relationship", 11)]
    assert "unknown column 'population'" in errors[("measures[0].expr", 13)]
    assert "sum() over string column 'name'" in errors[("measures[1].expr", 14)]
    assert "must aggregate" in errors[("measures[2].expr", 15)]
    assert "subquery" in errors[("measures[3].filter", 16)]
    assert "must be a condition" in errors[("segments[0].expr", 18)]
    assert "did you mean 'measures'" in errors[("mesures", 19)]


def test_validate_lists_errors_in_file_order(semantic_shop: Path) -> None:
    # Loading finds shape errors, then expression errors, then join errors: the report is
    # still sorted by file and line.
    path = semantic_shop / "semantic-layer/warehouse/orders.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('"customer_id = customers.id"', '"customer_id = customers.nope"')
    text = text.replace('"sum(amount)"', '"sum(nope)"')
    text = text.replace("{name: created_at, type: time}", "{name: created_at, type: tim}")
    path.write_text(text, encoding="utf-8")
    (semantic_shop / "semantic-layer/warehouse/zz.yaml").write_text("name: [\n", encoding="utf-8")
    errors = errors_of(semantic_shop)
    where = [(e["file"].rsplit("/", 1)[-1], e["key"]) for e in errors]
    assert where == [
        ("orders.yaml", "columns[4].type"),
        ("orders.yaml", "joins[0].on"),
        ("orders.yaml", "measures[1].expr"),
        ("zz.yaml", ""),
    ], errors
    lines = [e["line"] for e in errors[:3]]
    assert lines == sorted(lines)


def test_a_source_file_is_named_after_its_source(semantic_shop: Path) -> None:
    layer = semantic_shop / "semantic-layer/warehouse"
    (layer / "regions.yaml").rename(layer / "areas.yaml")
    [error] = errors_of(semantic_shop)
    assert (error["file"], error["key"], error["line"]) == (
        "semantic-layer/warehouse/areas.yaml",
        "name",
        1,
    )
    assert "'regions' must be in regions.yaml" in error["message"]


def test_customers_joined_twice_is_refused(semantic_shop: Path) -> None:
    path = semantic_shop / "semantic-layer/warehouse/customers.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            "joins:\n",
            "joins:\n"
            '  - {to: orders, "on": "id = orders.customer_id", relationship: one_to_many}\n',
        ),
        encoding="utf-8",
    )
    [error] = errors_of(semantic_shop)
    assert error["file"].endswith("orders.yaml")
    assert "already joined" in error["message"]


def test_unknown_driver_and_connection_directory(semantic_shop: Path) -> None:
    write(semantic_shop / "ktx.yaml", "connections:\n  warehouse:\n    driver: oracle\n")
    errors = errors_of(semantic_shop)
    assert errors[0]["key"] == "connections.warehouse.driver"
    assert errors[0]["line"] == 3
    assert "sqlite" in errors[0]["message"]
    assert any("matches no connection" in e["message"] for e in errors)


def test_bare_on_key_is_accepted(semantic_shop: Path) -> None:
    # YAML 1.1 reads an unquoted `on:` key as true; ktx takes it as the join condition.
    path = semantic_shop / "semantic-layer/warehouse/orders.yaml"
    text = path.read_text(encoding="utf-8").replace('"on":', "on:")
    path.write_text(text, encoding="utf-8")
    assert errors_of(semantic_shop) == []


# -- queries ----------------------------------------------------------------------------------


def test_unknown_measure_suggests_closest(semantic_shop: Path) -> None:
    error = query_error(semantic_shop, measures=["orders.revenu"])
    assert error.code == "unknown_measure"
    assert error.details["suggestions"][0] == "orders.revenue"
    # The suggestions are data; the CLI prints them (the message says what is wrong only).
    assert error.message == "unknown measure 'orders.revenu'"
    error = query_error(semantic_shop, measures=["revenue"])
    assert error.code == "unknown_measure"
    assert "orders.revenue" in error.details["suggestions"]
    error = query_error(semantic_shop, measures=["order.order_count"])
    assert error.details["suggestions"][0] == "orders.order_count"


def test_unknown_dimension_and_segment(semantic_shop: Path) -> None:
    error = query_error(semantic_shop, measures=["orders.revenue"], dimensions=["customer.segment"])
    assert error.code == "unknown_dimension"
    assert "customers.segment" in error.details["suggestions"]
    error = query_error(semantic_shop, measures=["orders.revenue"], segments=["orders.larg"])
    assert error.code == "unknown_segment"
    assert error.details["suggestions"][0] == "orders.large"


def test_unknown_connection(semantic_shop: Path) -> None:
    error = query_error(semantic_shop, measures=["orders.revenue"], connectionId="warehous")
    assert error.code == "unknown_connection"
    assert "warehous" in error.message and "warehouse" in error.message
    assert error.details["known"] == ["warehouse"]


def test_several_connections_need_a_connection_id(semantic_shop: Path) -> None:
    write(
        semantic_shop / "ktx.yaml",
        """
        connections:
          warehouse: {driver: sqlite, path: warehouse.db}
          lake: {driver: bigquery}
        """,
    )
    error = query_error(semantic_shop, measures=["orders.revenue"])
    assert error.code == "ambiguous_connection"
    assert error.details["connections"] == ["lake", "warehouse"]
    ok = ops.query(
        {
            "projectDir": str(semantic_shop),
            "measures": ["orders.revenue"],
            "connectionId": "warehouse",
        }
    )
    assert ok["connectionId"] == "warehouse"


def test_ambiguous_join_path_names_sources(semantic_shop: Path) -> None:
    # orders -> stores -> regions is as short as orders -> customers -> regions.
    write(
        semantic_shop / "semantic-layer/warehouse/stores.yaml",
        """
        name: stores
        table: stores
        columns:
          - {name: id, type: number}
          - {name: region_id, type: number}
        joins:
          - {to: regions, "on": "region_id = regions.id", relationship: many_to_one}
          - {to: orders, "on": "id = orders.customer_id", relationship: one_to_many}
        """,
    )
    con = sqlite3.connect(semantic_shop / "warehouse.db")  # validate checks the table exists
    con.execute("CREATE TABLE stores (id INTEGER, region_id INTEGER)")
    con.commit()
    con.close()
    assert errors_of(semantic_shop) == []
    error = query_error(semantic_shop, measures=["orders.revenue"], dimensions=["regions.name"])
    assert error.code == "ambiguous_join"
    assert "orders -> customers -> regions" in error.message
    assert "orders -> stores -> regions" in error.message
    assert error.details["from"] == "orders" and error.details["to"] == "regions"
    # Customers alone still resolve: the path to customers is unique.
    ops.query(
        {
            "projectDir": str(semantic_shop),
            "measures": ["orders.revenue"],
            "dimensions": ["customers.segment"],
        }
    )


def test_missing_join_path_names_sources(semantic_shop: Path) -> None:
    write(
        semantic_shop / "semantic-layer/warehouse/islands.yaml",
        "name: islands\ntable: islands\ncolumns: [{name: id, type: number}]\n",
    )
    error = query_error(semantic_shop, measures=["orders.revenue"], dimensions=["islands.id"])
    assert error.code == "no_join_path"
    assert "orders" in error.message and "islands" in error.message


def test_missing_grain_on_fanout(semantic_shop: Path) -> None:
    path = semantic_shop / "semantic-layer/warehouse/customers.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("grain: [id]\n", ""), encoding="utf-8")
    error = query_error(
        semantic_shop, measures=["customers.customer_count"], dimensions=["orders.status"]
    )
    assert error.code == "missing_grain"
    assert "customers.yaml" in error.message


@pytest.mark.parametrize(
    ("bad_filter", "expected"),
    [
        ("1=1; DROP TABLE orders", "single SQL expression"),
        ("orders.amount > 1; DELETE FROM orders", "single SQL expression"),
        ("orders.id IN (SELECT id FROM orders)", "subquery"),
        ("EXISTS (SELECT 1 FROM orders)", "subquery"),
        ("orders.nope = 1", "unknown column 'orders.nope'"),
        ("status = 'paid'", "must be written source.column"),
        ('orders.status = "paid"', "must be written source.column"),
        ("sum(orders.amount) > 10", "aggregate"),
        ("orders.amount", "must be a condition"),
        ("orders.revenue > 10 OR orders.status = 'x'", "mixes measures and columns"),
        ("", "non-empty"),
        ("orders.amount >", "cannot parse"),
        ("load_extension('x') = 1", "not allowed"),
        # `x IN name` / `x IN f(...)`: SQLite reads a table or a table function there.
        ("orders.id IN pragma_table_info('orders')", "IN takes a list in parentheses"),
        ("orders.id IN orders", "IN takes a list in parentheses"),
        ("orders.id IN customers.id", "IN takes a list in parentheses"),
        ("ANY orders.amount", "must be a condition"),
    ],
)
def test_bad_filters_are_refused(semantic_shop: Path, bad_filter: str, expected: str) -> None:
    error = query_error(
        semantic_shop, measures=["orders.revenue"], filters=[bad_filter], execute=True
    )
    assert error.code == "invalid_filter", error.message
    assert expected in error.message


def test_table_must_be_a_table_name(semantic_shop: Path) -> None:
    path = semantic_shop / "semantic-layer/warehouse/regions.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "table: regions", "table: \"pragma_table_info('orders')\""
        ),
        encoding="utf-8",
    )
    [error] = errors_of(semantic_shop)
    assert (error["file"], error["key"], error["line"]) == (
        "semantic-layer/warehouse/regions.yaml",
        "table",
        2,
    )
    assert "is not a table name" in error["message"]


def test_injection_filter_leaves_table_intact(semantic_shop: Path) -> None:
    error = query_error(
        semantic_shop,
        measures=["orders.order_count"],
        filters=["1=1; DROP TABLE orders"],
        execute=True,
    )
    assert error.code == "invalid_filter"
    con = sqlite3.connect(semantic_shop / "warehouse.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM orders").fetchone() == (11,)
    finally:
        con.close()


@pytest.mark.parametrize(
    ("query", "code", "expected"),
    [
        ({"measures": []}, "invalid_query", "at least one measure"),
        ({"measures": ["orders.revenue", "orders.revenue"]}, "invalid_query", "twice"),
        (
            {"measures": ["orders.revenue"], "dimensions": ["orders.created_at:hour"]},
            "invalid_query",
            "unknown granularity 'hour'",
        ),
        (
            {"measures": ["orders.revenue"], "dimensions": ["orders.created_at:"]},
            "invalid_query",
            "give a granularity after ':'",
        ),
        (
            {"measures": ["orders.revenue"], "dimensions": ["orders.status:month"]},
            "invalid_query",
            "needs a time column",
        ),
        (
            {"measures": ["orders.revenue"], "orderBy": ["orders.status"]},
            "invalid_query",
            "not in the query",
        ),
        ({"measures": "orders.revenue"}, "invalid_payload", "list of strings"),
        ({"measures": ["orders.revenue"], "limit": 0}, "invalid_payload", "limit"),
        ({"measures": ["orders.revenue"], "execute": "yes"}, "invalid_payload", "execute"),
    ],
)
def test_bad_queries(semantic_shop: Path, query: dict, code: str, expected: str) -> None:
    error = query_error(semantic_shop, **query)
    assert error.code == code
    assert expected in error.message


def test_query_needs_a_project_location() -> None:
    with pytest.raises(OpError) as info:
        ops.query({"measures": ["orders.revenue"]})
    assert info.value.code == "invalid_payload"


@pytest.mark.parametrize("pure", [True, False], ids=["pure-python-yaml", "libyaml"])
def test_yaml_line_numbers_with_both_parsers(
    semantic_shop: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    import yaml

    from semantic_layer import yamlio

    if not pure and not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML built without libyaml")
    monkeypatch.setattr(yamlio, "PURE_LOADER", yaml.SafeLoader if pure else None)
    path = semantic_shop / "semantic-layer/warehouse/regions.yaml"
    for text, line in [
        ("name: regions\ntable: regions\ncolumns:\n  - {name: id, type: number\n", 4),
        ("name: regions\ntable: [\n", 2),
        ("name: regions\n  table: regions\ncolumns: []\n", 2),
        ("name: regions\ntable: regions\n\tcolumns: []\n", 3),
    ]:
        path.write_text(text, encoding="utf-8")
        [error] = errors_of(semantic_shop)
        assert (error["file"], error["line"]) == ("semantic-layer/warehouse/regions.yaml", line), (
            text,
            error,
        )


def test_query_sees_edits_to_the_project(semantic_shop: Path) -> None:
    first = ops.query({"projectDir": str(semantic_shop), "measures": ["orders.revenue"]})
    path = semantic_shop / "semantic-layer/warehouse/orders.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("sum(amount)", "sum(amount * 2)"),
        encoding="utf-8",
    )
    second = ops.query({"projectDir": str(semantic_shop), "measures": ["orders.revenue"]})
    assert "orders.amount * 2" in second["sql"] and "* 2" not in first["sql"]
    path.write_text("name: [\n", encoding="utf-8")
    assert query_error(semantic_shop, measures=["orders.revenue"]).code == "invalid_yaml"


def test_comments_in_filters_are_dropped(semantic_shop: Path) -> None:
    result = ops.query(
        {
            "projectDir": str(semantic_shop),
            "measures": ["orders.revenue"],
            "filters": ["orders.amount > 1 -- */ DROP TABLE orders; /*", "/* x */ orders.id > 0"],
        }
    )
    assert "DROP" not in result["sql"] and "/*" not in result["sql"] and "--" not in result["sql"]
    assert "orders.amount > 1" in result["sql"] and "orders.id > 0" in result["sql"]
