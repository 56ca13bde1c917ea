//! ABI v1 over the one-shot transport: `<venv python> -I -m ktx_daemon call` reads one request on
//! stdin and writes one response line on stdout.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::process::{run_bounded, Captured, Limits};

/// The ABI version spoken by this ktx (one definition, in `ktx-base`).
pub use ktx_base::abi::ABI_VERSION;

/// An ABI v1 request body.
pub fn request(op: &str, payload: Value) -> Value {
    json!({"abi": ABI_VERSION, "op": op, "payload": payload})
}

/// A decoded ABI v1 response.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `ok: true`: the op's result.
    Ok(Value),
    /// `ok: false`: the op's error.
    Err {
        /// Stable error code, e.g. `unknown_op`.
        code: String,
        /// Human message.
        message: String,
        /// Structured details (an object, possibly empty).
        details: Value,
    },
}

/// Decodes a response body (one JSON object); `Err` describes what is wrong with it.
pub fn parse_response(body: &[u8]) -> Result<Reply, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "response is not JSON ({e}): {}",
            String::from_utf8_lossy(body).trim()
        )
    })?;
    if v.get("abi").and_then(Value::as_u64) != Some(u64::from(ABI_VERSION)) {
        return Err(format!(
            "response has abi {:?}, expected {ABI_VERSION}",
            v.get("abi")
        ));
    }
    match v.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(Reply::Ok(v.get("result").cloned().unwrap_or(Value::Null))),
        Some(false) => {
            let e = v.get("error").cloned().unwrap_or(Value::Null);
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Ok(Reply::Err {
                code: s("code"),
                message: s("message"),
                details: e.get("details").cloned().unwrap_or_else(|| json!({})),
            })
        }
        None => Err("response has no boolean 'ok'".into()),
    }
}

/// Why a one-shot call produced no response.
#[derive(Debug, Clone)]
pub enum OneShotError {
    /// The interpreter could not be started.
    Spawn(String),
    /// It ran past the deadline and was killed.
    Timeout(Duration),
    /// It exited without a valid response line.
    Failed {
        /// How it exited.
        exit: String,
        /// What was wrong with its stdout.
        problem: String,
        /// The end of its stderr.
        stderr_tail: String,
    },
}

impl std::fmt::Display for OneShotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OneShotError::Spawn(e) => write!(f, "cannot start the Python runtime: {e}"),
            OneShotError::Timeout(t) => {
                write!(f, "the Python runtime did not answer within {t:.0?}")
            }
            OneShotError::Failed {
                exit,
                problem,
                stderr_tail,
            } => {
                write!(f, "the Python runtime failed ({exit}): {problem}")?;
                if !stderr_tail.is_empty() {
                    write!(f, "\n{stderr_tail}")?;
                }
                Ok(())
            }
        }
    }
}

/// The command line of a one-shot call: `<python> -I -m ktx_daemon call`.
pub fn oneshot_command(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-I", "-m", "ktx_daemon", "call"]);
    cmd
}

/// Sends `request` through a one-shot process and decodes the response. `cwd` is the child's
/// working directory (None: inherit). Returns the raw capture too, for logs.
pub fn oneshot(
    python: &Path,
    request: &Value,
    timeout: Duration,
    cwd: Option<&Path>,
) -> Result<(Reply, Captured), OneShotError> {
    let mut cmd = oneshot_command(python);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let body = serde_json::to_vec(request).map_err(|e| OneShotError::Spawn(e.to_string()))?;
    let out = run_bounded(&mut cmd, Some(&body), &Limits::new(timeout))
        .map_err(|e| OneShotError::Spawn(format!("{}: {e}", python.display())))?;
    if out.timed_out {
        return Err(OneShotError::Timeout(timeout));
    }
    let line = out
        .stdout
        .split(|b| *b == b'\n')
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let parsed = if line.is_empty() {
        Err("it wrote no response on stdout".to_string())
    } else {
        parse_response(line)
    };
    match parsed {
        Ok(reply) => Ok((reply, out)),
        Err(problem) => Err(OneShotError::Failed {
            exit: out.describe_exit(),
            problem,
            stderr_tail: out.tail(15),
        }),
    }
}
