//! Bounded child processes: stdin null (or a given body), captured and size-limited output, a
//! deadline after which the child's whole process group is killed, and a registry so an
//! interrupt (Ctrl-C) handler can kill the children still running.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
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
    /// Whether a descendant kept stdout or stderr open past the first grace period after the
    /// child exited (its process group was then killed, or its output abandoned).
    pub lingering_pipe: bool,
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

/// Which captured stream a reader thread drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Drains `r` into a bounded buffer on its own thread and sends the result on `tx` at EOF.
fn reader<R: Read + Send + 'static>(
    mut r: R,
    max: usize,
    which: Stream,
    tx: mpsc::Sender<(Stream, (Vec<u8>, bool))>,
) {
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
        let _ = tx.send((which, buf.finish()));
    });
}

/// Blocks until the child `pid` has exited, WITHOUT reaping it (`waitid` with `WNOWAIT`): the
/// pid stays ours (a zombie at worst) until the caller reaps it, so a later kill of the pid or
/// its group can never hit a recycled pid. Returns when the child is gone or cannot be waited
/// for (e.g. already reaped).
#[cfg(unix)]
fn wait_exit_unreaped(pid: u32) {
    loop {
        // SAFETY: `info` is a plain C struct written by the kernel; pid is our own child.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Starts a thread that sends `()` on the returned channel as soon as the child has exited
/// (a blocking wait: no polling, so a fast child is noticed as soon as it exits). The child
/// is not reaped by it (see [`wait_exit_unreaped`]): the caller reaps it with `Child::wait`.
#[cfg(unix)]
fn exit_watcher(child: &mut Child) -> mpsc::Receiver<()> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        wait_exit_unreaped(pid);
        let _ = tx.send(());
    });
    rx
}

/// Non-Unix fallback: no `waitid(WNOWAIT)`, so poll `try_wait` on the caller's thread with a
/// short fixed interval (the Unix path above is the one that matters for speed).
#[cfg(not(unix))]
fn exit_watcher(_child: &mut Child) -> mpsc::Receiver<()> {
    let (_tx, rx) = mpsc::channel();
    rx
}

/// Waits until the child has exited or `deadline` passes. Returns whether the deadline passed.
fn wait_until(child: &mut Child, exited: &mpsc::Receiver<()>, deadline: Instant) -> bool {
    #[cfg(unix)]
    {
        let _ = child;
        let left = deadline.saturating_duration_since(Instant::now());
        match exited.recv_timeout(left) {
            Ok(()) => false,
            // The watcher ended without a word: treat as exited, `wait` below settles it.
            Err(mpsc::RecvTimeoutError::Disconnected) => false,
            Err(mpsc::RecvTimeoutError::Timeout) => true,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = exited;
        loop {
            match child.try_wait() {
                Ok(None) => {}
                _ => return false,
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            thread::sleep((deadline - now).min(Duration::from_millis(2)));
        }
    }
}

/// Runs `cmd` to completion under `limits`: stdin is null (or `stdin` is written then closed),
/// stdout and stderr are captured (bounded), the child runs in its own process group (Unix),
/// and on timeout the whole group is killed. Errors only when the child cannot be spawned.
///
/// Nothing polls: reader threads drain the pipes, a watcher thread blocks in `waitid` until
/// the child exits (without reaping it), and this thread waits on channels with the deadline
/// as timeout. The child is reaped last, after it left the Ctrl-C registry, so neither a
/// timeout kill nor [`kill_active_children`] can ever signal a recycled pid.
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
    let (tx, outputs) = mpsc::channel();
    let mut pending = 0;
    if let Some(s) = child.stdout.take() {
        reader(s, limits.max_output, Stream::Stdout, tx.clone());
        pending += 1;
    }
    if let Some(s) = child.stderr.take() {
        reader(s, limits.max_output, Stream::Stderr, tx.clone());
        pending += 1;
    }
    drop(tx);
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
    let exited = exit_watcher(&mut child);
    let timed_out = wait_until(&mut child, &exited, start + limits.timeout);
    if timed_out {
        kill_tree(pid);
        // Block until the kill took effect (SIGKILL cannot be ignored).
        #[cfg(unix)]
        let _ = exited.recv();
    }
    let elapsed = start.elapsed();
    let ((stdout, t1), (stderr, t2), lingering_pipe) = collect_outputs(&outputs, pending, pid);
    if let Some(w) = writer {
        let _ = w.join();
    }
    if let Ok(mut active) = ACTIVE.lock() {
        active.retain(|p| *p != pid);
    }
    // Reap: the child has exited (or was killed), so this returns at once. No zombie is left.
    let status = child.wait().ok();
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
        lingering_pipe,
        elapsed,
    })
}

