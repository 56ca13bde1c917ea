//! Verification and install of signed bundles on real files: every refusal names the file and
//! an install that fails leaves nothing behind.

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ktx_bundle::build::{file_entry, write_signed};
use ktx_bundle::keys::{self, dev_signing_key, KeyInfo, DEV_KEY_ID};
use ktx_bundle::{install, verify_dir, BundleErrorKind, Keyring, Manifest, Source};

fn source() -> Source {
    Source {
        kind: "pypi-wheel".into(),
        package: "example".into(),
        version: "1.0".into(),
        file: "example-1.0-py3-none-any.whl".into(),
        sha256: "0".repeat(64),
        member: "bin/python.wasm".into(),
        member_record_hash: "sha256=x".into(),
        transform: "strip-custom-sections".into(),
    }
}

/// Writes `<bundles>/<name>/<version>/` with the assets and a manifest signed by `key` as
/// `key_id`.
fn make_bundle(
    bundles: &Path,
    name: &str,
    version: &str,
    assets: &[(&str, &[u8])],
    key: &SigningKey,
    key_id: &str,
) -> PathBuf {
    let dir = bundles.join(name).join(version);
    fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (path, bytes) in assets {
        fs::write(dir.join(path), bytes).unwrap();
        files.push(file_entry(&dir, path).unwrap());
    }
    let manifest = Manifest {
        schema_version: 1,
        name: name.into(),
        version: version.into(),
        python_version: "3.12.0".into(),
        files,
        wasmtime: vec![],
        source: source(),
        key_id: key_id.into(),
    };
    write_signed(&dir, &manifest, key).unwrap();
    dir
}

fn dev_bundle(bundles: &Path, version: &str, wasm: &[u8]) -> PathBuf {
    make_bundle(
        bundles,
        "lang-python",
        version,
        &[("python.wasm", wasm), ("extra.txt", b"hello\n")],
        &dev_signing_key(),
        DEV_KEY_ID,
    )
}

fn expect_err(dir: &Path, kind: BundleErrorKind, file: &str) {
    let err = verify_dir(dir, &Keyring::builtin()).expect_err("must be refused");
    assert_eq!(err.kind, kind, "{err:?}");
    assert_eq!(err.file, dir.join(file), "{err:?}");
    assert!(
        err.message.contains(file),
        "the message names the file: {err}"
    );
}

#[test]
fn a_good_bundle_verifies_and_is_marked_development() {
    let t = tempfile::tempdir().unwrap();
    let dir = dev_bundle(t.path(), "0.1.0", b"\0asm wasm bytes");
    let v = verify_dir(&dir, &Keyring::builtin()).unwrap();
    assert_eq!(v.key_id, DEV_KEY_ID);
    assert!(v.development);
    assert_eq!(v.manifest.files.len(), 2);
}

#[test]
fn a_tampered_byte_is_a_hash_error() {
    let t = tempfile::tempdir().unwrap();
    let dir = dev_bundle(t.path(), "0.1.0", b"\0asm wasm bytes");
    let mut bytes = fs::read(dir.join("python.wasm")).unwrap();
    bytes[5] ^= 1;
    fs::write(dir.join("python.wasm"), bytes).unwrap();
    expect_err(&dir, BundleErrorKind::Hash, "python.wasm");
}

#[test]
fn a_truncated_or_grown_file_is_a_size_error() {
    let t = tempfile::tempdir().unwrap();
    let dir = dev_bundle(t.path(), "0.1.0", b"\0asm wasm bytes");
    fs::write(dir.join("python.wasm"), b"\0asm wasm").unwrap();
    expect_err(&dir, BundleErrorKind::Size, "python.wasm");
    // Caught by the size check before any byte is read (not by the streamed count).
    let err = verify_dir(&dir, &Keyring::builtin()).unwrap_err();
    assert!(
        err.message.ends_with("is 9 bytes, the manifest says 15"),
        "{err}"
    );
    fs::write(dir.join("python.wasm"), b"\0asm wasm bytes!").unwrap();
    expect_err(&dir, BundleErrorKind::Size, "python.wasm");
}

