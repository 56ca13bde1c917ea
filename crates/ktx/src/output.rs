//! Error reporting and printing helpers shared by the command modules.

use std::process::ExitCode;

/// A command failure: the message to print (after `error: `) and the exit code (1 failure,
/// 2 usage).
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: u8,
    /// Message, possibly several lines (log path, hints).
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

    /// Prints `error: <message>` on stderr and returns the exit code.
    pub fn report(self) -> ExitCode {
        eprintln!("error: {}", self.message);
        ExitCode::from(self.code)
    }
}

impl From<ktx_runner::RunError> for CliError {
    fn from(e: ktx_runner::RunError) -> Self {
        CliError {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

impl From<ktx_runtime::RuntimeError> for CliError {
    fn from(e: ktx_runtime::RuntimeError) -> Self {
        CliError::failure(e.to_string())
    }
}

/// Prints a serializable value as pretty JSON on stdout (newline-terminated).
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode JSON output: {e}"),
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
