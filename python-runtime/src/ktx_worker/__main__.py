"""Entry point: ``python -I -m ktx_worker [--memory-limit BYTES] [--stdout-limit BYTES]``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, then serve frames until the channel closes."""
    from ktx_worker import serve

    return serve.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
