"""The ``sandbox.*`` ops (contract: docs/ARCHITECTURE.md, "Python sandbox").

``sandbox.status`` payload ``{wasm, wasmSha256, cacheDir}`` -> ``{wasmtimeVersion, cached,
cachePath, engineKey}`` (cheap: no compile). ``sandbox.run`` payload ``{wasm, wasmSha256,
cacheDir, code, filename, argv, stdin, timeoutMs, memoryBytes, fuel, maxOutputBytes,
deterministic}`` -> ``{status, exitCode, stdout, stderr, stdoutTruncated, stderrTruncated,
wallMs, fuel, compiled, compileMs}`` (a run that ran is a success whatever the guest did).

Error codes (``abi.OpError``): ``feature_required`` (wasmtime not importable: the runner
installs the ``sandbox`` feature and retries), ``invalid_payload`` (details name the field),
``sandbox_bundle_mismatch`` (the wasm's sha256 is not ``wasmSha256``; checked when compiling).
"""

from __future__ import annotations

from typing import Any

from ktx_daemon.abi import OpError
from ktx_sandbox import payload as payload_mod

FEATURE = "sandbox"


def _require_wasmtime() -> None:
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        import importlib

        importlib.invalidate_caches()  # a daemon started before the feature was installed
        try:
            import wasmtime  # noqa: F401
        except ImportError:
            raise OpError(
                "feature_required",
                f"running Python in the sandbox needs the runtime feature {FEATURE!r} "
                f"(wasmtime), which is not installed",
                {"feature": FEATURE, "connectionId": None, "suggestions": []},
            ) from None


def status(payload: dict[str, Any]) -> dict[str, Any]:
    """``sandbox.status``: whether the module for this wasm is compiled and cached."""
    b = payload_mod.bundle(payload)
    _require_wasmtime()
    from ktx_sandbox import cache, engine

    key = engine.engine_key(b.wasm_sha256)
    path = cache.cache_path(b.cache_dir, key)
    cached = cache.in_memory(key) or cache.read_valid(path) is not None
    return {
        "wasmtimeVersion": engine.wasmtime_version(),
        "cached": cached,
        "cachePath": str(path),
        "engineKey": key,
    }


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """``sandbox.run``: run ``code`` in a fresh sandbox under the payload's limits."""
    spec = payload_mod.run_spec(payload)
    _require_wasmtime()
    from ktx_sandbox import cache
    from ktx_sandbox import run as run_mod

    try:
        return run_mod.run(spec)
    except cache.BundleMismatch as exc:
        raise OpError(
            "sandbox_bundle_mismatch",
            f"{exc}; the bundle changed after it was verified: run `ktx bundle verify`",
            {
                "wasm": exc.path,
                "expected": exc.expected,
                "actual": exc.actual,
                "suggestions": ["ktx bundle verify"],
            },
        ) from None
    except FileNotFoundError as exc:
        raise OpError(
            "invalid_payload",
            f"wasm: cannot read {spec.bundle.wasm}: {exc.strerror}",
            {"field": "wasm", "suggestions": []},
        ) from None