/// One stream's capture: the bytes, and whether they were cut (at the cap, or abandoned).
type Capture = (Vec<u8>, bool);

/// Collects what the `pending` reader threads send on `outputs` (stdout, stderr). A grandchild
/// may keep the pipes open: give the readers a bounded time, then kill the group of `pid` (the
/// leader is not reaped yet, so the pid is still ours), then give up on them.
fn collect_outputs(
    outputs: &mpsc::Receiver<(Stream, Capture)>,
    mut pending: usize,
    pid: u32,
) -> (Capture, Capture, bool) {
    let (mut stdout, mut stderr) = (None, None);
    let mut lingered = false;
    for (grace, kill_first) in [
        (Duration::from_secs(5), false),
        (Duration::from_secs(2), true),
    ] {
        if pending == 0 {
            break;
        }
        if kill_first {
            lingered = true;
            kill_tree(pid);
        }
        let until = Instant::now() + grace;
        while pending > 0 {
            let left = until.saturating_duration_since(Instant::now());
            match outputs.recv_timeout(left) {
                Ok((Stream::Stdout, got)) => stdout = Some(got),
                Ok((Stream::Stderr, got)) => stderr = Some(got),
                Err(_) => break,
            }
            pending -= 1;
        }
    }
    let abandoned = pending > 0;
    let take = |got: Option<Capture>| -> Capture {
        match got {
            Some(g) => g,
            None if abandoned => (
                b"[output abandoned: a descendant kept the pipe open]".to_vec(),
                true,
            ),
            None => (Vec::new(), false),
        }
    };
    (take(stdout), take(stderr), lingered)
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

    /// The exit of a fast child is noticed by a blocking `waitid` (nothing here calls
    /// `try_wait` or sleeps), the child stays unreaped until we reap it, and then it is gone.
    #[test]
    fn exit_watcher_blocks_until_exit_without_reaping() {
        let mut c = Command::new("sh");
        c.args(["-c", "exit 7"]);
        let mut child = c.spawn().unwrap();
        let pid = child.id();
        let exited = exit_watcher(&mut child);
        exited
            .recv_timeout(Duration::from_secs(60))
            .expect("the watcher reports the exit");
        #[cfg(target_os = "linux")]
        {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let state = stat.rsplit(')').next().unwrap().split_whitespace().next();
            assert_eq!(state, Some("Z"), "exited but not reaped yet: {stat}");
        }
        // Reaping now returns at once with the real status.
        let status = child.try_wait().unwrap().expect("already exited");
        assert_eq!(status.code(), Some(7));
        assert_no_child(pid);
    }

    /// `run_bounded` leaves neither a zombie nor a Ctrl-C registry entry behind.
    #[test]
    fn fast_child_is_reaped_and_unregistered() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo $$"]);
        let r = run_bounded(&mut c, None, &Limits::new(Duration::from_secs(3600))).unwrap();
        assert!(r.success(), "{r:?}");
        assert!(!r.timed_out);
        let pid: u32 = r.stdout_text().trim().parse().unwrap();
        assert!(!ACTIVE.lock().unwrap().contains(&pid));
        assert_no_child(pid);
    }

    /// A grandchild holding stdout open after the child exited: the output written after the
    /// exit still arrives (the readers are drained before giving up), and the run succeeds.
    #[test]
    fn exit_is_seen_before_a_grandchild_releases_the_pipe() {
        let mut c = Command::new("sh");
        c.args(["-c", "(sleep 1; echo late) & echo early"]);
        let r = run_bounded(&mut c, None, &Limits::new(Duration::from_secs(60))).unwrap();
        assert!(r.success(), "{r:?}");
        assert_eq!(r.stdout_text(), "early\nlate\n");
    }

    fn assert_no_child(pid: u32) {
        // SAFETY: a plain non-blocking waitpid on a pid we spawned.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(rc, -1, "pid {pid} is still a child of ours (a zombie)");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ECHILD)
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
