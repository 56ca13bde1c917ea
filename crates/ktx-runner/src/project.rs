//! Project discovery: which directory is the ktx project a command works on.
//!
//! This is the one implementation (the Python runtime has none): the semantic-layer ops receive
//! the absolute `projectDir` found here. It runs in Rust, before the runtime is touched, so a
//! missing `ktx.yaml` is reported without installing or starting Python.

use std::fmt;
use std::path::{Path, PathBuf};

/// The file that marks a project root.
pub const PROJECT_FILE: &str = "ktx.yaml";

/// Why no project was found: what is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectError {
    /// What is wrong, naming the directory.
    pub message: String,
    /// The fix, one sentence.
    pub hint: String,
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  hint: {}", self.message, self.hint)
    }
}

impl std::error::Error for ProjectError {}

/// The project root: `explicit` (relative to `cwd`; must hold `ktx.yaml`), else the nearest of
/// `cwd` and its parents that holds `ktx.yaml`. The result is absolute (canonical when possible).
pub fn resolve_project_dir(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, ProjectError> {
    if let Some(dir) = explicit {
        let abs = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            cwd.join(dir)
        };
        let abs = dunce::canonicalize(&abs).unwrap_or(abs);
        if abs.join(PROJECT_FILE).is_file() {
            return Ok(abs);
        }
        let why = if abs.is_dir() {
            format!("no {PROJECT_FILE} in {}", abs.display())
        } else if abs.exists() {
            format!("--project-dir {} is not a directory", abs.display())
        } else {
            format!("--project-dir {} does not exist", abs.display())
        };
        return Err(ProjectError {
            message: why,
            hint: format!(
                "pass the directory that holds {PROJECT_FILE}, or create a demo project with `ktx demo`"
            ),
        });
    }
    for dir in cwd.ancestors() {
        if dir.join(PROJECT_FILE).is_file() {
            return Ok(dunce::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()));
        }
    }
    Err(ProjectError {
        message: format!(
            "no {PROJECT_FILE} in {} or any parent directory",
            cwd.display()
        ),
        hint: "run this inside a ktx project, pass --project-dir DIR, or create a demo project with `ktx demo` (then `cd ktx-demo`)".into(),
    })
}

/// [`resolve_project_dir`] from the process's current directory.
pub fn project_dir(explicit: Option<&Path>) -> Result<PathBuf, ProjectError> {
    let cwd = std::env::current_dir().map_err(|e| ProjectError {
        message: format!("cannot read the current directory: {e}"),
        hint: "pass --project-dir DIR".into(),
    })?;
    resolve_project_dir(explicit, &cwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dir_is_found_upwards_or_refused_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let root = dunce::canonicalize(tmp.path()).unwrap();
        let deep = root.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let err = resolve_project_dir(None, &deep).unwrap_err().to_string();
        assert!(err.contains(&deep.display().to_string()), "{err}");
        assert!(err.contains("`ktx demo`"), "{err}");
        assert!(
            err.contains("\n  hint: run this inside a ktx project"),
            "{err}"
        );

        std::fs::write(root.join("a/ktx.yaml"), "connections: {}\n").unwrap();
        assert_eq!(resolve_project_dir(None, &deep).unwrap(), root.join("a"));
        assert_eq!(
            resolve_project_dir(Some(Path::new("..")), &deep).unwrap(),
            root.join("a")
        );
        let err = resolve_project_dir(Some(Path::new(".")), &deep).unwrap_err();
        assert!(err.message.contains("no ktx.yaml in"), "{}", err.message);
        let err = resolve_project_dir(Some(Path::new("missing")), &deep).unwrap_err();
        assert!(err.message.contains("does not exist"), "{}", err.message);
        let err = resolve_project_dir(Some(&root.join("a/ktx.yaml")), &deep).unwrap_err();
        assert!(
            err.message.contains("is not a directory"),
            "{}",
            err.message
        );
    }
}
