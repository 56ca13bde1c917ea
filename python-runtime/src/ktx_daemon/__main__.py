"""Command line of the runtime: ``python -I -m ktx_daemon call|serve``.

``call`` reads one ABI v1 request on stdin and writes one response line on stdout. It exits 0
for every request it could answer, including ``ok: false`` ones; only a crash exits non-zero.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def _call() -> int:
    from ktx_daemon import abi

    body = sys.stdin.buffer.read()
    response = abi.handle_raw(body)
    sys.stdout.buffer.write(abi.encode(response) + b"\n")
    sys.stdout.buffer.flush()
    return 0


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(prog="ktx-daemon", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("call", help="answer one ABI v1 request read from stdin")
    serve = sub.add_parser("serve", help="run the loopback HTTP daemon")
    serve.add_argument("--state-file", required=True, help="where to write the daemon state")
    serve.add_argument("--token-file", required=True, help="file holding the bearer token")
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=900.0,
        help="seconds without requests before the daemon exits (default 900)",
    )
    serve.add_argument(
        "--features", default="core", help="comma-separated features to serve (default core)"
    )
    serve.add_argument(
        "--log-file",
        default=None,
        help="the file stderr appends to (daemon.log); the daemon keeps it size-capped",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m ktx_daemon`` and the ``ktx-daemon`` console script."""
    if (sys.argv[1:] if argv is None else argv) == ["call"]:
        # The one-shot hot path: building the argparse parser costs ~6 ms per call.
        return _call()
    args = _parser().parse_args(argv)
    if args.command == "call":
        return _call()
    from ktx_daemon import server

    return server.serve(
        state_file=args.state_file,
        token_file=args.token_file,
        idle_timeout=args.idle_timeout,
        features=[f for f in args.features.split(",") if f],
        log_file=args.log_file,
    )


if __name__ == "__main__":
    sys.exit(main())
