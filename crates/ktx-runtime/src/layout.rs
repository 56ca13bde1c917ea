//! The runtime root and the fixed layout under it (see docs/ARCHITECTURE.md).
//!
//! ```text
//! <root>/<ktx-semver>/            one dir per ktx version (mode 0700)
//!   .ktx-runtime                  marker: written when ktx creates the dir; prune only ever
//!                                 removes a version dir with this marker, a receipt or venvs/
//!   manifest.json                 the receipt, written last
//!   venvs/<id>/                   venvs, each built fresh; the receipt names the live one
//!   install.lock                  cross-process install lock
//!   logs/install-<stamp>-<pid>.log
//!   wheels/<sha256>/<wheel file>  content-addressed copy of the bundled wheel
//!   daemon/{state.json,token,daemon.log,lifecycle.lock}
//!   bundles/<name>/<version>/     installed signed bundles (`ktx bundle install`, crate ktx-bundle)
//!   bundles.lock                  cross-process lock around bundle installs
//!   sandbox-cache/                compiled WebAssembly modules of `ktx python` (written by the host)
//! <root>/tools/uv/<uv-version>/uv bootstrapped uv binaries
//! ```
//!
//! ktx creates every directory here with mode 0700 and trusts nothing under a root that
//! another user could write, nor a symlink it did not create (see [`crate::trust`]).

use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, RuntimeError};
use crate::fsutil::absolute;
use ktx_base::daemon_files;

/// The marker file ktx writes in every version dir it creates (`<root>/<version>/.ktx-runtime`).
pub const MARKER_FILE: &str = ".ktx-runtime";

/// The ktx version this library was built with (the workspace SemVer), e.g. `0.1.0-rc.0`.
pub const KTX_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Paths of one ktx version's runtime under a runtime root. Pure: computing a layout touches
/// nothing on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    version: String,
}

impl Layout {
    /// The layout for `version` under `root` (made absolute against the current directory).
    pub fn new(root: impl AsRef<Path>, version: impl Into<String>) -> Self {
        Layout {
            root: absolute(root.as_ref()),
            version: version.into(),
        }
    }

    /// The layout of this ktx version under `KTX_RUNTIME_ROOT`, else the platform data dir.
    pub fn from_env() -> Result<Self, RuntimeError> {
        Ok(Layout::new(runtime_root_from_env()?, KTX_VERSION))
    }

    /// The runtime root (holds one directory per ktx version and `tools/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ktx SemVer this layout is for.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `<root>/<version>/`.
    pub fn version_dir(&self) -> PathBuf {
        self.root.join(&self.version)
    }

    /// `<root>/<version>/.ktx-runtime`: the [`MARKER_FILE`].
    pub fn marker_path(&self) -> PathBuf {
        self.version_dir().join(MARKER_FILE)
    }

    /// `<root>/<version>/manifest.json`: the install receipt.
    pub fn receipt_path(&self) -> PathBuf {
        self.version_dir().join("manifest.json")
    }

    /// `<root>/<version>/venvs/`.
    pub fn venvs_dir(&self) -> PathBuf {
        self.version_dir().join("venvs")
    }

    /// `<root>/<version>/install.lock`.
    pub fn install_lock_path(&self) -> PathBuf {
        self.version_dir().join("install.lock")
    }

    /// `<root>/<version>/logs/`.
    pub fn logs_dir(&self) -> PathBuf {
        self.version_dir().join("logs")
    }

    /// `<root>/<version>/wheels/`.
    pub fn wheels_dir(&self) -> PathBuf {
        self.version_dir().join("wheels")
    }

    /// Installed signed bundles: `<version dir>/bundles/<name>/<version>/`.
    pub fn bundles_dir(&self) -> PathBuf {
        self.version_dir().join("bundles")
    }

    /// The lock every bundle install takes (`ktx bundle install`, the first `ktx python`).
    pub fn bundles_lock_path(&self) -> PathBuf {
        self.version_dir().join("bundles.lock")
    }

    /// The compiled-module cache of the Python sandbox (`ktx python`).
    pub fn sandbox_cache_dir(&self) -> PathBuf {
        self.version_dir().join("sandbox-cache")
    }

