//! Finding uv, bootstrapping a pinned copy with pip, and the pins themselves.
//!
//! Discovery order: `KTX_UV` (used or refused, never skipped); `uv` on PATH at or above
//! [`MIN_UV_VERSION`]; a copy ktx bootstrapped earlier under `<root>/tools/uv/<version>/`;
//! else [`bootstrap`] one now: `python -m pip download --only-binary=:all: --no-deps
//! --require-hashes` of the pinned wheel for this platform (hashes in `uv-pins.json`, refreshed
//! with `cargo xtask refresh-uv-pins`), extract `uv` from the wheel's `.data/scripts/`, place it
//! atomically with mode 0755. Offline (`--find-links DIR`), the bootstrap is skipped when `DIR`
//! holds no wheel of the pinned version: pip could only fail. A bootstrap holds
//! `<root>/tools/uv-bootstrap.lock`, stages in `.bootstrap-<pid>-<random>/` and places the
//! binary through `.uv.tmp-<pid>-<random>`; what a killed bootstrap left is removed by the next
//! install (and by `ktx runtime prune`) once its process is gone.
//!
//! When the `uv` on PATH is a script (a pyenv shim, 50-150 ms per call), [`prefer_real_uv`]
//! swaps in the real binary next to the probed interpreter, when there is one.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{ErrorKind, RuntimeError};
use crate::fsutil::{absolute, remove_tree, sha256_file};
use crate::layout::{exe_name, non_empty_env, Layout};
use crate::log::InstallLog;
use crate::pep440::parse_release;
use crate::process::{installer_env, run_bounded, Limits};
use crate::python::{which, Interpreter};

/// The oldest uv ktx uses from PATH: 0.5.0 (`uv venv --no-project`, `UV_NO_PROGRESS`,
/// `UV_PYTHON_DOWNLOADS=never` and `name[extra] @ file://` all behave as ktx expects from there).
pub const MIN_UV_VERSION: [u64; 3] = [0, 5, 0];

/// The embedded pins file (`crates/ktx-runtime/uv-pins.json`).
pub const PINS_JSON: &str = include_str!("../uv-pins.json");

/// One acceptable wheel for a platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PinnedWheel {
    /// Wheel file name.
    pub file: String,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// The parsed pins file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UvPins {
    /// Always 1.
    pub schema_version: u32,
    /// The pinned uv version.
    pub version: String,
    /// Platform key -> wheels.
    pub platforms: BTreeMap<String, Vec<PinnedWheel>>,
}

/// The embedded pins.
pub fn pins() -> Result<UvPins, RuntimeError> {
    serde_json::from_str(PINS_JSON).map_err(|e| {
        RuntimeError::new(
            ErrorKind::Uv,
            format!("the embedded uv-pins.json is invalid: {e}"),
        )
    })
}

/// Where a uv came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UvSource {
    /// `KTX_UV`.
    Env,
    /// `uv` on PATH.
    Path,
    /// A copy bootstrapped earlier under `<root>/tools/uv/`.
    Bootstrapped,
    /// Bootstrapped during this run.
    BootstrappedNow,
}

impl UvSource {
    /// A short description for messages.
    pub fn describe(self) -> &'static str {
        match self {
            UvSource::Env => "KTX_UV",
            UvSource::Path => "PATH",
            UvSource::Bootstrapped => "bootstrapped by ktx",
            UvSource::BootstrappedNow => "bootstrapped by ktx just now",
        }
    }
}

/// A usable uv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uv {
    /// The binary.
    pub path: PathBuf,
    /// Its version, e.g. `0.13.8`.
    pub version: String,
    /// Where it came from.
    pub source: UvSource,
}

