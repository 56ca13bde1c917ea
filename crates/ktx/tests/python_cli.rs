//! `ktx python` with the real binary, the real signed `lang-python` bundle (built by `cargo
//! xtask test` into `KTX_TEST_BUNDLE_DIR`, development-signed), the real wheel and the real
//! wasmtime from PyPI (the runtime's `sandbox` feature).
//!
//! The bundle tests (which bundle is used, refusals, the install lock) run before Python is
//! touched. The run tests drive the contract of `sandbox.run` end to end: output, exit codes,
//! every limit, every escape, `--deterministic`, the first-use compile, the daemon.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use common::{ktx_bounded, stderr_of, text, version_dir};
use ktx_runtime::messages::SANDBOX_COMPILING;
use serde_json::Value;

/// Generous: a first run installs wasmtime and compiles python.wasm (~5 s on this machine).
const LIMIT: Duration = Duration::from_secs(600);

/// The dir holding `lang-python/<version>/`, from `KTX_TEST_BUNDLE_DIR`.
fn test_bundles() -> PathBuf {
    match std::env::var_os("KTX_TEST_BUNDLE_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "KTX_TEST_BUNDLE_DIR is not set: run `cargo xtask test`, or `cargo xtask bundle lang-python --out DIR` and set KTX_TEST_BUNDLE_DIR=DIR"
        ),
    }
}

/// `ktx` with runtime root `root` and the shipped bundles in `bundles`.
fn ktx_with(root: &Path, bundles: &Path) -> assert_cmd::Command {
    let mut cmd = ktx_bounded(root, LIMIT);
    cmd.env("KTX_BUNDLE_DIR", bundles);
    cmd
}

/// A runtime with the `sandbox` feature, shared by the run tests (installed once per process,
/// serialised across processes by ktx's install lock).
fn sandbox_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ktx-sandbox-runtime");
        fs::create_dir_all(&dir).unwrap();
        let out = ktx_with(&dir, &test_bundles())
            .args(["runtime", "install", "--feature", "sandbox", "--yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sandbox install failed: {}",
            stderr_of(&out)
        );
        dir
    })
}

/// `ktx python ARGS` on the shared sandbox runtime.
fn python(args: &[&str]) -> Output {
    ktx_with(sandbox_root(), &test_bundles())
        .arg("python")
        .args(args)
        .output()
        .unwrap()
}

/// `ktx python --json ARGS`: the document, after checking its keys and their order.
fn python_json(args: &[&str]) -> (Value, Output) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = python(&all);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            text(&out.stdout),
            stderr_of(&out)
        )
    });
    // The documented keys, all present, in this order in the text (serde_json's map sorts).
    let keys = [
        "schemaVersion",
        "status",
        "exitCode",
        "stdout",
        "stderr",
        "stdoutTruncated",
        "stderrTruncated",
        "wallMs",
        "fuel",
    ];
    assert_eq!(doc.as_object().unwrap().len(), keys.len(), "{doc}");
    let raw = text(&out.stdout);
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            raw.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("no {k}: {raw}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "key order: {raw}");
    assert_eq!(
        doc["exitCode"].as_i64(),
        out.status.code().map(i64::from),
        "the document's exitCode is the process's: {doc}"
    );
    (doc, out)
}

// ------------------------------------------------------------------ bundles (no Python yet)

