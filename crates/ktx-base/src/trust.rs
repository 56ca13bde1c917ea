//! Trust checks for everything ktx keeps under its runtime root.
//!
//! ktx executes programs it finds under the root (a venv's `python`, a bootstrapped `uv`) and
//! reads secrets there (the daemon token). A directory another local user can write is
//! therefore a way to run code as whoever runs ktx. This module is the one place that decides
//! whether a directory may be trusted, and (with [`crate::fs`]) the one way ktx creates,
//! writes and removes things under the root:
//!
//! - [`TrustedBase::verify`] walks from `/` to a base directory (the runtime root, or a daemon
//!   directory's parent), resolving symlinks itself. Every directory on the way must be owned
//!   by the current user or by root and not be writable by group or others; an *ancestor* of
//!   the base (never the base itself) may also be a root-owned sticky directory such as `/tmp`.
//!   A symlink on the way must itself be owned by the current user or root.
//! - Below the base, [`TrustedBase::check`] applies the same owner and mode rule and refuses
//!   any symlink: ktx never follows a symlink it did not create under its root.
//! - [`TrustedBase::create_dirs`] creates missing directories with an explicit mode (never
//!   more than the umask-independent mode it is given) and verifies each one afterwards.
//! - [`TrustedBase::remove`] removes a path without following a symlink: a link is unlinked,
//!   never its target.
//! - [`crate::fs::write_atomic`] writes through a temporary file created with `O_EXCL` under a random
//!   name (nothing can be pre-planted at a predictable path), then renames it into place.
//!
//! A group-writable directory is accepted when its group is the user's private group (the
//! group named like the user, with no other member): the Debian/Ubuntu "user private group"
//! setup, where the default umask is 002, makes such directories common and safe.
//!
//! Ownership and modes are Unix concepts. On Windows, ktx does not inspect owners or ACLs (the
//! default runtime root is under `%LOCALAPPDATA%`, which Windows makes private to its user,
//! and a directory's ACL is inherited by what ktx creates there); what is checked is links:
//! the base itself must not be a symlink or junction, and below it every reparse point
//! (symlink, junction, mount point) is refused like a symlink. The no-follow opens and the
//! atomic writes apply everywhere.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::fs::remove_no_follow;

/// How many symlinks a walk follows before giving up (the kernel's own limit is 40).
#[cfg(unix)]
const MAX_SYMLINKS: usize = 40;

/// What is wrong with a directory ktx was about to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Owned by another user (neither the current user nor root).
    Owner {
        /// The owner's uid.
        uid: u32,
        /// The permission bits (`0o755`...).
        mode: u32,
    },
    /// Writable by users other than its owner (group or world write bit).
    Writable {
        /// The owner's uid.
        uid: u32,
        /// The permission bits.
        mode: u32,
    },
    /// A symbolic link below the base: ktx never follows a link it did not create there.
    Symlink {
        /// Where it points, when readable.
        target: Option<PathBuf>,
    },
    /// Not a directory (a file, a socket...).
    NotADirectory,
    /// The check itself failed (permission denied, too many symlinks...).
    Io(String),
}

/// A directory that cannot be trusted, and why. [`fmt::Display`] gives one sentence naming
/// the directory, its owner and mode; [`Untrusted::fix`] the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The offending path.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: Problem,
}

impl Untrusted {
    fn new(path: &Path, problem: Problem) -> Self {
        Untrusted {
            path: path.to_path_buf(),
            problem,
        }
    }

