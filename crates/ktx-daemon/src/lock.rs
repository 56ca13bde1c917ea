//! `lifecycle.lock`: serializes start and stop across processes ([`ktx_base::lock`]).
//!
//! Try first; when busy, report who holds it (the holder records its pid and purpose in the
//! file), then poll until the timeout. The lock belongs to the open file description, so two
//! threads of one process that each open the file also exclude each other, and the lock dies
//! with its holder (no stale lock after a crash). The file is opened close-on-exec, so the
//! spawned daemon never inherits it.

use crate::error::{DaemonError, Result};
use ktx_base::lock::{FileLock, LockError};
use std::path::Path;
use std::time::Duration;

/// A held lifecycle lock; released on drop.
#[derive(Debug)]
pub(crate) struct LifecycleLock {
    _lock: FileLock,
}

impl LifecycleLock {
    /// Take the lock at `path`, waiting at most `timeout`. `on_wait` is called once, with the
    /// recorded holder, when the lock is busy.
    pub(crate) fn acquire(
        path: &Path,
        purpose: &str,
        timeout: Duration,
        on_wait: &mut dyn FnMut(Option<String>),
    ) -> Result<Self> {
        let lock = FileLock::acquire(path, purpose, timeout, |h| {
            on_wait(h.map(|h| h.record.clone()))
        })
        .map_err(|e| match e {
            LockError::Io { op, path, source } => {
                let op = if op == "lock" {
                    "locking"
                } else {
                    "opening the daemon lifecycle lock"
                };
                DaemonError::io(op, path, source)
            }
            LockError::Timeout {
                path,
                holder,
                waited,
            } => DaemonError::LockTimeout {
                path,
                holder: holder.map(|h| h.record),
                waited,
            },
        })?;
        Ok(LifecycleLock { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_waits_then_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lifecycle.lock");
        let held =
            LifecycleLock::acquire(&path, "test holder", Duration::from_secs(1), &mut |_| {})
                .unwrap();
        let mut seen = None;
        let err = LifecycleLock::acquire(&path, "second", Duration::from_millis(100), &mut |h| {
            seen = h
        })
        .unwrap_err();
        assert!(seen.unwrap().contains("test holder"));
        let text = err.to_string();
        assert!(text.contains("lifecycle lock"), "{text}");
        assert!(text.contains("test holder"), "{text}");
        drop(held);
        LifecycleLock::acquire(&path, "third", Duration::from_millis(100), &mut |_| {}).unwrap();
    }
}
