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
pub const SUPPORTED: bool = cfg!(any(unix, windows));

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
    /// Opaque start-time token (compare for equality only); empty when the process exists
    /// but its start time cannot be read (Windows: access denied), so it matches nothing.
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
    proc_info(pid)
        .is_some_and(|p| !p.zombie && !p.start_time.is_empty() && p.start_time == start_time)
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

/// macOS: `proc_pidinfo(PROC_PIDTBSDINFO)` for the start time (seconds and microseconds) and
/// state, `sysctl(KERN_PROCARGS2)` for the arguments. No pidfds, so the signal goes by pid right
/// after the start-time check (the window is two syscalls wide).
#[cfg(target_os = "macos")]
mod sys {
    use super::ProcInfo;

    pub(super) fn proc_info(pid: u32) -> Option<ProcInfo> {
        // SAFETY: proc_bsdinfo is plain old data; proc_pidinfo writes at most `size` bytes.
        let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        let n = unsafe {
            libc::proc_pidinfo(
                pid as libc::c_int,
                libc::PROC_PIDTBSDINFO,
                0,
                (&mut info as *mut libc::proc_bsdinfo).cast(),
                size,
            )
        };
        if n != size {
            return None;
        }
        Some(ProcInfo {
            start_time: format!("{}.{:06}", info.pbi_start_tvsec, info.pbi_start_tvusec),
            zombie: info.pbi_status == libc::SZOMB,
        })
    }

    pub(super) fn command_line(pid: u32) -> Option<Vec<u8>> {
        let mut argmax: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>();
        let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
        // SAFETY: sysctl writes one c_int into `argmax`.
        let rc = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                2,
                (&mut argmax as *mut libc::c_int).cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 || argmax <= 0 {
            return None;
        }
        let mut buf = vec![0u8; argmax as usize];
        let mut len = buf.len();
        let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid as libc::c_int];
        // SAFETY: sysctl writes at most `len` bytes into `buf` and updates `len`.
        let rc = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                3,
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return None;
        }
        buf.truncate(len);
        parse_procargs2(&buf)
    }

    pub(super) use super::unix::signal_by_pid_if_same as signal_if_same;

    /// The arguments in a `KERN_PROCARGS2` buffer, NUL-separated: `argc` (a native-endian
    /// `c_int`), the executable path, NUL padding, then `argc` NUL-terminated arguments (the
    /// environment follows and is left out).
    pub(super) fn parse_procargs2(buf: &[u8]) -> Option<Vec<u8>> {
        let argc = i32::from_ne_bytes(buf.get(..4)?.try_into().ok()?);
        let rest = &buf[4..];
        let exe_end = rest.iter().position(|b| *b == 0)?;
        let mut at = exe_end;
        while rest.get(at) == Some(&0) {
            at += 1;
        }
        let mut out = Vec::new();
        for _ in 0..argc.max(0) {
            let arg = rest.get(at..)?;
            let end = arg.iter().position(|b| *b == 0)?;
            out.extend_from_slice(&arg[..end]);
            out.push(0);
            at += end + 1;
        }
        Some(out)
    }
}

/// Other Unix (the BSDs): `ps` for start time and command line; no pidfds, so the signal goes
/// by pid right after the start-time check.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
mod sys {
    use super::ProcInfo;
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

    pub(super) use super::unix::signal_by_pid_if_same as signal_if_same;
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

    /// Without pidfds (macOS, the BSDs): the signal goes by pid right after the start-time
    /// check, to the group first if `pid` leads one.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn signal_by_pid_if_same(pid: i32, start_time: &str, sig: Signal) -> bool {
        if !super::is_same_process(pid as u32, start_time) {
            return false;
        }
        let signo = signo(sig);
        signal_group(pid, signo);
        kill(pid, signo)
    }
}

/// Windows: a process handle (`OpenProcess`) gives the creation time (`GetProcessTimes`, in
/// 100 ns ticks since 1601, written as a decimal number) and, through
/// `NtQueryInformationProcess(ProcessCommandLineInformation)`, the command line (UTF-16, turned
/// into UTF-8; Wine and Windows before 8.1 lack that class: then it is read out of the PEB);
/// where both are refused, the image path (`QueryFullProcessImageNameW`) stands in.
/// A handle keeps its process object alive, so [`signal_if_same`] opens one handle, verifies
/// the creation time *on that handle* and terminates through it: a recycled pid cannot be hit.
/// Windows has no SIGTERM for a console-less process: both signals are `TerminateProcess`
/// (the graceful stop is the daemon's HTTP `/v1/shutdown`, tried first by its callers).
#[cfg(windows)]
mod sys {
    use super::{ProcInfo, Signal};
    use windows_sys::Win32::Foundation::{CloseHandle, FILETIME, HANDLE, WAIT_OBJECT_0};
    use windows_sys::Win32::System::Threading::{
        GetProcessTimes, OpenProcess, QueryFullProcessImageNameW, TerminateProcess,
        WaitForSingleObject, PROCESS_ACCESS_RIGHTS, PROCESS_NAME_WIN32, PROCESS_QUERY_INFORMATION,
        PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE, PROCESS_VM_READ,
    };

