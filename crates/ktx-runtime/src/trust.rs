//! Whether the runtime root may be trusted, and the only way ktx creates directories in it.
//!
//! ktx runs programs from under the root (the receipt's venv `python`, a bootstrapped
//! `tools/uv/<version>/uv`) and reads the daemon's token there: a directory another local
//! user can write would let that user run code as whoever runs ktx. Before anything under the
//! root is read or executed, [`check_layout`] verifies (through `ktx-base`, which the daemon
//! crate uses too) that the root and its ancestors up to `/`, the version dir and its
//! `venvs/`, `daemon/`, `logs/` and `wheels/` are owned by the current user or root, are not
//! writable by others (a root-owned sticky dir such as `/tmp` is fine as an ancestor) and,
//! below the root, are not symlinks. [`check`] does the same for one more path (a venv,
//! `tools/uv/<version>`); [`ensure_dir`] creates directories with mode 0700 whatever the umask,
//! and verifies them. A refusal is a [`RuntimeError`] of kind [`ErrorKind::Untrusted`] naming
//! the directory, its owner and mode, and the fix.
//!
//! Ownership and modes are only checked on Unix (elsewhere these checks are a documented no-op
//! for now; the symlink rules still apply).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use ktx_base::{Problem, TrustedBase, Untrusted};

use crate::error::{ErrorKind, RuntimeError};
use crate::layout::{non_empty_env, Layout};

/// The mode of every directory ktx creates under the root (the root itself included).
pub const DIR_MODE: u32 = 0o700;

/// The stable identifier of the doctor check that reports an untrusted root.
pub const DOCTOR_CHECK_ID: &str = "runtime-root-permissions";

/// The subdirectories of a version dir that [`check_layout`] verifies when they exist.
const VERSION_SUBDIRS: [&str; 6] = [
    "venvs",
    "daemon",
    "logs",
    "wheels",
    "bundles",
    "sandbox-cache",
];

/// Verifies the root (and every ancestor up to `/`), this version's dir and its
/// `venvs/`, `daemon/`, `logs/`, `wheels/`, `bundles/` and `sandbox-cache/`; missing ones are fine. Reads only: a handful of `lstat` calls.
pub fn check_layout(layout: &Layout) -> Result<TrustedBase, Untrusted> {
    let base = TrustedBase::verify(layout.root())?;
    let version = Path::new(layout.version());
    base.check(version)?;
    for sub in VERSION_SUBDIRS {
        base.check(version.join(sub))?;
    }
    Ok(base)
}

/// [`check_layout`] plus `path` (a directory under the root, e.g. a venv's `bin`): every
/// existing component from the root down to it is verified. A `path` outside the root is
/// checked from its own parent (only its parent's ancestry can be judged).
pub fn check(layout: &Layout, path: &Path) -> Result<(), Untrusted> {
    let base = check_layout(layout)?;
    match path.strip_prefix(layout.root()) {
        Ok(rel) => base.check(rel),
        Err(_) => {
            let parent = path.parent().unwrap_or(path);
            let name = path.file_name().map(Path::new).unwrap_or(Path::new(""));
            TrustedBase::verify(parent)?.check(name)
        }
    }
}

/// Creates `path` (under the root) and its missing parents with [`DIR_MODE`], after verifying
/// the root, and verifies every component (never following a symlink below the root).
pub fn ensure_dir(layout: &Layout, path: &Path) -> Result<PathBuf, RuntimeError> {
    let base = check_layout(layout).map_err(|u| error(layout, u))?;
    let rel = path.strip_prefix(layout.root()).map_err(|_| {
        RuntimeError::new(
            ErrorKind::Io,
            format!(
                "{} is not under the runtime root {}",
                path.display(),
                layout.root().display()
            ),
        )
    })?;
    base.create_dirs(rel, DIR_MODE)
        .map_err(|u| error(layout, u))
}

