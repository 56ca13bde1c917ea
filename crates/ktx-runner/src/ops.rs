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

/// `semantic.query`.
pub fn semantic_query(req: &SemanticQuery, opts: &CallOptions) -> Result<QueryResult, RunError> {
    call(req, opts)
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