    /// The exact fix, as a sentence.
    pub fn fix(&self) -> String {
        let p = self.path.display();
        // Windows: `rmdir` removes a directory symlink or junction without touching its target
        // (the same command in PowerShell and cmd).
        let rm = if cfg!(windows) { "rmdir" } else { "rm" };
        match &self.problem {
            Problem::Owner { .. } => format!(
                "Set KTX_RUNTIME_ROOT to a directory you own (e.g. {}); ktx does not use {p}, which another user controls.",
                crate::shell::set_env_dir(crate::env::RUNTIME_ROOT, crate::shell::Base::Home, ".ktx-runtime")
            ),
            Problem::Writable { .. } => format!(
                "Run `chmod go-w {p}`, or set KTX_RUNTIME_ROOT to another directory."
            ),
            Problem::Symlink { .. } => format!(
                "Remove the link (`{rm} {p}`; its target is left alone), or set KTX_RUNTIME_ROOT to another directory."
            ),
            Problem::NotADirectory => format!(
                "Remove {p} (or move it away), or set KTX_RUNTIME_ROOT to another directory."
            ),
            Problem::Io(_) => format!(
                "Check the permissions of {p}, or set KTX_RUNTIME_ROOT to another directory."
            ),
        }
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.problem {
            Problem::Owner { uid, mode } => write!(
                f,
                "refusing to use {p}: it is owned by another user, {}, mode {mode:04o}; ktx only trusts directories owned by you or root (their owner could plant programs ktx would run)",
                describe_uid(*uid)
            ),
            Problem::Writable { uid, mode } => write!(
                f,
                "refusing to use {p}: it is writable by other users (owner {}, mode {mode:04o}), who could plant programs ktx would run",
                describe_uid(*uid)
            ),
            Problem::Symlink { target } => {
                write!(f, "refusing to use {p}: it is a symbolic link")?;
                if let Some(t) = target {
                    write!(f, " to {}", t.display())?;
                }
                f.write_str(", and ktx never follows a symlink it did not create under its runtime root")
            }
            Problem::NotADirectory => write!(f, "refusing to use {p}: it is not a directory"),
            Problem::Io(e) => write!(f, "cannot check {p}: {e}"),
        }
    }
}

impl std::error::Error for Untrusted {}

