"""The semantic ops through the real ABI (``python -m ktx_daemon call``) and the demo scaffold."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ktx_daemon import abi
from ktx_daemon.abi import OpError
from semantic_layer import demo, ops

SRC = Path(__file__).resolve().parents[1] / "src"


def call(request: dict[str, Any], cwd: Path | None = None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-m", "ktx_daemon", "call"],
        input=json.dumps(request).encode(),
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def test_ops_are_registered() -> None:
    for op in ("semantic.query", "semantic.validate", "demo.scaffold"):
        assert callable(abi.resolve(op))


def test_semantic_query_one_shot_executed(semantic_shop: Path, tmp_path: Path) -> None:
    response = call(
        {
            "abi": 1,
            "op": "semantic.query",
            "payload": {
                "projectDir": str(semantic_shop),
                "measures": ["orders.revenue", "order_items.quantity_total"],
                "dimensions": ["customers.segment"],
                "execute": True,
                "maxRows": 10,
            },
        },
        cwd=tmp_path,
    )
    assert response["abi"] == 1 and response["ok"] is True, response
    result = response["result"]
    assert set(result) == {"connectionId", "dialect", "sql", "headers", "rows", "totalRows", "plan"}
    assert result["headers"] == [
        "customers.segment",
        "orders.revenue",
        "order_items.quantity_total",
    ]
    assert result["rows"] == [["enterprise", 555.75, 17], ["smb", 269.75, 9], [None, 77.75, 6]]
    assert result["totalRows"] == 3
    assert result["plan"]["execution"]["mode"] == "executed"


def test_semantic_query_one_shot_compile_only(semantic_shop: Path) -> None:
    response = call(
        {
            "abi": 1,
            "op": "semantic.query",
            "payload": {
                "projectDir": str(semantic_shop),
                "measures": ["orders.order_count"],
                "dimensions": ["orders.created_at:week"],
            },
        }
    )
    assert response["ok"] is True, response
    result = response["result"]
    assert result["rows"] == [] and result["totalRows"] is None
    assert result["plan"]["execution"] == {"mode": "compile_only"}
    assert "'weekday 0'" in result["sql"]


def test_semantic_errors_over_the_abi(semantic_shop: Path) -> None:
    response = call(
        {
            "abi": 1,
            "op": "semantic.query",
            "payload": {"projectDir": str(semantic_shop), "measures": ["orders.revenu"]},
        }
    )
    assert response["ok"] is False
    assert response["error"]["code"] == "unknown_measure"
    assert response["error"]["details"]["suggestions"][0] == "orders.revenue"

    (semantic_shop / "semantic-layer/warehouse/regions.yaml").write_text("name: [\n")
    response = call(
        {"abi": 1, "op": "semantic.validate", "payload": {"projectDir": str(semantic_shop)}}
    )
    assert response["ok"] is True
    assert response["result"]["ok"] is False
    [error] = response["result"]["errors"]
    assert error["file"] == "semantic-layer/warehouse/regions.yaml" and error["line"] == 1


def test_import_stays_lazy() -> None:
    # `import semantic_layer` and the demo op must not pay for sqlglot.
    script = (
        "import sys, tempfile, os\n"
        "import semantic_layer\n"
        "assert 'sqlglot' not in sys.modules, 'import semantic_layer imported sqlglot'\n"
        "from ktx_daemon import abi\n"
        "d = os.path.join(tempfile.mkdtemp(), 'demo')\n"
        "r = abi.handle({'abi': 1, 'op': 'demo.scaffold', 'payload': {'dir': d}})\n"
        "assert r['ok'], r\n"
        "assert 'sqlglot' not in sys.modules, 'demo.scaffold imported sqlglot'\n"
        "r = abi.handle({'abi': 1, 'op': 'semantic.query', 'payload': "
        "{'projectDir': d, 'measures': ['orders.revenue']}})\n"
        "assert r['ok'], r\n"
        "assert 'sqlglot' in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "ok"


# -- demo -------------------------------------------------------------------------------------


def _payload_from_command(line: str) -> dict[str, Any]:
    """Turn a printed `ktx sl query ...` line into the payload the CLI would send."""
    args = shlex.split(line)
    assert args[:3] == ["ktx", "sl", "query"]
    payload: dict[str, Any] = {"measures": [], "dimensions": []}
    i = 3
    while i < len(args):
        flag = args[i]
        if flag == "--execute":
            payload["execute"] = True
            i += 1
            continue
        value = args[i + 1]
        if flag == "--measure":
            payload["measures"].append(value)
        elif flag == "--dimension":
            payload["dimensions"].append(value)
        elif flag == "--project-dir":
            payload["projectDir"] = value
        else:
            assert flag == "--format" and value in ("json", "sql", "table"), flag
        i += 2
    return payload


def test_demo_scaffold_and_its_queries(tmp_path: Path) -> None:
    target = tmp_path / "my demo"  # a space: the printed commands must quote it
    result = call({"abi": 1, "op": "demo.scaffold", "payload": {"dir": str(target)}})
    assert result["ok"] is True, result
    out = result["result"]
    assert out["dir"] == str(target)
    assert (
        out["files"]
        == out["created"]
        == [
            "ktx.yaml",
            "semantic-layer/warehouse/customers.yaml",
            "semantic-layer/warehouse/orders.yaml",
            "semantic-layer/warehouse/order_items.yaml",
            "warehouse.db",
        ]
    )
    for rel in out["files"]:
        assert (target / rel).is_file()
    assert ops.validate({"projectDir": str(target)})["ok"] is True
    queries = out["queries"]
    assert len(queries) == 3
    assert sum("--execute" in q for q in queries) == 1
    results = [ops.query(_payload_from_command(q)) for q in queries]
    executed = [r for r in results if r["plan"]["execution"]["mode"] == "executed"]
    assert len(executed) == 1
    con = sqlite3.connect(target / "warehouse.db")
    try:
        expected = con.execute(
            """
            WITH r AS (SELECT c.segment s,
                              SUM(CASE WHEN o.status <> 'refunded' THEN o.amount END) v
                       FROM orders o LEFT JOIN customers c ON c.id = o.customer_id GROUP BY 1),
                 q AS (SELECT c.segment s, SUM(i.quantity) v FROM order_items i
                       LEFT JOIN orders o ON o.id = i.order_id
                       LEFT JOIN customers c ON c.id = o.customer_id GROUP BY 1)
            SELECT r.s, r.v, q.v FROM r JOIN q ON r.s IS q.s ORDER BY r.s IS NULL, r.s
            """
        ).fetchall()
    finally:
        con.close()
    assert executed[0]["rows"] == [list(r) for r in expected]
    assert len(expected) >= 3


def test_demo_is_deterministic_and_rerunnable(tmp_path: Path) -> None:
    first = demo.scaffold(tmp_path / "a")
    second = demo.scaffold(tmp_path / "b")
    dump = []
    for d in (first["dir"], second["dir"]):
        con = sqlite3.connect(Path(d) / "warehouse.db")
        try:
            dump.append(list(con.iterdump()))
        finally:
            con.close()
    assert dump[0] == dump[1]
    # Re-running on an earlier demo keeps edits and restores missing files.
    orders = tmp_path / "a" / "semantic-layer/warehouse/orders.yaml"
    orders.write_text(orders.read_text() + "# my edit\n")
    (tmp_path / "a" / "warehouse.db").unlink()
    again = demo.scaffold(tmp_path / "a")
    assert again["created"] == ["warehouse.db"]
    assert "semantic-layer/warehouse/orders.yaml" in again["kept"]
    assert orders.read_text().endswith("# my edit\n")


def test_demo_refuses_a_foreign_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OpError) as info:
        ops.scaffold({"dir": str(tmp_path)})
    assert info.value.code == "demo_dir_not_empty"
    assert str(tmp_path) in info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "ktx.yaml").write_text("connections: {}\n")
    with pytest.raises(OpError) as info:
        ops.scaffold({"dir": str(tmp_path)})
    assert info.value.code == "demo_dir_not_empty"
    with pytest.raises(OpError) as info:
        ops.scaffold({"dir": str(tmp_path / "notes.txt")})
    assert info.value.code == "demo_dir_not_empty"
    with pytest.raises(OpError) as info:
        ops.scaffold({})
    assert info.value.code == "invalid_payload"
