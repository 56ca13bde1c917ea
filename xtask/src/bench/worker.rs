//! The script worker's figures (`ktx-worker`, issue 17), run against the installed runtime's
//! interpreter: cold spawn to ready, a warm `call` of a trivial script from Rust (goal p50 <=
//! 0.5 ms), a batch of calls in one frame, and the restart after a timeout (goal <= 150 ms:
//! from the timed-out call's return to the next call's result, i.e. the kill, the new
//! process, the module load and one call).

use super::report::Row;
use super::{progress, series, Plan};
use anyhow::{bail, Context, Result};
use ktx_worker::{ScriptRef, Worker, WorkerConfig};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Calls per frame in the batch row.
const BATCH: usize = 20;
/// The deadline of the looping call before each restart.
const LOOP_DEADLINE: Duration = Duration::from_millis(100);
const DEADLINE: Duration = Duration::from_secs(10);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn script(dir: &Path, id: &str, source: &str) -> Result<ScriptRef> {
    let path = dir.join(format!("{id}.py"));
    std::fs::write(&path, source).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(ScriptRef {
        id: id.into(),
        path,
        content_hash: format!("bench-{id}"),
        entrypoint: "render".into(),
    })
}

fn config(python: &Path, dir: &Path) -> WorkerConfig {
    let mut cfg = WorkerConfig::new(python);
    cfg.cwd = Some(dir.to_path_buf());
    // The restart row restarts on purpose, many times.
    cfg.restart_budget = u32::MAX;
    cfg
}

/// Appends the `worker.*` rows.
pub(super) fn worker_rows(
    python: &Path,
    tmp: &Path,
    plan: Plan,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let dir = tmp.join("worker-scripts");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let trivial = script(
        &dir,
        "trivial",
        "def render(context):\n    return context\n",
    )?;
    let looping = script(
        &dir,
        "loop",
        "def render(context):\n    while True:\n        pass\n",
    )?;

    progress(&format!(
        "worker: spawn to ready and bare interpreter start, {} runs each",
        plan.runs
    ));
    let mut spawns = Vec::with_capacity(plan.runs);
    let mut floor = Vec::with_capacity(plan.runs);
    for _ in 0..plan.runs {
        // Interleaved, so that the ratio holds on a loaded machine.
        let t = Instant::now();
        let status = std::process::Command::new(python)
            .args(["-I", "-c", "pass"])
            .env_clear()
            .status()
            .with_context(|| format!("cannot run {}", python.display()))?;
        floor.push(ms(t.elapsed()));
        if !status.success() {
            bail!("{} -I -c pass failed: {status}", python.display());
        }
        let t = Instant::now();
        let w = Worker::spawn(config(python, &dir)).context("the script worker did not start")?;
        spawns.push(ms(t.elapsed()));
        drop(w);
    }
    let floor = series("python -I -c pass (interpreter start-up)", &floor)?;
    rows.push(Row::against(
        "worker.spawn",
        series("Worker::spawn (python -I -m ktx_worker to ready)", &spawns)?,
        floor.clone(),
    ));

    let mut w = Worker::spawn(config(python, &dir)).context("the script worker did not start")?;
    progress(&format!(
        "worker: {} warm calls of a trivial script",
        plan.calls
    ));
    let call = |w: &mut Worker, i: usize| -> Result<f64> {
        let context = json!({"n": i, "name": "bench"});
        let t = Instant::now();
        let out = w.call(&trivial, &context, DEADLINE);
        let elapsed = ms(t.elapsed());
        match out.result {
            Ok(v) if v == context => Ok(elapsed),
            other => bail!("the trivial script answered {other:?}"),
        }
    };
    for i in 0..50 {
        call(&mut w, i)?;
    }
    let calls = (0..plan.calls)
        .map(|i| call(&mut w, i))
        .collect::<Result<Vec<_>>>()?;
    let r = Row::alone(
        "worker.call",
        series(
            &format!(
                "Worker::call x{} (trivial script, warm, from Rust)",
                plan.calls
            ),
            &calls,
        )?,
    );
    let met = r.subject.stats.p50 <= 0.5;
    rows.push(r.goal("p50 <= 0.5 ms", met));

    let batches = (plan.calls / BATCH).max(5);
    progress(&format!("worker: {batches} batches of {BATCH} calls"));
    let batch: Vec<_> = (0..BATCH)
        .map(|i| (trivial.clone(), json!({"n": i}), DEADLINE))
        .collect();
    let mut per_call = Vec::with_capacity(batches);
    for _ in 0..batches {
        let t = Instant::now();
        let out = w.call_many(&batch);
        per_call.push(ms(t.elapsed()) / BATCH as f64);
        if out.iter().any(|o| o.result.is_err()) {
            bail!("a batched call failed: {out:?}");
        }
    }
    rows.push(Row::alone(
        "worker.batch",
        series(
            &format!("Worker::call_many, {BATCH} calls per frame, time per call"),
            &per_call,
        )?,
    ));

    let restarts_n = plan.runs;
    progress(&format!("worker: {restarts_n} timeouts and restarts"));
    let mut restarts = Vec::with_capacity(restarts_n);
    let mut overshoot = Vec::with_capacity(restarts_n);
    for i in 0..restarts_n {
        let out = w.call(&looping, &json!(null), LOOP_DEADLINE);
        match &out.result {
            Err(e) if e.kind == ktx_worker::CallErrorKind::Timeout => {}
            other => bail!("the looping script did not time out: {other:?}"),
        }
        let t = Instant::now();
        call(&mut w, i)?;
        restarts.push(ms(t.elapsed()));
        overshoot.push(ms(out.latency.saturating_sub(LOOP_DEADLINE)));
    }
    let r = Row::against(
        "worker.restart",
        series(
            "after a timeout: kill, fresh worker, load, next call answered",
            &restarts,
        )?,
        floor,
    );
    let met = r.subject.stats.p95 <= 150.0;
    rows.push(r.goal("<= 150 ms (p95)", met));
    rows.push(Row::alone(
        "worker.timeout-overshoot",
        series(
            "a timed-out call's latency past its deadline (detection + kill)",
            &overshoot,
        )?,
    ));
    notes.push(format!(
        "worker.*: ktx-worker driven from the bench process (a debug build of the Rust side) against the installed runtime's python; worker.restart starts right after a {} ms deadline passed (the replacement is spawned at once, so part of its start overlaps the caller's work)",
        LOOP_DEADLINE.as_millis()
    ));
    Ok(())
}
