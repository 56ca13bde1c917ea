//! The runtime root is trusted only when nobody else can write it, and ktx never follows a
//! symlink it did not create under it (issue 12, items 1 and 2, and the prune and file-root
//! parts of 14). Each test drives the real `ktx` binary against a root with something planted
//! in it, and checks both the refusal and that the planted thing had no effect (a program that
//! would leave a marker file never ran; a symlink's target was neither emptied nor chmod-ed).
//!
//! Tests that need a second local user run as root (uid 65534 plays the other user, through
//! `chown` or `runuser -u nobody`) and skip with a printed reason otherwise.
// Unix only: plants other users' owners and group/world-writable modes (chown, chmod): the Unix trust rules; the Windows rules (no owner/ACL check, links refused) are tested in ktx_base::trust::windows_tests.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};
use std::time::Duration;

use common::{
    asset_manifest, install_runtime, ktx, ktx_bin, stderr_of, test_env, text, version_dir,
    write_script, VERSION,
};
use serde_json::{json, Value};

/// Bound for the commands that only read or refuse.
const QUICK: Duration = Duration::from_secs(120);

fn is_root() -> bool {
    let probe = tempfile::tempdir().unwrap();
    fs::metadata(probe.path()).unwrap().uid() == 0
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn run(root: &Path, args: &[&str]) -> Output {
    ktx(root)
        .args(args)
        // A daemon started by mistake (a regression) must not outlive the test for long.
        .env("KTX_DAEMON_IDLE_TIMEOUT", "5")
        .timeout(QUICK)
        .output()
        .unwrap()
}

/// A "python" outside the root that leaves `<dir>/ran` behind if anything ever executes it.
fn planted_program(dir: &Path) -> (PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    let marker = dir.join("ran");
    let program = dir.join("python");
    write_script(
        &program,
        &format!("echo \"$0 $*\" >> '{}'", marker.display()),
    );
    (program, marker)
}

/// A receipt that the original ktx takes as ready (right version and wheel, a venv with a
/// `pyvenv.cfg` whose home exists) and whose `pythonPath` is `python`.
fn plant_receipt(root: &Path, python: &Path) {
    let vdir = version_dir(root);
    let venv = vdir.join("venvs").join("planted");
    fs::create_dir_all(venv.join("bin")).unwrap();
    fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    let receipt = json!({
        "schemaVersion": 1,
        "ktxVersion": VERSION,
        "wheelSha256": asset_manifest()["wheel"]["sha256"],
        "features": ["core"],
        "venvDir": venv,
        "pythonPath": python,
        "interpreter": {"path": "/usr/bin/python3", "version": "3.11.0"},
        "installer": {"name": "uv", "version": "0.13.8"},
        "installedAt": "2026-01-01T00:00:00Z",
    });
    fs::write(vdir.join("manifest.json"), receipt.to_string()).unwrap();
}

/// Every command that would read the receipt or run its python: each refuses, naming `dir`,
/// and the planted program never runs.
fn assert_refused_everywhere(root: &Path, dir: &Path, needle: &str, marker: &Path) {
    let dir_text = dir.display().to_string();
    let st = run(root, &["runtime", "status", "--json"]);
    assert!(st.status.success(), "{}", stderr_of(&st));
    let st: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_ne!(st["kind"], "ready", "{st}");
    let detail = st["detail"].as_str().unwrap();
    assert!(
        detail.contains(&dir_text) && detail.contains(needle),
        "{detail}"
    );
    assert!(
        st["manifest"].is_null(),
        "the receipt must not be read: {st}"
    );

    for args in [
        &["runtime", "call", "runtime.ping", "--no-input"][..],
        &["runtime", "call", "runtime.ping", "--yes"][..],
        &["runtime", "install", "--yes"][..],
        &["runtime", "install", "--yes", "--force"][..],
        &["runtime", "start", "--yes"][..],
    ] {
        let out = run(root, args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("refusing to use {dir_text}")),
            "{args:?}: {err}"
        );
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.contains("KTX_RUNTIME_ROOT"), "{args:?}: {err}");
        assert!(
            !err.contains("Run `ktx runtime install`"),
            "circular advice: {err}"
        );
    }

    let out = run(root, &["runtime", "doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let report = text(&out.stdout);
    let line = report
        .lines()
        .position(|l| l.starts_with("FAIL runtime root permissions: "))
        .unwrap_or_else(|| panic!("no permissions check: {report}"));
    let lines: Vec<&str> = report.lines().collect();
    assert!(lines[line].contains(&dir_text), "{report}");
    assert!(lines[line + 1].starts_with("  Fix: "), "{report}");
    let json = run(root, &["runtime", "doctor", "--json"]);
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    let check = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "runtime root permissions")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(check["outcome"], "FAIL", "{json}");

    assert!(
        !marker.exists(),
        "the planted program ran: {}",
        fs::read_to_string(marker).unwrap_or_default()
    );
}

