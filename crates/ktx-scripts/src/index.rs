//! The SQLite index of a project's scripts: `<project>/.ktx/scripts.db`, WAL, schema-versioned
//! by `PRAGMA user_version` with forward-only migrations ([`MIGRATIONS`]).
//!
//! The index is derived data: the files are the source of truth and `ktx script rebuild`
//! recreates it from them. It holds one row per file (what the frontmatter said, with defaults
//! applied, plus the size, mtime and sha256 that make the cheap "did anything change" check
//! possible), a small key/value `state` table (the git commit last reconciled against) and the
//! counters of the last `ktx script run` per script (`stats`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::frontmatter::Kind;
use crate::ScriptsError;

/// The index file's name inside `.ktx/`.
pub const INDEX_FILE: &str = "scripts.db";

/// The schema, one migration per version: migration `i` takes `user_version` from `i` to
/// `i + 1`. Never edit a released entry; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // v1
    "CREATE TABLE scripts (
         id TEXT PRIMARY KEY,
         path TEXT NOT NULL UNIQUE,
         slug TEXT NOT NULL,
         title TEXT NOT NULL,
         kind TEXT NOT NULL,
         entrypoint TEXT NOT NULL,
         enabled INTEGER NOT NULL,
         version TEXT NOT NULL,
         updated_at TEXT,
         description TEXT NOT NULL,
         timeout_ms INTEGER,
         content_hash TEXT NOT NULL,
         size INTEGER NOT NULL,
         mtime_ns INTEGER NOT NULL,
         warnings TEXT NOT NULL DEFAULT '[]'
     );
     CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE stats (
         script_id TEXT PRIMARY KEY,
         slug TEXT NOT NULL,
         calls INTEGER NOT NULL,
         errors INTEGER NOT NULL,
         timeouts INTEGER NOT NULL,
         restarts INTEGER NOT NULL,
         p50_us INTEGER,
         p95_us INTEGER,
         recorded_at TEXT NOT NULL
     );",
];

/// The schema version this ktx writes.
pub fn schema_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// One indexed script.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Stable id.
    pub id: String,
    /// Path relative to the project, with `/` separators (`scripts/<slug>.py`).
    pub path: String,
    /// Slug (the file stem).
    pub slug: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: Kind,
    /// Entrypoint function name.
    pub entrypoint: String,
    /// Enabled.
    pub enabled: bool,
    /// The script's version string.
    pub version: String,
    /// RFC 3339 time ktx last changed it.
    pub updated_at: Option<String>,
    /// Description.
    pub description: String,
    /// Per-script deadline.
    pub timeout: Option<Duration>,
    /// sha256 of the file's bytes, lowercase hex.
    pub content_hash: String,
    /// File size in bytes when indexed.
    pub size: u64,
    /// File mtime in nanoseconds since the Unix epoch when indexed.
    pub mtime_ns: i64,
    /// Frontmatter warnings, each `path:line: message`.
    pub warnings: Vec<String>,
}

/// The counters of the last run of one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    /// Script id.
    pub script_id: String,
    /// Slug at the time of the run.
    pub slug: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that returned an error (any kind).
    pub errors: u64,
    /// Calls that hit their deadline.
    pub timeouts: u64,
    /// Worker restarts.
    pub restarts: u64,
    /// Median latency, microseconds.
    pub p50_us: Option<u64>,
    /// 95th percentile latency, microseconds.
    pub p95_us: Option<u64>,
    /// When the run ended (RFC 3339).
    pub recorded_at: String,
}

/// An open index.
pub struct Index {
    conn: Connection,
    path: PathBuf,
}

fn db_error(path: &Path, e: rusqlite::Error) -> ScriptsError {
    ScriptsError::new(
        format!("the script index {} cannot be used: {e}", path.display()),
        "rebuild it from the files with `ktx script rebuild` (nothing is lost: the files are the source of truth)",
    )
}

