//! `ktx runtime prune`: removes other ktx versions' runtime directories and unused bootstrapped
//! uv copies, never the current version and never a directory another process holds in use
//! (its `install.lock` or `daemon/lifecycle.lock` is locked, or its daemon is alive).
//!
//! Only directories that are ktx's are ever listed: a version dir (named by a SemVer) must
//! carry a receipt (`manifest.json`), a `venvs/` dir or the marker
//! [`MARKER_FILE`]; a `.prune-<semver>-<pid>` dir is one an
//! interrupted prune renamed aside. Symlinks in the root are never listed, and nothing is
//! listed or removed under a root that fails the [`crate::trust`] checks.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{ErrorKind, RuntimeError};
use crate::fsutil::{dir_size, remove_tree};
use crate::layout::{Layout, MARKER_FILE};
/// Whether another process holds a lock (kept here for callers of the old path).
pub use crate::lock::held_by_other;
use crate::lock::{try_lock, LockGuard};
use crate::uv;

/// What a prune entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneKind {
    /// Another ktx version's runtime directory.
    Version,
    /// A bootstrapped uv copy (or a leftover temporary directory) under `tools/uv/`.
    Uv,
}

/// A directory prune removes (or would remove).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneEntry {
    /// The directory.
    pub path: PathBuf,
    /// What it is.
    pub kind: PruneKind,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A directory prune leaves alone, and why.
#[derive(Debug, Clone, Serialize)]
pub struct PruneSkip {
    /// The directory.
    pub path: PathBuf,
    /// Why it is kept.
    pub reason: String,
}

/// What prune would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrunePlan {
    /// Directories to remove.
    pub remove: Vec<PruneEntry>,
    /// Directories kept on purpose.
    pub skip: Vec<PruneSkip>,
}

impl PrunePlan {
    /// Total bytes of [`PrunePlan::remove`].
    pub fn bytes(&self) -> u64 {
        self.remove.iter().map(|e| e.bytes).sum()
    }

    /// Whether the plan may run: removing anything needs the user's confirmation (`--yes`).
    /// Without it, an [`ErrorKind::Refused`] error that says how to review and confirm; an
    /// empty plan needs none.
    pub fn confirm(&self, confirmed: bool) -> Result<(), RuntimeError> {
        let n = self.remove.len();
        if confirmed || n == 0 {
            return Ok(());
        }
        Err(RuntimeError::new(
            ErrorKind::Refused,
            format!(
                "refusing to remove {n} director{} without --yes",
                if n == 1 { "y" } else { "ies" }
            ),
        )
        .with_hint(
            "Review with `ktx runtime prune --dry-run`, then run `ktx runtime prune --yes`.",
        ))
    }
}

/// What prune did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneResult {
    /// Removed directories.
    pub removed: Vec<PruneEntry>,
    /// Directories kept because another process uses them, with the reason.
    pub skipped: Vec<PruneSkip>,
    /// Directories that could not be removed (permissions, I/O), with the error: a failure.
    pub failed: Vec<PruneSkip>,
}

/// The pid of a daemon that may be running from the version dir `version_dir`: our recorded
/// daemon process (pid and start time) or, without such a record, the state file's pid while
/// it runs (see [`ktx_daemon::running_pid`]; a recycled pid is not a daemon).
pub(crate) fn live_daemon(version_dir: &Path) -> Option<u32> {
    ktx_daemon::running_pid(&ktx_daemon::DaemonPaths::of_version_dir(version_dir).dir)
}

/// The lifecycle lock of the daemon of the version dir `version_dir`.
fn lifecycle_lock(version_dir: &Path) -> PathBuf {
    ktx_daemon::DaemonPaths::of_version_dir(version_dir).lock
}

fn in_use(dir: &Path) -> Option<String> {
    let install = dir.join("install.lock");
    if held_by_other(&install) {
        return Some(format!(
            "in use: {} is held by another process",
            install.display()
        ));
    }
    let lifecycle = lifecycle_lock(dir);
    if held_by_other(&lifecycle) {
        return Some(format!(
            "in use: {} is held by another process",
            lifecycle.display()
        ));
    }
    live_daemon(dir).map(|pid| format!("in use: its daemon is running (pid {pid})"))
}

