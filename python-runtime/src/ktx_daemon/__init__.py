"""ABI v1 entry points for the ktx CLI: one-shot calls and the loopback daemon."""

from ktx_daemon._version import __version__

#: The ABI version this runtime speaks: defined here only (``abi``, the server and the ops
#: import it). The Rust CLI defines the same number on its side of the contract.
ABI_VERSION = 1

__all__ = ["ABI_VERSION", "__version__"]
