"""Tests of the loopback daemon (``ktx_daemon.server``) run as a real subprocess."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ktx_daemon import server

SRC = Path(__file__).resolve().parents[1] / "src"

# Runs the daemon with one extra, test-only op: ``test.sleep`` sleeps payload["seconds"].
BOOTSTRAP = """
import os, sys, time
from ktx_daemon import abi, server

if os.environ.get("TEST_DRAIN_SECONDS"):
    server.SHUTDOWN_DRAIN_SECONDS = float(os.environ["TEST_DRAIN_SECONDS"])

def sleep(payload):
    time.sleep(float(payload.get("seconds", 0)))
    return {"slept": payload.get("seconds", 0)}

abi.OPS["test.sleep"] = "__main__:sleep"

def warm():
    time.sleep(float(sys.argv[5]))
    if sys.argv[6] == "fail":
        raise RuntimeError("no model here")
    return {"model": "test-model"}

server.register_warmer("local-embeddings", warm)

# Optional: hold start_warmers back (argv[7] seconds) to widen the window between the state
# file being written and the warmer threads starting.
if float(sys.argv[7]) > 0:
    _start_warmers = server.Daemon.start_warmers

    def late_start_warmers(self):
        time.sleep(float(sys.argv[7]))
        _start_warmers(self)

    server.Daemon.start_warmers = late_start_warmers

sys.exit(server.serve(state_file=sys.argv[1], token_file=sys.argv[2],
                      idle_timeout=float(sys.argv[3]), features=sys.argv[4].split(",")))
