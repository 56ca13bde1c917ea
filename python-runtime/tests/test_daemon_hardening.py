"""The daemon under hostile local clients (no token): floods, fd exhaustion, log flooding.

Each test spawns the real daemon (``server.serve`` in a subprocess, as test_daemon_server.py
does) with a 1024 file-descriptor limit, and drives it over loopback only. Floods are bounded
in count and time and closed by the test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TOKEN = "cd" * 32

# argv: state_file token_file idle_timeout log_file ("-" for none). Env: TEST_NOFILE (fd limit),
# TEST_ROTATE_BYTES (log rotation threshold).
BOOTSTRAP = """
import os, resource, sys
from ktx_daemon import server

nofile = int(os.environ.get("TEST_NOFILE", "0"))
if nofile:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
if os.environ.get("TEST_ROTATE_BYTES"):
    try:
        from ktx_daemon import log
        log.ROTATE_BYTES = int(os.environ["TEST_ROTATE_BYTES"])
    except ImportError:
        pass
kwargs = {}
if sys.argv[4] != "-":
    kwargs["log_file"] = sys.argv[4]
sys.exit(server.serve(state_file=sys.argv[1], token_file=sys.argv[2],
                      idle_timeout=float(sys.argv[3]), **kwargs))
"""


class Daemon:
    def __init__(self, proc: subprocess.Popen, state: dict, log: Path) -> None:
        self.proc = proc
        self.state = state
        self.port = int(state["port"])
        self.log = log

    def call(self, timeout: float = 5.0) -> float:
        """One authenticated runtime.ping on a fresh connection; returns the seconds it took."""
        began = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            body = json.dumps({"abi": 1, "op": "runtime.ping", "payload": {}}).encode()
            c.request(
                "POST",
                "/v1/call",
                body,
                {
                    "Host": f"127.0.0.1:{self.port}",
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/json",
                },
            )
            resp = c.getresponse()
            data = json.loads(resp.read())
        finally:
            c.close()
        assert resp.status == 200 and data["ok"] is True, data
        return time.monotonic() - began

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


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


@contextlib.contextmanager
def spawn(
    tmp_path: Path,
    idle_timeout: float = 60.0,
    nofile: int = 1024,
    log_file: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[Daemon]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    os.chmod(token_file, 0o600)
    state_file = tmp_path / "daemon" / "state.json"
    log_path = tmp_path / "daemon.log"
    full_env = dict(os.environ, PYTHONPATH=str(SRC), TEST_NOFILE=str(nofile), **(env or {}))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                BOOTSTRAP,
                str(state_file),
                str(token_file),
                str(idle_timeout),
                str(log_path) if log_file else "-",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=full_env,
        )
    try:
        state = _wait_for(
            lambda: proc.poll() is None and _read_state(state_file), what="state file"
        )
        yield Daemon(proc, state, log_path)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def many_fds(n: int) -> Iterator[None]:
    """Let this test process hold ``n`` more sockets than usual."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, n + 512) if soft != resource.RLIM_INFINITY else soft
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"skipping: the hard fd limit {hard} is below the {want} this flood needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _flood(port: int, count: int, kinds: tuple[str, ...]) -> list[socket.socket]:
    """Open ``count`` connections without the token (non-blocking), each doing one of ``kinds``.

    idle: connect and send nothing; partial: half a request head, never finished; junk: bytes
    that are no HTTP; noauth: a complete request without the token.
    """
    payloads = {
        "idle": b"",
        "partial": b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        "junk": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
        "noauth": f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode(),
    }
    socks: list[socket.socket] = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    # Wait (bounded) until the handshakes completed, so the flood is really there before the
    # real client comes: a connection still in SYN retry costs the daemon nothing.
    pending = {s.fileno(): (i, s) for i, s in enumerate(socks)}
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + 5.0
    while pending and time.monotonic() < deadline:
        for fd, _events in poller.poll(100):
            i, s = pending.pop(fd)
            poller.unregister(fd)
            data = payloads[kinds[i % len(kinds)]]
            if data:
                with contextlib.suppress(OSError):
                    s.send(data)
    return socks


def _close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()


