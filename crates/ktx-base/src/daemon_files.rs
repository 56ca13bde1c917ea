//! The names of the daemon's directory and files, shared by the daemon lifecycle (which writes
//! them) and whoever inspects a runtime directory (prune, install's garbage collection).
//!
//! `<root>/<version>/daemon/` holds [`STATE`], [`OWNER`], [`TOKEN`], [`LOG`] and [`LOCK`].

/// The daemon directory's name under a runtime version directory.
pub const DIR: &str = "daemon";
/// Written by the Python daemon after it bound its port (pid, port, version, instance id...).
pub const STATE: &str = "state.json";
/// Written by Rust right after spawn: pid + process start time (the PID-reuse guard).
pub const OWNER: &str = "owner.json";
/// The bearer token (0600).
pub const TOKEN: &str = "token";
/// The daemon's stdout and stderr.
pub const LOG: &str = "daemon.log";
/// Serializes start and stop between processes (see [`crate::lock`]).
pub const LOCK: &str = "lifecycle.lock";
