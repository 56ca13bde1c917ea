//! The wheel writer: builds the pure-Python `py3-none-any` wheel of `python-runtime/` in memory,
//! deterministically (sorted entries, `.dist-info` last, every zip header field set explicitly).

use crate::pyproject::{self, Project};
use crate::version::{self, Versions};
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

/// The generator recorded in `WHEEL`.
const GENERATOR: &str = concat!("ktx-xtask ", env!("CARGO_PKG_VERSION"));

/// A wheel built in memory, with what the asset manifest records about it.
#[derive(Debug, Clone)]
pub struct BuiltWheel {
    /// File name, e.g. `kaelio_ktx-0.1.0rc0-py3-none-any.whl`.
    pub file_name: String,
    /// The wheel's bytes.
    pub bytes: Vec<u8>,
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256: String,
    /// Distribution name as written in pyproject (`kaelio-ktx`).
    pub dist_name: String,
    /// The versions it was stamped with.
    pub versions: Versions,
    /// `requires-python` from pyproject.
    pub requires_python: Option<String>,
}

/// Reads `SOURCE_DATE_EPOCH` (seconds since 1970 UTC); unset or empty means none.
pub fn source_date_epoch_from_env() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if s.trim().is_empty() => Ok(None),
        Ok(s) => s.trim().parse::<u64>().map(Some).with_context(|| {
            format!("SOURCE_DATE_EPOCH=`{s}` is not a whole number of seconds since 1970; unset it or fix it")
        }),
        Err(_) => Ok(None),
    }
}

/// The zip timestamp for `epoch`: its UTC date and time (2-second DOS resolution), clamped to
/// 1980-01-01 00:00:00 (the zip format's floor) when earlier or absent.
pub fn zip_time(epoch: Option<u64>) -> Result<DateTime> {
    let Some(epoch) = epoch else {
        return Ok(DateTime::default());
    };
    let t = ktx_base::time::UtcParts::from_unix(epoch);
    if t.year < 1980 {
        return Ok(DateTime::default());
    }
    let year = u16::try_from(t.year)
        .ok()
        .filter(|y| *y <= 2107)
        .with_context(|| {
            format!("SOURCE_DATE_EPOCH={epoch} is after 2107, which a zip timestamp cannot hold")
        })?;
    // Calendar fields are in range (month 1-12, day 1-31, hour 0-23...): they fit a u8.
    DateTime::from_date_and_time(
        year,
        t.month as u8,
        t.day as u8,
        t.hour as u8,
        t.minute as u8,
        t.second as u8,
    )
    .map_err(|e| anyhow::anyhow!("SOURCE_DATE_EPOCH={epoch} gives an invalid zip time: {e}"))
}

/// The wheel's distribution name component: runs of `-_.` become `_`, lower case.
pub fn wheel_name_component(name: &str) -> String {
    pyproject::normalize(name).replace('-', "_")
}

