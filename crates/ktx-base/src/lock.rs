//! The one cross-process file lock, and the record of who holds it.
//!
//! An exclusive advisory lock on a file (`flock` on Unix, `LockFileEx` on Windows, through
//! `fs4`). Locks belong to the open file description: two threads of one process that each
//! open the file exclude each other too, and a lock dies with its holder (no stale lock after a
//! crash). The file is opened close-on-exec, so a spawned child never inherits it.
//!
//! The holder writes a record into the file once it holds the lock
//! (`pid 1234 (install) since 2026-11-21T06:07:07Z`); a process that finds the lock taken reads
//! it to say whom it is waiting for, waits with a timeout, and on timeout names the holder.
//! The record is cleared when the lock is released.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;

use crate::duration::{self, FromEnv, Seconds};

/// Default wait for another process's install lock: 10 minutes (`KTX_LOCK_TIMEOUT` overrides).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The install-lock timeout: `KTX_LOCK_TIMEOUT` seconds (may be fractional, 0 means "try
/// once") or [`DEFAULT_TIMEOUT`]. A blank value means unset; a value that is not a number of
/// seconds is reported once on stderr (naming the variable) and the default is used, rather
/// than silently ignored.
pub fn timeout_from_env() -> Duration {
    let name = crate::env::LOCK_TIMEOUT;
    match duration::from_env(name, Seconds::NON_NEGATIVE) {
        FromEnv::Unset => DEFAULT_TIMEOUT,
        FromEnv::Valid(d) => d,
        FromEnv::Invalid(raw) => {
            duration::warn_once(name, || {
                format!(
                    "warning: {name}={raw:?} is not a number of seconds; using the default of {}s",
                    DEFAULT_TIMEOUT.as_secs()
                )
            });
            DEFAULT_TIMEOUT
        }
    }
}

/// Who holds a lock, as its holder recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's pid, when the record names one.
    pub pid: Option<u32>,
    /// The record as written (`pid 1234 (install) since ...`), at most 512 bytes.
    pub record: String,
}

impl Holder {
    /// Parses a record: `pid N ...`, or a bare pid (what older ktx versions wrote).
    pub fn parse(text: &str) -> Option<Holder> {
        let record = text.trim();
        if record.is_empty() {
            return None;
        }
        let digits = record.strip_prefix("pid ").unwrap_or(record);
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        Some(Holder {
            pid: digits[..end].parse().ok(),
            record: record.to_string(),
        })
    }

    /// `pid N`, or `another process` when the record names no pid.
    pub fn who(holder: Option<&Holder>) -> String {
        match holder.and_then(|h| h.pid) {
            Some(pid) => format!("pid {pid}"),
            None => "another process".into(),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.record)
    }
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Opening or locking the file failed.
    Io {
        /// What was being done (`open lock file`, `lock`).
        op: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another process held it for the whole timeout.
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// The last holder record read, when there was one.
        holder: Option<Holder>,
        /// How long we waited.
        waited: Duration,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Io { op, path, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            LockError::Timeout {
                path,
                holder,
                waited,
            } => write!(
                f,
                "timed out after {:.0?} waiting for {} to release {}",
                waited,
                Holder::who(holder.as_ref()),
                path.display()
            ),
        }
    }
}

impl std::error::Error for LockError {}

/// A held exclusive lock; released (and its holder record cleared) on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

/// Opens (creating, owner-only) the lock file. A symlink at the lock's name is refused
/// (`O_NOFOLLOW`): the holder truncates the file and writes its record into it.
fn open(path: &Path) -> Result<File, LockError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    crate::fs::open_no_follow(&mut opts, path).map_err(|source| LockError::Io {
        op: "open lock file",
        path: path.to_path_buf(),
        source,
    })
}

