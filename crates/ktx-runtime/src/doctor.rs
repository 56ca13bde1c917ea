//! `ktx runtime doctor`: a list of independent checks, each `PASS|WARN|FAIL <label>: <detail>`
//! with a `Fix:` line when there is something to do.
//!
//! Other crates add checks by pushing to [`DoctorReport::checks`] (e.g. the daemon check).

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::abi::{self, Reply};
use crate::python::{self, Search};
use crate::status::StatusKind;
use crate::uv;
use crate::{Feature, Runtime};

/// Requires-Python assumed when the bundled manifest cannot be read.
pub const FALLBACK_REQUIRES_PYTHON: &str = ">=3.10";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Fine.
    Pass,
    /// Works, but worth knowing (e.g. the slower pip fallback).
    Warn,
    /// Broken: a Python-backed command would fail.
    Fail,
}

impl Outcome {
    /// `PASS`, `WARN` or `FAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short stable label, e.g. `python`, `uv`, `bundled wheel`, `managed runtime`.
    pub label: String,
    /// The outcome.
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// What to do about it (always set for FAIL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check result.
    pub fn new(
        label: &str,
        outcome: Outcome,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Check {
            label: label.to_string(),
            outcome,
            detail: detail.into(),
            fix,
        }
    }
}

/// All check results, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DoctorReport {
    /// The checks run so far.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// Whether any check failed (the command then exits 1).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.outcome == Outcome::Fail)
    }

    /// The text form: one `OUTCOME label: detail` line per check, `  Fix: ...` under it.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                c.outcome.as_str(),
                c.label,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("  Fix: {fix}\n"));
            }
        }
        out
    }

    /// The JSON form: `{schemaVersion, ok, checks: [{label, outcome, detail, fix?}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"schemaVersion": 1, "ok": !self.failed(), "checks": self.checks})
    }
}

/// The runtime's checks: Python interpreter, uv (or the fallback), bundled wheel, managed runtime.
pub fn runtime_checks(rt: &Runtime) -> Vec<Check> {
    vec![
        check_python(rt),
        check_uv(rt),
        check_wheel(rt),
        check_runtime(rt),
    ]
}

fn requires_python(rt: &Runtime) -> String {
    rt.assets()
        .map(|a| a.manifest.requires_python.clone())
        .unwrap_or_else(|_| FALLBACK_REQUIRES_PYTHON.to_string())
}

