//! `ktx sl query` and `ktx sl validate`: the semantic layer, through the runtime's
//! `semantic.query` and `semantic.validate` ops (contract: `python-runtime/src/semantic_layer/ops.py`).
//!
//! The project directory is found here, in Rust, before anything else (so a missing `ktx.yaml`
//! is reported without touching the runtime): `--project-dir` (must hold `ktx.yaml`), else the
//! nearest directory holding `ktx.yaml` from the current directory upwards. The op receives it as
//! an absolute `projectDir`. Every call goes through [`ktx_runner::call`], so the lazy-install
//! policy (`--yes` / `--no-input` / prompt) and the daemon (`--daemon`, `KTX_DAEMON=1`, or one
//! already running) apply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::{json, Map, Value};

use ktx_runner::RunError;

use crate::{CliError, GlobalArgs};

/// The file that marks a project root.
pub const PROJECT_FILE: &str = "ktx.yaml";

/// Query and check the semantic layer (metrics defined in YAML, compiled to SQL)
///
/// A project is a directory with ktx.yaml (connections) and one YAML file per source under
/// semantic-layer/<connection-id>/. ktx finds it from the current directory upwards, or takes
/// --project-dir. New here? `ktx demo` creates a project with a small SQLite warehouse.
///
/// Examples:
///   ktx sl query --measure orders.revenue --dimension customers.segment
///   ktx sl query --measure orders.revenue --dimension orders.created_at:month --execute --format table
///   ktx sl validate
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, next_display_order = 10)]
pub struct Args {
    #[command(subcommand)]
    command: SlCommand,
}

#[derive(Debug, Subcommand)]
enum SlCommand {
    Query(QueryArgs),
    Validate(ValidateArgs),
}

/// How `ktx sl query` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The whole result as pretty JSON: {connectionId, dialect, sql, headers, rows, totalRows, plan}.
    Json,
    /// Only the compiled SQL.
    Sql,
    /// An aligned table of the rows (needs --execute; without it, the SQL is printed instead).
    Table,
}

