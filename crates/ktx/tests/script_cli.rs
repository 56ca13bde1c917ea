//! End-to-end tests of `ktx script ...` on the real binary: scripts created, edited, renamed
//! and deleted through the CLI and outside it (an editor's writes, `mv`, real git), with and
//! without git; rebuild against reconcile; invalid frontmatter; the default scripts' seed rule;
//! and, on a real runtime (installed once, real uv), `run` of scripts that loop, sleep, allocate
//! without bound, print 100 MB, call `os._exit` and return NaN, each followed by a run that
//! succeeds, plus `check` and `stats`.
//!
//! The run tests need `KTX_TEST_ASSET_DIR` (set by `cargo xtask test`) and `uv` on PATH; the
//! file tests need neither (they never touch a runtime) but git for the git test.
#![cfg(unix)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};
use std::time::Duration;

use serde_json::Value;

use common::{ktx_bounded, ktx_without_assets, scripts_root, stderr_of, text};

const LIMIT: Duration = Duration::from_secs(120);

/// A fresh project (ktx.yaml only) in a temp dir, canonical path.
fn project() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fs::canonicalize(tmp.path()).unwrap().join("proj");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("ktx.yaml"), "connections: {}\n").unwrap();
    (tmp, dir)
}

/// `ktx script ARGS` in `dir`, with a runtime root that has no assets (these commands must
/// never need the runtime).
fn script(dir: &Path, args: &[&str]) -> Output {
    let root = dir.parent().unwrap().join("no-runtime");
    ktx_without_assets(&root)
        .current_dir(dir)
        .arg("script")
        .args(args)
        .timeout(LIMIT)
        .output()
        .unwrap()
}

/// [`script`], asserted to succeed; its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = script(dir, args);
    assert!(
        out.status.success(),
        "ktx script {args:?}: {}\n{}",
        stderr_of(&out),
        text(&out.stdout)
    );
    text(&out.stdout)
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let stdout = ok(dir, args);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["schemaVersion"], 1, "{v}");
    v
}

/// The `scripts` of `list --json`, by slug.
fn listed(dir: &Path) -> Vec<Value> {
    json(dir, &["list", "--json"])["scripts"]
        .as_array()
        .unwrap()
        .clone()
}

fn slugs(dir: &Path) -> Vec<String> {
    listed(dir)
        .iter()
        .map(|s| s["slug"].as_str().unwrap().to_string())
        .collect()
}

fn field(dir: &Path, slug: &str, key: &str) -> Value {
    json(dir, &["show", slug, "--json"])["script"][key].clone()
}

/// A script body with frontmatter `fm` (lines) and an entrypoint `main` doing `body`.
fn script_text(fm: &str, body: &str) -> String {
    format!(
        "\"\"\"\n---\n{fm}---\n\"\"\"\nimport os\nimport time\n\n\ndef main(context):\n{body}\n"
    )
}

fn git(dir: &Path, args: &[&str]) {
    let out = StdCommand::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", stderr_of(&out));
}

