//! Which process is our daemon. Process identity itself (pid + start time, signals that never
//! reach a recycled pid) is [`ktx_base::process`]; this module adds the daemon's command line.

pub(crate) use ktx_base::process::{
    is_running, is_same_process, may_be_running, proc_info, signal_if_same, Signal,
};

/// The pid runs `python ... -m ktx_daemon serve` (its command line names the module).
///
/// A second, independent check next to the start time before a process is treated as our
/// daemon and signalled: an owner record copied from elsewhere, or a start time that happens to
/// match after a reboot, must never get a stranger killed. Never true where processes cannot
/// be inspected.
pub(crate) fn is_daemon_process(pid: u32) -> bool {
    ktx_base::process::command_line(pid).is_some_and(|c| cmdline_is_daemon(&c))
}

/// `cmdline` (NUL- or space-separated) has the arguments `ktx_daemon` then `serve`.
pub(crate) fn cmdline_is_daemon(cmdline: &[u8]) -> bool {
    let text = String::from_utf8_lossy(cmdline);
    let mut words = text.split(['\0', ' ']).filter(|w| !w.is_empty());
    words.any(|w| w == "ktx_daemon") && words.any(|w| w == "serve")
}

#[cfg(test)]
mod tests {
    use super::*;

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