/// Creates this version's directory (and the root) with [`DIR_MODE`] and writes the
/// [`MARKER_FILE`](crate::layout::MARKER_FILE) that tells `prune` the directory is ktx's.
pub fn ensure_version_dir(layout: &Layout) -> Result<PathBuf, RuntimeError> {
    let dir = ensure_dir(layout, &layout.version_dir())?;
    let marker = layout.marker_path();
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    match opts.open(&marker) {
        Ok(mut f) => {
            use std::io::Write;
            let _ = writeln!(
                f,
                "ktx runtime directory for ktx {}: `ktx runtime prune` may remove it",
                layout.version()
            );
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(RuntimeError::io("create", &marker, &e)),
    }
    Ok(dir)
}

/// An untrusted directory as a [`RuntimeError`] with its fix. A root that is a file gets one
/// plain sentence instead (the generic advice would send the user round in circles).
pub fn error(layout: &Layout, u: Untrusted) -> RuntimeError {
    if u.problem == Problem::NotADirectory && u.path == layout.root() {
        return RuntimeError::new(ErrorKind::Untrusted, root_is_a_file(layout.root()));
    }
    let fix = u.fix();
    RuntimeError::new(ErrorKind::Untrusted, u.to_string()).with_hint(fix)
}

/// The message for a runtime root that is a file.
fn root_is_a_file(root: &Path) -> String {
    if non_empty_env(ktx_base::env::RUNTIME_ROOT).is_some() {
        format!(
            "KTX_RUNTIME_ROOT {} is a file, not a directory: remove it or point KTX_RUNTIME_ROOT elsewhere",
            root.display()
        )
    } else {
        format!(
            "the runtime root {} is a file, not a directory: remove it or set KTX_RUNTIME_ROOT to a directory",
            root.display()
        )
    }
}

/// One line for a status detail or a doctor check: what is wrong, then the fix.
pub fn describe(layout: &Layout, u: Untrusted) -> String {
    let e = error(layout, u);
    match e.hints.first() {
        Some(fix) => format!("{}; {fix}", e.message),
        None => e.message,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn version_dirs_are_private_and_marked() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().join("a/root"), "1.2.3");
        let dir = ensure_version_dir(&layout).unwrap();
        assert_eq!(dir, layout.version_dir());
        for p in [layout.root(), &dir, &tmp.path().join("a")] {
            assert_eq!(mode(p), 0o700, "{}", p.display());
        }
        assert!(layout.marker_path().is_file());
        ensure_version_dir(&layout).unwrap();
        check_layout(&layout).unwrap();
    }

    #[test]
    fn a_writable_or_symlinked_subdir_is_refused_with_its_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().join("root"), "1.2.3");
        ensure_version_dir(&layout).unwrap();
        let victim = tmp.path().join("victim");
        fs::create_dir(&victim).unwrap();
        symlink(&victim, layout.venvs_dir()).unwrap();
        let u = check_layout(&layout).unwrap_err();
        assert_eq!(u.path, layout.venvs_dir());
        let e = ensure_dir(&layout, &layout.venvs_dir().join("x")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Untrusted);
        assert!(e.message.contains("symbolic link"), "{e}");
        assert!(!victim.join("x").exists());
        fs::remove_file(layout.venvs_dir()).unwrap();
        fs::set_permissions(layout.version_dir(), fs::Permissions::from_mode(0o777)).unwrap();
        let text = describe(&layout, check_layout(&layout).unwrap_err());
        assert!(text.contains("mode 0777"), "{text}");
        assert!(
            text.contains(&format!("chmod go-w {}", layout.version_dir().display())),
            "{text}"
        );
    }

    #[test]
    fn a_root_that_is_a_file_gets_one_plain_message() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("root");
        fs::write(&file, "").unwrap();
        let layout = Layout::new(&file, "1.2.3");
        let e = error(&layout, check_layout(&layout).unwrap_err());
        assert!(
            e.message
                .contains(&format!("{} is a file, not a directory", file.display())),
            "{e}"
        );
        assert!(e.hints.is_empty(), "{e}");
    }
}
