"""Figures of the Python sandbox host (ktx_sandbox): compile, cached load, warm run, fuel cost.

Run (needs wasmtime from dev-requirements.txt and the lang-python bundle's python.wasm)::

    cd python-runtime && python tests/bench_sandbox.py --wasm PATH [--runs N] [--fuel-cost]

Prints JSON: ``compileMs`` (Cranelift, a fresh cache dir), ``cachedLoadMs`` (reading, hashing
and deserializing the cache file in a process that has not loaded it), ``warmRunMs`` (median
and p95 of ``print(1+1)`` per run in one process: fresh store, instantiate, ``_start``) and the
deterministic fuel of ``print(1+1)``. ``--fuel-cost`` also compiles the same wasm with
``consume_fuel`` off (otherwise identical settings) and compares a CPU-bound guest's wall time.
Figures only; nothing here is asserted (tests never assert speed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ktx_daemon import abi  # noqa: E402
from ktx_sandbox import cache, engine  # noqa: E402

CPU_BOUND = "print(sum(i * i for i in range(3_000_000)))"


def _run(wasm: str, sha: str, cache_dir: str, code: str, **extra) -> dict:
    payload = {"wasm": wasm, "wasmSha256": sha, "cacheDir": cache_dir, "code": code}
    payload.update({"filename": "<string>", "timeoutMs": 600_000, **extra})
    resp = abi.handle({"abi": 1, "op": "sandbox.run", "payload": payload})
    assert resp["ok"], resp
    return resp["result"]


def _fuel_cost(wasm: str, runs: int) -> dict:
    """Wall time of CPU_BOUND with consume_fuel on vs off (same engine settings otherwise)."""
    import wasmtime

    from ktx_sandbox import hostcalls, memory

    out = {}
    for fuel in (True, False):
        cfg = engine._config()
        cfg.consume_fuel = fuel
        eng = wasmtime.Engine(cfg)
        module = wasmtime.Module.from_file(eng, wasm)
        linker = wasmtime.Linker(eng)
        linker.define_wasi()
        hostcalls.define(linker)
        walls = []
        for _ in range(runs):
            wasi = wasmtime.WasiConfig()
            wasi.argv = ["python", "-c", CPU_BOUND]
            sink = hostcalls.OutputSink(1 << 20)
            hostcalls.attach_output(wasi, "stdout", sink)
            store = wasmtime.Store(eng)
            store.set_wasi(wasi)
            store.set_epoch_deadline(2**40)  # epochs are on in both; nothing ticks here
            if fuel:
                store.set_fuel(2**62)
            budget = memory.Budget(limit=128 << 20)
            state = hostcalls.HostState(budget, time.monotonic() + 600, False)
            t = time.perf_counter()
            with memory.instantiating(budget), hostcalls.serving(state):
                inst = linker.instantiate(store, module)
                try:
                    inst.exports(store)["_start"](store)
                except wasmtime.ExitTrap:
                    pass
            walls.append((time.perf_counter() - t) * 1000)
            store.close()
        out["fuelOnMs" if fuel else "fuelOffMs"] = round(statistics.median(walls), 1)
    out["fuelOverheadPct"] = round((out["fuelOnMs"] / out["fuelOffMs"] - 1) * 100, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--fuel-cost", action="store_true")
    args = ap.parse_args()
    wasm = str(Path(args.wasm).resolve())
    sha = hashlib.sha256(Path(wasm).read_bytes()).hexdigest()
    with tempfile.TemporaryDirectory() as d:
        first = _run(wasm, sha, d, "print(1+1)")
        cache.forget()
        t = time.perf_counter()
        cache.load(wasm, sha, d)
        cached_load_ms = (time.perf_counter() - t) * 1000
        walls = [_run(wasm, sha, d, "print(1+1)")["wallMs"] for _ in range(args.runs)]
        fuel = {_run(wasm, sha, d, "print(1+1)", deterministic=True)["fuel"] for _ in range(3)}
        figures = {
            "wasmtime": engine.wasmtime_version(),
            "compileMs": first["compileMs"],
            "cachedLoadMs": round(cached_load_ms, 1),
            "warmRunMs": {
                "p50": round(statistics.median(walls), 1),
                "p95": round(sorted(walls)[int(len(walls) * 0.95) - 1], 1),
                "runs": args.runs,
            },
            "deterministicFuelPrint": sorted(fuel),
        }
        if args.fuel_cost:
            figures["fuelCost"] = _fuel_cost(wasm, 5)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