    /// An open process handle, closed on drop.
    struct Handle(HANDLE);

    impl Handle {
        fn open(pid: u32, access: PROCESS_ACCESS_RIGHTS) -> Option<Handle> {
            // SAFETY: OpenProcess returns a new handle we own, or null.
            let h = unsafe { OpenProcess(access, 0, pid) };
            (!h.is_null()).then_some(Handle(h))
        }

        /// The creation time, as the start-time token.
        fn start_time(&self) -> Option<String> {
            let zero = FILETIME {
                dwLowDateTime: 0,
                dwHighDateTime: 0,
            };
            let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
            // SAFETY: a valid handle and four FILETIMEs to write.
            let ok = unsafe {
                GetProcessTimes(self.0, &mut created, &mut exited, &mut kernel, &mut user)
            };
            if ok == 0 {
                return None;
            }
            let ticks =
                (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime);
            Some(ticks.to_string())
        }

        /// The process has exited (its object lives on while handles to it are open).
        fn exited(&self) -> bool {
            // SAFETY: a valid handle opened with SYNCHRONIZE; a zero timeout only polls.
            unsafe { WaitForSingleObject(self.0, 0) == WAIT_OBJECT_0 }
        }

        fn command_line(&self) -> Option<Vec<u8>> {
            use windows_sys::Wdk::System::Threading::{
                NtQueryInformationProcess, ProcessCommandLineInformation,
            };
            use windows_sys::Win32::Foundation::UNICODE_STRING;
            // The answer is a UNICODE_STRING followed by the text it points to.
            let mut buf = vec![0u64; 4096];
            let mut len = 0u32;
            // SAFETY: `buf` is writable for its byte length and 8-byte aligned.
            let status = unsafe {
                NtQueryInformationProcess(
                    self.0,
                    ProcessCommandLineInformation,
                    buf.as_mut_ptr().cast(),
                    (buf.len() * 8) as u32,
                    &mut len,
                )
            };
            if status < 0 {
                return None;
            }
            // SAFETY: on success the buffer starts with a UNICODE_STRING whose Buffer points
            // into `buf`, `Length` bytes long.
            let text = unsafe {
                let us = &*(buf.as_ptr() as *const UNICODE_STRING);
                if us.Buffer.is_null() {
                    return None;
                }
                std::slice::from_raw_parts(us.Buffer, usize::from(us.Length) / 2)
            };
            Some(String::from_utf16_lossy(text).into_bytes())
        }

        /// The command line read out of the process's PEB (`ReadProcessMemory`): what
        /// Windows before 8.1 and Wine (which lacks `ProcessCommandLineInformation`) allow.
        /// The handle needs `PROCESS_QUERY_INFORMATION | PROCESS_VM_READ`.
        fn command_line_from_peb(&self) -> Option<Vec<u8>> {
            use windows_sys::Wdk::System::Threading::{
                NtQueryInformationProcess, ProcessBasicInformation,
            };
            use windows_sys::Win32::System::Threading::{
                PEB, PROCESS_BASIC_INFORMATION, RTL_USER_PROCESS_PARAMETERS,
            };
            // SAFETY: plain-old-data structs, filled by the calls below.
            let mut basic: PROCESS_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
            let mut len = 0u32;
            // SAFETY: `basic` is writable for its size.
            let status = unsafe {
                NtQueryInformationProcess(
                    self.0,
                    ProcessBasicInformation,
                    (&mut basic as *mut PROCESS_BASIC_INFORMATION).cast(),
                    std::mem::size_of::<PROCESS_BASIC_INFORMATION>() as u32,
                    &mut len,
                )
            };
            if status < 0 || basic.PebBaseAddress.is_null() {
                return None;
            }
            let peb: PEB = self.read(basic.PebBaseAddress as usize)?;
            let params: RTL_USER_PROCESS_PARAMETERS = self.read(peb.ProcessParameters as usize)?;
            let cmd = params.CommandLine;
            let mut text = vec![0u16; usize::from(cmd.Length) / 2];
            self.read_into(
                cmd.Buffer as usize,
                text.as_mut_ptr().cast(),
                text.len() * 2,
            )?;
            Some(String::from_utf16_lossy(&text).into_bytes())
        }

        /// A `T` copied out of the process's memory at `addr`.
        fn read<T>(&self, addr: usize) -> Option<T> {
            let mut value = std::mem::MaybeUninit::<T>::uninit();
            self.read_into(addr, value.as_mut_ptr().cast(), std::mem::size_of::<T>())?;
            // SAFETY: all `size_of::<T>()` bytes were written, and T is plain old data here.
            Some(unsafe { value.assume_init() })
        }

        fn read_into(&self, addr: usize, dest: *mut u8, len: usize) -> Option<()> {
            use windows_sys::Win32::System::Diagnostics::Debug::ReadProcessMemory;
            if addr == 0 {
                return None;
            }
            let mut read = 0usize;
            // SAFETY: `dest` is writable for `len` bytes; the call reads the other process.
            let ok =
                unsafe { ReadProcessMemory(self.0, addr as *const _, dest.cast(), len, &mut read) };
            (ok != 0 && read == len).then_some(())
        }

