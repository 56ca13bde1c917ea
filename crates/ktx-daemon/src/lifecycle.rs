//! `start`, `stop` and `status`: the daemon's lifecycle.

use crate::client::{Client, Health};
use crate::error::{DaemonError, Result};
use crate::files::{self, DaemonPaths, DaemonState, OwnerRecord};
use crate::lock::LifecycleLock;
use crate::process::{self, Signal};
use ktx_base::abi::ABI_VERSION;
use ktx_base::time::now_rfc3339;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start (or reuse) the daemon.
#[derive(Debug, Clone)]
pub struct StartConfig {
    /// The runtime's interpreter (`<venv>/bin/python`).
    pub python: PathBuf,
    /// The daemon directory (`<root>/<version>/daemon`); created if missing.
    pub daemon_dir: PathBuf,
    /// Expected PEP 440 version of the Python package; a daemon of another version is replaced.
    pub version: String,
    /// Features needed (`core` is always added); a daemon serving fewer is replaced.
    pub features: Vec<String>,
    /// Replace a running daemon even if it could be reused.
    pub force: bool,
    /// Idle time after which the daemon exits by itself (default 15 minutes).
    pub idle_timeout: Duration,
    /// How long a new daemon may take to answer `/health` (default 10 s).
    pub start_timeout: Duration,
    /// How long a daemon may stay `loading` (warming a feature up) after it answered (default 5 min).
    pub loading_timeout: Duration,
    /// How long to wait for another process's start or stop (default 60 s).
    pub lock_timeout: Duration,
}

impl StartConfig {
    /// Defaults for everything but the interpreter, the directory and the version.
    pub fn new(python: impl Into<PathBuf>, daemon_dir: impl Into<PathBuf>, version: &str) -> Self {
        StartConfig {
            python: python.into(),
            daemon_dir: daemon_dir.into(),
            version: version.to_string(),
            features: vec!["core".to_string()],
            force: false,
            idle_timeout: Duration::from_secs(900),
            start_timeout: Duration::from_secs(10),
            loading_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(60),
        }
    }
}

/// What `start` did.
#[derive(Debug, Clone)]
pub struct StartOutcome {
    /// An already running daemon was reused (`Using existing KTX Python daemon`).
    pub reused: bool,
    /// Why a previous daemon (or its leftover state) was replaced, when one was.
    pub restart_reason: Option<String>,
    /// The running daemon.
    pub state: DaemonState,
    /// Its `/health` answer.
    pub health: Health,
    /// Time from spawn to healthy (None when reused).
    pub startup: Option<Duration>,
}

/// What `stop` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// A running daemon was stopped (`Stopped KTX Python daemon`).
    Stopped {
        /// Its pid.
        pid: u32,
        /// How it went down: `shutdown`, `SIGTERM` or `SIGKILL` (Windows: `TerminateProcess`).
        how: String,
    },
    /// Nothing was running (`KTX Python daemon already stopped`); `cleaned` says which stale
    /// leftovers were removed, if any.
    AlreadyStopped {
        /// Description of removed stale state.
        cleaned: Option<String>,
    },
}

/// Kind of [`DaemonStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// No daemon and no state.
    Stopped,
    /// A healthy daemon of the expected version runs.
    Running,
    /// State exists but its daemon is dead, foreign, not answering or of another version.
    Stale,
}

impl StatusKind {
    /// `stopped`, `running` or `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Stopped => "stopped",
            StatusKind::Running => "running",
            StatusKind::Stale => "stale",
        }
    }
}

/// Read-only view of the daemon.
#[derive(Debug, Clone)]
pub struct DaemonStatus {
    /// stopped, running or stale.
    pub kind: StatusKind,
    /// One human sentence.
    pub detail: String,
    /// The state file, when readable.
    pub state: Option<DaemonState>,
    /// The health answer, when it answered.
    pub health: Option<Health>,
}

/// Progress reported during `start` and `stop`.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Another process holds the lifecycle lock.
    WaitingForLock {
        /// Who, as recorded in the lock file.
        holder: Option<String>,
        /// The lock file.
        path: PathBuf,
    },
    /// Stopping a daemon before replacing it.
    Stopping {
        /// Its pid.
        pid: u32,
        /// Why.
        reason: String,
    },
    /// A new daemon process was spawned.
    Spawned {
        /// Its pid.
        pid: u32,
    },
    /// Still waiting for the daemon (about once a second).
    Waiting {
        /// Since spawn (or since we started waiting on a reused daemon).
        elapsed: Duration,
        /// `starting` or `loading`.
        phase: String,
    },
}

