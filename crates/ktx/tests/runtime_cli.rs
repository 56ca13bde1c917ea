//! End-to-end tests of `ktx runtime ...` on the real binary, with real uv and real Python, each
//! in its own temporary runtime root.
//!
//! Needs `KTX_TEST_ASSET_DIR` (set by `cargo xtask test`, or `cargo xtask build-wheel --out DIR`)
//! and `uv` on PATH. Tests named `slow_*` run real installs that download packages (PyPI, or the
//! configured index) and take several seconds each; the rest share one ready runtime or need
//! no install at all.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::OnceLock;

use assert_cmd::Command;
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn asset_dir() -> PathBuf {
    match std::env::var_os("KTX_TEST_ASSET_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => panic!(
            "KTX_TEST_ASSET_DIR is not set: run `cargo xtask test` or set KTX_TEST_ASSET_DIR (cargo xtask build-wheel --out DIR)"
        ),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn real_uv() -> PathBuf {
    which("uv").expect(
        "uv is not on PATH: run `cargo xtask test` (it puts .dev-venv/bin on PATH) or install uv",
    )
}

/// The real executable of the machine's python3 (not a shim).
fn real_python() -> PathBuf {
    let out = StdCommand::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `ktx` with a private root and the test assets; ktx-specific variables from the caller's
/// environment removed.
fn ktx(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ktx").unwrap();
    cmd.env("KTX_RUNTIME_ROOT", root)
        .env("KTX_ASSET_DIR", asset_dir())
        .env_remove("KTX_UV")
        .env_remove("KTX_PYTHON")
        .env_remove("KTX_FIND_LINKS")
        .env_remove("KTX_LOCK_TIMEOUT")
        .env_remove("KTX_DAEMON");
    cmd
}

fn status_json(root: &Path) -> Value {
    let out = ktx(root)
        .args(["runtime", "status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn vdir(root: &Path) -> PathBuf {
    root.join(VERSION)
}

fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A uv wrapper that appends its arguments to `<dir>/uv-calls` then runs the real uv.
fn recording_uv(dir: &Path) -> (PathBuf, PathBuf) {
    let script = dir.join("uv-wrapper");
    let record = dir.join("uv-calls");
    write_script(
        &script,
        &format!(
            "echo \"$*\" >> '{}'\nexec '{}' \"$@\"",
            record.display(),
            real_uv().display()
        ),
    );
    (script, record)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn log_count(root: &Path) -> usize {
    fs::read_dir(vdir(root).join("logs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// One ready runtime shared by the read-only tests. It lives under the target dir and is
/// installed through ktx itself, so concurrent test processes (nextest runs one per test)
/// are serialised by ktx's install lock; later runs hit the fast path (or rebuild when the
/// test wheel changed).
fn shared_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ktx-shared-runtime");
        let out = ktx(&dir).args(["runtime", "install"]).output().unwrap();
        assert!(
            out.status.success(),
            "shared install failed: {}",
            stderr_of(&out)
        );
        dir
    })
    .as_path()
}

// ---------------------------------------------------------------- shared ready runtime

#[test]
fn ready_runtime_reports_status_json() {
    let root = shared_root();
    let st = status_json(root);
    assert_eq!(st["schemaVersion"], 1);
    assert_eq!(st["kind"], "ready");
    assert_eq!(st["manifest"]["features"], serde_json::json!(["core"]));
    assert_eq!(st["manifest"]["ktxVersion"], VERSION);
    assert_eq!(st["manifest"]["installer"]["name"], "uv");
    let layout = &st["layout"];
    assert_eq!(layout["runtimeRoot"], root.to_str().unwrap());
    assert_eq!(layout["versionDir"], vdir(root).to_str().unwrap());
    assert_eq!(
        layout["manifestPath"],
        vdir(root).join("manifest.json").to_str().unwrap()
    );
    assert_eq!(layout["assetDir"], asset_dir().to_str().unwrap());
    let python = PathBuf::from(layout["pythonPath"].as_str().unwrap());
    assert!(python.starts_with(layout["venvDir"].as_str().unwrap()) && python.exists());
}

#[test]
fn second_install_is_the_fast_path_without_any_uv_call() {
    let root = shared_root();
    let tmp = tempfile::tempdir().unwrap();
    let (uv, record) = recording_uv(tmp.path());
    let logs_before = log_count(root);
    let out = ktx(root)
        .env("KTX_UV", &uv)
        .args(["runtime", "install", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["performed"], false);
    assert_eq!(v["features"], serde_json::json!(["core"]));
    assert!(
        stderr_of(&out).contains("Installed features: core\n"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !record.exists(),
        "uv was called on the fast path: {:?}",
        fs::read_to_string(&record)
    );
    assert_eq!(
        log_count(root),
        logs_before,
        "the fast path must not start an install attempt"
    );
    assert!(stderr_of(&out).contains(&format!(
        "KTX Python runtime ready: {}",
        vdir(root).display()
    )));
}

#[test]
fn doctor_passes_on_a_ready_runtime() {
    let root = shared_root();
    let out = ktx(root).args(["runtime", "doctor"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "doctor failed:\n{text}\n{}",
        stderr_of(&out)
    );
    for label in ["python", "uv", "bundled wheel", "managed runtime"] {
        assert!(
            text.contains(&format!("PASS {label}: ")),
            "no PASS line for {label}:\n{text}"
        );
    }
    // The optional feature is not installed in the shared core runtime: a warning, not a
    // failure, with the command that installs it.
    assert!(
        text.contains(
            "WARN local embeddings: not installed (optional; `ktx embed` needs it)\n  Fix: ktx runtime install --feature local-embeddings --yes\n"
        ),
        "{text}"
    );
    let out = ktx(root)
        .args(["runtime", "doctor", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let labels: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    for label in [
        "python",
        "uv",
        "bundled wheel",
        "managed runtime",
        "local embeddings",
    ] {
        assert!(labels.contains(&label), "{labels:?}"); // other crates may add checks
    }
}

#[test]
fn calls_go_through_the_abi_and_map_errors() {
    let root = shared_root();
    let out = ktx(root)
        .args([
            "--no-input",
            "runtime",
            "call",
            "runtime.ping",
            r#"{"x": [1, "two"]}"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"echo": {"x": [1, "two"]}}));
    let out = ktx(root)
        .args(["--no-input", "runtime", "call", "no.such.op"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("unknown_op"),
        "{}",
        stderr_of(&out)
    );
}

// ---------------------------------------------------------------- no install needed

#[test]
fn no_input_without_a_runtime_fails_with_the_install_command() {
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path())
        .args(["--no-input", "runtime", "call", "runtime.ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("`ktx runtime install`"),
        "{}",
        stderr_of(&out)
    );
    // Not a terminal and no flag: same as --no-input (never installs).
    let out = ktx(root.path())
        .args(["runtime", "call", "runtime.ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("ktx runtime install"));
    let out = ktx(root.path())
        .args([
            "--no-input",
            "runtime",
            "call",
            "runtime.ping",
            "--feature",
            "local-embeddings",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("`ktx runtime install --feature local-embeddings --yes`"),
        "{}",
        stderr_of(&out)
    );
    // Not a terminal: the same exact command for the feature.
    let out = ktx(root.path())
        .args(["runtime", "start", "--feature", "local-embeddings"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("`ktx runtime install --feature local-embeddings --yes`"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !vdir(root.path()).exists(),
        "--no-input must not create anything"
    );
}

#[test]
fn yes_with_no_input_is_a_usage_error() {
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path())
        .args(["--yes", "--no-input", "runtime", "call", "runtime.ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let out = ktx(root.path())
        .args(["runtime", "status", "--yes", "--no-input"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!vdir(root.path()).exists());
}

#[test]
fn tampered_wheel_is_refused_naming_the_file_and_nothing_is_installed() {
    let assets = tempfile::tempdir().unwrap();
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(asset_dir().join("manifest.json")).unwrap())
            .unwrap();
    let wheel = manifest["wheel"]["file"].as_str().unwrap().to_string();
    fs::copy(
        asset_dir().join("manifest.json"),
        assets.path().join("manifest.json"),
    )
    .unwrap();
    let mut bytes = fs::read(asset_dir().join(&wheel)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff; // same size, different content
    fs::write(assets.path().join(&wheel), bytes).unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path())
        .env("KTX_ASSET_DIR", assets.path())
        .args(["runtime", "install"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("checksum mismatch") && err.contains(&wheel),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        0,
        "something was created in the root"
    );
    // doctor reports it too
    let out = ktx(root.path())
        .env("KTX_ASSET_DIR", assets.path())
        .args(["runtime", "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL bundled wheel: ") && text.contains("  Fix: "),
        "{text}"
    );
}

#[test]
fn a_held_install_lock_makes_install_wait_then_time_out() {
    let root = tempfile::tempdir().unwrap();
    let lock = vdir(root.path()).join("install.lock");
    let guard = ktx_runtime::lock::try_lock(&lock)
        .unwrap()
        .expect("lock is free");
    let out = ktx(root.path())
        .env("KTX_LOCK_TIMEOUT", "0.5")
        .args(["runtime", "install"])
        .output()
        .unwrap();
    drop(guard);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    let pid = std::process::id();
    assert!(
        err.contains(&format!(
            "Waiting for another ktx process (pid {pid}) to finish installing the runtime..."
        )),
        "{err}"
    );
    assert!(err.contains("KTX_LOCK_TIMEOUT"), "{err}");
}

#[test]
fn prune_lists_refuses_removes_and_keeps_current_and_busy_versions() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let pinned: Value =
        serde_json::from_str(include_str!("../../ktx-runtime/uv-pins.json")).unwrap();
    let pinned = pinned["version"].as_str().unwrap();
    for dir in [
        vdir(r),
        r.join("0.0.9/venvs/x"),
        r.join("0.0.8"),
        r.join("not-a-version"),
    ] {
        fs::create_dir_all(&dir).unwrap();
    }
    fs::write(vdir(r).join("marker"), "current").unwrap();
    fs::write(r.join("0.0.9/venvs/x/file"), vec![0u8; 4096]).unwrap();
    for v in ["0.0.1", pinned] {
        fs::create_dir_all(r.join("tools/uv").join(v)).unwrap();
        fs::write(r.join("tools/uv").join(v).join("uv"), "bin").unwrap();
    }
    // dry run lists, removes nothing
    let out = ktx(r)
        .args(["runtime", "prune", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<&str> = v["wouldRemove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(
        listed.iter().any(|p| p.ends_with("/0.0.9"))
            && listed.iter().any(|p| p.ends_with("/0.0.8"))
    );
    assert!(listed.iter().any(|p| p.ends_with("tools/uv/0.0.1")));
    assert!(r.join("0.0.9").exists());
    // no --yes: refuses, points at --dry-run
    let out = ktx(r).args(["runtime", "prune"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("--dry-run"), "{}", stderr_of(&out));
    assert!(r.join("0.0.9").exists());
    // --yes while 0.0.8 is in use by another process: it (and the uv copies) survive
    let guard = ktx_runtime::lock::try_lock(&r.join("0.0.8/install.lock"))
        .unwrap()
        .unwrap();
    let out = ktx(r).args(["runtime", "prune", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!r.join("0.0.9").exists());
    assert!(r.join("0.0.8").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("in use"));
    drop(guard);
    let out = ktx(r).args(["runtime", "prune", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!r.join("0.0.8").exists());
    assert!(!r.join("tools/uv/0.0.1").exists());
    assert!(
        r.join("tools/uv").join(pinned).join("uv").exists(),
        "the pinned uv must survive"
    );
    assert_eq!(
        fs::read_to_string(vdir(r).join("marker")).unwrap(),
        "current"
    );
    assert!(r.join("not-a-version").exists());
}

// ---------------------------------------------------------------- slow: real installs

#[test]
fn slow_fresh_install_force_rebuild_and_broken_repair() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    assert_eq!(status_json(r)["kind"], "missing");
    let out = ktx(r).args(["runtime", "install"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("Installing KTX Python runtime (core) with uv..."),
        "{err}"
    );
    assert!(
        err.contains(&format!("KTX Python runtime ready: {}", vdir(r).display())),
        "{err}"
    );
    let st = status_json(r);
    assert_eq!(st["kind"], "ready");
    assert_eq!(st["manifest"]["features"], serde_json::json!(["core"]));
    let first_venv = PathBuf::from(st["layout"]["venvDir"].as_str().unwrap());

    // --force rebuilds into a new venv and garbage-collects the old one
    let out = ktx(r)
        .args(["runtime", "install", "--force", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["performed"], true);
    let st = status_json(r);
    assert_eq!(st["kind"], "ready");
    let second_venv = PathBuf::from(st["layout"]["venvDir"].as_str().unwrap());
    assert_ne!(first_venv, second_venv);
    assert!(!first_venv.exists(), "old venv not collected");
    assert_eq!(log_count(r), 2, "one kept log per attempt");

    // the interpreter behind the venv is gone -> broken; install repairs it
    let cfg = second_venv.join("pyvenv.cfg");
    let text = fs::read_to_string(&cfg).unwrap();
    let broken: String = text
        .lines()
        .map(|l| {
            if l.starts_with("home") {
                "home = /nonexistent/ktx-test/bin".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&cfg, broken).unwrap();
    let st = status_json(r);
    assert_eq!(st["kind"], "broken", "{st}");
    assert!(st["detail"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/ktx-test/bin"));
    let out = ktx(r).args(["runtime", "doctor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL managed runtime: "));
    let out = ktx(r).args(["runtime", "install"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(status_json(r)["kind"], "ready");
}

#[test]
fn slow_racing_installs_install_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (uv, record) = recording_uv(tmp.path());
    let bin = assert_cmd::cargo::cargo_bin("ktx");
    let children: Vec<_> = (0..4)
        .map(|_| {
            StdCommand::new(&bin)
                .args(["runtime", "install"])
                .env("KTX_RUNTIME_ROOT", root.path())
                .env("KTX_ASSET_DIR", asset_dir())
                .env("KTX_UV", &uv)
                .env_remove("KTX_PYTHON")
                .env_remove("KTX_FIND_LINKS")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "a racer failed: {}", stderr_of(o));
    }
    let calls = fs::read_to_string(&record).unwrap();
    let venv_calls = calls.lines().filter(|l| l.starts_with("venv ")).count();
    let install_calls = calls
        .lines()
        .filter(|l| l.starts_with("pip install "))
        .count();
    assert_eq!((venv_calls, install_calls), (1, 1), "uv calls:\n{calls}");
    assert_eq!(log_count(root.path()), 1, "exactly one install attempt");
    let installing = outputs
        .iter()
        .filter(|o| stderr_of(o).contains("Installing KTX Python runtime"))
        .count();
    assert_eq!(installing, 1);
    assert!(
        outputs
            .iter()
            .any(|o| stderr_of(o).contains("Waiting for another ktx process (pid ")),
        "no racer reported waiting"
    );
    assert_eq!(status_json(root.path())["kind"], "ready");
}

#[test]
fn slow_uv_killed_mid_install_leaves_incomplete_and_next_install_repairs() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("uv");
    // Fault injection: a uv that kills itself with SIGKILL when asked to install packages.
    write_script(
        &fake,
        &format!(
            "if [ \"$1\" = pip ]; then kill -9 $$; fi\nexec '{}' \"$@\"",
            real_uv().display()
        ),
    );
    let out = ktx(root.path())
        .env("KTX_UV", &fake)
        .args(["runtime", "install"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("killed by signal 9") && err.contains("log: "),
        "{err}"
    );
    let log = vdir(root.path()).join("logs");
    assert!(err.contains(log.to_str().unwrap()), "{err}");
    assert!(!vdir(root.path()).join("manifest.json").exists());
    assert_eq!(status_json(root.path())["kind"], "incomplete");
    let out = ktx(root.path())
        .args(["runtime", "install"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(status_json(root.path())["kind"], "ready");
    let venvs = fs::read_dir(vdir(root.path()).join("venvs"))
        .unwrap()
        .count();
    assert_eq!(venvs, 1, "the interrupted venv was not cleaned");
}

/// Whether `pid` is gone (or a zombie waiting to be reaped).
fn process_gone(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn slow_interrupt_mid_install_kills_the_installer_and_nothing_is_trusted() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("uv");
    let pidfile = tmp.path().join("installer.pid");
    // A uv whose package install hangs: it records its pid, then sleeps.
    write_script(
        &fake,
        &format!(
            "if [ \"$1\" = pip ]; then echo $$ > '{}'; exec sleep 60; fi\nexec '{}' \"$@\"",
            pidfile.display(),
            real_uv().display()
        ),
    );
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("ktx"))
        .args(["runtime", "install"])
        .env("KTX_RUNTIME_ROOT", root.path())
        .env("KTX_ASSET_DIR", asset_dir())
        .env("KTX_UV", &fake)
        .env_remove("KTX_PYTHON")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pidfile.exists() || fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fake installer never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let installer = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let ok = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ktx did not exit on SIGINT"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !process_gone(&installer) {
        assert!(
            std::time::Instant::now() < deadline,
            "the installer (pid {installer}) survived the interrupt"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!vdir(root.path()).join("manifest.json").exists());
    assert_eq!(status_json(root.path())["kind"], "incomplete");
    let out = ktx(root.path())
        .args(["runtime", "install"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(status_json(root.path())["kind"], "ready");
    assert_eq!(
        fs::read_dir(vdir(root.path()).join("venvs"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn slow_no_uv_anywhere_bootstraps_the_pinned_uv() {
    let root = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap(); // PATH without uv (and without anything else)
    let pip_ok = StdCommand::new(real_python())
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        pip_ok,
        "this test needs a python3 with pip (`python3 -m pip --version` failed)"
    );
    let out = ktx(root.path())
        .env("PATH", empty.path())
        .env("KTX_PYTHON", real_python())
        .args(["runtime", "install"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Bootstrapping uv") && err.contains("with uv..."),
        "{err}"
    );
    let st = status_json(root.path());
    assert_eq!(st["kind"], "ready");
    let pins: Value = serde_json::from_str(include_str!("../../ktx-runtime/uv-pins.json")).unwrap();
    let version = pins["version"].as_str().unwrap();
    assert_eq!(st["manifest"]["installer"]["version"], version);
    let uv = root.path().join("tools/uv").join(version).join("uv");
    assert_eq!(
        fs::metadata(&uv).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // Next time the bootstrapped copy is found: no second download.
    let out = ktx(root.path())
        .env("PATH", empty.path())
        .env("KTX_PYTHON", real_python())
        .args(["runtime", "install", "--force"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("Bootstrapping"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn slow_without_uv_or_pip_to_bootstrap_it_falls_back_to_venv_and_pip() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A Python without pip: bootstrapping uv is impossible, `python -m venv` still works.
    let nopip = tmp.path().join("nopip");
    let ok = StdCommand::new(real_python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&nopip)
        .status()
        .unwrap();
    assert!(ok.success());
    let empty = tmp.path().join("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    let out = ktx(root.path())
        .env("PATH", &empty)
        .env("KTX_PYTHON", nopip.join("bin/python"))
        .args(["runtime", "install"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Installing KTX Python runtime (core) with pip..."),
        "{err}"
    );
    assert_eq!(
        err.matches("which is slower").count(),
        1,
        "tell the user once: {err}"
    );
    let st = status_json(root.path());
    assert_eq!(st["kind"], "ready");
    assert_eq!(st["manifest"]["installer"]["name"], "pip");
}

#[test]
fn slow_find_links_installs_offline_from_a_wheelhouse() {
    let root = tempfile::tempdir().unwrap();
    let house = tempfile::tempdir().unwrap();
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(asset_dir().join("manifest.json")).unwrap())
            .unwrap();
    let wheel = asset_dir().join(manifest["wheel"]["file"].as_str().unwrap());
    // The documented recipe for air-gapped machines.
    let out = StdCommand::new(real_python())
        .args(["-m", "pip", "download", "--disable-pip-version-check", "-d"])
        .arg(house.path())
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip download failed: {}",
        stderr_of(&out)
    );
    let out = ktx(root.path())
        .env("UV_INDEX_URL", "http://127.0.0.1:9/simple") // any index access would fail
        .env("UV_CACHE_DIR", root.path().join("uv-cache")) // nothing cached either
        .args(["runtime", "install", "--find-links"])
        .arg(house.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(status_json(root.path())["kind"], "ready");
    let logs = fs::read_dir(vdir(root.path()).join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(fs::read_to_string(logs)
        .unwrap()
        .contains("--offline --no-index --find-links"));

    // Adding local-embeddings fails here (its packages are not in the wheelhouse): the new venv
    // is abandoned and the previous runtime stays in force and usable.
    let before = status_json(root.path());
    let out = ktx(root.path())
        .env("UV_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("UV_CACHE_DIR", root.path().join("uv-cache"))
        .args([
            "runtime",
            "install",
            "--feature",
            "local-embeddings",
            "--find-links",
        ])
        .arg(house.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("log: ") && err.contains("hint: "), "{err}");
    // The uv install of local-embeddings drops triton with an overrides file kept next to the
    // attempt's log; the real uv accepted it (it failed on the missing packages instead).
    let mut logs: Vec<PathBuf> = fs::read_dir(vdir(root.path()).join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let failed_log = logs.last().unwrap();
    let overrides = failed_log.with_extension("overrides.txt");
    assert_eq!(
        fs::read_to_string(&overrides).unwrap(),
        "triton ; python_version < \"0\"\n"
    );
    let text = fs::read_to_string(failed_log).unwrap();
    assert!(
        text.contains(&format!("--override {}", overrides.display())),
        "{text}"
    );
    assert!(
        text.to_lowercase().contains("sentence-transformers"),
        "uv should fail on the missing sentence-transformers, not on the overrides: {text}"
    );
    let after = status_json(root.path());
    assert_eq!(after["kind"], "ready");
    assert_eq!(after["manifest"], before["manifest"]);
    let out = ktx(root.path())
        .args(["--no-input", "runtime", "call", "runtime.ping"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}
