//! Steps 2 to 7: the managed runtime through the installed `ktx` only: status, the lazy install
//! on a first query, queries one-shot and through the daemon, doctor, start/stop, prune and
//! `--no-input`. The warehouse is a project the smoke writes itself: a SQLite database with 3
//! orders (made with the machine's base `python3`) and a source with `order_count`.

use super::exec::{Ran, RunExt};
use super::{parse, Ctx, INSTALL, QUICK};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const KTX_YAML: &str = "connections:\n  smoke:\n    driver: sqlite\n    path: smoke.db\n";
const ORDERS_YAML: &str = "name: orders
table: orders
grain: [id]
columns:
  - {name: id, type: number}
  - {name: customer, type: string}
  - {name: amount, type: number}
measures:
  - {name: order_count, expr: \"count(*)\"}
  - {name: revenue, expr: \"sum(amount)\"}
";
/// Creates the database given as argv[1] with 3 orders (standard library only).
const MAKE_DB: &str = "import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL)')
db.executemany('INSERT INTO orders VALUES (?, ?, ?)',
               [(1, 'ada', 10.0), (2, 'bob', 20.5), (3, 'ada', 7.25)])
db.commit()
db.close()
";

/// `ktx sl query --measure orders.order_count --format json <extra>` in the warehouse.
fn query(ctx: &Ctx, extra: &[&str]) -> Command {
    let mut c = ctx.ktx(&[
        "sl",
        "query",
        "--measure",
        "orders.order_count",
        "--format",
        "json",
    ]);
    c.args(extra);
    c
}

/// Runs an executing query and checks it answered `[[3]]`.
fn expect_three(cmd: Command) -> Result<Ran> {
    let ran = cmd.succeeds(INSTALL)?;
    let q = ran.check(parse::query(ran.stdout()), "unexpected query output")?;
    ran.require(
        q.rows == json!([[3]]) && q.mode == "executed",
        format!(
            "expected rows [[3]] executed, got rows {} mode {}",
            q.rows, q.mode
        ),
    )?;
    Ok(ran)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .next()
        .is_none())
}

/// Step 2: `ktx runtime status --json` -> kind `missing`, `layout.runtimeRoot` the isolated
/// root, `layout.assetDir` the installed package's `python/`, and nothing written.
pub fn status_missing(ctx: &mut Ctx) -> Result<()> {
    let (ran, st) = ctx.status_of_kind("missing")?;
    let root = ctx.runtime_root();
    let got = str_at(&st, "/layout/runtimeRoot");
    ran.require(
        Path::new(got) == root,
        format!(
            "`layout.runtimeRoot` is {got:?}, expected the isolated root {}",
            root.display()
        ),
    )?;
    // The launcher points ktx at the wheel inside the installed package, not at a checkout.
    let assets = ctx
        .sandbox
        .project()
        .join("node_modules")
        .join(ctx.package_name()?)
        .join("python");
    let got = str_at(&st, "/layout/assetDir");
    ran.require(
        Path::new(got) == assets,
        format!(
            "`layout.assetDir` is {got:?}, expected the installed package's {}",
            assets.display()
        ),
    )?;
    ran.require(
        is_empty_dir(&root)?,
        format!(
            "status must not write anything, but {} is not empty",
            root.display()
        ),
    )
}

/// Step 3: writes the warehouse project, then the first query installs the runtime lazily
/// (`--yes`) and compiles: the install messages in order on stderr, `"mode": "compile_only"`
/// and real SQL on stdout.
pub fn first_query(ctx: &mut Ctx) -> Result<()> {
    let dir = ctx.warehouse();
    let source = dir.join("semantic-layer/smoke/orders.yaml");
    crate::fsx::create_dir_all(source.parent().unwrap_or(&dir))?;
    for (path, text) in [(dir.join("ktx.yaml"), KTX_YAML), (source, ORDERS_YAML)] {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut py = ctx.command("python3");
    py.args(["-c", MAKE_DB, "smoke.db"]).current_dir(&dir);
    py.succeeds(QUICK)?;

    let ran = query(ctx, &["--yes"]).succeeds(INSTALL)?;
    // stderr of a lazy install, in this order (the stable messages).
    let (installing, ready) = (parse::installing_core_with_uv(), parse::READY);
    ran.require(
        parse::in_order(ran.stderr(), &[&installing, ready]),
        format!("stderr must show `{installing}` then `{ready}`"),
    )?;
    ran.require(
        ran.stdout().contains("\"mode\": \"compile_only\""),
        "stdout must have \"mode\": \"compile_only\"",
    )?;
    let q = ran.check(parse::query(ran.stdout()), "unexpected query output")?;
    ran.require(
        parse::is_count_sql(&q.sql) && q.rows == json!([]),
        format!(
            "expected SELECT ... COUNT(...) SQL and no rows, got {:?}",
            q.sql
        ),
    )
}

/// Step 4a: status `ready` with features `["core"]`, installed with uv.
pub fn status_ready(ctx: &mut Ctx) -> Result<()> {
    let (ran, st) = ctx.status_of_kind("ready")?;
    let features = st.pointer("/manifest/features");
    ran.require(
        features == Some(&json!(["core"])),
        format!("`manifest.features` is {features:?}, expected [\"core\"]"),
    )?;
    let installer = str_at(&st, "/manifest/installer/name");
    ran.require(
        installer == "uv",
        format!("installed with {installer:?}, expected uv (bootstrapped by ktx)"),
    )
}

/// Step 4b: the same query with `--execute` -> rows `[[3]]`, without installing again.
pub fn query_execute(ctx: &mut Ctx) -> Result<()> {
    let ran = expect_three(query(ctx, &["--yes", "--execute"]))?;
    ran.require(
        !ran.stderr().contains("Installing"),
        "a ready runtime must not be installed again",
    )
}

/// Step 5a: `ktx runtime doctor` exits 0 with PASS for python, uv (the copy ktx bootstrapped
/// under the runtime root), the bundled wheel and the managed runtime, and no FAIL.
pub fn doctor(ctx: &mut Ctx) -> Result<()> {
    let ran = ctx.ktx(&["runtime", "doctor"]).succeeds(QUICK)?;
    let checks = parse::doctor(ran.stdout());
    ran.require(!checks.is_empty(), "no PASS/WARN/FAIL lines")?;
    ran.require(checks.iter().all(|c| c.outcome != "FAIL"), "a check FAILs")?;
    for label in ["python", "uv", "bundled wheel", "managed runtime"] {
        let pass = checks
            .iter()
            .any(|c| c.label == label && c.outcome == "PASS");
        ran.require(pass, format!("no `PASS {label}:` line"))?;
    }
    let root = ctx.runtime_root().display().to_string();
    let uv = checks.iter().find(|c| c.label == "uv");
    ran.require(
        uv.is_some_and(|c| c.detail.contains(&root)),
        format!("uv must be the copy ktx bootstrapped under {root} (uv is hidden from PATH)"),
    )
}

/// `ktx runtime start [args]` with the daemon's access log on (so calls can be counted).
pub(super) fn start(
    ctx: &mut Ctx,
    args: &[&str],
    env: &[(&str, PathBuf)],
    timeout: Duration,
) -> Result<(Ran, parse::DaemonStart)> {
    ctx.arm_daemon_guard();
    let mut cmd = ctx.ktx(&["runtime", "start"]);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("KTX_DAEMON_ACCESS_LOG", "1");
    let ran = cmd.succeeds(timeout)?;
    let s = ran.check(parse::daemon_start(ran.stdout()), "unexpected start output")?;
    Ok((ran, s))
}

/// Step 5b: `ktx runtime start` -> `Started KTX Python daemon` and a `url:` line.
pub fn daemon_start(ctx: &mut Ctx) -> Result<()> {
    let (ran, s) = start(ctx, &[], &[], QUICK)?;
    ran.require(!s.reused, format!("expected `{}`", parse::STARTED))?;
    ran.require(
        // Users see the SemVer (the PEP 440 spelling is only for Python).
        s.features == ["core"] && s.version == ctx.version()?,
        format!("expected version {} features core", ctx.version()?),
    )?;
    ctx.started = Some(s);
    Ok(())
}

/// Step 5c: starting again reuses it: `Using existing KTX Python daemon`, same url and pid.
pub fn daemon_reuse(ctx: &mut Ctx) -> Result<()> {
    let first = ctx.started.clone().context("step 5b started no daemon")?;
    let (ran, s) = start(ctx, &[], &[], QUICK)?;
    ran.require(
        s.reused && s.url == first.url && s.pid == first.pid,
        format!(
            "expected `{}` with url {} pid {}",
            parse::REUSED,
            first.url,
            first.pid
        ),
    )
}

/// The daemon's log path and pid from `ktx runtime status --json`; fails unless it runs.
pub(super) fn running_daemon(ctx: &Ctx) -> Result<(Ran, PathBuf, u64)> {
    let (ran, st) = ctx.status()?;
    let kind = str_at(&st, "/daemon/kind");
    ran.require(
        kind == "running",
        format!("daemon kind is {kind:?}, expected \"running\""),
    )?;
    let log = PathBuf::from(str_at(&st, "/daemon/logPath"));
    let pid = st
        .pointer("/daemon/pid")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok((ran, log, pid))
}

/// Successful ABI calls in the daemon's log so far.
pub(super) fn logged_calls(log: &Path) -> Result<usize> {
    Ok(parse::daemon_calls(&crate::fsx::read_to_string(log)?))
}

/// Step 5d: the query with `--daemon --execute` -> `[[3]]`, through the daemon: its access
/// log gains exactly one call, and the same daemon (pid) still runs.
pub fn daemon_query(ctx: &mut Ctx) -> Result<()> {
    let pid = u64::from(
        ctx.started
            .as_ref()
            .context("step 5b started no daemon")?
            .pid,
    );
    let (_, log, _) = running_daemon(ctx)?;
    let before = logged_calls(&log)?;
    let ran = expect_three(query(ctx, &["--yes", "--daemon", "--execute"]))?;
    let after = logged_calls(&log)?;
    ran.require(
        after == before + 1,
        format!(
            "the daemon's log {} shows {} calls for this query, expected 1 (not through the daemon?)",
            log.display(),
            after.saturating_sub(before)
        ),
    )?;
    let (st, _, now) = running_daemon(ctx)?;
    st.require(
        now == pid,
        format!("the daemon changed: pid {now}, expected {pid}"),
    )
}

/// `ktx runtime stop` -> `Stopped KTX Python daemon`, and status says stopped.
pub(super) fn stop(ctx: &mut Ctx) -> Result<()> {
    let ran = ctx.ktx(&["runtime", "stop"]).succeeds(QUICK)?;
    ran.require(
        ran.stdout().lines().next() == Some(parse::STOPPED),
        format!("expected `{}`", parse::STOPPED),
    )?;
    ctx.daemon_stopped();
    ctx.started = None;
    let (st, v) = ctx.status()?;
    let kind = str_at(&v, "/daemon/kind");
    st.require(
        kind == "stopped",
        format!("daemon kind is {kind:?} after stop"),
    )
}

/// Step 5e: `ktx runtime stop`.
pub fn daemon_stop(ctx: &mut Ctx) -> Result<()> {
    stop(ctx)
}

/// Step 6: a fake old version directory is listed by `--dry-run`, refused without `--yes`,
/// removed with `--yes`; the current version survives and stays ready.
pub fn prune(ctx: &mut Ctx) -> Result<()> {
    let old = ctx.runtime_root().join("0.0.1");
    let marker = old.join("venvs/old/bin/python");
    crate::fsx::create_dir_all(marker.parent().unwrap_or(&old))?;
    std::fs::write(&marker, "old").with_context(|| format!("cannot write {}", marker.display()))?;
    let shown = old.display().to_string();

    let ran = ctx
        .ktx(&["runtime", "prune", "--dry-run"])
        .succeeds(QUICK)?;
    ran.require(
        ran.stdout()
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{shown} ("))),
        format!("--dry-run must list {shown}"),
    )?;
    ran.require(old.exists(), "--dry-run removed it")?;

    let ran = ctx.ktx(&["runtime", "prune"]).fails(QUICK)?;
    ran.require(
        ran.stderr().contains("--yes") && old.exists(),
        format!("without --yes prune must refuse, name --yes and keep {shown}"),
    )?;

    let ran = ctx.ktx(&["runtime", "prune", "--yes"]).succeeds(QUICK)?;
    ran.require(
        ran.stdout().contains(&format!("Removed {shown} ")) && !old.exists(),
        format!("--yes must remove {shown}"),
    )?;
    let current = ctx.version_dir()?;
    ran.require(
        current.join("manifest.json").is_file(),
        format!("the current version {} must survive", current.display()),
    )?;
    let (st, v) = ctx.status()?;
    st.require(
        v["kind"] == "ready",
        "the current runtime is no longer ready after prune",
    )
}

/// Step 7: `--no-input` against a second, empty runtime root fails, names the install command,
/// and installs nothing.
pub fn no_input(ctx: &mut Ctx) -> Result<()> {
    let empty = ctx.sandbox.path().join("ktx-runtime-empty");
    crate::fsx::create_dir_all(&empty)?;
    let mut cmd = query(ctx, &["--no-input"]);
    cmd.env("KTX_RUNTIME_ROOT", &empty);
    let ran = cmd.fails(QUICK)?;
    ran.require(
        ran.stderr().contains("`ktx runtime install`"),
        "the message must name `ktx runtime install`",
    )?;
    ran.require(
        is_empty_dir(&empty)?,
        format!("--no-input wrote into {}", empty.display()),
    )
}