/// What we found in the daemon directory.
enum Found {
    /// Nothing recorded, nothing of ours running.
    Nothing,
    /// A verified daemon answered (maybe of another version or with fewer features).
    Answering(Client, Health),
    /// Leftovers: state and/or a process of ours that is not usable.
    Stale {
        reason: String,
        state: Option<DaemonState>,
        /// Our own process (pid + start time verified), which may be signalled.
        ours: Option<OwnerRecord>,
        /// Authenticated client when it answered with the right identity (for /v1/shutdown).
        client: Option<Client>,
    },
}

/// How long a daemon asked to shut down may take to exit: above the daemon's own bounded
/// wait for running calls (`SHUTDOWN_DRAIN_SECONDS`, 4 s, in `ktx_daemon/server.py`).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The process of `owner` still runs: same pid, same start time, and it is `ktx_daemon serve`.
/// Only such a process is ever signalled.
fn is_our_daemon(owner: &OwnerRecord) -> bool {
    process::is_same_process(owner.pid, &owner.start_time) && process::is_daemon_process(owner.pid)
}

fn inspect(paths: &DaemonPaths) -> Found {
    let owner: Option<OwnerRecord> = files::read_json(&paths.owner).unwrap_or(None);
    // Our own daemon as recorded at spawn, even when the state names another pid (a state
    // file edited or left by someone else must not orphan the daemon we started).
    let owner_alive = owner.clone().filter(is_our_daemon);
    let state: std::result::Result<Option<DaemonState>, String> = files::read_json(&paths.state);
    match state {
        Ok(None) => match owner_alive {
            None => Found::Nothing,
            Some(o) => Found::Stale {
                reason: format!("daemon pid {} runs without a state file", o.pid),
                state: None,
                ours: Some(o),
                client: None,
            },
        },
        Err(e) => Found::Stale {
            reason: e,
            state: None,
            ours: owner_alive,
            client: None,
        },
        Ok(Some(state)) => match Client::connect_verified(paths) {
            Ok((client, health)) => Found::Answering(client, health),
            Err(reason) => {
                // A live process with no owner record (or our own, verified one) may still be
                // a daemon of ours: if it authenticates with our token and the state's
                // identity, it can be told to shut down over HTTP (never signalled). A pid
                // whose start time contradicts the owner record is a stranger: no contact.
                let contradicted = owner.as_ref().is_some_and(|o| o.pid == state.pid)
                    && owner_alive.as_ref().is_none_or(|o| o.pid != state.pid);
                let client = (!contradicted && process::is_running(state.pid))
                    .then(|| Client::for_state(paths, state.clone()).ok())
                    .flatten()
                    .filter(|c| c.health().is_ok_and(|h| c.check_identity(&h).is_ok()));
                Found::Stale {
                    reason,
                    state: Some(state),
                    ours: owner_alive,
                    client,
                }
            }
        },
    }
}

/// The pid of a daemon that may be running from `daemon_dir`, decided from its files alone
/// (no HTTP, nothing written): for callers that must never delete a runtime under a live
/// daemon (prune, install's garbage collection).
///
/// Our own recorded process (`owner.json`: pid **and** start time) counts when it still runs.
/// Otherwise `state.json`'s pid counts while that pid runs, unless the owner record names the
/// same pid with another start time: then the pid was recycled and the daemon is gone.
pub fn running_pid(daemon_dir: &Path) -> Option<u32> {
    let paths = DaemonPaths::new(daemon_dir);
    let owner: Option<OwnerRecord> = files::read_json(&paths.owner).unwrap_or(None);
    if let Some(o) = owner.as_ref() {
        if process::is_same_process(o.pid, &o.start_time) {
            return Some(o.pid);
        }
    }
    let state: serde_json::Value = files::read_json(&paths.state).ok().flatten()?;
    let pid = u32::try_from(state.get("pid")?.as_u64()?).ok()?;
    if owner.is_some_and(|o| o.pid == pid) {
        return None;
    }
    process::may_be_running(pid).then_some(pid)
}

