//! Bringing the index in line with the files: the cheap check every command runs, the full
//! `reconcile`, and `rebuild`. The files win every disagreement.
//!
//! The cheap check lists `scripts/*.py` with their size and mtime and compares them with the
//! rows: when nothing differs it is done, without a write, a hash or a git call. When something
//! differs (and always for `reconcile`), it takes the index's write lock and reads again:
//!
//! 1. which files to read: those whose stat differs or that are new; with git, also what
//!    `git diff --name-status -M <indexed commit>` and the untracked files name (renames
//!    paired); without git (or for a commit git no longer has), `reconcile` reads every file
//!    (the content-hash scan);
//! 2. each file read is hashed; one whose hash equals its row's only gets its new stat;
//! 3. ids: a file keeps the id its frontmatter declares, unless another file already holds it
//!    (a copy: the copy gets a new id). A file without a (usable) id takes, in order, the id of
//!    the row at its path, of the row git says it was renamed from, of a vanished row with the
//!    same content hash, else a new one; the id is then written back into the file (unless its
//!    frontmatter could not be parsed: then the file is left alone and a warning says so);
//! 4. rows whose file is gone and whose id nobody took are deleted; the others are written;
//!    the git `HEAD` becomes the indexed commit.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_yaml::Value;

use crate::files::{self, Entry};
use crate::frontmatter::{self, Parsed};
use crate::git::{Change, Git};
use crate::index::{Index, Row, Tx};
use crate::ScriptsError;

/// The `state` key of the commit the index was last reconciled against.
const GIT_COMMIT: &str = "git.commit";

/// How much work a sync may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every command: stat, and only on a difference read what changed.
    Cheap,
    /// `ktx script reconcile`: git's changes (or every file's hash without git) plus the stat.
    Full,
    /// `ktx script rebuild`: the index is empty; every file is read.
    Rebuild,
}

/// How the changed files were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The stat of every file matched its row: nothing was read.
    Unchanged,
    /// Stat differences (no git work tree).
    Stat,
    /// Stat differences plus `git diff --name-status -M` against the indexed commit.
    Git,
    /// Every file hashed (no git, or the indexed commit is unknown to git).
    Hash,
    /// The index was recreated from the files.
    Rebuild,
}

/// What a sync changed. Paths are `scripts/<slug>.py`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// How changes were found (`None` only in a default value).
    pub method: Option<Method>,
    /// New scripts.
    pub added: Vec<String>,
    /// Scripts whose content changed.
    pub modified: Vec<String>,
    /// Renamed scripts (same id), `[from, to]`.
    pub renamed: Vec<[String; 2]>,
    /// Scripts whose file is gone.
    pub removed: Vec<String>,
    /// Files ktx wrote an id into.
    pub ids_written: Vec<String>,
    /// Frontmatter warnings of the files read, `path:line: message`.
    pub warnings: Vec<String>,
    /// Scripts in the index afterwards.
    pub scripts: usize,
}

impl SyncReport {
    /// Whether the index changed.
    pub fn changed(&self) -> bool {
        !(self.added.is_empty()
            && self.modified.is_empty()
            && self.renamed.is_empty()
            && self.removed.is_empty())
    }
}

fn io_error(root: &Path, what: &str, e: std::io::Error) -> ScriptsError {
    ScriptsError::new(
        format!("cannot {what} in {}: {e}", root.display()),
        "check the permissions of the project's scripts/ directory",
    )
}

/// Whether `disk` matches `rows` by path, size and mtime.
fn unchanged(disk: &[Entry], rows: &[Row]) -> bool {
    if disk.len() != rows.len() {
        return false;
    }
    let by_path: HashMap<&str, &Row> = rows.iter().map(|r| (r.path.as_str(), r)).collect();
    disk.iter().all(|e| {
        by_path
            .get(e.rel.as_str())
            .is_some_and(|r| r.size == e.size && r.mtime_ns == e.mtime_ns)
    })
}

/// A new id: `s-` and 20 hex digits of a hash of the time, the process, a counter and the path.
pub fn new_id(rel: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{nanos}:{}:{}:{rel}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    format!("s-{}", &files::sha256_hex(seed.as_bytes())[..20])
}

/// The row for a file that was read.
pub(crate) fn row_of(id: &str, entry: &Entry, hash: &str, parsed: &Parsed) -> Row {
    let m = &parsed.meta;
    Row {
        id: id.to_string(),
        path: entry.rel.clone(),
        slug: entry.slug.clone(),
        title: m.title.clone(),
        kind: m.kind,
        entrypoint: m.entrypoint.clone(),
        enabled: m.enabled,
        version: m.version.clone(),
        updated_at: m.updated_at.clone(),
        description: m.description.clone(),
        timeout: m.timeout,
        content_hash: hash.to_string(),
        size: entry.size,
        mtime_ns: entry.mtime_ns,
        warnings: parsed
            .warnings
            .iter()
            .map(|w| format!("{}:{}: {}", entry.rel, w.line, w.message))
            .collect(),
    }
}

