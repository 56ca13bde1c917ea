//! `cargo xtask release-readiness [--json]`: read-only checks that the artifacts in dist/ are the
//! release they claim to be. Each check is `{id, status: pass|fail|warn|skip, detail}`; the
//! command exits 0 only when no check fails.
//!
//! Checks (ids are stable, tests and RELEASING.md name them):
//! `policy`, `versions`, `dist-tag`, `git-tag`, `artifacts-manifest`, `native-binary`,
//! `tarball-rebuild`, `tarball-size`, `repository-url`, `policy-mode`, `bundle-signature`.

use super::policy::{self, Policy, ReleaseMode};
use crate::dist_manifest::DistManifest;
use crate::npm_tarball::TarEntry;
use crate::version::{self, Versions};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Flags of `release-readiness`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON on stdout (`{ready, version, checks: [{id, status, detail}]}`).
    #[arg(long)]
    pub json: bool,
    /// The dist directory to check (default `<root>/dist`).
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
    /// The release policy to check (default `<root>/release-policy.json`). Only this report
    /// uses it: `publish` always uses `<root>/release-policy.json`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The ktx binary that was just built and packed: the tarball's native binary must be
    /// byte-identical to it (default `<target>/release/ktx`; when that does not exist the
    /// check is skipped, when an explicit PATH does not exist it fails).
    #[arg(long, value_name = "PATH")]
    pub native: Option<PathBuf>,
    /// The project root to read versions and sources from (default: this checkout).
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
}

/// The built binary the packed one is compared with.
#[derive(Debug, Clone)]
pub enum BuiltNative {
    /// Named by `--native`: it must exist.
    Given(PathBuf),
    /// `<target>/release/ktx`: compared when it exists (a dist/ downloaded from the job that
    /// built it has no build next to it), skipped otherwise.
    Default(PathBuf),
}

impl BuiltNative {
    /// The path compared with.
    pub fn path(&self) -> &Path {
        match self {
            BuiltNative::Given(p) | BuiltNative::Default(p) => p,
        }
    }
}

/// Where readiness reads from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Project root: Cargo.toml, npm-package/, python-runtime/, LICENSE, release-policy.json.
    pub root: PathBuf,
    /// The dist directory (manifest.json, npm/, python/).
    pub dist: PathBuf,
    /// The policy file.
    pub policy: PathBuf,
    /// The built ktx binary the packed one must equal.
    pub native: BuiltNative,
}

impl Inputs {
    /// Resolves flags against the current directory and the project root.
    pub fn from_flags(
        root: Option<&Path>,
        dist: Option<&Path>,
        policy: Option<&Path>,
        native: Option<&Path>,
    ) -> Inputs {
        let cwd = std::env::current_dir().unwrap_or_default();
        let root = root
            .map(|r| cwd.join(r))
            .unwrap_or_else(crate::project_root);
        let native = match native {
            Some(p) => BuiltNative::Given(cwd.join(p)),
            None => BuiltNative::Default(crate::workspace::ktx_binary_in(
                &crate::workspace::target_dir(&root),
                "release",
            )),
        };
        Inputs {
            dist: dist
                .map(|d| cwd.join(d))
                .unwrap_or_else(|| root.join("dist")),
            policy: policy
                .map(|p| cwd.join(p))
                .unwrap_or_else(|| root.join("release-policy.json")),
            native,
            root,
        }
    }
}

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Satisfied.
    Pass,
    /// Blocks the release.
    Fail,
    /// Worth reading; does not block.
    Warn,
    /// Not applicable here; does not block.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::Skip => "SKIP",
        }
    }
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable identifier (e.g. `versions`).
    pub id: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found, and for a failure how to fix it.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when no check failed.
    pub ready: bool,
    /// The workspace SemVer, when readable.
    pub version: Option<String>,
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The ids of failing checks.
    pub fn failing(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.id)
            .collect()
    }

    /// Human-readable lines: `PASS versions: ...`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            s.push_str(&format!("{} {}: {}\n", c.status.label(), c.id, c.detail));
        }
        s
    }
}

