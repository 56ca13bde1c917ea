//! The worker process: spawned in its own process group with a minimal environment, a thread
//! reading reply frames from its stdout, another keeping the tail of its stderr, and a kill
//! that takes the whole group (a script's subprocesses die with it).
//!
//! The group kill needs no identity check: we hold the unreaped `Child`, so its pid (and the
//! group id it leads) cannot be reused until we wait. Windows has no process groups here: the
//! kill is `taskkill /T /F` on the tree, as `ktx_runtime::process` does.

use crate::config::WorkerConfig;
use crate::frame;
use std::collections::VecDeque;
use std::io::{self, BufReader, BufWriter, Read};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of stderr kept for crash reports.
const STDERR_TAIL: usize = 16 * 1024;

/// Variables passed through from our environment; everything else is cleared.
#[cfg(unix)]
const KEPT_ENV: &[&str] = &["PATH", "HOME", "TMPDIR"];
#[cfg(windows)]
const KEPT_ENV: &[&str] = &["PATH", "SYSTEMROOT", "WINDIR", "TEMP", "TMP", "USERPROFILE"];
#[cfg(not(any(unix, windows)))]
const KEPT_ENV: &[&str] = &["PATH"];

/// What waiting for a frame gave.
pub enum Recv {
    /// A frame body.
    Frame(Vec<u8>),
    /// Nothing before the deadline.
    Timeout,
    /// The channel closed or broke (the worker died); the reason.
    Closed(String),
}

/// A running worker process.
pub struct WorkerProcess {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    frames: Receiver<Result<Vec<u8>, String>>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    /// Whether the ready frame was read.
    pub ready: bool,
    reaped: bool,
}

impl WorkerProcess {
    /// Start `python -I -u -X utf8 -m ktx_worker` as `cfg` says (does not wait for it).
    pub fn spawn(cfg: &WorkerConfig) -> io::Result<WorkerProcess> {
        let mut cmd = Command::new(&cfg.python);
        cmd.args(["-I", "-u", "-X", "utf8", "-m", "ktx_worker"]);
        cmd.arg("--memory-limit")
            .arg(cfg.memory_limit.unwrap_or(0).to_string());
        cmd.arg("--stdout-limit").arg(cfg.stdout_limit.to_string());
        cmd.env_clear();
        for name in KEPT_ENV {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        for (k, v) in &cfg.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &cfg.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn()?;
        let stdin = BufWriter::new(child.stdin.take().expect("piped stdin"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, frames) = mpsc::channel();
        std::thread::Builder::new()
            .name("ktx-worker-frames".into())
            .spawn(move || {
                let mut r = BufReader::with_capacity(64 * 1024, stdout);
                loop {
                    let item = match frame::read(&mut r) {
                        Ok(Some(body)) => Ok(body),
                        Ok(None) => Err("the worker closed its channel".to_string()),
                        Err(e) => Err(format!("the worker's channel broke: {e}")),
                    };
                    let stop = item.is_err();
                    if tx.send(item).is_err() || stop {
                        return;
                    }
                }
            })?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr);
        std::thread::Builder::new()
            .name("ktx-worker-stderr".into())
            .spawn(move || keep_tail(stderr_pipe, &tail))?;
        Ok(WorkerProcess {
            child,
            stdin,
            frames,
            stderr,
            ready: false,
            reaped: false,
        })
    }

    /// The worker's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Write one request frame.
    pub fn send(&mut self, body: &[u8]) -> io::Result<()> {
        frame::write(&mut self.stdin, body)
    }

    /// The next reply frame, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Recv {
        match self.frames.recv_timeout(timeout) {
            Ok(Ok(body)) => Recv::Frame(body),
            Ok(Err(reason)) => Recv::Closed(reason),
            Err(RecvTimeoutError::Timeout) => Recv::Timeout,
            Err(RecvTimeoutError::Disconnected) => {
                Recv::Closed("the worker's channel closed".into())
            }
        }
    }

    /// The last lines the worker wrote to stderr (a fatal error, a kill notice), trimmed.
    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().map(|t| t.clone()).unwrap_or_default();
        let bytes: Vec<u8> = tail.into_iter().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// Kill the process group now and reap the leader.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.reaped {
            return None;
        }
        kill_tree(&mut self.child);
        self.reaped = true;
        self.child.wait().ok()
    }

    /// After the channel closed: how the worker ended (waiting briefly for it to exit, then
    /// killing it), with its stderr's tail, as one sentence.
    pub fn reap_description(&mut self) -> String {
        let limit = Instant::now() + Duration::from_secs(1);
        let mut status = None;
        while Instant::now() < limit {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => break,
            }
        }
        // Also kills what is left of the group (a subprocess the script started).
        kill_tree(&mut self.child);
        if status.is_none() {
            status = self.child.wait().ok();
        } else {
            let _ = self.child.wait();
        }
        self.reaped = true;
        // The stderr thread may still be draining the last bytes.
        std::thread::sleep(Duration::from_millis(5));
        let mut text = match status {
            Some(s) => describe_status(s),
            None => "the worker ended".to_string(),
        };
        let tail = self.stderr_tail();
        if !tail.is_empty() {
            let last: Vec<&str> = tail.lines().rev().take(5).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            text.push_str(&format!("; its stderr ended with: {}", last.join(" | ")));
        }
        text
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// "the worker exited with code 3" / "the worker was killed by signal 9".
fn describe_status(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let hint = if sig == libc::SIGKILL {
                " (SIGKILL: out of memory, or killed from outside)"
            } else {
                ""
            };
            return format!("the worker was killed by signal {sig}{hint}");
        }
    }
    match status.code() {
        Some(code) => format!("the worker exited with code {code}"),
        None => format!("the worker ended ({status})"),
    }
}

fn keep_tail(mut pipe: impl Read, tail: &Mutex<VecDeque<u8>>) {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Ok(mut t) = tail.lock() {
                    t.extend(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn kill_tree(child: &mut Child) {
    #[cfg(unix)]
    {
        // SAFETY: plain syscall on the group our unreaped child leads; failure is harmless.
        unsafe {
            libc::killpg(child.id() as libc::pid_t, libc::SIGKILL);
        }
    }
    #[cfg(windows)]
    {
        let _ = Command::new("taskkill")
            .args(["/PID", &child.id().to_string(), "/T", "/F"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
}