/// A file that must be read.
struct Pending {
    entry: Entry,
    source: String,
    hash: String,
    parsed: Parsed,
}

fn read(root: &Path, entry: &Entry) -> Result<Pending, ScriptsError> {
    let bytes = std::fs::read(files::abs_path(root, &entry.rel))
        .map_err(|e| io_error(root, &format!("read {}", entry.rel), e))?;
    let hash = files::sha256_hex(&bytes);
    let source = String::from_utf8_lossy(&bytes).into_owned();
    let mut parsed = frontmatter::parse(&source, &entry.slug);
    if std::str::from_utf8(&bytes).is_err() {
        parsed.warnings.insert(
            0,
            frontmatter::Warning {
                line: 1,
                message: "the file is not valid UTF-8; Python will refuse it".into(),
            },
        );
    }
    Ok(Pending {
        entry: entry.clone(),
        source,
        hash,
        parsed,
    })
}

/// Brings `index` in line with the files under `root` ([`Mode`]).
pub fn sync(root: &Path, index: &mut Index, mode: Mode) -> Result<SyncReport, ScriptsError> {
    if mode == Mode::Cheap {
        let disk = files::list(root).map_err(|e| io_error(root, "list scripts/", e))?;
        let rows = index.rows()?;
        if unchanged(&disk, &rows) {
            return Ok(SyncReport {
                method: Some(Method::Unchanged),
                scripts: rows.len(),
                ..SyncReport::default()
            });
        }
    }
    index.write(|tx| sync_locked(root, tx, mode))
}

