//! `ktx runtime prune` decides whether another version's daemon still runs by process
//! identity (pid **and** start time, `ktx-base`'s process module through `ktx-daemon`), not by
//! "some process has this pid": a recycled pid never keeps a dead runtime on disk, and a live
//! daemon is never pruned from under itself.
// Linux only: fakes recycled pids by reading /proc/<pid>/stat; the identity rule itself (pid + start time) is tested on every OS in ktx-base (Windows under Wine).
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command};

use common::ktx;
use serde_json::{json, Value};

/// A live process standing in for a daemon: its pid is alive, its start time is known.
struct Stand {
    child: Child,
}

impl Stand {
    fn new() -> Stand {
        Stand {
            child: Command::new("sleep").arg("300").spawn().unwrap(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Field 22 of `/proc/<pid>/stat`: what ktx records as the start time.
    fn start_time(&self) -> String {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        rest.split_whitespace().nth(19).unwrap().to_string()
    }
}

impl Drop for Stand {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An old version dir with a receipt-less venv (a ktx marker) and the given daemon files.
fn old_version(root: &Path, version: &str, state_pid: u32, owner: Option<(u32, &str)>) {
    let daemon = root.join(version).join("daemon");
    fs::create_dir_all(&daemon).unwrap();
    fs::create_dir_all(root.join(version).join("venvs/x")).unwrap();
    let state = json!({"schemaVersion": 1, "pid": state_pid});
    fs::write(daemon.join("state.json"), state.to_string()).unwrap();
    if let Some((pid, start_time)) = owner {
        let owner = json!({
            "schemaVersion": 1,
            "pid": pid,
            "startTime": start_time,
            "spawnedAt": "2026-01-01T00:00:00Z",
        });
        fs::write(daemon.join("owner.json"), owner.to_string()).unwrap();
    }
}

fn dry_run(root: &Path) -> Value {
    let out = ktx(root)
        .args(["runtime", "prune", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn listed(v: &Value, key: &str, version: &str) -> Option<Value> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{version}"))
        })
        .cloned()
}

#[test]
fn a_recycled_daemon_pid_does_not_keep_a_version_and_a_live_daemon_does() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let stand = Stand::new();
    let (pid, start) = (stand.pid(), stand.start_time());
    // The owner record names the pid with another start time: the daemon died and its pid now
    // belongs to an unrelated process.
    old_version(r, "0.0.5", pid, Some((pid, &format!("{start}0"))));
    // Our recorded daemon, alive with the recorded start time.
    old_version(r, "0.0.6", pid, Some((pid, &start)));
    // No owner record: the state's live pid keeps the version (conservative, as before).
    old_version(r, "0.0.7", pid, None);

    let v = dry_run(r);
    assert!(
        listed(&v, "wouldRemove", "0.0.5").is_some(),
        "a recycled pid kept 0.0.5: {v}"
    );
    for version in ["0.0.6", "0.0.7"] {
        let skip = listed(&v, "skipped", version).unwrap_or_else(|| panic!("{version}: {v}"));
        assert_eq!(
            skip["reason"],
            format!("in use: its daemon is running (pid {pid})"),
            "{v}"
        );
    }
}
