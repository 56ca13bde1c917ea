//! Ctrl-C at an install prompt, in a real pseudo-terminal: ktx must exit 130 at once and
//! install nothing (issue 12, item 8: the prompt held the stderr lock while it read the
//! answer, the Ctrl-C handler waited for that lock to print, and ktx stayed at
//! `Install it now? [Y/n] ^C^C`).
//!
//! The pty comes from libc's `openpty`; ktx runs as a session leader with the pty as its
//! controlling terminal, so `\x03` written to the master is turned into SIGINT by the
//! terminal's line discipline, exactly as a keyboard Ctrl-C is.

// Unix only: drives ktx in a POSIX pseudo-terminal (openpty/setsid); Windows consoles (ConPTY) are another API, not covered here.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pty::PtyChild;
use common::{ktx_std, version_dir, wait_until};

/// How long ktx may take to reach its prompt (it reads the bundled assets first).
const PROMPT_LIMIT: Duration = Duration::from_secs(60);
/// How soon after Ctrl-C ktx must be gone.
const EXIT_LIMIT: Duration = Duration::from_secs(2);

/// Runs `args` on a pty with an empty runtime root, waits for `prompt`, sends Ctrl-C, and
/// asserts a prompt exit: 130 within [`EXIT_LIMIT`], `interrupted`, nothing installed.
fn ctrl_c_at_the_prompt_exits_130(args: &[&str], cwd: &Path, prompt: &str) {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = ktx_std(root.path());
    cmd.args(args).current_dir(cwd).env("TERM", "dumb");
    let mut pty = PtyChild::spawn(cmd);

    let asked = wait_until(PROMPT_LIMIT, || pty.text().contains(prompt));
    assert!(
        asked,
        "no {prompt:?} on the terminal within {PROMPT_LIMIT:?}:\n{}",
        pty.text()
    );
    pty.type_keys(b"\x03");
    let sent = Instant::now();
    let status = pty.wait_for_exit(EXIT_LIMIT);
    let seen = if status.is_some() {
        pty.final_text(Duration::from_secs(10))
    } else {
        pty.text()
    };
    let status = status.unwrap_or_else(|| {
        panic!("ktx {args:?} still runs {EXIT_LIMIT:?} after Ctrl-C at the prompt:\n{seen}")
    });
    assert_eq!(
        status.code(),
        Some(130),
        "after {:?}: {status:?}\n{seen}",
        sent.elapsed()
    );
    assert!(seen.contains("interrupted"), "{seen}");
    assert!(!seen.contains("Installing"), "an install started:\n{seen}");
    let dir = version_dir(root.path());
    assert!(
        !dir.join("manifest.json").exists(),
        "a runtime was installed in {}",
        dir.display()
    );
    let venvs = std::fs::read_dir(dir.join("venvs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(venvs, 0, "a venv was created under {}", dir.display());
}

#[test]
fn ctrl_c_at_the_lazy_install_prompt_exits_130_and_installs_nothing() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("ktx.yaml"), "connections: {}\n").unwrap();
    ctrl_c_at_the_prompt_exits_130(
        &["sl", "query", "--measure", "orders.revenue"],
        project.path(),
        "Install it now? [Y/n]",
    );
}

#[test]
fn ctrl_c_at_the_embed_feature_prompt_exits_130_and_installs_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    ctrl_c_at_the_prompt_exits_130(&["embed", "hello"], cwd.path(), "Install it now? [y/N]");
}
