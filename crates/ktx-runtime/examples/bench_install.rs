//! Install benchmark (not a test): cold install through `ktx` against the same raw uv commands
//! typed by hand (warm uv cache), the fast path of a ready runtime, and the pip fallback.
//!
//! ```text
//! cargo build --release -p ktx
//! KTX_ASSET_DIR=/tmp/ktx-assets cargo run --release -p ktx-runtime --example bench_install [-- RUNS]
//! ```
//!
//! Env: `KTX_ASSET_DIR` (or `KTX_TEST_ASSET_DIR`), `KTX_BIN` (default `target/release/ktx`),
//! `uv` and `python3` on PATH. Prints medians of RUNS (default 5) runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    let took = start.elapsed();
    if !out.status.success() {
        panic!("{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn which(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH");
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not on PATH"))
}

fn python_exe() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn ktx(bin: &Path, root: &Path, assets: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env("KTX_RUNTIME_ROOT", root)
        .env("KTX_ASSET_DIR", assets)
        .env_remove("KTX_UV");
    c
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let assets = std::env::var_os("KTX_ASSET_DIR")
        .or_else(|| std::env::var_os("KTX_TEST_ASSET_DIR"))
        .map(PathBuf::from)
        .expect("set KTX_ASSET_DIR (cargo xtask build-wheel --out DIR)");
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = std::env::var_os("KTX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root_dir.join("target/release/ktx"));
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p ktx",
        bin.display()
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(assets.join("manifest.json")).unwrap())
            .unwrap();
    let wheel = assets.join(manifest["wheel"]["file"].as_str().unwrap());
    let uv = which("uv");
    let py = python_exe();
    let tmp = tempfile::tempdir().unwrap();

    // Warm the uv cache once.
    run(ktx(&bin, &tmp.path().join("warm"), &assets).args(["runtime", "install"]));

    let (mut ktx_cold, mut raw, mut raw_check) = (vec![], vec![], vec![]);
    for i in 0..runs {
        let root = tmp.path().join(format!("ktx-{i}"));
        ktx_cold.push(run(ktx(&bin, &root, &assets).args(["runtime", "install"])));

        // The same work by hand: fresh venv, install the wheel (a content-addressed copy, as ktx does).
        let dir = tmp.path().join(format!("raw-{i}"));
        let copy = dir.join("wheels").join(wheel.file_name().unwrap());
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&wheel, &copy).unwrap();
        let venv = dir.join("venv");
        let start = Instant::now();
        run(Command::new(&uv)
            .arg("venv")
            .arg("--python")
            .arg(&py)
            .arg(&venv));
        run(Command::new(&uv)
            .args(["pip", "install", "--python"])
            .arg(venv.join("bin/python"))
            .arg(&copy));
        raw.push(start.elapsed());
        // ktx also runs an import check (runtime.info imports sqlglot & co, compiling .pyc).
        let mut check = Command::new(venv.join("bin/python"));
        check.args(["-I", "-c", "import ktx_daemon.ops.runtime as r; r.info({})"]);
        raw_check.push(start.elapsed() + run(&mut check));
    }
    let ready = tmp.path().join("ktx-0");
    let fast: Vec<Duration> = (0..runs.max(10))
        .map(|_| run(ktx(&bin, &ready, &assets).args(["runtime", "install"])))
        .collect();
    let status: Vec<Duration> = (0..runs.max(10))
        .map(|_| run(ktx(&bin, &ready, &assets).args(["runtime", "status", "--json"])))
        .collect();

    // pip fallback: a Python without pip (no uv bootstrap possible) and no uv on PATH.
    let nopip = tmp.path().join("nopip");
    run(Command::new(&py)
        .args(["-m", "venv", "--without-pip"])
        .arg(&nopip));
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let pip_runs = runs.min(3);
    let pip: Vec<Duration> = (0..pip_runs)
        .map(|i| {
            run(ktx(&bin, &tmp.path().join(format!("pip-{i}")), &assets)
                .env("PATH", &empty)
                .env("KTX_PYTHON", nopip.join("bin/python"))
                .args(["runtime", "install"]))
        })
        .collect();

    let (k, r, rc) = (median(ktx_cold), median(raw), median(raw_check));
    println!(
        "runs: {runs} (medians), uv {}, python {}",
        uv.display(),
        py.display()
    );
    println!("cold install via ktx (warm uv cache):      {k:>10.3?}");
    println!(
        "raw `uv venv` + `uv pip install` by hand:  {r:>10.3?}  (ktx/raw = {:.2})",
        k.as_secs_f64() / r.as_secs_f64()
    );
    println!(
        "raw + the same import check ktx runs:      {rc:>10.3?}  (ktx/raw+check = {:.2})",
        k.as_secs_f64() / rc.as_secs_f64()
    );
    println!(
        "fast path `ktx runtime install` (ready):   {:>10.3?}",
        median(fast)
    );
    println!(
        "`ktx runtime status --json` (ready):       {:>10.3?}",
        median(status)
    );
    println!(
        "pip fallback cold install ({pip_runs} runs):        {:>10.3?}",
        median(pip)
    );
}
