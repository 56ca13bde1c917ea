"""The Python sandbox host: CPython for WASI (``python.wasm``) run under wasmtime-py.

Ops (registered in ``ktx_daemon.abi.OPS``; the contract is in ``ops``): ``sandbox.status`` and
``sandbox.run``. Modules, one concern each:

- ``payload``: validation of the ``sandbox.run`` payload into a :class:`~payload.RunSpec`.
- ``memory``: the engine's memory creator, which enforces ``memoryBytes`` and records, as a
  flag, every grow it refuses (how ``memory_limit`` is known without reading messages).
- ``engine``: the one wasmtime ``Engine`` per process, its settings, the epoch ticker thread
  and the engine key the compiled-module cache is keyed on.
- ``cache``: the compiled-module cache (in memory, and files in ``cacheDir``).
- ``hostcalls``: the WASI calls shadowed in the linker (``poll_oneoff`` so a sleep ends at the
  wall-clock deadline; ``random_get`` and the clocks for ``deterministic``) and the capped
  output sinks.
- ``run``: one run in a fresh ``Store``, and its classification from typed traps and flags.

Importing this package imports no wasmtime: ``ops`` answers ``feature_required`` when the
``sandbox`` feature (the wheel extra that brings wasmtime) is not installed.
"""
