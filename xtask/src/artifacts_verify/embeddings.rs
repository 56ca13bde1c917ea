//! Step 10 (opt-in: `--local-embeddings` or `KTX_RUN_LOCAL_EMBEDDINGS_SMOKE=1`): the
//! local-embeddings feature through the installed `ktx`: install it, start a daemon serving it,
//! embed sentences with `ktx embed --json` (384 finite floats each; paraphrases closer than
//! unrelated sentences), stop. Every model cache is redirected into the sandbox and the hub is
//! offline, so the model can only come from the installed packages.

use super::exec::RunExt;
use super::{parse, runtime, Ctx};
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Bound for the feature's install (PyTorch: about 3 GB of wheels on Linux).
const FEATURE_INSTALL: Duration = Duration::from_secs(3600);
/// Bound for a daemon start that loads the model.
const MODEL_START: Duration = Duration::from_secs(900);
/// all-MiniLM-L6-v2's width.
const DIMENSIONS: usize = 384;
/// Two pairs of paraphrases: each pair must be closer than any sentence of the other pair.
const TEXTS: [&str; 4] = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar.",
    "The quarterly tax report is due on Monday.",
    "Taxes for this quarter must be filed by Monday.",
];

/// The model-cache environment: hub offline, every cache inside the sandbox.
fn model_env(ctx: &Ctx) -> Vec<(&'static str, PathBuf)> {
    let hf = ctx.sandbox.path().join("model-caches");
    vec![
        ("HF_HUB_OFFLINE", PathBuf::from("1")),
        ("HF_HOME", hf.join("hf-home")),
        ("TRANSFORMERS_CACHE", hf.join("transformers")),
        (
            "SENTENCE_TRANSFORMERS_HOME",
            hf.join("sentence-transformers"),
        ),
        ("TORCH_HOME", hf.join("torch")),
    ]
}

fn with_model_env(ctx: &Ctx, mut cmd: Command) -> Command {
    cmd.envs(model_env(ctx));
    cmd
}

/// Step 10a: `ktx runtime install --feature local-embeddings --yes`; status then lists it.
pub fn install(ctx: &mut Ctx) -> Result<()> {
    let cmd = ctx.ktx(&[
        "runtime",
        "install",
        "--feature",
        "local-embeddings",
        "--yes",
    ]);
    with_model_env(ctx, cmd).succeeds(FEATURE_INSTALL)?;
    let (ran, st) = ctx.status()?;
    let features = st.pointer("/manifest/features").and_then(Value::as_array);
    ran.require(
        st["kind"] == "ready"
            && features.is_some_and(|f| f.iter().any(|x| x == "local-embeddings")),
        "status must be ready with the local-embeddings feature",
    )
}

/// Step 10b: `ktx runtime start --feature local-embeddings` (loads the model).
pub fn start(ctx: &mut Ctx) -> Result<()> {
    let env = model_env(ctx);
    let (ran, s) = runtime::start(ctx, &["--feature", "local-embeddings"], &env, MODEL_START)?;
    ran.require(
        s.features.iter().any(|f| f == "local-embeddings"),
        "the daemon must serve local-embeddings",
    )?;
    ctx.started = Some(s);
    Ok(())
}

/// Step 10c: `ktx embed --json` through that daemon: 384 finite floats per text, and each
/// paraphrase pair scores higher than any unrelated pair.
pub fn embed(ctx: &mut Ctx) -> Result<()> {
    let pid = u64::from(
        ctx.started
            .as_ref()
            .context("step 10b started no daemon")?
            .pid,
    );
    let (_, log, _) = runtime::running_daemon(ctx)?;
    let before = runtime::logged_calls(&log)?;
    let mut cmd = ctx.ktx(&["embed", "--json"]);
    cmd.args(TEXTS);
    let ran = with_model_env(ctx, cmd).succeeds(MODEL_START)?;
    let v = ran.check(
        parse::embeddings(ran.stdout(), TEXTS.len(), DIMENSIONS),
        "unexpected embed output",
    )?;
    let sim = |a: usize, b: usize| parse::cosine(&v[a], &v[b]);
    let (guitar, tax) = (sim(0, 1), sim(2, 3));
    let unrelated = [sim(0, 2), sim(0, 3), sim(1, 2), sim(1, 3)]
        .into_iter()
        .fold(f64::MIN, f64::max);
    ran.require(
        guitar > unrelated && tax > unrelated,
        format!(
            "paraphrases must score higher than unrelated sentences: {guitar:.3} and {tax:.3} \
             vs at most {unrelated:.3}"
        ),
    )?;
    let after = runtime::logged_calls(&log)?;
    ran.require(
        after == before + 1,
        format!(
            "the daemon's log {} shows {} calls for this embed, expected 1",
            log.display(),
            after.saturating_sub(before)
        ),
    )?;
    let (st, _, now) = runtime::running_daemon(ctx)?;
    st.require(
        now == pid,
        format!("the daemon changed: pid {now}, expected {pid}"),
    )
}

/// Step 10d: `ktx runtime stop`.
pub fn stop(ctx: &mut Ctx) -> Result<()> {
    runtime::stop(ctx)
}
