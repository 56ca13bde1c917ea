//! `cargo xtask artifacts-verify --dist DIR` on broken packages: it must stop before installing
//! anything, exit non-zero, and name the file whose checksum is wrong.

mod release_support;

use base64::Engine as _;
use release_support::*;
use sha2::{Digest, Sha256, Sha512};
use std::io::{Read, Write};
use std::path::Path;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bundled wheel's file name, from dist's asset manifest.
fn wheel_file(dist: &Path) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("python/manifest.json")).unwrap()).unwrap();
    m["wheel"]["file"].as_str().unwrap().to_string()
}

/// Flips one byte in the middle of `package/python/<wheel>` inside the gzipped tarball.
fn corrupt_wheel_in(tgz: &[u8], wheel: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(tgz)
        .read_to_end(&mut raw)
        .unwrap();
    let target = format!("package/python/{wheel}");
    let (pos, size) = tar::Archive::new(raw.as_slice())
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_string_lossy() == target)
        .map(|e| (e.raw_file_position() as usize, e.size() as usize))
        .unwrap_or_else(|| panic!("no {target} in the tarball"));
    raw[pos + size / 2] ^= 0x01;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap()
}

fn verify(dist: &Path) -> (bool, String) {
    let out = run(xtask().arg("artifacts-verify").arg("--dist").arg(dist));
    (out.status.success(), text(&out))
}

#[test]
fn a_package_whose_wheel_does_not_match_its_manifest_fails_at_the_checksums() {
    let tmp = project_copy();
    let dist = tmp.path().join("dist");
    let wheel = wheel_file(&dist);
    let name = format!("kaelio-ktx-{}.tgz", version());
    let tgz = dist.join("npm").join(&name);
    let bad = corrupt_wheel_in(&std::fs::read(&tgz).unwrap(), &wheel);
    std::fs::write(&tgz, &bad).unwrap();
    // A realistic mis-build: dist's own checksums describe the broken tarball, so only the
    // wheel inside it disagrees with package/python/manifest.json.
    let sha = hex(&Sha256::digest(&bad));
    edit_json(&dist.join("manifest.json"), |m| {
        let npm = &mut m["artifacts"][0];
        assert_eq!(npm["kind"], "npm");
        npm["bytes"] = bad.len().into();
        npm["sha256"] = sha.clone().into();
        npm["integrity"] = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&bad))
        )
        .into();
    });
    std::fs::write(
        dist.join(format!("npm/{name}.sha256")),
        format!("{sha}  {name}\n"),
    )
    .unwrap();

    let (ok, out) = verify(&dist);
    assert!(!ok, "a corrupted wheel must fail artifacts-verify:\n{out}");
    assert!(
        out.contains(&format!(
            "checksum mismatch: package/python/{wheel} inside {} does not match \
             package/python/manifest.json",
            tgz.display()
        )),
        "{out}"
    );
    assert!(out.contains("FAIL  0  checksums"), "{out}");
    assert!(
        !out.contains("1a npm install"),
        "nothing may be installed: {out}"
    );
}

#[test]
fn a_tarball_that_does_not_match_dist_manifest_is_named() {
    let tmp = project_copy();
    let dist = tmp.path().join("dist");
    let name = format!("kaelio-ktx-{}.tgz", version());
    let tgz = dist.join("npm").join(&name);
    let mut bytes = std::fs::read(&tgz).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&tgz, bytes).unwrap();

    let (ok, out) = verify(&dist);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "{} does not match dist/manifest.json",
            tgz.display()
        )),
        "{out}"
    );
    assert!(out.contains("FAIL  0  checksums"), "{out}");
}
