"""The op contract as the Rust CLI types it (``ktx_runtime::ops``), from the Python side.

* Every ``OpError`` / ``SemanticError`` raised in ``src`` keeps close names as data: no
  "did you mean" text in a message, and ``details["suggestions"]`` (a list of strings) on
  every error raised after close matches were computed. The CLI prints them from the data.
* The responses the Rust round-trip tests decode (``crates/ktx-runtime/tests/fixtures/ops``)
  are real responses of these ops: this test produces them again and compares their shapes.
  ``KTX_UPDATE_OP_FIXTURES=1`` rewrites the fixture files.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from ktx_daemon import abi
from ktx_daemon.ops import embedding

SRC = Path(__file__).resolve().parents[1] / "src"
FIXTURES = Path(__file__).resolve().parents[2] / "crates/ktx-runtime/tests/fixtures/ops"
ERRORS = {"OpError", "SemanticError"}
CLOSE_MATCHES = {"get_close_matches", "_suggest"}
HINT = "did you mean"


# -- suggestions are data ---------------------------------------------------------------------


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def _error_calls_violations(path: Path) -> list[str]:
    """``file:line: why`` for each error call that carries a hint as text or drops suggestions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(SRC)
    problems = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in [tree, *scopes]:
        body = list(ast.walk(scope)) if scope is not tree else list(ast.iter_child_nodes(tree))
        # Names bound to text that holds a hint: `hint = f"; did you mean {...}?"`.
        hinted = {
            t.id
            for n in body
            if isinstance(n, ast.Assign) and any(HINT in s for s in _strings(n.value))
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        matched_at = [
            n.lineno for n in body if isinstance(n, ast.Call) and _name(n.func) in CLOSE_MATCHES
        ]
        for call in body:
            if not isinstance(call, ast.Call) or _name(call.func) not in ERRORS:
                continue
            if len(call.args) < 2:
                continue
            message = call.args[1]
            where = f"{rel}:{call.lineno}"
            if any(HINT in s for s in _strings(message)):
                problems.append(f"{where}: the message spells out a suggestion")
            used = {n.id for n in ast.walk(message) if isinstance(n, ast.Name)}
            if used & hinted:
                problems.append(f"{where}: the message pastes a hint ({', '.join(used & hinted)})")
            if any(line < call.lineno for line in matched_at):
                details = call.args[2] if len(call.args) > 2 else None
                keys = (
                    {k.value for k in details.keys if isinstance(k, ast.Constant)}
                    if isinstance(details, ast.Dict)
                    else set()
                )
                if "suggestions" not in keys:
                    problems.append(f"{where}: close matches computed, no details['suggestions']")
    return problems


def test_every_op_error_keeps_suggestions_as_data() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10, files
    problems = [p for f in files for p in _error_calls_violations(f)]
    assert problems == []


def test_the_scan_finds_a_pasted_hint(tmp_path: Path, monkeypatch) -> None:
    # The scan itself: the pattern this contract replaced is reported, both ways it was written.
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(name, known):\n"
        "    close = get_close_matches(name, known)\n"
        "    hint = f'; did you mean {close}?'\n"
        "    raise SemanticError('unknown_x', f'unknown {name}{hint}', {'name': name})\n"
        "def g(name):\n"
        "    raise OpError('unknown_y', f'unknown {name}; did you mean z?')\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    problems = _error_calls_violations(bad)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "the message pastes a hint (hint)",
        "close matches computed, no details['suggestions']",
        "the message spells out a suggestion",
    ]


def _query(root: Path, **payload: Any) -> dict[str, Any]:
    return abi.handle(
        {"abi": 1, "op": "semantic.query", "payload": {"projectDir": str(root), **payload}}
    )


@pytest.mark.parametrize(
    ("payload", "code", "suggested"),
    [
        ({"measures": ["orders.revenu"]}, "unknown_measure", "orders.revenue"),
        (
            {"measures": ["orders.revenue"], "dimensions": ["customers.segmnt"]},
            "unknown_dimension",
            "customers.segment",
        ),
        (
            {"measures": ["orders.revenue"], "filters": ["orders.statu = 'x'"]},
            "invalid_filter",
            "orders.status",
        ),
        (
            {"measures": ["orders.revenue"], "filters": ["status = 'x'"]},
            "invalid_filter",
            "orders.status",
        ),
        (
            {"measures": ["orders.revenue"], "connectionId": "warehous"},
            "unknown_connection",
            "warehouse",
        ),
    ],
)
def test_suggestions_travel_as_data(semantic_shop: Path, payload, code, suggested) -> None:
    response = _query(semantic_shop, **payload)
    assert response["ok"] is False, response
    error = response["error"]
    assert error["code"] == code, error
    assert HINT not in error["message"], error
    suggestions = error["details"]["suggestions"]
    assert isinstance(suggestions, list) and all(isinstance(s, str) for s in suggestions)
    assert suggested in suggestions, error


# -- the fixtures the Rust round-trip tests decode -----------------------------------------------


class _FakeModel:
    def encode(self, texts, normalize_embeddings, **kwargs):
        value = 1.0 / embedding.DIMENSIONS**0.5 if normalize_embeddings else 0.25

        class Rows:
            def tolist(self):
                return [[value] * embedding.DIMENSIONS for _ in texts]

        return Rows()