/// Collects the files under `src` (relative `/`-separated paths, sorted bytewise), skipping
/// `__pycache__/`, `*.egg-info/`, `*.pyc` and `*.pyo`.
fn package_files(src: &Path) -> Result<Vec<(String, PathBuf)>> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                bail!("{}: file name is not UTF-8; rename it", path.display());
            };
            let rel_path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("cannot stat {}", path.display()))?;
            if meta.is_dir() {
                if name == "__pycache__" || name.ends_with(".egg-info") {
                    continue;
                }
                walk(&path, &rel_path, out)?;
            } else if !(name.ends_with(".pyc") || name.ends_with(".pyo")) {
                if rel_path.contains([',', '"', '\n', '\r']) {
                    bail!(
                        "{}: a wheel path may not contain `,`, `\"` or newlines; rename it",
                        path.display()
                    );
                }
                out.push((rel_path, path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(src, "", &mut out)?;
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if out.is_empty() {
        bail!("{} holds no files to package", src.display());
    }
    Ok(out)
}

fn record_hash(data: &[u8]) -> String {
    format!(
        "sha256={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data))
    )
}

/// Adds `and extra == "<extra>"` to a PEP 508 requirement's marker.
fn with_extra_marker(req: &str, extra: &str) -> String {
    match req.split_once(';') {
        Some((spec, marker)) if !marker.trim().is_empty() => {
            format!(
                "{}; ({}) and extra == \"{extra}\"",
                spec.trim_end(),
                marker.trim()
            )
        }
        Some((spec, _)) => format!("{}; extra == \"{extra}\"", spec.trim_end()),
        None => format!("{}; extra == \"{extra}\"", req.trim_end()),
    }
}

/// Renders the core metadata (`METADATA`, version 2.1).
pub fn metadata(project: &Project, pep440: &str) -> String {
    let mut m = String::new();
    m.push_str("Metadata-Version: 2.1\n");
    m.push_str(&format!("Name: {}\n", project.name));
    m.push_str(&format!("Version: {pep440}\n"));
    if let Some(s) = &project.summary {
        m.push_str(&format!("Summary: {}\n", s.replace('\n', " ")));
    }
    if let Some(l) = &project.license {
        // Continuation lines keep a multi-line license text inside the header field.
        m.push_str(&format!(
            "License: {}\n",
            l.trim_end().replace('\n', "\n        ")
        ));
    }
    if let Some(r) = &project.requires_python {
        m.push_str(&format!("Requires-Python: {r}\n"));
    }
    for dep in &project.dependencies {
        m.push_str(&format!("Requires-Dist: {dep}\n"));
    }
    for (extra, reqs) in &project.extras {
        for req in reqs {
            m.push_str(&format!(
                "Requires-Dist: {}\n",
                with_extra_marker(req, extra)
            ));
        }
    }
    for (extra, _) in &project.extras {
        m.push_str(&format!("Provides-Extra: {extra}\n"));
    }
    if let Some((text, content_type)) = &project.readme {
        m.push_str(&format!("Description-Content-Type: {content_type}\n\n"));
        m.push_str(text);
        if !text.ends_with('\n') {
            m.push('\n');
        }
    }
    m
}

fn entry_points_txt(project: &Project) -> Option<String> {
    if project.entry_points.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (group, eps) in &project.entry_points {
        out.push_str(&format!("[{group}]\n"));
        for (name, target) in eps {
            out.push_str(&format!("{name} = {target}\n"));
        }
        out.push('\n');
    }
    Some(out)
}

/// Builds the wheel of `<root>/python-runtime` with the version of `<root>/Cargo.toml`,
/// stamping every entry with `epoch` (see [`zip_time`]).
pub fn build(root: &Path, epoch: Option<u64>) -> Result<BuiltWheel> {
    let versions = version::versions(root)?;
    let runtime = root.join("python-runtime");
    let project = pyproject::load(&runtime.join("pyproject.toml"))?;
    let files = package_files(&runtime.join("src"))?;
    let mtime = zip_time(epoch)?;

    let stem = format!(
        "{}-{}",
        wheel_name_component(&project.name),
        versions.pep440
    );
    let dist_info = format!("{stem}.dist-info");
    let file_name = format!("{stem}-py3-none-any.whl");

    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for (rel, path) in &files {
        if rel.starts_with(&dist_info) {
            bail!(
                "{}: the source tree may not hold a {dist_info} directory",
                path.display()
            );
        }
        entries.push((rel.clone(), crate::fsx::read(path)?));
    }
    let mut meta_files = vec![
        ("METADATA".to_string(), metadata(&project, &versions.pep440).into_bytes()),
        (
            "WHEEL".to_string(),
            format!(
                "Wheel-Version: 1.0\nGenerator: {GENERATOR}\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            )
            .into_bytes(),
        ),
    ];
    if let Some(ep) = entry_points_txt(&project) {
        meta_files.push(("entry_points.txt".to_string(), ep.into_bytes()));
    }
    meta_files.sort();
    for (name, data) in meta_files {
        entries.push((format!("{dist_info}/{name}"), data));
    }
    let mut record = String::new();
    for (name, data) in &entries {
        record.push_str(&format!("{name},{},{}\n", record_hash(data), data.len()));
    }
    let record_name = format!("{dist_info}/RECORD");
    record.push_str(&format!("{record_name},,\n"));
    entries.push((record_name, record.into_bytes()));

    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(mtime)
        .system(System::Unix)
        .unix_permissions(0o644)
        .large_file(false);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in &entries {
        zip.start_file(name.as_str(), options)
            .and_then(|()| zip.write_all(data).map_err(Into::into))
            .with_context(|| format!("cannot add {name} to the wheel"))?;
    }
    let bytes = zip
        .finish()
        .context("cannot finish the wheel's zip archive")?
        .into_inner();
    Ok(BuiltWheel {
        sha256: crate::fsx::sha256_hex(&bytes),
        file_name,
        bytes,
        dist_name: project.name,
        versions,
        requires_python: project.requires_python,
    })
}

/// Renders the python dir's `manifest.json` for `wheel` (pretty, trailing newline), as the
/// runtime's own type: the one definition of that contract is
/// [`ktx_runtime::AssetManifest`], which the installer reads back.
pub fn asset_manifest(wheel: &BuiltWheel) -> Result<Vec<u8>> {
    let requires_python = wheel.requires_python.clone().context(
        "python-runtime/pyproject.toml has no [project] requires-python: the runtime needs it to \
         pick an interpreter",
    )?;
    let m = ktx_runtime::AssetManifest {
        schema_version: 1,
        distribution_name: wheel.dist_name.clone(),
        version: wheel.versions.pep440.clone(),
        cli_version: wheel.versions.semver.clone(),
        requires_python,
        wheel: ktx_runtime::assets::WheelEntry {
            file: wheel.file_name.clone(),
            sha256: wheel.sha256.clone(),
            bytes: wheel.bytes.len() as u64,
        },
    };
    let mut out = serde_json::to_vec_pretty(&m).context("cannot render manifest.json")?;
    out.push(b'\n');
    Ok(out)
}

/// The files of a python dir for `wheel` under `dir`: the wheel, then `manifest.json`.
pub fn asset_dir_files(wheel: &BuiltWheel, dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    Ok(vec![
        (dir.join(&wheel.file_name), wheel.bytes.clone()),
        (dir.join("manifest.json"), asset_manifest(wheel)?),
    ])
}

/// Writes the python dir (wheel + manifest.json, each via temp file + rename) into `dir`, and
/// removes older wheels of the same distribution there.
pub fn write_asset_dir(wheel: &BuiltWheel, dir: &Path) -> Result<()> {
    crate::fsx::write_all_atomic(&asset_dir_files(wheel, dir)?)?;
    remove_stale_wheels(wheel, dir)
}

/// Removes wheels of `wheel`'s distribution in `dir` other than `wheel` itself.
pub fn remove_stale_wheels(wheel: &BuiltWheel, dir: &Path) -> Result<()> {
    let prefix = format!("{}-", wheel_name_component(&wheel.dist_name));
    crate::fsx::remove_stale(dir, |n| {
        n.starts_with(&prefix) && n.ends_with(".whl") && n != wheel.file_name
    })
}

#[cfg(test)]
mod tests;
