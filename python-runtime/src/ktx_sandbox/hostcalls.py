"""WASI calls shadowed in the linker, and the guest's stdin/stdout/stderr.

wasmtime's epochs and fuel do not interrupt a guest blocked in a host call, so
``poll_oneoff`` (what ``time.sleep``, ``select`` and ``clock_nanosleep`` become) is replaced:
it sleeps at most until the run's wall-clock deadline, then marks the run timed out and sets
the store's epoch deadline to "now", so the guest traps with ``INTERRUPT`` at its next epoch
check (a function entry or loop back-edge). No Python exception crosses wasm: wasmtime-py
hands those back through one process-wide slot, which concurrent runs would mix up. The guest
has no other blocking host call: stdin is in memory, there are no preopens and no sockets.

``clock_time_get`` is replaced too, so the clock ``poll_oneoff`` compares absolute deadlines
against is the one the guest read. In ``deterministic`` runs it is a virtual clock (fixed
start, +1 µs per read, + the requested time per sleep) and ``random_get`` is a fixed stream
(sha256 in counter mode), so fuel, ``random.random()`` and ``hash("x")`` repeat exactly.

Output: each stream is captured in memory up to the run's cap; the rest is counted and dropped,
and the guest is always told its write succeeded (no EIO noise in its stderr).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
import threading
import time
from dataclasses import dataclass, field

import wasmtime
from wasmtime import _ffi as ffi

from ktx_sandbox.memory import Budget

WASI = "wasi_snapshot_preview1"
_ERRNO_SUCCESS = 0
_ERRNO_BADF = 8
_ERRNO_FAULT = 21
_ERRNO_INVAL = 28
_ERRNO_NOTSUP = 58
_EVENT_CLOCK, _EVENT_FD_READ, _EVENT_FD_WRITE = 0, 1, 2
_CLOCK_REALTIME = 0
_SUBSCRIPTION_CLOCK_ABSTIME = 1
_SUBSCRIPTION_SIZE = 48
_EVENT_SIZE = 32
#: The virtual clock of deterministic runs starts at 2000-01-01T00:00:00Z.
_DETERMINISTIC_EPOCH_NS = 946_684_800 * 1_000_000_000
_DETERMINISTIC_SEED = b"ktx-sandbox-deterministic-v1"


class OutputSink:
    """One captured stream: at most ``cap`` bytes kept, the rest counted."""

    def __init__(self, cap: int):
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0

    def write_from(self, ptr: int, size: int) -> None:
        room = self.cap - len(self.buf)
        take = min(room, size)
        if take > 0:
            self.buf += ctypes.string_at(ptr, take)
        self.dropped += size - max(take, 0)

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        return self.buf.decode("utf-8", errors="replace")


_sinks: dict[int, OutputSink] = {}
_sinks_lock = threading.Lock()
_next_sink = 0


_WRITE = ctypes.CFUNCTYPE(
    ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t
)


@_WRITE
def _sink_write(env, ptr, size):  # type: ignore[no-untyped-def]
    sink = _sinks.get(env or 0)
    if sink is not None and size:
        sink.write_from(ctypes.addressof(ptr.contents), size)
    return size  # the guest always sees a complete write


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _sink_finalize(env):  # type: ignore[no-untyped-def]
    with _sinks_lock:
        _sinks.pop(env or 0, None)


def attach_output(wasi: wasmtime.WasiConfig, stream: str, sink: OutputSink) -> None:
    """Send the guest's ``stream`` ("stdout" or "stderr") into ``sink``."""
    global _next_sink
    with _sinks_lock:
        _next_sink += 1
        key = _next_sink
        _sinks[key] = sink
    setter = getattr(ffi, f"wasi_config_set_{stream}_custom")
    setter(wasi.ptr(), _sink_write, key, _sink_finalize)


def attach_stdin(wasi: wasmtime.WasiConfig, data: bytes) -> None:
    """Give the guest ``data`` as its stdin (in memory; reads never block)."""
    vec = ffi.wasm_byte_vec_t()
    buf = (ffi.wasm_byte_t * len(data)).from_buffer_copy(data) if data else None
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), buf)
    ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))  # takes ownership


