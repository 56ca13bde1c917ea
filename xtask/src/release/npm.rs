//! The npm client as the release commands use it: bounded subprocesses ([`crate::proc::run`]), `--registry` on every
//! call when one is given, and `npm view` answers read fail-closed.

use crate::proc::Finished;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// What the registry says about `NAME@VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// `npm view` answered E404: not published.
    Absent,
    /// Published, with this `dist.integrity`.
    Present {
        /// The registry's `dist.integrity` (`sha512-...`).
        integrity: String,
    },
}

/// An npm client bound to one registry (or npm's configured default).
#[derive(Debug, Clone)]
pub struct Npm {
    program: PathBuf,
    registry: Option<String>,
}

impl Npm {
    /// `npm` from PATH (or `$KTX_NPM`), passing `--registry URL` on every call when given.
    pub fn new(registry: Option<String>) -> Npm {
        let program = std::env::var_os("KTX_NPM")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(crate::workspace::npm_shim("npm")));
        Npm { program, registry }
    }

    /// The registry passed to every call, if any.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// Runs `npm <args> [--registry URL]`, bounded by `timeout`.
    pub fn run(&self, args: &[OsString], timeout: Duration) -> Result<Finished> {
        let mut cmd = Command::new(&self.program);
        cmd.args(args);
        if let Some(r) = &self.registry {
            cmd.arg("--registry").arg(r);
        }
        crate::proc::run(&mut cmd, timeout)
            .map_err(|e| anyhow::anyhow!("{e:#}\nIs npm installed and on PATH (or set KTX_NPM)?"))
    }

    /// The command line as it is run, for messages.
    pub fn display(&self, args: &[OsString]) -> String {
        let mut s = format!("{}", self.program.display());
        for a in args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        if let Some(r) = &self.registry {
            s.push_str(" --registry ");
            s.push_str(r);
        }
        s
    }

    /// `npm view NAME@VERSION version --json`: exit 0 with that version = published (then its
    /// `dist.integrity` is fetched); E404 = absent; anything else is an error (fail closed).
    pub fn published(&self, name: &str, version: &str) -> Result<Published> {
        let spec = format!("{name}@{version}");
        let args = os(&["view", &spec, "version", "--json"]);
        let out = self.run(&args, Duration::from_secs(120))?;
        let shown = self.display(&args);
        if !out.success() {
            if npm_error_code(&out).as_deref() == Some("E404") {
                return Ok(Published::Absent);
            }
            bail!(
                "`{shown}` failed (exit {:?}) with something other than E404; refusing to go on \
                 (fail closed). Check the registry URL, network and credentials.\n{}",
                out.code(),
                out.stderr_tail()
            );
        }
        let answered: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).with_context(|| {
                format!(
                    "`{shown}` exited 0 but did not print JSON: {:?}",
                    out.stdout.trim()
                )
            })?;
        if answered.as_str() != Some(version) {
            bail!(
                "`{shown}` exited 0 but answered {answered} instead of \"{version}\"; refusing to \
                 go on (fail closed)"
            );
        }
        let integrity = self.view_string(&spec, "dist.integrity")?;
        Ok(Published::Present { integrity })
    }

    /// `npm view SPEC FIELD --json`, which must answer one JSON string.
    pub fn view_string(&self, spec: &str, field: &str) -> Result<String> {
        let (v, shown) = self.view_json(&["view", spec, field, "--json"])?;
        v.as_str()
            .map(str::to_string)
            .with_context(|| format!("`{shown}` answered {v}, not a string"))
    }

    /// `npm view NAME dist-tags --json` as a map of tag -> version.
    pub fn dist_tags(&self, name: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        let (v, shown) = self.view_json(&["view", name, "dist-tags", "--json"])?;
        match v {
            serde_json::Value::Object(map) => Ok(map),
            other => bail!("`{shown}` answered {other}, not an object"),
        }
    }

    /// Runs an `npm view ... --json` call that must succeed and print JSON; returns the JSON
    /// and the command as shown in errors.
    fn view_json(&self, args: &[&str]) -> Result<(serde_json::Value, String)> {
        let args = os(args);
        let out = self.run(&args, Duration::from_secs(120))?;
        let shown = self.display(&args);
        if !out.success() {
            bail!(
                "`{shown}` failed (exit {:?})\n{}",
                out.code(),
                out.stderr_tail()
            );
        }
        let v = serde_json::from_str(out.stdout.trim())
            .with_context(|| format!("`{shown}` did not print JSON: {:?}", out.stdout.trim()))?;
        Ok((v, shown))
    }
}

/// The `error.code` npm prints as JSON on stdout with `--json` (e.g. `E404`), else the
/// `npm error code X` line on stderr.
fn npm_error_code(out: &Finished) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(out.stdout.trim()) {
        if let Some(code) = v.pointer("/error/code").and_then(|c| c.as_str()) {
            return Some(code.to_string());
        }
    }
    out.stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("npm error code ")
                .or_else(|| l.trim().strip_prefix("npm ERR! code "))
        })
        .map(|c| c.trim().to_string())
}

/// `&[&str]` -> `Vec<OsString>`.
pub fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_from_json_or_stderr() {
        let f = |stdout: &str, stderr: &str| {
            let mut f = crate::proc::run(
                Command::new("sh").args(["-c", "exit 1"]),
                Duration::from_secs(10),
            )
            .unwrap();
            (f.stdout, f.stderr) = (stdout.into(), stderr.into());
            f
        };
        assert_eq!(
            npm_error_code(&f(r#"{"error":{"code":"E404","summary":"x"}}"#, "")).as_deref(),
            Some("E404")
        );
        assert_eq!(
            npm_error_code(&f("", "npm error code ECONNREFUSED\n")).as_deref(),
            Some("ECONNREFUSED")
        );
        assert_eq!(npm_error_code(&f("", "boom")), None);
    }
}
