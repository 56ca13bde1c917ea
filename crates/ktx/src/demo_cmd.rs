//! `ktx demo [DIR]`: the newcomer's first run. The runtime's `demo.scaffold` op writes a
//! small project (ktx.yaml, three sources, a SQLite warehouse built by Python, so no binary file
//! is committed); this command prints what was written and three queries to try.
//!
//! The queries come from the op and carry `--project-dir <absolute dir>`, so they run from any
//! directory, exactly as printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::output::{emit, emit_json, ktx_command, ktx_command_line};
use crate::sl_cmd::op_error;
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
    let result = ktx_runner::call("demo.scaffold", json!({"dir": dir}), &opts).map_err(op_error)?;
    let mut reply = Reply::parse(&result)?;
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
        emit(&reply.render())?;
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

/// The parts of `demo.scaffold`'s result this command prints.
#[derive(Debug)]
struct Reply {
    dir: String,
    files: Vec<String>,
    created: Vec<String>,
    kept: Vec<String>,
    queries: Vec<String>,
}

impl Reply {
    fn parse(v: &Value) -> Result<Reply, CliError> {
        let bad = |why: String| {
            CliError::failure(format!(
                "unexpected reply from the runtime's demo.scaffold op: {why}\n  hint: check the runtime with `ktx runtime doctor`"
            ))
        };
        let strings = |key: &str| -> Result<Vec<String>, CliError> {
            v.get(key)
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| bad(format!("`{key}` is not a list of strings")))
        };
        Ok(Reply {
            dir: v
                .get("dir")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no `dir`".into()))?
                .to_string(),
            files: strings("files")?,
            created: strings("created")?,
            kept: strings("kept")?,
            queries: strings("queries")?,
        })
    }

    /// The human summary: what was written (or kept), then the queries to try.
    fn render(&self) -> String {
        let mut out = if self.kept.is_empty() {
            format!("Created a ktx demo project in {}:\n", self.dir)
        } else if self.created.is_empty() {
            format!(
                "The ktx demo project in {} is already complete (nothing changed):\n",
                self.dir
            )
        } else {
            format!(
                "Completed the ktx demo project in {} (existing files kept):\n",
                self.dir
            )
        };
        for f in &self.files {
            let note = if self.kept.contains(f) {
                "  (kept)"
            } else {
                ""
            };
            out.push_str(&format!("  {f}{note}\n"));
        }
        out.push_str(
            "\nTry these queries (they carry --project-dir, so they run from any directory):\n\n",
        );
        for q in &self.queries {
            out.push_str(&format!("  {q}\n"));
        }
        out.push_str(&format!(
            "\nThen look around: cd {} && {ktx} sl validate && {ktx} sl query --help\n",
            shell_quote(&self.dir),
            ktx = ktx_command()
        ));
        out
    }
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

    fn reply(created: &[&str], kept: &[&str]) -> Reply {
        let v = json!({
            "dir": "/tmp/d",
            "files": ["ktx.yaml", "warehouse.db"],
            "created": created,
            "kept": kept,
            "queries": ["ktx sl query --project-dir /tmp/d --measure orders.revenue"],
        });
        Reply::parse(&v).unwrap()
    }

    #[test]
    fn summary_lists_files_and_queries() {
        let text = reply(&["ktx.yaml", "warehouse.db"], &[]).render();
        assert!(
            text.starts_with("Created a ktx demo project in /tmp/d:\n  ktx.yaml\n  warehouse.db\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  ktx sl query --project-dir /tmp/d --measure orders.revenue\n"),
            "{text}"
        );
        assert!(text.contains("cd /tmp/d && ktx sl validate"), "{text}");
        let text = reply(&[], &["ktx.yaml", "warehouse.db"]).render();
        assert!(text.contains("already complete"), "{text}");
        assert!(text.contains("  warehouse.db  (kept)\n"), "{text}");
        let text = reply(&["warehouse.db"], &["ktx.yaml"]).render();
        assert!(text.contains("existing files kept"), "{text}");
    }

    #[test]
    fn malformed_replies_are_reported() {
        let err = Reply::parse(&json!({"dir": "/d", "files": [1]})).unwrap_err();
        assert!(err.message.contains("`files`"), "{}", err.message);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("/tmp/it's"), "'/tmp/it'\"'\"'s'");
    }
}
