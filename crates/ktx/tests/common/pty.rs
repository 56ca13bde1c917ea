//! A child process on a real pseudo-terminal (libc's `openpty`), for the tests of what ktx does
//! at a prompt: the pty is the child's controlling terminal (it runs as a session leader), so
//! `\x03` typed on the master becomes SIGINT through the line discipline, as a keyboard
//! Ctrl-C does.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::wait_until;

/// A child on a pseudo-terminal, with everything it wrote to the terminal so far.
pub struct PtyChild {
    child: Child,
    master: File,
    seen: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl PtyChild {
    /// Spawns `cmd` with stdin, stdout and stderr on a new pty that is its controlling
    /// terminal.
    pub fn spawn(mut cmd: Command) -> PtyChild {
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
    pub fn final_text(&self, limit: Duration) -> String {
        wait_until(limit, || self.reader.is_finished());
        self.text()
    }

    /// Everything the child wrote so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// The exit status, if the child ends within `limit`.
    /// Types `bytes` on the terminal (`b"\x03"` is Ctrl-C, `b"\n"` Enter).
    pub fn type_keys(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
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