#[test]
fn scripts_without_git_follow_cli_and_outside_edits() {
    let (_tmp, dir) = project();
    let out = ok(&dir, &["new", "alpha", "--kind", "macro"]);
    assert!(out.contains("scripts/alpha.py"), "{out}");
    let file = dir.join("scripts/alpha.py");
    let source = fs::read_to_string(&file).unwrap();
    assert!(source.contains("def render(context):"), "{source}");
    assert!(fs::read_to_string(dir.join(".gitignore"))
        .unwrap()
        .contains(".ktx/\n"));
    assert!(dir.join(".ktx/scripts.db").is_file());
    let list = listed(&dir);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["kind"], "macro");
    assert_eq!(list[0]["entrypoint"], "render");
    assert_eq!(list[0]["path"], file.display().to_string());
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert!(source.contains(&format!("id: {id}\n")), "{source}");

    // Refusals lose nothing: an existing slug, a bad slug, an unknown one (with a suggestion).
    let out = script(&dir, &["new", "alpha", "--kind", "utility"]);
    assert!(!out.status.success() && stderr_of(&out).contains("already exists"));
    assert_eq!(fs::read_to_string(&file).unwrap(), source);
    let out = script(&dir, &["new", "Bad/Slug", "--kind", "utility"]);
    assert!(
        stderr_of(&out).contains("not a valid script slug"),
        "{}",
        stderr_of(&out)
    );
    let out = script(&dir, &["show", "alpah"]);
    assert!(
        stderr_of(&out).contains("did you mean: alpha?"),
        "{}",
        stderr_of(&out)
    );

    // An editor changes the title: the next command sees it.
    fs::write(
        &file,
        source.replace("title: Alpha", "title: Edited outside"),
    )
    .unwrap();
    assert_eq!(field(&dir, "alpha", "title"), "Edited outside");

    // Renamed outside: the id moves with the file.
    fs::rename(&file, dir.join("scripts/beta.py")).unwrap();
    assert_eq!(slugs(&dir), ["beta"]);
    assert_eq!(field(&dir, "beta", "id"), id.as_str());

    // Copied outside: the copy gets a new id, written into it; the original keeps its own.
    fs::copy(dir.join("scripts/beta.py"), dir.join("scripts/aaa_copy.py")).unwrap();
    let out = script(&dir, &["list"]);
    assert!(
        stderr_of(&out).contains("is already used by scripts/beta.py"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(field(&dir, "beta", "id"), id.as_str());
    let copy_id = field(&dir, "aaa_copy", "id");
    assert_ne!(copy_id, id.as_str());
    let copy = fs::read_to_string(dir.join("scripts/aaa_copy.py")).unwrap();
    assert!(
        copy.contains(&format!("id: {}\n", copy_id.as_str().unwrap())),
        "{copy}"
    );

    // Disable / enable through the CLI: file and index together.
    ok(&dir, &["disable", "beta"]);
    let beta = fs::read_to_string(dir.join("scripts/beta.py")).unwrap();
    assert!(beta.contains("\nenabled: false\n"), "{beta}");
    assert_eq!(field(&dir, "beta", "enabled"), false);
    assert!(ok(&dir, &["disable", "beta"]).contains("already disabled"));
    ok(&dir, &["enable", "beta"]);
    assert_eq!(field(&dir, "beta", "enabled"), true);

    // A plain file without frontmatter gets an id written into a new block.
    fs::write(
        dir.join("scripts/plain.py"),
        "def main(context):\n    return 1\n",
    )
    .unwrap();
    let out = script(&dir, &["list", "--kind", "utility"]);
    assert!(
        stderr_of(&out).contains("note: wrote a new id into"),
        "{}",
        stderr_of(&out)
    );
    let plain = fs::read_to_string(dir.join("scripts/plain.py")).unwrap();
    assert!(plain.starts_with("\"\"\"\n---\nid: s-"), "{plain}");
    assert!(
        plain.ends_with("def main(context):\n    return 1\n"),
        "{plain}"
    );
    let utilities: Vec<String> = json(&dir, &["list", "--kind", "utility", "--json"])["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(utilities, ["plain"]);

    // rm through the CLI moves the file into .ktx/trash; a delete outside is picked up.
    let out = ok(&dir, &["rm", "beta"]);
    assert!(!dir.join("scripts/beta.py").exists());
    let trashed: Vec<_> = fs::read_dir(dir.join(".ktx/trash")).unwrap().collect();
    assert_eq!(trashed.len(), 1, "{out}");
    fs::remove_file(dir.join("scripts/plain.py")).unwrap();
    assert_eq!(slugs(&dir), ["aaa_copy"]);

    // Without git, reconcile is a content-hash scan.
    let v = json(&dir, &["reconcile", "--json"]);
    assert_eq!(v["method"], "hash", "{v}");
    assert_eq!(v["scripts"], 1, "{v}");
}

#[test]
fn git_renames_keep_ids_and_rebuild_equals_reconcile() {
    let (_tmp, dir) = project();
    git(&dir, &["init", "-q", "-b", "main"]);
    ok(&dir, &["new", "one", "--kind", "utility"]);
    ok(&dir, &["new", "two", "--kind", "transform"]);
    ok(&dir, &["seed"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "scripts"]);
    // No commit was indexed yet: a content-hash scan, which records HEAD; then git is used.
    let v = json(&dir, &["reconcile", "--json"]);
    assert_eq!(v["method"], "hash", "{v}");
    let v = json(&dir, &["reconcile", "--json"]);
    assert_eq!(v["method"], "git", "{v}");
    assert_eq!(v["added"], serde_json::json!([]), "{v}");
    let id_one = field(&dir, "one", "id");

    // Another branch renames `one` (and drops its id line: only git's rename pairing can keep
    // the id), edits `two` and deletes a default; a "pull" brings it in.
    git(&dir, &["checkout", "-q", "-b", "other"]);
    git(&dir, &["mv", "scripts/one.py", "scripts/uno.py"]);
    let uno = fs::read_to_string(dir.join("scripts/uno.py")).unwrap();
    let without_id: String = uno
        .lines()
        .filter(|l| !l.starts_with("id: "))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(dir.join("scripts/uno.py"), without_id).unwrap();
    let two = fs::read_to_string(dir.join("scripts/two.py")).unwrap();
    fs::write(
        dir.join("scripts/two.py"),
        two.replace("title: Two", "title: Second"),
    )
    .unwrap();
    git(&dir, &["rm", "-q", "scripts/slugify.py"]);
    git(&dir, &["commit", "-qam", "rename, edit, delete"]);
    git(&dir, &["checkout", "-q", "main"]);
    // The index still reflects main; merge the branch as a pull would.
    assert_eq!(
        slugs(&dir),
        ["format_number", "one", "slugify", "top_rows", "two"]
    );
    git(&dir, &["merge", "-q", "--ff-only", "other"]);
    let v = json(&dir, &["reconcile", "--json"]);
    assert_eq!(v["method"], "git", "{v}");
    let renamed = &v["renamed"][0];
    assert!(
        renamed["from"]
            .as_str()
            .unwrap()
            .ends_with("scripts/one.py"),
        "{v}"
    );
    assert!(
        renamed["to"].as_str().unwrap().ends_with("scripts/uno.py"),
        "{v}"
    );
    assert!(
        v["removed"][0]
            .as_str()
            .unwrap()
            .ends_with("scripts/slugify.py"),
        "{v}"
    );
    assert_eq!(field(&dir, "uno", "id"), id_one);
    assert_eq!(field(&dir, "two", "title"), "Second");
    let uno = fs::read_to_string(dir.join("scripts/uno.py")).unwrap();
    assert!(
        uno.contains(&format!("id: {}\n", id_one.as_str().unwrap())),
        "{uno}"
    );

    // An untracked new file is seen too.
    fs::write(
        dir.join("scripts/fresh.py"),
        script_text("kind: utility\n", "    return 1"),
    )
    .unwrap();
    let v = json(&dir, &["reconcile", "--json"]);
    assert!(
        v["added"][0]
            .as_str()
            .unwrap()
            .ends_with("scripts/fresh.py"),
        "{v}"
    );

    // Rebuild from the same tree gives the same index.
    let before = listed(&dir);
    let v = json(&dir, &["rebuild", "--json"]);
    assert_eq!(v["method"], "rebuild", "{v}");
    assert_eq!(listed(&dir), before);
    // And a second project built from the same files (a clone) agrees as well.
    let (_tmp2, clone) = project();
    fs::create_dir(clone.join("scripts")).unwrap();
    for entry in fs::read_dir(dir.join("scripts")).unwrap() {
        let p = entry.unwrap().path();
        fs::copy(&p, clone.join("scripts").join(p.file_name().unwrap())).unwrap();
    }
    let strip = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|mut s| {
                s["path"] = Value::Null;
                s
            })
            .collect()
    };
    assert_eq!(strip(listed(&clone)), strip(before));
}

