//! Read-only status of the runtime: `missing | ready | incomplete | mismatched | broken`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::features::{covers, Feature};
use crate::layout::Layout;
use crate::receipt::{read_receipt, Receipt};

/// The venv's directory of executables.
const VENV_BIN: &str = if cfg!(windows) { "Scripts" } else { "bin" };

/// The status JSON schema version.
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// The state of one ktx version's runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusKind {
    /// Nothing installed.
    Missing,
    /// A receipt matching this ktx, its wheel and the required features; the venv is intact.
    Ready,
    /// Files but no (valid) receipt: an install was interrupted.
    Incomplete,
    /// A receipt for another wheel checksum, ktx version, or without a required feature.
    Mismatched,
    /// A receipt, but the venv is gone or damaged (a required file is missing), its interpreter
    /// is not the venv's own, or the interpreter's base is gone; or the version dir exists under
    /// a root that fails the [`crate::trust`] checks (then nothing in it is read, and `missing`
    /// is reported when the version dir does not exist).
    Broken,
}

impl StatusKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Missing => "missing",
            StatusKind::Ready => "ready",
            StatusKind::Incomplete => "incomplete",
            StatusKind::Mismatched => "mismatched",
            StatusKind::Broken => "broken",
        }
    }
}

/// The paths reported by `ktx runtime status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusLayout {
    /// The runtime root.
    pub runtime_root: PathBuf,
    /// `<root>/<version>`.
    pub version_dir: PathBuf,
    /// The live venv (from the receipt), if any.
    pub venv_dir: Option<PathBuf>,
    /// The receipt path.
    pub manifest_path: PathBuf,
    /// The install logs dir.
    pub log_dir: PathBuf,
    /// The bundled asset dir, if it could be determined.
    pub asset_dir: Option<PathBuf>,
    /// The venv's Python (from the receipt), if any.
    pub python_path: Option<PathBuf>,
}

/// `ktx runtime status --json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// [`STATUS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The kind.
    pub kind: StatusKind,
    /// One sentence explaining the kind.
    pub detail: String,
    /// Paths.
    pub layout: StatusLayout,
    /// The receipt, when one was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Receipt>,
}

/// Why a receipt's venv cannot be trusted or cannot run, if so. Cheap (no Python start):
///
/// - the venv must resolve to a directory directly under `layout`'s `venvs/`, and the
///   interpreter to that venv's own `bin/python` (otherwise nothing of it is executed);
/// - `pyvenv.cfg` must name a base interpreter home that exists;
/// - every file the receipt lists as required (or, for older receipts, the interpreter,
///   site-packages and the `ktx_daemon` package) must exist.
pub fn venv_problem(layout: &Layout, receipt: &Receipt) -> Option<String> {
    let real_venv = match crate::venv_files::confined_venv(layout, receipt) {
        Ok(p) => p,
        Err(why) => return Some(why),
    };
    let cfg = receipt.venv_dir.join("pyvenv.cfg");
    let Ok(text) = fs::read_to_string(real_venv.join("pyvenv.cfg")) else {
        return Some(format!("{} is missing", cfg.display()));
    };
    let home = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "home").then(|| PathBuf::from(v.trim()))
    });
    match home {
        None => return Some(format!("{} has no home line", cfg.display())),
        Some(h) if !h.is_dir() => {
            return Some(format!(
                "the base interpreter is gone: {} names home = {}, which does not exist",
                cfg.display(),
                h.display()
            ))
        }
        Some(_) => {}
    }
    crate::venv_files::missing_file(receipt, &real_venv)
}

/// What stops ktx from installing under `layout` right now, if anything: an existing path
/// component of the version dir that is not a directory, or a nearest existing directory it
/// cannot write. Reads only (nothing is created to find out).
pub fn root_problem(layout: &Layout) -> Option<String> {
    if let Err(u) = crate::trust::check_layout(layout) {
        return Some(crate::trust::describe(layout, u));
    }
    let mut dir = layout.version_dir();
    loop {
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {
                return (!writable(&dir, &meta))
                    .then(|| format!("{} is not writable", dir.display()));
            }
            Ok(_) => return Some(format!("{} is a file, not a directory", dir.display())),
            // Missing (or under a file, found on the way up): look at the parent.
            Err(_) => {}
        }
        if !dir.pop() {
            return None;
        }
    }
}

#[cfg(unix)]
fn writable(dir: &Path, _: &fs::Metadata) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call. access(2) also
    // reports a read-only filesystem (EROFS), which permission bits alone would miss for root.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(not(unix))]
fn writable(_: &Path, meta: &fs::Metadata) -> bool {
    !meta.permissions().readonly()
}

/// The fix phrase of a non-ready status: `ktx runtime install` does it, unless the root
/// cannot be written.
fn repair(layout: &Layout, verb: &str) -> String {
    match root_problem(layout) {
        None => format!("`ktx runtime install` {verb} it"),
        Some(problem) => format!(
            "ktx cannot {} it here: {problem}; set KTX_RUNTIME_ROOT to a writable directory",
            verb.trim_end_matches('s')
        ),
    }
}