impl Index {
    /// Opens (creating when absent) the index at `path`, in WAL mode, migrated to
    /// [`schema_version`]. An index written by a newer ktx is refused with the fix.
    pub fn open(path: &Path) -> Result<Index, ScriptsError> {
        let err = |e| db_error(path, e);
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let current: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if current > schema_version() {
            return Err(ScriptsError::new(
                format!(
                    "the script index {} has schema version {current}, newer than this ktx knows ({})",
                    path.display(),
                    schema_version()
                ),
                "upgrade ktx, or recreate the index for this version with `ktx script rebuild`",
            ));
        }
        if current < schema_version() {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            // Re-read under the write lock: another ktx may have migrated meanwhile.
            let current: u32 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(err)?;
            for (v, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                tx.execute_batch(sql).map_err(err)?;
                tx.pragma_update(None, "user_version", v as u32 + 1)
                    .map_err(err)?;
            }
            tx.commit().map_err(err)?;
        }
        Ok(Index {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> ScriptsError {
        db_error(&self.path, e)
    }

    /// Runs `f` inside one write transaction (`BEGIN IMMEDIATE`: a second ktx waits for the
    /// first rather than interleaving), committed when `f` succeeds.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, ScriptsError>,
    ) -> Result<T, ScriptsError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&path, e))?;
        let out = f(&Tx {
            tx: &tx,
            path: &path,
        })?;
        tx.commit().map_err(|e| db_error(&path, e))?;
        Ok(out)
    }

    /// Every row, ordered by slug.
    pub fn rows(&self) -> Result<Vec<Row>, ScriptsError> {
        read_rows(&self.conn).map_err(|e| self.err(e))
    }

    /// A `state` value.
    pub fn state(&self, key: &str) -> Result<Option<String>, ScriptsError> {
        read_state(&self.conn, key).map_err(|e| self.err(e))
    }

    /// The stats of the last run, ordered by slug.
    pub fn stats(&self) -> Result<Vec<StatsRow>, ScriptsError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT script_id, slug, calls, errors, timeouts, restarts, p50_us, p95_us, recorded_at
                 FROM stats ORDER BY slug",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                let n = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                let opt = |i| {
                    r.get::<_, Option<i64>>(i)
                        .map(|v| v.map(|v| v.max(0) as u64))
                };
                Ok(StatsRow {
                    script_id: r.get(0)?,
                    slug: r.get(1)?,
                    calls: n(2)?,
                    errors: n(3)?,
                    timeouts: n(4)?,
                    restarts: n(5)?,
                    p50_us: opt(6)?,
                    p95_us: opt(7)?,
                    recorded_at: r.get(8)?,
                })
            })
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

/// The write side of [`Index::write`].
pub struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    path: &'a Path,
}

