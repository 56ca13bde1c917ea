//! The one way ktx writes to standard output, plus error reporting and small formatting
//! helpers shared by the command modules.
//!
//! Every byte a command prints on stdout goes through [`emit`] (text) or [`emit_json`] /
//! [`emit_json_line`] (a `--json` document); nothing else in this crate uses `print!` or
//! `println!` (a test greps for them). The policy lives here, in one place:
//!
//! - a reader that went away (EPIPE, e.g. `ktx runtime status | head -1`) ends the command
//!   quietly with exit code 141, as a tool killed by SIGPIPE would ([`CliError::broken_pipe`]);
//! - any other write error (a full disk, `> /dev/full`, a closed descriptor) is reported as
//!   `error: cannot write to standard output: <why>` with exit code 1.
//!
//! Every `--json` document starts with `"schemaVersion": 1` ([`SCHEMA_VERSION`]), added here;
//! the shapes are documented in `docs/json-output.md`.

use std::io::{ErrorKind, IsTerminal, Write};
use std::process::ExitCode;

use serde::Serialize;

/// The version of the `--json` documents' shapes. It goes up when a key is removed or changes
/// meaning; new keys do not change it.
pub const SCHEMA_VERSION: u32 = 1;

/// The exit code of a command whose standard output was closed by its reader (128 + SIGPIPE).
pub const BROKEN_PIPE_EXIT: u8 = 141;

/// A command failure: the message to print (after `error: `) and the exit code (1 failure,
/// 2 usage, [`BROKEN_PIPE_EXIT`] when stdout was closed).
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: u8,
    /// Message, possibly several lines (log path, hints). Empty: exit without a message.
    pub message: String,
}

impl CliError {
    /// A failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: 1,
            message: message.into(),
        }
    }

    /// Standard output's reader went away: exit [`BROKEN_PIPE_EXIT`] without a message.
    pub fn broken_pipe() -> Self {
        CliError {
            code: BROKEN_PIPE_EXIT,
            message: String::new(),
        }
    }

    /// Prints `error: <message>` on stderr (nothing when the message is empty) and returns the
    /// exit code.
    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.code)
    }
}

/// Any failure: its text (an op error as `message (code)`), then `did you mean: a, b?` on a
/// line of its own when an op suggested close names (`details.suggestions`).
impl From<ktx_runner::RunError> for CliError {
    fn from(e: ktx_runner::RunError) -> Self {
        let suggestions = e.suggestions();
        CliError {
            code: e.exit_code(),
            message: with_suggestions(e.to_string(), &suggestions),
        }
    }
}

/// An op failure as the user sees it for the ops whose errors are sentences (e.g.
/// `semantic.query`): like [`From`], without the ` (code)` suffix.
pub fn op_error(err: ktx_runner::RunError) -> CliError {
    let suggestions = err.suggestions();
    let ktx_runner::RunError::Abi { message, .. } = err else {
        return CliError::from(err);
    };
    CliError::failure(with_suggestions(message, &suggestions))
}

/// `text`, then `\n  did you mean: a, b?` when there are suggestions (the one place the line
/// is written: the ops send the names as data, never in their messages).
pub fn with_suggestions(mut text: String, suggestions: &[String]) -> String {
    if !suggestions.is_empty() {
        text.push_str(&format!("\n  did you mean: {}?", suggestions.join(", ")));
    }
    text
}

impl From<ktx_runtime::RuntimeError> for CliError {
    fn from(e: ktx_runtime::RuntimeError) -> Self {
        CliError::failure(e.to_string())
    }
}

/// The [`CliError`] for a failed write to standard output: EPIPE is
/// [`CliError::broken_pipe`], anything else `cannot write to standard output: <why>`.
pub fn stdout_error(e: &std::io::Error) -> CliError {
    if e.kind() == ErrorKind::BrokenPipe {
        CliError::broken_pipe()
    } else {
        CliError::failure(format!("cannot write to standard output: {e}"))
    }
}

/// Writes `text` to standard output and flushes it (the whole output of a command, or a part
/// of it; the caller supplies the newlines).
pub fn emit(text: &str) -> Result<(), CliError> {
    write_all(&mut std::io::stdout().lock(), text.as_bytes()).map_err(|e| stdout_error(&e))
}

/// `bytes` to `out`, flushed. Separate from [`emit`] so the policy is testable on any writer.
fn write_all(out: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// Text for a terminal or not: `styled` with ANSI colours when stdout is a terminal, plain
/// otherwise (for clap's help and version output).
pub fn emit_styled(styled: &clap::builder::StyledStr) -> Result<(), CliError> {
    if std::io::stdout().is_terminal() {
        emit(&styled.ansi().to_string())
    } else {
        emit(&styled.to_string())
    }
}

/// A `--json` document: `"schemaVersion"` first, then the body's own keys in their order.
#[derive(Serialize)]
struct Document<'a, T: ?Sized> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(flatten)]
    body: &'a T,
}

fn encode<T: Serialize + ?Sized>(body: &T, pretty: bool) -> Result<String, CliError> {
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        body,
    };
    let text = if pretty {
        serde_json::to_string_pretty(&doc)
    } else {
        serde_json::to_string(&doc)
    };
    text.map_err(|e| CliError::failure(format!("cannot encode the JSON output: {e}")))
}

