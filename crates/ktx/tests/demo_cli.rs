//! End-to-end tests of `ktx demo` on the real binary with a real runtime (installed once per
//! test binary with real uv), including running the printed queries exactly as printed.
//!
//! Needs `KTX_TEST_ASSET_DIR` (set by `cargo xtask test`, or `cargo xtask build-wheel --out DIR`)
//! and `uv` and `python3` on PATH.
// Unix only: installs a real runtime (no Windows CPython under Wine here) and runs the printed queries through sh, as a Unix user would paste them.
#![cfg(unix)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command as StdCommand, Output};
use std::time::Duration;

use assert_cmd::Command;
use common::{sl_and_demo_root as shared_root, sqlite, test_env, text};
use serde_json::Value;

/// The bound of every command here: they run on a ready runtime (or fail before any install).
const LIMIT: Duration = Duration::from_secs(180);

/// `ktx` on runtime root `root` in the common test environment, bounded.
fn ktx(root: &Path) -> Command {
    common::ktx_bounded(root, LIMIT)
}

/// Runs a printed command line with `sh -c`, `ktx` resolving to the binary under test, from
/// `cwd`.
fn run_printed(line: &str, root: &Path, cwd: &Path) -> Output {
    let bin = common::ktx_bin();
    let bin_dir = bin.parent().unwrap();
    let path = match std::env::var_os("PATH") {
        Some(p) => format!("{}:{}", bin_dir.display(), p.to_string_lossy()),
        None => bin_dir.display().to_string(),
    };
    let mut sh = StdCommand::new("sh");
    test_env(&mut sh, root);
    sh.env("PATH", path).current_dir(cwd).args(["-c", line]);
    Command::from_std(sh).timeout(LIMIT).output().unwrap()
}

/// The indented `ktx ...` lines after "Try these queries".
fn printed_queries(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Try these queries"))
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| l.starts_with("ktx "))
        .map(str::to_string)
        .collect()
}

