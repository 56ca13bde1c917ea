//! The installers a build can use: uv, or the `python -m venv` + pip fallback, behind one
//! [`Installer`] interface (create the venv, install the requirement into it, say what it
//! was for the receipt). [`Ctx::run`] runs their commands: bounded, logged, with the cleaned
//! installer environment, and with failures mapped to errors that carry hints.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{ErrorKind, RuntimeError};
use crate::features::Feature;
use crate::hints::hints_for;
use crate::install::LOCAL_EMBEDDINGS_UV_OVERRIDES;
use crate::layout::Layout;
use crate::log::InstallLog;
use crate::pep440::Specifiers;
use crate::process::{display_command, installer_env, run_bounded, Captured, Limits};
use crate::progress::{Event, InstallerKind, Reporter};
use crate::python::Interpreter;
use crate::receipt::InstallerRecord;
use crate::uv::Uv;

/// Time allowed to create a venv.
const VENV_TIMEOUT: Duration = Duration::from_secs(300);
/// Time allowed to install the packages (local-embeddings pulls large wheels).
const PACKAGES_TIMEOUT: Duration = Duration::from_secs(1800);

/// What every installer command of one build shares.
pub(crate) struct Ctx<'a> {
    pub layout: &'a Layout,
    /// The bundled wheel (named in hints).
    pub wheel: PathBuf,
    pub log: &'a InstallLog,
    pub reporter: &'a dyn Reporter,
    /// The offline wheelhouse (`--find-links`), when installing offline.
    pub find_links: Option<&'a Path>,
}

impl Ctx<'_> {
    /// Runs one installer command (writing into `target`) with the cleaned environment, logs
    /// it, maps failure to an error with the tail of its output and hints; a full disk to a
    /// [`ErrorKind::DiskFull`] error naming `target` and its free space.
    fn run(
        &self,
        step: &str,
        target: &Path,
        cmd: &mut Command,
        allow_python_downloads: bool,
        timeout: Duration,
    ) -> Result<Captured, RuntimeError> {
        self.reporter.report(Event::Step(step));
        cmd.current_dir(self.layout.version_dir());
        let env = installer_env(cmd, allow_python_downloads);
        let out = run_bounded(cmd, None, &Limits::new(timeout)).map_err(|e| {
            self.log.spawn_failed(cmd, &e);
            if crate::disk::is_disk_full(&e) {
                return crate::disk::error(&format!("{step}: starting"), target, &e.to_string());
            }
            RuntimeError::new(
                ErrorKind::Install,
                format!(
                    "{step}: cannot run {}: {e}",
                    cmd.get_program().to_string_lossy()
                ),
            )
        })?;
        self.log.command(cmd, &env, &out);
        if out.success() {
            return Ok(out);
        }
        let text = format!("{}\n{}", out.stdout_text(), out.stderr_text());
        if crate::disk::mentions_disk_full(&text) {
            // Not a reason to try anything else: every installer would fail the same way.
            return Err(crate::disk::error(
                &format!("{step} in"),
                target,
                &format!(
                    "{} ({}): {}",
                    Path::new(cmd.get_program())
                        .file_name()
                        .unwrap_or(cmd.get_program())
                        .to_string_lossy(),
                    out.describe_exit(),
                    crate::disk::disk_full_line(&text)
                ),
            ));
        }
        let tail = out.tail(12);
        let mut err = RuntimeError::new(
            ErrorKind::Install,
            format!(
                "{step} failed: `{}` {}{}",
                display_command(cmd),
                out.describe_exit(),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("\n{}", indent(&tail))
                }
            ),
        );
        for h in hints_for(&text, self.find_links.is_some(), &self.wheel) {
            err = err.with_hint(h);
        }
        Err(err)
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The venv a build makes, and what goes into it.
pub(crate) struct Target<'a> {
    /// The venv directory.
    pub venv: &'a Path,
    /// Its interpreter (`<venv>/bin/python`).
    pub python: &'a Path,
    /// The requirement to install (the wheel, with extras).
    pub requirement: &'a str,
    /// The features it is for.
    pub features: &'a [Feature],
}

/// One way to build a venv: create it, then install the requirement into it.
pub(crate) trait Installer {
    /// Which installer this is (for progress and the outcome).
    fn kind(&self) -> InstallerKind;
    /// The installer's own version, when it has one worth recording (uv's).
    fn version(&self) -> Option<String> {
        None
    }
    /// What the receipt records about it: its name and version.
    fn record(&self) -> InstallerRecord {
        InstallerRecord {
            name: self.kind().as_str().into(),
            version: self.version(),
        }
    }
    /// Creates the target's venv.
    fn create_venv(&mut self, ctx: &Ctx, target: &Target) -> Result<(), RuntimeError>;
    /// Installs the target's requirement into its venv.
    fn install_packages(&self, ctx: &Ctx, target: &Target) -> Result<(), RuntimeError>;
}

