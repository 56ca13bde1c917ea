//! Issue 12 on the real `ktx` binary and a real runtime: `ktx sl validate` checks what
//! `--execute` will meet (item 12), `ktx sl query` speaks in user terms (item 13: filter parse
//! errors, nesting limit, order-by direction, `--json`), and `--timeout SECONDS` (item 6, CLI
//! part).
//!
//! Needs `KTX_TEST_ASSET_DIR` (set by `cargo xtask test`, or `cargo xtask build-wheel --out DIR`)
//! and `uv` on PATH; each test writes its own small SQLite project.
// Unix only: installs a real runtime with uv and a CPython (none for Windows under Wine here) through tests/common, which is Unix (bin/python, /proc).
#![cfg(unix)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{sl_and_demo_root as shared_root, text};
use serde_json::{json, Value};
use tempfile::TempDir;

/// `ktx` on runtime root `root`, bounded: these commands run on a ready runtime.
fn ktx(root: &Path) -> Command {
    common::ktx_bounded(root, Duration::from_secs(180))
}

const KTX_YAML: &str = "connections:\n  warehouse:\n    driver: sqlite\n    path: warehouse.db\n";

const CUSTOMERS: &str = "name: customers
table: customers
grain: [id]
columns:
  - {name: id, type: number}
  - {name: segment, type: string}
";

