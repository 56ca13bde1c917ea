//! End-to-end tests of `ktx runtime ...` on the real binary, with real uv and real Python, each
//! in its own temporary runtime root.
//!
//! Needs `KTX_TEST_ASSET_DIR` (set by `cargo xtask test`, or `cargo xtask build-wheel --out DIR`)
//! and `uv` on PATH. Tests named `slow_*` run real installs that download packages (PyPI, or the
//! configured index) and take several seconds each; the rest share one ready runtime or need
//! no install at all.
// Unix only: installs real runtimes (no Windows CPython under Wine here) and plants symlinks, chmod-ed dirs and `bin/python`; the Windows binary's status/doctor run under Wine in `cargo xtask artifacts-verify --target win32-x64`.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use common::{
    asset_dir, asset_manifest, ktx, ktx_std, process_alive, runtime_tests_root as shared_root,
    status_json, stderr_of, test_env, version_dir as vdir, wait_until, write_script, VERSION,
};
use serde_json::Value;

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

fn log_count(root: &Path) -> usize {
    fs::read_dir(vdir(root).join("logs"))
        .map(|d| d.count())
        .unwrap_or(0)
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
fn empty_or_bad_environment_values_are_not_usage_errors() {
    let root = shared_root();
    for (k, v) in [("KTX_FIND_LINKS", ""), ("KTX_LOCK_TIMEOUT", "soon")] {
        let out = ktx(root)
            .env(k, v)
            .args(["runtime", "install"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{k}={v:?}: {}", stderr_of(&out));
    }
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
    let wheel = asset_manifest()["wheel"]["file"]
        .as_str()
        .unwrap()
        .to_string();
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
    // --json answers on stdout on failure too
    let out = ktx(root.path())
        .env("KTX_ASSET_DIR", assets.path())
        .args(["runtime", "install", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["schemaVersion"].clone(), v["kind"].clone()),
        (1.into(), "error".into()),
        "{v}"
    );
    assert_eq!(v["error"]["kind"], "asset", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("checksum mismatch"),
        "{v}"
    );
    assert!(
        v["error"]["hints"][0]
            .as_str()
            .unwrap()
            .contains("@kaelio/ktx"),
        "{v}"
    );
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
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
    // A half-built venv under a held lock is an install in progress, not an interrupted one.
    fs::create_dir_all(vdir(root.path()).join("venvs/building")).unwrap();
    let st = status_json(root.path());
    assert_eq!(st["kind"], "incomplete");
    assert!(
        st["detail"].as_str().unwrap().contains(&format!(
            "an install is in progress (pid {})",
            std::process::id()
        )),
        "{st}"
    );
    drop(guard);
    let st = status_json(root.path());
    assert!(
        st["detail"]
            .as_str()
            .unwrap()
            .contains("an install was interrupted"),
        "{st}"
    );
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
    // prune only removes a version dir ktx made (a receipt, venvs/ or this marker)
    fs::write(r.join("0.0.8/.ktx-runtime"), "").unwrap();
    for v in ["0.0.1", pinned] {
        fs::create_dir_all(r.join("tools/uv").join(v)).unwrap();
        fs::write(r.join("tools/uv").join(v).join("uv"), "bin").unwrap();
    }
    // a uv bootstrap in progress (this live process) and one left by a dead process
    let live_bootstrap = r.join(format!("tools/uv/.bootstrap-{}", std::process::id()));
    let dead_bootstrap = r.join("tools/uv/.bootstrap-2147483646");
    fs::create_dir_all(&live_bootstrap).unwrap();
    fs::create_dir_all(&dead_bootstrap).unwrap();
    // dry run lists, removes nothing
    let out = ktx(r)
        .args(["runtime", "prune", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dryRun"], true, "{v}");
    assert_eq!(v["removed"], serde_json::json!([]), "{v}");
    let listed: Vec<&str> = v["wouldRemove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        listed.contains(&dead_bootstrap.to_str().unwrap()),
        "{listed:?}"
    );
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
    let out = ktx(r)
        .args(["runtime", "prune", "--yes", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The same keys in every mode, so scripts can rely on them.
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["schemaVersion"].clone(),
            v["dryRun"].clone(),
            v["refused"].clone()
        ),
        (1.into(), false.into(), false.into()),
        "{v}"
    );
    let removed: Vec<&str> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        removed.iter().any(|p| p.ends_with("/0.0.8"))
            && removed.iter().any(|p| p.ends_with("tools/uv/0.0.1")),
        "{v}"
    );
    assert_eq!(
        v["wouldRemove"].as_array().unwrap().len(),
        removed.len(),
        "{v}"
    );
    assert!(
        v["bytes"].as_u64().unwrap() > 0 && v["wouldFree"] == v["bytes"],
        "{v}"
    );
    assert!(v["skipped"].is_array(), "{v}");
    assert!(!r.join("0.0.8").exists());
    assert!(!r.join("tools/uv/0.0.1").exists());
    assert!(
        r.join("tools/uv").join(pinned).join("uv").exists(),
        "the pinned uv must survive"
    );
    assert!(live_bootstrap.exists(), "a running bootstrap was removed");
    assert!(!dead_bootstrap.exists());
    assert_eq!(
        fs::read_to_string(vdir(r).join("marker")).unwrap(),
        "current"
    );
    assert!(r.join("not-a-version").exists());
}

/// The bundled wheel's sha256, from the test asset manifest.
fn asset_sha() -> String {
    asset_manifest()["wheel"]["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Writes a receipt for this ktx and the test wheel naming `venv`, as an install would.
fn write_receipt(root: &Path, venv: &Path) {
    let receipt = serde_json::json!({
        "schemaVersion": 1,
        "ktxVersion": VERSION,
        "wheelSha256": asset_sha(),
        "features": ["core"],
        "venvDir": venv,
        "pythonPath": venv.join("bin/python"),
        "interpreter": {"path": real_python(), "version": "3.11.0"},
        "installer": {"name": "uv", "version": "0.13.8"},
        "installedAt": "2026-01-01T00:00:00Z",
    });
    fs::create_dir_all(vdir(root)).unwrap();
    fs::write(vdir(root).join("manifest.json"), receipt.to_string()).unwrap();
}

#[test]
fn corrupt_receipts_are_incomplete_with_a_clear_detail() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(vdir(r)).unwrap();
    let receipt = vdir(r).join("manifest.json");
    for (content, why) in [
        (&b"{\"schemaVersion\": 1, \"kt"[..], "is not JSON"),
        (b"\xff\xfe\x00", "cannot read"),
        (b"[]", "is not a receipt (no schemaVersion)"),
        (
            b"{\"schemaVersion\": 2}",
            "has schemaVersion 2, this ktx reads 1",
        ),
        (
            b"{\"schemaVersion\": 1}",
            "is not a valid receipt: missing field",
        ),
    ] {
        fs::write(&receipt, content).unwrap();
        let st = status_json(r);
        assert_eq!(st["kind"], "incomplete", "{st}");
        let detail = st["detail"].as_str().unwrap();
        assert!(
            detail.contains(receipt.to_str().unwrap())
                && detail.contains(why)
                && detail.contains("`ktx runtime install` repairs it"),
            "{detail}"
        );
        let out = ktx(r).args(["runtime", "doctor"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("WARN managed runtime: incomplete: unusable receipt"),
            "{text}"
        );
        assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
        // a command that needs the runtime refuses without trusting it
        let out = ktx(r)
            .args(["--no-input", "runtime", "call", "runtime.ping"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr_of(&out).contains("is not ready (incomplete)"),
            "{}",
            stderr_of(&out)
        );
    }
}

#[test]
fn a_receipt_naming_a_venv_that_is_gone_is_broken() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let venv = vdir(r).join("venvs/gone");
    write_receipt(r, &venv);
    let st = status_json(r);
    assert_eq!(st["kind"], "broken", "{st}");
    assert_eq!(st["layout"]["venvDir"], venv.to_str().unwrap());
    let detail = st["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("the venv {} is gone", venv.display()))
            && detail.contains("`ktx runtime install` rebuilds it"),
        "{detail}"
    );
    let out = ktx(r).args(["runtime", "doctor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL managed runtime: broken: ")
            && text.contains("  Fix: ktx runtime install\n"),
        "{text}"
    );
}

#[test]
fn a_root_that_is_a_file_is_reported_with_the_fix_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("root-file");
    fs::write(&r, "mine").unwrap();
    let st = status_json(&r);
    assert_eq!(st["kind"], "missing", "{st}");
    let detail = st["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{} is a file, not a directory", r.display()))
            && detail.contains("KTX_RUNTIME_ROOT"),
        "{detail}"
    );
    // doctor must not promise "it installs on first use": it cannot
    let out = ktx(&r).args(["runtime", "doctor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let message = format!(
        "KTX_RUNTIME_ROOT {} is a file, not a directory: remove it or point KTX_RUNTIME_ROOT elsewhere",
        r.display()
    );
    assert!(
        text.contains(&format!("FAIL runtime root permissions: {message}\n")),
        "{text}"
    );
    // one clear error, no advice that loops back to `ktx runtime install`
    let out = ktx(&r).args(["runtime", "install"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out).trim_end(), format!("error: {message}"));
    assert_eq!(fs::read_to_string(&r).unwrap(), "mine");
}

#[test]
fn unusable_ktx_python_or_ktx_uv_is_refused_with_the_fix() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("python-3.8");
    write_script(&old, "echo /usr/bin/python3.8; echo 3.8.10");
    let garbage = tmp.path().join("not-an-interpreter");
    write_script(&garbage, "echo hello");
    let cases = [
        (
            "KTX_PYTHON",
            &old,
            "it is Python 3.8.10, but kaelio-ktx requires >=3.10",
            "hint: Point KTX_PYTHON at a Python >=3.10 interpreter",
        ),
        (
            "KTX_PYTHON",
            &garbage,
            "printed no version",
            "hint: Point KTX_PYTHON at a Python >=3.10 interpreter",
        ),
        (
            "KTX_UV",
            &garbage,
            "--version printed \"hello\"",
            "hint: Point KTX_UV at a working uv binary",
        ),
    ];
    for (var, value, why, hint) in cases {
        let out = ktx(root.path())
            .env(var, value)
            .args(["runtime", "install"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!(
                "error: {var}={} cannot be used: ",
                value.display()
            )) && err.contains(why)
                && err.contains(hint)
                && err.contains("log: "),
            "{err}"
        );
        assert!(!vdir(root.path()).join("manifest.json").exists());
        assert!(!vdir(root.path()).join("venvs").exists(), "{err}");
        let out = ktx(root.path())
            .env(var, value)
            .args(["runtime", "doctor"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let text = String::from_utf8_lossy(&out.stdout);
        let label = if var == "KTX_UV" { "uv" } else { "python" };
        assert!(
            text.contains(&format!("FAIL {label}: {var}=")) && text.contains("  Fix: Point "),
            "{text}"
        );
    }
}

/// (path, size, mtime in ns, mode) of everything under `dir`, sorted.
fn tree_snapshot(dir: &Path) -> Vec<(PathBuf, u64, i128, u32)> {
    fn walk(p: &Path, out: &mut Vec<(PathBuf, u64, i128, u32)>) {
        let meta = fs::symlink_metadata(p).unwrap();
        let mtime = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        out.push((
            p.to_path_buf(),
            meta.len(),
            mtime,
            meta.permissions().mode(),
        ));
        if meta.is_dir() {
            for e in fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

#[test]
fn status_doctor_and_prune_without_yes_write_nothing() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // A ready-looking runtime (venv of symlinks to the machine's python), an interrupted
    // attempt, another version and a bootstrapped uv: every kind of thing these commands read.
    let venv = vdir(r).join("venvs/live");
    fs::create_dir_all(venv.join("bin")).unwrap();
    let python = real_python();
    std::os::unix::fs::symlink(&python, venv.join("bin/python")).unwrap();
    fs::write(
        venv.join("pyvenv.cfg"),
        format!("home = {}\n", python.parent().unwrap().display()),
    )
    .unwrap();
    write_receipt(r, &venv);
    // the package files a ready venv must have (the receipt says Python 3.11); not valid
    // Python, so doctor's import of them writes no bytecode
    let package = venv.join("lib/python3.11/site-packages/ktx_daemon");
    fs::create_dir_all(&package).unwrap();
    for file in ["__init__.py", "__main__.py"] {
        fs::write(package.join(file), "not python (").unwrap();
    }
    fs::create_dir_all(vdir(r).join("venvs/interrupted/lib")).unwrap();
    fs::create_dir_all(vdir(r).join("logs")).unwrap();
    fs::write(vdir(r).join("logs/install-x.log"), "old log").unwrap();
    fs::create_dir_all(r.join("0.0.1/venvs/old")).unwrap();
    fs::create_dir_all(r.join("tools/uv/0.0.1")).unwrap();
    fs::write(r.join("tools/uv/0.0.1/uv"), "bin").unwrap();
    assert_eq!(status_json(r)["kind"], "ready");
    let before = tree_snapshot(r);
    for args in [
        &["runtime", "status"][..],
        &["runtime", "status", "--json"],
        &["runtime", "doctor"],
        &["runtime", "doctor", "--json"],
        &["runtime", "prune", "--dry-run"],
        &["runtime", "prune", "--dry-run", "--json"],
        &["runtime", "prune"],
        &["runtime", "prune", "--json"],
    ] {
        let out = ktx(r).args(args).output().unwrap();
        assert!(
            !stderr_of(&out).contains("panicked"),
            "{args:?}: {}",
            stderr_of(&out)
        );
        assert_eq!(
            tree_snapshot(r),
            before,
            "`ktx {}` changed the root",
            args.join(" ")
        );
    }
}

#[test]
fn a_closed_stdout_ends_ktx_quietly() {
    let root = tempfile::tempdir().unwrap();
    let bin = common::ktx_bin();
    // `ktx runtime status | head -0`: the reader is gone (closed below) before ktx even
    // starts, so its first write fails with EPIPE.
    let mut sh = StdCommand::new("sh");
    test_env(&mut sh, root.path());
    let mut child = sh
        .arg("-c")
        .arg("sleep 0.3; exec \"$0\" runtime status --json")
        .arg(&bin)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn offline_with_no_python_anywhere_says_to_install_python() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // PATH holds only uv; uv has no Python of its own (empty install dir) and, offline, may
    // not download one.
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(real_uv(), bin.join("uv")).unwrap();
    let house = tmp.path().join("wheelhouse");
    fs::create_dir_all(&house).unwrap();
    let out = ktx(root.path())
        .env("PATH", &bin)
        .env("UV_PYTHON_INSTALL_DIR", tmp.path().join("no-pythons"))
        .args(["runtime", "install", "--find-links"])
        .arg(&house)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("offline: no download")
            && err.contains(
                "hint: No Python >=3.10 was found on this machine and offline, uv cannot download one."
            ),
        "{err}"
    );
    assert!(
        !err.contains("The package index could not be reached"),
        "misleading index hint: {err}"
    );
    assert!(!vdir(root.path()).join("manifest.json").exists());
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
    let st = status_json(r);
    assert_eq!(st["kind"], "ready");
    let third_venv = PathBuf::from(st["layout"]["venvDir"].as_str().unwrap());

    // While this version's daemon runs (here: a state file naming a live pid, this test's),
    // a rebuild keeps the replaced venv the daemon may be serving from.
    let state = vdir(r).join("daemon/state.json");
    fs::create_dir_all(state.parent().unwrap()).unwrap();
    fs::write(
        &state,
        format!("{{\"schemaVersion\": 1, \"pid\": {}}}", std::process::id()),
    )
    .unwrap();
    let out = ktx(r)
        .args(["runtime", "install", "--force", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        third_venv.exists(),
        "the daemon's venv was removed under it"
    );
    let log = fs::read_to_string(v["logPath"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("gc: keeping old venvs while the daemon (pid "),
        "{log}"
    );
    fs::remove_file(&state).unwrap();
}

#[test]
fn slow_installer_children_get_a_cleaned_environment_and_a_full_log() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let envs = tmp.path().join("envs");
    let wrapper = tmp.path().join("uv");
    // Records each call's environment, then runs the real uv without the test's harmless
    // stand-ins for proxy, certificate and index settings (they point nowhere).
    write_script(
        &wrapper,
        &format!(
            "{{ echo \"== $1\"; env; }} >> '{}'\nexec env -u HTTPS_PROXY -u SSL_CERT_FILE -u UV_INDEX_URL -u PIP_INDEX_URL '{}' \"$@\"",
            envs.display(),
            real_uv().display()
        ),
    );
    let out = ktx(root.path())
        .env("KTX_UV", &wrapper)
        // would redirect or break the install: removed
        .env("VIRTUAL_ENV", tmp.path().join("someone-elses-venv"))
        .env("UV_PYTHON", "3.8")
        .env("UV_SYSTEM_PYTHON", "1")
        .env("UV_PROJECT_ENVIRONMENT", tmp.path().join("proj-env"))
        .env("UV_LINK_MODE", "symlink")
        .env("PYTHONPATH", tmp.path())
        .env("FORCE_COLOR", "1")
        // the user's network setup: passed through
        .env("HTTPS_PROXY", "http://proxy.invalid:3128")
        .env("SSL_CERT_FILE", "/etc/ktx-test/ca.pem")
        .env("UV_INDEX_URL", "http://index.invalid/simple")
        .env("PIP_INDEX_URL", "http://index.invalid/simple")
        .args(["runtime", "install"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let seen = fs::read_to_string(&envs).unwrap();
    let calls: Vec<&str> = seen.split("== ").filter(|c| !c.is_empty()).collect();
    let installer_calls: Vec<&&str> = calls
        .iter()
        .filter(|c| c.starts_with("venv\n") || c.starts_with("pip\n"))
        .collect();
    assert_eq!(installer_calls.len(), 2, "{seen}");
    for call in installer_calls {
        let vars: Vec<&str> = call.lines().skip(1).collect();
        let has = |kv: &str| vars.contains(&kv);
        let set = |k: &str| vars.iter().any(|l| l.starts_with(&format!("{k}=")));
        for gone in [
            "VIRTUAL_ENV",
            "UV_PYTHON",
            "UV_SYSTEM_PYTHON",
            "UV_PROJECT_ENVIRONMENT",
            "UV_LINK_MODE",
            "PYTHONPATH",
            "FORCE_COLOR",
        ] {
            assert!(!set(gone), "{gone} leaked into: {call}");
        }
        for kept in [
            "HTTPS_PROXY=http://proxy.invalid:3128",
            "SSL_CERT_FILE=/etc/ktx-test/ca.pem",
            "UV_INDEX_URL=http://index.invalid/simple",
            "PIP_INDEX_URL=http://index.invalid/simple",
            "UV_NO_PROGRESS=1",
            "NO_COLOR=1",
        ] {
            assert!(has(kept), "{kept} missing from: {call}");
        }
    }
    // one kept log: each command line, uv's version, exit codes and output
    let logs: Vec<PathBuf> = fs::read_dir(vdir(root.path()).join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let name = logs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("install-") && name.ends_with(".log"),
        "{name}"
    );
    let log = fs::read_to_string(&logs[0]).unwrap();
    for needle in [
        &format!("$ {} venv --no-project --python ", wrapper.display()),
        &format!("$ {} pip install --python ", wrapper.display()),
        "(version 0.",
        "-> exit code 0 in ",
        "unset VIRTUAL_ENV",
        "unset UV_LINK_MODE (was symlink)",
        "--- stderr ---",
        "-I -m ktx_daemon call",
        "receipt written; install complete",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
}

#[test]
fn slow_racing_installs_install_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (uv, record) = recording_uv(tmp.path());
    let children: Vec<_> = (0..4)
        .map(|_| {
            ktx_std(root.path())
                .args(["runtime", "install"])
                .env("KTX_UV", &uv)
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
    let mut child = ktx_std(root.path())
        .args(["runtime", "install"])
        .env("KTX_UV", &fake)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || fs::read_to_string(&pidfile)
            .is_ok_and(|pid| !pid.trim().is_empty())),
        "the fake installer never started"
    );
    let installer: u64 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ok = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "ktx did not exit on SIGINT"
    );
    assert_eq!(status.unwrap().code(), Some(130));
    assert!(
        wait_until(Duration::from_secs(5), || !process_alive(installer)),
        "the installer (pid {installer}) survived the interrupt"
    );
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
    let wheel = asset_dir().join(asset_manifest()["wheel"]["file"].as_str().unwrap());
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