/// Runs `uv --version` and returns the version (`uv 0.13.8 (...)` -> `0.13.8`).
pub fn uv_version(path: &Path) -> Result<String, String> {
    let mut cmd = Command::new(path);
    cmd.arg("--version").env("NO_COLOR", "1");
    let out = run_bounded(&mut cmd, None, &Limits::new(Duration::from_secs(30)))
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if !out.success() {
        return Err(format!(
            "{} --version failed ({})",
            path.display(),
            out.describe_exit()
        ));
    }
    let text = out.stdout_text();
    text.split_whitespace()
        .nth(1)
        .filter(|v| parse_release(v).is_some())
        .map(str::to_string)
        .ok_or_else(|| format!("{} --version printed {:?}", path.display(), text.trim()))
}

fn at_least_min(version: &str) -> bool {
    let v = parse_release(version).unwrap_or_default();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    [get(0), get(1), get(2)] >= MIN_UV_VERSION
}

/// Finds an existing uv without downloading anything. `Ok(None)`: none; `Err`: `KTX_UV` is set
/// but unusable. `notes` collects what was skipped and why (for the log).
pub fn find_uv(layout: &Layout, notes: &mut Vec<String>) -> Result<Option<Uv>, RuntimeError> {
    if let Some(p) = non_empty_env(ktx_base::env::UV) {
        // Installer children run in the version dir: make a relative path absolute first.
        let path = if p.contains(['/', '\\']) {
            absolute(Path::new(&p))
        } else {
            PathBuf::from(&p)
        };
        return match uv_version(&path) {
            Ok(version) => Ok(Some(Uv {
                path,
                version,
                source: UvSource::Env,
            })),
            Err(e) => Err(RuntimeError::new(
                ErrorKind::Uv,
                format!("KTX_UV={p} cannot be used: {e}"),
            )
            .with_hint(
                "Point KTX_UV at a working uv binary, or unset it to let ktx find or bootstrap uv.",
            )),
        };
    }
    if let Some(path) = which("uv") {
        match uv_version(&path) {
            Ok(v) if at_least_min(&v) => {
                return Ok(Some(Uv {
                    path,
                    version: v,
                    source: UvSource::Path,
                }))
            }
            Ok(v) => notes.push(format!(
                "ignoring {} (uv {v} is older than the minimum {}.{}.{})",
                path.display(),
                MIN_UV_VERSION[0],
                MIN_UV_VERSION[1],
                MIN_UV_VERSION[2]
            )),
            Err(e) => notes.push(format!("ignoring {}: {e}", path.display())),
        }
    }
    if let Ok(p) = pins() {
        let path = layout.uv_tool_path(&p.version);
        // Never run a uv from a directory another user could have planted it in.
        if let Some(dir) = path.parent() {
            crate::trust::check(layout, dir).map_err(|u| crate::trust::error(layout, u))?;
        }
        if path.exists() {
            match uv_version(&path) {
                Ok(v) => {
                    return Ok(Some(Uv {
                        path,
                        version: v,
                        source: UvSource::Bootstrapped,
                    }))
                }
                Err(e) => notes.push(format!("ignoring bootstrapped {}: {e}", path.display())),
            }
        }
    }
    Ok(None)
}

/// Whether `path` is a script (starts with `#!`), like pyenv's shims, rather than a binary.
pub fn is_script(path: &Path) -> bool {
    let mut head = [0u8; 2];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head == b"#!")
}

/// When `uv` came from PATH and is a script (a pyenv shim costs 50-150 ms per call, and an
/// install calls uv twice more), prefers a real `uv` binary next to `python_exe` (the probed
/// interpreter's `sys.executable`, where `pip install uv` puts it) if it runs and is at least
/// [`MIN_UV_VERSION`]. Otherwise returns `found` unchanged. `notes` collects the decision.
pub fn prefer_real_uv(found: Uv, python_exe: &Path, notes: &mut Vec<String>) -> Uv {
    choose_real_uv(found, python_exe, notes, uv_version)
}