/// `uid 65534 (nobody)`, or `uid 1234` when the name cannot be resolved.
pub fn describe_uid(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// The effective uid of this process (0 off Unix).
pub fn current_uid() -> u32 {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// Which rule a directory is held to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Only traversed: a root-owned sticky directory (`/tmp`) is fine.
    #[cfg_attr(not(unix), allow(dead_code))] // the walk that uses it is Unix-only
    Ancestor,
    /// Read from, executed from or created in: private to the user (or root).
    Private,
}

/// The sticky bit (`S_ISVTX`; spelled out because libc types it `u16` on some platforms).
#[cfg(unix)]
const STICKY: u32 = 0o1000;

/// Checks one directory's metadata against `rule`.
#[cfg(unix)]
fn check_meta(path: &Path, meta: &fs::Metadata, rule: Rule) -> Result<(), Untrusted> {
    use std::os::unix::fs::MetadataExt;
    let (uid, mode) = (meta.uid(), meta.mode() & 0o7777);
    let me = current_uid();
    if uid != me && uid != 0 {
        return Err(Untrusted::new(path, Problem::Owner { uid, mode }));
    }
    if mode & 0o022 == 0 {
        return Ok(());
    }
    if rule == Rule::Ancestor && uid == 0 && mode & STICKY != 0 {
        return Ok(());
    }
    if mode & 0o002 == 0 && uid == me && is_private_group(meta.gid(), me) {
        return Ok(());
    }
    Err(Untrusted::new(path, Problem::Writable { uid, mode }))
}

#[cfg(not(unix))]
fn check_meta(_: &Path, _: &fs::Metadata, _: Rule) -> Result<(), Untrusted> {
    Ok(())
}

fn io_problem(path: &Path, e: &io::Error) -> Untrusted {
    Untrusted::new(path, Problem::Io(e.to_string()))
}

/// A base directory whose whole ancestry was verified; operations below it refuse symlinks
/// and untrusted directories. See the crate docs for the rules.
#[derive(Debug, Clone)]
pub struct TrustedBase {
    base: PathBuf,
}

impl TrustedBase {
    /// Verifies every directory from `/` to `base` (which must be absolute; a relative path
    /// is taken from the current directory). A missing `base` (or a missing ancestor) is fine:
    /// the existing part is verified, and [`TrustedBase::create_dirs`] creates the rest.
    /// `base` itself is held to the private rule, its ancestors to the ancestor rule.
    pub fn verify(base: &Path) -> Result<TrustedBase, Untrusted> {
        let base = if base.is_absolute() {
            base.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| io_problem(base, &e))?
                .join(base)
        };
        walk(&base)?;
        Ok(TrustedBase { base })
    }

    /// The base directory, as given.
    pub fn path(&self) -> &Path {
        &self.base
    }

    /// The path of `rel` under the base, refusing a `rel` that is absolute or climbs out.
    fn join(&self, rel: &Path) -> Result<PathBuf, Untrusted> {
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(Untrusted::new(
                &self.base.join(rel),
                Problem::Io("not a path below the runtime root".into()),
            ));
        }
        Ok(self.base.join(rel))
    }

    /// The existing prefixes of `rel` under the base, each checked: a real directory (not a
    /// symlink) owned by the user or root and not writable by others. Stops quietly at the
    /// first missing component (nothing below it exists to be trusted). The base itself is
    /// re-checked too (cheap: one `lstat`), so a verified base that changed is noticed.
    pub fn check(&self, rel: impl AsRef<Path>) -> Result<(), Untrusted> {
        let full = self.join(rel.as_ref())?;
        // The base may be a symlink in a trusted ancestor (verified by `walk`): follow it.
        match fs::metadata(&self.base) {
            Ok(meta) if meta.is_dir() => check_meta(&self.base, &meta, Rule::Private)?,
            Ok(_) => return Err(Untrusted::new(&self.base, Problem::NotADirectory)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_problem(&self.base, &e)),
        }
        let mut cur = self.base.clone();
        for c in rel.as_ref().components() {
            let Component::Normal(name) = c else { continue };
            cur.push(name);
            match fs::symlink_metadata(&cur) {
                Ok(meta) => check_below(&cur, &meta)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_problem(&cur, &e)),
            }
        }
        debug_assert_eq!(cur, full);
        Ok(())
    }

    /// Creates the base (and its missing ancestors) and every missing directory of `rel`
    /// below it with `mode` (e.g. `0o700`; the umask can only remove bits), then verifies
    /// each one: an existing component must pass [`TrustedBase::check`]. Never follows a
    /// symlink below the base. Returns the full path.
    pub fn create_dirs(&self, rel: impl AsRef<Path>, mode: u32) -> Result<PathBuf, Untrusted> {
        let full = self.join(rel.as_ref())?;
        if fs::symlink_metadata(&self.base).is_err() {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            set_mode(&mut b, mode);
            b.create(&self.base)
                .map_err(|e| io_problem(&self.base, &e))?;
            // The new directories must be what we made: walk them again.
            walk(&self.base)?;
        }
        self.check("")?;
        let mut cur = self.base.clone();
        for c in rel.as_ref().components() {
            let Component::Normal(name) = c else { continue };
            cur.push(name);
            let mut b = fs::DirBuilder::new();
            set_mode(&mut b, mode);
            match b.create(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_problem(&cur, &e)),
            }
            let meta = fs::symlink_metadata(&cur).map_err(|e| io_problem(&cur, &e))?;
            check_below(&cur, &meta)?;
        }
        Ok(full)
    }

    /// Removes `rel` under the base without following symlinks: a symlink or file is
    /// unlinked, a directory removed with its content (links inside are unlinked, never
    /// followed). The directories above it must pass [`TrustedBase::check`]. A missing path
    /// is not an error.
    pub fn remove(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let rel = rel.as_ref();
        if let Some(parent) = rel.parent() {
            self.check(parent).map_err(io::Error::other)?;
        }
        let full = self.join(rel).map_err(io::Error::other)?;
        remove_no_follow(&full)
    }
}

