//! A full disk (ENOSPC) or an exhausted quota (EDQUOT): recognising it in our own I/O errors and
//! in installer output, measuring the free space, and the error that says so.
//!
//! A full disk is never a reason to try another installer (the uv bootstrap or the pip
//! fallback): it fails the same way and leaves more behind. Every step maps it to
//! [`ErrorKind::DiskFull`], whose message names the path and the free space there.

use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, RuntimeError};

/// Free space below which an install cannot succeed: a core venv takes about 10 MB, uv's copy
/// of the packages and the bytecode more; `doctor` FAILs below it.
pub const MIN_FREE_BYTES: u64 = 100_000_000;

/// Free space below which `doctor` WARNs: enough for a core install, not for local-embeddings
/// (about 4.7 GB installed).
pub const WARN_FREE_BYTES: u64 = 1_000_000_000;

/// The texts installers (uv, pip, Python) print for ENOSPC and EDQUOT, lowercase.
const DISK_FULL_NEEDLES: &[&str] = &[
    "no space left on device",
    "disk quota exceeded",
    "not enough space on the disk",
];

/// Whether `err` is "no space left on device" or "disk quota exceeded".
pub fn is_disk_full(err: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    if matches!(err.kind(), K::StorageFull | K::QuotaExceeded) {
        return true;
    }
    match err.raw_os_error() {
        #[cfg(unix)]
        Some(code) => code == libc::ENOSPC || code == libc::EDQUOT,
        // ERROR_HANDLE_DISK_FULL, ERROR_DISK_FULL
        #[cfg(windows)]
        Some(code) => code == 39 || code == 112,
        #[cfg(not(any(unix, windows)))]
        Some(_) => false,
        None => false,
    }
}

/// Whether an installer's output reports a full disk or an exhausted quota (`No space left on
/// device`, `Disk quota exceeded`, `(os error 28)`, `[Errno 28]`...).
pub fn mentions_disk_full(output: &str) -> bool {
    let o = output.to_lowercase();
    if DISK_FULL_NEEDLES.iter().any(|n| o.contains(n)) {
        return true;
    }
    #[cfg(unix)]
    let codes = [libc::ENOSPC, libc::EDQUOT];
    #[cfg(not(unix))]
    let codes = [28, 122];
    codes
        .iter()
        .any(|c| o.contains(&format!("os error {c})")) || o.contains(&format!("errno {c}]")))
}

/// The nearest existing ancestor of `path` (itself included): where to measure the free space
/// of a path that may not exist yet.
fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    let mut p = path.to_path_buf();
    loop {
        if p.exists() {
            return Some(p);
        }
        if !p.pop() {
            return None;
        }
    }
}

/// The bytes an unprivileged user can still write on the filesystem holding `path` (or its
/// nearest existing ancestor), if it can be measured.
pub fn free_space(path: &Path) -> Option<u64> {
    let at = existing_ancestor(path)?;
    fs4::available_space(at).ok()
}

/// `1.5 GB`, `12.0 MB`, `512 B` (decimal units, as `df -H` and the prune output print them).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// "12.0 MB free on the filesystem of PATH" (or "the free space of PATH cannot be measured").
pub fn describe_free(path: &Path) -> String {
    match free_space(path) {
        Some(n) => format!(
            "{} free on the filesystem of {}",
            human_bytes(n),
            path.display()
        ),
        None => format!("the free space of {} cannot be measured", path.display()),
    }
}

/// The hint of every disk-full error.
pub fn hint() -> String {
    format!(
        "The disk is full. Free at least {} there, or set KTX_RUNTIME_ROOT to a directory on another disk; `ktx runtime prune --dry-run` lists old runtimes to remove.",
        human_bytes(MIN_FREE_BYTES)
    )
}

/// The error for a full disk met by `what` (an operation such as `write`, or an install step
/// such as `Installing packages into`) on `path`: says the disk is full, names `path`, `cause`
/// (the OS message or the installer's line) and the free space there now.
pub fn error(what: &str, path: &Path, cause: &str) -> RuntimeError {
    RuntimeError::new(
        ErrorKind::DiskFull,
        format!(
            "the disk is full: {what} {} failed: {}; {}",
            path.display(),
            cause.trim(),
            describe_free(path)
        ),
    )
    .with_hint(hint())
}

/// The first line of `output` that reports the full disk (for the message), else its last
/// non-empty line.
pub fn disk_full_line(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .find(|l| mentions_disk_full(l))
        .or(lines.last())
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_enospc_and_edquot_everywhere() {
        #[cfg(unix)]
        for code in [libc::ENOSPC, libc::EDQUOT] {
            assert!(is_disk_full(&std::io::Error::from_raw_os_error(code)));
        }
        #[cfg(unix)]
        assert!(!is_disk_full(&std::io::Error::from_raw_os_error(
            libc::EACCES
        )));
        assert!(!is_disk_full(&std::io::Error::other("boom")));
        for text in [
            "error: Failed to install: sqlglot\n  Caused by: failed to write to file `/x/y`: No space left on device (os error 28)",
            "OSError: [Errno 28] No space left on device: '/r/venvs/x/lib'",
            "ERROR: Could not install packages due to an OSError: [Errno 122] Disk quota exceeded",
            "write failed (os error 122)",
        ] {
            assert!(mentions_disk_full(text), "{text}");
        }
        for text in [
            "error: no matching distribution",
            "Downloading 28 MB",
            "os error 2)",
        ] {
            assert!(!mentions_disk_full(text), "{text}");
        }
        assert_eq!(
            disk_full_line("Resolved 3 packages\nerror: boom: No space left on device (os error 28)\n  hint: x"),
            "error: boom: No space left on device (os error 28)"
        );
    }

    #[test]
    fn the_error_names_the_path_and_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not/yet");
        let e = error("write", &missing, "No space left on device");
        assert_eq!(e.kind, ErrorKind::DiskFull);
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "the disk is full: write {} failed: No space left on device; ",
                missing.display()
            )),
            "{text}"
        );
        assert!(text.contains(" free on the filesystem of "), "{text}");
        assert!(
            text.contains("hint: The disk is full. Free at least 100.0 MB"),
            "{text}"
        );
        assert!(free_space(&missing).is_some());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_000_000), "12.0 MB");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
    }
}
