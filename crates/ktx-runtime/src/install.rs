//! The locked, receipt-last install.
//!
//! 1. Verify the bundled wheel (name, size, sha256) before touching the root.
//! 2. Fast path: a ready runtime is returned without locking or running anything.
//! 3. Take `install.lock` (say whom we wait for, wait with a timeout), re-check.
//! 4. Remove venvs no receipt names (left by an interrupted install).
//! 5. Build a fresh `venvs/<id>/` from a content-addressed copy of the wheel with uv (found or
//!    bootstrapped) or the pip fallback, with the requested features plus those the current
//!    receipt lists (a new feature adds to the runtime); import-check it with `runtime.info`.
//! 6. Write the receipt last (tmp, fsync, rename); garbage-collect older venvs (best-effort).
//!
//! A failure or an interrupt at any point leaves the previous receipt (and so the previous
//! runtime, if any) in force. A full disk (ENOSPC, EDQUOT) at any step is an
//! [`ErrorKind::DiskFull`] error that never falls back to another installer, and the attempt's
//! partial venv is removed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::assets::Assets;
use crate::error::{ErrorKind, RuntimeError};
use crate::features::{normalize, Feature};
use crate::fsutil::{file_url, now_rfc3339, now_stamp, remove_tree, sha256_file, write_atomic};
use crate::hints::hints_for;
use crate::layout::{non_empty_env, venv_python, Layout};
use crate::lock::{lock_timeout_from_env, lock_with_timeout};
use crate::log::InstallLog;
use crate::pep440::Specifiers;
use crate::process::{display_command, installer_env, run_bounded, Captured, Limits};
use crate::progress::{Event, InstallerKind, Reporter};
use crate::python::{self, Search};
use crate::receipt::{
    read_receipt, InstallerRecord, InterpreterRecord, Receipt, RECEIPT_SCHEMA_VERSION,
};
use crate::status::{status, StatusKind};
use crate::uv::{self, Uv};
use crate::venv_check::{import_check, precompile_embeddings};

/// Time allowed to create a venv.
const VENV_TIMEOUT: Duration = Duration::from_secs(300);
/// Time allowed to install the packages (local-embeddings pulls large wheels).
const PACKAGES_TIMEOUT: Duration = Duration::from_secs(1800);
/// The step shown while the embedding model's modules are compiled.
pub const PRECOMPILE_STEP: &str = "Precompiling the embedding model's modules";

/// uv overrides applied when installing `local-embeddings`: `triton` is replaced by a
/// requirement whose marker is never true, so uv drops it.
///
/// Why: PyPI's Linux x86-64 torch wheels depend on triton (about 1 GB installed of the ~5.7 GB
/// venv), the GPU kernel compiler used by `torch.compile` and CUDA kernels. CPU inference with
/// sentence-transformers never imports it (torch imports it lazily, and transformers only
/// probes whether it is installed). The `python_version < "0"` marker trick is understood by
/// every uv ktx accepts (from [`crate::uv::MIN_UV_VERSION`], 0.5.0); uv's newer `--excludes`
/// is not. The flag is spelled `--override`: uv 0.5.0 knows only that spelling (newer uv
/// accept it as an alias of `--overrides`).
pub const LOCAL_EMBEDDINGS_UV_OVERRIDES: &str = "triton ; python_version < \"0\"\n";

/// What to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Requested features (`core` is always added).
    pub features: Vec<Feature>,
    /// Rebuild even when the runtime is ready (keeps the features already installed).
    pub force: bool,
    /// Install offline from this wheelhouse (`--offline --no-index --find-links DIR`).
    pub find_links: Option<PathBuf>,
    /// How long to wait for another process's install lock.
    pub lock_timeout: Duration,
}