/// Compile a semantic query to SQL in the connection's dialect, and run it with --execute
///
/// Measures are `source.measure`; dimensions `source.column` or
/// `source.column:day|week|month|quarter|year` (the period's first day, weeks start on Monday);
/// filters are SQL conditions over `source.column` (a condition on a measure becomes HAVING);
/// segments are `source.segment`. Measures are never double counted across one_to_many joins.
///
/// Without --execute nothing touches the database: the JSON has `rows: []`, `totalRows: null`
/// and `plan.execution.mode: "compile_only"`. --execute runs the SQL read-only on sqlite,
/// duckdb, postgres and mysql (MariaDB too) connections; the first query on a postgres, duckdb
/// or mysql connection installs that driver's runtime feature (--yes installs, --no-input
/// names the command, else ktx asks). --max-rows N caps the rows returned (default 1000); when
/// rows were cut, a note on stderr says how many there were.
///
/// Output (--format): json (default; --json is the same) prints the op's full result; sql
/// prints only the SQL; table prints the rows as an aligned table and `N rows` on stderr.
/// `--format table` without --execute has no rows to show: it prints the SQL and a note on
/// stderr that nothing was executed.
///
/// --timeout SECONDS bounds the execution (default 60; the query is interrupted after it).
///
/// Exit codes: 0 success; 1 query or runtime error (`error: ...`, with `did you mean: ...?`
/// when close names exist); 2 usage error.
///
/// Examples:
///   ktx sl query --measure orders.revenue --dimension customers.segment
///   ktx sl query --measure orders.order_count --dimension orders.created_at:month --format sql
///   ktx sl query --measure orders.revenue --dimension customers.segment \
///       --filter "orders.status = 'completed'" --filter "orders.revenue > 100" \
///       --order-by orders.revenue:desc --limit 10 --execute --format table
///   ktx sl query --project-dir ktx-demo --measure orders.revenue --segment orders.large --execute
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, next_display_order = 10)]
struct QueryArgs {
    /// Measure to compute, `source.measure` (repeatable; at least one).
    #[arg(long = "measure", value_name = "M", required = true)]
    measures: Vec<String>,
    /// Dimension to group by, `source.column[:granularity]` (repeatable).
    #[arg(long = "dimension", value_name = "D")]
    dimensions: Vec<String>,
    /// SQL condition over `source.column` or `source.measure` (repeatable; all must hold).
    #[arg(long = "filter", value_name = "F")]
    filters: Vec<String>,
    /// Named segment, `source.segment` (repeatable).
    #[arg(long = "segment", value_name = "S")]
    segments: Vec<String>,
    /// Sort by a dimension or measure of the query, as written, `field[:asc|desc]`
    /// (repeatable; default: the dimensions, ascending).
    #[arg(long = "order-by", value_name = "F[:asc|desc]")]
    order_by: Vec<String>,
    /// Row limit written into the SQL (default 1000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Connection from ktx.yaml (may be omitted when there is only one).
    #[arg(long, value_name = "C")]
    connection_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Same as --format json (the flag `ktx sl validate` and `ktx runtime` commands take).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Run the SQL (read-only) on the connection's database and return the rows.
    #[arg(long)]
    execute: bool,
    /// Rows returned with --execute (default 1000); totalRows still counts every row.
    #[arg(long, value_name = "N", requires = "execute",
          value_parser = clap::value_parser!(u64).range(1..))]
    max_rows: Option<u64>,
    /// Stop the --execute run after SECONDS (a number > 0, at most 86400; default 60).
    #[arg(long, value_name = "SECONDS", requires = "execute", allow_hyphen_values = true,
          value_parser = parse_timeout)]
    timeout: Option<f64>,
    /// Project directory holding ktx.yaml (default: searched from the current directory up).
    #[arg(long, value_name = "P")]
    project_dir: Option<PathBuf>,
}

/// Check every connection and source file of the project, and the databases behind them
///
/// Reports unknown columns in expressions, joins to unknown sources, duplicate names and
/// malformed YAML, one line per problem: `<file>:<line>: <key>: <message>` (file relative to the
/// project; the line is left out when unknown), then a summary. Exit 1 when there are errors.
///
/// It also checks what --execute will meet, without reading a row: each SQLite connection's
/// file must exist and open read-only, and each source's table, columns, measures, segments and
/// joins must be accepted by the database (a missing table or column is reported at the line
/// that declares it). What cannot be checked (a driver ktx does not execute, a locked or
/// unreadable database) is printed as `warning: <file>:<line>: <key>: could not check ...`;
/// warnings alone exit 0.
///
/// Examples:
///   ktx sl validate
///   ktx sl validate --project-dir ktx-demo --json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, next_display_order = 10)]
struct ValidateArgs {
    /// Print the op's result as JSON: {ok, projectDir, connections, sources, errors, warnings,
    /// databases} (the exit code is still 1 when there are errors).
    #[arg(long)]
    json: bool,
    /// Project directory holding ktx.yaml (default: searched from the current directory up).
    #[arg(long, value_name = "P")]
    project_dir: Option<PathBuf>,
}

/// Runs `ktx sl ...`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    match args.command {
        SlCommand::Query(a) => query(a, global),
        SlCommand::Validate(a) => validate(a, global),
    }
}

// ---------------------------------------------------------------- project discovery

