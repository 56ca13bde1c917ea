//! [`Client`]: authenticated calls to one verified daemon instance over a kept-alive connection.

use crate::error::{DaemonError, Result};
use crate::files::{self, DaemonPaths, DaemonState, OwnerRecord};
use crate::http::{Conn, Response};
use crate::process;
use ktx_base::abi::ABI_VERSION;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Default bound on connecting to the daemon (loopback: a refused port fails at once anyway).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request body the daemon accepts (`MAX_BODY_BYTES` in `ktx_daemon/server.py`):
/// a larger call is refused here, before anything is sent, as the daemon would answer 413.
pub const MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;
/// Default bound on a `/health` answer.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The body of `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or `loading` while a feature warms up (e.g. a model loads).
    pub status: String,
    /// PEP 440 version of the Python package.
    pub version: String,
    /// Features served.
    pub features: Vec<String>,
    /// The daemon's pid.
    pub pid: u32,
    /// Its instance id (matches `state.json`).
    pub instance_id: String,
    /// ABI version.
    pub abi: u32,
    /// Optional warm-up detail per feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<serde_json::Value>,
}

/// A connection to one daemon instance whose identity was checked against `state.json`.
#[derive(Debug)]
pub struct Client {
    state: DaemonState,
    token: String,
    conn: Mutex<Option<Conn>>,
    call_timeout: Option<Duration>,
}

impl Client {
    /// Connect to the daemon of `daemon_dir` only if it is healthy and usable: its pid is alive
    /// with the start time we recorded, `/health` answers with the instance id of `state.json`,
    /// status `ok`, version `version`, and it serves every feature in `features`. Never starts,
    /// stops or cleans anything. `None` for any other situation (use one-shot instead).
    pub fn connect_healthy(
        daemon_dir: &Path,
        version: &str,
        features: &[String],
    ) -> Option<Client> {
        // The token and state of a directory another user could write are never used.
        files::check_dir(daemon_dir).ok()?;
        let (client, health) = Client::connect_verified(&DaemonPaths::new(daemon_dir)).ok()?;
        let usable = health.status == "ok"
            && health.abi == ABI_VERSION
            && health.version == version
            && features.iter().all(|f| health.features.contains(f));
        usable.then_some(client)
    }

    /// Read state, owner and token; check the pid's identity and the health handshake.
    /// `Err(reason)` explains why the recorded daemon is not ours or not answering.
    pub(crate) fn connect_verified(
        paths: &DaemonPaths,
    ) -> std::result::Result<(Client, Health), String> {
        let state: DaemonState =
            files::read_json(&paths.state)?.ok_or_else(|| "no daemon state file".to_string())?;
        let owner: Option<OwnerRecord> = files::read_json(&paths.owner).unwrap_or(None);
        let Some(owner) = owner.filter(|o| o.pid == state.pid) else {
            return Err(format!(
                "no owner record for pid {} ({} missing or names another pid)",
                state.pid,
                paths.owner.display()
            ));
        };
        if !process::is_same_process(state.pid, &owner.start_time) {
            return Err(if process::is_running(state.pid) {
                format!(
                    "pid {} is alive but is another process (its start time differs from the recorded one)",
                    state.pid
                )
            } else {
                format!("daemon pid {} is not running", state.pid)
            });
        }
        let client = Client::for_state(paths, state)?;
        let health = client.health_with(HEALTH_TIMEOUT).map_err(|e| {
            format!(
                "daemon pid {} does not answer: {}",
                client.state.pid,
                e.summary()
            )
        })?;
        client.check_identity(&health)?;
        Ok((client, health))
    }

    /// A client for `state` using the token file of `paths` (no check performed).
    pub(crate) fn for_state(
        paths: &DaemonPaths,
        state: DaemonState,
    ) -> std::result::Result<Client, String> {
        if state.host != "127.0.0.1" {
            return Err(format!(
                "state names host {:?}; only 127.0.0.1 is accepted",
                state.host
            ));
        }
        let token = files::read_token(paths)?;
        Ok(Client {
            state,
            token,
            conn: Mutex::new(None),
            call_timeout: None,
        })
    }

    pub(crate) fn check_identity(&self, health: &Health) -> std::result::Result<(), String> {
        if health.instance_id != self.state.instance_id || health.pid != self.state.pid {
            return Err(format!(
                "the process on port {} is instance {} pid {}, but the state names instance {} pid {}",
                self.state.port,
                health.instance_id,
                health.pid,
                self.state.instance_id,
                self.state.pid
            ));
        }
        Ok(())
    }

    /// The state of the daemon this client talks to.
    pub fn state(&self) -> &DaemonState {
        &self.state
    }

    /// Bound each read of a `call` (default: none, calls may run long).
    pub fn set_call_timeout(&mut self, timeout: Option<Duration>) {
        self.call_timeout = timeout;
    }