impl InstallOptions {
    /// Options for `features`, with `KTX_FIND_LINKS` and `KTX_LOCK_TIMEOUT` from the environment.
    pub fn new(features: &[Feature]) -> Self {
        InstallOptions {
            features: features.to_vec(),
            force: false,
            find_links: non_empty_env("KTX_FIND_LINKS").map(PathBuf::from),
            lock_timeout: lock_timeout_from_env(),
        }
    }
}

/// The result of [`install`].
#[derive(Debug, Clone)]
pub struct InstallOutcome {
    /// False when the runtime was already ready (fast path, or another process installed it
    /// while we waited).
    pub performed: bool,
    /// The receipt in force.
    pub receipt: Receipt,
    /// The log of this attempt, when a build ran.
    pub log_path: Option<PathBuf>,
    /// The installer used, when a build ran.
    pub installer: Option<InstallerKind>,
}

fn ready_receipt(layout: &Layout, assets: &Assets, wanted: &[Feature]) -> Option<Receipt> {
    let st = status(
        layout,
        Some(&assets.manifest.wheel.sha256),
        Some(&assets.dir),
        wanted,
    );
    (st.kind == StatusKind::Ready)
        .then_some(st.manifest)
        .flatten()
}

/// Ensures the runtime for `layout` has `opts.features` (see the module docs for the steps).
pub fn install(
    layout: &Layout,
    assets: &Assets,
    opts: &InstallOptions,
    reporter: &dyn Reporter,
) -> Result<InstallOutcome, RuntimeError> {
    assets.verify_wheel()?;
    // Before the receipt is read (it names the python ktx runs): a root another user can
    // write, or a symlink planted under it, is refused.
    crate::trust::check_layout(layout).map_err(|u| crate::trust::error(layout, u))?;
    let wanted = normalize(&opts.features);
    let fast = |receipt| InstallOutcome {
        performed: false,
        receipt,
        log_path: None,
        installer: None,
    };
    if !opts.force {
        if let Some(r) = ready_receipt(layout, assets, &wanted) {
            return Ok(fast(r));
        }
    }
    // Installer children run in the version dir: a relative wheelhouse must be made absolute.
    let find_links = opts.find_links.as_deref().map(crate::fsutil::absolute);
    if let Some(dir) = &find_links {
        if !dir.is_dir() {
            return Err(RuntimeError::new(
                ErrorKind::Install,
                format!("the --find-links directory {} does not exist", dir.display()),
            )
            .with_hint("Pass a directory of wheels (e.g. made with `python3 -m pip download -d DIR <bundled wheel>`)."));
        }
    }
    let vdir = crate::trust::ensure_version_dir(layout)?;
    let _guard = lock_with_timeout(&layout.install_lock_path(), opts.lock_timeout, |pid| {
        reporter.report(Event::Waiting { pid })
    })?;
    // Re-check under the lock: another process may have finished the install while we waited.
    if !opts.force {
        if let Some(r) = ready_receipt(layout, assets, &wanted) {
            return Ok(fast(r));
        }
    }
    let current = read_receipt(&layout.receipt_path()).ok().flatten();
    // The new venv replaces the current one: it keeps the features already installed (adding
    // `duckdb` must not drop a 4.7 GB local-embeddings install), forced or not.
    let features = with_installed_features(wanted, current.as_ref(), layout.version());
    let log = InstallLog::create(&crate::trust::ensure_dir(layout, &layout.logs_dir())?)?;
    remove_unnamed_venvs(layout, current.as_ref().map(|r| r.venv_dir.as_path()), &log);
    uv::clean_interrupted_bootstraps(layout, &log);
    log.line(&format!(
        "ktx {} installing features [{}] into {}",
        layout.version(),
        crate::features::display_list(&features),
        vdir.display()
    ));
    log.line(&format!(
        "asset dir {}: {} sha256 {}",
        assets.dir.display(),
        assets.manifest.wheel.file,
        assets.manifest.wheel.sha256
    ));
    if let Some(dir) = &find_links {
        log.line(&format!("offline: --find-links {}", dir.display()));
    }
    // Named here so a failure on a full disk can remove exactly this attempt's venv.
    let venv = layout
        .venvs_dir()
        .join(format!("{}-{}", now_stamp(), std::process::id()));
    match build(
        layout,
        assets,
        &features,
        find_links.as_deref(),
        &venv,
        &log,
        reporter,
    ) {
        Ok((receipt, installer)) => {
            log.line("receipt written; install complete");
            collect_garbage(layout, &receipt, &assets.manifest.wheel.sha256, &log);
            reporter.report(Event::Finished { dir: &vdir });
            Ok(InstallOutcome {
                performed: true,
                receipt,
                log_path: Some(log.path().to_path_buf()),
                installer: Some(installer),
            })
        }
        Err(mut e) => {
            if e.kind == ErrorKind::DiskFull {
                // A partial venv on a full disk only keeps the disk full (and would read as an
                // interrupted install): remove it, and say how much space that left.
                e = remove_partial_venv(layout, &venv, e, &log);
            }
            log.line(&format!("FAILED: {}", e.message));
            if e.log.is_none() {
                e = e.with_log(log.path());
            }
            Err(e)
        }
    }
}

