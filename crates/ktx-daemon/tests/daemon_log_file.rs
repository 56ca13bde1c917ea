//! The daemon is told where its log is, so it can keep `daemon.log` size-capped itself.
// Linux only: reads the daemon's open files from /proc; the log handling itself is the same Python code on every OS.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use ktx_daemon::start;

#[test]
fn the_daemon_is_started_with_its_log_path() {
    let dir = DaemonDir::new();
    let out = start(&dir.config()).unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", out.state.pid)).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = args
        .iter()
        .position(|a| a == "--log-file")
        .unwrap_or_else(|| panic!("no --log-file in {args:?}"));
    assert_eq!(
        args.get(at + 1).map(std::path::PathBuf::from),
        Some(dir.path().join("daemon.log"))
    );
    // The daemon accepted the option (an older one would have exited with a usage error).
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(log.contains("listening on 127.0.0.1:"), "{log}");
}
