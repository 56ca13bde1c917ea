//! How the `ktx` binary talks to its caller, across every command (issue 12, items 11 and 14):
//!
//! - one stdout path: a full stdout is `error: cannot write to standard output: ...`, exit 1
//!   (never a panic), and a closed one is a quiet exit 141, for every command;
//! - no `print!`/`println!` outside `crates/ktx/src/output.rs` (the tidy guard of that path);
//! - `ktx` alone prints its help on stderr and exits 2;
//! - every `--json` document starts with `"schemaVersion": 1` and keeps one shape whatever the
//!   state; doctor checks carry stable ids;
//! - users see ktx's SemVer, the PEP 440 form only where Python's is meant (`wheelVersion`);
//! - `ktx demo` prints `npx @kaelio/ktx ...` when the npm launcher (or npm) started ktx;
//! - `--no-input` says what it does: it never prompts, and `ktx runtime install` still installs.
//!
//! Each test that starts or stops a daemon installs its own runtime root (a fast install: the
//! uv cache is warm after the first one), so tests running in parallel never share a daemon.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{asset_manifest, install_runtime, ktx_std, text, VERSION};

/// The upper bound of one command on a ready runtime.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// The full-stdout message, as every command must print it.
const FULL: &str = "error: cannot write to standard output: No space left on device";

/// Variables that would make ktx think npm launched it; unset on every command here unless a
/// test sets them.
const NPM_VARIABLES: [&str; 4] = [
    "KTX_LAUNCHER",
    "KTX_NPM_PACKAGE",
    "npm_config_user_agent",
    "npm_execpath",
];

/// `ktx args...` in the test environment on runtime root `root`, without the npm variables,
/// stdin empty.
fn ktx_cmd(root: &Path, args: &[&str]) -> Command {
    let mut cmd = ktx_std(root);
    // A daemon left behind by a failing test goes away by itself.
    cmd.args(args)
        .stdin(Stdio::null())
        .env("KTX_DAEMON_IDLE_TIMEOUT", "60");
    for var in NPM_VARIABLES {
        cmd.env_remove(var);
    }
    cmd
}

/// A finished command: its status and what it wrote.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with `stdout` as its standard output (captured when None), stderr captured in a
/// file, killed after [`COMMAND_LIMIT`].
fn run(mut cmd: Command, stdout: Option<Stdio>) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (tmp.path().join("out"), tmp.path().join("err"));
    let stdout = stdout.unwrap_or_else(|| File::create(&out_path).unwrap().into());
    cmd.stdout(stdout).stderr(File::create(&err_path).unwrap());
    let mut child = cmd.spawn().expect("spawn ktx");
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} still runs after {COMMAND_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read(p).map(|b| text(&b)).unwrap_or_default();
    Run {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

/// `ktx args...` on `root`, asserted to succeed; its stdout.
fn ok(root: &Path, args: &[&str]) -> String {
    let r = run(ktx_cmd(root, args), None);
    assert!(
        r.status.success(),
        "ktx {args:?}: {:?}\n{}",
        r.status,
        r.stderr
    );
    r.stdout
}

/// `ktx args...` on `root` with `--json` output parsed, asserted to succeed.
fn ok_json(root: &Path, args: &[&str]) -> (String, Value) {
    let out = ok(root, args);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("ktx {args:?}: {e}\n{out}"));
    (out, v)
}

/// A fresh runtime root of this test, installed and ready.
fn ready_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    install_runtime(root.path());
    root
}