/// A copy of the test bundle dir in `into`, for tests that damage it.
fn copy_bundles(into: &Path) -> PathBuf {
    let src = test_bundles().join("lang-python");
    let dst = into.join("bundles").join("lang-python");
    for version in fs::read_dir(&src).unwrap() {
        let version = version.unwrap();
        let to = dst.join(version.file_name());
        fs::create_dir_all(&to).unwrap();
        for f in fs::read_dir(version.path()).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    into.join("bundles")
}

fn the_only_version(bundles: &Path) -> PathBuf {
    let mut versions: Vec<_> = fs::read_dir(bundles.join("lang-python"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");
    versions.pop().unwrap()
}

#[test]
fn without_the_runtime_and_no_input_the_refusal_names_the_sandbox_install() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ktx_with(tmp.path(), &test_bundles())
        .args(["--no-input", "python", "-c", "print(1+1)"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ktx runtime install --feature sandbox"),
        "{err}"
    );
    // The shipped bundle was installed (with its signature checked) before the runtime was
    // looked at: the next run only needs the runtime.
    let installed = version_dir(tmp.path()).join("bundles/lang-python");
    let v = the_only_version(installed.parent().unwrap());
    ktx_bundle::verify_dir(&v, &ktx_bundle::Keyring::builtin()).unwrap();
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn a_tampered_shipped_bundle_is_refused_and_nothing_is_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let bundles = copy_bundles(tmp.path());
    let wasm = the_only_version(&bundles).join("python.wasm");
    let mut bytes = fs::read(&wasm).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&wasm, &bytes).unwrap();
    let root = tmp.path().join("root");
    let out = ktx_with(&root, &bundles)
        .args(["--yes", "python", "-c", "print(1+1)"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{} has sha256", wasm.display())),
        "names the file: {err}"
    );
    let lang = version_dir(&root).join("bundles/lang-python");
    let left: Vec<_> = fs::read_dir(&lang)
        .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing installed: {left:?}");
    assert!(
        !version_dir(&root).join("manifest.json").exists(),
        "no runtime was installed for a refused bundle"
    );
}

#[test]
fn an_installed_bundle_that_no_longer_verifies_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    // Install it (the refusal about the runtime comes after the bundle install).
    let out = ktx_with(&root, &test_bundles())
        .args(["--no-input", "python", "-c", "pass"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let installed = the_only_version(&version_dir(&root).join("bundles"));
    // Truncate the installed wasm: the signed size no longer matches.
    let wasm = installed.join("python.wasm");
    let f = fs::OpenOptions::new().write(true).open(&wasm).unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    let out = ktx_with(&root, &test_bundles())
        .args(["--no-input", "python", "-c", "pass"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not verify"), "{err}");
    assert!(
        err.contains(&format!("{} is 1000 bytes", wasm.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("Remove {}", installed.display())),
        "{err}"
    );
}

#[test]
fn no_shipped_bundle_says_how_to_get_one() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let out = ktx_with(&tmp.path().join("root"), &empty)
        .args(["--no-input", "python", "-c", "pass"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no lang-python bundle is installed"), "{err}");
    assert!(
        err.contains("ktx bundle install lang-python@VERSION --registry"),
        "{err}"
    );
}

#[test]
fn two_ktx_at_once_install_the_bundle_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let spawn = || {
        let mut cmd = common::ktx_std(&root);
        cmd.env("KTX_BUNDLE_DIR", test_bundles())
            .args(["--no-input", "python", "-c", "pass"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let err = stderr_of(&out);
        // Both get past the bundle (one installed it, the other found it) to the runtime.
        assert!(
            err.contains("ktx runtime install --feature sandbox"),
            "{err}"
        );
    }
    let installed = the_only_version(&version_dir(&root).join("bundles"));
    ktx_bundle::verify_dir(&installed, &ktx_bundle::Keyring::builtin()).unwrap();
    let leftovers: Vec<_> = fs::read_dir(installed.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary dirs left: {leftovers:?}"
    );
}

#[test]
fn usage_errors_exit_2_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, want) in [
        (&["python"][..], "nothing to run"),
        (
            &["python", "-c", "pass", "--memory", "1MiB"][..],
            "between 16MiB and 4GiB",
        ),
        (
            &["python", "-c", "pass", "--memory", "lots"][..],
            "not a size",
        ),
        (
            &["python", "-c", "pass", "--timeout", "0"][..],
            "not a number of seconds",
        ),
        (
            &["python", "-c", "pass", "--max-output", "0"][..],
            "at least 1 byte",
        ),
    ] {
        let out = ktx_with(tmp.path(), &test_bundles())
            .args(args)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(
        !version_dir(tmp.path()).exists(),
        "a usage error touches nothing"
    );
}

// ------------------------------------------------------------------ runs (need the host)

#[test]
fn print_one_plus_one_prints_2() {
    let out = python(&["-c", "print(1+1)"]);
    assert_eq!(text(&out.stdout), "2\n", "{}", stderr_of(&out));
    assert_eq!(out.status.code(), Some(0));
    let cache = version_dir(sandbox_root()).join("sandbox-cache");
    assert!(cache.is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the cache dir is private");
    }
}

#[test]
fn the_first_run_says_it_compiles_and_the_next_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let run = || {
        ktx_with(&root, &test_bundles())
            .args(["--yes", "python", "-c", "print('hi')"])
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(text(&first.stdout), "hi\n", "{}", stderr_of(&first));
    assert!(
        stderr_of(&first).contains(SANDBOX_COMPILING),
        "{}",
        stderr_of(&first)
    );
    let second = run();
    assert_eq!(text(&second.stdout), "hi\n", "{}", stderr_of(&second));
    assert!(
        !stderr_of(&second).contains(SANDBOX_COMPILING),
        "{}",
        stderr_of(&second)
    );
}

#[test]
fn json_reports_ok_with_the_guest_output() {
    let (doc, _) = python_json(&[
        "-c",
        "import sys; print('out'); print('err', file=sys.stderr)",
    ]);
    assert_eq!(doc["schemaVersion"], 1);
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["exitCode"], 0);
    assert_eq!(doc["stdout"], "out\n");
    assert_eq!(doc["stderr"], "err\n");
    assert_eq!(doc["stdoutTruncated"], false);
    assert!(doc["wallMs"].as_f64().unwrap() > 0.0);
    assert!(doc["fuel"].is_null() || doc["fuel"].is_u64(), "{doc}");
}

#[test]
fn exit_codes_and_exceptions_are_the_guests() {
    let (doc, _) = python_json(&["-c", "raise SystemExit(3)"]);
    assert_eq!(
        (doc["status"].as_str(), doc["exitCode"].as_i64()),
        (Some("exit"), Some(3))
    );
    let out = python(&["-c", "1/0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("ZeroDivisionError"), "{err}");
    assert!(err.contains("File \"<string>\""), "{err}");
}

#[test]
fn a_script_gets_its_arguments_its_name_and_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("echo_args.py");
    fs::write(
        &script,
        "import sys\nprint(sys.argv[1:])\nprint(sys.stdin.read().upper())\nraise ValueError('boom')\n",
    )
    .unwrap();
    let input = tmp.path().join("in.txt");
    fs::write(&input, "hello stdin").unwrap();
    let script_s = script.to_str().unwrap();
    let out = python(&[
        "--input",
        input.to_str().unwrap(),
        script_s,
        "a",
        "--json",
        "-x",
    ]);
    assert_eq!(
        text(&out.stdout),
        "['a', '--json', '-x']\nHELLO STDIN\n",
        "{}",
        stderr_of(&out)
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains(&format!("File \"{script_s}\"")), "{err}");
    assert!(err.contains("ValueError: boom"), "{err}");

    // `--input -` passes ktx's own stdin.
    let out = ktx_with(sandbox_root(), &test_bundles())
        .args([
            "python",
            "--input",
            "-",
            "-c",
            "import sys; print(len(sys.stdin.buffer.read()))",
        ])
        .write_stdin(vec![0u8; 1000])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "1000\n", "{}", stderr_of(&out));
}

#[test]
fn a_cpu_loop_and_a_long_sleep_stop_at_the_timeout() {
    for code in ["while True: pass", "import time; time.sleep(1e9)"] {
        let (doc, out) = python_json(&["--timeout", "1", "-c", code]);
        assert_eq!(doc["status"], "timeout", "{code}: {doc}");
        assert_eq!(out.status.code(), Some(124), "{code}");
    }
    let out = python(&["--timeout", "1", "-c", "while True: pass"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(
        stderr_of(&out).contains("wall-clock limit of 1 s was reached (--timeout)"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn memory_fuel_and_recursion_limits_have_their_exit_codes() {
    let (doc, _) = python_json(&["-c", "x = bytearray(10**9)"]);
    assert_eq!(
        (doc["status"].as_str(), doc["exitCode"].as_i64()),
        (Some("memory_limit"), Some(126)),
        "{doc}"
    );
    let (doc, _) = python_json(&["--fuel", "1000000", "-c", "print(1)"]);
    assert_eq!(
        (doc["status"].as_str(), doc["exitCode"].as_i64()),
        (Some("out_of_fuel"), Some(125)),
        "{doc}"
    );
    // Deep recursion: Python's own limit is an exception (exit 1); with the limit raised the
    // guest recurses until the wall clock stops it, and the host never crashes.
    let out = python(&["-c", "def f(): f()\nf()"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("RecursionError"),
        "{}",
        stderr_of(&out)
    );
    let (doc, _) = python_json(&[
        "--timeout",
        "2",
        "-c",
        "import sys\nsys.setrecursionlimit(10**7)\ndef f(n): return f(n + 1)\nf(0)",
    ]);
    assert_eq!(
        (doc["status"].as_str(), doc["exitCode"].as_i64()),
        (Some("timeout"), Some(124)),
        "{doc}"
    );
}

#[test]
fn an_output_flood_is_cut_and_flagged() {
    let (doc, out) = python_json(&["--max-output", "1KiB", "-c", "print('x' * 10**7)"]);
    assert_eq!(doc["status"], "ok", "{doc}");
    assert_eq!(doc["stdoutTruncated"], true);
    assert!(doc["stdout"].as_str().unwrap().len() <= 1024);
    assert_eq!(out.status.code(), Some(0));
    let out = python(&["--max-output", "1KiB", "-c", "print('x' * 10**7)"]);
    assert!(out.stdout.len() <= 1024);
    assert!(
        stderr_of(&out).contains("stdout cut at 1024 bytes (--max-output)"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn the_guest_cannot_reach_files_network_processes_or_the_environment() {
    for code in [
        "open('/etc/passwd').read()",
        "import socket; socket.create_connection(('127.0.0.1', 9))",
        "import subprocess; subprocess.run(['ls'])",
        "import os; os.listdir('/')[0]",
    ] {
        let out = python(&["-c", code]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{code} must fail: {}",
            text(&out.stdout)
        );
        assert!(
            stderr_of(&out).contains("Error"),
            "{code}: {}",
            stderr_of(&out)
        );
    }
    let out = ktx_with(sandbox_root(), &test_bundles())
        .env("KTX_SANDBOX_TEST_SECRET", "s3cr3t")
        .args(["python", "-c", "import os; print(dict(os.environ))"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        !text(&out.stdout).contains("s3cr3t"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn deterministic_runs_repeat_fuel_and_randomness() {
    let code = "import random; print(random.random(), hash('x'))";
    let (a, _) = python_json(&["--deterministic", "-c", code]);
    let (b, _) = python_json(&["--deterministic", "-c", code]);
    assert_eq!(a["status"], "ok", "{a}");
    assert!(a["fuel"].as_u64().is_some(), "metered: {a}");
    assert_eq!(a["fuel"], b["fuel"]);
    assert_eq!(a["stdout"], b["stdout"]);
}

#[test]
fn runs_through_the_daemon_too() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let run = |code: &str| {
        ktx_with(&root, &test_bundles())
            .env("KTX_DAEMON_IDLE_TIMEOUT", "30")
            .args(["--yes", "--daemon", "python", "-c", code])
            .output()
            .unwrap()
    };
    let first = run("print(6*7)");
    assert_eq!(text(&first.stdout), "42\n", "{}", stderr_of(&first));
    let second = run("import sys; sys.exit(4)");
    assert_eq!(second.status.code(), Some(4), "{}", stderr_of(&second));
    let stop = ktx_with(&root, &test_bundles())
        .args(["runtime", "stop"])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{}", stderr_of(&stop));
}

/// The doctor's `sandbox` check of a runtime: `(outcome, detail)`.
fn sandbox_check(root: &Path) -> (String, String) {
    let out = ktx_with(root, &test_bundles())
        .args(["runtime", "doctor", "--json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr_of(&out)));
    let check = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "sandbox")
        .unwrap_or_else(|| panic!("no sandbox check: {doc}"))
        .clone();
    (
        check["outcome"].as_str().unwrap().to_string(),
        check["detail"].as_str().unwrap().to_string(),
    )
}

#[test]
fn doctor_says_the_sandbox_is_optional_on_a_core_runtime() {
    let (outcome, detail) = sandbox_check(common::runtime_tests_root());
    assert_eq!(outcome, "PASS", "{detail}");
    assert!(detail.starts_with("not installed (optional"), "{detail}");
}

#[test]
fn doctor_verifies_the_bundle_and_runs_one_plus_one() {
    let (outcome, detail) = sandbox_check(sandbox_root());
    assert_eq!(outcome, "PASS", "{detail}");
    assert!(
        detail.contains("signed by ktx-dev-1 (DEVELOPMENT key)"),
        "{detail}"
    );
    assert!(detail.contains("print(1+1) printed 2"), "{detail}");
}