/// uv: `uv venv` (with the interpreter found, or one uv finds or downloads itself), then
/// `uv pip install`.
pub(crate) struct UvInstaller<'a> {
    pub uv: &'a Uv,
    /// The interpreter found on this machine; `None`: uv finds (or downloads) one for `spec`.
    pub interp: Option<&'a Interpreter>,
    pub spec: &'a Specifiers,
}

impl Installer for UvInstaller<'_> {
    fn kind(&self) -> InstallerKind {
        InstallerKind::Uv
    }

    fn version(&self) -> Option<String> {
        Some(self.uv.version.clone())
    }

    fn create_venv(&mut self, ctx: &Ctx, target: &Target) -> Result<(), RuntimeError> {
        let venv = target.venv;
        let mut cmd = Command::new(&self.uv.path);
        cmd.args(["venv", "--no-project", "--python"]);
        match self.interp {
            Some(i) => cmd.arg(&i.path),
            None => cmd.arg(self.spec.as_str()),
        };
        cmd.arg(venv);
        // Offline, uv may still use a Python it installed earlier, but never downloads one.
        let download_python = self.interp.is_none() && ctx.find_links.is_none();
        ctx.run(
            "Creating virtual environment",
            venv,
            &mut cmd,
            download_python,
            VENV_TIMEOUT,
        )
        .map(drop)
        .map_err(|e| match self.interp {
            Some(_) => e,
            // The failure is about getting a Python, not the package index: say that first.
            None => python_first(e, self.spec, ctx.find_links.is_some()),
        })
    }

    fn install_packages(&self, ctx: &Ctx, target: &Target) -> Result<(), RuntimeError> {
        let Target {
            venv,
            python,
            requirement,
            features,
        } = *target;
        let mut cmd = Command::new(&self.uv.path);
        cmd.args(["pip", "install", "--python"])
            .arg(python)
            .arg(requirement);
        if let Some(dir) = ctx.find_links {
            cmd.args(["--offline", "--no-index", "--find-links"])
                .arg(dir);
        }
        if features.contains(&Feature::LocalEmbeddings) {
            // Drop triton (~1 GB, unused on the CPU): see LOCAL_EMBEDDINGS_UV_OVERRIDES.
            let overrides = write_uv_overrides(ctx.log)?;
            cmd.arg("--override").arg(&overrides);
        }
        ctx.run(
            "Installing packages",
            venv,
            &mut cmd,
            false,
            PACKAGES_TIMEOUT,
        )
        .map(drop)
    }
}

/// The fallback without uv: `python -m venv`, then pip (the base interpreter's pip with
/// `--python` when it is new enough, else the venv's own pip).
pub(crate) struct PipInstaller<'a> {
    pub interp: &'a Interpreter,
    /// The base interpreter's pip version, when it can install into another venv (known once
    /// the venv is created).
    base_pip: Option<String>,
}

impl<'a> PipInstaller<'a> {
    pub(crate) fn new(interp: &'a Interpreter) -> Self {
        PipInstaller {
            interp,
            base_pip: None,
        }
    }
}

impl Installer for PipInstaller<'_> {
    fn kind(&self) -> InstallerKind {
        InstallerKind::Pip
    }

    fn create_venv(&mut self, ctx: &Ctx, target: &Target) -> Result<(), RuntimeError> {
        let venv = target.venv;
        // With pip >= 22.3 in the base interpreter, `pip --python VENV_PYTHON install`
        // installs into a venv created without pip: this skips ensurepip, which is most
        // of the cost of `python -m venv` (about 2 s instead of 7 s in all, measured).
        self.base_pip = base_pip_version(&self.interp.path, &ctx.layout.version_dir())
            .filter(|v| pip_supports_python_option(v));
        match &self.base_pip {
            Some(v) => ctx.log.line(&format!(
                "pip: the base interpreter's pip {v} installs into a venv made --without-pip"
            )),
            None => ctx
                .log
                .line("pip: the base interpreter has no pip >= 22.3: `python -m venv` with pip"),
        }
        let mut cmd = Command::new(&self.interp.path);
        cmd.args(["-m", "venv"]);
        if self.base_pip.is_some() {
            cmd.arg("--without-pip");
        }
        cmd.arg(venv);
        ctx.run(
            "Creating virtual environment (python -m venv)",
            venv,
            &mut cmd,
            false,
            VENV_TIMEOUT,
        )
        .map(drop)
    }

    fn install_packages(&self, ctx: &Ctx, target: &Target) -> Result<(), RuntimeError> {
        let (venv, python, requirement) = (target.venv, target.python, target.requirement);
        // pip has no way to drop a dependency (its constraints can only narrow versions, and
        // `--no-deps` would drop everything): with the pip fallback a local-embeddings
        // install keeps triton (~1 GB more than with uv).
        let mut cmd = match &self.base_pip {
            Some(_) => {
                let mut cmd = Command::new(&self.interp.path);
                cmd.args(["-m", "pip", "--python"]).arg(python);
                cmd
            }
            None => {
                let mut cmd = Command::new(python);
                cmd.args(["-m", "pip"]);
                cmd
            }
        };
        cmd.args(["install", "--disable-pip-version-check", "--no-input"])
            .arg(requirement);
        if let Some(dir) = ctx.find_links {
            cmd.args(["--no-index", "--find-links"]).arg(dir);
        }
        ctx.run(
            "Installing packages with pip",
            venv,
            &mut cmd,
            false,
            PACKAGES_TIMEOUT,
        )
        .map(drop)
    }
}

