//! End-to-end tests of what the runtime's state says and what ktx does about it, on the real
//! binary with real uv, real Python and real pip: a receipt whose interpreter is not its venv's
//! own, a damaged venv, a full disk, an interrupted uv bootstrap.
//!
//! Needs `KTX_TEST_ASSET_DIR` and `uv` on PATH (see `runtime_cli`). Tests named `slow_*` run
//! real installs. The full-disk tests mount a small tmpfs and so need root; they skip (saying
//! why) otherwise. The bootstrap tests need pip and its index (or pip's cache), as
//! `runtime_cli`'s bootstrap test does.
// Unix only: plants symlinked interpreters at `bin/python` and mounts a tmpfs for the full-disk cases; no Windows CPython is reachable here (Wine) to build a real Windows runtime.
#![cfg(unix)]

mod common;

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    install_runtime, ktx, ktx_std, receipt, status_json, stderr_of, version_dir as vdir,
    wait_until, write_script,
};
use serde_json::Value;

/// The real executable of the machine's python3 (not a shim).
fn real_python() -> PathBuf {
    let out = StdCommand::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn assert_pip_available() {
    let ok = StdCommand::new(real_python())
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs a python3 with pip (`python3 -m pip --version` failed)"
    );
}

/// The pinned uv version (`crates/ktx-runtime/uv-pins.json`).
fn pinned_uv() -> String {
    let pins: Value = serde_json::from_str(include_str!("../../ktx-runtime/uv-pins.json")).unwrap();
    pins["version"].as_str().unwrap().to_string()
}

fn write_receipt_json(root: &Path, v: &Value) {
    fs::write(
        vdir(root).join("manifest.json"),
        serde_json::to_string_pretty(v).unwrap(),
    )
    .unwrap();
}

