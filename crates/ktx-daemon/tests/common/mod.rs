//! Test helpers: cheap venvs that import `ktx_daemon` from the source tree under `python -I`
//! (a `.pth` file in site-packages, see docs/ARCHITECTURE.md), and a guard that stops daemons.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `python-runtime/src` of this checkout.
pub fn python_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../python-runtime/src")
        .canonicalize()
        .expect("python-runtime/src exists")
}

/// The package version in `_version.py`.
pub fn package_version() -> String {
    let text = std::fs::read_to_string(python_src().join("ktx_daemon/_version.py")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("__version__"))
        .expect("__version__ line");
    line.split('"').nth(1).unwrap().to_string()
}

fn base_python() -> String {
    std::env::var("KTX_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Create a venv at `venv` whose site-packages has a `.pth` pointing at `src`; returns its python.
pub fn make_venv(venv: &Path, src: &Path) -> PathBuf {
    let out = Command::new(base_python())
        .args(["-m", "venv", "--without-pip"])
        .arg(venv)
        .stdin(Stdio::null())
        .output()
        .expect("python3 on PATH (or KTX_TEST_PYTHON)");
    assert!(out.status.success(), "venv failed: {out:?}");
    let python = venv.join("bin/python");
    let out = Command::new(&python)
        .args([
            "-I",
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let site = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("ktx-dev.pth"), format!("{}\n", src.display())).unwrap();
    python
}

struct Venvs {
    _dir: tempfile::TempDir,
    current: PathBuf,
    old: PathBuf,
}

fn venvs() -> &'static Venvs {
    static VENVS: OnceLock<Venvs> = OnceLock::new();
    VENVS.get_or_init(|| {
        // Statics are never dropped: keep the venvs under target/ (not /tmp) so a run leaves
        // nothing behind that `cargo clean` does not remove.
        let dir = tempfile::Builder::new()
            .prefix("venvs-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let current = make_venv(&dir.path().join("venv-current"), &python_src());
        // A copy of the package that reports another version.
        let old_src = dir.path().join("old-src");
        copy_dir(
            &python_src().join("ktx_daemon"),
            &old_src.join("ktx_daemon"),
        );
        std::fs::write(
            old_src.join("ktx_daemon/_version.py"),
            format!("__version__ = \"{OLD_VERSION}\"\n"),
        )
        .unwrap();
        let old = make_venv(&dir.path().join("venv-old"), &old_src);
        Venvs {
            _dir: dir,
            current,
            old,
        }
    })
}

/// The version the "old" venv reports.
pub const OLD_VERSION: &str = "0.0.1.dev0";

/// Interpreter of a venv importing the checkout's package.
pub fn python() -> PathBuf {
    venvs().current.clone()
}

/// Interpreter of a venv whose package reports [`OLD_VERSION`].
pub fn old_python() -> PathBuf {
    venvs().old.clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// A temporary daemon directory whose daemon is stopped (and killed if need be) on drop.
pub struct DaemonDir {
    pub tmp: tempfile::TempDir,
}

impl DaemonDir {
    pub fn new() -> Self {
        DaemonDir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.tmp.path().join("daemon")
    }

    pub fn config(&self) -> ktx_daemon::StartConfig {
        let mut c = ktx_daemon::StartConfig::new(python(), self.path(), &package_version());
        c.start_timeout = Duration::from_secs(20);
        c
    }

    pub fn state_json(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.path().join("state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

impl Drop for DaemonDir {
    fn drop(&mut self) {
        if let Some(state) = self.state_json() {
            let pid = state["pid"].as_u64().unwrap_or(0) as u32;
            let _ = ktx_daemon::stop(&self.path());
            if pid > 1 && proc_alive(pid) && is_our_python(pid) {
                unsafe_kill(pid);
            }
        }
    }
}

/// True while `/proc/<pid>` exists and is not a zombie.
pub fn proc_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let rest = &stat[stat.rfind(')').unwrap() + 1..];
            !matches!(rest.split_whitespace().next(), Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

fn is_our_python(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("ktx_daemon"))
        .unwrap_or(false)
}

/// SIGKILL `pid`.
pub fn unsafe_kill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// Poll `f` until true or `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Send a raw HTTP request to `127.0.0.1:port` and return the status code.
pub fn raw_status(port: u16, request: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// An executable "interpreter" at `dir/name` that runs the test venv's python on the
/// daemon's own command line, after `prelude` (Python, run before the server starts) has
/// patched the package: a daemon with a fault that cannot be produced otherwise.
pub fn patched_python(dir: &Path, name: &str, prelude: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join(name);
    let program = format!(
        "import sys\n{prelude}\nfrom ktx_daemon.__main__ import main\nsys.exit(main(sys.argv[2:]))\n"
    );
    std::fs::write(dir.join(format!("{name}.py")), program).unwrap();
    // Drop the interpreter flags up to `-m`; keep `ktx_daemon serve ...` as the arguments, so
    // the process's command line still names the daemon.
    let text = format!(
        "#!/bin/sh\nwhile [ \"$#\" -gt 0 ] && [ \"$1\" != -m ]; do shift; done\nshift\nexec \"{}\" -I \"{}\" \"$@\"\n",
        python().display(),
        dir.join(format!("{name}.py")).display()
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}
