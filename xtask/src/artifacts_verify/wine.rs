//! `cargo xtask artifacts-verify --target win32-x64`: the Windows binary, run under Wine
//! ([`crate::wine`]) on this Linux machine.
//!
//! The binary is the one in the tarball (`--dist DIR`: `native/win32-x64/ktx.exe`, after the
//! dist checksums are verified), else a fresh `cargo zigbuild` of the target (what `cargo
//! xtask dist --targets win32-x64` packs). Checks, in order, the first failure stopping:
//!
//! 1. `ktx.exe --version` prints `ktx <version>`;
//! 2. `ktx.exe runtime status --json` on an empty runtime root: `kind` `missing`, the root as
//!    a plain Windows path (no `\\?\` prefix);
//! 3. `ktx.exe runtime doctor` with no Windows Python reachable (none exists under Wine): a
//!    FAIL, exit 1, with Windows hints (`py`, PowerShell's `$env:` syntax), never sh's `export`;
//! 4. ktx-base's unit tests (file lock, process identity, trust) for x86_64-pc-windows-gnu,
//!    with Wine as cargo's runner and mingw-w64 as the linker.
//!
//! What cannot run here: anything that installs a runtime (there is no Windows CPython under
//! Wine, and uv would download one); the native Windows CI runner covers that.

use super::report;
use crate::wine::Wine;
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The npm target this module verifies.
pub const TARGET: &str = "win32-x64";
/// Its Rust triple.
const TRIPLE: &str = "x86_64-pc-windows-gnu";
/// Bound for one `ktx.exe` run under Wine (the first one in a cold prefix takes seconds).
const QUICK: Duration = Duration::from_secs(120);
/// Bound for building and running the unit tests.
const TESTS: Duration = Duration::from_secs(1800);

/// Runs every check; `dist` is `--dist`, when given.
pub fn run(root: &Path, dist: Option<&Path>) -> Result<()> {
    let total = Instant::now();
    let wine = timed("wine prefix + ProcessPrng stub", || Wine::prepare(root))?;
    let result = checks(root, dist, &wine);
    wine.stop_server();
    result?;
    println!(
        "artifacts-verify --target {TARGET}: all checks passed in {:.2?}",
        total.elapsed()
    );
    Ok(())
}

fn checks(root: &Path, dist: Option<&Path>, wine: &Wine) -> Result<()> {
    let work = crate::workspace::target_dir(root).join("wine").join("work");
    let (exe, version) = timed("ktx.exe (win32-x64)", || binary(root, dist, &work))?;
    println!("      {}", exe.display());
    let runtime_root = tempfile::Builder::new()
        .prefix("runtime-")
        .tempdir_in(&work)
        .context("cannot create a runtime root for the Wine checks")?;
    let ktx = |args: &[&str]| {
        let mut cmd = wine.command(&exe);
        cmd.args(args)
            .env("KTX_RUNTIME_ROOT", windows_path(runtime_root.path()))
            .env_remove("KTX_PYTHON")
            .env_remove("KTX_UV");
        cmd
    };
    timed("ktx.exe --version", || {
        let done = crate::proc::run(&mut ktx(&["--version"]), QUICK)?;
        let want = format!("ktx {version}");
        ensure!(
            done.success() && done.stdout.trim() == want,
            "`ktx.exe --version` printed {:?} ({}), expected {want:?}\n{}",
            done.stdout,
            done.status,
            done.stderr_tail()
        );
        Ok(())
    })?;
    timed("ktx.exe runtime status --json: missing", || {
        let done = crate::proc::run(&mut ktx(&["runtime", "status", "--json"]), QUICK)?;
        ensure!(
            done.success(),
            "`runtime status --json` failed ({}):\n{}",
            done.status,
            done.stderr_tail()
        );
        check_status(&done.stdout, &windows_path(runtime_root.path()))
    })?;
    timed("ktx.exe runtime doctor: FAIL with Windows hints", || {
        let done = crate::proc::run(&mut ktx(&["runtime", "doctor"]), QUICK)?;
        check_doctor(done.code(), &format!("{}{}", done.stdout, done.stderr))
    })?;
    timed(
        "ktx-base unit tests under wine (lock, process, trust)",
        || unit_tests(root, wine),
    )?;
    Ok(())
}

/// The exe to run and the version it must report.
fn binary(root: &Path, dist: Option<&Path>, work: &Path) -> Result<(PathBuf, String)> {
    crate::fsx::create_dir_all(work)?;
    match dist {
        Some(dist) => {
            let manifest = crate::dist_manifest::DistManifest::load(dist)?;
            manifest.verify(dist)?;
            let tgz = dist.join(&manifest.artifact("npm")?.path);
            let files = crate::npm_tarball::read_files(&crate::fsx::read(&tgz)?)?;
            let rel = crate::pack_npm::native_rel_path(TARGET);
            let entry = files.get(&rel).with_context(|| {
                format!(
                    "{} has no {rel}: build it with `cargo xtask dist --targets host,{TARGET}`",
                    tgz.display()
                )
            })?;
            let exe = work.join("ktx.exe");
            std::fs::write(&exe, &entry.data)
                .with_context(|| format!("cannot write {}", exe.display()))?;
            Ok((exe, manifest.version.clone()))
        }
        None => {
            let target = crate::dist::cross::parse_targets(TARGET)?
                .pop()
                .context("no win32-x64 target")?;
            let built = crate::dist::cross::build(root, &target)?;
            Ok((built, crate::version::workspace_version(root)?))
        }
    }
}

