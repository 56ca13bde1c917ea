//! `cargo xtask`: ktx's release tooling.
//!
//! One module per command; every command's flags are declared in [`Cmd`] below (the one place
//! where the command line is parsed), and `main` dispatches each variant to its module's `run`.
//! To add a command: write `mod my_cmd;` with a `#[derive(clap::Args)] pub struct Args` and a
//! `pub fn run(args: &Args) -> anyhow::Result<()>`, then add one variant and one match arm here.
//! Everything that publishes is a dry run unless told otherwise.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod artifacts_verify;
mod bench;
mod binary_check;
mod build_wheel;
mod bundle;
mod dist;
mod dist_manifest;
mod fsx;
mod npm_sandbox;
mod npm_tarball;
mod ordered_json;
mod pack_npm;
mod proc;
mod pyproject;
mod release;
mod stamp_version;
mod test_cmd;
#[cfg(test)]
mod testutil;
mod uv_pins;
mod version;
mod wheel;
mod wine;
mod workspace;

/// Release tooling for ktx (run as `cargo xtask <command>`).
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The commands; each variant's flags live next to the command's code.
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the kaelio-ktx wheel and its asset manifest.json (default into dist/python/).
    BuildWheel(build_wheel::Args),
    /// Write a version everywhere it lives, or check that all places agree (--check).
    StampVersion(stamp_version::Args),
    /// Build ktx in release mode and assemble the npm tarball in dist/npm/.
    PackNpm(pack_npm::Args),
    /// build-wheel + pack-npm: every release artifact in dist/ with dist/manifest.json.
    Dist(dist::Args),
    /// Black-box check of the packed artifacts with real npm (builds dist/ first).
    ArtifactsVerify(artifacts_verify::Args),
    /// After a publish: the artifacts-verify checks on the package installed from the registry.
    PublishedSmoke(artifacts_verify::published::Args),
    /// Time installs, the fast path, one-shot and daemon calls and the launcher against their floors.
    Bench(bench::Args),
    /// All tests: cargo tests, pytest and ruff in a dev venv (.dev-venv) created on demand.
    Test(test_cmd::Args),
    /// Refresh crates/ktx-runtime/uv-pins.json (sha256 of the pinned uv wheels) from the index.
    RefreshUvPins(uv_pins::Args),
    /// Read-only release checks on dist/ (versions, tags, hashes, rebuild, policy); exit 0 only when ready.
    ReleaseReadiness(release::readiness::Args),
    /// Publish dist/'s npm tarball: a dry run unless --live (which also needs CI=true, policy, readiness).
    Publish(release::publish::Args),
    /// Build a signed bundle (lang-python) into dist/bundles/ from its pinned upstream source.
    Bundle(bundle::Args),
}

fn main() -> ExitCode {
    // Bounded children (see `proc`) run in their own process group, out of the terminal's
    // reach: an interrupt kills them before xtask exits, so none is left running.
    let _ = ctrlc::set_handler(|| {
        ktx_runtime::process::kill_active_children();
        eprintln!("\ninterrupted");
        std::process::exit(130);
    });
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::BuildWheel(args) => build_wheel::run(args),
        Cmd::StampVersion(args) => stamp_version::run(args),
        Cmd::PackNpm(args) => pack_npm::run(args),
        Cmd::Dist(args) => dist::run(args),
        Cmd::ArtifactsVerify(args) => artifacts_verify::run(args),
        Cmd::PublishedSmoke(args) => artifacts_verify::published::run(args),
        Cmd::Bench(args) => bench::run(args),
        Cmd::Test(args) => test_cmd::run(args),
        Cmd::RefreshUvPins(args) => uv_pins::run(args),
        Cmd::ReleaseReadiness(args) => release::readiness::run(args),
        Cmd::Publish(args) => release::publish::run(args),
        Cmd::Bundle(args) => bundle::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (the directory holding the workspace `Cargo.toml`).
///
/// Derived from this crate's manifest directory at compile time, so it works from any
/// current directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The cargo executable to use for nested builds (`$CARGO` when run by cargo, else `cargo`).
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Prints a command's report on stdout: pretty JSON with `--json`, else its text form.
pub fn print_report<T: serde::Serialize>(
    json: bool,
    report: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        let rendered = serde_json::to_string_pretty(report)
            .map_err(|e| anyhow::anyhow!("cannot render the report as JSON: {e}"))?;
        println!("{rendered}");
    } else {
        print!("{}", text(report));
    }
    Ok(())
}
