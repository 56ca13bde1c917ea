//! Writing a signed bundle dir (used by `cargo xtask bundle` and by tests).

use std::fs;
use std::io;
use std::path::Path;

use ed25519_dalek::SigningKey;

use crate::manifest::{FileEntry, Manifest};
use crate::{MANIFEST_FILE, SIGNATURE_FILE};

/// The [`FileEntry`] of the file `dir/name` (its size and streamed sha256).
pub fn file_entry(dir: &Path, name: &str) -> io::Result<FileEntry> {
    use sha2::{Digest, Sha256};
    let path = dir.join(name);
    let mut file = fs::File::open(&path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)?;
    Ok(FileEntry {
        path: name.to_string(),
        sha256: crate::hex::encode(&hasher.finalize()),
        size,
    })
}

/// Writes `dir/manifest.json` (the manifest's canonical bytes) and `dir/manifest.sig` (their
/// signature by `key`), each atomically. The assets must already be in `dir`. Returns the
/// manifest bytes.
pub fn write_signed(dir: &Path, manifest: &Manifest, key: &SigningKey) -> io::Result<Vec<u8>> {
    let bytes = manifest.to_bytes();
    let sig = crate::keys::sign(key, &bytes);
    ktx_base::fs::write_atomic(&dir.join(MANIFEST_FILE), &bytes, 0o644)?;
    ktx_base::fs::write_atomic(&dir.join(SIGNATURE_FILE), &sig, 0o644)?;
    Ok(bytes)
}
