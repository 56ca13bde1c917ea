//! `dist/manifest.json`: every release artifact with its size, sha256 and npm-style sha512
//! integrity. Written last by pack-npm; read by artifacts-verify and the release commands.
//!
//! ```json
//! {"schemaVersion": 1, "version": "0.1.0-rc.0", "pep440Version": "0.1.0rc0",
//!  "artifacts": [
//!    {"kind": "npm", "name": "@kaelio/ktx", "path": "npm/kaelio-ktx-0.1.0-rc.0.tgz",
//!     "bytes": 1, "sha256": "<hex>", "integrity": "sha512-<base64>"},
//!    {"kind": "wheel", "name": "kaelio-ktx", "path": "python/kaelio_ktx-0.1.0rc0-py3-none-any.whl", ...}],
//!  "native": [
//!    {"target": "linux-x64", "path": "native/linux-x64/ktx", "bytes": 1, "sha256": "<hex>"}, ...],
//!  "bundles": [
//!    {"path": "bundles/lang-python/0.1.0/python.wasm", "bytes": 1, "sha256": "<hex>"}, ...]}
//! ```
//! An artifact's `path` is relative to the dist directory, a native binary's and a bundle
//! file's to the package root inside the tarball; all `/`-separated.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DistManifest {
    /// Always 1.
    pub schema_version: u32,
    /// The ktx SemVer.
    pub version: String,
    /// Its PEP 440 mapping.
    pub pep440_version: String,
    /// Every artifact, npm tarball first.
    pub artifacts: Vec<Artifact>,
    /// Every native binary inside the npm tarball, sorted by target (absent in manifests
    /// written before multi-platform packing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub native: Vec<NativeBinary>,
    /// Every file of the signed bundles inside the npm tarball (`bundles/<name>/<version>/...`),
    /// sorted by path (absent when none is shipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<BundleFile>,
}

/// One file of a signed bundle packed into the npm tarball.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Path inside the package (without `package/`), e.g.
    /// `bundles/lang-python/0.1.0/python.wasm`.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// One native `ktx` binary packed into the npm tarball.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeBinary {
    /// npm's `<platform>-<arch>` (`linux-x64`, `win32-x64`, ...).
    pub target: String,
    /// Path inside the package (without `package/`), e.g. `native/win32-x64/ktx.exe`.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 (the value package.json's `ktx.native.<target>.sha256` carries).
    pub sha256: String,
}

/// One artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// `npm` or `wheel`.
    pub kind: String,
    /// The package name in its registry (`@kaelio/ktx`, `kaelio-ktx`).
    pub name: String,
    /// Path relative to the dist directory.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// `sha512-<base64>` (npm's `dist.integrity`).
    pub integrity: String,
}

impl Artifact {
    /// Describes `data`, to be stored at `path` (relative to dist).
    pub fn new(kind: &str, name: &str, path: &str, data: &[u8]) -> Artifact {
        Artifact {
            kind: kind.into(),
            name: name.into(),
            path: path.into(),
            bytes: data.len() as u64,
            sha256: crate::fsx::sha256_hex(data),
            integrity: crate::fsx::sha512_integrity(data),
        }
    }
}

impl DistManifest {
    /// Pretty JSON with a trailing newline.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out =
            serde_json::to_vec_pretty(self).context("cannot render dist/manifest.json")?;
        out.push(b'\n');
        Ok(out)
    }

    /// Reads `<dist>/manifest.json`.
    pub fn load(dist: &Path) -> Result<DistManifest> {
        let path = dist.join("manifest.json");
        let text = crate::fsx::read_to_string(&path)
            .context("run `cargo xtask dist` to build the artifacts")?;
        serde_json::from_str(&text).with_context(|| format!("{} is malformed", path.display()))
    }

    /// The artifact of `kind`.
    pub fn artifact(&self, kind: &str) -> Result<&Artifact> {
        self.artifacts
            .iter()
            .find(|a| a.kind == kind)
            .with_context(|| format!("dist/manifest.json lists no `{kind}` artifact"))
    }

    /// Re-reads every artifact under `dist` and checks size, sha256 and sha512; returns the
    /// artifacts' absolute paths.
    pub fn verify(&self, dist: &Path) -> Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for a in &self.artifacts {
            if a.path.split('/').any(|c| c == ".." || c.is_empty()) {
                bail!(
                    "dist/manifest.json: artifact path `{}` must stay inside dist",
                    a.path
                );
            }
            let path = dist.join(&a.path);
            let data = crate::fsx::read(&path)?;
            let got = Artifact::new(&a.kind, &a.name, &a.path, &data);
            if got != *a {
                bail!(
                    "{} does not match dist/manifest.json (bytes {} vs {}, sha256 {} vs {}); \
                     rebuild with `cargo xtask dist`",
                    path.display(),
                    got.bytes,
                    a.bytes,
                    got.sha256,
                    a.sha256
                );
            }
            paths.push(path);
        }
        Ok(paths)
    }
}
