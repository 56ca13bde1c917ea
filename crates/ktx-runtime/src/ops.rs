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