/// Prints `body` (an object without a `schemaVersion` key) as a pretty `--json` document
/// with `"schemaVersion": 1` first, newline-terminated.
pub fn emit_json<T: Serialize + ?Sized>(body: &T) -> Result<(), CliError> {
    emit(&format!("{}\n", encode(body, true)?))
}

/// [`emit_json`] on one line (for output that is one JSON value per line, e.g. `ktx embed`).
pub fn emit_json_line<T: Serialize + ?Sized>(body: &T) -> Result<(), CliError> {
    emit(&format!("{}\n", encode(body, false)?))
}

/// Prints `value` as pretty JSON exactly as it is, without a `schemaVersion` (plumbing output
/// that is not a ktx document, e.g. an op's raw result).
pub fn emit_raw_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failure(format!("cannot encode the JSON output: {e}")))?;
    emit(&format!("{text}\n"))
}

/// The npm package ktx ships in, for `npx <package>` when the launcher does not say.
pub const NPM_PACKAGE: &str = "@kaelio/ktx";

/// How the user runs ktx, for the command lines ktx prints: `npx @kaelio/ktx` when the npm
/// package's launcher started it (`KTX_LAUNCHER=npm`, with the package name in
/// `KTX_NPM_PACKAGE`; both set by `bin/ktx.js`) or npm/npx did (`npm_config_user_agent` or
/// `npm_execpath` set), else `ktx`. An explicit `KTX_LAUNCHER` wins: any other value means
/// `ktx`.
///
/// Why not `npx ktx`: it works inside a project that installed the package, but anywhere else
/// npx would fetch the unrelated npm package named `ktx`; `npx @kaelio/ktx` works in both.
pub fn ktx_command() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    ktx_command_from(
        var("KTX_LAUNCHER").as_deref(),
        var("npm_config_user_agent").is_some() || var("npm_execpath").is_some(),
        var("KTX_NPM_PACKAGE").as_deref(),
    )
}

fn ktx_command_from(launcher: Option<&str>, npm_env: bool, package: Option<&str>) -> String {
    // Only a plain npm package name goes into a printed command line.
    let package = package
        .filter(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@/._-".contains(&b))
        })
        .unwrap_or(NPM_PACKAGE);
    match launcher {
        Some("npm") => format!("npx {package}"),
        Some(_) => "ktx".to_string(),
        None if npm_env => format!("npx {package}"),
        None => "ktx".to_string(),
    }
}

/// `line` with a leading `ktx ` command spelled as [`ktx_command`] says (other text unchanged).
pub fn ktx_command_line(line: &str) -> String {
    match line.strip_prefix("ktx ") {
        Some(rest) => format!("{} {rest}", ktx_command()),
        None => line.to_string(),
    }
}

/// `12.3 MB`-style size.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails every write with `kind`.
    struct Failing(ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(self.0))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn suggestions_become_a_did_you_mean_line() {
        use ktx_runner::RunError;
        use serde_json::json;
        let err = op_error(RunError::Abi {
            code: "unknown_measure".into(),
            message: "unknown measure 'orders.revenu'".into(),
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
        // `ktx runtime call` (any op, plumbing) keeps the code and the suggestions.
        let err = CliError::from(RunError::Abi {
            code: "unknown_measure".into(),
            message: "unknown measure 'x'".into(),
            details: json!({"suggestions": ["orders.x"]}),
        });
        assert_eq!(
            err.message,
            "unknown measure 'x' (unknown_measure)\n  did you mean: orders.x?"
        );
    }

    #[test]
    fn write_errors_become_one_message_and_epipe_a_quiet_141() {
        let e = write_all(&mut Failing(ErrorKind::BrokenPipe), b"x").unwrap_err();
        let cli = stdout_error(&e);
        assert_eq!((cli.code, cli.message.as_str()), (141, ""));
        let e = write_all(&mut Failing(ErrorKind::StorageFull), b"x").unwrap_err();
        let cli = stdout_error(&e);
        assert_eq!(cli.code, 1);
        assert!(
            cli.message.starts_with("cannot write to standard output: "),
            "{}",
            cli.message
        );
    }

    #[test]
    fn npm_launches_print_npx_commands() {
        let npx = "npx @kaelio/ktx";
        assert_eq!(ktx_command_from(Some("npm"), false, None), npx);
        assert_eq!(
            ktx_command_from(Some("npm"), false, Some("@acme/k")),
            "npx @acme/k"
        );
        assert_eq!(
            ktx_command_from(Some("npm"), false, Some("x; rm -rf ~")),
            npx
        );
        assert_eq!(ktx_command_from(Some("native"), true, None), "ktx");
        assert_eq!(ktx_command_from(None, true, None), npx);
        assert_eq!(ktx_command_from(None, false, None), "ktx");
    }

    #[test]
    fn documents_start_with_the_schema_version_and_keep_key_order() {
        #[derive(Serialize)]
        struct Body {
            zeta: u8,
            alpha: Option<u8>,
        }
        let text = encode(
            &Body {
                zeta: 1,
                alpha: None,
            },
            false,
        )
        .unwrap();
        assert_eq!(text, r#"{"schemaVersion":1,"zeta":1,"alpha":null}"#);
        let text = encode(&serde_json::json!({"b": 1}), true).unwrap();
        assert!(text.starts_with("{\n  \"schemaVersion\": 1,"), "{text}");
        assert!(
            encode(&[1, 2], false).is_err(),
            "a document must be an object"
        );
    }
}
