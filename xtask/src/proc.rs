//! Running child processes for the verification steps: stdin null, output captured, bounded
//! time, and failures that show the command, its exit status and the tails of its output.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A finished child.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Captured stdout (lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8).
    pub stderr: String,
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

/// How long the output pipes may stay open after the child exited.
const PIPE_GRACE: Duration = Duration::from_secs(10);

/// Runs `cmd` to completion (stdin null, output captured), killing it after `timeout`. Fails
/// if its stdout or stderr stays open [`PIPE_GRACE`] after it exited.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Finished> {
    run_with_grace(cmd, timeout, PIPE_GRACE)
}

fn run_with_grace(cmd: &mut Command, timeout: Duration, grace: Duration) -> Result<Finished> {
    let shown = display(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}` (is it installed and on PATH?)"))?;
    let out = child.stdout.take().context("no stdout pipe")?;
    let err = child.stderr.take().context("no stderr pipe")?;
    // Readers report through channels so a pipe held open by a grandchild (a daemon that
    // inherited stdout) is reported as an error instead of hanging the caller.
    let reader = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = pipe.read_to_end(&mut b);
            let _ = tx.send(b);
        });
        rx
    };
    let out_rx = reader(Box::new(out));
    let err_rx = reader(Box::new(err));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("cannot wait for `{shown}`"))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within {timeout:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>, name: &str| {
        rx.recv_timeout(grace).map_err(|_| {
            anyhow::anyhow!(
                "`{shown}` exited ({status}) but its {name} stayed open for {grace:?}: a \
                 process it started inherited the pipe"
            )
        })
    };
    let stdout = String::from_utf8_lossy(&collect(out_rx, "stdout")?).into_owned();
    let stderr = String::from_utf8_lossy(&collect(err_rx, "stderr")?).into_owned();
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
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
    let f = run(cmd, timeout)?;
    if !f.status.success() {
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
        assert!(
            err.contains("command: sh -c 'echo out; echo bad >&2; exit 7'"),
            "{err}"
        );
        assert!(
            err.contains("exit status: 7") && err.contains("    out") && err.contains("    bad"),
            "{err}"
        );
    }

    #[test]
    fn a_grandchild_holding_stdout_is_an_error_not_a_hang() {
        let err = run_with_grace(
            Command::new("sh").args(["-c", "sleep 2 & echo started"]),
            Duration::from_secs(5),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("stdout stayed open"), "{err:#}");
    }

    #[test]
    fn kills_a_child_that_overruns() {
        let err = run(Command::new("sleep").arg("5"), Duration::from_millis(200)).unwrap_err();
        assert!(format!("{err:#}").contains("did not finish"));
    }
}
