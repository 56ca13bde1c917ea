//! Finding a base Python interpreter that satisfies the wheel's Requires-Python.
//!
//! Order: `KTX_PYTHON` (an explicit choice: used or refused, never skipped); then, on Windows,
//! the `py -3` launcher (python.org's installers put it on PATH; `python.exe` often is only the
//! Microsoft Store alias there); then `python3`, `python` and `python3.N` on PATH, first match
//! wins. The probe also asks the interpreter for its platform ([`Interpreter::pins_key`]):
//! what it downloads (the uv wheel) must match the interpreter, which may differ from ktx's
//! own (an x86_64 Python under Rosetta, an x64 Python on Windows on Arm).

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
    /// Its `sysconfig.get_platform()` (`linux-x86_64`, `macosx-11.0-arm64`, `win-amd64`...).
    pub platform: String,
    /// Its `platform.machine()` (`x86_64`, `arm64`, `AMD64`...): decides a `universal2` build.
    pub machine: String,
}

impl Interpreter {
    /// This interpreter's key in uv-pins.json (`linux-x86_64`, `macos-aarch64`,
    /// `windows-x86_64`...), or None for a platform no uv wheel is pinned for.
    pub fn pins_key(&self) -> Option<String> {
        pins_key(&self.platform, &self.machine)
    }
}

/// Maps a `sysconfig.get_platform()` and `platform.machine()` pair to a uv-pins.json key.
/// A macOS `universal2` interpreter runs as the machine it reports (an x86_64 process under
/// Rosetta says `x86_64`); Windows names come as `win-amd64` / `win-arm64`.
pub fn pins_key(platform: &str, machine: &str) -> Option<String> {
    let arch = |a: &str| -> Option<&'static str> {
        match a.to_ascii_lowercase().as_str() {
            "x86_64" | "amd64" | "x64" => Some("x86_64"),
            "aarch64" | "arm64" => Some("aarch64"),
            _ => None,
        }
    };
    let p = platform.to_ascii_lowercase();
    let (os, cpu) = if let Some(rest) = p.strip_prefix("macosx-") {
        // `macosx-11.0-arm64`, `macosx-10.9-universal2`
        let cpu = rest.rsplit('-').next()?;
        let cpu = match cpu {
            "universal2" | "universal" | "intel" | "fat" | "fat3" | "fat64" => machine,
            other => other,
        };
        ("macos", arch(cpu)?)
    } else if let Some(cpu) = p.strip_prefix("win-") {
        ("windows", arch(cpu)?)
    } else if let Some(cpu) = p.strip_prefix("linux-") {
        ("linux", arch(cpu)?)
    } else {
        return None;
    };
    Some(format!("{os}-{cpu}"))
}

/// What the probe prints: executable, version, platform, machine (one per line).
const PROBE: &str = "import sys, sysconfig, platform; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3]); print(sysconfig.get_platform()); print(platform.machine())";

/// Runs `python -I -c ...` to learn its real executable, version and platform.
pub fn probe(python: &Path) -> Result<Interpreter, String> {
    probe_with(python, &[])
}

