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
use crate::installer::{Ctx, Installer, PipInstaller, Target, UvInstaller};
use crate::layout::{non_empty_env, venv_python, Layout};
use crate::lock::{lock_timeout_from_env, lock_with_timeout};
use crate::log::InstallLog;
use crate::pep440::Specifiers;
use crate::process::{run_bounded, Limits};
use crate::progress::{Event, InstallerKind, Reporter};
use crate::python::{self, Interpreter, Search};
use crate::receipt::{
    read_receipt, InstallerRecord, InterpreterRecord, Receipt, RECEIPT_SCHEMA_VERSION,
};
use crate::status::{status, StatusKind};
use crate::uv::{self, Uv};
use crate::venv_check::{import_check, precompile_embeddings};

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
            find_links: non_empty_env(ktx_base::env::FIND_LINKS).map(PathBuf::from),
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
    let find_links = wheelhouse(opts)?;
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
    log_attempt(
        &log,
        layout,
        assets,
        &features,
        &vdir,
        find_links.as_deref(),
    );
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

/// The offline wheelhouse, absolute (installer children run in the version dir); an error
/// when it is not a directory.
fn wheelhouse(opts: &InstallOptions) -> Result<Option<PathBuf>, RuntimeError> {
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
    Ok(find_links)
}

/// The first lines of an attempt's log: what is installed where, from which wheel.
fn log_attempt(
    log: &InstallLog,
    layout: &Layout,
    assets: &Assets,
    features: &[Feature],
    vdir: &Path,
    find_links: Option<&Path>,
) {
    log.line(&format!(
        "ktx {} installing features [{}] into {}",
        layout.version(),
        crate::features::display_list(features),
        vdir.display()
    ));
    log.line(&format!(
        "asset dir {}: {} sha256 {}",
        assets.dir.display(),
        assets.manifest.wheel.file,
        assets.manifest.wheel.sha256
    ));
    if let Some(dir) = find_links {
        log.line(&format!("offline: --find-links {}", dir.display()));
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

/// Builds a fresh venv at `venv` and writes the receipt naming it: discovery (Python and
/// uv), the installer chosen from what was found, the venv and its packages, the import check,
/// the receipt (written last).
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
        find_links,
    };
    let spec = Specifiers::parse(&assets.manifest.requires_python).map_err(|e| {
        RuntimeError::new(
            ErrorKind::Asset,
            format!("bundled manifest requiresPython: {e}"),
        )
    })?;
    let found = discover(layout, &spec, find_links, log, reporter)?;
    let mut installer = choose_installer(&found, &spec)?;
    let kind = installer.kind();
    if found.interp.is_none() {
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
        installer: kind,
    });
    let wheel = wheel_copy(layout, assets)?;
    crate::trust::ensure_dir(layout, &layout.venvs_dir())?;
    let _ = remove_tree(venv);
    let python = venv_python(venv);
    let req = requirement(&wheel, &assets.manifest.distribution_name, features);
    let target = Target {
        venv,
        python: &python,
        requirement: &req,
        features,
    };
    installer.create_venv(&ctx, &target)?;
    installer.install_packages(&ctx, &target)?;
    let info = check_imports(layout, assets, &python, features, log, reporter)?;
    let receipt = write_receipt(
        layout,
        assets,
        features,
        venv,
        &python,
        found.interp.as_ref(),
        installer.record(),
        &info,
        log,
    )?;
    Ok((receipt, kind))
}

/// What discovery found: an interpreter satisfying `requiresPython` on this machine, and uv.
/// At least one of them is there (without a Python, uv finds or downloads one).
struct Found {
    interp: Option<Interpreter>,
    uv: Option<Uv>,
}