    /// `GET /health`.
    pub fn health(&self) -> Result<Health> {
        self.health_with(HEALTH_TIMEOUT)
    }

    fn health_with(&self, timeout: Duration) -> Result<Health> {
        let resp = self.request("GET", "/health", None, Some(timeout))?;
        self.parse(&resp, "/health")
    }

    /// Send one ABI v1 request (`POST /v1/call`) and return the raw ABI response
    /// (`{"abi":1,"ok":...}`), whether `ok` is true or false.
    pub fn call(&self, request: &serde_json::Value) -> Result<serde_json::Value> {
        self.call_with_timeout(request, self.call_timeout)
    }

    /// [`Client::call`] with an explicit bound on each read of the answer (None: wait).
    pub fn call_with_timeout(
        &self,
        request: &serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<serde_json::Value> {
        let body = serde_json::to_vec(request).map_err(|e| DaemonError::Protocol {
            url: self.url("/v1/call"),
            status: None,
            message: format!("cannot encode the request: {e}"),
        })?;
        if body.len() > MAX_REQUEST_BODY {
            return Err(DaemonError::Protocol {
                url: self.url("/v1/call"),
                status: Some(413),
                message: format!(
                    "the request body of {} bytes exceeds the daemon's limit of {MAX_REQUEST_BODY} bytes",
                    body.len()
                ),
            });
        }
        let resp = self.request("POST", "/v1/call", Some(&body), timeout)?;
        self.parse(&resp, "/v1/call")
    }

    /// `POST /v1/shutdown`: the daemon removes its state and exits.
    pub(crate) fn shutdown(&self) -> Result<()> {
        let resp = self.request("POST", "/v1/shutdown", Some(b""), Some(HEALTH_TIMEOUT))?;
        if resp.status != 200 {
            return Err(self.status_error(&resp, "/v1/shutdown"));
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.state.url())
    }

    fn status_error(&self, resp: &Response, path: &str) -> DaemonError {
        DaemonError::Protocol {
            url: self.url(path),
            status: Some(resp.status),
            message: format!("HTTP {}: {}", resp.status, summarize_body(&resp.body)),
        }
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self, resp: &Response, path: &str) -> Result<T> {
        if resp.status != 200 {
            return Err(self.status_error(resp, path));
        }
        serde_json::from_slice(&resp.body).map_err(|e| DaemonError::Protocol {
            url: self.url(path),
            status: None,
            message: format!("invalid JSON body: {e}"),
        })
    }

    /// One exchange, reusing the kept-alive connection when it is free; a reused connection
    /// that the server had closed (nothing received) is retried once on a fresh one.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        read_timeout: Option<Duration>,
    ) -> Result<Response> {
        let mut slot = self.conn.try_lock().ok();
        let pooled = slot.as_mut().and_then(|s| s.take());
        let attempt = |conn: Option<Conn>| -> Result<(Response, Conn), (DaemonError, bool)> {
            let reused = conn.is_some();
            let mut conn = match conn {
                Some(c) => c,
                None => Conn::connect(self.state.port, CONNECT_TIMEOUT).map_err(|e| {
                    (
                        DaemonError::Transport {
                            url: self.url(path),
                            op: crate::error::CONNECT_OP.into(),
                            source: e,
                        },
                        false,
                    )
                })?,
            };
            match conn.exchange(method, path, &self.token, body, read_timeout) {
                Ok(resp) => Ok((resp, conn)),
                Err(e) => Err((
                    DaemonError::Transport {
                        url: self.url(path),
                        op: e.op.into(),
                        source: e.source,
                    },
                    reused && e.nothing_received,
                )),
            }
        };
        let (resp, conn) = match attempt(pooled) {
            Ok(ok) => ok,
            Err((_, true)) => attempt(None).map_err(|(e, _)| e)?,
            Err((e, false)) => return Err(e),
        };
        if !resp.close {
            if let Some(slot) = slot.as_mut() {
                **slot = Some(conn);
            }
        }
        Ok(resp)
    }
}

/// One short, single-line description of an error body: the daemon's JSON `message`, else the
/// first line of whatever answered (another local server may send a whole HTML page), with
/// control characters removed and at most 200 characters.
fn summarize_body(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
    let text = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("(empty body)")
            .to_string()
    });
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.chars().count() > 200 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::summarize_body;

    #[test]
    fn error_bodies_become_one_short_line() {
        assert_eq!(
            summarize_body(
                br#"{"error":"unauthorized","message":"missing or wrong bearer token"}"#
            ),
            "missing or wrong bearer token"
        );
        let html = b"\n<!DOCTYPE HTML>\n<html>\n<body>404</body>\n</html>\n";
        assert_eq!(summarize_body(html), "<!DOCTYPE HTML>");
        assert_eq!(summarize_body(b""), "(empty body)");
        let long = "x\u{1b}".repeat(300);
        let out = summarize_body(long.as_bytes());
        assert_eq!(out, format!("{}...", "x".repeat(200)));
    }
}
