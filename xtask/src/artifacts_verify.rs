//! `cargo xtask artifacts-verify [--dist DIR] [--keep]`: the main job. Builds dist/ (unless
//! `--dist` names an existing one), then checks the packed artifacts black-box with real npm in
//! a throwaway sandbox (own HOME, npm cache, npm prefix and KTX_RUNTIME_ROOT).
//!
//! The check is a list of [`Step`]s run in order; the first failure stops the run. To add a
//! check, write a `fn(&mut Ctx) -> Result<()>` and add it to [`steps`].

use crate::dist_manifest::DistManifest;
use crate::npm_sandbox::NpmSandbox;
use crate::proc;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Flags of `artifacts-verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Verify this existing dist directory instead of building dist/ first.
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
    /// Keep the sandbox directory (its path is printed) for inspection.
    #[arg(long)]
    pub keep: bool,
}

/// Bound for npm installs.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound for quick commands.
const QUICK_TIMEOUT: Duration = Duration::from_secs(60);

/// What the steps share.
#[derive(Debug)]
pub struct Ctx {
    /// The dist directory being verified.
    pub dist: PathBuf,
    /// Its manifest (loaded by the `checksums` step).
    pub manifest: Option<DistManifest>,
    /// The sandbox every command runs in.
    pub sandbox: NpmSandbox,
}

impl Ctx {
    /// The manifest, once the `checksums` step has loaded it.
    pub fn manifest(&self) -> Result<&DistManifest> {
        self.manifest
            .as_ref()
            .context("dist/manifest.json was not loaded (the checksums step must run first)")
    }
    /// Absolute path of the npm tarball.
    pub fn tgz(&self) -> Result<PathBuf> {
        Ok(self.dist.join(&self.manifest()?.artifact("npm")?.path))
    }
    /// `ktx <semver>`: what `ktx --version` must print.
    pub fn version_line(&self) -> Result<String> {
        Ok(format!("ktx {}", self.manifest()?.version))
    }
}

/// One named check.
pub struct Step {
    /// Printed before the time.
    pub name: &'static str,
    /// The check.
    pub run: fn(&mut Ctx) -> Result<()>,
}

/// The checks, in order.
pub fn steps() -> Vec<Step> {
    vec![
        Step {
            name: "checksums (dist/manifest.json, .sha256)",
            run: checksums,
        },
        Step {
            name: "npm install <tgz> into a fresh project",
            run: npm_install_local,
        },
        Step {
            name: "npm exec --no -- ktx --version",
            run: npm_exec_version,
        },
        Step {
            name: "npm exec --no -- ktx-does-not-exist fails",
            run: npm_exec_negative,
        },
        Step {
            name: "npm install -g <tgz> --prefix <tmp>",
            run: npm_install_global,
        },
        Step {
            name: "<prefix>/bin/ktx --version",
            run: global_version,
        },
    ]
}

/// Runs the main job.
pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let total = Instant::now();
    let dist = match &args.dist {
        Some(d) => std::env::current_dir()
            .map(|c| c.join(d))
            .unwrap_or(d.clone()),
        None => {
            let t = Instant::now();
            let (_, non_cargo) = crate::dist::build_dist(&root).context("step `dist` failed")?;
            report(
                "dist (cargo build --release + wheel + tarball)",
                t.elapsed(),
            );
            println!("      ({non_cargo:.2?} excluding the cargo build)");
            root.join("dist")
        }
    };
    let mut ctx = Ctx {
        dist,
        manifest: None,
        sandbox: NpmSandbox::new()?,
    };
    println!("sandbox: {}", ctx.sandbox.path().display());
    let result = run_steps(&mut ctx, &steps());
    if args.keep {
        println!("kept sandbox: {}", ctx.sandbox.keep().display());
    }
    result?;
    println!(
        "artifacts-verify: all checks passed in {:.2?}",
        total.elapsed()
    );
    Ok(())
}

fn report(name: &str, took: Duration) {
    println!("ok    {name:<48} {:>8.2}s", took.as_secs_f64());
}

/// Runs `steps` in order, printing one line each; stops at the first failure.
pub fn run_steps(ctx: &mut Ctx, steps: &[Step]) -> Result<()> {
    for step in steps {
        let t = Instant::now();
        match (step.run)(ctx) {
            Ok(()) => report(step.name, t.elapsed()),
            Err(err) => {
                println!(
                    "FAIL  {:<48} {:>8.2}s",
                    step.name,
                    t.elapsed().as_secs_f64()
                );
                return Err(err.context(format!("step `{}` failed", step.name)));
            }
        }
    }
    Ok(())
}

fn checksums(ctx: &mut Ctx) -> Result<()> {
    let manifest = DistManifest::load(&ctx.dist)?;
    manifest.verify(&ctx.dist)?;
    let npm = manifest.artifact("npm")?;
    let sha_file = ctx.dist.join(format!("{}.sha256", npm.path));
    let text = crate::fsx::read_to_string(&sha_file)?;
    let file_name = npm.path.rsplit('/').next().unwrap_or(&npm.path);
    let expected = format!("{}  {file_name}\n", npm.sha256);
    if text != expected {
        bail!(
            "{} holds {text:?}, expected {expected:?}; rebuild with `cargo xtask dist`",
            sha_file.display()
        );
    }
    ctx.manifest = Some(manifest);
    Ok(())
}

fn expect_stdout(cmd: &mut Command, expected: &str, timeout: Duration) -> Result<()> {
    let f = proc::run_ok(cmd, timeout)?;
    if f.stdout.trim_end() != expected {
        return Err(proc::failure(
            cmd,
            &f,
            &format!("expected stdout `{expected}`"),
        ));
    }
    Ok(())
}

fn npm_install_local(ctx: &mut Ctx) -> Result<()> {
    ctx.sandbox.init_project()?;
    let tgz = ctx.tgz()?;
    let cache = ctx.sandbox.cache();
    let mut cmd = ctx.sandbox.npm(&["install"]);
    cmd.arg(&tgz)
        .args(["--ignore-scripts", "--no-audit", "--no-fund", "--cache"])
        .arg(&cache);
    proc::run_ok(&mut cmd, INSTALL_TIMEOUT)?;
    Ok(())
}

fn npm_exec_version(ctx: &mut Ctx) -> Result<()> {
    let expected = ctx.version_line()?;
    expect_stdout(
        &mut ctx.sandbox.npm(&["exec", "--no", "--", "ktx", "--version"]),
        &expected,
        QUICK_TIMEOUT,
    )
}

fn npm_exec_negative(ctx: &mut Ctx) -> Result<()> {
    let mut cmd = ctx
        .sandbox
        .npm(&["exec", "--no", "--", "ktx-does-not-exist"]);
    let f = proc::run(&mut cmd, QUICK_TIMEOUT)?;
    if f.status.success() {
        return Err(proc::failure(
            &cmd,
            &f,
            "a bin that does not exist must fail (negative control)",
        ));
    }
    Ok(())
}

fn npm_install_global(ctx: &mut Ctx) -> Result<()> {
    let tgz = ctx.tgz()?;
    let (prefix, cache) = (ctx.sandbox.prefix(), ctx.sandbox.cache());
    let mut cmd = ctx.sandbox.npm(&["install", "-g"]);
    cmd.arg(&tgz)
        .arg("--prefix")
        .arg(&prefix)
        .args(["--ignore-scripts", "--no-audit", "--no-fund", "--cache"])
        .arg(&cache);
    proc::run_ok(&mut cmd, INSTALL_TIMEOUT)?;
    Ok(())
}

fn global_version(ctx: &mut Ctx) -> Result<()> {
    let expected = ctx.version_line()?;
    let bin = ctx.sandbox.prefix().join("bin/ktx");
    expect_stdout(
        ctx.sandbox.command(&bin).arg("--version"),
        &expected,
        QUICK_TIMEOUT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_cmd(_: &mut Ctx) -> Result<()> {
        let mut c = Command::new("sh");
        c.args(["-c", "echo to-stdout; echo to-stderr >&2; exit 4"]);
        proc::run_ok(&mut c, QUICK_TIMEOUT).map(|_| ())
    }

    fn never(_: &mut Ctx) -> Result<()> {
        panic!("steps after a failure must not run")
    }

    #[test]
    fn a_failing_step_names_itself_and_shows_command_exit_and_tails() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ctx = Ctx {
            dist: tmp.path().to_path_buf(),
            manifest: None,
            sandbox: NpmSandbox::new().unwrap(),
        };
        let steps = [
            Step {
                name: "boom",
                run: fail_cmd,
            },
            Step {
                name: "after",
                run: never,
            },
        ];
        let err = format!("{:#}", run_steps(&mut ctx, &steps).unwrap_err());
        assert!(err.contains("step `boom` failed"), "{err}");
        assert!(err.contains("command: sh -c"), "{err}");
        assert!(err.contains("exit status: 4"), "{err}");
        assert!(
            err.contains("to-stdout") && err.contains("to-stderr"),
            "{err}"
        );
    }

    #[test]
    fn checksums_step_catches_a_tampered_artifact() {
        let tmp = tempfile::tempdir().unwrap();
        let native = tmp.path().join("ktx");
        std::fs::write(&native, "#!/bin/sh\n").unwrap();
        let dist = tmp.path().join("dist");
        let packed = crate::pack_npm::pack(&crate::pack_npm::PackInputs {
            root: crate::project_root(),
            dist: dist.clone(),
            native: vec![("linux-x64".into(), native)],
            epoch: None,
        })
        .unwrap();
        let mut ctx = Ctx {
            dist: dist.clone(),
            manifest: None,
            sandbox: NpmSandbox::new().unwrap(),
        };
        checksums(&mut ctx).unwrap();
        let mut bytes = std::fs::read(&packed.tgz).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&packed.tgz, bytes).unwrap();
        let err = format!("{:#}", checksums(&mut ctx).unwrap_err());
        assert!(err.contains("does not match dist/manifest.json"), "{err}");
    }
}