def test_a_flood_of_2000_connections_without_token_does_not_starve_a_real_call(tmp_path):
    with many_fds(2100), spawn(tmp_path, nofile=1024) as daemon:
        baseline_fds = daemon.open_fds()
        daemon.call()
        socks = _flood(daemon.port, 2000, ("idle", "partial", "junk", "noauth"))
        try:
            # The flood is still open (2000 sockets against a 1024-fd daemon).
            took = [daemon.call(timeout=3.0) for _ in range(3)]
            assert max(took) < 1.0, f"authenticated calls took {took} s under the flood"
            assert daemon.open_fds() < 1024
        finally:
            _close_all(socks)
        # Recovers: the connections are gone from the daemon and calls are fast again.
        _wait_for(lambda: daemon.open_fds() <= baseline_fds + 4, timeout=10, what="fds released")
        assert daemon.call() < 1.0
        assert daemon.proc.poll() is None


def test_1100_idle_connections_do_not_exhaust_a_1024_fd_limit(tmp_path):
    with many_fds(1200), spawn(tmp_path, nofile=1024) as daemon:
        socks = _flood(daemon.port, 1100, ("idle",))
        try:
            took = [daemon.call(timeout=3.0) for _ in range(3)]
            assert max(took) < 1.0, f"authenticated calls took {took} s with 1100 idle sockets"
            # Idle connections without a complete request are closed after 2 s.
            _wait_for(lambda: daemon.open_fds() < 64, timeout=10, what="idle connections closed")
        finally:
            _close_all(socks)
        assert daemon.call() < 1.0


def _refused_request(port: int, target: bytes = b"/health") -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 401"), reply[:80]


def test_refused_requests_do_not_reset_the_idle_timer(tmp_path):
    idle = 1.5
    with spawn(tmp_path, idle_timeout=idle) as daemon:
        began = time.monotonic()
        # Keep knocking without the token for well past the idle timeout.
        while daemon.proc.poll() is None and time.monotonic() - began < idle + 4.0:
            with contextlib.suppress(OSError, AssertionError):
                _refused_request(daemon.port)
            time.sleep(0.05)  # pacing, not synchronisation
        assert daemon.proc.poll() is not None, (
            f"daemon still running {time.monotonic() - began:.1f} s after start with "
            f"idle timeout {idle} s: refused requests kept it alive"
        )


def test_refused_requests_are_rate_limited_and_sanitised_in_the_log(tmp_path):
    with spawn(tmp_path) as daemon:
        began = time.monotonic()
        target = b"/v1/c\x1b[2Jall\x07?token=SECRET-QUERY"
        for _ in range(400):
            _refused_request(daemon.port, target)
        elapsed = time.monotonic() - began
        # The "suppressed" summary follows within a second of the burst.
        text = _wait_for(
            lambda: (t := daemon.log.read_bytes()).count(b"suppressed") and t,
            timeout=5,
            what="suppressed summary in daemon.log",
        )
    lines = [line for line in text.splitlines() if b"-> 401" in line]
    assert len(lines) <= 10 * (elapsed + 2), f"{len(lines)} lines for 400 refused requests"
    assert b"SECRET-QUERY" not in text and b"?token" not in text
    assert b"\x1b" not in text and b"\x07" not in text
    assert b"/v1/c\\x1b[2Jall\\x07 -> 401" in text
    summary = [line for line in text.splitlines() if b"suppressed" in line]
    assert summary and b"similar line(s)" in summary[0]


def test_daemon_log_is_rotated_at_the_size_cap(tmp_path):
    cap = 32 * 1024
    env = {"TEST_ROTATE_BYTES": str(cap), "KTX_DAEMON_ACCESS_LOG": "1"}
    with spawn(tmp_path, log_file=True, env=env) as daemon:
        c = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
        headers = {"Host": f"127.0.0.1:{daemon.port}", "Authorization": f"Bearer {TOKEN}"}
        for i in range(1500):  # ~80 bytes of access log each: about 4 times the cap
            c.request("GET", f"/health?n={i}", headers=headers)
            resp = c.getresponse()
            resp.read()
            assert resp.status == 200
        c.close()
        daemon.call()
        rotated = daemon.log.with_name("daemon.log.1")
        assert rotated.is_file(), "daemon.log was never rotated"
        slack = 512  # the line that crossed the cap
        assert daemon.log.stat().st_size <= cap + slack
        assert rotated.stat().st_size <= cap + slack
        assert b"log rotated" in daemon.log.read_bytes()
        assert oct(daemon.log.stat().st_mode & 0o777) == "0o600"
