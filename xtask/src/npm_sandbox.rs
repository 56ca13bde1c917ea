//! A throwaway npm world: its own HOME, npm cache, global prefix and KTX_RUNTIME_ROOT, so a
//! verification never reads or writes the user's npm or ktx state.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Directories of one sandbox (all under one temp dir, removed on drop unless kept).
#[derive(Debug)]
pub struct NpmSandbox {
    dir: tempfile::TempDir,
}

impl NpmSandbox {
    /// Creates the sandbox and its directories.
    pub fn new() -> Result<NpmSandbox> {
        let dir = tempfile::Builder::new()
            .prefix("ktx-verify-")
            .tempdir()
            .context("cannot create a temp dir for the npm sandbox")?;
        let s = NpmSandbox { dir };
        for d in [
            s.home(),
            s.cache(),
            s.prefix(),
            s.runtime_root(),
            s.project(),
        ] {
            crate::fsx::create_dir_all(&d)?;
        }
        Ok(s)
    }

    /// The sandbox's root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// HOME for every child.
    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }
    /// npm's cache (`--cache`).
    pub fn cache(&self) -> PathBuf {
        self.path().join("npm-cache")
    }
    /// npm's global prefix (`--prefix` for `-g`).
    pub fn prefix(&self) -> PathBuf {
        self.path().join("npm-prefix")
    }
    /// KTX_RUNTIME_ROOT for every child.
    pub fn runtime_root(&self) -> PathBuf {
        self.path().join("ktx-runtime")
    }
    /// A fresh `{"private":true}` project directory (created by [`NpmSandbox::init_project`]).
    pub fn project(&self) -> PathBuf {
        self.path().join("project")
    }

    /// Writes `{"private":true}` as the project's package.json.
    pub fn init_project(&self) -> Result<()> {
        let pj = self.project().join("package.json");
        std::fs::write(&pj, "{\"private\":true}\n")
            .with_context(|| format!("cannot write {}", pj.display()))
    }

    /// Keeps the directory after drop; returns its path.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    /// A command running in the project dir with the sandbox's environment (HOME, npm cache,
    /// no update notifier/audit/fund, KTX_RUNTIME_ROOT; user npm config and ktx variables removed).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.project());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.to_ascii_lowercase().starts_with("npm_config_") || k.starts_with("KTX_") {
                c.env_remove(&k);
            }
        }
        c.env("HOME", self.home())
            .env("USERPROFILE", self.home())
            .env("XDG_DATA_HOME", self.home().join(".local/share"))
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("npm_config_cache", self.cache())
            .env("npm_config_userconfig", self.home().join(".npmrc"))
            .env("npm_config_update_notifier", "false")
            .env("npm_config_audit", "false")
            .env("npm_config_fund", "false")
            .env("KTX_RUNTIME_ROOT", self.runtime_root());
        c
    }

    /// `npm <args>` in the sandbox.
    pub fn npm(&self, args: &[&str]) -> Command {
        let mut c = self.command(crate::workspace::npm_shim("npm"));
        c.args(args);
        c
    }
}
