//! Tests of multi-platform packing: `--native <npm-target>=PATH`, the per-target checksums in
//! package.json and dist/manifest.json, and the launcher's platform/arch -> binary mapping run
//! by real node with `process.platform`/`process.arch` redefined by a `--require` preload.

use super::*;

/// A stand-in binary for `target` (packing never executes it; the launcher tests do, on this
/// host, so it is a script naming the target it stands for).
fn fake_for(dir: &Path, target: &str) -> PathBuf {
    let p = dir.join(format!("fake-{target}"));
    std::fs::write(&p, format!("#!/bin/sh\necho \"ran {target} $*\"\n")).unwrap();
    testutil::set_executable(&p);
    p
}

/// Packs one stand-in per target through `pack-npm`'s own flag parsing (`--native T=PATH`
/// each) into `<tmp>/<name>`; returns the tarball's path.
fn pack_cli(tmp: &Path, name: &str, targets: &[&str]) -> Result<PathBuf> {
    let dist = tmp.join(name);
    let args = Args {
        native: targets
            .iter()
            .map(|t| format!("{t}={}", fake_for(tmp, t).display()))
            .collect(),
        dist: Some(dist.clone()),
        root: None,
        bundles: Some(super::small_bundle(&tmp.join(format!("{name}-src")))),
    };
    run(&args)?;
    let m = DistManifest::load(&dist)?;
    Ok(dist.join(&m.artifact("npm")?.path))
}

#[test]
fn native_flags_pack_each_target_with_its_checksum_in_package_json_and_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let tgz = pack_cli(tmp.path(), "a", &["win32-x64", "linux-x64"]).unwrap();
    let bytes = std::fs::read(&tgz).unwrap();
    let rows = read_tgz(&bytes);
    let natives: Vec<(&str, u32)> = rows
        .iter()
        .filter(|r| r.0.starts_with("package/native/"))
        .map(|r| (r.0.as_str(), r.1))
        .collect();
    assert_eq!(
        natives,
        [
            ("package/native/linux-x64/ktx", 0o755),
            ("package/native/win32-x64/ktx.exe", 0o755)
        ]
    );
    let pj: serde_json::Value = serde_json::from_slice(&rows[0].7).unwrap();
    let m = DistManifest::load(&tmp.path().join("a")).unwrap();
    assert_eq!(m.native.len(), 2, "{m:?}");
    for n in &m.native {
        let data = std::fs::read(tmp.path().join(format!("fake-{}", n.target))).unwrap();
        let sha = crate::fsx::sha256_hex(&data);
        assert_eq!(
            pj["ktx"]["native"][&n.target],
            json!({"path": n.path, "sha256": sha}),
            "{}",
            n.target
        );
        assert_eq!(
            (n.bytes, n.sha256.as_str()),
            (data.len() as u64, sha.as_str())
        );
        let packed = rows.iter().find(|r| r.0 == format!("package/{}", n.path));
        assert_eq!(packed.map(|r| &r.7), Some(&data), "{}", n.target);
    }
    assert_eq!(
        (pj["os"].clone(), pj["cpu"].clone()),
        (json!(["linux", "win32"]), json!(["x64"]))
    );
    // The order of the flags does not change a byte.
    let again = pack_cli(tmp.path(), "b", &["linux-x64", "win32-x64"]).unwrap();
    assert_eq!(std::fs::read(again).unwrap(), bytes);
    assert_eq!(
        std::fs::read(tmp.path().join("a/manifest.json")).unwrap(),
        std::fs::read(tmp.path().join("b/manifest.json")).unwrap()
    );
}

#[test]
fn native_flag_values_are_parsed_and_bad_ones_refused() {
    let host = host_npm_target().unwrap();
    assert_eq!(
        parse_native_arg("target/release/ktx").unwrap(),
        (host.clone(), PathBuf::from("target/release/ktx"))
    );
    assert_eq!(
        parse_native_arg("./a=b/ktx").unwrap(),
        (host, PathBuf::from("./a=b/ktx"))
    );
    assert_eq!(
        parse_native_arg("darwin-arm64=out/ktx").unwrap(),
        ("darwin-arm64".to_string(), PathBuf::from("out/ktx"))
    );
    for (arg, expect) in [
        (
            "linux-x86=ktx",
            "unknown npm target `linux-x86`: use one of linux-x64, linux-arm64",
        ),
        ("darwin=ktx", "unknown npm target `darwin`"),
        ("win32-x64=", "no path after `=`"),
    ] {
        let err = format!("{:#}", parse_native_arg(arg).unwrap_err());
        assert!(err.contains(expect), "{arg}: {err}");
    }

    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope/ktx.exe");
    let fake = fake_for(tmp.path(), "linux-x64");
    let cases: [(Vec<String>, String); 3] = [
        (
            vec![format!("win32-x64={}", missing.display())],
            format!(
                "native ktx binary for win32-x64 not found at {}",
                missing.display()
            ),
        ),
        (
            vec![format!("freebsd-x64={}", fake.display())],
            "unknown npm target `freebsd-x64`".into(),
        ),
        (
            vec![
                format!("linux-x64={}", fake.display()),
                format!("linux-x64={}", fake.display()),
            ],
            "two native binaries for linux-x64".into(),
        ),
    ];
    for (native, expect) in cases {
        let dist = tmp.path().join("dist");
        let err = format!(
            "{:#}",
            run(&Args {
                native: native.clone(),
                dist: Some(dist.clone()),
                root: None,
                bundles: Some(super::small_bundle(tmp.path())),
            })
            .unwrap_err()
        );
        assert!(err.contains(&expect), "{native:?}: {err}");
        assert!(testutil::files_under(&dist).is_empty(), "{native:?}");
    }
}

