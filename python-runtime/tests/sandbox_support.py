"""What the sandbox tests share: the real python.wasm, a compiled-module cache, op calls.

``KTX_TEST_PYTHON_WASM`` names the stripped python.wasm of the lang-python bundle and
``KTX_TEST_SANDBOX_CACHE`` a cache dir kept across runs (``cargo xtask test`` sets both). In CI
(``CI`` set) a missing wasm or wasmtime FAILS the tests; elsewhere they are skipped with the fix.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ktx_daemon import abi

WASM_ENV = "KTX_TEST_PYTHON_WASM"
CACHE_ENV = "KTX_TEST_SANDBOX_CACHE"
FIX = "run `cargo xtask test` (it builds the lang-python bundle and sets KTX_TEST_PYTHON_WASM)"


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; {FIX}", pytrace=False)
    pytest.skip(f"{why}; {FIX}")


@dataclass(frozen=True)
class Sandbox:
    """The wasm under test and the cache its module is compiled into."""

    wasm: str
    sha256: str
    cache_dir: str

    def payload(self, **fields: Any) -> dict[str, Any]:
        base = {"wasm": self.wasm, "wasmSha256": self.sha256, "cacheDir": self.cache_dir}
        base.update(fields)
        return base

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """The full ABI response of ``op`` (through the dispatcher, as the transports do)."""
        return abi.handle({"abi": 1, "op": op, "payload": self.payload(**fields)})

    def run(self, code: str, **fields: Any) -> dict[str, Any]:
        """The ``sandbox.run`` result of ``code``; fails the test on an ABI error."""
        fields.setdefault("timeoutMs", 20_000)
        resp = self.call("sandbox.run", code=code, filename="<string>", **fields)
        assert resp["ok"], resp
        return resp["result"]


def find_sandbox(tmp_root: Path) -> Sandbox:
    """The sandbox of this test session (skips or fails as the module doc says)."""
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        _missing("wasmtime is not installed (python-runtime/dev-requirements.txt)")
    wasm = os.environ.get(WASM_ENV)
    if not wasm or not Path(wasm).is_file():
        _missing(f"{WASM_ENV} is {wasm!r}, not a python.wasm file")
    assert wasm is not None
    sha = hashlib.sha256(Path(wasm).read_bytes()).hexdigest()
    cache_dir = os.environ.get(CACHE_ENV) or str(tmp_root / "sandbox-cache")
    Path(cache_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    return Sandbox(str(Path(wasm).resolve()), sha, str(Path(cache_dir).resolve()))
