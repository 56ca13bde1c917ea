//! `cargo xtask stamp-version <semver> [--check]`: the version everywhere it lives.
//!
//! Places: `Cargo.toml` (`[workspace.package] version`, the source of truth),
//! `npm-package/package.json` (`version`), `python-runtime/src/ktx_daemon/_version.py`
//! (`__version__`, PEP 440) and `Cargo.lock` (the workspace members that inherit the version).
//! It is dist-tag aware: `release-policy.json`'s `npm.tag` follows the version (`next` for a
//! prerelease, `latest` for a stable version, the rule `release-readiness` enforces).

use crate::ordered_json;
use crate::version;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Flags of `stamp-version`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SemVer to write (must map to PEP 440); with --check, the version to expect.
    pub version: Option<String>,
    /// Write nothing; fail naming each place that disagrees (with Cargo.toml, or with VERSION).
    #[arg(long)]
    pub check: bool,
    /// Stamp this project root instead of this checkout (tests round-trip edited copies).
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
}

/// Writes or checks the version.
pub fn run(args: &Args) -> Result<()> {
    let root = match &args.root {
        Some(r) => std::env::current_dir()
            .map(|cwd| cwd.join(r))
            .unwrap_or(r.clone()),
        None => crate::project_root(),
    };
    if args.check {
        let expected = match &args.version {
            Some(v) => v.clone(),
            None => version::workspace_version(&root)?,
        };
        check(&root, &expected)?;
        println!("version {expected} agrees in every place");
        return Ok(());
    }
    let Some(semver) = &args.version else {
        bail!("usage: cargo xtask stamp-version <semver> [--check] (or --check alone)");
    };
    stamp(&root, semver)?;
    refresh_lock(&root)?;
    check(&root, semver)?;
    println!(
        "stamped {semver} (PEP 440 {})",
        version::semver_to_pep440(semver)?
    );
    Ok(())
}

/// The Cargo.toml path.
fn cargo_toml(root: &Path) -> PathBuf {
    root.join("Cargo.toml")
}
/// The npm package template.
fn package_json(root: &Path) -> PathBuf {
    root.join("npm-package/package.json")
}
/// The release policy (its `npm.tag` follows the version).
fn policy_json(root: &Path) -> PathBuf {
    root.join("release-policy.json")
}
/// The Python package's version module.
fn version_py(root: &Path) -> PathBuf {
    root.join("python-runtime/src/ktx_daemon/_version.py")
}

/// The `_version.py` text for a PEP 440 version.
fn version_py_text(pep440: &str) -> String {
    format!(
        "\"\"\"Package version, written by `cargo xtask stamp-version`; do not edit by hand.\"\"\"\n\n\
         __version__ = \"{pep440}\"\n"
    )
}

/// Returns Cargo.toml's text with `[workspace.package] version` set to `semver`.
fn set_cargo_version(text: &str, path: &Path, semver: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut in_section = false;
    let mut done = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_section = trimmed.trim_end() == "[workspace.package]";
        } else if in_section && !done {
            if let Some(rest) = trimmed.strip_prefix("version") {
                if rest.trim_start().starts_with('=') {
                    let (Some(a), Some(b)) = (line.find('"'), line.rfind('"')) else {
                        bail!(
                            "{}: `workspace.package.version` is not a \"quoted\" string",
                            path.display()
                        );
                    };
                    if a == b {
                        bail!(
                            "{}: `workspace.package.version` is not a \"quoted\" string",
                            path.display()
                        );
                    }
                    out.push_str(&line[..=a]);
                    out.push_str(semver);
                    out.push_str(&line[b..]);
                    done = true;
                    continue;
                }
            }
        }
        out.push_str(line);
    }
    if !done {
        bail!(
            "{}: no `version = \"...\"` line under [workspace.package]; add one",
            path.display()
        );
    }
    Ok(out)
}

/// Returns release-policy.json's text with the string value of `npm.tag` set to `tag`, leaving
/// every other byte as it was.
fn set_policy_tag(text: &str, path: &Path, tag: &str) -> Result<String> {
    // Byte ranges of the string literal after each `"tag":` (the schema has only npm.tag).
    let mut hits = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("\"tag\"") {
        let key_end = from + i + "\"tag\"".len();
        if let Some(value) = text[key_end..]
            .trim_start()
            .strip_prefix(':')
            .map(str::trim_start)
            .filter(|v| v.starts_with('"'))
        {
            let start = text.len() - value.len();
            if let Some(close) = value[1..].find('"') {
                hits.push((start, start + close + 2));
            }
        }
        from = key_end;
    }
    let [(a, b)] = hits[..] else {
        bail!(
            "{}: expected one string `npm.tag`, found {} `\"tag\": \"...\"` entries; fix the file",
            path.display(),
            hits.len()
        );
    };
    let out = format!("{}\"{tag}\"{}", &text[..a], &text[b..]);
    let parsed: serde_json::Value = serde_json::from_str(&out)
        .with_context(|| format!("{} is not valid JSON; fix its syntax", path.display()))?;
    if parsed.pointer("/npm/tag").and_then(|t| t.as_str()) != Some(tag) {
        bail!(
            "{}: the `\"tag\"` entry is not `npm.tag`; fix the file",
            path.display()
        );
    }
    Ok(out)
}

