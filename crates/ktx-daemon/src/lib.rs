//! Lifecycle of ktx's loopback Python daemon, and the client that talks to it.
//!
//! One daemon runs per runtime version (`python -I -m ktx_daemon serve`), bound to
//! `127.0.0.1` on a port it picks itself. Its directory (`<root>/<version>/daemon/`) holds:
//!
//! | file | written by | content |
//! |---|---|---|
//! | `state.json` | the daemon, atomically | pid, port, version, features, instanceId... |
//! | `owner.json` | this crate, after spawn | pid + process start time (PID-reuse guard) |
//! | `token` | this crate, before spawn (0600) | 32 random bytes, hex |
//! | `daemon.log` | the daemon's stdout + stderr | rotated to `daemon.log.1` past 1 MiB at spawn and past 4 MiB by the daemon (`--log-file`) |
//! | `lifecycle.lock` | this crate (`ktx_base::lock`) | who holds the lock |
//!
//! * [`start`] reuses a daemon only when its pid is alive **with the recorded start time**,
//!   `/health` answers with the state's instance id, the expected version and the requested
//!   features; otherwise it cleans up (never signalling a process it cannot prove is ours)
//!   and spawns a new one, detached in its own session with stdin null and output in
//!   `daemon.log`, so the caller's pipes are never inherited.
//! * [`stop`] asks for `/v1/shutdown`, then escalates to SIGTERM and SIGKILL (Windows:
//!   `TerminateProcess` through a handle whose start time was re-verified).
//! * [`status`] is read-only.
//! * [`Client`] calls the ABI over HTTP/1.1 keep-alive. The HTTP client is hand-written over
//!   `std::net::TcpStream` to `127.0.0.1` only: proxy variables are never consulted.
//!
//! This crate does not depend on `ktx-runtime`: callers pass the interpreter, the daemon
//! directory and the expected version.

mod client;
mod error;
mod files;
mod http;
mod lifecycle;
mod lock;
mod process;

pub use client::{Client, Health, CONNECT_TIMEOUT, HEALTH_TIMEOUT, MAX_REQUEST_BODY};
pub use error::{DaemonError, Result};
pub use files::{DaemonPaths, DaemonState};
/// The ABI version the daemon must speak (one definition, in `ktx-base`).
pub use ktx_base::abi::ABI_VERSION;
/// Now as RFC 3339 UTC, second precision (one definition, in `ktx-base`).
pub use ktx_base::time::now_rfc3339;
pub use lifecycle::{
    running_pid, start, start_with_progress, status, stop, stop_with_progress, DaemonStatus,
    Progress, StartConfig, StartOutcome, StatusKind, StopOutcome,
};
