//! The daemon directory: state, owner record, token, log and lock files.

use crate::error::{DaemonError, Result};
use ktx_base::daemon_files as names;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Paths of the files in a daemon directory (`<root>/<version>/daemon/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonPaths {
    /// The daemon directory itself.
    pub dir: PathBuf,
    /// `state.json`, written by the Python daemon.
    pub state: PathBuf,
    /// `owner.json`: pid and process start time of the daemon we spawned (written by Rust).
    pub owner: PathBuf,
    /// `token`: the bearer token (0600).
    pub token: PathBuf,
    /// `daemon.log`: the daemon's stdout and stderr.
    pub log: PathBuf,
    /// `lifecycle.lock`: serializes start and stop between processes.
    pub lock: PathBuf,
}

impl DaemonPaths {
    /// The files of the daemon directory of a runtime version directory
    /// (`<version_dir>/daemon`).
    pub fn of_version_dir(version_dir: &Path) -> Self {
        DaemonPaths::new(version_dir.join(names::DIR))
    }

    /// The files of the daemon directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        DaemonPaths {
            state: dir.join(names::STATE),
            owner: dir.join(names::OWNER),
            token: dir.join(names::TOKEN),
            log: dir.join(names::LOG),
            lock: dir.join(names::LOCK),
            dir,
        }
    }
}

/// The daemon's `state.json`, as written by the Python daemon after it bound its port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonState {
    /// Always 1 for now.
    pub schema_version: u32,
    /// The daemon's pid.
    pub pid: u32,
    /// Always `127.0.0.1`.
    pub host: String,
    /// The port it bound.
    pub port: u16,
    /// PEP 440 version of the Python package.
    pub version: String,
    /// Features it serves (`core` always).
    pub features: Vec<String>,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    /// Random id of this daemon instance.
    pub instance_id: String,
    /// ABI version it speaks.
    pub abi: u32,
}

impl DaemonState {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Written by Rust right after spawning: ties the pid to its process start time, so that a
/// recycled pid is never mistaken for the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OwnerRecord {
    pub schema_version: u32,
    pub pid: u32,
    /// Opaque process start time (Linux: `/proc/<pid>/stat` field 22).
    pub start_time: String,
    pub spawned_at: String,
    /// Filled in once the daemon answered `/health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// The daemon directory's parent (the runtime's version dir) as a verified base, and the
/// daemon directory's name under it.
fn trusted_parent(dir: &Path) -> Result<(ktx_base::TrustedBase, PathBuf)> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(DaemonError::io(
            "checking the daemon directory",
            dir,
            io::Error::other("it has no parent directory"),
        ));
    };
    let base = ktx_base::TrustedBase::verify(parent).map_err(DaemonError::Untrusted)?;
    Ok((base, PathBuf::from(name)))
}

/// Verify the daemon directory before anything in it is read or trusted: it and its parent
/// are real directories owned by the user (or root) and not writable by others, every
/// directory above is too (a root-owned sticky one such as `/tmp` aside), and the daemon
/// directory is not a symlink (see `ktx-base`). A missing directory is fine.
pub(crate) fn check_dir(dir: &Path) -> Result<()> {
    let (base, name) = trusted_parent(dir)?;
    base.check(&name).map_err(DaemonError::Untrusted)
}

/// Create the daemon directory with mode 0700 (whatever the umask) after [`check_dir`]'s
/// checks, never through a symlink, and verify it.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    let (base, name) = trusted_parent(dir)?;
    base.create_dirs(&name, 0o700)
        .map_err(DaemonError::Untrusted)?;
    Ok(())
}

/// Write `data` to `path` atomically: an owner-only (0600) temporary file created with
/// `O_EXCL` under a random name in the same directory, fsync, rename over the target (the
/// one atomic-write path of `ktx-base`).
pub(crate) fn write_atomic(path: &Path, data: &[u8], what: &str) -> Result<()> {
    ktx_base::write_atomic(path, data, 0o600)
        .map_err(|e| DaemonError::io(format!("writing {what}"), path, e))
}

/// `n` random bytes from the OS, hex encoded.
pub(crate) fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| DaemonError::io("reading random bytes", "/dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Generate a fresh 32-byte token and write it (0600) to the token file.
pub(crate) fn write_new_token(paths: &DaemonPaths) -> Result<String> {
    let token = random_hex(32)?;
    write_atomic(&paths.token, token.as_bytes(), "the daemon token file")?;
    Ok(token)
}

/// Read the token file: `Err(reason)` when it is missing, unreadable, empty or not the
/// hex token we write (it goes into an HTTP header: no byte of it may be a control character).
pub(crate) fn read_token(paths: &DaemonPaths) -> std::result::Result<String, String> {
    let path = paths.token.display();
    let bytes = match fs::read(&paths.token) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("token file {path} is missing"))
        }
        Err(e) => return Err(format!("cannot read the token file {path}: {e}")),
    };
    let token = String::from_utf8_lossy(&bytes);
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("token file {path} is empty"));
    }
    if token.len() > 1024 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("token file {path} is corrupt (not a hex token)"));
    }
    Ok(token.to_string())
}