fn choose_real_uv(
    found: Uv,
    python_exe: &Path,
    notes: &mut Vec<String>,
    version_of: impl Fn(&Path) -> Result<String, String>,
) -> Uv {
    if found.source != UvSource::Path || !is_script(&found.path) {
        return found;
    }
    let Some(dir) = python_exe.parent() else {
        return found;
    };
    // `pip install uv` puts it next to a venv's interpreter, and in `Scripts\` next to a
    // base Windows interpreter.
    let Some(candidate) = [
        dir.join(exe_name("uv")),
        dir.join("Scripts").join(exe_name("uv")),
    ]
    .into_iter()
    .take(if cfg!(windows) { 2 } else { 1 })
    .find(|c| crate::python::is_executable(c)) else {
        return found;
    };
    if candidate == found.path || is_script(&candidate) {
        return found;
    }
    match version_of(&candidate) {
        Ok(v) if at_least_min(&v) => {
            notes.push(format!(
                "{} is a script (a shim?): using the uv binary {} next to the interpreter",
                found.path.display(),
                candidate.display()
            ));
            Uv {
                path: candidate,
                version: v,
                source: UvSource::Path,
            }
        }
        Ok(v) => {
            notes.push(format!(
                "not using {} (uv {v} is older than the minimum)",
                candidate.display()
            ));
            found
        }
        Err(e) => {
            notes.push(format!("not using {}: {e}", candidate.display()));
            found
        }
    }
}

/// `<root>/tools/uv-bootstrap.lock`: held by a bootstrap, so two never share the staging area
/// and a stale staging entry can be told from one in use. Outside `tools/uv/`, whose every
/// entry is a uv copy or staging to prune.
pub fn bootstrap_lock_path(layout: &Layout) -> PathBuf {
    layout.root().join("tools").join("uv-bootstrap.lock")
}
/// Prefix of a bootstrap's download dir `<tools>/uv/.bootstrap-<pid>-<random>/`.
pub const STAGING_PREFIX: &str = ".bootstrap-";
/// Prefix of the binary being placed `<tools>/uv/<version>/.uv.tmp-<pid>-<random>`.
pub const PART_PREFIX: &str = ".uv.tmp-";

/// If `name` is a bootstrap staging entry (`.bootstrap-*`, `.uv.tmp-*`), the pid of the
/// process that made it (`None` inside when the name carries none, e.g. a hand-made copy).
pub fn staging_owner(name: &str) -> Option<Option<u32>> {
    let rest = name
        .strip_prefix(STAGING_PREFIX)
        .or_else(|| name.strip_prefix(PART_PREFIX))?;
    Some(rest.split('-').next().and_then(|pid| pid.parse().ok()))
}

/// The staging entries under `<root>/tools/uv/` whose owner process is gone (a download dir
/// or a half-placed binary of a bootstrap that was killed), as (path, owner). Reads only; the
/// caller decides under [`bootstrap_lock_path`] whether to remove them.
pub fn staging_entries(layout: &Layout) -> Vec<(PathBuf, Option<u32>)> {
    let tools = layout.uv_tools_dir();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(&tools) else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(owner) = staging_owner(&name) {
            found.push((e.path(), owner));
        } else if !name.starts_with('.') && e.file_type().is_ok_and(|t| t.is_dir()) {
            // `<version>/`: a half-placed binary is inside it.
            for inner in fs::read_dir(e.path()).into_iter().flatten().flatten() {
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                if let Some(owner) = staging_owner(&inner_name) {
                    found.push((inner.path(), owner));
                }
            }
        }
    }
    found.sort();
    found
}

