//! End-to-end tests of `ktx runtime start|stop`, the daemon in `status`/`doctor`, and the
//! daemon transport of Python-backed commands, on the real binary with a real installed
//! runtime (one install per test binary; the tests share it and run one at a time).
//!
//! Needs `KTX_TEST_ASSET_DIR` (set by `cargo xtask test`, or `cargo xtask build-wheel --out DIR`)
//! and `uv` on PATH.
// Unix only: installs a real runtime (uv + CPython; none for Windows under Wine here) and checks the daemon through /proc and SIGKILL; Windows stop is covered in ktx-base's process tests.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{
    asset_manifest, daemon_dir, install_runtime, process_alive as alive, receipt,
    set_proxy_variables, status_json, test_env, text, wait_until, write_script,
};
use serde_json::Value;
use tempfile::TempDir;

/// The PEP 440 version of the bundled wheel (what the daemon reports), from the asset manifest,
/// so these tests survive `cargo xtask stamp-version`.
fn package_version() -> String {
    asset_manifest()["version"].as_str().unwrap().to_string()
}

/// What these tests add to the common test environment: the daemon logs every request (the
/// tests count calls in its log), and a daemon left behind by a failing test goes away by
/// itself.
fn daemon_env(cmd: &mut StdCommand) {
    cmd.env("KTX_DAEMON_ACCESS_LOG", "1")
        .env("KTX_DAEMON_IDLE_TIMEOUT", "120");
}

/// `ktx` on runtime root `root` in the test environment plus [`daemon_env`], bounded.
fn ktx(root: &Path) -> Command {
    let mut cmd = common::ktx_std(root);
    daemon_env(&mut cmd);
    let mut cmd = Command::from_std(cmd);
    cmd.timeout(Duration::from_secs(120));
    cmd
}

/// The shared ready runtime, and exclusive use of it (its daemon) for the calling test.
/// Every test starts and ends with the daemon stopped.
///
/// Unlike the fixed roots of `common` (shared across processes), this one is private to the
/// process: these tests stop, kill and replace the daemon, which a test of another process on
/// the same root would see. Within a process the lock makes them take turns.
fn runtime() -> (MutexGuard<'static, ()>, &'static Path) {
    static LOCK: Mutex<()> = Mutex::new(());
    static ROOT: OnceLock<TempDir> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let root = ROOT.get_or_init(|| {
        // Statics are never dropped, and nextest runs each test in its own process: name the
        // root after this process and sweep the roots of processes that are gone, so repeated
        // runs do not pile up installed runtimes under target/.
        sweep_dead_roots(Path::new(env!("CARGO_TARGET_TMPDIR")));
        let dir = tempfile::Builder::new()
            .prefix(&format!("daemon-cli-{}-", std::process::id()))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        install_runtime(dir.path());
        dir
    });
    stop(root.path());
    (guard, root.path())
}

