//! Warehouse drivers on the real binary with real runtimes (real uv, packages from PyPI or the
//! uv cache): the driver features (`postgres`, `duckdb`, `mysql`) as `ktx runtime install`,
//! status and doctor see them; the lazy install of a driver an op asks for (`feature_required`);
//! `ktx demo --driver/--dsn` usage errors; `--max-rows` notes.
//!
//! The tests marked "needs the Python executors" drive DuckDB through `semantic.query` and
//! `demo.scaffold`: they pass once the Python side answers `feature_required` for a driver
//! that is not installed and executes on DuckDB.
//!
//! Needs `KTX_TEST_ASSET_DIR` (set by `cargo xtask test`, or `cargo xtask build-wheel --out DIR`)
//! and `uv` and `python3` on PATH.
// Unix only: installs real runtimes with uv and a CPython (no Windows CPython is reachable here, under Wine) through tests/common, which is Unix (bin/python, /proc).
#![cfg(unix)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, ExitStatus, Output};
use std::sync::OnceLock;
use std::time::Duration;

use assert_cmd::Command;
use common::pty::PtyChild;
use common::{receipt, stderr_of, text};
use serde_json::Value;

/// The bound of every command here; the installs are small (a driver is at most ~20 MB).
const LIMIT: Duration = Duration::from_secs(600);

/// How long a command on a ready runtime may take to reach its install prompt.
const PROMPT_LIMIT: Duration = Duration::from_secs(120);

