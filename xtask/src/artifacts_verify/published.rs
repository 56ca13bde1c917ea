//! `cargo xtask published-smoke --version V [--registry URL]`: the package as users get it
//! from a registry, after a publish, with the same steps and checks as artifacts-verify (the
//! same [`Ctx`] and step functions; only where the package comes from differs).
//!
//! Two clean worlds (own HOME, npm cache, prefix and KTX_RUNTIME_ROOT each):
//! 1. Nothing installed: `npm view` finds the version; `npx --yes <name>@V --version`; a first
//!    `sl query --yes` through npx, which installs the runtime lazily; `npx --yes <name>@V
//!    demo` and one printed query with `--execute`.
//! 2. Every artifacts-verify step after the checksums, installing `<name>@V` from the registry
//!    instead of the tarball: the local install and `npm exec`, status, the lazy install on a
//!    first query, daemon, doctor, prune, `--no-input`, the global install and `npm exec
//!    --package`, the demo.

use super::exec::RunExt;
use super::{demo, run_steps, runtime, step, steps, Ctx, Published, QUICK};
use anyhow::{Context, Result};
use std::time::Instant;

/// The number of the `ktx python` step, which needs the shipped bundle.
const SANDBOX_STEP: &str = "11 ";

/// Flags of `published-smoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The published version to check (the SemVer, e.g. 0.1.0-rc.0).
    #[arg(long, value_name = "V")]
    pub version: String,
    /// The registry to install from (default: npm's configured registry, i.e. npmjs.org).
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
    /// The package name.
    #[arg(long, value_name = "NAME", default_value = "@kaelio/ktx")]
    pub package: String,
    /// Keep the sandbox directories (their paths are printed) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// The package ships no signed bundle (a test registry's: release-readiness refuses a
    /// development-signed one), so step 11 (`ktx python`) is skipped, and says so.
    #[arg(long)]
    pub without_bundle: bool,
}

/// Step P0: `npm view <name>@V version --json` answers exactly V.
fn published(ctx: &mut Ctx) -> Result<()> {
    let p = ctx.published.clone().context("published-smoke only")?;
    let ran = ctx
        .npm(&["view", &p.spec(), "version", "--json"])
        .succeeds(QUICK)?;
    let got: String = ran.check(
        serde_json::from_str(ran.stdout().trim()).context("not a JSON string"),
        "unexpected npm view output",
    )?;
    ran.require(
        got == p.version,
        format!(
            "the registry answers version {got:?}, expected {:?}",
            p.version
        ),
    )
}

/// Step P1: `npx --yes <name>@V --version` from a directory with nothing installed.
fn npx_version(ctx: &mut Ctx) -> Result<()> {
    let expected = ctx.version_line()?;
    let mut cmd = ctx.ktx(&["--version"]);
    cmd.current_dir(ctx.sandbox.path());
    let ran = cmd.succeeds(super::INSTALL)?;
    ran.require(
        ran.stdout().trim_end() == expected,
        format!("expected stdout `{expected}`"),
    )
}

fn sandbox_ctx(args: &Args, npx: bool) -> Result<Ctx> {
    let mut ctx = Ctx::for_target(
        std::path::PathBuf::new(),
        false,
        &super::target::Target::host()?,
    )?;
    ctx.published = Some(Published {
        name: args.package.clone(),
        version: args.version.clone(),
        registry: args.registry.clone(),
        npx,
    });
    Ok(ctx)
}

fn finish(ctx: Ctx, keep: bool, failed: bool) {
    if keep {
        println!("kept sandbox: {}", ctx.sandbox.keep().display());
    } else if failed {
        println!("(re-run with --keep to inspect the sandbox)");
    }
}

/// Runs both phases; the first failure stops the run.
pub fn run(args: &Args) -> Result<()> {
    let total = Instant::now();
    let spec = format!("{}@{}", args.package, args.version);
    println!(
        "published-smoke: {spec} from {}",
        args.registry.as_deref().unwrap_or("npm's default registry")
    );

    let mut npx = sandbox_ctx(args, true)?;
    println!(
        "sandbox (npx, nothing installed): {}",
        npx.sandbox.path().display()
    );
    let first = [
        step("P0 npm view <spec> version: published", published),
        step("P1 npx --yes <spec> --version", npx_version),
        step(
            "P2 npx <spec> sl query --yes: lazy install",
            runtime::first_query,
        ),
        step("P3 npx <spec> demo + a printed query --execute", demo::demo),
    ];
    let r = run_steps(&mut npx, &first);
    npx.stop_leftover_daemon();
    finish(npx, args.keep, r.is_err());
    r?;

    let mut installed = sandbox_ctx(args, false)?;
    println!(
        "sandbox (installs from the registry): {}",
        installed.sandbox.path().display()
    );
    // The checksum steps read dist/; the package here is the registry's.
    let rest: Vec<_> = steps(super::target::Runner::Native)
        .into_iter()
        .filter(|s| !s.name.starts_with('0'))
        .filter(|s| !(args.without_bundle && s.name.starts_with(SANDBOX_STEP)))
        .collect();
    if args.without_bundle {
        println!(
            "skip  {} ktx python: --without-bundle (the package ships no bundle)",
            SANDBOX_STEP.trim_end()
        );
    }
    let r = run_steps(&mut installed, &rest);
    installed.stop_leftover_daemon();
    finish(installed, args.keep, r.is_err());
    r?;
    println!(
        "published-smoke ({spec}): all checks passed in {:.2?}",
        total.elapsed()
    );
    Ok(())
}
