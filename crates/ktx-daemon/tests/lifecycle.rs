//! Lifecycle tests against a real Python daemon (see `common` for the cheap venv).
// Unix only: fakes venvs with sh scripts and chmod, checks SIGTERM/SIGKILL and /proc; a real Windows daemon needs a Windows CPython (none under Wine here): the Windows identity and TerminateProcess path is tested in ktx-base (under Wine by `cargo xtask artifacts-verify --target win32-x64`).
#![cfg(unix)]

mod common;

use common::*;
use ktx_daemon::{start, status, stop, Client, StatusKind, StopOutcome};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

fn ping(dir: &DaemonDir) -> serde_json::Value {
    let client = Client::connect_healthy(&dir.path(), &package_version(), &["core".into()])
        .expect("a healthy daemon");
    client
        .call(&json!({"abi": 1, "op": "runtime.ping", "payload": {"n": 1}}))
        .unwrap()
}

#[test]
fn start_reuse_stop_and_stop_again() {
    let dir = DaemonDir::new();
    assert_eq!(
        status(&dir.path(), &package_version()).kind,
        StatusKind::Stopped
    );
    let first = start(&dir.config()).unwrap();
    assert!(!first.reused);
    assert_eq!(first.restart_reason, None);
    assert_eq!(first.health.status, "ok");
    assert_eq!(first.state.features, vec!["core"]);
    assert!(proc_alive(first.state.pid));
    assert!(first.state.url().starts_with("http://127.0.0.1:"));

    let second = start(&dir.config()).unwrap();
    assert!(second.reused);
    assert_eq!(second.state.pid, first.state.pid);
    assert_eq!(second.state.port, first.state.port);

    let st = status(&dir.path(), &package_version());
    assert_eq!(st.kind, StatusKind::Running, "{}", st.detail);
    assert_eq!(
        ping(&dir),
        json!({"abi": 1, "ok": true, "result": {"echo": {"n": 1}}})
    );

    match stop(&dir.path()).unwrap() {
        StopOutcome::Stopped { pid, how } => {
            assert_eq!(pid, first.state.pid);
            assert_eq!(how, "shutdown");
        }
        other => panic!("expected Stopped, got {other:?}"),
    }
    assert!(wait_until(Duration::from_secs(5), || !proc_alive(
        first.state.pid
    )));
    assert!(!dir.path().join("state.json").exists());
    assert!(!dir.path().join("owner.json").exists());
    assert_eq!(
        stop(&dir.path()).unwrap(),
        StopOutcome::AlreadyStopped { cleaned: None }
    );
    assert_eq!(
        status(&dir.path(), &package_version()).kind,
        StatusKind::Stopped
    );
}

#[test]
fn token_is_owner_only_and_log_gets_output() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DaemonDir::new();
    let out = start(&dir.config()).unwrap();
    for f in ["token", "state.json", "owner.json", "lifecycle.lock"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(
        log.contains(&format!("listening on 127.0.0.1:{}", out.state.port)),
        "{log}"
    );
}

fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn fake_state(pid: u32, port: u16) -> String {
    json!({"schemaVersion": 1, "pid": pid, "host": "127.0.0.1", "port": port,
           "version": package_version(), "features": ["core"],
           "startedAt": "2026-01-01T00:00:00Z", "instanceId": "0123456789abcdef", "abi": 1})
    .to_string()
}

#[test]
fn state_naming_a_dead_pid_is_stale_and_replaced() {
    let dir = DaemonDir::new();
    std::fs::create_dir_all(dir.path()).unwrap();
    let pid = dead_pid();
    std::fs::write(dir.path().join("state.json"), fake_state(pid, 9)).unwrap();
    let st = status(&dir.path(), &package_version());
    assert_eq!(st.kind, StatusKind::Stale, "{}", st.detail);
    assert!(
        dir.path().join("state.json").exists(),
        "status is read-only"
    );

    let out = start(&dir.config()).unwrap();
    assert!(!out.reused);
    let reason = out.restart_reason.unwrap();
    assert!(reason.contains("stale"), "{reason}");
    assert_ne!(out.state.pid, pid);
    assert_eq!(out.health.status, "ok");
}