#[test]
fn a_world_writable_version_dir_is_refused_and_its_receipt_never_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let (python, marker) = planted_program(&tmp.path().join("elsewhere"));
    plant_receipt(&root, &python);
    let vdir = version_dir(&root);
    chmod(&vdir, 0o777);
    assert_refused_everywhere(&root, &vdir, "mode 0777", &marker);
    let out = run(&root, &["runtime", "status"]);
    assert!(
        text(&out.stdout).contains(&format!("chmod go-w {}", vdir.display())),
        "{}",
        text(&out.stdout)
    );
    // A root that others can write is refused the same way.
    chmod(&vdir, 0o700);
    chmod(&root, 0o703);
    assert_refused_everywhere(&root, &root, "mode 0703", &marker);
}

#[test]
fn a_root_planted_by_another_user_is_refused_and_its_receipt_never_runs() {
    if !is_root() {
        eprintln!("skipping: planting files as another user needs root");
        return;
    }
    // The other user (nobody) owns the root and everything in it, and planted the receipt.
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    let (python, marker) = planted_program(&tmp.path().join("elsewhere"));
    chmod(&tmp.path().join("elsewhere"), 0o777);
    let receipt_json = {
        plant_receipt(&tmp.path().join("staging"), &python);
        fs::read_to_string(version_dir(&tmp.path().join("staging")).join("manifest.json"))
            .unwrap()
            .replace(
                &tmp.path().join("staging").display().to_string(),
                &root.display().to_string(),
            )
    };
    let vdir = version_dir(&root);
    let plant = StdCommand::new("runuser")
        .args(["-u", "nobody", "--", "sh", "-c"])
        .arg(format!(
            "mkdir -p '{v}/venvs/planted/bin' && echo 'home = /usr/bin' > '{v}/venvs/planted/pyvenv.cfg' && cat > '{v}/manifest.json'",
            v = vdir.display()
        ))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(receipt_json.as_bytes())?;
            child.wait()
        })
        .unwrap();
    assert!(plant.success(), "planting as nobody failed");
    assert_eq!(
        fs::metadata(vdir.join("manifest.json")).unwrap().uid(),
        65534
    );
    assert_refused_everywhere(&root, &root, "uid 65534 (nobody)", &marker);
}

