//! Driver features installed on demand, and the one retry that follows.
//!
//! ktx cannot know which warehouse driver a command needs before Python has read the project's
//! `ktx.yaml`, so it does not guess: an op that needs a driver the runtime lacks answers
//!
//! ```text
//! {"code": "feature_required",
//!  "details": {"feature": "duckdb", "connectionId": "warehouse",
//!              "suggestions": ["ktx runtime install --feature duckdb"]}}
//! ```
//!
//! and [`call_through`] installs that feature under the call's [`Policy`] (`--yes` installs;
//! `--no-input` fails naming the feature and the exact command; otherwise a prompt on the
//! terminal with the feature's size, defaulting to yes for the small drivers), then sends the
//! same request once more. When a daemon of this runtime is running, the retry goes through a
//! daemon that serves the new feature: the running one serves from the venv it started in,
//! which lacks the driver, so it is replaced (keeping the features it served). A second
//! `feature_required`, or one for a feature that the call already had, is an error with the
//! rebuild command: it never loops.

use std::path::PathBuf;

use serde_json::Value;

use ktx_runtime::abi::{self, Reply};
use ktx_runtime::{
    feature_list, normalize_features, Feature, InstallOptions, Receipt, Runtime, StatusKind,
};

use crate::transport::Transport;
use crate::{ask, install_command, install_runtime, CallOptions, Policy, RunError};

/// The error code of an op that needs a runtime feature that is not installed.
pub const FEATURE_REQUIRED: &str = "feature_required";

/// What an op's `feature_required` answer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureNeed {
    /// The feature to install.
    pub feature: Feature,
    /// The connection that needs it, when the op named one.
    pub connection_id: Option<String>,
}

impl FeatureNeed {
    /// `Some(Ok(need))` for a `feature_required` error naming a feature this ktx knows;
    /// `Some(Err(..))` for one naming no known feature (a runtime from another ktx); `None`
    /// for any other error.
    pub fn from_error(err: &RunError) -> Option<Result<FeatureNeed, RunError>> {
        let RunError::Abi {
            code,
            message,
            details,
        } = err
        else {
            return None;
        };
        if code != FEATURE_REQUIRED {
            return None;
        }
        let name = details.get("feature").and_then(Value::as_str);
        let connection_id = details
            .get("connectionId")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(match name.and_then(Feature::parse) {
            Some(feature) => Ok(FeatureNeed {
                feature,
                connection_id,
            }),
            None => Err(RunError::Transport(format!(
                "{message}: the runtime asked for the feature {}, which this ktx does not know\n  hint: `ktx runtime install --force` rebuilds the runtime for this ktx.",
                name.map(|n| format!("{n:?}")).unwrap_or_else(|| "(unnamed)".into())
            ))),
        })
    }

    /// `connection `warehouse` uses DuckDB`, `this command uses DuckDB`, or `this command
    /// uses the Python sandbox`.
    fn who(&self) -> String {
        let engine =
            self.feature
                .driver_package()
                .map(|p| p.engine)
                .unwrap_or(match self.feature {
                    Feature::Sandbox => "the Python sandbox",
                    other => other.as_str(),
                });
        match &self.connection_id {
            Some(c) => format!("connection `{c}` uses {engine}"),
            None => format!("this command uses {engine}"),
        }
    }
}

/// What a feature adds to the runtime, for its prompt and refusal. Driver figures measured
/// with uv on Linux x86-64 (CPython 3.11, wheels from PyPI; the README's warehouse section has
/// the table).
pub fn feature_size(feature: Feature) -> Option<&'static str> {
    match feature {
        Feature::Postgres => Some(POSTGRES_SIZE),
        Feature::Duckdb => Some(DUCKDB_SIZE),
        Feature::Mysql => Some(MYSQL_SIZE),
        Feature::Sandbox => Some(SANDBOX_SIZE),
        Feature::LocalEmbeddings => Some(crate::LOCAL_EMBEDDINGS_SIZE),
        Feature::Core => None,
    }
}

