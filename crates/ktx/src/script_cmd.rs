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
use std::time::Duration;

use clap::Subcommand;
use serde::Serialize;
use serde_json::json;

use ktx_scripts::{Kind, Row, Scripts, ScriptsError, SeedReport, StatsRow, SyncReport};
use ktx_worker::{CallError, CallOutcome, ScriptRef, Worker, WorkerConfig};

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
    Check(CheckArgs),
    Run(RunArgs),
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

/// Check scripts in the managed runtime: syntax (file:line:col) and the entrypoint
///
/// The script's code is not run: the check compiles it and looks for the entrypoint as a
/// top-level function. Frontmatter warnings are listed too. Exit 1 when a script has an error.
#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Only this script (default: every script).
    slug: Option<String>,
}

/// Call a script's entrypoint with a JSON context in a worker process
///
/// Prints the result as JSON on stdout; what the script printed goes to stderr (capped at
/// 1 MiB). The call is killed after its deadline: --timeout, else the script's frontmatter
/// `timeout`, else 2 s. Errors are typed: raised, timeout, bad_result (NaN, Infinity, bytes,
/// sets, non-string keys or ints beyond 64 bits, with the JSON path of the value), crashed,
/// missing_entrypoint, load_failed. Exit 1 on any error. The counters go to `ktx script stats`.
///
/// Examples:
///   ktx script run slugify --context '{"text": "Revenue by Segment"}'
///   ktx script run top_rows --context @rows.json --timeout 5 --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
struct RunArgs {
    /// The script's slug (its file name without .py).
    slug: String,
    /// The context: a JSON object, or @FILE to read it from a file (default: {}).
    #[arg(long, value_name = "JSON|@FILE")]
    context: Option<String>,
    /// The call's deadline in seconds (a number > 0, at most 86400).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Print {schemaVersion, slug, id, ok, result, stdout, stdoutTruncated, latencyMs, error}
    /// (also when the call failed; the exit code is then 1).
    #[arg(long)]
    json: bool,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let rule = ktx_base::duration::Seconds::POSITIVE_UP_TO_A_DAY;
    rule.parse(text).ok_or_else(|| {
        format!(
            "must be a number of seconds greater than 0 and at most {} (e.g. 2 or 0.5), got {text:?}",
            rule.max.as_secs()
        )
    })
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
    match args.command {
        ScriptCommand::Rebuild(a) => {
            let (scripts, report) = Scripts::rebuild(&root).map_err(scripts_error)?;
            print_sync_notes(&scripts, &report);
            sync_output(&scripts, &report, a.json, "Rebuilt the script index")
        }
        ScriptCommand::Reconcile(a) => {
            let scripts = Scripts::open_reconciled(&root, ktx_scripts::sync::Mode::Full)
                .map_err(scripts_error)?;
            let report = scripts.opened().clone();
            print_sync_notes(&scripts, &report);
            sync_output(&scripts, &report, a.json, "Reconciled the script index")
        }
        command => {
            let mut scripts = Scripts::open(&root).map_err(scripts_error)?;
            let opened = scripts.opened().clone();
            print_sync_notes(&scripts, &opened);
            dispatch(command, &mut scripts, global)
        }
    }
}

fn dispatch(
    command: ScriptCommand,
    scripts: &mut Scripts,
    global: &GlobalArgs,
) -> Result<ExitCode, CliError> {
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
        ScriptCommand::Seed(a) => {
            let report = scripts.seed().map_err(scripts_error)?;
            seed_output(scripts, &report, a.json)
        }
        ScriptCommand::Stats(a) => stats(scripts, a),
        ScriptCommand::Check(a) => check(scripts, a, global),
        ScriptCommand::Run(a) => run_script(scripts, a, global),
        ScriptCommand::Rebuild(_) | ScriptCommand::Reconcile(_) => {
            unreachable!("handled before the index is opened")
        }
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

// ---------------------------------------------------------------- run and check

/// The managed runtime's interpreter, installed first per the --yes / --no-input policy.
fn runtime_python(global: &GlobalArgs) -> Result<PathBuf, CliError> {
    let rt = ktx_runtime::Runtime::from_env()?;
    let opts = global.call_options()?;
    Ok(ktx_runner::ensure_runtime(&rt, &opts)?.python_path)
}

/// A worker running in the project directory.
fn spawn_worker(scripts: &Scripts, global: &GlobalArgs) -> Result<Worker, CliError> {
    let mut cfg = WorkerConfig::new(runtime_python(global)?);
    cfg.cwd = Some(scripts.root().to_path_buf());
    Worker::spawn(cfg).map_err(|e| {
        CliError::failure(format!(
            "cannot start the script worker: {e}\n  hint: check the runtime with `ktx runtime doctor`"
        ))
    })
}

fn script_ref(scripts: &Scripts, row: &Row) -> ScriptRef {
    ScriptRef {
        id: row.id.clone(),
        path: scripts.file_of(row),
        content_hash: row.content_hash.clone(),
        entrypoint: row.entrypoint.clone(),
    }
}

/// `--context`: a JSON object given inline or as `@FILE`; `{}` when absent.
fn read_context(arg: Option<&str>) -> Result<serde_json::Value, CliError> {
    let usage = |message: String| CliError { code: 2, message };
    let Some(arg) = arg else {
        return Ok(json!({}));
    };
    let (text, origin) = match arg.strip_prefix('@') {
        Some(file) => (
            std::fs::read_to_string(file)
                .map_err(|e| usage(format!("--context @{file}: cannot read the file: {e}")))?,
            format!("the file {file}"),
        ),
        None => (arg.to_string(), "--context".to_string()),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "{origin} is not valid JSON: {e}\n  hint: pass an object, e.g. --context '{{\"value\": 1}}', or @FILE"
        ))
    })?;
    if !value.is_object() {
        return Err(usage(format!(
            "{origin} must be a JSON object (the script receives it as a dict)\n  hint: e.g. --context '{{\"value\": 1}}'"
        )));
    }
    Ok(value)
}

