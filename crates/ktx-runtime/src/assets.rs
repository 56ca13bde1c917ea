//! The bundled asset dir: `manifest.json` + the kaelio-ktx wheel, verified before use.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, RuntimeError};
use crate::fsutil::{absolute, sha256_file};
use crate::layout::{non_empty_env, KTX_VERSION};

/// The asset manifest schema this ktx understands.
pub const ASSET_SCHEMA_VERSION: u32 = 1;

/// `manifest.json` of the bundled asset dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetManifest {
    /// Always 1.
    pub schema_version: u32,
    /// `kaelio-ktx`.
    pub distribution_name: String,
    /// PEP 440 package version, e.g. `0.1.0rc0`.
    pub version: String,
    /// The ktx SemVer this bundle belongs to, e.g. `0.1.0-rc.0`.
    pub cli_version: String,
    /// The wheel's Requires-Python, e.g. `>=3.10`.
    pub requires_python: String,
    /// The wheel file, its sha256 and size.
    pub wheel: WheelEntry,
}

/// The wheel named by the asset manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelEntry {
    /// Plain file name inside the asset dir (no separators).
    pub file: String,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A loaded (manifest validated) asset dir. The wheel's bytes are checked by [`Assets::verify_wheel`].
#[derive(Debug, Clone)]
pub struct Assets {
    /// The asset dir (absolute).
    pub dir: PathBuf,
    /// Its parsed manifest.
    pub manifest: AssetManifest,
}

const FIX_ASSETS: &str = "Reinstall ktx (`npm install -g @kaelio/ktx`), or in a checkout run `cargo xtask build-wheel --out DIR` and set KTX_ASSET_DIR=DIR.";

/// The asset dir: `KTX_ASSET_DIR` if set, else `<dir of current exe>/../../python` (the npm
/// package layout `package/native/<platform>/ktx` + `package/python/`).
pub fn discover_asset_dir() -> Result<PathBuf, RuntimeError> {
    if let Some(dir) = non_empty_env(ktx_base::env::ASSET_DIR) {
        return Ok(absolute(Path::new(&dir)));
    }
    let exe = std::env::current_exe().map_err(|e| {
        RuntimeError::new(
            ErrorKind::Asset,
            format!("cannot locate the ktx executable: {e}"),
        )
        .with_hint("Set KTX_ASSET_DIR to the directory holding manifest.json and the wheel.")
    })?;
    let exe = dunce::canonicalize(&exe).unwrap_or(exe);
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|p| p.join("python"))
        .ok_or_else(|| {
            RuntimeError::new(
                ErrorKind::Asset,
                format!("cannot derive the asset dir from {}", exe.display()),
            )
            .with_hint("Set KTX_ASSET_DIR to the directory holding manifest.json and the wheel.")
        })?;
    Ok(dir)
}

/// Whether `name` is a plain, safe wheel file name: no separators, no `..`, only
/// `[A-Za-z0-9._+-]`, ending in `.whl`.
pub fn is_safe_wheel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.ends_with(".whl")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Assets {
    /// Reads and validates `<dir>/manifest.json` (schema, safe wheel name, sha256 format, that
    /// it belongs to this ktx version). Does not hash the wheel.
    pub fn load(dir: &Path) -> Result<Assets, RuntimeError> {
        let dir = absolute(dir);
        let path = dir.join("manifest.json");
        let bad = |msg: String| RuntimeError::new(ErrorKind::Asset, msg).with_hint(FIX_ASSETS);
        let text = fs::read_to_string(&path).map_err(|e| {
            bad(format!(
                "cannot read the bundled Python runtime manifest {}: {e}",
                path.display()
            ))
        })?;
        let manifest: AssetManifest = serde_json::from_str(&text)
            .map_err(|e| bad(format!("invalid asset manifest {}: {e}", path.display())))?;
        if manifest.schema_version != ASSET_SCHEMA_VERSION {
            return Err(bad(format!(
                "asset manifest {} has schemaVersion {}, this ktx reads {ASSET_SCHEMA_VERSION}",
                path.display(),
                manifest.schema_version
            )));
        }
        if !is_safe_wheel_name(&manifest.wheel.file) {
            return Err(bad(format!(
                "asset manifest {} names an unsafe wheel file {:?}",
                path.display(),
                manifest.wheel.file
            )));
        }
        if !is_sha256_hex(&manifest.wheel.sha256) {
            return Err(bad(format!(
                "asset manifest {} has an invalid wheel sha256 {:?} (want 64 lowercase hex digits)",
                path.display(),
                manifest.wheel.sha256
            )));
        }
        if manifest.cli_version != KTX_VERSION {
            return Err(bad(format!(
                "asset manifest {} belongs to ktx {}, but this is ktx {KTX_VERSION}",
                path.display(),
                manifest.cli_version
            )));
        }
        Ok(Assets { dir, manifest })
    }

    /// `KTX_ASSET_DIR` / the exe-relative dir, loaded.
    pub fn from_env() -> Result<Assets, RuntimeError> {
        Assets::load(&discover_asset_dir()?)
    }

    /// The bundled wheel's path.
    pub fn wheel_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.wheel.file)
    }

    /// Checks the wheel's size and sha256 against the manifest; the error names the file.
    pub fn verify_wheel(&self) -> Result<(), RuntimeError> {
        let path = self.wheel_path();
        let (sha, bytes) = sha256_file(&path).map_err(|e| {
            RuntimeError::new(
                ErrorKind::Asset,
                format!("cannot read the bundled wheel {}: {e}", path.display()),
            )
            .with_hint(FIX_ASSETS)
        })?;
        let w = &self.manifest.wheel;
        if bytes != w.bytes || sha != w.sha256 {
            return Err(RuntimeError::new(
                ErrorKind::Asset,
                format!(
                    "checksum mismatch for the bundled wheel {}: manifest says sha256 {} ({} bytes), file has sha256 {sha} ({bytes} bytes); refusing to install it",
                    path.display(),
                    w.sha256,
                    w.bytes
                ),
            )
            .with_hint(FIX_ASSETS));
        }
        Ok(())
    }

    /// The wheel's `Requires-Dist` lines (best-effort; empty if the wheel cannot be read).
    pub fn requirements(&self) -> Vec<String> {
        let Ok(file) = fs::File::open(self.wheel_path()) else {
            return Vec::new();
        };
        let Ok(mut zip) = zip::ZipArchive::new(file) else {
            return Vec::new();
        };
        let name = zip
            .file_names()
            .filter_map(Result::ok)
            .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)
            .map(|n| n.to_string());
        let Some(name) = name else { return Vec::new() };
        let mut text = String::new();
        if let Ok(mut entry) = zip.by_name(&name) {
            let _ = entry.read_to_string(&mut text);
        }
        text.lines()
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.strip_prefix("Requires-Dist:"))
            .map(|l| l.trim().to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        assert!(is_safe_wheel_name("kaelio_ktx-0.1.0rc0-py3-none-any.whl"));
        assert!(!is_safe_wheel_name("../x.whl"));
        assert!(!is_safe_wheel_name("a/b.whl"));
        assert!(!is_safe_wheel_name("a\\b.whl"));
        assert!(!is_safe_wheel_name("x.tar.gz"));
        assert!(!is_safe_wheel_name(".whl"));
    }
}