/// What the `postgres` feature costs (psycopg 3 with the libpq of psycopg-binary).
pub const POSTGRES_SIZE: &str =
    "psycopg 3 with its bundled libpq: about 4 MB to download, 13 MB on disk";
/// What the `duckdb` feature costs.
pub const DUCKDB_SIZE: &str = "duckdb: about 21 MB to download, 58 MB on disk";
/// What the `mysql` feature costs (PyMySQL is pure Python).
pub const MYSQL_SIZE: &str = "PyMySQL, pure Python: about 50 KB to download, 0.5 MB on disk";

/// What the `sandbox` feature costs: the wasmtime 50.0.1 wheel for Linux x86-64 (measured:
/// 9,586,999 bytes downloaded, 30,235,652 bytes unpacked). The Python bundle it runs ships
/// with ktx.
pub const SANDBOX_SIZE: &str = "wasmtime: about 10 MB to download, 30 MB on disk";

/// The message of a feature the policy did not let ktx install (see [`RunError::FeatureRequired`]).
pub(crate) fn describe_required(
    f: &mut std::fmt::Formatter<'_>,
    need: &FeatureNeed,
    command: &str,
    declined: bool,
) -> std::fmt::Result {
    write!(
        f,
        "{}, which needs the runtime feature `{}` (not installed)",
        need.who(),
        need.feature
    )?;
    let size = feature_size(need.feature)
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    if declined {
        write!(
            f,
            "\n  hint: Install it when you are ready with `{command}`{size}."
        )
    } else {
        write!(f, "\n  hint: Run `{command}` to install it{size}, or re-run this command with --yes to install it automatically.")
    }
}

/// What a call needs from its surroundings: a ready runtime and a transport to it. The real one
/// is [`RuntimeBackend`]; the unit tests use a fake.
pub(crate) trait Backend {
    /// What a ready runtime gives the transport (the receipt, for the real backend).
    type Ready;
    /// Makes sure the runtime has `opts.features` per `opts.policy`; `need` is set when the
    /// last feature was asked for by an op (its prompt and refusal name the connection).
    fn ensure(
        &self,
        opts: &CallOptions,
        need: Option<&FeatureNeed>,
    ) -> Result<Self::Ready, RunError>;
    /// The transport for a call on `ready`; `refresh` asks for a running daemon to be
    /// replaced by one that serves `opts.features` (after a feature was installed).
    fn transport(
        &self,
        ready: &Self::Ready,
        opts: &CallOptions,
        refresh: bool,
    ) -> Result<Box<dyn Transport>, RunError>;
}

fn send(
    transport: &dyn Transport,
    op: &str,
    payload: &Value,
    opts: &CallOptions,
) -> Result<Value, RunError> {
    let request = abi::request(op, payload.clone());
    match transport.send(&request, opts.timeout)? {
        Reply::Ok(result) => Ok(result),
        Reply::Err {
            code,
            message,
            details,
        } => Err(RunError::Abi {
            code,
            message,
            details,
        }),
    }
}

/// One ABI call through `backend`, with the `feature_required` install-and-retry described in
/// the module docs.
pub(crate) fn call_through<B: Backend>(
    backend: &B,
    op: &str,
    payload: Value,
    opts: &CallOptions,
) -> Result<Value, RunError> {
    let ready = backend.ensure(opts, None)?;
    let first = send(
        &*backend.transport(&ready, opts, false)?,
        op,
        &payload,
        opts,
    );
    let err = match first {
        Err(e) => e,
        ok => return ok,
    };
    let need = match FeatureNeed::from_error(&err) {
        None => return Err(err),
        Some(need) => need?,
    };
    if normalize_features(&opts.features).contains(&need.feature) {
        // The runtime was ready with the feature and the op still cannot use it.
        return Err(still_missing(&need, &err));
    }
    let mut retry = opts.clone();
    retry.features.push(need.feature);
    retry.features = normalize_features(&retry.features);
    let ready = backend.ensure(&retry, Some(&need))?;
    let second = send(
        &*backend.transport(&ready, &retry, true)?,
        op,
        &payload,
        &retry,
    );
    match second {
        Err(e) if FeatureNeed::from_error(&e).is_some() => Err(still_missing(&need, &e)),
        other => other,
    }
}