#[test]
fn state_naming_a_live_unrelated_process_is_stale_and_it_is_not_signalled() {
    let dir = DaemonDir::new();
    std::fs::create_dir_all(dir.path()).unwrap();
    let mut sleeper = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = sleeper.id();
    std::fs::write(dir.path().join("state.json"), fake_state(pid, 9)).unwrap();
    // An owner record with the right pid but another start time: a recycled pid.
    std::fs::write(
        dir.path().join("owner.json"),
        json!({"schemaVersion": 1, "pid": pid, "startTime": "1", "spawnedAt": "x"}).to_string(),
    )
    .unwrap();

    let st = status(&dir.path(), &package_version());
    assert_eq!(st.kind, StatusKind::Stale);
    assert!(st.detail.contains("another process"), "{}", st.detail);

    let out = start(&dir.config()).unwrap();
    assert!(!out.reused);
    assert!(out.restart_reason.unwrap().contains("stale"));
    assert_ne!(out.state.pid, pid);
    std::thread::sleep(Duration::from_millis(100));
    assert!(sleeper.try_wait().unwrap().is_none(), "sleep was signalled");

    // Same with the state pointing at it again and no owner record at all, via stop.
    stop(&dir.path()).unwrap();
    std::fs::write(dir.path().join("state.json"), fake_state(pid, 9)).unwrap();
    match stop(&dir.path()).unwrap() {
        StopOutcome::AlreadyStopped { cleaned } => assert!(cleaned.is_some()),
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("state.json").exists());
    std::thread::sleep(Duration::from_millis(100));
    assert!(sleeper.try_wait().unwrap().is_none(), "sleep was signalled");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn a_daemon_of_another_version_is_restarted_with_a_reason() {
    let dir = DaemonDir::new();
    let mut old = dir.config();
    old.python = old_python();
    old.version = OLD_VERSION.to_string();
    let first = start(&old).unwrap();
    assert_eq!(first.health.version, OLD_VERSION);
    let st = status(&dir.path(), &package_version());
    assert_eq!(st.kind, StatusKind::Stale);
    assert!(st.detail.contains(OLD_VERSION), "{}", st.detail);

    let second = start(&dir.config()).unwrap();
    assert!(!second.reused);
    let reason = second.restart_reason.unwrap();
    assert!(
        reason.contains(OLD_VERSION) && reason.contains(&package_version()),
        "{reason}"
    );
    assert_ne!(second.state.pid, first.state.pid);
    assert!(wait_until(Duration::from_secs(5), || !proc_alive(
        first.state.pid
    )));
    assert_eq!(second.health.version, package_version());
}

#[test]
fn an_interpreter_reporting_another_version_fails_to_start() {
    let dir = DaemonDir::new();
    let mut cfg = dir.config();
    cfg.python = old_python();
    let err = start(&cfg).unwrap_err().to_string();
    assert!(
        err.contains(OLD_VERSION) && err.contains("reinstall"),
        "{err}"
    );
    assert!(!dir.path().join("state.json").exists());
}

#[test]
fn a_wider_feature_request_restarts_with_the_union() {
    let dir = DaemonDir::new();
    let first = start(&dir.config()).unwrap();
    let mut wide = dir.config();
    wide.features = vec!["local-embeddings".into()];
    let second = start(&wide).unwrap();
    assert!(!second.reused);
    let reason = second.restart_reason.unwrap();
    assert!(reason.contains("local-embeddings requested"), "{reason}");
    assert_eq!(second.state.features, vec!["core", "local-embeddings"]);
    assert_ne!(first.state.pid, second.state.pid);
    // A narrower request reuses the wider daemon.
    let third = start(&dir.config()).unwrap();
    assert!(third.reused);
    assert_eq!(third.state.pid, second.state.pid);
}

#[test]
fn force_restarts() {
    let dir = DaemonDir::new();
    let first = start(&dir.config()).unwrap();
    let mut cfg = dir.config();
    cfg.force = true;
    let second = start(&cfg).unwrap();
    assert!(!second.reused);
    assert_eq!(second.restart_reason.as_deref(), Some("restart forced"));
    assert_ne!(first.state.pid, second.state.pid);
}

#[test]
fn requests_without_token_or_with_a_wrong_host_are_rejected() {
    let dir = DaemonDir::new();
    let out = start(&dir.config()).unwrap();
    let port = out.state.port;
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    let ok = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    assert_eq!(raw_status(port, &ok), 200);
    let no_token = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    assert_eq!(raw_status(port, &no_token), 401);
    let wrong_token = format!(
        "POST /v1/shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\n\r\n",
        "0".repeat(64)
    );
    assert_eq!(raw_status(port, &wrong_token), 401);
    let wrong_host = format!(
        "GET /health HTTP/1.1\r\nHost: attacker.example:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    assert_eq!(raw_status(port, &wrong_host), 403);
    assert!(proc_alive(out.state.pid));
    assert_eq!(
        status(&dir.path(), &package_version()).kind,
        StatusKind::Running
    );
}

#[test]
fn four_concurrent_starts_share_one_daemon() {
    let dir = DaemonDir::new();
    let cfg = dir.config();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| start(&cfg).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ports: Vec<u16> = outcomes.iter().map(|o| o.state.port).collect();
    assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
    assert_eq!(outcomes.iter().filter(|o| !o.reused).count(), 1);
}

#[test]
fn a_sigkilled_daemon_is_recovered_by_the_next_start() {
    let dir = DaemonDir::new();
    let first = start(&dir.config()).unwrap();
    unsafe_kill(first.state.pid);
    assert!(wait_until(Duration::from_secs(5), || !proc_alive(
        first.state.pid
    )));
    assert_eq!(
        status(&dir.path(), &package_version()).kind,
        StatusKind::Stale
    );
    let second = start(&dir.config()).unwrap();
    assert!(!second.reused);
    assert!(second.restart_reason.unwrap().contains("not running"));
    assert_ne!(second.state.pid, first.state.pid);
    assert_eq!(ping(&dir)["ok"], json!(true));
}

#[test]
fn idle_daemon_exits_and_removes_its_state() {
    let dir = DaemonDir::new();
    let mut cfg = dir.config();
    cfg.idle_timeout = Duration::from_secs(1);
    let out = start(&cfg).unwrap();
    assert!(wait_until(Duration::from_secs(10), || !proc_alive(
        out.state.pid
    )));
    assert!(!dir.path().join("state.json").exists());
    assert_eq!(
        status(&dir.path(), &package_version()).kind,
        StatusKind::Stopped
    );
}

#[test]
fn proxy_variables_are_ignored() {
    // The client never reads these; the daemon inherits them and ignores them too.
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
    ] {
        std::env::set_var(var, "http://127.0.0.1:9");
    }
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    let dir = DaemonDir::new();
    start(&dir.config()).unwrap();
    assert_eq!(ping(&dir)["ok"], json!(true));
}

#[test]
fn keep_alive_reuses_the_connection_across_calls() {
    let dir = DaemonDir::new();
    start(&dir.config()).unwrap();
    let client =
        Client::connect_healthy(&dir.path(), &package_version(), &["core".into()]).unwrap();
    for i in 0..50 {
        let r = client
            .call(&json!({"abi": 1, "op": "runtime.ping", "payload": {"i": i}}))
            .unwrap();
        assert_eq!(r["result"]["echo"]["i"], json!(i));
    }
    // ok:false answers come back as data.
    let r = client
        .call(&json!({"abi": 1, "op": "nope", "payload": {}}))
        .unwrap();
    assert_eq!(r["error"]["code"], json!("unknown_op"));
    // One connection served all of them: the daemon saw a single client port.
    let pid = client.state().pid;
    let conns = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count();
    // The listening socket plus at most one accepted connection.
    assert!(conns <= 2, "{conns} sockets open in the daemon");
}

#[test]
fn connect_healthy_refuses_missing_features_or_versions() {
    let dir = DaemonDir::new();
    assert!(Client::connect_healthy(&dir.path(), &package_version(), &[]).is_none());
    start(&dir.config()).unwrap();
    assert!(Client::connect_healthy(&dir.path(), &package_version(), &[]).is_some());
    assert!(Client::connect_healthy(&dir.path(), "9.9.9", &[]).is_none());
    assert!(Client::connect_healthy(
        &dir.path(),
        &package_version(),
        &["local-embeddings".into()]
    )
    .is_none());
}

#[test]
fn a_daemon_that_exits_at_once_reports_the_log_tail() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DaemonDir::new();
    let script = dir.tmp.path().join("python");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'boom: no module named ktx_daemon' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = dir.config();
    cfg.python = script;
    let err = start(&cfg).unwrap_err().to_string();
    assert!(err.contains("exited"), "{err}");
    assert!(err.contains("boom: no module named ktx_daemon"), "{err}");
    assert!(err.contains("daemon.log"), "{err}");
    assert!(!dir.path().join("owner.json").exists());
}