/// Computes the status without changing anything. `wheel_sha256` is the bundled wheel's
/// checksum from the asset manifest (None when the assets are unavailable: not compared).
pub fn status(
    layout: &Layout,
    wheel_sha256: Option<&str>,
    asset_dir: Option<&Path>,
    required: &[Feature],
) -> Status {
    let mut st = Status {
        schema_version: STATUS_SCHEMA_VERSION,
        kind: StatusKind::Missing,
        detail: String::new(),
        layout: StatusLayout {
            runtime_root: layout.root().to_path_buf(),
            version_dir: layout.version_dir(),
            venv_dir: None,
            manifest_path: layout.receipt_path(),
            log_dir: layout.logs_dir(),
            asset_dir: asset_dir.map(Path::to_path_buf),
            python_path: None,
        },
        manifest: None,
    };
    // Nothing under a root another user can write is read (the receipt names what ktx runs).
    if let Err(u) = crate::trust::check_layout(layout) {
        let exists = fs::symlink_metadata(layout.version_dir()).is_ok();
        st.kind = if exists {
            StatusKind::Broken
        } else {
            StatusKind::Missing
        };
        st.detail = crate::trust::describe(layout, u);
        return st;
    }
    if !layout.version_dir().is_dir() {
        if let Some(problem) = root_problem(layout) {
            st.detail = format!(
                "not installed, and ktx cannot install it in {}: {problem}; set KTX_RUNTIME_ROOT to a writable directory",
                layout.version_dir().display()
            );
            return st;
        }
    }
    let receipt = match read_receipt(&layout.receipt_path()) {
        Ok(Some(r)) => r,
        Ok(None) => {
            (st.kind, st.detail) = without_receipt(layout);
            return st;
        }
        Err(why) => {
            st.kind = StatusKind::Incomplete;
            st.detail = format!("unusable receipt ({why}); {}", repair(layout, "repairs"));
            return st;
        }
    };
    st.layout.venv_dir = Some(receipt.venv_dir.clone());
    st.layout.python_path = Some(receipt.python_path.clone());
    // The directories ktx executes the venv's python from must be private too.
    let venv_trust = crate::trust::check(layout, &receipt.venv_dir.join(VENV_BIN));
    let (kind, detail) = match venv_trust {
        Err(u) => (StatusKind::Broken, crate::trust::describe(layout, u)),
        Ok(()) => judge(layout, &receipt, wheel_sha256, required),
    };
    st.kind = kind;
    st.detail = detail;
    st.manifest = Some(receipt);
    st
}

/// The state of a version dir without a receipt: an install in progress (its lock is held),
/// an interrupted one (venvs but no receipt), or nothing installed.
fn without_receipt(layout: &Layout) -> (StatusKind, String) {
    let leftovers = fs::read_dir(layout.venvs_dir())
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    if leftovers > 0 && crate::lock::held_by_other(&layout.install_lock_path()) {
        // Not interrupted: another process is building it right now.
        let who = crate::lock::holder_pid(&layout.install_lock_path())
            .map(|pid| format!(" (pid {pid})"))
            .unwrap_or_default();
        (
            StatusKind::Incomplete,
            format!(
                "an install is in progress{who}: {} is held; it is ready when that install finishes",
                layout.install_lock_path().display()
            ),
        )
    } else if leftovers > 0 {
        (
            StatusKind::Incomplete,
            format!(
                "{} holds {leftovers} venv(s) but there is no receipt: an install was interrupted; {}",
                layout.venvs_dir().display(),
                repair(layout, "repairs")
            ),
        )
    } else {
        (
            StatusKind::Missing,
            format!("not installed in {}", layout.version_dir().display()),
        )
    }
}

/// What a readable receipt in a trusted venv says: mismatched (another ktx, another wheel,
/// missing features), broken (files missing) or ready.
fn judge(
    layout: &Layout,
    receipt: &Receipt,
    wheel_sha256: Option<&str>,
    required: &[Feature],
) -> (StatusKind, String) {
    if receipt.ktx_version != layout.version() {
        (
            StatusKind::Mismatched,
            format!(
                "installed by ktx {}, this is ktx {}",
                receipt.ktx_version,
                layout.version()
            ),
        )
    } else if wheel_sha256.is_some_and(|sha| sha != receipt.wheel_sha256) {
        (
            StatusKind::Mismatched,
            format!(
                "installed wheel sha256 {} differs from the bundled wheel {}",
                receipt.wheel_sha256,
                wheel_sha256.unwrap_or_default()
            ),
        )
    } else if let Some(problem) = venv_problem(layout, receipt) {
        (
            StatusKind::Broken,
            format!("{problem}; {}", repair(layout, "rebuilds")),
        )
    } else if !covers(&receipt.features, required) {
        let missing: Vec<&str> = required
            .iter()
            .filter(|f| !receipt.features.iter().any(|h| h == f.as_str()))
            .map(|f| f.as_str())
            .collect();
        (
            StatusKind::Mismatched,
            format!(
                "installed features [{}] lack {}",
                receipt.features.join(", "),
                missing.join(", ")
            ),
        )
    } else {
        (
            StatusKind::Ready,
            format!(
                "features [{}], Python {}, installed with {} at {}",
                receipt.features.join(", "),
                receipt.interpreter.version,
                receipt.installer.name,
                receipt.installed_at
            ),
        )
    }
}
