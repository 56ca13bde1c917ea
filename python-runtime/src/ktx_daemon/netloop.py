"""Connection handling of the daemon: one event loop, a bounded worker pool, a connection cap.

Why not ``ThreadingHTTPServer``: it gives every connection a thread that blocks in ``readline``
for the whole keep-alive timeout, with a listen backlog of 5. A local process without the token
could open a few thousand idle connections and wedge the daemon (threads, file descriptors)
so the real client timed out. Here:

* One loop thread accepts, and reads request heads without blocking. A connection costs a file
  descriptor and a small buffer until its request head (request line + headers) is complete;
  only then does a worker from a fixed pool of :attr:`ConnectionLoop.workers` threads get it.
* A new connection must deliver a complete head within ``head_timeout`` (2 s) or it is closed.
  A kept-alive connection (one that made an authenticated request) may idle for
  ``keepalive_timeout``.
* At most ``cap`` connections are open; the cap stays well below the file-descriptor limit. At
  the cap, accepting a new connection first closes the oldest connection that has not sent a
  complete request yet, else the oldest idle kept-alive one: the accept queue keeps moving, so a
  real client's connection is accepted at once even under a flood. A connection being served by
  a worker is never closed this way.
* The listen backlog is :data:`LISTEN_BACKLOG`.

The loop thread owns the selector and every connection that is not with a worker; workers
hand connections back through a queue and a wake-up pipe.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable

from ktx_daemon import log

#: ``listen()`` backlog (the kernel may cap it, e.g. ``net.core.somaxconn`` on Linux).
LISTEN_BACKLOG = 4096

#: Largest request head (request line + headers) read before a worker gets the connection.
MAX_HEAD_BYTES = 64 * 1024

#: Connections open at most, whatever the file-descriptor limit allows.
MAX_CONNECTIONS = 512

#: File descriptors kept free for everything else (SQLite files, the log, model files...).
FD_RESERVE = 128

_HEAD_END = re.compile(rb"\r?\n\r?\n")

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: 74\r\n\r\n"
    b'{"error":"headers_too_large","message":"the request head exceeds 64 KiB"}\n'
)


def connection_cap(maximum: int = MAX_CONNECTIONS, reserve: int = FD_RESERVE) -> int:
    """How many connections may be open: ``maximum``, lowered to stay below the fd limit."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return maximum
    if soft == getattr(resource, "RLIM_INFINITY", -1) or soft <= 0:
        return maximum
    return max(8, min(maximum, soft - reserve, soft // 2))


class Conn:
    """One client connection: its socket, bytes read but not yet parsed, and its standing."""

    __slots__ = ("sock", "addr", "inbuf", "authenticated", "deadline")

    def __init__(self, sock: socket.socket, addr: tuple[str, int], deadline: float) -> None:
        self.sock = sock
        self.addr = addr
        self.inbuf = bytearray()
        #: True once this connection made a request with the right token and Host.
        self.authenticated = False
        self.deadline = deadline

    def has_head(self) -> bool:
        """True when :attr:`inbuf` holds a complete request head."""
        return _HEAD_END.search(self.inbuf) is not None


class ConnectionLoop:
    """Accept on ``listener`` and pass each complete request head to ``handle`` in a worker.

    ``handle(conn)`` runs in a worker thread with the socket in blocking mode (with a timeout);
    it serves one or more requests and returns True to keep the connection open (the loop then
    waits for the next request) or False to close it.
    """

    def __init__(
        self,
        listener: socket.socket,
        handle: Callable[[Conn], bool],
        *,
        workers: int = 16,
        cap: int | None = None,
        head_timeout: float = 2.0,
        keepalive_timeout: float = 120.0,
    ) -> None:
        self.listener = listener
        self.handle = handle
        self.workers = workers
        self.cap = cap if cap is not None else connection_cap()
        self.head_timeout = head_timeout
        self.keepalive_timeout = keepalive_timeout
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._jobs: queue.SimpleQueue[Conn | None] = queue.SimpleQueue()
        self._back: queue.SimpleQueue[tuple[Conn, bool]] = queue.SimpleQueue()
        #: Every open connection (with the loop or with a worker).
        self._open: set[Conn] = set()
        #: Waiting for their first complete request head, oldest first.
        self._fresh: dict[Conn, None] = {}
        #: Kept alive after an authenticated request, waiting for the next one, oldest first.
        self._idle: dict[Conn, None] = {}
        self._accepting = False
        self._resume_accept_at = 0.0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the loop thread and the workers."""
        self.listener.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._set_accepting(True)
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        loop = threading.Thread(target=self._run, name="http", daemon=True)
        loop.start()
        self._threads.append(loop)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, close every connection not being served, stop the loop thread."""
        self._stopping.set()
        self._wake()
        for _ in range(self.workers):
            self._jobs.put(None)
        loop = self._threads[-1] if self._threads else None
        if loop is not None:
            loop.join(timeout)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called: workers close connections after answering."""
        return self._stopping.is_set()

    def open_connections(self) -> int:
        """Connections open right now (approximate: read without a lock)."""
        return len(self._open)

    # -- loop thread ------------------------------------------------------------------------
    def _run(self) -> None:
        next_scan = 0.0
        try:
            while not self._stopping.is_set():
                events = self._sel.select(timeout=0.1)
                accept = False
                ready: list[Conn] = []
                for key, _mask in events:
                    if key.data is None:
                        accept = True
                    elif key.data == "wake":
                        try:
                            os.read(self._wake_r, 4096)
                        except OSError:
                            pass
                    else:
                        ready.append(key.data)
                self._take_back()
                # Requests already waiting first, then new connections.
                for conn in ready:
                    if conn in self._open:
                        self._read(conn)
                if accept:
                    self._accept()
                now = time.monotonic()
                if now >= next_scan:
                    next_scan = now + 0.1
                    self._expire(now)
                    log.flush()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._set_accepting(False)
        try:
            self.listener.close()
        except OSError:
            pass
        for conn in list(self._fresh) + list(self._idle):
            self._close(conn)
        self._take_back()

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting:
            return
        try:
            if on:
                self._sel.register(self.listener, selectors.EVENT_READ, None)
            else:
                self._sel.unregister(self.listener)
        except (KeyError, ValueError, OSError):
            return
        self._accepting = on

    def _accept(self) -> None:
        for _ in range(256):
            if len(self._open) >= self.cap and not self._evict_one():
                # Every slot is with a worker: leave the rest in the backlog for now.
                self._pause_accept(0.05)
                return
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    if not self._evict_one():
                        self._pause_accept(0.1)
                    log.refused(f"accept failed ({exc.strerror}); closed an idle connection")
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            try:
                sock.setblocking(False)
                # A small response must not wait for the client's delayed ACK (40 ms).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                sock.close()
                continue
            conn = Conn(sock, addr, time.monotonic() + self.head_timeout)
            self._open.add(conn)
            self._fresh[conn] = None
            # A real client sends its request right after connecting: serve it without
            # waiting for the next select round.
            self._read(conn)
            if conn in self._fresh:
                self._watch(conn)

    def _pause_accept(self, seconds: float) -> None:
        self._set_accepting(False)
        self._resume_accept_at = time.monotonic() + seconds

    def _evict_one(self) -> bool:
        """Close the oldest never-authenticated connection, else the oldest idle one."""
        for pool, why in ((self._fresh, "without a complete request"), (self._idle, "idle")):
            if pool:
                victim = next(iter(pool))
                self._close(victim)
                log.refused(f"connection limit ({self.cap}) reached: closed a connection {why}")
                return True
        return False

    def _watch(self, conn: Conn) -> None:
        try:
            self._sel.register(conn.sock, selectors.EVENT_READ, conn)
        except (KeyError, ValueError, OSError):
            self._close(conn)

    def _read(self, conn: Conn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not chunk:
            self._close(conn)
            return
        was_empty = not conn.inbuf
        conn.inbuf += chunk
        if conn.has_head():
            self._dispatch(conn)
        elif len(conn.inbuf) > MAX_HEAD_BYTES:
            try:
                conn.sock.send(_TOO_LARGE)
            except OSError:
                pass
            log.refused(f"{conn.addr[0]} request head over {MAX_HEAD_BYTES} bytes -> 431")
            self._close(conn)
        elif was_empty and conn in self._idle:
            # The next request on a kept-alive connection has begun: it gets head_timeout.
            conn.deadline = min(conn.deadline, time.monotonic() + self.head_timeout)

    def _dispatch(self, conn: Conn) -> None:
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self._fresh.pop(conn, None)
        self._idle.pop(conn, None)
        try:
            conn.sock.setblocking(True)
        except OSError:
            self._close(conn)
            return
        self._jobs.put(conn)

    def _take_back(self) -> None:
        while True:
            try:
                conn, keep = self._back.get_nowait()
            except queue.Empty:
                return
            if not keep or self._stopping.is_set():
                self._close(conn)
                continue
            try:
                conn.sock.setblocking(False)
            except OSError:
                self._close(conn)
                continue
            conn.deadline = time.monotonic() + self.keepalive_timeout
            self._idle[conn] = None
            self._watch(conn)

    def _expire(self, now: float) -> None:
        expired = [c for c in self._fresh if c.deadline <= now]
        if expired:
            log.refused(
                f"closed {len(expired)} connection(s) without a complete request within "
                f"{self.head_timeout:g} s"
            )
        expired += [c for c in self._idle if c.deadline <= now]
        for conn in expired:
            self._close(conn)
        if not self._accepting and now >= self._resume_accept_at:
            self._set_accepting(True)

    def _close(self, conn: Conn) -> None:
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self._fresh.pop(conn, None)
        self._idle.pop(conn, None)
        self._open.discard(conn)
        try:
            conn.sock.close()
        except OSError:
            pass
        if not self._accepting and len(self._open) < self.cap and not self._stopping.is_set():
            self._set_accepting(True)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # the pipe is full: the loop is awake anyway

    # -- worker threads ---------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            conn = self._jobs.get()
            if conn is None:
                return
            try:
                keep = self.handle(conn)
            except Exception as exc:  # a bug in the handler: close this connection, keep going
                if not isinstance(exc, (ConnectionError, TimeoutError)):
                    log.log(f"error serving {conn.addr}: {type(exc).__name__}: {exc}")
                keep = False
            if self._stopping.is_set():
                # The loop may be gone already: nobody else would close it.
                try:
                    conn.sock.close()
                except OSError:
                    pass
            self._back.put((conn, keep and not self._stopping.is_set()))
            self._wake()
