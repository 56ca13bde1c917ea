//! Tidy checks that keep policy out of the binary crate (its module doc says it holds none)
//! and the stable sentences defined once:
//!
//! - `crates/ktx/src` never discovers projects, prompts, builds doctor checks, decides a prune
//!   refusal, pastes suggestions into messages or strips them out, and calls ops only through
//!   the typed `ktx_runner::ops` (the raw `ktx_runner::call` is for `ktx runtime call`, the
//!   plumbing command that sends any op);
//! - the sentences artifacts-verify parses appear as literals only in
//!   `crates/ktx-runtime/src/messages.rs` (outside test modules), in every crate and in xtask.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/ktx is two levels below the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, with its production code: comments and everything from the
/// first `#[cfg(test)]` on are left out.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let prod = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: Vec<&str> = prod
                    .lines()
                    .map(|l| l.split("//").next().unwrap_or_default())
                    .collect();
                out.push((path, code.join("\n")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_binary_crate_holds_no_policy() {
    let src = workspace().join("crates/ktx/src");
    let files = sources(&src);
    assert!(files.len() >= 6, "{files:?}");
    // (what must not appear, why), checked in every file of the binary crate.
    let banned = [
        (
            // The file name as a literal of its own (a path being built), not user text that
            // mentions it.
            "\"ktx.yaml\"",
            "project discovery belongs to ktx_runner::project",
        ),
        (
            ".ancestors()",
            "project discovery belongs to ktx_runner::project",
        ),
        ("ktx_runner::ask", "prompts belong to the runner's policies"),
        ("Policy::Prompt", "the install policy belongs to the runner"),
        ("Check::new", "doctor checks belong to the libraries"),
        (
            "refusing to remove",
            "the prune refusal is ktx_runtime::prune's",
        ),
        (
            "; did you mean",
            "suggestions are data (details.suggestions)",
        ),
        (
            "strip_suffix(&inline",
            "suggestions are data, never stripped from messages",
        ),
        (
            "pub use crate::output",
            "commands use crate::output directly",
        ),
        (
            "ktx_runner::call_with(",
            "ops are called through ktx_runner::ops (typed)",
        ),
        (
            ".as_array()",
            "op results are typed (ktx_runner::ops), not checked by hand",
        ),
    ];
    let mut offenders = Vec::new();
    for (path, code) in &files {
        for (needle, why) in banned {
            if code.contains(needle) {
                offenders.push(format!("{}: `{needle}`: {why}", path.display()));
            }
        }
        let raw_calls = code.matches("ktx_runner::call(").count();
        let plumbing = path.ends_with("runtime.rs") && raw_calls <= 1;
        if raw_calls > 0 && !plumbing {
            offenders.push(format!(
                "{}: `ktx_runner::call(`: ops are called through ktx_runner::ops (typed)",
                path.display()
            ));
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

#[test]
fn the_stable_sentences_are_defined_once() {
    let root = workspace();
    let home = root.join("crates/ktx-runtime/src/messages.rs");
    let sentences = [
        "Started KTX Python daemon",
        "Using existing KTX Python daemon",
        "Stopped KTX Python daemon",
        "KTX Python daemon already stopped",
        "Installing KTX Python runtime",
        "KTX Python runtime ready:",
    ];
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .collect();
    dirs.push(root.join("xtask/src"));
    let mut offenders = Vec::new();
    let mut defined = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        for (path, code) in sources(dir) {
            for s in sentences {
                if code.contains(&format!("\"{s}")) {
                    if path == home {
                        defined.push(s);
                    } else {
                        offenders.push(format!("{}: \"{s}...\"", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "use ktx_runtime::messages instead of a copy:\n{}",
        offenders.join("\n")
    );
    assert_eq!(
        defined,
        sentences,
        "each sentence is defined in {}",
        home.display()
    );
}