/// Whether `dir` is a ktx version dir: it carries a receipt, a `venvs/` dir or the marker
/// (none of them a symlink).
fn has_ktx_marker(dir: &Path) -> bool {
    let is = |name: &str, want_dir: bool| {
        fs::symlink_metadata(dir.join(name)).is_ok_and(|m| {
            if want_dir {
                m.is_dir()
            } else {
                m.is_file()
            }
        })
    };
    is(MARKER_FILE, false) || is("manifest.json", false) || is("venvs", true)
}

/// Whether `name` is `.prune-<semver>-<pid>`: a version dir an interrupted prune renamed aside.
fn is_pruned_aside(name: &str) -> bool {
    name.strip_prefix(".prune-")
        .and_then(|rest| rest.rsplit_once('-'))
        .is_some_and(|(version, pid)| {
            !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && semver::Version::parse(version).is_ok()
        })
}

/// Computes what prune would remove. Reads only. Refuses (an error naming the directory and
/// the fix) when the root fails the [`crate::trust`] checks.
pub fn plan(layout: &Layout) -> Result<PrunePlan, RuntimeError> {
    let base =
        ktx_base::TrustedBase::verify(layout.root()).map_err(|u| crate::trust::error(layout, u))?;
    let mut plan = PrunePlan::default();
    plan_versions(layout, &mut plan);
    plan_uv_copies(layout, &base, &mut plan);
    plan_staging(layout, &mut plan);
    Ok(plan)
}

/// Other ktx versions' runtime directories (and ones an interrupted prune renamed aside).
fn plan_versions(layout: &Layout, plan: &mut PrunePlan) {
    if let Ok(entries) = fs::read_dir(layout.root()) {
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            // lstat: a symlink in the root is never listed (nor followed).
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if is_pruned_aside(&name) {
                // left by an interrupted prune: already renamed aside, never a live runtime
                plan.remove.push(PruneEntry {
                    bytes: dir_size(&path),
                    path,
                    kind: PruneKind::Version,
                });
                continue;
            }
            if semver::Version::parse(&name).is_err() {
                continue;
            }
            if name == layout.version() {
                plan.skip.push(PruneSkip {
                    path,
                    reason: "current version".into(),
                });
                continue;
            }
            if !has_ktx_marker(&path) {
                continue; // not a directory ktx made: never removed
            }
            match in_use(&path) {
                Some(reason) => plan.skip.push(PruneSkip { path, reason }),
                None => plan.remove.push(PruneEntry {
                    bytes: dir_size(&path),
                    path,
                    kind: PruneKind::Version,
                }),
            }
        }
    }
}

/// Bootstrapped uv copies other than the pinned one (all kept while another version is used).
fn plan_uv_copies(layout: &Layout, base: &ktx_base::TrustedBase, plan: &mut PrunePlan) {
    let pinned = uv::pins().map(|p| p.version).ok();
    let versions_in_use = plan.skip.iter().any(|s| s.reason.starts_with("in use"));
    // tools/uv/ itself must be a real, private directory before anything in it is listed.
    let uv_listing = match base.check("tools/uv") {
        Ok(()) => fs::read_dir(layout.uv_tools_dir()).ok(),
        Err(_) => None,
    };
    if let Some(entries) = uv_listing {
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if uv::staging_owner(&name).is_some() {
                continue; // planned below
            }
            if Some(&name) == pinned.as_ref() {
                plan.skip.push(PruneSkip {
                    path,
                    reason: "uv pinned by this ktx".into(),
                });
            } else if versions_in_use && !name.starts_with('.') {
                plan.skip.push(PruneSkip {
                    path,
                    reason: "kept while another ktx version is in use".into(),
                });
            } else {
                plan.remove.push(PruneEntry {
                    bytes: dir_size(&path),
                    path,
                    kind: PruneKind::Uv,
                });
            }
        }
    }
}

/// What interrupted uv bootstraps left, unless a bootstrap runs now.
fn plan_staging(layout: &Layout, plan: &mut PrunePlan) {
    // What interrupted uv bootstraps left (a download dir, a half-placed binary, even empty):
    // removed unless a bootstrap runs now.
    let lock = uv::bootstrap_lock_path(layout);
    let bootstrapping = held_by_other(&lock);
    for (path, owner) in uv::staging_entries(layout) {
        if plan.remove.iter().any(|e| path.starts_with(&e.path)) {
            continue; // inside a uv version dir that goes as a whole
        }
        if bootstrapping {
            plan.skip.push(PruneSkip {
                path,
                reason: format!(
                    "in use: a uv bootstrap is in progress ({} is held)",
                    lock.display()
                ),
            });
        } else if let Some(pid) = owner.filter(|pid| ktx_base::process::may_be_running(*pid)) {
            plan.skip.push(PruneSkip {
                path,
                reason: format!("in use: a uv bootstrap by pid {pid} is in progress"),
            });
        } else {
            plan.remove.push(PruneEntry {
                bytes: dir_size(&path),
                path,
                kind: PruneKind::Uv,
            });
        }
    }
}

