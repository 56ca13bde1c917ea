//! The script files on disk: `scripts/*.py` listed with their size and mtime (the cheap
//! check), hashed (sha256), and written atomically with their permission bits kept.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The directory of a project that holds its scripts.
pub const SCRIPTS_DIR: &str = "scripts";

/// One `scripts/<slug>.py` file as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the project, `/`-separated.
    pub rel: String,
    /// The file stem.
    pub slug: String,
    /// Size in bytes.
    pub size: u64,
    /// mtime in nanoseconds since the Unix epoch (0 when the platform has none).
    pub mtime_ns: i64,
}

/// `scripts/<slug>.py` relative to the project.
pub fn rel_path(slug: &str) -> String {
    format!("{SCRIPTS_DIR}/{slug}.py")
}

/// The absolute path of `rel` (a `/`-separated project-relative path) under `root`.
pub fn abs_path(root: &Path, rel: &str) -> PathBuf {
    rel.split('/')
        .fold(root.to_path_buf(), |p, part| p.join(part))
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// The stat of one file as an [`Entry`] (its slug from the file name).
pub fn stat(root: &Path, rel: &str) -> io::Result<Entry> {
    let meta = std::fs::metadata(abs_path(root, rel))?;
    let slug = rel
        .rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".py"))
        .unwrap_or(rel)
        .to_string();
    Ok(Entry {
        rel: rel.to_string(),
        slug,
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
    })
}

/// Every regular `scripts/*.py` file (not hidden, not in subdirectories), sorted by path. A
/// project without `scripts/` has none.
pub fn list(root: &Path) -> io::Result<Vec<Entry>> {
    let dir = root.join(SCRIPTS_DIR);
    let read = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for item in read {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(slug) = name.strip_suffix(".py") else {
            continue;
        };
        if slug.is_empty() || name.starts_with('.') {
            continue;
        }
        // Follows a symlink to a file (a linked script is a script); skips directories.
        let Ok(meta) = std::fs::metadata(item.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            rel: rel_path(slug),
            slug: slug.to_string(),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
        });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `text` to `path` atomically, keeping the permission bits of the file it replaces
/// (0644 for a new file).
pub fn write(path: &Path, text: &str) -> io::Result<()> {
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644)
    };
    #[cfg(not(unix))]
    let mode = 0o644;
    ktx_base::fs::write_atomic(path, text.as_bytes(), mode)
}
