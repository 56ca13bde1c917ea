"""Figures of the Python sandbox host (ktx_sandbox): compile, cached load, warm run, fuel cost.

Run (needs wasmtime from dev-requirements.txt and the lang-python bundle's python.wasm)::

    cd python-runtime && python tests/bench_sandbox.py --wasm PATH [--runs N] [--fuel-cost]

Prints JSON: ``compileMs`` (Cranelift, a fresh cache dir), ``cachedLoadMs`` (reading, hashing
and deserializing the cache file in a process that has not loaded it), ``warmRunMs`` (median
and p95 of ``print(1+1)`` per run in one process: fresh store, instantiate, ``_start``) and the
deterministic fuel of ``print(1+1)``. ``--fuel-cost`` also compiles the same wasm with
``consume_fuel`` off (otherwise identical settings) and compares a CPU-bound guest's wall time;
``--bounds-cost`` compares the sandbox's host-created memories (explicit bounds checks) with
wasmtime's default ones (guard pages), for ``print(1+1)`` and the CPU-bound guest.
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

CPU_BOUND = "print(sum(i * i for i in range(1_000_000)))"


def _run(wasm: str, sha: str, cache_dir: str, code: str, **extra) -> dict:
    payload = {"wasm": wasm, "wasmSha256": sha, "cacheDir": cache_dir, "code": code}
    payload.update({"filename": "<string>", "timeoutMs": 600_000, **extra})
    resp = abi.handle({"abi": 1, "op": "sandbox.run", "payload": payload})
    assert resp["ok"], resp
    return resp["result"]


def _plain_config():  # wasmtime's default memories (reservation + guard pages), no creator
    import wasmtime

    cfg = wasmtime.Config()
    cfg.cranelift_opt_level = "speed"
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    return cfg


def _compare(wasm: str, runs: int, variants: dict, codes: dict) -> dict:
    """Median wall time of each of ``codes`` (label -> source) per engine variant (name ->
    (config, fuel?)), interleaved so a change in the machine's load hits every variant alike."""
    import wasmtime

    from ktx_sandbox import hostcalls, memory

    setups = {}
    for name, (cfg, fuel) in variants.items():
        eng = wasmtime.Engine(cfg)
        linker = wasmtime.Linker(eng)
        linker.define_wasi()
        if name != "plain":  # the shadowed calls read the guest memory the creator made
            hostcalls.define(linker)
        setups[name] = (eng, wasmtime.Module.from_file(eng, wasm), linker, fuel)
    walls: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):
        for (label, code), (name, (eng, module, linker, fuel)) in (
            (c, v) for c in codes.items() for v in setups.items()
        ):
            wasi = wasmtime.WasiConfig()
            wasi.argv = ["python", "-c", code]
            hostcalls.attach_output(wasi, "stdout", hostcalls.OutputSink(1 << 20))
            store = wasmtime.Store(eng)
            store.set_wasi(wasi)
            store.set_epoch_deadline(2**40)  # epochs are on in all; nothing ticks here
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
            walls.setdefault((label, name), []).append((time.perf_counter() - t) * 1000)
            store.close()
    out: dict = {"runs": runs}
    for (label, name), w in walls.items():
        out.setdefault(label, {})[name] = round(statistics.median(w), 1)
    return out


def _fuel_cost(wasm: str, runs: int) -> dict:
    """consume_fuel on vs off, everything else as the sandbox's engine."""
    off = engine._config()
    off.consume_fuel = False
    variants = {"fuelOn": (engine._config(), True), "fuelOff": (off, False)}
    out = _compare(wasm, runs, variants, {"cpuBound": CPU_BOUND})
    r = out["cpuBound"]
    r["overheadPct"] = round((r["fuelOn"] / r["fuelOff"] - 1) * 100, 1)
    return out


def _bounds_cost(wasm: str, runs: int) -> dict:
    """The sandbox's memories (creator, explicit bounds checks) and shadowed calls vs wasmtime's
    default memories (guard pages) and its own WASI calls."""
    variants = {"creator": (engine._config(), True), "plain": (_plain_config(), True)}
    out = _compare(wasm, runs, variants, {"print": "print(1+1)", "cpuBound": CPU_BOUND})
    for label in ("print", "cpuBound"):
        r = out[label]
        r["overheadPct"] = round((r["creator"] / r["plain"] - 1) * 100, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--fuel-cost", action="store_true")
    ap.add_argument("--bounds-cost", action="store_true")
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
        if args.bounds_cost:
            figures["boundsCheckCost"] = _bounds_cost(wasm, 5)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
