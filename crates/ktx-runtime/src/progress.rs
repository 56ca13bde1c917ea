//! Progress events an install reports, and the stable messages that go with them.
//!
//! The library never prints: it calls a [`Reporter`]. `ktx-runner` provides the terminal one
//! (a spinner on a TTY, plain lines otherwise).

use std::path::Path;

use crate::features::{display_list, Feature};

/// The installer used for a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallerKind {
    /// uv (from KTX_UV, PATH, or bootstrapped).
    Uv,
    /// The `python -m venv` + pip fallback.
    Pip,
}

impl InstallerKind {
    /// `uv` or `pip`.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallerKind::Uv => "uv",
            InstallerKind::Pip => "pip",
        }
    }
}

/// Something an install wants the user to know.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The install lock is held by another process (pid if known); we are about to wait.
    Waiting {
        /// The holder's pid, when readable.
        pid: Option<u32>,
    },
    /// A one-off notice (the pip fallback warning, "uv will download a Python"...).
    Notice(&'a str),
    /// A build starts (this is when the stable "Installing ..." line is due).
    Started {
        /// Features being installed.
        features: &'a [Feature],
        /// The installer that will do it.
        installer: InstallerKind,
    },
    /// The current step, e.g. "Creating virtual environment" (spinner text).
    Step(&'a str),
    /// The build finished and the receipt is written.
    Finished {
        /// The version dir of the ready runtime.
        dir: &'a Path,
    },
}

/// Receives install events.
pub trait Reporter {
    /// Handles one event.
    fn report(&self, event: Event<'_>);
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullReporter;

impl Reporter for NullReporter {
    fn report(&self, _: Event<'_>) {}
}

/// `Waiting for another ktx process (pid N) to finish installing the runtime...`
pub fn waiting_message(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!(
            "Waiting for another ktx process (pid {pid}) to finish installing the runtime..."
        ),
        None => "Waiting for another ktx process to finish installing the runtime...".to_string(),
    }
}

/// `Installing KTX Python runtime (core) with uv...` (stable; smokes assert it).
pub fn installing_message(features: &[Feature], installer: InstallerKind) -> String {
    crate::messages::installing(&display_list(features), installer.as_str())
}

/// `KTX Python runtime ready: <dir>` (stable; smokes assert it).
pub fn ready_message(dir: &Path) -> String {
    crate::messages::ready(dir)
}
