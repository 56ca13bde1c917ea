"""One ``sandbox.run``: a fresh ``Store`` per run, limits applied, the outcome classified.

Classification comes from typed facts only, in this order: the wall-clock deadline passed
(an epoch ``INTERRUPT`` trap; ``hostcalls`` also marks a sleep the deadline ended) ->
``timeout``; an ``OUT_OF_FUEL`` trap -> ``out_of_fuel``; a grow the memory creator refused and
a guest that then failed -> ``memory_limit``; ``proc_exit(n)`` -> ``ok`` / ``exit``; any other
trap -> ``error``. No message text is read.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import wasmtime

from ktx_sandbox import cache, hostcalls, memory
from ktx_sandbox import engine as engine_mod
from ktx_sandbox.payload import RunSpec

#: The exit codes of the non-guest outcomes (the CLI exits with them too).
EXIT_CODES = {"timeout": 124, "out_of_fuel": 125, "memory_limit": 126, "error": 127}
#: Fuel given to a run without a budget (fuel is always metered; this is never reached).
UNMETERED_FUEL = 2**63 - 1

#: ``python -c BOOT FILENAME CODE ARGS...``: runs CODE under FILENAME (tracebacks, ``__file__``,
#: ``sys.argv[0]``) and prints a traceback without the bootstrap's own frame.
_BOOT = """\
import sys
def _ktx_run():
    f, c = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    sys.argv[0] = f
    import linecache
    linecache.cache[f] = (len(c), None, c.splitlines(True), f)
    import types
    main = types.ModuleType("__main__")
    main.__file__ = f
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main  # pickle, dataclasses... look the module up here
    try:
        exec(compile(c, f, "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        tb = None if isinstance(e, SyntaxError) else tb
        import traceback  # prints source lines from linecache (the C hook reads files)
        traceback.print_exception(type(e), e.with_traceback(tb), tb)
        sys.exit(1)
_ktx_run()
"""

_linker_lock = threading.Lock()
_linkers: dict[int, wasmtime.Linker] = {}


def _linker(eng: wasmtime.Engine) -> wasmtime.Linker:
    with _linker_lock:
        linker = _linkers.get(id(eng))
        if linker is None:
            linker = wasmtime.Linker(eng)
            linker.define_wasi()
            hostcalls.define(linker)
            _linkers[id(eng)] = linker
        return linker


def guest_argv(spec: RunSpec) -> list[str]:
    """The guest's argv: plain ``python -c`` for ``<string>``, else the bootstrap."""
    if spec.filename == "<string>":
        return ["python", "-c", spec.code, *spec.argv]
    return ["python", "-c", _BOOT, spec.filename, spec.code, *spec.argv]


def classify(
    timed_out: bool,
    trap: wasmtime.TrapCode | None,
    exit_code: int | None,
    failed: bool,
    grow_refused: bool,
) -> str:
    """The run's ``status`` from typed facts (the order is the module doc's)."""
    if timed_out or trap == wasmtime.TrapCode.INTERRUPT:
        return "timeout"
    if trap == wasmtime.TrapCode.OUT_OF_FUEL:
        return "out_of_fuel"
    if grow_refused and (exit_code != 0 or trap is not None or failed):
        return "memory_limit"
    if exit_code == 0:
        return "ok"
    if exit_code is not None:
        return "exit"
    return "error"


def run(spec: RunSpec) -> dict[str, Any]:
    """Run ``spec`` and return the ``sandbox.run`` result (raises cache.BundleMismatch)."""
    b = spec.bundle
    loaded = cache.load(b.wasm, b.wasm_sha256, b.cache_dir)
    eng, ticker = engine_mod.get()
    linker = _linker(eng)

    stdout = hostcalls.OutputSink(spec.max_output_bytes)
    stderr = hostcalls.OutputSink(spec.max_output_bytes)
    wasi = wasmtime.WasiConfig()
    wasi.argv = guest_argv(spec)  # no env, no preopens: nothing of the host is visible
    hostcalls.attach_output(wasi, "stdout", stdout)
    hostcalls.attach_output(wasi, "stderr", stderr)
    hostcalls.attach_stdin(wasi, spec.stdin)

    store = wasmtime.Store(eng)
    store.set_wasi(wasi)
    store.set_limits(instances=4, tables=4, memories=1, table_elements=1_000_000)
    fuel_budget = spec.fuel if spec.fuel is not None else UNMETERED_FUEL
    store.set_fuel(fuel_budget)
    budget = memory.Budget(limit=spec.memory_bytes)

    exit_code: int | None = None
    trap: wasmtime.TrapCode | None = None
    failed = False  # a failure that is neither an exit nor a trap code (instantiation, ...)
    started = time.perf_counter()
    deadline = time.monotonic() + spec.timeout_ms / 1000.0
    state = hostcalls.HostState(budget, deadline, spec.deterministic)
    with ticker, memory.instantiating(budget), hostcalls.serving(state):
        ticker.set_deadline(store, spec.timeout_ms / 1000.0)
        try:
            instance = linker.instantiate(store, loaded.module)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
            exit_code = 0
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        except wasmtime.Trap as exc:
            trap = exc.trap_code
        except wasmtime.WasmtimeError:
            failed = True
    wall_ms = (time.perf_counter() - started) * 1000.0
    try:
        fuel_used: int | None = fuel_budget - store.get_fuel()
    except wasmtime.WasmtimeError:
        fuel_used = None
    # Free the store (and with it the guest memory) now: exception tracebacks from the host
    # calls can keep the Python object alive in a cycle until the next GC.
    store.close()

    status = classify(state.timed_out, trap, exit_code, failed, bool(budget.refused))
    code = exit_code if status in ("ok", "exit") else EXIT_CODES[status]
    return {
        "status": status,
        "exitCode": code,
        "stdout": stdout.text(),
        "stderr": stderr.text(),
        "stdoutTruncated": stdout.truncated,
        "stderrTruncated": stderr.truncated,
        "wallMs": round(wall_ms, 3),
        "fuel": fuel_used,
        "compiled": loaded.compiled,
        "compileMs": None if loaded.compile_ms is None else round(loaded.compile_ms, 3),
    }
