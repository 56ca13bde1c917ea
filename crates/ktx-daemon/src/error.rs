//! The error type of this crate: every variant names the path or URL and the operation, and
//! its `Display` ends with what the user can do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The `op` of a [`DaemonError::Transport`] raised while connecting.
pub(crate) const CONNECT_OP: &str = "connecting to";

/// Result alias used throughout `ktx-daemon`.
pub type Result<T, E = DaemonError> = std::result::Result<T, E>;

/// Everything that can go wrong while starting, stopping or talking to the daemon.
#[derive(Debug)]
pub enum DaemonError {
    /// A filesystem operation on one of the daemon's files failed.
    Io {
        /// What we were doing, e.g. "writing the token file".
        op: String,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Another ktx process held the lifecycle lock for longer than the lock timeout.
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as recorded in the lock file (pid and purpose), when known.
        holder: Option<String>,
        /// How long we waited.
        waited: Duration,
    },
    /// The daemon could not be spawned, exited early or never answered `/health` in time.
    StartFailed {
        /// What happened.
        reason: String,
        /// Path of `daemon.log`.
        log_path: PathBuf,
        /// The last lines the daemon wrote to `daemon.log` during this start.
        log_tail: String,
    },
    /// The loopback HTTP exchange with the daemon failed (connect, write, read, timeout).
    Transport {
        /// `http://127.0.0.1:<port><path>`.
        url: String,
        /// What we were doing, e.g. "reading the response".
        op: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The daemon answered something we did not expect (status code, bad JSON, wrong identity).
    Protocol {
        /// `http://127.0.0.1:<port><path>`.
        url: String,
        /// The HTTP status of the answer, when it was not 200.
        status: Option<u16>,
        /// What was wrong.
        message: String,
    },
    /// A daemon process that is ours survived shutdown, SIGTERM and SIGKILL.
    StopFailed {
        /// Its pid.
        pid: u32,
        /// What was tried.
        message: String,
    },
    /// The daemon directory (or a directory above it) could be written by another user, or
    /// is a symlink ktx did not create: nothing in it is read, written or run.
    Untrusted(ktx_base::Untrusted),
    /// The operation is not available on this platform.
    Unsupported(String),
}

impl DaemonError {
    pub(crate) fn io(op: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        DaemonError::Io {
            op: op.into(),
            path: path.into(),
            source,
        }
    }

    /// True when the daemon could not even be connected to, so the request was certainly not
    /// processed: retrying it elsewhere (one-shot) cannot run it twice.
    pub fn is_connect_failure(&self) -> bool {
        matches!(self, DaemonError::Transport { op, .. } if op == CONNECT_OP)
    }

    /// True when the daemon certainly did not run the request: it could not be connected to,
    /// or it refused the request before dispatching it (any HTTP 4xx: body too large, token
    /// or Host refused, e.g. because another ktx replaced the daemon meanwhile). Running the
    /// request elsewhere (one-shot) then cannot run it twice.
    pub fn request_not_processed(&self) -> bool {
        self.is_connect_failure()
            || matches!(self, DaemonError::Protocol { status: Some(s), .. } if (400..500).contains(s))
    }

    /// What went wrong, without the advice of [`Display`](fmt::Display): for embedding in
    /// another message that gives its own advice (e.g. a status detail).
    pub(crate) fn summary(&self) -> String {
        match self {
            DaemonError::Transport { url, op, source } => format!("{op} {url} failed: {source}"),
            DaemonError::Protocol { url, message, .. } => {
                format!("unexpected answer from {url}: {message}")
            }
            other => other.to_string(),
        }
    }

    /// True for failures of the loopback exchange itself (the daemon went away, timed out or
    /// answered garbage): a caller may fall back to a one-shot call.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            DaemonError::Transport { .. } | DaemonError::Protocol { .. }
        )
    }
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Io { op, path, source } => write!(
                f,
                "{op} failed for {}: {source}. Check that the directory exists and is writable by you",
                path.display()
            ),
            DaemonError::LockTimeout {
                path,
                holder,
                waited,
            } => {
                write!(
                    f,
                    "timed out after {:.0} s waiting for the daemon lifecycle lock {}",
                    waited.as_secs_f64(),
                    path.display()
                )?;
                if let Some(holder) = holder {
                    write!(f, " (held by {holder})")?;
                }
                write!(
                    f,
                    ". Wait for the other ktx process to finish, or stop it and run `ktx runtime stop`"
                )
            }
            DaemonError::StartFailed {
                reason,
                log_path,
                log_tail,
            } => {
                write!(
                    f,
                    "the KTX Python daemon failed to start: {reason}. Log: {}",
                    log_path.display()
                )?;
                if !log_tail.trim().is_empty() {
                    write!(f, "\nLast lines of the log:\n{}", log_tail.trim_end())?;
                }
                write!(
                    f,
                    "\nFix: run `ktx runtime doctor`, then `ktx runtime start` again"
                )
            }
            DaemonError::Transport { url, op, source } => write!(
                f,
                "{op} {url} failed: {source}. The daemon may have exited; run `ktx runtime status`"
            ),
            DaemonError::Protocol { url, message, .. } => write!(
                f,
                "unexpected answer from the daemon at {url}: {message}. Run `ktx runtime start --force` to restart it"
            ),
            DaemonError::StopFailed { pid, message } => write!(
                f,
                "could not stop the KTX Python daemon (pid {pid}): {message}. Kill it by hand (`kill -9 {pid}`)"
            ),
            DaemonError::Untrusted(u) => write!(f, "{u}\n  hint: {}", u.fix()),
            DaemonError::Unsupported(what) => write!(f, "{what} is not supported on this platform"),
        }
    }
}

impl std::error::Error for DaemonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DaemonError::Io { source, .. } | DaemonError::Transport { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(status: Option<u16>) -> DaemonError {
        DaemonError::Protocol {
            url: "http://127.0.0.1:1/v1/call".into(),
            status,
            message: "x".into(),
        }
    }

    #[test]
    fn only_refusals_before_dispatch_count_as_not_processed() {
        for status in [400, 401, 403, 404, 411, 413] {
            assert!(protocol(Some(status)).request_not_processed(), "{status}");
        }
        assert!(!protocol(Some(500)).request_not_processed());
        assert!(!protocol(None).request_not_processed());
        let connect = DaemonError::Transport {
            url: "u".into(),
            op: CONNECT_OP.into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert!(connect.request_not_processed());
        let read = DaemonError::Transport {
            url: "u".into(),
            op: "reading the response".into(),
            source: io::Error::from(io::ErrorKind::UnexpectedEof),
        };
        assert!(!read.request_not_processed());
    }
}