/// Line 8 declares `amount`, line 9 the computed `big` column, line 13 the `revenue` measure.
const ORDERS: &str = "name: orders
table: orders
grain: [id]
columns:
  - {name: id, type: number}
  - {name: customer_id, type: number}
  - {name: status, type: string}
  - {name: amount, type: number}
  - {name: big, type: boolean, expr: \"amount >= 50\"}
joins:
  - {to: customers, \"on\": \"customer_id = customers.id\", relationship: many_to_one}
measures:
  - {name: order_count, expr: \"count(*)\"}
  - {name: revenue, expr: \"sum(amount)\"}
";

const WAREHOUSE_PY: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executescript("""
CREATE TABLE customers (id INTEGER PRIMARY KEY, segment TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT, amount REAL);
INSERT INTO customers VALUES (1, 'enterprise'), (2, 'smb');
INSERT INTO orders VALUES (1, 1, 'completed', 100.0), (2, 2, 'completed', 30.0);
""")
con.commit()
con.close()
"#;

/// A project in a fresh temporary directory.
struct Project {
    _tmp: TempDir,
    dir: PathBuf,
}

impl Project {
    fn new() -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fs::canonicalize(tmp.path()).unwrap().join("proj");
        let sources = dir.join("semantic-layer/warehouse");
        fs::create_dir_all(&sources).unwrap();
        fs::write(dir.join("ktx.yaml"), KTX_YAML).unwrap();
        fs::write(sources.join("customers.yaml"), CUSTOMERS).unwrap();
        fs::write(sources.join("orders.yaml"), ORDERS).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-c", WAREHOUSE_PY])
            .arg(dir.join("warehouse.db"))
            .output()
            .expect("python3 must be on PATH to build the test warehouse");
        assert!(out.status.success(), "{}", text(&out.stderr));
        Project { _tmp: tmp, dir }
    }

    fn db(&self) -> PathBuf {
        self.dir.join("warehouse.db")
    }

    /// Runs `statements` on the warehouse with python3's sqlite3.
    fn sql(&self, statements: &str) {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
            ])
            .arg(self.db())
            .arg(statements)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

fn sl(root: &Path, p: &Project, args: &[&str]) -> Output {
    ktx(root)
        .arg("sl")
        .args(args)
        .arg("--project-dir")
        .arg(&p.dir)
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

// ---------------------------------------------------------------- item 12: validate

#[test]
fn validate_reports_a_missing_database_file_at_its_ktx_yaml_line() {
    let root = shared_root();
    let p = Project::new();
    fs::remove_file(p.db()).unwrap();
    let out = sl(root, &p, &["validate"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(&format!(
            "ktx.yaml:4: connections.warehouse.path: SQLite database not found: {}",
            p.db().display()
        )),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        format!(
            "1 error in {} (1 connection, 2 source files)",
            p.dir.display()
        )
    );
}

#[test]
fn validate_reports_missing_tables_and_columns_at_their_lines() {
    let root = shared_root();
    let p = Project::new();
    p.sql(
        "ALTER TABLE orders RENAME COLUMN amount TO amt; ALTER TABLE customers RENAME TO clients;",
    );
    let out = sl(root, &p, &["validate"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with(
            "semantic-layer/warehouse/customers.yaml:2: table: table 'customers' does not exist in"
        ),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(
            "semantic-layer/warehouse/orders.yaml:8: columns[3].name: column 'amount' does not exist in table orders"
        ) && lines[1].contains("did you mean amt?"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("semantic-layer/warehouse/orders.yaml:9: columns[4].expr: ")
            && lines[2].contains("no such column"),
        "{stdout}"
    );
    assert!(lines[3].starts_with("3 errors in "), "{stdout}");

    // What validate now reports is what --execute hits.
    let out = sl(
        root,
        &p,
        &["query", "--measure", "orders.revenue", "--execute"],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn validate_json_adds_warnings_and_databases_after_errors() {
    let root = shared_root();
    let p = Project::new();
    let out = sl(root, &p, &["validate", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = stdout_json(&out);
    assert_eq!(
        v,
        json!({
            "schemaVersion": 1,
            "ok": true,
            "projectDir": p.dir,
            "connections": 1,
            "sources": 2,
            "errors": [],
            "warnings": [],
            "databases": [{
                "connectionId": "warehouse",
                "driver": "sqlite",
                "path": p.db(),
                "checked": true,
                "reason": null
            }]
        })
    );
    let stdout = text(&out.stdout);
    let pos = |k: &str| {
        stdout
            .find(&format!("\n  \"{k}\":"))
            .unwrap_or_else(|| panic!("{k} in {stdout}"))
    };
    let order = [
        "ok",
        "projectDir",
        "connections",
        "sources",
        "errors",
        "warnings",
        "databases",
    ];
    assert!(order.windows(2).all(|w| pos(w[0]) < pos(w[1])), "{stdout}");
}

#[test]
fn validate_says_what_it_could_not_check() {
    let root = shared_root();
    let p = Project::new();
    fs::write(
        p.dir.join("ktx.yaml"),
        format!("{KTX_YAML}  pg:\n    driver: postgres\n"),
    )
    .unwrap();
    let out = sl(root, &p, &["validate"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with(
            "warning: ktx.yaml:6: connections.pg.driver: could not check connection 'pg' against its database"
        ),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        format!(
            "OK: {}: 2 connections, 2 source files, no errors; 1 warning: not everything could be checked against the database",
            p.dir.display()
        )
    );
    let v = stdout_json(&sl(root, &p, &["validate", "--json"]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["warnings"][0]["line"], 6);
    assert_eq!(v["databases"][0]["connectionId"], "pg");
    assert_eq!(v["databases"][0]["checked"], false);
}

// ---------------------------------------------------------------- item 13: user terms

fn query_stderr(root: &Path, p: &Project, args: &[&str]) -> String {
    let mut all = vec!["query", "--measure", "orders.revenue"];
    all.extend_from_slice(args);
    let out = sl(root, p, &all);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    for internal in [
        "sqlglot",
        "<class",
        "Required keyword",
        "Traceback",
        "RecursionError",
    ] {
        assert!(!err.contains(internal), "{internal:?} in {err}");
    }
    err
}

#[test]
fn filter_errors_name_the_filter_in_plain_words() {
    let root = shared_root();
    let p = Project::new();
    let err = query_stderr(root, &p, &["--filter", "orders.status ="]);
    assert_eq!(
        err.lines().next(),
        Some("error: cannot parse filter 'orders.status =': '=' has nothing on its right (at character 15)"),
        "{err}"
    );
    let err = query_stderr(root, &p, &["--filter", "orders.amount BETWEEN 1"]);
    assert!(err.contains("BETWEEN needs both bounds"), "{err}");
}

#[test]
fn deeply_nested_filters_name_the_nesting_limit() {
    let root = shared_root();
    let p = Project::new();
    for depth in [25, 2000] {
        let filter = format!(
            "{}orders.amount > 1{}",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let err = query_stderr(root, &p, &["--filter", &filter]);
        assert!(err.starts_with("error: filter '((((("), "{err}");
        assert!(err.contains("nests too deeply: at most 20 levels"), "{err}");
    }
    let not_chain = format!("{}orders.amount > 1", "NOT ".repeat(500));
    let err = query_stderr(root, &p, &["--filter", &not_chain]);
    assert!(err.contains("nests too deeply"), "{err}");
}

#[test]
fn order_by_direction_must_be_asc_or_desc() {
    let root = shared_root();
    let p = Project::new();
    let err = query_stderr(root, &p, &["--order-by", "orders.revenue:up"]);
    assert!(
        err.starts_with("error: cannot order by 'orders.revenue:up': the direction after ':' must be asc or desc, not 'up'"),
        "{err}"
    );
    assert!(!err.contains("not in the query"), "{err}");
}

#[test]
fn query_json_flag_is_format_json() {
    let root = shared_root();
    let p = Project::new();
    let args = [
        "query",
        "--measure",
        "orders.revenue",
        "--dimension",
        "customers.segment",
    ];
    let with_flag = sl(root, &p, &[&args[..], &["--json"]].concat());
    assert!(with_flag.status.success(), "{}", text(&with_flag.stderr));
    let with_format = sl(root, &p, &[&args[..], &["--format", "json"]].concat());
    assert!(with_format.status.success());
    assert_eq!(text(&with_flag.stdout), text(&with_format.stdout));
    assert_eq!(stdout_json(&with_flag)["connectionId"], "warehouse");

    // --json and another --format contradict each other: a usage error.
    let out = sl(
        root,
        &p,
        &[&args[..], &["--json", "--format", "sql"]].concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--json"),
        "{}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------- item 6: --timeout

#[test]
fn timeout_refuses_non_finite_and_non_positive_values_before_any_runtime() {
    let empty = tempfile::tempdir().unwrap();
    for bad in [
        "nan", "NaN", "inf", "-inf", "0", "-1", "0.0", "1e400", "86401", "abc", "",
    ] {
        let out = common::ktx_without_assets(empty.path())
            .args([
                "sl",
                "query",
                "--measure",
                "orders.revenue",
                "--execute",
                "--timeout",
                bad,
            ])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(
            err.contains("--timeout") && err.contains("greater than 0"),
            "{bad:?}: {err}"
        );
    }
    // Like --max-rows, it only means something with --execute.
    let out = common::ktx_without_assets(empty.path())
        .args([
            "sl",
            "query",
            "--measure",
            "orders.revenue",
            "--timeout",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--execute"));
    assert!(
        !empty.path().join(common::VERSION).exists(),
        "nothing installed"
    );
}

#[test]
fn timeout_bounds_the_execution() {
    let root = shared_root();
    let p = Project::new();
    // A source whose rows take minutes to count: a billion-row recursive CTE.
    fs::write(
        p.dir.join("semantic-layer/warehouse/slow.yaml"),
        "name: slow
sql: \"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT x FROM c\"
columns:
  - {name: x, type: number}
measures:
  - {name: n, expr: \"count(*)\"}
",
    )
    .unwrap();
    let started = Instant::now();
    let out = sl(
        root,
        &p,
        &[
            "query",
            "--measure",
            "slow.n",
            "--execute",
            "--timeout",
            "1.5",
        ],
    );
    let elapsed = started.elapsed();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // The runtime names the timeout it was given (the wording is execute.py's).
    assert!(
        err.contains("1.5"),
        "the runtime got timeoutSeconds 1.5: {err}"
    );
    // Far below the default 60 s: the query stopped at its own timeout (generous for a slow
    // machine: the bound is the runtime's start, not the query).
    assert!(elapsed < Duration::from_secs(45), "took {elapsed:?}: {err}");
}
