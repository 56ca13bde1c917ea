//! How an op's error reads on the real binary with the real runtime: close names travel as
//! data (`details.suggestions`) and ktx prints them on a line of their own, `  did you mean:
//! a, b?`, for every error that has them (the message itself never carries them).
//!
//! Needs `KTX_TEST_ASSET_DIR` and `uv` on PATH, like `sl_cli`.
// Unix only: installs a real runtime with uv and a CPython (none for Windows under Wine here) through tests/common, which is Unix (bin/python, /proc).
#![cfg(unix)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{sl_and_demo_root, text};

const KTX_YAML: &str = "connections:\n  warehouse:\n    driver: sqlite\n    path: warehouse.db\n";
const ORDERS: &str = "name: orders
table: orders
grain: [id]
columns:
  - {name: id, type: number}
  - {name: status, type: string}
  - {name: amount, type: number}
measures:
  - {name: revenue, expr: \"sum(amount)\"}
";

/// `ktx sl query --project-dir DIR --measure orders.revenue ARGS...` (compile only): exit code
/// and stderr.
fn query(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = common::ktx_bounded(sl_and_demo_root(), Duration::from_secs(180))
        .args(["sl", "query", "--project-dir"])
        .arg(dir)
        .args(["--measure", "orders.revenue"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    (out.status.code(), text(&out.stderr))
}

#[test]
fn suggestions_are_printed_from_the_data_on_their_own_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("semantic-layer/warehouse")).unwrap();
    std::fs::write(dir.join("ktx.yaml"), KTX_YAML).unwrap();
    std::fs::write(dir.join("semantic-layer/warehouse/orders.yaml"), ORDERS).unwrap();

    for (args, first_ends, hint) in [
        (
            &["--filter", "status = 'paid'"][..],
            "must be written source.column (string literals take single quotes)",
            "  did you mean: orders.status",
        ),
        (
            &["--filter", "orders.statu = 'paid'"][..],
            "unknown column 'orders.statu'",
            "  did you mean: orders.status",
        ),
        (
            &["--connection-id", "warehous"][..],
            "(known: warehouse)",
            "  did you mean: warehouse",
        ),
        (
            &["--dimension", "orders.stat"][..],
            "unknown dimension 'orders.stat'",
            "  did you mean: orders.status",
        ),
    ] {
        let (code, err) = query(dir, args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {err}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].ends_with(first_ends),
            "{args:?}: {err}"
        );
        assert!(!lines[0].contains("did you mean"), "{args:?}: {err}");
        // The closest name first; more may follow.
        assert!(
            lines[1].starts_with(hint) && lines[1].ends_with('?'),
            "{args:?}: {err}"
        );
    }
}