fn check_python(rt: &Runtime) -> Check {
    let spec_text = requires_python(rt);
    let spec = match crate::pep440::Specifiers::parse(&spec_text) {
        Ok(s) => s,
        Err(e) => return Check::new("python", Outcome::Fail, e, Some("Reinstall ktx.".into())),
    };
    match python::find_interpreter(&spec) {
        Ok(Search::Found(i)) => Check::new(
            "python",
            Outcome::Pass,
            format!(
                "Python {} at {} ({})",
                i.version,
                i.path.display(),
                i.source
            ),
            None,
        ),
        Ok(Search::NotFound(tried)) => {
            let mut notes = Vec::new();
            let has_uv = matches!(uv::find_uv(rt.layout(), &mut notes), Ok(Some(_)));
            let fix = format!(
                "Install Python {spec_text} (https://www.python.org/downloads/) or set KTX_PYTHON=/path/to/python3."
            );
            let tried = if tried.is_empty() {
                "no python3/python on PATH".to_string()
            } else {
                tried
                    .iter()
                    .map(|(c, w)| format!("{c}: {w}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            if has_uv {
                Check::new(
                    "python",
                    Outcome::Warn,
                    format!(
                        "no Python {spec_text} found ({tried}); uv will download one on install"
                    ),
                    Some(fix),
                )
            } else {
                Check::new(
                    "python",
                    Outcome::Fail,
                    format!("no Python {spec_text} found ({tried}) and no uv to download one"),
                    Some(fix),
                )
            }
        }
        Err(e) => Check::new("python", Outcome::Fail, e.message, e.hints.first().cloned()),
    }
}

fn check_uv(rt: &Runtime) -> Check {
    let mut notes = Vec::new();
    match uv::find_uv(rt.layout(), &mut notes) {
        Ok(Some(u)) => Check::new(
            "uv",
            Outcome::Pass,
            format!(
                "uv {} at {} ({})",
                u.version,
                u.path.display(),
                u.source.describe()
            ),
            None,
        ),
        Ok(None) => {
            let pinned = uv::pins().map(|p| p.version).unwrap_or_else(|_| "?".into());
            let mut detail = format!(
                "uv not found; the first install will bootstrap uv {pinned} with pip, or fall back to python -m venv + pip (slower)"
            );
            if !notes.is_empty() {
                detail.push_str(&format!(" [{}]", notes.join("; ")));
            }
            Check::new(
                "uv",
                Outcome::Warn,
                detail,
                Some("Install uv for faster installs: https://docs.astral.sh/uv/getting-started/installation/ (or `pip install uv`).".into()),
            )
        }
        Err(e) => Check::new("uv", Outcome::Fail, e.message, e.hints.first().cloned()),
    }
}

fn check_wheel(rt: &Runtime) -> Check {
    let result = rt.assets().and_then(|a| a.verify_wheel().map(|_| a));
    match result {
        Ok(a) => Check::new(
            "bundled wheel",
            Outcome::Pass,
            format!(
                "{} ({} bytes, sha256 {}) verified in {}",
                a.manifest.wheel.file,
                a.manifest.wheel.bytes,
                &a.manifest.wheel.sha256[..12],
                a.dir.display()
            ),
            None,
        ),
        Err(e) => Check::new(
            "bundled wheel",
            Outcome::Fail,
            e.message,
            e.hints.first().cloned(),
        ),
    }
}

fn check_runtime(rt: &Runtime) -> Check {
    let st = rt.status(&[Feature::Core]);
    let label = "managed runtime";
    match st.kind {
        StatusKind::Ready => {
            let Some(receipt) = &st.manifest else {
                return Check::new(label, Outcome::Fail, "ready without a receipt", None);
            };
            let req = abi::request("runtime.info", json!({}));
            match abi::oneshot(&receipt.python_path, &req, Duration::from_secs(120), None) {
                Ok((Reply::Ok(info), _)) => Check::new(
                    label,
                    Outcome::Pass,
                    format!(
                        "ready at {}: kaelio-ktx {}, features [{}], Python {}, installed with {}",
                        receipt.venv_dir.display(),
                        info["version"].as_str().unwrap_or("?"),
                        receipt.features.join(", "),
                        receipt.interpreter.version,
                        receipt.installer.name
                    ),
                    None,
                ),
                Ok((Reply::Err { code, message, .. }, _)) => Check::new(
                    label,
                    Outcome::Fail,
                    format!("runtime.info failed: {code}: {message}"),
                    Some("ktx runtime install --force".into()),
                ),
                Err(e) => Check::new(
                    label,
                    Outcome::Fail,
                    format!("the runtime does not start: {e}"),
                    Some("ktx runtime install --force".into()),
                ),
            }
        }
        StatusKind::Missing => Check::new(
            label,
            Outcome::Warn,
            format!(
                "not installed yet ({}); it installs on first use",
                st.layout.version_dir.display()
            ),
            Some("ktx runtime install".into()),
        ),
        StatusKind::Incomplete | StatusKind::Mismatched => Check::new(
            label,
            Outcome::Warn,
            format!("{}: {}", st.kind.as_str(), st.detail),
            Some("ktx runtime install".into()),
        ),
        StatusKind::Broken => Check::new(
            label,
            Outcome::Fail,
            format!("broken: {}", st.detail),
            Some("ktx runtime install".into()),
        ),
    }
}
