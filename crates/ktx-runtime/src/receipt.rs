//! The install receipt `<version dir>/manifest.json`: written last, it is what makes a runtime
//! "ready".

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The receipt schema this ktx writes and reads.
pub const RECEIPT_SCHEMA_VERSION: u32 = 1;

/// The base interpreter a venv was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterpreterRecord {
    /// The base interpreter's executable.
    pub path: PathBuf,
    /// Its version, e.g. `3.11.7`.
    pub version: String,
}

/// Which installer built the venv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallerRecord {
    /// `uv` or `pip`.
    pub name: String,
    /// uv's version (absent for pip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `<root>/<version>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Always [`RECEIPT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The ktx SemVer that installed it.
    pub ktx_version: String,
    /// sha256 of the installed wheel.
    pub wheel_sha256: String,
    /// Installed features, canonical order (`core` first).
    pub features: Vec<String>,
    /// The live venv (absolute).
    pub venv_dir: PathBuf,
    /// The venv's Python executable (absolute).
    pub python_path: PathBuf,
    /// The base interpreter.
    pub interpreter: InterpreterRecord,
    /// The installer used.
    pub installer: InstallerRecord,
    /// RFC 3339 UTC time the install finished.
    pub installed_at: String,
    /// Paths relative to [`Receipt::venv_dir`] that must exist for the venv to import the
    /// package (its interpreter, `pyvenv.cfg`, site-packages, the packages' `__init__.py`, the
    /// distribution's `RECORD`): `status` stats them, without starting Python. Absent in
    /// receipts of older ktx, which are checked against a set derived from the venv layout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_files: Vec<PathBuf>,
}

/// Reads a receipt. `Ok(None)` when there is no file; `Err(reason)` when it exists but is not a
/// receipt this ktx understands.
pub fn read_receipt(path: &Path) -> Result<Option<Receipt>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    match value.get("schemaVersion") {
        Some(v) if v.as_u64() == Some(u64::from(RECEIPT_SCHEMA_VERSION)) => {}
        Some(v) => {
            return Err(format!(
                "{} has schemaVersion {v}, this ktx reads {RECEIPT_SCHEMA_VERSION}",
                path.display()
            ))
        }
        None => {
            return Err(format!(
                "{} is not a receipt (no schemaVersion)",
                path.display()
            ))
        }
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| format!("{} is not a valid receipt: {e}", path.display()))
}
