//! `release-policy.json`: what may be published, where, and under which dist-tag.
//!
//! Loading is two-staged: serde (with `deny_unknown_fields` everywhere, so a typo is an error)
//! reports the first structural error together with its key path (via `serde_path_to_error`);
//! then [`Policy::validate`] collects every semantic error, each prefixed with its key path.
//! Mode requirements that depend on the rest of the tree (package name, version) are checked by
//! `release-readiness`, not here.

use anyhow::{bail, Result};
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// The only schema version this code understands.
pub const SCHEMA_VERSION: u32 = 1;

/// The parsed, validated release policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// Must be [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What a release of this tree is allowed to be.
    pub release_mode: ReleaseMode,
    /// The npm side: the one public package.
    pub npm: NpmPolicy,
    /// The Python side: never published on its own (the wheel ships inside the npm package).
    pub python: PythonPolicy,
    /// How the shipped binary installs its Python runtime (must describe what the code does).
    pub runtime_installer: RuntimeInstaller,
    /// The xtask gates that must run (in the release workflow) before `publish`.
    pub required_before_publishing: Vec<Gate>,
}

/// `releaseMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseMode {
    /// CI builds and verifies artifacts; nothing is published (`npm.publish` must be false).
    CiArtifactOnly,
    /// The package may be published publicly from CI (`npm.publish` must be true).
    NpmPublicReleaseReady,
}

impl fmt::Display for ReleaseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleaseMode::CiArtifactOnly => "ci-artifact-only",
            ReleaseMode::NpmPublicReleaseReady => "npm-public-release-ready",
        })
    }
}

/// `npm`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NpmPolicy {
    /// Whether `cargo xtask publish --live` may publish at all.
    pub publish: bool,
    /// npm access level; only `public`.
    pub access: Access,
    /// The dist-tag to publish under (`next` for prereleases, `latest` for stable versions).
    pub tag: String,
    /// The npm package names; ktx ships exactly one.
    pub packages: Vec<String>,
    /// Registry URL (`https://...`), or `null` for npm's default. The key is required.
    #[serde(deserialize_with = "required_nullable")]
    pub registry: Option<String>,
}

/// `npm.access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// `--access public`.
    Public,
}

/// `python`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PythonPolicy {
    /// Must be false: the wheel is only shipped inside the npm tarball.
    pub publish: bool,
}

/// `runtimeInstaller`: a description of what `ktx-runtime` really does. Each field has exactly
/// one accepted value, the one the code implements (RELEASING.md explains each).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeInstaller {
    /// Where uv comes from, in order.
    pub uv_strategy: UvStrategy,
    /// How uv is bootstrapped when none is found.
    pub bootstrap_uv: BootstrapUv,
    /// What happens when no uv can be had at all.
    pub missing_uv_behavior: MissingUvBehavior,
}

/// `runtimeInstaller.uvStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UvStrategy {
    /// `KTX_UV`, then `uv` on PATH (at least the minimum version), then a uv bootstrapped earlier
    /// under `<runtime root>/tools/uv/`, then bootstrap one.
    #[serde(rename = "env-path-cached-bootstrap")]
    EnvPathCachedBootstrap,
}

/// `runtimeInstaller.bootstrapUv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum BootstrapUv {
    /// Download the pinned uv wheel from the package index with the base interpreter's pip
    /// (`--require-hashes`) and extract `uv` into `<runtime root>/tools/uv/<version>/`.
    #[serde(rename = "pinned-hashed-wheel-via-pip")]
    PinnedHashedWheelViaPip,
}

/// `runtimeInstaller.missingUvBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MissingUvBehavior {
    /// Build the runtime with `python -m venv` + `pip install` instead (message says `with pip`).
    #[serde(rename = "venv-pip-fallback")]
    VenvPipFallback,
}

/// `requiredBeforePublishing[]`: xtask commands the release workflow runs before `publish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// `cargo xtask dist`.
    Dist,
    /// `cargo xtask artifacts-verify`.
    ArtifactsVerify,
    /// `cargo xtask release-readiness`.
    ReleaseReadiness,
}