/// Takes the locks of the version dir `dir` (its install lock, created if missing, and its
/// daemon's lifecycle lock when there is one) and checks that its daemon is not running.
/// `Err`: why the directory is in use.
fn lock_version(dir: &Path) -> Result<Vec<LockGuard>, String> {
    let mut guards = Vec::new();
    let mut busy = None;
    for (lock, create) in [
        (dir.join("install.lock"), true),
        (lifecycle_lock(dir), false),
    ] {
        // The install lock is taken even if it does not exist yet (the directory is
        // about to go): an install of that version starting now then waits for us.
        // Never through a symlinked directory (the lock is truncated and written),
        // and never a lock that is itself a symlink (`try_lock` refuses it: busy).
        let parent_is_dir = lock
            .parent()
            .is_some_and(|d| fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()));
        if !parent_is_dir || (!create && fs::symlink_metadata(&lock).is_err()) {
            continue;
        }
        match try_lock(&lock) {
            Ok(Some(g)) => guards.push(g),
            _ => {
                busy = Some(format!(
                    "in use: {} is held by another process",
                    lock.display()
                ))
            }
        }
    }
    if busy.is_none() {
        busy = live_daemon(dir).map(|pid| format!("in use: its daemon is running (pid {pid})"));
    }
    match busy {
        Some(reason) => Err(reason),
        None => Ok(guards),
    }
}

/// Removes what `plan` lists, re-checking each version directory under its locks (a directory
/// that became busy since planning is skipped). A version dir is first renamed aside so a
/// half-deleted runtime is never visible under its version name.
pub fn execute(layout: &Layout, plan: &PrunePlan) -> PruneResult {
    let mut result = PruneResult::default();
    // The root is re-verified: nothing is removed from one that became untrusted since.
    if let Err(u) = ktx_base::TrustedBase::verify(layout.root()) {
        let reason = crate::trust::describe(layout, u);
        for entry in &plan.remove {
            result.failed.push(PruneSkip {
                path: entry.path.clone(),
                reason: reason.clone(),
            });
        }
        return result;
    }
    for entry in &plan.remove {
        // Held until the entry is gone: a process starting to use it meanwhile waits.
        let mut guards: Vec<LockGuard> = Vec::new();
        if entry.kind == PruneKind::Version {
            match lock_version(&entry.path) {
                Ok(held) => guards = held,
                Err(reason) => {
                    result.skipped.push(PruneSkip {
                        path: entry.path.clone(),
                        reason,
                    });
                    continue;
                }
            }
        }
        let name = entry
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if entry.kind == PruneKind::Uv && uv::staging_owner(&name).is_some() {
            // A bootstrap that started since planning holds the lock: leave its staging alone.
            let lock = uv::bootstrap_lock_path(layout);
            let guard = match try_lock(&lock) {
                Ok(Some(g)) => g,
                _ => {
                    result.skipped.push(PruneSkip {
                        path: entry.path.clone(),
                        reason: format!(
                            "in use: a uv bootstrap is in progress ({} is held)",
                            lock.display()
                        ),
                    });
                    continue;
                }
            };
            match uv::remove_entry(&entry.path) {
                Ok(()) => result.removed.push(entry.clone()),
                Err(e) => result.failed.push(PruneSkip {
                    path: entry.path.clone(),
                    reason: format!("cannot remove {}: {e}", entry.path.display()),
                }),
            }
            drop(guard);
            continue;
        }
        let aside = layout
            .root()
            .join(format!(".prune-{name}-{}", std::process::id()));
        let target = if entry.kind == PruneKind::Version && fs::rename(&entry.path, &aside).is_ok()
        {
            aside
        } else {
            entry.path.clone()
        };
        drop(guards);
        match remove_tree(&target) {
            Ok(()) => result.removed.push(entry.clone()),
            Err(e) => result.failed.push(PruneSkip {
                path: entry.path.clone(),
                reason: format!("cannot remove {}: {e}", target.display()),
            }),
        }
    }
    result
}
