//! Which signed bundle a command uses, and the locked install that puts one under the runtime
//! root (`<root>/<semver>/bundles/<name>/<version>/`).
//!
//! [`resolve`] picks the newest installed version of a bundle (SemVer order); when none is
//! installed it installs the newest one that ships with ktx (`<package>/bundles/`, or
//! `KTX_BUNDLE_DIR`), with the signature required. Every install, from the shipped dir or
//! from `ktx bundle install`, goes through [`install_locked`]: the runtime root is checked,
//! the dirs are created 0700, and `bundles.lock` is held, so two ktx processes never race on
//! the same destination (the second finds the first one's copy and keeps it).
//!
//! The verification itself is `ktx_bundle`'s. An installed copy was hashed while it was
//! written, so a command that uses it checks the signature and the sizes only
//! ([`ktx_bundle::verify::Bundle::verify_signed_sizes`]); `ktx bundle verify` and
//! `ktx runtime doctor` hash everything again.

use std::path::{Path, PathBuf};

use ktx_bundle::{BundleError, BundleSource, Installed, Keyring, Verified};
use ktx_runtime::{ErrorKind, Layout, RuntimeError};

use crate::RunError;

/// The bundle of the sandboxed CPython (`ktx python`).
pub const LANG_PYTHON: &str = "lang-python";
/// The asset of [`LANG_PYTHON`] that the sandbox runs.
pub const PYTHON_WASM: &str = "python.wasm";

/// A verified bundle and one of its assets, ready to use.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The verified (installed) bundle.
    pub verified: Verified,
    /// The asset's absolute path.
    pub asset: PathBuf,
    /// The asset's sha256 as the signed manifest states it.
    pub sha256: String,
    /// The asset's size in bytes.
    pub size: u64,
    /// True when this call installed the bundle from the shipped dir.
    pub installed_now: bool,
}

/// A bundle error as a [`RunError`]: its message, then its fix.
pub fn bundle_error(e: BundleError) -> RunError {
    RunError::Runtime(RuntimeError::new(ErrorKind::Io, e.message).with_hint(e.fix))
}

/// `<root>/<semver>/bundles`, after checking the runtime root (and the dirs that exist down
/// to it) are trusted.
pub fn installed_dir(layout: &Layout) -> Result<PathBuf, RunError> {
    let dir = layout.bundles_dir();
    ktx_runtime::trust::check(layout, &dir)
        .map_err(|u| RunError::Runtime(ktx_runtime::trust::error(layout, u)))?;
    Ok(dir)
}

/// Installs the bundle at `location` (read from `source`) under the runtime root, holding
/// `bundles.lock` (waiting up to `KTX_LOCK_TIMEOUT` for another ktx).
pub fn install_locked(
    layout: &Layout,
    source: &dyn BundleSource,
    location: &Path,
    name: &str,
) -> Result<Installed, RunError> {
    let bundles = installed_dir(layout)?;
    // The version dir (with its marker) and bundles/<name>/, each 0700 and verified.
    ktx_runtime::trust::ensure_version_dir(layout)?;
    ktx_runtime::trust::ensure_dir(layout, &bundles.join(name))?;
    let _lock = ktx_runtime::lock::lock_with_timeout(
        &layout.bundles_lock_path(),
        ktx_runtime::lock::lock_timeout_from_env(),
        |pid| match pid {
            Some(pid) => {
                eprintln!("Waiting for another ktx (pid {pid}) to finish installing a bundle...")
            }
            None => eprintln!("Waiting for another ktx to finish installing a bundle..."),
        },
    )?;
    ktx_bundle::install_from(source, location, &bundles, &Keyring::builtin()).map_err(bundle_error)
}

/// The versions of `name` under `bundles`, newest first (SemVer order; versions that are
/// not SemVer sort last, by name).
fn newest_first(bundles: &Path, name: &str) -> Result<Vec<ktx_bundle::Found>, RunError> {
    let mut found: Vec<_> = ktx_bundle::find_bundles(bundles)
        .map_err(bundle_error)?
        .into_iter()
        .filter(|f| f.name == name)
        .collect();
    found.sort_by(|a, b| {
        let (va, vb) = (
            semver::Version::parse(&a.version).ok(),
            semver::Version::parse(&b.version).ok(),
        );
        vb.cmp(&va).then_with(|| b.version.cmp(&a.version))
    });
    Ok(found)
}