/// The feature is installed, yet the op reports it missing (a damaged venv).
fn still_missing(need: &FeatureNeed, err: &RunError) -> RunError {
    let why = match err {
        RunError::Abi { message, .. } => message.clone(),
        other => other.to_string(),
    };
    RunError::Transport(format!(
        "{}: the runtime feature `{}` is installed but the runtime still cannot use it: {why}\n  hint: Run `ktx runtime install --feature {} --force` to rebuild the runtime, then `ktx runtime doctor`.",
        need.who(),
        need.feature,
        need.feature
    ))
}

/// The real backend: the runtime `rt`, installs with terminal progress, the transport of
/// [`crate::select_transport`].
pub(crate) struct RuntimeBackend<'a> {
    /// The runtime.
    pub rt: &'a Runtime,
}

impl Backend for RuntimeBackend<'_> {
    type Ready = Receipt;

    fn ensure(&self, opts: &CallOptions, need: Option<&FeatureNeed>) -> Result<Receipt, RunError> {
        let receipt = match need {
            None => crate::ensure_runtime(self.rt, opts)?,
            Some(need) => ensure_feature(self.rt, opts, need)?,
        };
        // The directories the venv's python runs from, checked right before it is run.
        ktx_runtime::trust::check(self.rt.layout(), &receipt.venv_dir)
            .map_err(|u| ktx_runtime::trust::error(self.rt.layout(), u))?;
        Ok(receipt)
    }

    fn transport(
        &self,
        receipt: &Receipt,
        opts: &CallOptions,
        refresh: bool,
    ) -> Result<Box<dyn Transport>, RunError> {
        let mut opts = opts.clone();
        // A daemon that runs serves from the venv it started in: have it replaced by one that
        // serves the new feature (the restart keeps what it served) rather than leaving every
        // later call to meet `feature_required` first.
        opts.daemon |= refresh && crate::daemon::is_running(self.rt);
        crate::select_transport(self.rt, receipt, &opts)
    }
}

/// [`crate::ensure_runtime`] for a feature an op asked for: the same policy, with a refusal and
/// a prompt that name the connection, the feature and its size.
fn ensure_feature(
    rt: &Runtime,
    opts: &CallOptions,
    need: &FeatureNeed,
) -> Result<Receipt, RunError> {
    let features = normalize_features(&opts.features);
    let st = match crate::checked_status(rt, &features)? {
        Ok(ready) => return Ok(ready),
        Err(st) => st,
    };
    // Installing rebuilds the venv with the features it has plus this one.
    let command = install_command(&[need.feature]);
    let refused = |declined| RunError::FeatureRequired {
        need: need.clone(),
        command: command.clone(),
        declined,
    };
    let find_links: Option<PathBuf> = opts
        .find_links
        .clone()
        .or_else(|| InstallOptions::new(&[]).find_links);
    match opts.policy {
        Policy::NoInput => return Err(refused(false)),
        Policy::Prompt => {
            if !feature_prompt(rt, need, &features, st.kind, find_links.as_ref())? {
                return Err(refused(true));
            }
        }
        Policy::Yes => {}
    }
    let mut install = InstallOptions::new(&features);
    install.find_links = find_links;
    Ok(install_runtime(rt, &install)?.receipt)
}