/// `Z:\...`: how a Windows program under Wine names a path of this machine (Wine maps `Z:` to
/// `/`).
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display().to_string().replace('/', "\\"))
}

/// `runtime status --json` on an empty root: schemaVersion 1, `kind` `missing`, the root as
/// given (a Windows path without `\\?\`).
fn check_status(stdout: &str, root: &str) -> Result<()> {
    let v: Value = serde_json::from_str(stdout)
        .with_context(|| format!("`runtime status --json` printed no JSON: {stdout:?}"))?;
    ensure!(v["schemaVersion"] == 1, "no schemaVersion 1 in {v}");
    ensure!(
        v["kind"] == "missing",
        "`kind` is {}, expected \"missing\"",
        v["kind"]
    );
    let text = v.to_string();
    ensure!(!text.contains(r"\\\\?\\"), "a `\\\\?\\` path in {text}");
    let shown = v["layout"]["runtimeRoot"].as_str().unwrap_or_default();
    ensure!(
        shown.eq_ignore_ascii_case(root),
        "runtimeRoot is {shown:?}, expected {root:?}"
    );
    Ok(())
}

/// `runtime doctor` with no Python: exit 1, a FAIL, hints for Windows users.
fn check_doctor(code: Option<i32>, output: &str) -> Result<()> {
    ensure!(
        code == Some(1),
        "`runtime doctor` exited {code:?}, expected 1 (a FAIL): {output}"
    );
    ensure!(
        output.contains("FAIL"),
        "no FAIL in `runtime doctor`: {output}"
    );
    for needle in ["py", "$env:"] {
        ensure!(
            output.contains(needle),
            "`runtime doctor` gives no Windows hint ({needle:?} missing): {output}"
        );
    }
    ensure!(
        !output.contains("export "),
        "`runtime doctor` gives a sh hint (`export`) on Windows: {output}"
    );
    Ok(())
}

/// `cargo test -p ktx-base --target x86_64-pc-windows-gnu` with Wine as the runner.
fn unit_tests(root: &Path, wine: &Wine) -> Result<()> {
    crate::dist::cross::ensure_rust_target(TRIPLE)?;
    let mut cmd = std::process::Command::new(crate::cargo());
    cmd.args(["test", "-p", "ktx-base", "--target", TRIPLE])
        .current_dir(root)
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", "wine")
        .env(
            "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER",
            crate::wine::MINGW_GCC,
        );
    wine.env(&mut cmd);
    let done = crate::proc::run(&mut cmd, TESTS)?;
    if !done.success() {
        bail!(
            "ktx-base's tests failed under Wine ({}):\n{}\n{}",
            done.status,
            crate::proc::tail(&done.stdout, 40),
            done.stderr_tail()
        );
    }
    let passed: usize = done
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    ensure!(passed > 0, "no test ran under Wine:\n{}", done.stdout);
    println!("      {passed} tests passed under Wine");
    Ok(())
}

fn timed<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    match f() {
        Ok(v) => {
            report("ok", name, t.elapsed());
            Ok(v)
        }
        Err(e) => {
            report("FAIL", name, t.elapsed());
            Err(e.context(format!("step `{name}` failed")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wine_sees_this_machine_under_z() {
        assert_eq!(windows_path(Path::new("/tmp/a b/r")), r"Z:\tmp\a b\r");
    }

    #[test]
    fn status_must_be_missing_with_the_plain_root() {
        let root = r"Z:\tmp\r";
        let ok = r#"{"schemaVersion":1,"kind":"missing","layout":{"runtimeRoot":"Z:\\tmp\\r"}}"#;
        check_status(ok, root).unwrap();
        let ready = ok.replace("missing", "ready");
        assert!(check_status(&ready, root).is_err());
        let prefixed = ok.replace(r"Z:\\tmp", r"\\\\?\\Z:\\tmp");
        assert!(check_status(&prefixed, root).is_err());
        assert!(check_status("not json", root).is_err());
    }

    #[test]
    fn doctor_must_fail_with_windows_hints_only() {
        let good =
            "FAIL python: none found\n  fix: install it (`py -3`), or `$env:KTX_PYTHON=\"C:\\p\"`";
        check_doctor(Some(1), good).unwrap();
        assert!(check_doctor(Some(0), good).is_err());
        assert!(check_doctor(Some(1), "PASS all good").is_err());
        let sh = format!("{good} or `export KTX_PYTHON=/p`");
        assert!(check_doctor(Some(1), &sh).is_err());
    }
}
