//! `cargo xtask release-readiness` on a freshly packed dist (built once per test binary from a
//! copy of the project), and on copies with one thing tampered: each tamper fails its check.

mod release_support;

use expect_test::expect;
use release_support::*;
use std::process::Command;

#[test]
fn fresh_dist_is_ready() {
    let tmp = project_copy();
    let native = native_binary().to_str().unwrap();
    let (ok, report) = readiness(
        tmp.path(),
        &["--native", native],
        &[("GITHUB_REPOSITORY", "kaelio/ktx")],
    );
    assert!(ok, "a fresh dist must be ready: {report:#}");
    assert_eq!(report["version"], version());
    // Every check passes, but the tag: a copy that is not a git checkout has none to compare.
    expect![[r#"
        ready: true
        policy: pass
        versions: pass
        dist-tag: pass
        git-tag: skip
        artifacts-manifest: pass
        native-binary: pass
        tarball-rebuild: pass
        tarball-size: pass
        repository-url: pass
        policy-mode: pass
        bundle-signature: skip
    "#]]
    .assert_eq(&verdict(&report));
    assert!(detail(&report, "versions").contains(&version()));
    assert!(detail(&report, "repository-url").contains("GITHUB_REPOSITORY `kaelio/ktx`"));

    // The human form ends with READY; read-only: dist is untouched.
    let before = std::fs::read(tmp.path().join("dist/manifest.json")).unwrap();
    let out = run(xtask()
        .arg("release-readiness")
        .arg("--root")
        .arg(tmp.path()));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("PASS tarball-rebuild:") && stdout.contains("READY:"),
        "{stdout}"
    );
    // The copy has no build of its own (no <root>/target/release/ktx) and none was named.
    assert!(
        stdout.contains("SKIP native-binary: no built binary at"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(tmp.path().join("dist/manifest.json")).unwrap(),
        before
    );
}

#[test]
fn a_changed_byte_in_the_tarball_fails() {
    let tmp = project_copy();
    let tgz = tmp
        .path()
        .join(format!("dist/npm/kaelio-ktx-{}.tgz", version()));
    let mut bytes = std::fs::read(&tgz).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&tgz, bytes).unwrap();
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(!ok);
    // Whether the flipped byte still inflates (then the checks that read the package pass) or
    // not depends on the tarball's content, so no snapshot of every check: these two must fail.
    assert_eq!(status(&report, "artifacts-manifest"), "fail", "{report:#}");
    assert!(detail(&report, "artifacts-manifest").contains("does not match dist/manifest.json"));
    assert_eq!(status(&report, "tarball-rebuild"), "fail", "{report:#}");
}

#[test]
fn an_edited_package_json_version_fails() {
    let tmp = project_copy();
    edit_json(&tmp.path().join("npm-package/package.json"), |pj| {
        pj["version"] = "9.9.9".into()
    });
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(!ok);
    expect![[r#"
        ready: false
        policy: pass
        versions: fail
        dist-tag: pass
        git-tag: skip
        artifacts-manifest: pass
        native-binary: skip
        tarball-rebuild: fail
        tarball-size: pass
        repository-url: pass
        policy-mode: pass
        bundle-signature: skip
    "#]]
    .assert_eq(&verdict(&report));
    assert!(
        detail(&report, "versions").contains("npm-package/package.json version is `9.9.9`"),
        "{}",
        detail(&report, "versions")
    );
}

#[test]
fn a_stale_version_py_fails() {
    // `runtime.info` and the daemon's handshake report `__version__`: it must match too.
    let tmp = project_copy();
    let path = tmp.path().join("python-runtime/src/ktx_daemon/_version.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, _) = text.split_once("__version__").unwrap();
    std::fs::write(&path, format!("{head}__version__ = \"9.9.9\"\n")).unwrap();
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(!ok);
    expect![[r#"
        ready: false
        policy: pass
        versions: fail
        dist-tag: pass
        git-tag: skip
        artifacts-manifest: pass
        native-binary: skip
        tarball-rebuild: fail
        tarball-size: pass
        repository-url: pass
        policy-mode: pass
        bundle-signature: skip
    "#]]
    .assert_eq(&verdict(&report));
    assert!(
        detail(&report, "versions").contains("_version.py __version__: found `9.9.9`"),
        "{}",
        detail(&report, "versions")
    );
}

#[test]
fn the_wrong_dist_tag_for_a_prerelease_fails() {
    assert!(
        version().contains('-'),
        "this test assumes a prerelease version"
    );
    let tmp = project_copy();
    edit_json(&tmp.path().join("release-policy.json"), |p| {
        p["npm"]["tag"] = "latest".into()
    });
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(!ok);
    // Only `dist-tag` fails.
    expect![[r#"
        ready: false
        policy: pass
        versions: pass
        dist-tag: fail
        git-tag: skip
        artifacts-manifest: pass
        native-binary: skip
        tarball-rebuild: pass
        tarball-size: pass
        repository-url: pass
        policy-mode: pass
        bundle-signature: skip
    "#]]
    .assert_eq(&verdict(&report));
    assert!(detail(&report, "dist-tag").contains("must publish under `next`"));
}

#[test]
fn a_missing_repository_url_fails() {
    let tmp = project_copy();
    edit_json(&tmp.path().join("npm-package/package.json"), |pj| {
        pj.as_object_mut().unwrap().remove("repository");
    });
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(!ok);
    expect![[r#"
        ready: false
        policy: pass
        versions: pass
        dist-tag: pass
        git-tag: skip
        artifacts-manifest: pass
        native-binary: skip
        tarball-rebuild: fail
        tarball-size: pass
        repository-url: fail
        policy-mode: pass
        bundle-signature: skip
    "#]]
    .assert_eq(&verdict(&report));
    assert!(
        detail(&report, "repository-url").contains("npm-package/package.json has no `repository`")
    );
}

#[test]
fn a_repository_other_than_github_repository_fails() {
    let tmp = project_copy();
    let (ok, report) = readiness(tmp.path(), &[], &[("GITHUB_REPOSITORY", "someone/fork")]);
    assert!(!ok);
    expect![[r#"
        ready: false
        policy: pass
        versions: pass
        dist-tag: pass
        git-tag: skip
        artifacts-manifest: pass
        native-binary: skip
        tarball-rebuild: pass
        tarball-size: pass
        repository-url: fail
        policy-mode: pass
        bundle-signature: skip
    "#]]
    .assert_eq(&verdict(&report));
    assert!(detail(&report, "repository-url").contains("GITHUB_REPOSITORY is `someone/fork`"));
}

#[test]
fn an_invalid_policy_fails_naming_the_key() {
    let tmp = project_copy();
    edit_json(&tmp.path().join("release-policy.json"), |p| {
        p["npm"]["tag"] = "v1".into()
    });
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(!ok);
    expect![[r#"
        ready: false
        policy: fail
        versions: pass
        dist-tag: fail
        git-tag: skip
        artifacts-manifest: pass
        native-binary: skip
        tarball-rebuild: pass
        tarball-size: pass
        repository-url: pass
        policy-mode: fail
        bundle-signature: skip
    "#]]
    .assert_eq(&verdict(&report));
    assert!(
        detail(&report, "policy").contains("npm.tag: `v1` is a valid SemVer range"),
        "{report:#}"
    );

    let other = tmp.path().join("other-policy.json");
    std::fs::write(&other, r#"{"schemaVersion": 1, "surprise": true}"#).unwrap();
    let (ok, report) = readiness(tmp.path(), &["--policy", other.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        detail(&report, "policy").contains("surprise: unknown field"),
        "{report:#}"
    );
}

#[test]
fn policy_mode_requirements_are_checked() {
    let tmp = project_copy();
    edit_json(&tmp.path().join("release-policy.json"), |p| {
        p["releaseMode"] = "npm-public-release-ready".into();
    });
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(!ok);
    expect![[r#"
        ready: false
        policy: pass
        versions: pass
        dist-tag: pass
        git-tag: skip
        artifacts-manifest: pass
        native-binary: skip
        tarball-rebuild: pass
        tarball-size: pass
        repository-url: pass
        policy-mode: fail
        bundle-signature: skip
    "#]]
    .assert_eq(&verdict(&report));
    assert!(detail(&report, "policy-mode").contains("requires npm.publish true"));
}

#[test]
fn a_head_tag_other_than_the_version_fails() {
    let tmp = project_copy();
    let git = |args: &[&str]| {
        let out = run(Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(tmp.path()));
        assert!(out.status.success());
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "release"]);
    git(&["tag", &format!("v{}", version())]);
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(ok, "{report:#}");
    assert_eq!(status(&report, "git-tag"), "pass");

    git(&["tag", "v9.9.9"]);
    let (ok, report) = readiness(tmp.path(), &[], &[]);
    assert!(!ok);
    assert_eq!(status(&report, "git-tag"), "fail");
    assert!(
        detail(&report, "git-tag").contains("HEAD is tagged `v9.9.9`"),
        "{report:#}"
    );
}

#[test]
fn a_packed_binary_other_than_the_built_one_fails() {
    let tmp = project_copy();
    // The binary "just built" differs from the one in the tarball by one byte.
    let mut other = std::fs::read(native_binary()).unwrap();
    *other.last_mut().unwrap() ^= 0x01;
    let built = tmp.path().join("target/release/ktx");
    std::fs::create_dir_all(built.parent().unwrap()).unwrap();
    std::fs::write(&built, &other).unwrap();
    let packed = format!(
        "package/native/{}/ktx",
        match (std::env::consts::OS, std::env::consts::ARCH) {
            ("linux", "x86_64") => "linux-x64",
            ("linux", "aarch64") => "linux-arm64",
            ("macos", "x86_64") => "darwin-x64",
            ("macos", "aarch64") => "darwin-arm64",
            other => panic!("no npm target for {other:?}"),
        }
    );

    // The default: `<root>/target/release/ktx` (CARGO_TARGET_DIR relative to the root).
    let (ok, report) = readiness(tmp.path(), &[], &[("CARGO_TARGET_DIR", "target")]);
    assert!(!ok, "a tarball packed from another build must not be ready");
    assert_eq!(status(&report, "native-binary"), "fail", "{report:#}");
    let d = detail(&report, "native-binary");
    assert!(
        d.contains(&packed)
            && d.contains(&format!("not the binary just built at {}", built.display()))
            && d.contains("run `cargo xtask dist`"),
        "{d}"
    );
    let failing: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["native-binary"], "{report:#}");

    // The same with --native, and a named binary that does not exist fails too.
    let (ok, report) = readiness(tmp.path(), &["--native", built.to_str().unwrap()], &[]);
    assert!(!ok);
    assert_eq!(status(&report, "native-binary"), "fail", "{report:#}");
    let missing = tmp.path().join("no-such-ktx");
    let (ok, report) = readiness(tmp.path(), &["--native", missing.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        detail(&report, "native-binary").contains(&format!(
            "cannot read the built binary {}",
            missing.display()
        )),
        "{report:#}"
    );

    // The binary that was packed passes.
    std::fs::copy(native_binary(), &built).unwrap();
    let (ok, report) = readiness(tmp.path(), &[], &[("CARGO_TARGET_DIR", "target")]);
    assert!(ok, "{report:#}");
    assert_eq!(status(&report, "native-binary"), "pass", "{report:#}");
}

#[test]
fn a_development_signed_bundle_in_dist_fails() {
    let tmp = project_copy();
    let native = native_binary().to_str().unwrap();
    // The real build, signed with the development key (the wheel is cached under target/).
    let out = run(xtask()
        .env_remove("KTX_BUNDLE_SIGNING_KEY")
        .args(["bundle", "lang-python", "--out"])
        .arg(tmp.path().join("dist/bundles")));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEVELOPMENT key ktx-dev-1"));
    let (ok, report) = readiness(
        tmp.path(),
        &["--native", native],
        &[("GITHUB_REPOSITORY", "kaelio/ktx")],
    );
    assert!(!ok);
    assert_eq!(
        report["checks"].as_array().unwrap().last().unwrap()["status"],
        "fail"
    );
    let d = detail(&report, "bundle-signature");
    assert!(
        d.contains("lang-python@0.1.0 is signed with the development key ktx-dev-1"),
        "{d}"
    );
    // Every other check still passes: the bundle is the only reason.
    assert_eq!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .count(),
        1
    );
}