/// Writes [`LOCAL_EMBEDDINGS_UV_OVERRIDES`] next to this attempt's log (kept with it, so the
/// log's `--override <file>` can be read back) and records it in the log.
fn write_uv_overrides(log: &InstallLog) -> Result<PathBuf, RuntimeError> {
    let path = log.path().with_extension("overrides.txt");
    // create_new: a file (or symlink) already at that name is never written through.
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(LOCAL_EMBEDDINGS_UV_OVERRIDES.as_bytes())
        })
        .map_err(|e| RuntimeError::io("write uv overrides file", &path, &e))?;
    log.line(&format!(
        "uv overrides {} (drops triton: ~1 GB, not needed for CPU inference): {}",
        path.display(),
        LOCAL_EMBEDDINGS_UV_OVERRIDES.trim_end()
    ));
    Ok(path)
}

/// Puts the "install a Python" hint first on a venv failure where uv had to find or download
/// the interpreter itself.
fn python_first(mut e: RuntimeError, spec: &Specifiers, offline: bool) -> RuntimeError {
    let how = if offline {
        "offline, uv cannot download one"
    } else {
        "uv could not download one"
    };
    // uv fetches Pythons from GitHub, not the package index: the wheelhouse hint would mislead.
    e.hints
        .retain(|h| !h.starts_with("The package index could not be reached"));
    e.hints.insert(
        0,
        format!(
            "No Python {} was found on this machine and {how}. Install Python {} (https://www.python.org/downloads/, or e.g. `apt install python3 python3-venv`) or point KTX_PYTHON at one, then retry.",
            spec.as_str(),
            spec.as_str()
        ),
    );
    e
}

/// The version of the pip that `python -m pip` would run from `cwd` with the installer
/// environment (`None`: no pip, or it is broken). Imports `pip` instead of running
/// `pip --version`: 0.05 s instead of 0.3 s.
fn base_pip_version(python: &Path, cwd: &Path) -> Option<String> {
    let mut cmd = Command::new(python);
    cmd.args(["-c", "import pip; print(pip.__version__)"])
        .current_dir(cwd);
    installer_env(&mut cmd, false);
    let out = run_bounded(&mut cmd, None, &Limits::new(Duration::from_secs(30))).ok()?;
    out.success()
        .then(|| out.stdout_text().trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether pip `version` has the `--python` option (22.3 and later).
fn pip_supports_python_option(version: &str) -> bool {
    let v = crate::pep440::parse_release(version).unwrap_or_default();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    (get(0), get(1)) >= (22, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_python_option_needs_22_3() {
        for v in ["22.3", "22.3.1", "23.2.1", "24.0", "25.1.dev0"] {
            assert!(pip_supports_python_option(v), "{v}");
        }
        for v in ["22.2.2", "21.3", "9.0.1", "", "junk"] {
            assert!(!pip_supports_python_option(v), "{v}");
        }
    }

    #[test]
    fn uv_overrides_drop_triton_next_to_the_attempts_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = InstallLog::create(dir.path()).unwrap();
        let path = write_uv_overrides(&log).unwrap();
        assert_eq!(path.parent(), log.path().parent());
        assert!(
            path.to_string_lossy().ends_with(".overrides.txt"),
            "{path:?}"
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "triton ; python_version < \"0\"\n"
        );
        let text = fs::read_to_string(log.path()).unwrap();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("drops triton"),
            "{text}"
        );
    }
}
