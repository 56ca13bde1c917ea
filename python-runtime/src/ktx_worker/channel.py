"""The frame channel: 4-byte big-endian length, then that many bytes of UTF-8 JSON.

:func:`take_std_fds` moves the channel off fds 0 and 1 before any user code runs, so nothing a
script prints or reads can touch it (see the package docstring).
"""

from __future__ import annotations

import json
import os
import struct

#: The largest frame either side accepts (the Rust side uses the same figure).
MAX_FRAME = 64 * 1024 * 1024

_HEADER = struct.Struct(">I")


class ChannelClosed(Exception):
    """The other side closed the channel (normal shutdown)."""


class Channel:
    """Reads request frames from one fd and writes reply frames to another."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(self._read_fd, min(n, 1 << 20))
            if not chunk:
                raise ChannelClosed
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read(self) -> dict:
        """The next request (a JSON object); :class:`ChannelClosed` at end of input."""
        (length,) = _HEADER.unpack(self._read_exact(_HEADER.size))
        if length > MAX_FRAME:
            raise ValueError(f"request frame of {length} bytes is over {MAX_FRAME}")
        return json.loads(self._read_exact(length))

    def write_bytes(self, body: bytes) -> None:
        """Send one frame whose body is already encoded JSON."""
        view = memoryview(_HEADER.pack(len(body)) + body)
        while view:
            written = os.write(self._write_fd, view)
            view = view[written:]

    def write(self, message: dict) -> None:
        """Send one JSON object (plain JSON only: the caller validated it)."""
        self.write_bytes(json.dumps(message, ensure_ascii=False, allow_nan=False).encode())


def take_std_fds() -> Channel:
    """Move the channel to private fds; leave ``/dev/null`` on fd 0 and stderr on fd 1.

    ``os.dup`` makes non-inheritable copies, so a script's subprocesses do not get the channel.
    """
    read_fd = os.dup(0)
    write_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return Channel(read_fd, write_fd)
