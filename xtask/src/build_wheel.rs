//! `cargo xtask build-wheel [--out DIR]`: the wheel and its asset manifest.json.

use anyhow::Result;
use std::path::PathBuf;

/// Flags of `build-wheel`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory (default: dist/python under the repository root).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Builds the wheel into `--out` (or dist/python) with a `manifest.json` beside it.
pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let out = match &args.out {
        Some(dir) => std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or(dir.clone()),
        None => root.join("dist/python"),
    };
    let wheel = crate::wheel::build(&root, crate::wheel::source_date_epoch_from_env()?)?;
    crate::wheel::write_asset_dir(&wheel, &out)?;
    println!(
        "{} ({} bytes, sha256 {})",
        out.join(&wheel.file_name).display(),
        wheel.bytes.len(),
        wheel.sha256
    );
    println!("{}", out.join("manifest.json").display());
    Ok(())
}
