//! The daemon transport: ABI v1 over loopback HTTP to the runtime's daemon (`ktx-daemon`).
//!
//! A call uses a healthy daemon of this runtime when one runs (right version, needed
//! features); it starts one only when asked (`--daemon` / `KTX_DAEMON=1`). Otherwise the
//! call goes one-shot. A daemon that cannot be reached at all (it just exited, e.g. on its
//! idle timeout) or that refuses the request before running it (HTTP 4xx: too large, or a
//! daemon replaced meanwhile) falls back to one-shot: the request was never run, so it cannot
//! run twice. A daemon that was asked for but cannot be started does not fail the command
//! either: one warning, then one-shot.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use ktx_base::duration::{self, FromEnv, Seconds};
use ktx_base::env;
use ktx_daemon::{Client, Progress, StartConfig, StartOutcome, StatusKind as DaemonStatus};
use ktx_runtime::abi::{self, Reply};
use ktx_runtime::doctor::{Check, Outcome};
use ktx_runtime::{normalize_features, Feature, Receipt, Runtime, KTX_VERSION};

use crate::transport::{OneShot, Transport};
use crate::RunError;

/// The PEP 440 version the runtime's Python package reports: the bundled asset manifest's
/// `version`, else the ktx SemVer mapped to PEP 440.
pub fn expected_version(rt: &Runtime) -> String {
    match rt.assets() {
        Ok(a) => a.manifest.version.clone(),
        Err(_) => pep440_of(KTX_VERSION),
    }
}

/// `X.Y.Z[-alpha.N|-beta.N|-rc.N|-dev.N]` -> PEP 440 (`aN`, `bN`, `rcN`, `.devN`).
pub fn pep440_of(semver: &str) -> String {
    let (base, pre) = semver.split_once('-').unwrap_or((semver, ""));
    let (tag, n) = pre.split_once('.').unwrap_or((pre, ""));
    match tag {
        "alpha" => format!("{base}a{n}"),
        "beta" => format!("{base}b{n}"),
        "rc" => format!("{base}rc{n}"),
        "dev" => format!("{base}.dev{n}"),
        _ => base.to_string(),
    }
}

/// The runtime's daemon directory.
pub fn daemon_dir(rt: &Runtime) -> PathBuf {
    rt.layout().daemon_dir()
}

fn feature_names(features: &[Feature]) -> Vec<String> {
    normalize_features(features)
        .iter()
        .map(|f| f.as_str().to_string())
        .collect()
}

/// `name` as a positive number of seconds. Unset or empty: None. Anything else that is not a
/// positive number: a warning naming the variable and the default kept, then None.
fn env_secs(name: &str, default: Duration) -> Option<Duration> {
    match duration::from_env(name, Seconds::POSITIVE_UP_TO_A_YEAR) {
        FromEnv::Unset => None,
        FromEnv::Valid(d) => Some(d),
        FromEnv::Invalid(text) => {
            eprintln!(
                "warning: ignoring {name}={text:?}: expected a positive number of seconds; using the default ({} s)",
                default.as_secs_f64()
            );
            None
        }
    }
}

/// A positive, finite number of seconds (`900`, `0.5`), at most a year.
#[cfg(test)]
fn parse_secs(text: &str) -> Option<Duration> {
    Seconds::POSITIVE_UP_TO_A_YEAR.parse(text)
}

/// Start configuration for this runtime: the receipt's interpreter, the runtime's daemon dir,
/// the expected version. `KTX_DAEMON_IDLE_TIMEOUT` and `KTX_DAEMON_START_TIMEOUT` (seconds)
/// override the idle timeout (15 min) and the start timeout (10 s).
pub fn start_config(
    rt: &Runtime,
    receipt: &Receipt,
    features: &[Feature],
    force: bool,
) -> StartConfig {
    let mut cfg = StartConfig::new(
        receipt.python_path.clone(),
        daemon_dir(rt),
        &expected_version(rt),
    );
    cfg.features = feature_names(features);
    cfg.force = force;
    if let Some(d) = env_secs(env::DAEMON_IDLE_TIMEOUT, cfg.idle_timeout) {
        cfg.idle_timeout = d;
    }
    if let Some(d) = env_secs(env::DAEMON_START_TIMEOUT, cfg.start_timeout) {
        cfg.start_timeout = d;
    }
    cfg
}

