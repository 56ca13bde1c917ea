//! Test helpers: one cheap venv per test binary that imports `ktx_worker` from the source tree
//! under `python -I` (a `.pth` file in site-packages, as the ktx-daemon tests do), and scripts
//! written to a temporary directory.

#![allow(dead_code)]

use ktx_worker::{ScriptRef, Worker, WorkerConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// `python-runtime/src` of this checkout.
pub fn python_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../python-runtime/src")
        .canonicalize()
        .expect("python-runtime/src exists")
}

fn base_python() -> String {
    std::env::var("KTX_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn make_venv(venv: &Path, src: &Path) -> PathBuf {
    let out = Command::new(base_python())
        .args(["-m", "venv", "--without-pip"])
        .arg(venv)
        .stdin(Stdio::null())
        .output()
        .expect("python3 on PATH (or KTX_TEST_PYTHON)");
    assert!(out.status.success(), "venv failed: {out:?}");
    let python = venv.join(if cfg!(windows) {
        "Scripts/python.exe"
    } else {
        "bin/python"
    });
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

/// Interpreter of a venv importing the checkout's `ktx_worker`.
pub fn python() -> PathBuf {
    static VENV: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    VENV.get_or_init(|| {
        // Statics are never dropped: keep the venv under target/ so `cargo clean` removes it.
        let dir = tempfile::Builder::new()
            .prefix("worker-venv-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let python = make_venv(&dir.path().join("venv"), &python_src());
        (dir, python)
    })
    .1
    .clone()
}

/// A config for the test venv, with a small memory limit (cheap to hit).
pub fn config() -> WorkerConfig {
    let mut cfg = WorkerConfig::new(python());
    cfg.memory_limit = Some(512 << 20);
    cfg
}

/// A worker started with [`config`].
pub fn worker() -> Worker {
    Worker::spawn(config()).expect("worker starts")
}

/// A directory of scripts.
pub struct Scripts {
    pub dir: tempfile::TempDir,
}

impl Scripts {
    pub fn new() -> Self {
        Scripts {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Write `scripts/<id>.py` and return a reference whose hash is the content's length and
    /// a digest of it (a stand-in for the index's hash: any change gives a new one).
    pub fn add(&self, id: &str, source: &str, entrypoint: &str) -> ScriptRef {
        let path = self.dir.path().join(format!("{id}.py"));
        std::fs::write(&path, source).unwrap();
        ScriptRef {
            id: id.to_string(),
            path,
            content_hash: digest(source),
            entrypoint: entrypoint.to_string(),
        }
    }
}

fn digest(text: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{}-{:x}", text.len(), h.finish())
}

/// A deadline generous enough for a loaded 2-core machine.
pub const SLOW_OK: Duration = Duration::from_secs(20);
