//! `cargo xtask artifacts-verify [--dist DIR] [--target T] [--keep] [--local-embeddings]
//! [--workspace-tests]`: the black-box smoke of the packed npm tarball, and the gate before any
//! release. `--target win32-x64` verifies the Windows binary under Wine instead ([`wine`]).
//!
//! It builds dist/ (unless `--dist` names an existing one), re-verifies its checksums, then
//! installs the tarball the ways users do into a throwaway sandbox (own HOME, npm cache, npm
//! prefix, KTX_RUNTIME_ROOT, and a PATH without uv) and drives only the INSTALLED `ktx`
//! (`<project>/node_modules/.bin/ktx`, `npm exec`, `<prefix>/bin/ktx`), never a target/ binary:
//! lazy runtime install, status, queries one-shot and through the daemon, doctor, prune,
//! `--no-input`, `ktx demo`, and (opt-in) local embeddings. The numbers in the step names are
//! the steps of issue 7.
//!
//! `--target` picks whose binary runs: the host's (default), or one this host emulates
//! ([`target`]; `linux-arm64` under qemu-user, [`qemu`]), which adds steps that prove the
//! emulation is real. Every packed binary passes its static checks ([`crate::binary_check`])
//! whatever the target.
//!
//! The check is the table in [`steps`], run in order; the first failure stops the run, prints
//! the command, its exit code and output tails, stops a daemon the run started, and exits
//! non-zero. To add a check, write a `fn(&mut Ctx) -> Result<()>` and add it to the table.

mod demo;
mod embeddings;
mod exec;
mod install;
mod isolation;
mod package;
mod parse;
pub mod published;
pub mod qemu;
mod runtime;
mod sandbox;
pub mod target;
mod wine;

use crate::dist_manifest::DistManifest;
use crate::npm_sandbox::NpmSandbox;
use anyhow::{Context, Result};
use exec::{DaemonGuard, Ran, RunExt};
use serde_json::Value;
use std::ffi::OsString;
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
    /// Also run the opt-in local-embeddings steps (downloads PyTorch, ~3 GB)
    /// [env: KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1].
    #[arg(long)]
    pub local_embeddings: bool,
    /// Run the smoke with this npm target's binary: `host` (default) or one this host emulates
    /// (on linux-x64: `linux-arm64`, under qemu-user with an arm64 Python from Debian's
    /// packages; needs root the first time; `win32-x64`, its binary and ktx-base's unit tests
    /// under Wine, see `artifacts_verify::wine`). Without --dist, dist/ is built with that target.
    #[arg(long, value_name = "NPM-TARGET", value_parser = target::parse)]
    pub target: Option<target::Target>,
    /// With an emulated --target: also run the ktx-base and ktx-runtime unit tests built for
    /// it under the emulator (slow: minutes).
    #[arg(long)]
    pub workspace_tests: bool,
}

/// The environment variable that opts into the local-embeddings steps.
pub const EMBEDDINGS_ENV: &str = "KTX_RUN_LOCAL_EMBEDDINGS_SMOKE";

/// Bound for quick commands (scaled under emulation, see [`exec::set_timeout_scale`]).
const QUICK: Duration = Duration::from_secs(60);
/// Bound for npm installs and the first, lazily installing, ktx command.
const INSTALL: Duration = Duration::from_secs(600);
/// Idle timeout given to daemons the smoke starts: a backstop should the run be killed before
/// its guard can stop them (a passing run takes well under a minute between start and stop).
const DAEMON_IDLE_TIMEOUT_SECS: &str = "600";

/// One named check.
pub struct Step {
    /// Printed with the time.
    pub name: &'static str,
    /// The check.
    pub run: fn(&mut Ctx) -> Result<()>,
    /// Runs only with `--local-embeddings` / `KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1`.
    pub opt_in: bool,
}

const fn step(name: &'static str, run: fn(&mut Ctx) -> Result<()>) -> Step {
    Step {
        name,
        run,
        opt_in: false,
    }
}

const fn opt_in(name: &'static str, run: fn(&mut Ctx) -> Result<()>) -> Step {
    Step {
        name,
        run,
        opt_in: true,
    }
}

