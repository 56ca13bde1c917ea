//! The ABI v1 op contract, typed: one request struct per op (what the payload holds) and the
//! result it answers, shared by the runner's typed calls (`ktx_runner::ops`), the commands and
//! this crate's own checks (`runtime.info`). The Python side of the contract is documented in
//! `python-runtime/src/semantic_layer/ops.py` (semantic and demo ops),
//! `python-runtime/src/ktx_daemon/ops/embedding.py` and `.../ops/runtime.py`.
//!
//! Results keep what ktx passes through without reading it: nested documents the CLI prints
//! as they came (`plan`, `databases`, `rows`) stay [`Value`]s, and keys this version does not
//! know land in an `extra` map that is printed after the known ones. A result serializes back
//! to exactly the JSON the CLI has always printed for it.
//!
//! Errors (`ok: false`) carry their data in `details`; close names a user may have meant are
//! always `details.suggestions` (a list of strings, see [`suggestions`]), never text in the
//! message.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// One op: its request is the payload; [`Op::Result`] is what it answers.
pub trait Op: Serialize {
    /// The op's name in the registry (`OPS` in `ktx_daemon/abi.py`).
    const NAME: &'static str;
    /// The op's `result`.
    type Result: DeserializeOwned;
}

/// Keys of a result this version does not know, printed after the known ones (in key order).
pub type Extra = BTreeMap<String, Value>;

/// Decodes an op's `result`; the error names the first wrong key's path and what is wrong
/// (e.g. `` `files[0]`: invalid type: integer `1`, expected a string ``).
pub fn decode<O: Op>(result: Value) -> Result<O::Result, String> {
    serde_path_to_error::deserialize(result).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("`{path}`: {}", e.inner())
        }
    })
}

/// The close names an op error suggests (`details.suggestions`), in order; empty when there
/// are none or `details` has no such list.
pub fn suggestions(details: &Value) -> Vec<String> {
    details
        .get("suggestions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- semantic.query

/// `semantic.query`: compile a semantic query to SQL, and run it with `execute`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SemanticQuery {
    /// The project root (absolute, holds `ktx.yaml`; found by `ktx_runner::project`).
    pub project_dir: PathBuf,
    /// Connection from `ktx.yaml`; may be omitted when there is only one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// `source.measure` names (at least one).
    pub measures: Vec<String>,
    /// `source.column[:granularity]`.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// SQL conditions over `source.column` / `source.measure`.
    #[serde(default)]
    pub filters: Vec<String>,
    /// `source.segment` names.
    #[serde(default)]
    pub segments: Vec<String>,
    /// `field[:asc|desc]`.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// The SQL's LIMIT (the op's default: 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Run the SQL (read-only) and return the rows.
    #[serde(default)]
    pub execute: bool,
    /// Rows returned when executing (the op's default: 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Execution time limit in seconds (the op's default: 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

impl Op for SemanticQuery {
    const NAME: &'static str = "semantic.query";
    type Result = QueryResult;
}

/// `semantic.query`'s result; serializes with its keys in the contract's order (then
/// [`QueryResult::extra`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    /// The connection used.
    pub connection_id: String,
    /// The sqlglot dialect of the SQL.
    pub dialect: String,
    /// The compiled SQL, pretty-printed.
    pub sql: String,
    /// Dimensions then measures, as written in the query.
    pub headers: Vec<String>,
    /// One array per row in header order; empty when compile-only.
    pub rows: Vec<Vec<Value>>,
    /// Rows the query produced (null when compile-only).
    pub total_rows: Option<u64>,
    /// How the SQL was built and run (printed as it came).
    pub plan: Value,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl QueryResult {
    /// `plan.execution.truncated`: whether `maxRows` cut the rows (false when absent).
    pub fn truncated(&self) -> bool {
        self.plan
            .pointer("/execution/truncated")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `plan.execution.maxRows`, when the query was executed.
    pub fn max_rows(&self) -> Option<u64> {
        self.plan
            .pointer("/execution/maxRows")
            .and_then(Value::as_u64)
    }
}

// ---------------------------------------------------------------- semantic.validate

/// `semantic.validate`: check every connection and source file of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SemanticValidate {
    /// The project root (absolute, holds `ktx.yaml`).
    pub project_dir: PathBuf,
}

impl Op for SemanticValidate {
    const NAME: &'static str = "semantic.validate";
    type Result = ValidateResult;
}

/// `semantic.validate`'s result, keys in the contract's order (then [`ValidateResult::extra`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResult {
    /// True when `errors` is empty.
    pub ok: bool,
    /// The project root.
    pub project_dir: String,
    /// Connections declared without error.
    pub connections: u64,
    /// Source files found.
    pub sources: u64,
    /// Problems, sorted by file, then line.
    pub errors: Vec<Issue>,
    /// What could not be checked (each message starts with `could not check`).
    pub warnings: Vec<Issue>,
    /// One `{connectionId, driver, path, checked, reason}` per connection (printed as it came).
    pub databases: Vec<Value>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One problem of a project: where, and what. Field order is the printed key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// Relative to the project, `/` separators.
    pub file: String,
    /// A path inside the file such as `measures[1].expr`; empty for the whole file.
    pub key: String,
    /// 1-based, when known.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------- demo.scaffold

/// `demo.scaffold`: write the demo project into `dir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoScaffold {
    /// Absolute; created with parents if missing.
    pub dir: PathBuf,
    /// The engine to load the warehouse into: `sqlite` (the default), `duckdb`, `postgres` or
    /// `mysql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// For `postgres` and `mysql`: the database to load into (never with a password in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
}

impl Op for DemoScaffold {
    const NAME: &'static str = "demo.scaffold";
    type Result = ScaffoldResult;
}

/// `demo.scaffold`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaffoldResult {
    /// The demo directory, absolute.
    pub dir: String,
    /// Every demo file, relative to `dir`.
    pub files: Vec<String>,
    /// Files this call wrote.
    pub created: Vec<String>,
    /// Files that already existed and were kept.
    pub kept: Vec<String>,
    /// `ktx sl query ...` command lines to try.
    pub queries: Vec<String>,
    /// What the user must know before querying (e.g. which environment variable holds the
    /// password); absent when there is nothing to say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------- embedding.compute

/// `embedding.compute` (feature `local-embeddings`): one vector per text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingCompute {
    /// At most [`EmbeddingCompute::MAX_TEXTS`] texts.
    pub texts: Vec<String>,
    /// Unit-length vectors (the op's default) or raw ones.
    pub normalize: bool,
}