/// Finds a Python satisfying `spec` and uv (found, or bootstrapped with the Python found;
/// when that fails, the pip fallback is announced). Errors: no Python and no uv, an explicit
/// `KTX_PYTHON`/`KTX_UV` that cannot be used, a full disk during the bootstrap.
fn discover(
    layout: &Layout,
    spec: &Specifiers,
    find_links: Option<&Path>,
    log: &InstallLog,
    reporter: &dyn Reporter,
) -> Result<Found, RuntimeError> {
    // Probing the interpreter and uv each spawn a process (slow behind shims such as pyenv's):
    // do both at once.
    reporter.report(Event::Step("Looking for Python and uv"));
    let (search, found) = std::thread::scope(|s| {
        let uv_probe = s.spawn(|| {
            let mut notes = Vec::new();
            let found = uv::find_uv(layout, &mut notes);
            (found, notes)
        });
        let search = python::find_interpreter(spec);
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
                return Err(python::no_python_error(spec, &tried));
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
        (None, Some(py)) => bootstrap_uv(layout, py, find_links, log, reporter)?,
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
    Ok(Found { interp, uv })
}

/// Bootstraps uv with `py`'s pip. `Ok(None)` (after a notice) when that fails: the install
/// falls back to pip. A full disk is an error: it fails the pip fallback too.
fn bootstrap_uv(
    layout: &Layout,
    py: &Interpreter,
    find_links: Option<&Path>,
    log: &InstallLog,
    reporter: &dyn Reporter,
) -> Result<Option<Uv>, RuntimeError> {
    let pins_version = uv::pins().map(|p| p.version).unwrap_or_default();
    reporter.report(Event::Step(&format!(
        "Bootstrapping uv {pins_version} with pip"
    )));
    match uv::bootstrap(layout, py, find_links, log) {
        Ok(u) => Ok(Some(u)),
        // A full disk fails the pip fallback too (and leaves more behind).
        Err(e) if e.kind == ErrorKind::DiskFull => Err(e),
        Err(e) => {
            let why = e.message;
            log.line(&format!("uv: bootstrap failed: {why}"));
            let notice = format!(
                "uv is not available ({why}).\nFalling back to `python -m venv` + pip, which is slower. For faster installs, install uv: https://docs.astral.sh/uv/getting-started/installation/ (or `pip install uv`)."
            );
            reporter.report(Event::Notice(&notice));
            Ok(None)
        }
    }
}

/// uv when there is one; else pip with the Python found.
fn choose_installer<'a>(
    found: &'a Found,
    spec: &'a Specifiers,
) -> Result<Box<dyn Installer + 'a>, RuntimeError> {
    match (&found.uv, &found.interp) {
        (Some(uv), interp) => Ok(Box::new(UvInstaller {
            uv,
            interp: interp.as_ref(),
            spec,
        })),
        (None, Some(interp)) => Ok(Box::new(PipInstaller::new(interp))),
        // `discover` never returns neither; said rather than assumed.
        (None, None) => Err(python::no_python_error(spec, &[])),
    }
}

/// Checks that the new venv imports the runtime (`runtime.info`, returned) and, with
/// local-embeddings, precompiles the embedding model's modules.
fn check_imports(
    layout: &Layout,
    assets: &Assets,
    python: &Path,
    features: &[Feature],
    log: &InstallLog,
    reporter: &dyn Reporter,
) -> Result<serde_json::Value, RuntimeError> {
    reporter.report(Event::Step("Checking the runtime imports"));
    let info = import_check(layout, assets, python, features, log)?;
    if features.contains(&Feature::LocalEmbeddings) {
        // The first import of torch & co. writes their .pyc files (31 s on a 2-core box): pay it
        // now, under the install's progress, instead of in the user's first `ktx embed`.
        reporter.report(Event::Step(PRECOMPILE_STEP));
        precompile_embeddings(layout, python, log)?;
    }
    Ok(info)
}

/// Writes the receipt for the venv at `venv` (last: until it is renamed into place, the
/// previous receipt, and so the previous runtime, stays in force) and returns it.
#[allow(clippy::too_many_arguments)] // one value per receipt field source; a struct would only rename them
fn write_receipt(
    layout: &Layout,
    assets: &Assets,
    features: &[Feature],
    venv: &Path,
    python: &Path,
    interp: Option<&Interpreter>,
    installer: InstallerRecord,
    info: &serde_json::Value,
    log: &InstallLog,
) -> Result<Receipt, RuntimeError> {
    let interpreter = match interp {
        Some(i) => InterpreterRecord {
            path: i.path.clone(),
            version: i.version.clone(),
        },
        None => InterpreterRecord {
            path: base_executable(python).unwrap_or_default(),
            version: info["python"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
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
        python_path: python.to_path_buf(),
        interpreter,
        installer,
        installed_at: now_rfc3339(),
        required_files,
    };
    let text = serde_json::to_string_pretty(&receipt)
        .map_err(|e| RuntimeError::new(ErrorKind::Io, format!("cannot encode the receipt: {e}")))?;
    write_atomic(&layout.receipt_path(), format!("{text}\n").as_bytes())?;
    Ok(receipt)
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
}
