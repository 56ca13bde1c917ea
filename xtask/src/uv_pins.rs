//! `cargo xtask refresh-uv-pins [--version X] [--check]`: fetches the sha256 of every uv wheel of
//! one release from the package index and rewrites `crates/ktx-runtime/uv-pins.json`, the pins
//! ktx uses to bootstrap uv with `pip download --require-hashes`.
//!
//! Source: the PyPI JSON API (`https://pypi.org/pypi/uv/<ver>/json`); when that is unavailable,
//! the simple index (`$PIP_INDEX_URL`, else `https://pypi.org/simple`), whose links carry
//! `#sha256=` fragments. Downloads go through `curl` (honours proxies and `SSL_CERT_FILE`/
//! `CURL_CA_BUNDLE`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Flags of `refresh-uv-pins`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// uv version to pin (default: the version already pinned).
    #[arg(long)]
    pub version: Option<String>,
    /// Do not write: fail if the file differs from what the index says.
    #[arg(long)]
    pub check: bool,
}

/// One pinned wheel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedWheel {
    /// Wheel file name.
    pub file: String,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// The pins file (same schema `ktx-runtime` reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinsFile {
    /// Always 1.
    pub schema_version: u32,
    /// Always `uv`.
    pub package: String,
    /// The pinned uv version.
    pub version: String,
    /// Where the hashes came from.
    pub source: String,
    /// Platform key (`linux-x86_64`, ...) -> acceptable wheels for that platform.
    pub platforms: BTreeMap<String, Vec<PinnedWheel>>,
}

/// Platform keys, in the order ktx-runtime documents them, and the wheel platform tags each
/// accepts.
/// Whether a wheel platform tag (e.g. `manylinux2014_x86_64`) fits a platform key.
type TagFilter = fn(&str) -> bool;

const PLATFORMS: &[(&str, TagFilter)] = &[
    ("linux-x86_64", |t| {
        (t.starts_with("manylinux") || t.starts_with("musllinux")) && t.ends_with("_x86_64")
    }),
    ("linux-aarch64", |t| {
        (t.starts_with("manylinux") || t.starts_with("musllinux")) && t.ends_with("_aarch64")
    }),
    ("macos-x86_64", |t| {
        t.starts_with("macosx_") && (t.ends_with("_x86_64") || t.ends_with("_universal2"))
    }),
    ("macos-aarch64", |t| {
        t.starts_with("macosx_") && (t.ends_with("_arm64") || t.ends_with("_universal2"))
    }),
    ("windows-x86_64", |t| t == "win_amd64"),
    ("windows-aarch64", |t| t == "win_arm64"),
];

fn pins_path() -> PathBuf {
    crate::project_root().join("crates/ktx-runtime/uv-pins.json")
}

fn curl(url: &str, accept: Option<&str>) -> Result<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-fsSL", "--max-time", "60", "--retry", "2"]);
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    // curl's own --max-time bounds each try; the outer bound covers the retries.
    let out = crate::proc::run(cmd.arg(url), std::time::Duration::from_secs(300))
        .context("running curl (is it installed?)")?;
    if !out.success() {
        bail!("curl {url} failed: {}", out.stderr.trim());
    }
    Ok(out.stdout)
}

