//! `ktx runtime start|stop` and the daemon section of `ktx runtime status`: what they print.
//! The lifecycle itself lives in `ktx-daemon`; the runtime glue and the daemon doctor check in
//! `ktx_runner::daemon`.

use std::process::ExitCode;

use serde_json::{json, Value};

use ktx_daemon::{Health, StatusKind, StopOutcome};
use ktx_runtime::{Feature, Runtime};

use ktx_runtime::messages::{
    DAEMON_ALREADY_STOPPED, DAEMON_REUSED, DAEMON_STARTED, DAEMON_STOPPED,
};
use ktx_runtime::pep440::display_version;

use crate::output::{emit, emit_json};
use crate::{CliError, GlobalArgs};

fn daemon_error(e: ktx_daemon::DaemonError) -> CliError {
    CliError::failure(e.to_string())
}

/// `ktx runtime start [--feature F]... [--force] [--json]`: ensure the runtime (per the
/// lazy-install policy), then start the daemon or reuse the running one.
pub fn start(
    features: Vec<Feature>,
    force: bool,
    json: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, CliError> {
    let rt = Runtime::from_env()?;
    let mut opts = global.call_options()?;
    opts.features = features.clone();
    let receipt = ktx_runner::ensure_runtime(&rt, &opts)?;
    let out = ktx_runner::daemon::start_daemon(&rt, &receipt, &features, force)?;
    if let Some(reason) = &out.restart_reason {
        eprintln!("Replaced the previous KTX Python daemon: {reason}");
    }
    let failed_models = failed_models(out.health.models.as_ref());
    for (feature, error) in &failed_models {
        eprintln!("warning: {feature} did not warm up: {error}");
    }
    let state = &out.state;
    if json {
        emit_json(&json!({
            "status": if out.reused { "reused" } else { "started" },
            "reused": out.reused,
            "restartReason": out.restart_reason,
            "url": state.url(),
            "host": state.host,
            "port": state.port,
            "pid": state.pid,
            "version": display_version(&state.version),
            "wheelVersion": state.version,
            "features": state.features,
            "instanceId": state.instance_id,
            "startedAt": state.started_at,
            "startupMs": out.startup.map(|d| d.as_millis() as u64),
            "health": health_json(&out.health),
            "logPath": rt.layout().daemon_log_path(),
        }))?;
    } else {
        emit(&format!(
            "{}\nurl: {}\npid: {}\nversion: {}\nfeatures: {}\n",
            if out.reused {
                DAEMON_REUSED
            } else {
                DAEMON_STARTED
            },
            state.url(),
            state.pid,
            display_version(&state.version),
            state.features.join(", ")
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon's `/health` answer as ktx prints it: `version` in SemVer, the Python package's
/// own PEP 440 form as `wheelVersion`, and every key present (`models` null when absent).
fn health_json(health: &Health) -> Value {
    json!({
        "status": health.status,
        "version": display_version(&health.version),
        "wheelVersion": health.version,
        "features": health.features,
        "pid": health.pid,
        "instanceId": health.instance_id,
        "abi": health.abi,
        "models": health.models,
    })
}

fn failed_models(models: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Object(map)) = models else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, m)| m.get("state").and_then(Value::as_str) == Some("failed"))
        .map(|(f, m)| {
            let error = m
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            (f.clone(), error.to_string())
        })
        .collect()
}

/// `ktx runtime stop [--json]`.
pub fn stop(json: bool) -> Result<ExitCode, CliError> {
    let rt = Runtime::from_env()?;
    let dir = ktx_runner::daemon::daemon_dir(&rt);
    let mut progress = ktx_runner::daemon::stderr_progress();
    let lock_timeout = std::time::Duration::from_secs(60);
    let outcome =
        ktx_daemon::stop_with_progress(&dir, lock_timeout, &mut progress).map_err(daemon_error)?;
    if json {
        // One shape whatever happened: the keys that do not apply are null.
        let v = match &outcome {
            StopOutcome::Stopped { pid, how } => {
                json!({"stopped": true, "pid": pid, "how": how, "cleaned": null})
            }
            StopOutcome::AlreadyStopped { cleaned } => {
                json!({"stopped": false, "pid": null, "how": null, "cleaned": cleaned})
            }
        };
        emit_json(&v)?;
    } else {
        match &outcome {
            StopOutcome::Stopped { .. } => emit(&format!("{DAEMON_STOPPED}\n"))?,
            StopOutcome::AlreadyStopped { cleaned } => {
                emit(&format!("{DAEMON_ALREADY_STOPPED}\n"))?;
                if let Some(what) = cleaned {
                    eprintln!("Removed stale daemon state: {what}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon part of `ktx runtime status --json` (read-only). Every key is present in every
/// state; those of a daemon that is not running (or did not answer) are null.
pub fn status_json(rt: &Runtime) -> Value {
    let dir = ktx_runner::daemon::daemon_dir(rt);
    let st = ktx_daemon::status(&dir, &ktx_runner::daemon::expected_version(rt));
    let state = st.state.as_ref();
    json!({
        "kind": st.kind.as_str(),
        "detail": st.detail,
        "daemonDir": dir,
        "logPath": rt.layout().daemon_log_path(),
        "url": state.map(|s| s.url()),
        "pid": state.map(|s| s.pid),
        "port": state.map(|s| s.port),
        "version": state.map(|s| display_version(&s.version)),
        "wheelVersion": state.map(|s| &s.version),
        "features": state.map(|s| &s.features),
        "instanceId": state.map(|s| &s.instance_id),
        "startedAt": state.map(|s| &s.started_at),
        "health": st.health.as_ref().map(health_json),
    })
}

/// The daemon lines of `ktx runtime status` (read-only).
pub fn status_section(rt: &Runtime) -> String {
    let dir = ktx_runner::daemon::daemon_dir(rt);
    let st = ktx_daemon::status(&dir, &ktx_runner::daemon::expected_version(rt));
    let mut text = format!("  daemon:       {}: {}\n", st.kind.as_str(), st.detail);
    if st.kind != StatusKind::Stopped {
        text.push_str(&format!(
            "  daemon log:   {}\n",
            rt.layout().daemon_log_path().display()
        ));
    }
    text
}