/// The project root: `explicit` (relative to `cwd`; must hold `ktx.yaml`), else the nearest of
/// `cwd` and its parents that holds `ktx.yaml`. The result is absolute (canonical when possible).
pub fn resolve_project_dir(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, CliError> {
    if let Some(dir) = explicit {
        let abs = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            cwd.join(dir)
        };
        let abs = std::fs::canonicalize(&abs).unwrap_or(abs);
        if abs.join(PROJECT_FILE).is_file() {
            return Ok(abs);
        }
        let why = if abs.is_dir() {
            format!("no {PROJECT_FILE} in {}", abs.display())
        } else if abs.exists() {
            format!("--project-dir {} is not a directory", abs.display())
        } else {
            format!("--project-dir {} does not exist", abs.display())
        };
        return Err(CliError::failure(format!(
            "{why}\n  hint: pass the directory that holds {PROJECT_FILE}, or create a demo project with `ktx demo`"
        )));
    }
    for dir in cwd.ancestors() {
        if dir.join(PROJECT_FILE).is_file() {
            return Ok(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()));
        }
    }
    Err(CliError::failure(format!(
        "no {PROJECT_FILE} in {} or any parent directory\n  hint: run this inside a ktx project, pass --project-dir DIR, or create a demo project with `ktx demo` (then `cd ktx-demo`)",
        cwd.display()
    )))
}

fn project_dir(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    let cwd = std::env::current_dir().map_err(|e| {
        CliError::failure(format!(
            "cannot read the current directory: {e}\n  hint: pass --project-dir DIR"
        ))
    })?;
    resolve_project_dir(explicit, &cwd)
}

// ---------------------------------------------------------------- errors

/// An op failure as the user sees it: the message, then `did you mean: a, b?` when the op
/// suggested close names (instead of the op's own inline hint, when it ends the message).
pub fn op_error(err: RunError) -> CliError {
    let RunError::Abi {
        message, details, ..
    } = &err
    else {
        return CliError::from(err);
    };
    let suggestions: Vec<&str> = details
        .get("suggestions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut text = message.clone();
    if !suggestions.is_empty() {
        let inline = format!("; did you mean {}?", suggestions.join(", "));
        if let Some(head) = text.strip_suffix(&inline) {
            text = head.to_string();
        }
        if !text.contains("did you mean") {
            text.push_str(&format!("\n  did you mean: {}?", suggestions.join(", ")));
        }
    }
    CliError::failure(text)
}

// Printing goes through the crate's one output path (EPIPE, write errors, schemaVersion).
pub use crate::output::{emit, emit_json};

fn bad_reply(op: &str, why: &str) -> CliError {
    CliError::failure(format!(
        "unexpected reply from the runtime's {op} op: {why}\n  hint: check the runtime with `ktx runtime doctor`"
    ))
}

// ---------------------------------------------------------------- query

/// The largest `--timeout`: a day. A bound keeps the runner's own call timeout (the query
/// timeout plus [`CALL_MARGIN`]) a representable duration.
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

/// Time the runner waits beyond `--timeout` for the answer: the runtime needs a moment to
/// start, stop the query and reply, and it must be the one that reports the timeout.
const CALL_MARGIN: Duration = Duration::from_secs(30);

/// `--timeout`: a finite number of seconds, > 0 and at most [`MAX_TIMEOUT_SECONDS`].
fn parse_timeout(text: &str) -> Result<f64, String> {
    let bad = || {
        format!(
            "must be a number of seconds greater than 0 and at most {MAX_TIMEOUT_SECONDS} (e.g. 30 or 2.5), got {text:?}"
        )
    };
    let seconds: f64 = text.trim().parse().map_err(|_| bad())?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > MAX_TIMEOUT_SECONDS {
        return Err(bad());
    }
    Ok(seconds)
}

/// The runner's time limit for a query call: at least its default, and always longer than the
/// query's own `timeoutSeconds`, so the runtime reports an execution timeout itself.
fn call_timeout(default: Duration, query_timeout: Option<f64>) -> Duration {
    match query_timeout.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
        Some(t) => default.max(t + CALL_MARGIN),
        None => default,
    }
}

