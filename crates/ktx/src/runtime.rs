//! `ktx runtime ...`: install, status, doctor, prune (and `call`, a plumbing command).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use ktx_runner::RunError;
use ktx_runtime::prune::{self, PruneKind};
use ktx_runtime::{Feature, InstallOptions, Runtime, KTX_VERSION};

use crate::output::{emit, emit_json, emit_raw_json, human_bytes};
use crate::{CliError, GlobalArgs};

/// Manage the private Python runtime that ktx's Python-backed commands use.
///
/// The runtime lives under KTX_RUNTIME_ROOT (default: the platform data dir, e.g.
/// ~/.local/share/kaelio/ktx/runtime), one directory per ktx version. It is installed from the
/// wheel bundled with ktx, with uv if available (found on PATH or bootstrapped with pip), else
/// with `python -m venv` + pip. Commands that need it install it on first use (--yes), or ask.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: RuntimeCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FeatureArg {
    /// The semantic layer (always installed).
    Core,
    /// Local sentence embeddings (large: pulls PyTorch).
    LocalEmbeddings,
    /// The PostgreSQL driver (psycopg 3, binary).
    Postgres,
    /// The DuckDB driver.
    Duckdb,
    /// The MySQL / MariaDB driver (PyMySQL).
    Mysql,
    /// The WebAssembly sandbox of `ktx python` (wasmtime).
    Sandbox,
}

impl From<FeatureArg> for Feature {
    fn from(f: FeatureArg) -> Feature {
        match f {
            FeatureArg::Core => Feature::Core,
            FeatureArg::LocalEmbeddings => Feature::LocalEmbeddings,
            FeatureArg::Postgres => Feature::Postgres,
            FeatureArg::Duckdb => Feature::Duckdb,
            FeatureArg::Mysql => Feature::Mysql,
            FeatureArg::Sandbox => Feature::Sandbox,
        }
    }
}