fn ktx(root: &Path) -> Command {
    common::ktx_bounded(root, LIMIT)
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

fn receipt_features(root: &Path) -> Vec<String> {
    receipt(root)["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// A runtime with the `duckdb` feature, installed once per wheel in
/// `CARGO_TARGET_TMPDIR/ktx-duckdb-runtime`; its Python builds the DuckDB test warehouses.
fn duckdb_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ktx-duckdb-runtime");
        fs::create_dir_all(&dir).unwrap();
        let out = ktx(&dir)
            .args(["runtime", "install", "--feature", "duckdb", "--yes"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        dir
    })
}

/// A fresh runtime root with only `core` installed.
fn core_only_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    common::install_runtime(root.path());
    assert_eq!(receipt_features(root.path()), ["core"]);
    root
}

/// A demo project (SQLite) in `dir`, written by `ktx demo` on `root`.
fn sqlite_demo(root: &Path, dir: &Path) {
    let out = ktx(root).args(["demo", "--yes"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// Turns the SQLite demo in `dir` into a DuckDB one: the same rows (from the runtime's own
/// `semantic_layer.demo.build_rows`) in `dir/warehouse.duckdb`, typed as a DuckDB user would
/// type them, and `ktx.yaml` pointing at it.
fn duckdb_demo(dir: &Path) {
    let python = receipt(duckdb_root())["pythonPath"]
        .as_str()
        .unwrap()
        .to_string();
    let script = r#"
import sys, duckdb
from semantic_layer.demo import build_rows
customers, orders, items = build_rows()
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, segment VARCHAR, country VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL)")
con.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, status VARCHAR NOT NULL, amount DOUBLE NOT NULL, created_at TIMESTAMP NOT NULL)")
con.execute("CREATE TABLE order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, product VARCHAR NOT NULL, quantity BIGINT NOT NULL, unit_price DOUBLE NOT NULL)")
con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", customers)
con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", orders)
con.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", items)
con.close()
"#;
    let out = StdCommand::new(&python)
        .args(["-c", script])
        .arg(dir.join("warehouse.duckdb"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let yaml = dir.join("ktx.yaml");
    let text = fs::read_to_string(&yaml).unwrap();
    let text = text
        .replace("driver: sqlite", "driver: duckdb")
        .replace("path: warehouse.db", "path: warehouse.duckdb");
    assert!(text.contains("driver: duckdb"), "{text}");
    fs::write(&yaml, text).unwrap();
}

/// `rows` of two results equal, numbers within 1e-9 relative.
fn assert_same_rows(a: &Value, b: &Value) {
    let (ra, rb) = (a["rows"].as_array().unwrap(), b["rows"].as_array().unwrap());
    assert_eq!(ra.len(), rb.len(), "{a}\n{b}");
    assert!(!ra.is_empty(), "no rows: {a}");
    for (x, y) in ra.iter().zip(rb) {
        for (u, v) in x.as_array().unwrap().iter().zip(y.as_array().unwrap()) {
            match (u.as_f64(), v.as_f64()) {
                (Some(p), Some(q)) => assert!(
                    (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                    "{u} != {v}"
                ),
                _ => assert_eq!(u, v),
            }
        }
    }
}

const QUERY: [&str; 7] = [
    "sl",
    "query",
    "--measure",
    "orders.revenue",
    "--dimension",
    "customers.segment",
    "--execute",
];

#[test]
fn driver_features_install_add_up_and_show_in_status_and_doctor() {
    let root = tempfile::tempdir().unwrap();
    let out = ktx(root.path())
        .args(["runtime", "install", "--feature", "mysql", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(receipt_features(root.path()), ["core", "mysql"]);
    // A second driver adds to the runtime: the new venv keeps mysql.
    let out = ktx(root.path())
        .args(["runtime", "install", "--feature", "duckdb", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        json_of(&out)["features"],
        serde_json::json!(["core", "duckdb", "mysql"])
    );
    assert_eq!(receipt_features(root.path()), ["core", "duckdb", "mysql"]);
    assert!(
        stderr_of(&out).contains("Installed features: core, duckdb, mysql"),
        "{}",
        stderr_of(&out)
    );

    let out = ktx(root.path())
        .args(["runtime", "status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let status = text(&out.stdout);
    assert!(
        status.contains(
            "\n  features:     core, duckdb, mysql; not installed: local-embeddings, postgres, sandbox (`ktx runtime install --feature NAME`)\n"
        ),
        "{status}"
    );

    let out = ktx(root.path())
        .args(["runtime", "doctor", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let doctor = json_of(&out);
    let checks = doctor["checks"].as_array().unwrap();
    let by_id = |id: &str| checks.iter().find(|c| c["id"] == id).cloned();
    for (id, dist) in [("driver-duckdb", "duckdb "), ("driver-mysql", "PyMySQL 1.")] {
        let c = by_id(id).unwrap_or_else(|| panic!("no {id} check: {doctor}"));
        assert_eq!(c["outcome"], "PASS", "{c}");
        assert!(c["detail"].as_str().unwrap().contains(dist), "{id}: {c}");
    }
    assert!(by_id("driver-postgres").is_none(), "{doctor}");

    // The drivers import in the runtime (the install's import check proved it; so does info).
    let out = ktx(root.path())
        .args(["runtime", "call", "runtime.info"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let features = json_of(&out)["features"].clone();
    assert_eq!(
        features,
        serde_json::json!(["core", "duckdb", "mysql"]),
        "{features}"
    );

    // A driver's files gone from the venv: doctor fails that check, with the rebuild command.
    let venv = PathBuf::from(receipt(root.path())["venvDir"].as_str().unwrap());
    let site = fs::read_dir(venv.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    fs::remove_file(site.join("pymysql/__init__.py")).unwrap();
    let out = ktx(root.path())
        .args(["runtime", "doctor"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    assert!(
        report.contains(
            "FAIL mysql driver: the receipt lists mysql but packages are missing: PyMySQL ("
        ),
        "{report}"
    );
    assert!(
        report.contains("\n  Fix: ktx runtime install --feature mysql --force\n"),
        "{report}"
    );
}

#[test]
fn the_daemon_serves_driver_features() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let out = ktx(root)
        .args(["runtime", "install", "--feature", "duckdb", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let _stop = StopDaemon(root);
    let out = ktx(root)
        .args(["runtime", "start", "--feature", "duckdb"])
        .env("KTX_DAEMON_IDLE_TIMEOUT", "120")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("\nfeatures: core, duckdb\n"), "{stdout}");
}

#[test]
fn demo_driver_usage_errors_come_before_the_runtime_and_never_echo_the_dsn() {
    // No assets at all: these must fail on the flags alone.
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--driver", "postgres"], "--driver postgres needs --dsn"),
        (&["--driver", "mysql"], "--driver mysql needs --dsn"),
        (
            &[
                "--driver",
                "postgres",
                "--dsn",
                "postgresql://me:hunter2@127.0.0.1:5432/demo",
            ],
            "--dsn must not contain a password",
        ),
        (
            &[
                "--driver",
                "mysql",
                "--dsn",
                "mysql://me:hunter2@127.0.0.1/demo",
            ],
            "export it as MYSQL_PWD",
        ),
        (
            &["--driver", "duckdb", "--dsn", "x=hunter2"],
            "--dsn applies to --driver postgres and mysql",
        ),
    ];
    for (args, want) in cases {
        let out = common::ktx_without_assets(root.path())
            .current_dir(work.path())
            .arg("demo")
            .args(args)
            .timeout(LIMIT)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("hunter2") && out.stdout.is_empty(),
            "{args:?} echoed: {err}"
        );
    }
    assert!(
        fs::read_dir(work.path()).unwrap().next().is_none(),
        "nothing is written"
    );
    let out = common::ktx_without_assets(root.path())
        .args(["demo", "--driver", "oracle"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("[possible values: sqlite, duckdb, postgres, mysql]"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn json_results_cut_by_max_rows_say_so_on_stderr() {
    let root = common::sl_and_demo_root();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    sqlite_demo(root, &dir);
    let out = ktx(root)
        .args([
            "sl",
            "query",
            "--measure",
            "orders.order_count",
            "--dimension",
            "orders.status",
        ])
        .args(["--execute", "--max-rows", "1", "--project-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out);
    assert_eq!(v["rows"].as_array().unwrap().len(), 1, "{v}");
    let total = v["totalRows"].as_u64().unwrap_or(0);
    assert!(
        total > 1 || v["plan"]["execution"]["truncated"] == true,
        "{v}"
    );
    let err = stderr_of(&out);
    assert!(
        err.starts_with("note: 1 of ")
            && err.contains(" shown (--max-rows 1); raise --max-rows to see more"),
        "{err}"
    );
    // Not cut: no note.
    let out = ktx(root)
        .args([
            "sl",
            "query",
            "--measure",
            "orders.order_count",
            "--execute",
            "--project-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("note:"), "{}", stderr_of(&out));
}

/// Needs the Python executors: a DuckDB connection on a core-only runtime is refused under
/// --no-input with the exact command, then installed by --yes, and returns the SQLite demo's rows.
#[test]
fn a_duckdb_connection_installs_its_driver_on_first_execute() {
    let root = core_only_root();
    let work = tempfile::tempdir().unwrap();
    let sqlite_dir = work.path().join("sqlite");
    let duck_dir = work.path().join("duck");
    sqlite_demo(root.path(), &sqlite_dir);
    sqlite_demo(root.path(), &duck_dir);
    duckdb_demo(&duck_dir);

    let out = ktx(root.path())
        .args(QUERY)
        .args(["--no-input", "--project-dir"])
        .arg(&duck_dir)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("connection `warehouse` uses DuckDB, which needs the runtime feature `duckdb` (not installed)"),
        "{err}"
    );
    assert!(
        err.contains("`ktx runtime install --feature duckdb`"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(receipt_features(root.path()), ["core"], "nothing installed");

    let out = ktx(root.path())
        .args(QUERY)
        .args(["--yes", "--project-dir"])
        .arg(&duck_dir)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Installing KTX Python runtime (core, duckdb) with uv..."),
        "{err}"
    );
    assert_eq!(receipt_features(root.path()), ["core", "duckdb"]);
    let duck = json_of(&out);
    assert_eq!(duck["plan"]["execution"]["mode"], "executed", "{duck}");

    let out = ktx(root.path())
        .args(QUERY)
        .arg("--project-dir")
        .arg(&sqlite_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_same_rows(&json_of(&out), &duck);

    // Installed now: --no-input runs it without a word about installing.
    let out = ktx(root.path())
        .args(QUERY)
        .args(["--no-input", "--project-dir"])
        .arg(&duck_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("Installing"),
        "{}",
        stderr_of(&out)
    );
}

/// Needs the Python executors: a daemon running with `core` only is replaced by one that
/// serves `duckdb` once the feature is installed, and later calls use it.
#[test]
fn a_running_daemon_is_replaced_by_one_that_serves_the_new_driver() {
    let root = core_only_root();
    let work = tempfile::tempdir().unwrap();
    let duck_dir = work.path().join("duck");
    sqlite_demo(root.path(), &duck_dir);
    duckdb_demo(&duck_dir);
    let _stop = StopDaemon(root.path());
    let out = ktx(root.path())
        .args(["runtime", "start", "--json"])
        .env("KTX_DAEMON_IDLE_TIMEOUT", "120")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let first_pid = json_of(&out)["pid"].as_u64();

    let out = ktx(root.path())
        .args(QUERY)
        .args(["--yes", "--project-dir"])
        .arg(&duck_dir)
        .env("KTX_DAEMON_IDLE_TIMEOUT", "120")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Replaced the previous KTX Python daemon"),
        "{err}"
    );
    let out = ktx(root.path())
        .args(["runtime", "status", "--json"])
        .output()
        .unwrap();
    let status = json_of(&out);
    let daemon = &status["daemon"];
    assert_eq!(
        daemon["features"],
        serde_json::json!(["core", "duckdb"]),
        "{status}"
    );
    assert_ne!(daemon["pid"].as_u64(), first_pid, "{status}");
}

/// Stops the daemon of a runtime root when dropped (also when the test fails).
struct StopDaemon<'a>(&'a Path);

impl Drop for StopDaemon<'_> {
    fn drop(&mut self) {
        let _ = ktx(self.0).args(["runtime", "stop"]).output();
    }
}

/// Needs the Python executors: `ktx demo --driver duckdb` installs the driver and writes a
/// DuckDB demo whose printed --execute query returns the SQLite demo's rows.
#[test]
fn demo_with_driver_duckdb_loads_the_warehouse_into_duckdb() {
    let root = duckdb_root();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("duck-demo");
    let out = ktx(root)
        .args(["demo", "--driver", "duckdb", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let yaml = fs::read_to_string(dir.join("ktx.yaml")).unwrap();
    assert!(yaml.contains("driver: duckdb"), "{yaml}");
    let sqlite_dir = work.path().join("sqlite-demo");
    sqlite_demo(root, &sqlite_dir);
    let run = |d: &Path| {
        let out = ktx(root)
            .args(QUERY)
            .arg("--project-dir")
            .arg(d)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        json_of(&out)
    };
    assert_same_rows(&run(&sqlite_dir), &run(&dir));
}

/// Runs `cmd` on a new pseudo-terminal (its controlling terminal: stdin, stdout and stderr),
/// waits for `prompt`, types `answer`, and returns the exit status and everything written to
/// the terminal. The prompt must come within [`PROMPT_LIMIT`] (nothing is installed before
/// it), the exit within [`LIMIT`] of the answer.
fn answer_on_a_pty(mut cmd: StdCommand, prompt: &str, answer: &[u8]) -> (ExitStatus, String) {
    cmd.env("TERM", "dumb");
    let mut pty = PtyChild::spawn(cmd);
    let asked = common::wait_until(PROMPT_LIMIT, || pty.text().contains(prompt));
    assert!(
        asked,
        "no {prompt:?} on the terminal within {PROMPT_LIMIT:?}:\n{}",
        pty.text()
    );
    pty.type_keys(answer);
    let Some(status) = pty.wait_for_exit(LIMIT) else {
        panic!("ktx still runs {LIMIT:?} after the answer:\n{}", pty.text());
    };
    (status, pty.final_text(Duration::from_secs(10)))
}

/// Needs the Python executors: on a terminal, the driver is offered with its size, Enter
/// installs it (the driver is small: the default is yes) and the query returns rows; "n"
/// installs nothing and names the command.
#[test]
fn the_driver_prompt_shows_its_size_and_defaults_to_yes() {
    let root = core_only_root();
    let work = tempfile::tempdir().unwrap();
    let duck_dir = work.path().join("duck");
    sqlite_demo(root.path(), &duck_dir);
    duckdb_demo(&duck_dir);
    let query = |root: &Path| {
        let mut cmd = common::ktx_std(root);
        cmd.args(QUERY).arg("--project-dir").arg(&duck_dir);
        cmd
    };
    let question = "Install it now? [Y/n] ";

    let (status, seen) = answer_on_a_pty(query(root.path()), question, b"n\n");
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(
        seen.contains("connection `warehouse` uses DuckDB: that needs the runtime feature `duckdb` (duckdb: about 21 MB to download, 58 MB on disk), which is not installed."),
        "{seen}"
    );
    assert!(
        seen.contains("Install it when you are ready with `ktx runtime install --feature duckdb`"),
        "{seen}"
    );
    assert_eq!(receipt_features(root.path()), ["core"], "nothing installed");

    let (status, seen) = answer_on_a_pty(query(root.path()), question, b"\n");
    assert!(status.success(), "{seen}");
    assert!(
        seen.contains("Installing KTX Python runtime (core, duckdb)"),
        "{seen}"
    );
    assert!(seen.contains("\"mode\": \"executed\""), "{seen}");
    assert_eq!(receipt_features(root.path()), ["core", "duckdb"]);
}