/// The checks for `runner`, in order (numbered as in issue 7; emulated targets add theirs).
#[rustfmt::skip]
pub fn steps(runner: target::Runner) -> Vec<Step> {
    let arm64 = runner == target::Runner::QemuArm64;
    let only = |yes: bool, s: Step| if yes { vec![s] } else { vec![] };
    [
        vec![
        step("0  checksums: dist, .sha256, package contents",  checksums),
        step("0b native binaries: static checks, size budget", binaries),
        step("1a npm install <pkg> into a private project",     install::npm_install_local),
        step("1b npm exec --no -- ktx --version",               install::npm_exec_version),
        step("1c npm exec --no -- <missing bin> fails",         install::npm_exec_negative),
        ],
        only(arm64, step("1d launcher runs native/linux-arm64 under qemu", qemu::launcher_runs_arm64)),
        vec![
        step("2  runtime status --json: missing",               runtime::status_missing),
        step("3  sl query --yes: lazy install + compile",       runtime::first_query),
        step("4a runtime status --json: ready [core]",          runtime::status_ready),
        step("4b sl query --execute: [[3]]",                    runtime::query_execute),
        ],
        only(arm64, step("4c runtime python, venv and uv are aarch64", qemu::runtime_is_arm64)),
        vec![
        step("5a runtime doctor: PASS, exit 0",                 runtime::doctor),
        step("5b runtime start: started",                       runtime::daemon_start),
        step("5c runtime start: reused",                        runtime::daemon_reuse),
        step("5d sl query --daemon --execute: via daemon",      runtime::daemon_query),
        step("5e runtime stop: stopped",                        runtime::daemon_stop),
        step("6  runtime prune: old version only",              runtime::prune),
        step("7  --no-input on an empty root: refused",         runtime::no_input),
        step("8a npm install -g <pkg> --prefix <tmp>",          install::npm_install_global),
        step("8b <prefix>/bin/ktx --version",                   install::global_version),
        step("8c npm exec --yes --package=<pkg> (empty dir)",   install::npm_exec_package),
        step("9  ktx demo + a printed query --execute",         demo::demo),
        step("11 python -c print(1+1) --yes: 2 (shipped bundle)", sandbox::python_one_plus_one),
        opt_in("10a runtime install --feature local-embeddings", embeddings::install),
        opt_in("10b runtime start --feature local-embeddings",  embeddings::start),
        opt_in("10c embed --json: 384 floats, similarity",      embeddings::embed),
        opt_in("10d runtime stop: stopped",                     embeddings::stop),
        ],
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A package taken from a registry (`published-smoke`) instead of dist/.
#[derive(Debug, Clone)]
pub struct Published {
    /// The package name.
    pub name: String,
    /// Its SemVer.
    pub version: String,
    /// The registry (`npm_config_registry`), else npm's default.
    pub registry: Option<String>,
    /// Run `ktx` as `npx --yes <name>@<version>` (nothing installed beforehand).
    pub npx: bool,
}

impl Published {
    /// `<name>@<version>`.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// What the steps share.
pub struct Ctx {
    /// Stops a daemon this run started if the run ends before a step stopped it. Declared
    /// first so it is dropped while the sandbox still exists.
    daemon: Option<DaemonGuard>,
    /// The dist directory being verified.
    pub dist: PathBuf,
    /// Its manifest (loaded by the `checksums` step).
    pub manifest: Option<DistManifest>,
    /// Whether the opt-in local-embeddings steps run.
    pub local_embeddings: bool,
    /// Whether dist/ was built here from the host's own `cargo build` (its Linux binary is
    /// then not held to the static-musl rule); a given `--dist` is checked as a release.
    pub host_build: bool,
    /// With `--target linux-arm64`: the emulated world every command runs in.
    pub arm64: Option<qemu::Arm64>,
    /// Set by `published-smoke`: the package comes from a registry, not from dist/.
    pub published: Option<Published>,
    /// The PATH every sandboxed command gets: the caller's, with uv hidden.
    path: OsString,
    /// The uv executables hidden from that PATH.
    pub hidden_uv: Vec<PathBuf>,
    /// What the last `ktx runtime start` printed.
    pub started: Option<parse::DaemonStart>,
    /// The sandbox every command runs in.
    pub sandbox: NpmSandbox,
}

impl Ctx {
    /// A fresh sandbox for `dist`, with its uv-free PATH, for the host's binary.
    #[cfg(test)]
    pub fn new(dist: PathBuf, local_embeddings: bool) -> Result<Ctx> {
        Self::for_target(dist, local_embeddings, &target::Target::host()?)
    }

    /// [`Ctx::new`] for `target`: an emulated one also prepares its emulator (see [`qemu`]).
    pub fn for_target(
        dist: PathBuf,
        local_embeddings: bool,
        target: &target::Target,
    ) -> Result<Ctx> {
        let sandbox = NpmSandbox::new()?;
        let caller_path = std::env::var_os("PATH").unwrap_or_default();
        let (path, hidden_uv) =
            isolation::path_without_uv(&caller_path, &sandbox.path().join("path-without-uv"))?;
        isolation::assert_no_uv(&path)?;
        let arm64 = match target.runner {
            target::Runner::Native => None,
            target::Runner::QemuArm64 => Some(qemu::Arm64::prepare(
                &crate::workspace::target_dir(&crate::project_root()),
                sandbox.path(),
            )?),
            target::Runner::Wine => {
                anyhow::bail!(
                    "win32-x64 is verified by `artifacts_verify::wine`, not the npm smoke"
                )
            }
        };
        let ctx = Ctx {
            daemon: None,
            dist,
            manifest: None,
            local_embeddings,
            host_build: false,
            arm64,
            published: None,
            path,
            hidden_uv,
            started: None,
            sandbox,
        };
        crate::fsx::create_dir_all(&ctx.warehouse())?;
        Ok(ctx)
    }

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
    /// What `npm install` / `npm exec --package` get: the tarball's path, or `name@version`
    /// from the registry (`published-smoke`).
    pub fn package_arg(&self) -> Result<OsString> {
        match &self.published {
            Some(p) => Ok(p.spec().into()),
            None => Ok(self.tgz()?.into_os_string()),
        }
    }
    /// The package's name (`@kaelio/ktx`).
    pub fn package_name(&self) -> Result<String> {
        match &self.published {
            Some(p) => Ok(p.name.clone()),
            None => Ok(self.manifest()?.artifact("npm")?.name.clone()),
        }
    }
    /// The SemVer under test.
    pub fn version(&self) -> Result<String> {
        match &self.published {
            Some(p) => Ok(p.version.clone()),
            None => Ok(self.manifest()?.version.clone()),
        }
    }
    /// `ktx <semver>`: what `ktx --version` must print.
    pub fn version_line(&self) -> Result<String> {
        Ok(format!("ktx {}", self.version()?))
    }
    /// The isolated runtime root (KTX_RUNTIME_ROOT of every sandboxed command).
    pub fn runtime_root(&self) -> PathBuf {
        self.sandbox.runtime_root()
    }
    /// This version's directory under the runtime root.
    pub fn version_dir(&self) -> Result<PathBuf> {
        Ok(self.runtime_root().join(self.version()?))
    }
    /// The project with the SQLite warehouse (step 3); `ktx` commands run here.
    pub fn warehouse(&self) -> PathBuf {
        self.sandbox.path().join("warehouse")
    }

    /// `program` with the sandbox's environment (see [`NpmSandbox::command`]), the uv-free
    /// PATH, caches under the sandbox's HOME, and a bounded daemon idle timeout.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.isolate(self.sandbox.command(program))
    }
    /// `npm <args>` in the npm project, isolated like [`Ctx::command`].
    pub fn npm(&self, args: &[&str]) -> Command {
        self.isolate(self.sandbox.npm(args))
    }
    fn isolate(&self, mut c: Command) -> Command {
        if let Some(p) = &self.published {
            if let Some(url) = &p.registry {
                c.env("npm_config_registry", url);
            }
        }
        c.env("PATH", &self.path)
            .env("XDG_CACHE_HOME", self.sandbox.home().join(".cache"))
            .env("KTX_DAEMON_IDLE_TIMEOUT", DAEMON_IDLE_TIMEOUT_SECS);
        if let Some(a) = &self.arm64 {
            // Only fails on a PATH entry holding the separator, which `self.path` cannot have.
            if let Err(e) = a.apply(&mut c, &self.path) {
                eprintln!("warning: {e:#}");
            }
        }
        c
    }
    /// The installed `ktx` (`<project>/node_modules/.bin/ktx`, npm's launcher) with `args`, run
    /// in the warehouse project; with [`Published::npx`], `npx --yes <name>@<version>` instead.
    pub fn ktx(&self, args: &[&str]) -> Command {
        let mut c = match &self.published {
            Some(p) if p.npx => {
                let mut c = self.command(crate::workspace::npm_shim("npx"));
                c.arg("--yes").arg(p.spec());
                c
            }
            _ => self.command(crate::workspace::project_bin(
                &self.sandbox.project(),
                "ktx",
            )),
        };
        c.args(args).current_dir(self.warehouse());
        c
    }
    /// `ktx runtime status --json`, run and parsed.
    pub fn status(&self) -> Result<(Ran, Value)> {
        let ran = self.ktx(&["runtime", "status", "--json"]).succeeds(QUICK)?;
        let v = ran.json()?;
        Ok((ran, v))
    }

    /// [`Ctx::status`], failing unless its `kind` is `want`.
    pub fn status_of_kind(&self, want: &str) -> Result<(Ran, Value)> {
        let (ran, st) = self.status()?;
        ran.require(
            st["kind"] == want,
            format!("`kind` is {}, expected \"{want}\"", st["kind"]),
        )?;
        Ok((ran, st))
    }

    /// Arms the guard that stops the daemon if the run ends early (call before starting one).
    pub fn arm_daemon_guard(&mut self) {
        if self.daemon.is_none() {
            self.daemon = Some(DaemonGuard::arm(self.ktx(&["runtime", "stop"])));
        }
    }
    /// A step stopped the daemon: disarms the guard.
    pub fn daemon_stopped(&mut self) {
        if let Some(g) = self.daemon.take() {
            g.disarm();
        }
    }
    /// Stops the daemon now if a step started one and none stopped it.
    pub fn stop_leftover_daemon(&mut self) {
        drop(self.daemon.take());
    }
}

/// Runs the main job.
pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    if args.target.as_ref().map(|t| t.runner) == Some(target::Runner::Wine) {
        if args.workspace_tests {
            anyhow::bail!("--workspace-tests is for linux-arm64; win32-x64 always runs ktx-base's unit tests under Wine");
        }
        return wine::run(&root, args.dist.as_deref());
    }
    let total = Instant::now();
    let target = match &args.target {
        Some(t) => t.clone(),
        None => target::Target::host()?,
    };
    let emulated = target.runner != target::Runner::Native;
    if args.workspace_tests && !emulated {
        anyhow::bail!(
            "--workspace-tests runs the unit tests of an emulated --target (the host's run with \
             `cargo xtask test`)"
        );
    }
    if emulated {
        // Emulated programs run several times slower than native ones.
        exec::set_timeout_scale(EMULATED_TIMEOUT_SCALE);
    }
    let dist = match &args.dist {
        Some(d) => std::env::current_dir()
            .map(|c| c.join(d))
            .unwrap_or(d.clone()),
        None => {
            let t = Instant::now();
            let spec = if emulated {
                format!("host,{}", target.npm)
            } else {
                "host".to_string()
            };
            let targets = crate::dist::cross::parse_targets(&spec)?;
            let (_, non_cargo) =
                crate::dist::build_dist_for(&root, &targets).context("step `dist` failed")?;
            report(
                "ok",
                "dist (cargo build --release + wheel + tarball)",
                t.elapsed(),
            );
            println!("      ({non_cargo:.2?} excluding the cargo build)");
            root.join("dist")
        }
    };
    let local_embeddings = args.local_embeddings
        || std::env::var(EMBEDDINGS_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let mut ctx = Ctx::for_target(dist, local_embeddings, &target)?;
    ctx.host_build = args.dist.is_none();
    println!("sandbox: {}", ctx.sandbox.path().display());
    if let Some(a) = &ctx.arm64 {
        println!(
            "target: {} under qemu-user (sysroot {}); node reports arch arm64 (preload {})",
            target.npm,
            a.sysroot.display(),
            a.preload.display()
        );
    }
    match ctx.hidden_uv.as_slice() {
        [] => println!("uv: none on PATH; ktx must bootstrap its own"),
        hidden => println!(
            "uv: hidden from the sandbox's PATH ({}); ktx must bootstrap its own",
            hidden
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    let result = run_steps(&mut ctx, &steps(target.runner));
    ctx.stop_leftover_daemon();
    if args.keep {
        println!("kept sandbox: {}", ctx.sandbox.keep().display());
    } else if result.is_err() {
        println!("(re-run with --keep to inspect the sandbox: install logs, daemon log)");
    }
    result?;
    if args.workspace_tests {
        let took = qemu::workspace_tests(&root)?;
        report(
            "ok",
            &format!("{} unit tests under qemu", qemu::TRIPLE),
            took,
        );
    }
    println!(
        "artifacts-verify ({}): all checks passed in {:.2?}",
        target.npm,
        total.elapsed()
    );
    Ok(())
}

/// How much longer commands may take under emulation.
const EMULATED_TIMEOUT_SCALE: u32 = 5;

fn report(outcome: &str, name: &str, took: Duration) {
    println!("{outcome:<5} {name:<50} {:>8.2}s", took.as_secs_f64());
}

/// Runs `steps` in order, printing one line each; stops at the first failure. Opt-in steps are
/// skipped with one line for all of them unless `ctx.local_embeddings`.
pub fn run_steps(ctx: &mut Ctx, steps: &[Step]) -> Result<()> {
    let mut skip_said = false;
    for step in steps {
        if step.opt_in && !ctx.local_embeddings {
            if !skip_said {
                println!(
                    "skip  10 local embeddings (opt-in): run `cargo xtask artifacts-verify \
                     --local-embeddings` or set {EMBEDDINGS_ENV}=1"
                );
                skip_said = true;
            }
            continue;
        }
        let t = Instant::now();
        match (step.run)(ctx) {
            Ok(()) => report("ok", step.name, t.elapsed()),
            Err(err) => {
                report("FAIL", step.name, t.elapsed());
                return Err(err.context(format!("step `{}` failed", step.name)));
            }
        }
    }
    Ok(())
}

/// Step 0: dist/manifest.json and the `.sha256` file against the files, then the tarball's
/// contents against its own manifests ([`package::check`]).
fn checksums(ctx: &mut Ctx) -> Result<()> {
    let manifest = DistManifest::load(&ctx.dist)?;
    manifest.verify(&ctx.dist)?;
    let npm = manifest.artifact("npm")?;
    let sha_file = ctx.dist.join(format!("{}.sha256", npm.path));
    let text = crate::fsx::read_to_string(&sha_file)?;
    let file_name = npm.path.rsplit('/').next().unwrap_or(&npm.path);
    let expected = format!("{}  {file_name}\n", npm.sha256);
    anyhow::ensure!(
        text == expected,
        "{} holds {text:?}, expected {expected:?}; rebuild with `cargo xtask dist`",
        sha_file.display()
    );
    let tgz = ctx.dist.join(&npm.path);
    package::check(
        &tgz.display().to_string(),
        &crate::fsx::read(&tgz)?,
        &manifest,
    )?;
    ctx.manifest = Some(manifest);
    Ok(())
}

/// Step 0b: every native binary in the tarball passes [`crate::binary_check`] for its target
/// (a dist built here from the host's own `cargo build` is not held to the static-musl rule
/// for its Linux binary), the target under test is packed, and the tarball is within
/// [`crate::dist::TARBALL_BUDGET`].
fn binaries(ctx: &mut Ctx) -> Result<()> {
    let tgz = ctx.tgz()?;
    let npm = ctx.manifest()?.artifact("npm")?;
    crate::dist::check_budget(&tgz, npm.bytes)?;
    let files = crate::npm_tarball::read_files(&crate::fsx::read(&tgz)?)
        .with_context(|| format!("cannot read {}", tgz.display()))?;
    let pj: Value = serde_json::from_slice(
        &files
            .get("package.json")
            .context("package.json is missing from the tarball")?
            .data,
    )
    .context("the tarball's package.json is not JSON")?;
    let native = pj
        .pointer("/ktx/native")
        .and_then(Value::as_object)
        .context("the tarball's package.json has no `ktx.native`")?;
    let host = crate::pack_npm::host_npm_target()?;
    for (target, meta) in native {
        let path = meta.get("path").and_then(Value::as_str).unwrap_or_default();
        let data = &files
            .get(path)
            .with_context(|| format!("package/{path} is missing from the tarball"))?
            .data;
        let linkage = if ctx.host_build && *target == host {
            crate::binary_check::Linkage::HostBuild
        } else {
            crate::binary_check::Linkage::Static
        };
        let checked = crate::binary_check::check(target, data, linkage)
            .with_context(|| format!("package/{path} inside {}", tgz.display()))?;
        println!("      {target}: {}", checked.summary);
    }
    if ctx.arm64.is_some() {
        anyhow::ensure!(
            native.contains_key("linux-arm64"),
            "{} packs no linux-arm64 binary (it has {:?}); build it with `cargo xtask dist \
             --targets host,linux-arm64`",
            tgz.display(),
            native.keys().collect::<Vec<_>>()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_cmd(_: &mut Ctx) -> Result<()> {
        let mut c = Command::new("sh");
        c.args(["-c", "echo to-stdout; echo to-stderr >&2; exit 4"]);
        c.succeeds(QUICK).map(|_| ())
    }

    fn never(_: &mut Ctx) -> Result<()> {
        panic!("steps after a failure must not run")
    }

    fn ok(_: &mut Ctx) -> Result<()> {
        Ok(())
    }

    fn ctx(dist: &std::path::Path) -> Ctx {
        Ctx::new(dist.to_path_buf(), false).unwrap()
    }

    #[test]
    fn a_failing_step_names_itself_and_shows_command_exit_and_tails() {
        let tmp = tempfile::tempdir().unwrap();
        let steps = [step("boom", fail_cmd), step("after", never)];
        let err = format!("{:#}", run_steps(&mut ctx(tmp.path()), &steps).unwrap_err());
        assert!(err.contains("step `boom` failed"), "{err}");
        assert!(err.contains("command: sh -c"), "{err}");
        assert!(err.contains("exit status: 4"), "{err}");
        assert!(
            err.contains("to-stdout") && err.contains("to-stderr"),
            "{err}"
        );
    }

    fn opt_in_ran(_: &mut Ctx) -> Result<()> {
        anyhow::bail!("the opt-in step ran")
    }

    #[test]
    fn opt_in_steps_run_only_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let steps = [
            step("first", ok),
            opt_in("big", opt_in_ran),
            opt_in("bigger", never),
        ];
        run_steps(&mut ctx(tmp.path()), &steps).unwrap();
        let mut c = ctx(tmp.path());
        c.local_embeddings = true;
        let err = format!("{:#}", run_steps(&mut c, &steps).unwrap_err());
        assert!(err.contains("the opt-in step ran"), "{err}");
    }

    #[test]
    fn the_table_numbers_every_step_of_the_issue() {
        let names: Vec<&str> = steps(target::Runner::Native)
            .iter()
            .map(|s| s.name)
            .collect();
        for n in 0..=10 {
            assert!(
                names.iter().any(|s| s
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches(char::is_alphabetic)
                    == n.to_string()),
                "no step {n} in {names:?}"
            );
        }
        assert!(steps(target::Runner::Native)
            .iter()
            .filter(|s| s.opt_in)
            .all(|s| s.name.starts_with("10")));
    }

    #[test]
    fn sandboxed_commands_see_no_uv_and_the_isolated_root() {
        let tmp = tempfile::tempdir().unwrap();
        let c = ctx(tmp.path());
        let cmd = c.ktx(&["--version"]);
        let env: std::collections::HashMap<_, _> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        isolation::assert_no_uv(&env[std::ffi::OsStr::new("PATH")]).unwrap();
        assert_eq!(
            env[std::ffi::OsStr::new("KTX_RUNTIME_ROOT")],
            c.runtime_root().as_os_str()
        );
        assert_eq!(cmd.get_current_dir(), Some(c.warehouse().as_path()));
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
            bundles: None,
        })
        .unwrap();
        let mut ctx = ctx(&dist);
        checksums(&mut ctx).unwrap();
        let mut bytes = std::fs::read(&packed.tgz).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&packed.tgz, bytes).unwrap();
        let err = format!("{:#}", checksums(&mut ctx).unwrap_err());
        assert!(err.contains("does not match dist/manifest.json"), "{err}");
    }
}
