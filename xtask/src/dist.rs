//! `cargo xtask dist`: build-wheel + pack-npm, i.e. every release artifact in dist/
//! (dist/python/{wheel,manifest.json}, dist/npm/<tgz>{,.sha256}, dist/manifest.json), with the
//! native binaries of `--targets` (default: the host's own build).

use anyhow::Result;

pub mod cross;

/// Flags of `dist`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which native binaries to build and pack: `host` (this machine's `cargo build`), `all`
    /// (linux-x64, linux-arm64, darwin-x64, darwin-arm64, win32-x64, cross-built with pinned
    /// cargo-zigbuild and zig installed into .dev-tools/cross on first use) or a comma-separated
    /// list of npm targets (and `host`).
    #[arg(long, value_name = "host|all|LIST", default_value = "host")]
    pub targets: String,
}

/// Builds ktx (release) for each target, then the wheel (dist/python) and the tarball
/// (dist/npm); prints the wall time of everything but the cargo builds.
pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let targets = cross::parse_targets(&args.targets)?;
    let packed = build_dist_for(&root, &targets)?;
    crate::pack_npm::print_packed(&packed.0);
    println!("dist: {:.2?} excluding the cargo builds", packed.1);
    Ok(())
}

/// Runs dist for `root` with the host's binary; returns what was packed and the non-cargo
/// wall time.
pub fn build_dist(
    root: &std::path::Path,
) -> Result<(crate::pack_npm::Packed, std::time::Duration)> {
    build_dist_for(root, &cross::parse_targets("host")?)
}

/// Runs dist for `root` with a binary per target.
pub fn build_dist_for(
    root: &std::path::Path,
    targets: &[cross::Target],
) -> Result<(crate::pack_npm::Packed, std::time::Duration)> {
    let mut native = Vec::new();
    for t in targets {
        native.push((t.npm.clone(), cross::build(root, t)?));
    }
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
    Ok((packed, started.elapsed()))
}