#[test]
fn invalid_frontmatter_warns_with_file_and_line_and_uses_safe_defaults() {
    let (_tmp, dir) = project();
    fs::create_dir(dir.join("scripts")).unwrap();
    let broken =
        "\"\"\"\n---\ntitle: ok\nkind: [macro\n---\n\"\"\"\n\ndef main(context):\n    return 1\n";
    fs::write(dir.join("scripts/broken.py"), broken).unwrap();
    let odd = script_text(
        "id: odd-1\nkind: gadget\nenabled: maybe\ncolour: red\n",
        "    return 1",
    );
    fs::write(dir.join("scripts/odd.py"), &odd).unwrap();
    let out = script(&dir, &["list"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("warning: scripts/broken.py:5: invalid YAML"),
        "{err}"
    );
    assert!(
        err.contains("warning: scripts/odd.py:4: kind: unknown value \"gadget\""),
        "{err}"
    );
    assert!(
        err.contains("warning: scripts/odd.py:5: enabled: \"maybe\""),
        "{err}"
    );
    assert!(
        err.contains("warning: scripts/odd.py:6: unknown frontmatter key \"colour\""),
        "{err}"
    );
    // A file whose frontmatter could not be read is never rewritten.
    assert_eq!(
        fs::read_to_string(dir.join("scripts/broken.py")).unwrap(),
        broken
    );
    assert_eq!(fs::read_to_string(dir.join("scripts/odd.py")).unwrap(), odd);
    let b = json(&dir, &["show", "broken", "--json"])["script"].clone();
    assert_eq!(
        (b["kind"].as_str(), b["enabled"].as_bool()),
        (Some("utility"), Some(true))
    );
    assert_eq!(
        b["title"], "broken",
        "the title of unreadable YAML is the default"
    );
    let o = json(&dir, &["show", "odd", "--json"])["script"].clone();
    assert_eq!(o["kind"], "utility");
    assert_eq!(
        o["enabled"], false,
        "an unreadable `enabled` is the safe false"
    );
    assert_eq!(o["warnings"].as_array().unwrap().len(), 3, "{o}");
    // The broken one keeps the same id from command to command.
    assert_eq!(field(&dir, "broken", "id"), b["id"]);
    // Editing a broken file through the CLI is refused with the fix, and changes nothing.
    let out = script(&dir, &["disable", "broken"]);
    assert!(
        stderr_of(&out).contains("not valid YAML"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        fs::read_to_string(dir.join("scripts/broken.py")).unwrap(),
        broken
    );
}

#[test]
fn seed_updates_an_unmodified_default_and_keeps_a_modified_one() {
    let (_tmp, dir) = project();
    let v = json(&dir, &["seed", "--json"]);
    assert_eq!(
        v["added"],
        serde_json::json!(["format_number", "slugify", "top_rows"]),
        "{v}"
    );
    let v = json(&dir, &["seed", "--json"]);
    assert_eq!(v["current"].as_array().unwrap().len(), 3, "{v}");

    let defaults = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ktx-scripts/defaults");
    let current = fs::read_to_string(defaults.join("format_number.py")).unwrap();
    let old = fs::read_to_string(defaults.join("history/format_number.1.py")).unwrap();
    fs::write(dir.join("scripts/format_number.py"), &old).unwrap();
    let mine = format!(
        "{}\n# my change\n",
        fs::read_to_string(defaults.join("slugify.py")).unwrap()
    );
    fs::write(dir.join("scripts/slugify.py"), &mine).unwrap();
    fs::remove_file(dir.join("scripts/top_rows.py")).unwrap();
    assert_eq!(field(&dir, "format_number", "version"), "1");

    let v = json(&dir, &["seed", "--json"]);
    assert_eq!(v["updated"], serde_json::json!(["format_number"]), "{v}");
    assert_eq!(v["kept"], serde_json::json!(["slugify"]), "{v}");
    assert_eq!(v["added"], serde_json::json!(["top_rows"]), "{v}");
    assert_eq!(
        fs::read_to_string(dir.join("scripts/format_number.py")).unwrap(),
        current
    );
    assert_eq!(
        fs::read_to_string(dir.join("scripts/slugify.py")).unwrap(),
        mine
    );
    assert_eq!(field(&dir, "format_number", "version"), "2");
    let text = ok(&dir, &["seed"]);
    assert!(
        text.contains("kept     ") && text.contains("you changed it"),
        "{text}"
    );
}

#[test]
fn run_without_a_runtime_under_no_input_names_the_install_command() {
    let (_tmp, dir) = project();
    ok(&dir, &["seed"]);
    let out = script(&dir, &["run", "slugify", "--no-input"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("ktx runtime install"),
        "{}",
        stderr_of(&out)
    );
    let out = script(&dir, &["run", "slugify", "--context", "[1]"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("must be a JSON object"),
        "{}",
        stderr_of(&out)
    );
}

/// `ktx script run SLUG --json` on the shared runtime: (exit code, document).
fn run_json(dir: &Path, slug: &str, extra: &[&str]) -> (i32, Value) {
    let out = ktx_bounded(scripts_root(), LIMIT)
        .current_dir(dir)
        .args(["script", "run", slug, "--json", "--no-input"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", stderr_of(&out)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn runaway_scripts_give_typed_results_and_the_next_run_succeeds() {
    let (_tmp, dir) = project();
    ok(&dir, &["seed"]);
    let faults: &[(&str, &str, &str)] = &[
        ("spin", "    while True:\n        pass", "timeout"),
        ("nap", "    time.sleep(60)", "timeout"),
        (
            "hog",
            "    chunks = []\n    while True:\n        chunks.append(bytearray(64 << 20))",
            "raised",
        ),
        ("bye", "    os._exit(3)", "crashed"),
        (
            "nan",
            "    return {\"rows\": [{\"x\": 1.0}, {\"x\": float(\"nan\")}]}",
            "bad_result",
        ),
    ];
    for (slug, body, _) in faults {
        // The loops stop at 1 s; the allocation gets time to reach the memory limit.
        let timeout = if *slug == "hog" { 30 } else { 1 };
        fs::write(
            dir.join(format!("scripts/{slug}.py")),
            script_text(&format!("kind: utility\ntimeout: {timeout}\n"), body),
        )
        .unwrap();
    }
    let shout = script_text(
        "kind: utility\n",
        "    chunk = \"x\" * (1 << 20)\n    for _ in range(100):\n        print(chunk)\n    return \"done\"",
    );
    fs::write(dir.join("scripts/shout.py"), shout).unwrap();

    for (slug, _, kind) in faults {
        let (code, v) = run_json(&dir, slug, &[]);
        assert_eq!(code, 1, "{slug}: {v}");
        assert_eq!(v["ok"], false, "{slug}: {v}");
        assert_eq!(v["error"]["kind"], *kind, "{slug}: {v}");
        let (code, v) = run_json(
            &dir,
            "slugify",
            &["--context", r#"{"text": "After A Fault"}"#],
        );
        assert_eq!(
            (code, &v["result"]),
            (0, &Value::from("after-a-fault")),
            "after {slug}: {v}"
        );
    }
    let (_, v) = run_json(&dir, "nan", &[]);
    assert_eq!(v["error"]["path"], "$.rows[1].x", "{v}");
    let (_, v) = run_json(&dir, "hog", &[]);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MemoryError"),
        "{v}"
    );

    // 100 MB of print: the result arrives, the captured stdout is capped and flagged.
    let (code, v) = run_json(&dir, "shout", &[]);
    assert_eq!(
        (code, &v["result"]),
        (0, &Value::from("done")),
        "{}",
        &v["error"]
    );
    assert_eq!(v["stdoutTruncated"], true);
    assert!(v["stdout"].as_str().unwrap().len() <= 2 << 20);

    // --timeout overrides the script's deadline; the counters of each last run are kept.
    let (_, v) = run_json(&dir, "nap", &["--timeout", "0.3"]);
    assert_eq!(v["error"]["kind"], "timeout", "{v}");
    let stats = json_with_runtime(&dir, &["stats", "--json"]);
    let nap = stats["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slug"] == "nap")
        .cloned()
        .unwrap();
    assert_eq!(
        (nap["calls"].as_u64(), nap["timeouts"].as_u64()),
        (Some(1), Some(1)),
        "{nap}"
    );
    let slugify = stats["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slug"] == "slugify")
        .cloned()
        .unwrap();
    assert_eq!(slugify["errors"], 0, "{slugify}");
    assert!(slugify["p50Ms"].as_f64().unwrap() > 0.0, "{slugify}");
}

fn json_with_runtime(dir: &Path, args: &[&str]) -> Value {
    let out = ktx_bounded(scripts_root(), LIMIT)
        .current_dir(dir)
        .arg("script")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn check_reports_syntax_errors_at_file_line_col_and_missing_entrypoints() {
    let (_tmp, dir) = project();
    ok(&dir, &["seed"]);
    fs::write(
        dir.join("scripts/typo.py"),
        script_text("kind: utility\n", "    return (1,"),
    )
    .unwrap();
    fs::write(
        dir.join("scripts/noentry.py"),
        "\"\"\"\n---\nkind: macro\n---\n\"\"\"\n\ndef main(context):\n    return 1\n",
    )
    .unwrap();
    let out = ktx_bounded(scripts_root(), LIMIT)
        .current_dir(&dir)
        .args(["script", "check", "--no-input"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", stderr_of(&out));
    assert!(stdout.contains("ok   slugify"), "{stdout}");
    assert!(stdout.contains("FAIL typo"), "{stdout}");
    let typo_line = stdout
        .lines()
        .find(|l| l.contains("error: scripts/typo.py:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let loc: Vec<&str> = typo_line
        .split("scripts/typo.py:")
        .nth(1)
        .unwrap()
        .splitn(3, ':')
        .collect();
    assert!(loc[0].parse::<u32>().unwrap() >= 10, "{typo_line}");
    assert!(loc[1].parse::<u32>().is_ok(), "a column: {typo_line}");
    assert!(stdout.contains("FAIL noentry"), "{stdout}");
    assert!(stdout.contains("render"), "{stdout}");
    assert!(
        stdout.contains("5 scripts checked, 2 with errors"),
        "{stdout}"
    );

    let out = ktx_bounded(scripts_root(), LIMIT)
        .current_dir(&dir)
        .args(["script", "check", "slugify", "--no-input"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn demo_seeds_the_default_scripts() {
    let work = tempfile::tempdir().unwrap();
    let dir = fs::canonicalize(work.path()).unwrap().join("demo");
    let out = ktx_bounded(scripts_root(), LIMIT)
        .args(["demo", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["scripts"]["added"].as_array().unwrap().len(), 3, "{v}");
    assert!(dir.join("scripts/format_number.py").is_file());
    assert_eq!(slugs(&dir), ["format_number", "slugify", "top_rows"]);
    let (code, v) = run_json(
        &dir,
        "format_number",
        &["--context", r#"{"value": 1234567.891, "decimals": 2}"#],
    );
    assert_eq!(
        (code, &v["result"]),
        (0, &Value::from("1,234,567.89")),
        "{v}"
    );
}