"""

TOKEN = "ab" * 32


class Daemon:
    def __init__(self, proc: subprocess.Popen, state_file: Path, token: str) -> None:
        self.proc = proc
        self.state_file = state_file
        self.token = token
        self.state: dict = {}

    @property
    def port(self) -> int:
        return int(self.state["port"])

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = "default",
        host: str | None = "default",
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, dict, http.client.HTTPResponse]:
        own = conn is None
        c = conn or self.conn()
        headers = {}
        if token == "default":
            token = self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if host == "default":
            host = f"127.0.0.1:{self.port}"
        c.putrequest(method, path, skip_host=True)
        if host is not None:
            c.putheader("Host", host)
        for k, v in headers.items():
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Type", "application/json")
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        resp = c.getresponse()
        data = resp.read()
        if own:
            c.close()
        return resp.status, (json.loads(data) if data else {}), resp

    def call(self, op: str, payload: dict, conn=None) -> dict:
        body = json.dumps({"abi": 1, "op": op, "payload": payload}).encode()
        status, data, _ = self.request("POST", "/v1/call", body, conn=conn)
        assert status == 200, data
        return data


def _wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _read_state(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _spawn(
    tmp_path: Path,
    idle_timeout: float = 60.0,
    token_mode: int = 0o600,
    token=TOKEN,
    features: str = "core",
    warm_seconds: float = 0.0,
    warm_result: str = "ok",
    warmers_delay: float = 0.0,
    drain_seconds: float | None = None,
):
    token_file = tmp_path / "token"
    if token is not None:
        token_file.write_text(token)
        os.chmod(token_file, token_mode)
    state_file = tmp_path / "daemon" / "state.json"
    log = open(tmp_path / "daemon.log", "ab")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    if drain_seconds is not None:
        env["TEST_DRAIN_SECONDS"] = str(drain_seconds)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            BOOTSTRAP,
            str(state_file),
            str(token_file),
            str(idle_timeout),
            features,
            str(warm_seconds),
            warm_result,
            str(warmers_delay),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
    )
    log.close()
    return proc, state_file


@pytest.fixture
def daemon(tmp_path: Path):
    proc, state_file = _spawn(tmp_path)
    d = Daemon(proc, state_file, TOKEN)
    try:
        d.state = _wait_for(
            lambda: proc.poll() is None and _read_state(state_file), what="state file"
        )
        yield d
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_state_file_is_complete_and_owner_only(daemon: Daemon):
    state = daemon.state
    assert set(state) == {
        "schemaVersion",
        "pid",
        "host",
        "port",
        "version",
        "features",
        "startedAt",
        "instanceId",
        "abi",
    }
    assert state["pid"] == daemon.proc.pid
    assert state["host"] == "127.0.0.1"
    assert state["features"] == ["core"]
    assert state["abi"] == 1
    assert os.stat(daemon.state_file).st_mode & 0o777 == 0o600
    # No temporary file is left next to the state.
    assert [p.name for p in daemon.state_file.parent.iterdir()] == ["state.json"]


def test_health_reports_identity(daemon: Daemon):
    status, body, resp = daemon.request("GET", "/health")
    assert status == 200
    assert resp.getheader("Content-Length") is not None
    assert body["status"] == "ok"
    assert body["instanceId"] == daemon.state["instanceId"]
    assert body["pid"] == daemon.proc.pid
    assert body["version"] == daemon.state["version"]
    assert body["features"] == ["core"]
    assert body["abi"] == 1


def test_call_uses_the_abi_dispatcher(daemon: Daemon):
    assert daemon.call("runtime.ping", {"x": 1}) == {
        "abi": 1,
        "ok": True,
        "result": {"echo": {"x": 1}},
    }
    failed = daemon.call("no.such.op", {})
    assert failed["ok"] is False and failed["error"]["code"] == "unknown_op"
    status, body, _ = daemon.request("POST", "/v1/call", b"{not json")
    assert status == 200 and body["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("token", [None, "wrong", "ab" * 31 + "ac", ""])
def test_requests_without_the_right_token_get_401(daemon: Daemon, token):
    for method, path, body in [
        ("GET", "/health", None),
        ("POST", "/v1/call", b'{"abi":1,"op":"runtime.ping"}'),
        ("POST", "/v1/shutdown", b""),
        ("GET", "/nope", None),
    ]:
        status, data, resp = daemon.request(method, path, body, token=token)
        assert status == 401, (method, path, data)
        assert resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert daemon.proc.poll() is None
    assert daemon.state_file.exists()


def test_basic_auth_scheme_is_refused(daemon: Daemon):
    c = daemon.conn()
    c.putrequest("GET", "/health", skip_host=True)
    c.putheader("Host", f"127.0.0.1:{daemon.port}")
    c.putheader("Authorization", f"Basic {TOKEN}")
    c.endheaders()
    assert c.getresponse().status == 401


@pytest.mark.parametrize(
    "host", [None, "evil.example:{port}", "127.0.0.1", "127.0.0.1:1", "localhost", "[::1]:{port}"]
)
def test_wrong_host_is_rejected(daemon: Daemon, host):
    if host is not None:
        host = host.format(port=daemon.port)
    status, data, _ = daemon.request("GET", "/health", host=host)
    assert status == 403, data
    assert data["error"] == "bad_host"


def test_localhost_host_is_accepted(daemon: Daemon):
    status, _, _ = daemon.request("GET", "/health", host=f"localhost:{daemon.port}")
    assert status == 200


def test_unknown_route_is_404_and_wrong_method_405(daemon: Daemon):
    assert daemon.request("GET", "/v2/whatever")[0] == 404
    assert daemon.request("GET", "/v1/call")[0] == 405
    assert daemon.request("POST", "/health", b"")[0] == 405


def test_body_limit_and_length_required(daemon: Daemon):
    c = daemon.conn()
    c.putrequest("POST", "/v1/call", skip_host=True)
    c.putheader("Host", f"127.0.0.1:{daemon.port}")
    c.putheader("Authorization", f"Bearer {TOKEN}")
    c.putheader("Content-Length", str(server.MAX_BODY_BYTES + 1))
    c.endheaders()
    resp = c.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["error"] == "body_too_large"
    c.close()

    c = daemon.conn()
    c.putrequest("POST", "/v1/call", skip_host=True)
    c.putheader("Host", f"127.0.0.1:{daemon.port}")
    c.putheader("Authorization", f"Bearer {TOKEN}")
    c.endheaders()
    assert c.getresponse().status == 411


def test_keep_alive_reuses_one_connection(daemon: Daemon):
    c = daemon.conn()
    try:
        for i in range(20):
            assert daemon.call("runtime.ping", {"i": i}, conn=c)["result"] == {"echo": {"i": i}}
            if i == 0:
                local = c.sock.getsockname()
            assert c.sock is not None and c.sock.getsockname() == local
        status, _, resp = daemon.request("GET", "/health", conn=c)
        assert status == 200 and c.sock.getsockname() == local
        assert resp.getheader("Connection") != "close"
    finally:
        c.close()


def test_health_answers_while_a_long_call_runs(daemon: Daemon):
    import threading

    result: dict = {}

    def slow():
        result["response"] = daemon.call("test.sleep", {"seconds": 2})

    t = threading.Thread(target=slow)
    began = time.monotonic()
    t.start()
    time.sleep(0.2)
    status, body, _ = daemon.request("GET", "/health")
    answered = time.monotonic() - began
    assert status == 200 and body["status"] == "ok"
    assert answered < 1.5, answered
    assert t.is_alive()
    t.join(10)
    assert result["response"]["result"] == {"slept": 2}


def test_shutdown_removes_own_state_then_exits(daemon: Daemon):
    status, body, resp = daemon.request("POST", "/v1/shutdown", b"")
    assert status == 200
    assert body["instanceId"] == daemon.state["instanceId"]
    # The state is gone before the answer arrives.
    assert not daemon.state_file.exists()
    assert daemon.proc.wait(timeout=10) == 0


def test_shutdown_leaves_a_successors_state_alone(daemon: Daemon):
    other = dict(daemon.state, instanceId="f" * 32, pid=1)
    server.write_state_atomically(str(daemon.state_file), other)
    status, _, _ = daemon.request("POST", "/v1/shutdown", b"")
    assert status == 200
    assert daemon.proc.wait(timeout=10) == 0
    assert json.loads(daemon.state_file.read_text())["instanceId"] == "f" * 32


def test_sigterm_exits_cleanly_and_removes_state(daemon: Daemon):
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) == 0
    assert not daemon.state_file.exists()


def test_idle_timeout_exits_and_removes_state(tmp_path: Path):
    proc, state_file = _spawn(tmp_path, idle_timeout=0.5)
    try:
        _wait_for(lambda: _read_state(state_file), what="state file")
        assert proc.wait(timeout=10) == 0
        assert not state_file.exists()
        assert "idle for 0.5 s" in (tmp_path / "daemon.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_idle_timeout_waits_for_a_running_call(tmp_path: Path):
    proc, state_file = _spawn(tmp_path, idle_timeout=0.5)
    try:
        state = _wait_for(lambda: _read_state(state_file), what="state file")
        d = Daemon(proc, state_file, TOKEN)
        d.state = state
        assert d.call("test.sleep", {"seconds": 1.2})["result"] == {"slept": 1.2}
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize(
    "token, mode, message",
    [
        (None, 0o600, "cannot open token file"),
        ("", 0o600, "is empty"),
        ("  \n", 0o600, "is empty"),
        (TOKEN, 0o644, "must be owner-only"),
    ],
)
def test_refuses_to_start_with_a_bad_token_file(tmp_path: Path, token, mode, message):
    proc, state_file = _spawn(tmp_path, token=token, token_mode=mode)
    assert proc.wait(timeout=10) == 2
    assert message in (tmp_path / "daemon.log").read_text()
    assert not state_file.exists()


def test_binds_loopback_only(daemon: Daemon):
    # Nothing answers on another local address for that port. 127.0.0.2 is always there on
    # Linux (all of 127/8 is loopback) and reaches a socket bound to 0.0.0.0, not to 127.0.0.1.
    addresses = {"127.0.0.2"}
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        addresses |= {info[4][0] for info in infos if not info[4][0].startswith("127.")}
    except OSError:
        pass
    for address in sorted(addresses):
        with pytest.raises(OSError):
            socket.create_connection((address, daemon.port), timeout=1).close()
    assert daemon.state["host"] == "127.0.0.1"


def _health(tmp_path: Path, proc, state_file: Path) -> tuple[Daemon, dict]:
    d = Daemon(proc, state_file, TOKEN)
    d.state = _wait_for(lambda: _read_state(state_file), what="state file")
    status, body, _ = d.request("GET", "/health")
    assert status == 200
    return d, body


def test_health_says_loading_while_a_warmer_runs(tmp_path: Path):
    proc, state_file = _spawn(tmp_path, features="local-embeddings", warm_seconds=1.0)
    try:
        d, body = _health(tmp_path, proc, state_file)
        assert body["features"] == ["core", "local-embeddings"]
        assert body["status"] == "loading"
        assert body["models"]["local-embeddings"]["state"] == "loading"
        # Calls are served during the warm-up.
        assert d.call("runtime.ping", {})["ok"] is True
        body = _wait_for(
            lambda: (b := d.request("GET", "/health")[1])["status"] == "ok" and b,
            what="warm-up",
        )
        model = body["models"]["local-embeddings"]
        assert model["state"] == "ready" and model["model"] == "test-model"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_health_says_loading_as_soon_as_the_state_file_exists(tmp_path: Path):
    # The warmer threads start 1.5 s after the state file is written: in that window /health
    # must already say "loading" with the models entry, never "ok" without it.
    proc, state_file = _spawn(tmp_path, features="local-embeddings", warmers_delay=1.5)
    try:
        d, body = _health(tmp_path, proc, state_file)
        assert body["status"] == "loading", body
        assert body["models"] == {"local-embeddings": {"state": "loading"}}, body
        body = _wait_for(
            lambda: (b := d.request("GET", "/health")[1])["status"] == "ok" and b,
            what="warm-up",
        )
        assert body["models"]["local-embeddings"]["state"] == "ready"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_failed_warmer_is_reported_and_the_daemon_keeps_serving(tmp_path: Path):
    proc, state_file = _spawn(tmp_path, features="local-embeddings", warm_result="fail")
    try:
        d, _ = _health(tmp_path, proc, state_file)
        body = _wait_for(
            lambda: (b := d.request("GET", "/health")[1])["status"] == "ok" and b,
            what="warm-up",
        )
        model = body["models"]["local-embeddings"]
        assert model["state"] == "failed"
        assert "no model here" in model["error"]
        assert d.call("runtime.ping", {})["ok"] is True
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_core_daemon_runs_no_warmer(daemon: Daemon):
    _, body, _ = daemon.request("GET", "/health")
    assert "models" not in body


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_a_bad_idle_timeout_refuses_to_start(tmp_path: Path, value: str):
    proc, state_file = _spawn(tmp_path, idle_timeout=float(value))
    assert proc.wait(timeout=10) == 2
    assert "--idle-timeout must be a positive number" in (tmp_path / "daemon.log").read_text()
    assert not state_file.exists()


def test_unknown_feature_refuses_to_start(tmp_path: Path):
    proc, state_file = _spawn(tmp_path, features="core,gpu")
    assert proc.wait(timeout=10) == 2
    assert "unknown feature(s) gpu" in (tmp_path / "daemon.log").read_text()
    assert not state_file.exists()


def test_an_unread_body_never_becomes_the_next_request(daemon: Daemon):
    # A body smuggling a second request on a route that ignores bodies: the server closes.
    c = daemon.conn()
    smuggled = (
        f"POST /v1/shutdown HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    status, _, resp = daemon.request("POST", "/nowhere", smuggled, conn=c)
    assert status == 404
    assert resp.getheader("Connection") == "close"
    c.close()
    time.sleep(0.3)
    assert daemon.proc.poll() is None
    assert daemon.state_file.exists()


def _raw(daemon: Daemon, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection; return everything the server sent back."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_a_garbage_request_line_gets_a_json_400_and_no_traceback(daemon: Daemon):
    # Refused by the request-line parser before a path is known.
    answer = _raw(daemon, b"GET /he alth HTTP/1.1\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert json.loads(body)["error"] == "http_error"
    # Not even a request line (HTTP/0.9 style: the answer is a bare body).
    answer = _raw(daemon, b"\x00\x01 garbage\r\n\r\n")
    assert json.loads(answer)["error"] == "http_error", answer
    time.sleep(0.2)
    log = (daemon.state_file.parent.parent / "daemon.log").read_text()
    assert "Traceback" not in log, log
    assert "- - -> 400" in log, log
    assert daemon.call("runtime.ping", {})["ok"] is True


@pytest.mark.parametrize(
    "lengths",
    [["2", "40"], ["+2"], ["0x2"], ["2 2"], ["\u0662"]],
    ids=["duplicate", "plus-sign", "hex", "two-numbers", "non-ascii-digit"],
)
def test_an_ambiguous_content_length_is_refused(daemon: Daemon, lengths):
    head = (
        f"POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\n"
    )
    head += "".join(f"Content-Length: {value}\r\n" for value in lengths)
    answer = _raw(daemon, (head + "\r\n{}").encode("utf-8"))
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b'"bad_request"' in answer


def test_a_client_that_goes_away_leaves_no_traceback(daemon: Daemon):
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        # RST instead of FIN: the server's read fails with ECONNRESET.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    assert daemon.call("runtime.ping", {})["ok"] is True
    log = (daemon.state_file.parent.parent / "daemon.log").read_text()
    assert "Traceback" not in log, log


def test_shutdown_lets_a_running_call_answer_and_refuses_new_connections(tmp_path: Path):
    import threading

    proc, state_file = _spawn(tmp_path)
    try:
        d, _ = _health(tmp_path, proc, state_file)
        result: dict = {}

        def slow():
            result["response"] = d.call("test.sleep", {"seconds": 1.5})

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)
        status, _, _ = d.request("POST", "/v1/shutdown", b"")
        assert status == 200
        assert not state_file.exists()
        # The listener closes at once: new clients are refused (and go one-shot).
        _wait_for(lambda: _refused(d.port), what="listener closed")
        t.join(10)
        assert result["response"]["result"] == {"slept": 1.5}
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # A connect racing the listener's close is reset, not refused: poll again.
        return False
    return False


def test_a_second_sigterm_cuts_the_drain_short(tmp_path: Path):
    import threading

    # Drain 60 s: only the second signal can make it exit within the wait below.
    proc, state_file = _spawn(tmp_path, drain_seconds=60)
    try:
        d, _ = _health(tmp_path, proc, state_file)
        t = threading.Thread(target=lambda: _swallow(d.call, "test.sleep", {"seconds": 30}))
        t.daemon = True
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _wait_for(lambda: not state_file.exists(), what="state removed")
        time.sleep(0.3)
        assert proc.poll() is None, "exited without draining the running call"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "exiting with 1 request(s) still running" in (tmp_path / "daemon.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _swallow(fn, *args):
    try:
        fn(*args)
    except (OSError, http.client.HTTPException, AssertionError):
        pass