        fn image_path(&self) -> Option<Vec<u8>> {
            let mut buf = vec![0u16; 32 * 1024];
            let mut len = buf.len() as u32;
            // SAFETY: `buf` holds `len` UTF-16 units; the call writes at most that many.
            let ok = unsafe {
                QueryFullProcessImageNameW(self.0, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len)
            };
            if ok == 0 {
                return None;
            }
            Some(String::from_utf16_lossy(&buf[..len as usize]).into_bytes())
        }
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: we own the handle and close it once.
            unsafe { CloseHandle(self.0) };
        }
    }

    const QUERY: PROCESS_ACCESS_RIGHTS = PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE;

    pub(super) fn proc_info(pid: u32) -> Option<ProcInfo> {
        use windows_sys::Win32::Foundation::{GetLastError, ERROR_ACCESS_DENIED};
        let Some(h) = Handle::open(pid, QUERY) else {
            // SAFETY: reads this thread's last-error value, set by the failed OpenProcess.
            // Access denied (a protected or another user's elevated process): it exists, but
            // its start time cannot be read, so it runs and is never "the same process".
            return (unsafe { GetLastError() } == ERROR_ACCESS_DENIED).then(|| ProcInfo {
                start_time: String::new(),
                zombie: false,
            });
        };
        Some(ProcInfo {
            start_time: h.start_time()?,
            zombie: h.exited(),
        })
    }

    pub(super) fn command_line(pid: u32) -> Option<Vec<u8>> {
        let h = Handle::open(pid, QUERY)?;
        h.command_line()
            .or_else(|| {
                Handle::open(pid, QUERY | PROCESS_QUERY_INFORMATION | PROCESS_VM_READ)?
                    .command_line_from_peb()
            })
            .or_else(|| h.image_path())
    }

    pub(super) fn signal_if_same(pid: i32, start_time: &str, _sig: Signal) -> bool {
        let Some(h) = Handle::open(pid as u32, QUERY | PROCESS_TERMINATE) else {
            return false;
        };
        if h.exited() || h.start_time().as_deref() != Some(start_time) {
            return false;
        }
        // Exit code 1, as for a killed process; the handle is the verified process.
        // SAFETY: a valid handle opened with PROCESS_TERMINATE.
        unsafe { TerminateProcess(h.0, 1) != 0 }
    }
}

/// No implementation on this platform (see [`SUPPORTED`]): no process is found, none is
/// signalled.
#[cfg(not(any(unix, windows)))]
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

    #[test]
    fn sees_itself_and_not_a_bogus_pid() {
        let me = proc_info(std::process::id()).unwrap();
        assert!(!me.zombie);
        assert!(is_same_process(std::process::id(), &me.start_time));
        assert!(!is_same_process(std::process::id(), "1"));
        assert!(proc_info(0).is_none());
        assert!(proc_info(u32::MAX).is_none());
        let cmdline = command_line(std::process::id()).unwrap();
        // The test binary's own name is in its command line on every platform.
        assert!(
            String::from_utf8_lossy(&cmdline).contains("ktx_base"),
            "{cmdline:?}"
        );
    }

    /// A child that sleeps for 30 s: this very test binary running [`sleeper`] (the same
    /// program on every platform, `sleep` included nowhere).
    fn spawn_sleeper() -> std::process::Child {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "process::tests::sleeper", "--quiet"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Not a test: the body of [`spawn_sleeper`]'s child.
    #[test]
    #[ignore = "helper process for a_different_start_time_is_another_process"]
    fn sleeper() {
        std::thread::sleep(std::time::Duration::from_secs(30));
    }

    /// The PID-reuse guard: a live pid with another start time is not the recorded process,
    /// and is never signalled.
    #[test]
    fn a_different_start_time_is_another_process() {
        let mut child = spawn_sleeper();
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

    /// A live child's command line holds its arguments (macOS: `KERN_PROCARGS2`; Windows:
    /// the PEB's command line).
    #[test]
    fn reads_a_childs_command_line() {
        let mut child = spawn_sleeper();
        // `spawn` returns once the child's exec has begun; the new argument block may appear
        // a moment later (Linux shows an empty command line in between).
        let began = std::time::Instant::now();
        let text = loop {
            let text = command_line(child.id())
                .map(|c| String::from_utf8_lossy(&c).into_owned())
                .unwrap_or_default();
            if text.contains("sleeper") || began.elapsed().as_secs() >= 10 {
                break text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(text.contains("process::tests::sleeper"), "{text:?}");
    }

    #[cfg(target_os = "macos")]
    #[test]
    fn parses_procargs2() {
        let mut buf = 3i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/usr/bin/python3\0\0\0\0python3\0-m\0ktx_daemon\0HOME=/x\0");
        assert_eq!(
            sys::parse_procargs2(&buf).unwrap(),
            b"python3\0-m\0ktx_daemon\0".to_vec()
        );
        assert!(sys::parse_procargs2(&buf[..20]).is_none());
    }
}
