//! Bounded child processes: stdin null (or a given body), captured and size-limited output, a
//! deadline after which the child's whole process group is killed, and a registry so an
//! interrupt (Ctrl-C) handler can kill the children still running.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Limits applied to one child.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock limit; the child's process group is killed when it passes.
    pub timeout: Duration,
    /// Bytes kept per stream (head and tail halves; the middle is dropped and marked).
    pub max_output: usize,
}

impl Limits {
    /// `timeout` with the default output cap (8 MiB per stream).
    pub fn new(timeout: Duration) -> Self {
        Limits {
            timeout,
            max_output: 8 << 20,
        }
    }
}

/// What a bounded child did.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Terminating signal (Unix), when it was killed by one.
    pub signal: Option<i32>,
    /// Captured stdout (bounded).
    pub stdout: Vec<u8>,
    /// Captured stderr (bounded).
    pub stderr: Vec<u8>,
    /// Whether any output was dropped because of the cap.
    pub truncated: bool,
    /// Whether the deadline passed and the child was killed.
    pub timed_out: bool,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Captured {
    /// Exit code 0 and no timeout.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// "exit code 1", "killed by signal 9", "timed out after 30s".
    pub fn describe_exit(&self) -> String {
        if self.timed_out {
            return format!("timed out after {:.0?} and was killed", self.elapsed);
        }
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown exit status".to_string(),
        }
    }

    /// stdout as (lossy) UTF-8.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as (lossy) UTF-8.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The last `n` non-empty lines of stderr (or stdout when stderr is empty), for messages.
    pub fn tail(&self, n: usize) -> String {
        let text = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            self.stderr_text()
        } else {
            self.stdout_text()
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Process ids (= process group ids on Unix) of children currently running under [`run_bounded`].
static ACTIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every child (and its process group) still running under [`run_bounded`]. Meant for an
/// interrupt handler: after it, the process can exit without leaving installers behind.
pub fn kill_active_children() {
    let pids = ACTIVE.lock().map(|v| v.clone()).unwrap_or_default();
    for pid in pids {
        kill_tree(pid);
    }
}

fn kill_tree(pid: u32) {
    #[cfg(unix)]
    {
        // SAFETY: plain syscalls on a pid/pgid we spawned; failure (already gone) is harmless.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    #[cfg(windows)]
    {
        let _ = Command::new("taskkill")
            .args(["/PID", &pid.to_string(), "/T", "/F"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

struct Bounded {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
    half: usize,
}

impl Bounded {
    fn new(max: usize) -> Self {
        Bounded {
            head: Vec::new(),
            tail: Default::default(),
            dropped: 0,
            half: (max / 2).max(1),
        }
    }
    fn push(&mut self, mut data: &[u8]) {
        if self.head.len() < self.half {
            let n = (self.half - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        self.tail.extend(data);
        if self.tail.len() > self.half {
            let excess = self.tail.len() - self.half;
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
    }
    fn finish(self) -> (Vec<u8>, bool) {
        let mut out = self.head;
        if self.dropped > 0 {
            out.extend_from_slice(
                format!("\n[... {} bytes omitted ...]\n", self.dropped).as_bytes(),
            );
        }
        out.extend(self.tail);
        (out, self.dropped > 0)
    }
}

fn reader<R: Read + Send + 'static>(mut r: R, max: usize) -> thread::JoinHandle<(Vec<u8>, bool)> {
    thread::spawn(move || {
        let mut buf = Bounded::new(max);
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.push(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        buf.finish()
    })
}

/// Runs `cmd` to completion under `limits`: stdin is null (or `stdin` is written then closed),
/// stdout and stderr are captured (bounded), the child runs in its own process group (Unix),
/// and on timeout the whole group is killed. Errors only when the child cannot be spawned.
pub fn run_bounded(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    limits: &Limits,
) -> std::io::Result<Captured> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let start = Instant::now();
    let mut child: Child = cmd.spawn()?;
    let pid = child.id();
    if let Ok(mut active) = ACTIVE.lock() {
        active.push(pid);
    }
    let out = child.stdout.take().map(|s| reader(s, limits.max_output));
    let err = child.stderr.take().map(|s| reader(s, limits.max_output));
    let writer = match (stdin, child.stdin.take()) {
        (Some(body), Some(mut pipe)) => {
            let body = body.to_vec();
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&body);
                // dropping `pipe` closes the child's stdin
            }))
        }
        _ => None,
    };
    let deadline = start + limits.timeout;
    let mut timed_out = false;
    let mut sleep = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            kill_tree(pid);
            break child.wait().ok();
        }
        thread::sleep(sleep.min(deadline - now));
        sleep = (sleep * 2).min(Duration::from_millis(25));
    };
    let elapsed = start.elapsed();
    // A grandchild may keep the pipes open: give the readers a bounded time, then kill the group.
    let join = |h: Option<thread::JoinHandle<(Vec<u8>, bool)>>| -> (Vec<u8>, bool) {
        let Some(h) = h else {
            return (Vec::new(), false);
        };
        let grace = Instant::now() + Duration::from_secs(5);
        while !h.is_finished() && Instant::now() < grace {
            thread::sleep(Duration::from_millis(5));
        }
        if !h.is_finished() {
            kill_tree(pid);
            let until = Instant::now() + Duration::from_secs(2);
            while !h.is_finished() && Instant::now() < until {
                thread::sleep(Duration::from_millis(5));
            }
            if !h.is_finished() {
                return (
                    b"[output abandoned: a descendant kept the pipe open]".to_vec(),
                    true,
                );
            }
        }
        h.join().unwrap_or_default()
    };
    let (stdout, t1) = join(out);
    let (stderr, t2) = join(err);
    if let Some(w) = writer {
        let _ = w.join();
    }
    if let Ok(mut active) = ACTIVE.lock() {
        active.retain(|p| *p != pid);
    }
    let (code, signal) = match status {
        Some(s) => (s.code(), exit_signal(&s)),
        None => (None, None),
    };
    Ok(Captured {
        code,
        signal,
        stdout,
        stderr,
        truncated: t1 || t2,
        timed_out,
        elapsed,
    })
}

#[cfg(unix)]
fn exit_signal(s: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

#[cfg(not(unix))]
fn exit_signal(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

/// Variables removed from every installer child: they would redirect the install into another
/// environment or interpreter, or make the install fail (hash or virtualenv requirements).
pub const REMOVED_ENV: &[&str] = &[
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "UV_PYTHON",
    "UV_SYSTEM_PYTHON",
    "UV_PROJECT_ENVIRONMENT",
    "UV_PYTHON_PREFERENCE",
    "UV_REQUIRE_HASHES",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
    "UV_BREAK_SYSTEM_PACKAGES",
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONNOUSERSITE",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONEXECUTABLE",
    "__PYVENV_LAUNCHER__",
    "PIP_REQUIRE_VIRTUALENV",
    "PIP_REQUIRE_HASHES",
    "PIP_USER",
    "PIP_TARGET",
    "PIP_PREFIX",
    "PIP_CONSTRAINT",
    "FORCE_COLOR",
    "CLICOLOR_FORCE",
];

/// Applies the installer environment to `cmd` and returns a description of the changes (for
/// the log). Proxies, certificates (`SSL_CERT_FILE`, `UV_SYSTEM_CERTS`...) and index /
/// find-links settings pass through untouched. `UV_LINK_MODE` is dropped only when it is
/// `symlink` (a later `uv cache clean` would break the venv). Output is captured, so progress
/// bars and colour are turned off; `UV_PYTHON_DOWNLOADS=never` unless `allow_python_downloads`.
pub fn installer_env(cmd: &mut Command, allow_python_downloads: bool) -> Vec<String> {
    let mut changes = Vec::new();
    for name in REMOVED_ENV {
        if std::env::var_os(name).is_some() {
            changes.push(format!("unset {name}"));
        }
        cmd.env_remove(name);
    }
    if std::env::var("UV_LINK_MODE")
        .map(|v| v.eq_ignore_ascii_case("symlink"))
        .unwrap_or(false)
    {
        cmd.env_remove("UV_LINK_MODE");
        changes.push("unset UV_LINK_MODE (was symlink)".into());
    }
    let set: [(&str, &str); 6] = [
        ("UV_NO_PROGRESS", "1"),
        ("NO_COLOR", "1"),
        ("PIP_NO_INPUT", "1"),
        ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        ("PIP_PROGRESS_BAR", "off"),
        (
            "UV_PYTHON_DOWNLOADS",
            if allow_python_downloads {
                "automatic"
            } else {
                "never"
            },
        ),
    ];
    for (k, v) in set {
        cmd.env(k, v);
        changes.push(format!("{k}={v}"));
    }
    changes
}

/// A shell-like rendering of a command line for logs and messages.
pub fn display_command(cmd: &Command) -> String {
    let mut parts: Vec<OsString> = vec![cmd.get_program().to_os_string()];
    parts.extend(cmd.get_args().map(|a| a.to_os_string()));
    parts
        .iter()
        .map(|p| {
            let s = p.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn captures_and_bounds_output() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "head -c 100000 /dev/zero | tr '\\0' x; echo err >&2; exit 3",
        ]);
        let r = run_bounded(
            &mut c,
            None,
            &Limits {
                timeout: Duration::from_secs(20),
                max_output: 1000,
            },
        )
        .unwrap();
        assert_eq!(r.code, Some(3));
        assert!(r.truncated);
        assert!(r.stdout.len() < 1100);
        assert_eq!(r.stderr_text().trim(), "err");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-survived");
        let mut c = Command::new("sh");
        // The grandchild would write the marker after 2 s if it survived the group kill.
        c.arg("-c").arg(format!(
            "(sleep 2; touch '{}') & sleep 30",
            marker.display()
        ));
        let r = run_bounded(&mut c, None, &Limits::new(Duration::from_millis(300))).unwrap();
        assert!(r.timed_out);
        assert!(r.elapsed < Duration::from_secs(10));
        thread::sleep(Duration::from_millis(2500));
        assert!(
            !marker.exists(),
            "grandchild survived the process-group kill"
        );
    }

    #[test]
    fn stdin_body_is_delivered() {
        let mut c = Command::new("cat");
        let r = run_bounded(
            &mut c,
            Some(b"hello"),
            &Limits::new(Duration::from_secs(10)),
        )
        .unwrap();
        assert!(r.success());
        assert_eq!(r.stdout, b"hello");
    }
}