/// The `semantic.query` payload for these arguments.
fn query_payload(a: &QueryArgs, project: &Path) -> Value {
    let mut p = Map::new();
    p.insert("projectDir".into(), json!(project));
    if let Some(c) = &a.connection_id {
        p.insert("connectionId".into(), json!(c));
    }
    p.insert("measures".into(), json!(a.measures));
    p.insert("dimensions".into(), json!(a.dimensions));
    p.insert("filters".into(), json!(a.filters));
    p.insert("segments".into(), json!(a.segments));
    p.insert("orderBy".into(), json!(a.order_by));
    if let Some(n) = a.limit {
        p.insert("limit".into(), json!(n));
    }
    p.insert("execute".into(), json!(a.execute));
    if let Some(n) = a.max_rows {
        p.insert("maxRows".into(), json!(n));
    }
    if let Some(t) = a.timeout {
        p.insert("timeoutSeconds".into(), json!(t));
    }
    Value::Object(p)
}

/// `semantic.query`'s result, keys in the contract's order (the rest, if any, after).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryOutput<'a> {
    connection_id: &'a Value,
    dialect: &'a Value,
    sql: &'a Value,
    headers: &'a Value,
    rows: &'a Value,
    total_rows: &'a Value,
    plan: &'a Value,
    #[serde(flatten)]
    rest: BTreeMap<&'a str, &'a Value>,
}

const QUERY_KEYS: [&str; 7] = [
    "connectionId",
    "dialect",
    "sql",
    "headers",
    "rows",
    "totalRows",
    "plan",
];

fn ordered_query(result: &Value) -> Result<QueryOutput<'_>, CliError> {
    let obj = result
        .as_object()
        .ok_or_else(|| bad_reply("semantic.query", "the result is not an object"))?;
    let get = |k: &str| {
        obj.get(k)
            .ok_or_else(|| bad_reply("semantic.query", &format!("no `{k}`")))
    };
    Ok(QueryOutput {
        connection_id: get("connectionId")?,
        dialect: get("dialect")?,
        sql: get("sql")?,
        headers: get("headers")?,
        rows: get("rows")?,
        total_rows: get("totalRows")?,
        plan: get("plan")?,
        rest: obj
            .iter()
            .filter(|(k, _)| !QUERY_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
            .collect(),
    })
}

fn query(a: QueryArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let project = project_dir(a.project_dir.as_deref())?;
    let mut opts = global.call_options()?;
    opts.timeout = call_timeout(opts.timeout, a.timeout);
    let result =
        ktx_runner::call("semantic.query", query_payload(&a, &project), &opts).map_err(op_error)?;
    let out = ordered_query(&result)?;
    let sql = out
        .sql
        .as_str()
        .ok_or_else(|| bad_reply("semantic.query", "`sql` is not a string"))?;
    let format = if a.json { Format::Json } else { a.format };
    match format {
        Format::Json => {
            emit_json(&out)?;
            truncation_note(out.rows, out.total_rows, out.plan);
        }
        Format::Sql => emit(&format!("{}\n", sql.trim_end()))?,
        Format::Table if !a.execute => {
            emit(&format!("{}\n", sql.trim_end()))?;
            eprintln!(
                "note: nothing was executed (compile only), so there are no rows to tabulate; add --execute to run the query"
            );
        }
        Format::Table => {
            let headers: Vec<String> = out
                .headers
                .as_array()
                .ok_or_else(|| bad_reply("semantic.query", "`headers` is not a list"))?
                .iter()
                .map(|h| {
                    h.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| h.to_string())
                })
                .collect();
            let rows: Vec<&[Value]> = out
                .rows
                .as_array()
                .ok_or_else(|| bad_reply("semantic.query", "`rows` is not a list"))?
                .iter()
                .map(|r| r.as_array().map(Vec::as_slice))
                .collect::<Option<_>>()
                .ok_or_else(|| bad_reply("semantic.query", "a row is not a list"))?;
            emit(&render_table(&headers, &rows))?;
            eprintln!("{}", row_count_line(rows.len(), out.total_rows, out.plan));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// With `--format json`, a `note:` on stderr when the rows were cut by --max-rows (the table
/// format says it in its row count line).
fn truncation_note(rows: &Value, total: &Value, plan: &Value) {
    let shown = rows.as_array().map_or(0, Vec::len);
    let line = row_count_line(shown, total, plan);
    if line.contains(" shown (--max-rows ") {
        eprintln!("note: {line}");
    }
}

/// `3 rows`, or `1000 of 5000 rows shown (--max-rows 1000); raise --max-rows to see more`.
fn row_count_line(shown: usize, total: &Value, plan: &Value) -> String {
    let total = total.as_u64().unwrap_or(shown as u64);
    let plural = |n: u64| if n == 1 { "row" } else { "rows" };
    let truncated = plan
        .pointer("/execution/truncated")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if truncated || total > shown as u64 {
        let max = plan
            .pointer("/execution/maxRows")
            .and_then(Value::as_u64)
            .unwrap_or(shown as u64);
        format!(
            "{shown} of {total} {} shown (--max-rows {max}); raise --max-rows to see more",
            plural(total)
        )
    } else {
        format!("{total} {}", plural(total))
    }
}

/// One cell's text: strings as they are (control characters escaped), NULL for null, numbers
/// and booleans as in JSON.
fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s
            .chars()
            .flat_map(|c| match c {
                '\n' => vec!['\\', 'n'],
                '\r' => vec!['\\', 'r'],
                '\t' => vec!['\\', 't'],
                c => vec![c],
            })
            .collect(),
        other => other.to_string(),
    }
}

