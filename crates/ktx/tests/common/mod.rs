//! Helpers shared by the integration tests of the `ktx` binary (`runtime_cli`, `daemon_cli`,
//! `sl_cli`, `demo_cli`, `embed_cli`): the test asset dir, `ktx` commands with a clean
//! environment, the shared ready runtimes, the runtime layout, and small process and fixture
//! helpers.
//!
//! Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

#[cfg(unix)]
pub mod pty;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// This ktx's version: the name of its directory under a runtime root.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The variables of the caller's environment that change what ktx (or its daemon) does; every
/// command these tests run starts without them, and a test that wants one sets it itself.
/// `UV_*`, `PIP_*` and the proxy variables are passed through on purpose: they are the
/// developer's network setup (index mirror, cache, proxy) the real installs need; tests that
/// need them junk or unset set them on the command.
const CALLER_VARIABLES: &[&str] = &[
    "KTX_UV",
    "KTX_PYTHON",
    "KTX_FIND_LINKS",
    "KTX_LOCK_TIMEOUT",
    "KTX_DAEMON",
    "KTX_DAEMON_IDLE_TIMEOUT",
    "KTX_DAEMON_START_TIMEOUT",
    "KTX_DAEMON_ACCESS_LOG",
];

/// The upper bound of a shared runtime's install (the first one may download packages).
const INSTALL_LIMIT: Duration = Duration::from_secs(600);

/// How long `ktx runtime status` may take: it only reads.
const STATUS_LIMIT: Duration = Duration::from_secs(60);

/// The bundled asset dir (wheel + `manifest.json`) from `KTX_TEST_ASSET_DIR`; panics saying how
/// to get one when it is unset.
pub fn asset_dir() -> PathBuf {
    match std::env::var_os("KTX_TEST_ASSET_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => panic!(
            "KTX_TEST_ASSET_DIR is not set: run `cargo xtask test` or set KTX_TEST_ASSET_DIR (cargo xtask build-wheel --out DIR)"
        ),
    }
}

/// The test asset dir's `manifest.json`.
pub fn asset_manifest() -> Value {
    let path = asset_dir().join("manifest.json");
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `ktx` binary under test.
pub fn ktx_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("ktx")
}

/// Sets the runtime root to `root` and removes [`CALLER_VARIABLES`]; leaves `KTX_ASSET_DIR`
/// to the caller.
fn clean_env(cmd: &mut StdCommand, root: &Path) {
    cmd.env("KTX_RUNTIME_ROOT", root);
    for var in CALLER_VARIABLES {
        cmd.env_remove(var);
    }
}

/// The test environment on any command (a `sh -c` line that runs ktx, too): runtime root
/// `root`, the test assets as `KTX_ASSET_DIR`, none of [`CALLER_VARIABLES`].
pub fn test_env(cmd: &mut StdCommand, root: &Path) {
    clean_env(cmd, root);
    cmd.env("KTX_ASSET_DIR", asset_dir());
}

/// `ktx` as a `std::process::Command` (to spawn it, pipe it or close its stdout), in the test
/// environment of [`test_env`].
pub fn ktx_std(root: &Path) -> StdCommand {
    let mut cmd = StdCommand::new(ktx_bin());
    test_env(&mut cmd, root);
    cmd
}

/// `ktx` with runtime root `root`, the test assets and a clean environment ([`test_env`]), and
/// no time limit: the real installs of `runtime_cli` and `embed_cli` take as long as the
/// network does, and a test that wants a bound sets one (or uses [`ktx_bounded`]).
pub fn ktx(root: &Path) -> Command {
    Command::from_std(ktx_std(root))
}

/// [`ktx`], killed after `limit`: for the tests whose commands run on a ready runtime.
pub fn ktx_bounded(root: &Path, limit: Duration) -> Command {
    let mut cmd = ktx(root);
    cmd.timeout(limit);
    cmd
}

