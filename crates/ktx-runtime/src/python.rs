//! Finding a base Python interpreter that satisfies the wheel's Requires-Python.
//!
//! Order: `KTX_PYTHON` (an explicit choice: used or refused, never skipped); then `python3`,
//! `python` and `python3.N` on PATH, first match wins.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{ErrorKind, RuntimeError};
use crate::layout::non_empty_env;
use crate::pep440::{parse_release, Specifiers};
use crate::process::{run_bounded, Limits};

/// A probed interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// Its real executable (`sys.executable`, so shims like pyenv's are resolved).
    pub path: PathBuf,
    /// `X.Y.Z`.
    pub version: String,
    /// Where it was found: `KTX_PYTHON` or `PATH (python3)`.
    pub source: String,
}

/// Runs `python -I -c ...` to learn its real executable and version.
pub fn probe(python: &Path) -> Result<Interpreter, String> {
    let mut cmd = Command::new(python);
    cmd.args([
        "-I",
        "-c",
        "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])",
    ]);
    let out = run_bounded(&mut cmd, None, &Limits::new(Duration::from_secs(30)))
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.success() {
        return Err(format!(
            "{} failed ({}): {}",
            python.display(),
            out.describe_exit(),
            out.tail(3)
        ));
    }
    let text = out.stdout_text();
    let mut lines = text.lines();
    let exe = lines.next().unwrap_or_default().trim();
    let version = lines.next().unwrap_or_default().trim().to_string();
    if parse_release(&version).is_none() {
        return Err(format!("{} printed no version", python.display()));
    }
    let path = if exe.is_empty() {
        python.to_path_buf()
    } else {
        PathBuf::from(exe)
    };
    Ok(Interpreter {
        path,
        version,
        source: String::new(),
    })
}

/// Finds `name` on PATH (with `.exe` on Windows); only executable files count.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(&path)
        .map(|d| d.join(&file))
        .find(|p| is_executable(p))
}

/// Whether `path` is a regular file we may execute.
pub fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    true
}

/// The outcome of a search: the interpreter, or what was tried and why each was rejected.
#[derive(Debug, Clone)]
pub enum Search {
    /// A fitting interpreter.
    Found(Interpreter),
    /// None fits; `(candidate, reason)` for each tried.
    NotFound(Vec<(String, String)>),
}

/// Searches for an interpreter satisfying `spec`. `Err` only when `KTX_PYTHON` is set but
/// unusable (an explicit choice is never silently replaced).
pub fn find_interpreter(spec: &Specifiers) -> Result<Search, RuntimeError> {
    if let Some(p) = non_empty_env(ktx_base::env::PYTHON) {
        let fail = |why: String| {
            RuntimeError::new(
                ErrorKind::NoPython,
                format!("KTX_PYTHON={p} cannot be used: {why}"),
            )
            .with_hint(format!(
                "Point KTX_PYTHON at a Python {} interpreter, or unset it to let ktx search PATH.",
                spec.as_str()
            ))
        };
        let mut interp = probe(Path::new(&p)).map_err(fail)?;
        let release = parse_release(&interp.version).unwrap_or_default();
        if !spec.contains(&release) {
            return Err(fail(format!(
                "it is Python {}, but kaelio-ktx requires {}",
                interp.version,
                spec.as_str()
            )));
        }
        interp.source = "KTX_PYTHON".into();
        return Ok(Search::Found(interp));
    }
    let mut tried = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let names = [
        "python3",
        "python",
        "python3.14",
        "python3.13",
        "python3.12",
        "python3.11",
        "python3.10",
    ];
    for name in names {
        let Some(path) = which(name) else { continue };
        let canonical = std::fs::canonicalize(&path).unwrap_or(path.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        match probe(&path) {
            Ok(mut interp) => {
                let release = parse_release(&interp.version).unwrap_or_default();
                if spec.contains(&release) {
                    interp.source = format!("PATH ({name})");
                    return Ok(Search::Found(interp));
                }
                tried.push((
                    path.display().to_string(),
                    format!(
                        "Python {} does not satisfy {}",
                        interp.version,
                        spec.as_str()
                    ),
                ));
            }
            Err(e) => tried.push((path.display().to_string(), e)),
        }
    }
    Ok(Search::NotFound(tried))
}

/// The focused "no Python" error: what to install and how to point ktx at it.
pub fn no_python_error(spec: &Specifiers, tried: &[(String, String)]) -> RuntimeError {
    let mut msg = format!(
        "no Python interpreter satisfying {} was found, and uv (which could download one) is not available",
        spec.as_str()
    );
    if tried.is_empty() {
        msg.push_str("\n  (no python3 or python on PATH)");
    }
    for (c, why) in tried {
        msg.push_str(&format!("\n  tried {c}: {why}"));
    }
    RuntimeError::new(ErrorKind::NoPython, msg)
        .with_hint(format!(
            "Install Python {} (https://www.python.org/downloads/, or your package manager: e.g. `apt install python3 python3-venv`), or install uv (https://docs.astral.sh/uv/getting-started/installation/) and ktx will download a Python for you.",
            spec.as_str()
        ))
        .with_hint("If Python is installed somewhere unusual, set KTX_PYTHON=/path/to/python3.")
}
