//! `cargo xtask dist`: build-wheel + pack-npm, i.e. every release artifact in dist/
//! (dist/python/{wheel,manifest.json}, dist/npm/<tgz>{,.sha256}, dist/manifest.json).

use anyhow::Result;

/// Flags of `dist`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Builds ktx (release), then the wheel (dist/python) and the tarball (dist/npm); prints the
/// wall time of everything but the cargo build.
pub fn run(_args: &Args) -> Result<()> {
    let root = crate::project_root();
    let packed = build_dist(&root)?;
    crate::pack_npm::print_packed(&packed.0);
    println!("dist: {:.2?} excluding the cargo build", packed.1);
    Ok(())
}

/// Runs dist for `root`; returns what was packed and the non-cargo wall time.
pub fn build_dist(
    root: &std::path::Path,
) -> Result<(crate::pack_npm::Packed, std::time::Duration)> {
    let binary = crate::pack_npm::build_release_binary(root)?;
    let started = std::time::Instant::now();
    let epoch = crate::wheel::source_date_epoch_from_env()?;
    // pack-npm writes the wheel and its manifest.json into dist/python (what build-wheel
    // writes) along with the tarball, so one pack covers both.
    let packed = crate::pack_npm::pack(&crate::pack_npm::PackInputs {
        root: root.to_path_buf(),
        dist: root.join("dist"),
        native: vec![(crate::pack_npm::host_npm_target()?, binary)],
        epoch,
    })?;
    Ok((packed, started.elapsed()))
}
