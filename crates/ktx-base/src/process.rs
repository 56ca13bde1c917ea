//! Process identity: is a pid alive, when did it start, and signals that never hit a stranger.
//!
//! A pid alone is not an identity: after a process dies the kernel can give its pid to any
//! other process. A process is therefore identified by its pid **and** its start time (Linux:
//! field 22 of `/proc/<pid>/stat`, in clock ticks since boot; other Unix: `ps -o lstart=`).
//! [`is_same_process`] is the only place that decides "is this still the same process"; every
//! signal ktx sends goes through [`signal_if_same`].
//!
//! The platform code is in one place, `sys` below: one implementation per platform behind the
//! same functions. Where none exists yet ([`SUPPORTED`] is false: Windows for now), no process
//! can be inspected: [`proc_info`] says "no such process" and nothing is ever signalled.

/// Whether processes can be inspected and signalled on this platform.
pub const SUPPORTED: bool = cfg!(unix);

/// A process operation this platform has no implementation of yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// What could not be done, e.g. `tracking the daemon process`.
    pub what: &'static str,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not supported on this platform ({}) yet: ktx cannot read a process's start time here",
            self.what,
            std::env::consts::OS
        )
    }
}

impl std::error::Error for Unsupported {}

/// `Ok` where processes can be identified ([`SUPPORTED`]); else the error naming `what`, for
/// callers that cannot work without process identity (rather than mistaking "cannot tell" for
/// "not running").
pub fn require_support(what: &'static str) -> Result<(), Unsupported> {
    if SUPPORTED {
        Ok(())
    } else {
        Err(Unsupported { what })
    }
}

/// What we know about a live process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Opaque start-time token (compare for equality only).
    pub start_time: String,
    /// The process has exited but was not reaped yet.
    pub zombie: bool,
}

/// Look a pid up; `None` when no such process exists (or the pid is not a valid pid, or
/// processes cannot be inspected here).
pub fn proc_info(pid: u32) -> Option<ProcInfo> {
    if pid == 0 || i32::try_from(pid).is_err() {
        return None;
    }
    sys::proc_info(pid)
}

/// The command line of `pid` (NUL- or space-separated words), if it can be read.
pub fn command_line(pid: u32) -> Option<Vec<u8>> {
    if pid == 0 || i32::try_from(pid).is_err() {
        return None;
    }
    sys::command_line(pid)
}

/// The pid exists and has not exited.
pub fn is_running(pid: u32) -> bool {
    proc_info(pid).is_some_and(|p| !p.zombie)
}

/// Whether `pid` may still be running, for deciding whether what it owns may be removed: it
/// runs, or processes cannot be inspected here (then the answer is a conservative yes).
/// Without a recorded start time this cannot tell a recycled pid apart: prefer
/// [`is_same_process`] wherever the start time was recorded.
pub fn may_be_running(pid: u32) -> bool {
    !SUPPORTED || is_running(pid)
}

/// The pid is running and its start time is `start_time`: the very process that was recorded.
pub fn is_same_process(pid: u32, start_time: &str) -> bool {
    proc_info(pid).is_some_and(|p| !p.zombie && p.start_time == start_time)
}

/// Parse the content of `/proc/<pid>/stat`: (state char, start time field 22).
pub fn parse_stat(stat: &str) -> Option<(char, String)> {
    // Field 2 (comm) is in parentheses and may itself contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' come fields 3.. ; field 22 is index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?;
    if start.is_empty() || !start.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((state, (*start).to_string()))
}

/// Signals ktx sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ask to terminate (SIGTERM).
    Term,
    /// Kill (SIGKILL).
    Kill,
}

/// Send `sig` to `pid` and to the process group it leads (a session leader's group holds any
/// helper it forked), but only if `pid` still has `start_time`. Returns false when the process
/// is gone or is not the recorded one (nothing was signalled). Never signals pid 1 or itself.
pub fn signal_if_same(pid: u32, start_time: &str, sig: Signal) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 1 || pid == std::process::id() {
        return false;
    }
    sys::signal_if_same(raw, start_time, sig)
}

#[cfg(target_os = "linux")]
mod sys {
    use super::{is_same_process, parse_stat, ProcInfo, Signal};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    pub(super) fn proc_info(pid: u32) -> Option<ProcInfo> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (state, start_time) = parse_stat(&stat)?;
        Some(ProcInfo {
            start_time,
            zombie: matches!(state, 'Z' | 'X' | 'x'),
        })
    }

    pub(super) fn command_line(pid: u32) -> Option<Vec<u8>> {
        std::fs::read(format!("/proc/{pid}/cmdline")).ok()
    }

    pub(super) fn signal_if_same(pid: i32, start_time: &str, sig: Signal) -> bool {
        // Take a pidfd *before* checking the start time, then signal through it: the signal
        // reaches exactly the process we checked, even if the pid is recycled meanwhile.
        let pidfd = pidfd_open(pid);
        if !is_same_process(pid as u32, start_time) {
            return false;
        }
        let signo = super::unix::signo(sig);
        super::unix::signal_group(pid, signo);
        match pidfd {
            Some(fd) => pidfd_send_signal(&fd, signo),
            None => super::unix::kill(pid, signo),
        }
    }

    fn pidfd_open(pid: i32) -> Option<OwnedFd> {
        // SAFETY: pidfd_open(2) returns a new fd we own, or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
        // SAFETY: fd is a freshly opened descriptor nobody else owns.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn pidfd_send_signal(fd: &OwnedFd, signo: i32) -> bool {
        // SAFETY: pidfd_send_signal(2) on a pidfd we own, no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signo,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            ) == 0
        }
    }
}