#[derive(Debug, Subcommand)]
enum RuntimeCommand {
    /// Install the Python runtime for this ktx version (no-op when already installed).
    ///
    /// Builds a fresh virtual environment from the bundled wheel under an install lock, checks
    /// that it imports, then writes the receipt (manifest.json) last: an interrupted install is
    /// never used and is repaired by the next one. Every attempt keeps a log under
    /// <runtime dir>/logs/.
    ///
    /// Offline / air-gapped: on a connected machine with the same platform and Python version,
    /// run `python3 -m pip download -d wheelhouse <bundled kaelio_ktx wheel>` (the wheel is in
    /// the assets dir that `ktx runtime status` shows; with local-embeddings use
    /// `'kaelio-ktx[local-embeddings] @ file:///abs/path/to/the.whl'`), copy the wheelhouse
    /// over, then `ktx runtime install --find-links wheelhouse` (or set KTX_FIND_LINKS). No
    /// network is used then (uv runs with --offline --no-index; pip with --no-index).
    ///
    /// Python: KTX_PYTHON, else python3/python on PATH satisfying the wheel's Requires-Python,
    /// else uv downloads one. uv: KTX_UV, else `uv` on PATH (0.5.0 or newer), else a copy ktx
    /// bootstrapped under <root>/tools/uv/, else one bootstrapped now with pip (pinned,
    /// hash-checked), else the slower `python -m venv` + pip.
    ///
    /// Environment: KTX_PYTHON (interpreter), KTX_UV (uv binary), KTX_FIND_LINKS,
    /// KTX_LOCK_TIMEOUT (seconds to wait for another install, default 600).
    Install {
        /// Feature to install (repeatable); `core` is always included.
        #[arg(long = "feature", value_enum)]
        features: Vec<FeatureArg>,
        /// Rebuild even if the runtime is ready (keeps the features already installed).
        #[arg(long)]
        force: bool,
        /// Print the result as JSON on stdout: {schemaVersion, kind: "ready" | "error",
        /// performed, features, versionDir, installer, logPath, manifest, error}; on failure
        /// (exit 1) kind is "error" and error is {kind, message, logPath, hints}, else null.
        #[arg(long)]
        json: bool,
        /// Install from this local wheelhouse only, with no network access [env:
        /// KTX_FIND_LINKS].
        // Not clap's `env =`: an empty KTX_FIND_LINKS would be a usage error there, while the
        // library reads it as unset.
        #[arg(long, value_name = "DIR")]
        find_links: Option<PathBuf>,
    },
    /// Show whether the runtime is missing, ready, incomplete, mismatched or broken (read-only).
    ///
    /// missing: nothing installed; ready: usable; incomplete: files but no valid receipt (an
    /// interrupted install); mismatched: installed for another wheel or without a feature;
    /// broken: installed, but the venv is gone or damaged (a file it needs is missing), its
    /// interpreter is not the venv's own, or the Python it was built from is gone. Every kind
    /// but ready is repaired by `ktx runtime install`. Never changes anything on disk.
    ///
    /// --json prints {schemaVersion, kind, detail, layout{runtimeRoot, versionDir, venvDir,
    /// manifestPath, logDir, assetDir, pythonPath}, manifest, daemon}; keys that do not apply
    /// are null (every --json shape: docs/json-output.md).
    Status {
        /// Print the status as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check Python, uv, the bundled wheel, the installed runtime and the free disk space; exit 1
    /// if any check fails.
    ///
    /// Prints one `PASS|WARN|FAIL <label>: <detail>` line per check and a `Fix:` line under
    /// each one that needs action. --json prints {schemaVersion, ok, checks: [{id, label,
    /// outcome, detail, fix}]}; `id` is stable (e.g. python-interpreter, managed-runtime).
    Doctor {
        /// Print the checks as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove other ktx versions' runtimes and unused bootstrapped uv copies.
    ///
    /// Never removes this version's runtime or one another process is using (its install or
    /// daemon lock is held, or its daemon runs). Refuses (exit 1) without --yes; use --dry-run
    /// to see what would be removed.
    ///
    /// --json prints {schemaVersion, dryRun, refused, wouldRemove, removed, bytes (freed, or
    /// that would be freed when nothing is removed), wouldFree, skipped, failed}; removal
    /// entries have path, kind (version|uv) and bytes, skipped and failed ones path and reason.
    Prune {
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Start the background Python daemon, or reuse the running one.
    ///
    /// The daemon keeps Python and its imports warm so repeated Python-backed commands skip
    /// the start-up cost; commands use it when it runs (start one on demand with --daemon or
    /// KTX_DAEMON=1). It listens on 127.0.0.1 only, requires a token, and exits after 15
    /// minutes without requests (KTX_DAEMON_IDLE_TIMEOUT, seconds). A daemon of another
    /// version or with fewer features is replaced. Installs the runtime first per --yes /
    /// --no-input / prompt.
    Start {
        /// Feature the daemon must serve (repeatable); `core` is always included.
        #[arg(long = "feature", value_enum)]
        features: Vec<FeatureArg>,
        /// Restart the daemon even if the running one could be reused.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Stop the background Python daemon (no-op when it is not running).
    ///
    /// --json prints {schemaVersion, stopped, pid, how, cleaned} (null where it does not apply).
    Stop {
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Send one ABI v1 request to the runtime and print the result (plumbing, for debugging).
    ///
    /// Installs the runtime first per --yes / --no-input / prompt, like every Python-backed
    /// command. Example: `ktx runtime call runtime.info`.
    Call {
        /// The op, e.g. `runtime.ping` or `runtime.info`.
        op: String,
        /// The payload as a JSON object (default `{}`).
        payload: Option<String>,
        /// Feature the op needs (repeatable).
        #[arg(long = "feature", value_enum)]
        features: Vec<FeatureArg>,
    },
}

/// Runs `ktx runtime <command>`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    match args.command {
        RuntimeCommand::Install {
            features,
            force,
            json,
            find_links,
        } => install(&features, force, json, find_links),
        RuntimeCommand::Status { json } => status(json),
        RuntimeCommand::Doctor { json } => doctor(json),
        RuntimeCommand::Prune { dry_run, json } => prune_cmd(dry_run, global.yes, json),
        RuntimeCommand::Call {
            op,
            payload,
            features,
        } => call(&op, payload.as_deref(), &features, global),
        RuntimeCommand::Start {
            features,
            force,
            json,
        } => crate::daemon_cmd::start(
            features.iter().map(|f| Feature::from(*f)).collect(),
            force,
            json,
            global,
        ),
        RuntimeCommand::Stop { json } => crate::daemon_cmd::stop(json),
    }
}

fn install(
    features: &[FeatureArg],
    force: bool,
    json: bool,
    find_links: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let features: Vec<Feature> = features.iter().map(|f| Feature::from(*f)).collect();
    let mut opts = InstallOptions::new(&features);
    opts.force = force;
    if find_links.is_some() {
        opts.find_links = find_links;
    }
    let result = Runtime::from_env()
        .map_err(RunError::from)
        .and_then(|rt| Ok((ktx_runner::install_runtime(&rt, &opts)?, rt)));
    let (outcome, rt) = match result {
        Ok(done) => done,
        Err(e) => {
            // A script reading stdout gets an answer on failure too (and the exit code).
            if json {
                // The install error still goes to stderr when stdout cannot take the JSON.
                if let Err(w) = emit_json(&install_error_json(&e)) {
                    if !w.message.is_empty() {
                        eprintln!("error: {}", w.message);
                    }
                }
            }
            return Err(e.into());
        }
    };
    let dir = rt.layout().version_dir();
    if !outcome.performed {
        eprintln!("{}", ktx_runtime::progress::ready_message(&dir));
        eprintln!("(already installed; `ktx runtime install --force` rebuilds it)");
    }
    let installed = &outcome.receipt.features;
    eprintln!("Installed features: {}", installed.join(", "));
    if json {
        emit_json(&json!({
            "kind": "ready",
            "performed": outcome.performed,
            "features": installed,
            "versionDir": dir,
            "installer": outcome.installer.map(|i| i.as_str()),
            "logPath": outcome.log_path,
            "manifest": outcome.receipt,
            "error": null,
        }))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `ktx runtime install --json` on failure: the success shape with `kind: "error"`, nothing
/// performed, and `error: {kind, message, logPath, hints}`.
fn install_error_json(e: &RunError) -> Value {
    let error = match e {
        RunError::Runtime(r) => json!({
            "kind": r.kind,
            "message": r.message,
            "logPath": r.log,
            "hints": r.hints,
        }),
        other => {
            json!({"kind": "other", "message": other.to_string(), "logPath": null, "hints": []})
        }
    };
    json!({
        "kind": "error",
        "performed": false,
        "features": [],
        "versionDir": null,
        "installer": null,
        "logPath": null,
        "manifest": null,
        "error": error,
    })
}

fn status(json: bool) -> Result<ExitCode, CliError> {
    let rt = Runtime::from_env()?;
    let st = rt.status(&[Feature::Core]);
    if json {
        let mut v = serde_json::to_value(&st).map_err(|e| {
            CliError::failure(format!("cannot encode the runtime status as JSON: {e}"))
        })?;
        if let Some(obj) = v.as_object_mut() {
            // The document's schemaVersion comes from the output path; every key is present
            // in every state (null when it does not apply).
            obj.remove("schemaVersion");
            obj.entry("manifest").or_insert(Value::Null);
            obj.insert("daemon".into(), crate::daemon_cmd::status_json(&rt));
        }
        emit_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!("{}: {}\n", st.kind.as_str(), st.detail);
    let mut line = |label: &str, value: &dyn std::fmt::Display| {
        text.push_str(&format!("  {label:<13} {value}\n"));
    };
    line("ktx version:", &KTX_VERSION);
    line("runtime root:", &st.layout.runtime_root.display());
    line("version dir:", &st.layout.version_dir.display());
    if let Some(v) = &st.layout.venv_dir {
        line("venv:", &v.display());
    }
    if let Some(p) = &st.layout.python_path {
        line("python:", &p.display());
    }
    line("logs:", &st.layout.log_dir.display());
    line(
        "features:",
        &features_line(st.manifest.as_ref().map(|r| r.features.as_slice())),
    );
    match &st.layout.asset_dir {
        Some(d) => line("assets:", &d.display()),
        None => line("assets:", &"(not found)"),
    }
    text.push_str(&crate::daemon_cmd::status_section(&rt));
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `core, duckdb; not installed: local-embeddings, postgres, mysql` (from the receipt's
/// features), or `none installed` when there is no receipt.
fn features_line(installed: Option<&[String]>) -> String {
    let installed = installed.unwrap_or_default();
    let others: Vec<&str> = Feature::ALL
        .iter()
        .map(|f| f.as_str())
        .filter(|f| !installed.iter().any(|h| h == f))
        .collect();
    let mut text = if installed.is_empty() {
        "none installed".to_string()
    } else {
        installed.join(", ")
    };
    if !others.is_empty() {
        text.push_str(&format!(
            "; not installed: {} (`ktx runtime install --feature NAME`)",
            others.join(", ")
        ));
    }
    text
}

fn doctor(json: bool) -> Result<ExitCode, CliError> {
    let rt = Runtime::from_env()?;
    let report = ktx_runner::doctor(&rt);
    if json {
        emit_json(&json!({"ok": !report.failed(), "checks": report.checks}))?;
    } else {
        emit(&report.render_text())?;
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn prune_cmd(dry_run: bool, yes: bool, json: bool) -> Result<ExitCode, CliError> {
    let rt = Runtime::from_env()?;
    let layout = rt.layout();
    let plan = prune::plan(layout)?;
    let kind = |k: PruneKind| match k {
        PruneKind::Version => "runtime",
        PruneKind::Uv => "uv",
    };
    let skipped: Vec<Value> = plan
        .skip
        .iter()
        .map(|s| json!({"path": s.path, "reason": s.reason}))
        .collect();
    // The library decides whether removing needs a confirmation it did not get.
    let refusal = if dry_run {
        None
    } else {
        plan.confirm(yes).err()
    };
    if dry_run || plan.remove.is_empty() || refusal.is_some() {
        let refused = refusal.is_some();
        if json {
            emit_json(&json!({
                "dryRun": dry_run,
                "refused": refused,
                "wouldRemove": plan.remove,
                "removed": [],
                "bytes": plan.bytes(),
                "wouldFree": plan.bytes(),
                "skipped": skipped,
                "failed": [],
            }))?;
        } else {
            let mut text = String::new();
            if plan.remove.is_empty() {
                text.push_str("Nothing to prune.\n");
            } else {
                text.push_str("Would remove:\n");
                for e in &plan.remove {
                    text.push_str(&format!(
                        "  {} ({}, {})\n",
                        e.path.display(),
                        kind(e.kind),
                        human_bytes(e.bytes)
                    ));
                }
            }
            for s in &plan.skip {
                text.push_str(&format!("Keeping {}: {}\n", s.path.display(), s.reason));
            }
            if !plan.remove.is_empty() {
                text.push_str(&format!("Would free {}.\n", human_bytes(plan.bytes())));
            }
            if refused {
                eprint!("{text}");
            } else {
                emit(&text)?;
            }
        }
        if let Some(refusal) = refusal {
            return Err(refusal.into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let result = prune::execute(layout, &plan);
    let bytes: u64 = result.removed.iter().map(|e| e.bytes).sum();
    if json {
        emit_json(&json!({
            "dryRun": false,
            "refused": false,
            "wouldRemove": plan.remove,
            "removed": result.removed,
            "bytes": bytes,
            "wouldFree": plan.bytes(),
            "skipped": result.skipped.iter().map(|s| json!({"path": s.path, "reason": s.reason})).chain(skipped).collect::<Vec<_>>(),
            "failed": result.failed.iter().map(|s| json!({"path": s.path, "reason": s.reason})).collect::<Vec<_>>(),
        }))?;
    } else {
        let mut text = String::new();
        for e in &result.removed {
            text.push_str(&format!(
                "Removed {} ({}, {})\n",
                e.path.display(),
                kind(e.kind),
                human_bytes(e.bytes)
            ));
        }
        for s in result.skipped.iter().chain(plan.skip.iter()) {
            text.push_str(&format!("Keeping {}: {}\n", s.path.display(), s.reason));
        }
        text.push_str(&format!("Freed {}.\n", human_bytes(bytes)));
        emit(&text)?;
    }
    if let Some(first) = result.failed.first() {
        // Everything else was still pruned; the exit code says the job is not complete.
        return Err(CliError::failure(format!(
            "could not remove {} director{}: {}\n  hint: Check the permissions of {} (or remove it by hand), then run `ktx runtime prune --yes` again.",
            result.failed.len(),
            if result.failed.len() == 1 { "y" } else { "ies" },
            first.reason,
            first.path.display()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

fn call(
    op: &str,
    payload: Option<&str>,
    features: &[FeatureArg],
    global: &GlobalArgs,
) -> Result<ExitCode, CliError> {
    let payload: Value = match payload {
        None => json!({}),
        Some(text) => serde_json::from_str(text).map_err(|e| CliError {
            code: 2,
            message: format!("PAYLOAD is not valid JSON: {e}"),
        })?,
    };
    let mut opts = global.call_options()?;
    opts.features = features.iter().map(|f| Feature::from(*f)).collect();
    let result = ktx_runner::call(op, payload, &opts)?;
    // The op's result as it came (plumbing: not a ktx document, so no schemaVersion).
    emit_raw_json(&result)?;
    Ok(ExitCode::SUCCESS)
}
