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

/// Create a demo project (a small warehouse and its semantic layer) and show queries to try
///
/// Writes DIR/ktx.yaml, DIR/semantic-layer/warehouse/{customers,orders,order_items}.yaml,
/// the warehouse (customers, orders, order_items) and the default scripts in DIR/scripts/
/// (see `ktx script seed`), then prints three `ktx sl query` command
/// lines; the last one runs with --execute. They carry --project-dir, so they work from any
/// directory (inside DIR you can drop it).
///
/// The warehouse is DIR/warehouse.db (SQLite) by default. --driver duckdb writes a DuckDB file
/// in DIR instead; --driver postgres or mysql (MariaDB too) loads the tables into the database
/// that --dsn names, which must exist and which you may write to. A DSN never carries a password:
/// give it to the driver in the environment (PGPASSWORD or ~/.pgpass for PostgreSQL, MYSQL_PWD
/// for MySQL), as the connection's `password_env` in ktx.yaml does. The driver's runtime feature
/// is installed on first use (--yes, or after asking).
///
/// DIR must be new, empty, or an earlier demo: a re-run recreates missing files and keeps the
/// existing ones (your edits survive). Needs the KTX Python runtime (installed on first use
/// with --yes, or after asking).
///
/// Examples:
///   ktx demo
///   ktx demo /tmp/my-demo --yes
///   ktx demo duck-demo --driver duckdb
///   PGPASSWORD=... ktx demo pg-demo --driver postgres --dsn postgresql://me@localhost:5432/ktx_demo
///   cd ktx-demo && ktx sl validate
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, next_display_order = 10)]
pub struct Args {
    /// Directory to create the demo in (relative to the current directory).
    #[arg(value_name = "DIR", default_value = "ktx-demo")]
    dir: PathBuf,
    /// Print the result as JSON: {schemaVersion, dir, files, created, kept, queries, notes,
    /// scripts} (scripts: {added, updated, current, kept}, as `ktx script seed --json`).
    #[arg(long)]
    json: bool,
    /// The engine of the demo warehouse.
    #[arg(long, value_enum, default_value_t = Driver::Sqlite)]
    driver: Driver,
    /// The database to load the demo into (postgres, mysql; required there), without a password:
    /// `postgresql://USER@HOST:PORT/DB` (or `host=... dbname=...`), `mysql://USER@HOST:PORT/DB`.
    #[arg(long, value_name = "DSN")]
    dsn: Option<String>,
}

/// The engines `ktx demo` can load its warehouse into (the `driver` of `demo.scaffold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Driver {
    /// A SQLite file in DIR (no server, nothing to install).
    Sqlite,
    /// A DuckDB file in DIR.
    Duckdb,
    /// The PostgreSQL database --dsn names.
    Postgres,
    /// The MySQL or MariaDB database --dsn names.
    Mysql,
}

impl Driver {
    fn as_str(self) -> &'static str {
        match self {
            Driver::Sqlite => "sqlite",
            Driver::Duckdb => "duckdb",
            Driver::Postgres => "postgres",
            Driver::Mysql => "mysql",
        }
    }
}

fn usage(message: String) -> CliError {
    CliError { code: 2, message }
}

/// The `demo.scaffold` payload: `dir`, `driver`, and `dsn` for the server engines. A missing
/// or misplaced --dsn, one of another engine, or one holding a password is a usage error that
/// never repeats the DSN (it may hold a secret).
fn scaffold_request(
    dir: &Path,
    driver: Driver,
    dsn: Option<&str>,
) -> Result<DemoScaffold, CliError> {
    let mut request = DemoScaffold {
        dir: dir.to_path_buf(),
        driver: Some(driver.as_str().to_string()),
        dsn: None,
    };
    match (driver, dsn) {
        (Driver::Sqlite | Driver::Duckdb, None) => {}
        (Driver::Sqlite | Driver::Duckdb, Some(_)) => {
            return Err(usage(format!(
                "--dsn applies to --driver postgres and mysql; the {} demo is a file in DIR\n  hint: drop --dsn, or choose --driver postgres or --driver mysql",
                driver.as_str()
            )))
        }
        (Driver::Postgres | Driver::Mysql, None) => {
            return Err(usage(format!(
                "--driver {d} needs --dsn naming the database to load the demo into\n  hint: e.g. `ktx demo --driver {d} --dsn {example}` (the database must exist and you must be able to create tables in it)",
                d = driver.as_str(),
                example = dsn_example(driver)
            )))
        }
        (Driver::Postgres | Driver::Mysql, Some(dsn)) => {
            check_dsn(driver, dsn)?;
            request.dsn = Some(dsn.to_string());
        }
    }
    Ok(request)
}

