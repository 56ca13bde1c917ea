//! Which process is our daemon. Process identity itself (pid + start time, signals that never
//! reach a recycled pid) is [`ktx_base::process`]; this module adds the daemon's command line.

pub(crate) use ktx_base::process::{
    is_running, is_same_process, may_be_running, proc_info, signal_if_same, Signal,
};
// The identity and signal tests live with the code, in `ktx-base`.

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
}
