//! Checks what the npm tarball carries against its own manifests, before anything is installed:
//! the bundled wheel against `package/python/manifest.json` (what ktx verifies at install time)
//! and against dist's wheel, and each native binary against the sha256 in `package/package.json`.
//! A package whose wheel does not match its manifest fails here, naming the file.

use crate::dist_manifest::DistManifest;
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// Checks the tarball `data` (the file `tgz_rel`, as named in messages) against its manifests
/// and `dist`.
pub fn check(tgz_rel: &str, data: &[u8], dist: &DistManifest) -> Result<()> {
    let files =
        crate::npm_tarball::read_files(data).with_context(|| format!("cannot read {tgz_rel}"))?;
    let inside = |p: &str| format!("package/{p} inside {tgz_rel}");
    let get = |p: &str| {
        files
            .get(p)
            .map(|f| f.data.as_slice())
            .with_context(|| format!("{} is missing", inside(p)))
    };
    let json = |p: &str| -> Result<Value> {
        serde_json::from_slice(get(p)?).with_context(|| format!("{} is not JSON", inside(p)))
    };
    let fix = "rebuild with `cargo xtask dist`";

    let asset = json("python/manifest.json")?;
    let field = |ptr: &str| {
        asset
            .pointer(ptr)
            .with_context(|| format!("{} has no `{ptr}`", inside("python/manifest.json")))
    };
    let file = field("/wheel/file")?.as_str().unwrap_or_default();
    let want_sha = field("/wheel/sha256")?.as_str().unwrap_or_default();
    let want_bytes = field("/wheel/bytes")?.as_u64().unwrap_or(u64::MAX);
    ensure!(
        !file.is_empty() && !file.contains('/'),
        "{}: `wheel.file` must be a file name, got {file:?}",
        inside("python/manifest.json")
    );
    let wheel_rel = format!("python/{file}");
    let wheel = get(&wheel_rel)?;
    let got_sha = crate::fsx::sha256_hex(wheel);
    if got_sha != want_sha || wheel.len() as u64 != want_bytes {
        bail!(
            "checksum mismatch: {} does not match package/python/manifest.json (sha256 {got_sha} \
             vs {want_sha}, bytes {} vs {want_bytes}); ktx would refuse to install it; {fix}",
            inside(&wheel_rel),
            wheel.len()
        );
    }
    for (ptr, want) in [
        ("/version", &dist.pep440_version),
        ("/cliVersion", &dist.version),
    ] {
        let got = field(ptr)?.as_str().unwrap_or_default();
        ensure!(
            got == want,
            "{} has `{}` {got:?}, dist/manifest.json says {want:?}; {fix}",
            inside("python/manifest.json"),
            &ptr[1..]
        );
    }
    let dist_wheel = dist.artifact("wheel")?;
    ensure!(
        got_sha == dist_wheel.sha256,
        "{} (sha256 {got_sha}) is not dist's {} (sha256 {}); {fix}",
        inside(&wheel_rel),
        dist_wheel.path,
        dist_wheel.sha256
    );

    let pj = json("package.json")?;
    let npm = dist.artifact("npm")?;
    for (key, want) in [("name", &npm.name), ("version", &dist.version)] {
        let got = pj.get(key).and_then(Value::as_str).unwrap_or_default();
        ensure!(
            got == want,
            "{} has `{key}` {got:?}, expected {want:?}; {fix}",
            inside("package.json")
        );
    }
    let pinned = pj.pointer("/ktx/python/sha256").and_then(Value::as_str);
    ensure!(
        pinned == Some(got_sha.as_str()),
        "{}: `ktx.python.sha256` is {pinned:?}, the bundled wheel's is {got_sha}; {fix}",
        inside("package.json")
    );
    let native = pj
        .pointer("/ktx/native")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .with_context(|| format!("{} has no `ktx.native` binaries", inside("package.json")))?;
    for (target, meta) in native {
        let path = meta.get("path").and_then(Value::as_str).unwrap_or_default();
        let want = meta
            .get("sha256")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let got = crate::fsx::sha256_hex(get(path)?);
        ensure!(
            got == want,
            "checksum mismatch: {} ({target}) has sha256 {got}, package.json says {want}; {fix}",
            inside(path)
        );
    }
    // The shipped bundles: exactly the files dist/manifest.json lists, byte for byte, and a
    // python.wasm that can be CPython.
    let packed_bundles: Vec<&str> = files
        .keys()
        .map(String::as_str)
        .filter(|p| p.starts_with("bundles/"))
        .collect();
    let listed: Vec<&str> = dist.bundles.iter().map(|b| b.path.as_str()).collect();
    ensure!(
        packed_bundles == listed,
        "{tgz_rel} ships the bundle files {packed_bundles:?}, dist/manifest.json lists {listed:?}; {fix}"
    );
    for b in &dist.bundles {
        let data = get(&b.path)?;
        let got = crate::fsx::sha256_hex(data);
        ensure!(
            got == b.sha256 && data.len() as u64 == b.bytes,
            "checksum mismatch: {} (sha256 {got}, {} bytes) is not what dist/manifest.json lists (sha256 {}, {} bytes); {fix}",
            inside(&b.path),
            data.len(),
            b.sha256,
            b.bytes
        );
        if b.path.ends_with("/python.wasm") {
            ensure!(
                super::sandbox::looks_like_python_wasm(data),
                "{} is {} bytes and does not start with \\0asm: not CPython for WASI; {fix}",
                inside(&b.path),
                data.len()
            );
        }
    }
    // dist/manifest.json (when it lists them) names exactly the packed binaries, byte for byte.
    if !dist.native.is_empty() {
        let packed: Vec<(&str, &str, &str)> = native
            .iter()
            .map(|(t, m)| {
                let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
                (t.as_str(), s("path"), s("sha256"))
            })
            .collect();
        let listed: Vec<(&str, &str, &str)> = dist
            .native
            .iter()
            .map(|n| (n.target.as_str(), n.path.as_str(), n.sha256.as_str()))
            .collect();
        ensure!(
            packed == listed,
            "{}'s `ktx.native` {packed:?} is not dist/manifest.json's `native` {listed:?}; {fix}",
            inside("package.json")
        );
        for n in &dist.native {
            let len = get(&n.path)?.len() as u64;
            ensure!(
                len == n.bytes,
                "{} has {len} bytes, dist/manifest.json says {}; {fix}",
                inside(&n.path),
                n.bytes
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist_manifest::Artifact;
    use crate::npm_tarball::{build, Entry};
    use serde_json::json;

    const WHEEL: &str = "kaelio_ktx-0.1.0rc0-py3-none-any.whl";

    fn entry(path: &str, data: Vec<u8>) -> Entry {
        Entry {
            path: path.into(),
            data,
            executable: false,
        }
    }

    /// A package whose wheel is `packed_wheel` while its manifests describe `wheel`.
    fn package(wheel: &[u8], packed_wheel: &[u8]) -> (Vec<u8>, DistManifest) {
        let sha = crate::fsx::sha256_hex(wheel);
        let asset = json!({"schemaVersion": 1, "distributionName": "kaelio-ktx",
            "version": "0.1.0rc0", "cliVersion": "0.1.0-rc.0", "requiresPython": ">=3.10",
            "wheel": {"file": WHEEL, "sha256": sha, "bytes": wheel.len()}});
        let native = b"\x7fELF".to_vec();
        let pj = json!({"name": "@kaelio/ktx", "version": "0.1.0-rc.0",
            "ktx": {"native": {"linux-x64": {"path": "native/linux-x64/ktx",
                                             "sha256": crate::fsx::sha256_hex(&native)}},
                    "python": {"sha256": sha}}});
        let tgz = build(vec![
            entry("package.json", pj.to_string().into_bytes()),
            entry("python/manifest.json", asset.to_string().into_bytes()),
            entry(&format!("python/{WHEEL}"), packed_wheel.to_vec()),
            entry("native/linux-x64/ktx", native),
        ])
        .unwrap();
        let dist = DistManifest {
            schema_version: 1,
            version: "0.1.0-rc.0".into(),
            pep440_version: "0.1.0rc0".into(),
            artifacts: vec![
                Artifact::new("npm", "@kaelio/ktx", "npm/x.tgz", &tgz),
                Artifact::new("wheel", "kaelio-ktx", &format!("python/{WHEEL}"), wheel),
            ],
            native: vec![],
            bundles: vec![],
        };
        (tgz, dist)
    }

    #[test]
    fn a_consistent_package_passes() {
        let (tgz, dist) = package(b"PK wheel bytes", b"PK wheel bytes");
        check("npm/x.tgz", &tgz, &dist).unwrap();
        let files = crate::npm_tarball::read_files(&tgz).unwrap();
        assert_eq!(files[&format!("python/{WHEEL}")].data, b"PK wheel bytes");
    }

    #[test]
    fn a_wheel_that_does_not_match_its_manifest_is_named() {
        let (tgz, dist) = package(b"PK wheel bytes", b"PK wheel bytez");
        let err = format!("{:#}", check("npm/x.tgz", &tgz, &dist).unwrap_err());
        assert!(
            err.contains(&format!(
                "checksum mismatch: package/python/{WHEEL} inside npm/x.tgz does not match \
                 package/python/manifest.json"
            )),
            "{err}"
        );
    }

    #[test]
    fn the_manifest_native_list_must_match_the_packed_binaries() {
        let (tgz, mut dist) = package(b"PK", b"PK");
        let elf = b"\x7fELF".to_vec();
        let listed = crate::dist_manifest::NativeBinary {
            target: "linux-x64".into(),
            path: "native/linux-x64/ktx".into(),
            bytes: elf.len() as u64,
            sha256: crate::fsx::sha256_hex(&elf),
        };
        dist.native = vec![listed.clone()];
        check("npm/x.tgz", &tgz, &dist).unwrap();
        let mut other = listed.clone();
        other.target = "win32-x64".into();
        other.path = "native/win32-x64/ktx.exe".into();
        dist.native = vec![listed.clone(), other];
        let err = format!("{:#}", check("npm/x.tgz", &tgz, &dist).unwrap_err());
        assert!(
            err.contains("`ktx.native`") && err.contains("dist/manifest.json's `native`"),
            "{err}"
        );
        dist.native = vec![crate::dist_manifest::NativeBinary { bytes: 5, ..listed }];
        let err = format!("{:#}", check("npm/x.tgz", &tgz, &dist).unwrap_err());
        assert!(
            err.contains("has 4 bytes, dist/manifest.json says 5"),
            "{err}"
        );
    }

    #[test]
    fn a_package_of_another_wheel_or_version_fails() {
        let (tgz, mut dist) = package(b"PK wheel bytes", b"PK wheel bytes");
        dist.artifacts[1].sha256 = "0".repeat(64);
        let err = format!("{:#}", check("npm/x.tgz", &tgz, &dist).unwrap_err());
        assert!(err.contains("is not dist's python/"), "{err}");
        let (tgz, mut dist) = package(b"PK", b"PK");
        dist.version = "0.2.0".into();
        let err = format!("{:#}", check("npm/x.tgz", &tgz, &dist).unwrap_err());
        assert!(err.contains("`cliVersion`"), "{err}");
        let err = format!(
            "{:#}",
            check("npm/x.tgz", b"not a tarball", &dist).unwrap_err()
        );
        assert!(err.contains("cannot read npm/x.tgz"), "{err}");
    }
}
