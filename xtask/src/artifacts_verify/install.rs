//! Steps 1 and 8: the ways users install and invoke the package (a project install with
//! `npm exec`, a global install into a prefix, and `npm exec --package=<tgz>` with no project),
//! from the tarball or, for `published-smoke`, from the registry.

use super::exec::RunExt;
use super::{Ctx, INSTALL, QUICK};
use anyhow::Result;
use std::process::Command;

/// `ktx --version` must print exactly `ktx <version>`.
fn expect_version(ctx: &Ctx, cmd: Command) -> Result<()> {
    let expected = ctx.version_line()?;
    let ran = cmd.succeeds(QUICK)?;
    ran.require(
        ran.stdout().trim_end() == expected,
        format!("expected stdout `{expected}`"),
    )
}

/// Step 1a: `npm install <abs.tgz> --ignore-scripts --no-audit --no-fund` into a new
/// `{"private":true}` project.
pub fn npm_install_local(ctx: &mut Ctx) -> Result<()> {
    ctx.sandbox.init_project()?;
    let mut cmd = ctx.npm(&["install"]);
    cmd.arg(ctx.package_arg()?)
        .args(["--ignore-scripts", "--no-audit", "--no-fund", "--cache"])
        .arg(ctx.sandbox.cache());
    let ran = cmd.succeeds(INSTALL)?;
    let bin = crate::workspace::project_bin(&ctx.sandbox.project(), "ktx");
    ran.require(bin.exists(), format!("npm linked no {}", bin.display()))
}

/// Step 1b: `npm exec --no -- ktx --version` equals the package version.
pub fn npm_exec_version(ctx: &mut Ctx) -> Result<()> {
    expect_version(ctx, ctx.npm(&["exec", "--no", "--", "ktx", "--version"]))
}

/// Step 1c (negative control): a bin the package does not have fails the same way.
pub fn npm_exec_negative(ctx: &mut Ctx) -> Result<()> {
    ctx.npm(&["exec", "--no", "--", "ktx-does-not-exist"])
        .fails(QUICK)
        .map(|_| ())
}

/// Step 8a: `npm install -g <tgz> --prefix <tmp>`.
pub fn npm_install_global(ctx: &mut Ctx) -> Result<()> {
    let mut cmd = ctx.npm(&["install", "-g"]);
    cmd.arg(ctx.package_arg()?)
        .arg("--prefix")
        .arg(ctx.sandbox.prefix())
        .args(["--ignore-scripts", "--no-audit", "--no-fund", "--cache"])
        .arg(ctx.sandbox.cache());
    cmd.succeeds(INSTALL).map(|_| ())
}

/// Step 8b: `<prefix>/bin/ktx --version` (`<prefix>\\ktx.cmd` on Windows).
pub fn global_version(ctx: &mut Ctx) -> Result<()> {
    let bin = crate::workspace::global_bin(&ctx.sandbox.prefix(), "ktx");
    let mut cmd = ctx.command(bin);
    cmd.arg("--version");
    expect_version(ctx, cmd)
}

/// Step 8c: `npm exec --yes --package=<abs.tgz> -- ktx --version` from an empty directory (no
/// package.json, nothing installed there).
pub fn npm_exec_package(ctx: &mut Ctx) -> Result<()> {
    let empty = ctx.sandbox.path().join("empty-dir");
    crate::fsx::create_dir_all(&empty)?;
    let package = format!("--package={}", ctx.package_arg()?.to_string_lossy());
    let mut cmd = ctx.npm(&["exec", "--yes", &package, "--", "ktx", "--version"]);
    cmd.current_dir(&empty);
    expect_version(ctx, cmd)?;
    let left: Vec<_> = std::fs::read_dir(&empty)?.flatten().collect();
    anyhow::ensure!(
        left.is_empty(),
        "npm exec --package wrote into the empty directory {}: {:?}",
        empty.display(),
        left.iter().map(|e| e.file_name()).collect::<Vec<_>>()
    );
    Ok(())
}
