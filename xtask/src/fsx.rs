//! File helpers: reading with context, hashing, and atomic (temp file + rename) writes.

use anyhow::{Context, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256, Sha512};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads a UTF-8 file, naming the path on failure.
pub fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads a file's bytes, naming the path on failure.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// npm's integrity string for `data`: `sha512-<standard base64 with padding>`.
pub fn sha512_integrity(data: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(data))
    )
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Creates `dir` and its parents, naming the path on failure.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))
}

/// A file written next to its destination under a temporary name, renamed into place by
/// [`Staged::commit`]. Dropping it uncommitted removes the temporary file, so an error never
/// leaves a partial artifact at `dest`.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    /// Writes `data` (and fsyncs it) to a temporary file in `dest`'s directory.
    pub fn write(dest: &Path, data: &[u8]) -> Result<Staged> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        create_dir_all(dir)?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let staged = Staged {
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        };
        let mut file = fs::File::create(&staged.tmp)
            .with_context(|| format!("cannot create {}", staged.tmp.display()))?;
        file.write_all(data)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", staged.tmp.display()))?;
        Ok(staged)
    }

    /// Renames the temporary file to its destination.
    pub fn commit(mut self) -> Result<()> {
        fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!(
                "cannot rename {} to {}",
                self.tmp.display(),
                self.dest.display()
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes every `(dest, data)` pair to a temporary file first, then renames them all in order.
/// Nothing reaches a destination unless every temporary file could be written.
pub fn write_all_atomic(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let staged = files
        .iter()
        .map(|(dest, data)| Staged::write(dest, data))
        .collect::<Result<Vec<_>>>()?;
    for s in staged {
        s.commit()?;
    }
    Ok(())
}

/// Removes files in `dir` whose names satisfy `stale` (ignores a missing directory).
pub fn remove_stale(dir: &Path, stale: impl Fn(&str) -> bool) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if stale(&name) {
            fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove stale {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_values() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sha512_integrity(b"abc").starts_with("sha512-3a81oZNherrMQXNJriBBMRLm"));
    }

    #[test]
    fn staged_file_vanishes_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.txt");
        let s = Staged::write(&dest, b"x").unwrap();
        drop(s);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        Staged::write(&dest, b"y").unwrap().commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"y");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