impl Tx<'_> {
    fn err(&self, e: rusqlite::Error) -> ScriptsError {
        db_error(self.path, e)
    }

    /// Every row (as seen inside the transaction).
    pub fn rows(&self) -> Result<Vec<Row>, ScriptsError> {
        read_rows(self.tx).map_err(|e| self.err(e))
    }

    /// Inserts or replaces the row with `row.id` (a row holding the same path under another id
    /// is replaced too: the path is unique).
    pub fn upsert(&self, row: &Row) -> Result<(), ScriptsError> {
        let warnings = serde_json::to_string(&row.warnings).unwrap_or_else(|_| "[]".into());
        self.tx
            .execute(
                "DELETE FROM scripts WHERE path = ?1 AND id <> ?2",
                params![row.path, row.id],
            )
            .and_then(|_| {
                self.tx.execute(
                    "INSERT OR REPLACE INTO scripts (id, path, slug, title, kind, entrypoint, enabled,
                     version, updated_at, description, timeout_ms, content_hash, size, mtime_ns, warnings)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                    params![
                        row.id,
                        row.path,
                        row.slug,
                        row.title,
                        row.kind.as_str(),
                        row.entrypoint,
                        row.enabled,
                        row.version,
                        row.updated_at,
                        row.description,
                        row.timeout.map(|t| t.as_millis() as i64),
                        row.content_hash,
                        row.size as i64,
                        row.mtime_ns,
                        warnings,
                    ],
                )
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Deletes the row `id` (and its stats).
    pub fn delete(&self, id: &str) -> Result<(), ScriptsError> {
        self.tx
            .execute("DELETE FROM scripts WHERE id = ?1", [id])
            .and_then(|_| {
                self.tx
                    .execute("DELETE FROM stats WHERE script_id = ?1", [id])
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Deletes every script row (stats are kept: they are keyed by id, which the files keep).
    pub fn clear(&self) -> Result<(), ScriptsError> {
        self.tx
            .execute("DELETE FROM scripts", [])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// A `state` value.
    pub fn state(&self, key: &str) -> Result<Option<String>, ScriptsError> {
        read_state(self.tx, key).map_err(|e| self.err(e))
    }

    /// Sets (or with `None` removes) a `state` value.
    pub fn set_state(&self, key: &str, value: Option<&str>) -> Result<(), ScriptsError> {
        let r = match value {
            Some(v) => self.tx.execute(
                "INSERT OR REPLACE INTO state (key, value) VALUES (?1, ?2)",
                [key, v],
            ),
            None => self.tx.execute("DELETE FROM state WHERE key = ?1", [key]),
        };
        r.map(|_| ()).map_err(|e| self.err(e))
    }

    /// Replaces the stats of the scripts in `rows` (the other scripts' last runs stay).
    pub fn record_stats(&self, rows: &[StatsRow]) -> Result<(), ScriptsError> {
        for s in rows {
            self.tx
                .execute(
                    "INSERT OR REPLACE INTO stats (script_id, slug, calls, errors, timeouts, restarts,
                     p50_us, p95_us, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        s.script_id,
                        s.slug,
                        s.calls as i64,
                        s.errors as i64,
                        s.timeouts as i64,
                        s.restarts as i64,
                        s.p50_us.map(|v| v as i64),
                        s.p95_us.map(|v| v as i64),
                        s.recorded_at
                    ],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

fn read_state(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM state WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

fn read_rows(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut st = conn.prepare_cached(
        "SELECT id, path, slug, title, kind, entrypoint, enabled, version, updated_at, description,
         timeout_ms, content_hash, size, mtime_ns, warnings FROM scripts ORDER BY slug, path",
    )?;
    let rows = st.query_map([], |r| {
        let kind: String = r.get(4)?;
        let timeout: Option<i64> = r.get(10)?;
        let warnings: String = r.get(14)?;
        let size: i64 = r.get(12)?;
        Ok(Row {
            id: r.get(0)?,
            path: r.get(1)?,
            slug: r.get(2)?,
            title: r.get(3)?,
            kind: Kind::parse(&kind).unwrap_or(Kind::Utility),
            entrypoint: r.get(5)?,
            enabled: r.get(6)?,
            version: r.get(7)?,
            updated_at: r.get(8)?,
            description: r.get(9)?,
            timeout: timeout.map(|ms| Duration::from_millis(ms.max(0) as u64)),
            content_hash: r.get(11)?,
            size: size.max(0) as u64,
            mtime_ns: r.get(13)?,
            warnings: serde_json::from_str(&warnings).unwrap_or_default(),
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_a_newer_schema_is_refused_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(INDEX_FILE);
        let idx = Index::open(&path).unwrap();
        let mode: String = idx
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(idx);
        // Reopening does not re-run a migration (it would fail: the tables exist).
        let idx = Index::open(&path).unwrap();
        idx.conn
            .pragma_update(None, "user_version", schema_version() + 1)
            .unwrap();
        drop(idx);
        let err = Index::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer than this ktx"), "{err}");
        assert!(err.contains("ktx script rebuild"), "{err}");
    }
}
