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

/// The command that runs uv (see [`find_uv`]); panics saying how to get uv when there is none.
pub fn uv() -> Command {
    match find_uv(std::env::var_os("PATH"), &crate::project_root()) {
        Ok(uv) => Command::new(uv),
        Err(msg) => panic!("{msg}"),
    }
}

pub use crate::workspace::{exe_name, VENV_BIN};

/// Whether `p` is a file this user may execute (any file off Unix: Windows has no x bit).
pub fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Makes `p` executable (mode 0755; nothing to do off Unix).
pub fn set_executable(p: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", p.display()));
    }
    #[cfg(not(unix))]
    let _ = p;
}

/// Finds uv: an executable `uv` in a `path` directory (`cargo xtask test` puts `.dev-venv/bin`
/// first), else `<root>/.dev-venv/bin/uv`. The error says how to get one.
pub fn find_uv(path: Option<std::ffi::OsString>, root: &Path) -> Result<PathBuf, String> {
    let dirs = path.map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let dev_venv = root.join(".dev-venv").join(VENV_BIN);
    dirs.unwrap_or_default()
        .into_iter()
        .chain([dev_venv.clone()])
        .map(|d| d.join(exe_name("uv")))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            format!(
                "this test needs uv, which is neither on PATH nor in {}: run the tests with \
                 `cargo xtask test` (it creates .dev-venv with uv and puts it on PATH), or \
                 install uv (`python3 -m pip install uv`)",
                dev_venv.display()
            )
        })
}

/// A venv's interpreter path.
pub fn venv_python(venv: &Path) -> PathBuf {
    crate::workspace::venv_exe(venv, "python")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_uv(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let uv = dir.join(exe_name("uv"));
        std::fs::write(&uv, "#!/bin/sh\n").unwrap();
        set_executable(&uv);
        uv
    }

    #[test]
    fn finds_uv_on_path_then_in_the_dev_venv_else_says_how_to_get_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = find_uv(Some(empty.clone().into_os_string()), &root).unwrap_err();
        assert!(
            err.contains("`cargo xtask test`")
                && err.contains(&root.join(".dev-venv").join(VENV_BIN).display().to_string()),
            "{err}"
        );
        assert!(find_uv(None, &root).is_err());
        // A non-executable `uv` does not count (Windows has no such thing).
        #[cfg(unix)]
        {
            std::fs::write(empty.join("uv"), "").unwrap();
            assert!(find_uv(Some(empty.clone().into_os_string()), &root).is_err());
        }
        let venv_uv = fake_uv(&root.join(".dev-venv").join(VENV_BIN));
        assert_eq!(find_uv(Some(empty.into_os_string()), &root), Ok(venv_uv));
        let path_uv = fake_uv(&tmp.path().join("bin"));
        let path = std::env::join_paths([tmp.path().join("nope"), tmp.path().join("bin")]).unwrap();
        assert_eq!(find_uv(Some(path), &root), Ok(path_uv));
    }
}
