//! Ctrl-C at an install prompt, in a real pseudo-terminal: ktx must exit 130 at once and
//! install nothing (issue 12, item 8: the prompt held the stderr lock while it read the
//! answer, the Ctrl-C handler waited for that lock to print, and ktx stayed at
//! `Install it now? [Y/n] ^C^C`).
//!
//! The pty comes from libc's `openpty`; ktx runs as a session leader with the pty as its
//! controlling terminal, so `\x03` written to the master is turned into SIGINT by the
//! terminal's line discipline, exactly as a keyboard Ctrl-C is.

#![cfg(unix)]

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ktx_std, version_dir, wait_until};

/// How long ktx may take to reach its prompt (it reads the bundled assets first).
const PROMPT_LIMIT: Duration = Duration::from_secs(60);
/// How soon after Ctrl-C ktx must be gone.
const EXIT_LIMIT: Duration = Duration::from_secs(2);

/// A child on a pseudo-terminal, with everything it wrote to the terminal so far.
struct PtyChild {
    child: Child,
    master: File,
    seen: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl PtyChild {
    /// Spawns `cmd` with stdin, stdout and stderr on a new pty that is its controlling
    /// terminal.
    fn spawn(mut cmd: Command) -> PtyChild {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty fills in two new descriptors; we own them from here on.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                // `*mut` here: macOS declares termios and winsize `*mut`, Linux `*const`.
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and are not owned elsewhere.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn ktx on a pty");
        drop(cmd); // closes the parent's copies of the slave side
        let master = File::from(master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&seen);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the child and every copy of the slave side are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        PtyChild {
            child,
            master,
            seen,
            reader,
        }
    }

    /// Everything the child wrote, once the reader has drained the terminal (it ends when the
    /// child, the last holder of the slave side, is gone), waiting at most `limit`.
    fn final_text(&self, limit: Duration) -> String {
        wait_until(limit, || self.reader.is_finished());
        self.text()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// The exit status, if the child ends within `limit`.
    fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    pty.master.write_all(b"\x03").unwrap();
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
