//! Tests of the wheel builder: contents, RECORD, reproducibility, and an install into a real
//! venv.

use super::*;
use crate::testutil::{self, run_ok};
use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

fn real_wheel() -> BuiltWheel {
    build(&crate::project_root(), None).unwrap()
}

fn open(bytes: &[u8]) -> zip::ZipArchive<Cursor<&[u8]>> {
    zip::ZipArchive::new(Cursor::new(bytes)).unwrap()
}

#[test]
fn record_hashes_and_sizes_match_every_entry() {
    let w = real_wheel();
    let mut zip = open(&w.bytes);
    let mut contents = BTreeMap::new();
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        names.push(f.name().unwrap().to_string());
        contents.insert(f.name().unwrap().to_string(), data);
    }
    let record_name = names.last().unwrap().clone();
    assert!(record_name.ends_with(".dist-info/RECORD"), "{record_name}");
    let record = String::from_utf8(contents[&record_name].clone()).unwrap();
    let mut listed = Vec::new();
    for line in record.lines() {
        let parts: Vec<&str> = line.split(',').collect();
        assert_eq!(parts.len(), 3, "{line}");
        listed.push(parts[0].to_string());
        if parts[0] == record_name {
            assert_eq!((parts[1], parts[2]), ("", ""));
            continue;
        }
        let data = &contents[parts[0]];
        assert_eq!(parts[1], record_hash(data), "{line}");
        assert_eq!(parts[2], data.len().to_string(), "{line}");
        let b64 = parts[1].strip_prefix("sha256=").unwrap();
        assert!(!b64.contains(['=', '+', '/']), "not urlsafe-nopad: {b64}");
    }
    assert_eq!(listed, names, "RECORD lists every entry, in archive order");
    assert!(names
        .iter()
        .all(|n| !n.contains("__pycache__") && !n.ends_with(".pyc")));
    assert!(names.contains(&"ktx_daemon/abi.py".to_string()));
    assert!(names.contains(&"semantic_layer/__init__.py".to_string()));
}