/// Read a JSON file: `Ok(None)` when missing, `Err(description)` when unreadable or invalid.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> std::result::Result<Option<T>, String> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is not valid: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Remove `state.json` only if it still names `instance_id` (or is unreadable when
/// `instance_id` is `None`): never delete a successor's state.
pub(crate) fn remove_state_if(paths: &DaemonPaths, instance_id: Option<&str>) -> Result<()> {
    let current: std::result::Result<Option<serde_json::Value>, String> = read_json(&paths.state);
    let matches = match (&current, instance_id) {
        (Ok(None), _) => return Ok(()),
        (Ok(Some(v)), Some(id)) => v.get("instanceId").and_then(|x| x.as_str()) == Some(id),
        (Ok(Some(v)), None) => v.get("instanceId").is_none(),
        (Err(_), _) => true,
    };
    if matches {
        remove_if_exists(&paths.state, "removing the stale daemon state")?;
    }
    Ok(())
}

/// Remove `owner.json` only if it still names `pid`.
pub(crate) fn remove_owner_if(paths: &DaemonPaths, pid: Option<u32>) -> Result<()> {
    let matches = match read_json::<OwnerRecord>(&paths.owner) {
        Ok(None) => return Ok(()),
        Ok(Some(owner)) => match pid {
            Some(p) => owner.pid == p,
            None => true,
        },
        Err(_) => true,
    };
    if matches {
        remove_if_exists(&paths.owner, "removing the daemon owner record")?;
    }
    Ok(())
}

fn remove_if_exists(path: &Path, op: &str) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DaemonError::io(op, path, e)),
    }
}

/// Open `daemon.log` for appending (rotating it to `daemon.log.1` past 1 MiB) and return it
/// with the offset where this run's output begins.
pub(crate) fn open_log(paths: &DaemonPaths) -> Result<(File, u64)> {
    const ROTATE_AT: u64 = 1024 * 1024;
    if fs::metadata(&paths.log).is_ok_and(|m| m.len() > ROTATE_AT) {
        let _ = fs::rename(&paths.log, paths.log.with_extension("log.1"));
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    // A symlink at the log's name is refused: the daemon's output never lands elsewhere.
    let file = ktx_base::open_no_follow(&mut options, &paths.log)
        .map_err(|e| DaemonError::io("opening the daemon log", &paths.log, e))?;
    let offset = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, offset))
}

/// The last `max_lines` lines of `path` written after `from` (at most 16 KiB).
pub(crate) fn log_tail(path: &Path, from: u64, max_lines: usize) -> String {
    const MAX: u64 = 16 * 1024;
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(MAX)).min(len);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(MAX).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_owner_only_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_atomic(&path, b"{}", "x").unwrap();
        write_atomic(&path, b"{\"a\":1}", "x").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":1}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn compare_and_delete_keeps_a_successors_state() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DaemonPaths::new(dir.path());
        fs::write(&paths.state, r#"{"instanceId":"new"}"#).unwrap();
        remove_state_if(&paths, Some("old")).unwrap();
        assert!(paths.state.exists());
        remove_state_if(&paths, Some("new")).unwrap();
        assert!(!paths.state.exists());
        fs::write(&paths.state, "garbage").unwrap();
        remove_state_if(&paths, Some("old")).unwrap();
        assert!(!paths.state.exists());
    }

    #[test]
    fn token_files_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DaemonPaths::new(dir.path());
        assert!(read_token(&paths).unwrap_err().contains("missing"));
        fs::write(&paths.token, " \n").unwrap();
        assert!(read_token(&paths).unwrap_err().contains("empty"));
        fs::write(&paths.token, "abc\r\nX-Injected: 1").unwrap();
        assert!(read_token(&paths).unwrap_err().contains("corrupt"));
        fs::write(&paths.token, [0xffu8, 0xfe, 0x00]).unwrap();
        assert!(read_token(&paths).unwrap_err().contains("corrupt"));
        let token = write_new_token(&paths).unwrap();
        assert_eq!(read_token(&paths).unwrap(), token);
    }

    #[test]
    fn tail_only_shows_this_run() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("daemon.log");
        fs::write(&log, "old 1\nold 2\nnew 1\nnew 2\nnew 3\n").unwrap();
        assert_eq!(log_tail(&log, 12, 10), "new 1\nnew 2\nnew 3");
        assert_eq!(log_tail(&log, 12, 2), "new 2\nnew 3");
        assert_eq!(log_tail(&dir.path().join("missing"), 0, 2), "");
    }
}
