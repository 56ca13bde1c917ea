//! How xtask runs child processes, in exactly two ways:
//!
//! - [`shell`]: an [`xshell::Shell`] for the plain commands whose output the user watches
//!   (`cargo build`, `cargo nextest`, `uv pip install`...), as in rust-analyzer's xtask;
//! - [`run`] / [`run_ok`] / [`run_input`]: the one bounded runner, for everything that needs a
//!   deadline or captured output. It is `ktx_runtime::process::run_bounded` (the child in its own
//!   process group, the group killed on timeout, output capped, exit noticed without polling),
//!   with xtask's error policy on top: a timeout, or a descendant holding stdout/stderr open
//!   after the child exited, is an error that names the command; failures show the command,
//!   its exit status and the tails of its output.

use anyhow::{bail, Context, Result};
use ktx_runtime::process::{run_bounded, Limits};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// Bytes of stdout and of stderr kept per child (head and tail; the middle is marked dropped).
pub const MAX_CAPTURE: usize = 16 << 20;

/// A finished child.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Captured stdout (lossy UTF-8, at most [`MAX_CAPTURE`] bytes).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8, at most [`MAX_CAPTURE`] bytes).
    pub stderr: String,
    /// Wall time from just before spawn to the child's exit (noticed by a blocking wait, not
    /// a polling tick, so it is fit for benchmarks).
    pub elapsed: Duration,
}

impl Finished {
    /// True when the child exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The last 15 lines of stderr, indented, for error messages.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr, 15)
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect()
    }

    /// [`Finished::elapsed`] in milliseconds.
    pub fn ms(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1000.0
    }
}

/// A plain-command shell (xshell) rooted at the repository: for commands whose output goes
/// straight to the terminal and whose only result is their exit status.
pub fn shell() -> Result<xshell::Shell> {
    let sh = xshell::Shell::new().context("cannot set up a shell for child commands")?;
    sh.change_dir(crate::project_root());
    Ok(sh)
}

/// Runs `cargo <args>` (the cargo that runs xtask) in `dir` as a plain command: its output goes
/// to the terminal; a failure names the command and its status.
pub fn cargo(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    let sh = shell()?;
    sh.change_dir(dir);
    let cargo = crate::cargo();
    xshell::cmd!(sh, "{cargo} {args...}")
        .quiet()
        .run()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Renders a command line for messages (program and arguments, space-separated).
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '"', '\'']) {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` to completion (stdin null, output captured), killing its process group after
/// `timeout`. Fails if it cannot start, overruns, or leaves a descendant holding its stdout or
/// stderr open after it exited; does not look at the exit status (see [`run_ok`]).
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Finished> {
    run_input(cmd, None, timeout)
}

/// [`run`] with `input` written to the child's stdin (then closed) when given.
pub fn run_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Result<Finished> {
    let shown = display(cmd);
    let limits = Limits {
        timeout,
        max_output: MAX_CAPTURE,
    };
    let got = run_bounded(cmd, input, &limits)
        .with_context(|| format!("cannot start `{shown}` (is it installed and on PATH?)"))?;
    if got.timed_out {
        bail!("`{shown}` did not finish within {timeout:?} and was killed");
    }
    let status = exit_status(got.code, got.signal);
    if got.lingering_pipe {
        bail!(
            "`{shown}` exited ({status}) but its stdout or stderr stayed open: a process it \
             started inherited the pipe"
        );
    }
    Ok(Finished {
        status,
        stdout: got.stdout_text(),
        stderr: got.stderr_text(),
        elapsed: got.elapsed,
    })
}

/// The [`ExitStatus`] of a child that ended with `code` or by `signal`.
fn exit_status(code: Option<i32>, signal: Option<i32>) -> ExitStatus {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // The raw wait status: the exit code in the second byte, or the signal number.
        match (code, signal) {
            (Some(c), _) => ExitStatus::from_raw((c & 0xff) << 8),
            (None, Some(s)) => ExitStatus::from_raw(s & 0x7f),
            (None, None) => ExitStatus::from_raw(0x7f),
        }
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::ExitStatusExt;
        let _ = signal;
        ExitStatus::from_raw(code.unwrap_or(1) as u32)
    }
}

/// The error for a command that ended badly: command, exit status, output tails.
pub fn failure(cmd: &Command, f: &Finished, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{why}\n  command: {}\n  exit: {}\n  stdout (tail):\n{}\n  stderr (tail):\n{}",
        display(cmd),
        f.status,
        indent(&tail(&f.stdout, 20)),
        indent(&tail(&f.stderr, 20))
    )
}

fn indent(s: &str) -> String {
    if s.is_empty() {
        return "    (empty)".into();
    }
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `cmd` and fails (see [`failure`]) unless it exits 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<Finished> {
    run_ok_input(cmd, None, timeout)
}

/// [`run_input`], failing (see [`failure`]) unless the child exits 0.
pub fn run_ok_input(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Finished> {
    let f = run_input(cmd, input, timeout)?;
    if !f.success() {
        return Err(failure(cmd, &f, "command failed"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_reports_failures_with_tails() {
        let f = run_ok(
            Command::new("sh").args(["-c", "echo hi; echo oops >&2"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!((f.stdout.as_str(), f.stderr.as_str()), ("hi\n", "oops\n"));
        let err = format!(
            "{:#}",
            run_ok(
                Command::new("sh").args(["-c", "echo out; echo bad >&2; exit 7"]),
                Duration::from_secs(10)
            )
            .unwrap_err()
        );
        expect_test::expect![[r#"
            command failed
              command: sh -c 'echo out; echo bad >&2; exit 7'
              exit: exit status: 7
              stdout (tail):
                out
              stderr (tail):
                bad"#]]
        .assert_eq(&err);
    }

    #[test]
    fn a_grandchild_holding_stdout_is_an_error_not_a_hang() {
        let started = std::time::Instant::now();
        let err = run(
            Command::new("sh").args(["-c", "sleep 60 & echo started"]),
            Duration::from_secs(30),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("stdout or stderr stayed open"),
            "{err:#}"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "it hung");
    }

    #[test]
    fn kills_a_child_that_overruns() {
        let err = run(Command::new("sleep").arg("5"), Duration::from_millis(200)).unwrap_err();
        assert!(format!("{err:#}").contains("did not finish"));
    }

    #[test]
    fn times_a_child_feeds_its_stdin_and_keeps_signals() {
        let t = run_ok_input(
            Command::new("sh").args(["-c", "cat; sleep 0.05"]),
            Some(b"hello"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(t.stdout, "hello");
        assert!(t.ms() >= 50.0, "{}", t.ms());
        let killed = run(
            Command::new("sh").args(["-c", "kill -9 $$"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!((killed.code(), killed.success()), (None, false));
        assert_eq!(killed.status.to_string(), "signal: 9 (SIGKILL)");
    }
}