/// Removes a file, a directory tree, or a symlink (only the link).
pub(crate) fn remove_entry(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_tree(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the staging entries left by bootstraps whose process is gone. Call only while
/// holding [`bootstrap_lock_path`]. Returns what was removed.
fn remove_stale_staging(layout: &Layout, log: &InstallLog) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for (path, owner) in staging_entries(layout) {
        if owner.is_some_and(ktx_base::process::may_be_running) {
            continue; // an older ktx (which takes no lock) may be bootstrapping right now
        }
        match remove_entry(&path) {
            Ok(()) => {
                log.line(&format!(
                    "uv: removed {} left by an interrupted bootstrap",
                    path.display()
                ));
                removed.push(path);
            }
            Err(e) => log.line(&format!("uv: cannot remove {}: {e}", path.display())),
        }
    }
    removed
}

/// Removes what an interrupted uv bootstrap left under `<root>/tools/uv/` (a download of
/// ~17 MB, a half-placed binary) if no bootstrap is running now. Best-effort; every install
/// calls it, so an interrupted bootstrap leaves nothing behind after the next install.
pub fn clean_interrupted_bootstraps(layout: &Layout, log: &InstallLog) {
    let lock = bootstrap_lock_path(layout);
    if staging_entries(layout).is_empty() {
        return;
    }
    if let Ok(Some(_guard)) = crate::lock::try_lock(&lock) {
        remove_stale_staging(layout, log);
    }
}

/// An ordinary bootstrap failure (the caller falls back to pip).
fn uv_err(message: String) -> RuntimeError {
    RuntimeError::new(ErrorKind::Uv, message)
}

/// Downloads the pinned uv wheel for this platform with `python -m pip download
/// --require-hashes` (honouring pip's index configuration, or `find_links` offline), extracts
/// the `uv` binary and places it atomically at `<root>/tools/uv/<version>/uv`, under
/// [`bootstrap_lock_path`] and after removing what interrupted bootstraps left. An error of kind
/// [`ErrorKind::DiskFull`] means the disk is full (the caller must not fall back to pip);
/// any other error says why uv cannot be bootstrapped (the caller then falls back to pip).
pub fn bootstrap(
    layout: &Layout,
    python: &Interpreter,
    find_links: Option<&Path>,
    log: &InstallLog,
) -> Result<Uv, RuntimeError> {
    let pins = pins()?;
    // The interpreter's pip downloads the wheel, for the interpreter's platform (which may
    // not be ktx's own: an x86_64 Python under Rosetta, an x64 Python on Windows on Arm).
    let key = python.pins_key().ok_or_else(|| {
        uv_err(format!(
            "no pinned uv wheel for the interpreter's platform {} ({})",
            python.platform, python.machine
        ))
    })?;
    let wheels = pins
        .platforms
        .get(&key)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| uv_err(format!("no pinned uv wheel for platform {key}")))?;
    if let Some(dir) = find_links {
        // Offline, pip can only take uv from the wheelhouse: without a wheel of the pinned
        // version there, `pip download` is certain to fail (and costs ~0.75 s to say so).
        if !wheelhouse_has_uv(dir, &pins.version) {
            return Err(uv_err(format!(
                "the wheelhouse {} holds no uv-{}-*.whl to bootstrap uv from",
                dir.display(),
                pins.version
            )));
        }
    }
    let tools = layout.uv_tools_dir();
    crate::trust::ensure_dir(layout, &tools)?;
    let _guard = crate::lock::lock_with_timeout(
        &bootstrap_lock_path(layout),
        crate::lock::lock_timeout_from_env(),
        |pid| {
            log.line(&format!(
                "uv: waiting for another bootstrap{}",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ))
        },
    )?;
    // Another process may have placed it while we waited.
    let dest = layout.uv_tool_path(&pins.version);
    if dest.exists() {
        if let Ok(version) = uv_version(&dest) {
            return Ok(Uv {
                path: dest,
                version,
                source: UvSource::Bootstrapped,
            });
        }
    }
    remove_stale_staging(layout, log);
    // A fresh, unpredictable name (mkdir fails on an existing path); the pid lets a later run
    // tell a stale one from one in use. Removed on drop, so on every error path.
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{STAGING_PREFIX}{}-", std::process::id()))
        .tempdir_in(&tools)
        .map_err(|e| RuntimeError::io("create a staging directory in", &tools, &e))?;
    let result = bootstrap_in(
        layout,
        python,
        find_links,
        log,
        &pins.version,
        wheels,
        tmp.path(),
    );
    let staging = tmp.path().to_path_buf();
    let removed = tmp.close();
    match result {
        Err(mut e) if e.kind == ErrorKind::DiskFull => {
            e.message.push_str(&match removed {
                Ok(()) => format!(
                    "\nThe partial download {} was removed; {} now.",
                    staging.display(),
                    crate::disk::describe_free(&tools)
                ),
                Err(err) => format!(
                    "\nThe partial download {} could not be removed ({err}): remove it by hand.",
                    staging.display()
                ),
            });
            Err(e)
        }
        other => other,
    }
}

