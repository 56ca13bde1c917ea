"""One atomic file write for every Python writer in the runtime (daemon state, sandbox cache).

The temporary file comes from :func:`tempfile.mkstemp`: ``O_EXCL`` under a random name in the
target's directory, mode 0600, so nothing planted at a predictable name (a symlink, say) is
ever written through; it is fsynced, then renamed over the target, and removed on any failure.
"""

from __future__ import annotations

import os
import tempfile


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename; the directory must exist."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
