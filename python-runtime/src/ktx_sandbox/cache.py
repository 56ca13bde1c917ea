"""The compiled-module cache: in memory for the process, and as files in ``cacheDir``.

Files: ``<cacheDir>/<engineKey>.cwasm`` (``Module.serialize`` bytes) and next to it
``<engineKey>.cwasm.sha256`` (their sha256, hex). Both are written atomically: a temporary file
created with ``O_EXCL`` in the same directory, written, fsynced, then renamed over the target,
so a reader sees an old file or a new one, never a part. A loader reads the bytes once, checks
them against the sidecar and deserializes exactly those bytes: a tampered, truncated or
mismatched file is recompiled (and rewritten), never loaded.

Two processes compiling at once each write their own temporary files; the renames are atomic,
so the cache ends up holding one of the two complete results. Should the pair be mixed (one
process's module, the other's sidecar), the hashes differ and the next load recompiles:
correctness never depends on who won.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from ktx_daemon.atomic import atomic_write
from ktx_sandbox import engine as engine_mod

SUFFIX = ".cwasm"
SIDECAR = ".sha256"


class BundleMismatch(Exception):
    """The wasm file's sha256 is not the one the caller verified."""

    def __init__(self, path: str, expected: str, actual: str):
        super().__init__(f"{path} has sha256 {actual}, expected {expected}")
        self.path = path
        self.expected = expected
        self.actual = actual


@dataclass
class Loaded:
    """A module ready to instantiate, and how it was obtained."""

    module: wasmtime.Module
    compiled: bool
    compile_ms: float | None


def cache_path(cache_dir: str, key: str) -> Path:
    """Where the module compiled for ``key`` lives."""
    return Path(cache_dir) / f"{key}{SUFFIX}"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def read_valid(path: Path) -> bytes | None:
    """The cached bytes at ``path`` when they match their sidecar hash, else None."""
    try:
        data = path.read_bytes()
        want = _sidecar(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if len(want) != 64 or hashlib.sha256(data).hexdigest() != want.lower():
        return None
    return data


def _store(path: Path, serialized: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, serialized)
    atomic_write(_sidecar(path), hashlib.sha256(serialized).hexdigest().encode("ascii") + b"\n")


_lock = threading.Lock()
#: engine key -> module, for the life of the process (a daemon keeps the module loaded).
_loaded: dict[str, wasmtime.Module] = {}


def in_memory(key: str) -> bool:
    """Whether this process already holds the module for ``key``."""
    return key in _loaded


def forget() -> None:
    """Drop the in-memory modules (tests exercise the file cache with it)."""
    with _lock:
        _loaded.clear()


def load(wasm: str, wasm_sha256: str, cache_dir: str) -> Loaded:
    """The module for ``wasm``: from memory, else a valid cache file, else compiled (after the
    wasm's sha256 is checked against ``wasm_sha256``) and written to the cache."""
    key = engine_mod.engine_key(wasm_sha256)
    with _lock:  # one compile per process at a time; others wait and reuse it
        module = _loaded.get(key)
        if module is not None:
            return Loaded(module, False, None)
        eng, _ = engine_mod.get()
        path = cache_path(cache_dir, key)
        data = read_valid(path)
        if data is not None:
            try:
                module = wasmtime.Module.deserialize(eng, data)
            except wasmtime.WasmtimeError:
                module = None  # a module from another build of wasmtime: compile again
            if module is not None:
                _loaded[key] = module
                return Loaded(module, False, None)
        source = Path(wasm).read_bytes()
        actual = hashlib.sha256(source).hexdigest()
        if actual != wasm_sha256.lower():
            raise BundleMismatch(wasm, wasm_sha256.lower(), actual)
        start = time.perf_counter()
        module = wasmtime.Module(eng, source)
        compile_ms = (time.perf_counter() - start) * 1000.0
        _store(path, bytes(module.serialize()))
        _loaded[key] = module
        return Loaded(module, True, compile_ms)