/// Writes `semver` to Cargo.toml, package.json, _version.py and release-policy.json's `npm.tag`
/// (each via temp file + rename), after checking it maps to PEP 440. Does not touch Cargo.lock
/// (see [`refresh_lock`]).
pub fn stamp(root: &Path, semver: &str) -> Result<()> {
    version::check_mappable(semver)?;
    let pep440 = version::semver_to_pep440(semver)?;
    let cargo = cargo_toml(root);
    let cargo_text = set_cargo_version(&crate::fsx::read_to_string(&cargo)?, &cargo, semver)?;
    let pj = package_json(root);
    let mut obj = ordered_json::Object::parse(&crate::fsx::read_to_string(&pj)?, &pj)?;
    obj.set("version", serde_json::Value::String(semver.to_string()));
    let policy = policy_json(root);
    let policy_text = set_policy_tag(
        &crate::fsx::read_to_string(&policy)?,
        &policy,
        crate::release::policy::expected_dist_tag(semver),
    )?;
    crate::fsx::write_all_atomic(&[
        (cargo, cargo_text.into_bytes()),
        (pj, obj.to_pretty()?),
        (version_py(root), version_py_text(&pep440).into_bytes()),
        (policy, policy_text.into_bytes()),
    ])
}

/// Updates the workspace members' entries in Cargo.lock (`cargo update --workspace --offline`).
pub fn refresh_lock(root: &Path) -> Result<()> {
    crate::proc::cargo(root, &["update", "--workspace", "--offline", "--quiet"]).map_err(|e| {
        anyhow::anyhow!(
            "{e} in {}; Cargo.toml, package.json and _version.py are stamped; run `cargo \
                 update --workspace` by hand",
            root.display()
        )
    })
}

/// One place a version lives, and what it holds.
#[derive(Debug)]
struct Place {
    file: PathBuf,
    what: String,
    found: Option<String>,
    expected: String,
}

/// Names of the workspace members that inherit the workspace version (`version.workspace =
/// true`): the members as cargo lists them, each manifest read for the inheritance (which
/// cargo's metadata does not record).
fn inheriting_members(root: &Path) -> Result<Vec<String>> {
    let ws = crate::workspace::Workspace::load(root)?;
    let mut names = Vec::new();
    for member in &ws.members {
        let doc: toml::Table = toml::from_str(&crate::fsx::read_to_string(&member.manifest)?)
            .with_context(|| format!("{} is not valid TOML", member.manifest.display()))?;
        let inherits = doc
            .get("package")
            .and_then(|p| p.get("version"))
            .and_then(|v| v.get("workspace"))
            .and_then(|w| w.as_bool())
            == Some(true);
        if inherits {
            names.push(member.name.clone());
        }
    }
    names.sort();
    Ok(names)
}

/// Every place that carries the version, except the files in `skip` (not even read: a caller
/// that already checked them, like release readiness, passes them).
fn places(root: &Path, semver: &str, skip: &[PathBuf]) -> Result<Vec<Place>> {
    let pep440 = version::semver_to_pep440(semver)?;
    let mut out = Vec::new();
    if !skip.contains(&cargo_toml(root)) {
        out.push(Place {
            file: cargo_toml(root),
            what: format!("{} [workspace.package] version", cargo_toml(root).display()),
            found: version::workspace_version(root).ok(),
            expected: semver.to_string(),
        });
    }
    let pj = package_json(root);
    if !skip.contains(&pj) {
        let found = ordered_json::Object::parse(&crate::fsx::read_to_string(&pj)?, &pj)?
            .get("version")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        out.push(Place {
            what: format!("{} \"version\"", pj.display()),
            file: pj,
            found,
            expected: semver.to_string(),
        });
    }
    let vp = version_py(root);
    let found = crate::fsx::read_to_string(&vp)?.lines().find_map(|l| {
        let rest = l
            .trim()
            .strip_prefix("__version__")?
            .trim_start()
            .strip_prefix('=')?;
        Some(rest.trim().trim_matches(['"', '\'']).to_string())
    });
    out.push(Place {
        what: format!("{} __version__", vp.display()),
        file: vp,
        found,
        expected: pep440,
    });
    let policy = policy_json(root);
    if !skip.contains(&policy) {
        let found =
            serde_json::from_str::<serde_json::Value>(&crate::fsx::read_to_string(&policy)?)
                .ok()
                .and_then(|v| v.pointer("/npm/tag")?.as_str().map(str::to_string));
        out.push(Place {
            what: format!("{} npm.tag", policy.display()),
            file: policy,
            found,
            expected: crate::release::policy::expected_dist_tag(semver).to_string(),
        });
    }
    let lock = root.join("Cargo.lock");
    if lock.exists() {
        let doc: toml::Table = toml::from_str(&crate::fsx::read_to_string(&lock)?)
            .with_context(|| format!("{} is not valid TOML", lock.display()))?;
        let packages = doc
            .get("package")
            .and_then(|p| p.as_array())
            .cloned()
            .unwrap_or_default();
        for name in inheriting_members(root)? {
            let found = packages.iter().find_map(|p| {
                (p.get("name")?.as_str()? == name && p.get("source").is_none()).then(|| {
                    p.get("version")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                })?
            });
            out.push(Place {
                file: lock.clone(),
                what: format!("{} package `{name}`", lock.display()),
                found,
                expected: semver.to_string(),
            });
        }
    }
    Ok(out)
}