def _responses(root: Path, demo: Path, monkeypatch) -> dict[str, dict[str, Any]]:
    bad = root / "semantic-layer/warehouse/orders.yaml"
    out = {
        "semantic_query_executed": _query(
            root,
            measures=["orders.revenue", "orders.order_count"],
            dimensions=["customers.segment"],
            execute=True,
            maxRows=2,
        ),
        "semantic_query_compile_only": _query(
            root, measures=["orders.revenue"], dimensions=["orders.created_at:month"]
        ),
        "semantic_query_unknown_measure": _query(root, measures=["orders.revenu"]),
        "demo_scaffold": abi.handle(
            {"abi": 1, "op": "demo.scaffold", "payload": {"dir": str(demo)}}
        ),
        "runtime_ping": abi.handle({"abi": 1, "op": "runtime.ping", "payload": {"x": 1}}),
        "runtime_info": abi.handle({"abi": 1, "op": "runtime.info", "payload": {}}),
    }
    validate = {"abi": 1, "op": "semantic.validate", "payload": {"projectDir": str(root)}}
    out["semantic_validate_ok"] = abi.handle(validate)
    bad.write_text(
        bad.read_text(encoding="utf-8").replace("sum(amount)", "sum(amont)", 1), encoding="utf-8"
    )
    out["semantic_validate_errors"] = abi.handle(validate)
    monkeypatch.setattr(embedding, "missing_modules", lambda: [])
    monkeypatch.setattr(embedding, "_ensure_model", lambda: _FakeModel())
    out["embedding_compute"] = abi.handle(
        {"abi": 1, "op": "embedding.compute", "payload": {"texts": ["hello", "world"]}}
    )
    return out


def _shape(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(v[0])] if v else []
    if isinstance(v, bool) or v is None:
        return repr(v) if v is None else "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def test_the_rust_fixtures_are_real_responses(
    semantic_shop: Path, tmp_path: Path, monkeypatch
) -> None:
    responses = _responses(semantic_shop, tmp_path / "demo", monkeypatch)
    for name, response in responses.items():
        expect_ok = name != "semantic_query_unknown_measure"
        assert response["ok"] is expect_ok, (name, response)
    assert responses["semantic_validate_errors"]["result"]["errors"], "the broken project must fail"
    _check_fixtures(responses)


def _check_fixtures(responses: dict[str, dict[str, Any]]) -> None:
    if os.environ.get("KTX_UPDATE_OP_FIXTURES") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for name, response in responses.items():
            text = json.dumps(response, indent=2, ensure_ascii=False) + "\n"
            (FIXTURES / f"{name}.json").write_text(text, encoding="utf-8")
    for name, response in responses.items():
        path = FIXTURES / f"{name}.json"
        assert path.is_file(), f"{path} is missing: run with KTX_UPDATE_OP_FIXTURES=1"
        stored = json.loads(path.read_text(encoding="utf-8"))
        assert _shape(stored) == _shape(response), (
            f"{name}: the op's response changed shape; rerun with KTX_UPDATE_OP_FIXTURES=1 "
            "and make the Rust types in ktx_runtime::ops match"
        )


def _placeholder_paths(response: Any, sandbox) -> Any:
    """The response with this machine's paths replaced (the fixture files are committed)."""
    text = json.dumps(response)
    text = text.replace(sandbox.cache_dir, "/home/user/.ktx/runtime/0.1.0/sandbox-cache")
    text = text.replace(sandbox.wasm, "/home/user/.ktx/bundles/lang-python/0.1.0/python.wasm")
    return json.loads(text)


def test_the_sandbox_fixtures_are_real_responses(sandbox, tmp_path: Path) -> None:
    def call(op: str, **fields: Any) -> dict[str, Any]:
        return _placeholder_paths(sandbox.call(op, **fields), sandbox)

    run = {"filename": "<string>", "timeoutMs": 10_000, "deterministic": True}
    sandbox.run("pass")  # compiled and cached: the status says cached
    responses = {
        "sandbox_status": call("sandbox.status"),
        "sandbox_run_ok": call("sandbox.run", code="print(1+1)", **run),
        "sandbox_run_exit": call("sandbox.run", code="raise ValueError('boom')", **run),
        "sandbox_run_timeout": call(
            "sandbox.run", code="while True: pass", **{**run, "timeoutMs": 200}
        ),
        "sandbox_run_invalid_payload": call("sandbox.run", code="1", timeoutMs=0),
        "sandbox_run_bundle_mismatch": call(
            "sandbox.run", code="1", wasmSha256="a" * 64, cacheDir=str(tmp_path)
        ),
    }
    assert responses["sandbox_run_ok"]["result"]["stdout"] == "2\n"
    assert responses["sandbox_run_exit"]["result"]["status"] == "exit"
    assert responses["sandbox_run_timeout"]["result"]["status"] == "timeout"
    assert responses["sandbox_run_invalid_payload"]["error"]["code"] == "invalid_payload"
    err = responses["sandbox_run_bundle_mismatch"]["error"]
    assert err["code"] == "sandbox_bundle_mismatch"
    err["details"]["wasm"] = "/home/user/.ktx/bundles/lang-python/0.1.0/python.wasm"
    _check_fixtures(responses)


# -- the ABI version ---------------------------------------------------------------------------


def test_abi_version_is_defined_once() -> None:
    import re

    definitions = []
    literals = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(SRC).as_posix()
        definitions += [rel for _ in re.finditer(r"^ABI_VERSION\s*=", text, re.M)]
        literals += [rel for _ in re.finditer(r"""["']abi["']\s*:\s*\d""", text)]
    assert definitions == ["ktx_daemon/__init__.py"]
    assert literals == [], "responses take the version from ABI_VERSION"
    assert abi.ABI_VERSION == 1
    assert abi.ok({})["abi"] == abi.ABI_VERSION
