//! `ktx sl query` and `ktx sl validate`: the semantic layer, through the runtime's
//! `semantic.query` and `semantic.validate` ops (contract: `python-runtime/src/semantic_layer/ops.py`;
//! typed in `ktx_runner::ops`).
//!
//! The project directory is found first ([`ktx_runner::project`], before the runtime is
//! touched, so a missing `ktx.yaml` is reported without installing anything) and sent as an
//! absolute `projectDir`. Every call goes through `ktx_runner::ops`, so the lazy-install
//! policy (`--yes` / `--no-input` / prompt) and the daemon (`--daemon`, `KTX_DAEMON=1`, or one
//! already running) apply. This module turns the arguments into a request and the result into
//! text.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::Value;

use ktx_runner::ops::{self, Issue, QueryResult, SemanticQuery, SemanticValidate};

use crate::output::{emit, emit_json, op_error};
use crate::{CliError, GlobalArgs};

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

/// The project root for `--project-dir` (or the current directory's nearest).
fn project_dir(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    ktx_runner::project::project_dir(explicit).map_err(|e| CliError::failure(e.to_string()))
}

// ---------------------------------------------------------------- query

/// `--timeout`: a finite number of seconds, > 0 and at most a day (the op's own bound, which
/// also keeps the runner's call timeout, the query timeout plus a margin, representable).
fn parse_timeout(text: &str) -> Result<f64, String> {
    let bad = || {
        format!(
            "must be a number of seconds greater than 0 and at most {} (e.g. 30 or 2.5), got {text:?}",
            ktx_base::duration::Seconds::POSITIVE_UP_TO_A_DAY.max.as_secs()
        )
    };
    let timeout = ktx_base::duration::Seconds::POSITIVE_UP_TO_A_DAY
        .parse(text)
        .ok_or_else(bad)?;
    Ok(timeout.as_secs_f64())
}

/// The `semantic.query` request for these arguments.
fn query_request(a: &QueryArgs, project: &Path) -> SemanticQuery {
    SemanticQuery {
        project_dir: project.to_path_buf(),
        connection_id: a.connection_id.clone(),
        measures: a.measures.clone(),
        dimensions: a.dimensions.clone(),
        filters: a.filters.clone(),
        segments: a.segments.clone(),
        order_by: a.order_by.clone(),
        limit: a.limit,
        execute: a.execute,
        max_rows: a.max_rows,
        timeout_seconds: a.timeout,
    }
}

fn query(a: QueryArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let project = project_dir(a.project_dir.as_deref())?;
    let opts = global.call_options()?;
    let out = ops::semantic_query(&query_request(&a, &project), &opts).map_err(op_error)?;
    let format = if a.json { Format::Json } else { a.format };
    match format {
        Format::Json => {
            emit_json(&out)?;
            truncation_note(&out);
        }
        Format::Sql => emit(&format!("{}\n", out.sql.trim_end()))?,
        Format::Table if !a.execute => {
            emit(&format!("{}\n", out.sql.trim_end()))?;
            eprintln!(
                "note: nothing was executed (compile only), so there are no rows to tabulate; add --execute to run the query"
            );
        }
        Format::Table => {
            let rows: Vec<&[Value]> = out.rows.iter().map(Vec::as_slice).collect();
            emit(&render_table(&out.headers, &rows))?;
            eprintln!("{}", row_count_line(rows.len(), &out));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// With `--format json`, a `note:` on stderr when the rows were cut by --max-rows (the table
/// format says it in its row count line).
fn truncation_note(out: &QueryResult) {
    let line = row_count_line(out.rows.len(), out);
    if line.contains(" shown (--max-rows ") {
        eprintln!("note: {line}");
    }
}

/// `3 rows`, or `1000 of 5000 rows shown (--max-rows 1000); raise --max-rows to see more`.
fn row_count_line(shown: usize, out: &QueryResult) -> String {
    let total = out.total_rows.unwrap_or(shown as u64);
    let plural = |n: u64| if n == 1 { "row" } else { "rows" };
    if out.truncated() || total > shown as u64 {
        let max = out.max_rows().unwrap_or(shown as u64);
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

fn validate(a: ValidateArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let project = project_dir(a.project_dir.as_deref())?;
    let opts = global.call_options()?;
    let req = SemanticValidate {
        project_dir: project,
    };
    let out = ops::semantic_validate(&req, &opts).map_err(op_error)?;
    let ok = out.ok && out.errors.is_empty();
    if a.json {
        emit_json(&out)?;
    } else {
        let mut report = String::new();
        for e in &out.errors {
            report.push_str(&validate_line(e));
            report.push('\n');
        }
        for w in &out.warnings {
            report.push_str(&format!("warning: {}\n", validate_line(w)));
        }
        let dir = &out.project_dir;
        let (connections, sources) = (out.connections, out.sources);
        let counts = format!(
            "{connections} connection{}, {sources} source file{}",
            if connections == 1 { "" } else { "s" },
            if sources == 1 { "" } else { "s" }
        );
        let unchecked = match out.warnings.len() {
            0 => String::new(),
            n => format!(
                "; {n} warning{}: not everything could be checked against the database",
                if n == 1 { "" } else { "s" }
            ),
        };
        if ok {
            report.push_str(&format!("OK: {dir}: {counts}, no errors{unchecked}\n"));
        } else {
            let n = out.errors.len();
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
fn validate_line(e: &Issue) -> String {
    let mut out = e.file.clone();
    if let Some(line) = e.line {
        out.push_str(&format!(":{line}"));
    }
    if !e.key.is_empty() {
        out.push_str(&format!(": {}", e.key));
    }
    out.push_str(&format!(": {}", e.message));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// A `semantic.query` result with `total_rows` and `plan` (the rest does not matter here).
    fn result(total_rows: u64, plan: Value) -> QueryResult {
        QueryResult {
            connection_id: "w".into(),
            dialect: "sqlite".into(),
            sql: "SELECT 1".into(),
            headers: Vec::new(),
            rows: Vec::new(),
            total_rows: Some(total_rows),
            plan,
            extra: Default::default(),
        }
    }

    #[test]
    fn row_count_says_when_rows_were_cut() {
        let plan = json!({"execution": {"mode": "executed", "truncated": false}});
        assert_eq!(row_count_line(1, &result(1, plan.clone())), "1 row");
        assert_eq!(row_count_line(0, &result(0, plan)), "0 rows");
        let cut = json!({"execution": {"mode": "executed", "truncated": true, "maxRows": 2}});
        assert_eq!(
            row_count_line(2, &result(5, cut)),
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
    fn validate_lines_omit_missing_parts() {
        let issue = |v: Value| serde_json::from_value::<Issue>(v).unwrap();
        let e = issue(
            json!({"file": "semantic-layer/w/o.yaml", "key": "measures[1].expr", "line": 12, "message": "unknown column"}),
        );
        assert_eq!(
            validate_line(&e),
            "semantic-layer/w/o.yaml:12: measures[1].expr: unknown column"
        );
        let e = issue(json!({"file": "ktx.yaml", "key": "", "line": null, "message": "bad"}));
        assert_eq!(validate_line(&e), "ktx.yaml: bad");
    }
}