/// Each place whose version is not `semver` (PEP 440 mapped for Python), as `(file, message)`:
/// the file the place lives in, and `<place>: found `x`, expected y`.
pub fn disagreements(
    root: &Path,
    semver: &str,
    skip: &[PathBuf],
) -> Result<Vec<(PathBuf, String)>> {
    Ok(places(root, semver, skip)?
        .into_iter()
        .filter(|p| p.found.as_deref() != Some(p.expected.as_str()))
        .map(|p| {
            let msg = format!(
                "{}: found {}, expected {}",
                p.what,
                p.found
                    .map(|f| format!("`{f}`"))
                    .unwrap_or_else(|| "nothing".into()),
                p.expected
            );
            (p.file, msg)
        })
        .collect())
}

/// Fails naming each place whose version is not `semver` (PEP 440 mapped for Python).
pub fn check(root: &Path, semver: &str) -> Result<()> {
    let bad: Vec<String> = disagreements(root, semver, &[])?
        .into_iter()
        .map(|(_, msg)| format!("  {msg}"))
        .collect();
    if !bad.is_empty() {
        bail!(
            "version disagreement:\n{}\nfix: cargo xtask stamp-version {semver}",
            bad.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    #[test]
    fn the_real_tree_agrees() {
        let root = crate::project_root();
        check(&root, &version::workspace_version(&root).unwrap()).unwrap();
    }

    #[test]
    fn stamps_every_place_and_check_names_disagreements() {
        let tmp = testutil::temp_project();
        let root = tmp.path();
        stamp(root, "1.2.3-beta.4").unwrap();
        check(root, "1.2.3-beta.4").unwrap();
        assert_eq!(version::workspace_version(root).unwrap(), "1.2.3-beta.4");
        let py = std::fs::read_to_string(version_py(root)).unwrap();
        assert!(py.contains("__version__ = \"1.2.3b4\"\n"), "{py}");
        let pj = std::fs::read_to_string(package_json(root)).unwrap();
        assert!(
            pj.starts_with("{\n  \"name\": \"@kaelio/ktx\",\n  \"version\": \"1.2.3-beta.4\",\n"),
            "{pj}"
        );
        // Other Cargo.toml content is untouched.
        let cargo = std::fs::read_to_string(cargo_toml(root)).unwrap();
        let orig = std::fs::read_to_string(crate::project_root().join("Cargo.toml")).unwrap();
        assert_eq!(cargo.lines().count(), orig.lines().count());

        testutil::edit(&package_json(root), "\"1.2.3-beta.4\"", "\"9.9.9\"");
        testutil::edit(&version_py(root), "1.2.3b4", "1.2.3");
        let err = format!("{:#}", check(root, "1.2.3-beta.4").unwrap_err());
        assert!(
            err.contains("package.json \"version\": found `9.9.9`, expected 1.2.3-beta.4"),
            "{err}"
        );
        assert!(
            err.contains("_version.py __version__: found `1.2.3`, expected 1.2.3b4"),
            "{err}"
        );
        assert!(!err.contains("Cargo.toml [workspace.package]"), "{err}");
    }

    /// A copy of the whole workspace (every member's sources and Cargo.lock), so that
    /// `cargo update --workspace --offline` works in it.
    fn workspace_copy() -> tempfile::TempDir {
        let tmp = testutil::temp_project();
        let root = crate::project_root();
        std::fs::copy(root.join("Cargo.lock"), tmp.path().join("Cargo.lock")).unwrap();
        testutil::copy_tree(&root.join("crates"), &tmp.path().join("crates"));
        for f in ["Cargo.toml", "build.rs"] {
            if root.join("xtask").join(f).exists() {
                std::fs::create_dir_all(tmp.path().join("xtask")).unwrap();
                std::fs::copy(root.join("xtask").join(f), tmp.path().join("xtask").join(f))
                    .unwrap();
            }
        }
        testutil::copy_tree(&root.join("xtask/src"), &tmp.path().join("xtask/src"));
        tmp
    }

    fn args(version: Option<&str>, check: bool, root: &Path) -> Args {
        Args {
            version: version.map(str::to_string),
            check,
            root: Some(root.to_path_buf()),
        }
    }

    #[test]
    fn round_trip_through_the_command_restores_every_byte() {
        let tmp = workspace_copy();
        let root = tmp.path();
        let original = version::workspace_version(root).unwrap();
        let files = [
            "Cargo.toml",
            "Cargo.lock",
            "npm-package/package.json",
            "python-runtime/src/ktx_daemon/_version.py",
            "release-policy.json",
        ];
        let read_all = || -> Vec<Vec<u8>> {
            files
                .iter()
                .map(|f| std::fs::read(root.join(f)).unwrap())
                .collect()
        };
        let before = read_all();
        run(&args(Some("1.2.3"), false, root)).unwrap();
        run(&args(None, true, root)).unwrap();
        run(&args(Some("1.2.3"), true, root)).unwrap();
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
        assert!(
            lock.contains("name = \"ktx\"\nversion = \"1.2.3\""),
            "Cargo.lock not refreshed"
        );
        assert!(std::fs::read_to_string(version_py(root))
            .unwrap()
            .contains("__version__ = \"1.2.3\""));
        // A stable version publishes under `latest`, and the policy stays valid.
        let policy =
            crate::release::policy::Policy::load(&root.join("release-policy.json")).unwrap();
        assert_eq!(policy.npm.tag, "latest");
        // --check against another version names every place, the lock's members included.
        let err = format!("{:#}", run(&args(Some(&original), true, root)).unwrap_err());
        for place in [
            "Cargo.toml [workspace.package] version: found `1.2.3`",
            "package.json \"version\": found `1.2.3`",
            "_version.py __version__: found `1.2.3`",
            "Cargo.lock package `ktx`: found `1.2.3`",
            "Cargo.lock package `xtask`: found `1.2.3`",
            "release-policy.json npm.tag: found `latest`, expected next",
        ] {
            assert!(err.contains(place), "{place}: {err}");
        }
        run(&args(Some(&original), false, root)).unwrap();
        assert_eq!(read_all(), before, "the round trip must restore every byte");

        // A stale Cargo.lock alone is named too.
        testutil::edit(
            &root.join("Cargo.lock"),
            &format!("name = \"ktx-runtime\"\nversion = \"{original}\""),
            "name = \"ktx-runtime\"\nversion = \"0.0.1\"",
        );
        let err = format!("{:#}", run(&args(None, true, root)).unwrap_err());
        assert!(
            err.contains("Cargo.lock package `ktx-runtime`: found `0.0.1`")
                && !err.contains("package.json"),
            "{err}"
        );
    }

    #[test]
    fn policy_tag_edits_touch_only_the_tag() {
        let path = Path::new("/x/release-policy.json");
        let text = "{\"npm\": {\"publish\": false,\"tag\" :  \"next\", \"packages\": [\"tag\"]}}\n";
        assert_eq!(
            set_policy_tag(text, path, "latest").unwrap(),
            text.replace("\"next\"", "\"latest\"")
        );
        for bad in [
            "{\"npm\": {\"tag\": \"next\"}, \"x\": {\"tag\": \"a\"}}",
            "{\"npm\": {}}",
            "{\"other\": {\"tag\": \"next\"}}",
        ] {
            let err = format!("{:#}", set_policy_tag(bad, path, "latest").unwrap_err());
            assert!(err.contains("/x/release-policy.json"), "{err}");
        }
    }

    #[test]
    fn refuses_unmappable_versions_and_writes_nothing() {
        let tmp = testutil::temp_project();
        let root = tmp.path();
        let before = std::fs::read(cargo_toml(root)).unwrap();
        for bad in ["1.0.0-1", "1.0.0-next.1", "1.0.0+b1"] {
            let err = format!("{:#}", stamp(root, bad).unwrap_err());
            assert!(err.contains("SemVer") && err.contains("PEP 440"), "{err}");
            // Through the command too, with and without --check.
            for check in [false, true] {
                let err = format!("{:#}", run(&args(Some(bad), check, root)).unwrap_err());
                assert!(
                    err.contains(&format!("`{bad}`")) && err.contains("PEP 440"),
                    "{err}"
                );
            }
        }
        assert_eq!(std::fs::read(cargo_toml(root)).unwrap(), before);
    }
}
