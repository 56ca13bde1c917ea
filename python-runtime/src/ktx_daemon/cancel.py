"""Cancellation of the running call when its client has gone away.

The daemon runs each ``/v1/call`` inside :func:`scope` with a check that says whether the
client's connection is still open. Long-running work polls it: :func:`cancelled` in the calling
thread, or the callable from :func:`current` handed to another thread (the SQLite executor's
watchdog polls it every 0.1 s and interrupts the query). Outside the daemon (one-shot ``call``)
there is no scope: :func:`cancelled` is always False and :func:`current` None.
"""

from __future__ import annotations

import contextlib
import contextvars
import select
import socket
import time
from collections.abc import Callable, Iterator

_current: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "ktx_cancel_check", default=None
)


def current() -> Callable[[], bool] | None:
    """The check of the current call (None outside a daemon call), to poll from any thread."""
    return _current.get()


def cancelled() -> bool:
    """True when the caller of the current call is gone and its work should stop."""
    check = _current.get()
    return check is not None and check()


@contextlib.contextmanager
def scope(check: Callable[[], bool]) -> Iterator[None]:
    """Run the body with ``check`` as the answer of :func:`cancelled`."""
    token = _current.set(check)
    try:
        yield
    finally:
        _current.reset(token)


class PeerWatch:
    """A cheap "has the peer closed this socket?" check, polled at most every ``interval`` s.

    A peer that closed its end makes the socket readable with nothing to read (EOF) or reset;
    bytes waiting to be read (a pipelined request) mean the peer is still there.
    """

    def __init__(self, sock: socket.socket, interval: float = 0.1) -> None:
        self._sock = sock
        self._interval = interval
        self._next = 0.0
        self._gone = False
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            self._poll.register(sock.fileno(), select.POLLIN | select.POLLPRI)

    @property
    def gone(self) -> bool:
        """True once a check found the peer gone."""
        return self._gone

    def __call__(self) -> bool:
        if self._gone:
            return True
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval
        try:
            if self._poll is not None:
                events = self._poll.poll(0)
                if not events:
                    return False
                if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self._gone = True
                    return True
            else:
                readable, _, _ = select.select([self._sock], [], [], 0)
                if not readable:
                    return False
            # Readable: peeking cannot block, and b"" means the peer closed its end.
            self._gone = self._sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            self._gone = True
        return self._gone