/// A call error in `--json` output.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallErrorJson {
    kind: &'static str,
    message: String,
    path: Option<String>,
    location: Option<String>,
    traceback: Option<String>,
}

/// `ktx script run --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunJson {
    slug: String,
    id: String,
    ok: bool,
    result: Option<serde_json::Value>,
    stdout: String,
    stdout_truncated: bool,
    latency_ms: f64,
    error: Option<CallErrorJson>,
}

fn error_json(e: &CallError) -> CallErrorJson {
    CallErrorJson {
        kind: e.kind.as_str(),
        message: e.message.clone(),
        path: e.path.clone(),
        location: e.location.clone(),
        traceback: e.traceback.clone(),
    }
}

/// The error of a failed call as the user reads it.
fn call_error_text(slug: &str, e: &CallError) -> String {
    let mut text = format!("script {slug} failed ({}): {}", e.kind.as_str(), e.message);
    if let Some(path) = &e.path {
        text.push_str(&format!("\n  at {path} of the result"));
    }
    if let Some(location) = &e.location {
        text.push_str(&format!("\n  in {location}"));
    }
    if let Some(tb) = &e.traceback {
        text.push_str(&format!("\n{}", tb.trim_end()));
    }
    text
}

fn run_script(
    scripts: &mut Scripts,
    a: RunArgs,
    global: &GlobalArgs,
) -> Result<ExitCode, CliError> {
    let row = scripts.get(&a.slug).map_err(scripts_error)?;
    if !row.enabled {
        return Err(CliError::failure(format!(
            "script {} is disabled ({})\n  hint: enable it with `ktx script enable {}`",
            row.slug,
            scripts.file_of(&row).display(),
            row.slug
        )));
    }
    let context = read_context(a.context.as_deref())?;
    let deadline = ktx_scripts::deadline(&row, a.timeout);
    let mut worker = spawn_worker(scripts, global)?;
    let out: CallOutcome = worker.call(&script_ref(scripts, &row), &context, deadline);
    let stats: Vec<StatsRow> = worker
        .stats()
        .summary()
        .into_iter()
        .map(|s| StatsRow {
            slug: row.slug.clone(),
            script_id: s.id,
            calls: s.calls,
            errors: s.errors,
            timeouts: s.timeouts,
            restarts: s.restarts,
            p50_us: Some(s.p50_micros),
            p95_us: Some(s.p95_micros),
            recorded_at: ktx_base::time::now_rfc3339(),
        })
        .collect();
    drop(worker);
    if let Err(e) = scripts.record_stats(&stats) {
        eprintln!("warning: the run's counters were not saved: {e}");
    }
    if a.json {
        emit_json(&RunJson {
            slug: row.slug.clone(),
            id: row.id.clone(),
            ok: out.result.is_ok(),
            result: out.result.as_ref().ok().cloned(),
            stdout: out.stdout.clone(),
            stdout_truncated: out.stdout_truncated,
            latency_ms: out.latency.as_secs_f64() * 1000.0,
            error: out.result.as_ref().err().map(error_json),
        })?;
        return Ok(if out.result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if !out.stdout.is_empty() {
        eprint!("{}", out.stdout);
        if !out.stdout.ends_with('\n') {
            eprintln!();
        }
    }
    if out.stdout_truncated {
        eprintln!("note: the script printed more than the worker keeps; the output above was cut");
    }
    match out.result {
        Ok(value) => {
            let text = serde_json::to_string_pretty(&value)
                .map_err(|e| CliError::failure(format!("cannot encode the result: {e}")))?;
            emit(&format!("{text}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(CliError::failure(call_error_text(&row.slug, &e))),
    }
}

fn check(scripts: &mut Scripts, a: CheckArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let rows = match &a.slug {
        Some(slug) => vec![scripts.get(slug).map_err(scripts_error)?],
        None => scripts.list().map_err(scripts_error)?,
    };
    if rows.is_empty() {
        eprintln!(
            "no scripts to check in {}",
            scripts.root().join("scripts").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut worker = spawn_worker(scripts, global)?;
    let mut out = String::new();
    let mut failed = 0;
    for row in &rows {
        let outcome = worker.check(&script_ref(scripts, row));
        let mut problems: Vec<String> = outcome
            .errors
            .iter()
            .map(|e| {
                let at = match (e.line, e.col) {
                    (Some(l), Some(c)) => format!(":{l}:{c}"),
                    (Some(l), None) => format!(":{l}"),
                    _ => String::new(),
                };
                format!("error: {}{at}: {}", row.path, e.message)
            })
            .collect();
        if outcome.errors.is_empty() && !outcome.entrypoint_found {
            problems.push(format!(
                "error: {}: no top-level function {}(context) (the entrypoint{})",
                row.path,
                row.entrypoint,
                if row.entrypoint == row.kind.default_entrypoint() {
                    format!(" of a {} script", row.kind)
                } else {
                    " the frontmatter names".to_string()
                }
            ));
        }
        let ok = outcome.ok && outcome.entrypoint_found && problems.is_empty();
        if !ok {
            failed += 1;
        }
        out.push_str(&format!(
            "{} {} ({})\n",
            if ok { "ok  " } else { "FAIL" },
            row.slug,
            scripts.file_of(row).display()
        ));
        for p in problems {
            out.push_str(&format!("  {p}\n"));
        }
        for w in &row.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
    }
    out.push_str(&format!(
        "{} script{} checked, {failed} with errors\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    emit(&out)?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
