"""The ``sandbox.run`` and ``sandbox.status`` payloads, validated into plain values."""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any

from ktx_daemon.abi import OpError

#: The smallest memory limit accepted (CPython for WASI starts at 10 MiB).
MIN_MEMORY_BYTES = 16 * 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Bundle:
    """Where the wasm is, its verified sha256 and the compiled-module cache dir."""

    wasm: str
    wasm_sha256: str
    cache_dir: str


@dataclass(frozen=True)
class RunSpec:
    """One ``sandbox.run`` request."""

    bundle: Bundle
    code: str
    filename: str
    argv: list[str]
    stdin: bytes
    timeout_ms: float
    memory_bytes: int
    fuel: int | None
    max_output_bytes: int
    deterministic: bool


def _bad(field: str, why: str) -> OpError:
    return OpError("invalid_payload", f"{field}: {why}", {"field": field, "suggestions": []})


def _str(p: dict[str, Any], field: str) -> str:
    v = p.get(field)
    if not isinstance(v, str) or not v:
        raise _bad(field, "must be a non-empty string")
    return v


def _int(p: dict[str, Any], field: str, default: int, minimum: int) -> int:
    v = p.get(field, default)
    if v is None:
        v = default
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(field, "must be an integer")
    if v < minimum:
        raise _bad(field, f"must be at least {minimum} (got {v})")
    return v


def bundle(p: dict[str, Any]) -> Bundle:
    """The wasm, sha256 and cache fields shared by both ops."""
    sha = _str(p, "wasmSha256")
    if not _HEX64.match(sha):
        raise _bad("wasmSha256", "must be 64 hex digits")
    return Bundle(_str(p, "wasm"), sha.lower(), _str(p, "cacheDir"))


def run_spec(p: dict[str, Any]) -> RunSpec:
    """Validate a ``sandbox.run`` payload (``invalid_payload`` names the field)."""
    b = bundle(p)
    code = p.get("code")
    if not isinstance(code, str):
        raise _bad("code", "must be a string (the Python source to run)")
    filename = p.get("filename", "<string>")
    if not isinstance(filename, str) or not filename:
        raise _bad("filename", "must be a non-empty string")
    argv = p.get("argv", [])
    if argv is None:
        argv = []
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise _bad("argv", "must be a list of strings")
    raw_stdin = p.get("stdin")
    stdin = b""
    if raw_stdin is not None:
        if not isinstance(raw_stdin, str):
            raise _bad("stdin", "must be base64 text or null")
        try:
            stdin = base64.b64decode(raw_stdin, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("stdin", "is not valid base64") from None
    timeout = p.get("timeoutMs", 10_000)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise _bad("timeoutMs", "must be a finite number of milliseconds > 0")
    memory = _int(p, "memoryBytes", 128 * 1024 * 1024, MIN_MEMORY_BYTES)
    fuel = p.get("fuel")
    if fuel is not None:
        fuel = _int(p, "fuel", 0, 1)
    max_output = _int(p, "maxOutputBytes", 1024 * 1024, 0)
    deterministic = p.get("deterministic", False)
    if not isinstance(deterministic, bool):
        raise _bad("deterministic", "must be true or false")
    return RunSpec(
        bundle=b,
        code=code,
        filename=filename,
        argv=list(argv),
        stdin=stdin,
        timeout_ms=float(timeout),
        memory_bytes=memory,
        fuel=fuel,
        max_output_bytes=max_output,
        deterministic=deterministic,
    )