@dataclass
class HostState:
    """What the shadowed calls of one run need."""

    budget: Budget
    deadline: float  # time.monotonic() value
    deterministic: bool
    timed_out: bool = False
    virtual_ns: int = 0
    _random_counter: int = 0
    _random_pool: bytearray = field(default_factory=bytearray)

    def now_ns(self, clock_id: int) -> int:
        if self.deterministic:
            self.virtual_ns += 1_000
            base = _DETERMINISTIC_EPOCH_NS if clock_id == _CLOCK_REALTIME else 0
            return base + self.virtual_ns
        if clock_id == _CLOCK_REALTIME:
            return time.time_ns()
        return time.monotonic_ns()

    def random_bytes(self, n: int) -> bytes:
        if not self.deterministic:
            return os.urandom(n)
        while len(self._random_pool) < n:
            block = _DETERMINISTIC_SEED + self._random_counter.to_bytes(8, "little")
            self._random_pool += hashlib.sha256(block).digest()
            self._random_counter += 1
        out = bytes(self._random_pool[:n])
        del self._random_pool[:n]
        return out

    def sleep(self, ns: int) -> bool:
        """Sleep ``ns`` (real time, also in deterministic runs), ending at the deadline;
        False (and the run marked timed out) when the deadline ended it."""
        if self.deterministic:
            self.virtual_ns += ns
        remaining = self.deadline - time.monotonic()
        want = ns / 1e9
        if want < remaining:
            if want > 0:
                time.sleep(want)
            return True
        if remaining > 0:
            time.sleep(remaining)
        self.timed_out = True
        return False


_state = threading.local()


def current() -> HostState:
    """The state of the run on this thread."""
    return _state.value


class serving:
    """Context manager: host calls on this thread serve ``state``."""

    def __init__(self, state: HostState):
        self.state = state

    def __enter__(self) -> HostState:
        _state.value = self.state
        return self.state

    def __exit__(self, *exc: object) -> None:
        _state.value = None


def _mem(st: HostState):  # type: ignore[no-untyped-def]
    mem = st.budget.memory
    if mem is None:
        raise IndexError("no guest memory")
    return mem


def clock_time_get(clock_id: int, _precision: int, out_ptr: int) -> int:
    st = current()
    if clock_id < 0 or clock_id > 3:
        return _ERRNO_INVAL
    try:
        _mem(st).write(out_ptr, struct.pack("<Q", st.now_ns(clock_id) & (2**64 - 1)))
    except IndexError:
        return _ERRNO_FAULT
    return _ERRNO_SUCCESS


def random_get(buf: int, length: int) -> int:
    st = current()
    try:
        _mem(st).write(buf, st.random_bytes(length))
    except IndexError:
        return _ERRNO_FAULT
    return _ERRNO_SUCCESS


def poll_oneoff(
    caller: wasmtime.Caller, in_ptr: int, out_ptr: int, nsubs: int, nevents: int
) -> int:
    st = current()
    try:
        mem = _mem(st)
        if nsubs <= 0:
            return _ERRNO_INVAL
        raw = mem.read(in_ptr, nsubs * _SUBSCRIPTION_SIZE)
        ready: list[bytes] = []  # events for fds (always ready: in-memory streams)
        clocks: list[tuple[int, int]] = []  # (relative ns, userdata)
        for i in range(nsubs):
            sub = raw[i * _SUBSCRIPTION_SIZE : (i + 1) * _SUBSCRIPTION_SIZE]
            userdata, tag = struct.unpack_from("<QB", sub, 0)
            if tag == _EVENT_CLOCK:
                clock_id, timeout, _precision, flags = struct.unpack_from("<IxxxxQQH", sub, 16)
                rel = timeout
                if flags & _SUBSCRIPTION_CLOCK_ABSTIME:
                    rel = timeout - st.now_ns(clock_id)
                clocks.append((max(rel, 0), userdata))
            elif tag in (_EVENT_FD_READ, _EVENT_FD_WRITE):
                (fd,) = struct.unpack_from("<I", sub, 16)
                err = _ERRNO_SUCCESS if fd in (0, 1, 2) else _ERRNO_BADF
                ready.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, err, tag, 1, 0))
            else:
                ready.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, _ERRNO_INVAL, tag, 0, 0))
        events = ready
        if not events and clocks:
            wait = min(rel for rel, _ in clocks)
            if not st.sleep(wait):
                # Trap at the guest's next epoch check (the typed INTERRUPT of a timeout).
                ffi.wasmtime_context_set_epoch_deadline(caller._context(), 0)
            events = [
                struct.pack("<QHBxxxxxQHxxxxxx", ud, _ERRNO_SUCCESS, _EVENT_CLOCK, 0, 0)
                for rel, ud in clocks
                if rel <= wait
            ]
        mem.write(out_ptr, b"".join(events))
        mem.write(nevents, struct.pack("<I", len(events)))
    except IndexError:
        return _ERRNO_FAULT
    return _ERRNO_SUCCESS


def define(linker: wasmtime.Linker) -> None:
    """Shadow the WASI calls above in ``linker`` (which already has ``define_wasi``)."""
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    linker.allow_shadowing = True
    linker.define_func(
        WASI, "poll_oneoff", wasmtime.FuncType([i32] * 4, [i32]), poll_oneoff, access_caller=True
    )
    linker.define_func(
        WASI, "clock_time_get", wasmtime.FuncType([i32, i64, i32], [i32]), clock_time_get
    )
    linker.define_func(WASI, "random_get", wasmtime.FuncType([i32, i32], [i32]), random_get)
