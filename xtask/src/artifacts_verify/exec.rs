//! Running a sandboxed command and asserting on what it did: every failed assertion shows the
//! command, its exit status and the tails of its stdout and stderr (see [`proc::failure`]).
//! Also the guard that stops a daemon the smoke started when a step fails.

use crate::proc::{self, Finished};
use anyhow::{Context, Result};
use serde_json::Value;
use std::fmt::Display;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Multiplies every [`RunExt`] timeout (1 natively; more under emulation).
static TIMEOUT_SCALE: AtomicU32 = AtomicU32::new(1);

/// Makes every later [`RunExt`] timeout `factor` times longer (an emulated target runs slower;
/// the step bounds stay written for native speed).
pub fn set_timeout_scale(factor: u32) {
    TIMEOUT_SCALE.store(factor.max(1), Ordering::Relaxed);
}

fn scaled(timeout: Duration) -> Duration {
    timeout * TIMEOUT_SCALE.load(Ordering::Relaxed)
}

/// A command that ran, with what it printed.
#[derive(Debug)]
pub struct Ran {
    /// The command (for failure messages).
    pub cmd: Command,
    /// Exit status and output.
    pub out: Finished,
}

impl Ran {
    /// Captured stdout.
    pub fn stdout(&self) -> &str {
        &self.out.stdout
    }
    /// Captured stderr.
    pub fn stderr(&self) -> &str {
        &self.out.stderr
    }
    /// A failure naming `why`, the command, its exit status and output tails.
    pub fn fail(&self, why: impl Display) -> anyhow::Error {
        proc::failure(&self.cmd, &self.out, &why.to_string())
    }
    /// Fails (see [`Ran::fail`]) with `why` unless `ok`.
    pub fn require(&self, ok: bool, why: impl Display) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(why))
        }
    }
    /// `Ok(v)` as is; an `Err` becomes a failure naming this command.
    pub fn check<T>(&self, r: Result<T>, what: &str) -> Result<T> {
        r.map_err(|e| self.fail(format!("{what}: {e:#}")))
    }
    /// Stdout parsed as one JSON document.
    pub fn json(&self) -> Result<Value> {
        let r = serde_json::from_str(self.stdout()).context("stdout is not one JSON document");
        self.check(r, "unexpected output")
    }
}

/// Runs a command to completion and checks its exit status.
pub trait RunExt {
    /// Runs it; fails unless it exits 0.
    fn succeeds(self, timeout: Duration) -> Result<Ran>;
    /// Runs it; fails unless it exits non-zero (a negative control).
    fn fails(self, timeout: Duration) -> Result<Ran>;
}

impl RunExt for Command {
    fn succeeds(mut self, timeout: Duration) -> Result<Ran> {
        let out = proc::run_ok(&mut self, scaled(timeout))?;
        Ok(Ran { cmd: self, out })
    }

    fn fails(mut self, timeout: Duration) -> Result<Ran> {
        let out = proc::run(&mut self, scaled(timeout))?;
        let ran = Ran { cmd: self, out };
        ran.require(!ran.out.status.success(), "command succeeded but must fail")?;
        Ok(ran)
    }
}

/// Runs `ktx runtime stop` when dropped unless disarmed: armed right before the smoke starts a
/// daemon, disarmed once a step has stopped it, so a failed (or panicking) run never leaves a
/// daemon behind.
#[derive(Debug)]
pub struct DaemonGuard {
    stop: Option<Command>,
}

impl DaemonGuard {
    /// Arms the guard with the command that stops the daemon.
    pub fn arm(stop: Command) -> DaemonGuard {
        DaemonGuard { stop: Some(stop) }
    }

    /// The daemon was stopped by a step: nothing left to do.
    pub fn disarm(mut self) {
        self.stop = None;
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let Some(mut cmd) = self.stop.take() else {
            return;
        };
        let shown = proc::display(&cmd);
        match proc::run(&mut cmd, Duration::from_secs(60)) {
            Ok(f) => println!("cleanup: `{shown}` ({}): {}", f.status, f.stdout.trim()),
            Err(e) => println!("cleanup: `{shown}` failed: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn exit_status_and_assertions_name_the_command() {
        let t = Duration::from_secs(10);
        let ran = sh("echo '{\"a\": 1}'").succeeds(t).unwrap();
        assert_eq!(ran.json().unwrap()["a"], 1);
        let err = format!("{:#}", ran.require(false, "a must be 2").unwrap_err());
        assert!(
            err.contains("a must be 2") && err.contains("command: sh -c"),
            "{err}"
        );
        let err = format!("{:#}", sh("echo out; exit 3").succeeds(t).unwrap_err());
        assert!(
            err.contains("exit status: 3") && err.contains("    out"),
            "{err}"
        );
        let err = format!("{:#}", sh("echo fine").fails(t).unwrap_err());
        assert!(err.contains("must fail"), "{err}");
        let ran = sh("echo nope >&2; exit 1").fails(t).unwrap();
        assert_eq!(ran.stderr(), "nope\n");
        assert!(format!("{:#}", ran.json().unwrap_err()).contains("not one JSON document"));
    }

    #[test]
    fn an_armed_guard_runs_its_command_once_and_a_disarmed_one_never() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("stopped");
        let cmd = || {
            let mut c = Command::new("sh");
            c.arg("-c").arg("echo x >> \"$0\"").arg(&marker);
            c
        };
        DaemonGuard::arm(cmd()).disarm();
        assert!(!marker.exists());
        drop(DaemonGuard::arm(cmd()));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "x\n");
    }
}
