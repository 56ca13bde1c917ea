//! Tidy rules over the workspace's own sources: every module (each `.rs` file under
//! `crates/*/src` and `xtask/src`) opens with a `//!` doc saying what it is for.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the repository")
        .to_path_buf()
}

/// Every `.rs` file below `dir`, recursively, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module source directories: `crates/*/src` and `xtask/src`.
fn source_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/ is readable")
        .map(|e| e.unwrap().path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.push(root.join("xtask/src"));
    dirs
}

/// True when the file's first line is a `//!` module doc (a leading `#!` shebang aside).
fn has_module_doc(text: &str) -> bool {
    text.lines()
        .find(|l| !l.starts_with("#!") || l.starts_with("#!["))
        .is_some_and(|l| l.starts_with("//!"))
}

#[test]
fn every_module_has_a_module_doc() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in source_dirs(&root) {
        rust_files(&dir, &mut files);
    }
    assert!(files.len() > 20, "found only {} modules", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !has_module_doc(&std::fs::read_to_string(f).unwrap()))
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these modules do not start with a `//!` doc; add one or two `//!` lines at the top of \
         each saying what the module is for:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_rule_reads_the_first_line() {
    assert!(has_module_doc("//! What this is.\nuse x;\n"));
    assert!(!has_module_doc("use super::*;\n//! late\n"));
    assert!(!has_module_doc("/// an item doc\nfn f() {}\n"));
    assert!(!has_module_doc(""));
}