/// A demo project in `<root>/demo` (for the sl commands).
fn demo_project(root: &Path) -> PathBuf {
    let dir = root.join("demo");
    ok(root, &["demo", dir.to_str().unwrap()]);
    dir
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// The stdout of a `--json` command starts with `"schemaVersion": 1`.
fn assert_versioned(args: &[&str], stdout: &str) {
    assert!(
        stdout.starts_with("{\n  \"schemaVersion\": 1,\n")
            || stdout.starts_with("{\"schemaVersion\":1,"),
        "ktx {args:?} does not start with schemaVersion 1:\n{stdout}"
    );
}

#[test]
fn every_command_reports_a_full_stdout_with_exit_1_and_never_panics() {
    let root = ready_root();
    let root = root.path();
    let project = demo_project(root);
    let p = project.to_str().unwrap();
    let demo2 = root.join("demo-2");
    let demo2 = demo2.to_str().unwrap();
    let q = ["--project-dir", p, "--measure", "orders.revenue"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        ["sl", "query"]
            .iter()
            .chain(q.iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let mut commands: Vec<Vec<String>> = vec![
        vec!["--version".into()],
        vec!["--help".into()],
        vec!["runtime".into(), "--help".into()],
        vec!["embed".into(), "--help".into()],
        vec!["sl".into(), "query".into(), "--help".into()],
        vec!["runtime".into(), "status".into()],
        vec!["runtime".into(), "status".into(), "--json".into()],
        vec!["runtime".into(), "doctor".into()],
        vec!["runtime".into(), "doctor".into(), "--json".into()],
        vec!["runtime".into(), "install".into(), "--json".into()],
        vec!["runtime".into(), "start".into()],
        vec!["runtime".into(), "start".into(), "--json".into()],
        vec!["runtime".into(), "stop".into()],
        vec!["runtime".into(), "stop".into(), "--json".into()],
        vec!["runtime".into(), "prune".into()],
        vec!["runtime".into(), "prune".into(), "--dry-run".into()],
        vec![
            "runtime".into(),
            "prune".into(),
            "--dry-run".into(),
            "--json".into(),
        ],
        vec!["runtime".into(), "call".into(), "runtime.ping".into()],
        with(&[]),
        with(&["--format", "sql"]),
        with(&["--execute", "--format", "table"]),
        vec![
            "sl".into(),
            "validate".into(),
            "--project-dir".into(),
            p.into(),
        ],
        vec![
            "sl".into(),
            "validate".into(),
            "--project-dir".into(),
            p.into(),
            "--json".into(),
        ],
        vec!["demo".into(), demo2.into()],
        vec!["demo".into(), demo2.into(), "--json".into()],
    ];
    // `runtime start` ran twice above with a failing stdout: the daemon still started, so the
    // second is a reuse and `stop` has one to stop; the last `stop` finds none. Both states of
    // each command print, and each must fail the same way.
    commands.push(vec!["runtime".into(), "stop".into()]);
    let mut failures = Vec::new();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let full = File::options().write(true).open("/dev/full").unwrap();
        let r = run(ktx_cmd(root, &args), Some(full.into()));
        let good =
            r.status.code() == Some(1) && r.stderr.contains(FULL) && !r.stderr.contains("panicked");
        if !good {
            failures.push(format!("ktx {args:?}: {:?}\n{}", r.status, r.stderr));
        }
    }
    // Best effort: no daemon outlives the test.
    let _ = run(ktx_cmd(root, &["runtime", "stop"]), None);
    assert!(
        failures.is_empty(),
        "{} of {} commands did not report the full stdout:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
}

#[cfg(unix)] // EPIPE and exit 141 (128 + SIGPIPE) are Unix's
#[test]
fn a_closed_stdout_ends_every_printing_command_quietly_with_141() {
    let root = common::sl_and_demo_root();
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().join("demo");
    let d = dir.to_str().unwrap();
    ok(root, &["demo", d]);
    for args in [
        vec!["runtime", "status"],
        vec!["runtime", "doctor", "--json"],
        vec!["--help"],
        vec![
            "sl",
            "query",
            "--project-dir",
            d,
            "--measure",
            "orders.revenue",
        ],
        vec!["sl", "validate", "--project-dir", d],
        vec!["demo", d, "--json"],
    ] {
        // A pipe whose read end is already closed: every write to it is EPIPE.
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills in two new descriptors, owned below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: both were just created by pipe(2) and are owned nowhere else.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read_end);
        let r = run(ktx_cmd(root, &args), Some(write_end.into()));
        assert_eq!(
            r.status.code(),
            Some(141),
            "ktx {args:?}: {:?}\n{}",
            r.status,
            r.stderr
        );
        assert!(
            !r.stderr.contains("error") && !r.stderr.contains("panicked"),
            "ktx {args:?} is not quiet on a closed stdout:\n{}",
            r.stderr
        );
    }
}

/// The tidy guard of the one output path: nothing in the binary's sources prints on stdout
/// but `output.rs`.
#[test]
fn no_print_macros_outside_the_output_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension() != Some(std::ffi::OsStr::new("rs")) || path.ends_with("output.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for (n, line) in source.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for mac in ["print!(", "println!("] {
                    let printing = code
                        .match_indices(mac)
                        .any(|(i, _)| !code[..i].ends_with('e'));
                    if printing || code.contains("stdout()") {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "print through crate::output (emit / emit_json), not:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn ktx_alone_prints_its_help_on_stderr_and_exits_2() {
    let root = tempfile::tempdir().unwrap();
    for args in [&[][..], &["--yes"][..]] {
        let r = run(ktx_cmd(root.path(), args), None);
        assert_eq!(r.status.code(), Some(2), "ktx {args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "ktx {args:?} printed on stdout");
        assert!(
            r.stderr.contains("Usage: ktx") && r.stderr.contains("runtime"),
            "ktx {args:?}: {}",
            r.stderr
        );
    }
    // Asked for, the help goes to stdout with exit 0.
    let r = run(ktx_cmd(root.path(), &["--help"]), None);
    assert!(r.status.success() && r.stdout.contains("Usage: ktx"));
}

#[test]
fn json_documents_have_a_schema_version_and_one_shape_in_every_state() {
    let root = ready_root();
    let root = root.path();
    let project = demo_project(root);
    let p = project.to_str().unwrap();

    // Stopped, then running, then stopped again: the same keys each time.
    let (out, stopped) = ok_json(root, &["runtime", "stop", "--json"]);
    assert_versioned(&["runtime", "stop", "--json"], &out);
    let (_, status_stopped) = ok_json(root, &["runtime", "status", "--json"]);
    let (out, started) = ok_json(root, &["runtime", "start", "--json"]);
    assert_versioned(&["runtime", "start", "--json"], &out);
    let (_, status_running) = ok_json(root, &["runtime", "status", "--json"]);
    let (_, stopped_running) = ok_json(root, &["runtime", "stop", "--json"]);
    assert_eq!(stopped_running["stopped"], true, "{stopped_running}");
    assert_eq!(stopped["stopped"], false, "{stopped}");
    assert_eq!(
        keys(&stopped),
        keys(&stopped_running),
        "runtime stop --json"
    );
    for key in ["schemaVersion", "stopped", "pid", "how", "cleaned"] {
        assert!(keys(&stopped).contains(key), "{key} in {stopped}");
    }
    assert_eq!(
        keys(&status_stopped["daemon"]),
        keys(&status_running["daemon"]),
        "runtime status --json .daemon: {status_stopped} vs {status_running}"
    );
    assert!(status_stopped.get("manifest").is_some());

    // Users see the SemVer; the Python package's PEP 440 form only as wheelVersion.
    let pep440 = asset_manifest()["version"].as_str().unwrap().to_string();
    assert_eq!(started["version"], VERSION, "{started}");
    assert_eq!(started["wheelVersion"], pep440.as_str(), "{started}");
    assert_eq!(started["health"]["version"], VERSION, "{started}");
    assert_eq!(status_running["daemon"]["version"], VERSION);

    // Install: the failure shape is the success shape.
    let (out, installed) = ok_json(root, &["runtime", "install", "--json"]);
    assert_versioned(&["runtime", "install", "--json"], &out);
    let failed = run(
        {
            let mut cmd = ktx_cmd(root, &["runtime", "install", "--json"]);
            cmd.env("KTX_ASSET_DIR", root.join("no-assets"));
            cmd
        },
        None,
    );
    assert_eq!(failed.status.code(), Some(1), "{}", failed.stderr);
    let failed: Value = serde_json::from_str(&failed.stdout).unwrap();
    assert_eq!(failed["kind"], "error");
    assert_eq!(installed["error"], Value::Null);
    assert_eq!(keys(&failed), keys(&installed), "{failed} vs {installed}");

    // Doctor: stable, unique ids on every check; `fix` always present.
    let (out, doctor) = ok_json(root, &["runtime", "doctor", "--json"]);
    assert_versioned(&["runtime", "doctor", "--json"], &out);
    let checks = doctor["checks"].as_array().unwrap();
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    for c in checks {
        assert!(c.get("fix").is_some(), "{c}");
    }
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate ids: {ids:?}");
    for id in [
        "python-interpreter",
        "uv",
        "bundled-wheel",
        "managed-runtime",
        "local-embeddings",
        "daemon",
        "sandbox",
    ] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    for id in &ids {
        assert!(
            id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "id {id:?} is not kebab-case"
        );
    }

    // Prune: the dry run has the executed run's keys.
    let (out, prune) = ok_json(root, &["runtime", "prune", "--dry-run", "--json"]);
    assert_versioned(&["runtime", "prune"], &out);
    for key in [
        "dryRun",
        "refused",
        "wouldRemove",
        "removed",
        "bytes",
        "wouldFree",
        "skipped",
        "failed",
    ] {
        assert!(prune.get(key).is_some(), "{key} in {prune}");
    }

    // The documents of the Python-backed commands carry it too.
    for args in [
        vec![
            "sl",
            "query",
            "--project-dir",
            p,
            "--measure",
            "orders.revenue",
        ],
        vec!["sl", "validate", "--project-dir", p, "--json"],
        vec!["demo", p, "--json"],
        vec!["runtime", "status", "--json"],
    ] {
        let (out, _) = ok_json(root, &args);
        assert_versioned(&args, &out);
    }
}

#[test]
fn versions_read_as_semver_in_human_output() {
    let root = ready_root();
    let root = root.path();
    let pep440 = asset_manifest()["version"].as_str().unwrap().to_string();
    let started = ok(root, &["runtime", "start"]);
    let status = ok(root, &["runtime", "status"]);
    let doctor = ok(root, &["runtime", "doctor"]);
    let _ = ok(root, &["runtime", "stop"]);
    assert!(
        started.lines().any(|l| l == format!("version: {VERSION}")),
        "{started}"
    );
    assert!(
        status.contains(&format!("ktx version:  {VERSION}")),
        "{status}"
    );
    if pep440 != VERSION {
        // The wheel's file name is Python's business; nothing else shows the PEP 440 form.
        for (what, out) in [
            ("start", &started),
            ("status", &status),
            ("doctor", &doctor),
        ] {
            for line in out.lines().filter(|l| !l.contains(".whl")) {
                assert!(!line.contains(&pep440), "runtime {what}: {line}");
            }
        }
    }
}

/// The commands `ktx demo` prints to try: its indented `ktx ...` / `npx ...` lines.
fn printed_commands(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("ktx ") || l.starts_with("npx "))
        .collect()
}

#[test]
fn demo_prints_npx_commands_when_npm_launched_ktx() {
    let root = common::sl_and_demo_root();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    let d = dir.to_str().unwrap();
    let demo = |env: &[(&str, &str)]| {
        let mut cmd = ktx_cmd(root, &["demo", d]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let r = run(cmd, None);
        assert!(r.status.success(), "{}", r.stderr);
        r.stdout
    };
    let plain = demo(&[]);
    let queries = printed_commands(&plain);
    assert_eq!(queries.len(), 3, "{plain}");
    assert!(
        queries.iter().all(|q| q.starts_with("ktx sl query ")),
        "{plain}"
    );
    assert!(plain.contains("&& ktx sl validate"), "{plain}");
    for env in [
        &[("KTX_LAUNCHER", "npm")][..],
        &[(
            "npm_config_user_agent",
            "npm/10.8.2 node/v20.20.2 linux x64",
        )][..],
        &[("npm_execpath", "/usr/lib/node_modules/npm/bin/npx-cli.js")][..],
    ] {
        let out = demo(env);
        let queries = printed_commands(&out);
        assert_eq!(queries.len(), 3, "{env:?}: {out}");
        assert!(
            queries
                .iter()
                .all(|q| q.starts_with("npx @kaelio/ktx sl query ")),
            "{env:?}: {out}"
        );
        assert!(
            out.contains("&& npx @kaelio/ktx sl validate && npx @kaelio/ktx sl query --help"),
            "{out}"
        );
    }
    // The explicit variable wins over npm's own.
    let out = demo(&[
        ("KTX_LAUNCHER", "native"),
        ("npm_execpath", "/x/npx-cli.js"),
    ]);
    assert!(
        printed_commands(&out).iter().all(|q| q.starts_with("ktx ")),
        "{out}"
    );
    let (_, v) = {
        let mut cmd = ktx_cmd(root, &["demo", d, "--json"]);
        cmd.env("KTX_LAUNCHER", "npm");
        let r = run(cmd, None);
        assert!(r.status.success(), "{}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        (r.stdout, v)
    };
    for q in v["queries"].as_array().unwrap() {
        assert!(
            q.as_str().unwrap().starts_with("npx @kaelio/ktx sl query "),
            "{v}"
        );
    }
}

/// The real launcher (`npm-package/bin/ktx.js`) tells ktx it runs from npm.
#[cfg(unix)] // symlinks the binary into a package tree
#[test]
fn the_npm_launcher_makes_demo_print_npx_commands() {
    let has_node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_node || !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("skipping: needs node and linux-x64 (the launcher's fallback platform list)");
        return;
    }
    let root = common::sl_and_demo_root();
    let pkg = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::create_dir_all(pkg.path().join("bin")).unwrap();
    std::fs::create_dir_all(pkg.path().join("native/linux-x64")).unwrap();
    for file in ["bin/ktx.js", "package.json"] {
        std::fs::copy(repo.join("npm-package").join(file), pkg.path().join(file)).unwrap();
    }
    std::os::unix::fs::symlink(common::ktx_bin(), pkg.path().join("native/linux-x64/ktx")).unwrap();
    std::os::unix::fs::symlink(common::asset_dir(), pkg.path().join("python")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    let mut cmd = Command::new("node");
    common::test_env(&mut cmd, root);
    for var in NPM_VARIABLES {
        cmd.env_remove(var);
    }
    cmd.arg(pkg.path().join("bin/ktx.js"))
        .arg("demo")
        .arg(&dir)
        .stdin(Stdio::null());
    let r = run(cmd, None);
    assert!(r.status.success(), "{:?}\n{}", r.status, r.stderr);
    let queries = printed_commands(&r.stdout);
    assert_eq!(queries.len(), 3, "{}", r.stdout);
    assert!(
        queries
            .iter()
            .all(|q| q.starts_with("npx @kaelio/ktx sl query ")),
        "{}",
        r.stdout
    );
}

#[test]
fn no_input_never_prompts_and_an_explicit_install_still_installs() {
    // The help says what the flag does; it no longer claims that it never installs.
    let root = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["runtime", "install", "--help"][..]] {
        let help = ok(root.path(), args);
        let para = help
            .split("--no-input")
            .nth(1)
            .unwrap_or_else(|| panic!("no --no-input in {help}"));
        let para = para.split("\n\n").next().unwrap_or(para);
        let para = para.split("  --").next().unwrap_or(para);
        assert!(para.contains("Never prompt"), "{para}");
        assert!(!para.contains("never install"), "{para}");
        assert!(
            para.contains("`ktx runtime install` still installs"),
            "{para}"
        );
    }
    // A lazily installing command refuses under --no-input; the explicit install installs.
    let r = run(
        ktx_cmd(
            root.path(),
            &["runtime", "call", "runtime.ping", "--no-input"],
        ),
        None,
    );
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("ktx runtime install"), "{}", r.stderr);
    let _ = ok(root.path(), &["runtime", "install", "--no-input"]);
    assert!(common::version_dir(root.path())
        .join("manifest.json")
        .is_file());
}