/// Checks an entry below the base: a real directory, owned by the user or root, private.
fn check_below(path: &Path, meta: &fs::Metadata) -> Result<(), Untrusted> {
    if is_link(meta) {
        let target = fs::read_link(path).ok();
        return Err(Untrusted::new(path, Problem::Symlink { target }));
    }
    if !meta.is_dir() {
        return Err(Untrusted::new(path, Problem::NotADirectory));
    }
    check_meta(path, meta, Rule::Private)
}

/// Walks from `/` to `base`, resolving symlinks by hand so that every directory actually
/// traversed is checked (the one holding a symlink included). Stops at the first missing
/// component.
#[cfg(unix)]
fn walk(base: &Path) -> Result<(), Untrusted> {
    use std::collections::VecDeque;
    let mut queue: VecDeque<PathBuf> = base
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut cur = PathBuf::from("/");
    let only_root = queue.iter().all(|c| c == Path::new("/"));
    check_existing(
        &cur,
        if only_root {
            Rule::Private
        } else {
            Rule::Ancestor
        },
    )?;
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        match part.components().next() {
            None | Some(Component::CurDir) => continue,
            Some(Component::RootDir) | Some(Component::Prefix(_)) => {
                cur = PathBuf::from("/");
                continue;
            }
            Some(Component::ParentDir) => {
                cur.pop();
                continue;
            }
            Some(Component::Normal(_)) => {}
        }
        let next = cur.join(&part);
        let meta = match fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_problem(&next, &e)),
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(Untrusted::new(
                    &next,
                    Problem::Io("too many levels of symbolic links".into()),
                ));
            }
            check_link_owner(&next, &meta)?;
            let target = fs::read_link(&next).map_err(|e| io_problem(&next, &e))?;
            for c in target.components().rev() {
                queue.push_front(PathBuf::from(c.as_os_str()));
            }
            continue;
        }
        if !meta.is_dir() {
            return Err(Untrusted::new(&next, Problem::NotADirectory));
        }
        // The last directory reached is the base: read from and created in.
        let rule = if queue.is_empty() {
            Rule::Private
        } else {
            Rule::Ancestor
        };
        check_meta(&next, &meta, rule)?;
        cur = next;
    }
    Ok(())
}

/// Windows: owners and ACLs are not inspected (see the module docs); the base itself must not
/// be a symlink or junction (a link planted at the root's name would redirect everything ktx
/// writes and runs there), and must be a directory when it exists.
#[cfg(windows)]
fn walk(base: &Path) -> Result<(), Untrusted> {
    match fs::symlink_metadata(base) {
        Ok(meta) if is_link(&meta) => Err(Untrusted::new(
            base,
            Problem::Symlink {
                target: fs::read_link(base).ok(),
            },
        )),
        Ok(meta) if !meta.is_dir() => Err(Untrusted::new(base, Problem::NotADirectory)),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_problem(base, &e)),
    }
}

/// No ownership model to check on this platform (see the module docs).
#[cfg(not(any(unix, windows)))]
fn walk(_: &Path) -> Result<(), Untrusted> {
    Ok(())
}

/// A symbolic link, or on Windows any reparse point (junctions and mount points too: each
/// redirects a path elsewhere).
fn is_link(meta: &fs::Metadata) -> bool {
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt;
        use windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_REPARSE_POINT;
        if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return true;
        }
    }
    meta.file_type().is_symlink()
}

#[cfg(unix)]
fn check_existing(path: &Path, rule: Rule) -> Result<(), Untrusted> {
    let meta = fs::metadata(path).map_err(|e| io_problem(path, &e))?;
    check_meta(path, &meta, rule)
}