#[test]
fn a_root_owned_by_root_is_trusted_by_other_users() {
    if !is_root() {
        eprintln!("skipping: running ktx as another user needs root");
        return;
    }
    // Root owns the root (0755): nobody may read it, and ktx run by nobody trusts it (but
    // cannot install there). A root-owned but world-writable (not sticky) root is refused.
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    chmod(&root, 0o755);
    let as_nobody = |args: &[&str]| {
        let mut cmd = StdCommand::new("runuser");
        cmd.args(["-u", "nobody", "--"]).arg(ktx_bin()).args(args);
        test_env(&mut cmd, &root);
        cmd.env("HOME", tmp.path());
        cmd.output().unwrap()
    };
    let out = as_nobody(&["runtime", "status"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stdout.contains("refusing"), "{stdout}");
    assert!(stdout.contains("not writable"), "{stdout}");
    chmod(&root, 0o777);
    let out = as_nobody(&["runtime", "status"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("refusing to use {}", root.display()))
            && stdout.contains("mode 0777"),
        "{stdout}"
    );
}

#[test]
fn a_uv_planted_in_a_world_writable_tools_dir_never_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let pins: Value = serde_json::from_str(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../ktx-runtime/uv-pins.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let uv_dir = root
        .join("tools/uv")
        .join(pins["version"].as_str().unwrap());
    fs::create_dir_all(&uv_dir).unwrap();
    let marker = tmp.path().join("uv-ran");
    write_script(
        &uv_dir.join("uv"),
        &format!("echo \"$*\" >> '{}'\necho 'uv 0.13.8'", marker.display()),
    );
    chmod(&uv_dir, 0o777);
    // No uv on PATH, no KTX_UV: the bootstrapped copy is the one ktx would take.
    for args in [
        &["runtime", "doctor"][..],
        &["runtime", "install", "--yes"][..],
    ] {
        let out = ktx(&root)
            .args(args)
            .env("PATH", "/usr/bin:/bin")
            .timeout(QUICK)
            .output()
            .unwrap();
        let all = format!("{}{}", text(&out.stdout), stderr_of(&out));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
        assert!(
            all.contains(&format!("refusing to use {}", uv_dir.display()))
                && all.contains("mode 0777"),
            "{args:?}: {all}"
        );
        assert!(!marker.exists(), "{args:?}: the planted uv ran");
    }
}

/// A directory with a file and a subdirectory, and a way to tell it was left alone.
fn victim(dir: &Path) -> impl Fn() {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("precious.txt"), "keep me").unwrap();
    fs::write(dir.join("sub/also.txt"), "keep me too").unwrap();
    chmod(dir, 0o755);
    let dir = dir.to_path_buf();
    move || {
        assert_eq!(
            fs::read_to_string(dir.join("precious.txt")).unwrap(),
            "keep me"
        );
        assert_eq!(
            fs::read_to_string(dir.join("sub/also.txt")).unwrap(),
            "keep me too"
        );
        assert_eq!(mode_of(&dir), 0o755, "the victim's mode changed");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["precious.txt", "sub"],
            "files appeared in the victim"
        );
    }
}

#[test]
fn a_symlinked_venvs_dir_is_refused_and_its_target_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let vdir = version_dir(&root);
    fs::create_dir_all(&vdir).unwrap();
    let intact = victim(&tmp.path().join("victim"));
    symlink(tmp.path().join("victim"), vdir.join("venvs")).unwrap();
    for args in [
        &["runtime", "install", "--yes"][..],
        &["runtime", "install", "--yes", "--force"][..],
    ] {
        let out = run(&root, args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "refusing to use {}: it is a symbolic link",
                vdir.join("venvs").display()
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("rm "), "{args:?}: {err}");
        intact();
    }
    // Another version's runtime with the same planted link: prune removes the link only.
    let other = root.join("0.0.1");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("manifest.json"), "{}").unwrap();
    symlink(tmp.path().join("victim"), other.join("venvs")).unwrap();
    let out = run(&root, &["runtime", "prune", "--yes"]);
    let _ = out; // the current version's link makes nothing else fail; what matters is below
    intact();
}

#[test]
fn a_symlinked_daemon_dir_is_refused_and_its_target_keeps_its_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    install_runtime(&root);
    let daemon = version_dir(&root).join("daemon");
    let _ = fs::remove_dir_all(&daemon);
    let intact = victim(&tmp.path().join("victim"));
    symlink(tmp.path().join("victim"), &daemon).unwrap();
    let needle = format!(
        "refusing to use {}: it is a symbolic link",
        daemon.display()
    );
    for args in [
        &["runtime", "start"][..],
        &["runtime", "stop"][..],
        &["runtime", "call", "runtime.ping", "--daemon"][..],
    ] {
        let out = run(&root, args);
        let err = stderr_of(&out);
        assert!(err.contains(&needle), "{args:?}: {err}");
        intact();
    }
    let out = run(&root, &["runtime", "status"]);
    assert!(text(&out.stdout).contains(&needle), "{}", text(&out.stdout));
    intact();
}