fn sync_locked(root: &Path, tx: &Tx<'_>, mode: Mode) -> Result<SyncReport, ScriptsError> {
    // Listed again under the write lock: another ktx may have synced meanwhile.
    let disk = files::list(root).map_err(|e| io_error(root, "list scripts/", e))?;
    if mode == Mode::Rebuild {
        tx.clear()?;
    }
    let rows = tx.rows()?;
    if mode == Mode::Cheap && unchanged(&disk, &rows) {
        return Ok(SyncReport {
            method: Some(Method::Unchanged),
            scripts: rows.len(),
            ..SyncReport::default()
        });
    }

    // 1. What git says, if anything.
    let git = Git::open(root);
    let mut git_touched: HashSet<String> = HashSet::new();
    let mut renamed_from: HashMap<String, String> = HashMap::new();
    let mut method = if mode == Mode::Rebuild {
        Method::Rebuild
    } else {
        Method::Stat
    };
    if let Some(g) = &git {
        if mode != Mode::Rebuild {
            let since = tx.state(GIT_COMMIT)?;
            match since.and_then(|c| g.changes(&c)) {
                Some(changes) => {
                    method = Method::Git;
                    for c in changes {
                        match c {
                            Change::Touched(p) => {
                                git_touched.insert(p);
                            }
                            Change::Deleted(_) => {}
                            Change::Renamed { from, to } => {
                                git_touched.insert(to.clone());
                                renamed_from.insert(to, from);
                            }
                        }
                    }
                }
                None if mode == Mode::Full => method = Method::Hash,
                None => {}
            }
        }
    } else if mode == Mode::Full {
        method = Method::Hash;
    }
    let read_all = matches!(method, Method::Hash | Method::Rebuild);

    // 2. Read what may have changed.
    let by_path: HashMap<&str, &Row> = rows.iter().map(|r| (r.path.as_str(), r)).collect();
    let on_disk: HashSet<&str> = disk.iter().map(|e| e.rel.as_str()).collect();
    let mut report = SyncReport {
        method: Some(method),
        ..SyncReport::default()
    };
    let mut claimed: HashMap<String, String> = HashMap::new(); // id -> path
    let mut pending = Vec::new();
    let mut restat = Vec::new();
    for e in &disk {
        let row = by_path.get(e.rel.as_str());
        let stat_same = row.is_some_and(|r| r.size == e.size && r.mtime_ns == e.mtime_ns);
        if stat_same && !read_all && !git_touched.contains(&e.rel) {
            claimed.insert(row.unwrap().id.clone(), e.rel.clone());
            continue;
        }
        let p = read(root, e)?;
        match row {
            // The row was made from these very bytes: only the stat is new.
            Some(r) if r.content_hash == p.hash => {
                claimed.insert(r.id.clone(), e.rel.clone());
                if !stat_same {
                    restat.push(Row {
                        size: e.size,
                        mtime_ns: e.mtime_ns,
                        ..(*r).clone()
                    });
                }
            }
            _ => pending.push(p),
        }
    }

    // 3. Ids for the files read.
    let gone: Vec<&Row> = rows
        .iter()
        .filter(|r| !on_disk.contains(r.path.as_str()))
        .collect();
    let gone_by_id: HashMap<&str, &Row> = gone.iter().map(|r| (r.id.as_str(), *r)).collect();
    // Files that still declare their own row's id go first: when a file was copied, the
    // original keeps the id whatever the copy's name.
    pending.sort_by_key(|p| {
        let own = by_path.get(p.entry.rel.as_str()).map(|r| r.id.as_str());
        own.is_none() || own != p.parsed.meta.id.as_deref()
    });
    for p in pending {
        let declared = p.parsed.meta.id.clone();
        let mut warnings = Vec::new();
        let usable = |id: &str, claimed: &HashMap<String, String>| !claimed.contains_key(id);
        let id = match &declared {
            Some(id) if usable(id, &claimed) => id.clone(),
            _ => {
                if let Some(id) = &declared {
                    warnings.push(format!(
                        "{}: id {id} is already used by {}; this file gets a new id",
                        p.entry.rel, claimed[id]
                    ));
                }
                let at_path = by_path
                    .get(p.entry.rel.as_str())
                    .map(|r| r.id.clone())
                    .filter(|id| usable(id, &claimed));
                let from_git = renamed_from
                    .get(&p.entry.rel)
                    .and_then(|from| gone.iter().find(|r| &r.path == from))
                    .map(|r| r.id.clone())
                    .filter(|id| usable(id, &claimed));
                let same_hash = gone
                    .iter()
                    .find(|r| r.content_hash == p.hash && usable(&r.id, &claimed))
                    .map(|r| r.id.clone());
                at_path
                    .or(from_git)
                    .or(same_hash)
                    .unwrap_or_else(|| new_id(&p.entry.rel))
            }
        };
        let (entry, hash, parsed) = if declared.as_deref() != Some(&id) {
            write_id(root, p, &id, &mut report, &mut warnings)?
        } else {
            (p.entry, p.hash, p.parsed)
        };
        claimed.insert(id.clone(), entry.rel.clone());
        let mut row = row_of(&id, &entry, &hash, &parsed);
        row.warnings.extend(warnings);
        report.warnings.extend(row.warnings.iter().cloned());
        match (by_path.get(entry.rel.as_str()), gone_by_id.get(id.as_str())) {
            (_, Some(old)) => report.renamed.push([old.path.clone(), entry.rel.clone()]),
            (Some(_), None) => report.modified.push(entry.rel.clone()),
            (None, None) => report.added.push(entry.rel.clone()),
        }
        tx.upsert(&row)?;
    }
    for r in restat {
        tx.upsert(&r)?;
    }

    // 4. Rows whose file is gone and whose id nobody took.
    for r in &gone {
        if !claimed.contains_key(&r.id) {
            tx.delete(&r.id)?;
            report.removed.push(r.path.clone());
        }
    }
    tx.set_state(GIT_COMMIT, git.as_ref().map(|g| g.head.as_str()))?;
    report.scripts = claimed.len();
    for list in [&mut report.added, &mut report.modified, &mut report.removed] {
        list.sort();
    }
    report.renamed.sort();
    Ok(report)
}

/// Writes `id` into the file of `p` (when its frontmatter can be edited), returning the entry,
/// hash and frontmatter of what is now on disk.
fn write_id(
    root: &Path,
    p: Pending,
    id: &str,
    report: &mut SyncReport,
    warnings: &mut Vec<String>,
) -> Result<(Entry, String, Parsed), ScriptsError> {
    let Some(text) = frontmatter::set_field(&p.source, &p.entry.slug, "id", &Value::from(id))
    else {
        warnings.push(format!(
            "{}: the frontmatter could not be read, so the id {id} is not written into the file (fix the frontmatter; it is written then)",
            p.entry.rel
        ));
        return Ok((p.entry, p.hash, p.parsed));
    };
    let path = files::abs_path(root, &p.entry.rel);
    files::write(&path, &text).map_err(|e| io_error(root, &format!("write {}", p.entry.rel), e))?;
    let entry = files::stat(root, &p.entry.rel).map_err(|e| io_error(root, "stat a script", e))?;
    report.ids_written.push(entry.rel.clone());
    let parsed = frontmatter::parse(&text, &entry.slug);
    Ok((entry, files::sha256_hex(text.as_bytes()), parsed))
}