impl Gate {
    /// The gate's spelling in the policy file, which is also its xtask command.
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Dist => "dist",
            Gate::ArtifactsVerify => "artifacts-verify",
            Gate::ReleaseReadiness => "release-readiness",
        }
    }
}

/// A key that must be present but may be `null`.
fn required_nullable<'de, D>(de: D) -> std::result::Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(de)
}

impl Policy {
    /// Reads and validates a policy file; errors name the file and the key path.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = crate::fsx::read_to_string(path)?;
        Policy::parse(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e:#}\nFix the file; RELEASING.md documents every key.",
                path.display()
            )
        })
    }

    /// Parses and validates policy JSON text; errors name the key path (e.g. `npm.tag: ...`).
    pub fn parse(text: &str) -> Result<Policy> {
        if !text.trim_start().starts_with('{') {
            bail!("the policy must be a JSON object");
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let policy: Policy = match serde_path_to_error::deserialize(de) {
            Ok(p) => p,
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                if path.is_empty() || path == "." {
                    bail!("{inner}");
                }
                bail!("{path}: {inner}");
            }
        };
        let errors = policy.validate();
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        Ok(policy)
    }

    /// Semantic checks serde cannot express; each message starts with its key path.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.schema_version != SCHEMA_VERSION {
            errors.push(format!(
                "schemaVersion: {} is not supported (expected {SCHEMA_VERSION})",
                self.schema_version
            ));
        }
        if let Err(why) = check_dist_tag(&self.npm.tag) {
            errors.push(format!("npm.tag: {why}"));
        }
        if self.npm.packages.len() != 1 {
            errors.push(format!(
                "npm.packages: ktx ships exactly one npm package, found {}",
                self.npm.packages.len()
            ));
        }
        for (i, name) in self.npm.packages.iter().enumerate() {
            if let Err(why) = check_package_name(name) {
                errors.push(format!("npm.packages[{i}]: {why}"));
            }
        }
        if let Some(url) = &self.npm.registry {
            if !url.starts_with("https://")
                || url.len() <= "https://".len()
                || url.contains(char::is_whitespace)
            {
                errors.push(format!(
                    "npm.registry: `{url}` must be an https:// URL or null (use `publish --registry URL` for a test registry)"
                ));
            }
        }
        if self.python.publish {
            errors.push(
                "python.publish: must be false (the wheel ships only inside the npm package)"
                    .into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, gate) in self.required_before_publishing.iter().enumerate() {
            if !seen.insert(*gate) {
                errors.push(format!(
                    "requiredBeforePublishing[{i}]: `{}` is listed twice",
                    gate.as_str()
                ));
            }
        }
        errors
    }

    /// The one npm package name (validated to exist).
    pub fn package_name(&self) -> &str {
        self.npm.packages.first().map(String::as_str).unwrap_or("")
    }

    /// The requirements of [`Policy::release_mode`]; each unmet one is a message naming its key.
    pub fn mode_violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        match self.release_mode {
            ReleaseMode::CiArtifactOnly => {
                if self.npm.publish {
                    v.push("releaseMode ci-artifact-only requires npm.publish false".into());
                }
            }
            ReleaseMode::NpmPublicReleaseReady => {
                if !self.npm.publish {
                    v.push("releaseMode npm-public-release-ready requires npm.publish true".into());
                }
                for gate in [Gate::Dist, Gate::ArtifactsVerify, Gate::ReleaseReadiness] {
                    if !self.required_before_publishing.contains(&gate) {
                        v.push(format!(
                            "releaseMode npm-public-release-ready requires `{}` in requiredBeforePublishing",
                            gate.as_str()
                        ));
                    }
                }
            }
        }
        v
    }
}

/// The dist-tag a version must be published under: `next` for a prerelease, else `latest`.
pub fn expected_dist_tag(semver: &str) -> &'static str {
    if semver.contains('-') {
        "next"
    } else {
        "latest"
    }
}