#[test]
fn swapped_assets_between_two_bundles_are_refused() {
    let t = tempfile::tempdir().unwrap();
    // Same size, different content: only the hash tells them apart.
    let a = dev_bundle(t.path(), "0.1.0", b"\0asm AAAAAAAA");
    let b = dev_bundle(t.path(), "0.2.0", b"\0asm BBBBBBBB");
    let wa = fs::read(a.join("python.wasm")).unwrap();
    let wb = fs::read(b.join("python.wasm")).unwrap();
    fs::write(a.join("python.wasm"), wb).unwrap();
    fs::write(b.join("python.wasm"), wa).unwrap();
    expect_err(&a, BundleErrorKind::Hash, "python.wasm");
    expect_err(&b, BundleErrorKind::Hash, "python.wasm");
}

#[test]
fn swapped_manifests_between_two_bundles_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let a = dev_bundle(t.path(), "0.1.0", b"\0asm AAAAAAAA");
    let b = dev_bundle(t.path(), "0.2.0", b"\0asm BBBBBBBB");
    for f in ["manifest.json", "manifest.sig", "python.wasm"] {
        fs::copy(b.join(f), a.join(f)).unwrap();
    }
    // A whole, validly signed 0.2.0 sitting in 0.1.0's dir.
    expect_err(&a, BundleErrorKind::Manifest, "manifest.json");
}

#[test]
fn an_edited_manifest_is_a_bad_signature() {
    let t = tempfile::tempdir().unwrap();
    let dir = dev_bundle(t.path(), "0.1.0", b"\0asm wasm bytes");
    let text = fs::read_to_string(dir.join("manifest.json")).unwrap();
    // Still valid JSON with every hash right: only the signature catches it.
    fs::write(
        dir.join("manifest.json"),
        text.replace("\"3.12.0\"", "\"3.12.1\""),
    )
    .unwrap();
    expect_err(&dir, BundleErrorKind::BadSignature, "manifest.sig");
    // And a flipped signature byte.
    let dir = dev_bundle(t.path(), "0.2.0", b"\0asm wasm bytes");
    let mut sig = fs::read(dir.join("manifest.sig")).unwrap();
    sig[0] ^= 0x80;
    fs::write(dir.join("manifest.sig"), sig).unwrap();
    expect_err(&dir, BundleErrorKind::BadSignature, "manifest.sig");
}

#[test]
fn a_signature_by_the_wrong_key_is_refused() {
    let t = tempfile::tempdir().unwrap();
    // Claims the release key id, signed with another key.
    let other = SigningKey::from_bytes(&[7u8; 32]);
    let dir = make_bundle(
        t.path(),
        "lang-python",
        "0.1.0",
        &[("python.wasm", b"\0asm x")],
        &other,
        keys::RELEASE_KEY_ID,
    );
    expect_err(&dir, BundleErrorKind::BadSignature, "manifest.sig");
    // The dev key's signature under the release key's id.
    let dir = make_bundle(
        t.path(),
        "lang-python",
        "0.2.0",
        &[("python.wasm", b"\0asm x")],
        &dev_signing_key(),
        keys::RELEASE_KEY_ID,
    );
    expect_err(&dir, BundleErrorKind::BadSignature, "manifest.sig");
}

#[test]
fn an_unknown_key_id_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let other = SigningKey::from_bytes(&[9u8; 32]);
    let dir = make_bundle(
        t.path(),
        "lang-python",
        "0.1.0",
        &[("python.wasm", b"\0asm x")],
        &other,
        "someone-else",
    );
    expect_err(&dir, BundleErrorKind::UnknownKey, "manifest.json");
    // A keyring that knows it accepts it (the check is the key, not the id's spelling).
    let ring = Keyring::new(vec![KeyInfo::new(
        "someone-else",
        false,
        other.verifying_key(),
    )]);
    assert!(!verify_dir(&dir, &ring).unwrap().development);
}

#[test]
fn a_path_that_escapes_the_bundle_dir_is_refused() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("outside.txt"), b"secret").unwrap();
    let dir = t.path().join("lang-python").join("0.1.0");
    fs::create_dir_all(&dir).unwrap();
    for bad in [
        "../../outside.txt",
        "/etc/passwd",
        "sub/x",
        "..",
        "manifest.sig",
    ] {
        let manifest = Manifest {
            schema_version: 1,
            name: "lang-python".into(),
            version: "0.1.0".into(),
            python_version: "3.12.0".into(),
            files: vec![ktx_bundle::FileEntry {
                path: bad.into(),
                sha256: "0".repeat(64),
                size: 6,
            }],
            wasmtime: vec![],
            source: source(),
            key_id: DEV_KEY_ID.into(),
        };
        write_signed(&dir, &manifest, &dev_signing_key()).unwrap();
        // Signed and all: the path rule still refuses it, and installs nothing.
        expect_err(&dir, BundleErrorKind::UnsafePath, "manifest.json");
        let root = t.path().join("root");
        assert!(install(&dir, &root, &Keyring::builtin()).is_err());
        assert!(!root.exists(), "{bad}: nothing installed");
    }
}