/// `ktx` with runtime root `root` and a clean environment, but an asset dir that does not exist
/// (`<root>/no-assets`): for the tests that must fail before any install, and must run without
/// `KTX_TEST_ASSET_DIR`.
pub fn ktx_without_assets(root: &Path) -> Command {
    let mut cmd = StdCommand::new(ktx_bin());
    clean_env(&mut cmd, root);
    cmd.env("KTX_ASSET_DIR", root.join("no-assets"));
    Command::from_std(cmd)
}

/// Output bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command's stderr as text (lossy).
pub fn stderr_of(out: &Output) -> String {
    text(&out.stderr)
}

/// `<root>/<ktx version>`: this ktx's directory under a runtime root.
pub fn version_dir(root: &Path) -> PathBuf {
    root.join(VERSION)
}

/// `<root>/<ktx version>/daemon`: the daemon's state, token and log.
pub fn daemon_dir(root: &Path) -> PathBuf {
    version_dir(root).join("daemon")
}

/// The install receipt (`<root>/<ktx version>/manifest.json`); panics naming the file when it
/// is missing or not JSON.
pub fn receipt(root: &Path) -> Value {
    let path = version_dir(root).join("manifest.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `ktx runtime status --json` on `root`, asserted to succeed.
pub fn status_json(root: &Path) -> Value {
    let out = ktx_bounded(root, STATUS_LIMIT)
        .args(["runtime", "status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "status failed: {}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `ktx runtime install` into `root` (created if missing), asserted to succeed. A ready runtime
/// makes it a no-op (a changed test wheel is reinstalled); concurrent installs into one root,
/// from threads or from nextest's one process per test, are serialised by ktx's install lock.
pub fn install_runtime(root: &Path) {
    fs::create_dir_all(root).unwrap();
    let out = ktx_bounded(root, INSTALL_LIMIT)
        .args(["runtime", "install", "--yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shared install failed: {}",
        stderr_of(&out)
    );
}

/// A ready runtime in the fixed directory `CARGO_TARGET_TMPDIR/<name>`, installed at most once
/// per process and, thanks to [`install_runtime`], once per wheel across processes and runs.
fn shared_runtime(cell: &'static OnceLock<PathBuf>, name: &str) -> &'static Path {
    cell.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        install_runtime(&dir);
        dir
    })
}

/// The ready runtime of `runtime_cli`'s read-only tests. Apart from the sl/demo one on purpose:
/// only `runtime_cli` uses it and none of its tests starts a daemon there, so they can assert
/// that a second install leaves its logs alone and that doctor and status see a plain core
/// runtime, whatever the sl tests do at the same time.
pub fn runtime_tests_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    shared_runtime(&ROOT, "ktx-shared-runtime")
}

/// The ready runtime shared by `sl_cli` and `demo_cli`: their tests only run queries on it
/// (one sl test starts a daemon there that exits after 3 idle seconds). `daemon_cli` does not
/// use it: its tests stop and replace daemons and would cut these tests' calls.
pub fn sl_and_demo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    shared_runtime(&ROOT, "ktx-sl-runtime")
}

/// The ready runtime of `script_cli`'s run and check tests (no daemon is ever started there).
pub fn scripts_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    shared_runtime(&ROOT, "ktx-scripts-runtime")
}

/// `python3` + sqlite3 answer to `sql` on the database `db`, as JSON (rows as arrays).
pub fn sqlite(db: &Path, sql: &str) -> Value {
    let out = StdCommand::new("python3")
        .args([
            "-c",
            "import json, sqlite3, sys; print(json.dumps(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchall()))",
        ])
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3 must be on PATH");
    assert!(out.status.success(), "{}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether process `pid` runs (a zombie or a dead process does not).
pub fn process_alive(pid: u64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let rest = &stat[stat.rfind(')').unwrap() + 1..];
            !matches!(rest.split_whitespace().next(), Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Polls `f` every 25 ms until it holds or `timeout` has passed; whether it held.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// Writes an executable `#!/bin/sh` script with `body` at `path`.
pub fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Sets the six proxy variables (upper and lower case HTTP, HTTPS, ALL) to `url`; the caller
/// sets `NO_PROXY`/`no_proxy` as its test needs.
pub fn set_proxy_variables(cmd: &mut Command, url: &str) {
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env(var, url);
    }
}
