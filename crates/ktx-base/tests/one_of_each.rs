//! The workspace keeps one of each shared mechanism, in `ktx-base`, and no long functions in
//! the runtime and daemon crates: a reader (or a new platform) finds each thing in one place.
//!
//! These read the production sources (each file up to its `#[cfg(test)]` module) of every
//! crate under `crates/` and of `xtask/src`.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `(path relative to the workspace, production text)` of every source file under `crates/*/src`
/// and `xtask/src`.
fn production_sources() -> Vec<(String, String)> {
    let root = workspace();
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("src"))
        .collect();
    dirs.push(root.join("xtask/src"));
    let mut files = Vec::new();
    for d in dirs {
        rust_files(&d, &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            let end = text
                .find("#[cfg(test)]")
                .or_else(|| text.find("#[cfg(all(test"))
                .unwrap_or(text.len());
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, text[..end].to_string())
        })
        // A module that is all tests (`mod tests;` in its own file).
        .filter(|(rel, _)| !rel.ends_with("/tests.rs") && !rel.contains("/tests/"))
        .collect()
}

/// Every production file that contains `needle`.
fn files_with(sources: &[(String, String)], needle: &str) -> Vec<String> {
    sources
        .iter()
        .filter(|(_, text)| text.contains(needle))
        .map(|(rel, _)| rel.clone())
        .collect()
}

#[test]
fn each_shared_mechanism_is_written_once_in_ktx_base() {
    let sources = production_sources();
    let once = [
        // the civil-date algorithm
        ("719_468", "crates/ktx-base/src/time.rs"),
        // file locks
        ("try_lock_exclusive", "crates/ktx-base/src/lock.rs"),
        ("pub struct FileLock", "crates/ktx-base/src/lock.rs"),
        // process identity
        ("/proc/{pid}/stat", "crates/ktx-base/src/process.rs"),
        ("SYS_pidfd_open", "crates/ktx-base/src/process.rs"),
        // the atomic write's temporary file
        ("tempfile_in(", "crates/ktx-base/src/fs.rs"),
        // the ABI version
        ("const ABI_VERSION", "crates/ktx-base/src/abi.rs"),
    ];
    for (needle, home) in once {
        assert_eq!(
            files_with(&sources, needle),
            vec![home.to_string()],
            "`{needle}` must appear only in {home}"
        );
    }
    // The seconds parser.
    assert_eq!(
        files_with(&sources, "try_from_secs_f64"),
        vec!["crates/ktx-base/src/duration.rs".to_string()]
    );
    for banned in ["libc::flock", "libc::kill(pid, 0)", "fn civil_from_days"] {
        let found: Vec<String> = files_with(&sources, banned)
            .into_iter()
            .filter(|f| !f.starts_with("crates/ktx-base/"))
            .collect();
        assert!(found.is_empty(), "`{banned}` outside ktx-base: {found:?}");
    }
}

/// Strips string and char literals and `//` comments from a line, so that braces inside them
/// are not counted.
fn code_only(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut in_str = false;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            if c == '\\' {
                i += 1;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            break;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 2;
        } else if c == '\'' && chars.get(i + 1) == Some(&'\\') && chars.get(i + 3) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// `(first line, number of lines)` of every function in `text`, with whether the comments and
/// attributes right above it give a reason for its length (`long function: <reason>`).
fn functions(text: &str) -> Vec<(usize, usize, bool)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
            .iter()
            .any(|p| t.starts_with(p));
        if !is_fn {
            continue;
        }
        let mut depth = 0i32;
        let mut opened = false;
        let mut end = None;
        for (j, l) in lines.iter().enumerate().skip(i) {
            let code = code_only(l);
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                end = Some(j);
                break;
            }
            if !opened && code.trim_end().ends_with(';') {
                break; // a declaration without a body
            }
        }
        let Some(end) = end else { continue };
        let reason = lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let l = l.trim_start();
                l.starts_with("//") || l.starts_with("#[")
            })
            .any(|l| l.contains("long function:"));
        found.push((i + 1, end - i + 1, reason));
    }
    found
}

#[test]
fn no_function_in_the_runtime_and_daemon_crates_is_over_100_lines_without_a_reason() {
    let long: Vec<String> = production_sources()
        .iter()
        .filter(|(rel, _)| {
            rel.starts_with("crates/ktx-runtime/")
                || rel.starts_with("crates/ktx-daemon/")
                || rel.starts_with("crates/ktx-base/")
        })
        .flat_map(|(rel, text)| {
            functions(text)
                .into_iter()
                .filter(|(_, n, reason)| *n > 100 && !reason)
                .map(move |(at, n, _)| format!("{rel}:{at} ({n} lines)"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by phase, or say why in a `// long function: ...` comment above: {long:?}"
    );
}

#[test]
fn the_function_scanner_sees_braces_in_code_only() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n    // }\n}\nfn b();\n";
    assert_eq!(functions(text), vec![(1, 5, false)]);
}
