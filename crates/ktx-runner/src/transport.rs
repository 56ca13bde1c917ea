//! Transports for ABI v1 requests: the one-shot process ([`OneShot`]) and the daemon
//! ([`crate::daemon::Daemon`], loopback HTTP via `ktx-daemon`), chosen in [`select_transport`].

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use ktx_runtime::abi::{self, Reply};
use ktx_runtime::{Receipt, Runtime};

use crate::{CallOptions, RunError};

/// Something that can carry one ABI v1 request to the Python runtime and bring back the reply.
pub trait Transport {
    /// A short name for messages and logs (`one-shot`, `daemon`).
    fn name(&self) -> &'static str;
    /// Sends `request` (a full ABI v1 request object) and returns the decoded reply, or a
    /// transport failure.
    fn send(&self, request: &Value, timeout: Duration) -> Result<Reply, RunError>;
}

/// `<venv python> -I -m ktx_daemon call`: one process per request.
#[derive(Debug, Clone)]
pub struct OneShot {
    /// The venv's Python.
    pub python: PathBuf,
}

impl Transport for OneShot {
    fn name(&self) -> &'static str {
        "one-shot"
    }

    fn send(&self, request: &Value, timeout: Duration) -> Result<Reply, RunError> {
        abi::oneshot(&self.python, request, timeout, None)
            .map(|(reply, _)| reply)
            .map_err(|e| {
                RunError::Transport(format!(
                    "{e}\n  hint: `ktx runtime doctor` checks the runtime; `ktx runtime install --force` rebuilds it."
                ))
            })
    }
}

/// Picks the transport for a call on a ready runtime.
///
/// A healthy daemon of this runtime that serves the needed features is used when one runs;
/// with `opts.daemon` (`--daemon` / `KTX_DAEMON=1`) one is started if needed; otherwise the
/// call is one-shot (see [`crate::daemon`]).
pub fn select_transport(
    rt: &Runtime,
    receipt: &Receipt,
    opts: &CallOptions,
) -> Result<Box<dyn Transport>, RunError> {
    if let Some(daemon) = crate::daemon::select(rt, receipt, &opts.features, opts.daemon)? {
        return Ok(daemon);
    }
    Ok(Box::new(OneShot {
        python: receipt.python_path.clone(),
    }))
}
