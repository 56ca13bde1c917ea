"""The daemon's log: one concise line per event on stderr, size-capped and flood-proof.

The Rust side starts the daemon with stdout and stderr on ``daemon.log`` (opened for append)
and passes the same path as ``--log-file``. Knowing the path is what lets the daemon cap the
file it writes: when ``daemon.log`` grows past :data:`ROTATE_BYTES`, it is renamed to
``daemon.log.1`` (replacing an older one) and a fresh ``daemon.log`` is opened onto fds 1 and 2,
so every writer (these lines, a stray traceback) moves to the new file at once. The disk use is
therefore at most about ``2 * ROTATE_BYTES``. Without ``--log-file`` (tests, a manual start)
lines go to stderr unrotated.

Lines about refused requests (anything a client without the token can provoke) go through
:func:`refused`, which writes at most :data:`REFUSED_PER_SECOND` of them per second and then one
``suppressed N similar line(s)`` summary. Request paths are logged through :func:`clean_path`:
without the query string, control characters escaped, at most 200 characters.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from datetime import datetime, timezone

#: ``daemon.log`` is rotated to ``daemon.log.1`` once it is larger than this many bytes.
ROTATE_BYTES = 4 * 1024 * 1024

#: Lines about refused requests written per second at most; the rest are counted.
REFUSED_PER_SECOND = 10

_lock = threading.Lock()
_log_path: str | None = None
_refused_window = 0.0
_refused_in_window = 0
_suppressed = 0
_suppressed_since = 0.0


def configure(log_path: str | None) -> None:
    """Enable rotation of ``log_path``, the file the daemon's stderr appends to."""
    global _log_path
    _log_path = log_path


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_locked(message: str) -> None:
    line = f"{_stamp()} ktx-daemon[{os.getpid()}] {message}\n"
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    if _log_path is not None:
        _rotate_if_large_locked()


def _rotate_if_large_locked() -> None:
    """Rotate when fd 2 is the configured log file and it has grown past the cap."""
    global _log_path
    path = _log_path
    if path is None:
        return
    try:
        current = os.fstat(2)
        if current.st_size <= ROTATE_BYTES or not stat.S_ISREG(current.st_mode):
            return
        named = os.lstat(path)
    except OSError:
        return
    if (named.st_dev, named.st_ino) != (current.st_dev, current.st_ino):
        # stderr is not (or no longer) that file: somebody else owns the name; never touch it.
        return
    try:
        os.replace(path, path + ".1")
        fd = os.open(
            path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
            0o600,
        )
    except OSError as exc:
        # Keep logging to the old file, but stop trying on every line.
        _log_path = None
        sys.stderr.write(f"{_stamp()} ktx-daemon[{os.getpid()}] cannot rotate {path}: {exc}\n")
        return
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    sys.stderr.write(
        f"{_stamp()} ktx-daemon[{os.getpid()}] log rotated; older lines are in {path}.1\n"
    )


def log(message: str) -> None:
    """Write one line (timestamp, pid, message); never raises."""
    with _lock:
        _flush_suppressed_locked(time.monotonic())
        _write_locked(message)


def refused(message: str) -> None:
    """Log a line about a refused request or connection, rate-limited."""
    global _refused_window, _refused_in_window, _suppressed, _suppressed_since
    now = time.monotonic()
    with _lock:
        if now - _refused_window >= 1.0:
            _flush_suppressed_locked(now)
            _refused_window = now
            _refused_in_window = 0
        if _refused_in_window < REFUSED_PER_SECOND:
            _refused_in_window += 1
            _write_locked(message)
            return
        if _suppressed == 0:
            _suppressed_since = now
        _suppressed += 1


def flush() -> None:
    """Write the pending ``suppressed`` summary once its one-second window is over."""
    with _lock:
        _flush_suppressed_locked(time.monotonic())


def _flush_suppressed_locked(now: float) -> None:
    global _suppressed
    if _suppressed and now - _refused_window >= 1.0:
        count, _suppressed = _suppressed, 0
        seconds = max(now - _suppressed_since, 0.0)
        _write_locked(
            f"suppressed {count} similar line(s) about refused requests in {seconds:.1f} s"
        )


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def clean(text: str, limit: int = 200) -> str:
    """``text`` with control characters escaped (``\\xNN``), cut to ``limit`` characters."""
    out = []
    for ch in text[: limit + 1]:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    result = "".join(out)
    if len(text) > limit:
        result = result[:limit] + "..."
    return result


def clean_path(path: str | None) -> str:
    """A request target fit for the log: no query string or fragment, escaped, short."""
    if not path:
        return "-"
    return clean(path.split("?", 1)[0].split("#", 1)[0])