    /// `<root>/<version>/daemon/`.
    pub fn daemon_dir(&self) -> PathBuf {
        self.version_dir().join(daemon_files::DIR)
    }

    /// `<root>/<version>/daemon/state.json`.
    pub fn daemon_state_path(&self) -> PathBuf {
        self.daemon_dir().join(daemon_files::STATE)
    }

    /// `<root>/<version>/daemon/token`.
    pub fn daemon_token_path(&self) -> PathBuf {
        self.daemon_dir().join(daemon_files::TOKEN)
    }

    /// `<root>/<version>/daemon/daemon.log`.
    pub fn daemon_log_path(&self) -> PathBuf {
        self.daemon_dir().join(daemon_files::LOG)
    }

    /// `<root>/<version>/daemon/lifecycle.lock`.
    pub fn daemon_lifecycle_lock_path(&self) -> PathBuf {
        self.daemon_dir().join(daemon_files::LOCK)
    }

    /// `<root>/tools/uv/`: bootstrapped uv binaries, one directory per uv version.
    pub fn uv_tools_dir(&self) -> PathBuf {
        self.root.join("tools").join("uv")
    }

    /// `<root>/tools/uv/<uv_version>/uv` (`uv.exe` on Windows).
    pub fn uv_tool_path(&self, uv_version: &str) -> PathBuf {
        self.uv_tools_dir().join(uv_version).join(exe_name("uv"))
    }
}

/// `name` with the platform's executable suffix.
pub fn exe_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// The Python executable of a venv: `<venv>/bin/python` (`<venv>\Scripts\python.exe` on Windows).
pub fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// `KTX_RUNTIME_ROOT` if set and non-empty, else the platform data dir:
/// Linux `$XDG_DATA_HOME/kaelio/ktx/runtime` (default `~/.local/share/...`), macOS
/// `~/Library/Application Support/kaelio/ktx/runtime`, Windows `%LOCALAPPDATA%\Kaelio\KTX\runtime`.
pub fn runtime_root_from_env() -> Result<PathBuf, RuntimeError> {
    if let Some(root) = non_empty_env(ktx_base::env::RUNTIME_ROOT) {
        return Ok(absolute(Path::new(&root)));
    }
    let no_home = || {
        RuntimeError::new(
            ErrorKind::Config,
            "cannot find a directory for the KTX Python runtime: no home directory is set",
        )
        .with_hint(format!(
            "Set KTX_RUNTIME_ROOT to a writable directory, e.g. {}.",
            ktx_base::shell::set_env_dir(
                ktx_base::env::RUNTIME_ROOT,
                ktx_base::shell::Base::CurrentDir,
                ".ktx-runtime"
            )
        ))
    };
    if cfg!(windows) {
        let base = non_empty_env("LOCALAPPDATA").ok_or_else(no_home)?;
        return Ok(PathBuf::from(base)
            .join("Kaelio")
            .join("KTX")
            .join("runtime"));
    }
    let home = non_empty_env("HOME").map(PathBuf::from);
    if cfg!(target_os = "macos") {
        let home = home.ok_or_else(no_home)?;
        return Ok(home.join("Library/Application Support/kaelio/ktx/runtime"));
    }
    let data = match non_empty_env("XDG_DATA_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => home.ok_or_else(no_home)?.join(".local").join("share"),
    };
    Ok(data.join("kaelio").join("ktx").join("runtime"))
}

/// The value of an environment variable when it is set, valid Unicode and not blank.
pub(crate) use ktx_base::env::non_empty as non_empty_env;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let l = Layout::new("/r", "0.1.0-rc.0");
        assert_eq!(l.receipt_path(), Path::new("/r/0.1.0-rc.0/manifest.json"));
        assert_eq!(
            l.install_lock_path(),
            Path::new("/r/0.1.0-rc.0/install.lock")
        );
        assert_eq!(
            l.daemon_lifecycle_lock_path(),
            Path::new("/r/0.1.0-rc.0/daemon/lifecycle.lock")
        );
        assert!(l.uv_tool_path("0.13.8").starts_with("/r/tools/uv/0.13.8"));
    }
}
