//! `cargo xtask`: ktx's release tooling.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("usage: cargo xtask <command>")
}