/// Read-only status of the daemon in `daemon_dir` against the `expected_version`.
pub fn status(daemon_dir: &Path, expected_version: &str) -> DaemonStatus {
    let paths = DaemonPaths::new(daemon_dir);
    if let Err(e) = files::check_dir(&paths.dir) {
        // Nothing in a directory another user could write is read: its state may be planted.
        return DaemonStatus {
            kind: StatusKind::Stale,
            detail: e.to_string().replace("\n  hint: ", "; "),
            state: None,
            health: None,
        };
    }
    match inspect(&paths) {
        Found::Nothing => DaemonStatus {
            kind: StatusKind::Stopped,
            detail: "no daemon running".into(),
            state: None,
            health: None,
        },
        Found::Answering(client, health) => {
            let state = client.state().clone();
            let (kind, detail) = if health.abi != ABI_VERSION {
                (
                    StatusKind::Stale,
                    format!(
                        "daemon pid {} speaks ABI {}, ktx needs {ABI_VERSION}; `ktx runtime start` replaces it",
                        state.pid, health.abi
                    ),
                )
            } else if health.version != expected_version {
                (
                    StatusKind::Stale,
                    format!(
                        "daemon pid {} runs version {}, expected {}; `ktx runtime start` replaces it",
                        state.pid, health.version, expected_version
                    ),
                )
            } else {
                (
                    StatusKind::Running,
                    format!(
                        "pid {} at {} ({}), features {}",
                        state.pid,
                        state.url(),
                        health.status,
                        health.features.join(", ")
                    ),
                )
            };
            DaemonStatus {
                kind,
                detail,
                state: Some(state),
                health: Some(health),
            }
        }
        Found::Stale { reason, state, .. } => DaemonStatus {
            kind: StatusKind::Stale,
            detail: format!("{reason}; `ktx runtime start` or `ktx runtime stop` cleans it up"),
            state,
            health: None,
        },
    }
}

/// Start the daemon, or reuse the running one (see [`start_with_progress`]).
pub fn start(config: &StartConfig) -> Result<StartOutcome> {
    start_with_progress(config, &mut |_| {})
}

fn wanted_features(config: &StartConfig) -> Vec<String> {
    let mut features = vec!["core".to_string()];
    for f in &config.features {
        if !features.contains(f) {
            features.push(f.clone());
        }
    }
    features
}

