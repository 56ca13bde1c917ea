//! Cross-process file locks that say whom they wait for.
//!
//! The holder writes its pid into the lock file after locking; a process that finds the lock
//! taken reads that pid to tell the user whom it is waiting for.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;

use crate::error::{ErrorKind, RuntimeError};

/// Default wait for the install lock: 10 minutes (override with `KTX_LOCK_TIMEOUT`, seconds).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// The install-lock timeout: `KTX_LOCK_TIMEOUT` seconds (may be fractional) or the default.
/// An empty value means unset; a value that is not a number of seconds is reported once on
/// stderr (naming the variable) and the default is used, rather than silently ignored.
pub fn lock_timeout_from_env() -> Duration {
    let Ok(raw) = std::env::var("KTX_LOCK_TIMEOUT") else {
        return DEFAULT_LOCK_TIMEOUT;
    };
    parse_lock_timeout(&raw).unwrap_or_else(|| {
        static WARNED: std::sync::Once = std::sync::Once::new();
        if !raw.trim().is_empty() {
            WARNED.call_once(|| eprintln!(
                "warning: KTX_LOCK_TIMEOUT={raw:?} is not a number of seconds; using the default of {}s",
                DEFAULT_LOCK_TIMEOUT.as_secs()
            ));
        }
        DEFAULT_LOCK_TIMEOUT
    })
}

/// Seconds as a duration: finite, non-negative and small enough for [`Duration`].
fn parse_lock_timeout(raw: &str) -> Option<Duration> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// A held exclusive lock; released (and its pid cleared) on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

/// Opens (creating) the lock file, and its directory with mode 0700 if missing (ktx's own
/// callers create and verify it first, see [`crate::trust`]). A symlink at the lock's name is
/// refused (`O_NOFOLLOW`): the holder truncates the file and writes its pid into it.
fn open(path: &Path) -> Result<File, RuntimeError> {
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
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    ktx_base::no_follow(&mut opts)
        .open(path)
        .map_err(|e| RuntimeError::io("open lock file", path, &e))
}

fn claim(mut file: File, path: &Path) -> LockGuard {
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    let _ = writeln!(file, "{}", std::process::id());
    let _ = file.flush();
    LockGuard {
        file,
        path: path.to_path_buf(),
    }
}

/// Takes the lock if it is free right now; `Ok(None)` when another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<LockGuard>, RuntimeError> {
    let file = open(path)?;
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(Some(claim(file, path))),
        Ok(false) => Ok(None),
        Err(e) => Err(RuntimeError::io("lock", path, &e)),
    }
}

/// The pid written by the current holder of the lock at `path`, if readable.
pub fn holder_pid(path: &Path) -> Option<u32> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// Takes the lock, waiting up to `timeout`. If it is taken, `on_wait(holder pid)` is called
/// once before waiting. On timeout the error names the holder and how to proceed.
pub fn lock_with_timeout(
    path: &Path,
    timeout: Duration,
    on_wait: impl FnOnce(Option<u32>),
) -> Result<LockGuard, RuntimeError> {
    if let Some(guard) = try_lock(path)? {
        return Ok(guard);
    }
    let mut holder = holder_pid(path);
    on_wait(holder);
    let file = open(path)?;
    let deadline = Instant::now() + timeout;
    let mut sleep = Duration::from_millis(10);
    loop {
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => return Ok(claim(file, path)),
            Ok(false) => {}
            Err(e) => return Err(RuntimeError::io("lock", path, &e)),
        }
        if let Some(pid) = holder_pid(path) {
            holder = Some(pid);
        }
        let now = Instant::now();
        if now >= deadline {
            let who = holder
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "another process".into());
            return Err(RuntimeError::new(
                ErrorKind::LockTimeout,
                format!(
                    "timed out after {:.0?} waiting for {who} to release {}",
                    timeout,
                    path.display()
                ),
            )
            .with_hint(format!(
                "Another ktx process ({who}) is still installing the runtime. Wait for it to finish, or stop it, then retry. Set KTX_LOCK_TIMEOUT=<seconds> to wait longer."
            )));
        }
        std::thread::sleep(sleep.min(deadline - now));
        sleep = (sleep * 2).min(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeout_values() {
        assert_eq!(parse_lock_timeout("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_lock_timeout(" 0 "), Some(Duration::ZERO));
        for bad in ["soon", "", "-1", "nan", "inf", "1e300"] {
            assert_eq!(parse_lock_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn second_lock_waits_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("install.lock");
        let g = try_lock(&p).unwrap().expect("free");
        assert_eq!(holder_pid(&p), Some(std::process::id()));
        // fs4 locks are per open file description, so a second open in-process conflicts too.
        let mut waited = None;
        let err = lock_with_timeout(&p, Duration::from_millis(100), |pid| waited = Some(pid))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::LockTimeout);
        assert_eq!(waited, Some(Some(std::process::id())));
        drop(g);
        assert!(try_lock(&p).unwrap().is_some());
    }
}