/// Checks an npm dist-tag: starts with a letter, then letters, digits, `.`, `_`, `-` (at most
/// 64 characters), and is not a SemVer range (npm refuses those: `v1`, `x`, `1.2.x`...).
pub fn check_dist_tag(tag: &str) -> std::result::Result<(), String> {
    if tag.is_empty() {
        return Err("must not be empty".into());
    }
    if tag.len() > 64 {
        return Err(format!("`{tag}` is longer than 64 characters"));
    }
    let first_is_letter = tag.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let charset_ok = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_is_letter || !charset_ok {
        return Err(format!(
            "`{tag}` is not a valid dist-tag (start with a letter; use letters, digits, `.`, `_`, `-`)"
        ));
    }
    if is_semver_range(tag) {
        return Err(format!(
            "`{tag}` is a valid SemVer range, which npm refuses as a dist-tag"
        ));
    }
    Ok(())
}

/// Whether `s` (already restricted to `[A-Za-z0-9._-]`) parses as a node-semver range: such a
/// string can only be a single operator-less comparator: `v*` then an X-range
/// (`1`, `1.x`, `x.x.x`, `1.2.3-rc.1`). Leading zeros are accepted too (stricter than npm).
fn is_semver_range(s: &str) -> bool {
    let s = s.trim_start_matches(['v', 'V', '=']);
    let (main, pre) = match s.split_once('-') {
        Some((m, p)) => (m, Some(p)),
        None => (s, None),
    };
    let parts: Vec<&str> = main.split('.').collect();
    let xr = |p: &str| {
        matches!(p, "x" | "X" | "*") || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if parts.is_empty() || parts.len() > 3 || !parts.iter().all(|p| xr(p)) {
        return false;
    }
    match pre {
        None => true,
        Some(pre) => {
            parts.len() == 3
                && !pre.is_empty()
                && pre.split('.').all(|id| {
                    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        }
    }
}

/// Checks an npm package name: lowercase, URL-safe, optionally scoped (`@scope/name`).
pub fn check_package_name(name: &str) -> std::result::Result<(), String> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_'])
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    };
    let valid = match name.strip_prefix('@') {
        Some(rest) => match rest.split_once('/') {
            Some((scope, pkg)) => ok_part(scope) && ok_part(pkg),
            None => false,
        },
        None => ok_part(name),
    };
    if !valid || name.len() > 214 {
        return Err(format!(
            "`{name}` is not a valid npm package name (lowercase `name` or `@scope/name`, URL-safe characters)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
      "schemaVersion": 1,
      "releaseMode": "ci-artifact-only",
      "npm": {"publish": false, "access": "public", "tag": "next",
              "packages": ["@kaelio/ktx"], "registry": null},
      "python": {"publish": false},
      "runtimeInstaller": {"uvStrategy": "env-path-cached-bootstrap",
                           "bootstrapUv": "pinned-hashed-wheel-via-pip",
                           "missingUvBehavior": "venv-pip-fallback"},
      "requiredBeforePublishing": ["dist", "artifacts-verify", "release-readiness"]
    }"#;

    fn with(pointer: &str, value: serde_json::Value) -> String {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        *v.pointer_mut(pointer).unwrap() = value;
        v.to_string()
    }

    fn without(parent: &str, key: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        let obj = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).unwrap()
        };
        obj.as_object_mut().unwrap().remove(key);
        v.to_string()
    }

    #[test]
    fn good_policy_parses() {
        let p = Policy::parse(GOOD).unwrap();
        assert_eq!(p.package_name(), "@kaelio/ktx");
        assert_eq!(p.release_mode, ReleaseMode::CiArtifactOnly);
        assert!(p.mode_violations().is_empty());
        let repo_policy = crate::project_root().join("release-policy.json");
        Policy::load(&repo_policy).unwrap();
    }

    #[test]
    fn bad_policies_name_the_key() {
        use serde_json::json;
        let mut with_extra: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        with_extra["npm"]["force"] = json!(true);
        let mut top_extra: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        top_extra["extra"] = json!(1);
        let table: Vec<(String, &str)> = vec![
            (with_extra.to_string(), "npm.force: unknown field `force`"),
            (top_extra.to_string(), "extra: unknown field `extra`"),
            (
                with("/schemaVersion", json!(2)),
                "schemaVersion: 2 is not supported",
            ),
            (
                with("/schemaVersion", json!("1")),
                "schemaVersion: invalid type",
            ),
            (
                with("/releaseMode", json!("yolo")),
                "releaseMode: unknown variant `yolo`",
            ),
            (
                with("/npm/publish", json!("yes")),
                "npm.publish: invalid type",
            ),
            (
                with("/npm/access", json!("restricted")),
                "npm.access: unknown variant",
            ),
            (
                with("/npm/tag", json!("1.0.0")),
                "npm.tag: `1.0.0` is not a valid dist-tag",
            ),
            (
                with("/npm/tag", json!("v1")),
                "npm.tag: `v1` is a valid SemVer range",
            ),
            (
                with("/npm/tag", json!("x.x")),
                "npm.tag: `x.x` is a valid SemVer range",
            ),
            (
                with("/npm/tag", json!("v1.2.3-rc.1")),
                "npm.tag: `v1.2.3-rc.1` is a valid SemVer",
            ),
            (with("/npm/tag", json!("")), "npm.tag: must not be empty"),
            (
                with("/npm/tag", json!("next tag")),
                "npm.tag: `next tag` is not a valid",
            ),
            (with("/npm/tag", json!(7)), "npm.tag: invalid type"),
            (
                with("/npm/packages", json!([])),
                "npm.packages: ktx ships exactly one",
            ),
            (
                with("/npm/packages", json!(["@Kaelio/KTX"])),
                "npm.packages[0]: `@Kaelio/KTX`",
            ),
            (
                with("/npm/packages/0", json!(3)),
                "npm.packages[0]: invalid type",
            ),
            (
                with("/npm/registry", json!("http://x")),
                "npm.registry: `http://x` must be",
            ),
            (without("/npm", "registry"), "npm: missing field `registry`"),
            (
                with("/python/publish", json!(true)),
                "python.publish: must be false",
            ),
            (
                with("/runtimeInstaller/uvStrategy", json!("path-only")),
                "runtimeInstaller.uvStrategy: unknown variant `path-only`",
            ),
            (
                without("/runtimeInstaller", "bootstrapUv"),
                "missing field `bootstrapUv`",
            ),
            (
                with("/requiredBeforePublishing", json!(["dist", "dist"])),
                "requiredBeforePublishing[1]: `dist` is listed twice",
            ),
            (
                with("/requiredBeforePublishing/0", json!("lint")),
                "requiredBeforePublishing[0]: unknown variant `lint`",
            ),
            (
                without("", "runtimeInstaller"),
                "missing field `runtimeInstaller`",
            ),
            ("[]".to_string(), "must be a JSON object"),
            ("{".to_string(), "EOF while parsing"),
        ];
        let mut failures = Vec::new();
        for (text, want) in table {
            match Policy::parse(&text) {
                Ok(_) => failures.push(format!("accepted {text}")),
                Err(e) if !format!("{e:#}").contains(want) => {
                    failures.push(format!("policy {text}\n  error {e:#}\n  wanted {want}"))
                }
                Err(_) => {}
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn dist_tags() {
        for ok in [
            "next", "latest", "beta", "rc-1", "canary.2", "x-y", "v1-next", "next_2",
        ] {
            check_dist_tag(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "x",
            "X",
            "v1",
            "vv1.2",
            "v1.x",
            "x.x.x",
            "v1.2.3-rc.1",
            "V2",
            "1",
            "*",
            "a b",
            "n/x",
        ] {
            assert!(check_dist_tag(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(expected_dist_tag("0.1.0-rc.0"), "next");
        assert_eq!(expected_dist_tag("1.0.0"), "latest");
    }

    #[test]
    fn mode_requirements() {
        let mut p = Policy::parse(GOOD).unwrap();
        p.npm.publish = true;
        assert_eq!(
            p.mode_violations(),
            vec!["releaseMode ci-artifact-only requires npm.publish false"]
        );
        p.release_mode = ReleaseMode::NpmPublicReleaseReady;
        assert!(p.mode_violations().is_empty());
        p.required_before_publishing
            .retain(|g| *g != Gate::ArtifactsVerify);
        p.npm.publish = false;
        let v = p.mode_violations().join("\n");
        assert!(
            v.contains("requires npm.publish true") && v.contains("`artifacts-verify`"),
            "{v}"
        );
    }
}
