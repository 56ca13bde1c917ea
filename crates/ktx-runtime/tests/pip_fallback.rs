//! The pip fallback with a base interpreter whose pip is new enough (>= 22.3): the venv is made
//! `--without-pip` and the base pip installs into it with `pip --python`. Offline, with a
//! wheelhouse that holds no uv wheel, the uv bootstrap is skipped without running pip.
//!
//! One test in this binary: it sets PATH and KTX_PYTHON for the whole process.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use ktx_runtime::progress::{Event, InstallerKind, Reporter};
use ktx_runtime::{install, Assets, Feature, InstallOptions, Layout};

fn asset_dir() -> PathBuf {
    match std::env::var_os("KTX_TEST_ASSET_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => panic!(
            "KTX_TEST_ASSET_DIR is not set: run `cargo xtask test` or set KTX_TEST_ASSET_DIR (cargo xtask build-wheel --out DIR)"
        ),
    }
}

/// The real interpreter behind `python3` on PATH (pyenv shims resolved).
fn real_python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("this test needs python3 on PATH");
    assert!(out.status.success());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Reporter for Recorder {
    fn report(&self, event: Event<'_>) {
        let text = match event {
            Event::Notice(n) => format!("notice: {n}"),
            Event::Step(s) => format!("step: {s}"),
            Event::Started { installer, .. } => format!("started: {}", installer.as_str()),
            Event::Waiting { .. } => "waiting".into(),
            Event::Finished { .. } => "finished".into(),
        };
        self.0.lock().unwrap().push(text);
    }
}

fn site_packages_has(venv: &Path, name: &str) -> bool {
    let lib = venv.join("lib");
    fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .any(|py| py.path().join("site-packages").join(name).exists())
}

#[test]
fn slow_pip_fallback_uses_the_base_pip_and_skips_a_hopeless_uv_bootstrap() {
    let assets = Assets::load(&asset_dir()).unwrap();
    let python = real_python();
    let pip = Command::new(&python)
        .args(["-c", "import pip; print(pip.__version__)"])
        .output()
        .unwrap();
    let pip_version = String::from_utf8_lossy(&pip.stdout).trim().to_string();
    let release: Vec<u64> = pip_version
        .split('.')
        .take(2)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    assert!(
        pip.status.success() && release >= vec![22, 3],
        "this test needs a python3 with pip >= 22.3 (found {pip_version:?})"
    );
    let tmp = tempfile::tempdir().unwrap();
    // The documented recipe for air-gapped machines: a wheelhouse without uv in it.
    let house = tmp.path().join("house");
    let out = Command::new(&python)
        .args(["-m", "pip", "download", "--disable-pip-version-check", "-d"])
        .arg(&house)
        .arg(assets.wheel_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let empty = tmp.path().join("empty-bin"); // PATH without uv
    fs::create_dir_all(&empty).unwrap();
    std::env::set_var("PATH", &empty);
    std::env::set_var("KTX_PYTHON", &python);
    std::env::remove_var("KTX_UV");

    let layout = Layout::new(tmp.path().join("root"), "0.0.0-test");
    let mut opts = InstallOptions::new(&[Feature::Core]);
    opts.find_links = Some(house.clone());
    let rec = Recorder::default();
    let outcome = install(&layout, &assets, &opts, &rec).unwrap();
    assert_eq!(outcome.installer, Some(InstallerKind::Pip));
    assert_eq!(outcome.receipt.installer.name, "pip");
    assert_eq!(outcome.receipt.interpreter.path, python);
    // Made --without-pip: the packages are there, pip is not.
    let venv = &outcome.receipt.venv_dir;
    assert!(site_packages_has(venv, "sqlglot"));
    assert!(!site_packages_has(venv, "pip"), "the venv got its own pip");

    let log = fs::read_to_string(outcome.log_path.unwrap()).unwrap();
    assert!(log.contains("-m venv --without-pip "), "{log}");
    assert!(
        log.contains(&format!("$ {} -m pip --python ", python.display())),
        "{log}"
    );
    assert!(
        !log.contains("pip download"),
        "hopeless bootstrap ran: {log}"
    );
    let events = rec.0.lock().unwrap().join("\n");
    assert!(
        events.contains("holds no uv-") && events.contains("started: pip"),
        "{events}"
    );
}