/// A symlink on the way to the base must be the user's or root's (like the kernel's
/// `protected_symlinks`, but everywhere): another user's link could point anywhere.
#[cfg(unix)]
fn check_link_owner(path: &Path, meta: &fs::Metadata) -> Result<(), Untrusted> {
    use std::os::unix::fs::MetadataExt;
    let uid = meta.uid();
    if uid != current_uid() && uid != 0 {
        return Err(Untrusted::new(
            path,
            Problem::Owner {
                uid,
                mode: meta.mode() & 0o7777,
            },
        ));
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(b: &mut fs::DirBuilder, mode: u32) {
    use std::os::unix::fs::DirBuilderExt;
    b.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_: &mut fs::DirBuilder, _: u32) {}

/// The login name of `uid`, if the user database knows it.
#[cfg(unix)]
pub fn user_name(uid: u32) -> Option<String> {
    passwd(uid).map(|(name, _)| name)
}

/// The login name of `uid` (always None off Unix).
#[cfg(not(unix))]
pub fn user_name(_: u32) -> Option<String> {
    None
}

/// Calls a `get*_r` user-database function with a buffer that grows (from 4 KiB up to
/// 1 MiB) while it answers `ERANGE`; `call` reads the record out while the buffer lives.
#[cfg(unix)]
fn with_growing_buffer<T>(mut call: impl FnMut(&mut [u8]) -> Result<T, libc::c_int>) -> Option<T> {
    let mut buf = vec![0u8; 4096];
    loop {
        match call(&mut buf) {
            Err(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Err(_) => return None,
            Ok(value) => return Some(value),
        }
    }
}

/// `(name, primary gid)` of `uid` from the user database.
#[cfg(unix)]
fn passwd(uid: u32) -> Option<(String, u32)> {
    use std::ffi::CStr;
    with_growing_buffer(|buf| {
        // SAFETY: `pwd` and `buf` outlive the call; getpwuid_r writes only into them and
        // sets `result` to null or to `&pwd`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        if result.is_null() || pwd.pw_name.is_null() {
            return Ok(None);
        }
        // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        Ok(Some((name, pwd.pw_gid)))
    })
    .flatten()
}

/// Whether `gid` is `uid`'s private group: its primary group, named like the user, with no
/// supplementary member but the user (the Debian/Ubuntu "user private group" convention).
#[cfg(unix)]
fn is_private_group(gid: u32, uid: u32) -> bool {
    use std::ffi::CStr;
    let Some((user, primary)) = passwd(uid) else {
        return false;
    };
    if primary != gid {
        return false;
    }
    with_growing_buffer(|buf| {
        // SAFETY: as in `passwd`: every pointer written points into `buf`.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        if result.is_null() || grp.gr_name.is_null() {
            return Ok(false);
        }
        // SAFETY: gr_name and the gr_mem array (NULL-terminated) point into `buf`.
        let name = unsafe { CStr::from_ptr(grp.gr_name) }.to_string_lossy();
        if name != user.as_str() {
            return Ok(false);
        }
        let mut i = 0;
        loop {
            let member = unsafe { *grp.gr_mem.add(i) };
            if member.is_null() {
                return Ok(true);
            }
            if unsafe { CStr::from_ptr(member) }.to_string_lossy() != user.as_str() {
                return Ok(false);
            }
            i += 1;
        }
    })
    .unwrap_or(false)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::fs::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn chmod(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_private_tree_is_trusted_and_a_missing_one_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("root");
        let t = TrustedBase::verify(&base).unwrap();
        t.check("1.0/venvs").unwrap();
        let made = t.create_dirs("1.0/venvs", 0o700).unwrap();
        assert_eq!(made, base.join("1.0/venvs"));
        for p in [&base, &base.join("1.0"), &made] {
            assert_eq!(mode_of(p), 0o700, "{}", p.display());
        }
        t.check("1.0/venvs").unwrap();
        TrustedBase::verify(&base).unwrap();
    }

    #[test]
    fn world_and_group_writable_directories_are_refused_with_owner_mode_and_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("root");
        let t = TrustedBase::verify(&base).unwrap();
        let ver = t.create_dirs("1.0", 0o700).unwrap();
        chmod(&ver, 0o777);
        let e = t.check("1.0/venvs").unwrap_err();
        assert_eq!(e.path, ver);
        assert!(
            matches!(e.problem, Problem::Writable { mode: 0o777, .. }),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains(&ver.display().to_string()), "{text}");
        assert!(text.contains("mode 0777"), "{text}");
        assert!(text.contains(&format!("uid {}", current_uid())), "{text}");
        assert_eq!(
            e.fix(),
            format!(
                "Run `chmod go-w {}`, or set KTX_RUNTIME_ROOT to another directory.",
                ver.display()
            )
        );
        // The base itself, and a non-sticky writable ancestor.
        chmod(&ver, 0o700);
        chmod(&base, 0o777);
        assert_eq!(TrustedBase::verify(&base).unwrap_err().path, base);
        chmod(&base, 0o700);
        chmod(tmp.path(), 0o777);
        assert_eq!(TrustedBase::verify(&base).unwrap_err().path, tmp.path());
        chmod(tmp.path(), 0o700);
    }

    #[test]
    fn a_root_owned_sticky_dir_is_fine_as_an_ancestor_only() {
        // /tmp is root-owned and sticky on every Unix this runs on.
        let tmp_meta = fs::metadata("/tmp").unwrap();
        if tmp_meta.permissions().mode() & 0o1777 != 0o1777 {
            eprintln!("skipping: /tmp is not a sticky world-writable directory here");
            return;
        }
        let tmp = tempfile::tempdir_in("/tmp").unwrap();
        TrustedBase::verify(tmp.path()).unwrap();
        let e = TrustedBase::verify(Path::new("/tmp")).unwrap_err();
        assert!(matches!(e.problem, Problem::Writable { .. }), "{e:?}");
    }

    #[test]
    fn symlinks_below_the_base_are_refused_and_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::write(victim.join("precious"), "keep").unwrap();
        chmod(&victim, 0o755);
        let base = tmp.path().join("root");
        let t = TrustedBase::verify(&base).unwrap();
        t.create_dirs("1.0", 0o700).unwrap();
        symlink(&victim, base.join("1.0/venvs")).unwrap();
        let e = t.check("1.0/venvs/x").unwrap_err();
        assert_eq!(e.path, base.join("1.0/venvs"));
        assert_eq!(
            e.problem,
            Problem::Symlink {
                target: Some(victim.clone())
            }
        );
        assert!(e.to_string().contains("symbolic link to"), "{e}");
        let e = t.create_dirs("1.0/venvs/new", 0o700).unwrap_err();
        assert!(matches!(e.problem, Problem::Symlink { .. }), "{e:?}");
        assert!(!victim.join("new").exists());
        assert_eq!(mode_of(&victim), 0o755);
        // Removing the link removes the link only.
        t.remove("1.0/venvs").unwrap();
        assert!(fs::symlink_metadata(base.join("1.0/venvs")).is_err());
        assert_eq!(fs::read_to_string(victim.join("precious")).unwrap(), "keep");
        // Removal below a symlinked directory is refused.
        symlink(&victim, base.join("1.0/daemon")).unwrap();
        assert!(t.remove("1.0/daemon/precious").is_err());
        assert!(victim.join("precious").exists());
    }

    #[test]
    fn a_symlinked_base_in_a_trusted_parent_is_followed_and_its_target_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        chmod(&real, 0o700);
        let link = tmp.path().join("link");
        symlink("real", &link).unwrap();
        TrustedBase::verify(&link).unwrap();
        TrustedBase::verify(&link.join("below")).unwrap();
        chmod(&real, 0o777);
        let e = TrustedBase::verify(&link).unwrap_err();
        assert_eq!(e.path, real);
        chmod(&real, 0o700);
    }

    #[test]
    fn a_file_as_base_is_not_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, "").unwrap();
        let e = TrustedBase::verify(&file).unwrap_err();
        assert_eq!(e.problem, Problem::NotADirectory);
        let e = TrustedBase::verify(&file.join("below")).unwrap_err();
        assert_eq!((e.path, e.problem), (file, Problem::NotADirectory));
    }

    #[test]
    fn another_users_directory_is_refused() {
        if current_uid() != 0 {
            eprintln!("skipping: chown to another user needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("root");
        fs::create_dir(&base).unwrap();
        std::os::unix::fs::chown(&base, Some(65534), Some(65534)).unwrap();
        let e = TrustedBase::verify(&base).unwrap_err();
        assert!(
            matches!(e.problem, Problem::Owner { uid: 65534, .. }),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(text.contains("owned by another user, uid 65534"), "{text}");
        assert!(e.fix().contains("KTX_RUNTIME_ROOT"), "{}", e.fix());
    }

    #[test]
    fn atomic_writes_never_follow_a_planted_name() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "untouched").unwrap();
        let target = tmp.path().join("state.json");
        // Whatever name a writer might predict, pointing at the victim.
        symlink(
            &victim,
            tmp.path()
                .join(format!(".state.json.tmp-{}", std::process::id())),
        )
        .unwrap();
        symlink(&victim, &target).unwrap();
        write_atomic(&target, b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert!(!fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(mode_of(&target), 0o600);
        write_atomic(&target, b"again", 0o644).unwrap();
        assert_eq!(mode_of(&target), 0o644);
        // Only the target, the victim and the planted link remain: no temporary file left.
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 3);
    }

    #[test]
    fn no_follow_refuses_a_symlinked_lock_file() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "untouched").unwrap();
        let lock = tmp.path().join("install.lock");
        symlink(&victim, &lock).unwrap();
        let mut o = fs::OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        assert!(no_follow(&mut o).open(&lock).is_err());
    }
}