/// Start the daemon or reuse the running one, under `lifecycle.lock`.
///
/// Reuse needs: pid alive with the recorded start time, `/health` answering with the state's
/// instance id, the expected version, and every requested feature. Anything else is cleaned
/// up (our own process stopped; a foreign process never signalled; state compare-and-deleted)
/// and a new daemon is spawned detached (new session, stdin null, output to `daemon.log`).
pub fn start_with_progress(
    config: &StartConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<StartOutcome> {
    let paths = DaemonPaths::new(&config.daemon_dir);
    files::ensure_dir(&paths.dir)?;
    let _lock = LifecycleLock::acquire(&paths.lock, "start", config.lock_timeout, &mut |h| {
        progress(Progress::WaitingForLock {
            holder: h,
            path: paths.lock.clone(),
        })
    })?;
    let mut features = wanted_features(config);

    let restart_reason = match inspect(&paths) {
        Found::Nothing => None,
        Found::Answering(client, health) => {
            let reason = replace_reason(config, &health, &mut features);
            match reason {
                None => {
                    let health = if health.status == "loading" {
                        wait_until_ok(&client, config.loading_timeout, progress, &paths, None)?
                    } else {
                        health
                    };
                    return Ok(StartOutcome {
                        reused: true,
                        restart_reason: None,
                        state: client.state().clone(),
                        health,
                        startup: None,
                    });
                }
                Some(reason) => {
                    let state = client.state().clone();
                    let owner: Option<OwnerRecord> = files::read_json(&paths.owner).unwrap_or(None);
                    progress(Progress::Stopping {
                        pid: state.pid,
                        reason: reason.clone(),
                    });
                    let owner = owner.filter(|o| o.pid == state.pid);
                    take_down(&paths, Some(&state), owner.as_ref(), Some(&client))?;
                    Some(reason)
                }
            }
        }
        Found::Stale {
            reason,
            state,
            ours,
            client,
        } => {
            if let Some(pid) = ours
                .as_ref()
                .map(|o| o.pid)
                .or(client.as_ref().map(|c| c.state().pid))
            {
                progress(Progress::Stopping {
                    pid,
                    reason: reason.clone(),
                });
            }
            take_down(&paths, state.as_ref(), ours.as_ref(), client.as_ref())?;
            Some(format!("stale daemon state: {reason}"))
        }
    };
    let (state, health, startup) = spawn(config, &paths, &features, progress)?;
    Ok(StartOutcome {
        reused: false,
        restart_reason,
        state,
        health,
        startup: Some(startup),
    })
}

/// Why a daemon that answered must be replaced (`None`: it can be reused): another version or
/// ABI, features missing (then `features` grows by what it served: another caller may rely on
/// them), or a forced restart.
fn replace_reason(
    config: &StartConfig,
    health: &Health,
    features: &mut Vec<String>,
) -> Option<String> {
    let missing: Vec<String> = features
        .iter()
        .filter(|f| !health.features.contains(f))
        .cloned()
        .collect();
    if health.version != config.version {
        Some(format!(
            "the running daemon is version {}, expected {}",
            health.version, config.version
        ))
    } else if health.abi != ABI_VERSION {
        Some(format!(
            "the running daemon speaks ABI {}, ktx needs {ABI_VERSION}",
            health.abi
        ))
    } else if !missing.is_empty() {
        // Keep what the old daemon served: another caller may rely on it.
        for f in &health.features {
            if !features.contains(f) {
                features.push(f.clone());
            }
        }
        Some(format!(
            "the running daemon serves {}; {} requested",
            health.features.join(", "),
            missing.join(", ")
        ))
    } else if config.force {
        Some("restart forced".to_string())
    } else {
        None
    }
}

/// Stop the daemon in `daemon_dir` with default timeouts.
pub fn stop(daemon_dir: &Path) -> Result<StopOutcome> {
    stop_with_progress(daemon_dir, Duration::from_secs(60), &mut |_| {})
}

/// Stop the daemon: `POST /v1/shutdown`, wait, then SIGTERM, then SIGKILL after a grace period
/// (Windows: `TerminateProcess` on the verified process).
/// Only a process whose start time matches the recorded one is ever signalled. Stale state is
/// removed (compare-and-delete).
pub fn stop_with_progress(
    daemon_dir: &Path,
    lock_timeout: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<StopOutcome> {
    let paths = DaemonPaths::new(daemon_dir);
    files::check_dir(&paths.dir)?;
    if !fs::symlink_metadata(&paths.dir).is_ok_and(|m| m.is_dir()) {
        return Ok(StopOutcome::AlreadyStopped { cleaned: None });
    }
    let _lock = LifecycleLock::acquire(&paths.lock, "stop", lock_timeout, &mut |h| {
        progress(Progress::WaitingForLock {
            holder: h,
            path: paths.lock.clone(),
        })
    })?;
    match inspect(&paths) {
        Found::Nothing => {
            files::remove_owner_if(&paths, None)?;
            Ok(StopOutcome::AlreadyStopped { cleaned: None })
        }
        Found::Answering(client, _) => {
            let state = client.state().clone();
            let owner: Option<OwnerRecord> = files::read_json(&paths.owner).unwrap_or(None);
            let owner = owner.filter(|o| o.pid == state.pid);
            let down = take_down(&paths, Some(&state), owner.as_ref(), Some(&client))?;
            let (pid, how) = down.unwrap_or((state.pid, "shutdown".into()));
            Ok(StopOutcome::Stopped { pid, how })
        }
        Found::Stale {
            reason,
            state,
            ours,
            client,
        } => match take_down(&paths, state.as_ref(), ours.as_ref(), client.as_ref())? {
            Some((pid, how)) => Ok(StopOutcome::Stopped { pid, how }),
            None => Ok(StopOutcome::AlreadyStopped {
                cleaned: Some(reason),
            }),
        },
    }
}

/// Wait until `pid` (with `start_time`) is gone, polling.
fn wait_gone(pid: u32, start_time: Option<&str>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let alive = match start_time {
            Some(st) => process::is_same_process(pid, st),
            None => process::is_running(pid),
        };
        if !alive {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What follows a `/v1/shutdown` the daemon did not obey, each step with its grace period.
/// Windows has no SIGTERM for a console-less process: there it is `TerminateProcess` at once.
#[cfg(unix)]
const ESCALATION: &[(Signal, &str, Duration)] = &[
    (Signal::Term, "SIGTERM", Duration::from_secs(3)),
    (Signal::Kill, "SIGKILL", Duration::from_secs(3)),
];
#[cfg(not(unix))]
const ESCALATION: &[(Signal, &str, Duration)] =
    &[(Signal::Kill, "TerminateProcess", Duration::from_secs(3))];

/// Bring a daemon down and remove its leftovers: `POST /v1/shutdown` through `client` (a
/// daemon that authenticated with our token and the state's identity), then, for our own
/// recorded process `ours` if it still runs, SIGTERM and SIGKILL, each followed by a grace
/// period. Returns the pid that went down and how (`shutdown`, `SIGTERM`, `SIGKILL`), or None
/// when no process was running.
fn take_down(
    paths: &DaemonPaths,
    state: Option<&DaemonState>,
    ours: Option<&OwnerRecord>,
    client: Option<&Client>,
) -> Result<Option<(u32, String)>> {
    let mut down = None;
    if let Some(client) = client {
        let pid = client.state().pid;
        let start_time = ours.filter(|o| o.pid == pid).map(|o| o.start_time.as_str());
        if client.shutdown().is_ok() && wait_gone(pid, start_time, SHUTDOWN_WAIT) {
            down = Some((pid, "shutdown".to_string()));
        }
    }
    if let Some(o) = ours {
        if process::is_same_process(o.pid, &o.start_time) {
            let mut how = None;
            for &(sig, name, grace) in ESCALATION {
                process::signal_if_same(o.pid, &o.start_time, sig);
                if wait_gone(o.pid, Some(&o.start_time), grace) {
                    how = Some(name.to_string());
                    break;
                }
            }
            match how {
                Some(how) => down = Some((o.pid, how)),
                None => {
                    return Err(DaemonError::StopFailed {
                        pid: o.pid,
                        message: format!(
                            "it survived /v1/shutdown, {}",
                            ESCALATION
                                .iter()
                                .map(|(_, name, _)| *name)
                                .collect::<Vec<_>>()
                                .join(" and ")
                        ),
                    })
                }
            }
        }
    }
    files::remove_state_if(paths, state.map(|s| s.instance_id.as_str()))?;
    // The owner record goes unless it still names a running daemon of ours.
    match files::read_json::<OwnerRecord>(&paths.owner) {
        Ok(Some(o)) if is_our_daemon(&o) => {}
        Ok(None) => {}
        _ => files::remove_owner_if(paths, None)?,
    }
    Ok(down)
}

#[cfg(unix)]
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // Mark every inherited descriptor above stderr close-on-exec, so the daemon keeps
            // no pipe of the CLI's parent open (`ktx runtime start | cat` must not hang). Best
            // effort: needs Linux 5.11.
            #[cfg(target_os = "linux")]
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
}

/// Windows: no console (the daemon must not pop up a window nor die with the CLI's console),
/// its own process group (a Ctrl-C in the CLI's console does not reach it).
#[cfg(windows)]
fn detach(command: &mut Command) {
    use std::os::windows::process::CommandExt;
    use windows_sys::Win32::System::Threading::{
        CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, DETACHED_PROCESS,
    };
    command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
}

#[cfg(not(any(unix, windows)))]
fn detach(_command: &mut Command) {}

fn start_failed(paths: &DaemonPaths, offset: u64, reason: String) -> DaemonError {
    DaemonError::StartFailed {
        reason,
        log_path: paths.log.clone(),
        log_tail: files::log_tail(&paths.log, offset, 25),
    }
}

/// Kill a child that never became healthy and remove what it left.
fn abandon(child: &mut Child, paths: &DaemonPaths) {
    if let Some(info) = process::proc_info(child.id()) {
        process::signal_if_same(child.id(), &info.start_time, Signal::Kill);
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Ok(Some(state)) = files::read_json::<DaemonState>(&paths.state) {
        if state.pid == child.id() {
            let _ = files::remove_state_if(paths, Some(&state.instance_id));
        }
    }
    let _ = files::remove_owner_if(paths, Some(child.id()));
}

/// Spawn a new daemon and return it once it is healthy and proven to be the one we want:
/// [`launch`] it, record its identity ([`record_owner`]), [`wait_healthy`], then
/// [`verify_identity`] (ABI and version) and wait out a `loading` phase. A daemon that fails
/// any step is killed and its leftovers removed.
fn spawn(
    config: &StartConfig,
    paths: &DaemonPaths,
    features: &[String],
    progress: &mut dyn FnMut(Progress),
) -> Result<(DaemonState, Health, Duration)> {
    let mut child = launch(config, paths, features, progress)?;
    let mut owner = record_owner(&mut child, paths)?;
    let (client, health) = wait_healthy(&mut child, paths, config.start_timeout, progress)?;
    if let Err(reason) = verify_identity(config, &health) {
        abandon(&mut child.process, paths);
        return Err(start_failed(paths, child.log_offset, reason));
    }
    owner.instance_id = Some(client.state().instance_id.clone());
    let _ = write_owner(paths, &owner);
    let health = if health.status == "loading" {
        match wait_until_ok(
            &client,
            config.loading_timeout,
            progress,
            paths,
            Some((&mut child.process, child.log_offset)),
        ) {
            Ok(h) => h,
            Err(e) => {
                abandon(&mut child.process, paths);
                return Err(e);
            }
        }
    } else {
        health
    };
    let startup = child.began.elapsed();
    // Reap the child when it exits, so a long-lived caller keeps no zombie (a zombie's pid
    // would still look alive). The CLI usually exits first; then init adopts it.
    let mut process = child.process;
    std::thread::spawn(move || {
        let _ = process.wait();
    });
    Ok((client.state().clone(), health, startup))
}

/// A daemon process we just spawned.
struct Launched {
    process: Child,
    /// Where this run's output begins in `daemon.log`.
    log_offset: u64,
    /// When it was spawned.
    began: Instant,
}

impl Launched {
    fn pid(&self) -> u32 {
        self.process.id()
    }
}

/// Write a fresh token and spawn `python -m ktx_daemon serve`, detached (own session, stdin
/// null, stdout and stderr appended to `daemon.log`).
fn launch(
    config: &StartConfig,
    paths: &DaemonPaths,
    features: &[String],
    progress: &mut dyn FnMut(Progress),
) -> Result<Launched> {
    files::write_new_token(paths)?;
    let (mut log, offset) = files::open_log(paths)?;
    {
        use std::io::Write;
        let _ = writeln!(
            log,
            "{} ktx: starting daemon version {} features {} with {}",
            now_rfc3339(),
            config.version,
            features.join(","),
            config.python.display()
        );
    }
    let log_err = log
        .try_clone()
        .map_err(|e| DaemonError::io("duplicating the daemon log handle", &paths.log, e))?;
    let mut command = Command::new(&config.python);
    command
        .args(["-I", "-u", "-X", "utf8", "-m", "ktx_daemon", "serve"])
        .arg("--state-file")
        .arg(&paths.state)
        .arg("--token-file")
        .arg(&paths.token)
        .arg("--idle-timeout")
        .arg(format!("{}", config.idle_timeout.as_secs_f64().max(0.001)))
        .arg("--features")
        .arg(features.join(","))
        // stdout/stderr below append to this file; knowing its path lets the daemon rotate it
        // (daemon.log -> daemon.log.1 past 4 MiB) instead of growing it without bound.
        .arg("--log-file")
        .arg(&paths.log)
        .current_dir(&paths.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    detach(&mut command);
    let began = Instant::now();
    let process = command.spawn().map_err(|e| {
        start_failed(
            paths,
            offset,
            format!(
                "cannot run {}: {e}; reinstall the runtime with `ktx runtime install --force`",
                config.python.display()
            ),
        )
    })?;
    progress(Progress::Spawned { pid: process.id() });
    Ok(Launched {
        process,
        log_offset: offset,
        began,
    })
}

/// Write `owner.json`: the child's pid and process start time, so that only this very
/// process is ever treated as our daemon (and signalled).
fn record_owner(child: &mut Launched, paths: &DaemonPaths) -> Result<OwnerRecord> {
    let pid = child.pid();
    if let Err(e) = ktx_base::process::require_support("tracking the daemon process") {
        abandon(&mut child.process, paths);
        return Err(start_failed(paths, child.log_offset, e.to_string()));
    }
    let Some(info) = process::proc_info(pid) else {
        abandon(&mut child.process, paths);
        return Err(start_failed(
            paths,
            child.log_offset,
            format!("daemon pid {pid} vanished right after spawn"),
        ));
    };
    let owner = OwnerRecord {
        schema_version: 1,
        pid,
        start_time: info.start_time,
        spawned_at: now_rfc3339(),
        instance_id: None,
    };
    if let Err(e) = write_owner(paths, &owner) {
        abandon(&mut child.process, paths);
        return Err(e);
    }
    Ok(owner)
}

/// Wait (at most `timeout` from spawn) for the child's state file and a first `/health`
/// answer carrying the state's identity. The child exiting, or the timeout, is an error (the
/// child is then killed and its leftovers removed).
fn wait_healthy(
    child: &mut Launched,
    paths: &DaemonPaths,
    timeout: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Client, Health)> {
    let (pid, offset, began) = (child.pid(), child.log_offset, child.began);
    let deadline = began + timeout;
    let mut next_tick = began + Duration::from_secs(1);
    let mut delay = Duration::from_millis(5);
    loop {
        match child.process.try_wait() {
            Ok(Some(status)) => {
                let _ = files::remove_owner_if(paths, Some(pid));
                return Err(start_failed(
                    paths,
                    offset,
                    format!("daemon pid {pid} exited with {status} before answering"),
                ));
            }
            Ok(None) => {}
            Err(e) => {
                abandon(&mut child.process, paths);
                return Err(start_failed(
                    paths,
                    offset,
                    format!("waiting for pid {pid}: {e}"),
                ));
            }
        }
        if let Some(answer) = first_answer(paths, pid) {
            return Ok(answer);
        }
        let now = Instant::now();
        if now >= deadline {
            abandon(&mut child.process, paths);
            return Err(start_failed(
                paths,
                offset,
                format!(
                    "daemon pid {pid} did not answer /health within {:.0} s",
                    timeout.as_secs_f64()
                ),
            ));
        }
        if now >= next_tick {
            progress(Progress::Waiting {
                elapsed: began.elapsed(),
                phase: "starting".into(),
            });
            next_tick = now + Duration::from_secs(1);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

/// The client and first `/health` answer of daemon `pid`, once its state file names it and it
/// answers with the state's identity.
fn first_answer(paths: &DaemonPaths, pid: u32) -> Option<(Client, Health)> {
    let state = files::read_json::<DaemonState>(&paths.state).ok()??;
    if state.pid != pid {
        return None;
    }
    let client = Client::for_state(paths, state).ok()?;
    let health = client.health().ok()?;
    client.check_identity(&health).ok()?;
    Some((client, health))
}

/// The new daemon speaks our ABI and is the expected version: otherwise the runtime's
/// interpreter runs another `ktx_daemon` than this ktx was built with (`Err`: why).
fn verify_identity(config: &StartConfig, health: &Health) -> std::result::Result<(), String> {
    if health.abi != ABI_VERSION {
        return Err(format!(
            "{} runs a ktx_daemon that speaks ABI {}, but ktx needs {ABI_VERSION}; reinstall the runtime with `ktx runtime install --force`",
            config.python.display(),
            health.abi
        ));
    }
    if health.version != config.version {
        return Err(format!(
            "{} runs ktx_daemon version {}, but ktx expects {}; reinstall the runtime with `ktx runtime install --force`",
            config.python.display(),
            health.version,
            config.version
        ));
    }
    Ok(())
}

fn write_owner(paths: &DaemonPaths, owner: &OwnerRecord) -> Result<()> {
    let data = serde_json::to_vec_pretty(owner).map_err(|e| {
        DaemonError::io(
            "encoding the owner record",
            &paths.owner,
            std::io::Error::other(e),
        )
    })?;
    files::write_atomic(&paths.owner, &data, "the daemon owner record")
}

fn wait_until_ok(
    client: &Client,
    timeout: Duration,
    progress: &mut dyn FnMut(Progress),
    paths: &DaemonPaths,
    mut child: Option<(&mut Child, u64)>,
) -> Result<Health> {
    let began = Instant::now();
    let offset = child.as_ref().map_or(0, |(_, o)| *o);
    loop {
        if let Some((c, _)) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(start_failed(
                    paths,
                    offset,
                    format!("daemon exited with {status} while loading"),
                ));
            }
        }
        let health = client.health().map_err(|e| {
            start_failed(
                paths,
                offset,
                format!("daemon stopped answering while loading: {e}"),
            )
        })?;
        if health.status != "loading" {
            return Ok(health);
        }
        if began.elapsed() >= timeout {
            return Err(start_failed(
                paths,
                offset,
                format!(
                    "daemon still loading after {:.0} s: {}",
                    timeout.as_secs_f64(),
                    health.models.map(|m| m.to_string()).unwrap_or_default()
                ),
            ));
        }
        progress(Progress::Waiting {
            elapsed: began.elapsed(),
            phase: "loading".into(),
        });
        std::thread::sleep(Duration::from_millis(250));
    }
}
