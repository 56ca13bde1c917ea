"""The process's one wasmtime ``Engine``: its settings, its epoch ticker and its cache key.

Settings (all part of :func:`engine_key`, so a compiled module is only reused by an engine
that produced it): Cranelift at ``speed``; ``consume_fuel`` always on, so every run reports
the fuel it used and one compiled module serves runs with and without a budget (measured with
``tests/bench_sandbox.py --fuel-cost``, a CPU-bound guest, on vs off interleaved: -4.6 %, i.e.
within the noise of a loaded 2-core machine; a second module per wasm would cost one more
multi-second compile); ``epoch_interruption`` on; memories created by ``memory`` (no
reservation, no guard pages, no CoW: explicit bounds checks).

Epochs only interrupt a guest if something advances them: :class:`Ticker` is ONE daemon
thread per engine that keeps the epoch at (real time elapsed) / :data:`TICK_SECONDS` while at
least one run is active, and sleeps on a condition otherwise (an idle daemon does not wake).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import threading
import time
from importlib import metadata

import wasmtime

from ktx_sandbox import memory

#: Epoch period. A run's deadline is ``ceil(timeout / TICK_SECONDS)`` ticks away, so the
#: timeout holds to within one tick (plus the trap's unwinding).
TICK_SECONDS = 0.005

#: Engine settings that change the compiled code (the cache key covers all of them).
SETTINGS = {
    "strategy": "cranelift",
    "craneliftOptLevel": "speed",
    "consumeFuel": True,
    "epochInterruption": True,
    "memoryReservation": 0,
    "memoryGuardSize": 0,
    "memoryReservationForGrowth": 0,
    "hostMemoryCreator": True,
    "memoryInitCow": False,
}

#: Bumped when this host changes what it expects of a compiled module.
HOST_LAYOUT = 1


def wasmtime_version() -> str:
    """The installed wasmtime-py version (``50.0.1``)."""
    return metadata.version("wasmtime")


def engine_key(wasm_sha256: str) -> str:
    """What a compiled module is keyed on: the wasm, wasmtime, the settings, the machine."""
    ident = {
        "wasmSha256": wasm_sha256.lower(),
        "wasmtime": wasmtime_version(),
        "settings": SETTINGS,
        "machine": platform.machine().lower(),
        "system": platform.system().lower(),
        "hostLayout": HOST_LAYOUT,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


class Ticker:
    """Keeps ``engine``'s epoch at (real time elapsed) / :data:`TICK_SECONDS` while runs are
    active. Epochs are counted since the ticker last resumed (``_base``, ``_done``); the GIL
    can hold the thread back (a guest busy in host calls), so deadlines are set from real time,
    not from the possibly lagging epoch (see :meth:`set_deadline`)."""

    def __init__(self, engine: wasmtime.Engine):
        self._engine = engine
        self._cond = threading.Condition()
        self._active = 0
        self._running = False
        self._base = 0.0
        self._done = 0
        self._thread = threading.Thread(target=self._loop, name="ktx-sandbox-epoch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._active == 0:
                    self._running = False
                    self._cond.wait()
                if not self._running:
                    self._running = True
                    self._base = time.monotonic()
                    self._done = 0
            time.sleep(TICK_SECONDS)
            with self._cond:
                # Catch up after a stall; never run ahead, so a deadline is never early.
                due = int((time.monotonic() - self._base) / TICK_SECONDS)
                while self._done < due:
                    self._engine.increment_epoch()
                    self._done += 1

    def set_deadline(self, store: wasmtime.Store, seconds: float) -> None:
        """Trap ``store``'s guest once at least ``seconds`` of real time have passed."""
        with self._cond:
            lag = 0
            if self._running:
                due = int((time.monotonic() - self._base) / TICK_SECONDS)
                lag = max(0, due - self._done)
            # The current tick is partly over: one more so the deadline is never early.
            store.set_epoch_deadline(lag + math.ceil(seconds / TICK_SECONDS) + 1)

    def __enter__(self) -> Ticker:
        with self._cond:
            self._active += 1
            self._cond.notify_all()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._active -= 1


def _config() -> wasmtime.Config:
    cfg = wasmtime.Config()
    cfg.strategy = "cranelift"
    cfg.cranelift_opt_level = "speed"
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    cfg.memory_reservation = 0
    cfg.memory_guard_size = 0
    cfg.memory_reservation_for_growth = 0
    memory.install(cfg)
    return cfg


_lock = threading.Lock()
_engine: wasmtime.Engine | None = None
_ticker: Ticker | None = None


def get() -> tuple[wasmtime.Engine, Ticker]:
    """The process's engine and its ticker, created on first use."""
    global _engine, _ticker
    with _lock:
        if _engine is None:
            _engine = wasmtime.Engine(_config())
            _ticker = Ticker(_engine)
        assert _ticker is not None
        return _engine, _ticker