/// Other Unix (macOS, the BSDs): `ps` for start time and command line; no pidfds, so the
/// signal goes by pid right after the start-time check.
#[cfg(all(unix, not(target_os = "linux")))]
mod sys {
    use super::{is_same_process, ProcInfo, Signal};
    use std::process::{Command, Stdio};

    fn ps(pid: u32, format: &str) -> Option<Vec<u8>> {
        let out = Command::new("ps")
            .args(["-o", format, "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        Some(out.stdout)
    }

    pub(super) fn proc_info(pid: u32) -> Option<ProcInfo> {
        let out = ps(pid, "stat=,lstart=")?;
        let text = String::from_utf8_lossy(&out);
        let line = text.lines().next()?.trim();
        let (stat, start) = line.split_once(char::is_whitespace)?;
        Some(ProcInfo {
            start_time: start.trim().to_string(),
            zombie: stat.starts_with('Z'),
        })
    }

    pub(super) fn command_line(pid: u32) -> Option<Vec<u8>> {
        ps(pid, "command=")
    }

    pub(super) fn signal_if_same(pid: i32, start_time: &str, sig: Signal) -> bool {
        if !is_same_process(pid as u32, start_time) {
            return false;
        }
        let signo = super::unix::signo(sig);
        super::unix::signal_group(pid, signo);
        super::unix::kill(pid, signo)
    }
}

#[cfg(unix)]
mod unix {
    use super::Signal;

    pub(super) fn signo(sig: Signal) -> i32 {
        match sig {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }

    /// Signal the group `pid` leads, if it leads one (a process that called setsid).
    pub(super) fn signal_group(pid: i32, signo: i32) {
        // SAFETY: plain syscalls with integer arguments.
        unsafe {
            if libc::getpgid(pid) == pid {
                libc::kill(-pid, signo);
            }
        }
    }

    pub(super) fn kill(pid: i32, signo: i32) -> bool {
        // SAFETY: plain syscall with integer arguments.
        unsafe { libc::kill(pid, signo) == 0 }
    }
}

/// Not implemented on this platform yet (see [`SUPPORTED`]): no process is found, none is
/// signalled. The platform work adds an implementation here, behind the same functions.
#[cfg(not(unix))]
mod sys {
    use super::{ProcInfo, Signal};

    pub(super) fn proc_info(_pid: u32) -> Option<ProcInfo> {
        None
    }

    pub(super) fn command_line(_pid: u32) -> Option<Vec<u8>> {
        None
    }

    pub(super) fn signal_if_same(_pid: i32, _start_time: &str, _sig: Signal) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let line = "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 100";
        let (state, start) = parse_stat(line).unwrap();
        assert_eq!(state, 'S');
        assert_eq!(start, "987654");
    }

    #[test]
    fn unsupported_platforms_say_so() {
        let e = Unsupported {
            what: "tracking the daemon process",
        };
        let text = e.to_string();
        assert!(
            text.starts_with("tracking the daemon process is not supported on this platform (")
                && text.contains(std::env::consts::OS),
            "{text}"
        );
        assert_eq!(require_support("x").is_ok(), SUPPORTED);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert!(parse_stat("12 (x) S 1 2").is_none());
        assert!(parse_stat("garbage").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn sees_itself_and_not_a_bogus_pid() {
        let me = proc_info(std::process::id()).unwrap();
        assert!(!me.zombie);
        assert!(is_same_process(std::process::id(), &me.start_time));
        assert!(!is_same_process(std::process::id(), "1"));
        assert!(proc_info(0).is_none());
        assert!(proc_info(u32::MAX).is_none());
        assert!(command_line(std::process::id()).is_some_and(|c| !c.is_empty()));
    }

    /// The PID-reuse guard: a live pid with another start time is not the recorded process,
    /// and is never signalled.
    #[cfg(unix)]
    #[test]
    fn a_different_start_time_is_another_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = proc_info(pid).unwrap().start_time;
        assert!(is_running(pid));
        assert!(is_same_process(pid, &start));
        let other = format!("{start}0");
        assert!(!is_same_process(pid, &other));
        assert!(!signal_if_same(pid, &other, Signal::Kill));
        assert!(!signal_if_same(pid, "1", Signal::Kill));
        // Give a wrongly sent signal time to land before checking that none was.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            child.try_wait().unwrap().is_none(),
            "signalled despite another start time"
        );
        assert!(signal_if_same(pid, &start, Signal::Term));
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(!is_running(pid) || !is_same_process(pid, &start));
        assert!(
            !signal_if_same(pid, &start, Signal::Kill),
            "a reaped pid is not signalled"
        );
        assert!(!signal_if_same(std::process::id(), "x", Signal::Kill));
        assert!(!signal_if_same(1, "x", Signal::Kill));
    }
}