#[cfg(unix)]
#[test]
fn a_symlinked_asset_or_bundle_dir_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = dev_bundle(t.path(), "0.1.0", b"\0asm wasm bytes");
    // A symlink to a file with the right content is still refused.
    let real = t.path().join("real.wasm");
    fs::rename(dir.join("python.wasm"), &real).unwrap();
    std::os::unix::fs::symlink(&real, dir.join("python.wasm")).unwrap();
    expect_err(&dir, BundleErrorKind::Symlink, "python.wasm");

    let good = dev_bundle(t.path(), "0.2.0", b"\0asm wasm bytes");
    let linked = t.path().join("lang-python").join("0.3.0");
    std::os::unix::fs::symlink(&good, &linked).unwrap();
    let err = verify_dir(&linked, &Keyring::builtin()).unwrap_err();
    assert_eq!(err.kind, BundleErrorKind::Symlink);
    assert_eq!(err.file, linked);
}

#[test]
fn install_copies_a_verified_bundle_and_is_idempotent() {
    let t = tempfile::tempdir().unwrap();
    let src = dev_bundle(&t.path().join("registry"), "0.1.0", b"\0asm wasm bytes");
    let bundles = t.path().join("root").join("bundles");
    let got = install(&src, &bundles, &Keyring::builtin()).unwrap();
    let dest = bundles.join("lang-python").join("0.1.0");
    assert_eq!(got.verified.dir, dest);
    assert!(!got.already_installed);
    for f in ["manifest.json", "manifest.sig", "python.wasm", "extra.txt"] {
        assert_eq!(
            fs::read(src.join(f)).unwrap(),
            fs::read(dest.join(f)).unwrap()
        );
    }
    verify_dir(&dest, &Keyring::builtin()).unwrap();
    let again = install(&src, &bundles, &Keyring::builtin()).unwrap();
    assert!(again.already_installed);
    // Nothing else was left in the name dir (no temporary dirs).
    let names: Vec<_> = fs::read_dir(bundles.join("lang-python"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("0.1.0")]);
}

#[test]
fn a_failed_install_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let src = dev_bundle(&t.path().join("registry"), "0.1.0", b"\0asm wasm bytes");
    // The last asset is bad: the first was already copied when the failure is found.
    fs::write(src.join("python.wasm"), b"\0asm wasm bytez").unwrap();
    let bundles = t.path().join("root").join("bundles");
    let err = install(&src, &bundles, &Keyring::builtin()).unwrap_err();
    assert_eq!(err.kind, BundleErrorKind::Hash);
    assert_eq!(err.file, src.join("python.wasm"));
    let left: Vec<_> = fs::read_dir(bundles.join("lang-python"))
        .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");

    // A bad signature (all assets fine) also leaves nothing.
    let src = dev_bundle(&t.path().join("registry"), "0.2.0", b"\0asm wasm bytes");
    let mut sig = fs::read(src.join("manifest.sig")).unwrap();
    sig[10] ^= 1;
    fs::write(src.join("manifest.sig"), sig).unwrap();
    let err = install(&src, &bundles, &Keyring::builtin()).unwrap_err();
    assert_eq!(err.kind, BundleErrorKind::BadSignature);
    let left: Vec<_> = fs::read_dir(bundles.join("lang-python"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn find_bundles_lists_name_version_dirs() {
    let t = tempfile::tempdir().unwrap();
    dev_bundle(t.path(), "0.2.0", b"\0asm b");
    dev_bundle(t.path(), "0.1.0", b"\0asm a");
    fs::create_dir_all(t.path().join("lang-python").join(".0.3.0.x.tmp")).unwrap();
    fs::create_dir_all(t.path().join("Not A Name").join("1.0")).unwrap();
    let found = ktx_bundle::find_bundles(t.path()).unwrap();
    let ids: Vec<_> = found
        .iter()
        .map(|f| format!("{}@{}", f.name, f.version))
        .collect();
    assert_eq!(ids, ["lang-python@0.1.0", "lang-python@0.2.0"]);
    assert!(ktx_bundle::find_bundles(&t.path().join("missing"))
        .unwrap()
        .is_empty());
}
