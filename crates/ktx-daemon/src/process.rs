//! Process identity: is a pid alive, when did it start, and signals that never hit a stranger.
//!
//! A pid alone is not an identity: after the daemon dies the kernel can give its pid to any
//! other process. We therefore record the process start time next to the pid (Linux: field 22
//! of `/proc/<pid>/stat`, in clock ticks since boot; elsewhere: `ps -o lstart=`) and only treat
//! a pid as ours, or signal it, when the start time still matches.

/// What we know about a live process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcInfo {
    /// Opaque start-time token (compare for equality only).
    pub start_time: String,
    /// The process has exited but was not reaped yet.
    pub zombie: bool,
}

/// Parse the content of `/proc/<pid>/stat`: (state char, start time field 22).
pub(crate) fn parse_stat(stat: &str) -> Option<(char, String)> {
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

/// Look a pid up; `None` when no such process exists (or the pid is not a valid pid).
#[cfg(target_os = "linux")]
pub(crate) fn proc_info(pid: u32) -> Option<ProcInfo> {
    if pid == 0 || i32::try_from(pid).is_err() {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (state, start_time) = parse_stat(&stat)?;
    Some(ProcInfo {
        start_time,
        zombie: matches!(state, 'Z' | 'X' | 'x'),
    })
}

/// Look a pid up; `None` when no such process exists (or the pid is not a valid pid).
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn proc_info(pid: u32) -> Option<ProcInfo> {
    use std::process::{Command, Stdio};
    if pid == 0 || i32::try_from(pid).is_err() {
        return None;
    }
    let out = Command::new("ps")
        .args(["-o", "stat=,lstart=", "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    let (stat, start) = line.split_once(char::is_whitespace)?;
    Some(ProcInfo {
        start_time: start.trim().to_string(),
        zombie: stat.starts_with('Z'),
    })
}

/// Look a pid up; always `None` where we cannot inspect processes.
#[cfg(not(unix))]
pub(crate) fn proc_info(_pid: u32) -> Option<ProcInfo> {
    None
}

/// The pid exists and has not exited.
pub(crate) fn is_running(pid: u32) -> bool {
    proc_info(pid).is_some_and(|p| !p.zombie)
}

/// The pid is running and its start time is `start_time`: the very process we recorded.
pub(crate) fn is_same_process(pid: u32, start_time: &str) -> bool {
    proc_info(pid).is_some_and(|p| !p.zombie && p.start_time == start_time)
}

/// The pid runs `python ... -m ktx_daemon serve` (its command line names the module).
///
/// A second, independent check next to the start time before a process is treated as our
/// daemon and signalled: an owner record copied from elsewhere, or a start time that happens to
/// match after a reboot, must never get a stranger killed.
#[cfg(target_os = "linux")]
pub(crate) fn is_daemon_process(pid: u32) -> bool {
    if pid == 0 || i32::try_from(pid).is_err() {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| cmdline_is_daemon(&cmdline))
        .unwrap_or(false)
}

/// The pid runs `python ... -m ktx_daemon serve` (its command line names the module).
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn is_daemon_process(pid: u32) -> bool {
    use std::process::{Command, Stdio};
    if pid == 0 || i32::try_from(pid).is_err() {
        return false;
    }
    Command::new("ps")
        .args(["-o", "command=", "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| cmdline_is_daemon(&out.stdout))
        .unwrap_or(false)
}

/// Never true where processes cannot be inspected.
#[cfg(not(unix))]
pub(crate) fn is_daemon_process(_pid: u32) -> bool {
    false
}

/// `cmdline` (NUL- or space-separated) has the arguments `ktx_daemon` then `serve`.
pub(crate) fn cmdline_is_daemon(cmdline: &[u8]) -> bool {
    let text = String::from_utf8_lossy(cmdline);
    let mut words = text.split(['\0', ' ']).filter(|w| !w.is_empty());
    words.any(|w| w == "ktx_daemon") && words.any(|w| w == "serve")
}

/// Signals we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Term,
    Kill,
}

/// Send `sig` to the process group led by `pid` (the daemon is a session leader, so its group
/// holds it and any helper it forked), but only if `pid` still has `start_time`. Returns false
/// when the process is gone or is not the recorded one (nothing was signalled).
#[cfg(unix)]
pub(crate) fn signal_if_same(pid: u32, start_time: &str, sig: Signal) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 1 || pid == std::process::id() {
        return false;
    }
    // Linux: take a pidfd *before* checking the start time, then signal through it: the
    // signal reaches exactly the process we checked, even if the pid is recycled meanwhile.
    let pidfd = pidfd_open(raw);
    if !is_same_process(pid, start_time) {
        return false;
    }
    let signo = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        // The group too (the daemon called setsid, so its pgid is its pid): helpers it forked.
        if libc::getpgid(raw) == raw {
            libc::kill(-raw, signo);
        }
        match pidfd {
            Some(fd) => pidfd_send_signal(&fd, signo),
            None => libc::kill(raw, signo) == 0,
        }
    }
}

#[cfg(target_os = "linux")]
fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) returns a new fd we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: fd is a freshly opened descriptor nobody else owns.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[cfg(target_os = "linux")]
fn pidfd_send_signal(fd: &std::os::fd::OwnedFd, signo: i32) -> bool {
    use std::os::fd::AsRawFd;
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

/// No pidfds here: signal by pid (after the start-time check).
#[cfg(all(unix, not(target_os = "linux")))]
fn pidfd_open(_pid: i32) -> Option<std::convert::Infallible> {
    None
}

#[cfg(all(unix, not(target_os = "linux")))]
fn pidfd_send_signal(fd: &std::convert::Infallible, _signo: i32) -> bool {
    match *fd {}
}

/// Signalling is not available on this platform.
#[cfg(not(unix))]
pub(crate) fn signal_if_same(_pid: u32, _start_time: &str, _sig: Signal) -> bool {
    false
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
    fn recognises_the_daemon_command_line() {
        assert!(cmdline_is_daemon(
            b"/v/bin/python\0-I\0-u\0-m\0ktx_daemon\0serve\0--state-file\0/x\0"
        ));
        assert!(cmdline_is_daemon(
            b"python -m ktx_daemon serve --features core"
        ));
        assert!(!cmdline_is_daemon(b"sleep\0\x360\0"));
        assert!(!cmdline_is_daemon(b"python\0-m\0ktx_daemon\0call\0"));
        assert!(!cmdline_is_daemon(b"serve\0ktx_daemon\0"));
        assert!(!cmdline_is_daemon(b"/tmp/ktx_daemon_serve\0"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sleep_is_not_a_daemon() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!is_daemon_process(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_daemon_process(0));
        assert!(!is_daemon_process(std::process::id()));
    }

    #[test]
    fn rejects_truncated_stat() {
        assert!(parse_stat("12 (x) S 1 2").is_none());
        assert!(parse_stat("garbage").is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sees_itself_and_not_a_bogus_pid() {
        let me = proc_info(std::process::id()).unwrap();
        assert!(!me.zombie);
        assert!(is_same_process(std::process::id(), &me.start_time));
        assert!(!is_same_process(std::process::id(), "1"));
        assert!(proc_info(0).is_none());
        assert!(proc_info(u32::MAX).is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn signals_only_the_recorded_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = proc_info(pid).unwrap().start_time;
        assert!(!signal_if_same(pid, "1", Signal::Kill));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            child.try_wait().unwrap().is_none(),
            "signalled despite another start time"
        );
        assert!(signal_if_same(pid, &start, Signal::Term));
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(
            !signal_if_same(pid, &start, Signal::Kill),
            "a reaped pid is not signalled"
        );
        assert!(!signal_if_same(std::process::id(), "x", Signal::Kill));
    }
}
