//! `cargo xtask pack-npm`: builds `ktx` in release mode and assembles the one npm tarball
//! (`dist/npm/<scope>-<name>-<version>.tgz`) with its `.sha256`, the wheel in `dist/python/`,
//! and `dist/manifest.json`. Nothing reaches dist/ unless every artifact could be built.

use crate::dist_manifest::{Artifact, BundleFile, DistManifest, NativeBinary};
use crate::npm_tarball::{self, Entry};
use crate::ordered_json::Object;
use crate::wheel::{self, BuiltWheel};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Flags of `pack-npm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pack this ktx binary instead of `cargo build --release -p ktx`: `PATH` is the host
    /// platform's, `<npm-target>=PATH` (e.g. `darwin-arm64=ktx-macos`) another platform's.
    /// Repeatable (one per target), so a fan-in job can pack binaries built elsewhere.
    #[arg(long, value_name = "[TARGET=]PATH")]
    pub native: Vec<String>,
    /// Write the artifacts into this directory instead of `<root>/dist`.
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
    /// Pack this project root instead of this checkout (tests pack edited copies; needs --native).
    #[arg(long, value_name = "DIR", hide = true, requires = "native")]
    pub root: Option<PathBuf>,
    /// Ship the signed bundles in this dir (`<name>/<version>/`; default `<dist>/bundles`,
    /// where `lang-python` is built with `cargo xtask bundle lang-python` when missing).
    #[arg(long, value_name = "DIR")]
    pub bundles: Option<PathBuf>,
}

/// What goes into a pack.
#[derive(Debug, Clone)]
pub struct PackInputs {
    /// Repository root (Cargo.toml, release-policy.json, npm-package/, python-runtime/).
    pub root: PathBuf,
    /// Output directory (normally `<root>/dist`).
    pub dist: PathBuf,
    /// Native binaries: (npm platform-arch like `linux-x64`, path of the built `ktx`).
    pub native: Vec<(String, PathBuf)>,
    /// SOURCE_DATE_EPOCH for the wheel.
    pub epoch: Option<u64>,
    /// A dir of signed bundles (`<name>/<version>/`) to ship as `package/bundles/...`, each
    /// verified first; `None` ships none.
    pub bundles: Option<PathBuf>,
}

/// What a pack wrote.
#[derive(Debug, Clone)]
pub struct Packed {
    /// Absolute path of the tarball.
    pub tgz: PathBuf,
    /// The dist manifest written last.
    pub manifest: DistManifest,
}

/// Builds `ktx` (release) and packs into `<root>/dist`.
pub fn run(args: &Args) -> Result<()> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let root = args
        .root
        .as_ref()
        .map(|r| cwd.join(r))
        .unwrap_or_else(crate::project_root);
    let native = if args.native.is_empty() {
        vec![(host_npm_target()?, build_release_binary(&root)?)]
    } else {
        args.native
            .iter()
            .map(|a| {
                let (target, path) = parse_native_arg(a)?;
                Ok((target, cwd.join(path)))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let dist = args
        .dist
        .as_ref()
        .map(|d| cwd.join(d))
        .unwrap_or_else(|| root.join("dist"));
    let bundles = match &args.bundles {
        Some(b) => cwd.join(b),
        None => ensure_shipped_bundles(&root, &dist)?,
    };
    let started = std::time::Instant::now();
    let packed = pack(&PackInputs {
        root: root.clone(),
        dist,
        native,
        epoch: wheel::source_date_epoch_from_env()?,
        bundles: Some(bundles),
    })?;
    print_packed(&packed);
    println!(
        "packed in {:.2?} (excluding the cargo build)",
        started.elapsed()
    );
    Ok(())
}

/// `<dist>/bundles`, with `lang-python` built there (`cargo xtask bundle lang-python`, signed
/// with `KTX_BUNDLE_SIGNING_KEY`, else the development key) when it is missing.
pub fn ensure_shipped_bundles(root: &Path, dist: &Path) -> Result<PathBuf> {
    let bundles = dist.join("bundles");
    let dir = bundles
        .join(crate::bundle::LANG_PYTHON)
        .join(crate::bundle::LANG_PYTHON_VERSION);
    if !dir.join(ktx_bundle::MANIFEST_FILE).is_file() {
        let cache = crate::workspace::target_dir(root).join("bundle-cache");
        let (key, key_id, development) = crate::bundle::signing_key()?;
        if development {
            eprintln!("note: building the shipped bundle with the DEVELOPMENT key {key_id}");
        }
        crate::bundle::build_lang_python(root, &bundles, &cache, &key)?;
    }
    Ok(bundles)
}

/// The entries of every bundle under `dir` (`bundles/<name>/<version>/<file>`), each bundle
/// verified with the keys compiled into ktx first, and their checksums for dist/manifest.json.
fn bundle_entries(dir: &Path) -> Result<(Vec<Entry>, Vec<BundleFile>)> {
    let found = ktx_bundle::find_bundles(dir).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if found.is_empty() {
        // A release ships lang-python (`ensure_shipped_bundles`); an empty dir is a pack
        // without bundles (release-readiness's tests, which cannot sign with the release key).
        eprintln!(
            "note: no bundle in {}: the package ships none",
            dir.display()
        );
    }
    let ring = ktx_bundle::Keyring::builtin();
    let mut entries = Vec::new();
    let mut files = Vec::new();
    for b in found {
        let v = ktx_bundle::verify_dir(&b.dir, &ring)
            .map_err(|e| anyhow::anyhow!("{}\n  {}", e.message, e.fix))?;
        let mut names: Vec<String> = v.manifest.files.iter().map(|f| f.path.clone()).collect();
        names.push(ktx_bundle::MANIFEST_FILE.into());
        names.push(ktx_bundle::SIGNATURE_FILE.into());
        for name in names {
            let data = crate::fsx::read(&b.dir.join(&name))?;
            let path = format!("bundles/{}/{}/{name}", b.name, b.version);
            files.push(BundleFile {
                path: path.clone(),
                bytes: data.len() as u64,
                sha256: crate::fsx::sha256_hex(&data),
            });
            entries.push(Entry {
                path,
                data,
                executable: false,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((entries, files))
}

/// Prints what a pack wrote.
pub fn print_packed(p: &Packed) {
    for a in &p.manifest.artifacts {
        println!(
            "{:<6} {} ({} bytes, sha256 {})",
            a.kind, a.path, a.bytes, a.sha256
        );
    }
}

/// `cargo build --release -p ktx`; returns the binary's path.
pub fn build_release_binary(root: &Path) -> Result<PathBuf> {
    crate::proc::cargo(root, &["build", "--release", "-p", "ktx"])
        .map_err(|e| anyhow::anyhow!("{e}; fix the build and retry"))?;
    Ok(crate::workspace::ktx_binary_in(
        &crate::workspace::target_dir(root),
        "release",
    ))
}

/// npm's `<process.platform>-<process.arch>` for this host (what the launcher looks for).
pub fn host_npm_target() -> Result<String> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        "windows" => "win32",
        other => bail!("no npm platform name for host OS `{other}`"),
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => bail!("no npm arch name for host architecture `{other}`"),
    };
    Ok(format!("{os}-{arch}"))
}

/// The npm targets (`<process.platform>-<process.arch>`) a package may carry a binary for;
/// `npm-package/bin/ktx.js` maps each platform/arch pair to one of these.
pub const NPM_TARGETS: [&str; 6] = [
    "linux-x64",
    "linux-arm64",
    "darwin-x64",
    "darwin-arm64",
    "win32-x64",
    "win32-arm64",
];

/// Refuses a target name the launcher would never look for.
pub fn check_npm_target(target: &str) -> Result<()> {
    if NPM_TARGETS.contains(&target) {
        return Ok(());
    }
    bail!(
        "unknown npm target `{target}`: use one of {} (npm's `<platform>-<arch>`)",
        NPM_TARGETS.join(", ")
    )
}

/// Splits one `--native` value: `<npm-target>=PATH`, or a bare `PATH` for the host target.
/// The text before the first `=` is a target name when it has no path separator (so
/// `./a=b/ktx` is a path); an unknown name is refused.
pub fn parse_native_arg(arg: &str) -> Result<(String, PathBuf)> {
    match arg.split_once('=') {
        Some((target, path)) if !target.contains(['/', '\\']) => {
            check_npm_target(target).with_context(|| {
                format!("--native {arg}: expected `<npm-target>=PATH` or a PATH (write `./{arg}` for a path containing `=`)")
            })?;
            if path.is_empty() {
                bail!("--native {arg}: no path after `=`; give the {target} binary's path");
            }
            Ok((target.to_string(), PathBuf::from(path)))
        }
        _ if arg.is_empty() => bail!("--native needs a path (or `<npm-target>=PATH`)"),
        _ => Ok((host_npm_target()?, PathBuf::from(arg))),
    }
}

/// The path of `target`'s binary inside the package (`.exe` on Windows, which runs nothing else).
pub fn native_rel_path(target: &str) -> String {
    let exe = if target.starts_with("win32-") {
        ".exe"
    } else {
        ""
    };
    format!("native/{target}/ktx{exe}")
}

/// The npm package name: `npm.packages[0]` of release-policy.json.
pub fn npm_package_name(root: &Path) -> Result<String> {
    let path = root.join("release-policy.json");
    let v: serde_json::Value = serde_json::from_str(&crate::fsx::read_to_string(&path)?)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    v.pointer("/npm/packages/0")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "{}: key `npm.packages[0]` must be the npm package name",
                path.display()
            )
        })
}

/// Files under `dir` as (`/`-separated relative path, absolute path), sorted.
fn files_under(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            bail!("{}: file name is not UTF-8; rename it", e.path().display());
        };
        let r = format!("{rel}/{name}");
        if e.path().is_dir() {
            files_under(&e.path(), &r, out)?;
        } else {
            out.push((r, e.path()));
        }
    }
    Ok(())
}

/// Assembles the package's entries and its stamped package.json; also returns the packed
/// native binaries (for dist/manifest.json).
fn entries(
    inputs: &PackInputs,
    name: &str,
    wheel: &BuiltWheel,
) -> Result<(Vec<Entry>, Vec<NativeBinary>)> {
    let root = &inputs.root;
    let npm_dir = root.join("npm-package");
    let pj_path = npm_dir.join("package.json");
    let mut pj = Object::parse(&crate::fsx::read_to_string(&pj_path)?, &pj_path)?;
    let bins: Vec<String> = match pj.get("bin") {
        Some(serde_json::Value::Object(m)) => m
            .values()
            .map(|v| v.as_str().map(|s| s.trim_start_matches("./").to_string()))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("{}: key `bin` must map names to paths", pj_path.display()))?,
        _ => bail!(
            "{}: key `bin` must be an object like {{\"ktx\": \"bin/ktx.js\"}}",
            pj_path.display()
        ),
    };

    let mut out = Vec::new();
    let mut bin_files = Vec::new();
    files_under(&npm_dir.join("bin"), "bin", &mut bin_files)?;
    for (rel, path) in bin_files {
        let executable = bins.contains(&rel);
        out.push(Entry {
            data: crate::fsx::read(&path)?,
            path: rel,
            executable,
        });
    }
    for b in &bins {
        if !out.iter().any(|e| &e.path == b) {
            bail!(
                "{}: `bin` names {b}, which is not in npm-package/",
                pj_path.display()
            );
        }
    }
    out.push(Entry {
        path: "README.md".into(),
        data: crate::fsx::read(&npm_dir.join("README.md"))?,
        executable: false,
    });
    out.push(Entry {
        path: "LICENSE".into(),
        data: crate::fsx::read(&root.join("LICENSE"))?,
        executable: false,
    });

    let mut native_meta = serde_json::Map::new();
    let mut natives = Vec::new();
    // Sorted, so neither package.json nor the manifest depends on the order of `--native`.
    let mut native = inputs.native.clone();
    native.sort();
    if native.is_empty() {
        bail!("no native binary to pack");
    }
    for (i, (target, _)) in native.iter().enumerate() {
        check_npm_target(target)?;
        if native[..i].iter().any(|(t, _)| t == target) {
            bail!("two native binaries for {target}; pass one `--native {target}=PATH`");
        }
    }
    for (target, path) in &native {
        let data = std::fs::read(path).with_context(|| {
            format!(
                "native ktx binary for {target} not found at {}; build it with \
                 `cargo build --release -p ktx` (pack-npm does this unless --native is given)",
                path.display()
            )
        })?;
        let rel = native_rel_path(target);
        let sha256 = crate::fsx::sha256_hex(&data);
        native_meta.insert(target.clone(), json!({"path": rel, "sha256": sha256}));
        natives.push(NativeBinary {
            target: target.clone(),
            path: rel.clone(),
            bytes: data.len() as u64,
            sha256,
        });
        out.push(Entry {
            path: rel,
            data,
            executable: true,
        });
    }
    out.push(Entry {
        path: format!("python/{}", wheel.file_name),
        data: wheel.bytes.clone(),
        executable: false,
    });
    out.push(Entry {
        path: "python/manifest.json".into(),
        data: wheel::asset_manifest(wheel)?,
        executable: false,
    });

    pj.set("name", json!(name));
    pj.set("version", json!(wheel.versions.semver));
    // npm refuses to install on a platform outside `os`/`cpu`: they must name the packed
    // binaries' platforms (a pack on macOS ships darwin-arm64, not the template's linux-x64).
    let mut oses = Vec::new();
    let mut cpus = Vec::new();
    for (target, _) in &native {
        // Checked above: every target is `<platform>-<arch>`.
        let (os, cpu) = target.split_once('-').unwrap_or((target.as_str(), ""));
        oses.push(os);
        cpus.push(cpu);
    }
    oses.sort_unstable();
    oses.dedup();
    cpus.sort_unstable();
    cpus.dedup();
    pj.set("os", json!(oses));
    pj.set("cpu", json!(cpus));
    pj.set(
        "ktx",
        json!({
            "schemaVersion": 1,
            "native": native_meta,
            "python": {"manifest": "python/manifest.json", "wheel": format!("python/{}", wheel.file_name), "sha256": wheel.sha256},
        }),
    );
    check_files_field(&pj, &pj_path, &out)?;
    out.push(Entry {
        path: "package.json".into(),
        data: pj.to_pretty()?,
        executable: false,
    });
    Ok((out, natives))
}

/// Checks that package.json's `files` (if any) covers every entry, so `npm pack` of the same
/// tree would ship the same files.
fn check_files_field(pj: &Object, path: &Path, entries: &[Entry]) -> Result<()> {
    let Some(files) = pj.get("files") else {
        return Ok(());
    };
    let patterns: Vec<String> = files
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_str().map(|s| s.trim_end_matches('/').to_string()))
                .collect()
        })
        .with_context(|| {
            format!(
                "{}: key `files` must be an array of strings",
                path.display()
            )
        })?;
    for e in entries {
        let covered = ["README.md", "LICENSE", "package.json"].contains(&e.path.as_str())
            || patterns
                .iter()
                .any(|p| e.path == *p || e.path.starts_with(&format!("{p}/")));
        if !covered {
            bail!(
                "{}: key `files` does not include `{}`; add it",
                path.display(),
                e.path
            );
        }
    }
    Ok(())
}

/// Builds every artifact in memory, then writes them into `inputs.dist` (temp files + renames,
/// dist/manifest.json last). On any error nothing new is left in dist/.
pub fn pack(inputs: &PackInputs) -> Result<Packed> {
    let name = npm_package_name(&inputs.root)?;
    let wheel = wheel::build(&inputs.root, inputs.epoch)?;
    let (mut entries, native) = entries(inputs, &name, &wheel)?;
    let bundles = match &inputs.bundles {
        Some(dir) => {
            let (more, files) = bundle_entries(dir)?;
            entries.extend(more);
            files
        }
        None => Vec::new(),
    };
    let tgz_bytes = npm_tarball::build(entries)?;
    let tgz_name = npm_tarball::tarball_name(&name, &wheel.versions.semver);
    let dist = &inputs.dist;
    let tgz = dist.join("npm").join(&tgz_name);
    let tgz_rel = format!("npm/{tgz_name}");
    let whl_rel = format!("python/{}", wheel.file_name);
    let manifest = DistManifest {
        schema_version: 1,
        version: wheel.versions.semver.clone(),
        pep440_version: wheel.versions.pep440.clone(),
        artifacts: vec![
            Artifact::new("npm", &name, &tgz_rel, &tgz_bytes),
            Artifact::new("wheel", &wheel.dist_name, &whl_rel, &wheel.bytes),
        ],
        native,
        bundles,
    };
    let sha_line = format!("{}  {tgz_name}\n", crate::fsx::sha256_hex(&tgz_bytes));
    let mut files = wheel::asset_dir_files(&wheel, &dist.join("python"))?;
    files.push((tgz.clone(), tgz_bytes));
    files.push((
        dist.join("npm").join(format!("{tgz_name}.sha256")),
        sha_line.into_bytes(),
    ));
    files.push((dist.join("manifest.json"), manifest.to_bytes()?));
    // Leftovers of an interrupted earlier run (temp files are `.<name>.tmp-<pid>`, pid gone).
    for dir in [dist.clone(), dist.join("npm"), dist.join("python")] {
        crate::fsx::remove_stale(&dir, |n| {
            let pid = n.rsplit_once(".tmp-").map(|(_, pid)| pid).unwrap_or("");
            n.starts_with('.') && !pid.is_empty() && !Path::new("/proc").join(pid).exists()
        })?;
    }
    crate::fsx::write_all_atomic(&files)?;
    wheel::remove_stale_wheels(&wheel, &dist.join("python"))?;
    let prefix = tgz_name
        .trim_end_matches(&format!("{}.tgz", wheel.versions.semver))
        .to_string();
    crate::fsx::remove_stale(&dist.join("npm"), |n| {
        n.starts_with(&prefix)
            && (n.ends_with(".tgz") || n.ends_with(".tgz.sha256"))
            && n != tgz_name
            && *n != format!("{tgz_name}.sha256")
    })?;
    Ok(Packed { tgz, manifest })
}

#[cfg(test)]
mod tests;