/// Progress lines on stderr for a daemon start (only for waits worth mentioning).
pub fn stderr_progress() -> impl FnMut(Progress) {
    let mut last_phase_report = Duration::ZERO;
    move |p| {
        let mut err = std::io::stderr().lock();
        match p {
            Progress::WaitingForLock { holder, path } => {
                let _ = writeln!(
                    err,
                    "Waiting for another ktx process ({}) to finish with the daemon (lock {})...",
                    holder.as_deref().unwrap_or("unknown holder"),
                    path.display()
                );
            }
            Progress::Stopping { pid, .. } => {
                let _ = writeln!(
                    err,
                    "Stopping the previous KTX Python daemon (pid {pid})..."
                );
            }
            Progress::Waiting { elapsed, phase } => {
                if elapsed >= last_phase_report + Duration::from_secs(2) {
                    last_phase_report = elapsed;
                    let _ = writeln!(
                        err,
                        "Waiting for the KTX Python daemon ({phase}, {:.0} s)...",
                        elapsed.as_secs_f64()
                    );
                }
            }
            Progress::Spawned { .. } => {}
        }
    }
}

/// Start (or reuse) the daemon of `rt` with `features`, progress on stderr.
pub fn start_daemon(
    rt: &Runtime,
    receipt: &Receipt,
    features: &[Feature],
    force: bool,
) -> Result<StartOutcome, RunError> {
    let cfg = start_config(rt, receipt, features, force);
    let mut progress = stderr_progress();
    ktx_daemon::start_with_progress(&cfg, &mut progress)
        .map_err(|e| RunError::Transport(e.to_string()))
}

/// Whether a healthy daemon of this runtime (this version, any features) answers now.
pub fn is_running(rt: &Runtime) -> bool {
    Client::connect_healthy(&daemon_dir(rt), &expected_version(rt), &feature_names(&[])).is_some()
}

/// ABI calls through a running daemon, falling back to one-shot when it cannot be reached.
#[derive(Debug)]
pub struct Daemon {
    client: Client,
    fallback: OneShot,
}

impl Transport for Daemon {
    fn name(&self) -> &'static str {
        "daemon"
    }

    fn send(&self, request: &Value, timeout: Duration) -> Result<Reply, RunError> {
        // The per-read timeout of the client bounds the wait for the answer.
        match self.client.call_with_timeout(request, Some(timeout)) {
            Ok(v) => {
                let body = serde_json::to_vec(&v).map_err(|e| {
                    RunError::Transport(format!("cannot re-encode the daemon's answer: {e}"))
                })?;
                abi::parse_response(&body).map_err(|e| {
                    RunError::Transport(format!(
                        "the daemon at {} answered an invalid ABI response: {e}\n  hint: `ktx runtime start --force` restarts it.",
                        self.client.state().url()
                    ))
                })
            }
            // Never run by the daemon: safe to run one-shot instead.
            Err(e) if e.request_not_processed() => self.fallback.send(request, timeout),
            Err(e) => Err(RunError::Transport(e.to_string())),
        }
    }
}