/// Whether `dir` holds a wheel of uv `version` (`uv-<version>-*.whl`, any platform: pip picks).
pub fn wheelhouse_has_uv(dir: &Path, version: &str) -> bool {
    let prefix = format!("uv-{version}-");
    let Ok(entries) = fs::read_dir(dir) else {
        // Unreadable: let pip try and report what is wrong.
        return true;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().to_ascii_lowercase();
        name.starts_with(&prefix) && name.ends_with(".whl")
    })
}

fn bootstrap_in(
    layout: &Layout,
    python: &Interpreter,
    find_links: Option<&Path>,
    log: &InstallLog,
    version: &str,
    wheels: &[PinnedWheel],
    tmp: &Path,
) -> Result<Uv, RuntimeError> {
    let req = tmp.join("requirements.txt");
    let mut text = format!("uv=={version}");
    for w in wheels {
        text.push_str(&format!(" \\\n    --hash=sha256:{}", w.sha256));
    }
    text.push('\n');
    fs::write(&req, text).map_err(|e| RuntimeError::io("write", &req, &e))?;
    let dl = tmp.join("download");
    let mut cmd = Command::new(&python.path);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        "--no-deps",
        "--require-hashes",
    ])
    .arg("--dest")
    .arg(&dl)
    .arg("-r")
    .arg(&req);
    if let Some(dir) = find_links {
        cmd.arg("--no-index").arg("--find-links").arg(dir);
    }
    cmd.current_dir(tmp);
    let env = installer_env(&mut cmd, false);
    let out = run_bounded(&mut cmd, None, &Limits::new(Duration::from_secs(600))).map_err(|e| {
        log.spawn_failed(&cmd, &e);
        if crate::disk::is_disk_full(&e) {
            return crate::disk::error("Bootstrapping uv: starting pip in", tmp, &e.to_string());
        }
        uv_err(format!("cannot run {} -m pip: {e}", python.path.display()))
    })?;
    log.command(&cmd, &env, &out);
    if !out.success() {
        let text = format!("{}\n{}", out.stdout_text(), out.stderr_text());
        if crate::disk::mentions_disk_full(&text) {
            return Err(crate::disk::error(
                &format!("Bootstrapping uv {version}: pip download into"),
                &layout.uv_tools_dir(),
                &crate::disk::disk_full_line(&text),
            ));
        }
        return Err(uv_err(format!(
            "pip download of uv {version} failed ({}): {}",
            out.describe_exit(),
            out.tail(3)
        )));
    }
    let wheel = fs::read_dir(&dl)
        .map_err(|e| RuntimeError::io("list", &dl, &e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| uv_err(format!("pip download left no wheel in {}", dl.display())))?;
    let (sha, _) = sha256_file(&wheel).map_err(|e| RuntimeError::io("hash", &wheel, &e))?;
    if !wheels.iter().any(|w| w.sha256 == sha) {
        return Err(uv_err(format!(
            "{} has sha256 {sha}, which is not pinned",
            wheel.display()
        )));
    }
    let dest_dir = crate::trust::ensure_dir(layout, &layout.uv_tools_dir().join(version))?;
    let dest = dest_dir.join(exe_name("uv"));
    // O_EXCL with a random name next to the destination (tagged with our pid, so cleanup can
    // tell a live bootstrap's file); removed on drop if not persisted.
    let prefix = format!("{PART_PREFIX}{}-", std::process::id());
    let mut part = ktx_base::fs::temp_file_in(&dest_dir, &prefix, "", 0o600)
        .map_err(|e| RuntimeError::io("create a temporary file in", &dest_dir, &e))?;
    let part_path = part.path().to_path_buf();
    extract_uv(&wheel, version, part.as_file_mut(), &part_path)?;
    ktx_base::fs::persist(part, &dest)
        .map_err(|e| RuntimeError::io("move uv into place at", &dest, &e))?;
    let got = uv_version(&dest).map_err(uv_err)?;
    log.line(&format!(
        "bootstrapped uv {got} at {} from {}",
        dest.display(),
        wheel.display()
    ));
    Ok(Uv {
        path: dest,
        version: got,
        source: UvSource::BootstrappedNow,
    })
}