/// The question for a feature an op needs; `true` when the user agreed. Driver features are
/// small, so Enter means yes.
fn feature_prompt(
    rt: &Runtime,
    need: &FeatureNeed,
    features: &[Feature],
    kind: StatusKind,
    find_links: Option<&PathBuf>,
) -> Result<bool, RunError> {
    let source = match find_links {
        Some(d) => format!("the local wheelhouse {}", d.display()),
        None => "your configured Python package index (PyPI by default)".to_string(),
    };
    let size = feature_size(need.feature)
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let state = match kind {
        StatusKind::Mismatched | StatusKind::Ready => String::new(),
        StatusKind::Missing => " The KTX Python runtime is not installed yet either.".to_string(),
        other => format!(
            " The KTX Python runtime is not ready here ({}).",
            other.as_str()
        ),
    };
    // Only the large feature makes Enter mean no (as in the core prompt).
    let large = need.feature == Feature::LocalEmbeddings;
    let question = format!(
        "{}: that needs the runtime feature `{}`{size}, which is not installed.{state}\nktx will build its private Python environment in {} with the features {} from {source}.\nInstall it now? {}",
        need.who(),
        need.feature,
        rt.layout().version_dir().display(),
        feature_list(features),
        if large { "[y/N] " } else { "[Y/n] " },
    );
    let Some(line) =
        ask(&question).map_err(|e| RunError::Transport(format!("cannot read the answer: {e}")))?
    else {
        return Ok(false); // end of input: no consent
    };
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes" || (answer.is_empty() && !large))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use serde_json::json;

    /// Replies in order, and the requests it saw.
    struct Script {
        replies: RefCell<Vec<Reply>>,
        seen: RefCell<Vec<Value>>,
    }

    struct FakeTransport(Rc<Script>);

    impl Transport for FakeTransport {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn send(&self, request: &Value, _timeout: Duration) -> Result<Reply, RunError> {
            self.0.seen.borrow_mut().push(request.clone());
            let mut replies = self.0.replies.borrow_mut();
            assert!(!replies.is_empty(), "more requests than scripted replies");
            Ok(replies.remove(0))
        }
    }

    /// A runtime that "installs" whatever it is asked for, unless the policy is `--no-input`
    /// and a feature beyond `installed` is needed.
    struct FakeBackend {
        script: Rc<Script>,
        installed: RefCell<Vec<Feature>>,
        ensures: RefCell<Vec<(Vec<Feature>, Option<FeatureNeed>)>>,
        refreshes: RefCell<Vec<bool>>,
    }

    impl FakeBackend {
        fn new(replies: Vec<Reply>) -> FakeBackend {
            let script = Rc::new(Script {
                replies: RefCell::new(replies),
                seen: RefCell::new(Vec::new()),
            });
            FakeBackend {
                script,
                installed: RefCell::new(vec![Feature::Core]),
                ensures: RefCell::new(Vec::new()),
                refreshes: RefCell::new(Vec::new()),
            }
        }
    }

    impl Backend for FakeBackend {
        type Ready = ();
        fn ensure(&self, opts: &CallOptions, need: Option<&FeatureNeed>) -> Result<(), RunError> {
            let wanted = normalize_features(&opts.features);
            self.ensures
                .borrow_mut()
                .push((wanted.clone(), need.cloned()));
            let missing = wanted.iter().any(|f| !self.installed.borrow().contains(f));
            if missing && opts.policy == Policy::NoInput {
                let need = need.cloned().expect("a refusal always has a need here");
                return Err(RunError::FeatureRequired {
                    command: install_command(&[need.feature]),
                    need,
                    declined: false,
                });
            }
            *self.installed.borrow_mut() = wanted;
            Ok(())
        }
        fn transport(
            &self,
            _ready: &(),
            _opts: &CallOptions,
            refresh: bool,
        ) -> Result<Box<dyn Transport>, RunError> {
            self.refreshes.borrow_mut().push(refresh);
            Ok(Box::new(FakeTransport(Rc::clone(&self.script))))
        }
    }

    fn feature_required(feature: &str) -> Reply {
        Reply::Err {
            code: FEATURE_REQUIRED.into(),
            message: format!("the {feature} driver is not installed"),
            details: json!({
                "feature": feature,
                "connectionId": "warehouse",
                "suggestions": [format!("ktx runtime install --feature {feature}")],
            }),
        }
    }

    fn opts(policy: Policy) -> CallOptions {
        let mut o = CallOptions::new(policy);
        o.daemon = false;
        o
    }

    #[test]
    fn feature_required_installs_the_feature_and_retries_once() {
        let b = FakeBackend::new(vec![
            feature_required("duckdb"),
            Reply::Ok(json!({"rows": [[1]]})),
        ]);
        let payload = json!({"projectDir": "/p", "execute": true});
        let out = call_through(&b, "semantic.query", payload.clone(), &opts(Policy::Yes)).unwrap();
        assert_eq!(out, json!({"rows": [[1]]}));
        let seen = b.script.seen.borrow();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], seen[1], "the retry sends the same request");
        assert_eq!(seen[1]["payload"], payload);
        let ensures = b.ensures.borrow();
        assert_eq!(ensures[0], (vec![Feature::Core], None));
        assert_eq!(
            ensures[1],
            (
                vec![Feature::Core, Feature::Duckdb],
                Some(FeatureNeed {
                    feature: Feature::Duckdb,
                    connection_id: Some("warehouse".into())
                })
            )
        );
        // The retry asks for a running daemon to be refreshed; the first call does not.
        assert_eq!(*b.refreshes.borrow(), [false, true]);
        assert_eq!(*b.installed.borrow(), [Feature::Core, Feature::Duckdb]);
    }

    #[test]
    fn no_input_refuses_naming_the_feature_and_the_command() {
        let b = FakeBackend::new(vec![feature_required("duckdb")]);
        let err =
            call_through(&b, "semantic.query", json!({}), &opts(Policy::NoInput)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RunError::FeatureRequired { .. }), "{err:?}");
        assert!(
            text.starts_with("connection `warehouse` uses DuckDB, which needs the runtime feature `duckdb` (not installed)"),
            "{text}"
        );
        assert!(
            text.contains("Run `ktx runtime install --feature duckdb` to install it ("),
            "{text}"
        );
        assert!(text.contains("--yes"), "{text}");
        assert_eq!(b.script.seen.borrow().len(), 1, "nothing is retried");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn a_second_feature_required_is_an_error_not_a_loop() {
        let b = FakeBackend::new(vec![
            feature_required("postgres"),
            feature_required("postgres"),
        ]);
        let err = call_through(&b, "semantic.validate", json!({}), &opts(Policy::Yes)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("is installed but the runtime still cannot use it"),
            "{text}"
        );
        assert!(
            text.contains("ktx runtime install --feature postgres --force"),
            "{text}"
        );
        assert_eq!(b.script.seen.borrow().len(), 2);

        // A call that already had the feature does not install or retry at all.
        let b = FakeBackend::new(vec![feature_required("mysql")]);
        let mut o = opts(Policy::Yes);
        o.features.push(Feature::Mysql);
        let err = call_through(&b, "semantic.query", json!({}), &o).unwrap_err();
        assert!(err.to_string().contains("still cannot use it"), "{err}");
        assert_eq!(b.ensures.borrow().len(), 1);
    }

    #[test]
    fn other_errors_and_unknown_features_pass_through() {
        let b = FakeBackend::new(vec![Reply::Err {
            code: "unknown_measure".into(),
            message: "unknown measure".into(),
            details: json!({}),
        }]);
        let err = call_through(&b, "semantic.query", json!({}), &opts(Policy::Yes)).unwrap_err();
        assert!(
            matches!(&err, RunError::Abi { code, .. } if code == "unknown_measure"),
            "{err:?}"
        );
        assert_eq!(b.ensures.borrow().len(), 1);

        let b = FakeBackend::new(vec![feature_required("oracle")]);
        let err = call_through(&b, "semantic.query", json!({}), &opts(Policy::Yes)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"oracle\", which this ktx does not know"),
            "{text}"
        );
        assert_eq!(b.ensures.borrow().len(), 1, "nothing is installed for it");
    }

    #[test]
    fn every_driver_has_a_size_for_its_prompt() {
        for f in Feature::DRIVERS.into_iter().chain([Feature::Sandbox]) {
            assert!(feature_size(f).is_some(), "{f}");
        }
        let sandbox = FeatureNeed {
            feature: Feature::Sandbox,
            connection_id: None,
        };
        assert_eq!(sandbox.who(), "this command uses the Python sandbox");
        let need = FeatureNeed {
            feature: Feature::Postgres,
            connection_id: None,
        };
        assert_eq!(need.who(), "this command uses PostgreSQL");
    }
}