/// Headers, a dashed rule, then the rows; columns two spaces apart, numeric columns (every
/// non-null cell a number) right-aligned, no trailing spaces.
fn render_table(headers: &[String], rows: &[&[Value]]) -> String {
    let ncols = headers
        .len()
        .max(rows.iter().map(|r| r.len()).max().unwrap_or(0));
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            (0..ncols)
                .map(|i| r.get(i).map(cell_text).unwrap_or_default())
                .collect()
        })
        .collect();
    let head: Vec<String> = (0..ncols)
        .map(|i| headers.get(i).cloned().unwrap_or_default())
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|r| r[i].chars().count())
            .chain(std::iter::once(head[i].chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..ncols).map(width).collect();
    let numeric: Vec<bool> = (0..ncols)
        .map(|i| {
            let mut any = false;
            for r in rows {
                match r.get(i) {
                    Some(Value::Number(_)) => any = true,
                    Some(Value::Null) | None => {}
                    Some(_) => return false,
                }
            }
            any
        })
        .collect();
    let line = |texts: &[String]| {
        let parts: Vec<String> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if numeric[i] {
                    format!("{t:>w$}", w = widths[i])
                } else {
                    format!("{t:<w$}", w = widths[i])
                }
            })
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(&head);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for r in &cells {
        out.push_str(&line(r));
    }
    out
}

// ---------------------------------------------------------------- validate

/// `semantic.validate`'s result, keys in the contract's order: `warnings` (same entries as
/// `errors`, each message starting `could not check`) and `databases` (one
/// `{connectionId, driver, path, checked, reason}` per connection) come after `errors`.
#[derive(Serialize)]
struct ValidateOutput<'a> {
    ok: &'a Value,
    #[serde(rename = "projectDir")]
    project_dir: &'a Value,
    connections: &'a Value,
    sources: &'a Value,
    errors: &'a Value,
    warnings: &'a Value,
    databases: &'a Value,
    #[serde(flatten)]
    rest: BTreeMap<&'a str, &'a Value>,
}

/// The keys [`ValidateOutput`] names (the rest follow them).
const VALIDATE_KEYS: [&str; 7] = [
    "ok",
    "projectDir",
    "connections",
    "sources",
    "errors",
    "warnings",
    "databases",
];

