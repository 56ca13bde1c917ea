"""The loopback HTTP daemon: ``python -I -m ktx_daemon serve``.

One daemon per runtime version, started and stopped by the Rust side (crate ``ktx-daemon``).

* Binds ``127.0.0.1`` port 0 itself, then writes its state file atomically (tmp file in the same
  directory, mode 0600, ``os.replace``): ``{schemaVersion, pid, host, port, version, features,
  startedAt, instanceId, abi}``.
* Routes: ``GET /health``, ``POST /v1/call`` (the same :func:`ktx_daemon.abi.handle_raw` as the
  one-shot path), ``POST /v1/shutdown``. Every route needs ``Authorization: Bearer <token>``
  (token read from the owner-only token file) and a ``Host`` of ``127.0.0.1:<port>`` or
  ``localhost:<port>`` (DNS-rebinding defence).
* HTTP/1.1 keep-alive; every response carries ``Content-Length``.
* Connections go through :mod:`ktx_daemon.netloop`: a bounded worker pool, a connection cap
  below the file-descriptor limit, 2 s to send a complete request head, so local clients
  without the token cannot starve the real one. Only requests with the right token and Host
  count as activity for the idle timeout.
* A ``/v1/call`` whose client disconnects is cancelled (:mod:`ktx_daemon.cancel`): the SQLite
  executor's watchdog sees it within about 0.1 s and interrupts the query.
* Exits after ``idle_timeout`` seconds without requests (never during a call), on SIGTERM/SIGINT
  and on ``/v1/shutdown``; on every exit path it removes the state file only if the file still
  names this instance (compare-and-delete), so it never deletes a successor's state.
* Logs concise lines to stderr (the Rust side points stderr at ``daemon.log`` and passes
  ``--log-file``, see :mod:`ktx_daemon.log` for the size cap and the rate limit).

Warm-up hooks: a feature may register a *warmer* (for example loading an embeddings model) with
:func:`register_warmer`. Warmers for the served features are marked ``loading`` before the state
file is written and run in background threads after it; until all of them have finished,
``/health`` says ``"status": "loading"`` and the ``models`` entry shows each warmer's state.
"""

from __future__ import annotations

import hmac
import importlib
import json
import math
import os
import secrets
import select
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any

from ktx_daemon import abi, cancel, lifecycle, log, netloop
from ktx_daemon._version import __version__

STATE_SCHEMA_VERSION = 1

#: Largest request body accepted, in bytes (413 above it).
MAX_BODY_BYTES = 32 * 1024 * 1024  # = MAX_REQUEST_BODY in crates/ktx-daemon/src/client.rs

#: Seconds an idle keep-alive connection may stay open before the server closes it.
KEEPALIVE_TIMEOUT = 120.0

#: Seconds a new connection has to send a complete request head (request line + headers).
HEAD_TIMEOUT = 2.0

#: Seconds a worker waits on one read or write of an authenticated request (body, response).
IO_TIMEOUT = 30.0

#: Worker threads serving requests (health checks still answer while calls run).
WORKERS = 16

#: Seconds a worker keeps watching a kept-alive connection for the client's next request
#: before handing it back to the loop: back-to-back calls skip two thread hand-offs.
KEEPALIVE_GRACE = 0.002

#: On shutdown (``/v1/shutdown``, SIGTERM, idle timeout), seconds the daemon waits for calls
#: already running to answer before it exits. New connections are refused from the start of the
#: shutdown (clients fall back to one-shot); a second SIGTERM/SIGINT cuts the wait short. Below
#: the Rust side's 5 s wait before SIGTERM.
SHUTDOWN_DRAIN_SECONDS = 4.0

#: Log every request, not only refused ones (``KTX_DAEMON_ACCESS_LOG=1`` in the environment).
ACCESS_LOG = os.environ.get("KTX_DAEMON_ACCESS_LOG", "") not in ("", "0")

#: Features this daemon knows how to serve.
KNOWN_FEATURES = ("core", "local-embeddings", "postgres", "duckdb", "mysql", "sandbox")

#: feature -> warmer, either a callable or a lazily imported ``"module:function"`` string.
WARMERS: dict[str, Callable[[], Any] | str] = {
    "local-embeddings": "ktx_daemon.ops.embedding:load",
}


def register_warmer(feature: str, warmer: Callable[[], Any] | str) -> None:
    """Register a warm-up function run in the background when the daemon serves ``feature``.

    ``warmer`` is a callable taking no argument or a ``"module:function"`` path imported when
    the daemon starts. Its return value (if a dict) is shown under ``models[feature]`` in
    ``/health``; an exception marks the feature ``failed`` there (the daemon keeps serving).
    """
    WARMERS[feature] = warmer


