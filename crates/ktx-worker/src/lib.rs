//! ktx's script worker: one Python process that runs user scripts, supervised from Rust.
//!
//! [`Worker::spawn`] starts `python -I -u -X utf8 -m ktx_worker` (the wheel's module) in its
//! own process group with a cleared environment, and waits for its ready frame. Requests and
//! replies are length-prefixed JSON frames ([`frame`]) on the process's original stdin and
//! stdout, which the worker moves to private descriptors before any script runs: `print()`,
//! `sys.stdout.buffer` and `os.write(1, ...)` cannot reach the channel, a script's stdout is
//! captured per call (capped, `stdout_truncated`), and stdin reads as empty.
//!
//! Semantics (`docs/ARCHITECTURE.md`, "The script worker"):
//! - each module is loaded once per content hash, its entrypoint reused; a new hash reloads;
//! - every call has a deadline; on expiry the process group is killed, the call is `Timeout`,
//!   and a fresh worker serves the next call; restarts are bounded ([`WorkerConfig`]);
//! - results must be plain JSON, checked in the worker (NaN, Infinity, bytes, sets, non-string
//!   keys, ints beyond 64 bits are `BadResult` with the JSON path; tuples become arrays);
//! - the worker's address space is limited (RLIMIT_AS, 1 GiB by default): a runaway
//!   allocation is a `MemoryError` (`Raised`, then the worker restarts) or a `Crashed` call;
//! - a bad result or a raised exception costs nothing but the call: the process lives on.
//!
//! Platforms: Linux is complete. macOS has process groups but does not reliably enforce
//! RLIMIT_AS. Windows has no process group here: a kill is `taskkill /T /F` on the worker's
//! tree (no Job object yet) and there is no memory limit; it compiles and is untested.
//!
//! Modules: [`config`] (what to start, what to call), [`outcome`] (typed results), [`frame`]
//! (the wire framing), `child` (the process), `protocol` (the messages), [`stats`] (counters
//! and HDR histograms), `worker` (supervision), [`shared`] (a bounded queue in front of one
//! worker, for concurrent callers).

pub mod config;
pub mod frame;
pub mod outcome;
pub mod shared;
pub mod stats;

mod child;
mod protocol;
mod worker;

pub use config::{
    ScriptRef, WorkerConfig, DEFAULT_DEADLINE, DEFAULT_MEMORY_LIMIT, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_STDOUT_LIMIT,
};
pub use outcome::{CallError, CallErrorKind, CallOutcome, CheckError, CheckOutcome, WorkerError};
pub use shared::SharedWorker;
pub use stats::{ScriptStats, ScriptSummary, WorkerStats};
pub use worker::Worker;
