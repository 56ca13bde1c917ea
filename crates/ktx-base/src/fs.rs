//! Writes and removals that never follow a planted symlink.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Removes `path` without following it: a symlink or a file is unlinked; a directory is
/// removed with its content (`std::fs::remove_dir_all` unlinks the links inside, never their
/// targets). A missing path is not an error.
pub fn remove_no_follow(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let result = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Makes `opts` refuse to follow a symlink as the last path component, for the lock and log
/// files ktx opens by a fixed name. Unix: `O_NOFOLLOW` (the open fails). Windows:
/// `FILE_FLAG_OPEN_REPARSE_POINT` opens the link itself, never its target; [`refuse_link`]
/// then rejects the handle.
pub fn no_follow(opts: &mut fs::OpenOptions) -> &mut fs::OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        opts.custom_flags(windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT);
    }
    opts
}

/// Opens `path` with `opts` made [`no_follow`]: a symlink (Windows: any reparse point) at
/// `path` is an error and its target is never opened.
pub fn open_no_follow(opts: &mut fs::OpenOptions, path: &Path) -> io::Result<fs::File> {
    let file = no_follow(opts).open(path)?;
    refuse_link(&file)?;
    Ok(file)
}

/// Errors when `file`, opened through [`no_follow`], is a link rather than a regular file
/// (Windows: a reparse point; on Unix the open itself already failed).
fn refuse_link(file: &fs::File) -> io::Result<()> {
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt;
        let attrs = file.metadata()?.file_attributes();
        if attrs & windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(io::Error::other(
                "refusing to open a symbolic link or junction (reparse point)",
            ));
        }
    }
    #[cfg(not(windows))]
    let _ = file;
    Ok(())
}

/// Writes `bytes` to `path` atomically with permission bits `mode`: a temporary file created
/// in the same directory with `O_EXCL` under a random name (`.<name>.<random>.tmp`), fsync,
/// rename over `path` (a symlink at `path` is replaced, never followed), fsync of the
/// directory. A reader sees the old file or the new one, never half. The directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = temp_file_in(dir, &format!(".{name}."), ".tmp", mode)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    persist(tmp, path)
}

/// A new temporary file in `dir` named `<prefix><random><suffix>`, created with `O_CREAT |
/// O_EXCL` (retrying on a name collision: nothing pre-planted at a name is ever opened) with
/// permission bits `mode`. It is removed again when dropped unless [`persist`]ed: the first
/// half of an atomic write whose content is streamed rather than in memory.
pub fn temp_file_in(
    dir: &Path,
    prefix: &str,
    suffix: &str,
    mode: u32,
) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(suffix).rand_bytes(10);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder.tempfile_in(dir)
}

/// Renames `tmp` (from [`temp_file_in`], written and fsynced by the caller) over `path` (a
/// symlink at `path` is replaced, never followed), then fsyncs the directory so the rename
/// survives a crash: the second half of an atomic write.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
    tmp.persist(path).map_err(|e| e.error)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir);
    } else {
        sync_dir(Path::new("."));
    }
    Ok(())
}

/// Best-effort fsync of a directory so a rename inside it survives a crash (no-op off Unix).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
