//! The runtime's locks (`install.lock`, the uv bootstrap lock): [`ktx_base::lock`] with the
//! runtime's errors and messages.
//!
//! The holder records its pid in the lock file after locking; a process that finds the lock
//! taken reads that pid to tell the user whom it is waiting for.

use std::path::Path;
use std::time::Duration;

use ktx_base::lock::{FileLock, Holder, LockError};

use crate::error::{ErrorKind, RuntimeError};

/// A held exclusive lock; released (and its holder record cleared) on drop.
pub type LockGuard = FileLock;

/// Default wait for the install lock: 10 minutes (override with `KTX_LOCK_TIMEOUT`, seconds).
pub const DEFAULT_LOCK_TIMEOUT: Duration = ktx_base::lock::DEFAULT_TIMEOUT;

/// What the runtime's lock records say the holder is doing.
const PURPOSE: &str = "ktx runtime";

/// The install-lock timeout: `KTX_LOCK_TIMEOUT` seconds (may be fractional) or the default.
/// An empty value means unset; a value that is not a number of seconds is reported once on
/// stderr (naming the variable) and the default is used, rather than silently ignored.
pub fn lock_timeout_from_env() -> Duration {
    ktx_base::lock::timeout_from_env()
}

/// Creates the lock's directory with mode 0700 if missing (ktx's own callers create and
/// verify it first, see [`crate::trust`]).
fn ensure_parent(path: &Path) -> Result<(), RuntimeError> {
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(crate::trust::DIR_MODE);
        }
        b.create(dir)
            .map_err(|e| RuntimeError::io("create directory", dir, &e))?;
    }
    Ok(())
}

fn lock_error(e: LockError, timeout: Duration) -> RuntimeError {
    match e {
        LockError::Io { op, path, source } => RuntimeError::io(op, &path, &source),
        LockError::Timeout { path, holder, .. } => {
            let who = Holder::who(holder.as_ref());
            RuntimeError::new(
                ErrorKind::LockTimeout,
                format!(
                    "timed out after {:.0?} waiting for {who} to release {}",
                    timeout,
                    path.display()
                ),
            )
            .with_hint(format!(
                "Another ktx process ({who}) is still installing the runtime. Wait for it to finish, or stop it, then retry. Set KTX_LOCK_TIMEOUT=<seconds> to wait longer."
            ))
        }
    }
}

/// Takes the lock if it is free right now; `Ok(None)` when another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<LockGuard>, RuntimeError> {
    ensure_parent(path)?;
    FileLock::try_acquire(path, PURPOSE).map_err(|e| lock_error(e, Duration::ZERO))
}

/// The pid recorded by the current holder of the lock at `path`, if readable.
pub fn holder_pid(path: &Path) -> Option<u32> {
    ktx_base::lock::holder(path).and_then(|h| h.pid)
}

/// Whether another process holds the lock at `path` (a missing file is not held; nothing is
/// created).
pub fn held_by_other(path: &Path) -> bool {
    ktx_base::lock::is_held_by_other(path)
}

/// Takes the lock, waiting up to `timeout`. If it is taken, `on_wait(holder pid)` is called
/// once before waiting. On timeout the error names the holder and how to proceed.
pub fn lock_with_timeout(
    path: &Path,
    timeout: Duration,
    on_wait: impl FnOnce(Option<u32>),
) -> Result<LockGuard, RuntimeError> {
    ensure_parent(path)?;
    FileLock::acquire(path, PURPOSE, timeout, |h| on_wait(h.and_then(|h| h.pid)))
        .map_err(|e| lock_error(e, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_waits_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("install.lock");
        let g = try_lock(&p).unwrap().expect("free");
        assert_eq!(holder_pid(&p), Some(std::process::id()));
        // Locks are per open file description, so a second open in-process conflicts too.
        let mut waited = None;
        let err = lock_with_timeout(&p, Duration::from_millis(100), |pid| waited = Some(pid))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::LockTimeout);
        assert!(
            err.message
                .contains(&format!("waiting for pid {}", std::process::id())),
            "{}",
            err.message
        );
        assert_eq!(waited, Some(Some(std::process::id())));
        drop(g);
        assert!(try_lock(&p).unwrap().is_some());
    }
}
