//! `cargo xtask publish [--live] [--registry URL] [--dist DIR]`: publishes the prebuilt npm
//! tarball from dist/ (never repacks it, never `--force`).
//!
//! Without `--live` it is a dry run: `npm publish <tgz> --dry-run --tag <tag> --access public`.
//! A live run needs all of: `--live`, `CI=true`, the policy's `npm.publish`, and a passing
//! release-readiness. Before publishing, `npm view NAME@VERSION version --json` decides:
//! published with the same integrity -> nothing to do (success); with another integrity ->
//! abort; E404 -> publish; any other answer -> abort (fail closed). `--provenance` is added
//! when running in GitHub Actions. Afterwards `dist.integrity` and `dist-tags` are checked.

use super::npm::{os, Npm, Published};
use super::policy::Policy;
use super::readiness::{self, Inputs};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Publish for real (also needs CI=true, npm.publish in the policy and passing readiness).
    #[arg(long)]
    pub live: bool,
    /// Registry URL, passed to every npm call (default: the policy's npm.registry, else npm's).
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
    /// The dist directory holding the verified tarball (default `<root>/dist`).
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
    /// The release policy (default `<root>/release-policy.json`).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The project root (default: this checkout).
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
}

/// Runs `publish`.
pub fn run(args: &Args) -> Result<()> {
    let inputs = Inputs::from_flags(
        args.root.as_deref(),
        args.dist.as_deref(),
        args.policy.as_deref(),
    );
    let policy = Policy::load(&inputs.policy)?;
    let versions = crate::version::versions(&inputs.root)?;
    let name = policy.package_name().to_string();
    let version = versions.semver.clone();
    let tag = policy.npm.tag.clone();
    let tgz = inputs
        .dist
        .join("npm")
        .join(crate::npm_tarball::tarball_name(&name, &version));
    let bytes = crate::fsx::read(&tgz).context("build it with `cargo xtask dist`")?;
    let integrity = crate::fsx::sha512_integrity(&bytes);
    let registry = args
        .registry
        .clone()
        .or_else(|| policy.npm.registry.clone());
    let npm = Npm::new(registry);
    let mode = if args.live { "live" } else { "dry run" };
    println!(
        "publish ({mode}): {name}@{version} under `{tag}` from {} ({integrity}) to {}",
        tgz.display(),
        npm.registry().unwrap_or("npm's configured registry")
    );

    // The gates. A dry run reports readiness but is not blocked by it.
    let report = readiness::evaluate(&inputs);
    print!("{}", report.render());
    if args.live {
        let mut refused = Vec::new();
        if std::env::var("CI").as_deref() != Ok("true") {
            refused.push("CI=true is not set (live publishing only happens in CI)".to_string());
        }
        if !policy.npm.publish {
            refused.push(format!(
                "{}: npm.publish is false (releaseMode {})",
                inputs.policy.display(),
                policy.release_mode
            ));
        }
        if !report.ready {
            refused.push(format!(
                "release-readiness fails: {}",
                report.failing().join(", ")
            ));
        }
        if !refused.is_empty() {
            bail!(
                "refusing to publish live: {}. Nothing was published.",
                refused.join("; ")
            );
        }
    } else if !report.ready {
        println!(
            "note: release-readiness fails ({}); a live run would be refused",
            report.failing().join(", ")
        );
    }

    // What the registry already has.
    let state = match npm.published(&name, &version) {
        Ok(s) => s,
        Err(e) if !args.live => {
            println!("note: could not ask the registry whether {name}@{version} exists: {e:#}");
            Published::Absent
        }
        Err(e) => {
            return Err(e.context(format!(
                "cannot tell whether {name}@{version} is published; nothing was published"
            )))
        }
    };
    match &state {
        Published::Present { integrity: theirs } if *theirs == integrity => {
            println!("{name}@{version} is already published with the same integrity; nothing to do");
            return Ok(());
        }
        Published::Present { integrity: theirs } => bail!(
            "{name}@{version} is already published with integrity {theirs}, but {} has {integrity}; \
             a published version can never be replaced: bump the version (`cargo xtask stamp-version`) \
             and rebuild. Nothing was published.",
            tgz.display()
        ),
        Published::Absent => println!("{name}@{version} is not published yet"),
    }

    let in_actions = std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true");
    let publish = publish_args(&tgz, &tag, args.live, in_actions);
    println!("$ {}", npm.display(&publish));
    let out = npm.run(&publish, Duration::from_secs(600))?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    if !out.success() {
        bail!("`{}` failed (exit {:?})", npm.display(&publish), out.code);
    }
    if !args.live {
        println!("dry run done: nothing was published (pass --live in CI to publish)");
        return Ok(());
    }

    // Verify what the registry now serves.
    let served = npm.view_string(&format!("{name}@{version}"), "dist.integrity")?;
    if served != integrity {
        bail!("published, but the registry serves integrity {served} for {name}@{version}, not {integrity}; investigate before anything else");
    }
    let tags = npm.dist_tags(&name)?;
    match tags.get(&tag).and_then(|v| v.as_str()) {
        Some(v) if v == version => {}
        other => bail!("published, but dist-tag `{tag}` points at {other:?}, not {version}; fix with `npm dist-tag add {name}@{version} {tag}`"),
    }
    println!("published {name}@{version} under `{tag}` ({integrity})");
    Ok(())
}

/// The `npm publish` arguments: the prebuilt tarball, `--tag`, `--access public`; `--dry-run`
/// unless live; `--provenance` when live inside GitHub Actions. Never `--force`.
pub fn publish_args(
    tgz: &std::path::Path,
    tag: &str,
    live: bool,
    in_actions: bool,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["publish".into(), tgz.as_os_str().to_os_string()];
    args.extend(os(&["--tag", tag, "--access", "public"]));
    if !live {
        args.push("--dry-run".into());
    } else if in_actions {
        args.push("--provenance".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_arguments() {
        let t = std::path::Path::new("/d/npm/kaelio-ktx-1.0.0.tgz");
        let s = |live, gha| {
            publish_args(t, "latest", live, gha)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let base = "publish /d/npm/kaelio-ktx-1.0.0.tgz --tag latest --access public";
        assert_eq!(s(false, false), format!("{base} --dry-run"));
        assert_eq!(s(false, true), format!("{base} --dry-run"));
        assert_eq!(s(true, false), base);
        assert_eq!(s(true, true), format!("{base} --provenance"));
    }
}
