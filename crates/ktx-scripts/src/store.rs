//! [`Scripts`]: a project's scripts, as every command uses them. Opening one syncs the index
//! cheaply ([`sync::Mode::Cheap`]); every change made through it writes the file and the row
//! in one index transaction, so the next command finds both in agreement.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::defaults::{SeedReport, DEFAULTS};
use crate::files;
use crate::frontmatter::{self, Kind};
use crate::index::{Index, Row, StatsRow, INDEX_FILE};
use crate::sync::{self, Mode, SyncReport};
use crate::template;
use crate::{dotktx, ScriptsError};

/// A project's scripts and their index.
pub struct Scripts {
    root: PathBuf,
    index: Index,
    opened: SyncReport,
}

fn io_err(what: String, e: std::io::Error) -> ScriptsError {
    ScriptsError::new(
        format!("{what}: {e}"),
        "check the permissions of the project directory",
    )
}

impl Scripts {
    /// The scripts of the project at `root` (a directory holding `ktx.yaml`): creates `.ktx/`
    /// when needed and brings the index up to date with the files (cheaply).
    pub fn open(root: &Path) -> Result<Scripts, ScriptsError> {
        Scripts::open_reconciled(root, Mode::Cheap)
    }

    /// [`Scripts::open`] with a sync of the given depth: [`Mode::Full`] is `ktx script
    /// reconcile` (git's changes, or a content-hash scan), reported by [`Scripts::opened`].
    pub fn open_reconciled(root: &Path, mode: Mode) -> Result<Scripts, ScriptsError> {
        if mode == Mode::Rebuild {
            return Scripts::rebuild(root).map(|(s, _)| s);
        }
        let dir = dotktx::ensure(root)
            .map_err(|e| io_err(format!("cannot create {}/.ktx", root.display()), e))?;
        let mut index = Index::open(&dir.join(INDEX_FILE))?;
        let opened = sync::sync(root, &mut index, mode)?;
        Ok(Scripts {
            root: root.to_path_buf(),
            index,
            opened,
        })
    }