/// Locks `file` if it is free right now.
fn try_exclusive(file: &File, path: &Path) -> Result<bool, LockError> {
    match FileExt::try_lock_exclusive(file) {
        Ok(locked) => Ok(locked),
        // A signal interrupting the attempt is not a failure: the next attempt decides.
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(source) => Err(LockError::Io {
            op: "lock",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The record of the current holder of the lock at `path`, if any and readable.
pub fn holder(path: &Path) -> Option<Holder> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    let file = crate::fs::open_no_follow(&mut opts, path).ok()?;
    let mut text = String::new();
    file.take(512).read_to_string(&mut text).ok()?;
    Holder::parse(&text)
}

/// Whether another process holds the lock at `path` right now. A missing file is not held,
/// and nothing is created: a probe (prune) must not need write access.
pub fn is_held_by_other(path: &Path) -> bool {
    // Read-only: flock works on any descriptor.
    let Ok(file) = File::open(path) else {
        return false;
    };
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => {
            let _ = FileExt::unlock(&file);
            false
        }
        Ok(false) => true,
        Err(_) => false,
    }
}

impl FileLock {
    /// Takes the lock at `path` if it is free right now (`Ok(None)`: another process holds
    /// it), recording this process and `purpose` as the holder.
    pub fn try_acquire(path: &Path, purpose: &str) -> Result<Option<FileLock>, LockError> {
        let file = open(path)?;
        if try_exclusive(&file, path)? {
            Ok(Some(FileLock::claim(file, path, purpose)))
        } else {
            Ok(None)
        }
    }

    /// Takes the lock at `path`, waiting up to `timeout`. When it is taken, `on_wait` is
    /// called once, with the holder's record, before waiting. On timeout the error names the
    /// holder.
    pub fn acquire(
        path: &Path,
        purpose: &str,
        timeout: Duration,
        on_wait: impl FnOnce(Option<&Holder>),
    ) -> Result<FileLock, LockError> {
        let file = open(path)?;
        if try_exclusive(&file, path)? {
            return Ok(FileLock::claim(file, path, purpose));
        }
        let began = Instant::now();
        let mut last = holder(path);
        on_wait(last.as_ref());
        let deadline = began + timeout;
        let mut sleep = Duration::from_millis(10);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(LockError::Timeout {
                    path: path.to_path_buf(),
                    holder: holder(path).or(last),
                    waited: began.elapsed(),
                });
            }
            std::thread::sleep(sleep.min(deadline - now));
            sleep = (sleep * 2).min(Duration::from_millis(200));
            if try_exclusive(&file, path)? {
                return Ok(FileLock::claim(file, path, purpose));
            }
            if let Some(h) = holder(path) {
                last = Some(h);
            }
        }
    }

    /// Records who holds the lock for the next waiter (best effort).
    fn claim(mut file: File, path: &Path, purpose: &str) -> FileLock {
        let _ = file.set_len(0).and_then(|()| {
            file.seek(SeekFrom::Start(0))?;
            writeln!(
                file,
                "pid {} ({purpose}) since {}",
                std::process::id(),
                crate::time::now_rfc3339()
            )?;
            file.flush()
        });
        FileLock {
            file,
            path: path.to_path_buf(),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_records() {
        let h = Holder::parse("pid 42 (install) since 2026-11-21T06:07:07Z\n").unwrap();
        assert_eq!(h.pid, Some(42));
        assert_eq!(h.to_string(), "pid 42 (install) since 2026-11-21T06:07:07Z");
        assert_eq!(Holder::parse("4242\n").unwrap().pid, Some(4242));
        assert_eq!(Holder::parse("someone").unwrap().pid, None);
        assert_eq!(Holder::parse(" \n"), None);
        assert_eq!(Holder::who(Some(&h)), "pid 42");
        assert_eq!(Holder::who(None), "another process");
    }

    /// Contention: the second taker is told who holds the lock, waits, and times out with a
    /// message naming the holder's pid; once released the lock is free again.
    #[test]
    fn contention_names_the_holder_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("install.lock");
        let held = FileLock::try_acquire(&p, "test holder")
            .unwrap()
            .expect("free");
        let recorded = holder(&p).unwrap();
        assert_eq!(recorded.pid, Some(std::process::id()));
        assert!(
            recorded.record.contains("(test holder) since "),
            "{recorded}"
        );
        assert!(is_held_by_other(&p));
        assert!(FileLock::try_acquire(&p, "second").unwrap().is_none());
        let mut seen = None;
        let began = Instant::now();
        let err = FileLock::acquire(&p, "second", Duration::from_millis(100), |h| {
            seen = h.cloned()
        })
        .unwrap_err();
        assert!(began.elapsed() >= Duration::from_millis(100));
        assert_eq!(seen.as_ref(), Some(&recorded));
        let LockError::Timeout { holder: h, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(h.as_ref(), Some(&recorded));
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "waiting for pid {} to release",
                std::process::id()
            )) && text.contains("install.lock"),
            "{text}"
        );
        drop(held);
        assert_eq!(holder(&p), None, "the record is cleared on release");
        assert!(!is_held_by_other(&p));
        let again = FileLock::acquire(&p, "third", Duration::ZERO, |_| panic!("free")).unwrap();
        assert_eq!(again.path(), p);
    }

    #[test]
    fn a_waiter_gets_the_lock_when_the_holder_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lifecycle.lock");
        let held = FileLock::try_acquire(&p, "start").unwrap().unwrap();
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || {
                FileLock::acquire(&p, "stop", Duration::from_secs(60), |_| {}).map(|_| ())
            })
        };
        while !is_held_by_other(&p) || holder(&p).is_none() {
            std::thread::yield_now();
        }
        drop(held);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn missing_lock_is_not_held_and_probe_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.lock");
        assert!(!is_held_by_other(&p));
        assert_eq!(holder(&p), None);
        assert!(!p.exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let p = dir.path().join("install.lock");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        let err = FileLock::try_acquire(&p, "x").unwrap_err();
        assert!(
            matches!(
                err,
                LockError::Io {
                    op: "open lock file",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    }

    #[test]
    fn bad_timeout_values_fall_back_to_the_default() {
        // The only test in this crate that sets KTX_LOCK_TIMEOUT.
        std::env::set_var(crate::env::LOCK_TIMEOUT, "soon");
        assert_eq!(timeout_from_env(), DEFAULT_TIMEOUT);
        std::env::set_var(crate::env::LOCK_TIMEOUT, "0.25");
        assert_eq!(timeout_from_env(), Duration::from_millis(250));
        std::env::remove_var(crate::env::LOCK_TIMEOUT);
        assert_eq!(timeout_from_env(), DEFAULT_TIMEOUT);
    }
}
