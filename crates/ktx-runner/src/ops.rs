//! Typed ABI v1 calls: [`call`] sends an op's request struct (from [`ktx_runtime::ops`],
//! re-exported here) through [`crate::call`] and decodes its result, so a command never checks
//! a `serde_json::Value` by hand. A result that does not match the contract is
//! [`RunError::Reply`], naming the op and the wrong key.
//!
//! ```no_run
//! # use ktx_runner::{ops, CallOptions, Policy};
//! let opts = CallOptions::new(Policy::from_flags(false, false)?);
//! let req = ops::SemanticValidate { project_dir: "/abs/project".into() };
//! let result = ops::semantic_validate(&req, &opts)?;
//! println!("{} errors", result.errors.len());
//! # Ok::<(), ktx_runner::RunError>(())
//! ```

use std::time::Duration;

pub use ktx_runtime::ops::*;
use ktx_runtime::Runtime;

use crate::{CallOptions, RunError};

/// Sends `req` with the runtime from the environment and decodes the result.
pub fn call<O: Op>(req: &O, opts: &CallOptions) -> Result<O::Result, RunError> {
    let rt = Runtime::from_env()?;
    call_with(&rt, req, opts)
}

/// [`call`] with an explicit runtime handle.
pub fn call_with<O: Op>(rt: &Runtime, req: &O, opts: &CallOptions) -> Result<O::Result, RunError> {
    let payload = serde_json::to_value(req)
        .map_err(|e| RunError::Transport(format!("cannot encode the {} request: {e}", O::NAME)))?;
    let result = crate::call_with(rt, O::NAME, payload, opts)?;
    decode::<O>(result).map_err(|detail| RunError::Reply {
        op: O::NAME.to_string(),
        detail,
    })
}

/// Time the runner waits beyond a query's `timeoutSeconds` for the answer: the runtime needs
/// a moment to start, stop the query and reply, and it must be the one that reports the
/// timeout.
pub const QUERY_CALL_MARGIN: Duration = Duration::from_secs(30);

/// `semantic.query`. The call's time limit is at least `opts.timeout` and always longer than
/// the query's own `timeoutSeconds` (see [`query_call_timeout`]).
pub fn semantic_query(req: &SemanticQuery, opts: &CallOptions) -> Result<QueryResult, RunError> {
    let mut opts = opts.clone();
    opts.timeout = query_call_timeout(opts.timeout, req.timeout_seconds);
    call(req, &opts)
}

/// The runner's time limit for a query call: at least `default`, and always longer than the
/// query's own `timeoutSeconds` (by [`QUERY_CALL_MARGIN`]), so the runtime reports an
/// execution timeout itself.
pub fn query_call_timeout(default: Duration, query_timeout: Option<f64>) -> Duration {
    match query_timeout.and_then(|s| ktx_base::duration::Seconds::NON_NEGATIVE.of(s)) {
        Some(t) => default.max(t + QUERY_CALL_MARGIN),
        None => default,
    }
}

/// `semantic.validate`.
pub fn semantic_validate(
    req: &SemanticValidate,
    opts: &CallOptions,
) -> Result<ValidateResult, RunError> {
    call(req, opts)
}

/// `demo.scaffold`.
pub fn demo_scaffold(req: &DemoScaffold, opts: &CallOptions) -> Result<ScaffoldResult, RunError> {
    call(req, opts)
}

/// `embedding.compute` (one call: at most [`EmbeddingCompute::MAX_TEXTS`] texts), its result
/// checked with [`EmbeddingResult::check`].
pub fn embedding_compute(
    rt: &Runtime,
    req: &EmbeddingCompute,
    opts: &CallOptions,
) -> Result<EmbeddingResult, RunError> {
    let result = call_with(rt, req, opts)?;
    result
        .check(req.texts.len())
        .map_err(|detail| RunError::Reply {
            op: EmbeddingCompute::NAME.to_string(),
            detail,
        })?;
    Ok(result)
}

/// `runtime.info`.
pub fn runtime_info(opts: &CallOptions) -> Result<InfoResult, RunError> {
    call(&RuntimeInfo {}, opts)
}

/// `runtime.ping`.
pub fn runtime_ping(req: &RuntimePing, opts: &CallOptions) -> Result<PingResult, RunError> {
    call(req, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_outlives_the_query_timeout() {
        let default = Duration::from_secs(300);
        assert_eq!(query_call_timeout(default, None), default);
        assert_eq!(query_call_timeout(default, Some(5.0)), default);
        assert_eq!(
            query_call_timeout(default, Some(1000.0)),
            Duration::from_secs(1000) + QUERY_CALL_MARGIN
        );
        assert_eq!(
            query_call_timeout(default, Some(86_400.0)),
            Duration::from_secs(86_400) + QUERY_CALL_MARGIN
        );
    }
}