/// Where the bundle a command would use is, without installing anything: the newest
/// installed `name` (`true`), else the newest shipped one (`false`); `None` when there is
/// neither.
pub fn newest(layout: &Layout, name: &str) -> Result<Option<(PathBuf, bool)>, RunError> {
    if let Some(found) = newest_first(&installed_dir(layout)?, name)?
        .into_iter()
        .next()
    {
        return Ok(Some((found.dir, true)));
    }
    Ok(match ktx_bundle::package_bundles_dir() {
        Some(dir) => newest_first(&dir, name)?
            .into_iter()
            .next()
            .map(|f| (f.dir, false)),
        None => None,
    })
}

/// The newest installed `name`, else the newest shipped one installed now (see the module
/// docs), with its asset `asset`. The error names the fix when there is none, or when the
/// installed copy does not verify.
pub fn resolve(layout: &Layout, name: &str, asset: &str) -> Result<Resolved, RunError> {
    let ring = Keyring::builtin();
    let installed = installed_dir(layout)?;
    let (verified, installed_now) = match newest_first(&installed, name)?.into_iter().next() {
        Some(found) => {
            let bundle = ktx_bundle::read_bundle(&found.dir).map_err(|e| broken(&found, e))?;
            bundle.check_location().map_err(|e| broken(&found, e))?;
            let v = bundle
                .verify_signed_sizes(&ring)
                .map_err(|e| broken(&found, e))?;
            (v, false)
        }
        None => {
            let shipped = ktx_bundle::package_bundles_dir();
            let candidates = match &shipped {
                Some(dir) => newest_first(dir, name)?,
                None => Vec::new(),
            };
            let Some(found) = candidates.into_iter().next() else {
                let where_ = shipped
                    .map(|d| format!(" (looked in {})", d.display()))
                    .unwrap_or_default();
                return Err(RunError::Runtime(
                    RuntimeError::new(
                        ErrorKind::Io,
                        format!("no {name} bundle is installed, and none ships with this ktx{where_}"),
                    )
                    .with_hint(format!(
                        "Reinstall ktx (its npm package ships {name}), set KTX_BUNDLE_DIR to a dir holding {name}/<version>/, or run `ktx bundle install {name}@VERSION --registry DIR|URL`."
                    )),
                ));
            };
            let source = ktx_bundle::DirSource(found.dir.clone());
            let done = install_locked(layout, &source, &found.dir, name)?;
            (done.verified, !done.already_installed)
        }
    };
    let entry = verified
        .manifest
        .files
        .iter()
        .find(|f| f.path == asset)
        .cloned()
        .ok_or_else(|| {
            RunError::Runtime(
                RuntimeError::new(
                    ErrorKind::Io,
                    format!(
                        "the bundle {name}@{} in {} has no {asset}",
                        verified.manifest.version,
                        verified.dir.display()
                    ),
                )
                .with_hint(format!(
                    "Install a {name} bundle that has it: `ktx bundle install {name}@VERSION --registry DIR|URL`."
                )),
            )
        })?;
    Ok(Resolved {
        asset: verified.dir.join(&entry.path),
        sha256: entry.sha256,
        size: entry.size,
        verified,
        installed_now,
    })
}

/// An installed bundle that does not verify: the error, and the way out (it is never used).
fn broken(found: &ktx_bundle::Found, e: BundleError) -> RunError {
    RunError::Runtime(
        RuntimeError::new(
            ErrorKind::Io,
            format!(
                "the installed bundle {}@{} does not verify: {}",
                found.name, found.version, e.message
            ),
        )
        .with_hint(format!(
            "Remove {} and run the command again (ktx reinstalls the shipped bundle), or install a good copy with `ktx bundle install {}@{} --registry DIR|URL`.",
            found.dir.display(),
            found.name,
            found.version
        )),
    )
}