#[test]
fn entries_are_sorted_with_dist_info_last_and_fixed_headers() {
    let w = real_wheel();
    assert_eq!(
        w.file_name,
        format!("kaelio_ktx-{}-py3-none-any.whl", w.versions.pep440)
    );
    let mut zip = open(&w.bytes);
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    let dist_info = format!("kaelio_ktx-{}.dist-info/", w.versions.pep440);
    let split = names
        .iter()
        .position(|n| n.starts_with(&dist_info))
        .unwrap();
    let (pkg, meta) = names.split_at(split);
    assert!(meta.iter().all(|n| n.starts_with(&dist_info)));
    let mut sorted = pkg.to_vec();
    sorted.sort();
    assert_eq!(pkg, &sorted[..]);
    assert_eq!(
        meta.iter()
            .map(|n| &n[dist_info.len()..])
            .collect::<Vec<_>>(),
        ["METADATA", "WHEEL", "entry_points.txt", "RECORD"]
    );
    for i in 0..zip.len() {
        let f = zip.by_index(i).unwrap();
        assert_eq!(f.unix_mode(), Some(0o100644), "{}", f.name().unwrap());
        assert_eq!(f.compression(), CompressionMethod::Deflated);
        let t = f.last_modified().unwrap();
        assert_eq!((t.year(), t.month(), t.day(), t.hour()), (1980, 1, 1, 0));
        // The "version made by" system byte is Unix (3) on every host.
        assert_eq!(f.system(), System::Unix);
        assert!(f.extra_data().is_none_or(|e| e.is_empty()));
    }
    let mut text = String::new();
    zip.by_name(&format!("{dist_info}WHEEL"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("Root-Is-Purelib: true\n") && text.contains("Tag: py3-none-any\n"));
    let mut md = String::new();
    zip.by_name(&format!("{dist_info}METADATA"))
        .unwrap()
        .read_to_string(&mut md)
        .unwrap();
    for line in [
        "Metadata-Version: 2.1\n",
        "Name: kaelio-ktx\n",
        &format!("Version: {}\n", w.versions.pep440),
        "Requires-Python: >=3.10\n",
        "Provides-Extra: local-embeddings\n",
        "Description-Content-Type: text/markdown\n",
    ] {
        assert!(md.contains(line), "METADATA lacks {line:?}:\n{md}");
    }
    assert!(md.contains("Requires-Dist: sqlglot"));
    assert!(md.contains("; extra == \"local-embeddings\"\n"));
    // Every requirement of pyproject, the extra's under its marker, and nothing else.
    let project =
        crate::pyproject::load(&crate::project_root().join("python-runtime/pyproject.toml"))
            .unwrap();
    let mut want: Vec<String> = project
        .dependencies
        .iter()
        .map(|d| format!("Requires-Dist: {d}"))
        .collect();
    for (extra, reqs) in &project.extras {
        want.extend(
            reqs.iter()
                .map(|r| format!("Requires-Dist: {r}; extra == \"{extra}\"")),
        );
    }
    let (headers, body) = md.split_once("\n\n").unwrap();
    let got: Vec<&str> = headers
        .lines()
        .filter(|l| l.starts_with("Requires-Dist:"))
        .collect();
    assert_eq!(got, want);
    assert!(want.iter().any(|r| r.contains("sentence-transformers")));
    // The description is the readme, as the message body.
    assert_eq!(body, project.readme.unwrap().0);
    let mut ep = String::new();
    zip.by_name(&format!("{dist_info}entry_points.txt"))
        .unwrap()
        .read_to_string(&mut ep)
        .unwrap();
    assert_eq!(
        ep,
        "[console_scripts]\nktx-daemon = ktx_daemon.__main__:main\n\n"
    );
}

#[test]
fn builds_are_byte_identical_and_follow_source_date_epoch() {
    let root = crate::project_root();
    let a = build(&root, None).unwrap();
    let b = build(&root, None).unwrap();
    assert_eq!(a.bytes, b.bytes);
    let c = build(&root, Some(1_700_000_000)).unwrap();
    let d = build(&root, Some(1_700_000_000)).unwrap();
    assert_eq!(c.bytes, d.bytes);
    assert_ne!(a.bytes, c.bytes);
    let mut zip = open(&c.bytes);
    let t = zip.by_index(0).unwrap().last_modified().unwrap();
    // 1700000000 = 2023-11-14T22:13:20Z
    assert_eq!(
        (
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        (2023, 11, 14, 22, 13, 20)
    );
}

#[test]
fn zip_time_clamps_and_converts() {
    let t = zip_time(Some(0)).unwrap();
    assert_eq!((t.year(), t.month(), t.day()), (1980, 1, 1));
    let t = zip_time(Some(951_782_400)).unwrap(); // 2000-02-29T00:00:00Z
    assert_eq!((t.year(), t.month(), t.day()), (2000, 2, 29));
    assert!(zip_time(Some(5_000_000_000)).is_err());
}

#[test]
fn extra_markers_combine_with_existing_markers() {
    assert_eq!(with_extra_marker("a>=1", "x"), "a>=1; extra == \"x\"");
    assert_eq!(
        with_extra_marker("a>=1 ; python_version < \"3.11\"", "x"),
        "a>=1; (python_version < \"3.11\") and extra == \"x\""
    );
}

#[test]
fn asset_manifest_matches_the_contract() {
    let w = real_wheel();
    let m: serde_json::Value = serde_json::from_slice(&asset_manifest(&w).unwrap()).unwrap();
    assert_eq!(m["schemaVersion"], 1);
    assert_eq!(m["distributionName"], "kaelio-ktx");
    assert_eq!(m["version"], w.versions.pep440.as_str());
    assert_eq!(m["cliVersion"], w.versions.semver.as_str());
    assert_eq!(m["requiresPython"], ">=3.10");
    assert_eq!(m["wheel"]["file"], w.file_name.as_str());
    assert_eq!(
        m["wheel"]["sha256"],
        crate::fsx::sha256_hex(&w.bytes).as_str()
    );
    assert_eq!(m["wheel"]["bytes"], w.bytes.len());
}

#[test]
fn bad_inputs_fail_clearly_and_write_nothing() {
    let cases: [(&str, &str, &str, &str); 3] = [
        (
            "python-runtime/pyproject.toml",
            "dependencies = [",
            "dependencies = \"sqlglot\"\nx = [",
            "`project.dependencies`",
        ),
        (
            "python-runtime/pyproject.toml",
            "[project]",
            "[project\n",
            "is not valid TOML",
        ),
        (
            "Cargo.toml",
            "version = \"0.1.0-rc.0\"",
            "version = \"1.0.0-1\"",
            "PEP 440",
        ),
    ];
    for (file, from, to, expect) in cases {
        let tmp = testutil::temp_project();
        let version = crate::version::workspace_version(&crate::project_root()).unwrap();
        let (from, to) = if file == "Cargo.toml" {
            (format!("version = \"{version}\""), to.to_string())
        } else {
            (from.to_string(), to.to_string())
        };
        testutil::edit(&tmp.path().join(file), &from, &to);
        let out = tmp.path().join("dist/python");
        let err = build(tmp.path(), None)
            .and_then(|w| write_asset_dir(&w, &out))
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(expect), "{file}: {msg}");
        if file.ends_with("pyproject.toml") {
            assert!(
                msg.contains(&tmp.path().join(file).display().to_string()),
                "{msg}"
            );
        }
        assert_eq!(
            testutil::files_under(&tmp.path().join("dist")),
            Vec::<String>::new()
        );
    }
}

/// The wheel installed into `venv` answers `runtime.info` with its version and installed the
/// `ktx-daemon` console script.
fn assert_installed(venv: &std::path::Path, w: &BuiltWheel) {
    let resp = testutil::abi_call(&testutil::venv_python(venv), "runtime.info");
    assert_eq!(resp["ok"], true, "{resp}");
    assert_eq!(
        resp["result"]["version"],
        w.versions.pep440.as_str(),
        "{resp}"
    );
    assert!(
        crate::workspace::venv_exe(venv, "ktx-daemon").exists(),
        "console script installed"
    );
}

#[test]
fn wheel_installs_with_uv_and_answers_runtime_info() {
    let w = real_wheel();
    let tmp = tempfile::tempdir().unwrap();
    let whl = tmp.path().join(&w.file_name);
    std::fs::write(&whl, &w.bytes).unwrap();
    let venv = tmp.path().join("venv");
    run_ok(
        testutil::uv()
            .args(["venv", "-q", "--python", "python3"])
            .arg(&venv)
            .env_remove("VIRTUAL_ENV"),
    );
    run_ok(
        testutil::uv()
            .args(["pip", "install", "-q", "--python"])
            .arg(testutil::venv_python(&venv))
            .arg(&whl)
            .env_remove("VIRTUAL_ENV")
            .env_remove("UV_SYSTEM_PYTHON"),
    );
    assert_installed(&venv, &w);
}

#[test]
fn wheel_installs_with_pip_and_answers_runtime_info() {
    let w = real_wheel();
    let tmp = tempfile::tempdir().unwrap();
    let whl = tmp.path().join(&w.file_name);
    std::fs::write(&whl, &w.bytes).unwrap();
    let venv = tmp.path().join("venv");
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run_ok(
        Command::new(testutil::venv_python(&venv))
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .arg(&whl)
            .env_remove("PIP_REQUIRE_VIRTUALENV"),
    );
    assert_installed(&venv, &w);
}

/// RECORD checked by an independent implementation (Python's zipfile, hashlib and base64),
/// the way installers that verify it do; `python -m zipfile -t` finds no bad entry.
#[test]
fn record_verifies_with_pythons_hashlib() {
    let w = real_wheel();
    let tmp = tempfile::tempdir().unwrap();
    let whl = tmp.path().join(&w.file_name);
    std::fs::write(&whl, &w.bytes).unwrap();
    let script = r#"
import base64, csv, hashlib, io, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
record = [n for n in names if n.endswith(".dist-info/RECORD")]
assert record == [names[-1]], names
rows = list(csv.reader(io.StringIO(z.read(record[0]).decode())))
assert sorted(r[0] for r in rows) == sorted(names), (rows, names)
for path, digest, size in rows:
    if path == record[0]:
        assert (digest, size) == ("", ""), path
        continue
    data = z.read(path)
    want = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert (digest, int(size)) == (want, len(data)), (path, digest, want)
print(len(rows))
"#;
    let out = run_ok(Command::new("python3").arg("-c").arg(script).arg(&whl));
    let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(n > 10, "{n} RECORD rows");
    let out = run_ok(
        Command::new("python3")
            .args(["-m", "zipfile", "-t"])
            .arg(&whl),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Done testing"),
        "{out:?}"
    );
}