#[test]
fn a_daemon_that_never_answers_times_out_and_is_killed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DaemonDir::new();
    let script = dir.tmp.path().join("python");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'hanging forever'\nexec sleep 60\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = dir.config();
    cfg.python = script;
    cfg.start_timeout = Duration::from_millis(700);
    let mut pids = Vec::new();
    let err = ktx_daemon::start_with_progress(&cfg, &mut |p| {
        if let ktx_daemon::Progress::Spawned { pid } = p {
            pids.push(pid)
        }
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("did not answer /health"), "{err}");
    assert!(err.contains("hanging forever"), "{err}");
    assert_eq!(pids.len(), 1);
    assert!(wait_until(Duration::from_secs(5), || !proc_alive(pids[0])));
}

#[test]
fn a_daemon_without_owner_record_is_shut_down_over_http_not_signalled() {
    let dir = DaemonDir::new();
    let first = start(&dir.config()).unwrap();
    std::fs::remove_file(dir.path().join("owner.json")).unwrap();
    let st = status(&dir.path(), &package_version());
    assert_eq!(st.kind, StatusKind::Stale);
    assert!(st.detail.contains("no owner record"), "{}", st.detail);
    let second = start(&dir.config()).unwrap();
    assert!(!second.reused);
    assert!(second.restart_reason.unwrap().contains("no owner record"));
    // It authenticated with our token, so it was asked to shut down and is gone.
    assert!(wait_until(Duration::from_secs(5), || !proc_alive(
        first.state.pid
    )));
    assert!(proc_alive(second.state.pid));
}

