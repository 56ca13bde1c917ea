"""Bounds on SQL execution: timeout validation, time, value size, memory, client disconnects."""

from __future__ import annotations

import http.client
import json
import math
import os
import resource
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ktx_daemon.abi import OpError
from semantic_layer import execute, ops
from test_daemon_server import TOKEN, _read_state, _spawn, _wait_for

HUGE_FILTER = "length(randomblob(1000000000)) > 0"


def _payload(shop: Path, **extra) -> dict:
    return {
        "projectDir": str(shop),
        "measures": ["orders.order_count"],
        "execute": True,
        **extra,
    }


@pytest.mark.parametrize(
    "timeout",
    [math.nan, math.inf, -math.inf, 0, 0.0, -1, -0.5, True, "5", 10**400, 86400.5],
    ids=lambda v: repr(v)[:12],
)
def test_non_finite_or_non_positive_timeouts_are_refused(semantic_shop: Path, timeout):
    with pytest.raises(OpError) as err:
        ops.query(_payload(semantic_shop, timeoutSeconds=timeout))
    assert err.value.code == "invalid_payload"
    assert err.value.details == {"field": "timeoutSeconds"}
    assert "greater than 0" in err.value.message


@pytest.mark.parametrize("timeout", [0.25, 1, 86400])
def test_valid_timeouts_are_accepted(semantic_shop: Path, timeout):
    result = ops.query(_payload(semantic_shop, timeoutSeconds=timeout))
    assert result["totalRows"] == 1


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_gigabyte_blob_filter_fails_fast_without_the_memory(semantic_shop: Path):
    before = _max_rss_mib()
    began = time.monotonic()
    with pytest.raises(OpError) as err:
        ops.query(_payload(semantic_shop, filters=[HUGE_FILTER], timeoutSeconds=2))
    took = time.monotonic() - began
    assert took < 2.2, f"took {took:.2f} s against a 2 s timeout"
    assert err.value.code == "execution_error"
    assert "16 MiB limit of one value" in err.value.message
    assert _max_rss_mib() - before < 200, "the query allocated the blob anyway"


def _blank_db(tmp_path: Path) -> Path:
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    return db


# Every row builds an 8 MB blob (tens of ms) in a handful of opcodes: an opcode-count progress
# handler alone would check the deadline only every few seconds.
SLOW_ROWS = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM c WHERE length(randomblob(8000000)) > 0"
)


def test_the_timeout_holds_within_ten_percent_when_each_row_is_slow(tmp_path: Path):
    db = _blank_db(tmp_path)
    timeout = 1.5
    began = time.monotonic()
    with pytest.raises(Exception) as err:
        execute.run_sqlite(db, SLOW_ROWS, timeout=timeout)
    took = time.monotonic() - began
    assert getattr(err.value, "code", None) == "execution_timeout", err.value
    assert timeout * 0.99 <= took <= timeout * 1.1, f"interrupted after {took:.2f} s"


def test_values_over_the_length_limit_are_refused(tmp_path: Path):
    db = _blank_db(tmp_path)
    with pytest.raises(Exception) as err:
        execute.run_sqlite(db, f"SELECT length(zeroblob({execute.MAX_VALUE_BYTES + 1}))")
    assert getattr(err.value, "code", None) == "execution_error", err.value
    assert err.value.details["limitBytes"] == execute.MAX_VALUE_BYTES
    ok = execute.run_sqlite(db, f"SELECT length(zeroblob({execute.MAX_VALUE_BYTES}))")
    assert ok.rows == [[execute.MAX_VALUE_BYTES]]


# -- in the daemon ----------------------------------------------------------------------------


@pytest.fixture
def daemon_proc(tmp_path: Path):
    proc, state_file = _spawn(tmp_path)
    try:
        state = _wait_for(
            lambda: proc.poll() is None and _read_state(state_file), what="state file"
        )
        yield proc, int(state["port"]), tmp_path / "daemon.log"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _call_bytes(port: int, payload: dict) -> bytes:
    body = json.dumps({"abi": 1, "op": "semantic.query", "payload": payload}).encode()
    head = (
        f"POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_four_concurrent_heavy_queries_keep_the_daemon_small(semantic_shop: Path, daemon_proc):
    proc, port, _log = daemon_proc
    payload = _payload(semantic_shop, filters=[HUGE_FILTER], timeoutSeconds=20)
    answers: list[dict] = []

    def one() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"abi": 1, "op": "semantic.query", "payload": payload})
        c.request(
            "POST",
            "/v1/call",
            body,
            {"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {TOKEN}"},
        )
        answers.append(json.loads(c.getresponse().read()))
        c.close()

    threads = [threading.Thread(target=one, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        hwm = _vm_hwm_mib(proc.pid)
        assert hwm < 500, f"daemon peak memory {hwm:.0f} MiB with four queries running"
        time.sleep(0.05)
    assert len(answers) == 4, "the four queries did not all answer within 30 s"
    for answer in answers:
        assert answer["ok"] is False and answer["error"]["code"] == "execution_error", answer
    assert _vm_hwm_mib(proc.pid) < 500


def test_a_query_stops_when_its_client_disconnects(semantic_shop: Path, daemon_proc):
    proc, port, log = daemon_proc
    con = sqlite3.connect(semantic_shop / "warehouse.db")
    con.execute(
        "INSERT INTO orders (customer_id, status, amount, created_at) "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 20000) "
        "SELECT 1, 'completed', 1.0, '2024-01-01 00:00:00' FROM n"
    )
    con.commit()
    con.close()
    # ~20,000 rows x a 2 MB blob each: minutes of CPU if nothing stops it.
    payload = _payload(
        semantic_shop, filters=["length(randomblob(2000000)) > 0"], timeoutSeconds=600
    )
    cpu0 = _cpu_seconds(proc.pid)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(_call_bytes(port, payload))
    _wait_for(lambda: _cpu_seconds(proc.pid) - cpu0 > 0.5, timeout=20, what="the query running")
    s.close()
    _wait_for(
        lambda: b"cancelled: its client disconnected" in log.read_bytes(),
        timeout=5,
        what="the daemon to log the cancelled call",
    )
    # And it really stopped computing.
    cpu1 = _cpu_seconds(proc.pid)
    time.sleep(1.0)  # a measurement window, not synchronisation
    assert _cpu_seconds(proc.pid) - cpu1 < 0.3
    assert proc.poll() is None