/// `wanted` plus the features `current` (this ktx version's receipt) lists, normalized.
fn with_installed_features(
    wanted: Vec<Feature>,
    current: Option<&Receipt>,
    version: &str,
) -> Vec<Feature> {
    let mut features = wanted;
    if let Some(r) = current.filter(|r| r.ktx_version == version) {
        features.extend(r.features.iter().filter_map(|f| Feature::parse(f)));
    }
    normalize(&features)
}

/// Removes the venv of a failed attempt (and `venvs/` when that leaves it empty) and adds to
/// `e` what was removed and the free space now.
fn remove_partial_venv(
    layout: &Layout,
    venv: &Path,
    mut e: RuntimeError,
    log: &InstallLog,
) -> RuntimeError {
    if fs::symlink_metadata(venv).is_err() {
        return e;
    }
    match remove_tree(venv) {
        Ok(()) => {
            // Only succeeds when empty: a `venvs/` left by this attempt alone is gone too.
            let _ = fs::remove_dir(layout.venvs_dir());
            log.line(&format!("removed the partial venv {}", venv.display()));
            e.message.push_str(&format!(
                "
The partial venv {} was removed; {} now.",
                venv.display(),
                crate::disk::describe_free(&layout.version_dir())
            ));
        }
        Err(err) => {
            log.line(&format!(
                "cannot remove the partial venv {}: {err}",
                venv.display()
            ));
            e.message.push_str(&format!(
                "
The partial venv {} could not be removed ({err}): remove it by hand.",
                venv.display()
            ));
        }
    }
    e
}

/// Removes every `venvs/*` entry except `keep` (interrupted builds, replaced venvs; we hold
/// the lock). Not while this version's daemon runs: it may be serving from a replaced venv,
/// and deleting files under a live interpreter breaks its next lazy import. A later install
/// collects them.
fn remove_unnamed_venvs(layout: &Layout, keep: Option<&Path>, log: &InstallLog) {
    if let Some(pid) = crate::prune::live_daemon(&layout.version_dir()) {
        log.line(&format!(
            "gc: keeping old venvs while the daemon (pid {pid}) runs; a later install removes them"
        ));
        return;
    }
    // Never list (and so never delete) through a symlinked or foreign venvs/.
    if let Err(u) = crate::trust::check(layout, &layout.venvs_dir()) {
        log.line(&format!("gc: not collecting old venvs: {u}"));
        return;
    }
    let Ok(entries) = fs::read_dir(layout.venvs_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if Some(p.as_path()) != keep {
            // A symlink among the venvs is unlinked, its target left alone.
            if let Err(err) = remove_tree(&p) {
                log.line(&format!("gc: cannot remove {}: {err}", p.display()));
            }
        }
    }
}