    /// Deletes the index (whatever state it is in: corrupt, or from a newer ktx) and creates it
    /// again from the files. The stats of earlier runs go with it.
    pub fn rebuild(root: &Path) -> Result<(Scripts, SyncReport), ScriptsError> {
        let dir = dotktx::ensure(root)
            .map_err(|e| io_err(format!("cannot create {}/.ktx", root.display()), e))?;
        let db = dir.join(INDEX_FILE);
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", db.display()));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("cannot remove {}", path.display()), e)),
            }
        }
        let mut index = Index::open(&db)?;
        let report = sync::sync(root, &mut index, Mode::Rebuild)?;
        Ok((
            Scripts {
                root: root.to_path_buf(),
                index,
                opened: report.clone(),
            },
            report,
        ))
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The index file.
    pub fn index_path(&self) -> &Path {
        self.index.path()
    }

    /// What the sync at [`Scripts::open`] changed (its warnings are worth printing).
    pub fn opened(&self) -> &SyncReport {
        &self.opened
    }

    /// Every script, by slug.
    pub fn list(&self) -> Result<Vec<Row>, ScriptsError> {
        self.index.rows()
    }

    /// The script `slug`, or an error naming close slugs.
    pub fn get(&self, slug: &str) -> Result<Row, ScriptsError> {
        let rows = self.list()?;
        if let Some(r) = rows.iter().find(|r| r.slug == slug) {
            return Ok(r.clone());
        }
        let slugs: Vec<&str> = rows.iter().map(|r| r.slug.as_str()).collect();
        Err(ScriptsError::new(
            format!(
                "no script {slug:?} in {}",
                self.root.join(files::SCRIPTS_DIR).display()
            ),
            "list the scripts with `ktx script list`, or create one with `ktx script new SLUG --kind macro|transform|utility`",
        )
        .suggest(close_names(slug, &slugs)))
    }

    /// The absolute path of a row's file.
    pub fn file_of(&self, row: &Row) -> PathBuf {
        files::abs_path(&self.root, &row.path)
    }

    /// Creates `scripts/<slug>.py` from the template for `kind`, and its row.
    pub fn create(&mut self, slug: &str, kind: Kind) -> Result<Row, ScriptsError> {
        if !template::is_valid_slug(slug) {
            return Err(ScriptsError::new(
                format!("{slug:?} is not a valid script slug"),
                "use 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit (e.g. format_revenue)",
            ));
        }
        let rel = files::rel_path(slug);
        let path = files::abs_path(&self.root, &rel);
        if path.exists() {
            return Err(ScriptsError::new(
                format!("{} already exists", path.display()),
                format!("pick another slug, or edit the file (`ktx script show {slug}`)"),
            ));
        }
        let dir = self.root.join(files::SCRIPTS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
        let id = sync::new_id(&rel);
        let text = template::new_script(slug, kind, &id, &ktx_base::time::now_rfc3339());
        self.write_script(&rel, &id, &text)
    }

    /// Writes `text` to `rel` and its row (id `id`) in one transaction.
    fn write_script(&mut self, rel: &str, id: &str, text: &str) -> Result<Row, ScriptsError> {
        let root = self.root.clone();
        self.index.write(|tx| {
            let path = files::abs_path(&root, rel);
            files::write(&path, text)
                .map_err(|e| io_err(format!("cannot write {}", path.display()), e))?;
            let entry = files::stat(&root, rel)
                .map_err(|e| io_err(format!("cannot stat {}", path.display()), e))?;
            let parsed = frontmatter::parse(text, &entry.slug);
            let row = sync::row_of(id, &entry, &files::sha256_hex(text.as_bytes()), &parsed);
            tx.upsert(&row)?;
            Ok(row)
        })
    }

    /// Sets `enabled` in the script's frontmatter (and `updatedAt`). `Ok((row, false))` when it
    /// already had that value.
    pub fn set_enabled(&mut self, slug: &str, enabled: bool) -> Result<(Row, bool), ScriptsError> {
        let row = self.get(slug)?;
        if row.enabled == enabled && row.warnings.iter().all(|w| !w.contains(": enabled:")) {
            return Ok((row, false));
        }
        let path = self.file_of(&row);
        let source = std::fs::read_to_string(&path)
            .map_err(|e| io_err(format!("cannot read {}", path.display()), e))?;
        let edited = frontmatter::set_field(&source, slug, "enabled", &Value::Bool(enabled))
            .and_then(|s| {
                frontmatter::set_field(
                    &s,
                    slug,
                    "updatedAt",
                    &Value::from(ktx_base::time::now_rfc3339()),
                )
            })
            .ok_or_else(|| {
                ScriptsError::new(
                    format!(
                        "cannot change {}: its frontmatter is not valid YAML",
                        path.display()
                    ),
                    format!("fix the frontmatter first (`ktx script check {slug}` shows where)"),
                )
            })?;
        let row = self.write_script(&row.path.clone(), &row.id.clone(), &edited)?;
        Ok((row, true))
    }

    /// Removes the script: its file moves to `.ktx/trash/<slug>.<stamp>.py` (returned) and its
    /// row is deleted.
    pub fn remove(&mut self, slug: &str) -> Result<(Row, PathBuf), ScriptsError> {
        let row = self.get(slug)?;
        let trash = self.root.join(dotktx::DOT_KTX).join("trash");
        std::fs::create_dir_all(&trash)
            .map_err(|e| io_err(format!("cannot create {}", trash.display()), e))?;
        let to = trash.join(format!("{slug}.{}.py", ktx_base::time::now_stamp()));
        let from = self.file_of(&row);
        let id = row.id.clone();
        self.index.write(|tx| {
            std::fs::rename(&from, &to).map_err(|e| {
                io_err(
                    format!("cannot move {} to {}", from.display(), to.display()),
                    e,
                )
            })?;
            tx.delete(&id)
        })?;
        Ok((row, to))
    }

    /// Adds the missing default scripts and updates the unmodified ones ([`crate::defaults`]).
    pub fn seed(&mut self) -> Result<SeedReport, ScriptsError> {
        let dir = self.root.join(files::SCRIPTS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
        let mut report = SeedReport::default();
        for d in DEFAULTS {
            let rel = files::rel_path(d.slug);
            let path = files::abs_path(&self.root, &rel);
            let list = match std::fs::read(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => &mut report.added,
                Err(e) => return Err(io_err(format!("cannot read {}", path.display()), e)),
                Ok(bytes) if bytes == d.source.as_bytes() => {
                    report.current.push(d.slug.to_string());
                    continue;
                }
                Ok(bytes) if d.is_shipped(&bytes) => &mut report.updated,
                Ok(_) => {
                    report.kept.push(d.slug.to_string());
                    continue;
                }
            };
            list.push(d.slug.to_string());
            files::write(&path, d.source)
                .map_err(|e| io_err(format!("cannot write {}", path.display()), e))?;
        }
        self.opened = sync::sync(&self.root, &mut self.index, Mode::Cheap)?;
        Ok(report)
    }

    /// Replaces the stats of the scripts in `rows` (the last run of each).
    pub fn record_stats(&mut self, rows: &[StatsRow]) -> Result<(), ScriptsError> {
        self.index.write(|tx| tx.record_stats(rows))
    }

    /// The stats of each script's last run.
    pub fn stats(&self) -> Result<Vec<StatsRow>, ScriptsError> {
        self.index.stats()
    }
}

/// Names within edit distance 2 of `name` (or sharing its prefix), closest first, at most 3.
pub fn close_names(name: &str, names: &[&str]) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .map(|n| (levenshtein(name, n), *n))
        .filter(|(d, n)| *d <= 2 || (name.len() >= 3 && n.starts_with(name)))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        assert_eq!(
            close_names("slugfy", &["slugify", "top_rows", "format_number"]),
            vec!["slugify"]
        );
        assert_eq!(
            close_names("form", &["format_number", "x"]),
            vec!["format_number"]
        );
        assert!(close_names("zzzzzz", &["slugify"]).is_empty());
    }
}
