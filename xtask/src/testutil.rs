//! Test helpers: temp copies of the project, external tools, running commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Copies the parts of the real project the release tooling reads into a fresh temp dir:
/// Cargo.toml, release-policy.json, LICENSE, python-runtime/{pyproject.toml,README.md,src},
/// npm-package/.
pub fn temp_project() -> tempfile::TempDir {
    let root = crate::project_root();
    let tmp = tempfile::tempdir().unwrap();
    for f in ["Cargo.toml", "release-policy.json", "LICENSE"] {
        std::fs::copy(root.join(f), tmp.path().join(f)).unwrap();
    }
    for f in ["pyproject.toml", "README.md"] {
        let dst = tmp.path().join("python-runtime");
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::copy(root.join("python-runtime").join(f), dst.join(f)).unwrap();
    }
    copy_tree(
        &root.join("python-runtime/src"),
        &tmp.path().join("python-runtime/src"),
    );
    copy_tree(&root.join("npm-package"), &tmp.path().join("npm-package"));
    tmp
}

/// Recursively copies `src` to `dst` (skipping `__pycache__` and `node_modules`).
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" || name == "node_modules" {
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

/// Replaces `from` by `to` in the file at `path` (which must contain `from`).
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Lists every file under `dir` (relative paths, sorted); empty if `dir` is missing.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            } else {
                out.push(e.path().strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs `cmd`, panicking with its stdout/stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The command that runs uv: `uv` from PATH, else `python3 -m uv`.
pub fn uv() -> Command {
    if Command::new("uv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Command::new("uv")
    } else {
        let mut c = Command::new("python3");
        c.args(["-m", "uv"]);
        c
    }
}

/// A venv's interpreter path.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

/// Sends one ABI v1 request to `python -I -m ktx_daemon call`; returns the parsed response.
pub fn abi_call(python: &Path, op: &str) -> serde_json::Value {
    use std::io::Write;
    let mut child = Command::new(python)
        .args(["-I", "-m", "ktx_daemon", "call"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let req = format!("{{\"abi\": 1, \"op\": \"{op}\", \"payload\": {{}}}}");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
