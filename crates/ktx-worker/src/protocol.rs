//! The messages on the channel (documented on the Python side, `ktx_worker/serve.py`).

use crate::config::ScriptRef;
use crate::outcome::{CallError, CallErrorKind, CheckOutcome};
use crate::worker::CallRef;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct WireScript<'a> {
    id: &'a str,
    path: String,
    hash: &'a str,
    entrypoint: &'a str,
}

impl<'a> From<&'a ScriptRef> for WireScript<'a> {
    fn from(s: &'a ScriptRef) -> Self {
        WireScript {
            id: &s.id,
            path: s.path.to_string_lossy().into_owned(),
            hash: &s.content_hash,
            entrypoint: &s.entrypoint,
        }
    }
}

#[derive(Serialize)]
struct WireCall<'a> {
    script: WireScript<'a>,
    context: &'a serde_json::Value,
}

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request<'a> {
    Call { calls: Vec<WireCall<'a>> },
    Check { script: WireScript<'a> },
}

/// The body of a `call` request for these calls.
pub fn call_request(calls: &[CallRef<'_>]) -> Vec<u8> {
    let calls = calls
        .iter()
        .map(|(script, context, _)| WireCall {
            script: (*script).into(),
            context,
        })
        .collect();
    serde_json::to_vec(&Request::Call { calls }).expect("plain JSON serializes")
}

/// The body of a `check` request.
pub fn check_request(script: &ScriptRef) -> Vec<u8> {
    serde_json::to_vec(&Request::Check {
        script: script.into(),
    })
    .expect("plain JSON serializes")
}

/// The first frame a worker sends.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    /// Always true.
    pub ready: bool,
    /// Whether the memory limit could be set.
    #[serde(default)]
    pub memory_limited: bool,
}

/// One call's reply.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    ok: bool,
    #[serde(default)]
    value: serde_json::Value,
    error: Option<CallError>,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stdout_truncated: bool,
    /// The worker exits after this reply (a `MemoryError`).
    #[serde(default)]
    pub exiting: bool,
}

impl Reply {
    /// The result this reply carries.
    pub fn result(&mut self) -> Result<serde_json::Value, CallError> {
        if self.ok {
            Ok(std::mem::take(&mut self.value))
        } else {
            Err(self.error.take().unwrap_or_else(|| {
                CallError::new(
                    CallErrorKind::Crashed,
                    "the worker sent an error without detail",
                )
            }))
        }
    }
}

/// Parse a reply frame.
pub fn parse_reply(body: &[u8]) -> Result<Reply, String> {
    serde_json::from_slice(body).map_err(|e| format!("the worker sent an unreadable reply: {e}"))
}

/// Parse a check frame.
pub fn parse_check(body: &[u8]) -> Result<CheckOutcome, String> {
    serde_json::from_slice(body).map_err(|e| format!("the worker sent an unreadable check: {e}"))
}

/// Parse the ready frame.
pub fn parse_ready(body: &[u8]) -> Result<Ready, String> {
    match serde_json::from_slice::<Ready>(body) {
        Ok(r) if r.ready => Ok(r),
        Ok(_) => Err("the worker's first frame is not a ready frame".into()),
        Err(e) => Err(format!("the worker's first frame is unreadable: {e}")),
    }
}
