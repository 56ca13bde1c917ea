//! `ktx script ...`: the project's Python scripts (`scripts/<slug>.py` with docstring
//! frontmatter), their index under `.ktx/`, and running them in a worker process.
//!
//! Every subcommand first finds the project ([`ktx_runner::project`]) and opens its scripts
//! ([`ktx_scripts::Scripts::open`], which reconciles the index with the files cheaply), so
//! edits made outside ktx are seen; what that reconcile noticed goes to stderr as notes and
//! warnings. The decisions live in `ktx-scripts` (files, index, defaults) and `ktx-worker`
//! (running); this module parses, calls and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;
use serde_json::json;

use ktx_scripts::{Kind, Row, Scripts, ScriptsError, SeedReport, SyncReport};

use crate::output::{emit, emit_json, with_suggestions};
use crate::{CliError, GlobalArgs};

/// Manage and run the project's Python scripts (scripts/<slug>.py)
///
/// A script is a Python file in the project's scripts/ directory whose module docstring starts
/// with a YAML block between two `---` lines:
///
///   """
///   ---
///   id: s-1a2b...          (stable; ktx writes it into files that lack one)
///   title: Format revenue
///   kind: macro            (macro | transform | utility)
///   entrypoint: render     (default: render, transform or main by kind)
///   enabled: true
///   version: 1
///   updatedAt: '2026-12-07T12:00:00Z'
///   description: ...
///   timeout: 2             (seconds per call; optional)
///   ---
///   """
///
/// The files are the source of truth: the index in .ktx/scripts.db (ignored by git) follows
/// them. Every command picks up edits made outside ktx (an editor, `git pull`); `reconcile`
/// re-reads what git says changed, `rebuild` recreates the index. A bad or unknown value is a
/// warning with file:line, and the field's safe default is used.
///
/// Scripts run only in a separate Python worker (the managed runtime, installed on first use
/// under --yes / --no-input), with a deadline per call; inputs and outputs are plain JSON.
///
/// Examples:
///   ktx script new format_revenue --kind macro
///   ktx script list
///   ktx script run format_number --context '{"value": 1234.5, "decimals": 1}'
///   ktx script check
///   ktx script seed
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, next_display_order = 10)]
pub struct Args {
    #[command(subcommand)]
    command: ScriptCommand,
    /// Project directory holding ktx.yaml (default: searched from the current directory up).
    #[arg(long, value_name = "P", global = true)]
    project_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ScriptCommand {
    List(ListArgs),
    Show(ShowArgs),
    New(NewArgs),
    Enable(SlugArgs),
    Disable(SlugArgs),
    Rm(SlugArgs),
    Rebuild(JsonArgs),
    Reconcile(JsonArgs),
    Seed(JsonArgs),
    Stats(JsonArgs),
}

/// List the scripts: slug, kind, enabled, title (warnings on stderr)
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only scripts of this kind.
    #[arg(long, value_parser = parse_kind, value_name = "K")]
    kind: Option<Kind>,
    /// Print {schemaVersion, projectDir, scripts, sync} (see docs/json-output.md).
    #[arg(long)]
    json: bool,
}

/// Show one script's metadata, file and warnings
#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The script's slug (its file name without .py).
    slug: String,
    /// Print {schemaVersion, projectDir, script}.
    #[arg(long)]
    json: bool,
}

/// Create scripts/SLUG.py from a template (frontmatter and the kind's entrypoint)
#[derive(Debug, clap::Args)]
struct NewArgs {
    /// The new script's slug: 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit.
    slug: String,
    /// What the script is for; it picks the entrypoint (render, transform, main).
    #[arg(long, value_parser = parse_kind, value_name = "K")]
    kind: Kind,
}

/// A subcommand that takes one script.
#[derive(Debug, clap::Args)]
struct SlugArgs {
    /// The script's slug (its file name without .py).
    slug: String,
}

/// A subcommand whose only option is --json.
#[derive(Debug, clap::Args)]
struct JsonArgs {
    /// Print the result as JSON (see docs/json-output.md).
    #[arg(long)]
    json: bool,
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    Kind::parse(text)
        .ok_or_else(|| format!("unknown kind {text:?}: use macro, transform or utility"))
}

