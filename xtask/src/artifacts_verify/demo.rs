//! Step 9: `ktx demo` in a temp dir, then one of the queries it prints, as printed (it carries
//! `--project-dir`), with `--execute --yes`, from another directory.

use super::exec::RunExt;
use super::{parse, Ctx, INSTALL, QUICK};
use anyhow::Result;

/// Step 9.
pub fn demo(ctx: &mut Ctx) -> Result<()> {
    let cwd = ctx.sandbox.path().join("demo");
    crate::fsx::create_dir_all(&cwd)?;
    let mut cmd = ctx.ktx(&["demo"]);
    cmd.current_dir(&cwd);
    let ran = cmd.succeeds(QUICK)?;
    let project = cwd.join("ktx-demo");
    ran.require(
        project.join("ktx.yaml").is_file() && project.join("warehouse.db").is_file(),
        format!("no demo project in {}", project.display()),
    )?;
    let queries = parse::demo_queries(ran.stdout());
    // Launched through npm's bin link, so the commands it prints must go through npx too.
    ran.require(
        !queries.is_empty() && queries.iter().all(|q| q.starts_with("npx @kaelio/ktx ")),
        "expected the printed queries to start with `npx @kaelio/ktx` (ktx ran from npm)",
    )?;
    let args = ran.check(
        parse::demo_query_to_execute(&queries),
        "cannot pick a printed query",
    )?;

    // Run it from the sandbox root, not the demo dir: the printed queries must work anywhere.
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = ctx.ktx(&args);
    cmd.current_dir(ctx.sandbox.path());
    let ran = cmd.succeeds(INSTALL)?;
    let q = ran.check(parse::query(ran.stdout()), "unexpected query output")?;
    let rows = q.rows.as_array().map_or(0, Vec::len);
    ran.require(
        q.mode == "executed" && rows > 0,
        format!("expected executed rows, got {rows} rows, mode {}", q.mode),
    )
}