def _log(message: str) -> None:
    log.log(message)


class StartupError(Exception):
    """A problem that prevents the daemon from starting (bad token file, unknown feature...)."""


def read_token(path: str) -> bytes:
    """Read the bearer token; refuse a missing, empty, foreign or group/world-accessible file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise StartupError(f"cannot open token file {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StartupError(f"token file {path} is not a regular file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise StartupError(f"token file {path} is owned by uid {info.st_uid}, not by us")
        if info.st_mode & 0o077:
            raise StartupError(
                f"token file {path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                "it must be owner-only (chmod 600)"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            token = f.read(4096).strip()
    finally:
        os.close(fd)
    if not token:
        raise StartupError(f"token file {path} is empty")
    return token


def write_state_atomically(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` as JSON to ``path`` (a 0600 file, created 0700 dir) in one rename."""
    from .atomic import atomic_write

    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    atomic_write(path, json.dumps(state, indent=2).encode("utf-8") + b"\n")


def remove_state_if_mine(path: str, instance_id: str) -> bool:
    """Delete the state file only if it still names ``instance_id``; True when it was deleted."""
    try:
        with open(path, "rb") as f:
            current = json.loads(f.read())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        _log(f"state file {path} unreadable ({exc}); leaving it alone")
        return False
    if not isinstance(current, dict) or current.get("instanceId") != instance_id:
        _log(f"state file {path} names another instance; leaving it alone")
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Daemon:
    """Shared state of one running daemon: identity, activity tracking, stop signalling."""

    def __init__(
        self, state_file: str, token: bytes, idle_timeout: float, features: list[str]
    ) -> None:
        self.state_file = state_file
        self.token = token
        self.idle_timeout = idle_timeout
        self.features = features
        self.instance_id = secrets.token_hex(16)
        self.port = 0
        self.started_at = _now_rfc3339()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_activity = time.monotonic()
        self._stop_reason: str | None = None
        #: Set by a second stop request: exit without waiting for running calls.
        self.urgent = False
        self._state_removed = False
        self.models: dict[str, dict[str, Any]] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    # -- activity ---------------------------------------------------------------------------
    def begin_request(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._last_activity = time.monotonic()

    def end_request(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_activity = time.monotonic()

    def in_flight(self) -> int:
        """Number of requests being handled right now."""
        with self._lock:
            return self._in_flight

    def idle_for(self) -> float | None:
        """Seconds since the last request ended, or None while a request runs."""
        with self._lock:
            if self._in_flight:
                return None
            return time.monotonic() - self._last_activity

    # -- stopping ---------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Ask the main loop to stop; async-signal-safe enough for a signal handler.

        A second request (e.g. SIGTERM while draining after ``/v1/shutdown``) sets
        :attr:`urgent`, which cuts the drain of running calls short.
        """
        if self._stop_reason is None:
            self._stop_reason = reason
        else:
            self.urgent = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def remove_state(self) -> None:
        """Compare-and-delete the state file (idempotent)."""
        with self._lock:
            if self._state_removed:
                return
            self._state_removed = True
        if remove_state_if_mine(self.state_file, self.instance_id):
            _log(f"removed state file {self.state_file}")

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s (less if :attr:`urgent`) for running requests to finish.

        Returns how many were still running when it gave up (0 when all finished).
        """
        deadline = time.monotonic() + timeout
        while True:
            running = self.in_flight()
            left = deadline - time.monotonic()
            if running == 0 or left <= 0 or self.urgent:
                return running
            self.wait(min(left, 0.05))

    def wait(self, timeout: float) -> None:
        """Sleep until ``timeout`` passes or a stop is requested."""
        try:
            ready, _, _ = select.select([self._wake_r], [], [], max(0.0, timeout))
        except InterruptedError:
            return
        if ready:
            try:
                os.read(self._wake_r, 64)
            except OSError:
                pass

    # -- health -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        loading = any(m.get("state") == "loading" for m in self.models.values())
        body: dict[str, Any] = {
            "status": "loading" if loading else "ok",
            "version": __version__,
            "features": self.features,
            "pid": os.getpid(),
            "instanceId": self.instance_id,
            "abi": abi.ABI_VERSION,
        }
        if self.models:
            body["models"] = {k: dict(v) for k, v in self.models.items()}
        return body

    def state(self) -> dict[str, Any]:
        return {
            "schemaVersion": STATE_SCHEMA_VERSION,
            "pid": os.getpid(),
            "host": "127.0.0.1",
            "port": self.port,
            "version": __version__,
            "features": self.features,
            "startedAt": self.started_at,
            "instanceId": self.instance_id,
            "abi": abi.ABI_VERSION,
        }

    # -- warmers ----------------------------------------------------------------------------
    def mark_warmers_loading(self) -> None:
        """Mark every served feature that has a warmer ``loading`` in ``/health``.

        Called before the state file is written: a client that finds the state file must never
        see ``status: "ok"`` without the ``models`` entry of a warmer that has not started yet.
        """
        for feature in self.features:
            if feature in WARMERS:
                self.models[feature] = {"state": "loading"}

    def start_warmers(self) -> None:
        """Run each served feature's warmer in a background thread (marking it loading first)."""
        for feature in self.features:
            warmer = WARMERS.get(feature)
            if warmer is None:
                continue
            self.models[feature] = {"state": "loading"}
            threading.Thread(
                target=self._run_warmer, args=(feature, warmer), name=f"warm-{feature}", daemon=True
            ).start()

    def _run_warmer(self, feature: str, warmer: Callable[[], Any] | str) -> None:
        began = time.monotonic()
        try:
            if isinstance(warmer, str):
                module_name, _, attr = warmer.partition(":")
                warmer = getattr(importlib.import_module(module_name), attr)
            detail = warmer()
            entry: dict[str, Any] = {"state": "ready"}
            if isinstance(detail, dict):
                entry.update(detail)
                entry["state"] = "ready"
        except Exception as exc:  # reported in /health; the daemon keeps serving
            entry = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
            _log(f"warm-up of {feature} failed: {type(exc).__name__}: {exc}")
        entry["seconds"] = round(time.monotonic() - began, 3)
        self.models[feature] = entry
        _log(f"warm-up of {feature}: {entry['state']} in {entry['seconds']} s")


class _Reader:
    """The handler's ``rfile``: the bytes the loop already read, then the socket.

    Never reads past what is asked for, so bytes of a next (pipelined) request stay in
    ``conn.inbuf`` for the next round.
    """

    def __init__(self, conn: netloop.Conn) -> None:
        self._conn = conn

    def readline(self, limit: int = -1) -> bytes:
        buf = self._conn.inbuf
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end >= 0 and (limit < 0 or end < limit):
                n = end + 1
                break
            if 0 <= limit <= len(buf):
                n = limit
                break
            start = len(buf)
            chunk = self._conn.sock.recv(65536 if limit < 0 else max(1, limit - len(buf)))
            if not chunk:
                n = len(buf)
                break
            buf += chunk
        line = bytes(buf[:n])
        del buf[:n]
        return line

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise ValueError("the daemon only reads bodies of a known length")
        buf = self._conn.inbuf
        while len(buf) < size:
            chunk = self._conn.sock.recv(min(size - len(buf), 1 << 20))
            if not chunk:
                break
            buf += chunk
        data = bytes(buf[:size])
        del buf[:size]
        return data


class _Writer:
    """The handler's ``wfile``: unbuffered ``sendall`` (headers and body leave at once)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class _Server:
    """What a handler sees as ``self.server``: the daemon and its connection loop."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.loop: netloop.ConnectionLoop | None = None

    def serve_connection(self, conn: netloop.Conn) -> bool:
        """Serve the requests whose heads ``conn`` holds; True to keep the connection open."""
        conn.sock.settimeout(IO_TIMEOUT)
        while True:
            handler = _Handler.__new__(_Handler)
            handler.setup_for(self, conn)
            handler.handle_one_request()
            if handler.close_connection or not handler.authenticated:
                return False
            if self.loop is not None and self.loop.stopping:
                return False
            conn.authenticated = True
            if not conn.has_head() and not self._await_next(conn):
                return conn.sock.fileno() >= 0

    @staticmethod
    def _await_next(conn: netloop.Conn) -> bool:
        """Wait up to :data:`KEEPALIVE_GRACE` for the next request head; True when it came."""
        try:
            poller = select.poll()
            poller.register(conn.sock.fileno(), select.POLLIN)
            if not poller.poll(KEEPALIVE_GRACE * 1000):
                return False
            chunk = conn.sock.recv(65536)
        except (OSError, ValueError):
            return False
        if not chunk:
            conn.sock.close()  # the client closed: the loop drops it
            return False
        conn.inbuf += chunk
        return conn.has_head()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ktx-daemon"
    sys_version = ""
    server: _Server  # type: ignore[assignment]

    def setup_for(self, server: _Server, conn: netloop.Conn) -> None:
        """What ``socketserver`` would set up, on a connection the loop already accepted."""
        self.server = server
        self.request = self.connection = conn.sock
        self.client_address = conn.addr
        self.rfile = _Reader(conn)  # type: ignore[assignment]
        self.wfile = _Writer(conn.sock)  # type: ignore[assignment]
        self.close_connection = True
        #: True once the request passed the Host and token checks.
        self.authenticated = False
        self._conn = conn

    # -- plumbing ---------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # Only the stdlib parser calls this (e.g. "Request timed out"): client-provoked text.
        log.refused(log.clean(f"{self.address_string()} {format % args}"))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Quiet for successes (unless KTX_DAEMON_ACCESS_LOG=1); one concise line for every
        # refused or failed request, rate-limited (anyone on the machine can provoke them).
        try:
            status = int(code)
        except (TypeError, ValueError):
            status = 500
        if status < 400 and not ACCESS_LOG:
            return
        # A request refused by the parser has no command or path yet.
        command = log.clean(getattr(self, "command", None) or "-", 16)
        line = f"{command} {log.clean_path(getattr(self, 'path', None))} -> {code}"
        if 400 <= status < 500:
            log.refused(line)
        else:
            log.log(line)

    def _send_json(self, code: int, body: dict[str, Any], close: bool = False) -> None:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if code == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="ktx-daemon"')
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        self._finish(data)

    def _finish(self, data: bytes) -> None:
        """End the headers and send the body (TCP_NODELAY: no delayed-ACK stall between them)."""
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _refuse(self, code: int, error: str, message: str, close: bool = False) -> None:
        self._send_json(code, {"error": error, "message": message}, close=close)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Parser-level errors (bad request line, unsupported method...): JSON with a length.
        self.close_connection = True
        try:
            self._refuse(code, "http_error", message or explain or "request refused", close=True)
        except OSError:
            pass

    # -- checks -----------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1:
            return False
        port = self.server.daemon.port
        return hosts[0].strip().lower() in (f"127.0.0.1:{port}", f"localhost:{port}")

    def _auth_ok(self) -> bool:
        values = self.headers.get_all("Authorization") or []
        if len(values) != 1:
            return False
        scheme, _, credentials = values[0].strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode("utf-8"), self.server.daemon.token)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._refuse(411, "length_required", "chunked bodies are not accepted", close=True)
            return None
        values = self.headers.get_all("Content-Length") or []
        if not values:
            self._refuse(411, "length_required", "Content-Length is required", close=True)
            return None
        raw = values[0].strip()
        # Exactly one header of plain digits: "+5", "0x10", "1_0" or two conflicting headers
        # would let a proxy and this server disagree on where the body ends.
        if len(values) != 1 or not raw.isascii() or not raw.isdigit():
            shown = ", ".join(repr(v) for v in values)
            self._refuse(400, "bad_request", f"invalid Content-Length {shown}", close=True)
            return None
        length = int(raw)
        if length > MAX_BODY_BYTES:
            self._refuse(
                413,
                "body_too_large",
                f"request body of {length} bytes exceeds the {MAX_BODY_BYTES}-byte limit",
                close=True,
            )
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _dispatch(self, method: str) -> None:
        daemon = self.server.daemon
        if not self._host_ok():
            self._refuse(
                403, "bad_host", "Host must be 127.0.0.1:<port> or localhost:<port>", close=True
            )
            return
        if not self._auth_ok():
            self._refuse(401, "unauthorized", "missing or wrong bearer token", close=True)
            return
        # Only now does the request count as activity: refused ones never delay the idle exit.
        self.authenticated = True
        daemon.begin_request()
        try:
            path = self.path.split("?", 1)[0]
            route = (method, path)
            # A route that does not read the body must not leave it on a kept-alive connection,
            # where it would be parsed as the next request: close after answering instead.
            unread_body = self.headers.get("Content-Length", "0").strip() != "0" or bool(
                self.headers.get("Transfer-Encoding")
            )
            if route == ("GET", "/health"):
                self._send_json(200, daemon.health(), close=unread_body)
            elif route == ("POST", "/v1/call"):
                body = self._read_body()
                if body is None:
                    return
                # The work stops early if the client disconnects while it runs.
                watch = cancel.PeerWatch(self._conn.sock)
                with cancel.scope(watch):
                    response = abi.handle_raw(body)
                if watch.gone:
                    _log("a call was cancelled: its client disconnected")
                    self.close_connection = True
                    return
                data = abi.encode(response)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self._finish(data)
            elif route == ("POST", "/v1/shutdown"):
                if self._read_body() is None:
                    return
                daemon.remove_state()
                self._send_json(
                    200, {"stopping": True, "instanceId": daemon.instance_id}, close=True
                )
                daemon.request_stop("shutdown requested")
            elif path in ("/health", "/v1/call", "/v1/shutdown"):
                self._refuse(
                    405,
                    "method_not_allowed",
                    f"{method} is not allowed on {path}",
                    close=unread_body,
                )
            else:
                self._refuse(404, "not_found", f"no route {path}", close=unread_body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the server itself: answer 500, keep serving
            _log(
                f"internal error on {method} {log.clean_path(self.path)}: "
                f"{type(exc).__name__}: {exc}"
            )
            try:
                self._refuse(500, "internal_error", f"{type(exc).__name__}: {exc}", close=True)
            except OSError:
                self.close_connection = True
        finally:
            daemon.end_request()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("DELETE")


def serve(
    state_file: str,
    token_file: str,
    idle_timeout: float = 900.0,
    features: list[str] | None = None,
    log_file: str | None = None,
) -> int:
    """Run the daemon until shutdown, SIGTERM/SIGINT or idle timeout; returns the exit code.

    ``log_file`` is the file stderr appends to (``daemon.log``); given, the daemon rotates it
    (see :mod:`ktx_daemon.log`).
    """
    log.configure(log_file)
    wanted = list(dict.fromkeys(["core", *(features or [])]))
    unknown = [f for f in wanted if f not in KNOWN_FEATURES]
    if unknown:
        _log(f"cannot start: unknown feature(s) {', '.join(unknown)}; known: {KNOWN_FEATURES}")
        return 2
    try:
        token = read_token(token_file)
    except StartupError as exc:
        _log(f"cannot start: {exc}")
        return 2
    if not math.isfinite(idle_timeout) or idle_timeout <= 0:
        _log(
            f"cannot start: --idle-timeout must be a positive number of seconds, got {idle_timeout}"
        )
        return 2

    daemon = Daemon(state_file, token, idle_timeout, wanted)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(netloop.LISTEN_BACKLOG)
    except OSError as exc:
        listener.close()
        _log(f"cannot start: binding 127.0.0.1 port 0 failed: {exc}")
        return 1
    daemon.port = listener.getsockname()[1]
    server = _Server(daemon)
    loop = netloop.ConnectionLoop(
        listener,
        server.serve_connection,
        workers=WORKERS,
        head_timeout=HEAD_TIMEOUT,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
    )
    server.loop = loop

    def on_signal(signum: int, _frame: Any) -> None:
        daemon.request_stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    # Before the state file exists: from the moment a client can find us, /health says
    # "loading" (with a models entry) until the warmers have finished.
    daemon.mark_warmers_loading()
    try:
        write_state_atomically(state_file, daemon.state())
    except OSError as exc:
        _log(f"cannot start: writing state file {state_file} failed: {exc}")
        listener.close()
        return 1

    lifecycle.serving = True
    loop.start()
    _log(
        f"listening on 127.0.0.1:{daemon.port} version {__version__} "
        f"features {','.join(wanted)} instance {daemon.instance_id} idle-timeout {idle_timeout:g}s "
        f"max-connections {loop.cap}"
    )
    daemon.start_warmers()

    try:
        while daemon.stop_reason is None:
            idle = daemon.idle_for()
            if idle is None:
                daemon.wait(1.0)
            elif idle >= idle_timeout:
                daemon.request_stop(f"idle for {idle_timeout:g} s")
            else:
                daemon.wait(min(idle_timeout - idle, 5.0) + 0.01)
    finally:
        # State first (a new `ktx runtime start` may begin at once), then stop accepting
        # (new clients get "connection refused" and go one-shot), then let running calls
        # answer for a bounded time.
        daemon.remove_state()
        loop.stop()
        left = daemon.drain(SHUTDOWN_DRAIN_SECONDS)
        if left:
            _log(f"exiting with {left} request(s) still running")
        # Warehouse connections kept between calls are closed here.
        lifecycle.serving = False
        for failure in lifecycle.run_stop_hooks():
            _log(f"closing on stop failed: {failure}")
        _log(f"stopped ({daemon.stop_reason or 'interrupted'})")
    return 0
