//! What a worker is started with ([`WorkerConfig`]) and what a call names ([`ScriptRef`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The per-call deadline callers use when the script and the call set none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
/// Calls one batch may hold (and callers a [`crate::SharedWorker`] may queue).
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;
/// The worker's address-space limit (RLIMIT_AS) unless configured: 1 GiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;
/// Bytes of a call's stdout kept (the rest is dropped and `stdout_truncated` set): 1 MiB.
pub const DEFAULT_STDOUT_LIMIT: usize = 1 << 20;

/// How to start and supervise the worker process.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The managed runtime's interpreter; it must import `ktx_worker` (the wheel's module).
    pub python: PathBuf,
    /// Extra environment. The worker starts from a cleared environment holding only `PATH`,
    /// `HOME`, `TMPDIR` (and on Windows `SYSTEMROOT`, `WINDIR`, `TEMP`, `TMP`) from ours.
    pub env: Vec<(OsString, OsString)>,
    /// Most calls one batch (or a [`crate::SharedWorker`]'s queue) holds; the excess is
    /// [`crate::CallErrorKind::QueueFull`]. Default 64.
    pub queue_capacity: usize,
    /// Restarts allowed within `restart_window`; past it calls fail with `Crashed` ("restart
    /// budget exhausted") until the oldest restart leaves the window. Default 10.
    pub restart_budget: u32,
    /// See `restart_budget`. Default 60 s.
    pub restart_window: Duration,
    /// Address-space limit set in the worker (`None`: none). Default [`DEFAULT_MEMORY_LIMIT`].
    /// Linux enforces RLIMIT_AS; macOS does not enforce it (a documented gap), Windows has none.
    pub memory_limit: Option<u64>,
    /// Bytes of stdout kept per call. Default [`DEFAULT_STDOUT_LIMIT`].
    pub stdout_limit: usize,
    /// The worker's working directory (`None`: ours).
    pub cwd: Option<PathBuf>,
    /// How long a new worker may take to say it is ready. Default 20 s (a first start after an
    /// install compiles bytecode).
    pub start_timeout: Duration,
}

impl WorkerConfig {
    /// The defaults with `python` as the interpreter.
    pub fn new(python: impl Into<PathBuf>) -> Self {
        WorkerConfig {
            python: python.into(),
            ..Self::default()
        }
    }
}

impl Default for WorkerConfig {
    /// Every default; `python` is empty and must be set by the caller.
    fn default() -> Self {
        WorkerConfig {
            python: PathBuf::new(),
            env: Vec::new(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            restart_budget: 10,
            restart_window: Duration::from_secs(60),
            memory_limit: Some(DEFAULT_MEMORY_LIMIT),
            stdout_limit: DEFAULT_STDOUT_LIMIT,
            cwd: None,
            start_timeout: Duration::from_secs(20),
        }
    }
}

/// A script to call: its stable id, its file, the hash of the content the caller indexed (the
/// worker's cache key: a new hash reloads the file) and the name of its entrypoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScriptRef {
    /// The script's stable id (the stats key).
    pub id: String,
    /// The script file (absolute, or relative to the worker's cwd).
    pub path: PathBuf,
    /// The content hash the caller indexed; the module is loaded once per hash.
    pub content_hash: String,
    /// The function called as `entrypoint(context)`.
    pub entrypoint: String,
}
