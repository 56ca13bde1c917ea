//! The error type of this crate: what happened, where, the log of the attempt and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of failure a [`RuntimeError`] is; lets callers pick an exit code or a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The bundled asset dir, its manifest or its wheel is missing or does not verify.
    Asset,
    /// No usable Python interpreter (and no uv to download one).
    NoPython,
    /// uv could not be used (a `KTX_UV` that does not run, a failed bootstrap we could not recover).
    Uv,
    /// Another process held the install lock for longer than the timeout.
    LockTimeout,
    /// A step of the install failed (venv creation, package install, import check).
    Install,
    /// A filesystem operation failed.
    Io,
    /// The runtime root could not be determined (no home directory, bad environment value).
    Config,
    /// Refused for want of the user's consent: a prune without `--yes`
    /// ([`crate::prune::PrunePlan::confirm`]), the large `local-embeddings` install under
    /// `--no-input` or declined at the prompt (`ktx_runner::local_embeddings`).
    Refused,
    /// The disk is full or the quota is exhausted (ENOSPC, EDQUOT) at some step: never a reason
    /// to fall back to another installer.
    DiskFull,
    /// A directory under (or above) the runtime root could be written by another user, or is
    /// a symlink ktx did not create: nothing in it is read or run (see [`crate::trust`]).
    Untrusted,
}

/// An actionable error: a message naming the path and the operation, the log of the attempt
/// (when there is one) and hints that say how to fix the common causes.
#[derive(Debug, Clone)]
pub struct RuntimeError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// One or more lines saying what happened.
    pub message: String,
    /// The kept log of the install attempt, if one was written.
    pub log: Option<PathBuf>,
    /// Suggestions, each a complete sentence, often with the exact command to run.
    pub hints: Vec<String>,
}

impl RuntimeError {
    /// A new error of `kind` with `message`, no log and no hints.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RuntimeError {
            kind,
            message: message.into(),
            log: None,
            hints: Vec::new(),
        }
    }

    /// A filesystem error: "failed to `op` `path`: `err`", with a hint for the causes a user
    /// can fix (read-only or foreign-owned root, a file where a directory belongs). A full disk
    /// or quota is a [`ErrorKind::DiskFull`] error that says so, with the free space there.
    pub fn io(op: &str, path: &Path, err: &std::io::Error) -> Self {
        if crate::disk::is_disk_full(err) {
            return crate::disk::error(op, path, &err.to_string());
        }
        let e = RuntimeError::new(
            ErrorKind::Io,
            format!("failed to {op} {}: {err}", path.display()),
        );
        match io_hint(err) {
            Some(hint) => e.with_hint(hint),
            None => e,
        }
    }

    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        if !self.hints.contains(&hint) {
            self.hints.push(hint);
        }
        self
    }

    /// Records the log of the attempt (kept; printed with the error).
    #[must_use]
    pub fn with_log(mut self, log: &Path) -> Self {
        self.log = Some(log.to_path_buf());
        self
    }
}

/// "Set KTX_RUNTIME_ROOT to a writable directory, e.g. `export KTX_RUNTIME_ROOT=$HOME/...`"
/// in the user's shell syntax.
pub(crate) fn writable_root_hint() -> String {
    format!(
        "Set KTX_RUNTIME_ROOT to a writable directory, e.g. {}.",
        ktx_base::shell::set_env_dir(
            ktx_base::env::RUNTIME_ROOT,
            ktx_base::shell::Base::Home,
            ".ktx-runtime"
        )
    )
}

/// What to do about a filesystem error, when the user can do something.
fn io_hint(err: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::ReadOnlyFilesystem | K::PermissionDenied => Some(format!(
            "The runtime root is not writable. {}",
            writable_root_hint()
        )),
        K::NotADirectory => Some(
            "A file stands where ktx needs a directory. Move that file away, or set KTX_RUNTIME_ROOT to another directory.".into(),
        ),
        _ => None,
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(log) = &self.log {
            write!(f, "\n  log: {}", log.display())?;
        }
        for hint in &self.hints {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuntimeError {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn io_errors_carry_a_fix_for_the_causes_users_can_fix() {
        let p = Path::new("/r/0.1.0/manifest.json");
        // EROFS, ENOTDIR (same numbers on Linux and macOS)
        for (errno, needle) in [
            (30, "The runtime root is not writable. Set KTX_RUNTIME_ROOT to a writable directory, e.g. `export KTX_RUNTIME_ROOT=$HOME/.ktx-runtime`"),
            (20, "A file stands where ktx needs a directory"),
        ] {
            let e = RuntimeError::io("write", p, &std::io::Error::from_raw_os_error(errno));
            let text = e.to_string();
            assert!(
                text.starts_with("failed to write /r/0.1.0/manifest.json: "),
                "{text}"
            );
            assert!(text.contains(needle), "errno {errno}: {text}");
        }
        // ENOSPC and EDQUOT: a disk-full error naming the path and the free space there
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let e = RuntimeError::io("write", p, &std::io::Error::from_raw_os_error(errno));
            assert_eq!(e.kind, ErrorKind::DiskFull);
            let text = e.to_string();
            assert!(
                text.starts_with("the disk is full: write /r/0.1.0/manifest.json failed: "),
                "{text}"
            );
            assert!(
                text.contains("KTX_RUNTIME_ROOT to a directory on another disk"),
                "{text}"
            );
        }
        let other = std::io::Error::other("boom");
        assert!(RuntimeError::io("read", p, &other).hints.is_empty());
    }
}
