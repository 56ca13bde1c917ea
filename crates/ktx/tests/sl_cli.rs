//! End-to-end tests of `ktx sl query` and `ktx sl validate` on the real binary, with a real
//! runtime installed once per test binary (real uv) and small SQLite projects written by each
//! test (the database is created with `python3 -c "import sqlite3 ..."`).
//!
//! Needs `KTX_TEST_ASSET_DIR` (set by `cargo xtask test`, or `cargo xtask build-wheel --out DIR`)
//! and `uv` on PATH.
// Unix only: installs a real runtime with uv and a CPython (none for Windows under Wine here) through tests/common, which is Unix (bin/python, /proc).
#![cfg(unix)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use common::{daemon_dir, process_alive, sl_and_demo_root as shared_root, text, VERSION};
use serde_json::{json, Value};
use tempfile::TempDir;

/// `ktx` on runtime root `root` in the common test environment, bounded: these commands run
/// on a ready runtime (or fail before any install).
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
measures:
  - {name: customer_count, expr: \"count(*)\"}
";

const ORDERS: &str = "name: orders
table: orders
grain: [id]
columns:
  - {name: id, type: number}
  - {name: customer_id, type: number}
  - {name: status, type: string}
  - {name: amount, type: number}
  - {name: created_at, type: time}
joins:
  - {to: customers, \"on\": \"customer_id = customers.id\", relationship: many_to_one}
measures:
  - {name: order_count, expr: \"count(*)\"}
  - {name: revenue, expr: \"sum(amount)\", filter: \"status != 'refunded'\"}
segments:
  - {name: large, expr: \"amount >= 50\"}
";

const ORDER_ITEMS: &str = "name: order_items
table: order_items
grain: [id]
columns:
  - {name: id, type: number}
  - {name: order_id, type: number}
  - {name: quantity, type: number}
joins:
  - {to: orders, \"on\": \"order_id = orders.id\", relationship: many_to_one}
measures:
  - {name: quantity_total, expr: \"sum(quantity)\"}
";

/// The warehouse. By hand (status 'refunded' excluded from revenue):
///   enterprise (customers 1, 3): orders 1 (100), 2 (50, refunded), 4 (20.5)
///       revenue 120.5, order_count 3, quantity_total 2+1 + 1+3 = 7
///   smb (customer 2): orders 3 (30), 5 (10)
///       revenue 40, order_count 2, quantity_total 5
/// Orders 1 and 4 have two items each: a naive join would double their revenue (241 / 40).
const WAREHOUSE_PY: &str = r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executescript("""
CREATE TABLE customers (id INTEGER PRIMARY KEY, segment TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT, amount REAL,
                     created_at TEXT);
CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER, quantity INTEGER);
INSERT INTO customers VALUES (1, 'enterprise'), (2, 'smb'), (3, 'enterprise');
INSERT INTO orders VALUES
  (1, 1, 'completed', 100.0, '2024-01-15 10:00:00'),
  (2, 1, 'refunded',   50.0, '2024-01-20 11:00:00'),
  (3, 2, 'completed',  30.0, '2024-02-03 12:00:00'),
  (4, 3, 'completed',  20.5, '2024-02-10 13:00:00'),
  (5, 2, 'pending',    10.0, '2024-03-01 14:00:00');
INSERT INTO order_items VALUES (1, 1, 2), (2, 1, 1), (3, 3, 5), (4, 4, 1), (5, 4, 3);
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
        fs::write(sources.join("order_items.yaml"), ORDER_ITEMS).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-c", WAREHOUSE_PY])
            .arg(dir.join("warehouse.db"))
            .output()
            .expect("python3 must be on PATH to build the test warehouse");
        assert!(out.status.success(), "{}", text(&out.stderr));
        Project { _tmp: tmp, dir }
    }

    fn source(&self, name: &str) -> PathBuf {
        self.dir.join("semantic-layer/warehouse").join(name)
    }

    /// `python3` + sqlite3 answer to `sql` on the warehouse, as JSON.
    fn sqlite(&self, sql: &str) -> Value {
        common::sqlite(&self.dir.join("warehouse.db"), sql)
    }
}

/// `ktx sl query --project-dir P ARGS...` on the shared runtime.
fn query(root: &Path, p: &Project, args: &[&str]) -> Output {
    ktx(root)
        .args(["sl", "query", "--project-dir"])
        .arg(&p.dir)
        .args(args)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

fn assert_rows(got: &Value, want: &[(&str, &[f64])]) {
    let rows = got.as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "rows {got}");
    for (row, (dim, nums)) in rows.iter().zip(want) {
        let row = row.as_array().unwrap();
        assert_eq!(row[0], json!(dim), "rows {got}");
        assert_eq!(row.len(), nums.len() + 1, "rows {got}");
        for (cell, n) in row[1..].iter().zip(*nums) {
            let v = cell
                .as_f64()
                .unwrap_or_else(|| panic!("not a number in {got}"));
            assert!((v - n).abs() < 1e-9, "{v} != {n} in {got}");
        }
    }
}

// ---------------------------------------------------------------- query

#[test]
fn compile_only_json_is_the_op_result_with_real_sql() {
    let root = shared_root();
    let p = Project::new();
    let out = query(
        root,
        &p,
        &[
            "--measure",
            "orders.revenue",
            "--dimension",
            "customers.segment",
        ],
    );
    let stdout = text(&out.stdout);
    let v = json_of(&out);
    assert_eq!(v["connectionId"], "warehouse");
    assert_eq!(v["dialect"], "sqlite");
    assert_eq!(v["headers"], json!(["customers.segment", "orders.revenue"]));
    assert_eq!(v["rows"], json!([]));
    assert_eq!(v["totalRows"], Value::Null);
    assert_eq!(v["plan"]["execution"]["mode"], "compile_only");
    let sql = v["sql"].as_str().unwrap();
    for part in [
        "SELECT",
        "FROM orders",
        "LEFT JOIN customers",
        "GROUP BY",
        "'refunded'",
    ] {
        assert!(sql.contains(part), "{part:?} not in {sql}");
    }
    // The keys come in the contract's order, pretty-printed.
    let pos = |k: &str| {
        stdout
            .find(&format!("\n  \"{k}\":"))
            .unwrap_or_else(|| panic!("{k} in {stdout}"))
    };
    let order = [
        "connectionId",
        "dialect",
        "sql",
        "headers",
        "rows",
        "totalRows",
        "plan",
    ];
    assert!(order.windows(2).all(|w| pos(w[0]) < pos(w[1])), "{stdout}");

    // The compiled SQL is real: sqlite runs it and gets the hand-computed answer.
    assert_eq!(p.sqlite(sql), json!([["enterprise", 120.5], ["smb", 40.0]]));
}

#[test]
fn execute_returns_the_hand_computed_rows_without_fan_out() {
    let root = shared_root();
    let p = Project::new();
    let v = json_of(&query(
        root,
        &p,
        &[
            "--measure",
            "orders.revenue",
            "--measure",
            "orders.order_count",
            "--dimension",
            "customers.segment",
            "--execute",
        ],
    ));
    assert_eq!(v["plan"]["execution"]["mode"], "executed");
    assert_eq!(v["totalRows"], 2);
    assert_rows(
        &v["rows"],
        &[("enterprise", &[120.5, 3.0]), ("smb", &[40.0, 2.0])],
    );

    // Same revenue with a measure across the one_to_many edge to order_items.
    let v = json_of(&query(
        root,
        &p,
        &[
            "--measure",
            "orders.revenue",
            "--measure",
            "order_items.quantity_total",
            "--dimension",
            "customers.segment",
            "--execute",
        ],
    ));
    assert_rows(
        &v["rows"],
        &[("enterprise", &[120.5, 7.0]), ("smb", &[40.0, 5.0])],
    );

    // Filters, a HAVING filter, a segment, ordering, a time granularity.
    let v = json_of(&query(
        root,
        &p,
        &[
            "--measure",
            "orders.order_count",
            "--dimension",
            "customers.segment",
            "--filter",
            "orders.status != 'pending'",
            "--filter",
            "orders.order_count >= 2",
            "--execute",
        ],
    ));
    assert_rows(&v["rows"], &[("enterprise", &[3.0])]);
    let v = json_of(&query(
        root,
        &p,
        &[
            "--measure",
            "orders.order_count",
            "--dimension",
            "orders.created_at:month",
            "--segment",
            "orders.large",
            "--execute",
        ],
    ));
    assert_rows(&v["rows"], &[("2024-01-01", &[2.0])]);
    let v = json_of(&query(
        root,
        &p,
        &[
            "--measure",
            "orders.revenue",
            "--dimension",
            "customers.segment",
            "--order-by",
            "orders.revenue:asc",
            "--limit",
            "1",
            "--execute",
        ],
    ));
    assert_rows(&v["rows"], &[("smb", &[40.0])]);
}

#[test]
fn format_sql_prints_only_the_sql() {
    let root = shared_root();
    let p = Project::new();
    let args = [
        "--measure",
        "orders.order_count",
        "--dimension",
        "orders.status",
    ];
    let v = json_of(&query(root, &p, &args));
    let out = query(root, &p, &[&args[..], &["--format", "sql"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}\n", v["sql"].as_str().unwrap().trim_end())
    );
}

#[test]
fn format_table_aligns_rows_and_counts_them_on_stderr() {
    let root = shared_root();
    let p = Project::new();
    let out = query(
        root,
        &p,
        &[
            "--measure",
            "orders.revenue",
            "--measure",
            "orders.order_count",
            "--dimension",
            "customers.segment",
            "--execute",
            "--format",
            "table",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "customers.segment  orders.revenue  orders.order_count\n\
         -----------------  --------------  ------------------\n\
         enterprise                  120.5                   3\n\
         smb                          40.0                   2\n"
    );
    assert_eq!(text(&out.stderr).trim(), "2 rows");

    // --max-rows cuts the rows shown; the count line says so.
    let out = query(
        root,
        &p,
        &[
            "--measure",
            "orders.revenue",
            "--dimension",
            "customers.segment",
            "--execute",
            "--max-rows",
            "1",
            "--format",
            "table",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        3,
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("1 of 2 rows shown (--max-rows 1)"),
        "{}",
        text(&out.stderr)
    );

    // Without --execute there are no rows: the SQL, and a note.
    let out = query(
        root,
        &p,
        &["--measure", "orders.revenue", "--format", "table"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("SELECT"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("nothing was executed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn project_is_found_from_a_subdirectory() {
    let root = shared_root();
    let p = Project::new();
    let out = ktx(root)
        .current_dir(p.dir.join("semantic-layer/warehouse"))
        .args([
            "sl",
            "query",
            "--measure",
            "customers.customer_count",
            "--execute",
        ])
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["rows"], json!([[3]]));
}

#[test]
fn no_project_names_the_start_dir_and_ktx_demo_before_any_install() {
    // An empty runtime root and --no-input: the project error comes first, nothing installed.
    let empty = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let start = fs::canonicalize(cwd.path()).unwrap();
    for sub in [
        &["query", "--measure", "orders.revenue"][..],
        &["validate"][..],
    ] {
        let out = ktx(empty.path())
            .current_dir(&start)
            .args(["--no-input", "sl"])
            .args(sub)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!("error: no ktx.yaml in {}", start.display())),
            "{err}"
        );
        assert!(err.contains("`ktx demo`"), "{err}");
    }
    let out = ktx(empty.path())
        .args(["sl", "validate", "--no-input", "--project-dir"])
        .arg(&start)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("no ktx.yaml in {}", start.display())),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn no_input_without_a_runtime_names_ktx_runtime_install() {
    let empty = tempfile::tempdir().unwrap();
    let p = Project::new();
    let out = ktx(empty.path())
        .args([
            "sl",
            "query",
            "--no-input",
            "--measure",
            "orders.revenue",
            "--project-dir",
        ])
        .arg(&p.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: the KTX Python runtime"), "{err}");
    assert!(err.contains("`ktx runtime install`"), "{err}");
    assert!(
        !empty.path().join(VERSION).join("manifest.json").exists(),
        "--no-input installed something"
    );
}

#[test]
fn usage_errors_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        &["sl", "query"][..],
        &[
            "sl",
            "query",
            "--measure",
            "orders.revenue",
            "--max-rows",
            "5",
        ],
        &["sl", "query", "--measure", "orders.revenue", "--limit", "0"],
        &[
            "sl",
            "query",
            "--measure",
            "orders.revenue",
            "--format",
            "csv",
        ],
        &[
            "sl",
            "query",
            "--measure",
            "orders.revenue",
            "--yes",
            "--no-input",
        ],
        &["sl"],
    ] {
        let out = ktx(empty.path()).args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = ktx(empty.path())
        .args(["sl", "query", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for part in ["Examples:", "--execute", "compile_only", "--format table"] {
        assert!(help.contains(part), "{part:?} not in {help}");
    }
}

#[test]
fn unknown_measure_suggests_the_closest_names() {
    let root = shared_root();
    let p = Project::new();
    let out = query(root, &p, &["--measure", "orders.revenu"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some("error: unknown measure 'orders.revenu'"),
        "{err}"
    );
    let hint = lines.next().unwrap_or_default();
    assert!(
        hint.starts_with("  did you mean: orders.revenue") && hint.ends_with('?'),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_connection_lists_the_known_ones() {
    let root = shared_root();
    let p = Project::new();
    let out = query(
        root,
        &p,
        &["--measure", "orders.revenue", "--connection-id", "nope"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: unknown connection 'nope'") && err.contains("known: warehouse"),
        "{err}"
    );
}

#[test]
fn injection_filter_is_refused_and_the_table_stays() {
    let root = shared_root();
    let p = Project::new();
    for filter in [
        "1=1; DROP TABLE orders",
        "orders.id IN (SELECT id FROM orders)",
        "orders.id IN pragma_table_info('orders')",
        "load_extension('x') IS NULL",
    ] {
        let out = query(
            root,
            &p,
            &[
                "--measure",
                "orders.order_count",
                "--filter",
                filter,
                "--execute",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{filter}: {}",
            text(&out.stdout)
        );
        let err = text(&out.stderr);
        assert!(err.starts_with("error: "), "{err}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    }
    assert_eq!(p.sqlite("SELECT count(*) FROM orders"), json!([[5]]));
}

// ---------------------------------------------------------------- validate

#[test]
fn validate_a_good_project() {
    let root = shared_root();
    let p = Project::new();
    let out = ktx(root)
        .current_dir(&p.dir)
        .args(["sl", "validate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "OK: {}: 1 connection, 3 source files, no errors\n",
            p.dir.display()
        )
    );
    let out = ktx(root)
        .args(["sl", "validate", "--json", "--project-dir"])
        .arg(&p.dir)
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(
        v,
        json!({"schemaVersion": 1, "ok": true, "projectDir": p.dir, "connections": 1, "sources": 3,
               "errors": [], "warnings": [], "databases": [{"connectionId": "warehouse",
               "driver": "sqlite", "path": p.dir.join("warehouse.db"), "checked": true,
               "reason": null}]})
    );
}

#[test]
fn validate_a_broken_project_names_file_line_and_key() {
    let root = shared_root();
    let p = Project::new();
    // Line 5 opens a flow mapping that line 6 does not close.
    fs::write(
        p.source("customers.yaml"),
        "name: customers\ntable: customers\ngrain: [id]\ncolumns:\n  - {name: id, type: number\n  - {name: segment, type: string}\n",
    )
    .unwrap();
    fs::write(
        p.source("order_items.yaml"),
        ORDER_ITEMS.replace("sum(quantity)", "sum(qty)"),
    )
    .unwrap();
    let out = ktx(root)
        .args(["sl", "validate", "--project-dir"])
        .arg(&p.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("semantic-layer/warehouse/customers.yaml:6: invalid YAML")
            && lines[0].contains("line 5"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("semantic-layer/warehouse/order_items.yaml:11: measures[0].expr: ")
            && lines[1].contains("qty"),
        "{stdout}"
    );
    assert_eq!(
        lines[2],
        format!(
            "2 errors in {} (1 connection, 3 source files)",
            p.dir.display()
        )
    );

    let out = ktx(root)
        .args(["sl", "validate", "--json", "--project-dir"])
        .arg(&p.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["line"], 6);
    assert_eq!(v["errors"][1]["key"], "measures[0].expr");

    // A query on the broken project fails with the file and line too.
    let out = query(root, &p, &["--measure", "orders.revenue"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: invalid YAML in project"), "{err}");
    assert!(
        err.contains("semantic-layer/warehouse/customers.yaml:6:"),
        "{err}"
    );
}

// ---------------------------------------------------------------- daemon

#[test]
fn daemon_answers_the_same_as_one_shot() {
    // The daemon started here exits by itself after 3 idle seconds (never during a call), so
    // it cannot cut a call of a test running in parallel, in this process or another one.
    let root = shared_root();
    let p = Project::new();
    let args = [
        "--measure",
        "orders.revenue",
        "--dimension",
        "customers.segment",
        "--execute",
    ];
    let one_shot = json_of(&query(root, &p, &args));
    let out = ktx(root)
        .env("KTX_DAEMON_IDLE_TIMEOUT", "3")
        .args(["sl", "query", "--daemon", "--project-dir"])
        .arg(&p.dir)
        .args(args)
        .output()
        .unwrap();
    let state = daemon_dir(root).join("state.json");
    let state: Value = serde_json::from_str(&fs::read_to_string(&state).unwrap_or_else(|e| {
        panic!(
            "no daemon state after --daemon ({e}): {}",
            text(&out.stderr)
        )
    }))
    .unwrap();
    let pid = state["pid"].as_u64().unwrap();
    assert!(process_alive(pid), "daemon {pid} is not running");
    let via_daemon = json_of(&out);
    assert_eq!(via_daemon["rows"], one_shot["rows"]);
    assert_eq!(via_daemon["sql"], one_shot["sql"]);
    assert_rows(
        &via_daemon["rows"],
        &[("enterprise", &[120.5]), ("smb", &[40.0])],
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // `ktx sl query ... | head -0`: the reader is gone before ktx writes.
    let root = shared_root();
    let p = Project::new();
    let mut cmd = common::ktx_std(root);
    cmd.args([
        "sl",
        "query",
        "--measure",
        "orders.revenue",
        "--project-dir",
    ])
    .arg(&p.dir)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // ktx's one convention for a closed stdout: a quiet exit 141, as SIGPIPE would give.
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn postgres_compiles_but_has_no_executor_and_ambiguous_joins_name_the_sources() {
    let root = shared_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sources = dir.join("semantic-layer/pg");
    fs::create_dir_all(&sources).unwrap();
    fs::write(
        dir.join("ktx.yaml"),
        "connections:\n  pg:\n    driver: postgres\n",
    )
    .unwrap();
    // orders -> customers -> regions and orders -> stores -> regions: two shortest paths.
    fs::write(
        sources.join("orders.yaml"),
        "name: orders\ntable: orders\ngrain: [id]\ncolumns:\n  - {name: id, type: number}\n  - {name: customer_id, type: number}\n  - {name: store_id, type: number}\n  - {name: created_at, type: time}\njoins:\n  - {to: customers, \"on\": \"customer_id = customers.id\", relationship: many_to_one}\n  - {to: stores, \"on\": \"store_id = stores.id\", relationship: many_to_one}\nmeasures:\n  - {name: order_count, expr: \"count(*)\"}\n",
    )
    .unwrap();
    for (name, cols) in [("customers", "region_id"), ("stores", "region_id")] {
        fs::write(
            sources.join(format!("{name}.yaml")),
            format!("name: {name}\ntable: {name}\ngrain: [id]\ncolumns:\n  - {{name: id, type: number}}\n  - {{name: {cols}, type: number}}\njoins:\n  - {{to: regions, \"on\": \"{cols} = regions.id\", relationship: many_to_one}}\n"),
        )
        .unwrap();
    }
    fs::write(
        sources.join("regions.yaml"),
        "name: regions\ntable: regions\ngrain: [id]\ncolumns:\n  - {name: id, type: number}\n  - {name: name, type: string}\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        ktx(root)
            .args(["sl", "query", "--project-dir"])
            .arg(dir)
            .args(args)
            .output()
            .unwrap()
    };

    let v = json_of(&run(&[
        "--measure",
        "orders.order_count",
        "--dimension",
        "orders.created_at:week",
    ]));
    assert_eq!(v["dialect"], "postgres");
    assert_eq!(v["connectionId"], "pg");
    assert!(
        v["sql"].as_str().unwrap().contains("DATE_TRUNC('WEEK'"),
        "{}",
        v["sql"]
    );

    // PostgreSQL executes once its driver feature is installed; without a terminal, ktx
    // refuses to install it and names the command.
    let out = run(&["--measure", "orders.order_count", "--execute"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("runtime feature `postgres`")
            && err.contains("ktx runtime install --feature postgres"),
        "{err}"
    );
    // A driver ktx compiles for but cannot run says so.
    fs::write(
        dir.join("ktx.yaml"),
        "connections:\n  pg:\n    driver: snowflake\n",
    )
    .unwrap();
    let out = run(&["--measure", "orders.order_count", "--execute"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: no executor for driver snowflake"),
        "{}",
        text(&out.stderr)
    );
    fs::write(
        dir.join("ktx.yaml"),
        "connections:\n  pg:\n    driver: postgres\n",
    )
    .unwrap();

    let out = run(&[
        "--measure",
        "orders.order_count",
        "--dimension",
        "regions.name",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: ambiguous join path"), "{err}");
    for name in ["orders", "regions", "customers", "stores"] {
        assert!(err.contains(name), "{name} not in {err}");
    }
}