#[test]
fn demo_then_every_printed_query_runs_as_printed() {
    let root = shared_root();
    let work = tempfile::tempdir().unwrap();
    let cwd = fs::canonicalize(work.path()).unwrap();
    let out = ktx(root).current_dir(&cwd).arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let dir = cwd.join("ktx-demo");
    assert!(
        stdout.starts_with(&format!(
            "Created a ktx demo project in {}:\n",
            dir.display()
        )),
        "{stdout}"
    );
    for f in [
        "ktx.yaml",
        "semantic-layer/warehouse/customers.yaml",
        "semantic-layer/warehouse/orders.yaml",
        "semantic-layer/warehouse/order_items.yaml",
        "warehouse.db",
    ] {
        assert!(
            stdout.contains(&format!("\n  {f}\n")),
            "{f} not listed: {stdout}"
        );
        assert!(dir.join(f).is_file(), "{f} not created");
    }
    let queries = printed_queries(&stdout);
    assert_eq!(queries.len(), 3, "{stdout}");
    let executing: Vec<&String> = queries.iter().filter(|q| q.contains("--execute")).collect();
    assert_eq!(executing.len(), 1, "{queries:?}");
    assert!(queries[2].contains("--execute"), "{queries:?}");

    // Run them from another directory: they carry --project-dir.
    let elsewhere = tempfile::tempdir().unwrap();
    let outs: Vec<Output> = queries
        .iter()
        .map(|q| run_printed(q, root, elsewhere.path()))
        .collect();
    for (q, o) in queries.iter().zip(&outs) {
        assert!(o.status.success(), "{q}: {}", text(&o.stderr));
    }

    // 1: compile-only JSON.
    let v: Value = serde_json::from_slice(&outs[0].stdout).unwrap();
    assert_eq!(v["plan"]["execution"]["mode"], "compile_only");
    assert_eq!(v["rows"], Value::Array(vec![]));
    assert!(v["sql"].as_str().unwrap().starts_with("SELECT"));
    // 2: the SQL only.
    assert!(
        text(&outs[1].stdout).starts_with("SELECT"),
        "{}",
        text(&outs[1].stdout)
    );
    // 3: executed, a table whose numbers match hand-written SQL on the warehouse.
    let db = dir.join("warehouse.db");
    let revenue = sqlite(
        &db,
        "SELECT c.segment, SUM(CASE WHEN o.status != 'refunded' THEN o.amount END) \
         FROM orders o LEFT JOIN customers c ON o.customer_id = c.id GROUP BY c.segment",
    );
    let quantity = sqlite(
        &db,
        "SELECT c.segment, SUM(i.quantity) FROM order_items i JOIN orders o ON i.order_id = o.id \
         LEFT JOIN customers c ON o.customer_id = c.id GROUP BY c.segment",
    );
    let table = text(&outs[2].stdout);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "customers.segment",
            "orders.revenue",
            "order_items.quantity_total"
        ],
        "{table}"
    );
    let rows = &lines[2..];
    let expected = revenue.as_array().unwrap();
    assert!(!rows.is_empty(), "{table}");
    assert_eq!(rows.len(), expected.len(), "{table} vs {revenue}");
    assert_eq!(
        text(&outs[2].stderr).trim(),
        format!("{} rows", rows.len()),
        "{}",
        text(&outs[2].stderr)
    );
    let lookup = |set: &Value, seg: &str| -> f64 {
        set.as_array()
            .unwrap()
            .iter()
            .find(|r| r[0].as_str() == Some(seg))
            .unwrap_or_else(|| panic!("{seg} not in {set}"))[1]
            .as_f64()
            .unwrap()
    };
    for row in rows {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), 3, "{row}");
        let rev: f64 = cells[1].parse().unwrap();
        let qty: f64 = cells[2].parse().unwrap();
        assert!(
            (rev - lookup(&revenue, cells[0])).abs() < 1e-6,
            "{row} vs {revenue}"
        );
        assert!(
            (qty - lookup(&quantity, cells[0])).abs() < 1e-6,
            "{row} vs {quantity}"
        );
    }

    // The project validates, found from inside it.
    let out = ktx(root)
        .current_dir(&dir)
        .args(["sl", "validate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).starts_with("OK: "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn rerun_keeps_existing_files_and_recreates_missing_ones() {
    let root = shared_root();
    let work = tempfile::tempdir().unwrap();
    let dir = fs::canonicalize(work.path()).unwrap().join("d");
    let first = ktx(root).arg("demo").arg(&dir).output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));

    let orders = dir.join("semantic-layer/warehouse/orders.yaml");
    let edited = fs::read_to_string(&orders).unwrap() + "# my edit\n";
    fs::write(&orders, &edited).unwrap();
    fs::remove_file(dir.join("warehouse.db")).unwrap();
    let out = ktx(root)
        .args(["demo", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dir"], dir.display().to_string());
    assert_eq!(v["created"], serde_json::json!(["warehouse.db"]));
    assert_eq!(v["kept"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["queries"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(fs::read_to_string(&orders).unwrap(), edited);
    assert!(dir.join("warehouse.db").is_file());

    let out = ktx(root).arg("demo").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("already complete"), "{stdout}");
    assert!(stdout.contains("  warehouse.db  (kept)\n"), "{stdout}");
}

#[test]
fn a_non_empty_foreign_directory_is_refused_untouched() {
    let root = shared_root();
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("notes.txt"), "mine").unwrap();
    let out = ktx(root)
        .current_dir(work.path())
        .args(["demo", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("is not empty"),
        "{err}"
    );
    let names: Vec<_> = fs::read_dir(work.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
    assert_eq!(
        fs::read_to_string(work.path().join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn no_input_without_a_runtime_names_the_install_and_creates_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = ktx(empty.path())
        .current_dir(work.path())
        .args(["demo", "--no-input"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("`ktx runtime install`"), "{err}");
    assert!(!work.path().join("ktx-demo").exists());
}

#[test]
fn help_explains_with_examples() {
    let empty = tempfile::tempdir().unwrap();
    let out = ktx(empty.path()).args(["demo", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for part in ["Examples:", "--execute", "[DIR]", "ktx-demo"] {
        assert!(help.contains(part), "{part:?} not in {help}");
    }
}
