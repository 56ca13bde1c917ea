//! The PATH the smoke gives the installed `ktx`: the caller's PATH with every `uv` hidden.
//!
//! A user who installs ktx from npm may have no uv at all; ktx then bootstraps a pinned uv
//! itself. The smoke proves that path on every machine (a developer's `.dev-venv/bin/uv` or a
//! pyenv shim must not make it pass, and CI must behave like a laptop): each PATH directory that
//! holds `uv`/`uvx` is replaced by a shadow directory of symlinks to its other entries, so
//! `python3`, `node` and `npm` from the same directory stay reachable.

use anyhow::{bail, Context, Result};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Executable names hidden from the isolated PATH.
const HIDDEN: [&str; 4] = ["uv", "uvx", "uv.exe", "uvx.exe"];

/// `path` (a PATH value) with every [`HIDDEN`] executable removed: directories holding one are
/// replaced by `<shadow_root>/<n>/` (created here) with symlinks to their other entries.
/// Returns the new PATH and the hidden files.
pub fn path_without_uv(path: &OsStr, shadow_root: &Path) -> Result<(OsString, Vec<PathBuf>)> {
    let mut dirs = Vec::new();
    let mut hidden = Vec::new();
    for (i, dir) in std::env::split_paths(path).enumerate() {
        let found: Vec<PathBuf> = HIDDEN
            .iter()
            .map(|n| dir.join(n))
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            dirs.push(dir);
            continue;
        }
        let shadow = shadow_root.join(i.to_string());
        crate::fsx::create_dir_all(&shadow)?;
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = e.file_name();
            if HIDDEN.iter().any(|h| OsStr::new(h) == name) {
                continue;
            }
            symlink(&e.path(), &shadow.join(&name))?;
        }
        hidden.extend(found);
        dirs.push(shadow);
    }
    let joined = std::env::join_paths(&dirs).context("cannot build the isolated PATH")?;
    Ok((joined, hidden))
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).with_context(|| {
        format!(
            "cannot link {} -> {} (shadowing uv on PATH)",
            link.display(),
            target.display()
        )
    })
}

#[cfg(not(unix))]
fn symlink(target: &Path, _link: &Path) -> Result<()> {
    bail!(
        "cannot hide uv in {} from PATH on this platform; remove it from PATH and retry",
        target.display()
    )
}

/// Fails unless no PATH directory of `path` holds a uv executable.
pub fn assert_no_uv(path: &OsStr) -> Result<()> {
    for dir in std::env::split_paths(path) {
        for n in HIDDEN {
            if dir.join(n).is_file() {
                bail!("{} is still on the isolated PATH", dir.join(n).display());
            }
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn uv_is_hidden_and_its_neighbours_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let with_uv = tmp.path().join("bin");
        let plain = tmp.path().join("other");
        std::fs::create_dir_all(&with_uv).unwrap();
        std::fs::create_dir_all(&plain).unwrap();
        for f in ["uv", "uvx", "python3"] {
            std::fs::write(with_uv.join(f), "#!/bin/sh\necho ok\n").unwrap();
        }
        let path = std::env::join_paths([&plain, &with_uv]).unwrap();
        assert!(assert_no_uv(&path).is_err());

        let shadow = tmp.path().join("shadow");
        let (new, hidden) = path_without_uv(&path, &shadow).unwrap();
        assert_eq!(hidden, [with_uv.join("uv"), with_uv.join("uvx")]);
        let dirs: Vec<PathBuf> = std::env::split_paths(&new).collect();
        assert_eq!(dirs, [plain.clone(), shadow.join("1")]);
        assert!(shadow.join("1/python3").exists());
        assert!(!shadow.join("1/uv").exists() && !shadow.join("1/uvx").exists());
        assert_no_uv(&new).unwrap();
        // The original directory is untouched.
        assert!(with_uv.join("uv").is_file());
    }
}