impl EmbeddingCompute {
    /// Most texts the op accepts per call (`MAX_TEXTS` in `ops/embedding.py`).
    pub const MAX_TEXTS: usize = 256;
}

impl Op for EmbeddingCompute {
    const NAME: &'static str = "embedding.compute";
    type Result = EmbeddingResult;
}

/// `embedding.compute`'s result. Numbers stay [`Number`]s, so they print exactly as Python
/// wrote them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResult {
    /// The model, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub model: String,
    /// Length of every vector.
    pub dimensions: u64,
    /// Whether the vectors are unit length.
    pub normalized: bool,
    /// One vector per text, in order.
    pub embeddings: Vec<Vec<Number>>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl EmbeddingResult {
    /// Checks what the types cannot: one vector per text, each `dimensions` long.
    pub fn check(&self, texts: usize) -> Result<(), String> {
        if self.embeddings.len() != texts {
            return Err(format!(
                "{} vectors for {texts} texts",
                self.embeddings.len()
            ));
        }
        match self
            .embeddings
            .iter()
            .position(|v| v.len() as u64 != self.dimensions)
        {
            Some(i) => Err(format!("vector {i} is not {} numbers", self.dimensions)),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------- runtime.*

/// `runtime.ping`: echoes its payload (proves the transport works end to end).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimePing {
    /// The payload, echoed back.
    #[serde(flatten)]
    pub payload: BTreeMap<String, Value>,
}

impl Op for RuntimePing {
    const NAME: &'static str = "runtime.ping";
    type Result = PingResult;
}

/// `runtime.ping`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingResult {
    /// The payload as the runtime received it.
    pub echo: Value,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `runtime.info`: the package version, the interpreter, and which features import.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {}

impl Op for RuntimeInfo {
    const NAME: &'static str = "runtime.info";
    type Result = InfoResult;
}

/// `runtime.info`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoResult {
    /// The distribution, `kaelio-ktx`.
    pub package: String,
    /// Its PEP 440 version.
    pub version: String,
    /// The interpreter running it.
    pub python: PythonInfo,
    /// Features whose modules import.
    pub features: Vec<String>,
    /// Every known feature: available or not, and why not.
    pub feature_details: BTreeMap<String, FeatureDetail>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The interpreter of [`InfoResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonInfo {
    /// e.g. `3.12.3`.
    pub version: String,
    /// e.g. `CPython`.
    pub implementation: String,
    /// `sys.executable`.
    pub executable: String,
}

/// One feature of [`InfoResult::feature_details`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDetail {
    /// Whether its modules import.
    pub available: bool,
    /// Why not, when not.
    pub error: Option<String>,
}

// ---------------------------------------------------------------- sandbox.*

/// `sandbox.status` (feature `sandbox`): whether the compiled module is cached. Cheap: it
/// compiles nothing, so ktx calls it first to say when the first run will compile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatus {
    /// The absolute path of `python.wasm` in a verified `lang-python` bundle.
    pub wasm: PathBuf,
    /// Its sha256 (lowercase hex) as the signed manifest states it.
    pub wasm_sha256: String,
    /// The compiled-module cache (`<root>/<semver>/sandbox-cache`, created 0700 by ktx).
    pub cache_dir: PathBuf,
}

impl Op for SandboxStatus {
    const NAME: &'static str = "sandbox.status";
    type Result = SandboxStatusResult;
}

/// `sandbox.status`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatusResult {
    /// The wasmtime version of the host, e.g. `50.0.1`.
    pub wasmtime_version: String,
    /// Whether a compiled module for this wasm and engine is in the cache.
    pub cached: bool,
    /// Where that compiled module is (or will be).
    pub cache_path: String,
    /// What the cache is keyed on (hex): the wasm's sha256, the wasmtime version, the engine
    /// settings.
    pub engine_key: String,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `sandbox.run` (feature `sandbox`): run Python source in a fresh WASI instance with no
/// preopened dirs, no network, no environment from the host, and hard limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRun {
    /// The absolute path of `python.wasm` (as in [`SandboxStatus`]).
    pub wasm: PathBuf,
    /// Its sha256 from the signed manifest: the host re-checks the file when it compiles, and
    /// keys the cache on it.
    pub wasm_sha256: String,
    /// The compiled-module cache dir.
    pub cache_dir: PathBuf,
    /// The Python source.
    pub code: String,
    /// Shown in tracebacks: `<string>` for `-c`, else the script's name.
    pub filename: String,
    /// The guest's `sys.argv[1:]`.
    pub argv: Vec<String>,
    /// The guest's stdin, base64 (standard alphabet, padded); `None`: an empty stdin.
    pub stdin: Option<String>,
    /// Wall-clock limit in milliseconds (> 0).
    pub timeout_ms: u64,
    /// Linear-memory limit in bytes (at least [`SandboxRun::MIN_MEMORY_BYTES`]).
    pub memory_bytes: u64,
    /// Fuel budget (wasm instructions, roughly); `None`: not metered.
    pub fuel: Option<u64>,
    /// Bytes kept per stream; beyond it the stream is cut and flagged.
    pub max_output_bytes: u64,
    /// A fixed random source and clocks: the same code gives the same fuel and output.
    pub deterministic: bool,
}

impl SandboxRun {
    /// The smallest memory limit the op accepts (16 MiB; CPython needs more than that anyway).
    pub const MIN_MEMORY_BYTES: u64 = 16 * 1024 * 1024;
}

impl Op for SandboxRun {
    const NAME: &'static str = "sandbox.run";
    type Result = SandboxRunResult;
}

/// How a sandboxed run ended (`status` of [`SandboxRunResult`]), classified by the host from
/// typed traps and flags, never from message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatusKind {
    /// The guest exited 0.
    Ok,
    /// The guest exited non-zero (an uncaught exception is 1, `sys.exit(n)` is n).
    Exit,
    /// The wall-clock limit stopped it.
    Timeout,
    /// The fuel budget ran out.
    OutOfFuel,
    /// A memory grow refused by the limit made the guest fail.
    MemoryLimit,
    /// Any other trap (stack overflow in wasm, unreachable).
    Error,
}

impl SandboxStatusKind {
    /// The stable name (`ok`, `exit`, `timeout`, `out_of_fuel`, `memory_limit`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxStatusKind::Ok => "ok",
            SandboxStatusKind::Exit => "exit",
            SandboxStatusKind::Timeout => "timeout",
            SandboxStatusKind::OutOfFuel => "out_of_fuel",
            SandboxStatusKind::MemoryLimit => "memory_limit",
            SandboxStatusKind::Error => "error",
        }
    }
}

/// `sandbox.run`'s result (a run that ran is `ok: true` at the ABI level, whatever the guest
/// did).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRunResult {
    /// How it ended.
    pub status: SandboxStatusKind,
    /// The guest's exit code (see [`SandboxRunResult::cli_exit_code`] for the CLI's).
    pub exit_code: i64,
    /// What the guest wrote on stdout (UTF-8, invalid bytes replaced), at most the limit.
    pub stdout: String,
    /// The same for stderr.
    pub stderr: String,
    /// Whether stdout was cut at `maxOutputBytes`.
    pub stdout_truncated: bool,
    /// Whether stderr was cut at `maxOutputBytes`.
    pub stderr_truncated: bool,
    /// Wall-clock time of the run, in milliseconds.
    pub wall_ms: f64,
    /// Fuel consumed, when metered (`fuel` set, or `deterministic`).
    pub fuel: Option<u64>,
    /// Whether this call compiled the module (a cache miss).
    pub compiled: bool,
    /// How long that compile took, in milliseconds.
    pub compile_ms: Option<f64>,
    /// Keys this version does not know.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SandboxRunResult {
    /// The exit code of `ktx python`: the guest's for `ok` and `exit` (clamped to 0-255, a
    /// non-zero code never becomes 0), 124 for `timeout`, 125 `out_of_fuel`, 126
    /// `memory_limit`, 127 `error` (documented in docs/json-output.md).
    pub fn cli_exit_code(&self) -> u8 {
        match self.status {
            SandboxStatusKind::Ok | SandboxStatusKind::Exit => match self.exit_code {
                0 => 0,
                c if (1..=255).contains(&c) => c as u8,
                _ => 1,
            },
            SandboxStatusKind::Timeout => 124,
            SandboxStatusKind::OutOfFuel => 125,
            SandboxStatusKind::MemoryLimit => 126,
            SandboxStatusKind::Error => 127,
        }
    }
}