#[test]
fn prune_only_lists_directories_ktx_made() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(&root).unwrap();
    chmod(&root, 0o700);
    // Someone's own directories that happen to have version-like names.
    fs::create_dir_all(root.join("0.0.5")).unwrap();
    fs::write(root.join("0.0.5/notes.txt"), "mine").unwrap();
    fs::create_dir_all(root.join(".prune-backup")).unwrap();
    let intact = victim(&tmp.path().join("victim"));
    symlink(tmp.path().join("victim"), root.join("0.0.8")).unwrap();
    // ktx's own: a marker, a receipt, a venvs dir, a dir an interrupted prune renamed aside.
    for (dir, what) in [
        ("0.0.6", ".ktx-runtime"),
        ("0.0.7", "manifest.json"),
        (".prune-0.0.3-4242", "manifest.json"),
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
        fs::write(root.join(dir).join(what), "").unwrap();
    }
    fs::create_dir_all(root.join("0.0.9/venvs/x")).unwrap();
    let out = run(&root, &["runtime", "prune", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut listed: Vec<String> = plan["wouldRemove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut want: Vec<String> = [".prune-0.0.3-4242", "0.0.6", "0.0.7", "0.0.9"]
        .iter()
        .map(|d| root.join(d).display().to_string())
        .collect();
    want.sort();
    assert_eq!(listed, want, "{plan}");
    let out = run(&root, &["runtime", "prune", "--yes"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        fs::read_to_string(root.join("0.0.5/notes.txt")).unwrap(),
        "mine"
    );
    assert!(root.join(".prune-backup").is_dir());
    assert!(fs::symlink_metadata(root.join("0.0.8")).is_ok());
    for d in ["0.0.6", "0.0.7", "0.0.9", ".prune-0.0.3-4242"] {
        assert!(!root.join(d).exists(), "{d} was not pruned");
    }
    intact();
}

#[test]
fn a_runtime_root_that_is_a_file_gets_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::write(&root, "not a directory").unwrap();
    let message = format!(
        "KTX_RUNTIME_ROOT {} is a file, not a directory: remove it or point KTX_RUNTIME_ROOT elsewhere",
        root.display()
    );
    for args in [
        &["runtime", "install", "--yes"][..],
        &["runtime", "call", "runtime.ping", "--no-input"][..],
        &["runtime", "call", "runtime.ping", "--yes"][..],
        &["runtime", "prune", "--dry-run"][..],
    ] {
        let out = run(&root, args);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end(), format!("error: {message}"), "{args:?}");
    }
    let out = run(&root, &["runtime", "status"]);
    let first = text(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(first, format!("missing: {message}"));
    let out = run(&root, &["runtime", "doctor"]);
    assert!(
        text(&out.stdout).contains(&format!("FAIL runtime root permissions: {message}")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(fs::read_to_string(&root).unwrap(), "not a directory");
}

#[test]
fn new_runtime_directories_are_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("new/root");
    // An install that fails right after creating its directories (KTX_UV does not run).
    let mut cmd = StdCommand::new("sh");
    cmd.arg("-c").arg(format!(
        "umask 000; exec '{}' runtime install --yes",
        ktx_bin().display()
    ));
    test_env(&mut cmd, &root);
    cmd.env("KTX_UV", tmp.path().join("no-such-uv"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let vdir = version_dir(&root);
    for dir in [
        tmp.path().join("new"),
        root.clone(),
        vdir.clone(),
        vdir.join("logs"),
    ] {
        assert_eq!(mode_of(&dir), 0o700, "{}", dir.display());
    }
    assert!(vdir.join(".ktx-runtime").is_file(), "no ktx marker");
}