fn validate(a: ValidateArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let project = project_dir(a.project_dir.as_deref())?;
    let opts = global.call_options()?;
    let result = ktx_runner::call("semantic.validate", json!({"projectDir": project}), &opts)
        .map_err(op_error)?;
    let bad = |why: &str| bad_reply("semantic.validate", why);
    let obj = result
        .as_object()
        .ok_or_else(|| bad("the result is not an object"))?;
    let get = |k: &str| obj.get(k).ok_or_else(|| bad(&format!("no `{k}`")));
    let errors = get("errors")?
        .as_array()
        .ok_or_else(|| bad("`errors` is not a list"))?;
    let warnings = get("warnings")?
        .as_array()
        .ok_or_else(|| bad("`warnings` is not a list"))?;
    let ok = get("ok")?.as_bool().unwrap_or(errors.is_empty()) && errors.is_empty();
    if a.json {
        emit_json(&ValidateOutput {
            ok: get("ok")?,
            project_dir: get("projectDir")?,
            connections: get("connections")?,
            sources: get("sources")?,
            errors: get("errors")?,
            warnings: get("warnings")?,
            databases: get("databases")?,
            rest: obj
                .iter()
                .filter(|(k, _)| !VALIDATE_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.as_str(), v))
                .collect(),
        })?;
    } else {
        let mut report = String::new();
        for e in errors {
            report.push_str(&validate_line(e));
            report.push('\n');
        }
        for w in warnings {
            report.push_str(&format!("warning: {}\n", validate_line(w)));
        }
        let dir = obj
            .get("projectDir")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| project.display().to_string());
        let connections = obj.get("connections").and_then(Value::as_u64).unwrap_or(0);
        let sources = obj.get("sources").and_then(Value::as_u64).unwrap_or(0);
        let counts = format!(
            "{connections} connection{}, {sources} source file{}",
            if connections == 1 { "" } else { "s" },
            if sources == 1 { "" } else { "s" }
        );
        let unchecked = match warnings.len() {
            0 => String::new(),
            n => format!(
                "; {n} warning{}: not everything could be checked against the database",
                if n == 1 { "" } else { "s" }
            ),
        };
        if ok {
            report.push_str(&format!("OK: {dir}: {counts}, no errors{unchecked}\n"));
        } else {
            let n = errors.len();
            report.push_str(&format!(
                "{n} error{} in {dir} ({counts}){unchecked}\n",
                if n == 1 { "" } else { "s" }
            ));
        }
        emit(&report)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `<file>:<line>: <key>: <message>`; the line is left out when null, the key when empty.