/// Removes `daemon-cli-<pid>-*` roots whose test process has exited, stopping their daemon
/// first (best effort: a root another live process uses is left alone).
fn sweep_dead_roots(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("daemon-cli-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u64>().ok())
        else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        let _ = ktx(&entry.path()).args(["runtime", "stop"]).output();
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

fn state(root: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(daemon_dir(root).join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn stop(root: &Path) -> String {
    let out = ktx(root).args(["runtime", "stop"]).output().unwrap();
    assert!(out.status.success(), "stop failed: {}", text(&out.stderr));
    text(&out.stdout)
}

fn start_json(root: &Path, extra: &[&str]) -> (Value, String) {
    let out = ktx(root)
        .args(["runtime", "start", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "start failed: {}", text(&out.stderr));
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        text(&out.stderr),
    )
}

/// How many calls the daemon of `root` has logged (`KTX_DAEMON_ACCESS_LOG=1`).
fn calls_in_log(root: &Path) -> usize {
    std::fs::read_to_string(daemon_dir(root).join("daemon.log"))
        .unwrap_or_default()
        .matches("POST /v1/call -> 200")
        .count()
}

/// SIGKILLs `pid` and waits until it is gone.
fn kill_9(pid: u64) {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
}

fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no `{key}:` line in {stdout:?}"))
}

#[test]
fn start_reuse_stop_with_the_stable_messages() {
    let (_g, root) = runtime();
    let out = ktx(root).args(["runtime", "start"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = text(&out.stdout);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[0], "Started KTX Python daemon", "{first}");
    assert!(lines[1].starts_with("url: http://127.0.0.1:"), "{first}");
    assert!(lines[2].starts_with("pid: "), "{first}");
    // Users see ktx's SemVer; the PEP 440 form is only for Python.
    assert_eq!(lines[3], format!("version: {}", common::VERSION));
    assert_eq!(lines[4], "features: core");
    let pid: u64 = field(&first, "pid").parse().unwrap();
    assert!(alive(pid));

    let out = ktx(root).args(["runtime", "start"]).output().unwrap();
    let second = text(&out.stdout);
    assert!(
        second.starts_with("Using existing KTX Python daemon\n"),
        "{second}"
    );
    assert_eq!(field(&second, "pid"), pid.to_string());
    assert_eq!(field(&second, "url"), field(&first, "url"));

    let st = status_json(root);
    assert_eq!(st["daemon"]["kind"], "running");
    assert_eq!(st["daemon"]["pid"], pid);
    let human = text(
        &ktx(root)
            .args(["runtime", "status"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(human.contains("daemon:       running: pid"), "{human}");
    let doctor = ktx(root).args(["runtime", "doctor"]).output().unwrap();
    assert!(
        text(&doctor.stdout).contains("PASS daemon: pid"),
        "{}",
        text(&doctor.stdout)
    );

    assert_eq!(stop(root), "Stopped KTX Python daemon\n");
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
    assert!(state(root).is_none());
    assert_eq!(stop(root), "KTX Python daemon already stopped\n");
    let st = status_json(root);
    assert_eq!(st["daemon"]["kind"], "stopped");
}

#[test]
fn start_piped_into_cat_returns_within_seconds() {
    let (_g, root) = runtime();
    let ktx_bin = common::ktx_bin();
    let began = Instant::now();
    let mut sh = StdCommand::new("sh");
    test_env(&mut sh, root);
    daemon_env(&mut sh);
    let out = sh
        .arg("-c")
        .arg(format!(
            // fd 3 is a second copy of the pipe: an inherited descriptor of the CLI's.
            "exec timeout 30 sh -c '\"{}\" runtime start 3>&1 | cat'",
            ktx_bin.display()
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let took = began.elapsed();
    assert!(
        out.status.success(),
        "status {:?} after {took:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert!(text(&out.stdout).starts_with("Started KTX Python daemon\n"));
    // The pipeline ended although the daemon still runs: it did not inherit the pipe.
    let pid = state(root).unwrap()["pid"].as_u64().unwrap();
    assert!(alive(pid));
    assert!(took < Duration::from_secs(25), "took {took:?}");
    // Its standard streams are /dev/null and its log, never the CLI's.
    let fd = |n: u32| std::fs::read_link(format!("/proc/{pid}/fd/{n}")).unwrap();
    assert_eq!(fd(0), PathBuf::from("/dev/null"));
    for n in [1, 2] {
        assert_eq!(fd(n), daemon_dir(root).join("daemon.log"));
    }
    stop(root);
}

#[test]
fn four_concurrent_starts_report_the_same_daemon() {
    let (_g, root) = runtime();
    let outputs: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| ktx(root).args(["runtime", "start"]).output().unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stdouts: Vec<String> = outputs.iter().map(|o| text(&o.stdout)).collect();
    for o in &outputs {
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let urls: Vec<&str> = stdouts.iter().map(|s| field(s, "url")).collect();
    assert!(urls.iter().all(|u| *u == urls[0]), "{urls:?}");
    let started = stdouts
        .iter()
        .filter(|s| s.starts_with("Started KTX Python daemon"))
        .count();
    assert_eq!(started, 1, "{stdouts:?}");
    stop(root);
}

#[test]
fn sigkilled_daemon_is_stale_then_replaced_with_the_reason_printed() {
    let (_g, root) = runtime();
    let (first, _) = start_json(root, &[]);
    assert_eq!(first["status"], "started");
    let pid = first["pid"].as_u64().unwrap();
    kill_9(pid);
    let doctor = ktx(root).args(["runtime", "doctor"]).output().unwrap();
    let report = text(&doctor.stdout);
    assert!(report.contains("WARN daemon: "), "{report}");
    assert!(report.contains("Fix: Run `ktx runtime stop`"), "{report}");
    let st = status_json(root);
    assert_eq!(st["daemon"]["kind"], "stale");

    let (second, stderr) = start_json(root, &[]);
    assert_eq!(second["status"], "started");
    assert_ne!(second["pid"], first["pid"]);
    let reason = second["restartReason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("pid {pid} is not running")),
        "{reason}"
    );
    assert!(
        stderr.contains("Replaced the previous KTX Python daemon: "),
        "{stderr}"
    );

    let (third, stderr) = start_json(root, &["--force"]);
    assert_eq!(third["restartReason"], "restart forced");
    assert!(
        stderr.contains("Stopping the previous KTX Python daemon"),
        "{stderr}"
    );
    assert!(wait_until(Duration::from_secs(5), || !alive(
        second["pid"].as_u64().unwrap()
    )));
    stop(root);
}

#[test]
fn calls_use_a_running_daemon_and_start_one_only_when_asked() {
    let (_g, root) = runtime();
    // No daemon: one-shot, and none is started.
    let out = ktx(root)
        .args(["runtime", "call", "runtime.ping", r#"{"n":1}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(state(root).is_none());

    // --daemon starts one and goes through it.
    let before = calls_in_log(root);
    let out = ktx(root)
        .args(["--daemon", "runtime", "call", "runtime.ping", r#"{"n":2}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["echo"]["n"], 2);
    assert!(state(root).is_some());
    assert_eq!(calls_in_log(root), before + 1);

    // A running daemon is used without being asked.
    let out = ktx(root)
        .args(["runtime", "call", "runtime.ping", r#"{"n":3}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(calls_in_log(root), before + 2);

    // ok:false through the daemon maps to the same error as one-shot.
    let out = ktx(root)
        .args(["runtime", "call", "no.such.op"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown_op"),
        "{}",
        text(&out.stderr)
    );
    stop(root);

    // KTX_DAEMON=1 starts one as well.
    let out = ktx(root)
        .env("KTX_DAEMON", "1")
        .args(["runtime", "call", "runtime.ping"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(state(root).is_some());
    stop(root);
}

#[test]
fn idle_daemon_exits_by_itself() {
    let (_g, root) = runtime();
    let out = ktx(root)
        .env("KTX_DAEMON_IDLE_TIMEOUT", "1")
        .args(["runtime", "start", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = v["pid"].as_u64().unwrap();
    assert!(wait_until(Duration::from_secs(10), || !alive(pid)));
    assert!(state(root).is_none());
    assert_eq!(stop(root), "KTX Python daemon already stopped\n");
}

#[test]
fn corrupt_state_files_are_stale_reported_and_cleaned() {
    let (_g, root) = runtime();
    let (started, _) = start_json(root, &[]);
    let good = std::fs::read_to_string(daemon_dir(root).join("state.json")).unwrap();
    let wrong_types = good.replace(&format!("\"pid\": {}", started["pid"]), "\"pid\": \"abc\"");
    assert_ne!(wrong_types, good);
    let mut current = started["pid"].as_u64().unwrap();
    for (what, content) in [
        ("garbage", "garbage{\u{0}".to_string()),
        ("truncated", good[..good.len() / 2].to_string()),
        ("wrong types", wrong_types),
        ("not an object", "[1, 2]".to_string()),
    ] {
        let before = current;
        std::fs::write(daemon_dir(root).join("state.json"), content).unwrap();
        let st = status_json(root);
        assert_eq!(st["daemon"]["kind"], "stale", "{what}: {st}");
        assert!(
            st["daemon"]["detail"]
                .as_str()
                .unwrap()
                .contains("state.json is not valid"),
            "{what}: {st}"
        );
        // A call is not disturbed: it runs one-shot, quietly.
        let out = ktx(root)
            .args(["runtime", "call", "runtime.ping"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{what}");
        // The next start replaces it, stopping the daemon the corrupt state hid.
        let (next, stderr) = start_json(root, &[]);
        assert_eq!(next["status"], "started", "{what}");
        assert!(stderr.contains("stale daemon state"), "{what}: {stderr}");
        current = next["pid"].as_u64().unwrap();
        assert_ne!(current, before, "{what}");
        assert!(
            wait_until(Duration::from_secs(5), || !alive(before)),
            "{what}"
        );
    }
    // stop cleans a corrupt state too, and says so in JSON.
    let pid = state(root).unwrap()["pid"].as_u64().unwrap();
    std::fs::write(daemon_dir(root).join("state.json"), "{").unwrap();
    let out = ktx(root)
        .args(["runtime", "stop", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stopped"], true, "{v}");
    assert_eq!(v["pid"], pid, "{v}");
    assert!(!daemon_dir(root).join("state.json").exists());
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
    assert_eq!(status_json(root)["daemon"]["kind"], "stopped");
}

#[test]
fn a_dead_daemon_makes_calls_fall_back_to_one_shot_quietly() {
    let (_g, root) = runtime();
    let (first, _) = start_json(root, &[]);
    let pid = first["pid"].as_u64().unwrap();
    kill_9(pid);
    let out = ktx(root)
        .args(["runtime", "call", "runtime.ping", r#"{"n":7}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["echo"]["n"], 7);
    // Nothing was started or cleaned by the call.
    assert_eq!(state(root).unwrap()["pid"], pid);
    assert_eq!(status_json(root)["daemon"]["kind"], "stale");
}

#[test]
fn proxy_variables_never_reach_the_loopback_client() {
    let (_g, root) = runtime();
    let junk = |cmd: &mut Command| {
        set_proxy_variables(cmd, "http://127.0.0.1:9");
        cmd.env("NO_PROXY", ",,*.invalid").env("no_proxy", "");
    };
    let mut cmd = ktx(root);
    junk(&mut cmd);
    let out = cmd.args(["runtime", "start"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = calls_in_log(root);
    let mut cmd = ktx(root);
    junk(&mut cmd);
    let out = cmd
        .args(["runtime", "call", "runtime.ping"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        calls_in_log(root),
        before + 1,
        "the call did not go through the daemon"
    );
    stop(root);
}

/// Turns `daemon.log` into a directory (so the daemon cannot be given a log) until dropped.
struct UnwritableLog(PathBuf);

impl UnwritableLog {
    fn new(root: &Path) -> Self {
        let log = daemon_dir(root).join("daemon.log");
        let _ = std::fs::remove_file(&log);
        std::fs::create_dir_all(log.join("x")).unwrap();
        UnwritableLog(log)
    }
}

impl Drop for UnwritableLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_daemon_that_cannot_start_fails_start_clearly_and_calls_still_run() {
    let (_g, root) = runtime();
    let _log = UnwritableLog::new(root);
    let out = ktx(root).args(["runtime", "start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("opening the daemon log failed for"), "{err}");
    assert!(err.contains("daemon.log"), "{err}");
    assert!(state(root).is_none());

    // --daemon asked for one: a warning, then the call runs one-shot.
    let out = ktx(root)
        .args(["--daemon", "runtime", "call", "runtime.ping", r#"{"n":3}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("warning: could not start the KTX Python daemon, running without it"),
        "{err}"
    );
    assert!(err.lines().count() <= 2, "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["echo"]["n"], 3);
}

#[test]
fn a_daemon_of_another_version_is_replaced_with_the_reason_printed() {
    let (_g, root) = runtime();
    let receipt = receipt(root);
    let python = receipt["pythonPath"].as_str().unwrap();
    // The runtime's own interpreter, with the package reporting an older version.
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("old-python");
    write_script(
        &script,
        &format!(
            "while [ \"$#\" -gt 0 ] && [ \"$1\" != -m ]; do shift; done\nshift\n\
             exec \"{python}\" -I -c 'import sys\nimport ktx_daemon._version as v\nv.__version__ = \"0.0.9\"\n\
             from ktx_daemon.__main__ import main\nsys.exit(main(sys.argv[2:]))' \"$@\""
        ),
    );
    let mut cfg = ktx_daemon::StartConfig::new(&script, daemon_dir(root), "0.0.9");
    cfg.idle_timeout = Duration::from_secs(120);
    let old = ktx_daemon::start(&cfg).unwrap();
    assert_eq!(old.health.version, "0.0.9");

    let st = status_json(root);
    assert_eq!(st["daemon"]["kind"], "stale", "{st}");
    let out = ktx(root).args(["runtime", "start"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("Started KTX Python daemon\n"),
        "{}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    let expected = format!(
        "Replaced the previous KTX Python daemon: the running daemon is version 0.0.9, expected {}",
        package_version()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(wait_until(Duration::from_secs(5), || !alive(u64::from(
        old.state.pid
    ))));
    stop(root);
}

#[test]
fn a_junk_timeout_variable_is_named_in_a_warning_and_the_default_kept() {
    let (_g, root) = runtime();
    let out = ktx(root)
        .env("KTX_DAEMON_IDLE_TIMEOUT", "15m")
        .args(["runtime", "start"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: ignoring KTX_DAEMON_IDLE_TIMEOUT=\"15m\""),
        "{err}"
    );
    let log = std::fs::read_to_string(daemon_dir(root).join("daemon.log")).unwrap();
    assert!(log.contains("idle-timeout 900s"), "{log}");
    stop(root);
}
