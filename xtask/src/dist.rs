//! `cargo xtask dist`: build-wheel + pack-npm, i.e. every release artifact in dist/
//! (dist/python/{wheel,manifest.json}, dist/npm/<tgz>{,.sha256}, dist/manifest.json), with the
//! native binaries of `--targets` (default: the host's own build).

use anyhow::{Context, Result};

pub mod cross;

/// The npm tarball's size budget with every release target packed (issue 14; the signed
/// lang-python bundle raises it from 10 to 16 MB), in bytes (decimal megabytes).
pub const TARBALL_BUDGET: u64 = 16_000_000;

/// Fails when the tarball of `bytes` bytes exceeds [`TARBALL_BUDGET`].
pub fn check_budget(tgz: &std::path::Path, bytes: u64) -> Result<()> {
    anyhow::ensure!(
        bytes <= TARBALL_BUDGET,
        "{} is {bytes} bytes, over the {TARBALL_BUDGET}-byte budget: find what grew (`tar tzvf`) \
         before raising it",
        tgz.display()
    );
    Ok(())
}

/// Flags of `dist`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which native binaries to build and pack: `host` (this machine's `cargo build`), `all`
    /// (linux-x64, linux-arm64, darwin-x64, darwin-arm64, win32-x64, cross-built with pinned
    /// cargo-zigbuild and zig installed into .dev-tools/cross on first use) or a comma-separated
    /// list of npm targets (and `host`).
    #[arg(long, value_name = "host|all|LIST", default_value = "host")]
    pub targets: String,
    /// Only build and check the binaries, copied to `DIR/<npm-target>/ktx[.exe]`, without the
    /// wheel or the tarball (a CI build job; the fan-in job packs them with `pack-npm --native`).
    #[arg(long, value_name = "DIR")]
    pub binaries_only: Option<std::path::PathBuf>,
}

/// Builds ktx (release) for each target, then the wheel (dist/python) and the tarball
/// (dist/npm); prints the wall time of everything but the cargo builds.
pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let targets = cross::parse_targets(&args.targets)?;
    if let Some(out) = &args.binaries_only {
        for (npm, bin) in build_checked(&root, &targets)? {
            let name = bin.file_name().context("a built binary has no file name")?;
            let dest = out.join(&npm).join(name);
            crate::fsx::create_dir_all(dest.parent().unwrap_or(out))?;
            std::fs::copy(&bin, &dest)
                .with_context(|| format!("cannot copy {} to {}", bin.display(), dest.display()))?;
            println!("{npm}: {}", dest.display());
        }
        return Ok(());
    }
    let packed = build_dist_for(&root, &targets)?;
    crate::pack_npm::print_packed(&packed.0);
    println!("dist: {:.2?} excluding the cargo builds", packed.1);
    Ok(())
}

/// Runs dist for `root` with a binary per target; each binary passes its static checks
/// ([`crate::binary_check`]) before it is packed.
pub fn build_dist_for(
    root: &std::path::Path,
    targets: &[cross::Target],
) -> Result<(crate::pack_npm::Packed, std::time::Duration)> {
    let native = build_checked(root, targets)?;
    let started = std::time::Instant::now();
    let epoch = crate::wheel::source_date_epoch_from_env()?;
    // pack-npm writes the wheel and its manifest.json into dist/python (what build-wheel
    // writes) along with the tarball, so one pack covers both.
    let packed = crate::pack_npm::pack(&crate::pack_npm::PackInputs {
        root: root.to_path_buf(),
        dist: root.join("dist"),
        native,
        epoch,
        bundles: Some(crate::pack_npm::ensure_shipped_bundles(
            root,
            &root.join("dist"),
        )?),
    })?;
    let npm = packed.manifest.artifact("npm")?;
    check_budget(&packed.tgz, npm.bytes)?;
    Ok((packed, started.elapsed()))
}

/// Builds each target's binary and runs its static checks; returns (npm target, path).
fn build_checked(
    root: &std::path::Path,
    targets: &[cross::Target],
) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut native = Vec::new();
    for t in targets {
        let bin = cross::build(root, t)?;
        let linkage = match t.triple {
            Some(_) => crate::binary_check::Linkage::Static,
            None => crate::binary_check::Linkage::HostBuild,
        };
        let checked = crate::binary_check::check_file(&t.npm, &bin, linkage)?;
        println!("    {}: {}", t.npm, checked.summary);
        native.push((t.npm.clone(), bin));
    }
    Ok(native)
}
