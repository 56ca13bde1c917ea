//! What calls and checks return: [`CallOutcome`] with its typed [`CallError`], [`CheckOutcome`],
//! and [`WorkerError`] for a worker that cannot start at all.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The result of one call, with the stdout the script printed (capped).
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    /// The entrypoint's return value (plain JSON), or why there is none.
    pub result: Result<serde_json::Value, CallError>,
    /// What the script printed during the call (empty when the worker died before replying).
    pub stdout: String,
    /// Whether `stdout` was cut at the configured limit.
    pub stdout_truncated: bool,
    /// Wall time of the call as seen from Rust (request written to reply read).
    pub latency: Duration,
}

/// Why a call has no result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    /// The kind, for callers to branch on.
    pub kind: CallErrorKind,
    /// One or a few lines for the user.
    pub message: String,
    /// JSON path of the value outside the ABI (`BadResult`), e.g. `$.rows[3].x`.
    pub path: Option<String>,
    /// `file:line:col` in the script when known (`file:line` on Python 3.10).
    pub location: Option<String>,
    /// The Python traceback, from the script's frames on.
    pub traceback: Option<String>,
}

impl CallError {
    /// An error with only a kind and a message.
    pub fn new(kind: CallErrorKind, message: impl Into<String>) -> Self {
        CallError {
            kind,
            message: message.into(),
            path: None,
            location: None,
            traceback: None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(path) = &self.path {
            write!(f, " (at {path})")?;
        }
        if let Some(location) = &self.location {
            write!(f, " [{location}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for CallError {}

/// The kinds of [`CallError`] (snake case on the wire and in JSON output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallErrorKind {
    /// The script raised an exception (including `MemoryError` and `SystemExit`).
    Raised,
    /// The deadline passed; the worker's process group was killed.
    Timeout,
    /// The result is not plain JSON (`path` says where), or the request itself is over the
    /// frame limit.
    BadResult,
    /// The worker died during the call (`os._exit`, a signal, a fatal error), could not be
    /// started, or its restart budget is exhausted.
    Crashed,
    /// The batch or the queue was full; the call was not run.
    QueueFull,
    /// The module has no callable of the entrypoint's name.
    MissingEntrypoint,
    /// The file could not be read or compiled, or its top-level code raised.
    LoadFailed,
}

impl CallErrorKind {
    /// The snake-case name (`bad_result`...).
    pub fn as_str(self) -> &'static str {
        match self {
            CallErrorKind::Raised => "raised",
            CallErrorKind::Timeout => "timeout",
            CallErrorKind::BadResult => "bad_result",
            CallErrorKind::Crashed => "crashed",
            CallErrorKind::QueueFull => "queue_full",
            CallErrorKind::MissingEntrypoint => "missing_entrypoint",
            CallErrorKind::LoadFailed => "load_failed",
        }
    }
}

impl fmt::Display for CallErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of [`crate::Worker::check`]: syntax and entrypoint, without running the script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcome {
    /// No errors.
    pub ok: bool,
    /// A top-level binding of the entrypoint's name exists.
    pub entrypoint_found: bool,
    /// Each problem, with its 1-based line and column when known.
    pub errors: Vec<CheckError>,
}

/// One problem found by a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckError {
    /// What is wrong.
    pub message: String,
    /// 1-based line, when the problem has one.
    pub line: Option<u32>,
    /// 1-based column, when the problem has one.
    pub col: Option<u32>,
}

/// The worker could not be started (a bad interpreter, a runtime without `ktx_worker`).
#[derive(Debug)]
pub enum WorkerError {
    /// The interpreter could not be executed.
    Spawn {
        /// The interpreter.
        python: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It started but did not say it is ready; `detail` holds the exit status and stderr's tail.
    Start {
        /// What happened, with the worker's stderr.
        detail: String,
    },
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::Spawn { python, source } => write!(
                f,
                "cannot start the script worker with {}: {source} (repair the runtime with `ktx runtime install --yes`)",
                python.display()
            ),
            WorkerError::Start { detail } => write!(
                f,
                "the script worker did not start: {detail} (repair the runtime with `ktx runtime install --yes`)"
            ),
        }
    }
}

impl std::error::Error for WorkerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkerError::Spawn { source, .. } => Some(source),
            WorkerError::Start { .. } => None,
        }
    }
}