/// Extracts `uv-<version>.data/scripts/uv[.exe]` from `wheel` into `out` (the file at `path`):
/// mode 0755, fsynced.
fn extract_uv(
    wheel: &Path,
    version: &str,
    out: &mut fs::File,
    path: &Path,
) -> Result<(), RuntimeError> {
    let file = fs::File::open(wheel).map_err(|e| RuntimeError::io("open", wheel, &e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| uv_err(format!("{} is not a wheel: {e}", wheel.display())))?;
    let want = format!("uv-{version}.data/scripts/{}", exe_name("uv"));
    let mut entry = zip
        .by_name(&want)
        .map_err(|e| uv_err(format!("{} has no {want}: {e}", wheel.display())))?;
    let mut buf = Vec::new();
    entry
        .read_to_end(&mut buf)
        .map_err(|e| uv_err(format!("cannot extract {want}: {e}")))?;
    out.write_all(&buf)
        .and_then(|_| out.sync_all())
        .map_err(|e| RuntimeError::io("write", path, &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // On the open file: the name is never looked up again.
        out.set_permissions(fs::Permissions::from_mode(0o755))
            .map_err(|e| RuntimeError::io("chmod", path, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_pins_cover_every_platform_with_real_hashes() {
        let p = pins().unwrap();
        assert_eq!(p.schema_version, 1);
        for key in [
            "linux-x86_64",
            "linux-aarch64",
            "macos-x86_64",
            "macos-aarch64",
            "windows-x86_64",
        ] {
            let wheels = p
                .platforms
                .get(key)
                .unwrap_or_else(|| panic!("no pins for {key}"));
            assert!(!wheels.is_empty());
            for w in wheels {
                assert!(w.file.starts_with(&format!("uv-{}-", p.version)));
                assert!(w.sha256.len() == 64 && w.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        assert!(at_least_min(&p.version));
    }

    #[cfg(unix)]
    fn uv_at(path: &Path, source: UvSource) -> Uv {
        Uv {
            path: path.to_path_buf(),
            version: "0.9.0".into(),
            source,
        }
    }

    #[cfg(unix)]
    fn write_exe(path: &Path, body: &[u8]) {
        use std::os::unix::fs::PermissionsExt;
        fs::write(path, body).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_shim_on_path_gives_way_to_the_uv_binary_next_to_the_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let shims = dir.path().join("shims");
        let bin = dir.path().join("versions/3.11/bin");
        fs::create_dir_all(&shims).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let shim = shims.join("uv");
        write_exe(&shim, b"#!/usr/bin/env bash\nexec pyenv exec uv \"$@\"\n");
        let real = bin.join("uv");
        write_exe(&real, b"\x7fELF not really, the version probe is faked");
        let python = bin.join("python3.11");
        let probe = |p: &Path| -> Result<String, String> {
            assert_eq!(p, real.as_path(), "only the candidate is probed");
            Ok("0.13.8".into())
        };
        let mut notes = Vec::new();
        let got = choose_real_uv(uv_at(&shim, UvSource::Path), &python, &mut notes, probe);
        assert_eq!(got.path, real);
        assert_eq!(got.version, "0.13.8");
        assert_eq!(got.source, UvSource::Path);
        assert!(notes[0].contains("is a script"), "{notes:?}");

        // Too old, or failing: keep the shim.
        let old = |_: &Path| -> Result<String, String> { Ok("0.4.0".into()) };
        let got = choose_real_uv(uv_at(&shim, UvSource::Path), &python, &mut notes, old);
        assert_eq!(got.path, shim);
        let broken = |_: &Path| -> Result<String, String> { Err("boom".into()) };
        let got = choose_real_uv(uv_at(&shim, UvSource::Path), &python, &mut notes, broken);
        assert_eq!(got.path, shim);

        // Not a script on PATH, or not from PATH (KTX_UV is an explicit choice): never probed.
        let never = |_: &Path| -> Result<String, String> { panic!("must not probe") };
        let binary_on_path = shims.join("uv-bin");
        write_exe(&binary_on_path, b"\x7fELF");
        let got = choose_real_uv(
            uv_at(&binary_on_path, UvSource::Path),
            &python,
            &mut notes,
            never,
        );
        assert_eq!(got.path, binary_on_path);
        let got = choose_real_uv(uv_at(&shim, UvSource::Env), &python, &mut notes, never);
        assert_eq!(got.path, shim);
        // No uv next to the interpreter: keep the shim.
        let elsewhere = dir.path().join("other/python3");
        let got = choose_real_uv(uv_at(&shim, UvSource::Path), &elsewhere, &mut notes, never);
        assert_eq!(got.path, shim);
        // A script next to the interpreter is no better.
        fs::write(&real, b"#!/bin/sh\n").unwrap();
        let got = choose_real_uv(uv_at(&shim, UvSource::Path), &python, &mut notes, never);
        assert_eq!(got.path, shim);
    }

    #[test]
    fn staging_names_carry_their_owner() {
        assert_eq!(staging_owner(".bootstrap-123-AbCd12"), Some(Some(123)));
        assert_eq!(staging_owner(".bootstrap-123"), Some(Some(123)));
        assert_eq!(staging_owner(".uv.tmp-77-x"), Some(Some(77)));
        assert_eq!(staging_owner(".uv.tmp-"), Some(None));
        assert_eq!(staging_owner("0.13.8"), None);
        assert_eq!(staging_owner("uv"), None);
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path(), "0.1.0");
        let tools = layout.uv_tools_dir();
        fs::create_dir_all(tools.join("0.13.8")).unwrap();
        fs::create_dir_all(tools.join(".bootstrap-5-a")).unwrap();
        fs::write(tools.join("0.13.8/.uv.tmp-6-b"), "").unwrap();
        fs::write(tools.join("0.13.8/uv"), "").unwrap();
        assert_eq!(
            staging_entries(&layout),
            vec![
                (tools.join(".bootstrap-5-a"), Some(5)),
                (tools.join("0.13.8/.uv.tmp-6-b"), Some(6)),
            ]
        );
    }

    #[test]
    fn wheelhouse_uv_detection() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!wheelhouse_has_uv(dir.path(), "0.13.8"));
        fs::write(
            dir.path()
                .join("uv-0.13.7-py3-none-manylinux_2_17_x86_64.whl"),
            b"",
        )
        .unwrap();
        fs::write(dir.path().join("uv-0.13.8.tar.gz"), b"").unwrap();
        assert!(!wheelhouse_has_uv(dir.path(), "0.13.8"));
        fs::write(
            dir.path()
                .join("uv-0.13.8-py3-none-manylinux_2_17_x86_64.whl"),
            b"",
        )
        .unwrap();
        assert!(wheelhouse_has_uv(dir.path(), "0.13.8"));
    }

    #[test]
    fn min_version() {
        assert!(at_least_min("0.5.0") && at_least_min("0.13.8") && at_least_min("1.0"));
        assert!(!at_least_min("0.4.30"));
    }
}
