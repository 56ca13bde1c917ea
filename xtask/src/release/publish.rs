//! `cargo xtask publish [--live] [--registry URL] [--dist DIR]`: publishes the prebuilt npm
//! tarball from dist/ (never repacks it, never `--force`).
//!
//! What is uploaded is exactly what was verified: dist/ is first copied, each file read once,
//! into a private temporary directory (mode 0700, files created with `O_EXCL`); readiness runs
//! on that copy, the copy's tarball is hashed again right before `npm publish`, and `npm
//! publish` is given the copy's path. Nothing under dist/ is read twice, so replacing a file
//! there after the copy changes nothing.
//!
//! The policy is always the project's own `release-policy.json` (there is no `--policy`: a
//! dry run rehearses the live run, so both read the same file).
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
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// The project root (default: this checkout); its `release-policy.json` is the policy.
    /// For tests: a live run from any other root is refused unless the registry is on loopback.
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
}

/// Why a live publish from `root` to `registry` must be refused, if it must: a root other than
/// this checkout brings its own policy, so it may only publish to a registry on this machine
/// (the tests' verdaccio), never to a real one.
fn foreign_root_refusal(root: &Path, registry: Option<&str>) -> Option<String> {
    let ours = crate::project_root();
    let same = match (root.canonicalize(), ours.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same || registry.is_some_and(is_loopback_url) {
        return None;
    }
    Some(format!(
        "--root {} is not this checkout ({}); its release-policy.json may only publish to a \
         registry on loopback",
        root.display(),
        ours.display()
    ))
}

/// Whether `url` is an http(s) URL whose host is 127.0.0.1, localhost or [::1].
fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// Runs `publish`.
pub fn run(args: &Args) -> Result<()> {
    let source = Inputs::from_flags(args.root.as_deref(), args.dist.as_deref(), None, None);
    let policy = Policy::load(&source.policy)?;
    let versions = crate::version::versions(&source.root)?;
    let name = policy.package_name().to_string();
    let version = versions.semver.clone();
    let tag = policy.npm.tag.clone();
    let tgz_rel = Path::new("npm").join(crate::npm_tarball::tarball_name(&name, &version));
    let original = source.dist.join(&tgz_rel);

    // From here on only the private copy is read.
    let snapshot = Snapshot::take(&source.dist).with_context(|| {
        format!(
            "cannot copy {} to a private directory (build it with `cargo xtask dist`)",
            source.dist.display()
        )
    })?;
    let inputs = Inputs {
        dist: snapshot.dist(),
        ..source.clone()
    };
    let tgz = inputs.dist.join(&tgz_rel);
    let bytes = crate::fsx::read(&tgz).with_context(|| {
        format!(
            "{} is missing; build it with `cargo xtask dist`",
            original.display()
        )
    })?;
    let integrity = crate::fsx::sha512_integrity(&bytes);
    drop(bytes);
    let registry = args
        .registry
        .clone()
        .or_else(|| policy.npm.registry.clone());
    let npm = Npm::new(registry);
    let mode = if args.live { "live" } else { "dry run" };
    println!(
        "publish ({mode}): {name}@{version} under `{tag}` to {}: {} ({integrity}), uploaded \
         from its private copy {}",
        npm.registry().unwrap_or("npm's configured registry"),
        original.display(),
        tgz.display()
    );

    // The gates, on the private copy. A dry run reports readiness but is not blocked by it.
    let report = readiness::evaluate(&inputs);
    print!("{}", report.render());
    if args.live {
        let mut refused = Vec::new();
        if std::env::var("CI").as_deref() != Ok("true") {
            refused.push("CI=true is not set (live publishing only happens in CI)".to_string());
        }
        if let Some(reason) = foreign_root_refusal(&source.root, npm.registry()) {
            refused.push(reason);
        }
        if !policy.npm.publish {
            refused.push(format!(
                "{}: npm.publish is false (releaseMode {})",
                source.policy.display(),
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
            original.display()
        ),
        Published::Absent => println!("{name}@{version} is not published yet"),
    }

    // The private copy is what readiness checked; make sure it still is, then upload it.
    let now = crate::fsx::sha512_integrity(&crate::fsx::read(&tgz)?);
    if now != integrity {
        bail!(
            "the private copy {} changed after it was verified ({now}, verified {integrity}); \
             something is writing to {}: stop it and re-run. Nothing was published.",
            tgz.display(),
            std::env::temp_dir().display()
        );
    }
    let in_actions = std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true");
    let publish = publish_args(&tgz, &tag, args.live, in_actions);
    println!("$ {}", npm.display(&publish));
    let out = npm.run(&publish, Duration::from_secs(600))?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    if !out.success() {
        bail!("`{}` failed (exit {:?})", npm.display(&publish), out.code());
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

/// A private copy of a dist directory, removed when dropped: a fresh temporary directory of
/// mode 0700 holding `dist/`, whose files were each read once from the source and written with
/// `create_new` (`O_EXCL`, mode 0600). Symlinked directories and non-regular files are left
/// out (they are not artifacts; readiness then reports what is missing).
#[derive(Debug)]
pub struct Snapshot {
    dir: tempfile::TempDir,
}

impl Snapshot {
    /// Copies `dist` into a new private temporary directory.
    pub fn take(dist: &Path) -> Result<Snapshot> {
        let dir = tempfile::Builder::new()
            .prefix("ktx-publish-")
            .tempdir()
            .context("cannot create a private temporary directory for the publish")?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot chmod 0700 {}", dir.path().display()))?;
        }
        copy_files(dist, &dir.path().join("dist"))?;
        Ok(Snapshot { dir })
    }

    /// The copied dist directory.
    pub fn dist(&self) -> PathBuf {
        self.dir.path().join("dist")
    }
}

/// Copies the regular files under `from` (following symlinks to files, not to directories)
/// into the new directory `to`.
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    #[cfg_attr(not(unix), allow(unused_mut))] // only Unix sets a mode
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(to)
        .with_context(|| format!("cannot create directory {}", to.display()))?;
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", from.display()))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if kind.is_dir() {
            copy_files(&path, &dest)?;
            continue;
        }
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let data = crate::fsx::read(&path)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
        file.write_all(&data)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", dest.display()))?;
    }
    Ok(())
}

/// The `npm publish` arguments: the prebuilt tarball, `--tag`, `--access public`; `--dry-run`
/// unless live; `--provenance` when live inside GitHub Actions. Never `--force`.
pub fn publish_args(tgz: &Path, tag: &str, live: bool, in_actions: bool) -> Vec<OsString> {
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
    fn a_foreign_root_may_publish_live_only_to_loopback() {
        let other = tempfile::tempdir().unwrap();
        let ours = crate::project_root();
        assert_eq!(foreign_root_refusal(&ours, None), None);
        assert_eq!(
            foreign_root_refusal(&ours, Some("https://registry.npmjs.org/")),
            None
        );
        for registry in [
            "http://127.0.0.1:4873/",
            "http://localhost:1/x",
            "http://[::1]:9",
        ] {
            assert_eq!(
                foreign_root_refusal(other.path(), Some(registry)),
                None,
                "{registry}"
            );
        }
        for registry in [
            None,
            Some("https://registry.npmjs.org/"),
            Some("http://127.0.0.1.evil.example/"),
            Some("http://localhost@evil.example/"),
        ] {
            let refusal = foreign_root_refusal(other.path(), registry);
            assert!(
                refusal
                    .as_deref()
                    .is_some_and(|r| r.contains("is not this checkout")),
                "{registry:?}: {refusal:?}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn snapshot_is_a_private_read_once_copy() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let dist = src.path().join("dist");
        std::fs::create_dir_all(dist.join("npm")).unwrap();
        std::fs::write(dist.join("manifest.json"), b"{}").unwrap();
        std::fs::write(dist.join("npm/a.tgz"), b"verified").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dist.join("linked-dir")).unwrap();

        let snap = Snapshot::take(&dist).unwrap();
        std::fs::write(dist.join("npm/a.tgz"), b"swapped").unwrap();
        let copy = snap.dist();
        assert_eq!(std::fs::read(copy.join("npm/a.tgz")).unwrap(), b"verified");
        assert_eq!(std::fs::read(copy.join("manifest.json")).unwrap(), b"{}");
        assert!(
            !copy.join("linked-dir").exists(),
            "symlinked dirs are not followed"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let top = copy.parent().unwrap();
        assert_eq!(mode(top), 0o700);
        assert_eq!(mode(&copy.join("npm")), 0o700);
        assert_eq!(mode(&copy.join("npm/a.tgz")) & 0o077, 0);
        let top = top.to_path_buf();
        drop(snap);
        assert!(!top.exists(), "removed when dropped");
    }

    #[test]
    fn publish_arguments() {
        let t = Path::new("/d/npm/kaelio-ktx-1.0.0.tgz");
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