/// Every `process.platform` and `process.arch` value Node documents.
const PLATFORMS: [&str; 8] = [
    "aix", "android", "darwin", "freebsd", "linux", "openbsd", "sunos", "win32",
];
const ARCHES: [&str; 12] = [
    "arm", "arm64", "ia32", "loong64", "mips", "mipsel", "ppc", "ppc64", "riscv64", "s390",
    "s390x", "x64",
];

/// Every documented pair (`all`), or the six ktx targets plus two it is not built for.
fn pairs(all: bool) -> Vec<(&'static str, &'static str)> {
    if all {
        return PLATFORMS
            .iter()
            .flat_map(|p| ARCHES.iter().map(move |a| (*p, *a)))
            .collect();
    }
    let mut v: Vec<_> = NPM_TARGETS
        .iter()
        .filter_map(|t| t.split_once('-'))
        .collect();
    v.extend([("freebsd", "x64"), ("linux", "ia32")]);
    v
}

/// Runs the unpacked launcher of `tgz` once per platform/arch pair, as Node on that pair
/// would see itself (a preload redefines `process.platform` and `process.arch`); returns
/// (pair, exit code, stdout, stderr) per pair.
fn launcher_on(
    tmp: &Path,
    tgz: &Path,
    pairs: &[(&str, &str)],
) -> Vec<(String, Option<i32>, String, String)> {
    let unpacked = tmp.join(format!(
        "unpacked-{}",
        tgz.file_name().unwrap().to_string_lossy()
    ));
    let bytes = std::fs::read(tgz).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()))
        .unpack(&unpacked)
        .unwrap();
    let launcher = unpacked.join("package/bin/ktx.js");
    let preload = tmp.join("as-platform.js");
    std::fs::write(
        &preload,
        "Object.defineProperty(process, 'platform', { value: process.env.AS_PLATFORM });\n\
         Object.defineProperty(process, 'arch', { value: process.env.AS_ARCH });\n",
    )
    .unwrap();
    let mut out = Vec::new();
    // A few nodes at a time: the pairs are many and each node start is the cost.
    for chunk in pairs.chunks(6) {
        let children: Vec<_> = chunk
            .iter()
            .map(|(p, a)| {
                let child = Command::new("node")
                    .arg("--require")
                    .arg(&preload)
                    .arg(&launcher)
                    .args(["--version", "x y"])
                    .env("AS_PLATFORM", p)
                    .env("AS_ARCH", a)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                (format!("{p}-{a}"), child)
            })
            .collect();
        for (pair, child) in children {
            let o = child.wait_with_output().unwrap();
            out.push((
                pair,
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ));
        }
    }
    out
}

/// Checks one run of [`launcher_on`]: `expect(pair)` is the target whose binary
/// must run, or None when the launcher must refuse naming `supported`.
fn check_pairs(
    runs: &[(String, Option<i32>, String, String)],
    expect: impl Fn(&str) -> Option<&'static str>,
    supported: &str,
) {
    for (pair, code, stdout, stderr) in runs {
        match expect(pair) {
            Some(target) => {
                assert_eq!(
                    (code, stdout.as_str()),
                    (&Some(0), format!("ran {target} --version x y\n").as_str()),
                    "{pair}: {stderr}"
                );
            }
            None => {
                assert_eq!(*code, Some(1), "{pair}: {stdout} {stderr}");
                assert!(stdout.is_empty(), "{pair}: {stdout}");
                assert!(
                    stderr.contains(&format!("unsupported platform {pair}: "))
                        && stderr.contains(&format!("Supported platforms: {supported}.")),
                    "{pair}: {stderr}"
                );
            }
        }
    }
}

#[test]
fn launcher_maps_every_platform_arch_pair_to_its_packed_binary() {
    let tmp = tempfile::tempdir().unwrap();
    // All six targets: each supported pair runs its own binary, every other pair is refused.
    let six = pack_cli(tmp.path(), "six", &NPM_TARGETS).unwrap();
    let own = |pair: &str| NPM_TARGETS.iter().copied().find(|t| *t == pair);
    check_pairs(
        &launcher_on(tmp.path(), &six, &pairs(true)),
        own,
        "darwin-arm64, darwin-x64, linux-arm64, linux-x64, win32-arm64, win32-x64",
    );
    // The five without win32-arm64: Windows on Arm runs the x64 binary (its emulation);
    // nothing else falls back (an arm64 Mac without Rosetta cannot run darwin-x64).
    let five = pack_cli(
        tmp.path(),
        "five",
        &[
            "linux-x64",
            "linux-arm64",
            "darwin-x64",
            "darwin-arm64",
            "win32-x64",
        ],
    )
    .unwrap();
    check_pairs(
        &launcher_on(tmp.path(), &five, &pairs(false)),
        |pair| match pair {
            "win32-arm64" => Some("win32-x64"),
            p => own(p),
        },
        "darwin-arm64, darwin-x64, linux-arm64, linux-x64, win32-x64",
    );
    // One target: the others are refused although ktx is built for them elsewhere.
    let one = pack_cli(tmp.path(), "one", &["darwin-arm64"]).unwrap();
    check_pairs(
        &launcher_on(tmp.path(), &one, &pairs(false)),
        |pair| (pair == "darwin-arm64").then_some("darwin-arm64"),
        "darwin-arm64",
    );
}