fn dsn_example(driver: Driver) -> &'static str {
    match driver {
        Driver::Mysql => "mysql://USER@127.0.0.1:3306/ktx_demo",
        _ => "postgresql://USER@127.0.0.1:5432/ktx_demo",
    }
}

/// The scheme of `dsn` when it is a URL (`postgresql` in `postgresql://...`).
fn url_scheme(dsn: &str) -> Option<&str> {
    let (scheme, _) = dsn.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)))
    .then_some(scheme)
}

/// Refuses a DSN of another engine, and one that carries a password: in the URL's user info
/// (`user:secret@`), as a `password=` / `passwd=` query parameter, or as a libpq
/// `password=` keyword. The message says where the password goes instead and never repeats the
/// DSN.
fn check_dsn(driver: Driver, dsn: &str) -> Result<(), CliError> {
    let dsn = dsn.trim();
    let scheme = url_scheme(dsn).map(str::to_ascii_lowercase);
    let shape_ok = match (driver, scheme.as_deref()) {
        (Driver::Postgres, Some(s)) => s == "postgresql" || s == "postgres",
        // libpq's `key=value` form (`host=localhost dbname=ktx_demo user=me`).
        (Driver::Postgres, None) => dsn.contains('='),
        (Driver::Mysql, Some(s)) => s == "mysql" || s == "mariadb",
        _ => false,
    };
    if !shape_ok {
        return Err(usage(format!(
            "--dsn is not a {} DSN\n  hint: use the form {}",
            driver.as_str(),
            dsn_example(driver)
        )));
    }
    if dsn_has_password(dsn) {
        let env = match driver {
            Driver::Mysql => "MYSQL_PWD",
            _ => "PGPASSWORD (or a ~/.pgpass entry)",
        };
        return Err(usage(format!(
            "--dsn must not contain a password: ktx takes no secret on the command line (shell history and process lists keep it) and never writes one into ktx.yaml\n  hint: remove the password from --dsn and export it as {env} before running `ktx demo`; in ktx.yaml a connection names such a variable with `password_env: NAME`"
        )));
    }
    Ok(())
}

/// Whether a DSN (URL or libpq key/value) carries a password.
fn dsn_has_password(dsn: &str) -> bool {
    let is_password_key = |k: &str| {
        let k = k.trim().to_ascii_lowercase();
        k == "password" || k == "passwd" || k == "pwd"
    };
    if let Some((_, rest)) = dsn.split_once("://") {
        // The authority ends at the first `/`, `?` or `#`; user info is what precedes its last `@`.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return true;
            }
        }
        let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
        let query = query.split('#').next().unwrap_or("");
        return query
            .split('&')
            .any(|kv| is_password_key(kv.split('=').next().unwrap_or("")));
    }
    // libpq key/value: `key = value` pairs separated by spaces (values may be quoted).
    let mut rest = dsn;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].split_whitespace().last().unwrap_or("");
        if is_password_key(key) {
            return true;
        }
        rest = &rest[eq + 1..];
    }
    false
}

