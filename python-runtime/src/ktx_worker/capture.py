"""Per-call stdout capture with a byte cap: printing 100 MB keeps only the first ``limit`` bytes.

The capture is a real text stream (``print``, ``sys.stdout.write``, ``sys.stdout.buffer.write``
all work); bytes past the limit are counted as dropped, never stored.
"""

from __future__ import annotations

import io


class _CappedSink(io.RawIOBase):
    """A write-only raw stream that keeps at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # noqa: ANN001 - any bytes-like object
        n = len(b)
        room = self.limit - len(self.data)
        if room >= n:
            self.data += b
        else:
            if room > 0:
                self.data += bytes(b[:room])
            self.dropped += n - max(room, 0)
        return n


class Capture:
    """One call's stdout: install with :meth:`stream`, read with :meth:`take`."""

    def __init__(self, limit: int) -> None:
        self._sink = _CappedSink(limit)
        self.stream = io.TextIOWrapper(
            io.BufferedWriter(self._sink, buffer_size=8192),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=False,
            write_through=True,
        )

    def take(self) -> tuple[str, bool]:
        """The captured text (a cut multi-byte character is dropped) and whether it was cut."""
        try:
            self.stream.flush()
        except ValueError:
            pass  # the script closed sys.stdout: what was flushed before is kept
        text = bytes(self._sink.data).decode("utf-8", errors="ignore")
        return text, self._sink.dropped > 0