/// Runs `release-readiness`.
pub fn run(args: &Args) -> Result<()> {
    let inputs = Inputs::from_flags(
        args.root.as_deref(),
        args.dist.as_deref(),
        args.policy.as_deref(),
        args.native.as_deref(),
    );
    let report = evaluate(&inputs);
    crate::print_report(args.json, &report, Report::render)?;
    if report.ready {
        if !args.json {
            println!(
                "READY: {} in {}",
                report.version.as_deref().unwrap_or("?"),
                inputs.dist.display()
            );
        }
        Ok(())
    } else {
        bail!(
            "not ready: failing checks: {} (rebuild with `cargo xtask dist` after fixing; \
             RELEASING.md explains each check)",
            report.failing().join(", ")
        )
    }
}

/// The regular files of an npm `.tgz` (see [`crate::npm_tarball::read_files`]); an empty
/// archive is an error.
pub fn read_tarball(tgz: &[u8]) -> Result<BTreeMap<String, TarEntry>> {
    let files = crate::npm_tarball::read_files(tgz)?;
    if files.is_empty() {
        bail!("the archive is empty");
    }
    Ok(files)
}

/// Facts read once and shared by the checks; each is the value or why it could not be read.
/// Every file is read and parsed here, once per run: the checks only look at these.
struct Facts {
    versions: Result<Versions>,
    policy: Result<Policy>,
    /// `npm-package/package.json`.
    source_pj: Result<serde_json::Value>,
    tgz_path: Result<PathBuf>,
    tgz: Result<Vec<u8>>,
    tar: Result<BTreeMap<String, TarEntry>>,
    /// The tarball's `package/package.json`.
    tar_pj: Result<serde_json::Value>,
}

fn err_text(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

fn json_file(path: &Path) -> Result<serde_json::Value> {
    let text = crate::fsx::read_to_string(path)?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Evaluates every check. Never modifies `inputs.root` or `inputs.dist`.
pub fn evaluate(inputs: &Inputs) -> Report {
    let versions = version::versions(&inputs.root);
    let policy = Policy::load(&inputs.policy);
    let source_pj = json_file(&inputs.root.join("npm-package/package.json"));
    let tgz_path = tarball_path(inputs, &versions, &policy);
    let tgz = match &tgz_path {
        Ok(p) => crate::fsx::read(p).context("run `cargo xtask dist`"),
        Err(e) => Err(anyhow::anyhow!("{}", err_text(e))),
    };
    let tar = match &tgz {
        Ok(bytes) => read_tarball(bytes).with_context(|| match &tgz_path {
            Ok(p) => format!("cannot read {}", p.display()),
            Err(_) => "cannot read the tarball".into(),
        }),
        Err(e) => Err(anyhow::anyhow!("{}", err_text(e))),
    };
    let tar_pj = tar_json(&tar, "package.json");
    let facts = Facts {
        versions,
        policy,
        source_pj,
        tgz_path,
        tgz,
        tar,
        tar_pj,
    };

    let checks = vec![
        check_policy(inputs, &facts),
        check_versions(inputs, &facts),
        check_dist_tag(&facts),
        check_git_tag(inputs, &facts),
        check_artifacts_manifest(inputs, &facts),
        check_native_binary(inputs, &facts),
        check_tarball_rebuild(inputs, &facts),
        check_tarball_size(&facts),
        check_repository_url(&facts),
        check_policy_mode(&facts),
        check_bundle_signature(&inputs.dist),
    ];
    Report {
        ready: checks.iter().all(|c| c.status != Status::Fail),
        version: facts.versions.as_ref().ok().map(|v| v.semver.clone()),
        checks,
    }
}

/// The JSON file `rel` (without `package/`) of the read tarball.
fn tar_json(tar: &Result<BTreeMap<String, TarEntry>>, rel: &str) -> Result<serde_json::Value> {
    let tar = tar
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{}", err_text(e)))?;
    let file = tar
        .get(rel)
        .with_context(|| format!("the tarball has no package/{rel}"))?;
    serde_json::from_slice(&file.data).with_context(|| format!("package/{rel} is not valid JSON"))
}

/// `<dist>/npm/<name>-<version>.tgz`, named from the policy's package and Cargo's version.
fn tarball_path(
    inputs: &Inputs,
    versions: &Result<Versions>,
    policy: &Result<Policy>,
) -> Result<PathBuf> {
    let v = versions
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{}", err_text(e)))?;
    let name = match policy {
        Ok(p) => p.package_name().to_string(),
        Err(_) => crate::pack_npm::npm_package_name(&inputs.root)?,
    };
    Ok(inputs
        .dist
        .join("npm")
        .join(crate::npm_tarball::tarball_name(&name, &v.semver)))
}

fn check(id: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        id,
        status,
        detail: detail.into(),
    }
}

/// `bundle-signature`: every bundle in `<dist>/bundles/` verifies with the keys compiled into
/// ktx and is signed with a release key, not the development key. Skipped when dist/ holds no
/// bundle.
pub(crate) fn check_bundle_signature(dist: &Path) -> Check {
    const ID: &str = "bundle-signature";
    let dir = dist.join("bundles");
    let found = match ktx_bundle::find_bundles(&dir) {
        Ok(f) => f,
        Err(e) => return check(ID, Status::Fail, e.message),
    };
    if found.is_empty() {
        return check(ID, Status::Skip, format!("no bundle in {}", dir.display()));
    }
    let ring = ktx_bundle::Keyring::builtin();
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for b in &found {
        let id = format!("{}@{}", b.name, b.version);
        match ktx_bundle::verify_dir(&b.dir, &ring) {
            Ok(v) if v.development => bad.push(format!(
                "{id} is signed with the development key {} (set KTX_BUNDLE_SIGNING_KEY to the \
                 release key and rerun `cargo xtask bundle {}`; RELEASING.md)",
                v.key_id, b.name
            )),
            Ok(v) => ok.push(format!("{id} signed by {}", v.key_id)),
            Err(e) => bad.push(format!("{id} does not verify: {}", e.message)),
        }
    }
    if bad.is_empty() {
        check(ID, Status::Pass, ok.join("; "))
    } else {
        check(ID, Status::Fail, bad.join("; "))
    }
}

fn check_policy(inputs: &Inputs, f: &Facts) -> Check {
    match &f.policy {
        Ok(p) => check(
            "policy",
            Status::Pass,
            format!(
                "{} is valid (releaseMode {})",
                inputs.policy.display(),
                p.release_mode
            ),
        ),
        Err(e) => check("policy", Status::Fail, err_text(e)),
    }
}

/// Reads `Version:` from the METADATA of a wheel's bytes.
fn wheel_metadata_version(whl: &[u8]) -> Result<String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(whl)).context("not a zip archive")?;
    let mut text = None;
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).context("corrupt zip entry")?;
        let name = file
            .name()
            .context("zip entry with an unreadable name")?
            .to_string();
        if name.ends_with(".dist-info/METADATA") && name.matches('/').count() == 1 {
            let mut t = String::new();
            file.read_to_string(&mut t)
                .with_context(|| format!("cannot read {name}"))?;
            text = Some((name, t));
            break;
        }
    }
    let (name, text) = text.context("no <name>.dist-info/METADATA in the wheel")?;
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("{name} has no Version: header"))
}

