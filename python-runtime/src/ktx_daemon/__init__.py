"""ABI v1 entry points for the ktx CLI: one-shot calls and the loopback daemon."""

from ktx_daemon._version import __version__

ABI_VERSION = 1

__all__ = ["ABI_VERSION", "__version__"]
