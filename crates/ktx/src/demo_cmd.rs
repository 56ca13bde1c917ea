//! `ktx demo [DIR]`: the newcomer's first run. The runtime's `demo.scaffold` op writes a
//! small project (ktx.yaml, three sources, a SQLite warehouse built by Python, so no binary file
//! is committed); this command prints what was written and three queries to try.
//!
//! The queries come from the op and carry `--project-dir <absolute dir>`, so they run from any
//! directory, exactly as printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use ktx_runner::ops::{self, DemoScaffold, ScaffoldResult};

use crate::output::{emit, emit_json, ktx_command, ktx_command_line, op_error};
use crate::{CliError, GlobalArgs};

/// Create a demo project (a small SQLite warehouse and its semantic layer) and show queries to try
///
/// Writes DIR/ktx.yaml, DIR/semantic-layer/warehouse/{customers,orders,order_items}.yaml and
/// DIR/warehouse.db (customers, orders, order_items), then prints three `ktx sl query`
/// command lines; the last one runs with --execute. They carry --project-dir, so they work from
/// any directory (inside DIR you can drop it).
///
/// DIR must be new, empty, or an earlier demo: a re-run recreates missing files and keeps the
/// existing ones (your edits survive). Needs the KTX Python runtime (installed on first use
/// with --yes, or after asking).
///
/// Examples:
///   ktx demo
///   ktx demo /tmp/my-demo --yes
///   cd ktx-demo && ktx sl validate
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, next_display_order = 10)]
pub struct Args {
    /// Directory to create the demo in (relative to the current directory).
    #[arg(value_name = "DIR", default_value = "ktx-demo")]
    dir: PathBuf,
    /// Print the result as JSON: {schemaVersion, dir, files, created, kept, queries}.
    #[arg(long)]
    json: bool,
}

/// Runs `ktx demo`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let dir = absolute(&args.dir)?;
    let opts = global.call_options()?;
    let mut reply = ops::demo_scaffold(&DemoScaffold { dir }, &opts).map_err(op_error)?;
    // The op writes `ktx ...`; a user who got ktx from npm runs `npx @kaelio/ktx ...`.
    for q in &mut reply.queries {
        *q = ktx_command_line(q);
    }
    if args.json {
        emit_json(&json!({
            "dir": reply.dir,
            "files": reply.files,
            "created": reply.created,
            "kept": reply.kept,
            "queries": reply.queries,
        }))?;
    } else {
        emit(&render(&reply))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `dir` made absolute against the current directory (it may not exist yet).
fn absolute(dir: &Path) -> Result<PathBuf, CliError> {
    if dir.as_os_str().is_empty() {
        return Err(CliError {
            code: 2,
            message: "DIR must not be empty (default: ktx-demo)".into(),
        });
    }
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| {
        CliError::failure(format!(
            "cannot read the current directory: {e}\n  hint: pass an absolute DIR"
        ))
    })?;
    Ok(cwd.join(dir))
}

/// The human summary: what was written (or kept), then the queries to try.
fn render(reply: &ScaffoldResult) -> String {
    let ScaffoldResult {
        dir,
        files,
        created,
        kept,
        queries,
        ..
    } = reply;
    let mut out = if kept.is_empty() {
        format!("Created a ktx demo project in {dir}:\n")
    } else if created.is_empty() {
        format!("The ktx demo project in {dir} is already complete (nothing changed):\n")
    } else {
        format!("Completed the ktx demo project in {dir} (existing files kept):\n")
    };
    for f in files {
        let note = if kept.contains(f) { "  (kept)" } else { "" };
        out.push_str(&format!("  {f}{note}\n"));
    }
    out.push_str(
        "\nTry these queries (they carry --project-dir, so they run from any directory):\n\n",
    );
    for q in queries {
        out.push_str(&format!("  {q}\n"));
    }
    out.push_str(&format!(
        "\nThen look around: cd {} && {ktx} sl validate && {ktx} sl query --help\n",
        shell_quote(dir),
        ktx = ktx_command()
    ));
    out
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(created: &[&str], kept: &[&str]) -> ScaffoldResult {
        let v = serde_json::json!({
            "dir": "/tmp/d",
            "files": ["ktx.yaml", "warehouse.db"],
            "created": created,
            "kept": kept,
            "queries": ["ktx sl query --project-dir /tmp/d --measure orders.revenue"],
        });
        ops::decode::<DemoScaffold>(v).unwrap()
    }

    #[test]
    fn summary_lists_files_and_queries() {
        let text = render(&reply(&["ktx.yaml", "warehouse.db"], &[]));
        assert!(
            text.starts_with("Created a ktx demo project in /tmp/d:\n  ktx.yaml\n  warehouse.db\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  ktx sl query --project-dir /tmp/d --measure orders.revenue\n"),
            "{text}"
        );
        assert!(text.contains("cd /tmp/d && ktx sl validate"), "{text}");
        let text = render(&reply(&[], &["ktx.yaml", "warehouse.db"]));
        assert!(text.contains("already complete"), "{text}");
        assert!(text.contains("  warehouse.db  (kept)\n"), "{text}");
        let text = render(&reply(&["warehouse.db"], &["ktx.yaml"]));
        assert!(text.contains("existing files kept"), "{text}");
    }

    #[test]
    fn malformed_replies_are_reported() {
        let err = ops::decode::<DemoScaffold>(json!({"dir": "/d", "files": [1]})).unwrap_err();
        assert!(err.contains("`files[0]`"), "{err}");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("/tmp/it's"), "'/tmp/it'\"'\"'s'");
    }
}
