//! One kept log file per install attempt: each command line, environment changes, exit codes
//! and full (bounded) output.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::RuntimeError;
use crate::fsutil::{now_rfc3339, now_stamp};
use crate::process::{display_command, Captured};

/// An open install log.
#[derive(Debug)]
pub struct InstallLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl InstallLog {
    /// Creates `<logs_dir>/install-<UTC stamp>-<pid>.log` (never overwriting an older log).
    pub fn create(logs_dir: &Path) -> Result<InstallLog, RuntimeError> {
        fs::create_dir_all(logs_dir)
            .map_err(|e| RuntimeError::io("create log directory", logs_dir, &e))?;
        let base = format!("install-{}-{}", now_stamp(), std::process::id());
        for n in 0..100u32 {
            let name = if n == 0 {
                format!("{base}.log")
            } else {
                format!("{base}-{n}.log")
            };
            let path = logs_dir.join(name);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(InstallLog {
                        path,
                        file: Mutex::new(file),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(RuntimeError::io("create install log", &path, &e)),
            }
        }
        Err(RuntimeError::new(
            crate::error::ErrorKind::Io,
            format!("cannot create a new install log in {}", logs_dir.display()),
        ))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (prefixed with the time).
    pub fn line(&self, text: &str) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "[{}] {text}", now_rfc3339());
        }
    }

    /// Records a finished command: its line, environment changes, exit status, time and output.
    pub fn command(&self, cmd: &Command, env_changes: &[String], out: &Captured) {
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "[{}] $ {}", now_rfc3339(), display_command(cmd));
            if let Some(dir) = cmd.get_current_dir() {
                let _ = writeln!(f, "    cwd: {}", dir.display());
            }
            if !env_changes.is_empty() {
                let _ = writeln!(f, "    env: {}", env_changes.join(", "));
            }
            let _ = writeln!(f, "    -> {} in {:.2?}", out.describe_exit(), out.elapsed);
            for (name, data) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
                if !data.is_empty() {
                    let _ = writeln!(f, "    --- {name} ---");
                    let _ = f.write_all(data);
                    if !data.ends_with(b"\n") {
                        let _ = writeln!(f);
                    }
                }
            }
            let _ = f.flush();
        }
    }

    /// Records a command that could not be spawned.
    pub fn spawn_failed(&self, cmd: &Command, err: &std::io::Error) {
        self.line(&format!(
            "$ {}\n    -> could not start: {err}",
            display_command(cmd)
        ));
    }
}