fn collect_garbage(layout: &Layout, receipt: &Receipt, sha: &str, log: &InstallLog) {
    remove_unnamed_venvs(layout, Some(&receipt.venv_dir), log);
    if let Err(u) = crate::trust::check(layout, &layout.wheels_dir()) {
        log.line(&format!("gc: not collecting old wheels: {u}"));
        return;
    }
    if let Ok(entries) = fs::read_dir(layout.wheels_dir()) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy() != sha {
                if let Err(err) = remove_tree(&e.path()) {
                    log.line(&format!("gc: cannot remove {}: {err}", e.path().display()));
                }
            }
        }
    }
}

struct Ctx<'a> {
    layout: &'a Layout,
    wheel: PathBuf,
    log: &'a InstallLog,
    reporter: &'a dyn Reporter,
    offline: bool,
}

impl Ctx<'_> {
    /// Runs one installer command (writing into `target`) with the cleaned environment, logs
    /// it, maps failure to an error with the tail of its output and hints; a full disk to a
    /// [`ErrorKind::DiskFull`] error naming `target` and its free space.
    fn run(
        &self,
        step: &str,
        target: &Path,
        cmd: &mut Command,
        allow_python_downloads: bool,
        timeout: Duration,
    ) -> Result<Captured, RuntimeError> {
        self.reporter.report(Event::Step(step));
        cmd.current_dir(self.layout.version_dir());
        let env = installer_env(cmd, allow_python_downloads);
        let out = run_bounded(cmd, None, &Limits::new(timeout)).map_err(|e| {
            self.log.spawn_failed(cmd, &e);
            if crate::disk::is_disk_full(&e) {
                return crate::disk::error(&format!("{step}: starting"), target, &e.to_string());
            }
            RuntimeError::new(
                ErrorKind::Install,
                format!(
                    "{step}: cannot run {}: {e}",
                    cmd.get_program().to_string_lossy()
                ),
            )
        })?;
        self.log.command(cmd, &env, &out);
        if out.success() {
            return Ok(out);
        }
        let text = format!("{}\n{}", out.stdout_text(), out.stderr_text());
        if crate::disk::mentions_disk_full(&text) {
            // Not a reason to try anything else: every installer would fail the same way.
            return Err(crate::disk::error(
                &format!("{step} in"),
                target,
                &format!(
                    "{} ({}): {}",
                    Path::new(cmd.get_program())
                        .file_name()
                        .unwrap_or(cmd.get_program())
                        .to_string_lossy(),
                    out.describe_exit(),
                    crate::disk::disk_full_line(&text)
                ),
            ));
        }
        let tail = out.tail(12);
        let mut err = RuntimeError::new(
            ErrorKind::Install,
            format!(
                "{step} failed: `{}` {}{}",
                display_command(cmd),
                out.describe_exit(),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("\n{}", indent(&tail))
                }
            ),
        );
        for h in hints_for(&text, self.offline, &self.wheel) {
            err = err.with_hint(h);
        }
        Err(err)
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `<wheels>/<sha256>/<file>`: a content-addressed copy (uv caches local wheels by path + mtime,
/// and npm gives every packed file the same mtime).
fn wheel_copy(layout: &Layout, assets: &Assets) -> Result<PathBuf, RuntimeError> {
    let w = &assets.manifest.wheel;
    let dir = crate::trust::ensure_dir(layout, &layout.wheels_dir().join(&w.sha256))?;
    let dest = dir.join(&w.file);
    if sha256_file(&dest)
        .map(|(sha, _)| sha == w.sha256)
        .unwrap_or(false)
    {
        return Ok(dest);
    }
    let bytes = fs::read(assets.wheel_path())
        .map_err(|e| RuntimeError::io("read", &assets.wheel_path(), &e))?;
    // Hash what is copied, not just what was verified earlier: the file may have changed since.
    let sha = {
        use sha2::{Digest, Sha256};
        crate::fsutil::hex(&Sha256::digest(&bytes))
    };
    if sha != w.sha256 {
        return Err(RuntimeError::new(
            ErrorKind::Asset,
            format!(
                "the bundled wheel {} changed during the install (sha256 {sha}, manifest says {}); refusing to install it",
                assets.wheel_path().display(),
                w.sha256
            ),
        ));
    }
    write_atomic(&dest, &bytes)?;
    Ok(dest)
}

/// The requirement to install: the wheel path, or `name[extras] @ file:///...` with extras.
fn requirement(wheel: &Path, dist: &str, features: &[Feature]) -> String {
    let extras: Vec<&str> = features.iter().filter_map(|f| f.extra()).collect();
    if extras.is_empty() {
        wheel.display().to_string()
    } else {
        format!("{dist}[{}] @ {}", extras.join(","), file_url(wheel))
    }
}

fn build(
    layout: &Layout,
    assets: &Assets,
    features: &[Feature],
    find_links: Option<&Path>,
    venv: &Path,
    log: &InstallLog,
    reporter: &dyn Reporter,
) -> Result<(Receipt, InstallerKind), RuntimeError> {
    let ctx = Ctx {
        layout,
        wheel: assets.wheel_path(),
        log,
        reporter,
        offline: find_links.is_some(),
    };
    let spec = Specifiers::parse(&assets.manifest.requires_python).map_err(|e| {
        RuntimeError::new(
            ErrorKind::Asset,
            format!("bundled manifest requiresPython: {e}"),
        )
    })?;
    // Probing the interpreter and uv each spawn a process (slow behind shims such as pyenv's):
    // do both at once.
    reporter.report(Event::Step("Looking for Python and uv"));
    let (search, found) = std::thread::scope(|s| {
        let uv_probe = s.spawn(|| {
            let mut notes = Vec::new();
            let found = uv::find_uv(layout, &mut notes);
            (found, notes)
        });
        let search = python::find_interpreter(&spec);
        let uv_result = uv_probe.join().unwrap_or_else(|_| {
            let e = RuntimeError::new(ErrorKind::Uv, "uv discovery panicked");
            (Err(e), Vec::new())
        });
        (search, uv_result)
    });
    let (found, notes) = found;
    for n in &notes {
        log.line(&format!("uv: {n}"));
    }
    let found = found?;
    let interp = match search? {
        Search::Found(i) => {
            log.line(&format!(
                "python: {} ({}) from {}",
                i.path.display(),
                i.version,
                i.source
            ));
            Some(i)
        }
        Search::NotFound(tried) => {
            for (c, why) in &tried {
                log.line(&format!("python: skipped {c}: {why}"));
            }
            log.line(&format!("python: none satisfies {}", spec.as_str()));
            if found.is_none() {
                return Err(python::no_python_error(&spec, &tried));
            }
            None
        }
    };
    let uv = match (found, &interp) {
        (Some(u), Some(py)) => {
            // A pyenv-style shim on PATH costs 50-150 ms per call: prefer the real binary.
            let mut notes = Vec::new();
            let u = uv::prefer_real_uv(u, &py.path, &mut notes);
            for n in &notes {
                log.line(&format!("uv: {n}"));
            }
            Some(u)
        }
        (Some(u), None) => Some(u),
        (None, Some(py)) => {
            let pins_version = uv::pins().map(|p| p.version).unwrap_or_default();
            reporter.report(Event::Step(&format!(
                "Bootstrapping uv {pins_version} with pip"
            )));
            match uv::bootstrap(layout, py, find_links, log) {
                Ok(u) => Some(u),
                // A full disk fails the pip fallback too (and leaves more behind).
                Err(e) if e.kind == ErrorKind::DiskFull => return Err(e),
                Err(e) => {
                    let why = e.message;
                    log.line(&format!("uv: bootstrap failed: {why}"));
                    let notice = format!(
                        "uv is not available ({why}).\nFalling back to `python -m venv` + pip, which is slower. For faster installs, install uv: https://docs.astral.sh/uv/getting-started/installation/ (or `pip install uv`)."
                    );
                    reporter.report(Event::Notice(&notice));
                    None
                }
            }
        }
        (None, None) => None,
    };
    if let Some(u) = &uv {
        log.line(&format!(
            "uv: {} (version {}, {})",
            u.path.display(),
            u.version,
            u.source.describe()
        ));
    }
    let installer = if uv.is_some() {
        InstallerKind::Uv
    } else {
        InstallerKind::Pip
    };
    if interp.is_none() {
        let what = if find_links.is_some() {
            "uv will look for a Python it installed earlier (offline: no download)"
        } else {
            "uv will download one"
        };
        reporter.report(Event::Notice(&format!(
            "No Python {} found on this machine; {what}.",
            spec.as_str()
        )));
    }
    reporter.report(Event::Started {
        features,
        installer,
    });
    let wheel = wheel_copy(layout, assets)?;
    crate::trust::ensure_dir(layout, &layout.venvs_dir())?;
    let _ = remove_tree(venv);
    let python = venv_python(venv);
    let req = requirement(&wheel, &assets.manifest.distribution_name, features);
    match (&uv, &interp) {
        (Some(uv), interp) => {
            let mut cmd = Command::new(&uv.path);
            cmd.args(["venv", "--no-project", "--python"]);
            match interp {
                Some(i) => cmd.arg(&i.path),
                None => cmd.arg(spec.as_str()),
            };
            cmd.arg(venv);
            // Offline, uv may still use a Python it installed earlier, but never downloads one.
            let download_python = interp.is_none() && find_links.is_none();
            ctx.run(
                "Creating virtual environment",
                venv,
                &mut cmd,
                download_python,
                VENV_TIMEOUT,
            )
            .map_err(|e| match interp {
                Some(_) => e,
                // The failure is about getting a Python, not the package index: say that first.
                None => python_first(e, &spec, find_links.is_some()),
            })?;
            let mut cmd = Command::new(&uv.path);
            cmd.args(["pip", "install", "--python"])
                .arg(&python)
                .arg(&req);
            if let Some(dir) = find_links {
                cmd.args(["--offline", "--no-index", "--find-links"])
                    .arg(dir);
            }
            if features.contains(&Feature::LocalEmbeddings) {
                // Drop triton (~1 GB, unused on the CPU): see LOCAL_EMBEDDINGS_UV_OVERRIDES.
                let overrides = write_uv_overrides(log)?;
                cmd.arg("--override").arg(&overrides);
            }
            ctx.run(
                "Installing packages",
                venv,
                &mut cmd,
                false,
                PACKAGES_TIMEOUT,
            )?;
        }
        (None, Some(interp)) => {
            // With pip >= 22.3 in the base interpreter, `pip --python VENV_PYTHON install`
            // installs into a venv created without pip: this skips ensurepip, which is most
            // of the cost of `python -m venv` (about 2 s instead of 7 s in all, measured).
            let base_pip = base_pip_version(&interp.path, &layout.version_dir())
                .filter(|v| pip_supports_python_option(v));
            match &base_pip {
                Some(v) => log.line(&format!(
                    "pip: the base interpreter's pip {v} installs into a venv made --without-pip"
                )),
                None => log.line(
                    "pip: the base interpreter has no pip >= 22.3: `python -m venv` with pip",
                ),
            }
            let mut cmd = Command::new(&interp.path);
            cmd.args(["-m", "venv"]);
            if base_pip.is_some() {
                cmd.arg("--without-pip");
            }
            cmd.arg(venv);
            ctx.run(
                "Creating virtual environment (python -m venv)",
                venv,
                &mut cmd,
                false,
                VENV_TIMEOUT,
            )?;
            // pip has no way to drop a dependency (its constraints can only narrow versions, and
            // `--no-deps` would drop everything): with the pip fallback a local-embeddings
            // install keeps triton (~1 GB more than with uv).
            let mut cmd = match &base_pip {
                Some(_) => {
                    let mut cmd = Command::new(&interp.path);
                    cmd.args(["-m", "pip", "--python"]).arg(&python);
                    cmd
                }
                None => {
                    let mut cmd = Command::new(&python);
                    cmd.args(["-m", "pip"]);
                    cmd
                }
            };
            cmd.args(["install", "--disable-pip-version-check", "--no-input"])
                .arg(&req);
            if let Some(dir) = find_links {
                cmd.args(["--no-index", "--find-links"]).arg(dir);
            }
            ctx.run(
                "Installing packages with pip",
                venv,
                &mut cmd,
                false,
                PACKAGES_TIMEOUT,
            )?;
        }
        (None, None) => unreachable_no_python(&spec)?,
    }
    reporter.report(Event::Step("Checking the runtime imports"));
    let info = import_check(layout, assets, &python, features, log)?;
    if features.contains(&Feature::LocalEmbeddings) {
        // The first import of torch & co. writes their .pyc files (31 s on a 2-core box): pay it
        // now, under the install's progress, instead of in the user's first `ktx embed`.
        reporter.report(Event::Step(PRECOMPILE_STEP));
        precompile_embeddings(layout, &python, log)?;
    }
    let py_version = info["python"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let interpreter = match &interp {
        Some(i) => InterpreterRecord {
            path: i.path.clone(),
            version: i.version.clone(),
        },
        None => InterpreterRecord {
            path: base_executable(&python).unwrap_or_default(),
            version: py_version,
        },
    };
    // What `status` stats to tell a damaged venv from a ready one (no Python start).
    let (required_files, why) = crate::venv_files::required_files(
        venv,
        &assets.manifest.distribution_name,
        &interpreter.version,
    );
    if let Some(why) = why {
        log.line(&format!(
            "required files: {why}; recording the layout's files"
        ));
    }
    let receipt = Receipt {
        schema_version: RECEIPT_SCHEMA_VERSION,
        ktx_version: layout.version().to_string(),
        wheel_sha256: assets.manifest.wheel.sha256.clone(),
        features: features.iter().map(|f| f.as_str().to_string()).collect(),
        venv_dir: venv.to_path_buf(),
        python_path: python.clone(),
        interpreter,
        installer: match &uv {
            Some(Uv { version, .. }) => InstallerRecord {
                name: "uv".into(),
                version: Some(version.clone()),
            },
            None => InstallerRecord {
                name: "pip".into(),
                version: None,
            },
        },
        installed_at: now_rfc3339(),
        required_files,
    };
    let text = serde_json::to_string_pretty(&receipt)
        .map_err(|e| RuntimeError::new(ErrorKind::Io, format!("cannot encode the receipt: {e}")))?;
    write_atomic(&layout.receipt_path(), format!("{text}\n").as_bytes())?;
    Ok((receipt, installer))
}

/// Writes [`LOCAL_EMBEDDINGS_UV_OVERRIDES`] next to this attempt's log (kept with it, so the
/// log's `--override <file>` can be read back) and records it in the log.
fn write_uv_overrides(log: &InstallLog) -> Result<PathBuf, RuntimeError> {
    let path = log.path().with_extension("overrides.txt");
    // create_new: a file (or symlink) already at that name is never written through.
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(LOCAL_EMBEDDINGS_UV_OVERRIDES.as_bytes())
        })
        .map_err(|e| RuntimeError::io("write uv overrides file", &path, &e))?;
    log.line(&format!(
        "uv overrides {} (drops triton: ~1 GB, not needed for CPU inference): {}",
        path.display(),
        LOCAL_EMBEDDINGS_UV_OVERRIDES.trim_end()
    ));
    Ok(path)
}

