"""The request loop: a ready frame, then one reply frame per call (or per check).

Requests: ``{"op": "call", "calls": [{"script": {id, path, hash, entrypoint}, "context": ...}]}``
answers one frame per call, in order, each as soon as it is done (the Rust side gives each call
its own deadline); ``{"op": "check", "script": {...}}`` answers one frame. A call reply is
``{"ok": true, "value": ..., "stdout", "stdoutTruncated", "exiting"}`` or the same with
``"ok": false, "error": {kind, message, path, location, traceback}``. After a ``MemoryError``
the worker answers with ``"exiting": true`` and exits: its heap may be fragmented near the
limit, and a fresh worker is cheap.
"""

from __future__ import annotations

import json
import os
import sys

from ktx_worker import validate
from ktx_worker.capture import Capture
from ktx_worker.channel import Channel, ChannelClosed, take_std_fds
from ktx_worker.errors import ScriptError, from_exception
from ktx_worker.loader import Loader

#: Default cap on the stdout kept per call.
DEFAULT_STDOUT_LIMIT = 1024 * 1024


def _apply_memory_limit(limit: int) -> bool:
    """Lower the soft address-space limit (RLIMIT_AS; RLIMIT_DATA where AS is refused)."""
    if limit <= 0:
        return False
    try:
        import resource
    except ImportError:  # Windows: no rlimits (documented gap)
        return False
    for name in ("RLIMIT_AS", "RLIMIT_DATA"):
        which = getattr(resource, name, None)
        if which is None:
            continue
        try:
            _soft, hard = resource.getrlimit(which)
            soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
            resource.setrlimit(which, (soft, hard))
            return True
        except (ValueError, OSError):
            continue
    return False


class Server:
    """Runs calls and checks; owns the loader and the per-call capture."""

    def __init__(self, channel: Channel, stdout_limit: int) -> None:
        self.channel = channel
        self.stdout_limit = stdout_limit
        self.loader = Loader()
        self.exiting = False

    def _run(self, call: dict) -> dict:
        script = call["script"]
        try:
            fn = self.loader.entrypoint(script)
        except MemoryError as e:
            self.exiting = True
            return _memory_error(e, script["path"])
        try:
            value = fn(call.get("context"))
        except MemoryError as e:
            self.exiting = True
            return _memory_error(e, script["path"])
        except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: the script's
            return from_exception("raised", e, script["path"], skip=1).to_json()
        try:
            validate.check(value)
        except validate.BadValue as e:
            return ScriptError(
                "bad_result", f"the result is not plain JSON: {e.message}", path=e.path
            ).to_json()
        return {"value": value}

    def call(self, call: dict) -> bytes:
        """One call, its stdout captured, encoded as a reply frame body."""
        capture = Capture(self.stdout_limit)
        sys.stdout = capture.stream
        try:
            outcome = self._run(call)
        except ScriptError as e:
            outcome = e.to_json()
        finally:
            sys.stdout = sys.__stderr__
        stdout, truncated = capture.take()
        reply = {"stdout": stdout, "stdoutTruncated": truncated, "exiting": self.exiting}
        if "value" in outcome:
            reply["ok"] = True
            reply["value"] = outcome["value"]
        else:
            reply["ok"] = False
            reply["error"] = outcome
        body = json.dumps(reply, ensure_ascii=False, allow_nan=False).encode()
        if len(body) > _MAX_REPLY:
            error = ScriptError(
                "bad_result",
                f"the reply is {len(body)} bytes, over the worker's {_MAX_REPLY}-byte limit",
                path="$",
            )
            reply = {**reply, "ok": False, "error": error.to_json(), "stdout": stdout[:4096]}
            reply.pop("value", None)
            body = json.dumps(reply, ensure_ascii=False).encode()
        return body

    def handle(self, request: dict) -> None:
        """Answer one request frame."""
        op = request.get("op")
        if op == "call":
            for call in request["calls"]:
                self.channel.write_bytes(self.call(call))
                if self.exiting:
                    return
        elif op == "check":
            from ktx_worker.check import check

            script = request["script"]
            self.channel.write(check(script["path"], script["entrypoint"]))
        else:
            raise ValueError(f"unknown op {op!r}")


# Room for the frame's other fields under the channel's limit.
_MAX_REPLY = 64 * 1024 * 1024 - 4096


def _memory_error(exc: MemoryError, path: str) -> dict:
    error = from_exception("raised", exc, path, skip=1)
    error.message = (
        "MemoryError: the script went over the worker's memory limit; the worker restarts"
    )
    return error.to_json()


def _exit_with_parent(interval: float = 1.0) -> None:
    """Exit when the parent (ktx) is gone, even while a script loops: a daemon thread polls.

    Without it a worker orphaned in a long call (ktx killed with SIGKILL) would run on; an idle
    orphan already exits, at end of input.
    """
    import _thread  # built in: `threading` would cost the start-up a few milliseconds
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(70)

    _thread.start_new_thread(watch, ())


_USAGE = "usage: python -m ktx_worker [--memory-limit BYTES] [--stdout-limit BYTES]"


def parse_args(argv: list[str]) -> dict[str, int]:
    """``--memory-limit`` (0: none) and ``--stdout-limit``, by hand: ``argparse`` alone costs
    the start-up more than everything else the worker imports."""
    flags = {"--memory-limit": 0, "--stdout-limit": DEFAULT_STDOUT_LIMIT}
    rest = list(argv)
    while rest:
        name = rest.pop(0)
        if name in ("-h", "--help"):
            print(_USAGE + "\n\n" + (__doc__ or ""))
            raise SystemExit(0)
        if name not in flags or not rest or not rest[0].isdigit():
            print(f"{_USAGE}\nbad argument: {name}", file=sys.stderr)
            raise SystemExit(2)
        flags[name] = int(rest.pop(0))
    return {"memory_limit": flags["--memory-limit"], "stdout_limit": flags["--stdout-limit"]}


def main(argv: list[str]) -> int:
    """Serve until the channel closes (exit 0) or a ``MemoryError`` (exit 0 after the reply)."""
    args = parse_args(argv)
    channel = take_std_fds()
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the worker
    sys.stdout = sys.__stderr__
    limited = _apply_memory_limit(args["memory_limit"])
    _exit_with_parent()
    server = Server(channel, args["stdout_limit"])
    channel.write(
        {
            "ready": True,
            "pid": os.getpid(),
            "python": ".".join(map(str, sys.version_info[:3])),
            "memoryLimited": limited,
        }
    )
    while not server.exiting:
        try:
            request = channel.read()
        except ChannelClosed:
            return 0
        server.handle(request)
    return 0
