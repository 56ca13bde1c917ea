//! Shared helpers of the `release_*` integration tests: a fresh dist built once per test
//! binary from a copy of the project, per-test copies to tamper with, and the xtask binary
//! run with a clean release environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => repo_root().join(d),
        _ => repo_root().join("target"),
    }
}

/// The xtask binary with the variables that steer release checks removed.
pub fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    for var in [
        "CI",
        "GITHUB_ACTIONS",
        "GITHUB_REPOSITORY",
        "GITHUB_REF_TYPE",
        "GITHUB_REF_NAME",
        "SOURCE_DATE_EPOCH",
        "KTX_NPM",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// `npm` as a program to spawn: `npm.cmd` on Windows (a batch shim `CreateProcess` does not
/// find by the bare name; xtask's own code uses `workspace::npm_shim`).
pub fn npm() -> Command {
    Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" })
}

/// Runs `cmd`, returning its output (stdout and stderr are shown when a test fails).
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    eprintln!(
        "$ {cmd:?}\n--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Text of both streams.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Recursively copies `src` to `dst` (skipping `__pycache__` and `node_modules`).
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" || name == "node_modules" || name == ".pytest_cache" {
            continue;
        }
        let to = dst.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Copies the sources the release tooling reads (not dist/) from `from` into `to`.
pub fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("python-runtime")).unwrap();
    for f in ["Cargo.toml", "release-policy.json", "LICENSE"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    for f in ["pyproject.toml", "README.md"] {
        let src = from.join("python-runtime").join(f);
        if src.exists() {
            std::fs::copy(src, to.join("python-runtime").join(f)).unwrap();
        }
    }
    copy_tree(
        &from.join("python-runtime/src"),
        &to.join("python-runtime/src"),
    );
    copy_tree(&from.join("npm-package"), &to.join("npm-package"));
}

/// The release build of `ktx` (built once per test binary).
pub fn native_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = run(Command::new(cargo)
            .args(["build", "--release", "-p", "ktx"])
            .current_dir(repo_root()));
        assert!(out.status.success(), "cargo build --release -p ktx failed");
        target_dir()
            .join("release")
            .join(format!("ktx{}", std::env::consts::EXE_SUFFIX))
    })
}

/// Packs `root` (a project copy) into `<root>/dist` with the release `ktx` binary and no
/// bundle (a shipped lang-python is signed with the development key here, which readiness
/// refuses; `a_development_signed_bundle_in_dist_fails` covers that).
pub fn pack(root: &Path) {
    let no_bundles = root.join("no-bundles");
    std::fs::create_dir_all(&no_bundles).unwrap();
    let out = run(xtask()
        .arg("pack-npm")
        .arg("--bundles")
        .arg(&no_bundles)
        .arg("--native")
        .arg(native_binary())
        .arg("--root")
        .arg(root)
        .arg("--dist")
        .arg(root.join("dist")));
    assert!(
        out.status.success(),
        "pack-npm into {} failed",
        root.display()
    );
}

/// A project copy with a freshly packed dist/, built once per test binary (kept under the
/// cargo target's tmp dir, which cargo owns).
pub fn base_project() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        remove_stale_bases();
        let dir = tempfile::Builder::new()
            .prefix(&format!("release-base-{}-", std::process::id()))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        copy_sources(&repo_root(), &dir);
        pack(&dir);
        dir
    })
}

/// Removes `release-base-<pid>-*` directories whose test process is gone (each test process
/// builds its own base: nextest runs every test in a process of its own).
fn remove_stale_bases() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("release-base-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        let alive = if cfg!(target_os = "linux") {
            Path::new("/proc").join(pid).exists()
        } else {
            // Without /proc, only remove what is clearly old.
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < std::time::Duration::from_secs(3600))
        };
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A private copy of [`base_project`] (sources and dist) for one test to tamper with.
pub fn project_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(base_project(), tmp.path());
    tmp
}

/// Rewrites the JSON file at `path` with `edit`.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
}

/// The workspace version of the real checkout.
pub fn version() -> String {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    doc["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `release-readiness --json` on a project copy; returns (exit success, report).
pub fn readiness(root: &Path, extra: &[&str], envs: &[(&str, &str)]) -> (bool, serde_json::Value) {
    let mut cmd = xtask();
    cmd.arg("release-readiness")
        .arg("--json")
        .arg("--root")
        .arg(root)
        .args(extra);
    // The copy's default build is `<root>/target/release/ktx` unless a test says otherwise.
    cmd.env_remove("CARGO_TARGET_DIR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("readiness did not print JSON ({e})"));
    assert_eq!(
        report["ready"].as_bool(),
        Some(out.status.success()),
        "exit code and `ready` disagree"
    );
    (out.status.success(), report)
}

/// The status of check `id` in a readiness report.
pub fn status<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check `{id}` in {report}"))["status"]
        .as_str()
        .unwrap()
}

/// The detail of check `id`.
pub fn detail<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()["detail"]
        .as_str()
        .unwrap()
}

/// A readiness report's verdict, for a snapshot: `ready`, then every check's `id: status` in
/// report order (the details carry paths and versions, and are asserted on separately).
pub fn verdict(report: &serde_json::Value) -> String {
    let mut s = format!("ready: {}\n", report["ready"]);
    for c in report["checks"].as_array().unwrap() {
        s.push_str(&format!(
            "{}: {}\n",
            c["id"].as_str().unwrap(),
            c["status"].as_str().unwrap()
        ));
    }
    s
}
