"""ABI v1 dispatcher and the one-shot ``call`` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ktx_daemon import abi

SRC = Path(__file__).resolve().parents[1] / "src"


def run_call(body: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m ktx_daemon call`` in a subprocess with the source tree importable."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(
        [sys.executable, "-m", "ktx_daemon", "call"],
        input=body,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_ping_echoes_payload():
    response = abi.handle({"abi": 1, "op": "runtime.ping", "payload": {"x": [1, 2]}})
    assert response == {"abi": 1, "ok": True, "result": {"echo": {"x": [1, 2]}}}


def test_missing_payload_is_empty_object():
    response = abi.handle({"abi": 1, "op": "runtime.ping"})
    assert response["result"] == {"echo": {}}


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ({"abi": 2, "op": "runtime.ping"}, "unsupported_abi"),
        ({"abi": True, "op": "runtime.ping"}, "unsupported_abi"),
        ({"op": "runtime.ping"}, "unsupported_abi"),
        ({"abi": 1}, "invalid_request"),
        ({"abi": 1, "op": ""}, "invalid_request"),
        ({"abi": 1, "op": "runtime.ping", "payload": [1]}, "invalid_request"),
        ([1, 2, 3], "invalid_request"),
        ({"abi": 1, "op": "no.such.op"}, "unknown_op"),
    ],
)
def test_bad_requests_get_precise_codes(request_body, code):
    response = abi.handle(request_body)
    assert response["ok"] is False
    assert response["abi"] == 1
    assert response["error"]["code"] == code
    assert response["error"]["message"]


def test_unknown_op_lists_known_ops():
    response = abi.handle({"abi": 1, "op": "no.such.op"})
    assert "runtime.ping" in response["error"]["details"]["known"]


def test_bad_json_is_an_error_response():
    response = abi.handle_raw(b"{not json")
    assert response["ok"] is False
    assert response["error"]["code"] == "invalid_json"


def test_op_crash_is_reported_as_internal_error(monkeypatch):
    def boom(payload):
        raise RuntimeError("kaput")

    monkeypatch.setitem(abi.OPS, "test.boom", "unused:unused")
    monkeypatch.setitem(abi._resolved, "test.boom", boom)
    response = abi.handle({"abi": 1, "op": "test.boom"})
    assert response["ok"] is False
    assert response["error"]["code"] == "internal_error"
    assert "kaput" in response["error"]["message"]


def test_info_reports_version_python_and_features():
    from ktx_daemon import __version__

    result = abi.handle({"abi": 1, "op": "runtime.info"})["result"]
    assert result["version"] == __version__
    assert result["python"]["implementation"]
    assert result["python"]["version"].count(".") == 2
    assert isinstance(result["features"], list)
    assert set(result["featureDetails"]) == {
        "core",
        "local-embeddings",
        "postgres",
        "duckdb",
        "mysql",
        "sandbox",
    }


def test_one_shot_call_answers_one_line_and_exits_zero():
    proc = run_call(b'{"abi": 1, "op": "runtime.ping", "payload": {"k": "v"}}')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"abi": 1, "ok": True, "result": {"echo": {"k": "v"}}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"abi": 9, "op": "runtime.ping"}', "unsupported_abi"),
        (b'{"abi": 1, "op": "nope"}', "unknown_op"),
    ],
)
def test_one_shot_errors_exit_zero_with_code(body, code):
    proc = run_call(body)
    assert proc.returncode == 0, proc.stderr
    response = json.loads(proc.stdout)
    assert response["ok"] is False
    assert response["error"]["code"] == code
