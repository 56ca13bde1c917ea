//! User Python scripts in a ktx project: `scripts/<slug>.py` files whose module docstring
//! starts with a YAML frontmatter block, indexed in SQLite under `<project>/.ktx/`.
//!
//! The files are the source of truth; the index can always be rebuilt from them. Each module
//! owns one concern:
//!
//! - [`frontmatter`]: reading the block into [`Meta`] with safe defaults and `file:line`
//!   warnings, and editing one field of it in place;
//! - [`files`]: listing `scripts/*.py` with size and mtime, hashing, atomic writes;
//! - [`index`]: the SQLite database (WAL, `user_version` migrations), rows and run stats;
//! - [`git`]: `git diff --name-status -M` against the indexed commit, plus untracked files,
//!   through ktx-runtime's bounded process runner;
//! - [`sync`]: the cheap check every command runs, `reconcile` and `rebuild`;
//! - [`defaults`]: the default scripts compiled into ktx and the "replace only if unmodified"
//!   rule of `seed`;
//! - [`template`]: the file `ktx script new` writes;
//! - [`dotktx`]: the `.ktx/` directory and its `.gitignore` line;
//! - [`store`]: [`Scripts`], the API the CLI uses (open = cheap sync; every change writes the
//!   file and the row together).
//!
//! Running scripts is not here: `ktx-worker` runs them in a separate Python process.

pub mod defaults;
pub mod dotktx;
pub mod files;
pub mod frontmatter;
pub mod git;
pub mod index;
pub mod store;
pub mod sync;
pub mod template;

use std::fmt;
use std::time::Duration;

pub use defaults::{SeedReport, DEFAULTS};
pub use frontmatter::{Kind, Meta};
pub use index::{Row, StatsRow};
pub use store::Scripts;
pub use sync::{Method, SyncReport};

/// The deadline of one call when neither the call nor the script's `timeout` sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The deadline of a call to `row`: the call's own (`--timeout`), else the script's
/// frontmatter `timeout`, else [`DEFAULT_TIMEOUT`].
pub fn deadline(row: &Row, call: Option<Duration>) -> Duration {
    call.or(row.timeout).unwrap_or(DEFAULT_TIMEOUT)
}

/// A failure: what is wrong, the fix, and close names the user may have meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptsError {
    /// What is wrong, naming the file or directory.
    pub message: String,
    /// The fix, one sentence.
    pub hint: String,
    /// Close names (e.g. slugs) for `did you mean: ...?`.
    pub suggestions: Vec<String>,
}

impl ScriptsError {
    /// An error with its fix.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ScriptsError {
            message: message.into(),
            hint: hint.into(),
            suggestions: Vec::new(),
        }
    }

    /// The same error with close names.
    pub fn suggest(mut self, names: Vec<String>) -> Self {
        self.suggestions = names;
        self
    }
}

impl fmt::Display for ScriptsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  hint: {}", self.message, self.hint)
    }
}

impl std::error::Error for ScriptsError {}
