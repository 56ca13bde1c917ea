//! Signed ktx bundles (see docs/ARCHITECTURE.md, "Bundles").
//!
//! A bundle is a directory `<name>/<version>/` holding `manifest.json` (a [`Manifest`]: every
//! asset's path, sha256 and size, the provenance of its source, the signing key's id),
//! `manifest.sig` (a detached ed25519 signature, 64 raw bytes, over the exact bytes of
//! `manifest.json`) and the assets. The public keys are compiled in ([`Keyring::builtin`]).
//!
//! One concern, one crate: `ktx-base` stays free of serde and cryptography, and both the CLI
//! (list, verify, install) and xtask (build and sign) use this code. Modules:
//!
//! - [`manifest`]: the manifest type and the rules for names, versions and asset paths.
//! - [`keys`]: key ids, the compiled-in public keys, signing-key parsing, signing.
//! - [`verify`]: reading a bundle dir and verifying it (size before reading, sha256 while
//!   streaming, then the signature) and the verified install into a runtime root.
//! - [`registry`]: a bundle source over HTTP (`--registry http://...`), sizes from
//!   `Content-Length` checked before reading.
//! - [`hex`]: lowercase hex, the form of every hash and key in a bundle.

pub mod build;
pub mod hex;
pub mod keys;
pub mod manifest;
pub mod registry;
pub mod verify;

pub use keys::{KeyInfo, Keyring};
pub use manifest::{FileEntry, Manifest, Source};
pub use verify::{
    find_bundles, install, install_from, read_bundle, read_from, verify_dir, BundleError,
    BundleErrorKind, BundleSource, DirSource, Found, Installed, Verified,
};

/// The manifest's file name inside a bundle dir.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The detached signature's file name inside a bundle dir.
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// The largest `manifest.json` ktx reads (checked before reading).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// The exact size of `manifest.sig`: one raw ed25519 signature.
pub const SIGNATURE_BYTES: u64 = 64;

/// The dir of the bundles ktx ships: `KTX_BUNDLE_DIR` if set, else `bundles/` of the npm
/// package (`<package>/native/<platform>/ktx` -> `<package>/bundles/`, found the way the
/// Python asset dir is).
pub fn package_bundles_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = ktx_base::env::non_empty(ktx_base::env::BUNDLE_DIR) {
        let dir = std::path::PathBuf::from(dir);
        return Some(if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir().ok()?.join(dir)
        });
    }
    let exe = std::env::current_exe().ok()?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    Some(exe.parent()?.parent()?.parent()?.join("bundles"))
}