fn doctor(root: &Path) -> (Option<i32>, String) {
    let out = ktx(root).args(["runtime", "doctor"]).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `ktx --no-input runtime call runtime.ping`.
fn ping_no_input(root: &Path) -> Output {
    ktx(root)
        .args(["--no-input", "runtime", "call", "runtime.ping"])
        .output()
        .unwrap()
}

fn venv_entries(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(vdir(root).join("venvs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The names in `dir` (sorted; empty when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A pid that no process has: one of ours, exited and reaped.
fn dead_pid() -> u32 {
    let mut child = StdCommand::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

// ---------------------------------------------------------------- item 3: receipt interpreter

/// A receipt naming an interpreter that is not its venv's own `bin/python` (elsewhere, through
/// `..`, or a venv outside the runtime) is `broken`: status says why, doctor FAILs, nothing of
/// it runs (not status, not doctor, not a call through the runner), and both `ktx runtime
/// install` and a lazy `--yes` install repair it.
#[test]
fn slow_a_receipt_interpreter_outside_its_venv_is_broken_never_run_and_repaired() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    install_runtime(r);
    let good = receipt(r);
    let venv = PathBuf::from(good["venvDir"].as_str().unwrap());

    // The planted interpreter works (it runs the real one) but leaves a mark when run.
    let elsewhere = tempfile::tempdir().unwrap();
    let marker = elsewhere.path().join("planted-python-ran");
    let evil = elsewhere.path().join("bin/python");
    fs::create_dir_all(evil.parent().unwrap()).unwrap();
    write_script(
        &evil,
        &format!(
            "touch '{}'\nexec '{}' \"$@\"",
            marker.display(),
            venv.join("bin/python").display()
        ),
    );
    // A copy of the venv's shape outside the root, with the planted interpreter in it.
    let foreign_venv = elsewhere.path().join("venv");
    fs::create_dir_all(foreign_venv.join("bin")).unwrap();
    fs::copy(venv.join("pyvenv.cfg"), foreign_venv.join("pyvenv.cfg")).unwrap();
    std::os::unix::fs::symlink(&evil, foreign_venv.join("bin/python")).unwrap();
    std::os::unix::fs::symlink(venv.join("lib"), foreign_venv.join("lib")).unwrap();
    // `<venv>/bin/../../..` up to `/`, then down to the planted interpreter.
    let ups = venv.join("bin").components().count() - 1;
    let dotted = PathBuf::from(format!(
        "{}/bin/{}{}",
        venv.display(),
        "../".repeat(ups),
        evil.display().to_string().trim_start_matches('/')
    ));
    assert_eq!(
        fs::canonicalize(&dotted).unwrap(),
        fs::canonicalize(&evil).unwrap()
    );

    let cases = [
        (venv.clone(), evil.clone(), "ktx does not run it"),
        (venv.clone(), dotted, "ktx does not run it"),
        (
            foreign_venv.clone(),
            foreign_venv.join("bin/python"),
            "ktx runs only the interpreter of its own venvs",
        ),
    ];
    for (planted_venv, planted_python, why) in &cases {
        let mut bad = good.clone();
        bad["venvDir"] = Value::from(planted_venv.to_str().unwrap());
        bad["pythonPath"] = Value::from(planted_python.to_str().unwrap());
        write_receipt_json(r, &bad);
        let st = status_json(r);
        assert_eq!(st["kind"], "broken", "{planted_python:?}: {st}");
        let detail = st["detail"].as_str().unwrap();
        assert!(
            detail.contains(why) && detail.contains("`ktx runtime install` rebuilds it"),
            "{detail}"
        );
        let (code, text) = doctor(r);
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains("FAIL managed runtime: broken: ")
                && text.contains("  Fix: ktx runtime install\n"),
            "{text}"
        );
        let out = ping_no_input(r);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("is not ready (broken)"),
            "{}",
            stderr_of(&out)
        );
        assert!(
            !marker.exists(),
            "the planted interpreter ran ({planted_python:?})"
        );
    }

    // `ktx runtime install` (no --force) repairs it...
    let mut bad = good.clone();
    bad["pythonPath"] = Value::from(evil.to_str().unwrap());
    write_receipt_json(r, &bad);
    let out = ktx(r)
        .args(["runtime", "install", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["performed"], true, "{v}");
    let st = status_json(r);
    assert_eq!(st["kind"], "ready", "{st}");
    let repaired = PathBuf::from(st["layout"]["venvDir"].as_str().unwrap());
    assert_eq!(repaired.parent(), Some(vdir(r).join("venvs").as_path()));
    assert_eq!(
        st["layout"]["pythonPath"],
        repaired.join("bin/python").to_str().unwrap()
    );

    // ...and so does a lazy `--yes` install in the runner, which then runs the real one.
    let mut bad = receipt(r);
    bad["venvDir"] = Value::from(foreign_venv.to_str().unwrap());
    bad["pythonPath"] = Value::from(foreign_venv.join("bin/python").to_str().unwrap());
    write_receipt_json(r, &bad);
    let out = ktx(r)
        .args(["--yes", "runtime", "call", "runtime.ping"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(status_json(r)["kind"], "ready");
    assert!(!marker.exists(), "the planted interpreter ran");
}

// ---------------------------------------------------------------- item 10: damaged venv

/// A venv that cannot import the package (its `lib` deleted, or one package file) is `broken`
/// with the missing path, from the files the receipt lists (no Python start); `ktx runtime
/// install` and a lazy `--yes` install repair it without `--force`. A receipt of an older ktx
/// (no `requiredFiles`) is still ready, and checked against the venv's layout.
#[test]
fn slow_a_damaged_venv_is_broken_and_install_or_yes_repairs_it() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    install_runtime(r);
    let rec = receipt(r);
    let venv = PathBuf::from(rec["venvDir"].as_str().unwrap());
    let site = fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .expect("the venv has lib/pythonX.Y/site-packages");

    // `<venv>/lib` deleted: broken, naming site-packages; install repairs it (no --force).
    fs::remove_dir_all(venv.join("lib")).unwrap();
    let st = status_json(r);
    assert_eq!(st["kind"], "broken", "{st}");
    let detail = st["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "the venv is damaged: {} is missing",
            site.display()
        )) && detail.contains("`ktx runtime install` rebuilds it"),
        "{detail}"
    );
    let (code, text) = doctor(r);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL managed runtime: broken: the venv is damaged: "),
        "{text}"
    );
    let out = ktx(r)
        .args(["runtime", "install", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("already installed"),
        "{}",
        stderr_of(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["performed"], true, "{v}");
    assert_eq!(status_json(r)["kind"], "ready");

    // The receipt lists what the checks stat.
    let rec = receipt(r);
    let listed: Vec<&str> = rec["requiredFiles"]
        .as_array()
        .expect("the receipt lists its required files")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in ["bin/python", "pyvenv.cfg"] {
        assert!(listed.contains(&want), "{listed:?}");
    }
    for suffix in [
        "/site-packages",
        ".dist-info/RECORD",
        "/site-packages/ktx_daemon/__init__.py",
    ] {
        assert!(listed.iter().any(|f| f.ends_with(suffix)), "{listed:?}");
    }

    // One package file deleted: broken, naming it; a lazy `--yes` install repairs it.
    let venv = PathBuf::from(rec["venvDir"].as_str().unwrap());
    let init = rec["requiredFiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| venv.join(v.as_str().unwrap()))
        .find(|p| p.ends_with("ktx_daemon/__init__.py"))
        .unwrap();
    fs::remove_file(&init).unwrap();
    let st = status_json(r);
    assert_eq!(st["kind"], "broken", "{st}");
    assert!(
        st["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{} is missing", init.display())),
        "{st}"
    );
    let out = ping_no_input(r);
    assert!(
        stderr_of(&out).contains("is not ready (broken)"),
        "{}",
        stderr_of(&out)
    );
    let out = ktx(r)
        .args(["--yes", "runtime", "call", "runtime.ping"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(status_json(r)["kind"], "ready");

    // A receipt written before `requiredFiles`: ready while whole, broken once `lib` is gone.
    let mut old = receipt(r);
    old.as_object_mut().unwrap().remove("requiredFiles");
    write_receipt_json(r, &old);
    assert_eq!(status_json(r)["kind"], "ready");
    let venv = PathBuf::from(old["venvDir"].as_str().unwrap());
    fs::remove_dir_all(venv.join("lib")).unwrap();
    let st = status_json(r);
    assert_eq!(st["kind"], "broken", "{st}");
    assert!(
        st["detail"]
            .as_str()
            .unwrap()
            .contains("/site-packages is missing"),
        "{st}"
    );
    let out = ktx(r).args(["runtime", "install"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(status_json(r)["kind"], "ready");
}

// ---------------------------------------------------------------- item 9: full disk

/// A tmpfs of `size` mounted on a fresh temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot (not root, no mount permission in this container).
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = StdCommand::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it (a killed child's open file): detach it lazily.
            let _ = StdCommand::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// What every full-disk failure must look like afterwards: a disk-full message naming the
/// path and the free space, no fallback, no partial venv, status `missing`, doctor FAIL.
fn assert_disk_full_aftermath(r: &Path, out: &Output, step: &str) {
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(out);
    assert!(
        err.contains(&format!("error: the disk is full: {step}"))
            && err.contains(&r.display().to_string())
            && err.contains("No space left on device")
            && err.contains(" free on the filesystem of "),
        "{err}"
    );
    assert!(
        err.contains("hint: The disk is full. Free at least 100.0 MB"),
        "{err}"
    );
    for fallback in [
        "uv is not available",
        "Falling back",
        "runtime (core) with pip",
        "python -m venv",
    ] {
        assert!(
            !err.contains(fallback),
            "a fallback was tried ({fallback}): {err}"
        );
    }
    let logs = vdir(r).join("logs");
    for log in names(&logs) {
        let text = fs::read_to_string(logs.join(&log)).unwrap_or_default();
        assert!(
            !text.contains(" -m venv") && !text.contains(" -m pip install"),
            "the pip fallback ran: {text}"
        );
    }
    assert_eq!(
        venv_entries(r),
        Vec::<PathBuf>::new(),
        "a partial venv is left"
    );
    let staging: Vec<String> = names(&r.join("tools/uv"))
        .into_iter()
        .filter(|n| n.starts_with(".bootstrap-"))
        .collect();
    assert!(staging.is_empty(), "bootstrap staging left: {staging:?}");
    let st = status_json(r);
    assert_eq!(st["kind"], "missing", "{st}");
    let (code, text) = doctor(r);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL disk space: ")
            && text.contains(&format!("free on the filesystem of {}", r.display()))
            && text.contains("an install needs at least 100.0 MB"),
        "{text}"
    );
}

/// A full disk during the package install with uv: a disk-full error (path, free space), no
/// pip fallback, the partial venv removed, status `missing`, doctor FAILs.
#[test]
fn slow_a_full_disk_fails_the_install_cleanly_without_a_fallback() {
    let fs_ = match Tmpfs::mount("4m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    let r = fs_.path().join("root");
    let out = ktx(&r).args(["runtime", "install"]).output().unwrap();
    assert_disk_full_aftermath(&r, &out, "Installing packages in ");
    assert!(
        stderr_of(&out).contains("The partial venv "),
        "{}",
        stderr_of(&out)
    );
}

/// A full disk while bootstrapping uv (no uv anywhere): the same, and never the "uv is not
/// available" fallback to `python -m venv` + pip.
#[test]
fn slow_a_full_disk_during_the_uv_bootstrap_never_falls_back_to_pip() {
    let fs_ = match Tmpfs::mount("4m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    assert_pip_available();
    let r = fs_.path().join("root");
    let empty = tempfile::tempdir().unwrap(); // PATH without uv
    let out = ktx(&r)
        .env("PATH", empty.path())
        .env("KTX_PYTHON", real_python())
        .args(["runtime", "install"])
        .output()
        .unwrap();
    assert_disk_full_aftermath(&r, &out, &format!("Bootstrapping uv {}", pinned_uv()));
}

// ---------------------------------------------------------------- item 14: interrupted bootstrap

/// A package index that accepts connections and never answers: pip hangs in its download
/// until killed. Returns the index URL and the number of connections accepted so far.
fn hanging_index() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/simple", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            // Read the request without answering; keep the connection open.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = stream.read(&mut [0u8; 1024]);
            held.push(stream);
        }
    });
    (url, accepted)
}

/// Starts a uv bootstrap (no uv anywhere) whose pip download hangs, and interrupts ktx with
/// SIGINT mid-download, as Ctrl-C does: its staging directory is left behind.
fn interrupt_a_bootstrap(r: &Path) {
    let (index, accepted) = hanging_index();
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = ktx_std(r);
    cmd.env("PATH", empty.path())
        .env("KTX_PYTHON", real_python())
        .env("PIP_INDEX_URL", &index)
        .env("PIP_TIMEOUT", "300")
        .env("PIP_RETRIES", "0");
    for var in [
        "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS",
        "PIP_NO_INDEX",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .args(["runtime", "install"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tools = r.join("tools/uv");
    assert!(
        wait_until(Duration::from_secs(120), || accepted.load(Ordering::SeqCst)
            > 0
            && names(&tools).iter().any(|n| n.starts_with(".bootstrap-"))),
        "pip never reached the index during the bootstrap"
    );
    let ok = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "ktx did not exit on SIGINT"
    );
    assert_eq!(status.unwrap().code(), Some(130));
}

/// The staging directory left by an interrupted uv bootstrap, checked to be there.
fn interrupted_staging(r: &Path) -> PathBuf {
    interrupt_a_bootstrap(r);
    let tools = r.join("tools/uv");
    let staging: Vec<PathBuf> = names(&tools)
        .into_iter()
        .filter(|n| n.starts_with(".bootstrap-"))
        .map(|n| tools.join(n))
        .collect();
    assert_eq!(staging.len(), 1, "{:?}", names(&tools));
    staging.into_iter().next().unwrap()
}

/// Prune lists and removes what interrupted uv bootstraps leave: the staging directory, and a
/// half-placed `.uv.tmp-*` (even empty, file or directory) in the pinned uv's directory.
#[test]
fn slow_prune_removes_what_an_interrupted_uv_bootstrap_left() {
    assert_pip_available();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let staging = interrupted_staging(r);
    // What a bootstrap killed while placing the binary leaves: an empty part file or dir.
    let pinned = r.join("tools/uv").join(pinned_uv());
    fs::create_dir_all(&pinned).unwrap();
    let part_file = pinned.join(format!(".uv.tmp-{}", dead_pid()));
    fs::write(&part_file, "").unwrap();
    let part_dir = pinned.join(format!(".uv.tmp-{}-x1y2z3", dead_pid()));
    fs::create_dir(&part_dir).unwrap();
    let leftovers = [staging, part_file, part_dir];

    let out = ktx(r)
        .args(["runtime", "prune", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<PathBuf> = v["wouldRemove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| PathBuf::from(e["path"].as_str().unwrap()))
        .collect();
    for want in &leftovers {
        assert!(listed.contains(want), "{want:?} not in {v}");
    }
    let out = ktx(r).args(["runtime", "prune", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for gone in &leftovers {
        assert!(
            text.contains(&format!("Removed {} (uv, ", gone.display())),
            "{text}"
        );
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{gone:?} is still there"
        );
    }
}

/// The next install after an interrupted uv bootstrap (bootstrapping uv for real) removes what
/// the interrupted one left: only the pinned uv remains.
#[test]
fn slow_the_next_install_removes_what_an_interrupted_uv_bootstrap_left() {
    assert_pip_available();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let staging = interrupted_staging(r);
    let empty = tempfile::tempdir().unwrap();
    let out = ktx(r)
        .env("PATH", empty.path())
        .env("KTX_PYTHON", real_python())
        .args(["runtime", "install"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Bootstrapping uv"), "{err}");
    assert!(!staging.exists(), "{staging:?} was left behind");
    let tools = r.join("tools/uv");
    assert_eq!(
        names(&tools),
        vec![pinned_uv()],
        "left in {}",
        tools.display()
    );
    assert_eq!(names(&tools.join(pinned_uv())), vec!["uv".to_string()]);
}