/// A foreign local HTTP server (`python3 -m http.server` style) on a port of its own; returns
/// the child and the port.
fn foreign_http_server() -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import http.server as h\n\
             s = h.HTTPServer(('127.0.0.1', 0), h.SimpleHTTPRequestHandler)\n\
             print(s.server_address[1], flush=True)\n\
             s.serve_forever()",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().parse().unwrap())
}

#[test]
fn a_state_naming_a_foreign_server_is_stale_and_our_daemon_is_not_orphaned() {
    let dir = DaemonDir::new();
    let first = start(&dir.config()).unwrap();
    let (mut foreign, port) = foreign_http_server();
    // The state now names the foreign server's pid and port; owner.json still names ours.
    std::fs::write(
        dir.path().join("state.json"),
        fake_state(foreign.id(), port),
    )
    .unwrap();

    let st = status(&dir.path(), &package_version());
    assert_eq!(st.kind, StatusKind::Stale, "{}", st.detail);
    assert!(!st.detail.contains('\n'), "{}", st.detail);
    assert!(
        Client::connect_healthy(&dir.path(), &package_version(), &[]).is_none(),
        "the foreign server was trusted"
    );

    let second = start(&dir.config()).unwrap();
    assert!(!second.reused);
    // Our previous daemon, recorded in owner.json, was stopped rather than left running.
    assert!(
        wait_until(Duration::from_secs(5), || !proc_alive(first.state.pid)),
        "the daemon we started was orphaned"
    );
    assert!(proc_alive(second.state.pid));

    // Our daemon's pid with the foreign server's port: the answer is not trusted, our daemon
    // is stopped by signal (it is ours), the foreign server is left alone.
    let mut state = dir.state_json().unwrap();
    state["port"] = json!(port);
    std::fs::write(dir.path().join("state.json"), state.to_string()).unwrap();
    let st = status(&dir.path(), &package_version());
    assert_eq!(st.kind, StatusKind::Stale, "{}", st.detail);
    assert!(
        st.detail.contains("HTTP 404: <!DOCTYPE HTML>"),
        "{}",
        st.detail
    );
    assert!(!st.detail.contains("--force"), "{}", st.detail);
    assert!(Client::connect_healthy(&dir.path(), &package_version(), &[]).is_none());
    match stop(&dir.path()).unwrap() {
        StopOutcome::Stopped { pid, how } => {
            assert_eq!(pid, second.state.pid);
            assert_eq!(how, "SIGTERM");
        }
        other => panic!("{other:?}"),
    }
    assert!(!proc_alive(second.state.pid));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        foreign.try_wait().unwrap().is_none(),
        "the foreign server was signalled"
    );
    foreign.kill().unwrap();
    foreign.wait().unwrap();
}

