//! ktx's managed Python runtime.
//!
//! The first command that needs Python installs a private runtime for this ktx version from the
//! wheel bundled next to the binary, exactly once even when several ktx processes start
//! together, and never leaves a half-installed runtime that a later command would trust:
//!
//! - [`Layout`]: the runtime root (`KTX_RUNTIME_ROOT` or the platform data dir) and the fixed
//!   paths under it; [`Assets`]: the bundled asset dir (`KTX_ASSET_DIR` or exe-relative),
//!   verified (safe name, size, sha256) before use.
//! - [`install()`]: locked, receipt-last install with uv (`KTX_UV`, PATH, a bootstrapped copy, or
//!   bootstrapped now with pip and hash-checked pins) or the `python -m venv` + pip fallback.
//! - [`status()`](status::status), [`doctor`], [`prune`]: read-only status kinds, checks, cleanup.
//!
//! [`Runtime`] bundles a layout and the asset dir for the common calls. The library never
//! prints: progress goes to a [`Reporter`].
//!
//! Environment: `KTX_RUNTIME_ROOT`, `KTX_ASSET_DIR`, `KTX_PYTHON`, `KTX_UV`, `KTX_FIND_LINKS`
//! (offline wheelhouse), `KTX_LOCK_TIMEOUT` (seconds, default 600).

pub mod abi;
pub mod assets;
pub mod disk;
pub mod doctor;
mod error;
mod features;
pub mod fsutil;
pub mod hints;
pub mod install;
mod installer;
pub mod layout;
pub mod lock;
pub mod log;
pub mod messages;
pub mod ops;
pub mod pep440;
pub mod process;
pub mod progress;
pub mod prune;
pub mod python;
pub mod receipt;
pub mod status;
pub mod trust;
pub mod uv;
mod venv_check;
mod venv_files;

use std::path::{Path, PathBuf};

pub use assets::{AssetManifest, Assets};
pub use error::{ErrorKind, RuntimeError};
pub use features::{
    display_list as feature_list, normalize as normalize_features, DriverPackage, Feature,
};
pub use install::{install, InstallOptions, InstallOutcome};
pub use layout::{venv_python, Layout, KTX_VERSION};
pub use progress::{Event, InstallerKind, NullReporter, Reporter};
pub use receipt::Receipt;
pub use status::{Status, StatusKind};

/// A runtime layout plus the bundled asset dir: the handle the CLI and the runner use.
#[derive(Debug, Clone)]
pub struct Runtime {
    layout: Layout,
    asset_dir: Result<PathBuf, RuntimeError>,
    assets: Result<Assets, RuntimeError>,
}

impl Runtime {
    /// From the environment: `KTX_RUNTIME_ROOT` (else the platform data dir) and `KTX_ASSET_DIR`
    /// (else `<exe dir>/../../python`). Fails only when no root can be determined; asset
    /// problems are reported by the operations that need the assets.
    pub fn from_env() -> Result<Runtime, RuntimeError> {
        Ok(Runtime::new(
            Layout::from_env()?,
            assets::discover_asset_dir(),
        ))
    }

    /// From an explicit layout and asset dir.
    pub fn new(layout: Layout, asset_dir: Result<PathBuf, RuntimeError>) -> Runtime {
        let assets = asset_dir.clone().and_then(|d| Assets::load(&d));
        Runtime {
            layout,
            asset_dir,
            assets,
        }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The asset dir, if it could be determined (it may still be missing or invalid).
    pub fn asset_dir(&self) -> Option<&Path> {
        self.asset_dir.as_ref().ok().map(PathBuf::as_path)
    }

    /// The loaded asset manifest (not yet hash-verified), or why it is unusable.
    pub fn assets(&self) -> Result<&Assets, RuntimeError> {
        self.assets.as_ref().map_err(Clone::clone)
    }

    /// Read-only status for `required` features (`core` is always required).
    pub fn status(&self, required: &[Feature]) -> Status {
        let sha = self
            .assets
            .as_ref()
            .ok()
            .map(|a| a.manifest.wheel.sha256.as_str());
        status::status(
            &self.layout,
            sha,
            self.asset_dir(),
            &normalize_features(required),
        )
    }

    /// Installs (or returns the ready runtime); see [`install()`].
    pub fn install(
        &self,
        opts: &InstallOptions,
        reporter: &dyn Reporter,
    ) -> Result<InstallOutcome, RuntimeError> {
        install::install(&self.layout, self.assets()?, opts, reporter)
    }

    /// Runs the runtime's doctor checks.
    pub fn doctor(&self) -> doctor::DoctorReport {
        doctor::DoctorReport {
            checks: doctor::runtime_checks(self),
        }
    }
}
