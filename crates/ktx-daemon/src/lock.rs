//! `lifecycle.lock`: an exclusive `flock` that serializes start and stop across processes.
//!
//! Try first; when busy, report who holds it (the holder writes its pid and purpose into the
//! file), then poll until the timeout. `flock` locks belong to the open file description, so
//! two threads of one process that each open the file also exclude each other, and the lock
//! dies with its holder (no stale lock after a crash). The file is opened close-on-exec, so the
//! spawned daemon never inherits it.

use crate::error::{DaemonError, Result};
use crate::files::now_rfc3339;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lifecycle lock; released on drop.
#[derive(Debug)]
pub(crate) struct LifecycleLock {
    file: File,
    _path: PathBuf,
}

#[cfg(unix)]
fn try_flock(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a valid fd we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) || err.raw_os_error() == Some(libc::EINTR) {
        Ok(false)
    } else {
        Err(err)
    }
}

#[cfg(not(unix))]
fn try_flock(_file: &File) -> std::io::Result<bool> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "file locks are only implemented on Unix",
    ))
}

fn read_holder(file: &mut File) -> Option<String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(512).read_to_string(&mut text).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
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
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        // A symlink at the lock's name is refused: the holder writes into the file.
        let mut file = ktx_base::no_follow(&mut options)
            .open(path)
            .map_err(|e| DaemonError::io("opening the daemon lifecycle lock", path, e))?;
        let began = Instant::now();
        let mut told = false;
        let mut holder = None;
        loop {
            match try_flock(&file) {
                Ok(true) => break,
                Ok(false) => {
                    if !told {
                        holder = read_holder(&mut file);
                        on_wait(holder.clone());
                        told = true;
                    }
                    if began.elapsed() >= timeout {
                        return Err(DaemonError::LockTimeout {
                            path: path.to_path_buf(),
                            holder: read_holder(&mut file).or(holder),
                            waited: began.elapsed(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => return Err(DaemonError::io("locking", path, e)),
            }
        }
        // Record who we are for the next waiter (best effort).
        let _ = file.set_len(0).and_then(|()| {
            file.seek(SeekFrom::Start(0))?;
            writeln!(
                file,
                "pid {} ({purpose}) since {}",
                std::process::id(),
                now_rfc3339()
            )
        });
        Ok(LifecycleLock {
            file,
            _path: path.to_path_buf(),
        })
    }
}

impl Drop for LifecycleLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: unlocking a valid fd we own; closing would release it anyway.
            unsafe {
                libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
            }
        }
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