/// [`probe`] with `args` before the probe's own (`py -3`).
fn probe_with(python: &Path, args: &[&str]) -> Result<Interpreter, String> {
    let mut cmd = Command::new(python);
    cmd.args(args).args(["-I", "-c", PROBE]);
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
    let platform = lines.next().unwrap_or_default().trim().to_string();
    let machine = lines.next().unwrap_or_default().trim().to_string();
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
        platform,
        machine,
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
    // The Windows launcher: `py -3` picks the newest installed Python 3.
    if cfg!(windows) {
        if let Some(py) = which("py") {
            match probe_with(&py, &["-3"]) {
                Ok(mut interp) => {
                    let release = parse_release(&interp.version).unwrap_or_default();
                    if spec.contains(&release) {
                        interp.source = "PATH (py -3)".into();
                        return Ok(Search::Found(interp));
                    }
                    tried.push((
                        format!("{} -3", py.display()),
                        format!(
                            "Python {} does not satisfy {}",
                            interp.version,
                            spec.as_str()
                        ),
                    ));
                    seen.push(dunce::canonicalize(&interp.path).unwrap_or(interp.path));
                }
                Err(e) => tried.push((format!("{} -3", py.display()), e)),
            }
        }
    }
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
        let canonical = dunce::canonicalize(&path).unwrap_or(path.clone());
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
        msg.push_str(if cfg!(windows) {
            "\n  (no py, python3 or python on PATH)"
        } else {
            "\n  (no python3 or python on PATH)"
        });
    }
    for (c, why) in tried {
        msg.push_str(&format!("\n  tried {c}: {why}"));
    }
    RuntimeError::new(ErrorKind::NoPython, msg)
        .with_hint(format!(
            "Install Python {} ({}), or install uv (https://docs.astral.sh/uv/getting-started/installation/) and ktx will download a Python for you.",
            spec.as_str(),
            where_to_get_python()
        ))
        .with_hint(format!(
            "If Python is installed somewhere unusual, point KTX_PYTHON at it: {}.",
            set_ktx_python()
        ))
}

/// Where this platform's users get a Python: python.org (and winget on Windows, a package
/// manager elsewhere).
pub fn where_to_get_python() -> &'static str {
    if cfg!(windows) {
        "https://www.python.org/downloads/windows/ (it installs the `py` launcher), or `winget install Python.Python.3.12`"
    } else {
        "https://www.python.org/downloads/, or your package manager: e.g. `apt install python3 python3-venv`"
    }
}

/// The command that points `KTX_PYTHON` at an interpreter, in the user's shell syntax.
pub fn set_ktx_python() -> String {
    ktx_base::shell::set_env(
        ktx_base::env::PYTHON,
        if cfg!(windows) {
            "C:\\path\\to\\python.exe"
        } else {
            "/path/to/python3"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair CPython reports maps to the key of the wheels that interpreter's pip would
    /// accept, whatever ktx itself was built for.
    #[test]
    fn the_interpreters_platform_picks_the_pins_key() {
        let cases = [
            ("linux-x86_64", "x86_64", Some("linux-x86_64")),
            ("linux-aarch64", "aarch64", Some("linux-aarch64")),
            ("macosx-11.0-arm64", "arm64", Some("macos-aarch64")),
            ("macosx-10.9-x86_64", "x86_64", Some("macos-x86_64")),
            // python.org's universal2 build on an arm64 Mac, native and under Rosetta.
            ("macosx-10.9-universal2", "arm64", Some("macos-aarch64")),
            ("macosx-10.9-universal2", "x86_64", Some("macos-x86_64")),
            ("win-amd64", "AMD64", Some("windows-x86_64")),
            // An x64 Python on Windows on Arm runs emulated and reports itself as x64.
            ("win-amd64", "ARM64", Some("windows-x86_64")),
            ("win-arm64", "ARM64", Some("windows-aarch64")),
            ("win32", "AMD64", None),
            ("linux-i686", "i686", None),
            ("freebsd-14.0-RELEASE-amd64", "amd64", None),
            ("", "", None),
        ];
        let pins = crate::uv::pins().unwrap();
        for (platform, machine, want) in cases {
            let got = pins_key(platform, machine);
            assert_eq!(got.as_deref(), want, "{platform} / {machine}");
            if let Some(key) = got {
                assert!(
                    pins.platforms.contains_key(&key),
                    "{key} is not in uv-pins.json"
                );
            }
        }
    }

    /// A real interpreter on this machine reports a platform with pinned uv wheels.
    #[test]
    fn a_real_interpreter_reports_its_platform() {
        let Some(python) = which("python3").or_else(|| which("python")) else {
            panic!("the tests need a python3 on PATH");
        };
        let interp = probe(&python).unwrap();
        let key = interp
            .pins_key()
            .unwrap_or_else(|| panic!("no key for {} / {}", interp.platform, interp.machine));
        assert!(crate::uv::pins().unwrap().platforms.contains_key(&key));
    }
}