/// Runs `ktx script ...`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = ktx_runner::project::project_dir(args.project_dir.as_deref())
        .map_err(|e| CliError::failure(e.to_string()))?;
    let _ = global;
    match args.command {
        ScriptCommand::Rebuild(a) => {
            let (scripts, report) = Scripts::rebuild(&root).map_err(scripts_error)?;
            print_sync_notes(&scripts, &report);
            sync_output(&scripts, &report, a.json, "Rebuilt the script index")
        }
        command => {
            let mut scripts = Scripts::open(&root).map_err(scripts_error)?;
            let opened = scripts.opened().clone();
            print_sync_notes(&scripts, &opened);
            dispatch(command, &mut scripts)
        }
    }
}

fn dispatch(command: ScriptCommand, scripts: &mut Scripts) -> Result<ExitCode, CliError> {
    match command {
        ScriptCommand::List(a) => list(scripts, a),
        ScriptCommand::Show(a) => show(scripts, a),
        ScriptCommand::New(a) => {
            let row = scripts.create(&a.slug, a.kind).map_err(scripts_error)?;
            emit(&format!(
                "Created {} ({} script, entrypoint {}, id {})\n",
                scripts.file_of(&row).display(),
                row.kind,
                row.entrypoint,
                row.id
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        ScriptCommand::Enable(a) => set_enabled(scripts, &a.slug, true),
        ScriptCommand::Disable(a) => set_enabled(scripts, &a.slug, false),
        ScriptCommand::Rm(a) => {
            let (row, trash) = scripts.remove(&a.slug).map_err(scripts_error)?;
            emit(&format!(
                "Removed script {} (the file was moved to {})\n",
                row.slug,
                trash.display()
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        ScriptCommand::Reconcile(a) => {
            let report = scripts.reconcile().map_err(scripts_error)?;
            print_sync_notes(scripts, &report);
            sync_output(scripts, &report, a.json, "Reconciled the script index")
        }
        ScriptCommand::Seed(a) => {
            let report = scripts.seed().map_err(scripts_error)?;
            seed_output(scripts, &report, a.json)
        }
        ScriptCommand::Stats(a) => stats(scripts, a),
        ScriptCommand::Rebuild(_) => unreachable!("handled before the index is opened"),
    }
}

/// A [`ScriptsError`] as the user sees it: message, hint, and `did you mean` for close slugs.
fn scripts_error(e: ScriptsError) -> CliError {
    let suggestions = e.suggestions.clone();
    CliError::failure(with_suggestions(e.to_string(), &suggestions))
}

/// The absolute path of a project-relative `/`-separated path.
fn abs(scripts: &Scripts, rel: &str) -> String {
    ktx_scripts::files::abs_path(scripts.root(), rel)
        .display()
        .to_string()
}

/// What a reconcile noticed, on stderr: ids written into files, then frontmatter warnings.
fn print_sync_notes(scripts: &Scripts, report: &SyncReport) {
    for rel in &report.ids_written {
        eprintln!("note: wrote a new id into {}", abs(scripts, rel));
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
}

/// One script in `--json` output.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScriptJson {
    id: String,
    slug: String,
    path: String,
    title: String,
    kind: &'static str,
    entrypoint: String,
    enabled: bool,
    version: String,
    updated_at: Option<String>,
    description: String,
    timeout_seconds: Option<f64>,
    content_hash: String,
    warnings: Vec<String>,
}

fn script_json(scripts: &Scripts, r: &Row) -> ScriptJson {
    ScriptJson {
        id: r.id.clone(),
        slug: r.slug.clone(),
        path: scripts.file_of(r).display().to_string(),
        title: r.title.clone(),
        kind: r.kind.as_str(),
        entrypoint: r.entrypoint.clone(),
        enabled: r.enabled,
        version: r.version.clone(),
        updated_at: r.updated_at.clone(),
        description: r.description.clone(),
        timeout_seconds: r.timeout.map(|t| t.as_secs_f64()),
        content_hash: r.content_hash.clone(),
        warnings: r.warnings.clone(),
    }
}

/// A rename in `--json` output.
#[derive(Serialize)]
struct RenameJson {
    from: String,
    to: String,
}

/// A sync report in `--json` output, with absolute paths.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncJson {
    method: Option<ktx_scripts::Method>,
    added: Vec<String>,
    modified: Vec<String>,
    renamed: Vec<RenameJson>,
    removed: Vec<String>,
    ids_written: Vec<String>,
    warnings: Vec<String>,
    scripts: usize,
}

fn sync_json(scripts: &Scripts, r: &SyncReport) -> SyncJson {
    let paths = |v: &[String]| v.iter().map(|p| abs(scripts, p)).collect::<Vec<_>>();
    SyncJson {
        method: r.method,
        added: paths(&r.added),
        modified: paths(&r.modified),
        renamed: r
            .renamed
            .iter()
            .map(|[a, b]| RenameJson {
                from: abs(scripts, a),
                to: abs(scripts, b),
            })
            .collect(),
        removed: paths(&r.removed),
        ids_written: paths(&r.ids_written),
        warnings: r.warnings.clone(),
        scripts: r.scripts,
    }
}

/// `ktx script list --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListJson {
    project_dir: String,
    scripts: Vec<ScriptJson>,
    sync: SyncJson,
}

/// `ktx script show --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShowJson {
    project_dir: String,
    script: ScriptJson,
}

/// `ktx script reconcile|rebuild --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReconcileJson {
    project_dir: String,
    #[serde(flatten)]
    sync: SyncJson,
}

/// One script's last run in `ktx script stats --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsJson {
    id: String,
    slug: String,
    calls: u64,
    errors: u64,
    timeouts: u64,
    restarts: u64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    recorded_at: String,
}

fn list(scripts: &Scripts, a: ListArgs) -> Result<ExitCode, CliError> {
    let rows: Vec<Row> = scripts
        .list()
        .map_err(scripts_error)?
        .into_iter()
        .filter(|r| a.kind.is_none_or(|k| r.kind == k))
        .collect();
    if a.json {
        emit_json(&ListJson {
            project_dir: scripts.root().display().to_string(),
            scripts: rows.iter().map(|r| script_json(scripts, r)).collect(),
            sync: sync_json(scripts, scripts.opened()),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!(
            "no scripts{} in {} (create one with `ktx script new SLUG --kind utility`, or add the defaults with `ktx script seed`)",
            a.kind.map(|k| format!(" of kind {k}")).unwrap_or_default(),
            scripts.root().join("scripts").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let w = rows.iter().map(|r| r.slug.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<w$}  {:<9}  {:<7}  TITLE\n", "SLUG", "KIND", "ENABLED");
    for r in &rows {
        let flag = if r.warnings.is_empty() {
            ""
        } else {
            "  (warnings: ktx script show)"
        };
        out.push_str(&format!(
            "{:<w$}  {:<9}  {:<7}  {}{flag}\n",
            r.slug,
            r.kind.as_str(),
            if r.enabled { "yes" } else { "no" },
            r.title
        ));
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn show(scripts: &Scripts, a: ShowArgs) -> Result<ExitCode, CliError> {
    let r = scripts.get(&a.slug).map_err(scripts_error)?;
    if a.json {
        emit_json(&ShowJson {
            project_dir: scripts.root().display().to_string(),
            script: script_json(scripts, &r),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "slug:        {}\nid:          {}\nfile:        {}\ntitle:       {}\nkind:        {}\nentrypoint:  {}\nenabled:     {}\nversion:     {}\nupdatedAt:   {}\ntimeout:     {}\nsha256:      {}\n",
        r.slug,
        r.id,
        scripts.file_of(&r).display(),
        r.title,
        r.kind,
        r.entrypoint,
        r.enabled,
        r.version,
        r.updated_at.as_deref().unwrap_or("-"),
        r.timeout
            .map(|t| format!("{}s", t.as_secs_f64()))
            .unwrap_or_else(|| format!("{}s (default)", ktx_scripts::DEFAULT_TIMEOUT.as_secs_f64())),
        r.content_hash,
    );
    if !r.description.is_empty() {
        out.push_str(&format!("description: {}\n", r.description));
    }
    for w in &r.warnings {
        out.push_str(&format!("warning:     {w}\n"));
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn set_enabled(scripts: &mut Scripts, slug: &str, enabled: bool) -> Result<ExitCode, CliError> {
    let (row, changed) = scripts.set_enabled(slug, enabled).map_err(scripts_error)?;
    let state = if enabled { "enabled" } else { "disabled" };
    emit(&if changed {
        format!(
            "Script {} is now {state} ({})\n",
            row.slug,
            scripts.file_of(&row).display()
        )
    } else {
        format!("Script {} is already {state}\n", row.slug)
    })?;
    Ok(ExitCode::SUCCESS)
}

fn sync_output(
    scripts: &Scripts,
    report: &SyncReport,
    json: bool,
    what: &str,
) -> Result<ExitCode, CliError> {
    if json {
        emit_json(&ReconcileJson {
            project_dir: scripts.root().display().to_string(),
            sync: sync_json(scripts, report),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let method = match report.method {
        Some(ktx_scripts::Method::Git) => "git diff since the indexed commit, plus file stats",
        Some(ktx_scripts::Method::Hash) => "content-hash scan: no git history to compare with",
        Some(ktx_scripts::Method::Rebuild) => "every file read again",
        Some(ktx_scripts::Method::Stat) => "file stats",
        _ => "file stats: nothing changed",
    };
    let mut out = format!(
        "{what} ({}): {} script{} ({method})\n",
        scripts.index_path().display(),
        report.scripts,
        if report.scripts == 1 { "" } else { "s" }
    );
    let line = |label: &str, items: &[String], out: &mut String| {
        for i in items {
            out.push_str(&format!("  {label:<9}{}\n", abs(scripts, i)));
        }
    };
    if report.method != Some(ktx_scripts::Method::Rebuild) {
        line("added", &report.added, &mut out);
    }
    line("modified", &report.modified, &mut out);
    for [a, b] in &report.renamed {
        out.push_str(&format!(
            "  renamed  {} -> {}\n",
            abs(scripts, a),
            abs(scripts, b)
        ));
    }
    line("removed", &report.removed, &mut out);
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn seed_output(scripts: &Scripts, report: &SeedReport, json: bool) -> Result<ExitCode, CliError> {
    if json {
        emit_json(&json!({
            "projectDir": scripts.root().display().to_string(),
            "added": report.added,
            "updated": report.updated,
            "current": report.current,
            "kept": report.kept,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    emit(&seed_text(scripts.root(), report))?;
    Ok(ExitCode::SUCCESS)
}

/// The human lines of a seed report (also printed by `ktx demo`).
pub fn seed_text(root: &Path, report: &SeedReport) -> String {
    let file = |slug: &str| {
        root.join("scripts")
            .join(format!("{slug}.py"))
            .display()
            .to_string()
    };
    let mut out = String::new();
    for s in &report.added {
        out.push_str(&format!("  added    {}\n", file(s)));
    }
    for s in &report.updated {
        out.push_str(&format!(
            "  updated  {} (it was an earlier default)\n",
            file(s)
        ));
    }
    for s in &report.current {
        out.push_str(&format!("  current  {}\n", file(s)));
    }
    for s in &report.kept {
        out.push_str(&format!(
            "  kept     {} (you changed it; the newer default was not applied)\n",
            file(s)
        ));
    }
    format!("Default scripts:\n{out}")
}

fn stats(scripts: &Scripts, a: JsonArgs) -> Result<ExitCode, CliError> {
    let rows = scripts.stats().map_err(scripts_error)?;
    let ms = |us: Option<u64>| us.map(|v| v as f64 / 1000.0);
    if a.json {
        let list: Vec<StatsJson> = rows
            .iter()
            .map(|s| StatsJson {
                id: s.script_id.clone(),
                slug: s.slug.clone(),
                calls: s.calls,
                errors: s.errors,
                timeouts: s.timeouts,
                restarts: s.restarts,
                p50_ms: ms(s.p50_us),
                p95_ms: ms(s.p95_us),
                recorded_at: s.recorded_at.clone(),
            })
            .collect();
        emit_json(&json!({
            "projectDir": scripts.root().display().to_string(),
            "scripts": list,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("no script has run yet in this project (try `ktx script run SLUG`)");
        return Ok(ExitCode::SUCCESS);
    }
    let w = rows.iter().map(|r| r.slug.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:<w$}  {:>5}  {:>6}  {:>8}  {:>8}  {:>9}  {:>9}  LAST RUN\n",
        "SLUG", "CALLS", "ERRORS", "TIMEOUTS", "RESTARTS", "P50 MS", "P95 MS"
    );
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    for s in &rows {
        out.push_str(&format!(
            "{:<w$}  {:>5}  {:>6}  {:>8}  {:>8}  {:>9}  {:>9}  {}\n",
            s.slug,
            s.calls,
            s.errors,
            s.timeouts,
            s.restarts,
            fmt(ms(s.p50_us)),
            fmt(ms(s.p95_us)),
            s.recorded_at
        ));
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}