/// (file, sha256) of every file of `uv==version`.
fn fetch_files(version: &str) -> Result<(Vec<(String, String)>, String)> {
    let json_url = format!("https://pypi.org/pypi/uv/{version}/json");
    let json_err = match curl(&json_url, None) {
        Ok(text) => {
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("parsing {json_url}"))?;
            let urls = v["urls"]
                .as_array()
                .context("JSON API answer has no 'urls'")?;
            let files = urls
                .iter()
                .filter_map(|u| {
                    Some((
                        u["filename"].as_str()?.to_string(),
                        u["digests"]["sha256"].as_str()?.to_string(),
                    ))
                })
                .collect();
            return Ok((files, json_url));
        }
        Err(e) => e,
    };
    let base = std::env::var("PIP_INDEX_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "https://pypi.org/simple".into());
    let url = format!("{}/uv/", base.trim_end_matches('/'));
    let html = curl(&url, Some("text/html"))
        .with_context(|| format!("JSON API failed ({json_err:#}); simple index failed too"))?;
    let prefix = format!("uv-{version}-");
    let mut files = Vec::new();
    for chunk in html.split("href=\"").skip(1) {
        let href = chunk.split('"').next().unwrap_or_default();
        let Some((path, frag)) = href.split_once("#sha256=") else {
            continue;
        };
        let name = path.rsplit('/').next().unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            files.push((name.to_string(), frag.chars().take(64).collect()));
        }
    }
    Ok((files, url))
}

/// Builds the pins for `version` from the index.
pub fn fetch_pins(version: &str) -> Result<PinsFile> {
    let (files, source) = fetch_files(version)?;
    let mut platforms = BTreeMap::new();
    for (key, accepts) in PLATFORMS {
        let mut wheels: Vec<PinnedWheel> = files
            .iter()
            .filter(|(name, sha)| {
                sha.len() == 64
                    && name
                        .strip_suffix(".whl")
                        .and_then(|n| n.rsplit('-').next())
                        .is_some_and(|plat| plat.split('.').any(accepts))
            })
            .map(|(file, sha256)| PinnedWheel {
                file: file.clone(),
                sha256: sha256.to_lowercase(),
            })
            .collect();
        wheels.sort_by(|a, b| a.file.cmp(&b.file));
        if wheels.is_empty() {
            bail!("no uv {version} wheel for {key} at {source}");
        }
        platforms.insert(key.to_string(), wheels);
    }
    let source = if source.contains("/pypi/uv/") {
        "pypi-json".into()
    } else {
        "simple-index".into()
    };
    Ok(PinsFile {
        schema_version: 1,
        package: "uv".into(),
        version: version.into(),
        source,
        platforms,
    })
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let path = pins_path();
    let current: Option<PinsFile> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let version = match (&args.version, &current) {
        (Some(v), _) => v.clone(),
        (None, Some(c)) => c.version.clone(),
        (None, None) => bail!("{} is missing or invalid: pass --version X", path.display()),
    };
    let mut pins = fetch_pins(&version)?;
    if let Some(c) = &current {
        if c.platforms == pins.platforms && c.version == pins.version {
            pins.source = c.source.clone(); // same hashes: keep the file byte-identical
        }
    }
    let text = serde_json::to_string_pretty(&pins)? + "\n";
    if args.check {
        if current.as_ref().map(|c| &c.platforms) != Some(&pins.platforms) {
            bail!(
                "{} differs from the index; run `cargo xtask refresh-uv-pins`",
                path.display()
            );
        }
        println!("{} matches uv {version} on the index", path.display());
        return Ok(());
    }
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    let n: usize = pins.platforms.values().map(Vec::len).sum();
    println!(
        "wrote {} (uv {version}, {n} wheels for {} platforms)",
        path.display(),
        pins.platforms.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_tags() {
        let pick = |key: &str, tag: &str| PLATFORMS.iter().find(|(k, _)| *k == key).unwrap().1(tag);
        assert!(pick("linux-x86_64", "manylinux2014_x86_64"));
        assert!(pick("linux-x86_64", "musllinux_1_1_x86_64"));
        assert!(!pick("linux-x86_64", "manylinux_2_17_i686"));
        assert!(pick("macos-aarch64", "macosx_11_0_arm64"));
        assert!(pick("windows-x86_64", "win_amd64"));
        assert!(!pick("windows-x86_64", "win32"));
    }

    #[test]
    fn pins_file_parses() {
        let text = std::fs::read_to_string(pins_path()).unwrap();
        let pins: PinsFile = serde_json::from_str(&text).unwrap();
        assert_eq!(pins.platforms.len(), PLATFORMS.len());
    }
}
