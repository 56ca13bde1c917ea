"""ABI v1: request validation, the op registry and the dispatcher.

Both transports (one-shot stdin/stdout and the daemon's ``POST /v1/call``) go through
:func:`handle_raw`, so a request means the same thing whichever way it arrives.

Ops are registered by dotted path and imported only when first called: a one-shot
``runtime.ping`` must not pay for importing sqlglot.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from ktx_daemon import ABI_VERSION  # defined once, in the package (``ktx_daemon.ABI_VERSION``)

#: op name -> "module:function". The function takes the payload dict and returns a JSON-able dict.
OPS: dict[str, str] = {
    "runtime.ping": "ktx_daemon.ops.runtime:ping",
    "runtime.info": "ktx_daemon.ops.runtime:info",
    "semantic.query": "semantic_layer.ops:query",
    "semantic.validate": "semantic_layer.ops:validate",
    "demo.scaffold": "semantic_layer.ops:scaffold",
    "embedding.compute": "ktx_daemon.ops.embedding:compute",
    "sandbox.status": "ktx_sandbox.ops:status",
    "sandbox.run": "ktx_sandbox.ops:run",
}

_resolved: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class OpError(Exception):
    """An expected failure that becomes an ``ok: false`` response with a stable code."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


def ok(result: dict[str, Any]) -> dict[str, Any]:
    """Build a success response."""
    return {"abi": ABI_VERSION, "ok": True, "result": result}


def error(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build a failure response."""
    return {
        "abi": ABI_VERSION,
        "ok": False,
        "error": {"code": code, "message": message, "details": details or {}},
    }


def resolve(op: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Import (once) and return the function behind ``op``; raises OpError for unknown ops."""
    fn = _resolved.get(op)
    if fn is not None:
        return fn
    target = OPS.get(op)
    if target is None:
        raise OpError("unknown_op", f"unknown op {op!r}", {"op": op, "known": sorted(OPS)})
    module_name, _, attr = target.partition(":")
    fn = getattr(importlib.import_module(module_name), attr)
    _resolved[op] = fn
    return fn


def handle(request: Any) -> dict[str, Any]:
    """Validate a decoded request and run its op; never raises."""
    if not isinstance(request, dict):
        return error("invalid_request", "request must be a JSON object")
    abi = request.get("abi")
    if abi != ABI_VERSION or isinstance(abi, bool):
        return error(
            "unsupported_abi",
            f"unsupported abi {abi!r}; this runtime speaks abi {ABI_VERSION}",
            {"supported": [ABI_VERSION], "received": abi},
        )
    op = request.get("op")
    if not isinstance(op, str) or not op:
        return error("invalid_request", "'op' must be a non-empty string")
    payload = request.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        return error("invalid_request", "'payload' must be a JSON object")
    try:
        fn = resolve(op)
        return ok(fn(payload))
    except OpError as exc:
        return error(exc.code, exc.message, exc.details)
    except Exception as exc:  # an op bug: report it as data, keep the daemon alive
        import traceback  # only on this crash path

        return error(
            "internal_error",
            f"{type(exc).__name__}: {exc}",
            {"op": op, "traceback": traceback.format_exc(limit=8)},
        )


def handle_raw(body: bytes | str) -> dict[str, Any]:
    """Decode one JSON request and handle it; bad JSON becomes an ``invalid_json`` error."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return error("invalid_json", f"request is not valid JSON: {exc}")
    return handle(request)


def encode(response: dict[str, Any]) -> bytes:
    """Serialize a response as one compact UTF-8 JSON line (no trailing newline)."""
    return json.dumps(response, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