#[test]
fn an_owner_record_naming_a_process_that_is_no_daemon_never_gets_it_signalled() {
    let dir = DaemonDir::new();
    std::fs::create_dir_all(dir.path()).unwrap();
    let mut sleeper = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = sleeper.id();
    // pid AND its real start time: only the command line tells it is not a daemon.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start_time = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    std::fs::write(dir.path().join("state.json"), fake_state(pid, 9)).unwrap();
    std::fs::write(
        dir.path().join("owner.json"),
        json!({"schemaVersion": 1, "pid": pid, "startTime": start_time, "spawnedAt": "x"})
            .to_string(),
    )
    .unwrap();
    match stop(&dir.path()).unwrap() {
        StopOutcome::AlreadyStopped { cleaned } => assert!(cleaned.is_some()),
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("state.json").exists());
    assert!(!dir.path().join("owner.json").exists());
    std::thread::sleep(Duration::from_millis(100));
    assert!(sleeper.try_wait().unwrap().is_none(), "sleep was signalled");
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn a_deleted_token_file_makes_the_daemon_stale_and_stop_terminates_it() {
    let dir = DaemonDir::new();
    let out = start(&dir.config()).unwrap();
    std::fs::remove_file(dir.path().join("token")).unwrap();
    let st = status(&dir.path(), &package_version());
    assert_eq!(st.kind, StatusKind::Stale);
    assert!(st.detail.contains("token file"), "{}", st.detail);
    assert!(Client::connect_healthy(&dir.path(), &package_version(), &[]).is_none());
    match stop(&dir.path()).unwrap() {
        StopOutcome::Stopped { pid, how } => {
            assert_eq!(pid, out.state.pid);
            assert_eq!(how, "SIGTERM");
        }
        other => panic!("{other:?}"),
    }
    assert!(!proc_alive(out.state.pid));
    assert!(!dir.path().join("state.json").exists());
    assert!(!dir.path().join("owner.json").exists());
}

#[test]
fn stop_escalates_to_sigkill_for_a_daemon_that_ignores_shutdown_and_sigterm() {
    let dir = DaemonDir::new();
    let stubborn = patched_python(
        dir.tmp.path(),
        "stubborn-python",
        "import signal\n\
         from ktx_daemon import server\n\
         server.Daemon.request_stop = lambda self, reason: None\n\
         _signal = signal.signal\n\
         signal.signal = lambda signum, handler: _signal(signum, signal.SIG_IGN)",
    );
    let mut cfg = dir.config();
    cfg.python = stubborn;
    let out = start(&cfg).unwrap();
    match stop(&dir.path()).unwrap() {
        StopOutcome::Stopped { pid, how } => {
            assert_eq!(pid, out.state.pid);
            assert_eq!(how, "SIGKILL");
        }
        other => panic!("{other:?}"),
    }
    assert!(!proc_alive(out.state.pid));
    assert!(!dir.path().join("owner.json").exists());
    assert_eq!(
        status(&dir.path(), &package_version()).kind,
        StatusKind::Stopped
    );
}

#[test]
fn a_daemon_speaking_another_abi_is_refused() {
    let dir = DaemonDir::new();
    let mut cfg = dir.config();
    cfg.python = patched_python(
        dir.tmp.path(),
        "abi2-python",
        "from ktx_daemon import abi\nabi.ABI_VERSION = 2",
    );
    let err = start(&cfg).unwrap_err().to_string();
    assert!(err.contains("speaks ABI 2"), "{err}");
    assert!(!dir.path().join("state.json").exists());
}

#[test]
fn a_call_over_the_body_limit_is_refused_unsent_and_safe_to_run_elsewhere() {
    let dir = DaemonDir::new();
    start(&dir.config()).unwrap();
    let client =
        Client::connect_healthy(&dir.path(), &package_version(), &["core".into()]).unwrap();
    let big = "x".repeat(ktx_daemon::MAX_REQUEST_BODY);
    let err = client
        .call(&json!({"abi": 1, "op": "runtime.ping", "payload": {"big": big}}))
        .unwrap_err();
    assert!(err.request_not_processed(), "{err}");
    assert!(err.to_string().contains("exceeds"), "{err}");
    // The connection is still good for the next call.
    let r = client
        .call(&json!({"abi": 1, "op": "runtime.ping", "payload": {}}))
        .unwrap();
    assert_eq!(r["ok"], json!(true));
}

#[test]
fn stop_during_a_long_call_lets_it_answer_and_health_answers_meanwhile() {
    let dir = DaemonDir::new();
    let mut cfg = dir.config();
    cfg.python = patched_python(
        dir.tmp.path(),
        "sleepy-python",
        "import time\n\
         from ktx_daemon import abi\n\
         def sleep(payload):\n\
         \x20   time.sleep(float(payload['seconds']))\n\
         \x20   return {'slept': payload['seconds']}\n\
         import __main__\n\
         __main__.sleep = sleep\n\
         abi.OPS['test.sleep'] = '__main__:sleep'",
    );
    let out = start(&cfg).unwrap();
    let client =
        Client::connect_healthy(&dir.path(), &package_version(), &["core".into()]).unwrap();
    std::thread::scope(|s| {
        let call = s.spawn(|| {
            client.call(&json!({"abi": 1, "op": "test.sleep", "payload": {"seconds": 1.5}}))
        });
        std::thread::sleep(Duration::from_millis(300));
        // /health answers while the call runs (a second connection of a second client).
        let other = Client::connect_healthy(&dir.path(), &package_version(), &[]);
        assert!(other.is_some(), "/health did not answer during a call");
        assert!(!call.is_finished());
        match stop(&dir.path()).unwrap() {
            StopOutcome::Stopped { pid, how } => {
                assert_eq!(pid, out.state.pid);
                assert_eq!(how, "shutdown");
            }
            other => panic!("{other:?}"),
        }
        let answer = call.join().unwrap().unwrap();
        assert_eq!(answer["result"]["slept"], json!(1.5), "{answer}");
    });
    assert!(!proc_alive(out.state.pid));
    assert!(!dir.path().join("state.json").exists());
}

#[test]
fn start_waits_through_loading_and_reports_progress() {
    let dir = DaemonDir::new();
    let mut cfg = dir.config();
    cfg.python = patched_python(
        dir.tmp.path(),
        "warming-python",
        "import time\n\
         from ktx_daemon import server\n\
         server.register_warmer('local-embeddings', lambda: (time.sleep(1.2), {'model': 'm'})[1])",
    );
    cfg.features = vec!["local-embeddings".into()];
    let mut phases = Vec::new();
    let out = ktx_daemon::start_with_progress(&cfg, &mut |p| {
        if let ktx_daemon::Progress::Waiting { phase, .. } = p {
            phases.push(phase)
        }
    })
    .unwrap();
    assert_eq!(out.health.status, "ok");
    assert_eq!(
        out.health.models.as_ref().unwrap()["local-embeddings"]["state"],
        json!("ready")
    );
    assert!(phases.iter().any(|p| p == "loading"), "{phases:?}");
    // A call needing the feature now finds a usable daemon.
    assert!(Client::connect_healthy(
        &dir.path(),
        &package_version(),
        &["local-embeddings".into()]
    )
    .is_some());
}