/// The tarball path (without `package/`) of this host's native binary.
fn host_native_entry(tar: &BTreeMap<String, TarEntry>) -> Result<String> {
    let target = crate::pack_npm::host_npm_target()?;
    tar.keys()
        .find(|k| k.starts_with(&format!("native/{target}/ktx")))
        .cloned()
        .with_context(|| format!("the tarball has no native binary for this host ({target})"))
}

/// Writes the host's native binary from the tarball to a temp dir and runs `--version`.
fn native_version(tar: &BTreeMap<String, TarEntry>) -> Result<String> {
    let rel = host_native_entry(tar)?;
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let exe = tmp.path().join(rel.rsplit('/').next().unwrap_or("ktx"));
    std::fs::write(&exe, &tar[&rel].data)
        .with_context(|| format!("cannot write {}", exe.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", exe.display()))?;
    }
    let mut cmd = Command::new(&exe);
    cmd.arg("--version");
    let out = crate::proc::run(&mut cmd, Duration::from_secs(30))
        .with_context(|| format!("package/{rel} --version"))?;
    if !out.success() {
        bail!(
            "package/{rel} --version exited {:?}\n{}",
            out.code(),
            out.stderr_tail()
        );
    }
    Ok(out.stdout.trim().to_string())
}

fn check_versions(inputs: &Inputs, f: &Facts) -> Check {
    let id = "versions";
    let v = match &f.versions {
        Ok(v) => v,
        Err(e) => return check(id, Status::Fail, err_text(e)),
    };
    // (place, found or error, expected)
    let mut seen: Vec<(String, Result<String>, String)> = Vec::new();
    let sv = &v.semver;
    let pv = &v.pep440;
    let str_at = |val: &Result<serde_json::Value>, ptr: &str| -> Result<String> {
        match val {
            Ok(j) => j
                .pointer(ptr)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .with_context(|| {
                    format!(
                        "no string at `{}`",
                        ptr.trim_start_matches('/').replace('/', ".")
                    )
                }),
            Err(e) => Err(anyhow::anyhow!("{}", err_text(e))),
        }
    };
    seen.push((
        "npm-package/package.json version".into(),
        str_at(&f.source_pj, "/version"),
        sv.clone(),
    ));

    let dist = &inputs.dist;
    let py_manifest = json_file(&dist.join("python/manifest.json"));
    seen.push((
        "dist/python/manifest.json version".into(),
        str_at(&py_manifest, "/version"),
        pv.clone(),
    ));
    seen.push((
        "dist/python/manifest.json cliVersion".into(),
        str_at(&py_manifest, "/cliVersion"),
        sv.clone(),
    ));
    let wheel_version = str_at(&py_manifest, "/wheel/file").and_then(|file| {
        if file.contains('/') || file.contains("..") {
            bail!("wheel.file `{file}` must be a plain file name");
        }
        wheel_metadata_version(&crate::fsx::read(&dist.join("python").join(&file))?)
            .with_context(|| format!("dist/python/{file}"))
    });
    seen.push(("wheel METADATA Version".into(), wheel_version, pv.clone()));

    let dist_manifest = json_file(&dist.join("manifest.json"));
    seen.push((
        "dist/manifest.json version".into(),
        str_at(&dist_manifest, "/version"),
        sv.clone(),
    ));
    seen.push((
        "dist/manifest.json pep440Version".into(),
        str_at(&dist_manifest, "/pep440Version"),
        pv.clone(),
    ));

    seen.push((
        "tarball package/package.json version".into(),
        str_at(&f.tar_pj, "/version"),
        sv.clone(),
    ));
    let tar_py = tar_json(&f.tar, "python/manifest.json");
    seen.push((
        "tarball package/python/manifest.json version".into(),
        str_at(&tar_py, "/version"),
        pv.clone(),
    ));
    seen.push((
        "tarball package/python/manifest.json cliVersion".into(),
        str_at(&tar_py, "/cliVersion"),
        sv.clone(),
    ));
    let native = match &f.tar {
        Ok(tar) => native_version(tar),
        Err(e) => Err(anyhow::anyhow!("{}", err_text(e))),
    };
    seen.push((
        "packed native `ktx --version`".into(),
        native,
        format!("ktx {sv}"),
    ));

    let mut problems: Vec<String> = seen
        .iter()
        .filter_map(|(place, found, want)| match found {
            Ok(got) if got == want => None,
            Ok(got) => Some(format!("{place} is `{got}`, expected `{want}`")),
            Err(e) => Some(format!("{place}: {}", err_text(e))),
        })
        .collect();
    // The other places stamp-version writes: `ktx_daemon/_version.py` (what `runtime.info` and
    // the daemon's version handshake report) and the workspace members in Cargo.lock.
    // (npm.tag is the `dist-tag` check's.)
    let covered = [
        inputs.root.join("Cargo.toml"),
        inputs.root.join("npm-package/package.json"),
        inputs.root.join("release-policy.json"),
    ];
    match crate::stamp_version::disagreements(&inputs.root, sv, &covered) {
        Ok(found) => problems.extend(found.into_iter().map(|(_, msg)| msg)),
        Err(e) => problems.push(format!("sources: {}", err_text(&e))),
    }
    if problems.is_empty() {
        check(
            id,
            Status::Pass,
            format!(
                "Cargo.toml {sv} (PEP 440 {pv}) agrees with {} other places and with \
                 ktx_daemon/_version.py (and Cargo.lock when present)",
                seen.len()
            ),
        )
    } else {
        check(
            id,
            Status::Fail,
            format!(
                "Cargo.toml says {sv} (PEP 440 {pv}) but {}; run `cargo xtask stamp-version {sv}` then `cargo xtask dist`",
                problems.join("; ")
            ),
        )
    }
}

fn check_dist_tag(f: &Facts) -> Check {
    let id = "dist-tag";
    let (Ok(v), Ok(p)) = (&f.versions, &f.policy) else {
        return check(
            id,
            Status::Fail,
            "needs a readable version and a valid policy (see above)",
        );
    };
    let want = policy::expected_dist_tag(&v.semver);
    let kind = if want == "next" {
        "a prerelease"
    } else {
        "a stable version"
    };
    if p.npm.tag == want {
        check(
            id,
            Status::Pass,
            format!(
                "{} is {kind}: publishes under `{want}`, and npm.tag agrees",
                v.semver
            ),
        )
    } else {
        check(
            id,
            Status::Fail,
            format!(
                "{} is {kind}, which must publish under `{want}`, but the policy's npm.tag is `{}`; \
                 set npm.tag to `{want}` in release-policy.json",
                v.semver, p.npm.tag
            ),
        )
    }
}

fn check_git_tag(inputs: &Inputs, f: &Facts) -> Check {
    let id = "git-tag";
    let Ok(v) = &f.versions else {
        return check(
            id,
            Status::Fail,
            "needs a readable version (see `versions`)",
        );
    };
    let want = format!("v{}", v.semver);
    let mut problems = Vec::new();
    let mut found = Vec::new();
    if std::env::var("GITHUB_REF_TYPE").as_deref() == Ok("tag") {
        let name = std::env::var("GITHUB_REF_NAME").unwrap_or_default();
        found.push(format!("GITHUB_REF_NAME {name}"));
        if name != want {
            problems.push(format!("the workflow runs for tag `{name}`"));
        }
    }
    // Only the root's own checkout counts (a copy inside another repository is not tagged).
    let mut top = Command::new("git");
    top.arg("-C")
        .arg(&inputs.root)
        .args(["rev-parse", "--show-toplevel"]);
    let is_top = crate::proc::run(&mut top, Duration::from_secs(30))
        .ok()
        .filter(|o| o.success())
        .and_then(|o| std::fs::canonicalize(o.stdout.trim()).ok())
        .is_some_and(|t| std::fs::canonicalize(&inputs.root).is_ok_and(|r| r == t));
    if !is_top && found.is_empty() {
        return check(
            id,
            Status::Skip,
            format!(
                "{} is not the top of a git checkout; no tag to compare",
                inputs.root.display()
            ),
        );
    }
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(&inputs.root)
        .args(["tag", "--points-at", "HEAD", "--list", "v*"]);
    match crate::proc::run(&mut cmd, Duration::from_secs(30)) {
        Ok(_) if !is_top => {}
        Ok(out) if out.success() => {
            for tag in out.stdout.lines().map(str::trim).filter(|t| !t.is_empty()) {
                found.push(format!("HEAD tag {tag}"));
                if tag != want {
                    problems.push(format!("HEAD is tagged `{tag}`"));
                }
            }
        }
        Ok(out) if found.is_empty() => {
            return check(
                id,
                Status::Skip,
                format!(
                    "{} is not a git checkout ({})",
                    inputs.root.display(),
                    out.stderr.trim()
                ),
            );
        }
        Ok(_) => {}
        Err(e) if found.is_empty() => {
            return check(id, Status::Skip, format!("git unavailable: {e:#}"))
        }
        Err(_) => {}
    }
    if !problems.is_empty() {
        return check(
            id,
            Status::Fail,
            format!(
                "{} but the version is {} (expected tag `{want}`); tag the commit whose Cargo.toml \
                 says the version, or stamp the version to match the tag",
                problems.join(" and "),
                v.semver
            ),
        );
    }
    if found.is_empty() {
        check(
            id,
            Status::Skip,
            format!("HEAD carries no v* tag; nothing to compare with `{want}`"),
        )
    } else {
        check(id, Status::Pass, format!("{} = `{want}`", found.join(", ")))
    }
}

fn check_artifacts_manifest(inputs: &Inputs, f: &Facts) -> Check {
    let id = "artifacts-manifest";
    let result = (|| -> Result<(String, Vec<String>)> {
        let manifest = DistManifest::load(&inputs.dist)?;
        let paths = manifest.verify(&inputs.dist)?;
        let tgz = f
            .tgz_path
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{}", err_text(e)))?;
        let npm = manifest.artifact("npm")?;
        if inputs.dist.join(&npm.path) != *tgz {
            bail!(
                "dist/manifest.json lists the npm tarball as `{}`, expected {}",
                npm.path,
                tgz.display()
            );
        }
        // The bytes every other check inspected (read once) must be the ones the manifest
        // describes, not just whatever the file holds when `verify` re-reads it.
        if let Ok(inspected) = &f.tgz {
            let sha256 = crate::fsx::sha256_hex(inspected);
            if sha256 != npm.sha256 || crate::fsx::sha512_integrity(inspected) != npm.integrity {
                bail!(
                    "{} changed while it was being checked (sha256 {sha256} when first read, \
                     {} in dist/manifest.json); something is writing to dist/: stop it and \
                     rebuild with `cargo xtask dist`",
                    tgz.display(),
                    npm.sha256
                );
            }
        }
        let sha_file = PathBuf::from(format!("{}.sha256", tgz.display()));
        let line = crate::fsx::read_to_string(&sha_file)?;
        let file_name = tgz
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let want = format!("{}  {file_name}", npm.sha256);
        if line.trim_end() != want {
            bail!(
                "{} says `{}`, expected `{want}`",
                sha_file.display(),
                line.trim_end()
            );
        }
        let detail = format!(
            "{} artifacts re-hashed (size, sha256, sha512 integrity) and match; {} agrees",
            paths.len(),
            sha_file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        // Files next to the artifacts that the manifest does not account for.
        let mut extra = Vec::new();
        for sub in ["npm", "python"] {
            let Ok(entries) = std::fs::read_dir(inputs.dist.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let known = paths.contains(&p)
                    || p == sha_file
                    || p == inputs.dist.join("python/manifest.json");
                if !known {
                    extra.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        extra.sort();
        Ok((detail, extra))
    })();
    match result {
        Ok((d, extra)) if !extra.is_empty() => check(
            id,
            Status::Warn,
            format!(
                "{d}; but dist/ also holds files the manifest does not list: {}",
                extra.join(", ")
            ),
        ),
        Ok((d, _)) => check(id, Status::Pass, d),
        Err(e) => check(id, Status::Fail, err_text(&e)),
    }
}

fn check_native_binary(inputs: &Inputs, f: &Facts) -> Check {
    let id = "native-binary";
    let built = inputs.native.path();
    let result = (|| -> Result<Option<String>> {
        let tar = f
            .tar
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{}", err_text(e)))?;
        let rel = host_native_entry(tar)?;
        let data = match std::fs::read(built) {
            Ok(d) => d,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && matches!(inputs.native, BuiltNative::Default(_)) =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot read the built binary {} to compare with package/{rel}",
                        built.display()
                    )
                })
            }
        };
        let packed = crate::fsx::sha256_hex(&tar[&rel].data);
        let ours = crate::fsx::sha256_hex(&data);
        if packed != ours {
            bail!(
                "package/{rel} (sha256 {packed}) is not the binary just built at {} (sha256 \
                 {ours}): the tarball was packed from another build; run `cargo xtask dist` \
                 (it builds and packs in one go), or pass --native with the binary that was packed",
                built.display()
            );
        }
        Ok(Some(format!(
            "package/{rel} is byte-identical to {} (sha256 {ours})",
            built.display()
        )))
    })();
    match result {
        Ok(Some(d)) => check(id, Status::Pass, d),
        Ok(None) => check(
            id,
            Status::Skip,
            format!(
                "no built binary at {} to compare with (e.g. dist/ downloaded from the job that \
                 built it); pass --native PATH to compare",
                built.display()
            ),
        ),
        Err(e) => check(id, Status::Fail, err_text(&e)),
    }
}

/// The signed bundles the tarball ships (`bundles/...`), written under `tmp/bundles` for a
/// rebuild (they are built from a downloaded wheel, not from sources); `None` when it ships
/// none.
fn shipped_bundles(tar: &BTreeMap<String, TarEntry>, tmp: &Path) -> Result<Option<PathBuf>> {
    let mut any = false;
    for (rel, file) in tar.iter().filter(|(k, _)| k.starts_with("bundles/")) {
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            bail!("the tarball has an unsafe path package/{rel}");
        }
        let path = tmp.join(rel);
        crate::fsx::create_dir_all(path.parent().unwrap_or(tmp))?;
        std::fs::write(&path, &file.data)
            .with_context(|| format!("cannot write {}", path.display()))?;
        any = true;
    }
    Ok(any.then(|| tmp.join("bundles")))
}

