//! What git says changed under `scripts/` since the commit the index was reconciled against:
//! `git diff --name-status -M <commit>` (committed and uncommitted changes against the working
//! tree, renames paired by content similarity) plus untracked files. Every git call goes
//! through ktx-runtime's bounded process runner (deadline, process-group kill, capped output).
//!
//! No git on PATH, a project outside a work tree, a repository without commits or an indexed
//! commit that no longer exists: [`Git::open`] or [`Git::changes`] answers `None` and the
//! caller falls back to the content-hash scan.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ktx_runtime::process::{run_bounded, Limits};

/// How long one git command may run.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// One change git reports under `scripts/` (paths relative to the project, `/`-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Added, modified, type-changed or untracked: read the file again.
    Touched(String),
    /// Deleted.
    Deleted(String),
    /// Renamed (possibly also edited): the row keeps its id.
    Renamed {
        /// The old path.
        from: String,
        /// The new path.
        to: String,
    },
}

/// The project's git work tree, when it has one with a commit.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    /// `HEAD`'s commit.
    pub head: String,
}

fn git(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(args)
        // Never page, never ask for credentials, never read the user's locale for messages.
        .env("GIT_PAGER", "cat")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C");
    let out = run_bounded(&mut cmd, None, &Limits::new(GIT_TIMEOUT)).ok()?;
    (out.success() && !out.truncated).then_some(out.stdout)
}

fn nul_fields(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

impl Git {
    /// The work tree holding `project`, with its `HEAD` commit; `None` without git, outside a
    /// work tree or before the first commit.
    pub fn open(project: &Path) -> Option<Git> {
        let head = git(
            project,
            &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
        )?;
        let head = String::from_utf8(head).ok()?.trim().to_string();
        (!head.is_empty()).then(|| Git {
            dir: project.to_path_buf(),
            head,
        })
    }

    /// Changes under `scripts/` between `since` and the working tree, plus untracked files.
    /// `None` when `since` is not a commit of this repository (e.g. after a history rewrite).
    pub fn changes(&self, since: &str) -> Option<Vec<Change>> {
        git(
            &self.dir,
            &["cat-file", "-e", &format!("{since}^{{commit}}")],
        )?;
        let diff = git(
            &self.dir,
            &[
                "-c",
                "core.quotepath=off",
                "diff",
                "--relative",
                "--name-status",
                "-M",
                "-z",
                "--no-ext-diff",
                since,
                "--",
                "scripts",
            ],
        )?;
        let mut changes = parse_name_status(&nul_fields(&diff));
        let untracked = git(
            &self.dir,
            &[
                "ls-files",
                "--others",
                "--exclude-standard",
                "-z",
                "--",
                "scripts",
            ],
        )?;
        changes.extend(nul_fields(&untracked).into_iter().map(Change::Touched));
        Some(changes)
    }
}

/// `git diff --name-status -z` fields: `STATUS path` or `R<score> from to` / `C<score> from to`.
fn parse_name_status(fields: &[String]) -> Vec<Change> {
    let mut out = Vec::new();
    let mut it = fields.iter();
    while let Some(status) = it.next() {
        match status.as_bytes().first() {
            Some(b'R') => {
                if let (Some(from), Some(to)) = (it.next(), it.next()) {
                    out.push(Change::Renamed {
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
            }
            Some(b'C') => {
                let _from = it.next();
                if let Some(to) = it.next() {
                    out.push(Change::Touched(to.clone()));
                }
            }
            Some(b'D') => {
                if let Some(p) = it.next() {
                    out.push(Change::Deleted(p.clone()));
                }
            }
            Some(_) => {
                if let Some(p) = it.next() {
                    out.push(Change::Touched(p.clone()));
                }
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_status_fields_become_changes() {
        let f: Vec<String> = [
            "M",
            "scripts/a.py",
            "R087",
            "scripts/b.py",
            "scripts/c.py",
            "D",
            "scripts/d.py",
            "A",
            "scripts/e.py",
            "C100",
            "scripts/a.py",
            "scripts/f.py",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            parse_name_status(&f),
            vec![
                Change::Touched("scripts/a.py".into()),
                Change::Renamed {
                    from: "scripts/b.py".into(),
                    to: "scripts/c.py".into()
                },
                Change::Deleted("scripts/d.py".into()),
                Change::Touched("scripts/e.py".into()),
                Change::Touched("scripts/f.py".into()),
            ]
        );
    }
}