/// Windows: what the trust checks do there (links refused, no owner/ACL check).
#[cfg(all(test, windows))]
mod windows_tests {
    use super::*;

    #[test]
    fn plain_directories_are_trusted_and_a_file_is_not_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("root");
        let trusted = TrustedBase::verify(&base).unwrap();
        let made = trusted.create_dirs("0.1.0/venvs", 0o700).unwrap();
        assert!(made.is_dir());
        trusted.check("0.1.0/venvs").unwrap();
        fs::write(base.join("0.1.0/file"), "x").unwrap();
        assert_eq!(
            trusted.check("0.1.0/file/x").unwrap_err().problem,
            Problem::NotADirectory
        );
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        assert_eq!(
            TrustedBase::verify(&file).unwrap_err().problem,
            Problem::NotADirectory
        );
        trusted.remove("0.1.0").unwrap();
        assert!(!base.join("0.1.0").exists());
    }

    /// Needs real Windows (developer mode or admin, for `CreateSymbolicLinkW`): Wine 8 reports
    /// success but leaves a link it cannot stat, so the check cannot be exercised there.
    #[test]
    #[ignore = "needs native Windows symlinks (Wine 8 creates dangling ones)"]
    fn links_are_refused_and_removing_one_keeps_its_target() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("root");
        let trusted = TrustedBase::verify(&base).unwrap();
        trusted.create_dirs("0.1.0", 0o700).unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        std::os::windows::fs::symlink_dir(&outside, base.join("0.1.0/link")).unwrap();
        let err = trusted.check("0.1.0/link/x").unwrap_err();
        assert!(matches!(err.problem, Problem::Symlink { .. }), "{err}");
        assert!(err.fix().contains("`rmdir "), "{}", err.fix());
        trusted.remove("0.1.0/link").unwrap();
        assert!(outside.join("keep").exists());
        let linked = tmp.path().join("linked-root");
        std::os::windows::fs::symlink_dir(&outside, &linked).unwrap();
        let err = TrustedBase::verify(&linked).unwrap_err();
        assert!(matches!(err.problem, Problem::Symlink { .. }), "{err}");
    }
}