/// The largest npm tarball a release may be: five platforms' binaries, the wheel and the
/// `lang-python` bundle (issue 16's budget).
pub const MAX_TARBALL_BYTES: u64 = 16_000_000;

/// `tarball-size`: the npm tarball is at most [`MAX_TARBALL_BYTES`].
fn check_tarball_size(f: &Facts) -> Check {
    const ID: &str = "tarball-size";
    match &f.tgz {
        Ok(bytes) if bytes.len() as u64 <= MAX_TARBALL_BYTES => check(
            ID,
            Status::Pass,
            format!("{} bytes (budget {MAX_TARBALL_BYTES})", bytes.len()),
        ),
        Ok(bytes) => check(
            ID,
            Status::Fail,
            format!(
                "{} bytes, over the budget of {MAX_TARBALL_BYTES}: ship fewer or smaller files",
                bytes.len()
            ),
        ),
        Err(e) => check(ID, Status::Fail, err_text(e)),
    }
}

fn check_tarball_rebuild(inputs: &Inputs, f: &Facts) -> Check {
    let id = "tarball-rebuild";
    let result = (|| -> Result<String> {
        let tar = f
            .tar
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{}", err_text(e)))?;
        let original = f
            .tgz
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{}", err_text(e)))?;
        let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
        // The native binaries cannot be rebuilt bit-for-bit by cargo, so the packed ones are
        // reused (their sha256 is recorded in package.json, which is rebuilt from sources).
        let mut native = Vec::new();
        for (rel, file) in tar.iter().filter(|(k, _)| k.starts_with("native/")) {
            let target = rel.split('/').nth(1).unwrap_or_default().to_string();
            let path = tmp.path().join("native").join(&target).join("ktx");
            crate::fsx::create_dir_all(path.parent().unwrap_or(tmp.path()))?;
            std::fs::write(&path, &file.data)
                .with_context(|| format!("cannot write {}", path.display()))?;
            native.push((target, path));
        }
        let packed = crate::pack_npm::pack(&crate::pack_npm::PackInputs {
            root: inputs.root.clone(),
            dist: tmp.path().join("dist"),
            native,
            epoch: crate::wheel::source_date_epoch_from_env()?,
            bundles: shipped_bundles(tar, tmp.path())?,
        })
        .context("the rebuild failed")?;
        let rebuilt = crate::fsx::read(&packed.tgz)?;
        if rebuilt == *original {
            return Ok(format!(
                "repacked from {} + the packed native binary into a temporary directory: byte-identical ({} bytes)",
                inputs.root.display(),
                rebuilt.len()
            ));
        }
        let theirs = read_tarball(&rebuilt)?;
        let mut differing: Vec<String> = theirs
            .iter()
            .filter(|(k, v)| {
                tar.get(*k)
                    .map(|o| o.data != v.data || o.mode != v.mode)
                    .unwrap_or(true)
            })
            .map(|(k, _)| format!("package/{k}"))
            .collect();
        differing.extend(
            tar.keys()
                .filter(|k| !theirs.contains_key(*k))
                .map(|k| format!("package/{k} (extra)")),
        );
        let what = if differing.is_empty() {
            "same files, different archive bytes".to_string()
        } else {
            format!("differing entries: {}", differing.join(", "))
        };
        bail!(
            "a rebuild from the sources differs from the tarball in dist/ ({what}); the tarball \
             was altered or is stale: run `cargo xtask dist` (with the same SOURCE_DATE_EPOCH)"
        )
    })();
    match result {
        Ok(d) => check(id, Status::Pass, d),
        Err(e) => check(id, Status::Fail, err_text(&e)),
    }
}

