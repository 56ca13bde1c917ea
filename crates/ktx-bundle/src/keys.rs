//! Signing keys: the ids, the public keys compiled into ktx, and signing.
//!
//! Key files (in `keys/` at the repository root) hold one line of hex: a public key is the
//! 32-byte ed25519 verifying key, a secret key the 32-byte seed. Lines starting with `#` are
//! comments.
//!
//! - [`RELEASE_KEY_ID`]: the official release key. Its public key is `keys/release.pub`; the
//!   secret lives only in CI's secrets (`KTX_BUNDLE_SIGNING_KEY`, see RELEASING.md).
//! - [`DEV_KEY_ID`]: the development key. Both halves are committed (`keys/dev.pub`,
//!   `keys/dev.key`): anyone can sign with it, so a bundle it signed is marked development
//!   everywhere ktx shows it, and `cargo xtask release-readiness` refuses to ship one.

use ed25519_dalek::{Signature, Signer};
/// The key types, re-exported so users need no direct ed25519 dependency.
pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// The id of the official release key (`keys/release.pub`).
pub const RELEASE_KEY_ID: &str = "ktx-release-1";
/// The id of the committed development key (`keys/dev.pub`, `keys/dev.key`).
pub const DEV_KEY_ID: &str = "ktx-dev-1";

const RELEASE_PUB: &str = include_str!("../../../keys/release.pub");
const DEV_PUB: &str = include_str!("../../../keys/dev.pub");
/// The committed development secret key (hex seed). Public by design: see the module docs.
pub const DEV_SECRET: &str = include_str!("../../../keys/dev.key");

/// A public key ktx trusts, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The id a manifest's `keyId` names.
    pub id: String,
    /// True for a development key (signatures anyone could make).
    pub development: bool,
    key: VerifyingKey,
}

impl KeyInfo {
    /// A key from its id, development flag and 32-byte verifying key.
    pub fn new(id: impl Into<String>, development: bool, key: VerifyingKey) -> Self {
        KeyInfo {
            id: id.into(),
            development,
            key,
        }
    }

    /// The verifying key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// The public keys a verification accepts.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<KeyInfo>,
}

impl Keyring {
    /// The keys compiled into this ktx: the release key and the development key.
    pub fn builtin() -> Keyring {
        let parse = |id: &str, text: &str| {
            // Compiled-in constants, checked by the `builtin_keys_parse` test.
            parse_public_key(text).unwrap_or_else(|e| panic!("compiled-in key {id}: {e}"))
        };
        Keyring {
            keys: vec![
                KeyInfo::new(RELEASE_KEY_ID, false, parse(RELEASE_KEY_ID, RELEASE_PUB)),
                KeyInfo::new(DEV_KEY_ID, true, parse(DEV_KEY_ID, DEV_PUB)),
            ],
        }
    }

    /// A keyring of exactly `keys` (for tests and tools).
    pub fn new(keys: Vec<KeyInfo>) -> Keyring {
        Keyring { keys }
    }

    /// The key with id `id`.
    pub fn get(&self, id: &str) -> Option<&KeyInfo> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The key whose verifying key is `key`'s public half (which id a secret key signs as).
    pub fn id_of(&self, key: &SigningKey) -> Option<&KeyInfo> {
        let public = key.verifying_key();
        self.keys.iter().find(|k| k.key == public)
    }

    /// Every key, in order.
    pub fn keys(&self) -> &[KeyInfo] {
        &self.keys
    }
}

/// The single non-comment line of a key file.
fn key_line(text: &str) -> Result<&str, String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or("the key file holds no key line")?;
    if lines.next().is_some() {
        return Err("the key file holds more than one key line".into());
    }
    Ok(line)
}

/// Parses a public key file: one line of 64 hex digits (the 32-byte ed25519 key).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = crate::hex::decode::<32>(key_line(text)?)
        .ok_or("the key line is not 64 hex digits (a 32-byte ed25519 public key)")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not a valid ed25519 public key: {e}"))
}

/// Parses a secret key: one line of 64 hex digits (the 32-byte ed25519 seed).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, String> {
    let bytes = crate::hex::decode::<32>(key_line(text)?)
        .ok_or("the key line is not 64 hex digits (a 32-byte ed25519 secret key seed)")?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// The development signing key (committed; see the module docs).
pub fn dev_signing_key() -> SigningKey {
    // A compiled-in constant, checked by the `dev_key_pair_matches` test.
    parse_signing_key(DEV_SECRET).unwrap_or_else(|e| panic!("compiled-in key {DEV_KEY_ID}: {e}"))
}

/// The detached signature of `manifest_bytes` (64 bytes). ed25519 is deterministic: the same
/// key and bytes always give the same signature, so builds are reproducible.
pub fn sign(key: &SigningKey, manifest_bytes: &[u8]) -> [u8; 64] {
    key.sign(manifest_bytes).to_bytes()
}

/// Whether `signature` is `key`'s signature of `manifest_bytes` (strict verification: no
/// malleable or small-order encodings).
pub fn signature_ok(key: &KeyInfo, manifest_bytes: &[u8], signature: &[u8; 64]) -> bool {
    key.key
        .verify_strict(manifest_bytes, &Signature::from_bytes(signature))
        .is_ok()
}

/// The public key file text for `key` (what `keys/*.pub` hold).
pub fn public_key_file(key: &SigningKey) -> String {
    format!("{}\n", crate::hex::encode(key.verifying_key().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_keys_parse() {
        let ring = Keyring::builtin();
        let release = ring.get(RELEASE_KEY_ID).expect("release key");
        assert!(!release.development);
        let dev = ring.get(DEV_KEY_ID).expect("dev key");
        assert!(dev.development);
        assert_ne!(release.key, dev.key);
    }

    #[test]
    fn dev_key_pair_matches() {
        let ring = Keyring::builtin();
        let key = dev_signing_key();
        assert_eq!(ring.id_of(&key).map(|k| k.id.as_str()), Some(DEV_KEY_ID));
        let sig = sign(&key, b"bytes");
        assert!(signature_ok(ring.get(DEV_KEY_ID).unwrap(), b"bytes", &sig));
        assert!(!signature_ok(ring.get(DEV_KEY_ID).unwrap(), b"bytez", &sig));
        assert!(!signature_ok(
            ring.get(RELEASE_KEY_ID).unwrap(),
            b"bytes",
            &sig
        ));
    }

    #[test]
    fn key_files() {
        assert!(parse_public_key("# c\n\n").is_err());
        assert!(parse_public_key(&format!("{}\n{}\n", "0".repeat(64), "0".repeat(64))).is_err());
        assert!(parse_signing_key("zz").is_err());
        let k = parse_signing_key(&format!("# comment\n{}\n", "11".repeat(32))).unwrap();
        assert_eq!(
            parse_public_key(&public_key_file(&k)).unwrap(),
            k.verifying_key()
        );
    }
}