fn validate_line(e: &Value) -> String {
    let file = e.get("file").and_then(Value::as_str).unwrap_or("?");
    let mut out = file.to_string();
    if let Some(line) = e.get("line").and_then(Value::as_u64) {
        out.push_str(&format!(":{line}"));
    }
    if let Some(key) = e
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
    {
        out.push_str(&format!(": {key}"));
    }
    let message = e.get("message").and_then(Value::as_str).unwrap_or("");
    out.push_str(&format!(": {message}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dir_is_found_upwards_or_refused_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let deep = root.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let err = resolve_project_dir(None, &deep).unwrap_err();
        assert_eq!(err.code, 1);
        assert!(
            err.message.contains(&deep.display().to_string()),
            "{}",
            err.message
        );
        assert!(err.message.contains("`ktx demo`"), "{}", err.message);

        std::fs::write(root.join("a/ktx.yaml"), "connections: {}\n").unwrap();
        assert_eq!(resolve_project_dir(None, &deep).unwrap(), root.join("a"));
        assert_eq!(
            resolve_project_dir(Some(Path::new("..")), &deep).unwrap(),
            root.join("a")
        );
        let err = resolve_project_dir(Some(Path::new(".")), &deep).unwrap_err();
        assert!(err.message.contains("no ktx.yaml in"), "{}", err.message);
        let err = resolve_project_dir(Some(Path::new("missing")), &deep).unwrap_err();
        assert!(err.message.contains("does not exist"), "{}", err.message);
        let err = resolve_project_dir(Some(&root.join("a/ktx.yaml")), &deep).unwrap_err();
        assert!(
            err.message.contains("is not a directory"),
            "{}",
            err.message
        );
    }

    #[test]
    fn suggestions_become_a_did_you_mean_line() {
        let err = op_error(RunError::Abi {
            code: "unknown_measure".into(),
            message: "unknown measure 'orders.revenu'; did you mean orders.revenue, orders.x?"
                .into(),
            details: json!({"suggestions": ["orders.revenue", "orders.x"]}),
        });
        assert_eq!(
            err.message,
            "unknown measure 'orders.revenu'\n  did you mean: orders.revenue, orders.x?"
        );
        let err = op_error(RunError::Abi {
            code: "invalid_filter".into(),
            message: "bad filter".into(),
            details: json!({"suggestions": ["orders.id"]}),
        });
        assert_eq!(err.message, "bad filter\n  did you mean: orders.id?");
        let err = op_error(RunError::Abi {
            code: "x".into(),
            message: "plain".into(),
            details: json!({}),
        });
        assert_eq!((err.code, err.message.as_str()), (1, "plain"));
        assert_eq!(op_error(RunError::Usage("u".into())).code, 2);
    }

    #[test]
    fn table_aligns_text_left_numbers_right() {
        let rows = [
            vec![json!("enterprise"), json!(120.5), json!(3)],
            vec![Value::Null, json!(40), Value::Null],
        ];
        let rows: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
        let headers = ["customers.segment".to_string(), "rev".into(), "n".into()];
        assert_eq!(
            render_table(&headers, &rows),
            "customers.segment    rev     n\n\
             -----------------  -----  ----\n\
             enterprise         120.5     3\n\
             NULL                  40  NULL\n"
        );
        assert_eq!(render_table(&headers, &[]).lines().count(), 2);
        assert_eq!(cell_text(&json!("a\nb")), "a\\nb");
    }

    #[test]
    fn row_count_says_when_rows_were_cut() {
        let plan = json!({"execution": {"mode": "executed", "truncated": false}});
        assert_eq!(row_count_line(1, &json!(1), &plan), "1 row");
        assert_eq!(row_count_line(0, &json!(0), &plan), "0 rows");
        let cut = json!({"execution": {"mode": "executed", "truncated": true, "maxRows": 2}});
        assert_eq!(
            row_count_line(2, &json!(5), &cut),
            "2 of 5 rows shown (--max-rows 2); raise --max-rows to see more"
        );
    }

    #[test]
    fn timeout_must_be_finite_positive_and_bounded() {
        assert_eq!(parse_timeout("2.5"), Ok(2.5));
        assert_eq!(parse_timeout("86400"), Ok(86_400.0));
        for bad in [
            "nan", "inf", "-inf", "0", "-0", "-3", "1e400", "86400.5", "x", "",
        ] {
            let err = parse_timeout(bad).unwrap_err();
            assert!(err.contains("greater than 0"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_call_outlives_the_query_timeout() {
        let default = Duration::from_secs(300);
        assert_eq!(call_timeout(default, None), default);
        assert_eq!(call_timeout(default, Some(5.0)), default);
        assert_eq!(
            call_timeout(default, Some(1000.0)),
            Duration::from_secs(1000) + CALL_MARGIN
        );
        assert_eq!(
            call_timeout(default, Some(MAX_TIMEOUT_SECONDS)),
            Duration::from_secs(86_400) + CALL_MARGIN
        );
    }

    #[test]
    fn validate_lines_omit_missing_parts() {
        let e = json!({"file": "semantic-layer/w/o.yaml", "key": "measures[1].expr", "line": 12, "message": "unknown column"});
        assert_eq!(
            validate_line(&e),
            "semantic-layer/w/o.yaml:12: measures[1].expr: unknown column"
        );
        let e = json!({"file": "ktx.yaml", "key": "", "line": null, "message": "bad"});
        assert_eq!(validate_line(&e), "ktx.yaml: bad");
    }
}