/// `owner/repo` of a package.json `repository` (string or `{url}`), GitHub forms only.
pub fn github_slug(repository: &serde_json::Value) -> Option<String> {
    let url = match repository {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Object(m) => m.get("url")?.as_str()?,
        _ => return None,
    };
    let u = url.trim();
    let rest = [
        "git+https://github.com/",
        "https://github.com/",
        "git+ssh://git@github.com/",
        "git://github.com/",
        "github:",
    ]
    .iter()
    .find_map(|p| u.strip_prefix(p))
    .or_else(|| (!u.contains(':') && u.matches('/').count() == 1).then_some(u))?;
    let slug = rest.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = slug.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(r), None) if !o.is_empty() && !r.is_empty() => Some(slug.to_string()),
        _ => None,
    }
}

fn check_repository_url(f: &Facts) -> Check {
    let id = "repository-url";
    let mut slugs = Vec::new();
    let mut problems = Vec::new();
    for (place, pj) in [
        ("npm-package/package.json", &f.source_pj),
        ("tarball package/package.json", &f.tar_pj),
    ] {
        match pj {
            Err(e) => problems.push(format!("{place}: {}", err_text(e))),
            Ok(j) => match j.get("repository") {
                None => problems.push(format!("{place} has no `repository`")),
                Some(r) => match github_slug(r) {
                    Some(s) => slugs.push((place, s)),
                    None => problems.push(format!(
                        "{place} `repository` {r} is not a GitHub repository URL"
                    )),
                },
            },
        }
    }
    let github = std::env::var("GITHUB_REPOSITORY")
        .ok()
        .filter(|s| !s.is_empty());
    if let Some(gh) = &github {
        for (place, s) in &slugs {
            if !s.eq_ignore_ascii_case(gh) {
                problems.push(format!(
                    "{place} names `{s}` but GITHUB_REPOSITORY is `{gh}` (npm provenance would fail with E422)"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return check(
            id,
            Status::Fail,
            format!(
                "{}; set \"repository\": {{\"type\": \"git\", \"url\": \"git+https://github.com/<owner>/<repo>.git\"}} \
                 in npm-package/package.json and run `cargo xtask dist`",
                problems.join("; ")
            ),
        );
    }
    let slug = slugs.first().map(|(_, s)| s.clone()).unwrap_or_default();
    match github {
        Some(gh) => check(
            id,
            Status::Pass,
            format!("repository.url names `{slug}` = GITHUB_REPOSITORY `{gh}`"),
        ),
        None => check(
            id,
            Status::Pass,
            format!("repository.url names `{slug}` (GITHUB_REPOSITORY unset: not compared)"),
        ),
    }
}

fn check_policy_mode(f: &Facts) -> Check {
    let id = "policy-mode";
    let Ok(p) = &f.policy else {
        return check(id, Status::Fail, "needs a valid policy (see `policy`)");
    };
    let mut problems = p.mode_violations();
    let name = p.package_name();
    match f
        .source_pj
        .as_ref()
        .ok()
        .and_then(|j| j.get("name"))
        .and_then(|n| n.as_str())
    {
        Some(n) if n == name => {}
        Some(n) => problems.push(format!(
            "npm.packages[0] is `{name}` but npm-package/package.json names `{n}`"
        )),
        None => problems.push("npm-package/package.json has no `name`".into()),
    }
    if f.tar.is_ok() {
        let packed_name = f
            .tar_pj
            .as_ref()
            .ok()
            .and_then(|j| j.get("name").and_then(|n| n.as_str()).map(str::to_string));
        if packed_name.as_deref() != Some(name) {
            problems.push(format!(
                "the tarball's package.json names {packed_name:?}, but npm.packages[0] is `{name}`"
            ));
        }
    }
    if !problems.is_empty() {
        return check(
            id,
            Status::Fail,
            format!("{}; fix release-policy.json", problems.join("; ")),
        );
    }
    let what = match p.release_mode {
        ReleaseMode::CiArtifactOnly => {
            "artifacts only: `publish --live` is refused (npm.publish false)"
        }
        ReleaseMode::NpmPublicReleaseReady => "npm.publish true and every required gate listed",
    };
    check(
        id,
        Status::Pass,
        format!("{}: {what}; package `{name}`", p.release_mode),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn github_slugs() {
        for (repo, want) in [
            (
                json!({"type": "git", "url": "git+https://github.com/kaelio/ktx.git"}),
                Some("kaelio/ktx"),
            ),
            (json!("https://github.com/kaelio/ktx"), Some("kaelio/ktx")),
            (json!("github:kaelio/ktx"), Some("kaelio/ktx")),
            (json!("kaelio/ktx"), Some("kaelio/ktx")),
            (json!({"url": "https://gitlab.com/a/b"}), None),
            (json!({"url": ""}), None),
            (json!(3), None),
        ] {
            assert_eq!(github_slug(&repo).as_deref(), want, "{repo}");
        }
    }
}
