//! Small filesystem and time helpers: atomic writes, directory sizes, UTC timestamps, file URLs.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::RuntimeError;

/// Writes `bytes` to `path` atomically (mode 0644): a temporary file created in the same
/// directory with `O_EXCL` under a random name, fsync, rename, then (on Unix) fsync of the
/// directory. A reader sees the old file or the new one, never half; a symlink at `path` or at
/// any predictable temporary name is never followed. The directory must exist (create it with
/// [`crate::trust::ensure_dir`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    ktx_base::write_atomic(path, bytes, 0o644).map_err(|e| RuntimeError::io("write", path, &e))
}

/// Best-effort fsync of a directory so a rename inside it survives a crash (no-op off Unix).
pub fn sync_dir(dir: &Path) {
    ktx_base::sync_dir(dir)
}

/// Total size in bytes of the regular files under `path` (symlinks are not followed).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries.flatten().map(|e| dir_size(&e.path())).sum()
}

/// Removes a directory tree (or a file), ignoring "not found". Never follows a symlink: a
/// link is removed, not its target.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    ktx_base::remove_no_follow(path)
}

/// The current time as RFC 3339 UTC, e.g. `2026-11-21T06:07:07Z`; and as a compact UTC
/// stamp for file names, e.g. `20261121T060707Z` (one definition, in `ktx-base`).
pub use ktx_base::time::{now_rfc3339, now_stamp};

/// A `file://` URL for an absolute path, percent-encoding everything but unreserved characters
/// and `/` (Windows paths become `file:///C:/...`).
pub fn file_url(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    let mut out = String::from("file://");
    if !s.starts_with('/') {
        out.push('/');
    }
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Makes `path` absolute against the current directory (without touching the filesystem).
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Lowercase hex sha256 of a file's content and its length in bytes.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let n = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex(&hasher.finalize()), n))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_are_encoded() {
        assert_eq!(file_url(Path::new("/a b/c.whl")), "file:///a%20b/c.whl");
        assert_eq!(file_url(Path::new("C:\\x\\y.whl")), "file:///C:/x/y.whl");
    }

    #[cfg(unix)]
    #[test]
    fn atomic_write_never_follows_a_pre_planted_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "untouched").unwrap();
        // The name the writer used to pick: `.<name>.tmp-<pid>`.
        let planted = dir
            .path()
            .join(format!(".f.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(fs::read(&p).unwrap(), b"one");
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
