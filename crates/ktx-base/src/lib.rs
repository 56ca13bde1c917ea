//! What every ktx crate shares, written once (in the spirit of uv's `uv-fs`).
//!
//! A leaf crate: it depends on no other ktx crate, so the runtime, the daemon, the runner, the
//! binary and xtask can all use it. Each module owns one mechanism:
//!
//! - [`trust`]: whether a directory under the runtime root may be trusted (owner, mode,
//!   symlinks), and directory creation with explicit modes.
//! - [`fs`]: the one atomic write (random `O_EXCL` temporary name, fsync of file and
//!   directory, rename) and removal that never follows a symlink.
//! - [`lock`]: the one cross-process file lock: a holder record, a bounded wait that says whom
//!   it waits for, `KTX_LOCK_TIMEOUT`.
//! - [`process`]: process identity (pid + start time), the only place that decides "is this
//!   still the same process", and signals that never reach a recycled pid.
//! - [`shell`]: commands in hints, in the user's shell syntax (sh; PowerShell and cmd).
//! - [`time`]: RFC 3339 and compact UTC stamps (the civil-date algorithm, once).
//! - [`duration`]: the one parser for "a number of seconds" (timeouts from the environment).
//! - [`abi`]: the ABI version ktx speaks with its Python runtime.
//! - [`daemon_files`]: the names of the daemon directory and the files in it.
//! - [`env`]: the names of the `KTX_*` environment variables.
//!
//! Platform-specific code (locks, process inspection, signals) sits behind one API per module,
//! with cfg-gated implementations in one place; where a platform has none yet the API says so
//! (see [`process::SUPPORTED`]).

pub mod abi;
pub mod daemon_files;
pub mod duration;
pub mod env;
pub mod fs;
pub mod lock;
pub mod process;
pub mod shell;
pub mod time;
pub mod trust;

pub use fs::{no_follow, open_no_follow, remove_no_follow, sync_dir, write_atomic};
pub use trust::{current_uid, describe_uid, user_name, Problem, TrustedBase, Untrusted};
