//! The script index's figures (`ktx-scripts`, issue 17): how long bringing the index in line
//! with `scripts/*.py` takes for 100 and 1,000 scripts, driven through the library the CLI
//! uses (`Scripts::open`, which every `ktx script` command runs first).
//!
//! Rows per size: the cheap check with nothing changed (goal <= 10 ms for 100 scripts: open
//! the index, list and stat the files, compare), the same with 5 files edited (stat, hash and
//! parse only those), the full reconcile without git (every file hashed), and the full
//! reconcile in a git work tree with 5 files edited since the indexed commit.

use super::report::Row;
use super::{progress, series, Plan};
use anyhow::{bail, Context, Result};
use ktx_scripts::sync::Mode;
use ktx_scripts::Scripts;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Files edited before each "changed" sample.
const CHANGED: usize = 5;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// A project with `n` scripts (ids already written), indexed once.
fn project(dir: &Path, n: usize) -> Result<()> {
    std::fs::create_dir_all(dir.join("scripts"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("ktx.yaml"), "connections: {}\n")?;
    for i in 0..n {
        let text = format!(
            "\"\"\"\n---\nid: bench-{i:05}\ntitle: Script {i}\nkind: utility\nversion: 1\n---\n\"\"\"\n\n\ndef main(context):\n    return {{\"n\": {i}, \"context\": context}}\n"
        );
        std::fs::write(dir.join(format!("scripts/s{i:05}.py")), text)?;
    }
    let opened = Scripts::open(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    if opened.list().map_err(|e| anyhow::anyhow!("{e}"))?.len() != n {
        bail!("the bench project did not index {n} scripts");
    }
    Ok(())
}

/// Appends to `CHANGED` files (a different script each round).
fn edit(dir: &Path, n: usize, round: usize) -> Result<()> {
    for k in 0..CHANGED {
        let i = (round * CHANGED + k) % n;
        let path = dir.join(format!("scripts/s{i:05}.py"));
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&format!("# edit {round}\n"));
        std::fs::write(&path, text)?;
    }
    Ok(())
}

fn open(dir: &Path, mode: Mode) -> Result<Scripts> {
    Scripts::open_reconciled(dir, mode).map_err(|e| anyhow::anyhow!("{e}"))
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Appends the `scripts.*` rows.
pub(super) fn scripts_rows(
    tmp: &Path,
    plan: Plan,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    for n in [100usize, 1000] {
        progress(&format!(
            "scripts: reconcile of {n} scripts, {} runs each",
            plan.runs
        ));
        let dir = tmp.join(format!("scripts-{n}"));
        project(&dir, n)?;

        let mut unchanged = Vec::with_capacity(plan.runs);
        for _ in 0..plan.runs {
            let t = Instant::now();
            let s = open(&dir, Mode::Cheap)?;
            unchanged.push(ms(t));
            if s.opened().changed() {
                bail!("the unchanged project changed");
            }
        }
        let r = Row::alone(
            &format!("scripts.cheap-unchanged.{n}"),
            series(
                &format!("{n} unchanged scripts: open the index, stat, compare (every command)"),
                &unchanged,
            )?,
        );
        rows.push(if n == 100 {
            let met = r.subject.stats.p50 <= 10.0;
            r.goal("<= 10 ms (p50)", met)
        } else {
            r
        });

        let mut changed = Vec::with_capacity(plan.runs);
        for round in 0..plan.runs {
            edit(&dir, n, round)?;
            let t = Instant::now();
            let s = open(&dir, Mode::Cheap)?;
            changed.push(ms(t));
            if s.opened().modified.len() != CHANGED {
                bail!("expected {CHANGED} modified scripts, got {:?}", s.opened());
            }
        }
        rows.push(Row::alone(
            &format!("scripts.cheap-changed.{n}"),
            series(
                &format!("{n} scripts, {CHANGED} edited: stat, then read only those"),
                &changed,
            )?,
        ));

        let mut full = Vec::with_capacity(plan.runs);
        for _ in 0..plan.runs {
            let t = Instant::now();
            open(&dir, Mode::Full)?;
            full.push(ms(t));
        }
        rows.push(Row::alone(
            &format!("scripts.reconcile-hash.{n}"),
            series(
                &format!("{n} scripts, no git: `ktx script reconcile` (every file hashed)"),
                &full,
            )?,
        ));

        git(&dir, &["init", "-q"])?;
        git(&dir, &["add", "-A"])?;
        git(&dir, &["commit", "-qm", "bench"])?;
        open(&dir, Mode::Full)?; // records the commit
        let mut with_git = Vec::with_capacity(plan.runs);
        for round in 0..plan.runs {
            edit(&dir, n, round + 1000)?;
            let t = Instant::now();
            let s = open(&dir, Mode::Full)?;
            with_git.push(ms(t));
            if s.opened().method != Some(ktx_scripts::Method::Git) {
                bail!("the git reconcile did not use git: {:?}", s.opened());
            }
        }
        rows.push(Row::alone(
            &format!("scripts.reconcile-git.{n}"),
            series(
                &format!("{n} scripts in git, {CHANGED} edited: `ktx script reconcile` (git diff -M + untracked + stat)"),
                &with_git,
            )?,
        ));
    }
    notes.push("scripts.*: ktx-scripts driven from the bench process (a debug build of the Rust side; the bundled SQLite and sha2 are optimized in dev builds, see the workspace Cargo.toml), temp dir on the bench machine's disk; a \"changed\" sample edits 5 different files before it".into());
    Ok(())
}