/// Puts the "install a Python" hint first on a venv failure where uv had to find or download
/// the interpreter itself.
fn python_first(mut e: RuntimeError, spec: &Specifiers, offline: bool) -> RuntimeError {
    let how = if offline {
        "offline, uv cannot download one"
    } else {
        "uv could not download one"
    };
    // uv fetches Pythons from GitHub, not the package index: the wheelhouse hint would mislead.
    e.hints
        .retain(|h| !h.starts_with("The package index could not be reached"));
    e.hints.insert(
        0,
        format!(
            "No Python {} was found on this machine and {how}. Install Python {} (https://www.python.org/downloads/, or e.g. `apt install python3 python3-venv`) or point KTX_PYTHON at one, then retry.",
            spec.as_str(),
            spec.as_str()
        ),
    );
    e
}

fn unreachable_no_python(spec: &Specifiers) -> Result<(), RuntimeError> {
    Err(python::no_python_error(spec, &[]))
}

/// The version of the pip that `python -m pip` would run from `cwd` with the installer
/// environment (`None`: no pip, or it is broken). Imports `pip` instead of running
/// `pip --version`: 0.05 s instead of 0.3 s.
fn base_pip_version(python: &Path, cwd: &Path) -> Option<String> {
    let mut cmd = Command::new(python);
    cmd.args(["-c", "import pip; print(pip.__version__)"])
        .current_dir(cwd);
    installer_env(&mut cmd, false);
    let out = run_bounded(&mut cmd, None, &Limits::new(Duration::from_secs(30))).ok()?;
    out.success()
        .then(|| out.stdout_text().trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether pip `version` has the `--python` option (22.3 and later).
fn pip_supports_python_option(version: &str) -> bool {
    let v = crate::pep440::parse_release(version).unwrap_or_default();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    (get(0), get(1)) >= (22, 3)
}

fn base_executable(python: &Path) -> Option<PathBuf> {
    let mut cmd = Command::new(python);
    cmd.args([
        "-I",
        "-c",
        "import sys; print(getattr(sys, '_base_executable', sys.executable))",
    ]);
    let out = run_bounded(&mut cmd, None, &Limits::new(Duration::from_secs(30))).ok()?;
    out.success()
        .then(|| PathBuf::from(out.stdout_text().trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_forms() {
        let w = Path::new("/r/wheels/ab/k-0.1-py3-none-any.whl");
        assert_eq!(
            requirement(w, "kaelio-ktx", &[Feature::Core]),
            "/r/wheels/ab/k-0.1-py3-none-any.whl"
        );
        assert_eq!(
            requirement(w, "kaelio-ktx", &[Feature::Core, Feature::LocalEmbeddings]),
            "kaelio-ktx[local-embeddings] @ file:///r/wheels/ab/k-0.1-py3-none-any.whl"
        );
    }

    #[test]
    fn pip_python_option_needs_22_3() {
        for v in ["22.3", "22.3.1", "23.2.1", "24.0", "25.1.dev0"] {
            assert!(pip_supports_python_option(v), "{v}");
        }
        for v in ["22.2.2", "21.3", "9.0.1", "", "junk"] {
            assert!(!pip_supports_python_option(v), "{v}");
        }
    }

    #[test]
    fn uv_overrides_drop_triton_next_to_the_attempts_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = InstallLog::create(dir.path()).unwrap();
        let path = write_uv_overrides(&log).unwrap();
        assert_eq!(path.parent(), log.path().parent());
        assert!(
            path.to_string_lossy().ends_with(".overrides.txt"),
            "{path:?}"
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "triton ; python_version < \"0\"\n"
        );
        let text = fs::read_to_string(log.path()).unwrap();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("drops triton"),
            "{text}"
        );
    }
}