/// The daemon transport for a call, if one applies: a healthy daemon that serves the call's
/// features, or (when `start` is true) one started now.
pub fn select(
    rt: &Runtime,
    receipt: &Receipt,
    features: &[Feature],
    start: bool,
) -> Result<Option<Box<dyn Transport>>, RunError> {
    let names = feature_names(features);
    let version = expected_version(rt);
    let fallback = OneShot {
        python: receipt.python_path.clone(),
    };
    if let Some(client) = Client::connect_healthy(&daemon_dir(rt), &version, &names) {
        return Ok(Some(Box::new(Daemon { client, fallback })));
    }
    if !start {
        return Ok(None);
    }
    let log = rt.layout().daemon_log_path();
    // The daemon only makes calls faster: one that cannot be started is worth a warning,
    // not a failed command.
    let outcome = match start_daemon(rt, receipt, features, false) {
        Ok(outcome) => outcome,
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let log = log.display().to_string();
            // Most start errors already end their first line with the log path.
            let log_note = if first.contains(&log) {
                String::new()
            } else {
                format!(" (log: {log})")
            };
            eprintln!(
                "warning: could not start the KTX Python daemon, running without it: {first}\n  \
                 `ktx runtime start` shows the full error{log_note}."
            );
            return Ok(None);
        }
    };
    if let Some(reason) = &outcome.restart_reason {
        eprintln!("Replaced the previous KTX Python daemon: {reason}");
    }
    if !outcome.reused {
        eprintln!(
            "{} (pid {}, {})",
            ktx_runtime::messages::DAEMON_STARTED,
            outcome.state.pid,
            outcome.state.url()
        );
    }
    match Client::connect_healthy(&daemon_dir(rt), &version, &names) {
        Some(client) => Ok(Some(Box::new(Daemon { client, fallback }))),
        None => {
            eprintln!(
                "warning: the KTX Python daemon started (pid {}) but is not healthy, running without it.\n  \
                 See {} and run `ktx runtime start --force`.",
                outcome.state.pid,
                log.display()
            );
            Ok(None)
        }
    }
}

/// The stable id of the daemon doctor check.
pub const DAEMON_CHECK: &str = "daemon";

/// The `daemon` doctor check (`ktx runtime doctor` appends it to the runtime's checks): PASS
/// when running or stopped, WARN with a fix when stale, FAIL (not checked) under a runtime
/// root that fails the permissions check. Read-only.
pub fn doctor_check(rt: &Runtime) -> Check {
    if ktx_runtime::trust::check_layout(rt.layout()).is_err() {
        // The daemon's files are not read there; the permissions check says what to fix.
        return Check::new(
            DAEMON_CHECK,
            "daemon",
            Outcome::Fail,
            "not checked: ktx does not use a runtime root that fails the `runtime root permissions` check",
            Some("Fix the `runtime root permissions` failure above.".into()),
        );
    }
    let st = ktx_daemon::status(&daemon_dir(rt), &expected_version(rt));
    match st.kind {
        DaemonStatus::Running => Check::new(DAEMON_CHECK, "daemon", Outcome::Pass, st.detail, None),
        DaemonStatus::Stopped => Check::new(
            DAEMON_CHECK,
            "daemon",
            Outcome::Pass,
            "not running (optional: `ktx runtime start`, or --daemon / KTX_DAEMON=1)",
            None,
        ),
        DaemonStatus::Stale => Check::new(
            DAEMON_CHECK,
            "daemon",
            Outcome::Warn,
            format!(
                "{} (log: {})",
                st.detail,
                rt.layout().daemon_log_path().display()
            ),
            Some("Run `ktx runtime stop` to clean up, then `ktx runtime start`.".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_the_environment_are_positive_seconds() {
        assert_eq!(parse_secs("900"), Some(Duration::from_secs(900)));
        assert_eq!(parse_secs(" 0.5 "), Some(Duration::from_millis(500)));
        for bad in ["", "abc", "0", "-1", "NaN", "inf", "1e30", "15m"] {
            assert_eq!(parse_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn maps_semver_to_pep440() {
        assert_eq!(pep440_of("0.1.0-rc.0"), "0.1.0rc0");
        assert_eq!(pep440_of("1.2.3"), "1.2.3");
        assert_eq!(pep440_of("1.2.3-alpha.4"), "1.2.3a4");
        assert_eq!(pep440_of("1.2.3-beta.1"), "1.2.3b1");
        assert_eq!(pep440_of("1.2.3-dev.7"), "1.2.3.dev7");
    }
}
