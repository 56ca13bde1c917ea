"""Guest linear memories created by the host, so a refused grow is a typed fact, not a message.

wasmtime's store limiter refuses a grow silently (the guest's ``memory.grow`` returns -1 and
CPython raises ``MemoryError``). To tell ``memory_limit`` apart from any other failure the
engine gets a memory creator (``wasmtime_config_host_memory_creator_set``): each memory is an
anonymous ``mmap`` of the run's limit (pages are committed only when the guest touches them),
and a grow past the limit is refused here and recorded on the run's :class:`Budget`.

The engine is configured without a virtual-memory reservation or guard pages (see ``engine``),
so compiled code bounds-checks every access against the size :func:`_get_memory` reports: the
mapping past the guest's current size is never reachable from the guest. Those checks cost
(``tests/bench_sandbox.py --bounds-cost``, against wasmtime's default guard-page memories,
interleaved, on a loaded 2-core machine): about +40 % on ``print(1+1)`` and +60 % on a
CPU-bound loop. Reserving the 4 GiB + guard region here (``PROT_NONE``, ``mprotect`` on grow;
``VirtualAlloc`` on Windows) would remove them; not done yet.
"""

from __future__ import annotations

import ctypes
import mmap
import threading
from dataclasses import dataclass, field

from wasmtime import _ffi as ffi

#: The run whose store is being instantiated on this thread (memories are created during
#: instantiation, on the instantiating thread).
_current = threading.local()
_lock = threading.Lock()
_memories: dict[int, _Memory] = {}
_next_id = 0


@dataclass
class Budget:
    """The memory limit of one run and what the guest asked beyond it."""

    limit: int
    refused: list[int] = field(default_factory=list)
    peak: int = 0
    #: The guest's memory once created (host calls read and write it directly).
    memory: _Memory | None = None


class _Memory:
    def __init__(self, budget: Budget, size: int, cap: int):
        self.budget = budget
        self.size = size
        self.cap = cap
        # One extra byte keeps a zero-size memory mappable.
        self.map = mmap.mmap(-1, max(cap, 1))
        self.view = ctypes.c_char.from_buffer(self.map)
        self.base = ctypes.addressof(self.view)
        budget.peak = max(budget.peak, size)
        budget.memory = self

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes of guest memory at ``offset``; IndexError when out of bounds."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise IndexError("guest pointer out of bounds")
        return self.map[offset : offset + length]

    def write(self, offset: int, data: bytes) -> None:
        """Write ``data`` into guest memory at ``offset``; IndexError when out of bounds."""
        if offset < 0 or offset + len(data) > self.size:
            raise IndexError("guest pointer out of bounds")
        self.map[offset : offset + len(data)] = data

    def close(self) -> None:
        del self.view
        self.map.close()


def _error(message: bytes) -> int:
    return ctypes.cast(ffi.wasmtime_error_new(message), ctypes.c_void_p).value or 0


@ffi.wasmtime_memory_get_callback_t
def _get_memory(env, byte_size, max_byte_size):  # type: ignore[no-untyped-def]
    mem = _memories[env or 0]
    byte_size[0] = mem.size
    max_byte_size[0] = mem.cap
    return mem.base


@ffi.wasmtime_memory_grow_callback_t
def _grow_memory(env, new_size):  # type: ignore[no-untyped-def]
    mem = _memories[env or 0]
    if new_size > mem.cap:
        mem.budget.refused.append(new_size)
        return _error(b"memory limit of the sandbox reached")
    mem.size = new_size
    mem.budget.peak = max(mem.budget.peak, new_size)
    return 0


_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@_FINALIZER
def _finalize_memory(env):  # type: ignore[no-untyped-def]
    with _lock:
        mem = _memories.pop(env or 0, None)
    if mem is not None:
        mem.close()


@ffi.wasmtime_new_memory_callback_t
def _new_memory(env, ty, minimum, maximum, reserved, guard, ret):  # type: ignore[no-untyped-def]
    global _next_id
    budget: Budget | None = getattr(_current, "budget", None)
    if budget is None:
        return _error(b"no sandbox run is instantiating on this thread")
    cap = min(budget.limit, maximum) if maximum else budget.limit
    if minimum > cap:
        budget.refused.append(minimum)
        return _error(b"the module's initial memory exceeds the sandbox memory limit")
    try:
        mem = _Memory(budget, minimum, cap)
    except (OSError, ValueError, OverflowError):  # the host could not map the limit
        return _error(b"the host cannot map the sandbox memory")
    with _lock:
        _next_id += 1
        key = _next_id
        _memories[key] = mem
    out = ret.contents
    out.env = key
    out.get_memory = _get_memory
    out.grow_memory = _grow_memory
    out.finalizer = _finalize_memory
    return 0


@_FINALIZER
def _finalize_creator(env):  # type: ignore[no-untyped-def]
    return None


_creator = ffi.wasmtime_memory_creator_t()
_creator.env = None
_creator.new_memory = _new_memory
_creator.finalizer = _finalize_creator


def install(config: object) -> None:
    """Make ``config`` (a ``wasmtime.Config``) create memories here (and without CoW images,
    which only wasmtime's own mmap memories support)."""
    ptr = config.ptr()  # type: ignore[attr-defined]
    ffi.wasmtime_config_host_memory_creator_set(ptr, ctypes.byref(_creator))
    ffi.wasmtime_config_memory_init_cow_set(ptr, False)


class instantiating:
    """Context manager: memories created on this thread meanwhile belong to ``budget``."""

    def __init__(self, budget: Budget):
        self.budget = budget

    def __enter__(self) -> Budget:
        _current.budget = self.budget
        return self.budget

    def __exit__(self, *exc: object) -> None:
        _current.budget = None


def live_memories() -> int:
    """How many guest memories exist (a test checks that runs free theirs)."""
    with _lock:
        return len(_memories)