/// Runs `ktx demo`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let dir = absolute(&args.dir)?;
    let opts = global.call_options()?;
    let request = scaffold_request(&dir, args.driver, args.dsn.as_deref())?;
    let mut reply = ops::demo_scaffold(&request, &opts).map_err(op_error)?;
    // The op writes `ktx ...`; a user who got ktx from npm runs `npx @kaelio/ktx ...`.
    for q in &mut reply.queries {
        *q = ktx_command_line(q);
    }
    // The default scripts, by the same rule as `ktx script seed` (a changed copy is kept).
    let seeded = ktx_scripts::Scripts::open(&dir)
        .and_then(|mut scripts| scripts.seed())
        .map_err(|e| {
            CliError::failure(format!(
                "the demo project was written, but its default scripts were not: {e}"
            ))
        })?;
    if args.json {
        emit_json(&json!({
            "dir": reply.dir,
            "files": reply.files,
            "created": reply.created,
            "kept": reply.kept,
            "queries": reply.queries,
            "notes": reply.notes,
            "scripts": seeded,
        }))?;
    } else {
        emit(&render(&reply))?;
        emit(&format!(
            "\n{}",
            crate::script_cmd::seed_text(&dir, &seeded)
        ))?;
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
        notes,
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
    if !notes.is_empty() {
        out.push_str("\nBefore you query:\n");
        for n in notes {
            out.push_str(&format!("  {n}\n"));
        }
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

    /// The request as the JSON payload the op receives.
    fn scaffold_payload(
        dir: &Path,
        driver: Driver,
        dsn: Option<&str>,
    ) -> Result<serde_json::Value, CliError> {
        scaffold_request(dir, driver, dsn).map(|r| serde_json::to_value(r).unwrap())
    }

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
    fn a_dsn_is_required_for_servers_and_never_carries_a_password() {
        let dir = Path::new("/tmp/d");
        let ok = scaffold_payload(dir, Driver::Sqlite, None).unwrap();
        assert_eq!(ok, json!({"dir": "/tmp/d", "driver": "sqlite"}));
        let ok = scaffold_payload(dir, Driver::Duckdb, None).unwrap();
        assert_eq!(ok["driver"], "duckdb");
        let err = scaffold_payload(dir, Driver::Duckdb, Some("x")).unwrap_err();
        assert_eq!(err.code, 2);
        let err = scaffold_payload(dir, Driver::Postgres, None).unwrap_err();
        assert_eq!(err.code, 2);
        assert!(
            err.message.contains("--driver postgres needs --dsn"),
            "{}",
            err.message
        );
        for good in [
            "postgresql://me@127.0.0.1:5432/ktx_demo",
            "postgres://127.0.0.1/ktx_demo?sslmode=disable",
            "host=127.0.0.1 port=5432 dbname=ktx_demo user=me",
        ] {
            let p = scaffold_payload(dir, Driver::Postgres, Some(good)).unwrap();
            assert_eq!(p["dsn"], good);
        }
        let p = scaffold_payload(dir, Driver::Mysql, Some("mysql://me@127.0.0.1:3306/d")).unwrap();
        assert_eq!(
            (p["driver"].as_str(), p["dsn"].as_str()),
            (Some("mysql"), Some("mysql://me@127.0.0.1:3306/d"))
        );
        for (driver, secret) in [
            (
                Driver::Postgres,
                "postgresql://me:hunter2@127.0.0.1/ktx_demo",
            ),
            (
                Driver::Postgres,
                "postgresql://me@127.0.0.1/ktx_demo?password=hunter2",
            ),
            (
                Driver::Postgres,
                "host=127.0.0.1 dbname=ktx_demo password=hunter2",
            ),
            (Driver::Postgres, "host=127.0.0.1 PASSWORD = 'hunter2'"),
            (Driver::Mysql, "mysql://me:hunter2@127.0.0.1/ktx_demo"),
            (
                Driver::Mysql,
                "mysql://me@127.0.0.1/ktx_demo?passwd=hunter2",
            ),
        ] {
            let err = scaffold_payload(dir, driver, Some(secret)).unwrap_err();
            assert_eq!(err.code, 2, "{secret}");
            assert!(
                err.message.contains("must not contain a password"),
                "{}",
                err.message
            );
            assert!(
                !err.message.contains("hunter2"),
                "the secret is echoed: {}",
                err.message
            );
        }
        // A `:` or `@` after the authority is no password.
        assert!(!dsn_has_password(
            "postgresql://me@host/db?options=-c%20a:b"
        ));
        assert!(!dsn_has_password("postgresql://host:5432/db"));
        let err = scaffold_payload(dir, Driver::Mysql, Some("postgresql://me@h/d")).unwrap_err();
        assert!(
            err.message.contains("is not a mysql DSN"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("me@h"), "{}", err.message);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("/tmp/it's"), "'/tmp/it'\"'\"'s'");
    }
}
